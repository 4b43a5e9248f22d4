"""Cache keys over COPY sources: what must invalidate and what must not."""
from __future__ import annotations

import os

import pytest

from executor.cache.keys import FileDigests, sources_digest, stage_key, step_key
from executor.dockerfile import parse
from executor.dockerfile.dockerignore import DockerIgnore


def _tree(root, files: dict[str, str]) -> str:
    for name, content in files.items():
        path = os.path.join(root, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(content)
    return str(root)


@pytest.fixture
def ctx(tmp_path):
    return _tree(tmp_path / "ctx", {"src/a.py": "a\n", "src/sub/b.py": "b\n", "README": "r\n",
                                    "node_modules/x.js": "x\n", "app.txt": "t\n", "app.cfg": "c\n"})


def _digest(ctx, sources, excluded=None):
    return sources_digest(ctx, sources, excluded, FileDigests())


def test_content_rename_chmod_and_ownership_invalidate(ctx):
    before = _digest(ctx, ["src/"])
    with open(os.path.join(ctx, "src/a.py"), "w") as f:
        f.write("A\n")
    changed = _digest(ctx, ["src/"])
    assert changed != before
    os.rename(os.path.join(ctx, "src/sub/b.py"), os.path.join(ctx, "src/sub/c.py"))
    renamed = _digest(ctx, ["src/"])
    assert renamed != changed
    os.chmod(os.path.join(ctx, "src/sub/c.py"), 0o755)
    chmodded = _digest(ctx, ["src/"])
    assert chmodded != renamed
    os.chown(os.path.join(ctx, "src/sub/c.py"), 1234, 1234)
    assert _digest(ctx, ["src/"]) != chmodded


def test_mtime_and_unrelated_files_do_not_invalidate(ctx):
    before = _digest(ctx, ["src/", "app.*"])
    os.utime(os.path.join(ctx, "src/a.py"), (1, 1))
    os.utime(os.path.join(ctx, "src"), (2, 2))
    with open(os.path.join(ctx, "NEWS"), "w") as f:
        f.write("n\n")
    with open(os.path.join(ctx, "README"), "w") as f:
        f.write("changed\n")
    assert _digest(ctx, ["src/", "app.*"]) == before


def test_wildcards_select_exactly_their_matches(ctx):
    before = _digest(ctx, ["app.*"])
    with open(os.path.join(ctx, "other.txt"), "w") as f:
        f.write("o\n")
    assert _digest(ctx, ["app.*"]) == before
    with open(os.path.join(ctx, "app.new"), "w") as f:
        f.write("n\n")
    assert _digest(ctx, ["app.*"]) != before, "a new file the wildcard matches invalidates"


def test_dockerignore_hides_what_copy_does_not_see(ctx):
    ignore = DockerIgnore(["node_modules", "src/sub"]).matches
    before = _digest(ctx, ["."], ignore)
    with open(os.path.join(ctx, "node_modules/x.js"), "w") as f:
        f.write("changed\n")
    with open(os.path.join(ctx, "src/sub/b.py"), "w") as f:
        f.write("changed\n")
    assert _digest(ctx, ["."], ignore) == before
    with open(os.path.join(ctx, "src/a.py"), "w") as f:
        f.write("changed\n")
    assert _digest(ctx, ["."], ignore) != before


def test_symlinked_source_is_followed(ctx):
    os.symlink("src", os.path.join(ctx, "link"))
    before = _digest(ctx, ["link"])
    with open(os.path.join(ctx, "src/a.py"), "w") as f:
        f.write("changed\n")
    assert _digest(ctx, ["link"]) != before


def test_step_keys_chain_and_ignore_line_numbers():
    one = parse(b"FROM x\nRUN echo hi\n", "Dockerfile").stages[0].instructions[0]
    moved = parse(b"FROM x\n\n\n# comment\nRUN echo hi\n", "Dockerfile").stages[0].instructions[0]
    other = parse(b"FROM x\nRUN echo ho\n", "Dockerfile").stages[0].instructions[0]
    parent = stage_key("image:sha256:" + "0" * 64, "linux/amd64", {"compression": "gzip"})
    k = step_key(parent, one, {"A": "1"}, {"user": ""})
    assert k == step_key(parent, moved, {"A": "1"}, {"user": ""})
    assert k != step_key(parent, other, {"A": "1"}, {"user": ""})
    assert k != step_key(parent, one, {"A": "2"}, {"user": ""}), "a build arg the step sees counts"
    assert k != step_key(parent, one, {"A": "1"}, {"user": "app"})
    assert k != step_key(stage_key("scratch", "linux/amd64", {}), one, {"A": "1"}, {"user": ""})
    assert stage_key("scratch", "linux/amd64", {}) != stage_key("scratch", "linux/arm64", {})
    assert stage_key("scratch", "linux/amd64", {"epoch": None}) != stage_key("scratch", "linux/amd64", {"epoch": 0})
