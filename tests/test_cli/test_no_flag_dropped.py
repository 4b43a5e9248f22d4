"""Issue 12, "nothing can be dropped again": every option a flag sets is read by kiln outside the CLI, or its
flag is in `executor.cli.flags.NO_EFFECT` with the reason (which `--help` shows). A flag parsed and then ignored
is a bug the user cannot see; this test is how kiln sees it.

"Read" means an attribute access `<options>.<field>` in kiln's own code outside `executor/cli/` and
`executor/options.py`, where `<options>` is a name `opts`/`options`, or `self.options` / `x.options` / `x.registry`
(the registry options)."""
from __future__ import annotations

import ast
import dataclasses
import os

import pytest

from executor.cli import EXECUTOR_FLAGS, WARMER_FLAGS, format_usage
from executor.cli.flags import INDEX_FLAGS, LOGIN_FLAGS, PUSH_FLAGS
from executor.cli.flags import NO_EFFECT
from executor.options import IndexOptions, LoginOptions, Options, PushOptions, WarmerOptions
from executor.registry.options import RegistryOptions

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NOT_OPTIONS = {"registry", "notices"}         # containers and the parser's notices, not flags


def _option_holder(node: ast.expr, own: bool) -> bool:
    if isinstance(node, ast.Name):
        return node.id in ("opts", "options") or own and node.id == "self"
    return isinstance(node, ast.Attribute) and node.attr in ("options", "registry")


def reads(sources: dict[str, str]) -> set[str]:
    """The option fields the given sources (path -> text) read; in executor/registry/options.py, the
    RegistryOptions methods' own `self.<field>` count too; a property of executor/options.py (Options.platforms)
    read by the sources counts as reading the fields it reads."""
    found: set[str] = set()
    for path, text in sources.items():
        own = path == os.path.join("executor", "registry", "options.py")
        for node in ast.walk(ast.parse(text, path)):
            if isinstance(node, ast.Attribute) and _option_holder(node.value, own):
                found.add(node.attr)
    for name, fields in _option_properties().items():
        if name in found:
            found |= fields
    return found


def _option_properties() -> dict[str, set[str]]:
    """Property name -> the `self.<field>`s it reads, for the properties of executor/options.py's classes."""
    with open(os.path.join(REPO, "executor", "options.py"), encoding="utf-8") as f:
        tree = ast.parse(f.read())
    out: dict[str, set[str]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and any(isinstance(d, ast.Name) and d.id == "property"
                                                     for d in node.decorator_list):
            out.setdefault(node.name, set()).update(
                n.attr for n in ast.walk(node) if isinstance(n, ast.Attribute)
                and isinstance(n.value, ast.Name) and n.value.id == "self")
    return out


def kiln_sources() -> dict[str, str]:
    out = {}
    for directory, dirnames, filenames in os.walk(os.path.join(REPO, "executor")):
        dirnames[:] = [d for d in dirnames if d != "__pycache__"]
        rel = os.path.relpath(directory, REPO)
        if rel == os.path.join("executor", "cli") or rel.startswith(os.path.join("executor", "cli") + os.sep):
            continue
        for name in filenames:
            if name.endswith(".py") and os.path.join(rel, name) != os.path.join("executor", "options.py"):
                with open(os.path.join(directory, name), encoding="utf-8") as f:
                    out[os.path.join(rel, name)] = f.read()
    return out


def _flags_of(field: str, specs) -> list[str]:
    return sorted({s.name for s in specs if s.dest in (field, f"registry.{field}")})


def dropped(option_type, specs, read: set[str]) -> list[str]:
    """Fields set by flags that nothing reads and NO_EFFECT does not explain."""
    fields = [f.name for f in dataclasses.fields(option_type) if f.name not in NOT_OPTIONS]
    fields += [f.name for f in dataclasses.fields(RegistryOptions) if _flags_of(f.name, specs)]
    out = []
    for field in fields:
        flags = _flags_of(field, specs)
        if not flags or field in read:
            continue
        if not all(flag in NO_EFFECT for flag in flags):
            out.append(f"{field} (--{', --'.join(flags)})")
    return out


#: options the parser itself acts on (they never need to reach the engine)
CONSUMED_BY_THE_PARSER = {"password_stdin"}     # executor login reads the password from stdin while parsing


@pytest.mark.parametrize("option_type,specs", [(Options, EXECUTOR_FLAGS), (WarmerOptions, WARMER_FLAGS),
                                               (PushOptions, PUSH_FLAGS), (LoginOptions, LOGIN_FLAGS),
                                               (IndexOptions, INDEX_FLAGS)],
                         ids=["executor", "warmer", "push", "login", "index"])
def test_every_option_is_read_or_explained(option_type, specs):
    read = reads(kiln_sources()) | CONSUMED_BY_THE_PARSER
    assert dropped(option_type, specs, read) == []


def test_the_table_explains_only_what_kiln_does_not_read():
    """A flag listed as having no effect whose option kiln reads after all makes the table lie."""
    read = reads(kiln_sources())
    by_name = {s.name: s for s in EXECUTOR_FLAGS + WARMER_FLAGS}
    lying = [name for name in NO_EFFECT if by_name[name].dest.removeprefix("registry.") in read]
    assert lying == []
    assert set(NO_EFFECT) <= set(by_name)


def test_a_dropped_option_is_caught():
    """The check itself: a field nobody reads, its flag not in the table, is reported; once read, it is not."""
    @dataclasses.dataclass(frozen=True)
    class WithExtra(Options):
        shiny_new_option: bool = False

    specs = (*EXECUTOR_FLAGS, dataclasses.replace(EXECUTOR_FLAGS[0], name="shiny-new-option",
                                                  dest="shiny_new_option"))
    read = reads(kiln_sources())
    assert dropped(WithExtra, specs, read) == ["shiny_new_option (--shiny-new-option)"]
    assert dropped(WithExtra, specs, read | reads({"x.py": "def f(opts):\n    return opts.shiny_new_option\n"})) == []


@pytest.mark.parametrize("flag", sorted(name for name in NO_EFFECT
                                        if not next(s for s in EXECUTOR_FLAGS if s.name == name).hidden))
def test_help_says_why_a_flag_has_no_effect(flag):
    usage = format_usage("executor", EXECUTOR_FLAGS, NO_EFFECT)
    line = next(l for l in usage.splitlines() if f"--{flag} " in l or l.rstrip().endswith(f"--{flag}"))
    assert f"[no effect in kiln: {NO_EFFECT[flag]}]" in line
