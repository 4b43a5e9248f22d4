"""``--chmod`` for COPY/ADD, as BuildKit applies it.

BuildKit (dockerfile2llb + fsutil copy) accepts an octal number up to 07777, or (Dockerfile 1.14+) a
symbolic mode in chmod(1)/BSD ``setmode`` syntax with a zero umask. The rule per copied entry:

* octal: the entry's permission bits AND its setuid/setgid/sticky bits become exactly the given ones;
* symbolic: the clauses are applied to the entry's own mode (``X`` with ``+``/``=`` looks at the entry's
  original mode: a directory or anything already executable by someone; ``-X`` is ``-x``);
* both apply to files and directories (every level), never to symlinks;
* directories BuildKit creates itself (missing parents of the destination, and the destination of a
  directory copy) get the octal mode's permission bits, or 0755 when no octal mode is given: fsutil's
  copy/copy.go (Copy and prepareTargetDir call MkdirAll with ci.Mode; 183e7fb, tonistiigi/fsutil#228,
  BuildKit v0.21.0) whatever the process umask (copy/mkdir.go, c3a05e8, BuildKit v0.31.0). Older docker
  differs: 26.1.5 makes them 0755, Debian's 28.5.2 (fsutil without c3a05e8) masks the mode with dockerd's
  umask 022 (parity case copy_chmod_created_dirs).
"""

from __future__ import annotations

import stat
from dataclasses import dataclass

_SUID, _SGID, _STICKY = 0o4000, 0o2000, 0o1000
_STANDARD = _SUID | _SGID | 0o777  # what "a" and an empty "who" with "=" cover (not the sticky bit)
_ALL = 0xFFFF


class ChmodError(ValueError):
    """A --chmod value BuildKit would refuse."""


@dataclass(frozen=True)
class _Op:
    """One step of a parsed symbolic --chmod (BSD setmode's ops): add (`+`), remove (`-`) or, for a directory or
    executable, add (`X`) the bits in `bits`; or copy one class's bits to others (`g=u`)."""
    kind: str          # "+", "-", "X", or "copy"
    bits: int
    source: str = ""   # for "copy": "u", "g" or "o"
    targets: str = ""  # for "copy": subset of "ugo"
    set_: bool = False
    clear: bool = False


@dataclass(frozen=True)
class ChmodSpec:
    """A parsed --chmod value; ``octal`` is set for numeric values."""

    text: str
    octal: int | None
    ops: tuple[_Op, ...] = ()

    def apply(self, mode: int) -> int:
        """The new permission+special bits (``& 0o7777``) for an entry whose ``st_mode`` is ``mode``."""
        if self.octal is not None:
            return self.octal
        return _apply_ops(self.ops, mode)

    def created_dir_mode(self) -> int:
        """Mode of directories the copy creates itself (BuildKit: octal perm bits, else 0755)."""
        return self.octal & 0o777 if self.octal is not None else 0o755


def parse_chmod(value: int | str) -> ChmodSpec:
    """Parse a --chmod value: an int (already octal-decoded) or the flag's text."""
    if isinstance(value, int):
        if not 0 <= value <= 0o7777:
            raise ChmodError(f"invalid chmod parameter: {oct(value)}: it should be between 0 and 07777")
        return ChmodSpec(text=format(value, "o"), octal=value)
    text = value.strip()
    octal_error = ChmodError(
        f"invalid chmod parameter: '{value}'. it should be octal string and between 0 and 07777")
    if text and text[0].isdigit():
        try:
            number = int(text, 8)
        except ValueError:
            raise octal_error from None
        if number > 0o7777:
            raise octal_error
        return ChmodSpec(text=text, octal=number)
    return ChmodSpec(text=text, octal=None, ops=tuple(_parse_symbolic(text)))


def _add(ops: list[_Op], op: str, who: int, arg: int) -> None:
    if op == "=":
        ops.append(_Op("-", who if who else _STANDARD))
        op = "+"
    ops.append(_Op(op, (who & arg) if who else arg))


def _add_copy(ops: list[_Op], source: str, who: int, op: str) -> None:
    if who:
        targets = "".join(t for t, bit in (("u", 0o400), ("g", 0o040), ("o", 0o004)) if who & bit)
    else:
        targets = "ugo"
    ops.append(_Op("copy", _ALL, source=source, targets=targets,
                   set_=op in "+=", clear=op in "-="))


def _parse_symbolic(s: str) -> list[_Op]:
    syntax = ChmodError(f"invalid chmod parameter: '{s}': not an octal mode nor a symbolic mode "
                        "such as u+x,go=rX")
    if not s:
        raise syntax
    ops: list[_Op] = []
    i = 0
    while True:
        who = 0
        while True:
            if i >= len(s):
                raise syntax
            c = s[i]
            if c == "a":
                who |= _STANDARD
            elif c == "u":
                who |= _SUID | 0o700
            elif c == "g":
                who |= _SGID | 0o070
            elif c == "o":
                who |= 0o007
            else:
                break
            i += 1
        while True:  # one operator clause; "u+r-w" chains operators with the same who
            if i >= len(s):
                raise syntax
            op = s[i]
            i += 1
            if op not in "+-=":
                raise syntax
            equal_done = False
            who &= ~_STICKY
            perm = perm_x = 0
            while True:
                b = s[i] if i < len(s) else ""
                if b == "r":
                    perm |= 0o444
                elif b == "w":
                    perm |= 0o222
                elif b == "x":
                    perm |= 0o111
                elif b == "s":
                    if who == 0 or who & ~0o007:
                        perm |= _SUID | _SGID
                elif b == "t":
                    if who == 0 or who & ~0o007:
                        who |= _STICKY
                        perm |= _STICKY
                elif b == "X":  # conditional with + and =, plain x with -
                    if op != "-":
                        perm_x = 0o111
                    else:
                        perm |= 0o111
                elif b in ("u", "g", "o"):
                    if perm:
                        _add(ops, op, who, perm)
                        perm = 0
                    if op == "=":
                        equal_done = True
                    if perm_x:
                        _add(ops, "X", who, perm_x)
                        perm_x = 0
                    _add_copy(ops, b, who, op)
                else:
                    if perm or (op == "=" and not equal_done):
                        equal_done = True
                        _add(ops, op, who, perm)
                    if perm_x:
                        _add(ops, "X", who, perm_x)
                    break
                i += 1
            if i >= len(s):
                return ops
            if s[i] == ",":
                i += 1
                break


def _apply_ops(ops: tuple[_Op, ...], mode: int) -> int:
    original = mode & 0o7777
    new = original
    is_dir = stat.S_ISDIR(mode)
    shifts = {"u": 6, "g": 3, "o": 0}
    for op in ops:
        if op.kind == "+":
            new |= op.bits
        elif op.kind == "-":
            new &= ~op.bits
        elif op.kind == "X":
            if original & 0o111 or is_dir:
                new |= op.bits
        else:
            value = (new >> shifts[op.source]) & 0o7
            clear_value = 0o7 if (op.set_ and op.clear) else value
            for target in op.targets:
                shift = shifts[target]
                if op.clear:
                    new &= ~((clear_value << shift) & op.bits)
                if op.set_:
                    new |= (value << shift) & op.bits
    return new & 0o7777
