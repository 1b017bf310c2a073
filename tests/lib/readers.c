/* SPDX-License-Identifier: MIT */
/*
 * Lock protocol v2 against a reader: another user with only read access to
 * a region's object holds OFD read locks on byte 0, byte 1, byte 2 and the
 * whole file (l_start 0, l_len 0), each through its own O_RDONLY fd.  It
 * cannot fake a live owner, and create, unlink and close never wait for it:
 * each returns at once.  Its byte-0 lock counts like a handle, so it may
 * keep a closed region's name (allowed), nothing more.
 */
#include "testutil.h"

#define FAST_MS 500 /* "at once": far below the old 2 s lock waits */

struct reader {
	pid_t pid;
	int go[2], ready[2];
};

/* 0, or -1 if a write lock (the owner's) is in the way. */
static int read_lock(int fd, off_t start, off_t len)
{
	struct flock fl = { .l_type = F_RDLCK, .l_whence = SEEK_SET,
			    .l_start = start, .l_len = len };
	if (fcntl(fd, F_OFD_SETLK, &fl) == 0)
		return 0;
	CHECK_EQ(errno, EAGAIN);
	return -1;
}

/*
 * Lock NAME's object as a reader until reader_stop().  Byte 1 and the
 * whole file can be read-locked only once the owner's write lock is gone:
 * reader_relock() takes them then.
 */
static void reader_start(struct reader *rd, const char *name)
{
	char p[PATH_MAX];
	tu_path(name, p, sizeof(p));
	tu_pipe(rd->go);
	tu_pipe(rd->ready);
	rd->pid = tu_fork();
	if (rd->pid == 0) {
		int other = tu_become_nobody();
		if (other)
			CHECK(open(p, O_RDWR | O_CLOEXEC) < 0 && errno == EACCES);
		int fd[4];
		for (int i = 0; i < 4; i++) {
			fd[i] = open(p, O_RDONLY | O_CLOEXEC);
			CHECK_SYS(fd[i]);
		}
		CHECK_OK(read_lock(fd[0], 0, 1));
		CHECK_OK(read_lock(fd[2], 2, 1));
		read_lock(fd[1], 1, 1);
		read_lock(fd[3], 0, 0);
		tu_put(rd->ready[1], 'l');
		while (tu_get(rd->go[0], 60000) == 'r') {
			CHECK_OK(read_lock(fd[1], 1, 1));
			CHECK_OK(read_lock(fd[3], 0, 0));
			tu_put(rd->ready[1], 'l');
		}
		_exit(0);
	}
	CHECK_GET(rd->ready[0], 'l');
}

/* The owner is gone: lock byte 1 and the whole file too. */
static void reader_relock(struct reader *rd)
{
	tu_put(rd->go[1], 'r');
	CHECK_GET(rd->ready[0], 'l');
}

static void reader_stop(struct reader *rd)
{
	tu_put(rd->go[1], 'q');
	CHECK_CHILD_OK(rd->pid);
	for (int i = 0; i < 2; i++) {
		close(rd->go[i]);
		close(rd->ready[i]);
	}
}

/* A region readable by others. */
static zinc_region *shared_region(const char *name)
{
	zinc_region *r;
	CHECK_OK(zinc_create(name, tu_page(), &r));
	CHECK_SYS(fchmod(zinc_fd(r), 0644));
	return r;
}

static void check_fast(int64_t t0, const char *what)
{
	int64_t ms = tu_now_ms() - t0;
	printf("  %s: %lld ms\n", what, (long long)ms);
	CHECK(ms < FAST_MS);
}

/* The owner closes: the close is immediate, the reader's lock keeps the
 * name, stat shows the owner dead, and a create replaces it at once. */
static void test_stale_create(void)
{
	struct reader rd;
	zinc_region *o = shared_region("stale"), *n;
	ino_t old = tu_ino("stale");
	reader_start(&rd, "stale");
	struct zinc_info info;
	CHECK_OK(zinc_stat("stale", &info));
	CHECK_EQ(info.owner_alive, 1);
	CHECK_EQ(info.in_use, 1);
	CHECK_RC(zinc_create("stale", tu_page(), &n), -EEXIST);

	int64_t t0 = tu_now_ms();
	zinc_close(o);
	check_fast(t0, "last close");
	CHECK_EQ(tu_ino("stale"), old); /* kept by the reader's byte-0 lock */
	reader_relock(&rd);
	CHECK_OK(zinc_stat("stale", &info));
	CHECK_EQ(info.owner_alive, 0); /* its byte-1 read lock fakes nothing */
	CHECK_EQ(info.in_use, 1);
	CHECK_EQ(info.flags & ZINC_FLAG_REMOVED, 0);

	t0 = tu_now_ms();
	CHECK_OK(zinc_create("stale", tu_page(), &n));
	check_fast(t0, "create over the stale name");
	CHECK(tu_ino("stale") != old);
	t0 = tu_now_ms();
	zinc_close(n);
	check_fast(t0, "close of the new region");
	CHECK(!tu_exists("stale"));
	reader_stop(&rd);
}

/* unlink with the owner alive, and of a stale region. */
static void test_unlink(void)
{
	struct reader rd;
	zinc_region *o = shared_region("ul");
	reader_start(&rd, "ul");
	int64_t t0 = tu_now_ms();
	CHECK_OK(zinc_unlink("ul"));
	check_fast(t0, "unlink, owner alive");
	CHECK(!tu_exists("ul"));
	CHECK_RC(zinc_wait(o, 0), -EIDRM);
	zinc_close(o);
	reader_stop(&rd);

	o = shared_region("ul");
	reader_start(&rd, "ul");
	zinc_close(o);
	CHECK(tu_exists("ul"));
	reader_relock(&rd);
	t0 = tu_now_ms();
	CHECK_OK(zinc_unlink("ul"));
	check_fast(t0, "unlink of a stale region");
	CHECK(!tu_exists("ul"));
	reader_stop(&rd);
}

/* Several handles close one after another, each at once; the reader's
 * lock keeps the name until a handle closes after the reader left. */
static void test_close_last(void)
{
	struct reader rd;
	zinc_region *o = shared_region("cl"), *h, *h2;
	CHECK_OK(zinc_open("cl", &h));
	reader_start(&rd, "cl");
	CHECK_OK(zinc_open("cl", &h2)); /* opening is not held up either */
	int64_t t0 = tu_now_ms();
	zinc_close(h);
	zinc_close(o);
	zinc_close(h2);
	check_fast(t0, "three closes");
	CHECK(tu_exists("cl"));
	reader_relock(&rd);
	reader_stop(&rd);
	CHECK(tu_exists("cl")); /* the reader does not remove anything */
	struct zinc_info info;
	CHECK_OK(zinc_stat("cl", &info));
	CHECK_EQ(info.in_use, 0);
	CHECK_OK(zinc_open("cl", &h));
	zinc_close(h);
	CHECK(!tu_exists("cl"));
}

int main(void)
{
	tu_init();
	TU_RUN(test_stale_create);
	TU_RUN(test_unlink);
	TU_RUN(test_close_last);
	return T_PASS;
}
