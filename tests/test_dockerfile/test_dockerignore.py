""".dockerignore: docker's patternmatcher behaviour, reading files, walking a context."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from executor.dockerfile.dockerignore import (ContextEntry, DockerIgnore, DockerIgnoreError, clean_pattern,
                                              ignore_file_for, read_dockerignore, read_patterns, walk_context)

# (patterns, path, excluded?) -- the behaviour of moby/patternmatcher, in our own table
TABLE = [
    (["*"], "fileutils.go", True),
    (["*.go"], "fileutils.go", True),
    (["!fileutils.go", "*.go"], "fileutils.go", True),
    (["*.go", "!fileutils.go"], "fileutils.go", False),
    (["docs", "!docs/README.md"], "docs/README.md", False),
    (["docs/", "!docs/README.md"], "docs/README.md", False),
    (["docs/*", "!docs/README.md"], "docs/README.md", False),
    (["docs/*", "!docs/README.md"], "docs/other.md", True),
    (["**"], "file", True),
    (["**"], "dir/file", True),
    (["**/"], "dir/file", True),
    (["**/**"], "dir/file", True),
    (["dir/**"], "dir/file", True),
    (["dir/**"], "dir/dir2/file", True),
    (["**/dir"], "dir", True),
    (["**/dir"], "dir/file", True),
    (["**/dir2/*"], "dir/dir2/file", True),
    (["**/dir2/**"], "dir/dir2/dir3/file", True),
    (["**file"], "file", True),
    (["**file"], "dir/dir/file", True),
    (["**/file"], "dir/dir/file", True),
    (["**/file*"], "dir/dir/file.txt", True),
    (["**/file*.txt"], "dir/dir/file.txt", True),
    (["**/**/*.txt"], "dir/dir/file.txt", True),
    (["**/**/*.txt2"], "dir/dir/file.txt", False),
    (["**/*.txt"], "file.txt", True),
    (["a**/*.txt"], "a/dir/dir/file.txt", True),
    (["a/*.txt"], "a/dir/file.txt", False),
    (["a/*.txt"], "a/file.txt", True),
    (["a/*.txt**"], "a/file.txt", True),
    (["a[b-d]e"], "ae", False),
    (["a[b-d]e"], "ace", True),
    (["a[b-d]e"], "aae", False),
    (["a[^b-d]e"], "aze", True),
    ([".*"], ".foo", True),
    ([".*"], "foo", False),
    (["abc.def"], "abcdef", False),
    (["abc.def"], "abc.def", True),
    (["abc?def"], "abcZdef", True),
    (["abc?def"], "abcdef", False),
    (["a\\\\"], "a\\", True),
    (["a\\*b"], "a*b", True),
    (["a\\*b"], "axb", False),
    (["**/foo/bar"], "dir/dir2/foo/bar", True),
    (["abc/**"], "abc", False),
    (["abc/**"], "abc/def/ghi", True),
    (["**/.foo"], ".foo", True),
    (["**/.foo"], "bar.foo", False),
    (["a(b)c/def"], "a(b)c/def", True),
    (["a(b)c/def"], "a(b)c/xyz", False),
    (["a.|)$(}+{bc"], "a.|)$(}+{bc", True),
    (["dist/*.whl"], "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", True),
    (["**", "!util/docker/web"], "util/docker/web/foo", False),
    (["**", "!util/docker/web", "util/docker/web/foo"], "util/docker/web/foo", True),
    (["**", "!dist/*.whl"], "dist/x-1.whl", False),
    # anchored at the root: no implicit "**/"
    (["*.md"], "docs/a.md", False),
    (["node_modules"], "src/node_modules/x", False),
    (["node_modules"], "node_modules/x/y", True),
    (["*/tmp"], "a/tmp/file", True),
    (["*/tmp"], "a/b/tmp", False),
    # cleaning: ./, trailing slash, .. and doubled slashes
    (["./build/"], "build/out.o", True),
    (["a//b/../c"], "a/c", True),
    ([], "anything", False),
    (["*"], ".", False),
]


@pytest.mark.parametrize(("patterns", "path", "excluded"), TABLE)
def test_patternmatcher_behaviour(patterns, path, excluded):
    assert DockerIgnore(patterns).matches(path) is excluded


@pytest.mark.parametrize("bad,message", [
    ("[", "syntax error in pattern '[': unclosed '['"),
    ("!", 'illegal exclusion pattern: "!"'),
    ("a\\", "syntax error in pattern 'a\\\\': trailing backslash"),
    ("[]", "syntax error in pattern '[]': bad character class"),
    ("[-a]", "syntax error in pattern '[-a]': bad character class"),
    ("x[a-]", "syntax error in pattern 'x[a-]': bad character class"),
])
def test_malformed_patterns(bad, message):
    with pytest.raises(DockerIgnoreError) as err:
        DockerIgnore([bad])
    assert str(err.value) == message


def test_reading_lines():
    text = "\ufeff# comment\n  \n/abs/path\n  spaced  \n!  keep.txt \n./x/../y\n#not/a/pattern\n \\#hash\n"
    di = read_patterns(text)
    assert di.patterns == ["abs/path", "spaced", "!keep.txt", "y", "\\#hash"]
    assert clean_pattern("# c") is None
    assert clean_pattern("/") == "/"
    assert clean_pattern("!/a/") == "!a"


def test_error_names_file_and_line():
    with pytest.raises(DockerIgnoreError, match=r"^ctx/.dockerignore:3: syntax error in pattern '\['"):
        read_patterns("a\n\n[\n", source="ctx/.dockerignore")


def _tree(root: Path, files: list[str]) -> None:
    for f in files:
        p = root / f
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(f)


def test_walk_reincluded_children_of_an_excluded_directory(tmp_path: Path):
    _tree(tmp_path, ["docs/README.md", "docs/guide.md", "docs/deep/x.md", "src/main.go", "src/main_test.go",
                     "Dockerfile", ".dockerignore", "build/out.o"])
    (tmp_path / ".dockerignore").write_text("docs\n!docs/README.md\n*/*_test.go\nbuild\n.dockerignore\n")
    di = read_dockerignore(tmp_path)
    entries = list(walk_context(tmp_path, di))
    assert entries == [
        ContextEntry("Dockerfile", False),
        ContextEntry("docs", True, parent_only=True),
        ContextEntry("docs/README.md", False),
        ContextEntry("src", True),
        ContextEntry("src/main.go", False),
    ]
    # the caller's rule: the Dockerfile and .dockerignore are never hidden
    kept = di.with_always_included(["Dockerfile", ".dockerignore"])
    assert not kept.matches(".dockerignore")
    assert ContextEntry(".dockerignore", False) in list(walk_context(tmp_path, kept))


def test_walk_descends_where_an_ancestor_is_reincluded(tmp_path: Path):
    _tree(tmp_path, ["docs/deep/x.md", "docs/deep/tmp/y", "other/z"])
    di = DockerIgnore(["docs", "!docs", "docs/deep/tmp", "other", "!other/keep"])
    assert [e.relpath for e in walk_context(tmp_path, di)] == ["docs", "docs/deep", "docs/deep/x.md"]
    assert di.may_reinclude_under("docs/deep/tmp") and not di.may_reinclude_under("other/elsewhere")


def test_walk_skips_excluded_directories_without_exclusions(tmp_path: Path):
    _tree(tmp_path, ["a/b/c", "keep"])
    os.chmod(tmp_path / "a", 0o000)  # never opened when excluded and nothing can be re-included
    try:
        assert [e.relpath for e in walk_context(tmp_path, DockerIgnore(["a"]))] == ["keep"]
    finally:
        os.chmod(tmp_path / "a", 0o755)


def test_walk_handles_deep_trees(tmp_path: Path):
    # deeper than Python's recursion limit; built and removed without recursion (pytest's own
    # clean-up of old temporary directories would hit the limit on it)
    dirs = []
    deep = str(tmp_path)
    try:
        for _ in range(1200):
            deep = os.path.join(deep, "d")
            os.mkdir(deep)
            dirs.append(deep)
        Path(deep, "f").write_text("x")
        entries = list(walk_context(tmp_path, DockerIgnore(["d", "!**/f"])))
        assert len(entries) == 1201 and entries[-1].relpath.endswith("d/f") and entries[0].parent_only
    finally:
        if dirs and os.path.exists(os.path.join(dirs[-1], "f")):
            os.unlink(os.path.join(dirs[-1], "f"))
        for d in reversed(dirs):
            os.rmdir(d)


def test_walk_yields_symlinks_without_following(tmp_path: Path):
    _tree(tmp_path, ["real/file"])
    os.symlink("real", tmp_path / "link")
    assert [(e.relpath, e.is_dir) for e in walk_context(tmp_path, DockerIgnore([]))] == [
        ("link", False), ("real", True), ("real/file", False)]


def test_dockerfile_specific_ignore_file_wins(tmp_path: Path):
    _tree(tmp_path, ["sub/app.Dockerfile", "x", "y"])
    (tmp_path / ".dockerignore").write_text("x\n")
    df = tmp_path / "sub" / "app.Dockerfile"
    assert ignore_file_for(tmp_path, df) == tmp_path / ".dockerignore"
    assert read_dockerignore(tmp_path, df).matches("x")
    (tmp_path / "sub" / "app.Dockerfile.dockerignore").write_text("y\n")
    assert ignore_file_for(tmp_path, df) == tmp_path / "sub" / "app.Dockerfile.dockerignore"
    di = read_dockerignore(tmp_path, df)
    assert di.matches("y") and not di.matches("x")
    assert not read_dockerignore(tmp_path / "sub").matches("x")


_PAT = st.lists(st.sampled_from(list("ab/*?![]^-.\\ #") + ["**", "../", "./"]), max_size=12).map("".join)
_PATH = st.lists(st.sampled_from(["a", "b", "a.b", "*", "[", "x y", "é"]), min_size=1, max_size=4).map("/".join)


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(_PAT, max_size=5), _PATH)
def test_generated_patterns_never_crash(patterns, path):
    try:
        di = read_patterns("\n".join(patterns))
    except DockerIgnoreError:
        return
    assert isinstance(di.matches(path), bool)
    # last match wins: appending the path itself excludes it, then "!path" re-includes it
    if not any(c in path for c in "*?["):
        assert DockerIgnore(di.patterns + [path]).matches(path)
        assert not DockerIgnore(di.patterns + [path, "!" + path]).matches(path)


_NAMES = st.sampled_from(["a", "b", "keep", "x.md", "tmp"])
_TREE = st.lists(st.lists(_NAMES, min_size=1, max_size=3).map("/".join), min_size=1, max_size=8)
_RULES = st.lists(st.sampled_from(["a", "b", "*", "*/tmp", "**/x.md", "a/**", "tmp", "!keep", "!a/keep", "!**/keep",
                                   "!a", "!*/x.md", "b/*", "!b/b"]), max_size=5)


@settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
@given(_TREE, _RULES)
def test_walk_agrees_with_matches(tmp_path_factory, files, rules):
    root = tmp_path_factory.mktemp("ctx")
    made: set[str] = set()
    for f in files:
        parts = f.split("/")
        # a name cannot be both a file and a directory
        if any("/".join(parts[:i]) in made for i in range(1, len(parts))) or any(m.startswith(f + "/") for m in made):
            continue
        made.add(f)
        p = root / f
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("x")
    di = DockerIgnore(rules)
    walked = {e.relpath for e in walk_context(root, di) if not e.is_dir}
    assert walked == {f for f in made if not di.matches(f)}
