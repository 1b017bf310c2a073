/* SPDX-License-Identifier: MIT */
/*
 * Acting as the caller: a worker thread takes the filesystem identity of the
 * process behind a FUSE request (fsuid, fsgid, supplementary groups) for the
 * calls that create, open, remove or change an object, so the kernel applies
 * the object's mode and the directory's sticky bit to the caller, not to us
 * (zincfs(8), SECURITY).
 *
 * Per thread only: setfsuid/setfsgid are per-thread system calls, and the
 * groups are set with the raw system call (glibc's setgroups() changes every
 * thread).  Changing fsuid away from 0 drops the filesystem capabilities
 * (CAP_DAC_OVERRIDE, CAP_FOWNER, CAP_CHOWN, ...) from the thread's effective
 * set; changing it back to 0 raises them again.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fsuid.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "zincfs.h"

#define MAX_GROUPS 256 /* more are cut: the caller then has fewer rights */

/* The daemon's own groups, read once by the first caller (every thread has
 * them while it is not acting as someone). */
static gid_t own_groups[MAX_GROUPS];
static int own_ngroups;
static pthread_once_t own_once = PTHREAD_ONCE_INIT;

static void read_own_groups(void)
{
	own_ngroups = getgroups(MAX_GROUPS, own_groups);
	if (own_ngroups < 0)
		own_ngroups = 0;
}

static int set_groups(int n, const gid_t *list)
{
	return syscall(SYS_setgroups, (size_t)n, list) < 0 ? -errno : 0;
}

/* setfsuid/setfsgid report no error: they return the previous value, so a
 * second call with an invalid id reads back what is in effect. */
static int set_fsuid(uid_t uid)
{
	setfsuid(uid);
	return setfsuid((uid_t)-1) == (int)uid ? 0 : -EPERM;
}

static int set_fsgid(gid_t gid)
{
	setfsgid(gid);
	return setfsgid((gid_t)-1) == (int)gid ? 0 : -EPERM;
}

/* Is this thread acting as someone (between become and cred_leave)?  Such
 * spans do not nest: nothing done as a caller enters another identity. */
static __thread bool acting;

/* Save the thread's identity in s; true if uid/gid are it already. */
static bool already(uid_t uid, gid_t gid, struct cred_saved *s)
{
	pthread_once(&own_once, read_own_groups);
	s->fsuid = (uid_t)setfsuid((uid_t)-1);
	s->fsgid = (gid_t)setfsgid((gid_t)-1);
	s->active = 0;
	return uid == s->fsuid && gid == s->fsgid;
}

static int become(uid_t uid, gid_t gid, int n, const gid_t *groups, struct cred_saved *s)
{
	if (acting) { /* a bug: refuse rather than restore the wrong groups */
		log_error("cannot act as uid %u while acting as uid %u", (unsigned)uid,
			  (unsigned)s->fsuid);
		return -EPERM;
	}
	s->active = 1;
	acting = true;
	int rc = set_groups(n, groups);
	if (!rc)
		rc = set_fsgid(gid);
	if (!rc)
		rc = set_fsuid(uid);
	if (rc) {
		log_warn("cannot act as uid %u gid %u: %s", (unsigned)uid,
			 (unsigned)gid, strerror(-rc));
		cred_leave(s);
		return -EPERM;
	}
	return 0;
}

int cred_enter(fuse_req_t req, struct cred_saved *s)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	gid_t groups[MAX_GROUPS];
	/* The daemon's own user and group (root calling a root daemon, or the
	 * user of a mount without allow_other): nothing to change.  Each change
	 * of credentials costs microseconds, reading the groups tens. */
	if (already(ctx->uid, ctx->gid, s))
		return 0;
	/* From /proc/PID/status of the caller; without it (no pid: a caller
	 * in a PID namespace we cannot see), the primary group alone. */
	int n = fuse_req_getgroups(req, MAX_GROUPS, groups);
	if (n < 0) {
		groups[0] = ctx->gid;
		n = 1;
	} else if (n > MAX_GROUPS) {
		n = MAX_GROUPS;
	}
	return become(ctx->uid, ctx->gid, n, groups, s);
}

int cred_enter_ids(uid_t uid, gid_t gid, int ngroups, const gid_t *groups,
		   struct cred_saved *s)
{
	if (already(uid, gid, s))
		return 0;
	return become(uid, gid, ngroups, groups, s);
}

void cred_leave(struct cred_saved *s)
{
	if (!s->active)
		return;
	s->active = 0;
	acting = false;
	/* fsuid first: back at 0 it gives the capabilities back. */
	if (set_fsuid(s->fsuid) || set_fsgid(s->fsgid) ||
	    set_groups(own_ngroups, own_groups)) {
		/* A worker that cannot be itself again must not serve anyone
		 * else with the wrong identity: stop here. */
		log_error("cannot restore the daemon's identity");
		abort();
	}
}

int cred_may_open(int fd, int acc, dev_t dev, ino_t ino)
{
	char proc[64];
	struct stat st;
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	/* The kernel checks acc against the object behind fd for the current
	 * fs identity; /proc lets a thread reopen its own process's fds. */
	int nfd = open(proc, acc | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (nfd < 0)
		return -errno;
	int rc = fstat(nfd, &st) < 0 ? -errno
		 : st.st_dev != dev || st.st_ino != ino ? -ESTALE : 0;
	close(nfd);
	return rc;
}

/* Open files per user: a few users hold files at a time, so a small array. */
static struct user_files { uid_t uid; size_t n; } *users;
static size_t nusers, users_cap;
static pthread_mutex_t users_lock = PTHREAD_MUTEX_INITIALIZER;

static int files_counted(uid_t uid)
{
	return uid != 0 && uid != getuid();
}

int cred_files_take(uid_t uid)
{
	if (!files_counted(uid))
		return 0;
	int rc = 0;
	size_t i;
	pthread_mutex_lock(&users_lock);
	for (i = 0; i < nusers && users[i].uid != uid; i++)
		;
	if (i == nusers) {
		if (nusers == users_cap) {
			size_t cap = users_cap ? 2 * users_cap : 16;
			struct user_files *u = realloc(users, cap * sizeof(*u));
			if (!u) {
				rc = -ENOMEM;
				goto out;
			}
			users = u;
			users_cap = cap;
		}
		users[nusers++] = (struct user_files){ uid, 0 };
	}
	if (users[i].n >= zfs_cfg.user_files) {
		rc = -EMFILE;
		log_warn("uid %u holds %zu open files, the most one user may "
			 "(-o user_files): refused another", (unsigned)uid, users[i].n);
	} else {
		users[i].n++;
	}
out:
	pthread_mutex_unlock(&users_lock);
	return rc;
}

void cred_files_give(uid_t uid)
{
	if (!files_counted(uid))
		return;
	pthread_mutex_lock(&users_lock);
	for (size_t i = 0; i < nusers; i++) {
		if (users[i].uid == uid) {
			if (--users[i].n == 0)
				users[i] = users[--nusers];
			break;
		}
	}
	pthread_mutex_unlock(&users_lock);
}
