/* SPDX-License-Identifier: MIT */
/*
 * Lifetime orders: the name stays while any counting handle is open
 * anywhere, and the last one to close removes it, whatever the order (owner
 * first or last, readers first or last, several readers, across
 * processes).  Closing a handle never removes a newer region that took the
 * same name.  Observer handles (ZINC_OPEN_OBSERVE) never keep a region
 * alive and never remove it.
 */
#include "testutil.h"

static void test_owner_alone(void)
{
	zinc_region *r;
	CHECK_OK(zinc_create("alone", tu_page(), &r));
	CHECK(tu_exists("alone"));
	zinc_close(r);
	CHECK(!tu_exists("alone"));
	zinc_region *x = (zinc_region *)1;
	CHECK_RC(zinc_open("alone", &x), -ENOENT);
	CHECK(x == NULL);
}

static void test_owner_first(void)
{
	zinc_region *o, *r;
	CHECK_OK(zinc_create("ownerfirst", tu_page(), &o));
	CHECK_OK(zinc_open("ownerfirst", &r));
	memcpy(zinc_ptr(o), "data", 5);
	zinc_close(o);
	/* The name stays for the reader: it can find, read and use it. */
	CHECK(tu_exists("ownerfirst"));
	CHECK_EQ(zinc_removed(r), 0);
	CHECK(memcmp(zinc_ptr(r), "data", 5) == 0);
	CHECK_EQ(tu_hdr(r)->ref_count, 1); /* zinc's open needs it > 0 */
	zinc_region *r2;
	CHECK_OK(zinc_open("ownerfirst", &r2));
	CHECK(memcmp(zinc_ptr(r2), "data", 5) == 0);
	zinc_notify(r2);
	CHECK_OK(zinc_try_wait(r));
	struct zinc_info info;
	CHECK_OK(zinc_stat("ownerfirst", &info));
	CHECK_EQ(info.owner_alive, 0);
	CHECK_EQ(info.in_use, 1);
	CHECK_EQ(info.ref_count, 2);
	zinc_close(r2);
	CHECK(tu_exists("ownerfirst"));
	zinc_close(r); /* last handle: removes */
	CHECK(!tu_exists("ownerfirst"));
}

static void test_reader_first(void)
{
	zinc_region *o, *r;
	CHECK_OK(zinc_create("readerfirst", tu_page(), &o));
	CHECK_OK(zinc_open("readerfirst", &r));
	zinc_close(r);
	CHECK(tu_exists("readerfirst"));
	CHECK_EQ(tu_hdr(o)->ref_count, 1);
	CHECK_EQ(zinc_removed(o), 0);
	zinc_close(o);
	CHECK(!tu_exists("readerfirst"));
}

/* Close order given as a permutation of handle indexes (0 = owner). */
static void close_in_order(const int *order, int n)
{
	zinc_region *h[8];
	CHECK_OK(zinc_create("multi", tu_page(), &h[0]));
	for (int i = 1; i < n; i++)
		CHECK_OK(zinc_open("multi", &h[i]));
	CHECK_EQ(tu_hdr(h[0])->ref_count, n);
	for (int k = 0; k < n; k++) {
		CHECK(tu_exists("multi"));
		zinc_close(h[order[k]]);
		CHECK_EQ(tu_exists("multi"), k < n - 1);
		for (int j = k + 1; j < n; j++) {
			CHECK_EQ(zinc_removed(h[order[j]]), 0);
			CHECK_EQ(tu_hdr(h[order[j]])->ref_count, n - k - 1);
		}
	}
}

static void test_multiple_readers(void)
{
	const int orders[][4] = {
		{ 0, 1, 2, 3 }, { 3, 2, 1, 0 }, { 1, 0, 3, 2 },
		{ 2, 3, 0, 1 }, { 1, 2, 0, 3 }, { 3, 0, 2, 1 },
	};
	for (size_t i = 0; i < sizeof(orders) / sizeof(orders[0]); i++)
		close_in_order(orders[i], 4);
}

/* Across processes: the owner in a child, readers here and in another
 * child; every order. */
static void cross_process(int owner_first)
{
	int go[2], ready[2];
	tu_pipe(go);
	tu_pipe(ready);
	pid_t owner = tu_fork();
	if (owner == 0) {
		zinc_region *o;
		CHECK_OK(zinc_create("xlife", tu_page(), &o));
		memcpy(zinc_ptr(o), "from owner", 11);
		tu_put(ready[1], 'o');
		CHECK_GET(go[0], 'c');
		zinc_close(o);
		tu_put(ready[1], 'C');
		_exit(0);
	}
	CHECK_GET(ready[0], 'o');
	zinc_region *r;
	CHECK_OK(zinc_open("xlife", &r));
	if (owner_first) {
		tu_put(go[1], 'c');
		CHECK_GET(ready[0], 'C');
		CHECK_CHILD_OK(owner);
		CHECK(tu_exists("xlife"));
		CHECK(memcmp(zinc_ptr(r), "from owner", 11) == 0);
		CHECK_EQ(zinc_removed(r), 0);
		zinc_close(r);
		CHECK(!tu_exists("xlife"));
	} else {
		zinc_close(r);
		CHECK(tu_exists("xlife"));
		tu_put(go[1], 'c');
		CHECK_GET(ready[0], 'C');
		CHECK_CHILD_OK(owner);
		CHECK(!tu_exists("xlife"));
	}
	close(go[0]); close(go[1]);
	close(ready[0]); close(ready[1]);
}

static void test_cross_process_orders(void)
{
	cross_process(1);
	cross_process(0);
}

/* The last handle of an old region must not remove the new one. */
static void test_close_never_unlinks_newer(void)
{
	/* (a) replaced by create after the owner closed */
	zinc_region *o1, *r1, *o2;
	CHECK_OK(zinc_create("newer", tu_page(), &o1));
	CHECK_OK(zinc_open("newer", &r1));
	zinc_close(o1);
	CHECK_OK(zinc_create("newer", 2 * tu_page(), &o2));
	ino_t ino2 = tu_ino("newer");
	CHECK_EQ(tu_handle_ino(o2), ino2);
	CHECK(tu_handle_ino(r1) != ino2);
	CHECK_RC(zinc_try_wait(r1), -EIDRM);
	zinc_close(r1); /* last handle of the old region */
	CHECK_EQ(tu_ino("newer"), ino2);
	CHECK_EQ(zinc_removed(o2), 0);

	/* (b) removed by zinc_unlink while handles were open */
	zinc_region *r2;
	CHECK_OK(zinc_open("newer", &r2));
	CHECK_OK(zinc_unlink("newer"));
	CHECK(!tu_exists("newer"));
	zinc_region *o3;
	CHECK_OK(zinc_create("newer", tu_page(), &o3));
	ino_t ino3 = tu_ino("newer");
	zinc_close(o2); /* owner of the unlinked one */
	zinc_close(r2);
	CHECK_EQ(tu_ino("newer"), ino3);
	CHECK_EQ(zinc_removed(o3), 0);

	/* (c) the same in another process */
	pid_t pid = tu_fork();
	if (pid == 0) {
		zinc_region *x;
		CHECK_OK(zinc_open("newer", &x));
		_exit(0); /* exits without closing: counts as a close */
	}
	CHECK_CHILD_OK(pid);
	zinc_region *r3;
	CHECK_OK(zinc_open("newer", &r3));
	CHECK_OK(zinc_unlink("newer"));
	zinc_region *o4;
	CHECK_OK(zinc_create("newer", tu_page(), &o4));
	ino_t ino4 = tu_ino("newer");
	pid = tu_fork();
	if (pid == 0) {
		/* a handle of the new region in another process closes */
		zinc_region *y;
		CHECK_OK(zinc_open("newer", &y));
		CHECK_EQ(tu_handle_ino(y), ino4);
		zinc_close(y);
		CHECK_EQ(tu_ino("newer"), ino4);
		_exit(0);
	}
	CHECK_CHILD_OK(pid);
	zinc_close(r3);
	zinc_close(o3);
	CHECK_EQ(tu_ino("newer"), ino4);
	zinc_close(o4);
	CHECK(!tu_exists("newer"));
}

static void test_observers(void)
{
	zinc_region *o, *obs, *r;
	CHECK_OK(zinc_create("obs", tu_page(), &o));
	CHECK_OK(zinc_open_ex("obs", ZINC_OPEN_OBSERVE, &obs));
	/* not counted */
	CHECK_EQ(tu_hdr(o)->ref_count, 1);
	/* an observer sees notifications like any handle */
	zinc_notify(o);
	CHECK_OK(zinc_try_wait(obs));
	/* an observer's close never removes a live region */
	zinc_close(obs);
	CHECK(tu_exists("obs"));
	CHECK_EQ(zinc_removed(o), 0);
	CHECK_EQ(tu_hdr(o)->ref_count, 1);

	/* an observer does not keep the region alive */
	CHECK_OK(zinc_open_ex("obs", ZINC_OPEN_OBSERVE, &obs));
	struct zinc_info info;
	CHECK_OK(zinc_handle_stat(obs, &info));
	CHECK_EQ(info.in_use, 1);
	CHECK_EQ(info.owner_alive, 1);
	zinc_close(o);
	CHECK(!tu_exists("obs"));
	CHECK_EQ(zinc_removed(obs), 1);
	CHECK_RC(zinc_try_wait(obs), -EIDRM);
	CHECK_RC(zinc_wait(obs, 100), -EIDRM);
	/* its close does not remove a newer region of the same name */
	CHECK_OK(zinc_create("obs", tu_page(), &o));
	zinc_close(obs);
	CHECK(tu_exists("obs"));
	CHECK_EQ(zinc_removed(o), 0);

	/* owner gone, reader left: an observer neither keeps it nor is the
	 * "last handle"; the reader's close removes it */
	CHECK_OK(zinc_open("obs", &r));
	CHECK_OK(zinc_open_ex("obs", ZINC_OPEN_OBSERVE, &obs));
	zinc_close(o);
	CHECK(tu_exists("obs"));
	CHECK_OK(zinc_handle_stat(obs, &info));
	CHECK_EQ(info.owner_alive, 0);
	CHECK_EQ(info.in_use, 1);
	zinc_close(r);
	CHECK(!tu_exists("obs"));
	CHECK_RC(zinc_try_wait(obs), -EIDRM);
	zinc_close(obs);

	/* observer in another process, owner closes: gone */
	CHECK_OK(zinc_create("obs", tu_page(), &o));
	int ready[2], go[2];
	tu_pipe(ready);
	tu_pipe(go);
	pid_t pid = tu_fork();
	if (pid == 0) {
		zinc_region *x;
		CHECK_OK(zinc_open_ex("obs", ZINC_OPEN_OBSERVE, &x));
		tu_put(ready[1], 'r');
		CHECK_RC(zinc_wait(x, 20000), -EIDRM);
		zinc_close(x);
		_exit(0);
	}
	CHECK_GET(ready[0], 'r');
	CHECK_ASLEEP(pid);
	zinc_close(o);
	CHECK(!tu_exists("obs"));
	CHECK_CHILD_OK(pid);
	close(ready[0]); close(ready[1]);
	close(go[0]); close(go[1]);
}

static void test_open_after_removal(void)
{
	/* zinc_open never hands out a handle to a removed region */
	zinc_region *o, *r = (zinc_region *)1;
	CHECK_OK(zinc_create("gone", tu_page(), &o));
	CHECK_OK(zinc_unlink("gone"));
	CHECK_RC(zinc_open("gone", &r), -ENOENT);
	CHECK(r == NULL);
	zinc_close(o);
}

/* A dead owner's region whose removed flag is set while its name stays (a
 * scribbled or forged header): open says it is gone, and create replaces
 * it instead of failing -EEXIST forever (found by region_fuzz's seeds). */
static void test_create_replaces_flagged_stale_region(void)
{
	pid_t pid = fork();
	CHECK_SYS(pid);
	if (pid == 0) {
		zinc_region *c;
		_exit(zinc_create("flagged", tu_page(), &c) == 0 ? 0 : 1);
	}
	int st;
	CHECK_SYS(waitpid(pid, &st, 0));
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	struct zinc_header *h = tu_map_header("flagged");
	__atomic_fetch_or(&h->flags, ZINC_FLAG_REMOVED, __ATOMIC_SEQ_CST);
	munmap(h, tu_page());
	zinc_region *r = (zinc_region *)1, *n;
	CHECK_RC(zinc_open("flagged", &r), -ENOENT);
	CHECK_OK(zinc_create("flagged", 2 * tu_page(), &n));
	CHECK(zinc_capacity(n) == 2 * tu_page() && !zinc_removed(n));
	zinc_close(n);
}

/*
 * A process that forks a long-lived child (which never touches the
 * handles), or dup()s zinc_fd(), then closes its handle: the copy of the
 * file descriptor must not keep the closed handle's locks alive (owner
 * lock, handle lock, remover lock).
 */
static void test_fd_copies_keep_nothing(void)
{
	int ready[2], go[2];
	tu_pipe(ready);
	tu_pipe(go);
	zinc_region *o;
	CHECK_OK(zinc_create("copies", tu_page(), &o));
	pid_t reader = tu_fork();
	if (reader == 0) {
		zinc_region *r;
		CHECK_OK(zinc_open("copies", &r));
		tu_put(ready[1], 'r');
		CHECK_GET(go[0], 'c');
		int64_t t0 = tu_now_ms();
		zinc_close(r);
		CHECK(tu_now_ms() - t0 < 500); /* no lock stall */
		_exit(0);
	}
	CHECK_GET(ready[0], 'r');
	/* a bystander child: inherits our descriptors, sleeps */
	pid_t bystander = tu_fork();
	if (bystander == 0) {
		for (;;)
			pause();
	}
	int dupfd = dup(zinc_fd(o));
	CHECK_SYS(dupfd);
	zinc_close(o);
	CHECK(tu_exists("copies")); /* the reader still has it */
	struct zinc_info info;
	CHECK_OK(zinc_stat("copies", &info));
	CHECK_EQ(info.owner_alive, 0);
	CHECK_EQ(info.in_use, 1);
	/* the reader, now the last handle, removes it promptly */
	tu_put(go[1], 'c');
	CHECK_CHILD_OK(reader);
	CHECK(!tu_exists("copies"));

	/* same for a plain owner whose name a new owner wants */
	CHECK_OK(zinc_create("copies", tu_page(), &o));
	zinc_region *r;
	CHECK_OK(zinc_open("copies", &r));
	pid_t bystander2 = tu_fork();
	if (bystander2 == 0) {
		for (;;)
			pause();
	}
	zinc_close(o);
	zinc_region *n;
	CHECK_OK(zinc_create("copies", tu_page(), &n)); /* not -EEXIST */
	CHECK_RC(zinc_try_wait(r), -EIDRM);
	zinc_close(r);
	zinc_close(n);
	CHECK(!tu_exists("copies"));
	tu_kill(bystander);
	tu_kill(bystander2);
	close(dupfd);
	close(ready[0]); close(ready[1]);
	close(go[0]); close(go[1]);
}

int main(void)
{
	tu_init();
	TU_RUN(test_owner_alone);
	TU_RUN(test_owner_first);
	TU_RUN(test_reader_first);
	TU_RUN(test_multiple_readers);
	TU_RUN(test_cross_process_orders);
	TU_RUN(test_close_never_unlinks_newer);
	TU_RUN(test_observers);
	TU_RUN(test_open_after_removal);
	TU_RUN(test_create_replaces_flagged_stale_region);
	TU_RUN(test_fd_copies_keep_nothing);
	return T_PASS;
}
