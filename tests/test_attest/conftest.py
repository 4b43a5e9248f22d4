"""A root file system made of real package-manager records: this machine's own dpkg entries and files for a few
Debian packages, a real wheel's dist-info from kiln's venv, a real Go binary (this machine's umoci), and npm/apk
records written in their tools' formats (neither tool is on this machine)."""
from __future__ import annotations

import json
import os
import shutil
import sys

import pytest

from executor.attest.sbom import dpkg as dpkg_scanner

DEB_PACKAGES = ("tar", "gzip")


def _copy(src: str, root: str, dest: str | None = None) -> None:
    target = os.path.join(root, (dest or src).lstrip("/"))
    os.makedirs(os.path.dirname(target), exist_ok=True)
    if os.path.islink(src):
        os.symlink(os.readlink(src), target)
    elif os.path.isfile(src):
        shutil.copy2(src, target)


APK_INSTALLED = """\
C:Q1P4bHLBL3YX3qGZK5o7d/2ZyJ7Ek=
P:musl
V:1.2.4_git20230717-r4
A:x86_64
S:407574
I:667648
T:the musl c library (libc) implementation
U:https://musl.libc.org/
L:MIT
o:musl
m:Natanael Copa <ncopa@alpinelinux.org>
t:1701356574
c:8e8d2fa1ab1fdc5de2b4e36ad8a54c92d3b39b19
F:lib
R:ld-musl-x86_64.so.1
a:0:0:755
Z:Q1RnUF14Q9D6gxiOIbGdeLuPx4nn0=
R:libc.musl-x86_64.so.1
a:0:0:777
Z:Q17yJ3JFNypA4mxhJJr0ou6CzsJVI=

C:Q1yJ7KcSGYlbbbQ2CQYzXC+qwxUu0=
P:busybox
V:1.36.1-r15
A:x86_64
T:Size optimized toolbox of many common UNIX utilities
U:https://busybox.net/
L:GPL-2.0-only
o:busybox
m:Sören Tempel <soeren+alpine@soeren-tempel.net>
F:bin
R:busybox

"""


@pytest.fixture(scope="session")
def sample_root(tmp_path_factory) -> str:
    root = str(tmp_path_factory.mktemp("sbom-root"))
    # dpkg: the real status paragraphs, file lists, files and copyright files of a few packages of this machine
    with open(dpkg_scanner.STATUS, encoding="utf-8") as f:
        paragraphs = f.read().split("\n\n")
    wanted = [p for p in paragraphs if any(p.startswith(f"Package: {n}\n") for n in DEB_PACKAGES)]
    os.makedirs(os.path.join(root, "var/lib/dpkg/info"))
    with open(os.path.join(root, "var/lib/dpkg/status"), "w", encoding="utf-8") as f:
        f.write("\n\n".join(wanted) + "\n")
    for name in DEB_PACKAGES:
        for suffix in (".list", ".md5sums"):
            _copy(f"/var/lib/dpkg/info/{name}{suffix}", root)
        with open(f"/var/lib/dpkg/info/{name}.list", encoding="utf-8") as f:
            for path in f.read().splitlines():
                if path.startswith("/usr/bin/") or path.startswith("/bin/") or path.endswith("/copyright"):
                    _copy(path, root)
    _copy("/etc/os-release", root)
    _copy("/usr/lib/os-release", root)
    # a real Go binary
    _copy("/usr/bin/umoci", root, "/usr/local/bin/umoci")
    # a real wheel's dist-info (packageurl-python, installed in kiln's venv by pip) and its files
    site = os.path.join(os.path.dirname(os.path.dirname(os.__file__)), "")
    import packageurl
    src_site = os.path.dirname(os.path.dirname(packageurl.__file__))
    dest_site = "/usr/local/lib/python3.11/site-packages"
    for entry in os.listdir(src_site):
        if entry.startswith("packageurl"):
            shutil.copytree(os.path.join(src_site, entry), os.path.join(root, dest_site.lstrip("/"), entry),
                            symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
    # npm: a project with a scoped and a plain module, and its lock file (npm 7+ layout)
    app = os.path.join(root, "srv/app")
    modules = {"node_modules/left-pad": {"name": "left-pad", "version": "1.3.0", "license": "WTFPL",
                                         "description": "String left pad"},
               "node_modules/@babel/helper-string-parser": {"name": "@babel/helper-string-parser",
                                                            "version": "7.23.4", "license": "MIT",
                                                            "author": {"name": "The Babel Team",
                                                                       "email": "team@babeljs.io"}}}
    lock = {"name": "app", "lockfileVersion": 3, "requires": True, "packages": {"": {"name": "app"}}}
    for path, manifest in modules.items():
        os.makedirs(os.path.join(app, path))
        with open(os.path.join(app, path, "package.json"), "w") as f:
            json.dump(manifest, f)
        with open(os.path.join(app, path, "index.js"), "w") as f:
            f.write("module.exports = 1;\n")
        lock["packages"][path] = {"version": manifest["version"],
                                  "resolved": f"https://registry.npmjs.org/{manifest['name']}/-/x.tgz",
                                  "integrity": "sha512-" + "A" * 86 + "==", "license": manifest["license"]}
    with open(os.path.join(app, "package-lock.json"), "w") as f:
        json.dump(lock, f)
    with open(os.path.join(app, "package.json"), "w") as f:
        json.dump({"name": "app", "version": "0.0.1"}, f)
    # apk
    os.makedirs(os.path.join(root, "lib/apk/db"))
    with open(os.path.join(root, "lib/apk/db/installed"), "w", encoding="utf-8") as f:
        f.write(APK_INSTALLED)
    os.makedirs(os.path.join(root, "bin"), exist_ok=True)
    with open(os.path.join(root, "bin/busybox"), "wb") as f:
        f.write(b"\x7fELF not really busybox\n")
    assert sys.version_info >= (3, 11) and site
    return root
