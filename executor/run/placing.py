"""RUN --mount without mounting: what a mount would show is put in place in the root for one command, and
taken out again afterwards.

kiln mounts where it can (``executor.run.process`` decides: a scratch root always runs in namespaces of its
own; on ``/`` it tries once whether a mount namespace with bind and tmpfs mounts can be made, which needs
CAP_SYS_ADMIN). A Kubernetes pod's container has no CAP_SYS_ADMIN by default, and neither do the manifests
in deploy/: there kiln does what kaniko does (osscontainertools/kaniko ``pkg/commands/run.go``: a cache
directory is renamed onto the target and back, a secret written as a file and removed, a bind source
copied in), for every mount type:

* whatever is at the target (a mount would hide it) is renamed into kiln's scratch directory and renamed
  back afterwards, so its inode, its entries and their inodes and ctimes stay what the snapshot indexed;
  the mtimes of the target and of its parent (a rename changes the parent's) are set back to what they
  were, the parent's only when its entries are the same names as before (a command that added or removed
  something there changed it for real);
* a source kiln owns and that may be written (a cache directory, the scratch copy behind a read-write
  bind) is renamed onto the target and back: what the command wrote there is kept where the source lives
  (a cache's next RUN sees it; a read-write bind's copy is discarded with kiln's scratch directory, as
  BuildKit discards writes to a read-write bind);
* any other source (a read-only bind of the context or a stage, a secret file, a read-only cache, heredoc
  scripts) is copied in (owners, modes, times, xattrs, hard links kept) and removed afterwards. Read-only
  cannot be enforced without a mount (kiln runs as root, with CAP_DAC_OVERRIDE): the command can write to
  the copy; the write never reaches the source or a layer, and kiln logs a warning naming the mount when
  the copy changed (BuildKit would have refused the write with "Read-only file system");
* a tmpfs is an empty directory (mode 1777 as a fresh tmpfs, or the mount's mode), removed afterwards
  with whatever the command put in it; its ``size`` is not enforced;
* missing parents of a target are created and removed again (``targets.CreatedPaths``).

A rename fails with EXDEV across filesystems (kiln's directory on a volume of its own, a target under a
mount, a directory of the lower layer of an overlay root without ``redirect_dir``): then the tree is
copied and the original removed, as kaniko's ``util.MoveDir`` does. A target's original content that had
to be copied comes back as new inodes, so the snapshot of that RUN holds the directory again (the same
content: the image does not change, the layer is bigger); kiln logs it.

Placing and taking out are not interrupted by SIGTERM (``pid1.uninterrupted``): a cancelled build takes
everything out before it stops. A build killed outright (SIGKILL) leaves the content in the root; the next
build in the same container wipes the root first (``executor.engine.session``, ``dirty_root``).
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import stat
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from executor.run.errors import RunError
from executor.run.targets import CreatedPaths
from snapshot.ignore import mount_points
from snapshot.paths import RootPathError, resolve_in_root

if TYPE_CHECKING:
    from executor.run.process import Mount

log = logging.getLogger(__name__)

TMPFS_MODE = 0o1777  # the root of a fresh tmpfs (mm/shmem.c), unless the mount gives a mode


# ---------------------------------------------------------------- copying and moving trees

def _copy_xattrs(src: str, dst: str) -> None:
    try:
        names = os.listxattr(src, follow_symlinks=False)
    except OSError as err:
        if err.errno not in (errno.ENOTSUP, errno.EPERM):
            raise
        return
    for name in names:
        try:
            os.setxattr(dst, name, os.getxattr(src, name, follow_symlinks=False), follow_symlinks=False)
        except OSError as err:  # trusted.* needs CAP_SYS_ADMIN; a filesystem may lack xattrs
            log.debug("cannot copy xattr %s of %s to %s: %s", name, src, dst, err.strerror)


def _finish(src: str, dst: str, st: os.stat_result) -> None:
    """Owner, then mode (chown clears setuid bits), xattrs (after chown, which drops security.capability),
    then times."""
    os.lchown(dst, st.st_uid, st.st_gid)
    if not stat.S_ISLNK(st.st_mode):
        os.chmod(dst, stat.S_IMODE(st.st_mode))
    _copy_xattrs(src, dst)
    os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)


def copy_tree(src: str, dst: str) -> None:
    """Copy ``src`` (a directory tree, a file, a link or a node; not followed) to ``dst``, which must not
    exist: owners, modes, times, xattrs, symlinks, device nodes, fifos and hard links within the tree kept.
    Iterative, so any depth works."""
    links: dict[tuple[int, int], str] = {}
    dirs: list[tuple[str, str, os.stat_result]] = []
    stack = [(src, dst)]
    while stack:
        s, d = stack.pop()
        st = os.lstat(s)
        mode = st.st_mode
        if stat.S_ISDIR(mode):
            os.mkdir(d, 0o700)
            dirs.append((s, d, st))
            with os.scandir(s) as it:
                stack.extend((e.path, os.path.join(d, e.name)) for e in it)
            continue
        if stat.S_ISREG(mode):
            key = (st.st_dev, st.st_ino)
            first = links.get(key) if st.st_nlink > 1 else None
            if first is not None:
                os.link(first, d, follow_symlinks=False)
                continue
            shutil.copyfile(s, d, follow_symlinks=False)
            if st.st_nlink > 1:
                links[key] = d
        elif stat.S_ISLNK(mode):
            os.symlink(os.readlink(s), d)
        else:  # fifo, socket, character or block device (CAP_MKNOD, as extracting a layer needs)
            os.mknod(d, stat.S_IFMT(mode) | 0o600, st.st_rdev)
        _finish(s, d, st)
    for s, d, st in reversed(dirs):  # children first: their creation changed the directory's mtime
        _finish(s, d, st)


def remove_path(path: str) -> None:
    """Remove a file, link or directory tree; nothing when it is not there."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(path)
    else:
        os.unlink(path)


def move(src: str, dst: str) -> bool:
    """Rename ``src`` to ``dst`` (which must not exist); across filesystems (EXDEV) copy it and remove the
    original, as kaniko's ``util.MoveDir``. True when renamed (same inodes), False when copied."""
    if os.path.lexists(dst):
        raise FileExistsError(errno.EEXIST, "already exists", dst)
    try:
        os.rename(src, dst)
        return True
    except OSError as err:
        if err.errno != errno.EXDEV:
            raise
    try:
        copy_tree(src, dst)
    except BaseException:
        remove_path(dst)
        raise
    remove_path(src)
    return False


def fingerprint(path: str) -> dict[str, tuple[int, ...]]:
    """Every entry of a tree with what a write, chmod, chown, rename or new entry changes."""
    out: dict[str, tuple[int, ...]] = {}
    stack = [("", path)]
    while stack:
        rel, host = stack.pop()
        st = os.lstat(host)
        out[rel] = (st.st_mode, st.st_uid, st.st_gid, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
        if stat.S_ISDIR(st.st_mode):
            with os.scandir(host) as it:
                stack.extend((f"{rel}/{e.name}", e.path) for e in it)
    return out


# ---------------------------------------------------------------- placing one command's mounts

@dataclass
class _Step:
    """One thing to undo after the command, and what it is for messages."""

    what: str
    undo: Callable[[], None]


@dataclass
class Placement:
    """The mounts of one command, placed in the root; ``restore()`` takes them out again."""

    root: str
    save_dir: str  # kiln's own, outside the snapshot; the same filesystem as the root where possible
    steps: list[_Step] = field(default_factory=list)
    moved_sources: dict[str, str] = field(default_factory=dict)  # owned source -> where it is now
    _counter: int = 0

    def place(self, mounts: list[tuple[str, Mount]]) -> None:
        """Place ``(target in root, mount)`` pairs, outermost first. On an error, what was placed is taken
        out again and RunError raised."""
        try:
            for target, m in mounts:
                self._place_one(target, m)
        except BaseException as err:
            problems = self.restore()
            for problem in problems:
                log.error("%s", problem)
            if isinstance(err, OSError):
                raise RunError(f"cannot put RUN --mount content in place: {err}") from None
            raise

    def restore(self) -> list[str]:
        """Undo every step, newest first; returns what could not be undone (every step is tried)."""
        problems: list[str] = []
        while self.steps:
            step = self.steps.pop()
            try:
                step.undo()
            except OSError as err:
                problems.append(f"{step.what}: {err}")
        return problems

    # -- internals ----------------------------------------------------------------------------------
    def _save_path(self, label: str) -> str:
        self._counter += 1
        return os.path.join(self.save_dir, f"{self._counter:03d}-{label}")

    def _host(self, target: str) -> str:
        try:
            host = resolve_in_root(self.root, target)
        except RootPathError as err:
            raise RunError(f"cannot prepare mount target {target}: {err}") from None
        if os.path.normpath(host) == os.path.normpath(self.root):
            raise RunError(f"cannot mount over the root {target}")
        return host

    def _check_no_mount_points(self, target: str, host: str) -> None:
        """A mount point cannot be renamed (EBUSY), and one below the target would travel with it."""
        real = os.path.realpath(host)
        for point in mount_points():
            if point == real or point.startswith(real.rstrip("/") + "/"):
                raise RunError(f"cannot put RUN --mount content at {target}: {point} is a mount point of kiln's "
                               "container there, and without mounts of its own (no CAP_SYS_ADMIN) kiln can only "
                               "move what is at the target aside")

    def _place_one(self, target: str, m: Mount) -> None:
        host = self._host(target)
        self._check_no_mount_points(target, host)
        source = os.path.abspath(m.source) if m.type != "tmpfs" else ""
        origin = self.moved_sources.get(source, source)  # the same cache twice: the second sees a copy
        source_is_dir = m.type == "tmpfs" or os.path.isdir(origin)
        if origin and (host.rstrip("/") + "/").startswith(origin.rstrip("/") + "/"):
            raise RunError(f"cannot mount {m.source} on {target}: the target lies inside the source")
        # parents: created ones are removed afterwards; an existing parent gets its times back
        created = CreatedPaths(self.root)
        parent_in_root = "/" + os.path.relpath(os.path.dirname(host), self.root)
        parent = created.ensure(os.path.normpath(parent_in_root), True)
        self.steps.append(_Step(f"removing the parents created for {target}", created.remove))
        if not created.entries:
            pst = os.lstat(parent)
            names = frozenset(os.listdir(parent))
            self.steps.append(_Step(f"restoring the times of {os.path.dirname(target)}",
                                    lambda: _restore_times(parent, pst, names)))
        # what is at the target: moved aside, brought back afterwards
        try:
            st = os.lstat(host)
        except FileNotFoundError:
            st = None
        if st is not None:
            if stat.S_ISDIR(st.st_mode) != source_is_dir:
                what = "a directory" if stat.S_ISDIR(st.st_mode) else "not a directory"
                raise RunError(f"cannot mount {m.source or m.type} on {target}: {target} is {what} in the image")
            saved = self._save_path("target")
            renamed = move(host, saved)
            if not renamed:
                log.info("RUN --mount over %s: it could not be moved aside in one piece (another filesystem, or "
                         "the lower layer of an overlay root), so it was copied; it comes back as a copy, and this "
                         "RUN's layer holds it again", target)
            self.steps.append(_Step(f"putting the original {target} back",
                                    lambda: _bring_back(saved, host, st, target)))
        # the mount's content
        if m.type == "tmpfs":
            os.mkdir(host, 0o700)
            self.steps.append(_Step(f"removing the tmpfs stand-in at {target}", lambda: remove_path(host)))
            os.chmod(host, m.mode if m.mode is not None else TMPFS_MODE)
            os.lchown(host, 0, 0)
            return
        if m.owned and not m.readonly and source not in self.moved_sources:
            move(source, host)
            self.moved_sources[source] = host
            self.steps.append(_Step(f"moving {target} back to {source}",
                                    lambda: _move_back(host, source, source_is_dir, target)))
            return
        self.steps.append(_Step(f"removing the copy of {m.source} at {target}", lambda: remove_path(host)))
        copy_tree(origin, host)
        if m.readonly:
            before = fingerprint(host)
            self.steps.append(_Step(f"checking the read-only {target}",
                                    lambda: _warn_if_written(host, before, target)))


def _restore_times(path: str, st: os.stat_result, names: frozenset[str]) -> None:
    try:
        if frozenset(os.listdir(path)) != names:
            return  # the command changed this directory itself
    except FileNotFoundError:
        return
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)


def _bring_back(saved: str, host: str, st: os.stat_result, target: str) -> None:
    if os.path.lexists(host):
        # the command replaced the mount's content (or taking it out failed): the original wins, as it
        # was under the mount all along
        log.warning("RUN --mount at %s: removing what the command left there to restore the original", target)
        remove_path(host)
    parent = os.path.dirname(host)
    if not os.path.isdir(parent):
        log.warning("RUN --mount at %s: the command removed its parent; recreating it for the original", target)
        os.makedirs(parent, 0o755)
    move(saved, host)
    os.utime(host, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)


def _move_back(host: str, source: str, was_dir: bool, target: str) -> None:
    try:
        st = os.lstat(host)
    except FileNotFoundError:
        log.warning("RUN --mount at %s: the command removed it; %s starts over empty", target, source)
        return
    if stat.S_ISDIR(st.st_mode) != was_dir:
        log.warning("RUN --mount at %s: the command replaced it with another kind of file; %s starts over empty",
                    target, source)
        remove_path(host)
        return
    remove_path(source)  # nothing should be there; never merge into a stale leftover
    move(host, source)


def _warn_if_written(host: str, before: dict[str, tuple[int, ...]], target: str) -> None:
    try:
        changed = fingerprint(host) != before
    except FileNotFoundError:
        changed = True
    if changed:
        log.warning("RUN wrote to its read-only mount %s: without mounts (no CAP_SYS_ADMIN) kiln cannot refuse "
                    "the write as BuildKit does (\"Read-only file system\"); it went to a copy and is discarded",
                    target)


def new_save_dir(scratch: str | None) -> str:
    """A directory of kiln's for saving targets: under ``scratch`` (kiln's work directory, outside the
    snapshot) when given."""
    if scratch:
        os.makedirs(scratch, exist_ok=True)
    return tempfile.mkdtemp(prefix="mounts-", dir=scratch or None)
