"""Python distributions: `*.dist-info` (wheels, pip) and `*.egg-info` (setuptools, Debian's python3-*)
directories anywhere in the image.

Name, version, license from the core metadata (METADATA / PKG-INFO, an RFC 822 header block: PEP 639's
`License-Expression` first, then a one-line `License`, then the `License ::` trove classifiers); the files
from RECORD (dist-info) or installed-files.txt (egg-info), relative to the directory that holds the
metadata directory. PURL `pkg:pypi/<normalised name>@<version>` (PEP 503 normalisation).
"""
from __future__ import annotations

import csv
import io
import posixpath
from email.parser import HeaderParser

from packageurl import PackageURL

from . import licenses
from .model import Package
from .rootfs import RootFS


def is_metadata_dir(name: str) -> bool:
    return name.endswith((".dist-info", ".egg-info"))


def package_at(fs: RootFS, path: str) -> Package | None:
    """The distribution whose metadata is at image path `path` (a .dist-info or .egg-info directory, or an
    .egg-info file)."""
    dist_info = path.endswith(".dist-info")
    meta_file = f"{path}/METADATA" if dist_info else (f"{path}/PKG-INFO" if not fs.is_file(path) else path)
    text = fs.text(meta_file, limit=4 << 20)
    if text is None:
        return None
    headers = HeaderParser().parsestr(text, headersonly=True)
    name, version = (headers.get("Name") or "").strip(), (headers.get("Version") or "").strip()
    if not name or not version:
        return None
    license_expr = licenses.normalize(headers.get("License-Expression") or "")
    if not license_expr:
        one_line = (headers.get("License") or "").strip()
        if one_line and "\n" not in one_line and len(one_line) <= 80:
            license_expr = licenses.normalize(one_line)
    if not license_expr:
        license_expr = licenses.normalize(licenses.from_classifiers(headers.get_all("Classifier") or []))
    author = (headers.get("Author") or "").strip()
    email = (headers.get("Author-email") or "").strip()
    supplier = ""
    if author or email:
        supplier = "Person: " + (f"{author} ({email})" if author and email else author or email)
    base = posixpath.dirname(path)
    files = _record_files(fs, path, base) if dist_info else _egg_files(fs, path)
    return Package(
        kind="pypi", name=name, version=version,
        purl=PackageURL(type="pypi", name=_normalise(name), version=version).to_string(),
        license=license_expr, files=files, source_info=f"acquired package info from Python metadata: {path}",
        supplier=supplier, description=(headers.get("Summary") or "").strip(),
        homepage=(headers.get("Home-page") or "").strip())


def _normalise(name: str) -> str:
    import re
    return re.sub(r"[-_.]+", "-", name).lower()


def _record_files(fs: RootFS, path: str, base: str) -> list[str]:
    text = fs.text(f"{path}/RECORD", limit=16 << 20)
    if text is None:
        return []
    files = []
    for row in csv.reader(io.StringIO(text)):
        if row and row[0]:
            files.append(posixpath.normpath(posixpath.join(base, row[0])))
    return files


def _egg_files(fs: RootFS, path: str) -> list[str]:
    text = fs.text(f"{path}/installed-files.txt", limit=16 << 20)
    if text is None:
        return []
    return [posixpath.normpath(posixpath.join(path, line.strip())) for line in text.splitlines() if line.strip()]


def scan_dir(fs: RootFS, image_dir: str, names: list[str]) -> list[Package]:
    found = []
    for name in names:
        if is_metadata_dir(name):
            pkg = package_at(fs, posixpath.join(image_dir, name))
            if pkg is not None:
                found.append(pkg)
    return found


__all__ = ["scan_dir", "package_at", "is_metadata_dir"]
