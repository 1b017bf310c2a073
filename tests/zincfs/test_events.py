# SPDX-License-Identifier: MIT
"""MOUNT/.events: one stream of lines for every region of the mount
(zincfs(8), THE EVENTS FILE): `NAME SEQ` for a counter that moved
(coalesced per region), `+NAME SEQ` for a region that appeared, `-NAME` for
one that went away; blocking reads, O_NONBLOCK, poll/select/epoll, EINTR,
a backlog bounded per region, and both ways zincfs watches counters
(io_uring futex waits, or futex_waitv threads with ZINCFS_NO_IO_URING=1)."""
import errno
import os
import pwd
import re
import select
import signal
import struct
import subprocess
import time

import pytest

import conftest
from conftest import (PAGE, POLLER, SLOW, finish, read_line, threads_of, wait_blocked,
                      wait_until)

PY = "/usr/bin/python3"
PIPES = dict(stdout=subprocess.PIPE, stderr=subprocess.PIPE)
WATCHERS = ["io_uring", "futex_waitv"]
# The environment each way of watching counters is started with; "polling"
# is the 5 ms fallback of kernels without futex_waitv (< 5.16).
WATCHER_ENV = {
    "io_uring": {},
    "futex_waitv": {"ZINCFS_NO_IO_URING": "1"},
    "polling": {"ZINCFS_NO_IO_URING": "1", "ZINCFS_NO_FUTEX_WAITV": "1"},
}


def use_watcher(request, zfs):
    if request.param == "futex_waitv" and conftest.WRAPPER:
        # valgrind 3.19 answers futex_waitv (syscall 449) with ENOSYS, so
        # zincfs would run its 5 ms polling fallback for old kernels, not
        # this watcher: the plain and ASan runs test the futex_waitv one.
        pytest.skip("the daemon's wrapper has no futex_waitv")
    want = WATCHER_ENV[request.param]
    if any(zfs.env.get(k) != want.get(k) for k in set(WATCHER_ENV["polling"])):
        for k in WATCHER_ENV["polling"]:
            zfs.env.pop(k, None)
        zfs.env.update(want)
        zfs.remount()
    if request.param == "polling":  # the fallback really runs
        assert "polling counters every 5 ms" in zfs.log(), zfs.log()
    return request.param


@pytest.fixture(params=WATCHERS)
def watcher(request, zfs):
    """Run the test against either way of watching counters."""
    return use_watcher(request, zfs)


@pytest.fixture(params=WATCHERS + ["polling"])
def any_watcher(request, zfs):
    """Also against the polling fallback (cheap tests only: it is slow)."""
    return use_watcher(request, zfs)


class Events:
    """An open .events file read line by line with deadlines."""

    def __init__(self, zfs, flags=0):
        self.fd = os.open(zfs.mnt / ".events", os.O_RDONLY | flags)
        self.buf = b""

    def close(self):
        os.close(self.fd)

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    def line(self, timeout=5.0):
        deadline = time.monotonic() + timeout * SLOW
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            assert left > 0, f"no .events line in {timeout}s (have {self.buf!r})"
            r, _, _ = select.select([self.fd], [], [], left)
            if r:
                chunk = os.read(self.fd, 65536)
                assert chunk, "EOF on .events"
                self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line.decode()

    def lines_until(self, done, timeout=10.0):
        """Lines read until done(lines) holds."""
        got = []
        while not done(got):
            got.append(self.line(timeout))
        return got

    def pending(self):
        """Everything readable now, without blocking, as lines."""
        p = select.poll()
        p.register(self.fd, select.POLLIN)
        while p.poll(0):
            self.buf += os.read(self.fd, 65536)
        assert self.buf.endswith(b"\n") or not self.buf
        out, self.buf = self.buf.decode().splitlines(), b""
        return out


def make(zfs, *names, mode=0o644):
    for n in names:
        os.close(os.open(zfs.path(n), os.O_CREAT | os.O_WRONLY, mode))


def notify_through_mount(zfs, name, times=1):
    fd = os.open(zfs.path(f"{name}.notify"), os.O_WRONLY)
    try:
        for _ in range(times):
            os.write(fd, b"x")
    finally:
        os.close(fd)


def notify_with_libzinc(zfs, names, times=1):
    """zinc_notify from another process, outside the mount: zincfs learns of
    these only through its watcher."""
    z = zfs.zinc()
    for i in range(0, len(names), 200):
        batch = names[i:i + 200]
        for n in batch:
            z.send(f"open {n}")
            z.send(f"notify {times}")
        for _ in batch:
            z.reply()
            z.reply()
    z.exit()


def test_events_file_is_listed_read_only_and_stays(zfs):
    make(zfs, "a")
    assert ".events" in os.listdir(zfs.mnt)
    r = zfs.sh("ls; echo ---; ls -a")
    plain, every = r.stdout.split("---\n")
    assert ".events" not in plain.split() and ".events" in every.split()
    st = os.stat(zfs.mnt / ".events")
    assert oct(st.st_mode & 0o7777) == "0o444"
    with pytest.raises(OSError) as e:
        os.open(zfs.mnt / ".events", os.O_WRONLY)
    assert e.value.errno in (errno.EACCES, errno.EPERM)
    with pytest.raises(OSError) as e:
        os.unlink(zfs.mnt / ".events")
    assert e.value.errno == errno.EPERM
    with Events(zfs) as ev:  # seeks succeed and change nothing, as on .wait
        os.lseek(ev.fd, 0, os.SEEK_SET)


def test_head_n1_prints_the_next_line_and_exits_0(zfs):
    make(zfs, "a", "b")
    head = zfs.spawn(["head", "-n1", str(zfs.mnt / ".events")], stdout=subprocess.PIPE,
                     stderr=subprocess.PIPE)
    wait_blocked(head.pid, "fuse")
    notify_through_mount(zfs, "b")
    rc, out, err = finish(head)
    assert (rc, out, err) == (0, "b 1\n", "")


def test_notify_gives_name_and_seq_line(zfs, any_watcher):
    make(zfs, "a", "b")
    with Events(zfs) as ev:
        assert ev.pending() == []  # the regions there at open are no news
        notify_through_mount(zfs, "a")
        assert ev.line() == "a 1"
        notify_with_libzinc(zfs, ["b"], 3)
        assert ev.line() == "b 3"
        assert ev.pending() == []


def test_moves_coalesce_into_one_line_per_region(zfs):
    make(zfs, "a", "b")
    with Events(zfs) as ev:
        notify_through_mount(zfs, "a", 5)  # published when write() returns
        notify_through_mount(zfs, "b", 2)
        notify_through_mount(zfs, "a", 1)
        assert sorted(ev.pending()) == ["a 6", "b 2"]


def test_unread_backlog_stays_one_line_per_region(zfs, watcher):
    names = [f"r{i}" for i in range(3)]
    make(zfs, *names)
    with Events(zfs) as ev:
        notify_with_libzinc(zfs, names, 2000)
        # the watcher may publish in steps; wait for the last values
        seen = {}
        while any(seen.get(n) != 2000 for n in names):
            name, seq = ev.line().split()
            seen[name] = int(seq)
        # now a burst of 6,000 more notifications, none of them read yet
        notify_with_libzinc(zfs, names, 2000)
        deadline = time.monotonic() + 5 * SLOW
        lines = []
        while any(seen[n] != 4000 for n in names):
            assert time.monotonic() < deadline, lines
            for line in ev.pending():
                lines.append(line)
                name, seq = line.split()
                seen[name] = int(seq)
        # a line per region for each read that found it moved (the watcher
        # may still publish while we read), never one per notification
        assert len(lines) <= 3 * 3, lines


def test_created_and_removed_regions_give_plus_and_minus_lines(zfs, any_watcher):
    with Events(zfs) as ev:
        make(zfs, "m")  # through the mount
        assert ev.line() == "+m 0"
        z = zfs.zinc().create("x", PAGE)  # outside it: inotify
        assert ev.line() == "+x 0"
        z.notify(2)
        assert ev.line() == "x 2"
        os.unlink(zfs.path("m"))
        assert ev.line() == "-m"
        z.exit()  # the owner's close removes x
        assert ev.line() == "-x"
        # removed and made again before any read: the removal comes first
        make(zfs, "y")
        assert ev.line() == "+y 0"
        os.unlink(zfs.path("y"))
        make(zfs, "y")
        lines = ev.lines_until(lambda got: "+y 0" in got)
        assert lines == ["-y", "+y 0"]
        # made and removed between two reads: nothing to say
        make(zfs, "gone")
        os.unlink(zfs.path("gone"))
        notify_through_mount(zfs, "y")
        assert ev.lines_until(lambda got: "y 1" in got)[-1] == "y 1"
        assert all("gone" not in l for l in ev.pending())


def test_thousands_of_regions_every_move_reported(zfs, watcher):
    n = 2000
    names = [f"t{i}" for i in range(n)]
    make(zfs, *names)
    with Events(zfs) as ev:
        moved = names[::3]
        notify_with_libzinc(zfs, moved)
        want = {f"{m} 1" for m in moved}
        got = set(ev.lines_until(lambda g: want <= set(g), timeout=20))
        assert got == want
        assert ev.pending() == []


READER = r"""
import os, sys
want = int(sys.argv[2])
fd = os.open(sys.argv[1], os.O_RDONLY)
print("open", flush=True)
seen, buf = set(), b""
while len(seen) < want:
    buf += os.read(fd, 4096)
    *lines, buf = buf.split(b"\n")
    seen |= {l.split()[0] for l in lines}
print(len(seen), flush=True)
"""


def test_many_concurrent_readers_each_see_every_region(zfs, watcher):
    n = 300
    names = [f"c{i}" for i in range(n)]
    make(zfs, *names)
    readers = [zfs.spawn([PY, "-c", READER, str(zfs.mnt / ".events"), str(n)], **PIPES)
               for _ in range(8)]
    for c in readers:
        assert read_line(c) == "open"
    notify_with_libzinc(zfs, names)
    for c in readers:
        rc, out, err = finish(c, timeout=20)
        assert (rc, out) == (0, f"{n}\n"), err


@pytest.mark.parametrize("mode", ["poll", "select", "epoll"])
def test_poll_select_epoll_report_readiness(zfs, mode):
    make(zfs, "a")
    with Events(zfs) as ev:
        p = select.poll()
        p.register(ev.fd, select.POLLIN)
        assert p.poll(0) == []
        pollers = [zfs.spawn([PY, "-c", POLLER, mode, str(zfs.mnt / ".events"), *nb],
                             **PIPES) for nb in ((), ("nonblock",))]
        for c in pollers:
            assert read_line(c) == "open"
            wait_blocked(c.pid, "poll")
        notify_with_libzinc(zfs, ["a"])
        for c in pollers:
            rc, out, err = finish(c)
            assert (rc, out.split()) == (0, ["ready", "a", "1"]), err
        wait_until(lambda: p.poll(0), 2, "POLLIN on the test's own fd")
        assert ev.pending() == ["a 1"]
        assert p.poll(0) == []


def test_nonblocking_read_gives_eagain_until_a_move(zfs):
    make(zfs, "a")
    with Events(zfs, os.O_NONBLOCK) as ev:
        with pytest.raises(BlockingIOError):
            os.read(ev.fd, 64)
        notify_through_mount(zfs, "a")
        assert os.read(ev.fd, 64) == b"a 1\n"
        with pytest.raises(BlockingIOError):
            os.read(ev.fd, 64)


def test_short_reads_return_a_line_in_pieces(zfs):
    make(zfs, "abcdef")
    with Events(zfs) as ev:
        notify_through_mount(zfs, "abcdef")
        assert [os.read(ev.fd, 3) for _ in range(3)] == [b"abc", b"def", b" 1\n"]
        notify_through_mount(zfs, "abcdef")
        assert os.read(ev.fd, 1) == b"a"
        assert os.read(ev.fd, 64) == b"bcdef 2\n"  # the rest of that line only


def test_signals_interrupt_a_blocked_read(zfs):
    make(zfs, "a")
    t0 = time.monotonic()
    r = zfs.sh("timeout 1 cat .events", timeout=10)
    assert r.returncode == 124, r
    assert time.monotonic() - t0 < 1.0 + 0.6 * SLOW
    # a handler that returns: EINTR, Python restarts the read (PEP 475)
    code = ("import os, signal, sys\n"
            "signal.signal(signal.SIGUSR1, lambda *a: print('sig', flush=True))\n"
            "fd = os.open(sys.argv[1], os.O_RDONLY)\n"
            "print('open', flush=True)\n"
            "print(os.read(fd, 64).decode().strip(), flush=True)\n")
    c = zfs.spawn([PY, "-c", code, str(zfs.mnt / ".events")], **PIPES)
    assert read_line(c) == "open"
    wait_blocked(c.pid, "fuse")
    c.send_signal(signal.SIGUSR1)
    assert read_line(c) == "sig"
    wait_blocked(c.pid, "fuse")
    notify_through_mount(zfs, "a")
    assert read_line(c) == "a 1"
    assert finish(c)[0] == 0


def test_shell_while_read_loop_supervises_every_region(zfs, any_watcher):
    make(zfs, "cam1", "cam2", "stop")
    script = ('while read name seq; do echo "$name=$seq"; '
              '[ "$name" = stop ] && break; done < .events')
    c = zfs.spawn(["bash", "-c", script], cwd=str(zfs.mnt), **PIPES)
    wait_blocked(c.pid, "fuse")
    notify_through_mount(zfs, "cam2", 2)
    notify_with_libzinc(zfs, ["cam1"])
    # the loop may read between the two writes to cam2 (then cam2=1 first)
    got = []
    while not {"cam1=1", "cam2=2"} <= set(got):
        got.append(read_line(c))
    assert set(got) <= {"cam1=1", "cam2=1", "cam2=2"}, got
    notify_through_mount(zfs, "stop")
    assert read_line(c) == "stop=1"
    assert finish(c)[0] == 0


def test_watching_lasts_only_while_events_is_open(zfs, watcher):
    n = 500
    names = [f"w{i}" for i in range(n)]
    make(zfs, *names)
    z = zfs.zinc()
    sample = names[::50] + names[-1:]
    waiters = lambda: {zfs.used.add(m) or z.stat(m)["waiters"] for m in sample}
    threads_before = threads_of(zfs.proc.pid)
    assert waiters() == {0}
    with Events(zfs) as ev:
        assert waiters() == {1}  # zincfs announced itself on every counter
        threads = threads_of(zfs.proc.pid)
        if watcher == "io_uring":
            assert threads <= threads_before + 1, (threads_before, threads)
        else:
            assert threads >= threads_before + n // 127, (threads_before, threads)
        notify_with_libzinc(zfs, names[-1:])
        assert ev.line() == f"{names[-1]} 1"
    wait_until(lambda: waiters() == {0}, 5, "zincfs to stop watching")
    z.exit()


@pytest.mark.zincfs("allow_other", "user_files=2")
def test_events_opens_count_toward_user_files(zfs):
    code = ("import os, sys\n"
            "fds = []\n"
            "try:\n"
            "    for _ in range(3): fds.append(os.open(sys.argv[1], os.O_RDONLY))\n"
            "except OSError as e: print(e.errno)\n")
    r = subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                        PY, "-c", code, str(zfs.mnt / ".events")],
                       capture_output=True, text=True, timeout=10 * SLOW)
    assert (r.returncode, r.stdout.strip()) == (0, str(errno.EMFILE)), r.stderr


NOBODY_READER = r"""
import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
print("open", flush=True)
print(os.read(fd, 4096).decode().strip(), flush=True)
"""


@pytest.mark.zincfs("allow_other")
def test_a_user_hears_only_of_regions_it_may_read(zfs):
    make(zfs, "private", "public")
    os.chmod(zfs.path("private"), 0o600)
    os.chmod(zfs.path("public"), 0o644)
    c = zfs.spawn(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                   PY, "-c", NOBODY_READER, str(zfs.mnt / ".events")], **PIPES)
    assert read_line(c) == "open"
    wait_blocked(c.pid, "fuse")
    make(zfs, "secret", mode=0o600)  # root's, made while nobody reads
    notify_through_mount(zfs, "private", 3)
    notify_through_mount(zfs, "secret")
    notify_through_mount(zfs, "public", 2)
    rc, out, err = finish(c)
    # the reader may wake between the two writes to public
    assert rc == 0 and out in ("public 1\n", "public 2\n"), (out, err)


def set_acl(path, user_perm, uid, mode_bits):
    """A POSIX access ACL: owner rw, the named user uid user_perm, group and
    others from mode_bits (the mask is the group's bits)."""
    g, o = (mode_bits >> 3) & 7, mode_bits & 7
    entries = [(0x01, 6, 0xFFFFFFFF), (0x02, user_perm, uid), (0x04, g, 0xFFFFFFFF),
               (0x10, g | user_perm, 0xFFFFFFFF), (0x20, o, 0xFFFFFFFF)]
    os.setxattr(path, "system.posix_acl_access",
                struct.pack("<I", 2) + b"".join(struct.pack("<HHI", *e) for e in entries))


@pytest.mark.zincfs("allow_other")
def test_who_hears_of_a_region_is_who_may_open_it_acls_included(zfs):
    """Exactly those who may open NAME through the mount hear of it: the
    mode bits (default_permissions) and the object's ACL (checked as the
    caller) both apply."""
    nobody = pwd.getpwnam("nobody").pw_uid
    make(zfs, "denied", "granted", "public")
    os.chmod(zfs.path("public"), 0o644)
    # 0644 by its mode, but an ACL entry takes all rights from nobody
    set_acl(zfs.obj("denied"), 0, nobody, 0o044)
    # an ACL entry lets nobody read, but the mode the mount checks is 0600
    set_acl(zfs.obj("granted"), 4, nobody, 0o000)
    for name, ok in (("denied", False), ("granted", False), ("public", True)):
        r = subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                            "head", "-c1", str(zfs.path(name))], **PIPES)
        assert (r.returncode == 0) == ok, (name, r.stderr)
    c = zfs.spawn(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                   PY, "-c", NOBODY_READER, str(zfs.mnt / ".events")], **PIPES)
    assert read_line(c) == "open"
    wait_blocked(c.pid, "fuse")
    notify_through_mount(zfs, "denied", 3)
    notify_through_mount(zfs, "granted", 2)
    notify_through_mount(zfs, "public")
    rc, out, err = finish(c)
    assert rc == 0 and out == "public 1\n", (out, err)


@pytest.mark.zincfs(start=False)
def test_events_watch_at_most_half_the_file_limit(zfs, monkeypatch):
    """One open of .events must not take every file descriptor of zincfs:
    it watches at most half of its file limit (a region it watches holds
    one).  The limit is set before zincfs starts (a wrapper such as
    valgrind keeps a few descriptors of it for itself)."""
    monkeypatch.setattr(conftest, "WRAPPER", ["prlimit", "--nofile=256:256"] + conftest.WRAPPER)
    zfs.start()
    names = [f"h{i}" for i in range(200)]
    make(zfs, *names)
    zfs.expect_log(r"is not watched for \.events")
    with Events(zfs) as ev:
        for n in names:
            notify_through_mount(zfs, n)
        lines = ev.pending()
    m = re.search(r"is not watched for \.events: (\d+) regions are", zfs.log())
    assert m, zfs.log()
    watched = int(m.group(1))
    assert 100 <= watched <= 128, watched
    assert len(lines) == watched and all(l.endswith(" 1") for l in lines), lines
    assert os.stat(zfs.path(names[-1])).st_size == PAGE  # still served


def test_region_truncated_underneath_reads_as_removed(zfs, watcher):
    """An object truncated under a watched region (its counter page gone)
    is no region any more: readers are told it went away, and zincfs goes
    on watching the others."""
    zfs.expect_log(r"warning: ignoring .*zinc_t: size changed under an open region")
    make(zfs, "t", "ok")
    with Events(zfs) as ev:
        os.truncate(zfs.obj("t"), 0)
        assert ev.line() == "-t"
        notify_with_libzinc(zfs, ["ok"])
        assert ev.line() == "ok 1"
    assert zfs.proc.poll() is None
