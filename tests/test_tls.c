/* TLS sockets, ringsock against ringsock: handshake, exact bytes both ways, SendResult
 * accounting, shutdown with close_notify, receive cancelation, Delete at awkward
 * moments, misbehaving peers (garbage, truncated and oversized records, vanishing
 * mid-handshake), rejected connections, misuse that aborts, and StartTLS.
 *
 * Certificates and verification are in test_tls_certs.c; here the server uses the
 * certificate it generates and the client does not verify it. */
#include "harness.h"
#include "reactor.h" /* struct IIoMux: settings */

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static struct h_env env;
static ISocketProvider *tls;
static ISocketContext *sctx, *cctx;

static void setup(void)
{
    h_env_init(&env);
    tls = CreateTLSSocketProvider(env.tcp);
    sctx = ISocketProvider_CreateSocketContext(tls, env.log);
    cctx = ISocketProvider_CreateSocketContext(tls, env.log);
    ISocketContext_SetVerifyPeer(cctx, false); /* the server's certificate is self-signed */
}

static void teardown(void)
{
    ISocketContext_Delete(sctx);
    ISocketContext_Delete(cctx);
    ISocketProvider_Delete(tls);
    h_env_fini(&env);
}

TestSuite(tls, .init = setup, .fini = teardown, .timeout = 30);

static uint16_t tls_listen(struct h_sock *l)
{
    return h_listen_on(&env, tls, sctx, l, "127.0.0.1");
}

static ISocket *tls_client(struct h_sock *c, uint16_t port, const char *name)
{
    return h_connect_on(&env, tls, cctx, c, port, name);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static size_t first_diff(const uint8_t *a, const uint8_t *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (a[i] != b[i])
            return i;
    return n;
}

/* The listener has handed out its n-th connection and that one has ended. */
struct child_arg {
    struct h_sock *l;
    size_t n;
};
static bool child_shut(struct h_env *e, void *arg)
{
    (void)e;
    struct child_arg *a = arg;
    return a->l->naccepted >= a->n && h_has_shutdown(a->l->accepted[a->n - 1]);
}
static bool wait_child_shut(struct h_sock *l, size_t n, unsigned ms)
{
    struct child_arg a = {l, n};
    return h_run_until(&env, child_shut, &a, ms);
}

static bool listen_count(struct h_env *e, void *arg)
{
    (void)e;
    struct child_arg *a = arg;
    return h_count(a->l, H_LISTEN_RESULT) >= a->n;
}

/* Every connection the listener handed out has either completed or ended, so none is
 * left inside the engine when the test frees its sockets. */
static bool settled(struct h_env *e, void *arg)
{
    (void)e;
    struct h_sock *l = arg;
    for (size_t i = 0; i < l->naccepted; i++)
        if (!h_count(l->accepted[i], H_ACCEPT_COMPLETE) && !h_has_shutdown(l->accepted[i]))
            return false;
    return true;
}
static void free_listener(struct h_sock *l)
{
    cr_assert(h_run_until(&env, settled, l, 3000), "a connection is stuck in its handshake");
    h_sock_free(l);
}

/* A child the application saw only through its end: the handshake failed. */
static void assert_child_handshake_failed(struct h_sock *child)
{
    cr_assert(h_has_shutdown(child), "%s", h_dump(child));
    cr_assert_eq(h_count(child, H_ACCEPT_COMPLETE), 0, "%s", h_dump(child));
    cr_assert_eq(h_count(child, H_SHUTDOWN), 1, "%s", h_dump(child));
    cr_assert_eq(h_last(child, H_SHUTDOWN)->reason, SOCKET_TLS_HANDSHAKE_FAILED, "%s",
                 h_dump(child));
}

/* A good client still gets served: echo of a short message, then a clean close. */
static void assert_listener_serves(struct h_sock *l, uint16_t port)
{
    l->echo = true; /* for the connections from now on */
    struct h_sock *c = h_sock_new(&env);
    tls_client(c, port, "localhost");
    static const char msg[] = "still serving";
    static char in[sizeof(msg)];
    CALL(ISocket_Send(c->sock, msg, sizeof(msg)));
    CALL(ISocket_Recv(c->sock, in, sizeof(in), false));
    cr_assert(h_wait_count(&env, c, H_RECV_RESULT, 1, 4000), "client: %s", h_dump(c));
    cr_assert_eq(c->ev[0].kind, H_CONNECT_COMPLETE, "%s", h_dump(c));
    cr_assert_arr_eq(in, msg, sizeof(msg));
    cr_assert_eq(h_count(c, H_SHUTDOWN), 0, "%s", h_dump(c));
    CALL(ISocket_Shutdown(c->sock));
    cr_assert(h_wait_count(&env, c, H_SHUTDOWN, 1, 3000), "%s", h_dump(c));
    cr_assert_eq(h_last(c, H_SHUTDOWN)->reason, SOCKET_SHUTDOWN_NORMAL);
    CALL(ISocket_Delete(c->sock));
    c->sock = NULL;
    h_sock_free(c);
}

/* Reads from a raw socket until the peer closes (EOF or reset) or timeout. */
static bool raw_wait_closed(int fd, unsigned timeout_ms)
{
    uint8_t buf[4096];
    double end = now_s() + timeout_ms / 1000.0;
    while (now_s() < end) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int r = poll(&p, 1, 50);
        if (r <= 0)
            continue;
        ssize_t n = recv(fd, buf, sizeof(buf), 0);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
            return true;
    }
    return false;
}

Test(tls, echo_roundtrip_exact_bytes)
{
    struct h_sock *l = h_sock_new(&env);
    l->echo = true;
    uint16_t port = tls_listen(l);
    struct h_sock *c = h_sock_new(&env);
    tls_client(c, port, "localhost");
    static const char msg[] = "hello over tls";
    CALL(ISocket_Send(c->sock, msg, sizeof(msg))); /* before the handshake: held */
    static char in[sizeof(msg)];
    CALL(ISocket_Recv(c->sock, in, sizeof(in), false));
    cr_assert_eq(c->nev, 0);
    cr_assert(h_wait_count(&env, c, H_RECV_RESULT, 1, 5000), "%s", h_dump(c));
    cr_assert_eq(c->ev[0].kind, H_CONNECT_COMPLETE, "%s", h_dump(c));
    cr_assert_eq(h_count(c, H_SEND_RESULT), 1);
    cr_assert_arr_eq(in, msg, sizeof(msg));
    CALL(ISocket_Shutdown(c->sock));
    cr_assert(h_wait_count(&env, c, H_SHUTDOWN, 1, 3000));
    cr_assert_eq(h_last(c, H_SHUTDOWN)->reason, SOCKET_SHUTDOWN_NORMAL);
    cr_assert(h_wait_count(&env, l->accepted[0], H_SHUTDOWN, 1, 3000), "%s",
              h_dump(l->accepted[0]));
    cr_assert_eq(h_last(l->accepted[0], H_SHUTDOWN)->reason, SOCKET_SHUTDOWN_BY_PEER);
    h_sock_free(c);
    free_listener(l);
}

/* Kernel TLS asked for (on the context and through RINGSOCK_KTLS=1): where the kernel has
 * the tls ULP both directions are offloaded after the handshake; where it has none the
 * socket works in user space with no error and says so (api.md: the fallback is silent,
 * semantics unchanged). test_ktls covers the offload itself. */
Test(tls, kernel_tls_asked_for_offloads_or_falls_back_to_user_space)
{
    setenv("RINGSOCK_KTLS", "1", 1);
    ISocketContext *kctx = ISocketProvider_CreateSocketContext(tls, env.log);
    unsetenv("RINGSOCK_KTLS");
    ISocketContext_SetVerifyPeer(kctx, false);
    ISocketContext_EnableKernelTLS(sctx, true);
    struct h_sock *l = h_sock_new(&env);
    l->echo = true;
    uint16_t port = tls_listen(l);
    struct h_sock *c = h_sock_new(&env);
    h_connect_on(&env, tls, kctx, c, port, "localhost");
    cr_assert_eq(ISocket_GetKernelTLS(c->sock), 0u); /* before the handshake */
    static const char msg[] = "kernel tls asked for";
    static char in[sizeof(msg)];
    CALL(ISocket_Send(c->sock, msg, sizeof(msg)));
    CALL(ISocket_Recv(c->sock, in, sizeof(in), false));
    cr_assert(h_wait_count(&env, c, H_RECV_RESULT, 1, 5000), "%s", h_dump(c));
    cr_assert_arr_eq(in, msg, sizeof(msg));
    unsigned want = h_kernel_has_tls_ulp() ? KTLS_TX | KTLS_RX : 0;
    cr_assert_eq(ISocket_GetKernelTLS(c->sock), want);
    cr_assert_eq(ISocket_GetKernelTLS(l->accepted[0]->sock), want);
    cr_assert_eq(ISocket_GetKernelTLS(l->sock), 0u); /* a listener carries no records */
    CALL(ISocket_Shutdown(c->sock));
    cr_assert(h_wait_count(&env, c, H_SHUTDOWN, 1, 3000));
    cr_assert_eq(h_last(c, H_SHUTDOWN)->reason, SOCKET_SHUTDOWN_NORMAL);
    h_sock_free(c);
    free_listener(l);
    ISocketContext_EnableKernelTLS(sctx, false);
    ISocketContext_Delete(kctx);
}

/* ---- full duplex: 16 MiB each way, random send sizes (0 included), random receives ---- */

#define BULK_BYTES   (16u << 20)
#define WINDOW_BYTES (2u << 20) /* sent but not yet confirmed by a SendResult */
#define WINDOW_SENDS 512

struct peer {
    USocket user;
    ISocket *sock;
    const char *name;
    uint32_t tx_rng, rx_rng;
    const uint8_t *tx;
    size_t tx_total, tx_off;
    size_t sends, results, zero_sends;
    size_t fifo[WINDOW_SENDS];
    size_t fifo_head, fifo_n, window;
    const uint8_t *rx_expect;
    size_t rx_total, rx_off;
    uint8_t *rbuf;
    size_t rreq;
    bool rpartial, rpending, tail;
    size_t recv_results, full_recvs, partial_recvs, canceled;
    bool connected;
    size_t results_before_connect;
    size_t shutdowns;
    shutdownreason_t reason;
    int last_event; /* 1 canceled, 2 shutdown */
    bool pump_on_result;
};

/* 0 (one in 32), then 1..256, 1..16 KiB or 1..128 KiB. */
static size_t rand_size(uint32_t *rng)
{
    uint32_t r = h_rand(rng);
    if ((r & 31) == 0)
        return 0;
    switch ((r >> 5) & 3) {
    case 0:
        return 1 + (r >> 8) % 256;
    case 1:
        return 1 + (r >> 8) % 16384;
    default:
        return 1 + (r >> 8) % (128 * 1024);
    }
}

static void peer_pump(struct peer *p)
{
    while (p->tx_off < p->tx_total && p->fifo_n < WINDOW_SENDS && p->window < WINDOW_BYTES) {
        size_t len = rand_size(&p->tx_rng);
        if (len > p->tx_total - p->tx_off)
            len = p->tx_total - p->tx_off;
        CALL(ISocket_Send(p->sock, p->tx + p->tx_off, len));
        p->zero_sends += len == 0;
        p->tx_off += len;
        p->sends++;
        p->fifo[(p->fifo_head + p->fifo_n++) % WINDOW_SENDS] = len;
        p->window += len;
    }
}

static void peer_recv_next(struct peer *p)
{
    if (p->rx_off == p->rx_total) {
        p->tail = true; /* a last receive catches any byte too many */
        p->rreq = 1024;
        p->rpartial = true;
    } else {
        p->rreq = rand_size(&p->rx_rng);
        if (p->rreq == 0)
            p->rreq = 1;
        if (p->rreq > p->rx_total - p->rx_off)
            p->rreq = p->rx_total - p->rx_off;
        p->rpartial = h_rand(&p->rx_rng) & 1;
    }
    p->rpending = true;
    CALL(ISocket_Recv(p->sock, p->rbuf, p->rreq, p->rpartial));
}

static struct peer *peer_of(USocket *u)
{
    cr_assert_eq(h_in_api, 0, "callback inside an API call");
    return h_container_of(u, struct peer, user);
}

static void peer_connected(USocket *u, ISocket *s)
{
    struct peer *p = peer_of(u);
    cr_assert_eq(s, p->sock);
    cr_assert(!p->connected, "%s: second ConnectComplete", p->name);
    p->connected = true;
}

static void peer_accepted(USocket *u, ISocket *s)
{
    struct peer *p = peer_of(u);
    cr_assert(!p->connected, "%s: second AcceptComplete", p->name);
    p->sock = s;
    p->connected = true;
    peer_recv_next(p);
    peer_pump(p);
}

static void peer_send_result(USocket *u, ISocket *s)
{
    struct peer *p = peer_of(u);
    cr_assert_eq(s, p->sock);
    cr_assert_lt(p->results, p->sends, "%s: more SendResults than sends", p->name);
    cr_assert_gt(p->fifo_n, 0);
    if (!p->connected)
        p->results_before_connect++;
    p->window -= p->fifo[p->fifo_head];
    p->fifo_head = (p->fifo_head + 1) % WINDOW_SENDS;
    p->fifo_n--;
    p->results++;
    if (p->pump_on_result)
        peer_pump(p);
}

static void peer_recv_result(USocket *u, ISocket *s, void *buf, size_t len)
{
    struct peer *p = peer_of(u);
    cr_assert_eq(s, p->sock);
    cr_assert(p->rpending, "%s: RecvResult without a receive", p->name);
    cr_assert_eq(buf, p->rbuf, "%s: RecvResult with a foreign buffer", p->name);
    p->rpending = false;
    cr_assert(!p->tail, "%s: %zu bytes beyond the %zu sent", p->name, len, p->rx_total);
    p->recv_results++;
    if (p->rpartial) {
        p->partial_recvs++;
        cr_assert(len >= 1 && len <= p->rreq, "%s: partial receive of %zu for %zu", p->name, len,
                  p->rreq);
    } else {
        p->full_recvs++;
        cr_assert_eq(len, p->rreq, "%s: full receive of %zu returned %zu", p->name, p->rreq, len);
    }
    size_t d = first_diff(buf, p->rx_expect + p->rx_off, len);
    cr_assert_eq(d, len, "%s: byte %zu of the stream differs", p->name, p->rx_off + d);
    p->rx_off += len;
    peer_recv_next(p);
}

static void peer_canceled(USocket *u, ISocket *s, void *buf)
{
    struct peer *p = peer_of(u);
    cr_assert_eq(s, p->sock);
    cr_assert(p->rpending && buf == p->rbuf, "%s: RecvCanceled for no receive", p->name);
    p->rpending = false;
    p->canceled++;
    p->last_event = 1;
}

static void peer_shutdown(USocket *u, ISocket *s, shutdownreason_t r)
{
    struct peer *p = peer_of(u);
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

static void peer_init(struct peer *p, const char *name, uint32_t seed, const uint8_t *tx,
                      const uint8_t *rx, size_t total)
{
    memset(p, 0, sizeof(*p));
    p->user.vtbl = &peer_vtbl;
    p->name = name;
    p->tx_rng = seed;
    p->rx_rng = seed * 7919;
    p->tx = tx;
    p->tx_total = total;
    p->rx_expect = rx;
    p->rx_total = total;
    p->pump_on_result = true;
    p->rbuf = malloc(128 * 1024);
    cr_assert_not_null(p->rbuf);
}

static bool peer_done(const struct peer *p)
{
    return p->tx_off == p->tx_total && p->results == p->sends && p->rx_off == p->rx_total;
}

static bool duplex_done(struct h_env *e, void *arg)
{
    (void)e;
    struct peer *pp = arg;
    return peer_done(&pp[0]) && peer_done(&pp[1]);
}

static bool both_shut(struct h_env *e, void *arg)
{
    (void)e;
    struct peer *pp = arg;
    return pp[0].shutdowns && pp[1].shutdowns;
}

/* A listener handing each connection to next_user. */
struct listener {
    USocket user;
    ISocket *sock;
    USocket *next_user;
    unsigned offers;
};

static void lst_listen(USocket *u, ISocket *s, const char *addr, uint16_t port)
{
    (void)addr;
    (void)port;
    struct listener *l = h_container_of(u, struct listener, user);
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

static uint16_t listener_start(struct listener *l)
{
    memset(l, 0, sizeof(*l));
    l->user.vtbl = &lst_vtbl;
    CALL(l->sock = ISocketProvider_CreateSocket(tls, env.mux, &l->user, env.log, false, sctx));
    cr_assert_not_null(l->sock);
    CALL(ISocket_Bind(l->sock, "127.0.0.1", 0));
    CALL(ISocket_Listen(l->sock));
    char a[64];
    uint16_t port = 0;
    CALL(ISocket_GetLocalAddress(l->sock, a, sizeof(a), &port));
    cr_assert_neq(port, 0);
    return port;
}

Test(tls, full_duplex_16mib_random_sizes_exact_bytes, .timeout = 30)
{
    const size_t total = BULK_BYTES;
    uint8_t *up = malloc(total), *down = malloc(total);
    cr_assert(up && down);
    h_fill(up, total, 0x5151);
    h_fill(down, total, 0xa7a7); /* different streams: crossed directions would show */

    struct listener l;
    uint16_t port = listener_start(&l);
    struct peer pp[2]; /* [0] client, [1] server side */
    peer_init(&pp[0], "client", 13, up, down, total);
    peer_init(&pp[1], "server", 31, down, up, total);
    l.next_user = &pp[1].user;

    double t0 = now_s();
    CALL(pp[0].sock =
             ISocketProvider_CreateSocket(tls, env.mux, &pp[0].user, env.log, false, cctx));
    CALL(ISocket_Connect(pp[0].sock, h_addr(port), "localhost"));
    /* Receive and sends (0-byte ones among them) before the handshake is done. */
    peer_recv_next(&pp[0]);
    peer_pump(&pp[0]);
    cr_assert_gt(pp[0].sends, 1);
    bool ok = h_run_until(&env, duplex_done, pp, 25000);
    double t1 = now_s();
    for (int i = 0; i < 2; i++)
        cr_assert(ok, "%s: sent %zu/%zu (%zu sends, %zu results), received %zu/%zu", pp[i].name,
                  pp[i].tx_off, total, pp[i].sends, pp[i].results, pp[i].rx_off, total);
    cr_assert_eq(l.offers, 1);
    for (int i = 0; i < 2; i++) {
        cr_assert(pp[i].connected);
        cr_assert_eq(pp[i].sends, pp[i].results, "%s: one SendResult per Send", pp[i].name);
        cr_assert_gt(pp[i].zero_sends, 0, "%s: the mix has 0-byte sends", pp[i].name);
        cr_assert_gt(pp[i].full_recvs, 0);
        cr_assert_gt(pp[i].partial_recvs, 0);
        cr_assert_eq(pp[i].results_before_connect, 0,
                     "%s: a SendResult came before the handshake finished", pp[i].name);
        cr_assert_eq(pp[i].shutdowns, 0, "%s: shut down early: %s", pp[i].name,
                     SocketShutdownReasonToStr(pp[i].reason));
    }
    h_run_for(&env, 20); /* stray bytes or results would show now */
    cr_assert(pp[0].tail && pp[0].rpending && pp[1].tail && pp[1].rpending);

    /* Client shuts down: NORMAL after its buffer comes back; server: buffer, BY_PEER. */
    CALL(ISocket_Shutdown(pp[0].sock));
    cr_assert(h_run_until(&env, both_shut, pp, 3000), "client %zu, server %zu shutdowns",
              pp[0].shutdowns, pp[1].shutdowns);
    cr_assert_eq(pp[0].reason, SOCKET_SHUTDOWN_NORMAL, "%s",
                 SocketShutdownReasonToStr(pp[0].reason));
    cr_assert_eq(pp[1].reason, SOCKET_SHUTDOWN_BY_PEER, "%s",
                 SocketShutdownReasonToStr(pp[1].reason));
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(pp[i].canceled, 1, "%s: the receive buffer comes back once", pp[i].name);
        cr_assert_eq(pp[i].last_event, 2, "%s: RecvCanceled before SocketShutdown", pp[i].name);
        cr_assert_eq(pp[i].shutdowns, 1);
    }
    cr_log_info("TLS 2 x %zu MiB in %.2f s", total >> 20, t1 - t0);
    cr_assert_lt(t1 - t0, 5.0, "the transfer took %.2f s", t1 - t0);
    CALL(ISocket_Delete(pp[0].sock));
    CALL(ISocket_Delete(pp[1].sock));
    CALL(ISocket_Delete(l.sock));
    free(pp[0].rbuf);
    free(pp[1].rbuf);
    free(up);
    free(down);
}

/* ---- SendResult accounting ------------------------------------------------------------ */

Test(tls, one_send_result_per_send_in_order_with_zero_byte_and_early_sends)
{
    struct h_sock *l = h_sock_new(&env);
    l->sink = l->collect = true;
    uint16_t port = tls_listen(l);
    struct h_sock *c = h_sock_new(&env);
    tls_client(c, port, "localhost");
    static uint8_t big[300000];
    h_fill(big, sizeof(big), 77);
    /* Before the handshake: 0, 5, 0, 300000, 0 bytes. */
    const size_t sizes[] = {0, 5, 0, sizeof(big) - 5, 0};
    size_t off = 0;
    for (size_t i = 0; i < 5; i++) {
        CALL(ISocket_Send(c->sock, big + off, sizes[i]));
        off += sizes[i];
    }
    cr_assert_eq(c->nev, 0, "a callback inside the call: %s", h_dump(c));
    cr_assert(h_wait_count(&env, c, H_SEND_RESULT, 5, 4000), "%s", h_dump(c));
    cr_assert_eq(c->ev[0].kind, H_CONNECT_COMPLETE, "SendResults before the handshake: %s",
                 h_dump(c));
    /* After the handshake: a lone 0-byte send, and one behind a large send. */
    CALL(ISocket_Send(c->sock, big, 0));
    cr_assert(h_wait_count(&env, c, H_SEND_RESULT, 6, 2000), "%s", h_dump(c));
    CALL(ISocket_Send(c->sock, big, sizeof(big)));
    CALL(ISocket_Send(c->sock, big, 0));
    CALL(ISocket_Send(c->sock, big, 1));
    cr_assert(h_wait_count(&env, c, H_SEND_RESULT, 9, 3000), "%s", h_dump(c));
    cr_assert_not_null(h_wait_accepted(&env, l, 1, 2000));
    struct h_sock *srv = l->accepted[0];
    size_t expect = 2 * sizeof(big) + 1;
    for (int i = 0; i < 200 && srv->data_len < expect; i++)
        h_run_for(&env, 10);
    cr_assert_eq(srv->data_len, expect, "server got %zu of %zu", srv->data_len, expect);
    cr_assert_arr_eq(srv->data, big, sizeof(big));
    cr_assert_arr_eq(srv->data + sizeof(big), big, sizeof(big));
    cr_assert_eq(srv->data[2 * sizeof(big)], big[0]);
    h_run_for(&env, 20);
    cr_assert_eq(h_count(c, H_SEND_RESULT), 9, "exactly one per send: %s", h_dump(c));
    cr_assert_eq(h_count(c, H_SHUTDOWN), 0, "%s", h_dump(c));
    ISocketStats st;
    ISocket_GetStats(c->sock, &st);
    cr_assert_eq(st.bytesSent, expect);
    h_sock_free(c);
    free_listener(l);
}

/* ---- receives ---------------------------------------------------------------------------- */

static bool stats_received(struct h_env *e, void *arg)
{
    (void)e;
    struct h_sock *hs = arg;
    ISocketStats st;
    ISocket_GetStats(hs->sock, &st);
    return st.bytesReceived >= (uint64_t)(uintptr_t)hs->ctx;
}

static bool received_or_kernel_rx(struct h_env *e, void *arg)
{
    struct h_sock *hs = arg;
    return stats_received(e, hs) || (ISocket_GetKernelTLS(hs->sock) & KTLS_RX);
}

/* Waits until the socket has decrypted hs->ctx bytes into an outstanding Recv. Once the
 * kernel opens the records (RINGSOCK_KTLS=1 where the kernel has the tls ULP) they land
 * in the buffer unseen until the receive completes: then the bytes get time to arrive,
 * and the test's checks hold whether or not they did. */
static bool wait_received(struct h_sock *hs)
{
    if (!h_run_until(&env, received_or_kernel_rx, hs, 3000))
        return false;
    if (!stats_received(&env, hs))
        h_run_for(&env, 300);
    return true;
}

Test(tls, full_receive_returns_exactly_len_partial_any)
{
    struct h_sock *l = h_sock_new(&env);
    uint16_t port = tls_listen(l);
    struct h_sock *c = h_sock_new(&env);
    tls_client(c, port, "localhost");
    struct h_sock *srv = h_wait_accepted(&env, l, 1, 3000);
    cr_assert_not_null(srv);
    cr_assert(h_wait_count(&env, c, H_CONNECT_COMPLETE, 1, 3000), "%s", h_dump(c));
    static uint8_t out[10000], in[10000];
    h_fill(out, sizeof(out), 5);
    /* Three records of 1000 bytes; a full receive of 2500 spans them. */
    for (int i = 0; i < 3; i++)
        CALL(ISocket_Send(srv->sock, out + i * 1000, 1000));
    CALL(ISocket_Recv(c->sock, in, 2500, false));
    cr_assert(h_wait_count(&env, c, H_RECV_RESULT, 1, 3000), "%s", h_dump(c));
    cr_assert_eq(h_last(c, H_RECV_RESULT)->len, 2500);
    cr_assert_eq(h_last(c, H_RECV_RESULT)->buf, in);
    cr_assert_arr_eq(in, out, 2500);
    /* 500 are left: a full receive of 600 waits for the next record. */
    CALL(ISocket_Recv(c->sock, in, 600, false));
    h_run_for(&env, 50);
    cr_assert_eq(h_count(c, H_RECV_RESULT), 1, "a full receive came short: %s", h_dump(c));
    CALL(ISocket_Send(srv->sock, out + 3000, 7000));
    cr_assert(h_wait_count(&env, c, H_RECV_RESULT, 2, 3000), "%s", h_dump(c));
    cr_assert_eq(h_last(c, H_RECV_RESULT)->len, 600);
    cr_assert_arr_eq(in, out + 2500, 600);
    /* Partial: 1..len, in order. */
    size_t got = 3100;
    while (got < sizeof(out)) {
        size_t n = h_count(c, H_RECV_RESULT);
        CALL(ISocket_Recv(c->sock, in, 4096, true));
        cr_assert(h_wait_count(&env, c, H_RECV_RESULT, n + 1, 3000), "%s", h_dump(c));
        size_t len = h_last(c, H_RECV_RESULT)->len;
        cr_assert(len >= 1 && len <= 4096);
        cr_assert_arr_eq(in, out + got, len);
        got += len;
    }
    cr_assert_eq(got, sizeof(out));
    h_sock_free(c);
    free_listener(l);
}

Test(tls, recv_cancel_keeps_decrypted_bytes)
{
    struct h_sock *l = h_sock_new(&env);
    uint16_t port = tls_listen(l);
    struct h_sock *c = h_sock_new(&env);
    tls_client(c, port, "localhost");
    struct h_sock *srv = h_wait_accepted(&env, l, 1, 3000);
    cr_assert_not_null(srv);
    cr_assert(h_wait_count(&env, c, H_CONNECT_COMPLETE, 1, 3000), "%s", h_dump(c));
    static uint8_t out[8000], in1[4000], in2[4000];
    h_fill(out, sizeof(out), 9);

    /* A cancel with nothing received returns the buffer and loses nothing. */
    CALL(ISocket_Recv(c->sock, in1, 100, true));
    CALL(ISocket_RecvCancel(c->sock));
    cr_assert_eq(h_count(c, H_RECV_CANCELED), 0, "RecvCanceled inside RecvCancel");
    cr_assert(h_wait_count(&env, c, H_RECV_CANCELED, 1, 2000), "%s", h_dump(c));
    cr_assert_eq(h_last(c, H_RECV_CANCELED)->buf, in1);

    /* 1000 bytes arrive into a full receive of 4000, which is then canceled. */
    CALL(ISocket_Recv(c->sock, in1, 4000, false));
    CALL(ISocket_Send(srv->sock, out, 1000));
    c->ctx = (void *)(uintptr_t)1000;
    cr_assert(wait_received(c), "the 1000 bytes were not decrypted");
    cr_assert_eq(h_count(c, H_RECV_RESULT), 0, "%s", h_dump(c));
    CALL(ISocket_RecvCancel(c->sock));
    cr_assert(h_wait_count(&env, c, H_RECV_CANCELED, 2, 2000), "%s", h_dump(c));
    cr_assert_eq(h_last(c, H_RECV_CANCELED)->buf, in1);
    cr_assert_eq(h_count(c, H_SHUTDOWN), 0, "RecvCancel leaves the socket open");

    /* The next receives get those bytes first, then the rest. */
    CALL(ISocket_Recv(c->sock, in2, 300, false));
    cr_assert(h_wait_count(&env, c, H_RECV_RESULT, 1, 2000), "%s", h_dump(c));
    cr_assert_eq(h_last(c, H_RECV_RESULT)->len, 300);
    cr_assert_eq(h_last(c, H_RECV_RESULT)->buf, in2);
    cr_assert_arr_eq(in2, out, 300);
    CALL(ISocket_Send(srv->sock, out + 1000, 2000));
    CALL(ISocket_Recv(c->sock, in2, 2700, false));
    cr_assert(h_wait_count(&env, c, H_RECV_RESULT, 2, 3000), "%s", h_dump(c));
    cr_assert_eq(h_last(c, H_RECV_RESULT)->len, 2700);
    cr_assert_arr_eq(in2, out + 300, 2700);

    /* Once more, then partial receives: the canceled bytes come first. */
    c->ctx = (void *)(uintptr_t)3500;
    CALL(ISocket_Recv(c->sock, in1, 4000, false));
    CALL(ISocket_Send(srv->sock, out + 3000, 500));
    cr_assert(wait_received(c));
    CALL(ISocket_RecvCancel(c->sock));
    CALL(ISocket_Send(srv->sock, out + 3500, 4500));
    size_t got = 3000;
    while (got < sizeof(out)) {
        size_t n = h_count(c, H_RECV_RESULT);
        CALL(ISocket_Recv(c->sock, in2, sizeof(in2), true));
        cr_assert(h_wait_count(&env, c, H_RECV_RESULT, n + 1, 3000), "%s", h_dump(c));
        size_t len = h_last(c, H_RECV_RESULT)->len;
        cr_assert_leq(got + len, sizeof(out));
        cr_assert_arr_eq(in2, out + got, len, "stream differs at %zu", got);
        got += len;
    }
    cr_assert_eq(h_count(c, H_RECV_CANCELED), 3, "%s", h_dump(c));
    h_sock_free(c);
    free_listener(l);
}

/* ---- shutdown ------------------------------------------------------------------------------ */

Test(tls, shutdown_flushes_sends_then_close_notify)
{
    struct h_sock *l = h_sock_new(&env);
    l->sink = l->collect = true;
    uint16_t port = tls_listen(l);
    struct h_sock *c = h_sock_new(&env);
    tls_client(c, port, "localhost");
    cr_assert(h_wait_count(&env, c, H_CONNECT_COMPLETE, 1, 3000), "%s", h_dump(c));
    static uint8_t data[1 << 20];
    h_fill(data, sizeof(data), 1234);
    static uint8_t rbuf[4096];
    CALL(ISocket_Recv(c->sock, rbuf, sizeof(rbuf), true));
    /* The server's session ticket is read first: a client that closes with it unread is
     * reset (shutdown_with_the_peers_ticket_unread_resets_the_connection). Without this
     * wait only the time the client takes to encrypt 1 MiB lets it arrive, none with
     * kernel TLS. */
    cr_assert_not_null(h_wait_accepted(&env, l, 1, 3000));
    h_run_for(&env, 50);
    for (size_t i = 0; i < 16; i++)
        CALL(ISocket_Send(c->sock, data + i * (sizeof(data) / 16), sizeof(data) / 16));
    CALL(ISocket_Shutdown(c->sock));
    /* Ignored after Shutdown. */
    CALL(ISocket_Send(c->sock, data, 100));
    CALL(ISocket_Recv(c->sock, rbuf, 10, true)); /* the earlier receive is still out: ignored */
    cr_assert(h_wait_count(&env, c, H_SHUTDOWN, 1, 4000), "%s", h_dump(c));
    cr_assert_eq(h_last(c, H_SHUTDOWN)->reason, SOCKET_SHUTDOWN_NORMAL, "%s", h_dump(c));
    cr_assert_eq(h_count(c, H_SEND_RESULT), 16, "%s", h_dump(c));
    cr_assert_eq(c->ev[c->nev - 1].kind, H_SHUTDOWN, "%s", h_dump(c));
    cr_assert_eq(c->ev[c->nev - 2].kind, H_RECV_CANCELED, "%s", h_dump(c));
    cr_assert_eq(c->ev[c->nev - 2].buf, rbuf);
    for (size_t i = 1; i < 17; i++)
        cr_assert_eq(c->ev[i].kind, H_SEND_RESULT, "SendResults first: %s", h_dump(c));

    struct h_sock *srv = l->accepted[0];
    cr_assert(h_wait_count(&env, srv, H_SHUTDOWN, 1, 4000), "%s", h_dump(srv));
    cr_assert_eq(h_last(srv, H_SHUTDOWN)->reason, SOCKET_SHUTDOWN_BY_PEER, "%s", h_dump(srv));
    cr_assert_eq(srv->data_len, sizeof(data), "every byte before close_notify");
    cr_assert_arr_eq(srv->data, data, sizeof(data));
    cr_assert_eq(srv->ev[srv->nev - 2].kind, H_RECV_CANCELED, "buffer back first: %s", h_dump(srv));
    cr_assert_eq(srv->ev[srv->nev - 2].buf, srv->echo_buf);
    h_run_for(&env, 20);
    cr_assert_eq(c->ev[c->nev - 1].kind, H_SHUTDOWN, "nothing after SocketShutdown");
    cr_assert_eq(srv->ev[srv->nev - 1].kind, H_SHUTDOWN, "nothing after SocketShutdown");
    h_sock_free(c);
    free_listener(l);
}

/* The client ended with the server's session ticket unread in its socket: the kernel
 * answered the close with a reset, and the server lost the data it had not read yet. */
Test(tls, shutdown_with_the_peers_ticket_unread_resets_the_connection)
{
    struct h_sock *l = h_sock_new(&env);
    l->collect = true; /* the server receives only once the client is gone */
    uint16_t port = tls_listen(l);
    struct h_sock *c = h_sock_new(&env);
    tls_client(c, port, "localhost");
    cr_assert(h_wait_count(&env, c, H_CONNECT_COMPLETE, 1, 3000), "%s", h_dump(c));
    cr_assert(h_run_until(&env, settled, l, 3000));
    struct h_sock *srv = l->accepted[0];
    cr_assert_eq(h_count(srv, H_ACCEPT_COMPLETE), 1, "%s", h_dump(srv));
    h_run_for(&env, 20); /* the ticket (TLS 1.3) is in the client's socket now */
    static uint8_t data[256 * 1024];
    h_fill(data, sizeof(data), 77);
    CALL(ISocket_Send(c->sock, data, sizeof(data)));
    CALL(ISocket_Shutdown(c->sock));
    cr_assert(h_wait_count(&env, c, H_SHUTDOWN, 1, 4000), "%s", h_dump(c));
    cr_assert_eq(h_last(c, H_SHUTDOWN)->reason, SOCKET_SHUTDOWN_NORMAL, "%s", h_dump(c));
    h_run_for(&env, 50);
    srv->sink = true;
    CALL(ISocket_Recv(srv->sock, srv->echo_buf, srv->echo_len, true));
    cr_assert(h_wait_count(&env, srv, H_SHUTDOWN, 1, 4000), "%s", h_dump(srv));
    cr_assert_eq(h_last(srv, H_SHUTDOWN)->reason, SOCKET_SHUTDOWN_BY_PEER, "%s", h_dump(srv));
    cr_assert_eq(srv->data_len, sizeof(data), "every byte before close_notify");
    cr_assert_arr_eq(srv->data, data, sizeof(data));
    h_sock_free(c);
    free_listener(l);
}

Test(tls, shutdown_before_handshake_sends_queued_data_first)
{
    struct h_sock *l = h_sock_new(&env);
    l->sink = l->collect = true;
    uint16_t port = tls_listen(l);
    struct h_sock *c = h_sock_new(&env);
    tls_client(c, port, "localhost");
    static const char msg[] = "queued before the handshake";
    CALL(ISocket_Send(c->sock, msg, sizeof(msg)));
    CALL(ISocket_Send(c->sock, msg, 0));
    CALL(ISocket_Shutdown(c->sock));
    cr_assert(h_wait_count(&env, c, H_SHUTDOWN, 1, 4000), "%s", h_dump(c));
    cr_assert_eq(h_last(c, H_SHUTDOWN)->reason, SOCKET_SHUTDOWN_NORMAL, "%s", h_dump(c));
    cr_assert_eq(h_count(c, H_SEND_RESULT), 2, "%s", h_dump(c));
    struct h_sock *srv = h_wait_accepted(&env, l, 1, 3000);
    cr_assert_not_null(srv);
    cr_assert(h_wait_count(&env, srv, H_SHUTDOWN, 1, 3000), "%s", h_dump(srv));
    cr_assert_eq(h_last(srv, H_SHUTDOWN)->reason, SOCKET_SHUTDOWN_BY_PEER, "%s", h_dump(srv));
    cr_assert_eq(srv->data_len, sizeof(msg));
    cr_assert_arr_eq(srv->data, msg, sizeof(msg));
    h_sock_free(c);
    free_listener(l);
}

Test(tls, server_shutdown_client_sees_by_peer)
{
    struct h_sock *l = h_sock_new(&env);
    uint16_t port = tls_listen(l);
    struct h_sock *c = h_sock_new(&env);
    c->sink = c->collect = true;
    tls_client(c, port, "localhost");
    struct h_sock *srv = h_wait_accepted(&env, l, 1, 3000);
    cr_assert_not_null(srv);
    static uint8_t data[100000];
    h_fill(data, sizeof(data), 4);
    CALL(ISocket_Send(srv->sock, data, sizeof(data)));
    CALL(ISocket_Shutdown(srv->sock));
    cr_assert(h_wait_count(&env, srv, H_SHUTDOWN, 1, 3000), "%s", h_dump(srv));
    cr_assert_eq(h_last(srv, H_SHUTDOWN)->reason, SOCKET_SHUTDOWN_NORMAL);
    cr_assert_eq(h_count(srv, H_SEND_RESULT), 1);
    cr_assert(h_wait_count(&env, c, H_SHUTDOWN, 1, 3000), "%s", h_dump(c));
    cr_assert_eq(h_last(c, H_SHUTDOWN)->reason, SOCKET_SHUTDOWN_BY_PEER, "%s", h_dump(c));
    cr_assert_eq(c->data_len, sizeof(data));
    cr_assert_arr_eq(c->data, data, sizeof(data));
    cr_assert_eq(c->ev[c->nev - 2].kind, H_RECV_CANCELED, "%s", h_dump(c));
    h_sock_free(c);
    free_listener(l);
}

/* The peer's TCP connection ends without close_notify (the peer deleted its socket). */
Test(tls, peer_closes_tcp_without_close_notify)
{
    struct h_sock *l = h_sock_new(&env);
    l->sink = l->collect = true;
    uint16_t port = tls_listen(l);
    struct h_sock *c = h_sock_new(&env);
    tls_client(c, port, "localhost");
    static const char msg[] = "then gone";
    CALL(ISocket_Send(c->sock, msg, sizeof(msg)));
    struct h_sock *srv = h_wait_accepted(&env, l, 1, 3000);
    cr_assert_not_null(srv);
    cr_assert(h_wait_count(&env, c, H_SEND_RESULT, 1, 3000), "%s", h_dump(c));
    for (int i = 0; i < 100 && srv->data_len < sizeof(msg); i++)
        h_run_for(&env, 5);
    cr_assert_eq(srv->data_len, sizeof(msg));
    size_t before = c->nev;
    CALL(ISocket_Delete(c->sock)); /* no close_notify: the TCP connection just closes */
    c->sock = NULL;
    cr_assert(h_wait_count(&env, srv, H_SHUTDOWN, 1, 3000), "%s", h_dump(srv));
    /* Only close_notify is a clean end: a session cut short is LOST (README). */
    cr_assert_eq(h_last(srv, H_SHUTDOWN)->reason, SOCKET_LOST, "%s", h_dump(srv));
    cr_assert_eq(srv->ev[srv->nev - 2].kind, H_RECV_CANCELED, "%s", h_dump(srv));
    cr_assert_eq(srv->ev[srv->nev - 2].buf, srv->echo_buf);
    cr_assert_eq(c->nev, before, "a callback after Delete: %s", h_dump(c));
    h_sock_free(c);
    free_listener(l);
}

/* ---- Delete ---------------------------------------------------------------------------------- */

Test(tls, delete_inside_socket_shutdown)
{
    struct h_sock *l = h_sock_new(&env);
    l->sink = true;
    l->delete_on_shutdown = true;
    uint16_t port = tls_listen(l);
    struct h_sock *c = h_sock_new(&env);
    c->sink = true;
    c->delete_on_shutdown = true;
    tls_client(c, port, "localhost");
    static const char msg[] = "bye";
    CALL(ISocket_Send(c->sock, msg, sizeof(msg)));
    struct h_sock *srv = h_wait_accepted(&env, l, 1, 3000);
    cr_assert_not_null(srv);
    cr_assert(h_wait_count(&env, srv, H_RECV_RESULT, 1, 3000), "%s", h_dump(srv));
    CALL(ISocket_Shutdown(c->sock));
    cr_assert(h_wait_count(&env, c, H_SHUTDOWN, 1, 3000), "%s", h_dump(c));
    cr_assert(h_wait_count(&env, srv, H_SHUTDOWN, 1, 3000), "%s", h_dump(srv));
    cr_assert(c->deleted && srv->deleted);
    size_t nc = c->nev, ns = srv->nev;
    h_run_for(&env, 50);
    cr_assert_eq(c->nev, nc, "%s", h_dump(c));
    cr_assert_eq(srv->nev, ns, "%s", h_dump(srv));
    h_sock_free(c);
    free_listener(l);
}

Test(tls, delete_with_receive_and_send_in_flight)
{
    struct h_sock *l = h_sock_new(&env);
    uint16_t port = tls_listen(l);
    struct h_sock *c = h_sock_new(&env);
    tls_client(c, port, "localhost");
    struct h_sock *srv = h_wait_accepted(&env, l, 1, 3000);
    cr_assert_not_null(srv);
    cr_assert(h_wait_count(&env, c, H_CONNECT_COMPLETE, 1, 3000), "%s", h_dump(c));

    /* Receive outstanding, half filled; sends queued: Delete, then free the buffer. */
    uint8_t *rbuf = malloc(65536);
    CALL(ISocket_Recv(c->sock, rbuf, 65536, false));
    static uint8_t data[1 << 20];
    h_fill(data, sizeof(data), 8);
    CALL(ISocket_Send(srv->sock, data, 30000));
    c->ctx = (void *)(uintptr_t)30000;
    cr_assert(wait_received(c));
    for (int i = 0; i < 8; i++)
        CALL(ISocket_Send(c->sock, data, sizeof(data)));
    size_t before = c->nev;
    CALL(ISocket_Delete(c->sock));
    c->sock = NULL;
    memset(rbuf, 0xee, 65536);
    free(rbuf);
    /* More data for the dead client: nothing may write into the freed buffer. */
    CALL(ISocket_Send(srv->sock, data, sizeof(data)));
    h_run_for(&env, 100);
    cr_assert_eq(c->nev, before, "a callback after Delete: %s", h_dump(c));
    h_sock_free(c);
    free_listener(l);
}

Test(tls, delete_with_handshake_in_flight)
{
    struct h_sock *l = h_sock_new(&env);
    l->delete_on_shutdown = true;
    uint16_t port = tls_listen(l);

    /* Deleted at once after Connect, with a receive and a send queued. */
    struct h_sock *c0 = h_sock_new(&env);
    tls_client(c0, port, "localhost");
    uint8_t *b0 = malloc(1000);
    CALL(ISocket_Recv(c0->sock, b0, 1000, true));
    CALL(ISocket_Send(c0->sock, "x", 1));
    CALL(ISocket_Delete(c0->sock));
    c0->sock = NULL;
    free(b0);
    h_run_for(&env, 50); /* if its TCP connection got through, the server is done with it */
    cr_assert(h_run_until(&env, settled, l, 3000));

    /* Deleted once the server has the TCP connection: the handshake is under way. */
    struct h_sock *c = h_sock_new(&env);
    size_t n0 = h_count(l, H_LISTEN_RESULT);
    tls_client(c, port, "localhost");
    uint8_t *b = malloc(1000);
    CALL(ISocket_Recv(c->sock, b, 1000, true));
    CALL(ISocket_Send(c->sock, "y", 1));
    struct child_arg a = {l, n0 + 1};
    cr_assert(h_run_until(&env, listen_count, &a, 3000));
    cr_assert_eq(h_count(c, H_CONNECT_COMPLETE), 0, "handshake done too early: %s", h_dump(c));
    CALL(ISocket_Delete(c->sock));
    c->sock = NULL;
    free(b);
    h_run_for(&env, 100);
    cr_assert_eq(c0->nev, 0, "%s", h_dump(c0));
    cr_assert_eq(c->nev, 0, "%s", h_dump(c));
    /* The server side of the second one ends: in the handshake, or just after it. */
    cr_assert(wait_child_shut(l, l->naccepted, 3000));
    struct h_sock *child = l->accepted[l->naccepted - 1];
    if (!h_count(child, H_ACCEPT_COMPLETE))
        assert_child_handshake_failed(child);
    cr_assert_eq(h_count(l, H_SHUTDOWN), 0, "%s", h_dump(l));
    h_sock_free(c0);
    h_sock_free(c);
    free_listener(l);
}

/* Deleting the listener does not disturb a connection that is still in its handshake. */
Test(tls, delete_listener_with_child_in_handshake)
{
    struct h_sock *l = h_sock_new(&env);
    l->echo = true;
    uint16_t port = tls_listen(l);
    struct h_sock *c = h_sock_new(&env);
    tls_client(c, port, "localhost");
    static const char msg[] = "after the listener is gone";
    static char in[sizeof(msg)];
    CALL(ISocket_Send(c->sock, msg, sizeof(msg)));
    CALL(ISocket_Recv(c->sock, in, sizeof(in), false));
    struct child_arg a = {l, 1};
    cr_assert(h_run_until(&env, listen_count, &a, 3000));
    CALL(ISocket_Delete(l->sock));
    l->sock = NULL;
    cr_assert(h_wait_count(&env, c, H_RECV_RESULT, 1, 3000), "%s", h_dump(c));
    cr_assert_arr_eq(in, msg, sizeof(msg));
    cr_assert_eq(h_count(l, H_SHUTDOWN), 0);
    h_sock_free(c);
    free_listener(l);
}

/* ---- IIoMux_Delete frees what the engine owns -------------------------------------------- */

/* A loop of its own, so that the test deletes it and counts descriptors afterwards. */
static struct h_env own;

/* Deletes the connections the application got and the own loop (LeakSanitizer checks),
 * then the listener's h_socks and the raw peers (closed only now, so that no end of a
 * connection reaches the engine first); the process is back to fds0 descriptors. Returns
 * how many connections the engine still held. */
static size_t own_fini(struct h_sock *l, int fds0, const int *raw, size_t nraw)
{
    size_t held = h_delete_accepted(l);
    h_env_fini(&own);
    h_sock_free(l);
    for (size_t i = 0; i < nraw; i++)
        close(raw[i]);
    cr_assert_eq(h_count_fds(), fds0, "descriptors left after IIoMux_Delete");
    return held;
}

/* The bug: a server connection the application accepted (Accept(user)) but never got,
 * because the client's ClientHello never came (or only half of it), leaked at
 * IIoMux_Delete: the TLS socket, its TCP socket, the wolfSSL session, the handshake timer
 * (66 KB in 34 blocks) and the descriptor. */
Test(tls, iomux_delete_leaked_server_socket_waiting_for_client_hello)
{
    int fds0 = h_count_fds();
    h_env_init(&own);
    struct h_sock *l = h_sock_new(&own);
    uint16_t port = h_listen_on(&own, tls, sctx, l, "127.0.0.1");
    int raw[2]; /* one says nothing, one half a ClientHello */
    raw[0] = h_raw_connect("127.0.0.1", port);
    raw[1] = h_raw_connect("127.0.0.1", port);
    static const uint8_t hello_start[] = {22, 3, 1, 0x02, 0x00, 1, 0, 1, 0xfc, 3, 3};
    h_raw_write_all(raw[1], hello_start, sizeof(hello_start));
    struct child_arg a = {l, 2};
    cr_assert(h_run_until(&own, listen_count, &a, 3000), "%s", h_dump(l));
    h_run_for(&own, 50); /* both TLS sockets wait in their handshake */
    cr_assert_eq(l->accepted[0]->nev + l->accepted[1]->nev, 0);
    CALL(ISocket_Delete(l->sock));
    l->sock = NULL;
    cr_assert_eq(own_fini(l, fds0, raw, 2), 2);
}

/* The same with ringsock TLS clients, the loop stopped as the server gets the connection:
 * the clients (the application's: it deletes them) and the server sides mid-handshake. */
Test(tls, iomux_delete_frees_server_sockets_mid_handshake)
{
    int fds0 = h_count_fds();
    h_env_init(&own);
    struct h_sock *l = h_sock_new(&own);
    uint16_t port = h_listen_on(&own, tls, sctx, l, "127.0.0.1");
    struct h_sock *c[3];
    for (int i = 0; i < 3; i++) {
        c[i] = h_sock_new(&own);
        h_connect_on(&own, tls, cctx, c[i], port, "localhost");
        /* stopped right after its SocketListenResult; the earlier ones went on meanwhile */
        struct child_arg n = {l, (size_t)i + 1};
        cr_assert(h_run_until(&own, listen_count, &n, 3000), "%s", h_dump(l));
    }
    for (int i = 0; i < 3; i++)
        h_sock_free(c[i]);
    CALL(ISocket_Delete(l->sock));
    l->sock = NULL;
    cr_assert_geq(own_fini(l, fds0, NULL, 0), 1, "no server side was left in its handshake");
}

/* The own loop with a plain TCP listener; a raw peer (*fd) has connected, and the loop
 * stopped right after the listener's SocketListenResult. */
static struct h_sock *own_tcp_accepting(int *fd)
{
    h_env_init(&own);
    struct h_sock *l = h_sock_new(&own);
    uint16_t port = h_listen(&own, l, "127.0.0.1");
    *fd = h_raw_connect("127.0.0.1", port);
    struct child_arg one = {l, 1};
    cr_assert(h_run_until(&own, listen_count, &one, 3000), "%s", h_dump(l));
    return l;
}

/* The layer below: a TCP connection accepted, its SocketAcceptComplete not yet delivered. */
Test(tls, iomux_delete_frees_tcp_connection_not_yet_reported)
{
    int fds0 = h_count_fds(), fd;
    struct h_sock *l = own_tcp_accepting(&fd);
    CALL(ISocket_Delete(l->sock));
    l->sock = NULL;
    cr_assert_eq(l->accepted[0]->nev, 0, "%s", h_dump(l->accepted[0]));
    cr_assert_eq(own_fini(l, fds0, &fd, 1), 1);
}

/* StartTLS: the upgraded socket is the application's from UpgradeToTLSSocket on; deleted
 * while it waits for the ClientHello, then the loop, nothing is left. */
static void upgrade_on_accept(struct h_sock *hs, const struct h_event *e)
{
    if (e->kind != H_ACCEPT_COMPLETE)
        return;
    struct h_sock *up = hs->ctx;
    ISocket *tcp = hs->sock;
    hs->sock = NULL;
    hs->deleted = true; /* the TLS socket owns it */
    CALL(up->sock =
             ISocketProvider_UpgradeToTLSSocket(tls, tcp, own.mux, &up->user, own.log, true, sctx));
}

Test(tls, iomux_delete_after_deleting_upgraded_socket_mid_handshake)
{
    int fds0 = h_count_fds(), fd;
    struct h_sock *l = own_tcp_accepting(&fd);
    struct h_sock *up = h_sock_new(&own);
    l->accepted[0]->ctx = up;
    l->accepted[0]->on_event = upgrade_on_accept;
    cr_assert(h_wait_count(&own, l->accepted[0], H_ACCEPT_COMPLETE, 1, 3000));
    cr_assert_not_null(up->sock);
    h_run_for(&own, 20); /* waiting for the ClientHello */
    cr_assert_eq(up->nev, 0, "%s", h_dump(up));
    h_sock_free(up);
    CALL(ISocket_Delete(l->sock));
    l->sock = NULL;
    cr_assert_eq(own_fini(l, fds0, &fd, 1), 0);
}

/* ---- errors below TLS pass through; the listener's own end ----------------------------- */

Test(tls, connect_errors_keep_their_reasons)
{
    uint16_t port;
    int fd = h_raw_listen("127.0.0.1", &port);
    close(fd); /* nobody listens there now */
    struct h_sock *c = h_sock_new(&env);
    tls_client(c, port, "localhost");
    uint8_t fp[32];
    cr_assert_not(ISocket_GetPeerCertificateFingerprint(c->sock, fp), "no peer yet");
    cr_assert_null(ISocket_GetALPNProtocol(c->sock));
    cr_assert(h_wait_count(&env, c, H_SHUTDOWN, 1, 3000), "%s", h_dump(c));
    cr_assert_eq(h_last(c, H_SHUTDOWN)->reason, SOCKET_CONNECT_REJECTED, "%s", h_dump(c));
    struct h_sock *c2 = h_sock_new(&env);
    CALL(c2->sock = ISocketProvider_CreateSocket(tls, env.mux, &c2->user, env.log, false, cctx));
    CALL(ISocket_Connect(c2->sock, "not an address", "localhost"));
    cr_assert_eq(c2->nev, 0);
    cr_assert(h_wait_count(&env, c2, H_SHUTDOWN, 1, 3000), "%s", h_dump(c2));
    cr_assert_eq(h_last(c2, H_SHUTDOWN)->reason, SOCKET_ADDRESS_INVALID, "%s", h_dump(c2));
    h_sock_free(c);
    h_sock_free(c2);
}

Test(tls, listener_bind_in_use_and_shutdown)
{
    struct h_sock *l = h_sock_new(&env);
    uint16_t port = tls_listen(l);
    cr_assert(h_wait_count(&env, l, H_BIND_RESULT, 1, 2000), "%s", h_dump(l));
    cr_assert_eq(h_last(l, H_BIND_RESULT)->port, port);
    struct h_sock *l2 = h_sock_new(&env);
    CALL(l2->sock = ISocketProvider_CreateSocket(tls, env.mux, &l2->user, env.log, false, sctx));
    CALL(ISocket_Bind(l2->sock, "127.0.0.1", port));
    CALL(ISocket_Listen(l2->sock));
    cr_assert(h_wait_count(&env, l2, H_SHUTDOWN, 1, 2000), "%s", h_dump(l2));
    cr_assert_eq(h_last(l2, H_SHUTDOWN)->reason, SOCKET_ADDR_IN_USE, "%s", h_dump(l2));
    CALL(ISocket_Shutdown(l->sock));
    cr_assert(h_wait_count(&env, l, H_SHUTDOWN, 1, 2000), "%s", h_dump(l));
    cr_assert_eq(h_last(l, H_SHUTDOWN)->reason, SOCKET_SHUTDOWN_NORMAL, "%s", h_dump(l));
    h_sock_free(l2);
    free_listener(l);
}

/* ---- rejected and misbehaving peers ------------------------------------------------------ */

Test(tls, accept_null_rejects)
{
    struct h_sock *l = h_sock_new(&env);
    l->reject = true;
    l->echo = true;
    uint16_t port = tls_listen(l);
    struct h_sock *c = h_sock_new(&env);
    tls_client(c, port, "localhost");
    static uint8_t b[16];
    CALL(ISocket_Recv(c->sock, b, sizeof(b), true));
    cr_assert(h_wait_count(&env, c, H_SHUTDOWN, 1, 3000), "%s", h_dump(c));
    cr_assert_eq(h_count(l, H_LISTEN_RESULT), 1);
    cr_assert_eq(l->naccepted, 0);
    cr_assert_eq(h_count(c, H_CONNECT_COMPLETE), 0, "no TLS connection: %s", h_dump(c));
    cr_assert_eq(h_last(c, H_SHUTDOWN)->reason, SOCKET_TLS_HANDSHAKE_FAILED, "%s", h_dump(c));
    cr_assert_eq(h_count(l, H_SHUTDOWN), 0, "the listener stays: %s", h_dump(l));
    l->reject = false;
    assert_listener_serves(l, port);
    h_sock_free(c);
    free_listener(l);
}

static void garbage_then_good_client(const void *garbage, size_t len, bool alpn)
{
    if (alpn) {
        static const char *const protos[] = {"h2", "http/1.1", NULL};
        ISocketContext_SetALPNProtocols(sctx, protos);
    }
    struct h_sock *l = h_sock_new(&env);
    l->echo = true;
    l->delete_on_shutdown = true;
    uint16_t port = tls_listen(l);
    int fd = h_raw_connect("127.0.0.1", port);
    h_raw_write_all(fd, garbage, len);
    cr_assert(wait_child_shut(l, 1, 3000), "listener: %s", h_dump(l));
    assert_child_handshake_failed(l->accepted[0]);
    cr_assert(raw_wait_closed(fd, 2000), "the server keeps the garbage connection open");
    close(fd);
    cr_assert_eq(h_count(l, H_SHUTDOWN), 0, "the listener stays: %s", h_dump(l));
    assert_listener_serves(l, port);
    free_listener(l);
}

Test(tls, random_bytes_instead_of_client_hello)
{
    static uint8_t junk[1000];
    h_fill(junk, sizeof(junk), 0xdead);
    junk[0] = 0x47; /* not a handshake record */
    garbage_then_good_client(junk, sizeof(junk), false);
}

Test(tls, random_bytes_behind_a_handshake_record_header)
{
    static uint8_t junk[600];
    h_fill(junk, sizeof(junk), 0xfeed);
    const uint8_t hdr[] = {0x16, 0x03, 0x01, 0x02, 0x00}; /* handshake, 512 bytes */
    memcpy(junk, hdr, sizeof(hdr));
    garbage_then_good_client(junk, sizeof(junk), false);
}

Test(tls, http_request_instead_of_client_hello)
{
    static const char req[] = "GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    garbage_then_good_client(req, sizeof(req) - 1, false);
}

Test(tls, http_request_instead_of_client_hello_alpn_server)
{
    static const char req[] = "GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    garbage_then_good_client(req, sizeof(req) - 1, true);
}

Test(tls, random_bytes_behind_a_handshake_record_header_alpn_server)
{
    static uint8_t junk[600];
    h_fill(junk, sizeof(junk), 0xfeed);
    const uint8_t hdr[] = {0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc};
    memcpy(junk, hdr, sizeof(hdr));
    garbage_then_good_client(junk, sizeof(junk), true);
}

/* A record header promising more than arrives, then the connection closes. */
static void truncated_record(bool alpn)
{
    if (alpn) {
        static const char *const protos[] = {"h2", NULL};
        ISocketContext_SetALPNProtocols(sctx, protos);
    }
    struct h_sock *l = h_sock_new(&env);
    l->delete_on_shutdown = true;
    uint16_t port = tls_listen(l);
    int fd = h_raw_connect("127.0.0.1", port);
    uint8_t rec[5 + 100] = {0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03};
    h_raw_write_all(fd, rec, sizeof(rec));
    struct child_arg a = {l, 1};
    cr_assert(h_run_until(&env, listen_count, &a, 3000));
    h_run_for(&env, 20);
    cr_assert_eq(h_count(l->accepted[0], H_SHUTDOWN), 0, "it waits for the rest: %s",
                 h_dump(l->accepted[0]));
    close(fd);
    cr_assert(wait_child_shut(l, 1, 3000), "listener: %s", h_dump(l));
    assert_child_handshake_failed(l->accepted[0]);
    assert_listener_serves(l, port);
    free_listener(l);
}

Test(tls, truncated_record_then_close)
{
    truncated_record(false);
}

Test(tls, truncated_record_then_close_alpn_server)
{
    truncated_record(true);
}

static void vanish_mid_handshake(bool reset)
{
    struct h_sock *l = h_sock_new(&env);
    l->delete_on_shutdown = true;
    uint16_t port = tls_listen(l);
    int fd = h_raw_connect("127.0.0.1", port);
    struct child_arg a = {l, 1};
    cr_assert(h_run_until(&env, listen_count, &a, 3000));
    if (reset)
        h_raw_reset(fd);
    else
        close(fd);
    cr_assert(wait_child_shut(l, 1, 3000), "listener: %s", h_dump(l));
    assert_child_handshake_failed(l->accepted[0]);
    /* Also a client that goes away before the server has even seen the connection. */
    fd = h_raw_connect("127.0.0.1", port);
    if (reset)
        h_raw_reset(fd);
    else
        close(fd);
    h_run_for(&env, 50);
    if (l->naccepted > 1) {
        cr_assert(wait_child_shut(l, 2, 3000), "listener: %s", h_dump(l));
        assert_child_handshake_failed(l->accepted[1]);
    }
    assert_listener_serves(l, port);
    free_listener(l);
}

Test(tls, peer_closes_mid_handshake)
{
    vanish_mid_handshake(false);
}

Test(tls, peer_resets_mid_handshake)
{
    vanish_mid_handshake(true);
}

/* A record length beyond the largest legal record (16 KiB + 2048): refused, no crash. */
static void oversized_record_to_server(bool alpn)
{
    if (alpn) {
        static const char *const protos[] = {"h2", NULL};
        ISocketContext_SetALPNProtocols(sctx, protos);
    }
    struct h_sock *l = h_sock_new(&env);
    l->delete_on_shutdown = true;
    uint16_t port = tls_listen(l);
    int fd = h_raw_connect("127.0.0.1", port);
    size_t len = 5 + 40000;
    uint8_t *rec = malloc(len);
    h_fill(rec, len, 3);
    const uint8_t hdr[] = {0x16, 0x03, 0x03, 0xff, 0xff, 0x01};
    memcpy(rec, hdr, sizeof(hdr));
    struct child_arg a = {l, 1};
    cr_assert(h_run_until(&env, listen_count, &a, 3000));
    h_raw_write_all(fd, rec, len); /* fits the socket buffers on loopback */
    free(rec);
    cr_assert(wait_child_shut(l, 1, 3000), "listener: %s", h_dump(l));
    assert_child_handshake_failed(l->accepted[0]);
    h_raw_reset(fd);
    assert_listener_serves(l, port);
    free_listener(l);
}

Test(tls, oversized_record_header_to_server)
{
    oversized_record_to_server(false);
}

Test(tls, oversized_record_header_to_server_alpn_server)
{
    oversized_record_to_server(true);
}

/* The TLS client meets a server that does not speak TLS. */
static void client_vs_raw_server(const void *reply, size_t len)
{
    uint16_t port;
    int lfd = h_raw_listen("127.0.0.1", &port);
    struct h_sock *c = h_sock_new(&env);
    tls_client(c, port, "localhost");
    static uint8_t b[100];
    CALL(ISocket_Recv(c->sock, b, sizeof(b), true));
    CALL(ISocket_Send(c->sock, "held", 4));
    h_run_for(&env, 30); /* connects (the kernel accepts) and sends its ClientHello */
    int fd = accept(lfd, NULL, NULL);
    cr_assert_geq(fd, 0);
    uint8_t hello[5];
    cr_assert(h_wait_readable(&env, fd, 5000), "no ClientHello"); /* slow under emulation */
    cr_assert_eq(h_raw_read_n(fd, hello, sizeof(hello), 2000), sizeof(hello));
    cr_assert_eq(hello[0], 0x16, "a ClientHello starts with a handshake record");
    if (reply)
        h_raw_write_all(fd, reply, len);
    else
        close(fd);
    cr_assert(h_wait_count(&env, c, H_SHUTDOWN, 1, 3000), "%s", h_dump(c));
    cr_assert_eq(h_last(c, H_SHUTDOWN)->reason, SOCKET_TLS_HANDSHAKE_FAILED, "%s", h_dump(c));
    cr_assert_eq(h_count(c, H_CONNECT_COMPLETE), 0, "%s", h_dump(c));
    cr_assert_eq(h_count(c, H_SEND_RESULT), 0, "queued sends are dropped: %s", h_dump(c));
    cr_assert_eq(h_count(c, H_RECV_CANCELED), 1, "%s", h_dump(c));
    cr_assert_eq(c->ev[c->nev - 2].kind, H_RECV_CANCELED, "%s", h_dump(c));
    if (reply)
        close(fd);
    close(lfd);
    h_sock_free(c);
}

Test(tls, client_gets_garbage_from_raw_server)
{
    static uint8_t junk[2000];
    h_fill(junk, sizeof(junk), 0xabc);
    junk[0] = 0x48;
    client_vs_raw_server(junk, sizeof(junk));
}

Test(tls, client_gets_http_response_from_raw_server)
{
    static const char resp[] = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n";
    client_vs_raw_server(resp, sizeof(resp) - 1);
}

Test(tls, client_gets_oversized_record_from_raw_server)
{
    static uint8_t rec[5 + 20000];
    h_fill(rec, sizeof(rec), 0x77);
    /* 16384 + 2048 + 1: one more than any legal record. */
    const uint8_t hdr[] = {0x16, 0x03, 0x03, 0x48, 0x01};
    memcpy(rec, hdr, sizeof(hdr));
    client_vs_raw_server(rec, sizeof(rec));
}

Test(tls, client_gets_close_from_raw_server)
{
    client_vs_raw_server(NULL, 0);
}

/* ---- misuse that aborts ---------------------------------------------------------------------- */

static void scenario_create_on_upgrade_only_provider(void)
{
    IIoMux *m = IIoMux_Create();
    ISocketProvider *up = CreateTLSSocketProvider(NULL);
    struct h_sock *hs = h_sock_new(&env);
    ISocketProvider_CreateSocket(up, m, &hs->user, NULL, false, NULL);
}

Test(tls, create_socket_on_upgrade_only_provider_aborts)
{
    h_expect_abort(scenario_create_on_upgrade_only_provider, "upgrades only");
}

static void scenario_upgrade_tls_socket(void)
{
    IIoMux *m = IIoMux_Create();
    ISocketProvider *tp = CreateTLSSocketProvider(env.tcp);
    ISocketProvider *up = CreateTLSSocketProvider(NULL);
    struct h_sock *hs = h_sock_new(&env), *hs2 = h_sock_new(&env);
    ISocket *s = ISocketProvider_CreateSocket(tp, m, &hs->user, NULL, false, NULL);
    ISocket_Connect(s, "127.0.0.1:1", "localhost");
    ISocketProvider_UpgradeToTLSSocket(up, s, m, &hs2->user, NULL, false, NULL);
}

Test(tls, upgrade_of_a_tls_socket_aborts)
{
    h_expect_abort(scenario_upgrade_tls_socket, "already a TLS socket");
}

static void scenario_upgrade_on_tcp_provider(void)
{
    IIoMux *m = IIoMux_Create();
    struct h_sock *hs = h_sock_new(&env), *hs2 = h_sock_new(&env);
    ISocket *s = ISocketProvider_CreateSocket(env.tcp, m, &hs->user, NULL, false, NULL);
    ISocket_Connect(s, "127.0.0.1:1", NULL);
    ISocketProvider_UpgradeToTLSSocket(env.tcp, s, m, &hs2->user, NULL, false, NULL);
}

Test(tls, upgrade_on_a_provider_that_is_not_tls_aborts)
{
    h_expect_abort(scenario_upgrade_on_tcp_provider, "not TLS");
}

/* The same, seen by Criterion itself. */
Test(tls, create_socket_on_upgrade_only_provider_signal, .signal = SIGABRT)
{
    ISocketProvider *up = CreateTLSSocketProvider(NULL);
    struct h_sock *hs = h_sock_new(&env);
    ISocketProvider_CreateSocket(up, env.mux, &hs->user, env.log, false, NULL);
}

Test(tls, upgrade_of_a_tls_socket_signal, .signal = SIGABRT)
{
    ISocketProvider *up = CreateTLSSocketProvider(NULL);
    struct h_sock *hs = h_sock_new(&env), *hs2 = h_sock_new(&env);
    ISocket *s = ISocketProvider_CreateSocket(tls, env.mux, &hs->user, env.log, false, cctx);
    ISocketProvider_UpgradeToTLSSocket(up, s, env.mux, &hs2->user, env.log, true, sctx);
}

/* ---- StartTLS ------------------------------------------------------------------------------ */

/* The harness's recording USocket, plus SocketUpgradeToTLSComplete. */
struct ext {
    size_t upgraded;
    bool recv_on_upgrade;
};

static USocketVtbl ext_vtbl;

static void ext_upgraded(USocket *u, ISocket *s)
{
    cr_assert_eq(h_in_api, 0, "SocketUpgradeToTLSComplete inside an API call");
    struct h_sock *hs = h_container_of(u, struct h_sock, user);
    struct ext *x = hs->ctx;
    cr_assert_eq(s, hs->sock);
    x->upgraded++;
    if (x->recv_on_upgrade)
        CALL(ISocket_Recv(s, hs->echo_buf, hs->echo_len, true));
}

static struct h_sock *ext_sock(struct ext *x)
{
    struct h_sock *hs = h_sock_new(&env);
    if (!ext_vtbl.SocketShutdown) {
        ext_vtbl = *hs->user.vtbl;
        ext_vtbl.SocketUpgradeToTLSComplete = ext_upgraded;
    }
    hs->user.vtbl = &ext_vtbl;
    hs->ctx = x;
    return hs;
}

struct starttls {
    ISocketProvider *up;
    struct h_sock *srv_tcp, *cli_tcp; /* the plain sockets */
    struct h_sock *srv, *cli;         /* the TLS sockets they became */
    struct ext xs, xc;
    char srv_in[9], cli_in[3];
};
static struct starttls st;

static void srv_tcp_event(struct h_sock *hs, const struct h_event *e)
{
    if (e->kind == H_ACCEPT_COMPLETE) {
        CALL(ISocket_Recv(hs->sock, st.srv_in, sizeof(st.srv_in), false));
    } else if (e->kind == H_RECV_RESULT) {
        cr_assert_eq(e->len, 9);
        cr_assert_arr_eq(st.srv_in, "STARTTLS\n", 9);
        CALL(ISocket_Send(hs->sock, "OK\n", 3));
    } else if (e->kind == H_SEND_RESULT) {
        /* "OK" is out: the server side upgrades and waits for the ClientHello. */
        ISocket *tcp = hs->sock;
        hs->sock = NULL; /* the TLS socket owns it now */
        CALL(st.srv->sock = ISocketProvider_UpgradeToTLSSocket(st.up, tcp, env.mux, &st.srv->user,
                                                               env.log, true, sctx));
        cr_assert_not_null(st.srv->sock);
        /* A receive before the handshake is done is fine. */
        CALL(ISocket_Recv(st.srv->sock, st.srv->echo_buf, st.srv->echo_len, true));
    }
}

static void cli_tcp_event(struct h_sock *hs, const struct h_event *e)
{
    if (e->kind == H_CONNECT_COMPLETE) {
        CALL(ISocket_Send(hs->sock, "STARTTLS\n", 9));
        CALL(ISocket_Recv(hs->sock, st.cli_in, sizeof(st.cli_in), false));
    } else if (e->kind == H_RECV_RESULT) {
        cr_assert_eq(e->len, 3);
        cr_assert_arr_eq(st.cli_in, "OK\n", 3);
        cr_assert_eq(h_count(hs, H_SEND_RESULT), 1, "%s", h_dump(hs));
        ISocket *tcp = hs->sock;
        hs->sock = NULL;
        CALL(st.cli->sock = ISocketProvider_UpgradeToTLSSocket(st.up, tcp, env.mux, &st.cli->user,
                                                               env.log, false, cctx));
        cr_assert_not_null(st.cli->sock);
    }
}

static bool both_upgraded(struct h_env *e, void *arg)
{
    (void)e;
    (void)arg;
    return st.xs.upgraded && st.xc.upgraded;
}

static bool both_collected(struct h_env *e, void *arg)
{
    (void)e;
    size_t n = *(size_t *)arg;
    return st.srv->data_len >= n && st.cli->data_len >= n;
}

Test(tls, starttls_upgrade_both_sides_exact_bytes)
{
    memset(&st, 0, sizeof(st));
    st.up = CreateTLSSocketProvider(NULL); /* upgrades only */
    struct h_sock *l = h_sock_new(&env);
    uint16_t port = h_listen(&env, l, "127.0.0.1"); /* plain TCP */
    st.srv = ext_sock(&st.xs);
    st.cli = ext_sock(&st.xc);
    st.srv->collect = st.srv->sink = true;
    st.cli->collect = st.cli->sink = true;
    st.xc.recv_on_upgrade = true;

    st.cli_tcp = h_sock_new(&env);
    st.cli_tcp->on_event = cli_tcp_event;
    h_tcp_socket(&env, st.cli_tcp, false);
    CALL(ISocket_Connect(st.cli_tcp->sock, h_addr(port), NULL));
    st.srv_tcp = h_wait_accepted(&env, l, 1, 3000);
    cr_assert_not_null(st.srv_tcp);
    /* Accept already ran its callback; hook in for what follows. */
    st.srv_tcp->on_event = srv_tcp_event;
    srv_tcp_event(st.srv_tcp, &(struct h_event){.kind = H_ACCEPT_COMPLETE});

    cr_assert(h_run_until(&env, both_upgraded, NULL, 4000), "server %zu, client %zu upgrades; %s",
              st.xs.upgraded, st.xc.upgraded, h_dump(st.cli));
    cr_assert_eq(st.xs.upgraded, 1);
    cr_assert_eq(st.xc.upgraded, 1);
    for (struct h_sock *const *p = (struct h_sock *const[]){st.srv, st.cli, NULL}; *p; p++) {
        cr_assert_eq(h_count(*p, H_CONNECT_COMPLETE), 0, "%s", h_dump(*p));
        cr_assert_eq(h_count(*p, H_ACCEPT_COMPLETE), 0, "%s", h_dump(*p));
        cr_assert_eq(h_count(*p, H_SHUTDOWN), 0, "%s", h_dump(*p));
        uint8_t fp[32];
        cr_assert(ISocket_GetPeerCertificateFingerprint((*p)->sock, fp) == (*p == st.cli),
                  "only the client sees a certificate");
    }
    size_t fpl = 0;
    const uint8_t *sfp = ISocketContext_GetCertificateFingerprint(sctx, &fpl);
    uint8_t cfp[32];
    cr_assert(ISocket_GetPeerCertificateFingerprint(st.cli->sock, cfp));
    cr_assert_eq(fpl, 32);
    cr_assert_arr_eq(cfp, sfp, 32);

    /* Exact bytes both ways over the upgraded connection. */
    const size_t n = 300000;
    uint8_t *a = malloc(n), *b = malloc(n);
    h_fill(a, n, 21);
    h_fill(b, n, 22);
    for (size_t off = 0; off < n; off += 10000) {
        CALL(ISocket_Send(st.cli->sock, a + off, 10000));
        CALL(ISocket_Send(st.srv->sock, b + off, 10000));
    }
    size_t want = n;
    cr_assert(h_run_until(&env, both_collected, &want, 4000), "server %zu, client %zu of %zu",
              st.srv->data_len, st.cli->data_len, n);
    cr_assert_eq(st.srv->data_len, n);
    cr_assert_eq(st.cli->data_len, n);
    cr_assert_arr_eq(st.srv->data, a, n);
    cr_assert_arr_eq(st.cli->data, b, n);
    cr_assert(h_wait_count(&env, st.cli, H_SEND_RESULT, n / 10000, 2000));
    cr_assert(h_wait_count(&env, st.srv, H_SEND_RESULT, n / 10000, 2000));
    /* test_tls_ktls: an upgraded TCP socket is offloaded like a connected one */
    unsigned offload = getenv("RINGSOCK_KTLS") && h_kernel_has_tls_ulp() ? KTLS_TX | KTLS_RX : 0;
    cr_assert_eq(ISocket_GetKernelTLS(st.srv->sock), offload);
    cr_assert_eq(ISocket_GetKernelTLS(st.cli->sock), offload);

    CALL(ISocket_Shutdown(st.srv->sock));
    cr_assert(h_wait_count(&env, st.srv, H_SHUTDOWN, 1, 3000), "%s", h_dump(st.srv));
    cr_assert_eq(h_last(st.srv, H_SHUTDOWN)->reason, SOCKET_SHUTDOWN_NORMAL);
    cr_assert(h_wait_count(&env, st.cli, H_SHUTDOWN, 1, 3000), "%s", h_dump(st.cli));
    cr_assert_eq(h_last(st.cli, H_SHUTDOWN)->reason, SOCKET_SHUTDOWN_BY_PEER);
    /* The plain sockets saw nothing after the upgrade. */
    cr_assert_eq(h_count(st.srv_tcp, H_SHUTDOWN), 0, "%s", h_dump(st.srv_tcp));
    cr_assert_eq(h_count(st.cli_tcp, H_SHUTDOWN), 0, "%s", h_dump(st.cli_tcp));
    free(a);
    free(b);
    h_sock_free(st.srv);
    h_sock_free(st.cli);
    h_sock_free(st.cli_tcp);
    free_listener(l);
    ISocketProvider_Delete(st.up);
}

/* A client that connects and never says hello holds nothing for long: the handshake
 * times out, the child ends with TLS_HANDSHAKE_FAILED and its descriptor is closed. */
Test(tls, stalled_handshake_times_out)
{
    env.mux->settings.tls_handshake_timeout_ms = 200;
    struct h_sock *l = h_sock_new(&env);
    l->delete_on_shutdown = true;
    uint16_t port = tls_listen(l);
    int fd = h_raw_connect("127.0.0.1", port);
    h_run_for(&env, 100);
    cr_assert_eq(l->naccepted, 1);
    struct h_sock *child = l->accepted[0];
    cr_assert_eq(h_count(child, H_SHUTDOWN), 0, "ended before the timeout: %s", h_dump(child));
    cr_assert(h_wait_count(&env, child, H_SHUTDOWN, 1, 2000), "%s", h_dump(child));
    cr_assert_eq(h_last(child, H_SHUTDOWN)->reason, SOCKET_TLS_HANDSHAKE_FAILED);
    char b;
    cr_assert_eq(h_raw_read_n(fd, &b, 1, 1000), 0, "the connection is closed");
    close(fd);
    h_sock_free(l);
}
