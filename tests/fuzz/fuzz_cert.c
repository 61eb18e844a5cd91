/* What applications put into a TLS context: PEM text for SetServerCertificate,
 * SetClientCertificate and SetTrustedCertificates, a host name, and ALPN lists; then,
 * as the input asks, the fingerprint, and a handshake between a ringsock TLS server and
 * client (over a local stream) that builds wolfSSL contexts from all of it and offers,
 * scans and picks the protocols.
 *
 * Input: a selector byte, a 2-byte PEM length and the PEM, a host name (NUL-ended), then
 * the ALPN names, NUL-separated. api.md: an unusable certificate or odd ALPN names are
 * logged and handled, never a crash; a fingerprint is 32 bytes; the handshake ends. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"

enum {
    SEL_CLIENT_CERT = 1, /* the PEM goes to SetClientCertificate (else SetServerCertificate) */
    SEL_TRUST = 2,       /* ... and SetTrustedCertificates */
    SEL_FINGERPRINT = 4,
    SEL_HANDSHAKE = 8,
    SEL_REQUIRE_CLIENT_CERT = 16,
    SEL_NO_ALPN_CLIENT = 32, /* the client offers no ALPN */
};

#define MAX_NAMES 300

static ISocketProvider *local, *tls;

static void fail(const char *what)
{
    fprintf(stderr, "fuzz_cert: %s\n", what);
    abort();
}

struct pair {
    struct fz_sock server, client;
};

static bool settled(void *arg)
{
    struct pair *p = arg;
    struct fz_sock *child = p->server.child;
    return (p->client.ended || p->client.connected) && child && (child->ended || child->connected);
}

static void handshake(ISocketContext *sctx, ISocketContext *cctx)
{
    struct fz_loop l;
    struct pair p;
    const char *name = fz_local_name("cert");
    fz_loop_init(&l);
    fz_sock_init(&p.server, &l, 0, false);
    fz_sock_init(&p.client, &l, 0, false);
    fz_sock_create(&p.server, tls, sctx);
    ISocket_Bind(p.server.sock, name, 0);
    ISocket_Listen(p.server.sock);
    fz_sock_create(&p.client, tls, cctx);
    ISocket_Connect(p.client.sock, name, "fuzz.ringsock.test");
    fz_run(&l, settled, NULL, &p, 10000);
    if (getenv("RINGSOCK_FUZZ_VERBOSE")) /* what a seed reaches, for writing seeds */
        fprintf(stderr, "fuzz_cert: client %s (%s), ALPN %s; server %s (%s)\n",
                p.client.connected ? "connected" : "not connected",
                SocketShutdownReasonToStr(p.client.reason),
                p.client.connected && ISocket_GetALPNProtocol(p.client.sock)
                    ? ISocket_GetALPNProtocol(p.client.sock)
                    : "none",
                !p.server.child             ? "without a connection"
                : p.server.child->connected ? "connected"
                                            : "not connected",
                p.server.child ? SocketShutdownReasonToStr(p.server.child->reason) : "-");
    /* Both ends up (a TLS 1.3 client is up before the server has refused its missing
     * certificate): they agree on the protocol. */
    struct fz_sock *child = p.server.child;
    if (p.client.connected && !p.client.ended && child && child->connected && !child->ended) {
        const char *a = ISocket_GetALPNProtocol(p.client.sock);
        const char *b = ISocket_GetALPNProtocol(child->sock);
        if ((a == NULL) != (b == NULL) || (a && strcmp(a, b) != 0))
            fail("the client and the server disagree on the protocol");
    }
    fz_sock_free(&p.client);
    fz_sock_free(&p.server);
    fz_loop_fini(&l);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!tls) {
        local = CreateLocalSocketProvider();
        tls = CreateTLSSocketProvider(local);
    }
    struct fz_in in = {data, size};
    uint8_t sel = fz_u8(&in);
    const uint8_t *pem;
    size_t pem_len = fz_take(&in, fz_u16(&in), &pem);
    char *host = fz_str(&in, 300);
    char *names[MAX_NAMES + 1];
    size_t n = 0;
    while (in.n && n < MAX_NAMES)
        names[n++] = fz_str(&in, 400);
    names[n] = NULL;

    ISocketContext *sctx = ISocketProvider_CreateSocketContext(tls, fz_log());
    ISocketContext *cctx = ISocketProvider_CreateSocketContext(tls, fz_log());
    ISocketContext *mine = sel & SEL_CLIENT_CERT ? cctx : sctx;
    if (sel & SEL_CLIENT_CERT)
        ISocketContext_SetClientCertificate(mine, pem, pem_len, *host ? host : NULL);
    else
        ISocketContext_SetServerCertificate(mine, pem, pem_len, *host ? host : NULL);
    if (sel & SEL_TRUST)
        ISocketContext_SetTrustedCertificates(sel & SEL_CLIENT_CERT ? sctx : cctx, pem, pem_len);
    else
        ISocketContext_SetVerifyPeer(cctx, false);
    ISocketContext_RequireClientCertificate(sctx, sel & SEL_REQUIRE_CLIENT_CERT);
    ISocketContext_SetALPNProtocols(sctx, (const char *const *)names);
    if (!(sel & SEL_NO_ALPN_CLIENT))
        ISocketContext_SetALPNProtocols(cctx, (const char *const *)names);

    if (sel & SEL_FINGERPRINT) {
        size_t fp_len = 99;
        const uint8_t *fp = ISocketContext_GetCertificateFingerprint(mine, &fp_len);
        if (!fp || fp_len != 32)
            fail("a context without a 32-byte fingerprint");
    }
    if (sel & SEL_HANDSHAKE)
        handshake(sctx, cctx);

    ISocketContext_Delete(sctx);
    ISocketContext_Delete(cctx);
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(host);
    return 0;
}
