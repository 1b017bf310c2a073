/* SPDX-License-Identifier: MIT */
/*
 * Crashes count as closes.  SIGKILL of the owner: its lock dies with it, a
 * create of the same name replaces the region and the old handles get
 * -EIDRM (also a waiter asleep in another process).  SIGKILL of a reader
 * (or of a waiter) does not keep the region alive.  A stale region (no
 * lock, dead owner pid) left in the directory is replaced by create and
 * removed by the next handle to close.
 */
#include "testutil.h"

/* A child that creates NAME, writes `tag` into it, reports, and blocks. */
static pid_t spawn_owner(const char *name, const char *tag)
{
	int ready[2];
	tu_pipe(ready);
	pid_t pid = tu_fork();
	if (pid == 0) {
		zinc_region *o;
		CHECK_OK(zinc_create(name, tu_page(), &o));
		strcpy((char *)zinc_ptr(o), tag);
		tu_put(ready[1], 'o');
		for (;;)
			pause();
	}
	CHECK_GET(ready[0], 'o');
	close(ready[0]);
	close(ready[1]);
	return pid;
}

static void test_owner_killed(void)
{
	pid_t pid = spawn_owner("k1", "old");
	zinc_region *r, *x = (zinc_region *)1;
	CHECK_OK(zinc_open("k1", &r));
	CHECK_RC(zinc_create("k1", tu_page(), &x), -EEXIST);
	CHECK(x == NULL);
	tu_kill(pid);

	/* The header still names the dead owner, but its lock is gone. */
	struct zinc_info info;
	CHECK_OK(zinc_stat("k1", &info));
	CHECK_EQ(info.owner_pid, pid);
	CHECK_EQ(info.owner_alive, 0);
	CHECK_EQ(info.in_use, 1);
	CHECK_EQ(zinc_removed(r), 0);
	CHECK(strcmp((char *)zinc_ptr(r), "old") == 0);

	/* A new owner replaces it. */
	zinc_region *n;
	CHECK_OK(zinc_create("k1", 2 * tu_page(), &n));
	CHECK_EQ(zinc_removed(r), 1);
	CHECK_RC(zinc_try_wait(r), -EIDRM);
	CHECK_RC(zinc_wait(r, 0), -EIDRM);
	CHECK_RC(zinc_wait(r, 1000), -EIDRM);
	/* the old mapping stays readable for whoever has it */
	CHECK(strcmp((char *)zinc_ptr(r), "old") == 0);
	/* the new one is fresh */
	CHECK_EQ(zinc_capacity(n), 2 * tu_page());
	CHECK_EQ(zinc_ptr(n)[0], 0);
	CHECK_EQ(zinc_seq(n), 0);
	CHECK_EQ(tu_hdr(n)->owner_pid, getpid());
	CHECK_EQ(tu_hdr(n)->ref_count, 1);
	/* opening the name gives the new region */
	zinc_region *r2;
	CHECK_OK(zinc_open("k1", &r2));
	CHECK_EQ(zinc_capacity(r2), 2 * tu_page());
	zinc_close(r2);
	zinc_close(r); /* old handle: must not remove the new region */
	CHECK(tu_exists("k1"));
	CHECK_EQ(zinc_removed(n), 0);
	zinc_close(n);
}

static void test_owner_killed_alone(void)
{
	/* Nobody else had it open: the object is left behind ... */
	pid_t pid = spawn_owner("k2", "orphan");
	tu_kill(pid);
	CHECK(tu_exists("k2"));
	struct zinc_info info;
	CHECK_OK(zinc_stat("k2", &info));
	CHECK_EQ(info.owner_alive, 0);
	CHECK_EQ(info.in_use, 0);
	/* ... zinc_stat did not remove it (an observer) ... */
	CHECK(tu_exists("k2"));
	/* ... can still be opened and read, and the next handle to close
	 * (the last one) removes it. */
	zinc_region *r;
	CHECK_OK(zinc_open("k2", &r));
	CHECK(strcmp((char *)zinc_ptr(r), "orphan") == 0);
	zinc_close(r);
	CHECK(!tu_exists("k2"));

	/* Or create replaces it at once. */
	pid = spawn_owner("k2", "orphan");
	tu_kill(pid);
	zinc_region *n;
	CHECK_OK(zinc_create("k2", tu_page(), &n));
	CHECK_EQ(zinc_ptr(n)[0], 0);
	zinc_close(n);
	CHECK(!tu_exists("k2"));
}

static void test_waiter_gets_eidrm_on_replace(void)
{
	pid_t owner = spawn_owner("k3", "x");
	int ready[2];
	tu_pipe(ready);
	pid_t waiter = tu_fork();
	if (waiter == 0) {
		zinc_region *w;
		CHECK_OK(zinc_open("k3", &w));
		tu_put(ready[1], 'w');
		CHECK_RC(zinc_wait(w, 20000), -EIDRM);
		CHECK_RC(zinc_try_wait(w), -EIDRM);
		zinc_close(w);
		_exit(0);
	}
	CHECK_GET(ready[0], 'w');
	CHECK_ASLEEP(waiter);
	tu_kill(owner);
	CHECK_ASLEEP(waiter); /* the owner's death alone wakes nobody */
	zinc_region *n;
	CHECK_OK(zinc_create("k3", tu_page(), &n));
	CHECK_CHILD_OK(waiter);
	CHECK(tu_exists("k3"));
	zinc_close(n);
	CHECK(!tu_exists("k3"));
	close(ready[0]);
	close(ready[1]);
}

static void test_reader_killed(void)
{
	zinc_region *o;
	CHECK_OK(zinc_create("k4", tu_page(), &o));
	int ready[2];
	tu_pipe(ready);
	pid_t pid = tu_fork();
	if (pid == 0) {
		zinc_region *r, *r2;
		CHECK_OK(zinc_open("k4", &r));
		CHECK_OK(zinc_open("k4", &r2));
		tu_put(ready[1], 'r');
		for (;;)
			pause();
	}
	CHECK_GET(ready[0], 'r');
	CHECK_EQ(tu_hdr(o)->ref_count, 3);
	tu_kill(pid);
	/* The header's count is now stale (3), but the kernel's locks know
	 * better: the owner's close is the last one. */
	CHECK_EQ(tu_hdr(o)->ref_count, 3);
	zinc_close(o);
	CHECK(!tu_exists("k4"));

	/* Reader killed while asleep in zinc_wait. */
	CHECK_OK(zinc_create("k4", tu_page(), &o));
	pid = tu_fork();
	if (pid == 0) {
		zinc_region *r;
		CHECK_OK(zinc_open("k4", &r));
		tu_put(ready[1], 'w');
		zinc_wait(r, 60000);
		_exit(1);
	}
	CHECK_GET(ready[0], 'w');
	CHECK_ASLEEP(pid);
	tu_kill(pid);
	/* notify still works (at worst one needless wake) */
	zinc_notify(o);
	CHECK_OK(zinc_try_wait(o));
	zinc_close(o);
	CHECK(!tu_exists("k4"));

	/* Owner closed first, then the only reader is killed: the object is
	 * left, and replaced or removed by the next user. */
	CHECK_OK(zinc_create("k4", tu_page(), &o));
	pid = tu_fork();
	if (pid == 0) {
		zinc_region *r;
		CHECK_OK(zinc_open("k4", &r));
		tu_put(ready[1], 'r');
		for (;;)
			pause();
	}
	CHECK_GET(ready[0], 'r');
	zinc_close(o);
	CHECK(tu_exists("k4"));
	tu_kill(pid);
	struct zinc_info info;
	CHECK_OK(zinc_stat("k4", &info));
	CHECK_EQ(info.in_use, 0);
	CHECK_EQ(info.owner_alive, 0);
	CHECK_OK(zinc_create("k4", tu_page(), &o));
	zinc_close(o);
	CHECK(!tu_exists("k4"));
	close(ready[0]);
	close(ready[1]);
}

static void test_stale_region_replaced(void)
{
	size_t page = tu_page();
	/* A libzinc region whose creator died between runs (e.g. machine
	 * state restored): valid header + ext, no locks, dead owner pid. */
	zinc_region *o;
	CHECK_OK(zinc_create("stale", 2 * page, &o));
	char p[PATH_MAX], saved[PATH_MAX];
	tu_path("stale", p, sizeof(p));
	snprintf(saved, sizeof(saved), "%s/saved", tu_tmpdir);
	CHECK_SYS(link(p, saved)); /* keep the object ... */
	tu_hdr(o)->owner_pid = tu_dead_pid();
	zinc_close(o);             /* ... after its name is removed */
	CHECK(!tu_exists("stale"));
	CHECK_SYS(rename(saved, p)); /* put it back, lock-free */
	/* It still carries the REMOVED flag from the close: clear it so it
	 * looks exactly like a crashed owner's region. */
	int fd = open(p, O_RDWR | O_CLOEXEC);
	CHECK_SYS(fd);
	uint16_t flags = 0;
	CHECK_EQ(pwrite(fd, &flags, 2, 10), 2);
	close(fd);

	struct zinc_info info;
	CHECK_OK(zinc_stat("stale", &info));
	CHECK_EQ(info.owner_alive, 0);
	CHECK_EQ(info.in_use, 0);
	CHECK_EQ(info.foreign, 0);
	zinc_region *old;
	CHECK_OK(zinc_open("stale", &old));
	CHECK_OK(zinc_create("stale", page, &o));
	CHECK_RC(zinc_try_wait(old), -EIDRM);
	CHECK_EQ(zinc_capacity(o), page);
	zinc_close(old);
	CHECK(tu_exists("stale"));
	zinc_close(o);
	CHECK(!tu_exists("stale"));
}

int main(void)
{
	tu_init();
	TU_RUN(test_owner_killed);
	TU_RUN(test_owner_killed_alone);
	TU_RUN(test_waiter_gets_eidrm_on_replace);
	TU_RUN(test_reader_killed);
	TU_RUN(test_stale_region_replaced);
	return T_PASS;
}
