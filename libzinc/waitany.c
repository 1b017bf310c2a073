/* SPDX-License-Identifier: MIT */
/*
 * zinc_wait_any: wait on the counters of many regions at once.
 *
 * Same protocol as zinc_wait (notify.c): every handle's waiter count is
 * raised before its counter is read, the sleep refuses to start once a
 * counter moved, cursors move by compare-and-swap, and the sleep comes in
 * slices so that a name removed without ZINC_FLAG_REMOVED is noticed.
 *
 * One futex_waitv(2) call waits on up to 128 words.  Beyond that, helper
 * threads wait on 127 counters each plus a control word; the caller waits
 * on its own 127 counters plus the control word.  Whoever wakes first bumps
 * the control word and wakes the others: the round ends for all, and the
 * caller scans every handle again.  Helpers belong to the calling thread
 * (each thread has its own, started on first need and kept for later
 * calls) and take no signals, so a signal always reaches the caller.
 */
#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

#ifndef SYS_futex_waitv
#define SYS_futex_waitv 449
#endif
#define WAITV_MAX 128              /* FUTEX_WAITV_MAX */
#define CHUNK (WAITV_MAX - 1)      /* counters per waiter, + the control word */
#define POLL_NS 2000000            /* kernel without futex_waitv: poll */

struct helper {
	pthread_t tid;
	struct pool *pool;
	uint32_t go;     /* bumped by the caller: a round starts (or stop) */
	uint32_t done;   /* = go once this helper's wait of the round ended */
	int n;           /* entries in wv; the last is the control word */
	struct futex_waitv wv[WAITV_MAX];
};

/* The helpers of one calling thread. */
struct pool {
	pid_t pid;        /* a forked child gets a pool without threads */
	uint32_t ctl;     /* bumped when a round ends */
	int stop;
	int count;
	struct helper **helpers;
};

static __thread struct pool *tls_pool;
static pthread_key_t pool_key;
static pthread_once_t pool_once = PTHREAD_ONCE_INIT;

static long futex(uint32_t *word, int op, uint32_t val)
{
	return syscall(SYS_futex, word, op, val, NULL, NULL, 0);
}

static long waitv(struct futex_waitv *wv, int n, const struct timespec *abs)
{
	/* futex_waitv's timeout is absolute on the given clock. */
	long rc = syscall(SYS_futex_waitv, wv, n, 0, abs, CLOCK_MONOTONIC);
	return rc < 0 ? -errno : rc;
}

/* End the round that started with ctl == expected, once: wake everyone
 * waiting on the control word. */
static void end_round(struct pool *p, uint32_t expected)
{
	if (__atomic_compare_exchange_n(&p->ctl, &expected, expected + 1, 0,
					__ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
		futex(&p->ctl, FUTEX_WAKE_PRIVATE, INT32_MAX);
}

static void *helper_main(void *arg)
{
	struct helper *h = arg;
	uint32_t seen = 0;
	for (;;) {
		uint32_t go;
		while ((go = __atomic_load_n(&h->go, __ATOMIC_ACQUIRE)) == seen)
			futex(&h->go, FUTEX_WAIT_PRIVATE, seen);
		seen = go;
		if (__atomic_load_n(&h->pool->stop, __ATOMIC_ACQUIRE))
			return NULL;
		/* Any return ends the round: a counter moved, the control
		 * word moved, or a spurious wake (the caller scans anyway). */
		waitv(h->wv, h->n, NULL);
		end_round(h->pool, (uint32_t)h->wv[h->n - 1].val);
		__atomic_store_n(&h->done, go, __ATOMIC_RELEASE);
		futex(&h->done, FUTEX_WAKE_PRIVATE, 1);
	}
}

static void pool_free(void *arg)
{
	struct pool *p = arg;
	__atomic_store_n(&p->stop, 1, __ATOMIC_RELEASE);
	for (int i = 0; i < p->count; i++) {
		struct helper *h = p->helpers[i];
		__atomic_fetch_add(&h->go, 1, __ATOMIC_RELEASE);
		futex(&h->go, FUTEX_WAKE_PRIVATE, 1);
		pthread_join(h->tid, NULL);
		free(h);
	}
	free(p->helpers);
	free(p);
}

static void pool_key_init(void)
{
	/* Helpers stop when their calling thread exits. */
	pthread_key_create(&pool_key, pool_free);
}

/* The calling thread's pool with at least `want` helpers, or NULL with
 * *err set (-ENOMEM, -EAGAIN: no more threads). */
static struct pool *get_pool(int want, int *err)
{
	struct pool *p = tls_pool;
	if (p && p->pid != getpid())
		p = NULL; /* inherited by fork: its threads are not here */
	if (!p) {
		pthread_once(&pool_once, pool_key_init);
		p = calloc(1, sizeof(*p));
		if (!p) {
			*err = -ENOMEM;
			return NULL;
		}
		p->pid = getpid();
		tls_pool = p;
		pthread_setspecific(pool_key, p);
	}
	if (p->count >= want)
		return p;
	struct helper **hs = realloc(p->helpers, (size_t)want * sizeof(*hs));
	if (!hs) {
		*err = -ENOMEM;
		return NULL;
	}
	p->helpers = hs;
	while (p->count < want) {
		struct helper *h = calloc(1, sizeof(*h));
		if (!h) {
			*err = -ENOMEM;
			return NULL;
		}
		h->pool = p;
		sigset_t all, old;
		sigfillset(&all);
		pthread_sigmask(SIG_BLOCK, &all, &old);
		int rc = pthread_create(&h->tid, NULL, helper_main, h);
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		if (rc) {
			free(h);
			*err = -rc;
			return NULL;
		}
		p->helpers[p->count++] = h;
	}
	return p;
}

static void fill(struct futex_waitv *wv, zinc_region *const *h,
		 const uint32_t *seen, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++)
		wv[i] = (struct futex_waitv){
			.val = seen[i],
			.uaddr = (uintptr_t)zinc_futex_word(h[i]),
			.flags = FUTEX_32, /* shared: notifiers are elsewhere */
		};
}

/*
 * Sleep until a counter differs from seen[i], the absolute deadline, a
 * signal (-EINTR) or a spurious wake.  Returns 0, -ETIMEDOUT, -EINTR, or
 * -ENOMEM/-EAGAIN when helpers cannot be started.
 */
static int sleep_once(zinc_region *const *h, uint32_t n, const uint32_t *seen,
		      const struct timespec *until)
{
	static int no_waitv;
	struct futex_waitv wv[WAITV_MAX];
	if (__atomic_load_n(&no_waitv, __ATOMIC_RELAXED)) {
		struct timespec t;
		zinc__deadline_after(&t, POLL_NS);
		if (zinc__before(until, &t))
			t = *until;
		int rc = clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &t, NULL);
		return rc == EINTR ? -EINTR : 0; /* the caller checks the time */
	}
	if (n <= WAITV_MAX) {
		fill(wv, h, seen, n);
		long rc = waitv(wv, (int)n, until);
		if (rc == -ENOSYS) {
			__atomic_store_n(&no_waitv, 1, __ATOMIC_RELAXED);
			return 0;
		}
		return rc == -ETIMEDOUT || rc == -EINTR ? (int)rc : 0;
	}

	int err = 0, nhelp = (int)((n - CHUNK + CHUNK - 1) / CHUNK);
	struct pool *p = get_pool(nhelp, &err);
	if (!p)
		return err;
	/* The last round's helpers may still be on their way out (we did not
	 * wait for them): their wv[] is theirs until then. */
	for (int k = 0; k < p->count; k++) {
		struct helper *hp = p->helpers[k];
		uint32_t d, go = __atomic_load_n(&hp->go, __ATOMIC_RELAXED);
		while ((d = __atomic_load_n(&hp->done, __ATOMIC_ACQUIRE)) != go)
			futex(&hp->done, FUTEX_WAIT_PRIVATE, d);
	}
	uint32_t ctl = __atomic_load_n(&p->ctl, __ATOMIC_SEQ_CST);
	struct futex_waitv ctl_wv = {
		.val = ctl,
		.uaddr = (uintptr_t)&p->ctl,
		.flags = FUTEX_32 | FUTEX_PRIVATE_FLAG,
	};
	for (int k = 0; k < nhelp; k++) {
		struct helper *hp = p->helpers[k];
		uint32_t first = CHUNK * (uint32_t)(k + 1);
		uint32_t cnt = n - first < CHUNK ? n - first : CHUNK;
		fill(hp->wv, h + first, seen + first, cnt);
		hp->wv[cnt] = ctl_wv;
		hp->n = (int)cnt + 1;
		__atomic_add_fetch(&hp->go, 1, __ATOMIC_RELEASE);
		futex(&hp->go, FUTEX_WAKE_PRIVATE, 1);
	}
	fill(wv, h, seen, CHUNK);
	wv[CHUNK] = ctl_wv;
	long rc = waitv(wv, WAITV_MAX, until);
	/* Ends every helper's sleep.  We do not wait for them to leave it:
	 * they touch only their own wv[] (never h[] or seen[]), and a counter
	 * unmapped meanwhile only makes their futex_waitv fail, as the
	 * control word's change already does. */
	end_round(p, ctl);
	if (rc == -ENOSYS)
		__atomic_store_n(&no_waitv, 1, __ATOMIC_RELAXED);
	return rc == -ETIMEDOUT || rc == -EINTR ? (int)rc : 0;
}

/* Consume what every handle has; the number of ready handles. */
static int scan(zinc_region *const *h, uint32_t n, int32_t *ready, uint32_t *seen)
{
	int count = 0;
	for (uint32_t i = 0; i < n; i++) {
		int rc = zinc__take(h[i], &seen[i]);
		if (rc != -EIDRM && (zinc__flags(h[i]) & ZINC_FLAG_REMOVED))
			rc = -EIDRM;
		ready[i] = rc == 0 ? 1 : rc == -EIDRM ? -EIDRM : 0;
		count += ready[i] != 0;
	}
	return count;
}

static void announce(zinc_region *const *h, uint32_t n, uint32_t delta)
{
	for (uint32_t i = 0; i < n; i++)
		__atomic_fetch_add(&h[i]->ext->waiters, delta, __ATOMIC_SEQ_CST);
}

int32_t zinc_wait_any(zinc_region *const *h, uint32_t n, int32_t *ready,
		      uint32_t *seqs, uint32_t timeout_ms, uint32_t flags)
{
	if (!h || !ready || n == 0 || n > ZINC_WAIT_ANY_MAX ||
	    (flags & ~(uint32_t)ZINC_WAIT_EINTR))
		return -EINVAL;
	for (uint32_t i = 0; i < n; i++)
		if (!h[i])
			return -EINVAL;
	uint32_t small[WAITV_MAX], *seen = seqs;
	if (!seen)
		seen = n <= WAITV_MAX ? small : malloc(n * sizeof(*seen));
	if (!seen)
		return -ENOMEM;

	/* A caller kept busy by some regions never sleeps a whole slice:
	 * look for names removed by hand at least once a second anyway. */
	static __thread struct timespec next_name_check;
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	if (!zinc__before(&now, &next_name_check)) {
		for (uint32_t i = 0; i < n; i++)
			zinc__name_gone(h[i]);
		zinc__deadline_after(&next_name_check, ZINC_SLICE_NS);
	}
	int32_t count = scan(h, n, ready, seen);
	if (count || timeout_ms == 0) {
		count = count ? count : -ETIMEDOUT;
		goto out;
	}
	int forever = timeout_ms == UINT32_MAX;
	struct timespec deadline;
	if (!forever)
		zinc__deadline_after(&deadline, (uint64_t)timeout_ms * 1000000u);

	/* Announce, then read the counters (scan): see notify.c. */
	announce(h, n, 1);
	for (;;) {
		count = scan(h, n, ready, seen);
		if (count)
			break;
		struct timespec until;
		zinc__deadline_after(&until, ZINC_SLICE_NS);
		int last_slice = !forever && !zinc__before(&until, &deadline);
		if (last_slice)
			until = deadline;
		int rc = sleep_once(h, n, seen, &until);
		if (rc == -EINTR && (flags & ZINC_WAIT_EINTR)) {
			count = scan(h, n, ready, seen);
			count = count ? count : -EINTR;
			break;
		}
		if (rc == -ENOMEM || rc == -EAGAIN) {
			count = rc;
			break;
		}
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (!zinc__before(&now, &until)) {
			/* A slice without news: names removed by hand? */
			for (uint32_t i = 0; i < n; i++)
				zinc__name_gone(h[i]);
			count = scan(h, n, ready, seen);
			if (count)
				break;
			if (last_slice) {
				count = -ETIMEDOUT;
				break;
			}
		}
	}
	announce(h, n, (uint32_t)-1);
out:
	if (seen != seqs && seen != small)
		free(seen);
	return count;
}
