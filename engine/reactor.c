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

/* A duration in ms from the environment; 0 (the default) when unset or not one. */
static unsigned env_ms(const char *name)
{
    const char *v = getenv(name);
    if (!v || !*v)
        return 0;
    char *end;
    errno = 0;
    unsigned long ms = strtoul(v, &end, 10);
    if (errno || *end || ms == 0 || ms > 3600000 || v[0] == '-') {
        fprintf(stderr,
                "ringsock: IIoMux_Create: %s=%s is not a number of milliseconds (1 to "
                "3600000): ignored\n",
                name, v);
        return 0;
    }
    return (unsigned)ms;
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
        /* 256 x 64 KiB of address space; only pages the kernel writes become resident. */
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
        m->quiet_send = rs_backend_poll(m->io, timeout) <= 1;
    }
}

void IIoMux_Terminate(IIoMux *m)
{
    m->terminate = true;
}
