"""`--chown=user[:group]` of COPY and ADD, resolved as BuildKit does.

A user name takes its uid and primary gid from the image's own /etc/passwd; a numeric user takes its number
as gid too; a group, by name (the image's /etc/group) or number, replaces the gid.
"""
from __future__ import annotations

from executor.run.users import _read_in_root, parse_group, parse_passwd


class ChownError(ValueError):
    pass


def resolve_chown(root: str, spec: str) -> tuple[int, int]:
    user, _, group = spec.partition(":")
    if not user:
        if not group:
            raise ChownError(f"--chown={spec}: no user given")
        uid = gid = 0       # BuildKit: `--chown=:group` is root with that group
    elif user.isdigit():
        uid = gid = int(user)
    else:
        entries = [e for e in parse_passwd(_read_in_root(root, "/etc/passwd") or "") if e.name == user]
        if not entries:
            raise ChownError(f"--chown={spec}: unable to find user {user}: no matching entries in passwd file")
        uid, gid = entries[0].uid, entries[0].gid
    if group:
        if group.isdigit():
            gid = int(group)
        else:
            groups = [g for g in parse_group(_read_in_root(root, "/etc/group") or "") if g.name == group]
            if not groups:
                raise ChownError(f"--chown={spec}: unable to find group {group}: no matching entries in group file")
            gid = groups[0].gid
    return uid, gid
