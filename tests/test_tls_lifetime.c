/* TLS sockets deleted at awkward moments (inside callbacks, with I/O or a handshake in
 * flight), IIoMux_Delete freeing what the engine owns, and errors below TLS keeping their
 * reasons. Part of the test_tls executable (tls_env.h). */
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

/* ---- Delete ---------------------------------------------------------------------------------- */

/* A provider may be deleted while what it made lives (api.md): also a TCP provider that a
 * TLS provider wraps, which then still makes working sockets. */
Test(tls, tcp_provider_deleted_before_the_tls_provider_wrapping_it)
{
    ISocketProvider *tcp = CreateTCPSocketProvider();
    ISocketProvider *own = CreateTLSSocketProvider(tcp);
    ISocketProvider_Delete(tcp);
    struct h_sock *l = h_sock_new(&env);
    l->echo = true;
    uint16_t port = h_listen_on(&env, own, sctx, l, "127.0.0.1");
    struct h_sock *c = h_sock_new(&env);
    h_connect_on(&env, own, cctx, c, port, "localhost");
    ISocketProvider_Delete(own); /* its sockets live on */
    static const char msg[] = "wrapped";
    static char in[sizeof(msg)];
    CALL(ISocket_Send(c->sock, msg, sizeof(msg)));
    CALL(ISocket_Recv(c->sock, in, sizeof(in), false));
    cr_assert(h_wait_count(&env, c, H_RECV_RESULT, 1, 5000), "%s\n%s", h_dump(c), h_logs(&env));
    cr_assert_str_eq(in, msg);
    h_sock_free(c);
    h_listener_free(&env, l);
}

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
    h_listener_free(&env, l);
}

Test(tls, delete_with_receive_and_send_in_flight)
{
    struct h_sock *l = h_sock_new(&env), *c = h_sock_new(&env);
    struct h_sock *srv = tls_connected(l, c, NULL);
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
    h_listener_free(&env, l);
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
    cr_assert(h_run_until(&env, h_listener_settled, l, 3000));

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
    h_listener_free(&env, l);
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
    h_listener_free(&env, l);
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
    h_listener_free(&env, l);
}
