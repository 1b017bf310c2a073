/* SPDX-License-Identifier: MIT */
/* zinc-bridge: command line, broker URL and password file. */
#include <errno.h>
#include <fnmatch.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bridge.h"

struct bridge_options opt = {
	.prefix = "zinc/",
	.max_capacity = 1ULL << 30,
	.max_total = 4ULL << 30,
};

static void usage(FILE *f)
{
	fprintf(f,
"Usage: zinc-bridge --broker URL [--publish PATTERN]... [--subscribe PATTERN]...\n"
"                   [OPTIONS]\n"
"Share libzinc regions with other machines through an MQTT 5 broker.\n"
"\n"
"  --broker URL         mqtt://HOST[:PORT] (1883) or mqtts://HOST[:PORT] (8883)\n"
"  --publish PATTERN    send local regions whose name matches (shell pattern)\n"
"  --subscribe PATTERN  receive remote regions whose name matches\n"
"  --prefix PREFIX      topic prefix (default zinc/): topic = PREFIX NAME\n"
"  --id ID              MQTT client id and origin (default HOSTNAME-PID)\n"
"  --qos 0|1            QoS of published messages (default 0)\n"
"  --max-capacity SIZE  largest region a message may create (default 1G)\n"
"  --max-total SIZE     most bytes of regions received, together (default 4G)\n"
"  --cafile FILE        CA certificates for mqtts://\n"
"  --cert FILE, --key FILE  client certificate and key for mqtts://\n"
"  --password-file FILE first line USER:PASSWORD\n"
"  -f, --foreground     stay in the foreground and log to stderr\n"
"  -h, --help           this text\n");
}

static int add_pattern(char ***list, const char *p)
{
	size_t n = 0;
	while (*list && (*list)[n])
		n++;
	char **l = realloc(*list, (n + 2) * sizeof(*l));
	if (!l)
		return -ENOMEM;
	l[n] = strdup(p);
	l[n + 1] = NULL;
	*list = l;
	return l[n] ? 0 : -ENOMEM;
}

bool name_matches(char *const *patterns, const char *name)
{
	for (; patterns && *patterns; patterns++)
		if (fnmatch(*patterns, name, 0) == 0)
			return true;
	return false;
}

/* mqtt://host[:port], mqtts://host[:port], host may be [v6addr]. */
static int parse_broker(const char *url)
{
	const char *rest;
	if (!strncmp(url, "mqtt://", 7)) {
		rest = url + 7;
		opt.tls = false;
		opt.port = 1883;
	} else if (!strncmp(url, "mqtts://", 8)) {
		rest = url + 8;
		opt.tls = true;
		opt.port = 8883;
	} else {
		return -EINVAL;
	}
	const char *end, *colon;
	if (*rest == '[') {
		end = strchr(rest, ']');
		if (!end)
			return -EINVAL;
		colon = end[1] == ':' ? end + 1 : NULL;
		if (end[1] && !colon)
			return -EINVAL;
		rest++;
	} else {
		colon = strchr(rest, ':');
		end = colon ? colon : rest + strlen(rest);
	}
	if (end == rest)
		return -EINVAL;
	if (colon) {
		char *e;
		errno = 0;
		long p = strtol(colon + 1, &e, 10);
		if (errno || e == colon + 1 || *e || p < 1 || p > 65535)
			return -EINVAL;
		opt.port = (int)p;
	}
	opt.host = strndup(rest, (size_t)(end - rest));
	return opt.host ? 0 : -ENOMEM;
}

static int parse_size(const char *s, uint64_t *out)
{
	char *e;
	errno = 0;
	unsigned long long v = strtoull(s, &e, 10);
	if (errno || e == s || *s == '-')
		return -EINVAL;
	unsigned shift = 0;
	switch (*e) {
	case 'K': shift = 10; e++; break;
	case 'M': shift = 20; e++; break;
	case 'G': shift = 30; e++; break;
	}
	if (*e || v == 0 || v > (UINT64_MAX >> shift))
		return -EINVAL;
	*out = (uint64_t)v << shift;
	return 0;
}

int parse_options(int argc, char **argv)
{
	enum { O_BROKER = 256, O_PUBLISH, O_SUBSCRIBE, O_PREFIX, O_ID, O_QOS,
	       O_CAFILE, O_CERT, O_KEY, O_PASSWORD_FILE, O_MAX_CAPACITY,
	       O_MAX_TOTAL };
	static const struct option longopts[] = {
		{ "broker", required_argument, NULL, O_BROKER },
		{ "publish", required_argument, NULL, O_PUBLISH },
		{ "subscribe", required_argument, NULL, O_SUBSCRIBE },
		{ "prefix", required_argument, NULL, O_PREFIX },
		{ "id", required_argument, NULL, O_ID },
		{ "qos", required_argument, NULL, O_QOS },
		{ "cafile", required_argument, NULL, O_CAFILE },
		{ "cert", required_argument, NULL, O_CERT },
		{ "key", required_argument, NULL, O_KEY },
		{ "password-file", required_argument, NULL, O_PASSWORD_FILE },
		{ "max-capacity", required_argument, NULL, O_MAX_CAPACITY },
		{ "max-total", required_argument, NULL, O_MAX_TOTAL },
		{ "foreground", no_argument, NULL, 'f' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;
	while ((c = getopt_long(argc, argv, "fh", longopts, NULL)) != -1) {
		int rc = 0;
		switch (c) {
		case O_BROKER:
			free(opt.host);
			rc = parse_broker(optarg);
			if (rc == -EINVAL) {
				fprintf(stderr, "zinc-bridge: --broker: expected mqtt://HOST[:PORT] or mqtts://HOST[:PORT]\n");
				return 2;
			}
			break;
		case O_PUBLISH:
			rc = add_pattern(&opt.publish, optarg);
			break;
		case O_SUBSCRIBE:
			rc = add_pattern(&opt.subscribe, optarg);
			break;
		case O_PREFIX:
			/* A wildcard would make PREFIX '#' match other topics. */
			if (strpbrk(optarg, "+#")) {
				fprintf(stderr, "zinc-bridge: --prefix: no '+' or '#'\n");
				return 2;
			}
			opt.prefix = optarg;
			break;
		case O_ID:
			if (!*optarg || strlen(optarg) > 200) {
				fprintf(stderr, "zinc-bridge: --id: 1 to 200 bytes\n");
				return 2;
			}
			opt.id = optarg;
			break;
		case O_QOS:
			if (strcmp(optarg, "0") && strcmp(optarg, "1")) {
				fprintf(stderr, "zinc-bridge: --qos: 0 or 1\n");
				return 2;
			}
			opt.qos = optarg[0] - '0';
			break;
		case O_CAFILE: opt.cafile = optarg; break;
		case O_CERT: opt.cert = optarg; break;
		case O_KEY: opt.key = optarg; break;
		case O_PASSWORD_FILE: opt.password_file = optarg; break;
		case O_MAX_CAPACITY:
			if (parse_size(optarg, &opt.max_capacity)) {
				fprintf(stderr, "zinc-bridge: --max-capacity: a size such as 64M\n");
				return 2;
			}
			break;
		case O_MAX_TOTAL:
			if (parse_size(optarg, &opt.max_total)) {
				fprintf(stderr, "zinc-bridge: --max-total: a size such as 8G\n");
				return 2;
			}
			break;
		case 'f': opt.foreground = true; break;
		case 'h': usage(stdout); exit(0);
		default: usage(stderr); return 2;
		}
		if (rc) {
			fprintf(stderr, "zinc-bridge: %s\n", strerror(-rc));
			return 1;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "zinc-bridge: unexpected argument '%s'\n", argv[optind]);
		return 2;
	}
	if (!opt.host) {
		fprintf(stderr, "zinc-bridge: --broker is required\n");
		return 2;
	}
	if (!opt.publish && !opt.subscribe) {
		fprintf(stderr, "zinc-bridge: nothing to do: give --publish or --subscribe\n");
		return 2;
	}
	if (!!opt.cert != !!opt.key) {
		fprintf(stderr, "zinc-bridge: --cert and --key go together\n");
		return 2;
	}
	if ((opt.cafile || opt.cert) && !opt.tls) {
		fprintf(stderr, "zinc-bridge: --cafile/--cert need an mqtts:// broker\n");
		return 2;
	}
	return 0;
}

/* The default --id, HOSTNAME-PID: called after daemon(), for its pid. */
int default_id(void)
{
	if (opt.id)
		return 0;
	char host[256] = "zinc";
	gethostname(host, sizeof(host) - 1);
	host[sizeof(host) - 1] = 0;
	return asprintf(&opt.id, "%.180s-%d", host, (int)getpid()) < 0 ? -ENOMEM : 0;
}

/* First line USER:PASSWORD.  The secret is never logged, only the path. */
int read_password_file(const char *path, char **user, char **password)
{
	FILE *f = fopen(path, "re");
	if (!f)
		return -errno;
	char *line = NULL;
	size_t cap = 0;
	ssize_t n = getline(&line, &cap, f);
	int rc = n < 0 ? -EINVAL : 0;
	fclose(f);
	if (!rc) {
		line[strcspn(line, "\r\n")] = 0;
		char *colon = strchr(line, ':');
		if (!colon || colon == line) {
			rc = -EINVAL;
		} else {
			*colon = 0;
			*user = strdup(line);
			*password = strdup(colon + 1);
			if (!*user || !*password)
				rc = -ENOMEM;
		}
	}
	if (line) {
		explicit_bzero(line, cap);
		free(line);
	}
	return rc;
}
