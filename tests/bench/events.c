/* SPDX-License-Identifier: MIT */
/*
 * zinc-bench row 9: MOUNT/.events with 10,000 regions, zincfs watching
 * counters with io_uring futex waits (the mount bench.sh made) and with
 * futex_waitv threads (a second zincfs on the same region directory,
 * started here with ZINCFS_NO_IO_URING=1).  For each: the daemon's threads
 * and RSS with a .events file open, the time that first open takes (it
 * starts watching every region), and the latency from zinc_notify() of one
 * region (a different one each time, then always the same one) to its line
 * read from .events, next to a NAME.wait reader of that region through the
 * same daemon (the baseline), the three measured in turns.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <zinc.h>

#include "bench.h"

#define NREG 10000

static long status_of(int pid, const char *field)
{
	char path[64], line[256];
	snprintf(path, sizeof(path), "/proc/%d/status", pid);
	FILE *f = fopen(path, "r");
	long v = -1;
	size_t n = strlen(field);
	while (f && fgets(line, sizeof(line), f))
		if (!strncmp(line, field, n) && line[n] == ':') {
			v = strtol(line + n + 1, NULL, 10);
			break;
		}
	if (f)
		fclose(f);
	return v;
}

/* Read from fd until a line starting with "name " (or "name\n") came. */
static void read_line_of(int fd, const char *name)
{
	char buf[4096];
	size_t len = strlen(name);
	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf) - 1);
		if (n <= 0)
			die("read .events: %s", n ? strerror(errno) : "end of file");
		buf[n] = '\0';
		for (char *l = buf; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
			if (!strncmp(l, name, len) && l[len] == ' ')
				return;
	}
}

/* A zincfs on mnt over our region directory, or -1. */
static pid_t start_daemon(const char *mnt, int no_uring)
{
	char exe[PATH_MAX], self[64], o[PATH_MAX + 64];
	snprintf(self, sizeof(self), "/proc/%d/exe", opt.daemon_pid);
	ssize_t n = readlink(self, exe, sizeof(exe) - 1);
	if (n < 0)
		return -1;
	exe[n] = '\0';
	const char *shm = getenv("ZINC_SHM_DIR");
	snprintf(o, sizeof(o), "shm_dir=%s,max_threads=%d", shm ? shm : "/dev/shm",
		 opt.max_threads > 0 ? opt.max_threads : 10);
	pid_t pid = fork();
	if (pid == 0) {
		if (no_uring)
			setenv("ZINCFS_NO_IO_URING", "1", 1);
		int nul = open("/dev/null", O_WRONLY);
		dup2(nul, 2);
		execl(exe, exe, "-f", "-o", o, mnt, (char *)NULL);
		_exit(127);
	}
	/* mounted once .events is there */
	char ev[PATH_MAX];
	snprintf(ev, sizeof(ev), "%s/.events", mnt);
	struct stat st;
	uint64_t end = now_ns() + 10000000000ull;
	while (stat(ev, &st) != 0) {
		if (now_ns() > end || waitpid(pid, NULL, WNOHANG) == pid)
			return -1;
		struct timespec ts = { 0, 10000000 };
		nanosleep(&ts, NULL);
	}
	return pid;
}

static void stop_daemon(const char *mnt, pid_t pid)
{
	char cmd[PATH_MAX + 32];
	snprintf(cmd, sizeof(cmd), "fusermount3 -u '%s'", mnt);
	if (system(cmd) != 0)
		kill(pid, SIGTERM);
	waitpid(pid, NULL, 0);
}

/* One daemon: values under place (its way of watching). */
static void measure(const char *mnt, int pid, const char *place, zinc_region **regs,
		    char (*names)[64], int samples)
{
	char path[PATH_MAX];
	uint64_t *ev = malloc((size_t)samples * sizeof(uint64_t));
	uint64_t *wt = malloc((size_t)samples * sizeof(uint64_t));
	uint64_t *same = malloc((size_t)samples * sizeof(uint64_t));
	long thr_idle = status_of(pid, "Threads");

	/* One sample of each kind per round, so that the machine's drift
	 * touches them alike: the baseline, a .wait reader of region k (with
	 * every region watched, as for the others), then .events lines for a
	 * different region each time and for region k. */
	int k = NREG / 2;
	snprintf(path, sizeof(path), "%s/.events", mnt);
	uint64_t t0 = now_ns();
	int efd = open(path, O_RDONLY | O_CLOEXEC);
	if (efd < 0)
		die("open %s: %s", path, strerror(errno));
	double open_ms = (double)(now_ns() - t0) / 1e6;
	long thr = status_of(pid, "Threads"), rss = status_of(pid, "VmRSS");
	snprintf(path, sizeof(path), "%s/%s.wait", mnt, names[k]);
	int wfd = open(path, O_RDONLY | O_CLOEXEC);
	if (wfd < 0)
		die("open %s: %s", path, strerror(errno));
	char buf[64];
	for (int i = 0; i < samples; i++) {
		t0 = now_ns();
		zinc_notify(regs[k]);
		if (read(wfd, buf, sizeof(buf)) <= 0)
			die("read %s: %s", path, strerror(errno));
		wt[i] = now_ns() - t0;
		read_line_of(efd, names[k]); /* untimed: .events saw it too */

		int r = (i * 7919) % NREG; /* spread over the regions */
		if (r == k)
			r++;
		t0 = now_ns();
		zinc_notify(regs[r]);
		read_line_of(efd, names[r]);
		ev[i] = now_ns() - t0;

		t0 = now_ns();
		zinc_notify(regs[k]);
		read_line_of(efd, names[k]);
		same[i] = now_ns() - t0;
		if (read(wfd, buf, sizeof(buf)) <= 0) /* untimed: .wait saw it */
			die("read %s: %s", path, strerror(errno));
	}
	close(wfd);
	close(efd);

	char nm[96];
	struct result *b = add_result("9", "zinc_notify -> NAME.wait reader (baseline)", place,
				      "us", wt, (size_t)samples, 1000.0, "notifications");
	snprintf(nm, sizeof(nm), "zinc_notify -> .events line, %d regions watched", NREG);
	struct result *e = add_result("9", nm, place, "us", ev, (size_t)samples, 1000.0,
				      "notifications");
	set_ratio(e, b);
	snprintf(nm, sizeof(nm), "  the same, always the baseline's region");
	set_ratio(add_result("9", nm, place, "us", same, (size_t)samples, 1000.0,
			     "notifications"), b);
	add_value("9", "first .events open (starts watching every region)", place, "ms",
		  open_ms, 1, "run");
	add_value("9", "zincfs threads, idle", place, "count", (double)thr_idle, 1, "reading");
	add_value("9", "zincfs threads, .events open", place, "count", (double)thr, 1, "reading");
	add_value("9", "zincfs RSS, .events open", place, "MiB", rss / 1024.0, 1, "reading");
	char t[160], m[160];
	if (!strcmp(place, "io_uring")) { /* issue 10's targets */
		snprintf(t, sizeof(t), ".events line latency <= 1.5x a .wait reader's, %d regions "
			 "(io_uring)", NREG);
		snprintf(m, sizeof(m), "%.2fx (%.1f vs %.1f us)", e->ratio, e->median, b->median);
		add_target(t, m, e->ratio <= 1.5);
		snprintf(t, sizeof(t), "watcher threads for %d regions <= 8 (io_uring)", NREG);
		/* the io_uring thread exists from the start: count it */
		snprintf(m, sizeof(m), "%ld (threads %ld with .events open, %ld idle)",
			 thr - thr_idle + 1, thr, thr_idle);
		add_target(t, m, thr - thr_idle + 1 <= 8);
	}
	free(ev);
	free(wt);
	free(same);
}

void events_row(void)
{
	struct rlimit rl;
	getrlimit(RLIMIT_NOFILE, &rl);
	if (rl.rlim_cur < (rlim_t)NREG + 1000) {
		add_skip("9", "needs ulimit -n >= 11000 (bench.sh raises it)");
		return;
	}
	if (!opt.daemon_pid) {
		add_skip("9", "no zincfs daemon pid (--daemon-pid)");
		return;
	}
	int samples = opt.quick ? 200 : 1000;
	zinc_region **regs = calloc(NREG, sizeof(*regs));
	char (*names)[64] = calloc(NREG, 64);
	if (!regs || !names)
		die("out of memory");
	for (int i = 0; i < NREG; i++) {
		region_name(names[i], 64, "ev");
		int rc = zinc_create(names[i], (size_t)sysconf(_SC_PAGESIZE), &regs[i]);
		if (rc)
			die("zinc_create %s: %s", names[i], zinc_strerror(rc));
	}
	measure(opt.mnt, opt.daemon_pid, "io_uring", regs, names, samples);

	char mnt[] = "/tmp/zinc-bench-mnt9.XXXXXX";
	if (!mkdtemp(mnt))
		die("mkdtemp: %s", strerror(errno));
	pid_t pid = start_daemon(mnt, 1);
	if (pid < 0) {
		add_skip("9", "the second zincfs (ZINCFS_NO_IO_URING=1) did not mount");
	} else {
		measure(mnt, pid, "futex_waitv", regs, names, samples);
		stop_daemon(mnt, pid);
		struct result *u = find_result("9", "zincfs threads, .events open", "io_uring");
		struct result *f = find_result("9", "zincfs threads, .events open", "futex_waitv");
		if (u && f)
			set_ratio(f, u);
	}
	rmdir(mnt);
	for (int i = 0; i < NREG; i++)
		zinc_close(regs[i]);
	free(regs);
	free(names);
}
