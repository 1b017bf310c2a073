/* SPDX-License-Identifier: MIT */
/*
 * Shared helpers for the libzinc unit tests (one program per topic).
 *
 * Every test runs in a private region directory (ZINC_SHM_DIR): a mkdtemp
 * directory under /dev/shm, or a tmpfs the test mounts itself.  It is
 * removed at exit, on failure and on SIGTERM/SIGINT (meson's timeout), so
 * tests can run in parallel and never leave zinc_* objects behind.
 *
 * Exit codes: 0 pass, 1 fail, 77 skip.
 */
#ifndef ZINC_TESTUTIL_H
#define ZINC_TESTUTIL_H

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "zinc.h"

#define T_PASS 0
#define T_FAIL 1
#define T_SKIP 77

static pid_t tu_main_pid;
static char tu_dir[PATH_MAX];      /* the private region directory */
static char tu_mnt[PATH_MAX];      /* a tmpfs we mounted (tu_dir then is it) */
static char tu_tmpdir[256];   /* the mkdtemp dir (removed at exit) */

static void tu_cleanup(void);

static __attribute__((unused, noreturn)) void tu_die(void)
{
	if (getpid() == tu_main_pid)
		exit(T_FAIL); /* atexit: tu_cleanup */
	_exit(T_FAIL);
}

#define TU_WHERE __FILE__, __LINE__

#define CHECK(c)                                                               \
	do {                                                                   \
		if (!(c)) {                                                    \
			fprintf(stderr, "%s:%d: [pid %d] CHECK failed: %s\n",  \
				TU_WHERE, (int)getpid(), #c);                  \
			tu_die();                                              \
		}                                                              \
	} while (0)

/* Integer equality, printing both values (decimal and hex). */
#define CHECK_EQ(a, b)                                                         \
	do {                                                                   \
		long long _a = (long long)(a), _b = (long long)(b);            \
		if (_a != _b) {                                                \
			fprintf(stderr,                                        \
				"%s:%d: [pid %d] CHECK_EQ failed: %s == %s: "  \
				"%lld (0x%llx) != %lld (0x%llx)\n",            \
				TU_WHERE, (int)getpid(), #a, #b, _a,           \
				(unsigned long long)_a, _b,                    \
				(unsigned long long)_b);                       \
			tu_die();                                              \
		}                                                              \
	} while (0)

/* A libzinc return code, printing both as errno names. */
#define CHECK_RC(expr, want)                                                   \
	do {                                                                   \
		long long _r = (long long)(expr), _w = (long long)(want);      \
		if (_r != _w) {                                                \
			fprintf(stderr,                                        \
				"%s:%d: [pid %d] %s: got %lld (%s), "          \
				"want %lld (%s)\n",                            \
				TU_WHERE, (int)getpid(), #expr, _r,            \
				zinc_strerror((int)_r), _w,                    \
				zinc_strerror((int)_w));                       \
			tu_die();                                              \
		}                                                              \
	} while (0)
#define CHECK_OK(expr) CHECK_RC(expr, 0)

/* lo <= v <= hi */
#define CHECK_RANGE(v, lo, hi)                                                 \
	do {                                                                   \
		long long _v = (long long)(v), _l = (long long)(lo),           \
			  _h = (long long)(hi);                                \
		if (_v < _l || _v > _h) {                                      \
			fprintf(stderr,                                        \
				"%s:%d: [pid %d] CHECK_RANGE failed: %s = "    \
				"%lld not in [%lld, %lld]\n",                  \
				TU_WHERE, (int)getpid(), #v, _v, _l, _h);      \
			tu_die();                                              \
		}                                                              \
	} while (0)

/* A syscall-style call that returns -1 with errno on failure. */
#define CHECK_SYS(expr)                                                        \
	do {                                                                   \
		if ((expr) < 0) {                                              \
			fprintf(stderr, "%s:%d: [pid %d] %s: %s\n", TU_WHERE,  \
				(int)getpid(), #expr, strerror(errno));        \
			tu_die();                                              \
		}                                                              \
	} while (0)

static __attribute__((unused)) void tu_skip(const char *why)
{
	fprintf(stderr, "SKIP: %s\n", why);
	exit(T_SKIP);
}

/* ---- time ---- */

static __attribute__((unused)) int64_t tu_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static __attribute__((unused)) int64_t tu_now_ms(void)
{
	return tu_now_ns() / 1000000;
}

static __attribute__((unused)) int64_t tu_realtime_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* A short pause between polls of a condition (never a substitute for one). */
static __attribute__((unused)) void tu_pause_us(long us)
{
	struct timespec ts = { us / 1000000, (us % 1000000) * 1000 };
	nanosleep(&ts, NULL);
}

/* ---- the private region directory ---- */

static int tu_rm_cb(const char *p, const struct stat *sb, int flag,
		    struct FTW *ftw)
{
	(void)sb; (void)flag; (void)ftw;
	remove(p);
	return 0;
}

static void tu_cleanup(void)
{
	if (getpid() != tu_main_pid)
		return;
	if (tu_mnt[0]) {
		umount2(tu_mnt, MNT_DETACH);
		rmdir(tu_mnt);
		tu_mnt[0] = 0;
	}
	if (tu_tmpdir[0]) {
		nftw(tu_tmpdir, tu_rm_cb, 16, FTW_DEPTH | FTW_PHYS);
		tu_tmpdir[0] = 0;
	}
}

static void tu_on_signal(int sig)
{
	tu_cleanup();
	signal(sig, SIG_DFL);
	raise(sig);
}

static void tu_use_dir(const char *dir)
{
	snprintf(tu_dir, sizeof(tu_dir), "%s", dir);
	if (setenv("ZINC_SHM_DIR", tu_dir, 1) < 0) {
		perror("setenv");
		tu_die();
	}
}

/* Remove private directories left by tests that died without cleaning up
 * (a crash or a sanitizer abort): zinctest.PID.* whose PID is gone. */
static void tu_sweep(const char *parent)
{
	DIR *d = opendir(parent);
	struct dirent *e;
	if (!d)
		return;
	while ((e = readdir(d))) {
		int pid;
		char p[512];
		if (sscanf(e->d_name, "zinctest.%d.", &pid) != 1 || pid <= 0 ||
		    kill(pid, 0) == 0 || errno != ESRCH)
			continue;
		snprintf(p, sizeof(p), "%s/%s/mnt", parent, e->d_name);
		umount2(p, MNT_DETACH);
		snprintf(p, sizeof(p), "%s/%s", parent, e->d_name);
		nftw(p, tu_rm_cb, 16, FTW_DEPTH | FTW_PHYS);
	}
	closedir(d);
}

/*
 * Start a test: private region directory (mode 0755 so other users can
 * reach objects and only the objects' own modes decide), cleanup hooks, and
 * a libzinc environment free of the caller's tuning variables.
 */
static __attribute__((unused)) void tu_init(void)
{
	tu_main_pid = getpid();
	setvbuf(stdout, NULL, _IOLBF, 0);
	unsetenv("ZINC_ALWAYS_WAKE");
	unsetenv("ZINC_SPIN_NS");
	umask(022);
	atexit(tu_cleanup);
	signal(SIGTERM, tu_on_signal);
	signal(SIGINT, tu_on_signal);
	signal(SIGPIPE, SIG_IGN);
	signal(SIGBUS, tu_on_signal);
	tu_sweep("/dev/shm");
	tu_sweep("/tmp");
	snprintf(tu_tmpdir, sizeof(tu_tmpdir), "/dev/shm/zinctest.%d.XXXXXX",
		 (int)getpid());
	if (!mkdtemp(tu_tmpdir)) {
		snprintf(tu_tmpdir, sizeof(tu_tmpdir), "/tmp/zinctest.%d.XXXXXX",
			 (int)getpid());
		if (!mkdtemp(tu_tmpdir)) {
			perror("mkdtemp");
			exit(T_FAIL);
		}
	}
	chmod(tu_tmpdir, 0755);
	tu_use_dir(tu_tmpdir);
}

/*
 * Mount a tmpfs of `size` (mount option syntax, e.g. "1m") and make it the
 * region directory.  Returns 0, or -errno (EPERM: not allowed to mount).
 */
static __attribute__((unused)) int tu_mount_tmpfs(const char *size)
{
	char opts[64];
	snprintf(tu_mnt, sizeof(tu_mnt), "%s/mnt", tu_tmpdir);
	if (mkdir(tu_mnt, 0755) < 0) {
		tu_mnt[0] = 0;
		return -errno;
	}
	snprintf(opts, sizeof(opts), "size=%s,mode=0755", size);
	if (mount("tmpfs", tu_mnt, "tmpfs", MS_NOSUID | MS_NODEV, opts) < 0) {
		int e = errno;
		rmdir(tu_mnt);
		tu_mnt[0] = 0;
		return -e;
	}
	tu_use_dir(tu_mnt);
	return 0;
}

/* Free bytes of the region directory's filesystem. */
static __attribute__((unused)) uint64_t tu_free_bytes(void)
{
	struct statvfs v;
	CHECK_SYS(statvfs(tu_dir, &v));
	return (uint64_t)v.f_bfree * v.f_frsize;
}

/* snprintf that fails the test instead of truncating. */
#define TU_FMT(buf, len, ...)                                                  \
	do {                                                                   \
		int _n = snprintf((buf), (len), __VA_ARGS__);                  \
		CHECK(_n >= 0 && (size_t)_n < (size_t)(len));                  \
	} while (0)

static __attribute__((unused)) void tu_path(const char *name, char *buf,
					   size_t len)
{
	TU_FMT(buf, len, "%s/" ZINC_OBJECT_PREFIX "%s", tu_dir, name);
}

/* 1 if the object of NAME exists (lstat), 0 if not. */
static __attribute__((unused)) int tu_exists(const char *name)
{
	char p[PATH_MAX];
	struct stat st;
	tu_path(name, p, sizeof(p));
	return lstat(p, &st) == 0;
}

/* Inode of NAME's object, 0 if absent. */
static __attribute__((unused)) ino_t tu_ino(const char *name)
{
	char p[PATH_MAX];
	struct stat st;
	tu_path(name, p, sizeof(p));
	return lstat(p, &st) == 0 ? st.st_ino : 0;
}

/* Inode of the object a handle has open. */
static __attribute__((unused)) ino_t tu_handle_ino(zinc_region *r)
{
	struct stat st;
	if (fstat(zinc_fd(r), &st) < 0)
		return 0;
	return st.st_ino;
}

/* Entries (any kind) in the region directory whose name starts zinc_. */
static __attribute__((unused)) int tu_count_objects(void)
{
	DIR *d = opendir(tu_dir);
	int n = 0;
	struct dirent *e;
	if (!d)
		return -1;
	while ((e = readdir(d)))
		if (!strncmp(e->d_name, ZINC_OBJECT_PREFIX,
			     strlen(ZINC_OBJECT_PREFIX)))
			n++;
	closedir(d);
	return n;
}

#define CHECK_NO_OBJECTS() CHECK_EQ(tu_count_objects(), 0)

static __attribute__((unused)) size_t tu_page(void)
{
	return (size_t)sysconf(_SC_PAGESIZE);
}

/* The header of an open region (the mapping starts one page before data). */
static __attribute__((unused)) struct zinc_header *tu_hdr(zinc_region *r)
{
	return (struct zinc_header *)(void *)(zinc_ptr(r) - zinc_data_offset());
}

/* The waiter count as libzinc reports it. */
static __attribute__((unused)) uint32_t tu_waiters(zinc_region *r)
{
	struct zinc_info info;
	if (zinc_handle_stat(r, &info) != 0)
		return UINT32_MAX;
	return info.waiters;
}

/* Poll (10 s) until r's region shows n announced waiters: a waiter asleep
 * in a futex may still be starting threads that announce the rest. */
#define CHECK_WAITERS(r, n)                                                    \
	do {                                                                   \
		int64_t end_ = tu_now_ms() + 10000;                            \
		while (tu_waiters(r) != (n) && tu_now_ms() < end_)             \
			tu_pause_us(200);                                      \
		CHECK_EQ(tu_waiters(r), (n));                                  \
	} while (0)

/* FNV-1a 64, written independently of libzinc's. */
static __attribute__((unused)) uint64_t tu_fnv1a(const char *s)
{
	uint64_t h = 14695981039346656037ULL;
	while (*s) {
		h ^= (unsigned char)*s++;
		h *= 1099511628211ULL;
	}
	return h;
}

/*
 * Write a region object by hand, as zinc-core (ext == 0) would, or with
 * whatever hostile contents the caller patches in afterwards via *hdr_out.
 * size: file size; the header is filled as a valid v2 header for that size.
 * Returns the fd (caller closes), the object mapped at *map_out if asked.
 */
static __attribute__((unused)) int tu_make_object(const char *name,
						  size_t size,
						  const struct zinc_header *h,
						  mode_t mode)
{
	char p[PATH_MAX];
	tu_path(name, p, sizeof(p));
	int fd = open(p, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	CHECK_SYS(fd);
	CHECK_SYS(fchmod(fd, mode));
	CHECK_SYS(ftruncate(fd, (off_t)size));
	if (h && size >= sizeof(*h))
		CHECK_EQ(pwrite(fd, h, sizeof(*h), 0), (long)sizeof(*h));
	return fd;
}

/* Map NAME's header page read-write by hand, as zinc-core does. */
static __attribute__((unused)) struct zinc_header *tu_map_header(const char *name)
{
	char p[PATH_MAX];
	tu_path(name, p, sizeof(p));
	int fd = open(p, O_RDWR | O_CLOEXEC);
	CHECK_SYS(fd);
	struct zinc_header *h = (struct zinc_header *)mmap(NULL, tu_page(), PROT_READ | PROT_WRITE,
				     MAP_SHARED, fd, 0);
	CHECK(h != MAP_FAILED);
	close(fd);
	return h;
}

/* A valid v2 header for an object of `size` bytes (capacity size - page). */
static __attribute__((unused)) struct zinc_header tu_header(const char *name,
							   size_t size,
							   pid_t owner)
{
	struct zinc_header h;
	memset(&h, 0, sizeof(h));
	h.magic = ZINC_MAGIC;
	h.version = ZINC_FORMAT_VERSION;
	h.capacity = size - tu_page();
	h.ref_count = 1;
	h.owner_pid = owner;
	h.created_at = (uint64_t)tu_realtime_ns();
	h.name_hash = tu_fnv1a(name);
	return h;
}

/* ---- processes ---- */

/* fork(); the child dies with the test (PDEATHSIG) and never runs the
 * parent's cleanup. */
static __attribute__((unused)) pid_t tu_fork(void)
{
	pid_t parent = getpid();
	fflush(NULL);
	pid_t pid = fork();
	CHECK_SYS(pid);
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(T_FAIL);
	}
	return pid;
}

/* Wait up to ms for pid to end.  Its exit code, 128+signal if killed, or
 * -1 on timeout (then it is killed and reaped). */
static __attribute__((unused)) int tu_wait_exit(pid_t pid, int ms)
{
	int64_t deadline = tu_now_ms() + ms;
	int st;
	for (;;) {
		pid_t w = waitpid(pid, &st, WNOHANG);
		if (w == pid)
			return WIFEXITED(st) ? WEXITSTATUS(st)
					     : 128 + WTERMSIG(st);
		if (w < 0 && errno != EINTR)
			return -2;
		if (tu_now_ms() > deadline) {
			kill(pid, SIGKILL);
			waitpid(pid, &st, 0);
			return -1;
		}
		tu_pause_us(500);
	}
}

#define CHECK_CHILD_OK(pid) CHECK_EQ(tu_wait_exit((pid), 30000), 0)

/* In a child: become user "nobody" (another user than the test's), or skip
 * the check (return 0) when not root.  1 once switched. */
static __attribute__((unused)) int tu_become_nobody(void)
{
	if (geteuid() != 0)
		return 0;
	struct passwd *pw = getpwnam("nobody");
	uid_t uid = pw ? pw->pw_uid : 65534;
	gid_t gid = pw ? pw->pw_gid : 65534;
	CHECK_SYS(setgroups(0, NULL));
	CHECK_SYS(setresgid(gid, gid, gid));
	CHECK_SYS(setresuid(uid, uid, uid));
	CHECK_EQ(geteuid(), uid);
	return 1;
}

/* SIGKILL and reap. */
static __attribute__((unused)) void tu_kill(pid_t pid)
{
	int st;
	kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
}

/* A dead process's pid (say, of an owner that crashed): fork a child that
 * exits at once, reap it. */
static __attribute__((unused)) pid_t tu_dead_pid(void)
{
	pid_t pid = tu_fork();
	if (pid == 0)
		_exit(0);
	CHECK_CHILD_OK(pid);
	return pid;
}

static __attribute__((unused)) pid_t tu_gettid(void)
{
	return (pid_t)syscall(SYS_gettid);
}

/* Read /proc/PID/task/TID/<file> into buf.  0 or -1. */
static int tu_read_proc(pid_t pid, pid_t tid, const char *file, char *buf,
			size_t len)
{
	char p[128];
	snprintf(p, sizeof(p), "/proc/%d/task/%d/%s", (int)pid, (int)tid, file);
	int fd = open(p, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = read(fd, buf, len - 1);
	close(fd);
	if (n < 0)
		return -1;
	buf[n] = 0;
	return 0;
}

/* Scheduler state letter of a task ('S', 'R', ...), or 0. */
static __attribute__((unused)) char tu_task_state(pid_t pid, pid_t tid)
{
	char buf[1024];
	if (tu_read_proc(pid, tid, "stat", buf, sizeof(buf)))
		return 0;
	char *p = strrchr(buf, ')');
	return p && p[1] == ' ' ? p[2] : 0;
}

/* 1 if the task is asleep in a futex wait right now. */
static __attribute__((unused)) int tu_in_futex_wait(pid_t pid, pid_t tid)
{
	char wchan[256];
	if (tu_task_state(pid, tid) != 'S')
		return 0;
	if (tu_read_proc(pid, tid, "wchan", wchan, sizeof(wchan)))
		return 0;
	return strstr(wchan, "futex") != NULL &&
	       tu_task_state(pid, tid) == 'S';
}

/* Poll (deadline ms) until the task sleeps in a futex wait.  1 or 0. */
static __attribute__((unused)) int tu_wait_futex_sleep(pid_t pid, pid_t tid,
						       int ms)
{
	int64_t deadline = tu_now_ms() + ms;
	while (tu_now_ms() <= deadline) {
		if (tu_in_futex_wait(pid, tid))
			return 1;
		tu_pause_us(200);
	}
	return 0;
}

/* A single-threaded child process asleep in a futex wait. */
#define CHECK_ASLEEP(pid) CHECK(tu_wait_futex_sleep((pid), (pid), 10000))
/* A thread of this process asleep in a futex wait. */
#define CHECK_THREAD_ASLEEP(tid)                                               \
	CHECK(tu_wait_futex_sleep(getpid(), (tid), 10000))

/* ---- a waiter thread ---- */

/* A thread in zinc_wait(r, timeout).  Set r and timeout, then
 * tu_waiter_start(); the rest is filled in by the thread. */
struct tu_waiter {
	zinc_region *r;
	uint32_t timeout;
	pthread_t thread;
	pid_t tid;   /* published (release) before the wait */
	int rc;      /* zinc_wait's result */
	int64_t ms;  /* how long the wait took */
	int done;    /* set (release) once the wait has returned */
};

static __attribute__((unused)) void *tu_waiter_main(void *arg)
{
	struct tu_waiter *w = (struct tu_waiter *)arg; /* also C++ */
	__atomic_store_n(&w->tid, tu_gettid(), __ATOMIC_RELEASE);
	int64_t t0 = tu_now_ms();
	w->rc = zinc_wait(w->r, w->timeout);
	w->ms = tu_now_ms() - t0;
	__atomic_store_n(&w->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

/* Start the thread; returns once it runs (w->tid is set).  It may not be
 * asleep yet: callers prove that (CHECK_THREAD_ASLEEP(w->tid)) before a
 * step that must find it asleep, some only after other waiters start. */
static __attribute__((unused)) void tu_waiter_start(struct tu_waiter *w)
{
	CHECK_EQ(pthread_create(&w->thread, NULL, tu_waiter_main, w), 0);
	while (!__atomic_load_n(&w->tid, __ATOMIC_ACQUIRE))
		tu_pause_us(50);
}

/* Join the thread; zinc_wait's result. */
static __attribute__((unused)) int tu_waiter_join(struct tu_waiter *w)
{
	CHECK_EQ(pthread_join(w->thread, NULL), 0);
	return w->rc;
}

/* ---- pipes for parent/child steps ---- */

static __attribute__((unused)) void tu_pipe(int fds[2])
{
	CHECK_SYS(pipe2(fds, O_CLOEXEC));
}

static __attribute__((unused)) void tu_put(int fd, char c)
{
	CHECK_EQ(write(fd, &c, 1), 1);
}

/* Next byte from fd within ms, or -1 (timeout or EOF). */
static __attribute__((unused)) int tu_get(int fd, int ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	int64_t deadline = tu_now_ms() + ms;
	for (;;) {
		int left = (int)(deadline - tu_now_ms());
		if (left < 0)
			return -1;
		int n = poll(&p, 1, left);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		unsigned char c;
		ssize_t r = read(fd, &c, 1);
		if (r == 1)
			return c;
		if (r < 0 && errno == EINTR)
			continue;
		return -1;
	}
}

#define CHECK_GET(fd, c) CHECK_EQ(tu_get((fd), 30000), (c))

/* Write/read a whole value through a pipe. */
static __attribute__((unused)) void tu_put_val(int fd, const void *v,
					       size_t len)
{
	CHECK_EQ(write(fd, v, len), (long)len);
}

static __attribute__((unused)) void tu_get_val(int fd, void *v, size_t len)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	CHECK_EQ(poll(&p, 1, 30000), 1);
	CHECK_EQ(read(fd, v, len), (long)len);
}

#define TU_RUN(fn)                                                             \
	do {                                                                   \
		int64_t _t0 = tu_now_ms();                                     \
		fn();                                                          \
		CHECK_NO_OBJECTS();                                            \
		printf("ok %s (%lld ms)\n", #fn,                               \
		       (long long)(tu_now_ms() - _t0));                        \
	} while (0)

#endif
