# SPDX-License-Identifier: MIT
"""`zinc wait` on several regions, `zinc watch` and `zinc top`, through the
real tool: real regions (held by `zinc create`), real signals, and `top` in
a real terminal (a tmux pane of 80x24)."""
import json
import os
import shutil
import signal
import struct
import subprocess

import pytest

from conftest import ZINC, wait_until

OK, USAGE, NOENT, TIMEOUT, REMOVED = 0, 2, 3, 7, 8


# ---- zinc wait A B C [TIMEOUT_MS] ----

def test_wait_several_prints_every_region_that_fired(zc):
    for n in ("a", "b", "c"):
        zc.hold(n)
    w = zc.zinc("wait", "a", "b", "c", "20000")
    zc.wait_blocked(w, "a")
    assert zc.info("b")["waiters"] == 1 and zc.info("c")["waiters"] == 1
    # Two fire while it cannot run: both are reported, not just the first.
    w.send_signal(signal.SIGSTOP)
    zc.ok("notify", "c")
    zc.ok("notify", "a")
    w.send_signal(signal.SIGCONT)
    assert w.wait(10) == OK
    assert sorted(w.stdout.read().decode().splitlines()) == ["a 1", "c 1"]
    for n in ("a", "b", "c"):
        assert zc.info(n)["waiters"] == 0


def test_wait_several_one_fires(zc):
    for n in ("a", "b"):
        zc.hold(n)
    w = zc.zinc("wait", "a", "b")
    zc.wait_blocked(w, "b")
    zc.ok("notify", "b")
    assert w.wait(10) == OK
    assert w.stdout.read().decode() == "b 1\n"


def test_wait_several_timeout_removed_and_signal(zc):
    for n in ("a", "b"):
        zc.hold(n)
    r = zc.run("wait", "a", "b", "200")
    assert r.returncode == TIMEOUT and r.stdout == "", r
    # removed: reported for that region, exit 8 since none fired
    w = zc.zinc("wait", "a", "b")
    zc.wait_blocked(w, "a")
    zc.ok("rm", "b")
    assert w.wait(10) == REMOVED
    assert "b: " in w.stderr.read().decode()
    assert zc.info("a")["waiters"] == 0
    # a signal ends it and it stops counting as a waiter everywhere
    zc.hold("c")
    w = zc.zinc("wait", "a", "c")
    zc.wait_blocked(w, "c")
    w.send_signal(signal.SIGTERM)
    assert w.wait(10) == 128 + signal.SIGTERM
    assert zc.info("a")["waiters"] == 0 and zc.info("c")["waiters"] == 0
    # a missing region is an error before any wait
    r = zc.run("wait", "a", "nope", "10")
    assert r.returncode == NOENT and "nope: No such region" in r.stderr, r


def test_wait_all_digit_names(zc):
    """The last all-digits argument after a name is the timeout; names made
    of digits are waited on anywhere else."""
    zc.hold("123")
    zc.hold("456")
    r = zc.run("wait", "123", "456")  # region 123, timeout 456 ms
    assert r.returncode == TIMEOUT and "123" in r.stderr, r
    w = zc.zinc("wait", "123", "456", "20000")
    zc.wait_blocked(w, "456")
    zc.ok("notify", "456")
    assert w.wait(10) == OK
    assert w.stdout.read().decode() == "456 1\n"


# ---- zinc watch ----

def stop(zc, p):
    p.send_signal(signal.SIGINT)
    assert p.wait(10) == OK
    return p.stdout.read().decode()


def test_watch_everything_with_creation_and_removal(zc):
    zc.hold("a")
    zc.ok("notify", "a")
    w = zc.zinc("watch")
    assert zc.readline(w) == "+a 1\n"
    zc.ok("notify", "a")
    assert zc.readline(w) == "a 2\n"
    zc.hold("b")
    assert zc.readline(w) == "+b 0\n"
    zc.ok("notify", "b")
    zc.ok("notify", "b")
    # coalesced or not, the last line for b is its counter
    line = zc.readline(w)
    if line == "b 1\n":
        line = zc.readline(w)
    assert line == "b 2\n"
    zc.ok("rm", "a")
    assert zc.readline(w) == "-a\n"
    # a plain rm of the object, without libzinc: seen within about a second
    os.unlink(zc.path("b"))
    assert zc.readline(w) == "-b\n"
    zc.hold("a")
    assert zc.readline(w) == "+a 0\n"
    assert stop(zc, w) == ""
    assert zc.info("a")["waiters"] == 0


def test_watch_follows_a_region_whose_header_comes_late(zc):
    """A name that is not a valid region yet (its creator has not written
    the header) is followed once it is: writing the header makes no
    directory event, so watch looks again on its own."""
    zc.hold("anchor")
    page = os.sysconf("SC_PAGESIZE")
    path = zc.path("late")
    with open(path, "wb") as f:
        f.truncate(2 * page)
    w = zc.zinc("watch")
    assert zc.readline(w) == "+anchor 0\n"
    # zinc-core's header (no libzinc extension), owner alive (us)
    hdr = struct.pack("=QHHIQIiQQQQ", 0x5A494E435F524547, 2, 0, 0, page, 0,
                      os.getpid(), 0, 0, 0, 0)
    fd = os.open(path, os.O_WRONLY)
    try:
        os.pwrite(fd, hdr, 0)
    finally:
        os.close(fd)
    assert zc.readline(w) == "+late 0\n"
    assert stop(zc, w) == ""


def test_watch_names_json(zc):
    for n in ("a", "b"):
        zc.hold(n)
    w = zc.zinc("watch", "--json", "a")
    assert json.loads(zc.readline(w)) == {"event": "create", "name": "a", "seq": 0}
    zc.ok("notify", "b")  # not watched
    zc.ok("notify", "a")
    assert json.loads(zc.readline(w)) == {"event": "notify", "name": "a", "seq": 1}
    zc.ok("rm", "a")
    assert json.loads(zc.readline(w)) == {"event": "remove", "name": "a"}
    zc.hold("a")  # the same name again is followed again
    assert json.loads(zc.readline(w)) == {"event": "create", "name": "a", "seq": 0}
    w.send_signal(signal.SIGTERM)
    assert w.wait(10) == OK
    assert w.stdout.read() == b""
    assert zc.info("b")["waiters"] == 0


def test_watch_errors(zc):
    r = zc.run("watch", "nope")
    assert r.returncode == NOENT and "nope: No such region" in r.stderr, r
    r = zc.run("watch", "bad/name")
    assert r.returncode == USAGE, r
    r = zc.run("watch", "--bogus")
    assert r.returncode == USAGE and "unknown option" in r.stderr, r


# ---- zinc top ----

def test_top_needs_a_terminal(zc):
    r = zc.run("top")
    assert r.returncode != OK and "terminal" in r.stderr, r


@pytest.fixture
def tmux(zc):
    if not shutil.which("tmux"):
        pytest.skip("tmux is not installed (apt-get install tmux)")
    sock = f"zinc-test-{os.getpid()}"

    def run(*args):
        return subprocess.run(["tmux", "-L", sock, *args], check=True,
                              capture_output=True, text=True, timeout=10)
    yield run
    subprocess.run(["tmux", "-L", sock, "kill-server"], capture_output=True)


def start_top(zc, tmux):
    status = zc.shm.parent / f"{zc.shm.name}.top-status"
    cmd = (f"env ZINC_SHM_DIR={zc.shm} TERM=xterm {ZINC} top; "
           f"echo $? > {status}; sleep 60")
    tmux("new-session", "-d", "-s", "top", "-x", "80", "-y", "24", cmd)
    return status


def screen(tmux):
    return tmux("capture-pane", "-p", "-t", "top").stdout.splitlines()


def exit_status(status):
    def read():
        try:
            return status.read_text().strip()
        except FileNotFoundError:
            return None
    try:
        return wait_until(read, what="zinc top to exit")
    finally:
        status.unlink(missing_ok=True)


def test_top_shows_regions_busiest_first_and_quits_on_q(zc, tmux):
    zc.hold("quiet")
    zc.hold("busy")
    status = start_top(zc, tmux)

    def rows():
        return {line.split()[0]: line.split() for line in screen(tmux)
                if line.split() and line.split()[0] in ("busy", "quiet")}
    wait_until(lambda: len(rows()) == 2, what="top to show both regions")
    lines = screen(tmux)
    assert any(l.split()[:3] == ["NAME", "NOTIF/S", "COUNTER"] for l in lines), lines
    assert all(len(l) <= 80 for l in lines)

    def busy_first():
        zc.ok("notify", "busy")
        names = [l.split()[0] for l in screen(tmux)
                 if l.split() and l.split()[0] in ("busy", "quiet")]
        r = rows()
        return (names == ["busy", "quiet"] and float(r["busy"][1]) > 0
                and int(r["busy"][2]) > 0 and r["quiet"][2] == "0")
    wait_until(busy_first, what="busy region on top with a rate")
    # owner alive, its pid and the capacity are shown
    r = rows()["quiet"]
    assert r[5] == "alive" and r[7] == "4K", r
    tmux("send-keys", "-t", "top", "q")
    assert exit_status(status) == "0"


def test_top_exits_cleanly_on_ctrl_c(zc, tmux):
    zc.hold("r")
    status = start_top(zc, tmux)
    wait_until(lambda: any(l.startswith("r ") for l in screen(tmux)),
               what="top to show region r")
    tmux("send-keys", "-t", "top", "C-c")
    assert exit_status(status) == "0"
    # the terminal is back to normal: the shell's own output shows
    assert not any("NOTIF/S" in l for l in screen(tmux))
