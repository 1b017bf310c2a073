/* SPDX-License-Identifier: MIT */
/*
 * zinc top: a live view of the regions (ncurses), busiest first.  Once a
 * second it lists the region directory and stats every region (no handle
 * is opened, so it changes nothing it shows).  q, Q or Ctrl-C quits.
 */
#include <curses.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <zinc.h>
#include "tool.h"

struct row {
	char name[ZINC_NAME_MAX + 1];
	struct zinc_info info;
	double rate;  /* notifications per second since the last sample */
};

struct sample {
	struct row *rows;
	size_t n, cap;
};

static int add_row(const char *name, void *arg)
{
	struct sample *s = arg;
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 64;
		struct row *rows = realloc(s->rows, cap * sizeof(*rows));
		if (!rows)
			return -ENOMEM;
		s->rows = rows;
		s->cap = cap;
	}
	struct row *r = &s->rows[s->n];
	if (zinc_stat(name, &r->info) != 0)
		return 0; /* gone, or not a region */
	snprintf(r->name, sizeof(r->name), "%s", name);
	r->rate = 0;
	s->n++;
	return 0;
}

static int by_name(const void *a, const void *b)
{
	return strcmp(((const struct row *)a)->name, ((const struct row *)b)->name);
}

static int by_activity(const void *a, const void *b)
{
	const struct row *x = a, *y = b;
	if (x->rate != y->rate)
		return x->rate < y->rate ? 1 : -1;
	return strcmp(x->name, y->name);
}

static double now_s(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + t.tv_nsec / 1e9;
}

/* Rates against the previous sample (sorted by name). */
static void rates(struct sample *cur, const struct sample *prev, double dt)
{
	qsort(cur->rows, cur->n, sizeof(*cur->rows), by_name);
	for (size_t i = 0; i < cur->n; i++) {
		struct row *r = &cur->rows[i];
		const struct row *p = prev->n ? bsearch(r, prev->rows, prev->n,
					sizeof(*r), by_name) : NULL;
		/* The same region: a region made anew under the name
		 * starts over. */
		if (p && dt > 0 && p->info.created_at == r->info.created_at)
			r->rate = (uint32_t)(r->info.seq - p->info.seq) / dt;
	}
}

static void draw(struct sample *s)
{
	/* 79 columns: the last column of a terminal may wrap. */
	erase();
	mvprintw(0, 0, "zinc top: %zu regions in %.40s   q quits", s->n,
		 region_dir());
	attron(A_REVERSE);
	mvprintw(1, 0, "%-20s %9s %10s %7s %7s %5s %6s %8s", "NAME", "NOTIF/S",
		 "COUNTER", "HANDLES", "WAITERS", "OWNER", "PID", "CAPACITY");
	attroff(A_REVERSE);
	struct row *sorted = malloc(s->n * sizeof(*sorted) + 1);
	if (!sorted)
		return;
	memcpy(sorted, s->rows, s->n * sizeof(*sorted));
	qsort(sorted, s->n, sizeof(*sorted), by_activity);
	for (size_t i = 0; i < s->n && (int)i < LINES - 2; i++) {
		const struct row *r = &sorted[i];
		char cap[32], name[24];
		human_size(cap, sizeof(cap), r->info.capacity);
		/* a long name shows its start and a '~' */
		snprintf(name, sizeof(name), "%s", r->name);
		if (strlen(r->name) > 20)
			strcpy(name + 19, "~");
		mvprintw((int)i + 2, 0, "%-20s %9.1f %10u %7u %7u %5s %6d %8s",
			 name, r->rate, r->info.seq, r->info.ref_count,
			 r->info.waiters, r->info.owner_alive ? "alive" : "gone",
			 (int)r->info.owner_pid, cap);
	}
	free(sorted);
	refresh();
}

int cmd_top(int argc, char **argv)
{
	int npos;
	char *pos[1];
	PARSE("top", NULL, pos, 0, 0);
	(void)npos;
	(void)pos;
	catch_end_signals();
	SCREEN *scr = isatty(0) && isatty(1) ? newterm(NULL, stdout, stdin) : NULL;
	if (!scr) {
		fprintf(stderr, "%s: top: needs a terminal (TERM=%s)\n", prog,
			getenv("TERM") ? getenv("TERM") : "");
		return EXIT_FAIL;
	}
	cbreak();
	noecho();
	curs_set(0);
	keypad(stdscr, TRUE);
	timeout(1000);

	struct sample prev = { 0 }, cur = { 0 };
	double t_prev = 0;
	int status = EXIT_OK;
	while (!end_signal) {
		cur.n = 0;
		int rc = zinc_list(add_row, &cur);
		double t = now_s();
		if (rc < 0 && rc != -ENOENT) {
			status = rc;
			break;
		}
		rates(&cur, &prev, t - t_prev);
		draw(&cur);
		struct sample swap = prev;
		prev = cur;
		cur = swap;
		t_prev = t;
		/* Wait a second for a key; a signal or a resize ends it early. */
		int ch = getch();
		if (ch == 'q' || ch == 'Q')
			break;
	}
	endwin();
	delscreen(scr);
	free(prev.rows);
	free(cur.rows);
	if (status)
		return fail("top", region_dir(), status);
	return EXIT_OK;
}
