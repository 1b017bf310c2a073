# SPDX-License-Identifier: MIT
"""Fixtures for the security suite: a root-run zincfs mount with allow_other
over a private tmpfs of mode 1777 (like /dev/shm), attacked by a real
unprivileged second user (uid/gid ATTACKER, no passwd entry needed).

The zincfs suite's conftest (fixture ``zfs``, its timeouts and helpers) is
loaded from tests/zincfs and re-exported, not copied, so both suites mount,
clean up and judge the daemon the same way.

``attacker(zfs)`` starts tests/security/attacker.py as that user: a Python
process that runs the functions root names, one JSON line per call.
"""
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location(
    "zincfs_conftest", Path(__file__).resolve().parents[1] / "zincfs" / "conftest.py")
zc = importlib.util.module_from_spec(_spec)
sys.modules["zincfs_conftest"] = zc
_spec.loader.exec_module(zc)

from zincfs_conftest import *  # noqa: F401,F403  helpers for the tests
from zincfs_conftest import (pytest_configure, pytest_runtest_call,  # noqa: F401
                             pytest_runtest_protocol, read_line, zfs)

ATTACKER = 4244  # a fixed uid and gid nothing on a test machine uses
AS_ATTACKER = ["setpriv", f"--reuid={ATTACKER}", f"--regid={ATTACKER}", "--clear-groups"]
PY = "/usr/bin/python3"
ZINC = zc.BUILD / "libzinc" / "tools" / "zinc"
_AGENT = (Path(__file__).parent / "attacker.py").read_text()


def pytest_collection_modifyitems(items):
    """Every test here mounts with allow_other: the attacker must reach the
    mount.  A test's own zincfs marker must say so itself."""
    for item in items:
        m = item.get_closest_marker("zincfs")
        if m is None:
            item.add_marker(pytest.mark.zincfs("allow_other"))
        else:
            assert "allow_other" in m.args, f"{item.nodeid}: zincfs marker without allow_other"


class Attacker:
    """The attacker.py agent running as uid/gid ATTACKER."""

    def __init__(self, zfs):
        # -c: the source need not be readable by the attacker.
        self.p = zfs.spawn(AS_ATTACKER + [PY, "-c", _AGENT, str(zfs.mnt), str(zfs.shm)],
                           stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.pid = self.p.pid

    def send(self, fn, *args):
        self.p.stdin.write((json.dumps([fn, args]) + "\n").encode())
        self.p.stdin.flush()

    def reply(self, timeout=30.0):
        status, value = json.loads(read_line(self.p, timeout))
        assert status == "ok", f"attacker: {value}"
        return value

    def __call__(self, fn, *args, timeout=30.0):
        """Run attacker.py's fn(*args) as the attacker; its return value."""
        self.send(fn, *args)
        return self.reply(timeout)


@pytest.fixture
def attacker(zfs):
    a = Attacker(zfs)
    assert a("whoami") == [ATTACKER, ATTACKER, []]
    return a


def as_attacker(zfs, script, timeout=10):
    """A shell snippet run by the attacker in the mount directory."""
    return zfs.sh(script, timeout=timeout, user=ATTACKER)


def daemon_rss_kib(zfs):
    for line in Path(f"/proc/{zfs.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")
