"""The package import graph of executor/ and snapshot/, read from the source with `ast`.

A node is a package (a directory with __init__.py) or a module directly in the top package `executor`
(`executor.options`, `executor.logs`...), so the top package's own modules are checked like packages.
Every import counts: module level, inside functions (lazy), and `importlib.import_module("...")` calls
with a literal name. An edge from a node to a node inside it (or to one of its ancestors) is not an
edge between parts.
"""
from __future__ import annotations

import ast
import os
from collections.abc import Iterator

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOPS = ("executor", "snapshot")


def _packages() -> set[str]:
    found = set()
    for top in TOPS:
        for directory, dirnames, filenames in os.walk(os.path.join(REPO, top)):
            dirnames[:] = [d for d in dirnames if d != "__pycache__"]
            if "__init__.py" in filenames:
                found.add(os.path.relpath(directory, REPO).replace(os.sep, "."))
    return found


def _modules() -> Iterator[tuple[str, str]]:
    """(dotted module name, path) of every source file."""
    for top in TOPS:
        for directory, dirnames, filenames in os.walk(os.path.join(REPO, top)):
            dirnames[:] = [d for d in dirnames if d != "__pycache__"]
            for name in sorted(filenames):
                if name.endswith(".py"):
                    path = os.path.join(directory, name)
                    dotted = os.path.relpath(path, REPO)[:-3].replace(os.sep, ".")
                    yield dotted.removesuffix(".__init__"), path


def _imported(tree: ast.AST, module: str, is_package: bool) -> Iterator[str]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base[:len(base) - node.level + (1 if is_package else 0)]
                prefix = ".".join(base)
                target = f"{prefix}.{node.module}" if node.module else prefix
            else:
                target = node.module or ""
            yield target
            yield from (f"{target}.{a.name}" for a in node.names)    # `from executor import cli`
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) == \
                "import_module" and node.args and isinstance(node.args[0], ast.Constant):
            yield str(node.args[0].value)


def node_of(name: str, packages: set[str]) -> str | None:
    """The part a dotted name belongs to: its innermost package, or a module of the top package."""
    parts = name.split(".")
    if parts[0] not in TOPS:
        return None
    for i in range(len(parts), 0, -1):
        candidate = ".".join(parts[:i])
        if candidate in packages:
            if candidate == "executor" and i < len(parts):
                return f"executor.{parts[i]}"     # a module of the top package is a part of its own
            return candidate
    return None


def graph() -> dict[str, set[str]]:
    packages = _packages()
    edges: dict[str, set[str]] = {}
    for module, path in _modules():
        is_package = path.endswith("__init__.py")
        source = node_of(module, packages)
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read(), path)
        for name in _imported(tree, module, is_package):
            target = node_of(name, packages)
            if source is None or target is None or target == source:
                continue
            if target.startswith(source + ".") or source.startswith(target + "."):
                continue      # a package and its own subpackages
            if target == "executor":
                continue
            edges.setdefault(source, set()).add(target)
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected component of more than one node (Tarjan), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(set(edges) | {w for ws in edges.values() for w in ws}):
        if v not in index:
            visit(v)
    return sorted(found)


def layers(edges: dict[str, set[str]]) -> list[list[str]]:
    """The parts by floor, lowest first: a part stands above everything it imports."""
    nodes = sorted(set(edges) | {w for ws in edges.values() for w in ws})
    floor: dict[str, int] = {}

    def height(v: str) -> int:
        if v not in floor:
            floor[v] = 0
            floor[v] = 1 + max((height(w) for w in edges.get(v, ())), default=-1)
        return floor[v]

    for v in nodes:
        height(v)
    out: list[list[str]] = [[] for _ in range(max(floor.values(), default=-1) + 1)]
    for v in nodes:
        out[floor[v]].append(v)
    return out


def edge_lines(edges: dict[str, set[str]]) -> list[str]:
    return [f"{source} -> {', '.join(sorted(edges[source]))}" for source in sorted(edges)]


def floor_rows(edges: dict[str, set[str]]) -> list[str]:
    """The markdown rows of docs/architecture.md's floor table."""
    return [f"| {i} | {', '.join(f'`{p}`' for p in floor)} |" for i, floor in enumerate(layers(edges))]


if __name__ == "__main__":
    g = graph()
    print("\n".join(edge_lines(g)))
    print("cycles:", cycles(g) or "none")
    print("\n".join(floor_rows(g)))
