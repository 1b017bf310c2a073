/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: region validation.  Each input becomes one object
 * zinc_NAME in a private region directory (a regular file of arbitrary size
 * and bytes with some header fields optionally made plausible, or a
 * directory, FIFO or symlink), then zinc_stat, zinc_open, zinc_open_ex
 * (observe), zinc_try_wait/zinc_notify/zinc_wait/zinc_watch, zinc_create
 * (replacing it) and zinc_close/zinc_unlink run on it.
 *
 * Besides "no crash, no hang, no out-of-bounds access" (ASan+UBSan), every
 * result is checked against an independent model of the documented rules
 * (what a valid region is, when open gives -EBADMSG or -ENOENT, when create
 * may replace, when close removes the name); a mismatch aborts.
 *
 * Input layout:
 *   byte 0  size: low 4 bits index sizes[] (14, 15: the body's length);
 *           bits 4-5 the capacity zinc_create asks for (1-3 pages);
 *           bits 6-7 both set: pad the body with zeros, else with 0xA5
 *           (a zero magic is "maybe half-made" and costs a 20 ms wait)
 *   byte 1  header patches (bits F_*) and object type (bits 6-7)
 *   byte 2  operations (bits O_*) and owner_pid choice
 *   byte 3+ the object's bytes (padded or cut to the size)
 *
 * Region directory: $ZINC_FUZZ_DIR if set (scripts/fuzz.sh mounts a private
 * tmpfs there), else /dev/shm/zinc-fuzz-PID, created once and removed at
 * exit.  Single-threaded: nothing truncates an object between libzinc's
 * size check and its access (a real SIGBUS case this target must not
 * create).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "zinc.h"
#include "internal.h" /* struct zinc_ext, ZINC_EXT_* (the on-disk format) */

#define NAME "fz"

enum {
	F_MAGIC = 1 << 0,    /* magic = ZINC_MAGIC */
	F_VERSION = 1 << 1,  /* version = 2 */
	F_CAPACITY = 1 << 2, /* capacity = size - page */
	F_EXT = 1 << 3,      /* ext_magic = libzinc's (else maybe foreign) */
	F_NOFLAGS = 1 << 4,  /* flags = 0 (not removed) */
	F_PID = 1 << 5,      /* owner_pid from O_PID bits */
};
enum { T_FILE = 0, T_DIR = 1, T_SPECIAL = 2, T_FILE2 = 3 }; /* byte 1 >> 6 */
enum {
	O_STAT = 1 << 0,     /* zinc_stat */
	O_OPEN = 1 << 1,     /* zinc_open (counting handle) */
	O_OBSERVE = 1 << 2,  /* zinc_open_ex(ZINC_OPEN_OBSERVE) */
	O_CREATE = 1 << 3,   /* zinc_create replacing it */
	O_KEEP = 1 << 4,     /* keep the handles open across the create */
	O_PIDSHIFT = 5,      /* 2 bits: owner_pid 0 / ours / 1 / dead */
	O_SYMLINK = 1 << 7,  /* T_SPECIAL: symlink, else FIFO */
};

static char dir[256];
static char path[512];
static size_t page;
static int own_dir; /* we created dir (not $ZINC_FUZZ_DIR) */
static pid_t dead_pid;

#define CHECK(cond, ...)                                                       \
	do {                                                                   \
		if (!(cond)) {                                                 \
			fprintf(stderr, "region_fuzz: %s:%d: check failed: %s: ", \
				__FILE__, __LINE__, #cond);                    \
			fprintf(stderr, __VA_ARGS__);                          \
			fputc('\n', stderr);                                   \
			abort();                                               \
		}                                                              \
	} while (0)

/*
 * Virtual clock for libzinc's region.c (compiled with nanosleep and
 * clock_gettime renamed to these, see meson.build): a sleep advances the
 * clock instead of sleeping.  Deadlines are reached after as many sleeps as
 * in real time, only faster; a loop that never sleeps still shows as a hang.
 */
static int64_t virtual_ns;

int zinc_fuzz_nanosleep(const struct timespec *req, struct timespec *rem);
int zinc_fuzz_nanosleep(const struct timespec *req, struct timespec *rem)
{
	if (rem)
		*rem = (struct timespec){ 0, 0 };
	virtual_ns += (int64_t)req->tv_sec * 1000000000 + req->tv_nsec;
	return 0;
}

int zinc_fuzz_clock_gettime(clockid_t clk, struct timespec *ts);
int zinc_fuzz_clock_gettime(clockid_t clk, struct timespec *ts)
{
	int rc = clock_gettime(clk, ts);
	if (rc == 0 && clk == CLOCK_MONOTONIC) {
		int64_t ns = (int64_t)ts->tv_nsec + virtual_ns;
		ts->tv_sec += (time_t)(ns / 1000000000);
		ts->tv_nsec = (long)(ns % 1000000000);
	}
	return rc;
}

const char *__ubsan_default_options(void);
const char *__ubsan_default_options(void)
{
	return "halt_on_error=1:print_stacktrace=1";
}

static void remove_object(void)
{
	if (unlink(path) < 0 && (errno == EISDIR || errno == EPERM))
		rmdir(path);
}

static void cleanup(void)
{
	remove_object();
	if (own_dir)
		rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	page = (size_t)sysconf(_SC_PAGESIZE);
	const char *d = getenv("ZINC_FUZZ_DIR");
	if (d && *d) {
		snprintf(dir, sizeof(dir), "%s", d);
	} else {
		snprintf(dir, sizeof(dir), "/dev/shm/zinc-fuzz-%d", (int)getpid());
		if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
			perror(dir);
			exit(1);
		}
		own_dir = 1;
	}
	setenv("ZINC_SHM_DIR", dir, 1);
	/* Keep the environment from changing libzinc's behaviour. */
	unsetenv("ZINC_ALWAYS_WAKE");
	unsetenv("ZINC_SPIN_NS");
	snprintf(path, sizeof(path), "%s/" ZINC_OBJECT_PREFIX NAME, dir);
	atexit(cleanup);
	/* A pid that is surely not alive: a reaped child's. */
	pid_t p = fork();
	if (p == 0)
		_exit(0);
	if (p > 0)
		waitpid(p, NULL, 0);
	dead_pid = p > 0 ? p : 0x7ffffff0;
	return 0;
}

/* What libzinc's map_region decides for a regular file of these bytes. */
struct model {
	int valid;    /* maps as a region */
	int removed;  /* ... whose name was removed (ZINC_FLAG_REMOVED) */
	int foreign;  /* ... made by zinc-core (no ext magic) */
	int32_t owner_pid;
	uint32_t ref_count;
};

static struct model model_of(const uint8_t *buf, size_t size)
{
	struct model m = { 0 };
	if (size < 2 * page || size % page)
		return m;
	struct zinc_header h;
	struct zinc_ext e;
	memcpy(&h, buf, sizeof(h));
	memcpy(&e, buf + ZINC_EXT_OFFSET, sizeof(e));
	m.valid = h.magic == ZINC_MAGIC && h.version == ZINC_FORMAT_VERSION &&
		  h.capacity == size - page;
	m.removed = m.valid && (h.flags & ZINC_FLAG_REMOVED);
	m.foreign = e.ext_magic != ZINC_EXT_MAGIC;
	m.owner_pid = h.owner_pid;
	m.ref_count = h.ref_count;
	return m;
}

/* The object as it is now: type (-1 absent) and, for a file, its bytes. */
static int read_object(uint8_t **bufp, size_t *sizep)
{
	struct stat st;
	*bufp = NULL;
	*sizep = 0;
	if (lstat(path, &st) < 0) {
		CHECK(errno == ENOENT, "lstat: %s", strerror(errno));
		return -1;
	}
	if (!S_ISREG(st.st_mode))
		return S_ISDIR(st.st_mode) ? T_DIR : T_SPECIAL;
	size_t size = (size_t)st.st_size;
	uint8_t *buf = calloc(1, size + 1);
	CHECK(buf, "calloc");
	int fd = open(path, O_RDONLY);
	CHECK(fd >= 0, "open: %s", strerror(errno));
	CHECK(pread(fd, buf, size, 0) == (ssize_t)size, "pread");
	close(fd);
	*bufp = buf;
	*sizep = size;
	return T_FILE;
}

static int pid_alive(pid_t pid)
{
	return pid > 0 && (kill(pid, 0) == 0 || errno == EPERM);
}

/* Expected zinc_open / zinc_stat result for the object as it is now. */
static int expected_open(void)
{
	uint8_t *buf;
	size_t size;
	int type = read_object(&buf, &size);
	int rc;
	if (type < 0)
		rc = -ENOENT;
	else if (type != T_FILE)
		rc = -EBADMSG;
	else {
		struct model m = model_of(buf, size);
		rc = !m.valid ? -EBADMSG : m.removed ? -ENOENT : 0;
	}
	free(buf);
	return rc;
}

/* Expected zinc_create result: no owner handle of it is open here. */
static int expected_create(int handle_open)
{
	uint8_t *buf;
	size_t size;
	int type = read_object(&buf, &size);
	int rc = 0;
	if (type == T_DIR || type == T_SPECIAL)
		rc = -EEXIST; /* not ours to delete */
	else if (type == T_FILE) {
		struct model m = model_of(buf, size);
		if (m.valid && m.foreign && pid_alive(m.owner_pid))
			rc = -EEXIST; /* zinc-core owner alive */
		else if (!m.valid && handle_open)
			rc = -EEXIST; /* cannot happen: no handle of a non-region */
	}
	free(buf);
	return rc;
}

static void exercise(zinc_region *r, size_t size, int counting)
{
	struct zinc_info info;
	size_t cap = zinc_capacity(r);
	CHECK(cap == size - page, "capacity %zu of a %zu-byte object", cap, size);
	uint8_t *p = zinc_ptr(r);
	CHECK(p && (uintptr_t)p % page == 0, "data %p", (void *)p);
	/* The whole data area is mapped. */
	volatile uint8_t *v = p;
	uint8_t first = v[0], last = v[cap - 1];
	v[0] = first;
	v[cap - 1] = (uint8_t)(last + 1);
	v[cap - 1] = last;
	CHECK(zinc_name(r) && strcmp(zinc_name(r), NAME) == 0, "name");
	CHECK(zinc_fd(r) >= 0, "fd");
	CHECK(zinc_removed(r) == 0, "removed after a successful open");
	int rc = zinc_try_wait(r);
	CHECK(rc == 0 || rc == -EAGAIN, "first try_wait %d", rc);
	CHECK(zinc_try_wait(r) == -EAGAIN, "second try_wait");
	uint32_t s0 = zinc_seq(r);
	zinc_notify(r);
	CHECK(zinc_seq(r) == s0 + 1, "seq %u after %u", zinc_seq(r), s0);
	CHECK(zinc_try_wait(r) == 0, "try_wait after notify");
	CHECK(zinc_wait(r, 0) == -ETIMEDOUT, "wait(0) with nothing pending");
	CHECK(zinc_watch(r, 1) == 0 && zinc_watch(r, 1) == 0, "watch on");
	zinc_notify(r);
	CHECK(zinc_watch(r, 0) == 0, "watch off");
	CHECK(zinc_wait(r, 1) == 0, "wait after notify");
	CHECK(zinc_set_spin(r, 0) == 0, "set_spin");
	CHECK(zinc_futex_word(r) != NULL, "futex word");
	CHECK(zinc_handle_stat(r, &info) == 0, "handle_stat");
	CHECK(info.capacity == cap, "info.capacity %llu",
	      (unsigned long long)info.capacity);
	(void)counting;
}

/* Close a handle; check the lifetime rule "the last counting handle
 * removes the name" (zinc-core regions: when the header's count says so)
 * and that an observer's close changes nothing. */
static int same_object(const struct stat *a)
{
	struct stat b;
	return lstat(path, &b) == 0 && a->st_dev == b.st_dev && a->st_ino == b.st_ino;
}

static void close_checked(zinc_region *r, int counting)
{
	struct zinc_info info;
	struct stat a;
	CHECK(zinc_handle_stat(r, &info) == 0, "handle_stat");
	CHECK(fstat(zinc_fd(r), &a) == 0, "fstat");
	int named = same_object(&a);
	int removes = counting && named && zinc_removed(r) == 0 &&
		      (!info.foreign || info.ref_count <= 1);
	zinc_close(r);
	CHECK(same_object(&a) == (named && !removes),
	      "close (counting %d, foreign %d, refs %u): name %s", counting,
	      info.foreign, info.ref_count, same_object(&a) ? "kept" : "removed");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	if (len < 3)
		return 0;
	uint8_t sel = data[0], patch = data[1], ops = data[2];
	const uint8_t *body = data + 3;
	size_t blen = len - 3;
	int type = patch >> 6;
	if (type == T_FILE2)
		type = T_FILE;

	/* 14 sizes around the boundaries, or the body's own length. */
	static const long sizes[14][2] = {
		{ 0, 0 }, { 0, 1 }, { 0, 64 }, { 1, -1 }, { 1, 0 }, { 1, 1 },
		{ 2, -1 }, { 2, 0 }, { 2, 1 }, { 3, 0 }, { 4, 0 }, { 5, 0 },
		{ 8, 0 }, { 16, 0 },
	};
	unsigned idx = sel & 15;
	size_t size = idx < 14 ? (size_t)(sizes[idx][0] * (long)page + sizes[idx][1])
			       : blen;

	remove_object();
	if (type == T_DIR) {
		CHECK(mkdir(path, 0700) == 0, "mkdir: %s", strerror(errno));
	} else if (type == T_SPECIAL) {
		if (ops & O_SYMLINK)
			CHECK(symlink(blen ? "zinc_fz" : "/nonexistent", path) == 0,
			      "symlink: %s", strerror(errno));
		else
			CHECK(mkfifo(path, 0600) == 0, "mkfifo: %s", strerror(errno));
	} else {
		uint8_t *buf = malloc(size + 1);
		CHECK(buf, "malloc %zu", size);
		memset(buf, (sel >> 6) == 3 ? 0 : 0xA5, size + 1);
		memcpy(buf, body, blen < size ? blen : size);
		struct zinc_header h;
		struct zinc_ext e;
		if (size >= sizeof(h)) {
			memcpy(&h, buf, sizeof(h));
			if (patch & F_MAGIC)
				h.magic = ZINC_MAGIC;
			if (patch & F_VERSION)
				h.version = ZINC_FORMAT_VERSION;
			if (patch & F_CAPACITY)
				h.capacity = size >= page ? size - page : 0;
			if (patch & F_NOFLAGS)
				h.flags = 0;
			if (patch & F_PID) {
				static int32_t pids[4];
				pids[0] = 0;
				pids[1] = (int32_t)getpid();
				pids[2] = 1;
				pids[3] = (int32_t)dead_pid;
				h.owner_pid = pids[(ops >> O_PIDSHIFT) & 3];
			}
			memcpy(buf, &h, sizeof(h));
		}
		if (size >= ZINC_EXT_OFFSET + sizeof(e) && (patch & F_EXT)) {
			memcpy(&e, buf + ZINC_EXT_OFFSET, sizeof(e));
			e.ext_magic = ZINC_EXT_MAGIC;
			memcpy(buf + ZINC_EXT_OFFSET, &e, sizeof(e));
		}
		int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		CHECK(fd >= 0, "create %s: %s", path, strerror(errno));
		CHECK(size == 0 || write(fd, buf, size) == (ssize_t)size,
		      "write: %s", strerror(errno));
		close(fd);
		free(buf);
	}

	struct zinc_info info;
	int want = expected_open();
	if (ops & O_STAT) {
		int rc = zinc_stat(NAME, &info);
		CHECK(rc == want, "zinc_stat %d, expected %d", rc, want);
		if (rc == 0)
			CHECK(info.capacity == size - page, "stat capacity");
	}

	zinc_region *r = NULL, *o = NULL;
	if (ops & O_OPEN) {
		int rc = zinc_open(NAME, &r);
		CHECK(rc == want, "zinc_open %d, expected %d", rc, want);
		CHECK((rc == 0) == (r != NULL), "handle %p with rc %d", (void *)r, rc);
		if (r)
			exercise(r, size, 1);
	}
	if (ops & O_OBSERVE) {
		int rc = zinc_open_ex(NAME, ZINC_OPEN_OBSERVE, &o);
		/* A counting handle's last close may already have removed
		 * it, but only a close does that: none happened yet. */
		CHECK(rc == want, "zinc_open_ex(observe) %d, expected %d", rc, want);
		if (o)
			exercise(o, size, 0);
	}
	zinc_region *bad = (zinc_region *)&bad;
	CHECK(zinc_open_ex(NAME, 0x100, &bad) == -EINVAL && !bad, "unknown flag");

	if (!(ops & O_KEEP)) {
		if (o)
			close_checked(o, 0);
		if (r)
			close_checked(r, 1);
		o = r = NULL;
	}

	if (ops & O_CREATE) {
		zinc_region *n = NULL;
		size_t cap = page * (1 + ((sel >> 4) & 3) % 3);
		int want_c = expected_create(r != NULL);
		int rc = zinc_create(NAME, cap, &n);
		CHECK(rc == want_c, "zinc_create %d, expected %d", rc, want_c);
		if (n) {
			CHECK(zinc_capacity(n) == cap, "created capacity");
			CHECK(expected_open() == 0, "created region does not validate");
			if (r) {
				CHECK(zinc_removed(r) == 1, "replaced region not marked removed");
				CHECK(zinc_try_wait(r) == -EIDRM, "replaced region: no EIDRM");
			}
			zinc_notify(n);
			CHECK(zinc_handle_stat(n, &info) == 0 && info.owner_alive,
			      "owner handle");
			zinc_close(n); /* the only handle: removes the name */
			CHECK(expected_open() == -ENOENT, "owner's close kept the name");
		}
	}
	if (o)
		close_checked(o, 0);
	if (r)
		close_checked(r, 1);

	/* zinc_unlink on what is left; then nothing may remain. */
	int rc = zinc_unlink(NAME);
	CHECK(rc == 0 || rc == -ENOENT || rc == -EISDIR || rc == -EPERM,
	      "zinc_unlink %d", rc);
	remove_object();
	struct stat st;
	CHECK(lstat(path, &st) < 0 && errno == ENOENT, "object left behind");
	return 0;
}
