# SPDX-License-Identifier: MIT
"""Bounded resources per daemon, whatever users do (issue 13, item 3).

zincfs runs as root with allow_other; the attacker is a real unprivileged
second user (setpriv, uid ATTACKER) who may plant objects in the region
directory (a private tmpfs, mode 1777) and use the mount.  Each test is one
attack, in bounded rounds, and checks what it costs zincfs (address space,
file descriptors, memory, log lines) and that root is still served.
"""
import errno
import os
import re
import resource
import signal
import struct
import subprocess
import time

import pytest

from conftest import PAGE, SLOW, finish, mountinfo_has, read_line, run, wait_until, WRAPPER

ATTACKER = 4243
PYTHON = "/usr/bin/python3"
MAGIC = 0x5A494E435F524547
VERSION = 2
TIB = 1 << 40

pytestmark = pytest.mark.zincfs("allow_other")

# Writes count region objects NAME{i} of capacity cap (sparse), or with
# bad=1 objects with a wrong magic, into the region directory.
PLANT = r"""
import os, struct, sys
d, name, count, cap, bad = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
page = os.sysconf("SC_PAGE_SIZE")
magic = 0x4141414141414141 if bad else 0x5A494E435F524547
hdr = struct.pack("<QHHIQ", magic, 2, 0, 0, cap).ljust(page, b"\0")
for i in range(count):
    fd = os.open(f"{d}/zinc_{name}{i}", os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    os.ftruncate(fd, page + cap)
    os.pwrite(fd, hdr, 0)
    os.close(fd)
"""


def as_attacker(zfs, args, uid=ATTACKER, **kw):
    """Start a process as the attacker (stdout piped)."""
    return zfs.spawn(["setpriv", f"--reuid={uid}", f"--regid={uid}",
                      "--clear-groups", *args], stdout=subprocess.PIPE, **kw)


def attacker_run(zfs, args, timeout=30):
    p = as_attacker(zfs, args, stderr=subprocess.PIPE)
    rc, out, err = finish(p, timeout)
    assert rc == 0, f"attacker {args[:3]}: rc {rc}\n{out}\n{err}"
    return out


def plant(zfs, name, count, cap=PAGE, bad=False):
    attacker_run(zfs, [PYTHON, "-c", PLANT, str(zfs.shm), name, str(count), str(cap),
                       str(int(bad))])


def nfds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def object_fds(pid, zfs):
    """zincfs's fds and mappings of objects in the region directory."""
    fds = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            fds += os.readlink(f"/proc/{pid}/fd/{fd}").startswith(str(zfs.shm) + "/")
        except OSError:
            pass
    with open(f"/proc/{pid}/maps") as f:
        maps = sum(f" {zfs.shm}/" in line for line in f)
    return fds, maps


def objects_mapped(pid, zfs):
    """Bytes of objects in the region directory that zincfs maps."""
    total = 0
    with open(f"/proc/{pid}/maps") as f:
        for line in f:
            if f" {zfs.shm}/" in line:
                lo, hi = line.split()[0].split("-")
                total += int(hi, 16) - int(lo, 16)
    return total


def status_kb(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise AssertionError(f"no {key} in /proc/{pid}/status")


def root_still_served(zfs, name="rootreg"):
    """Root creates, writes, reads, notifies and waits on a region."""
    path = zfs.path(name)
    with open(path, "w+b", buffering=0) as f:
        f.write(b"hello")
        assert os.pread(f.fileno(), 5, 0) == b"hello"
    wfd = os.open(zfs.path(name + ".wait"), os.O_RDONLY)
    try:
        with open(zfs.path(name + ".notify"), "wb", buffering=0) as n:
            n.write(b"!")
        assert os.read(wfd, 64)
    finally:
        os.close(wfd)
    os.unlink(path)


# Holds every file of argv[2:] (or argv[2] repeated argv[3] times, for a
# directory) open, prints how many opened and how many failed with which
# errno, then waits for stdin to close.
HOLD = r"""
import os, sys, collections
mnt, what = sys.argv[1], sys.argv[2]
fds, errs = [], collections.Counter()
if what == "dir":
    paths = [mnt] * int(sys.argv[3])
else:
    paths = [f"{mnt}/{n}" for n in what.split(",")]
for p in paths:
    try:
        fds.append(os.open(p, os.O_RDONLY | (os.O_DIRECTORY if what == "dir" else 0)))
    except OSError as e:
        errs[e.errno] += 1
print(len(fds), dict(errs), flush=True)
sys.stdin.read()
"""


def hold(zfs, what, n=0, uid=ATTACKER):
    p = as_attacker(zfs, [PYTHON, "-c", HOLD, str(zfs.mnt), what, str(n)],
                    uid=uid, stdin=subprocess.PIPE)
    opened, errs = read_line(p, 30).split(" ", 1)
    return p, int(opened), eval(errs)  # a dict literal from our own script


def release(p):
    assert finish(p)[0] == 0  # closes its stdin


@pytest.mark.zincfs("allow_other", "user_files=10")
def test_a_user_holds_at_most_user_files_open_files_and_others_are_served(zfs):
    fd = os.open(zfs.path("pub"), os.O_RDWR | os.O_CREAT, 0o666)
    os.fchmod(fd, 0o666)
    files = ["pub", "pub.wait"] * 8  # one region: one fd of ours
    p, opened, errs = hold(zfs, ",".join(files))
    assert (opened, errs) == (10, {errno.EMFILE: 6})
    # Another user and root are not counted with it.
    q, opened2, errs2 = hold(zfs, ",".join(files[:10]), uid=ATTACKER + 1)
    assert (opened2, errs2) == (10, {})
    mine = [os.open(zfs.path("pub"), os.O_RDONLY) for _ in range(20)]
    release(q)
    release(p)
    # The count follows the releases, which reach zincfs after close().
    def served_again():
        p, opened, errs = hold(zfs, ",".join(files[:10]))
        release(p)
        return opened == 10
    wait_until(served_again, 10, "the user's files to be counted out")
    for m in mine + [fd]:
        os.close(m)
    zfs.expect_log(r"uid \d+ holds 10 open files")


def test_huge_sparse_objects_cost_zincfs_no_address_space(zfs):
    pid = zfs.proc.pid
    plant(zfs, "huge", 100, cap=TIB)
    # The attacker looks every one up and holds them all open.
    names = [f"huge{i}" for i in range(100)]
    p, opened, errs = hold(zfs, ",".join(names))
    assert opened == 100, errs
    mapped = objects_mapped(pid, zfs)
    assert mapped <= 100 * PAGE, f"zincfs maps {mapped} bytes of 100 objects of 1 TiB"
    for n in names[:5]:
        assert os.stat(zfs.path(n)).st_size == TIB
        with open(zfs.path(n), "rb") as f:
            assert f.read(8) == bytes(8)
    root_still_served(zfs)
    release(p)


def nofile_limits(pid):
    with open(f"/proc/{pid}/limits") as f:
        for line in f:
            if line.startswith("Max open files"):
                return tuple(int(v) for v in line.split()[3:5])
    raise AssertionError("no open files limit")


@pytest.mark.zincfs("allow_other", start=False)
def test_looking_up_many_regions_costs_a_bounded_number_of_fds(zfs):
    # Started with a low soft limit, zincfs raises it to the hard one.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(256, hard), hard))
    try:
        zfs.start()
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    pid = zfs.proc.pid
    if not WRAPPER:  # valgrind emulates setrlimit: /proc shows its own limit
        assert nofile_limits(pid) == (hard, hard)
    base = nfds(pid)
    # 512 fds for zincfs: the old zincfs kept one per region looked up.
    run(["prlimit", f"--pid={pid}", "--nofile=512:512"]).check_returncode()
    plant(zfs, "many", 1500)
    out = attacker_run(zfs, ["sh", "-c", f"ls -l {zfs.mnt} | grep -c ' many'"])
    assert int(out) == 1500 * 3
    # Every region's attributes still come; root's stat and open work.
    assert os.stat(zfs.path("many7")).st_size == PAGE
    assert nfds(pid) <= base + 300, nfds(pid)
    root_still_served(zfs)
    with open(zfs.path("many3"), "rb") as f:  # its handle was closed when idle
        assert f.read(4) == bytes(4)


@pytest.mark.zincfs("allow_other", start=False)
def test_a_user_holding_regions_open_cannot_take_roots_open_files(zfs):
    zfs.start()
    pid = zfs.proc.pid
    plant(zfs, "h", 300)
    with open(zfs.path("h0"), "r+b") as mine:
        run(["prlimit", f"--pid={pid}", "--nofile=128:128"]).check_returncode()
        p, opened, errs = hold(zfs, ",".join(f"h{i}" for i in range(1, 300)))
        # The attacker got what fds there were, then EMFILE for its own opens.
        assert opened < 128 and set(errs) <= {24, 23}, (opened, errs)
        # A listing is whole or refused, never short of names.
        try:
            assert len(zfs.listing()) == 3 * 300
        except OSError as e:
            assert e.errno in (errno.EMFILE, errno.ENFILE), e
        # Root's open file still works.
        mine.write(b"root")
        mine.flush()
        assert os.pread(mine.fileno(), 4, 0) == b"root"
        release(p)

        # Once the attacker closed its files (their releases reach zincfs
        # a moment later), root opens regions again.
        def root_served():
            try:
                root_still_served(zfs)
                return True
            except OSError as e:
                assert e.errno == errno.EMFILE, e
                return False
        wait_until(root_served, 10, "root's region to work")
    assert zfs.proc.poll() is None


@pytest.mark.zincfs("allow_other", start=False)
def test_sigterm_with_every_fd_taken_exits_cleanly(zfs):
    zfs.start()
    pid = zfs.proc.pid
    plant(zfs, "t", 100)
    run(["prlimit", f"--pid={pid}", "--nofile=48:48"]).check_returncode()
    p, opened, errs = hold(zfs, ",".join(f"t{i}" for i in range(100)))
    assert errs, f"zincfs never ran out of fds ({opened} opened)"
    assert zfs.kill(signal.SIGTERM) == 0, zfs.log()
    assert not mountinfo_has(zfs.mnt)
    assert "pthread_cancel" not in zfs.log()


def test_directory_handles_share_their_listing(zfs):
    pid = zfs.proc.pid
    plant(zfs, "d", 5000)
    assert len(zfs.listing()) == 3 * 5000
    rss = status_kb(pid, "VmRSS")
    p, opened, errs = hold(zfs, "dir", 1000)
    assert opened == 1000, errs
    grown = status_kb(pid, "VmRSS") - rss
    assert grown < 32 << 10, f"1,000 directory handles took {grown} kB"
    # A name made after those opendirs shows on the next one, through the
    # mount and planted directly.
    (zfs.mnt / "late").write_bytes(b"x")
    plant(zfs, "planted", 1)
    names = set(zfs.listing())
    assert {"late", "late.wait", "planted0"} <= names and len(names) == 3 * 5002
    release(p)
    os.unlink(zfs.path("late"))


# Opens the mount's directory count times, changing the region directory
# before each opendir so that no listing can be shared.
DIRCHURN = r"""
import os, sys
mnt, shm, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
fds, fails = [], 0
for i in range(n):
    open(f"{shm}/churn{i}", "w").close()
    try:
        fds.append(os.open(mnt, os.O_RDONLY | os.O_DIRECTORY))
    except OSError:
        fails += 1
print(len(fds), fails, flush=True)
sys.stdin.read()
"""


def test_directory_handles_over_a_changing_directory_take_bounded_memory(zfs):
    pid = zfs.proc.pid
    plant(zfs, "c", 2000)
    rss = status_kb(pid, "VmRSS")
    p = as_attacker(zfs, [PYTHON, "-c", DIRCHURN, str(zfs.mnt), str(zfs.shm), "1000"],
                    stdin=subprocess.PIPE)
    opened, fails = map(int, read_line(p, 50).split())
    grown = status_kb(pid, "VmRSS") - rss
    # About 8 MB here (more with sanitizers); the old zincfs took 264 bytes
    # a name and handle, over 500 MB.
    assert grown < 64 << 10, f"{opened} directory handles took {grown} kB"
    assert opened >= 100, (opened, fails)  # the first ones all got a listing
    release(p)
    # With the handles gone, listings are served again.
    assert len([n for n in zfs.listing() if n.startswith("c")]) == 3 * 2000


def test_a_flood_of_warnings_is_counted_not_logged_line_by_line(zfs):
    plant(zfs, "bad", 2000, bad=True)
    assert not [n for n in zfs.listing() if n.startswith("bad")]
    zfs.stop()
    log = zfs.log()
    shown = re.findall(r"^zincfs: warning: ignoring .*zinc_bad\d+: wrong magic", log, re.M)
    counted = [int(n) for n in re.findall(r"(\d+) more like this", log)]
    counted += [int(n) for n in re.findall(r"(\d+) more messages like \"ignoring", log)]
    assert len(shown) <= 20, f"{len(shown)} warning lines"
    assert len(shown) + sum(counted) == 2000, (len(shown), counted)


# Rewrites its own region object: truncate to 0, then a whole region again,
# for the given seconds.
REWRITE = r"""
import os, struct, sys, time
path, secs = sys.argv[1], float(sys.argv[2])
page = os.sysconf("SC_PAGE_SIZE")
obj = struct.pack("<QHHIQ", 0x5A494E435F524547, 2, 0, 0, page).ljust(2 * page, b"\0")
fd = os.open(path, os.O_RDWR)
end, n = time.monotonic() + secs, 0
while time.monotonic() < end:
    os.ftruncate(fd, 0)
    os.pwrite(fd, obj, 0)
    n += 1
print(n, flush=True)
"""


def test_lookups_racing_a_truncating_writer_leak_nothing(zfs):
    pid = zfs.proc.pid
    plant(zfs, "race", 4)
    paths = [zfs.path(f"race{i}") for i in range(4)]
    for p in paths:
        os.stat(p)
    assert object_fds(pid, zfs) == (4, 4)  # one handle, one header page each
    writers = [as_attacker(zfs, [PYTHON, "-c", REWRITE, str(zfs.obj(f"race{i}")),
                                 str(3 * SLOW)]) for i in range(4)]
    lookups = 0
    while any(w.poll() is None for w in writers):
        for p in paths:
            try:
                os.stat(p)
                with open(p, "rb") as f:
                    f.read(1)
            except OSError:
                pass
            lookups += 1
    for w in writers:
        assert finish(w)[0] == 0
    assert lookups > 100
    # Settled: every region is whole again and looked up once more.  The
    # kernel may still hold entries of regions replaced meanwhile, so
    # zincfs may hold a handle for each of those too, but nothing more.
    for p in paths:
        wait_until(lambda: os.path.exists(p), 5, f"{p} to be served again")
    fds, maps = object_fds(pid, zfs)
    assert fds <= 8 and maps <= fds, (fds, maps)


def test_a_region_replaced_while_its_handle_was_idle_is_served_anew(zfs):
    # More regions looked up than idle handles are kept (256): the first
    # ones lose their handles.
    plant(zfs, "i", 300)
    for i in range(300):
        os.stat(zfs.path(f"i{i}"))
    # Replace i0 by a region of another capacity, remove i1.
    os.unlink(zfs.obj("i0"))
    os.unlink(zfs.obj("i1"))
    plant(zfs, "i", 1, cap=2 * PAGE)  # a new i0
    fd = os.open(zfs.obj("i0"), os.O_WRONLY)
    os.pwrite(fd, b"new i0", PAGE + PAGE)  # its second data page
    os.close(fd)
    wait_until(lambda: os.stat(zfs.path("i0")).st_size == 2 * PAGE, 5,
               "the new i0 to be served")
    # Its bytes, not the old handle's.  (Its inode number may be the old
    # one's: zincfs reuses a number once the kernel has forgotten it.)
    with open(zfs.path("i0"), "rb") as f:
        f.seek(PAGE)
        assert f.read(6) == b"new i0"
    wait_until(lambda: not os.path.exists(zfs.path("i1")), 5, "i1 to go")
    with open(zfs.path("i2"), "rb") as f:
        assert f.read(4) == bytes(4)


# Takes read locks on every byte of each object named that no write lock
# holds (all it can do with read access: the owner's write lock on byte 1
# stays), says so, and holds them until stdin closes.
READLOCK = r"""
import fcntl, os, struct, sys
fds = []
for path in sys.argv[1:]:
    fd = os.open(path, os.O_RDONLY)
    for start, length in ((0, 0), (0, 1), (2, 0)):
        try:
            fcntl.fcntl(fd, getattr(fcntl, "F_OFD_SETLK", 37),
                        struct.pack("hhqqi4x", fcntl.F_RDLCK, os.SEEK_SET, start, length, 0))
        except BlockingIOError:
            continue
    fds.append(fd)
print("locked", flush=True)
sys.stdin.read()
"""


def test_a_users_read_locks_never_make_root_wait(zfs):
    plant(zfs, "theirs", 1)
    with open(zfs.path("ours"), "w+b") as f:  # made through the mount: zincfs owns it
        f.write(b"x")
    os.chmod(zfs.obj("ours"), 0o644)
    os.stat(zfs.path("theirs0"))
    p = as_attacker(zfs, [PYTHON, "-c", READLOCK, str(zfs.obj("ours")),
                          str(zfs.obj("theirs0"))], stdin=subprocess.PIPE)
    assert read_line(p) == "locked"
    slowest = 0.0
    t0 = time.monotonic()
    os.unlink(zfs.path("ours"))  # unlink, then zincfs closes its owner handle
    slowest = time.monotonic() - t0

    def owner_handle_closed():
        for fd in os.listdir(f"/proc/{zfs.proc.pid}/fd"):
            try:
                if os.readlink(f"/proc/{zfs.proc.pid}/fd/{fd}").startswith(
                        str(zfs.obj("ours"))):
                    return False
            except OSError:
                pass
        return True
    # Root's requests meanwhile, until zincfs has closed its owner handle
    # (under its lock, when the kernel forgets the removed file).
    start = time.monotonic()
    while time.monotonic() - start < 1 or not owner_handle_closed():
        assert time.monotonic() - start < 10 * SLOW, "the owner handle stays open"
        t0 = time.monotonic()
        os.stat(zfs.path("theirs0"))
        with open(zfs.path("theirs0"), "rb") as f:
            f.read(1)
        slowest = max(slowest, time.monotonic() - t0)
    assert not os.path.exists(zfs.path("ours"))
    assert slowest < 0.5, f"a request took {slowest:.2f}s"
    release(p)
