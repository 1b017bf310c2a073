# SPDX-License-Identifier: MIT
"""Another user gets no access to root's regions or files through a root-run
allow_other mount: not by racing root's create (open with O_CREAT), not by
racing root's replacement of a stale region of its own (rm), and not by
"creating" the name of a file of root's that is no region."""
import errno
import os
import time

import pytest

from conftest import ATTACKER, PAGE, ZINC, ZincError, as_attacker, zc


def test_racing_open_o_creat_never_gets_roots_0600_region(zfs, attacker):
    """Root creates a 0600 region, writes a secret into it and removes it,
    over and over; the attacker keeps opening the name with O_RDWR|O_CREAT
    through the mount.  No fd the attacker gets may be on root's region."""
    z = zfs.zinc()
    secret = os.urandom(16)
    attacker.send("open_race", "x", secret.hex(), 3.0)
    rounds, end = 0, time.monotonic() + 3.0
    while time.monotonic() < end:
        try:
            z.create("x")
        except ZincError as e:
            assert e.errno == errno.EEXIST  # the attacker's own region, briefly
            continue
        assert os.stat(zfs.obj("x")).st_mode & 0o777 == 0o600
        z.write(0, secret)
        rounds += 1
        z.close()  # removes it
    res = attacker.reply()
    print(f"{rounds} rounds; attacker: {res}")  # for docs/RELIABILITY.md (pytest -rP)
    assert res["leaks"] == 0, f"the attacker opened root's 0600 region: {res}"
    assert rounds >= 50 and res["tries"] >= 100, f"no race happened: {rounds} rounds, {res}"


def test_racing_rm_never_removes_roots_region_that_replaced_a_stale_one(zfs, attacker):
    """The attacker plants a stale region of its own and removes the name
    (rm through the mount, zinc_unlink in the region directory) as fast as
    it can, while root's zinc_create replaces the stale region by its own.
    Root's region must never disappear."""
    z = zfs.zinc()
    attacker.send("unlink_race", "x", str(zc.BUILD / "libzinc" / "libzinc.so.1"), 3.0)
    rounds, lost, end = 0, [], time.monotonic() + 3.0
    while time.monotonic() < end:
        try:
            z.create("x")
        except ZincError as e:
            assert e.errno == errno.EEXIST  # mid-way through the attacker's plant
            continue
        rounds += 1
        try:
            ino = os.stat(zfs.obj("x")).st_ino
            for _ in range(5):  # the attacker's chance to strike
                if z.cmd("removed") != "0":
                    lost.append("marked removed")
                    break
            else:
                st = os.stat(zfs.obj("x"))
                if (st.st_ino, st.st_uid) != (ino, 0):
                    lost.append("replaced")
        except FileNotFoundError:
            lost.append("name gone")
        z.close()
    res = attacker.reply()
    print(f"{rounds} rounds, {len(lost)} lost; attacker: {res}")
    assert not lost, f"root's region was removed in {len(lost)} of {rounds} rounds " \
        f"({sorted(set(lost))}); attacker: {res}"
    assert rounds >= 50 and res["plants"] >= 50, f"no race happened: {rounds} rounds, {res}"


VICTIM = b"root's own file, not a region\n" * 3


@pytest.mark.parametrize("how", ["touch", "open", "zinc-create"])
def test_creating_the_name_of_roots_non_region_file_leaves_it_alone(zfs, attacker, how):
    victim = zfs.obj("victim")
    victim.write_bytes(VICTIM)
    os.chmod(victim, 0o600)
    before = os.stat(victim)
    if how == "touch":
        r = as_attacker(zfs, "touch victim")
        assert r.returncode != 0, "touch succeeded"
        assert any(m in r.stderr for m in ("Permission denied", "Operation not permitted",
                                           "File exists")), r.stderr
    elif how == "open":
        e = attacker("create_through_mount", "victim")
        assert e in (errno.EACCES, errno.EPERM, errno.EEXIST), \
            "the attacker's open succeeded" if e == 0 else errno.errorcode.get(e, e)
    else:
        # If the create succeeds, zinc holds the region: SIGINT ends it.
        r = as_attacker(zfs, f"timeout -s INT 5 {ZINC} create victim {PAGE}")
        assert r.returncode in (5, 6), (r.returncode, r.stdout, r.stderr)
    after = os.stat(victim)
    assert (after.st_ino, after.st_uid, after.st_mode) == \
        (before.st_ino, before.st_uid, before.st_mode), "root's file was replaced"
    assert victim.read_bytes() == VICTIM
    assert not [n for n in os.listdir(zfs.shm) if os.stat(zfs.shm / n).st_uid == ATTACKER]
