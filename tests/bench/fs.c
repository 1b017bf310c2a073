/* SPDX-License-Identifier: MIT */
/*
 * zinc-bench rows 4-7: through a zincfs mount (--mnt) whose region
 * directory is this process's $ZINC_SHM_DIR.
 *
 * 4: ping-pongs with one leg through zincfs (.notify -> zinc_wait,
 *    zinc_notify -> .wait, .notify -> .wait) and the leg back over a raw
 *    shared futex, next to the raw futex ping-pong and a trivial FUSE round
 *    trip (8-byte read of a .wait file opened O_NONBLOCK with nothing
 *    pending: .wait is direct_io, so every read is a FUSE READ that the
 *    daemon answers at once with EAGAIN).
 * 5: read bandwidth of a 64 MiB region through the libzinc mapping, a mount
 *    mmap (first and second touch after a notification), read() with a
 *    1 MiB buffer; and notify -> wait -> read-all publication time.
 * 6: ls -f / stat with 10,000 regions; 1,000 and 10,000 blocked readers.
 * 7: zincfs RSS idle, with 10,000 regions, after removing them, with 10,000
 *    blocked readers.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/futex.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <zinc.h>

#include "bench.h"

static const char *shm_dir(void)
{
	const char *d = getenv("ZINC_SHM_DIR");
	return d && *d ? d : "/dev/shm";
}

static void mnt_path(char *buf, size_t size, const char *name, const char *suffix)
{
	snprintf(buf, size, "%s/%s%s", opt.mnt, name, suffix);
}

static void sleep_us(long us)
{
	struct timespec ts = { us / 1000000, (us % 1000000) * 1000 };
	nanosleep(&ts, NULL);
}

/* Wait (deadline 10 s) until PATH exists: zincfs shows regions made
 * elsewhere once it has seen them. */
static void wait_exists(const char *path)
{
	uint64_t end = now_ns() + 10000000000ull;
	struct stat st;
	while (stat(path, &st)) {
		if (now_ns() > end)
			die("%s did not appear in the mount within 10 s: %s", path,
			    strerror(errno));
		sleep_us(1000);
	}
}

static int open_mnt(const char *name, const char *suffix, int flags)
{
	char path[PATH_MAX];
	mnt_path(path, sizeof(path), name, suffix);
	wait_exists(path);
	int fd = open(path, flags | O_CLOEXEC);
	if (fd < 0)
		die("open %s: %s", path, strerror(errno));
	return fd;
}

/* /proc/PID/status field in kB (or the count for Threads). */
static long proc_status(int pid, const char *field)
{
	char path[64], line[256];
	snprintf(path, sizeof(path), "/proc/%d/status", pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	long v = -1;
	size_t n = strlen(field);
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, field, n) && line[n] == ':') {
			v = strtol(line + n + 1, NULL, 10);
			break;
		}
	fclose(f);
	return v;
}

static zinc_region *create_region(const char *what, size_t capacity, char *name, size_t size)
{
	zinc_region *r;
	region_name(name, size, what);
	int rc = zinc_create(name, capacity, &r);
	if (rc)
		die("zinc_create %s: %s", name, zinc_strerror(rc));
	return r;
}

/* Pin every thread of the daemon to cpu (-1: all CPUs).  New workers
 * inherit the affinity of the thread that starts them. */
static void pin_daemon(int cpu)
{
	if (!opt.daemon_pid)
		return;
	cpu_set_t set;
	CPU_ZERO(&set);
	for (int c = 0; c < opt.ncpu; c++)
		if (cpu < 0 || c == cpu)
			CPU_SET(c, &set);
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/task", opt.daemon_pid);
	DIR *d = opendir(path);
	if (!d)
		die("opendir %s: %s", path, strerror(errno));
	struct dirent *e;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.' &&
		    sched_setaffinity(atoi(e->d_name), sizeof(set), &set) && errno != ESRCH)
			die("pinning zincfs thread %s: %s", e->d_name, strerror(errno));
	closedir(d);
}

/* ------------------------------------------------------------------ */
/* row 4 */

enum fsmech { F_FUTEX, F_NOTIFY_ZWAIT, F_ZNOTIFY_WAIT, F_NOTIFY_WAIT, F_COUNT };

static const char *fs_name[F_COUNT] = {
	[F_FUTEX] = "raw futex ping-pong (baseline)",
	[F_NOTIFY_ZWAIT] = "write .notify -> zinc_wait, futex back",
	[F_ZNOTIFY_WAIT] = "zinc_notify -> read .wait, futex back",
	[F_NOTIFY_WAIT] = "write .notify -> read .wait, futex back",
};

struct fpp {
	enum fsmech m;
	int cpu[2];
	long warm, n;
	char rname[64];
	uint32_t *word;           /* shared: [0] forward (futex mech), [16] back */
	uint32_t *ready;
	uint32_t *stop;
	uint64_t *samples;
	int role;
};

static int fpp_child(void *a)
{
	struct fpp *p = a;
	pin_cpu(p->cpu[p->role]);
	zinc_region *r = NULL;
	int fd = -1;
	uint32_t *fwd = &p->word[0], *back = &p->word[16];
	if (p->role == 0) {
		if (p->m == F_NOTIFY_ZWAIT || p->m == F_NOTIFY_WAIT)
			fd = open_mnt(p->rname, ".notify", O_WRONLY);
		if (p->m == F_ZNOTIFY_WAIT) {
			int rc = zinc_open(p->rname, &r);
			if (rc)
				die("zinc_open: %s", zinc_strerror(rc));
		}
	} else {
		if (p->m == F_ZNOTIFY_WAIT || p->m == F_NOTIFY_WAIT)
			fd = open_mnt(p->rname, ".wait", O_RDONLY);
		if (p->m == F_NOTIFY_ZWAIT) {
			int rc = zinc_open(p->rname, &r);
			if (rc)
				die("zinc_open: %s", zinc_strerror(rc));
			zinc_try_wait(r); /* skip earlier passes' notifications */
		}
	}
	uint32_t v = __atomic_add_fetch(p->ready, 1, __ATOMIC_SEQ_CST);
	if (v == 2)
		futex(p->ready, FUTEX_WAKE, INT32_MAX);
	while ((v = __atomic_load_n(p->ready, __ATOMIC_ACQUIRE)) < 2)
		futex(p->ready, FUTEX_WAIT, v);
	go_fifo();
	uint32_t seen = 0;
	char buf[64];
	if (p->role == 0) {
		for (long i = 0; i <= p->warm + p->n; i++) {
			int last = i == p->warm + p->n;
			if (last)
				__atomic_store_n(p->stop, 1, __ATOMIC_SEQ_CST);
			uint64_t t0 = now_ns();
			switch (p->m) {
			case F_FUTEX:
				__atomic_fetch_add(fwd, 1, __ATOMIC_SEQ_CST);
				futex(fwd, FUTEX_WAKE, 1);
				break;
			case F_ZNOTIFY_WAIT:
				zinc_notify(r);
				break;
			default:
				if (write(fd, "x", 1) != 1)
					die("write .notify: %s", strerror(errno));
				break;
			}
			if (last)
				break;
			seen = futex_wait_change(back, seen);
			uint64_t t1 = now_ns();
			if (i >= p->warm)
				p->samples[i - p->warm] = t1 - t0;
		}
	} else {
		for (;;) {
			switch (p->m) {
			case F_FUTEX:
				seen = futex_wait_change(fwd, seen);
				break;
			case F_NOTIFY_ZWAIT: {
				int rc = zinc_wait(r, UINT32_MAX);
				if (rc)
					die("zinc_wait: %s", zinc_strerror(rc));
				break;
			}
			default:
				if (read(fd, buf, sizeof(buf)) <= 0)
					die("read .wait: %s", strerror(errno));
				break;
			}
			if (__atomic_load_n(p->stop, __ATOMIC_ACQUIRE))
				break;
			__atomic_fetch_add(back, 1, __ATOMIC_SEQ_CST);
			futex(back, FUTEX_WAKE, 1);
		}
	}
	if (fd >= 0)
		close(fd);
	zinc_close(r);
	return 0;
}

static void fpp_pass(enum fsmech m, const char *rname, int cpu1, long warm, long n,
		     uint64_t *out)
{
	struct fpp p = { .m = m, .cpu = { 0, cpu1 }, .warm = warm, .n = n };
	snprintf(p.rname, sizeof(p.rname), "%s", rname);
	p.word = shared_alloc(4096);
	p.ready = &p.word[32];
	p.stop = &p.word[48];
	p.samples = shared_alloc((size_t)n * sizeof(uint64_t));
	struct fpp side[2] = { p, p };
	side[0].role = 0;
	side[1].role = 1;
	pid_t pong = spawn(fpp_child, &side[1]);
	pid_t ping = spawn(fpp_child, &side[0]);
	reap(ping, "zincfs ping-pong pinger");
	reap(pong, "zincfs ping-pong ponger");
	memcpy(out, p.samples, (size_t)n * sizeof(uint64_t));
	munmap(p.samples, (size_t)n * sizeof(uint64_t));
	munmap(p.word, 4096);
}

struct rt_arg {
	const char *rname;
	long warm, n;
	uint64_t *out;
};

/* Trivial FUSE round trip: 8-byte read of an O_NONBLOCK .wait, EAGAIN. */
static int rt_child(void *a)
{
	struct rt_arg *arg = a;
	pin_cpu(0);
	int fd = open_mnt(arg->rname, ".wait", O_RDONLY | O_NONBLOCK);
	go_fifo();
	char buf[8];
	for (long i = 0; i < arg->warm + arg->n; i++) {
		uint64_t t0 = now_ns();
		ssize_t k = read(fd, buf, sizeof(buf));
		uint64_t t1 = now_ns();
		if (k >= 0 || errno != EAGAIN)
			die("read .wait O_NONBLOCK: expected EAGAIN, got %zd (%s)", k,
			    k < 0 ? strerror(errno) : "data");
		if (i >= arg->warm)
			arg->out[i - arg->warm] = t1 - t0;
	}
	close(fd);
	return 0;
}

static void row4(void)
{
	long n = opt.quick ? 4000 : 20000;
	int passes = opt.quick ? 8 : 40;
	long per = n / passes, warm = 200;
	n = per * passes;
	char rname[64], quiet[64];
	zinc_region *r = create_region("fs4", (size_t)sysconf(_SC_PAGESIZE), rname, sizeof(rname));
	/* The round-trip file: a region nobody notifies. */
	zinc_region *q = create_region("fs4q", (size_t)sysconf(_SC_PAGESIZE), quiet, sizeof(quiet));
	const char *places[2] = { "same", "split" };

	/* Placements: same = both processes and zincfs on CPU 0; split =
	 * process A on CPU 0, process B and zincfs on CPU 1.  The FUSE round
	 * trip is made from CPU 0 to zincfs on CPU 0 (same) or 1 (split). */
	for (int p = 0; p < (opt.ncpu >= 2 ? 2 : 1); p++) {
		pin_daemon(p);
		uint64_t *rt = shared_alloc((size_t)n * sizeof(uint64_t));
		struct rt_arg ra = { .rname = quiet, .warm = 1000, .n = n, .out = rt };
		reap(spawn(rt_child, &ra), "FUSE round trip");
		struct result *rtr = add_result("4", "trivial FUSE round trip (baseline)", places[p],
						"us", rt, (size_t)n, 1000.0, "reads");
		munmap(rt, (size_t)n * sizeof(uint64_t));

		uint64_t *v[F_COUNT];
		for (int m = 0; m < F_COUNT; m++)
			v[m] = malloc((size_t)n * sizeof(uint64_t));
		for (int pass = 0; pass < passes; pass++)
			for (int m = 0; m < F_COUNT; m++)
				fpp_pass((enum fsmech)m, rname, p, warm, per, v[m] + pass * per);
		struct result *base = NULL;
		for (int m = 0; m < F_COUNT; m++) {
			struct result *res = add_result("4", fs_name[m], places[p], "us", v[m],
							(size_t)n, 1000.0, "round trips");
			if (m == 0)
				base = res;
			else
				set_ratio(res, base);
			free(v[m]);
		}
		/* Target: within 1.5x of (raw futex ping-pong + FUSE round trip). */
		double sum = base->median + rtr->median;
		static const enum fsmech tm[2] = { F_NOTIFY_ZWAIT, F_ZNOTIFY_WAIT };
		for (int k = 0; k < 2; k++) {
			struct result *res = find_result("4", fs_name[tm[k]], places[p]);
			char t[160], buf[160];
			snprintf(t, sizeof(t), "zincfs %s median <= 1.5x (raw futex ping-pong + "
				 "FUSE round trip) (%s)",
				 k ? "zinc_notify -> .wait" : ".notify -> zinc_wait", places[p]);
			snprintf(buf, sizeof(buf), "%.2fx (%.2f vs %.2f + %.2f us)",
				 res->median / sum, res->median, base->median, rtr->median);
			add_target(t, buf, res->median / sum <= 1.5);
		}
	}
	pin_daemon(-1);
	zinc_close(q);
	zinc_close(r);
}

/* ------------------------------------------------------------------ */
/* row 5 */

#define BIG (64u << 20)

static uint64_t sum_words(const volatile uint64_t *p, size_t bytes)
{
	uint64_t s = 0;
	for (size_t i = 0; i < bytes / 8; i += 4)
		s += p[i] + p[i + 1] + p[i + 2] + p[i + 3];
	return s;
}

struct bw_arg {
	char rname[64];
	int reps;
	uint64_t *out;           /* shared: [kind * reps + i] ns; kinds below */
	uint64_t *check;         /* shared: checksums, [0] expected */
	uint32_t *word;          /* shared futex words for the publish test */
};

enum { BW_LIB, BW_MMAP1, BW_MMAP2, BW_READ, BW_KINDS };

static int bw_child(void *a)
{
	struct bw_arg *arg = a;
	pin_cpu(0);
	zinc_region *r;
	int rc = zinc_open(arg->rname, &r);
	if (rc)
		die("zinc_open: %s", zinc_strerror(rc));
	int nfd = open_mnt(arg->rname, ".notify", O_WRONLY);
	int dfd = open_mnt(arg->rname, "", O_RDONLY);
	const uint64_t *m = mmap(NULL, BIG, PROT_READ, MAP_SHARED, dfd, 0);
	if (m == MAP_FAILED)
		die("mmap of the mount's data file: %s", strerror(errno));
	char *buf = malloc(1 << 20);
	uint64_t want = arg->check[0];
	sum_words((const uint64_t *)zinc_ptr(r), BIG); /* fault the mapping in once */
	for (int i = 0; i < arg->reps; i++) {
		uint64_t t0 = now_ns();
		uint64_t s = sum_words((const uint64_t *)zinc_ptr(r), BIG);
		arg->out[BW_LIB * arg->reps + i] = now_ns() - t0;
		if (s != want)
			die("libzinc mapping checksum mismatch");

		/* A notification through the mount: zincfs invalidates NAME's
		 * cached pages before the write returns. */
		if (write(nfd, "x", 1) != 1)
			die("write .notify: %s", strerror(errno));
		t0 = now_ns();
		s = sum_words(m, BIG);
		arg->out[BW_MMAP1 * arg->reps + i] = now_ns() - t0;
		if (s != want)
			die("mount mmap (first touch) checksum mismatch");
		t0 = now_ns();
		s = sum_words(m, BIG);
		arg->out[BW_MMAP2 * arg->reps + i] = now_ns() - t0;
		if (s != want)
			die("mount mmap (second touch) checksum mismatch");

		if (write(nfd, "x", 1) != 1)
			die("write .notify: %s", strerror(errno));
		t0 = now_ns();
		s = 0;
		for (off_t off = 0; off < (off_t)BIG; off += 1 << 20) {
			ssize_t k = pread(dfd, buf, 1 << 20, off);
			if (k != 1 << 20)
				die("read of the mount's data file: %zd %s", k, strerror(errno));
			s += sum_words((const uint64_t *)buf, 1 << 20);
		}
		arg->out[BW_READ * arg->reps + i] = now_ns() - t0;
		if (s != want)
			die("read() checksum mismatch");
	}
	munmap((void *)m, BIG);
	free(buf);
	close(dfd);
	close(nfd);
	zinc_close(r);
	return 0;
}

/* Publication: the writer fills 64 MiB through libzinc, t0, zinc_notify; the
 * reader blocked in read(.wait) then reads all through its mount mapping and
 * checks the pattern; t1 when done. */
static int pub_reader(void *a)
{
	struct bw_arg *arg = a;
	pin_cpu(1 % opt.ncpu);
	int wfd = open_mnt(arg->rname, ".wait", O_RDONLY);
	int dfd = open_mnt(arg->rname, "", O_RDONLY);
	const uint64_t *m = mmap(NULL, BIG, PROT_READ, MAP_SHARED, dfd, 0);
	if (m == MAP_FAILED)
		die("mmap: %s", strerror(errno));
	sum_words(m, BIG); /* warm the mapping: the next read must refresh it */
	char buf[64];
	for (int i = 0; i < arg->reps; i++) {
		__atomic_fetch_add(&arg->word[0], 1, __ATOMIC_SEQ_CST); /* I am about to read */
		futex(&arg->word[0], FUTEX_WAKE, 1);
		if (read(wfd, buf, sizeof(buf)) <= 0)
			die("read .wait: %s", strerror(errno));
		uint64_t s = sum_words(m, BIG);
		uint64_t t1 = now_ns();
		if (m[0] != (uint64_t)i + 1000 || m[BIG / 8 - 1] != (uint64_t)i + 1000)
			die("publication: the mount mapping shows stale data after the wait");
		arg->check[1 + i] = s;
		arg->out[i] = t1;
		__atomic_fetch_add(&arg->word[16], 1, __ATOMIC_SEQ_CST);
		futex(&arg->word[16], FUTEX_WAKE, 1);
	}
	munmap((void *)m, BIG);
	close(dfd);
	close(wfd);
	return 0;
}

/* 1 when pid sleeps where /proc/PID/wchan names a function containing a
 * or b (b may be NULL). */
static int wchan_has(int pid, const char *a, const char *b)
{
	char path[64], buf[128];
	snprintf(path, sizeof(path), "/proc/%d/wchan", pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	ssize_t k = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (k <= 0)
		return 0;
	buf[k] = 0;
	return strstr(buf, a) || (b && strstr(buf, b));
}

/* 1 when pid is blocked in a FUSE request (wchan request_wait_answer). */
static int in_fuse_wait(int pid)
{
	return wchan_has(pid, "request_wait_answer", "fuse_");
}

static void row5(void)
{
	int reps = opt.quick ? 3 : 8;
	char rname[64];
	zinc_region *r = create_region("fs5", BIG, rname, sizeof(rname));
	uint64_t *d = (uint64_t *)zinc_ptr(r);
	for (size_t i = 0; i < BIG / 8; i++)
		d[i] = i * 2654435761u;
	struct bw_arg a = { .reps = reps };
	snprintf(a.rname, sizeof(a.rname), "%s", rname);
	a.out = shared_alloc(BW_KINDS * (size_t)reps * sizeof(uint64_t));
	a.check = shared_alloc(4096);
	a.check[0] = sum_words(d, BIG);
	reap(spawn(bw_child, &a), "bandwidth reader");
	static const char *names[BW_KINDS] = {
		[BW_LIB] = "libzinc mapping (baseline)",
		[BW_MMAP1] = "mount mmap, first touch after notify",
		[BW_MMAP2] = "mount mmap, second touch",
		[BW_READ] = "mount read(), 1 MiB buffer, after notify",
	};
	struct result *base = NULL;
	for (int k = 0; k < BW_KINDS; k++) {
		/* GiB/s per rep; sorted ascending, so min/p99 are taken from
		 * times and the median is the median rate. */
		uint64_t *t = a.out + k * reps;
		double mn, med, p99;
		stats(t, (size_t)reps, 1.0, &mn, &med, &p99);
		double gib = (double)BIG / (1u << 30);
		struct result *res = add_value("5", names[k], "cpu0", "GiB/s",
					       gib / (med / 1e9), reps, "full reads of 64 MiB");
		res->min = gib / (p99 / 1e9);  /* slowest read */
		res->p99 = gib / (mn / 1e9);   /* fastest read */
		res->has_stats = 1;
		if (k == 0)
			base = res;
		else
			set_ratio(res, base);
	}

	/* publication time */
	int preps = opt.quick ? 3 : 8;
	struct bw_arg p = { .reps = preps };
	snprintf(p.rname, sizeof(p.rname), "%s", rname);
	p.out = shared_alloc((size_t)preps * sizeof(uint64_t));
	p.check = shared_alloc(4096);
	p.word = shared_alloc(4096);
	pid_t pid = spawn(pub_reader, &p);
	pin_cpu(0);
	uint64_t *lat = malloc((size_t)preps * sizeof(uint64_t));
	for (int i = 0; i < preps; i++) {
		uint32_t v;
		while ((v = __atomic_load_n(&p.word[0], __ATOMIC_ACQUIRE)) < (uint32_t)i + 1)
			futex(&p.word[0], FUTEX_WAIT, v);
		/* prove the reader is blocked in its .wait read */
		uint64_t end = now_ns() + 10000000000ull;
		while (!in_fuse_wait(pid)) {
			if (now_ns() > end)
				die("publication reader never blocked in read(.wait)");
			sleep_us(200);
		}
		for (size_t j = 0; j < BIG / 8; j++)
			d[j] = (uint64_t)i + 1000;
		uint64_t t0 = now_ns();
		zinc_notify(r);
		while ((v = __atomic_load_n(&p.word[16], __ATOMIC_ACQUIRE)) < (uint32_t)i + 1)
			futex(&p.word[16], FUTEX_WAIT, v);
		lat[i] = p.out[i] - t0;
	}
	reap(pid, "publication reader");
	cpu_set_t all;
	CPU_ZERO(&all);
	for (int c = 0; c < opt.ncpu; c++)
		CPU_SET(c, &all);
	sched_setaffinity(0, sizeof(all), &all);
	/* Baseline: reading 64 MiB through the libzinc mapping (row 5a). */
	struct result *lr = add_value("5", "64 MiB read through libzinc mapping (baseline)",
				      "cpu0", "ms", (double)BIG / (1u << 30) / base->median * 1e3,
				      0, "= 64 MiB / libzinc mapping median");
	struct result *pr = add_result("5", "64 MiB libzinc write -> notify -> mount mmap read all",
				       "split", "ms", lat, (size_t)preps, 1e6, "publications");
	set_ratio(pr, lr);
	free(lat);
	munmap(a.out, BW_KINDS * (size_t)reps * sizeof(uint64_t));
	munmap(a.check, 4096);
	munmap(p.out, (size_t)preps * sizeof(uint64_t));
	munmap(p.check, 4096);
	munmap(p.word, 4096);
	zinc_close(r);
}

/* ------------------------------------------------------------------ */
/* rows 6 and 7 */

static double ms_of_cmd(char *const argv[])
{
	uint64_t t0 = now_ns();
	pid_t pid = fork();
	if (pid < 0)
		die("fork: %s", strerror(errno));
	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY);
		dup2(null, 1);
		execvp(argv[0], argv);
		_exit(127);
	}
	int st;
	waitpid(pid, &st, 0);
	if (!WIFEXITED(st) || WEXITSTATUS(st))
		die("%s %s failed", argv[0], argv[1]);
	return (double)(now_ns() - t0) / 1e6;
}

static long count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		die("opendir %s: %s", dir, strerror(errno));
	long n = 0;
	struct dirent *e;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

/* A reader process: open NAME.wait, announce, block in read(), then record
 * its return time and exit (or loop when rounds > 1).  With word set: block
 * on that raw shared futex instead (the baseline). */
struct readers {
	char rname[64];
	uint32_t *word;
	int n;
	int rounds;
	uint32_t *opened;         /* shared counter */
	uint32_t *arrived;        /* shared: announced before each read */
	uint64_t *ret;            /* shared: return time per reader */
	int idx;
};

static int reader_child(void *a)
{
	struct readers *rd = a;
	char path[PATH_MAX], buf[64];
	int fd = -1;
	uint32_t seen = 0;
	mnt_path(path, sizeof(path), rd->rname, ".wait");
	if (!rd->word && (fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		die("open %s: %s", path, strerror(errno));
	__atomic_fetch_add(rd->opened, 1, __ATOMIC_SEQ_CST);
	for (int i = 0; i < rd->rounds; i++) {
		__atomic_fetch_add(rd->arrived, 1, __ATOMIC_SEQ_CST);
		if (rd->word)
			seen = futex_wait_change(rd->word, seen);
		else if (read(fd, buf, sizeof(buf)) <= 0)
			die("read %s: %s", path, strerror(errno));
		rd->ret[rd->idx] = now_ns();
		__atomic_fetch_add(&rd->arrived[16], 1, __ATOMIC_SEQ_CST);
		futex(&rd->arrived[16], FUTEX_WAKE, 1);
	}
	if (fd >= 0)
		close(fd);
	return 0;
}

static pid_t *spawn_readers(struct readers *rd)
{
	pid_t *pids = malloc((size_t)rd->n * sizeof(pid_t));
	for (int i = 0; i < rd->n; i++) {
		rd->idx = i;
		pids[i] = spawn(reader_child, rd);
	}
	return pids;
}

/* Wait until every reader of round `round` is blocked in its FUSE read. */
static void wait_blocked(struct readers *rd, pid_t *pids, int round)
{
	uint64_t end = now_ns() + 60000000000ull;
	uint32_t want = (uint32_t)(rd->n * (round + 1));
	while (__atomic_load_n(rd->arrived, __ATOMIC_ACQUIRE) < want) {
		if (now_ns() > end)
			die("readers did not start within 60 s");
		sleep_us(1000);
	}
	for (int i = 0; i < rd->n; i++)
		while (rd->word ? !wchan_has(pids[i], "futex", NULL) : !in_fuse_wait(pids[i])) {
			if (now_ns() > end)
				die("reader %d never blocked (%s)", (int)pids[i],
				    rd->word ? "futex" : "read(.wait)");
			sleep_us(200);
		}
}

static void wait_returned(struct readers *rd, int round)
{
	uint32_t want = (uint32_t)(rd->n * (round + 1)), v;
	while ((v = __atomic_load_n(&rd->arrived[16], __ATOMIC_ACQUIRE)) < want)
		futex(&rd->arrived[16], FUTEX_WAIT, v);
}

static long rss_idle = -1, thr_idle = -1;

static void rows67(int want6, int want7)
{
	int dpid = opt.daemon_pid;
	int nreg = 10000;

	/* 10,000 regions (owner handles kept open: closing removes them). */
	struct rlimit rl;
	getrlimit(RLIMIT_NOFILE, &rl);
	if (rl.rlim_cur < (rlim_t)nreg + 1000) {
		add_skip("6-7", "needs ulimit -n >= 11000 (bench.sh raises it)");
		return;
	}
	zinc_region **regs = calloc((size_t)nreg, sizeof(*regs));
	char (*names)[64] = calloc((size_t)nreg, 64);
	uint64_t t0 = now_ns();
	for (int i = 0; i < nreg; i++)
		regs[i] = create_region("s", (size_t)sysconf(_SC_PAGESIZE), names[i], 64);
	double create_ms = (double)(now_ns() - t0) / 1e6;
	if (want6)
		add_value("6", "context: creating 10,000 regions with libzinc", "-", "ms", create_ms,
			  1, "run");
	/* Let zincfs catch up with the 10,000 creations. */
	uint64_t end = now_ns() + 60000000000ull;
	long seen;
	while ((seen = count_entries(opt.mnt)) < 3L * nreg) {
		if (now_ns() > end)
			die("the mount shows %ld entries, not %d, 60 s after creating %d regions",
			    seen, 3 * nreg, nreg);
		sleep_us(20000);
	}
	char lsname[96];
	int lsreps = opt.quick ? 3 : 7;
	uint64_t *lsm = malloc((size_t)lsreps * sizeof(uint64_t));
	uint64_t *lsd = malloc((size_t)lsreps * sizeof(uint64_t));
	char *ls_mnt[] = { "ls", "-f", (char *)opt.mnt, NULL };
	char *ls_dir[] = { "ls", "-f", (char *)shm_dir(), NULL };
	for (int i = 0; i < lsreps; i++) {
		lsd[i] = (uint64_t)(ms_of_cmd(ls_dir) * 1000);
		lsm[i] = (uint64_t)(ms_of_cmd(ls_mnt) * 1000);
	}
	if (want6) {
		snprintf(lsname, sizeof(lsname), "ls -f of the region dir, %d objects (baseline)", nreg);
		struct result *b = add_result("6", lsname, "-", "ms", lsd, (size_t)lsreps, 1000.0,
					      "runs of ls");
		snprintf(lsname, sizeof(lsname), "ls -f of the mount, %d regions", nreg);
		set_ratio(add_result("6", lsname, "-", "ms", lsm, (size_t)lsreps, 1000.0,
				     "runs of ls"), b);
	}
	free(lsm);
	free(lsd);

	/* stat of one region among 10,000: each name once (a LOOKUP), then
	 * one name repeatedly. */
	int nst = opt.quick ? 2000 : nreg;
	uint64_t *sd = malloc((size_t)nst * sizeof(uint64_t));
	uint64_t *sm = malloc((size_t)nst * sizeof(uint64_t));
	uint64_t *sr = malloc((size_t)nst * sizeof(uint64_t));
	struct stat st;
	char path[PATH_MAX];
	for (int i = 0; i < nst; i++) {
		snprintf(path, sizeof(path), "%s/zinc_%s", shm_dir(), names[(i * 7919) % nreg]);
		uint64_t a = now_ns();
		if (stat(path, &st))
			die("stat %s: %s", path, strerror(errno));
		sd[i] = now_ns() - a;
		mnt_path(path, sizeof(path), names[(i * 7919) % nreg], "");
		a = now_ns();
		if (stat(path, &st))
			die("stat %s: %s", path, strerror(errno));
		sm[i] = now_ns() - a;
	}
	mnt_path(path, sizeof(path), names[nreg / 2], "");
	for (int i = 0; i < nst; i++) {
		uint64_t a = now_ns();
		if (stat(path, &st))
			die("stat %s: %s", path, strerror(errno));
		sr[i] = now_ns() - a;
	}
	if (want6) {
		struct result *b = add_result("6", "stat in the region dir (baseline)", "-", "us",
					      sd, (size_t)nst, 1000.0, "stats");
		set_ratio(add_result("6", "stat of a region in the mount (first of each name)", "-",
				     "us", sm, (size_t)nst, 1000.0, "stats"), b);
		set_ratio(add_result("6", "stat of one region in the mount, repeated", "-", "us",
				     sr, (size_t)nst, 1000.0, "stats"), b);
	}
	free(sd);
	free(sm);
	free(sr);
	long rss_regions = dpid ? proc_status(dpid, "VmRSS") : -1;

	/* Drop the 10,000 regions before forking readers (a fork would copy
	 * their 10,000 mappings and descriptors). */
	for (int i = 0; i < nreg; i++)
		zinc_close(regs[i]);
	free(regs);
	end = now_ns() + 20000000000ull;
	while ((seen = count_entries(opt.mnt)) > 0) {
		if (now_ns() > end) {
			fprintf(stderr, "zinc-bench: warning: the mount still shows %ld entries "
				"20 s after closing the regions\n", seen);
			break;
		}
		sleep_us(20000);
	}

	/* 1,000 blocked readers, several rounds: one write to NAME.notify
	 * releases them; time to the first and last return.  Baseline, in
	 * turn with them: 1,000 processes blocked on one raw shared futex,
	 * released by one FUTEX_WAKE. */
	char rname[64];
	zinc_region *r = create_region("rd", (size_t)sysconf(_SC_PAGESIZE), rname, sizeof(rname));
	int rounds = opt.quick ? 3 : 10;
	struct readers rd = { .n = 1000, .rounds = rounds }, fx = rd;
	snprintf(rd.rname, sizeof(rd.rname), "%s", rname);
	uint32_t *ctr = shared_alloc(4096), *fctr = shared_alloc(4096);
	rd.opened = &ctr[0];
	rd.arrived = &ctr[32];
	rd.ret = shared_alloc((size_t)rd.n * sizeof(uint64_t));
	fx.word = &fctr[0];
	fx.opened = &fctr[64];
	fx.arrived = &fctr[96];
	fx.ret = shared_alloc((size_t)fx.n * sizeof(uint64_t));
	mnt_path(path, sizeof(path), rname, ".wait");
	wait_exists(path);
	int nfd = open_mnt(rname, ".notify", O_WRONLY);
	pid_t *pids = spawn_readers(&rd), *fpids = spawn_readers(&fx);
	uint64_t *first = malloc((size_t)rounds * sizeof(uint64_t));
	uint64_t *last = malloc((size_t)rounds * sizeof(uint64_t));
	uint64_t *ffirst = malloc((size_t)rounds * sizeof(uint64_t));
	uint64_t *flast = malloc((size_t)rounds * sizeof(uint64_t));
	for (int k = 0; k < 2 * rounds; k++) {
		struct readers *x = k % 2 ? &rd : &fx;
		wait_blocked(x, k % 2 ? pids : fpids, k / 2);
		uint64_t a = now_ns();
		if (x == &fx) {
			__atomic_fetch_add(fx.word, 1, __ATOMIC_SEQ_CST);
			futex(fx.word, FUTEX_WAKE, INT32_MAX);
		} else if (write(nfd, "x", 1) != 1) {
			die("write .notify: %s", strerror(errno));
		}
		wait_returned(x, k / 2);
		uint64_t lo = UINT64_MAX, hi = 0;
		for (int i = 0; i < x->n; i++) {
			lo = x->ret[i] < lo ? x->ret[i] : lo;
			hi = x->ret[i] > hi ? x->ret[i] : hi;
		}
		(x == &fx ? ffirst : first)[k / 2] = lo - a;
		(x == &fx ? flast : last)[k / 2] = hi - a;
	}
	for (int i = 0; i < rd.n; i++) {
		reap(pids[i], "reader");
		reap(fpids[i], "futex waiter");
	}
	free(pids);
	free(fpids);
	if (want6) {
		struct result *bf = add_result("6", "FUTEX_WAKE -> first of 1,000 futex waiters "
					       "(baseline)", "-", "ms", ffirst, (size_t)rounds, 1e6,
					       "wakes");
		struct result *bl = add_result("6", "FUTEX_WAKE -> last of 1,000 futex waiters "
					       "(baseline)", "-", "ms", flast, (size_t)rounds, 1e6,
					       "wakes");
		set_ratio(add_result("6", "write .notify -> first of 1,000 blocked readers returns",
				     "-", "ms", first, (size_t)rounds, 1e6, "notifies"), bf);
		struct result *l = add_result("6", "write .notify -> last of 1,000 blocked readers "
					      "returns", "-", "ms", last, (size_t)rounds, 1e6,
					      "notifies");
		set_ratio(l, bl);
		char t[160], buf[160];
		snprintf(t, sizeof(t), "write .notify -> last of 1,000 .wait readers <= 1.5x FUTEX_WAKE "
			 "-> last of 1,000 futex waiters");
		snprintf(buf, sizeof(buf), "%.2fx (%.2f vs %.2f ms)", l->median / bl->median,
			 l->median, bl->median);
		add_target(t, buf, l->median <= 1.5 * bl->median);
	}
	free(first);
	free(last);
	free(ffirst);
	free(flast);
	munmap(rd.ret, (size_t)rd.n * sizeof(uint64_t));
	munmap(fx.ret, (size_t)fx.n * sizeof(uint64_t));
	munmap(fctr, 4096);

	/* What the removed regions left behind (zincfs trims its heap). */
	long rss_removed = dpid ? proc_status(dpid, "VmRSS") : -1;

	/* 10,000 blocked readers: thread count and RSS of zincfs. */
	struct readers big = { .n = 10000, .rounds = 1 };
	snprintf(big.rname, sizeof(big.rname), "%s", rname);
	memset(ctr, 0, 4096);
	big.opened = &ctr[0];
	big.arrived = &ctr[32];
	big.ret = shared_alloc((size_t)big.n * sizeof(uint64_t));
	t0 = now_ns();
	pids = spawn_readers(&big);
	wait_blocked(&big, pids, 0);
	double block_ms = (double)(now_ns() - t0) / 1e6;
	long thr_readers = dpid ? proc_status(dpid, "Threads") : -1;
	long rss_readers = dpid ? proc_status(dpid, "VmRSS") : -1;
	uint64_t a = now_ns();
	if (write(nfd, "x", 1) != 1)
		die("write .notify: %s", strerror(errno));
	wait_returned(&big, 0);
	uint64_t hi = 0;
	for (int i = 0; i < big.n; i++)
		hi = big.ret[i] > hi ? big.ret[i] : hi;
	double release_ms = (double)(hi - a) / 1e6;
	for (int i = 0; i < big.n; i++)
		reap(pids[i], "reader");
	free(pids);
	munmap(big.ret, (size_t)big.n * sizeof(uint64_t));
	munmap(ctr, 4096);
	close(nfd);
	zinc_close(r);

	if (want6) {
		add_value("6", "10,000 readers: fork+open+block (all blocked)", "-", "ms", block_ms, 1,
			  "run");
		add_value("6", "10,000 readers: write .notify -> last returns", "-", "ms",
			  release_ms, 1, "run");
		if (dpid) {
			add_value("6", "zincfs threads, idle", "-", "count", (double)thr_idle, 1, "reading");
			add_value("6", "zincfs threads, 10,000 blocked readers", "-", "count",
				  (double)thr_readers, 1, "reading");
			char t[160], buf[160];
			snprintf(t, sizeof(t), "10,000 blocked readers: zincfs threads <= max_threads + 4 (%d)",
				 opt.max_threads + 4);
			snprintf(buf, sizeof(buf), "%ld threads (max_threads=%d)", thr_readers,
				 opt.max_threads);
			add_target(t, buf, opt.max_threads > 0 && thr_readers <= opt.max_threads + 4);
		}
	}
	if (want7 && dpid) {
		add_value("7", "zincfs RSS idle (after mount)", "-", "MiB", rss_idle / 1024.0, 1,
			  "reading");
		char nm[96];
		snprintf(nm, sizeof(nm), "zincfs RSS with %d regions listed and stat'ed", nreg);
		add_value("7", nm, "-", "MiB", rss_regions / 1024.0, 1, "reading");
		snprintf(nm, sizeof(nm), "zincfs RSS after the %d regions were removed", nreg);
		add_value("7", nm, "-", "MiB", rss_removed / 1024.0, 1, "reading");
		add_value("7", "zincfs RSS with 10,000 blocked readers", "-", "MiB",
			  rss_readers / 1024.0, 1, "reading");
	}
	free(names);
}

void fs_rows(int (*want_row)(int row))
{
	int any = want_row(4) || want_row(5) || want_row(6) || want_row(7) || want_row(9);
	if (!any)
		return;
	if (!opt.mnt) {
		add_skip("4-7, 9", opt.skip_fs ? opt.skip_fs : "no zincfs mount given (--mnt)");
		return;
	}
	/* idle figures first, before anything used the mount */
	if (opt.daemon_pid) {
		rss_idle = proc_status(opt.daemon_pid, "VmRSS");
		thr_idle = proc_status(opt.daemon_pid, "Threads");
	}
	if (want_row(4)) {
		fprintf(stderr, "zinc-bench: row 4 (through zincfs)...\n");
		row4();
	}
	if (want_row(5)) {
		fprintf(stderr, "zinc-bench: row 5 (data)...\n");
		row5();
	}
	if (want_row(6) || want_row(7)) {
		fprintf(stderr, "zinc-bench: rows 6-7 (scale, memory)...\n");
		rows67(want_row(6), want_row(7));
	}
	if (want_row(9)) {
		fprintf(stderr, "zinc-bench: row 9 (.events, io_uring vs futex_waitv)...\n");
		events_row();
	}
}
