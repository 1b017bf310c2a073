/* SPDX-License-Identifier: MIT */
/*
 * zinc_unlink: removes the name at once, wakes every waiter (here, in other
 * processes and in threads, each proven asleep first) with -EIDRM, makes
 * try_wait/wait on every old handle -EIDRM (even with a notification
 * pending), keeps the old mappings valid, and a later open gives -ENOENT.
 */
#include <pthread.h>
#include "testutil.h"

static void test_unlink_wakes_waiters(void)
{
	zinc_region *o, *h;
	CHECK_OK(zinc_create("ul", tu_page(), &o));
	CHECK_OK(zinc_open("ul", &h));
	int ready[2];
	tu_pipe(ready);
	pid_t pids[2];
	for (int i = 0; i < 2; i++) {
		pids[i] = tu_fork();
		if (pids[i] == 0) {
			zinc_region *c;
			CHECK_OK(zinc_open("ul", &c));
			tu_put(ready[1], 'w');
			CHECK_RC(zinc_wait(c, 30000), -EIDRM);
			CHECK_EQ(zinc_removed(c), 1);
			CHECK(strcmp((char *)zinc_ptr(c), "still here") == 0);
			zinc_close(c);
			_exit(0);
		}
		CHECK_GET(ready[0], 'w');
	}
	struct tu_waiter w = { .r = h, .timeout = UINT32_MAX };
	tu_waiter_start(&w);
	for (int i = 0; i < 2; i++)
		CHECK_ASLEEP(pids[i]);
	CHECK_THREAD_ASLEEP(w.tid);
	CHECK_EQ(tu_waiters(o), 3);
	strcpy((char *)zinc_ptr(o), "still here");

	CHECK_OK(zinc_unlink("ul"));
	CHECK(!tu_exists("ul"));
	for (int i = 0; i < 2; i++)
		CHECK_CHILD_OK(pids[i]);
	CHECK_RC(tu_waiter_join(&w), -EIDRM);

	/* every old handle, also the owner's */
	CHECK_RC(zinc_try_wait(o), -EIDRM);
	CHECK_RC(zinc_try_wait(h), -EIDRM);
	CHECK_RC(zinc_wait(o, 0), -EIDRM);
	CHECK_RC(zinc_wait(h, 50), -EIDRM);
	CHECK_EQ(zinc_removed(o), 1);
	CHECK(tu_hdr(o)->flags & ZINC_FLAG_REMOVED);
	/* even with a notification pending */
	zinc_notify(h);
	CHECK_RC(zinc_try_wait(o), -EIDRM);
	/* the memory stays usable for those who have it */
	CHECK(strcmp((char *)zinc_ptr(h), "still here") == 0);
	zinc_ptr(h)[0] = 'S';
	CHECK_EQ(zinc_ptr(o)[0], 'S');

	/* the name is gone */
	zinc_region *x = (zinc_region *)1;
	CHECK_RC(zinc_open("ul", &x), -ENOENT);
	CHECK(x == NULL);
	CHECK_RC(zinc_unlink("ul"), -ENOENT);
	struct zinc_info info;
	CHECK_RC(zinc_stat("ul", &info), -ENOENT);
	/* and free: a new owner can take it even though the old owner's
	 * handle is still open */
	zinc_region *n;
	CHECK_OK(zinc_create("ul", tu_page(), &n));
	zinc_close(h);
	zinc_close(o);
	CHECK(tu_exists("ul"));
	CHECK_EQ(zinc_removed(n), 0);
	zinc_close(n);
	CHECK(!tu_exists("ul"));
	close(ready[0]);
	close(ready[1]);
}

static void test_unlink_orphan(void)
{
	/* A region nobody has open (owner killed) is simply removed. */
	int ready[2];
	tu_pipe(ready);
	pid_t pid = tu_fork();
	if (pid == 0) {
		zinc_region *o;
		CHECK_OK(zinc_create("orphan", tu_page(), &o));
		tu_put(ready[1], 'o');
		for (;;)
			pause();
	}
	CHECK_GET(ready[0], 'o');
	tu_kill(pid);
	CHECK(tu_exists("orphan"));
	CHECK_OK(zinc_unlink("orphan"));
	CHECK(!tu_exists("orphan"));
	/* unlink of a live owner's region in another process */
	pid = tu_fork();
	if (pid == 0) {
		zinc_region *o;
		CHECK_OK(zinc_create("orphan", tu_page(), &o));
		tu_put(ready[1], 'o');
		CHECK_RC(zinc_wait(o, 30000), -EIDRM);
		zinc_close(o);
		_exit(0);
	}
	CHECK_GET(ready[0], 'o');
	CHECK_ASLEEP(pid);
	CHECK_OK(zinc_unlink("orphan"));
	CHECK_CHILD_OK(pid);
	CHECK(!tu_exists("orphan"));
	close(ready[0]);
	close(ready[1]);
}

static void test_unlink_not_a_region(void)
{
	/* A leftover regular file: removed. */
	int fd = tu_make_object("junk", 10, NULL, 0600);
	close(fd);
	CHECK_OK(zinc_unlink("junk"));
	CHECK(!tu_exists("junk"));
}

/* A removal is never reported as a notification: waiters that race the
 * removal (spinning ones check the counter all the time) get -EIDRM, not
 * 0 for the counter bump that came with it.  Many rounds. */
struct racer {
	zinc_region *r;
	int started;
	int rc;
};

static void *spin_wait(void *arg)
{
	struct racer *x = arg;
	__atomic_store_n(&x->started, 1, __ATOMIC_RELEASE);
	x->rc = zinc_wait(x->r, 10000);
	return NULL;
}

static void test_removal_is_not_a_notification(void)
{
	int zeros = 0;
	for (int i = 0; i < 5000; i++) {
		zinc_region *o, *h;
		CHECK_OK(zinc_create("race", tu_page(), &o));
		CHECK_OK(zinc_open("race", &h));
		CHECK_OK(zinc_set_spin(h, i % 2 ? 1000000 : 20000));
		struct racer x = { .r = h };
		pthread_t t;
		CHECK_EQ(pthread_create(&t, NULL, spin_wait, &x), 0);
		while (!__atomic_load_n(&x.started, __ATOMIC_ACQUIRE))
			;
		CHECK_OK(zinc_unlink("race"));
		CHECK_EQ(pthread_join(t, NULL), 0);
		if (x.rc == 0)
			zeros++;
		else
			CHECK_RC(x.rc, -EIDRM);
		/* try_wait as well: the removal bump is pending for o */
		CHECK_RC(zinc_try_wait(o), -EIDRM);
		zinc_close(h);
		zinc_close(o);
	}
	CHECK_EQ(zeros, 0);
}

int main(void)
{
	tu_init();
	TU_RUN(test_unlink_wakes_waiters);
	TU_RUN(test_unlink_orphan);
	TU_RUN(test_unlink_not_a_region);
	TU_RUN(test_removal_is_not_a_notification);
	return T_PASS;
}
