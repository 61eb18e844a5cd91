/* Kernel TLS key hand-over (see ktls.h). The kernel's crypto_info wants, per direction:
 * the key; the salt (the implicit part of the nonce); the iv (for TLS 1.3 and ChaCha20 the
 * rest of the static IV, XORed with the sequence number per record; for TLS 1.2 AES-GCM the
 * first explicit nonce, which the kernel counts up); and the next record's sequence number. */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "ktls.h"

/* Set once the kernel says it has no tls ULP: later sockets do not ask again. */
static atomic_bool no_ulp;

static void put_be64(uint8_t out[8], uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        out[i] = (uint8_t)v;
}

bool rs_ktls_keys(WOLFSSL *ssl, bool tx, struct rs_ktls_keys *keys, char *why, size_t whylen)
{
    memset(keys, 0, sizeof(*keys));
    int version = wolfSSL_GetVersion(ssl);
    if (version != WOLFSSL_TLSV1_2 && version != WOLFSSL_TLSV1_3) {
        snprintf(why, whylen, "%s is not TLS 1.2 or 1.3", wolfSSL_get_version(ssl));
        return false;
    }
    bool tls13 = version == WOLFSSL_TLSV1_3;
    /* Our sending keys are the client's on a client, the server's on a server. */
    bool client_keys = (wolfSSL_GetSide(ssl) == WOLFSSL_CLIENT_END) == tx;
    const uint8_t *key =
        client_keys ? wolfSSL_GetClientWriteKey(ssl) : wolfSSL_GetServerWriteKey(ssl);
    const uint8_t *iv = client_keys ? wolfSSL_GetClientWriteIV(ssl) : wolfSSL_GetServerWriteIV(ssl);
    int key_size = wolfSSL_GetKeySize(ssl);
    int iv_size = wolfSSL_GetIVSize(ssl);
    word64 seq = 0;
    if (tx)
        wolfSSL_GetSequenceNumber(ssl, &seq);
    else
        wolfSSL_GetPeerSequenceNumber(ssl, &seq);
    uint16_t kversion = tls13 ? TLS_1_3_VERSION : TLS_1_2_VERSION;

    switch (wolfSSL_GetBulkCipher(ssl)) {
    case wolfssl_aes_gcm: {
        /* TLS 1.3: a 12-byte static IV; TLS 1.2: 4 implicit bytes (RFC 5288). */
        if (iv_size != (tls13 ? 12 : 4) || (key_size != 16 && key_size != 32))
            break;
        /* The two layouts differ in the key's length, which moves salt and rec_seq. */
        struct tls_crypto_info *info;
        uint8_t *k_iv, *k_key, *k_salt, *k_seq;
        if (key_size == 16) {
            struct tls12_crypto_info_aes_gcm_128 *g = &keys->u.gcm128;
            info = &g->info, k_iv = g->iv, k_key = g->key, k_salt = g->salt, k_seq = g->rec_seq;
            info->cipher_type = TLS_CIPHER_AES_GCM_128;
            keys->len = sizeof(*g);
        } else {
            struct tls12_crypto_info_aes_gcm_256 *g = &keys->u.gcm256;
            info = &g->info, k_iv = g->iv, k_key = g->key, k_salt = g->salt, k_seq = g->rec_seq;
            info->cipher_type = TLS_CIPHER_AES_GCM_256;
            keys->len = sizeof(*g);
        }
        info->version = kversion;
        memcpy(k_key, key, (size_t)key_size);
        memcpy(k_salt, iv, 4);
        if (tls13)
            memcpy(k_iv, iv + 4, 8);
        else
            put_be64(k_iv, seq); /* explicit nonces need only be unique: count from seq */
        put_be64(k_seq, seq);
        return true;
    }
    case wolfssl_chacha: {
        if (iv_size != 12 || key_size != 32)
            break;
        struct tls12_crypto_info_chacha20_poly1305 *c = &keys->u.chacha;
        c->info.version = kversion;
        c->info.cipher_type = TLS_CIPHER_CHACHA20_POLY1305;
        memcpy(c->iv, iv, 12);
        memcpy(c->key, key, 32);
        put_be64(c->rec_seq, seq);
        keys->len = sizeof(keys->u.chacha);
        return true;
    }
    default:
        break;
    }
    snprintf(why, whylen, "the kernel takes no %s", wolfSSL_get_cipher_name(ssl));
    return false;
}

int rs_ktls_attach(int fd)
{
    if (atomic_load_explicit(&no_ulp, memory_order_relaxed))
        return ENOENT;
    if (setsockopt(fd, SOL_TCP, TCP_ULP, "tls", sizeof("tls")) == 0)
        return 0;
    int err = errno;
    /* ENOENT: no such ULP (not built, module not loadable); others are this socket's */
    if (err == ENOENT || err == ENOPROTOOPT)
        atomic_store_explicit(&no_ulp, true, memory_order_relaxed);
    return err;
}

int rs_ktls_install(int fd, WOLFSSL *ssl, bool tx, char *why, size_t whylen)
{
    struct rs_ktls_keys keys;
    if (!rs_ktls_keys(ssl, tx, &keys, why, whylen))
        return EOPNOTSUPP;
    int rc = setsockopt(fd, SOL_TLS, tx ? TLS_TX : TLS_RX, &keys, keys.len);
    int err = rc == 0 ? 0 : errno;
    if (err)
        snprintf(why, whylen, "setsockopt(SOL_TLS, %s): %s", tx ? "TLS_TX" : "TLS_RX",
                 strerror(err));
    /* A TLS 1.3 peer that does not pad lets the kernel decrypt in place (Linux 6.0+,
     * refused by older kernels, which is fine). */
    if (!err && !tx && keys.u.info.version == TLS_1_3_VERSION) {
        int one = 1;
        setsockopt(fd, SOL_TLS, TLS_RX_EXPECT_NO_PAD, &one, sizeof(one));
    }
    explicit_bzero(&keys, sizeof(keys));
    return err;
}
