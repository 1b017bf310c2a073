/* SPDX-License-Identifier: MIT */
/*
 * Wakes: across processes (the waiter is first proven asleep in a futex
 * wait), across two handles in one process, several waiters at once, the
 * "forever" timeout, and one handle shared by threads (its cursor is shared:
 * one notification is consumed once).
 */
#include "testutil.h"

static void test_cross_process(void)
{
	zinc_region *r;
	CHECK_OK(zinc_create("xproc", tu_page(), &r));
	int done[2];
	tu_pipe(done);
	pid_t pid = tu_fork();
	if (pid == 0) {
		zinc_region *c;
		CHECK_OK(zinc_open("xproc", &c));
		CHECK_RC(zinc_try_wait(c), -EAGAIN);
		int64_t t0 = tu_now_ms();
		CHECK_OK(zinc_wait(c, 20000));
		CHECK(tu_now_ms() - t0 < 15000);
		/* Data written before notify is visible. */
		CHECK(memcmp(zinc_ptr(c), "wake up", 8) == 0);
		CHECK_RC(zinc_try_wait(c), -EAGAIN);
		zinc_close(c);
		_exit(0);
	}
	CHECK_ASLEEP(pid);
	/* It is still there, asleep, and announced as a waiter. */
	CHECK_EQ(tu_waiters(r), 1);
	CHECK_EQ(waitpid(pid, NULL, WNOHANG), 0);
	memcpy(zinc_ptr(r), "wake up", 8);
	zinc_notify(r);
	CHECK_CHILD_OK(pid);
	CHECK_EQ(tu_waiters(r), 0);
	zinc_close(r);
	close(done[0]);
	close(done[1]);
}

static void test_two_handles_one_process(void)
{
	zinc_region *a, *b;
	CHECK_OK(zinc_create("twoh", tu_page(), &a));
	CHECK_OK(zinc_open("twoh", &b));
	struct tu_waiter w = { .r = b, .timeout = 20000 };
	tu_waiter_start(&w);
	CHECK_THREAD_ASLEEP(w.tid);
	CHECK_EQ(tu_waiters(a), 1);
	zinc_notify(a);
	CHECK_OK(tu_waiter_join(&w));
	CHECK(w.ms < 15000);
	/* The notifying handle has its own cursor: it sees one pending. */
	CHECK_OK(zinc_try_wait(a));
	CHECK_RC(zinc_try_wait(b), -EAGAIN);

	/* And the other way round: the owner waits, the reader notifies. */
	struct tu_waiter w2 = { .r = a, .timeout = 20000 };
	tu_waiter_start(&w2);
	CHECK_THREAD_ASLEEP(w2.tid);
	zinc_notify(b);
	CHECK_OK(tu_waiter_join(&w2));
	zinc_close(b);
	zinc_close(a);
}

static void test_forever(void)
{
	zinc_region *a;
	CHECK_OK(zinc_create("forever", tu_page(), &a));
	uint32_t timeouts[] = { UINT32_MAX, UINT32_MAX - 1, 86400000u };
	for (size_t i = 0; i < 3; i++) {
		struct tu_waiter w = { .r = a, .timeout = timeouts[i] };
		tu_waiter_start(&w);
		CHECK_THREAD_ASLEEP(w.tid);
		zinc_notify(a);
		CHECK_OK(tu_waiter_join(&w));
	}
	zinc_close(a);
}

static void test_many_waiters(void)
{
	enum { PROCS = 4, THREADS = 3 };
	zinc_region *r;
	CHECK_OK(zinc_create("many", tu_page(), &r));
	pid_t pids[PROCS];
	for (int i = 0; i < PROCS; i++) {
		pids[i] = tu_fork();
		if (pids[i] == 0) {
			zinc_region *c;
			CHECK_OK(zinc_open("many", &c));
			CHECK_OK(zinc_wait(c, 20000));
			zinc_close(c);
			_exit(0);
		}
	}
	/* Threads in this process, each with its own handle. */
	zinc_region *h[THREADS];
	struct tu_waiter w[THREADS];
	for (int i = 0; i < THREADS; i++) {
		CHECK_OK(zinc_open("many", &h[i]));
		w[i] = (struct tu_waiter){ .r = h[i], .timeout = 20000 };
		tu_waiter_start(&w[i]);
	}
	for (int i = 0; i < PROCS; i++)
		CHECK_ASLEEP(pids[i]);
	for (int i = 0; i < THREADS; i++)
		CHECK_THREAD_ASLEEP(w[i].tid);
	CHECK_EQ(tu_waiters(r), PROCS + THREADS);
	zinc_notify(r); /* one notify wakes every one of them */
	for (int i = 0; i < PROCS; i++)
		CHECK_CHILD_OK(pids[i]);
	for (int i = 0; i < THREADS; i++) {
		CHECK_OK(tu_waiter_join(&w[i]));
		zinc_close(h[i]);
	}
	CHECK_EQ(tu_waiters(r), 0);
	zinc_close(r);
}

/* Threads sharing one handle share its cursor: a notification wakes them
 * all, but only one consumes it; the other goes back to sleep. */
static void test_shared_handle_threads(void)
{
	zinc_region *owner, *h;
	CHECK_OK(zinc_create("shared", tu_page(), &owner));
	CHECK_OK(zinc_open("shared", &h));
	struct tu_waiter w1 = { .r = h, .timeout = 20000 };
	struct tu_waiter w2 = { .r = h, .timeout = 20000 };
	tu_waiter_start(&w1);
	tu_waiter_start(&w2);
	CHECK_THREAD_ASLEEP(w1.tid);
	CHECK_THREAD_ASLEEP(w2.tid);
	CHECK_EQ(tu_waiters(owner), 2);
	zinc_notify(owner);
	/* Exactly one returns; the other is asleep again. */
	int64_t deadline = tu_now_ms() + 10000;
	int done1 = 0, done2 = 0;
	while (!(done1 || done2) && tu_now_ms() < deadline) {
		done1 = __atomic_load_n(&w1.done, __ATOMIC_ACQUIRE);
		done2 = __atomic_load_n(&w2.done, __ATOMIC_ACQUIRE);
		tu_pause_us(200);
	}
	CHECK(done1 != done2);
	pid_t sleeper = done1 ? w2.tid : w1.tid;
	CHECK_THREAD_ASLEEP(sleeper);
	CHECK_EQ(tu_waiters(owner), 1);
	CHECK_RC(zinc_try_wait(h), -EAGAIN);
	/* A second notification wakes the second thread. */
	zinc_notify(owner);
	CHECK_OK(tu_waiter_join(&w1));
	CHECK_OK(tu_waiter_join(&w2));
	CHECK_EQ(tu_waiters(owner), 0);
	zinc_close(h);
	zinc_close(owner);
}

/* Waiting on several regions at once: zinc_watch + futex_waitv(2) on the
 * zinc_futex_word()s (shared FUTEX_32), as an event loop would. */
#ifndef SYS_futex_waitv
#define SYS_futex_waitv 449
#endif
struct tu_futex_waitv {
	uint64_t val;
	uint64_t uaddr;
	uint32_t flags;
	uint32_t reserved;
};
#define TU_FUTEX_32 2

static void test_watch_many_regions(void)
{
	zinc_region *a, *b;
	CHECK_OK(zinc_create("wa", tu_page(), &a));
	CHECK_OK(zinc_create("wb", tu_page(), &b));
	int ready[2];
	tu_pipe(ready);
	pid_t pid = tu_fork();
	if (pid == 0) {
		zinc_region *h[2];
		CHECK_OK(zinc_open("wa", &h[0]));
		CHECK_OK(zinc_open("wb", &h[1]));
		CHECK_OK(zinc_watch(h[0], 1));
		CHECK_OK(zinc_watch(h[1], 1));
		struct tu_futex_waitv w[2];
		for (int i = 0; i < 2; i++) {
			w[i] = (struct tu_futex_waitv){
				.val = zinc_seq(h[i]),
				.uaddr = (uintptr_t)zinc_futex_word(h[i]),
				.flags = TU_FUTEX_32, /* shared: no PRIVATE flag */
			};
		}
		tu_put(ready[1], 'w');
		struct timespec to;
		clock_gettime(CLOCK_MONOTONIC, &to);
		to.tv_sec += 20;
		long rc = syscall(SYS_futex_waitv, w, 2, 0, &to, CLOCK_MONOTONIC);
		if (rc < 0 && errno == ENOSYS)
			_exit(T_SKIP);
		CHECK_EQ(rc, 1); /* woken through the second word */
		CHECK_RC(zinc_try_wait(h[0]), -EAGAIN);
		CHECK_OK(zinc_try_wait(h[1]));
		zinc_close(h[0]);
		zinc_close(h[1]);
		_exit(0);
	}
	CHECK_GET(ready[0], 'w');
	CHECK_ASLEEP(pid);
	CHECK_EQ(tu_waiters(a), 1);
	CHECK_EQ(tu_waiters(b), 1);
	zinc_notify(b);
	int st = tu_wait_exit(pid, 30000);
	if (st == T_SKIP)
		fprintf(stderr, "  futex_waitv not supported: skipped\n");
	else
		CHECK_EQ(st, 0);
	/* the watcher closed: not counted any more */
	CHECK_EQ(tu_waiters(a), 0);
	CHECK_EQ(tu_waiters(b), 0);
	zinc_close(a);
	zinc_close(b);
	close(ready[0]);
	close(ready[1]);
}

int main(void)
{
	tu_init();
	TU_RUN(test_cross_process);
	TU_RUN(test_two_handles_one_process);
	TU_RUN(test_forever);
	TU_RUN(test_many_waiters);
	TU_RUN(test_shared_handle_threads);
	TU_RUN(test_watch_many_regions);
	return T_PASS;
}
