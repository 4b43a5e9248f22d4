"""The registry sink: push one Image to every destination."""
from __future__ import annotations

import logging

from executor.image import Image
from executor.registry import Reference, RegistryClient, RegistryOptions

log = logging.getLogger(__name__)


def push(image: Image, destinations: list[str | Reference], client: RegistryClient | None = None,
         options: RegistryOptions | None = None, confirmed: dict[tuple[str, str], dict[str, str]] | None = None) -> str:
    """Push `image` (blobs first, manifest last) to each destination; returns the image digest. `confirmed`:
    blobs each repository already holds from this run (sent while building), not asked for again."""
    if not destinations:
        raise ValueError("no destination to push to: give --destination, or --no-push")
    refs = [d if isinstance(d, Reference) else Reference.parse(d) for d in destinations]
    client = client or RegistryClient(options)
    return client.push(image, refs, confirmed)
