# SPDX-License-Identifier: MIT
"""zinc-bridge: two simulated hosts share regions through a real mosquitto.

Host A publishes, host B subscribes (each with its own region directory and
bridge); the tests write and notify on A and observe B through its region
files, `zinc wait` and `zinc info`.
"""
import subprocess
import sys
import time

import pytest

from conftest import BRIDGE, DEADLINE, LIBZINC, PAGE, ZINC, Broker, wait_until


def pair(broker, hosts, pub="*", sub="*"):
    a, b = hosts("a"), hosts("b")
    ba = a.bridge(broker, "--publish", pub)
    bb = b.bridge(broker, "--subscribe", sub)
    return a, b, ba, bb


def share(a, b, name, size=PAGE):
    """Create name on host a and wait until b has it.  The bridge copies a
    region it finds at once, so a write racing that copy could be sent
    twice (before and after its notification); the tests write only once
    b has the region, so that one write and notify is one message."""
    holder = a.create(name, size)
    wait_until(lambda: b.exists(name), what=f"{name} on host {b.name}")
    return holder


def arrives(host, name, data, timeout=DEADLINE):
    wait_until(lambda: host.read(name, len(data)) == data, timeout,
               what=f"{data[:20]!r}... in {name} on host {host.name}")


def test_round_trip_carries_data_and_wakes_a_remote_waiter(broker, hosts):
    a, b, _, _ = pair(broker, hosts)
    share(a, b, "cam", 2 * PAGE)
    a.put("cam", b"first")
    arrives(b, "cam", b"first")
    assert b.info("cam")["capacity"] == 2 * PAGE

    waiter = b.spawn(ZINC, "wait", "cam", int(DEADLINE * 1000))
    # The waiter must be asleep before the update, or it could miss it.
    wait_until(lambda: b.info("cam")["waiters"] >= 1, what="waiter on B")
    a.write("cam", b"second", offset=PAGE)  # the last byte of a page too
    a.put("cam", b"SECOND")
    assert waiter.wait(DEADLINE) == 0, waiter.stderr.read()
    # The notification comes after the data: both halves are there.
    assert b.read("cam", 6) == b"SECOND"
    assert b.read("cam", 6, offset=PAGE) == b"second"


def test_a_late_subscriber_gets_the_latest_state(broker, hosts):
    a = hosts("a")
    a.bridge(broker, "--publish", "state-*")
    a.create("state-1")
    for i in range(5):
        a.put("state-1", b"version %d" % i)
    b = hosts("b")
    b.bridge(broker, "--subscribe", "state-*")  # after the updates
    arrives(b, "state-1", b"version 4")


PRODUCER = r"""
import ctypes, os, sys
z = ctypes.CDLL(sys.argv[1])
z.zinc_ptr.restype = ctypes.c_void_p
h = ctypes.c_void_p()
assert z.zinc_open(sys.argv[2].encode(), ctypes.byref(h)) == 0
p = z.zinc_ptr(h)
for i in range(1, int(sys.argv[3]) + 1):
    ctypes.memmove(p, b"update %06d" % i, 13)
    z.zinc_notify(h)
z.zinc_close(h)
"""


def sanitizer_env(env):
    """Python can load an ASan-built libzinc only with libasan preloaded."""
    libs = subprocess.run(["ldd", str(LIBZINC)], capture_output=True, text=True).stdout
    if "libasan" not in libs:
        return env
    asan = subprocess.run(["gcc", "-print-file-name=libasan.so"], capture_output=True,
                          text=True).stdout.strip()
    return dict(env, LD_PRELOAD=asan, ASAN_OPTIONS="detect_leaks=0")


def test_a_burst_of_10000_notifies_ends_with_the_last_update(broker, hosts):
    a, b, ba, _ = pair(broker, hosts)
    a.create("burst")
    a.put("burst", b"update 000000")
    arrives(b, "burst", b"update 000000")
    subprocess.run([sys.executable, "-c", PRODUCER, str(LIBZINC), "burst", "10000"],
                   env=sanitizer_env(a.env), check=True, timeout=60)
    arrives(b, "burst", b"update 010000")
    assert ba.stop() == 0
    c = ba.counters()
    # Coalesced: fewer messages than notifies is allowed, the last is not lost.
    assert 2 <= c["published"] <= 10001, c


def test_qos_1_delivers_and_coalesces_too(broker, hosts):
    a, b = hosts("a"), hosts("b")
    ba = a.bridge(broker, "--publish", "q1", "--qos", "1")
    b.bridge(broker, "--subscribe", "q1")
    a.create("q1")
    subprocess.run([sys.executable, "-c", PRODUCER, str(LIBZINC), "q1", "3000"],
                   env=sanitizer_env(a.env), check=True, timeout=60)
    arrives(b, "q1", b"update 003000")
    assert a.zinc("rm", "q1").returncode == 0
    wait_until(lambda: not b.exists("q1"), what="q1 removed on B")
    assert ba.stop() == 0
    assert ba.counters()["removals"] == 1


def test_bridges_reconnect_after_the_broker_restarts(broker, hosts):
    a, b, ba, bb = pair(broker, hosts)
    a.create("r")
    a.put("r", b"before")
    arrives(b, "r", b"before")
    broker.stop()
    a.put("r", b"during")  # while the broker is away
    assert b.read("r", 6) == b"before"  # B keeps its state
    restarted = Broker(broker.dir, port=broker.port).start()
    try:
        # The publisher sends its current state again on reconnect (the
        # broker kept no retained messages: persistence false).
        arrives(b, "r", b"during", timeout=40)
        a.put("r", b"after!")
        arrives(b, "r", b"after!")
        assert ba.alive() and bb.alive()
    finally:
        restarted.stop()


def test_regions_created_later_and_removed_follow_on_the_subscriber(broker, hosts):
    a, b, _, _ = pair(broker, hosts, pub="dyn-*", sub="dyn-*")
    holder = share(a, b, "dyn-1")
    a.put("dyn-1", b"here")
    arrives(b, "dyn-1", b"here")
    a.create("other")  # not matched: never sent
    waiter = b.spawn(ZINC, "wait", "dyn-1", int(DEADLINE * 1000))
    wait_until(lambda: b.info("dyn-1")["waiters"] >= 1, what="waiter on B")
    assert a.zinc("rm", "dyn-1").returncode == 0
    wait_until(lambda: not b.exists("dyn-1"), what="dyn-1 removed on B")
    assert waiter.wait(DEADLINE) == 8  # zinc wait: region removed
    holder.wait(DEADLINE)
    assert not b.exists("other")


def test_a_16_mib_region_arrives_whole(broker, hosts):
    a, b, _, _ = pair(broker, hosts)
    size = 16 << 20
    a.create("big", size)
    pattern = bytes(range(256)) * (size // 256)
    a.write("big", pattern)
    a.notify("big")
    wait_until(lambda: b.exists("big") and b.read("big", 16, offset=size - 16)
               == pattern[-16:], timeout=30, what="16 MiB on B")
    assert b.read("big", size) == pattern


def test_both_bridges_publishing_and_subscribing_everything_do_not_loop(broker, hosts):
    a, b = hosts("a"), hosts("b")
    ba = a.bridge(broker, "--publish", "*", "--subscribe", "*")
    bb = b.bridge(broker, "--publish", "*", "--subscribe", "*")
    share(a, b, "ping")
    a.put("ping", b"from a")
    arrives(b, "ping", b"from a")
    share(b, a, "pong")
    b.put("pong", b"from b")
    arrives(a, "pong", b"from b")
    seq_b = b.info("ping")["seq"]
    # Nothing echoes: the counters stay still once the updates are through.
    time.sleep(0.5)  # a quiet period is what is being measured
    assert b.info("ping")["seq"] == seq_b
    assert ba.stop() == 0 and bb.stop() == 0
    ca, cb = ba.counters(), bb.counters()
    # Each sent its region when found and after the put, nothing more, and
    # received exactly what the other sent.
    assert ca["published"] == 2 and cb["published"] == 2, (ca, cb)
    assert ca["received"] == cb["published"] and cb["received"] == ca["published"], (ca, cb)


def test_a_local_region_not_made_by_the_bridge_is_left_alone(broker, hosts):
    a, b, _, bb = pair(broker, hosts)
    b.create("mine")
    b.put("mine", b"local")
    a.create("mine")
    a.put("mine", b"remote")
    bb.wait_log("not the bridge's: left alone")
    assert b.read("mine", 5) == b"local"
    assert bb.stop() == 0
    assert bb.counters()["foreign"] >= 1


def test_hostile_messages_are_counted_and_dropped(broker, hosts):
    b = hosts("b")
    bb = b.bridge(broker, "--subscribe", "*", "--max-capacity", "1M",
                  "--max-total", str(2 * PAGE))
    good = [("origin", "x"), ("seq", "1"), ("capacity", str(PAGE))]
    hostile = [
        ("zinc/bad name", b"x", good),             # not a region name
        ("zinc/a/b", b"x", good),
        ("zinc/" + "n" * 251, b"x", good),         # name too long
        ("zinc/noprops", b"x", []),
        ("zinc/noseq", b"x", [("origin", "x"), ("capacity", str(PAGE))]),
        ("zinc/badcap", b"x", [("origin", "x"), ("seq", "1"), ("capacity", "12abc")]),
        ("zinc/oddcap", b"x", [("origin", "x"), ("seq", "1"), ("capacity", "100")]),
        ("zinc/zerocap", b"x", [("origin", "x"), ("seq", "1"), ("capacity", "0")]),
        ("zinc/hugecap", b"x", [("origin", "x"), ("seq", "1"), ("capacity", str(1 << 40))]),
        ("zinc/negseq", b"x", [("origin", "x"), ("seq", "-1"), ("capacity", str(PAGE))]),
        ("zinc/dup", b"x", good + [("capacity", str(2 * PAGE))]),
        ("zinc/oversize", b"y" * (PAGE + 1), good),
        ("zinc/toomuch", b"x", [("origin", "x"), ("seq", "1"), ("capacity", str(4 * PAGE))]),
    ]
    for topic, payload, props in hostile:
        broker.pub(topic, payload, props)
    broker.pub("zinc/fine", b"fine", good)  # after them all, still served
    arrives(b, "fine", b"fine")
    assert bb.alive()
    assert bb.stop() == 0
    c = bb.counters()
    assert c["bad"] == len(hostile), (c, bb.output())
    assert c["received"] == 1
    leftovers = sorted(p.name for p in b.shm.iterdir())
    assert leftovers == [], leftovers  # fine was removed at exit


def test_a_capacity_change_on_the_publisher_resizes_the_remote_region(broker, hosts):
    a, b, _, _ = pair(broker, hosts)
    a.create("grow")
    a.put("grow", b"small")
    arrives(b, "grow", b"small")
    assert a.zinc("rm", "grow").returncode == 0
    a.create("grow", 4 * PAGE)
    a.write("grow", b"large", offset=3 * PAGE)
    a.notify("grow")
    wait_until(lambda: (b.info("grow") or {}).get("capacity") == 4 * PAGE,
               what="grow resized on B")
    wait_until(lambda: b.read("grow", 5, offset=3 * PAGE) == b"large",
               what="data of the resized region")


def test_bad_command_lines_are_refused():
    for argv in ([], ["--broker", "http://x"], ["--broker", "mqtt://h:99999", "--publish", "*"],
                 ["--broker", "mqtt://h"], ["--broker", "mqtt://h", "--publish", "*", "--qos", "2"],
                 ["--broker", "mqtt://h", "--publish", "*", "--prefix", "a/#"]):
        r = subprocess.run([str(BRIDGE), "-f", *argv], capture_output=True, timeout=DEADLINE)
        assert r.returncode == 2, (argv, r)


def test_bridges_started_before_the_broker_connect_when_it_comes(workdir, hosts):
    broker = Broker(workdir)  # not started yet
    a, b = hosts("a"), hosts("b")
    ba = a.bridge(broker, "--publish", "*", connected=False)
    bb = b.bridge(broker, "--subscribe", "*", connected=False)
    ba.wait_log("retrying")
    a.create("early")
    a.put("early", b"waited")
    broker.start()
    try:
        ba.wait_log("connected to", timeout=40)
        arrives(b, "early", b"waited", timeout=40)
        assert bb.alive()
    finally:
        broker.stop()


def test_a_password_file_logs_in_and_the_password_is_never_logged(workdir, hosts):
    passwd = workdir / "passwd"
    secret = "s3cret-Pa55word"
    passwd.write_text(f"bridge:{secret}\n")
    subprocess.run(["mosquitto_passwd", "-U", str(passwd)], check=True, timeout=DEADLINE)
    broker = Broker(workdir, extra_conf=f"password_file {passwd}\n")
    broker.conf.write_text(broker.conf.read_text().replace(
        "allow_anonymous true", "allow_anonymous false"))
    broker.start()
    try:
        good = workdir / "good.pw"
        good.write_text(f"bridge:{secret}\nignored second line\n")
        bad = workdir / "bad.pw"
        bad.write_text(f"bridge:wrong-{secret}\n")
        a, b = hosts("a"), hosts("b")
        ba = a.bridge(broker, "--publish", "*", "--password-file", good)
        bb = b.bridge(broker, "--subscribe", "*", "--password-file", good)
        refused = b.bridge(broker, "--subscribe", "*", "--password-file", bad,
                           connected=False)
        refused.wait_log("broker refused the connection")
        a.create("auth")
        a.put("auth", b"logged in")
        arrives(b, "auth", b"logged in")
        for br in (ba, bb, refused):
            assert br.stop() == 0
            assert secret not in br.output()
    finally:
        broker.stop()


def make_ca(d):
    """A CA, a server certificate for 127.0.0.1 and a client certificate."""
    def ssl(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True,
                       timeout=DEADLINE, cwd=d)
    ssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        "-keyout", "ca.key", "-out", "ca.crt", "-subj", "/CN=zinc test CA")
    for who, cn in (("server", "127.0.0.1"), ("client", "zinc-bridge")):
        ssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{who}.key",
            "-out", f"{who}.csr", "-subj", f"/CN={cn}")
        (d / f"{who}.ext").write_text(
            "subjectAltName=IP:127.0.0.1\n" if who == "server" else
            "extendedKeyUsage=clientAuth\n")
        ssl("x509", "-req", "-in", f"{who}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "2", "-out", f"{who}.crt",
            "-extfile", f"{who}.ext")


def test_tls_with_client_certificates(workdir, hosts):
    make_ca(workdir)
    broker = Broker(workdir, extra_conf=(
        f"cafile {workdir}/ca.crt\ncertfile {workdir}/server.crt\n"
        f"keyfile {workdir}/server.key\nrequire_certificate true\n")).start()
    try:
        tls = ["--cafile", workdir / "ca.crt", "--cert", workdir / "client.crt",
               "--key", workdir / "client.key"]
        a, b = hosts("a"), hosts("b")
        a.bridge(broker, "--publish", "*", *tls, scheme="mqtts")
        b.bridge(broker, "--subscribe", "*", *tls, scheme="mqtts")
        a.create("secure")
        a.put("secure", b"over TLS")
        arrives(b, "secure", b"over TLS")
        # Plain MQTT on the TLS port gets nothing through.
        plain = subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(broker.port),
                                "-V", "5", "-t", "zinc/secure", "-m", "x"],
                               capture_output=True, timeout=DEADLINE)
        assert plain.returncode != 0
    finally:
        broker.stop()
