/* ISocketProvider and ISocketContext internals. */
#ifndef RS_PROVIDER_H
#define RS_PROVIDER_H

#include <stdatomic.h>

#include "ringsock/socket.h"

struct rs_provider_ops {
    ISocket *(*create_socket)(ISocketProvider *p, IIoMux *iomux, USocket *user, IInstanceLog *log,
                              bool useIPv6, ISocketContext *ctx);
    /* NULL: only a TLS provider upgrades sockets. */
    ISocket *(*upgrade)(ISocketProvider *p, ISocket *from, IIoMux *iomux, USocket *user,
                        IInstanceLog *log, bool initServerSide, ISocketContext *ctx);
    /* NULL: contexts of this provider carry only settings. */
    void (*init_context)(ISocketContext *ctx);
    void (*destroy)(ISocketProvider *p);
};

/* refs: the application's reference and one per provider that wraps this one (a TLS
 * provider its TCP one), so ISocketProvider_Delete in any order frees nothing in use. */
struct ISocketProvider {
    const struct rs_provider_ops *ops;
    atomic_uint refs;
};

/* A provider with nothing but its operations; rs_provider_free is its destroy. */
ISocketProvider *rs_provider_new(const struct rs_provider_ops *ops);
void rs_provider_init(ISocketProvider *p, const struct rs_provider_ops *ops); /* refs 1 */
void rs_provider_free(ISocketProvider *p);
ISocketProvider *rs_provider_ref(ISocketProvider *p); /* NULL stays NULL */

/* What a security layer (TLS, DTLS) does with a context: the engine calls it for the
 * functions that need certificates, without depending on the layer. */
struct rs_context_layer_ops {
    const uint8_t *(*fingerprint)(ISocketContext *ctx, size_t *length);
    /* Why a PEM (NUL-terminated) cannot be this end's certificate and key; NULL: it can. */
    const char *(*check_identity)(ISocketContext *ctx, const uint8_t *pem, size_t len);
    void (*free)(void *layer);
};

/* Settings a context carries. Layers hang their own state off `layer`; `gen` counts
 * changes, so a layer rebuilds what it derived (new connections only). */
struct ISocketContext {
    IInstanceLog *log;
    unsigned gen;
    bool dtls, srtp;
    bool client_cert_disabled;
    bool verify_off;          /* client: do not verify the server (extension) */
    bool ktls;                /* kernel TLS asked for (not offloaded yet: api.md's fallback) */
    bool require_client_cert; /* server: ask for and verify a client certificate */
    uint8_t *server_cert, *client_cert, *trusted;
    size_t server_cert_len, client_cert_len, trusted_len;
    char *server_host, *client_host;
    char **alpn; /* NULL-terminated copy */
    const struct rs_context_layer_ops *layer_ops;
    void *layer;
};

/* Whether the context's layer can use pem as a certificate and key; if not, it says why in
 * the log (an error: whatever the flags), naming who asked. */
bool rs_context_identity_usable(ISocketContext *c, const char *who, const uint8_t *pem, size_t len);

#endif
