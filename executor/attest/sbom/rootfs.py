"""Reading an image's root file system from the outside: every path is resolved inside the root (an
absolute symlink in the image points into the image, never at the machine kiln runs on)."""
from __future__ import annotations

import os
import stat

MAX_METADATA = 64 << 20     # a package database larger than this is not read (a hostile image)


class RootFS:
    def __init__(self, root: str):
        self.root = os.path.realpath(root)

    def host(self, path: str, follow: bool = True) -> str | None:
        """The machine path of image path `path` with symlinks resolved inside the root (at most 40),
        or None when it leaves the root or does not exist."""
        parts = [p for p in path.split("/") if p and p != "."]
        resolved: list[str] = []
        hops = 0
        while parts:
            part = parts.pop(0)
            if part == "..":
                if resolved:
                    resolved.pop()
                continue
            candidate = os.path.join(self.root, *resolved, part)
            try:
                st = os.lstat(candidate)
            except OSError:
                return None
            if stat.S_ISLNK(st.st_mode) and (follow or parts):
                hops += 1
                if hops > 40:
                    return None
                target = os.readlink(candidate)
                if target.startswith("/"):
                    resolved = []
                parts = [p for p in target.split("/") if p and p != "."] + parts
                continue
            resolved.append(part)
        return os.path.join(self.root, *resolved)

    def read(self, path: str, limit: int = MAX_METADATA) -> bytes | None:
        host = self.host(path)
        if host is None:
            return None
        try:
            if not stat.S_ISREG(os.stat(host).st_mode):
                return None
            with open(host, "rb") as f:
                return f.read(limit)
        except OSError:
            return None

    def text(self, path: str, limit: int = MAX_METADATA) -> str | None:
        data = self.read(path, limit)
        return data.decode("utf-8", errors="replace") if data is not None else None

    def is_file(self, path: str) -> bool:
        host = self.host(path, follow=False)
        return host is not None and os.path.isfile(host) and not os.path.islink(host)

    def listdir(self, path: str) -> list[str]:
        host = self.host(path)
        if host is None or not os.path.isdir(host):
            return []
        try:
            return sorted(os.listdir(host))
        except OSError:
            return []

    def image_path(self, host: str) -> str:
        rel = os.path.relpath(host, self.root)
        return "/" if rel == "." else "/" + rel

    def walk(self, skip: tuple[str, ...] = ("/proc", "/sys", "/dev")):
        """(image dir, dirnames, filenames) for every directory of the root, symlinks not followed."""
        for directory, dirnames, filenames in os.walk(self.root):
            image_dir = self.image_path(directory)
            dirnames[:] = sorted(d for d in dirnames
                                 if (image_dir.rstrip("/") + "/" + d) not in skip)
            yield image_dir, dirnames, sorted(filenames)
