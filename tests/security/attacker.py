# SPDX-License-Identifier: MIT
"""The attacker: runs as an unprivileged user (see conftest.Attacker).

Usage: python3 -c "$(cat attacker.py)" MOUNT SHM_DIR
Reads JSON lines [function, [args...]] on stdin and answers each with one
line ["ok", result] or ["err", "why"].  Files and locks it opens stay open
(in HELD) until close_all() or exit, as an attacker would keep them.
"""
import ctypes
import errno
import fcntl
import json
import os
import struct
import sys
import threading
import time

MNT, SHM = sys.argv[1], sys.argv[2]
PAGE = os.sysconf("SC_PAGE_SIZE")
MAGIC = 0x5A494E435F524547
EXT_MAGIC = 0x31434E495A42494C
F_OFD_SETLK = 37
HELD = []


def whoami():
    return [os.getuid(), os.getgid(), os.getgroups()]


def mnt(name):
    return os.path.join(MNT, name)


def obj(name):
    return os.path.join(SHM, "zinc_" + name)


def header(name, cap, magic=MAGIC, seq=0):
    h = 0xcbf29ce484222325
    for c in name.encode():
        h = ((h ^ c) * 0x100000001b3) & (2 ** 64 - 1)
    # zinc.h's header; owner_pid 0x7ffffffe is no process; then the ext.
    return (struct.pack("<QHHIQIiQQQQ", magic, 2, 0, seq, cap, 0, 0x7FFFFFFE,
                        time.time_ns(), h, 0, 0)
            + struct.pack("<QII", EXT_MAGIC, 0, 0))


def plant(name, cap=PAGE, magic=MAGIC):
    """A stale region of ours (no owner, no handle): a valid header on a
    sparse object of page + cap bytes.  Returns its inode number."""
    fd = os.open(obj(name), os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        os.pwrite(fd, header(name, cap, magic), 0)
        os.ftruncate(fd, PAGE + cap)
        return os.fstat(fd).st_ino
    finally:
        os.close(fd)


def plant_many(prefix, n, cap=PAGE, magic=MAGIC):
    for i in range(n):
        plant(f"{prefix}{i}", cap, magic)
    return n


def _errno_of(fn):
    try:
        fn()
        return 0
    except OSError as e:
        return e.errno


def lock(name, ranges):
    """OFD read locks, from a read-only fd of a region we may only read."""
    fd = os.open(obj(name), os.O_RDONLY)
    HELD.append(fd)
    for start, length in ranges:
        fcntl.fcntl(fd, F_OFD_SETLK, struct.pack("hhqqi4x", fcntl.F_RDLCK,
                                                 os.SEEK_SET, start, length, 0))
    return True


def close_all():
    n = len(HELD)
    while HELD:
        os.close(HELD.pop())
    return n


def create_through_mount(name):
    """open(O_RDWR|O_CREAT) of MNT/name: 0 or the errno."""
    def go():
        HELD.append(os.open(mnt(name), os.O_RDWR | os.O_CREAT, 0o666))
    return _errno_of(go)


def open_race(name, secret_hex, seconds):
    """Keep opening MNT/name with O_RDWR|O_CREAT while root creates and
    removes its 0600 region of that name; count every fd that shows root's
    region (its owner or the secret root wrote into it)."""
    secret = bytes.fromhex(secret_hex)
    res = {"tries": 0, "ours": 0, "leaks": 0, "errors": {}}
    end = time.monotonic() + seconds
    while time.monotonic() < end and not res["leaks"]:
        res["tries"] += 1
        try:
            fd = os.open(mnt(name), os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as e:
            k = errno.errorcode.get(e.errno, str(e.errno))
            res["errors"][k] = res["errors"].get(k, 0) + 1
            continue
        try:
            st = os.fstat(fd)
            data = os.pread(fd, len(secret), 0)
            if st.st_uid != os.getuid() or data == secret:
                res["leaks"] += 1
            else:
                res["ours"] += 1
                # Free the name again: our region would lock root out.
                _errno_of(lambda: os.unlink(mnt(name)))
        except OSError:
            pass
        finally:
            os.close(fd)
    return res


def unlink_race(name, libzinc, seconds):
    """Plant a stale region `name` of ours whenever the name is free and
    remove `name` through the mount and through zinc_unlink(3), as fast as
    we can, while root replaces our stale region by its own."""
    lib = ctypes.CDLL(libzinc)
    lib.zinc_unlink.argtypes = [ctypes.c_char_p]
    res = {"plants": 0, "rm": {}, "zinc_unlink": {}}
    stop = time.monotonic() + seconds

    def count(d, e):
        k = errno.errorcode.get(e, str(e)) if e else "ok"
        d[k] = d.get(k, 0) + 1

    def remover():
        while time.monotonic() < stop:
            count(res["rm"], _errno_of(lambda: os.unlink(mnt(name))))
            count(res["zinc_unlink"], -lib.zinc_unlink(name.encode()))

    t = threading.Thread(target=remover)
    t.start()
    while time.monotonic() < stop:
        try:
            plant(name)
            res["plants"] += 1
            os.stat(mnt(name))  # let the kernel cache our region's entry
        except OSError:
            time.sleep(0.0002)
    t.join()
    return res


def open_many(names):
    """Open every MNT/name and keep the fds: [opened, {errno: count}]."""
    ok, errs = 0, {}
    for n in names:
        try:
            HELD.append(os.open(mnt(n), os.O_RDONLY))
            ok += 1
        except OSError as e:
            k = errno.errorcode.get(e.errno, str(e.errno))
            errs[k] = errs.get(k, 0) + 1
    return [ok, errs]


def open_dirs(n):
    """Open the mount's directory n times (each an opendir) and keep them:
    [opened, errno of the first failure or 0]."""
    for i in range(n):
        try:
            HELD.append(os.open(MNT, os.O_RDONLY | os.O_DIRECTORY))
        except OSError as e:
            return [i, errno.errorcode.get(e.errno, str(e.errno))]
    return [n, 0]


def churn(names, seconds):
    """Truncate our own regions' objects to nothing and write them whole
    again (a child process per object) while looking them up and opening
    them through the mount; then remove them.  Returns the number of
    lookups."""
    for n in names:
        plant(n)
    end = time.monotonic() + seconds
    kids = []
    for n in names:
        pid = os.fork()
        if pid == 0:
            whole = header(n, PAGE).ljust(2 * PAGE, b"\0")
            fd = os.open(obj(n), os.O_RDWR)
            while time.monotonic() < end:
                os.ftruncate(fd, 0)
                os.pwrite(fd, whole, 0)
            os._exit(0)
        kids.append(pid)
    lookups = 0
    while time.monotonic() < end:
        for n in names:
            _errno_of(lambda: os.stat(mnt(n)))
            _errno_of(lambda: os.close(os.open(mnt(n), os.O_RDONLY)))
            lookups += 1
    for pid in kids:
        os.waitpid(pid, 0)
    for n in names:
        os.unlink(obj(n))
    return lookups


def junk(n, distinct):
    """Objects that are no region (wrong magic), each looked up through the
    mount then removed: n distinct names, or one name n times."""
    for i in range(n):
        name = f"junk{i}" if distinct else "junk"
        fd = os.open(obj(name), os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        os.pwrite(fd, header(name, PAGE, magic=0x4B4E554A4B4E554A), 0)
        os.ftruncate(fd, 2 * PAGE)
        os.close(fd)
        _errno_of(lambda: os.stat(mnt(name)))
        os.unlink(obj(name))
    return n


for line in sys.stdin:
    fn, args = json.loads(line)
    try:
        out = ["ok", globals()[fn](*args)]
    except Exception as e:  # report, keep serving
        out = ["err", f"{fn}: {e!r}"]
    print(json.dumps(out), flush=True)
