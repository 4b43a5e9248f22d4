"""ADD of URLs against a stdlib http.server on 127.0.0.1: name, mode 0600, Last-Modified, checksum."""
from __future__ import annotations

import gzip
import hashlib
import http.server
import io
import os
import tarfile
import threading
from collections.abc import Iterator

import pytest

from executor.commands.copying.url import fetch_url, filename_for
from executor.commands.copying.files import CopyError, CopyRequest, copy_into_root
from tests.test_copy.helpers import entry, names

LAST_MODIFIED = "Wed, 21 Oct 2015 07:28:00 GMT"
LM_EPOCH = 1445412480


def _tgz() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        ti = tarfile.TarInfo("inside")
        ti.size = 1
        tar.addfile(ti, io.BytesIO(b"i"))
    return gzip.compress(buf.getvalue())


ROUTES: dict[str, tuple[int, dict[str, str], bytes]] = {
    "/files/tool.sh": (200, {"Last-Modified": LAST_MODIFIED}, b"#!/bin/sh\necho hi\n"),
    "/plain": (200, {}, b"no headers"),
    "/download/": (200, {"Content-Disposition": 'attachment; filename="report.csv"'}, b"a,b\n"),
    "/": (200, {}, b"index"),
    "/pkg.tar.gz": (200, {"Last-Modified": "garbage"}, _tgz()),
    "/missing": (404, {}, b"nope"),
}


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802
        status, headers, body = ROUTES.get(self.path.split("?")[0], (404, {}, b""))
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def req(d, sources, dest, **kw) -> CopyRequest:
    return CopyRequest(sources=sources, dest=dest, source_root=d.ctx, root=d.root, is_add=True, **kw)


def test_fetch_url_name_mode_and_last_modified(server, tmp_path) -> None:
    path, mtime = fetch_url(f"{server}/files/tool.sh", str(tmp_path), None)
    assert os.path.basename(path) == "tool.sh" and mtime == LM_EPOCH
    st = os.stat(path)
    assert (st.st_mode & 0o7777, int(st.st_mtime)) == (0o600, LM_EPOCH)
    assert open(path, "rb").read() == ROUTES["/files/tool.sh"][2]


def test_fetch_url_without_last_modified_gets_the_epoch(server, tmp_path) -> None:
    path, mtime = fetch_url(f"{server}/plain", str(tmp_path), None)
    assert mtime == 0 and os.stat(path).st_mtime == 0


def test_filename_rules() -> None:
    assert filename_for("http://h/a/b.txt?x=1", None) == "b.txt"
    assert filename_for("http://h/a/dir/", None) == "dir"
    assert filename_for("http://h/", 'attachment; filename="r.csv"') == "r.csv"
    assert filename_for("http://h", 'attachment; filename="../../etc/x"') == "x"
    assert filename_for("http://h/", None) == "__unnamed__"


def test_add_url_to_dir_and_to_name(server, dirs) -> None:
    paths = copy_into_root(req(dirs, [f"{server}/files/tool.sh"], "/usr/local/bin/"))
    assert paths == ["/usr", "/usr/local", "/usr/local/bin", "/usr/local/bin/tool.sh"]
    e = entry(os.path.join(dirs.root, "usr/local/bin/tool.sh"))
    assert (e.mode, e.uid, e.gid, e.mtime_ns) == (0o600, 0, 0, LM_EPOCH * 10**9)
    copy_into_root(req(dirs, [f"{server}/files/tool.sh"], "/opt/run", chmod=0o755, chown=(5, 6)))
    e = entry(os.path.join(dirs.root, "opt/run"))
    assert (e.mode, e.uid, e.gid) == (0o755, 5, 6)


def test_add_url_uses_content_disposition_when_the_path_has_no_name(server, dirs) -> None:
    copy_into_root(req(dirs, [f"{server}/download/"], "/d/"))
    assert "/d/download" in names(dirs.root)  # the path's last element wins (path.Base)
    copy_into_root(req(dirs, [f"{server}"], "/e/file"))
    assert entry(os.path.join(dirs.root, "e/file")).data == b"index"
    with pytest.raises(CopyError, match="cannot determine a file name"):
        copy_into_root(req(dirs, [f"{server}/"], "/f/"))


def test_remote_archives_are_not_extracted(server, dirs) -> None:
    copy_into_root(req(dirs, [f"{server}/pkg.tar.gz"], "/p/"))
    assert names(dirs.root) == {"/p", "/p/pkg.tar.gz"}
    assert entry(os.path.join(dirs.root, "p/pkg.tar.gz")).mtime_ns == 0  # unparsable Last-Modified


def test_checksum(server, dirs) -> None:
    body = ROUTES["/plain"][2]
    good = "sha256:" + hashlib.sha256(body).hexdigest()
    copy_into_root(req(dirs, [f"{server}/plain"], "/ok", checksum=good))
    assert entry(os.path.join(dirs.root, "ok")).data == body
    bad = "sha256:" + "0" * 64
    with pytest.raises(CopyError, match="digest mismatch"):
        copy_into_root(req(dirs, [f"{server}/plain"], "/bad", checksum=bad))
    assert not os.path.exists(os.path.join(dirs.root, "bad"))
    with pytest.raises(CopyError, match="invalid checksum"):
        copy_into_root(req(dirs, [f"{server}/plain"], "/bad", checksum="md5:abc"))


def test_http_errors_name_the_url(server, dirs) -> None:
    with pytest.raises(CopyError, match=r"/missing: download failed: invalid response status 404"):
        copy_into_root(req(dirs, [f"{server}/missing"], "/x"))


def test_add_unpack_true_extracts_a_remote_archive(server, dirs) -> None:
    copy_into_root(req(dirs, [f"{server}/pkg.tar.gz"], "/u/", unpack=True))
    assert names(dirs.root) == {"/u", "/u/inside"}


def test_git_sources_are_refused_clearly(dirs) -> None:
    from executor.commands.copying.url import is_git_source

    assert is_git_source("https://github.com/moby/buildkit.git#v0.10.1")
    assert is_git_source("git@github.com:moby/buildkit.git")
    assert not is_git_source("https://example.com/file.tar.gz")
    with pytest.raises(CopyError, match="git repositories as sources are not supported"):
        copy_into_root(req(dirs, ["https://127.0.0.1:1/repo.git"], "/src/"))
