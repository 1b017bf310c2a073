/* SPDX-License-Identifier: MIT */
/*
 * zinc-bridge, publish side: local regions -> retained messages.
 *
 * One thread finds the regions matching --publish (zinc_list at start, on
 * inotify events of the region directory and every second), opens them
 * with observer handles (they never keep a region alive) and waits on all
 * of them with zinc_wait_any.  Each notification sends the data area as one
 * retained message.  At most one message per region is in libmosquitto's
 * queue: a notification arriving meanwhile only marks the region dirty, and
 * the state current when that message has left is sent next (latest wins,
 * memory stays bounded however fast the producer is).
 *
 * Regions this process created (the subscribe side's, owner_pid == ours)
 * are never published: loop prevention.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "bridge.h"

struct pub_region {
	char name[ZINC_NAME_MAX + 1];
	zinc_region *h;  /* observer handle, NULL once the region is gone */
	bool mine;       /* created by this process: never published */
	bool dirty;      /* state (or removal) not handed to libmosquitto yet */
	bool inflight;   /* a message of ours is queued, id `mid` */
	bool seen;       /* found by the current rescan */
	int mid;
};

/* Copies of a region whose counter moved during the copy are retried this
 * many times, then the region stays dirty and is tried again later. */
#define COPY_TRIES 8
#define WAIT_MS 100
#define RESCAN_MS 1000

static struct pub_region **regions; /* added/freed by the publish thread */
static size_t n_regions;
static bool connected;
static uint8_t *copy_buf; /* one copy at a time, under mq_lock */
static size_t copy_cap;
static pthread_t thread;
static bool thread_started;
static int inotify_fd = -1;
static struct ratelimit rl_publish;

static const char *region_dir(void)
{
	const char *dir = getenv("ZINC_SHM_DIR");
	return dir && *dir ? dir : "/dev/shm";
}

static int topic_of(const char *name, char *topic, size_t size)
{
	int n = snprintf(topic, size, "%s%s", opt.prefix, name);
	return n > 0 && (size_t)n < size ? 0 : -ENAMETOOLONG;
}

/* Copy the data area so that no notification happened during the copy.
 * Returns the length copied (the capacity) or -EAGAIN after COPY_TRIES
 * tries, or -ENOMEM.  *seq gets the counter the copy belongs to. */
static ssize_t copy_region(zinc_region *h, uint32_t *seq)
{
	size_t cap = zinc_capacity(h);
	if (cap > copy_cap) {
		uint8_t *b = realloc(copy_buf, cap);
		if (!b)
			return -ENOMEM;
		copy_buf = b;
		copy_cap = cap;
	}
	const uint8_t *data = zinc_ptr(h);
	for (int i = 0; i < COPY_TRIES; i++) {
		uint32_t before = zinc_seq(h); /* acquire */
		memcpy(copy_buf, data, cap);
		atomic_thread_fence(memory_order_acquire);
		if (zinc_seq(h) == before) {
			*seq = before;
			return (ssize_t)cap;
		}
	}
	return -EAGAIN;
}

/* Hand the region's current state (or its removal) to libmosquitto, or mark
 * it dirty to be sent when possible.  Called with mq_lock held. */
static void publish_locked(struct pub_region *r)
{
	if (r->mine)
		return;
	r->dirty = true;
	if (r->inflight || !connected)
		return;
	char topic[1024];
	if (topic_of(r->name, topic, sizeof(topic)))
		return;
	mosquitto_property *props = NULL;
	ssize_t len = 0;
	int rc = MOSQ_ERR_SUCCESS;
	if (r->h) {
		uint32_t seq;
		len = copy_region(r->h, &seq);
		if (len == -EAGAIN) {
			atomic_fetch_add(&stats.torn, 1);
			return; /* still dirty: tried again after the next wait */
		}
		if (len < 0) {
			blog_limited(&rl_publish, LOG_ERR, "%s: %s", r->name,
				     strerror((int)-len));
			return;
		}
		char num[32];
		snprintf(num, sizeof(num), "%u", seq);
		rc = mosquitto_property_add_string_pair(&props, MQTT_PROP_USER_PROPERTY, "seq", num);
		snprintf(num, sizeof(num), "%zd", len);
		if (!rc)
			rc = mosquitto_property_add_string_pair(&props, MQTT_PROP_USER_PROPERTY, "capacity", num);
	}
	if (!rc)
		rc = mosquitto_property_add_string_pair(&props, MQTT_PROP_USER_PROPERTY, "origin", opt.id);
	int mid = 0;
	if (!rc)
		rc = mosquitto_publish_v5(mosq, &mid, topic, (int)len,
					  len ? copy_buf : NULL, opt.qos, true, props);
	mosquitto_property_free_all(&props);
	if (rc == MOSQ_ERR_SUCCESS) {
		r->dirty = false;
		r->inflight = true;
		r->mid = mid;
		atomic_fetch_add(r->h ? &stats.published : &stats.removals, 1);
	} else if (rc != MOSQ_ERR_NO_CONN) {
		blog_limited(&rl_publish, LOG_ERR, "%s: publish: %s", r->name,
			     mosquitto_strerror(rc));
	}
}

static struct pub_region *find(const char *name)
{
	for (size_t i = 0; i < n_regions; i++)
		if (!strcmp(regions[i]->name, name))
			return regions[i];
	return NULL;
}

/* Open NAME for publishing into r (r->h NULL).  Returns 0 or -errno. */
static int attach(struct pub_region *r)
{
	zinc_region *h;
	int rc = zinc_open_ex(r->name, ZINC_OPEN_OBSERVE, &h);
	if (rc)
		return rc;
	struct zinc_info info;
	rc = zinc_handle_stat(h, &info);
	if (rc) {
		zinc_close(h);
		return rc;
	}
	r->h = h;
	r->mine = info.owner_pid == (int32_t)getpid();
	return 0;
}

/* The region's name was removed (or its object deleted): follow a region
 * that replaced it, else announce the removal.  Called with mq_lock held. */
static void lost(struct pub_region *r)
{
	bool was_mine = r->mine;
	zinc_close(r->h);
	r->h = NULL;
	if (attach(r) == 0) {
		if (!r->mine)
			publish_locked(r);
		return;
	}
	r->mine = false;
	if (was_mine) {
		r->dirty = false; /* ours to drop, never announced */
		return;
	}
	publish_locked(r); /* the empty retained message */
}

static int rescan_one(const char *name, void *arg)
{
	(void)arg;
	if (!name_matches(opt.publish, name))
		return 0;
	struct pub_region *r = find(name);
	if (r) {
		r->seen = true;
		if (!r->h && attach(r) == 0 && !r->mine)
			publish_locked(r); /* came back before its removal left */
		return 0;
	}
	r = calloc(1, sizeof(*r));
	struct pub_region **l = realloc(regions, (n_regions + 1) * sizeof(*l));
	if (!r || !l) {
		free(r);
		if (l)
			regions = l;
		return -ENOMEM;
	}
	regions = l;
	snprintf(r->name, sizeof(r->name), "%s", name);
	if (attach(r)) {
		free(r); /* gone already, or not a region */
		return 0;
	}
	r->seen = true;
	regions[n_regions++] = r;
	if (!r->mine)
		publish_locked(r);
	return 0;
}

static void rescan(void)
{
	for (size_t i = 0; i < n_regions; i++)
		regions[i]->seen = false;
	int rc = zinc_list(rescan_one, NULL);
	if (rc < 0) {
		blog_limited(&rl_publish, LOG_ERR, "listing %s: %s", region_dir(),
			     strerror(-rc));
		return;
	}
	for (size_t i = 0; i < n_regions; i++) {
		struct pub_region *r = regions[i];
		/* Deleted without zinc_unlink (rm), or removed while we
		 * were not waiting on it (ours). */
		if (r->h && (!r->seen || zinc_removed(r->h) == 1))
			lost(r);
	}
}

/* Forget regions that are gone and whose removal has been sent. */
static void reap(void)
{
	size_t j = 0;
	for (size_t i = 0; i < n_regions; i++) {
		struct pub_region *r = regions[i];
		if (!r->h && !r->dirty && !r->inflight)
			free(r);
		else
			regions[j++] = r;
	}
	n_regions = j;
}

/* Drain inotify; true if a zinc_ object came or went. */
static bool dir_changed(void)
{
	if (inotify_fd < 0)
		return false;
	bool changed = false;
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	ssize_t n;
	while ((n = read(inotify_fd, buf, sizeof(buf))) > 0) {
		for (char *p = buf; p < buf + n;) {
			struct inotify_event *ev = (struct inotify_event *)p;
			if (ev->len && !strncmp(ev->name, ZINC_OBJECT_PREFIX, strlen(ZINC_OBJECT_PREFIX)))
				changed = true;
			if (ev->mask & IN_Q_OVERFLOW)
				changed = true;
			p += sizeof(*ev) + ev->len;
		}
	}
	return changed;
}

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Write what this thread queued (mq_lock held): the message leaves without
 * a hand-off to the network thread, one wake-up less on its way.  What the
 * socket does not take now, or a write error, is left to the network
 * thread, woken for it.  was_busy: bytes were already waiting when we took
 * mq_lock, so the network thread is writing (it waits for the socket) and
 * takes ours after them: nothing to do. */
static void flush_locked(bool was_busy)
{
	if (was_busy || !connected || !mosquitto_want_write(mosq))
		return;
	if (mosquitto_loop_write(mosq, 1) != MOSQ_ERR_SUCCESS || mosquitto_want_write(mosq))
		network_kick();
}

static void *publish_thread(void *arg)
{
	(void)arg;
	zinc_region **hs = NULL;
	struct pub_region **owners = NULL;
	int32_t *ready = NULL;
	size_t cap = 0;
	uint64_t next_rescan = 0;

	while (!atomic_load(&stopping)) {
		pthread_mutex_lock(&mq_lock);
		bool busy = connected && mosquitto_want_write(mosq);
		if (dir_changed() || now_ms() >= next_rescan) {
			rescan();
			next_rescan = now_ms() + RESCAN_MS;
		}
		reap();
		size_t n = 0;
		if (n_regions > cap) {
			size_t c = n_regions * 2;
			zinc_region **h2 = realloc(hs, c * sizeof(*h2));
			if (h2)
				hs = h2;
			struct pub_region **o2 = realloc(owners, c * sizeof(*o2));
			if (o2)
				owners = o2;
			int32_t *r2 = realloc(ready, c * sizeof(*r2));
			if (r2)
				ready = r2;
			if (h2 && o2 && r2)
				cap = c;
		}
		for (size_t i = 0; i < n_regions && n < cap && n < ZINC_WAIT_ANY_MAX; i++) {
			if (regions[i]->h && !regions[i]->mine) {
				hs[n] = regions[i]->h;
				owners[n++] = regions[i];
			}
		}
		flush_locked(busy);
		pthread_mutex_unlock(&mq_lock);

		/* Handles are closed only by this thread: safe unlocked. */
		int rc;
		if (n == 0) {
			struct pollfd p = { .fd = inotify_fd, .events = POLLIN };
			rc = poll(&p, inotify_fd >= 0 ? 1 : 0, WAIT_MS);
			continue;
		}
		rc = zinc_wait_any(hs, (uint32_t)n, ready, NULL, WAIT_MS, 0);

		pthread_mutex_lock(&mq_lock);
		busy = connected && mosquitto_want_write(mosq);
		for (size_t i = 0; rc > 0 && i < n; i++) {
			if (ready[i] == 1)
				publish_locked(owners[i]);
			else if (ready[i] == -EIDRM)
				lost(owners[i]);
		}
		if (rc < 0 && rc != -ETIMEDOUT)
			blog_limited(&rl_publish, LOG_ERR, "zinc_wait_any: %s",
				     strerror(-rc));
		/* Retry what could not be sent (torn copies, errors). */
		for (size_t i = 0; i < n_regions; i++)
			if (regions[i]->dirty && !regions[i]->inflight)
				publish_locked(regions[i]);
		flush_locked(busy);
		pthread_mutex_unlock(&mq_lock);
	}
	free(hs);
	free(owners);
	free(ready);
	return NULL;
}

int publish_start(void)
{
	if (!opt.publish)
		return 0;
	inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (inotify_fd >= 0 &&
	    inotify_add_watch(inotify_fd, region_dir(),
			      IN_CREATE | IN_MOVED_TO | IN_DELETE | IN_MOVED_FROM) < 0) {
		blog(LOG_WARNING, "inotify on %s: %s (new regions are found within %d ms)",
		     region_dir(), strerror(errno), RESCAN_MS);
		close(inotify_fd);
		inotify_fd = -1;
	}
	int rc = pthread_create(&thread, NULL, publish_thread, NULL);
	if (rc)
		return -rc;
	thread_started = true;
	return 0;
}

void publish_stop(void)
{
	if (thread_started)
		pthread_join(thread, NULL);
	thread_started = false;
	pthread_mutex_lock(&mq_lock);
	for (size_t i = 0; i < n_regions; i++) {
		zinc_close(regions[i]->h);
		free(regions[i]);
	}
	free(regions);
	regions = NULL;
	n_regions = 0;
	free(copy_buf);
	copy_buf = NULL;
	copy_cap = 0;
	pthread_mutex_unlock(&mq_lock);
	if (inotify_fd >= 0)
		close(inotify_fd);
	inotify_fd = -1;
}

/* The callbacks below run with mq_lock held (libmosquitto's callbacks).
 *
 * (Re)connected: the broker may have lost retained messages (restart
 * without persistence), so every region's state is sent again. */
void publish_on_connect(void)
{
	connected = true;
	for (size_t i = 0; i < n_regions; i++) {
		regions[i]->inflight = false;
		if (regions[i]->h || regions[i]->dirty)
			publish_locked(regions[i]);
	}
}

/* Queued QoS 0 messages are dropped with the connection: nothing is in
 * flight any more, and what was in flight is sent again on connect. */
void publish_on_disconnect(void)
{
	connected = false;
	for (size_t i = 0; i < n_regions; i++)
		if (regions[i]->inflight) {
			regions[i]->inflight = false;
			regions[i]->dirty = true;
		}
}

/* A message has left (QoS 0) or was acknowledged (QoS 1): send the state
 * that came meanwhile, if any. */
void publish_on_published(int mid)
{
	for (size_t i = 0; i < n_regions; i++) {
		struct pub_region *r = regions[i];
		if (r->inflight && r->mid == mid) {
			r->inflight = false;
			if (r->dirty)
				publish_locked(r);
			break;
		}
	}
}
