/* SPDX-License-Identifier: MIT */
/*
 * zinc_recreate: an owner replaces its region by one of another capacity
 * under the same name, all or nothing.  Success carries the data (up to the
 * smaller capacity), the counter and the mode; the old region's waiters get
 * -EIDRM and closing the old handle leaves the new name alone.  Failures
 * (bad arguments, not the owner, name gone or taken over, ENOSPC on a full
 * tmpfs) change nothing and leave no temporary object.  Runs alone (mounts
 * a tmpfs).
 */
#include "testutil.h"

/* Every entry of the region directory, whatever its name. */
static int count_entries(void)
{
	DIR *d = opendir(tu_dir);
	int n = 0;
	struct dirent *e;
	CHECK(d != NULL);
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

static void fill(uint8_t *p, size_t len)
{
	for (size_t i = 0; i < len; i++)
		p[i] = (uint8_t)(i * 7 + 1);
}

static void check_fill(const uint8_t *p, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (p[i] != (uint8_t)(i * 7 + 1))
			CHECK_EQ(p[i], (uint8_t)(i * 7 + 1));
}

static void test_grow(void)
{
	size_t page = tu_page();
	zinc_region *owner, *n, *r;
	CHECK_OK(zinc_create("rc", 2 * page, &owner));
	CHECK_SYS(fchmod(zinc_fd(owner), 0640));
	fill(zinc_ptr(owner), 2 * page);
	zinc_notify(owner);
	zinc_notify(owner);
	ino_t old_ino = tu_ino("rc");

	/* A reader in another process sleeps on the old region. */
	int p[2];
	tu_pipe(p);
	pid_t pid = tu_fork();
	if (pid == 0) {
		zinc_region *c;
		CHECK_OK(zinc_open("rc", &c));
		CHECK_OK(zinc_try_wait(c));
		tu_put(p[1], 'o');
		CHECK_RC(zinc_wait(c, UINT32_MAX), -EIDRM);
		zinc_close(c);
		_exit(0);
	}
	CHECK_GET(p[0], 'o');
	CHECK_ASLEEP(pid);

	CHECK_OK(zinc_recreate(owner, 4 * page, &n));
	CHECK_CHILD_OK(pid);
	CHECK(n != owner);
	CHECK_EQ(zinc_capacity(n), 4 * page);
	CHECK(tu_ino("rc") != old_ino);
	CHECK_EQ(tu_ino("rc"), tu_handle_ino(n));
	check_fill(zinc_ptr(n), 2 * page);
	for (size_t i = 2 * page; i < 4 * page; i++)
		CHECK_EQ(zinc_ptr(n)[i], 0);
	CHECK_EQ(zinc_seq(n), 2);
	struct stat st;
	CHECK_SYS(fstat(zinc_fd(n), &st));
	CHECK_EQ(st.st_mode & 07777, 0640);
	CHECK_EQ(st.st_blocks * 512, (off_t)(5 * page)); /* reserved */
	struct zinc_info info;
	CHECK_OK(zinc_handle_stat(n, &info));
	CHECK_EQ(info.ref_count, 1);
	CHECK_EQ(info.owner_alive, 1);
	CHECK_EQ(info.owner_pid, getpid());
	CHECK_EQ(count_entries(), 1);

	/* The old handle: removed, and its close leaves the new name. */
	CHECK_EQ(zinc_removed(owner), 1);
	CHECK_RC(zinc_wait(owner, 0), -EIDRM);
	zinc_region *again = (zinc_region *)1;
	CHECK_RC(zinc_recreate(owner, page, &again), -ENOENT);
	CHECK(again == NULL);
	zinc_close(owner);
	CHECK_EQ(tu_ino("rc"), tu_handle_ino(n));

	/* Others find the new region by name; its owner is alive. */
	CHECK_OK(zinc_open("rc", &r));
	CHECK_EQ(zinc_capacity(r), 4 * page);
	CHECK_OK(zinc_try_wait(r)); /* the carried counter is pending */
	check_fill(zinc_ptr(r), 2 * page);
	zinc_region *x;
	CHECK_RC(zinc_create("rc", page, &x), -EEXIST);
	zinc_close(r);
	CHECK(tu_exists("rc"));
	zinc_close(n);
	CHECK(!tu_exists("rc"));
}

static void test_shrink(void)
{
	size_t page = tu_page();
	zinc_region *owner, *n;
	CHECK_OK(zinc_create("rs", 4 * page, &owner));
	fill(zinc_ptr(owner), 4 * page);
	CHECK_OK(zinc_recreate(owner, page, &n));
	zinc_close(owner);
	CHECK_EQ(zinc_capacity(n), page);
	check_fill(zinc_ptr(n), page);
	struct stat st;
	CHECK_SYS(fstat(zinc_fd(n), &st));
	CHECK_EQ(st.st_size, (off_t)(2 * page));
	/* and again, from the new owner handle */
	zinc_region *m;
	CHECK_OK(zinc_recreate(n, 3 * page, &m));
	zinc_close(n);
	check_fill(zinc_ptr(m), page);
	CHECK_EQ(count_entries(), 1);
	zinc_close(m);
}

static void test_refused(void)
{
	size_t page = tu_page();
	zinc_region *owner, *r, *x = (zinc_region *)1;
	CHECK_OK(zinc_create("rf", page, &owner));
	ino_t ino = tu_ino("rf");
	CHECK_RC(zinc_recreate(NULL, page, &x), -EINVAL);
	CHECK(x == NULL);
	CHECK_RC(zinc_recreate(owner, page, NULL), -EINVAL);
	CHECK_RC(zinc_recreate(owner, 0, &x), -EINVAL);
	CHECK_RC(zinc_recreate(owner, page + 1, &x), -EINVAL);
	CHECK_RC(zinc_recreate(owner, UINTPTR_MAX - page + 1, &x), -EINVAL);
	CHECK_OK(zinc_open("rf", &r));
	CHECK_RC(zinc_recreate(r, 2 * page, &x), -EPERM);
	zinc_close(r);
	CHECK_EQ(tu_ino("rf"), ino);

	/* The name was removed: nothing is made. */
	CHECK_OK(zinc_unlink("rf"));
	CHECK_RC(zinc_recreate(owner, 2 * page, &x), -ENOENT);
	CHECK(x == NULL);
	CHECK(!tu_exists("rf"));
	CHECK_EQ(count_entries(), 0);
	zinc_close(owner);

	/* The name was taken over by another region (removed with plain
	 * unlink, so the old region does not know): that one stays. */
	CHECK_OK(zinc_create("rf", page, &owner));
	char path[PATH_MAX];
	tu_path("rf", path, sizeof(path));
	CHECK_SYS(unlink(path));
	int p[2], q[2];
	tu_pipe(p);
	tu_pipe(q);
	pid_t pid = tu_fork();
	if (pid == 0) {
		zinc_region *other;
		CHECK_OK(zinc_create("rf", 2 * page, &other));
		zinc_ptr(other)[0] = 'x';
		tu_put(p[1], 'c');
		CHECK_GET(q[0], 'q');
		zinc_close(other);
		_exit(0);
	}
	CHECK_GET(p[0], 'c');
	ino = tu_ino("rf");
	CHECK_RC(zinc_recreate(owner, 3 * page, &x), -ENOENT);
	CHECK_EQ(tu_ino("rf"), ino);
	CHECK_EQ(count_entries(), 1);
	CHECK_OK(zinc_open("rf", &r));
	CHECK_EQ(zinc_capacity(r), 2 * page);
	CHECK_EQ(zinc_ptr(r)[0], 'x');
	zinc_close(r);
	zinc_close(owner);
	CHECK_EQ(tu_ino("rf"), ino);
	tu_put(q[1], 'q');
	CHECK_CHILD_OK(pid);
	CHECK(!tu_exists("rf"));
}

/* On a full tmpfs: -ENOSPC, and the old region, its data and its waiters
 * are as they were, with no stray object. */
static void test_enospc(void)
{
	size_t page = tu_page();
	zinc_region *owner, *r, *x = (zinc_region *)1;
	CHECK_OK(zinc_create("full", 64 * page, &owner));
	fill(zinc_ptr(owner), 64 * page);
	ino_t ino = tu_ino("full");
	CHECK_OK(zinc_open("full", &r));
	uint64_t before = tu_free_bytes();
	size_t cap = (size_t)(before / page) * page; /* one page too many */
	CHECK_RC(zinc_recreate(owner, cap, &x), -ENOSPC);
	CHECK(x == NULL);
	CHECK_RC(zinc_recreate(owner, 4u << 20, &x), -ENOSPC);
	CHECK_EQ(tu_free_bytes(), before);
	CHECK_EQ(count_entries(), 1);
	CHECK_EQ(tu_ino("full"), ino);
	CHECK_EQ(zinc_removed(owner), 0);
	CHECK_EQ(zinc_removed(r), 0);
	check_fill(zinc_ptr(r), 64 * page);
	zinc_notify(owner);
	CHECK_OK(zinc_wait(r, 1000));

	/* What fits still works. */
	zinc_region *n;
	CHECK_OK(zinc_recreate(owner, 8 * page, &n));
	CHECK_RC(zinc_wait(r, 0), -EIDRM);
	zinc_close(r);
	zinc_close(owner);
	check_fill(zinc_ptr(n), 8 * page);
	CHECK_EQ(count_entries(), 1);
	zinc_close(n);
	CHECK_EQ(count_entries(), 0);
}

int main(void)
{
	tu_init();
	TU_RUN(test_grow);
	TU_RUN(test_shrink);
	TU_RUN(test_refused);
	int rc = tu_mount_tmpfs("1m");
	if (rc == -EPERM)
		tu_skip("cannot mount a tmpfs (not root?)");
	CHECK_OK(rc);
	TU_RUN(test_enospc);
	return T_PASS;
}
