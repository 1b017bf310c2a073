# SPDX-License-Identifier: MIT
"""The daemon as a program: signals, unmount, SIGKILL and remount, failed
mounts, daemonizing, options, permissions for other users, log format."""
import errno
import os
import re
import signal
import subprocess
import time

import pytest

from conftest import (PAGE, SLOW, WRAPPER, ZINCFS, ZincError, finish, mountinfo_has, run,
                      wait_blocked, wait_until)

NOBODY = 65534
VALGRIND_RE = re.compile(r"^(==|--)\d+(==|--)")  # lines of a ZINCFS_WRAPPER valgrind
PIPES = dict(stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def blocked_cat(zfs, name):
    c = zfs.spawn(["cat", name], cwd=str(zfs.mnt), **PIPES)
    wait_blocked(c.pid, "fuse")
    return c


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_exits_zero_and_unmounts(zfs, sig):
    keep = zfs.zinc().create("kept", PAGE)
    assert zfs.sh("echo mine > owned").returncode == 0
    readers = [blocked_cat(zfs, "kept.wait"), blocked_cat(zfs, "owned.wait")]
    zfs.kill(sig, wait=False)
    zfs.proc.wait(timeout=10 * SLOW)
    assert zfs.proc.returncode == 0, zfs.log()
    assert not mountinfo_has(zfs.mnt)
    # every deferred read was answered: the readers are not left hanging
    for c in readers:
        rc, out, err = finish(c, 5)
        assert rc != 0 and out == "", (rc, out, err)
    # zincfs owned "owned" until it exited; "kept" belongs to its creator
    assert not zfs.obj("owned").exists()
    assert zfs.obj("kept").exists()
    assert keep.read(0, 4) == b"\0" * 4
    keep.exit()


def test_fusermount_unmount_exits_zero(zfs):
    assert zfs.sh("touch owned").returncode == 0
    r = run(["fusermount3", "-u", str(zfs.mnt)])
    assert r.returncode == 0, r.stderr
    zfs.proc.wait(timeout=10 * SLOW)
    assert zfs.proc.returncode == 0, zfs.log()
    assert not mountinfo_has(zfs.mnt)
    assert not zfs.obj("owned").exists()


def test_sigkill_then_remount_keeps_data(zfs):
    h = zfs.zinc().create("kept", 2 * PAGE)
    h.write(PAGE + 5, b"kept data")
    assert zfs.sh("echo made by mount > made").returncode == 0
    w = zfs.zinc()
    w.open("kept")
    reader = blocked_cat(zfs, "kept.wait")
    zfs.kill(signal.SIGKILL)  # waits for it, cleans the dead mount
    # the blocked reader is released with an error, not left hanging
    rc, out, err = finish(reader, 5)
    assert rc != 0 and out == ""
    # libzinc programs carry on without zincfs
    w.send("wait 10000")
    wait_blocked(w.pid, "futex")
    assert h.notify() == 1
    assert int(w.reply()) == 1
    # the objects are still there; a remount shows them with their data
    assert zfs.obj("kept").exists() and zfs.obj("made").exists()
    zfs.remount()
    assert zfs.names() == {"kept", "kept.notify", "kept.wait",
                           "made", "made.notify", "made.wait"}
    with open(zfs.path("kept"), "rb") as f:
        f.seek(PAGE + 5)
        assert f.read(9) == b"kept data"
    with open(zfs.path("made"), "rb") as f:
        assert f.read(14) == b"made by mount\n"
    head = zfs.spawn(["head", "-n1", "kept.wait"], cwd=str(zfs.mnt), **PIPES)
    wait_blocked(head.pid, "fuse")
    h.notify()
    assert finish(head)[:2] == (0, "2\n")
    # the orphaned region made through the first mount can be removed
    assert zfs.sh("rm made").returncode == 0
    assert not zfs.obj("made").exists()
    w.exit()
    h.exit()


def _stray_daemons(marker):
    pids = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmd = open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\0", b" ")
            guardian = open(f"/proc/{pid}/comm").read() == "zincfs-guardian\n"
        except OSError:
            continue
        if marker.encode() in cmd and b"zincfs" in cmd and not guardian:
            pids.append(int(pid))
    return pids


@pytest.mark.zincfs(start=False)
@pytest.mark.parametrize("foreground", [False, True])
@pytest.mark.parametrize("case", ["no_mountpoint", "bad_option", "region_size",
                                  "region_size_junk", "max_read=5000", "max_read=2M",
                                  "max_read=0", "read_ahead_kb=-1", "read_ahead_kb=12k",
                                  "read_ahead_kb=2000000"])
def test_failed_mount_exits_nonzero_with_message(zfs, case, foreground):
    mnt = zfs.mnt
    opts = [f"shm_dir={zfs.shm}"]
    want = None
    if case == "no_mountpoint":
        mnt = zfs.base / "does-not-exist"
        want = str(mnt)
    elif case == "bad_option":
        opts.append("bogus_option=1")
        want = "bogus_option"
    elif case == "region_size":
        opts.append("region_size=5000")
        want = "region_size"
    elif case == "region_size_junk":
        opts.append("region_size=12Q")
        want = "region_size"
    elif "=" in case:
        opts.append(case)
        want = case
    else:
        assert False, case
    args = WRAPPER + [str(ZINCFS)] + (["-f"] if foreground else []) + \
        ["-o", ",".join(opts), str(mnt)]
    try:
        r = run(args, timeout=15)
    finally:
        for pid in _stray_daemons(str(zfs.base)):
            os.kill(pid, signal.SIGKILL)
            zfs.problems.append(f"zincfs {pid} stayed alive after a failed mount")
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert want in r.stderr, r.stderr
    lines = [l for l in r.stderr.splitlines() if l and not VALGRIND_RE.match(l)]
    assert lines and all(l.startswith("zincfs: ") for l in lines), r.stderr
    assert any(l.startswith("zincfs: error: ") for l in lines), r.stderr
    assert not mountinfo_has(mnt)


@pytest.mark.zincfs(start=False)
def test_daemonizes_after_mount(zfs):
    """Without -f: the command returns once the mount is up, the daemon
    serves in the background and exits when unmounted."""
    z = zfs.zinc().create("bg", PAGE)
    # output to a file, not a pipe: a wrapper (valgrind) in the background
    # daemon may keep its copy of stderr open
    errpath = zfs.base / "launch.err"
    with open(errpath, "wb") as err:
        launch = subprocess.Popen(WRAPPER + [str(ZINCFS), "-o", f"shm_dir={zfs.shm}",
                                             str(zfs.mnt)], stdout=err, stderr=err)
    try:
        rc = launch.wait(timeout=20 * SLOW)
    finally:
        if launch.poll() is None:
            launch.kill()
    pids = _stray_daemons(str(zfs.mnt))
    try:
        assert rc == 0, errpath.read_text()
        assert not [l for l in errpath.read_text().splitlines() if not VALGRIND_RE.match(l)]
        assert mountinfo_has(zfs.mnt), "mounted when the command returned"
        assert len(pids) == 1, pids
        assert zfs.names() == {"bg", "bg.notify", "bg.wait"}
        head = zfs.spawn(["head", "-n1", "bg.wait"], cwd=str(zfs.mnt), **PIPES)
        wait_blocked(head.pid, "fuse")
        z.notify()
        assert finish(head)[:2] == (0, "1\n")
        u = run(["fusermount3", "-u", str(zfs.mnt)])
        assert u.returncode == 0, u.stderr
        wait_until(lambda: not os.path.exists(f"/proc/{pids[0]}"), 10,
                   "the background daemon to exit after unmount")
    finally:
        if mountinfo_has(zfs.mnt):
            run(["fusermount3", "-u", "-z", str(zfs.mnt)])
        for pid in _stray_daemons(str(zfs.mnt)):
            os.kill(pid, signal.SIGKILL)
    z.exit()


@pytest.mark.zincfs(start=False)
def test_version_and_help(zfs):
    r = run([str(ZINCFS), "--version"])
    assert r.returncode == 0 and re.search(r"\d+\.\d+", r.stdout + r.stderr), r
    r = run([str(ZINCFS), "--help"])
    out = r.stdout + r.stderr
    assert r.returncode == 0, r
    for word in ("region_size", "allow_other", "max_threads", "-f", "max_read",
                 "read_ahead_kb"):
        assert word in out
    assert "shm_dir" in out or "ZINC_SHM_DIR" in out


def bdi_read_ahead_kb(zfs):
    dev = os.stat(zfs.mnt).st_dev
    with open(f"/sys/class/bdi/{os.major(dev)}:{os.minor(dev)}/read_ahead_kb") as f:
        return int(f.read())


def default_max_read():
    with open("/proc/sys/fs/pipe-max-size") as f:
        fit = (int(f.read()) - 4 * PAGE) // PAGE * PAGE
    return min(max(fit, 128 << 10), 256 * PAGE)


def test_default_reads_are_as_large_as_the_splice_pipe_takes(zfs):
    """max_read: the largest READ libfuse can splice (1008K with the usual
    1M pipe limit), the mount's readahead 4 times that, set (as root) by
    the first open, before anything is read."""
    want = default_max_read()
    assert f"max_read={want}," in mountinfo_has(zfs.mnt) + ","
    z = zfs.zinc().create("ra", PAGE)
    with open(zfs.path("ra"), "rb") as f:
        if os.geteuid() == 0:
            assert bdi_read_ahead_kb(zfs) == 4 * want // 1024
        assert f.read() == bytes(PAGE)
    z.exit()


@pytest.mark.zincfs("max_read=64K", "read_ahead_kb=256")
def test_max_read_and_read_ahead_kb_options_apply(zfs):
    assert "max_read=65536" in mountinfo_has(zfs.mnt)
    z = zfs.zinc().create("ra", 1 << 20)
    z.write((1 << 20) - 3, b"end")
    fd = os.open(zfs.path("ra"), os.O_RDONLY | os.O_DIRECT)
    try:
        if os.geteuid() == 0:
            assert bdi_read_ahead_kb(zfs) == 256
        else:
            zfs.expect_log(r"warning: cannot set the mount's readahead")
        got = os.pread(fd, 1 << 20, 0)  # 16 READs of 64K
        assert len(got) == 1 << 20 and got[-3:] == b"end" and not any(got[:-3])
    finally:
        os.close(fd)
    z.exit()


@pytest.mark.zincfs("_netdev", "nofail", "noauto", "user", "users", "auto", "defaults",
                    "rw", "x-systemd.automount", "x-systemd.device-timeout=10s")
def test_fstab_only_options_ignored(zfs):
    z = zfs.zinc().create("fs", PAGE)
    assert zfs.names() == {"fs", "fs.notify", "fs.wait"}
    line = mountinfo_has(zfs.mnt)
    assert "default_permissions" in line  # always on
    z.exit()


@pytest.mark.zincfs("allow_other")
def test_other_user_denied_on_0600_region(zfs):
    secret = zfs.zinc().create("secret", PAGE)
    secret.write(0, b"top secret")
    public = zfs.zinc().create("public", PAGE)
    public.write(0, b"hello all")
    os.chmod(zfs.obj("public"), 0o644)
    as_nobody = dict(user=NOBODY)
    # controls: nobody reaches the mount and may read a 0644 region
    r = zfs.sh("ls", **as_nobody)
    assert r.returncode == 0 and "secret" in r.stdout and "public" in r.stdout, r
    r = zfs.sh("head -c 9 public", **as_nobody)
    assert (r.returncode, r.stdout) == (0, "hello all"), r
    r = zfs.sh("timeout 0.3 cat public.wait", **as_nobody)
    assert r.returncode == 124, r  # it could open .wait and block
    # ...but not notify it (no write bit for others)
    r = zfs.sh("echo > public.notify", **as_nobody)
    assert r.returncode != 0 and "Permission denied" in r.stderr, r
    r = zfs.sh("echo x > public", **as_nobody)
    assert r.returncode != 0 and "Permission denied" in r.stderr, r
    # the 0600 region: nothing at all
    for cmd in ("cat secret", "cat secret.wait", "echo > secret.notify",
                "echo x > secret", "touch secret.notify", "rm -f secret"):
        r = zfs.sh(cmd, **as_nobody)
        assert r.returncode != 0 and ("Permission denied" in r.stderr or
                                      "Operation not permitted" in r.stderr), (cmd, r)
    assert secret.seq() == 0 and public.seq() == 0
    assert secret.read(0, 10) == b"top secret"
    assert public.read(0, 9) == b"hello all"
    assert zfs.obj("secret").exists()
    # root still can
    assert zfs.sh("echo > secret.notify").returncode == 0
    assert secret.seq() == 1
    secret.exit()
    public.exit()


def test_other_user_shut_out_without_allow_other(zfs):
    z = zfs.zinc().create("public", PAGE)
    os.chmod(zfs.obj("public"), 0o666)
    r = run(["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
             "cat", str(zfs.path("public"))])
    assert r.returncode != 0 and "Permission denied" in r.stderr, r
    z.exit()


@pytest.mark.zincfs("debug")
def test_log_lines_prefixed(zfs):
    zfs.expect_log(r"warning:")
    (zfs.shm / "zinc_junk").write_bytes(b"\1" * (2 * PAGE))
    z = zfs.zinc().create("loud", PAGE)
    zfs.names()
    assert zfs.sh("echo > loud.notify && cat loud > /dev/null").returncode == 0
    log = zfs.log()
    lines = [l for l in log.splitlines() if l and not VALGRIND_RE.match(l)]
    assert lines, "debug mode logged nothing"
    bad = [l for l in lines if not re.match(r"zincfs: (error|warning|info|debug): ", l)]
    assert not bad, "log lines without the 'zincfs: LEVEL: ' prefix:\n" + "\n".join(bad[:20])
    assert any(l.startswith("zincfs: info: ") for l in lines)
    z.exit()
