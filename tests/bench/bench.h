/* SPDX-License-Identifier: MIT */
/* zinc-bench internals shared by zinc-bench.c (rows 1-3) and fs.c (zincfs rows). */
#ifndef ZINC_BENCH_H
#define ZINC_BENCH_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct opts {
	int quick;
	int no_fifo;
	int fifo_prio;
	uint32_t spin_ns;
	const char *json;
	const char *dat;
	const char *dump;         /* raw row-1 samples go here (diagnostics) */
	const char *mnt;          /* zincfs mount point (rows 4-7) */
	const char *skip_fs;      /* why rows 4-7 cannot run */
	int broker_port;          /* row 10: private mosquitto on 127.0.0.1 */
	const char *bridge_dir[2]; /* row 10: host A (publishes b*), host B (subscribes) */
	const char *skip_bridge;  /* why row 10 cannot run */
	int daemon_pid;
	int max_threads;
	int ncpu;
	char rows[64];
};

struct result {
	char row[8];
	char name[96];
	char place[16];
	char unit[8];
	char sample_unit[64];
	char base[96];
	double min, median, p99;  /* value-only results: all three equal */
	double ratio;             /* median / baseline median, -1 if none */
	long samples;
	long ops;
	int has_stats;
};

struct skip {
	char rows[32];
	char why[256];
};

struct target {
	char text[160];
	char measured[160];
	int met;
};

#define MAX_RESULTS 128

extern struct opts opt;
extern int fifo_ok;

void die(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
uint64_t now_ns(void);
long futex(uint32_t *word, int op, uint32_t val);
uint32_t futex_wait_change(uint32_t *word, uint32_t seen);
void *shared_alloc(size_t size);
void pin_cpu(int cpu);
void go_fifo(void);
pid_t spawn(int (*fn)(void *), void *arg);
void reap(pid_t pid, const char *what);
void stats(uint64_t *v, size_t n, double scale, double *mn, double *med, double *p99);
struct result *add_result(const char *row, const char *name, const char *place,
			  const char *unit, uint64_t *v, size_t n, double scale,
			  const char *unit_of_sample);
struct result *add_value(const char *row, const char *name, const char *place,
			 const char *unit, double value, long samples,
			 const char *unit_of_sample);
struct result *find_result(const char *row, const char *name, const char *place);
void set_ratio(struct result *r, const struct result *base);
void add_skip(const char *rows, const char *why);
void add_target(const char *text, const char *measured, int met);
void region_name(char *buf, size_t size, const char *what);

/* Rows 4-7 (fs.c): run those wanted, or record why they are skipped. */
void fs_rows(int (*want_row)(int row));
/* Row 9 (events.c): .events with 10,000 regions, io_uring vs futex_waitv. */
void events_row(void);
/* Row 10 (bridge.c): zinc-bridge against raw MQTT through one broker. */
void bridge_row(void);

#endif
