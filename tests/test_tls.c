/* TLS sockets, ringsock against ringsock: handshake, exact bytes both ways, SendResult
 * accounting, shutdown with close_notify, receive cancelation and the handshake limit.
 * The same executable has test_tls_lifetime.c (Delete at awkward moments, IIoMux_Delete),
 * test_tls_faults.c (misbehaving peers, misuse that aborts) and test_tls_starttls.c;
 * certificates and verification are in test_tls_certs.c. */
#include "duplex.h"
#include "tls_env.h"
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

TestSuite(tls, .init = tls_env_init, .fini = tls_env_fini, .timeout = 30);

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
    h_listener_free(&env, l);
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
    h_listener_free(&env, l);
    ISocketContext_EnableKernelTLS(sctx, false);
    ISocketContext_Delete(kctx);
}

/* Bytes waiting in the kernel's receive queue of the established TCP connection whose
 * local port is port (/proc/net/tcp's rx_queue), or -1 where there is none. */
static long kernel_rx_queue(uint16_t port)
{
    FILE *f = fopen("/proc/net/tcp", "r");
    cr_assert_not_null(f);
    char line[512];
    long queued = -1;
    while (queued < 0 && fgets(line, sizeof(line), f)) {
        unsigned lport, state;
        unsigned long rx;
        if (sscanf(line, " %*u: %*x:%x %*x:%*x %x %*x:%lx", &lport, &state, &rx) == 3 &&
            lport == port && state == 1 /* TCP_ESTABLISHED */)
            queued = (long)rx;
    }
    fclose(f);
    return queued;
}

/* Without kernel TLS a TLS socket reads ahead through the loop's multishot receive as a
 * TCP socket does: records the peer sends while the application is not receiving leave
 * the kernel's queue, then reach the next Recv exactly and in order. With kernel TLS asked
 * for, nothing is read ahead of the record boundary where it takes over receiving (where
 * the kernel has no tls ULP, the fallback reads ahead from the next Recv on). One receive
 * at a time (epoll, RINGSOCK_TCP_SINGLE_SHOT=1), nothing is read ahead either. */
Test(tls, records_are_read_ahead_where_kernel_tls_cannot_take_over)
{
    struct h_sock *l = h_sock_new(&env), *c = h_sock_new(&env);
    uint16_t port;
    struct h_sock *child = tls_connected(l, c, &port);
    static uint8_t out[8][200];
    for (size_t i = 0; i < 8; i++) {
        memset(out[i], (int)('a' + i), sizeof(out[i]));
        CALL(ISocket_Send(c->sock, out[i], sizeof(out[i]))); /* a record each */
    }
    cr_assert(h_wait_count(&env, c, H_SEND_RESULT, 8, 3000), "%s", h_dump(c));
    h_run_for(&env, 100);
    bool read_ahead = strcmp(IIoMux_GetBackend(env.mux), "io_uring") == 0 &&
                      !env.mux->settings.tcp_single_shot && !getenv("RINGSOCK_KTLS");
    long queued = kernel_rx_queue(port);
    if (read_ahead)
        cr_assert_eq(queued, 0, "the records wait in the kernel: not read ahead");
    else
        cr_assert_geq(queued, (long)sizeof(out), "read ahead (%ld bytes left in the kernel)",
                      queued);
    static uint8_t in[sizeof(out)];
    CALL(ISocket_Recv(child->sock, in, sizeof(in), false));
    cr_assert(h_wait_count(&env, child, H_RECV_RESULT, 1, 3000), "%s", h_dump(child));
    cr_assert_eq(h_last(child, H_RECV_RESULT)->len, sizeof(in));
    cr_assert_arr_eq(in, out, sizeof(out));
    h_sock_free(c);
    h_listener_free(&env, l);
}

/* ---- full duplex: 16 MiB each way, random send sizes (0 included), random receives ---- */

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

#define BULK_BYTES (16u << 20)

static const struct h_duplex_config duplex = {
    .window_bytes = 2u << 20,
    .window_sends = 512,
    .rbuf_size = 128 * 1024,
    .rand_size = rand_size,
};

Test(tls, full_duplex_16mib_random_sizes_exact_bytes, .timeout = 30)
{
    const size_t total = BULK_BYTES;
    uint8_t *up = malloc(total), *down = malloc(total);
    cr_assert(up && down);
    h_fill(up, total, 0x5151);
    h_fill(down, total, 0xa7a7); /* different streams: crossed directions would show */

    struct h_listener l;
    uint16_t port = h_listener_start(&env, &l, tls, sctx);
    struct h_peer pp[2]; /* [0] client, [1] server side */
    h_peer_init(&pp[0], &duplex, "client", 13, up, down, total);
    h_peer_init(&pp[1], &duplex, "server", 31, down, up, total);
    l.next_user = &pp[1].user;

    double t0 = now_s();
    CALL(pp[0].sock =
             ISocketProvider_CreateSocket(tls, env.mux, &pp[0].user, env.log, false, cctx));
    CALL(ISocket_Connect(pp[0].sock, h_addr(port), "localhost"));
    /* Receive and sends (0-byte ones among them) before the handshake is done. */
    h_peer_recv_next(&pp[0]);
    h_peer_pump(&pp[0]);
    cr_assert_gt(pp[0].sends, 1);
    bool ok = h_run_until(&env, h_duplex_done, pp, 25000);
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
    cr_assert(h_run_until(&env, h_duplex_both_shut, pp, 3000), "client %zu, server %zu shutdowns",
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
    /* Speed is the benchmarks' business (scripts/bench-tls); h_run_until bounds a hang. */
    cr_log_info("TLS 2 x %zu MiB in %.2f s", total >> 20, t1 - t0);
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
    h_listener_free(&env, l);
}

/* ---- receives ---------------------------------------------------------------------------- */

Test(tls, full_receive_returns_exactly_len_partial_any)
{
    struct h_sock *l = h_sock_new(&env), *c = h_sock_new(&env);
    struct h_sock *srv = tls_connected(l, c, NULL);
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
    h_listener_free(&env, l);
}

Test(tls, recv_cancel_keeps_decrypted_bytes)
{
    struct h_sock *l = h_sock_new(&env), *c = h_sock_new(&env);
    struct h_sock *srv = tls_connected(l, c, NULL);
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
    h_listener_free(&env, l);
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
    h_listener_free(&env, l);
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
    cr_assert(h_run_until(&env, h_listener_settled, l, 3000));
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
    h_listener_free(&env, l);
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
    h_listener_free(&env, l);
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
    h_listener_free(&env, l);
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
    h_listener_free(&env, l);
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
