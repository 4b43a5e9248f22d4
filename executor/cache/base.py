"""The base-image cache (`--cache-dir`), filled by the warmer and read by builds.

Layout of the directory:
  blobs/sha256/<hex>          manifests, configs and layers, by digest (the registry client's blob
                              layout, so the warmer downloads verified layers straight into it)
  refs/<sha256 of ref|platform>.json
                              {"reference", "platform", "manifest", "source", "resolved"}: which image
                              manifest a reference meant for a platform, and when that was asked

A reference by digest never expires. A tag's answer is trusted for `--cache-ttl` after it was resolved,
so a build with a warmed cache pulls nothing, and works with the registry out of reach; after that the
registry is asked again (one manifest request): if the tag still names the cached manifest the cached
blobs serve, otherwise the image is pulled as usual (kaniko's expiry). Every blob read from the cache is
checked against its digest; a damaged entry is a warning and the image is pulled as usual.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass

from executor.image import Image, ImageConfig, Layer, Manifest, Platform
from executor.image import digest as _digest
from executor.registry import Reference, RegistryClient

log = logging.getLogger(__name__)


class BaseCacheError(Exception):
    pass


@dataclass
class BaseImageCache:
    """The base-image cache of `--cache-dir` (layout in the module docstring): the warmer fills it, a build's FROM
    reads it before asking a registry."""
    directory: str
    ttl: float
    #: asked, after a tag's answer expired, whether the tag still names the cached manifest
    client: RegistryClient | None = None

    @property
    def blob_dir(self) -> str:
        return os.path.join(self.directory, "blobs")

    def blob_path(self, digest: str) -> str:
        return os.path.join(self.blob_dir, _digest.algorithm_of(digest), _digest.hex_of(digest))

    def _ref_path(self, ref: Reference, platform: Platform) -> str:
        name = hashlib.sha256(f"{ref}|{platform}".encode()).hexdigest()
        return os.path.join(self.directory, "refs", name + ".json")

    # ---- reading (builds) ----------------------------------------------------------------------
    def entry(self, name: str, platform: Platform) -> dict | None:
        ref = Reference.parse(name)
        try:
            with open(self._ref_path(ref, platform), "rb") as f:
                return json.load(f)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as e:
            log.warning("base image cache: entry for %s is unreadable: %s", ref, e)
            return None

    def fresh(self, name: str, platform: Platform) -> bool:
        entry = self.entry(name, platform)
        if entry is None:
            return False
        return bool(Reference.parse(name).digest) or time.time() - float(entry.get("resolved", 0)) <= self.ttl

    def pull(self, name: str, platform: Platform) -> Image | None:
        """The cached image for `name` on `platform`, or None (not cached, expired or damaged)."""
        try:
            ref = Reference.parse(name)
        except ValueError:
            return None
        entry = self.entry(name, platform)
        if entry is None:
            log.info("base image cache: %s (%s) is not in %s", ref, platform, self.directory)
            return None
        age = time.time() - float(entry.get("resolved", 0))
        if not ref.digest and age > self.ttl and not self._still_current(ref, platform, entry, age):
            return None
        try:
            image = self._load(entry["manifest"], entry.get("source"))
        except (OSError, ValueError, KeyError, BaseCacheError) as e:
            log.warning("base image cache: %s is damaged (%s); pulling it", ref, e)
            return None
        log.info("Found %s in the base image cache (%s)", ref, entry["manifest"])
        return image

    def _still_current(self, ref: Reference, platform: Platform, entry: dict, age: float) -> bool:
        """After the TTL: does the tag still name the cached manifest? (one manifest request)"""
        expired = (f"base image cache: {ref} expired (resolved {age / 3600:.1f}h ago, --cache-ttl "
                   f"{self.ttl / 3600:.1f}h)")
        if self.client is None:
            log.info("%s; pulling it", expired)
            return False
        try:
            _, _, pulled = self.client.resolve(ref, platform)
        except Exception as e:   # the pull that follows reports the registry's error
            log.info("%s and the registry did not answer (%s)", expired, e)
            return False
        if pulled.manifest_digest != entry.get("manifest"):
            log.info("%s; the tag now names %s, pulling it", expired, pulled.manifest_digest)
            return False
        log.info("%s; the tag still names %s, using the cached blobs", expired, pulled.manifest_digest)
        return True

    def _read(self, digest: str) -> bytes:
        try:
            return _digest.read_verified(self.blob_path(digest), digest)
        except _digest.DigestMismatch as e:
            raise BaseCacheError(str(e)) from None

    def _load(self, manifest_digest: str, source: str | None) -> Image:
        manifest = Manifest.from_bytes(self._read(manifest_digest), where=f"cached manifest {manifest_digest}")
        config = ImageConfig.from_bytes(self._read(manifest.config.digest))
        if len(config.diff_ids) != len(manifest.layers):
            raise BaseCacheError(f"manifest {manifest_digest} and its config disagree on the layer count")
        layers = []
        for desc, diff_id in zip(manifest.layers, config.diff_ids):
            path = self.blob_path(desc.digest)
            got, size = _digest.of_file(path)
            if got != desc.digest or size != desc.size:
                raise BaseCacheError(f"layer {desc.digest} hashes to {got} ({size} bytes)")
            layers.append(Layer.from_file(path, desc.media_type, diff_id, desc.digest, desc.size, source=source))
        return Image.from_parts(manifest, config, layers)

    # ---- writing (the warmer) ------------------------------------------------------------------
    def _write_blob(self, digest: str, data: bytes) -> None:
        path = self.blob_path(digest)
        if os.path.exists(path):
            return
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = path + ".partial"
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)

    def warm(self, client: RegistryClient, name: str, platform: Platform, force: bool = False) -> str:
        """Pull `name` for `platform` (every layer, verified) into the cache; returns the manifest digest."""
        ref = Reference.parse(name)
        if not force and self.fresh(name, platform):
            entry = self.entry(name, platform) or {}
            try:
                self._load(entry["manifest"], entry.get("source"))
                log.info("Image %s already in the cache (%s); --force to pull it again", ref, entry["manifest"])
                return entry["manifest"]
            except (OSError, ValueError, KeyError, BaseCacheError) as e:
                log.warning("cached %s is damaged (%s); pulling it again", ref, e)
        image = client.pull(ref, platform)
        for layer in image.layers:                # a damaged blob left by an earlier run goes first
            path = self.blob_path(layer.digest)
            if os.path.exists(path) and _digest.of_file(path) != (layer.digest, layer.size):
                log.warning("cached layer %s is damaged; downloading it again", layer.digest)
                os.unlink(path)
        client.fetch_layers(image)
        for layer in image.layers:                # already here when the client shares our blob dir
            path = self.blob_path(layer.digest)
            if not os.path.exists(path):
                os.makedirs(os.path.dirname(path), exist_ok=True)
                with layer.open_blob() as src, open(path + ".partial", "wb") as dst:
                    while chunk := src.read(1 << 20):
                        dst.write(chunk)
                os.replace(path + ".partial", path)
        config = image.config_bytes()
        self._write_blob(image.config_descriptor().digest, config)
        data = image.manifest_bytes()
        digest = _digest.of_bytes(data)
        self._write_blob(digest, data)
        entry = {"reference": str(ref), "platform": str(platform), "manifest": digest,
                 "source": f"{ref.registry}/{ref.repository}", "resolved": time.time()}
        path = self._ref_path(ref, platform)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path + ".partial", "w") as f:
            json.dump(entry, f)
        os.replace(path + ".partial", path)
        log.info("Cached %s (%s) as %s: %d layers", ref, platform, digest, len(image.layers))
        return digest
