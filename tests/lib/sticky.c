/* SPDX-License-Identifier: MIT */
/*
 * A removal the kernel refuses changes nothing.  In a sticky region
 * directory (as /dev/shm is), another user who may write a region's object
 * (mode 0666) but not unlink it calls zinc_unlink: -EPERM, and the region
 * is not marked removed, its waiters sleep on, its name stays.  libzinc
 * unlinks first and marks the region removed only once the unlink worked.
 */
#include "testutil.h"

static void test_refused_unlink(void)
{
	zinc_region *o;
	CHECK_OK(zinc_create("sticky", tu_page(), &o));
	CHECK_SYS(fchmod(zinc_fd(o), 0666));
	CHECK_SYS(chmod(tu_dir, 01777));
	ino_t ino = tu_ino("sticky");
	struct tu_waiter w = { .r = o, .timeout = UINT32_MAX };
	tu_waiter_start(&w);
	CHECK_THREAD_ASLEEP(w.tid);

	pid_t pid = tu_fork();
	if (pid == 0) {
		if (!tu_become_nobody())
			_exit(T_SKIP);
		zinc_region *h;
		CHECK_OK(zinc_open("sticky", &h)); /* it may write the region */
		CHECK_RC(zinc_unlink("sticky"), -EPERM);
		CHECK_EQ(zinc_removed(h), 0);
		zinc_close(h);
		_exit(0);
	}
	int rc = tu_wait_exit(pid, 30000);
	if (rc == T_SKIP)
		tu_skip("not root: needs another user");
	CHECK_EQ(rc, 0);
	CHECK_EQ(tu_ino("sticky"), ino);
	CHECK_EQ(zinc_removed(o), 0);
	CHECK_EQ(tu_hdr(o)->flags & ZINC_FLAG_REMOVED, 0);
	CHECK_EQ(__atomic_load_n(&w.done, __ATOMIC_ACQUIRE), 0);
	CHECK_THREAD_ASLEEP(w.tid); /* still waiting: not woken by a removal */
	zinc_notify(o);
	CHECK_OK(tu_waiter_join(&w));
	CHECK_SYS(chmod(tu_dir, 0755));
	zinc_close(o);
	CHECK(!tu_exists("sticky"));
}

int main(void)
{
	tu_init();
	TU_RUN(test_refused_unlink);
	return T_PASS;
}
