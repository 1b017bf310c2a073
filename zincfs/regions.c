/* SPDX-License-Identifier: MIT */
/*
 * The inode table: one entry per region the kernel knows about (looked up,
 * open, or created through the mount), found by name or by inode number.
 * Each entry holds a libzinc handle: an observer handle (never keeps the
 * region alive), or the owner handle for regions created through the mount.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "zincfs.h"

pthread_mutex_t zfs_lock = PTHREAD_MUTEX_INITIALIZER;

#define NBUCKETS 4096
static struct region *buckets[NBUCKETS];
static struct region **slots; /* slots[s] for s >= 1 */
static uint64_t nslots;       /* allocated length of slots */
static uint64_t *free_slots;
static uint64_t nfree, next_slot = 1;

static unsigned hash_name(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	for (; *s; s++)
		h = (h ^ (uint8_t)*s) * 0x100000001b3ULL;
	return (unsigned)(h % NBUCKETS);
}

/* "NAME", "NAME.notify" or "NAME.wait" -> kind, base name; -1 if invalid. */
int parse_name(const char *name, char base[ZINC_NAME_MAX + 1])
{
	static const struct { const char *suffix; int kind; } sfx[] = {
		{ ".notify", K_NOTIFY }, { ".wait", K_WAIT },
	};
	size_t len = strlen(name);
	int kind = K_DATA;
	for (size_t i = 0; i < sizeof(sfx) / sizeof(sfx[0]); i++) {
		size_t sl = strlen(sfx[i].suffix);
		if (len > sl && strcmp(name + len - sl, sfx[i].suffix) == 0) {
			len -= sl;
			kind = sfx[i].kind;
			break;
		}
	}
	if (len == 0 || len > ZINC_NAME_MAX)
		return -1;
	memcpy(base, name, len);
	base[len] = '\0';
	return zinc__valid_name(base) ? kind : -1;
}

static void object_path(const char *name, char *path, size_t size)
{
	snprintf(path, size, "%s/" ZINC_OBJECT_PREFIX "%s", zfs_cfg.shm_dir, name);
}

/* ---- malformed objects: log each one once ---- */

struct bad {
	char name[ZINC_NAME_MAX + 1];
	dev_t dev;
	ino_t ino;
	struct bad *next;
};
static struct bad *bads;
static unsigned nbads;
static pthread_mutex_t bad_lock = PTHREAD_MUTEX_INITIALIZER;

static void bad_report(const char *name, const struct stat *st, const char *why)
{
	pthread_mutex_lock(&bad_lock);
	for (struct bad *b = bads; b; b = b->next) {
		if (strcmp(b->name, name) == 0 && b->dev == st->st_dev &&
		    b->ino == st->st_ino) {
			pthread_mutex_unlock(&bad_lock);
			return;
		}
	}
	struct bad *b = calloc(1, sizeof(*b));
	if (b && nbads < 65536) {
		snprintf(b->name, sizeof(b->name), "%s", name);
		b->dev = st->st_dev;
		b->ino = st->st_ino;
		b->next = bads;
		bads = b;
		nbads++;
		b = NULL;
	}
	free(b);
	pthread_mutex_unlock(&bad_lock);
	log_warn("ignoring %s/" ZINC_OBJECT_PREFIX "%s: %s", zfs_cfg.shm_dir, name,
		 why);
}

void bad_forget(const char *name)
{
	pthread_mutex_lock(&bad_lock);
	for (struct bad **p = &bads; *p;) {
		if (strcmp((*p)->name, name) == 0) {
			struct bad *b = *p;
			*p = b->next;
			free(b);
			nbads--;
		} else {
			p = &(*p)->next;
		}
	}
	pthread_mutex_unlock(&bad_lock);
}

int object_check(const char *name, struct stat *st)
{
	char path[PATH_MAX];
	struct zinc_header h;
	const char *why = NULL;
	object_path(name, path, sizeof(path));
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		int e = errno;
		if ((e == ELOOP || e == ENXIO) && lstat(path, st) == 0) {
			bad_report(name, st, e == ELOOP ? "a symbolic link"
						       : "not a regular file");
			return -EBADMSG;
		}
		return -e;
	}
	int rc = 0, maybe_new = 0;
	if (fstat(fd, st) < 0) {
		rc = -errno;
		goto out;
	}
	size_t size = (size_t)st->st_size, page = zfs_cfg.page;
	if (!S_ISREG(st->st_mode)) {
		why = "not a regular file";
	} else if (size == 0) {
		why = "empty";
		maybe_new = 1;
	} else if (size < 2 * page || size % page) {
		why = "size is not a whole number of pages (at least two)";
	} else if (pread(fd, &h, sizeof(h), 0) != (ssize_t)sizeof(h)) {
		why = "header cannot be read";
	} else if (h.magic == 0) {
		why = "no region header";
		maybe_new = 1;
	} else if (h.magic != ZINC_MAGIC) {
		why = "wrong magic";
	} else if (h.version != ZINC_FORMAT_VERSION) {
		why = "unsupported format version";
	} else if (h.capacity != size - page) {
		why = "capacity does not match the object's size";
	}
	if (why) {
		/* A creator may be between its steps: give it a moment. */
		struct timespec now;
		clock_gettime(CLOCK_REALTIME, &now);
		if (maybe_new && now.tv_sec - st->st_ctim.tv_sec < 2) {
			rc = -EAGAIN;
		} else {
			bad_report(name, st, why);
			rc = -EBADMSG;
		}
	}
out:
	close(fd);
	return rc;
}

/* ---- the table ---- */

struct region *region_by_name_locked(const char *name)
{
	for (struct region *r = buckets[hash_name(name)]; r; r = r->hnext)
		if (strcmp(r->name, name) == 0)
			return r;
	return NULL;
}

static void hash_remove(struct region *r)
{
	for (struct region **p = &buckets[hash_name(r->name)]; *p; p = &(*p)->hnext) {
		if (*p == r) {
			*p = r->hnext;
			r->hnext = NULL;
			return;
		}
	}
}

/*
 * Live regions, and their most since the heap was last trimmed: freed
 * region state stays in the workers' malloc arenas (tens of MiB after
 * 10,000 regions came and went) unless we hand it back.
 */
static size_t nlive, trim_mark;
#define TRIM_AFTER 1024 /* ... regions freed, and half of them gone */

static struct region *region_new_locked(const char *name, zinc_region *h, int owned)
{
	struct region *r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	uint64_t slot;
	if (nfree) {
		slot = free_slots[--nfree];
	} else {
		if (next_slot >= nslots) {
			uint64_t n = nslots ? nslots * 2 : 1024;
			struct region **s = realloc(slots, n * sizeof(*s));
			uint64_t *f = realloc(free_slots, n * sizeof(*f));
			if (s)
				slots = s;
			if (f)
				free_slots = f;
			if (!s || !f) {
				free(r);
				return NULL;
			}
			nslots = n;
		}
		slot = next_slot++;
	}
	snprintf(r->name, sizeof(r->name), "%s", name);
	r->slot = slot;
	r->h = h;
	r->owned = owned;
	struct stat st;
	if (fstat(zinc_fd(h), &st) == 0) {
		r->dev = st.st_dev;
		r->ino = st.st_ino;
	}
	slots[slot] = r;
	events_adopt_locked(r); /* while a .events file is open */
	if (++nlive > trim_mark)
		trim_mark = nlive;
	unsigned b = hash_name(name);
	r->hnext = buckets[b];
	buckets[b] = r;
	return r;
}

static void close_handle(zinc_region *h)
{
	/* zinc_close touches the header page (the handle count, the waiter
	 * count, the removed flag), which faults if the object was truncated
	 * under us: PATCHED lets the close complete (the object is no region
	 * any more, so its header has nothing to keep).  A truncation seen
	 * beforehand is patched over at once, without a fault (which valgrind,
	 * for one, cannot resume from). */
	int faults;
	struct stat st;
	if (!h)
		return;
	if (fstat(zinc_fd(h), &st) == 0 && st.st_size < (off_t)zfs_cfg.page)
		zfs_guard_zero_page(zinc_futex_word(h));
	PATCHED(faults, zinc_close(h));
	(void)faults;
}

/* An observer handle of region NAME, header page only (an object's size
 * costs no address space): 0, -ENOENT (none, or no region: logged
 * once), -EACCES, -EMFILE, -ENFILE, -ENOMEM... */
static int open_handle(const char *name, zinc_region **out)
{
	zinc_region *h = NULL;
	int rc, faults;
	PATCHED(faults, rc = zinc_open_ex(name, ZINC_OPEN_OBSERVE | ZINC_OPEN_HEADER, &h));
	if ((rc == -EMFILE || rc == -ENFILE) && regions_drop_idle() > 0)
		PATCHED(faults, rc = zinc_open_ex(name, ZINC_OPEN_OBSERVE | ZINC_OPEN_HEADER, &h));
	if (rc == 0 && faults) { /* truncated while we opened it */
		close_handle(h);
		rc = -EBADMSG;
	}
	if (rc == -EBADMSG) {
		struct stat st;
		object_check(name, &st); /* logs why, once */
		return -ENOENT;
	}
	if (rc == 0)
		*out = h;
	return rc == -EPERM ? -EACCES : rc;
}

/*
 * Idle handles: a region the kernel has looked up but nobody uses (no open
 * file, no watch, no request in flight, not ours) keeps its handle only
 * while it is among the IDLE_HANDLES most recently used ones, then gets it
 * back when used again (region_attach).  A user can make us look up any
 * number of regions (`ls -l`), and every handle is a file descriptor.
 */
#define IDLE_HANDLES 256
static struct region *idle_head, *idle_tail;
static size_t nidle;

static void idle_del_locked(struct region *r)
{
	if (!r->idle)
		return;
	*(r->iprev ? &r->iprev->inext : &idle_head) = r->inext;
	*(r->inext ? &r->inext->iprev : &idle_tail) = r->iprev;
	r->iprev = r->inext = NULL;
	r->idle = 0;
	nidle--;
}

static int in_use(const struct region *r)
{
	return r->refs || r->open || r->group || r->arm || r->ev_watch ||
	       (r->owned && !r->gone);
}

size_t regions_drop_idle(void)
{
	size_t n = 0;
	LOCK();
	while (idle_head) {
		struct region *r = idle_head;
		idle_del_locked(r);
		if (!in_use(r)) {
			close_handle(r->h);
			r->h = NULL;
			n++;
		}
	}
	UNLOCK();
	return n;
}

static void idle_add_locked(struct region *r)
{
	idle_del_locked(r);
	r->iprev = idle_tail;
	*(idle_tail ? &idle_tail->inext : &idle_head) = r;
	idle_tail = r;
	r->idle = 1;
	nidle++;
	while (nidle > IDLE_HANDLES) {
		struct region *old = idle_head;
		idle_del_locked(old);
		if (!in_use(old)) {
			close_handle(old->h);
			old->h = NULL;
		}
	}
}

static void maybe_free_locked(struct region *r)
{
	if (in_use(r))
		return;
	/* A .events reader that knows r keeps its name and slot until it has
	 * read that r is gone. */
	if (r->nlookup[0] || r->nlookup[1] || r->nlookup[2] || r->ev_known) {
		if (r->gone) { /* its handle has nothing more to serve */
			idle_del_locked(r);
			close_handle(r->h);
			r->h = NULL;
		} else if (r->h) {
			idle_add_locked(r);
		}
		return;
	}
	idle_del_locked(r);
	if (!r->gone)
		hash_remove(r);
	slots[r->slot] = NULL;
	free_slots[nfree++] = r->slot;
	close_handle(r->h);
	free(r);
	if (--nlive <= trim_mark / 2 && trim_mark - nlive >= TRIM_AFTER) {
		trim_mark = nlive;
		watcher_trim_heap(); /* on the control thread, not under our lock */
	}
}

int region_check_locked(struct region *r)
{
	char path[PATH_MAX];
	struct stat a, b;
	if (r->gone)
		return -ENOENT;
	object_path(r->name, path, sizeof(path));
	if (stat(path, &a) < 0 || a.st_dev != r->dev || a.st_ino != r->ino) {
		region_gone_locked(r, "removed");
		return -ENOENT;
	}
	if (!r->h)
		return 0; /* idle: region_attach checks the rest */
	if (fstat(zinc_fd(r->h), &b) < 0 ||
	    (uint64_t)b.st_size != zinc_capacity(r->h) + zfs_cfg.page) {
		bad_report(r->name, &b, "size changed under an open region");
		region_gone_locked(r, "truncated");
		return -ENOENT;
	}
	volatile int removed = 0;
	GUARDED(removed = zinc_removed(r->h) == 1, removed = 1);
	if (removed) {
		region_gone_locked(r, "removed");
		return -ENOENT;
	}
	return 0;
}

void region_gone_locked(struct region *r, const char *why)
{
	if (r->gone)
		return;
	log_info("region %s %s", r->name, why);
	r->gone = 1;
	hash_remove(r);
	/* .events readers may read its removal at once: hold r meanwhile
	 * (the last of them would free it). */
	r->refs++;
	events_gone_locked(r);
	r->refs--;
	watch_update_locked(r);
	/* The entry thread drops the kernel's entries, then fails the waiters
	 * with EIDRM: a reader that saw EIDRM finds the names gone. */
	if (job_delete_entries_locked(r) != 0)
		waiters_fail_locked(r, EIDRM);
	maybe_free_locked(r);
}

static int same_object(const struct region *r, zinc_region *h)
{
	struct stat st;
	return fstat(zinc_fd(h), &st) == 0 && st.st_dev == r->dev && st.st_ino == r->ino;
}

/* Give r (a ref held) its handle back if it was closed while idle: the
 * object under its name must still be the same one. */
static int region_attach(struct region *r)
{
	LOCK();
	int have = r->h != NULL, gone = r->gone;
	UNLOCK();
	if (have)
		return 0;
	if (gone)
		return -ENOENT;
	zinc_region *h = NULL;
	int rc = open_handle(r->name, &h);
	LOCK();
	if (rc == 0 && !same_object(r, h))
		rc = -ENOENT; /* a new region under the old name */
	if (rc == -ENOENT)
		region_gone_locked(r, "replaced or removed");
	if (rc == 0 && !r->h) {
		r->h = h; /* else another request was faster */
		h = NULL;
	}
	UNLOCK();
	close_handle(h);
	return rc;
}

int region_lookup(const char *name, struct region **out)
{
	struct region *r;
	LOCK();
	r = region_by_name_locked(name);
	if (r && region_check_locked(r) == 0) {
		r->refs++;
		idle_del_locked(r);
		UNLOCK();
		int rc = region_attach(r);
		if (rc == 0) {
			*out = r;
			return 0;
		}
		region_put(r);
		if (rc != -ENOENT)
			return rc;
		/* r is gone: the name may hold a new region */
	} else {
		UNLOCK();
	}

	zinc_region *h = NULL;
	int rc = open_handle(name, &h);
	if (rc)
		return rc;

	LOCK();
	r = region_by_name_locked(name);
	if (r && region_check_locked(r) == 0 && (r->h || same_object(r, h))) {
		if (!r->h) { /* r's idle handle was closed meanwhile */
			r->h = h;
			h = NULL;
		}
		close_handle(h); /* somebody was faster */
	} else {
		if (r && !r->gone)
			region_gone_locked(r, "replaced");
		r = region_new_locked(name, h, 0);
		if (!r) {
			UNLOCK();
			close_handle(h);
			return -ENOMEM;
		}
		log_info("region %s: opened", name);
	}
	r->refs++;
	idle_del_locked(r);
	UNLOCK();
	*out = r;
	return 0;
}

int region_create(fuse_req_t req, const char *name, mode_t mode, struct region **out)
{
	zinc_region *h;
	struct cred_saved cs;
	if (!zinc__valid_name(name))
		return -EINVAL;
	/* As the caller: the object (made unnamed, then linked) is theirs, and
	 * only what they may remove themselves is replaced (a stale region,
	 * under /dev/shm's sticky bit). */
	int rc = cred_enter(req, &cs);
	if (!rc)
		rc = zinc_create(name, zfs_cfg.region_size, &h);
	if ((rc == -EMFILE || rc == -ENFILE) && regions_drop_idle() > 0)
		rc = zinc_create(name, zfs_cfg.region_size, &h);
	/* The mode it asked for (umask already applied by the kernel);
	 * libzinc makes 0600. */
	if (!rc && fchmod(zinc_fd(h), mode & 07777) < 0)
		log_warn("region %s: cannot set its mode: %s", name, strerror(errno));
	cred_leave(&cs);
	if (rc)
		return rc;
	LOCK();
	struct region *old = region_by_name_locked(name);
	if (old)
		region_gone_locked(old, "replaced");
	struct region *r = region_new_locked(name, h, 1);
	if (!r) {
		UNLOCK();
		zinc_close(h);
		return -ENOMEM;
	}
	r->refs++;
	UNLOCK();
	log_info("region %s: created, %llu bytes", name,
		 (unsigned long long)zfs_cfg.region_size);
	*out = r;
	return 0;
}

/* Broadcast when an open file or an in-flight request lets go of a
 * region: a resize waits for that (region_resize_locked). */
static pthread_cond_t released = PTHREAD_COND_INITIALIZER;

struct region *region_get(fuse_ino_t ino)
{
	uint64_t s = INO_SLOT(ino);
	struct region *r = NULL;
	LOCK();
	if (s >= 1 && s < next_slot && INO_KIND(ino) <= K_WAIT && slots[s]) {
		r = slots[s];
		r->refs++;
		idle_del_locked(r);
	}
	UNLOCK();
	int rc = r ? region_attach(r) : -ENOENT;
	if (rc) {
		if (r)
			region_put(r);
		errno = -rc;
		return NULL;
	}
	return r;
}

void region_put_locked(struct region *r)
{
	if (--r->refs == 1)
		pthread_cond_broadcast(&released);
	maybe_free_locked(r);
}

void region_put(struct region *r)
{
	LOCK();
	region_put_locked(r);
	UNLOCK();
}

void region_forget(fuse_ino_t ino, uint64_t n)
{
	uint64_t s = INO_SLOT(ino);
	int kind = INO_KIND(ino);
	LOCK();
	if (s >= 1 && s < next_slot && kind <= K_WAIT && slots[s]) {
		struct region *r = slots[s];
		r->nlookup[kind] -= n < r->nlookup[kind] ? n : r->nlookup[kind];
		maybe_free_locked(r);
	}
	UNLOCK();
}

void region_opened_locked(struct region *r, int kind)
{
	r->open++;
	if (kind == K_DATA)
		r->data_open++;
	else if (kind == K_WAIT)
		r->wait_open++;
	watch_update_locked(r);
}

void region_closed_locked(struct region *r, int kind)
{
	pthread_cond_broadcast(&released);
	r->open--;
	if (kind == K_DATA)
		r->data_open--;
	else if (kind == K_WAIT)
		r->wait_open--;
	watch_update_locked(r);
	maybe_free_locked(r);
}

uint32_t region_seq(struct region *r, int *bad)
{
	volatile uint32_t seq = 0;
	volatile int fault = 0;
	GUARDED(seq = zinc_seq(r->h), fault = 1);
	if (bad)
		*bad = fault;
	return seq;
}

/* Counter value and state: 0 fine, 1 removed, -1 unreadable (SIGBUS). */
int region_probe(struct region *r, uint32_t *seq)
{
	volatile int state = 0;
	volatile uint32_t v = 0;
	GUARDED(v = zinc_seq(r->h); state = zinc_removed(r->h) == 1, state = -1);
	*seq = v;
	return state;
}

int region_stat(struct region *r, int kind, struct stat *st)
{
	if (fstat(zinc_fd(r->h), st) < 0)
		return -errno;
	mode_t perm = st->st_mode & 07777;
	st->st_ino = INO(r->slot, kind);
	st->st_nlink = 1;
	st->st_blksize = (blksize_t)zfs_cfg.page;
	if (kind == K_DATA) {
		st->st_mode = S_IFREG | perm;
		st->st_size = (off_t)zinc_capacity(r->h);
	} else {
		st->st_mode = S_IFREG | (perm & (kind == K_WAIT ? 0444 : 0222));
		st->st_size = 0;
		st->st_blocks = 0;
	}
	return 0;
}

struct region *region_at_slot_locked(uint64_t s)
{
	return s >= 1 && s < next_slot ? slots[s] : NULL;
}

uint64_t regions_slot_end_locked(void)
{
	return next_slot;
}

void region_maybe_free_locked(struct region *r)
{
	maybe_free_locked(r);
}

/* Inode base for a name in a directory listing (no entry is made). */
void region_slot_ino(const char *name, fuse_ino_t *base)
{
	struct region *r = region_by_name_locked(name);
	if (r) {
		*base = INO(r->slot, 0);
	} else {
		/* Not known to the kernel yet: a stable made-up number from a
		 * range slots never reach. */
		uint64_t h = 0xcbf29ce484222325ULL;
		for (const char *s = name; *s; s++)
			h = (h ^ (uint8_t)*s) * 0x100000001b3ULL;
		*base = INO((h | (1ULL << 60)) & ((1ULL << 61) - 1), 0);
	}
}

/*
 * Give an owned region a new capacity: only right after creation, while
 * zincfs is its only holder.  zinc_recreate builds the new region unnamed
 * (data up to min(old, new), the counter, owner and mode carried over) and
 * renames it over the name: on any failure nothing changed.  Runs as the
 * caller (ops.c), so the kernel decides whether they may replace the
 * object.  The entry (and so the inode) stays.
 */
#define RELEASE_WAIT_MS 100

int region_resize_locked(struct region *r, uint64_t size, int self_opens)
{
	struct zinc_info info;
	if (size == 0 || size % zfs_cfg.page ||
	    size > (uint64_t)INT64_MAX - zfs_cfg.page)
		return -EINVAL;
	/* close(2) returns before its RELEASE reaches us, so a file closed
	 * just before this truncate may still count as open, or its release
	 * be in flight: give other workers a moment to finish those before
	 * calling the region busy. */
	struct timespec until;
	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_nsec += RELEASE_WAIT_MS * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	while ((r->open > self_opens || r->refs > 1) &&
	       pthread_cond_clockwait(&released, &zfs_lock, CLOCK_MONOTONIC, &until) == 0)
		;
	if (!r->owned || r->gone)
		return -EPERM;
	volatile int rc;
	GUARDED(rc = zinc_handle_stat(r->h, &info), rc = -EIO);
	if (rc)
		return rc;
	/* Another libzinc handle anywhere: info.others, a probe of the
	 * handles' kernel locks (our own handle's lock does not count), exact
	 * even after a holder died.  Not info.ref_count: it is advisory, and a
	 * SIGKILLed holder leaves it high for ever.  Then other open files in
	 * the mount (the one being truncated does not count) and in-flight
	 * users of r (ours is the caller's). */
	if (info.others || r->open > self_opens || r->refs > 1)
		return -EBUSY;
	zinc_region *nh;
	GUARDED(rc = zinc_recreate(r->h, size, &nh), rc = -EIO);
	if (rc)
		return rc;
	/* The watcher must stop using the old counter before it goes. */
	watch_del_locked(r);
	close_handle(r->h); /* marked removed: its close leaves the name alone */
	r->h = nh;
	struct stat st;
	if (fstat(zinc_fd(nh), &st) == 0) {
		r->dev = st.st_dev;
		r->ino = st.st_ino;
	}
	watch_update_locked(r);
	log_info("region %s: resized to %llu bytes", r->name, (unsigned long long)size);
	return 0;
}

/* After an inotify overflow: re-check every named region. */
void regions_check_all(void)
{
	LOCK();
	for (uint64_t s = 1; s < next_slot; s++)
		if (slots[s] && !slots[s]->gone)
			region_check_locked(slots[s]);
	UNLOCK();
}

/* At exit: drop every handle (owned regions follow libzinc's rules). */
void regions_close_all(void)
{
	LOCK();
	for (uint64_t s = 1; s < next_slot; s++) {
		struct region *r = slots[s];
		if (!r)
			continue;
		waiters_free_locked(r);
		close_handle(r->h);
		free(r);
		slots[s] = NULL;
	}
	free(slots);
	free(free_slots);
	slots = NULL;
	free_slots = NULL;
	nslots = nfree = nidle = 0;
	idle_head = idle_tail = NULL;
	next_slot = 1;
	memset(buckets, 0, sizeof(buckets));
	UNLOCK();
	pthread_mutex_lock(&bad_lock);
	while (bads) {
		struct bad *b = bads;
		bads = b->next;
		free(b);
	}
	pthread_mutex_unlock(&bad_lock);
}
