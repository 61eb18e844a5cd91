/* ITimer: a binary min-heap on (deadline, start order). Start, restart and cancel are
 * O(log n) and cost no system call; the loop passes the nearest deadline as the wait
 * timeout of its io_uring_enter. */
#include <stdlib.h>

#include "reactor.h"

static bool before(const ITimer *a, const ITimer *b)
{
    if (a->deadline_ns != b->deadline_ns)
        return a->deadline_ns < b->deadline_ns;
    return a->seq < b->seq;
}

static void place(IIoMux *m, size_t i, ITimer *t)
{
    m->heap[i] = t;
    t->idx = i;
}

static void sift_up(IIoMux *m, size_t i)
{
    ITimer *t = m->heap[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!before(t, m->heap[parent]))
            break;
        place(m, i, m->heap[parent]);
        i = parent;
    }
    place(m, i, t);
}

static void sift_down(IIoMux *m, size_t i)
{
    ITimer *t = m->heap[i];
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= m->heap_len)
            break;
        if (child + 1 < m->heap_len && before(m->heap[child + 1], m->heap[child]))
            child++;
        if (!before(m->heap[child], t))
            break;
        place(m, i, m->heap[child]);
        i = child;
    }
    place(m, i, t);
}

static void heap_remove(IIoMux *m, ITimer *t)
{
    size_t i = t->idx;
    ITimer *last = m->heap[--m->heap_len];
    t->idx = RS_TIMER_IDLE;
    if (last == t)
        return;
    place(m, i, last);
    if (i > 0 && before(last, m->heap[(i - 1) / 2]))
        sift_up(m, i);
    else
        sift_down(m, i);
}

static ITimer *timer_new(IIoMux *m)
{
    ITimer *t = calloc(1, sizeof(*t));
    if (!t)
        rs_fatal("ITimer_Create: out of memory");
    t->mux = m;
    t->idx = RS_TIMER_IDLE;
    return t;
}

ITimer *ITimer_Create(IIoMux *m, UTimer *owner)
{
    ITimer *t = timer_new(m);
    t->owner = owner;
    return t;
}

ITimer *rs_timer_create_internal(IIoMux *m, void (*fn)(ITimer *, void *), void *arg)
{
    ITimer *t = timer_new(m);
    t->internal = fn;
    t->internal_arg = arg;
    return t;
}

void ITimer_Delete(ITimer *t)
{
    if (!t)
        return;
    ITimer_Cancel(t);
    free(t);
}

void ITimer_Start(ITimer *t, unsigned timeoutMs)
{
    IIoMux *m = t->mux;
    if (t->idx != RS_TIMER_IDLE)
        heap_remove(m, t);
    t->deadline_ns = rs_now_ns() + (uint64_t)timeoutMs * 1000000u;
    t->seq = ++m->timer_seq;
    m->heap =
        rs_array_grow(m->heap, &m->heap_cap, m->heap_len, sizeof(*m->heap), 64, "ITimer_Start");
    place(m, m->heap_len++, t);
    sift_up(m, t->idx);
}

void ITimer_Cancel(ITimer *t)
{
    if (t && t->idx != RS_TIMER_IDLE)
        heap_remove(t->mux, t);
}

bool ITimer_IsRunning(const ITimer *t)
{
    return t && t->idx != RS_TIMER_IDLE;
}

uint64_t rs_timers_next_timeout(IIoMux *m, uint64_t now)
{
    if (m->heap_len == 0)
        return UINT64_MAX;
    uint64_t d = m->heap[0]->deadline_ns;
    return d > now ? d - now : 0;
}

void rs_timers_run_expired(IIoMux *m)
{
    if (m->heap_len == 0)
        return;
    uint64_t now = rs_now_ns();
    uint64_t last_seq = m->timer_seq; /* timers (re)started by a callback wait a round */
    while (m->heap_len > 0 && !m->terminate) {
        ITimer *t = m->heap[0];
        if (t->deadline_ns > now || t->seq > last_seq)
            break;
        heap_remove(m, t);
        if (t->internal) {
            t->internal(t, t->internal_arg);
        } else {
            rs_callback_check(m, "TimerOnTimeout");
            t->owner->vtbl->TimerOnTimeout(t->owner, t);
        }
    }
}

void rs_timers_destroy(IIoMux *m)
{
    /* Timers belong to the application; detach them so ITimer_Delete stays safe. */
    for (size_t i = 0; i < m->heap_len; i++)
        m->heap[i]->idx = RS_TIMER_IDLE;
    free(m->heap);
    m->heap = NULL;
    m->heap_len = m->heap_cap = 0;
}
