#!/usr/bin/env python3
"""Where kiln's start-up goes, counted in instructions (valgrind's callgrind), not timed.

    python3 bench/startup_instructions.py               # this checkout
    python3 bench/startup_instructions.py --tree DIR    # another checkout (e.g. `git archive` of an older commit)

A count does not move with the load of a shared machine, so a change of a few milliseconds of start-up shows
here when a timed run cannot see it (issue 21: start-up is most of a small build). Each row is a fresh
interpreter (`-I -S`, this checkout and the venv's site-packages first on sys.path, byte code compiled first)
importing a set of modules; the rows are nested, so their differences say what each layer costs:

* the bare interpreter;
* the standard library and binary modules kiln needs whatever its HTTP client (logging, json, dataclasses,
  hashlib, tarfile, subprocess, http.client, ssl, xxhash, isal...);
* the same plus requests (urllib3, charset_normalizer, idna...);
* kiln's start-up set: `executor.main` and the engine, what every build imports before its first step;
* the same with dataclass creation left out (each `@dataclass` class left as written, with a plain __init__):
  the difference is what creating kiln's dataclasses costs;
* the same without the start-up code the executor image ships (executor.startup_code): every generated
  method and every regular expression compiled at start-up, as before those tables.

Needs valgrind. Runs the rows two at a time (~30 s each). Prints millions of instructions; asserts nothing.
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import sysconfig
from concurrent.futures import ThreadPoolExecutor

from prepare import precompile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)

STDLIB = ("dataclasses, typing, logging, json, hashlib, tarfile, subprocess, tempfile, shutil, platform, textwrap, "
          "ctypes, fcntl, pkgutil, http.client, ssl, socket, xxhash, isal.igzip")
KILN = "executor.main, executor.engine.session"
NO_DATACLASSES = """import dataclasses
def _init(self, *args, **kwargs):
    self.__dict__.update(kwargs)
def _process_class(cls, *args):
    cls.__init__ = _init
    cls.__dataclass_fields__ = {}
    return cls
dataclasses._process_class = _process_class
"""
# kiln without the start-up code that the executor image ships (executor.startup_code): every class's methods
# and every regular expression compiled at start-up (an older checkout has no tables: the same as the row above)
NO_TABLE = """import executor
getattr(getattr(executor, "startup_code", None), "uninstall", lambda: None)()
"""

ROWS = [
    ("bare interpreter", "pass"),
    ("+ standard library kiln needs", f"import {STDLIB}"),
    ("+ requests", f"import {STDLIB}, requests"),
    # `executor` first, as the executor loads it: its start-up code is in place before requests compiles a pattern
    ("kiln's start-up set", f"import executor, {STDLIB}, requests, {KILN}"),
    ("kiln's start-up set, no dataclass creation", f"{NO_DATACLASSES}import executor, {STDLIB}, requests, {KILN}"),
    ("kiln's start-up set, no start-up code tables", f"{NO_TABLE}import {STDLIB}, requests, {KILN}"),
]


def count(tree: str, site: str, code: str) -> int:
    prefix = f"import sys; sys.path[:0] = [{tree!r}, {site!r}]\n"
    proc = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
                           sys.executable, "-I", "-S", "-c", prefix + code], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"the interpreter failed under valgrind:\n{proc.stderr[-3000:]}")
    found = re.search(r"Collected : (\d+)", proc.stderr)
    if not found:
        raise SystemExit(f"no instruction count in valgrind's output:\n{proc.stderr[-2000:]}")
    return int(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", default=REPO, help="the kiln checkout to count (default: this one)")
    args = parser.parse_args()
    site = sysconfig.get_paths()["purelib"]
    precompile(args.tree)
    with ThreadPoolExecutor(2) as pool:
        counts = list(pool.map(lambda row: count(args.tree, site, row[1]), ROWS))
    got = dict(zip((name for name, _ in ROWS), counts))
    print(f"start-up of {args.tree} (Python {sys.version.split()[0]}), millions of instructions:")
    previous = 0
    for name, n in got.items():
        step = f"  (+{(n - previous) / 1e6:.0f})" if previous and ", no " not in name else ""
        print(f"  {name:<45} {n / 1e6:8.1f}{step}")
        if ", no " not in name:
            previous = n
    total = got["kiln's start-up set"]
    classes = total - got["kiln's start-up set, no dataclass creation"]
    own = total - got["+ requests"]
    table = got["kiln's start-up set, no start-up code tables"] - total
    print(f"  kiln's own modules: {own / 1e6:.0f} ({own / total:.0%} of the start-up set), of which dataclass "
          f"creation {classes / 1e6:.0f} ({classes / total:.0%}); requests and its dependencies "
          f"{(got['+ requests'] - got['+ standard library kiln needs']) / 1e6:.0f} "
          f"({(got['+ requests'] - got['+ standard library kiln needs']) / total:.0%}); the start-up code "
          f"tables save {table / 1e6:.0f} ({table / (total + table):.0%} of the start-up set without it)")


if __name__ == "__main__":
    main()
