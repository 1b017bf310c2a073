#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""zincfs request fuzzer: random file-system traffic against a live mount.

Mounts zincfs (preferably a sanitizer build) on a temp dir with a private
tmpfs as its region directory, then W worker processes of T threads each
issue random sequences of lookups, creates, opens, reads/writes/preads at
random offsets and sizes, truncates, chmod/chown/utime, unlink, rename,
link, mkdir, symlink, mknod, xattrs, readdir, statfs, poll and O_NONBLOCK
and blocking reads of NAME.wait (interrupted by a timer), writes to
NAME.notify, mmap touches (in a forked child, since a region truncated
underneath gives SIGBUS), with random names (valid, invalid, long, unicode,
dotted, with the .notify/.wait suffixes).  With --shm-ops (default), some
traffic goes straight to the region directory: malformed objects, FIFOs,
directories and symlinks named zinc_*, truncation and removal underneath.

Afterwards it checks: the daemon stayed alive, answers `ls` and `stat` and
a create/write/read/notify/wait round trip within a deadline, no task of
ours or of the daemon sits in D state, no operation ran longer than the
wedge limit, the daemon's output has no sanitizer report and no "error:"
line, it unmounts cleanly and exits 0, and no region made through the mount
is left in the region directory.  Then everything it made is removed
(mounts, daemon, temp dirs), also on failure.

Seeded: the seed is printed and --seed S repeats the same operation
sequences (thread interleaving still varies).  On a finding it prints the
tail of each thread's operation log and keeps the logs (--artifacts).

Usage (root): zincfs_fuzz.py [--time S] [--seed N] [--workers W] [--threads T]
              [--zincfs PATH | --build DIR] [--artifacts DIR] [--no-shm-ops]
              [--skip OP,...]
Exit: 0 clean, 1 finding, 2 setup/driver error.  Standard library only.
"""
import argparse
import collections
import errno
import json
import mmap
import os
import random
import re
import select
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PAGE = os.sysconf("SC_PAGE_SIZE")
WEDGE_S = 10.0          # an operation (other than a timed wait) taking longer is a wedge
BLOCK_READ_S = 0.5      # longest blocking .wait read before the timer interrupts it
SANITIZER_RE = re.compile(
    r"AddressSanitizer|LeakSanitizer|ThreadSanitizer|UndefinedBehaviorSanitizer|"
    r"MemorySanitizer|runtime error:|ERROR SUMMARY: [1-9]|Invalid (read|write|free)|"
    r"definitely lost: [1-9]")
# errnos that mean the daemon or the connection is gone: always a finding
DEAD_ERRNOS = {errno.ENOTCONN, errno.ECONNABORTED}


def log(msg):
    print(f"zincfs_fuzz: {msg}", flush=True)


# ------------------------------------------------------------------ names

NAME_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOQRSTUVWXYZ0123456789_-"  # no 'P'
ODD_NAMES = [".", "..", "...", ".notify", ".wait", "a..b", "a.b", "a.notify.wait",
             "a.wait.notify", "a.NOTIFY", "a.wait.", "a.", "-", "_", "--",
             "é", "日本語", "a\u00a0b", "\U0001F600", "a b", "a\tb", "a\nb", "a:b",
             "a/b", "a/../a", "x" * 251, "x" * 255, "x" * 256, "y" * 250 + ".wait",
             "zinc_a", "a*", "a?", "a\\b", "\x7f", "a\x01b"]


class Names:
    """Name generator: a small per-run pool (so threads collide) plus
    random valid and hostile names; planted objects use names from 'P'."""

    def __init__(self, seed):
        r = random.Random(f"{seed}-pool")
        self.pool = ["a", "b1", "Zz_9", "x-y", "q" * 250,
                     "".join(r.choice(NAME_CHARS) for _ in range(r.randint(1, 40)))]

    def valid(self, rng):
        if rng.random() < 0.75:
            return rng.choice(self.pool)
        n = rng.choice([1, 2, 8, 32, 249, 250])
        return "".join(rng.choice(NAME_CHARS) for _ in range(n))

    def planted(self, rng):
        return "P" + str(rng.randint(0, 7))

    def any(self, rng):
        x = rng.random()
        if x < 0.55:
            base = self.valid(rng)
        elif x < 0.70:
            base = self.planted(rng)
        elif x < 0.90:
            base = rng.choice(ODD_NAMES)
        else:
            base = "".join(chr(rng.choice([rng.randint(0x20, 0x7e), rng.randint(0xa0, 0x2fff)]))
                           for _ in range(rng.randint(1, 12)))
        y = rng.random()
        if y < 0.2:
            return base + ".notify"
        if y < 0.4:
            return base + ".wait"
        return base


# ------------------------------------------------------------------ worker

class Stop(Exception):
    pass


class Alarm(Exception):
    pass


class Worker:
    """One worker process: thread 0 is the main thread (it alone does
    blocking .wait reads, interrupted by SIGALRM); threads 1..T-1 do the rest."""

    def __init__(self, a):
        self.a = a
        self.mnt = Path(a.mnt)
        self.shm = Path(a.shm)
        self.names = Names(a.seed)
        self.deadline = time.monotonic() + a.time
        self.lock = threading.Lock()
        self.ops = collections.Counter()
        self.errs = collections.Counter()
        self.notes = collections.Counter()
        self.findings = []
        self.current = {}  # tid -> (op, start)
        self.logdir = Path(a.logdir)

    def finding(self, msg):
        with self.lock:
            self.findings.append(msg)

    # -- the operations; each returns normally or raises OSError
    def p(self, rng, kind=None):
        return self.mnt / self.names.any(rng) if kind is None else self.mnt / kind

    def op_stat(self, rng, st):
        os.stat(self.p(rng)) if rng.random() < 0.7 else os.lstat(self.p(rng))

    def op_create(self, rng, st):
        flags = os.O_CREAT | rng.choice([os.O_WRONLY, os.O_RDWR, os.O_RDONLY])
        if rng.random() < 0.3:
            flags |= os.O_EXCL
        if rng.random() < 0.2:
            flags |= os.O_TRUNC
        name = self.mnt / (self.names.valid(rng) if rng.random() < 0.7 else self.names.any(rng))
        if name.name.endswith(".wait") and not self.is_main():
            flags |= os.O_NONBLOCK  # only the main thread may block (timer)
        fd = os.open(name, flags, rng.choice([0o600, 0o644, 0o666, 0o400, 0o000, 0o7777]))
        self.keep(st, fd, name, rng)

    def op_open(self, rng, st):
        flags = rng.choice([os.O_RDONLY, os.O_WRONLY, os.O_RDWR])
        for f, pr in ((os.O_NONBLOCK, 0.3), (os.O_TRUNC, 0.1), (os.O_APPEND, 0.1),
                      (os.O_DIRECTORY, 0.03), (os.O_NOFOLLOW, 0.05)):
            if rng.random() < pr:
                flags |= f
        name = self.p(rng)
        if name.name.endswith(".wait") and not self.is_main():
            flags |= os.O_NONBLOCK  # only the main thread may block (timer)
        fd = os.open(name, flags)
        self.keep(st, fd, name, rng)

    def is_main(self):
        return threading.current_thread() is threading.main_thread()

    def guarded(self, fn, *args):
        """Run a read/write that may block on a .wait file: on the main
        thread under a timer whose signal interrupts it."""
        if not self.is_main():
            return fn(*args)
        signal.setitimer(signal.ITIMER_REAL, BLOCK_READ_S)
        try:
            return fn(*args)
        except Alarm:
            self.count_note("read-interrupted")
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)

    def keep(self, st, fd, name, rng):
        st["fds"].append((fd, name))
        while len(st["fds"]) > 12:
            os.close(st["fds"].pop(rng.randrange(len(st["fds"])))[0])

    def pick_fd(self, rng, st):
        if not st["fds"]:
            raise Stop
        return rng.choice(st["fds"])

    def rand_off(self, rng):
        return rng.choice([0, 0, 1, PAGE - 1, PAGE, PAGE + 1, 2 * PAGE, 16 * PAGE,
                           rng.randrange(0, 8 * PAGE), 2**31 - 1, 2**32, 2**40, 2**62,
                           2**63 - 1])

    def rand_size(self, rng):
        return rng.choice([0, 1, 2, 7, 8, 63, 64, 100, PAGE - 1, PAGE, PAGE + 1,
                           3 * PAGE, 1 << 17, rng.randrange(0, 2 * PAGE)])

    def op_read(self, rng, st):
        fd, _ = self.pick_fd(rng, st)
        if rng.random() < 0.5:
            self.guarded(os.pread, fd, self.rand_size(rng), self.rand_off(rng))
        else:
            self.guarded(os.read, fd, self.rand_size(rng))

    def op_write(self, rng, st):
        fd, _ = self.pick_fd(rng, st)
        data = rng.randbytes(min(self.rand_size(rng), 3 * PAGE))
        if rng.random() < 0.5:
            os.pwrite(fd, data, self.rand_off(rng))
        else:
            os.write(fd, data)

    def op_fdmisc(self, rng, st):
        fd, _ = self.pick_fd(rng, st)
        x = rng.randrange(7)
        if x == 0:
            os.fstat(fd)
        elif x == 1:
            os.ftruncate(fd, rng.choice([0, PAGE, 2 * PAGE, PAGE + 1, 5 * PAGE]))
        elif x == 2:
            os.fsync(fd)
        elif x == 3:
            os.lseek(fd, self.rand_off(rng), rng.choice([os.SEEK_SET, os.SEEK_END, os.SEEK_CUR]))
        elif x == 4:
            os.close(os.dup(fd))
        elif x == 5:
            p = select.poll()
            p.register(fd, select.POLLIN | select.POLLOUT)
            p.poll(rng.randint(0, 50))
        else:
            i = st["fds"].index((fd, _))
            st["fds"].pop(i)
            os.close(fd)

    def op_truncate(self, rng, st):
        os.truncate(self.p(rng), rng.choice([0, 1, PAGE - 1, PAGE, 2 * PAGE, 3 * PAGE,
                                             8 * PAGE, 2**40, 2**62]))

    def op_attr(self, rng, st):
        x = rng.randrange(4)
        p = self.p(rng)
        if x == 0:
            os.chmod(p, rng.choice([0o600, 0o644, 0o000, 0o7777, 0o4755]))
        elif x == 1:
            os.chown(p, rng.choice([0, 65534, -1]), rng.choice([0, 65534, -1]))
        elif x == 2:
            os.utime(p, None if rng.random() < 0.5 else (rng.randint(0, 2**33), 0))
        else:
            os.utime(p, ns=(rng.randint(0, 2**62), rng.randint(0, 2**62)))

    def op_namespace(self, rng, st):
        x = rng.randrange(8)
        p, q = self.p(rng), self.p(rng)
        if x == 0 or x == 1:
            os.unlink(p)
        elif x == 2:
            os.rename(p, q)
        elif x == 3:
            os.link(p, q)
        elif x == 4:
            os.mkdir(p)
        elif x == 5:
            os.rmdir(p)
        elif x == 6:
            os.symlink("a", p)
        else:
            os.mknod(p, rng.choice([stat.S_IFREG | 0o600, stat.S_IFIFO | 0o600,
                                    stat.S_IFSOCK | 0o600]))

    def op_xattr(self, rng, st):
        p = self.p(rng)
        names = ["user.zinc.seq", "user.zinc.capacity", "user.zinc.refs",
                 "user.zinc.owner_pid", "user.zinc.created_at", "user.zinc.x",
                 "user.other", "security.selinux", "trusted.x", "system.posix_acl_access"]
        x = rng.randrange(5)
        if x <= 1:
            os.getxattr(p, rng.choice(names))
        elif x == 2:
            os.listxattr(p)
        elif x == 3:
            os.setxattr(p, rng.choice(names), rng.randbytes(rng.randint(0, 16)))
        else:
            os.removexattr(p, rng.choice(names))

    def op_readdir(self, rng, st):
        if rng.random() < 0.5:
            os.listdir(self.mnt)
        else:
            with os.scandir(self.mnt) as it:
                for i, e in enumerate(it):
                    if i > rng.randint(0, 20):
                        break
                    if rng.random() < 0.2:
                        e.stat(follow_symlinks=False)

    def op_statfs(self, rng, st):
        os.statvfs(self.mnt)

    def op_notify(self, rng, st):
        name = self.mnt / (self.names.valid(rng) + ".notify")
        fd = os.open(name, os.O_WRONLY | (os.O_NONBLOCK if rng.random() < 0.2 else 0))
        try:
            for _ in range(rng.randint(0, 3)):
                os.write(fd, rng.randbytes(rng.randint(1, 64)))
        finally:
            os.close(fd)

    def op_wait_nonblock(self, rng, st):
        fd = os.open(self.mnt / (self.names.valid(rng) + ".wait"), os.O_RDONLY | os.O_NONBLOCK)
        try:
            for _ in range(rng.randint(1, 3)):
                os.read(fd, rng.choice([1, 2, 5, 16, 64, 4096]))
        finally:
            os.close(fd)

    def op_wait_poll(self, rng, st):
        nonblock = rng.random() < 0.5 or not self.is_main()
        fd = os.open(self.mnt / (self.names.valid(rng) + ".wait"),
                     os.O_RDONLY | (os.O_NONBLOCK if nonblock else 0))
        try:
            if rng.random() < 0.5:
                p = select.poll()
                p.register(fd, select.POLLIN)
                ev = p.poll(rng.randint(0, 100))
            else:
                ev = select.select([fd], [], [], rng.randint(0, 100) / 1000)[0]
            if ev:
                self.guarded(os.read, fd, 64)  # ready: should not block
        finally:
            os.close(fd)

    def op_wait_block(self, rng, st):
        """Blocking read of .wait, interrupted by SIGALRM (main thread only)."""
        if not self.is_main():
            raise Stop
        fd = os.open(self.mnt / (self.names.valid(rng) + ".wait"), os.O_RDONLY)
        try:
            signal.setitimer(signal.ITIMER_REAL, rng.uniform(0.01, BLOCK_READ_S))
            try:
                os.read(fd, rng.choice([1, 16, 64]))
            except Alarm:
                self.count_note("wait-interrupted")
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
        finally:
            os.close(fd)

    def op_mmap(self, rng, st):
        """Map a data file and touch it, in a child: SIGBUS there is fine."""
        name = self.mnt / self.names.valid(rng)
        writable = rng.random() < 0.7
        fd = os.open(name, os.O_RDWR if writable else os.O_RDONLY)
        try:
            size = os.fstat(fd).st_size
            if size == 0:
                raise Stop
            length = min(size, rng.choice([PAGE, size, size + PAGE]))
            pid = os.fork()
            if pid == 0:
                code = 0
                try:
                    acc = mmap.ACCESS_WRITE if writable else mmap.ACCESS_READ
                    try:
                        m = mmap.mmap(fd, length, access=acc)
                    except (OSError, ValueError):
                        m = mmap.mmap(fd, length, access=mmap.ACCESS_READ)
                        acc = mmap.ACCESS_READ
                    for _ in range(8):
                        i = rng.randrange(length)
                        b = m[i]
                        if acc == mmap.ACCESS_WRITE:
                            m[i] = b ^ 0  # write back the same byte
                    m.close()
                except BaseException:
                    code = 3
                os._exit(code)
            t0 = time.monotonic()
            while True:
                r, status = os.waitpid(pid, os.WNOHANG)
                if r:
                    break
                if time.monotonic() - t0 > WEDGE_S:
                    self.finding(f"mmap child {pid} on {name} stuck for {WEDGE_S}s "
                                 f"(state {task_state(pid)})")
                    os.kill(pid, signal.SIGKILL)
                    os.waitpid(pid, 0)
                    return
                time.sleep(0.002)
            if os.WIFSIGNALED(status):
                self.count_note(f"mmap-child-{signal.Signals(os.WTERMSIG(status)).name}")
        finally:
            os.close(fd)

    def op_shm(self, rng, st):
        """Hostile traffic straight in the region directory."""
        if not self.a.shm_ops:
            raise Stop
        x = rng.random()
        if x < 0.45:  # plant a malformed (or nearly valid) object
            p = self.shm / f"zinc_{self.names.planted(rng)}"
            size = rng.choice([0, 1, 64, PAGE - 1, PAGE, 2 * PAGE - 1, 2 * PAGE, 3 * PAGE])
            data = bytearray(rng.randbytes(min(size, 128))) + bytes(max(0, size - 128))
            if size >= 64 and rng.random() < 0.7:
                data[0:8] = (0x5A494E435F524547).to_bytes(8, "little")
                data[8:10] = (2).to_bytes(2, "little")
                data[10:12] = bytes(2)
                if rng.random() < 0.8:
                    data[16:24] = max(0, size - PAGE).to_bytes(8, "little")
            tmp = self.shm / f".tmp-{os.getpid()}-{threading.get_native_id()}"
            tmp.write_bytes(bytes(data))
            os.rename(tmp, p)
        elif x < 0.6:  # truncate an object underneath (rarely a live region)
            objs = [n for n in os.listdir(self.shm) if n.startswith("zinc_")]
            if not objs:
                raise Stop
            p = self.shm / rng.choice(objs)
            if not p.name.startswith("zinc_P") and rng.random() < 0.75:
                raise Stop
            os.truncate(p, rng.choice([0, PAGE, 2 * PAGE, 3 * PAGE, PAGE + 1]))
        elif x < 0.75:
            objs = [n for n in os.listdir(self.shm) if n.startswith("zinc_P")]
            if not objs:
                raise Stop
            p = self.shm / rng.choice(objs)
            if p.is_dir() and not p.is_symlink():
                os.rmdir(p)
            else:
                os.unlink(p)
        else:
            p = self.shm / f"zinc_{self.names.planted(rng)}"
            y = rng.randrange(4)
            if y == 0:
                os.mkdir(p)
            elif y == 1:
                os.mkfifo(p)
            elif y == 2:
                os.symlink(rng.choice(["zinc_a", "/dev/zero", "nowhere"]), p)
            else:
                os.mknod(p, stat.S_IFREG | 0o600)

    def count_note(self, what):
        with self.lock:
            self.notes[what] += 1

    OPS = [("stat", 12), ("create", 8), ("open", 10), ("read", 12), ("write", 10),
           ("fdmisc", 8), ("truncate", 4), ("attr", 4), ("namespace", 6), ("xattr", 5),
           ("readdir", 3), ("statfs", 1), ("notify", 8), ("wait_nonblock", 5),
           ("wait_poll", 4), ("wait_block", 3), ("mmap", 2), ("shm", 4)]

    def run_thread(self, tid):
        rng = random.Random(f"{self.a.seed}-{self.a.worker}-{tid}")
        skip = set(self.a.skip.split(",")) if self.a.skip else set()
        names = [n for n, _ in self.OPS if n not in skip]
        weights = [w for n, w in self.OPS if n not in skip]
        st = {"fds": []}
        logf = open(self.logdir / f"ops-w{self.a.worker}-t{tid}.log", "w", buffering=1)
        n = 0
        try:
            while time.monotonic() < self.deadline:
                op = rng.choices(names, weights)[0]
                n += 1
                logf.write(f"{n} {op}\n")
                self.current[tid] = (op, time.monotonic())
                try:
                    getattr(self, "op_" + op)(rng, st)
                    res = "ok"
                except Stop:
                    res = "skip"
                except Alarm:
                    res = "alarm"  # the timer fired just after a wait returned
                except OSError as e:
                    res = errno.errorcode.get(e.errno, str(e.errno))
                    if e.errno in DEAD_ERRNOS:
                        self.finding(f"{op}: {e} (the daemon is gone)")
                        raise
                except (ValueError, OverflowError) as e:
                    res = "pyerr"  # e.g. an embedded NUL; not sent
                finally:
                    took = time.monotonic() - self.current.pop(tid)[1]
                if took > WEDGE_S:
                    self.finding(f"thread {tid}: {op} took {took:.1f}s")
                logf.write(f"  -> {res} {took * 1000:.1f}ms\n")
                with self.lock:
                    self.ops[op] += 1
                    self.errs[f"{op}:{res}"] += 1
        except Exception:
            self.finding(f"thread {tid} died: {traceback.format_exc()}")
        finally:
            for fd, _ in st["fds"]:
                try:
                    os.close(fd)
                except OSError:
                    pass
            logf.close()

    def stats(self, partial):
        with self.lock:
            return json.dumps({"partial": partial, "ops": self.ops, "results": self.errs,
                               "notes": self.notes, "findings": self.findings})

    def watchdog(self):
        while True:
            time.sleep(1)
            print(self.stats(True), flush=True)
            now = time.monotonic()
            for tid, (op, t0) in list(self.current.items()):
                if now - t0 > WEDGE_S and (tid, t0) not in self.reported:
                    self.reported.add((tid, t0))
                    self.finding(f"wedge: thread {tid} in {op} for {now - t0:.0f}s "
                                 f"(tasks: {task_summary(os.getpid())})")

    def main(self):
        def on_alarm(signum, frame):
            raise Alarm
        signal.signal(signal.SIGALRM, on_alarm)
        self.reported = set()
        threading.Thread(target=self.watchdog, daemon=True).start()
        threads = [threading.Thread(target=self.run_thread, args=(t,), daemon=True)
                   for t in range(1, self.a.threads)]
        for t in threads:
            t.start()
        self.run_thread(0)
        for t in threads:
            t.join()
        print(self.stats(False), flush=True)
        return 0


# ------------------------------------------------------------------ driver

def read_text(path):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except OSError:
        return None


def task_state(pid, tid=None):
    s = read_text(f"/proc/{pid}/task/{tid}/stat" if tid else f"/proc/{pid}/stat")
    return s[s.rindex(")") + 2] if s else None


def task_summary(pid):
    out = []
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return "gone"
    for tid in tids:
        wch = (read_text(f"/proc/{pid}/task/{tid}/wchan") or "?").strip()
        out.append(f"{tid}:{task_state(pid, tid)}:{wch}")
    return " ".join(out)


def d_state_tasks(pid):
    """Tasks of pid in D state, with their kernel stacks."""
    res = []
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return res
    for tid in tids:
        if task_state(pid, tid) == "D":
            # D can be a passing moment (page fault on tmpfs): look again
            time.sleep(0.05)
            if task_state(pid, tid) == "D":
                stack = (read_text(f"/proc/{pid}/task/{tid}/stack") or "").strip()
                res.append(f"pid {pid} tid {tid} in D: {stack.replace(chr(10), ' | ')}")
    return res


def mountinfo_line(path):
    for line in (read_text("/proc/self/mountinfo") or "").splitlines():
        f = line.split()
        mp = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), f[4])
        if mp == str(path):
            return line
    return None


def wait_for(pred, timeout, interval=0.005):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(interval)


def run(args, timeout):
    try:
        p = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           stdin=subprocess.DEVNULL, text=True, timeout=timeout)
        return p.returncode, p.stdout
    except subprocess.TimeoutExpired as e:
        return None, f"timed out after {timeout}s: {e.output or ''}"


class Driver:
    def __init__(self, a):
        self.a = a
        self.findings = []
        self.base = None
        self.daemon = None
        self.workers = []
        self.conn = None
        self.totals = {"ops": collections.Counter(), "results": collections.Counter(),
                       "notes": collections.Counter()}

    def finding(self, msg):
        log(f"FINDING: {msg}")
        self.findings.append(msg)

    def zincfs_binary(self):
        if self.a.zincfs:
            return Path(self.a.zincfs)
        dirs = [self.a.build] if self.a.build else ["build-fuzz", "build-asan", "build"]
        for d in dirs:
            p = Path(d)
            p = p if p.is_absolute() else REPO / p
            z = p / "zincfs" / "zincfs"
            if z.exists():
                return z
        raise SystemExit(f"zincfs_fuzz: no zincfs binary in {dirs} (build it first)")

    def setup(self):
        self.base = Path(tempfile.mkdtemp(prefix="zincfs-fuzz-", dir="/tmp"))
        self.mnt = self.base / "mnt"
        self.shm = self.base / "shm"
        self.logs = self.base / "logs"
        for d in (self.mnt, self.shm, self.logs):
            d.mkdir()
        rc, out = run(["mount", "-t", "tmpfs", "-o", "size=64m,mode=1777", "zincfuzz",
                       str(self.shm)], 10)
        if rc != 0:
            raise SystemExit(f"zincfs_fuzz: cannot mount a tmpfs: {out}")
        rng = random.Random(f"{self.a.seed}-opts")
        opts = [f"shm_dir={self.shm}",
                f"region_size={rng.choice([1, 1, 2, 4, 16]) * PAGE}"]
        extra = ["-s"] if rng.random() < 0.25 else []
        self.daemon_log = self.base / "zincfs.log"
        cmd = [str(self.zincfs_binary()), "-f"] + extra + ["-o", ",".join(opts), str(self.mnt)]
        log(f"daemon: {' '.join(cmd)}")
        env = dict(os.environ)
        env.pop("ZINC_SHM_DIR", None)
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=1:"
                       "handle_abort=1:allow_user_segv_handler=1")
        env.setdefault("UBSAN_OPTIONS", "halt_on_error=1:print_stacktrace=1")
        with open(self.daemon_log, "wb") as lf:
            self.daemon = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=lf,
                                           stderr=subprocess.STDOUT, env=env)

        def up():
            if self.daemon.poll() is not None:
                raise SystemExit(f"zincfs_fuzz: zincfs exited with {self.daemon.returncode} "
                                 f"before mounting:\n{read_text(self.daemon_log)}")
            line = mountinfo_line(self.mnt)
            return line and " fuse" in line
        if not wait_for(up, 15):
            raise SystemExit("zincfs_fuzz: the mount did not appear within 15 s")
        self.conn = os.minor(os.stat(self.mnt).st_dev)

    def start_workers(self):
        for w in range(self.a.workers):
            cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", str(w),
                   "--seed", str(self.a.seed), "--time", str(self.a.time),
                   "--threads", str(self.a.threads), "--mnt", str(self.mnt),
                   "--shm", str(self.shm), "--logdir", str(self.logs)]
            if not self.a.shm_ops:
                cmd.append("--no-shm-ops")
            if self.a.skip:
                cmd += ["--skip", self.a.skip]
            out = open(self.logs / f"worker-{w}.out", "w")
            p = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL, start_new_session=True,
                                 cwd=str(self.base))
            out.close()
            self.workers.append(p)

    def watch(self):
        """Until the workers finish (deadline + grace): the daemon must live."""
        end = time.monotonic() + self.a.time + WEDGE_S
        while time.monotonic() < end:
            if self.daemon.poll() is not None:
                self.finding(f"zincfs died during the run (status {self.daemon.returncode})")
                return
            if all(p.poll() is not None for p in self.workers):
                return
            time.sleep(0.2)
        stuck = False
        for p in self.workers:
            if p.poll() is None:
                stuck = True
                self.finding(f"worker {p.pid} still running {WEDGE_S:.0f}s after the "
                             f"deadline: {task_summary(p.pid)}")
                for d in d_state_tasks(p.pid):
                    self.finding(d)
        if stuck:
            self.dump_daemon()

    def dump_daemon(self):
        """The daemon's threads (state, wchan, kernel and user stacks)."""
        pid = self.daemon.pid
        out = [f"daemon tasks: {task_summary(pid)}"]
        for tid in sorted(os.listdir(f"/proc/{pid}/task")):
            k = (read_text(f"/proc/{pid}/task/{tid}/stack") or "").strip()
            out.append(f"tid {tid} kernel stack: {k.replace(chr(10), ' | ')}")
        # (no gdb: attaching to a task stuck in D state hangs)
        text = "\n".join(out)
        (self.logs / "daemon-stacks.txt").write_text(text)
        log("daemon stacks written to daemon-stacks.txt (artifacts)")

    def collect(self):
        for w, p in enumerate(self.workers):
            # poll before reading: a worker still running may be writing its
            # last line, which must not then count as missing
            exited = p.poll() is not None
            out = read_text(self.logs / f"worker-{w}.out") or ""
            last = None
            for line in out.splitlines():
                if line.startswith("{"):
                    try:
                        j = json.loads(line)
                    except ValueError:
                        continue
                    if last is None or last.get("partial"):
                        last = j  # the final (non-partial) line wins
            if exited and (p.returncode != 0 or last is None
                                         or last.get("partial")):
                self.finding(f"worker {w} exited with {p.returncode}: {out[-2000:]}")
            if last:
                for f in last.get("findings", []):
                    self.finding(f"worker {w}: {f}")
                for k in self.totals:
                    self.totals[k].update(last.get(k, {}))

    def checks_after(self):
        if self.daemon.poll() is not None:
            return
        for what, args in (("ls", ["ls", "-la", str(self.mnt)]),
                           ("stat", ["stat", str(self.mnt)])):
            rc, out = run(args, 10)
            if rc is None:
                self.finding(f"`{what}` on the mount hung: {out}")
                return
            if rc != 0:
                self.finding(f"`{what}` on the mount failed ({rc}): {out[-500:]}")
        # A round trip through a fresh region: create, write, read back,
        # notify, and a .wait reader that sees it.
        name = f"fuzzcheck{os.getpid()}"
        script = (f"import os,select\n"
                  f"m={str(self.mnt)!r}\np=os.path.join(m,{name!r})\n"
                  f"fd=os.open(p,os.O_CREAT|os.O_RDWR,0o600)\n"
                  f"assert os.pwrite(fd,b'alive',0)==5\nassert os.pread(fd,5,0)==b'alive'\n"
                  f"w=os.open(p+'.wait',os.O_RDONLY|os.O_NONBLOCK)\n"
                  f"n=os.open(p+'.notify',os.O_WRONLY)\nos.write(n,b'1')\nos.close(n)\n"
                  f"po=select.poll();po.register(w,select.POLLIN)\n"
                  f"assert po.poll(5000),'no POLLIN after notify'\n"
                  f"assert os.read(w,64),'empty wait read'\nos.close(w)\nos.close(fd)\n"
                  f"os.unlink(p)\nassert not os.path.exists(p)\n")
        rc, out = run([sys.executable, "-c", script], 15)
        if rc != 0:
            self.finding(f"round trip through the mount failed ({rc}): {out[-1500:]}")
        for d in d_state_tasks(self.daemon.pid):
            self.finding(d)

    def stop(self):
        """Unmount, wait for the daemon (must exit 0), clean everything."""
        for p in self.workers:
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        for p in self.workers:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.finding(f"worker {p.pid} does not die after SIGKILL: "
                             f"{task_summary(p.pid)}")
                self.abort_connection()
                p.wait(timeout=10)
        if self.daemon and self.daemon.poll() is None:
            rc, out = run(["fusermount3", "-u", str(self.mnt)], 15)
            if rc != 0:
                self.finding(f"fusermount3 -u failed ({rc}): {out.strip()}")
                run(["umount", "-l", str(self.mnt)], 15)
            try:
                self.daemon.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.finding(f"zincfs did not exit 20 s after the unmount: "
                             f"{task_summary(self.daemon.pid)}; {self.holders()}")
                self.daemon.kill()
                self.daemon.wait(timeout=10)
            if self.daemon.returncode != 0:
                self.finding(f"zincfs exited with {self.daemon.returncode} after the unmount")
        elif self.daemon:
            self.abort_connection()
        if mountinfo_line(self.mnt):
            run(["umount", "-l", str(self.mnt)], 15)
        self.check_log()
        self.check_leftovers()

    def holders(self):
        """Who still references the (unmounted) connection: pending
        requests and processes with files or mappings under the mount."""
        out = [f"connection {self.conn} waiting="
               f"{(read_text(f'/sys/fs/fuse/connections/{self.conn}/waiting') or 'gone').strip()}"]
        m = str(self.mnt)
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                refs = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
            except OSError:
                refs = []
            refs += [l.split()[-1] for l in (read_text(f"/proc/{pid}/maps") or "").splitlines()
                     if m in l]
            hits = [r for r in refs if m in r]
            if hits:
                out.append(f"pid {pid} ({(read_text(f'/proc/{pid}/comm') or '').strip()}): "
                           f"{sorted(set(hits))[:5]}")
        return "; ".join(out)

    def abort_connection(self):
        if self.conn is not None:
            try:
                Path(f"/sys/fs/fuse/connections/{self.conn}/abort").write_text("1")
            except OSError:
                pass

    def check_log(self):
        text = read_text(self.daemon_log) or ""
        for line in text.splitlines():
            if re.search(r"(^|zincfs: )error:", line) or SANITIZER_RE.search(line):
                self.finding(f"daemon log: {line}")
                break
        if any("ERROR: AddressSanitizer" in l or "runtime error" in l for l in text.splitlines()):
            log("daemon log:\n" + text[-6000:])

    def check_leftovers(self):
        """Regions made through the mount are owned by the daemon: its clean
        exit must remove them.  Objects planted underneath (zinc_P*) stay."""
        if self.daemon and self.daemon.returncode == 0:
            left = sorted(n for n in os.listdir(self.shm)
                          if n.startswith("zinc_") and not n.startswith("zinc_P"))
            if left:
                self.finding(f"objects left in the region directory after a clean "
                             f"exit: {left[:10]}")

    def cleanup(self):
        if not self.base:
            return
        keep = self.findings and self.a.artifacts
        if keep:
            dst = Path(self.a.artifacts) / f"zincfs-fuzz-{self.a.seed}"
            shutil.rmtree(dst, ignore_errors=True)
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copytree(self.logs, dst)
            shutil.copy(self.daemon_log, dst / "zincfs.log")
            log(f"logs kept in {dst}")
        for mp in (self.mnt, self.shm):
            if mountinfo_line(mp):
                rc, _ = run(["umount", str(mp)], 15)
                if rc != 0:
                    run(["umount", "-l", str(mp)], 15)
        shutil.rmtree(self.base, ignore_errors=True)

    def report_tails(self):
        for f in sorted(self.logs.glob("ops-*.log")):
            lines = (read_text(f) or "").splitlines()
            log(f"last operations of {f.stem}: " + " ".join(
                l.strip() for l in lines[-8:]))

    def main(self):
        t0 = time.monotonic()
        log(f"seed {self.a.seed} (repeat with --seed {self.a.seed}), {self.a.time:g} s, "
            f"{self.a.workers} workers x {self.a.threads} threads, shm ops "
            f"{'on' if self.a.shm_ops else 'off'}")
        try:
            self.setup()
            self.start_workers()
            self.watch()
            self.collect()
            self.checks_after()
        finally:
            try:
                self.stop()
            finally:
                if self.findings and self.base:
                    self.report_tails()
                self.cleanup()
        ops = sum(self.totals["ops"].values())
        res = self.totals["results"]
        errs = collections.Counter()
        for k, v in res.items():
            errs[k.split(":", 1)[1]] += v
        log("operations: " + ", ".join(f"{k} {v}" for k, v in
                                        sorted(self.totals["ops"].items())))
        log("results: " + ", ".join(f"{k} {v}" for k, v in errs.most_common()))
        if self.totals["notes"]:
            log("notes: " + ", ".join(f"{k} {v}" for k, v in
                                      sorted(self.totals["notes"].items())))
        log(f"summary: seed {self.a.seed}, {ops} operations in "
            f"{time.monotonic() - t0:.0f} s, daemon exit "
            f"{self.daemon.returncode if self.daemon else '-'}, findings: {len(self.findings)}")
        return 1 if self.findings else 0


def main():
    ap = argparse.ArgumentParser(description="zincfs request fuzzer")
    ap.add_argument("--time", type=float, default=60, help="seconds of traffic (default 60)")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--workers", type=int, default=3, help="processes (default 3)")
    ap.add_argument("--threads", type=int, default=3, help="threads per process (default 3)")
    ap.add_argument("--zincfs", help="daemon binary")
    ap.add_argument("--build", help="build dir holding zincfs/zincfs "
                    "(default: first of build-fuzz, build-asan, build)")
    ap.add_argument("--artifacts", default=str(REPO / "build-fuzz" / "artifacts"),
                    help="where logs of a failing run are kept")
    ap.add_argument("--no-shm-ops", dest="shm_ops", action="store_false",
                    help="no traffic straight in the region directory")
    ap.add_argument("--skip", default="", help="comma-separated operation kinds not to "
                    "issue: " + ",".join(n for n, _ in Worker.OPS))
    ap.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--mnt", help=argparse.SUPPRESS)
    ap.add_argument("--shm", help=argparse.SUPPRESS)
    ap.add_argument("--logdir", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker is not None:
        sys.exit(Worker(a).main())
    if os.geteuid() != 0:
        sys.exit("zincfs_fuzz: run as root (it mounts a tmpfs and a FUSE file system)")
    if a.seed is None:
        a.seed = int.from_bytes(os.urandom(4), "little")
    d = Driver(a)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda s, f: sys.exit(128 + s))
    try:
        sys.exit(d.main())
    except SystemExit:
        raise
    except KeyboardInterrupt:
        sys.exit(130)
    except BaseException:
        traceback.print_exc()
        sys.exit(2)


if __name__ == "__main__":
    main()
