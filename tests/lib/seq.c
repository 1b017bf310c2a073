/* SPDX-License-Identifier: MIT */
/*
 * The counter and the cursor: a handle's cursor starts at 0 (a handle opened
 * after a notify sees one pending), notifications coalesce, try_wait
 * consumes without blocking, and the u32 counter wraps without a false or
 * a lost notification (also for a waiter asleep across the wrap).
 */
#include "testutil.h"

static void test_try_wait(void)
{
	zinc_region *r, *o;
	CHECK_OK(zinc_create("tw", tu_page(), &r));
	CHECK_OK(zinc_open("tw", &o));
	CHECK_RC(zinc_try_wait(r), -EAGAIN);
	CHECK_RC(zinc_try_wait(o), -EAGAIN);
	zinc_notify(r);
	CHECK_EQ(zinc_seq(o), 1);
	CHECK_OK(zinc_try_wait(o));
	CHECK_RC(zinc_try_wait(o), -EAGAIN);
	/* the notifier's own handle sees it too (its own cursor) */
	CHECK_OK(zinc_try_wait(r));
	CHECK_RC(zinc_try_wait(r), -EAGAIN);
	/* try_wait never blocks and never announces a waiter */
	int64_t t0 = tu_now_ms();
	for (int i = 0; i < 100000; i++)
		CHECK_RC(zinc_try_wait(o), -EAGAIN);
	CHECK(tu_now_ms() - t0 < 2000);
	CHECK_EQ(tu_waiters(r), 0);
	zinc_close(o);
	zinc_close(r);
}

static void test_cursor_starts_at_zero(void)
{
	zinc_region *r, *late, *later;
	CHECK_OK(zinc_create("cursor", tu_page(), &r));
	/* Before any notify: nothing pending for a new handle. */
	CHECK_OK(zinc_open("cursor", &late));
	CHECK_RC(zinc_try_wait(late), -EAGAIN);
	CHECK_RC(zinc_wait(late, 0), -ETIMEDOUT);
	zinc_close(late);
	zinc_notify(r);
	zinc_notify(r);
	zinc_notify(r);
	/* Opened after three notifies: exactly one pending. */
	CHECK_OK(zinc_open("cursor", &late));
	CHECK_OK(zinc_wait(late, 0));
	CHECK_RC(zinc_wait(late, 0), -ETIMEDOUT);
	CHECK_OK(zinc_open("cursor", &later));
	CHECK_OK(zinc_try_wait(later));
	CHECK_RC(zinc_try_wait(later), -EAGAIN);
	zinc_close(later);
	/* Same in another process. */
	pid_t pid = tu_fork();
	if (pid == 0) {
		zinc_region *c;
		CHECK_OK(zinc_open("cursor", &c));
		CHECK_OK(zinc_try_wait(c));
		CHECK_RC(zinc_try_wait(c), -EAGAIN);
		zinc_close(c);
		_exit(0);
	}
	CHECK_CHILD_OK(pid);
	zinc_close(late);
	zinc_close(r);
}

static void test_coalescing(void)
{
	zinc_region *r, *o;
	CHECK_OK(zinc_create("coal", tu_page(), &r));
	CHECK_OK(zinc_open("coal", &o));
	for (int i = 0; i < 1000; i++)
		zinc_notify(r);
	CHECK_EQ(zinc_seq(o), 1000);
	CHECK_OK(zinc_wait(o, 1000));
	CHECK_RC(zinc_wait(o, 20), -ETIMEDOUT);
	CHECK_RC(zinc_try_wait(o), -EAGAIN);
	/* Another batch: again one. */
	zinc_notify(r);
	zinc_notify(o);
	CHECK_OK(zinc_try_wait(o));
	CHECK_RC(zinc_try_wait(o), -EAGAIN);
	/* Notifies from several processes coalesce as well. */
	pid_t pids[3];
	for (int i = 0; i < 3; i++) {
		pids[i] = tu_fork();
		if (pids[i] == 0) {
			zinc_region *c;
			CHECK_OK(zinc_open("coal", &c));
			for (int k = 0; k < 100; k++)
				zinc_notify(c);
			zinc_close(c);
			_exit(0);
		}
	}
	for (int i = 0; i < 3; i++)
		CHECK_CHILD_OK(pids[i]);
	CHECK_EQ(zinc_seq(o), 1002 + 300);
	CHECK_OK(zinc_try_wait(o));
	CHECK_RC(zinc_try_wait(o), -EAGAIN);
	zinc_close(o);
	zinc_close(r);
}

static void test_wrap(void)
{
	zinc_region *r, *o;
	CHECK_OK(zinc_create("wrap", tu_page(), &r));
	struct zinc_header *h = tu_hdr(r);
	__atomic_store_n(&h->notify_seq, UINT32_MAX - 2, __ATOMIC_SEQ_CST);
	CHECK_EQ(zinc_seq(r), UINT32_MAX - 2);
	/* A new handle (cursor 0) sees one pending. */
	CHECK_OK(zinc_open("wrap", &o));
	CHECK_OK(zinc_try_wait(o));
	CHECK_RC(zinc_try_wait(o), -EAGAIN);
	/* Step by step across the wrap: each notify is seen, none twice. */
	uint32_t want[] = { UINT32_MAX - 1, UINT32_MAX, 0, 1, 2 };
	for (int i = 0; i < 5; i++) {
		zinc_notify(r);
		CHECK_EQ(zinc_seq(o), want[i]);
		CHECK_OK(zinc_try_wait(o));
		CHECK_RC(zinc_try_wait(o), -EAGAIN);
		CHECK_RC(zinc_wait(o, 0), -ETIMEDOUT);
	}
	/* Coalesced across the wrap. */
	__atomic_store_n(&h->notify_seq, UINT32_MAX - 1, __ATOMIC_SEQ_CST);
	CHECK_OK(zinc_try_wait(o));
	for (int i = 0; i < 4; i++)
		zinc_notify(r);
	CHECK_EQ(zinc_seq(o), 2);
	CHECK_OK(zinc_wait(o, 0));
	CHECK_RC(zinc_wait(o, 10), -ETIMEDOUT);

	/* A waiter asleep on UINT32_MAX is woken by the notify to 0. */
	__atomic_store_n(&h->notify_seq, UINT32_MAX, __ATOMIC_SEQ_CST);
	CHECK_OK(zinc_try_wait(o));
	struct tu_waiter w = { .r = o, .timeout = 20000 };
	tu_waiter_start(&w);
	CHECK_THREAD_ASLEEP(w.tid);
	zinc_notify(r);
	CHECK_OK(tu_waiter_join(&w));
	CHECK_EQ(zinc_seq(o), 0);
	CHECK_RC(zinc_try_wait(o), -EAGAIN);

	/* A timed wait across the wrap with nothing new times out. */
	CHECK_RC(zinc_wait(o, 30), -ETIMEDOUT);
	zinc_close(o);
	zinc_close(r);
}

int main(void)
{
	tu_init();
	TU_RUN(test_try_wait);
	TU_RUN(test_cursor_starts_at_zero);
	TU_RUN(test_coalescing);
	TU_RUN(test_wrap);
	return T_PASS;
}
