"""Whether this kernel can run another architecture's binaries: RUN for a foreign platform needs a binfmt_misc
handler (QEMU user emulation), checked before anything is pulled.

The kernel hands an ELF file to a registered interpreter when the file's first bytes, masked, equal the
entry's magic (Documentation/admin-guide/binfmt-misc.rst). kiln builds the ELF header a binary of the target
platform starts with (class, byte order, e_type EXEC, e_machine) and looks for an enabled entry that matches
it. The entry needs the F flag ("fix binary": the interpreter is opened when it is registered): a RUN executes
in the build's root (a chroot when --root is not /), where the interpreter's path does not exist.
`tonistiigi/binfmt --install` and Debian's qemu-user-static (update-binfmts) both register with F.

A machine runs some platforms natively: an x86-64 kernel runs 386 binaries, and kiln assumes an arm64 kernel
runs 32-bit arm ones (most arm64 servers do; a kernel without AArch32 support reports it when the RUN starts).
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass

log = logging.getLogger(__name__)

BINFMT_DIR = "/proc/sys/fs/binfmt_misc"

#: architecture -> (ELF class: 1 = 32-bit, 2 = 64-bit; byte order: 1 = little, 2 = big; e_machine)
ELF_MACHINES: dict[str, tuple[int, int, int]] = {
    "amd64": (2, 1, 0x3E), "386": (1, 1, 0x03), "arm64": (2, 1, 0xB7), "arm": (1, 1, 0x28),
    "ppc64le": (2, 1, 0x15), "ppc64": (2, 2, 0x15), "s390x": (2, 2, 0x16), "riscv64": (2, 1, 0xF3),
    "mips64le": (2, 1, 0x08), "mips64": (2, 2, 0x08), "mipsle": (1, 1, 0x08), "mips": (1, 2, 0x08),
    "loong64": (2, 1, 0x102),
}

#: host architecture -> architectures its kernel runs without emulation
NATIVE: dict[str, set[str]] = {"amd64": {"amd64", "386"}, "arm64": {"arm64", "arm"}}

#: QEMU's name for each architecture (qemu-<name>, and tonistiigi/binfmt's --install names)
QEMU_NAMES: dict[str, str] = {"amd64": "x86_64", "386": "i386", "arm64": "aarch64", "arm": "arm",
                              "ppc64le": "ppc64le", "ppc64": "ppc64", "s390x": "s390x", "riscv64": "riscv64",
                              "mips64le": "mips64el", "mips64": "mips64", "mipsle": "mipsel", "mips": "mips",
                              "loong64": "loongarch64"}


class EmulationError(Exception):
    """A platform's RUN cannot execute here; the message says which platform and how to register a handler."""


@dataclass(frozen=True)
class Handler:
    """One binfmt_misc entry as /proc/sys/fs/binfmt_misc lists it: interpreter, flags, and the magic and mask a
    binary's header must match."""
    name: str
    interpreter: str
    flags: str
    offset: int
    magic: bytes
    mask: bytes
    enabled: bool

    def matches(self, header: bytes) -> bool:
        if not self.enabled or self.offset + len(self.magic) > len(header):
            return False
        part = header[self.offset:self.offset + len(self.magic)]
        mask = self.mask or b"\xff" * len(self.magic)
        return all((a & m) == (b & m) for a, b, m in zip(part, self.magic, mask))


def elf_header(arch: str) -> bytes:
    """The first 20 bytes of an executable ELF file for `arch` (e_ident, e_type = EXEC, e_machine)."""
    elf_class, order, machine = ELF_MACHINES[arch]
    ident = b"\x7fELF" + bytes([elf_class, order, 1, 0]) + b"\0" * 8
    byteorder = "little" if order == 1 else "big"
    return ident + (2).to_bytes(2, byteorder) + machine.to_bytes(2, byteorder)


def read_handlers(directory: str = BINFMT_DIR) -> list[Handler] | None:
    """The registered handlers, or None when binfmt_misc is not mounted (or not readable) at `directory`."""
    try:
        names = os.listdir(directory)
    except OSError:
        return None
    if "status" not in names:
        return None
    try:
        with open(os.path.join(directory, "status")) as f:
            if f.read().strip() != "enabled":
                return []
    except OSError:
        return None
    handlers = []
    for name in sorted(names):
        if name in ("status", "register"):
            continue
        try:
            with open(os.path.join(directory, name)) as f:
                handlers.append(_parse(name, f.read()))
        except (OSError, ValueError) as e:
            log.debug("binfmt_misc entry %s unreadable: %s", name, e)
    return handlers


def _parse(name: str, text: str) -> Handler:
    fields: dict[str, str] = {}
    enabled = False
    for line in text.splitlines():
        line = line.strip()
        if line == "enabled":
            enabled = True
        elif line.startswith("flags:"):
            fields["flags"] = line[len("flags:"):].strip()
        elif " " in line:
            key, _, value = line.partition(" ")
            fields[key] = value.strip()
    return Handler(name, fields.get("interpreter", ""), fields.get("flags", ""), int(fields.get("offset", "0")),
                   bytes.fromhex(fields.get("magic", "")), bytes.fromhex(fields.get("mask", "")), enabled)


def _os_arch(platform: str) -> tuple[str, str]:
    """("linux", "arm64") of a normalised platform text such as linux/arm64/v8."""
    parts = platform.split("/")
    return parts[0], parts[1] if len(parts) > 1 else ""


def runs_natively(platform: str, host: str) -> bool:
    (os_, arch), (host_os, host_arch) = _os_arch(platform), _os_arch(host)
    return os_ == host_os and arch in NATIVE.get(host_arch, {host_arch})


def _how_to(arch: str) -> str:
    qemu = QEMU_NAMES.get(arch, arch)
    return (f"register QEMU user emulation with the F flag: on Kubernetes, the tonistiigi/binfmt DaemonSet "
            f"(or once per node: docker run --privileged --rm tonistiigi/binfmt --install {arch}); on Debian, "
            f"apt-get install qemu-user-static binfmt-support (update-binfmts --enable qemu-{qemu})")


def check_emulation(needs: dict[str, list[str]], host: str, directory: str = BINFMT_DIR) -> None:
    """`needs`: platform (normalised text, linux/arm64) -> the stages whose RUN steps execute its binaries;
    `host`: this machine's platform. Raises EmulationError naming the first platform this kernel cannot run
    and how to make it; a platform kiln cannot check is a warning."""
    handlers: list[Handler] | None = None
    looked = False
    for text, stages in needs.items():
        os_, arch = _os_arch(text)
        if runs_natively(text, host):
            continue
        where = f"RUN in stage {', '.join(stages)}"
        if os_ != "linux" or arch not in ELF_MACHINES:
            raise EmulationError(f"platform {text}: kiln cannot run {text} binaries on this {host} "
                                 f"machine ({where}); it emulates only linux platforms "
                                 f"({', '.join(sorted(ELF_MACHINES))})")
        if not looked:
            handlers, looked = read_handlers(directory), True
        if handlers is None:
            log.warning("%s: cannot see %s (binfmt_misc not mounted here), so cannot check that this kernel runs "
                        "%s binaries (%s); if a RUN fails with 'exec format error', %s", text, directory, text,
                        where, _how_to(arch))
            continue
        header = elf_header(arch)
        found = [h for h in handlers if h.matches(header)]
        if not found:
            raise EmulationError(f"platform {text}: this {host} kernel has no binfmt_misc handler for "
                                 f"{text} binaries ({where}); {_how_to(arch)}")
        if not any("F" in h.flags for h in found):
            h = found[0]
            raise EmulationError(f"platform {text}: the binfmt_misc handler {h.name} ({h.interpreter}) "
                                 f"is registered without the F flag, so a RUN in the build's root cannot reach "
                                 f"its interpreter ({where}); {_how_to(arch)}")
        log.info("%s: RUN emulated by %s (%s)", text, found[0].name, found[0].interpreter)
