# SPDX-License-Identifier: MIT
"""zinc-core processes on the same regions as libzinc and zincfs, with no
environment variable: wakes in every direction and lifetimes across both.
The zinc-core side is tests/helpers/zinc-core-peer.c, a handle that behaves
as zinc-core's source does (it never announces itself as a waiter, always
issues FUTEX_WAKE, and its creator unlinks the name on close)."""
import errno
import os
import signal
import subprocess

import pytest

from conftest import PAGE, ZincError, read_line, wait_blocked, wait_until

WOKE_WITHIN = 5.0  # seconds; every waiter below waits 30 s or more


def blocked_wait(h):
    """h (a libzinc or zinc-core handle's process) sleeps in its futex wait,
    its cursor caught up first."""
    try:
        h.cmd("trywait")
    except ZincError as e:
        assert e.errno == errno.EAGAIN
    h.send("wait 30000")
    wait_blocked(h.pid, "futex")


def blocked_wait_file(zfs, name):
    """A shell reading NAME.wait through the mount, asleep in the read."""
    p = zfs.spawn(["sh", "-c", f"read seq < {name}.wait && echo \"woke $seq\""],
                  cwd=str(zfs.mnt), stdout=subprocess.PIPE)
    wait_blocked(p.pid, "fuse", path=zfs.path(f"{name}.wait"))
    return p


@pytest.mark.parametrize("creator", ["libzinc", "zinc-core"])
def test_libzinc_notify_wakes_a_zinc_core_waiter(zfs, creator):
    owner = zfs.zinc() if creator == "libzinc" else zfs.peer()
    owner.create("zc")
    z = zfs.zinc()
    z.open("zc")
    peer = zfs.peer()
    peer.open("zc")
    blocked_wait(peer)
    seq = z.notify()
    assert int(peer.reply(WOKE_WITHIN)) == seq


def test_notify_file_wakes_a_zinc_core_waiter(zfs):
    assert zfs.sh("touch zc").returncode == 0  # zincfs creates and owns it
    peer = zfs.peer()
    assert peer.open("zc") == PAGE
    blocked_wait(peer)
    assert zfs.sh("echo > zc.notify").returncode == 0
    assert int(peer.reply(WOKE_WITHIN)) == 1


def test_zinc_core_notify_wakes_libzinc_and_wait_file_readers(zfs):
    assert zfs.sh("touch zc").returncode == 0
    z = zfs.zinc()
    z.open("zc")
    peer = zfs.peer()
    peer.open("zc")
    reader = blocked_wait_file(zfs, "zc")
    blocked_wait(z)
    assert int(peer.cmd("notify")) == 1
    assert int(z.reply(WOKE_WITHIN)) == 1
    assert read_line(reader, WOKE_WITHIN) == "woke 1"


def test_zinc_core_creator_close_removes_the_name_and_libzinc_waiters_see_eidrm(zfs):
    peer = zfs.peer()
    peer.create("zc")
    z = zfs.zinc()
    z.open("zc")
    assert z.stat()["foreign"] == 1
    peer.write(0, b"bye")
    peer.close()  # zinc-core's creator unlinks, whatever else holds it
    assert not zfs.obj("zc").exists()
    with pytest.raises(ZincError) as e:
        z.cmd("wait 200")
    assert e.value.errno == errno.EIDRM
    assert z.read(0, 3) == b"bye"  # the mapping stays valid
    z.close()


def test_killed_zinc_core_creator_leaves_its_region_until_libzinc_replaces_it(zfs):
    peer = zfs.peer()
    peer.create("zc")
    peer.write(0, b"old")
    os.kill(peer.pid, signal.SIGKILL)
    peer.p.wait(timeout=10)
    assert zfs.obj("zc").exists()
    z = zfs.zinc()
    z.open("zc")
    assert z.read(0, 3) == b"old"
    assert z.stat()["owner_alive"] == 0
    new = zfs.zinc().create("zc")  # its owner is dead: replaced
    with pytest.raises(ZincError) as e:
        z.cmd("wait 0")
    assert e.value.errno == errno.EIDRM
    new.write(0, b"new")
    assert zfs.peer().open("zc") == PAGE


def test_zinc_core_creator_keeps_its_name_while_libzinc_handles_come_and_go(zfs):
    peer = zfs.peer()
    peer.create("zc")
    z = zfs.zinc()
    z.open("zc")
    assert int(peer.cmd("refs")) == 2
    z.write(0, b"from libzinc")
    assert peer.read(0, 12) == b"from libzinc"
    z.close()
    assert int(peer.cmd("refs")) == 1
    assert zfs.obj("zc").exists()  # the owner is alive: our close left it
    peer.close()
    assert not zfs.obj("zc").exists()


def test_libzinc_creator_and_zinc_core_opener_share_data_and_count(zfs):
    z = zfs.zinc().create("zc")
    peer = zfs.peer()
    assert peer.open("zc") == PAGE
    assert z.stat()["refs"] == 2
    peer.write(0, b"from zinc-core")
    assert z.read(0, 14) == b"from zinc-core"
    peer.close()  # an opener never removes the name
    assert zfs.obj("zc").exists()
    assert z.stat()["refs"] == 1
    again = zfs.peer()
    again.open("zc")
    z.close()  # the creator closes: the name goes, as zinc-core's would
    wait_until(lambda: not zfs.obj("zc").exists(), 2, "zc removed")
    assert again.read(0, 14) == b"from zinc-core"  # its mapping stays valid
    again.close()
