"""Debian and Ubuntu packages from dpkg's database.

`/var/lib/dpkg/status` (and distroless images' `/var/lib/dpkg/status.d/*`): one paragraph per package,
installed when its Status ends in "installed". The files a package owns are in
`/var/lib/dpkg/info/<name>.list` (`<name>:<arch>.list` for Multi-Arch: same), their MD5s in `.md5sums`;
the license in `/usr/share/doc/<name>/copyright` when it is machine-readable (DEP-5: the `License:` of
the header and every Files paragraph). PURLs as syft writes them:
`pkg:deb/debian/hello@2.10-3?arch=amd64&distro=debian-12` (with `upstream=` when the source differs).
"""
from __future__ import annotations

import logging
import os
import re

from packageurl import PackageURL

from . import licenses
from .model import Package
from .osrelease import OSRelease
from .rootfs import RootFS

log = logging.getLogger(__name__)

STATUS = "/var/lib/dpkg/status"
STATUS_D = "/var/lib/dpkg/status.d"
INFO = "/var/lib/dpkg/info"
DEP5 = "https://www.debian.org/doc/packaging-manuals/copyright-format/1.0"


def paragraphs(text: str) -> list[dict[str, str]]:
    """RFC 822-style paragraphs (dpkg's status, DEP-5): continuation lines start with a space; a
    paragraph ends at a blank line. Keys keep their case."""
    out: list[dict[str, str]] = []
    current: dict[str, str] = {}
    key = ""
    for line in text.splitlines():
        if not line.strip():
            if current:
                out.append(current)
            current, key = {}, ""
            continue
        if line[0] in " \t" and key:
            current[key] += "\n" + line[1:]
            continue
        name, sep, value = line.partition(":")
        if sep:
            key = name.strip()
            current[key] = value.strip()
    if current:
        out.append(current)
    return out


def scan(fs: RootFS, osr: OSRelease) -> list[Package]:
    entries: list[tuple[str, dict[str, str]]] = []
    text = fs.text(STATUS)
    if text is not None:
        entries += [(STATUS, p) for p in paragraphs(text)]
    for name in fs.listdir(STATUS_D):
        extra = fs.text(f"{STATUS_D}/{name}")
        if extra is not None:
            entries += [(f"{STATUS_D}/{name}", p) for p in paragraphs(extra)]
    packages = []
    for where, p in entries:
        name, version = p.get("Package", ""), p.get("Version", "")
        status = p.get("Status", "install ok installed")     # status.d entries carry none
        if not name or not version or not status.endswith(" installed"):
            continue
        packages.append(_package(fs, osr, where, p))
    log.debug("dpkg: %d packages", len(packages))
    return packages


def _package(fs: RootFS, osr: OSRelease, where: str, p: dict[str, str]) -> Package:
    name, version, arch = p["Package"], p["Version"], p.get("Architecture", "")
    source = p.get("Source", "")
    qualifiers = {}
    if arch:
        qualifiers["arch"] = arch
    if source:
        src_name, _, src_version = source.partition(" ")
        src_version = src_version.strip("()")
        upstream = src_name if not src_version else f"{src_name}@{src_version}"
        if src_name != name or src_version:
            qualifiers["upstream"] = upstream
    if osr.distro:
        qualifiers["distro"] = osr.distro
    purl = PackageURL(type="deb", namespace=osr.id or "debian", name=name, version=version,
                      qualifiers=qualifiers).to_string()
    files = _files(fs, name, arch)
    license_expr, texts = copyright_license(fs, name)
    description = p.get("Description", "").split("\n", 1)[0]
    maintainer = p.get("Maintainer", "")
    return Package(kind="deb", name=name, version=version, purl=purl, license=license_expr, files=files,
                   source_info=f"acquired package info from DPKG DB: {where}",
                   supplier=f"Person: {maintainer}" if maintainer else "", description=description,
                   homepage=p.get("Homepage", ""), license_texts=texts)


def _files(fs: RootFS, name: str, arch: str) -> list[str]:
    for stem in (f"{name}:{arch}", name):
        listing = fs.text(f"{INFO}/{stem}.list")
        if listing is not None:
            return [line for line in listing.splitlines() if line.startswith("/") and line != "/."]
    return []


def copyright_license(fs: RootFS, name: str) -> tuple[str, dict[str, str]]:
    """The license expression of a DEP-5 copyright file (each distinct License: joined with AND, as syft
    lists them), and the texts of its stand-alone License paragraphs."""
    text = fs.text(f"/usr/share/doc/{name}/copyright", limit=4 << 20)
    if not text:
        return "", {}
    paras = paragraphs(text)
    if not paras or "Format" not in paras[0] or "copyright-format/1.0" not in paras[0].get("Format", ""):
        return _common_licenses(fs, text), {}
    names: list[str] = []
    texts: dict[str, str] = {}
    for para in paras:
        value = para.get("License", "")
        if not value:
            continue
        first, _, body = value.partition("\n")
        first = first.strip()
        if "Files" not in para and body.strip() and first:
            texts[first] = body.replace("\n.\n", "\n\n")
        if ("Files" in para or para is paras[0]) and first and first not in names:
            names.append(first)
    parts = [licenses.normalize(n) for n in names]
    parts = [p if " " not in p else f"({p})" for p in parts if p]
    unique = list(dict.fromkeys(parts))
    return " AND ".join(unique), texts


_COMMON = re.compile(r"/usr/share/common-licenses/([A-Za-z0-9_.+\-]+[A-Za-z0-9+])")


def _common_licenses(fs: RootFS, text: str) -> str:
    """A copyright file that is not machine-readable names its licenses by the texts it points at, as syft
    reads them: `/usr/share/common-licenses/GPL` (a symlink in the image, to GPL-3 on Debian 12: followed)."""
    names: list[str] = []
    for match in _COMMON.finditer(text):
        name = match.group(1)
        host = fs.host(f"/usr/share/common-licenses/{name}", follow=False)
        if host is not None and os.path.islink(host):
            name = os.path.basename(os.readlink(host)) or name
        if name not in names:
            names.append(name)
    parts = [licenses.normalize(n) for n in names]
    parts = [p if " " not in p else f"({p})" for p in parts if p]
    return " AND ".join(dict.fromkeys(parts))
