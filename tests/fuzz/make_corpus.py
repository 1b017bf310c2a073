#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Write the seed corpus of region_fuzz (tests/fuzz/corpus/region_fuzz).

Real regions are made by libzinc itself (ctypes on a built libzinc.so) in a
private temp directory, copied while their owner handle is open, then
variants are derived: truncated, bad magic/version/capacity, removed,
zinc-core ("foreign"), plus small table-mode inputs (empty object,
directory, FIFO, symlink, sizes around a page).

Input layout (see region_fuzz.c): [size selector, header patches | type,
operations] + the object's bytes.  Selector 14 = "the bytes' own length".

Usage: make_corpus.py [--lib build/libzinc/libzinc.so] [--out DIR]
Standard library only.  Rewrites the files it owns; deterministic names.
"""
import argparse
import ctypes
import os
import shutil
import struct
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PAGE = os.sysconf("SC_PAGE_SIZE")
MAGIC = 0x5A494E435F524547
RAW = 14
ALL_OPS = 0x0F            # stat, open, observe, create
KEEP = 0x10               # keep handles open across the create
F_MAGIC, F_VERSION, F_CAPACITY, F_EXT, F_NOFLAGS, F_PID = 1, 2, 4, 8, 16, 32
T_DIR, T_SPECIAL = 1 << 6, 2 << 6
SYMLINK = 0x80
ZERO_PAD = 0xC0           # selector bits 6-7: pad with zeros


def region_bytes(lib, name, capacity):
    """Bytes of a region libzinc just created (owner handle still open)."""
    h = ctypes.c_void_p()
    rc = lib.zinc_create(name.encode(), capacity, ctypes.byref(h))
    if rc:
        raise SystemExit(f"zinc_create({name}, {capacity}): {rc}")
    try:
        lib.zinc_notify(h)
        ptr = lib.zinc_ptr(h)
        ctypes.memmove(ptr, b"hello, zinc", 11)
        path = Path(os.environ["ZINC_SHM_DIR"]) / f"zinc_{name}"
        return path.read_bytes()
    finally:
        lib.zinc_close(h)


def seed(sel, patch, ops, body=b""):
    return bytes([sel, patch, ops]) + body


def patched(data, **fields):
    b = bytearray(data)
    offs = {"magic": (0, "<Q"), "version": (8, "<H"), "flags": (10, "<H"),
            "seq": (12, "<I"), "capacity": (16, "<Q"), "refs": (24, "<I"),
            "pid": (28, "<i"), "ext": (64, "<Q")}
    for k, v in fields.items():
        off, fmt = offs[k]
        struct.pack_into(fmt, b, off, v)
    return bytes(b)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lib", default=str(REPO / "build" / "libzinc" / "libzinc.so"))
    ap.add_argument("--out", default=str(REPO / "tests" / "fuzz" / "corpus" / "region_fuzz"))
    a = ap.parse_args()

    tmp = tempfile.mkdtemp(prefix="zinc-corpus-", dir="/dev/shm")
    os.environ["ZINC_SHM_DIR"] = tmp
    try:
        lib = ctypes.CDLL(a.lib)
        lib.zinc_create.argtypes = [ctypes.c_char_p, ctypes.c_size_t,
                                    ctypes.POINTER(ctypes.c_void_p)]
        lib.zinc_ptr.restype = ctypes.c_void_p
        lib.zinc_ptr.argtypes = [ctypes.c_void_p]
        lib.zinc_notify.argtypes = [ctypes.c_void_p]
        lib.zinc_close.argtypes = [ctypes.c_void_p]
        r2 = region_bytes(lib, "fz", PAGE)          # 2 pages
        r3 = region_bytes(lib, "fz", 2 * PAGE)      # 3 pages
        leftovers = os.listdir(tmp)
        assert not leftovers, f"libzinc left {leftovers}"
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    seeds = {
        # real regions, every operation, with and without kept handles
        "valid-2p": seed(RAW, 0, ALL_OPS, r2),
        "valid-3p-keep": seed(RAW, 0, ALL_OPS | KEEP, r3),
        # truncated: header only, one page, one page + some, 64 bytes
        "trunc-64": seed(RAW, 0, ALL_OPS, r2[:64]),
        "trunc-1p": seed(RAW, 0, ALL_OPS, r2[:PAGE]),
        "trunc-1p-plus": seed(RAW, 0, ALL_OPS, r2[:PAGE + 100]),
        "trunc-3p-to-2p-minus": seed(RAW, 0, ALL_OPS, r3[:2 * PAGE - 1]),
        # header damage
        "bad-magic": seed(RAW, 0, ALL_OPS, patched(r2, magic=MAGIC ^ 1)),
        "zero-magic": seed(RAW, 0, ALL_OPS, patched(r2, magic=0)),
        "bad-version": seed(RAW, 0, ALL_OPS, patched(r2, version=1)),
        "bad-capacity": seed(RAW, 0, ALL_OPS, patched(r2, capacity=2 * PAGE)),
        "huge-capacity": seed(RAW, 0, ALL_OPS, patched(r2, capacity=2**64 - 1)),
        "removed": seed(RAW, 0, ALL_OPS | KEEP, patched(r2, flags=1)),
        "refs-max": seed(RAW, 0, ALL_OPS, patched(r2, refs=2**32 - 1)),
        # zinc-core regions (no ext magic): owner alive (pid 1) or dead
        "foreign-pid1": seed(RAW, 0, ALL_OPS | KEEP, patched(r2, ext=0, pid=1, refs=3)),
        "foreign-dead": seed(RAW, 0, ALL_OPS, patched(r2, ext=0, pid=-5, refs=0)),
        # table mode: sizes around the page, header made plausible by patches
        "empty": seed(ZERO_PAD | 0, 0, ALL_OPS),
        "one-byte": seed(1, 0, ALL_OPS, b"Z"),
        "page-minus-1": seed(3, F_MAGIC | F_VERSION, ALL_OPS),
        "2p-zero-header": seed(ZERO_PAD | 7, 0, ALL_OPS),
        "2p-patched": seed(7, F_MAGIC | F_VERSION | F_CAPACITY | F_EXT | F_NOFLAGS, ALL_OPS),
        "2p-plus-1-patched": seed(8, F_MAGIC | F_VERSION | F_CAPACITY | F_EXT, ALL_OPS),
        "16p-patched-keep": seed(0x10 | 13, F_MAGIC | F_VERSION | F_CAPACITY | F_NOFLAGS,
                                 ALL_OPS | KEEP),
        "foreign-ourpid": seed(0x20 | 9, F_MAGIC | F_VERSION | F_CAPACITY | F_NOFLAGS | F_PID,
                               ALL_OPS | (1 << 5)),
        # not regular files
        "directory": seed(0, T_DIR, ALL_OPS),
        "fifo": seed(0, T_SPECIAL, ALL_OPS),
        "symlink": seed(0, T_SPECIAL, ALL_OPS | SYMLINK, b"x"),
        "dangling-symlink": seed(0, T_SPECIAL, ALL_OPS | SYMLINK),
    }
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    for name, data in seeds.items():
        (out / name).write_bytes(data)
    print(f"{len(seeds)} seeds in {out} ({sum(map(len, seeds.values()))} bytes)")


if __name__ == "__main__":
    main()
