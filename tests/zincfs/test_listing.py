# SPDX-License-Identifier: MIT
"""What the mount shows: entries, stat, xattrs, df, regions appearing and
disappearing from outside, malformed objects."""
import errno
import os
import stat
import time

import pytest

from conftest import PAGE, SLOW, run, wait_until


def test_three_entries_per_region(zfs):
    a = zfs.zinc().create("alpha", PAGE)
    b = zfs.zinc().create("beta-2_X", 4 * PAGE)
    assert zfs.names() == {"alpha", "alpha.notify", "alpha.wait",
                           "beta-2_X", "beta-2_X.notify", "beta-2_X.wait"}
    r = run(["ls", "-la", str(zfs.mnt)])
    assert r.returncode == 0, r.stderr
    for n in ("alpha", "alpha.notify", "alpha.wait", "beta-2_X.wait"):
        assert n in r.stdout
    a.exit()
    b.exit()


def test_stat_sizes_modes_owner(zfs):
    z = zfs.zinc().create("r1", 3 * PAGE)
    # the mount mirrors the object's owner, group and mode
    os.chown(zfs.obj("r1"), 65534, 65534)
    os.chmod(zfs.obj("r1"), 0o640)
    st = os.stat(zfs.path("r1"))
    assert stat.S_ISREG(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o640
    assert (st.st_uid, st.st_gid) == (65534, 65534)
    assert st.st_size == 3 * PAGE
    sn = os.stat(zfs.path("r1.notify"))
    sw = os.stat(zfs.path("r1.wait"))
    assert stat.S_ISREG(sn.st_mode) and stat.S_ISREG(sw.st_mode)
    # read bits -> .wait, write bits -> .notify
    assert stat.S_IMODE(sw.st_mode) == 0o440
    assert stat.S_IMODE(sn.st_mode) == 0o200
    assert (sn.st_uid, sn.st_gid, sw.st_uid, sw.st_gid) == (65534,) * 4
    # shell stat agrees
    r = run(["stat", "-c", "%s %a %F", str(zfs.path("r1"))])
    assert r.stdout.split() == [str(3 * PAGE), "640", "regular", "file"], r.stdout
    # default object mode (0600 from libzinc)
    z2 = zfs.zinc().create("r2", PAGE)
    st = os.stat(zfs.path("r2"))
    assert stat.S_IMODE(st.st_mode) == stat.S_IMODE(os.stat(zfs.obj("r2")).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(zfs.path("r2.wait")).st_mode) == 0o400
    assert stat.S_IMODE(os.stat(zfs.path("r2.notify")).st_mode) == 0o200
    z.exit()
    z2.exit()


def test_missing_names_enoent(zfs):
    zfs.zinc().create("here", PAGE)
    for n in ("nothere", "nothere.wait", "nothere.notify", "here.bogus", "here.wait.wait"):
        with pytest.raises(FileNotFoundError):
            os.stat(zfs.path(n))


def _getfattr(path, *args):
    r = run(["getfattr", "--absolute-names", *args, str(path)])
    assert r.returncode == 0, r.stderr
    out = {}
    for line in r.stdout.splitlines():
        if "=" in line:
            k, v = line.split("=", 1)
            out[k] = v.strip('"')
    return out


def test_getfattr_header_facts(zfs):
    z = zfs.zinc().create("xa", 2 * PAGE)
    z.notify(3)
    info = z.stat("xa")
    x = _getfattr(zfs.path("xa"), "-d")
    for key in ("seq", "capacity", "refs", "owner_pid", "created_at"):
        assert f"user.zinc.{key}" in x, x
    assert int(x["user.zinc.seq"]) == 3
    assert int(x["user.zinc.capacity"]) == 2 * PAGE
    assert int(x["user.zinc.owner_pid"]) == z.pid
    assert int(x["user.zinc.refs"]) == info["refs"]
    assert int(x["user.zinc.created_at"]) == info["created_at"]
    # live values, not cached ones
    z.notify(2)
    assert int(_getfattr(zfs.path("xa"), "-n", "user.zinc.seq")["user.zinc.seq"]) == 5
    # a name that is not there gives ENODATA
    r = run(["getfattr", "-n", "user.zinc.nonsense", str(zfs.path("xa"))])
    assert r.returncode != 0 and "No such attribute" in r.stderr, r.stderr
    z.exit()


def test_df_reports_region_dir(zfs):
    r = run(["df", "-P", str(zfs.mnt)])
    assert r.returncode == 0, r.stderr
    m, s = os.statvfs(zfs.mnt), os.statvfs(zfs.shm)
    assert m.f_blocks * m.f_frsize == s.f_blocks * s.f_frsize
    assert m.f_bavail * m.f_frsize == s.f_bavail * s.f_frsize
    z = zfs.zinc().create("big", 1024 * PAGE)  # 4 MiB used
    m, s = os.statvfs(zfs.mnt), os.statvfs(zfs.shm)
    assert m.f_bfree * m.f_frsize == s.f_bfree * s.f_frsize
    z.exit()


def test_regions_appear_and_disappear_from_outside(zfs):
    # negative lookups and a listing first, so stale caches would show
    with pytest.raises(FileNotFoundError):
        os.stat(zfs.path("late"))
    assert zfs.names() == set()
    z = zfs.zinc().create("late", PAGE)
    t0 = time.monotonic()
    wait_until(lambda: os.path.exists(zfs.path("late")), 1.0, "region to appear")
    wait_until(lambda: os.path.exists(zfs.path("late.wait")), 1.0, "late.wait")
    assert zfs.names() == {"late", "late.notify", "late.wait"}
    assert time.monotonic() - t0 < 1.0 * SLOW
    os.stat(zfs.path("late.notify"))  # positive entries cached now
    z.close()  # last handle: libzinc removes the name
    assert not zfs.obj("late").exists()
    wait_until(lambda: not os.path.exists(zfs.path("late")), 1.0, "region to disappear")
    wait_until(lambda: not os.path.exists(zfs.path("late.notify")), 1.0, "late.notify gone")
    assert zfs.names() == set()
    # and again under the same name (new inode / new region)
    z.create("late", 2 * PAGE)
    wait_until(lambda: os.path.exists(zfs.path("late")) and
               os.stat(zfs.path("late")).st_size == 2 * PAGE, 1.0, "recreated region")
    z.cmd("unlink late")
    wait_until(lambda: not os.path.exists(zfs.path("late")), 1.0, "unlinked region gone")
    z.exit()


def test_zincfs_does_not_keep_regions_alive(zfs):
    z = zfs.zinc().create("ephemeral", PAGE)
    z.write(0, b"data")
    with open(zfs.path("ephemeral"), "rb") as f, open(zfs.path("ephemeral.wait"), "rb"):
        assert f.read(4) == b"data"
        z.close()  # the only libzinc handle: the name goes now
        assert not zfs.obj("ephemeral").exists()
        wait_until(lambda: "ephemeral" not in zfs.names(), 1.0, "entry gone")
    z.exit()


def _plant_malformed(zfs):
    shm = zfs.shm
    (shm / "zinc_badmagic").write_bytes(b"\x55" * (2 * PAGE))
    # right header, wrong size (not a page multiple)
    good = zfs.zinc().create("template", PAGE)
    hdr = open(zfs.obj("template"), "rb").read(PAGE)
    good.exit()
    (shm / "zinc_badsize").write_bytes(hdr + b"\0" * (PAGE + 100))
    # right header, capacity disagrees with the size
    (shm / "zinc_badcap").write_bytes(hdr + b"\0" * (3 * PAGE))
    (shm / "zinc_dir").mkdir()
    os.mkfifo(shm / "zinc_fifo")
    (shm / "zinc_empty").write_bytes(b"")
    (shm / "zinc_short").write_bytes(b"\0" * 10)
    (shm / "zinc_bad.name").write_bytes(hdr + b"\0" * PAGE)
    (shm / "notzinc").write_bytes(hdr + b"\0" * PAGE)
    return ["badmagic", "badsize", "badcap", "dir", "fifo", "empty", "short", "bad.name"]


def test_malformed_objects_hidden(zfs):
    zfs.expect_log(r"warning:")
    ok = zfs.zinc().create("fine", PAGE)
    ok.write(0, b"fine data")
    bad = _plant_malformed(zfs)
    ok2 = zfs.zinc().create("fine2", PAGE)
    assert zfs.names() == {"fine", "fine.notify", "fine.wait",
                           "fine2", "fine2.notify", "fine2.wait"}
    for n in bad:
        for suffix in ("", ".wait", ".notify"):
            with pytest.raises(OSError) as e:
                os.stat(zfs.path(n + suffix))
            assert e.value.errno in (errno.ENOENT, errno.EINVAL), (n, e.value)
    # logged once, not per lookup
    before = zfs.log()
    for _ in range(5):
        zfs.names()
        for n in bad:
            try:
                os.stat(zfs.path(n))
            except OSError:
                pass
    assert zfs.log() == before, "malformed objects logged per lookup:\n" + zfs.log()
    # still serving; the daemon is alive
    with open(zfs.path("fine"), "rb") as f:
        assert f.read(9) == b"fine data"
    assert zfs.proc.poll() is None
    ok.exit()
    ok2.exit()


def test_region_truncated_underneath(zfs):
    """An object truncated while zincfs has it open must not crash it."""
    zfs.expect_log(r"warning:")
    z = zfs.zinc().create("shrinks", 4 * PAGE)
    z.fill(0, 4 * PAGE, 0x41)
    fd = os.open(zfs.path("shrinks"), os.O_RDWR)
    try:
        assert os.pread(fd, 10, 0) == b"A" * 10
        os.truncate(zfs.obj("shrinks"), PAGE + PAGE // 2)  # cuts into the data
        for off in (0, PAGE, 3 * PAGE):
            try:
                os.pread(fd, PAGE, off)
                os.pwrite(fd, b"x" * 10, off)
            except OSError:
                pass
        os.truncate(zfs.obj("shrinks"), 0)
        for off in (0, PAGE):
            try:
                os.pread(fd, PAGE, off)
            except OSError:
                pass
    finally:
        os.close(fd)
    try:
        os.stat(zfs.path("shrinks"))
        zfs.names()
    except OSError:
        pass
    assert zfs.proc.poll() is None, "zincfs died on a truncated region"
    z2 = zfs.zinc().create("other", PAGE)
    z2.write(0, b"ok")
    wait_until(lambda: "other" in zfs.names(), 1.0)
    with open(zfs.path("other"), "rb") as f:
        assert f.read(2) == b"ok"
    z2.exit()
