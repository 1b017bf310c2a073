/* SPDX-License-Identifier: MIT */
/*
 * .events: one event stream for the whole mount (zincfs(8), THE EVENTS
 * FILE).  Each open file has its own cursor over every region:
 *
 *   NAME SEQ\n    NAME's counter moved since this file's last read (SEQ:
 *                 its value now; any number of moves give one line)
 *   +NAME SEQ\n   NAME appeared
 *   -NAME\n       NAME went away (one field: a region named "-x" that
 *                 moved gives "-x SEQ")
 *
 * A file tells only of regions its opener may read (their mode, as the
 * mount's default_permissions checks it), looked at when a region first
 * appears to it.
 *
 * While one .events file is open every region of the directory is watched
 * (r->ev_watch, its slot set in `live`).  An open file keeps two bitmaps
 * indexed by region slot: `known` (regions it has been told exist: those
 * there at open, then the + lines it read) and `dirty` (moved since its
 * last read).  Its backlog is these bits and nothing else: it never grows
 * with the number of notifications.  A region it knows keeps its slot and
 * name (r->ev_known, the handle is closed once it is gone) until the file
 * has read its - line, so a slot is never reused under a reader.
 *
 * A read that finds nothing is a deferred reply, as for .wait (waiters.c):
 * answered when a line is due, EINTR on interrupt, ENOTCONN at exit.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "zincfs.h"

struct epending {
	fuse_req_t req;
	size_t size;
	struct epending *next;
};

#define NGROUPS 64

struct efile {
	uid_t uid;              /* the opener's: counted (cred_files_take) and */
	gid_t gid, groups[NGROUPS]; /* shown only regions it may read */
	int ngroups;
	size_t words;           /* of each bitmap, >= nwords */
	/* known, dirty; checked: a region not known yet was looked at (by
	 * slot, until a new region takes the slot), hidden: and the opener
	 * may not read it, so it never hears of it (as for NAME.wait). */
	uint64_t *known, *dirty, *checked, *hidden;
	char line[ZINC_NAME_MAX + 16]; /* the rest of a line a short read cut */
	size_t line_off, line_len;
	struct fuse_pollhandle *ph;
	struct epending *pending; /* deferred reads, oldest first */
	struct efile *prev, *next;
};

static struct efile *efiles;
static int nopen;             /* open .events files, counted before the scan */
static int scanned;           /* the directory was scanned since nopen left 0 */
static uint64_t *live;        /* slots of watched regions */
static size_t nwords;
static size_t nwatched;       /* regions with ev_watch */
/* One scan at a time; an open returns only after the scan it needs. */
static pthread_mutex_t scan_lock = PTHREAD_MUTEX_INITIALIZER;

#define BIT(s) (1ULL << ((s) % 64))

int events_active_locked(void)
{
	return nopen > 0;
}

static void bitmaps_set(struct efile *ef, uint64_t *block, size_t n)
{
	ef->known = block;
	ef->dirty = block + n;
	ef->checked = block + 2 * n;
	ef->hidden = block + 3 * n;
	ef->words = n;
}

/* May ef's opener read r (r->h open)?  As for an open of NAME through the
 * mount: the kernel's default_permissions check of the mode bits, then
 * zincfs's check of the object as the caller (caller_may_open: ACLs too),
 * here with the opener's identity taken for a whole batch by as_opener(). */
static int may_read(const struct efile *ef, struct region *r)
{
	struct stat st;
	if (ef->uid == 0)
		return 1;
	if (fstat(zinc_fd(r->h), &st) < 0)
		return 0;
	int bits;
	if (st.st_uid == ef->uid) {
		bits = 0400;
	} else {
		int member = st.st_gid == ef->gid;
		for (int i = 0; i < ef->ngroups && !member; i++)
			member = st.st_gid == ef->groups[i];
		bits = member ? 0040 : 0004;
	}
	return (st.st_mode & bits) &&
	       faccessat(zinc_fd(r->h), "", R_OK, AT_EACCESS | AT_EMPTY_PATH) == 0;
}

/* Take ef's opener's identity for may_read(): 0, or -EPERM (then nothing
 * is readable to it).  cred_leave() after. */
static int as_opener(const struct efile *ef, struct cred_saved *cs)
{
	if (ef->uid == 0) {
		cs->active = 0; /* root reads everything: nothing to change */
		return 0;
	}
	return cred_enter_ids(ef->uid, ef->gid, ef->ngroups, ef->groups, cs);
}

/* Look at the regions ef has not been told about yet (locked). */
static void check_new(struct efile *ef)
{
	struct cred_saved cs = { 0 };
	int entered = 0, denied = 0;
	for (size_t w = 0; w < nwords; w++) {
		uint64_t bits = live[w] & ~ef->known[w] & ~ef->checked[w];
		for (; bits; bits &= bits - 1) {
			uint64_t s = w * 64 + (uint64_t)__builtin_ctzll(bits);
			if (!entered++)
				denied = as_opener(ef, &cs) != 0;
			ef->checked[w] |= BIT(s);
			if (denied || !may_read(ef, region_at_slot_locked(s)))
				ef->hidden[w] |= BIT(s);
		}
	}
	if (entered)
		cred_leave(&cs);
}

/* Room for slot s in every bitmap (locked): 0 or -ENOMEM. */
static int grow_locked(uint64_t s)
{
	size_t need = (size_t)(s / 64 + 1);
	if (need <= nwords)
		return 0;
	size_t n = nwords ? nwords : 16;
	while (n < need)
		n *= 2;
	for (struct efile *ef = efiles; ef; ef = ef->next) {
		if (ef->words >= n)
			continue;
		uint64_t *k = calloc(4 * n, sizeof(*k));
		if (!k)
			return -ENOMEM;
		memcpy(k, ef->known, ef->words * sizeof(*k));
		memcpy(k + n, ef->dirty, ef->words * sizeof(*k));
		memcpy(k + 2 * n, ef->checked, ef->words * sizeof(*k));
		memcpy(k + 3 * n, ef->hidden, ef->words * sizeof(*k));
		free(ef->known); /* the others are in the same block */
		bitmaps_set(ef, k, n);
	}
	uint64_t *l = realloc(live, n * sizeof(*l));
	if (!l)
		return -ENOMEM;
	memset(l + nwords, 0, (n - nwords) * sizeof(*l));
	live = l;
	nwords = n;
	return 0;
}

/* The next line for ef, its state not yet changed: length, or 0. */
static int line_for(const struct efile *ef, const struct region *r, int removed,
		    char *out, size_t size)
{
	if (removed)
		return snprintf(out, size, "-%s\n", r->name);
	int known = (ef->known[r->slot / 64] & BIT(r->slot)) != 0;
	return snprintf(out, size, "%s%s %u\n", known ? "" : "+", r->name, r->done_seq);
}

/* Bits of word w due in pass 0 (removed regions) or 1 (new or moved). */
static uint64_t due(const struct efile *ef, size_t w, int pass)
{
	uint64_t l = w < nwords ? live[w] : 0, k = ef->known[w];
	return pass == 0 ? k & ~l : (l & ~k & ~ef->hidden[w]) | (l & k & ef->dirty[w]);
}

static int ready(struct efile *ef)
{
	if (ef->line_off < ef->line_len)
		return 1;
	check_new(ef);
	for (size_t w = 0; w < ef->words; w++)
		if (due(ef, w, 0) | due(ef, w, 1))
			return 1;
	return 0;
}

/* Take the lines due for ef into buf (size bytes, locked): whole lines,
 * or the start of one line that alone does not fit (its rest comes with
 * the next read: shells read one byte at a time).  Removals come first,
 * so a name removed and made again reads "-NAME" before "+NAME SEQ". */
static size_t fill(struct efile *ef, char *buf, size_t size)
{
	size_t n = 0;
	check_new(ef);
	if (ef->line_off < ef->line_len) {
		n = ef->line_len - ef->line_off;
		if (n > size)
			n = size;
		memcpy(buf, ef->line + ef->line_off, n);
		ef->line_off += n;
		if (ef->line_off < ef->line_len)
			return n;
	}
	for (int pass = 0; pass < 2; pass++) {
		for (size_t w = 0; w < ef->words; w++) {
			for (uint64_t bits = due(ef, w, pass); bits; bits &= bits - 1) {
				uint64_t s = w * 64 + (uint64_t)__builtin_ctzll(bits);
				struct region *r = region_at_slot_locked(s);
				char line[sizeof(ef->line)];
				size_t len = r ? (size_t)line_for(ef, r, pass == 0, line,
								  sizeof(line)) : 0;
				if (n + len > size && n > 0)
					return n; /* the next read takes it */
				ef->dirty[w] &= ~BIT(s);
				if (!r) { /* cannot be: a known region keeps its slot */
					ef->known[w] &= ~BIT(s);
					continue;
				}
				if (n + len > size) {
					memcpy(buf, line, size);
					memcpy(ef->line, line, len);
					ef->line_off = size;
					ef->line_len = len;
					n = size;
				} else {
					memcpy(buf + n, line, len);
					n += len;
				}
				if (pass == 0) {
					ef->known[w] &= ~BIT(s);
					r->ev_known--;
					region_maybe_free_locked(r);
				} else if (!(ef->known[w] & BIT(s))) {
					ef->known[w] |= BIT(s);
					r->ev_known++;
				}
				if (n == size)
					return n;
			}
		}
	}
	return n;
}

/* A reply held back until the lock is dropped (see waiters_publish_locked:
 * a reader woken under the lock preempts us holding it, and its next read
 * then waits for us). */
struct ereply {
	fuse_req_t req;
	char *buf;
	size_t len;
};
static __thread struct ereply later;

static void send_reply(struct ereply *r)
{
	if (!r->buf)
		fuse_reply_err(r->req, ENOMEM);
	else
		fuse_reply_buf(r->req, r->buf, r->len);
	free(r->buf);
}

void events_send_later(void)
{
	if (later.req) {
		struct ereply r = later;
		later.req = NULL;
		send_reply(&r);
	}
}

/* Answer ef's oldest deferred read (locked); with defer, only after the
 * caller drops the lock (events_send_later, from replies_send). */
static void answer_locked(struct efile *ef, int defer)
{
	struct epending *p = ef->pending;
	ef->pending = p->next;
	struct ereply r = { p->req, malloc(p->size ? p->size : 1), 0 };
	if (r.buf)
		r.len = fill(ef, r.buf, p->size);
	free(p);
	if (defer) {
		events_send_later(); /* the one before: now, under the lock */
		later = r;
	} else {
		send_reply(&r);
	}
}

/* Lines may be due for ef (locked): answer its readers, wake its poller. */
static void wake_locked(struct efile *ef, int defer)
{
	while (ef->pending && ready(ef))
		answer_locked(ef, defer);
	if (ef->ph && ready(ef)) {
		fuse_lowlevel_notify_poll(ef->ph);
		fuse_pollhandle_destroy(ef->ph);
		ef->ph = NULL;
	}
}

static void wake_all_locked(void)
{
	for (struct efile *ef = efiles; ef; ef = ef->next)
		wake_locked(ef, 0);
}

/* Regions watched for .events hold a file descriptor each, whoever made
 * them: one open of .events must not take every descriptor zincfs has
 * (a user can make shm objects until /dev/shm is full).  Half the limit. */
static size_t watch_max(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return 512;
	return rl.rlim_cur == RLIM_INFINITY ? SIZE_MAX : (size_t)(rl.rlim_cur / 2);
}

void events_adopt_locked(struct region *r)
{
	if (!nopen || r->ev_watch || r->gone || !r->h)
		return;
	if (nwatched >= watch_max()) {
		log_warn("region %s is not watched for .events: %zu regions are, half "
			 "the file limit", r->name, nwatched);
		return;
	}
	if (grow_locked(r->slot)) {
		log_error("cannot watch region %s for .events: out of memory", r->name);
		return;
	}
	r->ev_watch = 1;
	nwatched++;
	live[r->slot / 64] |= BIT(r->slot);
	for (struct efile *ef = efiles; ef; ef = ef->next) { /* a new region */
		ef->checked[r->slot / 64] &= ~BIT(r->slot);
		ef->hidden[r->slot / 64] &= ~BIT(r->slot);
	}
	watch_update_locked(r);
	wake_all_locked(); /* a + line for every open file */
}

void events_gone_locked(struct region *r)
{
	if (!r->ev_watch)
		return;
	r->ev_watch = 0;
	nwatched--;
	live[r->slot / 64] &= ~BIT(r->slot);
	for (struct efile *ef = efiles; ef; ef = ef->next)
		if (ef->known[r->slot / 64] & BIT(r->slot))
			wake_locked(ef, 0);
}

void events_moved_locked(struct region *r)
{
	if (!r->ev_watch)
		return;
	size_t w = r->slot / 64;
	for (struct efile *ef = efiles; ef; ef = ef->next) {
		if (ef->known[w] & BIT(r->slot)) {
			ef->dirty[w] |= BIT(r->slot);
			wake_locked(ef, 1); /* publish_locked's caller sends it */
		} /* else its + line, still due, will carry the value */
	}
}

void events_name_appeared(const char *name)
{
	struct region *r;
	if (region_lookup(name, &r) != 0)
		return; /* not (yet) a region: inotify tells us again */
	LOCK();
	events_adopt_locked(r);
	region_put_locked(r);
	UNLOCK();
}

/* Watch every region: those in the table, then those in the directory
 * (scan_lock held, zfs_lock not). */
static void scan(void)
{
	LOCK();
	for (uint64_t s = 1; s < regions_slot_end_locked(); s++) {
		struct region *r = region_at_slot_locked(s);
		if (r)
			events_adopt_locked(r);
	}
	UNLOCK();
	DIR *dir = opendir(zfs_cfg.shm_dir);
	if (!dir) {
		log_error("cannot list %s: %s", zfs_cfg.shm_dir, strerror(errno));
		return;
	}
	const size_t plen = strlen(ZINC_OBJECT_PREFIX);
	struct dirent *de;
	while ((de = readdir(dir)))
		if (strncmp(de->d_name, ZINC_OBJECT_PREFIX, plen) == 0 &&
		    zinc__valid_name(de->d_name + plen))
			events_name_appeared(de->d_name + plen);
	closedir(dir);
}

void events_rescan(void)
{
	pthread_mutex_lock(&scan_lock);
	LOCK();
	int active = nopen > 0;
	UNLOCK();
	if (active)
		scan();
	pthread_mutex_unlock(&scan_lock);
}

struct efile *events_open(fuse_req_t req)
{
	struct efile *ef = calloc(1, sizeof(*ef));
	if (!ef)
		return NULL;
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	ef->uid = ctx->uid;
	ef->gid = ctx->gid;
	int ng = fuse_req_getgroups(req, NGROUPS, ef->groups);
	ef->ngroups = ng < 0 ? 0 : ng > NGROUPS ? NGROUPS : ng;
	LOCK();
	nopen++; /* from now on new regions are watched */
	UNLOCK();
	pthread_mutex_lock(&scan_lock);
	LOCK();
	int need = !scanned;
	UNLOCK();
	if (need)
		scan();
	LOCK();
	scanned = 1;
	size_t n = nwords ? nwords : 16;
	uint64_t *block = calloc(4 * n, sizeof(*block));
	if (block)
		bitmaps_set(ef, block, n);
	if (!block || grow_locked(0)) {
		UNLOCK();
		pthread_mutex_unlock(&scan_lock);
		events_release(ef); /* counts nopen down */
		errno = ENOMEM;
		return NULL;
	}
	/* Its cursor starts now: the regions there (that it may read) are
	 * known. */
	struct cred_saved cs;
	int denied = as_opener(ef, &cs) != 0;
	for (size_t w = 0; w < nwords; w++) {
		for (uint64_t bits = live[w]; bits; bits &= bits - 1) {
			uint64_t s = w * 64 + (uint64_t)__builtin_ctzll(bits);
			struct region *r = region_at_slot_locked(s);
			ef->checked[w] |= BIT(s);
			if (!denied && may_read(ef, r)) {
				ef->known[w] |= BIT(s);
				r->ev_known++;
			} else {
				ef->hidden[w] |= BIT(s);
			}
		}
	}
	cred_leave(&cs);
	ef->next = efiles;
	if (efiles)
		efiles->prev = ef;
	efiles = ef;
	UNLOCK();
	pthread_mutex_unlock(&scan_lock);
	return ef;
}

/* The last file closed (locked): stop watching for .events. */
static void deactivate_locked(void)
{
	scanned = 0;
	memset(live, 0, nwords * sizeof(*live));
	for (uint64_t s = 1; s < regions_slot_end_locked(); s++) {
		struct region *r = region_at_slot_locked(s);
		if (r && r->ev_watch) {
			r->ev_watch = 0;
			nwatched--;
			watch_update_locked(r);
			region_maybe_free_locked(r);
		}
	}
}

uid_t events_release(struct efile *ef)
{
	uid_t uid = ef->uid;
	LOCK();
	while (ef->pending) { /* a read holds its file: cannot be; be safe */
		struct epending *p = ef->pending;
		ef->pending = p->next;
		fuse_reply_err(p->req, EBADF);
		free(p);
	}
	int listed = ef->prev || efiles == ef;
	if (listed) {
		*(ef->prev ? &ef->prev->next : &efiles) = ef->next;
		if (ef->next)
			ef->next->prev = ef->prev;
	}
	if (ef->ph)
		fuse_pollhandle_destroy(ef->ph);
	for (size_t w = 0; w < ef->words; w++) {
		for (uint64_t bits = ef->known[w]; bits; bits &= bits - 1) {
			struct region *r = region_at_slot_locked(w * 64 +
							  (uint64_t)__builtin_ctzll(bits));
			if (r) {
				r->ev_known--;
				region_maybe_free_locked(r);
			}
		}
	}
	if (--nopen == 0)
		deactivate_locked();
	UNLOCK();
	free(ef->known);
	free(ef);
	return uid;
}

/* Interrupt callback: as in waiters.c, look the request up by pointer and
 * reply only if we dequeue it. */
static void on_interrupt(fuse_req_t req, void *data)
{
	(void)data;
	struct epending *found = NULL;
	LOCK();
	for (struct efile *ef = efiles; ef && !found; ef = ef->next) {
		for (struct epending **p = &ef->pending; *p; p = &(*p)->next) {
			if ((*p)->req == req) {
				found = *p;
				*p = found->next;
				break;
			}
		}
	}
	UNLOCK();
	if (found) {
		fuse_reply_err(req, EINTR);
		free(found);
	}
}

void events_read(fuse_req_t req, struct efile *ef, size_t size, int nonblock)
{
	struct epending *p = calloc(1, sizeof(*p));
	/* Before the request becomes visible to other threads. */
	fuse_req_interrupt_func(req, on_interrupt, NULL);
	LOCK();
	int err = 0;
	if (!ef->pending && ready(ef)) { /* earlier readers go first */
		char *buf = malloc(size ? size : 1);
		size_t n = buf ? fill(ef, buf, size) : 0;
		UNLOCK();
		if (buf)
			fuse_reply_buf(req, buf, n);
		else
			fuse_reply_err(req, ENOMEM);
		free(buf);
		free(p);
		return;
	}
	if (nonblock)
		err = EAGAIN;
	else if (fuse_req_interrupted(req))
		err = EINTR;
	else if (!p)
		err = ENOMEM;
	if (err) {
		UNLOCK();
		fuse_reply_err(req, err);
		free(p);
		return;
	}
	p->req = req;
	p->size = size;
	struct epending **tail = &ef->pending;
	while (*tail)
		tail = &(*tail)->next;
	*tail = p;
	UNLOCK();
}

void events_poll(fuse_req_t req, struct efile *ef, struct fuse_pollhandle *ph)
{
	LOCK();
	if (ph) {
		if (ef->ph) /* one handle per open file (waiters.c) */
			fuse_pollhandle_destroy(ef->ph);
		ef->ph = ph;
	}
	fuse_reply_poll(req, ready(ef) ? POLLIN | POLLRDNORM : 0);
	UNLOCK();
}

void events_fail_all_locked(int err)
{
	for (struct efile *ef = efiles; ef; ef = ef->next) {
		while (ef->pending) {
			struct epending *p = ef->pending;
			ef->pending = p->next;
			fuse_reply_err(p->req, err);
			free(p);
		}
	}
}

/* At exit, after the session is gone: opens whose RELEASE never came. */
void events_free_all(void)
{
	LOCK();
	while (efiles) {
		struct efile *ef = efiles;
		efiles = ef->next;
		while (ef->pending) {
			struct epending *p = ef->pending;
			ef->pending = p->next;
			free(p);
		}
		if (ef->ph)
			fuse_pollhandle_destroy(ef->ph);
		free(ef->known);
		free(ef);
	}
	free(live);
	live = NULL;
	nwords = nwatched = 0;
	nopen = 0;
	UNLOCK();
}
