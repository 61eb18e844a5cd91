/* Programming errors abort with a message naming the call, as the SDK asserts.
 *
 * Each test first runs its scenario in a forked child whose stderr goes to a pipe, and
 * checks that the child died of SIGABRT with the expected message; then it runs the
 * scenario itself, so Criterion sees the abort too (.signal = SIGABRT). Every scenario
 * builds its own loop: a child must not share the parent's io_uring. */
#include "harness.h"

#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
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
    expect_abort(recv_null, "ISocket_Recv");
}

static void recv_zero(void)
{
    static uint8_t b[16];
    scenario_begin();
    connect_hs();
    CALL(ISocket_Recv(hs->sock, b, 0, false));
}

Test(misuse, recv_zero_length, .signal = SIGABRT)
{
    expect_abort(recv_zero, "ISocket_Recv");
}

/* ---- datagram calls on a stream socket -------------------------------------------------- */

static void sendto_tcp(void)
{
    IPaddr a;
    scenario_begin();
    connect_hs();
    IPaddr_FromString(&a, "127.0.0.1");
    CALL(ISocket_SendTo(hs->sock, "x", 1, a, raw_port));
}

Test(misuse, sendto_on_tcp_socket, .signal = SIGABRT)
{
    expect_abort(sendto_tcp, "ISocket_SendTo");
}
