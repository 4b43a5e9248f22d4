"""An SPDX 2.3 JSON document (https://spdx.github.io/spdx-spec/v2.3/) of the packages a scan found.

The image itself is the described package (purpose CONTAINER); it CONTAINS every package found, each of which
CONTAINS the files it owns (regular files that are in the image, with their SHA1, which SPDX requires of every
file, and BuildKit's `layerID: <digest>` comment naming the layer that last wrote the file). Licenses the SPDX
list lacks are declared as LicenseRef-s in hasExtractedLicensingInfos. File names are relative (`./usr/bin/x`),
as SPDX 2.3 asks.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import stat
import uuid
from typing import Callable

from . import licenses
from .model import Package
from .rootfs import RootFS

SPDX_VERSION = "SPDX-2.3"
NOASSERTION = "NOASSERTION"
NAMESPACE_BASE = "https://kiln.invalid/spdx/"     # a URI unique to the document; .invalid: it names, never resolves
_ID_CHARS = re.compile(r"[^A-Za-z0-9.\-]+")


def _spdx_id(prefix: str, name: str, unique: str) -> str:
    readable = _ID_CHARS.sub("-", name).strip("-")[:48]
    return f"SPDXRef-{prefix}-{readable}-{hashlib.sha256(unique.encode()).hexdigest()[:16]}"


def _actor(text: str) -> str:
    """'Person: Name <mail>' -> SPDX's 'Person: Name (mail)'."""
    m = re.match(r"^(Person|Organization|Tool): (.*?)\s*<([^>]*)>\s*$", text)
    if m:
        return f"{m.group(1)}: {m.group(2)} ({m.group(3)})"
    return text


def _sha1(path: str) -> str | None:
    h = hashlib.sha1()
    try:
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
    except OSError:
        return None
    return h.hexdigest()


def document(packages: list[Package], root: str, name: str, created: str, tool: str,
             layer_of: Callable[[str], str | None] | None = None, image_purl: str = "") -> dict:
    """The SPDX document. `root` is where the files are read for their checksums; `name` names the image
    (the first destination, or "image"); `created` is RFC 3339; `tool` is "kiln-<version>"."""
    root_id = _spdx_id("DocumentRoot-Image", name, name)
    doc_packages: list[dict] = []
    files: dict[str, dict] = {}
    relationships: list[dict] = [{"spdxElementId": "SPDXRef-DOCUMENT", "relationshipType": "DESCRIBES",
                                  "relatedSpdxElement": root_id}]
    refs_used: dict[str, str] = {}
    image_pkg: dict = {"SPDXID": root_id, "name": name, "downloadLocation": NOASSERTION,
                       "filesAnalyzed": False, "licenseConcluded": NOASSERTION, "licenseDeclared": NOASSERTION,
                       "copyrightText": NOASSERTION, "primaryPackagePurpose": "CONTAINER",
                       "supplier": NOASSERTION}
    if image_purl:
        image_pkg["externalRefs"] = [{"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl",
                                      "referenceLocator": image_purl}]
    doc_packages.append(image_pkg)
    ids_by_purl: dict[str, str] = {}
    for pkg in packages:
        pkg_id = _spdx_id(f"Package-{pkg.kind}", pkg.name, f"{pkg.kind}|{pkg.purl}|{pkg.name}|{pkg.version}")
        ids_by_purl.setdefault(pkg.purl, pkg_id)
        declared = pkg.license or NOASSERTION
        for ref in licenses.refs_in(pkg.license):
            text = ""
            for short, body in pkg.license_texts.items():
                if licenses.normalize(short) == ref and body.strip():
                    text = body.strip()
                    break
            if ref not in refs_used or (text and refs_used[ref].startswith("The license ")):
                refs_used[ref] = text or f"The license {ref[len('LicenseRef-'):]!r} as {pkg.name}'s metadata " \
                                         f"names it ({pkg.source_info.rpartition(': ')[2]})"
        entry: dict = {
            "SPDXID": pkg_id, "name": pkg.name, "versionInfo": pkg.version or NOASSERTION,
            "downloadLocation": NOASSERTION, "filesAnalyzed": False,
            "licenseConcluded": NOASSERTION, "licenseDeclared": declared, "copyrightText": NOASSERTION,
            "externalRefs": [{"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl",
                              "referenceLocator": pkg.purl}],
            "sourceInfo": pkg.source_info,
            "supplier": _actor(pkg.supplier) if pkg.supplier else NOASSERTION,
        }
        if not pkg.version:
            del entry["versionInfo"]
        if pkg.homepage and re.match(r"^https?://\S+$", pkg.homepage):
            entry["homepage"] = pkg.homepage
        if pkg.description:
            entry["summary"] = pkg.description
        if pkg.checksums:
            entry["checksums"] = [{"algorithm": a, "checksumValue": v} for a, v in sorted(pkg.checksums.items())]
        doc_packages.append(entry)
        relationships.append({"spdxElementId": root_id, "relationshipType": "CONTAINS",
                              "relatedSpdxElement": pkg_id})
        owned = [f for f in (_file(files, root, path, layer_of) for path in sorted(set(pkg.files))) if f]
        if owned:
            # SPDX 2.3: a package that CONTAINS files has filesAnalyzed true and a verification code (the
            # SHA1 of its files' sorted SHA1s, section 7.9)
            entry["filesAnalyzed"] = True
            sha1s = sorted({f["checksums"][0]["checksumValue"] for f in owned})
            entry["packageVerificationCode"] = {
                "packageVerificationCodeValue": hashlib.sha1("".join(sha1s).encode()).hexdigest()}
        for f in owned:
            relationships.append({"spdxElementId": pkg_id, "relationshipType": "CONTAINS",
                                  "relatedSpdxElement": f["SPDXID"]})
    for pkg in packages:
        source_id = ids_by_purl[pkg.purl]
        for dep in pkg.depends_on:
            if dep in ids_by_purl:
                relationships.append({"spdxElementId": source_id, "relationshipType": "DEPENDS_ON",
                                      "relatedSpdxElement": ids_by_purl[dep]})
    listing = json.dumps([p["SPDXID"] for p in doc_packages] + sorted(files), sort_keys=True)
    doc_uuid = uuid.uuid5(uuid.NAMESPACE_URL, NAMESPACE_BASE + hashlib.sha256(listing.encode()).hexdigest())
    doc: dict = {
        "spdxVersion": SPDX_VERSION,
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": name,
        "documentNamespace": f"{NAMESPACE_BASE}{_ID_CHARS.sub('-', name).strip('-') or 'image'}-{doc_uuid}",
        "creationInfo": {"created": created, "creators": [f"Tool: {tool}"]},
        "packages": doc_packages,
        "files": [files[k] for k in sorted(files)],
        "relationships": relationships,
    }
    if refs_used:
        doc["hasExtractedLicensingInfos"] = [{"licenseId": ref, "extractedText": text}
                                             for ref, text in sorted(refs_used.items())]
    return doc


def _file(files: dict[str, dict], root: str, path: str, layer_of) -> dict | None:
    if path in files:
        return files[path]
    # the path's directories are resolved inside the root: an image's symlink (`/evil -> /`) never leads to
    # the machine's own files
    host = RootFS(root).host(path, follow=False)
    if host is None:
        return None
    try:
        st = os.lstat(host)
    except OSError:
        return None
    if not stat.S_ISREG(st.st_mode):
        return None            # directories and symlinks are not files in SPDX's sense
    sha1 = _sha1(host)
    if sha1 is None:
        return None
    entry = {"SPDXID": _spdx_id("File", os.path.basename(path), path), "fileName": "." + path,
             "checksums": [{"algorithm": "SHA1", "checksumValue": sha1}],
             "licenseConcluded": NOASSERTION, "copyrightText": NOASSERTION}
    if layer_of is not None:
        layer = layer_of(path)
        if layer:
            entry["comment"] = f"layerID: {layer}"
    files[path] = entry
    return entry
