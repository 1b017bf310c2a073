/* SPDX-License-Identifier: MIT */
/*
 * Threads that are not libfuse workers (so they may call the kernel's
 * invalidation, which can wait for workers to write dirty pages back):
 *
 * - watch groups: each waits with futex_waitv(2) on the counters of up to
 *   127 regions that have open data or .wait files in the mount (open
 *   .notify files alone need no watching), plus a private control
 *   word.  It counts itself as a libzinc waiter (zinc_watch) so notifiers
 *   always wake it.  On every counter change: invalidate the data file's
 *   page cache first when it may hold anything (needs_inval_locked), then
 *   publish the value to .wait readers and pollers.
 *   One group exists per 127 watched regions, never one thread per region.
 *   Where io_uring has futex waits (Linux 6.7+), uring.c's one thread
 *   waits on every counter instead and no group is started; both look at
 *   a counter with watch_look_locked() and finish with watch_event_finish().
 *
 * - the control thread: inotify on the region directory (regions made or
 *   removed by anyone appear/disappear at once), our mount's presence in
 *   /proc/self/mountinfo (main.c, zfs_mount_changed), and jobs from workers:
 *   writes to NAME.notify while the data file is open (invalidate, then
 *   zinc_notify, publish, reply; without an open data file the worker does
 *   it itself, see notify_request).
 *
 * - the entry thread: the kernel's directory entries (notify_delete for
 *   regions that went away, then EIDRM to their blocked .wait readers, so
 *   that a reader that saw EIDRM finds the names gone; attribute
 *   invalidation after chmod/chown of an object).  The only requests it
 *   answers are those .wait reads, which hold no lock (below).
 *
 * Why entries have a thread of their own (every wait of every thread that
 * calls into the kernel, and who ends it):
 *
 * - notify_delete / inval_entry take the directory's inode lock, and
 *   notify_delete then each victim's inode lock (NAME, NAME.notify,
 *   NAME.wait).  The kernel holds those locks while their holders wait for
 *   our answer: a write(2) to NAME.notify holds NAME.notify's lock until its
 *   WRITE is answered; write/truncate/fsync of NAME hold NAME's; create,
 *   unlink and lookups hold the directory's.  So the thread that calls them
 *   must never be the one that has to answer such a request: the control
 *   thread answers .notify writes (J_NOTIFY), and a J_DELETE queued in front
 *   of a J_NOTIFY on the same thread waited for the writer that waited for
 *   the J_NOTIFY (tests/fuzz/repro/notify_delete_deadlock.py).  The entry
 *   thread answers only blocked .wait reads (a direct_io read takes no inode
 *   lock, so no lock it waits for is held by them), and every lock it waits
 *   for is released by a
 *   request that a worker (create, unlink, lookup, write, setattr, fsync of
 *   NAME: answered at once) or the control thread (writes to NAME.notify)
 *   answers without ever waiting for the entry thread.
 * - notify_inval_inode of the data file (control thread for J_NOTIFY, watch
 *   groups) takes no inode lock.  It waits for NAME's folio locks (held by
 *   reads, faults and writes of NAME while a worker answers them) and for
 *   the write-back of dirty mmap pages (a WRITE that a worker answers).
 *   Workers never wait for our threads (zfs_lock is never held across a
 *   call into the kernel that can block; notify_poll and replies do not
 *   block), so a worker is always free again soon, even with -s or
 *   max_threads=1.  It never runs inside a handler (a worker may be the
 *   only one free) nor on a thread that answers reads or writes of NAME.
 *   The requests the control thread answers (.notify writes) and the groups
 *   answer (.wait reads: no inode lock, and no folio of NAME) hold nothing
 *   that the invalidation waits for.
 * - The control thread and the groups never wait for the entry thread; the
 *   entry thread may wait for them (through a .notify writer's lock).  No
 *   cycle remains.
 * - At exit the workers are gone: a kernel call that needs one would wait
 *   until the connection ends.  Queued entry jobs are then dropped and
 *   J_NOTIFY jobs skip the invalidation (see watcher_stop).
 */
#include <errno.h>
#include <malloc.h>
#include <linux/futex.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "zincfs.h"

#ifndef SYS_futex_waitv
#define SYS_futex_waitv 449
#endif
#define GROUP_MAX (FUTEX_WAITV_MAX - 1) /* one slot for the control word */

struct watch_group {
	pthread_t tid;
	uint32_t ctl;                 /* bumped whenever the set changes */
	int count;
	struct region *regions[GROUP_MAX];
	struct watch_group *next;
};

static struct watch_group *groups;
static int stopping;
static int no_waitv;               /* kernel without futex_waitv: poll */

static void ctl_kick(struct watch_group *g)
{
	__atomic_fetch_add(&g->ctl, 1, __ATOMIC_SEQ_CST);
	syscall(SYS_futex, &g->ctl, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

/* Threads we start take no process signals (libfuse's handler must run on
 * the main thread to end the loop). */
int zfs_thread_start(pthread_t *tid, void *(*fn)(void *), void *arg)
{
	sigset_t all, old;
	sigfillset(&all);
	sigdelset(&all, SIGBUS);
	sigdelset(&all, SIGSEGV);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	int rc = pthread_create(tid, NULL, fn, arg);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return rc;
}

/*
 * Does a notification seen now need fuse_lowlevel_notify_inval_inode() of
 * r's data file before .wait readers may see it?  Only while some file of
 * the data inode is open in the mount (r->data_open, locked; the caller has
 * read the counter under the same lock hold, after the notification):
 *
 * - Dirty pages.  Only a MAP_SHARED mapping of NAME makes dirty pages
 *   (writeback cache is off, so write() through the mount goes straight to
 *   us).  A mapping holds its struct file, so RELEASE comes only after the
 *   last munmap; unmapping writes the mapping's dirty pages back
 *   (fuse_vma_close -> write_inode_now), and the kernel sends RELEASE only
 *   when the last reference to the FUSE file is gone, which the writeback
 *   requests hold.  So when data_open is 0 here, every page dirtied before
 *   this notification has already reached the region through our write
 *   handler.  A writer that still has NAME open or mapped counts in
 *   data_open (we count OPEN/CREATE before replying and RELEASE after the
 *   kernel is done with the file, so data_open is never lower than the
 *   kernel's count).
 * - Clean cached pages.  They can outlive the last close (the inode stays
 *   in the kernel's cache), but nobody can see them without opening NAME
 *   again, and every open of the data file invalidates its cache: we never
 *   set FOPEN_KEEP_CACHE (fuse-facts.md Q4c: a fresh open sees external
 *   writes and even refreshes other processes' mappings).  That open comes
 *   after our OPEN reply, so after the data of any notification published
 *   before it; a reader that opens later reads the region afresh.
 * Without an open data file the invalidation had nothing to do, and it cost
 * a kernel round trip on every notification.
 */
static int needs_inval_locked(const struct region *r)
{
	return r->data_open > 0;
}

/* A new counter value seen (locked): its number (struct region). */
static uint64_t seen_locked(struct region *r, uint32_t seq)
{
	r->last_seq = seq;
	return ++r->seen_gen;
}

/* Readers may now see seq, seen as number gen (locked), unless a later
 * value was seen since: that one is published by its own event. */
static void publish_locked(struct region *r, uint32_t seq, uint64_t gen,
			   struct replies *out)
{
	if (gen == r->seen_gen && r->done_gen != gen) {
		/* Our own notify and the watcher may both see one value. */
		int moved = seq != r->done_seq;
		r->done_seq = seq;
		r->done_gen = gen;
		if (moved)
			events_moved_locked(r);
	}
	waiters_publish_locked(r, out);
}

int watch_look_locked(struct region *r, struct watch_event *ev, struct replies *out)
{
	uint32_t seq;
	if (region_probe(r, &seq) != 0)
		return -1;
	if (seq == r->last_seq)
		return 0;
	uint64_t gen = seen_locked(r, seq);
	if (!needs_inval_locked(r)) {
		publish_locked(r, seq, gen, out);
		return 0;
	}
	r->refs++;
	*ev = (struct watch_event){ r, seq, gen };
	return 1;
}

void watch_event_finish(struct watch_event *ev)
{
	struct replies out = { 0 };
	struct region *r = ev->r;
	/* Dirty pages of writers through mmap go back first, then every
	 * mapping and read sees the region. */
	fuse_lowlevel_notify_inval_inode(zfs_se, INO(r->slot, K_DATA), 0, 0);
	LOCK();
	publish_locked(r, ev->seq, ev->gen, &out);
	region_put_locked(r);
	UNLOCK();
	replies_send(&out);
}

static void *group_main(void *arg)
{
	struct watch_group *g = arg;
	struct futex_waitv wv[FUTEX_WAITV_MAX];
	struct watch_event ev[GROUP_MAX];
	struct region *bad[GROUP_MAX];

	for (;;) {
		int n = 0, nev = 0, nbad = 0;
		struct replies out = { 0 };
		LOCK();
		if (stopping) {
			UNLOCK();
			break;
		}
		uint32_t ctl = __atomic_load_n(&g->ctl, __ATOMIC_SEQ_CST);
		for (int i = 0; i < g->count; i++) {
			struct region *r = g->regions[i];
			int rc = watch_look_locked(r, &ev[nev], &out);
			if (rc < 0) {
				bad[nbad++] = r;
				continue;
			}
			nev += rc;
			wv[n++] = (struct futex_waitv){
				.val = r->last_seq,
				.uaddr = (uintptr_t)zinc_futex_word(r->h),
				.flags = FUTEX_32,
			};
		}
		wv[n++] = (struct futex_waitv){
			.val = ctl,
			.uaddr = (uintptr_t)&g->ctl,
			.flags = FUTEX_32 | FUTEX_PRIVATE_FLAG,
		};
		for (int i = 0; i < nbad; i++)
			if (region_check_locked(bad[i]) == 0)
				region_gone_locked(bad[i], "unreadable");
		UNLOCK();
		replies_send(&out);

		for (int i = 0; i < nev; i++)
			watch_event_finish(&ev[i]);
		if (nev || nbad)
			continue; /* look again before sleeping */

		if (no_waitv) {
			sleep_ms(5);
			continue;
		}
		/* Returns at once if a counter moved since we read it. */
		long rc = syscall(SYS_futex_waitv, wv, n, 0, NULL, 0);
		if (rc < 0 && errno == ENOSYS) {
			log_warn("futex_waitv is not available (Linux < 5.16): "
				 "polling counters every 5 ms");
			no_waitv = 1;
		} else if (rc < 0 && errno == EFAULT) {
			sleep_ms(1); /* a counter went away; we will see which */
		}
	}
	return NULL;
}

void watch_del_locked(struct region *r)
{
	if (r->arm) {
		uring_unwatch_locked(r);
		GUARDED(zinc_watch(r->h, 0), (void)0);
		return;
	}
	struct watch_group *g = r->group;
	if (!g)
		return;
	int i = r->gidx;
	g->regions[i] = g->regions[--g->count];
	g->regions[i]->gidx = i;
	r->group = NULL;
	GUARDED(zinc_watch(r->h, 0), (void)0);
	ctl_kick(g);
}

/* A watch group with room for one more region (a new one if need be), or
 * NULL (logged). */
static struct watch_group *group_with_room(void)
{
	struct watch_group *g;
	for (g = groups; g; g = g->next)
		if (g->count < GROUP_MAX)
			break;
	if (!g) {
		g = calloc(1, sizeof(*g));
		if (!g || zfs_thread_start(&g->tid, group_main, g)) {
			log_error("cannot start a watcher thread");
			free(g);
			return NULL;
		}
		g->next = groups;
		groups = g;
	}
	return g;
}

void watch_update_locked(struct region *r)
{
	/* Open .notify files alone need no watching: nothing in the mount
	 * reads the counter then and nothing is cached (needs_inval_locked),
	 * and a watcher would be woken by every notification for nothing. */
	int want = (r->data_open > 0 || r->wait_open > 0 || r->ev_watch) &&
		   !r->gone && !stopping;
	if (!want) {
		watch_del_locked(r);
		return;
	}
	if (r->group || r->arm)
		return;
	struct watch_group *g = uring_active() ? NULL : group_with_room();
	if (!g && !uring_active())
		return;
	int fault = 0;
	r->last_seq = r->done_seq = region_seq(r, &fault);
	r->done_gen = r->seen_gen;
	if (!fault)
		GUARDED(zinc_watch(r->h, 1), (void)0);
	if (!g) {
		uring_watch_locked(r);
		return;
	}
	r->group = g;
	r->gidx = g->count;
	g->regions[g->count++] = r;
	ctl_kick(g);
}

/* ---- control thread ---- */

enum { J_NOTIFY, J_CLOSE, J_DELETE, J_ATTR };

struct job {
	int type;
	fuse_req_t req;
	struct region *r;
	size_t size;
	uint64_t slot;
	struct job *next;
	char name[];
};

static pthread_mutex_t jobs_lock = PTHREAD_MUTEX_INITIALIZER;
static struct job *jobs, **jobs_tail = &jobs;
static int ino_fd = -1, ev_fd = -1, mnt_fd = -1;
static pthread_t ctl_tid;
static int ctl_started, ctl_stop;

/* The entry thread's queue (J_DELETE, J_ATTR); see the top of the file. */
static pthread_mutex_t ent_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t ent_cond = PTHREAD_COND_INITIALIZER;
static struct job *ent_jobs, **ent_tail = &ent_jobs;
static pthread_t ent_tid;
static int ent_started, ent_stop;

static int trim_wanted;

/* Called with zfs_lock held (which also guards ev_fd's closing). */
void watcher_trim_heap(void)
{
	__atomic_store_n(&trim_wanted, 1, __ATOMIC_RELEASE);
	uint64_t one = 1;
	if (ev_fd >= 0 && write(ev_fd, &one, sizeof(one)) < 0) {
		/* see job_push */
	}
}

static void job_push(struct job *j)
{
	pthread_mutex_lock(&jobs_lock);
	j->next = NULL;
	*jobs_tail = j;
	jobs_tail = &j->next;
	pthread_mutex_unlock(&jobs_lock);
	uint64_t one = 1;
	if (write(ev_fd, &one, sizeof(one)) < 0) {
		/* eventfd write fails only on overflow; it is then readable */
	}
}

/* After our own zinc_notify (locked): let .wait readers see the counter at
 * once, so a reader that looks after the write to NAME.notify returned finds
 * it, unless a notification we have not made safe may be among those the
 * counter now covers (see the callers).  The watcher, woken too, then finds
 * nothing new. */
static void publish_own_locked(struct region *r, uint32_t seq, struct replies *out)
{
	/* read just now, under the lock: the latest */
	publish_locked(r, seq, seen_locked(r, seq), out);
}

/*
 * A write to NAME.notify (size bytes), or with close the release of a
 * .notify open that never wrote: zinc_notify, publish to .wait readers,
 * then reply.  Runs in the libfuse worker that got the request.
 *
 * While the data file is open somewhere, the data file's cache must be
 * invalidated first, and that may wait for workers (dirty pages are written
 * back through us): it is handed to the control thread, never done here (we
 * might be the only free worker).  Otherwise (needs_inval_locked) there is
 * nothing to invalidate and the worker notifies and replies itself: no
 * thread hop on the way.
 */
void notify_request(fuse_req_t req, struct region *r, size_t size, int close)
{
	LOCK();
	int gone = r->gone, slow = needs_inval_locked(r);
	UNLOCK();
	if (slow) {
		struct job *j = calloc(1, sizeof(*j)); /* takes our ref */
		if (!j) {
			region_put(r);
			fuse_reply_err(req, ENOMEM);
			return;
		}
		j->type = close ? J_CLOSE : J_NOTIFY;
		j->req = req;
		j->r = r;
		j->size = size;
		job_push(j);
		return;
	}
	int err = gone ? EIDRM : 0;
	/* Not under the lock: r->h cannot change while we hold a ref (a
	 * resize needs zincfs to be its only user), and the woken waiters
	 * should not find the lock taken. */
	if (!err)
		GUARDED(zinc_notify(r->h), err = EIO);
	if (!err) {
		struct replies out = { 0 };
		uint32_t seq;
		LOCK();
		/* Read the counter and data_open together: if a data file was
		 * opened meanwhile, the watcher invalidates and publishes. */
		if (!r->gone && !needs_inval_locked(r) && region_probe(r, &seq) == 0)
			publish_own_locked(r, seq, &out);
		UNLOCK();
		replies_send(&out);
	}
	region_put(r); /* before the reply: see ops.c */
	if (err)
		fuse_reply_err(req, err);
	else if (!close)
		fuse_reply_write(req, size);
	else
		fuse_reply_err(req, 0);
}

/* ---- the entry thread ---- */

static int ent_push(int type, const char *name, uint64_t slot, struct region *r)
{
	size_t len = strlen(name);
	struct job *j = calloc(1, sizeof(*j) + len + 1);
	if (!j)
		return -1;
	j->type = type;
	j->slot = slot;
	j->r = r;
	memcpy(j->name, name, len + 1);
	pthread_mutex_lock(&ent_lock);
	if (ent_stop) { /* exiting: the kernel's entries go with the mount */
		pthread_mutex_unlock(&ent_lock);
		free(j);
		return -1;
	}
	*ent_tail = j;
	ent_tail = &j->next;
	pthread_cond_signal(&ent_cond);
	pthread_mutex_unlock(&ent_lock);
	return 0;
}

/* Called with zfs_lock held: it only queues. */
int job_delete_entries_locked(struct region *r)
{
	r->refs++;
	if (ent_push(J_DELETE, r->name, r->slot, r) == 0)
		return 0;
	r->refs--; /* the caller still holds r: no free here */
	return -1;
}

static void run_entry_job(struct job *j)
{
	static const char *const sfx[] = { "", ".notify", ".wait" };
	char buf[ZINC_NAME_MAX + 16];
	for (int k = K_DATA; k <= K_WAIT; k++) {
		if (j->type == J_ATTR) {
			/* chmod/chown of the object: attributes only */
			fuse_lowlevel_notify_inval_inode(zfs_se, INO(j->slot, k), -1, 0);
			continue;
		}
		int n = snprintf(buf, sizeof(buf), "%s%s", j->name, sfx[k]);
		fuse_lowlevel_notify_delete(zfs_se, ROOT_INO, INO(j->slot, k), buf,
					    (size_t)n);
	}
	if (j->r) {
		/* Blocked .wait readers hold no lock (direct_io reads take no
		 * inode lock), so answering them after the deletes is safe;
		 * new reads of a gone region fail at once (wait_read). */
		LOCK();
		waiters_fail_locked(j->r, EIDRM);
		region_put_locked(j->r);
		UNLOCK();
	}
}

static void *entry_main(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&ent_lock);
	for (;;) {
		while (!ent_jobs && !ent_stop)
			pthread_cond_wait(&ent_cond, &ent_lock);
		if (ent_stop)
			break;
		struct job *j = ent_jobs;
		ent_jobs = j->next;
		if (!ent_jobs)
			ent_tail = &ent_jobs;
		pthread_mutex_unlock(&ent_lock);
		run_entry_job(j);
		free(j);
		pthread_mutex_lock(&ent_lock);
	}
	/* Exiting: no worker answers any more, so the kernel could hold us
	 * (a lock whose holder waits for an answer); the entries go with the
	 * mount anyway.  Waiters are answered (main: waiters_fail_all). */
	while (ent_jobs) {
		struct job *j = ent_jobs;
		ent_jobs = j->next;
		if (j->r) {
			LOCK();
			waiters_fail_locked(j->r, EIDRM);
			region_put_locked(j->r);
			UNLOCK();
		}
		free(j);
	}
	ent_tail = &ent_jobs;
	pthread_mutex_unlock(&ent_lock);
	return NULL;
}

/* ---- control thread jobs ---- */

static void run_job(struct job *j)
{
	struct region *r = j->r;
	int fault = 0;
	/* Every notification up to seq0 was made before the invalidation
	 * below starts, so it covers their data. */
	uint32_t seq0 = region_seq(r, &fault);
	/* Write back and drop the data file's cache before anyone is woken:
	 * a writer through mmap that then notifies publishes its data.  Not
	 * once the loop has ended: no worker would write dirty pages back,
	 * and the mount goes away with us. */
	if (!__atomic_load_n(&ctl_stop, __ATOMIC_ACQUIRE))
		fuse_lowlevel_notify_inval_inode(zfs_se, INO(r->slot, K_DATA), 0, 0);
	int err = 0;
	LOCK();
	if (r->gone)
		err = EIDRM;
	UNLOCK();
	if (!err)
		GUARDED(zinc_notify(r->h), err = EIO); /* see notify_request */
	if (!err && !fault) {
		/* Publish now only if ours is the one notification since seq0;
		 * otherwise the watcher invalidates again and publishes. */
		struct replies out = { 0 };
		uint32_t seq;
		LOCK();
		if (!r->gone && region_probe(r, &seq) == 0 && seq == seq0 + 1)
			publish_own_locked(r, seq, &out);
		UNLOCK();
		replies_send(&out);
	}
	region_put(r); /* before the reply: see ops.c */
	if (err)
		fuse_reply_err(j->req, err);
	else if (j->type == J_NOTIFY)
		fuse_reply_write(j->req, j->size);
	else
		fuse_reply_err(j->req, 0);
}

static void run_jobs(void)
{
	for (;;) {
		pthread_mutex_lock(&jobs_lock);
		struct job *j = jobs;
		if (j) {
			jobs = j->next;
			if (!jobs)
				jobs_tail = &jobs;
		}
		pthread_mutex_unlock(&jobs_lock);
		if (!j)
			return;
		run_job(j);
		free(j);
	}
}

static void on_dir_event(const struct inotify_event *e)
{
	const size_t plen = strlen(ZINC_OBJECT_PREFIX);
	if (e->mask & IN_Q_OVERFLOW) {
		regions_check_all();
		events_rescan();
		return;
	}
	if (e->mask & (IN_DELETE_SELF | IN_MOVE_SELF)) {
		log_error("the region directory %s was removed or moved",
			  zfs_cfg.shm_dir);
		return;
	}
	if (!e->len || strncmp(e->name, ZINC_OBJECT_PREFIX, plen))
		return;
	const char *name = e->name + plen;
	if (!zinc__valid_name(name))
		return;
	if (e->mask & (IN_DELETE | IN_MOVED_FROM))
		bad_forget(name);
	uint64_t slot = 0;
	LOCK();
	struct region *r = region_by_name_locked(name);
	if (r && (e->mask & (IN_DELETE | IN_MOVED_FROM | IN_CREATE | IN_MOVED_TO |
			     IN_MODIFY)))
		region_check_locked(r); /* gone if replaced or truncated */
	else if (r && (e->mask & IN_ATTRIB))
		slot = r->slot;
	/* A new region while a .events file is open: watch it. */
	int adopt = (!r || r->gone) && events_active_locked() &&
		    (e->mask & (IN_CREATE | IN_MOVED_TO | IN_MODIFY | IN_CLOSE_WRITE));
	UNLOCK();
	if (adopt)
		events_name_appeared(name);
	if (slot) /* chmod/chown of the object: refresh attributes */
		ent_push(J_ATTR, name, slot, NULL);
}

static void *control_main(void *arg)
{
	(void)arg;
	char buf[64 * 1024] __attribute__((aligned(__alignof__(struct inotify_event))));
	struct pollfd pf[3] = { { .fd = ino_fd, .events = POLLIN },
				{ .fd = ev_fd, .events = POLLIN },
				{ .fd = mnt_fd, .events = POLLPRI } };
	for (;;) {
		if (poll(pf, mnt_fd >= 0 ? 3 : 2, -1) < 0 && errno != EINTR)
			break;
		if (mnt_fd >= 0 && pf[2].revents)
			zfs_mount_changed(); /* may end the session loop */
		if (pf[1].revents) {
			uint64_t v;
			if (read(ev_fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
				break;
		}
		ssize_t len;
		while ((len = read(ino_fd, buf, sizeof(buf))) > 0) {
			for (char *p = buf; p < buf + len;) {
				struct inotify_event *e = (struct inotify_event *)p;
				on_dir_event(e);
				p += sizeof(*e) + e->len;
			}
		}
		run_jobs();
		if (__atomic_exchange_n(&trim_wanted, 0, __ATOMIC_ACQ_REL))
			malloc_trim(0); /* all arenas: the workers' too */
		if (__atomic_load_n(&ctl_stop, __ATOMIC_ACQUIRE))
			break;
	}
	run_jobs();
	return NULL;
}

int watcher_start(void)
{
	ino_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	ev_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (ino_fd < 0 || ev_fd < 0) {
		log_error("inotify/eventfd: %s", strerror(errno));
		return -1;
	}
	if (inotify_add_watch(ino_fd, zfs_cfg.shm_dir,
			      IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO |
			      IN_ATTRIB | IN_MODIFY | IN_CLOSE_WRITE | IN_DELETE_SELF |
			      IN_MOVE_SELF |
			      IN_ONLYDIR) < 0) {
		log_error("cannot watch %s: %s", zfs_cfg.shm_dir, strerror(errno));
		return -1;
	}
	mnt_fd = zfs_mount_watch_open();
	int rc = uring_start();
	const char *no = getenv("ZINCFS_NO_FUTEX_WAITV");
	if (rc && no && *no && strcmp(no, "0") != 0) {
		no_waitv = 1; /* test the old kernels' path on this one */
		log_warn("polling counters every 5 ms (ZINCFS_NO_FUTEX_WAITV; io_uring: %s)",
			 strerror(-rc));
	} else if (rc) {
		log_info("watching counters with futex_waitv threads (io_uring: %s)",
			 strerror(-rc));
	}
	if (zfs_thread_start(&ent_tid, entry_main, NULL)) {
		log_error("cannot start the entry thread");
		return -1;
	}
	ent_started = 1;
	if (zfs_thread_start(&ctl_tid, control_main, NULL)) {
		log_error("cannot start the control thread");
		return -1;
	}
	ctl_started = 1;
	return 0;
}

int zfs_thread_join(pthread_t tid, int seconds)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += seconds;
	return pthread_timedjoin_np(tid, NULL, &ts);
}

/* Stop all threads.  -1 if one is stuck (in the kernel, waiting for a
 * worker that no longer runs): the session must then not be destroyed. */
int watcher_stop(void)
{
	int stuck = 0;
	LOCK();
	stopping = 1;
	for (struct watch_group *g = groups; g; g = g->next)
		ctl_kick(g);
	UNLOCK();
	for (struct watch_group *g = groups; g; g = g->next)
		if (zfs_thread_join(g->tid, 2))
			stuck = 1;
	if (uring_stop())
		stuck = 1;
	if (ctl_started) {
		__atomic_store_n(&ctl_stop, 1, __ATOMIC_RELEASE);
		uint64_t one = 1;
		if (write(ev_fd, &one, sizeof(one)) < 0) {
			/* see job_push */
		}
		if (zfs_thread_join(ctl_tid, 2))
			stuck = 1;
	}
	if (ent_started) {
		pthread_mutex_lock(&ent_lock);
		ent_stop = 1;
		pthread_cond_signal(&ent_cond);
		pthread_mutex_unlock(&ent_lock);
		if (zfs_thread_join(ent_tid, 2))
			stuck = 1;
	}
	if (stuck) {
		log_warn("a watcher thread did not stop");
		return -1;
	}
	LOCK();
	for (struct watch_group *g = groups; g; g = g->next) {
		for (int i = 0; i < g->count; i++) {
			struct region *r = g->regions[i];
			r->group = NULL;
			GUARDED(zinc_watch(r->h, 0), (void)0);
		}
		g->count = 0;
	}
	UNLOCK();
	while (groups) {
		struct watch_group *g = groups;
		groups = g->next;
		free(g);
	}
	close(ino_fd);
	if (mnt_fd >= 0)
		close(mnt_fd);
	ino_fd = mnt_fd = -1;
	/* A late watcher_trim_heap() (locked: regions freed at exit) must not
	 * write to whatever file reuses the number. */
	LOCK();
	close(ev_fd);
	ev_fd = -1;
	UNLOCK();
	return 0;
}
