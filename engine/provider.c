/* Provider dispatch and the socket context: a holder of settings that the layers
 * above TCP and UDP (TLS, DTLS) read when they create a connection. */
#include <stdlib.h>
#include <string.h>

#include "log_internal.h"
#include "provider.h"
#include "reactor.h"

void rs_provider_init(ISocketProvider *p, const struct rs_provider_ops *ops)
{
    p->ops = ops;
    atomic_init(&p->refs, 1);
}

ISocketProvider *rs_provider_new(const struct rs_provider_ops *ops)
{
    ISocketProvider *p = malloc(sizeof(*p));
    if (p)
        rs_provider_init(p, ops);
    return p;
}

ISocketProvider *rs_provider_ref(ISocketProvider *p)
{
    if (p)
        atomic_fetch_add_explicit(&p->refs, 1, memory_order_relaxed);
    return p;
}

void rs_provider_free(ISocketProvider *p)
{
    free(p);
}

void ISocketProvider_Delete(ISocketProvider *p)
{
    if (p && atomic_fetch_sub_explicit(&p->refs, 1, memory_order_acq_rel) == 1)
        p->ops->destroy(p);
}

ISocket *ISocketProvider_CreateSocket(ISocketProvider *p, IIoMux *iomux, USocket *user,
                                      IInstanceLog *log, bool useIPv6, ISocketContext *ctx)
{
    return p->ops->create_socket(p, iomux, user, log, useIPv6, ctx);
}

ISocketContext *ISocketProvider_CreateSocketContext(ISocketProvider *p, IInstanceLog *log)
{
    ISocketContext *c = calloc(1, sizeof(*c));
    if (!c)
        rs_fatal("ISocketProvider_CreateSocketContext: out of memory");
    c->log = log;
    c->ktls = rs_env_switch("RINGSOCK_KTLS", "ISocketProvider_CreateSocketContext");
    if (p && p->ops->init_context)
        p->ops->init_context(c);
    return c;
}

static void free_alpn(ISocketContext *c)
{
    if (!c->alpn)
        return;
    for (char **a = c->alpn; *a; a++)
        free(*a);
    free(c->alpn);
    c->alpn = NULL;
}

void ISocketContext_Delete(ISocketContext *c)
{
    if (!c)
        return;
    if (c->layer_ops && c->layer_ops->free)
        c->layer_ops->free(c->layer);
    free(c->server_cert);
    free(c->client_cert);
    free(c->trusted);
    free(c->server_host);
    free(c->client_host);
    free_alpn(c);
    free(c);
}

static void set_blob(uint8_t **dst, size_t *dst_len, const uint8_t *src, size_t len)
{
    free(*dst);
    *dst = NULL;
    *dst_len = 0;
    if (!src || !len)
        return;
    *dst = malloc(len + 1); /* +1: PEM parsers like a terminating NUL */
    if (!*dst)
        rs_fatal("ISocketContext: out of memory");
    memcpy(*dst, src, len);
    (*dst)[len] = 0;
    *dst_len = len;
}

static void set_str(char **dst, const char *src)
{
    free(*dst);
    *dst = src ? strdup(src) : NULL;
    if (src && !*dst)
        rs_fatal("ISocketContext: out of memory");
}

bool rs_context_identity_usable(ISocketContext *c, const char *who, const uint8_t *pem, size_t len)
{
    const char *why = c->layer_ops && c->layer_ops->check_identity
                          ? c->layer_ops->check_identity(c, pem, len)
                          : NULL;
    if (why)
        rs_log_error(c->log, c->dtls ? LOG_DTLS : LOG_TLS, "%s: unusable certificate: %s", who,
                     why);
    return !why;
}

/* An unusable certificate changes nothing: the context keeps what it had (README). */
static void set_identity(ISocketContext *c, const char *fn, uint8_t **pem, size_t *pem_len,
                         char **host, const uint8_t *cert, size_t certLen, const char *hostName)
{
    uint8_t *copy = NULL; /* NUL-terminated for the check */
    size_t copy_len = 0;
    set_blob(&copy, &copy_len, cert, certLen);
    if (copy && !rs_context_identity_usable(c, fn, copy, copy_len)) {
        free(copy);
        return;
    }
    free(*pem);
    *pem = copy;
    *pem_len = copy_len;
    set_str(host, hostName);
    c->gen++;
}

void ISocketContext_SetServerCertificate(ISocketContext *c, const uint8_t *cert, size_t certLen,
                                         const char *hostName)
{
    set_identity(c, "ISocketContext_SetServerCertificate", &c->server_cert, &c->server_cert_len,
                 &c->server_host, cert, certLen, hostName);
}

void ISocketContext_SetClientCertificate(ISocketContext *c, const uint8_t *cert, size_t certLen,
                                         const char *hostName)
{
    set_identity(c, "ISocketContext_SetClientCertificate", &c->client_cert, &c->client_cert_len,
                 &c->client_host, cert, certLen, hostName);
}

const uint8_t *ISocketContext_GetCertificateFingerprint(ISocketContext *c, size_t *length)
{
    if (c->layer_ops && c->layer_ops->fingerprint)
        return c->layer_ops->fingerprint(c, length);
    /* A context no TLS or DTLS provider made or used has no certificate. */
    if (length)
        *length = 0;
    return NULL;
}

void ISocketContext_DisableClientCertificate(ISocketContext *c)
{
    c->client_cert_disabled = true;
    c->gen++;
}

void ISocketContext_SetTrustedCertificates(ISocketContext *c, const uint8_t *pem, size_t len)
{
    set_blob(&c->trusted, &c->trusted_len, pem, len);
    c->gen++;
}

void ISocketContext_SetVerifyPeer(ISocketContext *c, bool verify)
{
    c->verify_off = !verify;
    c->gen++;
}

void ISocketContext_EnableKernelTLS(ISocketContext *c, bool enable)
{
    c->ktls = enable;
}

void ISocketContext_RequireClientCertificate(ISocketContext *c, bool require)
{
    c->require_client_cert = require;
    c->gen++;
}

ISocket *ISocketProvider_UpgradeToTLSSocket(ISocketProvider *p, ISocket *from, IIoMux *iomux,
                                            USocket *user, IInstanceLog *log, bool initServerSide,
                                            ISocketContext *ctx)
{
    if (!p->ops->upgrade)
        rs_fatal("ISocketProvider_UpgradeToTLSSocket on a provider that is not TLS");
    return p->ops->upgrade(p, from, iomux, user, log, initServerSide, ctx);
}

/* What TLS can offer: names of 1-255 bytes (RFC 7301). The RFC lets the length-prefixed
 * list fill the extension (65533 bytes), but the whole ClientHello must fit one 16 KiB
 * record: wolfSSL neither splits it (peers refuse larger records) nor survives one over
 * 64 KiB (its 16-bit length wraps). wolfSSL takes the names joined by commas, at most 257. */
#define RS_ALPN_NAME_MAX  255
#define RS_ALPN_LIST_MAX  14336
#define RS_ALPN_NAMES_MAX 257

void ISocketContext_SetALPNProtocols(ISocketContext *c, const char *const *alpnList)
{
    static const char fn[] = "ISocketContext_SetALPNProtocols";
    free_alpn(c);
    c->gen++;
    if (!alpnList)
        return;
    size_t n = 0;
    while (alpnList[n])
        n++;
    c->alpn = calloc(n + 1, sizeof(char *));
    if (!c->alpn)
        rs_fatal("%s: out of memory", fn);
    size_t kept = 0, wire = 0;
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(alpnList[i]);
        const char *why = len == 0                   ? "it is empty"
                          : len > RS_ALPN_NAME_MAX   ? "it is longer than 255 bytes"
                          : strchr(alpnList[i], ',') ? "it contains a comma"
                                                     : NULL;
        if (why) {
            rs_log_error(c->log, LOG_TLS, "%s: name %zu (%zu bytes) dropped: %s", fn, i, len, why);
            continue;
        }
        if (wire + 1 + len > RS_ALPN_LIST_MAX || kept == RS_ALPN_NAMES_MAX) {
            rs_log_error(c->log, LOG_TLS,
                         "%s: names %zu to %zu dropped: the list would exceed %d bytes or %d "
                         "names (the ClientHello must fit one record)",
                         fn, i, n - 1, RS_ALPN_LIST_MAX, RS_ALPN_NAMES_MAX);
            break;
        }
        c->alpn[kept] = strdup(alpnList[i]);
        if (!c->alpn[kept])
            rs_fatal("%s: out of memory", fn);
        kept++;
        wire += 1 + len;
    }
    if (kept == 0)
        free_alpn(c); /* nothing to offer is no list */
}
