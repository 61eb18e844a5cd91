/* The environment every TLS suite file shares (tls_env.h). */
#include "tls_env.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct h_env env;
ISocketProvider *tls;
ISocketContext *sctx, *cctx;

void tls_env_init(void)
{
    h_env_init(&env);
    tls = CreateTLSSocketProvider(env.tcp);
    sctx = ISocketProvider_CreateSocketContext(tls, env.log);
    cctx = ISocketProvider_CreateSocketContext(tls, env.log);
    ISocketContext_SetVerifyPeer(cctx, false); /* the server's certificate is self-signed */
}

void tls_env_fini(void)
{
    ISocketContext_Delete(sctx);
    ISocketContext_Delete(cctx);
    ISocketProvider_Delete(tls);
    h_env_fini(&env);
}

uint16_t tls_listen(struct h_sock *l)
{
    return h_listen_on(&env, tls, sctx, l, "127.0.0.1");
}

ISocket *tls_client(struct h_sock *c, uint16_t port, const char *name)
{
    return h_connect_on(&env, tls, cctx, c, port, name);
}

struct h_sock *tls_connected(struct h_sock *l, struct h_sock *c, uint16_t *port)
{
    uint16_t p = tls_listen(l);
    if (port)
        *port = p;
    tls_client(c, p, "localhost");
    struct h_sock *srv = h_wait_accepted(&env, l, 1, 5000);
    cr_assert_not_null(srv, "no connection accepted: %s", h_dump(l));
    return srv;
}

double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

bool child_shut(struct h_env *e, void *arg)
{
    (void)e;
    struct child_arg *a = arg;
    return a->l->naccepted >= a->n && h_has_shutdown(a->l->accepted[a->n - 1]);
}
bool wait_child_shut(struct h_sock *l, size_t n, unsigned ms)
{
    struct child_arg a = {l, n};
    return h_run_until(&env, child_shut, &a, ms);
}

bool listen_count(struct h_env *e, void *arg)
{
    (void)e;
    struct child_arg *a = arg;
    return h_count(a->l, H_LISTEN_RESULT) >= a->n;
}

/* A child the application saw only through its end: the handshake failed. */
void assert_child_handshake_failed(struct h_sock *child)
{
    cr_assert(h_has_shutdown(child), "%s", h_dump(child));
    cr_assert_eq(h_count(child, H_ACCEPT_COMPLETE), 0, "%s", h_dump(child));
    cr_assert_eq(h_count(child, H_SHUTDOWN), 1, "%s", h_dump(child));
    cr_assert_eq(h_last(child, H_SHUTDOWN)->reason, SOCKET_TLS_HANDSHAKE_FAILED, "%s",
                 h_dump(child));
}

/* A good client still gets served: echo of a short message, then a clean close. */
void assert_listener_serves(struct h_sock *l, uint16_t port)
{
    l->echo = true; /* for the connections from now on */
    struct h_sock *c = h_sock_new(&env);
    tls_client(c, port, "localhost");
    static const char msg[] = "still serving";
    static char in[sizeof(msg)];
    CALL(ISocket_Send(c->sock, msg, sizeof(msg)));
    CALL(ISocket_Recv(c->sock, in, sizeof(in), false));
    cr_assert(h_wait_count(&env, c, H_RECV_RESULT, 1, 4000), "client: %s", h_dump(c));
    cr_assert_eq(c->ev[0].kind, H_CONNECT_COMPLETE, "%s", h_dump(c));
    cr_assert_arr_eq(in, msg, sizeof(msg));
    cr_assert_eq(h_count(c, H_SHUTDOWN), 0, "%s", h_dump(c));
    CALL(ISocket_Shutdown(c->sock));
    cr_assert(h_wait_count(&env, c, H_SHUTDOWN, 1, 3000), "%s", h_dump(c));
    cr_assert_eq(h_last(c, H_SHUTDOWN)->reason, SOCKET_SHUTDOWN_NORMAL);
    CALL(ISocket_Delete(c->sock));
    c->sock = NULL;
    h_sock_free(c);
}

/* Reads from a raw socket until the peer closes (EOF or reset) or timeout. */
bool raw_wait_closed(int fd, unsigned timeout_ms)
{
    uint8_t buf[4096];
    double end = now_s() + timeout_ms / 1000.0;
    while (now_s() < end) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int r = poll(&p, 1, 50);
        if (r <= 0)
            continue;
        ssize_t n = recv(fd, buf, sizeof(buf), 0);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
            return true;
    }
    return false;
}

bool stats_received(struct h_env *e, void *arg)
{
    (void)e;
    struct h_sock *hs = arg;
    ISocketStats st;
    ISocket_GetStats(hs->sock, &st);
    return st.bytesReceived >= (uint64_t)(uintptr_t)hs->ctx;
}

bool received_or_kernel_rx(struct h_env *e, void *arg)
{
    struct h_sock *hs = arg;
    return stats_received(e, hs) || (ISocket_GetKernelTLS(hs->sock) & KTLS_RX);
}

/* Waits until the socket has decrypted hs->ctx bytes into an outstanding Recv. Once the
 * kernel opens the records (RINGSOCK_KTLS=1 where the kernel has the tls ULP) they land
 * in the buffer unseen until the receive completes: then the bytes get time to arrive,
 * and the test's checks hold whether or not they did. */
bool wait_received(struct h_sock *hs)
{
    if (!h_run_until(&env, received_or_kernel_rx, hs, 3000))
        return false;
    if (!stats_received(&env, hs))
        h_run_for(&env, 300);
    return true;
}
