"""Every kaniko flag, in every spelling, parses into Options as kaniko would."""

from __future__ import annotations

import dataclasses

import pytest

from executor import cli
from executor.cli import (
    GitOptions,
    Options,
    Secret,
    UsageError,
    WarmerOptions,
    parse_executor_args,
    parse_warmer_args,
)
from tests.test_cli import kaniko_flags as kf

ENV: dict[str, str] = {}
PLATFORM = "linux/amd64"


def parse(*argv: str, env: dict[str, str] | None = None) -> Options:
    return parse_executor_args(list(argv), env=ENV if env is None else env, platform_default=PLATFORM)


def wparse(*argv: str, env: dict[str, str] | None = None) -> WarmerOptions:
    return parse_warmer_args(list(argv), env=ENV if env is None else env, platform_default=PLATFORM)


REGISTRY_FLAGS = {"insecure", "skip-tls-verify", "insecure-pull", "skip-tls-verify-pull", "push-retry",
                  "push-ignore-immutable-tag-errors", "image-download-retry", "insecure-registry",
                  "skip-tls-verify-registry", "registry-certificate", "registry-client-cert", "registry-map",
                  "registry-mirror", "skip-default-registry-fallback", "credential-helpers"}


def field_of(name: str) -> str:
    """The option field a flag sets; `registry.<field>` for the registry flags (executor.registry.RegistryOptions)."""
    field = {"destination": "destinations", "build-arg": "build_args", "target": "targets",
             "insecure-registry": "insecure_registries", "skip-tls-verify-registry": "skip_tls_verify_registries",
             "registry-certificate": "registry_certificates",
             "registry-client-cert": "registry_client_certificates",
             "registry-map": "registry_maps", "registry-mirror": "registry_mirrors", "label": "labels",
             "ignore-path": "ignore_paths", "annotation": "annotations", "secret": "secrets",
             "image": "images", "customPlatform": "custom_platform", "snapshotMode": "snapshot_mode",
             "tarPath": "tar_path", "whitelist-var-run": "ignore_var_run"}.get(name, name.replace("-", "_"))
    return f"registry.{field}" if name in REGISTRY_FLAGS else field


def option(opts: object, path: str) -> object:
    """The value of a (dotted) option field."""
    for part in path.split("."):
        opts = getattr(opts, part)
    return opts


SAMPLE = {  # a valid value for each kind, and what the field then holds
    "string": ("x/y", "x/y"),
    "int": ("3", 3),
    "duration": ("6h", 6 * 3600.0),
    "stringArray": ("v1", ["v1"]),
    "stringSlice": ("a,b", ["a", "b"]),
    "keyValue": ("k=v", {"k": "v"}),
    "multiKeyValue": ("k=v", {"k": ["v"]}),
    "compression": ("zstd", "zstd"),
    "imageFormat": ("oci", "oci"),
}
SPECIAL = {  # flags whose value needs a particular shape
    "verbosity": ("debug", "debug"),
    "log-format": ("json", "json"),
    "snapshot-mode": ("redo", "redo"),
    "snapshotMode": ("time", "time"),
    "custom-platform": ("linux/arm64", "linux/arm64"),
    "customPlatform": ("linux/arm/v7", "linux/arm/v7"),
    "label": ("a=b", {"a": "b"}),
    "build-arg": ("A=1", {"A": "1"}),
    "secret": ("id=tok,src=/s/tok", {"tok": Secret("tok", "file", "/s/tok")}),
    "git": ("branch=main", GitOptions(branch="main")),
    "credential-helpers": ("ecr", ["ecr"]),
    "registry-mirror": ("m.io", ["m.io"]),
    "registry-client-cert": ("r.io=/c/r.crt,/c/r.key", {"r.io": ("/c/r.crt", "/c/r.key")}),
}


def sample(flag: kf.KanikoFlag) -> tuple[str, object]:
    return SPECIAL.get(flag.name) or SAMPLE[flag.type]


NON_BOOL = [f for f in kf.EXECUTOR_FLAGS if f.type != "bool"]
BOOLS = [f for f in kf.EXECUTOR_FLAGS if f.type == "bool"]


SPELLINGS = [(f, form) for f in NON_BOOL for form in ["separate", "equals", "short", "short-attached", "short-equals"]
             if f.short or not form.startswith("short")]


@pytest.mark.parametrize("flag,form", SPELLINGS, ids=lambda x: x if isinstance(x, str) else x.name)
def test_every_valued_executor_flag_in_every_spelling(flag: kf.KanikoFlag, form: str) -> None:
    text, expected = sample(flag)
    argv = {
        "separate": [f"--{flag.name}", text],
        "equals": [f"--{flag.name}={text}"],
        "short": [f"-{flag.short}", text],
        "short-attached": [f"-{flag.short}{text}"],
        "short-equals": [f"-{flag.short}={text}"],
    }[form]
    opts = parse(*argv, "--no-push")
    got = option(opts, field_of(flag.name))
    if flag.name == "registry-mirror":
        assert opts.registry.registry_maps == {"index.docker.io": ["m.io"]}
    assert got == expected


@pytest.mark.parametrize("flag", BOOLS, ids=lambda f: f.name)
@pytest.mark.parametrize("spelling,value", [
    ("", True), ("=true", True), ("=1", True), ("=t", True), ("=T", True), ("=TRUE", True), ("=True", True),
    ("=false", False), ("=0", False), ("=f", False), ("=F", False), ("=FALSE", False), ("=False", False),
])
def test_every_bool_flag_takes_parsebool_spellings(flag: kf.KanikoFlag, spelling: str, value: bool) -> None:
    opts = parse(f"--{flag.name}{spelling}", "-d", "r.io/x")
    assert option(opts, field_of(flag.name)) is value


@pytest.mark.parametrize("bad", ["yes", "no", "on", "", "tRUE", "2"])
def test_bool_rejects_other_spellings(bad: str) -> None:
    with pytest.raises(UsageError, match=r'invalid argument "%s" for "--cache" flag' % bad):
        parse(f"--cache={bad}")


def test_bool_does_not_take_the_next_word() -> None:
    with pytest.raises(UsageError, match='unknown command "true" for "executor"'):
        parse("--cache", "true", "--no-push")
    opts = parse("--cache", "--no-push")
    assert opts.cache is True and opts.no_push is True


@pytest.mark.parametrize("flag", kf.EXECUTOR_FLAGS, ids=lambda f: f.name)
def test_executor_defaults_equal_kanikos(flag: kf.KanikoFlag) -> None:
    opts = Options()
    parsed = parse()
    value = option(parsed, field_of(flag.name))
    if flag.name in kf.EXECUTOR_DEPRECATED:
        target = next(f for f in kf.EXECUTOR_FLAGS if f.name == kf.EXECUTOR_DEPRECATED[flag.name])
        if target.name == "snapshot-mode":
            assert value == "exact"  # kiln's default, explained below
        else:
            assert value == (PLATFORM if target.name == "custom-platform" else target.default)
        return
    if flag.name == "custom-platform":
        assert value == PLATFORM  # kaniko fills in the host platform
    elif flag.name == "compression":
        assert value == "gzip"  # kaniko's empty value means gzip
    elif flag.name == "snapshot-mode":
        # kiln's one deliberate change of default: "exact" catches every change "full" catches (a rewrite
        # changes the inode's ctime, which no unprivileged process can forge) without hashing every file.
        assert value == "exact"
    elif flag.name == "credential-helpers":
        assert value == ["env", "google", "ecr", "acr", "gitlab"]  # kaniko's "all"
    elif flag.name in ("secret", "build-arg", "label"):
        assert value == {}
    elif flag.name == "git":
        assert value == GitOptions()
    else:
        assert value == flag.default
    assert option(opts, field_of(flag.name)) == value or flag.name == "custom-platform"


@pytest.mark.parametrize("flag", kf.WARMER_FLAGS, ids=lambda f: f.name)
def test_warmer_defaults_equal_kanikos(flag: kf.KanikoFlag) -> None:
    value = option(wparse(), field_of(flag.name))
    if flag.name == "customPlatform":
        assert value == PLATFORM
    elif flag.name == "build-arg":
        assert value == {}
    else:
        assert value == flag.default


def test_table_and_parser_agree() -> None:
    mine = {s.name: s.short for s in cli.EXECUTOR_FLAGS}
    theirs = {f.name: f.short for f in kf.EXECUTOR_FLAGS}
    assert {n: mine.get(n) for n in theirs} == theirs
    assert set(mine) - set(theirs) == {"root", "extract", "azure-container-registry-config",
                                       "sbom", "provenance", "metadata-file", "progress"}   # buildx's (issue 13)
    wmine = {s.name: s.short for s in cli.WARMER_FLAGS}
    wtheirs = {f.name: f.short for f in kf.WARMER_FLAGS}
    assert {n: wmine.get(n) for n in wtheirs} == wtheirs
    assert set(wmine) - set(wtheirs) == {"custom-platform", "azure-container-registry-config"}


@pytest.mark.parametrize("flag", [f for f in kf.WARMER_FLAGS if f.type != "bool"], ids=lambda f: f.name)
def test_every_valued_warmer_flag(flag: kf.KanikoFlag) -> None:
    text, expected = sample(flag) if flag.name != "dockerfile" else ("/w/Dockerfile", "/w/Dockerfile")
    forms = [[f"--{flag.name}", text], [f"--{flag.name}={text}"]]
    if flag.short:
        forms += [[f"-{flag.short}", text], [f"-{flag.short}{text}"]]
    for argv in forms:
        assert option(wparse(*argv), field_of(flag.name)) == expected, argv


def test_warmer_short_bools_group() -> None:
    opts = wparse("-fc", "/c", "-i", "alpine", "-i=busybox")
    assert opts.force is True and opts.cache_dir == "/c" and opts.images == ["alpine", "busybox"]


# ---- repeatables and maps


def test_repeatables_repeat_in_order() -> None:
    opts = parse(
        "-d", "r.io/a:1", "--destination=r.io/a:2", "-dr.io/a:3",
        "--build-arg", "B=2", "--build-arg=A=1", "--build-arg", "B=3",
        "--label", "z=1", "--label", "a=x=y",
        "--ignore-path", "/a", "--ignore-path=/b",
        "--insecure-registry", "i1", "--insecure-registry", "i2",
        "--skip-tls-verify-registry", "s1", "--skip-tls-verify-registry=s2",
        "--registry-mirror", "m1", "--registry-mirror", "m2",
        "--registry-map", "z.io=m.io;a.io=n.io", "--registry-map", "z.io=o.io",
        "--registry-certificate", "z.io=/c/z", "--registry-certificate", "a.io=/c/a",
        "--registry-client-cert", "z.io=/c/z.crt,/c/z.key",
        "--annotation", "org.b=2", "--annotation", "org.a=1",
        "--secret", "id=a,src=/s/a", "--secret", "id=b,env=B_TOKEN",
        "--target", "one", "--target", "two,three",
        "--credential-helpers", "ecr", "--credential-helpers", "gitlab",
    )
    assert opts.destinations == ["r.io/a:1", "r.io/a:2", "r.io/a:3"]
    assert list(opts.build_args.items()) == [("B", "3"), ("A", "1")]
    assert list(opts.labels.items()) == [("z", "1"), ("a", "x=y")]
    assert opts.ignore_paths == ["/a", "/b"]
    assert opts.registry.insecure_registries == ["i1", "i2"]
    assert opts.registry.skip_tls_verify_registries == ["s1", "s2"]
    assert opts.registry.registry_mirrors == ["m1", "m2"]
    assert list(opts.registry.registry_maps.items()) == [
        ("z.io", ["m.io", "o.io"]), ("a.io", ["n.io"]), ("index.docker.io", ["m1", "m2"])]
    assert list(opts.registry.registry_certificates.items()) == [("z.io", "/c/z"), ("a.io", "/c/a")]
    assert opts.registry.registry_client_certificates == {"z.io": ("/c/z.crt", "/c/z.key")}
    assert list(opts.annotations) == ["org.b", "org.a"]
    assert opts.secrets == {"a": Secret("a", "file", "/s/a"), "b": Secret("b", "env", "B_TOKEN")}
    assert opts.targets == ["one", "two", "three"]
    assert opts.registry.credential_helpers == ["ecr", "gitlab"]


def test_build_arg_without_value_comes_from_environment() -> None:
    opts = parse("--build-arg", "HTTP_PROXY", "--build-arg", "MISSING", "--build-arg", "E=", "--no-push",
                 env={"HTTP_PROXY": "http://p:3128"})
    assert opts.build_args == {"HTTP_PROXY": "http://p:3128", "MISSING": "", "E": ""}


@pytest.mark.parametrize("flag,value", [
    ("--registry-certificate", "noequals"), ("--registry-client-cert", "x"), ("--annotation", "x"),
    ("--registry-map", "a=b;c"), ("--label", "nolabel"),
])
def test_key_value_flags_need_an_equals(flag: str, value: str) -> None:
    with pytest.raises(UsageError, match="key=value"):
        parse(flag, value, "--no-push")


def test_client_cert_needs_a_certificate_and_a_key() -> None:
    with pytest.raises(UsageError, match=r'"r.io=/c/r.crt" for "--registry-client-cert" flag: expected '
                                         r'my.registry.url=/path/to/client/cert,/path/to/client/key'):
        parse("--registry-client-cert", "r.io=/c/r.crt", "--no-push")


def test_credential_helpers_empty_disables_them() -> None:
    assert parse("--credential-helpers=", "--no-push").registry.credential_helpers == []


# ---- secrets


@pytest.mark.parametrize("value,expected", [
    ("id=npm,src=/run/npmrc", Secret("npm", "file", "/run/npmrc")),
    ("id=npm,source=/run/npmrc", Secret("npm", "file", "/run/npmrc")),
    ("id=tok,env=GITHUB_TOKEN", Secret("tok", "env", "GITHUB_TOKEN")),
    ("id=tok,type=env,src=GITHUB_TOKEN", Secret("tok", "env", "GITHUB_TOKEN")),
    ("id=PRESENT", Secret("PRESENT", "env", "PRESENT")),
    ("id=/etc/absent", Secret("/etc/absent", "file", "/etc/absent")),
])
def test_secret_forms(value: str, expected: Secret) -> None:
    opts = parse("--secret", value, "--no-push", env={"PRESENT": "x"})
    assert opts.secrets == {expected.id: expected}


@pytest.mark.parametrize("value,message", [
    ("src=/x", "secret requires id=ID"),
    ("id=a,src=/x,env=Y", "only one of src or env"),
    ("id=a,type=file,env=Y", "env cannot be specified for file type"),
    ("id=a,type=ssh", "invalid secret type"),
    ("id=a,colour=red", "unknown key 'colour'"),
    ("id=a,loose", "invalid secret format"),
])
def test_secret_errors(value: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse("--secret", value, "--no-push")


def test_secret_ids_are_unique() -> None:
    with pytest.raises(UsageError, match='secret with ID "a" is already defined'):
        parse("--secret", "id=a,src=/1", "--secret", "id=a,src=/2", "--no-push")


# ---- git


def test_git_options_accumulate() -> None:
    opts = parse("--git", "branch=release", "--git=depth=1", "--git", "single-branch=true",
                 "--git", "recurse-submodules=1", "--git", "insecure-skip-tls=T", "--no-push")
    assert opts.git == GitOptions("release", True, 1, True, True)


@pytest.mark.parametrize("value", ["branch", "depth=one", "single-branch=yes", "colour=red"])
def test_git_option_errors(value: str) -> None:
    with pytest.raises(UsageError, match='for "--git" flag'):
        parse("--git", value, "--no-push")


# ---- choices and ints


@pytest.mark.parametrize("flag,value", [
    ("--compression", "xz"), ("--image-format", "v1"), ("--snapshot-mode", "fast"), ("--snapshotMode", "fast"),
    ("--verbosity", "loud"), ("--log-format", "xml"), ("--custom-platform", "linux/amd64/v2/extra"),
    ("--push-retry", "three"), ("--compression-level", "1.5"), ("--image-download-retry", "09"),
])
def test_bad_values_are_refused_naming_the_flag(flag: str, value: str) -> None:
    with pytest.raises(UsageError, match=flag.lstrip("-")):
        parse(flag, value, "--no-push")


@pytest.mark.parametrize("text,value", [("0", 0), ("7", 7), ("-1", -1), ("0x10", 16), ("010", 8),
                                        ("0o17", 15), ("0b101", 5), ("1_000", 1000), ("+4", 4)])
def test_ints_parse_like_go(text: str, value: int) -> None:
    assert parse("--compression-level", text, "--no-push").compression_level == value


@pytest.mark.parametrize("level", ["panic", "fatal", "error", "warn", "info", "debug", "trace", "DEBUG"])
def test_verbosity_levels(level: str) -> None:
    assert parse("-v", level, "--no-push").verbosity == level.lower()


# ---- unknown and malformed


@pytest.mark.parametrize("argv,message", [
    (["--destinaton", "x"], "unknown flag: --destinaton (did you mean --destination?)"),
    (["--snapshot_mode=full"], "unknown flag: --snapshot_mode (did you mean --snapshot-mode?)"),
    (["--Cache"], "unknown flag: --Cache (did you mean --cache?)"),
    (["--frobnicate"], "unknown flag: --frobnicate"),
    (["-x"], "unknown shorthand flag: 'x' in -x"),
    (["-dq"], None),  # -d takes "q" as its value: fine
    (["---cache"], "bad flag syntax: ---cache"),
    (["--dockerfile"], "flag needs an argument: --dockerfile"),
    (["-f"], "flag needs an argument: 'f' in -f"),
    (["stray"], 'unknown command "stray" for "executor"'),
])
def test_unknown_and_malformed(argv: list[str], message: str | None) -> None:
    if message is None:
        assert parse(*argv, "--no-push").destinations == ["q"]
        return
    with pytest.raises(UsageError) as err:
        parse("--no-push", *argv)
    assert str(err.value) == message


def test_a_valued_flag_takes_the_next_word_even_if_it_looks_like_a_flag() -> None:
    # pflag: "--dockerfile --no-push" sets the Dockerfile to "--no-push"
    opts = parse("-d", "r.io/x", "--dockerfile", "--no-push")
    assert opts.dockerfile == "--no-push" and opts.no_push is False


def test_double_dash_ends_flags() -> None:
    with pytest.raises(UsageError, match='unknown command "--cache"'):
        parse("--no-push", "--", "--cache")


def test_value_may_start_with_a_dash() -> None:
    assert parse("--context", "-odd", "--no-push").context == "-odd"


def test_help_and_version() -> None:
    with pytest.raises(cli.HelpRequested) as err:
        parse("--cache", "--help")
    assert "--destination" in str(err.value) and "--bucket" not in str(err.value)
    with pytest.raises(cli.HelpRequested) as err:
        wparse("-h")
    assert str(err.value).startswith("Usage:\n  warmer") and "--image" in str(err.value)
    with pytest.raises(cli.VersionRequested):   # carries nothing: main prints the version
        parse("version")
    with pytest.raises(cli.HelpRequested) as err:
        parse("help")
    assert str(err.value).startswith("Usage:\n  executor") and "--destination" in str(err.value)


def test_options_are_frozen() -> None:
    opts = parse("--no-push")
    with pytest.raises(dataclasses.FrozenInstanceError, match="cannot assign to field 'no_push'"):
        opts.no_push = False  # type: ignore[misc]
