/* SPDX-License-Identifier: MIT */
/*
 * repro-stale-mmap: reproduction of the data-coherence failure the soak test
 * found (scripts/soak.sh --no-faults, region 0: producers Z + W, consumers
 * P + R): a consumer that polls NAME.wait, reads the counter value C from it
 * and then copies NAME through its mmap(MAP_SHARED) of the mount sometimes
 * sees data one notification old, although that notification (zinc_notify
 * by a libzinc producer that wrote the data straight into the region) had
 * counter value <= C.
 *
 * Rate on the 2-vCPU test VM (kernel 6.18.44-fc, KVM guest with PV remote
 * TLB flush): a few stale reads per 2 minutes with the defaults (not
 * seconds), about 1 per 400,000 poll+mmap wakes.  Traces of the failing
 * wakes (daemon event ring + filemap tracepoints + the consumer's
 * /proc/self/pagemap) showed zincfs doing the right thing: the
 * notify_inval_inode for the notification completed (rc 0) and removed the
 * two cached folios, which the consumer had mapped (so the kernel zapped its
 * PTEs first), 35 us before the consumer read the old bytes from its
 * mapping without any page fault, and its PTEs were then found not present:
 * the consumer read through a stale TLB entry of a freed page.
 *
 *   repro-stale-mmap [options]          (root: mounts a tmpfs and zincfs)
 *     -z PATH     zincfs binary (default: build/zincfs/zincfs next to us)
 *     -t SECONDS  run time (default 120)
 *     -P KINDS    producers, one page each, in page order (default ZWZW):
 *                 Z  stores via zinc_ptr, zinc_notify
 *                 X  stores via zinc_ptr, writes NAME.notify in the mount
 *                 W  pwrite of NAME in the mount, writes NAME.notify
 *     -C KINDS    consumers (default PPRRPR): P poll NAME.wait + copy from a
 *                 mmap(MAP_SHARED) of NAME; R read NAME.wait + pread NAME
 *     -m ADVICE   madvise the consumers' mappings: random, nohuge, none
 *     -s USEC     producers sleep 0..USEC-1 us between notifications (1000)
 *     -l N        N busy-looping processes (CPU contention, as in the soak) (1)
 *     -q          quiet: only the summary
 *
 * Every producer i owns page i of region "stale" (capacity = one page per
 * producer): it stores s into the page's first 8 bytes (Z, X: one aligned
 * store into the region; W: pwrite through the mount), notifies, and then
 * appends (s, counter read after the notify) to its
 * ledger (shared anonymous memory).  A consumer woken with counter C must
 * find, in the copy it made after the wake, a value >= the newest s whose
 * ledger counter is <= C (the notification that published s had a counter
 * value <= that, so it is owed).  Anything older is a STALE read.
 *
 * Exit: 0 no stale read, 1 stale reads seen, 2 setup error.  Always unmounts,
 * stops zincfs, removes the region and the temporary directory.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zinc.h>

#define PAGE 4096u
#define LRING 4096u
#define MAXP 16
#define MAXC 32

struct lentry {
	uint64_t gen; /* 2*idx+2 when complete */
	uint64_t s;
	uint32_t v_upper;
	uint64_t t_after;
};

struct ledger {
	uint64_t stop;
	uint64_t head[MAXP];
	struct lentry ring[MAXP][LRING];
	uint64_t wakes[MAXC], stale[MAXC], checked[MAXC], notifies[MAXP];
};

static struct ledger *L;
static const char *pkinds = "ZWZW", *ckinds = "PPRRPR";
static int np, nc, nload = 1, max_sleep_us = 1000, quiet;
static const char *advice = "none";
static char base[PATH_MAX], shm[PATH_MAX + 8], mnt[PATH_MAX + 8];

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

static uint64_t rng;
static uint64_t rnd(void)
{
	uint64_t x = (rng += 0x9e3779b97f4a7c15ull);
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

static int stopping(void)
{
	return (int)__atomic_load_n(&L->stop, __ATOMIC_ACQUIRE);
}

static void ledger_append(int p, uint64_t s, uint32_t v_upper)
{
	uint64_t idx = L->head[p];
	struct lentry *e = &L->ring[p][idx % LRING];
	__atomic_store_n(&e->gen, 2 * idx + 1, __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_RELEASE);
	e->s = s;
	e->v_upper = v_upper;
	e->t_after = now_ns();
	__atomic_store_n(&e->gen, 2 * idx + 2, __ATOMIC_RELEASE);
	__atomic_store_n(&L->head[p], idx + 1, __ATOMIC_RELEASE);
}

/* Newest s of producer p whose notification's counter is <= C. */
static uint64_t owed(int p, uint32_t C, uint64_t *t_after)
{
	uint64_t head = __atomic_load_n(&L->head[p], __ATOMIC_ACQUIRE);
	for (uint64_t idx = head; idx-- > 0 && head - idx < LRING - 16;) {
		struct lentry *e = &L->ring[p][idx % LRING];
		if (__atomic_load_n(&e->gen, __ATOMIC_ACQUIRE) != 2 * idx + 2)
			return 0;
		uint64_t s = e->s;
		uint32_t v = e->v_upper;
		uint64_t t = e->t_after;
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
		if (__atomic_load_n(&e->gen, __ATOMIC_RELAXED) != 2 * idx + 2)
			return 0;
		if ((int32_t)(C - v) >= 0) {
			*t_after = t;
			return s;
		}
	}
	return 0;
}

static void producer(int p, char kind)
{
	int via_mount = kind != 'Z';
	zinc_region *h;
	char path[PATH_MAX + 32];
	if (zinc_open("stale", &h))
		_exit(2);
	int nfd = -1, dfd = -1;
	if (via_mount) {
		snprintf(path, sizeof(path), "%s/stale.notify", mnt);
		nfd = open(path, O_WRONLY | O_CLOEXEC);
		if (nfd < 0)
			_exit(2);
	}
	if (kind == 'W') {
		snprintf(path, sizeof(path), "%s/stale", mnt);
		dfd = open(path, O_WRONLY | O_CLOEXEC);
		if (dfd < 0)
			_exit(2);
	}
	volatile uint64_t *word = (volatile uint64_t *)(zinc_ptr(h) + (size_t)p * PAGE);
	uint64_t s = 0;
	while (!stopping()) {
		s++;
		if (kind == 'W') {
			if (pwrite(dfd, &s, sizeof(s), (off_t)p * PAGE) != sizeof(s))
				_exit(2);
		} else {
			__atomic_store_n(word, s, __ATOMIC_RELEASE);
		}
		if (via_mount) {
			if (write(nfd, "n", 1) != 1)
				_exit(2);
		} else {
			zinc_notify(h);
		}
		ledger_append(p, s, zinc_seq(h));
		L->notifies[p]++;
		sleep_us((long)(rnd() % (uint64_t)max_sleep_us));
	}
	zinc_close(h);
	_exit(0);
}

static void consumer(int c, int poller)
{
	char path[PATH_MAX + 32];
	int ntot = np;
	size_t cap = (size_t)ntot * PAGE;
	uint8_t *buf = malloc(cap);
	snprintf(path, sizeof(path), "%s/stale", mnt);
	int dfd = open(path, O_RDONLY | O_CLOEXEC);
	snprintf(path, sizeof(path), "%s/stale.wait", mnt);
	int wfd = open(path, O_RDONLY | O_CLOEXEC | (poller ? O_NONBLOCK : 0));
	if (dfd < 0 || wfd < 0 || !buf)
		_exit(2);
	uint8_t *map = NULL;
	if (poller) {
		map = mmap(NULL, cap, PROT_READ, MAP_SHARED, dfd, 0);
		if (map == MAP_FAILED)
			_exit(2);
		if (!strcmp(advice, "random"))
			madvise(map, cap, MADV_RANDOM);
		else if (!strcmp(advice, "nohuge"))
			madvise(map, cap, MADV_NOHUGEPAGE);
	}
	while (!stopping()) {
		char t[32];
		ssize_t n;
		if (poller) {
			struct pollfd pf = { .fd = wfd, .events = POLLIN };
			if (poll(&pf, 1, 200) <= 0)
				continue;
			n = read(wfd, t, sizeof(t) - 1);
			if (n < 0 && errno == EAGAIN)
				continue;
		} else {
			n = read(wfd, t, sizeof(t) - 1); /* blocks; stop: see main */
		}
		if (n <= 0)
			continue;
		uint64_t t_wake = now_ns();
		t[n] = 0;
		uint32_t C = (uint32_t)strtoul(t, NULL, 10);
		if (poller)
			memcpy(buf, map, cap);
		else if (pread(dfd, buf, cap, 0) != (ssize_t)cap)
			_exit(2);
		L->wakes[c]++;
		for (int p = 0; p < ntot; p++) {
			uint64_t ta = 0, need = owed(p, C, &ta);
			uint64_t have = *(uint64_t *)(buf + (size_t)p * PAGE);
			if (!need)
				continue;
			L->checked[c]++;
			if (have < need) {
				L->stale[c]++;
				if (!quiet)
					fprintf(stderr, "STALE consumer %d (%s): page %d (%s) "
						"has %llu, owed %llu (notified %.0f us before "
						"the wake, counter read %u)\n",
						c, poller ? "poll+mmap" : "read+pread", p,
						pkinds[p] == 'Z' ? "Z: zinc_notify" :
						pkinds[p] == 'X' ? "X: zinc_ptr + .notify" :
						"W: pwrite + .notify",
						(unsigned long long)have,
						(unsigned long long)need,
						(double)(t_wake - ta) / 1e3, C);
			}
		}
	}
	_exit(0);
}

static int mounted(const char *dir)
{
	FILE *f = fopen("/proc/self/mountinfo", "r");
	char line[4096];
	int found = 0;
	while (f && fgets(line, sizeof(line), f)) {
		char mp[PATH_MAX];
		if (sscanf(line, "%*s %*s %*s %*s %4095s", mp) == 1 && !strcmp(mp, dir))
			found = 1;
	}
	if (f)
		fclose(f);
	return found;
}

int main(int argc, char **argv)
{
	char zincfs[PATH_MAX + 64];
	int seconds = 120, opt;
	/* default daemon: <dir of this program>/../../zincfs/zincfs */
	char self[PATH_MAX];
	ssize_t sl = readlink("/proc/self/exe", self, sizeof(self) - 1);
	self[sl > 0 ? sl : 0] = 0;
	char *slash = strrchr(self, '/');
	if (slash)
		*slash = 0;
	snprintf(zincfs, sizeof(zincfs), "%s/../../zincfs/zincfs", self);
	while ((opt = getopt(argc, argv, "z:t:P:C:m:s:l:q")) != -1) {
		switch (opt) {
		case 'z': snprintf(zincfs, sizeof(zincfs), "%s", optarg); break;
		case 't': seconds = atoi(optarg); break;
		case 'P': pkinds = optarg; break;
		case 'C': ckinds = optarg; break;
		case 'm': advice = optarg; break;
		case 's': max_sleep_us = atoi(optarg) > 0 ? atoi(optarg) : 1; break;
		case 'l': nload = atoi(optarg); break;
		case 'q': quiet = 1; break;
		default:
			fprintf(stderr, "usage: %s [-z ZINCFS] [-t SECONDS] [-P ZXW...] "
				"[-C PR...] [-m random|nohuge|none] [-s USEC] [-l N] [-q]\n", argv[0]);
			return 2;
		}
	}
	np = (int)strlen(pkinds);
	nc = (int)strlen(ckinds);
	if (np < 1 || np > MAXP || nc < 1 || nc > MAXC ||
	    strspn(pkinds, "ZXW") != (size_t)np || strspn(ckinds, "PR") != (size_t)nc) {
		fprintf(stderr, "bad -P/-C (1..%d of ZXW, 1..%d of PR)\n", MAXP, MAXC);
		return 2;
	}
	L = mmap(NULL, sizeof(*L), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (L == MAP_FAILED)
		return 2;
	snprintf(base, sizeof(base), "/tmp/zinc-stale.XXXXXX");
	if (!mkdtemp(base))
		return 2;
	snprintf(shm, sizeof(shm), "%s/shm", base);
	snprintf(mnt, sizeof(mnt), "%s/mnt", base);
	mkdir(shm, 0700);
	mkdir(mnt, 0700);
	int rc = 2, tmpfs = 0;
	pid_t daemon = -1, kids[MAXP + MAXC + 8];
	int nkids = 0;
	zinc_region *holder = NULL;
	if (mount("tmpfs", shm, "tmpfs", 0, "size=8m")) {
		perror("mount tmpfs (root needed)");
		goto out;
	}
	tmpfs = 1;
	setenv("ZINC_SHM_DIR", shm, 1);
	char shmopt[PATH_MAX + 16];
	snprintf(shmopt, sizeof(shmopt), "shm_dir=%s", shm);
	daemon = fork();
	if (daemon == 0) {
		execl(zincfs, zincfs, "-f", "-o", shmopt, mnt, (char *)NULL);
		perror(zincfs);
		_exit(127);
	}
	for (int i = 0; !mounted(mnt); i++) {
		int st;
		if (i > 1000 || waitpid(daemon, &st, WNOHANG) == daemon) {
			fprintf(stderr, "zincfs did not mount\n");
			if (i <= 1000)
				daemon = -1;
			goto out;
		}
		sleep_us(10000);
	}
	if (zinc_create("stale", (uintptr_t)np * PAGE, &holder)) {
		fprintf(stderr, "zinc_create failed\n");
		goto out;
	}
	for (int c = 0; c < nc; c++) {
		pid_t k = fork();
		if (k == 0) {
			rng = now_ns() ^ (uint64_t)getpid() << 20;
			consumer(c, ckinds[c] == 'P');
		}
		kids[nkids++] = k;
	}
	sleep_us(200000); /* consumers open their files */
	for (int p = 0; p < np; p++) {
		pid_t k = fork();
		if (k == 0) {
			rng = now_ns() ^ (uint64_t)getpid() << 20;
			producer(p, pkinds[p]);
		}
		kids[nkids++] = k;
	}
	for (int i = 0; i < nload && nkids < MAXP + MAXC + 8; i++) {
		pid_t k = fork();
		if (k == 0) {
			while (!stopping())
				for (volatile int j = 0; j < 100000; j++)
					;
			_exit(0);
		}
		kids[nkids++] = k;
	}
	uint64_t t_end = now_ns() + (uint64_t)seconds * 1000000000ull;
	while (now_ns() < t_end)
		sleep_us(100000);
	__atomic_store_n(&L->stop, 1, __ATOMIC_RELEASE);
	zinc_notify(holder); /* end blocked .wait reads */
	for (int i = 0; i < nkids; i++) {
		for (int j = 0; j < 300; j++) {
			if (waitpid(kids[i], NULL, WNOHANG) == kids[i])
				break;
			if (j % 10 == 9)
				zinc_notify(holder);
			sleep_us(10000);
			if (j == 299) {
				kill(kids[i], SIGKILL);
				waitpid(kids[i], NULL, 0);
			}
		}
	}
	uint64_t wakes = 0, stale = 0, checked = 0, notes = 0;
	for (int c = 0; c < nc; c++) {
		wakes += L->wakes[c];
		stale += L->stale[c];
		checked += L->checked[c];
	}
	for (int p = 0; p < np; p++)
		notes += L->notifies[p];
	printf("notifications=%llu wakes=%llu pages_checked=%llu stale=%llu "
	       "(producers %s, consumers %s, madvise %s, %d s)\n",
	       (unsigned long long)notes, (unsigned long long)wakes,
	       (unsigned long long)checked, (unsigned long long)stale, pkinds, ckinds,
	       advice, seconds);
	rc = stale ? 1 : 0;
out:
	if (holder) {
		zinc_unlink("stale");
		zinc_close(holder);
	}
	if (daemon > 0) {
		if (mounted(mnt)) {
			pid_t u = fork();
			if (u == 0) {
				execlp("fusermount3", "fusermount3", "-u", mnt, (char *)NULL);
				_exit(127);
			}
			waitpid(u, NULL, 0);
			if (mounted(mnt))
				umount2(mnt, MNT_DETACH);
		}
		kill(daemon, SIGTERM);
		waitpid(daemon, NULL, 0);
	}
	if (tmpfs)
		umount2(shm, MNT_DETACH);
	rmdir(shm);
	rmdir(mnt);
	rmdir(base);
	return rc;
}
