/* SPDX-License-Identifier: MIT */
/*
 * Interop with zinc-core: a region written by hand exactly as zinc-core v2
 * makes it (64-byte header, nothing at offset 64, no locks) opens, is
 * reported foreign, is owned while its owner_pid lives, and libzinc's notify
 * on it always issues the wake (zinc-core waiters never announce
 * themselves), proven with a raw futex waiter.  A libzinc waiter is woken
 * by a zinc-core-style notifier (raw increment + FUTEX_WAKE).  Our handles
 * keep its ref_count right and never remove it while zinc-core holds it.
 */
#include <linux/futex.h>
#include "testutil.h"

/* A process standing in for the zinc-core owner. */
static pid_t live_owner(void)
{
	pid_t pid = tu_fork();
	if (pid == 0) {
		for (;;)
			pause();
	}
	return pid;
}

/* zinc-core's create: header, magic last; ref_count 1 (its handle). */
static void make_foreign(const char *name, size_t pages, pid_t owner)
{
	size_t size = (pages + 1) * tu_page();
	struct zinc_header h = tu_header(name, size, owner);
	uint64_t magic = h.magic;
	h.magic = 0;
	int fd = tu_make_object(name, size, &h, 0600);
	CHECK_EQ(pwrite(fd, &magic, 8, 0), 8);
	close(fd);
}

/* NAME's header as zinc-core sees it: read from the file, not through a
 * libzinc mapping. */
static struct zinc_header read_header(const char *name)
{
	char p[PATH_MAX];
	tu_path(name, p, sizeof(p));
	int fd = open(p, O_RDONLY | O_CLOEXEC);
	CHECK_SYS(fd);
	struct zinc_header h;
	CHECK_EQ(pread(fd, &h, sizeof(h), 0), (long)sizeof(h));
	close(fd);
	return h;
}

/* Raw FUTEX_WAIT on the region's word, like zinc-core's wait. */
static pid_t raw_waiter(const char *name)
{
	pid_t pid = tu_fork();
	if (pid == 0) {
		struct zinc_header *h = tu_map_header(name);
		uint32_t v = __atomic_load_n(&h->notify_seq, __ATOMIC_ACQUIRE);
		struct timespec ts = { 20, 0 };
		while (__atomic_load_n(&h->notify_seq, __ATOMIC_ACQUIRE) == v) {
			long rc = syscall(SYS_futex, &h->notify_seq, FUTEX_WAIT,
					  v, &ts, NULL, 0);
			if (rc < 0 && errno == ETIMEDOUT)
				_exit(2);
		}
		_exit(0);
	}
	return pid;
}

static void test_open_foreign(void)
{
	pid_t owner = live_owner();
	make_foreign("core", 2, owner);
	zinc_region *r;
	CHECK_OK(zinc_open("core", &r));
	CHECK_EQ(zinc_capacity(r), 2 * tu_page());
	CHECK_EQ(tu_hdr(r)->ref_count, 2);
	struct zinc_info i;
	CHECK_OK(zinc_stat("core", &i));
	CHECK_EQ(i.foreign, 1);
	CHECK_EQ(i.owner_alive, 1);
	CHECK_EQ(i.owner_pid, owner);
	CHECK_EQ(i.ref_count, 2);
	CHECK_EQ(i.capacity, 2 * tu_page());

	/* Owned while its owner_pid lives. */
	zinc_region *x = (zinc_region *)1;
	CHECK_RC(zinc_create("core", tu_page(), &x), -EEXIST);
	CHECK(x == NULL);

	/* libzinc's notify always wakes on a foreign region. */
	pid_t w = raw_waiter("core");
	CHECK_ASLEEP(w);
	zinc_notify(r);
	CHECK_CHILD_OK(w);

	/* A zinc-core notifier wakes a libzinc waiter. */
	CHECK_OK(zinc_try_wait(r));
	int ready[2];
	tu_pipe(ready);
	pid_t lw = tu_fork();
	if (lw == 0) {
		zinc_region *c;
		CHECK_OK(zinc_open("core", &c));
		CHECK_OK(zinc_try_wait(c));
		tu_put(ready[1], 'w');
		CHECK_OK(zinc_wait(c, 20000));
		zinc_close(c);
		_exit(0);
	}
	CHECK_GET(ready[0], 'w');
	CHECK_ASLEEP(lw);
	__atomic_fetch_add(&tu_hdr(r)->notify_seq, 1, __ATOMIC_SEQ_CST);
	syscall(SYS_futex, &tu_hdr(r)->notify_seq, FUTEX_WAKE, INT32_MAX,
		NULL, NULL, 0);
	CHECK_CHILD_OK(lw);

	/* Our close leaves zinc-core's handle and the region alone. */
	zinc_close(r);
	CHECK(tu_exists("core"));
	CHECK_EQ(tu_count_objects(), 1);
	struct zinc_header h = read_header("core");
	CHECK_EQ(h.ref_count, 1);
	CHECK_EQ(h.magic, ZINC_MAGIC);
	CHECK_EQ(h.version, 2);
	CHECK_EQ(h.capacity, 2 * tu_page());
	CHECK_EQ(h.owner_pid, owner);
	CHECK_EQ(h.name_hash, tu_fnv1a("core"));
	/* observers do not touch ref_count */
	CHECK_OK(zinc_open_ex("core", ZINC_OPEN_OBSERVE, &r));
	CHECK_EQ(tu_hdr(r)->ref_count, 1);
	zinc_close(r);
	CHECK(tu_exists("core"));

	/* The zinc-core owner dies: the name is free for a new owner. */
	tu_kill(owner);
	CHECK_OK(zinc_stat("core", &i));
	CHECK_EQ(i.owner_alive, 0);
	zinc_region *old;
	CHECK_OK(zinc_open("core", &old));
	CHECK_OK(zinc_create("core", tu_page(), &x));
	CHECK_RC(zinc_try_wait(old), -EIDRM);
	CHECK_OK(zinc_stat("core", &i));
	CHECK_EQ(i.foreign, 0);
	zinc_close(old);
	zinc_close(x);
	CHECK(!tu_exists("core"));
	close(ready[0]);
	close(ready[1]);
}

static void test_foreign_dead_owner(void)
{
	/* A zinc-core region whose process crashed: replaced by create. */
	make_foreign("crashed", 1, tu_dead_pid());
	zinc_region *x;
	CHECK_OK(zinc_create("crashed", 3 * tu_page(), &x));
	CHECK_EQ(zinc_capacity(x), 3 * tu_page());
	zinc_close(x);
	CHECK(!tu_exists("crashed"));

	/* Or removed by zinc_unlink, waking our waiters with -EIDRM. */
	make_foreign("crashed", 1, tu_dead_pid());
	zinc_region *r;
	CHECK_OK(zinc_open("crashed", &r));
	CHECK_OK(zinc_unlink("crashed"));
	CHECK_RC(zinc_wait(r, 100), -EIDRM);
	zinc_close(r);
	CHECK(!tu_exists("crashed"));
}

/* What zinc-core's open checks of a libzinc region: magic, version, the
 * capacity field, and ref_count > 0 as long as any handle is open. */
static void test_libzinc_region_for_core(void)
{
	zinc_region *o, *r;
	CHECK_OK(zinc_create("ours", 2 * tu_page(), &o));
	CHECK_OK(zinc_open("ours", &r));
	zinc_close(o);
	struct zinc_header h = read_header("ours");
	CHECK_EQ(h.magic, ZINC_MAGIC);
	CHECK_EQ(h.version, 2);
	CHECK_EQ(h.capacity, 2 * tu_page());
	CHECK(h.ref_count > 0);
	zinc_close(r);
}

int main(void)
{
	tu_init();
	TU_RUN(test_open_foreign);
	TU_RUN(test_foreign_dead_owner);
	TU_RUN(test_libzinc_region_for_core);
	return T_PASS;
}
