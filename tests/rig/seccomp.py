"""The container runtime's default seccomp profile, in the format runtimes take (OCI runtime spec
``linux.seccomp``).

Debian's containers-common ships it at /usr/share/containers/seccomp.json (the profile CRI-O and podman
apply; package golang-github-containers-common). It is written in moby's profile format: one list of
syscall rules, each possibly conditional (``includes``/``excludes`` by capability, architecture, minimum
kernel), plus an ``archMap``. A runtime never reads that format; the engine converts it for one container:
rules kept or dropped by the container's bounding capabilities, the machine's architecture and kernel,
the archMap reduced to the native architecture and its sub-architectures. ``convert`` does what moby's
profiles/seccomp/seccomp_linux.go ``setupSeccomp`` does (read in moby/moby at that path), carrying the
errno return values (``defaultErrnoRet``, ``errnoRet``) that newer profiles and runc 1.1 use.
"""
from __future__ import annotations

import json
import os
import platform
import re

DEFAULT_PROFILE = "/usr/share/containers/seccomp.json"

# the machine's architecture -> the profile's arch name (moby's goToNative) and libseccomp's (nativeToSeccomp)
_NATIVE = {"x86_64": "amd64", "aarch64": "arm64", "i686": "x86", "ppc64le": "ppc64le", "s390x": "s390x"}
_SCMP = {"amd64": "SCMP_ARCH_X86_64", "arm64": "SCMP_ARCH_AARCH64", "x86": "SCMP_ARCH_X86",
         "ppc64le": "SCMP_ARCH_PPC64LE", "s390x": "SCMP_ARCH_S390X"}


def _kernel_at_least(wanted: str, release: str) -> bool:
    def parts(text: str) -> tuple[int, ...]:
        return tuple(int(p) for p in re.findall(r"\d+", text)[:3])
    return parts(release) >= parts(wanted)


def convert(profile: dict, capabilities: list[str], arch: str | None = None,
            kernel: str | None = None) -> dict:
    """The runtime spec's ``linux.seccomp`` for a container whose bounding set is ``capabilities``."""
    native = arch or _NATIVE.get(platform.machine(), platform.machine())
    release = kernel or platform.release()
    caps = {c if c.startswith("CAP_") else "CAP_" + c for c in capabilities}
    if profile.get("architectures") and profile.get("archMap"):
        raise ValueError("'architectures' and 'archMap' were both given in the seccomp profile")
    out: dict = {"defaultAction": profile["defaultAction"]}
    if "defaultErrnoRet" in profile:
        out["defaultErrnoRet"] = profile["defaultErrnoRet"]
    arches = list(profile.get("architectures") or [])
    for entry in profile.get("archMap") or []:
        if entry["architecture"] == _SCMP.get(native):
            arches = [entry["architecture"], *entry.get("subArchitectures", [])]
            break
    if arches:
        out["architectures"] = arches
    rules = []
    for call in profile.get("syscalls", []):
        inc, exc = call.get("includes") or {}, call.get("excludes") or {}
        if native in (exc.get("arches") or []):
            continue
        if any(c in caps for c in exc.get("caps") or []):
            continue
        if exc.get("minKernel") and _kernel_at_least(exc["minKernel"], release):
            continue
        if inc.get("arches") and native not in inc["arches"]:
            continue
        if inc.get("caps") and not all(c in caps for c in inc["caps"]):
            continue
        if inc.get("minKernel") and not _kernel_at_least(inc["minKernel"], release):
            continue
        names = call.get("names") or ([call["name"]] if call.get("name") else [])
        rule: dict = {"names": names, "action": call["action"]}
        if "errnoRet" in call:
            rule["errnoRet"] = call["errnoRet"]
        if call.get("args"):
            rule["args"] = [{"index": a["index"], "value": a["value"], "valueTwo": a.get("valueTwo", 0),
                             "op": a["op"]} for a in call["args"]]
        rules.append(rule)
    out["syscalls"] = rules
    return out


def default_profile(capabilities: list[str], path: str = DEFAULT_PROFILE) -> dict:
    """containers-common's default profile converted for a container with these capabilities."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} is missing: install Debian's golang-github-containers-common "
                                "(scripts/setup.sh does)")
    with open(path) as f:
        return convert(json.load(f), capabilities)
