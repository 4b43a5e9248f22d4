"""Platforms ("linux/arm64/v8"): parsing, normalising as docker does, and matching index entries."""
from __future__ import annotations

import platform as _pyplatform
from dataclasses import dataclass, field

# Architecture aliases as containerd's platforms package normalises them.
_ARCH_ALIASES = {
    "x86_64": ("amd64", ""),
    "x86-64": ("amd64", ""),
    "aarch64": ("arm64", ""),
    "armhf": ("arm", "v7"),
    "armel": ("arm", "v6"),
    "i386": ("386", ""),
    "i686": ("386", ""),
}
_DEFAULT_VARIANT = {"arm64": "v8", "arm": "v7"}
_ARM_VARIANT_ALIASES = {"8": "v8", "7": "v7", "6": "v6", "5": "v5"}


@dataclass(frozen=True)
class Platform:
    """An OCI platform (os, architecture, variant, os.version, os.features), written "os/arch[/variant]" on the
    command line; image configs and index descriptors carry one."""
    os: str
    architecture: str
    variant: str = ""
    os_version: str = ""
    os_features: tuple[str, ...] = field(default=())

    @classmethod
    def parse(cls, text: str) -> "Platform":
        """Parse "os/arch[/variant]" (e.g. "linux/arm64/v8"); a bare "arch" means linux."""
        parts = (text or "").strip().split("/")
        if not text or not all(parts) or len(parts) > 3:
            raise ValueError(f"invalid platform {text!r}: want os/arch[/variant], e.g. linux/amd64 or linux/arm64/v8")
        if len(parts) == 1:
            parts = ["linux", parts[0]]
        os_ = parts[0].lower()
        arch = parts[1].lower()
        variant = parts[2].lower() if len(parts) == 3 else ""
        arch, variant = _normalise_arch(arch, variant)
        return cls(os_, arch, variant)

    @classmethod
    def from_dict(cls, d: dict) -> "Platform":
        return cls(
            os=d.get("os", ""),
            architecture=d.get("architecture", ""),
            variant=d.get("variant", "") or "",
            os_version=d.get("os.version", "") or "",
            os_features=tuple(d.get("os.features") or ()),
        )

    def to_dict(self) -> dict:
        d: dict = {"architecture": self.architecture, "os": self.os}
        if self.os_version:
            d["os.version"] = self.os_version
        if self.os_features:
            d["os.features"] = list(self.os_features)
        if self.variant:
            d["variant"] = self.variant
        return d

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)

    def normalised(self) -> "Platform":
        arch, variant = _normalise_arch(self.architecture.lower(), self.variant.lower())
        return Platform(self.os.lower(), arch, variant, self.os_version, self.os_features)

    def matches(self, candidate: "Platform") -> bool:
        """Whether an index entry `candidate` satisfies this wanted platform.

        os and architecture must be equal; the variant is compared after defaults (arm64 -> v8,
        arm -> v7); for other architectures (amd64) a variant is only compared when one is asked for.
        """
        want, have = self.normalised(), candidate.normalised()
        if want.os != have.os or want.architecture != have.architecture:
            return False
        wv, hv = want.variant, have.variant
        default = _DEFAULT_VARIANT.get(want.architecture)
        if default:
            return (wv or default) == (hv or default)
        return not wv or wv == hv


def _normalise_arch(arch: str, variant: str) -> tuple[str, str]:
    if arch in _ARCH_ALIASES:
        arch, implied = _ARCH_ALIASES[arch]
        variant = variant or implied
    if arch in ("arm", "arm64"):
        variant = _ARM_VARIANT_ALIASES.get(variant, variant)
    return arch, variant


_MACHINES = {
    "x86_64": "amd64", "amd64": "amd64", "x86-64": "amd64",
    "aarch64": "arm64", "arm64": "arm64", "armv8l": "arm64",
    "i386": "386", "i486": "386", "i586": "386", "i686": "386",
    "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64", "mips64": "mips64", "loongarch64": "loong64",
}


def host(machine: str | None = None, system: str | None = None) -> Platform:
    """The platform of the machine we run on, as containerd's platforms.DefaultSpec + Normalize give it
    (and so BuildKit's BUILDPLATFORM): `linux/amd64`, `linux/arm64` (no variant), `linux/arm/v7`.
    `machine` and `system` default to `uname -m` and `uname -s`."""
    machine = (machine if machine is not None else _pyplatform.machine()).lower()
    system = (system if system is not None else _pyplatform.system()).lower() or "linux"
    if machine.startswith("armv") and machine[4:5].isdigit():
        return Platform(system, "arm", "v" + machine[4])
    return Platform(system, _MACHINES.get(machine, machine))
