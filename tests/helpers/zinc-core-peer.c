/* SPDX-License-Identifier: MIT */
/*
 * zinc-core-peer: a process that uses a region exactly as zinc-core (zinc's
 * Rust core, v2) does, without libzinc, so tests can put a zinc-core handle
 * next to libzinc and zincfs on the same region.  What it copies from
 * zinc-core's region.rs, sync.rs and platform/unix.rs:
 *
 *   create  shm_open(O_CREAT|O_EXCL|O_RDWR, 0600), ftruncate(page + cap),
 *           mmap, header fields, ref_count 1, owner_pid, magic stored last
 *           (release); nothing in the rest of the header page, no locks
 *   open    shm_open(O_RDWR), size >= 2 pages and a page multiple, mmap,
 *           magic (acquire) / version / capacity == size - page checked
 *           (else -EBADMSG), ref_count incremented unless 0 or UINT32_MAX
 *   notify  seq += 1 (release), then FUTEX_WAKE (shared) always
 *   wait    cursor starts at 0; a seq other than the cursor is consumed at
 *           once, else FUTEX_WAIT (shared) on the word for the value of
 *           the cursor until it changes or the time is up; it never counts
 *           itself anywhere (no waiter word)
 *   close   ref_count -= 1; the creator's handle then unlinks the name,
 *           whatever other handles exist; a killed creator leaves it
 *
 * The object is $ZINC_SHM_DIR/zinc_NAME when ZINC_SHM_DIR is set (what
 * shm_open does in /dev/shm), so tests can use a private directory.
 *
 * Driven on stdin like zinc-helper: one reply line per command, "ok
 * [VALUES]" or "err -ERRNO MESSAGE".  It holds at most one handle.
 *
 *   create NAME CAP   open NAME -> ok CAPACITY   close
 *   notify [N] -> ok SEQ      wait MS (-1: UINT32_MAX) -> ok SEQ
 *   trywait -> ok SEQ         seq -> ok SEQ      refs -> ok REF_COUNT
 *   write OFF HEX             read OFF LEN -> ok HEX
 *   pid -> ok PID             exit
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <zinc.h>

static struct {
	char name[ZINC_NAME_MAX + 1];
	struct zinc_header *hdr;
	size_t len;       /* mapped bytes: page + capacity */
	uint32_t cursor;  /* zinc-core's last_seq */
	int owner;
} h;

static size_t page(void)
{
	return (size_t)sysconf(_SC_PAGESIZE);
}

static int object_path(const char *name, char *buf, size_t len)
{
	const char *dir = getenv("ZINC_SHM_DIR");
	size_t n = strlen(name);
	if (n == 0 || n > ZINC_NAME_MAX || strspn(name, "abcdefghijklmnopqrstuvwxyz"
		    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") != n)
		return -EINVAL;
	snprintf(buf, len, "%s/zinc_%s", dir && *dir ? dir : "/dev/shm", name);
	return 0;
}

/* zinc-core's error_code(): EACCES is reported as -1 (EPERM). */
static int sys_err(void)
{
	return errno == EACCES ? -EPERM : -errno;
}

static uint64_t fnv1a(const char *s)
{
	uint64_t x = 0xcbf29ce484222325ULL;
	for (; *s; s++)
		x = (x ^ (uint8_t)*s) * 0x100000001b3ULL;
	return x;
}

static int map(const char *name, size_t create_len)
{
	char path[PATH_MAX];
	struct stat st;
	int rc = object_path(name, path, sizeof(path));
	if (rc)
		return rc;
	int flags = O_RDWR | O_NOFOLLOW | O_CLOEXEC | (create_len ? O_CREAT | O_EXCL : 0);
	int fd = open(path, flags, 0600);
	if (fd < 0)
		return sys_err();
	size_t len = create_len;
	if (create_len && ftruncate(fd, (off_t)create_len) < 0) {
		rc = sys_err();
	} else if (!create_len) {
		if (fstat(fd, &st) < 0)
			rc = sys_err();
		else if (st.st_size < (off_t)(2 * page()) || st.st_size % (off_t)page())
			rc = -EBADMSG;
		len = (size_t)st.st_size;
	}
	void *p = rc ? MAP_FAILED : mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (!rc && p == MAP_FAILED)
		rc = sys_err();
	close(fd);
	if (rc) {
		if (create_len)
			unlink(path);
		return rc;
	}
	snprintf(h.name, sizeof(h.name), "%s", name);
	h.hdr = p;
	h.len = len;
	h.cursor = 0;
	return 0;
}

static void unmap(void)
{
	munmap(h.hdr, h.len);
	h.hdr = NULL;
}

static int do_create(const char *name, unsigned long long cap)
{
	if (cap == 0 || cap % page() || cap > (unsigned long long)SSIZE_MAX - page())
		return -EINVAL;
	int rc = map(name, page() + cap);
	if (rc)
		return rc;
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	h.hdr->version = ZINC_FORMAT_VERSION;
	h.hdr->flags = 0;
	h.hdr->capacity = cap;
	h.hdr->created_at = (uint64_t)now.tv_sec * 1000000000ULL + (uint64_t)now.tv_nsec;
	h.hdr->name_hash = fnv1a(name);
	__atomic_store_n(&h.hdr->ref_count, 1, __ATOMIC_RELAXED);
	__atomic_store_n(&h.hdr->owner_pid, (int32_t)getpid(), __ATOMIC_RELAXED);
	__atomic_store_n(&h.hdr->magic, ZINC_MAGIC, __ATOMIC_RELEASE);
	h.owner = 1;
	return 0;
}

static int do_open(const char *name)
{
	int rc = map(name, 0);
	if (rc)
		return rc;
	uint32_t n = __atomic_load_n(&h.hdr->ref_count, __ATOMIC_RELAXED);
	if (__atomic_load_n(&h.hdr->magic, __ATOMIC_ACQUIRE) != ZINC_MAGIC ||
	    h.hdr->version != ZINC_FORMAT_VERSION || h.hdr->capacity != h.len - page())
		rc = -EBADMSG;
	while (!rc) {
		if (n == 0 || n == UINT32_MAX)
			rc = -EBADMSG;
		else if (__atomic_compare_exchange_n(&h.hdr->ref_count, &n, n + 1, 1,
						     __ATOMIC_RELAXED, __ATOMIC_RELAXED))
			break;
	}
	if (rc)
		unmap();
	h.owner = 0;
	return rc;
}

static void do_close(void)
{
	char path[PATH_MAX];
	if (!h.hdr)
		return;
	__atomic_fetch_sub(&h.hdr->ref_count, 1, __ATOMIC_RELAXED);
	if (h.owner && object_path(h.name, path, sizeof(path)) == 0)
		unlink(path);
	unmap();
}

static void do_notify(void)
{
	__atomic_fetch_add(&h.hdr->notify_seq, 1, __ATOMIC_RELEASE);
	syscall(SYS_futex, &h.hdr->notify_seq, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}

static int try_wait(void)
{
	uint32_t cur = __atomic_load_n(&h.hdr->notify_seq, __ATOMIC_ACQUIRE);
	if (cur == h.cursor)
		return -EAGAIN;
	h.cursor = cur;
	return 0;
}

static int64_t now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1000000000LL + t.tv_nsec;
}

static int do_wait(uint32_t timeout_ms)
{
	uint32_t last = h.cursor;
	if (try_wait() == 0)
		return 0;
	int64_t end = now_ns() + (int64_t)timeout_ms * 1000000;
	while (__atomic_load_n(&h.hdr->notify_seq, __ATOMIC_ACQUIRE) == last) {
		int64_t left = end - now_ns();
		if (left <= 0)
			return -ETIMEDOUT;
		struct timespec ts = { left / 1000000000, left % 1000000000 };
		/* EAGAIN, EINTR and ETIMEDOUT all mean: look again. */
		syscall(SYS_futex, &h.hdr->notify_seq, FUTEX_WAIT, last, &ts, NULL, 0);
	}
	h.cursor = __atomic_load_n(&h.hdr->notify_seq, __ATOMIC_ACQUIRE);
	return 0;
}

static int in_range(unsigned long long off, unsigned long long len)
{
	unsigned long long cap = h.len - page();
	return off <= cap && len <= cap - off;
}

static void reply(int rc, const char *fmt, unsigned long long v)
{
	if (rc)
		printf("err %d %s\n", rc, strerror(-rc));
	else if (fmt)
		printf(fmt, v);
	else
		printf("ok\n");
}

static void command(char *line)
{
	char *save = NULL;
	char *cmd = strtok_r(line, " \t\n", &save);
	char *a1 = strtok_r(NULL, " \t\n", &save);
	char *a2 = strtok_r(NULL, " \t\n", &save);
	uint8_t *data = h.hdr ? (uint8_t *)h.hdr + page() : NULL;

	if (cmd && !strcmp(cmd, "pid")) {
		reply(0, "ok %llu\n", (unsigned long long)getpid());
	} else if (cmd && !strcmp(cmd, "exit")) {
		do_close();
		printf("ok\n");
		fflush(stdout);
		exit(0);
	} else if (cmd && !strcmp(cmd, "create") && a1 && a2) {
		do_close();
		reply(do_create(a1, strtoull(a2, NULL, 0)), NULL, 0);
	} else if (cmd && !strcmp(cmd, "open") && a1) {
		do_close();
		int rc = do_open(a1);
		reply(rc, "ok %llu\n", rc ? 0 : (unsigned long long)(h.len - page()));
	} else if (!cmd || !h.hdr) {
		printf("err %d no handle or no command\n", -EINVAL);
	} else if (!strcmp(cmd, "close")) {
		do_close();
		printf("ok\n");
	} else if (!strcmp(cmd, "notify")) {
		for (long i = a1 ? atol(a1) : 1; i > 0; i--)
			do_notify();
		reply(0, "ok %llu\n", h.hdr->notify_seq);
	} else if (!strcmp(cmd, "wait") && a1) {
		long ms = atol(a1);
		int rc = do_wait(ms < 0 ? UINT32_MAX : (uint32_t)ms);
		reply(rc, "ok %llu\n", h.cursor);
	} else if (!strcmp(cmd, "trywait")) {
		int rc = try_wait();
		reply(rc, "ok %llu\n", h.cursor);
	} else if (!strcmp(cmd, "seq")) {
		reply(0, "ok %llu\n", __atomic_load_n(&h.hdr->notify_seq, __ATOMIC_ACQUIRE));
	} else if (!strcmp(cmd, "refs")) {
		reply(0, "ok %llu\n", __atomic_load_n(&h.hdr->ref_count, __ATOMIC_RELAXED));
	} else if (!strcmp(cmd, "write") && a1 && a2) {
		unsigned long long off = strtoull(a1, NULL, 0);
		size_t n = strlen(a2) / 2;
		unsigned int byte;
		if (!in_range(off, n)) {
			reply(-ERANGE, NULL, 0);
			return;
		}
		for (size_t i = 0; i < n && sscanf(a2 + 2 * i, "%2x", &byte) == 1; i++)
			data[off + i] = (uint8_t)byte;
		reply(0, NULL, 0);
	} else if (!strcmp(cmd, "read") && a1 && a2) {
		unsigned long long off = strtoull(a1, NULL, 0), len = strtoull(a2, NULL, 0);
		if (!in_range(off, len)) {
			reply(-ERANGE, NULL, 0);
			return;
		}
		fputs("ok ", stdout);
		for (unsigned long long i = 0; i < len; i++)
			printf("%02x", data[off + i]);
		putchar('\n');
	} else {
		printf("err %d unknown command or missing argument: %s\n", -EINVAL, cmd);
	}
}

int main(void)
{
	char *line = NULL;
	size_t cap = 0;
	setvbuf(stdout, NULL, _IOLBF, 0);
	while (getline(&line, &cap, stdin) > 0) {
		command(line);
		fflush(stdout);
	}
	free(line);
	do_close();
	return 0;
}
