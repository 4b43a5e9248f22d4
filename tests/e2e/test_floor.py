"""Issue 15, the floor: a RUN that removes or breaks kiln's own directory leaves the build working, and none of it
ends in a layer (executor/floor.py).

Here the build runs on a scratch root with kiln's directory inside it (`--kaniko-dir ROOT/kaniko`), so the RUN,
chrooted into the root, sees kiln's directory at /kaniko as it does in the executor image: its work directory,
the pulled and written blobs, the stage kept for COPY --from, the cache-mount directory. (The executor image's
own case, with kiln's interpreter, modules, CA bundle and credentials under /kaniko too, runs in
tests/test_executor_image/test_hardened_pod.py.)

`test_nothing_is_imported_after_the_first_run` runs the executor in one process with a hook on the RUN runner:
every module a build with each instruction kind imports after its first RUN is one a `RUN rm -rf /kaniko` in the
executor image would have taken away.
"""
from __future__ import annotations

import io
import json
import os
import sys
import tarfile

import pytest

from executor import floor
from tests.e2e.conftest import REPO, error_messages
from tests.rig.judge import judge_registry_image
from tests.rig.sandbox import run_sandboxed

HERE = os.path.dirname(os.path.abspath(__file__))

HOSTILE_RUNS = {
    "rm": "rm -rf /kaniko",
    "pyc": "find / -xdev -name '*.pyc' -exec rm -f {} +",   # (busybox's find has no -delete)
    "chmod": "chmod -R 000 /kaniko",
}


def _tarball(files: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 1704067200, 0o644
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _dockerfile(base: str, hostile: str, url: str) -> str:
    return f"""\
FROM {base} AS first
RUN echo first > /first && mkdir -p /srv && echo kept > /srv/kept
FROM {base}
RUN echo before > /before
RUN --mount=type=cache,target=/var/cache/app echo cached > /var/cache/app/c && {hostile} && echo hostile-done > /hostile
RUN echo after > /after && ls -A / > /listing
COPY --from=first /first /srv/ /from-first/
COPY --from={base} /etc/passwd /passwd-from-image
COPY note.txt /note.txt
ADD archive.tar /unpacked/
ADD {url} /added.json
COPY <<EOF /heredoc
hello
EOF
RUN --mount=type=cache,target=/var/cache/app --mount=type=tmpfs,target=/scratch --mount=type=bind,source=note.txt,target=/n.txt --mount=type=secret,id=tok cat /n.txt /run/secrets/tok /var/cache/app/c > /mounted; true
USER 1000:1000
RUN id -u > /tmp/uid
"""


def _build(tmp_path_factory, argv_prefix: list[str], dockerfile: str, dest: str, registry, extra=(),
           docker_config: str | None = None):
    root = str(tmp_path_factory.mktemp("floor-root"))
    kdir = os.path.join(root, "kaniko")
    ctx = str(tmp_path_factory.mktemp("floor-ctx"))
    for name, data in {"Dockerfile": dockerfile.encode(), "note.txt": b"note\n", "tok": b"s3cret\n",
                       "archive.tar": _tarball({"a.txt": "from the archive\n"})}.items():
        with open(os.path.join(ctx, name), "wb") as f:
            f.write(data)
    argv = [*argv_prefix, "--context", ctx, "--root", root, "--kaniko-dir", kdir, "--log-format", "text",
            "--destination", dest, "--insecure-registry", registry.host, "--secret", f"id=tok,src={ctx}/tok",
            "--cache=true", *extra]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CI_REGISTRY", "DOCKER_CONFIG"))}
    env["PYTHONPATH"] = REPO
    if docker_config:
        env["DOCKER_CONFIG"] = docker_config
    return run_sandboxed(argv, writable=[root, ctx], env=env, cwd=REPO, timeout=600), root, ctx


@pytest.mark.parametrize("hostile", sorted(HOSTILE_RUNS))
def test_a_run_that_breaks_kilns_directory_leaves_the_build_working(hostile, tmp_path_factory, base_images,
                                                                    plain_registry):
    dest = plain_registry.ref(f"e2e/floor-{hostile}:1")
    url = plain_registry.url("/v2/")
    proc, root, _ = _build(tmp_path_factory, [sys.executable, "-m", "executor"],
                           _dockerfile(base_images.busybox_index, HOSTILE_RUNS[hostile], url), dest, plain_registry)
    assert proc.returncode == 0, proc.stderr[-6000:]
    assert error_messages(proc.stderr) == []
    if hostile != "pyc":   # (the scratch root's /kaniko holds no byte code: nothing to put back)
        assert "changed kiln's own files under" in proc.stderr and "kiln put them back and goes on" in proc.stderr, \
            proc.stderr[-4000:]
    report = judge_registry_image(plain_registry, dest)
    fs = report.filesystem()
    assert not any(p == "kaniko" or p.startswith("kaniko/") for p in fs), sorted(p for p in fs if "kaniko" in p)
    for layer in report.layers:
        assert not any("kaniko" in name for name in layer.names()), layer.names()
    assert report.read("hostile") == b"hostile-done\n"
    assert report.read("after") == b"after\n"
    assert "kaniko" in report.read("listing").decode().split()    # made again before the next RUN
    assert report.read("from-first/first") == b"first\n" and report.read("from-first/kept") == b"kept\n"
    assert report.read("note.txt") == b"note\n" and report.read("unpacked/a.txt") == b"from the archive\n"
    assert report.read("heredoc") == b"hello\n" and report.read("passwd-from-image").startswith(b"root:")
    # the cache mount works on; `rm -rf /kaniko` emptied the cache (its directory is kiln's), as it would a cache
    # of BuildKit's that a RUN deleted through its mount
    assert report.read("mounted") == (b"note\ns3cret\n" if hostile == "rm" else b"note\ns3cret\ncached\n")
    assert report.read("tmp/uid") == b"1000\n"
    assert fs["added.json"][1].size > 0
    # kiln's directory is back where the RUN broke it, and only its directory
    assert os.path.isdir(os.path.join(root, "kaniko"))


def test_nothing_is_imported_after_the_first_run(tmp_path_factory, base_images, plain_registry, token_registry,
                                                 tmp_path):
    """The push goes to the TLS registry with bearer tokens (its CA given as kaniko's additional bundle and with
    --registry-certificate), so TLS, token and credential code runs after the RUNs; --sbom and --provenance make
    their attestations after the RUNs too."""
    late_file = str(tmp_path / "late.json")
    dest = token_registry.ref("private/floor-imports:1")
    harness = [sys.executable, "-I", os.path.join(HERE, "floor_harness.py"), late_file]
    proc, _, _ = _build(tmp_path_factory, harness, _dockerfile(base_images.busybox_index, "true",
                                                                plain_registry.url("/v2/")), dest, plain_registry,
                        extra=["--sbom", "--provenance=mode=max",
                               "--tar-path", str(tmp_path / "image.tar"), "--digest-file", str(tmp_path / "digest"),
                               "--oci-layout-path", str(tmp_path / "layout"),
                               "--registry-certificate", f"{token_registry.host}={token_registry.ca_path}"],
                        docker_config=token_registry.docker_config_dir)
    assert proc.returncode == 0, proc.stderr[-6000:]
    with open(late_file) as f:
        result = json.load(f)
    assert result["ran"], "the harness saw no RUN"
    assert result["late"] == [], f"imported after the first RUN (add them to executor.floor.LAZY_MODULES): " \
                                 f"{result['late']}"
    assert {"executor.attest.sbom.spdx", "executor.attest.provenance"} <= set(result["loaded"])   # they ran
    # this Dockerfile has ADD: the git group (an ADD of a git repository) is held too
    assert {"dulwich.client", "executor.engine.gitclone"} <= set(result["before"])


def test_a_build_without_add_leaves_git_out_of_the_preload(tmp_path_factory, base_images, plain_registry,
                                                           tmp_path):
    """No ADD, no ONBUILD, no --sbom or --provenance: nothing after the first RUN can reach dulwich or the
    attestation modules, so the preload (which a build with a RUN pays before it) leaves the git and attest
    groups out, and nothing is imported late all the same."""
    late_file = str(tmp_path / "late.json")
    dest = plain_registry.ref("e2e/floor-no-add:1")
    harness = [sys.executable, "-I", os.path.join(HERE, "floor_harness.py"), late_file]
    dockerfile = (f"FROM {base_images.busybox_index}\nRUN echo before > /before\nRUN rm -rf /kaniko\n"
                  "COPY note.txt /note.txt\nRUN echo after > /after\n")
    proc, _, _ = _build(tmp_path_factory, harness, dockerfile, dest, plain_registry)
    assert proc.returncode == 0, proc.stderr[-6000:]
    with open(late_file) as f:
        result = json.load(f)
    assert result["ran"] and result["late"] == [], result["late"]
    assert not [m for m in result["loaded"] if m.startswith(("dulwich", "executor.engine.gitclone"))]
    assert not [m for m in result["loaded"] if m.startswith(("executor.attest.sbom", "executor.attest.provenance",
                                                             "license_expression", "packageurl", "uuid"))]
    assert {"executor.commands.copy", "executor.attest.attach"} <= set(result["before"])   # the rest is held
    report = judge_registry_image(plain_registry, dest)
    assert report.read("after") == b"after\n" and report.read("note.txt") == b"note\n"


def test_preload_leaves_out_only_the_groups_named(tmp_path):
    """In a fresh interpreter: the git group's modules stay unloaded, every other kiln module is loaded."""
    code = ("import json, sys; from executor import floor; "
            "failed = floor.preload(floor.GROUPS['git']); "
            "print(json.dumps({'failed': failed, 'loaded': sorted(sys.modules)}))")
    proc = run_sandboxed([sys.executable, "-c", code], writable=[str(tmp_path)], cwd=REPO,
                         env={**os.environ, "PYTHONPATH": REPO})
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout)
    assert result["failed"] == []
    loaded = set(result["loaded"])
    assert not [m for m in loaded if m.startswith(("dulwich", "executor.engine.gitclone", "executor.engine.gitplan"))]
    assert {"executor.commands.copy", "executor.cache.steps", "executor.cloud.aws", "snapshot.parallel_walk",
            "zstandard"} <= loaded
    # every module file of kiln is held (a directory without __init__.py was once skipped: executor/attest)
    on_disk = set()
    for top in ("executor", "snapshot"):
        for dirpath, dirnames, filenames in os.walk(os.path.join(REPO, top)):
            dirnames[:] = [d for d in dirnames if d != "__pycache__"]
            package = os.path.relpath(dirpath, REPO).replace(os.sep, ".")
            on_disk |= {package if n == "__init__.py" else f"{package}.{n[:-3]}" for n in filenames
                        if n.endswith(".py") and n[:-3] not in ("__main__", "_nsinit")}
    missing = sorted(m for m in on_disk - loaded if not m.startswith(("executor.engine.gitclone",
                                                                      "executor.engine.gitplan")))
    assert missing == [], f"kiln modules the preload does not hold: {missing}"
    with pytest.raises(ValueError, match="no module group 'gti' \\(known: attest, git\\)"):
        floor.Floor("/k", "/w").leave_out("gti")


def test_a_run_that_removes_the_extracted_context_stops_the_build_naming_it(tmp_path_factory, base_images,
                                                                            plain_registry):
    """A tar:// context is extracted under kiln's directory: a RUN that removes it takes what no layer holds, so
    the floor cannot make it again; the build stops at that RUN, saying what was lost, and pushes nothing."""
    root = str(tmp_path_factory.mktemp("floor-root"))
    kdir = os.path.join(root, "kaniko")
    out = str(tmp_path_factory.mktemp("floor-ctx"))
    context = os.path.join(out, "context.tar")
    with open(context, "wb") as f:
        f.write(_tarball({"Dockerfile": f"FROM {base_images.busybox_index}\nRUN rm -rf /kaniko\n"
                                        "COPY note.txt /note.txt\n", "note.txt": "note\n"}))
    dest = plain_registry.ref("e2e/floor-context:1")
    argv = [sys.executable, "-m", "executor", "--context", f"tar://{context}", "--root", root, "--kaniko-dir", kdir,
            "--log-format", "text", "--destination", dest, "--insecure-registry", plain_registry.host]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CI_REGISTRY", "DOCKER_CONFIG"))}
    env["PYTHONPATH"] = REPO
    proc = run_sandboxed(argv, writable=[root, out], env=env, cwd=REPO, timeout=600)
    assert proc.returncode == 1, proc.stderr[-4000:]
    (message,) = error_messages(proc.stderr)
    assert message.startswith("Dockerfile:2: step `RUN rm -rf /kaniko` removed what kiln kept for the rest of the "
                              f"build under {kdir} ({kdir}/build-"), message
    assert message.endswith("a stage kept for COPY --from, an image root or the build context), which kiln cannot "
                            "make again: leave kiln's directory alone in RUN steps"), message
    assert "Traceback" not in proc.stderr and "Pushed" not in proc.stderr
