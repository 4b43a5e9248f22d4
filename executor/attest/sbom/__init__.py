"""The SBOM of an image's root: which packages are installed, with their versions, PURLs, licenses and files.

`scan(root)` reads the package managers' own records (dpkg, apk, Python core metadata, npm's package.json
and lock files, Go's embedded build info) from the root kiln built on, while the root is still there;
`executor.attest.sbom.spdx.document` turns the packages into an SPDX 2.3 JSON document.
"""
from __future__ import annotations

import logging
import os
import posixpath
import stat
import time
from typing import Callable

from . import apk, dpkg, golang, npm, python
from .model import Package
from .osrelease import read_os_release
from .rootfs import RootFS

__all__ = ["Package", "RootFS", "scan"]

log = logging.getLogger(__name__)


def scan(root: str, ignored: Callable[[str], bool] = lambda path: False) -> list[Package]:
    """Every package found in the root, in a stable order. `ignored(image_path)` is True for paths that are
    not part of the image (kiln's own directory, mounts): they are never walked."""
    start = time.perf_counter()
    fs = RootFS(root)
    osr = read_os_release(fs)
    found: list[Package] = dpkg.scan(fs, osr) + apk.scan(fs, osr)
    locks = npm.LockFiles(fs)
    walked = 0
    for image_dir, dirnames, filenames in fs.walk():
        walked += len(filenames)
        dirnames[:] = [d for d in dirnames if not ignored(posixpath.join(image_dir, d))]
        if posixpath.basename(image_dir) == "node_modules":
            found += npm.scan_node_modules(fs, image_dir, dirnames, locks)
        found += python.scan_dir(fs, image_dir, [n for n in dirnames + filenames if python.is_metadata_dir(n)])
        for name in filenames:
            image_path = posixpath.join(image_dir, name)
            if ignored(image_path):
                continue
            found += _go_binary(fs, image_path)
    unique: dict[tuple[str, str, str, str], Package] = {}
    for pkg in found:
        key = (pkg.kind, pkg.name, pkg.version, pkg.purl)
        if key in unique:
            merged = unique[key]
            merged.files = sorted(set(merged.files) | set(pkg.files))
            merged.depends_on = sorted(set(merged.depends_on) | set(pkg.depends_on))
        else:
            unique[key] = pkg
    packages = sorted(unique.values(), key=lambda p: (p.kind, p.name, p.version, p.purl))
    log.info("SBOM: %d packages (%s) in %d files scanned in %.2fs", len(packages),
             ", ".join(f"{n} {k}" for k, n in _counts(packages).items()) or "none", walked,
             time.perf_counter() - start)
    return packages


def _counts(packages: list[Package]) -> dict[str, int]:
    out: dict[str, int] = {}
    for p in packages:
        out[p.kind] = out.get(p.kind, 0) + 1
    return out


def _go_binary(fs: RootFS, image_path: str) -> list[Package]:
    host = os.path.join(fs.root, image_path.lstrip("/"))
    try:
        st = os.lstat(host)
    except OSError:
        return []
    if not stat.S_ISREG(st.st_mode) or st.st_size < 4096 or not st.st_mode & 0o111:
        return []
    info = golang.read_build_info(host)
    return golang.packages(info, image_path) if info is not None else []
