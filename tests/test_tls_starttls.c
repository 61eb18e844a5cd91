/* StartTLS: TCP connections upgraded on both sides (UpgradeToTLSSocket), exact bytes
 * before and after. Part of the test_tls executable (tls_env.h). */
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

/* ---- StartTLS ------------------------------------------------------------------------------ */

/* The harness's recording USocket, plus SocketUpgradeToTLSComplete. */
struct ext {
    size_t upgraded;
    bool recv_on_upgrade;
};

static USocketVtbl ext_vtbl;

static void ext_upgraded(USocket *u, ISocket *s)
{
    cr_assert_eq(h_in_api, 0, "SocketUpgradeToTLSComplete inside an API call");
    struct h_sock *hs = h_container_of(u, struct h_sock, user);
    struct ext *x = hs->ctx;
    cr_assert_eq(s, hs->sock);
    x->upgraded++;
    if (x->recv_on_upgrade)
        CALL(ISocket_Recv(s, hs->echo_buf, hs->echo_len, true));
}

static struct h_sock *ext_sock(struct ext *x)
{
    struct h_sock *hs = h_sock_new(&env);
    if (!ext_vtbl.SocketShutdown) {
        ext_vtbl = *hs->user.vtbl;
        ext_vtbl.SocketUpgradeToTLSComplete = ext_upgraded;
    }
    hs->user.vtbl = &ext_vtbl;
    hs->ctx = x;
    return hs;
}

struct starttls {
    ISocketProvider *up;
    struct h_sock *srv_tcp, *cli_tcp; /* the plain sockets */
    struct h_sock *srv, *cli;         /* the TLS sockets they became */
    struct ext xs, xc;
    char srv_in[9], cli_in[3];
};
static struct starttls st;

static void srv_tcp_event(struct h_sock *hs, const struct h_event *e)
{
    if (e->kind == H_ACCEPT_COMPLETE) {
        CALL(ISocket_Recv(hs->sock, st.srv_in, sizeof(st.srv_in), false));
    } else if (e->kind == H_RECV_RESULT) {
        cr_assert_eq(e->len, 9);
        cr_assert_arr_eq(st.srv_in, "STARTTLS\n", 9);
        CALL(ISocket_Send(hs->sock, "OK\n", 3));
    } else if (e->kind == H_SEND_RESULT) {
        /* "OK" is out: the server side upgrades and waits for the ClientHello. */
        ISocket *tcp = hs->sock;
        hs->sock = NULL; /* the TLS socket owns it now */
        CALL(st.srv->sock = ISocketProvider_UpgradeToTLSSocket(st.up, tcp, env.mux, &st.srv->user,
                                                               env.log, true, sctx));
        cr_assert_not_null(st.srv->sock);
        /* A receive before the handshake is done is fine. */
        CALL(ISocket_Recv(st.srv->sock, st.srv->echo_buf, st.srv->echo_len, true));
    }
}

static void cli_tcp_event(struct h_sock *hs, const struct h_event *e)
{
    if (e->kind == H_CONNECT_COMPLETE) {
        CALL(ISocket_Send(hs->sock, "STARTTLS\n", 9));
        CALL(ISocket_Recv(hs->sock, st.cli_in, sizeof(st.cli_in), false));
    } else if (e->kind == H_RECV_RESULT) {
        cr_assert_eq(e->len, 3);
        cr_assert_arr_eq(st.cli_in, "OK\n", 3);
        cr_assert_eq(h_count(hs, H_SEND_RESULT), 1, "%s", h_dump(hs));
        ISocket *tcp = hs->sock;
        hs->sock = NULL;
        CALL(st.cli->sock = ISocketProvider_UpgradeToTLSSocket(st.up, tcp, env.mux, &st.cli->user,
                                                               env.log, false, cctx));
        cr_assert_not_null(st.cli->sock);
    }
}

static bool both_upgraded(struct h_env *e, void *arg)
{
    (void)e;
    (void)arg;
    return st.xs.upgraded && st.xc.upgraded;
}

static bool both_collected(struct h_env *e, void *arg)
{
    (void)e;
    size_t n = *(size_t *)arg;
    return st.srv->data_len >= n && st.cli->data_len >= n;
}

Test(tls, starttls_upgrade_both_sides_exact_bytes)
{
    memset(&st, 0, sizeof(st));
    st.up = CreateTLSSocketProvider(NULL); /* upgrades only */
    struct h_sock *l = h_sock_new(&env);
    uint16_t port = h_listen(&env, l, "127.0.0.1"); /* plain TCP */
    st.srv = ext_sock(&st.xs);
    st.cli = ext_sock(&st.xc);
    st.srv->collect = st.srv->sink = true;
    st.cli->collect = st.cli->sink = true;
    st.xc.recv_on_upgrade = true;

    st.cli_tcp = h_sock_new(&env);
    st.cli_tcp->on_event = cli_tcp_event;
    h_tcp_socket(&env, st.cli_tcp, false);
    CALL(ISocket_Connect(st.cli_tcp->sock, h_addr(port), NULL));
    st.srv_tcp = h_wait_accepted(&env, l, 1, 3000);
    cr_assert_not_null(st.srv_tcp);
    /* Accept already ran its callback; hook in for what follows. */
    st.srv_tcp->on_event = srv_tcp_event;
    srv_tcp_event(st.srv_tcp, &(struct h_event){.kind = H_ACCEPT_COMPLETE});

    cr_assert(h_run_until(&env, both_upgraded, NULL, 4000), "server %zu, client %zu upgrades; %s",
              st.xs.upgraded, st.xc.upgraded, h_dump(st.cli));
    cr_assert_eq(st.xs.upgraded, 1);
    cr_assert_eq(st.xc.upgraded, 1);
    for (struct h_sock *const *p = (struct h_sock *const[]){st.srv, st.cli, NULL}; *p; p++) {
        cr_assert_eq(h_count(*p, H_CONNECT_COMPLETE), 0, "%s", h_dump(*p));
        cr_assert_eq(h_count(*p, H_ACCEPT_COMPLETE), 0, "%s", h_dump(*p));
        cr_assert_eq(h_count(*p, H_SHUTDOWN), 0, "%s", h_dump(*p));
        uint8_t fp[32];
        cr_assert(ISocket_GetPeerCertificateFingerprint((*p)->sock, fp) == (*p == st.cli),
                  "only the client sees a certificate");
    }
    size_t fpl = 0;
    const uint8_t *sfp = ISocketContext_GetCertificateFingerprint(sctx, &fpl);
    uint8_t cfp[32];
    cr_assert(ISocket_GetPeerCertificateFingerprint(st.cli->sock, cfp));
    cr_assert_eq(fpl, 32);
    cr_assert_arr_eq(cfp, sfp, 32);

    /* Exact bytes both ways over the upgraded connection. */
    const size_t n = 300000;
    uint8_t *a = malloc(n), *b = malloc(n);
    h_fill(a, n, 21);
    h_fill(b, n, 22);
    for (size_t off = 0; off < n; off += 10000) {
        CALL(ISocket_Send(st.cli->sock, a + off, 10000));
        CALL(ISocket_Send(st.srv->sock, b + off, 10000));
    }
    size_t want = n;
    cr_assert(h_run_until(&env, both_collected, &want, 4000), "server %zu, client %zu of %zu",
              st.srv->data_len, st.cli->data_len, n);
    cr_assert_eq(st.srv->data_len, n);
    cr_assert_eq(st.cli->data_len, n);
    cr_assert_arr_eq(st.srv->data, a, n);
    cr_assert_arr_eq(st.cli->data, b, n);
    cr_assert(h_wait_count(&env, st.cli, H_SEND_RESULT, n / 10000, 2000));
    cr_assert(h_wait_count(&env, st.srv, H_SEND_RESULT, n / 10000, 2000));
    /* test_tls_ktls: an upgraded TCP socket is offloaded like a connected one */
    unsigned offload = getenv("RINGSOCK_KTLS") && h_kernel_has_tls_ulp() ? KTLS_TX | KTLS_RX : 0;
    cr_assert_eq(ISocket_GetKernelTLS(st.srv->sock), offload);
    cr_assert_eq(ISocket_GetKernelTLS(st.cli->sock), offload);

    CALL(ISocket_Shutdown(st.srv->sock));
    cr_assert(h_wait_count(&env, st.srv, H_SHUTDOWN, 1, 3000), "%s", h_dump(st.srv));
    cr_assert_eq(h_last(st.srv, H_SHUTDOWN)->reason, SOCKET_SHUTDOWN_NORMAL);
    cr_assert(h_wait_count(&env, st.cli, H_SHUTDOWN, 1, 3000), "%s", h_dump(st.cli));
    cr_assert_eq(h_last(st.cli, H_SHUTDOWN)->reason, SOCKET_SHUTDOWN_BY_PEER);
    /* The plain sockets saw nothing after the upgrade. */
    cr_assert_eq(h_count(st.srv_tcp, H_SHUTDOWN), 0, "%s", h_dump(st.srv_tcp));
    cr_assert_eq(h_count(st.cli_tcp, H_SHUTDOWN), 0, "%s", h_dump(st.cli_tcp));
    free(a);
    free(b);
    h_sock_free(st.srv);
    h_sock_free(st.cli);
    h_sock_free(st.cli_tcp);
    h_listener_free(&env, l);
    ISocketProvider_Delete(st.up);
}
