""".dockerignore: excluded context entries are invisible to COPY (the caller passes relpath -> excluded)."""
from __future__ import annotations

import fnmatch
import os

import pytest

from executor.commands.copying.files import CopyError, CopyRequest, copy_into_root
from tests.test_copy.helpers import names, symlink, write


def ignore(*patterns: str, keep: tuple[str, ...] = ()):
    """A small stand-in matcher: a path is excluded when it or a parent matches, unless re-included."""
    def excluded(rel: str) -> bool:
        if any(fnmatch.fnmatchcase(rel, k) for k in keep):
            return False
        parts = rel.split("/")
        return any(fnmatch.fnmatchcase("/".join(parts[:i]), p)
                   for i in range(1, len(parts) + 1) for p in patterns)
    return excluded


def req(d, sources, dest, **kw) -> CopyRequest:
    return CopyRequest(sources=sources, dest=dest, source_root=d.ctx, root=d.root, **kw)


@pytest.fixture
def ctx(dirs):
    for rel in ("app/main.py", "app/secret.key", "node_modules/x/index.js", "docs/a.md", "docs/keep.md",
                "top.key", "README"):
        write(dirs.ctx, rel, rel)
    return dirs


def test_excluded_files_are_skipped_in_directory_copies(ctx) -> None:
    copy_into_root(req(ctx, ["."], "/src/", excluded=ignore("*.key", "*/*.key", "node_modules")))
    assert names(ctx.root) == {"/src", "/src/app", "/src/app/main.py", "/src/docs", "/src/docs/a.md",
                               "/src/docs/keep.md", "/src/README"}


def test_excluded_files_do_not_match_wildcards(ctx) -> None:
    copy_into_root(req(ctx, ["*.key", "READ*"], "/k/", excluded=ignore("top.key")))
    assert names(ctx.root) == {"/k", "/k/README"}


def test_entirely_excluded_source_counts_as_not_found(ctx) -> None:
    with pytest.raises(CopyError, match=r'"/node_modules": not found .*dockerignore'):
        copy_into_root(req(ctx, ["node_modules"], "/n/", excluded=ignore("node_modules")))
    assert copy_into_root(req(ctx, ["*.key"], "/n/", excluded=ignore("*.key"))) == []  # an empty wildcard


def test_exception_inside_an_excluded_directory(ctx) -> None:
    copy_into_root(req(ctx, ["docs"], "/d/", excluded=ignore("docs", keep=("docs/keep.md",))))
    assert names(ctx.root) == {"/d", "/d/keep.md"}


def test_symlink_to_an_excluded_file_is_not_found(ctx) -> None:
    symlink(ctx.ctx, "alias", "top.key")
    with pytest.raises(CopyError, match="not found"):
        copy_into_root(req(ctx, ["alias"], "/a", excluded=ignore("top.key")))


def test_from_stage_ignores_the_dockerignore(ctx) -> None:
    copy_into_root(req(ctx, ["/top.key"], "/t", excluded=ignore("*"), from_context=False))
    assert os.path.isfile(os.path.join(ctx.root, "t"))


def test_with_the_real_dockerignore_matcher(ctx) -> None:
    from executor.dockerfile.dockerignore import read_patterns

    ignore_file = read_patterns("docs\n!docs/keep.md\nnode_modules\n**/*.key\n")
    calls: list[str] = []

    def excluded(rel: str) -> bool:
        calls.append(rel)
        return ignore_file.matches(rel)
    excluded.may_reinclude_under = ignore_file.may_reinclude_under  # type: ignore[attr-defined]

    copy_into_root(req(ctx, ["."], "/src/", excluded=excluded))
    assert names(ctx.root) == {"/src", "/src/app", "/src/app/main.py", "/src/docs", "/src/docs/keep.md",
                               "/src/README"}
    assert "node_modules/x" not in calls  # wholly excluded: not walked
    copy_into_root(req(ctx, ["."], "/bound/", excluded=ignore_file.matches))
    assert "/bound/docs/keep.md" in names(ctx.root) and "/bound/node_modules" not in names(ctx.root)
