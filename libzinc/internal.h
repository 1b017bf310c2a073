/* SPDX-License-Identifier: MIT */
/* libzinc internals shared by region.c (format, lifetime) and notify.c. */
#ifndef ZINC_INTERNAL_H
#define ZINC_INTERNAL_H

#include <limits.h>
#include <stdint.h>
#include "zinc.h"

/*
 * libzinc's own bookkeeping at offset 64 of the header page, which zinc-core
 * ignores.  A region without ext_magic was made by zinc-core ("foreign");
 * claim is used on those too (zinc-core never writes there).
 */
struct zinc_ext {
	uint64_t ext_magic; /* 64 */
	uint32_t waiters;   /* 72: zinc_wait callers and watchers about to sleep */
	uint32_t handles;   /* 76: libzinc's counting handles (0 before v2) */
	uint64_t claim;     /* 80: removal claim: 0 free, else claim_token() */
};
#define ZINC_EXT_OFFSET 64
#define ZINC_EXT_MAGIC 0x31434E495A42494CULL /* "LIBZINC1" */
_Static_assert(ZINC_EXT_OFFSET + __builtin_offsetof(struct zinc_ext, claim) == 80,
	       "claim at 80");

/*
 * Open-file-description locks on the shm object (the kernel drops them when
 * a process dies, so crashes count as closes).  Nothing ever waits for one:
 * a reader of the object can hold read locks on any byte.
 *   LOCK_HANDLE: every counting handle holds a read lock;
 *   LOCK_OWNER:  the creator's handle holds a write lock (a reader's read
 *                lock cannot pass for it);
 *   LOCK_CLAIM:  the holder of ext->claim holds a write lock while it can
 *                (proof that the claimer lives).
 */
enum { LOCK_HANDLE = 0, LOCK_OWNER = 1, LOCK_CLAIM = 2 };

struct zinc_region {
	int fd;
	uint32_t open_flags;    /* ZINC_OPEN_* */
	uint8_t owner;          /* created by this handle */
	uint8_t foreign;        /* made by zinc-core: no ext, no locks */
	uint8_t always_wake;    /* notify always issues FUTEX_WAKE */
	uint8_t watching;       /* counted in ext->waiters by zinc_watch */
	struct zinc_header *hdr; /* start of the mapping */
	struct zinc_ext *ext;
	uint8_t *data;
	size_t map_size;
	size_t capacity;
	uint32_t cursor;        /* last counter value consumed */
	uint32_t spin_ns;
	char name[ZINC_NAME_MAX + 1];
	char path[PATH_MAX];
};

size_t zinc__page_size(void);

static inline uint16_t zinc__flags(const struct zinc_region *r)
{
	return __atomic_load_n(&r->hdr->flags, __ATOMIC_ACQUIRE);
}

/* Wake every waiter on the region's futex word (shared futex). */
void zinc__wake_all(uint32_t *word);

/* The region lost its name: set ZINC_FLAG_REMOVED, then (once) bump the
 * counter and wake every waiter, who return -EIDRM. */
void zinc__mark_removed(struct zinc_header *hdr);

/* consume() that reports the removal's counter bump as -EIDRM: 0 =
 * consumed, -EAGAIN = nothing new, -EIDRM.  *seen gets the counter. */
int zinc__take(zinc_region *r, uint32_t *seen);

/* 1 if the name was removed without ZINC_FLAG_REMOVED (then it sets the
 * flag, bumps the counter and wakes every waiter), 0 if not. */
int zinc__name_gone(zinc_region *r);

struct timespec;
/* *ts = CLOCK_MONOTONIC now + ns. */
void zinc__deadline_after(struct timespec *ts, uint64_t ns);
/* 1 if a is earlier than b. */
int zinc__before(const struct timespec *a, const struct timespec *b);

/* A blocking wait looks at the object's link count this often. */
#define ZINC_SLICE_NS 1000000000u

#endif
