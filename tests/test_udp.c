/* UDP sockets: datagram boundaries, source addresses, connected sockets, truncation,
 * ICMP errors, SendResult order, cancel and delete. Loopback only. */
#include "harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static struct h_env env;
static ISocketProvider *udp;

static void setup(void)
{
    h_env_init(&env);
    udp = CreateUDPSocketProvider();
}

static void teardown(void)
{
    ISocketProvider_Delete(udp);
    h_env_fini(&env);
}

TestSuite(udp, .init = setup, .fini = teardown, .timeout = 30);

static ISocket *udp_socket(struct h_sock *hs, bool v6)
{
    CALL(hs->sock = ISocketProvider_CreateSocket(udp, env.mux, &hs->user, env.log, v6, NULL));
    return hs->sock;
}

static uint16_t bound(struct h_sock *hs, const char *addr, bool v6)
{
    udp_socket(hs, v6);
    CALL(ISocket_Bind(hs->sock, addr, 0));
    char a[64];
    uint16_t port;
    CALL(ISocket_GetLocalAddress(hs->sock, a, sizeof(a), &port));
    cr_assert_neq(port, 0);
    return port;
}

static int raw_udp(const char *ip, uint16_t *port)
{
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    inet_pton(AF_INET, ip, &a.sin_addr);
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    socklen_t l = sizeof(a);
    getsockname(fd, (struct sockaddr *)&a, &l);
    *port = ntohs(a.sin_port);
    return fd;
}

static void raw_sendto(int fd, const void *buf, size_t len, uint16_t port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    cr_assert_eq(sendto(fd, buf, len, 0, (struct sockaddr *)&a, sizeof(a)), (ssize_t)len);
}

static ssize_t raw_recv(int fd, void *buf, size_t len, unsigned ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, (int)ms) <= 0)
        return -1;
    return recv(fd, buf, len, 0);
}

Test(udp, bind_result_and_recvfrom_one_datagram_per_callback)
{
    struct h_sock *s = h_sock_new(&env);
    uint16_t port = bound(s, "127.0.0.1", false);
    cr_assert(h_wait_count(&env, s, H_BIND_RESULT, 1, 1000));
    cr_assert_str_eq(h_last(s, H_BIND_RESULT)->addr, "127.0.0.1");
    cr_assert_eq(h_last(s, H_BIND_RESULT)->port, port);
    uint16_t rport;
    int raw = raw_udp("127.0.0.1", &rport);
    raw_sendto(raw, "first", 5, port);
    raw_sendto(raw, "second!", 7, port);
    static uint8_t buf[1500];
    for (int i = 0; i < 2; i++) {
        CALL(ISocket_Recv(s->sock, buf, sizeof(buf), false));
        cr_assert(h_wait_count(&env, s, H_RECV_FROM_RESULT, (size_t)i + 1, 2000));
        const struct h_event *e = h_last(s, H_RECV_FROM_RESULT);
        cr_assert_eq(e->buf, buf);
        cr_assert_eq(e->len, i ? 7u : 5u);
        cr_assert_arr_eq(buf, i ? "second!" : "first", e->len);
        cr_assert_str_eq(e->addr, "127.0.0.1");
        cr_assert_eq(e->port, rport);
    }
    close(raw);
    h_sock_free(s);
}

Test(udp, sendto_reaches_peer_with_one_result_each_in_order)
{
    struct h_sock *s = h_sock_new(&env);
    bound(s, NULL, false);
    uint16_t rport;
    int raw = raw_udp("127.0.0.1", &rport);
    IPaddr dst;
    cr_assert(IPaddr_FromString(&dst, "127.0.0.1"));
    char msg[32];
    for (int i = 0; i < 100; i++) {
        int n = snprintf(msg, sizeof(msg), "datagram %d", i);
        CALL(ISocket_SendTo(s->sock, msg, (size_t)n, dst, rport));
    }
    cr_assert_eq(h_count(s, H_SEND_RESULT), 0, "SendResult inside SendTo");
    cr_assert(h_wait_count(&env, s, H_SEND_RESULT, 100, 2000), "%s", h_dump(s));
    for (int i = 0; i < 100; i++) {
        char in[64] = {0};
        ssize_t n = raw_recv(raw, in, sizeof(in), 1000);
        snprintf(msg, sizeof(msg), "datagram %d", i);
        cr_assert_eq(n, (ssize_t)strlen(msg));
        cr_assert_str_eq(in, msg); /* loopback keeps order */
    }
    close(raw);
    h_sock_free(s);
}

Test(udp, connected_socket_send_recv_and_other_sources_dropped)
{
    struct h_sock *srv = h_sock_new(&env);
    uint16_t sport = bound(srv, "127.0.0.1", false);
    struct h_sock *c = h_sock_new(&env);
    udp_socket(c, false);
    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%u", sport);
    CALL(ISocket_Connect(c->sock, addr, NULL));
    cr_assert_eq(c->nev, 0);
    cr_assert(h_wait_count(&env, c, H_CONNECT_COMPLETE, 1, 1000));
    static uint8_t cbuf[100], sbuf[100];
    CALL(ISocket_Recv(c->sock, cbuf, sizeof(cbuf), true));
    CALL(ISocket_Send(c->sock, "ping", 4));
    CALL(ISocket_Recv(srv->sock, sbuf, sizeof(sbuf), true));
    cr_assert(h_wait_count(&env, srv, H_RECV_FROM_RESULT, 1, 2000));
    const struct h_event *e = h_last(srv, H_RECV_FROM_RESULT);
    cr_assert_arr_eq(sbuf, "ping", 4);
    IPaddr from;
    cr_assert(IPaddr_FromString(&from, e->addr));
    /* a stranger's datagram must not reach the connected client */
    uint16_t rport;
    int raw = raw_udp("127.0.0.1", &rport);
    char caddr[64];
    uint16_t cport;
    CALL(ISocket_GetLocalAddress(c->sock, caddr, sizeof(caddr), &cport));
    raw_sendto(raw, "stranger", 8, cport);
    CALL(ISocket_SendTo(srv->sock, "pong", 4, from, e->port));
    cr_assert(h_wait_count(&env, c, H_RECV_RESULT, 1, 2000), "%s", h_dump(c));
    cr_assert_eq(h_last(c, H_RECV_RESULT)->len, 4);
    cr_assert_arr_eq(cbuf, "pong", 4);
    close(raw);
    h_sock_free(c);
    h_sock_free(srv);
}

Test(udp, oversized_datagram_is_truncated_never_overrun)
{
    struct h_sock *s = h_sock_new(&env);
    IInstanceLog_SetLogFlags(env.log, LOG_UDP);
    uint16_t port = bound(s, "127.0.0.1", false);
    uint16_t rport;
    int raw = raw_udp("127.0.0.1", &rport);
    uint8_t big[3000];
    h_fill(big, sizeof(big), 3);
    raw_sendto(raw, big, sizeof(big), port);
    static uint8_t buf[116];
    memset(buf, 0xEE, sizeof(buf));
    CALL(ISocket_Recv(s->sock, buf, 100, false));
    cr_assert(h_wait_count(&env, s, H_RECV_FROM_RESULT, 1, 2000));
    cr_assert_eq(h_last(s, H_RECV_FROM_RESULT)->len, 100);
    cr_assert_arr_eq(buf, big, 100);
    for (int i = 100; i < 116; i++)
        cr_assert_eq(buf[i], 0xEE, "overrun at %d", i);
    cr_assert(h_log_contains(&env, "truncated"));
    close(raw);
    h_sock_free(s);
}

Test(udp, icmp_unreachable_does_not_kill_sockets)
{
    /* a port nobody listens on */
    uint16_t dead;
    int tmp = raw_udp("127.0.0.1", &dead);
    close(tmp);
    struct h_sock *srv = h_sock_new(&env);
    bound(srv, "127.0.0.1", false);
    IPaddr lo;
    IPaddr_FromString(&lo, "127.0.0.1");
    static uint8_t sbuf[64];
    CALL(ISocket_Recv(srv->sock, sbuf, sizeof(sbuf), true));
    CALL(ISocket_SendTo(srv->sock, "x", 1, lo, dead));
    struct h_sock *c = h_sock_new(&env);
    udp_socket(c, false);
    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%u", dead);
    CALL(ISocket_Connect(c->sock, addr, NULL));
    static uint8_t cbuf[64];
    CALL(ISocket_Recv(c->sock, cbuf, sizeof(cbuf), true));
    for (int i = 0; i < 5; i++)
        CALL(ISocket_Send(c->sock, "y", 1));
    h_run_for(&env, 200);
    cr_assert_eq(h_count(c, H_SEND_RESULT), 5, "%s", h_dump(c));
    cr_assert_eq(h_count(srv, H_SEND_RESULT), 1);
    cr_assert(!h_has_shutdown(srv), "%s", h_dump(srv));
    cr_assert(!h_has_shutdown(c), "%s", h_dump(c));
    /* the unconnected server still receives */
    uint16_t rport;
    int raw = raw_udp("127.0.0.1", &rport);
    char sa[64];
    uint16_t sport;
    CALL(ISocket_GetLocalAddress(srv->sock, sa, sizeof(sa), &sport));
    raw_sendto(raw, "alive", 5, sport);
    cr_assert(h_wait_count(&env, srv, H_RECV_FROM_RESULT, 1, 2000));
    close(raw);
    h_sock_free(c);
    h_sock_free(srv);
}

Test(udp, ipv6_dual_stack_reports_mapped_sources_as_v4)
{
    struct h_sock *s = h_sock_new(&env);
    uint16_t port = bound(s, NULL, true);
    cr_assert(h_wait_count(&env, s, H_BIND_RESULT, 1, 1000));
    cr_assert_str_eq(h_last(s, H_BIND_RESULT)->addr, "::");
    uint16_t rport;
    int raw = raw_udp("127.0.0.1", &rport);
    raw_sendto(raw, "v4", 2, port);
    static uint8_t buf[64];
    CALL(ISocket_Recv(s->sock, buf, sizeof(buf), true));
    cr_assert(h_wait_count(&env, s, H_RECV_FROM_RESULT, 1, 2000));
    cr_assert_str_eq(h_last(s, H_RECV_FROM_RESULT)->addr, "127.0.0.1");
    /* and answers to the mapped address */
    IPaddr to;
    IPaddr_FromString(&to, "127.0.0.1");
    CALL(ISocket_SendTo(s->sock, "back", 4, to, rport));
    cr_assert(h_wait_count(&env, s, H_SEND_RESULT, 1, 2000));
    char in[8] = {0};
    cr_assert_eq(raw_recv(raw, in, sizeof(in), 2000), 4);
    cr_assert_str_eq(in, "back");
    /* an IPv6 peer */
    struct h_sock *c = h_sock_new(&env);
    udp_socket(c, true);
    char addr[64];
    snprintf(addr, sizeof(addr), "[::1]:%u", port);
    CALL(ISocket_Connect(c->sock, addr, NULL));
    CALL(ISocket_Send(c->sock, "v6", 2));
    CALL(ISocket_Recv(s->sock, buf, sizeof(buf), true));
    cr_assert(h_wait_count(&env, s, H_RECV_FROM_RESULT, 2, 2000));
    cr_assert_str_eq(h_last(s, H_RECV_FROM_RESULT)->addr, "::1");
    close(raw);
    h_sock_free(c);
    h_sock_free(s);
}

Test(udp, bad_addresses_and_port_in_use)
{
    const char *bad[] = {"127.0.0.1", "127.0.0.1:0", "nohost:5", "[::1]5", NULL};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct h_sock *c = h_sock_new(&env);
        udp_socket(c, false);
        CALL(ISocket_Connect(c->sock, bad[i], NULL));
        cr_assert_eq(c->nev, 0);
        cr_assert(h_wait_count(&env, c, H_SHUTDOWN, 1, 1000));
        cr_assert_eq(h_last(c, H_SHUTDOWN)->reason, SOCKET_ADDRESS_INVALID, "case %zu", i);
        h_sock_free(c);
    }
    struct h_sock *a = h_sock_new(&env);
    uint16_t port = bound(a, "127.0.0.1", false);
    struct h_sock *b = h_sock_new(&env);
    udp_socket(b, false);
    CALL(ISocket_Bind(b->sock, "127.0.0.1", port));
    cr_assert(h_wait_count(&env, b, H_SHUTDOWN, 1, 1000));
    cr_assert_eq(h_last(b, H_SHUTDOWN)->reason, SOCKET_ADDR_IN_USE);
    h_sock_free(b);
    h_sock_free(a);
}

/* A RecvCancel with no receive outstanding (none yet, or the one just canceled) does
 * nothing: one SocketRecvCanceled for the one buffer. */
Test(udp, recv_cancel_without_receive_is_ignored)
{
    struct h_sock *s = h_sock_new(&env);
    bound(s, "127.0.0.1", false);
    static uint8_t b1[64];
    CALL(ISocket_RecvCancel(s->sock));
    CALL(ISocket_Recv(s->sock, b1, sizeof(b1), true));
    CALL(ISocket_RecvCancel(s->sock));
    CALL(ISocket_RecvCancel(s->sock));
    cr_assert(h_wait_count(&env, s, H_RECV_CANCELED, 1, 1000));
    h_run_for(&env, 20);
    cr_assert_eq(h_count(s, H_RECV_CANCELED), 1, "%s", h_dump(s));
    cr_assert_eq(h_last(s, H_RECV_CANCELED)->buf, b1);
    h_sock_free(s);
}

Test(udp, recv_cancel_keeps_datagram_and_shutdown_returns_buffer)
{
    struct h_sock *s = h_sock_new(&env);
    uint16_t port = bound(s, "127.0.0.1", false);
    static uint8_t b1[64], b2[64];
    CALL(ISocket_Recv(s->sock, b1, sizeof(b1), true));
    CALL(ISocket_RecvCancel(s->sock));
    cr_assert_eq(h_count(s, H_RECV_CANCELED), 0);
    cr_assert(h_wait_count(&env, s, H_RECV_CANCELED, 1, 1000));
    cr_assert_eq(h_last(s, H_RECV_CANCELED)->buf, b1);
    uint16_t rport;
    int raw = raw_udp("127.0.0.1", &rport);
    raw_sendto(raw, "after", 5, port);
    CALL(ISocket_Recv(s->sock, b2, sizeof(b2), true));
    cr_assert(h_wait_count(&env, s, H_RECV_FROM_RESULT, 1, 2000));
    cr_assert_arr_eq(b2, "after", 5);
    CALL(ISocket_Recv(s->sock, b1, sizeof(b1), true));
    CALL(ISocket_Shutdown(s->sock));
    cr_assert(h_wait_count(&env, s, H_SHUTDOWN, 1, 1000));
    cr_assert_eq(s->ev[s->nev - 2].kind, H_RECV_CANCELED, "%s", h_dump(s));
    cr_assert_eq(s->ev[s->nev - 2].buf, b1);
    cr_assert_eq(h_last(s, H_SHUTDOWN)->reason, SOCKET_SHUTDOWN_NORMAL);
    close(raw);
    h_sock_free(s);
}

Test(udp, delete_with_recv_in_flight_then_free_buffer)
{
    struct h_sock *s = h_sock_new(&env);
    uint16_t port = bound(s, "127.0.0.1", false);
    uint8_t *buf = malloc(256);
    CALL(ISocket_Recv(s->sock, buf, 256, true));
    h_run_for(&env, 20); /* the receive is in the kernel now */
    CALL(ISocket_Delete(s->sock));
    s->sock = NULL;
    free(buf); /* allowed at once */
    uint16_t rport;
    int raw = raw_udp("127.0.0.1", &rport);
    raw_sendto(raw, "late", 4, port);
    size_t before = s->nev;
    h_run_for(&env, 50);
    cr_assert_eq(s->nev, before, "callback after Delete: %s", h_dump(s));
    close(raw);
    h_sock_free(s);
}

Test(udp, shutdown_flushes_queued_datagrams)
{
    struct h_sock *s = h_sock_new(&env);
    bound(s, "127.0.0.1", false);
    uint16_t rport;
    int raw = raw_udp("127.0.0.1", &rport);
    IPaddr lo;
    IPaddr_FromString(&lo, "127.0.0.1");
    for (int i = 0; i < 100; i++)
        CALL(ISocket_SendTo(s->sock, &i, sizeof(i), lo, rport));
    CALL(ISocket_Shutdown(s->sock));
    cr_assert(h_wait_count(&env, s, H_SHUTDOWN, 1, 2000));
    cr_assert_eq(h_count(s, H_SEND_RESULT), 100);
    cr_assert_eq(h_last(s, H_SHUTDOWN)->reason, SOCKET_SHUTDOWN_NORMAL);
    for (int i = 0; i < 100; i++) {
        int v = -1;
        cr_assert_eq(raw_recv(raw, &v, sizeof(v), 1000), (ssize_t)sizeof(v));
        cr_assert_eq(v, i);
    }
    close(raw);
    h_sock_free(s);
}

Test(udp, datagrams_wait_in_order_for_the_application)
{
    struct h_sock *s = h_sock_new(&env);
    uint16_t port = bound(s, "127.0.0.1", false);
    uint16_t rport;
    int raw = raw_udp("127.0.0.1", &rport);
    for (int i = 0; i < 50; i++)
        raw_sendto(raw, &i, sizeof(i), port);
    h_run_for(&env, 50); /* arrive with no Recv outstanding */
    static int v;
    for (int i = 0; i < 50; i++) {
        CALL(ISocket_Recv(s->sock, &v, sizeof(v), true));
        cr_assert(h_wait_count(&env, s, H_RECV_FROM_RESULT, (size_t)i + 1, 1000));
        cr_assert_eq(v, i);
        cr_assert_eq(h_last(s, H_RECV_FROM_RESULT)->port, rport);
    }
    ISocketStats st;
    ISocket_GetStats(s->sock, &st);
    cr_assert_eq(st.recvs, 50);
    cr_assert_eq(st.bytesReceived, 50 * sizeof(int));
    close(raw);
    h_sock_free(s);
}

Test(udp, application_not_receiving_drops_and_counts_never_blocks)
{
    struct h_sock *s = h_sock_new(&env);
    uint16_t port = bound(s, "127.0.0.1", false);
    uint16_t rport;
    int raw = raw_udp("127.0.0.1", &rport);
    int sent = 0;
    for (int round = 0; round < 40; round++) {
        for (int i = 0; i < 100; i++, sent++)
            raw_sendto(raw, &sent, sizeof(sent), port);
        h_run_for(&env, 5);
    }
    ISocketStats st;
    ISocket_GetStats(s->sock, &st);
    /* 4000 sent; the engine keeps at most 1024, the kernel's socket buffer a few hundred.
     * One receive at a time (that setting, or the epoll backend), nothing is read ahead
     * and the kernel does the dropping. */
    if (getenv("RINGSOCK_UDP_SINGLE_SHOT") || strcmp(IIoMux_GetBackend(env.mux), "epoll") == 0)
        cr_assert_eq(st.dropped, 0);
    else
        cr_assert_gt(st.dropped, 0);
    static int v;
    CALL(ISocket_Recv(s->sock, &v, sizeof(v), true));
    cr_assert(h_wait_count(&env, s, H_RECV_FROM_RESULT, 1, 1000));
    cr_assert_eq(v, 0, "the oldest datagram is kept, newer ones dropped");
    close(raw);
    h_sock_free(s);
}

/* The loop's receive pool: 256 buffers of 65600 bytes, 16400 kB of address space. Its
 * resident kB and VmFlags from /proc/self/smaps; false where there is no such mapping. */
static bool pool_mapping(unsigned long *rss_kb, char *flags, size_t len)
{
    FILE *f = fopen("/proc/self/smaps", "r");
    cr_assert_not_null(f);
    char line[512];
    bool in_pool = false, found = false;
    while (fgets(line, sizeof(line), f)) {
        unsigned long kb;
        if (sscanf(line, "Size: %lu kB", &kb) == 1)
            in_pool = kb == 16400;
        if (in_pool)
            sscanf(line, "Rss: %lu kB", rss_kb);
        if (in_pool && strncmp(line, "VmFlags:", 8) == 0) {
            snprintf(flags, len, "%s", line + 8);
            found = true;
            break;
        }
    }
    fclose(f);
    return found;
}

static void skip_without_pool(void)
{
    const char *single = getenv("RINGSOCK_UDP_SINGLE_SHOT");
    if (strcmp(IIoMux_GetBackend(env.mux), "io_uring") != 0 || (single && !strcmp(single, "1")))
        cr_skip_test("no receive pool on this path");
}

/* The kernel takes a buffer ring's buffers in ring order: a ring holding all 256 would have
 * each written in turn (a page resident per buffer, 1 MiB) by any 256 small messages. The
 * pool keeps in the ring what the loop's bursts need: one message at a time stays within
 * the first 64 buffers' pages. Nor may the pool be backed by transparent huge pages: where
 * they are "always" (Debian 12's kernel), the first datagram into each 2 MiB stretch would
 * make all of it resident. */
Test(udp, receive_pool_keeps_to_what_bursts_need_off_huge_pages)
{
    skip_without_pool();
    struct h_sock *s = h_sock_new(&env);
    uint16_t port = bound(s, "127.0.0.1", false);
    uint16_t rport;
    int raw = raw_udp("127.0.0.1", &rport);
    static uint32_t v;
    for (uint32_t i = 0; i < 1000; i++) {
        raw_sendto(raw, &i, sizeof(i), port);
        CALL(ISocket_Recv(s->sock, &v, sizeof(v), true));
        cr_assert(h_wait_count(&env, s, H_RECV_FROM_RESULT, i + 1, 2000));
        cr_assert_eq(v, i);
    }
    char flags[512];
    unsigned long rss = 0;
    cr_assert(pool_mapping(&rss, flags, sizeof(flags)), "no 16400 kB mapping: the pool moved?");
    cr_assert(strstr(flags, " nh"), "receive pool without MADV_NOHUGEPAGE: VmFlags:%s", flags);
    cr_assert_leq(rss, 64 * 4 + 64, "1000 datagrams one at a time made %lu kB resident", rss);
    close(raw);
    h_sock_free(s);
}

/* A burst that takes more buffers in one go than the ring holds (8 datagrams for each of
 * 32 sockets, 256 buffers, read in one loop round): the sockets the ring ran dry for
 * receive again, the ring grows, and every datagram arrives, in order. */
#define BURST_SOCKS 32
#define BURST_EACH  8
Test(udp, receive_pool_grows_for_a_burst_across_sockets)
{
    skip_without_pool();
    static struct h_sock *s[BURST_SOCKS];
    static uint16_t port[BURST_SOCKS];
    static uint32_t got[BURST_SOCKS][BURST_EACH];
    static size_t asked[BURST_SOCKS];
    for (int i = 0; i < BURST_SOCKS; i++) {
        s[i] = h_sock_new(&env);
        port[i] = bound(s[i], "127.0.0.1", false);
        CALL(ISocket_Recv(s[i]->sock, &got[i][0], sizeof(got[i][0]), true));
        asked[i] = 1;
    }
    h_run_for(&env, 20); /* every receive armed */
    uint16_t rport;
    int raw = raw_udp("127.0.0.1", &rport);
    for (uint32_t k = 0; k < BURST_EACH; k++)
        for (uint32_t i = 0; i < BURST_SOCKS; i++) {
            uint32_t v = i * BURST_EACH + k;
            raw_sendto(raw, &v, sizeof(v), port[i]);
        }
    size_t done = 0;
    for (int round = 0; round < 1000 && done < BURST_SOCKS; round++) {
        h_run_for(&env, 5);
        done = 0;
        for (int i = 0; i < BURST_SOCKS; i++) {
            size_t n = h_count(s[i], H_RECV_FROM_RESULT);
            if (n == asked[i] && n < BURST_EACH) {
                CALL(ISocket_Recv(s[i]->sock, &got[i][n], sizeof(got[i][n]), true));
                asked[i]++;
            }
            done += n == BURST_EACH;
        }
    }
    cr_assert_eq(done, BURST_SOCKS, "sockets with all their datagrams");
    for (uint32_t i = 0; i < BURST_SOCKS; i++) {
        for (uint32_t k = 0; k < BURST_EACH; k++)
            cr_assert_eq(got[i][k], i * BURST_EACH + k, "socket %u, datagram %u", i, k);
        ISocketStats st;
        ISocket_GetStats(s[i]->sock, &st);
        cr_assert_eq(st.dropped, 0);
        h_sock_free(s[i]);
    }
    close(raw);
}
