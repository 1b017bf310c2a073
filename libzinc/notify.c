/* SPDX-License-Identifier: MIT */
/*
 * Notify/wait on the region's counter, a shared futex.
 *
 * No lost wake, no needless syscall: a waiter first announces itself
 * (ext->waiters++, seq_cst) and only then reads the counter; a notifier
 * first bumps the counter (seq_cst) and only then reads the waiter count
 * (and the handle counts, for zinc-core waiters: see zinc_notify).
 * One of the two always sees the other's store, and FUTEX_WAIT refuses to
 * sleep once the counter moved, so a wake is skipped only when nobody can
 * be asleep on the old value.
 */
#include <errno.h>
#include <linux/futex.h>
#include <sched.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

void zinc__wake_all(uint32_t *word)
{
	/* Shared (no FUTEX_PRIVATE_FLAG): waiters live in other processes. */
	syscall(SYS_futex, word, FUTEX_WAKE, INT32_MAX, NULL, NULL, 0);
}

void zinc__mark_removed(struct zinc_header *hdr)
{
	uint16_t was = __atomic_fetch_or(&hdr->flags, ZINC_FLAG_REMOVED,
					 __ATOMIC_SEQ_CST);
	if (!(was & ZINC_FLAG_REMOVED)) {
		__atomic_fetch_add(&hdr->notify_seq, 1, __ATOMIC_SEQ_CST);
		zinc__wake_all(&hdr->notify_seq);
	}
}

/* Sleep while *word == expected, until the absolute CLOCK_MONOTONIC
 * deadline (NULL: forever).  0 or -errno (EAGAIN, EINTR, ETIMEDOUT). */
static int futex_wait_until(uint32_t *word, uint32_t expected,
			    const struct timespec *deadline)
{
	long rc = syscall(SYS_futex, word, FUTEX_WAIT_BITSET, expected, deadline,
			  NULL, FUTEX_BITSET_MATCH_ANY);
	return rc < 0 ? -errno : 0;
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield");
#endif
}

static uint32_t *seq_word(zinc_region *r)
{
	return &r->hdr->notify_seq;
}

/* Move the cursor to the counter if it differs.  0 = consumed, -EAGAIN =
 * nothing new.  *seen gets the counter value looked at.  The cursor is
 * shared by the handle's threads, so one notification is consumed once. */
static int consume(zinc_region *r, uint32_t *seen)
{
	for (;;) {
		uint32_t old = __atomic_load_n(&r->cursor, __ATOMIC_ACQUIRE);
		uint32_t cur = __atomic_load_n(seq_word(r), __ATOMIC_ACQUIRE);
		*seen = cur;
		if (cur == old)
			return -EAGAIN;
		if (__atomic_compare_exchange_n(&r->cursor, &old, cur, 0,
						__ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
			return 0;
	}
}

static int removed(zinc_region *r)
{
	return zinc__flags(r) & ZINC_FLAG_REMOVED;
}

/*
 * Asked by a wait that slept for a while without news: was the name
 * removed by someone who does not set ZINC_FLAG_REMOVED (zinc-core's last
 * close, a plain rm)?  Then mark it, so every libzinc handle learns at once.
 */
int zinc__name_gone(zinc_region *r)
{
	struct stat st;
	if (fstat(r->fd, &st) < 0 || st.st_nlink != 0)
		return 0;
	zinc__mark_removed(r->hdr);
	return 1;
}

/* consume(), except that the counter bump which comes with the region's
 * removal is reported as -EIDRM, never as a notification: the remover sets
 * ZINC_FLAG_REMOVED before it bumps the counter, so whoever saw the bump
 * sees the flag. */
int zinc__take(zinc_region *r, uint32_t *seen)
{
	int rc = consume(r, seen);
	return rc == 0 && removed(r) ? -EIDRM : rc;
}

/*
 * Wake if a libzinc waiter announced itself, or if a handle that is not
 * libzinc's may be open (a zinc-core handle counts in ref_count but not in
 * ext->handles, and its waiters never announce).  libzinc's open raises
 * ref_count before handles and its close lowers handles first, so the
 * transients err towards waking; a zinc-core open raised ref_count before
 * its waiter read the counter, so if we read ref_count without that
 * increment, the waiter reads our bump and does not sleep.
 */
void zinc_notify(zinc_region *r)
{
	if (!r)
		return;
	__atomic_fetch_add(seq_word(r), 1, __ATOMIC_SEQ_CST);
	if (r->always_wake || __atomic_load_n(&r->ext->waiters, __ATOMIC_SEQ_CST) ||
	    __atomic_load_n(&r->hdr->ref_count, __ATOMIC_SEQ_CST) !=
		    __atomic_load_n(&r->ext->handles, __ATOMIC_SEQ_CST))
		zinc__wake_all(seq_word(r));
}

int32_t zinc_try_wait(zinc_region *r)
{
	uint32_t seen;
	if (!r)
		return -EINVAL;
	if (removed(r))
		return -EIDRM;
	return zinc__take(r, &seen);
}

void zinc__deadline_after(struct timespec *ts, uint64_t ns)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ns += (uint64_t)ts->tv_nsec;
	ts->tv_sec += (time_t)(ns / 1000000000u);
	ts->tv_nsec = (long)(ns % 1000000000u);
}

int zinc__before(const struct timespec *a, const struct timespec *b)
{
	return a->tv_sec < b->tv_sec ||
	       (a->tv_sec == b->tv_sec && a->tv_nsec < b->tv_nsec);
}

/* Busy-watch the counter until spin_end (bounded by the caller). */
static int spin(zinc_region *r, const struct timespec *spin_end)
{
	uint32_t seen;
	for (unsigned i = 1;; i++) {
		if (removed(r))
			return -EIDRM;
		int rc = zinc__take(r, &seen);
		if (rc != -EAGAIN)
			return rc;
		cpu_relax();
		if (i % 64 == 0) {
			struct timespec now;
			clock_gettime(CLOCK_MONOTONIC, &now);
			if (!zinc__before(&now, spin_end))
				return -EAGAIN;
			/* The notifier may be waiting for this very CPU
			 * (same CPU, or a real-time policy): let it run. */
			sched_yield();
		}
	}
}

int32_t zinc_wait(zinc_region *r, uint32_t timeout_ms)
{
	uint32_t seen;
	if (!r)
		return -EINVAL;
	if (removed(r))
		return -EIDRM;
	int rc = zinc__take(r, &seen);
	if (rc != -EAGAIN)
		return rc;
	if (timeout_ms == 0)
		return -ETIMEDOUT;

	int forever = timeout_ms == UINT32_MAX;
	struct timespec deadline;
	if (!forever)
		zinc__deadline_after(&deadline, (uint64_t)timeout_ms * 1000000u);
	if (r->spin_ns) {
		struct timespec spin_end;
		zinc__deadline_after(&spin_end, r->spin_ns);
		if (!forever && zinc__before(&deadline, &spin_end))
			spin_end = deadline;
		rc = spin(r, &spin_end);
		if (rc != -EAGAIN)
			return rc;
	}

	__atomic_fetch_add(&r->ext->waiters, 1, __ATOMIC_SEQ_CST);
	for (;;) {
		if (removed(r)) {
			rc = -EIDRM;
			break;
		}
		rc = zinc__take(r, &seen);
		if (rc != -EAGAIN)
			break;
		/* Sleep in slices, to notice a name removed without the flag.
		 * EINTR, EAGAIN and spurious wakes loop; the absolute deadline
		 * keeps the total timeout exact across them. */
		struct timespec until;
		zinc__deadline_after(&until, ZINC_SLICE_NS);
		int last_slice = !forever && !zinc__before(&until, &deadline);
		rc = futex_wait_until(seq_word(r), seen, last_slice ? &deadline : &until);
		if (rc == -ETIMEDOUT) {
			int last = removed(r) ? -EIDRM : zinc__take(r, &seen);
			if (last != -EAGAIN || zinc__name_gone(r))
				rc = last != -EAGAIN ? last : -EIDRM;
			if (rc != -ETIMEDOUT || last_slice)
				break;
		}
	}
	__atomic_fetch_sub(&r->ext->waiters, 1, __ATOMIC_SEQ_CST);
	return rc;
}

int32_t zinc_set_spin(zinc_region *r, uint32_t spin_ns)
{
	if (!r)
		return -EINVAL;
	r->spin_ns = spin_ns;
	return 0;
}

uint32_t zinc_seq(zinc_region *r)
{
	return r ? __atomic_load_n(seq_word(r), __ATOMIC_ACQUIRE) : 0;
}

const uint32_t *zinc_futex_word(zinc_region *r)
{
	return r ? seq_word(r) : NULL;
}

int32_t zinc_watch(zinc_region *r, int on)
{
	if (!r)
		return -EINVAL;
	uint8_t want = on ? 1 : 0;
	uint8_t was = __atomic_exchange_n(&r->watching, want, __ATOMIC_SEQ_CST);
	if (was != want)
		__atomic_fetch_add(&r->ext->waiters, want ? 1u : (uint32_t)-1,
				   __ATOMIC_SEQ_CST);
	return 0;
}

int32_t zinc_removed(zinc_region *r)
{
	return r ? removed(r) != 0 : -EINVAL;
}
