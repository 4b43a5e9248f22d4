"""Issue 12 item 6, "errors a person can act on", through the real executor in the sandbox: a failure is one
error line naming what failed and where (the Dockerfile line, the reference, the flag, the file), never a
library's exception text; that detail is in the log at --verbosity=debug. docs/errors.md lists every error
class with the test that pins its message; these are the ones a user meets in a build."""
from __future__ import annotations

import socket

import pytest

from tests.e2e.conftest import registry_tags


def _closed_port() -> int:
    with socket.socket() as s:          # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _build(kiln, registry, dockerfile: str | dict[str, str], *args: str, **kw):
    files = {"Dockerfile": dockerfile} if isinstance(dockerfile, str) else dockerfile
    return kiln.build(kiln.context(files), *args, "--insecure-registry", registry.host, **kw)


def test_missing_base_image_names_the_reference(kiln, plain_registry):
    ref = f"{plain_registry.host}/base/busybox:latest-does-not-exist"
    run = _build(kiln, plain_registry, f"FROM {ref}\nRUN echo never\n", "--no-push")
    line = run.refused()
    assert line == f"Dockerfile:1: FROM {ref}: image not found in {plain_registry.host} (manifest unknown)"
    assert "never" not in run.stdout


def test_registry_detail_is_logged_at_debug(kiln, plain_registry, base_images):
    """The one line stays one line; the request and the registry's or the library's whole answer are in the
    debug log above it (and the traceback after it)."""
    ref = f"{plain_registry.host}/base/busybox:latest-does-not-exist"
    run = _build(kiln, plain_registry, f"FROM {ref}\n", "--no-push", "--verbosity=debug")
    assert run.returncode == 1
    errors = run.errors()
    assert len(errors) == 1 and errors[0].splitlines()[0] == (
        f"Dockerfile:1: FROM {ref}: image not found in {plain_registry.host} (manifest unknown)"), errors
    assert (f"manifest GET GET http://{plain_registry.host}/v2/base/busybox/manifests/latest-does-not-exist: "
            "HTTP 404: MANIFEST_UNKNOWN: manifest unknown") in run.stderr, run.stderr[-3000:]

    port = _closed_port()
    run = _build(kiln, plain_registry, f"FROM {base_images.busybox_index}\n", "--verbosity=debug",
                 "--destination", f"127.0.0.1:{port}/team/app:1")
    errors = run.errors()
    assert run.returncode == 1 and len(errors) == 1, run.stderr[-3000:]
    assert errors[0].splitlines()[0] == (
        f"cannot reach registry 127.0.0.1:{port} (connection refused) for 127.0.0.1:{port}/team/app:1")
    debug = [l for l in run.stderr.splitlines() if "level=debug" in l and f"127.0.0.1:{port}/v2/" in l]
    assert any("Max retries exceeded" in l and "Connection refused" in l for l in debug), debug  # urllib3's text


def test_failed_run_names_its_dockerfile_line(kiln, plain_registry, base_images):
    run = _build(kiln, plain_registry, f"FROM {base_images.busybox_index}\nRUN true\nRUN exit 3\n", "--no-push")
    assert run.refused() == "Dockerfile:3: The command '/bin/sh -c exit 3' returned a non-zero code: 3"
    assert run.returncode == 3, "the command's exit status is kiln's"


def test_copy_from_a_missing_image_names_the_copy_line(kiln, plain_registry, base_images):
    ref = f"{plain_registry.host}/base/nothing:1"
    run = _build(kiln, plain_registry, f"FROM {base_images.busybox_index}\nRUN true\nCOPY --from={ref} /x /x\n",
                 "--no-push")
    assert run.refused() == f"Dockerfile:3: COPY --from={ref}: image not found in {plain_registry.host} " \
                            "(manifest unknown)"
    run = _build(kiln, plain_registry, f"FROM {base_images.busybox_index}\nRUN --mount=from={ref},target=/m true\n",
                 "--no-push")
    assert run.refused() == f"Dockerfile:2: RUN --mount from={ref}: image not found in {plain_registry.host} " \
                            "(manifest unknown)"


def test_platform_missing_from_the_base_index(kiln, plain_registry, base_images):
    ref = base_images.busybox_index
    # (no RUN: with one, the missing QEMU handler for s390x is the first thing said, before anything is pulled)
    run = _build(kiln, plain_registry, f"FROM --platform=linux/s390x {ref}\nCOPY Dockerfile /\n", "--no-push")
    assert run.refused() == (f"Dockerfile:1: FROM {ref}: index {ref} has no image for platform linux/s390x "
                             "(it has: linux/amd64, linux/arm64/v8)")


def test_invalid_base_reference(kiln, plain_registry):
    run = _build(kiln, plain_registry, "FROM Bad/UPPER:1\nRUN true\n", "--no-push")
    assert run.refused() == "Dockerfile:1: FROM Bad/UPPER:1: invalid reference 'Bad/UPPER:1': repository name " \
                            "must be lowercase"


def test_bad_secret_flag_is_a_usage_error(kiln, plain_registry, base_images):
    """Flag mistakes are cobra's usage errors: `Error: ...` and the help hint on stderr, no build, no log line."""
    run = _build(kiln, plain_registry, f"FROM {base_images.busybox_index}\n", "--no-push", "--secret",
                 "id=token,file=/run/token")
    assert run.returncode == 1 and run.errors() == []
    assert run.stderr == ('Error: invalid argument "id=token,file=/run/token" for "--secret" flag: unknown key '
                          "'file' in secret\nRun 'executor --help' for usage.\n")


def test_broken_docker_config_names_the_file(kiln, basic_registry, base_images, tmp_path):
    config = tmp_path / "docker"
    config.mkdir()
    (config / "config.json").write_text('{"auths": {')
    dest = basic_registry.ref("errors/creds:1")
    run = kiln.build(kiln.context({"Dockerfile": f"FROM {base_images.busybox_index}\nRUN true\n"}),
                     "--destination", dest, "--registry-certificate", f"{basic_registry.host}={basic_registry.ca_path}",
                     "--insecure-registry", base_images.registry.host, docker_config=str(config))
    assert run.refused() == (f"docker config {config}/config.json is not valid JSON: Expecting property name "
                             "enclosed in double quotes: line 1 column 12 (char 11)")
    assert "Retrieving image" not in run.stderr, "checked before the base was pulled"


def test_oci_layout_of_another_version(kiln, plain_registry, base_images, tmp_path):
    layout = tmp_path / "layout"
    layout.mkdir()
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "2.0.0"}')
    run = _build(kiln, plain_registry, f"FROM {base_images.busybox_index}\nLABEL a=b\n", "--no-push",
                 "--oci-layout-path", str(layout))
    assert run.refused() == (f"--oci-layout-path {layout}: {layout}/oci-layout says imageLayoutVersion '2.0.0'; "
                             "kiln writes only 1.0.0 layouts (name an empty directory or a 1.0.0 layout)")
    assert sorted(p.name for p in layout.iterdir()) == ["blobs", "oci-layout"]


def test_context_and_dockerignore_mistakes_name_the_file(kiln, plain_registry, base_images):
    run = _build(kiln, plain_registry, f"FROM {base_images.busybox_index}\n", "--no-push",
                 context_override="tar:///nonexistent/context.tar.gz")
    assert run.refused() == "context tar:///nonexistent/context.tar.gz: /nonexistent/context.tar.gz is not a file"
    ctx = kiln.context({"Dockerfile": f"FROM {base_images.busybox_index}\nCOPY . /x\n", ".dockerignore": "*.o\n!\n"})
    run = kiln.build(ctx, "--no-push", "--insecure-registry", plain_registry.host)
    assert run.refused() == f'{ctx}/.dockerignore:2: illegal exclusion pattern: "!"'


def test_expansion_error_names_the_line(kiln, plain_registry, base_images):
    run = _build(kiln, plain_registry, f"FROM {base_images.busybox_index}\nARG NAME\nENV A=${{NAME:?required}}\n",
                 "--no-push")
    assert run.refused() == 'Dockerfile:3: ENV: failed to process "${NAME:?required}": NAME: required'


def test_failed_build_pushes_nothing(kiln, plain_registry, base_images):
    dest = plain_registry.ref("errors/failed:1")
    run = _build(kiln, plain_registry, f"FROM {base_images.busybox_index}\nUSER 99999999999\nRUN true\n",
                 "--destination", dest)
    assert run.refused() == ("Dockerfile:3: The command '/bin/sh -c true' could not be started: invalid USER "
                             "'99999999999': uid 99999999999 is out of range 0-2147483647")
    assert registry_tags(plain_registry, "errors/failed") == []



@pytest.mark.parametrize("body,line", [
    # (the Dockerfile after its FROM line, the one error line): each names its line and the instruction
    ("COPY does-not-exist /x\n",
     "Dockerfile:2: COPY failed: \"/does-not-exist\": not found in the build context (source 'does-not-exist')"),
    ("COPY --chown=: Dockerfile /x\n", "Dockerfile:2: --chown=:: no user given"),
    ("ARG MODE=10000\nCOPY --chmod=$MODE Dockerfile /x\n",
     "Dockerfile:3: invalid chmod parameter: '10000'. it should be octal string and between 0 and 07777"),
    ("ARG PORT=98080\nEXPOSE ${PORT}\n", "Dockerfile:3: EXPOSE 98080: invalid containerPort: 98080"),
    ("COPY --exclude=[ Dockerfile /x\n",
     "Dockerfile:2: invalid --exclude pattern: syntax error in pattern '[': unclosed '['"),
    ("RUN --mount=type=cache,target=/c,sharing=everyone true\n",
     'Dockerfile:2: RUN --mount=type=cache,target=/c,sharing=everyone: unsupported sharing value "everyone"'),
    ("COPY --from=nothere.invalid/x:1 /x /x\n",
     "Dockerfile:2: COPY --from=nothere.invalid/x:1: cannot reach registry nothere.invalid (unknown host) for "
     "nothere.invalid/x:1"),
    ("ENV A\n", "Dockerfile:2: ENV must have two arguments"),
    ("HEALTHCHECK --interval=5 CMD true\n", 'Dockerfile:2: HEALTHCHECK --interval=5: time: missing unit in duration "5"'),
    ("RUNX true\n", "Dockerfile:2: unknown instruction: RUNX (did you mean RUN?)"),
    ("COPY --form=x Dockerfile /x\n", "Dockerfile:2: COPY: unknown flag: --form (did you mean from?)"),  # BuildKit's
], ids=lambda v: v.strip().splitlines()[-1] if v.endswith("\n") else "refused")
def test_instruction_errors_name_their_line(kiln, plain_registry, base_images, body, line):
    run = _build(kiln, plain_registry, f"FROM {base_images.busybox_index}\n{body}", "--no-push")
    assert run.refused() == line


def test_an_unknown_chown_user_is_root_with_a_warning(kiln, plain_registry, base_images):
    """BuildKit's file-operation rule (measured with docker 26.1.5 and 28.5.2): a --chown name the image's
    /etc/passwd lacks is 0:0, not an error; kiln says so in a warning naming the line's flag."""
    run = _build(kiln, plain_registry, f"FROM {base_images.busybox_index}\nCOPY --chown=nobody2 Dockerfile /x\n",
                 "--no-push").check()
    assert ("level=warning msg=\"--chown nobody2: no user 'nobody2' in the image's /etc/passwd: uid 0 and gid 0, "
            "as docker build\"") in run.stderr, run.stderr[-3000:]


def test_unknown_target_names_the_stages(kiln, plain_registry, base_images):
    run = _build(kiln, plain_registry, f"FROM {base_images.busybox_index} AS build\nFROM build AS final\n", "--no-push",
                 "--target", "tset")
    assert run.refused() == 'Dockerfile: target stage "tset" could not be found (stages: build, final)'


def test_a_bad_source_pattern_matches_nothing(kiln, plain_registry, base_images):
    """A source pattern Go's filepath.Match rejects (an unclosed `[`) matches nothing, as in BuildKit, whose COPY
    allows a wildcard that matches nothing: the build goes on, and says so in a warning."""
    run = _build(kiln, plain_registry, f"FROM {base_images.busybox_index}\nCOPY Docker[file /x\n", "--no-push").check()
    assert 'level=warning msg="COPY: \'Docker[file\' matches no file in the source"' in run.stderr, run.stderr[-3000:]
