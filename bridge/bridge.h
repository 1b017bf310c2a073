/* SPDX-License-Identifier: MIT */
/*
 * zinc-bridge: regions across machines over MQTT 5 (see zinc-bridge(8)).
 *
 * Region NAME <-> topic PREFIX NAME, one retained message per region holding
 * its whole data area, with the user properties seq, capacity and origin.
 * Three threads: main (options, signals, shutdown), the MQTT network thread
 * (zinc-bridge.c: libmosquitto's loop, so every callback and the whole
 * subscribe side) and the publish thread (publish.c: waits on the published
 * regions and writes its messages itself).  mq_lock serializes libmosquitto
 * and the publish table; the subscribe table has its own lock.
 */
#ifndef ZINC_BRIDGE_H
#define ZINC_BRIDGE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include <mosquitto.h>
#include <mqtt_protocol.h>
#include <sys/types.h>
#include <syslog.h>

#include "zinc.h"

struct bridge_options {
	char *host;
	int port;
	bool tls;
	char **publish;     /* fnmatch patterns, NULL-terminated */
	char **subscribe;
	const char *prefix; /* topic prefix, default "zinc/" */
	char *id;           /* client id and origin */
	int qos;            /* 0 or 1 */
	const char *cafile, *cert, *key;
	const char *password_file;
	uint64_t max_capacity; /* largest region a message may create */
	uint64_t max_total;    /* all regions the bridge holds, together */
	bool foreground;
};

/* Counters, printed at exit (and the reason tests can check them). */
struct bridge_stats {
	atomic_ulong published;  /* messages handed to libmosquitto */
	atomic_ulong removals;   /* empty retained messages sent */
	atomic_ulong torn;       /* copies dropped: counter moved during copy */
	atomic_ulong received;   /* messages written into a local region */
	atomic_ulong bad;        /* messages dropped as malformed */
	atomic_ulong foreign;    /* messages for a name held by someone else */
};

extern struct bridge_options opt;
extern struct bridge_stats stats;
extern struct mosquitto *mosq;
extern atomic_bool stopping;
/* Held around every use of mosq but mosquitto_connect() (during which the
 * publish side, seeing itself disconnected, leaves mosq alone) and around
 * the publish table; libmosquitto's callbacks run with it held. */
extern pthread_mutex_t mq_lock;
/* Wake the network thread: a write is left for it (zinc-bridge.c). */
void network_kick(void);

/* options.c */
int parse_options(int argc, char **argv); /* 0, or exit status */
int default_id(void);
int read_password_file(const char *path, char **user, char **password);
bool name_matches(char *const *patterns, const char *name);

/* zinc-bridge.c: logging to stderr (-f) or syslog */
void blog(int prio, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* At most `burst` messages of a kind per 10 s; the rest are counted and
 * summed up in the next message that gets through. */
struct ratelimit {
	time_t window;
	unsigned sent, suppressed;
};
void blog_limited(struct ratelimit *rl, int prio, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* publish.c: the publish thread and its libmosquitto callbacks */
int publish_start(void);
void publish_stop(void);
void publish_on_connect(void);
void publish_on_disconnect(void);
void publish_on_published(int mid);

/* subscribe.c: called from libmosquitto's thread */
void subscribe_on_connect(void);
void subscribe_on_message(const struct mosquitto_message *m,
			  const mosquitto_property *props);
void subscribe_release_all(void);

#endif
