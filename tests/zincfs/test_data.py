# SPDX-License-Identifier: MIT
"""The data file NAME: read/write/pread/pwrite/dd at offsets, ENOSPC,
device-like O_TRUNC, mmap coherence at notification boundaries."""
import errno
import mmap
import os
import subprocess

import pytest

from conftest import PAGE, read_line, run, wait_blocked, wait_until


def pattern(n, seed=0):
    return bytes((i * 7 + seed) % 251 for i in range(n))


def test_read_whole_and_at_offsets(zfs):
    cap = 4 * PAGE
    z = zfs.zinc().create("rd", cap)
    data = pattern(cap)
    for off in range(0, cap, 1024):
        z.write(off, data[off:off + 1024])
    with open(zfs.path("rd"), "rb") as f:
        assert f.read() == data  # exactly capacity bytes, then EOF
        assert f.read() == b""
    fd = os.open(zfs.path("rd"), os.O_RDONLY)
    try:
        assert os.pread(fd, 100, 0) == data[:100]
        assert os.pread(fd, 300, PAGE - 150) == data[PAGE - 150:PAGE + 150]
        assert os.pread(fd, 100, cap - 10) == data[cap - 10:]  # short at the end
        assert os.pread(fd, 100, cap) == b""
        assert os.pread(fd, 100, cap + PAGE) == b""
        os.lseek(fd, 2 * PAGE + 5, os.SEEK_SET)
        assert os.read(fd, 7) == data[2 * PAGE + 5:2 * PAGE + 12]
    finally:
        os.close(fd)
    r = run(["cat", "rd"], cwd=zfs.mnt, text=False)
    assert r.returncode == 0 and r.stdout == data
    r = run(["dd", "if=rd", "bs=1", "skip=1000", "count=24", "status=none"],
            cwd=zfs.mnt, text=False)
    assert r.returncode == 0 and r.stdout == data[1000:1024], r.stderr
    r = run(["dd", f"if=rd", f"bs={PAGE}", "skip=3", "count=1", "status=none"],
            cwd=zfs.mnt, text=False)
    assert r.returncode == 0 and r.stdout == data[3 * PAGE:], r.stderr
    r = run(["head", "-c", "16", "rd"], cwd=zfs.mnt, text=False)
    assert r.stdout == data[:16]
    z.exit()


def test_write_pwrite_dd_reach_region(zfs):
    cap = 2 * PAGE
    z = zfs.zinc().create("wr", cap)
    fd = os.open(zfs.path("wr"), os.O_WRONLY)
    try:
        assert os.pwrite(fd, b"hello", 0) == 5
        assert os.pwrite(fd, b"mid", PAGE - 1) == 3  # across a page boundary
        os.lseek(fd, 100, os.SEEK_SET)
        assert os.write(fd, b"seek") == 4
        # write() is write-through: libzinc sees it at once
        assert z.read(0, 5) == b"hello"
        assert z.read(PAGE - 1, 3) == b"mid"
        assert z.read(100, 4) == b"seek"
    finally:
        os.close(fd)
    r = run(["dd", "of=wr", "bs=1", "seek=200", "conv=notrunc", "status=none"],
            input=b"dd-bytes", cwd=zfs.mnt, text=False)
    assert r.returncode == 0, r.stderr
    assert z.read(200, 8) == b"dd-bytes"
    r = run(["dd", "of=wr", f"bs={PAGE}", "seek=1", "conv=notrunc", "status=none"],
            input=b"\x07" * PAGE, cwd=zfs.mnt, text=False)
    assert r.returncode == 0, r.stderr
    assert z.read(PAGE, PAGE) == b"\x07" * PAGE
    assert os.stat(zfs.path("wr")).st_size == cap
    z.exit()


def test_write_at_or_past_end_enospc(zfs):
    cap = PAGE
    z = zfs.zinc().create("full", cap)
    fd = os.open(zfs.path("full"), os.O_WRONLY)
    try:
        for off in (cap, cap + 1, 10 * cap):
            with pytest.raises(OSError) as e:
                os.pwrite(fd, b"x", off)
            assert e.value.errno == errno.ENOSPC
        # straddling the end: cut short
        assert os.pwrite(fd, b"0123456789", cap - 4) == 4
        assert z.read(cap - 4, 4) == b"0123"
        os.lseek(fd, 0, os.SEEK_END)
        with pytest.raises(OSError) as e:
            os.write(fd, b"y")
        assert e.value.errno == errno.ENOSPC
    finally:
        os.close(fd)
    assert os.stat(zfs.path("full")).st_size == cap  # never grows
    # shell: cat big > NAME fails clearly, the region holds the first cap bytes
    big = zfs.base / "big"
    big.write_bytes(pattern(3 * cap, 5))
    r = zfs.sh(f"cat {big} > full")
    assert r.returncode != 0
    assert "No space left on device" in r.stderr, r.stderr
    assert z.read(0, cap) == pattern(3 * cap, 5)[:cap]
    r = zfs.sh("/usr/bin/printf x >> full")
    assert r.returncode != 0 and "No space left" in r.stderr, r.stderr
    assert os.stat(zfs.path("full")).st_size == cap
    z.exit()


def test_echo_redirect_keeps_tail(zfs):
    cap = PAGE
    z = zfs.zinc().create("dev", cap)
    z.fill(0, cap, ord("x"))
    r = zfs.sh("echo hi > dev")
    assert r.returncode == 0, r.stderr
    assert os.stat(zfs.path("dev")).st_size == cap
    assert z.read(0, cap) == b"hi\n" + b"x" * (cap - 3)
    with open(zfs.path("dev"), "rb") as f:
        assert f.read() == b"hi\n" + b"x" * (cap - 3)
    # O_TRUNC from Python, truncate to 0 and to the current size: ignored
    with open(zfs.path("dev"), "wb") as f:
        f.write(b"py")
    assert z.read(0, 4) == b"py\nx"
    for size in (0, cap):
        r = run(["truncate", "-s", str(size), str(zfs.path("dev"))])
        assert r.returncode == 0, r.stderr
        assert os.stat(zfs.path("dev")).st_size == cap
    os.truncate(zfs.path("dev"), 0)
    assert os.stat(zfs.path("dev")).st_size == cap
    assert z.read(0, 4) == b"py\nx"
    assert open(zfs.path("dev"), "rb").read() == b"py\n" + b"x" * (cap - 3)
    z.exit()


def test_mmap_sees_libzinc_writer_after_notification(zfs):
    cap = 2 * PAGE
    z = zfs.zinc().create("mm", cap)
    z.write(0, b"old-first")
    z.write(PAGE, b"old-second")
    fd = os.open(zfs.path("mm"), os.O_RDWR)
    wfd = os.open(zfs.path("mm.wait"), os.O_RDONLY)
    try:
        m = mmap.mmap(fd, cap, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        assert m[:9] == b"old-first"
        assert m[PAGE:PAGE + 10] == b"old-second"
        assert os.pread(fd, 9, 0) == b"old-first"  # page cache now warm
        z.write(0, b"NEW-FIRST")
        z.write(PAGE, b"NEW-SECOND")
        seq = z.notify()
        assert os.read(wfd, 64) == f"{seq}\n".encode()
        # whoever waited for the notification sees the data, through the
        # same mapping (no remap) and through read()
        assert m[:9] == b"NEW-FIRST"
        assert m[PAGE:PAGE + 10] == b"NEW-SECOND"
        assert os.pread(fd, 9, 0) == b"NEW-FIRST"
        m.close()
    finally:
        os.close(wfd)
        os.close(fd)
    z.exit()


def test_fresh_open_sees_libzinc_writes(zfs):
    """No FOPEN_KEEP_CACHE: opening NAME again shows what libzinc wrote, even
    without a notification."""
    z = zfs.zinc().create("fresh", PAGE)
    z.write(0, b"first")
    assert run(["head", "-c5", "fresh"], cwd=zfs.mnt).stdout == "first"
    z.write(0, b"again")
    assert run(["head", "-c5", "fresh"], cwd=zfs.mnt).stdout == "again"
    z.exit()


@pytest.mark.zincfs("-s")
def test_single_threaded_mmap_publish_and_wait(zfs):
    """-s (one libfuse thread): invalidation with dirty pages must not
    deadlock, blocked readers must not block the loop."""
    test_mmap_writer_publishes_to_libzinc_with_notify(zfs)
    z = zfs.zinc().create("st", PAGE)
    h = zfs.spawn(["head", "-n1", "st.wait"], cwd=str(zfs.mnt), stdout=subprocess.PIPE)
    wait_blocked(h.pid, "fuse")
    assert os.stat(zfs.path("st")).st_size == PAGE  # the loop still answers
    z.notify()
    assert h.communicate(timeout=10)[0] == b"1\n"
    z.exit()


def test_mmap_writer_publishes_to_libzinc_with_notify(zfs):
    cap = 2 * PAGE
    z = zfs.zinc().create("pub", cap)
    z.fill(0, cap, 0)
    fd = os.open(zfs.path("pub"), os.O_RDWR)
    try:
        m = mmap.mmap(fd, cap, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        for rnd in range(3):
            msg = f"round {rnd} via mmap".encode()
            z.send("wait 10000")
            wait_blocked(z.pid, "futex")
            m[0:len(msg)] = msg  # dirty the page cache, no msync
            m[PAGE + 10:PAGE + 10 + len(msg)] = msg
            r = zfs.sh("echo > pub.notify")
            assert r.returncode == 0, r.stderr
            seq = int(z.reply())
            assert seq == rnd + 1
            # the libzinc reader woke up: the data is there already
            assert z.read(0, len(msg)) == msg
            assert z.read(PAGE + 10, len(msg)) == msg
        m.close()
    finally:
        os.close(fd)
    z.exit()


def test_mount_created_region_mmap_roundtrip(zfs):
    """A region made through the mount, used by mmap on both sides."""
    r = zfs.sh("truncate -s 64K made")
    assert r.returncode == 0, r.stderr
    z = zfs.zinc()
    assert z.open("made") == 65536
    fd = os.open(zfs.path("made"), os.O_RDWR)
    wfd = os.open(zfs.path("made.wait"), os.O_RDONLY)
    try:
        m = mmap.mmap(fd, 65536)
        m[60000:60005] = b"apple"
        with open(zfs.path("made.notify"), "wb", buffering=0) as n:
            n.write(b"!")
        assert z.read(60000, 5) == b"apple"
        z.write(100, b"pear")
        z.notify()
        os.read(wfd, 64)
        assert m[100:104] == b"pear"
        m.close()
    finally:
        os.close(wfd)
        os.close(fd)
    z.exit()


def test_inotifywait_sees_changes_through_the_mount(zfs):
    z = zfs.zinc().create("watched", PAGE)
    wait_until(lambda: "watched" in zfs.names(), 1.0)
    iw = zfs.spawn(["inotifywait", "-m", "-e", "modify,close_write,create,delete",
                    "--format", "%e %f", str(zfs.mnt)],
                   stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    # inotifywait says so on stderr once its watches are in place
    err = b""
    while b"Watches established" not in err:
        chunk = os.read(iw.stderr.fileno(), 4096)
        assert chunk, f"inotifywait failed: {err!r}"
        err += chunk
    def events_until(last):
        seen = []
        while last not in seen:
            seen.append(read_line(iw, 5))
        return seen
    assert zfs.sh("echo hi > watched").returncode == 0
    assert "MODIFY watched" in events_until("CLOSE_WRITE,CLOSE watched")
    assert zfs.sh("touch fresh").returncode == 0
    events_until("CREATE fresh")
    assert zfs.sh("rm fresh").returncode == 0
    events_until("DELETE fresh")
    assert z.read(0, 3) == b"hi\n"
    z.exit()


def fill_through_mount(zfs, name, data):
    fd = os.open(zfs.path(name), os.O_WRONLY)
    try:
        for off in range(0, len(data), 1 << 20):
            assert os.pwrite(fd, data[off:off + (1 << 20)], off) == len(data[off:off + (1 << 20)])
    finally:
        os.close(fd)


def test_read_after_notify_returns_the_regions_bytes_at_every_edge(zfs):
    """READs reach zincfs with the caller's offsets and sizes (O_DIRECT) and
    as page-cache refills after a notification (read and mmap): every one
    gives the region's bytes, short at the end, nothing past it, also for
    reads larger than max_read (split by the kernel) and below two pages
    (libfuse copies those instead of splicing)."""
    cap = 3 * (1 << 20) + 2 * PAGE  # more than 3 x max_read
    z = zfs.zinc().create("edge", cap)
    data = pattern(cap, seed=3)
    fill_through_mount(zfs, "edge", data)
    fd = os.open(zfs.path("edge"), os.O_RDONLY | os.O_DIRECT)
    try:
        for off, size in [(0, cap), (0, 1), (5, 2 * PAGE + 7), (PAGE - 1, 3 * PAGE + 2),
                          (7, (2 << 20) + 9), (cap - PAGE - 3, PAGE + 3),
                          (cap - 10, 100), (cap - 1, 1), (cap - 3 * PAGE, 8 * PAGE),
                          (cap, 100), (cap + PAGE, 3 * PAGE), (1 << 40, PAGE)]:
            assert os.pread(fd, size, off) == data[off:off + size], (off, size)
    finally:
        os.close(fd)
    fd = os.open(zfs.path("edge"), os.O_RDONLY)
    nfd = os.open(zfs.path("edge.notify"), os.O_WRONLY)
    try:
        m = mmap.mmap(fd, cap, mmap.MAP_SHARED, mmap.PROT_READ)
        for seed in (4, 5):
            assert m[:] == data and os.pread(fd, cap + PAGE, 0) == data  # cached
            data = pattern(cap, seed)
            z.write(cap - PAGE - 5, data[cap - PAGE - 5:])   # behind the cache,
            z.write(0, data[:PAGE + 1])                       # at both ends
            z.fill(PAGE + 1, cap - 2 * PAGE - 6, 0)           # and between
            data = data[:PAGE + 1] + bytes(cap - 2 * PAGE - 6) + data[cap - PAGE - 5:]
            assert os.write(nfd, b"x") == 1
            got = b"".join(os.pread(fd, 1 << 20, off) for off in range(0, cap, 1 << 20))
            assert got == data
            assert os.write(nfd, b"x") == 1
            assert m[:] == data  # the mapping's first touch after the notify
            assert m[cap - 1:] == data[cap - 1:]
        m.close()
    finally:
        os.close(nfd)
        os.close(fd)
    z.exit()
