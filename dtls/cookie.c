/* The stateless cookie exchange of a DTLS server (RFC 6347 4.2.1). A ClientHello from a
 * source with no association goes to a scratch wolfSSL session of its own: without a
 * valid cookie wolfSSL answers with a HelloVerifyRequest; with one, it calls back
 * (hello_good) and we stop it there. Either way the session goes: one kept across
 * datagrams keeps what they did to it (a forged record sequence number moved its replay
 * window, and every later ClientHello, from anyone, was dropped as a replay). Only a
 * valid cookie makes the port create state: the association's own session, which gets
 * the same secret and peer identity and so accepts the same ClientHello. Spoofed sources
 * never get past the first step. */
#include <string.h>
#include <sys/random.h>

#include "dtls.h"
#include "log_internal.h"
#include "tls_context.h"

/* What the cookie is bound to: address and port, with no padding bytes in between. */
static void peer_bytes(const struct rs_peer *peer, uint8_t out[18])
{
    memcpy(out, peer->addr.b, 16);
    out[16] = (uint8_t)(peer->port >> 8);
    out[17] = (uint8_t)peer->port;
}

static int cookie_io_recv(WOLFSSL *ssl, char *buf, int sz, void *ctx)
{
    (void)ssl;
    struct dtls_port *p = ctx;
    return rs_dgram_take(&p->cookie_in, buf, sz);
}

static int cookie_io_send(WOLFSSL *ssl, char *buf, int sz, void *ctx)
{
    (void)ssl;
    struct dtls_port *p = ctx;
    rs_port_send(p, &p->cookie_peer, buf, (size_t)sz, NULL, false);
    return sz;
}

static int hello_good(WOLFSSL *ssl, void *ctx)
{
    (void)ssl;
    struct dtls_port *p = ctx;
    p->cookie_good = true;
    return -1; /* stop: the association's own session takes it from here */
}

/* A DTLS handshake record in epoch 0 whose first message is a ClientHello. Anything
 * else from an unknown source is dropped without wolfSSL looking at it. */
static bool looks_like_client_hello(const uint8_t *d, size_t len)
{
    return len >= 13 + 12 && d[0] == 22 && d[1] == 0xfe && d[3] == 0 && d[4] == 0 && d[13] == 1;
}

static WOLFSSL *scratch_session(struct dtls_port *p)
{
    static const uint8_t zero[32];
    if (memcmp(p->cookie_secret, zero, sizeof(zero)) == 0 &&
        getrandom(p->cookie_secret, sizeof(p->cookie_secret), 0) != sizeof(p->cookie_secret)) {
        rs_log_error(p->log, LOG_DTLS, "dtls: no randomness for the cookie secret");
        return NULL;
    }
    WOLFSSL_CTX *x = rs_tls_context_get(p->ctx, true, true);
    WOLFSSL *ssl = x ? wolfSSL_new(x) : NULL;
    if (!ssl)
        return NULL;
    wolfSSL_SSLSetIORecv(ssl, cookie_io_recv);
    wolfSSL_SSLSetIOSend(ssl, cookie_io_send);
    wolfSSL_SetIOReadCtx(ssl, p);
    wolfSSL_SetIOWriteCtx(ssl, p);
    wolfSSL_dtls_set_using_nonblock(ssl, 1);
    wolfSSL_DTLS_SetCookieSecret(ssl, p->cookie_secret, sizeof(p->cookie_secret));
    wolfDTLS_SetChGoodCb(ssl, hello_good, p);
    return ssl;
}

bool rs_cookie_check(struct dtls_port *p, const struct rs_peer *from, const uint8_t *dgram,
                     size_t len)
{
    if (!looks_like_client_hello(dgram, len))
        return false;
    WOLFSSL *ssl = scratch_session(p);
    if (!ssl)
        return false;
    uint8_t id[18];
    peer_bytes(from, id);
    wolfSSL_dtls_set_peer(ssl, id, sizeof(id));
    p->cookie_peer = *from;
    p->cookie_in = (struct rs_dgram_in){dgram, len};
    p->cookie_good = false;
    int r = wolfSSL_accept(ssl);
    bool good = p->cookie_good;
    bool clean = !good && wolfSSL_get_error(ssl, r) == WOLFSSL_ERROR_WANT_READ;
    p->cookie_in.data = NULL;
    if (!good && !clean) {
        char a[64];
        IPaddr_ToString(&from->addr, a, sizeof(a));
        IInstanceLog_Log(p->log, LOG_DTLS, "dtls port %p: bad ClientHello from %s:%u (%d)",
                         (void *)p, a, from->port, wolfSSL_get_error(ssl, r));
    }
    wolfSSL_free(ssl);
    return good;
}

bool rs_cookie_prepare(struct dtls_port *p, WOLFSSL *ssl, const struct rs_peer *peer)
{
    uint8_t id[18];
    peer_bytes(peer, id);
    /* (SetCookieSecret returns 0 on success, unlike most of wolfSSL) */
    return wolfSSL_DTLS_SetCookieSecret(ssl, p->cookie_secret, sizeof(p->cookie_secret)) == 0 &&
           wolfSSL_dtls_set_peer(ssl, id, sizeof(id)) == WOLFSSL_SUCCESS;
}
