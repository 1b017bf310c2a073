/* SPDX-License-Identifier: MIT */
/*
 * Lock protocol v2, the close decision, hammered round by round with real
 * processes released at the same instant:
 *  - closers racing (the owner and two other handles close at once) never
 *    leak the name: after every round it is gone;
 *  - an opener racing the last closer either fails with -ENOENT or gets a
 *    handle on a region that stays (never one that then gets removed: no
 *    handle sees -EIDRM unless someone unlinked).
 */
#include "testutil.h"

#define ROUNDS 300

/* A flag in memory shared with the children: they spin until it is set,
 * so all racers start within a few instructions of each other. */
static int *go;

static void wait_go(void)
{
	while (!__atomic_load_n(go, __ATOMIC_ACQUIRE))
		;
}

/* A child that opens NAME now and closes it when released. */
static pid_t closer(const char *name, int ready)
{
	pid_t pid = tu_fork();
	if (pid == 0) {
		zinc_region *r;
		CHECK_OK(zinc_open(name, &r));
		tu_put(ready, 'o');
		wait_go();
		zinc_close(r);
		_exit(0);
	}
	return pid;
}

static void test_closers(void)
{
	int ready[2];
	tu_pipe(ready);
	for (int i = 0; i < ROUNDS; i++) {
		zinc_region *o;
		*go = 0;
		CHECK_OK(zinc_create("cc", tu_page(), &o));
		pid_t a = closer("cc", ready[1]), b = closer("cc", ready[1]);
		CHECK_GET(ready[0], 'o');
		CHECK_GET(ready[0], 'o');
		__atomic_store_n(go, 1, __ATOMIC_RELEASE);
		zinc_close(o);
		CHECK_CHILD_OK(a);
		CHECK_CHILD_OK(b);
		if (tu_exists("cc")) {
			fprintf(stderr, "round %d: the name leaked\n", i);
			CHECK(!tu_exists("cc"));
		}
	}
	close(ready[0]);
	close(ready[1]);
}

static void test_opener_vs_last_close(void)
{
	int res[2], ready[2];
	tu_pipe(res);
	tu_pipe(ready);
	int opened = 0, absent = 0;
	for (int i = 0; i < ROUNDS; i++) {
		zinc_region *o;
		*go = 0;
		CHECK_OK(zinc_create("oc", tu_page(), &o));
		pid_t pid = tu_fork();
		if (pid == 0) {
			zinc_region *r;
			struct zinc_info info;
			CHECK_OK(zinc_stat("oc", &info)); /* warm up after fork */
			tu_put(ready[1], 'r');
			wait_go();
			int rc = zinc_open("oc", &r);
			if (rc == -ENOENT) {
				tu_put(res[1], 'n');
				_exit(0);
			}
			CHECK_OK(rc);
			/* Wait until the owner's close is over, then our
			 * handle must still be the named, live region. */
			while (__atomic_load_n(go, __ATOMIC_ACQUIRE) != 2)
				;
			CHECK_EQ(zinc_removed(r), 0);
			CHECK_RC(zinc_try_wait(r), -EAGAIN);
			CHECK_EQ(tu_ino("oc"), tu_handle_ino(r));
			zinc_close(r);
			tu_put(res[1], 'y');
			_exit(0);
		}
		CHECK_GET(ready[0], 'r');
		__atomic_store_n(go, 1, __ATOMIC_RELEASE);
		/* a varying head start for the opener: both orders happen */
		for (volatile int k = 0; k < (i % 100) * 2000; k++)
			;
		zinc_close(o);
		__atomic_store_n(go, 2, __ATOMIC_RELEASE);
		int c = tu_get(res[0], 30000);
		CHECK(c == 'y' || c == 'n');
		if (c == 'y')
			opened++;
		else
			absent++;
		CHECK_CHILD_OK(pid);
		CHECK(!tu_exists("oc"));
	}
	printf("  opener won %d times, found no region %d times\n", opened,
	       absent);
	CHECK(opened > 0);
	close(res[0]);
	close(res[1]);
	close(ready[0]);
	close(ready[1]);
}

int main(void)
{
	tu_init();
	go = mmap(NULL, sizeof(*go), PROT_READ | PROT_WRITE,
		  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	CHECK(go != MAP_FAILED);
	TU_RUN(test_closers);
	TU_RUN(test_opener_vs_last_close);
	return T_PASS;
}
