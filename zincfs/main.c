/* SPDX-License-Identifier: MIT */
/*
 * zincfs: every libzinc region as files (NAME, NAME.notify, NAME.wait).
 * This file: command line, logging, mount, daemonizing, the loop, exit.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "zincfs.h"

#ifndef ZINCFS_VERSION
#define ZINCFS_VERSION "unknown"
#endif

struct zfs_config zfs_cfg;
struct fuse_session *zfs_se;
static int use_syslog;

/* ---- logging: "zincfs: error: ...", "zincfs: warning: ...", "zincfs: info: ..." ---- */

/*
 * A flood of one kind of message (a user planting thousands of bad objects)
 * must not flood the log: per format string, LOG_BURST lines per LOG_WINDOW
 * seconds; the next line after a window says how many were left out.
 */
#define LOG_BURST 5
#define LOG_WINDOW 10
#define LOG_KINDS 64
static struct log_kind {
	const char *key;        /* the format string */
	time_t start;           /* of the window */
	unsigned printed, dropped;
} log_kinds[LOG_KINDS];
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

/* 1 to print; *dropped, *secs: what to mention as left out before. */
static int log_admit(const char *key, unsigned *dropped, long *secs)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	size_t i = ((uintptr_t)key >> 3) % LOG_KINDS, n;
	pthread_mutex_lock(&log_lock);
	/* Full table: the last slot probed is shared. */
	for (n = 1; n < LOG_KINDS && log_kinds[i].key && log_kinds[i].key != key; n++)
		i = (i + 1) % LOG_KINDS;
	struct log_kind *k = &log_kinds[i];
	if (k->key != key || now.tv_sec - k->start >= LOG_WINDOW) {
		*dropped = k->key ? k->dropped : 0;
		*secs = now.tv_sec - k->start;
		k->key = key;
		k->start = now.tv_sec;
		k->printed = k->dropped = 0;
	} else {
		*dropped = 0;
	}
	int ok = k->printed < LOG_BURST;
	if (ok)
		k->printed++;
	else
		k->dropped++;
	pthread_mutex_unlock(&log_lock);
	return ok;
}

static void vlog(int level, const char *key, const char *fmt, va_list ap)
{
	static const char *const tag[] = { "error: ", "warning: ", "info: " };
	static const int prio[] = { LOG_ERR, LOG_WARNING, LOG_INFO };
	char msg[2048];
	unsigned dropped = 0;
	long secs = 0;
	if (level == LOG_INFO_ && !zfs_cfg.debug)
		return;
	/* Debug output (info) is asked for: all of it. */
	if (level != LOG_INFO_ && !log_admit(key, &dropped, &secs))
		return;
	int len = vsnprintf(msg, sizeof(msg), fmt, ap);
	if (dropped && len >= 0 && (size_t)len < sizeof(msg))
		snprintf(msg + len, sizeof(msg) - (size_t)len,
			 " (%u more like this in the last %lds)", dropped, secs);
	/* One prefixed line per line of text. */
	for (char *line = msg, *next; line && *line; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		if (!*line)
			continue;
		if (use_syslog)
			syslog(prio[level], "%s%s", tag[level], line);
		else
			fprintf(stderr, "zincfs: %s%s\n", tag[level], line);
	}
}

void zfs_log(int level, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vlog(level, fmt, fmt, ap);
	va_end(ap);
}

static void log_key(int level, const char *key, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void log_key(int level, const char *key, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vlog(level, key, fmt, ap);
	va_end(ap);
}

/* At exit: the count of lines left out that no later line mentioned. */
static void log_flush(void)
{
	for (size_t i = 0; i < LOG_KINDS; i++) {
		struct log_kind *k = &log_kinds[i];
		if (k->key && k->dropped)
			log_key(LOG_WARN_, "", "%u more messages like \"%s\" were left out",
				k->dropped, k->key);
	}
}

/* libfuse sometimes builds one line from several calls: collect until the
 * newline. */
static void fuse_log_to_ours(enum fuse_log_level level, const char *fmt, va_list ap)
{
	static __thread char line[2048];
	static __thread size_t len;
	int lvl = level <= FUSE_LOG_ERR ? LOG_ERR_
		  : level == FUSE_LOG_WARNING ? LOG_WARN_ : LOG_INFO_;
	int n = vsnprintf(line + len, sizeof(line) - len, fmt, ap);
	if (n > 0)
		len += (size_t)n < sizeof(line) - len ? (size_t)n : sizeof(line) - len - 1;
	if (len && line[len - 1] != '\n' && len < sizeof(line) - 1)
		return;
	log_key(lvl, "libfuse", "%s", line); /* libfuse's messages: one kind */
	len = 0;
	line[0] = '\0';
}

/* ---- options ---- */

struct zfs_opts {
	char *region_size;
	char *user_files;
	char *max_read;
	char *read_ahead_kb;
	char *shm_dir;
	char *pos[3];
	int npos;
};

enum { KEY_IGNORE };

static const struct fuse_opt zfs_opt_spec[] = {
	{ "region_size=%s", offsetof(struct zfs_opts, region_size), 0 },
	{ "shm_dir=%s", offsetof(struct zfs_opts, shm_dir), 0 },
	{ "user_files=%s", offsetof(struct zfs_opts, user_files), 0 },
	{ "max_read=%s", offsetof(struct zfs_opts, max_read), 0 },
	{ "read_ahead_kb=%s", offsetof(struct zfs_opts, read_ahead_kb), 0 },
	/* fstab/systemd/mount(8) options with no meaning here */
	FUSE_OPT_KEY("_netdev", KEY_IGNORE),
	FUSE_OPT_KEY("nofail", KEY_IGNORE),
	FUSE_OPT_KEY("noauto", KEY_IGNORE),
	FUSE_OPT_KEY("auto", KEY_IGNORE),
	FUSE_OPT_KEY("user", KEY_IGNORE),
	FUSE_OPT_KEY("users", KEY_IGNORE),
	FUSE_OPT_KEY("defaults", KEY_IGNORE),
	FUSE_OPT_KEY("rw", KEY_IGNORE),
	FUSE_OPT_END
};

static int opt_proc(void *data, const char *arg, int key, struct fuse_args *outargs)
{
	(void)outargs;
	struct zfs_opts *o = data;
	switch (key) {
	case KEY_IGNORE:
		return 0;
	case FUSE_OPT_KEY_OPT:
		return strncmp(arg, "x-systemd.", 10) == 0 ? 0 : 1;
	case FUSE_OPT_KEY_NONOPT:
		/* `zincfs MNT`, or `zincfs SOURCE MNT` as mount(8) calls it */
		if (o->npos < 3)
			o->pos[o->npos] = strdup(arg);
		o->npos++;
		return 0;
	}
	return 1;
}

static int parse_size(const char *s, uint64_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s || *s == '-')
		return -1;
	unsigned shift = 0;
	switch (*end) {
	case 'k': case 'K': shift = 10; end++; break;
	case 'm': case 'M': shift = 20; end++; break;
	case 'g': case 'G': shift = 30; end++; break;
	}
	if (*end || v > (UINT64_MAX >> shift))
		return -1;
	*out = (uint64_t)v << shift;
	return 0;
}

static void usage(const char *prog)
{
	printf("usage: %s [options] MOUNTPOINT\n"
	       "       mount -t fuse.zincfs zincfs MOUNTPOINT -o OPTIONS\n\n"
	       "Shows every libzinc region as files NAME, NAME.notify, NAME.wait.\n\n"
	       "zincfs options:\n"
	       "    -o region_size=SIZE    capacity of regions created through the mount\n"
	       "                           (default: one page; K/M/G suffixes; page multiple)\n"
	       "    -o shm_dir=DIR         directory holding the region objects\n"
	       "                           (default: $ZINC_SHM_DIR or /dev/shm)\n"
	       "    -o user_files=N        open files one user other than root may hold\n"
	       "                           (default: a quarter of the file limit)\n"
	       "    -o max_read=SIZE       bytes per FUSE read of a data file, a page\n"
	       "                           multiple up to 1M (default: what fits in a\n"
	       "                           pipe of fs.pipe-max-size, at most 1M)\n"
	       "    -o read_ahead_kb=N     the mount's readahead in KiB, set by root\n"
	       "                           (default: 4 x max_read)\n"
	       "    default_permissions is always on; _netdev, nofail, noauto, auto, user,\n"
	       "    users, defaults, rw and x-systemd.* are accepted and ignored.\n\n",
	       prog);
	fuse_cmdline_help();
	fuse_lowlevel_help();
}

/* ---- daemonizing: our own pipe, so setup errors reach the caller ---- */

static int ready_fd = -1;

static int daemonize_start(void)
{
	int p[2];
	if (pipe(p) < 0) {
		log_error("pipe: %s", strerror(errno));
		return -1;
	}
	pid_t pid = fork();
	if (pid < 0) {
		log_error("fork: %s", strerror(errno));
		return -1;
	}
	if (pid > 0) {
		char status = 1;
		close(p[1]);
		if (read(p[0], &status, 1) != 1)
			status = 1; /* the child died before it was ready */
		_exit(status);
	}
	close(p[0]);
	ready_fd = p[1];
	if (setsid() < 0 || chdir("/") < 0)
		log_warn("setsid/chdir: %s", strerror(errno));
	return 0;
}

static void daemonize_done(char status)
{
	if (ready_fd < 0)
		return;
	if (status == 0) {
		openlog("zincfs", LOG_PID, LOG_DAEMON);
		use_syslog = 1;
		int fd = open("/dev/null", O_RDWR);
		if (fd >= 0) {
			dup2(fd, 0);
			dup2(fd, 1);
			dup2(fd, 2);
			if (fd > 2)
				close(fd);
		}
	}
	if (write(ready_fd, &status, 1) != 1) {
		/* the parent is gone; nothing to tell */
	}
	close(ready_fd);
	ready_fd = -1;
}

/* ---- our mount vanishing from our mount namespace ----
 *
 * The kernel ends the session (the workers read ENODEV) only when the last
 * mount of the file system goes.  A program that copies the mount table
 * into a new mount namespace with private propagation (`unshare --mount
 * --propagation private`, as tests/install does, a sandboxed service...)
 * holds a copy of our mount that `fusermount3 -u` here never reaches: the
 * unmount succeeds and zincfs used to idle on until that namespace died.
 * So the control thread watches /proc/self/mountinfo (POLLPRI on every
 * mount change) and, when no mount of our file system is left in our
 * namespace and the kernel has not ended the session by itself, looks for
 * one in the other namespaces: if there is one, it is such a copy, and
 * zincfs exits as for `fusermount3 -u` (the copy then gives ENOTCONN, as
 * after any daemon exit).  If there is none, it was a lazy unmount
 * (`umount -l`) with files still open: zincfs serves them until the kernel
 * ends the session at the last close, as every FUSE daemon does.
 */

static char mount_dev[32];  /* "major:minor" of our mount; "" if unknown */
static int mount_gone;      /* handled: our mount left our namespace */
static pthread_t main_tid;
static int loop_done;       /* the session loop has returned */
static int exit_requested;  /* we ended the loop: the mount is gone here */

/* "\040" etc. in mountinfo -> bytes, in place. */
static void unescape_octal(char *s)
{
	char *o = s;
	for (; *s; s++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' &&
		    s[2] <= '7' && s[3] >= '0' && s[3] <= '7') {
			*o++ = (char)((s[1] - '0') << 6 | (s[2] - '0') << 3 | (s[3] - '0'));
			s += 3;
		} else {
			*o++ = *s;
		}
	}
	*o = '\0';
}

/* Parse a mountinfo line: device, mount point (unescaped), fs type. */
static int parse_mountinfo(char *line, char **dev, char **mp, char **type)
{
	char *save = NULL, *f[5];
	for (int i = 0; i < 5; i++)
		if (!(f[i] = strtok_r(i ? NULL : line, " \n", &save)))
			return -1;
	char *t;
	while ((t = strtok_r(NULL, " \n", &save)) && strcmp(t, "-"))
		; /* optional fields */
	if (!t || !(t = strtok_r(NULL, " \n", &save)))
		return -1;
	unescape_octal(f[4]);
	*dev = f[2];
	*mp = f[4];
	*type = t;
	return 0;
}

/* 1 if the mountinfo file at path lists a FUSE mount of device dev (or,
 * with mp, learns dev from the last FUSE mount on mp); 0 if not; -1 if it
 * cannot be read. */
static int mountinfo_find(const char *path, const char *dev, const char *mp)
{
	FILE *f = fopen(path, "re");
	if (!f)
		return -1;
	char *line = NULL, *d, *m, *t;
	size_t cap = 0;
	int found = 0;
	while (getline(&line, &cap, f) > 0) {
		if (parse_mountinfo(line, &d, &m, &t) || strncmp(t, "fuse", 4))
			continue;
		if (mp && strcmp(m, mp) == 0) {
			snprintf(mount_dev, sizeof(mount_dev), "%s", d);
			found = 1; /* keep going: the last one is on top */
		} else if (!mp && strcmp(d, dev) == 0) {
			found = 1;
			break;
		}
	}
	free(line);
	fclose(f);
	return found;
}

/* Our FUSE connection's number, the mount's dev_t (major << 20 | minor):
 * its name in /sys/fs/fuse/connections.  0 if unknown. */
static unsigned mount_conn(void)
{
	unsigned maj, min;
	if (!mount_dev[0] || sscanf(mount_dev, "%u:%u", &maj, &min) != 2)
		return 0;
	return maj << 20 | min;
}

/* pid of a process in another mount namespace that has our mount, or 0. */
static pid_t mount_elsewhere(void)
{
	struct stat self;
	if (stat("/proc/self/ns/mnt", &self) < 0)
		return 0;
	DIR *d = opendir("/proc");
	if (!d)
		return 0;
	ino_t seen[256];
	size_t nseen = 0;
	pid_t found = 0;
	struct dirent *e;
	char path[64];
	while (!found && (e = readdir(d))) {
		char *end;
		long pid = strtol(e->d_name, &end, 10);
		struct stat ns;
		if (*end || pid <= 0)
			continue;
		snprintf(path, sizeof(path), "/proc/%ld/ns/mnt", pid);
		if (stat(path, &ns) < 0 || (ns.st_ino == self.st_ino && ns.st_dev == self.st_dev))
			continue;
		size_t i;
		for (i = 0; i < nseen && seen[i] != ns.st_ino; i++)
			;
		if (i < nseen)
			continue; /* this namespace was read already */
		if (nseen < sizeof(seen) / sizeof(seen[0]))
			seen[nseen++] = ns.st_ino;
		snprintf(path, sizeof(path), "/proc/%ld/mountinfo", pid);
		if (mountinfo_find(path, mount_dev, NULL) == 1)
			found = (pid_t)pid;
	}
	closedir(d);
	return found;
}

/*
 * A thread that is inside fuse_lowlevel_notify_inval_inode() when the loop
 * ends waits in the kernel for a READ or a write-back that only our (now
 * gone) workers could answer: the process could never finish exiting and
 * our clients would hang.  Aborting our own connection fails those
 * requests, which frees the thread; clients get ECONNABORTED.
 */
static void abort_connection(void)
{
	int err = mount_conn() ? zfs_conn_abort(mount_conn()) : -ENOENT;
	if (err)
		log_error("cannot abort our stuck FUSE connection %u (write 1 to "
			  "/sys/fs/fuse/connections/%u/abort): %s", mount_conn(),
			  mount_conn(), strerror(-err));
	else
		log_warn("aborted our FUSE connection to free a stuck thread");
}

static void on_wakeup(int sig)
{
	(void)sig; /* only interrupts the main thread's wait */
}

/* End the session loop as a signal would, from a thread of ours. */
static void end_loop(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_wakeup; /* no SA_RESTART: sem_wait/read get EINTR */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR1, &sa, NULL);
	__atomic_store_n(&exit_requested, 1, __ATOMIC_RELEASE);
	fuse_session_exit(zfs_se);
	/* The loop checks the exit flag, then sleeps: a wakeup that lands
	 * between the two is lost, so repeat until it has returned. */
	for (int i = 0; !__atomic_load_n(&loop_done, __ATOMIC_ACQUIRE); i++) {
		pthread_kill(main_tid, SIGUSR1);
		struct timespec ts = { 0, 20 * 1000000L };
		nanosleep(&ts, NULL);
		if (i == 500)
			log_warn("the session loop does not end; still trying");
	}
}

int zfs_mount_watch_open(void)
{
	if (!zfs_cfg.mountpoint || mountinfo_find("/proc/self/mountinfo", NULL,
						  zfs_cfg.mountpoint) != 1) {
		log_info("cannot find our mount in /proc/self/mountinfo: "
			 "not watching for its removal");
		mount_dev[0] = '\0';
		return -1;
	}
	int fd = open("/proc/self/mountinfo", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		log_info("/proc/self/mountinfo: %s", strerror(errno));
	return fd;
}

/* The control thread's poll(2) of the fd from zfs_mount_watch_open()
 * reported a change of our namespace's mount table (each poll re-arms it). */
void zfs_mount_changed(void)
{
	if (mount_gone || !mount_dev[0] ||
	    mountinfo_find("/proc/self/mountinfo", mount_dev, NULL) != 0)
		return;
	mount_gone = 1;
	/* An unmount here ends the session at once (the device then reports
	 * POLLERR), unless another mount of the file system is left. */
	struct pollfd pf = { .fd = fuse_session_fd(zfs_se), .events = 0 };
	if (poll(&pf, 1, 1000) == 1 && (pf.revents & POLLERR))
		return;
	pid_t pid = mount_elsewhere();
	if (!pid) {
		log_info("%s was unmounted lazily: serving the files still open",
			 zfs_cfg.mountpoint);
		return;
	}
	log_warn("%s was unmounted, but a copy of the mount is still in another "
		 "mount namespace (process %ld, e.g. made by unshare): exiting",
		 zfs_cfg.mountpoint, (long)pid);
	end_loop();
}

static void *idle_thread(void *arg)
{
	(void)arg;
	for (;;)
		pause();
	return NULL;
}

/*
 * libfuse's loop ends its workers with pthread_cancel(), and glibc loads
 * libgcc_s for that at its first use: with no file descriptor left (users
 * can exhaust ours) that load fails and glibc aborts the process, leaving a
 * dead mount.  Cancel one thread now, so it is loaded for good.
 */
static void load_unwinder(void)
{
	pthread_t t;
	if (pthread_create(&t, NULL, idle_thread, NULL) == 0) {
		pthread_cancel(t);
		pthread_join(t, NULL);
	}
}

/*
 * READs of data files are spliced from the shm object through a pipe per
 * libfuse worker (ops.c, zfs_read), which libfuse grows to hold the reply
 * plus three pages; without privilege a pipe grows to fs.pipe-max-size.  A
 * larger READ is copied instead.  The default: the largest READ that fits,
 * at least the kernel's default of 128K, at most libfuse 3.14's 256 pages.
 */
#define MAX_READ_MOST (256 * zfs_cfg.page)
static unsigned default_max_read(void)
{
	unsigned long pipe_max = 0;
	FILE *f = fopen("/proc/sys/fs/pipe-max-size", "re");
	if (f) {
		if (fscanf(f, "%lu", &pipe_max) != 1)
			pipe_max = 0;
		fclose(f);
	}
	size_t n = pipe_max > 4 * zfs_cfg.page ? (pipe_max - 4 * zfs_cfg.page) / zfs_cfg.page
						   * zfs_cfg.page : 0;
	n = n < (128u << 10) ? (128u << 10) : n;
	return (unsigned)(n < MAX_READ_MOST ? n : MAX_READ_MOST);
}

static int read_opts(const struct zfs_opts *o)
{
	uint64_t n;
	zfs_cfg.max_read = default_max_read();
	if (o->max_read) {
		if (parse_size(o->max_read, &n) || n == 0 || n % zfs_cfg.page ||
		    n > MAX_READ_MOST) {
			log_error("max_read=%s: must be a positive multiple of the page size "
				  "(%zu) up to %zuK, with an optional K or M suffix",
				  o->max_read, zfs_cfg.page, MAX_READ_MOST >> 10);
			return -1;
		}
		zfs_cfg.max_read = (unsigned)n;
	}
	zfs_cfg.read_ahead_kb = 4 * (zfs_cfg.max_read >> 10);
	if (o->read_ahead_kb) {
		char *end;
		errno = 0;
		long kb = strtol(o->read_ahead_kb, &end, 10);
		if (errno || end == o->read_ahead_kb || *end || kb < 0 || kb > (1L << 20)) {
			log_error("read_ahead_kb=%s: must be a number of KiB from 0 to %ld",
				  o->read_ahead_kb, 1L << 20);
			return -1;
		}
		zfs_cfg.read_ahead_kb = kb;
		zfs_cfg.read_ahead_given = 1;
	}
	return 0;
}

/* The kernel sets a FUSE mount's readahead (its bdi's, named after the
 * mount's device) to at most 128K when it takes our INIT reply; only root
 * may raise it, through sysfs.  Not a FUSE request: any thread may. */
void zfs_read_ahead_once(void)
{
	static int done;
	if (__atomic_exchange_n(&done, 1, __ATOMIC_ACQ_REL))
		return;
	char path[96], val[32];
	snprintf(path, sizeof(path), "/sys/class/bdi/%s/read_ahead_kb", mount_dev);
	int len = snprintf(val, sizeof(val), "%ld\n", zfs_cfg.read_ahead_kb);
	int fd = mount_dev[0] ? open(path, O_WRONLY | O_CLOEXEC) : -1;
	int err = fd < 0 ? (mount_dev[0] ? errno : ENOENT)
		  : write(fd, val, (size_t)len) == len ? 0 : errno;
	if (fd >= 0)
		close(fd);
	if (err)
		zfs_log(zfs_cfg.read_ahead_given ? LOG_WARN_ : LOG_INFO_,
			"cannot set the mount's readahead to %ld KiB (%s): %s",
			zfs_cfg.read_ahead_kb, mount_dev[0] ? path : "device unknown",
			strerror(err));
	else
		log_info("readahead of the mount: %ld KiB", zfs_cfg.read_ahead_kb);
}

/* The file limit, raised to its most: every region in use costs a file
 * descriptor. */
static rlim_t raise_fd_limit(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return 1024;
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
			getrlimit(RLIMIT_NOFILE, &rl);
	}
	return rl.rlim_cur;
}

int main(int argc, char **argv)
{
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	struct fuse_cmdline_opts opts = { 0 };
	struct zfs_opts o = { 0 };
	int ret = 1, mounted = 0;

	fuse_set_log_func(fuse_log_to_ours);
	zfs_cfg.page = (size_t)sysconf(_SC_PAGESIZE);
	zfs_cfg.region_size = zfs_cfg.page;

	if (fuse_opt_parse(&args, &o, zfs_opt_spec, opt_proc) < 0)
		goto out_args;
	if (o.npos > 2) {
		log_error("too many arguments (usage: zincfs [options] MOUNTPOINT)");
		goto out_args;
	}
	if (o.npos > 0 && fuse_opt_add_arg(&args, o.pos[o.npos - 1]) < 0)
		goto out_args;
	if (fuse_parse_cmdline(&args, &opts) != 0)
		goto out_args;
	zfs_cfg.debug = opts.debug;
	if (opts.show_help) {
		usage(argv[0]);
		ret = 0;
		goto out_args;
	}
	if (opts.show_version) {
		printf("zincfs version %s (libzinc format %u)\n", ZINCFS_VERSION,
		       zinc_version() >> 16);
		fuse_lowlevel_version();
		ret = 0;
		goto out_args;
	}
	if (!opts.mountpoint) {
		log_error("no mount point given (usage: zincfs [options] MOUNTPOINT)");
		goto out_args;
	}
	if (o.region_size && (parse_size(o.region_size, &zfs_cfg.region_size) ||
			      zfs_cfg.region_size == 0 ||
			      zfs_cfg.region_size % zfs_cfg.page ||
			      zfs_cfg.region_size > (uint64_t)INT64_MAX - zfs_cfg.page)) {
		log_error("region_size=%s: must be a positive multiple of the page "
			  "size (%zu), with an optional K, M or G suffix",
			  o.region_size, zfs_cfg.page);
		goto out_args;
	}
	const char *dir = o.shm_dir ? o.shm_dir : getenv("ZINC_SHM_DIR");
	if (!dir || !*dir)
		dir = "/dev/shm";
	struct stat st;
	zfs_cfg.shm_dir = realpath(dir, NULL);
	if (!zfs_cfg.shm_dir || stat(zfs_cfg.shm_dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
		log_error("shm_dir=%s: %s", dir,
			  zfs_cfg.shm_dir ? "not a directory" : strerror(errno));
		goto out_args;
	}
	/* libzinc reads it on every call: set before anything else. */
	setenv("ZINC_SHM_DIR", zfs_cfg.shm_dir, 1);

	/* The kernel checks every file's mode (see the README on why). */
	char fsname[64 + PATH_MAX];
	snprintf(fsname, sizeof(fsname), "-ofsname=%s", o.npos == 2 ? o.pos[0] : "zincfs");
	if (fuse_opt_insert_arg(&args, 1, "-odefault_permissions") < 0 ||
	    fuse_opt_insert_arg(&args, 1, fsname) < 0 ||
	    (!opts.nodefault_subtype && fuse_opt_insert_arg(&args, 1, "-osubtype=zincfs") < 0))
		goto out_args;

	zfs_guard_init();
	/* No user holding files open takes more than a quarter of our file
	 * descriptors: root and other users keep the rest.  Not counted:
	 * the splice pipe each worker may hold (2 descriptors, see zfs_read;
	 * without one libfuse copies). */
	rlim_t nofile = raise_fd_limit();
	rlim_t pipes = 2 * (rlim_t)(opts.singlethread ? 1 : opts.max_threads);
	if (nofile != RLIM_INFINITY)
		nofile = nofile > 2 * pipes ? nofile - pipes : nofile / 2;
	zfs_cfg.user_files = nofile == RLIM_INFINITY || nofile / 4 > SIZE_MAX ? SIZE_MAX
			     : nofile / 4 > 16 ? (size_t)(nofile / 4) : 16;
	if (o.user_files) {
		uint64_t n;
		if (parse_size(o.user_files, &n) || n == 0 || n > SIZE_MAX) {
			log_error("user_files=%s: must be a positive number", o.user_files);
			goto out_args;
		}
		zfs_cfg.user_files = (size_t)n;
	}
	if (read_opts(&o) < 0)
		goto out_args;
	char max_read_opt[32];
	snprintf(max_read_opt, sizeof(max_read_opt), "-omax_read=%u", zfs_cfg.max_read);
	if (fuse_opt_insert_arg(&args, 1, max_read_opt) < 0)
		goto out_args;
	load_unwinder();

	zfs_se = fuse_session_new(&args, &zfs_ops, sizeof(zfs_ops), NULL);
	if (!zfs_se)
		goto out_args; /* libfuse said why */
	/* A shell's background job starts with SIGINT ignored, and libfuse
	 * only takes over signals that are at their default: SIGINT and
	 * SIGTERM must end zincfs cleanly however it was started. */
	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	if (fuse_set_signal_handlers(zfs_se) != 0)
		goto out_session;
	if (fuse_session_mount(zfs_se, opts.mountpoint) != 0) {
		log_error("cannot mount on %s", opts.mountpoint);
		goto out_signals;
	}
	mounted = 1;
	zfs_cfg.mountpoint = opts.mountpoint;
	if (!opts.foreground && daemonize_start() != 0)
		goto out_unmount;
	/* Threads only after fork; the guardian from this thread, which lives
	 * until exit (its death is what the guardian watches for). */
	main_tid = pthread_self();
	mountinfo_find("/proc/self/mountinfo", NULL, opts.mountpoint);
	zfs_guardian_start(mount_conn(), !opts.foreground, argv);
	if (watcher_start() != 0) {
		daemonize_done(1);
		goto out_unmount;
	}
	log_info("mounted on %s, regions in %s, region_size %llu", opts.mountpoint,
		 zfs_cfg.shm_dir, (unsigned long long)zfs_cfg.region_size);
	daemonize_done(0);

	int rc;
	if (opts.singlethread) {
		rc = fuse_session_loop(zfs_se);
	} else {
		struct fuse_loop_config *cfg = fuse_loop_cfg_create();
		fuse_loop_cfg_set_clone_fd(cfg, (unsigned)opts.clone_fd);
		if (opts.max_idle_threads != UINT_MAX)
			fuse_loop_cfg_set_idle_threads(cfg, opts.max_idle_threads);
		fuse_loop_cfg_set_max_threads(cfg, opts.max_threads);
		rc = fuse_session_loop_mt(zfs_se, cfg);
		fuse_loop_cfg_destroy(cfg);
	}
	__atomic_store_n(&loop_done, 1, __ATOMIC_RELEASE);
	/* The kernel ends a connection (unmount, abort) by failing reads
	 * with ENODEV, which libfuse takes as a clean end.  A worker that had
	 * just taken a request off the queue at that moment gets ECONNABORTED
	 * instead (fuse_dev_do_read), which libfuse 3.14 reports as a
	 * failure: it is the same clean end. */
	if (rc == -ECONNABORTED) {
		log_info("the kernel ended the connection while a request was read");
		rc = 0;
	}
	ret = rc < 0 ? 1 : 0; /* > 0: ended by a signal, a clean exit */
	if (rc < 0)
		log_error("session loop failed: %s", strerror(-rc));

	/* Nobody may be left waiting on a request we will never answer. */
	LOCK();
	waiters_fail_all_locked(ENOTCONN);
	events_fail_all_locked(ENOTCONN);
	UNLOCK();
	int stuck = watcher_stop();
	LOCK();
	waiters_fail_all_locked(ENOTCONN);
	events_fail_all_locked(ENOTCONN);
	UNLOCK();
	if (__atomic_load_n(&exit_requested, __ATOMIC_ACQUIRE)) {
		/* Our mount is gone from our namespace: there is nothing to
		 * unmount here, and a lazy unmount of the mount point could
		 * hit somebody else's mount made there since.  libfuse skips
		 * the unmount when the device reports POLLERR: put a pipe with
		 * no reader in its place (closing the device ends the
		 * connection, and so the copy elsewhere). */
		int p[2];
		if (pipe2(p, O_CLOEXEC) == 0) {
			close(p[0]);
			dup2(p[1], fuse_session_fd(zfs_se));
			close(p[1]);
		}
	}
	fuse_session_unmount(zfs_se);
	fuse_remove_signal_handlers(zfs_se);
	log_flush();
	if (stuck) {
		/* A thread is still inside the session: don't free it. */
		abort_connection();
		zfs_guardian_stop();
		_exit(ret);
	}
	fuse_session_destroy(zfs_se);
	ops_free_open_files();
	events_free_all();
	regions_close_all();
	goto out_args;

out_unmount:
	if (mounted)
		fuse_session_unmount(zfs_se);
out_signals:
	fuse_remove_signal_handlers(zfs_se);
out_session:
	fuse_session_destroy(zfs_se);
out_args:
	zfs_guardian_stop();
	fuse_opt_free_args(&args);
	free(opts.mountpoint);
	free(o.region_size);
	free(o.user_files);
	free(o.max_read);
	free(o.read_ahead_kb);
	free(o.shm_dir);
	for (int i = 0; i < o.npos && i < 3; i++)
		free(o.pos[i]);
	free(zfs_cfg.shm_dir);
	return ret;
}
