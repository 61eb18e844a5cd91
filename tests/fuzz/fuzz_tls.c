/* A ringsock TLS socket fed by a peer the input controls, over a local stream through the
 * loop. Built twice: fuzz_tls_server (ringsock accepts; FUZZ_TLS_CLIENT unset) and
 * fuzz_tls_client (ringsock connects).
 *
 * Input: a mode byte, the ringsock end's receive (size and partial) and how much it sends
 * once connected, then
 *   raw mode (mode bit 0 clear): the bytes the peer writes, then end of stream. The
 *     ClientHello (or ServerHello...) is the input's, as is ALPN scanning (mode bit 2: the
 *     ringsock end's context has a protocol list).
 *   handshake mode (bit 0 set): a wolfSSL peer (TLS 1.2 or 1.3, bit 1) first completes a
 *     real handshake, then the rest of the input is a list of what it does next: records
 *     of application data, raw bytes spliced into the stream, plaintext records, a key
 *     update, close_notify; then end of stream.
 *   StartTLS (mode bit 4): the ringsock end starts as a plain local socket and upgrades
 *     (ISocketProvider_UpgradeToTLSSocket) as soon as it is connected, whatever the peer
 *     sent before: bytes that arrived first must reach the TLS layer.
 * The ringsock end must end exactly once, with every receive buffer back, and leave no
 * leak; the sanitizers watch the rest. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>

#include "fuzz.h"

static const char *const alpn_list[] = {"h2", "http/1.1", NULL};

enum { MODE_HANDSHAKE = 1, MODE_TLS12 = 2, MODE_ALPN = 4, MODE_SHUTDOWN = 8, MODE_STARTTLS = 16 };

struct peer_run {
    struct fz_raw raw;
    struct fz_sock rs; /* the ringsock end (the server harness: its listener) */
    struct fz_in ops;
    WOLFSSL *ssl;
    bool hs_done, finished, closed_notify, upgraded;
    unsigned mode;
    ISocketContext *ctx;
    size_t rlen; /* the ringsock end's receive size (StartTLS: from the upgrade on) */
    size_t rs_send;
    size_t app_budget; /* application bytes the peer may still send */
};

static ISocketProvider *local, *tls;
static ISocketContext *ctx_plain, *ctx_alpn;
static WOLFSSL_CTX *peer_ctx[2]; /* [TLS 1.2 only] */
static uint8_t send_data[16384];

static void fail(const char *what)
{
    fprintf(stderr, "fuzz_tls: %s\n", what);
    abort();
}

static struct fz_sock *rs_end(struct peer_run *r)
{
#ifdef FUZZ_TLS_CLIENT
    return &r->rs;
#else
    return r->rs.child;
#endif
}

static void rs_connected(struct fz_sock *fs)
{
    struct peer_run *r = fs->ctx;
    if ((r->mode & MODE_STARTTLS) && !r->upgraded) {
        /* No Recv is out (rlen 0 until now): the upgrade takes the socket over. */
        r->upgraded = true;
#ifdef FUZZ_TLS_CLIENT
        bool server_side = false;
#else
        bool server_side = true;
#endif
        fs->sock = ISocketProvider_UpgradeToTLSSocket(tls, fs->sock, fs->loop->mux, &fs->user,
                                                      fz_log(), server_side, r->ctx);
        fs->connected = false;
        fs->rlen = r->rlen; /* the Recv starts at SocketUpgradeToTLSComplete */
        return;
    }
    if (r->rs_send) {
        fs->sends++;
        ISocket_Send(fs->sock, send_data, r->rs_send);
    }
    if (r->mode & MODE_SHUTDOWN)
        ISocket_Shutdown(fs->sock);
}

static void peer_finish(struct peer_run *r)
{
    r->finished = true;
    r->raw.eof = true; /* fz_raw_step shuts the write side down */
    r->raw.drain = true;
}

/* One thing the peer does after the handshake. */
static void peer_op(struct peer_run *r)
{
    const uint8_t *p;
    size_t n;
    switch (fz_u8(&r->ops) % 6) {
    case 0: /* application data */
        n = fz_u16(&r->ops) % sizeof(send_data) + 1;
        if (n > r->app_budget)
            n = r->app_budget;
        r->app_budget -= n;
        if (n && wolfSSL_write(r->ssl, send_data, (int)n) <= 0)
            peer_finish(r);
        break;
    case 1: /* bytes spliced into the record stream */
        n = fz_take(&r->ops, fz_u8(&r->ops), &p);
        if (send(r->raw.fd, p, n, MSG_NOSIGNAL) < 0)
            peer_finish(r);
        break;
    case 2: { /* a record the peer frames itself: type, version, then the input's body */
        uint8_t rec[5 + 255];
        rec[0] = fz_u8(&r->ops);
        rec[1] = 3;
        rec[2] = 3;
        n = fz_take(&r->ops, fz_u8(&r->ops), &p);
        rec[3] = 0;
        rec[4] = (uint8_t)n;
        memcpy(rec + 5, p, n);
        if (send(r->raw.fd, rec, 5 + n, MSG_NOSIGNAL) < 0)
            peer_finish(r);
        break;
    }
    case 3: /* TLS 1.3 key update (refused on 1.2) */
        wolfSSL_update_keys(r->ssl);
        break;
    case 4: /* close_notify */
        if (!r->closed_notify)
            wolfSSL_shutdown(r->ssl);
        r->closed_notify = true;
        break;
    case 5: { /* read what the ringsock end sent */
        uint8_t in[4096];
        wolfSSL_read(r->ssl, in, sizeof(in));
        break;
    }
    }
}

static bool step(void *arg)
{
    struct peer_run *r = arg;
    if (!(r->mode & MODE_HANDSHAKE) || r->finished) {
        fz_raw_step(&r->raw);
        return true;
    }
    if (r->raw.fd < 0 && !fz_raw_step(&r->raw))
        return true; /* not accepted yet */
    if (!r->ssl) {
        r->ssl = wolfSSL_new(peer_ctx[(r->mode & MODE_TLS12) != 0]);
        if (!r->ssl)
            fail("wolfSSL_new");
        wolfSSL_set_fd(r->ssl, r->raw.fd);
#ifndef FUZZ_TLS_CLIENT
        if (r->mode & MODE_ALPN) {
            char protos[] = "h2,spdy/1";
            wolfSSL_UseALPN(r->ssl, protos, sizeof(protos) - 1, WOLFSSL_ALPN_CONTINUE_ON_MISMATCH);
        }
#endif
    }
    if (!r->hs_done) {
#ifdef FUZZ_TLS_CLIENT
        int ret = wolfSSL_accept(r->ssl);
#else
        int ret = wolfSSL_connect(r->ssl);
#endif
        if (ret == WOLFSSL_SUCCESS) {
            r->hs_done = true;
        } else {
            int err = wolfSSL_get_error(r->ssl, ret);
            if (err != WOLFSSL_ERROR_WANT_READ && err != WOLFSSL_ERROR_WANT_WRITE)
                peer_finish(r);
        }
        return true;
    }
    /* Take in what the ringsock end sent, so its sends complete. */
    uint8_t in[4096];
    while (wolfSSL_read(r->ssl, in, sizeof(in)) > 0)
        ;
    if (r->ops.n == 0)
        peer_finish(r);
    else
        peer_op(r);
    return true;
}

static bool done(void *arg)
{
    struct fz_sock *fs = rs_end(arg);
    return fs && fs->ended;
}

static ISocketContext *new_ctx(bool server, bool alpn)
{
    ISocketContext *c = ISocketProvider_CreateSocketContext(tls, fz_log());
    if (server) {
        fz_set_server_identity(c);
    } else {
        ISocketContext_SetVerifyPeer(c, false);
    }
    if (alpn)
        ISocketContext_SetALPNProtocols(c, alpn_list);
    return c;
}

static void init(void)
{
    /* wolfSSL's own socket I/O (the peer's) sends without MSG_NOSIGNAL; ringsock's do. */
    signal(SIGPIPE, SIG_IGN);
    local = CreateLocalSocketProvider();
    tls = CreateTLSSocketProvider(local);
#ifdef FUZZ_TLS_CLIENT
    bool server = false;
#else
    bool server = true;
#endif
    ctx_plain = new_ctx(server, false);
    ctx_alpn = new_ctx(server, true);
    for (int i = 0; i < 2; i++) {
#ifdef FUZZ_TLS_CLIENT
        peer_ctx[i] = wolfSSL_CTX_new(i ? wolfTLSv1_2_server_method() : wolfSSLv23_server_method());
        if (!peer_ctx[i] ||
            wolfSSL_CTX_use_certificate_chain_buffer(peer_ctx[i], (const uint8_t *)fz_cert_pem,
                                                     strlen(fz_cert_pem)) != WOLFSSL_SUCCESS ||
            wolfSSL_CTX_use_PrivateKey_buffer(peer_ctx[i], (const uint8_t *)fz_key_pem,
                                              strlen(fz_key_pem),
                                              WOLFSSL_FILETYPE_PEM) != WOLFSSL_SUCCESS)
            fail("the peer's server context");
#else
        peer_ctx[i] = wolfSSL_CTX_new(i ? wolfTLSv1_2_client_method() : wolfSSLv23_client_method());
        if (!peer_ctx[i])
            fail("the peer's client context");
#endif
        wolfSSL_CTX_set_verify(peer_ctx[i], WOLFSSL_VERIFY_NONE, NULL);
    }
    for (size_t i = 0; i < sizeof(send_data); i++)
        send_data[i] = (uint8_t)(i * 7 + 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!tls)
        init();
    struct fz_in in = {data, size};
    struct peer_run r;
    memset(&r, 0, sizeof(r));
    r.mode = fz_u8(&in);
    uint8_t recv_sel = fz_u8(&in);
    r.rs_send = (size_t)fz_u8(&in) * 64 % sizeof(send_data);
    size_t rlen = 1 + (size_t)(recv_sel & 0x7f) * 32;
    /* Each receive of the ringsock end is a loop iteration: 140 KB through a one-byte
     * buffer took a second. A few hundred receives' worth covers the same code. */
    r.app_budget = rlen * 256 < 65536 ? rlen * 256 : 65536;

    struct fz_loop l;
    fz_loop_init(&l);
    bool starttls = r.mode & MODE_STARTTLS;
    r.rlen = rlen;
    fz_sock_init(&r.rs, &l, starttls ? 0 : rlen, recv_sel & 0x80);
    r.rs.on_connected = rs_connected;
    r.rs.ctx = &r;
    r.ctx = r.mode & MODE_ALPN ? ctx_alpn : ctx_plain;
    ISocketProvider *provider = starttls ? local : tls;
    ISocketContext *ctx = starttls ? NULL : r.ctx;
    const char *name = fz_local_name("tls");

#ifdef FUZZ_TLS_CLIENT
    if (!fz_raw_listen(&r.raw, name))
        fail("listen");
    fz_sock_create(&r.rs, provider, ctx);
    ISocket_Connect(r.rs.sock, name, "fuzz.ringsock.test");
#else
    fz_sock_create(&r.rs, provider, ctx);
    ISocket_Bind(r.rs.sock, name, 0);
    ISocket_Listen(r.rs.sock);
    if (!fz_raw_connect(&r.raw, name))
        fail("connect");
#endif
    if (r.mode & MODE_HANDSHAKE) {
        r.ops = in;
    } else {
        r.raw.out = in.p;
        r.raw.out_len = in.n;
        peer_finish(&r);
    }
    fz_run(&l, done, step, &r, 10000);

    struct fz_sock *end = rs_end(&r);
    if (getenv("RINGSOCK_FUZZ_VERBOSE")) /* what a seed reaches, for writing seeds */
        fprintf(stderr, "fuzz_tls: peer handshake %s, ringsock end %s, %s, %zu bytes in\n",
                r.hs_done ? "done" : "not done", end->connected ? "connected" : "not connected",
                SocketShutdownReasonToStr(end->reason), end->received);
    if (end->receiving)
        fail("the socket ended with its receive buffer out");
    if (end->send_results > end->sends)
        fail("more send results than sends");
    if (r.ssl)
        wolfSSL_free(r.ssl);
    fz_raw_close(&r.raw);
    fz_sock_free(&r.rs);
    fz_loop_fini(&l);
    return 0;
}
