/* What every socket type shares: its lifetime (the application's reference plus one per
 * operation in flight), and the events it owes the application, delivered in a fixed
 * order from the loop's deferred queue. This is the one place callbacks leave from. */
#ifndef RS_CORE_H
#define RS_CORE_H

#include "isocket.h"

/* Pending events, delivered in this order of priority (core.c's deliver_one). */
enum {
    RS_EV_BIND = 1u << 0,
    RS_EV_CONNECTED = 1u << 1,
    RS_EV_ACCEPTED = 1u << 2,
    RS_EV_UPGRADED = 1u << 3,      /* SocketUpgradeToTLSComplete */
    RS_EV_LISTEN = 1u << 4,        /* type hook: one SocketListenResult per call */
    RS_EV_SENDS = 1u << 5,         /* ready_results SocketSendResults */
    RS_EV_RECV_CANCELED = 1u << 6, /* the canceled[] buffers */
    RS_EV_RECV_DONE = 1u << 7,     /* type hook: SocketRecvResult / SocketRecvFromResult */
    RS_EV_CLOSE = 1u << 8,         /* outstanding buffer back, then SocketShutdown */
};

#define RS_MAX_CANCELED 4

struct rs_core;

struct rs_core_type {
    /* Delivers one pending connection; clears RS_EV_LISTEN when none is left. */
    void (*deliver_listen)(struct rs_core *c);
    /* False while a canceled receive may still write into its buffer; NULL: never. */
    bool (*canceled_ready)(struct rs_core *c);
    void (*free)(struct rs_core *c);
};

struct rs_core {
    ISocket base;
    const struct rs_core_type *type;
    unsigned refs;     /* the application's, one per operation in flight, one per delivery */
    unsigned inflight; /* operations the kernel holds */
    bool deleted;
    bool shutdown_requested; /* ISocket_Shutdown called */
    bool closed_delivered;   /* SocketShutdown went out: the socket is inert */
    unsigned pending;
    shutdownreason_t close_reason;
    uint32_t ready_results;
    /* The application's outstanding receive, from ISocket_Recv (socket.c) until its
     * SocketRecvResult (RS_EV_RECV_DONE: rfill bytes; rfrom: a SocketRecvFromResult from
     * raddr:rport), its RecvCancel (rs_core_cancel_buffer) or the close hands it back. */
    uint8_t *rbuf; /* NULL: none outstanding */
    size_t rlen, rfill;
    bool rpartial, rfrom;
    IPaddr raddr;
    uint16_t rport;
    void *canceled[RS_MAX_CANCELED]; /* buffers owed a SocketRecvCanceled, in order */
    unsigned canceled_n;
    struct rs_task events_task;
    struct rs_task unclaimed; /* held by the IIoMux until the application has the socket */
    char *bind_addr;          /* for SocketBindResult: set by rs_core_bound */
    uint16_t bind_port;
};

/* Every socket type starts with its core. */
static inline struct rs_core *rs_core_of(ISocket *s)
{
    return (struct rs_core *)s;
}

void rs_core_init(struct rs_core *c, const struct rs_core_type *type,
                  const struct rs_socket_ops *ops, IIoMux *mux, USocket *user, IInstanceLog *log,
                  enum LogFlags flag);
void rs_core_event(struct rs_core *c, unsigned ev);
/* Queues SocketShutdown(reason) (after the outstanding buffers come back). */
void rs_core_close_event(struct rs_core *c, shutdownreason_t reason);
/* The socket is bound to addr:port: SocketBindResult follows. */
void rs_core_bound(struct rs_core *c, const char *addr, uint16_t port);
/* Owes the application a SocketRecvCanceled for buf. */
void rs_core_cancel_buffer(struct rs_core *c, void *buf);
/* The same for the outstanding receive buffer, which the socket no longer has. */
void rs_core_cancel_recv(struct rs_core *c);
/* Made by Accept: the engine owns the socket until SocketAcceptComplete (or a
 * SocketShutdown instead) hands it to the application; IIoMux_Delete frees it before. */
void rs_core_accepted(struct rs_core *c);
/* ISocket_Delete's common part: no event will be delivered any more. */
void rs_core_delete(struct rs_core *c);

/* A reference that keeps the socket's memory while a caller still uses it (the
 * application may delete the socket inside any callback); rs_core_unref drops it. */
static inline void rs_core_ref(struct rs_core *c)
{
    c->refs++;
}

void rs_core_unref(struct rs_core *c);

static inline void rs_core_op_begin(struct rs_core *c)
{
    rs_core_ref(c);
    c->inflight++;
}

static inline void rs_core_op_end(struct rs_core *c)
{
    c->inflight--;
    rs_core_unref(c);
}

#endif
