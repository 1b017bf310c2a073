/* SPDX-License-Identifier: MIT */
/*
 * zinc-helper: a libzinc program driven line by line on stdin, so the pytest
 * suite can act as a producer, consumer, waiter, notifier or holder in a
 * process of its own (honours ZINC_SHM_DIR like every libzinc program).
 *
 * Usage: zinc-helper            (read commands on stdin until EOF / "exit")
 *
 * Each command gets exactly one reply line: "ok [VALUES]" or
 * "err -ERRNO MESSAGE".  The process holds at most one handle.
 *
 *   create NAME CAP       zinc_create (owner handle)
 *   open NAME             zinc_open            -> ok CAPACITY
 *   observe NAME          zinc_open_ex(OBSERVE) -> ok CAPACITY
 *   close                 zinc_close
 *   write OFF HEX         copy bytes into the data area
 *   fill OFF LEN BYTE     memset (BYTE decimal)
 *   read OFF LEN          -> ok HEX
 *   notify [N]            zinc_notify N times  -> ok SEQ
 *   wait MS               zinc_wait (MS = -1 waits forever) -> ok SEQ
 *   trywait               zinc_try_wait        -> ok SEQ
 *   seq                   zinc_seq             -> ok SEQ
 *   removed               zinc_removed         -> ok 0|1
 *   hstat                 zinc_handle_stat     -> ok key=value ...
 *   stat NAME             zinc_stat            -> ok key=value ...
 *   unlink NAME           zinc_unlink
 *   pid                   -> ok PID
 *   exit                  close the handle and exit 0
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zinc.h>

static zinc_region *h;

static void reply_err(int rc)
{
	printf("err %d %s\n", rc, zinc_strerror(rc));
}

static void reply_info(const struct zinc_info *i)
{
	printf("ok capacity=%llu seq=%u refs=%u waiters=%u owner_pid=%d "
	       "created_at=%llu flags=%u owner_alive=%u in_use=%u foreign=%u\n",
	       (unsigned long long)i->capacity, i->seq, i->ref_count, i->waiters,
	       i->owner_pid, (unsigned long long)i->created_at, i->flags,
	       i->owner_alive, i->in_use, i->foreign);
}

static int need_handle(void)
{
	if (h)
		return 1;
	printf("err %d no handle\n", -EINVAL);
	return 0;
}

/* Bounds check [off, off+len) against the data area. */
static int in_range(unsigned long long off, unsigned long long len)
{
	unsigned long long cap = zinc_capacity(h);
	if (off > cap || len > cap - off) {
		printf("err %d out of range\n", -ERANGE);
		return 0;
	}
	return 1;
}

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static void command(char *line)
{
	char *save = NULL;
	char *cmd = strtok_r(line, " \t\n", &save);
	char *a1 = strtok_r(NULL, " \t\n", &save);
	char *a2 = strtok_r(NULL, " \t\n", &save);
	char *a3 = strtok_r(NULL, " \t\n", &save);
	int rc;

	if (!cmd) {
		printf("err %d empty command\n", -EINVAL);
	} else if (!strcmp(cmd, "create") && a1 && a2) {
		zinc_close(h);
		rc = zinc_create(a1, strtoull(a2, NULL, 0), &h);
		rc ? reply_err(rc) : (void)printf("ok\n");
	} else if ((!strcmp(cmd, "open") || !strcmp(cmd, "observe")) && a1) {
		zinc_close(h);
		rc = zinc_open_ex(a1, cmd[0] == 'o' && cmd[1] == 'b' ? ZINC_OPEN_OBSERVE : 0, &h);
		rc ? reply_err(rc) : (void)printf("ok %llu\n",
					 (unsigned long long)zinc_capacity(h));
	} else if (!strcmp(cmd, "close")) {
		zinc_close(h);
		h = NULL;
		printf("ok\n");
	} else if (!strcmp(cmd, "write") && a1) {
		if (!need_handle())
			return;
		unsigned long long off = strtoull(a1, NULL, 0);
		size_t n = a2 ? strlen(a2) / 2 : 0;
		if (!in_range(off, n))
			return;
		uint8_t *p = zinc_ptr(h) + off;
		for (size_t i = 0; i < n; i++) {
			int hi = hexval(a2[2 * i]), lo = hexval(a2[2 * i + 1]);
			if (hi < 0 || lo < 0) {
				printf("err %d bad hex\n", -EINVAL);
				return;
			}
			p[i] = (uint8_t)(hi << 4 | lo);
		}
		printf("ok\n");
	} else if (!strcmp(cmd, "fill") && a1 && a2 && a3) {
		if (!need_handle())
			return;
		unsigned long long off = strtoull(a1, NULL, 0);
		unsigned long long len = strtoull(a2, NULL, 0);
		if (!in_range(off, len))
			return;
		memset(zinc_ptr(h) + off, atoi(a3), len);
		printf("ok\n");
	} else if (!strcmp(cmd, "read") && a1 && a2) {
		if (!need_handle())
			return;
		unsigned long long off = strtoull(a1, NULL, 0);
		unsigned long long len = strtoull(a2, NULL, 0);
		if (!in_range(off, len))
			return;
		const uint8_t *p = zinc_ptr(h) + off;
		fputs("ok ", stdout);
		for (unsigned long long i = 0; i < len; i++)
			printf("%02x", p[i]);
		putchar('\n');
	} else if (!strcmp(cmd, "notify")) {
		if (!need_handle())
			return;
		long n = a1 ? atol(a1) : 1;
		for (long i = 0; i < n; i++)
			zinc_notify(h);
		printf("ok %u\n", zinc_seq(h));
	} else if (!strcmp(cmd, "wait") && a1) {
		if (!need_handle())
			return;
		long ms = atol(a1);
		rc = zinc_wait(h, ms < 0 ? UINT32_MAX : (uint32_t)ms);
		rc ? reply_err(rc) : (void)printf("ok %u\n", zinc_seq(h));
	} else if (!strcmp(cmd, "trywait")) {
		if (!need_handle())
			return;
		rc = zinc_try_wait(h);
		rc ? reply_err(rc) : (void)printf("ok %u\n", zinc_seq(h));
	} else if (!strcmp(cmd, "seq")) {
		if (need_handle())
			printf("ok %u\n", zinc_seq(h));
	} else if (!strcmp(cmd, "removed")) {
		if (need_handle())
			printf("ok %d\n", zinc_removed(h));
	} else if (!strcmp(cmd, "hstat")) {
		struct zinc_info info;
		if (!need_handle())
			return;
		rc = zinc_handle_stat(h, &info);
		rc ? reply_err(rc) : reply_info(&info);
	} else if (!strcmp(cmd, "stat") && a1) {
		struct zinc_info info;
		rc = zinc_stat(a1, &info);
		rc ? reply_err(rc) : reply_info(&info);
	} else if (!strcmp(cmd, "unlink") && a1) {
		rc = zinc_unlink(a1);
		rc ? reply_err(rc) : (void)printf("ok\n");
	} else if (!strcmp(cmd, "pid")) {
		printf("ok %d\n", (int)getpid());
	} else if (!strcmp(cmd, "exit")) {
		zinc_close(h);
		printf("ok\n");
		fflush(stdout);
		exit(0);
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
	zinc_close(h);
	return 0;
}
