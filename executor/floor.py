"""What kiln needs after a build's first RUN, held so that the RUN cannot pull the floor from under it.

In the executor image kiln lives in /kaniko and builds on `/`: a RUN runs as the same root, with the same
capabilities, in the same file system. Without a mount namespace (a pod has no CAP_SYS_ADMIN) nothing can hide
/kaniko from it, so `RUN rm -rf /kaniko`, `RUN find / -name '*.pyc' -delete` or `RUN chmod -R 000 /kaniko` reach
kiln's own files. kaniko, a static Go binary with its state in memory and in /kaniko, has the same floor (it
ignores /kaniko in snapshots and keeps it out of images, as kiln does). None of it can reach an image: /kaniko
is on the snapshot's ignore list by path, whatever a RUN does to it. What kiln does so the build goes on:

* code: every module of kiln, and the standard-library and dependency modules they import lazily, is imported
  before the first RUN (``preload``); the interpreter and its shared libraries stay mapped. A RUN that deletes
  /kaniko or its .pyc files changes nothing kiln still has to load.
* trust and credentials: the CA bundles (the default one, --registry-certificate files, kaniko's
  additional-ca-cert-bundle.crt) and docker's config.json are read into memory before the first RUN; the
  registry client uses what it read when the file has gone since (``executor.registry.transport.hold_ca``,
  ``executor.registry.auth.hold_config``). Credential helper programs are not held (they run as processes).
* the work directory (``/kaniko/build-*``), the blob store, the cache-mount directory: before each RUN kiln
  opens every blob it keeps (pulled layers, layers written so far) and notes its directories; after the RUN it
  makes missing directories again, puts back each blob the RUN removed or replaced from the descriptor it holds,
  and gives kiln's directories and its interpreter their modes back. A tree it cannot hold by descriptor (a
  stage kept for a later COPY --from, an unpacked build context) that the RUN removed ends the build with a
  message naming that RUN.
* the helper for RUNs that need namespaces of their own (``executor.run._nsinit``, its source read when kiln
  loads, run as ``python -c``) needs kiln's interpreter file: with CAP_SYS_ADMIN a RUN that removed /kaniko
  makes later RUN --mount steps fail with a message saying so; without it (deploy/'s pods) such RUNs never
  start the helper (kiln places their mounts), and a failed probe means just that.

Everything here is per process (one build per executor process).
"""
from __future__ import annotations

import importlib
import logging
import os
import shutil
import stat
import sys
from collections.abc import Callable
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

# Modules that kiln's code imports inside functions (so they load on first use, possibly after a RUN removed
# /kaniko) or that the standard library loads on first use: datetime.strptime's _strptime (executor.cache.store),
# the idna codec (a non-ASCII host), git for ADD <git URL> (executor.engine.gitclone), isal/gzip for
# layer compression, importlib.metadata (--version). tests/e2e/test_floor.py checks that a build with every
# instruction kind, mounts, a TLS registry with tokens and every output imports nothing after its first RUN.
LAZY_MODULES = (
    "_strptime", "encodings.idna", "importlib.metadata", "requests.utils", "ssl", "socket", "tempfile", "io",
    "gzip", "isal.igzip", "dulwich.client", "dulwich.config", "dulwich.errors", "dulwich.index",
    "dulwich.object_store", "dulwich.objects", "dulwich.repo",
    # kept out of start-up (issue 21), loaded where used: ~/.aws files, STS answers, provenance ids
    "configparser", "xml.etree.ElementTree", "uuid", "zstandard",
)
_NOT_IMPORTED = ("__main__", "_nsinit")    # entry scripts: never imported as modules

#: Modules that a build reaches after its first RUN only through some instructions or options, by group. A
#: build that cannot reach a group leaves it out of the preload (`leave_out`). "git": ADD of a git repository
#: (executor.engine.gitclone) and the provenance's revision of a git context (executor.engine.attestations);
#: dulwich alone was ~20 ms of a preload that took ~40 ms in the executor image (~15 ms now, git and attest left out).
GROUPS: dict[str, tuple[str, ...]] = {
    "git": ("dulwich", "executor.engine.gitclone", "executor.engine.gitplan"),
    # --sbom and --provenance (executor.engine.attestations loads these only when asked): the scanners, the
    # SPDX writer with license_expression and packageurl, provenance ids; executor.attest.attach stays (reading
    # an OCI layout's index names its media types)
    "attest": ("executor.attest.sbom", "executor.attest.provenance", "executor.attest.layers", "uuid"),
}


def _in(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def module_names() -> list[str]:
    """Every module of kiln's two packages (but the entry scripts), each package before its modules, found by
    listing their directories: pkgutil.walk_packages imports each package to walk it, through the import
    system's finders, and took ~20 ms of the preload in the executor image; this takes under 1 ms."""
    import executor
    import snapshot

    names = []
    for package in (executor, snapshot):
        top = package.__path__[0]
        for directory, dirnames, filenames in os.walk(top):
            dirnames[:] = sorted(d for d in dirnames if d != "__pycache__" and d.isidentifier())
            relative = os.path.relpath(directory, top)
            prefix = package.__name__ if relative == "." else ".".join([package.__name__, *relative.split(os.sep)])
            if relative != ".":
                names.append(prefix)
            names += [f"{prefix}.{f[:-3]}" for f in sorted(filenames)
                      if f.endswith(".py") and f[:-3].isidentifier() and f[:-3] != "__init__"
                      and f[:-3] not in _NOT_IMPORTED]
    return names


def preload(skip: tuple[str, ...] = ()) -> list[str]:
    """Import every kiln module and the lazily imported ones above, but those under the module names in
    `skip`; the names that could not be imported (an optional dependency this installation lacks) are
    returned, not fatal."""
    failed = []
    for name in [*module_names(), *LAZY_MODULES]:
        if name in sys.modules or _in(name, skip):
            continue
        try:
            importlib.import_module(name)
        except Exception as e:  # noqa: BLE001 - an optional module may be missing; say which
            failed.append(name)
            log.debug("preload: %s not imported: %s", name, e)
    return failed


@dataclass
class _Held:
    """A blob kiln keeps, held open across a RUN: the open file descriptor, and the device, inode and mode that
    tell whether the RUN removed or replaced it."""
    fd: int
    dev: int
    ino: int
    mode: int


@dataclass
class Floor:
    """kiln's files in its directory, held across RUN steps (see the module's docstring)."""

    kiln_dir: str
    work_dir: str
    # what reads files kiln needs later into memory (the registry client's CA bundles and config.json)
    holders: list[Callable[[], None]] = field(default_factory=list)
    blobs: dict[str, _Held] = field(default_factory=dict)       # path -> open descriptor of a blob kiln keeps
    dirs: dict[str, int] = field(default_factory=dict)          # directory kiln made -> its mode
    trees: dict[str, tuple[int, int]] = field(default_factory=dict)   # kept tree -> (dev, ino)
    remakers: dict[str, Callable[[], None]] = field(default_factory=dict)  # kept tree -> how to make it again
    executables: dict[str, int] = field(default_factory=dict)   # kiln's interpreter and ld.so -> mode
    left_out: set[str] = field(default_factory=set)            # GROUPS this build cannot reach after a RUN
    preloaded: bool = False

    # ---- before a RUN ------------------------------------------------------------------------------
    def before_run(self) -> None:
        if not self.preloaded:
            self._first_run()
        for d in self._directories():
            try:
                st = os.stat(d)
            except OSError:
                continue
            self.dirs.setdefault(d, stat.S_IMODE(st.st_mode))
        for path in self._blob_files():
            if path in self.blobs:
                continue
            try:
                fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            except OSError:
                continue
            st = os.fstat(fd)
            self.blobs[path] = _Held(fd, st.st_dev, st.st_ino, stat.S_IMODE(st.st_mode))
        for path in self._kept_trees():
            if path in self.trees:
                continue
            try:
                st = os.lstat(path)
            except OSError:
                continue
            self.trees[path] = (st.st_dev, st.st_ino)

    def keep(self, path: str, remake: Callable[[], None] | None) -> None:
        """A tree kiln reads later (a stage kept for COPY --from, an image's root): `remake` makes it again from
        the blobs kiln holds, should a RUN remove it."""
        path = os.path.abspath(path)
        st = os.lstat(path)
        self.trees[path] = (st.st_dev, st.st_ino)
        if remake is not None:
            self.remakers[path] = remake

    def leave_out(self, group: str) -> None:
        """The build cannot reach `group` of GROUPS after its first RUN: the preload leaves it out."""
        if group not in GROUPS:
            raise ValueError(f"no module group {group!r} (known: {', '.join(sorted(GROUPS))})")
        self.left_out.add(group)

    def _first_run(self) -> None:
        failed = preload(tuple(p for g in sorted(self.left_out) for p in GROUPS[g]))
        if failed:
            log.debug("preload: not importable here: %s", ", ".join(failed))
        for hold in self.holders:
            hold()
        for path in (os.path.realpath(sys.executable), _elf_interpreter()):
            if path:
                try:
                    self.executables[path] = stat.S_IMODE(os.stat(path).st_mode)
                except OSError:
                    pass
        self.preloaded = True

    def _blob_tops(self) -> tuple[str, ...]:
        return (os.path.join(self.work_dir, "layers"), os.path.join(self.work_dir, "blobs"),
                os.path.join(self.kiln_dir, "blobs"))

    def _directories(self) -> list[str]:
        """kiln's own directories; the cache-mount directory itself, not the caches in it (their content and
        modes are the build's, changed through RUN --mount=type=cache)."""
        found = [self.kiln_dir, self.work_dir, os.path.join(self.kiln_dir, "cache-mounts")]
        for top in self._blob_tops():
            for dirpath, _, _ in os.walk(top):
                found.append(dirpath)
        return found

    def _blob_files(self) -> list[str]:
        """Finished blobs (a `.partial-*` download or upload in progress is not one)."""
        found = []
        for top in self._blob_tops():
            for dirpath, _, filenames in os.walk(top):
                found += [os.path.join(dirpath, n) for n in filenames if not n.startswith(".partial")]
        return found

    def _kept_trees(self) -> list[str]:
        """Directories of the work dir kiln reads later but cannot hold by descriptor: kept stages, image
        roots, an unpacked context."""
        found = []
        stages = os.path.join(self.work_dir, "stages")
        try:
            found += [os.path.join(stages, n) for n in os.listdir(stages)]
        except OSError:
            pass
        try:
            names = os.listdir(self.work_dir)
        except OSError:
            names = []
        found += [os.path.join(self.work_dir, n) for n in names if n.startswith(("image-", "context"))]
        return found

    # ---- after a RUN -------------------------------------------------------------------------------
    def after_run(self, step: str) -> None:
        """Put back what the RUN `step` (its Dockerfile text) removed or changed; raise FloorError for a kept
        tree it removed."""
        repaired: list[str] = []
        for d, mode in sorted(self.dirs.items(), key=lambda kv: kv[0].count("/")):
            try:
                st = os.lstat(d)
            except FileNotFoundError:
                os.makedirs(d, exist_ok=True)
                os.chmod(d, mode)
                repaired.append(d)
                continue
            if not stat.S_ISDIR(st.st_mode):
                os.unlink(d)
                os.makedirs(d, exist_ok=True)
                os.chmod(d, mode)
                repaired.append(d)
            elif stat.S_IMODE(st.st_mode) != mode:
                os.chmod(d, mode)
                repaired.append(d)
        for path, held in self.blobs.items():
            try:
                st = os.lstat(path)
                if (st.st_dev, st.st_ino) == (held.dev, held.ino):
                    if stat.S_IMODE(st.st_mode) != held.mode:
                        os.chmod(path, held.mode)
                        repaired.append(path)
                    continue
                os.unlink(path)
            except FileNotFoundError:
                pass
            self._restore(path, held)
            repaired.append(path)
        for path, mode in self.executables.items():
            try:
                if stat.S_IMODE(os.stat(path).st_mode) != mode:
                    os.chmod(path, mode)
                    repaired.append(path)
            except OSError:
                pass    # gone: a RUN that needs kiln's helper interpreter says so when it cannot start it
        lost = []
        for path, ident in list(self.trees.items()):
            try:
                st = os.lstat(path)
                if (st.st_dev, st.st_ino) == ident:
                    continue
            except FileNotFoundError:
                pass
            remake = self.remakers.get(path)
            if remake is None:
                lost.append(path)
                continue
            if os.path.lexists(path):
                if os.path.isdir(path) and not os.path.islink(path):
                    shutil.rmtree(path)
                else:
                    os.unlink(path)
            os.makedirs(path)
            remake()
            st = os.lstat(path)
            self.trees[path] = (st.st_dev, st.st_ino)
            repaired.append(path)
        if repaired:
            log.warning("%s changed kiln's own files under %s (%d paths); kiln put them back and goes on (none of "
                        "it is in any layer)", step, self.kiln_dir, len(repaired))
            log.debug("put back: %s", repaired)
        if lost:
            raise FloorError(f"{step} removed what kiln kept for the rest of the build under {self.kiln_dir} "
                             f"({', '.join(sorted(lost))}: a stage kept for COPY --from, an image root or the build "
                             "context), which kiln cannot make again: leave kiln's directory alone in RUN steps")

    def _restore(self, path: str, held: _Held) -> None:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        out = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, held.mode)
        try:
            size = os.fstat(held.fd).st_size
            offset = 0
            while offset < size:
                sent = os.sendfile(out, held.fd, offset, size - offset)
                if sent == 0:
                    break
                offset += sent
            st = os.fstat(out)
        finally:
            os.close(out)
        held.dev, held.ino = st.st_dev, st.st_ino

    def close(self) -> None:
        for held in self.blobs.values():
            try:
                os.close(held.fd)
            except OSError:
                pass
        self.blobs.clear()


class FloorError(Exception):
    """A RUN removed something of kiln's that it cannot hold or make again."""


def _elf_interpreter() -> str | None:
    """The dynamic loader this process was started with (the executor image's /kaniko/lib/ld-linux-*.so.2)."""
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as f:
            for line in f:
                path = line.split(maxsplit=5)[5].strip() if len(line.split(maxsplit=5)) == 6 else ""
                if "/ld-linux" in path or "/ld-musl" in path:
                    return path
    except OSError:
        pass
    return None


_current: Floor | None = None


def keep_tree(path: str, remake: Callable[[], None] | None = None) -> None:
    """`Floor.keep` of the current build; nothing when there is none (a build loop run on its own, tests)."""
    if _current is not None:
        _current.keep(path, remake)


def leave_out(group: str) -> None:
    """`Floor.leave_out` of the current build; nothing when there is none."""
    if _current is not None:
        _current.leave_out(group)


def configure(kiln_dir: str, work_dir: str, holders: list[Callable[[], None]] | None = None) -> Floor:
    """The build's floor (one per process); replaces an earlier build's. `holders` run before the first RUN."""
    global _current
    if _current is not None:
        _current.close()
    _current = Floor(os.path.abspath(kiln_dir), os.path.abspath(work_dir), list(holders or []))
    return _current


def current() -> Floor | None:
    return _current


def release() -> None:
    global _current
    if _current is not None:
        _current.close()
        _current = None
