# SPDX-License-Identifier: MIT
"""Contract fixes of issue 13, each a promise of zincfs(8): resizes are all
or nothing, what one write(2) to NAME.notify notifies, create without
O_EXCL never fails with EEXIST, any change of the counter wakes .wait
readers, and what splice(2)/sendfile(2) do with the control files."""
import errno
import mmap
import os
import re
import select
import struct
import subprocess

import pytest

from conftest import PAGE, finish, read_line, wait_blocked, wait_until
from test_hostile import LIBZINC, _sanitizer_env  # ctypes on a sanitized libzinc

PY = "/usr/bin/python3"
MAX_WRITE = 256 * PAGE  # libfuse 3.14's buffer: 256 pages (1 MiB)


def seq(zfs, name):
    return int(os.getxattr(zfs.path(name), "user.zinc.seq"))


# ---------------------------------------------------------------- resize

@pytest.mark.zincfs("region_size=8192")
def test_resize_that_fails_keeps_region_size_and_data(zfs):
    r = zfs.path("r")
    r.touch()
    data = bytes(range(256)) * 32  # 8 KiB
    r.write_bytes(data)
    before = zfs.obj("r").stat()
    # fill the region directory: the new region cannot get its memory
    filler = zfs.shm / "filler"
    with open(filler, "wb") as f:
        free = os.statvfs(zfs.shm).f_bavail * os.statvfs(zfs.shm).f_frsize
        os.posix_fallocate(f.fileno(), 0, free - 4 * PAGE)
    try:
        with pytest.raises(OSError) as e:
            os.truncate(r, 16 << 20)
        assert e.value.errno == errno.ENOSPC
        assert r.stat().st_size == 8192
        assert r.read_bytes() == data
        after = zfs.obj("r").stat()
        assert (after.st_ino, after.st_size) == (before.st_ino, before.st_size)
        assert {n for n in os.listdir(zfs.shm) if n != "filler"} == {"zinc_r"}
        zfs.path("r.notify").write_bytes(b"x")  # still a live region
        assert seq(zfs, "r") == 1
    finally:
        filler.unlink()


@pytest.mark.zincfs("region_size=8192")
def test_resize_keeps_data_up_to_the_smaller_size(zfs):
    r = zfs.path("r")
    r.touch()
    data = os.urandom(8192)
    r.write_bytes(data)
    zfs.path("r.notify").write_bytes(b"x")
    os.truncate(r, 4 * PAGE)  # grow
    got = r.read_bytes()
    assert len(got) == 4 * PAGE and got[:8192] == data and got[8192:] == bytes(4 * PAGE - 8192)
    os.truncate(r, PAGE)      # shrink
    assert r.read_bytes() == data[:PAGE]
    assert seq(zfs, "r") == 1  # the counter is carried over
    st = zfs.obj("r").stat()
    assert st.st_size == 2 * PAGE and oct(st.st_mode & 0o777) == "0o644"


# ---------------------------------------------------------------- .notify

# (offset of the buffer in its page, bytes): one write(2) each
WRITES = [(0, 1), (0, MAX_WRITE - 1), (0, MAX_WRITE), (0, MAX_WRITE + 1),
          (1, MAX_WRITE - 1), (1, MAX_WRITE), (PAGE - 1, 2), (0, 16 * MAX_WRITE),
          (8, 16 * MAX_WRITE), (100, 3 * MAX_WRITE)]


@pytest.mark.zincfs("debug")
def test_one_write_notifies_once_per_max_write_piece(zfs):
    """A write(2) of n bytes from a buffer o bytes into a page notifies
    ceil((o + n) / max_write) times; max_write is 1 MiB (logged)."""
    assert re.search(rf"max_write {MAX_WRITE}\b", zfs.log()), zfs.log()
    zfs.path("r").touch()
    buf = mmap.mmap(-1, 17 * MAX_WRITE)  # page aligned
    fd = os.open(zfs.path("r.notify"), os.O_WRONLY)
    try:
        for off, n in WRITES:
            s0 = seq(zfs, "r")
            assert os.write(fd, memoryview(buf)[off:off + n]) == n
            want = -(-(off + n) // MAX_WRITE)
            assert seq(zfs, "r") - s0 == want, (off, n)
    finally:
        os.close(fd)


def test_sendfile_and_splice_to_notify_notify_per_piece(zfs):
    """sendfile(2) moves data through a pipe of 16 pages: one notification
    per 64 KiB piece; splice(2) from a pipe: one per call."""
    zfs.path("r").touch()
    src = zfs.base / "src"
    src.write_bytes(b"x" * (1 << 20))
    fd = os.open(zfs.path("r.notify"), os.O_WRONLY)
    sfd = os.open(src, os.O_RDONLY)
    try:
        for n in (1, 16 * PAGE, 16 * PAGE + 1, 1 << 20):
            s0 = seq(zfs, "r")
            assert os.sendfile(fd, sfd, 0, n) == n
            assert seq(zfs, "r") - s0 == -(-n // (16 * PAGE)), n
        r, w = os.pipe()
        os.write(w, b"y" * (16 * PAGE))
        s0 = seq(zfs, "r")
        assert os.splice(r, fd, 16 * PAGE) == 16 * PAGE
        assert seq(zfs, "r") - s0 == 1
        os.close(r)
        os.close(w)
    finally:
        os.close(fd)
        os.close(sfd)


def test_splice_and_sendfile_from_wait_return_end_of_file(zfs):
    """The kernel serves splice reads of FUSE files from the page cache, up
    to the file size, even for direct_io files: NAME.wait (size 0) gives 0
    bytes at once and consumes nothing."""
    zfs.path("r").touch()
    wfd = os.open(zfs.path("r.wait"), os.O_RDONLY)
    dfd = os.open(zfs.path("r"), os.O_RDWR)
    out = os.open(zfs.base / "out", os.O_WRONLY | os.O_CREAT)
    r, w = os.pipe()
    try:
        for _ in range(2):  # with nothing pending, then with one pending
            assert os.splice(wfd, w, 64) == 0
            assert os.sendfile(out, wfd, None, 64) == 0
            assert os.copy_file_range(wfd, dfd, 64) == 0
            zfs.path("r.notify").write_bytes(b"x")
        assert os.read(wfd, 64) == b"2\n"  # nothing was consumed
    finally:
        for fd in (wfd, dfd, out, r, w):
            os.close(fd)


# ---------------------------------------------------------------- EEXIST

# libzinc creates and removes the name as fast as it can until stdin closes.
CHURN = r"""
import ctypes, os, select, sys
lib = ctypes.CDLL(sys.argv[1])
H = ctypes.c_void_p
lib.zinc_create.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.POINTER(H)]
lib.zinc_close.argtypes = [H]
h = H()
n = 0
print("ready", flush=True)
while not select.select([0], [], [], 0)[0]:
    if lib.zinc_create(b"x", int(sys.argv[2]), ctypes.byref(h)) == 0:
        lib.zinc_close(h)
        n += 1
print(n, flush=True)
"""


def test_create_without_excl_never_eexist_while_libzinc_churns(zfs):
    p = zfs.spawn([PY, "-c", CHURN, str(LIBZINC), str(PAGE)], stdin=subprocess.PIPE,
                  stdout=subprocess.PIPE, env=_sanitizer_env(zfs.env))
    assert read_line(p) == "ready"
    ok, errs = 0, {}
    for _ in range(200):
        try:
            fd = os.open(zfs.path("x"), os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as e:
            errs[errno.errorcode[e.errno]] = errs.get(errno.errorcode[e.errno], 0) + 1
            continue
        ok += 1
        os.close(fd)
        try:
            os.unlink(zfs.path("x"))
        except FileNotFoundError:
            pass
    rc, out, _ = finish(p)  # closes its stdin
    assert rc == 0 and int(out) > 0  # libzinc did create meanwhile
    assert "EEXIST" not in errs, errs
    # ESTALE: the name was replaced twice during one open (see zincfs(8))
    assert set(errs) <= {"EBUSY", "ESTALE"} and ok > 0, (ok, errs)


# ---------------------------------------------------------------- .wait

def bump_raw(zfs, name, by):
    """Move a region's counter without waking anyone (as a writer of its
    memory may)."""
    with open(zfs.obj(name), "r+b") as f, mmap.mmap(f.fileno(), PAGE) as m:
        (v,) = struct.unpack_from("<I", m, 12)
        struct.pack_into("<I", m, 12, (v + by) & 0xFFFFFFFF)
        return (v + by) & 0xFFFFFFFF


@pytest.mark.parametrize("jump", [2**31 + 1, 2**31 + 5, 2**32 - 1])
@pytest.mark.parametrize("how", ["mount", "libzinc"])
def test_wait_wakes_on_any_counter_change(zfs, jump, how):
    """A reader is answered whatever the counter moved by between two
    reads (zinc_wait compares for inequality too): here by jump - 1 without
    a wake, then by one notification."""
    z = zfs.zinc().create("r", PAGE)
    reader = zfs.spawn(["head", "-n1", str(zfs.path("r.wait"))], stdout=subprocess.PIPE)
    wait_blocked(reader.pid, "fuse")
    raw = bump_raw(zfs, "r", jump - 1)  # 2^31 or more away too
    want = (raw + 1) & 0xFFFFFFFF
    if how == "mount":
        zfs.path("r.notify").write_bytes(b"x")
    else:
        assert z.notify() == want
    rc, out, _ = finish(reader, 5)
    # the watcher may have seen the first move (if it was not asleep yet)
    assert rc == 0 and out in (f"{want}\n", f"{raw}\n"), (rc, out, raw, want)
    # a file opened now waits for the next change, not for older news
    fd = os.open(zfs.path("r.wait"), os.O_RDONLY | os.O_NONBLOCK)
    with pytest.raises(BlockingIOError):
        os.read(fd, 64)
    z.notify()
    wait_until(lambda: select.select([fd], [], [], 0)[0], 5, "POLLIN")
    assert os.read(fd, 64) == f"{(want + 1) & 0xFFFFFFFF}\n".encode()
    os.close(fd)
    z.exit()
