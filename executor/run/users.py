"""Resolve a Dockerfile ``USER`` value through the image's own ``/etc/passwd`` and ``/etc/group``.

The rules follow what runc and moby do for a container's user (behaviour, not code):

* ``USER`` is ``user`` or ``user:group``; either part may be a name or a number.
* A numeric part is always an id, never a name (a user called ``1000`` cannot be selected by name).
* The user part is looked up in the root's passwd file: the first matching entry gives uid, primary
  gid and HOME. A numeric uid with no entry is still valid: gid stays 0 and HOME is ``/``.
  A name with no entry is an error ("unable to find user NAME: no matching entries in passwd file").
* An explicit group part replaces the primary gid (first matching group entry, or the number itself);
  a group name with no entry is an error. With an explicit group there are no supplementary groups.
* Without a group part, the supplementary groups are every group whose member list names the
  matched user (only when the user was found in passwd).
* An empty ``USER`` means root (uid 0, gid 0), with root's supplementary groups and home if listed.
* ``user:group`` where both parts are numbers or ``root`` is taken as is, without reading the files
  (BuildKit's fast path, executor/oci/user.go ParseUIDGID: ``USER root:root`` works without /etc/passwd);
  HOME still comes from the passwd entry of that uid, as runc sets it.
* The primary gid is always among the supplementary groups, first unless already listed (BuildKit's
  ensureAdditionalGids, executor/oci/user.go, moby/buildkit#3651, v0.12.0; measured with docker 26.1.5 and
  28.5.2: ``USER app`` gives ``groups=50(staff),1000(app)``).

File operations (WORKDIR's directories, COPY/ADD ``--chown``) resolve owners by a different, lenient
rule: ``file_owner`` below (BuildKit's solver/llbsolver/ops/user_linux.go readUser).

The files are always read under the image root; the host's user database is never consulted.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from executor.run.errors import UserError
from snapshot.paths import resolve_in_root

log = logging.getLogger(__name__)

MAX_ID = 2**31 - 1
DEFAULT_HOME = "/"


@dataclass(frozen=True)
class PasswdEntry:
    """One line of the root's /etc/passwd, the fields a RUN's USER is resolved with."""
    name: str
    uid: int
    gid: int
    home: str
    shell: str


@dataclass(frozen=True)
class GroupEntry:
    """One line of the root's /etc/group: a USER without a group part gets every group listing its name as
    supplementary."""
    name: str
    gid: int
    members: tuple[str, ...]


@dataclass(frozen=True)
class ExecUser:
    """Credentials a RUN command executes with."""

    uid: int
    gid: int
    groups: tuple[int, ...] = field(default_factory=tuple)  # supplementary gids (setgroups)
    home: str = DEFAULT_HOME
    name: str = ""  # the passwd name when the user was found there


def _parse_int(text: str) -> int | None:
    text = text.strip()
    if not text.isdigit():
        return None
    return int(text)


def _parse_id(part: str, what: str, spec: str) -> int | None:
    """A numeric USER part as an id, None when the part is a name; range-checked as runc does."""
    if part.isdigit() or (part.startswith("-") and part[1:].isdigit()):
        value = int(part)
        if value < 0 or value > MAX_ID:
            raise UserError(f"invalid USER {spec!r}: {what} {part} is out of range 0-{MAX_ID}")
        return value
    return None


def parse_passwd(text: str) -> list[PasswdEntry]:
    """Entries of a passwd file; blank, comment and malformed lines are skipped."""
    entries = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split(":")
        if len(fields) < 3 or not fields[0]:
            continue
        fields += [""] * (7 - len(fields))
        uid = _parse_int(fields[2])
        gid = _parse_int(fields[3])
        if uid is None:
            continue
        entries.append(PasswdEntry(fields[0], uid, gid if gid is not None else 0, fields[5], fields[6]))
    return entries


def parse_group(text: str) -> list[GroupEntry]:
    """Entries of a group file; blank, comment and malformed lines are skipped."""
    entries = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split(":")
        if len(fields) < 3 or not fields[0]:
            continue
        gid = _parse_int(fields[2])
        if gid is None:
            continue
        members = tuple(m.strip() for m in fields[3].split(",") if m.strip()) if len(fields) > 3 else ()
        entries.append(GroupEntry(fields[0], gid, members))
    return entries


def read_in_root(root: str, path: str) -> str | None:
    """Text of a file (e.g. /etc/passwd) inside root, following symlinks without leaving the root;
    None when it does not exist."""
    real = resolve_in_root(root, path)
    try:
        with open(real, "rb") as f:
            return f.read().decode("utf-8", errors="replace")
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return None


_read_in_root = read_in_root  # the name executor.commands.copying.chown imported first


def _llb_id(part: str) -> int | None:
    """BuildKit's parseUID (client/llb and executor/oci): ``root`` is 0, digits are an id, else None."""
    if part == "root":
        return 0
    if part.isdigit() and int(part) <= 0xFFFFFFFF:
        return int(part)
    return None


def _with_primary(user: ExecUser) -> ExecUser:
    """The primary gid added to the supplementary groups (first) unless already there."""
    if user.gid in user.groups:
        return user
    return ExecUser(user.uid, user.gid, (user.gid, *user.groups), user.home, user.name)


def resolve_user(spec: str, passwd: list[PasswdEntry] | None, group: list[GroupEntry] | None) -> ExecUser:
    """Resolve a USER value against parsed passwd/group entries (None: the file does not exist)."""
    return _with_primary(_resolve(spec, passwd, group))


def _resolve(spec: str, passwd: list[PasswdEntry] | None, group: list[GroupEntry] | None) -> ExecUser:
    user_part, _, group_part = spec.partition(":")
    fast_uid, fast_gid = _llb_id(user_part), _llb_id(group_part)
    if ":" in spec and fast_uid is not None and fast_gid is not None:
        for value, what in ((fast_uid, "uid"), (fast_gid, "gid")):
            if value > MAX_ID:
                raise UserError(f"invalid USER {spec!r}: {what} {value} is out of range 0-{MAX_ID}")
        entry = next((u for u in passwd or [] if u.uid == fast_uid), None)
        return ExecUser(fast_uid, fast_gid, (), (entry.home or DEFAULT_HOME) if entry else DEFAULT_HOME,
                        entry.name if entry else "")
    has_group = ":" in spec and group_part != ""
    uid_arg = _parse_id(user_part, "uid", spec) if user_part else None
    gid_arg = _parse_id(group_part, "gid", spec) if has_group else None

    uid, gid, home, matched = 0, 0, DEFAULT_HOME, ""
    users = passwd or []
    if not user_part:
        found = [u for u in users if u.uid == 0]
    elif uid_arg is not None:
        found = [u for u in users if u.uid == uid_arg]
    else:
        found = [u for u in users if u.name == user_part]
    if found:
        entry = found[0]
        uid, gid, matched = entry.uid, entry.gid, entry.name
        home = entry.home or DEFAULT_HOME
    elif user_part:
        if uid_arg is None:
            raise UserError(f"unable to find user {user_part}: no matching entries in passwd file")
        uid = uid_arg

    groups: tuple[int, ...] = ()
    all_groups = group or []
    if has_group:
        if gid_arg is not None:
            match = [g for g in all_groups if g.gid == gid_arg]
        else:
            match = [g for g in all_groups if g.name == group_part]
        if match:
            gid = match[0].gid
        elif gid_arg is not None:
            gid = gid_arg
        else:
            raise UserError(f"unable to find group {group_part}: no matching entries in group file")
    elif matched:
        seen: list[int] = []
        for g in all_groups:
            if matched in g.members and g.gid not in seen:
                seen.append(g.gid)
        groups = tuple(seen)
    return ExecUser(uid=uid, gid=gid, groups=groups, home=home, name=matched)


def lookup_user(root: str, spec: str) -> ExecUser:
    """Resolve a raw Dockerfile USER value through ``root``'s /etc/passwd and /etc/group."""
    spec = spec.strip()
    passwd_text = read_in_root(root, "/etc/passwd")
    group_text = read_in_root(root, "/etc/group")
    passwd = parse_passwd(passwd_text) if passwd_text is not None else None
    group = parse_group(group_text) if group_text is not None else None
    user = resolve_user(spec, passwd, group)
    log.debug("USER %r in %s resolved to %s", spec, root, user)
    return user


def resolve_file_owner(spec: str, passwd: list[PasswdEntry] | None, group: list[GroupEntry] | None,
                       what: str = "owner") -> tuple[int, int]:
    """uid, gid a file operation gives for ``user[:group]`` (COPY/ADD ``--chown``, WORKDIR under USER).

    BuildKit's rule (client/llb/fileop.go WithUser + solver/llbsolver/ops/user_linux.go readUser), which
    never fails: a user part that is ``root`` or a number N gives N:N; a name gives its first passwd
    entry's uid:gid, or 0:0 when there is none (or no /etc/passwd at all); an empty user part is 0:0.
    A group part, when the ``:`` is there, replaces the gid: ``root``/a number as is, a name by its first
    group entry (the gid stays when there is none), an empty group part is gid 0 (``--chown=app:`` is
    1000:0). Measured with docker 26.1.5 and 28.5.2 (parity cases user_root_without_passwd,
    chown_resolution). A name the image does not know is logged as a warning.
    """
    user_part, colon, group_part = spec.partition(":")
    uid = gid = 0
    number = _llb_id(user_part)
    if number is not None:
        uid = gid = number
    elif user_part:
        entry = next((u for u in passwd or [] if u.name == user_part), None)
        if entry is not None:
            uid, gid = entry.uid, entry.gid
        else:
            log.warning("%s %s: no user %r in the image's /etc/passwd: uid 0 and gid 0, as docker build",
                        what, spec, user_part)
    if colon:
        number = _llb_id(group_part)
        if number is not None:
            gid = number
        elif not group_part:
            gid = 0
        else:
            match = next((g for g in group or [] if g.name == group_part), None)
            if match is not None:
                gid = match.gid
            else:
                log.warning("%s %s: no group %r in the image's /etc/group: gid %d kept, as docker build",
                            what, spec, group_part, gid)
    return uid, gid


def file_owner(root: str, spec: str, what: str = "owner") -> tuple[int, int]:
    """``resolve_file_owner`` with the passwd and group files of ``root``."""
    passwd_text = read_in_root(root, "/etc/passwd")
    group_text = read_in_root(root, "/etc/group")
    return resolve_file_owner(spec.strip(), parse_passwd(passwd_text) if passwd_text is not None else None,
                              parse_group(group_text) if group_text is not None else None, what)
