/* SPDX-License-Identifier: MIT */
/*
 * zinc_list (every object with a valid region name, early stop, missing
 * directory) and zinc_stat / zinc_handle_stat (capacity, seq, ref_count,
 * waiters, owner pid, created_at, flags, owner_alive, in_use, foreign),
 * across processes; zinc_stat does not count as a handle.
 */
#include "testutil.h"

struct seen {
	int n;
	char names[16][64];
};

static int collect(const char *name, void *arg)
{
	struct seen *s = arg;
	if (s->n < 16)
		snprintf(s->names[s->n], 64, "%s", name);
	s->n++;
	return 0;
}

static int has(const struct seen *s, const char *name)
{
	for (int i = 0; i < s->n && i < 16; i++)
		if (!strcmp(s->names[i], name))
			return 1;
	return 0;
}

static int stop_at_first(const char *name, void *arg)
{
	(void)name;
	++*(int *)arg;
	return 7;
}

static void test_list(void)
{
	struct seen s = { 0 };
	CHECK_RC(zinc_list(collect, &s), 0);
	CHECK_EQ(s.n, 0);

	zinc_region *a, *b, *c;
	CHECK_OK(zinc_create("alpha", tu_page(), &a));
	CHECK_OK(zinc_create("beta", tu_page(), &b));
	CHECK_OK(zinc_create("Gamma-3_x", tu_page(), &c));
	/* Things that are not region names are skipped ... */
	char p[PATH_MAX];
	const char *skip[] = { "zinc_", "zinc_a b", "zinc_a.b", "other",
			       "zinc", "Zinc_upper" };
	for (size_t i = 0; i < sizeof(skip) / sizeof(skip[0]); i++) {
		TU_FMT(p, sizeof(p), "%s/%s", tu_dir, skip[i]);
		int fd = open(p, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
		CHECK_SYS(fd);
		close(fd);
	}
	/* ... but contents are not checked: a junk file with a valid name
	 * is listed (open tells the truth). */
	close(tu_make_object("junk", 10, NULL, 0600));

	s.n = 0;
	CHECK_RC(zinc_list(collect, &s), 4);
	CHECK_EQ(s.n, 4);
	CHECK(has(&s, "alpha"));
	CHECK(has(&s, "beta"));
	CHECK(has(&s, "Gamma-3_x"));
	CHECK(has(&s, "junk"));

	int calls = 0;
	CHECK_RC(zinc_list(stop_at_first, &calls), 7);
	CHECK_EQ(calls, 1);

	/* Removed regions disappear from the list. */
	zinc_close(b);
	s.n = 0;
	CHECK_RC(zinc_list(collect, &s), 3);
	CHECK(!has(&s, "beta"));

	/* The region directory comes from ZINC_SHM_DIR. */
	char other[PATH_MAX];
	snprintf(other, sizeof(other), "%s/other-dir", tu_tmpdir);
	CHECK_SYS(mkdir(other, 0755));
	setenv("ZINC_SHM_DIR", other, 1);
	s.n = 0;
	CHECK_RC(zinc_list(collect, &s), 0);
	CHECK_SYS(rmdir(other));
	CHECK_RC(zinc_list(collect, &s), -ENOENT);
	setenv("ZINC_SHM_DIR", tu_dir, 1);

	zinc_close(a);
	zinc_close(c);
	CHECK_OK(zinc_unlink("junk"));
	for (size_t i = 0; i < sizeof(skip) / sizeof(skip[0]); i++) {
		TU_FMT(p, sizeof(p), "%s/%s", tu_dir, skip[i]);
		CHECK_SYS(unlink(p));
	}
}

static void test_stat_local(void)
{
	size_t page = tu_page();
	int64_t t0 = tu_realtime_ns();
	zinc_region *o;
	CHECK_OK(zinc_create("st", 3 * page, &o));
	int64_t t1 = tu_realtime_ns();
	struct zinc_info i;
	memset(&i, 0xa5, sizeof(i));
	CHECK_OK(zinc_stat("st", &i));
	CHECK_EQ(i.capacity, 3 * page);
	CHECK_RANGE(i.created_at, t0, t1);
	CHECK_EQ(i.seq, 0);
	CHECK_EQ(i.ref_count, 1); /* zinc_stat itself is not counted */
	CHECK_EQ(i.waiters, 0);
	CHECK_EQ(i.owner_pid, getpid());
	CHECK_EQ(i.flags, 0);
	CHECK_EQ(i.owner_alive, 1);
	CHECK_EQ(i.in_use, 1);
	CHECK_EQ(i.others, 1); /* by name: the owner's handle */
	CHECK_EQ(i.foreign, 0);
	CHECK_EQ(tu_hdr(o)->ref_count, 1);
	/* asked about the owner's own handle: nobody else holds it */
	struct zinc_info oi;
	CHECK_OK(zinc_handle_stat(o, &oi));
	CHECK_EQ(oi.in_use, 1);
	CHECK_EQ(oi.others, 0);

	zinc_notify(o);
	zinc_notify(o);
	zinc_region *r;
	CHECK_OK(zinc_open("st", &r));
	CHECK_OK(zinc_try_wait(r));
	struct tu_waiter w = { .r = r, .timeout = 20000 };
	tu_waiter_start(&w);
	CHECK_THREAD_ASLEEP(w.tid);
	CHECK_OK(zinc_stat("st", &i));
	CHECK_EQ(i.seq, 2);
	CHECK_EQ(i.ref_count, 2);
	CHECK_EQ(i.waiters, 1);
	zinc_notify(o);
	CHECK_OK(tu_waiter_join(&w));

	/* handle_stat agrees, from either handle */
	struct zinc_info hi;
	CHECK_OK(zinc_handle_stat(r, &hi));
	CHECK_EQ(hi.seq, 3);
	CHECK_EQ(hi.ref_count, 2);
	CHECK_EQ(hi.waiters, 0);
	CHECK_EQ(hi.owner_alive, 1);
	CHECK_EQ(hi.in_use, 1);
	CHECK_EQ(hi.others, 1); /* the owner's handle */
	CHECK_OK(zinc_handle_stat(o, &oi));
	CHECK_EQ(oi.others, 1); /* the reader's handle */
	CHECK_EQ(hi.capacity, 3 * page);
	CHECK_EQ(hi.owner_pid, getpid());

	/* owner closed, reader open */
	zinc_close(o);
	CHECK_OK(zinc_stat("st", &i));
	CHECK_EQ(i.owner_alive, 0);
	CHECK_EQ(i.in_use, 1);
	CHECK_EQ(i.ref_count, 1);
	CHECK_EQ(i.flags, 0);
	CHECK_OK(zinc_handle_stat(r, &hi));
	CHECK_EQ(hi.owner_alive, 0);
	CHECK_EQ(hi.others, 0);
	/* removed: the flag shows on the old handle */
	CHECK_OK(zinc_unlink("st"));
	CHECK_OK(zinc_handle_stat(r, &hi));
	CHECK(hi.flags & ZINC_FLAG_REMOVED);
	CHECK_RC(zinc_stat("st", &i), -ENOENT);
	zinc_close(r);

	CHECK_RC(zinc_stat("bad name", &i), -EINVAL);
	close(tu_make_object("junk", 2 * page, NULL, 0600));
	CHECK_RC(zinc_stat("junk", &i), -EBADMSG);
	CHECK_OK(zinc_unlink("junk"));
}

static void test_stat_other_process(void)
{
	int ready[2], go[2];
	tu_pipe(ready);
	tu_pipe(go);
	pid_t pid = tu_fork();
	if (pid == 0) {
		zinc_region *o;
		CHECK_OK(zinc_create("remote", tu_page(), &o));
		zinc_notify(o);
		tu_put(ready[1], 'o');
		CHECK_GET(go[0], 'c');
		zinc_close(o);
		tu_put(ready[1], 'c');
		CHECK_GET(go[0], 'q');
		_exit(0);
	}
	CHECK_GET(ready[0], 'o');
	struct zinc_info i;
	CHECK_OK(zinc_stat("remote", &i));
	CHECK_EQ(i.owner_pid, pid);
	CHECK_EQ(i.owner_alive, 1);
	CHECK_EQ(i.in_use, 1);
	CHECK_EQ(i.seq, 1);
	CHECK_EQ(i.ref_count, 1);
	/* our own handle, remote owner */
	zinc_region *r;
	CHECK_OK(zinc_open("remote", &r));
	tu_put(go[1], 'c');
	CHECK_GET(ready[0], 'c');
	CHECK_OK(zinc_stat("remote", &i));
	CHECK_EQ(i.owner_alive, 0);
	CHECK_EQ(i.in_use, 1);
	zinc_close(r);
	CHECK_RC(zinc_stat("remote", &i), -ENOENT);
	tu_put(go[1], 'q');
	CHECK_CHILD_OK(pid);

	/* an observer handle alone: not in use */
	pid = tu_fork();
	if (pid == 0) {
		zinc_region *o;
		CHECK_OK(zinc_create("remote", tu_page(), &o));
		tu_put(ready[1], 'o');
		for (;;)
			pause();
	}
	CHECK_GET(ready[0], 'o');
	tu_kill(pid);
	zinc_region *obs;
	CHECK_OK(zinc_open_ex("remote", ZINC_OPEN_OBSERVE, &obs));
	CHECK_OK(zinc_handle_stat(obs, &i));
	CHECK_EQ(i.owner_alive, 0);
	CHECK_EQ(i.in_use, 0);
	CHECK_EQ(i.others, 0);
	CHECK_EQ(i.ref_count, 1); /* stale: the killed owner never closed */
	zinc_close(obs);
	CHECK(tu_exists("remote"));
	CHECK_OK(zinc_unlink("remote"));
	close(ready[0]); close(ready[1]);
	close(go[0]); close(go[1]);
}

int main(void)
{
	tu_init();
	TU_RUN(test_list);
	TU_RUN(test_stat_local);
	TU_RUN(test_stat_other_process);
	return T_PASS;
}
