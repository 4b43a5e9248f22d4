"""License names as package metadata writes them -> SPDX license expressions.

An expression is checked against the SPDX license list with `license-expression` (nexB's, the library
ScanCode and spdx-tools use); a name the list lacks becomes `LicenseRef-<name>`, which the document then
declares in `hasExtractedLicensingInfos` (SPDX 2.3 requires every LicenseRef to be declared there).
Debian's DEP-5 short names (https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/#license-short-name)
differ from SPDX's: `GPL-2+` is `GPL-2.0-or-later`, `GPL-2` is `GPL-2.0-only`, `Expat` is `MIT`.
"""
from __future__ import annotations

import functools
import re

from license_expression import ExpressionError, get_spdx_licensing

#: Debian short names and common free-text names whose SPDX identifier differs
ALIASES = {
    "expat": "MIT", "mit/x11": "MIT", "x11": "X11", "public-domain": "", "bsd-2-clause": "BSD-2-Clause",
    "bsd-3-clause": "BSD-3-Clause", "bsd-4-clause": "BSD-4-Clause", "apache-2": "Apache-2.0",
    "apache-2.0": "Apache-2.0", "apache 2.0": "Apache-2.0", "apache license 2.0": "Apache-2.0",
    "apache software license": "Apache-2.0", "mit license": "MIT", "psf": "Python-2.0", "python": "Python-2.0",
    "zlib": "Zlib", "isc": "ISC", "mpl-2.0": "MPL-2.0", "artistic": "Artistic-1.0-Perl",
    "gpl": "GPL-1.0-or-later", "lgpl": "LGPL-2.0-or-later",
    "bsd license": "", "bsd": "",
}
#: Python trove classifiers ("License :: OSI Approved :: MIT License")
CLASSIFIERS = {
    "MIT License": "MIT", "BSD License": "", "Apache Software License": "Apache-2.0",
    "ISC License (ISCL)": "ISC", "Python Software Foundation License": "Python-2.0",
    "Mozilla Public License 2.0 (MPL 2.0)": "MPL-2.0", "The Unlicense (Unlicense)": "Unlicense",
    "GNU General Public License v2 (GPLv2)": "GPL-2.0-only",
    "GNU General Public License v2 or later (GPLv2+)": "GPL-2.0-or-later",
    "GNU General Public License v3 (GPLv3)": "GPL-3.0-only",
    "GNU General Public License v3 or later (GPLv3+)": "GPL-3.0-or-later",
    "GNU Lesser General Public License v2 (LGPLv2)": "LGPL-2.0-only",
    "GNU Lesser General Public License v2 or later (LGPLv2+)": "LGPL-2.0-or-later",
    "GNU Lesser General Public License v3 (LGPLv3)": "LGPL-3.0-only",
    "GNU Lesser General Public License v3 or later (LGPLv3+)": "LGPL-3.0-or-later",
    "GNU Affero General Public License v3": "AGPL-3.0-only",
    "Eclipse Public License 2.0 (EPL-2.0)": "EPL-2.0", "zlib/libpng License": "Zlib",
}
_GNU = re.compile(r"^(L?GPL|AGPL|GFDL)-(\d+(?:\.\d+)?)(\+?)$", re.I)
_REF_CHARS = re.compile(r"[^A-Za-z0-9.\-]+")


@functools.lru_cache(maxsize=1)
def _licensing():
    return get_spdx_licensing()


def license_ref(name: str) -> str:
    """`LicenseRef-<name>` with the characters SPDX allows ([A-Za-z0-9.-])."""
    return "LicenseRef-" + (_REF_CHARS.sub("-", name).strip("-") or "unknown")


def _symbol(name: str) -> str:
    """One license name -> an SPDX identifier, or a LicenseRef-."""
    text = name.strip()
    alias = ALIASES.get(text.lower())
    if alias is not None:
        return alias or license_ref(text)
    m = _GNU.match(text)
    if m:
        family, version, plus = m.group(1).upper(), m.group(2), m.group(3)
        if "." not in version:
            version += ".0" if not (family == "LGPL" and version == "2") else ".0"
        candidate = f"{family}-{version}-{'or-later' if plus else 'only'}"
        if _valid(candidate):
            return candidate
    if _valid(text):
        return str(_licensing().parse(text).render())
    return license_ref(text)


def _valid(expression: str) -> bool:
    try:
        info = _licensing().validate(expression)
    except (ExpressionError, AttributeError):   # the library's own error path can fail on odd characters
        return False
    return not info.errors


def normalize(expression: str) -> str:
    """A license expression from metadata -> a valid SPDX expression ("" for none). `A or B`, `A and B`,
    `A, B` (Debian's "or", PEP 639's OR) and parentheses are kept; unknown names become LicenseRef-s."""
    text = (expression or "").strip()
    if not text or text.upper() in ("UNKNOWN", "NONE", "NOASSERTION"):
        return ""
    if _valid(text):
        return str(_licensing().parse(text).render())
    tokens = re.split(r"(\s+(?:or|and|OR|AND|with|WITH)\s+|[(),|])", text)
    out: list[str] = []
    for token in tokens:
        if token is None or not token.strip():
            continue
        word = token.strip()
        if word.lower() in ("or", "and", "with", "|"):
            out.append({"|": "OR"}.get(word, word.upper()))
        elif word == ",":
            out.append("OR")
        elif word in "()":
            out.append(word)
        else:
            out.append(_symbol(word))
    joined = " ".join(out).replace("( ", "(").replace(" )", ")")
    return joined if _valid_with_refs(joined) else license_ref(text)


def _valid_with_refs(expression: str) -> bool:
    try:
        info = _licensing().validate(expression)
    except (ExpressionError, AttributeError):
        return False
    return all(s.startswith("LicenseRef-") for s in info.invalid_symbols) and not \
        [e for e in info.errors if "Unknown license key" not in e]


def refs_in(expression: str) -> list[str]:
    """The LicenseRef- identifiers an expression uses."""
    return sorted(set(re.findall(r"LicenseRef-[A-Za-z0-9.\-]+", expression or "")))


def from_classifiers(classifiers: list[str]) -> str:
    found = []
    for c in classifiers:
        if c.startswith("License ::"):
            name = c.split("::")[-1].strip()
            spdx = CLASSIFIERS.get(name)
            if spdx is None or spdx == "":
                spdx = license_ref(name) if name not in ("OSI Approved",) else ""
            if spdx and spdx not in found:
                found.append(spdx)
    return " OR ".join(found) if len(found) <= 1 else "(" + " OR ".join(found) + ")"
