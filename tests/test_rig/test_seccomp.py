"""The rig's conversion of containers-common's seccomp profile (moby's format) to the runtime spec's."""
from __future__ import annotations

import os

import pytest

from tests.rig.seccomp import DEFAULT_PROFILE, convert, default_profile

PROFILE = {
    "defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38,
    "archMap": [{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]},
                {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]}],
    "syscalls": [
        {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
        {"names": ["chroot"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_CHROOT"]}},
        {"names": ["chroot"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1, "excludes": {"caps": ["CAP_SYS_CHROOT"]}},
        {"names": ["arch_prctl"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["amd64"]}},
        {"names": ["cacheflush"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["arm64"]}},
        {"names": ["newthing"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "7.1"}},
        {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
         "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]},
    ],
}


def _names(spec: dict) -> list[tuple[str, str]]:
    return [(n, r["action"]) for r in spec["syscalls"] for n in r["names"]]


def test_rules_kept_by_capability_architecture_and_kernel():
    without = convert(PROFILE, ["CHOWN"], arch="amd64", kernel="6.18.0")
    assert without["defaultAction"] == "SCMP_ACT_ERRNO" and without["defaultErrnoRet"] == 38
    assert without["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    assert ("chroot", "SCMP_ACT_ERRNO") in _names(without) and ("chroot", "SCMP_ACT_ALLOW") not in _names(without)
    assert next(r for r in without["syscalls"] if r["names"] == ["chroot"])["errnoRet"] == 1
    assert ("arch_prctl", "SCMP_ACT_ALLOW") in _names(without) and "cacheflush" not in dict(_names(without))
    assert "newthing" not in dict(_names(without))
    assert next(r for r in without["syscalls"] if r["names"] == ["personality"])["args"] == \
        [{"index": 0, "value": 8, "valueTwo": 0, "op": "SCMP_CMP_EQ"}]
    with_cap = convert(PROFILE, ["CAP_SYS_CHROOT"], arch="arm64", kernel="7.2")
    assert ("chroot", "SCMP_ACT_ALLOW") in _names(with_cap) and ("chroot", "SCMP_ACT_ERRNO") not in _names(with_cap)
    assert with_cap["architectures"] == ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]
    assert "cacheflush" in dict(_names(with_cap)) and "newthing" in dict(_names(with_cap))


@pytest.mark.skipif(not os.path.exists(DEFAULT_PROFILE), reason="containers-common is installed by scripts/setup.sh")
def test_containers_common_profile_for_the_hardened_set():
    spec = default_profile(["CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "SETUID", "SETGID", "SETFCAP"])
    allowed = {n for r in spec["syscalls"] if r["action"] == "SCMP_ACT_ALLOW" and not r.get("args") for n in r["names"]}
    assert {"read", "openat", "execve", "setuid", "setgroups", "fchown", "mknodat", "setxattr"} <= allowed
    assert not {"init_module", "finit_module", "kexec_load", "chroot", "bpf", "perf_event_open"} & allowed
    denied = {n for r in spec["syscalls"] if r["action"] == "SCMP_ACT_ERRNO" for n in r["names"]}
    assert {"init_module", "finit_module", "kexec_load", "chroot"} <= denied
