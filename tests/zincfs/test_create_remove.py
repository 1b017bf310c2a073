# SPDX-License-Identifier: MIT
"""Creating, resizing and removing regions through the mount, and the
operations the mount refuses."""
import errno
import os

import pytest

from conftest import PAGE, ZincError, run, wait_blocked, wait_until

REFUSED = (errno.EINVAL, errno.EPERM, errno.EOPNOTSUPP)


def assert_region(zfs, name, cap):
    assert zfs.obj(name).exists()
    assert {name, name + ".notify", name + ".wait"} <= zfs.names()
    assert os.stat(zfs.path(name)).st_size == cap
    z = zfs.zinc()
    assert z.open(name) == cap
    z.exit()  # zincfs owns it: this close must not remove it
    assert zfs.obj(name).exists()
    assert name in zfs.names()


def test_create_touch_redirect_ocreat(zfs):
    assert zfs.sh("touch t1").returncode == 0
    assert_region(zfs, "t1", PAGE)
    assert zfs.sh("> t2").returncode == 0
    assert_region(zfs, "t2", PAGE)
    assert zfs.sh("echo payload > t3").returncode == 0
    assert_region(zfs, "t3", PAGE)
    z = zfs.zinc()
    z.open("t3")
    assert z.read(0, 8) == b"payload\n"
    z.exit()
    fd = os.open(zfs.path("t4"), os.O_CREAT | os.O_RDWR | os.O_EXCL, 0o600)
    try:
        assert os.fstat(fd).st_size == PAGE
        assert os.pwrite(fd, b"abc", 10) == 3
    finally:
        os.close(fd)
    assert_region(zfs, "t4", PAGE)
    with pytest.raises(FileExistsError):
        os.open(zfs.path("t4"), os.O_CREAT | os.O_RDWR | os.O_EXCL)
    # created regions are full regions: they notify and wait
    h = zfs.spawn(["head", "-n1", "t4.wait"], cwd=str(zfs.mnt), stdout=-1, stderr=-1)
    wait_blocked(h.pid, "fuse")
    assert zfs.sh("echo > t4.notify").returncode == 0
    assert h.communicate(timeout=10)[0] == b"1\n"


@pytest.mark.zincfs("region_size=64K")
def test_region_size_option(zfs):
    assert zfs.sh("touch big").returncode == 0
    assert_region(zfs, "big", 65536)


@pytest.mark.zincfs("region_size=2M")
def test_region_size_option_mega(zfs):
    fd = os.open(zfs.path("m"), os.O_CREAT | os.O_WRONLY)
    os.close(fd)
    assert_region(zfs, "m", 2 << 20)


def test_truncate_right_after_creation(zfs):
    r = zfs.sh("truncate -s 1M new")  # CREATE, then SETATTR size with fh
    assert r.returncode == 0, r.stderr
    assert_region(zfs, "new", 1 << 20)
    assert zfs.sh("touch n2 && truncate -s 64K n2").returncode == 0
    assert_region(zfs, "n2", 65536)
    # still the only holder: resizing again works, to 0/current is ignored
    assert zfs.sh("truncate -s 8K n2 && truncate -s 0 n2").returncode == 0
    assert os.stat(zfs.path("n2")).st_size == 8192


def test_resize_right_after_creation_never_ebusy(zfs):
    """Only other holders make a resize EBUSY, never zincfs's own passing
    work (inotify events, watcher) on the region it just created."""
    busy = []
    for i in range(200):
        fd = os.open(zfs.path(f"n{i}"), os.O_CREAT | os.O_WRONLY)
        try:
            os.ftruncate(fd, 65536)
        except OSError as e:
            busy.append((i, e.strerror))
        finally:
            os.close(fd)
    assert not busy, f"{len(busy)}/200 resizes right after creation failed: {busy[:5]}"
    assert os.stat(zfs.path("n199")).st_size == 65536


@pytest.mark.parametrize("size", ["1000", "4097", str(PAGE + PAGE // 2)])
def test_truncate_non_page_multiple_einval(zfs, size):
    assert zfs.sh("touch odd").returncode == 0
    r = zfs.sh(f"truncate -s {size} odd")
    assert r.returncode != 0 and "Invalid argument" in r.stderr, r
    assert os.stat(zfs.path("odd")).st_size == PAGE
    with pytest.raises(OSError) as e:
        os.truncate(zfs.path("odd"), int(size))
    assert e.value.errno == errno.EINVAL


def test_resize_while_others_hold_ebusy(zfs):
    assert zfs.sh("touch held").returncode == 0
    z = zfs.zinc()
    z.open("held")
    r = zfs.sh("truncate -s 64K held")
    assert r.returncode != 0 and "Device or resource busy" in r.stderr, r
    assert os.stat(zfs.path("held")).st_size == PAGE
    assert z.cmd("removed") == "0"
    z.close()
    r = zfs.sh("truncate -s 64K held")
    assert r.returncode == 0, r.stderr
    assert_region(zfs, "held", 65536)
    z.exit()


def test_resize_not_owned_eperm(zfs):
    z = zfs.zinc().create("foreign", PAGE)
    r = zfs.sh("truncate -s 64K foreign")
    assert r.returncode != 0 and "Operation not permitted" in r.stderr, r
    with pytest.raises(OSError) as e:
        os.truncate(zfs.path("foreign"), 8192)
    assert e.value.errno == errno.EPERM
    assert os.stat(zfs.path("foreign")).st_size == PAGE
    assert z.stat()["capacity"] == PAGE
    z.exit()


@pytest.mark.parametrize("creator", ["mount", "libzinc"])
def test_rm_removes_region(zfs, creator):
    holder = None
    if creator == "mount":
        assert zfs.sh("echo keepme > gone").returncode == 0
    else:
        holder = zfs.zinc().create("gone", PAGE)
        holder.write(0, b"keepme\n")
    w = zfs.zinc()
    w.open("gone")
    try:
        w.cmd("trywait")
    except ZincError:
        pass
    w.send("wait -1")
    wait_blocked(w.pid, "futex")
    r = zfs.sh("rm gone")
    assert r.returncode == 0, r.stderr
    with pytest.raises(ZincError) as e:
        w.reply()
    assert e.value.errno == errno.EIDRM  # libzinc waiters get EIDRM
    assert not zfs.obj("gone").exists()
    for n in ("gone", "gone.notify", "gone.wait"):
        assert not os.path.exists(zfs.path(n))
    assert zfs.names() == set()
    # whoever has it mapped keeps the memory
    assert w.read(0, 7) == b"keepme\n"
    assert w.cmd("removed") == "1"
    if holder:
        assert holder.read(0, 7) == b"keepme\n"
        holder.exit()
    w.exit()
    r = zfs.sh("rm gone")
    assert r.returncode != 0 and "No such file" in r.stderr


def test_rm_control_files_eperm(zfs):
    assert zfs.sh("touch c").returncode == 0
    for n in ("c.notify", "c.wait"):
        r = zfs.sh(f"rm -f {n}")
        assert r.returncode != 0 and "Operation not permitted" in r.stderr, r
        with pytest.raises(PermissionError) as e:
            os.unlink(zfs.path(n))
        assert e.value.errno == errno.EPERM
    assert zfs.names() == {"c", "c.notify", "c.wait"}


@pytest.mark.parametrize("name", ["bad.name", "sp ace", pytest.param("x" * 251, id="251-chars"), "new.wait",
                                  "new.notify", "dots...", "ümlaut"])
def test_invalid_names_refused(zfs, name):
    for how in ("touch", "open"):
        if how == "touch":
            r = run(["touch", name], cwd=zfs.mnt)
            assert r.returncode != 0, r
        else:
            with pytest.raises(OSError) as e:
                os.close(os.open(zfs.path(name), os.O_CREAT | os.O_WRONLY))
            assert e.value.errno in REFUSED, e.value
    assert zfs.names() == set()
    assert not [n for n in os.listdir(zfs.shm)]
    assert zfs.proc.poll() is None


def _refused(fn, *args):
    with pytest.raises(OSError) as e:
        fn(*args)
    assert e.value.errno in REFUSED, f"{fn.__name__}{args}: {e.value}"
    return e.value.errno


def test_other_operations_refused(zfs):
    z = zfs.zinc().create("a", PAGE)
    zfs.zinc().create("b", PAGE)
    p = zfs.path
    _refused(os.mkdir, p("dir"))
    _refused(os.mkdir, p("a2"))
    _refused(os.symlink, "a", p("sym"))
    _refused(os.link, p("a"), p("hard"))
    _refused(os.link, p("a.wait"), p("hard2"))
    _refused(os.rename, p("a"), p("c"))
    _refused(os.rename, p("a"), p("b"))
    _refused(os.rename, p("a.notify"), p("x.notify"))
    _refused(os.mknod, p("fifo"), 0o600 | 0o010000)  # S_IFIFO
    for ctl in ("a.notify", "a.wait"):
        _refused(os.chmod, p(ctl), 0o666)
        _refused(os.chown, p(ctl), 65534, 65534)
    for cmd in ("mkdir d", "ln -s a s", "ln a l", "mv a c", "chmod 666 a.wait"):
        r = zfs.sh(cmd)
        assert r.returncode != 0 and r.stderr, (cmd, r)
        assert ("Operation not permitted" in r.stderr or "Invalid argument" in r.stderr
                or "not supported" in r.stderr), (cmd, r.stderr)
    assert zfs.names() == {"a", "a.notify", "a.wait", "b", "b.notify", "b.wait"}
    assert set(os.listdir(zfs.shm)) == {"zinc_a", "zinc_b"}
    assert zfs.proc.poll() is None
    z.exit()


def test_resize_right_after_other_files_closed_never_ebusy(zfs):
    """close(2) returns before the kernel's RELEASE reaches zincfs, so the
    open file it counted can still look open to a truncate that follows at
    once: zincfs waits for such releases instead of answering EBUSY."""
    assert zfs.sh("touch r").returncode == 0
    busy = []
    for i in range(300):
        fd = os.open(zfs.path("r"), os.O_RDWR)
        os.write(fd, b"x")
        os.close(fd)
        size = PAGE * (1 + i % 2)
        try:
            os.truncate(zfs.path("r"), size)
        except OSError as e:
            busy.append((i, e.strerror))
    assert not busy, f"{len(busy)}/300 resizes after a close failed: {busy[:5]}"
    assert os.stat(zfs.path("r")).st_size == PAGE * 2
