/* SPDX-License-Identifier: MIT */
/*
 * zinc-soak: the worker processes of the soak test (driven by soak.py).
 *
 *   zinc-soak init LEDGER MOUNT PREFIX K NPROD NCONS   create the ledger, print the plan
 *   zinc-soak hold LEDGER R          hold region R (open, else create) until SIGTERM/stop
 *   zinc-soak produce LEDGER P       producer P until the ledger's stop flag
 *   zinc-soak consume LEDGER C       consumer C until the ledger's stop flag
 *   zinc-soak enospc NAME CAP        zinc_create must fail with -ENOSPC, leaving nothing
 *   zinc-soak stats LEDGER           print the summed counters (key=value lines)
 *
 * Regions: K regions PREFIX0..PREFIX{K-1}.  Producer p writes region p % K,
 * page p / K of its data (one page per producer, so writers through a
 * mapping of the mount never share a page with anyone).  A page is a ring
 * of 64 slots of 64 bytes; sequence number s goes to slot s % 64.
 *
 * Slot (seqlock): ver = 2s+1 (odd: being written), then seq, ids, payload,
 * check, then ver = 2s+2.  A slot is *consistent* iff ver == 2*seq+2, the
 * ids are the producer's and check == H(all fields).  Readers copy the page
 * first (a snapshot: memcpy from libzinc's mapping, memcpy from a mapping of
 * NAME through the mount, or pread of NAME through the mount) and judge the
 * copy, so a torn copy (concurrent writer, page fetched by zincfs mid-write)
 * is an inconsistent slot, never a wrong value: a torn slot passes the
 * 64-bit check only by chance.
 *
 * The ledger (a file outside the region directory, mapped by everyone; the
 * checker's ground truth, not the mechanism under test) records for every
 * notification of producer p: its seq s, v_pre = the counter read before
 * the notify, v_upper = the counter read after it, t_after = CLOCK_MONOTONIC
 * after it.  The notify's own increment produced a value v with
 * v_pre < v <= v_upper.
 *
 * (a) No stale or torn data after a wake.  A consumer that was woken and
 *     then observed counter value C (zinc_seq after zinc_wait, or the number
 *     read from NAME.wait) must see, for every producer p of the region, a
 *     consistent slot with seq >= required_p, where required_p is the
 *     largest s in p's ledger with v_upper <= C.  Why that is owed: v <= C,
 *     and the data of s was written before the increment to v (a full
 *     barrier in zinc_notify; for .notify writes zincfs writes dirty pages
 *     back before it notifies), so whoever observes C >= v must see it (for
 *     a libzinc reader: atomic increments form one release sequence, so
 *     the acquire load of C synchronizes with the increment to v; for a
 *     mount reader: zincfs invalidates the page cache before it publishes
 *     C).  The ledger entry is written after the notify, so a consumer may
 *     find only an older entry: the check is then weaker, never wrong.
 *     A consistent slot with seq > the producer's started_seq (read after
 *     the copy) is a phantom; a consistent slot of another producer is an
 *     identity violation; a .wait value that does not increase is spurious.
 *
 * (b) No lost wake.  A consumer's wait starts at t0 with cursor C0 (the
 *     counter value it last consumed: every counter value != C0 wakes it)
 *     and times out after W.  On a timeout it looks for a notification that
 *     certainly moved the counter past C0 (v_pre >= C0, so v > C0) and
 *     whose notify had returned (t_after) at least MARGIN before the
 *     deadline: if one exists, the waiter slept through a notification
 *     for >= MARGIN: a lost wake.  Timeouts during which zincfs was
 *     killed/restarted (the ledger's daemon generation changed) are excused
 *     for consumers through the mount; a timeout with the counter moved only
 *     late is benign; if the ledger ring no longer reaches back to the
 *     deadline the timeout is counted as undecided.
 *
 * Faults: every process may be killed with SIGKILL at any point and started
 * again with the same role: producers continue from their started_seq, all
 * counters live in the ledger.  Processes using the mount reconnect when it
 * dies (ENOTCONN, ECONNABORTED, ENOENT, SIGBUS on a mapping of a dead
 * connection) and count it.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include <zinc.h>

#define PAGE 4096u
#define SLOTS 64u
#define LRING 32768u          /* ledger entries per producer */
#define WAIT_MS 2000u         /* one wait's timeout */
#define MARGIN_NS 1000000000ull /* a lost wake: asleep >= 1 s after a notify */
#define LEDGER_MAGIC 0x4b414f53434e495aull /* "ZINCSOAK" */
#define NSTAT 24

struct slot {
	uint64_t ver;
	uint64_t seq;
	uint32_t region, producer;
	uint64_t payload[4];
	uint64_t check;
};
_Static_assert(sizeof(struct slot) == 64, "slot is 64 bytes");

struct lentry {
	uint64_t gen; /* 2*idx+1 while written, 2*idx+2 when complete */
	uint64_t s;
	uint32_t v_pre, v_upper;
	uint64_t t_after;
};

enum { PS_NOTIFY, PS_FAIL, PS_RECONNECT, PS_START, PS_SIGBUS };
enum {
	CS_WAKE, CS_CHECK, CS_STALE, CS_PHANTOM, CS_IDENT, CS_SPURIOUS, CS_LOST,
	CS_UNDECIDED, CS_IDLE_TO, CS_BENIGN_TO, CS_EXCUSED_TO, CS_TORN,
	CS_UNCHECKED, CS_RECONNECT, CS_EIDRM, CS_SIGBUS, CS_START, CS_VANISHED,
	CS_NOTHING, CS_MAXLAG_US, CS_SLOW_OK, CS_STALE_MMAP,
};
static const char *const pstat_names[] = { "notifications", "notify_failed",
	"reconnects", "starts", "sigbus" };
static const char *const cstat_names[] = { "wakes", "pages_checked",
	"stale", "phantom", "identity", "spurious", "lost_wakes",
	"lost_wake_undecided", "idle_timeouts", "benign_timeouts",
	"excused_timeouts", "torn_slots_seen", "unchecked", "reconnects",
	"unexpected_eidrm", "sigbus", "starts", "region_vanished",
	"no_consistent_slot", "max_wake_lag_us", "long_waits_ok", "stale_mmap" };

struct lprod {
	uint64_t started_seq;
	uint64_t head;
	uint32_t kind, region;
	uint64_t stats[NSTAT];
	struct lentry ring[LRING];
};

struct lcons {
	uint32_t kind, region;
	uint64_t stats[NSTAT];
};

struct lhdr {
	uint64_t magic;
	uint32_t k, nprod, ncons, pages;
	uint64_t daemon_gen;  /* odd while zincfs is down (driver writes it) */
	uint64_t stop;        /* driver: 1 = finish and exit 0 */
	char mount[1024];
	char prefix[64];
	uint64_t hold_stats[64][4];
};

static struct lhdr *L;
static struct lprod *P0;
static struct lcons *C0;
static const char *role = "zinc-soak";
static volatile sig_atomic_t stop_sig;

static const char pkinds[] = "ZWMX"; /* libzinc; pwrite+.notify; mmap+.notify; libzinc data+.notify */
static const char ckinds[] = "ZPRS"; /* zinc_wait; .wait poll+mmap; .wait read+pread; zinc_wait with spin */

static void die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "%s: ", role);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(2);
}

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void sleep_us(long us)
{
	struct timespec ts = { us / 1000000, (us % 1000000) * 1000 };
	nanosleep(&ts, NULL);
}

static uint64_t mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

static uint64_t rng_state;
static uint64_t rnd(void)
{
	return mix(rng_state++);
}

static uint64_t slot_check(const struct slot *s)
{
	uint64_t h = mix(s->ver ^ 0x5a5a);
	h = mix(h ^ s->seq);
	h = mix(h ^ ((uint64_t)s->region << 32 | s->producer));
	for (int i = 0; i < 4; i++)
		h = mix(h ^ s->payload[i]);
	return h;
}

static void slot_fill(struct slot *s, uint64_t seq, uint32_t region, uint32_t producer)
{
	s->ver = 2 * seq + 2;
	s->seq = seq;
	s->region = region;
	s->producer = producer;
	for (int i = 0; i < 4; i++)
		s->payload[i] = mix(seq * 8 + (uint64_t)i + ((uint64_t)producer << 40));
	s->check = slot_check(s);
}

/* Seqlock write into live shared memory (a libzinc mapping or a mapping of
 * NAME through the mount). */
static void slot_publish(struct slot *dst, uint64_t seq, uint32_t region, uint32_t producer)
{
	struct slot v;
	slot_fill(&v, seq, region, producer);
	__atomic_store_n(&dst->ver, 2 * seq + 1, __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_RELEASE);
	volatile uint64_t *d = (volatile uint64_t *)dst;
	const uint64_t *src = (const uint64_t *)&v;
	for (unsigned i = 1; i < sizeof(v) / 8; i++)
		d[i] = src[i];
	__atomic_thread_fence(__ATOMIC_RELEASE);
	__atomic_store_n(&dst->ver, v.ver, __ATOMIC_RELAXED);
}

static int slot_consistent(const struct slot *s)
{
	return s->ver == 2 * s->seq + 2 && s->seq > 0 && s->check == slot_check(s);
}

/* ---- ledger ---- */

static size_t ledger_size(uint32_t nprod, uint32_t ncons)
{
	return sizeof(struct lhdr) + (size_t)nprod * sizeof(struct lprod) +
	       (size_t)ncons * sizeof(struct lcons);
}

static void ledger_map(const char *path)
{
	int fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		die("open %s: %s", path, strerror(errno));
	struct stat st;
	if (fstat(fd, &st) < 0 || (size_t)st.st_size < sizeof(struct lhdr))
		die("%s: not a ledger", path);
	void *m = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (m == MAP_FAILED)
		die("mmap %s: %s", path, strerror(errno));
	close(fd);
	L = m;
	if (L->magic != LEDGER_MAGIC ||
	    (size_t)st.st_size != ledger_size(L->nprod, L->ncons))
		die("%s: bad ledger", path);
	P0 = (struct lprod *)((char *)m + sizeof(struct lhdr));
	C0 = (struct lcons *)((char *)P0 + (size_t)L->nprod * sizeof(struct lprod));
}

static void stat_add(uint64_t *st, int i, uint64_t n)
{
	__atomic_fetch_add(&st[i], n, __ATOMIC_RELAXED);
}

static void stat_max(uint64_t *st, int i, uint64_t v)
{
	uint64_t old = __atomic_load_n(&st[i], __ATOMIC_RELAXED);
	while (v > old && !__atomic_compare_exchange_n(&st[i], &old, v, 0,
						       __ATOMIC_RELAXED, __ATOMIC_RELAXED))
		;
}

static int stopping(void)
{
	return stop_sig || __atomic_load_n(&L->stop, __ATOMIC_ACQUIRE);
}

static uint64_t daemon_gen(void)
{
	return __atomic_load_n(&L->daemon_gen, __ATOMIC_ACQUIRE);
}

static void ledger_append(struct lprod *p, uint64_t s, uint32_t v_pre, uint32_t v_upper)
{
	uint64_t idx = p->head;
	struct lentry *e = &p->ring[idx % LRING];
	__atomic_store_n(&e->gen, 2 * idx + 1, __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_RELEASE);
	e->s = s;
	e->v_pre = v_pre;
	e->v_upper = v_upper;
	e->t_after = now_ns();
	__atomic_store_n(&e->gen, 2 * idx + 2, __ATOMIC_RELEASE);
	__atomic_store_n(&p->head, idx + 1, __ATOMIC_RELEASE);
}

/* Read entry idx of p; 0 if it is gone (overwritten) or incomplete. */
static int ledger_get(struct lprod *p, uint64_t idx, struct lentry *out)
{
	struct lentry *e = &p->ring[idx % LRING];
	uint64_t g1 = __atomic_load_n(&e->gen, __ATOMIC_ACQUIRE);
	if (g1 != 2 * idx + 2)
		return 0;
	out->s = e->s;
	out->v_pre = e->v_pre;
	out->v_upper = e->v_upper;
	out->t_after = e->t_after;
	__atomic_thread_fence(__ATOMIC_ACQUIRE);
	return __atomic_load_n(&e->gen, __ATOMIC_RELAXED) == g1;
}

static void region_name(uint32_t r, char *buf, size_t n)
{
	snprintf(buf, n, "%s%u", L->prefix, r);
}

static void mount_path(uint32_t r, const char *sfx, char *buf, size_t n)
{
	snprintf(buf, n, "%s/%s%u%s", L->mount, L->prefix, r, sfx);
}

/* ---- signals ---- */

/* volatile: the stores around a memcpy must not be optimised away */
static sigjmp_buf *volatile bus_jmp;

static void on_bus(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	if (bus_jmp)
		siglongjmp(*bus_jmp, 1);
	char msg[160];
	int n = snprintf(msg, sizeof(msg), "%s: SIGBUS at %p outside a guarded access\n",
			 role, si->si_addr);
	if (write(2, msg, (size_t)n) < 0) {
		/* dying anyway */
	}
	signal(sig, SIG_DFL);
	raise(sig);
}

static void on_stop(int sig)
{
	(void)sig;
	stop_sig = 1;
}

static void on_alarm(int sig)
{
	(void)sig;
}

static void setup_signals(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop; /* no SA_RESTART: blocked reads end */
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sa.sa_handler = on_alarm;
	sigaction(SIGALRM, &sa, NULL);
	sa.sa_sigaction = on_bus;
	sa.sa_flags = SA_NODEFER | SA_SIGINFO;
	sigaction(SIGBUS, &sa, NULL);
}

/* Copy n bytes from a mapping that may SIGBUS (a dead FUSE connection).
 * 0 or -EFAULT. */
static int guarded_copy(void *dst, const void *src, size_t n)
{
	sigjmp_buf jb;
	if (sigsetjmp(jb, 1)) {
		bus_jmp = NULL;
		return -EFAULT;
	}
	bus_jmp = &jb;
	memcpy(dst, src, n);
	bus_jmp = NULL;
	return 0;
}

static int guarded_publish(struct slot *dst, uint64_t seq, uint32_t region, uint32_t producer)
{
	sigjmp_buf jb;
	if (sigsetjmp(jb, 1)) {
		bus_jmp = NULL;
		return -EFAULT;
	}
	bus_jmp = &jb;
	slot_publish(dst, seq, region, producer);
	bus_jmp = NULL;
	return 0;
}

/* ---- libzinc helpers ---- */

/* Open region r (a counting handle), never creating it after start-up:
 * the regions must live for the whole run. */
static zinc_region *open_region(uint32_t r, int observe, uint64_t *vanished)
{
	char name[128];
	region_name(r, name, sizeof(name));
	for (int i = 0;; i++) {
		zinc_region *h;
		int rc = zinc_open_ex(name, observe ? ZINC_OPEN_OBSERVE : 0, &h);
		if (rc == 0)
			return h;
		if (stopping())
			return NULL;
		if (rc == -ENOENT && vanished && i == 0) {
			fprintf(stderr, "%s: VIOLATION region %s vanished during the run\n",
				role, name);
			(*vanished)++;
		}
		if (rc != -ENOENT && rc != -EBADMSG)
			die("zinc_open %s: %s", name, zinc_strerror(rc));
		sleep_us(20000);
	}
}

/* ---- producer ---- */

struct mconn { int dfd, nfd; struct slot *map; size_t cap; };

static void mclose(struct mconn *m)
{
	if (m->map)
		munmap(m->map, m->cap);
	if (m->dfd >= 0)
		close(m->dfd);
	if (m->nfd >= 0)
		close(m->nfd);
	m->map = NULL;
	m->dfd = m->nfd = -1;
}

static int mopen(struct mconn *m, uint32_t r, int want_data, int want_map, int data_flags)
{
	char path[1200];
	m->dfd = m->nfd = -1;
	m->map = NULL;
	m->cap = (size_t)L->pages * PAGE;
	if (want_data) {
		mount_path(r, "", path, sizeof(path));
		m->dfd = open(path, data_flags | O_CLOEXEC);
		if (m->dfd < 0)
			goto fail;
		if (want_map) {
			int prot = (data_flags & O_ACCMODE) == O_RDONLY ? PROT_READ
									: PROT_READ | PROT_WRITE;
			void *p = mmap(NULL, m->cap, prot, MAP_SHARED, m->dfd, 0);
			if (p == MAP_FAILED)
				goto fail;
			m->map = p;
		}
	}
	return 0;
fail:;
	int e = errno;
	mclose(m);
	return -e;
}

static void reconnect_wait(uint64_t *counter)
{
	stat_add(counter, 0, 1);
	sleep_us(20000 + (long)(rnd() % 30000));
}

static int produce(uint32_t p)
{
	struct lprod *lp = &P0[p];
	uint32_t r = p % L->k, page = p / L->k;
	char kind = pkinds[(p + p / L->k) % 4];
	uint64_t *st = lp->stats;
	lp->kind = (uint32_t)kind;
	lp->region = r;
	stat_add(st, PS_START, 1);

	/* Z, X: a counting libzinc handle; W, M: an observer for the ledger. */
	zinc_region *h = open_region(r, kind == 'W' || kind == 'M', NULL);
	if (!h)
		return 0;
	struct mconn m = { -1, -1, NULL, 0 };
	int connected = kind == 'Z'; /* Z needs no mount */
	char npath[1200];
	mount_path(r, ".notify", npath, sizeof(npath));

	uint64_t s = __atomic_load_n(&lp->started_seq, __ATOMIC_ACQUIRE);
	while (!stopping()) {
		if (kind != 'Z' && !connected) {
			int rc = mopen(&m, r, kind != 'X', kind == 'M',
				       kind == 'M' ? O_RDWR : O_WRONLY);
			if (!rc) {
				m.nfd = open(npath, O_WRONLY | O_CLOEXEC);
				if (m.nfd < 0) {
					rc = -errno;
					mclose(&m);
				}
			}
			if (rc) {
				stat_add(st, PS_RECONNECT, 1);
				sleep_us(20000 + (long)(rnd() % 30000));
				continue;
			}
			connected = 1;
		}
		int burst = rnd() % 16 == 0 ? 1 + (int)(rnd() % 8) : 1;
		for (int b = 0; b < burst && connected; b++) {
			s++;
			__atomic_store_n(&lp->started_seq, s, __ATOMIC_RELEASE);
			size_t off = (size_t)page * PAGE + (s % SLOTS) * sizeof(struct slot);
			int fail = 0;
			if (kind == 'Z' || kind == 'X') {
				slot_publish((struct slot *)(zinc_ptr(h) + off), s, r, p);
			} else if (kind == 'M') {
				if (guarded_publish((struct slot *)((char *)m.map + off), s, r, p)) {
					stat_add(st, PS_SIGBUS, 1);
					fail = 1;
				}
			} else {
				struct slot v;
				slot_fill(&v, s, r, p);
				if (pwrite(m.dfd, &v, sizeof(v), (off_t)off) != (ssize_t)sizeof(v))
					fail = 1;
			}
			uint32_t v_pre = zinc_seq(h);
			if (!fail && kind == 'Z') {
				zinc_notify(h);
			} else if (!fail) {
				if (write(m.nfd, "n", 1) != 1)
					fail = 1;
			}
			if (fail) {
				stat_add(st, PS_FAIL, 1);
				mclose(&m);
				connected = 0;
				break;
			}
			uint32_t v_upper = zinc_seq(h);
			ledger_append(lp, s, v_pre, v_upper);
			stat_add(st, PS_NOTIFY, 1);
		}
		sleep_us((long)(rnd() % 1000));
	}
	mclose(&m);
	zinc_close(h);
	return 0;
}

/* ---- consumer ---- */

struct cctx {
	uint32_t c, r;
	char kind;
	uint64_t *st;
	uint32_t cursor;     /* counter value last consumed (C0 of the next wait) */
	int have_cursor;
	uint8_t *buf;
	size_t cap;
	zinc_region *probe;  /* observer (or the consumer's own handle) */
};

static void violation(struct cctx *cx, int stat, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "%s: VIOLATION consumer %u (%c) region %u: ", role, cx->c,
		cx->kind, cx->r);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	stat_add(cx->st, stat, 1);
}

/* Check the copy in cx->buf against the ledger after observing counter C. */
static void check_snapshot(struct cctx *cx, uint32_t C, uint64_t t_wake)
{
	uint64_t now = now_ns();
	for (uint32_t p = cx->r; p < L->nprod; p += L->k) {
		struct lprod *lp = &P0[p];
		const struct slot *sl = (const struct slot *)(cx->buf + (size_t)(p / L->k) * PAGE);
		uint64_t best = 0;
		int torn = 0;
		for (unsigned i = 0; i < SLOTS; i++) {
			if (sl[i].ver == 0)
				continue;
			if (!slot_consistent(&sl[i])) {
				torn++;
				continue;
			}
			if (sl[i].region != cx->r || sl[i].producer != p) {
				violation(cx, CS_IDENT, "slot %u of producer %u's page holds "
					  "region %u producer %u seq %llu", i, p, sl[i].region,
					  sl[i].producer, (unsigned long long)sl[i].seq);
				continue;
			}
			if (sl[i].seq > best)
				best = sl[i].seq;
		}
		if (torn)
			stat_add(cx->st, CS_TORN, (uint64_t)torn);
		uint64_t started = __atomic_load_n(&lp->started_seq, __ATOMIC_ACQUIRE);
		if (best > started)
			violation(cx, CS_PHANTOM, "producer %u: seq %llu seen but only %llu "
				  "started", p, (unsigned long long)best,
				  (unsigned long long)started);
		/* required: the newest entry whose v_upper <= C */
		uint64_t head = __atomic_load_n(&lp->head, __ATOMIC_ACQUIRE);
		uint64_t required = 0, req_t = 0;
		uint32_t req_v = 0;
		int found = 0, exhausted = 1;
		struct lentry e;
		for (uint64_t idx = head; idx-- > 0;) {
			if (!ledger_get(lp, idx, &e))
				break; /* overwritten: older ones too */
			if ((int32_t)(C - e.v_upper) >= 0) {
				required = e.s;
				req_v = e.v_upper;
				req_t = e.t_after;
				found = 1;
				break;
			}
			if (idx == 0)
				exhausted = 0; /* scanned everything: nothing owed yet */
		}
		if (head == 0)
			exhausted = 0;
		if (!found && exhausted) {
			stat_add(cx->st, CS_UNCHECKED, 1);
			continue;
		}
		stat_add(cx->st, CS_CHECK, 1);
		if (found && req_t < t_wake)
			stat_max(cx->st, CS_MAXLAG_US, (t_wake - req_t) / 1000);
		if (best < required) {
			if (best == 0 && torn)
				stat_add(cx->st, CS_NOTHING, 1);
			/* Stale through a mapping of the mount is counted on
			 * its own: see docs/RELIABILITY.md (suspected missed
			 * TLB flush on this VM). */
			violation(cx, cx->kind == 'P' ? CS_STALE_MMAP : CS_STALE,
				  "producer %u: saw counter %u, owed seq %llu "
				  "(notified, counter <= %u, %.3f ms before the wake), newest "
				  "consistent slot %llu (%d torn slots), checked %.3f ms after "
				  "the wake", p, C, (unsigned long long)required, req_v,
				  (double)(t_wake - req_t) / 1e6, (unsigned long long)best,
				  torn, (double)(now - t_wake) / 1e6);
		}
	}
}

/* A wait of this consumer started at t0 with cursor c0 and returned at
 * t_ret, with a notification (timed_out == 0) or without one.  A lost wake
 * shows as a timeout with the counter moved, or as a wake that came only
 * when zinc_wait re-checked the counter at its deadline (libzinc) or at the
 * next notification: so every wait that lasted >= MARGIN is checked. */
static void check_wait(struct cctx *cx, uint32_t c0, uint64_t t0, uint64_t gen0,
		       uint64_t t_ret, int timed_out)
{
	if (!timed_out && t_ret - t0 < MARGIN_NS)
		return; /* the common case: a prompt wake */
	uint32_t c_now = zinc_seq(cx->probe);
	if (timed_out && c_now == c0) {
		stat_add(cx->st, CS_IDLE_TO, 1);
		return;
	}
	if (cx->kind == 'P' || cx->kind == 'R') {
		uint64_t g = daemon_gen();
		if (g != gen0 || (g & 1)) {
			stat_add(cx->st, CS_EXCUSED_TO, 1);
			return;
		}
	}
	uint64_t deadline = t0 + (uint64_t)WAIT_MS * 1000000ull;
	uint64_t limit = (t_ret < deadline ? t_ret : deadline) - MARGIN_NS;
	int undecided = 0;
	for (uint32_t p = cx->r; p < L->nprod && limit >= t0; p += L->k) {
		struct lprod *lp = &P0[p];
		uint64_t head = __atomic_load_n(&lp->head, __ATOMIC_ACQUIRE);
		struct lentry e;
		int reached = head == 0;
		for (uint64_t idx = head; idx-- > 0;) {
			if (!ledger_get(lp, idx, &e))
				break;
			if (e.t_after > limit) {
				if (idx == 0)
					reached = 1;
				continue;
			}
			reached = 1;
			if ((int32_t)(e.v_pre - c0) >= 0) {
				violation(cx, CS_LOST, "%s after %.3f ms from cursor %u; producer %u's "
					  "notification of seq %llu (counter %u -> <= %u) had returned "
					  "%.3f ms before; counter now %u",
					  timed_out ? "timed out" : "woken only",
					  (double)(t_ret - t0) / 1e6, c0, p, (unsigned long long)e.s,
					  e.v_pre, e.v_upper, (double)(t_ret - e.t_after) / 1e6, c_now);
				return;
			}
			break;
		}
		if (!reached)
			undecided = 1;
	}
	if (timed_out)
		stat_add(cx->st, undecided ? CS_UNDECIDED : CS_BENIGN_TO, 1);
	else
		stat_add(cx->st, undecided ? CS_UNDECIDED : CS_SLOW_OK, 1);
}

static uint64_t parse_seq(const char *buf, ssize_t n, int *ok)
{
	char tmp[32];
	*ok = 0;
	if (n <= 1 || n >= (ssize_t)sizeof(tmp) || buf[n - 1] != '\n')
		return 0;
	memcpy(tmp, buf, (size_t)n - 1);
	tmp[n - 1] = 0;
	char *end;
	unsigned long long v = strtoull(tmp, &end, 10);
	*ok = *end == 0 && v <= UINT32_MAX;
	return v;
}

static void after_wake(struct cctx *cx, uint32_t C, int strict)
{
	uint64_t t = now_ns();
	if (cx->have_cursor && strict && (int32_t)(C - cx->cursor) <= 0)
		violation(cx, CS_SPURIOUS, ".wait returned %u after %u", C, cx->cursor);
	else if (cx->have_cursor && (int32_t)(C - cx->cursor) < 0)
		violation(cx, CS_SPURIOUS, "counter went back from %u to %u", cx->cursor, C);
	cx->cursor = C;
	cx->have_cursor = 1;
	stat_add(cx->st, CS_WAKE, 1);
	check_snapshot(cx, C, t);
}

static int consume_zinc(struct cctx *cx)
{
	zinc_region *h = open_region(cx->r, 0, &cx->st[CS_VANISHED]);
	if (!h)
		return 0;
	if (cx->kind == 'S')
		zinc_set_spin(h, 50000);
	cx->probe = h;
	cx->cursor = 0; /* a handle's cursor starts at 0 */
	cx->have_cursor = 1;
	while (!stopping()) {
		uint32_t c0 = cx->cursor;
		uint64_t t0 = now_ns();
		int rc = zinc_wait(h, WAIT_MS);
		uint64_t t_ret = now_ns();
		if (rc == 0) {
			uint32_t C = zinc_seq(h);
			memcpy(cx->buf, zinc_ptr(h), cx->cap);
			check_wait(cx, c0, t0, 0, t_ret, 0);
			after_wake(cx, C, 0);
		} else if (rc == -ETIMEDOUT) {
			if (!stopping())
				check_wait(cx, c0, t0, 0, t_ret, 1);
		} else if (rc == -EIDRM) {
			if (stopping())
				break; /* the last holder closed after the stop */
			fprintf(stderr, "%s: VIOLATION region %u removed during the run\n",
				role, cx->r);
			stat_add(cx->st, CS_EIDRM, 1);
			zinc_close(h);
			h = open_region(cx->r, 0, &cx->st[CS_VANISHED]);
			if (!h)
				return 0;
			cx->probe = h;
			cx->cursor = 0;
		} else {
			die("zinc_wait: %s", zinc_strerror(rc));
		}
	}
	zinc_close(h);
	return 0;
}

static int consume_mount(struct cctx *cx)
{
	char wpath[1200];
	mount_path(cx->r, ".wait", wpath, sizeof(wpath));
	cx->probe = open_region(cx->r, 1, &cx->st[CS_VANISHED]);
	if (!cx->probe)
		return 0;
	int poller = cx->kind == 'P';
	struct mconn m = { -1, -1, NULL, 0 };
	int wfd = -1;
	while (!stopping()) {
		if (wfd < 0) {
			int rc = mopen(&m, cx->r, 1, poller, O_RDONLY);
			if (!rc) {
				wfd = open(wpath, O_RDONLY | O_CLOEXEC | (poller ? O_NONBLOCK : 0));
				if (wfd < 0)
					mclose(&m);
			}
			if (wfd < 0) {
				reconnect_wait(&cx->st[CS_RECONNECT]);
				continue;
			}
			/* The file's cursor is the counter at open: at most this. */
			cx->cursor = zinc_seq(cx->probe);
			cx->have_cursor = 0;
		}
		uint32_t c0 = cx->cursor;
		uint64_t gen0 = daemon_gen(), t0 = now_ns();
		char buf[64];
		ssize_t n;
		int timed_out = 0, err = 0;
		if (poller) {
			struct pollfd pf = { .fd = wfd, .events = POLLIN };
			int pr = poll(&pf, 1, (int)WAIT_MS);
			if (pr == 0)
				timed_out = 1;
			else if (pr < 0 && errno != EINTR)
				die("poll: %s", strerror(errno));
			n = read(wfd, buf, sizeof(buf));
			if (n < 0 && errno == EAGAIN)
				n = 0;
			else if (n < 0)
				err = errno;
		} else {
			struct itimerval it = { { 0, 0 }, { WAIT_MS / 1000, (WAIT_MS % 1000) * 1000 } };
			setitimer(ITIMER_REAL, &it, NULL);
			n = read(wfd, buf, sizeof(buf));
			int e = errno;
			struct itimerval off = { { 0, 0 }, { 0, 0 } };
			setitimer(ITIMER_REAL, &off, NULL);
			if (n < 0 && e == EINTR) {
				timed_out = !stop_sig;
				n = 0;
			} else if (n < 0) {
				err = e;
			}
		}
		uint64_t t_ret = now_ns();
		if (timed_out && !stopping())
			check_wait(cx, c0, t0, gen0, t_ret, 1);
		else if (!err && n > 0)
			check_wait(cx, c0, t0, gen0, t_ret, 0);
		if (err) {
			if (err == EIDRM && stopping())
				break; /* the last holder closed after the stop */
			if (err == EIDRM) {
				fprintf(stderr, "%s: VIOLATION %s: EIDRM during the run\n", role,
					wpath);
				stat_add(cx->st, CS_EIDRM, 1);
			}
			close(wfd);
			wfd = -1;
			mclose(&m);
			reconnect_wait(&cx->st[CS_RECONNECT]);
			continue;
		}
		if (n == 0)
			continue;
		int ok;
		uint32_t C = (uint32_t)parse_seq(buf, n, &ok);
		if (!ok) {
			violation(cx, CS_SPURIOUS, "bad .wait text '%.*s'", (int)n, buf);
			continue;
		}
		int rc = 0;
		if (poller) {
			if (guarded_copy(cx->buf, m.map, cx->cap))
				rc = -EFAULT;
		} else {
			ssize_t got = pread(m.dfd, cx->buf, cx->cap, 0);
			if (got != (ssize_t)cx->cap)
				rc = got < 0 ? -errno : -EIO;
		}
		if (rc) {
			/* The daemon died between the wake and the read. */
			if (rc == -EFAULT)
				stat_add(cx->st, CS_SIGBUS, 1);
			close(wfd);
			wfd = -1;
			mclose(&m);
			reconnect_wait(&cx->st[CS_RECONNECT]);
			continue;
		}
		after_wake(cx, C, 1);
	}
	if (wfd >= 0)
		close(wfd);
	mclose(&m);
	zinc_close(cx->probe);
	return 0;
}

static int consume(uint32_t c)
{
	struct cctx cx = { 0 };
	cx.c = c;
	cx.r = c % L->k;
	cx.kind = ckinds[(c + c / L->k) % 4];
	cx.st = C0[c].stats;
	C0[c].kind = (uint32_t)cx.kind;
	C0[c].region = cx.r;
	cx.cap = (size_t)L->pages * PAGE;
	cx.buf = malloc(cx.cap);
	if (!cx.buf)
		die("out of memory");
	stat_add(cx.st, CS_START, 1);
	return cx.kind == 'Z' || cx.kind == 'S' ? consume_zinc(&cx) : consume_mount(&cx);
}

/* ---- holder ---- */

static int hold(uint32_t r)
{
	char name[128];
	region_name(r, name, sizeof(name));
	zinc_region *h = NULL;
	for (;;) {
		int rc = zinc_open(name, &h);
		if (rc == -ENOENT) {
			rc = zinc_create(name, (uintptr_t)L->pages * PAGE, &h);
			if (rc == 0)
				stat_add(L->hold_stats[r % 64], 0, 1); /* creates */
			else if (rc == -EEXIST)
				continue;
		} else if (rc == 0) {
			stat_add(L->hold_stats[r % 64], 1, 1); /* opens */
		}
		if (rc)
			die("hold %s: %s", name, zinc_strerror(rc));
		break;
	}
	printf("ready %s\n", name);
	fflush(stdout);
	while (!stopping())
		sleep_us(50000);
	zinc_close(h);
	return 0;
}

/* ---- init, stats, enospc ---- */

static int init(int argc, char **argv)
{
	if (argc != 8)
		die("usage: init LEDGER MOUNT PREFIX K NPROD NCONS");
	uint32_t k = (uint32_t)atoi(argv[5]), np = (uint32_t)atoi(argv[6]),
		 nc = (uint32_t)atoi(argv[7]);
	if (k < 1 || k > 64 || np < k || nc < k || np > 1024 || nc > 1024)
		die("bad sizes (1 <= K <= 64, K <= NPROD, NCONS <= 1024)");
	size_t size = ledger_size(np, nc);
	int fd = open(argv[2], O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0 || ftruncate(fd, (off_t)size) < 0)
		die("create %s: %s", argv[2], strerror(errno));
	struct lhdr *h = mmap(NULL, sizeof(*h), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (h == MAP_FAILED)
		die("mmap: %s", strerror(errno));
	h->k = k;
	h->nprod = np;
	h->ncons = nc;
	h->pages = (np + k - 1) / k;
	snprintf(h->mount, sizeof(h->mount), "%s", argv[3]);
	snprintf(h->prefix, sizeof(h->prefix), "%s", argv[4]);
	__atomic_store_n(&h->magic, LEDGER_MAGIC, __ATOMIC_RELEASE);
	printf("capacity %u\n", h->pages * PAGE);
	for (uint32_t p = 0; p < np; p++)
		printf("producer %u region %u kind %c\n", p, p % k, pkinds[(p + p / k) % 4]);
	for (uint32_t c = 0; c < nc; c++)
		printf("consumer %u region %u kind %c\n", c, c % k, ckinds[(c + c / k) % 4]);
	munmap(h, sizeof(*h));
	close(fd);
	return 0;
}

static int stats(void)
{
	uint64_t pt[NSTAT] = { 0 }, ct[NSTAT] = { 0 };
	uint64_t pk[4] = { 0 }, ck[4] = { 0 };
	for (uint32_t p = 0; p < L->nprod; p++) {
		for (int i = 0; i < NSTAT; i++)
			pt[i] += P0[p].stats[i];
		const char *k = strchr(pkinds, (int)P0[p].kind);
		if (k && *k)
			pk[k - pkinds] += P0[p].stats[PS_NOTIFY];
	}
	for (uint32_t c = 0; c < L->ncons; c++) {
		for (int i = 0; i < NSTAT; i++)
			ct[i] = i == CS_MAXLAG_US ? (C0[c].stats[i] > ct[i] ? C0[c].stats[i] : ct[i])
						  : ct[i] + C0[c].stats[i];
		const char *k = strchr(ckinds, (int)C0[c].kind);
		if (k && *k)
			ck[k - ckinds] += C0[c].stats[CS_WAKE];
	}
	for (size_t i = 0; i < sizeof(pstat_names) / sizeof(*pstat_names); i++)
		printf("producer.%s=%llu\n", pstat_names[i], (unsigned long long)pt[i]);
	for (size_t i = 0; i < sizeof(cstat_names) / sizeof(*cstat_names); i++)
		printf("consumer.%s=%llu\n", cstat_names[i], (unsigned long long)ct[i]);
	static const char *const pkn[] = { "libzinc", "pwrite+notify", "mmap+notify",
					   "libzinc+notify" };
	static const char *const ckn[] = { "zinc_wait", "wait-poll+mmap", "wait-read+pread",
					   "zinc_wait-spin" };
	for (int i = 0; i < 4; i++)
		printf("notifications.%s=%llu\n", pkn[i], (unsigned long long)pk[i]);
	for (int i = 0; i < 4; i++)
		printf("wakes.%s=%llu\n", ckn[i], (unsigned long long)ck[i]);
	uint64_t cr = 0, op = 0;
	for (uint32_t r = 0; r < L->k && r < 64; r++) {
		cr += L->hold_stats[r][0];
		op += L->hold_stats[r][1];
	}
	printf("holder.creates=%llu\nholder.opens=%llu\n", (unsigned long long)cr,
	       (unsigned long long)op);
	return 0;
}

static int enospc(const char *name, const char *cap)
{
	zinc_region *h;
	int rc = zinc_create(name, (uintptr_t)strtoull(cap, NULL, 0), &h);
	printf("zinc_create %s: %d (%s)\n", name, rc, zinc_strerror(rc));
	if (rc == 0) {
		zinc_close(h);
		return 1;
	}
	struct zinc_info info;
	int st = zinc_stat(name, &info);
	if (st != -ENOENT) {
		printf("after the failed create, zinc_stat %s: %d (%s)\n", name, st,
		       zinc_strerror(st));
		return 1;
	}
	return rc == -ENOSPC ? 0 : 1;
}

int main(int argc, char **argv)
{
	if (argc < 2)
		die("usage: zinc-soak init|hold|produce|consume|enospc|stats ...");
	const char *cmd = argv[1];
	if (!strcmp(cmd, "init"))
		return init(argc, argv);
	if (!strcmp(cmd, "enospc")) {
		if (argc != 4)
			die("usage: enospc NAME CAP");
		return enospc(argv[2], argv[3]);
	}
	if (argc < 3)
		die("usage: %s LEDGER ...", cmd);
	ledger_map(argv[2]);
	if (!strcmp(cmd, "stats"))
		return stats();
	if (argc != 4)
		die("usage: %s LEDGER INDEX", cmd);
	uint32_t idx = (uint32_t)atoi(argv[3]);
	static char rolebuf[64];
	snprintf(rolebuf, sizeof(rolebuf), "zinc-soak %s %u [%d]", cmd, idx, (int)getpid());
	role = rolebuf;
	rng_state = mix(now_ns() ^ (uint64_t)getpid() << 20);
	setup_signals();
	if (!strcmp(cmd, "hold")) {
		if (idx >= L->k)
			die("no region %u", idx);
		return hold(idx);
	}
	if (!strcmp(cmd, "produce")) {
		if (idx >= L->nprod)
			die("no producer %u", idx);
		return produce(idx);
	}
	if (!strcmp(cmd, "consume")) {
		if (idx >= L->ncons)
			die("no consumer %u", idx);
		return consume(idx);
	}
	die("unknown command %s", cmd);
}
