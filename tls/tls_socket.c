/* TLS sockets: wolfSSL over memory I/O on top of a stream socket the TLS socket owns
 * (the "inner" socket, usually TCP). The TLS socket talks to its inner socket only
 * through the public ISocket API, as any application would: ciphertext arrives in
 * the inner socket's SocketRecvResult, leaves through ISocket_Send on it.
 *
 * wolfSSL only runs from the loop (inner callbacks and the drive task), never inside an
 * API call of the application, so handshake results reach the application the same way
 * as every other event: through the socket core. One exception is SocketListenResult,
 * which must run inside the inner listener's so that Accept can be passed on. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alpn.h"
#include "blocks.h"
#include "core.h"
#include "ktls.h"
#include "log_internal.h"
#include "tls_context.h"
#include "verify.h"

#define RS_TLS_RX_CAP               (16384 + 2048 + 5 + 256) /* the largest record, with room to spare */
#define RS_TLS_RX_IDLE              2048 /* receive buffer of a connection the peer is not sending on */
#define RS_TLS_HANDSHAKE_TIMEOUT_MS 10000 /* a peer that stalls its handshake holds nothing */

enum rs_tls_state {
    T_IDLE,      /* created */
    T_TCP,       /* waiting for the inner connect or accept */
    T_HANDSHAKE, /* wolfSSL handshake running */
    T_OPEN,      /* application data */
    T_CLOSING,   /* close_notify sent, inner socket flushing */
    T_LISTENING, /* a listener: no TLS of its own */
    T_CLOSED,
};

/* One ciphertext send on the inner socket; their SocketSendResults come in order. A
 * record wolfSSL encrypted into a pooled block goes out from that block (blk, one
 * reference held until the send is done); app: the application Sends whose
 * SocketSendResult is owed once this send is done. */
struct txent {
    void *blk;
    uint32_t app;
};

struct plain {
    struct plain *next;
    size_t len;
    uint8_t bytes[];
};

struct rs_tls {
    struct rs_core core;
    ISocket *inner;
    USocket inner_user;
    ISocketProvider *tcp;
    ISocketContext *ctx;
    WOLFSSL *ssl;
    bool server, upgrade;
    bool alpn_scanned;             /* server: read the client's ALPN list from the ClientHello */
    bool alert_flushing;           /* ended; the inner socket still sends wolfSSL's alert */
    shutdownreason_t alert_reason; /* what SocketShutdown reports once it is out */
    enum rs_tls_state state;
    int qos;
    char *server_name;
    struct rs_tls_expect expect; /* a client: the server's identity, for the verify callback */

    /* Ciphertext from the inner socket: in rx_idle while the peer sends little, in a
     * pooled block of RS_BLK_RECORD while it sends a record at a time (request and
     * response: the whole record in one receive), of RS_BLK_RX (several records per
     * receive) while data streams in. rx_next is the size the last receive asks for. */
    uint8_t *rx;
    size_t rx_off, rx_len, rx_cap, rx_next;
    bool inner_recv;   /* an inner Recv into rx is outstanding */
    bool inner_cancel; /* kernel RX: we canceled the inner Recv (else it ends: no retry) */
    uint8_t rx_idle[RS_TLS_RX_IDLE];

    uint8_t *stash; /* plaintext of a canceled receive: served first */
    size_t stash_len, stash_off;

    struct rs_queue tx;                   /* of struct txent: the inner sends in flight, in order */
    struct plain *pending, *pending_tail; /* sends made before the handshake finished */

    struct rs_task drive_task;
    ITimer *handshake_timer; /* deleted once the handshake is done: an open connection keeps
                                only what it uses */
    char *alpn;              /* the negotiated protocol; NULL: none */
    uint8_t peer_fp[32];
    bool peer_fp_valid;

    /* Kernel TLS (ISocketContext_EnableKernelTLS). wolfSSL is given no byte past the record
     * it reads (rec_bound; rec_left: what is left of that record), so the stream after its
     * last record is ours to hand to the kernel. TX goes over once the records wolfSSL
     * wrote are out (tx_wait), RX once wolfSSL has read up to a record boundary. */
    unsigned ktls; /* KTLS_TX|KTLS_RX in effect */
    bool rec_bound, ktls_tx_wait, ktls_rx_wait;
    bool ktls_close; /* Shutdown: close_notify goes once the sends before it are out */
    size_t rec_left;
    struct ktls_ctl { /* what a control record holds so far */
        uint8_t type, have, hdr[4];
        uint32_t skip;
    } ctl;
    struct ktls_alert *alert_out; /* close_notify on its way through the kernel */
};

/* close_notify sent through the kernel: an alert record, by type (TLS_SET_RECORD_TYPE). */
struct ktls_alert {
    struct rs_op op;
    struct rs_tls *t;
    struct msghdr msg;
    struct iovec iov;
    uint8_t body[2];
    union {
        struct cmsghdr align;
        char bytes[CMSG_SPACE(sizeof(uint8_t))];
    } cmsg;
};

#define T(isock)    ((struct rs_tls *)(isock))
#define LOG(t, ...) IInstanceLog_Log((t)->core.base.log, LOG_TLS, __VA_ARGS__)

static const struct rs_socket_ops tls_ops;
static const struct rs_core_type tls_core_type;
static const USocketVtbl inner_vtbl;
static void drive(struct rs_tls *t);

/* ---- lifetime -------------------------------------------------------------------------- */

static void drop_pending(struct rs_tls *t)
{
    while (t->pending) {
        struct plain *p = t->pending;
        t->pending = p->next;
        free(p);
    }
    t->pending_tail = NULL;
}

/* rx becomes buf (rx_idle or a pooled block); a block it was goes back to the pool. */
static void rx_use(struct rs_tls *t, uint8_t *buf, size_t cap)
{
    if (t->rx != t->rx_idle)
        rs_blk_free(t->rx);
    t->rx = buf;
    t->rx_cap = cap;
}

/* Deleting the inner socket ends its sends and receive: their blocks are ours again. */
static void delete_inner(struct rs_tls *t, ISocket *inner)
{
    if (t->inner == inner)
        t->inner = NULL;
    ISocket_Delete(inner);
    for (; t->tx.len > 0; rs_queue_pop(&t->tx))
        rs_blk_free(RS_QUEUE_AT(&t->tx, struct txent, 0)->blk);
    t->rx_off = t->rx_len = 0;
    rx_use(t, t->rx_idle, sizeof(t->rx_idle));
}

/* keep_inner: the inner socket is flushing an alert; its SocketShutdown deletes it. */
static void release_tls(struct rs_tls *t, bool keep_inner)
{
    if (t->inner && !keep_inner)
        delete_inner(t, t->inner);
    if (t->ssl) {
        wolfSSL_free(t->ssl);
        t->ssl = NULL;
    }
    drop_pending(t);
    for (size_t i = 0; i < t->tx.len; i++) /* closed: no SendResult is owed anymore */
        RS_QUEUE_AT(&t->tx, struct txent, i)->app = 0;
    t->inner_recv = false;
}

static void end(struct rs_tls *t, shutdownreason_t reason)
{
    if (t->state == T_CLOSED)
        return;
    /* When wolfSSL gave up, its alert is queued on the inner socket: let that flush
     * and close it (its SocketShutdown deletes it), so the peer learns why. */
    bool alert =
        (reason == SOCKET_TLS_HANDSHAKE_FAILED || reason == SOCKET_LOST) && t->inner && t->ssl;
    t->state = T_CLOSED;
    release_tls(t, alert);
    rs_task_cancel(&t->drive_task);
    ITimer_Cancel(t->handshake_timer);
    LOG(t, "tls %p closed: %s", (void *)t, SocketShutdownReasonToStr(reason));
    if (alert) {
        /* SocketShutdown waits for the alert: an application that deletes the socket
         * in that callback (most do) would otherwise drop it. */
        t->alert_flushing = true;
        t->alert_reason = reason;
        ISocket_Shutdown(t->inner);
        return;
    }
    rs_core_close_event(&t->core, reason);
}

static void tls_free(struct rs_core *c)
{
    struct rs_tls *t = (struct rs_tls *)c;
    release_tls(t, false);
    ITimer_Delete(t->handshake_timer);
    rx_use(t, t->rx_idle, sizeof(t->rx_idle));
    rs_queue_free(&t->tx);
    free(t->stash);
    free(t->server_name);
    free(t->alpn);
    free(t);
}

static void drive_task_run(struct rs_task *task)
{
    drive(rs_container_of(task, struct rs_tls, drive_task));
}

static struct rs_tls *tls_new(IIoMux *m, USocket *user, IInstanceLog *log, ISocketContext *ctx,
                              bool server)
{
    struct rs_tls *t = calloc(1, sizeof(*t));
    if (!t)
        rs_fatal("TLS socket: out of memory");
    rs_core_init(&t->core, &tls_core_type, &tls_ops, m, user, log, LOG_TLS);
    t->inner_user.vtbl = &inner_vtbl;
    t->ctx = ctx ? ctx : rs_tls_default_context();
    rs_tls_context_attach(t->ctx);
    t->server = server;
    t->qos = -1;
    t->rx = t->rx_idle;
    t->rx_cap = t->rx_next = sizeof(t->rx_idle);
    rs_task_init(&t->drive_task, drive_task_run);
    return t;
}

static struct rs_tls *of_inner(USocket *u)
{
    return rs_container_of(u, struct rs_tls, inner_user);
}

/* What the inner stream socket lets the layer do (inner_adopt checked it has it). */
static const struct rs_stream_caps *inner_caps(const struct rs_tls *t)
{
    return t->inner->ops->stream;
}

/* ---- wolfSSL memory I/O ---------------------------------------------------------------- */

static struct txent *tx_push(struct rs_tls *t)
{
    struct txent *e = RS_QUEUE_PUSH(&t->tx, struct txent, "TLS socket");
    *e = (struct txent){NULL, 0};
    return e;
}

/* An application Send is done once the inner sends made so far are. */
static void owe_send_result(struct rs_tls *t)
{
    if (t->tx.len > 0) {
        RS_QUEUE_AT(&t->tx, struct txent, t->tx.len - 1)->app++;
        return;
    }
    t->core.ready_results++;
    rs_core_event(&t->core, RS_EV_SENDS);
}

int rs_tls_io_send(WOLFSSL *ssl, char *buf, int sz, void *ctx)
{
    (void)ssl;
    struct rs_tls *t = ctx;
    if (!t->inner || t->state == T_CLOSED)
        return WOLFSSL_CBIO_ERR_CONN_CLOSE;
    if (t->ktls & KTLS_TX) {
        /* The kernel owns the sending keys: wolfSSL has nothing left to say (it would
         * only answer a KeyUpdate it read in user space, which kernel TX cannot follow). */
        IInstanceLog_Log(t->core.base.log, LOG_TLS,
                         "tls %p: wolfSSL wrote a record after the kernel took over sending",
                         (void *)t);
        return WOLFSSL_CBIO_ERR_GENERAL;
    }
    struct txent *e = tx_push(t);
    size_t cap;
    uint8_t *b = rs_blk_last_record(&cap);
    if (b && (uint8_t *)buf >= b && (uint8_t *)buf + sz <= b + cap) {
        /* wolfSSL's output buffer, a pooled block: once we return, wolfSSL frees it
         * without writing to it again (SendBuffered, ShrinkOutputBuffer), so it goes
         * out as it is, kept alive by our reference. */
        rs_blk_ref(b);
        e->blk = b;
        ISocket_SendNoCopy(t->inner, buf, (size_t)sz);
    } else {
        ISocket_Send(t->inner, buf, (size_t)sz); /* copied by the inner socket */
    }
    return sz;
}

/* The bytes of n wolfSSL may have without reading past the current record; 0 until the
 * record's header is in. */
static size_t record_bound(struct rs_tls *t, size_t n)
{
    if (t->rec_left == 0) {
        const uint8_t *h = t->rx + t->rx_off;
        if (t->rx_len - t->rx_off < 5)
            return 0;
        t->rec_left = 5 + ((size_t)h[3] << 8 | h[4]);
    }
    if (n > t->rec_left)
        n = t->rec_left;
    t->rec_left -= n;
    return n;
}

/* How many more bytes rx needs to end on a record boundary (0: it does). */
static size_t to_record_boundary(const struct rs_tls *t)
{
    size_t pos = t->rx_off + t->rec_left;
    while (pos < t->rx_len) {
        if (t->rx_len - pos < 5)
            return 5 - (t->rx_len - pos);
        pos += 5 + ((size_t)t->rx[pos + 3] << 8 | t->rx[pos + 4]);
    }
    return pos - t->rx_len;
}

int rs_tls_io_recv(WOLFSSL *ssl, char *buf, int sz, void *ctx)
{
    (void)ssl;
    struct rs_tls *t = ctx;
    size_t avail = t->rx_len - t->rx_off;
    if (avail == 0)
        return WOLFSSL_CBIO_ERR_WANT_READ;
    size_t n = avail < (size_t)sz ? avail : (size_t)sz;
    if (t->rec_bound && (n = record_bound(t, n)) == 0)
        return WOLFSSL_CBIO_ERR_WANT_READ;
    memcpy(buf, t->rx + t->rx_off, n);
    t->rx_off += n;
    return (int)n;
}

void rs_tls_set_io(WOLFSSL_CTX *x)
{
    wolfSSL_CTX_SetIORecv(x, rs_tls_io_recv);
    wolfSSL_CTX_SetIOSend(x, rs_tls_io_send);
}

static uint8_t *rx_block(size_t size)
{
    uint8_t *b = rs_blk_alloc(size);
    if (!b)
        rs_fatal("TLS socket: out of memory");
    return b;
}

static void ktls_rx_start(struct rs_tls *t);

/* wolfSSL needs more ciphertext: keep one inner receive outstanding. */
static void want_input(struct rs_tls *t)
{
    if (t->inner_recv || !t->inner)
        return;
    if (t->ktls_rx_wait && t->rx_off == t->rx_len && t->rec_left == 0) {
        ktls_rx_start(t); /* wolfSSL has read all it was sent in user space */
        return;
    }
    size_t have = t->rx_len - t->rx_off;
    /* wolfSSL takes all it is given, so rx is empty here unless the ALPN scan waits for
     * the rest of a ClientHello. An empty rx picks the buffer for the next receive by what
     * the last one brought (rx_next): a connection whose peer last sent little holds no
     * record-sized buffer; a full one moves to the stream block with what it has. */
    if (have == 0 && t->rx_cap != t->rx_next)
        rx_use(t, t->rx_next == sizeof(t->rx_idle) ? t->rx_idle : rx_block(t->rx_next), t->rx_next);
    else if (have > 0 && t->rx_cap < RS_BLK_RX && t->rx_len == t->rx_cap) {
        uint8_t *b = rx_block(RS_BLK_RX);
        memcpy(b, t->rx + t->rx_off, have);
        rx_use(t, b, RS_BLK_RX);
        t->rx_off = 0;
        t->rx_len = have;
    }
    if (have == 0) {
        t->rx_off = t->rx_len = 0;
    } else if (t->rx_off > 0) {
        memmove(t->rx, t->rx + t->rx_off, have);
        t->rx_len = have;
        t->rx_off = 0;
    }
    if (t->rx_len == t->rx_cap) { /* more than a record buffered: garbage */
        IInstanceLog_Log(t->core.base.log, LOG_TLS, "tls %p: oversized record", (void *)t);
        end(t, t->state == T_HANDSHAKE ? SOCKET_TLS_HANDSHAKE_FAILED : SOCKET_LOST);
        return;
    }
    size_t room = t->rx_cap - t->rx_len;
    if (t->ktls_rx_wait) { /* read up to the end of the record only */
        size_t need = to_record_boundary(t);
        if (need == 0)
            return; /* wolfSSL reads what rx holds first */
        room = need < room ? need : room;
    }
    t->inner_recv = true;
    ISocket_Recv(t->inner, t->rx + t->rx_len, room, true);
}

/* ---- the state machine ---------------------------------------------------------------------- */

/* Certificate problems (no signer, name mismatch, expired) show up as the error itself. */
static void log_failure(struct rs_tls *t, const char *what, int ret)
{
    int err = wolfSSL_get_error(t->ssl, ret);
    char text[WOLFSSL_MAX_ERROR_SZ];
    wolfSSL_ERR_error_string_n((unsigned long)err, text, sizeof(text));
    IInstanceLog_Log(t->core.base.log, LOG_TLS, "tls %p: %s failed: %s (%d)", (void *)t, what, text,
                     err);
}

/* The client's ALPN offer, as wolfSSL takes it: the names joined by commas (the context
 * kept only names that fit, see ISocketContext_SetALPNProtocols). */
static void offer_alpn(struct rs_tls *t)
{
    size_t size = 0;
    for (char **p = t->ctx->alpn; *p; p++)
        size += strlen(*p) + 1;
    char *list = malloc(size);
    if (!list)
        rs_fatal("TLS socket: out of memory");
    size_t o = 0;
    for (char **p = t->ctx->alpn; *p; p++) {
        size_t n = strlen(*p);
        if (o)
            list[o++] = ',';
        memcpy(list + o, *p, n);
        o += n;
    }
    list[o] = '\0';
    if (wolfSSL_UseALPN(t->ssl, list, (unsigned)o, WOLFSSL_ALPN_CONTINUE_ON_MISMATCH) !=
        WOLFSSL_SUCCESS)
        rs_log_error(t->core.base.log, LOG_TLS, "tls %p: the ALPN list cannot be offered",
                     (void *)t);
    free(list);
}

static bool start_ssl(struct rs_tls *t)
{
    WOLFSSL_CTX *x = rs_tls_context_get(t->ctx, t->server, false);
    t->ssl = x ? wolfSSL_new(x) : NULL;
    if (!t->ssl) {
        rs_log_error(t->core.base.log, LOG_TLS, "tls %p: cannot create the TLS session", (void *)t);
        return false;
    }
    wolfSSL_SetIOReadCtx(t->ssl, t);
    wolfSSL_SetIOWriteCtx(t->ssl, t);
    t->rec_bound = t->ctx->ktls; /* see struct rs_tls */
    if (!t->server) {
        IPaddr peer;
        bool connected = t->inner && inner_caps(t)->peer_ip(t->inner, &peer);
        rs_tls_expect_server(t->ssl, &t->expect, t->server_name, connected ? &peer : NULL,
                             t->core.base.log, LOG_TLS, t);
        if (t->ctx->alpn)
            offer_alpn(t);
    }
    return true;
}

static void app_write(struct rs_tls *t, const uint8_t *buf, size_t len, bool nocopy)
{
    if (len > 0 && (t->ktls & KTLS_TX)) { /* plaintext: the kernel seals it */
        tx_push(t);
        if (nocopy)
            ISocket_SendNoCopy(t->inner, buf, len);
        else
            ISocket_Send(t->inner, buf, len);
        t->core.base.stats.bytesSent += len;
    } else if (len > 0) {
        rs_blk_track(true); /* rs_tls_io_send finds wolfSSL's output buffer */
        int n = wolfSSL_write(t->ssl, buf, (int)len);
        rs_blk_track(false);
        if (n != (int)len) {
            log_failure(t, "write", n);
            end(t, SOCKET_LOST);
            return;
        }
        t->core.base.stats.bytesSent += len;
    }
    owe_send_result(t);
}

/* The sends queued before the handshake ended (and the kernel took over sending) go out,
 * then a Shutdown asked for meanwhile. */
static void begin_close(struct rs_tls *t);
static void open_for_sends(struct rs_tls *t)
{
    while (t->pending && t->state == T_OPEN) {
        struct plain *p = t->pending;
        t->pending = p->next;
        if (!t->pending)
            t->pending_tail = NULL;
        app_write(t, p->bytes, p->len, false);
        free(p);
    }
    if (t->state == T_OPEN && t->core.shutdown_requested)
        begin_close(t);
}

/* ---- kernel TLS ------------------------------------------------------------------------- */

static void ktls_alert_sent(struct rs_op *op, int res, unsigned flags)
{
    (void)flags;
    struct ktls_alert *a = rs_container_of(op, struct ktls_alert, op);
    struct rs_tls *t = a->t;
    t->alert_out = NULL;
    free(a);
    if (res < 0)
        LOG(t, "tls %p: close_notify not sent: %s", (void *)t, strerror(-res));
    if (t->state == T_CLOSING && t->inner)
        ISocket_Shutdown(t->inner);
    rs_core_op_end(&t->core);
}

/* close_notify through the kernel, after every send before it (their results are in). */
static void ktls_send_close_notify(struct rs_tls *t)
{
    struct ktls_alert *a = calloc(1, sizeof(*a));
    if (!a)
        rs_fatal("TLS socket: out of memory");
    a->op.complete = ktls_alert_sent;
    a->t = t;
    a->body[0] = 1; /* warning */
    a->body[1] = 0; /* close_notify */
    a->iov = (struct iovec){a->body, sizeof(a->body)};
    a->msg = (struct msghdr){.msg_iov = &a->iov,
                             .msg_iovlen = 1,
                             .msg_control = a->cmsg.bytes,
                             .msg_controllen = sizeof(a->cmsg.bytes)};
    struct cmsghdr *c = CMSG_FIRSTHDR(&a->msg);
    c->cmsg_level = SOL_TLS;
    c->cmsg_type = TLS_SET_RECORD_TYPE;
    c->cmsg_len = CMSG_LEN(sizeof(uint8_t));
    *CMSG_DATA(c) = RS_TLS_ALERT;
    t->ktls_close = false;
    t->alert_out = a;
    rs_core_op_begin(&t->core);
    rs_io_sendmsg(t->core.base.mux->io, &a->op, inner_caps(t)->fd(t->inner), &a->msg, 0);
}

static bool wants_ktls(const struct rs_tls *t)
{
    return t->ctx->ktls && t->inner && inner_caps(t)->ktls_rx;
}

/* The handshake is done and the context wants kernel TLS: attach the ULP. Sending moves to
 * the kernel once wolfSSL's last records are out, receiving once wolfSSL has read up to a
 * record boundary. Where the kernel refuses, the socket stays in user space, silently. */
static void ktls_begin(struct rs_tls *t)
{
    t->rec_bound = false;
    if (!wants_ktls(t))
        return;
    char why[160];
    struct rs_ktls_keys probe;
    if (!rs_ktls_keys(t->ssl, true, &probe, why, sizeof(why))) {
        LOG(t, "tls %p: no kernel TLS: %s", (void *)t, why);
        inner_caps(t)->readahead(t->inner, true);
        return;
    }
    explicit_bzero(&probe, sizeof(probe));
    int err = rs_ktls_attach(inner_caps(t)->fd(t->inner));
    if (err) {
        LOG(t, "tls %p: no kernel TLS: TCP_ULP tls: %s", (void *)t, strerror(err));
        inner_caps(t)->readahead(t->inner, true);
        return;
    }
    t->ktls_tx_wait = true;
    /* wolfSSL read the handshake record by record; an inner receive still outstanding
     * would read on past the boundary (none is, after a handshake) */
    t->ktls_rx_wait = !t->inner_recv;
    t->rec_bound = t->ktls_rx_wait;
}

/* Sending moves to the kernel once the inner socket has sent all wolfSSL wrote. */
static void ktls_tx_try(struct rs_tls *t)
{
    if (!t->ktls_tx_wait || t->tx.len > 0 || t->state != T_OPEN)
        return;
    t->ktls_tx_wait = false;
    char why[160];
    if (rs_ktls_install(inner_caps(t)->fd(t->inner), t->ssl, true, why, sizeof(why)) == 0) {
        t->ktls |= KTLS_TX;
        inner_caps(t)->ktls_tx(t->inner);
        LOG(t, "tls %p: kernel TLS sends", (void *)t);
    } else {
        LOG(t, "tls %p: sending stays in user space: %s", (void *)t, why);
    }
    open_for_sends(t);
}

static void ktls_record(void *arg, uint8_t type, const uint8_t *data, size_t len);

/* Receiving moves to the kernel: wolfSSL has read every byte received, to a boundary. */
static void ktls_rx_start(struct rs_tls *t)
{
    t->ktls_rx_wait = t->rec_bound = false;
    char why[160] = "bytes were read ahead of the TLS layer before StartTLS";
    if (inner_caps(t)->read_ahead(t->inner) ||
        rs_ktls_install(inner_caps(t)->fd(t->inner), t->ssl, false, why, sizeof(why)) != 0) {
        LOG(t, "tls %p: receiving stays in user space: %s", (void *)t, why);
        inner_caps(t)->readahead(t->inner, true);
        want_input(t);
        return;
    }
    t->ktls |= KTLS_RX;
    inner_caps(t)->ktls_rx(t->inner, ktls_record, t);
    t->rx_off = t->rx_len = 0;
    rx_use(t, t->rx_idle, sizeof(t->rx_idle));
    LOG(t, "tls %p: kernel TLS receives", (void *)t);
}

static void ktls_alert(struct rs_tls *t, uint8_t level, uint8_t desc)
{
    if (desc == 0) {
        LOG(t, "tls %p: close_notify from the peer", (void *)t);
        end(t, SOCKET_SHUTDOWN_BY_PEER);
    } else if (!(level == 1 && desc == 90)) { /* user_canceled: close_notify follows */
        IInstanceLog_Log(t->core.base.log, LOG_TLS, "tls %p: alert %u (level %u) from the peer",
                         (void *)t, desc, level);
        end(t, SOCKET_LOST);
    }
}

static void ktls_handshake_message(struct rs_tls *t, uint8_t msg)
{
    if (msg == RS_TLS_NEW_SESSION_TICKET || msg == RS_TLS_HELLO_REQUEST)
        return; /* no resumption, no renegotiation: both may be ignored */
    if (msg == RS_TLS_KEY_UPDATE)
        IInstanceLog_Log(t->core.base.log, LOG_TLS,
                         "tls %p: the peer updated its keys (TLS 1.3 KeyUpdate), which kernel "
                         "TLS cannot follow on this kernel: connection ended",
                         (void *)t);
    else
        IInstanceLog_Log(t->core.base.log, LOG_TLS,
                         "tls %p: unexpected handshake message %u after the handshake", (void *)t,
                         msg);
    end(t, SOCKET_LOST);
}

/* A record other than application data, opened by the kernel (in pieces when the receive
 * buffer is small): alerts and post-handshake messages, parsed as they come. */
static void ktls_record(void *arg, uint8_t type, const uint8_t *data, size_t len)
{
    struct rs_tls *t = arg;
    struct ktls_ctl *c = &t->ctl;
    if (!data) { /* as wolfSSL would fail the read in user space */
        IInstanceLog_Log(t->core.base.log, LOG_TLS,
                         "tls %p: read failed: the kernel refused a record: %s", (void *)t,
                         strerror((int)len));
        end(t, SOCKET_LOST);
        return;
    }
    for (size_t i = 0; i < len && t->state == T_OPEN; i++) {
        if (type != c->type)
            *c = (struct ktls_ctl){.type = type};
        if (c->skip > 0) {
            size_t n = len - i < c->skip ? len - i : c->skip;
            c->skip -= (uint32_t)n;
            i += n - 1;
            continue;
        }
        c->hdr[c->have++] = data[i];
        if (type == RS_TLS_ALERT && c->have == 2) {
            c->have = 0;
            ktls_alert(t, c->hdr[0], c->hdr[1]);
        } else if (type == RS_TLS_HANDSHAKE && c->have == 4) {
            c->have = 0;
            c->skip = (uint32_t)c->hdr[1] << 16 | (uint32_t)c->hdr[2] << 8 | c->hdr[3];
            ktls_handshake_message(t, c->hdr[0]);
        } else if (type != RS_TLS_ALERT && type != RS_TLS_HANDSHAKE) {
            IInstanceLog_Log(t->core.base.log, LOG_TLS,
                             "tls %p: unexpected record type %u after the handshake", (void *)t,
                             type);
            end(t, SOCKET_LOST);
        }
    }
}

static void inner_recv_cancel(struct rs_tls *t)
{
    t->inner_cancel = true;
    ISocket_RecvCancel(t->inner);
}

static void begin_close(struct rs_tls *t)
{
    /* Queued sends are out (they went to the inner socket, which flushes on Shutdown). */
    t->state = T_CLOSING;
    t->ktls_rx_wait = t->rec_bound = false;
    /* What the peer still sends (a session ticket) is read and dropped: unread bytes at
     * the close would make the kernel reset the connection, and the peer lose the end
     * of our data. Nothing received is delivered after Shutdown: rx starts over. */
    if ((t->ktls & KTLS_RX) && t->inner_recv)
        inner_recv_cancel(t); /* it was the application's buffer */
    t->rx_off = t->rx_len = 0;
    want_input(t);
    if (t->ktls & KTLS_TX) {
        if (t->tx.len == 0)
            ktls_send_close_notify(t); /* then the inner Shutdown */
        else
            t->ktls_close = true;
        return;
    }
    wolfSSL_shutdown(t->ssl); /* close_notify, through rs_tls_io_send */
    ISocket_Shutdown(t->inner);
}

static void handshake_done(struct rs_tls *t)
{
    t->state = T_OPEN;
    ITimer_Delete(t->handshake_timer);
    t->handshake_timer = NULL;
    t->peer_fp_valid = rs_tls_peer_fingerprint(t->ssl, t->peer_fp);
    char *proto = NULL;
    unsigned short plen = 0;
    if (wolfSSL_ALPN_GetProtocol(t->ssl, &proto, &plen) == WOLFSSL_SUCCESS && proto && plen > 0) {
        t->alpn = malloc(plen + 1u);
        if (!t->alpn)
            rs_fatal("TLS socket: out of memory");
        memcpy(t->alpn, proto, plen);
        t->alpn[plen] = '\0';
    }
    LOG(t, "tls %p: %s %s%s%s", (void *)t, wolfSSL_get_version(t->ssl),
        wolfSSL_get_cipher_name(t->ssl), t->alpn ? " alpn=" : "", t->alpn ? t->alpn : "");
    bool accepted =
        t->server || !t->ctx->alpn || rs_cb_accept_alpn(&t->core.base, t->alpn ? t->alpn : "");
    if (t->core.deleted)
        return;
    if (!accepted) {
        IInstanceLog_Log(t->core.base.log, LOG_TLS, "tls %p: ALPN '%s' refused", (void *)t,
                         t->alpn);
        end(t, SOCKET_ALPN_SELECTION_FAILED);
        return;
    }
    rs_core_event(&t->core, t->upgrade  ? RS_EV_UPGRADED
                            : t->server ? RS_EV_ACCEPTED
                                        : RS_EV_CONNECTED);
    ktls_begin(t);
    if (t->ktls_tx_wait)
        ktls_tx_try(t); /* then open_for_sends */
    else
        open_for_sends(t);
}

static void serve_stash(struct rs_tls *t)
{
    size_t n = t->stash_len - t->stash_off;
    if (n > t->core.rlen - t->core.rfill)
        n = t->core.rlen - t->core.rfill;
    memcpy(t->core.rbuf + t->core.rfill, t->stash + t->stash_off, n);
    t->stash_off += n;
    t->core.rfill += n;
    if (t->stash_off == t->stash_len) {
        free(t->stash);
        t->stash = NULL;
        t->stash_len = t->stash_off = 0;
    }
}

static void read_app_data(struct rs_tls *t)
{
    while (t->core.rbuf && t->state == T_OPEN && !(t->core.pending & RS_EV_RECV_DONE)) {
        if (t->stash)
            serve_stash(t);
        if (t->core.rfill == t->core.rlen ||
            (t->core.rfill > 0 && t->core.rpartial)) { /* also a zero-length one */
            rs_core_event(&t->core, RS_EV_RECV_DONE);
            return;
        }
        if ((t->ktls & KTLS_RX) && wolfSSL_pending(t->ssl) == 0) {
            /* the kernel opens the records, straight into the application's buffer */
            if (!t->inner_recv) {
                t->inner_recv = true;
                ISocket_Recv(t->inner, t->core.rbuf + t->core.rfill, t->core.rlen - t->core.rfill,
                             t->core.rpartial);
            }
            return;
        }
        int n =
            wolfSSL_read(t->ssl, t->core.rbuf + t->core.rfill, (int)(t->core.rlen - t->core.rfill));
        if (n > 0) {
            t->core.rfill += (size_t)n;
            t->core.base.stats.bytesReceived += (uint64_t)n;
            continue;
        }
        int err = wolfSSL_get_error(t->ssl, n);
        if (err == WOLFSSL_ERROR_WANT_READ) {
            want_input(t);
            if (t->ktls & KTLS_RX)
                continue; /* the kernel took over receiving just now */
        } else if (err == WOLFSSL_ERROR_ZERO_RETURN) {
            LOG(t, "tls %p: close_notify from the peer", (void *)t);
            end(t, SOCKET_SHUTDOWN_BY_PEER);
        } else {
            log_failure(t, "read", n);
            end(t, SOCKET_LOST);
        }
        return;
    }
}

/* Runs wolfSSL as far as it can go. Callers are in the loop; the application may
 * delete the socket in a callback made from here, hence the reference. */
static void drive(struct rs_tls *t)
{
    rs_core_ref(&t->core);
    if (t->state == T_HANDSHAKE && t->server && t->ctx->alpn && !t->alpn_scanned) {
        char chosen[256];
        enum rs_alpn_scan scan = rs_alpn_choose(t->rx + t->rx_off, t->rx_len - t->rx_off,
                                                t->ctx->alpn, chosen, sizeof(chosen));
        /* A first record larger than any real one never completes: let wolfSSL judge. */
        if (scan == RS_ALPN_MORE && t->rx_len - t->rx_off < RS_TLS_RX_CAP) {
            want_input(t);
            goto out;
        }
        if (scan == RS_ALPN_CHOSEN)
            wolfSSL_UseALPN(t->ssl, chosen, (unsigned)strlen(chosen),
                            WOLFSSL_ALPN_CONTINUE_ON_MISMATCH);
        t->alpn_scanned = true;
    }
    if (t->state == T_HANDSHAKE) {
        int r = t->server ? wolfSSL_accept(t->ssl) : wolfSSL_connect(t->ssl);
        if (r != WOLFSSL_SUCCESS) {
            if (wolfSSL_get_error(t->ssl, r) == WOLFSSL_ERROR_WANT_READ) {
                want_input(t);
            } else {
                log_failure(t, "handshake", r);
                end(t, SOCKET_TLS_HANDSHAKE_FAILED);
            }
            goto out;
        }
        handshake_done(t);
    }
    if (t->state == T_OPEN && !t->core.deleted)
        read_app_data(t);
out:
    rs_core_unref(&t->core);
}

static void handshake_timed_out(ITimer *timer, void *arg)
{
    (void)timer;
    struct rs_tls *t = arg;
    IInstanceLog_Log(t->core.base.log, LOG_TLS, "tls %p: handshake timed out", (void *)t);
    end(t, SOCKET_TLS_HANDSHAKE_FAILED);
}

static void arm_handshake_timer(struct rs_tls *t)
{
    if (!t->handshake_timer)
        t->handshake_timer = rs_timer_create_internal(t->core.base.mux, handshake_timed_out, t);
    unsigned ms = t->core.base.mux->settings.tls_handshake_timeout_ms;
    ITimer_Start(t->handshake_timer, ms ? ms : RS_TLS_HANDSHAKE_TIMEOUT_MS);
}

static void begin_handshake(struct rs_tls *t)
{
    t->state = T_HANDSHAKE;
    arm_handshake_timer(t);
    if (!start_ssl(t)) {
        end(t, SOCKET_TLS_HANDSHAKE_FAILED);
        return;
    }
    drive(t);
}

/* ---- the inner socket's callbacks ------------------------------------------------------------ */

static void inner_connect_complete(USocket *u, ISocket *inner)
{
    (void)inner;
    begin_handshake(of_inner(u));
}

/* wolfSSL reads the records through the inner socket's receives. Where kernel TLS may
 * take over receiving at a record boundary, nothing may be read ahead of them; elsewhere
 * small records come through the loop's multishot receive, like plain TCP's messages. */
static void inner_adopt(struct rs_tls *t, ISocket *inner)
{
    if (!inner || !inner->ops->stream)
        rs_fatal("CreateTLSSocketProvider: its provider makes no stream (TCP or local) sockets");
    t->inner = inner;
    inner->ops->stream->readahead(inner, !wants_ktls(t));
}

static void inner_accept_complete(USocket *u, ISocket *inner)
{
    struct rs_tls *t = of_inner(u);
    inner_adopt(t, inner);
    if (t->qos >= 0)
        ISocket_SetQoS(inner, (qostraffictype_t)t->qos);
    begin_handshake(t);
}

static void inner_bind_result(USocket *u, ISocket *inner, const char *addr, uint16_t port)
{
    (void)inner;
    struct rs_tls *t = of_inner(u);
    rs_core_bound(&t->core, addr, port);
}

static void inner_listen_result(USocket *u, ISocket *inner, const char *addr, uint16_t port)
{
    (void)inner;
    struct rs_tls *t = of_inner(u);
    if (t->state != T_LISTENING)
        return; /* not accepted: the inner listener closes it */
    /* Accept must happen inside the inner SocketListenResult, so this one is direct. */
    rs_core_ref(&t->core);
    rs_cb_listen_result(&t->core.base, addr, port);
    rs_core_unref(&t->core);
}

static void inner_send_result(USocket *u, ISocket *inner)
{
    (void)inner;
    struct rs_tls *t = of_inner(u);
    if (t->tx.len == 0)
        return;
    struct txent e = *RS_QUEUE_AT(&t->tx, struct txent, 0);
    rs_queue_pop(&t->tx);
    rs_blk_free(e.blk);
    if (e.app) {
        t->core.ready_results += e.app;
        rs_core_event(&t->core, RS_EV_SENDS);
    }
    if (t->tx.len == 0 && t->ktls_tx_wait)
        ktls_tx_try(t);
    else if (t->tx.len == 0 && t->ktls_close && t->state == T_CLOSING)
        ktls_send_close_notify(t);
}

static void inner_recv_result(USocket *u, ISocket *inner, void *buf, size_t len)
{
    (void)inner;
    (void)buf;
    struct rs_tls *t = of_inner(u);
    t->inner_recv = false;
    if (t->ktls & KTLS_RX) {
        if (t->state == T_CLOSING) { /* read and dropped, see begin_close */
            want_input(t);
            return;
        }
        t->core.rfill += len; /* plaintext, in the application's buffer */
        t->core.base.stats.bytesReceived += len;
    } else {
        t->rx_next = t->rx_len + len == t->rx_cap ? RS_BLK_RX         /* more is waiting */
                     : len > sizeof(t->rx_idle)   ? RS_BLK_RECORD     /* a record at a time */
                                                  : sizeof(t->rx_idle); /* little */
        t->rx_len += len;
    }
    drive(t);
}

static void inner_recv_canceled(USocket *u, ISocket *inner, void *buf)
{
    (void)inner;
    (void)buf;
    struct rs_tls *t = of_inner(u);
    t->inner_recv = false;
    bool asked = t->inner_cancel;
    t->inner_cancel = false;
    if (!(t->ktls & KTLS_RX) || !asked)
        return; /* the inner socket is ending: its SocketShutdown follows */
    /* the application's Recv was canceled (or Shutdown came): its successor, or the
     * reading that drops what comes after Shutdown, goes on */
    if (t->state == T_CLOSING)
        want_input(t);
    else if (t->core.rbuf)
        drive(t);
}

static void inner_shutdown(USocket *u, ISocket *inner, shutdownreason_t reason)
{
    struct rs_tls *t = of_inner(u);
    delete_inner(t, inner);
    switch (t->state) {
    case T_CLOSED:
        if (t->alert_flushing) { /* the alert is out (or the connection went first) */
            t->alert_flushing = false;
            rs_core_close_event(&t->core, t->alert_reason);
        }
        break;
    case T_CLOSING:
        end(t, reason);
        break;
    case T_HANDSHAKE:
        IInstanceLog_Log(t->core.base.log, LOG_TLS, "tls %p: connection ended in the handshake: %s",
                         (void *)t, SocketShutdownReasonToStr(reason));
        end(t, SOCKET_TLS_HANDSHAKE_FAILED);
        break;
    case T_OPEN:
        /* No close_notify: the session was cut short (or the peer refused us after its
         * handshake, as a TLS 1.3 server that wanted our certificate may do without an
         * alert). Only close_notify is a clean end. */
        if (reason == SOCKET_SHUTDOWN_BY_PEER) {
            IInstanceLog_Log(t->core.base.log, LOG_TLS, "tls %p: closed without close_notify",
                             (void *)t);
            reason = SOCKET_LOST;
        }
        end(t, reason);
        break;
    default: /* connect failures, a listener's end */
        end(t, reason);
    }
}

static const USocketVtbl inner_vtbl = {
    .SocketConnectComplete = inner_connect_complete,
    .SocketBindResult = inner_bind_result,
    .SocketListenResult = inner_listen_result,
    .SocketAcceptComplete = inner_accept_complete,
    .SocketShutdown = inner_shutdown,
    .SocketSendResult = inner_send_result,
    .SocketRecvResult = inner_recv_result,
    .SocketRecvCanceled = inner_recv_canceled,
};

/* ---- the application's calls -------------------------------------------------------------- */

static void tls_connect(ISocket *is, const char *address, const char *serverName)
{
    struct rs_tls *t = T(is);
    free(t->server_name);
    t->server_name = serverName ? strdup(serverName) : NULL;
    t->state = T_TCP;
    LOG(t, "tls %p connecting to %s (server name %s)", (void *)t, address ? address : "(null)",
        serverName ? serverName : "none");
    ISocket_Connect(t->inner, address, NULL);
}

static void tls_bind(ISocket *is, const char *addr, uint16_t port, bool reuse)
{
    ISocket_BindReuse(T(is)->inner, addr, port, reuse);
}

static void tls_listen(ISocket *is)
{
    struct rs_tls *t = T(is);
    if (t->state != T_IDLE)
        return; /* the bind failed: its SocketShutdown is on its way */
    t->state = T_LISTENING;
    ISocket_Listen(t->inner);
}

static void tls_accept(ISocket *is, USocket *user)
{
    struct rs_tls *t = T(is);
    if (!user) {
        ISocket_Accept(t->inner, NULL);
        return;
    }
    struct rs_tls *c = tls_new(is->mux, user, is->log, t->ctx, true);
    rs_core_accepted(&c->core);
    c->state = T_TCP;
    c->qos = t->qos;
    ISocket_Accept(t->inner, &c->inner_user);
}

static void tls_shutdown(ISocket *is)
{
    struct rs_tls *t = T(is);
    if (t->core.shutdown_requested || t->state == T_CLOSED)
        return;
    t->core.shutdown_requested = true;
    switch (t->state) {
    case T_OPEN:
        if (!t->ktls_tx_wait) /* else once the kernel took over sending */
            begin_close(t);
        break;
    case T_LISTENING:
        ISocket_Shutdown(t->inner);
        t->state = T_CLOSING;
        break;
    case T_TCP:
    case T_HANDSHAKE:
        if (!t->pending) {
            end(t, SOCKET_SHUTDOWN_NORMAL);
            break;
        }
        break; /* the queued sends go out once the handshake is done, then it closes */
    default:
        end(t, SOCKET_SHUTDOWN_NORMAL);
    }
}

static void tls_send(ISocket *is, const void *buf, size_t len, bool nocopy)
{
    struct rs_tls *t = T(is);
    if (t->core.shutdown_requested || t->state == T_CLOSED || t->state == T_CLOSING)
        return;
    if (t->state == T_OPEN && !t->ktls_tx_wait) {
        app_write(t, buf, len, nocopy);
        return;
    }
    struct plain *p = malloc(sizeof(*p) + len);
    if (!p)
        rs_fatal("ISocket_Send: out of memory");
    p->next = NULL;
    p->len = len;
    memcpy(p->bytes, buf, len);
    if (t->pending_tail)
        t->pending_tail->next = p;
    else
        t->pending = p;
    t->pending_tail = p;
}

static void tls_recv(ISocket *is)
{
    struct rs_tls *t = T(is);
    if (t->state == T_OPEN)
        rs_defer(is->mux, &t->drive_task); /* wolfSSL runs from the loop only */
}

static void tls_recv_cancel(ISocket *is)
{
    struct rs_tls *t = T(is);
    if ((t->ktls & KTLS_RX) && t->inner_recv)
        inner_recv_cancel(t); /* the inner socket keeps what it read for the next Recv */
    if (t->core.rfill > 0) {  /* decrypted already: the next Recv gets it first */
        size_t rest = t->stash_len - t->stash_off;
        uint8_t *b = malloc(t->core.rfill + rest);
        if (!b)
            rs_fatal("ISocket_RecvCancel: out of memory");
        memcpy(b, t->core.rbuf, t->core.rfill);
        if (rest)
            memcpy(b + t->core.rfill, t->stash + t->stash_off, rest);
        free(t->stash);
        t->stash = b;
        t->stash_len = t->core.rfill + rest;
        t->stash_off = 0;
    }
}

static void tls_get_local_address(ISocket *is, char *out, unsigned size, uint16_t *port)
{
    struct rs_tls *t = T(is);
    if (t->inner) {
        ISocket_GetLocalAddress(t->inner, out, size, port);
        return;
    }
    if (size > 0)
        out[0] = '\0';
    if (port)
        *port = 0;
}

static void tls_set_qos(ISocket *is, qostraffictype_t type)
{
    struct rs_tls *t = T(is);
    t->qos = (int)type;
    if (t->inner)
        ISocket_SetQoS(t->inner, type);
}

static void tls_destroy(ISocket *is)
{
    struct rs_tls *t = T(is);
    rs_core_delete(&t->core);
    t->state = T_CLOSED;
    rs_task_cancel(&t->drive_task);
    ITimer_Delete(t->handshake_timer);
    t->handshake_timer = NULL;
    release_tls(t, false);
    rs_core_unref(&t->core);
}

static bool tls_peer_fingerprint(ISocket *is, uint8_t out[32])
{
    struct rs_tls *t = T(is);
    if (!t->peer_fp_valid)
        return false;
    memcpy(out, t->peer_fp, 32);
    return true;
}

static const char *tls_alpn_protocol(ISocket *is)
{
    struct rs_tls *t = T(is);
    return t->alpn;
}

static unsigned tls_kernel_tls(ISocket *is)
{
    return T(is)->ktls;
}

static const struct rs_socket_ops tls_ops = {
    .name = "tls",
    .connect = tls_connect,
    .bind = tls_bind,
    .get_local_address = tls_get_local_address,
    .listen = tls_listen,
    .accept = tls_accept,
    .shutdown = tls_shutdown,
    .send = tls_send,
    .recv = tls_recv,
    .recv_cancel = tls_recv_cancel,
    .set_qos = tls_set_qos,
    .destroy = tls_destroy,
    .peer_fingerprint = tls_peer_fingerprint,
    .alpn_protocol = tls_alpn_protocol,
    .kernel_tls = tls_kernel_tls,
};

/* ---- the socket core's hooks -------------------------------------------------------------- */

static const struct rs_core_type tls_core_type = {
    .deliver_listen = NULL, /* delivered inside the inner listener's, see above */
    .canceled_ready = NULL, /* wolfSSL writes into the buffer only while we call it */
    .free = tls_free,
};

/* ---- the provider -------------------------------------------------------------------------- */

struct tls_provider {
    ISocketProvider base;
    ISocketProvider *tcp;
};

static ISocket *tls_create_socket(ISocketProvider *p, IIoMux *m, USocket *user, IInstanceLog *log,
                                  bool useIPv6, ISocketContext *ctx)
{
    struct tls_provider *tp = (struct tls_provider *)p;
    if (!tp->tcp)
        rs_fatal("ISocketProvider_CreateSocket on a TLS provider made for upgrades only "
                 "(CreateTLSSocketProvider(NULL))");
    struct rs_tls *t = tls_new(m, user, log, ctx, false);
    inner_adopt(t, ISocketProvider_CreateSocket(tp->tcp, m, &t->inner_user, log, useIPv6, NULL));
    return &t->core.base;
}

static ISocket *tls_upgrade(ISocketProvider *p, ISocket *from, IIoMux *m, USocket *user,
                            IInstanceLog *log, bool initServerSide, ISocketContext *ctx)
{
    (void)p;
    if (!from || from->ops->peer_fingerprint) /* TLS and DTLS sockets have a peer certificate */
        rs_fatal("ISocketProvider_UpgradeToTLSSocket: the socket is already a TLS socket");
    if (!from->ops->stream)
        rs_fatal("ISocketProvider_UpgradeToTLSSocket: only stream sockets can be upgraded");
    if (from->ops->stream->receiving(from))
        rs_socket_misuse(from, "ISocketProvider_UpgradeToTLSSocket with a receive outstanding "
                               "on the socket (cancel it first)");
    struct rs_tls *t = tls_new(m, user, log, ctx, initServerSide);
    t->upgrade = true;
    t->core.base.mode = RS_MODE_ACCEPTED;
    inner_adopt(t, from);
    ISocket_SetUser(from, &t->inner_user);
    t->state = T_HANDSHAKE;
    arm_handshake_timer(t);
    if (!start_ssl(t))
        end(t, SOCKET_TLS_HANDSHAKE_FAILED);
    else
        rs_defer(m, &t->drive_task); /* the client's hello goes out from the loop */
    return &t->core.base;
}

static void tls_provider_destroy(ISocketProvider *p)
{
    ISocketProvider_Delete(((struct tls_provider *)p)->tcp);
    free(p);
}

static const struct rs_provider_ops tls_provider_ops = {
    .create_socket = tls_create_socket,
    .upgrade = tls_upgrade,
    .init_context = rs_tls_context_attach,
    .destroy = tls_provider_destroy,
};

ISocketProvider *CreateTLSSocketProvider(ISocketProvider *tcpSocketProvider)
{
    rs_tls_init();
    struct tls_provider *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    rs_provider_init(&p->base, &tls_provider_ops);
    p->tcp = rs_provider_ref(tcpSocketProvider); /* it may be deleted first */
    return &p->base;
}
