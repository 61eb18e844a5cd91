/* TCP sockets when things go wrong: refused and malformed connects, bind failures,
 * peers that close or reset, rejected connections, RecvCancel, Delete at awkward
 * moments, Shutdown misuse, descriptor exhaustion, QoS, dual stack and logging.
 * Only loopback addresses ever receive traffic. */
#include "harness.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "stream.h"

static struct h_env env;

static void setup(void)
{
    h_env_init(&env);
}

static void teardown(void)
{
    h_env_fini(&env);
}

TestSuite(tcp_errors, .init = setup, .fini = teardown, .timeout = 30);

/* ---- helpers ------------------------------------------------------------------------ */

static void expect_events(const struct h_sock *hs, const enum h_kind *k, size_t n)
{
    cr_assert_eq(hs->nev, n, "expected %zu events, got: %s", n, h_dump(hs));
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(hs->ev[i].kind, k[i], "event %zu should be %s: %s", i, h_kind_name(k[i]),
                     h_dump(hs));
}

/* Exactly these events, in this order. */
#define EXPECT_EVENTS(hs, ...)                                                                     \
    do {                                                                                           \
        const enum h_kind k_[] = {__VA_ARGS__};                                                    \
        expect_events((hs), k_, sizeof(k_) / sizeof(k_[0]));                                       \
    } while (0)

static void expect_reason(const struct h_sock *hs, shutdownreason_t want)
{
    const struct h_event *e = h_last(hs, H_SHUTDOWN);
    cr_assert_not_null(e, "no SocketShutdown: %s", h_dump(hs));
    cr_assert_eq(e->reason, want, "want %s: %s", SocketShutdownReasonToStr(want), h_dump(hs));
}

/* Runs the loop 100 ms and checks no further callback reached hs. */
static void expect_quiet(struct h_sock *hs)
{
    size_t n = hs->nev;
    h_run_for(&env, 100);
    cr_assert_eq(hs->nev, n, "callback after the end: %s", h_dump(hs));
}

static int raw_accept(int lfd)
{
    struct pollfd p = {.fd = lfd, .events = POLLIN};
    cr_assert_eq(poll(&p, 1, 2000), 1, "nothing to accept");
    int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    cr_assert_geq(fd, 0, "accept: %s", strerror(errno));
    return fd;
}

/* A loopback port with a bound but not listening socket: connects to it are refused,
 * and the port cannot be taken by anyone else while fd is open. */
static uint16_t refusing_port(int *fd)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    *fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(*fd, 0);
    cr_assert_eq(bind(*fd, (struct sockaddr *)&a, len), 0);
    getsockname(*fd, (struct sockaddr *)&a, &len);
    return ntohs(a.sin_port);
}

/* A ringsock client connected to a raw kernel peer; returns the peer's descriptor. */
static int connect_to_raw(struct h_sock *c)
{
    uint16_t port;
    int lfd = h_raw_listen("127.0.0.1", &port);
    h_tcp_socket(&env, c, false);
    CALL(ISocket_Connect(c->sock, h_addr(port), NULL));
    cr_assert(h_wait_count(&env, c, H_CONNECT_COMPLETE, 1, 2000), "%s", h_dump(c));
    int fd = raw_accept(lfd);
    close(lfd);
    return fd;
}

/* A non-blocking raw connect that may stay pending. */
static int raw_connect_nb(uint16_t port)
{
    struct sockaddr_in a = {
        .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK), .sin_port = htons(port)};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    cr_assert_geq(fd, 0);
    int r = connect(fd, (struct sockaddr *)&a, sizeof(a));
    cr_assert(r == 0 || errno == EINPROGRESS, "connect: %s", strerror(errno));
    return fd;
}

/* True once the peer closed fd (read returns 0 or an error) within timeout_ms. */
static bool raw_sees_close(int fd, unsigned timeout_ms)
{
    uint8_t junk[65536];
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, (int)timeout_ms) <= 0)
            return false;
        ssize_t n = recv(fd, junk, sizeof(junk), MSG_DONTWAIT);
        if (n == 0 || (n < 0 && errno != EAGAIN))
            return true;
    }
}

struct all_arg {
    struct h_sock **hs;
    size_t n;
};

static bool all_shut(struct h_env *e, void *arg)
{
    (void)e;
    struct all_arg *a = arg;
    for (size_t i = 0; i < a->n; i++)
        if (!h_has_shutdown(a->hs[i]))
            return false;
    return true;
}

static size_t log_count(const char *needle)
{
    size_t n = 0, lines = env.nlog < 64 ? env.nlog : 64;
    for (size_t i = 0; i < lines; i++)
        n += strstr(env.log_lines[i], needle) != NULL;
    return n;
}

/* ---- connect failures --------------------------------------------------------------- */

Test(tcp_errors, connect_refused_drops_sends_returns_recv_buffer)
{
    int hold;
    uint16_t port = refusing_port(&hold);
    struct h_sock *c = h_sock_new(&env);
    h_tcp_socket(&env, c, false);
    static uint8_t in[64];
    CALL(ISocket_Connect(c->sock, h_addr(port), NULL));
    CALL(ISocket_Send(c->sock, "queued 1", 8));
    CALL(ISocket_Send(c->sock, "queued 2", 8));
    CALL(ISocket_Recv(c->sock, in, sizeof(in), false));
    cr_assert_eq(c->nev, 0, "callback inside the calls: %s", h_dump(c));
    cr_assert(h_wait_count(&env, c, H_SHUTDOWN, 1, 2000), "%s", h_dump(c));
    expect_quiet(c);
    /* No ConnectComplete, no SendResult; the buffer comes back just before the end. */
    EXPECT_EVENTS(c, H_RECV_CANCELED, H_SHUTDOWN);
    cr_assert_eq(c->ev[0].buf, in);
    expect_reason(c, SOCKET_CONNECT_REJECTED);
    h_sock_free(c);
    close(hold);
}

Test(tcp_errors, connect_malformed_addresses_are_invalid_after_return)
{
    /* clang-format off */
    static const char *const bad[] = {
        "", "127.0.0.1", "127.0.0.1:", "127.0.0.1:0", "127.0.0.1:65536", "127.0.0.1:80x",
        "1.2.3:80", "localhost:80", "[::1]80", "[::1", "::1:80", "[zz::1]:80",
        "127.0.0.1:+80", "127.0.0.1:-1", NULL,
    };
    /* clang-format on */
    enum { N = sizeof(bad) / sizeof(bad[0]) };
    struct h_sock *c[N];
    static uint8_t in[N][16];
    for (size_t i = 0; i < N; i++) {
        c[i] = h_sock_new(&env);
        h_tcp_socket(&env, c[i], false);
        CALL(ISocket_Connect(c[i]->sock, bad[i], NULL));
        cr_assert_eq(c[i]->nev, 0, "'%s': callback inside Connect: %s", bad[i] ? bad[i] : "(null)",
                     h_dump(c[i]));
        /* Allowed after Connect; dropped or returned once the socket ends. */
        CALL(ISocket_Send(c[i]->sock, "x", 1));
        CALL(ISocket_Recv(c[i]->sock, in[i], sizeof(in[i]), true));
        cr_assert_eq(c[i]->nev, 0, "'%s': callback inside a call", bad[i] ? bad[i] : "(null)");
    }
    struct all_arg all = {c, N};
    cr_assert(h_run_until(&env, all_shut, &all, 2000), "not every socket was shut down");
    h_run_for(&env, 100);
    for (size_t i = 0; i < N; i++) {
        const char *a = bad[i] ? bad[i] : "(null)";
        cr_assert_eq(c[i]->nev, 2, "'%s': %s", a, h_dump(c[i]));
        cr_assert_eq(c[i]->ev[0].kind, H_RECV_CANCELED, "'%s': %s", a, h_dump(c[i]));
        cr_assert_eq(c[i]->ev[0].buf, in[i], "'%s'", a);
        cr_assert_eq(c[i]->ev[1].kind, H_SHUTDOWN, "'%s': %s", a, h_dump(c[i]));
        cr_assert_eq(c[i]->ev[1].reason, SOCKET_ADDRESS_INVALID, "'%s': %s", a, h_dump(c[i]));
        h_sock_free(c[i]);
    }
}

/* ---- bind failures ------------------------------------------------------------------ */

Test(tcp_errors, bind_malformed_address_is_invalid)
{
    struct h_sock *l = h_sock_new(&env);
    h_tcp_socket(&env, l, false);
    CALL(ISocket_Bind(l->sock, "999.1.1.1", 0));
    CALL(ISocket_Listen(l->sock)); /* the failed bind's SocketShutdown is on its way */
    cr_assert_eq(l->nev, 0, "callback inside Bind: %s", h_dump(l));
    cr_assert(h_wait_count(&env, l, H_SHUTDOWN, 1, 2000), "%s", h_dump(l));
    expect_quiet(l);
    EXPECT_EVENTS(l, H_SHUTDOWN);
    expect_reason(l, SOCKET_ADDRESS_INVALID);
    h_sock_free(l);
}

Test(tcp_errors, bind_port_in_use)
{
    struct h_sock *l = h_sock_new(&env);
    uint16_t port = h_listen(&env, l, "127.0.0.1");
    struct h_sock *b = h_sock_new(&env), *r = h_sock_new(&env);
    h_tcp_socket(&env, b, false);
    h_tcp_socket(&env, r, false);
    CALL(ISocket_Bind(b->sock, "127.0.0.1", port));
    CALL(ISocket_Listen(b->sock));
    /* Reuse on one side only does not share a port with a plain listener. */
    CALL(ISocket_BindReuse(r->sock, "127.0.0.1", port, true));
    cr_assert_eq(b->nev + r->nev, 0, "callback inside Bind");
    cr_assert(h_wait_count(&env, b, H_SHUTDOWN, 1, 2000), "%s", h_dump(b));
    cr_assert(h_wait_count(&env, r, H_SHUTDOWN, 1, 2000), "%s", h_dump(r));
    expect_quiet(b);
    EXPECT_EVENTS(b, H_SHUTDOWN);
    expect_reason(b, SOCKET_ADDR_IN_USE);
    EXPECT_EVENTS(r, H_SHUTDOWN);
    expect_reason(r, SOCKET_ADDR_IN_USE);
    /* The first listener is unaffected. */
    EXPECT_EVENTS(l, H_BIND_RESULT);
    h_sock_free(b);
    h_sock_free(r);
    h_sock_free(l);
}

Test(tcp_errors, bind_foreign_address_fails)
{
    /* 192.0.2.1 (TEST-NET-1) is on no interface here; bind only, nothing is sent. */
    struct h_sock *l = h_sock_new(&env);
    h_tcp_socket(&env, l, false);
    CALL(ISocket_Bind(l->sock, "192.0.2.1", 0));
    cr_assert_eq(l->nev, 0);
    cr_assert(h_wait_count(&env, l, H_SHUTDOWN, 1, 2000), "%s", h_dump(l));
    expect_quiet(l);
    EXPECT_EVENTS(l, H_SHUTDOWN);
    expect_reason(l, SOCKET_BIND_FAILED);
    h_sock_free(l);
}

/* One of two listeners handed out a connection and it completed (the application
 * holds the accepted socket only from SocketAcceptComplete on). */
static bool one_accepted(struct h_env *e, void *arg)
{
    (void)e;
    struct h_sock **l = arg;
    for (int i = 0; i < 2; i++)
        for (size_t j = 0; j < l[i]->naccepted; j++)
            if (h_count(l[i]->accepted[j], H_ACCEPT_COMPLETE))
                return true;
    return false;
}

Test(tcp_errors, bind_reuse_twice_shares_the_port)
{
    struct h_sock *l[2] = {h_sock_new(&env), h_sock_new(&env)};
    h_tcp_socket(&env, l[0], false);
    h_tcp_socket(&env, l[1], false);
    CALL(ISocket_BindReuse(l[0]->sock, "127.0.0.1", 0, true));
    char a[64];
    uint16_t port = 0;
    CALL(ISocket_GetLocalAddress(l[0]->sock, a, sizeof(a), &port));
    cr_assert_neq(port, 0);
    CALL(ISocket_BindReuse(l[1]->sock, "127.0.0.1", port, true));
    CALL(ISocket_Listen(l[0]->sock));
    CALL(ISocket_Listen(l[1]->sock));
    cr_assert(h_wait_count(&env, l[1], H_BIND_RESULT, 1, 2000), "%s", h_dump(l[1]));
    cr_assert(h_wait_count(&env, l[0], H_BIND_RESULT, 1, 2000), "%s", h_dump(l[0]));
    for (int i = 0; i < 2; i++) {
        cr_assert_not(h_has_shutdown(l[i]), "listener %d: %s", i, h_dump(l[i]));
        cr_assert_eq(h_last(l[i], H_BIND_RESULT)->port, port);
        cr_assert_str_eq(h_last(l[i], H_BIND_RESULT)->addr, "127.0.0.1");
    }
    /* Both listen: a client is served by one of them. */
    int fd = h_raw_connect("127.0.0.1", port);
    cr_assert(h_run_until(&env, one_accepted, l, 2000), "no listener took the connection");
    close(fd);
    h_sock_free(l[0]);
    h_sock_free(l[1]);
}

/* ---- the peer ends the connection --------------------------------------------------- */

Test(tcp_errors, peer_close_is_shutdown_by_peer)
{
    struct h_sock *c = h_sock_new(&env);
    int p = connect_to_raw(c);
    static uint8_t in[100];
    CALL(ISocket_Recv(c->sock, in, sizeof(in), false));
    h_run_for(&env, 20);
    close(p);
    cr_assert(h_wait_count(&env, c, H_SHUTDOWN, 1, 2000), "%s", h_dump(c));
    expect_quiet(c);
    EXPECT_EVENTS(c, H_CONNECT_COMPLETE, H_RECV_CANCELED, H_SHUTDOWN);
    cr_assert_eq(c->ev[1].buf, in);
    expect_reason(c, SOCKET_SHUTDOWN_BY_PEER);
    h_sock_free(c);
}

Test(tcp_errors, peer_close_mid_receive_still_returns_buffer)
{
    /* A full receive that got only part of its bytes when the peer closed. */
    struct h_sock *c = h_sock_new(&env);
    int p = connect_to_raw(c);
    static uint8_t in[100];
    CALL(ISocket_Recv(c->sock, in, sizeof(in), false));
    h_raw_write_all(p, "only forty bytes of a hundred byte read.", 40);
    h_run_for(&env, 20);
    close(p);
    cr_assert(h_wait_count(&env, c, H_SHUTDOWN, 1, 2000), "%s", h_dump(c));
    expect_quiet(c);
    EXPECT_EVENTS(c, H_CONNECT_COMPLETE, H_RECV_CANCELED, H_SHUTDOWN);
    cr_assert_eq(c->ev[1].buf, in);
    expect_reason(c, SOCKET_SHUTDOWN_BY_PEER);
    h_sock_free(c);
}

Test(tcp_errors, peer_reset_is_lost)
{
    struct h_sock *c = h_sock_new(&env);
    int p = connect_to_raw(c);
    static uint8_t in[100];
    CALL(ISocket_Recv(c->sock, in, sizeof(in), true));
    h_run_for(&env, 20);
    h_raw_reset(p);
    cr_assert(h_wait_count(&env, c, H_SHUTDOWN, 1, 2000), "%s", h_dump(c));
    expect_quiet(c);
    EXPECT_EVENTS(c, H_CONNECT_COMPLETE, H_RECV_CANCELED, H_SHUTDOWN);
    cr_assert_eq(c->ev[1].buf, in);
    expect_reason(c, SOCKET_LOST);
    h_sock_free(c);
}

/* Receives in small partial pieces until total bytes came, each checked against want;
 * the socket must not end before. */
static void recv_all_partial(struct h_sock *c, uint8_t *in, size_t piece, const uint8_t *want,
                             size_t total)
{
    size_t got = 0;
    while (got < total) {
        size_t n = h_count(c, H_RECV_RESULT);
        CALL(ISocket_Recv(c->sock, in, piece, true));
        cr_assert(h_wait_count(&env, c, H_RECV_RESULT, n + 1, 3000), "at %zu of %zu: %s", got,
                  total, h_dump(c));
        size_t len = h_last(c, H_RECV_RESULT)->len;
        cr_assert(len >= 1 && got + len <= total, "a receive of %zu at %zu", len, got);
        cr_assert_arr_eq(in, want + got, len, "the stream differs at %zu", got);
        got += len;
        cr_assert_eq(h_count(c, H_SHUTDOWN), 0, "ended at %zu of %zu bytes", got, total);
    }
}

/* A peer that writes and closes (or resets) at once: whatever a receive read ahead, the
 * application gets every byte, then the end, only once its receives reach it. */
static void write_then_end(bool reset, shutdownreason_t reason)
{
    struct h_sock *c = h_sock_new(&env);
    int p = connect_to_raw(c);
    static uint8_t out[5000], in[64];
    h_fill(out, sizeof(out), 77);
    CALL(ISocket_Recv(c->sock, in, 10, true)); /* small and partial: a receive stays armed */
    h_raw_write_all(p, out, sizeof(out));
    if (reset)
        h_raw_reset(p);
    else
        close(p);
    h_run_for(&env, 50); /* the bytes, then the end, have arrived */
    cr_assert(h_wait_count(&env, c, H_RECV_RESULT, 1, 2000), "%s", h_dump(c));
    size_t first = h_last(c, H_RECV_RESULT)->len;
    cr_assert_arr_eq(in, out, first);
    h_run_for(&env, 50); /* no Recv out: nothing may end the socket yet */
    cr_assert_eq(h_count(c, H_SHUTDOWN), 0, "%s", h_dump(c));
    recv_all_partial(c, in, sizeof(in), out + first, sizeof(out) - first);
    h_run_for(&env, 20);
    cr_assert_eq(h_count(c, H_SHUTDOWN), 0, "the end came before a Recv asked: %s", h_dump(c));
    CALL(ISocket_Recv(c->sock, in, sizeof(in), true));
    cr_assert(h_wait_count(&env, c, H_SHUTDOWN, 1, 2000), "%s", h_dump(c));
    expect_quiet(c);
    cr_assert_eq(c->ev[c->nev - 2].kind, H_RECV_CANCELED, "%s", h_dump(c));
    cr_assert_eq(c->ev[c->nev - 2].buf, in);
    expect_reason(c, reason);
    h_sock_free(c);
}

Test(tcp_errors, peer_writes_and_closes_at_once_every_byte_then_the_end)
{
    write_then_end(false, SOCKET_SHUTDOWN_BY_PEER);
}

Test(tcp_errors, peer_writes_and_resets_at_once_every_byte_then_lost)
{
    write_then_end(true, SOCKET_LOST);
}

/* A peer half-closes right after its request: an echo made of what the application had
 * received goes out in full before the socket ends, read-ahead or not. */
Test(tcp_errors, echo_to_a_half_closed_peer_is_complete_before_the_end)
{
    struct h_sock *c = h_sock_new(&env);
    c->echo = true; /* receives from the connect on */
    int p = connect_to_raw(c);
    /* the whole request and the FIN are there before the application sees a byte */
    const size_t total = 100000;
    uint8_t *out = malloc(total), *back = malloc(total);
    h_fill(out, total, 9);
    h_raw_write_all(p, out, total);
    shutdown(p, SHUT_WR);
    size_t got = 0;
    for (int i = 0; i < 5000 && got < total; i++) {
        h_run_for(&env, 1);
        ssize_t r = recv(p, back + got, total - got, MSG_DONTWAIT);
        if (r == 0)
            break;
        got += r > 0 ? (size_t)r : 0;
    }
    cr_assert_eq(got, total, "%zu of %zu bytes echoed: %s", got, total, h_dump(c));
    cr_assert_arr_eq(back, out, total);
    cr_assert(h_wait_count(&env, c, H_SHUTDOWN, 1, 2000), "%s", h_dump(c));
    expect_reason(c, SOCKET_SHUTDOWN_BY_PEER);
    free(out);
    free(back);
    close(p);
    h_sock_free(c);
}

/* 4 MiB in 64 KiB writes to an application that receives a little, pauses, then takes
 * large and small pieces: read-ahead (bounded), bulk receives straight into the buffer
 * and back to small ones lose and reorder nothing. */
Test(tcp_errors, read_ahead_and_direct_receives_keep_the_stream_exact)
{
    struct h_sock *c = h_sock_new(&env);
    int p = connect_to_raw(c);
    const size_t total = 4u << 20;
    uint8_t *out = malloc(total), *in = malloc(65536);
    h_fill(out, total, 5);
    CALL(ISocket_Recv(c->sock, in, 100, true));
    size_t sent = 0, got = 0, results = 0;
    bool out_recv = true; /* a Recv is outstanding */
    for (int round = 0; got < total; round++) {
        while (sent < total) { /* as much as the socket takes now */
            size_t n = total - sent < 65536 ? total - sent : 65536;
            ssize_t w = send(p, out + sent, n, MSG_DONTWAIT | MSG_NOSIGNAL);
            if (w <= 0)
                break;
            sent += (size_t)w;
        }
        h_run_for(&env, 2);
        if (out_recv && h_count(c, H_RECV_RESULT) > results) {
            results++;
            size_t len = h_last(c, H_RECV_RESULT)->len;
            cr_assert(len >= 1 && got + len <= total);
            cr_assert_arr_eq(in, out + got, len, "the stream differs at %zu", got);
            got += len;
            out_recv = false;
        }
        /* receive in phases: small pieces, a pause, 64 KiB pieces, small again */
        if (!out_recv && got < total && !(round % 64 >= 8 && round % 64 < 16)) {
            size_t piece = got < total / 2 ? (round % 3 ? 65536 : 100) : 700;
            CALL(ISocket_Recv(c->sock, in, piece, true));
            out_recv = true;
        }
        cr_assert(round < 200000, "stalled at %zu received, %zu sent", got, sent);
    }
    cr_assert_eq(h_count(c, H_SHUTDOWN), 0, "%s", h_dump(c));
    close(p);
    free(out);
    free(in);
    h_sock_free(c);
}

Test(tcp_errors, accepted_socket_sees_client_reset_as_lost)
{
    struct h_sock *l = h_sock_new(&env);
    l->sink = true; /* accepted sockets keep a receive outstanding */
    uint16_t port = h_listen(&env, l, "127.0.0.1");
    int p = h_raw_connect("127.0.0.1", port);
    struct h_sock *a = h_wait_accepted(&env, l, 1, 2000);
    cr_assert_not_null(a);
    h_raw_reset(p);
    cr_assert(h_wait_count(&env, a, H_SHUTDOWN, 1, 2000), "%s", h_dump(a));
    expect_quiet(a);
    EXPECT_EVENTS(a, H_ACCEPT_COMPLETE, H_RECV_CANCELED, H_SHUTDOWN);
    cr_assert_eq(a->ev[1].buf, a->echo_buf);
    expect_reason(a, SOCKET_LOST);
    cr_assert_not(h_has_shutdown(l), "listener: %s", h_dump(l));
    h_sock_free(l);
}

Test(tcp_errors, accept_null_rejects)
{
    struct h_sock *l = h_sock_new(&env);
    l->reject = true;
    uint16_t port = h_listen(&env, l, "127.0.0.1");
    for (int round = 1; round <= 2; round++) {
        struct h_sock *c = h_sock_new(&env);
        h_tcp_socket(&env, c, false);
        static uint8_t in[16];
        CALL(ISocket_Connect(c->sock, h_addr(port), NULL));
        CALL(ISocket_Recv(c->sock, in, sizeof(in), true));
        cr_assert(h_wait_count(&env, c, H_SHUTDOWN, 1, 2000), "%s", h_dump(c));
        EXPECT_EVENTS(c, H_CONNECT_COMPLETE, H_RECV_CANCELED, H_SHUTDOWN);
        cr_assert_eq(c->ev[1].buf, in);
        expect_reason(c, SOCKET_SHUTDOWN_BY_PEER);
        h_sock_free(c);
        /* The listener keeps listening and hands out nothing. */
        cr_assert_eq(h_count(l, H_LISTEN_RESULT), (size_t)round, "%s", h_dump(l));
        cr_assert_eq(h_count(l, H_ACCEPT_COMPLETE), 0);
        cr_assert_not(h_has_shutdown(l), "%s", h_dump(l));
    }
    h_sock_free(l);
}

/* ---- RecvCancel ---------------------------------------------------------------------- */

Test(tcp_errors, recv_cancel_keeps_every_byte_once)
{
    struct h_sock *c = h_sock_new(&env);
    int p = connect_to_raw(c);
    static uint8_t pattern[3000], b1[4096], b2[3000];
    h_fill(pattern, sizeof(pattern), 42);

    /* A full receive holds 700 of its 4096 bytes when it is canceled. */
    CALL(ISocket_Recv(c->sock, b1, sizeof(b1), false));
    h_raw_write_all(p, pattern, 700);
    h_run_for(&env, 50);
    cr_assert_eq(h_count(c, H_RECV_RESULT), 0, "%s", h_dump(c));
    size_t n0 = c->nev;
    CALL(ISocket_RecvCancel(c->sock));
    cr_assert_eq(c->nev, n0, "callback inside RecvCancel: %s", h_dump(c));
    cr_assert(h_wait_count(&env, c, H_RECV_CANCELED, 1, 2000), "%s", h_dump(c));
    cr_assert_eq(h_last(c, H_RECV_CANCELED)->buf, b1);
    /* The buffer is the application's again: the engine must not write into it. */
    memset(b1, 0xee, sizeof(b1));

    /* Bytes arriving with no receive outstanding wait for the next one. */
    h_raw_write_all(p, pattern + 700, 900);
    h_run_for(&env, 50);
    CALL(ISocket_Recv(c->sock, b2, sizeof(b2), false));
    h_raw_write_all(p, pattern + 1600, 1400);
    cr_assert(h_wait_count(&env, c, H_RECV_RESULT, 1, 2000), "%s", h_dump(c));
    const struct h_event *r = h_last(c, H_RECV_RESULT);
    cr_assert_eq(r->buf, b2);
    cr_assert_eq(r->len, sizeof(b2));
    cr_assert_arr_eq(b2, pattern, sizeof(b2), "the stream after a cancel is not exact");
    for (size_t i = 0; i < sizeof(b1); i++)
        cr_assert_eq(b1[i], 0xee, "canceled buffer written at %zu", i);
    cr_assert_eq(h_count(c, H_RECV_CANCELED), 1, "%s", h_dump(c));
    cr_assert_not(h_has_shutdown(c), "%s", h_dump(c));
    close(p);
    h_sock_free(c);
}

Test(tcp_errors, recv_cancel_races_arriving_bytes)
{
    /* Partial receives canceled right after the peer wrote, before the loop ran: the
     * bytes may already sit in the canceled buffer. The collected stream must still be
     * the peer's, exactly. */
    struct h_sock *c = h_sock_new(&env);
    c->collect = true;
    int p = connect_to_raw(c);
    enum { TOTAL = 20000 };
    static uint8_t pattern[TOTAL], b[300];
    h_fill(pattern, sizeof(pattern), 7);
    size_t sent = 0, cancels = 0;
    for (unsigned round = 0; sent < TOTAL; round++) {
        size_t piece = 100 + (round * 137) % 600;
        if (piece > TOTAL - sent)
            piece = TOTAL - sent;
        CALL(ISocket_Recv(c->sock, b, sizeof(b), true));
        h_raw_write_all(p, pattern + sent, piece);
        sent += piece;
        if (round % 3 != 2) {
            size_t n0 = c->nev;
            CALL(ISocket_RecvCancel(c->sock));
            cr_assert_eq(c->nev, n0, "callback inside RecvCancel");
            cancels++;
            cr_assert(h_wait_count(&env, c, H_RECV_CANCELED, cancels, 2000), "%s", h_dump(c));
            cr_assert_eq(h_last(c, H_RECV_CANCELED)->buf, b);
        } else {
            size_t want = h_count(c, H_RECV_RESULT) + 1;
            cr_assert(h_wait_count(&env, c, H_RECV_RESULT, want, 2000), "%s", h_dump(c));
        }
    }
    while (c->data_len < TOTAL) {
        size_t want = h_count(c, H_RECV_RESULT) + 1;
        CALL(ISocket_Recv(c->sock, b, sizeof(b), true));
        cr_assert(h_wait_count(&env, c, H_RECV_RESULT, want, 2000), "stuck at %zu of %d",
                  c->data_len, TOTAL);
    }
    cr_assert_eq(c->data_len, TOTAL);
    cr_assert_arr_eq(c->data, pattern, TOTAL, "bytes lost, duplicated or reordered");
    cr_assert_eq(h_count(c, H_RECV_CANCELED), cancels);
    cr_assert_not(h_has_shutdown(c), "%s", h_dump(c));
    close(p);
    h_sock_free(c);
}

Test(tcp_errors, recv_cancel_without_receive_does_nothing)
{
    struct h_sock *c = h_sock_new(&env);
    int p = connect_to_raw(c);
    CALL(ISocket_RecvCancel(c->sock));
    h_run_for(&env, 50);
    EXPECT_EVENTS(c, H_CONNECT_COMPLETE);
    /* After the buffer came back through RecvResult, a cancel returns nothing. */
    static uint8_t in[8];
    CALL(ISocket_Recv(c->sock, in, sizeof(in), true));
    h_raw_write_all(p, "abc", 3);
    cr_assert(h_wait_count(&env, c, H_RECV_RESULT, 1, 2000), "%s", h_dump(c));
    CALL(ISocket_RecvCancel(c->sock));
    h_run_for(&env, 50);
    EXPECT_EVENTS(c, H_CONNECT_COMPLETE, H_RECV_RESULT);
    /* Two cancels of one receive return it once. */
    CALL(ISocket_Recv(c->sock, in, sizeof(in), true));
    CALL(ISocket_RecvCancel(c->sock));
    CALL(ISocket_RecvCancel(c->sock));
    h_run_for(&env, 100);
    EXPECT_EVENTS(c, H_CONNECT_COMPLETE, H_RECV_RESULT, H_RECV_CANCELED);
    cr_assert_not(h_has_shutdown(c));
    close(p);
    h_sock_free(c);
}

/* ---- Delete ------------------------------------------------------------------------- */

Test(tcp_errors, delete_inside_shutdown)
{
    int hold;
    uint16_t port = refusing_port(&hold);
    struct h_sock *c = h_sock_new(&env);
    c->delete_on_shutdown = true;
    h_tcp_socket(&env, c, false);
    CALL(ISocket_Connect(c->sock, h_addr(port), NULL));
    CALL(ISocket_Send(c->sock, "dropped", 7));
    CALL(ISocket_Recv(c->sock, c->echo_buf, 64, true));
    cr_assert(h_wait_count(&env, c, H_SHUTDOWN, 1, 2000), "%s", h_dump(c));
    cr_assert(c->deleted);
    expect_quiet(c);
    EXPECT_EVENTS(c, H_RECV_CANCELED, H_SHUTDOWN);

    /* The same from an accepted socket whose client went away. */
    struct h_sock *l = h_sock_new(&env);
    l->sink = true;
    l->delete_on_shutdown = true;
    uint16_t lport = h_listen(&env, l, "127.0.0.1");
    int p = h_raw_connect("127.0.0.1", lport);
    struct h_sock *a = h_wait_accepted(&env, l, 1, 2000);
    cr_assert_not_null(a);
    close(p);
    cr_assert(h_wait_count(&env, a, H_SHUTDOWN, 1, 2000), "%s", h_dump(a));
    cr_assert(a->deleted);
    expect_quiet(a);
    EXPECT_EVENTS(a, H_ACCEPT_COMPLETE, H_RECV_CANCELED, H_SHUTDOWN);
    expect_reason(a, SOCKET_SHUTDOWN_BY_PEER);
    h_sock_free(l);
    h_sock_free(c);
    close(hold);
}

Test(tcp_errors, delete_with_recv_in_flight)
{
    struct h_sock *c = h_sock_new(&env);
    int p = connect_to_raw(c);
    uint8_t *in = malloc(1000);
    CALL(ISocket_Recv(c->sock, in, 1000, false));
    h_raw_write_all(p, "part", 4); /* the receive has started filling */
    h_run_for(&env, 20);
    size_t n0 = c->nev;
    CALL(ISocket_Delete(c->sock));
    c->sock = NULL;
    free(in); /* allowed at once */
    /* Data for the dead socket must land nowhere. */
    static uint8_t more[4096];
    send(p, more, sizeof(more), MSG_NOSIGNAL);
    h_run_for(&env, 100);
    cr_assert_eq(c->nev, n0, "callback after Delete: %s", h_dump(c));
    cr_assert(raw_sees_close(p, 1000), "the peer did not see the close");
    close(p);
    h_sock_free(c);
}

Test(tcp_errors, delete_with_recv_in_flight_leaves_buffer_untouched)
{
    /* The kernel's writes are invisible to ASan: check the bytes instead. */
    struct h_sock *c = h_sock_new(&env);
    int p = connect_to_raw(c);
    static uint8_t in[1000];
    CALL(ISocket_Recv(c->sock, in, sizeof(in), false));
    h_run_for(&env, 20);
    CALL(ISocket_Delete(c->sock));
    c->sock = NULL;
    memset(in, 0x5a, sizeof(in));
    static uint8_t more[1000];
    memset(more, 0x11, sizeof(more));
    send(p, more, sizeof(more), MSG_NOSIGNAL);
    h_run_for(&env, 100);
    for (size_t i = 0; i < sizeof(in); i++)
        cr_assert_eq(in[i], 0x5a, "buffer written after Delete at %zu", i);
    cr_assert_eq(c->nev, 1, "%s", h_dump(c));
    close(p);
    h_sock_free(c);
}

Test(tcp_errors, delete_after_recv_cancel_before_it_was_delivered)
{
    struct h_sock *c = h_sock_new(&env);
    int p = connect_to_raw(c);
    uint8_t *in = malloc(100);
    CALL(ISocket_Recv(c->sock, in, 100, true));
    h_run_for(&env, 20);
    CALL(ISocket_RecvCancel(c->sock));
    CALL(ISocket_Delete(c->sock)); /* no SocketRecvCanceled may follow */
    c->sock = NULL;
    free(in);
    h_raw_write_all(p, "late", 4);
    h_run_for(&env, 100);
    EXPECT_EVENTS(c, H_CONNECT_COMPLETE);
    close(p);
    h_sock_free(c);
}

Test(tcp_errors, delete_with_events_not_yet_delivered)
{
    /* The error, the bind result and a send are all queued, nothing is in the kernel. */
    struct h_sock *bad = h_sock_new(&env), *l = h_sock_new(&env), *c = h_sock_new(&env);
    h_tcp_socket(&env, bad, false);
    CALL(ISocket_Connect(bad->sock, NULL, NULL));
    CALL(ISocket_Delete(bad->sock));
    bad->sock = NULL;
    h_tcp_socket(&env, l, false);
    CALL(ISocket_Bind(l->sock, "127.0.0.1", 0));
    CALL(ISocket_Delete(l->sock));
    l->sock = NULL;
    int p = connect_to_raw(c);
    CALL(ISocket_Send(c->sock, "never", 5));
    CALL(ISocket_Delete(c->sock));
    c->sock = NULL;
    h_run_for(&env, 100);
    cr_assert_eq(bad->nev, 0, "%s", h_dump(bad));
    cr_assert_eq(l->nev, 0, "%s", h_dump(l));
    EXPECT_EVENTS(c, H_CONNECT_COMPLETE);
    close(p);
    h_sock_free(bad);
    h_sock_free(l);
    h_sock_free(c);
}

/* A raw client whose small receive window makes a large send stay in flight. */
static int raw_connect_small_window(uint16_t port)
{
    struct sockaddr_in a = {
        .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK), .sin_port = htons(port)};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(fd, 0);
    int small = 4096;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0, "%s", strerror(errno));
    return fd;
}

static void delete_with_send_in_flight(bool nocopy)
{
    struct h_sock *l = h_sock_new(&env);
    uint16_t port = h_listen(&env, l, "127.0.0.1");
    int p = raw_connect_small_window(port);
    struct h_sock *a = h_wait_accepted(&env, l, 1, 2000);
    cr_assert_not_null(a);
    size_t big = 8u << 20;
    uint8_t *data = malloc(big), *in = malloc(4096);
    h_fill(data, big, 3);
    if (nocopy)
        CALL(ISocket_SendNoCopy(a->sock, data, big));
    else
        CALL(ISocket_Send(a->sock, data, big));
    CALL(ISocket_Recv(a->sock, in, 4096, false));
    h_run_for(&env, 100);
    /* The peer reads nothing: 8 MiB cannot have left. */
    cr_assert_eq(h_count(a, H_SEND_RESULT), 0, "the send was not in flight: %s", h_dump(a));
    size_t n0 = a->nev;
    CALL(ISocket_Delete(a->sock));
    a->sock = NULL;
    free(in);
    free(data); /* even the no-copy send's buffer is free once Delete returned */
    send(p, "data for a deleted socket", 25, MSG_NOSIGNAL); /* may meet a reset */
    h_run_for(&env, 100);
    cr_assert_eq(a->nev, n0, "callback after Delete: %s", h_dump(a));
    /* What the kernel took before Delete was our data, then the connection ends. */
    uint8_t *got = malloc(big), *want = malloc(big);
    h_fill(want, big, 3);
    size_t n = h_raw_read_n(p, got, big, 300);
    cr_assert_lt(n, big);
    cr_assert_arr_eq(got, want, n, "the peer got other bytes than were sent");
    free(want);
    free(got);
    close(p);
    h_sock_free(l);
}

Test(tcp_errors, delete_with_large_send_in_flight)
{
    delete_with_send_in_flight(false);
}

Test(tcp_errors, delete_with_large_nocopy_send_in_flight)
{
    delete_with_send_in_flight(true);
}

Test(tcp_errors, delete_with_connect_in_flight)
{
    /* A listener with a full accept queue drops SYNs: the connect stays pending. */
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sa);
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(lfd, 0);
    cr_assert_eq(bind(lfd, (struct sockaddr *)&sa, len), 0);
    cr_assert_eq(listen(lfd, 0), 0);
    getsockname(lfd, (struct sockaddr *)&sa, &len);
    uint16_t port = ntohs(sa.sin_port);
    int f1 = raw_connect_nb(port);
    struct pollfd pf = {.fd = f1, .events = POLLOUT};
    cr_assert_eq(poll(&pf, 1, 1000), 1, "first filler did not connect");
    int f2 = raw_connect_nb(port);

    struct h_sock *c = h_sock_new(&env);
    h_tcp_socket(&env, c, false);
    uint8_t *in = malloc(64);
    CALL(ISocket_Connect(c->sock, h_addr(port), NULL));
    CALL(ISocket_Send(c->sock, "queued", 6));
    CALL(ISocket_Recv(c->sock, in, 64, false));
    h_run_for(&env, 50);
    cr_assert_eq(c->nev, 0, "the connect did not stay pending: %s", h_dump(c));
    CALL(ISocket_Delete(c->sock));
    c->sock = NULL;
    free(in);
    h_run_for(&env, 100);
    cr_assert_eq(c->nev, 0, "callback after Delete: %s", h_dump(c));
    h_sock_free(c);
    close(f1);
    close(f2);
    close(lfd);
}

/* ---- Shutdown ------------------------------------------------------------------------ */

Test(tcp_errors, send_and_recv_after_shutdown_are_ignored)
{
    struct h_sock *c = h_sock_new(&env);
    int p = connect_to_raw(c);
    static uint8_t in[16];
    CALL(ISocket_Shutdown(c->sock));
    CALL(ISocket_Send(c->sock, "late", 4));
    CALL(ISocket_Recv(c->sock, in, sizeof(in), true));
    CALL(ISocket_Shutdown(c->sock));
    cr_assert_eq(c->nev, 1, "callback inside the calls: %s", h_dump(c));
    cr_assert(h_wait_count(&env, c, H_SHUTDOWN, 1, 2000), "%s", h_dump(c));
    CALL(ISocket_Shutdown(c->sock)); /* after SocketShutdown: nothing */
    expect_quiet(c);
    /* No SendResult for the ignored send, no RecvCanceled for the ignored receive. */
    EXPECT_EVENTS(c, H_CONNECT_COMPLETE, H_SHUTDOWN);
    expect_reason(c, SOCKET_SHUTDOWN_NORMAL);
    /* The ignored send never reached the wire. */
    uint8_t junk[16];
    cr_assert_eq(h_raw_read_n(p, junk, sizeof(junk), 200), 0);
    close(p);
    h_sock_free(c);
}

Test(tcp_errors, sends_after_shutdown_are_ignored_while_flushing)
{
    struct h_sock *l = h_sock_new(&env);
    l->sink = true;
    l->collect = true;
    uint16_t port = h_listen(&env, l, "127.0.0.1");
    struct h_sock *c = h_sock_new(&env);
    h_tcp_socket(&env, c, false);
    enum { BIG = 2 << 20 };
    uint8_t *big = malloc(BIG);
    h_fill(big, BIG, 9);
    static uint8_t in[16];
    /* Still connecting: the data is queued, so Shutdown has to wait for it. */
    CALL(ISocket_Connect(c->sock, h_addr(port), NULL));
    CALL(ISocket_Send(c->sock, big, BIG));
    CALL(ISocket_Shutdown(c->sock));
    CALL(ISocket_Send(c->sock, "late", 4));
    CALL(ISocket_Recv(c->sock, in, sizeof(in), true));
    CALL(ISocket_Shutdown(c->sock));
    cr_assert_eq(c->nev, 0, "callback inside the calls: %s", h_dump(c));
    cr_assert(h_wait_count(&env, c, H_SHUTDOWN, 1, 3000), "%s", h_dump(c));
    struct h_sock *a = h_wait_accepted(&env, l, 1, 1000);
    cr_assert_not_null(a);
    cr_assert(h_wait_count(&env, a, H_SHUTDOWN, 1, 3000), "%s", h_dump(a));
    expect_quiet(c);
    EXPECT_EVENTS(c, H_CONNECT_COMPLETE, H_SEND_RESULT, H_SHUTDOWN);
    expect_reason(c, SOCKET_SHUTDOWN_NORMAL);
    cr_assert_eq(a->data_len, BIG, "the peer got %zu bytes", a->data_len);
    cr_assert_arr_eq(a->data, big, BIG);
    free(big);
    h_sock_free(c);
    h_sock_free(l);
}

Test(tcp_errors, shutdown_returns_outstanding_recv_buffer)
{
    struct h_sock *c = h_sock_new(&env);
    int p = connect_to_raw(c);
    static uint8_t in[16];
    CALL(ISocket_Recv(c->sock, in, sizeof(in), false));
    h_run_for(&env, 20);
    CALL(ISocket_Shutdown(c->sock));
    CALL(ISocket_Shutdown(c->sock));
    cr_assert_eq(c->nev, 1);
    cr_assert(h_wait_count(&env, c, H_SHUTDOWN, 1, 2000), "%s", h_dump(c));
    expect_quiet(c);
    EXPECT_EVENTS(c, H_CONNECT_COMPLETE, H_RECV_CANCELED, H_SHUTDOWN);
    cr_assert_eq(c->ev[1].buf, in);
    expect_reason(c, SOCKET_SHUTDOWN_NORMAL);
    close(p);
    h_sock_free(c);
}

/* ---- descriptor exhaustion ------------------------------------------------------------ */

Test(tcp_errors, listener_survives_descriptor_exhaustion)
{
    struct h_sock *l = h_sock_new(&env);
    l->echo = true;
    uint16_t port = h_listen(&env, l, "127.0.0.1");
    cr_assert(h_wait_count(&env, l, H_BIND_RESULT, 1, 2000));
    enum { NCLIENT = 3 };
    int cl[NCLIENT];
    for (int i = 0; i < NCLIENT; i++) /* the clients' descriptors exist before the squeeze */
        cl[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    /* This test runs in its own process: lower the limit and use up what is left. */
    struct rlimit old, lim;
    cr_assert_eq(getrlimit(RLIMIT_NOFILE, &old), 0);
    lim = old;
    lim.rlim_cur = old.rlim_cur < 256 ? old.rlim_cur : 256;
    cr_assert_eq(setrlimit(RLIMIT_NOFILE, &lim), 0);
    static int filler[4096];
    size_t nfill = 0;
    int fd;
    while (nfill < 4096 && (fd = dup(cl[0])) >= 0)
        filler[nfill++] = fd;
    cr_assert_eq(errno, EMFILE, "could not exhaust descriptors");

    struct sockaddr_in a = {
        .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK), .sin_port = htons(port)};
    for (int i = 0; i < NCLIENT; i++)
        cr_assert_eq(connect(cl[i], (struct sockaddr *)&a, sizeof(a)), 0, "%s", strerror(errno));
    h_run_for(&env, 300);
    size_t nlisten = h_count(l, H_LISTEN_RESULT);
    bool shut = h_has_shutdown(l);
    size_t logged = log_count("Too many open files");

    for (size_t i = 0; i < nfill; i++)
        close(filler[i]);
    setrlimit(RLIMIT_NOFILE, &old);
    cr_assert_eq(nlisten, 0, "accepted without a descriptor? %s", h_dump(l));
    cr_assert_not(shut, "listener shut down: %s", h_dump(l));
    cr_assert_geq(logged, 1, "EMFILE not logged (last: %s)", env.log_lines[0]);
    cr_assert_leq(logged, 1, "EMFILE logged %zu times in 300 ms", logged);

    /* Descriptors are back: the waiting clients are taken and served. */
    cr_assert_not_null(h_wait_accepted(&env, l, NCLIENT, 2000), "%s", h_dump(l));
    for (int i = 0; i < NCLIENT; i++) {
        char msg[16], back[16];
        int n = snprintf(msg, sizeof(msg), "client %d", i);
        h_raw_write_all(cl[i], msg, (size_t)n);
        for (int t = 0; t < 100 && h_count(l->accepted[i], H_SEND_RESULT) == 0; t++)
            h_run_for(&env, 5);
        cr_assert_eq(h_raw_read_n(cl[i], back, (size_t)n, 1000), (size_t)n);
        cr_assert_arr_eq(back, msg, (size_t)n);
    }
    cr_assert_not(h_has_shutdown(l));
    for (int i = 0; i < NCLIENT; i++)
        close(cl[i]);
    h_sock_free(l);
}

/* ---- QoS and IPv6 -------------------------------------------------------------------- */

static int tos_of(ISocket *s, int level, int opt)
{
    int v = -1;
    socklen_t len = sizeof(v);
    cr_assert_eq(getsockopt(s->ops->stream->fd(s), level, opt, &v, &len), 0, "%s", strerror(errno));
    return v & 0xfc; /* DSCP only: the kernel owns the ECN bits */
}

Test(tcp_errors, qos_voice_sets_dscp_ef)
{
    struct h_sock *c = h_sock_new(&env);
    int p = connect_to_raw(c);
    CALL(ISocket_SetQoS(c->sock, QOS_VOICE));
    cr_assert_eq(tos_of(c->sock, IPPROTO_IP, IP_TOS), 46 << 2);
    CALL(ISocket_SetQoS(c->sock, QOS_BEST_EFFORT));
    cr_assert_eq(tos_of(c->sock, IPPROTO_IP, IP_TOS), 0);

    /* Set before Connect: applied once the socket exists. */
    struct h_sock *d = h_sock_new(&env);
    uint16_t port;
    int lfd = h_raw_listen("127.0.0.1", &port);
    h_tcp_socket(&env, d, false);
    CALL(ISocket_SetQoS(d->sock, QOS_VOICE));
    CALL(ISocket_Connect(d->sock, h_addr(port), NULL));
    cr_assert(h_wait_count(&env, d, H_CONNECT_COMPLETE, 1, 2000), "%s", h_dump(d));
    cr_assert_eq(tos_of(d->sock, IPPROTO_IP, IP_TOS), 46 << 2);
    close(lfd);
    close(p);
    h_sock_free(d);
    h_sock_free(c);
}

Test(tcp_errors, ipv6_listener_is_dual_stack)
{
    struct h_sock *l = h_sock_new(&env);
    l->echo = true;
    h_tcp_socket(&env, l, true);
    CALL(ISocket_Bind(l->sock, NULL, 0));
    CALL(ISocket_Listen(l->sock));
    char la[64];
    uint16_t port = 0;
    CALL(ISocket_GetLocalAddress(l->sock, la, sizeof(la), &port));
    cr_assert_neq(port, 0);

    /* An IPv4 client, reported as plain IPv4. */
    int p = h_raw_connect("127.0.0.1", port);
    cr_assert_not_null(h_wait_accepted(&env, l, 1, 2000), "%s", h_dump(l));
    cr_assert_str_eq(h_last(l, H_BIND_RESULT)->addr, "::");
    struct sockaddr_in me;
    socklen_t len = sizeof(me);
    getsockname(p, (struct sockaddr *)&me, &len);
    const struct h_event *e = h_last(l, H_LISTEN_RESULT);
    cr_assert_str_eq(e->addr, "127.0.0.1");
    cr_assert_eq(e->port, ntohs(me.sin_port));

    /* A ringsock client over IPv6 loopback. */
    struct h_sock *c = h_sock_new(&env);
    h_tcp_socket(&env, c, true);
    char a6[64];
    snprintf(a6, sizeof(a6), "[::1]:%u", port);
    CALL(ISocket_Connect(c->sock, a6, NULL));
    CALL(ISocket_Send(c->sock, "over v6", 7));
    static uint8_t in[7];
    CALL(ISocket_Recv(c->sock, in, sizeof(in), false));
    cr_assert(h_wait_count(&env, c, H_RECV_RESULT, 1, 2000), "%s", h_dump(c));
    cr_assert_arr_eq(in, "over v6", 7);
    cr_assert_eq(c->ev[0].kind, H_CONNECT_COMPLETE, "%s", h_dump(c));
    e = h_last(l, H_LISTEN_RESULT);
    cr_assert_str_eq(e->addr, "::1");
    char ca[64];
    uint16_t cport;
    CALL(ISocket_GetLocalAddress(c->sock, ca, sizeof(ca), &cport));
    cr_assert_str_eq(ca, "::1");
    cr_assert_eq(e->port, cport);
    /* QoS on an IPv6 socket is the traffic class. */
    CALL(ISocket_SetQoS(c->sock, QOS_VOICE));
    cr_assert_eq(tos_of(c->sock, IPPROTO_IPV6, IPV6_TCLASS), 46 << 2);
    close(p);
    h_sock_free(c);
    h_sock_free(l);
}

/* ---- logging ------------------------------------------------------------------------- */

/* An echo of "hello ringsock" over a fresh connection, logged under env.log. */
static void echo_hello(void)
{
    struct h_sock *l = h_sock_new(&env);
    l->echo = true;
    uint16_t lport = h_listen(&env, l, "127.0.0.1");
    struct h_sock *d = h_sock_new(&env);
    h_tcp_socket(&env, d, false);
    CALL(ISocket_Connect(d->sock, h_addr(lport), NULL));
    CALL(ISocket_Send(d->sock, "hello ringsock", 14));
    static uint8_t in[14];
    CALL(ISocket_Recv(d->sock, in, sizeof(in), false));
    cr_assert(h_wait_count(&env, d, H_RECV_RESULT, 1, 2000), "%s", h_dump(d));
    h_sock_free(d);
    h_sock_free(l);
}

#define HELLO_HEX "68 65 6c 6c 6f 20 72 69 6e 67 73 6f 63 6b" /* "hello ringsock" */

/* LOG_TCP used to hex-dump every byte (123,885 lines for 1 MB echoed): alone it logs the
 * connection's events, and the traffic only with LOG_DATA as well. */
Test(tcp_errors, log_tcp_alone_dumps_no_payload)
{
    IInstanceLog_SetLogFlags(env.log, LOG_TCP);
    int hold;
    uint16_t port = refusing_port(&hold);
    struct h_sock *c = h_sock_new(&env);
    h_tcp_socket(&env, c, false);
    CALL(ISocket_Connect(c->sock, h_addr(port), NULL));
    cr_assert(h_wait_count(&env, c, H_SHUTDOWN, 1, 2000), "%s", h_dump(c));
    cr_assert(h_log_contains(&env, "refused"), "refusal not logged:\n%s", h_logs(&env));
    h_sock_free(c);
    close(hold);

    echo_hello();
    cr_assert(h_log_contains(&env, " connected"), "%s", h_logs(&env));
    cr_assert(h_log_contains(&env, ": connection from 127.0.0.1:"), "%s", h_logs(&env));
    cr_assert_not(h_log_contains(&env, HELLO_HEX), "%s", h_logs(&env));
    cr_assert_not(h_log_contains(&env, " bytes"), "%s", h_logs(&env));
}

Test(tcp_errors, log_tcp_with_data_dumps_traffic)
{
    IInstanceLog_SetLogFlags(env.log, LOG_TCP | LOG_DATA);
    echo_hello();
    cr_assert(h_log_contains(&env, " sent 14 bytes"), "%s", h_logs(&env));
    cr_assert(h_log_contains(&env, " received 14 bytes"), "%s", h_logs(&env));
    cr_assert(h_log_contains(&env, "tcp: 0000: " HELLO_HEX), "%s", h_logs(&env));
    cr_assert(h_log_contains(&env, " connected"), "%s", h_logs(&env));
}

/* LOG_DATA is no flag of its own: without a socket type's flag it logs nothing. */
Test(tcp_errors, log_data_alone_logs_nothing)
{
    IInstanceLog_SetLogFlags(env.log, LOG_DATA | LOG_UDP);
    echo_hello();
    cr_assert_eq(env.nlog, 0, "%s", h_logs(&env));
}

Test(tcp_errors, log_flags_zero_logs_nothing_for_ordinary_failures)
{
    IInstanceLog_SetLogFlags(env.log, 0);
    int hold;
    uint16_t port = refusing_port(&hold);
    struct h_sock *c = h_sock_new(&env), *bad = h_sock_new(&env), *inuse = h_sock_new(&env);
    h_tcp_socket(&env, c, false);
    h_tcp_socket(&env, bad, false);
    h_tcp_socket(&env, inuse, false);
    CALL(ISocket_Connect(c->sock, h_addr(port), NULL));
    CALL(ISocket_Connect(bad->sock, "localhost:80", NULL));
    struct h_sock *l = h_sock_new(&env);
    l->echo = true;
    uint16_t lport = h_listen(&env, l, "127.0.0.1");
    CALL(ISocket_Bind(inuse->sock, "127.0.0.1", lport));
    struct h_sock *all[] = {c, bad, inuse};
    struct all_arg arg = {all, 3};
    cr_assert(h_run_until(&env, all_shut, &arg, 2000));

    /* Traffic, then a peer reset. */
    struct h_sock *d = h_sock_new(&env);
    h_tcp_socket(&env, d, false);
    CALL(ISocket_Connect(d->sock, h_addr(lport), NULL));
    CALL(ISocket_Send(d->sock, "hello", 5));
    static uint8_t in[5];
    CALL(ISocket_Recv(d->sock, in, sizeof(in), false));
    cr_assert(h_wait_count(&env, d, H_RECV_RESULT, 1, 2000), "%s", h_dump(d));
    struct h_sock *e = h_sock_new(&env);
    int p = connect_to_raw(e);
    CALL(ISocket_Recv(e->sock, in, sizeof(in), true));
    h_run_for(&env, 20);
    h_raw_reset(p);
    cr_assert(h_wait_count(&env, e, H_SHUTDOWN, 1, 2000), "%s", h_dump(e));
    expect_reason(e, SOCKET_LOST);
    cr_assert_eq(env.nlog, 0, "logged with flags 0: %s", env.log_lines[0]);
    h_sock_free(e);
    h_sock_free(d);
    h_sock_free(l);
    h_sock_free(c);
    h_sock_free(bad);
    h_sock_free(inuse);
    close(hold);
}
