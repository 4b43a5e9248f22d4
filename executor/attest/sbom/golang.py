"""Go binaries' embedded build information (what `go version -m BINARY` prints), read from the ELF file.

The Go linker writes a `.go.buildinfo` section (Go's debug/buildinfo): 16 bytes of magic
"\\xff Go buildinf:", then the pointer size and a flags byte. Since Go 1.18 (flags & 2) the Go version and the
module information follow at offset 32 as two varint-length-prefixed strings; before, at offset 16 two
pointers lead to Go string headers (pointer, length) that are found through the program headers. The
module information is framed by 16-byte sentinels and holds lines `path\\tMAIN`, `mod\\tPATH\\tVERSION\\tSUM`,
`dep\\tPATH\\tVERSION\\tSUM`, `=>\\tPATH\\tVERSION\\tSUM` (a replacement of the line before) and `build\\tK=V`.

Packages: the main module (owning the binary), each dependency and the standard library
(`pkg:golang/stdlib@1.22.1`, as syft names it), the main module depending on the others.
"""
from __future__ import annotations

import mmap
import os
import struct
from dataclasses import dataclass, field

from packageurl import PackageURL

from .model import Package

MAGIC = b"\xff Go buildinf:"
ELF = b"\x7fELF"
MAX_SCAN = 1 << 30


class BuildInfoError(ValueError):
    pass


@dataclass
class Module:
    """A Go module in a binary's build information: path, version, go.sum hash, and the module that replaced it
    (`=>`)."""
    path: str
    version: str
    sum: str = ""
    replaced_by: "Module | None" = None


@dataclass
class BuildInfo:
    """A Go binary's embedded build information (`.go.buildinfo`): Go version, main package path and module,
    dependencies, build settings."""
    go_version: str
    path: str = ""
    main: Module | None = None
    deps: list[Module] = field(default_factory=list)
    settings: dict[str, str] = field(default_factory=dict)


def _uvarint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while pos < len(data):
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            break
    raise BuildInfoError("bad varint in build info")


def parse_modinfo(text: str) -> tuple[str, Module | None, list[Module], dict[str, str]]:
    if len(text) >= 33 and text[-17] == "\n":      # the 16-byte sentinels around the module info
        text = text[16:-16]
    path, main, deps, settings = "", None, [], {}
    last: Module | None = None
    for line in text.splitlines():
        parts = line.split("\t")
        kind = parts[0]
        if kind == "path" and len(parts) >= 2:
            path = parts[1]
        elif kind in ("mod", "dep") and len(parts) >= 3:
            module = Module(parts[1], parts[2], parts[3] if len(parts) > 3 else "")
            if kind == "mod":
                main = module
            else:
                deps.append(module)
            last = module
        elif kind == "=>" and len(parts) >= 3 and last is not None:
            last.replaced_by = Module(parts[1], parts[2], parts[3] if len(parts) > 3 else "")
        elif kind == "build" and len(parts) >= 2:
            key, _, value = parts[1].partition("=")
            settings[key] = value
    return path, main, deps, settings


class _Elf:
    def __init__(self, data: mmap.mmap):
        self.data = data
        if data[:4] != ELF:
            raise BuildInfoError("not an ELF file")
        cls, enc = data[4], data[5]
        if cls not in (1, 2) or enc not in (1, 2):
            raise BuildInfoError("unknown ELF class or byte order")
        self.is64 = cls == 2
        self.end = "<" if enc == 1 else ">"
        if self.is64:
            (self.phoff, self.shoff) = struct.unpack_from(self.end + "QQ", data, 32)
            (self.phentsize, self.phnum, self.shentsize, self.shnum, self.shstrndx) = \
                struct.unpack_from(self.end + "HHHHH", data, 54)
        else:
            (self.phoff, self.shoff) = struct.unpack_from(self.end + "II", data, 28)
            (self.phentsize, self.phnum, self.shentsize, self.shnum, self.shstrndx) = \
                struct.unpack_from(self.end + "HHHHH", data, 42)

    def sections(self):
        """(name, offset, size, addr) of each section."""
        if not self.shoff or not self.shnum or self.shstrndx >= self.shnum:
            return
        raw = []
        for i in range(self.shnum):
            base = self.shoff + i * self.shentsize
            if base + self.shentsize > len(self.data):
                return
            if self.is64:
                name, _type, _flags, addr, offset, size = struct.unpack_from(self.end + "IIQQQQ", self.data, base)
            else:
                name, _type, _flags, addr, offset, size = struct.unpack_from(self.end + "IIIIII", self.data, base)
            raw.append((name, offset, size, addr))
        strtab_off, strtab_size = raw[self.shstrndx][1], raw[self.shstrndx][2]
        for name, offset, size, addr in raw:
            start = strtab_off + name
            stop = self.data.find(b"\0", start, strtab_off + strtab_size)
            yield self.data[start:stop].decode("latin-1", "replace"), offset, size, addr

    def read_at(self, vaddr: int, size: int) -> bytes:
        """`size` bytes at virtual address `vaddr` (through the PT_LOAD program headers)."""
        for i in range(self.phnum):
            base = self.phoff + i * self.phentsize
            if self.is64:
                ptype, _flags, offset, pvaddr, _paddr, filesz = struct.unpack_from(self.end + "IIQQQQ", self.data, base)
            else:
                ptype, offset, pvaddr, _paddr, filesz = struct.unpack_from(self.end + "IIIII", self.data, base)
            if ptype == 1 and pvaddr <= vaddr and vaddr + size <= pvaddr + filesz:
                start = offset + (vaddr - pvaddr)
                return self.data[start:start + size]
        raise BuildInfoError(f"address {vaddr:#x} is in no loaded segment")


def read_build_info(path: str) -> BuildInfo | None:
    """The build info of the Go binary at `path`; None when it is no Go binary (or no ELF file)."""
    try:
        with open(path, "rb") as f:
            if f.read(4) != ELF:
                return None
            size = os.fstat(f.fileno()).st_size
            if size > MAX_SCAN:
                return None
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
                return _parse(data)
    except (OSError, ValueError, IndexError, struct.error):    # truncated or hostile files are no Go binaries
        return None


def _parse(data: mmap.mmap) -> BuildInfo | None:
    elf = _Elf(data)
    start = -1
    for name, offset, size, _addr in elf.sections() or ():
        if name == ".go.buildinfo":
            start = offset
            break
    if start < 0 or data[start:start + 14] != MAGIC:
        start = data.find(MAGIC)         # section headers stripped: the magic is 16-byte aligned data
        while start >= 0 and start % 16:
            start = data.find(MAGIC, start + 1)
    if start < 0:
        return None
    header = data[start:start + 32]
    ptr_size, flags = header[14], header[15]
    if flags & 2:
        blob = data[start + 32:start + 32 + (1 << 20)]
        n, pos = _uvarint(blob, 0)
        version = blob[pos:pos + n].decode("utf-8", "replace")
        pos += n
        n, pos = _uvarint(blob, pos)
        modinfo = blob[pos:pos + n].decode("utf-8", "replace")
    else:
        if ptr_size not in (4, 8):
            raise BuildInfoError(f"pointer size {ptr_size}")
        end = ">" if flags & 1 else "<"
        fmt = end + ("Q" if ptr_size == 8 else "I")
        version_ptr = struct.unpack_from(fmt, header, 16)[0]
        modinfo_ptr = struct.unpack_from(fmt, header, 16 + ptr_size)[0]

        def go_string(ptr: int) -> str:
            hdr = elf.read_at(ptr, 2 * ptr_size)
            sptr, slen = struct.unpack_from(end + ("QQ" if ptr_size == 8 else "II"), hdr, 0)
            if slen > 1 << 20:
                raise BuildInfoError("string too long")
            return elf.read_at(sptr, slen).decode("utf-8", "replace") if slen else ""

        version, modinfo = go_string(version_ptr), go_string(modinfo_ptr)
    if not version.startswith("go"):
        return None
    path, main, deps, settings = parse_modinfo(modinfo)
    return BuildInfo(version, path, main, deps, settings)


def _golang_purl(module_path: str, version: str) -> str:
    namespace, _, name = module_path.strip("/").rpartition("/")
    if not name:
        namespace, name = "", module_path or "unknown"
    return PackageURL(type="golang", namespace=namespace or None, name=name,
                      version=version if version and version != "(devel)" else None).to_string()


def packages(info: BuildInfo, binary: str) -> list[Package]:
    """The binary's main module (owning the file), its dependencies and the standard library."""
    source = f"acquired package info from go module information: {binary}"
    found: list[Package] = []
    std_version = info.go_version.removeprefix("go").split(" ")[0]
    stdlib = Package(kind="golang", name="stdlib", version=info.go_version.split(" ")[0],
                     purl=PackageURL(type="golang", name="stdlib", version=std_version).to_string(),
                     license="BSD-3-Clause", source_info=source)
    dep_packages = []
    for dep in info.deps:
        module = dep.replaced_by or dep
        dep_packages.append(Package(kind="golang", name=module.path, version=module.version,
                                    purl=_golang_purl(module.path, module.version), source_info=source))
    main_path = info.main.path if info.main else info.path
    main_version = info.main.version if info.main else ""
    if main_path:
        found.append(Package(kind="golang", name=main_path, version=main_version,
                             purl=_golang_purl(main_path, main_version), files=[binary], source_info=source,
                             depends_on=[stdlib.purl] + [d.purl for d in dep_packages]))
    return found + dep_packages + [stdlib]
