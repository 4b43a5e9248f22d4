"""A push interrupted by a signal (BuildCancelled raised in the waiting thread): the blob transfers already
under way run to their end in their daemon threads, but no manifest follows, and their arrival is no longer
reported as an upload at info level after "build cancelled ...: nothing was pushed" (docs/errors.md,
BuildCancelled)."""
from __future__ import annotations

import hashlib
import io
import logging
import os
import signal
import threading
import time

import pytest
import requests

from executor.image import Descriptor
from executor.image import mediatypes as mt
from executor.registry import Reference
from executor.registry import push as _push
from executor.run.pid1 import BuildCancelled


def _blob(data: bytes, gate: threading.Event | None = None) -> _push.Blob:
    desc = Descriptor(mt.OCI_LAYER_GZIP if gate else mt.OCI_CONFIG, "sha256:" + hashlib.sha256(data).hexdigest(),
                      len(data))

    def opener():
        if gate is not None:
            gate.wait(30)         # the upload of this blob starts only once the test lets it
        return io.BytesIO(data)

    return _push.Blob(desc, opener)


def test_upload_finishing_after_a_cancel_is_not_reported_as_pushed(plain_registry, client_for, caplog):
    client = client_for(plain_registry)
    ref = Reference.parse(plain_registry.ref("cancelled/push:v1"))
    gate = threading.Event()
    held = _blob(os.urandom(300_000), gate)
    quick = _blob(b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}')

    def cancel(signum, frame):
        raise BuildCancelled(signal.SIGTERM)

    previous = signal.signal(signal.SIGALRM, cancel)
    caplog.set_level(logging.DEBUG, logger="executor.registry")
    try:
        signal.setitimer(signal.ITIMER_REAL, 1.0)
        with pytest.raises(BuildCancelled):
            _push.push_blobs_and_manifest(client.transport(ref.registry, push=True), ref, [held, quick],
                                          b"{}", mt.OCI_MANIFEST, None, jobs=2)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    gate.set()                    # the upload under way goes on in its daemon thread, and lands
    url = plain_registry.url(f"/v2/cancelled/push/blobs/{held.descriptor.digest}")
    deadline = time.monotonic() + 30
    while requests.head(url, timeout=10).status_code != 200:
        assert time.monotonic() < deadline, "the upload under way never completed"
        time.sleep(0.1)
    deadline = time.monotonic() + 10        # its thread logs just after the registry confirmed it
    while not any(held.descriptor.digest in r.getMessage() for r in caplog.records):
        assert time.monotonic() < deadline, "the finished upload logged nothing"
        time.sleep(0.05)
    about_held = [r for r in caplog.records if held.descriptor.digest in r.getMessage()]
    assert [r.levelno for r in about_held] == [logging.DEBUG], [r.getMessage() for r in about_held]
    assert about_held[0].getMessage() == (
        f"uploaded blob {held.descriptor.digest} (300000 bytes) to {plain_registry.host}/cancelled/push "
        "(after the build was cancelled: untagged, no manifest names it)")
    quick_lines = [r for r in caplog.records if quick.descriptor.digest in r.getMessage()]
    assert [r.levelno for r in quick_lines] == [logging.INFO], "the upload done before the cancel is reported"
    tags = requests.get(plain_registry.url("/v2/cancelled/push/tags/list"), timeout=10)
    assert tags.status_code == 404 or not tags.json().get("tags"), tags.text
