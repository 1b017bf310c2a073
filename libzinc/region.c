/* SPDX-License-Identifier: MIT */
/*
 * Region format and lifetime: names, create/open/close/unlink, validation of
 * objects found in the region directory, enumeration and header facts.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "name.h"

#define DEFAULT_DIR "/dev/shm"
#define CREATE_RACE_MS 20   /* how long a half-created object is waited for */
#define CLAIM_STALE_MS 1000 /* a claim without a live claimer's lock that is
			       older is taken over (its claimer died) */
#define CLAIM_WAIT_MS 1500  /* how long a busy claim is polled (it is held
			       for microseconds unless the claimer is stopped) */
#define CLOSE_ROUNDS 16     /* "handle appeared" re-checks of one close */

size_t zinc__page_size(void)
{
	static size_t page;
	if (!page)
		page = (size_t)sysconf(_SC_PAGESIZE);
	return page;
}

size_t zinc_data_offset(void)
{
	return zinc__page_size();
}

static const char *region_dir(void)
{
	const char *dir = getenv("ZINC_SHM_DIR");
	return dir && *dir ? dir : DEFAULT_DIR;
}

/* Object path of NAME, or -EINVAL for a bad name or an over-long dir. */
static int object_path(const char *name, char path[PATH_MAX])
{
	if (!zinc__valid_name(name))
		return -EINVAL;
	int n = snprintf(path, PATH_MAX, "%s/" ZINC_OBJECT_PREFIX "%s",
			 region_dir(), name);
	return n > 0 && n < PATH_MAX ? 0 : -EINVAL;
}

/* zinc reports "permission denied" as -EPERM. */
static int neg_errno(int e)
{
	return e == EACCES ? -EPERM : -e;
}

static void sleep_us(long us)
{
	struct timespec ts = { us / 1000000, (us % 1000000) * 1000 };
	nanosleep(&ts, NULL);
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Try once to take an OFD lock on one byte.  0 or -errno (EAGAIN: held). */
static int lock_byte(int fd, short type, off_t byte)
{
	struct flock fl = { .l_type = type, .l_whence = SEEK_SET,
			    .l_start = byte, .l_len = 1 };
	if (fcntl(fd, F_OFD_SETLK, &fl) == 0)
		return 0;
	return errno == EACCES ? -EAGAIN : -errno;
}

static void unlock_byte(int fd, off_t byte)
{
	lock_byte(fd, F_UNLCK, byte);
}

/*
 * 1 if another open file description holds a lock on byte that conflicts
 * with `type`: F_WRLCK finds any lock, F_RDLCK only write locks (which only
 * a process that opened the object for writing can take).
 */
static int byte_locked(int fd, short type, off_t byte)
{
	struct flock fl = { .l_type = type, .l_whence = SEEK_SET,
			    .l_start = byte, .l_len = 1 };
	if (fcntl(fd, F_OFD_GETLK, &fl) < 0)
		return 0;
	return fl.l_type != F_UNLCK;
}

/* Another counting handle (or a reader's read lock) on byte 0. */
static int other_handles(int fd)
{
	return byte_locked(fd, F_WRLCK, LOCK_HANDLE);
}

static int owner_alive(int fd)
{
	return byte_locked(fd, F_RDLCK, LOCK_OWNER);
}

static uint64_t fnv1a(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	for (; *s; s++)
		h = (h ^ (uint8_t)*s) * 0x100000001b3ULL;
	return h;
}

/* 1 if path names the object open as fd. */
static int names_object(int fd, const char *path)
{
	struct stat a, b;
	return fstat(fd, &a) == 0 && stat(path, &b) == 0 &&
	       a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

static uint64_t realtime_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* A claim word: the time in ms since the epoch (CLOCK_REALTIME: the same
 * in every time namespace) above 20 bits that tell claimers apart. */
static uint64_t claim_token(void)
{
	static uint32_t counter;
	uint32_t salt = (uint32_t)getpid() * 2654435761u +
			__atomic_fetch_add(&counter, 1, __ATOMIC_RELAXED) * 40503u;
	return realtime_ms() << 20 | (salt & 0xfffff) | 1;
}

/* A claimer that died: it holds no LOCK_CLAIM write lock and its claim is
 * older than CLAIM_STALE_MS (or from the future: the clock was set back). */
static int claim_stale(int fd, uint64_t token)
{
	int64_t age = (int64_t)(realtime_ms() - (token >> 20));
	return !byte_locked(fd, F_RDLCK, LOCK_CLAIM) &&
	       (age > CLAIM_STALE_MS || age < -CLAIM_STALE_MS);
}

/*
 * Become the one process that decides about the object's name: set
 * ext->claim from 0 (or from a stale claim) to a token of ours, polling for
 * up to wait_ms while another claimer holds it.  The LOCK_CLAIM write lock
 * tells others we live; a reader's read lock may refuse it, and the claim
 * holds without it.  Only processes that can write the header can claim.
 * Returns the token, or 0 if the claim stayed busy.
 */
static uint64_t claim(int fd, struct zinc_ext *ext, int wait_ms)
{
	int64_t deadline = now_ms() + wait_ms;
	long pause = 50;
	for (;;) {
		lock_byte(fd, F_WRLCK, LOCK_CLAIM);
		uint64_t mine = claim_token(), cur = 0;
		if (__atomic_compare_exchange_n(&ext->claim, &cur, mine, 0,
						__ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST) ||
		    (claim_stale(fd, cur) &&
		     __atomic_compare_exchange_n(&ext->claim, &cur, mine, 0,
						 __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)))
			return mine;
		unlock_byte(fd, LOCK_CLAIM);
		if (now_ms() >= deadline)
			return 0;
		sleep_us(pause);
		if (pause < 5000)
			pause *= 2;
	}
}

/* Give the claim back (unless a later claimer took it over as stale). */
static void unclaim(int fd, struct zinc_ext *ext, uint64_t token)
{
	__atomic_compare_exchange_n(&ext->claim, &token, 0, 0, __ATOMIC_SEQ_CST,
				    __ATOMIC_RELAXED);
	unlock_byte(fd, LOCK_CLAIM);
}

/*
 * Under the claim (r->hdr NULL: an object that is no region, which has no
 * claim): unlink r->path if it still names r's object, and only once the
 * kernel did so mark the region removed.  0, -ENOENT (already removed or
 * replaced) or -errno from unlink (EPERM: nothing changed).
 */
static int unlink_claimed(struct zinc_region *r)
{
	/* The name decides, not the removed flag: a flagged object still
	 * under its name (a forged or scribbled header) is stale and goes. */
	if (!names_object(r->fd, r->path))
		return -ENOENT;
	if (unlink(r->path) < 0)
		return neg_errno(errno);
	if (r->hdr)
		zinc__mark_removed(r->hdr);
	return 0;
}

/* Remove r's name: claim, unlink_claimed, unclaim.  -EBUSY if another
 * claimer kept the claim for CLAIM_WAIT_MS. */
static int remove_object(struct zinc_region *r)
{
	if (!r->hdr)
		return unlink_claimed(r);
	uint64_t token = claim(r->fd, r->ext, CLAIM_WAIT_MS);
	if (!token)
		return -EBUSY;
	int rc = unlink_claimed(r);
	unclaim(r->fd, r->ext, token);
	return rc;
}

/*
 * Map fd and check it is a region: regular file, size >= 2 pages and a page
 * multiple, magic (acquire), version, capacity == size - page.  A half-made
 * object (size 0, or right size but magic 0) is waited for briefly, since a
 * creator may be between its steps.  Fills r's mapping fields; with
 * ZINC_OPEN_HEADER in r->open_flags only the header page is mapped.
 */
static int map_region(int fd, struct zinc_region *r)
{
	size_t page = zinc__page_size();
	int64_t deadline = now_ms() + CREATE_RACE_MS;
	for (;;) {
		struct stat st;
		if (fstat(fd, &st) < 0)
			return -errno;
		if (!S_ISREG(st.st_mode))
			return -EBADMSG;
		size_t size = (size_t)st.st_size;
		int half_made = size == 0;
		if (size != 0) {
			if (size < 2 * page || size % page)
				return -EBADMSG;
			/* Judge the header before mapping: a hostile object
			 * may be huge (a sparse TiB) and is then not mapped. */
			struct zinc_header peek;
			if (pread(fd, &peek, sizeof(peek), 0) != (ssize_t)sizeof(peek))
				return -EBADMSG;
			if (peek.magic != 0 && (peek.magic != ZINC_MAGIC ||
						peek.version != ZINC_FORMAT_VERSION ||
						peek.capacity != size - page))
				return -EBADMSG;
			size_t len = r->open_flags & ZINC_OPEN_HEADER ? page : size;
			void *m = mmap(NULL, len, PROT_READ | PROT_WRITE,
				       MAP_SHARED, fd, 0);
			if (m == MAP_FAILED)
				return neg_errno(errno);
			struct zinc_header *h = m;
			uint64_t magic = __atomic_load_n(&h->magic, __ATOMIC_ACQUIRE);
			if (magic == ZINC_MAGIC && h->version == ZINC_FORMAT_VERSION &&
			    h->capacity == size - page) {
				r->hdr = h;
				r->ext = (struct zinc_ext *)((char *)m + ZINC_EXT_OFFSET);
				r->data = len == size ? (uint8_t *)m + page : NULL;
				r->map_size = len;
				r->capacity = size - page;
				r->foreign = r->ext->ext_magic != ZINC_EXT_MAGIC;
				return 0;
			}
			munmap(m, len);
			if (magic != 0)
				return -EBADMSG;
			half_made = 1;
		}
		if (!half_made || now_ms() >= deadline)
			return -EBADMSG;
		sleep_us(500);
	}
}

static void unmap_region(struct zinc_region *r)
{
	if (r->hdr)
		munmap(r->hdr, r->map_size);
	r->hdr = NULL;
}

static int open_object(const char *path, int flags)
{
	/* O_NONBLOCK: a FIFO planted under a region's name must not block. */
	return open(path, flags | O_RDWR | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK |
			  O_NOCTTY, 0600);
}

static struct zinc_region *new_handle(const char *name, const char *path)
{
	struct zinc_region *r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	r->fd = -1;
	snprintf(r->name, sizeof(r->name), "%s", name);
	snprintf(r->path, sizeof(r->path), "%s", path);
	const char *always = getenv("ZINC_ALWAYS_WAKE");
	r->always_wake = always && *always && strcmp(always, "0") != 0;
	const char *spin = getenv("ZINC_SPIN_NS");
	if (spin && *spin)
		zinc_set_spin(r, (uint32_t)strtoul(spin, NULL, 10));
	return r;
}

static void free_handle(struct zinc_region *r)
{
	unmap_region(r);
	if (r->fd >= 0)
		close(r->fd);
	free(r);
}

static int pid_alive(pid_t pid)
{
	return pid > 0 && (kill(pid, 0) == 0 || errno == EPERM);
}

/* Open path's object for probe (header page only).  The map_region result
 * (0 or -EBADMSG for an object that is no region), or -errno from open. */
static int open_probe(const char *path, struct zinc_region *probe)
{
	memset(probe, 0, sizeof(*probe));
	snprintf(probe->path, sizeof(probe->path), "%s", path);
	probe->open_flags = ZINC_OPEN_HEADER;
	probe->fd = open_object(path, 0);
	if (probe->fd < 0)
		return -errno;
	return map_region(probe->fd, probe);
}

static void close_probe(struct zinc_region *probe)
{
	unmap_region(probe);
	close(probe->fd);
}

/*
 * The name is taken: find out whether its region is stale (owner closed or
 * died, or a leftover that is no region at all) and if so remove it.
 * 0 = removed or vanished (try again), -EEXIST = in use, or -errno.
 */
static int remove_if_stale(const char *path)
{
	struct zinc_region probe;
	/* Map first: it may wait for a creator mid-way, who then holds the
	 * owner lock that the next check sees. */
	int m = open_probe(path, &probe), rc;
	if (probe.fd < 0) {
		if (m == -ENOENT)
			return 0;
		/* A symlink, directory or socket holds the name: not ours. */
		if (m == -ELOOP || m == -EISDIR || m == -ENXIO)
			return -EEXIST;
		return neg_errno(-m);
	}
	struct stat st;
	if (owner_alive(probe.fd))
		rc = -EEXIST; /* owner alive, or a creator mid-way */
	else if (m == 0 && probe.foreign && pid_alive(probe.hdr->owner_pid))
		rc = -EEXIST; /* zinc-core region: no locks, trust pid */
	else if (m == -EBADMSG && other_handles(probe.fd))
		rc = -EEXIST; /* unreadable but in use */
	else if (m != 0 && m != -EBADMSG)
		rc = m;
	else if (fstat(probe.fd, &st) == 0 && !S_ISREG(st.st_mode))
		rc = -EEXIST; /* not ours to delete */
	else {
		rc = remove_object(&probe);
		if (rc == -ENOENT)
			rc = 0;
		else if (rc == -EBUSY)
			rc = -EEXIST; /* still being removed or replaced */
	}
	close_probe(&probe);
	return rc;
}

/* Fill a freshly created, locked object of `size` bytes and publish it. */
static int init_region(struct zinc_region *r, size_t capacity)
{
	size_t page = zinc__page_size();
	int err = posix_fallocate(r->fd, 0, (off_t)(page + capacity));
	if (err)
		return -err;
	void *m = mmap(NULL, page + capacity, PROT_READ | PROT_WRITE,
		       MAP_SHARED, r->fd, 0);
	if (m == MAP_FAILED)
		return -errno;
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	struct zinc_header *h = m;
	h->version = ZINC_FORMAT_VERSION;
	h->flags = 0;
	h->notify_seq = 0;
	h->capacity = capacity;
	h->ref_count = 1;
	h->owner_pid = getpid();
	h->created_at = (uint64_t)now.tv_sec * 1000000000ULL + (uint64_t)now.tv_nsec;
	h->name_hash = fnv1a(r->name);
	h->ring_head = 0;
	h->ring_tail = 0;
	r->ext = (struct zinc_ext *)((char *)m + ZINC_EXT_OFFSET);
	r->ext->ext_magic = ZINC_EXT_MAGIC;
	r->ext->waiters = 0;
	r->ext->handles = 1; /* this owner handle */
	r->ext->claim = 0;
	__atomic_store_n(&h->magic, ZINC_MAGIC, __ATOMIC_RELEASE);
	r->hdr = h;
	r->data = (uint8_t *)m + page;
	r->map_size = page + capacity;
	r->capacity = capacity;
	return 0;
}

/* Take the owner's locks on a new object and fill it in.  Nobody else
 * can lock an unnamed object; a named one (create_named) may have been
 * locked by someone who opened it meanwhile: then the name is contested. */
static int own_and_init(struct zinc_region *r, int fd, size_t capacity)
{
	r->fd = fd;
	r->owner = 1;
	int rc = lock_byte(fd, F_WRLCK, LOCK_OWNER);
	if (!rc)
		rc = lock_byte(fd, F_RDLCK, LOCK_HANDLE);
	if (rc == -EAGAIN)
		return -EEXIST;
	if (!rc)
		rc = init_region(r, capacity);
	return rc;
}

/*
 * Build a region of `capacity` owned by r in an unnamed file (O_TMPFILE) of
 * the region directory; proc gets the file's /proc/self/fd path for
 * linkat().  -EOPNOTSUPP if the directory's filesystem (or a missing /proc)
 * does not allow it.  On failure the caller frees r, and the file with it.
 */
static int build_unnamed(struct zinc_region *r, size_t capacity, char proc[64])
{
	int fd = open(region_dir(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd < 0)
		return errno == EISDIR || errno == EINVAL ? -EOPNOTSUPP
							  : neg_errno(errno);
	snprintf(proc, 64, "/proc/self/fd/%d", fd);
	if (access(proc, F_OK) < 0) {
		close(fd);
		return -EOPNOTSUPP;
	}
	return own_and_init(r, fd, capacity);
}

/*
 * Preferred: build the region unnamed and link it under its name only once
 * it is complete, so nobody ever sees it half-made and a failed create
 * leaves nothing behind.
 */
static int create_unnamed(struct zinc_region *r, size_t capacity)
{
	char proc[64];
	int rc = build_unnamed(r, capacity, proc);
	for (int attempt = 0; !rc; attempt++) {
		if (linkat(AT_FDCWD, proc, AT_FDCWD, r->path, AT_SYMLINK_FOLLOW) == 0)
			return 0;
		if (errno != EEXIST)
			rc = neg_errno(errno);
		else if (attempt == 8)
			rc = -EEXIST;
		else
			rc = remove_if_stale(r->path);
	}
	return rc;
}

/* Fallback: create the name first (O_EXCL), then fill it in. */
static int create_named(struct zinc_region *r, size_t capacity)
{
	for (int attempt = 0; attempt < 8; attempt++) {
		int fd = open_object(r->path, O_CREAT | O_EXCL);
		if (fd < 0) {
			if (errno != EEXIST)
				return neg_errno(errno);
			int rc = remove_if_stale(r->path);
			if (rc)
				return rc;
			continue;
		}
		int rc = own_and_init(r, fd, capacity);
		if (rc) /* never leave a half-made object behind */
			unlink_claimed(r);
		return rc;
	}
	return -EEXIST;
}

int32_t zinc_create(const char *name, uintptr_t capacity, zinc_region **out)
{
	char path[PATH_MAX];
	size_t page = zinc__page_size();
	if (out)
		*out = NULL;
	if (!out || object_path(name, path))
		return -EINVAL;
	if (capacity == 0 || capacity % page ||
	    capacity > (uintptr_t)(INT64_MAX - (int64_t)page))
		return -EINVAL;
	struct zinc_region *r = new_handle(name, path);
	if (!r)
		return -ENOMEM;
	int rc = create_unnamed(r, capacity);
	if (rc == -EOPNOTSUPP)
		rc = create_named(r, capacity);
	if (rc) {
		free_handle(r);
		return rc;
	}
	*out = r;
	return 0;
}

/* Give the new object the old one's owner and mode (a daemon may have
 * shared it with others). */
static int copy_access(int from, int to)
{
	struct stat a, b;
	if (fstat(from, &a) < 0 || fstat(to, &b) < 0)
		return -errno;
	if ((a.st_uid != b.st_uid || a.st_gid != b.st_gid) &&
	    fchown(to, a.st_uid, a.st_gid) < 0)
		return neg_errno(errno);
	return fchmod(to, a.st_mode & 07777) < 0 ? neg_errno(errno) : 0;
}

/*
 * Link the complete new region (open as proc) under a temporary name, then rename that
 * over the name, which must still be old's object.  Nothing changed on
 * failure.  The temporary name is no region name, so listings skip it.
 */
static int replace_name(struct zinc_region *old, const char *proc)
{
	static unsigned counter;
	char tmp[PATH_MAX];
	int rc = -EEXIST;
	for (int attempt = 0; rc == -EEXIST && attempt < 8; attempt++) {
		int n = snprintf(tmp, sizeof(tmp), "%s/.zinc-new.%d.%u", region_dir(),
				 (int)getpid(), __atomic_fetch_add(&counter, 1,
								   __ATOMIC_RELAXED));
		if (n < 0 || n >= (int)sizeof(tmp))
			return -EINVAL;
		rc = linkat(AT_FDCWD, proc, AT_FDCWD, tmp, AT_SYMLINK_FOLLOW) < 0
			     ? neg_errno(errno) : 0;
	}
	if (rc)
		return rc;
	uint64_t token = claim(old->fd, old->ext, CLAIM_WAIT_MS);
	if (!token) {
		rc = -EBUSY;
	} else {
		if (zinc__flags(old) & ZINC_FLAG_REMOVED || !names_object(old->fd, old->path))
			rc = -ENOENT;
		else if (rename(tmp, old->path) < 0)
			rc = neg_errno(errno);
		else
			zinc__mark_removed(old->hdr);
		unclaim(old->fd, old->ext, token);
	}
	if (rc)
		unlink(tmp);
	return rc;
}

int32_t zinc_recreate(zinc_region *owner, uintptr_t capacity, zinc_region **out)
{
	size_t page = zinc__page_size();
	char proc[64];
	if (out)
		*out = NULL;
	if (!owner || !out || capacity == 0 || capacity % page ||
	    capacity > (uintptr_t)(INT64_MAX - (int64_t)page))
		return -EINVAL;
	if (!owner->owner)
		return -EPERM;
	if (zinc__flags(owner) & ZINC_FLAG_REMOVED)
		return -ENOENT;
	struct zinc_region *r = new_handle(owner->name, owner->path);
	if (!r)
		return -ENOMEM;
	r->spin_ns = owner->spin_ns;
	int rc = build_unnamed(r, capacity, proc);
	if (!rc)
		rc = copy_access(owner->fd, r->fd);
	if (!rc) {
		memcpy(r->data, owner->data,
		       capacity < owner->capacity ? capacity : owner->capacity);
		/* A reader that reopens after -EIDRM finds the data announced. */
		__atomic_store_n(&r->hdr->notify_seq,
				 __atomic_load_n(&owner->hdr->notify_seq, __ATOMIC_ACQUIRE),
				 __ATOMIC_RELEASE);
		rc = replace_name(owner, proc);
	}
	if (rc) {
		free_handle(r);
		return rc;
	}
	*out = r;
	return 0;
}

/* 1 if the object open as fd has no name any more (removed by anyone). */
static int unlinked(int fd)
{
	struct stat st;
	return fstat(fd, &st) == 0 && st.st_nlink == 0;
}

/*
 * Take a counting handle's lock, then wait (briefly) until no claimer is
 * deciding about the name: a closer that claimed before our lock existed
 * may be about to remove it, while one that claims later sees our lock and
 * backs off.  0 (then the caller checks ZINC_FLAG_REMOVED) or -EBUSY if a
 * live claimer (a stopped process) or a writer's lock on byte 0 stayed.
 */
static int lock_handle(struct zinc_region *r)
{
	int64_t deadline = now_ms() + CLAIM_WAIT_MS;
	long pause = 50;
	int locked = 0;
	for (;;) {
		if (!locked) {
			int rc = lock_byte(r->fd, F_RDLCK, LOCK_HANDLE);
			if (rc && rc != -EAGAIN)
				return rc;
			locked = !rc;
		}
		if (locked) {
			uint64_t c = __atomic_load_n(&r->ext->claim, __ATOMIC_SEQ_CST);
			if (!c || zinc__flags(r) & ZINC_FLAG_REMOVED ||
			    claim_stale(r->fd, c))
				return 0;
		}
		if (now_ms() >= deadline)
			return -EBUSY;
		sleep_us(pause);
		if (pause < 5000)
			pause *= 2;
	}
}

int32_t zinc_open_ex(const char *name, uint32_t flags, zinc_region **out)
{
	char path[PATH_MAX];
	if (out)
		*out = NULL;
	if (!out || object_path(name, path) ||
	    (flags & ~(ZINC_OPEN_OBSERVE | ZINC_OPEN_HEADER)))
		return -EINVAL;
	int observe = flags & ZINC_OPEN_OBSERVE;

	/* Retry when we caught a region whose name was removed right then:
	 * the name may already hold a new region. */
	for (int attempt = 0; attempt < 8; attempt++) {
		int fd = open_object(path, 0);
		if (fd < 0)
			return errno == ELOOP || errno == ENXIO || errno == EISDIR
				       ? -EBADMSG : neg_errno(errno);
		struct zinc_region *r = new_handle(name, path);
		if (!r) {
			close(fd);
			return -ENOMEM;
		}
		r->fd = fd;
		r->open_flags = flags;
		int rc = map_region(fd, r);
		if (!rc && !observe)
			rc = lock_handle(r);
		if (rc) {
			free_handle(r);
			return rc;
		}
		if (zinc__flags(r) & ZINC_FLAG_REMOVED || unlinked(fd)) {
			free_handle(r);
			continue;
		}
		if (r->foreign)
			r->always_wake = 1; /* zinc-core waiters never announce */
		if (!observe) { /* ref_count first: see zinc_notify */
			__atomic_fetch_add(&r->hdr->ref_count, 1, __ATOMIC_SEQ_CST);
			if (!r->foreign)
				__atomic_fetch_add(&r->ext->handles, 1, __ATOMIC_SEQ_CST);
		}
		*out = r;
		return 0;
	}
	return -ENOENT;
}

int32_t zinc_open(const char *name, zinc_region **out)
{
	return zinc_open_ex(name, 0, out);
}

/*
 * A counting handle goes: was it the last one anywhere?  Drop our handle
 * lock first, then look for others; claim; look again (an opener takes its
 * lock before it looks at the claim, so one of us sees the other); remove.
 * If a handle appeared, unclaim and look once more: its closer may have
 * tried to claim while we held the claim, and then left the removal to us.
 * A closer that cannot claim leaves it to the claimer, who looks again
 * after us.  Nothing here waits for a lock.
 */
/* Decrement a shared count, but not below 0 (a scribbled header).
 * Returns the value before. */
static uint32_t count_down(uint32_t *count)
{
	uint32_t v = __atomic_load_n(count, __ATOMIC_RELAXED);
	while (v && !__atomic_compare_exchange_n(count, &v, v - 1, 0, __ATOMIC_SEQ_CST,
						 __ATOMIC_RELAXED))
		;
	return v;
}

static void close_counting(struct zinc_region *r)
{
	if (!r->foreign) /* handles first: see zinc_notify */
		count_down(&r->ext->handles);
	uint32_t refs = count_down(&r->hdr->ref_count);
	unlock_byte(r->fd, LOCK_HANDLE);
	for (int round = 0; round < CLOSE_ROUNDS; round++) {
		if (zinc__flags(r) & ZINC_FLAG_REMOVED || other_handles(r->fd) ||
		    (r->foreign && refs > 1))
			return;
		uint64_t token = claim(r->fd, r->ext, 0);
		if (!token)
			return;
		int appeared = other_handles(r->fd);
		if (!appeared)
			unlink_claimed(r);
		unclaim(r->fd, r->ext, token);
		if (!appeared)
			return;
	}
}

void zinc_close(zinc_region *r)
{
	if (!r)
		return;
	zinc_watch(r, 0);
	if (!(r->open_flags & ZINC_OPEN_OBSERVE)) {
		close_counting(r);
		/* Drop every lock we hold (the owner's too).  Closing our fd is
		 * not enough: a forked child or a dup() of zinc_fd() shares
		 * the open file description and would keep the locks. */
		struct flock fl = { .l_type = F_UNLCK, .l_whence = SEEK_SET,
				    .l_start = 0, .l_len = 0 };
		fcntl(r->fd, F_OFD_SETLK, &fl);
	}
	free_handle(r);
}

int32_t zinc_unlink(const char *name)
{
	char path[PATH_MAX];
	struct zinc_region probe;
	if (object_path(name, path))
		return -EINVAL;
	int m = open_probe(path, &probe);
	if (probe.fd < 0) {
		if (m != -EACCES && m != -ELOOP && m != -ENXIO)
			return neg_errno(-m);
		/* Not openable by us (not ours, or not a file): plain unlink,
		 * which the directory's permissions decide. */
		return unlink(path) < 0 ? neg_errno(errno) : 0;
	}
	int rc = remove_object(&probe);
	close_probe(&probe);
	return rc;
}

uint8_t *zinc_ptr(zinc_region *r)
{
	return r ? r->data : NULL;
}

uintptr_t zinc_capacity(zinc_region *r)
{
	return r ? r->capacity : 0;
}

const char *zinc_name(zinc_region *r)
{
	return r ? r->name : NULL;
}

int zinc_fd(zinc_region *r)
{
	return r ? r->fd : -EINVAL;
}

uint32_t zinc_version(void)
{
	return (uint32_t)ZINC_FORMAT_VERSION << 16 | 0x0001;
}

int32_t zinc_list(int (*fn)(const char *name, void *arg), void *arg)
{
	if (!fn)
		return -EINVAL;
	DIR *d = opendir(region_dir());
	if (!d)
		return neg_errno(errno);
	int32_t count = 0;
	const size_t plen = strlen(ZINC_OBJECT_PREFIX);
	struct dirent *e;
	while ((e = readdir(d))) {
		const char *name = e->d_name + plen;
		if (strncmp(e->d_name, ZINC_OBJECT_PREFIX, plen) || !zinc__valid_name(name))
			continue;
		count++;
		int rc = fn(name, arg);
		if (rc) {
			closedir(d);
			return rc;
		}
	}
	closedir(d);
	return count;
}

int32_t zinc_handle_stat(zinc_region *r, struct zinc_info *info)
{
	if (!r || !info)
		return -EINVAL;
	struct zinc_header *h = r->hdr;
	int counting = !(r->open_flags & ZINC_OPEN_OBSERVE);
	memset(info, 0, sizeof(*info));
	info->capacity = r->capacity;
	info->created_at = h->created_at;
	info->seq = __atomic_load_n(&h->notify_seq, __ATOMIC_ACQUIRE);
	info->ref_count = __atomic_load_n(&h->ref_count, __ATOMIC_RELAXED);
	info->waiters = r->foreign ? 0 : __atomic_load_n(&r->ext->waiters, __ATOMIC_RELAXED);
	info->owner_pid = h->owner_pid;
	info->flags = zinc__flags(r);
	info->foreign = r->foreign;
	if (r->foreign)
		info->owner_alive = pid_alive(h->owner_pid);
	else
		info->owner_alive = r->owner || owner_alive(r->fd);
	info->others = other_handles(r->fd); /* not our own lock */
	info->in_use = counting || info->others;
	return 0;
}

int32_t zinc_stat(const char *name, struct zinc_info *info)
{
	zinc_region *r;
	if (!info)
		return -EINVAL;
	int rc = zinc_open_ex(name, ZINC_OPEN_OBSERVE, &r);
	if (rc)
		return rc;
	rc = zinc_handle_stat(r, info);
	zinc_close(r);
	return rc;
}

const char *zinc_strerror(int err)
{
	if (err == INT_MIN)
		return "Unknown error"; /* -INT_MIN would overflow */
	if (err < 0)
		err = -err;
	switch (err) {
	case 0: return "Success";
	case EINVAL: return "Invalid region name, size or argument";
	case EEXIST: return "Region exists and its owner is alive";
	case ENOENT: return "No such region";
	case EPERM: return "Permission denied";
	case EBADMSG: return "Object is not a valid zinc region";
	case EIDRM: return "Region was removed";
	case ETIMEDOUT: return "Timed out waiting for a notification";
	case EAGAIN: return "No notification pending";
	case EBUSY: return "Region is being removed or replaced by another process";
	case ENOSPC: return "No space left in the region directory";
	}
	const char *s = strerrordesc_np(err);
	return s ? s : "Unknown error";
}
