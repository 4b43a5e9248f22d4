from __future__ import annotations

import os

import pytest

from executor.run.errors import UserError
from executor.run.users import (ExecUser, file_owner, lookup_user, parse_group, parse_passwd,
                                resolve_file_owner, resolve_user)
from tests.test_run.conftest import GROUP, PASSWD

P = parse_passwd(PASSWD)
G = parse_group(GROUP)


def test_name_gives_uid_gid_supplementary_groups_and_home():
    # the primary gid first, then the groups listing the user (BuildKit's ensureAdditionalGids; docker 26.1.5
    # and 28.5.2 give `groups=50(staff),1000(app)` for the parity rig's app, issue 20 reproduction 2)
    assert resolve_user("app", P, G) == ExecUser(1000, 1000, (1000, 2000), "/home/app", "app")


def test_uid_of_known_user_is_looked_up_like_its_name():
    assert resolve_user("1000", P, G) == ExecUser(1000, 1000, (1000, 2000), "/home/app", "app")


def test_unknown_numeric_uid_gets_gid_0_and_home_slash():
    assert resolve_user("4242", P, G) == ExecUser(4242, 0, (0,), "/", "")


def test_unknown_name_fails_with_dockers_message():
    with pytest.raises(UserError, match="^unable to find user ghost: no matching entries in passwd file$"):
        resolve_user("ghost", P, G)


def test_explicit_group_by_name_replaces_gid_and_drops_supplementary():
    assert resolve_user("app:staff", P, G) == ExecUser(1000, 3000, (3000,), "/home/app", "app")


def test_explicit_numeric_group_known_or_not():
    assert resolve_user("app:2000", P, G).gid == 2000
    assert resolve_user("1000:5555", P, G) == ExecUser(1000, 5555, (5555,), "/home/app", "app")
    assert resolve_user("4242:4343", P, G) == ExecUser(4242, 4343, (4343,), "/", "")


def test_unknown_group_name_fails():
    with pytest.raises(UserError, match="unable to find group nope: no matching entries in group file"):
        resolve_user("app:nope", P, G)


def test_empty_user_is_root_with_roots_home():
    assert resolve_user("", P, G) == ExecUser(0, 0, (0,), "/root", "root")


def test_trailing_colon_means_no_group():
    assert resolve_user("app:", P, G) == ExecUser(1000, 1000, (1000, 2000), "/home/app", "app")


def test_numeric_part_is_never_a_name():
    passwd = parse_passwd("1234:x:7:7::/weird:/bin/sh\n")
    assert resolve_user("1234", passwd, []) == ExecUser(1234, 0, (0,), "/", "")


def test_first_matching_entry_wins_and_group_members_are_exact_names():
    passwd = parse_passwd("app:x:1:1::/a:/bin/sh\napp:x:2:2::/b:/bin/sh\n")
    group = parse_group("g1:x:10:application\ng2:x:11: app , x\ng3:x:12:xapp\n")
    assert resolve_user("app", passwd, group) == ExecUser(1, 1, (1, 11), "/a", "app")


def test_out_of_range_ids_are_refused():
    with pytest.raises(UserError, match="out of range"):
        resolve_user("4294967296", P, G)
    with pytest.raises(UserError, match="out of range"):
        resolve_user("-1", P, G)


def test_missing_passwd_file_allows_numeric_but_not_names():
    assert resolve_user("77:88", None, None) == ExecUser(77, 88, (88,), "/", "")
    # a bare number too, as BuildKit v0.32.0 (408266e4b); docker 26.1.5 and 28.5.2 still refuse it with
    # "unable to find user 4242: invalid argument" (docs/differences.md)
    assert resolve_user("4242", None, None) == ExecUser(4242, 0, (0,), "/", "")
    with pytest.raises(UserError, match="unable to find user app"):
        resolve_user("app", None, None)


def test_comments_blank_and_malformed_lines_are_skipped():
    passwd = parse_passwd("# comment\n\nbroken\nbad:x:notanumber:1::/:/bin/sh\napp:x:5:6::/h:/bin/sh\n")
    assert [e.name for e in passwd] == ["app"]


def test_lookup_reads_the_roots_files_not_the_hosts(bbroot):
    # The host has no user "app" with home /home/app; only the image does.
    assert lookup_user(bbroot, "app") == ExecUser(1000, 1000, (1000, 2000), "/home/app", "app")
    assert lookup_user(bbroot, "nobody").home == "/nonexistent"


def test_lookup_follows_symlinked_etc_files_inside_the_root(bbroot, tmp_path):
    etc = os.path.join(bbroot, "etc")
    os.makedirs(os.path.join(bbroot, "real"))
    os.rename(os.path.join(etc, "passwd"), os.path.join(bbroot, "real", "passwd"))
    # absolute target: must resolve inside the root, not to the host's /real/passwd
    os.symlink("/real/passwd", os.path.join(etc, "passwd"))
    assert lookup_user(bbroot, "app").uid == 1000


def test_lookup_without_etc_files(tmp_path):
    assert lookup_user(str(tmp_path), "1000:1000") == ExecUser(1000, 1000, (1000,), "/", "")
    with pytest.raises(UserError, match="unable to find user app: no matching entries in passwd file"):
        lookup_user(str(tmp_path), "app")


def test_primary_gid_already_listed_keeps_the_order():
    group = parse_group("app:x:1000:app\nextra:x:2000:app\n")
    assert resolve_user("app", P, group).groups == (1000, 2000)
    group = parse_group("extra:x:2000:app\napp:x:1000:app\n")
    assert resolve_user("app", P, group).groups == (2000, 1000)


def test_root_and_numbers_on_both_sides_need_no_passwd_file():
    # BuildKit's ParseUIDGID fast path: `USER root:root` and `USER 0:0` run in an image without /etc/passwd
    # (parity case user_root_without_passwd); HOME is the passwd entry's of that uid when there is one
    assert resolve_user("root:root", None, None) == ExecUser(0, 0, (0,), "/", "")
    assert resolve_user("0:root", None, None) == ExecUser(0, 0, (0,), "/", "")
    assert resolve_user("root:root", P, G) == ExecUser(0, 0, (0,), "/root", "root")
    assert resolve_user("1000:50", P, G) == ExecUser(1000, 50, (50,), "/home/app", "app")


def test_a_bare_root_name_still_needs_passwd():
    # docker 26.1.5 and 28.5.2 refuse a RUN under `USER root` without /etc/passwd too (measured)
    with pytest.raises(UserError, match="^unable to find user root: no matching entries in passwd file$"):
        resolve_user("root", None, None)
    with pytest.raises(UserError, match="^unable to find group nope: no matching entries in group file$"):
        resolve_user("root:nope", P, G)


@pytest.mark.parametrize("spec, owner", [
    ("root", (0, 0)), ("0", (0, 0)), ("0:0", (0, 0)), ("root:root", (0, 0)),
    ("1234", (1234, 1234)), ("1000:50", (1000, 50)), ("ghost", (0, 0)), ("ghost:ghosts", (0, 0)),
    (":50", (0, 50)), ("app", (0, 0)),
])
def test_file_owner_without_passwd_or_group(spec, owner):
    # BuildKit's readUser: a name it cannot look up is root, never an error (parity case
    # user_root_without_passwd measured this with docker 26.1.5 and 28.5.2)
    assert resolve_file_owner(spec, None, None) == owner


@pytest.mark.parametrize("spec, owner", [
    ("app", (1000, 1000)), ("1000", (1000, 1000)), ("65534", (65534, 65534)), ("4242", (4242, 4242)),
    ("app:staff", (1000, 3000)), ("app:2000", (1000, 2000)), ("app:root", (1000, 0)), ("root:staff", (0, 3000)),
    ("app:", (1000, 0)), (":staff", (0, 3000)), ("ghost", (0, 0)), ("app:ghosts", (1000, 1000)),
    ("ghost:staff", (0, 3000)),
])
def test_file_owner_with_the_images_files(spec, owner):
    # a number is uid and gid alike (not the passwd entry's gid); `user:` means gid 0 (moby/buildkit#7002
    # describes it); an unknown group keeps the user's gid
    passwd = parse_passwd(PASSWD + "svc:x:4242:7::/srv:/bin/sh\n")
    assert resolve_file_owner(spec, passwd, G) == owner


def test_file_owner_warns_about_names_the_image_lacks(caplog):
    with caplog.at_level("WARNING", logger="executor.run.users"):
        assert resolve_file_owner("ghost:ghosts", P, G, what="--chown") == (0, 0)
    assert "--chown ghost:ghosts: no user 'ghost' in the image's /etc/passwd" in caplog.text
    assert "no group 'ghosts' in the image's /etc/group: gid 0 kept" in caplog.text


def test_file_owner_reads_the_roots_files(bbroot, tmp_path):
    assert file_owner(bbroot, "app") == (1000, 1000)
    assert file_owner(str(tmp_path), "root") == (0, 0)
