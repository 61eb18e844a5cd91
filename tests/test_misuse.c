/* Programming errors abort with a message naming the call, as the SDK asserts; odd but
 * legal input (zero-length Send and Recv, NULL with them) is handled, never a crash.
 *
 * Each test first runs its scenario in a forked child whose stderr goes to a pipe, and
 * checks that the child died of SIGABRT with the expected message; then it runs the
 * scenario itself, so Criterion sees the abort too (.signal = SIGABRT). Every scenario
 * builds its own loop: a child must not share the parent's io_uring. */
#include "harness.h"

#include <poll.h>
#include <stdlib.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

TestSuite(misuse, .timeout = 60);

static struct h_env env;
static struct h_sock *hs;
static int raw_listener = -1;
static uint16_t raw_port;

static void scenario_begin(void)
{
    h_env_init(&env);
    hs = h_sock_new(&env);
    h_tcp_socket(&env, hs, false);
}

static const char *raw_server(void)
{
    static char a[64];
    if (raw_listener < 0)
        raw_listener = h_raw_listen("127.0.0.1", &raw_port);
    snprintf(a, sizeof(a), "127.0.0.1:%u", raw_port);
    return a;
}

/* Connects hs to a kernel listener and waits for ConnectComplete. */
static void connect_hs(void)
{
    CALL(ISocket_Connect(hs->sock, raw_server(), NULL));
    if (!h_wait_count(&env, hs, H_CONNECT_COMPLETE, 1, 3000))
        cr_assert_fail("no ConnectComplete: %s", h_dump(hs));
}

/* Checks the abort and its message in a child, then runs the scenario here so that
 * Criterion's .signal = SIGABRT sees it too. */
static void expect_abort(void (*scenario)(void), const char *needle)
{
    h_expect_abort(scenario, needle);
    scenario();
    cr_log_error("scenario returned without aborting");
}

/* ---- mode: the first of Connect or Bind fixes it ---------------------------------------- */

static void connect_after_bind(void)
{
    scenario_begin();
    CALL(ISocket_Bind(hs->sock, "127.0.0.1", 0));
    CALL(ISocket_Connect(hs->sock, "127.0.0.1:9", NULL));
}

Test(misuse, connect_after_bind, .signal = SIGABRT)
{
    expect_abort(connect_after_bind, "ISocket_Connect after ISocket_Bind");
}

static void bind_after_connect(void)
{
    scenario_begin();
    CALL(ISocket_Connect(hs->sock, raw_server(), NULL));
    CALL(ISocket_Bind(hs->sock, "127.0.0.1", 0));
}

Test(misuse, bind_after_connect, .signal = SIGABRT)
{
    expect_abort(bind_after_connect, "ISocket_Bind after ISocket_Connect");
}

static void bind_after_connected(void)
{
    scenario_begin();
    connect_hs();
    CALL(ISocket_Bind(hs->sock, NULL, 0));
}

Test(misuse, bind_after_connect_complete, .signal = SIGABRT)
{
    expect_abort(bind_after_connected, "ISocket_Bind after ISocket_Connect");
}

static void connect_twice(void)
{
    scenario_begin();
    CALL(ISocket_Connect(hs->sock, raw_server(), NULL));
    CALL(ISocket_Connect(hs->sock, raw_server(), NULL));
}

Test(misuse, connect_twice, .signal = SIGABRT)
{
    expect_abort(connect_twice, "ISocket_Connect");
}

static void bind_twice(void)
{
    scenario_begin();
    CALL(ISocket_Bind(hs->sock, "127.0.0.1", 0));
    CALL(ISocket_Bind(hs->sock, "127.0.0.1", 0));
}

Test(misuse, bind_twice, .signal = SIGABRT)
{
    expect_abort(bind_twice, "ISocket_Bind");
}

/* An accepted socket is connected: Connect on it is the other mode. */
static void connect_on_accepted(void)
{
    h_env_init(&env);
    struct h_sock *l = h_sock_new(&env);
    uint16_t port = h_listen(&env, l, "127.0.0.1");
    int fd = h_raw_connect("127.0.0.1", port);
    (void)fd;
    struct h_sock *a = h_wait_accepted(&env, l, 1, 3000);
    if (!a)
        cr_assert_fail("nothing accepted");
    CALL(ISocket_Connect(a->sock, "127.0.0.1:9", NULL));
}

Test(misuse, connect_on_accepted_socket, .signal = SIGABRT)
{
    expect_abort(connect_on_accepted, "ISocket_Connect");
}

/* ---- server sockets carry no data ------------------------------------------------------- */

static void send_after_bind(void)
{
    scenario_begin();
    CALL(ISocket_Bind(hs->sock, "127.0.0.1", 0));
    CALL(ISocket_Send(hs->sock, "x", 1));
}

Test(misuse, send_on_bound_socket, .signal = SIGABRT)
{
    expect_abort(send_after_bind, "ISocket_Send after ISocket_Bind");
}

static void send_on_listening(void)
{
    scenario_begin();
    CALL(ISocket_Bind(hs->sock, "127.0.0.1", 0));
    CALL(ISocket_Listen(hs->sock));
    h_run_for(&env, 5); /* past BindResult: the socket is plainly a listener now */
    CALL(ISocket_Send(hs->sock, "x", 1));
}

Test(misuse, send_on_listening_socket, .signal = SIGABRT)
{
    expect_abort(send_on_listening, "ISocket_Send");
}

static void sendnocopy_after_bind(void)
{
    scenario_begin();
    CALL(ISocket_Bind(hs->sock, "127.0.0.1", 0));
    CALL(ISocket_Listen(hs->sock));
    CALL(ISocket_SendNoCopy(hs->sock, "x", 1));
}

Test(misuse, sendnocopy_on_listening_socket, .signal = SIGABRT)
{
    expect_abort(sendnocopy_after_bind, "ISocket_SendNoCopy");
}

static void send_before_connect(void)
{
    scenario_begin();
    CALL(ISocket_Send(hs->sock, "x", 1));
}

Test(misuse, send_before_connect_or_bind, .signal = SIGABRT)
{
    expect_abort(send_before_connect, "ISocket_Send");
}

static void recv_on_listening(void)
{
    static uint8_t buf[16];
    scenario_begin();
    CALL(ISocket_Bind(hs->sock, "127.0.0.1", 0));
    CALL(ISocket_Listen(hs->sock));
    CALL(ISocket_Recv(hs->sock, buf, sizeof(buf), true));
}

Test(misuse, recv_on_listening_socket, .signal = SIGABRT)
{
    expect_abort(recv_on_listening, "ISocket_Recv");
}

/* Bind fixed server mode: a receive is as wrong here as a send, listening or not. */
static void recv_on_bound(void)
{
    static uint8_t buf[16];
    scenario_begin();
    CALL(ISocket_Bind(hs->sock, "127.0.0.1", 0));
    CALL(ISocket_Recv(hs->sock, buf, sizeof(buf), true));
}

Test(misuse, recv_on_bound_socket, .signal = SIGABRT)
{
    expect_abort(recv_on_bound, "ISocket_Recv");
}

/* ---- listen and accept ------------------------------------------------------------------ */

static void listen_without_bind(void)
{
    scenario_begin();
    CALL(ISocket_Listen(hs->sock));
}

Test(misuse, listen_without_bind, .signal = SIGABRT)
{
    expect_abort(listen_without_bind, "ISocket_Listen without ISocket_Bind");
}

static void listen_after_connect(void)
{
    scenario_begin();
    CALL(ISocket_Connect(hs->sock, raw_server(), NULL));
    CALL(ISocket_Listen(hs->sock));
}

Test(misuse, listen_after_connect, .signal = SIGABRT)
{
    expect_abort(listen_after_connect, "ISocket_Listen");
}

static void accept_outside(void)
{
    struct h_sock *u = NULL;
    scenario_begin();
    u = h_sock_new(&env);
    CALL(ISocket_Bind(hs->sock, "127.0.0.1", 0));
    CALL(ISocket_Listen(hs->sock));
    CALL(ISocket_Accept(hs->sock, &u->user));
}

Test(misuse, accept_outside_listen_result, .signal = SIGABRT)
{
    expect_abort(accept_outside, "ISocket_Accept outside SocketListenResult");
}

/* Accept later, from a timer, for a connection offered earlier: still outside. */
static ISocket *deferred_listener;
static struct h_sock *deferred_user;

static void accept_late_timer(UTimer *u, ITimer *t)
{
    (void)u;
    (void)t;
    CALL(ISocket_Accept(deferred_listener, &deferred_user->user));
}

static const struct UTimerVtbl late_vtbl = {accept_late_timer};

static void accept_late(void)
{
    static UTimer tu = {&late_vtbl};
    h_env_init(&env);
    struct h_sock *l = h_sock_new(&env);
    l->reject = true;
    uint16_t port = h_listen(&env, l, "127.0.0.1");
    deferred_listener = l->sock;
    deferred_user = h_sock_new(&env);
    h_raw_connect("127.0.0.1", port);
    if (!h_wait_count(&env, l, H_LISTEN_RESULT, 1, 3000))
        cr_assert_fail("no ListenResult");
    ITimer *t = ITimer_Create(env.mux, &tu);
    ITimer_Start(t, 1);
    h_run_for(&env, 100);
}

Test(misuse, accept_after_listen_result_returned, .signal = SIGABRT)
{
    expect_abort(accept_late, "ISocket_Accept outside SocketListenResult");
}

static void accept_twice_hook(struct h_sock *l, const struct h_event *e)
{
    if (e->kind != H_LISTEN_RESULT)
        return;
    struct h_sock *u = h_sock_new(l->env);
    CALL(ISocket_Accept(e->sock, &u->user)); /* the harness already accepted it */
}

static void accept_twice(void)
{
    h_env_init(&env);
    struct h_sock *l = h_sock_new(&env);
    l->on_event = accept_twice_hook;
    uint16_t port = h_listen(&env, l, "127.0.0.1");
    h_raw_connect("127.0.0.1", port);
    h_run_for(&env, 1000);
}

Test(misuse, accept_twice_for_one_connection, .signal = SIGABRT)
{
    expect_abort(accept_twice, "ISocket_Accept");
}

/* The legal counterpart: Accept inside SocketListenResult yields a working socket. */
Test(misuse, accept_inside_listen_result_works)
{
    h_env_init(&env);
    struct h_sock *l = h_sock_new(&env);
    l->echo = true;
    uint16_t port = h_listen(&env, l, "127.0.0.1");
    int fd = h_raw_connect("127.0.0.1", port);
    struct h_sock *a = h_wait_accepted(&env, l, 1, 3000);
    cr_assert_not_null(a, "%s", h_dump(l));
    cr_assert_not_null(a->sock);
    h_raw_write_all(fd, "ping", 4);
    char buf[4];
    size_t got = 0;
    for (int i = 0; i < 200 && got < 4; i++) {
        h_run_for(&env, 5);
        got += h_raw_read_n(fd, buf + got, 4 - got, 0);
    }
    cr_assert_eq(got, 4);
    cr_assert_arr_eq(buf, "ping", 4);
    close(fd);
    h_sock_free(l);
    h_run_for(&env, 5); /* the kernel's cancellations complete */
    h_env_fini(&env);
}

/* ---- receive ---------------------------------------------------------------------------- */

static void recv_twice(void)
{
    static uint8_t b1[16], b2[16];
    scenario_begin();
    connect_hs();
    CALL(ISocket_Recv(hs->sock, b1, sizeof(b1), true));
    CALL(ISocket_Recv(hs->sock, b2, sizeof(b2), true));
}

Test(misuse, recv_while_recv_outstanding, .signal = SIGABRT)
{
    expect_abort(recv_twice, "ISocket_Recv while another receive is outstanding");
}

/* A listener receives nothing; its connections do (UDP, which has no listener, may). */
static void recv_after_bind(void)
{
    static uint8_t b[16];
    scenario_begin();
    CALL(ISocket_Bind(hs->sock, "127.0.0.1", 0));
    CALL(ISocket_Recv(hs->sock, b, sizeof(b), true));
}

Test(misuse, recv_on_bound_stream_socket, .signal = SIGABRT)
{
    expect_abort(recv_after_bind, "ISocket_Recv after ISocket_Bind");
}

/* After Shutdown a Recv is ignored, also with one outstanding: no misuse. */
Test(misuse, recv_after_shutdown_is_ignored)
{
    static uint8_t b1[16], b2[16];
    h_env_init(&env);
    struct h_sock *l = h_sock_new(&env);
    uint16_t port = h_listen(&env, l, "127.0.0.1");
    struct h_sock *c = h_sock_new(&env);
    h_tcp_socket(&env, c, false);
    CALL(ISocket_Connect(c->sock, h_addr(port), NULL));
    CALL(ISocket_Recv(c->sock, b1, sizeof(b1), true));
    CALL(ISocket_Shutdown(c->sock));
    CALL(ISocket_Recv(c->sock, b2, sizeof(b2), true));
    cr_assert(h_wait_count(&env, c, H_SHUTDOWN, 1, 2000), "%s", h_dump(c));
    cr_assert_eq(h_count(c, H_RECV_CANCELED), 1, "only the first buffer comes back: %s", h_dump(c));
    cr_assert_eq(h_last(c, H_RECV_CANCELED)->buf, b1);
    h_sock_free(c);
    h_sock_free(l);
    h_env_fini(&env);
}

static void recv_twice_connecting(void)
{
    static uint8_t b1[16], b2[16];
    scenario_begin();
    CALL(ISocket_Connect(hs->sock, raw_server(), NULL));
    CALL(ISocket_Recv(hs->sock, b1, sizeof(b1), false));
    CALL(ISocket_Recv(hs->sock, b2, sizeof(b2), false));
}

Test(misuse, recv_while_recv_outstanding_before_connected, .signal = SIGABRT)
{
    expect_abort(recv_twice_connecting, "ISocket_Recv while another receive is outstanding");
}

static void recv_null(void)
{
    scenario_begin();
    connect_hs();
    CALL(ISocket_Recv(hs->sock, NULL, 16, true));
}

Test(misuse, recv_null_buffer, .signal = SIGABRT)
{
    expect_abort(recv_null, "ISocket_Recv with a NULL buffer");
}

/* ---- NULL buffers with a length: the calls used to dereference them -------------------- */

static void send_null(void)
{
    scenario_begin();
    CALL(ISocket_Connect(hs->sock, raw_server(), NULL)); /* sends are legal from here on */
    CALL(ISocket_Send(hs->sock, NULL, 5));
}

Test(misuse, send_null_buffer_aborts_naming_call, .signal = SIGABRT)
{
    expect_abort(send_null, "ISocket_Send with a NULL buffer");
}

static void sendnocopy_null(void)
{
    scenario_begin();
    connect_hs();
    CALL(ISocket_SendNoCopy(hs->sock, NULL, 100000));
}

Test(misuse, sendnocopy_null_buffer_aborts_naming_call, .signal = SIGABRT)
{
    expect_abort(sendnocopy_null, "ISocket_SendNoCopy with a NULL buffer");
}

static void sendto_null(void)
{
    IPaddr a;
    scenario_begin();
    ISocketProvider *udp = CreateUDPSocketProvider();
    ISocket *u = NULL;
    CALL(u = ISocketProvider_CreateSocket(udp, env.mux, &hs->user, env.log, false, NULL));
    CALL(ISocket_Bind(u, "127.0.0.1", 0));
    IPaddr_FromString(&a, "127.0.0.1");
    CALL(ISocket_SendTo(u, NULL, 10, a, 9));
}

Test(misuse, sendto_null_buffer_aborts_naming_call, .signal = SIGABRT)
{
    expect_abort(sendto_null, "ISocket_SendTo with a NULL buffer");
}

static void send_null_tls(void)
{
    scenario_begin();
    ISocketProvider *tls = CreateTLSSocketProvider(env.tcp);
    ISocketContext *ctx = ISocketProvider_CreateSocketContext(tls, env.log);
    ISocket *t = NULL;
    CALL(t = ISocketProvider_CreateSocket(tls, env.mux, &hs->user, env.log, false, ctx));
    CALL(ISocket_Connect(t, raw_server(), NULL));
    CALL(ISocket_Send(t, NULL, 5));
}

Test(misuse, send_null_buffer_aborts_naming_call_on_tls, .signal = SIGABRT)
{
    expect_abort(send_null_tls, "ISocket_Send with a NULL buffer");
}

/* ---- odd input that is legal: logged and handled, never a crash ------------------------- */

enum transport { T_TCP, T_TLS, T_DTLS };

static ISocketProvider *provider; /* the environment's own for TCP */
static ISocketContext *sctx, *cctx;

static void transport_begin(enum transport t)
{
    h_env_init(&env);
    static const enum LogFlags flags[] = {LOG_TCP, LOG_TLS, LOG_DTLS};
    IInstanceLog_SetLogFlags(env.log, flags[t]); /* the type's own: what it logs is asserted */
    sctx = cctx = NULL;
    provider = env.tcp;
    if (t == T_TCP)
        return;
    provider = t == T_TLS ? CreateTLSSocketProvider(env.tcp) : CreateUDPSocketProvider();
    sctx = ISocketProvider_CreateSocketContext(provider, env.log);
    cctx = ISocketProvider_CreateSocketContext(provider, env.log);
    ISocketContext_SetVerifyPeer(cctx, false); /* the server's certificate is generated */
    if (t == T_DTLS) {
        ISocketContext_EnableDTLS(sctx, false);
        ISocketContext_EnableDTLS(cctx, false);
    }
}

static void transport_end(struct h_sock *c, struct h_sock *l)
{
    h_sock_free(c);
    h_sock_free(l);
    h_run_for(&env, 5); /* the kernel's cancellations complete */
    if (provider != env.tcp) {
        ISocketContext_Delete(sctx);
        ISocketContext_Delete(cctx);
        ISocketProvider_Delete(provider);
    }
    h_env_fini(&env);
}

/* A listener, whose connections keep receiving and collect what arrives if sink is set,
 * and a client connecting to it (not yet connected when this returns). */
static struct h_sock *start_pair(struct h_sock **client, bool sink)
{
    struct h_sock *l = h_sock_new(&env);
    l->sink = l->collect = sink;
    uint16_t port = h_listen_on(&env, provider, sctx, l, "127.0.0.1");
    *client = h_sock_new(&env);
    h_connect_on(&env, provider, cctx, *client, port, NULL);
    return l;
}

/* Zero-length receives used to abort. Each completes with SocketRecvResult(buf, 0) from
 * the loop (the harness fails any callback inside a call), after SocketConnectComplete,
 * and takes nothing: the bytes already there wait for the next receive. */
static void check_recv_zero_length(enum transport t)
{
    transport_begin(t);
    struct h_sock *c;
    struct h_sock *l = start_pair(&c, true);
    static uint8_t b[8];
    CALL(ISocket_Recv(c->sock, b, 0, false));
    cr_assert(h_wait_count(&env, c, H_RECV_RESULT, 1, 5000), "%s\n%s", h_dump(c), h_logs(&env));
    cr_assert_eq(c->ev[0].kind, H_CONNECT_COMPLETE, "%s", h_dump(c));
    cr_assert_eq(h_last(c, H_RECV_RESULT)->buf, b);
    cr_assert_eq(h_last(c, H_RECV_RESULT)->len, 0);
    cr_assert(h_log_contains(&env, "zero-length ISocket_Recv"), "%s", h_logs(&env));

    struct h_sock *a = h_wait_accepted(&env, l, 1, 5000);
    cr_assert_not_null(a, "%s", h_dump(l));
    CALL(ISocket_Send(a->sock, "abc", 3));
    cr_assert(h_wait_count(&env, a, H_SEND_RESULT, 1, 2000), "%s", h_dump(a));
    h_run_for(&env, 20); /* "abc" is here */
    CALL(ISocket_Recv(c->sock, b, 0, true));
    cr_assert(h_wait_count(&env, c, H_RECV_RESULT, 2, 2000), "%s", h_dump(c));
    cr_assert_eq(h_last(c, H_RECV_RESULT)->len, 0);
    CALL(ISocket_Recv(c->sock, NULL, 0, false));
    cr_assert(h_wait_count(&env, c, H_RECV_RESULT, 3, 2000), "%s", h_dump(c));
    cr_assert_null(h_last(c, H_RECV_RESULT)->buf);
    cr_assert_eq(h_last(c, H_RECV_RESULT)->len, 0);

    CALL(ISocket_Recv(c->sock, b, sizeof(b), true));
    cr_assert(h_wait_count(&env, c, H_RECV_RESULT, 4, 2000), "%s", h_dump(c));
    cr_assert_eq(h_last(c, H_RECV_RESULT)->len, 3, "%s", h_dump(c));
    cr_assert_arr_eq(b, "abc", 3);
    cr_assert_not(h_has_shutdown(c), "%s", h_dump(c));
    transport_end(c, l);
}

Test(misuse, recv_zero_length_completes)
{
    check_recv_zero_length(T_TCP);
}

Test(misuse, recv_zero_length_completes_on_tls)
{
    check_recv_zero_length(T_TLS);
}

/* A zero-length receive that is outstanding when the connection ends comes back like
 * any other buffer: SocketRecvCanceled, then SocketShutdown. */
Test(misuse, recv_zero_length_returned_when_connect_fails)
{
    transport_begin(T_TCP);
    struct h_sock *c = h_sock_new(&env);
    h_tcp_socket(&env, c, false);
    uint16_t port;
    close(h_raw_listen("127.0.0.1", &port)); /* nothing listens there now */
    static uint8_t b[4];
    CALL(ISocket_Connect(c->sock, h_addr(port), NULL));
    CALL(ISocket_Recv(c->sock, b, 0, false));
    cr_assert(h_wait_count(&env, c, H_SHUTDOWN, 1, 3000), "%s", h_dump(c));
    cr_assert_eq(c->nev, 2, "%s", h_dump(c));
    cr_assert_eq(c->ev[0].kind, H_RECV_CANCELED, "%s", h_dump(c));
    cr_assert_eq(c->ev[0].buf, b);
    cr_assert_eq(h_last(c, H_SHUTDOWN)->reason, SOCKET_CONNECT_REJECTED);
    transport_end(c, NULL);
}

/* On a datagram socket a Recv takes one message; a zero-length one takes the next
 * message cut to nothing (counted as truncated), as a buffer too small for it would.
 * hs has been sent "first" and "second"; k is how it receives them. */
static void check_recv_zero_takes_first(struct h_sock *hs, enum h_kind k)
{
    static uint8_t b[16];
    CALL(ISocket_Recv(hs->sock, b, 0, false));
    cr_assert(h_wait_count(&env, hs, k, 1, 2000), "%s", h_dump(hs));
    cr_assert_eq(h_last(hs, k)->buf, b);
    cr_assert_eq(h_last(hs, k)->len, 0);
    CALL(ISocket_Recv(hs->sock, b, sizeof(b), false));
    cr_assert(h_wait_count(&env, hs, k, 2, 2000), "%s", h_dump(hs));
    cr_assert_eq(h_last(hs, k)->len, 6);
    cr_assert_arr_eq(b, "second", 6);
    ISocketStats st;
    ISocket_GetStats(hs->sock, &st);
    cr_assert_eq(st.truncated, 1);
    cr_assert_not(h_has_shutdown(hs), "%s", h_dump(hs));
}

Test(misuse, recv_zero_length_takes_one_message_on_dtls)
{
    transport_begin(T_DTLS);
    struct h_sock *c;
    struct h_sock *l = start_pair(&c, false);
    cr_assert(h_wait_count(&env, c, H_CONNECT_COMPLETE, 1, 5000), "%s", h_logs(&env));
    struct h_sock *a = h_wait_accepted(&env, l, 1, 5000);
    cr_assert_not_null(a, "%s", h_dump(l));
    CALL(ISocket_Send(a->sock, "first", 5));
    CALL(ISocket_Send(a->sock, "second", 6));
    check_recv_zero_takes_first(c, H_RECV_RESULT);
    transport_end(c, l);
}

Test(misuse, recv_zero_length_takes_one_datagram_on_udp)
{
    transport_begin(T_TCP);
    ISocketProvider *udp = CreateUDPSocketProvider();
    struct h_sock *srv = h_sock_new(&env), *cli = h_sock_new(&env);
    CALL(srv->sock = ISocketProvider_CreateSocket(udp, env.mux, &srv->user, env.log, false, NULL));
    CALL(ISocket_Bind(srv->sock, "127.0.0.1", 0));
    char addr[64];
    uint16_t port;
    ISocket_GetLocalAddress(srv->sock, addr, sizeof(addr), &port);
    CALL(cli->sock = ISocketProvider_CreateSocket(udp, env.mux, &cli->user, env.log, false, NULL));
    CALL(ISocket_Connect(cli->sock, h_addr(port), NULL));
    CALL(ISocket_Send(cli->sock, "first", 5));
    CALL(ISocket_Send(cli->sock, "second", 6));
    cr_assert(h_wait_count(&env, cli, H_SEND_RESULT, 2, 2000), "%s", h_dump(cli));
    check_recv_zero_takes_first(srv, H_RECV_FROM_RESULT);
    cr_assert_str_eq(srv->ev[srv->nev - 2].addr, "127.0.0.1", "%s", h_dump(srv));
    transport_end(cli, srv);
    ISocketProvider_Delete(udp);
}

/* Zero-length sends, with a buffer or NULL, each get exactly one SocketSendResult in
 * order, alone or between other sends, and send nothing. */
static void check_send_zero_length(enum transport t, bool stream)
{
    transport_begin(t);
    struct h_sock *c;
    struct h_sock *l = start_pair(&c, true);
    CALL(ISocket_Send(c->sock, "", 0)); /* before the connection is up */
    CALL(ISocket_Send(c->sock, "ab", 2));
    CALL(ISocket_Send(c->sock, NULL, 0));
    CALL(ISocket_Send(c->sock, "cd", 2));
    cr_assert(h_wait_count(&env, c, H_SEND_RESULT, 4, 5000), "%s\n%s", h_dump(c), h_logs(&env));
    cr_assert(h_log_contains(&env, "zero-length ISocket_Send"), "%s", h_logs(&env));
    struct h_sock *a = h_wait_accepted(&env, l, 1, 5000);
    cr_assert_not_null(a, "%s", h_dump(l));
    h_run_for(&env, 20);                /* no fifth result, and everything arrived */
    CALL(ISocket_Send(c->sock, "", 0)); /* nothing queued or in flight */
    if (stream)
        CALL(ISocket_SendNoCopy(c->sock, NULL, 0));
    size_t want = stream ? 6 : 5;
    cr_assert(h_wait_count(&env, c, H_SEND_RESULT, want, 2000), "%s", h_dump(c));
    h_run_for(&env, 20);
    cr_assert_eq(h_count(c, H_SEND_RESULT), want, "%s", h_dump(c));
    cr_assert_eq(a->data_len, 4, "%s", h_dump(a));
    cr_assert_arr_eq(a->data, "abcd", 4);
    cr_assert_not(h_has_shutdown(c), "%s", h_dump(c));
    cr_assert_not(h_has_shutdown(a), "%s", h_dump(a));
    transport_end(c, l);
}

Test(misuse, send_zero_length_yields_one_result)
{
    check_send_zero_length(T_TCP, true);
}

Test(misuse, send_zero_length_yields_one_result_on_tls)
{
    check_send_zero_length(T_TLS, true);
}

Test(misuse, send_zero_length_yields_one_result_on_dtls)
{
    check_send_zero_length(T_DTLS, false);
}

/* ---- datagram calls on a stream socket -------------------------------------------------- */

/* The SDK's stream sockets inherit ISocket's SendTo, which does nothing: logged, no
 * SocketSendResult, nothing sent, and the connection carries on. */
Test(misuse, sendto_on_tcp_socket_is_logged_and_ignored)
{
    IPaddr a;
    scenario_begin();
    connect_hs();
    int fd = accept(raw_listener, NULL, NULL);
    cr_assert_geq(fd, 0);
    IPaddr_FromString(&a, "127.0.0.1");
    CALL(ISocket_SendTo(hs->sock, "x", 1, a, raw_port));
    CALL(ISocket_Send(hs->sock, "y", 1));
    cr_assert(h_wait_count(&env, hs, H_SEND_RESULT, 1, 3000), "%s", h_dump(hs));
    char got[2] = {0};
    cr_assert_eq(h_raw_read_n(fd, got, 1, 3000), 1);
    cr_assert_eq(got[0], 'y', "the ignored SendTo sent something");
    h_run_for(&env, 20);
    cr_assert_eq(h_count(hs, H_SEND_RESULT), 1, "%s", h_dump(hs));
    cr_assert_not(h_has_shutdown(hs), "%s", h_dump(hs));
    cr_assert(h_log_contains(&env, "ISocket_SendTo on a stream socket: ignored"), "%s",
              h_logs(&env));
    close(fd);
    h_sock_free(hs);
    h_env_fini(&env);
}
