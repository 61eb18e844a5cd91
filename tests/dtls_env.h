/* Shared setup of the DTLS test suites: a harness environment, a UDP provider and a server
 * and a client context on it. Static: each suite has its own. */
#ifndef RS_TEST_DTLS_ENV_H
#define RS_TEST_DTLS_ENV_H

#include "harness.h"

static struct h_env env;
static ISocketProvider *udp;
static ISocketContext *sctx, *cctx;

static inline void dtls_env_init(void)
{
    h_env_init(&env);
    udp = CreateUDPSocketProvider();
    sctx = ISocketProvider_CreateSocketContext(udp, env.log);
    cctx = ISocketProvider_CreateSocketContext(udp, env.log);
}

static inline void dtls_env_fini(void)
{
    ISocketContext_Delete(sctx);
    ISocketContext_Delete(cctx);
    ISocketProvider_Delete(udp);
    h_env_fini(&env);
}

static inline void enable(bool srtp)
{
    ISocketContext_EnableDTLS(sctx, srtp);
    ISocketContext_EnableDTLS(cctx, srtp);
}

static inline uint16_t dtls_listen(struct h_sock *l)
{
    return h_listen_on(&env, udp, sctx, l, "127.0.0.1");
}

static inline ISocket *dtls_client(struct h_sock *c, uint16_t port)
{
    return h_connect_on(&env, udp, cctx, c, port, NULL);
}

#endif
