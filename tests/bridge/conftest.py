# SPDX-License-Identifier: MIT
"""Fixtures for the zinc-bridge tests: a broker and two simulated hosts.

Each test gets its own mosquitto on 127.0.0.1 and a free port (no
persistence, anonymous), and hosts: each host is a private region directory
(ZINC_SHM_DIR, a fresh directory under /dev/shm, so regions live on tmpfs
as in production) with its own bridges.  Regions are written and read
through the region files (data at offset page size) and signalled and
awaited with the built `zinc` tool, so the tests go through the same
interfaces as users.  Every process a test started is killed and every
directory removed at the end, also when a test fails.

Binaries come from $ZINC_BUILD_DIR (default <repo>/build).
"""
import getpass
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
_build = Path(os.environ.get("ZINC_BUILD_DIR", "build"))
BUILD = _build if _build.is_absolute() else REPO / _build
ZINC = BUILD / "libzinc" / "tools" / "zinc"
BRIDGE = BUILD / "bridge" / "zinc-bridge"
LIBZINC = BUILD / "libzinc" / "libzinc.so"
MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"

DEADLINE = 10.0
PAGE = os.sysconf("SC_PAGE_SIZE")


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


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    """A private mosquitto; stop() and start() keep its port."""

    def __init__(self, workdir, port=None, extra_conf=""):
        self.port = port or free_port()
        self.dir = workdir
        self.conf = workdir / "mosquitto.conf"
        # user: mosquitto started as root would switch to the mosquitto
        # user, who cannot read the test's private files.
        self.conf.write_text(f"listener {self.port} 127.0.0.1\n"
                             "allow_anonymous true\npersistence false\n"
                             f"user {getpass.getuser()}\n" + extra_conf)
        self.log = workdir / "mosquitto.log"
        self.proc = None

    def start(self):
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.conf)],
                                         stdout=log, stderr=log)

        def listening():
            assert self.proc.poll() is None, self.log.read_text()
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return True
            except OSError:
                return False
        wait_until(listening, what=f"mosquitto on port {self.port}")
        return self

    def stop(self, sig=signal.SIGKILL):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(DEADLINE)

    def url(self, scheme="mqtt"):
        return f"{scheme}://127.0.0.1:{self.port}"

    def pub(self, topic, payload=b"", props=(), retain=True):
        """Publish with mosquitto_pub (MQTT 5); props: (key, value) pairs."""
        argv = ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(self.port),
                "-V", "5", "-t", topic, "-s"]
        if retain:
            argv.append("-r")
        for k, v in props:
            argv += ["-D", "publish", "user-property", k, v]
        subprocess.run(argv, input=payload, check=True, timeout=DEADLINE,
                       capture_output=True)


class Bridge:
    def __init__(self, host, args, log):
        self.host = host
        self.log = log
        self.args = args
        with open(log, "ab") as f:
            self.proc = subprocess.Popen([str(BRIDGE), "-f", *args],
                                         env=host.env, stdout=f, stderr=f)

    def output(self):
        return self.log.read_text(errors="replace")

    def wait_log(self, text, timeout=DEADLINE):
        def seen():
            assert self.proc.poll() is None, \
                f"bridge exited {self.proc.returncode}: {self.output()}"
            return text in self.output()
        wait_until(seen, timeout, what=f"'{text}' in the bridge's log")

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        """SIGTERM; returns the exit status (the log has the counters)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(DEADLINE)

    def counters(self):
        """The counters of the exit line, after stop()."""
        line = [ln for ln in self.output().splitlines() if "exit on signal" in ln]
        assert line, self.output()
        fields = line[-1].split(": ", 2)[2]
        return {k.strip(): int(v) for k, v in
                (f.rsplit(" ", 1) for f in fields.split(", "))}


class Host:
    """One simulated machine: a region directory and its processes."""

    def __init__(self, name, root):
        self.name = name
        self.shm = Path(tempfile.mkdtemp(prefix=f"zinc-bridge-{name}-", dir="/dev/shm"))
        self.env = dict(os.environ, ZINC_SHM_DIR=str(self.shm))
        self.env.pop("ZINC_ALWAYS_WAKE", None)
        self.root = root
        self.procs = []
        self.bridges = []

    def path(self, name):
        return self.shm / f"zinc_{name}"

    def zinc(self, *args, timeout=DEADLINE):
        return subprocess.run([str(ZINC), *map(str, args)], env=self.env,
                              capture_output=True, timeout=timeout, text=True)

    def spawn(self, *argv):
        p = subprocess.Popen([str(a) for a in argv], env=self.env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.procs.append(p)
        return p

    def create(self, name, size=PAGE):
        """Hold region name (zinc create) until the test ends or rm."""
        p = self.spawn(ZINC, "create", name, size)
        line = p.stdout.readline().decode()
        assert line.startswith(f"ready {name} "), (line, p.stderr.read())
        return p

    def write(self, name, data, offset=0):
        with open(self.path(name), "r+b") as f:
            os.pwrite(f.fileno(), data, PAGE + offset)

    def read(self, name, n, offset=0):
        try:
            with open(self.path(name), "rb") as f:
                return os.pread(f.fileno(), n, PAGE + offset)
        except FileNotFoundError:
            return None

    def notify(self, name):
        r = self.zinc("notify", name)
        assert r.returncode == 0, r.stderr

    def put(self, name, data):
        self.write(name, data)
        self.notify(name)

    def info(self, name):
        r = self.zinc("info", name, "--json")
        return json.loads(r.stdout) if r.returncode == 0 else None

    def exists(self, name):
        return self.info(name) is not None

    def bridge(self, broker, *args, scheme="mqtt", id=None, connected=True):
        """Start a bridge in the foreground; wait until it is connected
        unless connected=False."""
        id = id or f"{self.name}{len(self.bridges)}"
        log = self.root / f"bridge-{id}.log"
        b = Bridge(self, ["--broker", broker.url(scheme), "--id", id, *args], log)
        self.bridges.append(b)
        if connected:
            b.wait_log("connected to")
        return b

    def cleanup(self):
        """Stop everything; returns the problems of bridges that did not
        exit cleanly on SIGTERM (status, sanitizer reports)."""
        problems = []
        for b in self.bridges:
            try:
                rc = b.stop()
            except subprocess.TimeoutExpired:
                b.proc.kill()
                rc = f"no exit within {DEADLINE}s of SIGTERM"
                b.proc.wait(DEADLINE)
            out = b.output()
            # Shown by pytest only when the test failed.
            print(f"---- bridge {b.args}, exit {rc}:\n{out}")
            if rc != 0 or "Sanitizer" in out or "runtime error" in out:
                problems.append(f"bridge {b.args}: exit {rc}:\n{out[-3000:]}")
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.wait(DEADLINE)
            for f in (p.stdout, p.stderr):
                f.close()
        shutil.rmtree(self.shm, ignore_errors=True)
        return problems


@pytest.fixture
def workdir():
    d = Path(tempfile.mkdtemp(prefix="zinc-bridge-test-"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def broker(workdir):
    for prog in (BRIDGE, ZINC):
        assert prog.exists(), f"{prog} not built (ninja -C {BUILD})"
    b = Broker(workdir).start()
    yield b
    b.stop()


@pytest.fixture
def hosts(workdir):
    made = []

    def make(name):
        h = Host(name, workdir)
        made.append(h)
        return h
    yield make
    problems = [p for h in made for p in h.cleanup()]
    assert not problems, "\n".join(problems)
