#include "core.h"

#include <stdlib.h>
#include <string.h>

static void deliver_one(struct rs_core *c)
{
    ISocket *is = &c->base;
    if (c->pending & RS_EV_BIND) {
        c->pending &= ~RS_EV_BIND;
        rs_cb_bind_result(is, c->bind_addr, c->bind_port);
    } else if (c->pending & RS_EV_CONNECTED) {
        c->pending &= ~RS_EV_CONNECTED;
        rs_cb_connect_complete(is);
    } else if (c->pending & RS_EV_ACCEPTED) {
        c->pending &= ~RS_EV_ACCEPTED;
        rs_task_cancel(&c->unclaimed); /* the application has it now */
        rs_cb_accept_complete(is);
    } else if (c->pending & RS_EV_UPGRADED) {
        c->pending &= ~RS_EV_UPGRADED;
        rs_cb_upgrade_complete(is);
    } else if (c->pending & RS_EV_LISTEN) {
        c->type->deliver_listen(c);
    } else if (c->pending & RS_EV_SENDS) {
        if (c->ready_results == 0) {
            c->pending &= ~RS_EV_SENDS;
            return;
        }
        c->ready_results--;
        rs_cb_send_result(is);
    } else if (c->pending & RS_EV_RECV_CANCELED) {
        if (c->canceled_n == 0 || (c->type->canceled_ready && !c->type->canceled_ready(c))) {
            c->pending &= ~RS_EV_RECV_CANCELED; /* queued again when the buffer is free */
            return;
        }
        void *buf = c->canceled[0];
        for (unsigned i = 1; i < c->canceled_n; i++)
            c->canceled[i - 1] = c->canceled[i];
        c->canceled_n--;
        rs_cb_recv_canceled(is, buf);
    } else if (c->pending & RS_EV_RECV_DONE) {
        c->pending &= ~RS_EV_RECV_DONE;
        void *buf = c->rbuf;
        c->rbuf = NULL;
        if (c->rfrom)
            rs_cb_recv_from_result(is, buf, c->rfill, c->raddr, c->rport);
        else
            rs_cb_recv_result(is, buf, c->rfill);
    } else if (c->pending & RS_EV_CLOSE) {
        if (c->canceled_n > 0) {
            c->pending |= RS_EV_RECV_CANCELED;
            return;
        }
        if (c->rbuf) {
            void *buf = c->rbuf;
            c->rbuf = NULL;
            rs_cb_recv_canceled(is, buf);
            return;
        }
        c->pending = 0;
        c->closed_delivered = true;
        rs_task_cancel(&c->unclaimed); /* an accepted one that failed: the application's now */
        rs_cb_shutdown(is, c->close_reason);
    }
}

static void deliver_events(struct rs_task *t)
{
    struct rs_core *c = rs_container_of(t, struct rs_core, events_task);
    rs_core_ref(c);
    while (c->pending && !c->deleted && !c->closed_delivered)
        deliver_one(c);
    rs_core_unref(c);
}

static void release_unclaimed(struct rs_task *t)
{
    ISocket_Delete(&rs_container_of(t, struct rs_core, unclaimed)->base);
}

void rs_core_init(struct rs_core *c, const struct rs_core_type *type,
                  const struct rs_socket_ops *ops, IIoMux *mux, USocket *user, IInstanceLog *log,
                  enum LogFlags flag)
{
    rs_socket_init(&c->base, ops, mux, user, log, flag);
    c->type = type;
    c->refs = 1;
    rs_task_init(&c->events_task, deliver_events);
    rs_task_init(&c->unclaimed, release_unclaimed);
}

void rs_core_accepted(struct rs_core *c)
{
    c->base.mode = RS_MODE_ACCEPTED;
    rs_mux_hold(c->base.mux, &c->unclaimed);
}

void rs_core_event(struct rs_core *c, unsigned ev)
{
    c->pending |= ev;
    rs_defer(c->base.mux, &c->events_task);
}

void rs_core_close_event(struct rs_core *c, shutdownreason_t reason)
{
    c->close_reason = reason;
    rs_core_event(c, RS_EV_CLOSE);
}

void rs_core_bound(struct rs_core *c, const char *addr, uint16_t port)
{
    free(c->bind_addr); /* kept only for the result: most sockets are never bound */
    c->bind_addr = strdup(addr);
    if (!c->bind_addr)
        rs_fatal("SocketBindResult: out of memory");
    c->bind_port = port;
    rs_core_event(c, RS_EV_BIND);
}

void rs_core_cancel_buffer(struct rs_core *c, void *buf)
{
    if (c->canceled_n == RS_MAX_CANCELED)
        rs_socket_misuse(&c->base, "ISocket_RecvCancel: too many canceled receives outstanding");
    c->canceled[c->canceled_n++] = buf;
    rs_core_event(c, RS_EV_RECV_CANCELED);
}

void rs_core_cancel_recv(struct rs_core *c)
{
    void *buf = c->rbuf;
    c->rbuf = NULL;
    c->pending &= ~RS_EV_RECV_DONE; /* its result, if it was filled, goes too */
    rs_core_cancel_buffer(c, buf);
}

void rs_core_delete(struct rs_core *c)
{
    if (c->deleted)
        rs_fatal("ISocket_Delete called twice");
    c->deleted = true;
    rs_task_cancel(&c->events_task);
    rs_task_cancel(&c->unclaimed);
}

void rs_core_unref(struct rs_core *c)
{
    if (--c->refs == 0) {
        free(c->bind_addr);
        c->type->free(c);
    }
}
