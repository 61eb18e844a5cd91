/* SetExec queues: each call runs IoExec once, from the loop, in call order.
 * SetExecLocked may come from any thread; it wakes the ring through an eventfd that
 * has a read queued on the ring at all times. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "reactor.h"

static void queue_push(struct rs_queue *q, UIoExec *exec, void *ctx)
{
    *RS_QUEUE_PUSH(q, struct rs_exec_entry, "IIoMux_SetExec") = (struct rs_exec_entry){exec, ctx};
}

static bool queue_pop(struct rs_queue *q, struct rs_exec_entry *out)
{
    if (q->len == 0)
        return false;
    *out = *RS_QUEUE_AT(q, struct rs_exec_entry, 0);
    rs_queue_pop(q);
    return true;
}

static void queue_cancel(struct rs_queue *q, UIoExec *exec)
{
    for (size_t i = 0; i < q->len; i++) {
        struct rs_exec_entry *e = RS_QUEUE_AT(q, struct rs_exec_entry, i);
        if (e->exec == exec)
            e->exec = NULL;
    }
}

static void wake_complete(struct rs_op *op, int res, unsigned flags)
{
    (void)flags;
    IIoMux *m = rs_container_of(op, IIoMux, wake_op);
    atomic_store(&m->wake_armed, false);
    if (res == -ECANCELED || res == -EBADF)
        return; /* the IIoMux is going away */
    pthread_mutex_lock(&m->locked_mu);
    struct rs_exec_entry e;
    while (queue_pop(&m->locked, &e))
        queue_push(&m->exec, e.exec, e.ctx);
    pthread_mutex_unlock(&m->locked_mu);
    rs_exec_arm_wake(m);
    rs_shutdown_poll(m);
}

void rs_exec_arm_wake(IIoMux *m)
{
    if (atomic_exchange(&m->wake_armed, true))
        return;
    rs_io_read(m->io, &m->wake_op, m->wake_fd, &m->wake_val, sizeof(m->wake_val));
}

int rs_exec_init(IIoMux *m)
{
    pthread_mutex_init(&m->locked_mu, NULL);
    m->wake_fd = eventfd(0, EFD_CLOEXEC);
    if (m->wake_fd < 0)
        return -1;
    m->wake_op.complete = wake_complete;
    rs_exec_arm_wake(m);
    return 0;
}

void rs_exec_destroy(IIoMux *m)
{
    if (m->wake_fd >= 0)
        close(m->wake_fd);
    pthread_mutex_destroy(&m->locked_mu);
    rs_queue_free(&m->exec);
    rs_queue_free(&m->locked);
}

void IIoMux_SetExec(IIoMux *m, UIoExec *exec, void *execContext)
{
    queue_push(&m->exec, exec, execContext);
}

void IIoMux_SetExecLocked(IIoMux *m, UIoExec *exec, void *execContext)
{
    pthread_mutex_lock(&m->locked_mu);
    /* A queue that was not empty has its wake on the way: the loop drains it all. */
    bool wake = m->locked.len == 0;
    queue_push(&m->locked, exec, execContext);
    /* Under the lock: the loop cannot run this exec before we are done with m, so an exec
     * that ends its loop (and deletes the IIoMux) never pulls the eventfd from under us. */
    uint64_t one = 1;
    while (wake && write(m->wake_fd, &one, sizeof(one)) < 0 && errno == EINTR)
        ;
    pthread_mutex_unlock(&m->locked_mu);
}

void IIoMux_CancelSetExec(IIoMux *m, UIoExec *exec)
{
    queue_cancel(&m->exec, exec);
    pthread_mutex_lock(&m->locked_mu);
    queue_cancel(&m->locked, exec);
    pthread_mutex_unlock(&m->locked_mu);
}

bool rs_exec_pending(IIoMux *m)
{
    return m->exec.len > 0;
}

void rs_exec_run(IIoMux *m)
{
    /* Only what was queued before this round: an exec that re-queues itself waits. */
    size_t n = m->exec.len;
    struct rs_exec_entry e;
    while (n-- > 0 && !m->terminate && queue_pop(&m->exec, &e)) {
        if (!e.exec)
            continue;
        rs_callback_check(m, "IoExec");
        e.exec->vtbl->IoExec(e.exec, e.ctx);
    }
}
