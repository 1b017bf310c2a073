/* SPDX-License-Identifier: MIT */
/*
 * Hostile or broken objects under a region's name: open refuses each with
 * -EBADMSG (never a crash, never a hang), zinc_stat too, and create either
 * replaces a leftover regular file (nobody uses it) or refuses with -EEXIST
 * when the name is held by something that is not a file.  Also the brief
 * create-race retry of open on a right-sized object whose magic is still 0.
 */
#include <pthread.h>
#include <sys/socket.h>
#include <sys/un.h>
#include "testutil.h"

#define NAME "hostile"

/* open and stat give `want`; elapsed time is bounded. */
static void check_open_fails(const char *name, int want, const char *what)
{
	zinc_region *r = (zinc_region *)1;
	struct zinc_info info;
	fprintf(stderr, "  %s\n", what);
	int64_t t0 = tu_now_ms();
	CHECK_RC(zinc_open(name, &r), want);
	CHECK(r == NULL);
	r = (zinc_region *)1;
	CHECK_RC(zinc_open_ex(name, ZINC_OPEN_OBSERVE, &r), want);
	CHECK(r == NULL);
	CHECK_RC(zinc_stat(name, &info), want);
	/* The create-race retry is a few ms; nothing may hang. */
	CHECK(tu_now_ms() - t0 < 1500);
}

/* A hostile regular file: open fails, nothing is changed by the failed
 * open, and create replaces it (it is nobody's region). */
static void check_hostile_file(size_t size, const struct zinc_header *h,
			       const char *what)
{
	int fd = tu_make_object(NAME, size, h, 0600);
	unsigned char before[64] = { 0 }, after[64] = { 0 };
	if (size >= 64)
		CHECK_EQ(pread(fd, before, 64, 0), 64);
	check_open_fails(NAME, -EBADMSG, what);
	struct stat st;
	CHECK_SYS(fstat(fd, &st));
	CHECK_EQ(st.st_size, (off_t)size);
	if (size >= 64) {
		CHECK_EQ(pread(fd, after, 64, 0), 64);
		CHECK(memcmp(before, after, 64) == 0);
	}
	CHECK(tu_exists(NAME));

	zinc_region *r;
	CHECK_OK(zinc_create(NAME, tu_page(), &r));
	CHECK(tu_ino(NAME) != st.st_ino);
	CHECK_EQ(tu_hdr(r)->magic, ZINC_MAGIC);
	CHECK_EQ(zinc_capacity(r), tu_page());
	/* the old file was unlinked, not rewritten in place */
	struct stat st2;
	CHECK_SYS(fstat(fd, &st2));
	CHECK_EQ(st2.st_nlink, 0);
	CHECK_EQ(st2.st_size, (off_t)size);
	zinc_close(r);
	close(fd);
	CHECK(!tu_exists(NAME));
}

static void test_bad_headers(void)
{
	size_t page = tu_page();
	struct zinc_header h;

	h = tu_header(NAME, 2 * page, getpid());
	h.magic = 0x5A494E435F524548ULL;
	check_hostile_file(2 * page, &h, "wrong magic");

	h = tu_header(NAME, 2 * page, getpid());
	h.magic = ~0ULL;
	check_hostile_file(2 * page, &h, "magic all ones");

	h = tu_header(NAME, 2 * page, getpid());
	h.magic = __builtin_bswap64(ZINC_MAGIC);
	check_hostile_file(2 * page, &h, "byte-swapped magic");

	h = tu_header(NAME, 2 * page, getpid());
	h.version = 1;
	check_hostile_file(2 * page, &h, "version 1");

	h = tu_header(NAME, 2 * page, getpid());
	h.version = 3;
	check_hostile_file(2 * page, &h, "version 3");

	h = tu_header(NAME, 2 * page, getpid());
	h.version = 0x0200; /* 2 in the other byte order */
	check_hostile_file(2 * page, &h, "byte-swapped version");

	h = tu_header(NAME, 3 * page, getpid());
	h.capacity = 3 * page; /* should be size - page */
	check_hostile_file(3 * page, &h, "capacity == object size");

	h = tu_header(NAME, 3 * page, getpid());
	h.capacity = page;
	check_hostile_file(3 * page, &h, "capacity too small");

	h = tu_header(NAME, 3 * page, getpid());
	h.capacity = 0;
	check_hostile_file(3 * page, &h, "capacity 0");

	h = tu_header(NAME, 3 * page, getpid());
	h.capacity = UINT64_MAX - page + 1;
	check_hostile_file(3 * page, &h, "capacity huge");

	h = tu_header(NAME, 2 * page + 100, getpid());
	check_hostile_file(2 * page + 100, &h, "size not a page multiple");

	h = tu_header(NAME, page, getpid());
	check_hostile_file(page, &h, "one page only (capacity 0)");
	h.capacity = page;
	check_hostile_file(page, &h, "one page only (capacity page)");

	h = tu_header(NAME, 2 * page, getpid());
	check_hostile_file(100, &h, "100 bytes");
	check_hostile_file(64, &h, "64 bytes (just a header)");
	check_hostile_file(1, NULL, "1 byte");
	check_hostile_file(page - 1, &h, "page-1 bytes");

	/* magic 0 on a right-sized object: the create-race retry, then
	 * -EBADMSG. */
	h = tu_header(NAME, 2 * page, getpid());
	h.magic = 0;
	check_hostile_file(2 * page, &h, "magic 0 (never published)");

	/* zero length: a creator between open and fallocate, forever */
	check_hostile_file(0, NULL, "zero length");

	/* A sparse terabyte with garbage: no crash, no huge allocation. */
	h = tu_header(NAME, 2 * page, getpid());
	h.version = 9;
	check_hostile_file((size_t)1 << 40, &h, "1 TiB sparse, bad version");
	/* ... and with a "valid" header claiming the wrong capacity */
	h = tu_header(NAME, 2 * page, getpid());
	check_hostile_file((size_t)1 << 40, &h, "1 TiB sparse, capacity 1 page");
}

/* A real region truncated behind libzinc's back. */
static void test_truncated_region(void)
{
	size_t page = tu_page();
	off_t sizes[] = { 0, 1, 64, (off_t)page, (off_t)(page + page / 2),
			  (off_t)(3 * page) };
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		zinc_region *owner;
		CHECK_OK(zinc_create(NAME, 4 * page, &owner));
		char p[PATH_MAX];
		tu_path(NAME, p, sizeof(p));
		CHECK_SYS(truncate(p, sizes[i]));
		fprintf(stderr, "  truncated to %lld\n", (long long)sizes[i]);
		check_open_fails(NAME, -EBADMSG, "truncated region");
		/* The owner is alive: no replace. */
		zinc_region *r = (zinc_region *)1;
		CHECK_RC(zinc_create(NAME, page, &r), -EEXIST);
		CHECK(r == NULL);
		/* Restore the size (touching the owner's mapping beyond the
		 * end would SIGBUS: no library can prevent that); closing
		 * the (only) handle then still removes it. */
		CHECK_SYS(truncate(p, (off_t)(5 * page)));
		zinc_close(owner);
		CHECK(!tu_exists(NAME));
	}

	/* Grown behind its back: also refused (capacity != size - page). */
	zinc_region *owner;
	CHECK_OK(zinc_create(NAME, page, &owner));
	CHECK_SYS(ftruncate(zinc_fd(owner), (off_t)(4 * page)));
	check_open_fails(NAME, -EBADMSG, "grown region");
	zinc_close(owner);
	CHECK(!tu_exists(NAME));
}

static void check_not_a_file(const char *what)
{
	check_open_fails(NAME, -EBADMSG, what);
	zinc_region *r = (zinc_region *)1;
	CHECK_RC(zinc_create(NAME, tu_page(), &r), -EEXIST);
	CHECK(r == NULL);
	CHECK(tu_exists(NAME));
}

static void test_not_files(void)
{
	char p[PATH_MAX], target[PATH_MAX];
	tu_path(NAME, p, sizeof(p));

	CHECK_SYS(mkdir(p, 0700));
	check_not_a_file("directory");
	CHECK_SYS(rmdir(p));

	CHECK_SYS(mkfifo(p, 0600));
	check_not_a_file("FIFO");
	CHECK_SYS(unlink(p));

	int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	CHECK_SYS(s);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	CHECK(strlen(p) < sizeof(sa.sun_path));
	strcpy(sa.sun_path, p);
	CHECK_SYS(bind(s, (struct sockaddr *)&sa, sizeof(sa)));
	check_not_a_file("unix socket");
	close(s);
	CHECK_SYS(unlink(p));

	/* Symlink to a perfectly good region: never followed. */
	zinc_region *good;
	CHECK_OK(zinc_create("target", tu_page(), &good));
	tu_path("target", target, sizeof(target));
	CHECK_SYS(symlink(target, p));
	check_not_a_file("symlink to a region");
	/* zinc_unlink removes the link, not the target */
	CHECK_OK(zinc_unlink(NAME));
	CHECK(!tu_exists(NAME));
	CHECK(tu_exists("target"));
	CHECK_EQ(zinc_removed(good), 0);

	/* Symlink to a file outside the directory. */
	char outside[PATH_MAX];
	snprintf(outside, sizeof(outside), "%s/outside", tu_tmpdir);
	int fd = open(outside, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	CHECK_SYS(fd);
	CHECK_SYS(write(fd, "precious", 8));
	CHECK_SYS(symlink(outside, p));
	check_not_a_file("symlink outside");
	CHECK_OK(zinc_unlink(NAME));
	struct stat st;
	CHECK_SYS(fstat(fd, &st));
	CHECK_EQ(st.st_nlink, 1);
	CHECK_EQ(st.st_size, 8);
	close(fd);
	CHECK_SYS(unlink(outside));

	/* Dangling symlink. */
	CHECK_SYS(symlink("/nonexistent/zinc", p));
	check_not_a_file("dangling symlink");
	CHECK_SYS(unlink(p));

	zinc_close(good);
}

/* The create race: open sees a right-sized object whose magic is still 0
 * (or a zero-length one) and waits briefly for the creator to publish. */
struct racer {
	pid_t tid;
	int rc;
	zinc_region *r;
};

static void *open_thread(void *arg)
{
	struct racer *x = arg;
	__atomic_store_n(&x->tid, tu_gettid(), __ATOMIC_RELEASE);
	x->rc = zinc_open(NAME, &x->r);
	return NULL;
}

/* 1 when the thread sleeps in libzinc's retry pause (nanosleep). */
static int in_retry_pause(pid_t tid)
{
	char wchan[128];
	if (tu_read_proc(getpid(), tid, "wchan", wchan, sizeof(wchan)))
		return 0;
	return strstr(wchan, "nanosleep") != NULL;
}

static int race_once(int zero_length)
{
	size_t page = tu_page();
	struct zinc_header h = tu_header(NAME, 2 * page, getpid());
	h.magic = 0;
	int fd = tu_make_object(NAME, zero_length ? 0 : 2 * page,
				zero_length ? NULL : &h, 0600);
	struct racer x = { 0 };
	pthread_t t;
	CHECK_EQ(pthread_create(&t, NULL, open_thread, &x), 0);
	pid_t tid;
	while (!(tid = __atomic_load_n(&x.tid, __ATOMIC_ACQUIRE)))
		tu_pause_us(50);
	/* Publish once the opener is in its retry loop. */
	int64_t deadline = tu_now_ms() + 2000;
	while (!in_retry_pause(tid) && tu_now_ms() < deadline)
		sched_yield();
	if (zero_length) {
		CHECK_SYS(ftruncate(fd, (off_t)(2 * page)));
		h.magic = 0;
		CHECK_EQ(pwrite(fd, &h, sizeof(h), 0), (long)sizeof(h));
	}
	void *m = mmap(NULL, 2 * page, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	CHECK(m != MAP_FAILED);
	__atomic_store_n(&((struct zinc_header *)m)->magic, ZINC_MAGIC,
			 __ATOMIC_RELEASE);
	CHECK_EQ(pthread_join(t, NULL), 0);
	int ok = x.rc == 0;
	if (ok) {
		CHECK_EQ(zinc_capacity(x.r), page);
		CHECK_EQ(tu_hdr(x.r)->ref_count, 2);
		zinc_close(x.r);
	} else {
		CHECK_RC(x.rc, -EBADMSG); /* the window was missed: retry */
	}
	munmap(m, 2 * page);
	close(fd);
	char p[PATH_MAX];
	tu_path(NAME, p, sizeof(p));
	unlink(p);
	return ok;
}

static void test_create_race_retry(void)
{
	int got_magic = 0, got_zero = 0;
	for (int i = 0; i < 50 && !got_magic; i++)
		got_magic = race_once(0);
	for (int i = 0; i < 50 && !got_zero; i++)
		got_zero = race_once(1);
	CHECK(got_magic);
	CHECK(got_zero);
}

int main(void)
{
	tu_init();
	TU_RUN(test_bad_headers);
	TU_RUN(test_truncated_region);
	TU_RUN(test_not_files);
	TU_RUN(test_create_race_retry);
	return T_PASS;
}
