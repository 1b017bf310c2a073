#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Minimal reproduction: zincfs cannot exit (a thread stays in D state, and
every client of the mount hangs in D) when it is stopped with SIGTERM, or
killed with SIGKILL, while its watcher thread invalidates the page cache of a
region that a client has mapped through the mount and keeps dirtying.

The invalidation (fuse_lowlevel_notify_inval_inode) waits in the kernel for
the write-back of the dirty page (fuse_launder_folio -> folio_wait_writeback)
or for a folio whose READ is in flight (__folio_lock); both need a reply
from a zincfs worker, but the workers are gone (SIGTERM: the session loop has
ended; SIGKILL: they were killed).  The thread stuck in the kernel keeps the
/dev/fuse file open, so the connection is never aborted: only
`echo 1 > /sys/fs/fuse/connections/N/abort` or `umount -f MNT` recovers.
Fixed: on SIGTERM zincfs aborts its own connection, on SIGKILL its guardian
process does (zincfs/guardian.c); tests/zincfs/test_guardian.py tests it.
Recovery here mounts fusectl first if it is missing.

usage: repro-inval-wedge.py [--build DIR] term|kill [ATTEMPTS]
Exit 1 if reproduced (and recovered), 0 if not.  Root only.
"""
import argparse, os, signal, subprocess, sys, tempfile, time
from pathlib import Path

ap = argparse.ArgumentParser()
ap.add_argument("--build", default=str(Path(__file__).resolve().parents[2] / "build"))
ap.add_argument("signal", choices=["term", "kill"])
ap.add_argument("attempts", type=int, nargs="?", default=20)
a = ap.parse_args()
B = a.build
sig = signal.SIGKILL if a.signal == "kill" else signal.SIGTERM
base = tempfile.mkdtemp(prefix="zinc-wedge.")
shm, mnt = base + "/shm", base + "/mnt"
os.mkdir(shm)
os.mkdir(mnt)
subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", shm], check=True)
env = dict(os.environ, ZINC_SHM_DIR=shm)
procs = []


def mounted():
    return any(l.split()[4] == mnt for l in open("/proc/self/mountinfo"))


result, rc = "not reproduced", 0
try:
    # A libzinc process owns region r and notifies as fast as it can.
    prod = subprocess.Popen([B + "/libzinc/zinc-producer", "r", "100000000", "0"], env=env,
                            stdout=subprocess.DEVNULL)
    procs.append(prod)
    while not os.path.exists(shm + "/zinc_r"):
        time.sleep(0.01)
    for i in range(a.attempts):
        d = subprocess.Popen([B + "/zincfs/zincfs", "-f", "-o", "shm_dir=" + shm, mnt],
                             stderr=subprocess.DEVNULL)
        procs.append(d)
        while not mounted():
            time.sleep(0.01)
        conn = os.minor(os.stat(mnt).st_dev)
        # A client keeps dirtying its shared mapping of r through the mount.
        w = subprocess.Popen([sys.executable, "-c", f"""
import mmap, os
m = mmap.mmap(os.open("{mnt}/r", os.O_RDWR), 4096)
i = 0
while True:
    m[0:8] = i.to_bytes(8, "little"); i += 1
"""], stderr=subprocess.DEVNULL)
        procs.append(w)
        time.sleep(0.3 + (i % 5) * 0.1)
        d.send_signal(sig)
        try:
            d.wait(timeout=5)
            w.kill()
            w.wait()
            subprocess.run(["umount", "-l", mnt], stderr=subprocess.DEVNULL)
            continue
        except subprocess.TimeoutExpired:
            pass
        lines = []
        for t in sorted(os.listdir(f"/proc/{d.pid}/task")):
            st = open(f"/proc/{d.pid}/task/{t}/stat").read().rsplit(")", 1)[1].split()[0]
            stack = [l.split()[-1].split("+")[0] for l in
                     open(f"/proc/{d.pid}/task/{t}/stack").read().splitlines()[:6]]
            lines.append(f"  zincfs task {t} state {st}: {' <- '.join(stack)}")
        wst = open(f"/proc/{w.pid}/stat").read().rsplit(")", 1)[1].split()[0]
        wch = open(f"/proc/{w.pid}/wchan").read()
        result = (f"REPRODUCED on attempt {i + 1}: zincfs pid {d.pid} has not exited 5 s "
                  f"after {sig.name}; the client is in state {wst} (wchan {wch})\n"
                  + "\n".join(lines))
        rc = 1
        w.kill()
        if not os.path.ismount("/sys/fs/fuse/connections"):  # fusectl not mounted
            subprocess.run(["mount", "-t", "fusectl", "none", "/sys/fs/fuse/connections"],
                           check=True)
        with open(f"/sys/fs/fuse/connections/{conn}/abort", "w") as f:
            f.write("1")  # recover
        d.wait(timeout=10)
        w.wait(timeout=10)
        subprocess.run(["umount", "-l", mnt], stderr=subprocess.DEVNULL)
        result += f"\nrecovered with: echo 1 > /sys/fs/fuse/connections/{conn}/abort"
        break
finally:
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait()
    if mounted():
        subprocess.run(["umount", "-l", mnt])
    subprocess.run(["umount", "-l", shm])
    subprocess.run(["rm", "-rf", base])
print(result)
sys.exit(rc)
