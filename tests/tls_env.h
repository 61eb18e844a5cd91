/* What the TLS suite files (test_tls*.c but test_tls_certs.c, one executable) share: a
 * harness environment with a TLS provider over its TCP provider, a server context using
 * the certificate it generates and a client context that does not verify it, and the
 * helpers the suites wait and assert with. tls_env.c has them. */
#ifndef RS_TEST_TLS_ENV_H
#define RS_TEST_TLS_ENV_H

#include "harness.h"

extern struct h_env env;
extern ISocketProvider *tls;
extern ISocketContext *sctx, *cctx;

void tls_env_init(void);
void tls_env_fini(void);

uint16_t tls_listen(struct h_sock *l);
ISocket *tls_client(struct h_sock *c, uint16_t port, const char *name);
/* l listens (on *port where port is not NULL), c connects to it ("localhost"); returns the
 * server's end of the connection once its handshake is done (asserts it comes). */
struct h_sock *tls_connected(struct h_sock *l, struct h_sock *c, uint16_t *port);
double now_s(void);

/* The listener has handed out its n-th connection and that one has ended. */
struct child_arg {
    struct h_sock *l;
    size_t n;
};
bool child_shut(struct h_env *e, void *arg);
bool wait_child_shut(struct h_sock *l, size_t n, unsigned ms);
bool listen_count(struct h_env *e, void *arg); /* arg: child_arg, n listen results */
/* A child the application saw only through its end: the handshake failed. */
void assert_child_handshake_failed(struct h_sock *child);
/* A good client still gets served: echo of a short message, then a clean close. */
void assert_listener_serves(struct h_sock *l, uint16_t port);
/* Reads from a raw socket until the peer closes (EOF or reset) or timeout. */
bool raw_wait_closed(int fd, unsigned timeout_ms);
/* The socket has received hs->ctx bytes (its stats say so). */
bool stats_received(struct h_env *e, void *arg);
bool received_or_kernel_rx(struct h_env *e, void *arg);
/* Waits until the socket has decrypted hs->ctx bytes into an outstanding Recv, or the
 * kernel opens its records (then they land unseen until the receive completes). */
bool wait_received(struct h_sock *hs);

#endif
