"""Validating SPDX documents with the SPDX project's own tool (spdx-tools): the JSON is parsed into its model
(which checks every field's form) and the whole document validated against SPDX 2.3.

spdx-tools looks every SPDX id up by rebuilding the list of all ids of the document for each reference
(spdx_id_validators.get_list_of_all_spdx_ids, called once per relationship): quadratic, hours for an image's
ten thousand files. `spdx_errors` answers those lookups from one set per document, built the same way, so the
verdicts are the tool's own."""
from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from unittest import mock


@contextmanager
def _fast_id_lookups():
    from spdx_tools.spdx.validation import spdx_id_validators as ids

    original = ids.get_list_of_all_spdx_ids
    cache: dict[int, set[str]] = {}

    def present(spdx_id: str, document) -> bool:
        key = id(document)
        if key not in cache:
            cache[key] = set(original(document))
        return spdx_id in cache[key]

    file_cache: dict[int, set[str]] = {}

    def in_files(spdx_id: str, files) -> bool:
        key = id(files)
        if key not in file_cache:
            file_cache[key] = {f.spdx_id for f in files}
        return spdx_id in file_cache[key]

    from spdx_tools.spdx import spdx_element_utils as elements
    from spdx_tools.spdx.validation import package_validator

    original_type = elements.get_element_type_from_spdx_id
    types: dict[int, dict[str, type]] = {}

    def element_type(spdx_id: str, document):
        key = id(document)
        if key not in types:
            table: dict[str, type] = {}
            for kind, items in ((type(s), [s]) for s in document.snippets):
                table.setdefault(items[0].spdx_id, kind)
            for f in document.files:
                table.setdefault(f.spdx_id, type(f))
            for p in document.packages:
                table[p.spdx_id] = type(p)
            types[key] = table
        return types[key].get(spdx_id) if spdx_id in types[key] else original_type(spdx_id, document)

    with mock.patch.object(ids, "is_spdx_id_present_in_document", present), \
            mock.patch.object(ids, "is_spdx_id_present_in_files", in_files), \
            mock.patch.object(package_validator, "get_element_type_from_spdx_id", element_type):
        yield


def spdx_errors(document: dict) -> list[str]:
    """The validation messages spdx-tools gives for `document` (an SPDX 2.3 JSON object); [] when valid."""
    from spdx_tools.spdx.parser.parse_anything import parse_file
    from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document

    with tempfile.NamedTemporaryFile("w", suffix=".spdx.json", delete=False) as f:
        json.dump(document, f)
    try:
        parsed = parse_file(f.name)
    finally:
        os.unlink(f.name)
    with _fast_id_lookups():
        return [m.validation_message for m in validate_full_spdx_document(parsed, "SPDX-2.3")]
