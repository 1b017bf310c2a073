/* SPDX-License-Identifier: MIT */
/*
 * zinc wait NAME... [TIMEOUT_MS]: wait for the next notification of any of
 * the regions (zinc_wait_any) and print what fired.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <zinc.h>
#include "tool.h"

volatile sig_atomic_t end_signal;

static void on_end_signal(int sig)
{
	end_signal = sig;
}

void catch_end_signals(void)
{
	/* No SA_RESTART: the wait returns -EINTR (ZINC_WAIT_EINTR) and we
	 * leave through zinc_wait_any's return, which stops counting us as
	 * a waiter.  A signal just before the wait sleeps is seen when the
	 * current slice ends (SLICE_MS). */
	struct sigaction sa = { .sa_handler = on_end_signal };
	sigfillset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
}

static int all_digits(const char *s)
{
	if (!*s)
		return 0;
	for (; *s; s++)
		if (*s < '0' || *s > '9')
			return 0;
	return 1;
}

static int64_t now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* Open names[0..n-1] as header-only observers (waiting neither keeps a
 * region alive nor maps its data); only later notifications count. */
int open_observers(const char *cmd, char **names, uint32_t n, zinc_region **h)
{
	for (uint32_t i = 0; i < n; i++) {
		int rc = zinc_open_ex(names[i], ZINC_OPEN_OBSERVE | ZINC_OPEN_HEADER,
				      &h[i]);
		if (rc) {
			for (uint32_t j = 0; j < i; j++)
				zinc_close(h[j]);
			return fail(cmd, names[i], rc);
		}
		zinc_try_wait(h[i]);
	}
	return EXIT_OK;
}

/* Wait on the n regions names[]; print and return the exit code. */
static int wait_on(char **names, uint32_t n, uint32_t timeout)
{
	zinc_region **h = calloc(n, sizeof(*h));
	int32_t *ready = calloc(n, sizeof(*ready));
	uint32_t *seqs = calloc(n, sizeof(*seqs));
	int rc = !h || !ready || !seqs ? -ENOMEM : 0, status = EXIT_REMOVED;
	if (rc || (status = open_observers("wait", names, n, h)) != EXIT_OK) {
		if (rc)
			status = fail("wait", names[0], rc);
		goto out_free;
	}
	int64_t end = now_ms() + timeout;
	for (;;) {
		uint32_t slice = SLICE_MS;
		if (timeout != UINT32_MAX) {
			int64_t left = end - now_ms();
			slice = left <= 0 ? 0 : left < SLICE_MS ? (uint32_t)left : SLICE_MS;
		}
		rc = zinc_wait_any(h, n, ready, seqs, slice, ZINC_WAIT_EINTR);
		if (end_signal) {
			status = 128 + end_signal;
			goto out;
		}
		if (rc > 0 || (rc == -ETIMEDOUT && slice < SLICE_MS &&
			       timeout != UINT32_MAX))
			break;
		if (rc != -ETIMEDOUT && rc != -EINTR)
			break;
	}
	if (rc < 0) {
		status = fail("wait", n == 1 ? names[0] : "(any)", rc);
		goto out;
	}
	status = EXIT_REMOVED;
	for (uint32_t i = 0; i < n; i++) {
		if (ready[i] == 1) {
			status = EXIT_OK;
			if (n == 1)
				printf("%u\n", seqs[i]);
			else
				printf("%s %u\n", names[i], seqs[i]);
		} else if (ready[i] == -EIDRM) {
			fail("wait", names[i], -EIDRM);
		}
	}
out:
	for (uint32_t i = 0; i < n; i++)
		zinc_close(h[i]);
out_free:
	free(h);
	free(ready);
	free(seqs);
	return status;
}

static int parse_and_wait(int argc, char **argv, char **pos)
{
	int npos = parse_args("wait", argc, argv, NULL, pos, argc);
	if (npos == -2) {
		usage(stdout);
		return EXIT_OK;
	}
	if (npos == 0) {
		fprintf(stderr, "%s: wait: missing argument (see zinc --help)\n", prog);
		return EXIT_USAGE;
	}
	if (npos < 0)
		return EXIT_USAGE;
	/* A last all-digits argument after a name is the timeout (names may
	 * be all digits too: such a name is never last, or has a timeout
	 * after it). */
	uint32_t n = (uint32_t)npos, timeout = UINT32_MAX;
	if (n >= 2 && all_digits(pos[n - 1])) {
		errno = 0;
		unsigned long long t = strtoull(pos[n - 1], NULL, 10);
		if (errno || t >= UINT32_MAX) {
			fprintf(stderr, "%s: wait: invalid TIMEOUT_MS '%s' (0 to %u)\n",
				prog, pos[n - 1], UINT32_MAX - 1);
			return EXIT_USAGE;
		}
		timeout = (uint32_t)t;
		n--;
	}
	if (n > ZINC_WAIT_ANY_MAX) {
		fprintf(stderr, "%s: wait: more than %d regions\n", prog,
			ZINC_WAIT_ANY_MAX);
		return EXIT_USAGE;
	}
	for (uint32_t i = 0; i < n; i++)
		if (check_name("wait", pos[i]))
			return EXIT_USAGE;
	catch_end_signals();
	return wait_on(pos, n, timeout);
}

int cmd_wait(int argc, char **argv)
{
	char **pos = calloc((size_t)argc + 1, sizeof(*pos));
	if (!pos)
		return EXIT_FAIL;
	int status = parse_and_wait(argc, argv, pos);
	free(pos);
	return status;
}
