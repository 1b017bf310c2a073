/* SPDX-License-Identifier: MIT */
/*
 * The removal claim (ext offset 80, see zinc(7)): a remover that died
 * holding it does not wedge the name.  A claim whose claimer holds no write
 * lock on byte 2 is taken over once it is CLAIM_STALE (1 s) old; a live
 * claimer (holding the lock) is never overtaken: unlink and open give
 * -EBUSY and create -EEXIST after polling about 1.5 s, and close leaves the
 * name to it.
 */
#include "testutil.h"

#define CLAIM_OFFSET 80

static uint64_t realtime_ms(void)
{
	return (uint64_t)tu_realtime_ns() / 1000000;
}

/* The claim word as a claimer made at `ms` writes it. */
static uint64_t token_at(uint64_t ms)
{
	return ms << 20 | 0x2345;
}

static uint64_t *claim_word(zinc_region *r)
{
	return (uint64_t *)(void *)((char *)tu_hdr(r) + CLAIM_OFFSET);
}

/* A claim left by a remover that died long ago: taken over at once. */
static void test_old_claim(void)
{
	zinc_region *o;
	CHECK_OK(zinc_create("old", tu_page(), &o));
	*claim_word(o) = token_at(realtime_ms() - 5000);
	int64_t t0 = tu_now_ms();
	CHECK_OK(zinc_unlink("old"));
	CHECK(tu_now_ms() - t0 < 500);
	CHECK(!tu_exists("old"));
	CHECK_EQ(*claim_word(o), 0); /* given back after the removal */
	zinc_close(o);

	/* the last close takes it over too */
	CHECK_OK(zinc_create("old", tu_page(), &o));
	*claim_word(o) = token_at(realtime_ms() - 5000);
	zinc_close(o);
	CHECK(!tu_exists("old"));
}

/* A claimer that died just now: its claim holds for about a second. */
static void test_fresh_dead_claim(void)
{
	zinc_region *o;
	CHECK_OK(zinc_create("fresh", tu_page(), &o));
	*claim_word(o) = token_at(realtime_ms());
	int64_t t0 = tu_now_ms();
	CHECK_OK(zinc_unlink("fresh"));
	int64_t ms = tu_now_ms() - t0;
	printf("  unlink took over a fresh dead claim after %lld ms\n",
	       (long long)ms);
	CHECK_RANGE(ms, 800, 10000);
	CHECK(!tu_exists("fresh"));
	zinc_close(o);
}

/* A live claimer: a process with write access that holds the claim and
 * the write lock on byte 2 (as a stopped remover would). */
static void test_live_claimer(void)
{
	zinc_region *o, *x = (zinc_region *)1;
	CHECK_OK(zinc_create("live", tu_page(), &o));
	ino_t ino = tu_ino("live");
	int ready[2];
	tu_pipe(ready);
	pid_t pid = tu_fork();
	if (pid == 0) {
		char p[PATH_MAX];
		tu_path("live", p, sizeof(p));
		int fd = open(p, O_RDWR | O_CLOEXEC);
		CHECK_SYS(fd);
		struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET,
				    .l_start = 2, .l_len = 1 };
		CHECK_SYS(fcntl(fd, F_OFD_SETLK, &fl));
		uint64_t t = token_at(realtime_ms() - 60000);
		CHECK_EQ(pwrite(fd, &t, 8, CLAIM_OFFSET), 8);
		tu_put(ready[1], 'c');
		pause();
		_exit(0);
	}
	CHECK_GET(ready[0], 'c');
	int64_t t0 = tu_now_ms();
	CHECK_RC(zinc_unlink("live"), -EBUSY);
	CHECK_RC(zinc_open("live", &x), -EBUSY);
	CHECK(x == NULL);
	CHECK(tu_now_ms() - t0 < 10000);
	CHECK_EQ(tu_ino("live"), ino);
	CHECK_EQ(zinc_removed(o), 0);
	/* The owner's close leaves the name to the claimer, at once. */
	t0 = tu_now_ms();
	zinc_close(o);
	CHECK(tu_now_ms() - t0 < 500);
	CHECK_EQ(tu_ino("live"), ino);
	CHECK_RC(zinc_create("live", tu_page(), &x), -EEXIST);
	/* It dies: its lock goes, and its (old) claim is taken over. */
	tu_kill(pid);
	CHECK_OK(zinc_create("live", tu_page(), &x));
	CHECK(tu_ino("live") != ino);
	zinc_close(x);
	CHECK(!tu_exists("live"));
	close(ready[0]);
	close(ready[1]);
}

int main(void)
{
	tu_init();
	TU_RUN(test_old_claim);
	TU_RUN(test_fresh_dead_claim);
	TU_RUN(test_live_claimer);
	return T_PASS;
}
