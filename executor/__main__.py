"""`python3 -m executor [flags]`: the executor, as /kaniko/executor."""

from executor.main import executor_entry

if __name__ == "__main__":
    executor_entry()
