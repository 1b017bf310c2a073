/* SPDX-License-Identifier: MIT */
/*
 * Who may create and open: -EEXIST while the owner is alive (in this or
 * another process), -ENOENT for an absent region, -EPERM for a 0600 region
 * of another user (a child that switched to "nobody").
 */
#include <grp.h>
#include <pwd.h>
#include "testutil.h"

static void test_enoent(void)
{
	zinc_region *r = (zinc_region *)1;
	struct zinc_info info;
	CHECK_RC(zinc_open("absent", &r), -ENOENT);
	CHECK(r == NULL);
	r = (zinc_region *)1;
	CHECK_RC(zinc_open_ex("absent", ZINC_OPEN_OBSERVE, &r), -ENOENT);
	CHECK(r == NULL);
	CHECK_RC(zinc_stat("absent", &info), -ENOENT);
	CHECK_RC(zinc_unlink("absent"), -ENOENT);
	/* A region directory that does not exist. */
	char dir[PATH_MAX];
	snprintf(dir, sizeof(dir), "%s/nonexistent", tu_tmpdir);
	setenv("ZINC_SHM_DIR", dir, 1);
	CHECK_RC(zinc_open("absent", &r), -ENOENT);
	CHECK_RC(zinc_create("absent", tu_page(), &r), -ENOENT);
	CHECK(r == NULL);
	setenv("ZINC_SHM_DIR", tu_dir, 1);
	CHECK_NO_OBJECTS();
}

static void test_eexist_same_process(void)
{
	zinc_region *a, *b = (zinc_region *)1;
	CHECK_OK(zinc_create("dup", tu_page(), &a));
	ino_t ino = tu_ino("dup");
	CHECK_RC(zinc_create("dup", tu_page(), &b), -EEXIST);
	CHECK(b == NULL);
	CHECK_RC(zinc_create("dup", 2 * tu_page(), &b), -EEXIST);
	/* The failed creates changed nothing. */
	CHECK_EQ(tu_ino("dup"), ino);
	CHECK_EQ(zinc_removed(a), 0);
	CHECK_EQ(tu_hdr(a)->ref_count, 1);
	CHECK_EQ(tu_hdr(a)->owner_pid, getpid());
	/* A reader does not make the name creatable. */
	zinc_region *rd;
	CHECK_OK(zinc_open("dup", &rd));
	CHECK_RC(zinc_create("dup", tu_page(), &b), -EEXIST);
	zinc_close(rd);
	zinc_close(a);
}

static void test_eexist_other_process(void)
{
	int to_child[2], to_parent[2];
	tu_pipe(to_child);
	tu_pipe(to_parent);
	pid_t pid = tu_fork();
	if (pid == 0) {
		zinc_region *r;
		CHECK_OK(zinc_create("theirs", 2 * tu_page(), &r));
		memcpy(zinc_ptr(r), "child data", 11);
		tu_put(to_parent[1], 'c');
		CHECK_GET(to_child[0], 'x'); /* close the owner handle */
		zinc_close(r);
		tu_put(to_parent[1], 'd');
		CHECK_GET(to_child[0], 'q');
		_exit(0);
	}
	CHECK_GET(to_parent[0], 'c');
	zinc_region *r = (zinc_region *)1, *rd;
	CHECK_RC(zinc_create("theirs", tu_page(), &r), -EEXIST);
	CHECK(r == NULL);
	CHECK_RC(zinc_create("theirs", 2 * tu_page(), &r), -EEXIST);
	CHECK_OK(zinc_open("theirs", &rd));
	CHECK(memcmp(zinc_ptr(rd), "child data", 11) == 0);
	CHECK_EQ(tu_hdr(rd)->owner_pid, pid);
	struct zinc_info info;
	CHECK_OK(zinc_stat("theirs", &info));
	CHECK_EQ(info.owner_alive, 1);
	CHECK_EQ(info.owner_pid, pid);

	/* The owner closes; our reader keeps the name, but the name is now
	 * free for a new owner: create replaces and our handle sees -EIDRM. */
	tu_put(to_child[1], 'x');
	CHECK_GET(to_parent[0], 'd');
	CHECK(tu_exists("theirs"));
	CHECK_OK(zinc_stat("theirs", &info));
	CHECK_EQ(info.owner_alive, 0);
	CHECK_EQ(info.in_use, 1);
	CHECK_OK(zinc_create("theirs", tu_page(), &r));
	CHECK_RC(zinc_try_wait(rd), -EIDRM);
	CHECK_EQ(zinc_capacity(r), tu_page());
	CHECK_EQ(tu_hdr(r)->owner_pid, getpid());
	tu_put(to_child[1], 'q');
	CHECK_CHILD_OK(pid);
	zinc_close(rd);
	CHECK(tu_exists("theirs"));
	zinc_close(r);
	close(to_child[0]); close(to_child[1]);
	close(to_parent[0]); close(to_parent[1]);
}

static void test_eperm(void)
{
	if (geteuid() != 0) {
		fprintf(stderr, "  not root: EPERM test needs another user\n");
		return;
	}
	struct passwd *pw = getpwnam("nobody");
	uid_t uid = pw ? pw->pw_uid : 65534;
	gid_t gid = pw ? pw->pw_gid : 65534;

	zinc_region *r;
	CHECK_OK(zinc_create("mine", tu_page(), &r));
	memcpy(zinc_ptr(r), "secret", 7);
	char p[PATH_MAX];
	struct stat st;
	tu_path("mine", p, sizeof(p));
	CHECK_SYS(stat(p, &st));
	CHECK_EQ(st.st_mode & 0777, 0600);
	CHECK_EQ(st.st_uid, 0);

	pid_t pid = tu_fork();
	if (pid == 0) {
		CHECK_SYS(setgroups(0, NULL));
		CHECK_SYS(setresgid(gid, gid, gid));
		CHECK_SYS(setresuid(uid, uid, uid));
		CHECK_EQ(geteuid(), uid);
		zinc_region *x = (zinc_region *)1;
		struct zinc_info info;
		CHECK_RC(zinc_open("mine", &x), -EPERM);
		CHECK(x == NULL);
		x = (zinc_region *)1;
		CHECK_RC(zinc_open_ex("mine", ZINC_OPEN_OBSERVE, &x), -EPERM);
		CHECK(x == NULL);
		CHECK_RC(zinc_stat("mine", &info), -EPERM);
		x = (zinc_region *)1;
		CHECK_RC(zinc_create("mine", tu_page(), &x), -EPERM);
		CHECK(x == NULL);
		CHECK_RC(zinc_unlink("mine"), -EPERM);
		/* The directory is not writable by nobody either. */
		CHECK_RC(zinc_create("notmine", tu_page(), &x), -EPERM);
		_exit(0);
	}
	CHECK_CHILD_OK(pid);
	/* Nothing changed. */
	CHECK(tu_exists("mine"));
	CHECK_EQ(zinc_removed(r), 0);
	CHECK_EQ(tu_hdr(r)->ref_count, 1);
	CHECK(memcmp(zinc_ptr(r), "secret", 7) == 0);
	CHECK(!tu_exists("notmine"));

	/* Even once the owner is gone (a stale region), another user cannot
	 * replace it. */
	zinc_region *rd;
	CHECK_OK(zinc_open("mine", &rd));
	zinc_close(r);
	CHECK(tu_exists("mine"));
	pid = tu_fork();
	if (pid == 0) {
		CHECK_SYS(setgroups(0, NULL));
		CHECK_SYS(setresgid(gid, gid, gid));
		CHECK_SYS(setresuid(uid, uid, uid));
		zinc_region *x;
		CHECK_RC(zinc_create("mine", tu_page(), &x), -EPERM);
		_exit(0);
	}
	CHECK_CHILD_OK(pid);
	CHECK_EQ(zinc_removed(rd), 0);
	zinc_close(rd);
}

int main(void)
{
	tu_init();
	TU_RUN(test_enoent);
	TU_RUN(test_eexist_same_process);
	TU_RUN(test_eexist_other_process);
	TU_RUN(test_eperm);
	return T_PASS;
}
