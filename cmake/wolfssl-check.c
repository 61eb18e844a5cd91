/* wolfssl-check: proves that the wolfSSL built by cmake/wolfssl.cmake has
 * what ringsock's TLS and DTLS-SRTP sockets use, by running it:
 *
 *  - AES-GCM and AES-CTR known answers (the ciphers of the SRTP profiles);
 *  - certificate generation: an ECC P-256 key (wc_ecc_make_key) and a
 *    self-signed SHA256-with-ECDSA certificate (wc_MakeCert + wc_SignCert);
 *  - TLS 1.3 (wolfTLSv1_3_*_method) over an in-memory transport, with SNI,
 *    ALPN, the TLS 1.3 secret callback and the RFC 5705 exporter
 *    (wolfSSL_export_keying_material), both ends compared;
 *  - DTLS 1.2 (wolfDTLSv1_2_*_method) over an in-memory datagram transport,
 *    with use_srtp negotiation (wolfSSL_CTX_set_tlsext_use_srtp), the MTU
 *    setter, and the DTLS-SRTP keying material compared on both ends;
 *  - wolfSSL_CTX_load_system_CA_certs (its result is reported, not
 *    required: a machine without ca-certificates has no system CAs).
 *
 * Prints "wolfssl ok <version>" and exits 0 on success.
 */
#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/wolfcrypt/aes.h>
#include <wolfssl/wolfcrypt/asn_public.h>
#include <wolfssl/wolfcrypt/ecc.h>
#include <wolfssl/wolfcrypt/error-crypt.h>
#include <wolfssl/wolfcrypt/random.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if !defined(WOLFSSL_SRTP) || !defined(HAVE_SECRET_CALLBACK) || \
    !defined(HAVE_KEYING_MATERIAL) || !defined(HAVE_ALPN) || !defined(HAVE_SNI) || \
    !defined(WOLFSSL_TLS13) || !defined(WOLFSSL_DTLS) || !defined(WOLFSSL_CERT_GEN) || \
    !defined(WOLFSSL_SYS_CA_CERTS) || !defined(WOLFSSL_DTLS_MTU) || !defined(HAVE_ECC)
#error "wolfSSL was built without a feature ringsock needs (see cmake/wolfssl.cmake)"
#endif

#define SRTP_PROFILES "SRTP_AEAD_AES_128_GCM:SRTP_AES128_CM_SHA1_80"
#define SNI_NAME "check.ringsock.invalid"
#define EXPORTER_LABEL "EXPORTER-ringsock-check"

#define CHECK(cond, ...)                                                       \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "wolfssl-check: %s:%d: %s: ", __FILE__, __LINE__,  \
                    #cond);                                                    \
            fprintf(stderr, __VA_ARGS__);                                      \
            fputc('\n', stderr);                                               \
            exit(1);                                                           \
        }                                                                      \
    } while (0)

/* ---- in-memory transport: a queue of records/datagrams per direction ---- */

#define QCAP 64
#define DGRAM_MAX 4096

struct pipeq {
    unsigned char data[QCAP][DGRAM_MAX];
    int len[QCAP];
    int head, count;
    int off; /* stream mode: bytes of the head chunk already consumed */
};

struct endpoint {
    struct pipeq *in, *out;
    int datagram;
};

static int io_send(WOLFSSL *ssl, char *buf, int sz, void *ctx)
{
    struct endpoint *ep = ctx;
    (void)ssl;
    if (ep->out->count == QCAP)
        return WOLFSSL_CBIO_ERR_WANT_WRITE;
    if (sz > DGRAM_MAX)
        sz = ep->datagram ? -1 : DGRAM_MAX;
    if (sz < 0)
        return WOLFSSL_CBIO_ERR_GENERAL;
    int slot = (ep->out->head + ep->out->count) % QCAP;
    memcpy(ep->out->data[slot], buf, (size_t)sz);
    ep->out->len[slot] = sz;
    ep->out->count++;
    return sz;
}

static int io_recv(WOLFSSL *ssl, char *buf, int sz, void *ctx)
{
    struct endpoint *ep = ctx;
    struct pipeq *q = ep->in;
    (void)ssl;
    if (q->count == 0)
        return WOLFSSL_CBIO_ERR_WANT_READ;
    int avail = q->len[q->head] - q->off;
    int n = avail < sz ? avail : sz;
    memcpy(buf, q->data[q->head] + q->off, (size_t)n);
    if (ep->datagram || n == avail) { /* a datagram is consumed whole */
        q->head = (q->head + 1) % QCAP;
        q->count--;
        q->off = 0;
    } else {
        q->off += n;
    }
    return n;
}

/* ---- certificate generation ---- */

struct credentials {
    unsigned char cert[2048];
    int cert_len;
    unsigned char key[256];
    int key_len;
};

static void make_credentials(WC_RNG *rng, struct credentials *cr)
{
    ecc_key key;
    Cert cert;
    int ret;

    CHECK(wc_ecc_init(&key) == 0, "wc_ecc_init");
    ret = wc_ecc_make_key(rng, 32, &key); /* P-256 */
    CHECK(ret == 0, "wc_ecc_make_key: %d", ret);

    CHECK(wc_InitCert(&cert) == 0, "wc_InitCert");
    strncpy(cert.subject.commonName, "ringsock wolfssl-check", CTC_NAME_SIZE - 1);
    strncpy(cert.subject.org, "ringsock", CTC_NAME_SIZE - 1);
    cert.isCA = 1; /* so the client can trust it as its own anchor */
    cert.sigType = CTC_SHA256wECDSA;
    cert.daysValid = 30;

    ret = wc_MakeCert(&cert, cr->cert, sizeof cr->cert, NULL, &key, rng);
    CHECK(ret > 0, "wc_MakeCert: %d", ret);
    ret = wc_SignCert(cert.bodySz, cert.sigType, cr->cert, sizeof cr->cert, NULL,
                      &key, rng);
    CHECK(ret > 0, "wc_SignCert: %d", ret);
    cr->cert_len = ret;

    ret = wc_EccKeyToDer(&key, cr->key, sizeof cr->key);
    CHECK(ret > 0, "wc_EccKeyToDer: %d", ret);
    cr->key_len = ret;
    wc_ecc_free(&key);
}

/* ---- known answers for the ciphers SRTP uses (AES-NI asm when built) ---- */

static void check_aes_kat(void)
{
    /* AES-128-GCM, "Test Case 2" of the GCM spec: zero key, IV, plaintext */
    static const unsigned char gcm_ct[16] = {0x03, 0x88, 0xda, 0xce, 0x60, 0xb6, 0xa3, 0x92,
                                             0xf3, 0x28, 0xc2, 0xb9, 0x71, 0xb2, 0xfe, 0x78};
    static const unsigned char gcm_tag[16] = {0xab, 0x6e, 0x47, 0xd4, 0x2c, 0xec, 0x13, 0xbd,
                                              0xf5, 0x3a, 0x67, 0xb2, 0x12, 0x57, 0xbd, 0xdf};
    /* AES-128-CTR, NIST SP 800-38A F.5.1, first block */
    static const unsigned char ctr_key[16] = {0x2b, 0x7e, 0x15, 0x16, 0x28, 0xae, 0xd2, 0xa6,
                                              0xab, 0xf7, 0x15, 0x88, 0x09, 0xcf, 0x4f, 0x3c};
    static const unsigned char ctr_iv[16] = {0xf0, 0xf1, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf7,
                                             0xf8, 0xf9, 0xfa, 0xfb, 0xfc, 0xfd, 0xfe, 0xff};
    static const unsigned char ctr_pt[16] = {0x6b, 0xc1, 0xbe, 0xe2, 0x2e, 0x40, 0x9f, 0x96,
                                             0xe9, 0x3d, 0x7e, 0x11, 0x73, 0x93, 0x17, 0x2a};
    static const unsigned char ctr_ct[16] = {0x87, 0x4d, 0x61, 0x91, 0xb6, 0x20, 0xe3, 0x26,
                                             0x1b, 0xef, 0x68, 0x64, 0x99, 0x0d, 0xb6, 0xce};
    unsigned char zero[16] = {0}, out[16], tag[16];
    Aes aes;

    CHECK(wc_AesInit(&aes, NULL, INVALID_DEVID) == 0, "wc_AesInit");
    CHECK(wc_AesGcmSetKey(&aes, zero, 16) == 0, "wc_AesGcmSetKey");
    CHECK(wc_AesGcmEncrypt(&aes, out, zero, 16, zero, 12, tag, 16, NULL, 0) == 0,
          "wc_AesGcmEncrypt");
    CHECK(memcmp(out, gcm_ct, 16) == 0 && memcmp(tag, gcm_tag, 16) == 0, "AES-GCM known answer");
    wc_AesFree(&aes);

    CHECK(wc_AesInit(&aes, NULL, INVALID_DEVID) == 0, "wc_AesInit");
    CHECK(wc_AesSetKeyDirect(&aes, ctr_key, 16, ctr_iv, AES_ENCRYPTION) == 0, "wc_AesSetKeyDirect");
    CHECK(wc_AesCtrEncrypt(&aes, out, ctr_pt, 16) == 0, "wc_AesCtrEncrypt");
    CHECK(memcmp(out, ctr_ct, 16) == 0, "AES-CTR known answer");
    wc_AesFree(&aes);
#ifdef WOLFSSL_AESNI
    printf("aes: GCM and CTR known answers ok (AES-NI build)\n");
#else
    printf("aes: GCM and CTR known answers ok\n");
#endif
}

/* ---- handshake pump ---- */

static int step(WOLFSSL *ssl, int server, int *done)
{
    if (*done)
        return 0;
    int ret = server ? wolfSSL_accept(ssl) : wolfSSL_connect(ssl);
    if (ret == WOLFSSL_SUCCESS) {
        *done = 1;
        return 0;
    }
    int err = wolfSSL_get_error(ssl, ret);
    if (err == WOLFSSL_ERROR_WANT_READ || err == WOLFSSL_ERROR_WANT_WRITE)
        return 0;
    char msg[WOLFSSL_MAX_ERROR_SZ];
    fprintf(stderr, "wolfssl-check: %s handshake: %d %s\n", server ? "server" : "client",
            err, wolfSSL_ERR_error_string((unsigned long)err, msg));
    return -1;
}

static void handshake(WOLFSSL *client, WOLFSSL *server)
{
    int cdone = 0, sdone = 0;
    for (int i = 0; i < 200 && !(cdone && sdone); i++) {
        CHECK(step(client, 0, &cdone) == 0, "client handshake failed");
        CHECK(step(server, 1, &sdone) == 0, "server handshake failed");
    }
    CHECK(cdone && sdone, "handshake did not finish");
}

static void setup_ctx_pair(WOLFSSL_CTX *cctx, WOLFSSL_CTX *sctx, const struct credentials *cr)
{
    int ret;
    ret = wolfSSL_CTX_use_certificate_buffer(sctx, cr->cert, cr->cert_len,
                                             WOLFSSL_FILETYPE_ASN1);
    CHECK(ret == WOLFSSL_SUCCESS, "use_certificate_buffer: %d", ret);
    ret = wolfSSL_CTX_use_PrivateKey_buffer(sctx, cr->key, cr->key_len,
                                            WOLFSSL_FILETYPE_ASN1);
    CHECK(ret == WOLFSSL_SUCCESS, "use_PrivateKey_buffer: %d", ret);
    ret = wolfSSL_CTX_load_verify_buffer(cctx, cr->cert, cr->cert_len,
                                         WOLFSSL_FILETYPE_ASN1);
    CHECK(ret == WOLFSSL_SUCCESS, "load_verify_buffer: %d", ret);
    wolfSSL_CTX_set_verify(cctx, WOLFSSL_VERIFY_PEER, NULL);
    wolfSSL_CTX_SetIORecv(cctx, io_recv);
    wolfSSL_CTX_SetIOSend(cctx, io_send);
    wolfSSL_CTX_SetIORecv(sctx, io_recv);
    wolfSSL_CTX_SetIOSend(sctx, io_send);
}

static void connect_pair(WOLFSSL *c, WOLFSSL *s, struct endpoint *cep, struct endpoint *sep,
                         struct pipeq *c2s, struct pipeq *s2c, int datagram)
{
    memset(c2s, 0, sizeof *c2s);
    memset(s2c, 0, sizeof *s2c);
    *cep = (struct endpoint){.in = s2c, .out = c2s, .datagram = datagram};
    *sep = (struct endpoint){.in = c2s, .out = s2c, .datagram = datagram};
    wolfSSL_SetIOReadCtx(c, cep);
    wolfSSL_SetIOWriteCtx(c, cep);
    wolfSSL_SetIOReadCtx(s, sep);
    wolfSSL_SetIOWriteCtx(s, sep);
}

/* ---- TLS 1.3 ---- */

static int secret_calls[2];

static int tls13_secret_cb(WOLFSSL *ssl, int id, const unsigned char *secret, int secretSz,
                           void *ctx)
{
    (void)ssl;
    (void)id;
    (void)secret;
    CHECK(secretSz > 0, "empty secret");
    (*(int *)ctx)++;
    return 0;
}

static struct pipeq c2s, s2c;

static void check_tls13(const struct credentials *cr)
{
    WOLFSSL_CTX *cctx = wolfSSL_CTX_new(wolfTLSv1_3_client_method());
    WOLFSSL_CTX *sctx = wolfSSL_CTX_new(wolfTLSv1_3_server_method());
    CHECK(cctx && sctx, "wolfSSL_CTX_new (TLS 1.3)");
    setup_ctx_pair(cctx, sctx, cr);

    WOLFSSL *c = wolfSSL_new(cctx), *s = wolfSSL_new(sctx);
    CHECK(c && s, "wolfSSL_new (TLS 1.3)");
    struct endpoint cep, sep;
    connect_pair(c, s, &cep, &sep, &c2s, &s2c, 0);

    CHECK(wolfSSL_UseSNI(c, WOLFSSL_SNI_HOST_NAME, SNI_NAME, (unsigned short)strlen(SNI_NAME)) ==
              WOLFSSL_SUCCESS,
          "UseSNI client");
    CHECK(wolfSSL_UseSNI(s, WOLFSSL_SNI_HOST_NAME, SNI_NAME, (unsigned short)strlen(SNI_NAME)) ==
              WOLFSSL_SUCCESS,
          "UseSNI server");
    char calpn[] = "h2,ringsock/1";
    char salpn[] = "ringsock/1,http/1.1";
    CHECK(wolfSSL_UseALPN(c, calpn, (unsigned)strlen(calpn), WOLFSSL_ALPN_FAILED_ON_MISMATCH) ==
              WOLFSSL_SUCCESS,
          "UseALPN client");
    CHECK(wolfSSL_UseALPN(s, salpn, (unsigned)strlen(salpn), WOLFSSL_ALPN_FAILED_ON_MISMATCH) ==
              WOLFSSL_SUCCESS,
          "UseALPN server");
    /* The exporters read ssl->arrays, which wolfSSL frees at the end of the
     * handshake unless told to keep them (wolfSSL_FreeArrays wipes them). */
    wolfSSL_KeepArrays(c);
    wolfSSL_KeepArrays(s);
    CHECK(wolfSSL_set_tls13_secret_cb(c, tls13_secret_cb, &secret_calls[0]) == WOLFSSL_SUCCESS,
          "set_tls13_secret_cb client");
    CHECK(wolfSSL_set_tls13_secret_cb(s, tls13_secret_cb, &secret_calls[1]) == WOLFSSL_SUCCESS,
          "set_tls13_secret_cb server");

    handshake(c, s);

    CHECK(strcmp(wolfSSL_get_version(c), "TLSv1.3") == 0, "version %s", wolfSSL_get_version(c));
    char *proto = NULL;
    unsigned short plen = 0;
    CHECK(wolfSSL_ALPN_GetProtocol(c, &proto, &plen) == WOLFSSL_SUCCESS, "ALPN_GetProtocol");
    CHECK(plen == strlen("ringsock/1") && memcmp(proto, "ringsock/1", plen) == 0,
          "ALPN picked %.*s", (int)plen, proto);
    void *sni = NULL;
    unsigned short snilen = wolfSSL_SNI_GetRequest(s, WOLFSSL_SNI_HOST_NAME, &sni);
    CHECK(snilen == strlen(SNI_NAME) && memcmp(sni, SNI_NAME, snilen) == 0, "SNI");
    CHECK(secret_calls[0] >= 4 && secret_calls[1] >= 4, "secret cb calls %d/%d",
          secret_calls[0], secret_calls[1]);

    unsigned char ek[2][32];
    for (int i = 0; i < 2; i++) {
        int ret = wolfSSL_export_keying_material(i ? s : c, ek[i], sizeof ek[i], EXPORTER_LABEL,
                                                 strlen(EXPORTER_LABEL), NULL, 0, 0);
        CHECK(ret == WOLFSSL_SUCCESS, "export_keying_material: %d", ret);
    }
    CHECK(memcmp(ek[0], ek[1], sizeof ek[0]) == 0, "exporter mismatch");
    wolfSSL_FreeArrays(c);
    wolfSSL_FreeArrays(s);

    /* application data both ways */
    const char ping[] = "ping";
    char buf[16];
    CHECK(wolfSSL_write(c, ping, sizeof ping) == (int)sizeof ping, "write");
    CHECK(wolfSSL_read(s, buf, sizeof buf) == (int)sizeof ping && strcmp(buf, ping) == 0, "read");

    printf("tls1.3: %s alpn=%.*s sni=%s secrets=%d/%d exporter=ok\n", wolfSSL_get_cipher(c),
           (int)plen, proto, SNI_NAME, secret_calls[0], secret_calls[1]);
    wolfSSL_free(c);
    wolfSSL_free(s);
    wolfSSL_CTX_free(cctx);
    wolfSSL_CTX_free(sctx);
}

/* ---- DTLS 1.2 + SRTP ---- */

static void check_dtls_srtp(const struct credentials *cr)
{
    WOLFSSL_CTX *cctx = wolfSSL_CTX_new(wolfDTLSv1_2_client_method());
    WOLFSSL_CTX *sctx = wolfSSL_CTX_new(wolfDTLSv1_2_server_method());
    CHECK(cctx && sctx, "wolfSSL_CTX_new (DTLS 1.2)");
    setup_ctx_pair(cctx, sctx, cr);
    /* NB: wolfSSL returns WOLFSSL_SUCCESS (1) here, unlike OpenSSL's 0. */
    CHECK(wolfSSL_CTX_set_tlsext_use_srtp(cctx, SRTP_PROFILES) == WOLFSSL_SUCCESS,
          "CTX_set_tlsext_use_srtp client");
    CHECK(wolfSSL_CTX_set_tlsext_use_srtp(sctx, SRTP_PROFILES) == WOLFSSL_SUCCESS,
          "CTX_set_tlsext_use_srtp server");

    WOLFSSL *c = wolfSSL_new(cctx), *s = wolfSSL_new(sctx);
    CHECK(c && s, "wolfSSL_new (DTLS)");
    struct endpoint cep, sep;
    connect_pair(c, s, &cep, &sep, &c2s, &s2c, 1);
    for (int i = 0; i < 2; i++) {
        WOLFSSL *ssl = i ? s : c;
        wolfSSL_dtls_set_using_nonblock(ssl, 1);
        wolfSSL_KeepArrays(ssl); /* for the DTLS-SRTP exporter, as above */
        CHECK(wolfSSL_dtls_set_mtu(ssl, 1200) == WOLFSSL_SUCCESS, "dtls_set_mtu");
    }

    handshake(c, s);

    CHECK(strcmp(wolfSSL_get_version(c), "DTLSv1.2") == 0, "version %s", wolfSSL_get_version(c));
    const WOLFSSL_SRTP_PROTECTION_PROFILE *pc = wolfSSL_get_selected_srtp_profile(c);
    const WOLFSSL_SRTP_PROTECTION_PROFILE *ps = wolfSSL_get_selected_srtp_profile(s);
    CHECK(pc && ps && pc->id == ps->id, "selected SRTP profile");

    unsigned char km[2][128];
    size_t kmlen[2];
    for (int i = 0; i < 2; i++) {
        kmlen[i] = sizeof km[i];
        int ret = wolfSSL_export_dtls_srtp_keying_material(i ? s : c, km[i], &kmlen[i]);
        CHECK(ret == WOLFSSL_SUCCESS, "export_dtls_srtp_keying_material: %d", ret);
    }
    CHECK(kmlen[0] == kmlen[1] && kmlen[0] > 0 && memcmp(km[0], km[1], kmlen[0]) == 0,
          "DTLS-SRTP keying material mismatch");
    wolfSSL_FreeArrays(c);
    wolfSSL_FreeArrays(s);

    printf("dtls1.2: %s srtp=%s keying-material=%zu bytes\n", wolfSSL_get_cipher(c), pc->name,
           kmlen[0]);
    wolfSSL_free(c);
    wolfSSL_free(s);
    wolfSSL_CTX_free(cctx);
    wolfSSL_CTX_free(sctx);
}

int main(void)
{
    CHECK(wolfSSL_Init() == WOLFSSL_SUCCESS, "wolfSSL_Init");

    WC_RNG rng;
    CHECK(wc_InitRng(&rng) == 0, "wc_InitRng");
    static struct credentials cr;
    make_credentials(&rng, &cr);
    printf("certgen: P-256 self-signed certificate, %d bytes DER\n", cr.cert_len);
    wc_FreeRng(&rng);

    check_aes_kat();
    check_tls13(&cr);
    check_dtls_srtp(&cr);

    WOLFSSL_CTX *ctx = wolfSSL_CTX_new(wolfTLSv1_3_client_method());
    CHECK(ctx, "wolfSSL_CTX_new");
    int ret = wolfSSL_CTX_load_system_CA_certs(ctx);
    printf("system CA certs: %s\n", ret == WOLFSSL_SUCCESS ? "loaded" : "none found");
    wolfSSL_CTX_free(ctx);

    wolfSSL_Cleanup();
    printf("wolfssl ok %s\n", wolfSSL_lib_version());
    return 0;
}
