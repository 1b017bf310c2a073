# SPDX-License-Identifier: MIT
"""Tests of the `zinc` command-line tool (docs/zinc-tool.md).

Run from the repo root: ZINC_BUILD_DIR=build pytest-3 -q tests/cli
"""
import fcntl
import json
import os
import signal
import struct
import subprocess
import time

import pytest

from conftest import CONSUMER, PRODUCER, ZINC, wait_until

PAGE = os.sysconf("SC_PAGESIZE")
MAGIC = 0x5A494E435F524547
# Exit codes promised by `zinc --help`.
OK, FAIL, USAGE, NOENT, BADMSG, EXIST, PERM, TIMEOUT, REMOVED = range(9)


def dead_pid():
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


def write_header(path, capacity, magic=MAGIC, version=2, owner=0, refs=0,
                 size=None):
    """A zinc-core style object: header without libzinc's extension."""
    hdr = struct.pack("=QHHIQIiQQQQ", magic, version, 0, 0, capacity, refs,
                      owner, 0, 0, 0, 0)
    with open(path, "wb") as f:
        f.write(hdr)
        f.truncate(size if size is not None else PAGE + capacity)


def age(path, seconds=3600):
    t = time.time() - seconds
    os.utime(path, (t, t), follow_symlinks=False)


# ---- help, version, usage ----

def test_help_version_and_usage_errors(zc):
    r = zc.ok("--help")
    for word in ("ls", "info", "create", "notify", "wait", "watch", "top",
                 "rm", "gc",
                 "--json", "--background", "--dry-run", "Exit status",
                 "ZINC_SHM_DIR"):
        assert word in r.stdout
    assert zc.ok("ls", "--help").stdout == r.stdout
    v = zc.ok("--version").stdout
    assert v.startswith("zinc 0.1.0 ") and "format 2" in v
    for args in ([], ["bogus"], ["ls", "--jsn"], ["ls", "extra"], ["info"],
                 ["create", "x"], ["wait"], ["rm"], ["gc", "x"]):
        r = zc.run(*args)
        assert r.returncode == USAGE, (args, r)
        assert r.stderr.startswith("Usage: zinc" if not args else "zinc: "), r
        assert r.stdout == ""


@pytest.mark.parametrize("cmd", [["info"], ["notify"], ["wait"], ["rm"],
                                 ["create"]])
@pytest.mark.parametrize("bad", ["a b", "zinc/x", "x" * 251, "é", "a.b"])
def test_invalid_names_are_usage_errors(zc, cmd, bad):
    args = cmd + [bad] + (["4K"] if cmd == ["create"] else [])
    r = zc.run(*args)
    assert r.returncode == USAGE, r
    assert "invalid region name" in r.stderr
    assert os.listdir(zc.shm) == []


# ---- create ----

@pytest.mark.parametrize("size,capacity", [
    (str(PAGE), PAGE), ("4K", 4096), ("8k", 8192), ("1M", 1 << 20),
    ("2m", 2 << 20), ("1G", 1 << 30)])
def test_create_sizes(zc, size, capacity):
    p = zc.hold("sz", size)
    e = zc.info("sz")
    assert e["capacity"] == capacity
    assert os.stat(zc.path("sz")).st_size == PAGE + capacity
    p.terminate()
    assert p.wait(10) == OK


@pytest.mark.parametrize("size", ["0", "0K", "100", "4097", "1X", "", "-4K",
                                  "4KB", " 4K", "4K ", "0x1000",
                                  "99999999999999999999", "17179869184G"])
def test_create_bad_sizes(zc, size):
    r = zc.run("create", "bad", size)
    assert r.returncode == USAGE, r
    assert ("invalid SIZE" if size[:1] != "-" else "unknown option") in r.stderr
    assert os.listdir(zc.shm) == []


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_create_holds_until_signal(zc, sig):
    p = zc.hold("held", "8K")
    e = zc.entry("held")
    assert e["state"] == "owned" and e["owner_pid"] == p.pid
    assert e["owner_alive"] and e["in_use"] and e["valid"]
    assert e["path"] == str(zc.path("held"))
    p.send_signal(sig)
    assert p.wait(10) == OK
    assert not zc.path("held").exists()  # the last close removed it
    assert p.stderr.read() == b""


def test_create_existing_live_region(zc):
    p = zc.hold("dup")
    r = zc.run("create", "dup", "4K")
    assert r.returncode == EXIST, r
    assert "dup" in r.stderr and "owner is alive" in r.stderr
    assert zc.info("dup")["owner_pid"] == p.pid


def test_create_replaces_stale_region(zc):
    p = zc.hold("again")
    p.kill()
    p.wait()
    assert zc.entry("again")["state"] == "stale"
    q = zc.hold("again", "8K")
    e = zc.info("again")
    assert e["owner_pid"] == q.pid and e["capacity"] == 8192


def test_create_exits_when_removed(zc):
    p = zc.hold("gone")
    zc.ok("rm", "gone")
    assert p.wait(10) == REMOVED
    assert b"removed" in p.stderr.read()


def test_create_exits_when_unlinked_by_hand(zc):
    p = zc.hold("gone2")
    os.unlink(zc.path("gone2"))
    assert p.wait(10) == REMOVED


def test_create_background(zc):
    r = zc.ok("create", "--background", "bg", "1M")
    word, name, cap, pid = r.stdout.split()
    pid = int(pid)
    zc.pids.append(pid)
    assert (word, name, cap) == ("ready", "bg", str(1 << 20))
    e = zc.info("bg")
    assert e["owner_pid"] == pid and e["owner_alive"]
    # Still held after the starting command exited; a second create fails.
    assert zc.run("create", "--background", "bg", "4K").returncode == EXIST
    os.kill(pid, signal.SIGTERM)
    wait_until(lambda: not zc.path("bg").exists(), what="holder to remove bg")


def test_create_background_failure_is_reported(zc):
    zc.hold("taken")
    r = zc.run("create", "-b", "taken", "4K")
    assert r.returncode == EXIST and r.stdout == ""


# ---- ls / info ----

def test_ls_empty_and_missing_dir(zc):
    assert zc.ls() == []
    r = zc.ok("ls")
    assert r.stdout.split() == ["NAME", "STATE", "CAPACITY", "SEQ", "HANDLES",
                                "WAITERS", "OWNER", "DETAILS"]
    env = dict(zc.env, ZINC_SHM_DIR=str(zc.shm / "nope"))
    r = zc.run("ls", env=env)
    assert r.returncode == FAIL and "No such file or directory" in r.stderr
    assert zc.run("gc", env=env).returncode == FAIL


def test_ls_text_and_json(zc):
    a = zc.hold("alpha", "4K")
    b = zc.hold("beta", "1M")
    zc.ok("notify", "beta")
    zc.ok("notify", "beta")
    lines = zc.ok("ls").stdout.splitlines()
    assert lines[0].split()[0] == "NAME"
    rows = [line.split() for line in lines[1:]]
    assert rows == [
        ["alpha", "owned", "4K", "0", "1", "0", str(a.pid), "(alive)", "-"],
        ["beta", "owned", "1M", "2", "1", "0", str(b.pid), "(alive)", "-"]]
    ents = zc.ls()
    assert [e["name"] for e in ents] == ["alpha", "beta"]
    e = ents[1]
    assert e["seq"] == 2 and e["capacity"] == 1 << 20 and e["handles"] == 1
    assert e["waiters"] == 0 and e["foreign"] is False and e["removed"] is False
    assert e["created_at"].endswith("Z") and e["created_at_ns"] > 0
    assert abs(e["created_at_ns"] / 1e9 - time.time()) < 60


def test_info_text_json_and_errors(zc):
    p = zc.hold("inf", "12K")
    text = zc.ok("info", "inf").stdout
    fields = dict(line.split(":", 1) for line in text.splitlines())
    fields = {k: v.strip() for k, v in fields.items()}
    assert fields["name"] == "inf" and fields["state"] == "owned"
    assert fields["capacity"] == "12288 (12K)"
    assert fields["owner_pid"] == str(p.pid) and fields["owner_alive"] == "yes"
    assert fields["path"] == str(zc.path("inf")) and fields["format"] == "libzinc"
    j = zc.info("inf")
    assert j["name"] == "inf" and j["capacity"] == 12288 and j["valid"]
    assert zc.ls() == [j]

    r = zc.run("info", "missing")
    assert r.returncode == NOENT and "missing" in r.stderr
    zc.path("junk").write_bytes(b"x" * 2 * PAGE)
    r = zc.run("info", "junk", "--json")
    assert r.returncode == BADMSG and r.stdout == ""
    assert "not a valid zinc region" in r.stderr and "bad magic" in r.stderr


def test_ls_hostile_objects(zc):
    p = zc.hold("good")
    d = zc.shm
    (d / "zinc_garbage").write_bytes(os.urandom(2 * PAGE))
    (d / "zinc_empty").write_bytes(b"")
    (d / "zinc_odd").write_bytes(b"z" * 100)
    (d / "zinc_x").mkdir()
    os.mkfifo(d / "zinc_fifo")
    os.symlink(zc.path("good"), d / "zinc_link")
    (d / "zinc_zero").write_bytes(bytes(2 * PAGE))
    write_header(d / "zinc_version", PAGE, version=7)
    write_header(d / "zinc_cap", 5 * PAGE)
    write_header(d / "zinc_cap", 5 * PAGE, size=3 * PAGE)
    (d / "zinc_bad name").write_bytes(b"")
    (d / "not_zinc").write_bytes(b"")  # not ours at all
    expect = {
        "garbage": "bad magic number", "empty": "empty object",
        "odd": "size 100 is not a region size", "x": "a directory",
        "fifo": "a FIFO", "link": "a symbolic link",
        "zero": "no magic number", "version": "unsupported format version 7",
        "cap": "header capacity 20480 does not match object size 12288",
        "bad name": "not a valid region name",
    }
    r = zc.ok("ls")
    for name, why in expect.items():
        row = [ln for ln in r.stdout.splitlines()
               if ln.startswith(name.replace(" ", "\\x20") + " ")]
        assert len(row) == 1 and " invalid " in row[0] and why in row[0], (name, r.stdout)
    ents = {e["name"]: e for e in zc.ls()}
    assert set(ents) == set(expect) | {"good"}
    for name, why in expect.items():
        e = ents[name]
        assert e["state"] == "invalid" and e["valid"] is False, e
        assert why in e["reason"], e
        assert "capacity" not in e
    assert ents["good"]["state"] == "owned" and ents["good"]["owner_pid"] == p.pid
    for name in expect:
        if name != "bad name":
            assert zc.run("info", name).returncode == BADMSG, name
            assert zc.run("notify", name).returncode == BADMSG, name
            assert zc.run("wait", name, "0").returncode == BADMSG, name


def test_json_escaping_of_odd_names(zc):
    names = {b'q"uote': 'q"uote', b"back\\slash": "back\\slash",
             b"new\nline": "new\nline", b"tab\there": "tab\there",
             b"ctl\x01\x7f": "ctl\x01\x7f", "caf\u00e9".encode(): "caf\u00e9",
             b"bad\xff\xc3": "bad\u00ff\u00c3", b"\xed\xa0\x80": "\u00ed\u00a0\u0080"}
    for raw in names:
        open(os.path.join(os.fsencode(zc.shm), b"zinc_" + raw), "wb").close()
    out = zc.ok("ls", "--json").stdout
    got = {e["name"]: e for e in json.loads(out)}
    assert set(got) == set(names.values())
    assert all(e["state"] == "invalid" for e in got.values())
    # The text listing keeps one line per object.
    lines = zc.ok("ls").stdout.splitlines()
    assert len(lines) == 1 + len(names)
    assert any(ln.startswith("new\\x0aline ") for ln in lines)


# ---- notify / wait ----

def test_notify_wakes_wait(zc):
    zc.hold("sig")
    w = zc.zinc("wait", "sig", "20000")
    zc.wait_blocked(w, "sig")
    zc.ok("notify", "sig")
    assert w.wait(10) == OK
    assert w.stdout.read() == b"1\n"
    assert zc.info("sig")["waiters"] == 0


def test_wait_ignores_earlier_notifications(zc):
    zc.hold("old")
    zc.ok("notify", "old")
    r = zc.run("wait", "old", "0")
    assert r.returncode == TIMEOUT and "Timed out" in r.stderr


def test_wait_timeout(zc):
    zc.hold("slow")
    t = time.monotonic()
    r = zc.run("wait", "slow", "200")
    assert r.returncode == TIMEOUT, r
    assert time.monotonic() - t >= 0.2
    assert zc.info("slow")["waiters"] == 0


def test_wait_removed_by_rm(zc):
    zc.hold("rmw")
    w = zc.zinc("wait", "rmw")
    zc.wait_blocked(w, "rmw")
    zc.ok("rm", "rmw")
    assert w.wait(10) == REMOVED
    assert b"removed" in w.stderr.read()


def test_wait_owner_closes(zc):
    """The waiter does not keep the region alive: the owner's exit removes
    it and the waiter reports that."""
    p = zc.hold("own")
    w = zc.zinc("wait", "own")
    zc.wait_blocked(w, "own")
    p.terminate()
    assert p.wait(10) == OK
    assert w.wait(10) == REMOVED
    assert not zc.path("own").exists()


@pytest.mark.parametrize("sig,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_wait_interrupted_stops_counting_as_waiter(zc, sig, code):
    zc.hold("intr")
    w = zc.zinc("wait", "intr")
    zc.wait_blocked(w, "intr")
    assert zc.info("intr")["waiters"] == 1
    w.send_signal(sig)
    assert w.wait(10) == code
    assert zc.info("intr")["waiters"] == 0


def test_wait_and_notify_errors(zc):
    for cmd in (["wait", "none"], ["wait", "none", "10"], ["notify", "none"]):
        r = zc.run(*cmd)
        assert r.returncode == NOENT and "No such region" in r.stderr, r
    zc.hold("w")
    for t, why in (("-1", "unknown option"),
                   ("4294967295", "invalid TIMEOUT_MS"),
                   ("99999999999999999999", "invalid TIMEOUT_MS"),
                   # not digits: a second region name
                   ("1.5", "invalid region name"), ("", "invalid region name")):
        r = zc.run("wait", "w", t)
        assert r.returncode == USAGE and why in r.stderr, (t, r)
    r = zc.run("wait", "w", "x")
    assert r.returncode == NOENT and "x: No such region" in r.stderr, r


def test_interop_with_example_programs(zc):
    # zinc notify -> zinc-consumer (a counting handle of its own)
    zc.hold("ex")
    c = zc.spawn(CONSUMER, "ex", "1", "20000")
    wait_until(lambda: zc.info("ex")["handles"] == 2, what="consumer to open ex")
    wait_until(lambda: zc.info("ex")["waiters"] == 1 and
               "futex" in open(f"/proc/{c.pid}/wchan").read(),
               what="consumer to wait")
    zc.ok("notify", "ex")
    assert c.wait(10) == 0
    assert c.stdout.read().startswith(b"seq 1")
    # zinc-producer -> zinc wait
    p = zc.spawn(PRODUCER, "prod", "0", "20")
    wait_until(lambda: zc.path("prod").exists() and zc.entry("prod"),
               what="producer's region")
    r = zc.run("wait", "prod", "10000")
    assert r.returncode == OK and int(r.stdout) >= 1
    p.kill()
    p.wait()


def test_notify_keeps_stale_region(zc):
    """notify uses an observer handle: it never removes the region."""
    p = zc.hold("keep")
    p.kill()
    p.wait()
    zc.ok("notify", "keep")
    e = zc.entry("keep")
    assert e["state"] == "stale" and e["seq"] == 1


# ---- rm ----

def test_rm(zc):
    zc.hold("r1")
    p2 = zc.hold("r2")
    zc.path("r3").write_bytes(b"junk")
    zc.ok("rm", "r1", "r3")
    assert not zc.path("r1").exists() and not zc.path("r3").exists()
    r = zc.run("rm", "r9", "r2")
    assert r.returncode == NOENT and "r9" in r.stderr
    assert not zc.path("r2").exists()  # later names are still removed
    assert p2.wait(10) == REMOVED
    zc.ok("rm", "-f", "r9")
    (zc.shm / "zinc_dir").mkdir()
    r = zc.run("rm", "dir")
    assert r.returncode != OK and (zc.shm / "zinc_dir").is_dir()


# ---- gc ----

def test_stale_region_found_by_ls_and_removed_by_gc(zc):
    p = zc.hold("stale", "8K")
    live = zc.hold("live")
    p.kill()
    p.wait()
    e = zc.entry("stale")
    assert e["state"] == "stale" and e["owner_pid"] == p.pid
    assert e["owner_alive"] is False and e["in_use"] is False
    row = [ln for ln in zc.ok("ls").stdout.splitlines() if ln.startswith("stale ")]
    assert f"{p.pid} (dead)" in row[0] and " stale " in row[0]

    r = zc.ok("gc", "--dry-run")
    assert r.stdout == (f"would remove stale: stale region (owner {p.pid} dead, "
                        "no open handle)\n")
    assert zc.path("stale").exists()
    r = zc.ok("gc")
    assert r.stdout == f"removed stale: stale region (owner {p.pid} dead, no open handle)\n"
    assert not zc.path("stale").exists()
    assert [e["name"] for e in zc.ls()] == ["live"]
    assert zc.ok("gc").stdout == ""
    r = zc.ok("gc", "-v")
    assert r.stdout == f"kept live: owner {live.pid} alive\n"


def test_gc_leaves_regions_in_use(zc):
    """Owner dead but a consumer still holds a handle: not stale."""
    p = zc.hold("used")
    c = zc.spawn(CONSUMER, "used", "1", "20000")
    wait_until(lambda: zc.info("used")["handles"] == 2, what="consumer to open")
    p.kill()
    p.wait()
    e = zc.entry("used")
    assert e["state"] == "in-use" and not e["owner_alive"] and e["in_use"]
    r = zc.ok("gc", "-v")
    assert r.stdout == f"kept used: in use (owner {p.pid} dead)\n"
    assert zc.path("used").exists()
    # The consumer is the last handle: its close removes the region.
    wait_until(lambda: zc.info("used")["waiters"] == 1, what="consumer to wait")
    zc.ok("notify", "used")
    assert c.wait(10) == 0
    assert not zc.path("used").exists()


def test_gc_removes_consumer_crash_leftover(zc):
    p = zc.hold("crash")
    c = zc.spawn(CONSUMER, "crash", "1", "20000")
    wait_until(lambda: zc.info("crash")["handles"] == 2, what="consumer to open")
    c.kill()
    p.kill()
    c.wait()
    p.wait()
    assert zc.entry("crash")["state"] == "stale"
    assert zc.ok("gc").stdout.startswith("removed crash: stale region")
    assert zc.ls() == []


def test_gc_objects_that_are_not_regions(zc):
    d = zc.shm
    old, new, locked = d / "zinc_old", d / "zinc_new", d / "zinc_locked"
    old.write_bytes(os.urandom(2 * PAGE))
    (d / "zinc_empty").write_bytes(b"")
    new.write_bytes(b"fresh")
    locked.write_bytes(b"locked")
    (d / "zinc_dir").mkdir()
    os.mkfifo(d / "zinc_fifo")
    os.symlink(old, d / "zinc_link")
    (d / "zinc_bad name").write_bytes(b"")
    for path in (old, d / "zinc_empty", locked, d / "zinc_dir",
                 d / "zinc_fifo", d / "zinc_link", d / "zinc_bad name"):
        age(path)
    with open(locked, "r+b") as f:
        fcntl.lockf(f, fcntl.LOCK_SH | fcntl.LOCK_NB, 1, 3)
        before = sorted(os.listdir(d))
        r = zc.ok("gc", "-n")
        assert r.stdout.splitlines() == [
            "would remove empty: not a region: empty object (0 bytes); no locks",
            f"would remove old: not a region: {zc.entry('old')['reason']}; no locks"]
        assert sorted(os.listdir(d)) == before
        r = zc.ok("gc", "-v")
        lines = r.stdout.splitlines()
        assert "removed empty: not a region: empty object (0 bytes); no locks" in lines
        assert any(ln.startswith("removed old: not a region: bad magic") for ln in lines)
        kept = {ln.split(":")[0] for ln in lines if ln.startswith("kept ")}
        assert kept == {"kept bad\\x20name", "kept dir", "kept fifo", "kept link",
                        "kept locked", "kept new"}
        assert "kept new: not a region: size 5 is not a region size" in r.stdout
        assert "modified less than 10 s ago" in r.stdout
        assert "locked by a process" in r.stdout
    assert sorted(os.listdir(d)) == sorted(
        f"zinc_{n}" for n in ("new", "locked", "dir", "fifo", "link", "bad name"))
    # Unlocked now: the next gc takes it.
    assert zc.ok("gc").stdout.startswith("removed locked: ")


def test_gc_recreate_leftovers(zc):
    """A zinc_recreate that died between linking its new region under a
    temporary name and renaming it leaves .zinc-new.*: gc removes those that
    are old and unlocked (a recreate in progress holds the locks)."""
    d = zc.shm
    gone, locked, young = (d / ".zinc-new.1.0", d / ".zinc-new.2.0",
                           d / ".zinc-new.3.0")
    for path in (gone, locked, young):
        path.write_bytes(b"\0" * (2 * PAGE))
    age(gone)
    age(locked)
    with open(locked, "r+b") as f:
        fcntl.lockf(f, fcntl.LOCK_SH | fcntl.LOCK_NB, 1, 1)
        r = zc.ok("gc", "-n")
        assert r.stdout.splitlines() == [
            "would remove .zinc-new.1.0: a region left by an interrupted "
            "zinc_recreate; no locks"]
        assert gone.exists()
        lines = zc.ok("gc", "-v").stdout.splitlines()
        assert ("removed .zinc-new.1.0: a region left by an interrupted "
                "zinc_recreate; no locks") in lines
        assert any(ln.startswith("kept .zinc-new.2.0: ") and "locked by a process" in ln
                   for ln in lines)
        assert any(ln.startswith("kept .zinc-new.3.0: ") and "modified less" in ln
                   for ln in lines)
    assert not gone.exists() and locked.exists() and young.exists()
    locked.unlink()
    young.unlink()


def test_gc_foreign_regions(zc):
    """Regions made by zinc-core have no locks: gc trusts the owner pid and
    removes them only when libzinc's close would (header count at 0)."""
    pid = dead_pid()
    write_header(zc.path("core0"), PAGE, owner=pid, refs=0)
    write_header(zc.path("core2"), PAGE, owner=pid, refs=2)
    write_header(zc.path("corelive"), PAGE, owner=os.getpid(), refs=1)
    ents = {e["name"]: e for e in zc.ls()}
    assert ents["core0"]["foreign"] and ents["core0"]["state"] == "stale"
    assert ents["corelive"]["state"] == "owned"
    assert "zinc-core" in zc.ok("ls").stdout
    r = zc.ok("gc", "-v")
    assert f"removed core0: stale region (owner {pid} dead, no open handle)" in r.stdout
    assert "kept core2: zinc-core region whose header still counts handles" in r.stdout
    assert f"kept corelive: owner {os.getpid()} alive" in r.stdout
    assert sorted(os.listdir(zc.shm)) == ["zinc_core2", "zinc_corelive"]
    zc.ok("rm", "core2", "corelive")
    assert os.listdir(zc.shm) == []


def test_tool_binary_links_libzinc():
    out = subprocess.run(["ldd", str(ZINC)], capture_output=True, text=True).stdout
    assert "libzinc.so.1" in out
