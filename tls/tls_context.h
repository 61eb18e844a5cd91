/* The TLS side of an ISocketContext: wolfSSL contexts built from its settings, the
 * local certificate (a generated self-signed ECDSA P-256 one when none is set) and its
 * fingerprint. Rebuilt when the settings change; connections keep the WOLFSSL_CTX they
 * started with (wolfSSL counts references). */
#ifndef RS_TLS_CONTEXT_H
#define RS_TLS_CONTEXT_H

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>

#include "provider.h"

/* Makes sure the context carries the TLS layer (idempotent). */
void rs_tls_context_attach(ISocketContext *ctx);

/* The wolfSSL context for a new server or client connection, NULL on error (logged
 * under LOG_TLS). dtls picks the DTLS 1.2 method. Pass it to wolfSSL_new at once: the
 * connection takes its own reference, the context may be rebuilt later. */
WOLFSSL_CTX *rs_tls_context_get(ISocketContext *ctx, bool server, bool dtls);

/* The context a TLS socket uses when the application passes none: one per process,
 * with a generated server certificate and default verification. */
ISocketContext *rs_tls_default_context(void);

/* SHA-256 of a certificate in DER. */
void rs_tls_fingerprint(const uint8_t *der, size_t len, uint8_t out[32]);
/* The fingerprint of the certificate the peer presented in the handshake (TLS or DTLS);
 * false if it presented none. */
bool rs_tls_peer_fingerprint(WOLFSSL *ssl, uint8_t out[32]);

/* The wolfSSL memory I/O callbacks; each connection sets its own I/O contexts. */
void rs_tls_set_io(WOLFSSL_CTX *ctx);
int rs_tls_io_recv(WOLFSSL *ssl, char *buf, int sz, void *ctx);
int rs_tls_io_send(WOLFSSL *ssl, char *buf, int sz, void *ctx);

/* One-time wolfSSL initialisation. */
void rs_tls_init(void);

#endif
