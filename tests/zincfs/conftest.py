# SPDX-License-Identifier: MIT
"""Fixtures and helpers for the zincfs integration tests.

Every test gets its own private tmpfs as the region directory and its own
zincfs mount (fixture ``zfs``).  The fixture waits for the mount with a
deadline, always unmounts, kills what the test spawned, and fails the test
when the daemon crashed, exited non-zero, logged an unexpected "error:" line
or a sanitizer/valgrind report, or left something behind.

Environment:
  ZINC_BUILD_DIR   meson build dir (default <repo>/build)
  ZINCFS_WRAPPER   command prefix for the daemon, e.g. "valgrind --error-exitcode=99"
  ZINCFS_SLOW      multiplier for every deadline (default 1, 10 with a wrapper)
  ZINCFS_TEST_TIMEOUT  seconds one test may run (default 60 x ZINCFS_SLOW)

Only the Python standard library and pytest are used.
"""
import errno
import faulthandler
import os
import re
import select
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _build_dir():
    d = os.environ.get("ZINC_BUILD_DIR")
    if not d:
        return REPO / "build"
    p = Path(d)
    if not p.is_absolute():
        p = Path.cwd() / p if (Path.cwd() / p).exists() else REPO / p
    return p.resolve()


BUILD = _build_dir()
ZINCFS = BUILD / "zincfs" / "zincfs"
HELPER = BUILD / "tests" / "helpers" / "zinc-helper"
PEER = BUILD / "tests" / "helpers" / "zinc-core-peer"  # a zinc-core handle
PRODUCER = BUILD / "libzinc" / "zinc-producer"
CONSUMER = BUILD / "libzinc" / "zinc-consumer"
WRAPPER = shlex.split(os.environ.get("ZINCFS_WRAPPER", ""))
SLOW = float(os.environ.get("ZINCFS_SLOW", "10" if WRAPPER else "1"))

# A job started in the background by a non-interactive shell (as CI may
# start us) inherits SIGINT ignored, and exec passes that on to every
# process a test starts: `cat` would then survive the SIGINT a test sends.
# A handler in this process is reset to the default in its children.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)
PAGE = os.sysconf("SC_PAGE_SIZE")
TEST_TIMEOUT = int(os.environ.get("ZINCFS_TEST_TIMEOUT", 60 * SLOW))  # per test call

# What /proc/PID/wchan shows on this kernel (6.x) for each kind of block.
# Suffixes such as ".constprop.0" / ".isra.0" are stripped before comparing.
FUSE_WCHANS = {"request_wait_answer", "fuse_wait_answer", "__fuse_simple_request",
               "fuse_simple_request", "fuse_request_send"}
FUTEX_WCHANS = {"futex_do_wait", "futex_wait_queue", "futex_wait_queue_me",
                "futex_wait", "__futex_wait"}
POLL_WCHANS = {"poll_schedule_timeout", "do_poll", "do_sys_poll", "do_select",
               "core_sys_select", "do_epoll_wait", "ep_poll"}

SANITIZER_RE = re.compile(
    r"AddressSanitizer|LeakSanitizer|ThreadSanitizer|UndefinedBehaviorSanitizer|"
    r"MemorySanitizer|runtime error:|ERROR SUMMARY: [1-9]|Invalid (read|write|free)|"
    r"Conditional jump or move depends|definitely lost: [1-9]")


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "zincfs(*opts, start=True): extra -o options (or -flags) for the zfs fixture "
        "(start=False: do not mount; call zfs.start())")


# ---------------------------------------------------------------- timeouts

class TestTimeout(Exception):
    pass


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    # Last resort if even SIGALRM cannot get through (e.g. a thread stuck in
    # an unkillable FUSE request): dump stacks and exit rather than hang CI.
    faulthandler.dump_traceback_later(TEST_TIMEOUT + 120, exit=True)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    def on_alarm(signum, frame):
        raise TestTimeout(f"test exceeded {TEST_TIMEOUT}s")
    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(TEST_TIMEOUT)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


# ---------------------------------------------------------------- helpers

def wait_until(pred, timeout=5.0, what=None, interval=0.002):
    """Poll pred() until it returns a true value (returned) or fail."""
    deadline = time.monotonic() + timeout * SLOW
    delay = interval
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout * SLOW:.1f}s waiting for "
                                 f"{what or getattr(pred, '__name__', 'condition')}")
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


def _read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def proc_state(pid, tid=None):
    s = _read(f"/proc/{pid}/task/{tid}/stat" if tid else f"/proc/{pid}/stat")
    if s is None:
        return None
    return s[s.rindex(")") + 2]


def wchan(pid, tid=None):
    s = _read(f"/proc/{pid}/task/{tid}/wchan" if tid else f"/proc/{pid}/wchan")
    if s is None:
        return None
    return s.strip().split(".")[0]


# read(2)-family syscall numbers: a "fuse" block must be a read, not e.g.
# a LOOKUP during open() that the daemon has not answered yet.
READ_SYSCALLS = {"x86_64": {0, 17, 19, 295, 327},
                 "aarch64": {63, 65, 67, 69, 286}}.get(os.uname().machine)


def current_syscall(pid, tid=None):
    """(nr, first argument) from /proc/PID/syscall, or None."""
    s = _read(f"/proc/{pid}/task/{tid}/syscall" if tid else f"/proc/{pid}/syscall")
    if not s or s.startswith("running"):
        return None
    f = s.split()
    try:
        return int(f[0]), int(f[1], 16)
    except (ValueError, IndexError):
        return None


def is_blocked(pid, kind, tid=None, path=None):
    """True if the task sleeps (state S) in a wait of the given kind; for
    "fuse", in a read() (on path, if given) waiting for zincfs's answer."""
    wset = {"fuse": FUSE_WCHANS, "futex": FUTEX_WCHANS, "poll": POLL_WCHANS}[kind]
    if proc_state(pid, tid) != "S" or wchan(pid, tid) not in wset:
        return False
    if kind == "fuse":
        sc = current_syscall(pid, tid)
        if not sc or (READ_SYSCALLS is not None and sc[0] not in READ_SYSCALLS):
            return False
        if path is not None:
            try:
                return os.readlink(f"/proc/{pid}/fd/{sc[1]}") == str(path)
            except OSError:
                return False
    return True


def wait_blocked(pid, kind, timeout=5.0, tid=None, path=None):
    """Prove that pid (or its thread tid) is blocked in a FUSE read, a futex
    wait or a poll, not just 'started a while ago'."""
    def blocked():
        if proc_state(pid, tid) in (None, "Z", "X"):
            raise AssertionError(f"process {pid} exited while we waited for it to block")
        return is_blocked(pid, kind, tid, path)

    class Why:  # evaluated only when the wait fails
        def __str__(self):
            return (f"pid {pid} to block in {kind} (state {proc_state(pid, tid)}, "
                    f"wchan {wchan(pid, tid)}, syscall {current_syscall(pid, tid)})")
    wait_until(blocked, timeout, Why())


def count_blocked_tasks(pid, kind):
    n = 0
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return 0
    for tid in tids:
        if is_blocked(pid, kind, tid):
            n += 1
    return n


def threads_of(pid):
    for line in (_read(f"/proc/{pid}/status") or "").splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    return 0


def mountinfo_has(path):
    path = str(path)
    for line in (_read("/proc/self/mountinfo") or "").splitlines():
        f = line.split()
        mp = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), f[4])
        if mp == path:
            return line
    return None


def mounts_under(base):
    """Mount points at or below base, deepest first."""
    base = str(base)
    out = []
    for line in (_read("/proc/self/mountinfo") or "").splitlines():
        mp = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), line.split()[4])
        if mp == base or mp.startswith(base + "/"):
            out.append(mp)
    return sorted(out, key=len, reverse=True)


def run(args, timeout=10, **kw):
    kw.setdefault("stdout", subprocess.PIPE)
    kw.setdefault("stderr", subprocess.PIPE)
    kw.setdefault("text", True)
    return subprocess.run(args, timeout=timeout * SLOW, **kw)


FUSECTL = "/sys/fs/fuse/connections"


def ensure_fusectl():
    """Mount the FUSE control file system where it is missing (a machine
    without systemd's unit for it); fail loudly if it cannot be."""
    line = mountinfo_has(FUSECTL)
    if line and " - fusectl " in line:
        return
    r = run(["mount", "-t", "fusectl", "none", FUSECTL])
    if r.returncode and not (mountinfo_has(FUSECTL) or "").count(" - fusectl "):
        raise AssertionError(f"cannot mount fusectl on {FUSECTL}: {r.stderr.strip()}")


def shm_zinc_objects(d="/dev/shm"):
    try:
        return {n for n in os.listdir(d) if n.startswith("zinc_")}
    except OSError:
        return set()


def kill_tree(p, sig=signal.SIGKILL):
    """Kill a child we started (its process group if it leads one)."""
    if p.poll() is not None:
        return
    try:
        if os.getpgid(p.pid) == p.pid:
            os.killpg(p.pid, sig)
        else:
            p.send_signal(sig)
    except ProcessLookupError:
        pass


def read_line(p, timeout=10.0):
    """Next line of a child's stdout (opened with stdout=PIPE), or fail."""
    buf = getattr(p, "_linebuf", b"")
    deadline = time.monotonic() + timeout * SLOW
    fd = p.stdout.fileno()
    while b"\n" not in buf:
        left = deadline - time.monotonic()
        if left <= 0:
            p._linebuf = buf
            raise AssertionError(f"no line from {p.args} in {timeout}s (got {buf!r})")
        r, _, _ = select.select([fd], [], [], left)
        if r:
            chunk = os.read(fd, 65536)
            if not chunk:
                p._linebuf = buf
                raise AssertionError(f"{p.args} closed stdout (rc {p.poll()}), got {buf!r}")
            buf += chunk
    line, p._linebuf = buf.split(b"\n", 1)
    return line.decode(errors="replace")


def finish(p, timeout=10.0):
    """Wait for a child; return (rc, rest of stdout, stderr) as text."""
    try:
        out, err = p.communicate(timeout=timeout * SLOW)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"{p.args} still running after {timeout}s")
    out = getattr(p, "_linebuf", b"") + (out or b"")
    dec = lambda b: b.decode(errors="replace") if isinstance(b, bytes) else (b or "")
    return p.returncode, dec(out), dec(err)


class ZincError(Exception):
    def __init__(self, err, msg):
        super().__init__(f"{errno.errorcode.get(err, err)}: {msg}")
        self.errno = err


class Zinc:
    """A zinc-helper process: one libzinc handle driven over a pipe (or, with
    prog=PEER, a zinc-core-peer process: one zinc-core handle)."""

    def __init__(self, zfs, prog=HELPER):
        self.zfs = zfs
        self.p = zfs.spawn([str(prog)], stdin=subprocess.PIPE,
                           stdout=subprocess.PIPE, stderr=None)
        self.pid = self.p.pid
        self._buf = b""

    def send(self, line):
        w = line.split()
        if len(w) > 1 and w[0] in ("create", "open", "stat"):
            self.zfs.used.add(w[1])
        self.p.stdin.write((line + "\n").encode())
        self.p.stdin.flush()

    def reply(self, timeout=10.0):
        deadline = time.monotonic() + timeout * SLOW
        fd = self.p.stdout.fileno()
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"zinc-helper {self.pid}: no reply in {timeout}s")
            r, _, _ = select.select([fd], [], [], left)
            if r:
                chunk = os.read(fd, 65536)
                if not chunk:
                    raise AssertionError(f"zinc-helper {self.pid} exited "
                                         f"(rc {self.p.poll()})")
                self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        line = line.decode()
        if line.startswith("ok"):
            return line[3:]
        m = re.match(r"err (-?\d+) (.*)", line)
        assert m, f"zinc-helper: bad reply {line!r}"
        raise ZincError(-int(m.group(1)), m.group(2))

    def cmd(self, line, timeout=10.0):
        self.send(line)
        return self.reply(timeout)

    def create(self, name, cap=PAGE):
        self.cmd(f"create {name} {cap}")
        return self

    def open(self, name):
        return int(self.cmd(f"open {name}"))

    def write(self, off, data):
        if isinstance(data, str):
            data = data.encode()
        self.cmd(f"write {off} {data.hex()}")

    def fill(self, off, length, byte):
        self.cmd(f"fill {off} {length} {byte}")

    def read(self, off, length):
        return bytes.fromhex(self.cmd(f"read {off} {length}"))

    def notify(self, n=1):
        return int(self.cmd(f"notify {n}"))

    def seq(self):
        return int(self.cmd("seq"))

    def stat(self, name=None):
        out = self.cmd(f"stat {name}" if name else "hstat")
        return {k: int(v) for k, v in (kv.split("=") for kv in out.split())}

    def close(self):
        self.cmd("close")

    def exit(self):
        self.cmd("exit")
        self.p.wait(timeout=10 * SLOW)


class ZincFS:
    """One zincfs mount on a private tmpfs (see module docstring)."""

    def __init__(self, base, opts):
        self.base = Path(base)
        self.mnt = self.base / "mnt"
        self.shm = self.base / "shm"
        self.opts = list(opts)
        self.env = dict(os.environ, ZINC_SHM_DIR=str(self.shm))
        self.env.pop("ZINC_ALWAYS_WAKE", None)
        self.proc = None
        self.conn = None
        self.children = []
        self.expected_logs = []
        self.expected_exit = None  # None: must exit 0 after unmount
        self.problems = []
        self._logs = []  # (path, daemon) of every daemon started
        self.used = set()  # region names the test used (names_used)
        self.nstarted = 0

    # -- daemon lifecycle
    def cmdline(self, extra_opts=()):
        """Marker/extra options starting with '-' are flags (e.g. -s)."""
        every = self.opts + list(extra_opts)
        flags = [o for o in every if o.startswith("-")]
        opts = [f"shm_dir={self.shm}"] + [o for o in every if not o.startswith("-")]
        return WRAPPER + [str(ZINCFS), "-f", *flags, "-o", ",".join(opts), str(self.mnt)]

    def start(self, extra_opts=()):
        assert ZINCFS.exists(), f"{ZINCFS} not built"
        self.nstarted += 1
        logpath = self.base / f"zincfs-{self.nstarted}.log"
        logf = open(logpath, "wb")
        self.proc = subprocess.Popen(self.cmdline(extra_opts), stdin=subprocess.DEVNULL,
                                     stdout=logf, stderr=subprocess.STDOUT,
                                     env={k: v for k, v in self.env.items()
                                          if k != "ZINC_SHM_DIR"})
        logf.close()
        self._logs.append((logpath, self.proc))
        self.expected_exit = None

        def up():
            if self.proc.poll() is not None:
                raise AssertionError(f"zincfs exited with {self.proc.returncode} before "
                                     f"mounting:\n{self.log()}")
            line = mountinfo_has(self.mnt)
            return line and " fuse" in line
        wait_until(up, 10, "the zincfs mount")
        self.conn = os.minor(os.stat(self.mnt).st_dev)
        return self.proc

    def log(self, all_daemons=False):
        logs = self._logs if all_daemons else self._logs[-1:]
        return "".join(Path(p).read_text(errors="replace") for p, _ in logs)

    def expect_log(self, pattern):
        """Declare a log line (regex) that must not fail the test."""
        self.expected_logs.append(re.compile(pattern))

    def kill(self, sig=signal.SIGKILL, wait=True):
        """Send sig to the daemon; for SIGKILL, clean up the dead mount."""
        self.expected_exit = -sig if sig == signal.SIGKILL else 0
        self.proc.send_signal(sig)
        if wait:
            self.proc.wait(timeout=15 * SLOW)
            if sig == signal.SIGKILL:
                self.lazy_unmount()
        return self.proc.returncode

    def lazy_unmount(self):
        if mountinfo_has(self.mnt):
            r = run(["fusermount3", "-u", "-z", str(self.mnt)])
            if r.returncode and mountinfo_has(self.mnt):
                run(["umount", "-l", str(self.mnt)])
        assert not mountinfo_has(self.mnt), "could not unmount the dead mount"

    def remount(self, extra_opts=()):
        if self.proc and self.proc.poll() is None:
            self.stop()
        self.lazy_unmount()
        return self.start(extra_opts)

    def abort_connection(self):
        """Abort our FUSE connection (frees clients of a wedged daemon); never
        a connection whose number a mount outside our directory now uses."""
        if self.conn is None:
            return
        for line in (_read("/proc/self/mountinfo") or "").splitlines():
            f = line.split()
            if f[2] == f"0:{self.conn}" and not f[4].startswith(str(self.base) + "/"):
                return
        ensure_fusectl()
        ctl = Path(f"{FUSECTL}/{self.conn}/abort")
        if ctl.exists():  # else the connection has ended: nothing to abort
            ctl.write_text("1")

    def stop(self):
        """Unmount, wait for the daemon, record problems."""
        p = self.proc
        if p is None:
            return
        grace = 15
        if p.poll() is None and mountinfo_has(self.mnt):
            r = run(["fusermount3", "-u", str(self.mnt)])
            if r.returncode:
                self.problems.append(f"fusermount3 -u failed: {r.stderr.strip()} "
                                     "(files left open?)")
                run(["fusermount3", "-u", "-z", str(self.mnt)])
                grace = 2  # open files keep a lazily unmounted daemon alive
        try:
            p.wait(timeout=grace * SLOW)
        except subprocess.TimeoutExpired:
            self.problems.append("zincfs did not exit after unmount; killed")
            self.abort_connection()
            p.kill()
            p.wait(timeout=15 * SLOW)
        if mountinfo_has(self.mnt):
            self.lazy_unmount()
        rc = p.returncode
        want = self.expected_exit if self.expected_exit is not None else 0
        if rc != want:
            self.problems.append(f"zincfs exited with {rc}, expected {want}")
        self.proc = None

    # -- processes the test starts
    def spawn(self, args, **kw):
        kw.setdefault("env", self.env)
        kw.setdefault("cwd", str(self.base))
        kw.setdefault("start_new_session", True)
        p = subprocess.Popen(args, **kw)
        self.children.append(p)
        return p

    def zinc(self):
        return Zinc(self)

    def peer(self):
        """A process holding a zinc-core handle (tests/helpers/zinc-core-peer.c)."""
        return Zinc(self, PEER)

    def sh(self, script, timeout=10, user=None, **kw):
        """Run a shell snippet in the mount directory."""
        args = ["sh", "-c", script]
        if user:
            args = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups"] + args
        kw.setdefault("cwd", str(self.mnt))
        kw.setdefault("env", self.env)
        return run(args, timeout=timeout, **kw)

    def path(self, name):
        first = str(name).split("/")[0]
        self.used |= {first, first.rsplit(".", 1)[0]}  # NAME of NAME.notify
        return self.mnt / name

    def obj(self, name):
        self.used.add(str(name))
        return self.shm / f"zinc_{name}"

    def names_used(self):
        """Region names this test used: those it named through path(),
        obj() or a zinc-helper command, and those in its region directory.
        A leak into /dev/shm (something ignoring shm_dir/ZINC_SHM_DIR) has
        one of these names; other programs' zinc_* objects there do not
        concern the test."""
        return self.used | {n[5:] for n in shm_zinc_objects(self.shm)}

    def listing(self):
        """The mount's directory as os.listdir gives it, without the
        .events file that every mount has (test_events.py)."""
        return [n for n in os.listdir(self.mnt) if n != ".events"]

    def names(self):
        return set(self.listing())

    # -- teardown checks
    def check_logs(self):
        for path, _ in self._logs:
            for line in Path(path).read_text(errors="replace").splitlines():
                bad = re.search(r"(^|zincfs: )error:", line) or SANITIZER_RE.search(line)
                if bad and not any(r.search(line) for r in self.expected_logs):
                    self.problems.append(f"unexpected daemon log line: {line}")


def _teardown(z, base, shm_before):
    errors = []

    def step(fn):
        try:
            fn()
        except Exception as e:  # keep cleaning up
            errors.append(f"{fn.__name__ if hasattr(fn, '__name__') else fn}: {e!r}")

    def kill_children():
        for c in z.children:
            kill_tree(c)
        for c in z.children:
            try:
                c.wait(timeout=5 * SLOW)
            except subprocess.TimeoutExpired:
                errors.append(f"child {c.args} did not die (stuck in FUSE?)")
        for c in z.children:
            for f in (c.stdin, c.stdout, c.stderr):
                if f:
                    f.close()

    step(kill_children)
    step(z.stop)
    if any(c.poll() is None for c in z.children):
        step(kill_children)
    step(z.check_logs)
    try:
        logs = z.log(all_daemons=True)
    except OSError:
        logs = ""

    def leftovers():
        # Only objects of names this test used: other programs on the
        # machine may create and remove their own meanwhile.
        new = {n for n in shm_zinc_objects() - shm_before if n[5:] in z.names_used()}
        if new:
            errors.append(f"test left objects in /dev/shm: {sorted(new)}")

    step(leftovers)

    def unmount_tmpfs():
        for d in mounts_under(base):
            if Path(d) not in (z.mnt, z.shm):
                errors.append(f"test left a mount on {d}")
            if run(["umount", d]).returncode:
                run(["umount", "-l", d])
        shutil.rmtree(base, ignore_errors=True)

    step(unmount_tmpfs)
    return z.problems + errors, logs


@pytest.fixture
def zfs(request):
    assert os.geteuid() == 0, "the zincfs tests mount filesystems: run them as root"
    assert HELPER.exists(), f"{HELPER} not built (ninja -C {BUILD})"
    marker = request.node.get_closest_marker("zincfs")
    opts = list(marker.args) if marker else []
    start = marker.kwargs.get("start", True) if marker else True
    shm_before = shm_zinc_objects()
    base = Path(tempfile.mkdtemp(prefix="zincfs-test-", dir="/tmp"))
    os.chmod(base, 0o755)  # other users (setpriv nobody) must reach the mount
    z = ZincFS(base, opts)
    z.mnt.mkdir()
    z.shm.mkdir()
    os.chmod(z.mnt, 0o755)
    r = run(["mount", "-t", "tmpfs", "-o", "size=64m,mode=1777", "zinctest", str(z.shm)])
    assert r.returncode == 0, r.stderr
    try:
        if start:
            z.start()
        yield z
    finally:
        problems, logs = _teardown(z, base, shm_before)
        if problems:
            pytest.fail("zincfs fixture teardown:\n  " + "\n  ".join(problems)
                        + "\n--- daemon log (tail) ---\n" + logs[-4000:], pytrace=False)


# A child that opens argv[2], waits for POLLIN with poll, select or epoll
# (argv[1]), then reads: prints "open", then "ready DATA" or "timeout".
POLLER = r"""
import os, select, sys
mode, path = sys.argv[1], sys.argv[2]
fd = os.open(path, os.O_RDONLY | (os.O_NONBLOCK if len(sys.argv) > 3 else 0))
print("open", flush=True)
if mode == "poll":
    p = select.poll(); p.register(fd, select.POLLIN)
    ev = p.poll(30000); ok = bool(ev) and bool(ev[0][1] & select.POLLIN)
elif mode == "select":
    r, _, _ = select.select([fd], [], [], 30); ok = fd in r
else:
    e = select.epoll(); e.register(fd, select.EPOLLIN)
    ev = e.poll(30); ok = bool(ev) and bool(ev[0][1] & select.EPOLLIN)
print("ready" if ok else "timeout", os.read(fd, 64).decode().strip(), flush=True)
"""
