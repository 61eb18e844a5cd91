/* UDP sockets. A bound socket receives one datagram per SocketRecvFromResult and sends
 * with SendTo; a connected one has a fixed peer, Send and SocketRecvResult (the kernel
 * drops datagrams from other sources). Receives land in the caller's buffer; sends are
 * copied and up to RS_UDP_SENDS_IN_FLIGHT go to the kernel at once, their results
 * delivered in call order. */
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core.h"
#include "log_internal.h"
#include "provider.h"
#include "sockaddr.h"
#include "sockopt.h"
#include "udp.h"

#define RS_UDP_SENDS_IN_FLIGHT 64
#define RS_UDP_QUEUE_MAX       1024 /* datagrams kept for an application that is not receiving */

enum rs_udp_state { U_IDLE, U_BOUND, U_CONNECTED, U_CLOSED };

struct dgram {
    struct dgram *next;
    struct rs_op op;
    struct rs_udp *u;
    struct msghdr msg;
    struct iovec iov;
    struct rs_sockaddr to;
    bool submitted, done;
    size_t len;
    uint8_t bytes[];
};

/* A datagram waiting for a Recv: it arrived while none was outstanding, or into a
 * receive that was canceled. */
struct queued {
    struct queued *next;
    size_t len, real; /* bytes kept; the datagram's size on the wire */
    IPaddr addr;
    uint16_t port;
    uint8_t bytes[];
};

struct rs_udp {
    struct rs_core core;
    int fd;
    int family; /* the descriptor's: SendTo addresses are made for it */
    enum rs_udp_state state;
    bool v6;
    int qos;

    /* receive (the caller's buffer is the core's rbuf) */
    bool rop_inflight, rop_canceled;
    uint8_t *rop_buf;
    size_t rop_len;
    struct rs_op recv_op;
    struct msghdr rmsg;
    struct iovec riov;
    struct rs_sockaddr rsrc; /* a single receive's source address */
    struct queued *qhead, *qtail;
    unsigned qlen;
    bool dropping;           /* logged the start of a drop streak */
    struct rs_bufpool *pool; /* multishot receive into pool buffers; NULL: one at a time */
    struct msghdr mmsg;

    struct dgram *shead, *stail, *snext; /* snext: first not yet handed to the kernel */
    unsigned sinflight;
    struct rs_task flush_task;
};

#define U(isock)        ((struct rs_udp *)(isock))
#define LOG(u, ...)     IInstanceLog_Log((u)->core.base.log, LOG_UDP, __VA_ARGS__)
#define LOG_ERR(u, ...) rs_log_error((u)->core.base.log, LOG_UDP, __VA_ARGS__)

static void recv_start(struct rs_udp *u);
static void send_next(struct rs_udp *u);

/* ---- lifetime ------------------------------------------------------------------------- */

static void free_unsent(struct rs_udp *u)
{
    /* Submitted datagrams are freed by their completion: the kernel may hold them. */
    struct dgram **pp = &u->shead, *d;
    u->stail = NULL;
    while ((d = *pp) != NULL) {
        if (d->submitted) {
            u->stail = d;
            pp = &d->next;
        } else {
            *pp = d->next;
            free(d);
        }
    }
    u->snext = NULL;
}

static void release_fd(struct rs_udp *u)
{
    if (u->fd >= 0) {
        if (u->core.inflight)
            rs_io_cancel_fd(u->core.base.mux->io, u->fd);
        rs_io_close(u->core.base.mux->io, u->fd);
        u->fd = -1;
    }
    free_unsent(u);
}

static void end(struct rs_udp *u, shutdownreason_t reason)
{
    if (u->state == U_CLOSED)
        return;
    u->state = U_CLOSED;
    release_fd(u);
    LOG(u, "udp %p closed: %s", (void *)u, SocketShutdownReasonToStr(reason));
    rs_core_close_event(&u->core, reason);
}

static void udp_free(struct rs_core *c)
{
    struct rs_udp *u = (struct rs_udp *)c;
    while (u->qhead) {
        struct queued *q = u->qhead;
        u->qhead = q->next;
        free(q);
    }
    while (u->shead) { /* only after every completion came back */
        struct dgram *d = u->shead;
        u->shead = d->next;
        free(d);
    }
    free(u);
}

static int open_fd(struct rs_udp *u, int family)
{
    u->fd = socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (u->fd < 0)
        return errno;
    u->family = family;
    rs_fd_set_qos(u->fd, u->qos);
    return 0;
}

/* ---- receive -------------------------------------------------------------------------- */

static bool canceled_ready(struct rs_core *c)
{
    struct rs_udp *u = (struct rs_udp *)c;
    return !(u->rop_inflight && u->rop_canceled && u->state != U_CLOSED);
}

static void note_truncation(struct rs_udp *u, size_t real, size_t room)
{
    u->core.base.stats.truncated++;
    LOG(u, "udp %p: datagram of %zu bytes truncated to the %zu byte buffer", (void *)u, real, room);
}

static void queue_push(struct rs_udp *u, const void *data, size_t len, size_t real, IPaddr addr,
                       uint16_t port, bool front)
{
    if (u->qlen >= RS_UDP_QUEUE_MAX) {
        u->core.base.stats.dropped++;
        if (!u->dropping)
            LOG_ERR(u, "udp %p: the application is not receiving; dropping datagrams", (void *)u);
        u->dropping = true;
        return;
    }
    struct queued *q = malloc(sizeof(*q) + len);
    if (!q) {
        u->core.base.stats.dropped++;
        return;
    }
    memcpy(q->bytes, data, len);
    q->len = len;
    q->real = real;
    q->addr = addr;
    q->port = port;
    q->next = NULL;
    if (front) {
        q->next = u->qhead;
        u->qhead = q;
        if (!u->qtail)
            u->qtail = q;
    } else {
        if (u->qtail)
            u->qtail->next = q;
        else
            u->qhead = q;
        u->qtail = q;
    }
    u->qlen++;
}

/* Fills the outstanding receive buffer: `avail` bytes of a datagram of `real` bytes. */
static void recv_done(struct rs_udp *u, const uint8_t *data, size_t avail, size_t real, IPaddr addr,
                      uint16_t port)
{
    size_t n = avail < u->core.rlen ? avail : u->core.rlen;
    if (real > n)
        note_truncation(u, real, n);
    if (data != u->core.rbuf)
        memcpy(u->core.rbuf, data, n);
    u->core.rfill = n;
    u->core.rfrom = u->state != U_CONNECTED; /* a bound socket says where it came from */
    u->core.raddr = addr;
    u->core.rport = port;
    u->core.base.stats.bytesReceived += n;
    if (rs_log_data_on(u->core.base.log, LOG_UDP)) {
        char a[64];
        IPaddr_ToString(&addr, a, sizeof(a));
        rs_log_data(u->core.base.log, LOG_UDP, u->core.rbuf, n,
                    "udp %p received %zu bytes from %s:%u", (void *)u, n, a, port);
    }
    rs_core_event(&u->core, RS_EV_RECV_DONE);
}

/* Serves the outstanding buffer from the queue. True if it did. */
static bool recv_from_queue(struct rs_udp *u)
{
    struct queued *q = u->qhead;
    if (!q || !u->core.rbuf || (u->core.pending & RS_EV_RECV_DONE))
        return false;
    u->qhead = q->next;
    if (!u->qhead)
        u->qtail = NULL;
    u->qlen--;
    u->dropping = false;
    recv_done(u, q->bytes, q->len, q->real, q->addr, q->port);
    free(q);
    return true;
}

/* ICMP errors for earlier sends show up on connected sockets: they are logged and the
 * socket carries on; a media stream outlives a peer that is briefly not there. Other
 * errors end the socket. Returns false if the socket ended. */
static bool receive_error(struct rs_udp *u, int res)
{
    if (res == -ECONNREFUSED || res == -EHOSTUNREACH || res == -ENETUNREACH) {
        LOG(u, "udp %p: peer unreachable (%s)", (void *)u, strerror(-res));
    } else if (res != -EINTR && res != -EAGAIN && res != -ENOBUFS && res != -ENOMEM &&
               res != -ECANCELED) {
        LOG_ERR(u, "udp %p: receive failed: %s", (void *)u, strerror(-res));
        end(u, SOCKET_LOST);
        return false;
    }
    return true;
}

/* ---- multishot receive: the kernel fills pool buffers, we copy out and recycle at once */

static void multishot_arm(struct rs_udp *u)
{
    if (u->rop_inflight || (u->state != U_BOUND && u->state != U_CONNECTED))
        return;
    u->rop_inflight = true;
    rs_core_op_begin(&u->core);
    rs_io_recvmsg_multishot(u->core.base.mux->io, &u->recv_op, u->fd, &u->mmsg, u->pool);
}

static void take_datagram(struct rs_udp *u, void *buf, int res)
{
    struct sockaddr *name;
    void *payload;
    size_t len, real;
    if (!rs_recvmsg_parse(buf, res, &u->mmsg, &name, &payload, &len, &real))
        return;
    IPaddr addr;
    uint16_t port;
    rs_addr_to_ipaddr(name, &addr, &port);
    if (u->core.rbuf && !u->qhead && !(u->core.pending & RS_EV_RECV_DONE))
        recv_done(u, payload, len, real, addr, port);
    else
        queue_push(u, payload, len, real, addr, port, false);
}

static void multishot_complete(struct rs_op *op, int res, unsigned flags)
{
    struct rs_udp *u = rs_container_of(op, struct rs_udp, recv_op);
    bool more = flags & RS_CQE_MORE;
    bool live = u->state != U_CLOSED && !u->core.deleted;
    if (!more)
        u->rop_inflight = false;
    if (flags & RS_CQE_BUFFER) {
        unsigned id = RS_CQE_BUFFER_ID(flags);
        if (live && res >= 0)
            take_datagram(u, rs_bufpool_buf(u->pool, id), res);
        rs_bufpool_recycle(u->pool, id);
    } else if (live && res < 0) {
        live = receive_error(u, res);
    }
    if (!more) {
        if (live)
            multishot_arm(u); /* ENOBUFS or an error ended it: the socket goes on */
        rs_core_op_end(&u->core);
    }
}

/* ---- one receive at a time, straight into the caller's buffer --------------------------- */

static void recv_complete(struct rs_op *op, int res, unsigned flags)
{
    (void)flags;
    struct rs_udp *u = rs_container_of(op, struct rs_udp, recv_op);
    u->rop_inflight = false;
    if (u->state == U_CLOSED || u->core.deleted) {
        rs_core_op_end(&u->core);
        return;
    }
    IPaddr addr;
    uint16_t port;
    if (res >= 0)
        rs_addr_to_ipaddr(&u->rsrc.u.sa, &addr, &port);
    if (u->rop_canceled) {
        if (res >= 0) /* it arrived all the same: the next Recv gets it */
            queue_push(u, u->rop_buf, (size_t)res < u->rop_len ? (size_t)res : u->rop_len,
                       (size_t)res, addr, port, false);
        rs_core_event(&u->core, RS_EV_RECV_CANCELED);
        recv_start(u);
    } else if (res >= 0) {
        /* MSG_TRUNC: res is the datagram's real size */
        recv_done(u, u->core.rbuf, (size_t)res, (size_t)res, addr, port);
    } else if (receive_error(u, res)) {
        recv_start(u);
    }
    rs_core_op_end(&u->core);
}

static void recv_start(struct rs_udp *u)
{
    if (recv_from_queue(u) || u->pool)
        return; /* multishot mode delivers from its completions */
    if (u->rop_inflight || !u->core.rbuf || (u->state != U_BOUND && u->state != U_CONNECTED))
        return;
    u->rop_inflight = true;
    u->rop_canceled = false;
    u->rop_buf = u->core.rbuf;
    u->rop_len = u->core.rlen;
    u->riov.iov_base = u->core.rbuf;
    u->riov.iov_len = u->core.rlen;
    memset(&u->rmsg, 0, sizeof(u->rmsg));
    memset(&u->rsrc, 0, sizeof(u->rsrc));
    u->rmsg.msg_name = &u->rsrc.u;
    u->rmsg.msg_namelen = sizeof(u->rsrc.u);
    u->rmsg.msg_iov = &u->riov;
    u->rmsg.msg_iovlen = 1;
    rs_core_op_begin(&u->core);
    rs_io_recvmsg(u->core.base.mux->io, &u->recv_op, u->fd, &u->rmsg, MSG_TRUNC);
}

/* Starts receiving once the socket is bound or connected. */
static void receiving(struct rs_udp *u)
{
    IIoMux *m = u->core.base.mux;
    u->pool = m->settings.udp_single_shot ? NULL : rs_mux_recv_pool(m);
    if (u->pool) {
        u->recv_op.complete = multishot_complete;
        memset(&u->mmsg, 0, sizeof(u->mmsg));
        u->mmsg.msg_namelen = sizeof(struct sockaddr_in6);
        multishot_arm(u);
    } else {
        u->recv_op.complete = recv_complete;
        recv_start(u);
    }
}

static void udp_recv(ISocket *is)
{
    recv_start(U(is)); /* one datagram per callback, partial or not */
}

static void udp_recv_cancel(ISocket *is)
{
    struct rs_udp *u = U(is);
    if (!u->pool && u->rop_inflight && !u->rop_canceled) {
        rs_io_cancel_op(u->core.base.mux->io, &u->recv_op, u->fd);
        u->rop_canceled = true;
    }
    if (u->core.pending & RS_EV_RECV_DONE) {
        /* Arrived but not yet delivered: the next Recv gets it first. */
        u->core.base.stats.bytesReceived -= u->core.rfill;
        queue_push(u, u->core.rbuf, u->core.rfill, u->core.rfill, u->core.raddr, u->core.rport,
                   true);
    }
}

/* ---- send ----------------------------------------------------------------------------- */

static void release_done(struct rs_udp *u)
{
    while (u->shead && u->shead->done) {
        struct dgram *d = u->shead;
        u->shead = d->next;
        if (u->stail == d)
            u->stail = NULL;
        free(d);
        u->core.ready_results++;
    }
    if (u->core.ready_results)
        rs_core_event(&u->core, RS_EV_SENDS);
    if (u->core.shutdown_requested && !u->shead && u->state != U_CLOSED)
        end(u, SOCKET_SHUTDOWN_NORMAL);
}

static void send_complete(struct rs_op *op, int res, unsigned flags)
{
    (void)flags;
    struct dgram *d = rs_container_of(op, struct dgram, op);
    struct rs_udp *u = d->u;
    d->done = true;
    u->sinflight--;
    if (u->state == U_CLOSED || u->core.deleted) {
        rs_core_op_end(&u->core); /* udp_free takes the datagram */
        return;
    }
    if (res < 0) {
        /* A datagram that could not leave still gets its result: UDP promises no more. */
        LOG(u, "udp %p: send of %zu bytes failed: %s", (void *)u, d->len, strerror(-res));
    } else {
        u->core.base.stats.bytesSent += (uint64_t)res;
    }
    release_done(u);
    send_next(u);
    rs_core_op_end(&u->core);
}

static void send_next(struct rs_udp *u)
{
    while (u->snext && u->sinflight < RS_UDP_SENDS_IN_FLIGHT &&
           (u->state == U_BOUND || u->state == U_CONNECTED)) {
        struct dgram *d = u->snext;
        u->snext = d->next;
        d->submitted = true;
        u->sinflight++;
        rs_core_op_begin(&u->core);
        rs_io_sendmsg(u->core.base.mux->io, &d->op, u->fd, &d->msg, 0);
    }
}

static void flush_task_run(struct rs_task *t)
{
    send_next(rs_container_of(t, struct rs_udp, flush_task));
}

static void queue_datagram(struct rs_udp *u, const void *buf, size_t len,
                           const struct rs_sockaddr *to)
{
    struct dgram *d = malloc(sizeof(*d) + len);
    if (!d)
        rs_fatal("ISocket_Send: out of memory");
    memset(d, 0, sizeof(*d));
    memcpy(d->bytes, buf, len);
    d->len = len;
    d->u = u;
    d->op.complete = send_complete;
    d->iov.iov_base = d->bytes;
    d->iov.iov_len = len;
    d->msg.msg_iov = &d->iov;
    d->msg.msg_iovlen = 1;
    if (to) {
        d->to = *to;
        d->msg.msg_name = &d->to.u;
        d->msg.msg_namelen = to->len;
    }
    if (u->stail)
        u->stail->next = d;
    else
        u->shead = d;
    u->stail = d;
    if (!u->snext)
        u->snext = d;
    rs_log_data(u->core.base.log, LOG_UDP, buf, len, "udp %p sending %zu bytes", (void *)u, len);
    rs_flush_later(u->core.base.mux, &u->flush_task);
}

static void udp_send(ISocket *is, const void *buf, size_t len, bool nocopy)
{
    (void)nocopy; /* datagrams are small: always copied */
    struct rs_udp *u = U(is);
    if (u->core.shutdown_requested || u->state == U_CLOSED)
        return;
    queue_datagram(u, buf, len, NULL);
}

static void udp_send_to(ISocket *is, const void *buf, size_t len, IPaddr addr, uint16_t port)
{
    struct rs_udp *u = U(is);
    if (is->mode != RS_MODE_SERVER)
        rs_socket_misuse(is, "ISocket_SendTo before ISocket_Bind");
    if (u->core.shutdown_requested || u->state == U_CLOSED)
        return;
    struct rs_sockaddr to;
    memset(&to, 0, sizeof(to));
    if (u->family == AF_INET) {
        if (!IPaddr_IsV4(&addr)) {
            char a[64];
            IPaddr_ToString(&addr, a, sizeof(a));
            LOG(u, "udp %p: cannot send to IPv6 %s from an IPv4 socket", (void *)u, a);
            to.len = 0; /* sendmsg fails (EDESTADDRREQ): the result still comes */
        } else {
            to.u.in4.sin_family = AF_INET;
            memcpy(&to.u.in4.sin_addr, &addr.b[12], 4);
            to.u.in4.sin_port = htons(port);
            to.len = sizeof(to.u.in4);
        }
    } else {
        to.u.in6.sin6_family = AF_INET6;
        memcpy(&to.u.in6.sin6_addr, addr.b, 16);
        to.u.in6.sin6_port = htons(port);
        to.len = sizeof(to.u.in6);
    }
    queue_datagram(u, buf, len, to.len ? &to : NULL);
}

/* ---- connect, bind, the rest ------------------------------------------------------------- */

static void udp_connect(ISocket *is, const char *address, const char *serverName)
{
    (void)serverName;
    struct rs_udp *u = U(is);
    struct rs_sockaddr peer;
    if (!rs_addr_parse_hostport(address, &peer)) {
        LOG(u, "udp %p: invalid address '%s'", (void *)u, address ? address : "(null)");
        end(u, SOCKET_ADDRESS_INVALID);
        return;
    }
    int err = open_fd(u, peer.u.sa.sa_family);
    if (err) {
        LOG_ERR(u, "udp %p: cannot open a socket: %s", (void *)u, strerror(err));
        end(u, SOCKET_OPEN_FAILED);
        return;
    }
    if (connect(u->fd, &peer.u.sa, peer.len) < 0) {
        err = errno;
        LOG(u, "udp %p: connect to %s failed: %s", (void *)u, address, strerror(err));
        end(u, err == ECONNREFUSED ? SOCKET_CONNECT_REJECTED : SOCKET_CONNECT_FAILED);
        return;
    }
    LOG(u, "udp %p connected to %s", (void *)u, address);
    u->state = U_CONNECTED;
    rs_core_event(&u->core, RS_EV_CONNECTED);
    receiving(u);
}

static void udp_bind(ISocket *is, const char *localAddr, uint16_t localPort, bool reuse)
{
    struct rs_udp *u = U(is);
    struct rs_sockaddr local;
    if (!rs_addr_parse_bind(localAddr, localPort, u->v6, &local)) {
        LOG(u, "udp %p: invalid bind address '%s'", (void *)u, localAddr ? localAddr : "(null)");
        end(u, SOCKET_ADDRESS_INVALID);
        return;
    }
    int family = local.u.sa.sa_family;
    int err = open_fd(u, family);
    if (err) {
        LOG_ERR(u, "udp %p: cannot open a socket: %s", (void *)u, strerror(err));
        end(u, SOCKET_OPEN_FAILED);
        return;
    }
    err = rs_fd_bind(u->fd, &local.u.sa, local.len, reuse);
    if (err) {
        LOG(u, "udp %p: bind failed: %s", (void *)u, strerror(err));
        end(u, err == EADDRINUSE ? SOCKET_ADDR_IN_USE : SOCKET_BIND_FAILED);
        return;
    }
    struct rs_sockaddr bound;
    bound.len = sizeof(bound.u);
    if (getsockname(u->fd, &bound.u.sa, &bound.len) < 0)
        bound = local;
    char addr[RS_ADDR_TEXT];
    uint16_t port;
    rs_addr_format(&bound.u.sa, addr, sizeof(addr), &port);
    LOG(u, "udp %p bound to %s:%u", (void *)u, addr, port);
    u->state = U_BOUND;
    rs_core_bound(&u->core, addr, port);
    receiving(u);
}

static void udp_get_local_address(ISocket *is, char *out, unsigned size, uint16_t *port)
{
    rs_fd_local_address(U(is)->fd, rs_addr_format_ip, out, size, port);
}

static void udp_shutdown(ISocket *is)
{
    struct rs_udp *u = U(is);
    if (u->core.shutdown_requested || u->state == U_CLOSED)
        return;
    u->core.shutdown_requested = true;
    if (!u->shead)
        end(u, SOCKET_SHUTDOWN_NORMAL); /* else once the queued datagrams are out */
}

static void udp_set_qos(ISocket *is, qostraffictype_t type)
{
    struct rs_udp *u = U(is);
    if ((unsigned)type > QOS_VOICE)
        return;
    u->qos = (int)type;
    rs_fd_set_qos(u->fd, u->qos);
}

static void udp_destroy(ISocket *is)
{
    struct rs_udp *u = U(is);
    rs_core_delete(&u->core);
    u->state = U_CLOSED;
    release_fd(u);
    rs_task_cancel(&u->flush_task);
    rs_core_unref(&u->core);
}

static const struct rs_socket_ops udp_ops = {
    .name = "udp",
    .connect = udp_connect,
    .bind = udp_bind,
    .get_local_address = udp_get_local_address,
    .listen = NULL,
    .accept = NULL,
    .shutdown = udp_shutdown,
    .send = udp_send,
    .send_to = udp_send_to,
    .recv = udp_recv,
    .recv_cancel = udp_recv_cancel,
    .set_qos = udp_set_qos,
    .destroy = udp_destroy,
};

static const struct rs_core_type udp_core_type = {
    .deliver_listen = NULL,
    .canceled_ready = canceled_ready,
    .free = udp_free,
};

ISocket *rs_udp_create_socket(IIoMux *iomux, USocket *user, IInstanceLog *log, bool useIPv6)
{
    struct rs_udp *u = calloc(1, sizeof(*u));
    if (!u)
        rs_fatal("ISocketProvider_CreateSocket: out of memory");
    rs_core_init(&u->core, &udp_core_type, &udp_ops, iomux, user, log, LOG_UDP);
    u->fd = -1;
    u->v6 = useIPv6;
    u->qos = -1;
    rs_task_init(&u->flush_task, flush_task_run);
    return &u->core.base;
}

/* The layer over UDP sockets (DTLS), when one registered itself. */
static const struct rs_udp_layer *udp_layer;

void rs_udp_register_layer(const struct rs_udp_layer *layer)
{
    udp_layer = layer;
}

static ISocket *udp_provider_create_socket(ISocketProvider *p, IIoMux *iomux, USocket *user,
                                           IInstanceLog *log, bool useIPv6, ISocketContext *ctx)
{
    (void)p;
    /* only the layer's ISocketContext_EnableDTLS sets dtls: then the layer is registered */
    if (ctx && ctx->dtls)
        return udp_layer->create_socket(iomux, user, log, useIPv6, ctx);
    return rs_udp_create_socket(iomux, user, log, useIPv6);
}

static void udp_provider_init_context(ISocketContext *ctx)
{
    if (udp_layer)
        udp_layer->init_context(ctx);
}

static const struct rs_provider_ops udp_provider_ops = {
    .create_socket = udp_provider_create_socket,
    .init_context = udp_provider_init_context,
    .destroy = rs_provider_free,
};

ISocketProvider *CreateUDPSocketProvider(void)
{
    return rs_provider_new(&udp_provider_ops);
}
