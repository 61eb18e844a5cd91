/* IIoMux internals: the loop, its deferral queues, timers and exec queue.
 * The reactor knows no socket type: sockets queue rs_tasks and rs_ops, nothing more. */
#ifndef RS_REACTOR_H
#define RS_REACTOR_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "ringsock/iomux.h"
#include "backend.h"
#include "list.h"
#include "queue.h"

/* A unit of deferred work. Sockets embed these; a queued task is linked, so queueing
 * twice is a no-op and deleting its owner just unlinks it. */
struct rs_task {
    struct rs_list link;
    void (*run)(struct rs_task *t);
};

struct rs_exec_entry {
    UIoExec *exec;
    void *ctx;
};

struct rs_shutdown_state;

/* A memory block kept for reuse, linked through its first bytes. */
struct rs_spare {
    struct rs_spare *next;
};

/* Diagnostic and test settings, read from the environment once, at IIoMux_Create
 * (README "Settings"); 0/false: the default. */
struct rs_settings {
    bool tcp_single_shot;               /* RINGSOCK_TCP_SINGLE_SHOT */
    bool udp_single_shot;               /* RINGSOCK_UDP_SINGLE_SHOT */
    unsigned tls_handshake_timeout_ms;  /* RINGSOCK_TLS_HANDSHAKE_TIMEOUT_MS */
    unsigned dtls_handshake_timeout_ms; /* RINGSOCK_DTLS_HANDSHAKE_TIMEOUT_MS */
    long spin_us;                       /* RINGSOCK_SPIN_US; -1 (unset): measured */
};

/* How long the loop polls before it sleeps (reactor.c, "Waiting"). */
struct rs_spin {
    uint64_t ns;         /* the next spin */
    uint64_t cap_ns;     /* never longer: what a sleep costs, or RINGSOCK_SPIN_US */
    uint64_t sleep_cost; /* the loop thread's CPU per sleep, averaged (ns) */
    unsigned sleeps;     /* sleeps so far, for sampling their cost */
};
/* The loop was idle for idle_ns before work came (or its timeout passed): the next spin. */
void rs_spin_adapt(struct rs_spin *s, uint64_t idle_ns);

/* A 0/1 setting from the environment: unset, empty or "0" is false, "1" true; anything
 * else is said on stderr (naming call, the API function that reads it) and is false. */
bool rs_env_switch(const char *name, const char *call);

struct IIoMux {
    struct rs_backend *io;
    struct rs_settings settings;
    unsigned features;
    bool terminate;
    int api_depth; /* > 0 while an API call runs: no callback may start then */

    /* The last poll brought one completion or none: a loop this quiet sends its round's
     * first small send at once (one send(2)) rather than with the next submit, which
     * would return with that send's completion and cost a second enter per round. */
    bool quiet_send;
    struct rs_spin spin;

    struct rs_list deferred;  /* run from the loop, in order */
    struct rs_list flush;     /* run right before each submit: batches sends */
    struct rs_list unclaimed; /* IIoMux_Delete runs these: see rs_mux_hold */

    ITimer **heap; /* min-heap on (deadline, seq) */
    size_t heap_len, heap_cap;
    uint64_t timer_seq;

    struct rs_queue exec; /* of struct rs_exec_entry */
    pthread_mutex_t locked_mu;
    struct rs_queue locked; /* the same, filled by SetExecLocked from any thread */

    int wake_fd; /* eventfd: SetExecLocked and signals wake the ring through it */
    uint64_t wake_val;
    struct rs_op wake_op;
    atomic_bool wake_armed;

    struct rs_bufpool *recv_pool; /* multishot receive buffers (UDP, TCP), made on first use */
    bool recv_pool_failed;

    /* Drained send segments of the stream sockets, for reuse (stream.c). They belong to
     * the loop, not to its thread, so IIoMux_Delete frees them: nothing outlives it. */
    struct rs_spare *spare_segs;
    unsigned spare_segs_len;

    struct rs_shutdown_state *shutdown;
    unsigned shutdown_grace_ms; /* 0: the default (10 s); set before registering */
};

struct ITimer {
    IIoMux *mux;
    UTimer *owner;
    uint64_t deadline_ns;
    uint64_t seq;
    size_t idx; /* position in the heap, RS_TIMER_IDLE when not running */
    void (*internal)(ITimer *t, void *arg); /* engine-owned timers call this instead */
    void *internal_arg;
};
#define RS_TIMER_IDLE ((size_t)-1)

uint64_t rs_now_ns(void);

/* The IIoMux's multishot receive pool; NULL where the kernel lacks buffer rings. */
struct rs_bufpool *rs_mux_recv_pool(IIoMux *m);

void rs_defer(IIoMux *m, struct rs_task *t);
void rs_flush_later(IIoMux *m, struct rs_task *t);
static inline void rs_task_init(struct rs_task *t, void (*run)(struct rs_task *))
{
    rs_list_init(&t->link);
    t->run = run;
}
static inline void rs_task_cancel(struct rs_task *t)
{
    if (rs_list_linked(&t->link))
        rs_list_unlink(&t->link);
}

/* Something the engine made for the application but has not handed over yet (a
 * connection accepted and not yet reported): if the IIoMux is deleted first, nobody else
 * can free it, so IIoMux_Delete runs t, which must. rs_task_cancel(t) when handed over. */
static inline void rs_mux_hold(IIoMux *m, struct rs_task *t)
{
    if (!rs_list_linked(&t->link))
        rs_list_push_back(&m->unclaimed, &t->link);
}

/* Engine-owned timer: fn(t, arg) runs from the loop instead of a UTimer. */
ITimer *rs_timer_create_internal(IIoMux *m, void (*fn)(ITimer *, void *), void *arg);

/* Timer heap, used by the loop (timer.c). */
uint64_t rs_timers_next_timeout(IIoMux *m, uint64_t now); /* UINT64_MAX: none */
void rs_timers_run_expired(IIoMux *m);
void rs_timers_destroy(IIoMux *m);

/* Exec queue (exec.c). */
int rs_exec_init(IIoMux *m);
void rs_exec_destroy(IIoMux *m);
bool rs_exec_pending(IIoMux *m);
void rs_exec_run(IIoMux *m);
void rs_exec_arm_wake(IIoMux *m);

/* Shutdown handlers (signals.c). */
void rs_shutdown_poll(IIoMux *m); /* called when the wake eventfd fired */
void rs_shutdown_destroy(IIoMux *m);

/* Never-before-return guard: every API entry point that can cause a callback
 * brackets itself with these; rs_callback_check aborts if a callback would start
 * inside such a call. */
static inline void rs_api_enter(IIoMux *m)
{
    m->api_depth++;
}
static inline void rs_api_leave(IIoMux *m)
{
    m->api_depth--;
}
void rs_callback_check(IIoMux *m, const char *callback);

/* Prints "ringsock: <msg>" to stderr and aborts: misuse of the API. */
void rs_fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

#endif
