# SPDX-License-Identifier: MIT
"""Promises of zincfs(8) that an attacker (or bad luck) could otherwise
break: a failed resize changes nothing, O_CREAT without O_EXCL never fails
EEXIST, a .wait reader sees any change of the counter, and a big write(2)
to NAME.notify makes the documented number of notifications."""
import errno
import mmap
import os
import struct
import threading
import time

import pytest

from conftest import PAGE, ZincError, finish, read_line, wait_blocked

SEQ_OFFSET = 12  # zinc.h: notify_seq in the header


def test_resize_in_a_full_region_directory_keeps_the_region_and_its_data(zfs):
    r = zfs.sh("umask 022 && touch r")
    assert r.returncode == 0, r.stderr
    data = os.urandom(PAGE)
    fd = os.open(zfs.path("r"), os.O_RDWR)
    try:
        assert os.pwrite(fd, data, 0) == PAGE
    finally:
        os.close(fd)
    ino = os.stat(zfs.obj("r")).st_ino
    # Fill the region directory's tmpfs to the last page.
    filler = os.open(zfs.shm / "filler", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        chunk = 1 << 20
        while chunk >= PAGE:
            try:
                os.posix_fallocate(filler, os.fstat(filler).st_size, chunk)
            except OSError as e:
                assert e.errno == errno.ENOSPC
                chunk //= 2
        with pytest.raises(OSError) as e:
            os.truncate(zfs.path("r"), 16 * PAGE)
        assert e.value.errno == errno.ENOSPC
    finally:
        os.close(filler)
    assert zfs.obj("r").exists(), "the failed resize lost the region"
    st = os.stat(zfs.path("r"))
    assert st.st_size == PAGE, "the failed resize changed the capacity"
    assert os.stat(zfs.obj("r")).st_ino == ino, "the failed resize replaced the region"
    with open(zfs.path("r"), "rb") as f:
        assert f.read() == data, "the failed resize lost the data"
    os.unlink(zfs.shm / "filler")
    os.truncate(zfs.path("r"), 16 * PAGE)  # and with room it works
    assert os.stat(zfs.path("r")).st_size == 16 * PAGE


def test_open_o_creat_never_fails_eexist_while_libzinc_creates_and_removes(zfs):
    """zincfs(8): without O_EXCL an existing region is opened.  A libzinc
    program creates and removes the name in a loop meanwhile."""
    z = zfs.zinc()
    stop = time.monotonic() + 2.0
    res = {"opens": 0, "errors": {}}

    def opener():
        while time.monotonic() < stop:
            try:
                os.close(os.open(zfs.path("x"), os.O_RDWR | os.O_CREAT, 0o600))
                res["opens"] += 1
            except OSError as e:
                k = errno.errorcode.get(e.errno, e.errno)
                res["errors"][k] = res["errors"].get(k, 0) + 1
            try:
                os.unlink(zfs.path("x"))  # zincfs owns what it created: free the name
            except FileNotFoundError:
                pass

    th = threading.Thread(target=opener)
    th.start()
    creates = 0
    while time.monotonic() < stop:
        try:
            z.create("x")
        except ZincError as e:
            assert e.errno == errno.EEXIST
            continue
        creates += 1
        z.close()
    th.join()
    print(f"{creates} creates; opener: {res}")
    assert "EEXIST" not in res["errors"], res
    assert creates >= 20 and res["opens"] >= 20, f"no race: {creates} creates, {res}"


@pytest.mark.parametrize("jump", [2 ** 31, 2 ** 32 - 1], ids=["2^31", "2^32-1"])
def test_wait_reader_wakes_on_any_counter_change(zfs, jump):
    """zincfs(8): a read of NAME.wait returns once the counter differs from
    the cursor, however far it moved (the counter is 32 bits and wraps)."""
    z = zfs.zinc().create("r")
    z.notify(1)
    p = zfs.spawn(["head", "-n1", "r.wait"], cwd=str(zfs.mnt), stdout=-1, stderr=-1)
    wait_blocked(p.pid, "fuse", path=zfs.path("r.wait"))
    want = (1 + jump) % 2 ** 32
    with open(zfs.obj("r"), "r+b") as f:  # as a writer could through zinc_ptr
        f.seek(SEQ_OFFSET)
        f.write(struct.pack("<I", (want - 1) % 2 ** 32))
    assert z.notify(1) == want
    line = read_line(p, 2.0)
    assert line == str(want)
    assert finish(p)[0] == 0
    z.exit()


MAX_WRITE = 1 << 20  # zincfs(8): libfuse 3.14's request buffer, 256 pages


@pytest.mark.parametrize("off,size", [(0, 1 << 20), (8, 1 << 20), (0, 16 << 20), (8, 16 << 20)],
                         ids=["1MiB", "1MiB-unaligned", "16MiB", "16MiB-unaligned"])
def test_one_big_write_to_notify_makes_the_documented_notifications(zfs, off, size):
    """zincfs(8): a write(2) of n bytes from a buffer o bytes into a page
    notifies ceil((o + n) / 1 MiB) times (the kernel's FUSE write pieces),
    and returns the full count."""
    z = zfs.zinc().create("r")
    buf = mmap.mmap(-1, size + PAGE)  # page-aligned
    s0 = z.seq()
    fd = os.open(zfs.path("r.notify"), os.O_WRONLY)
    try:
        assert os.write(fd, memoryview(buf)[off:off + size]) == size
        want = -(-(off + size) // MAX_WRITE)
        assert z.seq() - s0 == want, f"{size} bytes at page offset {off}"
    finally:
        os.close(fd)
        buf.close()
    z.exit()
