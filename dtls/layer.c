/* The DTLS layer's place in the engine's UDP provider: a context with EnableDTLS makes
 * DTLS sockets, and every context of the provider can carry certificates. EnableDTLS is
 * defined beside the registration so that whatever enables DTLS links the layer (udp.h). */
#include "dtls.h"
#include "tls_context.h"
#include "udp.h"

static const struct rs_udp_layer dtls_layer = {
    .create_socket = rs_dtls_create_socket,
    .init_context = rs_tls_context_attach,
};

__attribute__((constructor)) static void register_dtls_layer(void)
{
    rs_udp_register_layer(&dtls_layer);
}

void ISocketContext_EnableDTLS(ISocketContext *c, bool useSrtp)
{
    c->dtls = true;
    c->srtp = useSrtp;
    c->gen++;
}
