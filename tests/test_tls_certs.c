/* TLS certificates, verification, client certificates and ALPN.
 *
 * Every test makes its own PKI with the openssl command line in a temporary directory:
 * a test CA (ECDSA P-256), server certificates for "localhost" signed by it (ECDSA
 * P-256, a second one, and RSA-2048 where a test asks for it), one for a wrong name, a
 * client certificate signed by the CA and a self-signed client certificate. They are
 * read into memory as the SDK wants them: PEM with the chain and then the key. */
#include "harness.h"
#include "pki.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static struct h_env env;
static ISocketProvider *tls;
static ISocketContext *sctx, *cctx;

static struct pki_pem ca, srv, srv2, wrong, cli, selfcli, rsa;

static void gen_rsa(void)
{
    pki_run_sh("set -e\n"
               "openssl req -new -newkey rsa:2048 -nodes -keyout rsa.key -out rsa.csr"
               " -subj /CN=localhost\n"
               "openssl x509 -req -in rsa.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out rsa.crt"
               " -days 30 -extfile srv.ext\n"
               "cat rsa.crt ca.crt rsa.key > rsa.pem\n");
    pki_load(&rsa, "rsa");
}

static void setup(void)
{
    pki_init();
    pki_load(&ca, "ca");
    pki_load(&srv, "srv");
    pki_load(&srv2, "srv2");
    pki_load(&wrong, "wrong");
    pki_load(&cli, "cli");
    pki_load(&selfcli, "selfcli");
    h_env_init(&env);
    tls = CreateTLSSocketProvider(env.tcp);
    sctx = ISocketProvider_CreateSocketContext(tls, env.log);
    cctx = ISocketProvider_CreateSocketContext(tls, env.log);
}

static void teardown(void)
{
    ISocketContext_Delete(sctx);
    ISocketContext_Delete(cctx);
    ISocketProvider_Delete(tls);
    struct pki_pem *all[] = {&ca, &srv, &srv2, &wrong, &cli, &selfcli, &rsa};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
        pki_free(all[i]);
    h_env_fini(&env);
    pki_fini();
}

TestSuite(tls_certs, .init = setup, .fini = teardown, .timeout = 30);

/* ---- helpers -------------------------------------------------------------------------------- */

/* A TLS listener whose connections echo, and are deleted when they end. */
static uint16_t tls_listen(struct h_sock *l)
{
    l->echo = true;
    l->delete_on_shutdown = true;
    return h_listen_on(&env, tls, sctx, l, "127.0.0.1");
}

static ISocket *tls_client(struct h_sock *c, uint16_t port, const char *name)
{
    return h_connect_on(&env, tls, cctx, c, port, name);
}

/* Connects a client, waits for the handshake's outcome. Returns true if connected. */
static bool connect_client(struct h_sock *c, uint16_t port, const char *name)
{
    tls_client(c, port, name);
    struct h_sock *hs = c;
    for (int i = 0; i < 300; i++) {
        if (h_count(hs, H_CONNECT_COMPLETE) || h_has_shutdown(hs))
            break;
        h_run_for(&env, 10);
    }
    return h_count(hs, H_CONNECT_COMPLETE) > 0;
}

/* An echo round trip on a connected client. */
static void assert_echo(struct h_sock *c, const char *msg)
{
    size_t n = strlen(msg) + 1;
    static char in[256];
    size_t before = h_count(c, H_RECV_RESULT);
    CALL(ISocket_Send(c->sock, msg, n));
    CALL(ISocket_Recv(c->sock, in, n, false));
    cr_assert(h_wait_count(&env, c, H_RECV_RESULT, before + 1, 3000), "%s", h_dump(c));
    cr_assert_str_eq(in, msg);
}

static void assert_handshake_failed(struct h_sock *c)
{
    cr_assert(h_wait_count(&env, c, H_SHUTDOWN, 1, 3000), "%s", h_dump(c));
    cr_assert_eq(h_count(c, H_CONNECT_COMPLETE), 0, "connected anyway: %s", h_dump(c));
    cr_assert_eq(h_last(c, H_SHUTDOWN)->reason, SOCKET_TLS_HANDSHAKE_FAILED, "%s", h_dump(c));
}

/* The server side of connection n (1-based) failed its handshake. */
static bool accepted_n(struct h_env *e, void *arg)
{
    struct h_sock *l = arg;
    return l->naccepted >= (size_t)(uintptr_t)l->ctx && h_listener_settled(e, arg);
}

static void assert_server_side_failed(struct h_sock *l, size_t n)
{
    l->ctx = (void *)(uintptr_t)n;
    cr_assert(h_run_until(&env, accepted_n, l, 3000), "%s", h_dump(l));
    cr_assert_geq(l->naccepted, n, "%s", h_dump(l));
    struct h_sock *ch = l->accepted[n - 1];
    cr_assert(h_has_shutdown(ch), "%s", h_dump(ch));
    cr_assert_eq(h_count(ch, H_ACCEPT_COMPLETE), 0, "the server accepted it: %s", h_dump(ch));
    cr_assert_eq(h_last(ch, H_SHUTDOWN)->reason, SOCKET_TLS_HANDSHAKE_FAILED, "%s", h_dump(ch));
}

/* ---- fingerprints ------------------------------------------------------------------------- */

/* openssl s_client against the server, fingerprint of what it got; run while the loop
 * serves the connection. */
struct sclient {
    FILE *f;
    int fd;
    char out[65536];
    size_t n;
    bool eof;
};

/* Reads what the tool printed (past a full buffer: drops the rest, never mistakes a
 * zero-length read for the end); true once it closed its output. */
static bool sclient_done(struct h_env *e, void *arg)
{
    (void)e;
    struct sclient *s = arg;
    for (;;) {
        char spill[4096];
        size_t room = sizeof(s->out) - 1 - s->n;
        ssize_t r = room ? read(s->fd, s->out + s->n, room) : read(s->fd, spill, sizeof(spill));
        if (r > 0) {
            if (room) {
                s->n += (size_t)r;
                s->out[s->n] = '\0';
            }
            continue;
        }
        if (r == 0)
            s->eof = true;
        break;
    }
    return s->eof;
}

Test(tls_certs, generated_certificate_fingerprint)
{
    ISocketContext_SetVerifyPeer(cctx, false);
    uint8_t fp[32];
    memcpy(fp, h_ctx_fp(sctx), 32);
    cr_assert_arr_eq(h_ctx_fp(sctx), fp, 32, "the generated certificate stays");
    struct h_sock *l = h_sock_new(&env);
    uint16_t port = tls_listen(l);
    struct h_sock *c1 = h_sock_new(&env), *c2 = h_sock_new(&env);
    cr_assert(connect_client(c1, port, "localhost"), "%s", h_dump(c1));
    cr_assert(connect_client(c2, port, NULL), "%s", h_dump(c2));
    h_assert_peer_fp(c1, fp);
    h_assert_peer_fp(c2, fp);
    cr_assert_arr_eq(h_ctx_fp(sctx), fp, 32);

    /* And what OpenSSL sees. */
    static struct sclient s;
    char cmd[256];
    snprintf(cmd, sizeof(cmd),
             "timeout 5 openssl s_client -connect 127.0.0.1:%u -servername localhost "
             "</dev/null 2>/dev/null | openssl x509 -noout -fingerprint -sha256",
             port);
    s.f = popen(cmd, "r");
    cr_assert_not_null(s.f);
    s.fd = fileno(s.f);
    fcntl(s.fd, F_SETFL, fcntl(s.fd, F_GETFL) | O_NONBLOCK);
    cr_assert(h_run_until(&env, sclient_done, &s, 4000), "s_client: %s", s.out);
    pclose(s.f);
    uint8_t ofp[32];
    cr_assert(pki_parse_fingerprint(s.out, ofp), "openssl printed: %s", s.out);
    cr_assert_arr_eq(ofp, fp, 32, "openssl sees another certificate");
    h_sock_free(c1);
    h_sock_free(c2);
    h_listener_free(&env, l);
}

Test(tls_certs, set_server_certificate_fingerprint_matches_openssl)
{
    ISocketContext_SetServerCertificate(sctx, srv.p, srv.len, "localhost");
    cr_assert_arr_eq(h_ctx_fp(sctx), srv.fp, 32);
    ISocketContext_SetVerifyPeer(cctx, false);
    struct h_sock *l = h_sock_new(&env);
    uint16_t port = tls_listen(l);
    struct h_sock *c = h_sock_new(&env);
    cr_assert(connect_client(c, port, "localhost"), "%s", h_dump(c));
    h_assert_peer_fp(c, srv.fp);
    assert_echo(c, "ecdsa");
    uint8_t none[32];
    struct h_sock *ch = l->accepted[0];
    cr_assert_not(ISocket_GetPeerCertificateFingerprint(ch->sock, none),
                  "the client sent no certificate");
    h_sock_free(c);
    h_listener_free(&env, l);
}

Test(tls_certs, rsa_server_certificate_verified)
{
    gen_rsa();
    ISocketContext_SetServerCertificate(sctx, rsa.p, rsa.len, "localhost");
    cr_assert_arr_eq(h_ctx_fp(sctx), rsa.fp, 32);
    ISocketContext_SetTrustedCertificates(cctx, ca.p, ca.len);
    struct h_sock *l = h_sock_new(&env);
    uint16_t port = tls_listen(l);
    struct h_sock *c = h_sock_new(&env);
    cr_assert(connect_client(c, port, "localhost"), "%s", h_dump(c));
    h_assert_peer_fp(c, rsa.fp);
    assert_echo(c, "rsa");
    h_sock_free(c);
    h_listener_free(&env, l);
}

Test(tls_certs, new_certificate_applies_to_new_connections_only)
{
    ISocketContext_SetVerifyPeer(cctx, false);
    struct h_sock *l = h_sock_new(&env);
    uint16_t port = tls_listen(l);
    uint8_t gen_fp[32];
    memcpy(gen_fp, h_ctx_fp(sctx), 32);

    struct h_sock *c1 = h_sock_new(&env);
    cr_assert(connect_client(c1, port, "localhost"), "%s", h_dump(c1));
    h_assert_peer_fp(c1, gen_fp);

    ISocketContext_SetServerCertificate(sctx, srv.p, srv.len, "localhost");
    cr_assert_arr_eq(h_ctx_fp(sctx), srv.fp, 32);
    assert_echo(c1, "old connection, old certificate");
    struct h_sock *c2 = h_sock_new(&env);
    cr_assert(connect_client(c2, port, "localhost"), "%s", h_dump(c2));
    h_assert_peer_fp(c2, srv.fp);

    ISocketContext_SetServerCertificate(sctx, srv2.p, srv2.len, "localhost");
    cr_assert_arr_eq(h_ctx_fp(sctx), srv2.fp, 32);
    struct h_sock *c3 = h_sock_new(&env);
    cr_assert(connect_client(c3, port, "localhost"), "%s", h_dump(c3));
    h_assert_peer_fp(c3, srv2.fp);
    assert_echo(c1, "first still works");
    assert_echo(c2, "second still works");
    assert_echo(c3, "third works");
    h_assert_peer_fp(c1, gen_fp);
    h_assert_peer_fp(c2, srv.fp);
    h_sock_free(c1);
    h_sock_free(c2);
    h_sock_free(c3);
    h_listener_free(&env, l);
}

/* ---- server verification -------------------------------------------------------------------- */

Test(tls_certs, default_verification_rejects_self_signed_server)
{
    if (!getenv("RINGSOCK_LOG")) {
        /* Without LOG_TLS nothing about it is logged. */
        struct h_sock *l = h_sock_new(&env);
        uint16_t port = tls_listen(l);
        struct h_sock *c = h_sock_new(&env);
        tls_client(c, port, "localhost");
        assert_handshake_failed(c);
        cr_assert_not(h_log_contains(&env, "handshake failed"));
        assert_server_side_failed(l, 1);
        h_sock_free(c);
        h_listener_free(&env, l);
    }
    IInstanceLog_SetLogFlags(env.log, LOG_TLS);
    struct h_sock *l = h_sock_new(&env);
    uint16_t port = tls_listen(l);
    struct h_sock *c = h_sock_new(&env);
    tls_client(c, port, "localhost");
    assert_handshake_failed(c);
    cr_assert(h_log_contains(&env, "handshake failed"), "no reason logged under LOG_TLS");
    assert_server_side_failed(l, 1);
    h_sock_free(c);
    h_listener_free(&env, l);
}

Test(tls_certs, default_verification_rejects_untrusted_ca)
{
    IInstanceLog_SetLogFlags(env.log, LOG_TLS);
    ISocketContext_SetServerCertificate(sctx, srv.p, srv.len, "localhost");
    struct h_sock *l = h_sock_new(&env);
    uint16_t port = tls_listen(l);
    struct h_sock *c = h_sock_new(&env);
    tls_client(c, port, "localhost");
    assert_handshake_failed(c);
    cr_assert(h_log_contains(&env, "handshake failed"));
    assert_server_side_failed(l, 1);
    h_sock_free(c);
    h_listener_free(&env, l);
}

Test(tls_certs, trusted_ca_and_server_name_pass)
{
    ISocketContext_SetServerCertificate(sctx, srv.p, srv.len, "localhost");
    ISocketContext_SetTrustedCertificates(cctx, ca.p, ca.len);
    struct h_sock *l = h_sock_new(&env);
    uint16_t port = tls_listen(l);
    struct h_sock *c = h_sock_new(&env);
    cr_assert(connect_client(c, port, "localhost"), "%s", h_dump(c));
    h_assert_peer_fp(c, srv.fp);
    assert_echo(c, "verified");
    CALL(ISocket_Shutdown(c->sock));
    cr_assert(h_wait_count(&env, c, H_SHUTDOWN, 1, 3000));
    cr_assert_eq(h_last(c, H_SHUTDOWN)->reason, SOCKET_SHUTDOWN_NORMAL);
    h_sock_free(c);
    h_listener_free(&env, l);
}

Test(tls_certs, wrong_server_name_fails)
{
    IInstanceLog_SetLogFlags(env.log, LOG_TLS);
    ISocketContext_SetServerCertificate(sctx, srv.p, srv.len, "localhost");
    ISocketContext_SetTrustedCertificates(cctx, ca.p, ca.len);
    struct h_sock *l = h_sock_new(&env);
    uint16_t port = tls_listen(l);
    struct h_sock *c = h_sock_new(&env);
    tls_client(c, port, "wrong.example");
    assert_handshake_failed(c);
    cr_assert(h_log_contains(&env, "handshake failed"));
    assert_server_side_failed(l, 1);
    h_sock_free(c);
    h_listener_free(&env, l);
}

Test(tls_certs, certificate_for_another_name_fails)
{
    ISocketContext_SetServerCertificate(sctx, wrong.p, wrong.len, "wrong.example");
    ISocketContext_SetTrustedCertificates(cctx, ca.p, ca.len);
    struct h_sock *l = h_sock_new(&env);
    uint16_t port = tls_listen(l);
    struct h_sock *c = h_sock_new(&env);
    tls_client(c, port, "localhost");
    assert_handshake_failed(c);
    /* The same certificate is fine for its own name. */
    struct h_sock *c2 = h_sock_new(&env);
    cr_assert(connect_client(c2, port, "wrong.example"), "%s", h_dump(c2));
    h_assert_peer_fp(c2, wrong.fp);
    h_sock_free(c);
    h_sock_free(c2);
    h_listener_free(&env, l);
}

Test(tls_certs, verify_peer_false_accepts_any_certificate)
{
    ISocketContext_SetServerCertificate(sctx, wrong.p, wrong.len, "wrong.example");
    ISocketContext_SetVerifyPeer(cctx, false);
    struct h_sock *l = h_sock_new(&env);
    uint16_t port = tls_listen(l);
    struct h_sock *c = h_sock_new(&env);
    cr_assert(connect_client(c, port, "localhost"), "%s", h_dump(c));
    h_assert_peer_fp(c, wrong.fp);
    assert_echo(c, "unverified");
    /* And back on: the next connection is verified again (no trust: fails). */
    ISocketContext_SetVerifyPeer(cctx, true);
    struct h_sock *c2 = h_sock_new(&env);
    tls_client(c2, port, "localhost");
    assert_handshake_failed(c2);
    assert_echo(c, "the first one is unaffected");
    h_sock_free(c);
    h_sock_free(c2);
    h_listener_free(&env, l);
}

/* ---- the server's identity: serverName, or the connected address (README "Verification") -- */

/* A client trusting the test CA connects to a server with certificate CERT (pki_conn_open);
 * true if its handshake succeeded. On failure the server's side fails too, and the reason
 * is logged under LOG_TLS. */
static bool identity_ok(const char *cert, bool v6, const char *name)
{
    struct pki_conn pc;
    pki_conn_open(&pc, &env, tls, sctx, cctx, cert, v6, name, LOG_TLS);
    if (pc.ok) {
        h_assert_peer_fp(pc.c, pc.pem.fp);
        assert_echo(pc.c, cert);
    } else {
        assert_handshake_failed(pc.c);
        cr_assert(h_log_contains(&env, "name mismatch"), "no reason logged: %s", h_logs(&env));
        assert_server_side_failed(pc.l, 1);
    }
    h_sock_free(pc.c);
    h_listener_free(&env, pc.l);
    pki_free(&pc.pem);
    return pc.ok;
}

/* Issue 10: without serverName no name was checked at all, so any certificate from a
 * trusted CA was good for any address. Now the address connected to must be one of the
 * certificate's IP SANs. */
Test(tls_certs, no_server_name_checks_connected_address)
{
    pki_name_certs();
    cr_assert_not(identity_ok("dns", false, NULL), "a certificate without IP SANs");
    cr_assert_not(identity_ok("cnip", false, NULL), "an address in the CN is no IP SAN");
    cr_assert_not(identity_ok("dnsip", false, NULL), "an address as a DNS SAN is no IP SAN");
    cr_assert_not(identity_ok("ip6", false, NULL), "another address");
    cr_assert(identity_ok("ip4", false, NULL));
    cr_assert(identity_ok("srv", false, NULL));
    cr_assert(identity_ok("ip6", true, NULL), "IPv6");
    cr_assert_not(identity_ok("ip4", true, NULL), "127.0.0.1 is not ::1");
    cr_assert_not(identity_ok("srv", true, NULL));
}

/* Issue 10: an IP literal as serverName never matched an IP SAN. */
Test(tls_certs, ip_literal_server_name_matches_ip_san)
{
    pki_name_certs();
    cr_assert(identity_ok("ip4", false, "127.0.0.1"));
    cr_assert(identity_ok("srv", false, "127.0.0.1"));
    cr_assert(identity_ok("ip6", true, "::1"));
    cr_assert(identity_ok("ip6", false, "::1"), "the name counts, not the address");
    cr_assert_not(identity_ok("ip4", false, "::1"));
    cr_assert_not(identity_ok("ip6", true, "::2"));
}

/* An IP literal matches IP SANs only, a DNS name DNS SANs only (or, with no DNS SAN at
 * all, the subject CN). */
Test(tls_certs, names_match_their_own_kind_only)
{
    pki_name_certs();
    cr_assert_not(identity_ok("dnsip", false, "127.0.0.1"), "a DNS SAN that reads 127.0.0.1");
    cr_assert_not(identity_ok("cnip", false, "127.0.0.1"), "a CN that reads 127.0.0.1");
    cr_assert_not(identity_ok("ip4", false, "localhost"), "an IP SAN for a DNS name");
    cr_assert(identity_ok("dns", false, "LocalHost"), "DNS names ignore case");
    cr_assert(identity_ok("cnonly", false, "localhost"), "no SAN: the CN");
    cr_assert_not(identity_ok("wrong", false, "localhost"), "CN and DNS SAN wrong.example");
}

Test(tls_certs, wildcard_matches_one_label)
{
    pki_name_certs();
    cr_assert(identity_ok("wild", false, "a.test.example"));
    cr_assert(identity_ok("wild", false, "A-1.TEST.example"));
    cr_assert_not(identity_ok("wild", false, "test.example"));
    cr_assert_not(identity_ok("wild", false, "a.b.test.example"));
    cr_assert_not(identity_ok("wild", false, ".test.example"));
    cr_assert_not(identity_ok("wild", false, "a.test.example.org"));
}

static USocketVtbl upgrade_vtbl;

static void upgraded_cb(USocket *u, ISocket *s)
{
    (void)s;
    (*(size_t *)h_container_of(u, struct h_sock, user)->ctx)++;
}

static bool upgrade_settled(struct h_env *e, void *arg)
{
    (void)e;
    struct h_sock *c = arg;
    return *(size_t *)c->ctx > 0 || h_has_shutdown(c);
}

/* StartTLS as a client (UpgradeToTLSSocket has no serverName) to a server with certificate
 * CERT: the address the TCP socket connected to is checked. True if upgraded. */
static bool upgrade_ok(const char *cert)
{
    struct pki_pem pem;
    pki_load(&pem, cert);
    ISocketContext_SetServerCertificate(sctx, pem.p, pem.len, NULL);
    ISocketContext_SetTrustedCertificates(cctx, ca.p, ca.len);
    IInstanceLog_SetLogFlags(env.log, LOG_TLS);
    env.nlog = 0;
    struct h_sock *l = h_sock_new(&env);
    uint16_t port = tls_listen(l);
    struct h_sock *tcp = h_sock_new(&env);
    h_tcp_socket(&env, tcp, false);
    CALL(ISocket_Connect(tcp->sock, h_addr(port), NULL));
    cr_assert(h_wait_count(&env, tcp, H_CONNECT_COMPLETE, 1, 3000), "%s", h_dump(tcp));
    ISocketProvider *up = CreateTLSSocketProvider(NULL);
    size_t upgraded = 0;
    struct h_sock *c = h_sock_new(&env);
    if (!upgrade_vtbl.SocketShutdown) {
        upgrade_vtbl = *c->user.vtbl;
        upgrade_vtbl.SocketUpgradeToTLSComplete = upgraded_cb;
    }
    c->user.vtbl = &upgrade_vtbl;
    c->ctx = &upgraded;
    CALL(c->sock = ISocketProvider_UpgradeToTLSSocket(up, tcp->sock, env.mux, &c->user, env.log,
                                                      false, cctx));
    tcp->sock = NULL; /* the TLS socket owns it now */
    cr_assert(h_run_until(&env, upgrade_settled, c, 3000), "%s", h_dump(c));
    bool ok = upgraded > 0;
    if (!ok) {
        cr_assert_eq(h_last(c, H_SHUTDOWN)->reason, SOCKET_TLS_HANDSHAKE_FAILED, "%s", h_dump(c));
        cr_assert(h_log_contains(&env, "name mismatch"), "no reason logged: %s", h_logs(&env));
        assert_server_side_failed(l, 1);
    }
    h_sock_free(c);
    h_sock_free(tcp);
    h_listener_free(&env, l);
    ISocketProvider_Delete(up);
    pki_free(&pem);
    return ok;
}

Test(tls_certs, upgraded_client_checks_connected_address)
{
    pki_name_certs();
    cr_assert(upgrade_ok("ip4"));
    cr_assert_not(upgrade_ok("dns"));
}

Test(tls_certs, verify_peer_false_checks_no_name)
{
    pki_name_certs();
    ISocketContext_SetVerifyPeer(cctx, false);
    cr_assert(identity_ok("dns", false, NULL));
    cr_assert(identity_ok("ip4", false, "localhost"));
    cr_assert(identity_ok("dnsip", true, "127.0.0.1"));
}

/* ---- client certificates ---------------------------------------------------------------- */

static void requiring_server(void)
{
    ISocketContext_SetServerCertificate(sctx, srv.p, srv.len, "localhost");
    ISocketContext_SetTrustedCertificates(sctx, ca.p, ca.len);
    ISocketContext_RequireClientCertificate(sctx, true);
    ISocketContext_SetTrustedCertificates(cctx, ca.p, ca.len);
}

/* A client the server refuses. The server side fails its handshake. The client fails
 * its handshake too where it can tell (TLS 1.2); in TLS 1.3 the client finishes its side
 * of the handshake before the server has looked at its certificate, so it may have seen
 * SocketConnectComplete, but the end must then still say that something went wrong (the
 * server's alert: TLS_HANDSHAKE_FAILED or LOST), never look like a clean close. */
struct refusal {
    bool connected;
    shutdownreason_t reason;
    char dump[512];
};
static struct refusal refusal;

/* Waits for both ends; the client's outcome is checked by check_refusal, after the test
 * has freed its sockets (so a failure here does not also show up as leaks). */
static void await_refusal(struct h_sock *l, size_t n, struct h_sock *c)
{
    assert_server_side_failed(l, n);
    cr_assert(h_wait_count(&env, c, H_SHUTDOWN, 1, 3000), "%s", h_dump(c));
    refusal.connected = h_count(c, H_CONNECT_COMPLETE) > 0;
    refusal.reason = h_last(c, H_SHUTDOWN)->reason;
    snprintf(refusal.dump, sizeof(refusal.dump), "%s", h_dump(c));
}

static void check_refusal(void)
{
    shutdownreason_t r = refusal.reason;
    if (!refusal.connected)
        cr_assert_eq(r, SOCKET_TLS_HANDSHAKE_FAILED, "%s", refusal.dump);
    else
        cr_assert(r == SOCKET_TLS_HANDSHAKE_FAILED || r == SOCKET_LOST,
                  "the refused client sees a clean close: %s", refusal.dump);
}

/* A client of port with a receive outstanding (so it notices what comes), refused as
 * connection n of the listener (await_refusal). */
static struct h_sock *refused_client(struct h_sock *l, uint16_t port, size_t n)
{
    struct h_sock *c = h_sock_new(&env);
    tls_client(c, port, "localhost");
    static uint8_t b[64];
    CALL(ISocket_Recv(c->sock, b, sizeof(b), true));
    await_refusal(l, n, c);
    return c;
}

Test(tls_certs, required_client_certificate_missing_fails_both_ends)
{
    requiring_server();
    struct h_sock *l = h_sock_new(&env);
    uint16_t port = tls_listen(l);
    struct h_sock *c = refused_client(l, port, 1);
    h_sock_free(c);
    h_listener_free(&env, l);
    check_refusal();
}

Test(tls_certs, required_client_certificate_signed_by_ca_passes)
{
    requiring_server();
    ISocketContext_SetClientCertificate(cctx, cli.p, cli.len, "ringsock client");
    cr_assert_arr_eq(h_ctx_fp(cctx), cli.fp, 32, "a client context's own certificate");
    struct h_sock *l = h_sock_new(&env);
    uint16_t port = tls_listen(l);
    struct h_sock *c = h_sock_new(&env);
    cr_assert(connect_client(c, port, "localhost"), "%s", h_dump(c));
    assert_echo(c, "mutual");
    h_assert_peer_fp(c, srv.fp);
    struct h_sock *ch = h_wait_accepted(&env, l, 1, 3000);
    cr_assert_not_null(ch);
    h_assert_peer_fp(ch, cli.fp); /* the server side sees the client's certificate */
    h_sock_free(c);
    h_listener_free(&env, l);
}

Test(tls_certs, client_certificate_from_untrusted_issuer_fails)
{
    requiring_server();
    ISocketContext_SetClientCertificate(cctx, selfcli.p, selfcli.len, "rogue client");
    struct h_sock *l = h_sock_new(&env);
    uint16_t port = tls_listen(l);
    struct h_sock *c = refused_client(l, port, 1);
    h_sock_free(c);
    h_listener_free(&env, l);
    check_refusal();
}

Test(tls_certs, disable_client_certificate_sends_none)
{
    requiring_server();
    ISocketContext_SetClientCertificate(cctx, cli.p, cli.len, "ringsock client");
    struct h_sock *l = h_sock_new(&env);
    uint16_t port = tls_listen(l);
    struct h_sock *c1 = h_sock_new(&env);
    cr_assert(connect_client(c1, port, "localhost"), "with the certificate: %s", h_dump(c1));
    ISocketContext_DisableClientCertificate(cctx);
    struct h_sock *c2 = refused_client(l, port, 2);
    assert_echo(c1, "the connection made before is unaffected");
    h_sock_free(c1);
    h_sock_free(c2);
    h_listener_free(&env, l);
    check_refusal();
}

/* A server that does not ask gets no client certificate, even if the client has one. */
Test(tls_certs, client_certificate_not_requested)
{
    ISocketContext_SetServerCertificate(sctx, srv.p, srv.len, "localhost");
    ISocketContext_SetTrustedCertificates(cctx, ca.p, ca.len);
    ISocketContext_SetClientCertificate(cctx, cli.p, cli.len, NULL);
    struct h_sock *l = h_sock_new(&env);
    uint16_t port = tls_listen(l);
    struct h_sock *c = h_sock_new(&env);
    cr_assert(connect_client(c, port, "localhost"), "%s", h_dump(c));
    struct h_sock *ch = h_wait_accepted(&env, l, 1, 3000);
    uint8_t fp[32];
    cr_assert_not(ISocket_GetPeerCertificateFingerprint(ch->sock, fp));
    h_sock_free(c);
    h_listener_free(&env, l);
}

/* ---- unusable certificates ----------------------------------------------------------------- */

/* The bug: a PEM that cannot be used was taken silently; the first client's handshake
 * failed, and only that was logged (under LOG_TLS). Now SetServerCertificate says so at
 * once, as an error (the suite's log has no LOG_TLS), and the server keeps what it had:
 * here the generated certificate, which the next client gets. */
Test(tls_certs, unusable_certificate_reported_when_set_not_at_first_handshake)
{
    ISocketContext_SetVerifyPeer(cctx, false);
    uint8_t gen_fp[32];
    memcpy(gen_fp, h_ctx_fp(sctx), 32);
    static const char junk[] = "this is not PEM at all\n";
    ISocketContext_SetServerCertificate(sctx, (const uint8_t *)junk, sizeof(junk) - 1, NULL);
    cr_assert(h_log_contains(&env, "ISocketContext_SetServerCertificate: unusable certificate"),
              "not logged when set:\n%s", h_logs(&env));
    cr_assert_arr_eq(h_ctx_fp(sctx), gen_fp, 32, "the generated certificate stays");
    struct h_sock *l = h_sock_new(&env);
    uint16_t port = tls_listen(l);
    struct h_sock *c = h_sock_new(&env);
    cr_assert(connect_client(c, port, "localhost"), "%s\n%s", h_dump(c), h_logs(&env));
    h_assert_peer_fp(c, gen_fp);
    h_sock_free(c);
    h_listener_free(&env, l);
}

/* Each kind of unusable PEM is refused with its reason; the server keeps the certificate
 * set before, in what it presents and in its fingerprint. */
Test(tls_certs, unusable_server_certificate_keeps_the_previous_one)
{
    struct pki_unusable bad[PKI_UNUSABLE];
    pki_unusable(bad);
    ISocketContext_SetTrustedCertificates(cctx, ca.p, ca.len);
    ISocketContext_SetServerCertificate(sctx, srv.p, srv.len, "localhost");
    struct h_sock *l = h_sock_new(&env);
    uint16_t port = tls_listen(l);
    for (int i = 0; i < PKI_UNUSABLE; i++) {
        unsigned n0 = env.nlog;
        ISocketContext_SetServerCertificate(sctx, bad[i].p, bad[i].len, "other");
        cr_assert_gt(env.nlog, n0, "%s: nothing logged", bad[i].what);
        cr_assert(strstr(env.log_lines[(env.nlog - 1) % 64], "unusable certificate: the "),
                  "%s:\n%s", bad[i].what, h_logs(&env));
        cr_log_info("%s: %s", bad[i].what, env.log_lines[(env.nlog - 1) % 64]);
        cr_assert_arr_eq(h_ctx_fp(sctx), srv.fp, 32, "%s replaced the certificate", bad[i].what);
        struct h_sock *c = h_sock_new(&env);
        cr_assert(connect_client(c, port, "localhost"), "%s: %s\n%s", bad[i].what, h_dump(c),
                  h_logs(&env));
        h_assert_peer_fp(c, srv.fp);
        h_sock_free(c);
    }
    cr_assert(h_log_contains(&env, "the private key does not belong to the certificate"), "%s",
              h_logs(&env));
    h_listener_free(&env, l);
    pki_unusable_free(bad);
}

/* A client whose certificate cannot be used keeps the one it had, or sends none. */
Test(tls_certs, unusable_client_certificate_sends_none)
{
    struct pki_unusable bad[PKI_UNUSABLE];
    pki_unusable(bad);
    requiring_server();
    ISocketContext_SetClientCertificate(cctx, bad[3].p, bad[3].len, "ringsock client");
    cr_assert(h_log_contains(&env, "ISocketContext_SetClientCertificate: unusable certificate"),
              "%s", h_logs(&env));
    struct h_sock *l = h_sock_new(&env);
    uint16_t port = tls_listen(l);
    struct h_sock *c = refused_client(l, port, 1); /* none sent: the server refuses */
    ISocketContext_SetClientCertificate(cctx, cli.p, cli.len, "ringsock client");
    ISocketContext_SetClientCertificate(cctx, bad[0].p, bad[0].len, "ringsock client");
    cr_assert_arr_eq(h_ctx_fp(cctx), cli.fp, 32);
    struct h_sock *c2 = h_sock_new(&env);
    cr_assert(connect_client(c2, port, "localhost"), "%s\n%s", h_dump(c2), h_logs(&env));
    l->ctx = (void *)(uintptr_t)2;
    cr_assert(h_run_until(&env, accepted_n, l, 3000), "%s", h_dump(l));
    h_assert_peer_fp(l->accepted[1], cli.fp);
    h_sock_free(c);
    h_sock_free(c2);
    h_listener_free(&env, l);
    pki_unusable_free(bad);
    check_refusal();
}

/* A context made by the TCP provider has no TLS layer until a TLS socket uses it: a
 * certificate set before is checked then, and an unusable one dropped (logged). */
Test(tls_certs, unusable_certificate_on_a_plain_context_checked_when_tls_uses_it)
{
    ISocketContext *plain = ISocketProvider_CreateSocketContext(env.tcp, env.log);
    static const char junk[] = "this is not PEM at all\n";
    ISocketContext_SetServerCertificate(plain, (const uint8_t *)junk, sizeof(junk) - 1, NULL);
    ISocketContext_SetVerifyPeer(cctx, false);
    struct h_sock *l = h_sock_new(&env);
    uint16_t port = h_listen_on(&env, tls, plain, l, "127.0.0.1");
    cr_assert(h_log_contains(&env, "TLS context: unusable certificate"), "%s", h_logs(&env));
    struct h_sock *c = h_sock_new(&env);
    cr_assert(connect_client(c, port, "localhost"), "%s\n%s", h_dump(c), h_logs(&env));
    h_assert_peer_fp(c, h_ctx_fp(plain)); /* the generated one */
    h_sock_free(c);
    h_listener_free(&env, l);
    ISocketContext_Delete(plain);
}

/* ---- ALPN ------------------------------------------------------------------------------------ */

struct alpn_rec {
    size_t calls;
    bool null_arg;
    char proto[64];
    bool answer;
    bool before_connect;
};

static USocketVtbl alpn_vtbl;

static bool alpn_cb(USocket *u, ISocket *s, const char *protocol)
{
    cr_assert_eq(h_in_api, 0, "SocketAcceptSelectedALPNProtocol inside an API call");
    struct h_sock *hs = h_container_of(u, struct h_sock, user);
    cr_assert_eq(s, hs->sock);
    struct alpn_rec *r = hs->ctx;
    r->calls++;
    r->null_arg = protocol == NULL;
    snprintf(r->proto, sizeof(r->proto), "%s", protocol ? protocol : "");
    r->before_connect = h_count(hs, H_CONNECT_COMPLETE) == 0;
    return r->answer;
}

static struct h_sock *alpn_client(struct alpn_rec *r)
{
    struct h_sock *hs = h_sock_new(&env);
    if (!alpn_vtbl.SocketShutdown) {
        alpn_vtbl = *hs->user.vtbl;
        alpn_vtbl.SocketAcceptSelectedALPNProtocol = alpn_cb;
    }
    hs->user.vtbl = &alpn_vtbl;
    hs->ctx = r;
    return hs;
}

static void alpn_setup(const char *const *server, const char *const *client)
{
    ISocketContext_SetVerifyPeer(cctx, false);
    if (server)
        ISocketContext_SetALPNProtocols(sctx, server);
    if (client)
        ISocketContext_SetALPNProcotols(cctx, client); /* the SDK's spelling */
}

static const char *const h2_http11[] = {"h2", "http/1.1", NULL};
static const char *const http11_h2[] = {"http/1.1", "h2", NULL};

Test(tls_certs, alpn_server_preference)
{
    alpn_setup(h2_http11, http11_h2);
    struct h_sock *l = h_sock_new(&env);
    uint16_t port = tls_listen(l);
    struct alpn_rec r = {.answer = true};
    struct h_sock *c = alpn_client(&r);
    cr_assert(connect_client(c, port, "localhost"), "%s", h_dump(c));
    cr_assert_eq(r.calls, 1);
    cr_assert_str_eq(r.proto, "h2");
    cr_assert(r.before_connect, "asked before SocketConnectComplete");
    cr_assert_str_eq(ISocket_GetALPNProtocol(c->sock), "h2");
    struct h_sock *ch = h_wait_accepted(&env, l, 1, 3000);
    cr_assert_not_null(ch);
    cr_assert_not_null(ISocket_GetALPNProtocol(ch->sock));
    cr_assert_str_eq(ISocket_GetALPNProtocol(ch->sock), "h2");
    assert_echo(c, "h2");

    /* A client offering only the server's second choice gets it. */
    static const char *const only_http11[] = {"http/1.1", NULL};
    ISocketContext_SetALPNProtocols(cctx, only_http11);
    struct alpn_rec r2 = {.answer = true};
    struct h_sock *c2 = alpn_client(&r2);
    cr_assert(connect_client(c2, port, "localhost"), "%s", h_dump(c2));
    cr_assert_str_eq(ISocket_GetALPNProtocol(c2->sock), "http/1.1");
    cr_assert_str_eq(r2.proto, "http/1.1");
    ch = h_wait_accepted(&env, l, 2, 3000);
    cr_assert_str_eq(ISocket_GetALPNProtocol(ch->sock), "http/1.1");
    h_sock_free(c);
    h_sock_free(c2);
    h_listener_free(&env, l);
}

Test(tls_certs, alpn_refused_by_client)
{
    IInstanceLog_SetLogFlags(env.log, LOG_TLS);
    alpn_setup(h2_http11, http11_h2);
    struct h_sock *l = h_sock_new(&env);
    uint16_t port = tls_listen(l);
    struct alpn_rec r = {.answer = false};
    struct h_sock *c = alpn_client(&r);
    static uint8_t b[16];
    tls_client(c, port, "localhost");
    CALL(ISocket_Recv(c->sock, b, sizeof(b), true));
    CALL(ISocket_Send(c->sock, "never", 5));
    cr_assert(h_wait_count(&env, c, H_SHUTDOWN, 1, 3000), "%s", h_dump(c));
    cr_assert_eq(r.calls, 1);
    cr_assert_str_eq(r.proto, "h2");
    cr_assert_eq(h_count(c, H_CONNECT_COMPLETE), 0, "%s", h_dump(c));
    cr_assert_eq(h_last(c, H_SHUTDOWN)->reason, SOCKET_ALPN_SELECTION_FAILED, "%s", h_dump(c));
    cr_assert_eq(h_count(c, H_SEND_RESULT), 0, "%s", h_dump(c));
    cr_assert_eq(c->ev[c->nev - 2].kind, H_RECV_CANCELED, "%s", h_dump(c));
    cr_assert(h_log_contains(&env, "ALPN"), "the refusal is logged");
    h_run_for(&env, 20);
    cr_assert_eq(c->ev[c->nev - 1].kind, H_SHUTDOWN);
    h_sock_free(c);
    h_listener_free(&env, l);
}

Test(tls_certs, alpn_null_vtbl_entry_accepts)
{
    alpn_setup(h2_http11, http11_h2);
    struct h_sock *l = h_sock_new(&env);
    uint16_t port = tls_listen(l);
    struct h_sock *c = h_sock_new(&env); /* the harness's vtbl has no ALPN entry */
    cr_assert(connect_client(c, port, "localhost"), "%s", h_dump(c));
    cr_assert_str_eq(ISocket_GetALPNProtocol(c->sock), "h2");
    assert_echo(c, "default accepts");
    h_sock_free(c);
    h_listener_free(&env, l);
}

Test(tls_certs, alpn_no_overlap_no_protocol)
{
    static const char *const spdy[] = {"spdy/3.1", NULL};
    alpn_setup(h2_http11, spdy);
    struct h_sock *l = h_sock_new(&env);
    uint16_t port = tls_listen(l);
    struct alpn_rec r = {.answer = true};
    struct h_sock *c = alpn_client(&r);
    cr_assert(connect_client(c, port, "localhost"), "%s", h_dump(c));
    cr_assert_null(ISocket_GetALPNProtocol(c->sock));
    struct h_sock *ch = h_wait_accepted(&env, l, 1, 3000);
    cr_assert_null(ISocket_GetALPNProtocol(ch->sock));
    assert_echo(c, "no protocol, still works");
    /* The client is still asked, with "" for "none" (README). */
    cr_assert_eq(r.calls, 1);
    cr_assert_not(r.null_arg);
    cr_assert_str_eq(r.proto, "");
    h_sock_free(c);
    h_listener_free(&env, l);
}

Test(tls_certs, alpn_on_one_side_only)
{
    alpn_setup(h2_http11, NULL);
    struct h_sock *l = h_sock_new(&env);
    uint16_t port = tls_listen(l);
    struct h_sock *c = h_sock_new(&env);
    cr_assert(connect_client(c, port, "localhost"), "%s", h_dump(c));
    cr_assert_null(ISocket_GetALPNProtocol(c->sock));
    cr_assert_null(ISocket_GetALPNProtocol(h_wait_accepted(&env, l, 1, 3000)->sock));
    assert_echo(c, "server only");
    h_listener_free(&env, l);

    ISocketContext_SetALPNProtocols(sctx, NULL);
    ISocketContext_SetALPNProtocols(cctx, http11_h2);
    l = h_sock_new(&env);
    port = tls_listen(l);
    struct alpn_rec r = {.answer = true};
    struct h_sock *c2 = alpn_client(&r);
    cr_assert(connect_client(c2, port, "localhost"), "%s", h_dump(c2));
    cr_assert_null(ISocket_GetALPNProtocol(c2->sock));
    assert_echo(c2, "client only");
    h_sock_free(c);
    h_sock_free(c2);
    h_listener_free(&env, l);
}

/* ALPN lists that are long or hold names TLS cannot carry (README "ALPN"). */

/* A name of len bytes, distinct per tag: "<tag>-" padded with letters. */
static char *alpn_name(unsigned tag, size_t len)
{
    char *n = malloc(len + 1);
    cr_assert_not_null(n);
    int o = snprintf(n, len + 1, "%u-", tag);
    for (size_t i = (size_t)o; i < len; i++)
        n[i] = (char)('a' + i % 26);
    n[len] = '\0';
    return n;
}

/* count names of len bytes, then the extra ones, NULL-terminated. */
static char **alpn_names(size_t count, size_t len, const char *extra0, const char *extra1)
{
    char **v = calloc(count + 3, sizeof(char *));
    cr_assert_not_null(v);
    for (size_t i = 0; i < count; i++)
        v[i] = alpn_name((unsigned)i, len);
    v[count] = extra0 ? strdup(extra0) : NULL;
    v[count + 1] = extra0 && extra1 ? strdup(extra1) : NULL;
    return v;
}

static void alpn_names_free(char **v)
{
    for (char **p = v; *p; p++)
        free(*p);
    free(v);
}

/* Connects an ALPN client, checks what both ends agreed on (NULL: nothing). */
static void alpn_expect(const char *want, struct alpn_rec *r)
{
    struct h_sock *l = h_sock_new(&env);
    uint16_t port = tls_listen(l);
    struct h_sock *c = alpn_client(r);
    cr_assert(connect_client(c, port, "localhost"), "%s\n%s", h_dump(c), h_logs(&env));
    struct h_sock *ch = h_wait_accepted(&env, l, 1, 3000);
    cr_assert_not_null(ch);
    if (want) {
        cr_assert_str_eq(ISocket_GetALPNProtocol(c->sock), want);
        cr_assert_str_eq(ISocket_GetALPNProtocol(ch->sock), want);
    } else {
        cr_assert_null(ISocket_GetALPNProtocol(c->sock));
        cr_assert_null(ISocket_GetALPNProtocol(ch->sock));
    }
    assert_echo(c, "alpn");
    h_sock_free(c);
    h_listener_free(&env, l);
}

/* The bug: the client wrote its comma-joined list into a 512-byte stack buffer. 40 names
 * of 20 bytes (840 bytes) overflowed it (ASan: stack-buffer-overflow in start_ssl). */
Test(tls_certs, alpn_client_list_over_512_bytes_overflowed_the_stack)
{
    char **client = alpn_names(40, 20, NULL, NULL);
    const char *server[] = {"h2", client[37], NULL};
    alpn_setup(server, (const char *const *)client);
    struct alpn_rec r = {.answer = true};
    alpn_expect(client[37], &r);
    cr_assert_eq(r.calls, 1);
    cr_assert_str_eq(r.proto, client[37]);
    alpn_names_free(client);
}

/* An empty name is dropped (logged without LOG_TLS); the others are offered. */
Test(tls_certs, alpn_empty_name_dropped)
{
    const char *client[] = {"", "h2", NULL};
    alpn_setup(h2_http11, client);
    cr_assert(h_log_contains(&env, "empty"), "not logged:\n%s", h_logs(&env));
    struct alpn_rec r = {.answer = true};
    alpn_expect("h2", &r);
}

/* 255 bytes is the longest name TLS carries; 256 is dropped (logged), the rest offered. */
Test(tls_certs, alpn_256_byte_name_dropped)
{
    char **client = alpn_names(1, 256, "h2", NULL);
    alpn_setup(h2_http11, (const char *const *)client);
    cr_assert(h_log_contains(&env, "256 bytes"), "not logged:\n%s", h_logs(&env));
    struct alpn_rec r = {.answer = true};
    alpn_expect("h2", &r);
    alpn_names_free(client);

    char **longest = alpn_names(1, 255, NULL, NULL);
    const char *server[] = {longest[0], NULL};
    alpn_setup(server, (const char *const *)longest);
    struct alpn_rec r2 = {.answer = true};
    alpn_expect(longest[0], &r2);
    alpn_names_free(longest);
}

/* A list with no usable name is no list: nothing is offered, the client is not asked. */
Test(tls_certs, alpn_only_invalid_names_offers_none)
{
    char **client = alpn_names(1, 300, "", "a,b");
    alpn_setup(h2_http11, (const char *const *)client);
    cr_assert(h_log_contains(&env, "300 bytes"), "not logged:\n%s", h_logs(&env));
    cr_assert(h_log_contains(&env, "empty"), "not logged:\n%s", h_logs(&env));
    cr_assert(h_log_contains(&env, "comma"), "not logged:\n%s", h_logs(&env));
    struct alpn_rec r = {.answer = true};
    alpn_expect(NULL, &r);
    cr_assert_eq(r.calls, 0, "asked about a protocol it never offered");
    alpn_names_free(client);
}

/* RFC 7301 lets the names with their length bytes fill the extension (65533 bytes); 300
 * names of 255 bytes (76800) do not fit, nor one ClientHello record (README: 14336 bytes).
 * The names past the limit are dropped (logged); the first ones still work. */
Test(tls_certs, alpn_list_over_rfc_limit_truncated)
{
    char **client = alpn_names(300, 255, NULL, NULL);
    const char *server[] = {client[299], client[0], NULL};
    alpn_setup(server, (const char *const *)client);
    cr_assert(h_log_contains(&env, "names 56 to 299 dropped: the list would exceed 14336"),
              "not logged:\n%s", h_logs(&env));
    struct alpn_rec r = {.answer = true};
    alpn_expect(client[0], &r);
    alpn_names_free(client);
}

/* ---- alerts: a refused handshake tells the peer why (checked with OpenSSL's tools) ------ */

static void async_open(struct sclient *s, const char *cmd)
{
    memset(s, 0, sizeof(*s));
    s->f = popen(cmd, "r");
    cr_assert_not_null(s->f);
    s->fd = fileno(s->f);
    fcntl(s->fd, F_SETFL, fcntl(s->fd, F_GETFL) | O_NONBLOCK);
}

/* The lines of a tool's output that tell how the connection ended. */
static const char *error_lines(const char *out)
{
    static char buf[2][2048];
    static int which;
    char *b = buf[which++ & 1];
    size_t o = 0;
    b[0] = '\0';
    for (const char *p = out; *p && o < sizeof(buf[0]) - 256;) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        char line[512];
        snprintf(line, sizeof(line), "%.*s", (int)(len < 511 ? len : 511), p);
        if (strstr(line, "error") || strstr(line, "alert") || strstr(line, "closed"))
            o += (size_t)snprintf(b + o, sizeof(buf[0]) - o, "%s\n", line);
        p += len + (nl ? 1 : 0);
    }
    return b;
}

/* The server refuses a client without a certificate: OpenSSL's client must get an alert
 * (certificate_required in TLS 1.3, handshake_failure or similar in TLS 1.2), not just
 * the end of the TCP stream. */
Test(tls_certs, refused_client_gets_an_alert)
{
    requiring_server();
    struct h_sock *l = h_sock_new(&env);
    uint16_t port = tls_listen(l);
    bool alerted[2];
    static char outs[2][65536];
    for (int v = 2; v <= 3; v++) {
        static struct sclient s;
        char cmd[512];
        snprintf(cmd, sizeof(cmd),
                 /* -ign_eof: s_client waits for the server's answer */
                 "timeout 5 openssl s_client -tls1_%d -connect 127.0.0.1:%u"
                 " -CAfile '%s/ca.crt' -servername localhost -ign_eof </dev/null 2>&1",
                 v, port, pki_dir);
        async_open(&s, cmd);
        cr_assert(h_run_until(&env, sclient_done, &s, 6000), "s_client did not finish");
        pclose(s.f);
        assert_server_side_failed(l, (size_t)v - 1);
        alerted[v - 2] = strstr(s.out, "alert") != NULL;
        snprintf(outs[v - 2], sizeof(outs[0]), "%s", s.out);
    }
    h_listener_free(&env, l);
    cr_assert(alerted[0] && alerted[1],
              "no alert reached OpenSSL: TLS 1.2 %s, TLS 1.3 %s\n--- TLS 1.2:\n%s--- TLS 1.3:\n%s",
              alerted[0] ? "yes" : "no", alerted[1] ? "yes" : "no", error_lines(outs[0]),
              error_lines(outs[1]));
}

/* The client refuses the certificate NAME of OpenSSL's s_server, which must get an alert
 * (with ALERT in its text). */
static void assert_refusal_alerts_s_server(const char *name, const char *server_name,
                                           const char *alert)
{
    uint16_t port;
    int probe = h_raw_listen("127.0.0.1", &port);
    close(probe); /* a free port for s_server (a small race, fine on loopback) */
    static struct sclient s;
    char cmd[512];
    snprintf(cmd, sizeof(cmd),
             /* stdin stays open a while: at its end s_server stops reporting */
             "sleep 1 | timeout 5 openssl s_server -accept 127.0.0.1:%u -naccept 1"
             " -cert '%s/%s.crt' -key '%s/%s.key' 2>&1",
             port, pki_dir, name, pki_dir, name);
    async_open(&s, cmd);
    for (int i = 0; i < 300 && !strstr(s.out, "ACCEPT") && !s.eof; i++) {
        usleep(10000);
        sclient_done(&env, &s);
    }
    cr_assert(strstr(s.out, "ACCEPT"), "s_server did not start: %s", s.out);
    struct h_sock *c = h_sock_new(&env);
    tls_client(c, port, server_name);
    assert_handshake_failed(c);
    cr_assert(h_run_until(&env, sclient_done, &s, 6000), "s_server did not finish: %s", s.out);
    pclose(s.f);
    h_sock_free(c);
    cr_assert(strstr(s.out, alert), "no %s alert reached OpenSSL:\n%s", alert, s.out);
}

/* Default verification: the CA is unknown. */
Test(tls_certs, refusing_client_sends_an_alert)
{
    assert_refusal_alerts_s_server("srv", "localhost", "alert");
}

/* The chain is good, the name is not (no serverName, no IP SAN). */
Test(tls_certs, name_mismatch_sends_an_alert)
{
    pki_name_certs();
    ISocketContext_SetTrustedCertificates(cctx, ca.p, ca.len);
    assert_refusal_alerts_s_server("dns", NULL, "bad certificate");
}
