/* SPDX-License-Identifier: MIT */
/*
 * One thread waits on every watched counter through io_uring's futex wait
 * (IORING_OP_FUTEX_WAIT, Linux 6.7+): one armed request per region, however
 * many regions, instead of a futex_waitv(2) thread per 127 (watcher.c, the
 * fallback when io_uring is missing, disabled by kernel.io_uring_disabled,
 * lacks the futex ops, or ZINCFS_NO_IO_URING=1 is set).
 *
 * Debian 12's liburing (2.3) and kernel headers (6.1) predate the futex
 * operations, so the ring is set up with the raw io_uring_setup(2) and
 * io_uring_enter(2) system calls and the opcode and FUTEX2 flags are
 * defined here from the kernel's uapi (include/uapi/linux/io_uring.h and
 * futex.h of 6.7).  A kernel without them fails our first request with
 * EINVAL (uring_start probes it).
 *
 * The ring belongs to the watcher thread alone: workers that start or stop
 * watching a region (under zfs_lock) only queue an arm and bump a control
 * word the thread also waits on.  An arm (struct uring_arm) is the
 * user_data of its region's wait; a stopped watch cancels its wait, and
 * the arm is freed only once the kernel has answered that wait, so no
 * completion ever names freed memory.
 */
#include <errno.h>
#include <linux/futex.h>
#include <linux/io_uring.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "zincfs.h"

#define OP_FUTEX_WAIT 51        /* IORING_OP_FUTEX_WAIT, Linux 6.7 */
#define FUTEX2_SIZE_U32_ 0x02   /* FUTEX2_SIZE_U32 */
#define FUTEX2_PRIVATE_ 128     /* FUTEX2_PRIVATE (= FUTEX_PRIVATE_FLAG) */
#define SQ_ENTRIES 1024
#define CQ_ENTRIES 16384        /* more in flight overflow into the kernel's
				   list (IORING_FEAT_NODROP), none is lost */
#define UD_IGNORE 0             /* cancel requests */
#define UD_CTL 1                /* the wait on ctl */
#define EVENTS_MAX 256          /* invalidations per round */

struct uring_arm {
	struct region *r;       /* NULL once the watch stopped */
	int inflight;           /* its wait is in the kernel */
	int cancel_sent;
	struct uring_arm *next_arm, *next_cancel; /* to do */
	struct uring_arm *prev, *next;            /* all arms */
};

static struct {
	int fd;
	unsigned *sq_head, *sq_tail, *sq_mask, *sq_array, *cq_head, *cq_tail, *cq_mask;
	struct io_uring_sqe *sqes;
	struct io_uring_cqe *cqes;
	void *sq_map, *cq_map;
	size_t sq_len, cq_len, sqes_len;
	unsigned unsubmitted;
} ring = { .fd = -1 };

static int active, stop, ctl_armed;
static uint32_t ctl;
static pthread_t tid;
static struct uring_arm *to_arm, *to_cancel, *all_arms;

int uring_active(void)
{
	return active;
}

static void kick(void)
{
	__atomic_fetch_add(&ctl, 1, __ATOMIC_SEQ_CST);
	syscall(SYS_futex, &ctl, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

static int enter(unsigned submit, unsigned wait)
{
	long rc = syscall(__NR_io_uring_enter, ring.fd, submit, wait,
			  wait ? IORING_ENTER_GETEVENTS : 0, NULL, 0);
	if (rc < 0)
		return -errno;
	ring.unsubmitted -= (unsigned)rc < submit ? (unsigned)rc : submit;
	return 0;
}

/* A free submission entry, zeroed; submits what is queued when full. */
static struct io_uring_sqe *sqe_get(void)
{
	unsigned tail = *ring.sq_tail;
	while (tail - __atomic_load_n(ring.sq_head, __ATOMIC_ACQUIRE) >= SQ_ENTRIES) {
		int rc = enter(ring.unsubmitted, 0);
		if (rc && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY)
			return NULL;
	}
	unsigned i = tail & *ring.sq_mask;
	struct io_uring_sqe *sqe = &ring.sqes[i];
	memset(sqe, 0, sizeof(*sqe));
	ring.sq_array[i] = i;
	__atomic_store_n(ring.sq_tail, tail + 1, __ATOMIC_RELEASE);
	ring.unsubmitted++;
	return sqe;
}

/* Queue a wait until the 32-bit word at addr is no longer val. */
static int queue_wait(const uint32_t *addr, uint32_t val, int private, uint64_t ud)
{
	struct io_uring_sqe *sqe = sqe_get();
	if (!sqe)
		return -EBUSY;
	sqe->opcode = OP_FUTEX_WAIT;
	sqe->fd = FUTEX2_SIZE_U32_ | (private ? FUTEX2_PRIVATE_ : 0);
	sqe->addr = (uintptr_t)addr;
	sqe->addr2 = val;
	sqe->addr3 = FUTEX_BITSET_MATCH_ANY;
	sqe->user_data = ud;
	return 0;
}

static void arm_free(struct uring_arm *a)
{
	*(a->prev ? &a->prev->next : &all_arms) = a->next;
	if (a->next)
		a->next->prev = a->prev;
	free(a);
}

static void arm_queue(struct uring_arm *a)
{
	if (queue_wait(zinc_futex_word(a->r->h), a->r->last_seq, 0, (uintptr_t)a) == 0)
		a->inflight = 1;
	else
		log_error("io_uring: cannot watch region %s", a->r->name);
}

void uring_watch_locked(struct region *r)
{
	struct uring_arm *a = calloc(1, sizeof(*a));
	if (!a) {
		log_error("cannot watch region %s: out of memory", r->name);
		return;
	}
	a->r = r;
	r->arm = a;
	a->next = all_arms;
	if (all_arms)
		all_arms->prev = a;
	all_arms = a;
	a->next_arm = to_arm;
	to_arm = a;
	kick();
}

void uring_unwatch_locked(struct region *r)
{
	struct uring_arm *a = r->arm;
	r->arm = NULL;
	a->r = NULL;
	a->next_cancel = to_cancel;
	to_cancel = a;
	kick();
}

/* Locked: arm new watches, cancel stopped ones. */
static void run_todo(void)
{
	while (to_arm) {
		struct uring_arm *a = to_arm;
		to_arm = a->next_arm;
		if (a->r)
			arm_queue(a);
	}
	while (to_cancel) {
		struct uring_arm *a = to_cancel;
		to_cancel = a->next_cancel;
		if (!a->inflight) {
			arm_free(a);
			continue;
		}
		struct io_uring_sqe *sqe = sqe_get();
		if (!sqe) { /* try again next round */
			a->next_cancel = to_cancel;
			to_cancel = a;
			break;
		}
		sqe->opcode = IORING_OP_ASYNC_CANCEL;
		sqe->fd = -1;
		sqe->addr = (uintptr_t)a;
		sqe->user_data = UD_IGNORE;
		a->cancel_sent = 1;
	}
}

/* Locked: handle completions; returns how many events were queued in ev. */
static int reap(struct watch_event *ev, struct replies *out)
{
	int nev = 0;
	unsigned head = *ring.cq_head;
	unsigned tail = __atomic_load_n(ring.cq_tail, __ATOMIC_ACQUIRE);
	for (; head != tail && nev < EVENTS_MAX; head++) {
		struct io_uring_cqe *cqe = &ring.cqes[head & *ring.cq_mask];
		if (cqe->user_data == UD_CTL) {
			ctl_armed = 0;
			continue;
		}
		if (cqe->user_data == UD_IGNORE)
			continue;
		struct uring_arm *a = (struct uring_arm *)(uintptr_t)cqe->user_data;
		a->inflight = 0;
		if (!a->r) {
			if (a->cancel_sent)
				arm_free(a); /* else run_todo frees it */
			continue;
		}
		struct region *r = a->r;
		int rc = watch_look_locked(r, &ev[nev], out);
		if (rc > 0)
			nev++;
		else if (rc < 0 && region_check_locked(r) == 0)
			region_gone_locked(r, "unreadable"); /* stops the watch */
		if (a->r) /* still watched: wait for the next change */
			arm_queue(a);
	}
	__atomic_store_n(ring.cq_head, head, __ATOMIC_RELEASE);
	return nev;
}

static int cq_empty(void)
{
	return *ring.cq_head == __atomic_load_n(ring.cq_tail, __ATOMIC_ACQUIRE);
}

static void *uring_main(void *arg)
{
	(void)arg;
	struct watch_event ev[EVENTS_MAX];
	for (;;) {
		struct replies out = { 0 };
		LOCK();
		if (stop) {
			UNLOCK();
			break;
		}
		/* Kicks come under the lock: none is missed between reading
		 * ctl and arming its wait. */
		uint32_t c = __atomic_load_n(&ctl, __ATOMIC_SEQ_CST);
		run_todo();
		int nev = reap(ev, &out);
		if (!ctl_armed && queue_wait(&ctl, c, 1, UD_CTL) == 0)
			ctl_armed = 1;
		UNLOCK();
		replies_send(&out);
		for (int i = 0; i < nev; i++)
			watch_event_finish(&ev[i]);
		/* Submit without waiting, then sleep in poll(2) until a
		 * completion: the same wake, and tools that cannot tell an
		 * io_uring_enter that waits from one that does not (valgrind
		 * holds its lock across it, stalling every other thread)
		 * know that poll blocks. */
		int rc = ring.unsubmitted ? enter(ring.unsubmitted, 0) : 0;
		if (rc && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY && rc != -ETIME) {
			log_error("io_uring_enter: %s", strerror(-rc));
			break;
		}
		if (!nev && cq_empty()) {
			struct pollfd pfd = { .fd = ring.fd, .events = POLLIN };
			poll(&pfd, 1, -1);
		}
	}
	return NULL;
}

static void ring_close(void)
{
	if (ring.sqes && ring.sqes != MAP_FAILED)
		munmap(ring.sqes, ring.sqes_len);
	if (ring.cq_map && ring.cq_map != MAP_FAILED && ring.cq_map != ring.sq_map)
		munmap(ring.cq_map, ring.cq_len);
	if (ring.sq_map && ring.sq_map != MAP_FAILED)
		munmap(ring.sq_map, ring.sq_len);
	if (ring.fd >= 0)
		close(ring.fd);
	memset(&ring, 0, sizeof(ring));
	ring.fd = -1;
}

static int ring_open(void)
{
	struct io_uring_params p;
	memset(&p, 0, sizeof(p));
	p.flags = IORING_SETUP_CQSIZE;
	p.cq_entries = CQ_ENTRIES;
	long fd = syscall(__NR_io_uring_setup, SQ_ENTRIES, &p);
	if (fd < 0)
		return -errno;
	ring.fd = (int)fd;
	if (!(p.features & IORING_FEAT_NODROP) || p.sq_entries != SQ_ENTRIES)
		return -EOPNOTSUPP;
	ring.sq_len = p.sq_off.array + p.sq_entries * sizeof(unsigned);
	ring.cq_len = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
	if (p.features & IORING_FEAT_SINGLE_MMAP) {
		if (ring.cq_len > ring.sq_len)
			ring.sq_len = ring.cq_len;
		ring.cq_len = ring.sq_len;
	}
	ring.sq_map = mmap(NULL, ring.sq_len, PROT_READ | PROT_WRITE,
			   MAP_SHARED | MAP_POPULATE, ring.fd, IORING_OFF_SQ_RING);
	if (ring.sq_map == MAP_FAILED)
		return -errno;
	ring.cq_map = (p.features & IORING_FEAT_SINGLE_MMAP)
			      ? ring.sq_map
			      : mmap(NULL, ring.cq_len, PROT_READ | PROT_WRITE,
				     MAP_SHARED | MAP_POPULATE, ring.fd, IORING_OFF_CQ_RING);
	if (ring.cq_map == MAP_FAILED)
		return -errno;
	ring.sqes_len = p.sq_entries * sizeof(struct io_uring_sqe);
	ring.sqes = mmap(NULL, ring.sqes_len, PROT_READ | PROT_WRITE,
			 MAP_SHARED | MAP_POPULATE, ring.fd, IORING_OFF_SQES);
	if (ring.sqes == MAP_FAILED)
		return -errno;
	char *sq = ring.sq_map, *cq = ring.cq_map;
	ring.sq_head = (unsigned *)(sq + p.sq_off.head);
	ring.sq_tail = (unsigned *)(sq + p.sq_off.tail);
	ring.sq_mask = (unsigned *)(sq + p.sq_off.ring_mask);
	ring.sq_array = (unsigned *)(sq + p.sq_off.array);
	ring.cq_head = (unsigned *)(cq + p.cq_off.head);
	ring.cq_tail = (unsigned *)(cq + p.cq_off.tail);
	ring.cq_mask = (unsigned *)(cq + p.cq_off.ring_mask);
	ring.cqes = (struct io_uring_cqe *)(cq + p.cq_off.cqes);

	/* Does this kernel know the futex wait?  A wait for a value ctl does
	 * not hold must end at once with EAGAIN; an unknown opcode gives
	 * EINVAL. */
	uint32_t other = ctl + 1;
	int rc = queue_wait(&ctl, other, 1, UD_CTL);
	if (!rc)
		rc = enter(1, 1);
	if (rc)
		return rc;
	int res = -EIO;
	if (!cq_empty()) {
		res = ring.cqes[*ring.cq_head & *ring.cq_mask].res;
		__atomic_store_n(ring.cq_head, *ring.cq_head + 1, __ATOMIC_RELEASE);
	}
	return res == -EAGAIN ? 0 : res == -EINVAL ? -EOPNOTSUPP : res;
}

int uring_start(void)
{
	const char *no = getenv("ZINCFS_NO_IO_URING");
	if (no && *no && strcmp(no, "0") != 0)
		return -ECANCELED; /* "Operation canceled": by the environment */
	int rc = ring_open();
	if (!rc && zfs_thread_start(&tid, uring_main, NULL) != 0)
		rc = -EAGAIN;
	if (rc) {
		ring_close();
		return rc;
	}
	active = 1;
	log_info("watching counters with io_uring futex waits: one thread");
	return 0;
}

int uring_stop(void)
{
	if (!active)
		return 0;
	LOCK();
	stop = 1;
	kick();
	UNLOCK();
	if (zfs_thread_join(tid, 2))
		return -1;
	LOCK();
	/* Every stopped watch's wait should have been answered by now. */
	int narms = 0, nlive = 0, nflight = 0;
	for (struct uring_arm *a = all_arms; a; a = a->next) {
		narms++;
		nlive += a->r != NULL;
		nflight += a->inflight && !a->r;
	}
	log_info("io_uring: %d waits at exit, %d of them for stopped watches",
		 narms, nflight);
	(void)nlive;
	while (all_arms) {
		struct uring_arm *a = all_arms;
		if (a->r) {
			a->r->arm = NULL;
			GUARDED(zinc_watch(a->r->h, 0), (void)0);
		}
		arm_free(a);
	}
	to_arm = to_cancel = NULL;
	active = 0;
	UNLOCK();
	ring_close(); /* the kernel drops the waits still armed */
	return 0;
}
