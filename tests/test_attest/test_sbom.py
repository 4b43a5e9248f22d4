"""The SBOM scanners on a root of real package records, and the SPDX 2.3 document validated by spdx-tools."""
from __future__ import annotations

import hashlib
import io
import os
import subprocess
import tarfile

import pytest

from executor.attest.layers import LayerIndex
from executor.attest.sbom import scan
from executor.attest.sbom import golang, licenses
from executor.attest.sbom.spdx import document
from executor.image import Layer
from tests.attest_helpers import spdx_errors


def _dpkg_version(name: str) -> str:
    return subprocess.run(["dpkg-query", "-W", "-f=${Version}", name], capture_output=True, text=True,
                          check=True).stdout


@pytest.fixture(scope="module")
def packages(sample_root):
    return scan(sample_root)


def by_name(packages, name):
    found = [p for p in packages if p.name == name]
    assert len(found) == 1, [(p.kind, p.name) for p in packages]
    return found[0]


def test_dpkg_packages_as_dpkg_knows_them(packages):
    tar = by_name(packages, "tar")
    version = _dpkg_version("tar")
    assert tar.version == version
    assert tar.purl == f"pkg:deb/debian/tar@{version.replace('+', '%2B')}?arch=amd64&distro=debian-12"
    # every License: of /usr/share/doc/tar/copyright (DEP-5), "GPL-3+" first
    parts = tar.license.split(" AND ")
    assert parts[0] == "GPL-3.0-or-later" and "LGPL-3.0-or-later" in parts
    assert licenses.refs_in(tar.license) == ["LicenseRef-GPL-3-with-Bison-exception"]
    assert "/bin/tar" in tar.files or "/usr/bin/tar" in tar.files
    assert tar.supplier == "Person: Janos Lenart <ocsi@debian.org>"


def test_python_distribution_from_its_dist_info(packages):
    import packageurl  # noqa: F401 - the distribution copied into the sample root
    from importlib.metadata import version
    pkg = by_name(packages, "packageurl-python")
    assert pkg.version == version("packageurl-python")
    assert pkg.purl == f"pkg:pypi/packageurl-python@{pkg.version}"
    assert pkg.license == "MIT"
    assert "/usr/local/lib/python3.11/site-packages/packageurl/__init__.py" in pkg.files


def test_npm_packages_with_their_lock_entries(packages):
    scoped = by_name(packages, "@babel/helper-string-parser")
    assert scoped.purl == "pkg:npm/%40babel/helper-string-parser@7.23.4"
    assert scoped.license == "MIT" and scoped.supplier == "Person: The Babel Team (team@babeljs.io)"
    assert scoped.checksums == {"SHA512": "00" * 64}     # sha512-AAAA... from package-lock.json
    assert scoped.files == ["/srv/app/node_modules/@babel/helper-string-parser/index.js",
                            "/srv/app/node_modules/@babel/helper-string-parser/package.json"]
    pad = by_name(packages, "left-pad")
    assert pad.purl == "pkg:npm/left-pad@1.3.0" and pad.license == "WTFPL"
    assert not [p for p in packages if p.name == "app"]        # the project itself is no installed module


def test_go_binary_build_info(packages):
    main = by_name(packages, "github.com/opencontainers/umoci/cmd/umoci")
    assert main.files == ["/usr/local/bin/umoci"]
    assert main.purl == "pkg:golang/github.com/opencontainers/umoci/cmd/umoci"
    stdlib = by_name(packages, "stdlib")
    info = golang.read_build_info("/usr/bin/umoci")
    assert stdlib.version == info.go_version and stdlib.purl == f"pkg:golang/stdlib@{info.go_version[2:]}"
    assert main.depends_on == [stdlib.purl]


def test_apk_database(packages):
    musl = by_name(packages, "musl")
    assert musl.purl == "pkg:apk/debian/musl@1.2.4_git20230717-r4?arch=x86_64&distro=debian-12&upstream=musl"
    assert musl.files == ["/lib/ld-musl-x86_64.so.1", "/lib/libc.musl-x86_64.so.1"]
    assert by_name(packages, "busybox").license == "GPL-2.0-only"


def test_go_module_info_lines():
    text = ("path\texample.com/cmd/tool\nmod\texample.com\tv1.2.3\th1:abc=\n"
            "dep\tgolang.org/x/sys\tv0.1.0\th1:def=\ndep\texample.org/old\tv1.0.0\t\n"
            "=>\texample.org/new\tv1.1.0\th1:ghi=\nbuild\tGOOS=linux\n")
    framed = "0" * 16 + text + "1" * 16
    path, main, deps, settings = golang.parse_modinfo(framed)
    assert path == "example.com/cmd/tool" and main.path == "example.com" and main.version == "v1.2.3"
    assert [(d.path, d.version) for d in deps] == [("golang.org/x/sys", "v0.1.0"), ("example.org/old", "v1.0.0")]
    assert deps[1].replaced_by.path == "example.org/new" and settings == {"GOOS": "linux"}
    pkgs = golang.packages(golang.BuildInfo("go1.22.1", path, main, deps, settings), "/bin/tool")
    assert [p.purl for p in pkgs] == ["pkg:golang/example.com@v1.2.3", "pkg:golang/golang.org/x/sys@v0.1.0",
                                      "pkg:golang/example.org/new@v1.1.0", "pkg:golang/stdlib@1.22.1"]


def test_not_a_go_binary():
    assert golang.read_build_info("/bin/ls") is None


@pytest.mark.parametrize("given,spdx", [
    ("GPL-2+", "GPL-2.0-or-later"), ("GPL-2", "GPL-2.0-only"), ("LGPL-2.1+", "LGPL-2.1-or-later"),
    ("Expat", "MIT"), ("BSD-3-clause", "BSD-3-Clause"), ("Apache-2.0 OR MIT", "Apache-2.0 OR MIT"),
    ("public-domain", "LicenseRef-public-domain"), ("GPL-2+ or Artistic", "GPL-2.0-or-later OR Artistic-1.0-Perl"),
    ("UNKNOWN", ""), ("Some License, v2", "LicenseRef-Some-License OR LicenseRef-v2"),
])
def test_license_names(given, spdx):
    assert licenses.normalize(given) == spdx


def _layer(tmp_path, name, files):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for path in files:
            info = tarfile.TarInfo(path)
            info.size = 1
            tar.addfile(info, io.BytesIO(b"x"))
    path = tmp_path / name
    path.write_bytes(buf.getvalue())
    return Layer.from_file(str(path))


def test_spdx_document_validates_and_names_each_files_layer(sample_root, packages, tmp_path):
    lower = _layer(tmp_path, "lower.tar", ["usr/local/bin/umoci", "srv/app/node_modules/left-pad/index.js"])
    upper = _layer(tmp_path, "upper.tar", ["./usr/local/bin/umoci", "usr/local/bin/.wh.gone"])
    index = LayerIndex([lower, upper])
    doc = document(packages, sample_root, "registry.example/app:1", "2024-01-01T00:00:00Z", "kiln-test",
                   layer_of=index.layer_of, image_purl="pkg:docker/registry.example/app@1")
    assert spdx_errors(doc) == []
    assert doc["spdxVersion"] == "SPDX-2.3"
    files = {f["fileName"]: f for f in doc["files"]}
    assert files["./usr/local/bin/umoci"]["comment"] == f"layerID: {upper.digest}"
    assert files["./srv/app/node_modules/left-pad/index.js"]["comment"] == f"layerID: {lower.digest}"
    with open(os.path.join(sample_root, "usr/local/bin/umoci"), "rb") as f:
        assert files["./usr/local/bin/umoci"]["checksums"] == [
            {"algorithm": "SHA1", "checksumValue": hashlib.sha1(f.read()).hexdigest()}]
    refs = {e["licenseId"]: e["extractedText"] for e in doc.get("hasExtractedLicensingInfos", [])}
    assert set(refs) >= {"LicenseRef-WTFPL"} or "WTFPL" in {p["licenseDeclared"] for p in doc["packages"]}
    # the same packages give the same document (reproducible builds)
    again = document(packages, sample_root, "registry.example/app:1", "2024-01-01T00:00:00Z", "kiln-test",
                     layer_of=index.layer_of, image_purl="pkg:docker/registry.example/app@1")
    assert again == doc


def test_spdx_validation_catches_a_broken_document(sample_root, packages):
    """The validator itself: a file without its SHA1 and a relationship to nothing are reported."""
    doc = document(packages, sample_root, "x", "2024-01-01T00:00:00Z", "kiln-test")
    doc["files"][0]["checksums"] = [{"algorithm": "MD5", "checksumValue": "0" * 32}]
    doc["relationships"].append({"spdxElementId": "SPDXRef-DOCUMENT", "relationshipType": "DESCRIBES",
                                 "relatedSpdxElement": "SPDXRef-nothing"})
    errors = spdx_errors(doc)
    assert any("SHA1" in e for e in errors) and any("SPDXRef-nothing" in e for e in errors)


def test_an_images_symlinks_never_lead_out_of_the_root(tmp_path):
    """A package whose file list goes through the image's `/escape -> /` symlink: the file is looked up inside the
    root (where it does not exist), never on the machine; a truncated ELF with Go's magic is no Go binary."""
    from executor.attest.sbom.model import Package

    root = tmp_path / "root"
    (root / "usr/bin").mkdir(parents=True)
    os.symlink("/", root / "escape")
    (root / "usr/bin/tool").write_bytes(b"\x7fELF\x02\x01\x01" + b"\0" * 4089 + b"\xff Go buildinf:\x08")
    os.chmod(root / "usr/bin/tool", 0o755)
    pkg = Package("deb", "evil", "1", "pkg:deb/debian/evil@1", files=["/escape/etc/os-release", "/usr/bin/tool"])
    doc = document([pkg], str(root), "x", "2024-01-01T00:00:00Z", "kiln-test")
    assert [f["fileName"] for f in doc["files"]] == ["./usr/bin/tool"]
    assert golang.read_build_info(str(root / "usr/bin/tool")) is None
    assert [p.kind for p in scan(str(root))] == []
