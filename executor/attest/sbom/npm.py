"""npm packages: every `node_modules/<name>/package.json` and `node_modules/@scope/<name>/package.json`.

Name, version, license (`license`, or the old `licenses` array), description, homepage, author from the
package.json; integrity (a Subresource Integrity hash) and `resolved` from the project's lock file when it
lists the same path (`package-lock.json` v2/v3 or npm's hidden `node_modules/.package-lock.json`, whose
"packages" map is keyed by "node_modules/<name>"). The files are those of the package directory, without
its own nested node_modules. PURL `pkg:npm/%40scope/name@version`.
"""
from __future__ import annotations

import base64
import json
import os
import posixpath

from packageurl import PackageURL

from . import licenses
from .model import Package
from .rootfs import RootFS

SRI = {"sha512": "SHA512", "sha384": "SHA384", "sha256": "SHA256", "sha1": "SHA1"}


def _json(fs: RootFS, path: str) -> dict:
    text = fs.text(path, limit=32 << 20)
    if not text:
        return {}
    try:
        data = json.loads(text)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _license(data: dict) -> str:
    value = data.get("license")
    if isinstance(value, dict):
        value = value.get("type")
    if isinstance(value, str):
        return licenses.normalize(value)
    old = data.get("licenses")
    if isinstance(old, list):
        names = [(l.get("type") if isinstance(l, dict) else l) for l in old]
        names = [n for n in names if isinstance(n, str) and n]
        return licenses.normalize(" OR ".join(names)) if names else ""
    return ""


def _author(data: dict) -> str:
    author = data.get("author")
    if isinstance(author, dict):
        name, email = author.get("name", ""), author.get("email", "")
        author = f"{name} ({email})" if name and email else name or email
    return f"Person: {author}" if isinstance(author, str) and author.strip() else ""


class LockFiles:
    """Lock-file entries by the image path of the package directory they describe."""

    def __init__(self, fs: RootFS):
        self.fs = fs
        self._read: dict[str, dict[str, dict]] = {}

    def entry(self, package_dir: str) -> dict:
        # the project root is the directory holding the outermost node_modules of this path
        marker = "/node_modules/"
        index = package_dir.find(marker)
        if index < 0:
            return {}
        project = package_dir[:index] or "/"
        if project not in self._read:
            entries: dict[str, dict] = {}
            for lock in (posixpath.join(project, "package-lock.json"),
                         posixpath.join(project, "node_modules", ".package-lock.json")):
                packages = _json(self.fs, lock).get("packages")
                if isinstance(packages, dict):
                    for key, value in packages.items():
                        if key and isinstance(value, dict):
                            entries.setdefault(posixpath.join(project, key), value)
            self._read[project] = entries
        return self._read[project].get(package_dir, {})


def package_at(fs: RootFS, package_dir: str, locks: LockFiles) -> Package | None:
    data = _json(fs, f"{package_dir}/package.json")
    name, version = data.get("name"), data.get("version")
    if not isinstance(name, str) or not isinstance(version, str) or not name or not version:
        return None
    scope, _, bare = name.rpartition("/")
    lock = locks.entry(package_dir)
    checksums = {}
    integrity = lock.get("integrity") if isinstance(lock.get("integrity"), str) else ""
    for part in integrity.split():
        algorithm, _, b64 = part.partition("-")
        if algorithm in SRI:
            try:
                checksums[SRI[algorithm]] = base64.b64decode(b64).hex()
            except ValueError:
                pass
    license_expr = _license(data) or (licenses.normalize(lock["license"])
                                      if isinstance(lock.get("license"), str) else "")
    homepage = data.get("homepage") if isinstance(data.get("homepage"), str) else ""
    description = data.get("description") if isinstance(data.get("description"), str) else ""
    return Package(
        kind="npm", name=name, version=version,
        purl=PackageURL(type="npm", namespace=scope or None, name=bare, version=version).to_string(),
        license=license_expr, files=_files(fs, package_dir),
        source_info=f"acquired package info from installed node module manifest file: {package_dir}/package.json",
        supplier=_author(data), description=description, homepage=homepage, checksums=checksums)


def _files(fs: RootFS, package_dir: str) -> list[str]:
    host = fs.host(package_dir)
    if host is None:
        return []
    files = []
    for directory, dirnames, filenames in os.walk(host):
        dirnames[:] = sorted(d for d in dirnames if d != "node_modules")
        image_dir = fs.image_path(directory)
        files += [posixpath.join(image_dir, f) for f in sorted(filenames)]
    return files


def scan_node_modules(fs: RootFS, node_modules: str, names: list[str], locks: LockFiles) -> list[Package]:
    """The packages directly inside one node_modules directory (`names` are its entries)."""
    found = []
    for name in names:
        if name.startswith("."):
            continue
        path = posixpath.join(node_modules, name)
        dirs = [posixpath.join(path, s) for s in fs.listdir(path)] if name.startswith("@") else [path]
        for package_dir in dirs:
            pkg = package_at(fs, package_dir, locks)
            if pkg is not None:
                found.append(pkg)
    return found
