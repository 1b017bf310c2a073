/* SPDX-License-Identifier: MIT */
/*
 * zinc-bridge, subscribe side: retained messages -> local regions.
 *
 * Runs in the MQTT network thread (libmosquitto's callbacks).  Every message is hostile until proven
 * otherwise: the topic must be PREFIX NAME with a valid region name, the
 * user properties seq, capacity and origin must each be there once and be
 * well formed, the capacity at most --max-capacity and the payload at most
 * the capacity.  Anything else is counted, logged (rate-limited) and
 * dropped.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bridge.h"
#include "name.h"

struct sub_region {
	char name[ZINC_NAME_MAX + 1];
	zinc_region *h; /* owner handle: the bridge created it */
};

static struct sub_region *owned;
static size_t n_owned;
static uint64_t total; /* capacities of the owned regions */
/* Held while a message is handled; closed at exit, after which messages
 * are ignored (the network thread may outlive a stuck shutdown). */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static bool closed;
static struct ratelimit rl_bad, rl_foreign, rl_error;

/* A topic fit for a log line: at most 64 bytes, printable ASCII only. */
static const char *printable(const char *s, char out[72])
{
	size_t i = 0;
	for (; s[i] && i < 64; i++)
		out[i] = s[i] >= 0x20 && s[i] < 0x7f ? s[i] : '?';
	if (s[i]) {
		memcpy(out + i, "...", 3);
		i += 3;
	}
	out[i] = 0;
	return out;
}

static void bad(const char *topic, const char *why)
{
	char t[72];
	unsigned long n = atomic_fetch_add(&stats.bad, 1) + 1;
	blog_limited(&rl_bad, LOG_WARNING, "dropped message on '%s': %s (%lu bad so far)",
		     printable(topic, t), why, n);
}

/* Strict unsigned decimal: digits only, no sign, no overflow. */
static int parse_u64(const char *s, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;
	if (!*s)
		return -EINVAL;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return -EINVAL;
		unsigned d = (unsigned)(*s - '0');
		if (v > (max - d) / 10)
			return -ERANGE;
		v = v * 10 + d;
	}
	*out = v;
	return 0;
}

struct msg_props {
	char *seq, *capacity, *origin;
};

static void free_props(struct msg_props *p)
{
	free(p->seq);
	free(p->capacity);
	free(p->origin);
}

/* Collect our user properties; a duplicate one is an error. */
static int read_props(const mosquitto_property *props, struct msg_props *out)
{
	const mosquitto_property *p = props;
	bool skip = false;
	char *k, *v;
	while ((p = mosquitto_property_read_string_pair(p, MQTT_PROP_USER_PROPERTY,
							&k, &v, skip))) {
		skip = true;
		char **slot = !strcmp(k, "seq") ? &out->seq :
			      !strcmp(k, "capacity") ? &out->capacity :
			      !strcmp(k, "origin") ? &out->origin : NULL;
		free(k);
		if (slot && *slot) {
			free(v);
			return -EINVAL;
		}
		if (slot)
			*slot = v;
		else
			free(v);
	}
	return 0;
}

static struct sub_region *find(const char *name)
{
	for (size_t i = 0; i < n_owned; i++)
		if (!strcmp(owned[i].name, name))
			return &owned[i];
	return NULL;
}

/* Remove our region NAME (waiters see it removed) and forget it. */
static void drop(struct sub_region *s)
{
	total -= zinc_capacity(s->h);
	if (zinc_removed(s->h) == 0)
		zinc_unlink(s->name);
	zinc_close(s->h);
	*s = owned[--n_owned];
}

static void store(const char *topic, const char *name, uint64_t capacity,
		  const void *payload, size_t len)
{
	struct sub_region *s = find(name);
	if (s && zinc_removed(s->h) == 1)
		drop(s); /* removed locally (zinc rm): make it again */
	s = find(name);
	uint64_t held = s ? zinc_capacity(s->h) : 0;
	if (total - held + capacity > opt.max_total)
		return bad(topic, "regions received would exceed --max-total");
	if (!s) {
		zinc_region *h;
		int rc = zinc_create(name, (uintptr_t)capacity, &h);
		if (rc == -EEXIST) {
			atomic_fetch_add(&stats.foreign, 1);
			blog_limited(&rl_foreign, LOG_WARNING,
				     "%s: a local region of that name exists and is not the bridge's: left alone",
				     name);
			return;
		}
		if (rc) {
			blog_limited(&rl_error, LOG_ERR, "%s: create %llu bytes: %s",
				     name, (unsigned long long)capacity, zinc_strerror(rc));
			return;
		}
		struct sub_region *l = realloc(owned, (n_owned + 1) * sizeof(*l));
		if (!l) {
			zinc_close(h);
			return;
		}
		owned = l;
		s = &owned[n_owned++];
		snprintf(s->name, sizeof(s->name), "%s", name);
		s->h = h;
		total += capacity;
	} else if (held != capacity) {
		zinc_region *h;
		int rc = zinc_recreate(s->h, (uintptr_t)capacity, &h);
		if (rc) {
			blog_limited(&rl_error, LOG_ERR, "%s: resize to %llu bytes: %s",
				     name, (unsigned long long)capacity, zinc_strerror(rc));
			return;
		}
		zinc_close(s->h);
		s->h = h;
		total += capacity - held;
	}
	uint8_t *data = zinc_ptr(s->h);
	memcpy(data, payload, len);
	if (len < capacity) /* a shorter payload than ours: no stale tail */
		memset(data + len, 0, capacity - len);
	zinc_notify(s->h);
	atomic_fetch_add(&stats.received, 1);
}

static void handle_message(const struct mosquitto_message *m,
			   const mosquitto_property *props)
{
	size_t plen = strlen(opt.prefix);
	if (!m->topic || strncmp(m->topic, opt.prefix, plen))
		return bad(m->topic ? m->topic : "", "topic outside the prefix");
	const char *name = m->topic + plen;
	if (!zinc__valid_name(name))
		return bad(m->topic, "not a region name");
	if (!name_matches(opt.subscribe, name))
		return; /* not ours to receive */

	struct msg_props p = { 0 };
	if (read_props(props, &p)) {
		free_props(&p);
		return bad(m->topic, "duplicate property");
	}
	uint64_t capacity = 0, seq;
	const char *why = NULL;
	if (!p.origin)
		why = "no origin property";
	else if (!strcmp(p.origin, opt.id))
		; /* our own message: never written back (loop prevention) */
	else if (m->payloadlen == 0)
		; /* removal: needs no seq or capacity */
	else if (!p.seq || parse_u64(p.seq, UINT32_MAX, &seq))
		why = "missing or bad seq property";
	else if (!p.capacity || parse_u64(p.capacity, UINT64_MAX, &capacity) ||
		 capacity == 0 || capacity % zinc_data_offset())
		why = "missing or bad capacity property";
	else if (capacity > opt.max_capacity)
		why = "capacity above --max-capacity";
	else if ((uint64_t)m->payloadlen > capacity)
		why = "payload larger than the capacity";
	bool own = p.origin && !strcmp(p.origin, opt.id);
	free_props(&p);
	if (why)
		return bad(m->topic, why);
	if (own)
		return;
	if (m->payloadlen == 0) {
		struct sub_region *s = find(name);
		if (s)
			drop(s);
		return;
	}
	store(m->topic, name, capacity, m->payload, (size_t)m->payloadlen);
}

void subscribe_on_message(const struct mosquitto_message *m,
			  const mosquitto_property *props)
{
	pthread_mutex_lock(&lock);
	if (!closed)
		handle_message(m, props);
	pthread_mutex_unlock(&lock);
}

/* Subscriptions do not survive a new session: subscribe on every connect.
 * No Local: the broker does not send our own messages back. */
void subscribe_on_connect(void)
{
	if (!opt.subscribe)
		return;
	char filter[1024];
	snprintf(filter, sizeof(filter), "%s#", opt.prefix);
	int rc = mosquitto_subscribe_v5(mosq, NULL, filter, 1,
					MQTT_SUB_OPT_NO_LOCAL, NULL);
	if (rc)
		blog(LOG_ERR, "subscribe %s: %s", filter, mosquitto_strerror(rc));
}

/* At exit the regions the bridge made are removed: nobody would update
 * them any more, and their waiters learn it (-EIDRM) instead of waiting
 * forever.  The broker keeps the retained state for the next start. */
void subscribe_release_all(void)
{
	pthread_mutex_lock(&lock);
	closed = true;
	while (n_owned)
		drop(&owned[n_owned - 1]);
	free(owned);
	owned = NULL;
	pthread_mutex_unlock(&lock);
}
