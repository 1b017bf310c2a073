/* SPDX-License-Identifier: MIT */
/*
 * zinc - list, inspect, create, signal and clean up libzinc regions.
 *
 * Everything goes through libzinc's public API (include/zinc.h) and its
 * name rule (libzinc/name.h).  The tool reads the region directory itself
 * only to describe objects libzinc rejects (why an object is not a region,
 * names libzinc ignores) and to check an invalid object for locks before
 * `gc` removes it.
 * Documentation: `zinc --help` and docs/zinc-tool.md.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <zinc.h>
#include "../name.h" /* the name rule, shared with libzinc */
#include "tool.h"

#ifndef ZINC_TOOL_VERSION
#define ZINC_TOOL_VERSION "unknown"
#endif


/* gc leaves objects that are not regions alone if they changed recently:
 * a creator may be between creating the object and locking it. */
#define GC_MIN_AGE_S 10

const char *prog = "zinc";

void usage(FILE *f)
{
	fprintf(f,
"Usage: zinc COMMAND [ARGS]\n"
"Inspect and manage libzinc shared-memory regions ($ZINC_SHM_DIR/zinc_NAME,\n"
"default /dev/shm/zinc_NAME).\n"
"\n"
"Commands:\n"
"  ls [--json]              list regions: name, state, capacity, counter,\n"
"                           handles, waiters, owner pid and whether it is alive;\n"
"                           objects that are not regions are listed as invalid\n"
"  info NAME [--json]       show one region\n"
"  create [--background] NAME SIZE\n"
"                           create region NAME with SIZE bytes of data (a\n"
"                           multiple of the page size; suffixes K, M, G = 1024^n),\n"
"                           print 'ready NAME CAPACITY PID' and hold it until\n"
"                           SIGINT/SIGTERM/SIGHUP (exit 0; closing removes it if\n"
"                           no other handle is open) or until it is removed\n"
"                           (exit 8).  --background: the holder runs detached,\n"
"                           zinc prints the ready line with its pid and exits 0.\n"
"                           A region owned by nobody is not supported: in libzinc\n"
"                           such a region is stale and gc removes it.\n"
"  notify NAME              bump the counter and wake every waiter\n"
"  wait NAME... [TIMEOUT_MS]\n"
"                           wait for the next notification of any of the\n"
"                           regions (default: forever); prints the counter\n"
"                           value seen, or 'NAME SEQ' per region that fired\n"
"                           when several are given; exit 8 only if none fired\n"
"                           and one was removed.  A last all-digits argument\n"
"                           after a name is the timeout (names may be digits)\n"
"  watch [--json] [NAME...] stream events until SIGINT/SIGTERM/SIGHUP (exit 0):\n"
"                           '+NAME SEQ' followed (at start, then each region\n"
"                           that appears; all regions when no NAME is given),\n"
"                           'NAME SEQ' notified, '-NAME' removed; --json: one\n"
"                           {\"event\":\"create|notify|remove\",...} per line\n"
"  top                      live view of the regions, busiest first (q quits)\n"
"  rm [-f] NAME...          remove regions (their waiters see 'removed');\n"
"                           -f: a missing region is not an error\n"
"  gc [-n|--dry-run] [-v]   remove stale regions (no open handle, owner dead)\n"
"                           and unlocked regular files under region names that\n"
"                           are not regions and were not modified for %d s\n"
"                           (also .zinc-new.* files left by an interrupted resize);\n"
"                           prints 'removed NAME: WHY' ('would remove' with -n);\n"
"                           -v also prints 'kept NAME: WHY' for the others\n"
"\n"
"Options: -h, --help   this text;  -V, --version   versions\n"
"\n"
"Exit status:\n"
"  0 success            1 other error           2 bad usage, name or size\n"
"  3 no such region     4 not a valid region    5 create: name in use\n"
"  6 permission denied  7 wait: timed out       8 wait/create: region removed\n"
"  128+N ended by signal N (wait: SIGINT 130, SIGTERM 143)\n"
"Errors go to stderr as 'zinc: COMMAND: NAME: reason'.\n"
"\n"
"Environment: ZINC_SHM_DIR  region directory (default /dev/shm)\n",
		GC_MIN_AGE_S);
}

/* ---- small helpers ---- */

int exit_for(int err)
{
	switch (err < 0 ? -err : err) {
	case 0: return EXIT_OK;
	case EINVAL: return EXIT_USAGE;
	case ENOENT: return EXIT_NOENT;
	case EBADMSG: case EISDIR: case ELOOP: case ENXIO: return EXIT_BADMSG;
	case EEXIST: return EXIT_EXIST;
	case EPERM: case EACCES: return EXIT_PERM;
	case ETIMEDOUT: return EXIT_TIMEOUT;
	case EIDRM: return EXIT_REMOVED;
	default: return EXIT_FAIL;
	}
}

static int not_a_region(int err)
{
	return err == -EBADMSG || err == -EISDIR || err == -ELOOP || err == -ENXIO;
}

const char *region_dir(void)
{
	const char *d = getenv("ZINC_SHM_DIR");
	return d && *d ? d : "/dev/shm";
}

static void object_path(const char *name, char *buf, size_t n)
{
	snprintf(buf, n, "%s/%s%s", region_dir(), ZINC_OBJECT_PREFIX, name);
}

int check_name(const char *cmd, const char *name)
{
	if (zinc__valid_name(name))
		return 0;
	fprintf(stderr, "%s: %s: invalid region name (1 to %d bytes of "
		"[A-Za-z0-9_-], without the '%s' prefix)\n",
		prog, cmd, ZINC_NAME_MAX, ZINC_OBJECT_PREFIX);
	return EXIT_USAGE;
}

int fail(const char *cmd, const char *name, int err)
{
	fprintf(stderr, "%s: %s: %s: %s\n", prog, cmd, name, zinc_strerror(err));
	return exit_for(err);
}

/* Length of the valid UTF-8 sequence at s, or 0. */
static size_t utf8_len(const unsigned char *s)
{
	unsigned c = s[0];
	size_t n;
	uint32_t cp, min;
	if (c < 0x80)
		return 1;
	if ((c & 0xE0) == 0xC0) { n = 2; cp = c & 0x1F; min = 0x80; }
	else if ((c & 0xF0) == 0xE0) { n = 3; cp = c & 0x0F; min = 0x800; }
	else if ((c & 0xF8) == 0xF0) { n = 4; cp = c & 0x07; min = 0x10000; }
	else return 0;
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xC0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3F);
	}
	if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
		return 0;
	return n;
}

/* A JSON string.  Bytes that are not UTF-8 come out as \u00XX. */
void json_str(FILE *f, const char *str)
{
	const unsigned char *s = (const unsigned char *)str;
	fputc('"', f);
	while (*s) {
		unsigned c = *s;
		size_t n = utf8_len(s);
		if (c == '"' || c == '\\') {
			fprintf(f, "\\%c", c);
		} else if (c == '\n') {
			fputs("\\n", f);
		} else if (c == '\t') {
			fputs("\\t", f);
		} else if (c == '\r') {
			fputs("\\r", f);
		} else if (c < 0x20 || c == 0x7f || n == 0) {
			fprintf(f, "\\u%04x", c);
		} else {
			fwrite(s, 1, n, f);
			s += n;
			continue;
		}
		s++;
	}
	fputc('"', f);
}

/* A name for text output: unprintable bytes, space and backslash escaped
 * as \xNN / \\ so every name is one shell-safe-ish word. */
void text_name(char *out, size_t n, const char *name)
{
	size_t o = 0;
	for (const unsigned char *s = (const unsigned char *)name; *s && o + 5 < n; s++) {
		if (*s == '\\')
			o += (size_t)snprintf(out + o, n - o, "\\\\");
		else if (*s <= 0x20 || *s >= 0x7f)
			o += (size_t)snprintf(out + o, n - o, "\\x%02x", *s);
		else
			out[o++] = (char)*s;
	}
	out[o] = 0;
}

void human_size(char *buf, size_t n, uint64_t v)
{
	static const char suffix[] = "KMG";
	int i = -1;
	uint64_t x = v;
	while (i < 2 && x && x % 1024 == 0) {
		x /= 1024;
		i++;
	}
	if (i < 0)
		snprintf(buf, n, "%llu", (unsigned long long)v);
	else
		snprintf(buf, n, "%llu%c", (unsigned long long)x, suffix[i]);
}

static void iso_time(char *buf, size_t n, uint64_t ns)
{
	time_t sec = (time_t)(ns / 1000000000ULL);
	struct tm tm;
	if (!gmtime_r(&sec, &tm) || !strftime(buf, n, "%Y-%m-%dT%H:%M:%S", &tm)) {
		snprintf(buf, n, "?");
		return;
	}
	size_t l = strlen(buf);
	snprintf(buf + l, n - l, ".%09lluZ", (unsigned long long)(ns % 1000000000ULL));
}

/* Parse SIZE: decimal bytes with an optional K, M or G (powers of 1024). */
static int parse_size(const char *s, uint64_t *out)
{
	uint64_t v = 0;
	const char *p = s;
	if (*p < '0' || *p > '9')
		return -1;
	for (; *p >= '0' && *p <= '9'; p++) {
		if (v > (UINT64_MAX - 9) / 10)
			return -1;
		v = v * 10 + (uint64_t)(*p - '0');
	}
	int shift = 0;
	switch (*p) {
	case 0: break;
	case 'k': case 'K': shift = 10; p++; break;
	case 'm': case 'M': shift = 20; p++; break;
	case 'g': case 'G': shift = 30; p++; break;
	default: return -1;
	}
	if (*p || (shift && v > (UINT64_MAX >> shift)))
		return -1;
	*out = v << shift;
	return 0;
}

/* ---- command-line parsing ---- */


/* Split argv (after the command) into known flags and positionals.
 * Returns the number of positionals, -1 after printing a usage error,
 * -2 for --help. */
int parse_args(const char *cmd, int argc, char **argv, struct opt *opts,
		      char **pos, int max_pos)
{
	int npos = 0, dashdash = 0;
	for (int i = 0; i < argc; i++) {
		char *a = argv[i];
		if (!dashdash && a[0] == '-' && a[1]) {
			if (!strcmp(a, "--")) {
				dashdash = 1;
				continue;
			}
			if (!strcmp(a, "-h") || !strcmp(a, "--help"))
				return -2;
			struct opt *o = opts;
			for (; o && o->flag; o++)
				if ((o->shrt && !strcmp(a, o->shrt)) ||
				    (o->lng && !strcmp(a, o->lng)))
					break;
			if (!o || !o->flag) {
				fprintf(stderr, "%s: %s: unknown option '%s' (see zinc --help)\n",
					prog, cmd, a);
				return -1;
			}
			*o->flag = 1;
			continue;
		}
		if (npos == max_pos) {
			fprintf(stderr, "%s: %s: unexpected argument '%s' (see zinc --help)\n",
				prog, cmd, a);
			return -1;
		}
		pos[npos++] = a;
	}
	return npos;
}


/* ---- objects in the region directory ---- */

struct entry {
	char *name;
	int name_ok;           /* a valid region name */
	int rc;                /* zinc_stat's result */
	struct zinc_info info; /* when rc == 0 */
	char reason[200];      /* when not a region / not accessible */
};

struct entries {
	struct entry *v;
	size_t n, cap;
};

static int add_entry(struct entries *es, const char *name, int name_ok)
{
	if (es->n == es->cap) {
		size_t cap = es->cap ? es->cap * 2 : 16;
		struct entry *v = realloc(es->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		es->v = v;
		es->cap = cap;
	}
	struct entry *e = &es->v[es->n];
	memset(e, 0, sizeof(*e));
	e->name = strdup(name);
	if (!e->name)
		return -ENOMEM;
	e->name_ok = name_ok;
	es->n++;
	return 0;
}

static int collect_cb(const char *name, void *arg)
{
	return add_entry(arg, name, 1);
}

static const char *type_name(mode_t m)
{
	if (S_ISDIR(m)) return "a directory";
	if (S_ISLNK(m)) return "a symbolic link";
	if (S_ISFIFO(m)) return "a FIFO";
	if (S_ISSOCK(m)) return "a socket";
	if (S_ISCHR(m) || S_ISBLK(m)) return "a device";
	return "not a regular file";
}

/* Say why the object of a valid name is not a region (err from libzinc). */
static void diagnose(const char *name, int err, char *buf, size_t n)
{
	char path[PATH_MAX];
	struct stat st;
	long page = sysconf(_SC_PAGESIZE);
	object_path(name, path, sizeof(path));
	if (lstat(path, &st) < 0) {
		snprintf(buf, n, "%s", strerror(errno));
		return;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(buf, n, "%s", type_name(st.st_mode));
		return;
	}
	long long size = (long long)st.st_size;
	if (size == 0) {
		snprintf(buf, n, "empty object (0 bytes)");
		return;
	}
	if (size < 2 * page || size % page) {
		snprintf(buf, n, "size %lld is not a region size "
			 "(header page + whole data pages)", size);
		return;
	}
	struct zinc_header h;
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	ssize_t got = fd < 0 ? -1 : pread(fd, &h, sizeof(h), 0);
	int e = errno;
	if (fd >= 0)
		close(fd);
	if (got != (ssize_t)sizeof(h))
		snprintf(buf, n, "%s", got < 0 ? strerror(e) : "short read");
	else if (h.magic == 0)
		snprintf(buf, n, "no magic number (unfinished or zero-filled)");
	else if (h.magic != ZINC_MAGIC)
		snprintf(buf, n, "bad magic number 0x%016llx",
			 (unsigned long long)h.magic);
	else if (h.version != ZINC_FORMAT_VERSION)
		snprintf(buf, n, "unsupported format version %u", h.version);
	else if (h.capacity != (uint64_t)(size - page))
		snprintf(buf, n, "header capacity %llu does not match object "
			 "size %lld", (unsigned long long)h.capacity, size);
	else
		snprintf(buf, n, "%s", zinc_strerror(err));
}

static int cmp_entry(const void *a, const void *b)
{
	return strcmp(((const struct entry *)a)->name, ((const struct entry *)b)->name);
}

/* Every zinc_* object: regions by zinc_list, plus names libzinc ignores.
 * Objects that vanish while we look are dropped.  0 or -errno. */
static int collect(struct entries *es)
{
	int rc = zinc_list(collect_cb, es);
	if (rc < 0)
		return rc;
	DIR *d = opendir(region_dir());
	if (!d)
		return -errno;
	const size_t plen = strlen(ZINC_OBJECT_PREFIX);
	struct dirent *de;
	while ((de = readdir(d))) {
		if (strncmp(de->d_name, ZINC_OBJECT_PREFIX, plen) ||
		    zinc__valid_name(de->d_name + plen))
			continue;
		rc = add_entry(es, de->d_name + plen, 0);
		if (rc)
			break;
		snprintf(es->v[es->n - 1].reason, sizeof(es->v[0].reason),
			 "not a valid region name (libzinc ignores it)");
	}
	closedir(d);
	if (rc < 0)
		return rc;
	size_t keep = 0;
	for (size_t i = 0; i < es->n; i++) {
		struct entry *e = &es->v[i];
		if (e->name_ok) {
			e->rc = zinc_stat(e->name, &e->info);
			if (e->rc == -ENOENT) {
				free(e->name);
				continue;
			}
			if (not_a_region(e->rc))
				diagnose(e->name, e->rc, e->reason, sizeof(e->reason));
			else if (e->rc)
				snprintf(e->reason, sizeof(e->reason), "%s",
					 zinc_strerror(e->rc));
		}
		es->v[keep++] = *e;
	}
	es->n = keep;
	if (es->n)
		qsort(es->v, es->n, sizeof(*es->v), cmp_entry);
	return 0;
}

static void free_entries(struct entries *es)
{
	for (size_t i = 0; i < es->n; i++)
		free(es->v[i].name);
	free(es->v);
}

/* collect() for ls and gc, which fail alike when the directory cannot be
 * read.  EXIT_OK, or EXIT_FAIL after printing the error (es emptied). */
static int collect_or_fail(const char *cmd, struct entries *es)
{
	int rc = collect(es);
	if (!rc)
		return EXIT_OK;
	fprintf(stderr, "%s: %s: %s: %s\n", prog, cmd, region_dir(), strerror(-rc));
	free_entries(es);
	*es = (struct entries){ 0 };
	return EXIT_FAIL;
}

static const char *state_of(const struct entry *e)
{
	if (!e->name_ok || not_a_region(e->rc))
		return "invalid";
	if (e->rc)
		return "inaccessible";
	if (e->info.owner_alive)
		return "owned";
	return e->info.in_use ? "in-use" : "stale";
}

static void json_entry(FILE *f, const struct entry *e)
{
	char path[PATH_MAX], when[64];
	object_path(e->name, path, sizeof(path));
	fputs("{\"name\": ", f);
	json_str(f, e->name);
	fputs(", \"path\": ", f);
	json_str(f, path);
	fprintf(f, ", \"state\": \"%s\"", state_of(e));
	if (!e->name_ok || e->rc) {
		fputs(", \"valid\": false, \"reason\": ", f);
		json_str(f, e->reason);
		fputc('}', f);
		return;
	}
	const struct zinc_info *i = &e->info;
	iso_time(when, sizeof(when), i->created_at);
	fprintf(f, ", \"valid\": true, \"capacity\": %llu, \"seq\": %u, "
		"\"handles\": %u, \"in_use\": %s, \"waiters\": %u, "
		"\"owner_pid\": %d, \"owner_alive\": %s, \"foreign\": %s, "
		"\"removed\": %s, \"created_at_ns\": %llu, \"created_at\": \"%s\"}",
		(unsigned long long)i->capacity, i->seq, i->ref_count,
		i->in_use ? "true" : "false", i->waiters, i->owner_pid,
		i->owner_alive ? "true" : "false", i->foreign ? "true" : "false",
		(i->flags & ZINC_FLAG_REMOVED) ? "true" : "false",
		(unsigned long long)i->created_at, when);
}

/* ---- ls ---- */

#define NCOL 8

static int cmd_ls(int argc, char **argv)
{
	int json = 0, npos;
	struct opt opts[] = { { NULL, "--json", &json }, { 0 } };
	char *pos[1];
	PARSE("ls", opts, pos, 0, 0);
	(void)npos;
	struct entries es = { 0 };
	if (collect_or_fail("ls", &es))
		return EXIT_FAIL;
	if (json) {
		fputs("[", stdout);
		for (size_t i = 0; i < es.n; i++) {
			fputs(i ? ",\n " : "\n ", stdout);
			json_entry(stdout, &es.v[i]);
		}
		fputs(es.n ? "\n]\n" : "]\n", stdout);
		free_entries(&es);
		return EXIT_OK;
	}

	/* Text: one row per object, columns as wide as their widest cell. */
	static const char *head[NCOL] = { "NAME", "STATE", "CAPACITY", "SEQ",
		"HANDLES", "WAITERS", "OWNER", "DETAILS" };
	char (*cells)[NCOL][ZINC_NAME_MAX * 4 + 8] = calloc(es.n + 1, sizeof(*cells));
	if (!cells) {
		free_entries(&es);
		fprintf(stderr, "%s: ls: %s\n", prog, strerror(ENOMEM));
		return EXIT_FAIL;
	}
	size_t width[NCOL] = { 0 };
	for (size_t r = 0; r <= es.n; r++) {
		char (*c)[ZINC_NAME_MAX * 4 + 8] = cells[r];
		size_t cn = sizeof(c[0]);
		if (r == 0) {
			for (int k = 0; k < NCOL; k++)
				snprintf(c[k], cn, "%s", head[k]);
		} else {
			const struct entry *e = &es.v[r - 1];
			const struct zinc_info *i = &e->info;
			text_name(c[0], cn, e->name);
			snprintf(c[1], cn, "%s", state_of(e));
			if (!e->name_ok || e->rc) {
				for (int k = 2; k < 7; k++)
					snprintf(c[k], cn, "-");
				snprintf(c[7], cn, "%s", e->reason);
			} else {
				human_size(c[2], cn, i->capacity);
				snprintf(c[3], cn, "%u", i->seq);
				snprintf(c[4], cn, "%u", i->ref_count);
				snprintf(c[5], cn, "%u", i->waiters);
				snprintf(c[6], cn, "%d (%s)", i->owner_pid,
					 i->owner_alive ? "alive" : "dead");
				snprintf(c[7], cn, "%s", i->foreign ? "zinc-core" : "-");
			}
		}
		for (int k = 0; k < NCOL; k++)
			if (strlen(c[k]) > width[k])
				width[k] = strlen(c[k]);
	}
	for (size_t r = 0; r <= es.n; r++) {
		for (int k = 0; k < NCOL - 1; k++)
			printf("%-*s  ", (int)width[k], cells[r][k]);
		printf("%s\n", cells[r][NCOL - 1]);
	}
	free(cells);
	free_entries(&es);
	return EXIT_OK;
}

/* ---- info ---- */

static int cmd_info(int argc, char **argv)
{
	int json = 0, npos;
	struct opt opts[] = { { NULL, "--json", &json }, { 0 } };
	char *pos[1];
	PARSE("info", opts, pos, 1, 1);
	(void)npos;
	const char *name = pos[0];
	if (check_name("info", name))
		return EXIT_USAGE;
	struct entry e = { .name = (char *)name, .name_ok = 1 };
	e.rc = zinc_stat(name, &e.info);
	if (not_a_region(e.rc)) {
		diagnose(name, e.rc, e.reason, sizeof(e.reason));
		fprintf(stderr, "%s: info: %s: %s: %s\n", prog, name,
			zinc_strerror(-EBADMSG), e.reason);
		return EXIT_BADMSG;
	}
	if (e.rc)
		return fail("info", name, e.rc);
	if (json) {
		json_entry(stdout, &e);
		fputc('\n', stdout);
		return EXIT_OK;
	}
	char path[PATH_MAX], size[32], when[64];
	const struct zinc_info *i = &e.info;
	object_path(name, path, sizeof(path));
	human_size(size, sizeof(size), i->capacity);
	iso_time(when, sizeof(when), i->created_at);
	printf("name:        %s\n", name);
	printf("path:        %s\n", path);
	printf("state:       %s\n", state_of(&e));
	printf("capacity:    %llu (%s)\n", (unsigned long long)i->capacity, size);
	printf("seq:         %u\n", i->seq);
	printf("handles:     %u (header count; crashed handles stay counted)\n",
	       i->ref_count);
	printf("in_use:      %s\n", i->in_use ? "yes" : "no");
	printf("waiters:     %u\n", i->waiters);
	printf("owner_pid:   %d\n", i->owner_pid);
	printf("owner_alive: %s\n", i->owner_alive ? "yes" : "no");
	printf("created_at:  %s\n", when);
	printf("format:      %s\n", i->foreign ? "zinc-core" : "libzinc");
	return EXIT_OK;
}

/* ---- create ---- */

/* The signals that end a holder (create) or a waiter (wait). */
void end_signals(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGINT);
	sigaddset(set, SIGTERM);
	sigaddset(set, SIGHUP);
}

struct holder {
	zinc_region *r;
	pthread_t main_thread;
	int stop;
};

static long futex_wait(const uint32_t *word, uint32_t expected,
		       const struct timespec *abs_deadline)
{
	/* Shared futex on the region's counter, absolute CLOCK_MONOTONIC
	 * deadline (NULL: none), like libzinc's own waits. */
	return syscall(SYS_futex, word, FUTEX_WAIT_BITSET, expected,
		       abs_deadline, NULL, FUTEX_BITSET_MATCH_ANY);
}

static int name_gone(zinc_region *r)
{
	struct stat st;
	return zinc_removed(r) == 1 ||
	       (fstat(zinc_fd(r), &st) == 0 && st.st_nlink == 0);
}

/*
 * Watch the held region for removal without counting as a waiter (so
 * notifiers keep skipping the wake syscall): removal always wakes every
 * futex waiter on the counter.  A plain unlink(2) wakes nobody, hence the
 * one-second timeout.  Tells the main thread with SIGUSR1.
 */
static void *watch_removal(void *arg)
{
	struct holder *h = arg;
	const uint32_t *word = zinc_futex_word(h->r);
	for (;;) {
		uint32_t seen = __atomic_load_n(word, __ATOMIC_ACQUIRE);
		if (__atomic_load_n(&h->stop, __ATOMIC_SEQ_CST))
			return NULL;
		if (name_gone(h->r)) {
			pthread_kill(h->main_thread, SIGUSR1);
			return NULL;
		}
		struct timespec t;
		clock_gettime(CLOCK_MONOTONIC, &t);
		t.tv_sec += 1;
		futex_wait(word, seen, &t);
	}
}

/* Hold r until SIGINT/SIGTERM/SIGHUP (0) or removal (EXIT_REMOVED).  The
 * signals are blocked by the caller. */
static int hold(zinc_region *r, const char *name)
{
	struct holder h = { .r = r, .main_thread = pthread_self() };
	pthread_t t;
	sigset_t set;
	end_signals(&set);
	sigaddset(&set, SIGUSR1);
	int watching = pthread_create(&t, NULL, watch_removal, &h) == 0;
	int sig;
	do
		sig = sigwaitinfo(&set, NULL);
	while (sig < 0);
	if (watching) {
		__atomic_store_n(&h.stop, 1, __ATOMIC_SEQ_CST);
		/* Wake the watcher (and, harmlessly, any other waiter: they
		 * re-check the counter and sleep again). */
		syscall(SYS_futex, zinc_futex_word(r), FUTEX_WAKE, INT32_MAX,
			NULL, NULL, 0);
		pthread_join(t, NULL);
	}
	zinc_close(r);
	if (sig == SIGUSR1) {
		fprintf(stderr, "%s: create: %s: %s\n", prog, name,
			zinc_strerror(-EIDRM));
		return EXIT_REMOVED;
	}
	return EXIT_OK;
}

static int cmd_create(int argc, char **argv)
{
	int bg = 0, npos;
	struct opt opts[] = { { "-b", "--background", &bg }, { 0 } };
	char *pos[2];
	PARSE("create", opts, pos, 2, 2);
	(void)npos;
	const char *name = pos[0];
	uint64_t size;
	long page = sysconf(_SC_PAGESIZE);
	if (check_name("create", name))
		return EXIT_USAGE;
	if (parse_size(pos[1], &size) || size == 0 || size % (uint64_t)page ||
	    size > (uint64_t)INT64_MAX - (uint64_t)page) {
		fprintf(stderr, "%s: create: %s: invalid SIZE '%s' (a positive "
			"multiple of the page size %ld; suffixes K, M, G)\n",
			prog, name, pos[1], page);
		return EXIT_USAGE;
	}

	/* Block the signals that end the holder before the region exists, so
	 * none can kill us between create and hold (leaving it stale). */
	sigset_t set;
	end_signals(&set);
	sigaddset(&set, SIGUSR1);
	sigprocmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	zinc_region *r;
	if (!bg) {
		int rc = zinc_create(name, (uintptr_t)size, &r);
		if (rc)
			return fail("create", name, rc);
		printf("ready %s %llu %ld\n", name, (unsigned long long)zinc_capacity(r),
		       (long)getpid());
		fflush(stdout);
		return hold(r, name);
	}

	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0) {
		fprintf(stderr, "%s: create: %s\n", prog, strerror(errno));
		return EXIT_FAIL;
	}
	fflush(stdout);
	pid_t pid = fork();
	if (pid < 0) {
		fprintf(stderr, "%s: create: fork: %s\n", prog, strerror(errno));
		return EXIT_FAIL;
	}
	if (pid == 0) {
		close(p[0]);
		setsid();
		int32_t rc = zinc_create(name, (uintptr_t)size, &r);
		int devnull = open("/dev/null", O_RDWR);
		if (devnull >= 0) {
			dup2(devnull, 0);
			dup2(devnull, 1);
			dup2(devnull, 2);
			if (devnull > 2)
				close(devnull);
		}
		if (write(p[1], &rc, sizeof(rc)) != sizeof(rc) || rc) {
			zinc_close(r);
			_exit(exit_for(rc ? rc : -EPIPE));
		}
		close(p[1]);
		_exit(hold(r, name));
	}
	close(p[1]);
	int32_t rc;
	ssize_t got;
	do
		got = read(p[0], &rc, sizeof(rc));
	while (got < 0 && errno == EINTR);
	close(p[0]);
	if (got != sizeof(rc)) {
		fprintf(stderr, "%s: create: %s: the holder process died\n", prog, name);
		return EXIT_FAIL;
	}
	if (rc) {
		waitpid(pid, NULL, 0);
		return fail("create", name, rc);
	}
	printf("ready %s %llu %ld\n", name, (unsigned long long)size, (long)pid);
	return EXIT_OK;
}

/* ---- notify ---- */

static int cmd_notify(int argc, char **argv)
{
	int npos;
	char *pos[1];
	PARSE("notify", NULL, pos, 1, 1);
	(void)npos;
	if (check_name("notify", pos[0]))
		return EXIT_USAGE;
	/* An observer: notifying must not keep the region alive, and its
	 * close must not remove a region nobody else holds. */
	zinc_region *r;
	int rc = zinc_open_ex(pos[0], ZINC_OPEN_OBSERVE, &r);
	if (rc)
		return fail("notify", pos[0], rc);
	zinc_notify(r);
	zinc_close(r);
	return EXIT_OK;
}

/* ---- rm ---- */

static int cmd_rm(int argc, char **argv)
{
	int force = 0, npos;
	struct opt opts[] = { { "-f", "--force", &force }, { 0 } };
	char *pos[256];
	PARSE("rm", opts, pos, 1, 256);
	int status = EXIT_OK;
	for (int i = 0; i < npos; i++) {
		int rc = check_name("rm", pos[i]);
		if (!rc) {
			int err = zinc_unlink(pos[i]);
			rc = err == 0 || (err == -ENOENT && force) ? EXIT_OK
								   : fail("rm", pos[i], err);
		}
		if (rc && !status)
			status = rc;
	}
	return status;
}

/* ---- gc ---- */

static int same_object(int a, int b)
{
	struct stat x, y;
	return fstat(a, &x) == 0 && fstat(b, &y) == 0 && x.st_dev == y.st_dev &&
	       x.st_ino == y.st_ino;
}

static void report(const char *verb, const char *name, const char *why)
{
	char shown[ZINC_NAME_MAX * 4 + 8];
	text_name(shown, sizeof(shown), name);
	printf("%s %s: %s\n", verb, shown, why);
}

/*
 * Remove region NAME if no handle is open and its owner is gone.  The check
 * that decides is libzinc's own: open a counting handle and close it, which
 * removes the name exactly when ours was the last handle anywhere (under
 * libzinc's removal lock, and only the object we opened).  An observer
 * handle on the object first examined tells whether that one went away.
 * Returns 0 or an exit code after printing an error.
 */
static int gc_region(const char *name, int dry, int verbose)
{
	zinc_region *h, *c;
	struct zinc_info i;
	char why[160];
	int rc = zinc_open_ex(name, ZINC_OPEN_OBSERVE, &h);
	if (rc == -ENOENT)
		return EXIT_OK; /* gone meanwhile */
	if (rc)
		return fail("gc", name, rc);
	zinc_handle_stat(h, &i);
	if (i.owner_alive || i.in_use) {
		if (verbose) {
			if (i.owner_alive)
				snprintf(why, sizeof(why), "owner %d alive", i.owner_pid);
			else
				snprintf(why, sizeof(why), "in use (owner %d dead)",
					 i.owner_pid);
			report("kept", name, why);
		}
		zinc_close(h);
		return EXIT_OK;
	}
	snprintf(why, sizeof(why), "stale region (owner %d dead, no open handle)",
		 i.owner_pid);
	if (dry) {
		report("would remove", name, why);
		zinc_close(h);
		return EXIT_OK;
	}
	rc = zinc_open(name, &c);
	if (rc == -ENOENT) {
		zinc_close(h);
		return EXIT_OK;
	}
	if (rc) {
		zinc_close(h);
		return fail("gc", name, rc);
	}
	int same = same_object(zinc_fd(c), zinc_fd(h));
	zinc_close(c);
	if (same && zinc_removed(h) == 1) {
		report("removed", name, why);
	} else if (verbose) {
		if (!same)
			report("kept", name, "replaced by a new region during gc");
		else if (i.foreign)
			report("kept", name, "zinc-core region whose header still "
			       "counts handles (zinc rm removes it)");
		else
			report("kept", name, "opened by another process during gc");
	}
	zinc_close(h);
	return EXIT_OK;
}

/* 1 if any process holds a lock (OFD, POSIX record or flock) on fd. */
static int has_locks(int fd)
{
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
	if (fcntl(fd, F_OFD_GETLK, &fl) < 0 || fl.l_type != F_UNLCK)
		return 1;
	if (flock(fd, LOCK_EX | LOCK_NB) < 0)
		return 1;
	flock(fd, LOCK_UN);
	return 0;
}

/* Remove an object under a region name that is not a region (or, with
 * name NULL, a leftover `shown` at path), if it is an unlocked regular file
 * not modified for GC_MIN_AGE_S. */
static int gc_file(const char *name, const char *shown, const char *path,
		   const char *reason, int dry, int verbose)
{
	char why[400];
	struct stat st, now_st;
	if (lstat(path, &st) < 0)
		return errno == ENOENT ? EXIT_OK : fail("gc", shown, -errno);
	if (!S_ISREG(st.st_mode)) {
		if (verbose) {
			snprintf(why, sizeof(why), "%s, not removed by gc",
				 type_name(st.st_mode));
			report("kept", shown, why);
		}
		return EXIT_OK;
	}
	if (time(NULL) - st.st_mtime < GC_MIN_AGE_S) {
		if (verbose) {
			snprintf(why, sizeof(why), "%s; modified "
				 "less than %d s ago", reason, GC_MIN_AGE_S);
			report("kept", shown, why);
		}
		return EXIT_OK;
	}
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	if (fd < 0 && (errno == EACCES || errno == EPERM)) {
		if (verbose)
			report("kept", shown, "permission denied");
		return EXIT_OK;
	}
	if (fd < 0)
		return errno == ENOENT ? EXIT_OK : fail("gc", shown, -errno);
	if (fstat(fd, &now_st) < 0 || now_st.st_ino != st.st_ino ||
	    now_st.st_dev != st.st_dev) {
		close(fd);
		return EXIT_OK; /* replaced meanwhile: look again next time */
	}
	if (has_locks(fd)) {
		if (verbose) {
			snprintf(why, sizeof(why), "%s; locked by "
				 "a process", reason);
			report("kept", shown, why);
		}
		close(fd);
		return EXIT_OK;
	}
	snprintf(why, sizeof(why), "%s; no locks", reason);
	if (dry) {
		report("would remove", shown, why);
		close(fd);
		return EXIT_OK;
	}
	int status = EXIT_OK;
	/* zinc_unlink works by name: make the window in which the name could
	 * change between our checks and its removal as small as we can. */
	if (stat(path, &now_st) == 0 && now_st.st_ino == st.st_ino &&
	    now_st.st_dev == st.st_dev) {
		int rc = name ? zinc_unlink(name) : unlink(path) < 0 ? -errno : 0;
		if (rc && rc != -ENOENT)
			status = fail("gc", shown, rc);
		else if (fstat(fd, &now_st) == 0 && now_st.st_nlink == 0)
			report("removed", shown, why);
	}
	close(fd);
	return status;
}

/*
 * A zinc_recreate that died between linking its new region under a
 * temporary name and renaming it over the region's name left that name
 * (.zinc-new.PID.N, no region name) behind.  A recreate in progress holds
 * the new region's locks, so only unlocked leftovers go.
 */
static int gc_leftovers(int dry, int verbose)
{
	DIR *d = opendir(region_dir());
	if (!d)
		return EXIT_OK; /* collect() already reported it */
	int status = EXIT_OK;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (strncmp(de->d_name, ".zinc-new.", 10))
			continue;
		char path[PATH_MAX];
		snprintf(path, sizeof(path), "%s/%s", region_dir(), de->d_name);
		int s = gc_file(NULL, de->d_name, path,
				"a region left by an interrupted zinc_recreate", dry, verbose);
		if (s && !status)
			status = s;
	}
	closedir(d);
	return status;
}

static int cmd_gc(int argc, char **argv)
{
	int dry = 0, verbose = 0, npos;
	struct opt opts[] = { { "-n", "--dry-run", &dry },
			      { "-v", "--verbose", &verbose }, { 0 } };
	char *pos[1];
	PARSE("gc", opts, pos, 0, 0);
	(void)npos;
	struct entries es = { 0 };
	if (collect_or_fail("gc", &es))
		return EXIT_FAIL;
	int status = EXIT_OK;
	for (size_t k = 0; k < es.n; k++) {
		const struct entry *e = &es.v[k];
		int s = EXIT_OK;
		if (!e->name_ok) {
			if (verbose)
				report("kept", e->name, e->reason);
		} else if (e->rc == 0) {
			s = gc_region(e->name, dry, verbose);
		} else if (not_a_region(e->rc)) {
			char path[PATH_MAX];
			object_path(e->name, path, sizeof(path));
			char why[sizeof(e->reason) + 16];
			snprintf(why, sizeof(why), "not a region: %s", e->reason);
			s = gc_file(e->name, e->name, path, why, dry, verbose);
		} else if (verbose) {
			report("kept", e->name, e->reason); /* e.g. no permission */
		}
		if (s && !status)
			status = s;
	}
	free_entries(&es);
	int s = gc_leftovers(dry, verbose);
	return status ? status : s;
}

/* ---- main ---- */

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return EXIT_USAGE;
	}
	const char *cmd = argv[1];
	if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help") || !strcmp(cmd, "help")) {
		usage(stdout);
		return EXIT_OK;
	}
	if (!strcmp(cmd, "-V") || !strcmp(cmd, "--version")) {
		uint32_t v = zinc_version();
		printf("zinc %s (libzinc region format %u, ABI revision %u)\n",
		       ZINC_TOOL_VERSION, v >> 16, v & 0xffff);
		return EXIT_OK;
	}
	static const struct {
		const char *name;
		int (*fn)(int, char **);
	} cmds[] = {
		{ "ls", cmd_ls }, { "info", cmd_info }, { "create", cmd_create },
		{ "notify", cmd_notify }, { "wait", cmd_wait }, { "rm", cmd_rm },
		{ "gc", cmd_gc }, { "watch", cmd_watch }, { "top", cmd_top },
	};
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (!strcmp(cmd, cmds[i].name)) {
			int rc = cmds[i].fn(argc - 2, argv + 2);
			if (fflush(stdout) != 0 && rc == EXIT_OK) {
				fprintf(stderr, "%s: %s: write error: %s\n", prog, cmd,
					strerror(errno));
				rc = EXIT_FAIL;
			}
			return rc;
		}
	fprintf(stderr, "%s: unknown command '%s' (see zinc --help)\n", prog, cmd);
	return EXIT_USAGE;
}
