/* TCP under load: large full-duplex transfers with random send and receive sizes,
 * SendResult ordering across ISocket_Send and ISocket_SendNoCopy, thousands of
 * concurrent connections in one loop, the byte counters of ISocket_GetStats, and loops
 * on threads of their own that leave nothing behind. */
#include "duplex.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Sized for a 2-core machine: about 2 s in all, under 5 s with ASan. */
#define STRESS_BYTES (64u << 20)
#define STRESS_CONNS 5000

static struct h_env env;

static void setup(void)
{
    h_env_init(&env);
}

static void teardown(void)
{
    h_env_fini(&env);
}

TestSuite(tcp_stress, .init = setup, .fini = teardown, .timeout = 60);

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Sizes 1..256 KiB, skewed so tiny and small sends and receives are common too. */
static size_t rand_size(uint32_t *rng)
{
    uint32_t r = h_rand(rng);
    switch (r & 3) {
    case 0:
        return 1 + (r >> 8) % 256;
    case 1:
        return 1 + (r >> 8) % 16384;
    default:
        return 1 + (r >> 8) % (256 * 1024);
    }
}

/* ---- full duplex: random sends, random receives, every byte checked ------------------ */

static const struct h_duplex_config duplex = {
    .window_bytes = 4u << 20,
    .window_sends = 256,
    .rbuf_size = 256 * 1024,
    .rand_size = rand_size,
};

Test(tcp_stress, full_duplex_random_sizes_exact_bytes)
{
    const size_t total = STRESS_BYTES;
    uint8_t *up = malloc(total), *down = malloc(total);
    cr_assert(up && down);
    h_fill(up, total, 0x1234);
    h_fill(down, total, 0xbeef); /* different streams: crossed directions would show */

    struct h_listener l;
    uint16_t port = h_listener_start(&env, &l, env.tcp, NULL);
    struct h_peer pp[2]; /* [0] client, [1] server side */
    h_peer_init(&pp[0], &duplex, "client", 11, up, down, total);
    h_peer_init(&pp[1], &duplex, "server", 29, down, up, total);
    l.next_user = &pp[1].user;

    double t0 = now_s();
    CALL(pp[0].sock =
             ISocketProvider_CreateSocket(env.tcp, env.mux, &pp[0].user, env.log, false, NULL));
    CALL(ISocket_Connect(pp[0].sock, h_addr(port), NULL));
    /* Sends and the receive may be queued before the connection is up. */
    h_peer_recv_next(&pp[0]);
    h_peer_pump(&pp[0]);
    bool ok = h_run_until(&env, h_duplex_done, pp, 50000);
    double t1 = now_s();
    for (int i = 0; i < 2; i++)
        cr_assert(ok, "%s: sent %zu/%zu (%zu sends, %zu results), received %zu/%zu", pp[i].name,
                  pp[i].tx_off, total, pp[i].sends, pp[i].results, pp[i].rx_off, total);
    cr_assert_eq(l.offers, 1);
    for (int i = 0; i < 2; i++) {
        cr_assert(pp[i].connected);
        cr_assert_eq(pp[i].sends, pp[i].results, "%s: one SendResult per Send", pp[i].name);
        cr_assert_eq(pp[i].shutdowns, 0, "%s: shut down early: %s", pp[i].name,
                     SocketShutdownReasonToStr(pp[i].reason));
    }
    /* Let stray results or bytes show up before the close. */
    h_run_for(&env, 20);
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(pp[i].sends, pp[i].results, "%s: extra SendResult", pp[i].name);
        cr_assert_eq(pp[i].tail_results, 0);
    }
    CALL(ISocket_Shutdown(pp[0].sock));
    cr_assert(h_run_until(&env, h_duplex_both_shut, pp, 5000), "shutdowns: client %zu server %zu",
              pp[0].shutdowns, pp[1].shutdowns);
    cr_assert_eq(pp[0].reason, SOCKET_SHUTDOWN_NORMAL, "%s",
                 SocketShutdownReasonToStr(pp[0].reason));
    cr_assert_eq(pp[1].reason, SOCKET_SHUTDOWN_BY_PEER, "%s",
                 SocketShutdownReasonToStr(pp[1].reason));
    for (int i = 0; i < 2; i++) {
        /* the tail receive came back just before SocketShutdown, and only once */
        cr_assert_eq(pp[i].canceled, 1, "%s", pp[i].name);
        cr_assert_eq(pp[i].tail_results, 0);
        cr_assert_eq(pp[i].last_event, 2);
    }
    h_run_for(&env, 10);
    for (int i = 0; i < 2; i++)
        cr_assert_eq(pp[i].shutdowns, 1, "%s: callbacks after SocketShutdown", pp[i].name);
    cr_log_info("full duplex %u MiB each way: %.2f s, %zu/%zu sends, %zu/%zu receives",
                (unsigned)(total >> 20), t1 - t0, pp[0].sends, pp[1].sends, pp[0].recv_results,
                pp[1].recv_results);

    CALL(ISocket_Delete(pp[0].sock));
    CALL(ISocket_Delete(pp[1].sock));
    CALL(ISocket_Delete(l.sock));
    h_run_for(&env, 5); /* the kernel's cancellations complete */
    free(pp[0].rbuf);
    free(pp[1].rbuf);
    free(up);
    free(down);
}

/* ---- SendResult order: Send and SendNoCopy interleaved -------------------------------- */

struct order_rx {
    USocket user;
    ISocket *sock;
    const uint8_t *expect;
    size_t total, off;
    uint8_t buf[100000];
    size_t shutdowns;
};

static void orx_recv(USocket *u, ISocket *s, void *buf, size_t len)
{
    struct order_rx *r = h_container_of(u, struct order_rx, user);
    cr_assert_eq(h_in_api, 0);
    cr_assert_leq(r->off + len, r->total, "%zu bytes beyond the end", r->off + len - r->total);
    size_t d = h_first_diff(buf, r->expect + r->off, len);
    cr_assert_eq(d, len, "byte %zu of the concatenation differs (got %#x want %#x)", r->off + d,
                 ((uint8_t *)buf)[d], r->expect[r->off + d]);
    r->off += len;
    CALL(ISocket_Recv(s, r->buf, sizeof(r->buf), true));
}

static void orx_accepted(USocket *u, ISocket *s)
{
    struct order_rx *r = h_container_of(u, struct order_rx, user);
    r->sock = s;
    CALL(ISocket_Recv(s, r->buf, sizeof(r->buf), true));
}

static void orx_shutdown(USocket *u, ISocket *s, shutdownreason_t reason)
{
    (void)s;
    (void)reason;
    h_container_of(u, struct order_rx, user)->shutdowns++;
}

static const USocketVtbl orx_vtbl = {
    .SocketAcceptComplete = orx_accepted,
    .SocketRecvResult = orx_recv,
    .SocketShutdown = orx_shutdown,
};

#define ORDER_OPS 600

struct order_op {
    bool nocopy;
    size_t off, len;
    uint8_t *buf; /* SendNoCopy: ours until its SendResult */
};

struct order_tx {
    USocket user;
    ISocket *sock;
    struct order_op ops[ORDER_OPS];
    size_t nops, results;
    size_t released; /* no-copy buffers overwritten after their result */
    size_t shutdowns;
};

static void otx_send_result(USocket *u, ISocket *s)
{
    struct order_tx *t = h_container_of(u, struct order_tx, user);
    (void)s;
    cr_assert_eq(h_in_api, 0);
    cr_assert_lt(t->results, t->nops, "more SendResults than sends");
    /* Results come in call order: this one is for ops[results]. If the engine still
     * needed this buffer, the receiver would see the garbage written now. */
    struct order_op *op = &t->ops[t->results++];
    if (op->nocopy && op->buf) {
        memset(op->buf, 0xA5, op->len);
        free(op->buf);
        op->buf = NULL;
        t->released++;
    }
}

static void otx_shutdown(USocket *u, ISocket *s, shutdownreason_t reason)
{
    (void)s;
    (void)reason;
    h_container_of(u, struct order_tx, user)->shutdowns++;
}

static const USocketVtbl otx_vtbl = {
    .SocketSendResult = otx_send_result,
    .SocketShutdown = otx_shutdown,
};

static bool all_results(struct h_env *e, void *arg)
{
    (void)e;
    struct order_tx *t = arg;
    return t->results == t->nops;
}

static bool all_received(struct h_env *e, void *arg)
{
    (void)e;
    struct order_rx *r = arg;
    return r->off == r->total;
}

Test(tcp_stress, send_results_in_order_with_nocopy)
{
    /* Sizes around every internal boundary: empty, segment size, direct-send size. */
    static const size_t sizes[] = {0,     1,     7,     100,   4096,   16383,  16384,  16385,
                                   32768, 65535, 65536, 65537, 100000, 200000, 262144, 1048576};
    const size_t nsizes = sizeof(sizes) / sizeof(sizes[0]);
    uint32_t rng = 77;
    static struct order_tx tx;
    static struct order_rx rx;
    memset(&tx, 0, sizeof(tx));
    memset(&rx, 0, sizeof(rx));
    tx.user.vtbl = &otx_vtbl;
    rx.user.vtbl = &orx_vtbl;

    /* Plan the ops first so the receiver knows the concatenation. */
    size_t total = 0;
    size_t nops = ORDER_OPS;
    for (size_t i = 0; i < nops; i++) {
        tx.ops[i].nocopy = h_rand(&rng) % 2;
        tx.ops[i].len = sizes[h_rand(&rng) % nsizes];
        tx.ops[i].off = total;
        total += tx.ops[i].len;
    }
    uint8_t *stream = malloc(total);
    cr_assert_not_null(stream);
    h_fill(stream, total, 4242);
    rx.expect = stream;
    rx.total = total;

    struct h_listener l;
    uint16_t port = h_listener_start(&env, &l, env.tcp, NULL);
    l.next_user = &rx.user;
    CALL(tx.sock = ISocketProvider_CreateSocket(env.tcp, env.mux, &tx.user, env.log, false, NULL));
    CALL(ISocket_Connect(tx.sock, h_addr(port), NULL));

    uint8_t *scratch = malloc(1048576);
    cr_assert_not_null(scratch);
    size_t i = 0, direct_chances = 0;
    while (i < nops) {
        /* A batch of sends in one loop round; between batches the queue sometimes
         * drains completely, so large sends can also take the direct path. */
        size_t batch = 1 + h_rand(&rng) % 8;
        for (; batch > 0 && i < nops; batch--, i++) {
            struct order_op *op = &tx.ops[i];
            if (op->nocopy) {
                op->buf = malloc(op->len ? op->len : 1);
                cr_assert_not_null(op->buf);
                memcpy(op->buf, stream + op->off, op->len);
                CALL(ISocket_SendNoCopy(tx.sock, op->buf, op->len));
            } else {
                memcpy(scratch, stream + op->off, op->len);
                CALL(ISocket_Send(tx.sock, scratch, op->len));
                /* Send's buffer is reusable as soon as the call returns. */
                memset(scratch, 0x5A, op->len);
            }
            tx.nops = i + 1;
            cr_assert_leq(tx.results, tx.nops);
        }
        if (h_rand(&rng) % 3 == 0) {
            cr_assert(h_run_until(&env, all_results, &tx, 10000), "results %zu of %zu", tx.results,
                      tx.nops);
            direct_chances++;
        } else {
            h_run_for(&env, 0);
        }
    }
    cr_assert(h_run_until(&env, all_received, &rx, 20000), "received %zu of %zu", rx.off, total);
    cr_assert(h_run_until(&env, all_results, &tx, 10000), "results %zu of %zu", tx.results,
              tx.nops);
    h_run_for(&env, 20);
    cr_assert_eq(tx.results, nops, "one SendResult per send");
    cr_assert_eq(rx.off, total);
    cr_assert_eq(tx.shutdowns, 0);
    cr_assert_eq(rx.shutdowns, 0);
    size_t nocopies = 0;
    for (size_t k = 0; k < nops; k++)
        nocopies += tx.ops[k].nocopy;
    cr_assert_eq(tx.released, nocopies);
    cr_assert_gt(direct_chances, 0);
    cr_log_info("%zu sends (%zu no-copy), %zu bytes", nops, nocopies, total);

    CALL(ISocket_Delete(tx.sock));
    CALL(ISocket_Delete(rx.sock));
    CALL(ISocket_Delete(l.sock));
    h_run_for(&env, 5);
    free(scratch);
    free(stream);
}

/* ---- thousands of concurrent connections ---------------------------------------------- */

struct eclient {
    USocket user;
    ISocket *sock;
    unsigned idx;
    uint16_t port;
    uint8_t msg[64], in[64];
    unsigned connects, sends, recvs, canceled, shutdowns;
    shutdownreason_t reason;
};

static unsigned echo_ok, echo_shut;

static void ec_connected(USocket *u, ISocket *s)
{
    struct eclient *c = h_container_of(u, struct eclient, user);
    cr_assert_eq(h_in_api, 0);
    cr_assert_eq(s, c->sock);
    c->connects++;
    char a[64];
    CALL(ISocket_GetLocalAddress(s, a, sizeof(a), &c->port));
}

static void ec_send(USocket *u, ISocket *s)
{
    (void)s;
    h_container_of(u, struct eclient, user)->sends++;
}

static void ec_recv(USocket *u, ISocket *s, void *buf, size_t len)
{
    struct eclient *c = h_container_of(u, struct eclient, user);
    cr_assert_eq(h_in_api, 0);
    cr_assert_eq(s, c->sock);
    cr_assert_eq(buf, c->in);
    cr_assert_eq(len, 64, "client %u: full receive returned %zu", c->idx, len);
    cr_assert_arr_eq(c->in, c->msg, 64, "client %u got someone else's echo", c->idx);
    c->recvs++;
    echo_ok++;
}

static void ec_canceled(USocket *u, ISocket *s, void *buf)
{
    (void)s;
    (void)buf;
    h_container_of(u, struct eclient, user)->canceled++;
}

static void ec_shutdown(USocket *u, ISocket *s, shutdownreason_t r)
{
    struct eclient *c = h_container_of(u, struct eclient, user);
    cr_assert_eq(s, c->sock);
    c->shutdowns++;
    c->reason = r;
    echo_shut++;
    CALL(ISocket_Delete(s)); /* allowed inside SocketShutdown */
    c->sock = NULL;
}

static const USocketVtbl ec_vtbl = {
    .SocketConnectComplete = ec_connected,
    .SocketSendResult = ec_send,
    .SocketRecvResult = ec_recv,
    .SocketRecvCanceled = ec_canceled,
    .SocketShutdown = ec_shutdown,
};

static bool count_reached(struct h_env *e, void *arg)
{
    (void)e;
    const unsigned *want = arg;
    return echo_ok >= want[0] && echo_shut >= want[1];
}

struct server_closed_arg {
    struct h_sock *l;
    size_t n;
};

static bool servers_closed(struct h_env *e, void *arg)
{
    (void)e;
    struct server_closed_arg *a = arg;
    if (a->l->naccepted < a->n)
        return false;
    for (size_t i = 0; i < a->n; i++)
        if (!a->l->accepted[i]->deleted)
            return false;
    return true;
}

Test(tcp_stress, thousands_of_concurrent_echo_connections)
{
    const unsigned n = STRESS_CONNS;
    struct h_sock *l = h_sock_new(&env);
    l->echo = true;
    l->collect = true;
    l->delete_on_shutdown = true;
    uint16_t port = h_listen(&env, l, "127.0.0.1");
    const char *addr = h_addr(port);

    struct eclient *cl = calloc(n, sizeof(*cl));
    cr_assert_not_null(cl);
    echo_ok = echo_shut = 0;
    double t0 = now_s();
    for (unsigned i = 0; i < n; i++) {
        struct eclient *c = &cl[i];
        c->user.vtbl = &ec_vtbl;
        c->idx = i;
        h_fill(c->msg, sizeof(c->msg), 1000 + i);
        snprintf((char *)c->msg, 16, "client %05u", i); /* distinct even if h_fill collides */
        CALL(c->sock =
                 ISocketProvider_CreateSocket(env.tcp, env.mux, &c->user, env.log, false, NULL));
        cr_assert_not_null(c->sock);
        /* Connect, Send and Recv back to back: all held until connected. */
        CALL(ISocket_Connect(c->sock, addr, NULL));
        CALL(ISocket_Send(c->sock, c->msg, sizeof(c->msg)));
        CALL(ISocket_Recv(c->sock, c->in, sizeof(c->in), false));
    }
    unsigned want[2] = {n, 0};
    bool ok = h_run_until(&env, count_reached, want, 40000);
    double t1 = now_s();
    cr_assert(ok, "%u of %u echoes came back, %zu accepted", echo_ok, n, l->naccepted);
    cr_assert_eq(l->naccepted, n);
    h_run_for(&env, 10);
    for (unsigned i = 0; i < n; i++) {
        struct eclient *c = &cl[i];
        cr_assert_eq(c->connects, 1, "client %u", i);
        cr_assert_eq(c->sends, 1, "client %u: %u SendResults", i, c->sends);
        cr_assert_eq(c->recvs, 1, "client %u", i);
        cr_assert_eq(c->shutdowns, 0, "client %u: %s", i, SocketShutdownReasonToStr(c->reason));
        cr_assert_neq(c->port, 0);
    }

    /* Each server connection got exactly the bytes of the client on its port. */
    static int by_port[65536];
    memset(by_port, -1, sizeof(by_port));
    for (unsigned i = 0; i < n; i++) {
        cr_assert_eq(by_port[cl[i].port], -1, "two clients on port %u", cl[i].port);
        by_port[cl[i].port] = (int)i;
    }
    size_t k = 0;
    for (size_t e = 0; e < l->nev; e++) {
        if (l->ev[e].kind != H_LISTEN_RESULT)
            continue;
        cr_assert_str_eq(l->ev[e].addr, "127.0.0.1");
        int ci = by_port[l->ev[e].port];
        cr_assert_geq(ci, 0, "connection from unknown port %u", l->ev[e].port);
        struct h_sock *a = l->accepted[k++];
        cr_assert_eq(a->data_len, 64, "server side of client %d: %zu bytes", ci, a->data_len);
        cr_assert_arr_eq(a->data, cl[ci].msg, 64);
        cr_assert_eq(h_count(a, H_SEND_RESULT), h_count(a, H_RECV_RESULT));
    }
    cr_assert_eq(k, n);

    double t2 = now_s();
    for (unsigned i = 0; i < n; i++)
        CALL(ISocket_Shutdown(cl[i].sock));
    want[1] = n;
    cr_assert(h_run_until(&env, count_reached, want, 20000), "%u of %u clients shut down",
              echo_shut, n);
    struct server_closed_arg sa = {l, n};
    cr_assert(h_run_until(&env, servers_closed, &sa, 20000), "server sides not all closed");
    double t3 = now_s();
    for (unsigned i = 0; i < n; i++) {
        cr_assert_eq(cl[i].shutdowns, 1);
        cr_assert_eq(cl[i].reason, SOCKET_SHUTDOWN_NORMAL, "client %u: %s", i,
                     SocketShutdownReasonToStr(cl[i].reason));
        cr_assert_eq(cl[i].canceled, 0, "client %u had no receive outstanding", i);
    }
    for (size_t i = 0; i < n; i++) {
        struct h_sock *a = l->accepted[i];
        cr_assert_eq(h_count(a, H_SHUTDOWN), 1, "%s", h_dump(a));
        cr_assert_eq(a->ev[a->nev - 1].kind, H_SHUTDOWN, "%s", h_dump(a));
        cr_assert_eq(a->ev[a->nev - 1].reason, SOCKET_SHUTDOWN_BY_PEER, "%s", h_dump(a));
        /* the echo's receive buffer came back just before SocketShutdown */
        cr_assert_eq(a->ev[a->nev - 2].kind, H_RECV_CANCELED, "%s", h_dump(a));
    }
    cr_log_info("%u connections: echo %.2f s, shutdown %.2f s", n, t1 - t0, t3 - t2);
    free(cl);
    h_sock_free(l);
    h_run_for(&env, 5);
}

/* ---- statistics -------------------------------------------------------------------------- */

Test(tcp_stress, stats_count_bytes_exactly)
{
    struct h_sock *l = h_sock_new(&env);
    uint16_t port = h_listen(&env, l, "127.0.0.1");
    struct h_sock *c = h_sock_new(&env);
    h_tcp_socket(&env, c, false);
    ISocketStats st;
    CALL(ISocket_GetStats(c->sock, &st));
    cr_assert(st.bytesSent == 0 && st.bytesReceived == 0 && st.sends == 0 && st.recvs == 0);

    CALL(ISocket_Connect(c->sock, h_addr(port), NULL));
    struct h_sock *a = h_wait_accepted(&env, l, 1, 2000);
    cr_assert_not_null(a);
    cr_assert(h_wait_count(&env, c, H_CONNECT_COMPLETE, 1, 2000));

    /* client → server: small, empty, and one large enough for the direct path */
    static uint8_t big[300000];
    h_fill(big, sizeof(big), 5);
    CALL(ISocket_Send(c->sock, "hello", 5));
    CALL(ISocket_Send(c->sock, "", 0));
    CALL(ISocket_GetStats(c->sock, &st));
    cr_assert_eq(st.sends, 0, "sends counts completed calls: none has its SendResult yet");
    cr_assert(h_wait_count(&env, c, H_SEND_RESULT, 2, 2000));
    CALL(ISocket_GetStats(c->sock, &st));
    cr_assert_eq(st.sends, 2);
    CALL(ISocket_Send(c->sock, big, sizeof(big)));
    CALL(ISocket_SendNoCopy(c->sock, big, 1000));
    const size_t up = 5 + sizeof(big) + 1000;
    static uint8_t in[sizeof(big) + 1005];
    CALL(ISocket_Recv(a->sock, in, up, false));
    cr_assert(h_wait_count(&env, a, H_RECV_RESULT, 1, 5000), "%s", h_dump(a));
    cr_assert(h_wait_count(&env, c, H_SEND_RESULT, 4, 5000), "%s", h_dump(c));
    cr_assert_eq(h_last(a, H_RECV_RESULT)->len, up);

    /* server → client: two sends, received with two partial receives at most 100 each */
    CALL(ISocket_Send(a->sock, "0123456789", 10));
    cr_assert(h_wait_count(&env, a, H_SEND_RESULT, 1, 2000));
    static uint8_t in2[100];
    CALL(ISocket_Recv(c->sock, in2, sizeof(in2), true));
    cr_assert(h_wait_count(&env, c, H_RECV_RESULT, 1, 2000));
    cr_assert_eq(h_last(c, H_RECV_RESULT)->len, 10);
    h_run_for(&env, 10);

    CALL(ISocket_GetStats(c->sock, &st));
    cr_assert_eq(st.bytesSent, up);
    cr_assert_eq(st.bytesReceived, 10);
    cr_assert_eq(st.sends, 4);
    cr_assert_eq(st.recvs, 1);
    CALL(ISocket_GetStats(a->sock, &st));
    cr_assert_eq(st.bytesSent, 10);
    cr_assert_eq(st.bytesReceived, up);
    cr_assert_eq(st.sends, 1);
    cr_assert_eq(st.recvs, 1);
    /* a listener carries no traffic */
    CALL(ISocket_GetStats(l->sock, &st));
    cr_assert(st.bytesSent == 0 && st.bytesReceived == 0);
    h_sock_free(c);
    h_sock_free(l);
    h_run_for(&env, 5);
}

/* Bytes that land in a receive the application then cancels are delivered by the next
 * receive; they were received once and must be counted once. */
Test(tcp_stress, stats_count_bytes_of_canceled_receive)
{
    struct h_sock *l = h_sock_new(&env);
    uint16_t port = h_listen(&env, l, "127.0.0.1");
    struct h_sock *c = h_sock_new(&env);
    h_tcp_socket(&env, c, false);
    CALL(ISocket_Connect(c->sock, h_addr(port), NULL));
    struct h_sock *a = h_wait_accepted(&env, l, 1, 2000);
    cr_assert_not_null(a);
    cr_assert(h_wait_count(&env, c, H_CONNECT_COMPLETE, 1, 2000));

    static uint8_t in[100], in2[100];
    CALL(ISocket_Recv(c->sock, in, sizeof(in), false)); /* wants 100, gets only 10 */
    CALL(ISocket_Send(a->sock, "0123456789", 10));
    cr_assert(h_wait_count(&env, a, H_SEND_RESULT, 1, 2000));
    h_run_for(&env, 20);
    cr_assert_eq(h_count(c, H_RECV_RESULT), 0);
    CALL(ISocket_RecvCancel(c->sock));
    cr_assert(h_wait_count(&env, c, H_RECV_CANCELED, 1, 2000), "%s", h_dump(c));
    CALL(ISocket_Recv(c->sock, in2, sizeof(in2), true));
    cr_assert(h_wait_count(&env, c, H_RECV_RESULT, 1, 2000), "%s", h_dump(c));
    cr_assert_eq(h_last(c, H_RECV_RESULT)->len, 10, "the 10 bytes are not lost");
    cr_assert_arr_eq(in2, "0123456789", 10);

    ISocketStats st;
    CALL(ISocket_GetStats(c->sock, &st));
    cr_assert_eq(st.bytesReceived, 10, "bytesReceived %llu", (unsigned long long)st.bytesReceived);
    cr_assert_eq(st.recvs, 1, "recvs %llu", (unsigned long long)st.recvs);
    h_sock_free(c);
    h_sock_free(l);
    h_run_for(&env, 5);
}

/* ---- one loop per thread ------------------------------------------------------------------ */

/* Each thread runs its own IIoMux, streams to itself and deletes everything; nothing it
 * allocated may outlive the loop. (The engine once kept spare send segments per thread,
 * about 1 MiB, lost with every such thread.) Checked by LeakSanitizer in the ASan run. */
#define LT_THREADS 4
#define LT_ROUNDS  2
#define LT_BYTES   (2u << 20)
#define LT_CHUNK   4096 /* small sends: copied into segments */

struct loop_thread {
    USocket lst_user, srv_user, cli_user;
    UTimer watchdog_user;
    IIoMux *mux;
    ISocket *srv;
    size_t received, results, sends;
    const char *error; /* set instead of asserting: Criterion asserts on its own thread only */
    uint8_t rx[65536];
};

static uint8_t lt_byte(size_t i)
{
    return (uint8_t)(i % 251);
}

static void lt_fail(struct loop_thread *t, const char *why)
{
    if (!t->error)
        t->error = why;
    IIoMux_Terminate(t->mux);
}

static void lt_check_done(struct loop_thread *t)
{
    if (t->received == LT_BYTES && t->results == t->sends)
        IIoMux_Terminate(t->mux);
}

static void lt_listen(USocket *u, ISocket *s, const char *addr, uint16_t port)
{
    (void)addr;
    (void)port;
    struct loop_thread *t = h_container_of(u, struct loop_thread, lst_user);
    ISocket_Accept(s, &t->srv_user);
}

static void lt_accepted(USocket *u, ISocket *s)
{
    struct loop_thread *t = h_container_of(u, struct loop_thread, srv_user);
    t->srv = s;
    ISocket_Recv(s, t->rx, sizeof(t->rx), true);
}

static void lt_recv(USocket *u, ISocket *s, void *buf, size_t len)
{
    struct loop_thread *t = h_container_of(u, struct loop_thread, srv_user);
    const uint8_t *b = buf;
    for (size_t i = 0; i < len; i++) {
        if (b[i] != lt_byte(t->received + i)) {
            lt_fail(t, "received bytes differ from those sent");
            return;
        }
    }
    t->received += len;
    if (t->received < LT_BYTES)
        ISocket_Recv(s, t->rx, sizeof(t->rx), true);
    lt_check_done(t);
}

static void lt_send_result(USocket *u, ISocket *s)
{
    (void)s;
    struct loop_thread *t = h_container_of(u, struct loop_thread, cli_user);
    t->results++;
    lt_check_done(t);
}

static void lt_shutdown(USocket *u, ISocket *s, shutdownreason_t r)
{
    (void)u;
    (void)s;
    (void)r;
}

static void lt_srv_shutdown(USocket *u, ISocket *s, shutdownreason_t r)
{
    (void)s;
    (void)r;
    lt_fail(h_container_of(u, struct loop_thread, srv_user), "the server side closed early");
}

static void lt_timeout(UTimer *u, ITimer *timer)
{
    (void)timer;
    lt_fail(h_container_of(u, struct loop_thread, watchdog_user), "timed out");
}

static const USocketVtbl lt_lst_vtbl = {.SocketListenResult = lt_listen,
                                        .SocketShutdown = lt_shutdown};
static const USocketVtbl lt_srv_vtbl = {
    .SocketAcceptComplete = lt_accepted,
    .SocketRecvResult = lt_recv,
    .SocketShutdown = lt_srv_shutdown,
};
static const USocketVtbl lt_cli_vtbl = {.SocketSendResult = lt_send_result,
                                        .SocketShutdown = lt_shutdown};
static const struct UTimerVtbl lt_timer_vtbl = {lt_timeout};

static void *loop_thread_run(void *arg)
{
    struct loop_thread *t = arg;
    t->lst_user.vtbl = &lt_lst_vtbl;
    t->srv_user.vtbl = &lt_srv_vtbl;
    t->cli_user.vtbl = &lt_cli_vtbl;
    t->watchdog_user.vtbl = &lt_timer_vtbl;
    t->mux = IIoMux_Create();
    if (!t->mux) {
        t->error = "IIoMux_Create failed";
        return NULL;
    }
    ISocketProvider *tcp = CreateTCPSocketProvider();
    ISocket *lst = ISocketProvider_CreateSocket(tcp, t->mux, &t->lst_user, NULL, false, NULL);
    ISocket_Bind(lst, "127.0.0.1", 0);
    ISocket_Listen(lst);
    char addr[64];
    uint16_t port = 0;
    ISocket_GetLocalAddress(lst, addr, sizeof(addr), &port);
    snprintf(addr, sizeof(addr), "127.0.0.1:%u", port);
    ISocket *cli = ISocketProvider_CreateSocket(tcp, t->mux, &t->cli_user, NULL, false, NULL);
    ISocket_Connect(cli, addr, NULL);
    /* All of it queued at once: many segments in use together, then all released. */
    uint8_t chunk[LT_CHUNK];
    for (size_t off = 0; off < LT_BYTES; off += LT_CHUNK) {
        for (size_t i = 0; i < LT_CHUNK; i++)
            chunk[i] = lt_byte(off + i);
        ISocket_Send(cli, chunk, LT_CHUNK);
        t->sends++;
    }
    ITimer *watchdog = ITimer_Create(t->mux, &t->watchdog_user);
    ITimer_Start(watchdog, 20000);
    IIoMux_Run(t->mux);
    if (!t->error && (t->received != LT_BYTES || t->results != t->sends))
        t->error = "the loop stopped before the transfer was done";
    ITimer_Delete(watchdog);
    ISocket_Delete(cli);
    ISocket_Delete(t->srv);
    ISocket_Delete(lst);
    ISocketProvider_Delete(tcp);
    IIoMux_Delete(t->mux);
    return NULL;
}

Test(tcp_stress, loop_threads_leak_no_send_segments)
{
    for (int round = 0; round < LT_ROUNDS; round++) {
        struct loop_thread *t[LT_THREADS];
        pthread_t th[LT_THREADS];
        for (int i = 0; i < LT_THREADS; i++) {
            t[i] = calloc(1, sizeof(*t[i]));
            cr_assert_not_null(t[i]);
            cr_assert_eq(pthread_create(&th[i], NULL, loop_thread_run, t[i]), 0);
        }
        for (int i = 0; i < LT_THREADS; i++) {
            pthread_join(th[i], NULL);
            cr_assert_null(t[i]->error, "round %d thread %d: %s", round, i, t[i]->error);
            free(t[i]);
        }
    }
    h_check_leaks();
}
