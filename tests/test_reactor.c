/* The loop itself: ITimer, SetExec, SetExecLocked, shutdown handlers and IIoMux_Create
 * without io_uring. Timing assertions use CLOCK_MONOTONIC, the clock the API promises
 * ("no earlier than T ms after ITimer_Start"). */
#include "harness.h"

#include <errno.h>
#include <liburing.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "reactor.h" /* struct IIoMux: shutdown_grace_ms */
#include "seccomp/block_io_uring.h"

#if defined(__SANITIZE_ADDRESS__)
#define TEST_LSAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TEST_LSAN 1
#endif
#endif
#ifdef TEST_LSAN
#include <sanitizer/lsan_interface.h>
#endif

#define MS 1000000ull

static struct h_env env;
static pthread_t loop_thread;

static const char *backend_with(const char *forced, IIoMux **out)
{
    if (forced)
        setenv("RINGSOCK_BACKEND", forced, 1);
    else
        unsetenv("RINGSOCK_BACKEND");
    *out = IIoMux_Create();
    return *out ? IIoMux_GetBackend(*out) : NULL;
}

/* IIoMux_GetBackend names the backend: io_uring where it can be set up, else epoll;
 * RINGSOCK_BACKEND forces either, and a name that is no backend gives NULL. */
Test(reactor, backend_is_named_and_can_be_forced)
{
    const char *was = getenv("RINGSOCK_BACKEND"); /* the suite's epoll pass sets it */
    char *saved = was ? strdup(was) : NULL;
    struct io_uring ring;
    bool uring_ok = io_uring_queue_init(4, &ring, 0) == 0;
    if (uring_ok)
        io_uring_queue_exit(&ring);
    IIoMux *m;
    cr_assert_str_eq(backend_with(NULL, &m), uring_ok ? "io_uring" : "epoll");
    IIoMux_Delete(m);
    if (uring_ok) {
        cr_assert_str_eq(backend_with("io_uring", &m), "io_uring");
        IIoMux_Delete(m);
    }
    cr_assert_str_eq(backend_with("epoll", &m), "epoll");
    IIoMux_Delete(m);
    cr_assert_null(backend_with("kqueue", &m));
    if (saved)
        setenv("RINGSOCK_BACKEND", saved, 1);
    else
        unsetenv("RINGSOCK_BACKEND");
    free(saved);
}

/* The diagnostic settings come from the environment once, when the loop is made; a value
 * that is not one is said on stderr and leaves the default. */
Test(reactor, settings_are_read_when_the_loop_is_made)
{
    setenv("RINGSOCK_TCP_SINGLE_SHOT", "1", 1);
    setenv("RINGSOCK_TLS_HANDSHAKE_TIMEOUT_MS", "250", 1);
    setenv("RINGSOCK_DTLS_HANDSHAKE_TIMEOUT_MS", "12ms", 1);
    setenv("RINGSOCK_UDP_SINGLE_SHOT", "yes", 1); /* a switch is 0 or 1 */
    setenv("RINGSOCK_SPIN_US", "-5", 1);
    int saved = dup(2);
    FILE *err = tmpfile();
    cr_assert_not_null(err);
    dup2(fileno(err), 2);
    IIoMux *m = IIoMux_Create();
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    unsetenv("RINGSOCK_TCP_SINGLE_SHOT");
    unsetenv("RINGSOCK_TLS_HANDSHAKE_TIMEOUT_MS");
    unsetenv("RINGSOCK_DTLS_HANDSHAKE_TIMEOUT_MS");
    unsetenv("RINGSOCK_UDP_SINGLE_SHOT");
    unsetenv("RINGSOCK_SPIN_US");
    cr_assert_not_null(m);
    cr_assert_eq(m->settings.spin_us, -1, "the default (measured) stays");
    cr_assert(m->settings.tcp_single_shot);
    cr_assert(!m->settings.udp_single_shot);
    cr_assert_eq(m->settings.tls_handshake_timeout_ms, 250);
    cr_assert_eq(m->settings.dtls_handshake_timeout_ms, 0, "the default stays");
    char text[512] = {0};
    rewind(err);
    cr_assert_gt(fread(text, 1, sizeof(text) - 1, err), 0);
    fclose(err);
    cr_assert(strstr(text, "RINGSOCK_DTLS_HANDSHAKE_TIMEOUT_MS=12ms is not a number of "
                           "milliseconds"),
              "%s", text);
    cr_assert(strstr(text, "RINGSOCK_UDP_SINGLE_SHOT=yes is not 0 or 1: ignored"), "%s", text);
    cr_assert(strstr(text, "RINGSOCK_SPIN_US=-5 is not a number of microseconds (0 to 1000000): "
                           "ignored"),
              "%s", text);
    setenv("RINGSOCK_SPIN_US", "250", 1);
    IIoMux *later = IIoMux_Create(); /* the environment of its own moment */
    unsetenv("RINGSOCK_SPIN_US");
    cr_assert(!later->settings.tcp_single_shot);
    cr_assert_eq(later->settings.spin_us, 250);
    cr_assert_eq(later->spin.cap_ns, 250000, "a fixed cap");
    cr_assert(m->settings.tcp_single_shot, "what a loop read stays");
    IIoMux_Delete(later);
    IIoMux_Delete(m);
}

static void reset_globals(void);

static void setup(void)
{
    reset_globals(); /* in case Criterion runs tests without forking */
    h_env_init(&env);
    loop_thread = pthread_self();
}

static void teardown(void)
{
    h_env_fini(&env);
}

TestSuite(reactor, .init = setup, .fini = teardown, .timeout = 30);

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t thread_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* Runs the loop with only the harness watchdog armed (no 2 ms poll timer), so the loop
 * really blocks when nothing is due. True unless the watchdog had to stop it. */
static bool run_guarded(unsigned ms)
{
    env.timed_out = false;
    ITimer_Start(env.watchdog, ms);
    IIoMux_Run(env.mux);
    ITimer_Cancel(env.watchdog);
    return !env.timed_out;
}

static void assert_loop_context(const char *cb)
{
    cr_assert_eq(h_in_api, 0, "%s ran inside an API call", cb);
    cr_assert(pthread_equal(pthread_self(), loop_thread), "%s ran off the loop thread", cb);
}

/* ---- timers ---------------------------------------------------------------------------- */

struct ttimer {
    UTimer user;
    ITimer *timer;
    int id;
    unsigned fired;
    uint64_t start_ns; /* CLOCK_MONOTONIC read just before the last ITimer_Start */
    uint64_t fire_ns[8];
    bool running_in_cb;
    void (*hook)(struct ttimer *tt);
    void *arg;
};

static int fire_log[64];
static size_t nfire_log;

static void tt_fired(UTimer *u, ITimer *t)
{
    struct ttimer *tt = h_container_of(u, struct ttimer, user);
    assert_loop_context("TimerOnTimeout");
    cr_assert_eq(t, tt->timer, "TimerOnTimeout got another timer");
    tt->running_in_cb = ITimer_IsRunning(t);
    if (tt->fired < 8)
        tt->fire_ns[tt->fired] = now_ns();
    tt->fired++;
    if (nfire_log < 64)
        fire_log[nfire_log++] = tt->id;
    if (tt->hook)
        tt->hook(tt);
}

static const struct UTimerVtbl tt_vtbl = {tt_fired};

static void tt_init(struct ttimer *tt, int id)
{
    memset(tt, 0, sizeof(*tt));
    tt->user.vtbl = &tt_vtbl;
    tt->id = id;
    CALL(tt->timer = ITimer_Create(env.mux, &tt->user));
    cr_assert_not_null(tt->timer);
}

static void tt_start(struct ttimer *tt, unsigned ms)
{
    tt->start_ns = now_ns();
    CALL(ITimer_Start(tt->timer, ms));
}

static void tt_fini(struct ttimer *tt)
{
    if (tt->timer)
        CALL(ITimer_Delete(tt->timer));
    tt->timer = NULL;
}

struct fired_arg {
    struct ttimer *v;
    size_t n;
};

static bool all_fired(struct h_env *e, void *arg)
{
    (void)e;
    struct fired_arg *a = arg;
    for (size_t i = 0; i < a->n; i++)
        if (!a->v[i].fired)
            return false;
    return true;
}

/* Six timers of 0 to 60 ms on the env loop: each fires once, not early, not late. */
static void timers_fire_once_on_time(void)
{
    static const unsigned ms[] = {0, 1, 3, 10, 25, 60};
    struct ttimer t[6];
    for (int i = 0; i < 6; i++) {
        tt_init(&t[i], i);
        cr_assert_not(ITimer_IsRunning(t[i].timer), "running before Start");
        tt_start(&t[i], ms[i]);
        cr_assert(ITimer_IsRunning(t[i].timer), "not running after Start");
    }
    cr_assert_eq(nfire_log, 0, "a timer fired inside ITimer_Start");
    h_run_for(&env, 250);
    for (int i = 0; i < 6; i++) {
        uint64_t waited = t[i].fire_ns[0] - t[i].start_ns;
        cr_assert_eq(t[i].fired, 1, "timer %u ms fired %u times", ms[i], t[i].fired);
        cr_assert_geq(waited, ms[i] * MS, "timer %u ms fired after %.3f ms", ms[i], waited / 1e6);
        /* Not early, and not lost in an oversleep either. */
        cr_assert_lt(waited, (ms[i] + 150) * MS, "timer %u ms fired after %.3f ms", ms[i],
                     waited / 1e6);
        cr_assert_not(t[i].running_in_cb, "IsRunning true inside its own TimerOnTimeout");
        cr_assert_not(ITimer_IsRunning(t[i].timer), "IsRunning true after firing");
        tt_fini(&t[i]);
    }
}

Test(reactor, timer_fires_once_no_earlier_than_timeout)
{
    timers_fire_once_on_time();
}

Test(reactor, timers_fire_in_deadline_order)
{
    static const unsigned ms[] = {50, 10, 40, 0, 20, 30, 5};
    static const int want[] = {3, 6, 1, 4, 5, 2, 0};
    struct ttimer t[7];
    for (int i = 0; i < 7; i++)
        tt_init(&t[i], i);
    for (int i = 0; i < 7; i++)
        tt_start(&t[i], ms[i]);
    struct fired_arg a = {t, 7};
    cr_assert(h_run_until(&env, all_fired, &a, 1000));
    cr_assert_eq(nfire_log, 7);
    for (int i = 0; i < 7; i++)
        cr_assert_eq(fire_log[i], want[i], "firing %d was timer %d, want %d", i, fire_log[i],
                     want[i]);
    for (int i = 0; i < 7; i++)
        tt_fini(&t[i]);
}

Test(reactor, equal_timeouts_fire_in_start_order)
{
    struct ttimer t[8];
    for (int i = 0; i < 8; i++)
        tt_init(&t[i], i);
    /* Start 0..7, then restart 2 and 0: a restart counts as a new start. */
    for (int i = 0; i < 8; i++)
        tt_start(&t[i], 15);
    tt_start(&t[2], 15);
    tt_start(&t[0], 15);
    /* Let them all expire before the loop looks, so one round sees all of them. */
    sleep_ms(30);
    struct fired_arg a = {t, 8};
    cr_assert(h_run_until(&env, all_fired, &a, 1000));
    static const int want[] = {1, 3, 4, 5, 6, 7, 2, 0};
    cr_assert_eq(nfire_log, 8);
    for (int i = 0; i < 8; i++)
        cr_assert_eq(fire_log[i], want[i], "firing %d was timer %d, want %d", i, fire_log[i],
                     want[i]);
    for (int i = 0; i < 8; i++)
        tt_fini(&t[i]);
}

static void restart_other(struct ttimer *tt)
{
    struct ttimer *victim = tt->arg;
    tt_start(victim, 60);
}

Test(reactor, start_restarts_a_running_timer)
{
    struct ttimer a, b, helper;
    tt_init(&a, 0);
    tt_init(&b, 1);
    tt_init(&helper, 2);
    /* a: restarted straight away; the 20 ms deadline must be forgotten. */
    tt_start(&a, 20);
    tt_start(&a, 120);
    /* b: restarted at ~15 ms from another timer's callback, to 60 ms from then. */
    tt_start(&b, 30);
    helper.hook = restart_other;
    helper.arg = &b;
    tt_start(&helper, 15);
    h_run_for(&env, 220);
    cr_assert_eq(a.fired, 1, "restarted timer fired %u times", a.fired);
    cr_assert_geq(a.fire_ns[0] - a.start_ns, 120 * MS, "fired %.3f ms after the restart",
                  (a.fire_ns[0] - a.start_ns) / 1e6);
    cr_assert_eq(helper.fired, 1);
    cr_assert_eq(b.fired, 1, "timer restarted from a callback fired %u times", b.fired);
    cr_assert_geq(b.fire_ns[0] - b.start_ns, 60 * MS, "fired %.3f ms after the restart",
                  (b.fire_ns[0] - b.start_ns) / 1e6);
    tt_fini(&a);
    tt_fini(&b);
    tt_fini(&helper);
}

Test(reactor, cancel_prevents_firing)
{
    struct ttimer a, never;
    tt_init(&a, 0);
    tt_init(&never, 1);
    CALL(ITimer_Cancel(never.timer)); /* never started: a no-op */
    tt_start(&a, 10);
    CALL(ITimer_Cancel(a.timer));
    cr_assert_not(ITimer_IsRunning(a.timer), "IsRunning true after Cancel");
    CALL(ITimer_Cancel(a.timer)); /* twice: still a no-op */
    h_run_for(&env, 50);
    cr_assert_eq(a.fired, 0, "canceled timer fired");
    cr_assert_eq(never.fired, 0);
    /* A canceled timer can be started again. */
    tt_start(&a, 5);
    struct fired_arg fa = {&a, 1};
    cr_assert(h_run_until(&env, all_fired, &fa, 1000), "restart after Cancel never fired");
    cr_assert_eq(a.fired, 1);
    tt_fini(&a);
    tt_fini(&never);
}

static void cancel_and_delete_others(struct ttimer *tt)
{
    struct ttimer *others = tt->arg;
    CALL(ITimer_Cancel(others[0].timer));
    cr_assert_not(ITimer_IsRunning(others[0].timer), "IsRunning true after Cancel");
    CALL(ITimer_Delete(others[1].timer));
    others[1].timer = NULL;
}

Test(reactor, cancel_from_callback_in_same_round)
{
    struct ttimer first, others[2], last;
    tt_init(&first, 0);
    tt_init(&others[0], 1);
    tt_init(&others[1], 2);
    tt_init(&last, 3);
    first.hook = cancel_and_delete_others;
    first.arg = others;
    tt_start(&first, 5);
    tt_start(&others[0], 5);
    tt_start(&others[1], 5);
    tt_start(&last, 5);
    /* All four are due when the loop first looks: one round handles them together. */
    sleep_ms(20);
    h_run_for(&env, 50);
    cr_assert_eq(first.fired, 1);
    cr_assert_eq(others[0].fired, 0, "timer canceled by an earlier callback in its round fired");
    cr_assert_eq(others[1].fired, 0, "timer deleted by an earlier callback in its round fired");
    cr_assert_eq(last.fired, 1, "the rest of the round was lost");
    tt_fini(&first);
    tt_fini(&others[0]);
    tt_fini(&last);
}

static void restart_self(struct ttimer *tt)
{
    if (tt->fired < 3) {
        tt_start(tt, 10);
        cr_assert(ITimer_IsRunning(tt->timer), "not running after a restart in its callback");
    }
}

Test(reactor, timer_restarting_itself_fires_again)
{
    struct ttimer a;
    tt_init(&a, 0);
    a.hook = restart_self;
    tt_start(&a, 10);
    uint64_t t0 = a.start_ns;
    h_run_for(&env, 150);
    cr_assert_eq(a.fired, 3, "self-restarting timer fired %u times, want 3", a.fired);
    cr_assert_geq(a.fire_ns[0] - t0, 10 * MS);
    cr_assert_geq(a.fire_ns[1] - a.fire_ns[0], 10 * MS, "second run came early");
    cr_assert_geq(a.fire_ns[2] - a.fire_ns[1], 10 * MS, "third run came early");
    cr_assert_not(ITimer_IsRunning(a.timer));
    tt_fini(&a);
}

static void delete_self(struct ttimer *tt)
{
    CALL(ITimer_Delete(tt->timer));
    tt->timer = NULL;
}

Test(reactor, delete_inside_own_callback)
{
    struct ttimer a, b, c;
    tt_init(&a, 0);
    tt_init(&b, 1);
    tt_init(&c, 2);
    a.hook = delete_self;
    b.hook = delete_self;
    tt_start(&a, 5);
    tt_start(&b, 5);
    tt_start(&c, 5);
    sleep_ms(15); /* same round: the loop goes on with the heap after a delete */
    h_run_for(&env, 40);
    cr_assert_eq(a.fired, 1);
    cr_assert_eq(b.fired, 1);
    cr_assert_eq(c.fired, 1);
    cr_assert_null(a.timer);
    tt_fini(&c);
}

/* 20000 timers with random timeouts. Each records its position in the firing order;
 * the test brackets every ITimer_Start with two clock reads, so "fired in deadline
 * order" can be checked without knowing the engine's own clock read. */
#define NMANY 20000
struct many {
    UTimer user;
    ITimer *timer;
    unsigned ms;
    uint64_t lo, hi, fired_at;
    unsigned fired;
};
static struct many *many_v;
static size_t *many_order;
static size_t many_n;

static void many_fired(UTimer *u, ITimer *t)
{
    (void)t;
    struct many *m = h_container_of(u, struct many, user);
    if (m->fired++ == 0)
        m->fired_at = now_ns();
    if (many_n < NMANY)
        many_order[many_n] = (size_t)(m - many_v);
    many_n++;
    if (many_n == NMANY)
        IIoMux_Terminate(env.mux);
}

static const struct UTimerVtbl many_vtbl = {many_fired};

Test(reactor, many_random_timers_fire_once_in_deadline_order)
{
    many_v = calloc(NMANY, sizeof(*many_v));
    many_order = calloc(NMANY, sizeof(*many_order));
    cr_assert(many_v && many_order);
    uint32_t seed = 12345;
    for (size_t i = 0; i < NMANY; i++) {
        struct many *m = &many_v[i];
        m->user.vtbl = &many_vtbl;
        m->ms = h_rand(&seed) % 201;
        m->timer = ITimer_Create(env.mux, &m->user);
    }
    for (size_t i = 0; i < NMANY; i++) {
        struct many *m = &many_v[i];
        m->lo = now_ns();
        ITimer_Start(m->timer, m->ms);
        m->hi = now_ns();
    }
    cr_assert(run_guarded(3000), "only %zu of %d timers fired", many_n, NMANY);
    h_run_for(&env, 20); /* give duplicates a chance to show */
    cr_assert_eq(many_n, NMANY, "%zu firings for %d timers", many_n, NMANY);
    for (size_t i = 0; i < NMANY; i++) {
        struct many *m = &many_v[i];
        cr_assert_eq(m->fired, 1, "timer %zu fired %u times", i, m->fired);
        cr_assert_geq(m->fired_at, m->lo + m->ms * MS, "timer %zu (%u ms) fired early", i, m->ms);
    }
    for (size_t k = 1; k < NMANY; k++) {
        struct many *p = &many_v[many_order[k - 1]], *q = &many_v[many_order[k]];
        /* p's deadline is in [lo+ms, hi+ms]; q must not have an earlier one. */
        cr_assert_leq(p->lo + p->ms * MS, q->hi + q->ms * MS,
                      "firing %zu: timer %zu (%u ms) after timer %zu (%u ms)", k, many_order[k],
                      q->ms, many_order[k - 1], p->ms);
    }
    for (size_t i = 0; i < NMANY; i++)
        ITimer_Delete(many_v[i].timer);
    free(many_v);
    free(many_order);
}

/* ---- SetExec ------------------------------------------------------------------------- */

struct texec {
    UIoExec user;
    int id;
    unsigned runs;
    void (*hook)(struct texec *te, void *ctx);
    void *arg;
};

struct exlog {
    int id;
    intptr_t ctx;
};
static struct exlog ex_log[256];
static size_t nex_log;
static int exec_depth;

static void te_run(UIoExec *u, void *ctx)
{
    struct texec *te = h_container_of(u, struct texec, user);
    assert_loop_context("IoExec");
    cr_assert_eq(exec_depth, 0, "IoExec ran nested inside another IoExec");
    exec_depth++;
    te->runs++;
    if (nex_log < 256)
        ex_log[nex_log] = (struct exlog){te->id, (intptr_t)ctx};
    nex_log++;
    if (te->hook)
        te->hook(te, ctx);
    exec_depth--;
}

static const struct UIoExecVtbl te_vtbl = {te_run};

static void te_init(struct texec *te, int id)
{
    memset(te, 0, sizeof(*te));
    te->user.vtbl = &te_vtbl;
    te->id = id;
}

static void set_exec(struct texec *te, intptr_t ctx)
{
    CALL(IIoMux_SetExec(env.mux, &te->user, (void *)ctx));
}

static bool log_has(struct h_env *e, void *arg)
{
    (void)e;
    return nex_log >= (size_t)(uintptr_t)arg;
}

static void run_until_logged(size_t n)
{
    cr_assert(h_run_until(&env, log_has, (void *)(uintptr_t)n, 1000), "%zu of %zu execs ran",
              nex_log, n);
    h_run_for(&env, 10); /* and no more than that */
}

static void assert_log(const struct exlog *want, size_t n)
{
    cr_assert_eq(nex_log, n, "%zu execs ran, want %zu", nex_log, n);
    for (size_t i = 0; i < n; i++)
        cr_assert(ex_log[i].id == want[i].id && ex_log[i].ctx == want[i].ctx,
                  "run %zu: exec %d ctx %ld, want exec %d ctx %ld", i, ex_log[i].id,
                  (long)ex_log[i].ctx, want[i].id, (long)want[i].ctx);
}

Test(reactor, setexec_runs_each_call_once_in_order)
{
    struct texec a, b, c;
    te_init(&a, 0);
    te_init(&b, 1);
    te_init(&c, 2);
    set_exec(&a, 1);
    set_exec(&b, 2);
    set_exec(&a, 3);
    set_exec(&c, 4);
    set_exec(&a, 5);
    cr_assert_eq(nex_log, 0, "IoExec ran inside SetExec");
    run_until_logged(5);
    static const struct exlog want[] = {{0, 1}, {1, 2}, {0, 3}, {2, 4}, {0, 5}};
    assert_log(want, 5);
}

Test(reactor, same_exec_queued_three_times_runs_three_times)
{
    struct texec a;
    te_init(&a, 7);
    set_exec(&a, 10);
    set_exec(&a, 20);
    set_exec(&a, 30);
    run_until_logged(3);
    static const struct exlog want[] = {{7, 10}, {7, 20}, {7, 30}};
    assert_log(want, 3);
    cr_assert_eq(a.runs, 3);
}

Test(reactor, cancel_setexec_drops_only_that_exec)
{
    struct texec a, b, c;
    te_init(&a, 0);
    te_init(&b, 1);
    te_init(&c, 2);
    CALL(IIoMux_CancelSetExec(env.mux, &c.user)); /* nothing pending: harmless */
    set_exec(&a, 1);
    set_exec(&b, 2);
    set_exec(&a, 3);
    set_exec(&c, 4);
    set_exec(&a, 5);
    CALL(IIoMux_CancelSetExec(env.mux, &a.user));
    set_exec(&a, 6); /* queued after the cancel: runs */
    run_until_logged(3);
    static const struct exlog want[] = {{1, 2}, {2, 4}, {0, 6}};
    assert_log(want, 3);
}

static void cancel_other(struct texec *te, void *ctx)
{
    (void)ctx;
    struct texec *victim = te->arg;
    CALL(IIoMux_CancelSetExec(env.mux, &victim->user));
}

Test(reactor, cancel_setexec_from_exec_in_same_round)
{
    struct texec killer, victim, other;
    te_init(&killer, 0);
    te_init(&victim, 1);
    te_init(&other, 2);
    killer.hook = cancel_other;
    killer.arg = &victim;
    set_exec(&killer, 1);
    set_exec(&victim, 2);
    set_exec(&other, 3);
    set_exec(&victim, 4);
    run_until_logged(2);
    static const struct exlog want[] = {{0, 1}, {2, 3}};
    assert_log(want, 2);
    cr_assert_eq(victim.runs, 0, "canceled exec ran");
}

static void queue_next(struct texec *te, void *ctx)
{
    struct texec *next = te->arg;
    if (ctx == (void *)1) {
        set_exec(next, 100);
        set_exec(te, 2); /* itself, too */
        /* Neither may run inside this IoExec (te_run checks the nesting). */
        cr_assert_eq(next->runs, 0, "exec queued from IoExec ran inside it");
    }
}

Test(reactor, exec_queued_from_inside_exec)
{
    struct texec a, b;
    te_init(&a, 0);
    te_init(&b, 1);
    a.hook = queue_next;
    a.arg = &b;
    set_exec(&a, 1);
    run_until_logged(3);
    static const struct exlog want[] = {{0, 1}, {1, 100}, {0, 2}};
    assert_log(want, 3);
}

static struct ttimer term_timer;

static void terminate_and_queue(struct texec *te, void *ctx)
{
    (void)ctx;
    struct texec *a = te->arg;
    IIoMux_Terminate(env.mux);
    set_exec(a, 3);
    tt_start(&term_timer, 0);
}

Test(reactor, pending_callbacks_run_on_next_run)
{
    struct texec a, t;
    te_init(&a, 0);
    te_init(&t, 1);
    tt_init(&term_timer, 9);
    t.hook = terminate_and_queue;
    t.arg = &a;
    set_exec(&a, 1);
    set_exec(&t, 2);
    set_exec(&a, 4);
    cr_assert(run_guarded(2000), "Terminate from IoExec did not end Run");
    size_t first = nex_log;
    /* Terminate ends the loop at the end of this round at the latest: what the
     * terminating exec queued is still pending when Run returns. */
    cr_assert_geq(first, 2);
    cr_assert_lt(first, 4, "exec queued after Terminate ran in the terminated Run");
    cr_assert_eq(term_timer.fired, 0, "0 ms timer started after Terminate fired in that Run");
    run_until_logged(4);
    static const struct exlog want[] = {{0, 1}, {1, 2}, {0, 4}, {0, 3}};
    assert_log(want, 4);
    cr_assert_eq(term_timer.fired, 1, "timer pending at Run's return fired %u times",
                 term_timer.fired);
    tt_fini(&term_timer);
}

static void requeue_forever(struct texec *te, void *ctx)
{
    (void)ctx;
    set_exec(te, 0);
    if (te->runs == 5)
        IIoMux_Terminate(env.mux);
}

Test(reactor, terminate_ends_run_despite_self_requeueing_exec)
{
    struct texec r;
    te_init(&r, 0);
    r.hook = requeue_forever;
    set_exec(&r, 0);
    cr_assert(run_guarded(2000), "Run did not return after Terminate");
    cr_assert_eq(r.runs, 5, "exec ran %u times before Run returned", r.runs);
    /* Still queued: it goes on in the next Run. */
    cr_assert(h_run_until(&env, log_has, (void *)8, 1000));
    CALL(IIoMux_CancelSetExec(env.mux, &r.user));
    unsigned runs = r.runs;
    h_run_for(&env, 10);
    cr_assert_eq(r.runs, runs, "exec ran after CancelSetExec");
}

static atomic_int locked_done;

static void *post_locked_3(void *arg)
{
    struct texec *te = arg;
    IIoMux *m = te->arg;
    for (intptr_t i = 0; i < 3; i++)
        IIoMux_SetExecLocked(m, &te->user, (void *)i);
    atomic_store(&locked_done, 1);
    return NULL;
}

Test(reactor, delete_drops_pending_execs_and_timers)
{
    IIoMux *m = IIoMux_Create();
    cr_assert_not_null(m);
    struct texec a;
    te_init(&a, 0);
    a.arg = m;
    for (intptr_t i = 0; i < 100; i++) /* enough to grow the queue */
        CALL(IIoMux_SetExec(m, &a.user, (void *)i));
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, post_locked_3, &a), 0);
    pthread_join(th, NULL);
    cr_assert(atomic_load(&locked_done));
    struct ttimer t;
    memset(&t, 0, sizeof(t));
    t.user.vtbl = &tt_vtbl;
    t.timer = ITimer_Create(m, &t.user);
    ITimer_Start(t.timer, 0);
    CALL(IIoMux_Delete(m));
    cr_assert_eq(a.runs, 0, "IIoMux_Delete ran a pending exec");
    /* The timer is the application's: deleting it after its mux must be safe. */
    CALL(ITimer_Delete(t.timer));
    cr_assert_eq(t.fired, 0);
#ifdef TEST_LSAN
    /* Criterion ignores LeakSanitizer's report at exit: ask for it here. */
    cr_assert_eq(__lsan_do_recoverable_leak_check(), 0, "leak after IIoMux_Delete (see above)");
#endif
}

/* ---- SetExecLocked ------------------------------------------------------------------- */

struct wake {
    struct texec te;
    pthread_t poster;
    uint64_t posted_ns[2], ran_ns[2];
    pthread_t ran_on[2];
    atomic_int posted;
};

static void *post_twice(void *arg)
{
    struct wake *w = arg;
    for (int i = 0; i < 2; i++) {
        sleep_ms(80); /* the loop is blocked in io_uring_enter by now */
        w->posted_ns[i] = now_ns();
        IIoMux_SetExecLocked(env.mux, &w->te.user, (void *)(intptr_t)i);
        atomic_fetch_add(&w->posted, 1);
    }
    return NULL;
}

static void wake_ran(struct texec *te, void *ctx)
{
    struct wake *w = h_container_of(te, struct wake, te);
    intptr_t i = (intptr_t)ctx;
    cr_assert(i == 0 || i == 1);
    w->ran_ns[i] = now_ns();
    w->ran_on[i] = pthread_self();
    if (i == 1)
        IIoMux_Terminate(env.mux);
}

Test(reactor, setexeclocked_wakes_a_blocked_loop)
{
    static struct wake w;
    te_init(&w.te, 0);
    w.te.hook = wake_ran;
    cr_assert_eq(pthread_create(&w.poster, NULL, post_twice, &w), 0);
    uint64_t t0 = now_ns(), cpu0 = thread_cpu_ns();
    /* Nothing is due for 3 s: only the eventfd can wake the loop. */
    bool ok = run_guarded(3000);
    uint64_t t1 = now_ns(), cpu = thread_cpu_ns() - cpu0;
    pthread_join(w.poster, NULL);
    cr_assert(ok, "loop slept through SetExecLocked (%u execs ran)", w.te.runs);
    cr_assert_eq(w.te.runs, 2);
    cr_assert_lt(t1 - t0, 1000 * MS, "Run took %.1f ms", (t1 - t0) / 1e6);
    for (int i = 0; i < 2; i++) {
        uint64_t lag = w.ran_ns[i] - w.posted_ns[i];
        cr_assert_lt(lag, 200 * MS, "exec %d ran %.1f ms after SetExecLocked", i, lag / 1e6);
        cr_assert(pthread_equal(w.ran_on[i], loop_thread), "exec %d ran off the loop", i);
    }
    /* Waiting means sleeping in the kernel, not spinning. */
    cr_assert_lt(cpu, (t1 - t0) / 2, "loop used %.1f ms CPU in %.1f ms", cpu / 1e6,
                 (t1 - t0) / 1e6);
}

/* ---- waiting: spin, then sleep ----------------------------------------------------- */

Test(reactor, spin_grows_while_idle_times_are_short_and_stops_when_they_are_long)
{
    struct rs_spin s = {.cap_ns = 20000};
    static const uint64_t grow[] = {2000, 4000, 8000, 16000, 20000, 20000};
    for (size_t i = 0; i < sizeof(grow) / sizeof(grow[0]); i++) {
        rs_spin_adapt(&s, 5000);
        cr_assert_eq(s.ns, grow[i], "step %zu: %llu ns", i, (unsigned long long)s.ns);
    }
    rs_spin_adapt(&s, 20000); /* as long as the cap: still worth it */
    cr_assert_eq(s.ns, 20000);
    static const uint64_t shrink[] = {10000, 5000, 2500, 0, 0};
    for (size_t i = 0; i < sizeof(shrink) / sizeof(shrink[0]); i++) {
        rs_spin_adapt(&s, 50000);
        cr_assert_eq(s.ns, shrink[i], "step %zu: %llu ns", i, (unsigned long long)s.ns);
    }
    struct rs_spin off = {.cap_ns = 0}; /* RINGSOCK_SPIN_US=0, or no sleep measured yet */
    rs_spin_adapt(&off, 0);
    rs_spin_adapt(&off, 100);
    cr_assert_eq(off.ns, 0);
}

static void sleep_twenty_times(struct ttimer *tt)
{
    if (tt->fired < 20)
        tt_start(tt, 1);
    else
        IIoMux_Terminate(env.mux);
}

Test(reactor, a_sleep_is_measured_and_caps_the_spin)
{
    struct ttimer t;
    tt_init(&t, 0);
    t.hook = sleep_twenty_times;
    tt_start(&t, 1);
    cr_assert(run_guarded(5000), "20 timers of 1 ms took 5 s");
    cr_assert_eq(t.fired, 20);
    const struct rs_spin *s = &env.mux->spin;
    cr_assert_geq(s->sleeps, 20, "the loop slept %u times", s->sleeps);
    cr_assert_gt(s->sleep_cost, 0, "no sleep was timed");
    cr_assert_eq(s->cap_ns, s->sleep_cost / 2 < 200000 ? s->sleep_cost / 2 : 200000);
    cr_assert_leq(s->ns, s->cap_ns);
    tt_fini(&t);
}

static void remake_loop_with(const char *name, const char *value)
{
    h_env_fini(&env);
    setenv(name, value, 1);
    h_env_init(&env);
    unsetenv(name);
}

/* With a cap of a second the loop spins whenever it waits: timers still fire on time, and
 * SetExecLocked from another thread still reaches it. */
Test(reactor, a_spinning_loop_keeps_its_timers_and_wakeups)
{
    remake_loop_with("RINGSOCK_SPIN_US", "1000000");
    cr_assert_eq(env.mux->settings.spin_us, 1000000);
    timers_fire_once_on_time();
    cr_assert_gt(env.mux->spin.ns, 0, "the loop did not spin");

    static struct wake w;
    te_init(&w.te, 0);
    w.te.hook = wake_ran;
    cr_assert_eq(pthread_create(&w.poster, NULL, post_twice, &w), 0);
    bool ok = run_guarded(3000);
    pthread_join(w.poster, NULL);
    cr_assert(ok, "SetExecLocked did not reach a spinning loop (%u execs ran)", w.te.runs);
    cr_assert_eq(w.te.runs, 2);
    for (int i = 0; i < 2; i++)
        cr_assert_lt(w.ran_ns[i] - w.posted_ns[i], 200 * MS, "exec %d ran %.1f ms late", i,
                     (w.ran_ns[i] - w.posted_ns[i]) / 1e6);
}

/* A loop created on one thread and run on another (created in main, run in a worker):
 * the thread that runs it is the loop thread. */
static struct {
    IIoMux *mux;
    ITimer *guard;
    UTimer guard_user;
    struct texec te;
    pthread_t runner;
    bool timed_out;
    uint64_t posted_ns, ran_ns, run_ns, cpu_ns;
    pthread_t ran_on;
} other;

static void other_guard(UTimer *u, ITimer *t)
{
    (void)u;
    (void)t;
    other.timed_out = true;
    IIoMux_Terminate(other.mux);
}

static const struct UTimerVtbl other_guard_vtbl = {other_guard};

static void other_exec(UIoExec *u, void *ctx)
{
    (void)u;
    (void)ctx;
    other.ran_ns = now_ns();
    other.ran_on = pthread_self();
    other.te.runs++;
    IIoMux_Terminate(other.mux);
}

static const struct UIoExecVtbl other_exec_vtbl = {other_exec};

static void *other_run(void *arg)
{
    (void)arg;
    uint64_t t0 = now_ns(), cpu0 = thread_cpu_ns();
    ITimer_Start(other.guard, 1000);
    IIoMux_Run(other.mux);
    other.run_ns = now_ns() - t0;
    other.cpu_ns = thread_cpu_ns() - cpu0;
    return NULL;
}

Test(reactor, loop_created_on_one_thread_runs_on_another)
{
    other.mux = IIoMux_Create();
    cr_assert_not_null(other.mux);
    other.guard_user.vtbl = &other_guard_vtbl;
    other.guard = ITimer_Create(other.mux, &other.guard_user);
    other.te.user.vtbl = &other_exec_vtbl;
    cr_assert_eq(pthread_create(&other.runner, NULL, other_run, NULL), 0);
    sleep_ms(50);
    other.posted_ns = now_ns();
    IIoMux_SetExecLocked(other.mux, &other.te.user, NULL);
    pthread_join(other.runner, NULL);
    ITimer_Delete(other.guard);
    IIoMux_Delete(other.mux);
    cr_assert_eq(other.te.runs, 1,
                 "SetExecLocked never ran on a loop run by another thread "
                 "than the one that created it");
    cr_assert_not(other.timed_out);
    cr_assert(pthread_equal(other.ran_on, other.runner), "exec ran off the loop thread");
    cr_assert_lt(other.ran_ns - other.posted_ns, 200 * MS, "exec ran %.1f ms late",
                 (other.ran_ns - other.posted_ns) / 1e6);
    cr_assert_lt(other.cpu_ns, other.run_ns / 2, "loop used %.1f ms CPU in %.1f ms",
                 other.cpu_ns / 1e6, other.run_ns / 1e6);
}

#define NTHREADS 4
#define NPER     1000
static atomic_int go;
static unsigned seen[NTHREADS][NPER];
static int last_seen[NTHREADS];
static unsigned total_seen;
static bool out_of_order;

struct poster {
    pthread_t th;
    int idx;
    struct texec *te;
};

static void *post_many(void *arg)
{
    struct poster *p = arg;
    while (!atomic_load(&go))
        sched_yield();
    for (int i = 0; i < NPER; i++)
        IIoMux_SetExecLocked(env.mux, &p->te->user, (void *)(intptr_t)(p->idx * NPER + i));
    return NULL;
}

static void count_locked(struct texec *te, void *ctx)
{
    (void)te;
    intptr_t v = (intptr_t)ctx;
    if (v < 0) { /* the starter, queued with SetExec */
        atomic_store(&go, 1);
        return;
    }
    int th = (int)(v / NPER), i = (int)(v % NPER);
    seen[th][i]++;
    if (i <= last_seen[th])
        out_of_order = true; /* one thread's calls must keep their order */
    last_seen[th] = i;
    if (++total_seen == NTHREADS * NPER)
        IIoMux_Terminate(env.mux);
}

Test(reactor, setexeclocked_from_many_threads_runs_each_once)
{
    struct texec te;
    te_init(&te, 0);
    te.hook = count_locked;
    struct poster p[NTHREADS];
    for (int t = 0; t < NTHREADS; t++) {
        last_seen[t] = -1;
        p[t] = (struct poster){.idx = t, .te = &te};
        cr_assert_eq(pthread_create(&p[t].th, NULL, post_many, &p[t]), 0);
    }
    set_exec(&te, -1); /* releases the threads once the loop runs */
    bool ok = run_guarded(5000);
    for (int t = 0; t < NTHREADS; t++)
        pthread_join(p[t].th, NULL);
    cr_assert(ok, "%u of %d locked execs ran", total_seen, NTHREADS * NPER);
    h_run_for(&env, 20);
    cr_assert_eq(total_seen, NTHREADS * NPER);
    for (int t = 0; t < NTHREADS; t++)
        for (int i = 0; i < NPER; i++)
            cr_assert_eq(seen[t][i], 1, "thread %d call %d ran %u times", t, i, seen[t][i]);
    cr_assert_not(out_of_order, "one thread's SetExecLocked calls ran out of order");
    cr_assert_eq(te.runs, NTHREADS * NPER + 1);
}

struct two_execs {
    struct texec *a, *b;
};

static void *post_interleaved(void *arg)
{
    struct two_execs *x = arg;
    for (intptr_t i = 0; i < 10; i++) {
        IIoMux_SetExecLocked(env.mux, &x->a->user, (void *)i);
        IIoMux_SetExecLocked(env.mux, &x->b->user, (void *)i);
    }
    return NULL;
}

Test(reactor, cancel_setexec_drops_locked_entries)
{
    struct texec a, b;
    te_init(&a, 0);
    te_init(&b, 1);
    struct two_execs x = {&a, &b};
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, post_interleaved, &x), 0);
    pthread_join(th, NULL);
    /* Posted, not yet seen by the loop. */
    CALL(IIoMux_CancelSetExec(env.mux, &a.user));
    run_until_logged(10);
    h_run_for(&env, 20);
    cr_assert_eq(a.runs, 0, "canceled locked exec ran %u times", a.runs);
    cr_assert_eq(b.runs, 10);
    for (size_t i = 0; i < 10; i++)
        cr_assert_eq(ex_log[i].ctx, (intptr_t)i, "locked execs out of order");
}

/* ---- shutdown handlers --------------------------------------------------------------- */

static volatile sig_atomic_t in_raise;

struct tshut {
    IShutdownHandler h;
    int id;
    unsigned shutdowns, timeouts;
    uint64_t shutdown_ns, timeout_ns, completed_ns;
    bool complete_in_shutdown;
    struct ttimer *complete_later; /* started when Shutdown comes */
};

static void ts_shutdown(IShutdownHandler *h)
{
    struct tshut *ts = h_container_of(h, struct tshut, h);
    assert_loop_context("Shutdown");
    cr_assert_eq(in_raise, 0, "Shutdown ran inside the signal handler");
    ts->shutdowns++;
    ts->shutdown_ns = now_ns();
    if (ts->complete_in_shutdown) {
        ts->completed_ns = now_ns();
        CALL(IIoMux_ShutdownComplete(env.mux, &ts->h));
    }
    if (ts->complete_later)
        tt_start(ts->complete_later, 50);
}

static void ts_timeout(IShutdownHandler *h)
{
    struct tshut *ts = h_container_of(h, struct tshut, h);
    assert_loop_context("ShutdownTimeout");
    ts->timeouts++;
    ts->timeout_ns = now_ns();
}

static const struct IShutdownHandlerVtbl ts_vtbl = {ts_shutdown, ts_timeout};

static void ts_init(struct tshut *ts, int id)
{
    memset(ts, 0, sizeof(*ts));
    ts->h.vtbl = &ts_vtbl;
    ts->id = id;
}

static void complete_from_timer(struct ttimer *tt)
{
    struct tshut *ts = tt->arg;
    ts->completed_ns = now_ns();
    CALL(IIoMux_ShutdownComplete(env.mux, &ts->h));
}

static uint64_t signal_ns[2];
static unsigned nsignals;

static void raise_sig(int sig)
{
    signal_ns[nsignals++ & 1] = now_ns();
    in_raise = 1;
    cr_assert_eq(raise(sig), 0);
    in_raise = 0;
}

static void raise_sigterm(struct ttimer *tt)
{
    (void)tt;
    raise_sig(SIGTERM);
}

Test(reactor, shutdown_waits_for_every_handler)
{
    env.mux->shutdown_grace_ms = 200;
    struct tshut h1, h2;
    struct ttimer later, kick;
    ts_init(&h1, 1);
    ts_init(&h2, 2);
    tt_init(&later, 0);
    tt_init(&kick, 1);
    h1.complete_in_shutdown = true;
    h2.complete_later = &later;
    later.hook = complete_from_timer;
    later.arg = &h2;
    kick.hook = raise_sigterm;
    CALL(IIoMux_RegisterShutdownHandler(env.mux, &h1.h));
    CALL(IIoMux_RegisterShutdownHandler(env.mux, &h2.h));
    tt_start(&kick, 10);
    bool ok = run_guarded(3000);
    uint64_t returned = now_ns();
    cr_assert(ok, "Run did not return after both handlers completed");
    cr_assert_eq(h1.shutdowns, 1);
    cr_assert_eq(h2.shutdowns, 1);
    cr_assert_eq(later.fired, 1, "Run returned before the second handler completed");
    cr_assert_geq(returned, h2.completed_ns);
    cr_assert_eq(h1.timeouts + h2.timeouts, 0, "ShutdownTimeout after completion");
    /* Past the grace period: the grace timer must be gone with the shutdown, neither
     * calling ShutdownTimeout nor ending a later Run. */
    h_run_for(&env, 300);
    cr_assert(env.timed_out, "a later Run ended early");
    cr_assert_eq(h1.timeouts + h2.timeouts, 0, "ShutdownTimeout after a completed shutdown");
    cr_assert_eq(h1.shutdowns + h2.shutdowns, 2);
    tt_fini(&later);
    tt_fini(&kick);
}

static void kill_sigint(struct texec *te, void *ctx)
{
    (void)te;
    (void)ctx;
    signal_ns[0] = now_ns();
    in_raise = 1;
    cr_assert_eq(kill(getpid(), SIGINT), 0);
    in_raise = 0;
}

Test(reactor, shutdown_timeout_after_grace_period)
{
    env.mux->shutdown_grace_ms = 200;
    struct tshut h1, h2;
    ts_init(&h1, 1);
    ts_init(&h2, 2);
    h1.complete_in_shutdown = true; /* h2 never completes */
    CALL(IIoMux_RegisterShutdownHandler(env.mux, &h1.h));
    CALL(IIoMux_RegisterShutdownHandler(env.mux, &h2.h));
    struct texec k;
    te_init(&k, 0);
    k.hook = kill_sigint;
    set_exec(&k, 0);
    bool ok = run_guarded(3000);
    uint64_t returned = now_ns();
    cr_assert(ok, "Run did not return after the grace period");
    cr_assert_eq(h1.shutdowns, 1);
    cr_assert_eq(h2.shutdowns, 1);
    cr_assert_eq(h1.timeouts, 0, "ShutdownTimeout for a handler that completed");
    cr_assert_eq(h2.timeouts, 1, "ShutdownTimeout came %u times", h2.timeouts);
    uint64_t waited = h2.timeout_ns - h2.shutdown_ns;
    cr_assert_geq(waited, 200 * MS, "ShutdownTimeout %.1f ms after Shutdown", waited / 1e6);
    cr_assert_lt(waited, 1000 * MS, "ShutdownTimeout %.1f ms after Shutdown", waited / 1e6);
    cr_assert_geq(returned, h2.timeout_ns);
}

static void second_signal(struct ttimer *tt)
{
    (void)tt;
    raise_sig(SIGTERM);
}

Test(reactor, second_signal_times_out_at_once)
{
    env.mux->shutdown_grace_ms = 5000;
    struct tshut h1;
    struct ttimer kick, again;
    ts_init(&h1, 1);
    tt_init(&kick, 0);
    tt_init(&again, 1);
    kick.hook = raise_sigterm;
    again.hook = second_signal;
    CALL(IIoMux_RegisterShutdownHandler(env.mux, &h1.h));
    nsignals = 0;
    tt_start(&kick, 10);
    tt_start(&again, 100);
    uint64_t t0 = now_ns();
    bool ok = run_guarded(3000);
    uint64_t t1 = now_ns();
    cr_assert(ok, "Run did not return after the second signal");
    cr_assert_eq(nsignals, 2, "the test sent %u signals", nsignals);
    cr_assert_eq(h1.shutdowns, 1, "Shutdown came %u times", h1.shutdowns);
    cr_assert_eq(h1.timeouts, 1, "ShutdownTimeout came %u times", h1.timeouts);
    cr_assert_geq(h1.timeout_ns, signal_ns[1], "ShutdownTimeout before the second signal");
    cr_assert_lt(h1.timeout_ns - signal_ns[1], 200 * MS, "ShutdownTimeout %.1f ms late",
                 (h1.timeout_ns - signal_ns[1]) / 1e6);
    cr_assert_lt(t1 - t0, 1000 * MS, "Run took %.1f ms", (t1 - t0) / 1e6);
    tt_fini(&kick);
    tt_fini(&again);
}

/* ---- IIoMux_Create without io_uring: the epoll backend ---------------------------------- */

#ifdef BLOCK_IO_URING_ARCH
/* In a child: make io_uring_setup fail with err, as a container's seccomp profile does,
 * and report through the exit status whether IIoMux_Create did what it should (fall back
 * to epoll; with io_uring forced, return NULL), its stderr through fd. */
static void child_create(int err, int fd, bool forced)
{
    if (dup2(fd, STDERR_FILENO) < 0)
        _exit(10);
    if (block_io_uring(err) != 0)
        _exit(11);
    /* The filter is in place: a raw io_uring_setup must fail the same way. */
    if (syscall(__NR_io_uring_setup, 4, NULL) != -1 || errno != err)
        _exit(12);
    if (forced)
        setenv("RINGSOCK_BACKEND", "io_uring", 1);
    else
        unsetenv("RINGSOCK_BACKEND");
    IIoMux *m = IIoMux_Create();
    fflush(stderr);
    if (forced)
        _exit(m ? 1 : 0);
    _exit(m && strcmp(IIoMux_GetBackend(m), "epoll") == 0 ? 0 : 1);
}

static void create_without_io_uring(int err, const char *errname, bool forced)
{
    int p[2];
    cr_assert_eq(pipe(p), 0);
    fflush(NULL);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        close(p[0]);
        child_create(err, p[1], forced);
    }
    close(p[1]);
    char msg[2048];
    size_t len = 0;
    ssize_t n;
    while (len < sizeof(msg) - 1 && (n = read(p[0], msg + len, sizeof(msg) - 1 - len)) != 0) {
        if (n < 0 && errno == EINTR)
            continue;
        cr_assert_gt(n, 0, "read: %s", strerror(errno));
        len += (size_t)n;
    }
    msg[len] = '\0';
    close(p[0]);
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status), "child died: signal %d; stderr: %s",
              WIFSIGNALED(status) ? WTERMSIG(status) : 0, msg);
    int code = WEXITSTATUS(status);
    cr_assert_neq(code, 11, "could not install the seccomp filter");
    cr_assert_neq(code, 12, "the seccomp filter did not block io_uring_setup");
    cr_assert_eq(code, 0, "IIoMux_Create %s (exit %d); stderr: %s",
                 forced ? "returned a loop with io_uring forced" : "did not fall back to epoll",
                 code, msg);
    cr_assert(strstr(msg, "io_uring"), "message does not mention io_uring: %s", msg);
    cr_assert(strstr(msg, strerror(err)) || strstr(msg, errname),
              "message gives no reason (%s): %s", errname, msg);
    if (!forced)
        cr_assert(strstr(msg, "epoll"), "message does not say which backend runs: %s", msg);
}

Test(reactor, create_without_io_uring_enosys)
{
    create_without_io_uring(ENOSYS, "ENOSYS", false);
}

Test(reactor, create_without_io_uring_eperm)
{
    create_without_io_uring(EPERM, "EPERM", false);
}

/* Forced, io_uring gives no loop rather than another backend. */
Test(reactor, create_forced_io_uring_without_it_fails)
{
    create_without_io_uring(EPERM, "EPERM", true);
}
#endif

static void reset_globals(void)
{
    nfire_log = 0;
    many_v = NULL;
    many_order = NULL;
    many_n = 0;
    nex_log = 0;
    exec_depth = 0;
    atomic_store(&locked_done, 0);
    atomic_store(&go, 0);
    memset(seen, 0, sizeof(seen));
    total_seen = 0;
    out_of_order = false;
    in_raise = 0;
    nsignals = 0;
}
