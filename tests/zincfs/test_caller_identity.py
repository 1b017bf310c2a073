# SPDX-License-Identifier: MIT
"""zincfs among hostile local users (issue 13): every call zincfs makes for
a request that creates, opens, removes or changes an object runs with the
caller's identity (zincfs(8), SECURITY).

The attacker is a real second user (uid 4242, no groups) on an allow_other
mount over a sticky (1777) region directory, the way /dev/shm is.  Each race
is tried a bounded number of rounds and must never succeed; the legitimate
uses next to each attack still work.  Races run as one attacker process (a
loop in Python, started once) against root's loop in this process.
"""
import errno
import os
import select
import stat
import struct
import subprocess

import pytest

from conftest import HELPER, PAGE, SLOW, Zinc, ZincError, read_line, wait_until

USER = 4242          # no such user on the test machines
GROUP = 4250         # a group only the tests use
PY = "/usr/bin/python3"
ROUNDS = 200

pytestmark = pytest.mark.zincfs("allow_other")


def as_user(uid=USER, groups=None):
    ids = [f"--reuid={uid}", f"--regid={uid}"]
    ids.append(f"--groups={','.join(map(str, groups))}" if groups else "--clear-groups")
    return ["setpriv", *ids]


def user_sh(zfs, script, **kw):
    r = zfs.sh(script, user=USER, **kw)
    return r.returncode, r.stderr


def user_py(zfs, code, *args, uid=USER, groups=None):
    """Run Python code as the user; returns its stdout (asserts rc 0)."""
    r = subprocess.run(as_user(uid, groups) + [PY, "-c", code, *map(str, args)],
                       cwd=str(zfs.mnt), env=zfs.env, capture_output=True, text=True,
                       timeout=30 * SLOW)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


class UserZinc(Zinc):
    """A zinc-helper (one libzinc handle) running as the user."""

    def __init__(self, zfs, uid=USER):
        self.p = zfs.spawn(as_user(uid) + [str(HELPER)], stdin=subprocess.PIPE,
                           stdout=subprocess.PIPE, stderr=None)
        self.pid = self.p.pid
        self._buf = b""


# Opens NAME as the user; prints "ok UID" or the errno's name.
OPEN = r"""
import errno, os, sys
try:
    fd = os.open(sys.argv[1], int(sys.argv[2]), 0o666)
except OSError as e:
    print(errno.errorcode[e.errno])
else:
    print("ok", os.fstat(fd).st_uid)
    os.close(fd)
"""


def user_open(zfs, name, flags, **kw):
    return user_py(zfs, OPEN, zfs.path(name), flags, **kw)


# ---------------------------------------------------------------- attack 1

# The attacker: open(X, O_RDWR|O_CREAT) in a loop until the stop file
# appears; a region it made itself it removes again at once (so that root
# can create X).  Prints how often it got root's region, its own, a refusal.
RACE_CREATE = r"""
import errno, os, sys, time
x, stop = sys.argv[1], sys.argv[2]
deadline = time.monotonic() + float(sys.argv[3])
got = own = denied = 0
raced = False
errs = set()
print("ready", flush=True)
while not os.path.exists(stop) and time.monotonic() < deadline:
    if own and denied and not raced:
        raced = True
        print("raced", flush=True)  # it both made its own and was refused
    try:
        fd = os.open(x, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as e:
        denied += 1
        errs.add(errno.errorcode[e.errno])
        continue
    uid = os.fstat(fd).st_uid
    os.close(fd)
    if uid == 0:
        got += 1
    else:
        own += 1
        try:
            os.unlink(x)
        except OSError:
            pass
print(got, own, denied, ",".join(sorted(errs)), flush=True)
"""


def test_create_never_opens_a_region_the_caller_could_not_open(zfs):
    """Attack 1: O_CREAT without O_EXCL through the mount racing root's
    zinc_create of a 0600 region must never hand the attacker root's region."""
    stop = zfs.base / "stop"
    x = zfs.path("x")
    att = zfs.spawn(as_user() + [PY, "-c", RACE_CREATE, str(x), str(stop), str(20 * SLOW)],
                    stdout=subprocess.PIPE)
    assert read_line(att) == "ready"
    root = zfs.zinc()
    made = 0
    raced = False
    try:
        # ROUNDS rounds, and more until the attacker has both made its own
        # region and been refused (a slow daemon, e.g. under valgrind,
        # needs more rounds for that).
        while made < ROUNDS or not raced:
            def create():  # fails while the attacker's own region is there
                try:
                    return root.create("x", PAGE)
                except ZincError as e:
                    assert e.errno == errno.EEXIST, e
                    return None
            wait_until(create, 5, "root's create")
            made += 1
            root.close()  # removes it
            if not raced and select.select([att.stdout], [], [], 0)[0]:
                line = read_line(att)
                assert line == "raced", line  # else the attacker's deadline passed
                raced = True
    finally:
        stop.touch()
    got, own, denied, errs = (read_line(att, 30) + " ").split(" ")[:4]
    assert int(got) == 0, f"the attacker opened root's 0600 region {got} times"
    assert made >= ROUNDS
    # the race was run: the attacker both made its own regions and was refused
    assert int(own) > 0 and int(denied) > 0, (own, denied)
    # ESTALE: root replaced the name twice during one open (the kernel
    # retries a stale name once); never ENOENT for an O_CREAT open.
    assert set(errs.split(",")) <= {"EACCES", "ESTALE"}, errs


def test_create_without_excl_opens_a_readable_region_read_only(zfs):
    z = zfs.zinc().create("pub", PAGE)
    os.chmod(zfs.obj("pub"), 0o644)
    assert user_open(zfs, "pub", os.O_RDONLY | os.O_CREAT) == "ok 0"
    assert user_open(zfs, "pub", os.O_RDWR | os.O_CREAT) == "EACCES"
    assert user_open(zfs, "pub", os.O_WRONLY | os.O_CREAT | os.O_EXCL) == "EEXIST"
    z.exit()


def acl_denying(uid, mode=0o666):
    """system.posix_acl_access value: mode's bits, but nothing for uid."""
    ent = lambda tag, perm, id_=0xFFFFFFFF: struct.pack("<HHI", tag, perm, id_)
    return (struct.pack("<I", 2) + ent(0x01, mode >> 6 & 7) + ent(0x02, 0, uid)
            + ent(0x04, mode >> 3 & 7) + ent(0x10, mode >> 3 & 7) + ent(0x20, mode & 7))


def test_open_asks_the_kernel_about_the_object_itself(zfs):
    """The kernel's check on the mount sees only the mode zincfs reports
    (0666 here); the object's ACL denies the user: every open fails, as a
    direct open of the object would."""
    z = zfs.zinc().create("acl", PAGE)
    os.chmod(zfs.obj("acl"), 0o666)
    os.setxattr(zfs.obj("acl"), "system.posix_acl_access", acl_denying(USER))
    assert stat.S_IMODE(zfs.path("acl").stat().st_mode) == 0o666
    assert user_py(zfs, OPEN, zfs.obj("acl"), os.O_RDONLY) == "EACCES"  # directly
    for name, flags in (("acl", os.O_RDONLY), ("acl", os.O_RDWR), ("acl", os.O_WRONLY),
                        ("acl", os.O_RDWR | os.O_CREAT), ("acl.wait", os.O_RDONLY),
                        ("acl.notify", os.O_WRONLY)):
        assert user_open(zfs, name, flags) == "EACCES", (name, flags)
    assert user_open(zfs, "acl", os.O_RDWR, uid=USER + 1) == "ok 0"  # others may
    assert z.seq() == 0
    z.exit()


# ---------------------------------------------------------------- attack 2

# A stale region's bytes: a valid header, no owner (nobody holds its locks),
# STALE at the start of its data.
STALE = b"stale"


def stale_region_bytes(zfs):
    z = zfs.zinc().create("template", PAGE)
    z.write(0, STALE)
    data = zfs.obj("template").read_bytes()
    z.exit()
    return data


def is_stale(zfs, name):
    return zfs.obj(name).read_bytes()[PAGE:PAGE + len(STALE)] == STALE


# The attacker: plant its own stale region X, look it up through the mount
# (the kernel caches its attributes, owner = attacker), tell root, and rm X
# through the mount as soon as root answers.
RACE_RM = r"""
import errno, os, sys, time
obj, x, tmpl = sys.argv[1], sys.argv[2], bytes.fromhex(sys.stdin.readline())
for line in sys.stdin:
    if line.strip() != "plant":
        break
    with open(obj + ".new", "wb") as f:
        f.write(tmpl)
    os.rename(obj + ".new", obj)
    deadline = time.monotonic() + 5
    while os.stat(x).st_uid != os.getuid():  # the kernel's entry of root's one
        assert time.monotonic() < deadline
        time.sleep(0.001)
    print("planted", flush=True)
    sys.stdin.readline()              # root replaced it
    try:
        os.unlink(x)
        print("removed", flush=True)
    except OSError as e:
        print(errno.errorcode[e.errno], flush=True)
"""


@pytest.mark.parametrize("mode", [0o600, 0o666])
def test_rm_never_removes_a_region_of_another_user(zfs, mode):
    """Attack 2: root's zinc_create replaces a stale region the attacker
    owned; the attacker's rm right after must not remove root's region, nor
    mark it removed (0666: the attacker can open it, and libzinc unlinks
    before it marks)."""
    tmpl = stale_region_bytes(zfs)
    att = zfs.spawn(as_user() + [PY, "-c", RACE_RM, str(zfs.obj("x")), str(zfs.path("x"))],
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    att.stdin.write(tmpl.hex().encode() + b"\n")
    att.stdin.flush()
    root = zfs.zinc()
    results = {}
    for _ in range(2 * ROUNDS):  # the old code lost about one round in 80
        att.stdin.write(b"plant\n")
        att.stdin.flush()
        assert read_line(att) == "planted"
        root.create("x", PAGE)                  # replaces the stale one
        os.chmod(zfs.obj("x"), mode)
        ino = zfs.obj("x").stat().st_ino
        att.stdin.write(b"rm\n")
        att.stdin.flush()
        res = read_line(att)
        results[res] = results.get(res, 0) + 1
        assert zfs.obj("x").exists() and zfs.obj("x").stat().st_ino == ino, \
            f"root's region was removed ({results})"
        assert root.cmd("removed") == "0", f"root's region was marked removed ({results})"
        root.close()                             # removes it
    att.stdin.close()
    assert set(results) <= {"EACCES", "EPERM"}, results
    root.exit()


def test_rm_by_owner_and_root_still_work(zfs):
    assert user_sh(zfs, "touch mine && echo hi > mine && rm mine") == (0, "")
    assert not zfs.obj("mine").exists()
    assert user_sh(zfs, "touch mine")[0] == 0
    assert zfs.obj("mine").stat().st_uid == USER
    assert zfs.sh("rm mine").returncode == 0  # root removes anyone's
    assert not zfs.obj("mine").exists()


# ---------------------------------------------------------------- attack 3

@pytest.mark.parametrize("mode", [0o600, 0o644, 0o666])
def test_create_never_replaces_an_object_the_caller_could_not_remove(zfs, mode):
    """Attack 3: root's file under a region's name that is no region (here
    a short file) is not replaced by `touch` of another user, whatever its
    mode; a direct rm would be EPERM (sticky directory)."""
    victim = zfs.obj("victim")
    victim.write_bytes(b"root's precious data")
    os.chmod(victim, mode)
    zfs.expect_log(r"warning: ignoring .*zinc_victim")
    ino = victim.stat().st_ino
    for cmd in ("touch victim", ": > victim", "echo x >> victim"):
        rc, err = user_sh(zfs, cmd)
        assert rc != 0 and "Permission denied" in err, (cmd, rc, err)
    assert user_sh(zfs, f"rm -f {victim}")[0] != 0  # the direct way: refused too
    assert victim.stat().st_ino == ino and victim.read_bytes() == b"root's precious data"
    assert user_open(zfs, "victim", os.O_RDWR | os.O_CREAT) == "EACCES"
    assert user_open(zfs, "victim", os.O_RDWR | os.O_CREAT | os.O_EXCL) == "EACCES"
    victim.unlink()


def test_create_replaces_an_object_of_the_callers_own(zfs):
    """What the caller could remove itself is replaced: its own leftover
    under a region's name that is no region."""
    zfs.expect_log(r"warning: ignoring .*zinc_old")
    r = subprocess.run(as_user() + ["sh", "-c", f"echo junk > {zfs.obj('old')}"],
                       capture_output=True)
    assert r.returncode == 0, r.stderr
    assert user_sh(zfs, "touch old")[0] == 0
    st = zfs.obj("old").stat()
    assert st.st_uid == USER and st.st_size == 2 * PAGE
    assert user_sh(zfs, "rm old")[0] == 0


def test_root_still_replaces_any_object(zfs):
    zfs.expect_log(r"warning: ignoring .*zinc_old")
    zfs.obj("old").write_bytes(b"junk")
    os.chown(zfs.obj("old"), USER, USER)
    assert zfs.sh("touch old").returncode == 0
    st = zfs.obj("old").stat()
    assert st.st_uid == 0 and st.st_size == 2 * PAGE
    assert zfs.sh("rm old").returncode == 0


# ---------------------------------------------------------------- legitimate use

def test_user_creates_uses_and_removes_own_region(zfs):
    r = zfs.sh("umask 022; touch r && echo hello > r && head -c 5 r && echo > r.notify",
               user=USER)
    assert (r.returncode, r.stdout) == (0, "hello"), r
    st = zfs.obj("r").stat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (USER, USER, 0o644)
    assert zfs.path("r").read_bytes()[:5] == b"hello"
    assert user_sh(zfs, "chmod 600 r")[0] == 0
    assert stat.S_IMODE(zfs.obj("r").stat().st_mode) == 0o600
    rc, err = user_sh(zfs, "chown 0 r")
    assert rc != 0 and "Operation not permitted" in err
    assert user_sh(zfs, "rm r")[0] == 0
    assert not zfs.obj("r").exists()


def test_root_can_still_do_everything(zfs):
    assert user_sh(zfs, "umask 077; touch u")[0] == 0
    assert stat.S_IMODE(zfs.obj("u").stat().st_mode) == 0o600
    r = zfs.sh("echo root > u && head -c 4 u && echo > u.notify && chmod 640 u && "
               f"chown {USER}:{GROUP} u && truncate -s {2 * PAGE} u && rm u")
    assert (r.returncode, r.stdout) == (0, "root"), r
    assert not zfs.obj("u").exists()


def test_supplementary_groups_give_group_access(zfs):
    z = zfs.zinc().create("grp", PAGE)
    os.chown(zfs.obj("grp"), 0, GROUP)
    os.chmod(zfs.obj("grp"), 0o660)
    assert user_open(zfs, "grp", os.O_RDWR) == "EACCES"
    assert user_open(zfs, "grp", os.O_RDWR, groups=[GROUP]) == "ok 0"
    assert user_open(zfs, "grp", os.O_RDWR | os.O_CREAT, groups=[GROUP]) == "ok 0"
    assert user_open(zfs, "grp.notify", os.O_WRONLY, groups=[GROUP]) == "ok 0"
    # that open+close notified (on RELEASE, which close(2) does not wait for)
    wait_until(lambda: z.seq() == 1, 5, "the notification of an open+close of grp.notify")
    z.exit()


def test_user_resizes_own_region_but_not_others(zfs):
    assert user_sh(zfs, f"touch mine && truncate -s {2 * PAGE} mine")[0] == 0
    assert zfs.obj("mine").stat().st_size == 3 * PAGE
    assert zfs.obj("mine").stat().st_uid == USER
    assert zfs.sh("touch root && chmod 666 root && echo keep > root").returncode == 0
    rc, err = user_sh(zfs, f"truncate -s {2 * PAGE} root")
    assert rc != 0 and "Operation not permitted" in err, err
    assert zfs.obj("root").stat().st_size == 2 * PAGE
    assert zfs.path("root").read_bytes()[:5] == b"keep\n"
    assert zfs.sh("rm mine root").returncode == 0


def test_reader_reads_and_waits_but_changes_nothing(zfs):
    """zincfs(8) SECURITY, What a reader can do."""
    r = zfs.sh("umask 022; touch pub && echo hello > pub")
    assert r.returncode == 0, r.stderr
    r = zfs.sh("head -c 5 pub && getfattr --only-values -n user.zinc.seq pub && "
               "timeout 0.3 cat pub.wait; echo \" $?\"", user=USER)
    assert r.stdout == "hello0 124\n", r
    for cmd in ("echo x > pub", "echo > pub.notify", f"truncate -s {2 * PAGE} pub",
                "chmod 666 pub", "rm -f pub", "touch pub"):
        rc, err = user_sh(zfs, cmd)
        assert rc != 0 and ("Permission denied" in err or
                            "Operation not permitted" in err), (cmd, rc, err)
    assert zfs.path("pub").read_bytes()[:6] == b"hello\n"
    assert stat.S_IMODE(zfs.obj("pub").stat().st_mode) == 0o644
    assert seq_of(zfs, "pub") == 0
    # an open file of the reader counts as a user: the owner's resize waits
    with open(zfs.path("pub")) as f:  # ours is closed before the truncate
        p = zfs.spawn(as_user() + ["sleep", "60"], stdin=f)
    r = zfs.sh(f"truncate -s {2 * PAGE} pub")
    assert r.returncode != 0 and "busy" in r.stderr, r
    p.kill()
    p.wait()
    wait_until(lambda: zfs.sh(f"truncate -s {2 * PAGE} pub").returncode == 0, 5,
               "the resize once the reader closed")
    # no read permission: not even the header's fields
    os.chmod(zfs.obj("pub"), 0o600)
    wait_until(lambda: user_sh(zfs, "getfattr -n user.zinc.seq pub")[0] != 0, 5,
               "the new mode to reach the kernel")
    assert zfs.sh("rm pub").returncode == 0


def seq_of(zfs, name):
    return int(os.getxattr(zfs.path(name), "user.zinc.seq"))


def test_refused_rm_of_a_writable_region_changes_nothing(zfs):
    """rm of root's 0666 region by another user: the sticky bit refuses it
    (here the kernel, from the attributes; with attributes cached from a
    region of the user's, zincfs: test_rm_never_removes_a_region_of_another_user),
    and the region stays usable, not marked removed."""
    z = zfs.zinc().create("shared", PAGE)
    os.chmod(zfs.obj("shared"), 0o666)
    rc, err = user_sh(zfs, "rm shared")
    assert rc != 0 and ("Permission denied" in err or
                        "Operation not permitted" in err), err
    assert z.cmd("removed") == "0"
    assert user_sh(zfs, "echo x > shared && echo > shared.notify") == (0, "")
    assert z.seq() == 1
    z.exit()
