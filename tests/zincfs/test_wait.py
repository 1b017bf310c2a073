# SPDX-License-Identifier: MIT
"""NAME.notify and NAME.wait: shell forms, blocking reads (proven blocked
before every notification), cursors, O_NONBLOCK, poll/select/epoll, lseek,
interrupts, EIDRM, and the seed's producer/consumer across libzinc and files."""
import errno
import os
import select
import signal
import subprocess
import sys
import time

import pytest

from conftest import (CONSUMER, PAGE, POLLER, PRODUCER, SLOW, ZincError, finish, read_line,
                      run, wait_blocked, wait_until)

PY = "/usr/bin/python3"
PIPES = dict(stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def spawn_reader(zfs, script):
    """A shell snippet reading from the mount (cwd = mount)."""
    return zfs.spawn(["sh", "-c", script], cwd=str(zfs.mnt), **PIPES)


def read_soon(fd, timeout=1.0):
    """Non-blocking read of a .wait fd after a libzinc zinc_notify(): zincfs
    sees those through its watcher (and invalidates the data file's cache
    first), so allow it a moment.  (Notifications through the mount must be
    visible when write() returns: test_notify_visible_when_write_returns.)"""
    def attempt():
        try:
            return os.read(fd, 64)
        except BlockingIOError:
            return None
    return wait_until(attempt, timeout, "the watcher to publish the notification")


def libzinc_waiter(zfs, name):
    """A second libzinc process with a fresh cursor, ready to zinc_wait."""
    w = zfs.zinc()
    w.open(name)
    try:
        w.cmd("trywait")  # libzinc cursors start at 0: catch up
    except ZincError as e:
        assert e.errno == errno.EAGAIN
    return w


@pytest.mark.parametrize("script,count", [
    ("echo > r.notify", 1),
    ("echo hello world > r.notify", 1),
    ('echo -n "" > r.notify', 1),
    (": > r.notify", 1),
    ("touch r.notify", 1),
    ("echo a > r.notify; echo b >> r.notify", 2),
    ("/usr/bin/printf x > r.notify", 1),
])
def test_notify_shell_forms(zfs, script, count):
    z = zfs.zinc().create("r", PAGE)
    z.notify(3)
    w = libzinc_waiter(zfs, "r")
    w.send("wait 10000")
    wait_blocked(w.pid, "futex")
    r = zfs.sh(script)
    assert r.returncode == 0, r.stderr
    assert int(w.reply()) >= 4  # the libzinc waiter woke up
    # (a notification for an open without write may come at release, which
    # the kernel sends after close() returned: await it)
    wait_until(lambda: z.seq() >= 3 + count, 1.0, "the notification")
    assert z.seq() == 3 + count, f"{script!r} must be exactly {count} notification(s)"
    w.exit()
    z.exit()


def test_each_write_is_one_notification(zfs):
    z = zfs.zinc().create("r", PAGE)
    fd = os.open(zfs.path("r.notify"), os.O_WRONLY)
    try:
        assert os.write(fd, b"one") == 3
        assert z.seq() == 1
        os.write(fd, b"two")
        os.write(fd, b"x" * 10000)
        assert z.seq() == 3
    finally:
        os.close(fd)
    assert z.seq() == 3  # closing after writes adds nothing
    fd = os.open(zfs.path("r.notify"), os.O_WRONLY)
    os.close(fd)  # an open+close without a write (echo -n "") is one
    wait_until(lambda: z.seq() == 4, 1.0, "notification at close")
    # reading the notify file is refused
    with pytest.raises(OSError) as e:
        os.open(zfs.path("r.notify"), os.O_RDONLY)
    assert e.value.errno in (errno.EACCES, errno.EPERM, errno.EINVAL)
    with pytest.raises(OSError) as e:
        os.open(zfs.path("r.wait"), os.O_WRONLY)
    assert e.value.errno in (errno.EACCES, errno.EPERM, errno.EINVAL)
    z.exit()


@pytest.mark.parametrize("notifier", ["libzinc", "echo"])
def test_head_blocks_until_next_notification(zfs, notifier):
    z = zfs.zinc().create("r", PAGE)
    z.notify(5)  # counter 5 before anyone opens r.wait
    heads = [spawn_reader(zfs, "exec head -n1 r.wait") for _ in range(3)]
    for h in heads:
        wait_blocked(h.pid, "fuse")
    assert all(h.poll() is None for h in heads)
    if notifier == "libzinc":
        assert z.notify() == 6
    else:
        assert zfs.sh("echo > r.notify").returncode == 0
    for h in heads:
        rc, out, err = finish(h)
        assert (rc, out, err) == (0, "6\n", "")
    z.exit()


def test_cursor_per_open_file(zfs):
    z = zfs.zinc().create("r", PAGE)
    fd1 = os.open(zfs.path("r.wait"), os.O_RDONLY | os.O_NONBLOCK)
    try:
        z.notify()
        assert read_soon(fd1) == b"1\n"
        fd2 = os.open(zfs.path("r.wait"), os.O_RDONLY | os.O_NONBLOCK)
        try:
            with pytest.raises(BlockingIOError):
                os.read(fd2, 64)  # opened after the notification
            z.notify(4)
            assert read_soon(fd2) == b"5\n"  # coalesced
            assert os.read(fd1, 64) == b"5\n"
            for fd in (fd1, fd2):
                with pytest.raises(BlockingIOError):
                    os.read(fd, 64)
        finally:
            os.close(fd2)
    finally:
        os.close(fd1)
    z.exit()


def test_nonblocking_eagain(zfs):
    z = zfs.zinc().create("r", PAGE)
    z.notify(2)
    fd = os.open(zfs.path("r.wait"), os.O_RDONLY | os.O_NONBLOCK)
    try:
        with pytest.raises(OSError) as e:
            os.read(fd, 64)
        assert e.value.errno == errno.EAGAIN
        assert zfs.sh("echo > r.notify").returncode == 0
        assert read_soon(fd) == b"3\n"  # strict version: test below
        with pytest.raises(BlockingIOError):
            os.read(fd, 64)
        z.notify()
        assert read_soon(fd) == b"4\n"
        with pytest.raises(BlockingIOError):
            os.read(fd, 64)
    finally:
        os.close(fd)
    z.exit()


def test_notify_visible_when_write_returns(zfs):
    """Once write() on NAME.notify returned, the notification is made, so an
    O_NONBLOCK read of NAME.wait must not say EAGAIN ("nothing pending"),
    and poll() must report POLLIN at once."""
    z = zfs.zinc().create("r", PAGE)
    fd = os.open(zfs.path("r.wait"), os.O_RDONLY | os.O_NONBLOCK)
    nfd = os.open(zfs.path("r.notify"), os.O_WRONLY)
    p = select.poll()
    p.register(fd, select.POLLIN)
    misses = []
    try:
        for i in range(1, 301):
            os.write(nfd, b"x")
            try:
                got = os.read(fd, 64)
            except BlockingIOError:
                misses.append(f"read after notify {i}: EAGAIN")
                got = read_soon(fd)
            assert got == f"{i}\n".encode()
        for i in range(301, 601):
            os.write(nfd, b"x")
            if not p.poll(0):
                misses.append(f"poll after notify {i}: no POLLIN")
            assert read_soon(fd) == f"{i}\n".encode()
    finally:
        os.close(nfd)
        os.close(fd)
    assert not misses, f"{len(misses)} misses: {misses[:5]}"
    z.exit()


@pytest.mark.parametrize("mode", ["poll", "select", "epoll"])
@pytest.mark.parametrize("notifier", ["libzinc", "echo"])
def test_poll_select_epoll(zfs, mode, notifier):
    z = zfs.zinc().create("r", PAGE)
    z.notify(7)
    fd = os.open(zfs.path("r.wait"), os.O_RDONLY)
    try:
        p = select.poll()
        p.register(fd, select.POLLIN)
        assert p.poll(0) == []  # nothing pending at open
        pollers = [zfs.spawn([PY, "-c", POLLER, mode, str(zfs.path("r.wait")), *nb],
                             **PIPES) for nb in ((), ("nonblock",))]
        for c in pollers:
            assert read_line(c) == "open"
            wait_blocked(c.pid, "poll")
        if notifier == "libzinc":
            z.notify()
        else:
            assert zfs.sh("echo > r.notify").returncode == 0
        for c in pollers:
            rc, out, err = finish(c)
            assert (rc, out.split()) == (0, ["ready", "8"]), err
        wait_until(lambda: p.poll(0), 2, "POLLIN on the test's own fd")
        assert p.poll(0)[0][1] & select.POLLIN
        assert os.read(fd, 64) == b"8\n"
        assert p.poll(0) == []
    finally:
        os.close(fd)
    z.exit()


def test_lseek_succeeds_and_is_ignored(zfs):
    z = zfs.zinc().create("r", PAGE)
    fd = os.open(zfs.path("r.wait"), os.O_RDONLY | os.O_NONBLOCK)
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        os.lseek(fd, 1000, os.SEEK_SET)
        os.lseek(fd, -2, os.SEEK_CUR)
        os.lseek(fd, 0, os.SEEK_END)
        z.notify(12)
        assert read_soon(fd) == b"12\n"  # whole value despite the offset
        os.lseek(fd, 1, os.SEEK_SET)
        assert zfs.sh("echo > r.notify").returncode == 0
        assert read_soon(fd) == b"13\n"
    finally:
        os.close(fd)
    z.exit()


@pytest.mark.parametrize("shell", ["bash", "dash"])
def test_while_read_loop_sees_every_burst(zfs, shell):
    """bash reads .wait in blocks and seeks back; dash's read builtin reads
    one byte per read(): a short read must not lose the rest of the line."""
    z = zfs.zinc().create("r", PAGE)
    loop = zfs.spawn([shell, "-c", 'while read seq; do echo "got $seq"; done < r.wait; '
                                   'echo "loop ended"'], cwd=str(zfs.mnt), **PIPES)
    seen = []
    total = 0
    for burst in (1, 5, 20, 3):
        wait_blocked(loop.pid, "fuse")  # the shell itself is in read
        total = z.notify(burst)
        while True:  # coalesced: intermediate values may show, the last must
            line = read_line(loop, 3)
            seen.append(int(line.split()[1]))
            if seen[-1] == total:
                break
    assert seen == sorted(set(seen)), f"not strictly increasing: {seen}"
    wait_blocked(loop.pid, "fuse")
    assert zfs.sh("echo > r.notify").returncode == 0
    assert read_line(loop) == f"got {total + 1}"
    # removing the region ends the loop: read fails with EIDRM
    wait_blocked(loop.pid, "fuse")
    assert zfs.sh("rm r").returncode == 0
    rc, out, err = finish(loop)
    assert out == "loop ended\n"
    if shell == "bash":  # dash's read reports no error message
        assert "Identifier removed" in err, err
    z.exit()


def test_timeout_interrupts_blocked_read(zfs):
    z = zfs.zinc().create("r", PAGE)
    t0 = time.monotonic()
    r = zfs.sh("timeout 1 cat r.wait", timeout=10)
    dt = time.monotonic() - t0
    assert r.returncode == 124, r
    assert 0.9 < dt < 1.0 + 0.6 * SLOW, f"took {dt:.3f}s"
    # SIGKILL, SIGTERM and SIGINT end blocked readers at once
    for sig in (signal.SIGKILL, signal.SIGTERM, signal.SIGINT):
        c = spawn_reader(zfs, "exec cat r.wait")
        wait_blocked(c.pid, "fuse")
        t0 = time.monotonic()
        c.send_signal(sig)
        c.wait(timeout=5 * SLOW)
        assert c.returncode == -sig
        assert time.monotonic() - t0 < 0.5 * SLOW
    # a Python reader whose signal handler returns: the read is restarted
    # (PEP 475) and still gets the next notification
    code = ("import os, signal, sys\n"
            "signal.signal(signal.SIGUSR1, lambda *a: print('sig', flush=True))\n"
            "fd = os.open(sys.argv[1], os.O_RDONLY)\n"
            "print('open', flush=True)\n"
            "print(os.read(fd, 64).decode().strip(), flush=True)\n")
    c = zfs.spawn([PY, "-c", code, str(zfs.path("r.wait"))], **PIPES)
    assert read_line(c) == "open"
    wait_blocked(c.pid, "fuse")
    c.send_signal(signal.SIGUSR1)
    assert read_line(c) == "sig"
    wait_blocked(c.pid, "fuse")
    z.notify()
    assert read_line(c) == "1"
    assert finish(c)[0] == 0
    # the daemon still serves waiters after all those interrupts
    h = spawn_reader(zfs, "exec head -n1 r.wait")
    wait_blocked(h.pid, "fuse")
    z.notify()
    assert finish(h)[:2] == (0, "2\n")
    z.exit()


@pytest.mark.parametrize("remover", ["rm", "zinc_unlink", "last_close"])
def test_eidrm_after_removal(zfs, remover):
    z = zfs.zinc().create("r", PAGE)
    z.notify()
    fd = os.open(zfs.path("r.wait"), os.O_RDONLY | os.O_NONBLOCK)
    cats = [spawn_reader(zfs, "exec cat r.wait") for _ in range(2)]
    for c in cats:
        wait_blocked(c.pid, "fuse")
    if remover == "rm":
        assert zfs.sh("rm r").returncode == 0
    elif remover == "zinc_unlink":
        z.cmd("unlink r")
    else:
        z.close()
    try:
        for c in cats:
            rc, out, err = finish(c)
            assert rc != 0 and "Identifier removed" in err, (rc, out, err)
        with pytest.raises(OSError) as e:
            os.read(fd, 64)
        assert e.value.errno == errno.EIDRM
    finally:
        os.close(fd)
    wait_until(lambda: zfs.names() == set(), 1.0, "entries gone")
    z.exit()


def test_libzinc_producer_to_shell_consumer(zfs):
    """The seed's producer (libzinc) feeding a consumer made of files."""
    prod = zfs.spawn([str(PRODUCER), "feed", "12", "150"], **PIPES)
    assert read_line(prod).startswith("sent message 1 ")
    wait_until(lambda: os.path.exists(zfs.path("feed.wait")), 2, "feed in the mount")
    cons = zfs.spawn(["bash", "-c", "while read seq; do head -n1 feed | tr -d '\\0'; "
                                    "done < feed.wait"], cwd=str(zfs.mnt), **PIPES)
    got = []
    while True:
        try:
            line = read_line(cons, 10)
        except AssertionError:
            break
        if line:
            got.append(line)
    rc, out, err = finish(cons)
    assert rc == 0
    assert "Identifier removed" in err or "No such file" in err, err
    nums = [int(l.split()[1]) for l in got if l.startswith("message ")]
    assert len(nums) >= 5, got
    assert nums == sorted(nums) and nums[-1] >= 11, got
    assert finish(prod, 15)[0] == 0


def test_shell_producer_to_libzinc_consumer(zfs):
    """Files as the producer, the seed's consumer (libzinc) reading."""
    assert zfs.sh("touch feed").returncode == 0  # zincfs owns it
    cons = zfs.spawn([str(CONSUMER), "feed", "3", "10000"], **PIPES)
    for i in range(1, 4):
        wait_blocked(cons.pid, "futex")
        r = zfs.sh(f"printf 'message {i}\\n' > feed && echo > feed.notify")
        assert r.returncode == 0, r.stderr
        assert read_line(cons) == f"seq {i}: message {i}"
    assert finish(cons) == (0, "", "")
    assert "feed" in zfs.names()  # the consumer's close did not remove it
