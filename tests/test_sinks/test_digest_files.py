import pytest

from executor.sinks.digest_files import write_digest_files

D = "sha256:" + "ab" * 32


def test_formats_match_kaniko(tmp_path):
    digest_file = tmp_path / "deep" / "dir" / "digest"
    names = tmp_path / "names"
    tags = tmp_path / "tags"
    write_digest_files(D, ["gcr.io/foo/bar:123", "bob/image"], str(digest_file), str(names), str(tags))
    assert digest_file.read_bytes() == D.encode()
    assert names.read_bytes() == f"gcr.io/foo/bar@{D}\nindex.docker.io/bob/image@{D}\n".encode()
    assert tags.read_bytes() == f"gcr.io/foo/bar:123@{D}\nindex.docker.io/bob/image:latest@{D}\n".encode()
    assert oct(digest_file.parent.stat().st_mode & 0o777) == "0o700"


def test_library_and_ports(tmp_path):
    tags = tmp_path / "tags"
    write_digest_files(D, ["busybox", "127.0.0.1:5000/a/b:v1"], image_name_tag_with_digest_file=str(tags))
    assert tags.read_text() == f"index.docker.io/library/busybox:latest@{D}\n127.0.0.1:5000/a/b:v1@{D}\n"


def test_name_files_need_destinations(tmp_path):
    with pytest.raises(ValueError, match="--destination"):
        write_digest_files(D, [], image_name_with_digest_file=str(tmp_path / "x"))
    with pytest.raises(ValueError, match="digest"):
        write_digest_files("sha256:short", ["a"], digest_file=str(tmp_path / "x"))


def test_an_existing_file_or_device_keeps_its_mode(tmp_path):
    """As os.WriteFile: a digest file that exists keeps its mode, and a device (/dev/termination-log in a pod,
    /dev/null) is written to, never chmod'ed (kiln once made the machine's /dev/null 0644 that way)."""
    import os
    import stat

    from executor.sinks.digest_files import write_file

    existing = tmp_path / "digest"
    existing.write_bytes(b"old")
    existing.chmod(0o600)
    write_file(str(existing), b"sha256:abc")
    assert existing.read_bytes() == b"sha256:abc" and stat.S_IMODE(existing.stat().st_mode) == 0o600
    null = tmp_path / "null"
    os.mknod(null, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    os.chmod(null, 0o666)
    write_file(str(null), b"sha256:abc")
    assert stat.S_IMODE(null.stat().st_mode) == 0o666 and stat.S_ISCHR(null.stat().st_mode)
    new = tmp_path / "sub" / "new"
    old_umask = os.umask(0o022)
    try:
        write_file(str(new), b"x")
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(new.stat().st_mode) == 0o644 and stat.S_IMODE(new.parent.stat().st_mode) == 0o700
