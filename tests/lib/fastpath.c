/* SPDX-License-Identifier: MIT */
/*
 * The waiter-count fast path: notify makes no system call when nobody waits.
 *
 * How it is measured: a child process installs a seccomp filter that traps
 * (SIGSYS, syscall skipped) every futex(2) call whose address is the
 * region's futex word, and counts them in the handler.  A positive control
 * in the same child (zinc_watch, or a real waiter) proves the counter sees
 * the wakes that do happen.  Also: the waiter count returns to 0 after every
 * kind of wait, ZINC_ALWAYS_WAKE makes notify always issue the wake, and a
 * handle counted in the header's ref_count but not by libzinc (zinc-core's)
 * makes notify wake by default.  The same holds for zinc_wait_any's
 * waiters.
 */
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/futex.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <stddef.h>
#include <ucontext.h>
#include "testutil.h"

#if defined(__x86_64__)
#define TU_AUDIT_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define TU_AUDIT_ARCH AUDIT_ARCH_AARCH64
#endif

#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define ARG0_LO offsetof(struct seccomp_data, args[0])
#define ARG0_HI (offsetof(struct seccomp_data, args[0]) + 4)
#define ARG5_LO offsetof(struct seccomp_data, args[5])
#else
#define ARG5_LO (offsetof(struct seccomp_data, args[5]) + 4)
#define ARG0_LO (offsetof(struct seccomp_data, args[0]) + 4)
#define ARG0_HI offsetof(struct seccomp_data, args[0])
#endif

static volatile sig_atomic_t futex_calls;

/* The trapped call is re-issued from the handler with this val3 (ignored
 * by FUTEX_WAKE), which the filter lets through: counting is transparent,
 * every wake still happens. */
#define PASS_VAL3 0x5a17c0deu

static void on_sigsys(int sig, siginfo_t *si, void *ucv)
{
	ucontext_t *uc = ucv;
	(void)sig;
	if (si->si_syscall != SYS_futex)
		return;
	futex_calls++;
	long a[5], rc;
#if defined(__x86_64__)
	greg_t *g = uc->uc_mcontext.gregs;
	a[0] = g[REG_RDI]; a[1] = g[REG_RSI]; a[2] = g[REG_RDX];
	a[3] = g[REG_R10]; a[4] = g[REG_R8];
#elif defined(__aarch64__)
	for (int i = 0; i < 5; i++)
		a[i] = (long)uc->uc_mcontext.regs[i];
#endif
	int saved = errno;
	if ((a[1] & FUTEX_CMD_MASK) == FUTEX_WAKE) {
		rc = syscall(SYS_futex, a[0], a[1], a[2], a[3], a[4], PASS_VAL3);
		if (rc < 0)
			rc = -errno;
	} else {
		rc = -ENOSYS;
	}
	errno = saved;
#if defined(__x86_64__)
	g[REG_RAX] = rc;
#elif defined(__aarch64__)
	uc->uc_mcontext.regs[0] = (unsigned long)rc;
#endif
}

/* In a child only: count (and skip) futex calls on `word` from now on. */
static void count_futex_calls(const uint32_t *word)
{
#ifdef TU_AUDIT_ARCH
	struct sigaction sa = { 0 };
	sa.sa_sigaction = on_sigsys;
	sa.sa_flags = SA_SIGINFO;
	sigemptyset(&sa.sa_mask);
	CHECK_SYS(sigaction(SIGSYS, &sa, NULL));
	uint64_t a = (uintptr_t)word;
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, TU_AUDIT_ARCH, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_futex, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, ARG0_LO),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)a, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, ARG0_HI),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)(a >> 32), 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, ARG5_LO),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, PASS_VAL3, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_TRAP),
	};
	struct sock_fprog prog = { .len = sizeof(f) / sizeof(f[0]), .filter = f };
	CHECK_SYS(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0));
	CHECK_SYS(prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog));
	futex_calls = 0;
	/* Self-test: a futex call on the word is counted, others are not. */
	syscall(SYS_futex, word, FUTEX_WAKE, 1, NULL, NULL, 0);
	static uint32_t other;
	syscall(SYS_futex, &other, FUTEX_WAKE, 1, NULL, NULL, 0);
	CHECK_EQ(futex_calls, 1);
	futex_calls = 0;
#else
	(void)word;
	_exit(T_SKIP);
#endif
}

/* In a child: open NAME (env as set by the caller), count futex calls
 * while notifying n times, exit with the count (or 200+ on error). */
static int notify_counted(const char *name, const char *always_wake, int n)
{
	pid_t pid = tu_fork();
	if (pid == 0) {
		if (always_wake)
			setenv("ZINC_ALWAYS_WAKE", always_wake, 1);
		zinc_region *h;
		CHECK_OK(zinc_open(name, &h));
		count_futex_calls(zinc_futex_word(h));
		for (int i = 0; i < n; i++)
			zinc_notify(h);
		_exit(futex_calls > 199 ? 199 : (int)futex_calls);
	}
	int rc = tu_wait_exit(pid, 30000);
	if (rc == T_SKIP)
		tu_skip("seccomp counting not supported on this arch");
	return rc;
}

static void test_no_syscall_without_waiters(void)
{
	zinc_region *r;
	CHECK_OK(zinc_create("quiet", tu_page(), &r));
	CHECK_EQ(notify_counted("quiet", NULL, 1000), 0);
	CHECK_EQ(zinc_seq(r), 1000);

	/* Positive control in one child: watching makes notify wake. */
	pid_t pid = tu_fork();
	if (pid == 0) {
		zinc_region *h;
		CHECK_OK(zinc_open("quiet", &h));
		count_futex_calls(zinc_futex_word(h));
		for (int i = 0; i < 100; i++)
			zinc_notify(h);
		CHECK_EQ(futex_calls, 0);
		CHECK_OK(zinc_watch(h, 1));
		CHECK_OK(zinc_watch(h, 1)); /* idempotent */
		CHECK_EQ(tu_waiters(h), 1);
		for (int i = 0; i < 10; i++)
			zinc_notify(h);
		CHECK_EQ(futex_calls, 10);
		CHECK_OK(zinc_watch(h, 0));
		CHECK_OK(zinc_watch(h, 0));
		CHECK_EQ(tu_waiters(h), 0);
		for (int i = 0; i < 10; i++)
			zinc_notify(h);
		CHECK_EQ(futex_calls, 10);
		_exit(0);
	}
	CHECK_CHILD_OK(pid);
	CHECK_EQ(tu_waiters(r), 0);
	zinc_close(r);
}

/* A real sleeping waiter: the counted notifier issues exactly one wake per
 * notify while it sleeps, and none once it is gone. */
static void test_wake_only_with_waiter(void)
{
	zinc_region *r, *h;
	CHECK_OK(zinc_create("busy", tu_page(), &r));
	CHECK_OK(zinc_open("busy", &h));
	struct tu_waiter w = { .r = h, .timeout = 20000 };
	tu_waiter_start(&w);
	CHECK_THREAD_ASLEEP(w.tid);
	CHECK_EQ(tu_waiters(r), 1);
	CHECK_EQ(notify_counted("busy", NULL, 1), 1);
	CHECK_OK(tu_waiter_join(&w));
	CHECK_EQ(tu_waiters(r), 0);
	CHECK_EQ(notify_counted("busy", NULL, 50), 0);
	zinc_close(h);
	zinc_close(r);
}

static volatile sig_atomic_t alarms;
static void on_alarm(int sig)
{
	(void)sig;
	alarms++;
}

/* Every way a wait can end leaves the waiter count where it was. */
static void test_waiter_count_returns_to_zero(void)
{
	zinc_region *r, *h;
	CHECK_OK(zinc_create("count", tu_page(), &r));
	CHECK_OK(zinc_open("count", &h));

	/* timed out */
	CHECK_RC(zinc_wait(h, 5), -ETIMEDOUT);
	CHECK_EQ(tu_waiters(r), 0);
	/* timeout 0 */
	CHECK_RC(zinc_wait(h, 0), -ETIMEDOUT);
	CHECK_EQ(tu_waiters(r), 0);
	/* pending at entry */
	zinc_notify(r);
	CHECK_OK(zinc_wait(h, 1000));
	CHECK_EQ(tu_waiters(r), 0);
	/* woken */
	struct tu_waiter w = { .r = h, .timeout = 20000 };
	tu_waiter_start(&w);
	CHECK_THREAD_ASLEEP(w.tid);
	zinc_notify(r);
	CHECK_OK(tu_waiter_join(&w));
	CHECK_EQ(tu_waiters(r), 0);
	/* interrupted by signals, then timed out */
	struct sigaction sa = { 0 }, old;
	sa.sa_handler = on_alarm;
	sigemptyset(&sa.sa_mask);
	CHECK_SYS(sigaction(SIGALRM, &sa, &old));
	ualarm(2000, 2000);
	CHECK_RC(zinc_wait(h, 30), -ETIMEDOUT);
	ualarm(0, 0);
	CHECK_SYS(sigaction(SIGALRM, &old, NULL));
	CHECK(alarms > 0);
	CHECK_EQ(tu_waiters(r), 0);
	/* with spin, notified and timed out */
	CHECK_OK(zinc_set_spin(h, 1000000));
	zinc_notify(r);
	CHECK_OK(zinc_wait(h, 100));
	CHECK_RC(zinc_wait(h, 5), -ETIMEDOUT);
	CHECK_EQ(tu_waiters(r), 0);
	CHECK_OK(zinc_set_spin(h, 0));
	/* in other processes, many times */
	pid_t pid = tu_fork();
	if (pid == 0) {
		zinc_region *c;
		CHECK_OK(zinc_open("count", &c));
		CHECK_OK(zinc_try_wait(c)); /* what was sent before */
		for (int i = 0; i < 200; i++)
			CHECK_RC(zinc_wait(c, 1), -ETIMEDOUT);
		zinc_close(c);
		_exit(0);
	}
	CHECK_CHILD_OK(pid);
	CHECK_EQ(tu_waiters(r), 0);
	/* a watcher that closes without unwatching */
	zinc_region *x;
	CHECK_OK(zinc_open("count", &x));
	CHECK_OK(zinc_watch(x, 1));
	CHECK_EQ(tu_waiters(r), 1);
	zinc_close(x);
	CHECK_EQ(tu_waiters(r), 0);
	/* -EIDRM: the region is removed while waiting */
	w = (struct tu_waiter){ .r = h, .timeout = 20000 };
	tu_waiter_start(&w);
	CHECK_THREAD_ASLEEP(w.tid);
	CHECK_OK(zinc_unlink("count"));
	CHECK_RC(tu_waiter_join(&w), -EIDRM);
	CHECK_EQ(tu_waiters(r), 0);

	/* and after all that, notify is silent again */
	zinc_close(h);
	zinc_close(r);
	CHECK_OK(zinc_create("count", tu_page(), &r));
	CHECK_OK(zinc_open("count", &h));
	for (int i = 0; i < 50; i++)
		CHECK_RC(zinc_wait(h, 1), -ETIMEDOUT);
	CHECK_EQ(notify_counted("count", NULL, 100), 0);
	zinc_close(h);
	zinc_close(r);
}

/* A raw FUTEX_WAIT on the word, as zinc-core's wait does: it never
 * announces itself.  Exit 0 if woken (value unchanged at entry), 2 if it
 * timed out after `ms`. */
static pid_t raw_waiter(const char *name, int ms)
{
	pid_t pid = tu_fork();
	if (pid == 0) {
		zinc_region *h;
		CHECK_OK(zinc_open_ex(name, ZINC_OPEN_OBSERVE, &h));
		uint32_t *word = (uint32_t *)zinc_futex_word(h);
		uint32_t v = __atomic_load_n(word, __ATOMIC_ACQUIRE);
		struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
		for (;;) {
			long rc = syscall(SYS_futex, word, FUTEX_WAIT, v, &ts,
					  NULL, 0);
			if (rc == 0 && __atomic_load_n(word, __ATOMIC_ACQUIRE) != v)
				_exit(0);
			if (rc < 0 && errno == ETIMEDOUT)
				_exit(2);
			if (rc < 0 && errno == EAGAIN)
				_exit(0);
		}
	}
	return pid;
}

static void test_always_wake(void)
{
	zinc_region *r;
	CHECK_OK(zinc_create("always", tu_page(), &r));
	CHECK_EQ(notify_counted("always", "1", 100), 100);
	CHECK_EQ(notify_counted("always", "yes", 7), 7);
	CHECK_EQ(notify_counted("always", "0", 100), 0);
	CHECK_EQ(notify_counted("always", "", 100), 0);

	/* Why it exists: an unannounced raw waiter is not woken by the
	 * fast path ... */
	pid_t pid = raw_waiter("always", 400);
	CHECK_ASLEEP(pid);
	CHECK_EQ(tu_waiters(r), 0);
	zinc_notify(r);
	CHECK_EQ(tu_wait_exit(pid, 10000), 2);
	/* ... but is with ZINC_ALWAYS_WAKE (read when a handle is opened). */
	setenv("ZINC_ALWAYS_WAKE", "1", 1);
	zinc_region *aw;
	CHECK_OK(zinc_open("always", &aw));
	unsetenv("ZINC_ALWAYS_WAKE");
	pid = raw_waiter("always", 20000);
	CHECK_ASLEEP(pid);
	zinc_notify(aw);
	CHECK_CHILD_OK(pid);
	/* A created handle honours it too. */
	zinc_close(aw);
	zinc_close(r);
	setenv("ZINC_ALWAYS_WAKE", "1", 1);
	CHECK_OK(zinc_create("always", tu_page(), &r));
	unsetenv("ZINC_ALWAYS_WAKE");
	pid = raw_waiter("always", 20000);
	CHECK_ASLEEP(pid);
	zinc_notify(r);
	CHECK_CHILD_OK(pid);
	zinc_close(r);
}

/*
 * A handle that is not libzinc's (zinc-core counts its handles in the
 * header's ref_count only) makes every notify wake; libzinc's own handles,
 * also one whose process was killed, do not.
 */
static void test_foreign_handle_wakes(void)
{
	zinc_region *r;
	CHECK_OK(zinc_create("peer", tu_page(), &r));
	uint32_t *refs = &tu_hdr(r)->ref_count;
	CHECK_EQ(notify_counted("peer", NULL, 50), 0);
	__atomic_fetch_add(refs, 1, __ATOMIC_SEQ_CST); /* a zinc-core open */
	CHECK_EQ(notify_counted("peer", NULL, 50), 50);
	__atomic_fetch_sub(refs, 1, __ATOMIC_SEQ_CST); /* its close */
	CHECK_EQ(notify_counted("peer", NULL, 50), 0);

	/* A libzinc handle killed with SIGKILL leaves both counts high (so
	 * do the counting children above, which exit without closing). */
	uint32_t before = *refs;
	int ready[2];
	tu_pipe(ready);
	pid_t pid = tu_fork();
	if (pid == 0) {
		zinc_region *h;
		CHECK_OK(zinc_open("peer", &h));
		tu_put(ready[1], 'o');
		pause();
		_exit(0);
	}
	CHECK_GET(ready[0], 'o');
	tu_kill(pid);
	CHECK_EQ(*refs, before + 1);
	CHECK_EQ(notify_counted("peer", NULL, 50), 0);
	close(ready[0]);
	close(ready[1]);
	zinc_close(r);
}

/* zinc_wait_any over 200 handles (helper threads past 128): while it
 * sleeps, a notify of any of its regions issues the wake; once it
 * returned, notifies of all of them are syscall-free again. */
#define ANY_N 200
static zinc_region *any_h[ANY_N];

static void *any_waiter(void *arg)
{
	int32_t ready[ANY_N];
	__atomic_store_n((pid_t *)arg, gettid(), __ATOMIC_SEQ_CST);
	int rc = zinc_wait_any(any_h, ANY_N, ready, NULL, 20000, 0);
	return (void *)(intptr_t)(rc == 1 && ready[150] == 1);
}

static void test_wait_any_fast_path(void)
{
	char name[32];
	for (int i = 0; i < ANY_N; i++) {
		snprintf(name, sizeof(name), "any%d", i);
		CHECK_OK(zinc_create(name, tu_page(), &any_h[i]));
	}
	pid_t tid = 0;
	pthread_t t;
	CHECK_EQ(pthread_create(&t, NULL, any_waiter, (void *)&tid), 0);
	while (!__atomic_load_n(&tid, __ATOMIC_SEQ_CST))
		tu_pause_us(100);
	CHECK_THREAD_ASLEEP(tid);
	CHECK_WAITERS(any_h[0], 1);
	CHECK_WAITERS(any_h[150], 1);
	CHECK_EQ(notify_counted("any150", NULL, 1), 1);
	void *ok;
	CHECK_EQ(pthread_join(t, &ok), 0);
	CHECK(ok == (void *)1);
	CHECK_EQ(notify_counted("any150", NULL, 50), 0);
	CHECK_EQ(notify_counted("any0", NULL, 50), 0);
	CHECK_EQ(notify_counted("any199", NULL, 50), 0);
	for (int i = 0; i < ANY_N; i++) {
		CHECK_EQ(tu_waiters(any_h[i]), 0);
		zinc_close(any_h[i]);
	}
}

int main(void)
{
	tu_init();
	TU_RUN(test_no_syscall_without_waiters);
	TU_RUN(test_wake_only_with_waiter);
	TU_RUN(test_waiter_count_returns_to_zero);
	TU_RUN(test_always_wake);
	TU_RUN(test_foreign_handle_wakes);
	TU_RUN(test_wait_any_fast_path);
	return T_PASS;
}
