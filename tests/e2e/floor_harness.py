"""`python -I floor_harness.py LATE_JSON EXECUTOR-ARGS...`: kiln's executor in this process, with the RUN runner
wrapped to note the modules loaded when the first RUN starts; writes {"ran", "late"} (modules loaded after it),
"before" (those loaded when it started) and "loaded" (all, at the end) to LATE_JSON and exits with the executor's code. Used by test_floor.py."""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

import executor.commands.run as run_command  # noqa: E402

late_file = sys.argv[1]
state: dict = {}
runner = run_command.run_process


def first_run_noted(spec):
    state.setdefault("before", set(sys.modules))
    return runner(spec)


run_command.run_process = first_run_noted

from executor.main import executor_main  # noqa: E402

code = executor_main(sys.argv[2:])
late = sorted(set(sys.modules) - state.get("before", set(sys.modules)))
with open(late_file, "w") as f:
    json.dump({"code": code, "ran": "before" in state, "late": late, "before": sorted(state.get("before", ())),
               "loaded": sorted(sys.modules)}, f)
sys.exit(code)
