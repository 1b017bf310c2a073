#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Repro (found by zincfs_fuzz.py, seed 1): zincfs deadlocks when a region
is removed while NAME.notify is being written and NAME's data file is open.

Why: with the data file open, a write to NAME.notify is answered by a job on
the control thread (watcher.c: J_NOTIFY).  Removing the region queues a
J_DELETE job on the same thread, which calls fuse_lowlevel_notify_delete();
the kernel then takes the directory's and NAME.notify's inode locks.  The
writer holds NAME.notify's inode lock while it waits for its WRITE reply,
which is queued behind the J_DELETE: the control thread blocks forever, all
later .notify writes hang, and the writer stays in D state even after
SIGKILL, until the connection is aborted.

Usage (root): repro/notify_delete_deadlock.py [--zincfs build-fuzz/zincfs/zincfs]
Exit 0: no deadlock within the time; 1: deadlock reproduced (prints the
stacks).  Cleans up (aborts the FUSE connection if needed).
"""
import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from zincfs_fuzz import REPO, mountinfo_line, read_text, run, task_summary  # noqa: E402


def close_quietly(fd):
    try:
        os.close(fd)
    except OSError:  # the fd is closed all the same
        pass


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--zincfs", default=str(REPO / "build" / "zincfs" / "zincfs"))
    ap.add_argument("--time", type=float, default=20)
    a = ap.parse_args()
    base = Path(tempfile.mkdtemp(prefix="zincfs-repro-", dir="/tmp"))
    mnt, shm = base / "mnt", base / "shm"
    mnt.mkdir()
    shm.mkdir()
    run(["mount", "-t", "tmpfs", "-o", "size=16m", "zincrepro", str(shm)], 10)
    d = subprocess.Popen([a.zincfs, "-f", "-o", f"shm_dir={shm}", str(mnt)],
                         stderr=subprocess.PIPE)
    deadlock = False
    try:
        t0 = time.monotonic()
        while not (mountinfo_line(mnt) or "").count(" fuse"):
            assert time.monotonic() - t0 < 10 and d.poll() is None, "no mount"
            time.sleep(0.01)
        conn = os.minor(os.stat(mnt).st_dev)
        stop = time.monotonic() + a.time
        last = [time.monotonic()]

        def writer():
            while time.monotonic() < stop:
                try:
                    fd = os.open(mnt / "x.notify", os.O_WRONLY)
                except OSError:
                    time.sleep(0.0005)
                    continue
                try:
                    for _ in range(20):
                        os.write(fd, b"1")
                        last[0] = time.monotonic()
                except OSError:
                    time.sleep(0.0005)
                finally:
                    close_quietly(fd)  # a leaked fd keeps its region (and tmpfs space)

        def remover():
            while time.monotonic() < stop:
                try:
                    fd = os.open(mnt / "x", os.O_CREAT | os.O_RDWR, 0o600)  # data open:
                except OSError:                                          # notifies are jobs
                    continue
                try:
                    time.sleep(0.002)
                    os.unlink(shm / "zinc_x")                            # J_DELETE
                    time.sleep(0.002)
                except OSError:
                    pass
                finally:
                    close_quietly(fd)

        ts = [threading.Thread(target=writer, daemon=True) for _ in range(2)]
        ts.append(threading.Thread(target=remover, daemon=True))
        for t in ts:
            t.start()
        while time.monotonic() < stop:
            time.sleep(0.2)
            if time.monotonic() - last[0] > 5:
                deadlock = True
                print("DEADLOCK: no .notify write completed for 5 s")
                print("daemon:", task_summary(d.pid))
                for tid in os.listdir(f"/proc/{d.pid}/task"):
                    st = read_text(f"/proc/{d.pid}/task/{tid}/stack") or ""
                    if "fuse_reverse_inval" in st:
                        print(f"daemon tid {tid}:", st.strip().replace("\n", " | "))
                print("this process:", task_summary(os.getpid()))
                if not os.path.ismount("/sys/fs/fuse/connections"):  # no fusectl
                    subprocess.run(["mount", "-t", "fusectl", "none",
                                    "/sys/fs/fuse/connections"], check=True)
                Path(f"/sys/fs/fuse/connections/{conn}/abort").write_text("1")
                break
        for t in ts:
            t.join(10)
    finally:
        run(["fusermount3", "-u", str(mnt)], 10)
        if mountinfo_line(mnt):
            run(["umount", "-l", str(mnt)], 10)
        try:
            d.wait(15)
        except subprocess.TimeoutExpired:
            d.kill()
            d.wait()
        run(["umount", str(shm)], 10)
        import shutil
        shutil.rmtree(base, ignore_errors=True)
    print("deadlock reproduced" if deadlock else f"no deadlock in {a.time:g} s")
    sys.exit(1 if deadlock else 0)


if __name__ == "__main__":
    main()
