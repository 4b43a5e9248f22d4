"""A streaming tar reader: ustar, GNU (long names, base-256 numbers) and PAX (local and global).

It reads from any object with `read(n)` and never holds more than one buffer (about 1 MiB) plus the
current member's metadata, so a layer of any size streams through. tarfile's stream mode does the
same job but costs ~25 us per member in Python; this reader parses the fixed header fields directly
and checks the header checksum with adler32 (C speed), which keeps extraction of 100k-member layers
within budget.
"""
from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import BinaryIO, Iterator, Mapping

from .errors import LayerFormatError

BLOCK = 512
_CHUNK = 1 << 20
_ZERO_BLOCK = bytes(BLOCK)
_STRIP = b"\0 "
# name, mode, uid, gid, size, mtime, chksum, typeflag, linkname, magic, (version, uname, gname skipped), devmajor,
# devminor, prefix: one C call splits a header into its fields, without copying the block first
_FIELDS = struct.Struct("100s8s8s8s12s12s8sc100s6s66x8s8s155s12x")
_adler32 = zlib.adler32
_NO_XATTRS: Mapping[str, bytes] = MappingProxyType({})   # shared by the members without any (read-only)

# typeflags
REG = b"0"
AREG = b"\0"
CONTIG = b"7"
LINK = b"1"
SYMLINK = b"2"
CHR = b"3"
BLK = b"4"
DIR = b"5"
FIFO = b"6"
PAX_LOCAL = b"x"
PAX_GLOBAL = b"g"
GNU_LONGNAME = b"L"
GNU_LONGLINK = b"K"

REGULAR_TYPES = (REG, AREG, CONTIG)
_PLAIN_TYPES = frozenset((REG, AREG, CONTIG, LINK, SYMLINK, CHR, BLK, DIR, FIFO))
_EXTENDED = frozenset((PAX_LOCAL, PAX_GLOBAL, GNU_LONGNAME, GNU_LONGLINK))


@dataclass(slots=True)
class Member:
    """One archive member after PAX / GNU extensions have been applied."""

    name: str
    type: bytes
    mode: int
    uid: int
    gid: int
    size: int
    mtime_ns: int
    linkname: str
    devmajor: int
    devminor: int
    xattrs: Mapping[str, bytes] = field(default_factory=dict)


def _num(field_bytes: bytes, what: str, name: str) -> int:
    if field_bytes and field_bytes[0] & 0x80:  # GNU base-256
        value = int.from_bytes(field_bytes[1:], "big")
        if field_bytes[0] & 0x40:  # negative
            value -= 1 << (8 * (len(field_bytes) - 1))
        return value
    text = field_bytes.split(b"\0", 1)[0].strip()
    if not text:
        return 0
    try:
        return int(text, 8)
    except ValueError:
        raise LayerFormatError(f"tar member {name!r}: field {what} is not an octal number: {text!r}") from None


def _decode(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def _parse_pax(data: bytes, where: str) -> dict[str, bytes]:
    records: dict[str, bytes] = {}
    pos = 0
    n = len(data)
    while pos < n:
        if data[pos] == 0:  # padding some writers leave
            break
        sp = data.find(b" ", pos)
        if sp < 0:
            raise LayerFormatError(f"{where}: malformed PAX record at byte {pos}")
        try:
            length = int(data[pos:sp])
        except ValueError:
            raise LayerFormatError(f"{where}: malformed PAX record length at byte {pos}") from None
        end = pos + length
        if length <= 0 or end > n or data[end - 1:end] != b"\n":
            raise LayerFormatError(f"{where}: PAX record at byte {pos} overruns its header")
        eq = data.find(b"=", sp + 1, end)
        if eq < 0:
            raise LayerFormatError(f"{where}: PAX record at byte {pos} has no '='")
        records[data[sp + 1:eq].decode("utf-8", "surrogateescape")] = data[eq + 1:end - 1]
        pos = end
    return records


def _pax_time_ns(value: bytes) -> int:
    text = value.decode("ascii")
    neg = text.startswith("-")
    if neg:
        text = text[1:]
    sec, _, frac = text.partition(".")
    ns = int(sec or "0") * 1_000_000_000 + int((frac + "000000000")[:9] or "0")
    return -ns if neg else ns


class TarReader:
    """Iterate members with `for m in reader`; read a regular member's data with `chunks()`
    before asking for the next member (unread data is skipped)."""

    def __init__(self, stream: BinaryIO, where: str) -> None:
        self._stream = stream
        self._where = where
        self._buf = b""
        self._pos = 0
        self._left = 0  # unread data bytes of the current member
        self._pad = 0  # padding after the current member's data
        self._global: dict[str, bytes] = {}
        self.offset = 0  # bytes consumed, for messages

    # -- buffer -------------------------------------------------------------------------------
    def _fill(self, need: int) -> bool:
        """Make at least `need` bytes available at _pos; False at a clean EOF with none buffered."""
        have = len(self._buf) - self._pos
        if have >= need:
            return True
        parts = [self._buf[self._pos:]] if have else []   # (one part alone is taken as it is, not copied)
        while have < need:
            chunk = self._stream.read(max(_CHUNK, need - have))
            if not chunk:
                break
            parts.append(chunk)
            have += len(chunk)
        self._buf = b"".join(parts)
        self._pos = 0
        return have >= need

    def _take(self, n: int, what: str) -> bytes:
        if not self._fill(n):
            raise LayerFormatError(f"{self._where}: archive truncated while reading {what} "
                                   f"at byte {self.offset}")
        out = self._buf[self._pos:self._pos + n]
        self._pos += n
        self.offset += n
        return out

    def _skip(self, n: int) -> None:
        while n:
            if not self._fill(1):
                raise LayerFormatError(f"{self._where}: archive truncated at byte {self.offset}")
            step = min(n, len(self._buf) - self._pos)
            self._pos += step
            self.offset += step
            n -= step

    # -- data ---------------------------------------------------------------------------------
    def chunks(self) -> Iterator[bytes]:
        """The current member's data, in pieces of at most ~1 MiB."""
        while self._left:
            if len(self._buf) - self._pos == 0 and not self._fill(1):
                raise LayerFormatError(f"{self._where}: archive truncated inside member data "
                                       f"at byte {self.offset}")
            step = min(self._left, len(self._buf) - self._pos)
            piece = self._buf[self._pos:self._pos + step]
            self._pos += step
            self.offset += step
            self._left -= step
            yield piece

    def data(self) -> memoryview | None:
        """The whole data of the current member when it is already buffered (small members), else
        None (use `chunks()`): a view of the buffer, not a copy."""
        n = self._left
        if self._pos + n > len(self._buf):
            return None
        out = memoryview(self._buf)[self._pos:self._pos + n]
        self._pos += n
        self.offset += n
        self._left = 0
        return out

    def read_all(self) -> bytes:
        return b"".join(self.chunks())

    def _finish_member(self) -> None:
        if self._left:
            self._skip(self._left)
            self._left = 0
        pad = self._pad
        if pad:
            if len(self._buf) - self._pos >= pad:   # the usual case: the padding is buffered
                self._pos += pad
                self.offset += pad
            else:
                self._skip(pad)
            self._pad = 0

    # -- headers ------------------------------------------------------------------------------
    def __iter__(self) -> Iterator[Member]:
        return self

    def __next__(self) -> Member:
        if self._left or self._pad:
            self._finish_member()
        local: dict[str, bytes] = {}
        long_name: bytes | None = None
        long_link: bytes | None = None
        while True:
            pos = self._pos
            if len(self._buf) - pos < BLOCK:
                if not self._fill(BLOCK):
                    if len(self._buf) - self._pos:
                        raise LayerFormatError(f"{self._where}: archive truncated inside a header "
                                               f"at byte {self.offset}")
                    raise StopIteration  # EOF without end-of-archive blocks: accepted, as GNU tar does
                pos = self._pos
            buf = self._buf
            fields = _FIELDS.unpack_from(buf, pos)
            start = self.offset
            if not fields[6].strip(_STRIP) and buf.startswith(_ZERO_BLOCK, pos):
                raise StopIteration
            self._pos = pos + BLOCK
            self.offset = start + BLOCK
            # the header's byte sum with the checksum field counted as eight spaces (see _check_sum)
            view = memoryview(buf)
            try:
                if int(fields[6].strip(_STRIP), 8) != ((_adler32(view[pos:pos + 148]) & 0xFFFF)
                                                       + (_adler32(view[pos + 156:pos + 256]) & 0xFFFF)
                                                       + (_adler32(view[pos + 256:pos + BLOCK]) & 0xFFFF) + 253):
                    self._check_sum(buf, pos, fields[6], start)
            except ValueError:
                self._check_sum(buf, pos, fields[6], start)
            typ = fields[7]
            raw_name = fields[0].split(b"\0", 1)[0]
            try:
                size = int(fields[4].strip(_STRIP), 8)
            except ValueError:
                size = _num(fields[4], "size", _decode(raw_name))
            if typ in _EXTENDED:
                data = self._take(size, "an extended header")
                pad = -size % BLOCK
                if pad:
                    self._skip(pad)
                if typ == PAX_LOCAL:
                    local.update(_parse_pax(data, f"{self._where}: PAX header at byte {start}"))
                elif typ == PAX_GLOBAL:
                    self._global.update(_parse_pax(data, f"{self._where}: global PAX header at byte {start}"))
                elif typ == GNU_LONGNAME:
                    long_name = data.split(b"\0", 1)[0]
                else:
                    long_link = data.split(b"\0", 1)[0]
                continue
            return self._member(fields, typ, raw_name, size, local, long_name, long_link, start)

    def _check_sum(self, buf: bytes, pos: int, field_bytes: bytes, start: int) -> None:
        stored = field_bytes.split(b"\0", 1)[0].strip()
        try:
            want = int(stored, 8)
        except ValueError:
            raise LayerFormatError(f"{self._where}: not a tar header at byte {start} "
                                   f"(bad checksum field {stored!r}); is the blob a tar archive?") from None
        # the sum of the header's bytes with the checksum field as eight spaces (8 * 32); adler32's low half
        # is (1 + byte sum) mod 65521, exact for at most 257 bytes (257 * 255 < 65521)
        view = memoryview(buf)
        unsigned = ((_adler32(view[pos:pos + 148]) & 0xFFFF) + (_adler32(view[pos + 156:pos + 256]) & 0xFFFF)
                    + (_adler32(view[pos + 256:pos + BLOCK]) & 0xFFFF) - 3 + 256)
        if want == unsigned:
            return
        blanked = buf[pos:pos + 148] + b"        " + buf[pos + 156:pos + BLOCK]
        signed = unsigned - 256 * sum(1 for b in blanked if b > 127)  # some old writers
        if want != signed:
            raise LayerFormatError(f"{self._where}: tar header checksum mismatch at byte {start}")

    def _member(self, fields: tuple, typ: bytes, raw_name: bytes, size: int, local: dict[str, bytes],
                long_name: bytes | None, long_link: bytes | None, start: int) -> Member:
        if long_name is not None:
            raw_name = long_name
        elif fields[9] == b"ustar\0":  # POSIX ustar: 155-byte prefix (GNU puts times there)
            prefix = fields[12].split(b"\0", 1)[0]
            if prefix:
                raw_name = prefix + b"/" + raw_name
        raw_link = long_link if long_link is not None else fields[8].split(b"\0", 1)[0]
        name = raw_name.decode("utf-8", "surrogateescape")
        try:
            mode = int(fields[1].strip(_STRIP), 8)
            uid = int(fields[2].strip(_STRIP), 8)
            gid = int(fields[3].strip(_STRIP), 8)
            mtime_ns = int(fields[5].strip(_STRIP), 8) * 1_000_000_000
        except ValueError:  # base-256, empty or garbage fields: the careful path
            mode = _num(fields[1], "mode", name)
            uid = _num(fields[2], "uid", name)
            gid = _num(fields[3], "gid", name)
            mtime_ns = _num(fields[5], "mtime", name) * 1_000_000_000
        devmajor = devminor = 0
        if typ in (CHR, BLK):
            devmajor = _num(fields[10], "devmajor", name)
            devminor = _num(fields[11], "devminor", name)
        linkname = raw_link.decode("utf-8", "surrogateescape") if raw_link else ""
        xattrs: Mapping[str, bytes] = _NO_XATTRS
        pax = {**self._global, **local} if self._global else local
        if pax:
            found: dict[str, bytes] = {}
            for key, value in pax.items():
                if key == "path":
                    name = value.decode("utf-8", "surrogateescape")
                elif key == "linkpath":
                    linkname = value.decode("utf-8", "surrogateescape")
                elif key == "size":
                    size = int(value)
                elif key == "uid":
                    uid = int(value)
                elif key == "gid":
                    gid = int(value)
                elif key == "mtime":
                    mtime_ns = _pax_time_ns(value)
                elif key.startswith("SCHILY.xattr."):
                    found[key[13:]] = value
                elif key.startswith("GNU.sparse."):
                    raise LayerFormatError(f"{self._where}: member {name!r} at byte {start} is a "
                                           "PAX sparse file, which layers must not contain")
            if found:
                xattrs = found
        if typ not in _PLAIN_TYPES:
            if typ == b"S":
                raise LayerFormatError(f"{self._where}: member {name!r} at byte {start} is a GNU "
                                       "sparse file, which layers must not contain")
            raise LayerFormatError(f"{self._where}: member {name!r} at byte {start} has "
                                   f"unsupported tar type {typ!r}")
        if typ in REGULAR_TYPES:
            self._left = size
            self._pad = -size % BLOCK
        else:
            # header-only types carry no data whatever their size field says (as Go's archive/tar
            # and Python's tarfile read them)
            self._left = 0
            self._pad = 0
        return Member(name, typ, mode & 0o7777, uid, gid, size, mtime_ns, linkname, devmajor, devminor, xattrs)
