/* DTLS sockets under attack and misuse: garbage datagrams, ClientHello floods from many
 * sources (stateless cookie exchange: no per-peer state, HelloVerifyRequests to the
 * senders), replayed and tampered SRTP packets through a relay in the middle, a bad-epoch
 * record inside an association, handshake timeouts, invalid addresses, Delete during the
 * handshake, Shutdown of the bound socket while an association lives, rejected peers, and
 * the order of the callbacks. Raw kernel UDP sockets play the misbehaving peers. */
#include "dtls_env.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "dtls.h"

#undef h_addr /* <netdb.h>'s, in the way of the harness's */

static void setup(void)
{
    dtls_env_init();
}

TestSuite(dtls_faults, .init = setup, .fini = dtls_env_fini, .timeout = 120);

/* The associations on a server's port (internals: what the API cannot show). */
static size_t associations(struct h_sock *l)
{
    struct rs_dtls *d = (struct rs_dtls *)l->sock;
    return d->port ? d->port->table_len : 0;
}

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

/* ---- raw UDP peers ------------------------------------------------------------------------ */

static int raw_udp(uint16_t *port)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    cr_assert(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    socklen_t len = sizeof(a);
    getsockname(fd, (struct sockaddr *)&a, &len);
    if (port)
        *port = ntohs(a.sin_port);
    return fd;
}

static void raw_send(int fd, uint16_t port, const void *buf, size_t len)
{
    struct sockaddr_in a = {
        .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(sendto(fd, buf, len, 0, (struct sockaddr *)&a, sizeof(a)), (ssize_t)len);
}

struct rwait {
    int fd;
    uint8_t *buf;
    size_t cap;
    ssize_t got;
};

static bool got_datagram(struct h_env *e, void *arg)
{
    (void)e;
    struct rwait *w = arg;
    if (w->got > 0)
        return true;
    w->got = recv(w->fd, w->buf, w->cap, MSG_DONTWAIT);
    return w->got > 0;
}

/* A ClientHello without a cookie, as a ringsock client sends it: the client connects to a
 * raw socket, which keeps the first datagram; then the client is deleted mid-handshake. */
static size_t capture_client_hello(uint8_t *out, size_t cap)
{
    uint16_t port;
    int fd = raw_udp(&port);
    struct h_sock *c = h_sock_new(&env);
    dtls_client(c, port);
    struct rwait w = {fd, out, cap, -1};
    cr_assert(h_run_until(&env, got_datagram, &w, 3000), "no ClientHello\n%s", h_logs(&env));
    size_t nev = c->nev;
    h_sock_free(c); /* Delete with the handshake in flight */
    h_run_for(&env, 50);
    close(fd);
    cr_assert_eq(nev, 0, "%s", h_dump(c));
    cr_assert(w.got > 13 + 12);
    cr_assert_eq(out[0], 22, "not a handshake record");
    cr_assert_eq(out[13], 1, "not a ClientHello");
    return (size_t)w.got;
}

/* The sanitizers' (weak: absent without them): drains ASan's quarantine of freed blocks. */
void __sanitizer_purge_allocator(void) __attribute__((weak));

/* Resident memory, without what a sanitizer holds back from reuse. */
static size_t rss_kib(void)
{
    if (__sanitizer_purge_allocator)
        __sanitizer_purge_allocator();
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long size = 0, res = 0;
    if (f) {
        if (fscanf(f, "%lu %lu", &size, &res) != 2)
            res = 0;
        fclose(f);
    }
    return res * (size_t)sysconf(_SC_PAGESIZE) / 1024;
}

static bool connected(struct h_env *e, void *arg)
{
    (void)e;
    struct h_sock **s = arg; /* client, listener */
    return h_count(s[0], H_CONNECT_COMPLETE) == 1 && s[1]->naccepted >= 1 &&
           h_count(s[1]->accepted[s[1]->naccepted - 1], H_ACCEPT_COMPLETE) == 1;
}

/* An RTP packet (version 2, payload type 96) with a pattern of payload bytes. */
static size_t rtp_packet(uint8_t *p, uint16_t seq, size_t payload)
{
    p[0] = 0x80;
    p[1] = 96;
    p[2] = (uint8_t)(seq >> 8);
    p[3] = (uint8_t)seq;
    memset(p + 4, 0, 4);
    p[8] = 0xca, p[9] = 0xfe, p[10] = 0xba, p[11] = 0xbe;
    h_fill(p + 12, payload, seq);
    return 12 + payload;
}

/* A real client connects, sends one message and gets it back (the listener echoes). */
static void real_client_echoes(uint16_t port, struct h_sock *l, unsigned within_ms)
{
    struct h_sock *c = h_sock_new(&env);
    dtls_client(c, port);
    double t0 = now_ms();
    struct h_sock *pair[2] = {c, l};
    cr_assert(h_run_until(&env, connected, pair, within_ms), "no handshake within %u ms\n%s\n%s",
              within_ms, h_dump(c), h_logs(&env));
    double took = now_ms() - t0;
    static uint8_t msg[200], in[256]; /* RTP: a message with and without SRTP */
    size_t n = rtp_packet(msg, 7, 100);
    CALL(ISocket_Recv(c->sock, in, sizeof(in), false));
    CALL(ISocket_Send(c->sock, msg, n));
    cr_assert(h_wait_count(&env, c, H_RECV_RESULT, 1, 3000), "%s\n%s", h_dump(c), h_logs(&env));
    cr_assert_eq(h_last(c, H_RECV_RESULT)->len, n);
    cr_assert_arr_eq(in, msg, n);
    cr_log_info("real client: handshake in %.1f ms", took);
    h_sock_free(c);
}

/* ---- garbage ------------------------------------------------------------------------------ */

Test(dtls_faults, garbage_datagrams_make_no_peer_and_server_keeps_serving)
{
    enable(false);
    uint8_t hello[2048];
    size_t hlen = capture_client_hello(hello, sizeof(hello));
    struct h_sock *l = h_sock_new(&env);
    l->echo = true;
    uint16_t port = dtls_listen(l);
    cr_assert(h_wait_count(&env, l, H_BIND_RESULT, 1, 2000));
    int g = raw_udp(NULL);
    uint8_t buf[2048];
    uint32_t seed = 12345;
    /* random bytes: some that look like DTLS (first byte 20..63), some not */
    for (int i = 0; i < 200; i++) {
        size_t n = 1 + h_rand(&seed) % 1200;
        h_fill(buf, n, h_rand(&seed));
        if (i % 2)
            buf[0] = (uint8_t)(20 + i % 44);
        raw_send(g, port, buf, n);
    }
    /* truncated ClientHellos: cut in the record header, the handshake header, the body */
    static const size_t cuts[] = {1, 5, 12, 13, 20, 25, 40, 0};
    for (int i = 0; cuts[i]; i++)
        raw_send(g, port, hello, cuts[i]);
    raw_send(g, port, hello, hlen - 1);
    /* a record length beyond the datagram, and a handshake length beyond the record */
    memcpy(buf, hello, hlen);
    buf[11] = 0xff, buf[12] = 0xff;
    raw_send(g, port, buf, hlen);
    memcpy(buf, hello, hlen);
    buf[14] = 0x7f;
    raw_send(g, port, buf, hlen);
    /* a ClientHello in epoch 5, and application data in epoch 1 */
    memcpy(buf, hello, hlen);
    buf[3] = 0, buf[4] = 5;
    raw_send(g, port, buf, hlen);
    memcpy(buf, hello, 13);
    buf[0] = 23, buf[3] = 0, buf[4] = 1;
    h_fill(buf + 13, 64, 7);
    buf[11] = 0, buf[12] = 64;
    raw_send(g, port, buf, 13 + 64);
    /* a ClientHello with a cookie the server never made */
    memcpy(buf, hello, hlen);
    size_t sid = 13 + 12 + 2 + 32;    /* session id length */
    size_t ck = sid + 1 + hello[sid]; /* cookie length: 0 in a first hello */
    if (hello[ck] == 0 && hlen < sizeof(buf) - 32) {
        memmove(buf + ck + 1 + 20, hello + ck + 1, hlen - ck - 1);
        buf[ck] = 20;
        h_fill(buf + ck + 1, 20, 5);
        /* the lengths grow by 20: record, handshake message, fragment */
        unsigned rl = ((unsigned)buf[11] << 8 | buf[12]) + 20;
        buf[11] = (uint8_t)(rl >> 8), buf[12] = (uint8_t)rl;
        unsigned ml = ((unsigned)buf[15] << 8 | buf[16]) + 20;
        buf[15] = (uint8_t)(ml >> 8), buf[16] = (uint8_t)ml;
        unsigned fl = ((unsigned)buf[23] << 8 | buf[24]) + 20;
        buf[23] = (uint8_t)(fl >> 8), buf[24] = (uint8_t)fl;
        raw_send(g, port, buf, hlen + 20);
    }
    h_run_for(&env, 300);
    cr_assert_eq(h_count(l, H_LISTEN_RESULT), 0, "%s", h_dump(l));
    cr_assert_eq(associations(l), 0);
    cr_assert_eq(l->nev, 1, "%s", h_dump(l)); /* BindResult only */
    close(g);
    real_client_echoes(port, l, 2000);
    cr_assert_eq(h_count(l, H_LISTEN_RESULT), 1);
    h_sock_free(l);
}

/* fuzz_dtls's input: the first datagram a port gets, a ClientHello record cut short with
 * its sequence number far ahead and absurd message and fragment lengths. The port's
 * scratch session, kept across datagrams, swallowed every later ClientHello, from anyone:
 * no real client got in. Each ClientHello now gets a scratch session of its own. */
Test(dtls_faults, forged_first_client_hello_keeps_nobody_out)
{
    enable(false);
    struct h_sock *l = h_sock_new(&env);
    l->echo = true;
    uint16_t port = dtls_listen(l);
    cr_assert(h_wait_count(&env, l, H_BIND_RESULT, 1, 2000));
    int g = raw_udp(NULL);
    static const uint8_t forged[] = {0x16, 0xfe, 0xfd, 0,    0,    0,    0,   0xff, 0,
                                     0,    0,    0x1e, 0x03, 0x01, 0x9e, 0,   0,    0,
                                     0x67, 0x61, 0x72, 0xf0, 0x16, 0xfe, 0xfd};
    raw_send(g, port, forged, sizeof(forged));
    h_run_for(&env, 50);
    close(g);
    real_client_echoes(port, l, 2000);
    cr_assert_eq(h_count(l, H_LISTEN_RESULT), 1);
    h_sock_free(l);
}

/* ---- ClientHello flood ------------------------------------------------------------------------
 */

#define FLOOD_SOCKETS 200
#define FLOOD_EACH    10
#define FLOOD_BATCH   20

struct flood {
    int fd[FLOOD_SOCKETS];
    unsigned replies[FLOOD_SOCKETS];
    unsigned bad;
    uint8_t cookie[2][256];
    size_t cookie_len[2];
    size_t from, to;
    unsigned want;
};

static bool flood_replied(struct h_env *e, void *arg)
{
    (void)e;
    struct flood *f = arg;
    uint8_t b[2048];
    bool all = true;
    for (size_t i = f->from; i < f->to; i++) {
        ssize_t n;
        while ((n = recv(f->fd[i], b, sizeof(b), MSG_DONTWAIT)) > 0) {
            /* a HelloVerifyRequest: handshake record, epoch 0, msg_type 3, a cookie */
            if (n < 13 + 12 + 3 || b[0] != 22 || b[3] != 0 || b[4] != 0 || b[13] != 3 ||
                13 + 12 + 3 + (size_t)b[27] > (size_t)n) {
                f->bad++;
                continue;
            }
            f->replies[i]++;
            if (i < 2) {
                f->cookie_len[i] = b[27];
                memcpy(f->cookie[i], b + 28, b[27]);
            }
        }
        all = all && f->replies[i] >= f->want;
    }
    return all;
}

Test(dtls_faults, client_hello_flood_keeps_no_state_and_answers_each_sender)
{
    enable(true);
    uint8_t hello[2048];
    size_t hlen = capture_client_hello(hello, sizeof(hello));
    struct h_sock *l = h_sock_new(&env);
    l->echo = true;
    uint16_t port = dtls_listen(l);
    cr_assert(h_wait_count(&env, l, H_BIND_RESULT, 1, 2000));
    static struct flood f;
    memset(&f, 0, sizeof(f));
    for (int i = 0; i < FLOOD_SOCKETS; i++)
        f.fd[i] = raw_udp(NULL);
    /* warm up: the first hello makes the cookie session, the rest must not grow anything */
    raw_send(f.fd[0], port, hello, hlen);
    f.from = 0, f.to = 1, f.want = 1;
    cr_assert(h_run_until(&env, flood_replied, &f, 2000));
    f.replies[0] = 0; /* the warm-up's */
    size_t rss0 = rss_kib();
    double t0 = now_ms();
    /* FLOOD_EACH rounds; in each, batches of FLOOD_BATCH sockets send one hello each and the
     * test waits for their answers (so that no datagram is lost to a full socket buffer) */
    for (unsigned round = 0; round < FLOOD_EACH; round++) {
        for (size_t b = 0; b < FLOOD_SOCKETS; b += FLOOD_BATCH) {
            for (size_t i = b; i < b + FLOOD_BATCH; i++)
                raw_send(f.fd[i], port, hello, hlen);
            f.from = b, f.to = b + FLOOD_BATCH, f.want = round + 1;
            cr_assert(h_run_until(&env, flood_replied, &f, 3000),
                      "round %u batch %zu: not every sender got its HelloVerifyRequest\n%s", round,
                      b, h_logs(&env));
        }
    }
    double took = now_ms() - t0;
    size_t rss1 = rss_kib();
    h_run_for(&env, 100);
    unsigned total = 0;
    for (int i = 0; i < FLOOD_SOCKETS; i++) {
        f.from = (size_t)i, f.to = (size_t)i + 1, f.want = 0;
        flood_replied(&env, &f);
        cr_assert_eq(f.replies[i], FLOOD_EACH, "socket %d: %u replies", i, f.replies[i]);
        total += f.replies[i];
    }
    cr_assert_eq(f.bad, 0, "%u replies were not HelloVerifyRequests", f.bad);
    /* the cookie is bound to the source: two senders of the same hello get different ones */
    cr_assert(f.cookie_len[0] > 0 && f.cookie_len[0] == f.cookie_len[1]);
    cr_assert(memcmp(f.cookie[0], f.cookie[1], f.cookie_len[0]) != 0);
    cr_assert_eq(h_count(l, H_LISTEN_RESULT), 0, "%s", h_dump(l));
    cr_assert_eq(associations(l), 0);
    cr_log_info("flood: %u HelloVerifyRequests to %d senders in %.0f ms; RSS %zu -> %zu KiB", total,
                FLOOD_SOCKETS, took, rss0, rss1);
    /* no per-peer state: 2000 hellos may not cost what 200 sessions would (~100 KiB each) */
    cr_assert_lt(rss1, rss0 + 6144, "RSS grew from %zu to %zu KiB", rss0, rss1);
    for (int i = 0; i < FLOOD_SOCKETS; i++)
        close(f.fd[i]);
    real_client_echoes(port, l, 1000);
    cr_assert_eq(associations(l), 1);
    h_sock_free(l);
}

/* ---- SRTP through a relay in the middle ---------------------------------------------------------
 */

struct relay {
    int front, back; /* the client talks to front; back is connected to the server */
    struct sockaddr_in client;
    bool have_client;
    bool hold; /* keep the next RTP packet from the client instead of forwarding it */
    uint8_t held[2048];
    size_t held_len;
    uint8_t last[2048]; /* the last RTP packet forwarded to the server */
    size_t last_len;
    bool (*cond)(struct h_env *, void *);
    void *arg;
    unsigned drop_pct; /* loss, each way */
    uint32_t rng;
    size_t dropped, passed;
};

/* Loses drop_pct percent of the datagrams, with a reproducible sequence. */
static bool relay_lose(struct relay *r)
{
    bool lose = r->drop_pct && h_rand(&r->rng) % 100 < r->drop_pct;
    if (lose)
        r->dropped++;
    else
        r->passed++;
    return lose;
}

static void relay_pump(struct relay *r)
{
    uint8_t b[4096];
    ssize_t n;
    socklen_t al = sizeof(r->client);
    while ((n = recvfrom(r->front, b, sizeof(b), MSG_DONTWAIT, (struct sockaddr *)&r->client,
                         &al)) > 0) {
        r->have_client = true;
        bool rtp = b[0] >= 128 && b[0] <= 191;
        if (rtp && r->hold && r->held_len == 0) {
            memcpy(r->held, b, (size_t)n);
            r->held_len = (size_t)n;
            continue;
        }
        if (rtp) {
            memcpy(r->last, b, (size_t)n);
            r->last_len = (size_t)n;
        }
        if (!relay_lose(r))
            send(r->back, b, (size_t)n, 0);
    }
    while ((n = recv(r->back, b, sizeof(b), MSG_DONTWAIT)) > 0)
        if (r->have_client && !relay_lose(r))
            sendto(r->front, b, (size_t)n, 0, (struct sockaddr *)&r->client, sizeof(r->client));
}

static bool relay_cond(struct h_env *e, void *arg)
{
    struct relay *r = arg;
    relay_pump(r);
    return r->cond ? r->cond(e, r->arg) : false;
}

static bool relay_run(struct relay *r, bool (*cond)(struct h_env *, void *), void *arg, unsigned ms)
{
    r->cond = cond;
    r->arg = arg;
    return h_run_until(&env, relay_cond, r, ms);
}

struct wait_n {
    struct h_sock *s;
    enum h_kind k;
    size_t n;
};

static bool has_n(struct h_env *e, void *arg)
{
    (void)e;
    struct wait_n *w = arg;
    return h_count(w->s, w->k) >= w->n;
}

Test(dtls_faults, replayed_and_tampered_srtp_dropped_bad_epoch_ignored)
{
    enable(true);
    struct h_sock *l = h_sock_new(&env);
    uint16_t port = dtls_listen(l);
    cr_assert(h_wait_count(&env, l, H_BIND_RESULT, 1, 2000));
    struct relay r = {0};
    uint16_t front_port;
    r.front = raw_udp(&front_port);
    r.back = raw_udp(NULL);
    struct sockaddr_in sa = {
        .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(connect(r.back, (struct sockaddr *)&sa, sizeof(sa)), 0);

    struct h_sock *c = h_sock_new(&env);
    dtls_client(c, front_port);
    struct h_sock *pair[2] = {c, l};
    cr_assert(relay_run(&r, connected, pair, 5000), "%s\n%s", h_dump(c), h_logs(&env));
    struct h_sock *s = l->accepted[0];

    static uint8_t out[1500], in[1500];
    /* one packet through: the relay keeps a copy of it as protected on the wire */
    size_t n = rtp_packet(out, 1, 160);
    CALL(ISocket_Recv(s->sock, in, sizeof(in), false));
    CALL(ISocket_Send(c->sock, out, n));
    struct wait_n w = {s, H_RECV_RESULT, 1};
    cr_assert(relay_run(&r, has_n, &w, 3000), "%s\n%s", h_dump(s), h_logs(&env));
    cr_assert_eq(h_last(s, H_RECV_RESULT)->len, n);
    cr_assert_arr_eq(in, out, n);
    cr_assert(r.last_len > n, "the relay saw no protected packet");
    cr_assert(memcmp(r.last + 12, out + 12, 16) != 0, "the payload went out in clear");

    /* replayed: dropped, counted, not delivered twice */
    ISocketStats st0, st1;
    ISocket_GetStats(s->sock, &st0);
    CALL(ISocket_Recv(s->sock, in, sizeof(in), false));
    send(r.back, r.last, r.last_len, 0);
    relay_run(&r, NULL, NULL, 200);
    ISocket_GetStats(s->sock, &st1);
    cr_assert_eq(h_count(s, H_RECV_RESULT), 1, "a replayed packet was delivered\n%s", h_dump(s));
    cr_assert_eq(st1.dropped, st0.dropped + 1);
    cr_assert(h_log_contains(&env, "replayed"), "%s", h_logs(&env));

    /* tampered: the relay holds the next packet, flips a bit of its tag, sends that; the
     * original still goes through afterwards (the forgery did not burn its index) */
    r.hold = true;
    n = rtp_packet(out, 2, 200);
    CALL(ISocket_Send(c->sock, out, n));
    relay_run(&r, NULL, NULL, 100);
    cr_assert(r.held_len > n, "the relay held nothing");
    uint8_t forged[2048];
    memcpy(forged, r.held, r.held_len);
    forged[r.held_len - 1] ^= 0x01;
    send(r.back, forged, r.held_len, 0);
    relay_run(&r, NULL, NULL, 200);
    ISocketStats st2;
    ISocket_GetStats(s->sock, &st2);
    cr_assert_eq(h_count(s, H_RECV_RESULT), 1, "a tampered packet was delivered");
    cr_assert_eq(st2.dropped, st1.dropped + 1);
    cr_assert(h_log_contains(&env, "SRTP packet dropped: authentication failed"), "%s",
              h_logs(&env));
    /* a record in an epoch the association never had, and garbage DTLS: ignored */
    uint8_t bad[64] = {23, 0xfe, 0xfd, 0, 9, 0, 0, 0, 0, 0, 1, 0, 40};
    h_fill(bad + 13, 40, 99);
    send(r.back, bad, 53, 0);
    bad[0] = 22;
    send(r.back, bad, 20, 0);
    send(r.back, r.held, r.held_len, 0);
    w.n = 2;
    cr_assert(relay_run(&r, has_n, &w, 3000), "%s\n%s", h_dump(s), h_logs(&env));
    cr_assert_eq(h_last(s, H_RECV_RESULT)->len, n);
    cr_assert_arr_eq(in, out, n);
    cr_assert(!h_has_shutdown(s) && !h_has_shutdown(c), "%s\n%s", h_dump(s), h_dump(c));
    r.hold = false;

    /* and back the other way, still */
    n = rtp_packet(out, 3, 100);
    CALL(ISocket_Recv(c->sock, in, sizeof(in), false));
    CALL(ISocket_Send(s->sock, out, n));
    struct wait_n wc = {c, H_RECV_RESULT, 1};
    cr_assert(relay_run(&r, has_n, &wc, 3000), "%s\n%s", h_dump(c), h_logs(&env));
    cr_assert_arr_eq(in, out, n);
    close(r.front);
    close(r.back);
    h_sock_free(c);
    h_sock_free(l);
}

/* ---- client failures --------------------------------------------------------------------------
 */

static void client_fails(const char *addr, shutdownreason_t want, unsigned within_ms)
{
    struct h_sock *c = h_sock_new(&env);
    CALL(c->sock = ISocketProvider_CreateSocket(udp, env.mux, &c->user, env.log, false, cctx));
    double t0 = now_ms();
    CALL(ISocket_Connect(c->sock, addr, NULL));
    cr_assert(h_wait_count(&env, c, H_SHUTDOWN, 1, within_ms), "%s: %s\n%s", addr, h_dump(c),
              h_logs(&env));
    double took = now_ms() - t0;
    cr_assert_eq(c->nev, 1, "%s", h_dump(c));
    cr_assert_eq(h_last(c, H_SHUTDOWN)->reason, want, "%s: %s", addr,
                 SocketShutdownReasonToStr(h_last(c, H_SHUTDOWN)->reason));
    cr_log_info("%s: %s after %.0f ms", addr, SocketShutdownReasonToStr(want), took);
    h_run_for(&env, 50);
    cr_assert_eq(c->nev, 1, "%s", h_dump(c));
    h_sock_free(c);
}

Test(dtls_faults, connect_to_nobody_or_silence_fails_within_the_timeout)
{
    enable(false);
    env.mux->settings.dtls_handshake_timeout_ms = 1500;
    /* a port nobody listens on (the kernel may answer port unreachable) */
    uint16_t port;
    int fd = raw_udp(&port);
    close(fd);
    client_fails(h_addr(port), SOCKET_TLS_HANDSHAKE_FAILED, 3000);
    /* a peer that takes the hellos and never answers: the handshake timer */
    fd = raw_udp(&port);
    double t0 = now_ms();
    client_fails(h_addr(port), SOCKET_TLS_HANDSHAKE_FAILED, 3500);
    double took = now_ms() - t0;
    cr_assert_geq(took, 1400, "failed after %.0f ms, before the timeout", took);
    /* it retransmitted meanwhile (1 s, then 2 s...): at least two hellos */
    uint8_t b[2048];
    int hellos = 0;
    while (recv(fd, b, sizeof(b), MSG_DONTWAIT) > 0)
        hellos += b[0] == 22 && b[13] == 1;
    cr_assert_geq(hellos, 2, "%d ClientHellos", hellos);
    close(fd);
}

Test(dtls_faults, invalid_address)
{
    enable(true);
    client_fails("not-an-address:5000", SOCKET_ADDRESS_INVALID, 2000);
    client_fails("127.0.0.1", SOCKET_ADDRESS_INVALID, 2000);
    client_fails("300.1.2.3:5", SOCKET_ADDRESS_INVALID, 2000);
}

/* ---- Delete during the handshake ----------------------------------------------------------------
 */

static ISocket *grabbed; /* the accepted socket, taken in SocketListenResult (internals) */

static void grab_accepted(struct h_sock *hs, const struct h_event *e)
{
    if (e->kind == H_LISTEN_RESULT && !grabbed) {
        struct rs_dtls *ld = (struct rs_dtls *)hs->sock;
        cr_assert_not_null(ld->accepted);
        grabbed = &ld->accepted->core.base;
    }
}

static bool got_grabbed(struct h_env *e, void *arg)
{
    (void)e;
    (void)arg;
    return grabbed != NULL;
}

Test(dtls_faults, delete_accepted_socket_during_handshake)
{
    enable(true);
    env.mux->settings.dtls_handshake_timeout_ms = 1500;
    grabbed = NULL;
    struct h_sock *l = h_sock_new(&env);
    l->on_event = grab_accepted;
    l->delete_on_shutdown = true;
    uint16_t port = dtls_listen(l);
    struct h_sock *c = h_sock_new(&env);
    dtls_client(c, port);
    cr_assert(h_run_until(&env, got_grabbed, NULL, 3000), "%s\n%s", h_dump(l), h_logs(&env));
    struct h_sock *a = l->accepted[0];
    cr_assert_eq(a->nev, 0);
    CALL(ISocket_Delete(grabbed)); /* the server's flight is out; the client's is coming */
    /* the client retransmits its hello with the cookie: a new peer, a new association */
    h_run_for(&env, 2500);
    cr_assert_eq(a->nev, 0, "a deleted socket got %s", h_dump(a));
    cr_assert_eq(c->nev, 1, "%s", h_dump(c));
    if (h_count(c, H_CONNECT_COMPLETE) == 1) {
        cr_assert_geq(l->naccepted, 2, "%s", h_dump(l));
        cr_log_info("client connected to a second association after the first was deleted");
    } else {
        cr_assert_eq(h_last(c, H_SHUTDOWN)->reason, SOCKET_TLS_HANDSHAKE_FAILED);
    }
    h_sock_free(c);
    h_sock_free(l);
}

Test(dtls_faults, delete_client_during_handshake)
{
    enable(false);
    env.mux->settings.dtls_handshake_timeout_ms = 1000;
    struct h_sock *l = h_sock_new(&env);
    l->delete_on_shutdown = true; /* and so the sockets it accepts */
    uint16_t port = dtls_listen(l);
    struct h_sock *c = h_sock_new(&env);
    dtls_client(c, port);
    static const char early[] = "sent before the handshake";
    CALL(ISocket_Send(c->sock, early, sizeof(early))); /* held: freed with the socket */
    struct wait_n w = {l, H_LISTEN_RESULT, 1};
    cr_assert(h_run_until(&env, has_n, &w, 3000), "%s\n%s", h_dump(l), h_logs(&env));
    cr_assert_eq(c->nev, 0);
    CALL(ISocket_Delete(c->sock));
    c->sock = NULL;
    h_run_for(&env, 1500); /* the server's association gives up on its own */
    cr_assert_eq(c->nev, 0, "%s", h_dump(c));
    /* the association that never completed ends with the handshake failure */
    struct h_sock *a = l->accepted[0];
    cr_assert_eq(a->nev, 1, "%s", h_dump(a));
    cr_assert_eq(h_last(a, H_SHUTDOWN)->reason, SOCKET_TLS_HANDSHAKE_FAILED);
    cr_assert_eq(associations(l), 0, "the failed association stayed in the table");
    h_sock_free(c);
    h_sock_free(l);
}

/* An association accepted (Accept(user)) whose handshake has not completed is the engine's:
 * IIoMux_Delete frees it, its wolfSSL session, its timer and the port it keeps alive (the
 * application deleted the client and the bound socket). A loop of its own, so that the
 * descriptors can be counted after it is gone. */
Test(dtls_faults, iomux_delete_frees_association_in_handshake)
{
    for (int srtp = 0; srtp < 2; srtp++) {
        enable(srtp);
        int fds0 = h_count_fds();
        static struct h_env own;
        h_env_init(&own);
        struct h_sock *l = h_sock_new(&own);
        uint16_t port = h_listen_on(&own, udp, sctx, l, "127.0.0.1");
        struct h_sock *c = h_sock_new(&own);
        h_connect_on(&own, udp, cctx, c, port, NULL);
        struct wait_n w = {l, H_LISTEN_RESULT, 1};
        cr_assert(h_run_until(&own, has_n, &w, 3000), "%s\n%s", h_dump(l), h_logs(&own));
        cr_assert_eq(l->naccepted, 1);
        cr_assert_eq(l->accepted[0]->nev, 0, "%s", h_dump(l->accepted[0]));
        h_sock_free(c);
        CALL(ISocket_Delete(l->sock));
        l->sock = NULL;
        cr_assert_eq(h_delete_accepted(l), 1);
        h_env_fini(&own);
        h_sock_free(l);
        cr_assert_eq(h_count_fds(), fds0, "descriptors left after IIoMux_Delete");
    }
}

/* ---- the bound socket -------------------------------------------------------------------------
 */

Test(dtls_faults, shutdown_listener_association_keeps_echoing)
{
    enable(true);
    env.mux->settings.dtls_handshake_timeout_ms = 1000;
    struct h_sock *l = h_sock_new(&env);
    l->echo = true;
    uint16_t port = dtls_listen(l);
    struct h_sock *c = h_sock_new(&env);
    dtls_client(c, port);
    struct h_sock *pair[2] = {c, l};
    cr_assert(h_run_until(&env, connected, pair, 5000), "%s\n%s", h_dump(c), h_logs(&env));
    CALL(ISocket_Shutdown(l->sock));
    cr_assert(h_wait_count(&env, l, H_SHUTDOWN, 1, 2000), "%s", h_dump(l));
    cr_assert_eq(h_last(l, H_SHUTDOWN)->reason, SOCKET_SHUTDOWN_NORMAL);
    static uint8_t out[400], in[400];
    for (uint16_t i = 0; i < 5; i++) {
        size_t n = rtp_packet(out, (uint16_t)(10 + i), 50u * i);
        CALL(ISocket_Recv(c->sock, in, sizeof(in), false));
        CALL(ISocket_Send(c->sock, out, n));
        cr_assert(h_wait_count(&env, c, H_RECV_RESULT, i + 1u, 3000), "%s\n%s", h_dump(c),
                  h_logs(&env));
        cr_assert_eq(h_last(c, H_RECV_RESULT)->len, n);
        cr_assert_arr_eq(in, out, n);
    }
    cr_assert(!h_has_shutdown(l->accepted[0]));
    /* nobody takes new peers any more */
    struct h_sock *late = h_sock_new(&env);
    dtls_client(late, port);
    cr_assert(h_wait_count(&env, late, H_SHUTDOWN, 1, 3000), "%s", h_dump(late));
    cr_assert_eq(h_last(late, H_SHUTDOWN)->reason, SOCKET_TLS_HANDSHAKE_FAILED);
    cr_assert_eq(l->naccepted, 1);
    h_sock_free(late);
    h_sock_free(c);
    h_sock_free(l);
}

Test(dtls_faults, rejected_peer_gets_no_association)
{
    enable(false);
    env.mux->settings.dtls_handshake_timeout_ms = 1500;
    struct h_sock *l = h_sock_new(&env);
    l->reject = true;
    uint16_t port = dtls_listen(l);
    struct h_sock *c = h_sock_new(&env);
    dtls_client(c, port);
    cr_assert(h_wait_count(&env, c, H_SHUTDOWN, 1, 4000), "%s\n%s", h_dump(c), h_logs(&env));
    cr_assert_eq(h_last(c, H_SHUTDOWN)->reason, SOCKET_TLS_HANDSHAKE_FAILED);
    cr_assert_geq(h_count(l, H_LISTEN_RESULT), 1, "%s", h_dump(l));
    cr_assert_eq(l->naccepted, 0);
    cr_assert_eq(associations(l), 0);
    cr_assert(!h_has_shutdown(l));
    /* the listener still accepts the next one */
    l->reject = false;
    l->echo = true;
    real_client_echoes(port, l, 3000);
    h_sock_free(c);
    h_sock_free(l);
}

/* ---- callback order -----------------------------------------------------------------------------
 */

static unsigned order_seq, listen_at, accept_at, connect_at, client_first;

static void stamp(struct h_sock *hs, const struct h_event *e)
{
    order_seq++;
    if (e->kind == H_LISTEN_RESULT && !listen_at) {
        listen_at = order_seq;
        hs->accepted[hs->naccepted - 1]->on_event = stamp;
    }
    if (e->kind == H_ACCEPT_COMPLETE && !accept_at)
        accept_at = order_seq;
    if (e->kind == H_CONNECT_COMPLETE && !connect_at)
        connect_at = order_seq;
}

static void stamp_client(struct h_sock *hs, const struct h_event *e)
{
    if (hs->nev == 1)
        client_first = e->kind;
    stamp(hs, e);
}

Test(dtls_faults, callback_order)
{
    enable(true);
    order_seq = listen_at = accept_at = connect_at = 0;
    client_first = 99;
    struct h_sock *l = h_sock_new(&env);
    l->on_event = stamp;
    uint16_t port = dtls_listen(l);
    struct h_sock *c = h_sock_new(&env);
    c->on_event = stamp_client;
    dtls_client(c, port);
    uint8_t pkt[100];
    size_t n = rtp_packet(pkt, 1, 40);
    CALL(ISocket_Send(c->sock, pkt, n)); /* before the handshake: its result comes after */
    struct h_sock *pair[2] = {c, l};
    cr_assert(h_run_until(&env, connected, pair, 5000), "%s\n%s", h_dump(c), h_logs(&env));
    cr_assert(h_wait_count(&env, c, H_SEND_RESULT, 1, 2000), "%s", h_dump(c));
    cr_assert_eq(client_first, H_CONNECT_COMPLETE, "%s", h_dump(c));
    cr_assert(listen_at > 0 && accept_at > listen_at, "ListenResult %u, AcceptComplete %u",
              listen_at, accept_at);
    struct h_sock *a = l->accepted[0];
    cr_assert_eq(a->ev[0].kind, H_ACCEPT_COMPLETE, "%s", h_dump(a));
    cr_assert_eq(l->ev[0].kind, H_BIND_RESULT, "%s", h_dump(l));
    cr_assert_eq(l->ev[1].kind, H_LISTEN_RESULT, "%s", h_dump(l));
    cr_assert_eq(h_count(l, H_LISTEN_RESULT), 1);
    h_sock_free(c);
    h_sock_free(l);
}

/* ---- 20 % loss each way: every handshake completes (no netem needed) ---------------------- */

Test(dtls_faults, handshakes_complete_with_20_percent_loss_each_way, .timeout = 300)
{
    enable(true);
    struct h_sock *l = h_sock_new(&env);
    l->echo = true;
    uint16_t port = dtls_listen(l);
    cr_assert(h_wait_count(&env, l, H_BIND_RESULT, 1, 2000));
    size_t lost = 0, total = 0;
    for (unsigned i = 0; i < 8; i++) {
        struct relay r = {.drop_pct = 20, .rng = 0x5eed0000u + i};
        uint16_t front_port;
        r.front = raw_udp(&front_port);
        r.back = raw_udp(NULL);
        struct sockaddr_in sa = {.sin_family = AF_INET,
                                 .sin_port = htons(port),
                                 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        cr_assert_eq(connect(r.back, (struct sockaddr *)&sa, sizeof(sa)), 0);
        struct h_sock *c = h_sock_new(&env);
        dtls_client(c, front_port);
        struct h_sock *pair[2] = {c, l};
        /* within the default 30 s handshake timeout */
        cr_assert(relay_run(&r, connected, pair, 35000), "handshake %u: %s\n%s", i, h_dump(c),
                  h_logs(&env));
        cr_assert_eq(h_count(c, H_SHUTDOWN), 0, "handshake %u: %s", i, h_dump(c));
        cr_assert_not_null(ISocket_GetSRTPProfile(c->sock));
        lost += r.dropped;
        total += r.dropped + r.passed;
        h_sock_free(c);
        /* the accepted socket is done with too: start the next round with none */
        h_sock_free(l->accepted[0]);
        l->naccepted = 0;
        close(r.front);
        close(r.back);
    }
    cr_assert(lost > 0, "the relay lost nothing: the test tests nothing");
    cr_log_info("lost %zu of %zu datagrams", lost, total);
    h_sock_free(l);
}
