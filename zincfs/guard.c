/* SPDX-License-Identifier: MIT */
/*
 * A region object can be truncated by anyone while zincfs has it mapped;
 * touching its header then raises SIGBUS.  Every access to a mapping goes
 * through GUARDED(), which turns that SIGBUS into an error for that region.
 * (Data is never read through a mapping: ops use pread/pwrite.)
 */
#include <signal.h>
#include <string.h>

#include "zincfs.h"

__thread sigjmp_buf *zfs_bus_jmp;
__thread int zfs_bus_ready;

static void on_sigbus(int sig, siginfo_t *si, void *ctx)
{
	(void)si;
	(void)ctx;
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
