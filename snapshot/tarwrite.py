"""PAX tar headers, written directly (tarfile's TarInfo.tobuf costs ~15 us per member).

Numeric uid/gid only (uname/gname empty), whole-second mtimes in the ustar field, no atime/ctime.
PAX records are added only when needed: names or link targets over 100 bytes, numbers too large
for their octal fields, negative mtimes, and xattrs as `SCHILY.xattr.<name>`.
"""
from __future__ import annotations

import zlib

BLOCK = 512
END_OF_ARCHIVE = bytes(2 * BLOCK)
_MAX7 = 0o7777777
_MAX11 = 0o77777777777
_USTAR_TAIL_PAD = bytes(12)
_MAGIC = b"ustar\x0000"
_EMPTY_OWNER_NAMES = bytes(64)
_EMPTY_PREFIX = bytes(155)
_NO_DEV = b"0000000\x000000000\x00"

REG = b"0"
LINK = b"1"
SYMLINK = b"2"
CHR = b"3"
BLK = b"4"
DIR = b"5"
FIFO = b"6"


def _checksum(hdr: bytes) -> int:
    # adler32's low half is (1 + byte sum) mod 65521, exact for 256 bytes (sum <= 65280)
    return (zlib.adler32(hdr[:256]) & 0xFFFF) + (zlib.adler32(hdr[256:]) & 0xFFFF) - 2


def _pax_record(key: bytes, value: bytes) -> bytes:
    body = b" " + key + b"=" + value + b"\n"
    n = len(body) + 1
    while len(str(n)) + len(body) != n:
        n = len(str(n)) + len(body)
    return str(n).encode() + body


def _raw_header(name: bytes, mode: int, uid: int, gid: int, size: int, mtime: int, typ: bytes,
                linkname: bytes, dev: bytes) -> bytes:
    hdr = b"".join((
        name.ljust(100, b"\0"),
        b"%07o\0" % mode,
        b"%07o\0" % uid,
        b"%07o\0" % gid,
        b"%011o\0" % size,
        b"%011o\0" % mtime,
        b"        ",
        typ,
        linkname.ljust(100, b"\0"),
        _MAGIC,
        _EMPTY_OWNER_NAMES,
        dev,
        _EMPTY_PREFIX,
        _USTAR_TAIL_PAD,
    ))
    return b"%s%06o\0 %s" % (hdr[:148], _checksum(hdr), hdr[156:])


def header(name: bytes, mode: int, uid: int, gid: int, size: int, mtime: int, typ: bytes,
           linkname: bytes = b"", devmajor: int = 0, devminor: int = 0,
           xattrs: dict[str, bytes] | None = None) -> bytes:
    """One member's header block(s): a PAX extended header first when needed. `name` is the
    archive name in bytes (directories end with '/')."""
    pax: list[bytes] = []
    if len(name) > 100:
        pax.append(_pax_record(b"path", name))
        short = name.rstrip(b"/").rsplit(b"/", 1)[-1][:99] + (b"/" if name.endswith(b"/") else b"")
    else:
        short = name
    if len(linkname) > 100:
        pax.append(_pax_record(b"linkpath", linkname))
        linkname = linkname[:100]
    if uid > _MAX7 or uid < 0:
        pax.append(_pax_record(b"uid", str(uid).encode()))
        uid = 0
    if gid > _MAX7 or gid < 0:
        pax.append(_pax_record(b"gid", str(gid).encode()))
        gid = 0
    if size > _MAX11:
        pax.append(_pax_record(b"size", str(size).encode()))
        size_field = 0
    else:
        size_field = size
    if mtime < 0 or mtime > _MAX11:
        pax.append(_pax_record(b"mtime", str(mtime).encode()))
        mtime_field = 0
    else:
        mtime_field = mtime
    if xattrs:
        for key in sorted(xattrs):
            pax.append(_pax_record(b"SCHILY.xattr." + key.encode("utf-8", "surrogateescape"), xattrs[key]))
    if devmajor or devminor:
        dev = b"%07o\0%07o\0" % (devmajor, devminor)
    else:
        dev = _NO_DEV
    main = _raw_header(short, mode, uid, gid, size_field, mtime_field, typ, linkname, dev)
    if not pax:
        return main
    data = b"".join(pax)
    base = name.rstrip(b"/").rsplit(b"/", 1)[-1]
    pax_name = (b"PaxHeaders/" + base)[:100]
    ext = _raw_header(pax_name, 0o644, 0, 0, len(data), mtime_field, b"x", b"", _NO_DEV)
    return ext + data + bytes(-len(data) % BLOCK) + main
