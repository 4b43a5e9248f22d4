"""What a scanner finds: packages, each with its name, version, PURL, license and the files it owns."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Package:
    """One installed package. `files` are image paths ("/usr/bin/hello") the package's own metadata says it
    installed; `license` is an SPDX license expression as the metadata gives it (normalised later), or ""."""
    kind: str                       # "deb", "apk", "pypi", "npm", "golang"
    name: str
    version: str
    purl: str
    license: str = ""
    files: list[str] = field(default_factory=list)
    source_info: str = ""           # where kiln read it ("acquired package info from DPKG DB: /var/lib/dpkg/status")
    supplier: str = ""              # "Person: Name <mail>" or "Organization: ..." (SPDX's form), or ""
    description: str = ""
    homepage: str = ""
    checksums: dict[str, str] = field(default_factory=dict)     # SPDX algorithm -> hex (npm's integrity...)
    depends_on: list[str] = field(default_factory=list)         # purls of packages this one was built from
    #: license texts found with the package (name -> text), for LicenseRef- licenses the SPDX list lacks
    license_texts: dict[str, str] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str, str]:
        return self.kind, self.name, self.version
