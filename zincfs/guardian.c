/* SPDX-License-Identifier: MIT */
/*
 * The guardian: a small process zincfs forks right after mounting, so that
 * a zincfs killed by SIGKILL (kill -9, the OOM killer) never leaves its
 * clients hanging.
 *
 * Why: a zincfs thread killed inside a page cache invalidation
 * (fuse_lowlevel_notify_inval_inode) waits in the kernel for a READ or a
 * write-back that only zincfs's (dead) workers could answer.  The process
 * cannot finish dying, so /dev/fuse stays open, the kernel never ends the
 * connection and every client of the mount waits in D state until someone
 * writes /sys/fs/fuse/connections/N/abort.  The guardian does that write.
 *
 * How: it keeps open the abort and waiting files of our connection in the
 * FUSE control file system (mounting it if missing) and nothing else of
 * zincfs: no /dev/fuse, no region, no file of the mount, cwd "/".  Those
 * files stay bound to our connection: once it has ended they read EOF and
 * ignore writes, even if a new mount got its number, so the guardian never
 * aborts somebody else's connection.  PR_SET_PDEATHSIG tells it when
 * zincfs's main thread (which forked it and lives until exit) has died: on
 * SIGKILL that thread dies at once, while the process as a whole (and so a
 * pipe or a pidfd) only ends once the stuck thread is freed.  Both talk
 * over a socket pair: the guardian sends 'r' once it is set up (zincfs
 * waits for it), zincfs sends 'q' on a clean exit, and the guardian then
 * exits without a word.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "zincfs.h"

#define CONNS "/sys/fs/fuse/connections"
#define FUSECTL_MAGIC 0x65735543

static pid_t guardian_pid;
static int guardian_fd = -1; /* our end of the socket pair */

static int fusectl_mount(void)
{
	struct statfs sf;
	if (statfs(CONNS, &sf) == 0 && sf.f_type == FUSECTL_MAGIC)
		return 0;
	if (mount("fusectl", CONNS, "fusectl", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
		return -errno;
	return 0;
}

/* fd of CONNS/conn/file, mounting the control file system if needed. */
static int conn_open(unsigned conn, const char *file, int flags)
{
	char path[64];
	snprintf(path, sizeof(path), CONNS "/%u/%s", conn, file);
	int err = fusectl_mount();
	if (err)
		return err;
	int fd = open(path, flags | O_CLOEXEC);
	return fd >= 0 ? fd : -errno;
}

int zfs_conn_abort(unsigned conn)
{
	int fd = conn_open(conn, "abort", O_WRONLY);
	if (fd < 0)
		return fd;
	int err = write(fd, "1", 1) == 1 ? 0 : -errno;
	close(fd);
	return err;
}

/* The guardian's own log: zincfs's may go to a terminal we must not hold. */
static int glog_syslog;

static void glog(int prio, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (glog_syslog)
		syslog(prio, "%s", msg);
	else
		fprintf(stderr, "zincfs-guardian: %s: %s\n",
			prio == LOG_INFO ? "info" : "warning", msg);
}

/* ps shows "zincfs-guardian MOUNTPOINT" (comm "zincfs-guardian"): write it
 * over our copy of argv; the trailing non-NUL byte makes the kernel stop
 * /proc/PID/cmdline at the title's NUL (the setproctitle convention). */
static void set_title(char **argv, const char *mnt)
{
	prctl(PR_SET_NAME, "zincfs-guardian");
	if (!argv || !argv[0])
		return;
	char *end = argv[0] + strlen(argv[0]) + 1;
	for (int i = 1; argv[i] == end; i++)
		end += strlen(argv[i]) + 1;
	size_t room = (size_t)(end - argv[0]);
	memset(argv[0], 0, room);
	snprintf(argv[0], room, "zincfs-guardian %s", mnt ? mnt : "");
	if (room > strlen(argv[0]) + 1)
		end[-1] = ' ';
}

static int thread_dead(pid_t pid)
{
	char path[64], buf[256];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 1;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 1;
	buf[n] = '\0';
	char *p = strrchr(buf, ')');
	return !p || p[1] == '\0' || p[2] == 'Z' || p[2] == 'X';
}

static void __attribute__((noreturn))
guardian(unsigned conn, int sock, pid_t parent, int daemon, char **argv)
{
	/* Hold nothing of zincfs's: no /dev/fuse (it would keep a dead
	 * zincfs's connection alive), no file of the mount, no terminal or
	 * pipe of the caller when zincfs daemonizes. */
	int nul = open("/dev/null", O_RDWR);
	if (nul >= 0) {
		dup2(nul, 0);
		dup2(nul, 1);
		if (daemon)
			dup2(nul, 2);
	}
	close_range(3, (unsigned)sock - 1, 0);
	close_range((unsigned)sock + 1, ~0U, 0);
	if (daemon) {
		openlog("zincfs-guardian", LOG_PID, LOG_DAEMON);
		glog_syslog = 1;
	}
	/* Out of zincfs's process group (a kill of the group must leave us
	 * to clean up) and off any mount (cwd). */
	setsid();
	if (chdir("/") < 0)
		glog(LOG_WARNING, "chdir /: %s", strerror(errno));
	set_title(argv, zfs_cfg.mountpoint);
	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	signal(SIGHUP, SIG_DFL);
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigprocmask(SIG_SETMASK, &set, NULL);
	int sfd = signalfd(-1, &set, SFD_CLOEXEC);
	prctl(PR_SET_PDEATHSIG, SIGUSR1);
	/* An OOM kill of zincfs must not take us along. */
	int oom = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
	if (oom >= 0) {
		if (write(oom, "-1000", 5) < 0) {
			/* not privileged: we are small anyway */
		}
		close(oom);
	}
	int abort_fd = conn_open(conn, "abort", O_WRONLY);
	int waiting_fd = conn_open(conn, "waiting", O_RDONLY);
	if (abort_fd < 0 || waiting_fd < 0 || sfd < 0) {
		int err = abort_fd < 0 ? abort_fd : waiting_fd < 0 ? waiting_fd : -errno;
		glog(LOG_WARNING, "cannot open " CONNS "/%u (%s): if zincfs is killed, "
		     "its clients may hang until that connection is aborted", conn,
		     strerror(-err));
		_exit(1);
	}
	if (send(sock, "r", 1, MSG_NOSIGNAL) != 1) {
		/* zincfs is gone: see below */
	}
	/* zincfs may have died before the prctl. */
	int dead = getppid() != parent;
	struct pollfd pf[2] = { { .fd = sock, .events = POLLIN },
				{ .fd = sfd, .events = POLLIN } };
	while (!dead) {
		if (poll(pf, 2, -1) < 0)
			continue; /* EINTR only: nothing else can fail here */
		if (pf[0].revents) {
			char c = 0;
			ssize_t n = read(sock, &c, 1);
			if (n == 1 && c == 'q')
				_exit(0); /* clean exit: zincfs did its own cleanup */
			dead = n == 0; /* gone without a word */
		}
		if (pf[1].revents) {
			struct signalfd_siginfo si;
			if (read(sfd, &si, sizeof(si)) < 0) {
				/* the signal is consumed either way */
			}
			dead = thread_dead(parent); /* not a stray SIGUSR1 */
		}
	}
	char buf[32] = "?";
	ssize_t n = read(waiting_fd, buf, sizeof(buf) - 1); /* not seekable */
	if (n == 0)
		_exit(0); /* the connection has ended already: not ours to touch */
	if (n > 0)
		buf[n - 1] = '\0'; /* "N\n" */
	if (write(abort_fd, "1", 1) != 1) {
		glog(LOG_WARNING, "zincfs (pid %d) died; cannot abort its FUSE connection "
		     "%u: %s", (int)parent, conn, strerror(errno));
		_exit(1);
	}
	glog(LOG_WARNING, "zincfs (pid %d) died without unmounting %s (killed?): "
	     "aborted its FUSE connection %u (%s requests waiting), so that no "
	     "client waits for it", (int)parent, zfs_cfg.mountpoint ? zfs_cfg.mountpoint : "",
	     conn, buf);
	_exit(0);
}

void zfs_guardian_start(unsigned conn, int daemon, char **argv)
{
	int p[2];
	if (!conn) {
		log_warn("our FUSE connection is unknown: no guardian (if zincfs is "
			 "killed, its clients may hang until the connection is aborted)");
		return;
	}
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, p) < 0) {
		log_warn("no guardian: socketpair: %s", strerror(errno));
		return;
	}
	pid_t parent = getpid();
	fflush(NULL); /* no buffered output of ours printed twice */
	pid_t pid = fork();
	if (pid == 0) {
		close(p[1]);
		guardian(conn, p[0], parent, daemon, argv);
	}
	close(p[0]);
	if (pid < 0) {
		log_warn("no guardian: fork: %s", strerror(errno));
		close(p[1]);
		return;
	}
	guardian_pid = pid;
	guardian_fd = p[1];
	/* Set up (named, its files open) before we serve anything; if it
	 * failed, it said why. */
	struct pollfd pf = { .fd = guardian_fd, .events = POLLIN };
	char c;
	if (poll(&pf, 1, 5000) != 1 || read(guardian_fd, &c, 1) != 1)
		log_warn("the guardian did not start: if zincfs is killed, its "
			 "clients may hang until its connection is aborted");
}

void zfs_guardian_stop(void)
{
	if (guardian_pid <= 0)
		return;
	if (send(guardian_fd, "q", 1, MSG_NOSIGNAL) != 1) {
		/* it is gone already (EPIPE): reap it below */
	}
	close(guardian_fd);
	guardian_fd = -1;
	/* It exits at once; don't let a stopped guardian hold up our exit. */
	for (int i = 0; i < 200 && waitpid(guardian_pid, NULL, WNOHANG) == 0; i++)
		nanosleep(&(struct timespec){ 0, 10 * 1000000L }, NULL);
	guardian_pid = 0;
}
