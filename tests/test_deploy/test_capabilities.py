"""Issue 15: every capability deploy/ adds back is needed, shown by a build that drops exactly that one, and the
other security settings too (allowPrivilegeEscalation, readOnlyRootFilesystem, runAsNonRoot).

The executor image kiln built of itself runs under runc as deploy/'s pods do: build-job-hardened.yaml's (a user
namespace, 0..65535 -> host 100000+; containers-common's default seccomp profile converted for the pod's
capabilities; exactly the manifest's capabilities) minus one capability, and build-job.yaml's (no user
namespace) minus MKNOD. The probe image (tests/test_deploy/security.py) and one Dockerfile give each capability
a distinct step that needs it:

    FROM probe                      extraction: /home/app 1000:1000 (CHOWN, then FOWNER for its mode), a setgid
                                    file of group 50 (FSETID), a file with file capabilities (SETFCAP), a
                                    device node outside /dev (MKNOD; skipped in a user namespace)
    RUN mkdir -m 700 /private ...   its snapshot reads a directory only uid 1000 may read (DAC_OVERRIDE)
    USER 1000:1000
    RUN (sleep 300 &); id -u        switching to the USER (SETUID; every RUN's setgroups, the first one's too,
                                    takes SETGID); its leftover process of uid 1000 is ended without CAP_KILL

Each dropped capability fails the build at its step with kiln's message naming it. KILL, MKNOD (in a user
namespace), SYS_ADMIN and the default set's NET_RAW, SETPCAP, NET_BIND_SERVICE, SYS_CHROOT and AUDIT_WRITE are
needed by none of it: the full build passes without them.

Timing (2-core machine, image cached): ~3-5 s per build; the module ~1 min.
"""
from __future__ import annotations

import os
import re
import time

import pytest
import yaml

from tests.test_deploy.security import HARDENED, WITHOUT_USER_NAMESPACE, pod_settings, probe_image, wide_id_image
from tests.test_executor_image.kilnimage import Mount, Pod, context_dir, kiln_built_image

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEPLOY = os.path.join(REPO, "deploy")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.environ.get("KILN_SKIP_SLOW") == "1", reason="KILN_SKIP_SLOW=1"),
]

PROBE_DOCKERFILE = """\
FROM {probe}
RUN mkdir -m 700 /private && echo key > /private/key && chown -R 1000:1000 /private
USER 1000:1000
RUN (sleep 300 > /dev/null 2>&1 &) ; id -u > /tmp/uid
"""
FIRST_RUN = "RUN mkdir -m 700 /private && echo key > /private/key && chown -R 1000:1000 /private"
USER_RUN = "RUN (sleep 300 > /dev/null 2>&1 &) ; id -u > /tmp/uid"

# capability -> (the step that fails without it, what kiln says)
NEEDED_BY = {
    "CHOWN": (FIRST_RUN, ["entry 'home/app/': cannot chown /home/app: [Errno 1] Operation not permitted",
                          "kiln needs CAP_CHOWN to give files the owners the image says, and this container "
                          "lacks it: add CHOWN to the container's securityContext capabilities"]),
    "FOWNER": (FIRST_RUN, ["entry 'home/app/': cannot chmod /home/app: [Errno 1] Operation not permitted",
                           "kiln needs CAP_FOWNER"]),
    "FSETID": (FIRST_RUN, ["the kernel cleared the setgid bit of /usr/local/bin/sgid-tool (group 50) when kiln set "
                           "its mode 2755", "kiln needs CAP_FSETID"]),
    "SETFCAP": (FIRST_RUN, ["cannot set xattr security.capability on /usr/local/bin/binder", "kiln needs CAP_SETFCAP"]),
    "DAC_OVERRIDE": (FIRST_RUN, ["snapshot: cannot read /private: Permission denied", "kiln needs CAP_DAC_OVERRIDE"]),
    # every RUN sets its groups (setgroups, as runc does for root too): the first RUN already needs SETGID
    "SETGID": (FIRST_RUN, ["switching to user 0:0: Operation not permitted", "kiln needs CAP_SETGID"]),
    "SETUID": (USER_RUN, ["switching to user 1000:1000: Operation not permitted", "kiln needs CAP_SETUID"]),
    "MKNOD": (FIRST_RUN, ["entry 'chroot/dev/null': cannot mknod /chroot/dev/null: [Errno 1] Operation not permitted",
                          "kiln needs CAP_MKNOD"]),
}
_LINE = re.compile(r"^(INFO|WARN|ERRO|FATA)\[\d+\] (.*?)\s*$")
_STEP = re.compile(r"^(FROM|RUN|COPY|ADD|USER|WORKDIR|ENV|ARG|LABEL|ENTRYPOINT|CMD|SHELL|VOLUME|EXPOSE)\b")


def _job(name: str) -> tuple[dict, dict]:
    with open(os.path.join(DEPLOY, "kubernetes", name)) as f:
        (job,) = [d for d in yaml.safe_load_all(f) if d and d["kind"] == "Job"]
    spec = job["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    return spec, container


def failed_step(stderr: str) -> tuple[str, str]:
    """(the last Dockerfile step kiln started, its error line) of a failed build's log."""
    step, error = "", ""
    for line in stderr.splitlines():
        m = _LINE.match(line)
        if not m:
            continue
        level, text = m.groups()
        if level == "INFO" and _STEP.match(text):
            step = text
        elif level in ("ERRO", "FATA"):
            error = text
            break
    return step, error


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return str(tmp_path_factory.mktemp("capabilities"))


@pytest.fixture(scope="module")
def probe(plain_registry, work):
    return probe_image(plain_registry, work)


@pytest.fixture(scope="module")
def image(plain_registry, work):
    return kiln_built_image(plain_registry, "executor", work)


def _build(image, work, registry, dockerfile: str, settings: dict, caps: list[str]):
    ctx = context_dir(work, {"Dockerfile": dockerfile})
    pod = Pod(image, work, extra_args=["--context", "dir:///workspace", "--no-push", "--insecure-registry",
                                       registry.host], mounts=[Mount(ctx, "/workspace", rw=True)],
              overlay_rootfs=True, **{**settings, "caps": caps})
    t0 = time.monotonic()
    p = pod.run(timeout=300)
    print(f"\n{sorted(caps)} userns={settings['userns']}: exit {p.returncode} in {time.monotonic() - t0:.1f}s")
    return p


def test_deploy_lists_the_tested_capabilities():
    hardened_spec, hardened = _job("build-job-hardened.yaml")
    plain_spec, plain = _job("build-job.yaml")
    assert sorted(pod_settings(hardened_spec, hardened)["caps"]) == sorted(HARDENED)
    assert sorted(pod_settings(plain_spec, plain)["caps"]) == sorted(WITHOUT_USER_NAMESPACE)
    assert set(NEEDED_BY) == set(WITHOUT_USER_NAMESPACE)


def test_the_hardened_set_builds(image, work, plain_registry, probe):
    """build-job-hardened.yaml's settings, all of them: the probe builds; no KILL, no MKNOD, no SYS_ADMIN."""
    spec, container = _job("build-job-hardened.yaml")
    settings = pod_settings(spec, container)
    assert settings["userns"] and settings["seccomp"] and not settings["no_new_privileges"]
    p = _build(image, work, plain_registry, PROBE_DOCKERFILE.format(probe=probe), settings, settings["caps"])
    assert p.returncode == 0, p.stderr[-5000:]
    # MKNOD would not help: the kernel makes no device node in a user namespace; kiln says so and goes on
    assert "device node /chroot/dev/null (char 1:3) not created: device nodes cannot be created in a user " \
           "namespace" in p.stderr, p.stderr[-3000:]
    # neither can a trusted.* xattr be set (CAP_SYS_ADMIN of the initial namespace): said, and left out
    assert "entry etc/trusted-note: xattr trusted.kiln-probe not kept on /etc/trusted-note: Operation not " \
           "permitted" in p.stderr, p.stderr[-3000:]
    # the RUN's leftover `sleep` of uid 1000 was ended without CAP_KILL (from a child of kiln with its uid)
    assert "survived SIGKILL" not in p.stderr and "still open" not in p.stderr, p.stderr[-3000:]


@pytest.mark.parametrize("dropped", HARDENED)
def test_each_capability_of_the_hardened_job_is_needed(dropped, image, work, plain_registry, probe):
    spec, container = _job("build-job-hardened.yaml")
    settings = pod_settings(spec, container)
    caps = [c for c in settings["caps"] if c != dropped]
    assert len(caps) == len(settings["caps"]) - 1
    p = _build(image, work, plain_registry, PROBE_DOCKERFILE.format(probe=probe), settings, caps)
    assert p.returncode != 0, f"the build passed without {dropped}"
    step, error = failed_step(p.stderr)
    want_step, messages = NEEDED_BY[dropped]
    assert step == want_step, (step, error, p.stderr[-3000:])
    for text in messages:
        assert text in error, (text, error)
    assert "Traceback" not in p.stderr


def test_mknod_is_needed_without_a_user_namespace(image, work, plain_registry, probe):
    """build-job.yaml (no user namespace): the base image's device node outside /dev needs MKNOD."""
    spec, container = _job("build-job.yaml")
    settings = pod_settings(spec, container)
    assert not settings["userns"] and settings["seccomp"]
    p = _build(image, work, plain_registry, PROBE_DOCKERFILE.format(probe=probe), settings, settings["caps"])
    assert p.returncode == 0, p.stderr[-5000:]
    assert "device node" not in p.stderr
    p = _build(image, work, plain_registry, PROBE_DOCKERFILE.format(probe=probe), settings,
               [c for c in settings["caps"] if c != "MKNOD"])
    step, error = failed_step(p.stderr)
    want_step, messages = NEEDED_BY["MKNOD"]
    assert p.returncode != 0 and step == want_step, (step, error)
    for text in messages:
        assert text in error, (text, error)


def test_an_owner_outside_the_user_namespace_is_named(image, work, plain_registry):
    """A base layer's file owned by uid 70000: in the pod's user namespace (0..65535) no chown can give it;
    the build stops at the step that extracts it, saying so (as docker's rootless mode refuses such a layer)."""
    spec, container = _job("build-job-hardened.yaml")
    settings = pod_settings(spec, container)
    base = wide_id_image(plain_registry, work)
    p = _build(image, work, plain_registry, f"FROM {base}\nRUN ls -ln /srv\n", settings, settings["caps"])
    step, error = failed_step(p.stderr)
    assert p.returncode == 1 and step == "RUN ls -ln /srv", (step, error)
    assert "entry 'srv/wide': cannot chown /srv/wide: [Errno 22] Invalid argument (uid 70000 and gid 70000 cannot be " \
           "given in this container's user namespace, which maps uids 0-65535 and gids 0-65535)" in error, error


def test_read_only_root_file_system_cannot_apply(image, work, plain_registry, probe):
    """readOnlyRootFilesystem: true -- a build on / writes the root itself, which no volume can stand in for."""
    spec, container = _job("build-job-hardened.yaml")
    settings = {**pod_settings(spec, container), "readonly_rootfs": True}
    p = _build(image, work, plain_registry, PROBE_DOCKERFILE.format(probe=probe), settings, settings["caps"])
    assert p.returncode == 1
    assert "the container's root file system is read-only (readOnlyRootFilesystem: true): a build on / unpacks " \
           "the base image over it" in p.stderr, p.stderr[-3000:]
    assert "Traceback" not in p.stderr


def test_run_as_non_root_cannot_apply(image, work, plain_registry, probe):
    """runAsNonRoot: true (runAsUser 1000) -- refused at once, saying why; with hostUsers: false the container's
    root already is an unprivileged uid on the node."""
    spec, container = _job("build-job-hardened.yaml")
    settings = {**pod_settings(spec, container), "user": (1000, 1000)}
    p = _build(image, work, plain_registry, PROBE_DOCKERFILE.format(probe=probe), settings, settings["caps"])
    assert p.returncode == 1
    assert "kiln runs as uid 1000, but a build on / unpacks images over the container's files" in p.stderr, \
        p.stderr[-3000:]
    assert "Traceback" not in p.stderr


SETUID_DOCKERFILE = """\
FROM {base}
RUN passwd -d root && useradd -m -u 1000 app
USER app
RUN su -c "id -u > /tmp/su-uid" root && cat /tmp/su-uid && grep -E '^(NoNewPrivs|CapBnd|CapEff)' /proc/self/status
"""


@pytest.mark.parametrize("escalation", [True, False], ids=["allowPrivilegeEscalation", "no_new_privs"])
def test_allow_privilege_escalation_is_what_setuid_tools_in_run_need(escalation, image, work, plain_registry,
                                                                     debian_base):
    """A RUN as USER app running the setuid `su` (Debian's, root's password emptied by the RUN before): works
    with allowPrivilegeEscalation: true (deploy/'s setting); with false (no_new_privs on the container, which
    every RUN inherits) the kernel ignores the setuid bit and that step fails as su reports it."""
    spec, container = _job("build-job-hardened.yaml")
    settings = pod_settings(spec, container)
    assert settings["no_new_privileges"] is False
    settings["no_new_privileges"] = not escalation
    p = _build(image, work, plain_registry, SETUID_DOCKERFILE.format(base=debian_base), settings, settings["caps"])
    if escalation:
        assert p.returncode == 0, p.stderr[-4000:]
        assert "INFO[" in p.stderr and re.search(r"\] 0\s*$", p.stderr, re.M), p.stderr[-3000:]
        assert re.search(r"NoNewPrivs:\s+0", p.stderr)
    else:
        step, error = failed_step(p.stderr)
        assert step.startswith("RUN su -c"), (step, error)
        assert "su: Authentication failure" in p.stderr, p.stderr[-3000:]
        assert error.startswith("Dockerfile:4: The command '/bin/sh -c su -c") and error.endswith("returned a non-zero code: 1")
