"""Reading binfmt_misc and deciding whether a platform's RUN can execute here (executor/run/binfmt.py). The
entries are written in the kernel's own text format into a directory standing for /proc/sys/fs/binfmt_misc
(the real one is exercised by tests/e2e/test_multiplatform.py)."""
from __future__ import annotations

import pytest

from executor.run.binfmt import EmulationError, check_emulation, elf_header, read_handlers

AARCH64 = ("enabled\ninterpreter /usr/bin/qemu-aarch64-static\nflags: {flags}\noffset 0\n"
           "magic 7f454c460201010000000000000000000200b700\nmask ffffffffffffff00fffffffffffffffffeffffff\n")


def _binfmt(tmp_path, entries: dict[str, str], status: str = "enabled") -> str:
    d = tmp_path / "binfmt_misc"
    d.mkdir()
    (d / "status").write_text(status + "\n")
    (d / "register").write_text("")
    for name, text in entries.items():
        (d / name).write_text(text)
    return str(d)


def test_the_elf_header_of_each_architecture_matches_qemus_own_magic(tmp_path):
    d = _binfmt(tmp_path, {"qemu-aarch64": AARCH64.format(flags="F")})
    (handler,) = read_handlers(d)
    assert handler.matches(elf_header("arm64"))
    assert not handler.matches(elf_header("amd64")) and not handler.matches(elf_header("arm"))
    assert elf_header("s390x")[4:6] == b"\x02\x02" and elf_header("s390x")[18:20] == b"\x00\x16"   # big-endian


def test_a_handler_with_the_f_flag_lets_the_build_go_on(tmp_path, caplog):
    d = _binfmt(tmp_path, {"qemu-aarch64": AARCH64.format(flags="POCF")})
    with caplog.at_level("INFO"):
        check_emulation({"linux/arm64": ["0"], "linux/amd64": ["1"], "linux/386": ["2"]}, "linux/amd64", d)
    assert "linux/arm64: RUN emulated by qemu-aarch64 (/usr/bin/qemu-aarch64-static)" in caplog.text


def test_without_the_f_flag_the_interpreter_is_out_of_the_roots_reach(tmp_path):
    d = _binfmt(tmp_path, {"qemu-aarch64": AARCH64.format(flags="OC")})
    with pytest.raises(EmulationError) as e:
        check_emulation({"linux/arm64": ["build"]}, "linux/amd64", d)
    assert str(e.value).startswith(
        "platform linux/arm64: the binfmt_misc handler qemu-aarch64 (/usr/bin/qemu-aarch64-static) is registered "
        "without the F flag, so a RUN in the build's root cannot reach its interpreter (RUN in stage build); "
        "register QEMU user emulation with the F flag")


@pytest.mark.parametrize("entry", ["disabled", "status"])
def test_a_disabled_handler_or_binfmt_misc_counts_as_none(tmp_path, entry):
    text = AARCH64.format(flags="F")
    d = _binfmt(tmp_path, {"qemu-aarch64": text.replace("enabled", "disabled") if entry == "disabled" else text},
                status="disabled" if entry == "status" else "enabled")
    with pytest.raises(EmulationError, match="this linux/amd64 kernel has no binfmt_misc handler for linux/arm64 "
                                             r"binaries \(RUN in stage 0, tools\)"):
        check_emulation({"linux/arm64": ["0", "tools"]}, "linux/amd64", d)


def test_binfmt_misc_not_mounted_is_a_warning(tmp_path, caplog):
    with caplog.at_level("WARNING"):
        check_emulation({"linux/arm64": ["0"]}, "linux/amd64", str(tmp_path / "absent"))
    assert "linux/arm64: cannot see" in caplog.text and "binfmt_misc not mounted here" in caplog.text


def test_an_arm64_machine_runs_arm_natively_and_windows_is_refused(tmp_path):
    check_emulation({"linux/arm/v7": ["0"], "linux/arm64": ["1"]}, "linux/arm64", str(tmp_path / "absent"))
    with pytest.raises(EmulationError, match="platform windows/amd64: kiln cannot run windows/amd64 binaries on "
                                             "this linux/amd64 machine"):
        check_emulation({"windows/amd64": ["0"]}, "linux/amd64", str(tmp_path / "absent"))
