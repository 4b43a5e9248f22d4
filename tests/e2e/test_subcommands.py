"""`executor login` and `executor push` (the osscontainertools fork's subcommands), through the real entry point in
the sandbox, against the rig's registries."""
from __future__ import annotations

import json
import os
import sys

from tests.e2e.conftest import REPO, skopeo_tags
from tests.rig.judge import judge_oci_layout, judge_registry_image
from tests.rig.sandbox import run_sandboxed


def executor(*args: str, writable: list[str], env: dict[str, str] | None = None, input: str | None = None):
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("CI_REGISTRY", "DOCKER_CONFIG"))}
    full_env["PYTHONPATH"] = REPO
    full_env.update(env or {})
    return run_sandboxed([sys.executable, "-m", "executor", *args, "--log-format", "text"], writable=writable,
                         env=full_env, cwd=REPO, input=input, timeout=300)


def test_login_then_build_pushes_with_the_stored_credentials(kiln, base_images, basic_registry, tmp_path):
    config = tmp_path / "docker"
    config.mkdir()
    env = {"DOCKER_CONFIG": str(config)}
    run = executor("login", basic_registry.host, "-u", basic_registry.username, "--password-stdin",
                   writable=[str(config)], env=env, input=basic_registry.password + "\n")
    assert run.returncode == 0, run.stderr
    assert basic_registry.password not in run.stdout + run.stderr
    saved = json.loads((config / "config.json").read_text())
    assert list(saved["auths"]) == [basic_registry.host]
    assert oct((config / "config.json").stat().st_mode & 0o777) == "0o600"
    dest = basic_registry.ref("subcmd/login:v1")
    kiln.build(kiln.context({"Dockerfile": f"FROM {base_images.busybox_index}\nLABEL login=yes\n"}),
               "--destination", dest, "--registry-certificate", f"{basic_registry.host}={basic_registry.ca_path}",
               "--insecure-registry", base_images.busybox_index.split("/")[0], docker_config=str(config)).check()
    assert judge_registry_image(basic_registry, dest, unpack=False).config["config"]["Labels"] == {"login": "yes"}


def test_login_refuses_what_the_fork_refuses(tmp_path):
    config = str(tmp_path)
    cases = [(["login", "r.example", "-p", "x"], "username required"),
             (["login", "r.example", "-u", "me"], "a password must be supplied via --password or --password-stdin"),
             (["login", "r.example", "-u", "me", "-p", "x", "--password-stdin"],
              "only one of --password or --password-stdin may be specified"),
             (["login", "-u", "me", "-p", "x"], "accepts 1 arg(s), received 0")]
    for argv, message in cases:
        run = executor(*argv, writable=[config], env={"DOCKER_CONFIG": config})
        assert run.returncode == 1 and f"Error: {message}" in run.stderr, (argv, run.stderr)
    blank = executor("login", "r.example", "-u", "me", "--password-stdin", writable=[config],
                     env={"DOCKER_CONFIG": config}, input="\n")
    assert blank.returncode == 1 and "Error: password is blank" in blank.stderr
    assert not os.path.exists(os.path.join(config, "config.json"))


def test_push_a_tarball_and_a_layout_built_earlier(kiln, base_images, plain_registry, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    tar, layout = str(out / "image.tar"), str(out / "layout")
    build = kiln.build(kiln.context({"Dockerfile": f"FROM {base_images.busybox_amd64}\nRUN echo later > /later\n"}),
                       "--no-push", "--tar-path", tar, "--oci-layout-path", layout, "--destination",
                       plain_registry.ref("subcmd/later:v1"), "--insecure-registry", plain_registry.host,
                       "--reproducible")
    build.check()
    digest = judge_oci_layout(layout, unpack=False).manifest_digest
    for source, repo in ((tar, "subcmd/from-tar"), (layout, "subcmd/from-layout")):
        dest = plain_registry.ref(f"{repo}:v1")
        run = executor("push", source, "--destination", dest, "--insecure-registry", plain_registry.host,
                       writable=[str(out)])
        assert run.returncode == 0, run.stderr
        report = judge_registry_image(plain_registry, dest)
        assert report.layers[-1].read("later") == b"later\n"
        if source == layout:
            assert report.manifest_digest == digest, "the layout's manifest is pushed as it is"


def test_push_checks_its_destinations_first(base_images, token_registry, tmp_path):
    empty = tmp_path / "nocreds"
    empty.mkdir()
    (empty / "config.json").write_text("{}")
    dest = token_registry.ref("subcmd/denied:v1")
    missing = executor("push", str(tmp_path / "nothing.tar"), "-d", dest, writable=[str(tmp_path)])
    assert missing.returncode == 1 and "nothing.tar not readable" in missing.stderr.strip().splitlines()[-1]
    layout = tmp_path / "layout"
    layout.mkdir()
    (layout / "index.json").write_text('{"schemaVersion": 2, "manifests": []}')
    run = executor("push", str(layout), "-d", dest, "--registry-certificate",
                   f"{token_registry.host}={token_registry.ca_path}", writable=[str(tmp_path)],
                   env={"DOCKER_CONFIG": str(empty)})
    assert run.returncode == 1 and "Traceback" not in run.stderr
    assert f"cannot push to {dest}" in run.stderr.strip().splitlines()[-1], run.stderr
    assert skopeo_tags(token_registry, "subcmd/denied") == []
