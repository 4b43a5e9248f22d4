"""Issue 12: kaniko's `--git` options and private git contexts, end to end through the real CLI against the
rig's git smart-HTTP server (`git http-backend`, basic auth for `private/...`). The context is kaniko's
`git://HOST/PATH` (fetched over HTTPS, or HTTP with `GIT_PULL_METHOD=http`); the image's `COPY . /src` shows
the clone, `.git` included (as kaniko's), and the server's log shows what was asked for."""
from __future__ import annotations

from dataclasses import dataclass

import pytest

from tests.rig.gitserver import GitServer, SourceRepo, closed_port
from tests.rig.judge import ImageReport, judge_registry_image

MARKER = "kiln-git-context-ran-the-run"


@dataclass
class Repos:
    main: str          # private/e2e-app: main (3 commits), dev (4)
    dev: str
    lib: str           # the commit private/e2e-super records for libs/lib


@pytest.fixture(scope="module")
def repos(git_server: GitServer, base_images, tmp_path_factory) -> Repos:
    work = str(tmp_path_factory.mktemp("e2e-git-work"))
    dockerfile = f"FROM {base_images.busybox_amd64}\nCOPY . /src\nRUN echo {MARKER} > /ran\n"
    app = SourceRepo(git_server.root, "private/e2e-app", work)
    app.commit({"Dockerfile": dockerfile, "app.txt": "1"}, "one")
    app.commit({"app.txt": "2"}, "two")
    app.branch("dev")
    main = app.commit({"app.txt": "3"}, "three")
    app.checkout("dev")
    app.commit({"dev.txt": "dev 1"}, "dev one")
    dev = app.commit({"dev.txt": "dev 2"}, "dev two")
    app.checkout("main")
    app.publish()
    lib = SourceRepo(git_server.root, "private/e2e-lib", work)
    lib_commit = lib.commit({"lib.txt": "the library"}, "lib")
    lib.publish()
    sup = SourceRepo(git_server.root, "private/e2e-super", work)
    sup.commit({"Dockerfile": dockerfile, "app.txt": "super"}, "super")
    sup.submodule("libs/lib", "../e2e-lib.git", lib_commit)
    sup.commit({}, "add libs/lib")
    sup.publish()
    return Repos(main, dev, lib_commit)


def _context(server: GitServer, repo: str, fragment: str = "") -> str:
    """kaniko's form: git://HOST/PATH (the scheme comes from GIT_PULL_METHOD)."""
    return f"git://{server.host}/{repo}.git{fragment}"


def _build(kiln, registry, context: str, tag: str, *args: str, env: dict[str, str] | None = None):
    dest = registry.ref(f"e2e/git-{tag}:v1")
    run = kiln.build(kiln.context({}), "--destination", dest, "--insecure-registry", registry.host, *args,
                     env=env, context_override=context)
    return run, dest


def _image(registry, dest: str) -> ImageReport:
    return judge_registry_image(registry, dest, unpack=False)


def _git_files(image: ImageReport, prefix: str) -> list[str]:
    return sorted(p[len(prefix):] for p in image.filesystem() if p.startswith(prefix))


def _error_line(run, traceback: bool = False) -> str:
    assert run.returncode == 1, run.stderr[-3000:]
    assert MARKER not in run.stdout + run.stderr, "a RUN ran"
    assert traceback or "Traceback" not in run.stderr
    lines = [line for line in run.stderr.strip().splitlines() if "level=error" in line]
    assert len(lines) == 1, run.stderr[-3000:]
    message = lines[0].split(' msg="', 1)[1]
    assert message.endswith('"'), lines[0]
    return message[:-1].replace('\\"', '"')


def _nowhere(secret: str, run, image: ImageReport | None = None) -> None:
    """The secret is in no log line (stdout, stderr) and, for a built image, in no layer, config or manifest."""
    assert secret not in run.stdout and secret not in run.stderr, "a credential reached the log"
    if image is not None:
        assert secret not in str(image.config) and secret not in str(image.manifest)
        for layer in image.layers:
            with open(layer.tar_path, "rb") as f:
                assert secret.encode() not in f.read(), f"a credential is in layer {layer.index}"


def test_private_repository_with_username_and_password(kiln, plain_registry, git_server, git_users, repos):
    git_server.clear()
    env = {"GIT_USERNAME": git_users.username, "GIT_PASSWORD": git_users.password, "GIT_PULL_METHOD": "http"}
    run, dest = _build(kiln, plain_registry, _context(git_server, "private/e2e-app"), "userpass",
                       "--verbosity=debug", env=env)
    run.check()
    image = _image(plain_registry, dest)
    assert image.read("src/app.txt") == b"3" and image.read("ran") == f"{MARKER}\n".encode()
    assert image.read("src/.git/HEAD") == b"ref: refs/heads/main\n"
    config = image.read("src/.git/config").decode()
    assert f"url = {git_server.url('private/e2e-app')}" in config and git_users.password not in config
    assert f"Cloning {git_server.url('private/e2e-app')} (branch main)" in run.stderr
    assert {r.user for r in git_server.requests("private/e2e-app") if r.status == 200} == {git_users.username}
    _nowhere(git_users.password, run, image)


def test_private_repository_with_a_token(kiln, plain_registry, git_server, git_users, repos):
    git_server.clear()
    env = {"GIT_TOKEN": git_users.token, "GIT_PULL_METHOD": "http"}
    run, dest = _build(kiln, plain_registry, _context(git_server, "private/e2e-app"), "token", "--verbosity=debug",
                       env=env)
    run.check()
    assert _image(plain_registry, dest).read("src/app.txt") == b"3"
    # kaniko's getGitAuth: the token is the basic-auth user name, with an empty password
    assert {r.user for r in git_server.requests("private/e2e-app") if r.status == 200} == {git_users.token}
    _nowhere(git_users.token, run, _image(plain_registry, dest))


def test_credentials_in_the_context_url(kiln, plain_registry, git_server, git_users, repos):
    """kaniko's README: `git://TOKEN@github.com/acme/myproject.git`; user:password works the same. The URL is
    masked in every log line and the clone's .git/config holds the URL without them."""
    context = f"git://{git_users.username}:{git_users.password}@{git_server.host}/private/e2e-app.git#main"
    run, dest = _build(kiln, plain_registry, context, "urlcreds", "--verbosity=debug",
                       env={"GIT_PULL_METHOD": "http"})
    run.check()
    image = _image(plain_registry, dest)
    assert image.read("src/app.txt") == b"3"
    assert f"url = {git_server.url('private/e2e-app')}\n" in image.read("src/.git/config").decode()
    _nowhere(git_users.password, run, image)


@pytest.mark.parametrize("case", ["wrong-password", "no-credentials", "unknown-branch", "unreachable"])
def test_failures_are_one_line_naming_the_url(kiln, plain_registry, git_server, git_users, repos, case):
    url = git_server.url("private/e2e-app")
    context = _context(git_server, "private/e2e-app")
    env = {"GIT_USERNAME": git_users.username, "GIT_PASSWORD": git_users.password, "GIT_PULL_METHOD": "http"}
    args: tuple[str, ...] = ()
    if case == "wrong-password":
        env["GIT_PASSWORD"] = "not-" + git_users.password
        expected = (f"context {context} ({url}): the git server refused the credentials from GIT_USERNAME and "
                    f"GIT_PASSWORD (user {git_users.username}) (HTTP 401); check them")
    elif case == "no-credentials":
        env = {"GIT_PULL_METHOD": "http"}
        expected = (f"context {context} ({url}): the git server wants credentials (HTTP 401); set GIT_USERNAME and "
                    "GIT_PASSWORD, or GIT_TOKEN")
    elif case == "unknown-branch":
        args = ("--git", "branch=nope")
        expected = (f"context {context} ({url}): invalid branch 'nope' (--git branch=): no branch or tag 'nope'; "
                    "branches: dev, main; tags: none")
    else:
        port = closed_port()
        context = f"git://127.0.0.1:{port}/private/e2e-app.git"
        expected = (f"context {context} (http://127.0.0.1:{port}/private/e2e-app.git): cannot reach git server "
                    f"127.0.0.1:{port} (connection refused)")
    run = kiln.build(kiln.context({}), "--no-push", *args, env=env, context_override=context)
    assert _error_line(run) == expected
    if case == "wrong-password":
        # the library's text and the traceback are there at debug level, the password is not
        debug = kiln.build(kiln.context({}), "--no-push", "--verbosity=debug", env=env, context_override=context)
        assert _error_line(debug, traceback=True).startswith(expected + "\\nTraceback")
        assert "HTTPUnauthorized" in debug.stderr
        _nowhere(env["GIT_PASSWORD"], debug)


def test_branch_option_replaces_the_urls_branch(kiln, plain_registry, git_server, git_users, repos):
    git_server.clear()
    run, dest = _build(kiln, plain_registry, _context(git_server, "private/e2e-app", "#refs/heads/main"), "branch",
                       "--git", "branch=dev", env={"GIT_TOKEN": git_users.token, "GIT_PULL_METHOD": "http"})
    run.check()
    image = _image(plain_registry, dest)
    assert image.read("src/dev.txt") == b"dev 2" and image.read("src/.git/HEAD") == b"ref: refs/heads/dev\n"
    assert "--git branch=dev replaces refs/heads/main, named by the context URL" in run.stderr
    # not single-branch, whole history: every branch asked for, no deepen, no .git/shallow
    (fetch,) = git_server.fetches("private/e2e-app")
    assert sorted(fetch.wants) == sorted([repos.main, repos.dev]) and fetch.deepen is None
    assert _git_files(image, "src/.git/refs/remotes/origin/") == ["HEAD", "dev", "main"]
    assert "src/.git/shallow" not in image.filesystem()


def test_single_branch_and_depth(kiln, plain_registry, git_server, git_users, repos):
    git_server.clear()
    run, dest = _build(kiln, plain_registry, _context(git_server, "private/e2e-app"), "depth",
                       "--git", "branch=dev", "--git", "single-branch=true", "--git", "depth=1",
                       env={"GIT_TOKEN": git_users.token, "GIT_PULL_METHOD": "http"})
    run.check()
    image = _image(plain_registry, dest)
    assert image.read("src/dev.txt") == b"dev 2"
    (fetch,) = git_server.fetches("private/e2e-app")
    assert fetch.wants == [repos.dev] and fetch.deepen == 1, "one branch, one commit deep"
    assert image.read("src/.git/shallow").decode().split() == [repos.dev]
    assert _git_files(image, "src/.git/refs/remotes/origin/") == ["dev"]
    assert "+refs/heads/dev:refs/remotes/origin/dev" in image.read("src/.git/config").decode()


def test_recurse_submodules(kiln, plain_registry, git_server, git_users, repos):
    git_server.clear()
    run, dest = _build(kiln, plain_registry, _context(git_server, "private/e2e-super"), "submodules",
                       "--git", "recurse-submodules=true", env={"GIT_TOKEN": git_users.token, "GIT_PULL_METHOD": "http"})
    run.check()
    image = _image(plain_registry, dest)
    assert image.read("src/libs/lib/lib.txt") == b"the library"
    assert image.read("src/libs/lib/.git") == b"gitdir: ../../.git/modules/libs/lib\n"
    assert image.read("src/.git/modules/libs/lib/HEAD").decode().strip() == repos.lib
    # the submodule on the same server got the context's credentials
    assert {r.user for r in git_server.requests("private/e2e-lib") if r.status == 200} == {git_users.token}


def test_insecure_skip_tls(kiln, plain_registry, git_server_tls, base_images, tmp_path_factory):
    repo = SourceRepo(git_server_tls.root, "e2e/tls-app", str(tmp_path_factory.mktemp("e2e-tls-work")))
    repo.commit({"Dockerfile": f"FROM {base_images.busybox_amd64}\nCOPY . /src\n", "over.txt": "tls"})
    repo.publish()
    context = _context(git_server_tls, "e2e/tls-app")          # git:// is fetched over https://
    env = {"SSL_CERT_FILE": "", "SSL_CERT_DIR": ""}
    run = kiln.build(kiln.context({}), "--no-push", env=env, context_override=context)
    line = _error_line(run)
    assert line == (f"context {context} ({git_server_tls.url('e2e/tls-app')}): cannot reach git server "
                         f"{git_server_tls.host} (TLS: certificate verify failed: unable to get local issuer "
                         "certificate; pass --git insecure-skip-tls=true to skip the check, or trust its CA "
                         "(SSL_CERT_FILE))"), line
    assert git_server_tls.fetches("e2e/tls-app") == []
    run, dest = _build(kiln, plain_registry, context, "tls", "--git", "insecure-skip-tls=true", env=env)
    run.check()
    assert _image(plain_registry, dest).read("src/over.txt") == b"tls"
    assert f"TLS certificate of {git_server_tls.host} is not verified (--git insecure-skip-tls=true)" in run.stderr


def test_the_context_ca_in_ssl_cert_file_is_trusted_without_the_flag(kiln, git_server_tls, base_images,
                                                                      tmp_path_factory):
    """kaniko (Go) trusts SSL_CERT_FILE; so does kiln's git transport (OpenSSL's default paths)."""
    repo = SourceRepo(git_server_tls.root, "e2e/tls-ca", str(tmp_path_factory.mktemp("e2e-tls-ca")))
    repo.commit({"Dockerfile": f"FROM {base_images.busybox_amd64}\nCOPY . /src\n"})
    repo.publish()
    run = kiln.build(kiln.context({}), "--no-push", env={"SSL_CERT_FILE": git_server_tls.ca_path},
                     context_override=_context(git_server_tls, "e2e/tls-ca"))
    run.check()
    assert len(git_server_tls.fetches("e2e/tls-ca")) == 1
