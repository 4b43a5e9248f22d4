"""Git build contexts against a real smart-HTTP server (the rig's `git http-backend`), cloned in-process with
`prepare_context`; every clone is then read with the real `git` CLI (what a `RUN git ...` in the image sees)
and the server's request log says what was asked for."""
from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass

import pytest

from executor.engine.context import ContextError, prepare_context
from executor.options import GitOptions
from tests.rig.gitserver import GitServer, SourceRepo, closed_port, start_git_server


def git(directory: str, *args: str) -> str:
    proc = subprocess.run(["git", "-C", directory, *args], capture_output=True, text=True,
                          env={"PATH": os.environ["PATH"], "HOME": directory, "GIT_CONFIG_NOSYSTEM": "1"})
    assert proc.returncode == 0, f"git {' '.join(args)}: {proc.stderr}"
    return proc.stdout.strip()


def files(directory: str) -> dict[str, str]:
    out = {}
    for base, dirs, names in os.walk(directory):
        dirs[:] = [d for d in dirs if d != ".git"]
        for name in names:
            if name == ".git":
                continue
            path = os.path.join(base, name)
            with open(path) as f:
                out[os.path.relpath(path, directory)] = f.read()
    return out


@dataclass
class Repos:
    server: GitServer
    app: str                   # "engine/app": main (3 commits), dev, tag v1 (annotated), refs/pull/7/head
    first: str
    second: str
    main: str
    dev: str
    pull: str
    private: str               # "private/engine-app": one commit
    super_: str                # "private/engine-super" with submodule libs/lib (-> ../engine-lib.git, nested)
    lib: str
    leaf: str


@pytest.fixture(scope="module")
def repos(git_server: GitServer, tmp_path_factory) -> Repos:
    work = str(tmp_path_factory.mktemp("git-work"))
    app = SourceRepo(git_server.root, "engine/app", work)
    first = app.commit({"Dockerfile": "FROM scratch\n", "sub/only-in-first": "1"}, "first")
    app.tag("v1", message="release 1")
    second = app.commit({"sub/only-in-first": None, "sub/second": "2"}, "second")
    app.branch("dev")
    app.checkout("dev")
    dev = app.commit({"dev.txt": "dev"}, "on dev")
    app.checkout("main")
    main = app.commit({"third.txt": "3"}, "third")
    app.git("checkout", "-q", "-b", "pr", first)
    pull = app.commit({"pr.txt": "pull request"}, "pull request")
    app.checkout("main")
    app.git("branch", "-D", "pr")
    app.ref("refs/pull/7/head", pull)
    app.publish()

    private = SourceRepo(git_server.root, "private/engine-app", work)
    private.commit({"Dockerfile": "FROM scratch\n", "secret.txt": "private"}, "private")
    private.publish()

    leaf = SourceRepo(git_server.root, "private/engine-leaf", work)
    leaf_commit = leaf.commit({"leaf.txt": "leaf"}, "leaf")
    leaf.publish()
    lib = SourceRepo(git_server.root, "private/engine-lib", work)
    lib.commit({"lib.txt": "lib v1"}, "lib v1")
    lib.submodule("vendor/leaf", "../engine-leaf.git", leaf_commit)
    lib_commit = lib.commit({"lib.txt": "lib v2"}, "lib v2 with leaf")
    lib.commit({"lib.txt": "lib v3, not recorded"}, "lib v3")       # the superproject records v2
    lib.publish()
    sup = SourceRepo(git_server.root, "private/engine-super", work)
    sup.commit({"Dockerfile": "FROM scratch\n"}, "super")
    sup.submodule("libs/lib", "../engine-lib.git", lib_commit)
    sup.commit({}, "add lib")
    sup.publish()
    return Repos(git_server, git_server.url("engine/app"), first, second, main, dev, pull,
                 git_server.url("private/engine-app"), git_server.url("private/engine-super"), lib_commit, leaf_commit)


@pytest.fixture
def clone(tmp_path, git_users):
    """prepare_context with the rig's credentials unless `env` is given."""
    def run(spec: str, env: dict[str, str] | None = None, **options) -> str:
        if env is None:
            env = {"GIT_USERNAME": git_users.username, "GIT_PASSWORD": git_users.password}
        return prepare_context(spec, str(tmp_path / "work"), git=GitOptions(**options), env=env).directory
    return run


def test_default_clone_is_a_whole_git_clone(repos, clone):
    repos.server.clear()
    ctx = clone(repos.app)
    assert files(ctx) == {"Dockerfile": "FROM scratch\n", "sub/second": "2", "third.txt": "3"}
    assert git(ctx, "status", "--porcelain") == ""
    assert git(ctx, "symbolic-ref", "HEAD") == "refs/heads/main" and git(ctx, "rev-parse", "HEAD") == repos.main
    assert git(ctx, "branch", "-r").split() == ["origin/HEAD", "->", "origin/main", "origin/dev", "origin/main"]
    assert git(ctx, "describe", "--tags") == f"v1-2-g{repos.main[:7]}"
    assert git(ctx, "rev-list", "--count", "HEAD") == "3"
    assert git(ctx, "config", "remote.origin.url") == repos.app
    assert git(ctx, "config", "branch.main.merge") == "refs/heads/main"
    git(ctx, "fsck", "--no-dangling")
    (fetch,) = repos.server.fetches("engine/app")
    tag = git(ctx, "rev-parse", "refs/tags/v1")
    assert sorted(fetch.wants) == sorted([repos.main, repos.dev, tag]) and fetch.deepen is None


@pytest.mark.parametrize("fragment,expected,head", [
    ("#dev", {"dev.txt", "sub/second"}, "refs/heads/dev"),
    ("#refs/heads/dev", {"dev.txt", "sub/second"}, "refs/heads/dev"),
    ("#v1", {"sub/only-in-first"}, None),
    ("#refs/tags/v1", {"sub/only-in-first"}, None),
    ("#refs/pull/7/head", {"pr.txt", "sub/only-in-first"}, None),
    ("#pull/7/head:sub", {"only-in-first"}, None),
])
def test_ref_forms(repos, clone, fragment, expected, head):
    ctx = clone(repos.app + fragment)
    assert set(files(ctx)) - {"Dockerfile"} == expected
    if head:
        assert git(os.path.join(ctx, ".." if ":" in fragment else ""), "symbolic-ref", "HEAD") == head
    else:
        top = git(ctx, "rev-parse", "--show-toplevel")
        assert open(os.path.join(top, ".git", "HEAD")).read().strip() == git(ctx, "rev-parse", "HEAD"), "detached"


def test_commit_forms(repos, clone):
    ctx = clone(f"{repos.app}#{repos.first}")
    assert set(files(ctx)) == {"Dockerfile", "sub/only-in-first"}
    assert git(ctx, "rev-parse", "HEAD") == repos.first and git(ctx, "status", "--porcelain") == ""
    ctx = clone(f"{repos.app}#{repos.second[:9]}")
    assert git(ctx, "rev-parse", "HEAD") == repos.second
    # kaniko's #ref#commit: the branch is cloned (its ref kept), the commit checked out, detached
    ctx = clone(f"{repos.app}#refs/heads/dev#{repos.first[:10]}")
    assert git(ctx, "rev-parse", "HEAD") == repos.first and git(ctx, "rev-parse", "refs/heads/dev") == repos.dev
    with pytest.raises(ContextError, match=f"commit {'0' * 40} not found in the repository"):
        clone(f"{repos.app}#{'0' * 40}")
    with pytest.raises(ContextError, match="no commit 0000000 in the branches fetched; give the full commit id"):
        clone(f"{repos.app}#0000000")


def test_depth_and_single_branch_shape_the_clone(repos, clone):
    repos.server.clear()
    ctx = clone(repos.app, depth=1, single_branch=True)
    assert git(ctx, "rev-list", "--count", "HEAD") == "1"
    assert sorted(open(os.path.join(ctx, ".git", "shallow")).read().split()) == sorted([repos.main, repos.first])
    assert git(ctx, "branch", "-r").split() == ["origin/HEAD", "->", "origin/main", "origin/main"]
    assert git(ctx, "config", "remote.origin.fetch") == "+refs/heads/main:refs/remotes/origin/main"
    (fetch,) = repos.server.fetches("engine/app")
    assert fetch.deepen == 1 and repos.dev not in fetch.wants and repos.main in fetch.wants
    full = clone(repos.app)
    assert not os.path.exists(os.path.join(full, ".git", "shallow"))
    assert repos.server.fetches("engine/app")[-1].deepen is None


def test_a_commit_outside_the_fetched_history_is_asked_for_by_id(repos, clone):
    repos.server.clear()
    ctx = clone(f"{repos.app}#{repos.pull}", depth=1, single_branch=True)
    assert git(ctx, "rev-parse", "HEAD") == repos.pull and "pr.txt" in files(ctx)
    first, second = repos.server.fetches("engine/app")
    assert repos.pull not in first.wants and second.wants == [repos.pull] and second.deepen == 1


def test_branch_option(repos, clone, caplog):
    ctx = clone(f"{repos.app}#refs/heads/main", branch="dev")
    assert "dev.txt" in files(ctx) and git(ctx, "symbolic-ref", "HEAD") == "refs/heads/dev"
    assert "--git branch=dev replaces refs/heads/main, named by the context URL" in caplog.text
    ctx = clone(repos.app, branch="v1")                  # a tag is taken too (kaniko's getGitReferenceName)
    assert git(ctx, "rev-parse", "HEAD") == repos.first
    with pytest.raises(ContextError) as err:
        clone(repos.app, branch="nope")
    assert str(err.value) == (f"context {repos.app}: invalid branch 'nope' (--git branch=): no branch or tag "
                              "'nope'; branches: dev, main; tags: v1")


def test_private_repository_credentials(repos, clone, git_users):
    server = repos.server
    server.clear()
    assert files(clone(repos.private)) == {"Dockerfile": "FROM scratch\n", "secret.txt": "private"}
    assert {r.user for r in server.requests("private/engine-app") if r.status == 200} == {git_users.username}
    ctx = clone(repos.private, env={"GIT_TOKEN": git_users.token, "GIT_USERNAME": "ignored", "GIT_PASSWORD": "x"})
    assert "secret.txt" in files(ctx) and server.requests()[-1].user == git_users.token
    # the URL's user information, when no GIT_* is set; the clone's config never holds it
    at = repos.private.replace("://", f"://{git_users.username}:{git_users.password}@")
    ctx = clone(at, env={})
    assert git(ctx, "config", "remote.origin.url") == repos.private
    assert git_users.password not in open(os.path.join(ctx, ".git", "config")).read()


@pytest.mark.parametrize("env,message", [
    ({}, "the git server wants credentials (HTTP 401); set GIT_USERNAME and GIT_PASSWORD, or GIT_TOKEN"),
    ({"GIT_USERNAME": "{user}", "GIT_PASSWORD": "wrong-password"},
     "the git server refused the credentials from GIT_USERNAME and GIT_PASSWORD (user {user}) (HTTP 401); check them"),
    ({"GIT_TOKEN": "tok_wrong"}, "the git server refused the credentials from GIT_TOKEN (HTTP 401); check them"),
])
def test_refused_credentials_are_one_clear_line(repos, clone, git_users, env, message):
    env = {k: v.format(user=git_users.username) for k, v in env.items()}
    with pytest.raises(ContextError) as err:
        clone(repos.private, env=env)
    assert str(err.value) == f"context {repos.private}: {message.format(user=git_users.username)}"


def test_url_credentials_are_masked_in_messages(repos, clone, git_users):
    at = repos.private.replace("://", f"://{git_users.username}:not-the-password@")
    with pytest.raises(ContextError) as err:
        clone(at, env={})
    assert str(err.value) == (f"context {repos.private.replace('://', f'://{git_users.username}:***@')} "
                              f"({repos.private}): the git server refused the credentials from the context URL "
                              f"(user {git_users.username}) (HTTP 401); check them")


def test_unreachable_missing_and_not_tls(repos, clone, git_server_tls):
    port = closed_port()
    with pytest.raises(ContextError) as err:
        clone(f"git://127.0.0.1:{port}/x.git")
    assert str(err.value) == (f"context git://127.0.0.1:{port}/x.git (https://127.0.0.1:{port}/x.git): "
                              f"cannot reach git server 127.0.0.1:{port} (connection refused)")
    with pytest.raises(ContextError, match=r"no git repository at this URL \(HTTP 404\); if it is private, check "
                                           "that the credentials from GIT_USERNAME and GIT_PASSWORD may read it"):
        clone(repos.server.url("engine/nothere"))
    plain_to_tls = git_server_tls.url("engine/app").replace("https://", "http://")
    with pytest.raises(ContextError, match=r"cannot reach git server 127\.0\.0\.1:\d+ \(connection reset\)$"):
        clone(plain_to_tls)


def test_insecure_skip_tls(repos, clone, git_server_tls, tmp_path_factory):
    repo = SourceRepo(git_server_tls.root, "engine/tls", str(tmp_path_factory.mktemp("tls-work")))
    repo.commit({"Dockerfile": "FROM scratch\n", "over-tls": "yes"})
    repo.publish()
    url = git_server_tls.url("engine/tls")
    with pytest.raises(ContextError) as err:
        clone(url)
    assert str(err.value) == (f"context {url}: cannot reach git server {git_server_tls.host} (TLS: certificate "
                              "verify failed: unable to get local issuer certificate; pass --git insecure-skip-tls=true "
                              "to skip the check, or trust its CA (SSL_CERT_FILE))")
    assert git_server_tls.fetches("engine/tls") == [], "nothing was fetched without a verified server"
    assert files(clone(url, insecure_skip_tls=True))["over-tls"] == "yes"


#: what `git config -f .gitmodules` wrote for the lib's submodule (tests/rig/gitserver.py SourceRepo.submodule)
LEAF_GITMODULES = '[submodule "vendor/leaf"]\n\tpath = vendor/leaf\n\turl = ../engine-leaf.git\n'


def test_submodules_recursively_with_the_contexts_credentials(repos, clone):
    repos.server.clear()
    flat = clone(repos.super_)
    assert os.listdir(os.path.join(flat, "libs", "lib")) == [] and "lib.txt" not in files(flat)
    ctx = clone(repos.super_, recurse_submodules=True)
    assert files(ctx) == {"Dockerfile": "FROM scratch\n", ".gitmodules": files(flat)[".gitmodules"],
                          "libs/lib/lib.txt": "lib v2", "libs/lib/.gitmodules": LEAF_GITMODULES,
                          "libs/lib/vendor/leaf/leaf.txt": "leaf"}
    # " " first: checked out at the commit the superproject records (git writes "-" when not, "+" when another)
    status = subprocess.run(["git", "-C", ctx, "submodule", "status", "--recursive"], capture_output=True,
                            text=True, check=True).stdout.splitlines()
    assert [line.split()[:2] for line in status] == [[repos.lib, "libs/lib"], [repos.leaf, "libs/lib/vendor/leaf"]]
    assert all(line.startswith(" ") for line in status), status
    assert git(ctx, "status", "--porcelain") == "" and git(os.path.join(ctx, "libs/lib"), "status", "--porcelain") == ""
    assert git(ctx, "config", "submodule.libs/lib.url") == repos.server.url("private/engine-lib")
    assert {r.user for r in repos.server.requests("private/engine-leaf")} != {None}


def test_submodule_credentials_stay_on_their_origin(repos, clone, git_users, tmp_path_factory):
    other = start_git_server(str(tmp_path_factory.mktemp("other-git")), users=git_users.as_users())
    try:
        work = str(tmp_path_factory.mktemp("other-work"))
        lib = SourceRepo(other.root, "private/lib", work)
        lib_commit = lib.commit({"lib.txt": "elsewhere"})
        lib.publish()
        sup = SourceRepo(repos.server.root, "private/engine-cross", work)
        sup.commit({"Dockerfile": "FROM scratch\n"})
        sup.submodule("lib", other.url("private/lib"), lib_commit)
        sup.commit({}, "add lib")
        sup.publish()
        with pytest.raises(ContextError) as err:
            clone(repos.server.url("private/engine-cross"), recurse_submodules=True)
        assert str(err.value).endswith(f"submodule lib ({other.url('private/lib')}): the git server wants "
                                       "credentials (HTTP 401); set GIT_USERNAME and GIT_PASSWORD, or GIT_TOKEN")
        assert all(r.user is None for r in other.requests()), "credentials went to another origin"
    finally:
        other.stop()


@pytest.mark.parametrize("name,url,message", [
    ("../../hooks", "../engine-app.git", "submodule name '../../hooks' (path evil) is not allowed"),
    ("evil", "file:///etc", "submodule evil: cannot clone 'file:///etc': kiln clones submodules over https://"),
    ("evil", "git@github.com:acme/x.git", "submodule evil: cannot clone 'git@github.com:acme/x.git'"),
])
def test_hostile_or_unsupported_submodules_are_refused(repos, clone, tmp_path_factory, name, url, message):
    repo = SourceRepo(repos.server.root, f"engine/hostile-{abs(hash(name + url))}", str(tmp_path_factory.mktemp("h")))
    repo.commit({"Dockerfile": "FROM scratch\n"})
    repo.submodule("evil", url, repos.first, name=name)
    repo.commit({}, "add")
    repo.publish()
    assert "evil" in os.listdir(clone(repos.server.url(repo.name)))      # refused only when asked to recurse
    with pytest.raises(ContextError, match=message.replace("(", r"\(").replace(")", r"\)")):
        clone(repos.server.url(repo.name), recurse_submodules=True)
