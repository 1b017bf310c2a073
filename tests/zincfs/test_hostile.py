# SPDX-License-Identifier: MIT
"""Hostile input table (issue 5, item 5).

One parametrized test runs every row of CASES through a real interface --
the mount (os calls and shell commands), libzinc (ctypes on
$ZINC_BUILD_DIR/libzinc/libzinc.so.1, in a child process so that a crash or
an ASan report cannot take pytest down), planted objects in the region
directory, or zincfs's command line -- and asserts the errno or result that
zincfs(8), zinc_create(3), zinc_open(3) and zinc_unlink(3) document (or the
kernel gives before zincfs is asked; those rows say "kernel").

After every row the daemon must still serve: a fresh region is created,
written, read, notified and waited for through the mount, and the fixture's
teardown fails the row on any unexpected "error:" line or sanitizer report.
Rows that plant invalid objects also check the warning zincfs logs (once).
"""
import ctypes
import errno
import os
import re
import socket
import struct
import subprocess
import time
from dataclasses import dataclass

import pytest

from conftest import (BUILD, PAGE, SLOW, ZINCFS, finish, mountinfo_has, read_line, run,
                      wait_blocked, wait_until)

LIBZINC = BUILD / "libzinc" / "libzinc.so.1"
PYTHON = "/usr/bin/python3"  # Debian's, with ctypes; the pyenv one may differ
MAGIC = 0x5A494E435F524547
E = errno


# ------------------------------------------------------------------ libzinc

# Runs in a child: one libzinc call with argtypes/restype set, so that
# capacities up to 2^64-1 reach zinc_create as they are (c_size_t), and
# names are raw bytes (a NUL ends the C string).
_CTYPES_CHILD = r"""
import ctypes, os, sys
lib = ctypes.CDLL(sys.argv[1])
op, name, cap = sys.argv[2], bytes.fromhex(sys.argv[3]), int(sys.argv[4])
H = ctypes.c_void_p
lib.zinc_create.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.POINTER(H)]
lib.zinc_create.restype = ctypes.c_int32
lib.zinc_open.argtypes = [ctypes.c_char_p, ctypes.POINTER(H)]
lib.zinc_open.restype = ctypes.c_int32
lib.zinc_unlink.argtypes = [ctypes.c_char_p]
lib.zinc_unlink.restype = ctypes.c_int32
lib.zinc_capacity.argtypes = [H]
lib.zinc_capacity.restype = ctypes.c_size_t
lib.zinc_close.argtypes = [H]
lib.zinc_close.restype = None
h = H(0xdead)
if op == "create":
    rc = lib.zinc_create(name, cap, ctypes.byref(h))
elif op == "open":
    rc = lib.zinc_open(name, ctypes.byref(h))
else:
    rc, h = lib.zinc_unlink(name), H(None)
extra = ""
if rc == 0 and h.value:
    d = os.environ["ZINC_SHM_DIR"]
    objs = sorted(n for n in os.listdir(d) if n.startswith("zinc_"))
    extra = " cap=%d objs=%s" % (lib.zinc_capacity(h), ",".join(objs))
    lib.zinc_close(h)
elif op != "unlink" and h.value is not None:
    extra = " out-not-null"
print("%d%s" % (rc, extra))
"""


def _sanitizer_env(env):
    """A sanitized libzinc needs its runtimes first in a python process."""
    env = dict(env)
    r = run(["ldd", str(LIBZINC)])
    pre = [m.group(1) for m in re.finditer(r"(/\S*lib(?:asan|ubsan)\.so\S*)", r.stdout)]
    if pre:
        env["LD_PRELOAD"] = " ".join(pre)
        env["ASAN_OPTIONS"] = "detect_leaks=0"  # python's own leaks
    return env


def libzinc(zfs, op, name, cap=0):
    """(rc, extra) of one libzinc call in a child process."""
    if isinstance(name, str):
        name = name.encode()
    r = run([PYTHON, "-c", _CTYPES_CHILD, str(LIBZINC), op, name.hex(), str(cap)],
            env=_sanitizer_env(zfs.env), timeout=20)
    assert r.returncode == 0 and not re.search(r"Sanitizer|runtime error", r.stderr), \
        f"libzinc child failed ({r.returncode}):\n{r.stderr}"
    rc, _, extra = r.stdout.strip().partition(" ")
    return int(rc), extra


# ------------------------------------------------------------------ table

@dataclass
class Case:
    id: str
    how: str          # name of an apply_* function below
    arg: object       # its input
    want: object      # documented result: errno (int), 0, or a string for the function
    doc: str          # where it is documented

    def param(self):
        return pytest.param(self, id=self.id.replace("^", "p"))  # -k-friendly


class Ret(int):
    """A successful call's return value (a plain int in `want` is an errno)."""


N250 = "a" * 250
N251 = "b" * 251
BIG63 = 2 ** 63
MAX64 = 2 ** 64 - 1

CASES = [
    # --- names through the mount: open(O_CREAT), touch, mkdir, rename
    *[Case(f"mount-create-{i}", "mount_create", n, w, "zincfs.8 Creating regions / ERRORS EINVAL")
      for i, (n, w) in enumerate([
          ("..", E.EISDIR),           # kernel: ".." is the parent directory
          (".", E.EISDIR),            # kernel
          (N250, 0), (N251, E.EINVAL), ("c" * 255, E.EINVAL),
          ("d" * 256, E.EINVAL),      # FUSE allows 1024-byte names: zincfs answers
          ("caf\u00e9", E.EINVAL), ("\u2713", E.EINVAL), ("sp ace", E.EINVAL),
          (" lead", E.EINVAL), ("new\nline", E.EINVAL), ("a.b", E.EINVAL),
          ("-lead", 0), ("--", 0), ("-", 0), ("x.notify", E.EPERM), ("x.wait", E.EPERM),
          ("x.wait.wait", E.EINVAL), ("\x7f", E.EINVAL), ("\xff", E.EINVAL),
      ])],
    Case("mount-touch-dashname", "mount_sh", "touch -- -rf && test -f ./-rf && rm -- -rf", 0,
         "zincfs.8 Creating regions"),
    Case("mount-touch-251", "mount_sh", f"touch {N251}", E.EINVAL, "zincfs.8 ERRORS EINVAL"),
    Case("mount-touch-unicode", "mount_sh", "touch 'f\u00fcr'", E.EINVAL, "zincfs.8 ERRORS EINVAL"),
    Case("mount-touch-space", "mount_sh", "touch 'a b'", E.EINVAL, "zincfs.8 ERRORS EINVAL"),
    Case("mount-touch-sub-slash", "mount_sh", "touch a/b", E.ENOENT, "kernel: no directory a"),
    Case("mount-mkdir", "mount_call", ("mkdir", "dir"), E.EPERM, "zincfs.8 Other operations"),
    Case("mount-mkdir-dotdot", "mount_call", ("mkdir", ".."), E.EEXIST, "kernel"),
    Case("mount-mkdir-region-name", "mount_call", ("mkdir", "r"), E.EEXIST, "kernel: r exists"),
    Case("mount-rename-plain", "mount_call", ("rename", "r", "s"), E.EPERM, "zincfs.8 Other operations"),
    Case("mount-rename-to-dotdot", "mount_call", ("rename", "r", ".."), E.EBUSY, "kernel"),
    Case("mount-rename-to-251", "mount_call", ("rename", "r", N251), E.EPERM, "zincfs.8 Other operations"),
    Case("mount-rename-ctl", "mount_call", ("rename", "r.wait", "s.wait"), E.EPERM, "zincfs.8 Other operations"),
    Case("mount-mknod-fifo", "mount_call", ("mkfifo", "ff"), E.EPERM, "zincfs.8 ERRORS EPERM mknod"),
    Case("mount-symlink", "mount_call", ("symlink", "r", "ln"), E.EPERM, "zincfs.8 Other operations"),
    Case("mount-link", "mount_call", ("link", "r", "ln"), E.EPERM, "zincfs.8 Other operations"),
    Case("mount-rm-ctl", "mount_call", ("unlink", "r.notify"), E.EPERM, "zincfs.8 Removing regions"),
    Case("mount-rmdir-dotdot", "mount_call", ("rmdir", "r"), E.ENOTDIR, "kernel"),
    Case("mount-lookup-251", "mount_call", ("stat", N251), E.ENOENT, "zincfs.8 Other operations"),

    # --- names through libzinc (ctypes): what C strings can express
    *[Case(f"lib-name-{i}", "lib_name", n, w, "zinc_create.3/zinc_open.3/zinc_unlink.3 EINVAL")
      for i, (n, w) in enumerate([
          (b"a/b", E.EINVAL), (b"/abs", E.EINVAL), (b"..", E.EINVAL), (b".", E.EINVAL),
          (b"../../etc/passwd", E.EINVAL), (b"", E.EINVAL), (N251.encode(), E.EINVAL),
          ("caf\u00e9".encode(), E.EINVAL), (b"sp ace", E.EINVAL), (b"a.b", E.EINVAL),
          (N250.encode(), 0), (b"-lead", 0), (b"-", 0),
          (b"nul\x00/../../x", 0),    # the C string is "nul": region nul, nothing else
      ])],

    # --- capacities: zinc_create (ctypes, c_size_t)
    *[Case(f"lib-cap-{n}", "lib_cap", c, w, "zinc_create.3 EINVAL / ENOSPC")
      for n, c, w in [("0", 0, E.EINVAL), ("1", 1, E.EINVAL), ("page-1", PAGE - 1, E.EINVAL),
                      ("page", PAGE, 0), ("page+1", PAGE + 1, E.EINVAL),
                      ("2^63-page", BIG63 - PAGE, E.EINVAL),  # page + cap overflows off_t
                      ("2^63", BIG63, E.EINVAL), ("2^64-1", MAX64, E.EINVAL),
                      ("2^64-page", 2 ** 64 - PAGE, E.EINVAL),
                      ("2^62", 2 ** 62, E.ENOSPC),            # fits off_t, not the 64M tmpfs
                      ("1T", 1 << 40, E.ENOSPC)]],

    # --- capacities: truncate(2) and truncate -s of a region created through the mount
    *[Case(f"truncate-{n}", "mount_truncate", (via, s), w, "zincfs.8 Resizing regions")
      for via in ("os", "sh")
      for n, s, w in [("0", 0, 0), ("1", 1, E.EINVAL), ("page-1", PAGE - 1, E.EINVAL),
                      ("page+1", PAGE + 1, E.EINVAL), ("2page", 2 * PAGE, 0),
                      ("2^62", 2 ** 62, E.ENOSPC), ("2^63-1", BIG63 - 1, E.EINVAL),
                      ("2^63-page", BIG63 - PAGE, E.EINVAL)]
      for n in [f"{via}-{n}"]],
    Case("truncate-sh-2^63", "mount_sh", f"truncate -s {BIG63} t",
         "Value too large", "coreutils refuses before any syscall"),
    Case("truncate-neg", "mount_sh", "truncate -s -4096 t && test -s t && rm t", 0,
         "coreutils: -4096 = shrink by 4096 -> 0 -> ignored (zincfs.8 THE DATA FILE)"),
    Case("truncate-libzinc-region", "mount_truncate_foreign", 2 * PAGE, E.EPERM,
         "zincfs.8 Resizing regions: not created through this mount"),

    # --- -o region_size=
    *[Case(f"region_size-{s}", "region_size", s, 1, "zincfs.8 OPTIONS region_size: exit 1")
      for s in ["0", "1", str(PAGE - 1), str(PAGE + 1), str(MAX64), str(2 ** 64),
                "17179869184G",  # 2^64: wraps?
                "-4096", "4096x", "1T", str(BIG63), "8589934592G"]],

    # --- objects in the region directory
    *[Case(f"object-{k}", "plant", k, w, "zincfs.8 DESCRIPTION, zinc_open.3 EBADMSG, "
           "zinc_create.3, zinc_unlink.3")
      for k, w in [
          ("wrong-magic", "wrong magic"),
          ("wrong-version", "unsupported format version"),
          ("wrong-capacity", "capacity does not match"),
          ("wrong-size", "size is not a whole number of pages"),
          ("one-page", "size is not a whole number of pages"),
          ("zero-length", None),      # young and empty: a region being created
          ("directory", "not a regular file"),
          ("fifo", "not a regular file"),
          ("symlink", "a symbolic link"),
          ("symlink-to-region", "a symbolic link"),
          ("socket", "not a regular file"),
      ]],

    # --- reads and writes of the data file (4 KiB region, bytes 0..PAGE-1 known)
    *[Case(f"data-{n}", "data_io", (op, off, cnt), w, "zincfs.8 THE DATA FILE")
      for n, op, off, cnt, w in [
          ("pread-at-cap", "pread", PAGE, 10, b""),
          ("pread-past-cap", "pread", PAGE + 1, 10, b""),
          ("pread-2^62", "pread", 2 ** 62, 10, b""),
          ("pread-straddle", "pread", PAGE - 4, 100, Ret(4)),
          ("pread-1GiB", "pread", 0, 1 << 30, Ret(PAGE)),
          ("pread-1GiB-off", "pread", 100, 1 << 30, Ret(PAGE - 100)),
          ("pread-neg", "pread", -1, 10, E.EINVAL),           # kernel
          ("pread-2^63-1", "pread", BIG63 - 1, 10, E.EINVAL),  # kernel: pos+count overflows
          ("pwrite-at-cap", "pwrite", PAGE, 10, E.ENOSPC),
          ("pwrite-past-cap", "pwrite", PAGE + 100, 10, E.ENOSPC),
          ("pwrite-2^62", "pwrite", 2 ** 62, 10, E.ENOSPC),
          ("pwrite-neg", "pwrite", -1, 10, E.EINVAL),         # kernel
          ("pwrite-straddle", "pwrite", PAGE - 4, 10, Ret(4)),
          ("pwrite-straddle-then", "pwrite2", PAGE - 4, 10, E.ENOSPC),
          ("pwrite-0", "pwrite", 0, 0, Ret(0)),
          ("pwrite-0-at-cap", "pwrite", PAGE, 0, Ret(0)),
          ("pwrite-0-past-cap", "pwrite", 10 * PAGE, 0, Ret(0)),
          ("pwrite-1MiB", "pwrite", 0, 1 << 20, Ret(PAGE)),
          ("lseek-neg", "lseek", -1, 0, E.EINVAL),            # kernel
          ("lseek-huge-write", "lseek_write", 2 ** 62, 1, E.ENOSPC),
          ("lseek-huge-read", "lseek_read", 2 ** 62, 1, b""),
          ("append-write", "append", 0, 10, E.ENOSPC),
      ]],
    *[Case(f"dd-{n}", "dd", a, w, "zincfs.8 THE DATA FILE (dd(1) messages)")
      for n, a, w in [
          ("seek-huge", "if=/dev/zero of=r bs=1 count=1 seek=99999999999999 conv=notrunc",
           "No space left on device"),
          ("seek-2^63-1", f"if=/dev/zero of=r bs=1 count=1 seek={BIG63 - 1} conv=notrunc",
           "Invalid argument"),                                # kernel
          ("seek-neg", "if=/dev/zero of=r bs=1 count=1 seek=-1 conv=notrunc",
           "invalid number"),                                  # dd refuses
          ("skip-huge", "if=r of=/dev/null bs=1 count=1 skip=99999999999999",
           "0+0 records in"),
          ("bs-1G", "if=r of=/dev/null bs=1G count=1", f"{PAGE} bytes"),
          ("count-0", "if=/dev/zero of=r bs=1 count=0 conv=notrunc", "0 bytes copied"),
          ("straddle", f"if=/dev/zero of=r bs=1 count=8 seek={PAGE - 4} conv=notrunc",
           "No space left on device"),
          ("cat-big", None, "No space left on device"),
      ]],

    # --- open flags
    *[Case(f"open-{n}", "open_flags", (f, fl), w, "zincfs.8 THE NOTIFY/WAIT/DATA FILE")
      for n, f, fl, w in [
          ("direct-data-rw", "r", os.O_DIRECT | os.O_RDWR, "rw"),
          ("direct-notify", "r.notify", os.O_DIRECT | os.O_WRONLY, "notify"),
          ("direct-wait", "r.wait", os.O_DIRECT | os.O_RDONLY, "wait"),
          ("append-notify", "r.notify", os.O_APPEND | os.O_WRONLY, "notify"),
          ("trunc-rdonly-wait", "r.wait", os.O_TRUNC | os.O_RDONLY, "wait"),
          ("trunc-rdonly-data", "r", os.O_TRUNC | os.O_RDONLY, "kept"),
          ("trunc-wronly-data", "r", os.O_TRUNC | os.O_WRONLY, "kept"),
          ("trunc-wronly-notify", "r.notify", os.O_TRUNC | os.O_WRONLY, "notify"),
          ("rdwr-wait", "r.wait", os.O_RDWR, E.EACCES),
          ("wronly-wait", "r.wait", os.O_WRONLY, E.EACCES),
          ("rdonly-notify", "r.notify", os.O_RDONLY, E.EACCES),
          ("rdwr-notify", "r.notify", os.O_RDWR, E.EACCES),
          ("excl-existing", "r", os.O_CREAT | os.O_EXCL | os.O_WRONLY, E.EEXIST),
          ("creat-ctl", "r.wait", os.O_CREAT | os.O_RDONLY, "wait"),  # exists: opened
          ("directory-flag", "r", os.O_DIRECTORY | os.O_RDONLY, E.ENOTDIR),  # kernel
      ]],

    # --- extended attributes
    *[Case(f"xattr-{op}-{f}-{(a or 'empty')[:16]}", "xattr", (op, f, a), w, "zincfs.8 Extended attributes")
      for op, f, a, w in [
          ("get", "r", "user.foo", E.ENODATA), ("get", "r", "user.zinc.nope", E.ENODATA),
          ("get", "r", "trusted.x", E.ENODATA), ("get", "r", "security.x", E.ENODATA),
          ("get", "r.wait", "user.zinc.seq", E.ENODATA),
          ("get", "r.notify", "user.zinc.capacity", E.ENODATA),
          ("get", "r", "user.zinc.seq", b"0"),
          ("get", "r", "", E.ERANGE),                         # kernel
          ("get", "r", "user." + "x" * 300, E.ERANGE),        # kernel: > XATTR_NAME_MAX
          ("set", "r", "user.foo", E.ENOTSUP), ("set", "r", "trusted.x", E.ENOTSUP),
          ("set", "r", "user.zinc.seq", E.EPERM), ("set", "r", "user.zinc.nope", E.EPERM),
          ("set", "r.wait", "user.zinc.seq", E.EPERM), ("set", "r.notify", "user.foo", E.ENOTSUP),
          ("remove", "r", "user.foo", E.ENOTSUP), ("remove", "r", "user.zinc.refs", E.EPERM),
          ("getsmall", "r", "user.zinc.capacity", E.ERANGE),
      ]],

    # --- removal while in use
    Case("rm-while-reading", "rm_while_reading", None, "keeps-reading",
         "zincfs.8 Removing regions: mapped memory stays; name gone (ENOENT)"),
    Case("rm-while-wait-blocked", "rm_while_waiting", "mount", E.EIDRM,
         "zincfs.8 THE WAIT FILE: EIDRM"),
    Case("zinc_unlink-while-wait-blocked", "rm_while_waiting", "libzinc", E.EIDRM,
         "zincfs.8 THE WAIT FILE: EIDRM"),
    Case("notify-after-rm", "notify_after_rm", None, E.EIDRM, "zincfs.8 THE NOTIFY FILE"),
]


# ------------------------------------------------------------------ appliers

def expect_errno(fn, want, what=""):
    """Call fn; want is an errno (must raise it) or anything else (returned)."""
    if isinstance(want, int) and want > 0 and not isinstance(want, (bool, Ret)):
        with pytest.raises(OSError) as e:
            fn()
        assert e.value.errno == want, \
            f"{what}: got {errno.errorcode.get(e.value.errno)}, want {errno.errorcode[want]}"
        return None
    return fn()


def sh_expect(zfs, script, want):
    """A shell snippet in the mount: want 0 (success), an errno (its message
    in stderr, non-zero status) or a string that must be in the output."""
    r = zfs.sh(script, timeout=20)
    out = r.stdout + r.stderr
    if want == 0:
        assert r.returncode == 0, f"{script}: {out}"
    elif isinstance(want, int):
        assert r.returncode != 0 and os.strerror(want) in r.stderr, f"{script}: {out}"
    else:
        assert want in out, f"{script}: {out}"
    return r


def shm_names(zfs):
    return {n for n in os.listdir(zfs.shm)}


def make_region(zfs, name="r"):
    """A 1-page region owned by the mount, data = bytes 0..255 repeated."""
    fd = os.open(zfs.path(name), os.O_CREAT | os.O_RDWR, 0o600)
    try:
        os.pwrite(fd, bytes(range(256)) * (PAGE // 256), 0)
    finally:
        os.close(fd)
    return zfs.path(name)


PATTERN = bytes(range(256)) * (PAGE // 256)


def apply_mount_create(zfs, name, want):
    def create():
        os.close(os.open(zfs.path(name), os.O_CREAT | os.O_WRONLY, 0o600))
    expect_errno(create, want, f"open(O_CREAT) {name[:20]!r}")
    if want == 0:
        assert f"zinc_{name}" in shm_names(zfs)
        assert os.stat(zfs.path(name)).st_size == PAGE
        assert os.stat(zfs.path(name + ".wait")).st_size == 0
        os.unlink(zfs.path(name))
    assert not shm_names(zfs), shm_names(zfs)


def apply_mount_sh(zfs, script, want):
    sh_expect(zfs, script, want)
    if "touch" in script and want != 0:
        assert not shm_names(zfs), shm_names(zfs)


def apply_mount_call(zfs, args, want):
    make_region(zfs, "r")
    op, *names = args
    paths = [str(zfs.path(n)) for n in names]
    fn = {"mkdir": os.mkdir, "rename": os.rename, "symlink": lambda a, b: os.symlink("r", b),
          "link": os.link, "unlink": os.unlink, "rmdir": os.rmdir, "stat": os.stat,
          "mkfifo": os.mkfifo}[op]
    expect_errno(lambda: fn(*paths), want, f"{op} {names}")
    assert shm_names(zfs) == {"zinc_r"}
    assert zfs.names() == {"r", "r.notify", "r.wait"}
    with open(zfs.path("r"), "rb") as f:
        assert f.read() == PATTERN


def apply_lib_name(zfs, name, want):
    rc, extra = libzinc(zfs, "create", name, PAGE)
    assert rc == -want, f"zinc_create({name[:20]!r}) = {rc} {extra}"
    if want:
        assert "out-not-null" not in extra, "zinc_create left *out set"
        for op in ("open", "unlink"):
            rc, extra = libzinc(zfs, op, name)
            assert rc == -want, f"zinc_{op}({name[:20]!r}) = {rc}"
    else:
        cname = name.split(b"\0")[0].decode()
        assert extra == f"cap={PAGE} objs=zinc_{cname}", extra
    assert not shm_names(zfs), shm_names(zfs)


def apply_lib_cap(zfs, cap, want):
    rc, extra = libzinc(zfs, "create", "cap", cap)
    assert rc == -want, f"zinc_create(cap, {cap}) = {rc} {extra}"
    if want:
        assert "out-not-null" not in extra, "zinc_create left *out set"
    else:
        assert extra == f"cap={cap} objs=zinc_cap"
    assert not shm_names(zfs), shm_names(zfs)


def apply_mount_truncate(zfs, arg, want):
    via, size = arg
    if via == "sh":  # truncate(1) creates t and resizes through its own fd
        r = zfs.sh(f"truncate -s {size} t")
        if want:
            assert r.returncode != 0 and os.strerror(want) in r.stderr, r
        else:
            assert r.returncode == 0, r.stderr
        assert os.stat(zfs.path("t")).st_size == (size or PAGE if want == 0 else PAGE)
        assert shm_names(zfs) == {"zinc_t"}
        return
    # created and resized through one descriptor: a file we closed just
    # before would count as open until the kernel's asynchronous RELEASE
    # arrives, and could make the resize EBUSY
    fd = os.open(zfs.path("t"), os.O_CREAT | os.O_RDWR, 0o600)
    try:
        os.pwrite(fd, b"keep", 0)
        expect_errno(lambda: os.ftruncate(fd, size), want, f"ftruncate {size}")
    finally:
        os.close(fd)
    st = os.stat(zfs.path("t"))
    if want == 0 and size:
        assert st.st_size == size
        with open(zfs.path("t"), "rb") as f:
            assert f.read() == b"keep" + bytes(size - 4), "a resize keeps the data"
    else:  # refused, ENOSPC too: nothing changed
        assert st.st_size == PAGE
        with open(zfs.path("t"), "rb") as f:
            assert f.read(4) == b"keep", "refused resize lost the data"
    assert shm_names(zfs) == {"zinc_t"}


def apply_mount_truncate_foreign(zfs, size, want):
    z = zfs.zinc().create("lz", PAGE)
    expect_errno(lambda: os.truncate(zfs.path("lz"), size), want, "truncate")
    assert z.stat()["capacity"] == PAGE and z.cmd("removed") == "0"
    z.exit()


def apply_region_size(zfs, value, want):
    mnt = zfs.base / "m2"
    mnt.mkdir(exist_ok=True)
    args = [str(ZINCFS), "-f", "-o", f"shm_dir={zfs.shm},region_size={value}", str(mnt)]
    p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: p.poll() is not None or mountinfo_has(mnt), 5,
                   "zincfs to exit or mount")
        if p.poll() is None:  # it mounted: show what a create gets, then unmount
            err = None
            try:
                os.close(os.open(mnt / "x", os.O_CREAT | os.O_WRONLY))
            except OSError as e:
                err = e
            run(["fusermount3", "-u", str(mnt)])
            p.communicate(timeout=10 * SLOW)
            pytest.fail(f"zincfs -o region_size={value} mounted (create through it: {err!r})")
        out, _ = p.communicate(timeout=10 * SLOW)
    finally:
        if mountinfo_has(mnt):
            run(["fusermount3", "-u", "-z", str(mnt)])
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == want, out
    assert re.search(rb"^zincfs: error: region_size=.*page size", out, re.M), out
    assert not mountinfo_has(mnt)


def _plant(zfs, kind, name):
    p = zfs.obj(name)

    def hdr(magic=MAGIC, version=2, cap=PAGE):
        return struct.pack("<QHHIQ", magic, version, 0, 0, cap).ljust(PAGE, b"\0")
    if kind == "wrong-magic":
        p.write_bytes(hdr(magic=0x4141414141414141) + bytes(PAGE))
    elif kind == "wrong-version":
        p.write_bytes(hdr(version=99) + bytes(PAGE))
    elif kind == "wrong-capacity":
        p.write_bytes(hdr(cap=2 * PAGE) + bytes(PAGE))
    elif kind == "wrong-size":
        p.write_bytes(hdr() + bytes(PAGE // 2))
    elif kind == "one-page":
        p.write_bytes(hdr())
    elif kind == "zero-length":
        p.write_bytes(b"")
    elif kind == "directory":
        p.mkdir()
    elif kind == "fifo":
        os.mkfifo(p)
    elif kind == "symlink":
        os.symlink("/etc/passwd", p)
    elif kind == "symlink-to-region":
        os.symlink(zfs.obj("r"), p)
    elif kind == "socket":
        s = socket.socket(socket.AF_UNIX)
        s.bind(str(p))
        return s
    return None


def apply_plant(zfs, kind, warning):
    zfs.expect_log(r"warning: ignoring .*/zinc_bad")
    make_region(zfs, "r")
    name = "bad"
    keep = _plant(zfs, kind, name)
    try:
        # not shown, whatever is asked, and logged once
        for _ in range(3):
            assert zfs.names() == {"r", "r.notify", "r.wait"}
            for sfx in ("", ".wait", ".notify"):
                expect_errno(lambda: os.stat(zfs.path(name + sfx)), E.ENOENT, "lookup")
        lines = [l for l in zfs.log().splitlines() if "zinc_bad" in l]
        if warning is None:
            assert not lines, lines  # a region being created: not logged
        else:
            assert len(lines) == 1 and warning in lines[0], lines
        # libzinc refuses it
        rc, _ = libzinc(zfs, "open", name)
        assert rc == -E.EBADMSG, f"zinc_open = {rc}"
        regular = not kind.startswith(("directory", "fifo", "symlink", "socket"))
        # O_EXCL: the mount does not show the name; a regular file that is no
        # region is replaced (zinc_create(3)); anything else is EEXIST
        excl = lambda: os.close(os.open(zfs.path(name), os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        expect_errno(excl, 0 if regular else E.EEXIST, "O_CREAT|O_EXCL")
        if regular:
            assert os.stat(zfs.path(name)).st_size == PAGE
            os.unlink(zfs.path(name))
            assert "zinc_bad" not in shm_names(zfs)
            return
        expect_errno(lambda: os.unlink(zfs.path(name)), E.ENOENT, "rm")
        rc, _ = libzinc(zfs, "create", name, PAGE)
        assert rc == -E.EEXIST, f"zinc_create = {rc}"
        # zinc_unlink removes it (a directory: EISDIR) -- done at the end;
        # first, open(O_CREAT) without O_EXCL must say EEXIST, as zinc_create
        creat = lambda: os.close(os.open(zfs.path(name), os.O_CREAT | os.O_WRONLY))
        try:
            expect_errno(creat, E.EEXIST, "open(O_CREAT) without O_EXCL")
        finally:
            rc, _ = libzinc(zfs, "unlink", name)
            assert rc == (-E.EISDIR if kind == "directory" else 0), f"zinc_unlink = {rc}"
    finally:
        if keep:
            keep.close()
        if os.path.lexists(zfs.obj(name)):
            if zfs.obj(name).is_dir() and not zfs.obj(name).is_symlink():
                zfs.obj(name).rmdir()
            else:
                zfs.obj(name).unlink()
    assert shm_names(zfs) == {"zinc_r"}


def apply_data_io(zfs, arg, want):
    op, off, cnt = arg
    make_region(zfs, "r")
    fd = os.open(zfs.path("r"), os.O_RDWR | (os.O_APPEND if op == "append" else 0))
    try:
        def do():
            if op == "pread":
                return os.pread(fd, cnt, off)
            if op in ("pwrite", "append"):
                return os.pwrite(fd, b"W" * cnt, off) if op == "pwrite" else os.write(fd, b"W" * cnt)
            if op == "pwrite2":
                assert os.pwrite(fd, b"W" * cnt, off) == PAGE - off
                return os.pwrite(fd, b"W" * cnt, PAGE)
            if op == "lseek":
                return os.lseek(fd, off, os.SEEK_SET)
            os.lseek(fd, off, os.SEEK_SET)
            return os.write(fd, b"W" * cnt) if op == "lseek_write" else os.read(fd, cnt)
        got = expect_errno(do, want, f"{op}({off}, {cnt})")
        if isinstance(want, bytes):
            assert got == want
        elif isinstance(want, Ret) and op == "pread":
            assert got == PATTERN[off:off + want], f"pread gave {len(got)} bytes"
        elif isinstance(want, Ret):
            assert got == want
        data = os.pread(fd, PAGE, 0)
        if op == "pwrite" and got:
            assert data[:off] == PATTERN[:off] and data[off:off + got] == b"W" * got
        elif op == "pwrite2":
            assert data == PATTERN[:off] + b"W" * (PAGE - off)
        else:
            assert data == PATTERN, "a refused write changed the data"
        assert os.fstat(fd).st_size == PAGE
    finally:
        os.close(fd)


def apply_dd(zfs, args, want):
    make_region(zfs, "r")
    if args is None:  # cat of 3 pages into a 1-page region
        (zfs.base / "big").write_bytes(b"Z" * 3 * PAGE)
        r = sh_expect(zfs, f"cat {zfs.base}/big > r", want)
        assert r.returncode != 0
        with open(zfs.path("r"), "rb") as f:
            assert f.read() == b"Z" * PAGE
        return
    sh_expect(zfs, f"dd {args}", want)
    with open(zfs.path("r"), "rb") as f:
        data = f.read()
    assert len(data) == PAGE
    tail = f"seek={PAGE - 4} " in args
    assert data == (PATTERN[:-4] + bytes(4) if tail else PATTERN)


def apply_open_flags(zfs, arg, want):
    f, flags = arg
    make_region(zfs, "r")
    seq0 = int(os.getxattr(zfs.path("r"), "user.zinc.seq"))

    def do():
        return os.open(zfs.path(f), flags, 0o600)
    fd = expect_errno(do, want, f"open {f} {flags:#o}")
    if fd is None:
        return
    try:
        if want == "rw":
            buf = bytearray(PAGE)
            assert os.preadv(fd, [buf], 0) == PAGE and bytes(buf) == PATTERN
            assert os.pwrite(fd, b"D" * 512, 0) == 512
        elif want == "notify":
            assert os.write(fd, b"x" * 512) == 512
            assert int(os.getxattr(zfs.path("r"), "user.zinc.seq")) == seq0 + 1
        elif want == "wait":
            os.set_blocking(fd, False)
            expect_errno(lambda: os.read(fd, 64), E.EAGAIN, "empty .wait")
            with open(zfs.path("r.notify"), "wb", buffering=0) as n:
                n.write(b"1")
            os.set_blocking(fd, True)
            assert os.read(fd, 64) == f"{seq0 + 1}\n".encode()
        elif want == "kept":
            pass
    finally:
        os.close(fd)
    with open(zfs.path("r"), "rb") as fh:
        data = fh.read()
    assert data == (b"D" * 512 + PATTERN[512:] if want == "rw" else PATTERN)


def apply_xattr(zfs, arg, want):
    op, f, a = arg
    make_region(zfs, "r")
    p = str(zfs.path(f))
    fn = {"get": lambda: os.getxattr(p, a), "set": lambda: os.setxattr(p, a, b"1"),
          "remove": lambda: os.removexattr(p, a),
          "getsmall": lambda: _getxattr_size(p, a, 2)}[op]
    got = expect_errno(fn, want, f"{op}xattr {f} {a[:20]}")
    if isinstance(want, bytes):
        assert got == want
    assert os.getxattr(zfs.path("r"), "user.zinc.capacity") == str(PAGE).encode()


def _getxattr_size(path, name, size):
    libc = ctypes.CDLL(None, use_errno=True)
    libc.getxattr.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p, ctypes.c_size_t]
    libc.getxattr.restype = ctypes.c_ssize_t
    buf = ctypes.create_string_buffer(size)
    n = libc.getxattr(path.encode(), name.encode(), buf, size)
    if n < 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    return buf.raw[:n]


_READER = r"""
import os, sys, errno
path = sys.argv[1]
fd = os.open(path, os.O_RDONLY)
first = os.pread(fd, 4096, 0)
print("ready", flush=True)
n = bad = 0
gone = None
while gone is None or n < gone + 200:
    d = os.pread(fd, 4096, 0)          # the open file: keeps reading
    n += 1
    if d != first:
        bad += 1
    try:                                # by name: until the name is gone
        with open(path, "rb") as f:
            f.read(16)
    except OSError as e:
        if gone is None:
            gone = n
            print("name-gone", errno.errorcode[e.errno], flush=True)
print("reads", n, "bad", bad, flush=True)
"""


def apply_rm_while_reading(zfs, _, want):
    make_region(zfs, "r")
    p = zfs.spawn([PYTHON, "-c", _READER, str(zfs.path("r"))], stdout=subprocess.PIPE,
                  stderr=subprocess.PIPE)
    assert read_line(p) == "ready"
    # let it loop a while, and a shell loop too
    sh = zfs.spawn(["sh", "-c", "while cat r >/dev/null; do :; done; echo end"],
                   cwd=str(zfs.mnt), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    os.unlink(zfs.path("r"))
    assert read_line(p) == "name-gone ENOENT"
    line = read_line(p)
    assert re.fullmatch(r"reads \d+ bad 0", line), line
    rc, out, err = finish(sh)
    assert "end" in out and "No such file" in err, (out, err)
    rc, _, err = finish(p)
    assert rc == 0, err
    assert not shm_names(zfs)


def apply_rm_while_waiting(zfs, how, want):
    make_region(zfs, "r")
    p = zfs.spawn(["head", "-n1", "r.wait"], cwd=str(zfs.mnt), stdout=subprocess.PIPE,
                  stderr=subprocess.PIPE)
    wait_blocked(p.pid, "fuse", path=zfs.path("r.wait"))
    if how == "mount":
        os.unlink(zfs.path("r"))
    else:
        rc, _ = libzinc(zfs, "unlink", "r")
        assert rc == 0
    rc, out, err = finish(p)
    assert rc != 0 and os.strerror(want) in err, (rc, out, err)
    # and later opens by name: the name is gone
    expect_errno(lambda: open(zfs.path("r.wait")), E.ENOENT, "reopen")
    assert not shm_names(zfs)


def apply_notify_after_rm(zfs, _, want):
    make_region(zfs, "r")
    fd = os.open(zfs.path("r.notify"), os.O_WRONLY)
    w = os.open(zfs.path("r.wait"), os.O_RDONLY)
    try:
        os.unlink(zfs.path("r"))
        expect_errno(lambda: os.write(fd, b"1"), want, "notify after rm")
        expect_errno(lambda: os.read(w, 16), want, "wait after rm")
    finally:
        os.close(fd)
        os.close(w)


# ------------------------------------------------------------------ the test

def assert_serves(zfs):
    """A fresh region through the mount: create, write, read, wait, notify."""
    name = f"alive{time.monotonic_ns() % 100000}"
    p = zfs.path(name)
    with open(p, "wb") as f:
        f.write(b"still here")
    with open(p, "rb") as f:
        assert f.read(10) == b"still here"
    w = zfs.spawn(["head", "-n1", f"{name}.wait"], cwd=str(zfs.mnt), stdout=subprocess.PIPE,
                  stderr=subprocess.PIPE)
    wait_blocked(w.pid, "fuse", path=zfs.path(f"{name}.wait"))
    with open(zfs.path(f"{name}.notify"), "wb", buffering=0) as n:
        n.write(b"!")
    rc, out, err = finish(w)
    assert rc == 0 and re.fullmatch(r"\d+\n", out), (rc, out, err)
    os.unlink(p)
    assert not os.path.exists(zfs.obj(name))
    assert zfs.proc.poll() is None, "zincfs died"
    bad = [l for l in zfs.log().splitlines()
           if "error:" in l or re.search(r"Sanitizer|runtime error", l)]
    assert not bad, bad


@pytest.mark.parametrize("case", [c.param() for c in CASES])
def test_hostile(zfs, case):
    apply = globals()[f"apply_{case.how}"]
    try:
        apply(zfs, case.arg, case.want)
    finally:
        if zfs.proc.poll() is None and mountinfo_has(zfs.mnt):
            assert_serves(zfs)
        else:
            pytest.fail(f"zincfs is gone after {case.id} (rc {zfs.proc.poll()})")


def test_table_is_complete():
    """Every row names an applier that exists and a documented source."""
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids)), "duplicate row ids"
    for c in CASES:
        assert f"apply_{c.how}" in globals(), c.id
        assert c.doc, c.id
