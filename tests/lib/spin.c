/* SPDX-License-Identifier: MIT */
/*
 * The opt-in spin (zinc_set_spin / ZINC_SPIN_NS): a waiter notified during
 * its spin returns 0 without ever sleeping or announcing itself (so the
 * notifier made no wake call); the spin is bounded by the timeout; after
 * the spin it sleeps and is woken normally; -EIDRM ends a spin; and a
 * spinning waiter yields to a notifier that shares its CPU.
 * Runs alone: it measures time and burns a CPU.
 */
#include <sched.h>
#include "testutil.h"

#define LONG_SPIN_NS 2000000000u /* 2 s */

/* A child process in zinc_wait, and what that wait returned. */
struct spinner {
	pid_t pid;
	int out[2];
	int32_t rc;
	int64_t ms;
};

/* Child: open NAME (spin from the env or set here), report readiness,
 * zinc_wait(timeout), send rc and elapsed ms through s->out. */
static void spinning_waiter(struct spinner *s, const char *name,
			    uint32_t spin_ns, uint32_t timeout)
{
	tu_pipe(s->out);
	s->pid = tu_fork();
	if (s->pid == 0) {
		zinc_region *h;
		CHECK_OK(zinc_open(name, &h));
		if (spin_ns)
			CHECK_OK(zinc_set_spin(h, spin_ns));
		tu_put(s->out[1], 'r');
		int64_t t0 = tu_now_ns();
		int32_t rc = zinc_wait(h, timeout);
		int64_t el = (tu_now_ns() - t0) / 1000000;
		tu_put_val(s->out[1], &rc, sizeof(rc));
		tu_put_val(s->out[1], &el, sizeof(el));
		zinc_close(h);
		_exit(0);
	}
	CHECK_GET(s->out[0], 'r');
}

/* Collect the child's rc and ms, and check that it exited cleanly. */
static void spinner_result(struct spinner *s)
{
	tu_get_val(s->out[0], &s->rc, sizeof(s->rc));
	tu_get_val(s->out[0], &s->ms, sizeof(s->ms));
	close(s->out[0]);
	close(s->out[1]);
	CHECK_CHILD_OK(s->pid);
}

/* Watch the child for `ms`: it must stay runnable (spinning), never asleep
 * in a futex wait, and never be counted as a waiter. */
static void check_spinning(pid_t pid, zinc_region *r, int ms)
{
	int64_t end = tu_now_ms() + ms;
	while (tu_now_ms() < end) {
		CHECK(!tu_in_futex_wait(pid, pid));
		CHECK_EQ(tu_waiters(r), 0);
		tu_pause_us(1000);
	}
}

static void test_notified_during_spin(void)
{
	zinc_region *r;
	CHECK_OK(zinc_create("spin", tu_page(), &r));
	struct spinner s;
	spinning_waiter(&s, "spin", LONG_SPIN_NS, 20000);
	check_spinning(s.pid, r, 100);
	int64_t t0 = tu_now_ms();
	zinc_notify(r); /* no waiter announced: no futex wake issued */
	spinner_result(&s);
	CHECK_OK(s.rc);
	/* It returned from the spin, long before the spin would end (a
	 * sleeper would not have been woken at all: nobody was counted). */
	CHECK(tu_now_ms() - t0 < 1000);
	CHECK(s.ms < 1500);
	CHECK_EQ(tu_waiters(r), 0);
	zinc_close(r);
}

static void test_spin_from_env(void)
{
	zinc_region *r;
	CHECK_OK(zinc_create("spinenv", tu_page(), &r));
	setenv("ZINC_SPIN_NS", "2000000000", 1);
	struct spinner s;
	spinning_waiter(&s, "spinenv", 0, 20000);
	unsetenv("ZINC_SPIN_NS");
	check_spinning(s.pid, r, 100);
	zinc_notify(r);
	spinner_result(&s);
	CHECK_OK(s.rc);
	CHECK(s.ms < 1500);
	zinc_close(r);
}

static void test_spin_bounded_by_timeout(void)
{
	zinc_region *r;
	CHECK_OK(zinc_create("spintmo", tu_page(), &r));
	CHECK_OK(zinc_set_spin(r, LONG_SPIN_NS));
	int64_t t0 = tu_now_ns();
	CHECK_RC(zinc_wait(r, 50), -ETIMEDOUT);
	int64_t el = tu_now_ns() - t0;
	printf("  50 ms timeout with a 2 s spin: %.3f ms\n", el / 1e6);
	CHECK(el >= 50LL * 1000000);
	CHECK(el < 150LL * 1000000);
	/* timeout 0 never spins */
	t0 = tu_now_ns();
	CHECK_RC(zinc_wait(r, 0), -ETIMEDOUT);
	CHECK(tu_now_ns() - t0 < 10LL * 1000000);
	/* pending: returns at once */
	zinc_notify(r);
	t0 = tu_now_ns();
	CHECK_OK(zinc_wait(r, 1000));
	CHECK(tu_now_ns() - t0 < 10LL * 1000000);
	zinc_close(r);
}

static void test_sleep_after_spin(void)
{
	zinc_region *r;
	CHECK_OK(zinc_create("spinsleep", tu_page(), &r));
	struct spinner s;
	spinning_waiter(&s, "spinsleep", 1000000 /* 1 ms */, 20000);
	CHECK_ASLEEP(s.pid);
	CHECK_EQ(tu_waiters(r), 1);
	zinc_notify(r);
	spinner_result(&s);
	CHECK_OK(s.rc);
	CHECK_EQ(tu_waiters(r), 0);
	zinc_close(r);
}

static void test_spin_idrm(void)
{
	zinc_region *r;
	CHECK_OK(zinc_create("spinidrm", tu_page(), &r));
	struct spinner s;
	spinning_waiter(&s, "spinidrm", LONG_SPIN_NS, 20000);
	check_spinning(s.pid, r, 20);
	CHECK_OK(zinc_unlink("spinidrm"));
	spinner_result(&s);
	CHECK_RC(s.rc, -EIDRM);
	CHECK(s.ms < 1500);
	zinc_close(r);
}

static void test_spin_off_sleeps(void)
{
	zinc_region *r;
	CHECK_OK(zinc_create("nospin", tu_page(), &r));
	CHECK_OK(zinc_set_spin(r, LONG_SPIN_NS));
	CHECK_OK(zinc_set_spin(r, 0)); /* back to the default */
	struct spinner s;
	spinning_waiter(&s, "nospin", 0, 20000);
	/* Default: no spin, it goes to sleep at once. */
	int64_t t0 = tu_now_ms();
	CHECK_ASLEEP(s.pid);
	CHECK(tu_now_ms() - t0 < 1000);
	zinc_notify(r);
	spinner_result(&s);
	CHECK_OK(s.rc);
	zinc_close(r);
}

/* Waiter and notifier on one CPU under SCHED_FIFO at the same priority:
 * the notifier runs only when the waiter gives the CPU up, so a spin that
 * never yields would hold it for the whole 2 s budget.  The spin yields,
 * so the notification arrives at once. */
static void test_same_cpu_spin_yields(void)
{
	zinc_region *r;
	CHECK_OK(zinc_create("onecpu", tu_page(), &r));
	cpu_set_t mine;
	CHECK_SYS(sched_getaffinity(0, sizeof(mine), &mine));
	int cpu = 0;
	while (!CPU_ISSET(cpu, &mine))
		cpu++;
	int ready[2], go[2], start[2], out[2];
	tu_pipe(ready);
	tu_pipe(go);
	tu_pipe(start);
	tu_pipe(out);
	pid_t pids[2];
	for (int role = 0; role < 2; role++) {
		pids[role] = tu_fork();
		if (pids[role])
			continue;
		cpu_set_t one;
		CPU_ZERO(&one);
		CPU_SET(cpu, &one);
		CHECK_SYS(sched_setaffinity(0, sizeof(one), &one));
		struct sched_param sp = { .sched_priority = 1 };
		CHECK_SYS(sched_setscheduler(0, SCHED_FIFO, &sp));
		zinc_region *h;
		CHECK_OK(zinc_open("onecpu", &h));
		zinc_try_wait(h);
		if (role == 0) { /* notifier: runs only if the waiter yields */
			tu_put(ready[1], 'n');
			CHECK_GET(go[0], 'g');
			zinc_notify(h);
		} else { /* waiter: from 'ready' to its wait without blocking */
			CHECK_OK(zinc_set_spin(h, LONG_SPIN_NS));
			CHECK_GET(start[0], 's');
			tu_put(ready[1], 'w');
			int64_t t0 = tu_now_ms();
			CHECK_OK(zinc_wait(h, 20000));
			int64_t ms = tu_now_ms() - t0;
			tu_put_val(out[1], &ms, sizeof(ms));
		}
		zinc_close(h);
		_exit(0);
	}
	/* The notifier is real-time on that CPU before the waiter starts to
	 * spin: a spinner yields only to tasks of its own class. */
	CHECK_GET(ready[0], 'n');
	tu_put(start[1], 's');
	CHECK_GET(ready[0], 'w');
	tu_put(go[1], 'g');
	int64_t ms = -1;
	tu_get_val(out[0], &ms, sizeof(ms));
	printf("  same-CPU spinning waiter woken after %lld ms\n", (long long)ms);
	CHECK(ms >= 0 && ms < 500); /* not the 2 s spin budget */
	CHECK_CHILD_OK(pids[0]);
	CHECK_CHILD_OK(pids[1]);
	int fds[] = { ready[0], ready[1], go[0], go[1], start[0], start[1],
		      out[0], out[1] };
	for (unsigned i = 0; i < 8; i++)
		close(fds[i]);
	zinc_close(r);
}

int main(void)
{
	tu_init();
	TU_RUN(test_same_cpu_spin_yields);
	TU_RUN(test_spin_off_sleeps);
	TU_RUN(test_sleep_after_spin);
	cpu_set_t cpus;
	CHECK_SYS(sched_getaffinity(0, sizeof(cpus), &cpus));
	if (CPU_COUNT(&cpus) < 2) {
		printf("only one CPU: the multi-CPU spin tests need two\n");
		return T_PASS;
	}
	TU_RUN(test_notified_during_spin);
	TU_RUN(test_spin_from_env);
	TU_RUN(test_spin_bounded_by_timeout);
	TU_RUN(test_spin_idrm);
	return T_PASS;
}
