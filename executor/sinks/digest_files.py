"""The digest files kaniko writes after a build.

--digest-file:                      "sha256:<hex>" and nothing else (no newline)
--image-name-with-digest-file:      "<registry/repository>@sha256:<hex>\n" per destination
--image-name-tag-with-digest-file:  "<registry/repository>:<tag>@sha256:<hex>\n" per destination

Names are printed as kaniko (go-containerregistry) prints them: Docker Hub as "index.docker.io/library/x",
a destination without a tag as ":latest".
"""
from __future__ import annotations

import logging
import os

from executor.image import digest as _digest
from executor.registry.reference import DEFAULT_TAG, Reference

log = logging.getLogger(__name__)


def write_file(path: str, content: bytes) -> None:
    """Write `content` to `path` as Go's os.WriteFile(path, data, 0644) does in kaniko: a new file is created
    0644 (less the umask), missing parent directories 0700; an existing file keeps its mode and owner, and a
    device or FIFO (`/dev/termination-log`, `/dev/stdout`) is written to, never changed."""
    parent = os.path.dirname(path)
    if parent and not os.path.isdir(parent):
        os.makedirs(parent, mode=0o700, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        with os.fdopen(fd, "wb") as f:
            f.write(content)
    except OSError as e:
        raise OSError(e.errno, f"cannot write digest file {path}: {e.strerror}") from None


def _refs(destinations: list[str | Reference]) -> list[Reference]:
    return [d if isinstance(d, Reference) else Reference.parse(d) for d in destinations]


def digest_file_content(digest: str) -> bytes:
    return _digest.validate(digest, "image digest").encode()


def image_name_with_digest_content(destinations: list[str | Reference], digest: str) -> bytes:
    _digest.validate(digest, "image digest")
    return "".join(f"{r.kaniko_name}@{digest}\n" for r in _refs(destinations)).encode()


def image_name_tag_with_digest_content(destinations: list[str | Reference], digest: str) -> bytes:
    _digest.validate(digest, "image digest")
    return "".join(f"{r.kaniko_name}:{r.tag or DEFAULT_TAG}@{digest}\n" for r in _refs(destinations)).encode()


def write_digest_files(digest: str, destinations: list[str | Reference], digest_file: str | None = None,
                       image_name_with_digest_file: str | None = None,
                       image_name_tag_with_digest_file: str | None = None) -> None:
    """Write whichever of the three files was asked for."""
    if (image_name_with_digest_file or image_name_tag_with_digest_file) and not destinations:
        raise ValueError("--image-name-with-digest-file and --image-name-tag-with-digest-file need at least one "
                         "--destination")
    if digest_file:
        write_file(digest_file, digest_file_content(digest))
        log.info("wrote digest %s to %s", digest, digest_file)
    if image_name_with_digest_file:
        write_file(image_name_with_digest_file, image_name_with_digest_content(destinations, digest))
    if image_name_tag_with_digest_file:
        write_file(image_name_tag_with_digest_file, image_name_tag_with_digest_content(destinations, digest))
