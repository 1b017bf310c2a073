/* SPDX-License-Identifier: MIT */
/*
 * -EIDRM for names removed by anyone, also without libzinc's flag (zinc-
 * core's last close unlinks without it; so does a plain rm): a blocked
 * zinc_wait sleeps in slices of about a second and then looks at the
 * object's link count.  A wait forever and a long timed wait both end with
 * -EIDRM soon after a plain unlink(2), and the region is then marked
 * removed for every handle.  A pending notification is still consumed
 * first (the fast path does not look).
 */
#include "testutil.h"

#define SOON_MS 10000 /* slice (1 s) + generous margin on a loaded machine */

static void test_rm_wakes_waiters(void)
{
	zinc_region *o;
	CHECK_OK(zinc_create("rm", tu_page(), &o));
	int ready[2];
	tu_pipe(ready);
	pid_t pid = tu_fork();
	if (pid == 0) {
		zinc_region *c;
		CHECK_OK(zinc_open("rm", &c));
		tu_put(ready[1], 'w');
		CHECK_RC(zinc_wait(c, UINT32_MAX), -EIDRM);
		zinc_close(c);
		_exit(0);
	}
	CHECK_GET(ready[0], 'w');
	zinc_region *h;
	CHECK_OK(zinc_open("rm", &h));
	struct tu_waiter w = { .r = h, .timeout = 600000 };
	tu_waiter_start(&w);
	CHECK_ASLEEP(pid);
	CHECK_THREAD_ASLEEP(w.tid);

	char p[PATH_MAX];
	tu_path("rm", p, sizeof(p));
	int64_t t0 = tu_now_ms();
	CHECK_SYS(unlink(p));
	CHECK_EQ(tu_wait_exit(pid, SOON_MS), 0);
	CHECK_RC(tu_waiter_join(&w), -EIDRM);
	printf("  waiters ended %lld ms after the unlink\n",
	       (long long)(tu_now_ms() - t0));
	CHECK_EQ(zinc_removed(o), 1); /* marked for every handle */
	CHECK_RC(zinc_try_wait(o), -EIDRM);
	close(ready[0]);
	close(ready[1]);
	zinc_close(h);
	zinc_close(o);
}

static void test_pending_first(void)
{
	zinc_region *o, *h;
	CHECK_OK(zinc_create("rmp", tu_page(), &o));
	CHECK_OK(zinc_open("rmp", &h));
	CHECK_RC(zinc_try_wait(h), -EAGAIN);
	zinc_notify(o);
	char p[PATH_MAX];
	tu_path("rmp", p, sizeof(p));
	CHECK_SYS(unlink(p));
	CHECK_OK(zinc_wait(h, UINT32_MAX)); /* the notification, at once */
	CHECK_OK(zinc_wait(o, 10));
	CHECK_EQ(zinc_removed(o), 0);
	/* a short timed wait that times out looks at the link count */
	CHECK_RC(zinc_wait(o, 10), -EIDRM);
	CHECK_EQ(zinc_removed(h), 1);
	CHECK_RC(zinc_wait(h, UINT32_MAX), -EIDRM);
	zinc_close(h);
	zinc_close(o);
}

int main(void)
{
	tu_init();
	TU_RUN(test_rm_wakes_waiters);
	TU_RUN(test_pending_first);
	return T_PASS;
}
