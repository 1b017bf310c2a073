# SPDX-License-Identifier: MIT
"""zincfs's guardian (zincfs/guardian.c): a zincfs killed with SIGKILL never
leaves its clients hanging, even when it dies inside a page cache
invalidation; a clean exit leaves no guardian behind; the guardian holds
nothing that keeps the connection or the mount alive, and never aborts a
connection that is no longer its own."""
import os
import random
import signal
import subprocess
import sys
import time

import pytest

from conftest import (PAGE, SLOW, WRAPPER, ensure_fusectl, mountinfo_has, proc_state, run,
                      wait_blocked, wait_until)

PY = sys.executable
CONNS = "/sys/fs/fuse/connections"
SIZE = 16 * PAGE

# Dirties its shared mapping of NAME and writes NAME.notify in a loop: every
# notify makes zincfs invalidate NAME's page cache, which waits for the
# write-back of the dirty page.
WRITER = r"""
import errno, mmap, os, sys
mnt, name, size = sys.argv[1], sys.argv[2], int(sys.argv[3])
m = mmap.mmap(os.open(f"{mnt}/{name}", os.O_RDWR), size)
nf = os.open(f"{mnt}/{name}.notify", os.O_WRONLY)
i = 0
try:
    while True:
        for off in range(0, size, 4096):
            m[off:off + 8] = i.to_bytes(8, "little")
        os.write(nf, b"1")
        i += 1
        if i == 20:
            print("running", flush=True)
except OSError as e:
    print(errno.errorcode.get(e.errno, e.errno), flush=True)
    sys.exit(3)
"""

# Faults NAME's pages in through a read-only mapping, and reads NAME.
FAULTER = r"""
import errno, mmap, os, sys
mnt, name, size = sys.argv[1], sys.argv[2], int(sys.argv[3])
fd = os.open(f"{mnt}/{name}", os.O_RDONLY)
m = mmap.mmap(fd, size, prot=mmap.PROT_READ)
print("running", flush=True)
try:
    while True:
        s = sum(m[off] for off in range(0, size, 4096))
        os.pread(fd, size, 0)
except OSError as e:
    print(errno.errorcode.get(e.errno, e.errno), flush=True)
    sys.exit(3)
"""

# Reads NAME.wait in a loop (blocked between notifications).
WAITER = r"""
import errno, os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
print("running", flush=True)
try:
    while True:
        os.read(fd, 64)
except OSError as e:
    print(errno.errorcode.get(e.errno, e.errno), flush=True)
    sys.exit(3)
"""

# How a client may end once its zincfs is gone: an error from a call on the
# mount (exit 3), or SIGBUS from a mapping whose page cannot be read.
CLIENT_ENDS = {3, -signal.SIGBUS}


def guardian_of(pid):
    """pid of zincfs pid's guardian (its child named zincfs-guardian)."""
    found = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            stat = open(f"/proc/{d}/stat").read()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1:stat.rindex(")")]
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        if ppid == pid and comm == "zincfs-guardian":
            found.append(int(d))
    assert len(found) == 1, f"zincfs {pid} has guardians {found}"
    return found[0]


def gone(pid):
    return proc_state(pid) in (None, "Z", "X")


def conn_files_state():
    return f"fusectl mounted: {bool(mountinfo_has(CONNS))}"


def start_clients(zfs):
    clients = [zfs.spawn([PY, "-c", WRITER, str(zfs.mnt), "r", str(SIZE)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)]
    clients += [zfs.spawn([PY, "-c", FAULTER, str(zfs.mnt), "r", str(SIZE)],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    # One .wait reader of the busy region, one of a region nobody notifies
    # (surely blocked in zincfs when it dies).
    clients += [zfs.spawn([PY, "-c", WAITER, str(zfs.path(n))],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                for n in ("r.wait", "quiet.wait")]
    return clients


def kill_during_invalidation(zfs, rng):
    """One round: clients busy on the mount, kill -9 zincfs; every client
    and zincfs itself must be done within the deadline."""
    for n in ("r", "quiet"):
        os.close(os.open(zfs.path(n), os.O_CREAT | os.O_RDWR, 0o666))
    clients = start_clients(zfs)
    for c in clients:  # each has its files open (a loaded machine starts them late)
        line = c.stdout.readline().decode().strip()
        assert line == "running", (line, c.stderr.read().decode())
    wait_blocked(clients[-1].pid, "fuse", path=zfs.path("quiet.wait"))
    time.sleep(rng.uniform(0.05, 0.4))  # let the writer/invalidation race run
    daemon = zfs.proc
    guardian = guardian_of(daemon.pid)
    t0 = time.monotonic()
    zfs.kill(signal.SIGKILL, wait=False)
    deadline = t0 + 5 * SLOW
    while time.monotonic() < deadline and not (
            all(c.poll() is not None for c in clients) and daemon.poll() is not None):
        time.sleep(0.01)
    took = time.monotonic() - t0
    hung = [(c.args[2][:30].strip(), c.pid, proc_state(c.pid)) for c in clients
            if c.poll() is None]
    if hung or daemon.poll() is None:
        stuck = [(t, proc_state(daemon.pid, t)) for t in os.listdir(f"/proc/{daemon.pid}/task")] \
            if daemon.poll() is None else []
        zfs.abort_connection()  # let everything go before failing
        raise AssertionError(f"{took:.1f}s after kill -9 of zincfs: clients still "
                             f"running {hung}, zincfs tasks {stuck}; {conn_files_state()}")
    for c in clients:
        out, err = c.communicate()
        assert c.returncode in CLIENT_ENDS, (c.returncode, out, err)
        if c.returncode == 3:
            assert out.decode().strip() in ("ENOTCONN", "ECONNABORTED"), out
    wait_until(lambda: gone(guardian), 5, "the guardian to exit")
    zfs.lazy_unmount()
    return took


@pytest.mark.zincfs(f"region_size={SIZE}")
def test_sigkill_during_invalidation_releases_every_client_within_a_second(zfs):
    zfs.expect_log(r"zincfs-guardian: warning: zincfs \(pid \d+\) died")
    rng = random.Random()
    times = []
    for i in range(10):
        if i:
            zfs.start()
        times.append(kill_during_invalidation(zfs, rng))
    # "within about a second": most rounds end at once, none takes long.
    assert max(times) < 2 * SLOW, times


@pytest.mark.zincfs(f"region_size={SIZE}", start=False)
def test_sigkill_releases_clients_when_fusectl_was_not_mounted(zfs):
    """The guardian mounts the FUSE control file system itself."""
    zfs.expect_log(r"zincfs-guardian: warning: zincfs \(pid \d+\) died")
    if mountinfo_has(CONNS):
        if run(["umount", CONNS]).returncode:
            run(["umount", "-l", CONNS])  # a process holds a file of it
    assert not mountinfo_has(CONNS)
    zfs.start()
    kill_during_invalidation(zfs, random.Random())


@pytest.mark.parametrize("how", ["fusermount", "SIGTERM"])
def test_clean_exit_leaves_no_guardian(zfs, how):
    g = guardian_of(zfs.proc.pid)
    # Sensible in ps: its own name, and its mount as its argument.
    assert open(f"/proc/{g}/comm").read() == "zincfs-guardian\n"
    if not WRAPPER:  # (valgrind shows its own command line)
        assert open(f"/proc/{g}/cmdline").read().rstrip("\0") == f"zincfs-guardian {zfs.mnt}"
    if how == "fusermount":
        r = run(["fusermount3", "-u", str(zfs.mnt)])  # not -z: nothing keeps it busy
        assert r.returncode == 0, r.stderr
    else:
        zfs.proc.send_signal(signal.SIGTERM)
    assert zfs.proc.wait(10 * SLOW) == 0
    # zincfs reaped it before exiting, and it aborted nothing.
    assert not os.path.exists(f"/proc/{g}"), proc_state(g)
    assert "guardian" not in zfs.log(), zfs.log()


def test_guardian_holds_no_fuse_fd_nor_anything_of_the_mount(zfs):
    g = guardian_of(zfs.proc.pid)
    fds = {fd: os.readlink(f"/proc/{g}/fd/{fd}") for fd in os.listdir(f"/proc/{g}/fd")
           if not WRAPPER or int(fd) < 1024}  # valgrind's own are at the top
    daemon_log = os.readlink(f"/proc/{zfs.proc.pid}/fd/2")
    allowed = {"/dev/null", daemon_log, f"{CONNS}/{zfs.conn}/abort",
               f"{CONNS}/{zfs.conn}/waiting", "anon_inode:[signalfd]"}
    odd = {fd: t for fd, t in fds.items() if t not in allowed and not t.startswith("socket:")}
    assert not odd, fds
    assert "/dev/fuse" not in fds.values()
    assert os.readlink(f"/proc/{g}/cwd") == "/"
    assert os.getsid(g) == g  # a kill of zincfs's process group spares it
    # The mount works and unmounts normally with the guardian there.
    assert zfs.sh("echo hi > f && head -c3 f").stdout == "hi\n"


@pytest.mark.zincfs(start=False)
def test_late_guardian_leaves_a_new_mount_with_the_same_number_alone(zfs):
    """A guardian that wakes only after its connection has ended and a new
    mount got the same connection number must not abort the new one."""
    ensure_fusectl()
    placeholders, stopped = [], []
    try:
        for attempt in range(5):  # a mount elsewhere may take the number first
            zfs.start()
            old = zfs.conn
            g = guardian_of(zfs.proc.pid)
            os.kill(g, signal.SIGSTOP)
            stopped.append(g)
            zfs.kill(signal.SIGKILL)  # idle: dies at once; the dead mount is removed
            # Numbers are handed out lowest first: fill any free one below
            # ours with a tmpfs until the new mount gets ours.
            for i in range(64):
                zfs.start()
                if zfs.conn >= old:
                    break
                zfs.stop()
                ph = zfs.base / f"placeholder{attempt}.{i}"
                ph.mkdir()
                assert run(["mount", "-t", "tmpfs", "-o", "size=4k", "ph", str(ph)]).returncode == 0
                placeholders.append(ph)
            if zfs.conn == old:
                break
            zfs.stop()
        assert zfs.conn == old, "other mounts kept taking the old connection number"
        os.kill(g, signal.SIGCONT)
        wait_until(lambda: gone(g), 5, "the late guardian to exit")
        # The new connection was not aborted.
        assert zfs.sh("echo hi > f && head -c3 f").stdout == "hi\n"
        assert "aborted" not in zfs.log(all_daemons=True)
    finally:
        for g in stopped:
            if not gone(g):
                os.kill(g, signal.SIGKILL)
        for ph in placeholders:
            run(["umount", str(ph)])
