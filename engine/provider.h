/* ISocketProvider and ISocketContext internals. */
#ifndef RS_PROVIDER_H
#define RS_PROVIDER_H

#include "ringsock/socket.h"

struct rs_provider_ops {
    ISocket *(*create_socket)(ISocketProvider *p, IIoMux *iomux, USocket *user, IInstanceLog *log,
                              bool useIPv6, ISocketContext *ctx);
    void (*destroy)(ISocketProvider *p);
};

struct ISocketProvider {
    const struct rs_provider_ops *ops;
};

/* A provider with nothing but its operations; rs_provider_free is its destroy. */
ISocketProvider *rs_provider_new(const struct rs_provider_ops *ops);
void rs_provider_free(ISocketProvider *p);

/* Settings a context carries. Layers (TLS, DTLS) hang their own state off `layer`
 * and free it through layer_free. */
struct ISocketContext {
    IInstanceLog *log;
    bool dtls, srtp;
    bool client_cert_disabled;
    uint8_t *server_cert, *client_cert;
    size_t server_cert_len, client_cert_len;
    char *server_host, *client_host;
    char **alpn; /* NULL-terminated copy */
    void *layer;
    void (*layer_free)(void *layer);
};

#endif
