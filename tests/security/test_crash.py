# SPDX-License-Identifier: MIT
"""zincfs killed with SIGKILL in the middle of work never leaves its
clients hanging: nobody has to abort the FUSE connection by hand."""
import signal
import time

from conftest import PAGE, SLOW, proc_state, read_line, wait_until, wchan

PY = "/usr/bin/python3"
SIZE = 16 * PAGE
WRITER = f"""
import mmap, os
fd = os.open("r", os.O_RDWR)
m = mmap.mmap(fd, {SIZE})
n = os.open("r.notify", os.O_WRONLY)
print("go", flush=True)
i = 0
try:
    while True:  # dirty a page of the mapping, then publish it
        m[:] = bytes([i & 255]) * {SIZE}
        os.write(n, b"x")
        i += 1
except OSError as e:
    print("errno", e.errno, flush=True)
"""
READER = """
import os
fd = os.open("r.wait", os.O_RDONLY)
print("go", flush=True)
try:
    while True:
        os.read(fd, 64)
except OSError as e:
    print("errno", e.errno, flush=True)
"""


def test_sigkill_of_zincfs_returns_a_mmap_writer_and_a_wait_reader(zfs):
    """Up to 12 rounds: a writer dirties all of its mapping of NAME and writes
    NAME.notify in a loop, a reader blocks on NAME.wait; zincfs gets
    SIGKILL.  Both clients (and zincfs) must be gone within 5 s."""
    z = zfs.zinc().create("r", SIZE)
    for rnd in range(12):
        clients = [zfs.spawn([PY, "-c", src], cwd=str(zfs.mnt), stdout=-1, stderr=-1)
                   for src in (WRITER, READER)]
        for c in clients:
            assert read_line(c) == "go"
        seq = z.seq()
        wait_until(lambda: z.seq() >= seq + 200, 5, "the writer to notify")
        daemon = zfs.proc
        zfs.expected_exit = -signal.SIGKILL
        daemon.send_signal(signal.SIGKILL)
        procs = clients + [daemon]
        end = time.monotonic() + 5 * SLOW
        while time.monotonic() < end and any(p.poll() is None for p in procs):
            time.sleep(0.02)
        stuck = [f"{p.args[-1][:12]!r} pid {p.pid} state {proc_state(p.pid)} wchan {wchan(p.pid)}"
                 for p in procs if p.poll() is None]
        if stuck:
            zfs.abort_connection()  # let the teardown clean up
            raise AssertionError(f"round {rnd}: still running 5 s after SIGKILL of zincfs: "
                                 + "; ".join(stuck))
        zfs.remount()
    z.exit()
