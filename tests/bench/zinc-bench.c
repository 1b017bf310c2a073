/* SPDX-License-Identifier: MIT */
/*
 * zinc-bench: libzinc (and zincfs) measured next to the kernel's own
 * mechanisms, every figure with its baseline from the same run.
 *
 *   zinc-bench [--quick] [--json FILE] [--dat DIR] [--mnt DIR] [--daemon-pid PID]
 *              [--rows LIST] [--spin-ns NS] [--bridge PORT:DIR_A:DIR_B]
 *
 * Rows 1-3 need only libzinc; rows 4-7 need a zincfs mount (--mnt, sharing
 * the region directory $ZINC_SHM_DIR with this process); row 10 needs a
 * broker and two zinc-bridge processes (--bridge, see bridge.c).  Regions are made
 * in $ZINC_SHM_DIR, which the caller (scripts/bench.sh) points at a private
 * directory.  Every ping-pong runs in two forked processes, pinned to one CPU
 * ("same") or to CPUs 0 and 1 ("split"), under SCHED_FIFO when permitted.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/futex.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <zinc.h>

#include "bench.h"

/* ------------------------------------------------------------------ */
/* options and global state */

struct opts opt = {
	.spin_ns = 20000,
	.fifo_prio = 10,
};

int fifo_ok = -1;          /* -1 unknown, 0 refused, 1 permitted */
char fifo_why[128] = "";
static int ncpu;

struct result results[MAX_RESULTS];
int nresults;
struct skip skipped[32];
int nskipped;
struct target targets[16];
int ntargets;

void die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "zinc-bench: error: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	exit(1);
}

uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

long futex(uint32_t *word, int op, uint32_t val)
{
	return syscall(SYS_futex, word, op, val, NULL, NULL, 0);
}

/* Wait until *word != seen (shared futex, no timeout).  Returns the new value. */
uint32_t futex_wait_change(uint32_t *word, uint32_t seen)
{
	uint32_t v;
	while ((v = __atomic_load_n(word, __ATOMIC_ACQUIRE)) == seen)
		futex(word, FUTEX_WAIT, seen);
	return v;
}

void *shared_alloc(size_t size)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		die("mmap %zu: %s", size, strerror(errno));
	return p;
}

void pin_cpu(int cpu)
{
	if (cpu < 0)
		return;
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(0, sizeof(set), &set))
		die("sched_setaffinity cpu %d: %s", cpu, strerror(errno));
}

/* SCHED_FIFO for the calling process (when permitted). */
void go_fifo(void)
{
	if (fifo_ok == 0 || opt.no_fifo)
		return;
	struct sched_param sp = { .sched_priority = opt.fifo_prio };
	if (sched_setscheduler(0, SCHED_FIFO, &sp) && fifo_ok == 1)
		die("sched_setscheduler: %s", strerror(errno));
}

static void probe_fifo(void)
{
	if (opt.no_fifo) {
		fifo_ok = 0;
		snprintf(fifo_why, sizeof(fifo_why), "disabled by --no-fifo");
		return;
	}
	pid_t pid = fork();
	if (pid == 0) {
		struct sched_param sp = { .sched_priority = opt.fifo_prio };
		_exit(sched_setscheduler(0, SCHED_FIFO, &sp) ? errno : 0);
	}
	int st;
	waitpid(pid, &st, 0);
	int err = WIFEXITED(st) ? WEXITSTATUS(st) : EINVAL;
	fifo_ok = err == 0;
	if (err)
		snprintf(fifo_why, sizeof(fifo_why), "SCHED_FIFO not permitted (%s)",
			 strerror(err));
}

/* Fork a child that dies with us; it runs fn(arg) and exits with its value. */
pid_t spawn(int (*fn)(void *), void *arg)
{
	pid_t parent = getpid();
	pid_t pid = fork();
	if (pid < 0)
		die("fork: %s", strerror(errno));
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(99);
		_exit(fn(arg));
	}
	return pid;
}

void reap(pid_t pid, const char *what)
{
	int st;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			die("waitpid %s: %s", what, strerror(errno));
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		die("%s (pid %d) failed: %s %d", what, (int)pid,
		    WIFEXITED(st) ? "exit" : "signal",
		    WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* Sorts v.  p99 is the value at rank ceil(0.99 n). */
void stats(uint64_t *v, size_t n, double scale, double *mn, double *med, double *p99)
{
	qsort(v, n, sizeof(*v), cmp_u64);
	size_t k = (n * 99 + 99) / 100;
	if (k > 0)
		k--;
	*mn = (double)v[0] / scale;
	*med = (n % 2 ? (double)v[n / 2] : ((double)v[n / 2 - 1] + (double)v[n / 2]) / 2) / scale;
	*p99 = (double)v[k] / scale;
}

struct result *add_result(const char *row, const char *name, const char *place,
			  const char *unit, uint64_t *v, size_t n, double scale,
			  const char *unit_of_sample)
{
	/* A single value's fields, then min/median/p99 over v in its stead. */
	struct result *r = add_value(row, name, place, unit, 0, (long)n, unit_of_sample);
	stats(v, n, scale, &r->min, &r->median, &r->p99);
	r->has_stats = 1;
	return r;
}

/* A single-valued result (bandwidth, counts, ...). */
struct result *add_value(const char *row, const char *name, const char *place,
			 const char *unit, double value, long samples,
			 const char *unit_of_sample)
{
	if (nresults == MAX_RESULTS)
		die("too many results");
	struct result *r = &results[nresults++];
	memset(r, 0, sizeof(*r));
	snprintf(r->row, sizeof(r->row), "%s", row);
	snprintf(r->name, sizeof(r->name), "%s", name);
	snprintf(r->place, sizeof(r->place), "%s", place);
	snprintf(r->unit, sizeof(r->unit), "%s", unit);
	snprintf(r->sample_unit, sizeof(r->sample_unit), "%s", unit_of_sample);
	r->min = r->median = r->p99 = value;
	r->samples = samples;
	r->ratio = -1;
	return r;
}

struct result *find_result(const char *row, const char *name, const char *place)
{
	for (int i = 0; i < nresults; i++)
		if (!strcmp(results[i].row, row) && !strcmp(results[i].name, name) &&
		    !strcmp(results[i].place, place))
			return &results[i];
	return NULL;
}

void set_ratio(struct result *r, const struct result *base)
{
	if (!r || !base || base->median <= 0)
		return;
	r->ratio = r->median / base->median;
	snprintf(r->base, sizeof(r->base), "%s", base->name);
}

void add_skip(const char *rows, const char *why)
{
	if (nskipped == (int)(sizeof(skipped) / sizeof(skipped[0])))
		return;
	snprintf(skipped[nskipped].rows, sizeof(skipped[0].rows), "%s", rows);
	snprintf(skipped[nskipped].why, sizeof(skipped[0].why), "%s", why);
	nskipped++;
}

void add_target(const char *text, const char *measured, int met)
{
	if (ntargets == (int)(sizeof(targets) / sizeof(targets[0])))
		return;
	snprintf(targets[ntargets].text, sizeof(targets[0].text), "%s", text);
	snprintf(targets[ntargets].measured, sizeof(targets[0].measured), "%s", measured);
	targets[ntargets].met = met;
	ntargets++;
}

/* A fresh region name for this run. */
void region_name(char *buf, size_t size, const char *what)
{
	static unsigned serial;
	snprintf(buf, size, "bench%d_%s_%u", (int)getpid(), what, serial++);
}

/* ------------------------------------------------------------------ */
/* row 1: ping-pong round trip between two processes */

enum mech { M_FUTEX, M_EVENTFD, M_PIPE, M_ZINC, M_ZINC_SPIN, M_COUNT };

static const char *mech_name[M_COUNT] = {
	[M_FUTEX] = "raw shared futex (baseline)",
	[M_EVENTFD] = "eventfd pair (baseline)",
	[M_PIPE] = "pipe pair (baseline)",
	[M_ZINC] = "libzinc notify/wait",
	[M_ZINC_SPIN] = "libzinc notify/wait + spin",
};

struct pp_shared {
	uint32_t word[2] __attribute__((aligned(64))); /* raw futex: [0] ping, [1] pong */
	uint32_t pad[14];
	uint32_t ready __attribute__((aligned(64)));
	uint32_t stop;
};

struct pingpong {
	enum mech m;
	int cpu[2];               /* pinger, ponger */
	long warm, n;
	struct pp_shared *sh;
	uint64_t *samples;        /* shared, n entries */
	int efd[2];               /* eventfd: [0] to ponger, [1] to pinger */
	int pfd[2][2];            /* pipes: [0] to ponger, [1] to pinger */
	char rname[2][64];        /* regions: [0] ping (to ponger), [1] pong */
	zinc_region *owner[2];
};

struct pp_side {
	struct pingpong *pp;
	int role;                 /* 0 pinger, 1 ponger */
	zinc_region *r[2];        /* this process's handles */
	uint32_t seen;            /* raw futex: last value of the word I wait on */
};

static void pp_signal(struct pp_side *s)
{
	struct pingpong *pp = s->pp;
	int to = s->role == 0 ? 0 : 1; /* pinger signals channel 0, ponger 1 */
	uint64_t one = 1;
	char c = 'x';
	switch (pp->m) {
	case M_FUTEX:
		__atomic_fetch_add(&pp->sh->word[to], 1, __ATOMIC_SEQ_CST);
		futex(&pp->sh->word[to], FUTEX_WAKE, 1);
		break;
	case M_EVENTFD:
		if (write(pp->efd[to], &one, 8) != 8)
			die("eventfd write: %s", strerror(errno));
		break;
	case M_PIPE:
		if (write(pp->pfd[to][1], &c, 1) != 1)
			die("pipe write: %s", strerror(errno));
		break;
	case M_ZINC:
	case M_ZINC_SPIN:
		zinc_notify(s->r[to]);
		break;
	default:
		break;
	}
}

static void pp_wait(struct pp_side *s)
{
	struct pingpong *pp = s->pp;
	int from = s->role == 0 ? 1 : 0;
	uint64_t v;
	char c;
	int rc;
	switch (pp->m) {
	case M_FUTEX:
		s->seen = futex_wait_change(&pp->sh->word[from], s->seen);
		break;
	case M_EVENTFD:
		if (read(pp->efd[from], &v, 8) != 8)
			die("eventfd read: %s", strerror(errno));
		break;
	case M_PIPE:
		if (read(pp->pfd[from][0], &c, 1) != 1)
			die("pipe read: %s", strerror(errno));
		break;
	case M_ZINC:
	case M_ZINC_SPIN:
		rc = zinc_wait(s->r[from], UINT32_MAX);
		if (rc)
			die("zinc_wait: %s", zinc_strerror(rc));
		break;
	default:
		break;
	}
}

static int pp_child(void *arg)
{
	struct pp_side *s = arg;
	struct pingpong *pp = s->pp;
	pin_cpu(pp->cpu[s->role]);
	if (pp->m == M_ZINC || pp->m == M_ZINC_SPIN) {
		for (int i = 0; i < 2; i++) {
			int rc = zinc_open(pp->rname[i], &s->r[i]);
			if (rc)
				die("zinc_open %s: %s", pp->rname[i], zinc_strerror(rc));
		}
		if (pp->m == M_ZINC_SPIN)
			zinc_set_spin(s->r[s->role == 0 ? 1 : 0], opt.spin_ns);
	}
	/* Close the ends this side never uses, so a dead peer gives EOF. */
	s->seen = 0;
	/* barrier: both sides ready */
	uint32_t v = __atomic_add_fetch(&pp->sh->ready, 1, __ATOMIC_SEQ_CST);
	if (v == 2)
		futex(&pp->sh->ready, FUTEX_WAKE, INT32_MAX);
	while ((v = __atomic_load_n(&pp->sh->ready, __ATOMIC_ACQUIRE)) < 2)
		futex(&pp->sh->ready, FUTEX_WAIT, v);
	go_fifo();

	if (s->role == 0) {
		for (long i = 0; i < pp->warm + pp->n; i++) {
			uint64_t t0 = now_ns();
			pp_signal(s);
			pp_wait(s);
			uint64_t t1 = now_ns();
			if (i >= pp->warm)
				pp->samples[i - pp->warm] = t1 - t0;
		}
		__atomic_store_n(&pp->sh->stop, 1, __ATOMIC_SEQ_CST);
		pp_signal(s);
	} else {
		for (;;) {
			pp_wait(s);
			if (__atomic_load_n(&pp->sh->stop, __ATOMIC_ACQUIRE))
				break;
			pp_signal(s);
		}
	}
	for (int i = 0; i < 2; i++)
		zinc_close(s->r[i]);
	return 0;
}

/* One ping-pong pass: n samples of mechanism m written to out. */
static void pingpong_pass(enum mech m, int cpu0, int cpu1, long warm, long n,
			  uint64_t *out)
{
	struct pingpong pp = { .m = m, .cpu = { cpu0, cpu1 }, .warm = warm, .n = n };
	pp.sh = shared_alloc(sizeof(*pp.sh));
	pp.samples = shared_alloc((size_t)n * sizeof(uint64_t));
	pp.efd[0] = pp.efd[1] = -1;
	for (int i = 0; i < 2; i++)
		pp.pfd[i][0] = pp.pfd[i][1] = -1;
	switch (m) {
	case M_EVENTFD:
		for (int i = 0; i < 2; i++)
			if ((pp.efd[i] = eventfd(0, EFD_CLOEXEC)) < 0)
				die("eventfd: %s", strerror(errno));
		break;
	case M_PIPE:
		for (int i = 0; i < 2; i++)
			if (pipe2(pp.pfd[i], O_CLOEXEC))
				die("pipe: %s", strerror(errno));
		break;
	case M_ZINC:
	case M_ZINC_SPIN:
		for (int i = 0; i < 2; i++) {
			region_name(pp.rname[i], sizeof(pp.rname[i]), i ? "pong" : "ping");
			int rc = zinc_create(pp.rname[i], (uintptr_t)sysconf(_SC_PAGESIZE),
					     &pp.owner[i]);
			if (rc)
				die("zinc_create %s: %s", pp.rname[i], zinc_strerror(rc));
		}
		break;
	default:
		break;
	}
	struct pp_side side[2] = { { .pp = &pp, .role = 0 }, { .pp = &pp, .role = 1 } };
	pid_t ponger = spawn(pp_child, &side[1]);
	pid_t pinger = spawn(pp_child, &side[0]);
	reap(pinger, "ping-pong pinger");
	reap(ponger, "ping-pong ponger");
	memcpy(out, pp.samples, (size_t)n * sizeof(uint64_t));
	for (int i = 0; i < 2; i++) {
		if (pp.efd[i] >= 0)
			close(pp.efd[i]);
		for (int j = 0; j < 2; j++)
			if (pp.pfd[i][j] >= 0)
				close(pp.pfd[i][j]);
		zinc_close(pp.owner[i]);
	}
	munmap(pp.samples, (size_t)n * sizeof(uint64_t));
	munmap(pp.sh, sizeof(*pp.sh));
}

static void row1(void)
{
	/* Interleaved passes, pooled: slow drifts of a shared machine hit
	 * every mechanism alike. */
	long n = opt.quick ? 10000 : 40000;
	int passes = opt.quick ? 20 : 80;
	long per = n / passes;
	long warm = opt.quick ? 1000 : 1000;
	const char *places[2] = { "same", "split" };
	int nplace = ncpu >= 2 ? 2 : 1;
	if (ncpu < 2)
		add_skip("1 split", "only one CPU available");

	for (int p = 0; p < nplace; p++) {
		int cpu1 = p == 0 ? 0 : 1;
		uint64_t *v[M_COUNT];
		for (int m = 0; m < M_COUNT; m++)
			v[m] = malloc((size_t)n * sizeof(uint64_t));
		for (int pass = 0; pass < passes; pass++)
			for (int m = 0; m < M_COUNT; m++)
				pingpong_pass((enum mech)m, 0, cpu1, warm, per, v[m] + pass * per);
		for (int m = 0; m < M_COUNT; m++) {
			if (opt.dump) { /* raw samples in ns, in pass order */
				char path[PATH_MAX];
				snprintf(path, sizeof(path), "%s/row1-%d-%s.txt", opt.dump, m, places[p]);
				FILE *f = fopen(path, "w");
				if (!f)
					die("%s: %s", path, strerror(errno));
				for (long i = 0; i < per * passes; i++)
					fprintf(f, "%" PRIu64 "\n", v[m][i]);
				fclose(f);
			}
			add_result("1", mech_name[m], places[p], "us", v[m], (size_t)(per * passes),
				   1000.0, "round trips");
			free(v[m]);
		}
		struct result *base = find_result("1", mech_name[M_FUTEX], places[p]);
		for (int m = 1; m < M_COUNT; m++)
			set_ratio(find_result("1", mech_name[m], places[p]), base);
	}
}

/* ------------------------------------------------------------------ */
/* row 2: cost of a notify nobody waits for */

struct nw_arg {
	int kind;                 /* 0 atomic, 1 atomic + FUTEX_WAKE, 2 zinc_notify,
				     3 getppid, 4 FUTEX_WAIT on a changed value,
				     5 eventfd write */
	long batches, per_batch;
	uint32_t *word;
	const char *rname;
	uint64_t *out;            /* shared: ns per batch */
};

static int nw_child(void *a)
{
	struct nw_arg *arg = a;
	zinc_region *r = NULL;
	pin_cpu(0);
	if (arg->kind == 2) {
		int rc = zinc_open(arg->rname, &r);
		if (rc)
			die("zinc_open: %s", zinc_strerror(rc));
	}
	int efd = eventfd(0, EFD_CLOEXEC);
	if (efd < 0)
		die("eventfd: %s", strerror(errno));
	uint64_t one = 1;
	go_fifo();
	uint32_t *w = arg->word;
	for (long b = -1; b < arg->batches; b++) { /* batch -1 warms up */
		uint64_t t0 = now_ns();
		switch (arg->kind) {
		case 0:
			for (long i = 0; i < arg->per_batch; i++)
				__atomic_fetch_add(w, 1, __ATOMIC_SEQ_CST);
			break;
		case 1:
			for (long i = 0; i < arg->per_batch; i++) {
				__atomic_fetch_add(w, 1, __ATOMIC_SEQ_CST);
				futex(w, FUTEX_WAKE, INT32_MAX);
			}
			break;
		case 2:
			for (long i = 0; i < arg->per_batch; i++)
				zinc_notify(r);
			break;
		case 3:
			for (long i = 0; i < arg->per_batch; i++)
				syscall(SYS_getppid);
			break;
		case 4:
			for (long i = 0; i < arg->per_batch; i++)
				futex(w, FUTEX_WAIT, *w + 1); /* EAGAIN at once */
			break;
		default:
			for (long i = 0; i < arg->per_batch; i++)
				if (write(efd, &one, 8) != 8)
					die("eventfd write: %s", strerror(errno));
			break;
		}
		uint64_t t1 = now_ns();
		if (b >= 0)
			arg->out[b] = t1 - t0;
	}
	close(efd);
	zinc_close(r);
	return 0;
}

static void row2(void)
{
	long batches = 20;
	long per = opt.quick ? 100000 : 500000; /* full: 10M ops per case */
	static const char *names[6] = {
		"atomic increment (baseline)",
		"increment + FUTEX_WAKE (baseline)",
		"zinc_notify, no waiter",
		"context: getppid() syscall",
		"context: FUTEX_WAIT, value changed (EAGAIN)",
		"context: eventfd write(), no reader",
	};
	char rname[64];
	region_name(rname, sizeof(rname), "nowaiter");
	zinc_region *owner;
	int rc = zinc_create(rname, (uintptr_t)sysconf(_SC_PAGESIZE), &owner);
	if (rc)
		die("zinc_create: %s", zinc_strerror(rc));
	uint32_t *word = shared_alloc(4096);
	uint64_t *out = shared_alloc((size_t)batches * sizeof(uint64_t));
	for (int k = 0; k < 6; k++) {
		/* The context rows explain row 1; fewer ops suffice. */
		long per_k = k < 3 ? per : per / 5;
		struct nw_arg a = { .kind = k, .batches = batches, .per_batch = per_k,
				    .word = word, .rname = rname, .out = out };
		reap(spawn(nw_child, &a), "notify cost");
		char unit_s[64];
		snprintf(unit_s, sizeof(unit_s), "batches of %ld ops", per_k);
		struct result *r = add_result("2", names[k], "cpu0", "ns/op", out,
					      (size_t)batches, (double)per_k, unit_s);
		r->ops = batches * per_k;
	}
	set_ratio(find_result("2", names[1], "cpu0"), find_result("2", names[0], "cpu0"));
	set_ratio(find_result("2", names[2], "cpu0"), find_result("2", names[0], "cpu0"));
	zinc_close(owner);
	munmap(word, 4096);
	munmap(out, (size_t)batches * sizeof(uint64_t));
}

/* ------------------------------------------------------------------ */
/* row 3: one notify, N waiters */

struct fan_shared {
	uint32_t word __attribute__((aligned(64)));   /* raw futex */
	uint32_t arrived __attribute__((aligned(64)));
	uint32_t done __attribute__((aligned(64)));
	uint32_t stop __attribute__((aligned(64)));
	uint64_t ret[]; /* per waiter: return time of this round */
};

struct fan {
	int zinc;                 /* 1 libzinc, 0 raw futex */
	int n;
	long rounds;
	struct fan_shared *sh;
	char rname[64];
	int idx;                  /* waiter index, set before each fork */
	int ncpu;
};

static int fan_waiter(void *a)
{
	struct fan *f = a;
	zinc_region *r = NULL;
	/* Waiter i on CPU (i+1) mod ncpu: N=1 crosses CPUs, larger N alternate. */
	pin_cpu((f->idx + 1) % f->ncpu);
	if (f->zinc) {
		int rc = zinc_open(f->rname, &r);
		if (rc)
			die("zinc_open: %s", zinc_strerror(rc));
	}
	go_fifo();
	uint32_t seen = 0;
	for (;;) {
		__atomic_fetch_add(&f->sh->arrived, 1, __ATOMIC_SEQ_CST);
		if (f->zinc) {
			int rc = zinc_wait(r, UINT32_MAX);
			if (rc)
				die("zinc_wait: %s", zinc_strerror(rc));
		} else {
			seen = futex_wait_change(&f->sh->word, seen);
		}
		f->sh->ret[f->idx] = now_ns();
		if (__atomic_load_n(&f->sh->stop, __ATOMIC_ACQUIRE))
			break;
		uint32_t d = __atomic_add_fetch(&f->sh->done, 1, __ATOMIC_SEQ_CST);
		if (d % (uint32_t)f->n == 0)
			futex(&f->sh->done, FUTEX_WAKE, INT32_MAX);
	}
	zinc_close(r);
	return 0;
}

/* 1 when every pid is asleep (state S), reading /proc/PID/stat via fds. */
static int all_sleeping(const int *statfd, int n)
{
	char buf[512];
	for (int i = 0; i < n; i++) {
		ssize_t k = pread(statfd[i], buf, sizeof(buf) - 1, 0);
		if (k <= 0)
			die("read /proc/PID/stat: %s", strerror(errno));
		buf[k] = 0;
		char *p = strrchr(buf, ')');
		if (!p || p[1] != ' ' || p[2] != 'S')
			return 0;
	}
	return 1;
}

struct fan_notifier {
	struct fan *f;
	zinc_region *r;
	pid_t *pids;
	uint64_t *first, *last;   /* shared, rounds entries */
	long warm;
};

static int fan_notify_child(void *a)
{
	struct fan_notifier *fn = a;
	struct fan *f = fn->f;
	int *statfd = malloc((size_t)f->n * sizeof(int));
	for (int i = 0; i < f->n; i++) {
		char path[64];
		snprintf(path, sizeof(path), "/proc/%d/stat", (int)fn->pids[i]);
		if ((statfd[i] = open(path, O_RDONLY | O_CLOEXEC)) < 0)
			die("open %s: %s", path, strerror(errno));
	}
	pin_cpu(0);
	go_fifo();
	const struct timespec pause = { 0, 20000 };
	/* The extra last round only releases the waiters to exit. */
	for (long round = 0; round <= fn->warm + f->rounds; round++) {
		uint32_t target = (uint32_t)((round + 1) * f->n);
		/* Prove every waiter is blocked before notifying. */
		for (;;) {
			if (__atomic_load_n(&f->sh->arrived, __ATOMIC_ACQUIRE) == target &&
			    all_sleeping(statfd, f->n))
				break;
			nanosleep(&pause, NULL);
		}
		int last_round = round == fn->warm + f->rounds;
		if (last_round)
			__atomic_store_n(&f->sh->stop, 1, __ATOMIC_SEQ_CST);
		uint64_t t0 = now_ns();
		if (f->zinc) {
			zinc_notify(fn->r);
		} else {
			__atomic_fetch_add(&f->sh->word, 1, __ATOMIC_SEQ_CST);
			futex(&f->sh->word, FUTEX_WAKE, INT32_MAX);
		}
		if (last_round)
			break;
		uint32_t d;
		while ((d = __atomic_load_n(&f->sh->done, __ATOMIC_ACQUIRE)) < target)
			futex(&f->sh->done, FUTEX_WAIT, d);
		if (round >= fn->warm) {
			uint64_t lo = UINT64_MAX, hi = 0;
			for (int i = 0; i < f->n; i++) {
				uint64_t t = f->sh->ret[i];
				lo = t < lo ? t : lo;
				hi = t > hi ? t : hi;
			}
			fn->first[round - fn->warm] = lo - t0;
			fn->last[round - fn->warm] = hi - t0;
		}
	}
	return 0;
}

static void fan_run(int zinc, int n, long rounds, uint64_t *first, uint64_t *last)
{
	struct fan f = { .zinc = zinc, .n = n, .rounds = rounds, .ncpu = ncpu < 2 ? 1 : 2 };
	size_t shsize = sizeof(struct fan_shared) + (size_t)n * sizeof(uint64_t);
	f.sh = shared_alloc(shsize);
	zinc_region *owner = NULL;
	if (zinc) {
		region_name(f.rname, sizeof(f.rname), "fan");
		int rc = zinc_create(f.rname, (uintptr_t)sysconf(_SC_PAGESIZE), &owner);
		if (rc)
			die("zinc_create: %s", zinc_strerror(rc));
	}
	pid_t *pids = malloc((size_t)n * sizeof(pid_t));
	for (int i = 0; i < n; i++) {
		f.idx = i;
		pids[i] = spawn(fan_waiter, &f);
	}
	struct fan_notifier fn = { .f = &f, .pids = pids, .warm = 10 };
	fn.first = shared_alloc((size_t)rounds * sizeof(uint64_t));
	fn.last = shared_alloc((size_t)rounds * sizeof(uint64_t));
	if (zinc) {
		int rc = zinc_open(f.rname, &fn.r);
		if (rc)
			die("zinc_open: %s", zinc_strerror(rc));
	}
	reap(spawn(fan_notify_child, &fn), "fan-out notifier");
	for (int i = 0; i < n; i++)
		reap(pids[i], "fan-out waiter");
	memcpy(first, fn.first, (size_t)rounds * sizeof(uint64_t));
	memcpy(last, fn.last, (size_t)rounds * sizeof(uint64_t));
	zinc_close(fn.r);
	zinc_close(owner);
	munmap(fn.first, (size_t)rounds * sizeof(uint64_t));
	munmap(fn.last, (size_t)rounds * sizeof(uint64_t));
	munmap(f.sh, shsize);
	free(pids);
}

static void row3(void)
{
	static const int ns[3] = { 1, 8, 64 };
	for (int k = 0; k < 3; k++) {
		int n = ns[k];
		long rounds = opt.quick ? 200 : (n == 64 ? 1000 : 2000);
		int passes = opt.quick ? 1 : 2; /* interleaved, pooled */
		long per = rounds / passes;
		uint64_t *first[2], *last[2];
		for (int z = 0; z < 2; z++) {
			first[z] = malloc((size_t)rounds * sizeof(uint64_t));
			last[z] = malloc((size_t)rounds * sizeof(uint64_t));
		}
		for (int pass = 0; pass < passes; pass++)
			for (int z = 0; z < 2; z++)
				fan_run(z, n, per, first[z] + pass * per, last[z] + pass * per);
		rounds = per * passes;
		char name[96], place[16];
		snprintf(place, sizeof(place), "N=%d", n);
		struct result *base_last = NULL;
		for (int z = 0; z < 2; z++) {
			const char *who = z ? "libzinc" : "raw futex";
			const char *tag = z ? "" : " (baseline)";
			snprintf(name, sizeof(name), "%s: last waiter returns%s", who, tag);
			struct result *rl = add_result("3", name, place, "us", last[z],
						       (size_t)rounds, 1000.0, "notifies");
			if (n > 1) {
				snprintf(name, sizeof(name), "%s: first waiter returns%s", who, tag);
				struct result *rf = add_result("3", name, place, "us", first[z],
							       (size_t)rounds, 1000.0, "notifies");
				if (z)
					set_ratio(rf, find_result("3",
						"raw futex: first waiter returns (baseline)", place));
			}
			if (z)
				set_ratio(rl, base_last);
			else
				base_last = rl;
		}
		for (int z = 0; z < 2; z++) {
			free(first[z]);
			free(last[z]);
		}
	}
}

/* ------------------------------------------------------------------ */
/* row 8: zinc_wait_any over N handles, the last one notified */

#define WA_MAX 1024

struct wa_arg {
	char prefix[64];          /* regions PREFIX_0..PREFIX_{N-1}, PREFIX_pong */
	int n, any;               /* any: zinc_wait_any over n, else zinc_wait */
	long rounds;              /* warm-up included */
};

static void wa_name(char *buf, size_t size, const char *prefix, int i)
{
	if (i < 0)
		snprintf(buf, size, "%s_pong", prefix);
	else
		snprintf(buf, size, "%s_%d", prefix, i);
}

static zinc_region *wa_open(const char *prefix, int i)
{
	char name[96];
	zinc_region *r;
	wa_name(name, sizeof(name), prefix, i);
	int rc = zinc_open(name, &r);
	if (rc)
		die("zinc_open %s: %s", name, zinc_strerror(rc));
	return r;
}

/* The waiter: waits for the last region (in the last helper's share when
 * n > 128), answers on pong. */
static int wa_child(void *a)
{
	struct wa_arg *arg = a;
	static zinc_region *h[WA_MAX];
	static int32_t ready[WA_MAX];
	for (int i = 0; i < arg->n; i++)
		h[i] = wa_open(arg->prefix, i);
	zinc_region *pong = wa_open(arg->prefix, -1);
	/* Earlier cases' notifications are not ours; then tell we are ready. */
	for (int i = 0; i < arg->n; i++)
		zinc_try_wait(h[i]);
	zinc_notify(pong);
	for (long r = 0; r < arg->rounds; r++) {
		int rc = arg->any ? zinc_wait_any(h, (uint32_t)arg->n, ready, NULL,
						  UINT32_MAX, 0)
				  : zinc_wait(h[arg->n - 1], UINT32_MAX);
		if (rc != (arg->any ? 1 : 0) || (arg->any && ready[arg->n - 1] != 1))
			die("row 8: wait returned %d", rc);
		zinc_notify(pong);
	}
	return 0;
}

static void row8(void)
{
	long warm = 200, rounds = opt.quick ? 2000 : 10000;
	static const struct { int n, any; const char *name; } cases[] = {
		{ 1, 0, "zinc_wait, 1 handle (baseline)" },
		{ 1, 1, "zinc_wait_any, 1 handle" },
		{ 128, 1, "zinc_wait_any, 128 handles, last notified" },
		{ 1024, 1, "zinc_wait_any, 1,024 handles, last notified" },
	};
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	uint64_t *out = malloc((size_t)rounds * sizeof(*out));
	static zinc_region *owner[WA_MAX + 1];
	struct wa_arg arg;
	region_name(arg.prefix, sizeof(arg.prefix), "any");
	for (int i = -1; i < WA_MAX; i++) {
		char name[96];
		wa_name(name, sizeof(name), arg.prefix, i);
		int rc = zinc_create(name, (uintptr_t)sysconf(_SC_PAGESIZE), &owner[i + 1]);
		if (rc)
			die("zinc_create %s: %s", name, zinc_strerror(rc));
	}
	for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		arg.n = cases[k].n;
		arg.any = cases[k].any;
		arg.rounds = warm + rounds;
		zinc_region *ping = owner[arg.n]; /* region n-1 */
		zinc_region *pong = wa_open(arg.prefix, -1);
		zinc_try_wait(pong);
		pid_t pid = spawn(wa_child, &arg);
		if (zinc_wait(pong, UINT32_MAX))
			die("row 8: waiter not ready");
		for (long r = 0; r < warm + rounds; r++) {
			uint64_t t0 = now_ns();
			zinc_notify(ping);
			if (zinc_wait(pong, UINT32_MAX))
				die("row 8: pong wait failed");
			if (r >= warm)
				out[r - warm] = now_ns() - t0;
		}
		reap(pid, "row 8 waiter");
		zinc_close(pong);
		add_result("8", cases[k].name, "any", "us", out, (size_t)rounds, 1000.0,
			   "round trips");
	}
	for (size_t k = 1; k < sizeof(cases) / sizeof(cases[0]); k++)
		set_ratio(find_result("8", cases[k].name, "any"),
			  find_result("8", cases[0].name, "any"));
	for (int i = 0; i <= WA_MAX; i++)
		zinc_close(owner[i]);
	free(out);
}

/* ------------------------------------------------------------------ */
/* targets on rows 1-3 */

static void targets_lib(void)
{
	char buf[160];
	for (int p = 0; p < 2; p++) {
		const char *place = p ? "split" : "same";
		struct result *z = find_result("1", mech_name[M_ZINC], place);
		struct result *f = find_result("1", mech_name[M_FUTEX], place);
		struct result *e = find_result("1", mech_name[M_EVENTFD], place);
		if (!z || !f || !e)
			continue;
		double rf = z->median / f->median, re = z->median / e->median;
		char t[128];
		snprintf(buf, sizeof(buf), "%.2fx (%.2f vs %.2f us)", rf, z->median, f->median);
		snprintf(t, sizeof(t), "libzinc ping-pong median <= 1.15x raw futex (%s)", place);
		add_target(t, buf, rf <= 1.15);
		snprintf(buf, sizeof(buf), "%.2fx (%.2f vs %.2f us)", re, z->median, e->median);
		snprintf(t, sizeof(t), "libzinc ping-pong median not slower than eventfd (%s)",
			 place);
		add_target(t, buf, re <= 1.0);
	}
	struct result *s = find_result("1", mech_name[M_ZINC_SPIN], "split");
	if (s) {
		snprintf(buf, sizeof(buf), "%.2f us (spin %u ns)", s->median, opt.spin_ns);
		add_target("libzinc with spin: split ping-pong median < 2 us", buf,
			   s->median < 2.0);
	}
	struct result *n = find_result("2", "zinc_notify, no waiter", "cpu0");
	struct result *a = find_result("2", "atomic increment (baseline)", "cpu0");
	if (n && a) {
		snprintf(buf, sizeof(buf), "%.2fx (%.2f vs %.2f ns/op)", n->median / a->median,
			 n->median, a->median);
		add_target("zinc_notify with no waiter <= 3x atomic increment", buf,
			   n->median / a->median <= 3.0);
	}
}

/* ------------------------------------------------------------------ */
/* output */

static void json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			fprintf(f, "\\%c", *s);
		else if ((unsigned char)*s < 0x20)
			fprintf(f, "\\u%04x", *s);
		else
			fputc(*s, f);
	}
	fputc('"', f);
}

static void machine(char *buf, size_t size)
{
	struct utsname u;
	uname(&u);
	char model[128] = "?";
	FILE *f = fopen("/proc/cpuinfo", "r");
	char line[256];
	while (f && fgets(line, sizeof(line), f)) {
		if (!strncmp(line, "model name", 10)) {
			char *p = strchr(line, ':');
			if (p) {
				p += 2;
				p[strcspn(p, "\n")] = 0;
				snprintf(model, sizeof(model), "%s", p);
			}
			break;
		}
	}
	if (f)
		fclose(f);
	snprintf(buf, size, "%s %s %s, %d CPUs (%s)", u.sysname, u.release, u.machine,
		 ncpu, model);
}

static void print_table(void)
{
	const char *last_row = "";
	printf("%-4s %-56s %-6s %-6s %10s %10s %10s %8s  %s\n", "row", "case", "place",
	       "unit", "min", "median", "p99", "samples", "median vs baseline");
	for (int i = 0; i < nresults; i++) {
		struct result *r = &results[i];
		if (strcmp(r->row, last_row))
			printf("\n");
		last_row = r->row;
		char ratio[96] = "";
		if (r->ratio >= 0)
			snprintf(ratio, sizeof(ratio), r->ratio < 0.1 ? "%.3fx %s" : "%.2fx %s",
				 r->ratio, r->base);
		if (r->has_stats)
			printf("%-4s %-56s %-6s %-6s %10.3f %10.3f %10.3f %8ld  %s\n", r->row,
			       r->name, r->place, r->unit, r->min, r->median, r->p99,
			       r->samples, ratio);
		else
			printf("%-4s %-56s %-6s %-6s %10s %10.3f %10s %8ld  %s\n", r->row,
			       r->name, r->place, r->unit, "", r->median, "", r->samples, ratio);
	}
	printf("\nsamples: rows 1 and 4 = timed round trips after warm-up; row 2 = batches "
	       "(ns/op = batch time / ops); rows 3 and 6 = notifies, each timed to the first "
	       "and the last waiter's return; row 5 = full 64 MiB reads (GiB/s: min = "
	       "slowest read, p99 column = fastest read); a value without min/p99 is a "
	       "single reading.\n"
	       "placement: same = both processes on CPU 0, split = CPUs 0 and 1, "
	       "cpu0 = one process on CPU 0; row 4: zincfs pinned to CPU 0 (same) or 1 "
	       "(split), the FUSE round trip made from CPU 0; rows 5-7: zincfs not pinned.\n");
	for (int i = 0; i < nskipped; i++)
		printf("skipped: row %s: %s\n", skipped[i].rows, skipped[i].why);
	if (ntargets)
		printf("\ntargets:\n");
	for (int i = 0; i < ntargets; i++)
		printf("  [%s] %s: %s\n", targets[i].met ? "met" : "NOT met",
		       targets[i].text, targets[i].measured);
}

static void write_json(const char *path, const char *mach)
{
	FILE *f = fopen(path, "w");
	if (!f)
		die("%s: %s", path, strerror(errno));
	fprintf(f, "{\n  \"machine\": ");
	json_str(f, mach);
	fprintf(f, ",\n  \"mode\": \"%s\",\n  \"sched\": ", opt.quick ? "quick" : "full");
	char sched[200];
	if (fifo_ok == 1)
		snprintf(sched, sizeof(sched), "SCHED_FIFO priority %d", opt.fifo_prio);
	else
		snprintf(sched, sizeof(sched), "SCHED_OTHER: %s", fifo_why);
	json_str(f, sched);
	fprintf(f, ",\n  \"spin_ns\": %u,\n  \"results\": [\n", opt.spin_ns);
	for (int i = 0; i < nresults; i++) {
		struct result *r = &results[i];
		fprintf(f, "    {\"row\": ");
		json_str(f, r->row);
		fprintf(f, ", \"case\": ");
		json_str(f, r->name);
		fprintf(f, ", \"placement\": ");
		json_str(f, r->place);
		fprintf(f, ", \"unit\": ");
		json_str(f, r->unit);
		if (r->has_stats)
			fprintf(f, ", \"min\": %.4f, \"median\": %.4f, \"p99\": %.4f",
				r->min, r->median, r->p99);
		else
			fprintf(f, ", \"value\": %.4f", r->median);
		fprintf(f, ", \"samples\": %ld, \"sample_unit\": ", r->samples);
		json_str(f, r->sample_unit);
		if (r->ops)
			fprintf(f, ", \"ops\": %ld", r->ops);
		if (r->ratio >= 0) {
			fprintf(f, ", \"baseline\": ");
			json_str(f, r->base);
			fprintf(f, ", \"ratio\": %.4f", r->ratio);
		}
		fprintf(f, "}%s\n", i + 1 < nresults ? "," : "");
	}
	fprintf(f, "  ],\n  \"skipped\": [");
	for (int i = 0; i < nskipped; i++) {
		fprintf(f, "%s\n    {\"rows\": ", i ? "," : "");
		json_str(f, skipped[i].rows);
		fprintf(f, ", \"reason\": ");
		json_str(f, skipped[i].why);
		fprintf(f, "}");
	}
	fprintf(f, "%s],\n  \"targets\": [", nskipped ? "\n  " : "");
	for (int i = 0; i < ntargets; i++) {
		fprintf(f, "%s\n    {\"target\": ", i ? "," : "");
		json_str(f, targets[i].text);
		fprintf(f, ", \"measured\": ");
		json_str(f, targets[i].measured);
		fprintf(f, ", \"met\": %s}", targets[i].met ? "true" : "false");
	}
	fprintf(f, "%s]\n}\n", ntargets ? "\n  " : "");
	if (fclose(f))
		die("%s: %s", path, strerror(errno));
}

/* Data files for the chart: one per chart panel, "label median p99". */
static void write_dat(const char *dir)
{
	static const struct { const char *file, *row, *unit; } panels[] = {
		{ "row1.dat", "1", "us" }, { "row3.dat", "3", "us" },
		{ "row4.dat", "4", "us" }, { "row5.dat", "5", "GiB/s" },
	};
	for (size_t k = 0; k < sizeof(panels) / sizeof(panels[0]); k++) {
		char path[PATH_MAX];
		snprintf(path, sizeof(path), "%s/%s", dir, panels[k].file);
		FILE *f = fopen(path, "w");
		if (!f)
			die("%s: %s", path, strerror(errno));
		for (int i = 0; i < nresults; i++) {
			struct result *r = &results[i];
			if (strcmp(r->row, panels[k].row) || strcmp(r->unit, panels[k].unit))
				continue;
			char label[160];
			snprintf(label, sizeof(label), "%s %s", r->name, r->place);
			/* colour: 1 baseline (grey), 2 libzinc/zincfs */
			char *b = strstr(label, " (baseline)");
			int colour = b ? 1 : 2;
			if (b)
				memmove(b, b + 11, strlen(b + 11) + 1);
			fprintf(f, "\"%s\" %.4f %.4f %d\n", label, r->median, r->p99, colour);
		}
		fclose(f);
	}
}

/* ------------------------------------------------------------------ */

static int want_row(int row)
{
	if (!opt.rows[0])
		return 1;
	char buf[80];
	snprintf(buf, sizeof(buf), ",%s,", opt.rows);
	char key[8];
	snprintf(key, sizeof(key), ",%d,", row);
	return strstr(buf, key) != NULL;
}

static void usage(void)
{
	fprintf(stderr,
		"usage: zinc-bench [--quick] [--json FILE] [--dat DIR] [--rows 1,2,...]\n"
		"                  [--spin-ns NS] [--no-fifo] [--mnt DIR --daemon-pid PID]\n"
		"                  [--bridge PORT:DIR_A:DIR_B]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(a, "--quick"))
			opt.quick = 1;
		else if (!strcmp(a, "--no-fifo"))
			opt.no_fifo = 1;
		else if (!strcmp(a, "--json") && v)
			opt.json = argv[++i];
		else if (!strcmp(a, "--dump") && v)
			opt.dump = argv[++i];
		else if (!strcmp(a, "--dat") && v)
			opt.dat = argv[++i];
		else if (!strcmp(a, "--mnt") && v)
			opt.mnt = argv[++i];
		else if (!strcmp(a, "--daemon-pid") && v)
			opt.daemon_pid = atoi(argv[++i]);
		else if (!strcmp(a, "--max-threads") && v)
			opt.max_threads = atoi(argv[++i]);
		else if (!strcmp(a, "--bridge") && v) {
			/* PORT:DIR_A:DIR_B, from scripts/bench.sh */
			char *b = strdup(argv[++i]), *da = strchr(b, ':');
			char *db = da ? strchr(da + 1, ':') : NULL;
			if (!db)
				usage();
			*da++ = *db++ = '\0';
			opt.broker_port = atoi(b);
			opt.bridge_dir[0] = da;
			opt.bridge_dir[1] = db;
		} else if (!strcmp(a, "--skip-bridge") && v)
			opt.skip_bridge = argv[++i];
		else if (!strcmp(a, "--skip-fs") && v)
			opt.skip_fs = argv[++i];
		else if (!strcmp(a, "--rows") && v)
			snprintf(opt.rows, sizeof(opt.rows), "%s", argv[++i]);
		else if (!strcmp(a, "--spin-ns") && v)
			opt.spin_ns = (uint32_t)strtoul(argv[++i], NULL, 10);
		else
			usage();
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	cpu_set_t set;
	sched_getaffinity(0, sizeof(set), &set);
	ncpu = CPU_COUNT(&set);
	opt.ncpu = ncpu;
	if (ncpu >= 2 && (!CPU_ISSET(0, &set) || !CPU_ISSET(1, &set)))
		die("CPUs 0 and 1 must be usable");
	probe_fifo();

	char mach[300];
	machine(mach, sizeof(mach));
	const char *dir = getenv("ZINC_SHM_DIR");
	printf("zinc-bench: %s mode, libzinc 0x%08x, %s\n", opt.quick ? "quick" : "full",
	       zinc_version(), mach);
	if (fifo_ok == 1)
		printf("zinc-bench: timed processes run under SCHED_FIFO priority %d\n",
		       opt.fifo_prio);
	else
		printf("zinc-bench: timed processes run under SCHED_OTHER: %s\n", fifo_why);
	printf("zinc-bench: regions in %s; waits use UINT32_MAX (no timeout); spin = %u ns\n",
	       dir && *dir ? dir : "/dev/shm (ZINC_SHM_DIR unset)", opt.spin_ns);

	uint64_t t0 = now_ns();
	if (want_row(1)) {
		fprintf(stderr, "zinc-bench: row 1 (ping-pong)...\n");
		row1();
	}
	if (want_row(2)) {
		fprintf(stderr, "zinc-bench: row 2 (notify, no waiter)...\n");
		row2();
	}
	if (want_row(3)) {
		fprintf(stderr, "zinc-bench: row 3 (fan-out)...\n");
		row3();
	}
	if (want_row(8)) {
		fprintf(stderr, "zinc-bench: row 8 (zinc_wait_any)...\n");
		row8();
	}
	targets_lib();
	fs_rows(want_row);
	if (want_row(10)) {
		fprintf(stderr, "zinc-bench: row 10 (zinc-bridge)...\n");
		bridge_row();
	}
	printf("zinc-bench: measured in %.1f s\n\n", (double)(now_ns() - t0) / 1e9);
	print_table();
	if (opt.json)
		write_json(opt.json, mach);
	if (opt.dat)
		write_dat(opt.dat);
	return 0;
}
