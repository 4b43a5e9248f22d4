from __future__ import annotations

import os

import pytest

from executor.run.errors import UserError
from executor.run.users import ExecUser, lookup_user, parse_group, parse_passwd, resolve_user
from tests.test_run.conftest import GROUP, PASSWD

P = parse_passwd(PASSWD)
G = parse_group(GROUP)


def test_name_gives_uid_gid_supplementary_groups_and_home():
    assert resolve_user("app", P, G) == ExecUser(1000, 1000, (2000,), "/home/app", "app")


def test_uid_of_known_user_is_looked_up_like_its_name():
    assert resolve_user("1000", P, G) == ExecUser(1000, 1000, (2000,), "/home/app", "app")


def test_unknown_numeric_uid_gets_gid_0_and_home_slash():
    assert resolve_user("4242", P, G) == ExecUser(4242, 0, (), "/", "")


def test_unknown_name_fails_with_dockers_message():
    with pytest.raises(UserError, match="^unable to find user ghost: no matching entries in passwd file$"):
        resolve_user("ghost", P, G)


def test_explicit_group_by_name_replaces_gid_and_drops_supplementary():
    assert resolve_user("app:staff", P, G) == ExecUser(1000, 3000, (), "/home/app", "app")


def test_explicit_numeric_group_known_or_not():
    assert resolve_user("app:2000", P, G).gid == 2000
    assert resolve_user("1000:5555", P, G) == ExecUser(1000, 5555, (), "/home/app", "app")
    assert resolve_user("4242:4343", P, G) == ExecUser(4242, 4343, (), "/", "")


def test_unknown_group_name_fails():
    with pytest.raises(UserError, match="unable to find group nope: no matching entries in group file"):
        resolve_user("app:nope", P, G)


def test_empty_user_is_root_with_roots_home():
    assert resolve_user("", P, G) == ExecUser(0, 0, (), "/root", "root")


def test_trailing_colon_means_no_group():
    assert resolve_user("app:", P, G) == ExecUser(1000, 1000, (2000,), "/home/app", "app")


def test_numeric_part_is_never_a_name():
    passwd = parse_passwd("1234:x:7:7::/weird:/bin/sh\n")
    assert resolve_user("1234", passwd, []) == ExecUser(1234, 0, (), "/", "")


def test_first_matching_entry_wins_and_group_members_are_exact_names():
    passwd = parse_passwd("app:x:1:1::/a:/bin/sh\napp:x:2:2::/b:/bin/sh\n")
    group = parse_group("g1:x:10:application\ng2:x:11: app , x\ng3:x:12:xapp\n")
    assert resolve_user("app", passwd, group) == ExecUser(1, 1, (11,), "/a", "app")


def test_out_of_range_ids_are_refused():
    with pytest.raises(UserError, match="out of range"):
        resolve_user("4294967296", P, G)
    with pytest.raises(UserError, match="out of range"):
        resolve_user("-1", P, G)


def test_missing_passwd_file_allows_numeric_but_not_names():
    assert resolve_user("77:88", None, None) == ExecUser(77, 88, (), "/", "")
    with pytest.raises(UserError, match="unable to find user app"):
        resolve_user("app", None, None)


def test_comments_blank_and_malformed_lines_are_skipped():
    passwd = parse_passwd("# comment\n\nbroken\nbad:x:notanumber:1::/:/bin/sh\napp:x:5:6::/h:/bin/sh\n")
    assert [e.name for e in passwd] == ["app"]


def test_lookup_reads_the_roots_files_not_the_hosts(bbroot):
    # The host has no user "app" with home /home/app; only the image does.
    assert lookup_user(bbroot, "app") == ExecUser(1000, 1000, (2000,), "/home/app", "app")
    assert lookup_user(bbroot, "nobody").home == "/nonexistent"


def test_lookup_follows_symlinked_etc_files_inside_the_root(bbroot, tmp_path):
    etc = os.path.join(bbroot, "etc")
    os.makedirs(os.path.join(bbroot, "real"))
    os.rename(os.path.join(etc, "passwd"), os.path.join(bbroot, "real", "passwd"))
    # absolute target: must resolve inside the root, not to the host's /real/passwd
    os.symlink("/real/passwd", os.path.join(etc, "passwd"))
    assert lookup_user(bbroot, "app").uid == 1000


def test_lookup_without_etc_files(tmp_path):
    assert lookup_user(str(tmp_path), "1000:1000") == ExecUser(1000, 1000, (), "/", "")
    with pytest.raises(UserError, match="unable to find user app: no matching entries in passwd file"):
        lookup_user(str(tmp_path), "app")
