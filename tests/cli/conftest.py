# SPDX-License-Identifier: MIT
"""Fixtures for the `zinc` command-line tool tests.

Every test gets a private region directory (ZINC_SHM_DIR) in a fresh temp
dir, so /dev/shm is never touched; the fixture checks that (for the names
the test used: other programs may create and remove their own zinc_*
objects there meanwhile), kills every process a test started and removes
the directory, also when a test fails.

Binaries come from $ZINC_BUILD_DIR (default <repo>/build; a relative value
is taken from the repo root): libzinc/tools/zinc and the example programs
libzinc/zinc-producer and libzinc/zinc-consumer.
"""
import json
import os
import selectors
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
_build = Path(os.environ.get("ZINC_BUILD_DIR", "build"))
BUILD = _build if _build.is_absolute() else REPO / _build
ZINC = BUILD / "libzinc" / "tools" / "zinc"
PRODUCER = BUILD / "libzinc" / "zinc-producer"
CONSUMER = BUILD / "libzinc" / "zinc-consumer"

DEADLINE = 10.0  # seconds for anything that should happen "promptly"


def wait_until(cond, timeout=DEADLINE, what="condition"):
    """Poll cond() until it returns a true value; fail after timeout."""
    end = time.monotonic() + timeout
    delay = 0.001
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > end:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


def proc_state(pid):
    """(state letter, wchan) of a process, or (None, None) if gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        wchan = Path(f"/proc/{pid}/wchan").read_text()
    except OSError:
        return None, None
    return stat.rsplit(")", 1)[1].split()[0], wchan


def dev_shm_zinc():
    try:
        return {n for n in os.listdir("/dev/shm") if n.startswith("zinc_")}
    except FileNotFoundError:
        return set()


class Zinc:
    def __init__(self, shm):
        self.shm = shm
        self.env = dict(os.environ, ZINC_SHM_DIR=str(shm))
        self.env.pop("ZINC_ALWAYS_WAKE", None)
        self.procs = []
        self.pids = []  # processes we did not start directly (--background)
        self.args = set()  # every argument given to a program: names used

    def path(self, name):
        return self.shm / f"zinc_{name}"

    def run(self, *args, timeout=DEADLINE, env=None):
        """Run zinc to completion; returns CompletedProcess (str output)."""
        self.args.update(map(str, args))
        return subprocess.run([str(ZINC), *map(str, args)], env=env or self.env,
                              capture_output=True, timeout=timeout,
                              encoding="utf-8", errors="surrogateescape")

    def ok(self, *args):
        r = self.run(*args)
        assert r.returncode == 0, (args, r.returncode, r.stdout, r.stderr)
        return r

    def spawn(self, *argv, **kw):
        self.args.update(map(str, argv))
        p = subprocess.Popen([str(a) for a in argv], env=self.env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)
        self.procs.append(p)
        return p

    def zinc(self, *args):
        return self.spawn(ZINC, *args)

    def readline(self, p, timeout=DEADLINE):
        """One line of p's stdout, waiting at most timeout."""
        buf = b""
        end = time.monotonic() + timeout
        with selectors.DefaultSelector() as sel:
            sel.register(p.stdout, selectors.EVENT_READ)
            while not buf.endswith(b"\n"):
                left = end - time.monotonic()
                if left <= 0 or not sel.select(left):
                    pytest.fail(f"no line from {p.args} within {timeout}s: {buf!r}")
                chunk = os.read(p.stdout.fileno(), 1)
                if not chunk:
                    pytest.fail(f"{p.args} closed stdout (rc={p.wait(5)}, "
                                f"stderr={p.stderr.read()!r}) after {buf!r}")
                buf += chunk
        return buf.decode()

    def hold(self, name, size="4K"):
        """Start `zinc create NAME SIZE`, wait for its ready line."""
        p = self.zinc("create", name, size)
        line = self.readline(p)
        assert line.split() == ["ready", name, line.split()[2], str(p.pid)], line
        return p

    def ls(self):
        return json.loads(self.ok("ls", "--json").stdout)

    def entry(self, name):
        found = [e for e in self.ls() if e["name"] == name]
        return found[0] if found else None

    def info(self, name):
        return json.loads(self.ok("info", name, "--json").stdout)

    def wait_blocked(self, p, name):
        """Prove a `zinc wait` process sleeps in the futex of region name."""
        def blocked():
            state, wchan = proc_state(p.pid)
            assert state is not None and p.poll() is None, p.stderr.read()
            return state == "S" and "futex" in wchan
        wait_until(blocked, what=f"{p.args} to sleep in a futex wait")
        assert self.info(name)["waiters"] >= 1

    def names_used(self):
        """Region names the test used: every argument it gave a program and
        every object in its region directory (a leak into /dev/shm, from
        something ignoring ZINC_SHM_DIR, has one of these names)."""
        try:
            objs = {n[5:] for n in os.listdir(self.shm) if n.startswith("zinc_")}
        except OSError:
            objs = set()
        return self.args | objs

    def cleanup(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.wait(DEADLINE)
            for f in (p.stdout, p.stderr):
                if f:
                    f.close()
        for pid in self.pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


@pytest.fixture
def zc():
    assert ZINC.exists(), f"{ZINC} not built (ninja -C {BUILD})"
    before = dev_shm_zinc()
    shm = Path(tempfile.mkdtemp(prefix="zinc-cli-"))
    z = Zinc(shm)
    try:
        yield z
    finally:
        z.cleanup()
        used = z.names_used()
        shutil.rmtree(shm, ignore_errors=True)
        # Honour ZINC_SHM_DIR: no object of ours may have appeared in /dev/shm.
        leaked = {n for n in dev_shm_zinc() - before if n[5:] in used}
        assert not leaked, f"test left objects in /dev/shm: {sorted(leaked)}"
