"""--chmod parsing and application as BuildKit (dchapes-mode / BSD setmode, umask 0)."""
from __future__ import annotations

import stat

import pytest

from executor.commands.copying.chmod import ChmodError, parse_chmod

F = stat.S_IFREG
D = stat.S_IFDIR


@pytest.mark.parametrize("text,mode,expected", [
    ("755", F | 0o600, 0o755),
    ("0644", F | 0o4755, 0o644),          # octal replaces special bits too
    ("4755", F | 0o644, 0o4755),
    ("+x", F | 0o644, 0o755),
    ("u+x", F | 0o644, 0o744),
    ("go-w", F | 0o666, 0o644),
    ("a=r", F | 0o4777, 0o4444 & ~0o4000),  # "a=" clears set-id bits as well
    ("u=rwx,go=rx", F | 0o600, 0o755),
    ("+X", F | 0o644, 0o644),            # X: not executable, not a dir
    ("+X", D | 0o644, 0o755),            # X on a directory
    ("+X", F | 0o744, 0o755),            # X when someone may execute
    ("u=rwX,go=rX", D | 0o700, 0o755),  # the documented example: directories 755
    ("u=rwX,go=rX", F | 0o600, 0o644),  # ... files 644
    ("u=rwX,go=rX", F | 0o700, 0o755),  # ... keeping an executable bit
    ("a-X", F | 0o755, 0o644),
    ("g=u", F | 0o640, 0o660),
    ("o=g", F | 0o754, 0o755),
    ("u+s", F | 0o755, 0o4755),
    ("g+s", D | 0o755, 0o2755),
    ("+t", D | 0o777, 0o1777),
    ("o+t", D | 0o777, 0o777),           # t needs a who beyond "o"
    ("u+r-w", F | 0o200, 0o400),         # chained operators share the who
    ("=", F | 0o4755, 0o0),
])
def test_apply(text: str, mode: int, expected: int) -> None:
    assert parse_chmod(text).apply(mode) == expected


def test_int_is_octal_value() -> None:
    spec = parse_chmod(0o2750)
    assert spec.apply(F | 0o777) == 0o2750
    assert spec.created_dir_mode() == 0o750


def test_created_dir_mode_symbolic_is_0755() -> None:
    assert parse_chmod("u+x").created_dir_mode() == 0o755


@pytest.mark.parametrize("bad", ["", "u", "u+z", "q+x", "u+x,", "+x;"])
def test_invalid(bad: str) -> None:
    with pytest.raises(ChmodError) as err:
        parse_chmod(bad)
    assert str(err.value) == f"invalid chmod parameter: '{bad}': not an octal mode nor a symbolic mode such as u+x,go=rX"


@pytest.mark.parametrize("bad", ["8", "07778", "10000"])
def test_octal_out_of_range(bad: str) -> None:
    with pytest.raises(ChmodError) as err:
        parse_chmod(bad)
    assert str(err.value) == f"invalid chmod parameter: '{bad}'. it should be octal string and between 0 and 07777"


# BuildKit's testChmodNonOctal compares with chmod(1) on a 0666 file and a 0124 directory.
@pytest.mark.parametrize("text,mode,expected", [
    ("go-w", F | 0o666, 0o644), ("u=rw,g=r,o=r", F | 0o666, 0o644), ("a+X", F | 0o666, 0o666),
    ("go-w", D | 0o124, 0o104), ("u+rw,g+r,o-x,o+w", D | 0o124, 0o766), ("a+X", D | 0o124, 0o135),
])
def test_buildkit_non_octal_cases(text: str, mode: int, expected: int, tmp_path) -> None:
    assert parse_chmod(text).apply(mode) == expected
    import os
    import subprocess
    probe = tmp_path / "probe"
    (probe.mkdir if stat.S_ISDIR(mode) else probe.touch)()
    os.chmod(probe, stat.S_IMODE(mode))
    subprocess.run(["chmod", text, str(probe)], check=True)
    assert stat.S_IMODE(os.stat(probe).st_mode) == expected  # chmod(1) agrees
