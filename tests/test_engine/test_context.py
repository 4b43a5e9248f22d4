"""Build contexts: directory, tar (file and stdin, plain and gzip), URL, git; hostile tars refused."""
from __future__ import annotations

import http.server
import io
import os
import tarfile
import threading

import pytest

from executor.engine.context import ContextError, GitSpec, parse_git, prepare_context, resolve_dockerfile
from tests.rig.gitserver import SourceRepo


def _tar_bytes(entries: list[tuple[tarfile.TarInfo, bytes | None]], gz: bool = False) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz" if gz else "w") as tar:
        for info, data in entries:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def _file(name: str, data: bytes, mode: int = 0o644) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    return info, data


def _link(name: str, target: str, kind=tarfile.SYMTYPE) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info, None


def test_directory_and_sub_path(tmp_path):
    (tmp_path / "ctx" / "sub").mkdir(parents=True)
    (tmp_path / "ctx" / "sub" / "a").write_text("a")
    ctx = prepare_context(str(tmp_path / "ctx"), str(tmp_path / "work"), sub_path="sub")
    assert os.listdir(ctx.directory) == ["a"]
    ctx = prepare_context("dir://" + str(tmp_path / "ctx"), str(tmp_path / "work"))
    assert os.path.isdir(os.path.join(ctx.directory, "sub"))


def test_missing_directory_names_it(tmp_path):
    with pytest.raises(ContextError, match="nope: no such directory"):
        prepare_context(str(tmp_path / "nope"), str(tmp_path / "work"))


def test_sub_path_cannot_leave(tmp_path):
    (tmp_path / "ctx").mkdir()
    with pytest.raises(ContextError, match="leaves the context"):
        prepare_context(str(tmp_path / "ctx"), str(tmp_path / "work"), sub_path="../")


@pytest.mark.parametrize("gz", [False, True])
def test_tar_file_and_stdin(tmp_path, gz):
    data = _tar_bytes([_file("Dockerfile", b"FROM scratch\n"), _file("app/x.sh", b"echo\n", 0o755)], gz=gz)
    (tmp_path / "ctx.tar").write_bytes(data)
    ctx = prepare_context(f"tar://{tmp_path}/ctx.tar", str(tmp_path / "work"))
    assert open(os.path.join(ctx.directory, "Dockerfile")).read() == "FROM scratch\n"
    assert os.stat(os.path.join(ctx.directory, "app/x.sh")).st_mode & 0o777 == 0o755
    ctx.close()
    assert not os.path.exists(ctx.directory)
    ctx = prepare_context("tar://stdin", str(tmp_path / "work"), stdin=io.BytesIO(data))
    assert os.path.isfile(os.path.join(ctx.directory, "app/x.sh"))


@pytest.mark.parametrize("entries,message", [
    ([_file("/etc/evil", b"x")], "outside the context"),
    ([_file("../evil", b"x")], "outside the context"),
    ([_link("up", "/"), _file("up/tmp/evil", b"x")], "through a symlink"),
    ([_link("h", "../../../etc/passwd", tarfile.LNKTYPE)], "hard link"),
])
def test_hostile_tars_refused(tmp_path, entries, message):
    (tmp_path / "ctx.tar").write_bytes(_tar_bytes(entries))
    before = set(os.listdir(tmp_path))
    with pytest.raises(ContextError, match=message):
        prepare_context(f"tar://{tmp_path}/ctx.tar", str(tmp_path / "work"))
    assert set(os.listdir(tmp_path)) - before <= {"work"}
    assert not os.path.exists("/tmp/evil") or os.path.getmtime("/tmp/evil") < os.path.getmtime(tmp_path / "ctx.tar")


def test_url_context(tmp_path):
    data = _tar_bytes([_file("Dockerfile", b"FROM scratch\n")], gz=True)
    (tmp_path / "srv").mkdir()
    (tmp_path / "srv" / "ctx.tar.gz").write_bytes(data)
    handler = lambda *a, **k: http.server.SimpleHTTPRequestHandler(*a, directory=str(tmp_path / "srv"), **k)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        ctx = prepare_context(f"{base}/ctx.tar.gz", str(tmp_path / "work"))
        assert os.path.isfile(os.path.join(ctx.directory, "Dockerfile"))
        with pytest.raises(ContextError, match="HTTP 404"):
            prepare_context(f"{base}/missing.tar.gz", str(tmp_path / "work"))
        path = resolve_dockerfile(f"{base}/ctx.tar.gz", ctx.directory, str(tmp_path / "work2"))
        assert os.path.getsize(path) == len(data)
    finally:
        server.shutdown()


def test_parse_git():
    # kaniko's git:// is fetched over https:// (GIT_PULL_METHOD=http for http://); #ref#commit; kiln's :subdir
    assert parse_git("git://h/r.git#main:sub/dir/") == GitSpec("https://h/r.git", "main", None, "sub/dir")
    g = parse_git("git+https://h/r.git#refs/heads/dev#0123abcd")
    assert (g.url, g.ref, g.commit, g.subdir) == ("https://h/r.git", "refs/heads/dev", "0123abcd", "")
    assert parse_git("git://h/r").ref is None


def test_git_context_branch_commit_subdir(tmp_path, tmp_path_factory, git_server):
    """The clone itself is tests/test_engine/test_git_context.py's; here: the context is a directory of the
    commit asked for, narrowed by :subdir, with its .git (as kaniko's), and a missing repository is one line."""
    repo = SourceRepo(git_server.root, "context/repo", str(tmp_path_factory.mktemp("work")))
    first = repo.commit({"Dockerfile": "FROM scratch\n", "sub/only-in-first": "1"}, "first")
    repo.branch("feature")
    repo.commit({"sub/only-in-first": None, "sub/second": "2"}, "second")
    repo.publish()
    url = git_server.url("context/repo")
    ctx = prepare_context(url, str(tmp_path / "w"), env={})
    assert sorted(os.listdir(os.path.join(ctx.directory, "sub"))) == ["second"]
    assert os.path.isdir(os.path.join(ctx.directory, ".git")), "kaniko's git context keeps .git"
    ctx = prepare_context(f"{url}#feature:sub", str(tmp_path / "w"), env={})
    assert os.listdir(ctx.directory) == ["only-in-first"]
    ctx = prepare_context(f"{url}#{first[:12]}", str(tmp_path / "w"), env={})
    assert sorted(os.listdir(os.path.join(ctx.directory, "sub"))) == ["only-in-first"]
    before = sorted(os.listdir(tmp_path / "w"))
    with pytest.raises(ContextError) as err:
        prepare_context(url.replace("repo.git", "nothere.git"), str(tmp_path / "w"), env={})
    assert str(err.value) == (f"context {url.replace('repo.git', 'nothere.git')}: no git repository at this URL "
                              "(HTTP 404); if it is private, set GIT_USERNAME and GIT_PASSWORD, or GIT_TOKEN")
    assert sorted(os.listdir(tmp_path / "w")) == before, "the failed clone left its directory"
