/* TCP sockets: the everyday semantics of api.md, ringsock against ringsock and
 * against raw kernel sockets. */
#include "harness.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

static struct h_env env;

static void setup(void)
{
    h_env_init(&env);
}

static void teardown(void)
{
    h_env_fini(&env);
}

TestSuite(tcp, .init = setup, .fini = teardown, .timeout = 30);

Test(tcp, bind_reports_address_and_port)
{
    struct h_sock *l = h_sock_new(&env);
    h_tcp_socket(&env, l, false);
    CALL(ISocket_Bind(l->sock, NULL, 0));
    cr_assert_eq(h_count(l, H_BIND_RESULT), 0, "BindResult inside Bind");
    cr_assert(h_wait_count(&env, l, H_BIND_RESULT, 1, 2000));
    const struct h_event *e = h_last(l, H_BIND_RESULT);
    cr_assert_str_eq(e->addr, "0.0.0.0");
    cr_assert_neq(e->port, 0);
    char a[64];
    uint16_t p;
    CALL(ISocket_GetLocalAddress(l->sock, a, sizeof(a), &p));
    cr_assert_eq(p, e->port);
    h_sock_free(l);
}

Test(tcp, bind_v6_wildcard_reports_colons)
{
    struct h_sock *l = h_sock_new(&env);
    h_tcp_socket(&env, l, true);
    CALL(ISocket_Bind(l->sock, NULL, 0));
    cr_assert(h_wait_count(&env, l, H_BIND_RESULT, 1, 2000));
    cr_assert_str_eq(h_last(l, H_BIND_RESULT)->addr, "::");
    h_sock_free(l);
}

Test(tcp, listen_takes_effect_before_return)
{
    struct h_sock *l = h_sock_new(&env);
    uint16_t port = h_listen(&env, l, "127.0.0.1");
    /* No loop iteration yet: a kernel client must still connect. */
    int fd = h_raw_connect("127.0.0.1", port);
    cr_assert(h_wait_accepted(&env, l, 1, 2000));
    cr_assert_str_eq(h_last(l, H_LISTEN_RESULT)->addr, "127.0.0.1");
    close(fd);
    h_sock_free(l);
}

Test(tcp, echo_roundtrip_exact_bytes_and_order)
{
    struct h_sock *l = h_sock_new(&env);
    l->echo = true;
    uint16_t port = h_listen(&env, l, "127.0.0.1");
    struct h_sock *c = h_sock_new(&env);
    h_tcp_socket(&env, c, false);
    CALL(ISocket_Connect(c->sock, h_addr(port), NULL));
    /* Sending before ConnectComplete is allowed; the buffer is reusable at once. */
    char msg[32];
    strcpy(msg, "hello ");
    CALL(ISocket_Send(c->sock, msg, 6));
    strcpy(msg, "world");
    CALL(ISocket_Send(c->sock, msg, 5));
    memset(msg, 'X', sizeof(msg));
    cr_assert_eq(c->nev, 0, "callback inside the calls: %s", h_dump(c));
    static uint8_t in[11];
    CALL(ISocket_Recv(c->sock, in, sizeof(in), false));
    cr_assert(h_wait_count(&env, c, H_RECV_RESULT, 1, 3000), "%s", h_dump(c));
    cr_assert_eq(c->ev[0].kind, H_CONNECT_COMPLETE, "%s", h_dump(c));
    cr_assert_eq(h_count(c, H_SEND_RESULT), 2);
    const struct h_event *r = h_last(c, H_RECV_RESULT);
    cr_assert_eq(r->buf, in);
    cr_assert_eq(r->len, 11);
    cr_assert_arr_eq(in, "hello world", 11);
    h_sock_free(c);
    h_sock_free(l);
}

Test(tcp, partial_recv_returns_what_is_there)
{
    struct h_sock *l = h_sock_new(&env);
    uint16_t port = h_listen(&env, l, "127.0.0.1");
    struct h_sock *c = h_sock_new(&env);
    h_tcp_socket(&env, c, false);
    CALL(ISocket_Connect(c->sock, h_addr(port), NULL));
    struct h_sock *a = h_wait_accepted(&env, l, 1, 2000);
    cr_assert_not_null(a);
    CALL(ISocket_Send(a->sock, "abc", 3));
    static uint8_t in[1000];
    CALL(ISocket_Recv(c->sock, in, sizeof(in), true));
    cr_assert(h_wait_count(&env, c, H_RECV_RESULT, 1, 2000));
    cr_assert_eq(h_last(c, H_RECV_RESULT)->len, 3);
    cr_assert_arr_eq(in, "abc", 3);
    h_sock_free(c);
    h_sock_free(l);
}

Test(tcp, shutdown_flushes_sends_then_normal)
{
    struct h_sock *l = h_sock_new(&env);
    l->collect = true;
    l->sink = true;
    uint16_t port = h_listen(&env, l, "127.0.0.1");
    struct h_sock *c = h_sock_new(&env);
    h_tcp_socket(&env, c, false);
    CALL(ISocket_Connect(c->sock, h_addr(port), NULL));
    size_t total = 0;
    static uint8_t big[3 << 20];
    h_fill(big, sizeof(big), 7);
    for (int i = 0; i < 3; i++) {
        CALL(ISocket_Send(c->sock, big + ((size_t)i << 20), 1 << 20));
        total += 1 << 20;
    }
    CALL(ISocket_Shutdown(c->sock));
    CALL(ISocket_Send(c->sock, "ignored", 7)); /* after Shutdown: ignored */
    cr_assert(h_wait_count(&env, c, H_SHUTDOWN, 1, 5000), "%s", h_dump(c));
    cr_assert_eq(h_count(c, H_SEND_RESULT), 3, "%s", h_dump(c));
    cr_assert_eq(c->ev[c->nev - 1].kind, H_SHUTDOWN);
    cr_assert_eq(c->ev[c->nev - 1].reason, SOCKET_SHUTDOWN_NORMAL);
    /* The server reads everything, then sees the close. */
    struct h_sock *a = l->accepted[0];
    cr_assert(h_wait_count(&env, a, H_SHUTDOWN, 1, 5000), "%s", h_dump(a));
    cr_assert_eq(a->data_len, total);
    cr_assert_arr_eq(a->data, big, total);
    cr_assert_eq(h_last(a, H_SHUTDOWN)->reason, SOCKET_SHUTDOWN_BY_PEER);
    /* the receive buffer came back just before the shutdown */
    cr_assert_eq(a->ev[a->nev - 2].kind, H_RECV_CANCELED, "%s", h_dump(a));
    cr_assert_eq(a->ev[a->nev - 2].buf, a->echo_buf);
    h_sock_free(c);
    h_sock_free(l);
}
