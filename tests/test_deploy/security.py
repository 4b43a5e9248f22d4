"""What deploy/'s securityContexts mean for a runc bundle, and the probe image the capability tests build from.

* ``HARDENED`` / ``WITHOUT_USER_NAMESPACE``: the capabilities deploy/ adds back, in the user-namespaced
  (build-job-hardened.yaml) and the plain (build-job.yaml) pod. Each is shown needed by a test of
  test_capabilities.py that drops exactly that one; test_manifests.py checks that deploy/ lists these and no
  others.
* ``pod_settings(pod_spec, container)``: the `Pod` keyword arguments a manifest's pod and container security
  settings stand for (hostUsers -> user namespace, seccompProfile RuntimeDefault -> the runtime's default
  profile, allowPrivilegeEscalation -> no_new_privs, readOnlyRootFilesystem, runAsUser/runAsGroup, the exact
  capability set).
* ``probe_image(registry, workdir)``: a busybox image (GNU tar, never kiln) holding one entry per capability
  its extraction needs: /home/app owned by 1000 (CHOWN, and FOWNER for its mode and times), a setgid file of
  group 50 (FSETID), a file with file capabilities (SETFCAP), a device node outside /dev (MKNOD), and a file
  with a `trusted.*` xattr, which takes CAP_SYS_ADMIN of the initial user namespace: no pod can set it.
"""
from __future__ import annotations

import os
import shutil
import struct
import subprocess

from tests.rig.images import EPOCH, Layout, add_image, make_busybox_rootfs, skopeo_copy

HARDENED = ("CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "SETUID", "SETGID", "SETFCAP")
WITHOUT_USER_NAMESPACE = HARDENED + ("MKNOD",)

# struct vfs_cap_data, revision 2 (linux/capability.h): cap_net_bind_service=ep
CAP_NET_BIND_SERVICE_EP = struct.pack("<5I", 0x02000000 | 0x1, 1 << 10, 0, 0, 0)


def caps_of(security_context: dict) -> list[str]:
    caps = security_context["capabilities"]
    assert caps["drop"] == ["ALL"], "deploy/ drops every capability and adds back what a build needs"
    return list(caps.get("add", []))


def pod_settings(pod_spec: dict, container: dict) -> dict:
    """Pod(...) keyword arguments for this container of this pod spec."""
    pod_sc = pod_spec.get("securityContext") or {}
    sc = container.get("securityContext") or {}
    seccomp = (sc.get("seccompProfile") or pod_sc.get("seccompProfile") or {}).get("type")
    assert seccomp in ("RuntimeDefault", None), seccomp
    uid = sc.get("runAsUser", pod_sc.get("runAsUser", 0))
    gid = sc.get("runAsGroup", pod_sc.get("runAsGroup", uid))
    return {
        "caps": caps_of(sc),
        "userns": pod_spec.get("hostUsers", True) is False,
        "seccomp": seccomp == "RuntimeDefault",
        "no_new_privileges": sc.get("allowPrivilegeEscalation", True) is False,
        "readonly_rootfs": bool(sc.get("readOnlyRootFilesystem", False)),
        "user": (uid, gid),
    }


_PROBES: dict[str, str] = {}


def probe_image(registry, workdir: str) -> str:
    """The probe image on `registry` (pushed once per session); -> its reference."""
    if registry.host in _PROBES:
        return _PROBES[registry.host]
    stage = os.path.join(workdir, "probe-stage")
    shutil.rmtree(stage, ignore_errors=True)
    busybox = shutil.which("busybox") or "/bin/busybox"
    applets = sorted(set(subprocess.run([busybox, "--list"], capture_output=True, text=True, check=True).stdout.split()))
    make_busybox_rootfs(stage, busybox, applets)
    local = os.path.join(stage, "usr", "local", "bin")
    os.makedirs(local)
    for d in ("usr", "usr/local", "usr/local/bin"):
        os.chmod(os.path.join(stage, d), 0o755)
    binder = os.path.join(local, "binder")
    shutil.copyfile(busybox, binder)
    os.chmod(binder, 0o755)
    os.setxattr(binder, "security.capability", CAP_NET_BIND_SERVICE_EP)
    sgid = os.path.join(local, "sgid-tool")
    shutil.copyfile(busybox, sgid)
    os.chown(sgid, 0, 50)
    os.chmod(sgid, 0o2755)
    dev = os.path.join(stage, "chroot", "dev")
    os.makedirs(dev)
    os.chmod(os.path.join(stage, "chroot"), 0o755)
    os.chmod(dev, 0o755)
    os.mknod(os.path.join(dev, "null"), 0o666 | 0o020000, os.makedev(1, 3))
    os.chmod(os.path.join(dev, "null"), 0o666)
    with open(os.path.join(stage, "etc", "trusted-note"), "w") as f:
        f.write("carries a trusted.* xattr\n")
    os.setxattr(os.path.join(stage, "etc", "trusted-note"), "trusted.kiln-probe", b"1")
    tar_path = os.path.join(workdir, "probe.tar")
    subprocess.run(["tar", "--sort=name", f"--mtime=@{EPOCH}", "--numeric-owner", "--format=posix",
                    "--pax-option=delete=atime,delete=ctime", "--xattrs", "--xattrs-include=security.capability", "--xattrs-include=trusted.*",
                    "-C", stage, "-cf", tar_path, *sorted(os.listdir(stage))], check=True)
    layout = Layout(os.path.join(workdir, "probe-layout"))
    layout.tag("probe", add_image(layout, tar_path, "amd64", "gzip", None, "capability probe (busybox-static)"))
    ref = registry.ref("base/capability-probe:1")
    skopeo_copy(f"oci:{layout.path}:probe", f"docker://{ref}", *registry.skopeo_args("dest"))
    _PROBES[registry.host] = ref
    return ref


def wide_id_image(registry, workdir: str) -> str:
    """busybox with one file owned by uid and gid 70000, outside the 0..65535 a pod's user namespace maps."""
    key = registry.host + "/wide"
    if key in _PROBES:
        return _PROBES[key]
    stage = os.path.join(workdir, "wide-stage")
    shutil.rmtree(stage, ignore_errors=True)
    busybox = shutil.which("busybox") or "/bin/busybox"
    make_busybox_rootfs(stage, busybox, ["sh", "ls", "id"])
    os.makedirs(os.path.join(stage, "srv"))
    os.chmod(os.path.join(stage, "srv"), 0o755)
    with open(os.path.join(stage, "srv", "wide"), "w") as f:
        f.write("owned by 70000\n")
    os.chown(os.path.join(stage, "srv", "wide"), 70000, 70000)
    tar_path = os.path.join(workdir, "wide.tar")
    subprocess.run(["tar", "--sort=name", f"--mtime=@{EPOCH}", "--numeric-owner", "--format=gnu", "-C", stage,
                    "-cf", tar_path, *sorted(os.listdir(stage))], check=True)
    layout = Layout(os.path.join(workdir, "wide-layout"))
    layout.tag("wide", add_image(layout, tar_path, "amd64", "gzip", None, "an owner outside 0..65535"))
    ref = registry.ref("base/wide-ids:1")
    skopeo_copy(f"oci:{layout.path}:wide", f"docker://{ref}", *registry.skopeo_args("dest"))
    _PROBES[key] = ref
    return ref


def gitlab_runner_settings(path: str, name: str | None = None) -> dict:
    """Pod(...) keyword arguments for the build container of the runner config.toml at `path` (deploy/gitlab/
    runner-config.toml): its build_container_security_context, and the pod spec patch's pod fields. `name`:
    which runner of a config that has several (runner-config-multiarch.toml)."""
    import tomllib

    import yaml

    with open(path, "rb") as f:
        runners = tomllib.load(f)["runners"]
    if name is None:
        (runner,) = runners
    else:
        (runner,) = [r for r in runners if r["name"] == name]
    k8s = runner["kubernetes"]
    sc = k8s["build_container_security_context"]
    caps = sc["capabilities"]
    assert caps["drop"] == ["ALL"], "drop everything and add back what a build needs"
    patch: dict = {}
    for p in k8s.get("pod_spec", []):
        assert p["patch_type"] == "strategic"
        patch.update(yaml.safe_load(p["patch"]))
    assert "FF_USE_ADVANCED_POD_SPEC_CONFIGURATION=true" in runner.get("environment", []) or not patch
    seccomp = ((patch.get("securityContext") or {}).get("seccompProfile") or {}).get("type")
    uid = sc.get("run_as_user", 0)
    return {
        "caps": list(caps.get("add", [])),
        "userns": patch.get("hostUsers", True) is False,
        "seccomp": seccomp == "RuntimeDefault",
        "no_new_privileges": sc.get("allow_privilege_escalation", True) is False,
        "readonly_rootfs": bool(sc.get("read_only_root_filesystem", False)),
        "user": (uid, uid),
        "automount_token": patch.get("automountServiceAccountToken", True),
    }
