/* SPDX-License-Identifier: MIT */
/* zincfs: shared declarations of the daemon's parts. */
#ifndef ZINCFS_H
#define ZINCFS_H

#define FUSE_USE_VERSION FUSE_MAKE_VERSION(3, 14)
#include <fuse_lowlevel.h>

#include <pthread.h>
#include <setjmp.h>
#include <stdint.h>
#include <sys/stat.h>

#include "zinc.h"
#include "../libzinc/name.h" /* the name rule, shared with libzinc */

/* ---- main.c: configuration, logging ---- */

struct zfs_config {
	char *shm_dir;          /* absolute path of the region directory */
	uint64_t region_size;   /* capacity of regions created via the mount */
	int debug;
	size_t page;
	const char *mountpoint; /* absolute, once mounted */
	size_t user_files;      /* open files one user may hold (cred_files_take) */
	unsigned max_read;      /* bytes per FUSE READ of a data file */
	long read_ahead_kb;     /* the mount's readahead to set (KiB) */
	int read_ahead_given;   /* -o read_ahead_kb given: failing to set it is a warning */
};
extern struct zfs_config zfs_cfg;
extern struct fuse_session *zfs_se;

enum { LOG_ERR_ = 0, LOG_WARN_ = 1, LOG_INFO_ = 2 };
/* Watching our mount (main.c): an fd of /proc/self/mountinfo to poll for
 * POLLPRI, or -1; zfs_mount_changed() when it fires. */
int zfs_mount_watch_open(void);
void zfs_mount_changed(void);
/* Set the mount's readahead (-o read_ahead_kb) once, after the kernel took
 * our INIT reply (which would lower it again): at the first open. */
void zfs_read_ahead_once(void);

void zfs_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define log_error(...) zfs_log(LOG_ERR_, __VA_ARGS__)
#define log_warn(...) zfs_log(LOG_WARN_, __VA_ARGS__)
#define log_info(...) zfs_log(LOG_INFO_, __VA_ARGS__)

/* ---- guard.c: survive SIGBUS from a region truncated under us ---- */

extern __thread sigjmp_buf *zfs_bus_jmp;
extern __thread int zfs_bus_ready;
void zfs_guard_init(void);
void zfs_guard_thread(void);
/* Map private zeros over the page holding addr: 0 or -1. */
int zfs_guard_zero_page(const void *addr);
/* Run `body`; if it faults with SIGBUS, run `onfault` instead of dying.
 * Variables the body changes and `onfault` reads must be volatile. */
#define GUARDED(body, onfault)                                          \
	do {                                                            \
		sigjmp_buf jb_;                                         \
		sigjmp_buf *prev_ = zfs_bus_jmp;                        \
		if (!zfs_bus_ready)                                     \
			zfs_guard_thread();                             \
		if (sigsetjmp(jb_, 0) == 0) {                           \
			zfs_bus_jmp = &jb_;                             \
			body;                                           \
			zfs_bus_jmp = prev_;                            \
		} else {                                                \
			zfs_bus_jmp = prev_;                            \
			onfault;                                        \
		}                                                       \
	} while (0)

/* Run `body` (libzinc's open or close of a handle); if it faults with
 * SIGBUS, private zero memory replaces the faulting page and the body goes
 * on: libzinc then sees no region there and fails or finishes, freeing what
 * it holds (GUARDED would abandon it halfway and leak its fd and mapping).
 * `faults` gets the number of faults: the handle's header is then junk. */
extern __thread int zfs_bus_patch, zfs_bus_faults;
#define PATCHED(faults, body)                                           \
	do {                                                            \
		if (!zfs_bus_ready)                                     \
			zfs_guard_thread();                             \
		zfs_bus_faults = 0;                                     \
		zfs_bus_patch = 1;                                      \
		body;                                                   \
		zfs_bus_patch = 0;                                      \
		faults = zfs_bus_faults;                                \
	} while (0)

/* ---- guardian.c: abort our connection if zincfs is killed ---- */

/* Fork the guardian (before any other thread exists) for FUSE connection
 * conn (the mount's dev_t, major << 20 | minor).  daemon: log to syslog. */
void zfs_guardian_start(unsigned conn, int daemon, char **argv);
/* Clean exit: tell the guardian to leave without aborting; reap it. */
void zfs_guardian_stop(void);
/* Write 1 to /sys/fs/fuse/connections/conn/abort, first mounting the FUSE
 * control file system there if it is not: 0 or -errno. */
int zfs_conn_abort(unsigned conn);

/* ---- regions.c: inode table ---- */

/* Inode numbers: root is 1; region slot s (>= 1) has (s << 2) | kind. */
enum kind { K_DATA = 0, K_NOTIFY = 1, K_WAIT = 2 };
/* The mount's event stream (events.c): kind 3 of slot 0, which no region
 * has (slots start at 1). */
#define EVENTS_INO 3
#define EVENTS_NAME ".events"
#define ROOT_INO 1
#define INO(slot, kind) (((fuse_ino_t)(slot) << 2) | (kind))
#define INO_SLOT(ino) ((ino) >> 2)
#define INO_KIND(ino) ((int)((ino) & 3))

struct wfile;
struct pending;

struct region {
	char name[ZINC_NAME_MAX + 1];
	uint64_t slot;
	zinc_region *h;         /* observer handle, or owner handle if owned */
	int owned;              /* created through the mount */
	int gone;               /* name removed/replaced/broken: not listed */
	dev_t dev;              /* identity of the shm object */
	ino_t ino;
	uint64_t nlookup[3];    /* kernel references per kind */
	int open;               /* open files of any kind */
	int data_open;          /* open files of the data inode */
	int wait_open;          /* open .wait files */
	int refs;               /* in-flight users (ops, jobs, watcher) */
	/* watching (watcher.c) */
	struct watch_group *group;
	struct uring_arm *arm;  /* or its wait in the io_uring (uring.c) */
	int gidx;               /* index in group->regions */
	uint32_t last_seq;      /* counter value the watcher saw last */
	uint32_t done_seq;      /* counter value published to readers */
	/* Counter values are ordered by when we saw them, not by size (the
	 * counter may move by any amount): each new value seen gets the
	 * next number. */
	uint64_t seen_gen;      /* number of last_seq */
	uint64_t done_gen;      /* number of done_seq */
	/* .events (events.c) */
	int ev_watch;           /* watched for .events readers: live */
	int ev_known;           /* .events opens that know it exists */
	/* waiters (waiters.c) */
	struct wfile *wfiles;   /* open .wait files */
	struct pending *pending; /* deferred reads */
	struct region *hnext;   /* name hash chain */
	/* regions.c: idle handles (nobody uses r, it keeps h), oldest first */
	struct region *iprev, *inext;
	int idle;
};

/* The one lock for all of the above. Never held while calling into the
 * kernel through fuse_lowlevel_notify_*(). */
extern pthread_mutex_t zfs_lock;
#define LOCK() pthread_mutex_lock(&zfs_lock)
#define UNLOCK() pthread_mutex_unlock(&zfs_lock)

int parse_name(const char *name, char base[ZINC_NAME_MAX + 1]); /* kind or -1 */
/* Find or open region NAME; takes a ref (region_put).  0 or -errno. */
int region_lookup(const char *name, struct region **out);
/* Create region NAME as the caller of req (cred.c). */
int region_create(fuse_req_t req, const char *name, mode_t mode, struct region **out);
/* Region of an inode with a ref taken and its handle open, or NULL with
 * errno set (ENOENT: gone; EMFILE, ENFILE, ENOMEM: no handle now). */
struct region *region_get(fuse_ino_t ino);
void region_put(struct region *r);
void region_put_locked(struct region *r);
void region_forget(fuse_ino_t ino, uint64_t n);
/* Count an open/closed file of kind (locked); starts/stops watching. */
void region_opened_locked(struct region *r, int kind);
void region_closed_locked(struct region *r, int kind);
/* Mark r's name removed (locked): answers its waiters with EIDRM. */
void region_gone_locked(struct region *r, const char *why);
/* Re-check that the name still refers to r's object (locked). */
int region_check_locked(struct region *r);
struct region *region_by_name_locked(const char *name);
int region_stat(struct region *r, int kind, struct stat *st);
int region_resize_locked(struct region *r, uint64_t size, int self_opens);
void regions_check_all(void);
/* Out of file descriptors: close the handles of regions nobody uses now
 * (see regions.c); how many were closed. */
size_t regions_drop_idle(void);
void regions_close_all(void);
/* Validate an object in the region directory without mapping it.
 * 0 valid, -EBADMSG malformed (logged once), -EAGAIN maybe half-made,
 * -ENOENT or -errno. */
int object_check(const char *name, struct stat *st);
void bad_forget(const char *name);
uint32_t region_seq(struct region *r, int *bad);
int region_probe(struct region *r, uint32_t *seq);
void region_slot_ino(const char *name, fuse_ino_t *base);
/* The region in slot s (locked), or NULL; slots run below regions_slot_end. */
struct region *region_at_slot_locked(uint64_t s);
uint64_t regions_slot_end_locked(void);
/* Free r if nothing holds it any more (locked). */
void region_maybe_free_locked(struct region *r);

/* ---- waiters.c: .wait files ---- */

struct wfile {
	struct region *r;
	uid_t uid;              /* the opener's (cred_files_take) */
	uint32_t cursor;
	uint64_t gen;           /* r->seen_gen when the cursor was set */
	char text[16];          /* the last answer, for readers of few bytes */
	uint8_t text_off, text_len;
	struct fuse_pollhandle *ph;
	struct wfile *prev, *next;
};
struct wfile *wfile_open(struct region *r);
void wfile_release(struct wfile *wf);
void wait_read(fuse_req_t req, struct wfile *wf, size_t size, int nonblock);
void wait_poll(fuse_req_t req, struct wfile *wf, struct fuse_pollhandle *ph);
/* A reply held back until the lock is dropped. */
struct replies {
	struct pending *last;
};
/* Answer r's readers that are behind r->done_seq and wake its pollers
 * (locked); the last reply is kept in out: replies_send(out) sends it after
 * UNLOCK() (see waiters.c).  Nothing else may answer a request once taken. */
void waiters_publish_locked(struct region *r, struct replies *out);
void replies_send(struct replies *out);
/* Fail r's readers with err and wake its pollers. */
void waiters_fail_locked(struct region *r, int err);
void waiters_fail_all_locked(int err);
void waiters_free_locked(struct region *r);

/* ---- events.c: the .events file ---- */

struct efile;
/* Open/release a .events file: watching every region starts with the
 * first open and stops after the last release.  NULL with errno.  Its
 * lines tell only of regions the caller of req may read. */
struct efile *events_open(fuse_req_t req);
uid_t events_release(struct efile *ef);
void events_read(fuse_req_t req, struct efile *ef, size_t size, int nonblock);
void events_poll(fuse_req_t req, struct efile *ef, struct fuse_pollhandle *ph);
/* Is a .events file open (locked)?  Then every region in the table is
 * watched: events_adopt_locked() for each new one. */
int events_active_locked(void);
void events_adopt_locked(struct region *r);
/* A region name appeared in the directory: look it up (not locked). */
void events_name_appeared(const char *name);
/* After an inotify overflow: adopt every region in the directory. */
void events_rescan(void);
/* r's counter value published (locked), r removed (locked).  A reply
 * events_moved_locked() holds back goes out with events_send_later(),
 * called by replies_send() after the lock is dropped. */
void events_moved_locked(struct region *r);
void events_send_later(void);
void events_gone_locked(struct region *r);
/* At exit: answer blocked readers with err (locked); free every open. */
void events_fail_all_locked(int err);
void events_free_all(void);

/* ---- watcher.c: counter watching, inotify, jobs ---- */

/* A counter change that needs the data file's cache invalidated before
 * readers see it (watcher.c, uring.c). */
struct watch_event {
	struct region *r;
	uint32_t seq;
	uint64_t gen;
};
/* Look at r's counter (locked): publish a change, or queue it in ev (a ref
 * taken) when the data file's cache must be invalidated first (then 1).
 * -1: unreadable (region_check_locked it after the loop). */
int watch_look_locked(struct region *r, struct watch_event *ev, struct replies *out);
/* Invalidate, publish and put a queued event (not locked). */
void watch_event_finish(struct watch_event *ev);

int watcher_start(void);
/* A thread that takes no process signals (libfuse's handler must run on the
 * main thread); joining one that may be stuck in the kernel. */
int zfs_thread_start(pthread_t *tid, void *(*fn)(void *), void *arg);
int zfs_thread_join(pthread_t tid, int seconds); /* 0 or ETIMEDOUT */
int watcher_stop(void);
/* Watch r's counter while it is not gone and has an open data or .wait
 * file (someone to invalidate for or to answer). */
void watch_update_locked(struct region *r);
void watch_del_locked(struct region *r);
/* A write to NAME.notify (reply: size bytes written) or, with close, the
 * release of a .notify open that never wrote (reply: 0): invalidate the data
 * file's cache if it may hold anything (on the control thread then),
 * zinc_notify, let .wait readers see it, then reply.  Takes over the
 * caller's ref on r and drops it before replying. */
void notify_request(fuse_req_t req, struct region *r, size_t size, int close);
/* For a removed region (locked): drop the kernel's entries, then fail its
 * waiters with EIDRM (takes a ref on r meanwhile).  -1 if it cannot be
 * queued: the caller fails the waiters itself. */
int job_delete_entries_locked(struct region *r);
/* Many regions were freed: give the heap's free memory back to the system
 * (malloc_trim, on the control thread). */
void watcher_trim_heap(void);

/* ---- uring.c: one thread waits on every counter through io_uring ---- */

/* Start the io_uring watcher: 0, or -errno (no io_uring, no futex ops,
 * ZINCFS_NO_IO_URING=1): the watch groups of watcher.c are used then. */
int uring_start(void);
int uring_stop(void);      /* -1 if the thread did not stop */
int uring_active(void);
void uring_watch_locked(struct region *r);
void uring_unwatch_locked(struct region *r);

/* ---- cred.c: acting as the caller of a request ---- */

struct cred_saved {
	uid_t fsuid;
	gid_t fsgid;
	int active;
};
/* Take the caller's fsuid, fsgid and groups on this thread: 0, or -EPERM
 * (logged) with the daemon's identity unchanged.  cred_leave() before
 * replying (it does nothing after a failed cred_enter). */
int cred_enter(fuse_req_t req, struct cred_saved *s);
void cred_leave(struct cred_saved *s);
/* The same for a caller known by its ids (one that opened a file earlier). */
int cred_enter_ids(uid_t uid, gid_t gid, int ngroups, const gid_t *groups,
		   struct cred_saved *s);
/* Could the current fs identity open the object open as fd (dev/ino) with
 * access mode acc?  0 or -errno (-EACCES). */
int cred_may_open(int fd, int acc, dev_t dev, ino_t ino);
/* Count an open file of uid's: 0, or -EMFILE when uid (neither root nor
 * the daemon's user) already holds zfs_cfg.user_files, -ENOMEM.  Each open
 * region costs us a file descriptor: no user may take them all.
 * cred_files_give() when the file is released. */
int cred_files_take(uid_t uid);
void cred_files_give(uid_t uid);

/* ---- ops.c ---- */
extern const struct fuse_lowlevel_ops zfs_ops;
/* At exit: free per-open state whose RELEASE never came. */
void ops_free_open_files(void);

#endif
