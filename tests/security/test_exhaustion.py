# SPDX-License-Identifier: MIT
"""What one user plants in the region directory or holds open in the mount
costs zincfs bounded resources and never keeps root from working: huge
sparse regions, thousands of open regions, a thousand open directories,
an object rewritten while it is looked up, and floods of invalid objects."""
import os
import time

import pytest

from conftest import PAGE, Attacker, ZincError, daemon_rss_kib, wait_until, zc

TIB = 1 << 40


def root_still_works(zfs, name="mine"):
    """Root creates, writes, reads, stats, notifies and waits on a 0600
    region through the mount, and creates one with libzinc."""
    fd = os.open(zfs.path(name), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        assert os.pwrite(fd, b"hello", 0) == 5
        assert os.pread(fd, 5, 0) == b"hello"
    finally:
        os.close(fd)
    assert os.stat(zfs.path(name)).st_size == PAGE
    w = os.open(zfs.path(name + ".wait"), os.O_RDONLY | os.O_NONBLOCK)
    try:
        with pytest.raises(BlockingIOError):
            os.read(w, 64)
        n = os.open(zfs.path(name + ".notify"), os.O_WRONLY)
        os.write(n, b"x")
        os.close(n)
        assert os.read(w, 64) == b"1\n"  # notified before write() returned
    finally:
        os.close(w)
    os.unlink(zfs.path(name))
    z = zfs.zinc().create(name + "-lib")
    assert os.stat(zfs.path(name + "-lib")).st_size == PAGE
    z.exit()


def test_huge_sparse_regions_planted_by_a_user_leave_root_working(zfs, attacker):
    """128 valid regions of 1 TiB each (sparse: a page of memory each) and
    one of every power-of-two size below, all looked up by root's ls -l:
    more than a 47-bit address space can map at once."""
    attacker("plant_many", "big", 128, TIB)
    for k in range(40):
        if (1 << k) % PAGE == 0 and (1 << k) < TIB:
            attacker("plant", f"fill{k}", 1 << k)
    r = zfs.sh("ls -l >/dev/null")
    assert r.returncode == 0, r.stderr[-500:]
    assert os.stat(zfs.path("big0")).st_size == TIB
    root_still_works(zfs)


@pytest.mark.zincfs("allow_other", start=False)
def test_a_user_holding_thousands_of_regions_open_leaves_root_working(zfs, monkeypatch):
    """zincfs gets 1024 file descriptors (prlimit: the same attack at the
    scale of this test's tmpfs); the attacker opens 1500 regions through
    the mount and keeps them open."""
    monkeypatch.setattr(zc, "WRAPPER", ["prlimit", "--nofile=1024:1024"] + zc.WRAPPER)
    zfs.start()
    a = Attacker(zfs)
    a("plant_many", "f", 1500)
    opened, errs = a("open_many", [f"f{i}" for i in range(1500)], timeout=120)
    print(f"the attacker holds {opened} regions open; its errors: {errs}")
    try:
        root_still_works(zfs)
    except (OSError, ZincError) as e:
        raise AssertionError(f"root failed ({e}) while the attacker held {opened} "
                             f"regions open (its errors: {errs})") from e


def test_a_thousand_open_directories_keep_daemon_memory_bounded(zfs, attacker):
    """5000 regions with 234-byte names; the attacker opens the mount's
    directory up to 1000 times (for at most 10 s) and keeps every handle."""
    attacker("plant_many", "d" * 230, 5000)
    rss0 = daemon_rss_kib(zfs)
    held, end = 0, time.monotonic() + 10
    while held < 1000 and time.monotonic() < end:
        n, err = attacker("open_dirs", 10, timeout=60)
        held += n
        grown = daemon_rss_kib(zfs) - rss0
        assert grown < 32 * 1024, f"zincfs grew by {grown} KiB for {held} open directories"
        if err:
            break
    print(f"{held} directory handles, zincfs grew by {grown} KiB")
    assert held >= 100, f"only {held} directories opened (then {err})"
    root_still_works(zfs)


def test_objects_rewritten_while_looked_up_leak_no_daemon_fds(zfs, attacker):
    """For 3 s the attacker truncates four regions of its own to nothing and
    writes them whole again, while it looks them up and opens them; then it
    removes them.  zincfs must let go of every fd on them."""
    lookups = attacker("churn", ["c0", "c1", "c2", "c3"], 3.0, timeout=60)
    print(f"{lookups} lookups")
    assert lookups > 100

    def held():
        fds = []
        for fd in os.listdir(f"/proc/{zfs.proc.pid}/fd"):
            try:
                fds.append(os.readlink(f"/proc/{zfs.proc.pid}/fd/{fd}"))
            except OSError:
                pass
        return [f for f in fds if f.startswith(str(zfs.obj("c")))]
    try:  # the kernel's forgets of the removed names come a moment later
        wait_until(lambda: not held(), 3, "zincfs to close the removed objects")
    except AssertionError:
        raise AssertionError(f"after {lookups} lookups zincfs still holds {held()}") from None
    root_still_works(zfs)


@pytest.mark.parametrize("distinct", [True, False], ids=["distinct-names", "one-name"])
def test_floods_of_invalid_objects_keep_the_log_bounded(zfs, attacker, distinct):
    """2000 invalid objects (wrong magic), each looked up through the mount
    and removed: 2000 names, or one name 2000 times."""
    attacker("junk", 2000, distinct, timeout=120)
    lines = zfs.log().splitlines()
    print(f"{len(lines)} log lines")
    assert len(lines) <= 100, f"{len(lines)} log lines, the last: {lines[-3:]}"
    root_still_works(zfs)
