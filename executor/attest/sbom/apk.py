"""Alpine packages from apk's database, `/lib/apk/db/installed`.

One paragraph per package of `X:value` lines (apk's "installed" format, see apk-tools' database.c):
P name, V version, A arch, L license, T description, U url, o origin (the source package), m maintainer;
`F:dir` starts a directory and each following `R:file` is a file the package owns in it.
PURLs as syft writes them: `pkg:apk/alpine/busybox@1.36.1-r15?arch=x86_64&upstream=busybox&distro=alpine-3.19.1`.
"""
from __future__ import annotations

from packageurl import PackageURL

from . import licenses
from .model import Package
from .osrelease import OSRelease
from .rootfs import RootFS

INSTALLED = "/lib/apk/db/installed"


def scan(fs: RootFS, osr: OSRelease) -> list[Package]:
    text = fs.text(INSTALLED)
    if text is None:
        return []
    packages = []
    for block in text.split("\n\n"):
        fields: dict[str, str] = {}
        files: list[str] = []
        directory = ""
        for line in block.splitlines():
            if len(line) < 2 or line[1] != ":":
                continue
            key, value = line[0], line[2:]
            if key == "F":
                directory = value
            elif key == "R":
                files.append("/" + (f"{directory}/{value}" if directory else value))
            elif key not in fields:
                fields[key] = value
        name, version = fields.get("P", ""), fields.get("V", "")
        if not name or not version:
            continue
        qualifiers = {}
        if fields.get("A"):
            qualifiers["arch"] = fields["A"]
        if fields.get("o"):
            qualifiers["upstream"] = fields["o"]
        if osr.distro:
            qualifiers["distro"] = osr.distro
        purl = PackageURL(type="apk", namespace=osr.id or "alpine", name=name, version=version,
                          qualifiers=qualifiers).to_string()
        maintainer = fields.get("m", "")
        packages.append(Package(
            kind="apk", name=name, version=version, purl=purl, license=licenses.normalize(fields.get("L", "")),
            files=files, source_info=f"acquired package info from APK DB: {INSTALLED}",
            supplier=f"Person: {maintainer}" if maintainer else "", description=fields.get("T", ""),
            homepage=fields.get("U", "")))
    return packages
