# SPDX-License-Identifier: MIT
"""Regression tests for daemon bugs found by the fuzzer and by flaky runs."""
import os
import select
import subprocess
import time

import pytest

from conftest import BUILD, PAGE, SLOW, proc_state, run, wait_until

PY = "/usr/bin/python3"

# Writers hammer x.notify while x's data file is open (so each write is
# answered after the data file's invalidation, off the worker), and a remover
# keeps creating x through the mount and removing its object underneath
# (each removal drops the kernel's entries for x, x.notify, x.wait).  Prints
# the number of completed .notify writes every 0.1 s.
NOTIFY_VS_DELETE = r"""
import os, sys, threading, time
mnt, shm, secs = sys.argv[1], sys.argv[2], float(sys.argv[3])
stop = time.monotonic() + secs
done = [0]

def writer():
    while time.monotonic() < stop:
        try:
            fd = os.open(os.path.join(mnt, "x.notify"), os.O_WRONLY)
        except OSError:
            time.sleep(0.0005)
            continue
        try:
            for _ in range(20):
                os.write(fd, b"1")
                done[0] += 1
        except OSError:
            time.sleep(0.0005)
        finally:
            os.close(fd)

def remover():
    while time.monotonic() < stop:
        try:
            fd = os.open(os.path.join(mnt, "x"), os.O_CREAT | os.O_RDWR, 0o600)
        except OSError:
            continue
        try:
            time.sleep(0.002)
            os.unlink(os.path.join(shm, "zinc_x"))
            time.sleep(0.002)
        except OSError:
            pass
        finally:
            os.close(fd)

ts = [threading.Thread(target=writer, daemon=True) for _ in range(3)]
ts.append(threading.Thread(target=remover, daemon=True))
for t in ts:
    t.start()
while any(t.is_alive() for t in ts):
    print(done[0], flush=True)
    time.sleep(0.1)
print("end", done[0], flush=True)
"""


def test_notify_write_vs_region_removal_no_deadlock(zfs):
    """A region removed while its .notify file is being written (data file
    open) must not deadlock: dropping the kernel's entries takes the
    .notify inode's lock, which the writer holds until its write is
    answered, so the entry drop must never queue in front of that answer
    (tests/fuzz/repro/notify_delete_deadlock.py)."""
    secs = 6
    c = zfs.spawn([PY, "-c", NOTIFY_VS_DELETE, str(zfs.mnt), str(zfs.shm), str(secs)],
                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    last, last_t = -1, time.monotonic()
    stalled = None
    while True:
        r, _, _ = select.select([c.stdout], [], [], 0.5)
        line = c.stdout.readline().decode() if r else ""
        if line.startswith("end"):
            last = int(line.split()[1])
            break
        now = time.monotonic()
        if line.strip().isdigit() and int(line) != last:
            last, last_t = int(line), now
        elif now - last_t > 3 * SLOW:
            stalled = (f"no .notify write completed for {now - last_t:.1f}s "
                       f"(after {last}); writer states: "
                       + " ".join(f"{t}:{proc_state(c.pid, t)}"
                                  for t in os.listdir(f"/proc/{c.pid}/task")))
            break
    if stalled:
        zfs.abort_connection()  # the only way out of the kernel deadlock
        c.kill()
        c.wait(10 * SLOW)
        zfs.kill()  # the daemon's thread is stuck in the kernel too
        raise AssertionError(stalled)
    c.wait(10 * SLOW)
    assert c.returncode == 0, c.stderr.read().decode()
    assert last > 0, f"no .notify write completed in {secs}s"
    # still serving afterwards
    os.close(os.open(zfs.path("after"), os.O_CREAT | os.O_WRONLY, 0o600))
    with open(zfs.path("after.notify"), "w") as f:
        f.write("1")


def test_resize_after_holder_was_sigkilled(zfs):
    """A libzinc holder killed with SIGKILL leaves the header's advisory
    ref_count high for ever; the resize decision must use the exact
    handle-lock probe (zinc_info.others), so the region can be resized once
    the holder is gone, and a live holder still gives EBUSY."""
    assert zfs.sh("touch held").returncode == 0
    z = zfs.zinc()
    z.open("held")
    assert z.stat("held")["refs"] >= 2  # zincfs's owner handle + z
    r = zfs.sh("truncate -s 64K held")
    assert r.returncode != 0 and "Device or resource busy" in r.stderr, r
    z.p.kill()
    z.p.wait(10 * SLOW)
    z2 = zfs.zinc()
    info = z2.stat("held")
    assert info["refs"] >= 2, info  # still counts the dead holder
    r = zfs.sh("truncate -s 64K held")
    assert r.returncode == 0, r.stderr
    assert os.stat(zfs.path("held")).st_size == 65536
    assert z2.stat("held")["capacity"] == 65536
    z2.open("held")  # a live holder again: EBUSY
    r = zfs.sh("truncate -s 8K held")
    assert r.returncode != 0 and "Device or resource busy" in r.stderr, r
    assert os.stat(zfs.path("held")).st_size == 65536
    z2.exit()


def test_exits_after_unmount_while_a_namespace_copy_exists(zfs):
    """`unshare --mount --propagation private` (tests/install does it; so
    may any sandboxed service) copies every mount, ours included, into a
    new namespace that `fusermount3 -u` here never reaches: the kernel
    keeps the session alive, and zincfs used to idle on ("zincfs did not
    exit after unmount").  It must exit 0 once its mount is gone here."""
    z = zfs.zinc().create("r", PAGE)
    holder = zfs.spawn(["unshare", "--mount", "--propagation", "private",
                        "sleep", "600"])

    def copied():
        try:
            if os.stat(f"/proc/{holder.pid}/ns/mnt").st_ino == os.stat(
                    "/proc/self/ns/mnt").st_ino:
                return False
            with open(f"/proc/{holder.pid}/mountinfo") as f:
                return f" {zfs.mnt} " in f.read()
        except OSError:
            return False
    wait_until(copied, 10, "the namespace copy of the mount")
    r = run(["fusermount3", "-u", str(zfs.mnt)])
    assert r.returncode == 0, r.stderr
    try:
        zfs.proc.wait(timeout=10 * SLOW)
    except subprocess.TimeoutExpired:
        raise AssertionError("zincfs did not exit after unmount while a copy of "
                             "its mount lives in another mount namespace")
    assert zfs.proc.returncode == 0
    assert "another mount namespace" in zfs.log()
    # the copy is dead now, not hanging: its users get an error at once
    r = run(["nsenter", "-t", str(holder.pid), "-m", "stat", str(zfs.mnt / "r")],
            timeout=10)
    assert r.returncode != 0, r
    z.exit()


def test_lazy_unmount_serves_open_files_until_closed(zfs):
    """A lazy unmount with files still open is not mistaken for the above:
    the open files keep working, and zincfs exits at the last close."""
    z = zfs.zinc().create("r", PAGE)
    fd = os.open(zfs.path("r"), os.O_RDWR)
    try:
        r = run(["umount", "-l", str(zfs.mnt)])
        assert r.returncode == 0, r.stderr
        time.sleep(1.5)  # longer than zincfs's own wait after the unmount
        assert zfs.proc.poll() is None, "zincfs exited with a file open"
        os.pwrite(fd, b"still here", 0)
        assert z.read(0, 10) == b"still here"
    finally:
        os.close(fd)
    zfs.proc.wait(timeout=10 * SLOW)
    assert zfs.proc.returncode == 0
    z.exit()


def _daemon_fds_on(zfs, ident):
    """Open fds of the daemon on the file whose (st_dev, st_ino) is ident
    (libzinc creates objects with O_TMPFILE: the link names no path)."""
    n = 0
    d = f"/proc/{zfs.proc.pid}/fd"
    for fd in os.listdir(d):
        try:
            st = os.stat(f"{d}/{fd}")
        except OSError:
            continue
        n += (st.st_dev, st.st_ino) == ident
    return n


def test_region_truncated_to_nothing_underneath_is_released(zfs):
    """A region made through the mount whose object is then truncated below
    its header page: closing zincfs's handle used to fault on the header
    and leak the handle (fd, mapping, memory; LeakSanitizer in the fuzzer).
    Once the kernel forgets the files, the handle must be gone."""
    zfs.expect_log(r"warning: ignoring .*zinc_t: size changed under an open region")
    with open(zfs.path("t"), "w") as f:
        f.write("x")
    st = os.stat(zfs.obj("t"))
    ident = (st.st_dev, st.st_ino)
    assert _daemon_fds_on(zfs, ident) == 1  # zincfs's owner handle
    os.truncate(zfs.obj("t"), 0)
    wait_until(lambda: "t" not in zfs.names(), 5, "t to disappear from the mount")
    wait_until(lambda: _daemon_fds_on(zfs, ident) == 0, 5,
               "zincfs to close its handle on the truncated region")
    assert zfs.proc.poll() is None


def test_unmount_right_after_closing_files_leaks_nothing(zfs):
    """The kernel sends RELEASE in the background after the last close and
    drops the queued ones when the unmount follows at once, so per-open
    state (.notify files, directory snapshots) must be freed at exit too.
    Under valgrind (ZINCFS_WRAPPER) a leak makes the daemon exit 99 and the
    fixture fail; the unmount happens in the fixture right after we return."""
    os.close(os.open(zfs.path("r"), os.O_CREAT | os.O_WRONLY, 0o600))  # zincfs owns it
    fds = [os.open(zfs.path("r.notify"), os.O_WRONLY) for _ in range(50)]
    fds += [os.open(zfs.mnt, os.O_RDONLY | os.O_DIRECTORY) for _ in range(20)]
    for fd in fds[:50]:
        os.write(fd, b"1")  # written: their release does not notify
    for fd in fds[50:]:
        os.listdir(fd)
    for fd in fds:
        os.close(fd)


@pytest.mark.zincfs(start=False)
def test_connection_ended_mid_request_is_a_clean_exit(zfs):
    """A worker that takes a request off the queue just as the unmount ends
    the connection reads ECONNABORTED, not ENODEV, and libfuse 3.14 calls
    that a failure: zincfs exited 1 after a plain unmount (seen once in CI
    under valgrind).  The race is rare; a preload makes every end of the
    connection look like it."""
    shim = BUILD / "tests" / "helpers" / "fuse-read-fault.so"
    assert shim.exists(), f"{shim} not built"
    zfs.env["LD_PRELOAD"] = str(shim)
    # an ASan daemon wants its runtime first in the library list
    zfs.env["ASAN_OPTIONS"] = os.environ.get("ASAN_OPTIONS", "") + ":verify_asan_link_order=0"
    zfs.start()
    z = zfs.zinc().create("r", PAGE)
    with open(zfs.path("r"), "r+b") as f:
        f.write(b"data")
    assert zfs.sh("echo > r.notify").returncode == 0
    z.exit()
    r = run(["fusermount3", "-u", str(zfs.mnt)])
    assert r.returncode == 0, r.stderr
    zfs.proc.wait(timeout=10 * SLOW)
    log = zfs.log()
    assert "ENODEV made ECONNABORTED" in log, log  # the shim did its part
    assert zfs.proc.returncode == 0, log
    assert "session loop failed" not in log, log
