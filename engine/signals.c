/* Shutdown handlers: on SIGINT/SIGTERM every registered handler's Shutdown runs from
 * the loop; once all have called IIoMux_ShutdownComplete the loop terminates. Handlers
 * that take longer than the grace period (or a second signal) get ShutdownTimeout. */
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "reactor.h"

#define RS_SHUTDOWN_GRACE_MS 10000 /* default; IIoMux.shutdown_grace_ms (tests) changes it */
#define RS_MAX_SIGNAL_MUXES  1024  /* loops with shutdown handlers: one per core */

/* The signal handler may only touch these: async-signal-safe atomics and write(2). */
static struct {
    atomic_int fd; /* the mux's wake eventfd, -1 when free */
    atomic_int pending;
} g_slots[RS_MAX_SIGNAL_MUXES];
static pthread_mutex_t g_slots_mu = PTHREAD_MUTEX_INITIALIZER;
static bool g_installed;
/* Handlers running now (on any thread). A loop that gives its slot back waits for them:
 * one may have read the slot's eventfd before it was cleared, and once IIoMux_Delete
 * closes it the number may be another file's. */
static atomic_int g_in_handler;

struct rs_shutdown_state {
    int slot;
    IShutdownHandler **handlers;
    size_t len, cap;
    bool in_progress;
    ITimer *grace;
    unsigned grace_ms;
};

static void on_signal(int sig)
{
    (void)sig;
    int saved = errno;
    atomic_fetch_add(&g_in_handler, 1);
    uint64_t one = 1;
    for (int i = 0; i < RS_MAX_SIGNAL_MUXES; i++) {
        int fd = atomic_load(&g_slots[i].fd);
        if (fd >= 0) {
            atomic_store(&g_slots[i].pending, 1);
            ssize_t r = write(fd, &one, sizeof(one));
            (void)r;
        }
    }
    atomic_fetch_sub(&g_in_handler, 1);
    errno = saved;
}

static int claim_slot(int fd)
{
    pthread_mutex_lock(&g_slots_mu);
    if (!g_installed) {
        for (int i = 0; i < RS_MAX_SIGNAL_MUXES; i++)
            atomic_store(&g_slots[i].fd, -1);
        struct sigaction sa;
        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = on_signal;
        sigemptyset(&sa.sa_mask);
        sa.sa_flags = SA_RESTART;
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGTERM, &sa, NULL);
        g_installed = true;
    }
    int slot = -1;
    for (int i = 0; i < RS_MAX_SIGNAL_MUXES && slot < 0; i++) {
        if (atomic_load(&g_slots[i].fd) < 0) {
            atomic_store(&g_slots[i].pending, 0);
            atomic_store(&g_slots[i].fd, fd);
            slot = i;
        }
    }
    pthread_mutex_unlock(&g_slots_mu);
    if (slot < 0)
        rs_fatal("IIoMux_RegisterShutdownHandler: more than %d loops with shutdown handlers",
                 RS_MAX_SIGNAL_MUXES);
    return slot;
}

static void finish(IIoMux *m)
{
    struct rs_shutdown_state *s = m->shutdown;
    ITimer_Cancel(s->grace);
    s->in_progress = false;
    IIoMux_Terminate(m);
}

static void timeout_all(IIoMux *m)
{
    struct rs_shutdown_state *s = m->shutdown;
    /* Handlers may complete (and so leave the list) inside ShutdownTimeout. */
    while (s->len > 0) {
        IShutdownHandler *h = s->handlers[0];
        memmove(s->handlers, s->handlers + 1, (s->len - 1) * sizeof(*s->handlers));
        s->len--;
        rs_callback_check(m, "ShutdownTimeout");
        h->vtbl->ShutdownTimeout(h);
    }
    finish(m);
}

static void grace_expired(ITimer *t, void *arg)
{
    (void)t;
    timeout_all(arg);
}

void IIoMux_RegisterShutdownHandler(IIoMux *m, IShutdownHandler *handler)
{
    struct rs_shutdown_state *s = m->shutdown;
    if (!s) {
        s = calloc(1, sizeof(*s));
        if (!s)
            rs_fatal("IIoMux_RegisterShutdownHandler: out of memory");
        s->grace = rs_timer_create_internal(m, grace_expired, m);
        s->grace_ms = m->shutdown_grace_ms ? m->shutdown_grace_ms : RS_SHUTDOWN_GRACE_MS;
        m->shutdown = s;
        s->slot = claim_slot(m->wake_fd);
    }
    s->handlers = rs_array_grow(s->handlers, &s->cap, s->len, sizeof(*s->handlers), 4,
                                "IIoMux_RegisterShutdownHandler");
    s->handlers[s->len++] = handler;
}

void IIoMux_ShutdownComplete(IIoMux *m, IShutdownHandler *handler)
{
    struct rs_shutdown_state *s = m->shutdown;
    if (!s)
        return;
    for (size_t i = 0; i < s->len; i++) {
        if (s->handlers[i] == handler) {
            memmove(s->handlers + i, s->handlers + i + 1, (s->len - i - 1) * sizeof(*s->handlers));
            s->len--;
            break;
        }
    }
    if (s->in_progress && s->len == 0)
        finish(m);
}

void rs_shutdown_poll(IIoMux *m)
{
    struct rs_shutdown_state *s = m->shutdown;
    if (!s || !atomic_exchange(&g_slots[s->slot].pending, 0))
        return;
    if (s->in_progress) { /* second signal: stop waiting */
        timeout_all(m);
        return;
    }
    s->in_progress = true;
    ITimer_Start(s->grace, s->grace_ms);
    /* Copy: Shutdown may call ShutdownComplete and shrink the list. */
    size_t n = s->len;
    IShutdownHandler **copy = malloc((n ? n : 1) * sizeof(*copy));
    if (!copy)
        rs_fatal("shutdown: out of memory");
    memcpy(copy, s->handlers, n * sizeof(*copy));
    for (size_t i = 0; i < n; i++) {
        rs_callback_check(m, "Shutdown");
        copy[i]->vtbl->Shutdown(copy[i]);
    }
    free(copy);
    if (s->in_progress && s->len == 0)
        finish(m);
}

void rs_shutdown_destroy(IIoMux *m)
{
    struct rs_shutdown_state *s = m->shutdown;
    if (!s)
        return;
    atomic_store(&g_slots[s->slot].fd, -1);
    /* A handler interrupting this thread has finished before we get here; one on another
     * thread is a few writes long. */
    while (atomic_load(&g_in_handler) > 0)
        sched_yield();
    ITimer_Delete(s->grace);
    free(s->handlers);
    free(s);
    m->shutdown = NULL;
}
