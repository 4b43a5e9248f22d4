"""Imports go one way (issue 11): the package graph has no cycle, and docs/architecture.md draws it as it is."""
from __future__ import annotations

import os
import re

from tests.test_architecture.imports import REPO, cycles, floor_rows, graph


def test_package_graph_has_no_cycle() -> None:
    assert cycles(graph()) == []


def test_a_cycle_is_found() -> None:
    """The check itself: a cycle through three parts, and one through two, are reported."""
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": {"e"}, "e": {"d"}}
    assert cycles(edges) == [["a", "b", "c"], ["d", "e"]]


def _documented() -> dict[str, set[str]]:
    with open(os.path.join(REPO, "docs", "architecture.md"), encoding="utf-8") as f:
        text = f.read()
    block = re.search(r"<!-- import graph -->\n```\n(.*?)```", text, re.S)
    assert block, "docs/architecture.md has no ```import graph``` block"
    edges: dict[str, set[str]] = {}
    for line in block.group(1).splitlines():
        source, _, targets = line.partition(" -> ")
        edges[source.strip()] = {t.strip() for t in targets.split(",") if t.strip()}
    return edges


def test_architecture_doc_draws_the_graph_as_it_is() -> None:
    """Regenerate the block with `python -m tests.test_architecture.imports` when the graph changes."""
    assert _documented() == graph()


def test_architecture_doc_lists_the_floors_as_they_are():
    with open(os.path.join(REPO, "docs", "architecture.md"), encoding="utf-8") as f:
        text = f.read()
    rows = [line for line in text.splitlines() if re.match(r"^\| \d+ \| `", line)]
    assert rows == floor_rows(graph())


def test_snapshot_knows_nothing_of_dockerfiles_or_images() -> None:
    assert graph().get("snapshot", set()) == set()


def test_image_model_knows_no_http() -> None:
    g = graph()
    assert g.get("executor.image", set()) <= {"snapshot"}
    for path in ("executor/image",):
        for name in os.listdir(os.path.join(REPO, path)):
            if name.endswith(".py"):
                with open(os.path.join(REPO, path, name), encoding="utf-8") as f:
                    assert not re.search(r"^\s*(import|from) (requests|urllib3|http)\b", f.read(), re.M), name
