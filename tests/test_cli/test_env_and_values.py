"""Environment fallbacks, deprecated aliases, durations and the Go scalar parsers."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from executor.cli import (
    UsageError,
    host_platform,
    parse_bool,
    parse_duration,
    parse_executor_args,
    parse_go_int,
    parse_warmer_args,
)
from tests.test_cli import kaniko_flags as kf


def parse(*argv: str, env: dict[str, str] | None = None):
    return parse_executor_args(list(argv), env=env or {}, platform_default="linux/amd64")


# ---- environment


def test_kaniko_dir_flag_beats_env_beats_default() -> None:
    assert parse("--no-push").kaniko_dir == "/kaniko"
    assert parse("--no-push", env={"KANIKO_DIR": "/k2"}).kaniko_dir == "/k2"
    assert parse("--no-push", "--kaniko-dir=/k3", env={"KANIKO_DIR": "/k2"}).kaniko_dir == "/k3"


def test_kaniko_no_push_env_wins_over_the_flag_as_in_kaniko() -> None:
    assert parse(env={"KANIKO_NO_PUSH": "true"}).no_push is True
    assert parse("--no-push", env={"KANIKO_NO_PUSH": "0"}).no_push is False
    with pytest.raises(UsageError, match="KANIKO_NO_PUSH"):
        parse(env={"KANIKO_NO_PUSH": "yes"})


def test_registry_mirror_and_map_env() -> None:
    opts = parse("--no-push", "--registry-mirror", "m1", "--registry-map", "quay.io=q1",
                 env={"KANIKO_REGISTRY_MIRROR": "m2", "KANIKO_REGISTRY_MAP": "gcr.io=g1;quay.io=q2"})
    assert opts.registry.registry_mirrors == ["m1", "m2"]
    assert opts.registry.registry_maps == {"quay.io": ["q1", "q2"], "gcr.io": ["g1"], "index.docker.io": ["m1", "m2"]}
    with pytest.raises(UsageError, match="KANIKO_REGISTRY_MAP"):
        parse("--no-push", env={"KANIKO_REGISTRY_MAP": "nokey"})


def test_warmer_reads_the_map_env_but_not_the_mirror_env() -> None:
    opts = parse_warmer_args(["-i", "a"], env={"KANIKO_REGISTRY_MAP": "gcr.io=g1", "KANIKO_REGISTRY_MIRROR": "m"},
                             platform_default="linux/amd64")
    assert opts.registry.registry_maps == {"gcr.io": ["g1"]} and opts.registry.registry_mirrors == []


@pytest.mark.parametrize("flag,var", [("pre-cleanup", "KANIKO_PRE_CLEANUP"), ("cleanup", "KANIKO_CLEANUP"),
                                      ("preserve-context", "KANIKO_PRESERVE_CONTEXT")])
def test_bool_env_defaults(flag: str, var: str) -> None:
    field = flag.replace("-", "_")
    assert getattr(parse("--no-push", env={var: "true"}), field) is True
    assert getattr(parse("--no-push", env={var: "garbage"}), field) is False  # kaniko: unparsable -> default
    assert getattr(parse("--no-push", f"--{flag}=false", env={var: "1"}), field) is False  # the flag wins


def test_env_table_is_covered() -> None:
    names = {f.name for f in kf.EXECUTOR_FLAGS}
    assert set(kf.EXECUTOR_ENV.values()) <= names


# ---- deprecated aliases


@pytest.mark.parametrize("argv,field,value", [
    (["--snapshotMode", "redo"], "snapshot_mode", "redo"),
    (["--snapshotMode=time", "--snapshot-mode=redo"], "snapshot_mode", "time"),  # kaniko applies it last
    (["--customPlatform=linux/s390x"], "custom_platform", "linux/s390x"),
    (["--tarPath", "/a.tar"], "tar_path", "/a.tar"),
    (["--tar-path=/b.tar", "--tarPath=/a.tar"], "tar_path", "/a.tar"),  # same variable: last wins
    (["--whitelist-var-run=false"], "ignore_var_run", False),
    (["--whitelist-var-run=false", "--ignore-var-run"], "ignore_var_run", True),
])
def test_deprecated_aliases(argv: list[str], field: str, value: object) -> None:
    opts = parse("--no-push", *argv)
    assert getattr(opts, field) == value
    assert opts.notices and "deprecated" in opts.notices[0]


def test_deprecated_table_is_complete() -> None:
    for old, new in kf.EXECUTOR_DEPRECATED.items():
        assert old in {f.name for f in kf.EXECUTOR_FLAGS} and new in {f.name for f in kf.EXECUTOR_FLAGS}


# ---- durations


@pytest.mark.parametrize("text,seconds", [
    ("336h", 336 * 3600.0), ("1h30m", 5400.0), ("6h", 21600.0), ("90s", 90.0), ("1.5h", 5400.0),
    ("0", 0.0), ("-1m", -60.0), ("+2s", 2.0), ("100ms", 0.1), ("1us", 1e-6), ("1\u00b5s", 1e-6),
    ("1\u03bcs", 1e-6), ("10ns", 1e-8), ("1h1m1s", 3661.0), (".5s", 0.5), ("1.s", 1.0), ("2h0m0s", 7200.0),
])
def test_durations_like_go(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)
    assert parse("--no-push", f"--cache-ttl={text}").cache_ttl == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "1", "h", "1d", "1hh", ".s", "1.2.3s", "1 h", "-", "3 days", "1H"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError, match="time: "):
        parse_duration(text)
    with pytest.raises(UsageError, match='for "--cache-ttl" flag'):
        parse("--no-push", "--cache-ttl", text)


@given(h=st.integers(0, 10_000), m=st.integers(0, 59), s=st.integers(0, 59))
def test_duration_components_add_up(h: int, m: int, s: int) -> None:
    assert parse_duration(f"{h}h{m}m{s}s") == pytest.approx(h * 3600 + m * 60 + s)


# ---- Go scalars


@given(st.integers(-(2**63), 2**63 - 1))
def test_go_int_roundtrip(n: int) -> None:
    assert parse_go_int(str(n)) == n
    assert parse_go_int(hex(n)) == n  # "-0x..." for negatives, as Go accepts
    assert parse_go_int(oct(n).replace("0o", "0", 1) if n > 0 else "0") == max(n, 0)  # leading-zero octal


@pytest.mark.parametrize("text", ["", "1.0", "1e3", "0x", "9223372036854775808", "_1", "1_", "1__0", "08", "one"])
def test_go_int_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="strconv.ParseInt"):
        parse_go_int(text)


def test_parse_bool_exact_set() -> None:
    for t in ("1", "t", "T", "TRUE", "true", "True"):
        assert parse_bool(t) is True
    for f in ("0", "f", "F", "FALSE", "false", "False"):
        assert parse_bool(f) is False
    for bad in ("yes", "tRue", " true", "y"):
        with pytest.raises(ValueError) as err:
            parse_bool(bad)
        assert str(err.value) == f'strconv.ParseBool: parsing "{bad}": invalid syntax'


@pytest.mark.parametrize("machine,expected", [("x86_64", "linux/amd64"), ("aarch64", "linux/arm64"),
                                              ("armv7l", "linux/arm/v7"), ("s390x", "linux/s390x"),
                                              ("i686", "linux/386"), ("ppc64le", "linux/ppc64le")])
def test_host_platform(machine: str, expected: str) -> None:
    assert host_platform(machine, "Linux") == expected


def test_custom_platform_defaults_to_the_host() -> None:
    assert parse_executor_args(["--no-push"], env={}).custom_platform == host_platform()


# ---- relative paths (kaniko's resolveRelativePaths)


def test_relative_paths_become_absolute() -> None:
    from executor.cli import absolutize_paths

    opts = absolutize_paths(parse("--no-push", "-c", "ctx", "--tar-path", "out/i.tar", "--digest-file=d.txt",
                                  "--oci-layout-path", "./layout", "--cache-dir", "cache", "--root", "r",
                                  "--kaniko-dir", "k", "-f", "sub/Dockerfile"), "/home/u/p")
    assert opts.context == "/home/u/p/ctx" and opts.tar_path == "/home/u/p/out/i.tar"
    assert opts.digest_file == "/home/u/p/d.txt" and opts.oci_layout_path == "/home/u/p/layout"
    assert opts.cache_dir == "/home/u/p/cache" and opts.root == "/home/u/p/r" and opts.kaniko_dir == "/home/u/p/k"
    assert opts.dockerfile == "sub/Dockerfile"  # resolved by the build, relative to cwd then context


@pytest.mark.parametrize("context", ["git://github.com/o/r.git", "gs://b/c.tar.gz", "s3://b/c.tar.gz",
                                     "tar://stdin", "dir:///workspace", "https://example.com/c.tar.gz", "/abs"])
def test_remote_and_absolute_contexts_are_kept(context: str) -> None:
    from executor.cli import absolutize_paths

    assert absolutize_paths(parse("--no-push", "--context", context), "/cwd").context == context


def test_warmer_dockerfile_must_exist(tmp_path) -> None:
    from executor.cli import resolve_warmer_dockerfile

    (tmp_path / "Dockerfile").write_text("FROM alpine\n")
    opts = parse_warmer_args(["-d", "Dockerfile"], env={}, platform_default="linux/amd64")
    assert resolve_warmer_dockerfile(opts, str(tmp_path)).dockerfile == str(tmp_path / "Dockerfile")
    missing = parse_warmer_args(["-d", "nope/Dockerfile"], env={}, platform_default="linux/amd64")
    with pytest.raises(UsageError, match="nope/Dockerfile does not exist"):
        resolve_warmer_dockerfile(missing, str(tmp_path))
    url = parse_warmer_args(["-d", "https://x/Dockerfile"], env={}, platform_default="linux/amd64")
    assert resolve_warmer_dockerfile(url, str(tmp_path)).dockerfile == "https://x/Dockerfile"
