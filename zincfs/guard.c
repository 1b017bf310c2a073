/* SPDX-License-Identifier: MIT */
/*
 * A region object can be truncated by anyone while zincfs has it mapped;
 * touching its header then raises SIGBUS.  Every access to a mapping goes
 * through GUARDED(), which turns that SIGBUS into an error for that region.
 * (Data is never read through a mapping: ops use pread/pwrite.)
 */
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

#include "zincfs.h"

__thread sigjmp_buf *zfs_bus_jmp;
__thread int zfs_bus_ready;
__thread int zfs_bus_patch;
__thread int zfs_bus_faults;

int zfs_guard_zero_page(const void *addr)
{
	uintptr_t page = (uintptr_t)addr & ~(uintptr_t)(zfs_cfg.page - 1);
	return mmap((void *)page, zfs_cfg.page, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == MAP_FAILED ? -1 : 0;
}

static void on_sigbus(int sig, siginfo_t *si, void *ctx)
{
	(void)ctx;
	/* PATCHED(): zeros over the faulting page, then carry on. */
	if (zfs_bus_patch && zfs_guard_zero_page(si->si_addr) == 0) {
		zfs_bus_faults++;
		return;
	}
	if (zfs_bus_jmp)
		siglongjmp(*zfs_bus_jmp, 1);
	/* Not ours: die as SIGBUS would have. */
	signal(sig, SIG_DFL);
}

void zfs_guard_init(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_sigbus;
	/* NODEFER: we leave the handler by siglongjmp without restoring the
	 * mask, so SIGBUS must not stay blocked. */
	sa.sa_flags = SA_SIGINFO | SA_NODEFER;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGBUS, &sa, NULL);
}

/* A blocked synchronous SIGBUS kills the process whatever the handler, so
 * make sure this thread has it unblocked (once per thread). */
void zfs_guard_thread(void)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGBUS);
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);
	zfs_bus_ready = 1;
}
