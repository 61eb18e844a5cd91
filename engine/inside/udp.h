/* Plain UDP sockets, and the hook through which a layer over them (DTLS) joins the
 * engine's UDP provider (CreateUDPSocketProvider, engine/udp.c). */
#ifndef RS_UDP_H
#define RS_UDP_H

#include "ringsock/socket.h"

ISocket *rs_udp_create_socket(IIoMux *iomux, USocket *user, IInstanceLog *log, bool useIPv6);

/* What the layer adds to the UDP provider: its sockets for a context with EnableDTLS, and
 * what it hangs on each new context (certificates). The layer registers itself from a
 * constructor in the object that defines ISocketContext_EnableDTLS, so a static link that
 * enables DTLS brings the layer, and one that uses plain UDP alone brings no wolfSSL;
 * unregistered, the provider makes plain UDP sockets and contexts carry only settings. */
struct rs_udp_layer {
    ISocket *(*create_socket)(IIoMux *iomux, USocket *user, IInstanceLog *log, bool useIPv6,
                              ISocketContext *ctx);
    void (*init_context)(ISocketContext *ctx);
};
void rs_udp_register_layer(const struct rs_udp_layer *layer);

#endif
