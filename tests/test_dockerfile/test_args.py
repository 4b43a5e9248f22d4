"""ARG scoping as docker does it."""
import pytest

from executor.dockerfile.args import (BuildArgs, GlobalScope, PlatformTriple, StageArgs, looks_secret,
                                      parse_build_args, platform_args)


def _scopes(given=None):
    amd64 = PlatformTriple("linux", "amd64")
    ba = BuildArgs(given=given or {}, predefined=platform_args(PlatformTriple("linux", "arm64", "v8"), amd64))
    g = GlobalScope(ba)
    return ba, g


def test_bare_build_arg_reads_environment():
    assert parse_build_args(["A=1", "B", "C", "D="], environ={"B": "from-env"}) == {"A": "1", "B": "from-env", "D": ""}


def test_global_arg_needs_redeclaration_in_stage():
    ba, g = _scopes({"VERSION": "2"})
    g.declare("VERSION", "1")
    g.declare("BASE", "busybox")
    assert g.values["VERSION"] == "2" and g.values["BASE"] == "busybox"
    stage = StageArgs(ba, g)
    assert "BASE" not in stage.expansion_env({})
    stage.declare("BASE", None)
    assert stage.expansion_env({})["BASE"] == "busybox"


def test_stage_default_overridden_by_build_arg_and_env_wins():
    ba, g = _scopes({"A": "cli"})
    stage = StageArgs(ba, g)
    stage.declare("A", "default")
    stage.declare("B", "b-default")
    stage.env_set("B")                       # ENV B=env after the ARG
    assert stage.run_env({"B": "env"}) == {"A": "cli", "B": "env"}
    assert stage.history_args({"B": "env"}) == [("A", "cli"), ("B", "env")]
    assert ba.warn_unconsumed() == []


def test_arg_declared_after_env_wins_until_the_next_env():
    """BuildKit's dispatchArg adds the value to the stage's environment (docker build agrees)."""
    ba, g = _scopes({"V": "cli"})
    stage = StageArgs(ba, g)
    stage.declare("V", "from-arg")
    stage.env_set("V")
    assert stage.expansion_env({"V": "from-env"})["V"] == "from-env"
    stage.declare("V", "again")
    assert stage.expansion_env({"V": "from-env"})["V"] == "cli"
    assert stage.run_env({"V": "from-env"})["V"] == "cli"
    # each ARG once, at its first declaration (BuildKit v0.18.0, moby/buildkit#5508)
    assert stage.history_args({"V": "from-env"}) == [("V", "cli")]
    stage.env_set("V")
    assert stage.run_env({"V": "newer"})["V"] == "newer"


def test_platform_args_predefined_globally_and_declared_in_stage():
    ba, g = _scopes()
    assert g.values["TARGETARCH"] == "arm64" and g.values["TARGETPLATFORM"] == "linux/arm64/v8"
    stage = StageArgs(ba, g)
    assert "TARGETARCH" not in stage.expansion_env({})
    stage.declare("TARGETARCH", None)
    assert stage.expansion_env({})["TARGETARCH"] == "arm64"
    assert g.values["BUILDPLATFORM"] == "linux/amd64"


def test_proxy_args_reach_run_without_declaration_and_are_not_unused():
    ba, g = _scopes({"http_proxy": "http://p:3128", "UNUSED": "x"})
    stage = StageArgs(ba, g)
    assert stage.run_env({}) == {"http_proxy": "http://p:3128"}
    assert stage.history_args({}) == []
    assert ba.warn_unconsumed() == ["UNUSED"]


def test_arg_without_value_is_unset():
    ba, g = _scopes()
    stage = StageArgs(ba, g)
    stage.declare("NOTHING", None)
    assert "NOTHING" not in stage.run_env({})


@pytest.mark.parametrize("name,secret", [
    ("API_TOKEN", True), ("token", True), ("DB_PASSWORD", True), ("AUTH", True), ("secret_MESSAGE", True),
    ("api_key", True), ("GITHUB_CREDENTIALS", True), ("apikey", True), ("PASSWD", True),
    ("PUBLIC_KEY", False), ("KEY_FILE", False), ("TOKEN_VERSION", False), ("VERSION", False),
    ("KEYBOARD", False), ("MONKEY", False), ("AUTHOR", False), ("BASE", False), ("HTTP_PROXY", False),
])
def test_secret_looking_names_follow_buildkits_rule(name, secret):
    assert looks_secret(name) is secret
