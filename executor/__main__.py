"""`python3 -m executor [flags]`: the executor, as /kaniko/executor."""

import sys

from executor.main import executor_main

if __name__ == "__main__":
    sys.exit(executor_main())
