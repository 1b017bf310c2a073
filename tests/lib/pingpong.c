/* SPDX-License-Identifier: MIT */
/*
 * No lost wake: 100k tight round trips between two processes over two
 * regions (ping: parent -> child, pong: child -> parent), each carrying a
 * sequence number in the data area.  A single lost wake stalls the loop
 * and fails the test at the wait timeout; the whole run is time-bounded.
 * Then the same with two counters in ONE region (each side its own
 * handle), and with the opt-in spin.  Afterwards nobody is counted as a
 * waiter any more.
 */
#include "testutil.h"

#define ROUNDS 100000
#define STEP_TIMEOUT_MS 5000 /* far above any honest round trip */
#define TOTAL_LIMIT_MS 40000

static void pingpong_two_regions(uint32_t spin_ns, long rounds)
{
	zinc_region *ping, *pong;
	CHECK_OK(zinc_create("ping", tu_page(), &ping));
	CHECK_OK(zinc_create("pong", tu_page(), &pong));
	pid_t pid = tu_fork();
	if (pid == 0) {
		zinc_region *in, *out;
		CHECK_OK(zinc_open("ping", &in));
		CHECK_OK(zinc_open("pong", &out));
		CHECK_OK(zinc_set_spin(in, spin_ns));
		volatile uint64_t *pi = (volatile uint64_t *)zinc_ptr(in);
		volatile uint64_t *po = (volatile uint64_t *)zinc_ptr(out);
		for (long i = 1; i <= rounds; i++) {
			int rc = zinc_wait(in, STEP_TIMEOUT_MS);
			if (rc) {
				fprintf(stderr, "child: round %ld: %s\n", i,
					zinc_strerror(rc));
				_exit(1);
			}
			CHECK_EQ(*pi, (uint64_t)i);
			*po = (uint64_t)i;
			zinc_notify(out);
		}
		zinc_close(in);
		zinc_close(out);
		_exit(0);
	}
	CHECK_OK(zinc_set_spin(pong, spin_ns));
	volatile uint64_t *pi = (volatile uint64_t *)zinc_ptr(ping);
	volatile uint64_t *po = (volatile uint64_t *)zinc_ptr(pong);
	int64_t t0 = tu_now_ms();
	for (long i = 1; i <= rounds; i++) {
		*pi = (uint64_t)i;
		zinc_notify(ping);
		int rc = zinc_wait(pong, STEP_TIMEOUT_MS);
		if (rc) {
			fprintf(stderr, "parent: round %ld: %s\n", i,
				zinc_strerror(rc));
			kill(pid, SIGKILL);
		}
		CHECK_OK(rc);
		CHECK_EQ(*po, (uint64_t)i);
	}
	int64_t ms = tu_now_ms() - t0;
	CHECK_CHILD_OK(pid);
	printf("  %ld round trips (spin %u ns) in %lld ms: %.2f us each\n",
	       rounds, spin_ns, (long long)ms, ms * 1000.0 / (double)rounds);
	CHECK(ms < TOTAL_LIMIT_MS);
	CHECK_EQ(zinc_seq(ping), rounds);
	CHECK_EQ(zinc_seq(pong), rounds);
	CHECK_EQ(tu_waiters(ping), 0);
	CHECK_EQ(tu_waiters(pong), 0);
	zinc_close(ping);
	zinc_close(pong);
}

static void test_pingpong(void)
{
	pingpong_two_regions(0, ROUNDS);
}

static void test_pingpong_spin(void)
{
	pingpong_two_regions(20000, ROUNDS / 4);
}

/* One region, each side its own handle; the data area holds two counters.
 * Both sides wait on the same futex word, so each also sees its own
 * notifications: they loop until the peer's counter moved. */
static void test_one_region_two_counters(void)
{
	const long rounds = ROUNDS / 2;
	zinc_region *r;
	CHECK_OK(zinc_create("duplex", tu_page(), &r));
	pid_t pid = tu_fork();
	if (pid == 0) {
		zinc_region *c;
		CHECK_OK(zinc_open("duplex", &c));
		volatile uint64_t *d = (volatile uint64_t *)zinc_ptr(c);
		for (long i = 1; i <= rounds; i++) {
			while (__atomic_load_n(&d[0], __ATOMIC_ACQUIRE) != (uint64_t)i) {
				int rc = zinc_wait(c, STEP_TIMEOUT_MS);
				if (rc) {
					fprintf(stderr, "child: round %ld: %s\n",
						i, zinc_strerror(rc));
					_exit(1);
				}
			}
			__atomic_store_n(&d[1], (uint64_t)i, __ATOMIC_RELEASE);
			zinc_notify(c);
		}
		zinc_close(c);
		_exit(0);
	}
	volatile uint64_t *d = (volatile uint64_t *)zinc_ptr(r);
	int64_t t0 = tu_now_ms();
	for (long i = 1; i <= rounds; i++) {
		__atomic_store_n(&d[0], (uint64_t)i, __ATOMIC_RELEASE);
		zinc_notify(r);
		while (__atomic_load_n(&d[1], __ATOMIC_ACQUIRE) != (uint64_t)i) {
			int rc = zinc_wait(r, STEP_TIMEOUT_MS);
			if (rc) {
				fprintf(stderr, "parent: round %ld: %s\n", i,
					zinc_strerror(rc));
				kill(pid, SIGKILL);
			}
			CHECK_OK(rc);
		}
	}
	int64_t ms = tu_now_ms() - t0;
	CHECK_CHILD_OK(pid);
	printf("  %ld round trips on one region in %lld ms\n", rounds,
	       (long long)ms);
	CHECK(ms < TOTAL_LIMIT_MS);
	CHECK_EQ(zinc_seq(r), 2 * rounds);
	CHECK_EQ(tu_waiters(r), 0);
	zinc_close(r);
}

int main(void)
{
	tu_init();
	TU_RUN(test_pingpong);
	TU_RUN(test_pingpong_spin);
	TU_RUN(test_one_region_two_counters);
	return T_PASS;
}
