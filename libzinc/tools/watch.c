/* SPDX-License-Identifier: MIT */
/*
 * zinc watch [--json] [NAME...]: stream the notifications of regions (all
 * of them, including later ones, when no name is given) until
 * SIGINT/SIGTERM/SIGHUP.  Lines: '+NAME SEQ' (followed from now on: every
 * region at the start, then each that appears), 'NAME SEQ' (notified),
 * '-NAME' (removed); --json: one object per line.
 *
 * One zinc_wait_any over every open handle; an inotify descriptor on the
 * region directory, read between waits (so a new region shows within
 * SLICE_MS), says when to look for new regions.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/resource.h>
#include <unistd.h>

#include <zinc.h>
#include "../name.h"
#include "tool.h"

/* About 10 s of slices. */
#define RETRY_SLICES 40

struct watch {
	zinc_region **h;
	int32_t *ready;
	uint32_t *seqs;
	uint32_t n, cap;
	char **want;     /* names given, or NULL: every region */
	uint32_t nwant;
	int json;
	int retry;       /* a region could not be opened yet: look again */
	int retries;     /* slices left to look again without a directory event */
};

static void emit(struct watch *w, char kind, const char *name, uint32_t seq)
{
	if (w->json) {
		static const char *const what[] = { ['=' ] = "notify",
			['+'] = "create", ['-'] = "remove" };
		printf("{\"event\":\"%s\",\"name\":", what[(unsigned char)kind]);
		json_str(stdout, name);
		if (kind != '-')
			printf(",\"seq\":%u", seq);
		fputs("}\n", stdout);
	} else if (kind == '-') {
		printf("-%s\n", name);
	} else {
		printf("%s%s %u\n", kind == '+' ? "+" : "", name, seq);
	}
}

static int is_open(struct watch *w, const char *name)
{
	for (uint32_t i = 0; i < w->n; i++)
		if (!strcmp(zinc_name(w->h[i]), name))
			return 1;
	return 0;
}

static int grow(struct watch *w)
{
	if (w->n < w->cap)
		return 0;
	uint32_t cap = w->cap ? w->cap * 2 : 64;
	zinc_region **h = realloc(w->h, cap * sizeof(*h));
	if (h)
		w->h = h;
	int32_t *ready = realloc(w->ready, cap * sizeof(*ready));
	if (ready)
		w->ready = ready;
	uint32_t *seqs = realloc(w->seqs, cap * sizeof(*seqs));
	if (seqs)
		w->seqs = seqs;
	if (!h || !ready || !seqs)
		return -ENOMEM;
	w->cap = cap;
	return 0;
}

/* Open NAME if it is a region we do not follow yet: '+NAME SEQ'. */
static int add(const char *name, void *arg)
{
	struct watch *w = arg;
	zinc_region *r;
	if (is_open(w, name) || w->n == ZINC_WAIT_ANY_MAX || grow(w))
		return 0;
	int rc = zinc_open_ex(name, ZINC_OPEN_OBSERVE | ZINC_OPEN_HEADER, &r);
	if (rc) {
		/* A region being created is not valid yet, and its creator's
		 * last store makes no inotify event. */
		if (rc == -EBADMSG || rc == -ENOENT)
			w->retry = 1;
		return 0;
	}
	zinc_try_wait(r);
	w->h[w->n++] = r;
	emit(w, '+', name, zinc_seq(r));
	return 0;
}

static void look_for_new(struct watch *w)
{
	w->retry = 0;
	if (!w->want) {
		zinc_list(add, w);
		return;
	}
	for (uint32_t i = 0; i < w->nwant; i++)
		add(w->want[i], w);
}

/* 1 if an inotify event arrived (drains them all). */
static int dir_changed(int ino)
{
	char buf[4096] __attribute__((aligned(8)));
	int any = 0;
	while (ino >= 0 && read(ino, buf, sizeof(buf)) > 0)
		any = 1;
	return any;
}

/* Enough descriptors for many regions. */
static void raise_fd_limit(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

static int run_watch(struct watch *w, int *ino_out, int argc, char **argv,
		     char **pos)
{
	struct opt opts[] = { { NULL, "--json", &w->json }, { 0 } };
	int npos = parse_args("watch", argc, argv, opts, pos, argc);
	if (npos == -2) {
		usage(stdout);
		return EXIT_OK;
	}
	if (npos < 0)
		return EXIT_USAGE;
	for (int i = 0; i < npos; i++)
		if (check_name("watch", pos[i]))
			return EXIT_USAGE;
	if (npos > ZINC_WAIT_ANY_MAX) {
		fprintf(stderr, "%s: watch: more than %d regions\n", prog,
			ZINC_WAIT_ANY_MAX);
		return EXIT_USAGE;
	}
	raise_fd_limit();
	setvbuf(stdout, NULL, _IOLBF, 0);
	catch_end_signals();

	/* Watch the directory first, so no region made after the listing
	 * below goes unseen. */
	int ino = *ino_out = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (ino >= 0 && inotify_add_watch(ino, region_dir(), IN_CREATE | IN_MOVED_TO |
					  IN_ONLYDIR) < 0) {
		fprintf(stderr, "%s: watch: %s: %s\n", prog, region_dir(),
			strerror(errno));
		return EXIT_FAIL;
	}
	if (npos) {
		w->want = pos;
		w->nwant = (uint32_t)npos;
		for (int i = 0; i < npos; i++) {
			if (grow(w))
				return EXIT_FAIL;
			if (is_open(w, pos[i]))
				continue;
			int rc = open_observers("watch", &pos[i], 1, &w->h[w->n]);
			if (rc)
				return rc;
			emit(w, '+', pos[i], zinc_seq(w->h[w->n]));
			w->n++;
		}
	} else {
		look_for_new(w);
	}
	w->retries = RETRY_SLICES;
	fflush(stdout);

	while (!end_signal) {
		int rc;
		if (w->n) {
			rc = zinc_wait_any(w->h, w->n, w->ready, w->seqs, SLICE_MS,
					   ZINC_WAIT_EINTR);
		} else {
			struct pollfd p = { .fd = ino, .events = POLLIN };
			rc = poll(&p, ino >= 0 ? 1 : 0, (int)SLICE_MS) < 0 ? -errno : 0;
		}
		if (end_signal)
			break;
		if (rc < 0 && rc != -ETIMEDOUT && rc != -EINTR) {
			fprintf(stderr, "%s: watch: %s\n", prog, zinc_strerror(rc));
			return EXIT_FAIL;
		}
		for (uint32_t i = 0; rc > 0 && i < w->n; i++) {
			if (w->ready[i] == 1) {
				emit(w, '=', zinc_name(w->h[i]), w->seqs[i]);
			} else if (w->ready[i] == -EIDRM) {
				emit(w, '-', zinc_name(w->h[i]), 0);
				zinc_close(w->h[i]);
				/* keep ready[] in step with h[] for the
				 * rest of this loop */
				w->n--;
				w->h[i] = w->h[w->n];
				w->ready[i] = w->ready[w->n];
				w->seqs[i] = w->seqs[w->n];
				i--;
			}
		}
		/* An object that is not a valid region yet may be a region
		 * being made: look again for a while, not forever (it may be
		 * junk that never becomes one). */
		int changed = ino < 0 || dir_changed(ino);
		if (changed)
			w->retries = RETRY_SLICES;
		if (changed || (w->retry && w->retries-- > 0))
			look_for_new(w);
		if (fflush(stdout) != 0)
			return EXIT_FAIL;
	}
	return EXIT_OK;
}

int cmd_watch(int argc, char **argv)
{
	struct watch w = { 0 };
	int ino = -1;
	char **pos = calloc((size_t)argc + 1, sizeof(*pos));
	int status = pos ? run_watch(&w, &ino, argc, argv, pos) : EXIT_FAIL;
	for (uint32_t i = 0; i < w.n; i++)
		zinc_close(w.h[i]);
	if (ino >= 0)
		close(ino);
	free(w.h);
	free(w.ready);
	free(w.seqs);
	free(pos);
	return status;
}
