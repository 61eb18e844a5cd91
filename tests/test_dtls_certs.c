/* DTLS certificates: CA-signed server certificates verified by the client (chain, host
 * name, SetVerifyPeer), the generated certificates checked by fingerprint when nothing is
 * trusted, and client certificates the server requires, with and without SRTP.
 *
 * Every test makes its own PKI with the openssl command line (pki.h), plus a second CA
 * that signed nothing here ("other"). */
#include "dtls_env.h"
#include "pki.h"
#include "reactor.h" /* struct IIoMux: settings */

#include <stdlib.h>
#include <string.h>

static struct pki_pem ca, other, srv, cli, selfcli;

static void setup(void)
{
    pki_init();
    pki_run_sh("set -e\n"
               "openssl req -x509 -new -newkey " PKI_EC " -nodes -keyout other.key"
               " -out other.crt -days 30 -subj '/CN=another test CA'"
               " -addext basicConstraints=critical,CA:TRUE"
               " -addext keyUsage=critical,keyCertSign,cRLSign\n"
               "cp other.crt other.pem\n");
    pki_load(&ca, "ca");
    pki_load(&other, "other");
    pki_load(&srv, "srv");
    pki_load(&cli, "cli");
    pki_load(&selfcli, "selfcli");
    dtls_env_init();
}

static void teardown(void)
{
    dtls_env_fini();
    struct pki_pem *all[] = {&ca, &other, &srv, &cli, &selfcli};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
        pki_free(all[i]);
    pki_fini();
}

TestSuite(dtls_certs, .init = setup, .fini = teardown, .timeout = 60);

/* ---- helpers -------------------------------------------------------------------------------- */

/* A DTLS listener whose associations echo and are deleted when they end. */
static uint16_t listen_echo(struct h_sock *l)
{
    l->echo = true;
    /* Deleted in SocketShutdown: see accepted_failed_handshake_deleted_later_is_freed. */
    l->delete_on_shutdown = true;
    return dtls_listen(l);
}

static void client(struct h_sock *c, uint16_t port, const char *name)
{
    h_connect_on(&env, udp, cctx, c, port, name);
}

static bool client_settled(struct h_env *e, void *arg)
{
    (void)e;
    struct h_sock *c = arg;
    return h_count(c, H_CONNECT_COMPLETE) > 0 || h_has_shutdown(c);
}

/* Connects a client, waits for the handshake's outcome. Returns true if connected. */
static bool connect_client(struct h_sock *c, uint16_t port, const char *name)
{
    client(c, port, name);
    h_run_until(&env, client_settled, c, 8000);
    return h_count(c, H_CONNECT_COMPLETE) > 0;
}

/* An echo round trip on a connected client. */
static void assert_echo(struct h_sock *c, const char *msg)
{
    size_t n = strlen(msg) + 1;
    static char in[256];
    size_t before = h_count(c, H_RECV_RESULT);
    CALL(ISocket_Send(c->sock, msg, n));
    CALL(ISocket_Recv(c->sock, in, sizeof(in), false));
    cr_assert(h_wait_count(&env, c, H_RECV_RESULT, before + 1, 5000), "%s", h_dump(c));
    cr_assert_eq(h_last(c, H_RECV_RESULT)->len, n);
    cr_assert_str_eq(in, msg);
}

/* Every association the listener was handed has ended. */
static bool accepted_ended(struct h_env *e, void *arg)
{
    (void)e;
    struct h_sock *l = arg;
    for (size_t i = 0; i < l->naccepted; i++)
        if (!h_has_shutdown(l->accepted[i]))
            return false;
    return true;
}

/* The client's handshake fails, and the server accepts nothing: any association it was
 * handed ends without SocketAcceptComplete. */
static void assert_refused(struct h_sock *c, struct h_sock *l)
{
    cr_assert(h_wait_count(&env, c, H_SHUTDOWN, 1, 8000), "%s\n%s", h_dump(c), h_logs(&env));
    cr_assert_eq(h_count(c, H_CONNECT_COMPLETE), 0, "connected anyway: %s", h_dump(c));
    cr_assert_eq(h_last(c, H_SHUTDOWN)->reason, SOCKET_TLS_HANDSHAKE_FAILED, "%s", h_dump(c));
    cr_assert(h_run_until(&env, accepted_ended, l, 5000), "an association lives on: %s",
              l->naccepted ? h_dump(l->accepted[l->naccepted - 1]) : h_dump(l));
    for (size_t i = 0; i < l->naccepted; i++)
        cr_assert_eq(h_count(l->accepted[i], H_ACCEPT_COMPLETE), 0, "the server accepted it: %s",
                     h_dump(l->accepted[i]));
}

/* The server side of the n-th (1-based) association, accepted and complete. */
static struct h_sock *server_side(struct h_sock *l, size_t n)
{
    struct h_sock *s = h_wait_accepted(&env, l, n, 5000);
    cr_assert_not_null(s, "%s", h_dump(l));
    return s;
}

static void assert_same_srtp(struct h_sock *c, struct h_sock *s)
{
    const char *pc = ISocket_GetSRTPProfile(c->sock);
    const char *ps = ISocket_GetSRTPProfile(s->sock);
    cr_assert_not_null(pc);
    cr_assert_not_null(ps);
    cr_assert_str_eq(pc, ps);
    uint8_t kc[60], ks[60];
    cr_assert(ISocket_ExportKeyingMaterial(c->sock, "EXTRACTOR-dtls_srtp", NULL, 0, kc, 60));
    cr_assert(ISocket_ExportKeyingMaterial(s->sock, "EXTRACTOR-dtls_srtp", NULL, 0, ks, 60));
    cr_assert_arr_eq(kc, ks, 60);
}

/* ---- the server's certificate, verified by the client ------------------------------------ */

static void ca_signed_server_trusted(bool srtp)
{
    enable(srtp);
    ISocketContext_SetServerCertificate(sctx, srv.p, srv.len, "localhost");
    cr_assert_arr_eq(h_ctx_fp(sctx), srv.fp, 32);
    ISocketContext_SetTrustedCertificates(cctx, ca.p, ca.len);
    uint8_t cfp[32];
    memcpy(cfp, h_ctx_fp(cctx), 32); /* the client's generated certificate */
    struct h_sock *l = h_sock_new(&env);
    uint16_t port = listen_echo(l);

    struct h_sock *c = h_sock_new(&env);
    cr_assert(connect_client(c, port, "localhost"), "%s\n%s", h_dump(c), h_logs(&env));
    h_assert_peer_fp(c, srv.fp);
    struct h_sock *s = server_side(l, 1);
    h_assert_peer_fp(s, cfp); /* the server still asks for (and gets) the client's */
    if (srtp)
        assert_same_srtp(c, s);
    else
        assert_echo(c, "verified");

    /* Without a server name the address connected to is checked: srv has IP:127.0.0.1. */
    struct h_sock *c2 = h_sock_new(&env);
    cr_assert(connect_client(c2, port, NULL), "%s\n%s", h_dump(c2), h_logs(&env));
    h_assert_peer_fp(c2, srv.fp);
    h_sock_free(c);
    h_sock_free(c2);
    h_sock_free(l);
}

Test(dtls_certs, ca_signed_server_trusted_client_connects)
{
    ca_signed_server_trusted(false);
}

Test(dtls_certs, ca_signed_server_trusted_client_connects_srtp)
{
    ca_signed_server_trusted(true);
}

static void untrusted_ca(bool srtp)
{
    enable(srtp);
    ISocketContext_SetServerCertificate(sctx, srv.p, srv.len, "localhost");
    ISocketContext_SetTrustedCertificates(cctx, other.p, other.len);
    struct h_sock *l = h_sock_new(&env);
    uint16_t port = listen_echo(l);
    struct h_sock *c = h_sock_new(&env);
    client(c, port, "localhost");
    assert_refused(c, l);
    h_sock_free(c);
    h_sock_free(l);
}

Test(dtls_certs, client_trusting_another_ca_fails)
{
    untrusted_ca(false);
}

Test(dtls_certs, client_trusting_another_ca_fails_srtp)
{
    untrusted_ca(true);
}

Test(dtls_certs, wrong_server_name_fails)
{
    enable(false);
    ISocketContext_SetServerCertificate(sctx, srv.p, srv.len, "localhost");
    ISocketContext_SetTrustedCertificates(cctx, ca.p, ca.len);
    struct h_sock *l = h_sock_new(&env);
    uint16_t port = listen_echo(l);
    struct h_sock *c = h_sock_new(&env);
    client(c, port, "wrong.example");
    assert_refused(c, l);
    /* The same server is fine under its own name. */
    struct h_sock *c2 = h_sock_new(&env);
    cr_assert(connect_client(c2, port, "localhost"), "%s", h_dump(c2));
    h_assert_peer_fp(c2, srv.fp);
    h_sock_free(c);
    h_sock_free(c2);
    h_sock_free(l);
}

Test(dtls_certs, verify_peer_false_ignores_the_trust)
{
    enable(false);
    ISocketContext_SetServerCertificate(sctx, srv.p, srv.len, "localhost");
    ISocketContext_SetTrustedCertificates(cctx, other.p, other.len);
    ISocketContext_SetVerifyPeer(cctx, false);
    struct h_sock *l = h_sock_new(&env);
    uint16_t port = listen_echo(l);
    struct h_sock *c = h_sock_new(&env);
    cr_assert(connect_client(c, port, "localhost"), "%s\n%s", h_dump(c), h_logs(&env));
    h_assert_peer_fp(c, srv.fp);
    assert_echo(c, "unverified");
    /* nor is the name checked */
    struct h_sock *c2 = h_sock_new(&env);
    cr_assert(connect_client(c2, port, "wrong.example"), "%s", h_dump(c2));
    h_assert_peer_fp(c2, srv.fp);
    h_sock_free(c);
    h_sock_free(c2);
    h_sock_free(l);
}

/* ---- the server's identity: serverName, or the connected address (README "Verification") -- */

/* A client trusting the test CA connects to a server with certificate CERT (pki_conn_open);
 * true if its handshake succeeded. On failure the server accepts nothing (it got an alert:
 * its association ends at once), and the reason is logged under LOG_DTLS. */
static bool identity_ok(const char *cert, bool v6, const char *name)
{
    struct pki_conn pc;
    enable(false);
    pki_conn_open(&pc, &env, udp, sctx, cctx, cert, v6, name, LOG_DTLS);
    if (pc.ok) {
        h_assert_peer_fp(pc.c, pc.pem.fp);
        assert_echo(pc.c, cert);
    } else {
        assert_refused(pc.c, pc.l);
        cr_assert(h_log_contains(&env, "name mismatch"), "no reason logged: %s", h_logs(&env));
    }
    h_sock_free(pc.c);
    h_sock_free(pc.l);
    pki_free(&pc.pem);
    return pc.ok;
}

/* Issue 10: without serverName no name was checked at all. */
Test(dtls_certs, no_server_name_checks_connected_address)
{
    pki_name_certs();
    cr_assert_not(identity_ok("dns", false, NULL), "a certificate without IP SANs");
    cr_assert_not(identity_ok("dnsip", false, NULL), "an address as a DNS SAN is no IP SAN");
    cr_assert(identity_ok("ip4", false, NULL));
    cr_assert(identity_ok("ip6", true, NULL), "IPv6");
    cr_assert_not(identity_ok("ip4", true, NULL), "127.0.0.1 is not ::1");
}

/* Issue 10: an IP literal as serverName never matched an IP SAN. */
Test(dtls_certs, ip_literal_server_name_matches_ip_san)
{
    pki_name_certs();
    cr_assert(identity_ok("ip4", false, "127.0.0.1"));
    cr_assert(identity_ok("ip6", true, "::1"));
    cr_assert_not(identity_ok("dnsip", false, "127.0.0.1"), "a DNS SAN that reads 127.0.0.1");
    cr_assert_not(identity_ok("ip4", false, "localhost"), "an IP SAN for a DNS name");
    cr_assert(identity_ok("dns", false, "localhost"));
}

Test(dtls_certs, verify_peer_false_checks_no_name)
{
    pki_name_certs();
    ISocketContext_SetVerifyPeer(cctx, false);
    cr_assert(identity_ok("dns", false, NULL));
    cr_assert(identity_ok("ip4", true, "localhost"));
}

/* ---- nothing trusted: the generated certificates, checked by fingerprint ----------------- */

static void generated_fingerprints(bool srtp)
{
    enable(srtp);
    uint8_t sfp[32], cfp[32];
    memcpy(sfp, h_ctx_fp(sctx), 32);
    memcpy(cfp, h_ctx_fp(cctx), 32);
    cr_assert(memcmp(sfp, cfp, 32) != 0, "each context has its own certificate");
    struct h_sock *l = h_sock_new(&env);
    uint16_t port = listen_echo(l);
    struct h_sock *c = h_sock_new(&env);
    /* a server name changes nothing without trusted certificates */
    cr_assert(connect_client(c, port, "wrong.example"), "%s\n%s", h_dump(c), h_logs(&env));
    struct h_sock *s = server_side(l, 1);
    h_assert_peer_fp(c, sfp);
    h_assert_peer_fp(s, cfp);
    cr_assert_arr_eq(h_ctx_fp(sctx), sfp, 32, "the generated certificate stays");
    cr_assert_arr_eq(h_ctx_fp(cctx), cfp, 32, "the generated certificate stays");
    if (srtp)
        assert_same_srtp(c, s);
    else
        assert_echo(c, "by fingerprint");
    h_sock_free(c);
    h_sock_free(l);
}

Test(dtls_certs, default_generated_fingerprints_both_ways)
{
    generated_fingerprints(false);
}

Test(dtls_certs, default_generated_fingerprints_both_ways_srtp)
{
    generated_fingerprints(true);
}

/* One context for both roles (WebRTC: the DTLS role follows SDP's setup attribute): a
 * client without a client certificate presents the server certificate, the one whose
 * fingerprint the context announces. */
Test(dtls_certs, client_presents_the_certificate_its_context_announces)
{
    enable(false);
    ISocketContext_SetServerCertificate(cctx, srv.p, srv.len, "localhost");
    cr_assert_arr_eq(h_ctx_fp(cctx), srv.fp, 32);
    struct h_sock *l = h_sock_new(&env);
    uint16_t port = listen_echo(l);
    struct h_sock *c = h_sock_new(&env);
    cr_assert(connect_client(c, port, NULL), "%s\n%s", h_dump(c), h_logs(&env));
    h_assert_peer_fp(server_side(l, 1), srv.fp);
    assert_echo(c, "announced");
    h_sock_free(c);
    h_sock_free(l);
}

/* PEMs that cannot be used are refused when set (logged under DTLS, whatever the flags):
 * both ends keep their generated certificates and still find each other by fingerprint. */
Test(dtls_certs, unusable_certificates_keep_the_generated_ones)
{
    struct pki_unusable bad[PKI_UNUSABLE];
    pki_unusable(bad);
    enable(false);
    uint8_t sfp[32], cfp[32];
    memcpy(sfp, h_ctx_fp(sctx), 32);
    memcpy(cfp, h_ctx_fp(cctx), 32);
    for (int i = 0; i < PKI_UNUSABLE; i++) {
        ISocketContext_SetServerCertificate(sctx, bad[i].p, bad[i].len, "localhost");
        ISocketContext_SetClientCertificate(cctx, bad[i].p, bad[i].len, "client");
    }
    cr_assert(h_log_contains(&env, "dtls: ISocketContext_SetServerCertificate: unusable "
                                   "certificate: the private key does not belong"),
              "%s", h_logs(&env));
    cr_assert(h_log_contains(&env, "dtls: ISocketContext_SetClientCertificate: unusable "
                                   "certificate: the certificate chain"),
              "%s", h_logs(&env));
    cr_assert_arr_eq(h_ctx_fp(sctx), sfp, 32);
    cr_assert_arr_eq(h_ctx_fp(cctx), cfp, 32);
    generated_fingerprints(false); /* the handshake, each end seeing the other's */
    pki_unusable_free(bad);
}

/* ---- client certificates ----------------------------------------------------------------- */

static void requiring_server(bool srtp)
{
    enable(srtp);
    ISocketContext_SetServerCertificate(sctx, srv.p, srv.len, "localhost");
    ISocketContext_SetTrustedCertificates(sctx, ca.p, ca.len);
    ISocketContext_RequireClientCertificate(sctx, true);
    ISocketContext_SetTrustedCertificates(cctx, ca.p, ca.len);
}

static void ca_signed_client(bool srtp)
{
    requiring_server(srtp);
    ISocketContext_SetClientCertificate(cctx, cli.p, cli.len, "ringsock client");
    cr_assert_arr_eq(h_ctx_fp(cctx), cli.fp, 32, "a client context's own certificate");
    struct h_sock *l = h_sock_new(&env);
    uint16_t port = listen_echo(l);
    struct h_sock *c = h_sock_new(&env);
    cr_assert(connect_client(c, port, "localhost"), "%s\n%s", h_dump(c), h_logs(&env));
    h_assert_peer_fp(c, srv.fp);
    struct h_sock *s = server_side(l, 1);
    h_assert_peer_fp(s, cli.fp);
    if (srtp)
        assert_same_srtp(c, s);
    else
        assert_echo(c, "mutual");
    h_sock_free(c);
    h_sock_free(l);
}

Test(dtls_certs, required_client_certificate_signed_by_ca_passes)
{
    ca_signed_client(false);
}

Test(dtls_certs, required_client_certificate_signed_by_ca_passes_srtp)
{
    ca_signed_client(true);
}

Test(dtls_certs, required_client_certificate_disabled_fails)
{
    requiring_server(false);
    ISocketContext_SetClientCertificate(cctx, cli.p, cli.len, "ringsock client");
    struct h_sock *l = h_sock_new(&env);
    uint16_t port = listen_echo(l);
    struct h_sock *c1 = h_sock_new(&env);
    cr_assert(connect_client(c1, port, "localhost"), "with the certificate: %s", h_dump(c1));
    ISocketContext_DisableClientCertificate(cctx);
    /* The server sends no alert here (see refused_client_without_certificate_fails_promptly):
     * the client fails when its handshake times out, shortened for the test. */
    env.mux->settings.dtls_handshake_timeout_ms = 3000;
    struct h_sock *c2 = h_sock_new(&env);
    client(c2, port, "localhost");
    cr_assert(h_wait_count(&env, c2, H_SHUTDOWN, 1, 8000), "%s\n%s", h_dump(c2), h_logs(&env));
    cr_assert_eq(h_count(c2, H_CONNECT_COMPLETE), 0, "connected anyway: %s", h_dump(c2));
    cr_assert_eq(h_last(c2, H_SHUTDOWN)->reason, SOCKET_TLS_HANDSHAKE_FAILED, "%s", h_dump(c2));
    /* only the first association was ever complete */
    h_run_for(&env, 200);
    size_t complete = 0;
    for (size_t i = 0; i < l->naccepted; i++)
        complete += h_count(l->accepted[i], H_ACCEPT_COMPLETE);
    cr_assert_eq(complete, 1, "%s", h_dump(l));
    for (size_t i = 1; i < l->naccepted; i++)
        cr_assert(l->accepted[i]->deleted || h_has_shutdown(l->accepted[i]), "%s",
                  h_dump(l->accepted[i]));
    assert_echo(c1, "the association made before is unaffected");
    h_sock_free(c1);
    h_sock_free(c2);
    h_sock_free(l);
}

Test(dtls_certs, required_client_certificate_self_signed_fails)
{
    requiring_server(false);
    ISocketContext_SetClientCertificate(cctx, selfcli.p, selfcli.len, "rogue client");
    cr_assert_arr_eq(h_ctx_fp(cctx), selfcli.fp, 32);
    struct h_sock *l = h_sock_new(&env);
    uint16_t port = listen_echo(l);
    struct h_sock *c = h_sock_new(&env);
    client(c, port, "localhost");
    assert_refused(c, l);
    h_sock_free(c);
    h_sock_free(l);
}

/* wolfSSL refuses a client that sends no certificate ("peer did not return a certificate")
 * without an alert of its own; the client must still learn at once, not by its timeout. */
Test(dtls_certs, refused_client_without_certificate_fails_promptly)
{
    requiring_server(false);
    ISocketContext_DisableClientCertificate(cctx);
    struct h_sock *l = h_sock_new(&env);
    uint16_t port = listen_echo(l);
    struct h_sock *c = h_sock_new(&env);
    client(c, port, "localhost");
    cr_assert(h_wait_count(&env, c, H_SHUTDOWN, 1, 5000), "no alert: %s", h_dump(c));
    cr_assert_eq(h_last(c, H_SHUTDOWN)->reason, SOCKET_TLS_HANDSHAKE_FAILED, "%s", h_dump(c));
    h_sock_free(c);
    h_sock_free(l);
}

/* An accepted association whose handshake failed, deleted after its SocketShutdown
 * returned (rather than inside it), frees everything: the harness's leak check. */
Test(dtls_certs, accepted_failed_handshake_deleted_later_is_freed)
{
    enable(false);
    ISocketContext_SetServerCertificate(sctx, srv.p, srv.len, "localhost");
    ISocketContext_SetTrustedCertificates(cctx, other.p, other.len);
    struct h_sock *l = h_sock_new(&env);
    uint16_t port = dtls_listen(l); /* no delete_on_shutdown */
    struct h_sock *c = h_sock_new(&env);
    client(c, port, "localhost");
    assert_refused(c, l);
    cr_assert_geq(l->naccepted, 1);
    h_sock_free(c);
    h_sock_free(l); /* the listener and the failed association */
}

/* With trusted certificates a DTLS server still asks for the client's certificate (and
 * verifies it when one comes), so the accepted socket has its fingerprint. */
Test(dtls_certs, sent_client_certificate_verified_when_trusted)
{
    enable(false);
    ISocketContext_SetServerCertificate(sctx, srv.p, srv.len, "localhost");
    ISocketContext_SetTrustedCertificates(sctx, ca.p, ca.len);
    ISocketContext_SetTrustedCertificates(cctx, ca.p, ca.len);
    ISocketContext_SetClientCertificate(cctx, cli.p, cli.len, "ringsock client");
    struct h_sock *l = h_sock_new(&env);
    uint16_t port = listen_echo(l);
    struct h_sock *c = h_sock_new(&env);
    cr_assert(connect_client(c, port, "localhost"), "%s\n%s", h_dump(c), h_logs(&env));
    h_assert_peer_fp(server_side(l, 1), cli.fp);
    h_sock_free(c);
    h_sock_free(l);
}
