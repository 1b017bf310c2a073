/* SPDX-License-Identifier: MIT */
/*
 * libzinc - named shared-memory regions with notify/wait.
 *
 * A region NAME is the POSIX shm object /dev/shm/zinc_NAME (or
 * $ZINC_SHM_DIR/zinc_NAME): one header page followed by `capacity` bytes of
 * data.  The format and the first nine functions are those of zinc-core v2,
 * so regions and programs of either library work with the other.
 *
 * Conventions: functions that can fail return 0 (or a count) on success and
 * a negative errno on failure.  zinc maps "permission denied" to -EPERM.
 */
#ifndef ZINC_H
#define ZINC_H

#include <stddef.h>
#include <stdint.h>

/* zinc's header also defines the unprefixed MAGIC and VERSION and includes
 * <stdarg.h>, <stdbool.h> and <stdlib.h>.  Those names clash with other
 * code, so they come only on request: define ZINC_CORE_COMPAT_MACROS before
 * including this header to build code that relies on them. */
#ifdef ZINC_CORE_COMPAT_MACROS
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#define MAGIC ZINC_MAGIC
#define VERSION ZINC_FORMAT_VERSION
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* libzinc is built with -fvisibility=hidden: what this header declares is
 * its public ABI (also listed in libzinc/libzinc.map). */
#if defined(__GNUC__) && __GNUC__ >= 4
#pragma GCC visibility push(default)
#endif

/* Opaque handle; ABI-identical to zinc-core's `void *`.  A handle belongs to
 * the process that opened it: a child forked without exec must open its own
 * (it shares the parent's locks), and handles close on exec. */
typedef struct zinc_region zinc_region;

/* zinc's own header calls the handle ZincHandle (a `void *` there).  Here it
 * is the same pointer, typed: code written against zinc's header, such as
 * `ZincHandle h = nullptr; zinc_create(name, cap, &h)` in zinc's C++ and Go
 * adapters, builds unchanged and the ABI is the same. */
typedef zinc_region *ZincHandle;

#define ZINC_NAME_MAX 250            /* bytes of [A-Za-z0-9_-] */
#define ZINC_OBJECT_PREFIX "zinc_"   /* object name = prefix + NAME */
#define ZINC_MAGIC 0x5A494E435F524547ULL /* "ZINC_REG" */
#define ZINC_FORMAT_VERSION 2

/*
 * The 64-byte header at offset 0 of every region object, native byte order.
 * Data starts one page after it.  Bytes 64..page_size-1 of the first page are
 * ignored by zinc-core; libzinc keeps its waiter count there.
 */
struct zinc_header {
	uint64_t magic;      /* ZINC_MAGIC, stored last (release) at create */
	uint16_t version;    /* ZINC_FORMAT_VERSION */
	uint16_t flags;      /* ZINC_FLAG_* */
	uint32_t notify_seq; /* notification counter and futex word; wraps */
	uint64_t capacity;   /* usable bytes */
	uint32_t ref_count;  /* open handles (advisory; crashes leave it high) */
	int32_t owner_pid;   /* creator's pid */
	uint64_t created_at; /* ns since the Unix epoch */
	uint64_t name_hash;  /* FNV-1a 64 of NAME */
	uint64_t ring_head;  /* reserved by zinc, 0 */
	uint64_t ring_tail;  /* reserved by zinc, 0 */
};

/* Layout checks, in every language mode the header supports: static_assert
 * in C++, _Static_assert in C11 and later, a negative array size in C99. */
#if defined(__cplusplus)
#define ZINC_ASSERT_LAYOUT_(c, msg) static_assert(c, msg)
#elif defined(__STDC_VERSION__) && __STDC_VERSION__ >= 201112L
#define ZINC_ASSERT_LAYOUT_(c, msg) _Static_assert(c, msg)
#else
#define ZINC_ASSERT_LAYOUT_(c, msg) \
	typedef char zinc_layout_check_[(c) ? 1 : -1]
#endif
ZINC_ASSERT_LAYOUT_(sizeof(struct zinc_header) == 64 &&
		    offsetof(struct zinc_header, version) == 8 &&
		    offsetof(struct zinc_header, flags) == 10 &&
		    offsetof(struct zinc_header, notify_seq) == 12 &&
		    offsetof(struct zinc_header, capacity) == 16 &&
		    offsetof(struct zinc_header, ref_count) == 24 &&
		    offsetof(struct zinc_header, owner_pid) == 28 &&
		    offsetof(struct zinc_header, created_at) == 32 &&
		    offsetof(struct zinc_header, name_hash) == 40 &&
		    offsetof(struct zinc_header, ring_head) == 48 &&
		    offsetof(struct zinc_header, ring_tail) == 56,
		    "struct zinc_header is zinc-core's 64-byte layout");
#undef ZINC_ASSERT_LAYOUT_

/* flags: the region's name was removed (unlinked or replaced). */
#define ZINC_FLAG_REMOVED 0x0001

/* ---- the nine zinc-core functions ---- */

/* Create region NAME with `capacity` bytes (> 0, a multiple of the page
 * size) and return its owner handle in *out.  The memory is reserved now, so
 * a full /dev/shm gives -ENOSPC here rather than SIGBUS later.  A region of
 * that name whose owner closed or died is replaced (its handles then get
 * -EIDRM).  Returns 0, -EINVAL (bad name/size/NULL), -EEXIST (owner alive,
 * the name is taken by something that is not a region, or its region is
 * being removed by another process), -EPERM, -ENOSPC, -ENOMEM, or -errno.
 * Never waits for a lock.  *out is set to NULL first whenever out is not NULL. */
int32_t zinc_create(const char *name, uintptr_t capacity, zinc_region **out);

/* Open an existing region.  Returns 0, -EINVAL, -ENOENT (absent or removed),
 * -EPERM, -EBADMSG (the object is not a valid region), -EBUSY (another
 * process kept the region's removal claim for about 1.5 s: it is stopped
 * or stuck), -ENOMEM, or -errno. */
int32_t zinc_open(const char *name, zinc_region **out);

/* Start of the data area (page-aligned), or NULL for a NULL handle or one
 * opened with ZINC_OPEN_HEADER. */
uint8_t *zinc_ptr(zinc_region *r);

/* Usable bytes of the data area (from the object's size, never from shared
 * memory), or 0 for a NULL handle. */
uintptr_t zinc_capacity(zinc_region *r);

/* Close a handle.  The last handle to close anywhere removes the name.
 * Never waits for another process.  NULL is a no-op. */
void zinc_close(zinc_region *r);

/* Signal the region: bump the counter (full barrier) and wake every waiter.
 * Makes no system call when nobody waits and every open handle is
 * libzinc's (a zinc-core handle, seen in the header's ref_count, makes it
 * wake).  NULL is a no-op. */
void zinc_notify(zinc_region *r);

/* Wait for a notification newer than this handle's cursor, then move the
 * cursor to the current counter.  timeout_ms 0 never blocks; UINT32_MAX
 * waits forever.  Returns 0, -ETIMEDOUT, -EIDRM (the region's name was
 * removed: reopen it), -EINVAL (NULL handle). */
int32_t zinc_wait(zinc_region *r, uint32_t timeout_ms);

/* Consume a pending notification without blocking.  Returns 0 if one was
 * pending, -EAGAIN if not, -EIDRM, -EINVAL. */
int32_t zinc_try_wait(zinc_region *r);

/* 0x00020001: format version 2, ABI revision 1. */
uint32_t zinc_version(void);

/* ---- libzinc additions ---- */

/* Static description of a negative (or positive) errno returned here. */
const char *zinc_strerror(int err);

/* The region's NAME, or NULL for a NULL handle. */
const char *zinc_name(zinc_region *r);

/* The counter's current value (0 for NULL). */
uint32_t zinc_seq(zinc_region *r);

/* Remove region NAME: waiters get -EIDRM, mapped memory stays valid for
 * whoever has it.  An object under the name that is not a region is
 * removed too.  Returns 0, -EINVAL, -ENOENT, -EPERM, -EISDIR (a directory
 * holds the name), -EBUSY (another process kept the region's removal claim
 * for about 1.5 s), or -errno. */
int32_t zinc_unlink(const char *name);

/* Spin up to spin_ns nanoseconds watching the counter before sleeping in
 * zinc_wait on this handle (0, the default, never spins).  Worth it only
 * when both sides run on their own CPUs; the spin yields the CPU now and
 * then, so a notifier on the same CPU still runs.  Returns 0 or -EINVAL. */
int32_t zinc_set_spin(zinc_region *r, uint32_t spin_ns);

/* Call fn(name, arg) for every object in the region directory whose name is
 * a valid region name (contents are not checked: open to be sure).  Stops
 * early and returns fn's value if it is non-zero.  Returns the number of
 * names visited or -errno. */
int32_t zinc_list(int (*fn)(const char *name, void *arg), void *arg);

/* Facts about a region, for tools. */
struct zinc_info {
	uint64_t capacity;
	uint64_t created_at;  /* ns since the Unix epoch */
	uint32_t seq;
	uint32_t ref_count;   /* header's count (advisory) */
	uint32_t waiters;     /* libzinc waiters announced now */
	int32_t owner_pid;
	uint16_t flags;
	uint8_t owner_alive;  /* 1 if the creator's handle is still open */
	uint8_t in_use;       /* 1 if any libzinc handle is open */
	uint8_t foreign;      /* 1 if created by zinc-core, not libzinc */
	uint8_t others;       /* 1 if a libzinc handle other than the one
				 asked about (or any, by name) is open */
};

/* Fill *info for region NAME without counting as a handle.  Returns 0,
 * -EINVAL, -ENOENT, -EPERM, -EBADMSG, or -errno. */
int32_t zinc_stat(const char *name, struct zinc_info *info);

/* ---- advanced: for daemons and event loops ---- */

/* zinc_open_ex flags: an observer handle does not count as a handle (it
 * never keeps a region alive and its close never removes the name). */
#define ZINC_OPEN_OBSERVE 0x1
/* Map only the header page: zinc_ptr() returns NULL, zinc_capacity() is
 * still the capacity (from the object's size) and the data is read and
 * written through zinc_fd() at zinc_data_offset().  However large the
 * object, the handle costs one page of address space.  Combinable with
 * ZINC_OPEN_OBSERVE. */
#define ZINC_OPEN_HEADER 0x2

/* zinc_open with flags.  Returns as zinc_open, or -EINVAL for unknown
 * flags. */
int32_t zinc_open_ex(const char *name, uint32_t flags, zinc_region **out);

/* Replace the region that `owner` created by a new one of `capacity` bytes
 * under the same name, all or nothing.  The new region is built unnamed
 * (memory reserved, so -ENOSPC comes here), gets the old object's owner and
 * mode, min(old, new capacity) data bytes and the counter's value, and is
 * renamed over the name only if the name still refers to owner's region.
 * Then the old region is marked removed (its waiters get -EIDRM) and the new
 * owner handle is returned in *out; the caller still closes `owner` (which
 * leaves the new name alone).  On failure nothing changed.  Returns 0,
 * -EINVAL, -EPERM (not an owner handle, or permission denied), -ENOENT (the
 * name was removed or replaced), -ENOSPC, -EBUSY (as zinc_unlink), or
 * -errno.  *out is set to NULL
 * first whenever out is not NULL. */
int32_t zinc_recreate(zinc_region *owner, uintptr_t capacity, zinc_region **out);

/* Fill *info from an open handle.  Returns 0 or -EINVAL. */
int32_t zinc_handle_stat(zinc_region *r, struct zinc_info *info);

/* The shm object's file descriptor (owned by the handle), or -EINVAL.
 * Data byte i is at file offset zinc_data_offset() + i. */
int zinc_fd(zinc_region *r);

/* File offset of data byte 0 (the page size). */
size_t zinc_data_offset(void);

/* Address of the 32-bit futex word (the counter), for waiting on many
 * regions at once with futex_waitv(2) (FUTEX_32, shared).  NULL for NULL. */
const uint32_t *zinc_futex_word(zinc_region *r);

/* Count this handle as a waiter (on != 0) or stop (on == 0), so that
 * notifiers issue the futex wake while you wait on zinc_futex_word()
 * yourself.  Idempotent per handle.  Returns 0 or -EINVAL. */
int32_t zinc_watch(zinc_region *r, int on);

/* 1 if the region's name was removed (see ZINC_FLAG_REMOVED), 0 if not,
 * -EINVAL for NULL. */
int32_t zinc_removed(zinc_region *r);

/* ---- waiting on many regions (ZINC_1.1) ---- */

/* The most handles one zinc_wait_any call takes. */
#define ZINC_WAIT_ANY_MAX 65536
/* zinc_wait_any flag: a signal ends the wait with -EINTR (by default
 * signals, like spurious wakes, are not notifications and the wait goes
 * on until the deadline). */
#define ZINC_WAIT_EINTR 0x1

/* Wait until at least one of the n handles h[0..n-1] has a notification
 * newer than its cursor, or was removed, then report every handle that is
 * ready: ready[i] = 1 (notified: its cursor moved to the counter, as
 * zinc_wait does), -EIDRM (its region was removed), 0 (nothing).  seqs,
 * if not NULL, gets every handle's counter as seen.  timeout_ms as for
 * zinc_wait (0 never blocks, UINT32_MAX forever).  Up to 128 handles wait
 * in one futex_waitv(2) call; more use helper threads of the calling
 * thread (127 handles each), kept for later calls and stopped when the
 * thread exits.  Returns the number of ready handles (> 0), -ETIMEDOUT,
 * -EINTR (only with ZINC_WAIT_EINTR), -EINVAL (NULL h, ready or handle,
 * n == 0, n > ZINC_WAIT_ANY_MAX, unknown flags), -ENOMEM or -EAGAIN (no
 * helper thread could be started). */
int32_t zinc_wait_any(zinc_region *const *h, uint32_t n, int32_t *ready,
		      uint32_t *seqs, uint32_t timeout_ms, uint32_t flags);

#if defined(__GNUC__) && __GNUC__ >= 4
#pragma GCC visibility pop
#endif

#ifdef __cplusplus
}
#endif

#endif /* ZINC_H */
