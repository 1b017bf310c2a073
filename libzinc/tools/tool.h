/* SPDX-License-Identifier: MIT */
/* What the zinc tool's command files share (zinc.c has the helpers). */
#ifndef ZINC_TOOL_H
#define ZINC_TOOL_H

#include <signal.h>
#include <stdint.h>
#include <stdio.h>

/* Exit codes (documented in usage() and docs/zinc-tool.md). */
enum {
	EXIT_OK = 0,
	EXIT_FAIL = 1,     /* any other error */
	EXIT_USAGE = 2,    /* bad command line, name or size */
	EXIT_NOENT = 3,    /* no such region */
	EXIT_BADMSG = 4,   /* the object is not a valid region */
	EXIT_EXIST = 5,    /* create: the name is in use */
	EXIT_PERM = 6,     /* permission denied */
	EXIT_TIMEOUT = 7,  /* wait: timed out */
	EXIT_REMOVED = 8,  /* wait/create: the region was removed */
};

extern const char *prog;

void usage(FILE *f);
/* The exit code for a (negative) errno. */
int exit_for(int err);
const char *region_dir(void);
/* 0, or EXIT_USAGE after printing why NAME is not a region name. */
int check_name(const char *cmd, const char *name);
/* Print 'zinc: CMD: NAME: reason'; the exit code for err. */
int fail(const char *cmd, const char *name, int err);
void json_str(FILE *f, const char *str);
/* NAME with unprintable bytes escaped, for text output. */
void text_name(char *out, size_t n, const char *name);
void human_size(char *buf, size_t n, uint64_t v);
/* The signals that end a holder, waiter or watcher. */
void end_signals(sigset_t *set);

struct opt {
	const char *shrt, *lng;
	int *flag;
};

int parse_args(const char *cmd, int argc, char **argv, struct opt *opts,
	       char **pos, int max_pos);

#define PARSE(cmd, opts, pos, min, max)                                          \
	do {                                                                     \
		int n_ = parse_args(cmd, argc, argv, opts, pos, max);            \
		if (n_ == -2) {                                                  \
			usage(stdout);                                           \
			return EXIT_OK;                                             \
		}                                                                \
		if (n_ < 0)                                                      \
			return EXIT_USAGE;                                          \
		if (n_ < (min)) {                                                \
			fprintf(stderr, "%s: %s: missing argument (see zinc --help)\n", \
				prog, cmd);                                      \
			return EXIT_USAGE;                                          \
		}                                                                \
		npos = n_;                                                       \
	} while (0)

/* zinc_wait_any's timeout per call in wait and watch: how long a signal
 * that came just before the sleep may go unseen. */
#define SLICE_MS 250u

/* Set by SIGINT/SIGTERM/SIGHUP once catch_end_signals() ran. */
extern volatile sig_atomic_t end_signal;
void catch_end_signals(void);

struct zinc_region;
/* Open observers (header only) on names[0..n-1], consume what is pending.
 * EXIT_OK, or the exit code after printing the error (nothing open). */
int open_observers(const char *cmd, char **names, uint32_t n,
		   struct zinc_region **h);

int cmd_wait(int argc, char **argv);
int cmd_watch(int argc, char **argv);
int cmd_top(int argc, char **argv);

#endif
