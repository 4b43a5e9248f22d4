from __future__ import annotations

import io
import os
import subprocess
import tarfile

import pytest
from hypothesis import given, settings, strategies as st

from snapshot.errors import LayerFormatError
from snapshot.tarstream import TarReader


def ours(raw: bytes):
    r = TarReader(io.BytesIO(raw), "test")
    out = []
    for m in r:
        data = r.read_all() if m.type in (b"0", b"\0", b"7") else None
        out.append((m.name.rstrip("/"), m.type, m.mode, m.uid, m.gid, m.mtime_ns // 10**9,
                    m.linkname, data, m.xattrs))
    return out


def theirs(raw: bytes):
    out = []
    with tarfile.open(fileobj=io.BytesIO(raw)) as tf:
        for m in tf:
            data = tf.extractfile(m).read() if m.isfile() else None
            xattrs = {k[13:]: v.encode("utf-8", "surrogateescape") for k, v in m.pax_headers.items()
                      if k.startswith("SCHILY.xattr.")}
            out.append((m.name.rstrip("/"), m.type, m.mode, m.uid, m.gid, int(m.mtime), m.linkname,
                        data, xattrs))
    return out


names = st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x24f,
                                       blacklist_characters="/\\"), min_size=1, max_size=40)


@settings(max_examples=60, deadline=None)
@given(entries=st.lists(st.tuples(st.lists(names, min_size=1, max_size=6), st.binary(max_size=1500),
                                  st.integers(0, 5_000_000), st.sampled_from(["file", "dir", "sym"])),
                        min_size=1, max_size=8),
       fmt=st.sampled_from([tarfile.GNU_FORMAT, tarfile.PAX_FORMAT]))
def test_agrees_with_tarfile(entries, fmt):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tf:
        for parts, data, uid, kind in entries:
            ti = tarfile.TarInfo("/".join(parts))
            ti.uid = uid
            ti.mtime = 1_700_000_000
            if kind == "file":
                ti.size = len(data)
                tf.addfile(ti, io.BytesIO(data))
            elif kind == "dir":
                ti.type = tarfile.DIRTYPE
                tf.addfile(ti)
            else:
                ti.type = tarfile.SYMTYPE
                ti.linkname = "/".join(reversed(parts)) * 3
                tf.addfile(ti)
    raw = buf.getvalue()
    assert ours(raw) == theirs(raw)


@pytest.mark.parametrize("fmt", ["gnu", "posix", "ustar", "v7"])
def test_gnu_tar_formats(tmp_path, fmt):
    src = tmp_path / "src"
    d = src / ("p" * 60) / ("q" * (60 if fmt != "v7" else 10))
    d.mkdir(parents=True)
    (d / "file").write_bytes(b"data" * 300)
    (src / "short").write_text("s")
    os.symlink("short", src / "ln")
    if fmt in ("gnu", "posix"):
        (src / ("n" * 150)).write_text("long")
    if fmt == "posix":
        os.setxattr(src / "short", "user.k", b"\x00\xffv")
    out = tmp_path / "a.tar"
    args = ["tar", "-C", str(src), f"--format={fmt}", "-cf", str(out), "."]
    if fmt == "posix":
        args.insert(1, "--xattrs")
    subprocess.run(args, check=True)
    raw = out.read_bytes()
    mine = ours(raw)
    assert mine == theirs(raw)
    if fmt == "posix":
        assert dict((m[0], m[8]) for m in mine)["./short"] == {"user.k": b"\x00\xffv"}


def test_global_pax_header_applies_to_following_members():
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT,
                      pax_headers={"uid": "4242"}) as tf:
        for n in ("a", "b"):
            ti = tarfile.TarInfo(n)
            tf.addfile(ti, io.BytesIO(b""))
    assert [m[3] for m in ours(buf.getvalue())] == [4242, 4242]


def test_sparse_and_corruption_refused(tmp_path):
    sparse = tmp_path / "sparse"
    with open(sparse, "wb") as f:
        f.truncate(1 << 20)
        f.write(b"x")
    out = tmp_path / "s.tar"
    subprocess.run(["tar", "-C", str(tmp_path), "--sparse", "--format=gnu", "-cf", str(out), "sparse"], check=True)
    with pytest.raises(LayerFormatError, match="sparse"):
        ours(out.read_bytes())
    raw = bytearray(out.read_bytes())
    raw[150] ^= 0x01  # inside the checksum field
    with pytest.raises(LayerFormatError, match="byte 0"):
        ours(bytes(raw))


def test_signed_checksum_of_old_writers_accepted():
    """Some old writers summed the header's bytes as signed chars: a name with bytes above 127 then has a
    smaller checksum, which GNU tar and Go's archive/tar accept too. A checksum neither way is refused."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tf:
        ti = tarfile.TarInfo("caf\u00e9-\u00fc")
        ti.size = 3
        tf.addfile(ti, io.BytesIO(b"abc"))
    raw = bytearray(buf.getvalue())
    header = bytes(raw[:148]) + b" " * 8 + bytes(raw[156:512])
    signed = sum(b - 256 if b > 127 else b for b in header)
    assert signed != sum(header)
    raw[148:156] = b"%06o\0 " % signed
    assert ours(bytes(raw)) == [("caf\u00e9-\u00fc", b"0", 0o644, 0, 0, 0, "", b"abc", {})]
    raw[148:156] = b"%06o\0 " % (signed + 1)
    with pytest.raises(LayerFormatError, match="checksum mismatch at byte 0"):
        ours(bytes(raw))


def test_data_of_buffered_member_is_its_bytes():
    """`data()` hands out the buffered bytes of a member without copying them; what it hands out is the
    member's data whatever is read after it."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, data in (("a", b"first" * 100), ("b", b""), ("c", b"third")):
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
    reader = TarReader(io.BytesIO(buf.getvalue()), "test")
    views = []
    for m in reader:
        views.append((m.name, reader.data()))
    assert [(n, bytes(v)) for n, v in views] == [("a", b"first" * 100), ("b", b""), ("c", b"third")]
