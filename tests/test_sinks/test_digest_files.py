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
