/* The UDP socket provider: plain UDP sockets, or DTLS ones when the socket's context
 * has EnableDTLS. It lives here, above the engine, because a DTLS socket is a layer
 * over a UDP socket; the engine's UDP sockets know nothing of it. */
#include "dtls.h"
#include "provider.h"
#include "tls_context.h"
#include "udp.h"

static ISocket *create_socket(ISocketProvider *p, IIoMux *iomux, USocket *user, IInstanceLog *log,
                              bool useIPv6, ISocketContext *ctx)
{
    (void)p;
    if (ctx && ctx->dtls)
        return rs_dtls_create_socket(iomux, user, log, useIPv6, ctx);
    return rs_udp_create_socket(iomux, user, log, useIPv6);
}

static const struct rs_provider_ops udp_provider_ops = {
    .create_socket = create_socket,
    /* contexts made here can carry certificates for DTLS */
    .init_context = rs_tls_context_attach,
    .destroy = rs_provider_free,
};

ISocketProvider *CreateUDPSocketProvider(void)
{
    return rs_provider_new(&udp_provider_ops);
}
