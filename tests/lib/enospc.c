/* SPDX-License-Identifier: MIT */
/*
 * A full region directory: on a 1 MiB tmpfs of our own, a create that does
 * not fit fails with -ENOSPC and leaves no object (and no used space)
 * behind; existing regions keep working; and because create reserves the
 * memory, a region's every byte can be written even when the filesystem is
 * completely full (no SIGBUS).  Runs alone (mounts a tmpfs).
 */
#include "testutil.h"

static void test_enospc(void)
{
	size_t page = tu_page();
	zinc_region *small, *x = (zinc_region *)1;
	CHECK_OK(zinc_create("small", 16 * page, &small));
	memset(zinc_ptr(small), 0x5a, 16 * page);
	uint64_t before = tu_free_bytes();
	printf("  free after a 17-page region: %llu bytes\n",
	       (unsigned long long)before);

	/* Far too big. */
	CHECK_RC(zinc_create("big", 2u << 20, &x), -ENOSPC);
	CHECK(x == NULL);
	CHECK(!tu_exists("big"));
	CHECK_EQ(tu_free_bytes(), before);
	/* Just too big: the object would be one page more than what is
	 * free, so fallocate fails part way; that part is given back. */
	size_t cap = (size_t)(before / page) * page;
	CHECK_RC(zinc_create("big", cap, &x), -ENOSPC);
	CHECK(!tu_exists("big"));
	CHECK_EQ(tu_free_bytes(), before);
	CHECK_EQ(tu_count_objects(), 1);

	/* The existing region keeps working. */
	zinc_region *r;
	CHECK_OK(zinc_open("small", &r));
	zinc_notify(small);
	CHECK_OK(zinc_try_wait(r));
	for (size_t i = 0; i < 16 * page; i++)
		CHECK_EQ(zinc_ptr(r)[i], 0x5a);
	zinc_close(r);

	/* A region that fits exactly (object = all that is free). */
	CHECK_OK(zinc_create("exact", cap - page, &x));
	CHECK_EQ(tu_free_bytes(), 0);
	memset(zinc_ptr(x), 1, cap - page);
	zinc_region *y = (zinc_region *)1;
	CHECK_RC(zinc_create("more", page, &y), -ENOSPC);
	CHECK(y == NULL);
	CHECK(!tu_exists("more"));
	zinc_close(x);
	CHECK_EQ(tu_free_bytes(), before);
	zinc_close(small);
}

/* Fill the filesystem after the region exists, then write all of it in a
 * child: a SIGBUS would show as a signal exit. */
static void test_no_sigbus_when_full(void)
{
	size_t page = tu_page();
	zinc_region *r;
	CHECK_OK(zinc_create("reserved", 64 * page, &r));
	char filler[PATH_MAX];
	TU_FMT(filler, sizeof(filler), "%s/filler", tu_dir);
	int fd = open(filler, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
	CHECK_SYS(fd);
	char buf[4096];
	memset(buf, 7, sizeof(buf));
	while (write(fd, buf, sizeof(buf)) > 0)
		;
	CHECK_EQ(errno, ENOSPC);
	close(fd);
	CHECK_EQ(tu_free_bytes(), 0);

	pid_t pid = tu_fork();
	if (pid == 0) {
		zinc_region *c;
		CHECK_OK(zinc_open("reserved", &c));
		memset(zinc_ptr(c), 0xee, zinc_capacity(c));
		zinc_notify(c);
		zinc_close(c);
		_exit(0);
	}
	CHECK_CHILD_OK(pid); /* 128 + SIGBUS if the memory was not reserved */
	for (size_t i = 0; i < 64 * page; i++)
		CHECK_EQ(zinc_ptr(r)[i], 0xee);
	CHECK_OK(zinc_try_wait(r));
	/* and nothing new fits */
	zinc_region *x;
	CHECK_RC(zinc_create("none", page, &x), -ENOSPC);
	CHECK(!tu_exists("none"));
	CHECK_SYS(unlink(filler));
	CHECK_OK(zinc_create("none", page, &x));
	zinc_close(x);
	zinc_close(r);
}

int main(void)
{
	tu_init();
	int rc = tu_mount_tmpfs("1m");
	if (rc == -EPERM)
		tu_skip("cannot mount a tmpfs (not root?)");
	CHECK_OK(rc);
	TU_RUN(test_enospc);
	TU_RUN(test_no_sigbus_when_full);
	return T_PASS;
}
