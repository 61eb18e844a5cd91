/* The loop: run ready work (exec queue, deferred tasks, expired timers), let sockets
 * queue their sends, then submit everything and wait in one backend poll (one
 * io_uring_enter, or epoll_wait). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "blocks.h"
#include "reactor.h"

uint64_t rs_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void rs_fatal(const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    fprintf(stderr, "ringsock: %s\n", msg);
    fflush(stderr);
    abort();
}

void rs_callback_check(IIoMux *m, const char *callback)
{
    if (m->api_depth > 0)
        rs_fatal("internal error: %s would run inside the API call that caused it", callback);
}

/* A number from the environment, lo to hi; dflt when unset or not one. */
static long env_number(const char *name, long lo, long hi, const char *what, long dflt)
{
    const char *v = getenv(name);
    if (!v || !*v)
        return dflt;
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (errno || *end || n < lo || n > hi) {
        fprintf(stderr,
                "ringsock: IIoMux_Create: %s=%s is not a number of %s (%ld to %ld): ignored\n",
                name, v, what, lo, hi);
        return dflt;
    }
    return n;
}

static unsigned env_ms(const char *name)
{
    return (unsigned)env_number(name, 1, 3600000, "milliseconds", 0);
}

bool rs_env_switch(const char *name, const char *call)
{
    const char *v = getenv(name);
    if (!v || !*v || strcmp(v, "0") == 0)
        return false;
    if (strcmp(v, "1") == 0)
        return true;
    fprintf(stderr, "ringsock: %s: %s=%s is not 0 or 1: ignored\n", call, name, v);
    return false;
}

static void read_settings(struct rs_settings *s)
{
    s->tcp_single_shot = rs_env_switch("RINGSOCK_TCP_SINGLE_SHOT", "IIoMux_Create");
    s->udp_single_shot = rs_env_switch("RINGSOCK_UDP_SINGLE_SHOT", "IIoMux_Create");
    s->tls_handshake_timeout_ms = env_ms("RINGSOCK_TLS_HANDSHAKE_TIMEOUT_MS");
    s->dtls_handshake_timeout_ms = env_ms("RINGSOCK_DTLS_HANDSHAKE_TIMEOUT_MS");
    s->spin_us = env_number("RINGSOCK_SPIN_US", 0, 1000000, "microseconds", -1);
}

/* io_uring, or epoll where io_uring cannot be set up (said once per process: with a loop
 * per core the reason is the same for each); RINGSOCK_BACKEND forces either. */
static struct rs_backend *create_backend(void)
{
    static atomic_bool fallback_told;
    char why[256] = "";
    struct rs_backend *b;
    const char *want = getenv("RINGSOCK_BACKEND");
    if (want && *want && strcmp(want, "io_uring") != 0 && strcmp(want, "epoll") != 0) {
        fprintf(stderr,
                "ringsock: IIoMux_Create: RINGSOCK_BACKEND=%s is not a backend (io_uring or "
                "epoll)\n",
                want);
        return NULL;
    }
    if (!want || !*want || strcmp(want, "io_uring") == 0) {
        if ((b = rs_uring_create(why, sizeof(why))) != NULL)
            return b;
        if (want && *want) { /* forced */
            fprintf(stderr, "ringsock: IIoMux_Create: %s\n", why);
            return NULL;
        }
        if (!atomic_exchange(&fallback_told, true))
            fprintf(stderr, "ringsock: %s; using the epoll backend\n", why);
    }
    if ((b = rs_epoll_create(why, sizeof(why))) == NULL)
        fprintf(stderr, "ringsock: IIoMux_Create: %s\n", why);
    return b;
}

IIoMux *IIoMux_Create(void)
{
    IIoMux *m = calloc(1, sizeof(*m));
    if (!m) {
        fprintf(stderr, "ringsock: IIoMux_Create: out of memory\n");
        return NULL;
    }
    m->io = create_backend();
    if (!m->io) {
        free(m);
        return NULL;
    }
    m->features = rs_backend_features(m->io);
    read_settings(&m->settings);
    if (m->settings.spin_us >= 0)
        m->spin.cap_ns = (uint64_t)m->settings.spin_us * 1000u;
    rs_list_init(&m->deferred);
    rs_list_init(&m->flush);
    rs_list_init(&m->unclaimed);
    if (rs_exec_init(m) < 0) {
        fprintf(stderr, "ringsock: IIoMux_Create: eventfd: %s\n", strerror(errno));
        rs_backend_destroy(m->io);
        free(m);
        return NULL;
    }
    rs_blk_thread_muxes(1);
    return m;
}

const char *IIoMux_GetBackend(IIoMux *m)
{
    if (!m) {
        fprintf(stderr, "ringsock: IIoMux_GetBackend(NULL)\n");
        return "";
    }
    return rs_backend_name(m->io);
}

void IIoMux_Delete(IIoMux *m)
{
    if (!m)
        return;
    rs_shutdown_destroy(m);
    /* What no application holds yet: each task frees its owner (and what that owns). */
    for (struct rs_list *n; (n = rs_list_pop_front(&m->unclaimed)) != NULL;) {
        struct rs_task *t = rs_container_of(n, struct rs_task, link);
        t->run(t);
    }
    /* Completions of deleted sockets' canceled operations free those sockets. */
    rs_backend_drain(m->io);
    /* Tasks belong to sockets the application still owns; forget them. */
    while (rs_list_pop_front(&m->deferred))
        ;
    while (rs_list_pop_front(&m->flush))
        ;
    rs_timers_destroy(m);
    rs_bufpool_destroy(m->recv_pool);
    while (m->spare_segs) {
        struct rs_spare *b = m->spare_segs;
        m->spare_segs = b->next;
        free(b);
    }
    rs_backend_destroy(m->io); /* cancels the wake read with the ring */
    rs_exec_destroy(m);
    free(m);
    rs_blk_thread_muxes(-1); /* the last one empties the thread's block cache */
}

struct rs_bufpool *rs_mux_recv_pool(IIoMux *m)
{
    if (!m->recv_pool && !m->recv_pool_failed) {
        /* 256 x 64 KiB of address space; only pages the kernel writes become resident, and
         * the ring holds no more buffers than the loop's bursts need (uring.c). */
        m->recv_pool = rs_bufpool_create(m->io, 256, 65600);
        m->recv_pool_failed = !m->recv_pool;
    }
    return m->recv_pool;
}

void rs_defer(IIoMux *m, struct rs_task *t)
{
    if (!rs_list_linked(&t->link))
        rs_list_push_back(&m->deferred, &t->link);
}

void rs_flush_later(IIoMux *m, struct rs_task *t)
{
    if (!rs_list_linked(&t->link))
        rs_list_push_back(&m->flush, &t->link);
}

/* Runs the queued tasks, and those they queue (a layered socket passes events up this
 * way), for a few passes; what is still queued then waits for the next loop round so a
 * task that requeues itself cannot starve I/O. */
#define RS_TASK_PASSES 4

static void run_tasks(IIoMux *m, struct rs_list *queue)
{
    for (int pass = 0; pass < RS_TASK_PASSES && !rs_list_empty(queue) && !m->terminate; pass++) {
        struct rs_list batch, *n;
        rs_list_init(&batch);
        rs_list_splice(&batch, queue);
        while ((n = rs_list_pop_front(&batch)) != NULL) {
            struct rs_task *t = rs_container_of(n, struct rs_task, link);
            t->run(t);
        }
    }
}

/* ---- Waiting ------------------------------------------------------------------------
 * A loop that sleeps whenever it is idle pays for a sleep and a wakeup per burst of work:
 * the scheduler on its core, the wakeup (an IPI) on the core that sent the packet, and on
 * a VM the exits to the hypervisor. When the next work comes back sooner than that costs,
 * polling for it is cheaper, for the loop and for its peers. So, like the kernel's
 * haltpoll idle governor, the loop spins (on the ring's flags: no system call) before it
 * sleeps; the spin doubles while the idle times it sees are shorter than its cap and
 * halves while they are longer, so a loop whose work comes in gaps longer than the cap
 * sleeps at once, as without it. The cap is half of what a sleep costs this thread in CPU
 * time (sampled around its waits; at most RS_SPIN_CAP_MAX_NS), or RINGSOCK_SPIN_US (0:
 * never spin). */
#define RS_SPIN_CAP_MAX_NS 200000u
#define RS_SPIN_START_NS   2000u /* the first spin after a short idle time */
#define RS_SPIN_SAMPLE     16u   /* one sleep in this many is timed in CPU (a system call) */

static uint64_t thread_cpu_ns(void)
{
    struct timespec ts = {0, 0}; /* should the clock fail: no cost measured, no spin */
    if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) != 0)
        return 0;
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/* Polls without sleeping until something is dispatched or ns passed. */
static unsigned spin(IIoMux *m, uint64_t ns)
{
    uint64_t end = rs_now_ns() + ns;
    do {
        if (rs_backend_ready(m->io)) {
            unsigned n = rs_backend_poll(m->io, 0);
            if (n)
                return n;
        } else {
            cpu_relax();
        }
    } while (rs_now_ns() < end);
    return 0;
}

void rs_spin_adapt(struct rs_spin *s, uint64_t idle_ns)
{
    if (idle_ns <= s->cap_ns) {
        s->ns = s->ns ? s->ns * 2 : RS_SPIN_START_NS;
        if (s->ns > s->cap_ns)
            s->ns = s->cap_ns;
    } else {
        s->ns /= 2;
        if (s->ns < RS_SPIN_START_NS)
            s->ns = 0;
    }
}

/* One wait of the loop, at most timeout_ns; returns the completions dispatched. */
static unsigned wait_for_work(IIoMux *m, uint64_t timeout_ns)
{
    struct rs_spin *s = &m->spin;
    if (timeout_ns == 0 || m->settings.spin_us == 0)
        return rs_backend_poll(m->io, timeout_ns);
    bool sample =
        m->settings.spin_us < 0 && (s->sleeps < RS_SPIN_SAMPLE || s->sleeps % RS_SPIN_SAMPLE == 0);
    uint64_t spun = 0;
    if (s->ns || sample) {
        /* Submit first: neither the spin nor the timed sleep should include the sends. Not
         * spinning and not sampling, the wait submits them (one system call less). */
        unsigned n = rs_backend_poll(m->io, 0);
        if (n)
            return n;
        spun = s->ns < timeout_ns ? s->ns : timeout_ns;
        if (spun && (n = spin(m, spun)) != 0)
            return n;
        if (spun == timeout_ns)
            return 0;
    }
    s->sleeps++;
    uint64_t cpu = sample ? thread_cpu_ns() : 0;
    uint64_t start = rs_now_ns();
    rs_backend_wait(m->io, timeout_ns == UINT64_MAX ? UINT64_MAX : timeout_ns - spun);
    uint64_t slept = rs_now_ns() - start;
    if (sample) {
        uint64_t cost = thread_cpu_ns() - cpu;
        s->sleep_cost = s->sleep_cost ? (s->sleep_cost * 7 + cost) / 8 : cost;
        /* Half: the wait's CPU time also holds its enter and the task work it ran, which a
         * spin that catches the work pays as well; spin only where it surely pays. */
        uint64_t cap = s->sleep_cost / 2;
        s->cap_ns = cap < RS_SPIN_CAP_MAX_NS ? cap : RS_SPIN_CAP_MAX_NS;
    }
    rs_spin_adapt(s, spun + slept);
    return rs_backend_poll(m->io, 0);
}

void IIoMux_Run(IIoMux *m)
{
    rs_backend_start(m->io);
    m->terminate = false;
    while (!m->terminate) {
        rs_exec_run(m);
        if (!m->terminate)
            run_tasks(m, &m->deferred);
        if (!m->terminate)
            rs_timers_run_expired(m);
        run_tasks(m, &m->flush);
        if (m->terminate)
            break;
        uint64_t timeout = 0;
        if (rs_list_empty(&m->deferred) && !rs_exec_pending(m))
            timeout = rs_timers_next_timeout(m, rs_now_ns());
        m->quiet_send = wait_for_work(m, timeout) <= 1;
    }
}

void IIoMux_Terminate(IIoMux *m)
{
    m->terminate = true;
}
