"""The pure rules of git build contexts: URL and fragment (kaniko's git.go), credentials (getGitAuth), what a
clone fetches and checks out (gitplan), submodule URLs, and which values the log masks."""
from __future__ import annotations

import pytest

from executor.engine.gitplan import GitRefError, RemoteRefs, plan_fetch
from executor.engine.gitspec import (GitSpec, GitSpecError, credentials, is_git_context, parse_git, redact_context,
                                     redact_url, resolve_submodule_url, same_origin, valid_submodule_name)
from executor.masking import git_credential_values
from executor.options import GitOptions

MAIN, DEV, V1, V1_COMMIT, PULL = "a" * 40, "b" * 40, "c" * 40, "d" * 40, "e" * 40


# ---- the context URL --------------------------------------------------------------------------------------


@pytest.mark.parametrize("spec,env,url", [
    ("git://github.com/acme/app.git", {}, "https://github.com/acme/app.git"),        # kaniko: https by default
    ("git://h/app.git", {"GIT_PULL_METHOD": "http"}, "http://h/app.git"),
    ("git://h/app.git", {"GIT_PULL_METHOD": "ssh"}, "https://h/app.git"),         # unsupported: https
    ("git+https://h:8443/app.git", {"GIT_PULL_METHOD": "http"}, "https://h:8443/app.git"),
    ("git+http://h/app.git", {}, "http://h/app.git"),
    ("git+git://h/app.git", {}, "git://h/app.git"),                                # the daemon protocol, asked for
    ("https://h/app.git", {}, "https://h/app.git"),
])
def test_url_scheme(spec, env, url):
    assert parse_git(spec, env).url == url


@pytest.mark.parametrize("fragment,ref,commit,subdir", [
    ("", None, None, ""),
    ("#main", "main", None, ""),
    ("#refs/heads/dev", "refs/heads/dev", None, ""),
    ("#refs/heads/dev#0123ABCD", "refs/heads/dev", "0123abcd", ""),                  # kaniko's #ref#commit
    ("#main:services/api/", "main", None, "services/api"),                          # BuildKit's :subdir
    ("#:docs", None, None, "docs"),
    ("#refs/heads/dev#0123abcd:sub", "refs/heads/dev", "0123abcd", "sub"),
    ("#" + MAIN, MAIN, None, ""),
])
def test_fragment(fragment, ref, commit, subdir):
    g = parse_git("git://h/r.git" + fragment, {})
    assert (g.url, g.ref, g.commit, g.subdir) == ("https://h/r.git", ref, commit, subdir)


@pytest.mark.parametrize("spec,message", [
    ("git://h/r.git#main#not-a-commit", "'not-a-commit' after the second '#' is not a commit id"),
    ("git://h/r.git#a#0123abcd#x", "expected #REF or #REF#COMMIT"),
    ("git:///r.git", "names no host"),
    ("git://alice:secret@h:notaport/r.git", "is not a valid URL"),
])
def test_fragment_and_url_errors(spec, message):
    with pytest.raises(GitSpecError, match=message) as err:
        parse_git(spec, {})
    assert "secret" not in str(err.value)


def test_user_information_leaves_the_url():
    g = parse_git("git://alice:p%40ss@h:8443/o/r.git#main", {})
    assert (g.url, g.url_username, g.url_password) == ("https://h:8443/o/r.git", "alice", "p@ss")
    assert parse_git("https://TOKEN@h/r.git", {}).url_username == "TOKEN"


@pytest.mark.parametrize("spec,expected", [
    ("git://h/r", True), ("git+https://h/r", True), ("https://h/o/r.git", True), ("https://h/o/r.git#main:sub", True),
    ("http://h/o/r.git/", True), ("https://h/ctx.tar.gz", False), ("https://h/r.git.tar.gz", False),
    ("/workspace", False), ("tar://ctx.tar.gz", False),
])
def test_is_git_context(spec, expected):
    assert is_git_context(spec) is expected


def test_redaction_keeps_the_user_and_hides_the_secret():
    assert redact_url("https://alice:s3cret@h/r.git") == "https://alice:***@h/r.git"
    assert redact_url("https://ghp_token@h:1/r.git") == "https://***@h:1/r.git"
    assert redact_url("https://h/r.git") == "https://h/r.git"
    assert redact_context("git://a:b@c@h/r.git#main") == "git://a:***@h/r.git#main"
    assert redact_context("/workspace/with@sign") == "/workspace/with@sign"


# ---- credentials (kaniko's getGitAuth) ----------------------------------------------------------------------


def _creds(env, url="git://h/r.git"):
    c = credentials(parse_git(url, env), env)
    return c and (c.username, c.password, c.source, c.shown_user)


def test_credentials_rules():
    both = {"GIT_USERNAME": "alice", "GIT_PASSWORD": "pw"}
    assert _creds(both) == ("alice", "pw", "GIT_USERNAME and GIT_PASSWORD", "alice")
    # GIT_TOKEN wins and is the user name, with an empty password (kaniko; what GitHub takes)
    assert _creds({**both, "GIT_TOKEN": "tok"}) == ("tok", "", "GIT_TOKEN", None)
    assert _creds({"GIT_PASSWORD": "pw"}) == ("", "pw", "GIT_USERNAME and GIT_PASSWORD", None)
    assert _creds({"GIT_USERNAME": "tok-as-user"}) == ("tok-as-user", "", "GIT_USERNAME and GIT_PASSWORD", None)
    # the URL's own user information only without GIT_* (go-git: an Auth beats the endpoint's)
    assert _creds({}, "git://bob:urlpw@h/r.git") == ("bob", "urlpw", "the context URL", "bob")
    assert _creds(both, "git://bob:urlpw@h/r.git")[0] == "alice"
    assert _creds({}) is None


def test_masked_git_values():
    env = {"GIT_TOKEN": "tok123", "GIT_PASSWORD": "pw123", "GIT_USERNAME": "alice"}
    assert git_credential_values("/workspace", env) == ["tok123", "pw123"]          # a user with a password: shown
    assert git_credential_values("/workspace", {"GIT_USERNAME": "token-as-user"}) == ["token-as-user"]
    assert git_credential_values("git://bob:p%40ss@h/r.git#main", {}) == ["p%40ss", "p@ss"]
    assert git_credential_values("https://ghp_x1@h/r.git", {}) == ["ghp_x1", "ghp_x1"]
    assert git_credential_values("https://h/r.git", {}) == []


# ---- what is fetched and checked out ----------------------------------------------------------------------


REMOTE = RemoteRefs(refs={"HEAD": MAIN, "refs/heads/main": MAIN, "refs/heads/dev": DEV, "refs/tags/v1": V1,
                          "refs/tags/dev": V1_COMMIT, "refs/pull/1/head": PULL}, head="refs/heads/main")


def _plan(fragment="", **options):
    return plan_fetch(parse_git("git://h/r.git" + fragment, {}), GitOptions(**options), REMOTE)


def test_default_clone_asks_for_every_branch_and_tag():
    p = _plan()
    assert (p.clone_ref, p.branch, p.detached, p.depth) == ("refs/heads/main", "main", False, None)
    assert p.fetch_refs == ("refs/heads/dev", "refs/heads/main", "refs/tags/dev", "refs/tags/v1")
    assert p.wants == (DEV, MAIN, V1_COMMIT, V1)


def test_single_branch_and_depth():
    p = _plan(single_branch=True, depth=1)
    assert p.fetch_refs == ("refs/heads/main", "refs/tags/dev", "refs/tags/v1") and p.depth == 1
    assert p.wants == (MAIN, V1_COMMIT, V1)


def test_depth_must_not_be_negative():
    with pytest.raises(GitRefError, match="--git depth=-1: the depth is a number of commits, 0 for the whole"):
        _plan(depth=-1)


def test_refs_heads_clones_that_branch():
    p = _plan("#refs/heads/dev", single_branch=True)
    assert (p.clone_ref, p.detached, p.wants[0]) == ("refs/heads/dev", False, DEV)


def test_short_name_follows_revparse_order_tags_before_heads():
    assert _plan("#main").clone_ref == "refs/heads/main"
    assert _plan("#dev").clone_ref == "refs/tags/dev"          # refs/tags/dev before refs/heads/dev, as git
    assert _plan("#pull/1/head").checkout_ref == "refs/pull/1/head"


def test_tag_is_cloned_without_branches_and_detached():
    p = _plan("#refs/tags/v1")
    assert (p.clone_ref, p.checkout_ref, p.detached) == ("refs/heads/main", "refs/tags/v1", True)
    t = _plan("#v1")
    assert (t.clone_ref, t.fetch_refs, t.detached) == ("refs/tags/v1", ("refs/tags/v1", "refs/tags/dev"), True)


def test_other_ref_is_fetched_under_its_name_and_checked_out():
    p = _plan("#refs/pull/1/head", single_branch=True)
    assert p.fetch_refs[-1] == "refs/pull/1/head" and p.wants[-1] == PULL and p.checkout_ref == "refs/pull/1/head"
    assert p.branch == "main" and p.detached


def test_commits_full_and_abbreviated():
    p = _plan("#" + "f" * 40)
    assert (p.commit, p.clone_ref, p.detached) == ("f" * 40, "refs/heads/main", True)
    assert _plan("#refs/heads/dev#0123abcd").commit == "0123abcd"
    assert _plan("#0123abc").commit == "0123abc"              # no such ref: an abbreviated commit
    with pytest.raises(GitRefError, match="'nope' is no branch, tag or ref of the repository; "
                                          "branches: dev, main; tags: dev, v1"):
        _plan("#nope")


def test_branch_option_replaces_the_urls_branch_but_not_its_commit():
    p = _plan("#refs/heads/main", branch="dev")
    assert p.clone_ref == "refs/heads/dev"
    assert p.notes == ("--git branch=dev replaces refs/heads/main, named by the context URL",)
    q = _plan("#" + "f" * 40, branch="dev", single_branch=True)
    assert (q.clone_ref, q.commit, q.wants[0]) == ("refs/heads/dev", "f" * 40, DEV)
    # heads before tags for --git branch= (kaniko's getGitReferenceName), unlike the URL's short names
    assert _plan(branch="dev").clone_ref == "refs/heads/dev"
    assert _plan(branch="v1").clone_ref == "refs/tags/v1"
    with pytest.raises(GitRefError, match=r"invalid branch 'nope' \(--git branch=\): no branch or tag 'nope'; "
                                          "branches: dev, main"):
        _plan(branch="nope")


def test_missing_refs_and_empty_repositories():
    with pytest.raises(GitRefError, match=r"branch 'gone' \(refs/heads/gone\) not found; branches: dev, main"):
        _plan("#refs/heads/gone")
    with pytest.raises(GitRefError, match="ref refs/changes/1 not found"):
        _plan("#refs/changes/1")
    with pytest.raises(GitRefError, match="the repository is empty"):
        plan_fetch(GitSpec(url="https://h/r.git"), GitOptions(), RemoteRefs(refs={}))
    detached = plan_fetch(GitSpec(url="https://h/r.git"), GitOptions(), RemoteRefs(refs={"HEAD": MAIN,
                                                                                         "refs/heads/x": MAIN}))
    assert detached.fetch_refs == ("HEAD", "refs/heads/x") and detached.wants == (MAIN,) and detached.detached


def test_inventory_is_bounded():
    many = RemoteRefs(refs={f"refs/heads/b{i:02}": MAIN for i in range(20)})
    assert many.inventory() == ("branches: b00, b01, b02, b03, b04, b05, b06, b07 and 12 more; tags: none")


# ---- submodules -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("url,expected", [
    ("../lib.git", "https://h/org/lib.git"),
    ("../../other/lib.git", "https://h/other/lib.git"),
    ("./nested", "https://h/org/app.git/nested"),
    ("https://elsewhere/x.git", "https://elsewhere/x.git"),
])
def test_submodule_urls_resolve_against_the_superproject(url, expected):
    assert resolve_submodule_url("https://h/org/app.git", url) == expected


def test_submodule_url_cannot_climb_above_the_host():
    with pytest.raises(GitSpecError, match="climbs above the host"):
        resolve_submodule_url("https://h/app.git", "../../x.git")


def test_submodule_names_and_origins():
    assert valid_submodule_name("libs/sub") and not valid_submodule_name("../../hooks")
    assert not valid_submodule_name("/abs") and not valid_submodule_name("")
    assert same_origin("https://h/a.git", "https://h:443/b.git")
    assert not same_origin("https://h/a.git", "http://h/a.git") and not same_origin("https://h/a", "https://g/a")


# ---- errors as one line -----------------------------------------------------------------------------------


def _remote(creds=None):
    from executor.engine.gitclone import _Remote
    return _Remote("https://h/r.git", object(), "/r.git", creds, False)


def test_http_statuses_become_one_line():
    from dulwich.errors import GitProtocolError

    from executor.engine.gitclone import _protocol_error
    from executor.engine.gitspec import GitCredentials

    forbidden = GitProtocolError("unexpected http resp 403 for https://h/r.git/info/refs?service=git-upload-pack")
    assert _protocol_error(_remote(), forbidden, "listing the refs of") == (
        "the git server denied access (HTTP 403); if the repository is private, set GIT_USERNAME and GIT_PASSWORD, "
        "or GIT_TOKEN")
    assert _protocol_error(_remote(GitCredentials("t", "", "GIT_TOKEN")), forbidden, "listing the refs of") == (
        "the git server denied access with the credentials from GIT_TOKEN (HTTP 403)")
    busy = GitProtocolError("unexpected http resp 502 for https://h/r.git/git-upload-pack")
    assert _protocol_error(_remote(), busy, "fetching from") == (
        "the git server answered HTTP 502 while fetching from the repository")
    refused = GitProtocolError("upload-pack: not our ref 00000000\nmore")
    assert _protocol_error(_remote(), refused, "fetching from") == (
        "the git server refused fetching from the repository: upload-pack: not our ref 00000000")


def test_connection_reasons_read_the_whole_chain():
    import socket

    import urllib3.exceptions as u3

    from executor.engine.gitclone import _connection_reason

    def chained(outer: BaseException, inner: BaseException) -> BaseException:
        outer.__cause__ = inner
        return outer

    # urllib3's NewConnectionError is a ConnectTimeoutError: the refusal under it decides
    refused = u3.MaxRetryError(None, "/x", chained(u3.NewConnectionError(None, "refused"), ConnectionRefusedError()))
    assert _connection_reason(refused) == "connection refused"
    assert _connection_reason(chained(u3.NameResolutionError("h", None, socket.gaierror(-2, "x")),
                                      socket.gaierror(-2, "Name or service not known"))) == "unknown host"
    assert _connection_reason(u3.ReadTimeoutError(None, "/x", "read timed out")) == "timed out"
    assert _connection_reason(ValueError("something else")) is None
