/* Kernel TLS: the record layer of an established wolfSSL session handed to the kernel
 * (TCP_ULP "tls", SOL_TLS TLS_TX / TLS_RX), after which the socket carries plaintext.
 * Only the key hand-over is here; when to hand over is the TLS socket's business. */
#ifndef RS_KTLS_H
#define RS_KTLS_H

#include <linux/tls.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <wolfssl/options.h>
#include <wolfssl/ssl.h>

#ifndef SOL_TLS
#define SOL_TLS 282
#endif
#ifndef TCP_ULP
#define TCP_ULP 31
#endif
#ifndef TLS_RX_EXPECT_NO_PAD
#define TLS_RX_EXPECT_NO_PAD 4 /* Linux 6.0 */
#endif

/* TLS record content types (RFC 8446 5.1) and the handshake messages that may follow the
 * handshake (RFC 8446 4.6). */
enum {
    RS_TLS_CHANGE_CIPHER_SPEC = 20,
    RS_TLS_ALERT = 21,
    RS_TLS_HANDSHAKE = 22,
    RS_TLS_APPLICATION_DATA = 23,
    RS_TLS_HELLO_REQUEST = 0,
    RS_TLS_NEW_SESSION_TICKET = 4,
    RS_TLS_KEY_UPDATE = 24,
};

/* One direction's keys in the layout setsockopt(SOL_TLS, TLS_TX or TLS_RX) takes. */
struct rs_ktls_keys {
    union {
        struct tls_crypto_info info;
        struct tls12_crypto_info_aes_gcm_128 gcm128;
        struct tls12_crypto_info_aes_gcm_256 gcm256;
        struct tls12_crypto_info_chacha20_poly1305 chacha;
    } u;
    socklen_t len;
};

/* The keys, IV and next record sequence number of the session's sending direction (tx)
 * or its receiving one. False, with the reason in why, when the kernel cannot take them
 * (not TLS 1.2/1.3, or a cipher other than AES-GCM-128/256 or ChaCha20-Poly1305). */
bool rs_ktls_keys(WOLFSSL *ssl, bool tx, struct rs_ktls_keys *keys, char *why, size_t whylen);

/* Attaches the tls ULP to a connected TCP socket. 0, or the errno; once the kernel has said
 * it has no such ULP, later calls fail at once with ENOENT (probed once per process). */
int rs_ktls_attach(int fd);

/* Hands one direction's keys to the kernel (the ULP attached). 0 or the errno. */
int rs_ktls_install(int fd, WOLFSSL *ssl, bool tx, char *why, size_t whylen);

#endif
