#include "duplex.h"

#include <stdlib.h>
#include <string.h>

size_t h_first_diff(const uint8_t *a, const uint8_t *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (a[i] != b[i])
            return i;
    return n;
}

void h_peer_pump(struct h_peer *p)
{
    const struct h_duplex_config *c = p->cfg;
    while (p->tx_off < p->tx_total && p->fifo_n < c->window_sends && p->window < c->window_bytes) {
        size_t len = c->rand_size(&p->tx_rng);
        if (len > p->tx_total - p->tx_off)
            len = p->tx_total - p->tx_off;
        CALL(ISocket_Send(p->sock, p->tx + p->tx_off, len));
        p->zero_sends += len == 0;
        p->tx_off += len;
        p->sends++;
        p->fifo[(p->fifo_head + p->fifo_n++) % c->window_sends] = len;
        p->window += len;
    }
}

void h_peer_recv_next(struct h_peer *p)
{
    if (p->rx_off == p->rx_total) {
        p->tail = true;
        p->rreq = 1024;
        p->rpartial = true;
    } else {
        p->rreq = p->cfg->rand_size(&p->rx_rng);
        if (p->rreq == 0)
            p->rreq = 1;
        if (p->rreq > p->rx_total - p->rx_off)
            p->rreq = p->rx_total - p->rx_off;
        p->rpartial = h_rand(&p->rx_rng) & 1;
    }
    p->rpending = true;
    CALL(ISocket_Recv(p->sock, p->rbuf, p->rreq, p->rpartial));
}

static struct h_peer *peer_of(USocket *u)
{
    cr_assert_eq(h_in_api, 0, "callback inside an API call");
    return h_container_of(u, struct h_peer, user);
}

static void peer_connected(USocket *u, ISocket *s)
{
    struct h_peer *p = peer_of(u);
    cr_assert_eq(s, p->sock);
    cr_assert(!p->connected, "%s: second ConnectComplete", p->name);
    p->connected = true;
}

static void peer_accepted(USocket *u, ISocket *s)
{
    struct h_peer *p = peer_of(u);
    cr_assert(!p->connected, "%s: second AcceptComplete", p->name);
    p->sock = s;
    p->connected = true;
    h_peer_recv_next(p);
    h_peer_pump(p);
}

static void peer_send_result(USocket *u, ISocket *s)
{
    struct h_peer *p = peer_of(u);
    cr_assert_eq(s, p->sock);
    cr_assert_lt(p->results, p->sends, "%s: more SendResults than sends", p->name);
    cr_assert_gt(p->fifo_n, 0);
    if (!p->connected)
        p->results_before_connect++;
    p->window -= p->fifo[p->fifo_head];
    p->fifo_head = (p->fifo_head + 1) % p->cfg->window_sends;
    p->fifo_n--;
    p->results++;
    if (p->pump_on_result)
        h_peer_pump(p);
}

static void peer_recv_result(USocket *u, ISocket *s, void *buf, size_t len)
{
    struct h_peer *p = peer_of(u);
    cr_assert_eq(s, p->sock);
    cr_assert(p->rpending, "%s: RecvResult without a receive", p->name);
    cr_assert_eq(buf, p->rbuf, "%s: RecvResult with a foreign buffer", p->name);
    p->rpending = false;
    if (p->tail) {
        p->tail_results++;
        cr_assert_fail("%s: %zu bytes beyond the %zu sent", p->name, len, p->rx_total);
    }
    p->recv_results++;
    if (p->rpartial) {
        p->partial_recvs++;
        cr_assert(len >= 1 && len <= p->rreq, "%s: partial receive of %zu for %zu", p->name, len,
                  p->rreq);
    } else {
        p->full_recvs++;
        cr_assert_eq(len, p->rreq, "%s: full receive of %zu returned %zu", p->name, p->rreq, len);
    }
    size_t d = h_first_diff(buf, p->rx_expect + p->rx_off, len);
    cr_assert_eq(d, len, "%s: byte %zu of the stream differs", p->name, p->rx_off + d);
    p->rx_off += len;
    h_peer_recv_next(p);
}

static void peer_canceled(USocket *u, ISocket *s, void *buf)
{
    struct h_peer *p = peer_of(u);
    cr_assert_eq(s, p->sock);
    cr_assert(p->rpending && buf == p->rbuf, "%s: RecvCanceled for no receive", p->name);
    p->rpending = false;
    p->canceled++;
    p->last_event = 1;
}

static void peer_shutdown(USocket *u, ISocket *s, shutdownreason_t r)
{
    struct h_peer *p = peer_of(u);
    cr_assert_eq(s, p->sock);
    p->shutdowns++;
    p->reason = r;
    p->last_event = 2;
}

static const USocketVtbl peer_vtbl = {
    .SocketConnectComplete = peer_connected,
    .SocketAcceptComplete = peer_accepted,
    .SocketShutdown = peer_shutdown,
    .SocketSendResult = peer_send_result,
    .SocketRecvResult = peer_recv_result,
    .SocketRecvCanceled = peer_canceled,
};

void h_peer_init(struct h_peer *p, const struct h_duplex_config *cfg, const char *name,
                 uint32_t seed, const uint8_t *tx, const uint8_t *rx, size_t total)
{
    cr_assert_leq(cfg->window_sends, H_DUPLEX_MAX_SENDS);
    memset(p, 0, sizeof(*p));
    p->user.vtbl = &peer_vtbl;
    p->cfg = cfg;
    p->name = name;
    p->tx_rng = seed;
    p->rx_rng = seed * 7919;
    p->tx = tx;
    p->tx_total = total;
    p->rx_expect = rx;
    p->rx_total = total;
    p->pump_on_result = true;
    p->rbuf = malloc(cfg->rbuf_size);
    cr_assert_not_null(p->rbuf);
}

bool h_peer_done(const struct h_peer *p)
{
    return p->tx_off == p->tx_total && p->results == p->sends && p->rx_off == p->rx_total;
}

bool h_duplex_done(struct h_env *e, void *arg)
{
    (void)e;
    struct h_peer *pp = arg;
    return h_peer_done(&pp[0]) && h_peer_done(&pp[1]);
}

bool h_duplex_both_shut(struct h_env *e, void *arg)
{
    (void)e;
    struct h_peer *pp = arg;
    return pp[0].shutdowns && pp[1].shutdowns;
}

static void lst_listen(USocket *u, ISocket *s, const char *addr, uint16_t port)
{
    (void)addr;
    (void)port;
    struct h_listener *l = h_container_of(u, struct h_listener, user);
    cr_assert_eq(h_in_api, 0, "ListenResult inside an API call");
    l->offers++;
    CALL(ISocket_Accept(s, l->next_user));
}

static void lst_shutdown(USocket *u, ISocket *s, shutdownreason_t r)
{
    (void)u;
    (void)s;
    cr_assert_fail("listener shut down: %s", SocketShutdownReasonToStr(r));
}

static const USocketVtbl lst_vtbl = {
    .SocketListenResult = lst_listen,
    .SocketShutdown = lst_shutdown,
};

uint16_t h_listener_start(struct h_env *env, struct h_listener *l, ISocketProvider *provider,
                          ISocketContext *ctx)
{
    memset(l, 0, sizeof(*l));
    l->user.vtbl = &lst_vtbl;
    CALL(l->sock =
             ISocketProvider_CreateSocket(provider, env->mux, &l->user, env->log, false, ctx));
    cr_assert_not_null(l->sock);
    CALL(ISocket_Bind(l->sock, "127.0.0.1", 0));
    CALL(ISocket_Listen(l->sock));
    char a[64];
    uint16_t port = 0;
    CALL(ISocket_GetLocalAddress(l->sock, a, sizeof(a), &port));
    cr_assert_neq(port, 0);
    return port;
}
