# SPDX-License-Identifier: MIT
"""A user who may only read a region (root's 0644 region) takes OFD read
locks on its object: on byte 0, 1 or 2, on all three, or on the whole file.
Such locks may keep a region in use (byte 0 is where handles lock) and no
more: they never fake a live owner, never make root's create, zinc_unlink
or gc fail or wait, and never stall zincfs for anybody else."""
import errno
import os
import signal
import threading
import time

import pytest

from conftest import PAGE, ZINC, ZincError, run

LOCKS = {
    "byte0": [[0, 1]],
    "byte1": [[1, 1]],
    "byte2": [[2, 1]],
    "bytes012": [[0, 1], [1, 1], [2, 1]],
    "whole": [[0, 0]],  # l_start 0, l_len 0
}
PROMPT = 1.0  # seconds: "no wait"; the old lock protocol waited 2 s per step


def stale_region_of_root(zfs, name):
    """Root's 0644 region whose owner died (SIGKILL): no handle, no owner."""
    z = zfs.zinc().create(name)
    os.chmod(zfs.obj(name), 0o644)
    os.kill(z.pid, signal.SIGKILL)
    z.p.wait(timeout=10)


def timed(fn, *args, **kw):
    t = time.monotonic()
    try:
        return fn(*args, **kw), time.monotonic() - t
    except ZincError as e:
        raise AssertionError(f"{fn.__name__}{args} failed after "
                             f"{time.monotonic() - t:.2f}s: {e}") from e


@pytest.mark.parametrize("locks", LOCKS.values(), ids=LOCKS.keys())
def test_readers_locks_never_block_roots_create_unlink_stat_and_gc(zfs, attacker, locks):
    for name in ("c", "u", "rm", "g"):
        stale_region_of_root(zfs, name)
        attacker("lock", name, locks)
    z = zfs.zinc()

    info = z.stat("c")
    assert info["owner_alive"] == 0, f"a reader's lock fakes a live owner: {info}"

    _, dt = timed(z.create, "c")  # replaces the stale region (ZincError if not)
    assert dt < PROMPT, f"zinc_create over a stale region took {dt:.2f}s"

    z2 = zfs.zinc()
    _, dt = timed(z2.cmd, "unlink u")
    assert dt < PROMPT, f"zinc_unlink took {dt:.2f}s"
    assert not zfs.obj("u").exists()
    r, dt = timed(run, [str(ZINC), "rm", "rm"], 10, env=zfs.env)
    assert r.returncode == 0 and dt < PROMPT, (r.returncode, f"{dt:.2f}s", r.stderr)
    assert not zfs.obj("rm").exists()

    r, dt = timed(run, [str(ZINC), "gc", "-v"], 10, env=zfs.env)
    assert r.returncode == 0 and dt < PROMPT, (r.returncode, f"{dt:.2f}s", r.stdout, r.stderr)
    # zinc(1): gc removes a region with no handle and a dead owner; a lock
    # on byte 0 is a handle's lock, so then the region is in use and kept.
    in_use = any(start == 0 for start, _ in locks)
    assert zfs.obj("g").exists() == in_use, r.stdout
    assert ("removed g:" in r.stdout) != in_use, r.stdout
    z.exit()


def test_locked_regions_never_stall_requests_on_other_regions(zfs, attacker):
    """The attacker read-locks byte 2 to the end (all it can: zincfs holds
    the owner's lock) of five 0644 regions root made through the mount; root resizes them (each a remove and create) while
    it reads another region's counter through the mount.  Every request is
    answered promptly (the old code waited 2 s per locked region, holding
    the daemon's lock)."""
    names = [f"l{i}" for i in range(5)]
    r = zfs.sh("umask 022 && touch other " + " ".join(names))
    assert r.returncode == 0, r.stderr
    for n in names:
        attacker("lock", n, [[2, 0]])
    results = {}

    def resize():
        for n in names:
            t = time.monotonic()
            try:
                os.truncate(zfs.path(n), 2 * PAGE)
                results[n] = (0, time.monotonic() - t)
            except OSError as e:
                results[n] = (e.errno, time.monotonic() - t)

    th = threading.Thread(target=resize)
    th.start()
    worst = 0.0
    while th.is_alive():
        _, dt = timed(os.getxattr, zfs.path("other"), "user.zinc.seq")
        worst = max(worst, dt)
    th.join()
    print(f"worst getxattr {worst:.3f}s; resizes (errno, s): {results}")
    slow = {n: f"{dt:.2f}s" for n, (_, dt) in results.items() if dt >= PROMPT}
    assert worst < PROMPT and not slow, \
        f"a getxattr of another region took {worst:.2f}s; resizes of locked regions took {slow}"
    # zincfs(8): a resize succeeds or, if the region is in use, fails EBUSY.
    bad = {n: errno.errorcode.get(e, e) for n, (e, _) in results.items()
           if e not in (0, errno.EBUSY)}
    assert not bad, f"undocumented errors: {bad}"
