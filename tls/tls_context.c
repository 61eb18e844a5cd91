#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/wolfcrypt/asn.h>
#include <wolfssl/wolfcrypt/asn_public.h>
#include <wolfssl/wolfcrypt/ecc.h>
#include <wolfssl/wolfcrypt/random.h>
#include <wolfssl/wolfcrypt/sha256.h>

#include "blocks.h"
#include "log_internal.h"
#include "reactor.h"
#include "tls_context.h"
#include "verify.h"

#define RS_DER_MAX 4096

struct tls_layer {
    pthread_mutex_t mu;     /* the default context serves every loop thread */
    WOLFSSL_CTX *ctx[2][2]; /* [server][dtls] */
    unsigned gen[2][2];     /* the context generation each was built from */
    /* the generated identity, made once per context so its fingerprint stays */
    uint8_t cert_der[RS_DER_MAX], key_der[RS_DER_MAX];
    int cert_len, key_len;
    uint8_t fp[32];
    unsigned fp_gen;
    bool fp_valid;
};

static pthread_once_t init_once = PTHREAD_ONCE_INIT;

static void do_init(void)
{
    /* Record buffers come from the loop thread's block cache (before wolfSSL allocates
     * anything: every block it frees must have come from these). */
    wolfSSL_SetAllocators(rs_blk_alloc, rs_blk_free, rs_blk_realloc);
    wolfSSL_Init();
}

void rs_tls_init(void)
{
    pthread_once(&init_once, do_init);
}

void rs_tls_fingerprint(const uint8_t *der, size_t len, uint8_t out[32])
{
    wc_Sha256Hash(der, (word32)len, out);
}

bool rs_tls_peer_fingerprint(WOLFSSL *ssl, uint8_t out[32])
{
    WOLFSSL_X509 *peer = wolfSSL_get_peer_certificate(ssl);
    if (!peer)
        return false;
    int n = 0;
    const unsigned char *der = wolfSSL_X509_get_der(peer, &n);
    bool got = der && n > 0;
    if (got)
        rs_tls_fingerprint(der, (size_t)n, out);
    wolfSSL_X509_free(peer);
    return got;
}

static void layer_free(void *p)
{
    struct tls_layer *l = p;
    if (!l)
        return;
    for (int s = 0; s < 2; s++)
        for (int d = 0; d < 2; d++)
            if (l->ctx[s][d])
                wolfSSL_CTX_free(l->ctx[s][d]);
    pthread_mutex_destroy(&l->mu);
    free(l);
}

/* A self-signed ECDSA P-256 certificate, valid from a day ago for ten years. */
static bool generate_identity(struct tls_layer *l, const char *cn, IInstanceLog *log)
{
    WC_RNG rng;
    ecc_key key;
    Cert cert;
    bool ok = false;
    if (wc_InitRng(&rng) != 0)
        return false;
    if (wc_ecc_init(&key) != 0)
        goto out_rng;
    if (wc_ecc_make_key_ex(&rng, 32, &key, ECC_SECP256R1) != 0)
        goto out_key;
    if (wc_InitCert(&cert) != 0)
        goto out_key;
    strncpy(cert.subject.commonName, cn && *cn ? cn : "ringsock", CTC_NAME_SIZE - 1);
    strncpy(cert.subject.org, "ringsock self-signed", CTC_NAME_SIZE - 1);
    cert.daysValid = 3650;
    cert.selfSigned = 1;
    cert.isCA = 0;
    cert.sigType = CTC_SHA256wECDSA;
    int n = wc_MakeCert_ex(&cert, l->cert_der, RS_DER_MAX, ECC_TYPE, &key, &rng);
    if (n < 0)
        goto out_key;
    n = wc_SignCert_ex(cert.bodySz, cert.sigType, l->cert_der, RS_DER_MAX, ECC_TYPE, &key, &rng);
    if (n < 0)
        goto out_key;
    l->cert_len = n;
    l->key_len = wc_EccKeyToDer(&key, l->key_der, RS_DER_MAX);
    ok = l->key_len > 0;
out_key:
    wc_ecc_free(&key);
out_rng:
    wc_FreeRng(&rng);
    if (!ok)
        rs_log_error(log, LOG_TLS, "tls: generating a self-signed certificate failed");
    return ok;
}

static struct tls_layer *layer_of(ISocketContext *c)
{
    rs_tls_context_attach(c);
    return c->layer;
}

/* The PEM that identifies this side, or NULL for the generated identity. */
static const uint8_t *local_pem(ISocketContext *c, bool server, size_t *len)
{
    if (server && c->server_cert) {
        *len = c->server_cert_len;
        return c->server_cert;
    }
    if (!server && c->client_cert && !c->client_cert_disabled) {
        *len = c->client_cert_len;
        return c->client_cert;
    }
    return NULL;
}

/* The PEM this side presents: a DTLS client without its own certificate presents the
 * server one, as GetCertificateFingerprint announces it (WebRTC: one identity per context,
 * whichever role the handshake gives the socket). */
static const uint8_t *presented_pem(ISocketContext *c, bool server, bool dtls, size_t *len)
{
    const uint8_t *pem = local_pem(c, server, len);
    if (!pem && dtls && !server && !c->client_cert_disabled)
        pem = local_pem(c, true, len);
    return pem;
}

static bool ensure_identity(ISocketContext *c, struct tls_layer *l)
{
    if (l->cert_len > 0)
        return true;
    return generate_identity(l, c->server_host, c->log);
}

/* Base64 that decodes is not yet a certificate: parse it. */
static bool is_certificate(const uint8_t *der, int len)
{
    struct DecodedCert *dc = malloc(sizeof(*dc));
    if (!dc)
        return false;
    wc_InitDecodedCert(dc, der, (word32)len, NULL);
    bool ok = wc_ParseCert(dc, CERT_TYPE, NO_VERIFY, NULL) == 0;
    wc_FreeDecodedCert(dc);
    free(dc);
    return ok;
}

/* Puts this end's certificate chain and key from the PEM into x; what is wrong with it, or
 * NULL. */
static const char *use_pem(WOLFSSL_CTX *x, const uint8_t *pem, size_t len)
{
    if (wolfSSL_CTX_use_certificate_chain_buffer_format(x, pem, (long)len, WOLFSSL_FILETYPE_PEM) !=
        WOLFSSL_SUCCESS)
        return "the certificate chain in the PEM cannot be used";
    if (wolfSSL_CTX_use_PrivateKey_buffer(x, pem, (long)len, WOLFSSL_FILETYPE_PEM) !=
        WOLFSSL_SUCCESS)
        return "the private key in the PEM cannot be used";
    if (wolfSSL_CTX_check_private_key(x) != WOLFSSL_SUCCESS)
        return "the private key does not belong to the certificate";
    return NULL;
}

/* Tried on a scratch wolfSSL context, so a bad PEM is refused when it is set. */
static const char *check_identity(ISocketContext *c, const uint8_t *pem, size_t len)
{
    (void)c;
    WOLFSSL_CTX *x = wolfSSL_CTX_new(wolfSSLv23_server_method());
    if (!x)
        return "no wolfSSL context to try it on";
    const char *why = use_pem(x, pem, len);
    wolfSSL_CTX_free(x);
    return why;
}

static const uint8_t *fingerprint(ISocketContext *c, size_t *length)
{
    struct tls_layer *l = layer_of(c);
    pthread_mutex_lock(&l->mu);
    if (!l->fp_valid || l->fp_gen != c->gen) {
        size_t pem_len;
        const uint8_t *pem = local_pem(c, true, &pem_len);
        if (!pem)
            pem = local_pem(c, false, &pem_len);
        l->fp_valid = false;
        if (pem) {
            uint8_t der[RS_DER_MAX * 2];
            int n = wc_CertPemToDer(pem, (int)pem_len, der, sizeof(der), CERT_TYPE);
            if (n > 0 && is_certificate(der, n)) {
                rs_tls_fingerprint(der, (size_t)n, l->fp);
                l->fp_valid = true;
            }
        } else if (ensure_identity(c, l)) {
            rs_tls_fingerprint(l->cert_der, (size_t)l->cert_len, l->fp);
            l->fp_valid = true;
        }
        l->fp_gen = c->gen;
    }
    pthread_mutex_unlock(&l->mu);
    if (length)
        *length = l->fp_valid ? 32 : 0;
    return l->fp_valid ? l->fp : NULL;
}

static const struct rs_context_layer_ops tls_layer_ops = {
    .fingerprint = fingerprint,
    .check_identity = check_identity,
    .free = layer_free,
};

/* A certificate set before the context had this layer (a context of another provider) is
 * checked when the layer comes; an unusable one is dropped. */
static void drop_unusable(ISocketContext *c, uint8_t **pem, size_t *len)
{
    if (*pem && !rs_context_identity_usable(c, "TLS context", *pem, *len)) {
        free(*pem);
        *pem = NULL;
        *len = 0;
        c->gen++;
    }
}

/* A context no TLS or DTLS provider made gets its layer from the first TLS socket that
 * uses it, and loops on several threads may make theirs at once: one of them attaches. */
static pthread_mutex_t attach_mu = PTHREAD_MUTEX_INITIALIZER;

void rs_tls_context_attach(ISocketContext *c)
{
    /* the layer is published last: a thread that sees it sees the context checked */
    if (__atomic_load_n(&c->layer, __ATOMIC_ACQUIRE) && c->layer_ops == &tls_layer_ops)
        return;
    pthread_mutex_lock(&attach_mu);
    if (c->layer_ops != &tls_layer_ops) {
        if (c->layer_ops)
            rs_fatal("a socket context serves one security layer");
        rs_tls_init();
        struct tls_layer *l = calloc(1, sizeof(*l));
        if (!l)
            rs_fatal("TLS context: out of memory");
        pthread_mutex_init(&l->mu, NULL);
        c->layer_ops = &tls_layer_ops; /* drop_unusable checks with it */
        drop_unusable(c, &c->server_cert, &c->server_cert_len);
        drop_unusable(c, &c->client_cert, &c->client_cert_len);
        __atomic_store_n(&c->layer, l, __ATOMIC_RELEASE);
    }
    pthread_mutex_unlock(&attach_mu);
}

static bool load_trust(WOLFSSL_CTX *x, ISocketContext *c)
{
    if (c->trusted)
        return wolfSSL_CTX_load_verify_buffer(x, c->trusted, (long)c->trusted_len,
                                              WOLFSSL_FILETYPE_PEM) == WOLFSSL_SUCCESS;
    return wolfSSL_CTX_load_system_CA_certs(x) == WOLFSSL_SUCCESS;
}

static int accept_any(int preverify, WOLFSSL_X509_STORE_CTX *store)
{
    (void)preverify;
    (void)store;
    return 1;
}

/* Who checks what: a client the server's chain (and name), a server the client's
 * certificate. DTLS peers are usually self-signed (WebRTC): without trusted certificates
 * a DTLS client checks nothing and a DTLS server takes any client certificate, leaving
 * the fingerprint to the application. Returns what went wrong, or NULL. */
static const char *set_verification(WOLFSSL_CTX *x, ISocketContext *c, bool server, bool dtls)
{
    static const char no_trust[] = "the trusted certificates cannot be loaded";
    if (!server) {
        if (c->verify_off || (dtls && !c->trusted)) {
            wolfSSL_CTX_set_verify(x, WOLFSSL_VERIFY_NONE, NULL);
            return NULL;
        }
        wolfSSL_CTX_set_verify(x, WOLFSSL_VERIFY_PEER, rs_tls_verify_server); /* + names */
        return load_trust(x, c) ? NULL : no_trust;
    }
    bool require = c->require_client_cert && !c->client_cert_disabled;
    int mode = WOLFSSL_VERIFY_PEER | (require ? WOLFSSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0);
    if (dtls && !c->trusted) {
        wolfSSL_CTX_set_verify(x, mode, accept_any);
        return NULL;
    }
    /* a DTLS server asks every client, and verifies the certificate when one comes */
    if (!require && !(dtls && !c->client_cert_disabled)) {
        wolfSSL_CTX_set_verify(x, WOLFSSL_VERIFY_NONE, NULL);
        return NULL;
    }
    wolfSSL_CTX_set_verify(x, mode, NULL);
    if (require)
        wolfSSL_CTX_mutual_auth(x, 1); /* wolfSSL then also alerts a TLS 1.2 client that
                                           sent no certificate */
    return load_trust(x, c) ? NULL : no_trust;
}

static WOLFSSL_CTX *build(ISocketContext *c, struct tls_layer *l, bool server, bool dtls)
{
    WOLFSSL_METHOD *m;
    if (dtls)
        m = server ? wolfDTLSv1_2_server_method() : wolfDTLSv1_2_client_method();
    else
        m = server ? wolfSSLv23_server_method() : wolfSSLv23_client_method();
    WOLFSSL_CTX *x = wolfSSL_CTX_new(m);
    if (!x)
        return NULL;
    const char *what = NULL;
    size_t pem_len;
    const uint8_t *pem = presented_pem(c, server, dtls, &pem_len);
    if (pem) {
        what = use_pem(x, pem, pem_len);
    } else if (server || (dtls && !c->client_cert_disabled)) {
        /* DTLS peers (WebRTC) identify both ends by certificate fingerprint */
        if (!ensure_identity(c, l))
            what = "no certificate";
        else if (wolfSSL_CTX_use_certificate_buffer(x, l->cert_der, l->cert_len,
                                                    WOLFSSL_FILETYPE_ASN1) != WOLFSSL_SUCCESS ||
                 wolfSSL_CTX_use_PrivateKey_buffer(x, l->key_der, l->key_len,
                                                   WOLFSSL_FILETYPE_ASN1) != WOLFSSL_SUCCESS)
            what = "the generated certificate cannot be used";
    }
    if (!what)
        what = set_verification(x, c, server, dtls);
    if (what) {
        rs_log_error(c->log, LOG_TLS, "tls: %s context: %s", server ? "server" : "client", what);
        wolfSSL_CTX_free(x);
        return NULL;
    }
    rs_tls_set_io(x);
    return x;
}

WOLFSSL_CTX *rs_tls_context_get(ISocketContext *c, bool server, bool dtls)
{
    struct tls_layer *l = layer_of(c);
    pthread_mutex_lock(&l->mu);
    WOLFSSL_CTX **slot = &l->ctx[server][dtls];
    if (*slot && l->gen[server][dtls] != c->gen) {
        wolfSSL_CTX_free(*slot); /* connections made with it keep their reference */
        *slot = NULL;
    }
    if (!*slot) {
        *slot = build(c, l, server, dtls);
        l->gen[server][dtls] = c->gen;
    }
    WOLFSSL_CTX *x = *slot;
    pthread_mutex_unlock(&l->mu);
    return x;
}

static ISocketContext *default_ctx;
static pthread_mutex_t default_mu = PTHREAD_MUTEX_INITIALIZER;

ISocketContext *rs_tls_default_context(void)
{
    pthread_mutex_lock(&default_mu);
    if (!default_ctx) {
        default_ctx = ISocketProvider_CreateSocketContext(NULL, NULL);
        rs_tls_context_attach(default_ctx);
    }
    pthread_mutex_unlock(&default_mu);
    return default_ctx;
}
