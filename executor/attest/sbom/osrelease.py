"""/etc/os-release (or /usr/lib/os-release): the distribution a PURL's `distro` qualifier names."""
from __future__ import annotations

import shlex
from dataclasses import dataclass

from .rootfs import RootFS


@dataclass(frozen=True)
class OSRelease:
    """The distribution a root's /etc/os-release names; its ID and VERSION_ID qualify the SBOM's package URLs
    (`distro=`)."""
    id: str = ""             # "debian", "ubuntu", "alpine"
    version_id: str = ""     # "12", "22.04", "3.19.1"
    pretty_name: str = ""

    @property
    def distro(self) -> str:
        """syft's `distro` PURL qualifier: "debian-12", "alpine-3.19.1"."""
        return f"{self.id}-{self.version_id}" if self.id and self.version_id else self.id


def read_os_release(fs: RootFS) -> OSRelease:
    text = fs.text("/etc/os-release") or fs.text("/usr/lib/os-release") or ""
    values: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if not sep or not key.strip() or key.strip().startswith("#"):
            continue
        try:
            words = shlex.split(value)
        except ValueError:
            words = [value.strip("\"'")]
        values[key.strip()] = words[0] if words else ""
    return OSRelease(values.get("ID", "").lower(), values.get("VERSION_ID", ""), values.get("PRETTY_NAME", ""))
