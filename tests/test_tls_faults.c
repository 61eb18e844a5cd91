/* TLS against peers that misbehave (garbage, truncated and oversized records, vanishing
 * mid-handshake), rejected connections, and misuse that aborts. Part of the test_tls
 * executable (tls_env.h). */
#include "tls_env.h"

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
    h_listener_free(&env, l);
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
    h_listener_free(&env, l);
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
    h_listener_free(&env, l);
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
    h_listener_free(&env, l);
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
    h_listener_free(&env, l);
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
