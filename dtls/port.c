/* The UDP socket under DTLS sockets: receives every datagram, hands it to the
 * association of its source (or, from a new source, to the stateless cookie check),
 * and sends for all of them, mapping each SocketSendResult back to its sender. */
#include <stdlib.h>
#include <string.h>

#include "dtls.h"
#include "log_internal.h"
#include "udp.h"

#define LOG(p, ...) IInstanceLog_Log((p)->log, LOG_DTLS, __VA_ARGS__)

static const USocketVtbl udp_vtbl;

static struct dtls_port *of_udp(USocket *u)
{
    return rs_container_of(u, struct dtls_port, udp_user);
}

struct dtls_port *rs_port_new(IIoMux *m, IInstanceLog *log, ISocketContext *ctx, bool useIPv6,
                              bool client)
{
    struct dtls_port *p = calloc(1, sizeof(*p));
    if (!p)
        rs_fatal("DTLS socket: out of memory");
    p->refs = 1;
    p->mux = m;
    p->log = log;
    p->ctx = ctx;
    p->client = client;
    p->udp_user.vtbl = &udp_vtbl;
    p->udp = rs_udp_create_socket(m, &p->udp_user, log, useIPv6);
    return p;
}

/* The UDP socket's oldest send is done: its owner learns it. False when none is owed. */
static bool send_done(struct dtls_port *p)
{
    if (p->sends.len == 0)
        return false;
    struct rs_send_owner e = *RS_QUEUE_AT(&p->sends, struct rs_send_owner, 0);
    rs_queue_pop(&p->sends);
    if (e.d)
        rs_dtls_send_done(e.d, e.app);
    return true;
}

static void release_sends(struct dtls_port *p)
{
    while (send_done(p))
        ;
}

void rs_port_unref(struct dtls_port *p)
{
    if (--p->refs > 0)
        return;
    release_sends(p);
    if (p->udp)
        ISocket_Delete(p->udp);
    free(p->table);
    rs_queue_free(&p->sends);
    free(p);
}

/* ---- associations by peer ---------------------------------------------------------------- */

static size_t slot(const struct rs_peer *k, size_t size)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (int i = 0; i < 16; i++)
        h = (h ^ k->addr.b[i]) * 1099511628211ull;
    h = (h ^ k->port) * 1099511628211ull;
    return (size_t)(h ^ (h >> 29)) & (size - 1);
}

static bool same_peer(const struct rs_peer *a, const struct rs_peer *b)
{
    return a->port == b->port && memcmp(a->addr.b, b->addr.b, 16) == 0;
}

static struct rs_dtls *find(struct dtls_port *p, const struct rs_peer *k)
{
    if (!p->table)
        return NULL;
    for (struct rs_dtls *d = p->table[slot(k, p->table_size)]; d; d = d->hnext)
        if (same_peer(&d->peer, k))
            return d;
    return NULL;
}

static void grow(struct dtls_port *p)
{
    size_t size = p->table_size ? p->table_size * 2 : 64;
    struct rs_dtls **t = calloc(size, sizeof(*t));
    if (!t)
        rs_fatal("DTLS socket: out of memory");
    for (size_t i = 0; i < p->table_size; i++) {
        while (p->table[i]) {
            struct rs_dtls *d = p->table[i];
            p->table[i] = d->hnext;
            size_t s = slot(&d->peer, size);
            d->hnext = t[s];
            t[s] = d;
        }
    }
    free(p->table);
    p->table = t;
    p->table_size = size;
}

void rs_port_add(struct dtls_port *p, struct rs_dtls *d)
{
    if (p->table_len >= p->table_size)
        grow(p);
    size_t s = slot(&d->peer, p->table_size);
    d->hnext = p->table[s];
    p->table[s] = d;
    d->in_table = true;
    p->table_len++;
}

void rs_port_remove(struct dtls_port *p, struct rs_dtls *d)
{
    if (!d->in_table)
        return;
    for (struct rs_dtls **pp = &p->table[slot(&d->peer, p->table_size)]; *pp; pp = &(*pp)->hnext) {
        if (*pp == d) {
            *pp = d->hnext;
            break;
        }
    }
    d->in_table = false;
    d->hnext = NULL;
    p->table_len--;
}

/* ---- sending ------------------------------------------------------------------------------ */

static void push_owner(struct dtls_port *p, struct rs_dtls *d, bool app)
{
    *RS_QUEUE_PUSH(&p->sends, struct rs_send_owner, "DTLS socket") = (struct rs_send_owner){d, app};
}

void rs_port_send(struct dtls_port *p, const struct rs_peer *to, const void *buf, size_t len,
                  struct rs_dtls *owner, bool app)
{
    if (owner) {
        rs_core_ref(&owner->core); /* until its SocketSendResult */
        owner->sends_out++;
    }
    if (p->udp_closed || !p->udp) {
        if (owner)
            rs_dtls_send_done(owner, app); /* the datagram is lost; its result is not */
        return;
    }
    push_owner(p, owner, app);
    if (p->client)
        ISocket_Send(p->udp, buf, len);
    else
        ISocket_SendTo(p->udp, buf, len, to->addr, to->port);
}

void rs_port_forget(struct dtls_port *p, struct rs_dtls *d)
{
    for (size_t i = 0; i < p->sends.len; i++) {
        struct rs_send_owner *e = RS_QUEUE_AT(&p->sends, struct rs_send_owner, i);
        if (e->d != d)
            continue;
        e->d = NULL;
        d->sends_out--;
        rs_core_unref(&d->core); /* never the last: the caller holds the application's */
    }
}

/* ---- receiving ---------------------------------------------------------------------------- */

static void want_datagram(struct dtls_port *p)
{
    if (p->receiving || p->udp_closed || !p->udp)
        return;
    p->receiving = true;
    ISocket_Recv(p->udp, p->rx, sizeof(p->rx), false);
}

static void dispatch(struct dtls_port *p, const struct rs_peer *from, size_t len)
{
    struct rs_dtls *d = p->client ? p->owner : find(p, from);
    if (d) {
        rs_dtls_datagram(d, p->rx, len);
        return;
    }
    /* Anything else from a source without an association is dropped, and nothing kept. */
    if (!p->client && p->owner && p->owner->state == D_LISTENING &&
        rs_demux(p->rx, len) == RS_DEMUX_DTLS && rs_cookie_check(p, from, p->rx, len))
        rs_dtls_new_peer(p->owner, from, p->rx, len);
}

static void udp_recv_from_result(USocket *u, ISocket *s, void *buf, size_t len, IPaddr addr,
                                 uint16_t port)
{
    (void)s;
    (void)buf;
    struct dtls_port *p = of_udp(u);
    p->receiving = false;
    p->refs++;
    struct rs_peer from = {.addr = addr, .port = port};
    dispatch(p, &from, len);
    want_datagram(p);
    rs_port_unref(p);
}

static void udp_recv_result(USocket *u, ISocket *s, void *buf, size_t len)
{
    (void)s;
    (void)buf;
    struct dtls_port *p = of_udp(u);
    p->receiving = false;
    p->refs++;
    dispatch(p, NULL, len);
    want_datagram(p);
    rs_port_unref(p);
}

static void udp_recv_canceled(USocket *u, ISocket *s, void *buf)
{
    (void)s;
    (void)buf;
    of_udp(u)->receiving = false;
}

static void udp_send_result(USocket *u, ISocket *s)
{
    (void)s;
    send_done(of_udp(u));
}

static void udp_bind_result(USocket *u, ISocket *s, const char *addr, uint16_t port)
{
    (void)s;
    struct dtls_port *p = of_udp(u);
    if (p->owner)
        rs_dtls_port_bound(p->owner, addr, port);
    want_datagram(p);
}

static void udp_connect_complete(USocket *u, ISocket *s)
{
    (void)s;
    struct dtls_port *p = of_udp(u);
    want_datagram(p);
    if (p->owner)
        rs_dtls_port_connected(p->owner);
}

/* The UDP socket ended (a bind or connect that failed, an error): so does everything on it. */
static void udp_shutdown(USocket *u, ISocket *s, shutdownreason_t reason)
{
    (void)s;
    struct dtls_port *p = of_udp(u);
    LOG(p, "dtls port %p: UDP socket closed: %s", (void *)p, SocketShutdownReasonToStr(reason));
    p->refs++;
    p->udp_closed = true;
    p->receiving = false;
    release_sends(p);
    for (size_t i = 0; i < p->table_size; i++) {
        while (p->table[i]) {
            struct rs_dtls *d = p->table[i];
            rs_port_remove(p, d);
            rs_dtls_port_closed(d, reason);
        }
    }
    if (p->owner)
        rs_dtls_port_closed(p->owner, reason);
    rs_port_unref(p);
}

static const USocketVtbl udp_vtbl = {
    .SocketConnectComplete = udp_connect_complete,
    .SocketBindResult = udp_bind_result,
    .SocketShutdown = udp_shutdown,
    .SocketSendResult = udp_send_result,
    .SocketRecvResult = udp_recv_result,
    .SocketRecvFromResult = udp_recv_from_result,
    .SocketRecvCanceled = udp_recv_canceled,
};
