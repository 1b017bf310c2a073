/* SPDX-License-Identifier: MIT */
/*
 * Foreign-peer wake by default: a zinc-core-like process (it maps the
 * object itself, counts its handle in the header's ref_count and sleeps in
 * a plain FUTEX_WAIT on notify_seq, never touching libzinc's waiter count)
 * is woken by zinc_notify of a libzinc handle, with no ZINC_ALWAYS_WAKE.
 */
#include <linux/futex.h>
#include "testutil.h"

/*
 * A child doing what zinc-core's open and wait do.  Exits 0 once woken
 * with the counter moved, 2 if its 20 s wait timed out.
 */
static pid_t core_waiter(const char *name, int ready)
{
	pid_t pid = tu_fork();
	if (pid == 0) {
		struct zinc_header *h = tu_map_header(name);
		__atomic_fetch_add(&h->ref_count, 1, __ATOMIC_SEQ_CST);
		uint32_t seen = __atomic_load_n(&h->notify_seq, __ATOMIC_SEQ_CST);
		tu_put(ready, 'w');
		struct timespec ts = { 20, 0 };
		for (;;) {
			long rc = syscall(SYS_futex, &h->notify_seq, FUTEX_WAIT,
					  seen, &ts, NULL, 0);
			if (rc < 0 && errno == ETIMEDOUT)
				_exit(2);
			if (__atomic_load_n(&h->notify_seq, __ATOMIC_SEQ_CST) != seen)
				break;
		}
		__atomic_fetch_sub(&h->ref_count, 1, __ATOMIC_SEQ_CST);
		_exit(0);
	}
	return pid;
}

static void test_core_waiter_woken(void)
{
	zinc_region *o, *h;
	CHECK_OK(zinc_create("core", tu_page(), &o));
	CHECK_OK(zinc_open("core", &h));
	int ready[2];
	tu_pipe(ready);
	/* notified by the owner, then by another libzinc handle */
	for (int i = 0; i < 2; i++) {
		pid_t pid = core_waiter("core", ready[1]);
		CHECK_GET(ready[0], 'w');
		CHECK_ASLEEP(pid);
		CHECK_EQ(tu_waiters(o), 0);
		zinc_notify(i ? h : o);
		CHECK_EQ(tu_wait_exit(pid, 10000), 0);
	}
	CHECK_EQ(tu_hdr(o)->ref_count, 2);
	close(ready[0]);
	close(ready[1]);
	zinc_close(h);
	zinc_close(o);
}

int main(void)
{
	tu_init();
	TU_RUN(test_core_waiter_woken);
	return T_PASS;
}
