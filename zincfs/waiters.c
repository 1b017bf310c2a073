/* SPDX-License-Identifier: MIT */
/*
 * .wait files: each open file has a cursor; a read that finds nothing newer
 * is a deferred reply (the request is stored, no thread waits), answered by
 * the watcher when the counter moves, with EINTR on interrupt, EIDRM when the
 * region goes, or ENOTCONN at exit.
 *
 * Readers see r->done_seq, not the live counter: the watcher publishes a
 * value only after it has invalidated the data file's page cache, so data
 * written before a notification is visible to whoever waited for it.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "zincfs.h"

struct pending {
	fuse_req_t req;
	struct wfile *wf;
	size_t size;
	struct pending *prev, *next; /* in wf->r->pending */
	struct pending *hnext;       /* in the by-request hash */
	char text[16];               /* once taken: the answer to send */
	uint8_t len;
};

#define NPBUCKETS 4096
static struct pending *by_req[NPBUCKETS];

static unsigned req_hash(fuse_req_t req)
{
	return (unsigned)(((uintptr_t)req >> 4) % NPBUCKETS);
}

static void pending_unlink(struct pending *p)
{
	struct region *r = p->wf->r;
	if (p->prev)
		p->prev->next = p->next;
	else
		r->pending = p->next;
	if (p->next)
		p->next->prev = p->prev;
	for (struct pending **q = &by_req[req_hash(p->req)]; *q; q = &(*q)->hnext) {
		if (*q == p) {
			*q = p->hnext;
			break;
		}
	}
}

/* Any change of the counter counts, as for zinc_wait: a writer may move it
 * by any amount (2^31 or more looks "older" to a signed comparison).  But
 * only a value seen after the cursor was set: one seen before, published
 * late, is no news to a file opened meanwhile. */
static int ready(const struct wfile *wf)
{
	return wf->text_off < wf->text_len ||
	       (wf->r->done_gen > wf->gen && wf->r->done_seq != wf->cursor);
}

/* The answer to a read of `size` bytes, copied to out (16 bytes): the rest
 * of the last line if a short read left some (dash's `read` takes one byte
 * at a time), else consume: move the cursor and answer with the counter as
 * text.  Returns its length. */
static size_t take_answer(struct wfile *wf, size_t size, char *out)
{
	if (wf->text_off >= wf->text_len) {
		wf->cursor = wf->r->done_seq;
		wf->gen = wf->r->done_gen;
		wf->text_len = (uint8_t)snprintf(wf->text, sizeof(wf->text), "%u\n",
						 wf->cursor);
		wf->text_off = 0;
	}
	size_t n = (size_t)(wf->text_len - wf->text_off);
	if (size < n)
		n = size;
	memcpy(out, wf->text + wf->text_off, n);
	wf->text_off = (uint8_t)(wf->text_off + n);
	return n;
}


struct wfile *wfile_open(struct region *r)
{
	struct wfile *wf = calloc(1, sizeof(*wf));
	if (!wf)
		return NULL;
	LOCK();
	wf->r = r;
	region_opened_locked(r, K_WAIT);
	wf->cursor = region_seq(r, NULL); /* only the next notification counts */
	wf->gen = r->seen_gen;
	wf->next = r->wfiles;
	if (r->wfiles)
		r->wfiles->prev = wf;
	r->wfiles = wf;
	UNLOCK();
	return wf;
}

void wfile_release(struct wfile *wf)
{
	struct region *r = wf->r;
	LOCK();
	/* A read holds its file, so nothing can be pending; be safe anyway. */
	for (struct pending *p = r->pending, *n; p; p = n) {
		n = p->next;
		if (p->wf == wf) {
			pending_unlink(p);
			fuse_reply_err(p->req, EBADF);
			free(p);
		}
	}
	if (wf->prev)
		wf->prev->next = wf->next;
	else
		r->wfiles = wf->next;
	if (wf->next)
		wf->next->prev = wf->prev;
	if (wf->ph)
		fuse_pollhandle_destroy(wf->ph);
	region_closed_locked(r, K_WAIT);
	UNLOCK();
	free(wf);
}

/* Interrupt callback.  `data` is never used: the request may already be
 * answered; we look it up by pointer and reply only if we dequeue it. */
static void on_interrupt(fuse_req_t req, void *data)
{
	(void)data;
	struct pending *p;
	LOCK();
	for (p = by_req[req_hash(req)]; p; p = p->hnext)
		if (p->req == req)
			break;
	if (p)
		pending_unlink(p);
	UNLOCK();
	if (p) {
		fuse_reply_err(req, EINTR);
		free(p);
	}
}

void wait_read(fuse_req_t req, struct wfile *wf, size_t size, int nonblock)
{
	struct pending *p = calloc(1, sizeof(*p));
	/* Before the request becomes visible to other threads (it may call
	 * on_interrupt right away, which then finds nothing). */
	fuse_req_interrupt_func(req, on_interrupt, NULL);
	LOCK();
	int err = 0;
	if (wf->r->gone && wf->text_off >= wf->text_len)
		err = EIDRM;
	else if (ready(wf)) {
		char text[16];
		size_t n = take_answer(wf, size, text);
		UNLOCK();
		fuse_reply_buf(req, text, n);
		free(p);
		return;
	} else if (nonblock)
		err = EAGAIN;
	else if (fuse_req_interrupted(req))
		err = EINTR;
	else if (!p)
		err = ENOMEM;
	if (err) {
		UNLOCK();
		fuse_reply_err(req, err);
		free(p);
		return;
	}
	struct region *r = wf->r;
	p->req = req;
	p->wf = wf;
	p->size = size;
	p->next = r->pending;
	if (r->pending)
		r->pending->prev = p;
	r->pending = p;
	unsigned b = req_hash(req);
	p->hnext = by_req[b];
	by_req[b] = p;
	UNLOCK();
}

void wait_poll(fuse_req_t req, struct wfile *wf, struct fuse_pollhandle *ph)
{
	LOCK();
	if (ph) {
		/* One handle per open file: the kernel sends a new one each
		 * time it polls again. */
		if (wf->ph)
			fuse_pollhandle_destroy(wf->ph);
		wf->ph = ph;
	}
	unsigned ev = wf->r->gone ? POLLIN | POLLERR : ready(wf) ? POLLIN : 0;
	fuse_reply_poll(req, ev);
	UNLOCK();
}

static void wake_pollers_locked(struct region *r, int all)
{
	for (struct wfile *wf = r->wfiles; wf; wf = wf->next) {
		if (wf->ph && (all || ready(wf))) {
			fuse_lowlevel_notify_poll(wf->ph);
			fuse_pollhandle_destroy(wf->ph);
			wf->ph = NULL;
		}
	}
}

/*
 * Answered readers are unlinked under the lock, so neither the interrupt
 * callback nor a second publisher can answer them too.  All replies but the
 * last are sent under the lock; the last one waits in `out` for
 * replies_send(), after the lock is dropped.  Measured (2 vCPUs):
 * - one reader (the common case): a reader of higher priority than zincfs
 *   runs as soon as it is answered; answered under the lock, it preempts us
 *   while we hold it, and its next read queues a worker behind the lock:
 *   two more context switches per notification (zinc_notify -> .wait
 *   ping-pong 15.2 instead of 13.3 us median);
 * - thousands of readers: answered without the lock, the closes and
 *   releases of the readers already answered compete with us for the CPU,
 *   and the last of 3,000 readers returned 2-3 times later; under the lock
 *   the workers serving them wait and we finish first.
 */
void waiters_publish_locked(struct region *r, struct replies *out)
{
	for (struct pending *p = r->pending, *n; p; p = n) {
		n = p->next;
		if (ready(p->wf)) {
			pending_unlink(p);
			p->len = (uint8_t)take_answer(p->wf, p->size, p->text);
			replies_send(out);
			out->last = p;
		}
	}
	wake_pollers_locked(r, 0);
}

void replies_send(struct replies *out)
{
	events_send_later(); /* .events readers of the same publication */
	struct pending *p = out->last;
	if (p) {
		out->last = NULL;
		fuse_reply_buf(p->req, p->text, p->len);
		free(p);
	}
}

void waiters_fail_locked(struct region *r, int err)
{
	while (r->pending) {
		struct pending *p = r->pending;
		pending_unlink(p);
		fuse_reply_err(p->req, err);
		free(p);
	}
	wake_pollers_locked(r, 1);
}

/* At exit: answer every deferred read so no caller is left hanging. */
void waiters_fail_all_locked(int err)
{
	for (unsigned b = 0; b < NPBUCKETS; b++) {
		while (by_req[b]) {
			struct pending *p = by_req[b];
			pending_unlink(p);
			fuse_reply_err(p->req, err);
			free(p);
		}
	}
}

/* At exit, after the session is gone: free what the region still holds. */
void waiters_free_locked(struct region *r)
{
	while (r->pending) {
		struct pending *p = r->pending;
		pending_unlink(p);
		free(p);
	}
	while (r->wfiles) {
		struct wfile *wf = r->wfiles;
		r->wfiles = wf->next;
		if (wf->ph)
			fuse_pollhandle_destroy(wf->ph);
		free(wf);
	}
}
