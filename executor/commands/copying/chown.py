"""`--chown=user[:group]` of COPY and ADD, resolved as BuildKit does (executor.run.users.file_owner).

A user that is `root` or a number N gives N:N; a name gives its passwd entry's uid and primary gid, or
0:0 when the image does not know it (BuildKit does not fail: it logs a warning here); a group, by name
(the image's /etc/group) or number, replaces the gid, and `user:` with an empty group means gid 0.
"""
from __future__ import annotations

from executor.run.users import file_owner


class ChownError(ValueError):
    pass


def resolve_chown(root: str, spec: str) -> tuple[int, int]:
    if not spec.partition(":")[0] and not spec.partition(":")[2]:
        raise ChownError(f"--chown={spec}: no user given")
    return file_owner(root, spec, what="--chown")
