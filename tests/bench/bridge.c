/* SPDX-License-Identifier: MIT */
/*
 * zinc-bench row 10: zinc-bridge next to raw MQTT through the same broker.
 *
 * scripts/bench.sh starts a private mosquitto and two bridges, each on its
 * own region directory (two simulated hosts): A publishes regions named
 * b*, B subscribes to them.  This program switches ZINC_SHM_DIR between
 * the two directories to create a region on host A and to open the copy
 * bridge B made on host B.  The baseline is two libmosquitto clients of
 * this program on the same broker, sending what the bridge sends: MQTT 5,
 * QoS 0, retained, same payload size.  (Not retained, mosquitto 2.0.11
 * carried only ~60 MB/s of 64 KiB messages: it frees each one after
 * delivery; a retained one stays until the next replaces it.)
 *
 * Latency, one way, in one thread (one clock): write a sequence number
 * into a 4 KiB region on A and zinc_notify(); zinc_wait() on B's copy
 * until that number arrived.  Baseline: mosquitto_publish() of 4 KiB
 * holding the number; the subscriber's mosquitto_loop() until it arrived.
 * A second baseline is the floor of any bridge made of processes: raw MQTT
 * relayed by two forked processes woken through shared futexes (relay A
 * waits on a futex and publishes the 4 KiB, relay B receives it, stores the
 * number and wakes us), i.e. the bridge's own hand-offs with no region,
 * copy, properties or checks.  Bridge, raw and relay samples alternate.
 *
 * Throughput, per region size (4 KiB, 64 KiB, 1 MiB): first raw, the
 * publisher thread publishing as fast as its socket takes the bytes, the
 * subscriber counting messages and bytes in a fixed window; then the
 * bridge, a producer thread writing a new sequence number and notifying
 * every 20 us or at 2 GB/s of region size (whichever is fewer: more than
 * the bridge carries), the reader on B counting the
 * distinct states it saw (the bridge coalesces: latest state wins) and
 * capacity bytes for each.
 */
#include <errno.h>
#include <malloc.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <linux/futex.h>
#include <time.h>
#include <unistd.h>

#include <mosquitto.h>
#include <zinc.h>

#include "bench.h"

#define RAW_TOPIC "bench/raw"
#define RELAY_TOPIC "bench/relay"

static struct mosquitto *pub, *sub;
static _Atomic uint64_t raw_got;
static _Atomic int raw_counting;
static _Atomic long raw_msgs, raw_bytes;
static _Atomic int stop_producer;
static _Atomic long produced;  /* messages published or states notified */

static void in_host(const char *dir)
{
	setenv("ZINC_SHM_DIR", dir, 1);
}

static void on_message(struct mosquitto *m, void *ud, const struct mosquitto_message *msg)
{
	(void)m;
	(void)ud;
	if (strcmp(msg->topic, RAW_TOPIC) || msg->payloadlen < 8)
		return;
	uint64_t v;
	memcpy(&v, msg->payload, sizeof(v));
	raw_got = v;
	if (raw_counting) {
		raw_msgs++;
		raw_bytes += msg->payloadlen;
	}
}

static _Atomic int subscribed;

static void on_subscribe(struct mosquitto *m, void *ud, int mid, int n, const int *qos)
{
	(void)m, (void)ud, (void)mid, (void)n, (void)qos;
	subscribed = 1;
}

static struct mosquitto *client(const char *id)
{
	struct mosquitto *m = mosquitto_new(id, true, NULL);
	if (!m)
		die("mosquitto_new: %s", strerror(errno));
	mosquitto_int_option(m, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5);
	int rc = mosquitto_connect(m, "127.0.0.1", opt.broker_port, 60);
	if (rc)
		die("row 10: connect to the broker: %s", mosquitto_strerror(rc));
	return m;
}

/* poll and mosquitto_loop_read: mosquitto_loop() of libmosquitto 2.0.11
 * sleeps out its timeout with bytes of a large message pending. */
static void sub_loop(int timeout_ms)
{
	struct pollfd p = { .fd = mosquitto_socket(sub), .events = POLLIN };
	int rc = poll(&p, 1, timeout_ms) > 0 ? mosquitto_loop_read(sub, 1) : 0;
	if (!rc)
		rc = mosquitto_loop_misc(sub);
	if (rc)
		die("row 10: subscriber: %s", mosquitto_strerror(rc));
}

static void raw_connect(void)
{
	char id[64];
	mosquitto_lib_init();
	snprintf(id, sizeof(id), "zinc-bench-pub-%d", (int)getpid());
	pub = client(id);
	snprintf(id, sizeof(id), "zinc-bench-sub-%d", (int)getpid());
	sub = client(id);
	mosquitto_message_callback_set(sub, on_message);
	mosquitto_subscribe_callback_set(sub, on_subscribe);
	int rc = mosquitto_subscribe(sub, NULL, RAW_TOPIC, 0);
	if (rc)
		die("row 10: subscribe: %s", mosquitto_strerror(rc));
	uint64_t end = now_ns() + 10000000000ull;
	while (!subscribed && now_ns() < end)
		sub_loop(100);
	if (!subscribed)
		die("row 10: no SUBACK within 10 s");
}

/* Publish and write until libmosquitto has handed every byte to the socket. */
static void raw_publish(const void *payload, int len, const char *topic)
{
	int rc = mosquitto_publish(pub, NULL, topic, len, payload, 0, true);
	while (!rc && mosquitto_want_write(pub)) {
		struct pollfd p = { .fd = mosquitto_socket(pub), .events = POLLOUT };
		poll(&p, 1, 100);
		rc = mosquitto_loop_write(pub, 1);
	}
	if (rc)
		die("row 10: publish: %s", mosquitto_strerror(rc));
}

/* Drain the subscriber until 200 ms pass without a message. */
static void raw_drain(void)
{
	long seen;
	do {
		seen = raw_msgs;
		raw_counting = 1;
		sub_loop(200);
		mosquitto_loop(pub, 0, 1);
	} while (raw_msgs != seen);
	raw_counting = 0;
}

/* A region of CAPACITY on host A and the copy bridge B made on host B. */
static void region_pair(size_t capacity, const char *what, zinc_region **a, zinc_region **b)
{
	char name[96];
	region_name(name, sizeof(name), what);
	in_host(opt.bridge_dir[0]);
	int rc = zinc_create(name, capacity, a);
	if (rc)
		die("row 10: zinc_create %s: %s", name, zinc_strerror(rc));
	zinc_notify(*a);
	in_host(opt.bridge_dir[1]);
	uint64_t end = now_ns() + 10000000000ull;
	for (;;) {
		rc = zinc_open(name, b);
		if (!rc && zinc_capacity(*b) == capacity)
			break;
		if (!rc)
			zinc_close(*b);
		if (now_ns() > end)
			die("row 10: %s did not reach host B within 10 s (bridge logs: bench.sh)",
			    name);
		usleep(1000);
	}
}

/* Write a new number on A, notify, wait until B has it; returns ns. */
static uint64_t bridge_once(zinc_region *a, zinc_region *b, uint64_t v)
{
	uint64_t t0 = now_ns();
	memcpy(zinc_ptr(a), &v, sizeof(v));
	zinc_notify(a);
	for (;;) {
		int rc = zinc_wait(b, 10000);
		if (rc)
			die("row 10: zinc_wait on host B: %s", zinc_strerror(rc));
		uint64_t got;
		memcpy(&got, zinc_ptr(b), sizeof(got));
		if (got == v)
			return now_ns() - t0;
	}
}

static uint64_t raw_once(uint8_t *payload, int len, uint64_t v)
{
	uint64_t t0 = now_ns();
	memcpy(payload, &v, sizeof(v));
	raw_publish(payload, len, RAW_TOPIC);
	uint64_t end = t0 + 10000000000ull;
	while (raw_got != v) {
		if (now_ns() > end)
			die("row 10: raw message %llu did not arrive within 10 s",
			    (unsigned long long)v);
		sub_loop(1000);
	}
	return now_ns() - t0;
}

/* The relay floor: words shared with the two relay processes. */
struct relay {
	uint32_t in_seq, out_seq; /* futex words: bumped for each number */
	uint32_t ready;           /* relays connected (and B subscribed) */
	uint64_t in_val, out_val;
};
static struct relay *relay;

/* Leave the bench's CPU pinning and scheduling class: run like a bridge. */
static void like_a_bridge(void)
{
	struct sched_param sp = { 0 };
	sched_setscheduler(0, SCHED_OTHER, &sp);
	cpu_set_t all;
	CPU_ZERO(&all);
	for (int i = 0; i < opt.ncpu && i < CPU_SETSIZE; i++)
		CPU_SET(i, &all);
	sched_setaffinity(0, sizeof(all), &all);
}

/* Bump a shared futex word and wake its waiter. */
static void bump(uint32_t *word)
{
	__atomic_add_fetch(word, 1, __ATOMIC_RELEASE);
	futex(word, FUTEX_WAKE, 1);
}

/* A relay's own client, as a process scheduled like a bridge. */
static struct mosquitto *relay_client(const char *side)
{
	like_a_bridge();
	char id[64];
	snprintf(id, sizeof(id), "zinc-bench-relay-%s-%d", side, (int)getpid());
	return client(id);
}

static int relay_a(void *arg)
{
	(void)arg;
	pub = relay_client("a");
	uint8_t *payload = calloc(1, (size_t)sysconf(_SC_PAGESIZE));
	bump(&relay->ready);
	uint32_t seen = 0;
	for (;;) {
		uint32_t v = __atomic_load_n(&relay->in_seq, __ATOMIC_ACQUIRE);
		if (v == seen) {
			struct timespec ts = { 1, 0 };
			syscall(SYS_futex, &relay->in_seq, FUTEX_WAIT, seen, &ts, NULL, 0);
			mosquitto_loop(pub, 0, 1); /* keep-alive */
			continue;
		}
		seen = v;
		memcpy(payload, &relay->in_val, sizeof(uint64_t));
		raw_publish(payload, (int)sysconf(_SC_PAGESIZE), RELAY_TOPIC);
	}
	return 0; /* not reached: relay_stop() kills the relays */
}

static void on_relay_message(struct mosquitto *m, void *ud, const struct mosquitto_message *msg)
{
	(void)m, (void)ud;
	if (strcmp(msg->topic, RELAY_TOPIC) || msg->payloadlen < 8)
		return;
	memcpy(&relay->out_val, msg->payload, sizeof(uint64_t));
	bump(&relay->out_seq);
}

static int relay_b(void *arg)
{
	(void)arg;
	sub = relay_client("b");
	subscribed = 0;
	mosquitto_message_callback_set(sub, on_relay_message);
	mosquitto_subscribe_callback_set(sub, on_subscribe);
	if (mosquitto_subscribe(sub, NULL, RELAY_TOPIC, 0))
		return 1;
	while (!subscribed)
		sub_loop(1000);
	bump(&relay->ready);
	for (;;)
		sub_loop(1000);
	return 0;
}

static void relay_start(pid_t pids[2])
{
	relay = shared_alloc(sizeof(*relay));
	pids[0] = spawn(relay_a, NULL);
	pids[1] = spawn(relay_b, NULL);
	uint64_t end = now_ns() + 10000000000ull;
	uint32_t r;
	while ((r = __atomic_load_n(&relay->ready, __ATOMIC_ACQUIRE)) < 2) {
		if (now_ns() > end)
			die("row 10: relay processes not connected within 10 s");
		struct timespec ts = { 0, 100000000 };
		syscall(SYS_futex, &relay->ready, FUTEX_WAIT, r, &ts, NULL, 0);
	}
}

static void relay_stop(pid_t pids[2])
{
	for (int i = 0; i < 2; i++) {
		kill(pids[i], SIGKILL);
		waitpid(pids[i], NULL, 0);
	}
	munmap(relay, sizeof(*relay));
}

/* Hand a number to relay A, wait until relay B hands it back; ns. */
static uint64_t relay_once(uint64_t v)
{
	uint64_t t0 = now_ns();
	uint32_t seen = __atomic_load_n(&relay->out_seq, __ATOMIC_ACQUIRE);
	relay->in_val = v;
	bump(&relay->in_seq);
	uint64_t end = t0 + 10000000000ull;
	while (__atomic_load_n(&relay->out_val, __ATOMIC_ACQUIRE) != v) {
		if (now_ns() > end)
			die("row 10: relay did not hand %llu back within 10 s",
			    (unsigned long long)v);
		seen = futex_wait_change(&relay->out_seq, seen);
	}
	return now_ns() - t0;
}

static void latency(void)
{
	size_t cap = (size_t)sysconf(_SC_PAGESIZE);
	long warm = 100, n = opt.quick ? 300 : 2000;
	uint64_t *vb = malloc((size_t)n * sizeof(*vb)), *vr = malloc((size_t)n * sizeof(*vr));
	uint64_t *vf = malloc((size_t)n * sizeof(*vf));
	uint8_t *payload = calloc(1, cap);
	zinc_region *a, *b;
	region_pair(cap, "lat", &a, &b);
	zinc_try_wait(b);
	pid_t relays[2];
	relay_start(relays);
	uint64_t v = 1ull << 40;
	for (long i = 0; i < warm + n; i++) {
		uint64_t tb = bridge_once(a, b, ++v);
		uint64_t tr = raw_once(payload, (int)cap, ++v);
		uint64_t tf = relay_once(++v);
		mosquitto_loop(pub, 0, 1); /* keep-alive, outside the timing */
		if (i >= warm) {
			vb[i - warm] = tb;
			vr[i - warm] = tr;
			vf[i - warm] = tf;
		}
	}
	relay_stop(relays);
	zinc_close(b);
	zinc_close(a);
	raw_drain();
	struct result *r = add_result("10", "raw MQTT publish -> subscriber, 4 KiB (baseline)",
				      "1-way", "us", vr, (size_t)n, 1000.0, "messages");
	struct result *f = add_result("10", "raw MQTT relayed by 2 futex-woken processes, 4 KiB",
				      "1-way", "us", vf, (size_t)n, 1000.0, "messages");
	set_ratio(f, r);
	struct result *z = add_result("10", "zinc_notify on A -> zinc_wait on B, 4 KiB",
				      "1-way", "us", vb, (size_t)n, 1000.0, "notifications");
	set_ratio(z, r);
	char buf[160];
	/* The relay floor is what any bridge of processes must pay on top of
	 * raw MQTT; printed beside the target so its reach is plain. */
	snprintf(buf, sizeof(buf), "%.2fx (%.1f vs %.1f us); relay floor %.2fx raw, bridge %.2fx floor",
		 z->ratio, z->median, r->median, f->ratio, z->median / f->median);
	add_target("zinc-bridge one-way latency median <= 1.3x raw MQTT", buf, z->ratio <= 1.3);
	free(vb);
	free(vr);
	free(vf);
	free(payload);
}

struct producer {
	zinc_region *a;
	uint64_t interval_ns;
	int len;
	uint8_t *payload;  /* raw: published as fast as the socket takes it */
};

static void *produce(void *p)
{
	struct producer *pr = p;
	prctl(PR_SET_TIMERSLACK, 1000UL);
	uint64_t v = 1;
	struct timespec next;
	clock_gettime(CLOCK_MONOTONIC, &next);
	while (!stop_producer) {
		v++;
		produced++;
		if (pr->payload) {
			memcpy(pr->payload, &v, sizeof(v));
			raw_publish(pr->payload, pr->len, RAW_TOPIC);
			continue;
		}
		memcpy(zinc_ptr(pr->a), &v, sizeof(v));
		zinc_notify(pr->a);
		next.tv_nsec += (long)pr->interval_ns;
		while (next.tv_nsec >= 1000000000L) {
			next.tv_nsec -= 1000000000L;
			next.tv_sec++;
		}
		struct timespec now;
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (now.tv_sec > next.tv_sec ||
		    (now.tv_sec == next.tv_sec && now.tv_nsec > next.tv_nsec))
			next = now; /* behind: no burst to catch up */
		else
			clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL);
	}
	return NULL;
}

static const char *size_name(size_t cap)
{
	return cap >= 1 << 20 ? "1 MiB" : cap >= 64 << 10 ? "64 KiB" : "4 KiB";
}

static void throughput(size_t cap, uint64_t warm_ns, uint64_t window_ns)
{
	char name[96];
	pthread_t t;
	uint8_t *payload = calloc(1, cap);
	struct producer pr = { .len = (int)cap, .payload = payload };

	/* raw */
	stop_producer = 0;
	raw_msgs = raw_bytes = 0;
	if (pthread_create(&t, NULL, produce, &pr))
		die("row 10: pthread_create");
	uint64_t start = now_ns() + warm_ns;
	while (now_ns() < start)
		sub_loop(10);
	raw_msgs = raw_bytes = 0;
	raw_counting = 1;
	uint64_t t0 = now_ns();
	long p0 = produced;
	while (now_ns() < t0 + window_ns)
		sub_loop(10);
	raw_counting = 0;
	double secs = (double)(now_ns() - t0) / 1e9;
	long msgs = raw_msgs, bytes = raw_bytes, offered = produced - p0;
	stop_producer = 1;
	pthread_join(t, NULL);
	raw_drain();
	snprintf(name, sizeof(name), "raw MQTT, %s messages published", size_name(cap));
	add_value("10", name, "sent/s", "1/s", (double)offered / secs, offered, "messages");
	snprintf(name, sizeof(name), "raw MQTT, %s messages (baseline)", size_name(cap));
	struct result *rm = add_value("10", name, "msg/s", "1/s", (double)msgs / secs, msgs, "messages");
	snprintf(name, sizeof(name), "raw MQTT, %s messages, bytes (baseline)", size_name(cap));
	struct result *rb = add_value("10", name, "MB/s", "MB/s", (double)bytes / secs / 1e6,
				      msgs, "messages");

	/* bridge: a new state every 20 us or 2 GB/s, whichever is fewer */
	zinc_region *a, *b;
	region_pair(cap, "tput", &a, &b);
	pr.payload = NULL;
	pr.a = a;
	pr.interval_ns = cap / 2; /* 2 GB/s */
	if (pr.interval_ns < 20000)
		pr.interval_ns = 20000;
	stop_producer = 0;
	if (pthread_create(&t, NULL, produce, &pr))
		die("row 10: pthread_create");
	zinc_try_wait(b);
	long states = 0;
	uint64_t last = 0;
	int counting = 0;
	start = now_ns() + warm_ns;
	for (;;) {
		uint64_t now = now_ns();
		if (!counting && now >= start) {
			counting = 1;
			states = 0;
			t0 = now;
			p0 = produced;
		}
		if (counting && now >= t0 + window_ns)
			break;
		int rc = zinc_wait(b, 10);
		if (rc == -ETIMEDOUT)
			continue;
		if (rc)
			die("row 10: zinc_wait on host B: %s", zinc_strerror(rc));
		uint64_t v;
		memcpy(&v, zinc_ptr(b), sizeof(v));
		if (v != last) {
			last = v;
			states += counting;
		}
	}
	secs = (double)(now_ns() - t0) / 1e9;
	offered = produced - p0;
	stop_producer = 1;
	pthread_join(t, NULL);
	zinc_close(b);
	zinc_close(a);
	snprintf(name, sizeof(name), "zinc-bridge, %s region, states notified on A", size_name(cap));
	add_value("10", name, "sent/s", "1/s", (double)offered / secs, offered, "notifications");
	snprintf(name, sizeof(name), "zinc-bridge, %s region, states", size_name(cap));
	set_ratio(add_value("10", name, "msg/s", "1/s", (double)states / secs, states,
			    "distinct states"), rm);
	snprintf(name, sizeof(name), "zinc-bridge, %s region, bytes", size_name(cap));
	struct result *zb = add_value("10", name, "MB/s", "MB/s",
				      (double)states * (double)cap / secs / 1e6, states,
				      "distinct states");
	set_ratio(zb, rb);
	if (cap == 1 << 20) {
		char buf[160];
		snprintf(buf, sizeof(buf), "%.2fx raw (%.0f vs %.0f MB/s: raw is %.2fx the bridge)",
			 zb->ratio, zb->median, rb->median, 1 / zb->ratio);
		/* within 1.5x: the bridge carries at least raw / 1.5 */
		add_target("zinc-bridge 1 MiB throughput within 1.5x of raw MQTT", buf,
			   zb->ratio >= 1 / 1.5);
	}
	free(payload);
}

void bridge_row(void)
{
	if (!opt.broker_port || !opt.bridge_dir[0] || !opt.bridge_dir[1]) {
		add_skip("10", opt.skip_bridge ? opt.skip_bridge
					       : "no broker and bridges given (--bridge)");
		return;
	}
	char *saved = getenv("ZINC_SHM_DIR") ? strdup(getenv("ZINC_SHM_DIR")) : NULL;
	/* The raw clients allocate and free every message (up to 1 MiB): with
	 * glibc's defaults in this two-thread process each one was mapped,
	 * faulted in and unmapped again, which held the raw baseline to ~40
	 * MB/s.  Keep them on the heap: the baseline at its best. */
	mallopt(M_MMAP_THRESHOLD, 4 << 20);
	mallopt(M_TRIM_THRESHOLD, 64 << 20);
	raw_connect();
	latency();
	uint64_t warm = opt.quick ? 200000000ull : 500000000ull;
	uint64_t window = opt.quick ? 500000000ull : 2000000000ull;
	static const size_t sizes[] = { 4 << 10, 64 << 10, 1 << 20 };
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
		throughput(sizes[i], warm, window);
	mosquitto_disconnect(pub);
	mosquitto_disconnect(sub);
	mosquitto_destroy(pub);
	mosquitto_destroy(sub);
	mosquitto_lib_cleanup();
	if (saved)
		in_host(saved);
	else
		unsetenv("ZINC_SHM_DIR");
	free(saved);
}
