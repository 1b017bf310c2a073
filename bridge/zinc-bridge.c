/* SPDX-License-Identifier: MIT */
/*
 * zinc-bridge: libzinc regions across machines over MQTT 5.
 * Main: logging, the MQTT client and its callbacks, signals.
 */
#include <errno.h>
#include <malloc.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "bridge.h"

struct bridge_stats stats;
struct mosquitto *mosq;
atomic_bool stopping;
pthread_mutex_t mq_lock = PTHREAD_MUTEX_INITIALIZER;
static int wake_fd = -1; /* eventfd: network_kick() */
static atomic_bool accepted; /* the broker accepted the connection */
static struct ratelimit rl_conn;

static void vlog(int prio, const char *fmt, va_list ap)
{
	if (opt.foreground) {
		flockfile(stderr);
		fputs("zinc-bridge: ", stderr);
		vfprintf(stderr, fmt, ap);
		fputc('\n', stderr);
		funlockfile(stderr);
	} else {
		vsyslog(prio, fmt, ap);
	}
}

void blog(int prio, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vlog(prio, fmt, ap);
	va_end(ap);
}

#define RATE_WINDOW_S 10
#define RATE_BURST 5

void blog_limited(struct ratelimit *rl, int prio, const char *fmt, ...)
{
	static pthread_mutex_t rl_lock = PTHREAD_MUTEX_INITIALIZER;
	time_t now = time(NULL);
	unsigned suppressed = 0;
	pthread_mutex_lock(&rl_lock);
	if (now - rl->window >= RATE_WINDOW_S) {
		suppressed = rl->suppressed;
		rl->window = now;
		rl->sent = 0;
		rl->suppressed = 0;
	}
	bool send = rl->sent < RATE_BURST;
	if (send)
		rl->sent++;
	else
		rl->suppressed++;
	pthread_mutex_unlock(&rl_lock);
	if (!send)
		return;
	if (suppressed)
		blog(prio, "(%u similar messages suppressed)", suppressed);
	va_list ap;
	va_start(ap, fmt);
	vlog(prio, fmt, ap);
	va_end(ap);
}

static void on_connect(struct mosquitto *m, void *ud, int rc, int flags,
		       const mosquitto_property *props)
{
	(void)m; (void)ud; (void)flags; (void)props;
	if (rc) {
		blog_limited(&rl_conn, LOG_WARNING, "broker refused the connection: %s",
			     mosquitto_reason_string(rc));
		return;
	}
	atomic_store(&accepted, true);
	blog(LOG_INFO, "connected to %s:%d as %s", opt.host, opt.port, opt.id);
	subscribe_on_connect();
	publish_on_connect();
}

static void on_disconnect(struct mosquitto *m, void *ud, int rc,
			  const mosquitto_property *props)
{
	(void)m; (void)ud; (void)props;
	publish_on_disconnect();
	if (!atomic_load(&stopping))
		blog_limited(&rl_conn, LOG_WARNING, "disconnected (%s): reconnecting",
			     rc == MOSQ_ERR_CONN_LOST ? "connection lost" :
			     mosquitto_strerror(rc));
}

static void on_publish(struct mosquitto *m, void *ud, int mid, int rc,
		       const mosquitto_property *props)
{
	(void)m; (void)ud; (void)rc; (void)props;
	publish_on_published(mid);
}

static void on_message(struct mosquitto *m, void *ud,
		       const struct mosquitto_message *msg,
		       const mosquitto_property *props)
{
	(void)m; (void)ud;
	subscribe_on_message(msg, props);
}

static int setup_client(void)
{
	mosq = mosquitto_new(opt.id, true, NULL);
	if (!mosq)
		return -errno;
	/* Threaded: mosquitto_publish() only queues; the publish thread and
	 * the network thread write under mq_lock. */
	int rc = mosquitto_threaded_set(mosq, true);
	if (!rc)
		rc = mosquitto_int_option(mosq, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5);
	if (!rc)
		rc = mosquitto_int_option(mosq, MOSQ_OPT_TCP_NODELAY, 1);
	if (!rc && opt.tls) {
		rc = mosquitto_tls_set(mosq, opt.cafile, opt.cafile ? NULL : "/etc/ssl/certs",
				       opt.cert, opt.key, NULL);
		if (rc) {
			blog(LOG_ERR, "TLS setup (cafile %s, cert %s, key %s): %s",
			     opt.cafile ? opt.cafile : "-", opt.cert ? opt.cert : "-",
			     opt.key ? opt.key : "-", mosquitto_strerror(rc));
			return -EINVAL;
		}
	}
	if (!rc && opt.password_file) {
		char *user = NULL, *password = NULL;
		int e = read_password_file(opt.password_file, &user, &password);
		if (e) {
			blog(LOG_ERR, "%s: %s (expected USER:PASSWORD on the first line)",
			     opt.password_file, strerror(-e));
			return e;
		}
		rc = mosquitto_username_pw_set(mosq, user, password);
		explicit_bzero(password, strlen(password));
		free(user);
		free(password);
	}
	if (rc) {
		blog(LOG_ERR, "MQTT client setup: %s", mosquitto_strerror(rc));
		return -EINVAL;
	}
	mosquitto_connect_v5_callback_set(mosq, on_connect);
	mosquitto_disconnect_v5_callback_set(mosq, on_disconnect);
	mosquitto_publish_v5_callback_set(mosq, on_publish);
	mosquitto_message_v5_callback_set(mosq, on_message);
	return 0;
}

void network_kick(void)
{
	uint64_t one = 1;
	if (write(wake_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		blog(LOG_ERR, "waking the network thread: %s", strerror(errno));
}

/* One round of libmosquitto's loop: sleep in poll(2) without mq_lock until
 * the socket or network_kick() has something, then run the loop without
 * waiting, under mq_lock (callbacks included).  libmosquitto's own wait
 * would also wake on every message the publish thread queues; that thread
 * writes them itself (publish.c, flush_locked). */
static int loop_once(void)
{
	pthread_mutex_lock(&mq_lock);
	struct pollfd p[2] = {
		{ .fd = mosquitto_socket(mosq),
		  .events = POLLIN | (mosquitto_want_write(mosq) ? POLLOUT : 0) },
		{ .fd = wake_fd, .events = POLLIN },
	};
	pthread_mutex_unlock(&mq_lock);
	/* At least every second: keep-alive pings (mosquitto_loop_misc). */
	if (poll(p, 2, 1000) > 0 && p[1].revents) {
		uint64_t n;
		if (read(wake_fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
			blog(LOG_ERR, "network thread wake-up: %s", strerror(errno));
	}
	pthread_mutex_lock(&mq_lock);
	int rc = mosquitto_loop(mosq, 0, 1);
	pthread_mutex_unlock(&mq_lock);
	return rc;
}

/* Sleep up to `s` seconds, less if we are stopping. */
static void backoff_sleep(unsigned s)
{
	for (unsigned i = 0; i < s * 10 && !atomic_load(&stopping); i++)
		usleep(100 * 1000);
}

/*
 * The MQTT network thread: runs libmosquitto's loop (every callback runs
 * here) and reconnects itself, rather than in libmosquitto's loop_forever:
 * that one gives up on a first connect that fails and on errors it takes
 * as fatal (DNS, TLS), and sleeps through its backoff where a SIGTERM
 * cannot end it.  Backoff: 1 s doubling to 30 s, back to 1 s after a
 * connection the broker accepted.
 */
static void *network_thread(void *arg)
{
	(void)arg;
	unsigned delay = 1;
	while (!atomic_load(&stopping)) {
		atomic_store(&accepted, false);
		int rc = mosquitto_connect(mosq, opt.host, opt.port, 30);
		while (rc == MOSQ_ERR_SUCCESS && !atomic_load(&stopping))
			rc = loop_once();
		/* Disconnected for the publish side too (not every error calls
		 * on_disconnect), before the next mosquitto_connect(). */
		pthread_mutex_lock(&mq_lock);
		publish_on_disconnect();
		pthread_mutex_unlock(&mq_lock);
		if (atomic_load(&stopping))
			break;
		if (atomic_load(&accepted))
			delay = 1;
		else
			blog_limited(&rl_conn, LOG_WARNING, "connecting to %s:%d: %s (retrying in %u s)",
				     opt.host, opt.port,
				     rc == MOSQ_ERR_ERRNO ? strerror(errno) : mosquitto_strerror(rc),
				     delay);
		backoff_sleep(delay);
		delay = delay * 2 > 30 ? 30 : delay * 2;
	}
	return NULL;
}

int main(int argc, char **argv)
{
	int rc = parse_options(argc, argv);
	if (rc)
		return rc;
	if (!opt.foreground) {
		if (daemon(0, 0)) {
			perror("zinc-bridge: daemon");
			return 1;
		}
		openlog("zinc-bridge", LOG_PID, LOG_DAEMON);
	}
	if (default_id()) {
		blog(LOG_ERR, "out of memory");
		return 1;
	}
	/* Every thread inherits this mask: SIGINT/SIGTERM are taken by
	 * sigwait below, SIGPIPE never kills us (a broken broker socket). */
	sigset_t sigs;
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);

	/* libmosquitto mallocs a copy of every payload it sends or receives:
	 * keep blocks up to 16 MiB in the heap for the next message instead
	 * of glibc's mmap and munmap of each one (bench row 10, 1 MiB). */
	mallopt(M_MMAP_THRESHOLD, 16 << 20);
	wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (wake_fd < 0) {
		blog(LOG_ERR, "eventfd: %s", strerror(errno));
		return 1;
	}
	mosquitto_lib_init();
	if (setup_client()) {
		mosquitto_lib_cleanup();
		return 1;
	}
	pthread_t net;
	rc = pthread_create(&net, NULL, network_thread, NULL);
	if (rc) {
		blog(LOG_ERR, "MQTT thread: %s", strerror(rc));
		return 1;
	}
	rc = publish_start();
	if (rc) {
		blog(LOG_ERR, "publish thread: %s", strerror(-rc));
		return 1;
	}
	blog(LOG_INFO, "started: broker %s:%d%s, id %s", opt.host, opt.port,
	     opt.tls ? " (TLS)" : "", opt.id);

	int sig;
	while (sigwait(&sigs, &sig) == 0 && sig == SIGHUP)
		; /* nothing to reload */
	atomic_store(&stopping, true);
	publish_stop();
	pthread_mutex_lock(&mq_lock);
	mosquitto_disconnect(mosq);
	pthread_mutex_unlock(&mq_lock);
	network_kick();
	/* The thread may sit in a connect(2) to an unreachable broker for
	 * minutes (or in a DNS lookup): exit without it then (the subscribe side is closed first,
	 * so it touches no region any more). */
	struct timespec deadline;
	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += 2;
	bool joined = pthread_timedjoin_np(net, NULL, &deadline) == 0;
	subscribe_release_all();
	blog(LOG_INFO, "exit on signal %d: published %lu, removals %lu, torn copies %lu, received %lu, bad %lu, foreign %lu",
	     sig, atomic_load(&stats.published), atomic_load(&stats.removals),
	     atomic_load(&stats.torn), atomic_load(&stats.received),
	     atomic_load(&stats.bad), atomic_load(&stats.foreign));
	if (joined) {
		mosquitto_destroy(mosq);
		mosquitto_lib_cleanup();
	}
	free(opt.host);
	return 0;
}
