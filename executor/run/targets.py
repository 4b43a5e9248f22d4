"""Mount targets inside the image root: created when missing, and removed again afterwards.

A RUN must not leave mount points behind in the root (the snapshot would see a new ``/proc`` or an
empty ``/etc/resolv.conf``), so every directory or file created for a mount is recorded and removed
after the command, newest first, as BuildKit does with its mount stubs. A created directory that the
command filled (through a path not covered by a mount) is kept, and so is a file that is no longer
empty: they are the command's output now.
"""

from __future__ import annotations

import logging
import os
import stat
from dataclasses import dataclass, field

from executor.run.errors import RunError
from snapshot.paths import RootPathError, resolve_in_root

log = logging.getLogger(__name__)


@dataclass
class CreatedPaths:
    """Paths created in the root for this command only, in creation order."""

    root: str
    entries: list[tuple[str, bool]] = field(default_factory=list)  # (host path, is_dir)
    # mtimes of the existing directories entries were created in, restored after removal so that the
    # snapshot does not see a directory the command itself never changed
    # (and whose entries are the same as before: a directory the command did change keeps its new mtime)
    parent_times: dict[str, tuple[int, int, frozenset[str]]] = field(default_factory=dict)

    def ensure(self, path_in_root: str, directory: bool) -> str:
        """Host path of ``path_in_root``, creating it (and missing parents) when absent."""
        try:
            host = resolve_in_root(self.root, path_in_root)
        except RootPathError as err:
            raise RunError(f"cannot prepare mount target {path_in_root}: {err}") from None
        if os.path.lexists(host):
            return host
        root = os.path.abspath(self.root)
        rel = os.path.relpath(host, root)
        current = root
        parts = rel.split(os.sep)
        try:
            for i, part in enumerate(parts):
                current = os.path.join(current, part)
                if os.path.lexists(current):
                    if not os.path.isdir(current):
                        raise RunError(
                            f"cannot create mount target {path_in_root}: "
                            f"{'/' + os.path.relpath(current, root)} exists and is not a directory"
                        )
                    continue
                last = i == len(parts) - 1
                parent = os.path.dirname(current)
                if parent not in self.parent_times and not any(parent == p for p, _ in self.entries):
                    pst = os.lstat(parent)
                    self.parent_times[parent] = (pst.st_atime_ns, pst.st_mtime_ns, frozenset(os.listdir(parent)))
                if last and not directory:
                    os.close(os.open(current, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644))
                    self.entries.append((current, False))
                else:
                    os.mkdir(current, 0o755)
                    self.entries.append((current, True))
        except OSError as err:
            raise RunError(f"cannot create mount target {path_in_root} in {self.root}: {err}") from None
        return host

    def remove(self) -> None:
        """Remove what ``ensure`` created, newest first; keep anything the command put content in."""
        while self.entries:
            path, is_dir = self.entries.pop()
            try:
                st = os.lstat(path)
                if is_dir and stat.S_ISDIR(st.st_mode):
                    os.rmdir(path)
                elif not is_dir and stat.S_ISREG(st.st_mode) and st.st_size == 0:
                    os.unlink(path)
                else:
                    log.debug("keeping %s: the command replaced it", path)
            except FileNotFoundError:
                continue
            except OSError as err:
                log.debug("keeping %s: %s", path, err)
        for parent, (atime, mtime, names) in self.parent_times.items():
            try:
                if frozenset(os.listdir(parent)) == names:
                    os.utime(parent, ns=(atime, mtime), follow_symlinks=False)
            except OSError as err:
                log.debug("cannot restore the mtime of %s: %s", parent, err)
        self.parent_times.clear()
