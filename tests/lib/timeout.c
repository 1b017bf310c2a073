/* SPDX-License-Identifier: MIT */
/*
 * zinc_wait's timeout: never shorter than asked, not much longer; timeout 0
 * never blocks; signals delivered during the wait (a SIGALRM handler
 * installed without SA_RESTART, so the futex wait really sees EINTR)
 * neither cut the timeout short, nor stretch it, nor produce a false 0.
 * Runs alone (is_parallel: false): it measures time.
 */
#include <pthread.h>
#include <sys/time.h>
#include "testutil.h"

#define SLACK_MS 60 /* allowed lateness on an idle machine (and ASan) */

/* Never shorter, on every try; not much longer, on one of three tries (a
 * busy machine may delay any single wake-up). */
static void check_timeout(zinc_region *r, uint32_t ms)
{
	int64_t best = INT64_MAX;
	for (int try = 0; try < 3 && best >= ((int64_t)ms + SLACK_MS) * 1000000;
	     try++) {
		int64_t t0 = tu_now_ns();
		CHECK_RC(zinc_wait(r, ms), -ETIMEDOUT);
		int64_t el = tu_now_ns() - t0;
		printf("  timeout %u ms took %.3f ms\n", ms, el / 1e6);
		CHECK(el >= (int64_t)ms * 1000000);
		if (el < best)
			best = el;
	}
	CHECK(best < ((int64_t)ms + SLACK_MS) * 1000000);
}

static void test_accuracy(void)
{
	zinc_region *r;
	CHECK_OK(zinc_create("tmo", tu_page(), &r));
	check_timeout(r, 1);
	check_timeout(r, 10);
	check_timeout(r, 50);
	check_timeout(r, 200);
	check_timeout(r, 50);
	CHECK_EQ(tu_waiters(r), 0);
	zinc_close(r);
}

static void test_zero_never_blocks(void)
{
	zinc_region *r, *r2;
	CHECK_OK(zinc_create("zero", tu_page(), &r));
	CHECK_OK(zinc_open("zero", &r2));
	int64_t t0 = tu_now_ns();
	for (int i = 0; i < 10000; i++)
		CHECK_RC(zinc_wait(r, 0), -ETIMEDOUT);
	int64_t el = tu_now_ns() - t0;
	printf("  10000 x wait(0): %.3f ms\n", el / 1e6);
	CHECK(el < 500LL * 1000000);
	/* ... and it did not even announce itself as a waiter. */
	CHECK_EQ(tu_waiters(r), 0);
	/* pending: 0 at once, consumed */
	zinc_notify(r2);
	CHECK_OK(zinc_wait(r, 0));
	CHECK_RC(zinc_wait(r, 0), -ETIMEDOUT);
	/* a pending notification returns at once with any timeout */
	zinc_notify(r2);
	t0 = tu_now_ns();
	CHECK_OK(zinc_wait(r, UINT32_MAX));
	CHECK(tu_now_ns() - t0 < 100LL * 1000000);
	zinc_close(r2);
	zinc_close(r);
}

/* Read by a notifier thread too: atomic, not just volatile. */
static int alarms;

static void on_alarm(int sig)
{
	(void)sig;
	__atomic_fetch_add(&alarms, 1, __ATOMIC_SEQ_CST);
}

static void set_itimer(long us)
{
	struct itimerval it = { { 0, us }, { 0, us } };
	CHECK_SYS(setitimer(ITIMER_REAL, &it, NULL));
}

/* One wait of `ms` with a signal every 3 ms: -ETIMEDOUT (never a false 0),
 * never shorter; the elapsed ns. */
static int64_t signalled_wait(zinc_region *r, uint32_t ms)
{
	alarms = 0;
	set_itimer(3000);
	int64_t t0 = tu_now_ns();
	int rc = zinc_wait(r, ms);
	int64_t el = tu_now_ns() - t0;
	set_itimer(0);
	printf("  timeout %u ms with %d signals: %.3f ms\n", ms, (int)alarms,
	       el / 1e6);
	CHECK_RC(rc, -ETIMEDOUT);
	/* signals really hit the wait (a loaded machine merges some) */
	CHECK(alarms >= 1);
	CHECK(el >= (int64_t)ms * 1000000);
	return el;
}

static void check_timeout_signals(zinc_region *r, uint32_t ms)
{
	int64_t best = INT64_MAX, limit = ((int64_t)ms + SLACK_MS) * 1000000;
	for (int try = 0; try < 3 && best >= limit; try++) {
		int64_t el = signalled_wait(r, ms);
		if (el < best)
			best = el;
	}
	CHECK(best < limit);
}

static void test_signals_during_wait(void)
{
	struct sigaction sa = { 0 }, old;
	sa.sa_handler = on_alarm;
	sa.sa_flags = 0; /* no SA_RESTART: the futex wait returns EINTR */
	sigemptyset(&sa.sa_mask);
	CHECK_SYS(sigaction(SIGALRM, &sa, &old));
	zinc_region *r;
	CHECK_OK(zinc_create("sig", tu_page(), &r));

	check_timeout_signals(r, 50);
	check_timeout_signals(r, 200);
	CHECK_EQ(tu_waiters(r), 0);

	/* A single signal at the very start of a long wait. */
	alarms = 0;
	struct itimerval once = { { 0, 0 }, { 0, 20000 } };
	CHECK_SYS(setitimer(ITIMER_REAL, &once, NULL));
	int64_t t0 = tu_now_ns();
	CHECK_RC(zinc_wait(r, 150), -ETIMEDOUT);
	int64_t el = tu_now_ns() - t0;
	CHECK_EQ(alarms, 1);
	CHECK(el >= 150LL * 1000000);
	CHECK(el < (150LL + SLACK_MS) * 1000000);

	zinc_close(r);
	CHECK_SYS(sigaction(SIGALRM, &old, NULL));
}

/* Signals during a wait that is then notified: returns 0 promptly. */
struct notifier {
	zinc_region *r;
	pid_t waiter_tid;
};

static void *notify_when_asleep(void *arg)
{
	struct notifier *n = arg;
	/* let a few signals hit the wait first, then notify once asleep */
	while (__atomic_load_n(&alarms, __ATOMIC_SEQ_CST) < 5)
		tu_pause_us(500);
	CHECK(tu_wait_futex_sleep(getpid(), n->waiter_tid, 10000));
	zinc_notify(n->r);
	return NULL;
}

static void test_signals_then_notify(void)
{
	struct sigaction sa = { 0 }, old;
	sa.sa_handler = on_alarm;
	sigemptyset(&sa.sa_mask);
	CHECK_SYS(sigaction(SIGALRM, &sa, &old));
	zinc_region *r, *n;
	CHECK_OK(zinc_create("signotify", tu_page(), &r));
	CHECK_OK(zinc_open("signotify", &n));
	/* Only this thread takes SIGALRM. */
	sigset_t block;
	sigemptyset(&block);
	sigaddset(&block, SIGALRM);
	pthread_sigmask(SIG_BLOCK, &block, NULL);
	struct notifier nt = { .r = n, .waiter_tid = tu_gettid() };
	pthread_t t;
	alarms = 0; /* before the notifier starts counting them */
	CHECK_EQ(pthread_create(&t, NULL, notify_when_asleep, &nt), 0);
	pthread_sigmask(SIG_UNBLOCK, &block, NULL);
	set_itimer(2000);
	int64_t t0 = tu_now_ns();
	int rc = zinc_wait(r, 10000);
	int64_t el = tu_now_ns() - t0;
	set_itimer(0);
	CHECK_EQ(pthread_join(t, NULL), 0);
	CHECK_OK(rc);
	CHECK(alarms >= 5);
	CHECK(el < 5000LL * 1000000);
	zinc_close(n);
	zinc_close(r);
	CHECK_SYS(sigaction(SIGALRM, &old, NULL));
}

int main(void)
{
	tu_init();
	TU_RUN(test_accuracy);
	TU_RUN(test_zero_never_blocks);
	TU_RUN(test_signals_during_wait);
	TU_RUN(test_signals_then_notify);
	return T_PASS;
}
