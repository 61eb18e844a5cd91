/* Stream core for TCP and local sockets.
 *
 * Completion handlers only change state and queue events; every application callback
 * leaves from the socket core's delivery (core.c), which runs from the loop's deferred
 * queue. So no callback runs inside an API call, and a socket deleted from inside a
 * callback is never touched again: it lives until the application has deleted it and
 * the last in-flight operation has completed.
 *
 * Full receives (MSG_WAITALL) and bulk streams go straight into the caller's buffer.
 * Partial receives use one multishot receive into the loop's buffer pool that stays
 * armed across Recv calls (no SQE and no poll arming per message); what arrives while
 * no Recv is out waits in the stash, and an end of stream read ahead waits behind it,
 * so the application sees the data, then the end, exactly as without read-ahead.
 * Sends are copied into 16 KiB segments that coalesce the sends of one loop round;
 * a send larger than a segment's room continues in the next one, and up to
 * RS_SEND_IOV queued segments go out in one SEND (sendmsg). Large sends first try to
 * go straight out without a copy. */
#include <errno.h>
#include <linux/tls.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core.h"
#include "log_internal.h"
#include "sockopt.h"
#include "stream.h"

#define RS_SEG_SIZE        16384 /* copy segment; the sends of a round coalesce here */
#define RS_SEG_SPARES      64    /* drained segments each loop keeps for reuse */
#define RS_DIRECT_SEND_MIN 65536 /* from here a send first tries to go straight out */
#define RS_ZC_MIN          65536 /* zero-copy only pays for large payloads (perf/results) */
#define RS_ACCEPT_RETRY_MS 100   /* back-off when accept runs out of descriptors */
#define RS_SEND_IOV        16    /* segments per SEND */
#define RS_READAHEAD_MAX   65536 /* bytes read ahead for an application not receiving */
#define RS_BULK_FROM       16384 /* an arrival this large: receive into the caller's buffer */
#define RS_BULK_CALM       8     /* ... until this many direct receives in a row were shorter */

enum rs_stream_state { ST_IDLE, ST_CONNECTING, ST_CONNECTED, ST_LISTENING, ST_CLOSED };

#ifndef SOL_TLS
#define SOL_TLS 282
#endif

/* Receiving on a kernel TLS socket (rs_stream_caps.ktls_rx): each receive is a recvmsg whose
 * control message names the record type; records other than application data go to fn. */
struct ktls_rx {
    rs_stream_record_fn fn;
    void *arg;
    struct msghdr msg;
    struct iovec iov;
    union {
        struct cmsghdr align;
        char bytes[CMSG_SPACE(sizeof(uint8_t))];
    } cmsg;
};

struct sendv {
    struct msghdr msg;
    struct iovec iov[RS_SEND_IOV];
};

/* Connection failures (refused, reset, invalid address) are logged under the type's
 * flag; running out of resources (descriptors, accept failures) always is. */

struct seg {
    struct seg *next;
    const uint8_t *data;
    size_t len, off;
    size_t cap;       /* > 0: the bytes are ours, in bytes[], and more may be appended */
    uint32_t results; /* SendResults owed once the segment is released */
    bool zc;          /* goes out with SEND_ZC */
    uint64_t zc_mark; /* zero-copy notifications to await before release */
    uint8_t bytes[];
};

struct rs_stream {
    struct rs_core core; /* lifetime and event delivery */
    const struct rs_stream_type *type;
    int fd;
    enum rs_stream_state state;
    bool v6;
    bool zc_ok;
    int qos; /* -1: not set */
    struct rs_sockaddr peer;

    struct rs_op connect_op, accept_op, recv_op, send_op;

    /* receive (the caller's buffer is the core's rbuf) */
    bool rop_inflight, rop_canceled;
    uint8_t *rop_dst;
    uint8_t *stash; /* bytes received ahead of the application's Recv: served first */
    size_t stash_len, stash_off, stash_cap;
    struct rs_op ms_op;         /* the multishot receive into the loop's pool */
    bool ms_armed;              /* until its last completion has come */
    bool ms_stopping;           /* canceled, its last completions to come */
    bool ms_off;                /* no multishot: kernel TLS may take over (caps.readahead) */
    bool bulk;                  /* large arrivals: receive straight into the caller's buffer */
    uint8_t calm;               /* bulk: direct receives in a row shorter than RS_BULK_FROM */
    bool rd_ended;              /* the end of the stream was read ahead of the stash's bytes */
    bool rd_reached;            /* a Recv reached it: the socket ends once its sends are out */
    shutdownreason_t rd_reason; /* how it ends once the application gets there */
    struct ktls_rx *ktls;       /* kernel TLS receive, NULL on a plain socket */

    /* send: shead..scur fully sent (awaiting release), scur.. still to send */
    struct seg *shead, *scur, *stail;
    bool sop_inflight;
    struct sendv *sendv; /* a SEND of several segments; allocated by the first one, so a
                            connection that never sends much (most idle ones) has none */
    uint64_t zc_issued, zc_done;
    struct rs_task flush_task;

    /* listener */
    int *accepted;
    size_t accepted_len, accepted_cap;
    bool accept_armed, accept_starved;
    ITimer *accept_retry;
    int offered_fd;
    bool offered_taken;
    const struct rs_sockaddr *offered_peer; /* its peer (asked once), while offered */
};

#define S(isock)        ((struct rs_stream *)(isock))
#define LOG(s, ...)     IInstanceLog_Log((s)->core.base.log, (s)->type->log_flag, __VA_ARGS__)
#define LOG_ERR(s, ...) rs_log_error((s)->core.base.log, (s)->type->log_flag, __VA_ARGS__)
#define NAME(s)         ((s)->core.base.ops->name)

static void flush_task_run(struct rs_task *t);
static const struct rs_core_type stream_core_type;
static void connect_complete(struct rs_op *op, int res, unsigned flags);
static void ms_complete(struct rs_op *op, int res, unsigned flags);
static void recv_start(struct rs_stream *s);
static void ms_stop(struct rs_stream *s);
static void maybe_finish_shutdown(struct rs_stream *s);
static void accept_complete(struct rs_op *op, int res, unsigned flags);
static void recv_complete(struct rs_op *op, int res, unsigned flags);
static void send_complete(struct rs_op *op, int res, unsigned flags);
static void accept_arm(struct rs_stream *s);

/* ---- segments ------------------------------------------------------------------------ */

static struct seg *seg_new_copy(IIoMux *m)
{
    struct seg *g;
    if (m->spare_segs) {
        g = (struct seg *)m->spare_segs;
        m->spare_segs = m->spare_segs->next;
        m->spare_segs_len--;
    } else {
        g = malloc(sizeof(*g) + RS_SEG_SIZE);
        if (!g)
            rs_fatal("ISocket_Send: out of memory");
    }
    memset(g, 0, sizeof(*g));
    g->cap = RS_SEG_SIZE;
    g->data = g->bytes;
    return g;
}

static void seg_free(IIoMux *m, struct seg *g)
{
    if (g->cap == RS_SEG_SIZE && m->spare_segs_len < RS_SEG_SPARES) {
        struct rs_spare *b = (struct rs_spare *)g;
        b->next = m->spare_segs;
        m->spare_segs = b;
        m->spare_segs_len++;
        return;
    }
    free(g);
}

static void drop_segments(struct rs_stream *s)
{
    while (s->shead) {
        struct seg *g = s->shead;
        s->shead = g->next;
        seg_free(s->core.base.mux, g);
    }
    s->scur = s->stail = NULL;
}

/* ---- lifetime ------------------------------------------------------------------------ */

static void close_accepted(struct rs_stream *s)
{
    for (size_t i = 0; i < s->accepted_len; i++)
        close(s->accepted[i]);
    s->accepted_len = 0;
}

static void stream_free(struct rs_core *c)
{
    struct rs_stream *s = (struct rs_stream *)c;
    free(s->stash);
    free(s->ktls);
    free(s->accepted);
    free(s->sendv);
    free(s);
}

/* Releases the kernel's hold on everything of ours and closes the descriptor.
 * rs_io_cancel_fd returns only when no operation can touch our buffers anymore. */
static void release_fd(struct rs_stream *s)
{
    if (s->fd >= 0) {
        if (s->core.inflight)
            rs_io_cancel_fd(s->core.base.mux->io, s->fd);
        if (s->zc_issued != s->zc_done) {
            /* Zero-copy data still queued in the socket points at the caller's pages:
             * drop it (the peer sees a reset) so nothing is read from them after this. */
            struct sockaddr unspec = {.sa_family = AF_UNSPEC};
            connect(s->fd, &unspec, sizeof(unspec));
        }
        rs_io_close(s->core.base.mux->io, s->fd);
        s->fd = -1;
    }
    drop_segments(s);
    close_accepted(s);
    if (s->accept_retry)
        ITimer_Cancel(s->accept_retry);
}

/* The connection ends: close now, tell the application from the loop. */
static void end(struct rs_stream *s, shutdownreason_t reason)
{
    if (s->state == ST_CLOSED)
        return;
    s->state = ST_CLOSED;
    release_fd(s);
    LOG(s, "%s %p closed: %s", NAME(s), (void *)s, SocketShutdownReasonToStr(reason));
    rs_core_close_event(&s->core, reason);
}

static shutdownreason_t reason_for_io_error(int err)
{
    (void)err; /* ECONNRESET, EPIPE, ETIMEDOUT, EHOSTUNREACH...: the connection is gone */
    return SOCKET_LOST;
}

static shutdownreason_t reason_for_connect_error(int err)
{
    switch (err) {
    case ECONNREFUSED:
        return SOCKET_CONNECT_REJECTED;
    case EADDRINUSE:
        return SOCKET_ADDR_IN_USE;
    default: /* ETIMEDOUT, ENETUNREACH, EHOSTUNREACH, EADDRNOTAVAIL, ... */
        return SOCKET_CONNECT_FAILED;
    }
}

static struct rs_stream *stream_new(const struct rs_stream_type *type, IIoMux *m, USocket *user,
                                    IInstanceLog *log, bool v6)
{
    struct rs_stream *s = calloc(1, sizeof(*s));
    if (!s)
        rs_fatal("ISocketProvider_CreateSocket: out of memory");
    rs_core_init(&s->core, &stream_core_type, type->ops, m, user, log, type->log_flag);
    s->type = type;
    s->fd = -1;
    s->v6 = v6;
    s->qos = -1;
    s->offered_fd = -1;
    s->connect_op.complete = connect_complete;
    s->accept_op.complete = accept_complete;
    s->recv_op.complete = recv_complete;
    s->ms_op.complete = ms_complete;
    /* the first receive goes straight into the buffer: a short one starts multishot, a
     * bulk stream never copies */
    s->bulk = true;
    s->calm = RS_BULK_CALM - 1;
    s->send_op.complete = send_complete;
    rs_task_init(&s->flush_task, flush_task_run);
    return s;
}

ISocket *rs_stream_create(const struct rs_stream_type *type, IIoMux *m, USocket *user,
                          IInstanceLog *log, bool useIPv6)
{
    return &stream_new(type, m, user, log, useIPv6)->core.base;
}

/* ---- what a layer over the stream may do (rs_stream_caps) ------------------------------ */

static int caps_fd(const ISocket *is)
{
    return S(is)->fd;
}

static void caps_ktls_tx(ISocket *is)
{
    S(is)->zc_ok = false; /* the kernel encrypts into its own buffers anyway */
}

static void caps_ktls_rx(ISocket *is, rs_stream_record_fn fn, void *arg)
{
    struct rs_stream *s = S(is);
    if (!s->ktls) {
        s->ktls = calloc(1, sizeof(*s->ktls));
        if (!s->ktls)
            rs_fatal("kernel TLS: out of memory");
    }
    s->ktls->fn = fn;
    s->ktls->arg = arg;
}

static bool caps_peer_ip(const ISocket *is, IPaddr *addr)
{
    const struct sockaddr *sa = &S(is)->peer.u.sa;
    uint16_t port;
    if (sa->sa_family != AF_INET && sa->sa_family != AF_INET6)
        return false;
    rs_addr_to_ipaddr(sa, addr, &port);
    return true;
}

static void caps_readahead(ISocket *is, bool on)
{
    struct rs_stream *s = S(is);
    s->ms_off = !on;
    if (!on)
        ms_stop(s);
}

static bool caps_read_ahead(const ISocket *is)
{
    const struct rs_stream *s = S(is);
    return s->ms_armed || s->stash_off < s->stash_len;
}

static bool caps_receiving(const ISocket *is)
{
    return S(is)->core.rbuf != NULL;
}

static const struct rs_stream_caps tcp_caps = {
    .fd = caps_fd,
    .peer_ip = caps_peer_ip,
    .receiving = caps_receiving,
    .readahead = caps_readahead,
    .read_ahead = caps_read_ahead,
    .ktls_tx = caps_ktls_tx,
    .ktls_rx = caps_ktls_rx,
};

/* The kernel has no TLS for local sockets. */
static const struct rs_stream_caps local_caps = {
    .fd = caps_fd,
    .peer_ip = caps_peer_ip,
    .receiving = caps_receiving,
    .readahead = caps_readahead,
    .read_ahead = caps_read_ahead,
};

static void stream_set_qos(ISocket *is, qostraffictype_t type)
{
    struct rs_stream *s = S(is);
    if ((unsigned)type > QOS_VOICE)
        return;
    s->qos = (int)type;
    rs_fd_set_qos(s->fd, s->qos);
}

static int open_fd(struct rs_stream *s, int family, bool listener)
{
    int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return errno;
    s->fd = fd;
    int err = s->type->configure ? s->type->configure(s, fd, listener) : 0;
    rs_fd_set_qos(fd, s->qos);
    return err;
}

/* ---- the hooks the socket core calls while delivering events --------------------------- */

static void offer_connection(struct rs_stream *s, int fd)
{
    struct rs_sockaddr peer;
    char addr[108] = "";
    uint16_t port = 0;
    peer.len = sizeof(peer.u);
    if (getpeername(fd, &peer.u.sa, &peer.len) == 0)
        s->type->format(&peer.u.sa, peer.len, addr, sizeof(addr), &port);
    else
        memset(&peer, 0, sizeof(peer));
    LOG(s, "%s %p: connection from %s:%u", NAME(s), (void *)s, addr, port);
    s->offered_fd = fd;
    s->offered_peer = &peer;
    s->offered_taken = false;
    rs_cb_listen_result(&s->core.base, addr, port);
    s->offered_fd = -1;
    s->offered_peer = NULL;
    if (!s->offered_taken) {
        LOG(s, "%s %p: connection from %s:%u rejected", NAME(s), (void *)s, addr, port);
        close(fd);
    }
}

static void deliver_listen(struct rs_core *c)
{
    struct rs_stream *s = (struct rs_stream *)c;
    if (s->accepted_len == 0 || s->state != ST_LISTENING) {
        c->pending &= ~RS_EV_LISTEN;
        return;
    }
    int fd = s->accepted[0];
    memmove(s->accepted, s->accepted + 1, --s->accepted_len * sizeof(int));
    offer_connection(s, fd);
}

static bool canceled_ready(struct rs_core *c)
{
    /* A canceled receive still in the kernel may yet put bytes in its buffer: the buffer
     * goes back only after its completion moved those bytes to the stash. */
    struct rs_stream *s = (struct rs_stream *)c;
    return !(s->rop_inflight && s->rop_canceled && s->state != ST_CLOSED);
}

static const struct rs_core_type stream_core_type = {
    .deliver_listen = deliver_listen,
    .canceled_ready = canceled_ready,
    .free = stream_free,
};

/* ---- receive --------------------------------------------------------------------------- */

/* Puts bytes into the stash ahead of (front) or behind what it holds. */
static void stash_insert(struct rs_stream *s, const uint8_t *data, size_t n, bool front)
{
    if (n == 0)
        return;
    size_t rest = s->stash_len - s->stash_off;
    uint8_t *b = malloc(n + rest);
    if (!b)
        rs_fatal("ISocket_RecvCancel: out of memory");
    memcpy(front ? b : b + rest, data, n);
    if (rest)
        memcpy(front ? b + n : b, s->stash + s->stash_off, rest);
    free(s->stash);
    s->stash = b;
    s->stash_len = s->stash_cap = n + rest;
    s->stash_off = 0;
}

/* Appends bytes read ahead, into the room the stash has or a larger one. */
static void stash_append(struct rs_stream *s, const uint8_t *data, size_t n)
{
    if (s->stash_cap - s->stash_len < n) {
        size_t rest = s->stash_len - s->stash_off;
        size_t cap = 2 * (rest + n) < 4096 ? 4096 : 2 * (rest + n);
        uint8_t *b = malloc(cap);
        if (!b)
            rs_fatal("ISocket_Recv: out of memory");
        if (rest)
            memcpy(b, s->stash + s->stash_off, rest);
        free(s->stash);
        s->stash = b;
        s->stash_len = rest;
        s->stash_off = 0;
        s->stash_cap = cap;
    }
    memcpy(s->stash + s->stash_len, data, n);
    s->stash_len += n;
}

static void log_traffic(struct rs_stream *s, const char *dir, const void *data, size_t n)
{
    rs_log_data(s->core.base.log, s->type->log_flag, data, n, "%s %p %s %zu bytes", NAME(s),
                (void *)s, dir, n);
}

/* Small partial receives (request-response traffic) gain from a receive that stays
 * armed; full receives and bulk streams lose a copy with it. */
static bool multishot_fits(struct rs_stream *s)
{
    IIoMux *m = s->core.base.mux;
    return s->core.rpartial && !s->bulk && !s->ms_off && !s->ktls && !m->settings.tcp_single_shot &&
           rs_mux_recv_pool(m);
}

static void ms_arm(struct rs_stream *s)
{
    s->ms_armed = true;
    rs_core_op_begin(&s->core);
    rs_io_recv_multishot(s->core.base.mux->io, &s->ms_op, s->fd,
                         rs_mux_recv_pool(s->core.base.mux));
}

/* Stops the multishot receive; its last completions still bring data, in order. */
static void ms_stop(struct rs_stream *s)
{
    if (s->ms_armed && !s->ms_stopping) {
        s->ms_stopping = true;
        rs_io_cancel_op(s->core.base.mux->io, &s->ms_op, s->fd);
    }
}

/* Bytes from the multishot receive: into the caller's buffer where one is waiting and
 * nothing is ahead of them, else read ahead into the stash. */
static void arrived(struct rs_stream *s, const uint8_t *data, size_t n)
{
    log_traffic(s, "received", data, n);
    s->core.base.stats.bytesReceived += (uint64_t)n;
    bool large = n >= RS_BULK_FROM;
    if (s->core.rbuf && s->stash_off == s->stash_len && !(s->core.pending & RS_EV_RECV_DONE)) {
        size_t m = s->core.rlen - s->core.rfill < n ? s->core.rlen - s->core.rfill : n;
        memcpy(s->core.rbuf + s->core.rfill, data, m);
        s->core.rfill += m;
        data += m;
        n -= m;
        if (s->core.rpartial || s->core.rfill == s->core.rlen)
            rs_core_event(&s->core, RS_EV_RECV_DONE);
    }
    if (n > 0)
        stash_append(s, data, n);
    if (large) { /* a copy this size costs more than the receive it saves */
        s->bulk = true;
        s->calm = 0;
    }
    if (s->bulk || s->stash_len - s->stash_off > RS_READAHEAD_MAX)
        ms_stop(s); /* a Recv that finds the stash empty starts receiving again */
}

/* The end of the stream (or an error) came through the multishot receive: where the
 * application waits with nothing left before it, the socket ends once its sends are out;
 * else the end waits for a Recv to reach it. */
static void read_end(struct rs_stream *s, shutdownreason_t reason)
{
    s->rd_ended = true;
    s->rd_reason = reason;
    if (s->core.rbuf && s->stash_off == s->stash_len && !(s->core.pending & RS_EV_RECV_DONE)) {
        s->rd_reached = true;
        maybe_finish_shutdown(s);
    }
}

static void ms_complete(struct rs_op *op, int res, unsigned flags)
{
    struct rs_stream *s = rs_container_of(op, struct rs_stream, ms_op);
    struct rs_bufpool *pool = rs_mux_recv_pool(s->core.base.mux);
    bool more = flags & RS_CQE_MORE;
    bool live = s->state == ST_CONNECTED && !s->core.deleted && !s->rd_ended;
    if (!more)
        s->ms_armed = s->ms_stopping = false;
    if (flags & RS_CQE_BUFFER) {
        unsigned id = RS_CQE_BUFFER_ID(flags);
        if (live && res > 0)
            arrived(s, rs_bufpool_buf(pool, id), (size_t)res);
        rs_bufpool_recycle(pool, id);
    } else if (live && res == 0) {
        read_end(s, SOCKET_SHUTDOWN_BY_PEER);
    } else if (live && res < 0 && res != -ENOBUFS && res != -ECANCELED && res != -EINTR &&
               res != -EAGAIN) {
        LOG(s, "%s %p: receive failed: %s", NAME(s), (void *)s, strerror(-res));
        read_end(s, reason_for_io_error(-res));
    }
    if (!more) {
        /* it ran dry (ENOBUFS), was stopped, or ended: a waiting Recv goes on */
        if (s->state == ST_CONNECTED && !s->core.deleted && !(s->core.pending & RS_EV_RECV_DONE))
            recv_start(s);
        rs_core_op_end(&s->core);
    }
}

static void recv_start(struct rs_stream *s)
{
    if (s->rop_inflight || !s->core.rbuf)
        return; /* a canceled receive's completion restarts us */
    if (s->core.rlen == 0) {
        /* complete as it is (and the kernel would report a zero-byte receive as EOF) */
        rs_core_event(&s->core, RS_EV_RECV_DONE);
        return;
    }
    if (s->stash_off < s->stash_len) {
        size_t n = s->stash_len - s->stash_off;
        if (n > s->core.rlen - s->core.rfill)
            n = s->core.rlen - s->core.rfill;
        memcpy(s->core.rbuf + s->core.rfill, s->stash + s->stash_off, n);
        s->stash_off += n;
        s->core.rfill += n;
        if (s->stash_off == s->stash_len) {
            free(s->stash);
            s->stash = NULL;
            s->stash_len = s->stash_off = s->stash_cap = 0;
        }
        if (s->core.rpartial || s->core.rfill == s->core.rlen) {
            rs_core_event(&s->core, RS_EV_RECV_DONE);
            return;
        }
    }
    if (s->rd_ended) { /* the application got everything before the end */
        s->rd_reached = true;
        maybe_finish_shutdown(s);
        return;
    }
    if (s->ms_armed)
        return; /* what arrives comes from the multishot receive */
    if (multishot_fits(s)) {
        ms_arm(s);
        return;
    }
    s->rop_inflight = true;
    s->rop_canceled = false;
    s->rop_dst = s->core.rbuf + s->core.rfill;
    rs_core_op_begin(&s->core);
    int flags = s->core.rpartial ? 0 : MSG_WAITALL;
    struct ktls_rx *k = s->ktls;
    if (k) {
        k->iov = (struct iovec){s->rop_dst, s->core.rlen - s->core.rfill};
        k->msg = (struct msghdr){.msg_iov = &k->iov,
                                 .msg_iovlen = 1,
                                 .msg_control = k->cmsg.bytes,
                                 .msg_controllen = sizeof(k->cmsg.bytes)};
        rs_io_recvmsg(s->core.base.mux->io, &s->recv_op, s->fd, &k->msg, flags);
        return;
    }
    rs_io_recv(s->core.base.mux->io, &s->recv_op, s->fd, s->rop_dst, s->core.rlen - s->core.rfill,
               flags);
}

/* A kernel TLS receive that brought a record other than application data: the bytes go
 * to the record hook, not to the caller. */
static bool ktls_control_record(struct rs_stream *s, int res)
{
    struct ktls_rx *k = s->ktls;
    if (!k || res <= 0)
        return false;
    uint8_t type = 23; /* application data, also when the kernel adds no control message */
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&k->msg); c; c = CMSG_NXTHDR(&k->msg, c))
        if (c->cmsg_level == SOL_TLS && c->cmsg_type == TLS_GET_RECORD_TYPE)
            type = *CMSG_DATA(c);
    if (type == 23)
        return false;
    k->fn(k->arg, type, s->rop_dst, (size_t)res);
    return true;
}

static void recv_complete(struct rs_op *op, int res, unsigned flags)
{
    (void)flags;
    struct rs_stream *s = rs_container_of(op, struct rs_stream, recv_op);
    s->rop_inflight = false;
    if (s->state == ST_CLOSED || s->core.deleted) {
        rs_core_op_end(&s->core);
        return;
    }
    if (ktls_control_record(s, res)) {
        if (s->state != ST_CLOSED && !s->core.deleted) {
            if (s->rop_canceled)
                rs_core_event(&s->core, RS_EV_RECV_CANCELED);
            recv_start(s);
        }
    } else if (s->rop_canceled) {
        if (res > 0) {
            s->core.base.stats.bytesReceived += (uint64_t)res;
            stash_insert(s, s->rop_dst, (size_t)res, false);
        }
        rs_core_event(&s->core, RS_EV_RECV_CANCELED);
        recv_start(s);
    } else if (res > 0) {
        log_traffic(s, "received", s->rop_dst, (size_t)res);
        if (s->bulk && s->core.rpartial) /* calmed down: multishot again */
            s->calm = (size_t)res < RS_BULK_FROM ? s->calm + 1 : 0;
        if (s->calm >= RS_BULK_CALM)
            s->bulk = false;
        s->core.rfill += (size_t)res;
        s->core.base.stats.bytesReceived += (uint64_t)res;
        if (s->core.rpartial || s->core.rfill == s->core.rlen) {
            rs_core_event(&s->core, RS_EV_RECV_DONE);
        } else {
            recv_start(s);
        }
    } else if (res == 0) {
        end(s, SOCKET_SHUTDOWN_BY_PEER);
    } else if (res == -EINTR || res == -EAGAIN) {
        recv_start(s);
    } else {
        if (s->ktls && (res == -EBADMSG || res == -EMSGSIZE || res == -EINVAL))
            s->ktls->fn(s->ktls->arg, 0, NULL, (size_t)-res);
        if (s->state != ST_CLOSED && !s->core.deleted) {
            LOG(s, "%s %p: receive failed: %s", NAME(s), (void *)s, strerror(-res));
            end(s, reason_for_io_error(-res));
        }
    }
    rs_core_op_end(&s->core);
}

static void stream_recv(ISocket *is)
{
    struct rs_stream *s = S(is);
    if (s->state == ST_CONNECTED)
        recv_start(s);
    /* connecting: starts once connected; closed: returned by the close event */
}

static void stream_recv_cancel(ISocket *is)
{
    struct rs_stream *s = S(is);
    if (s->rop_inflight && !s->rop_canceled) {
        rs_io_cancel_op(s->core.base.mux->io, &s->recv_op, s->fd);
        s->rop_canceled = true;
    }
    /* What this buffer already holds goes ahead of anything stashed. */
    stash_insert(s, s->core.rbuf, s->core.rfill, true);
}

/* ---- send ------------------------------------------------------------------------------ */

/* Moves fully sent segments whose zero-copy notifications arrived to the results. */
static void release_sent(struct rs_stream *s)
{
    while (s->shead && s->shead != s->scur && s->zc_done >= s->shead->zc_mark) {
        struct seg *g = s->shead;
        s->shead = g->next;
        if (s->stail == g)
            s->stail = NULL;
        s->core.ready_results += g->results;
        seg_free(s->core.base.mux, g);
    }
    if (s->core.ready_results)
        rs_core_event(&s->core, RS_EV_SENDS);
}

/* Everything sent: a Shutdown completes; so does an end of stream the application's
 * receives reached (read ahead, it waited for the sends made before, as a receive
 * issued with them would have seen the end only after they went out). */
static void maybe_finish_shutdown(struct rs_stream *s)
{
    if (s->state != ST_CONNECTED || s->shead || s->sop_inflight)
        return;
    if (s->core.shutdown_requested)
        end(s, SOCKET_SHUTDOWN_NORMAL);
    else if (s->rd_reached)
        end(s, s->rd_reason);
}

/* The unsent bytes of g and the segments queued behind it (up to a zero-copy one, at
 * most RS_SEND_IOV): how many, and into iov unless it is NULL. */
static size_t gather(struct seg *g, struct iovec *iov)
{
    size_t n = 0;
    for (struct seg *q = g; q && !q->zc && n < RS_SEND_IOV; q = q->next) {
        if (q->off == q->len)
            continue;
        if (iov)
            iov[n] = (struct iovec){(void *)(q->data + q->off), q->len - q->off};
        n++;
    }
    return n;
}

static void send_next(struct rs_stream *s)
{
    if (s->state != ST_CONNECTED || s->sop_inflight)
        return;
    while (s->scur && s->scur->off == s->scur->len) /* zero-length sends */
        s->scur = s->scur->next;
    release_sent(s);
    struct seg *g = s->scur;
    if (!g) {
        maybe_finish_shutdown(s);
        return;
    }
    s->sop_inflight = true;
    rs_core_op_begin(&s->core);
    if (g->zc) {
        s->zc_issued++;
        s->core.base.stats.zeroCopySends++;
        rs_io_send_zc(s->core.base.mux->io, &s->send_op, s->fd, g->data + g->off, g->len - g->off,
                      0);
        return;
    }
    /* The segments queued behind it (up to a zero-copy one) go along: one system call. */
    size_t n = gather(g, s->sendv ? s->sendv->iov : NULL);
    if (n == 1) {
        rs_io_send(s->core.base.mux->io, &s->send_op, s->fd, g->data + g->off, g->len - g->off, 0);
        return;
    }
    if (!s->sendv) { /* the first SEND of several: gathered again, into the new vector */
        if (!(s->sendv = malloc(sizeof(*s->sendv))))
            rs_fatal("ISocket_Send: out of memory");
        gather(g, s->sendv->iov);
    }
    s->sendv->msg = (struct msghdr){.msg_iov = s->sendv->iov, .msg_iovlen = n};
    rs_io_sendmsg(s->core.base.mux->io, &s->send_op, s->fd, &s->sendv->msg, 0);
}

static void flush_task_run(struct rs_task *t)
{
    send_next(rs_container_of(t, struct rs_stream, flush_task));
}

static void send_complete(struct rs_op *op, int res, unsigned flags)
{
    struct rs_stream *s = rs_container_of(op, struct rs_stream, send_op);
    if (flags & RS_CQE_NOTIF) {
        s->zc_done++;
        if (s->state != ST_CLOSED && !s->core.deleted) {
            release_sent(s);
            maybe_finish_shutdown(s);
        }
        rs_core_op_end(&s->core);
        return;
    }
    bool notif_follows = flags & RS_CQE_MORE;
    struct seg *g = s->scur;
    if (g && g->zc && !notif_follows)
        s->zc_done++; /* no notification will come for this one */
    s->sop_inflight = false;
    if (s->state == ST_CLOSED || s->core.deleted) {
        /* nothing */
    } else if (res >= 0) {
        s->core.base.stats.bytesSent += (uint64_t)res;
        /* res may span several segments (sendmsg) */
        for (size_t left = (size_t)res; g && (left > 0 || g->off == g->len); g = s->scur) {
            size_t n = g->len - g->off < left ? g->len - g->off : left;
            log_traffic(s, "sent", g->data + g->off, n);
            g->off += n;
            left -= n;
            if (g->off < g->len)
                break;
            if (g->zc)
                g->zc_mark = s->zc_issued;
            s->scur = g->next;
        }
        send_next(s);
    } else if (res == -EINTR || res == -EAGAIN || res == -ENOBUFS) {
        send_next(s);
    } else {
        LOG(s, "%s %p: send failed: %s", NAME(s), (void *)s, strerror(-res));
        end(s, reason_for_io_error(-res));
    }
    if (!notif_follows)
        rs_core_op_end(&s->core);
}

static void push_segment(struct rs_stream *s, struct seg *g)
{
    if (s->stail)
        s->stail->next = g;
    else
        s->shead = g;
    s->stail = g;
    if (!s->scur)
        s->scur = g;
}

static void append_send(struct rs_stream *s, const uint8_t *buf, size_t len, bool nocopy)
{
    if (nocopy) {
        struct seg *g = calloc(1, sizeof(*g));
        if (!g)
            rs_fatal("ISocket_SendNoCopy: out of memory");
        g->data = buf;
        g->zc = s->zc_ok && len >= RS_ZC_MIN;
        g->len = len;
        g->results = 1;
        push_segment(s, g);
        return;
    }
    /* Fill the last segment's room, then cached segments; the SendResult is owed when
     * the segment holding the last byte is released. */
    struct seg *t = s->stail;
    do {
        if (!t || !t->cap || t->len == t->cap) {
            t = seg_new_copy(s->core.base.mux);
            push_segment(s, t);
        }
        size_t n = t->cap - t->len < len ? t->cap - t->len : len;
        memcpy(t->bytes + t->len, buf, n);
        t->len += n;
        buf += n;
        len -= n;
        if (!s->scur)
            s->scur = t;
    } while (len > 0);
    t->results++;
}

/* The loop's one send at once for this round, if it is quiet (IIoMux.quiet_send); on a
 * backend where every operation is a system call anyway, every send. */
static bool take_quiet_send(IIoMux *m)
{
    if (m->features & RS_FEAT_SYSCALL_PER_OP)
        return true;
    bool quiet = m->quiet_send;
    m->quiet_send = false;
    return quiet;
}

static void stream_send(ISocket *is, const void *buf, size_t len, bool nocopy)
{
    struct rs_stream *s = S(is);
    if (s->core.shutdown_requested || s->state == ST_CLOSED || s->core.deleted)
        return; /* ignored after Shutdown; dropped once the connection ended */
    const uint8_t *p = buf;
    if (!nocopy && s->state == ST_CONNECTED && !s->shead && !s->sop_inflight &&
        (len >= RS_DIRECT_SEND_MIN || take_quiet_send(s->core.base.mux))) {
        /* Nothing queued: what the socket buffer takes now needs no copy (and, on a quiet
         * loop, no submission whose completion costs another enter). */
        ssize_t n = send(s->fd, p, len, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n > 0) {
            log_traffic(s, "sent", p, (size_t)n);
            s->core.base.stats.bytesSent += (uint64_t)n;
            p += n;
            len -= (size_t)n;
            if (len == 0) {
                s->core.ready_results++;
                rs_core_event(&s->core, RS_EV_SENDS);
                return;
            }
        }
    }
    append_send(s, p, len, nocopy);
    if (s->state == ST_CONNECTED)
        rs_flush_later(s->core.base.mux, &s->flush_task);
}

static void stream_shutdown(ISocket *is)
{
    struct rs_stream *s = S(is);
    if (s->core.shutdown_requested || s->state == ST_CLOSED || s->core.deleted)
        return;
    s->core.shutdown_requested = true;
    switch (s->state) {
    case ST_CONNECTED:
        if (!s->shead && !s->sop_inflight)
            end(s, SOCKET_SHUTDOWN_NORMAL);
        break; /* else once the queued sends are out (send_next) */
    case ST_CONNECTING:
        if (!s->shead)
            end(s, SOCKET_SHUTDOWN_NORMAL);
        break; /* else flushed after connecting */
    default:
        end(s, SOCKET_SHUTDOWN_NORMAL);
    }
}

/* ---- connect --------------------------------------------------------------------------- */

/* Traffic to this host's own addresses is copied by the receiving kernel anyway, so
 * zero-copy would be pure cost: loopback, and a peer address equal to our own. */
static bool peer_is_local(struct rs_stream *s)
{
    if (rs_addr_is_loopback(&s->peer.u.sa))
        return true;
    struct rs_sockaddr self;
    self.len = sizeof(self.u);
    if (getsockname(s->fd, &self.u.sa, &self.len) < 0)
        return true;
    IPaddr a, b;
    uint16_t pa, pb;
    rs_addr_to_ipaddr(&self.u.sa, &a, &pa);
    rs_addr_to_ipaddr(&s->peer.u.sa, &b, &pb);
    return memcmp(&a, &b, sizeof(a)) == 0;
}

static void became_connected(struct rs_stream *s)
{
    s->state = ST_CONNECTED;
    s->zc_ok = (s->core.base.mux->features & RS_FEAT_SEND_ZC) && !peer_is_local(s);
    for (struct seg *g = s->scur; g; g = g->next)
        if (g->cap == 0 && g->len >= RS_ZC_MIN) /* no-copy sends queued while connecting */
            g->zc = s->zc_ok;
    recv_start(s);
    send_next(s);
}

static void connect_complete(struct rs_op *op, int res, unsigned flags)
{
    (void)flags;
    struct rs_stream *s = rs_container_of(op, struct rs_stream, connect_op);
    if (s->state == ST_CONNECTING && !s->core.deleted) {
        if (res == 0) {
            LOG(s, "%s %p connected", NAME(s), (void *)s);
            rs_core_event(&s->core, RS_EV_CONNECTED);
            became_connected(s);
        } else {
            char addr[108];
            uint16_t port;
            s->type->format(&s->peer.u.sa, s->peer.len, addr, sizeof(addr), &port);
            LOG(s, "%s %p: connect to %s:%u failed: %s", NAME(s), (void *)s, addr, port,
                strerror(-res));
            end(s, reason_for_connect_error(-res));
        }
    }
    rs_core_op_end(&s->core);
}

static void stream_connect(ISocket *is, const char *address, const char *serverName)
{
    (void)serverName;
    struct rs_stream *s = S(is);
    if (!s->type->parse_connect(address, &s->peer)) {
        LOG(s, "%s %p: invalid address '%s'", is->ops->name, (void *)s,
            address ? address : "(null)");
        end(s, SOCKET_ADDRESS_INVALID);
        return;
    }
    int err = open_fd(s, s->peer.u.sa.sa_family, false);
    if (err) {
        LOG_ERR(s, "%s %p: cannot open a socket: %s", is->ops->name, (void *)s, strerror(err));
        end(s, SOCKET_OPEN_FAILED);
        return;
    }
    LOG(s, "%s %p connecting to %s", is->ops->name, (void *)s, address);
    s->state = ST_CONNECTING;
    rs_core_op_begin(&s->core);
    rs_io_connect(s->core.base.mux->io, &s->connect_op, s->fd, &s->peer.u.sa, s->peer.len);
}

/* ---- bind, listen, accept ------------------------------------------------------------------ */

static void stream_bind(ISocket *is, const char *localAddr, uint16_t localPort, bool reuse)
{
    struct rs_stream *s = S(is);
    struct rs_sockaddr local;
    if (!s->type->parse_bind(localAddr, localPort, s->v6, &local)) {
        LOG(s, "%s %p: invalid bind address '%s'", is->ops->name, (void *)s,
            localAddr ? localAddr : "(null)");
        end(s, SOCKET_ADDRESS_INVALID);
        return;
    }
    int family = local.u.sa.sa_family;
    int err = open_fd(s, family, true);
    if (err) {
        LOG_ERR(s, "%s %p: cannot open a socket: %s", is->ops->name, (void *)s, strerror(err));
        end(s, SOCKET_OPEN_FAILED);
        return;
    }
    err = s->type->before_bind ? s->type->before_bind(s, &local) : 0;
    if (!err)
        err = rs_fd_bind(s->fd, &local.u.sa, local.len, reuse);
    if (err) {
        LOG(s, "%s %p: bind failed: %s", is->ops->name, (void *)s, strerror(err));
        end(s, err == EADDRINUSE ? SOCKET_ADDR_IN_USE : SOCKET_BIND_FAILED);
        return;
    }
    if (s->type->after_bind)
        s->type->after_bind(s, &local);
    struct rs_sockaddr bound;
    bound.len = sizeof(bound.u);
    if (getsockname(s->fd, &bound.u.sa, &bound.len) < 0)
        bound = local;
    char addr[RS_ADDR_TEXT];
    uint16_t port;
    s->type->format(&bound.u.sa, bound.len, addr, sizeof(addr), &port);
    LOG(s, "%s %p bound to %s:%u", is->ops->name, (void *)s, addr, port);
    rs_core_bound(&s->core, addr, port);
}

static void accept_retry_fired(ITimer *t, void *arg)
{
    (void)t;
    struct rs_stream *s = arg;
    accept_arm(s);
}

static void accept_arm(struct rs_stream *s)
{
    if (s->state != ST_LISTENING || s->accept_armed)
        return;
    s->accept_armed = true;
    rs_core_op_begin(&s->core);
    rs_io_accept(s->core.base.mux->io, &s->accept_op, s->fd);
}

static void accept_complete(struct rs_op *op, int res, unsigned flags)
{
    struct rs_stream *s = rs_container_of(op, struct rs_stream, accept_op);
    bool more = flags & RS_CQE_MORE;
    if (!more)
        s->accept_armed = false;
    if (s->state != ST_LISTENING || s->core.deleted) {
        if (res >= 0)
            close(res);
    } else if (res >= 0) {
        s->accept_starved = false;
        if (s->accepted_len == s->accepted_cap) {
            size_t cap = s->accepted_cap ? s->accepted_cap * 2 : 8;
            int *v = realloc(s->accepted, cap * sizeof(int));
            if (!v) {
                close(res); /* the peer sees a reset; the listener carries on */
                goto out;
            }
            s->accepted = v;
            s->accepted_cap = cap;
        }
        s->accepted[s->accepted_len++] = res;
        rs_core_event(&s->core, RS_EV_LISTEN);
    } else if (res == -EMFILE || res == -ENFILE || res == -ENOBUFS || res == -ENOMEM) {
        /* Pending connections wait in the backlog until descriptors free up. */
        if (!s->accept_starved)
            LOG_ERR(s, "%s %p: accept: %s; retrying every %d ms", NAME(s), (void *)s,
                    strerror(-res), RS_ACCEPT_RETRY_MS);
        s->accept_starved = true;
        if (!more) {
            if (!s->accept_retry)
                s->accept_retry = rs_timer_create_internal(s->core.base.mux, accept_retry_fired, s);
            ITimer_Start(s->accept_retry, RS_ACCEPT_RETRY_MS);
        }
    } else if (res == -ECANCELED || res == -EINTR || res == -EAGAIN || res == -ECONNABORTED ||
               res == -EPERM || res == -EPROTO) {
        /* transient, or a connection that died in the backlog */
    } else {
        LOG_ERR(s, "%s %p: accept failed: %s", NAME(s), (void *)s, strerror(-res));
        end(s, SOCKET_ACCEPT_FAILED);
    }
out:
    if (!more) {
        if (res != -ECANCELED && !ITimer_IsRunning(s->accept_retry))
            accept_arm(s);
        rs_core_op_end(&s->core);
    }
}

static void stream_listen(ISocket *is)
{
    struct rs_stream *s = S(is);
    if (s->state != ST_IDLE || s->fd < 0)
        return; /* the bind failed; its SocketShutdown is on its way */
    if (listen(s->fd, SOMAXCONN) < 0) {
        LOG(s, "%s %p: listen failed: %s", is->ops->name, (void *)s, strerror(errno));
        end(s, SOCKET_LISTEN_FAILED);
        return;
    }
    s->state = ST_LISTENING;
    accept_arm(s);
}

static void stream_accept(ISocket *is, USocket *user)
{
    struct rs_stream *s = S(is);
    if (!user || s->offered_fd < 0)
        return; /* rejected: closed once SocketListenResult returns */
    struct rs_stream *c = stream_new(s->type, s->core.base.mux, user, s->core.base.log, s->v6);
    rs_core_accepted(&c->core);
    c->fd = s->offered_fd;
    s->offered_taken = true;
    c->peer = *s->offered_peer;
    c->qos = s->qos;
    rs_core_event(&c->core, RS_EV_ACCEPTED);
    became_connected(c);
}

/* ---- the rest ---------------------------------------------------------------------------- */

static void stream_get_local_address(ISocket *is, char *out, unsigned size, uint16_t *port)
{
    rs_fd_local_address(S(is)->fd, S(is)->type->format, out, size, port);
}

static void stream_destroy(ISocket *is)
{
    struct rs_stream *s = S(is);
    rs_core_delete(&s->core);
    s->state = ST_CLOSED;
    release_fd(s);
    rs_task_cancel(&s->flush_task);
    ITimer_Delete(s->accept_retry);
    s->accept_retry = NULL;
    rs_core_unref(&s->core);
}

/* One implementation, two names for messages. */
#define STREAM_OPS(type_name, caps)                                                                \
    {                                                                                              \
        .name = type_name, .connect = stream_connect, .bind = stream_bind,                         \
        .get_local_address = stream_get_local_address, .listen = stream_listen,                    \
        .accept = stream_accept, .shutdown = stream_shutdown, .send = stream_send,                 \
        .send_to = NULL, .recv = stream_recv, .recv_cancel = stream_recv_cancel,                   \
        .set_qos = stream_set_qos, .destroy = stream_destroy, .stream = (caps),                    \
    }

const struct rs_socket_ops rs_tcp_stream_ops = STREAM_OPS("tcp", &tcp_caps);
const struct rs_socket_ops rs_local_stream_ops = STREAM_OPS("local", &local_caps);
