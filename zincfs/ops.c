/* SPDX-License-Identifier: MIT */
/* The FUSE operations: a flat directory of NAME, NAME.notify, NAME.wait. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "zincfs.h"

#define TIMEOUT 1.0 /* entries and attributes; inotify invalidates sooner */

/*
 * Per-open state that only RELEASE/RELEASEDIR frees.  The kernel sends
 * those in the background after the last close, and an unmount right
 * after it drops the ones still queued: they never reach us.  So every
 * such object is listed, and ops_free_open_files() frees the rest at exit.
 */
struct fh {
	struct fh *prev, *next;
	void (*free_fn)(struct fh *);
};
static struct fh fh_all = { &fh_all, &fh_all, NULL };
static pthread_mutex_t fh_lock = PTHREAD_MUTEX_INITIALIZER;

static void fh_add(struct fh *h, void (*free_fn)(struct fh *))
{
	h->free_fn = free_fn;
	pthread_mutex_lock(&fh_lock);
	h->next = &fh_all;
	h->prev = fh_all.prev;
	fh_all.prev->next = h;
	fh_all.prev = h;
	pthread_mutex_unlock(&fh_lock);
}

/* Unlist and free h (NULL is fine). */
static void fh_free(struct fh *h)
{
	if (!h)
		return;
	pthread_mutex_lock(&fh_lock);
	h->prev->next = h->next;
	h->next->prev = h->prev;
	pthread_mutex_unlock(&fh_lock);
	h->free_fn(h);
}

struct listing;
static void listing_put_locked(struct listing *l);
static struct listing *last_listing;

void ops_free_open_files(void)
{
	while (fh_all.next != &fh_all)
		fh_free(fh_all.next);
	listing_put_locked(last_listing);
	last_listing = NULL;
}

static void free_plain(struct fh *h)
{
	free(h);
}

/* An open NAME.notify file. */
/* An open data or .notify file (.wait files are struct wfile). */
struct nfile {
	struct fh fh; /* first */
	uid_t uid;    /* the opener's (cred_files_take) */
	int used;     /* .notify: wrote at least once */
};

static int data_direct_io; /* libfuse >= 3.16: direct_io with shared mmap */

static void zfs_init(void *userdata, struct fuse_conn_info *conn)
{
	(void)userdata;
	/* An atomic O_TRUNC open makes the kernel drop the data file's page
	 * cache, dirty mmap pages included; a plain SETATTR (ignored) does
	 * not. */
	conn->want &= ~FUSE_CAP_ATOMIC_O_TRUNC;
	conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
#ifdef FUSE_CAP_DIRECT_IO_ALLOW_MMAP
	if (conn->capable & FUSE_CAP_DIRECT_IO_ALLOW_MMAP) {
		conn->want |= FUSE_CAP_DIRECT_IO_ALLOW_MMAP;
		data_direct_io = 1;
	}
#endif
	/* The kernel splits a larger write(2) into FUSE writes of at most
	 * this many bytes: to NAME.notify, one notification each (zincfs(8)). */
	log_info("max_write %u", conn->max_write);
	/* READ replies spliced from the shm object (zfs_read), in READs
	 * as large as the splice pipe takes (-o max_read, main.c). */
	if (conn->capable & FUSE_CAP_SPLICE_WRITE)
		conn->want |= FUSE_CAP_SPLICE_WRITE;
	conn->max_read = zfs_cfg.max_read;
	log_info("max_read %u, max_readahead %u", conn->max_read, conn->max_readahead);
}

static int root_stat(struct stat *st)
{
	if (stat(zfs_cfg.shm_dir, st) < 0)
		return -errno;
	st->st_ino = ROOT_INO;
	st->st_nlink = 2;
	return 0;
}

/* .events: read-only for all, owned like the directory. */
static int events_stat(struct stat *st)
{
	int rc = root_stat(st);
	if (rc)
		return rc;
	st->st_ino = EVENTS_INO;
	st->st_mode = S_IFREG | 0444;
	st->st_nlink = 1;
	st->st_size = 0;
	st->st_blocks = 0;
	return 0;
}

/*
 * Handlers drop their ref on a region before they reply: the caller may act
 * on the reply at once, and a ref still held then would make its next
 * request see zincfs busy (a resize right after creation gives EBUSY while
 * others use the region).  Whatever the reply path still needs is kept alive
 * by the open or lookup counts.
 */

/* Reply with r's attributes and drop the ref. */
static void reply_attr_put(fuse_req_t req, struct region *r, int kind)
{
	struct stat st;
	int rc = region_stat(r, kind, &st);
	region_put(r);
	if (rc)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_attr(req, &st, TIMEOUT);
}

static void fill_entry(struct fuse_entry_param *e, struct region *r, int kind)
{
	memset(e, 0, sizeof(*e));
	e->ino = INO(r->slot, kind);
	e->attr_timeout = TIMEOUT;
	e->entry_timeout = TIMEOUT;
	region_stat(r, kind, &e->attr);
}

/*
 * The kind (K_*) of a file name in our only directory, its region's name
 * in base; or -ENOTDIR for any other parent and -bad for a name that is
 * no region's file.
 */
static int root_name(fuse_ino_t parent, const char *name,
		     char base[ZINC_NAME_MAX + 1], int bad)
{
	if (parent != ROOT_INO)
		return -ENOTDIR;
	int kind = parse_name(name, base);
	return kind < 0 ? -bad : kind;
}

static void zfs_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	char base[ZINC_NAME_MAX + 1];
	struct fuse_entry_param e;
	struct region *r;
	if (parent == ROOT_INO && strcmp(name, EVENTS_NAME) == 0) {
		memset(&e, 0, sizeof(e));
		e.ino = EVENTS_INO;
		e.attr_timeout = e.entry_timeout = TIMEOUT;
		int rc = events_stat(&e.attr);
		if (rc)
			fuse_reply_err(req, -rc);
		else
			fuse_reply_entry(req, &e);
		return;
	}
	int kind = root_name(parent, name, base, ENOENT);
	if (kind < 0) {
		fuse_reply_err(req, -kind);
		return;
	}
	int rc = region_lookup(base, &r);
	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	fill_entry(&e, r, kind);
	LOCK();
	r->nlookup[kind]++;
	region_put_locked(r);
	UNLOCK();
	fuse_reply_entry(req, &e);
}

static void zfs_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	if (ino != ROOT_INO)
		region_forget(ino, nlookup);
	fuse_reply_none(req);
}

static void zfs_forget_multi(fuse_req_t req, size_t count,
			     struct fuse_forget_data *forgets)
{
	for (size_t i = 0; i < count; i++)
		if (forgets[i].ino != ROOT_INO)
			region_forget(forgets[i].ino, forgets[i].nlookup);
	fuse_reply_none(req);
}

/* ino's region (a reference), or NULL after answering ESTALE (it is gone)
 * or why its handle cannot be opened now (EMFILE...).  ESTALE, not ENOENT:
 * the kernel then looks the name up again (open, stat, chmod... retry once)
 * and finds the region now under it, or none (ENOENT, or a create for
 * O_CREAT), as on a local file system. */
static struct region *region_or_estale(fuse_req_t req, fuse_ino_t ino)
{
	struct region *r = region_get(ino);
	if (!r)
		fuse_reply_err(req, errno == ENOENT ? ESTALE : errno);
	return r;
}

/*
 * Could the caller of req open r's object with access acc directly?  The
 * kernel checked the attributes it cached (up to TIMEOUT old, and those of
 * the region the name had then); this asks the kernel about the object we
 * serve, now, with the caller's identity.  0 or -errno.
 */
static int caller_may_open(fuse_req_t req, struct region *r, int acc)
{
	struct cred_saved cs;
	int rc = cred_enter(req, &cs);
	if (!rc)
		rc = cred_may_open(zinc_fd(r->h), acc, r->dev, r->ino);
	if ((rc == -EMFILE || rc == -ENFILE) && regions_drop_idle() > 0)
		rc = cred_may_open(zinc_fd(r->h), acc, r->dev, r->ino);
	cred_leave(&cs);
	return rc;
}

static void zfs_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)fi;
	struct stat st;
	if (ino == ROOT_INO || ino == EVENTS_INO) {
		int rc = ino == ROOT_INO ? root_stat(&st) : events_stat(&st);
		if (rc)
			fuse_reply_err(req, -rc);
		else
			fuse_reply_attr(req, &st, TIMEOUT);
		return;
	}
	struct region *r = region_or_estale(req, ino);
	if (!r)
		return;
	reply_attr_put(req, r, INO_KIND(ino));
}

/* As the caller (see zfs_setattr). */
static int set_data_attrs(struct region *r, struct stat *attr, int to_set,
			  struct fuse_file_info *fi)
{
	int fd = zinc_fd(r->h);
	if (to_set & FUSE_SET_ATTR_SIZE) {
		uint64_t size = (uint64_t)attr->st_size;
		/* Like a device: truncating to 0 or to the same size is a
		 * no-op, so `echo hi > NAME` just writes. */
		if (size != 0 && size != zinc_capacity(r->h)) {
			LOCK();
			int rc = region_resize_locked(r, size, fi ? 1 : 0);
			UNLOCK();
			if (rc)
				return rc;
		}
	}
	if ((to_set & FUSE_SET_ATTR_MODE) && fchmod(fd, attr->st_mode & 07777) < 0)
		return -errno;
	if ((to_set & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)) &&
	    fchown(fd, (to_set & FUSE_SET_ATTR_UID) ? attr->st_uid : (uid_t)-1,
		   (to_set & FUSE_SET_ATTR_GID) ? attr->st_gid : (gid_t)-1) < 0)
		return -errno;
	return 0; /* times: ignored */
}

static void zfs_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr,
			int to_set, struct fuse_file_info *fi)
{
	if (ino == ROOT_INO || ino == EVENTS_INO) {
		fuse_reply_err(req, EPERM);
		return;
	}
	struct region *r = region_or_estale(req, ino);
	if (!r)
		return;
	int kind = INO_KIND(ino), rc = 0;
	if (kind == K_DATA) {
		/* The owner may chmod, the kernel decides (on the object, not
		 * on attributes it cached); a resize replaces the object, and
		 * so needs what removing it needs. */
		struct cred_saved cs;
		rc = cred_enter(req, &cs);
		if (!rc)
			rc = set_data_attrs(r, attr, to_set, fi);
		cred_leave(&cs);
	} else if (to_set & (FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)) {
		rc = -EPERM; /* control files follow the data file */
	}
	/* Times on .notify are ignored: `touch` notifies when it closes. */
	if (rc) {
		region_put(r);
		fuse_reply_err(req, -rc);
	} else {
		reply_attr_put(req, r, kind);
	}
}

/* Let go of an open file of ino: its count, its region, its state.  Its
 * region (a reference, for a .notify file never written to), or NULL. */
static struct region *file_closed(fuse_ino_t ino, struct fuse_file_info *fi)
{
	int kind = INO_KIND(ino);
	if (ino == EVENTS_INO) {
		cred_files_give(events_release((struct efile *)(uintptr_t)fi->fh));
		return NULL;
	}
	if (kind == K_WAIT) {
		struct wfile *wf = (struct wfile *)(uintptr_t)fi->fh;
		cred_files_give(wf->uid);
		wfile_release(wf);
		return NULL;
	}
	struct nfile *nf = (struct nfile *)(uintptr_t)fi->fh;
	int notify = kind == K_NOTIFY && !nf->used;
	cred_files_give(nf->uid);
	fh_free(&nf->fh);
	struct region *r = region_get(ino);
	if (!r)
		return NULL;
	LOCK();
	region_closed_locked(r, kind);
	if (!notify) {
		region_put_locked(r);
		r = NULL;
	}
	UNLOCK();
	return r;
}

/* An open of .events: read-only, counted like every open file; the
 * first one starts watching every region (events_open). */
static void events_file_open(fuse_req_t req, struct fuse_file_info *fi)
{
	if ((fi->flags & O_ACCMODE) != O_RDONLY) {
		fuse_reply_err(req, EACCES);
		return;
	}
	uid_t uid = fuse_req_ctx(req)->uid;
	int rc = cred_files_take(uid);
	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	struct efile *ef = events_open(req);
	if (!ef) {
		cred_files_give(uid);
		fuse_reply_err(req, errno);
		return;
	}
	fi->fh = (uintptr_t)ef;
	fi->direct_io = 1; /* seekable, offsets ignored: GNU head seeks back */
	fi->keep_cache = 0;
	if (fuse_reply_open(req, fi) != 0) /* the opener is gone */
		file_closed(EVENTS_INO, fi);
}

static void zfs_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	zfs_read_ahead_once(); /* before anything is read */
	if (ino == ROOT_INO) {
		fuse_reply_err(req, EISDIR);
		return;
	}
	if (ino == EVENTS_INO) {
		events_file_open(req, fi);
		return;
	}
	struct region *r = region_or_estale(req, ino);
	if (!r)
		return;
	int kind = INO_KIND(ino), acc = fi->flags & O_ACCMODE;
	if ((kind == K_NOTIFY && acc != O_WRONLY) || (kind == K_WAIT && acc != O_RDONLY))
		goto denied;
	int rc = caller_may_open(req, r, acc);
	if (rc) {
		fuse_reply_err(req, -rc);
		region_put(r);
		return;
	}
	uid_t uid = fuse_req_ctx(req)->uid;
	rc = cred_files_take(uid);
	if (rc) {
		fuse_reply_err(req, -rc);
		region_put(r);
		return;
	}
	fi->keep_cache = 0;
	fi->direct_io = kind == K_DATA ? data_direct_io : 1;
	if (kind == K_WAIT) {
		struct wfile *wf = wfile_open(r);
		if (wf)
			wf->uid = uid;
		fi->fh = (uintptr_t)wf;
	} else {
		struct nfile *nf = calloc(1, sizeof(*nf));
		if (nf) {
			nf->uid = uid;
			fh_add(&nf->fh, free_plain);
			LOCK();
			region_opened_locked(r, kind);
			UNLOCK();
		}
		fi->fh = (uintptr_t)nf;
	}
	region_put(r); /* the open file keeps r */
	if (!fi->fh) {
		cred_files_give(uid);
		fuse_reply_err(req, ENOMEM);
	} else if (fuse_reply_open(req, fi) != 0) {
		/* The opener is gone (interrupted): no release will come. */
		if ((r = file_closed(ino, fi)))
			region_put(r);
	}
	return;
denied:
	/* .wait is read-only and .notify write-only, even for root. */
	fuse_reply_err(req, EACCES);
	region_put(r);
}

static void zfs_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	/*
	 * A write of zero bytes never reaches a FUSE daemon, so
	 * `echo -n "" > X.notify` and `touch X.notify` are an open and a
	 * close: an open .notify file closed without any write notifies once,
	 * at its last close (release; flush would count dup2+close of shell
	 * redirections).
	 */
	struct region *r = file_closed(ino, fi);
	if (r)
		notify_request(req, r, 0, 1); /* takes our ref, replies */
	else
		fuse_reply_err(req, 0);
}

static void zfs_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		     struct fuse_file_info *fi)
{
	int kind = INO_KIND(ino);
	if (ino == EVENTS_INO) {
		events_read(req, (struct efile *)(uintptr_t)fi->fh, size,
			    (fi->flags & O_NONBLOCK) != 0);
		return;
	}
	if (kind == K_WAIT) {
		wait_read(req, (struct wfile *)(uintptr_t)fi->fh, size,
			  (fi->flags & O_NONBLOCK) != 0);
		return;
	}
	if (kind != K_DATA) {
		fuse_reply_err(req, EBADF);
		return;
	}
	struct region *r = region_or_estale(req, ino);
	if (!r)
		return;
	uint64_t cap = zinc_capacity(r->h);
	if (off < 0 || (uint64_t)off >= cap) {
		region_put(r);
		fuse_reply_buf(req, NULL, 0);
		return;
	}
	size_t n = size < cap - (uint64_t)off ? size : (size_t)(cap - (uint64_t)off);
	/*
	 * Zero-copy: libfuse splices the bytes from the shm object through
	 * its worker's pipe into the kernel's pages (one copy, no pass
	 * through our memory).  A truncated object gives a short read, not
	 * SIGBUS, as with pread.  Our own descriptor: the region's may be
	 * closed (a resize) once we drop our ref, which we must before the
	 * reply (see above).  Without one to spare: pread into a buffer.
	 */
	int fd = fcntl(zinc_fd(r->h), F_DUPFD_CLOEXEC, 0);
	if (fd >= 0) {
		region_put(r);
		struct fuse_bufvec bv = FUSE_BUFVEC_INIT(n);
		bv.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
		bv.buf[0].fd = fd;
		bv.buf[0].pos = (off_t)zinc_data_offset() + off;
		/* Not FUSE_BUF_SPLICE_MOVE: the kernel would try to steal
		 * the shm object's own pages. */
		fuse_reply_data(req, &bv, 0);
		close(fd);
		return;
	}
	char *buf = malloc(n ? n : 1);
	ssize_t got = buf ? pread(zinc_fd(r->h), buf, n, (off_t)zinc_data_offset() + off) : -1;
	int err = got < 0 ? (buf ? errno : ENOMEM) : 0;
	region_put(r);
	if (err)
		fuse_reply_err(req, err);
	else
		fuse_reply_buf(req, buf, (size_t)got);
	free(buf);
}

static void zfs_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size,
		      off_t off, struct fuse_file_info *fi)
{
	int kind = INO_KIND(ino);
	if (kind == K_WAIT || ino == EVENTS_INO) {
		fuse_reply_err(req, EBADF);
		return;
	}
	struct region *r = region_or_estale(req, ino);
	if (!r)
		return;
	if (kind == K_NOTIFY) {
		struct nfile *nf = (struct nfile *)(uintptr_t)fi->fh;
		__atomic_store_n(&nf->used, 1, __ATOMIC_RELAXED); /* see release */
		notify_request(req, r, size, 0); /* one notify; takes our ref */
		return;
	} else {
		uint64_t cap = zinc_capacity(r->h);
		if (size == 0) {
			fuse_reply_write(req, 0);
		} else if (off < 0 || (uint64_t)off >= cap) {
			fuse_reply_err(req, ENOSPC); /* the file never grows */
		} else {
			size_t n = size < cap - (uint64_t)off ? size
							       : (size_t)(cap - (uint64_t)off);
			ssize_t put = pwrite(zinc_fd(r->h), buf, n,
					     (off_t)zinc_data_offset() + off);
			int err = put < 0 ? errno : 0;
			region_put(r);
			if (err)
				fuse_reply_err(req, err);
			else
				fuse_reply_write(req, (size_t)put);
			return;
		}
	}
	region_put(r);
}

static void zfs_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	(void)fi;
	fuse_reply_err(req, 0);
}

static void zfs_fsync(fuse_req_t req, fuse_ino_t ino, int datasync,
		      struct fuse_file_info *fi)
{
	(void)ino;
	(void)datasync;
	(void)fi;
	fuse_reply_err(req, 0); /* it is memory */
}

static void zfs_poll(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi,
		     struct fuse_pollhandle *ph)
{
	if (ino == EVENTS_INO) {
		events_poll(req, (struct efile *)(uintptr_t)fi->fh, ph);
		return;
	}
	if (INO_KIND(ino) == K_WAIT) {
		wait_poll(req, (struct wfile *)(uintptr_t)fi->fh, ph);
		return;
	}
	if (ph)
		fuse_pollhandle_destroy(ph);
	fuse_reply_poll(req, POLLIN | POLLOUT | POLLRDNORM | POLLWRNORM);
}

/* ---- creating and removing regions ---- */

/*
 * Create region NAME as the caller (region_create).  A name that is taken
 * (a live region, or an object the caller may not replace) is opened the way
 * open(2) would: only if it is a region that the caller could open with the
 * requested access.  While others create and remove the name, we try again
 * a few times and then give EBUSY, never EEXIST: that is only for O_EXCL and
 * for a name held by an object that is no region.
 */
#define CREATE_TRIES 8

static int create_common(fuse_req_t req, fuse_ino_t parent, const char *name,
			 mode_t mode, int flags, struct region **out)
{
	char base[ZINC_NAME_MAX + 1];
	int kind = root_name(parent, name, base, EINVAL);
	if (kind < 0)
		return kind;
	if (kind != K_DATA)
		return -EPERM; /* control files come with their region */
	for (int i = 0;; i++) {
		int rc = region_create(req, base, mode, out);
		if (rc != -EEXIST && rc != -EACCES && rc != -EPERM)
			return rc;
		int lrc = region_lookup(base, out);
		if (lrc == 0) {
			lrc = (flags & O_EXCL) ? -EEXIST
					       : caller_may_open(req, *out, flags & O_ACCMODE);
			if (lrc)
				region_put(*out);
			return lrc;
		}
		if (lrc != -ENOENT)
			return lrc;
		/* No region there: an object that is none (a directory, a
		 * FIFO, garbage) holds the name, or it was removed meanwhile. */
		struct stat st;
		if (rc == -EEXIST && object_check(base, &st) == -EBADMSG)
			return -EEXIST;
		if (i == CREATE_TRIES)
			return rc == -EEXIST ? -EBUSY : -EACCES;
	}
}

static void zfs_create(fuse_req_t req, fuse_ino_t parent, const char *name,
		       mode_t mode, struct fuse_file_info *fi)
{
	zfs_read_ahead_once(); /* before anything is read */
	struct region *r;
	struct fuse_entry_param e;
	struct nfile *nf = calloc(1, sizeof(*nf));
	int rc = nf ? cred_files_take(fuse_req_ctx(req)->uid) : -ENOMEM;
	if (!rc) {
		nf->uid = fuse_req_ctx(req)->uid;
		rc = create_common(req, parent, name, mode, fi->flags, &r);
		if (rc)
			cred_files_give(nf->uid);
	}
	if (rc) {
		free(nf);
		fuse_reply_err(req, -rc);
		return;
	}
	fh_add(&nf->fh, free_plain);
	fi->fh = (uintptr_t)nf;
	fill_entry(&e, r, K_DATA);
	fi->keep_cache = 0;
	fi->direct_io = data_direct_io;
	LOCK();
	r->nlookup[K_DATA]++;
	region_opened_locked(r, K_DATA);
	region_put_locked(r); /* the lookup and the open file keep r */
	UNLOCK();
	if (fuse_reply_create(req, &e, fi) != 0) {
		LOCK();
		r->nlookup[K_DATA]--;
		UNLOCK();
		file_closed(e.ino, fi); /* a data file: returns NULL */
	}
}

static void zfs_mknod(fuse_req_t req, fuse_ino_t parent, const char *name,
		      mode_t mode, dev_t rdev)
{
	(void)rdev;
	struct region *r;
	struct fuse_entry_param e;
	if (!S_ISREG(mode)) {
		fuse_reply_err(req, EPERM);
		return;
	}
	int rc = create_common(req, parent, name, mode, O_EXCL, &r);
	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	fill_entry(&e, r, K_DATA);
	LOCK();
	r->nlookup[K_DATA]++;
	region_put_locked(r); /* the lookup keeps r */
	UNLOCK();
	if (fuse_reply_entry(req, &e) != 0)
		region_forget(e.ino, 1);
}

static void zfs_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	char base[ZINC_NAME_MAX + 1];
	int kind = root_name(parent, name, base, ENOENT);
	if (parent == ROOT_INO && strcmp(name, EVENTS_NAME) == 0)
		kind = K_NOTIFY; /* .events stays too */
	if (kind < 0) {
		fuse_reply_err(req, -kind);
		return;
	}
	if (kind != K_DATA) {
		fuse_reply_err(req, EPERM); /* rm the region, not its controls */
		return;
	}
	/* As the caller: the kernel decides on the very object (the sticky
	 * bit of /dev/shm), not on attributes it cached a moment ago. */
	struct cred_saved cs;
	int rc = cred_enter(req, &cs);
	if (!rc)
		rc = zinc_unlink(base);
	cred_leave(&cs);
	if (rc) {
		fuse_reply_err(req, rc == -EPERM ? EACCES : -rc);
		return;
	}
	LOCK();
	struct region *r = region_by_name_locked(base);
	if (r)
		region_check_locked(r); /* marks it gone: waiters get EIDRM */
	UNLOCK();
	fuse_reply_err(req, 0);
}

static void zfs_eperm_name(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	(void)parent;
	(void)name;
	fuse_reply_err(req, EPERM);
}

static void zfs_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	(void)mode;
	zfs_eperm_name(req, parent, name);
}

static void zfs_symlink(fuse_req_t req, const char *link, fuse_ino_t parent,
			const char *name)
{
	(void)link;
	zfs_eperm_name(req, parent, name);
}

static void zfs_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t parent,
		     const char *name)
{
	(void)ino;
	zfs_eperm_name(req, parent, name);
}

static void zfs_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
		       fuse_ino_t newparent, const char *newname, unsigned int flags)
{
	(void)newparent;
	(void)newname;
	(void)flags;
	zfs_eperm_name(req, parent, name);
}

/* ---- the directory ---- */

/*
 * A directory handle reads a listing made at opendir.  Listings are shared:
 * an opendir reuses the last one while the directory has not changed since
 * (its mtime), for at most LISTING_TTL_MS (an object can turn valid without
 * any change to the directory), and while every object then was judged
 * (none was half-made).  A user holding many directory handles over a big
 * directory then costs one listing, not one per handle; and while older
 * listings held take more than LISTINGS_MAX bytes (a user changing the
 * directory between opendirs), an opendir that needs a new one fails with
 * ENOMEM rather than serve an old one.
 */
#define LISTING_TTL_MS 1000
#define LISTINGS_MAX (8u << 20)

struct listing {
	int refs;                 /* directory handles (and `last`) */
	int reusable;
	struct timespec mtime;    /* of the directory when it was read */
	struct timespec made;     /* CLOCK_MONOTONIC */
	size_t n, cap, bytes;
	fuse_ino_t *base;         /* per entry: inode base */
	uint32_t *off;            /* per entry: name offset in names */
	char *names;
	size_t names_len, names_cap;
};
struct dirsnap {
	struct fh fh; /* first */
	struct listing *l;
};

static pthread_mutex_t listing_lock = PTHREAD_MUTEX_INITIALIZER;
static size_t listings_bytes;

static void listing_free(struct listing *l)
{
	free(l->base);
	free(l->off);
	free(l->names);
	free(l);
}

static void listing_put_locked(struct listing *l)
{
	if (!l || --l->refs)
		return;
	listings_bytes -= l->bytes;
	listing_free(l);
}

static void free_dirsnap(struct fh *h)
{
	struct dirsnap *d = (struct dirsnap *)h;
	pthread_mutex_lock(&listing_lock);
	listing_put_locked(d->l);
	pthread_mutex_unlock(&listing_lock);
	free(d);
}

static int grow(void **p, size_t *cap, size_t need, size_t size)
{
	if (need <= *cap)
		return 0;
	size_t n = *cap ? *cap : 64;
	while (n < need)
		n *= 2;
	void *v = realloc(*p, n * size);
	if (!v)
		return -ENOMEM;
	*p = v;
	*cap = n;
	return 0;
}

static int listing_add(struct listing *l, const char *name)
{
	size_t len = strlen(name) + 1, cap = l->cap;
	if (grow((void **)&l->names, &l->names_cap, l->names_len + len, 1) ||
	    grow((void **)&l->base, &cap, l->n + 1, sizeof(*l->base)) ||
	    grow((void **)&l->off, &l->cap, l->n + 1, sizeof(*l->off)))
		return -ENOMEM;
	memcpy(l->names + l->names_len, name, len);
	l->off[l->n] = (uint32_t)l->names_len;
	l->names_len += len;
	LOCK();
	region_slot_ino(name, &l->base[l->n]);
	UNLOCK();
	l->n++;
	return 0;
}

/* Read the region directory into a new listing (refs 1), or NULL with
 * errno set. */
static struct listing *listing_read(const struct stat *dst)
{
	struct listing *l = calloc(1, sizeof(*l));
	DIR *dir = l ? opendir(zfs_cfg.shm_dir) : NULL;
	if (!dir) {
		int e = l ? errno : ENOMEM;
		free(l);
		errno = e;
		return NULL;
	}
	l->refs = 1;
	l->mtime = dst->st_mtim;
	clock_gettime(CLOCK_MONOTONIC, &l->made);
	/* A change within the clock's granularity of the last one may leave
	 * the mtime as it is: only a directory quiet for a while is judged
	 * unchanged by its mtime. */
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	l->reusable = now.tv_sec - l->mtime.tv_sec > 1 ||
		      (now.tv_sec - l->mtime.tv_sec) * 1000000000L +
				      (now.tv_nsec - l->mtime.tv_nsec) > 50000000L;
	const size_t plen = strlen(ZINC_OBJECT_PREFIX);
	struct dirent *de;
	struct stat st;
	int rc = 0;
	/* Only what libzinc would open: validated without mapping. */
	while ((de = readdir(dir))) {
		const char *name = de->d_name + plen;
		if (strncmp(de->d_name, ZINC_OBJECT_PREFIX, plen) ||
		    !zinc__valid_name(name))
			continue;
		rc = object_check(name, &st);
		if (rc == 0)
			rc = listing_add(l, name);
		else if (rc == -EAGAIN)
			l->reusable = 0; /* it may be a region in a moment */
		if (rc == -EMFILE || rc == -ENFILE || rc == -ENOMEM)
			break; /* no partial listings */
		rc = 0;
	}
	closedir(dir);
	if (rc) {
		listing_free(l);
		errno = -rc;
		return NULL;
	}
	l->bytes = sizeof(*l) + l->cap * (sizeof(*l->base) + sizeof(*l->off)) +
		   l->names_cap;
	return l;
}

static int listing_fresh(const struct listing *l, const struct stat *dst)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	long ms = (now.tv_sec - l->made.tv_sec) * 1000 +
		  (now.tv_nsec - l->made.tv_nsec) / 1000000;
	return l->reusable && ms < LISTING_TTL_MS &&
	       l->mtime.tv_sec == dst->st_mtim.tv_sec &&
	       l->mtime.tv_nsec == dst->st_mtim.tv_nsec;
}

/* The listing for a new directory handle (a ref), or NULL with errno. */
static struct listing *listing_get(void)
{
	struct stat dst;
	if (stat(zfs_cfg.shm_dir, &dst) < 0)
		return NULL;
	struct listing *l = NULL;
	pthread_mutex_lock(&listing_lock);
	/* The last one is freed when replaced, unless handles hold it. */
	int full = listings_bytes - (last_listing ? last_listing->bytes : 0) > LISTINGS_MAX;
	if (last_listing && listing_fresh(last_listing, &dst)) {
		l = last_listing;
		l->refs++;
	}
	pthread_mutex_unlock(&listing_lock);
	if (!l && full)
		errno = ENOMEM;
	if (l || full)
		return l;
	l = listing_read(&dst);
	if (!l && (errno == EMFILE || errno == ENFILE) && regions_drop_idle() > 0)
		l = listing_read(&dst);
	if (!l)
		return NULL;
	pthread_mutex_lock(&listing_lock);
	listings_bytes += l->bytes;
	listing_put_locked(last_listing);
	last_listing = l;
	l->refs++;
	pthread_mutex_unlock(&listing_lock);
	return l;
}

static void zfs_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	if (ino != ROOT_INO) {
		fuse_reply_err(req, ENOTDIR);
		return;
	}
	struct dirsnap *d = calloc(1, sizeof(*d));
	if (!d || !(d->l = listing_get())) {
		int e = d ? errno : ENOMEM;
		free(d);
		fuse_reply_err(req, e);
		return;
	}
	fh_add(&d->fh, free_dirsnap);
	fi->fh = (uintptr_t)d;
	if (fuse_reply_open(req, fi) != 0)
		fh_free(&d->fh);
}

static void zfs_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			struct fuse_file_info *fi)
{
	(void)ino;
	static const char *const sfx[] = { "", ".notify", ".wait" };
	const struct listing *l = ((struct dirsnap *)(uintptr_t)fi->fh)->l;
	char *buf = malloc(size);
	char name[ZINC_NAME_MAX + 16];
	size_t used = 0;
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	size_t total = 3 + 3 * l->n;
	for (size_t i = off < 0 ? 0 : (size_t)off; i < total; i++) {
		struct stat st = { 0 };
		if (i < 2) {
			snprintf(name, sizeof(name), "%s", i ? ".." : ".");
			st.st_ino = ROOT_INO;
			st.st_mode = S_IFDIR;
		} else if (i == 2) {
			snprintf(name, sizeof(name), "%s", EVENTS_NAME);
			st.st_ino = EVENTS_INO;
			st.st_mode = S_IFREG;
		} else {
			size_t e = (i - 3) / 3;
			int kind = (int)((i - 3) % 3);
			snprintf(name, sizeof(name), "%s%s", l->names + l->off[e], sfx[kind]);
			st.st_ino = l->base[e] + (fuse_ino_t)kind;
			st.st_mode = S_IFREG;
		}
		size_t need = fuse_add_direntry(req, buf + used, size - used, name,
						&st, (off_t)(i + 1));
		if (need > size - used)
			break;
		used += need;
	}
	fuse_reply_buf(req, buf, used);
	free(buf);
}

static void zfs_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	struct dirsnap *d = (struct dirsnap *)(uintptr_t)fi->fh;
	fh_free(d ? &d->fh : NULL);
	fuse_reply_err(req, 0);
}

static void zfs_statfs(fuse_req_t req, fuse_ino_t ino)
{
	(void)ino;
	struct statvfs sv;
	if (statvfs(zfs_cfg.shm_dir, &sv) < 0)
		fuse_reply_err(req, errno);
	else
		fuse_reply_statfs(req, &sv);
}

/* ---- xattrs: the header's facts, read-only ---- */

static const char *const xattr_names[] = {
	"user.zinc.seq", "user.zinc.capacity", "user.zinc.refs",
	"user.zinc.owner_pid", "user.zinc.created_at",
};
#define NXATTR (sizeof(xattr_names) / sizeof(xattr_names[0]))

static void zfs_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	struct zinc_info info;
	char val[32];
	size_t i;
	for (i = 0; i < NXATTR; i++)
		if (strcmp(name, xattr_names[i]) == 0)
			break;
	if (ino == ROOT_INO || INO_KIND(ino) != K_DATA || i == NXATTR) {
		fuse_reply_err(req, ENODATA);
		return;
	}
	struct region *r = region_or_estale(req, ino);
	if (!r)
		return;
	volatile int rc;
	GUARDED(rc = zinc_handle_stat(r->h, &info), rc = -EIO);
	LOCK();
	if (rc == -EIO)
		region_check_locked(r); /* truncated underneath */
	region_put_locked(r);
	UNLOCK();
	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	unsigned long long v[NXATTR] = { info.seq, info.capacity, info.ref_count,
					  (unsigned long long)(long long)info.owner_pid,
					  info.created_at };
	int n = i == 3 ? snprintf(val, sizeof(val), "%d", info.owner_pid)
		       : snprintf(val, sizeof(val), "%llu", v[i]);
	if (size == 0)
		fuse_reply_xattr(req, (size_t)n);
	else if (size < (size_t)n)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, val, (size_t)n);
}

static void zfs_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	char list[256];
	size_t len = 0;
	if (ino != ROOT_INO && INO_KIND(ino) == K_DATA)
		for (size_t i = 0; i < NXATTR; i++) {
			size_t l = strlen(xattr_names[i]) + 1;
			memcpy(list + len, xattr_names[i], l);
			len += l;
		}
	if (size == 0)
		fuse_reply_xattr(req, len);
	else if (size < len)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, list, len);
}

static void zfs_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
			 const char *value, size_t size, int flags)
{
	(void)ino;
	(void)value;
	(void)size;
	(void)flags;
	fuse_reply_err(req, strncmp(name, "user.zinc.", 10) ? ENOTSUP : EPERM);
}

static void zfs_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	zfs_setxattr(req, ino, name, NULL, 0, 0);
}

const struct fuse_lowlevel_ops zfs_ops = {
	.init = zfs_init,
	.lookup = zfs_lookup,
	.forget = zfs_forget,
	.forget_multi = zfs_forget_multi,
	.getattr = zfs_getattr,
	.setattr = zfs_setattr,
	.mknod = zfs_mknod,
	.mkdir = zfs_mkdir,
	.unlink = zfs_unlink,
	.rmdir = zfs_eperm_name,
	.symlink = zfs_symlink,
	.rename = zfs_rename,
	.link = zfs_link,
	.open = zfs_open,
	.read = zfs_read,
	.write = zfs_write,
	.flush = zfs_flush,
	.release = zfs_release,
	.fsync = zfs_fsync,
	.opendir = zfs_opendir,
	.readdir = zfs_readdir,
	.releasedir = zfs_releasedir,
	.statfs = zfs_statfs,
	.setxattr = zfs_setxattr,
	.getxattr = zfs_getxattr,
	.listxattr = zfs_listxattr,
	.removexattr = zfs_removexattr,
	.create = zfs_create,
	.poll = zfs_poll,
};
