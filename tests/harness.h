/* Test harness: a recording USocket, a loop runner with a watchdog, raw-socket peers.
 *
 * Every API call a test makes goes through CALL(), which marks "inside an API call";
 * every recorded callback asserts that mark is clear, so any callback that runs
 * inside the call that caused it fails the test. */
#ifndef RS_TEST_HARNESS_H
#define RS_TEST_HARNESS_H

#include <criterion/criterion.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ringsock/socket.h>

#include "proc.h"

#define h_container_of(p, T, m) ((T *)((char *)(p)-offsetof(T, m)))
/* Programs written to api.md bring their own container_of: the header must leave the name
 * free, or this redefinition fails every suite's -Werror build. */
#define container_of(p, T, m) h_container_of(p, T, m)

extern int h_in_api;
#define CALL(expr)                                                                                 \
    do {                                                                                           \
        h_in_api++;                                                                                \
        expr;                                                                                      \
        h_in_api--;                                                                                \
    } while (0)

enum h_kind {
    H_CONNECT_COMPLETE,
    H_BIND_RESULT,
    H_LISTEN_RESULT,
    H_ACCEPT_COMPLETE,
    H_SHUTDOWN,
    H_SEND_RESULT,
    H_RECV_RESULT,
    H_RECV_FROM_RESULT,
    H_RECV_CANCELED,
};
const char *h_kind_name(enum h_kind k);

struct h_event {
    enum h_kind kind;
    ISocket *sock;
    shutdownreason_t reason;
    void *buf;
    size_t len;
    char addr[128];
    uint16_t port;
};

struct h_env;

/* A recording USocket. Behaviour switches let tests script common reactions. */
struct h_sock {
    USocket user;
    struct h_env *env;
    ISocket *sock;
    struct h_event *ev;
    size_t nev, cap;
    /* reactions */
    bool delete_on_shutdown; /* ISocket_Delete inside SocketShutdown (sock set NULL) */
    bool reject;             /* listener: Accept(NULL) */
    bool echo;               /* connected: send back whatever arrives, receive again */
    bool sink;               /* connected: keep receiving (partial) into echo_buf */
    uint8_t *echo_buf;
    size_t echo_len;
    struct h_sock **accepted; /* listener: the h_socks handed to Accept, in order */
    size_t naccepted, accepted_cap;
    bool deleted; /* set when deleted by a reaction */
    /* data sink: SocketRecvResult bytes appended here when collect is set */
    bool collect;
    uint8_t *data;
    size_t data_len, data_cap;
    void (*on_event)(struct h_sock *hs, const struct h_event *e); /* optional hook */
    void *ctx;
};

struct h_env {
    IIoMux *mux;
    ISocketProvider *tcp;
    IInstanceLog *log;
    ITimer *watchdog, *poll;
    UTimer watchdog_user, poll_user;
    bool timed_out;
    bool (*cond)(struct h_env *env, void *arg);
    void *cond_arg;
    char log_lines[64][256]; /* the last log lines, for assertions */
    unsigned nlog;
};

void h_env_init(struct h_env *env);
/* h_env_fini checks for leaks (h_check_leaks, proc.h) after freeing the environment. */
void h_env_fini(struct h_env *env);
/* Runs the loop until cond(env, arg) holds (checked after every callback and every
 * 2 ms) or timeout_ms passes. Returns true if the condition held. */
bool h_run_until(struct h_env *env, bool (*cond)(struct h_env *, void *), void *arg,
                 unsigned timeout_ms);
/* Runs the loop for ms milliseconds. */
void h_run_for(struct h_env *env, unsigned ms);
/* True if a log line contains needle. */
bool h_log_contains(struct h_env *env, const char *needle);
/* The last 64 log lines, oldest first, as one string for failure messages (a static buffer:
 * use it before the next call). */
const char *h_logs(struct h_env *env);

struct h_sock *h_sock_new(struct h_env *env);
void h_sock_free(struct h_sock *hs); /* deletes its ISocket if still there */
ISocket *h_tcp_socket(struct h_env *env, struct h_sock *hs, bool v6);
size_t h_count(const struct h_sock *hs, enum h_kind k);
const struct h_event *h_last(const struct h_sock *hs, enum h_kind k);
bool h_has_shutdown(const struct h_sock *hs);
/* Waits for one event kind on a socket (count reaching n). */
bool h_wait_count(struct h_env *env, struct h_sock *hs, enum h_kind k, size_t n,
                  unsigned timeout_ms);
/* Waits until a listener has handed out n connections and each has AcceptComplete.
 * Returns the n-th (1-based) accepted h_sock, or NULL on timeout. */
struct h_sock *h_wait_accepted(struct h_env *env, struct h_sock *listener, size_t n,
                               unsigned timeout_ms);
/* Formats the event list, for failure messages. */
const char *h_dump(const struct h_sock *hs);

/* A listening ringsock TCP server on 127.0.0.1 (or [::1]) whose connections are
 * h_socks with the given reaction flags. Returns the port. */
uint16_t h_listen(struct h_env *env, struct h_sock *listener, const char *addr);
/* The same on any provider (TLS, local...) with a context. */
uint16_t h_listen_on(struct h_env *env, ISocketProvider *provider, ISocketContext *ctx,
                     struct h_sock *listener, const char *addr);
/* A client of that provider connecting to 127.0.0.1:port. */
ISocket *h_connect_on(struct h_env *env, ISocketProvider *provider, ISocketContext *ctx,
                      struct h_sock *client, uint16_t port, const char *serverName);
/* "127.0.0.1:port" (a static buffer: use it before the next call). */
const char *h_addr(uint16_t port);

/* The context's certificate fingerprint (asserts there is one, 32 bytes). */
const uint8_t *h_ctx_fp(ISocketContext *ctx);
/* Asserts the socket's peer certificate has the fingerprint want. */
void h_assert_peer_fp(struct h_sock *hs, const uint8_t want[32]);

/* Runs scenario in a forked child with stderr in a pipe and asserts that the child dies
 * of SIGABRT with needle in its output (the child must build its own IIoMux). */
void h_expect_abort(void (*scenario)(void), const char *needle);

/* Raw kernel sockets, for peers that must misbehave. */
int h_raw_connect(const char *ip, uint16_t port); /* blocking connect, returns fd */
int h_raw_listen(const char *ip, uint16_t *port); /* listening fd on an ephemeral port */
void h_raw_reset(int fd);                         /* close with RST (SO_LINGER 0) */
/* Whether this kernel takes TCP_ULP "tls" on a connected loopback pair, as ringsock does:
 * kernel TLS tests expect offload where it does and the user-space fallback elsewhere. */
bool h_kernel_has_tls_ulp(void);
void h_raw_write_all(int fd, const void *buf, size_t len);
size_t h_raw_read_n(int fd, void *buf, size_t len, unsigned timeout_ms);
/* Runs the loop until fd has something to read (or timeout_ms passed): for a raw peer
 * that waits for what a ringsock socket sends from the loop. */
bool h_wait_readable(struct h_env *env, int fd, unsigned timeout_ms);

/* Deletes the sockets of the connections the listener handed to the application (those
 * that reached SocketAcceptComplete or SocketShutdown); returns how many it never got:
 * the ones the engine still holds. */
size_t h_delete_accepted(struct h_sock *listener);

/* The index of the first byte where a and b differ; n when they do not (duplex.c). */
size_t h_first_diff(const uint8_t *a, const uint8_t *b, size_t n);

/* Every connection the listener (arg: its h_sock) handed out has either completed or
 * ended, so none is left inside the engine when the test frees its sockets. */
bool h_listener_settled(struct h_env *env, void *arg);
/* Waits (3 s) for h_listener_settled, failing the test if a connection is stuck in its
 * handshake, then frees the listener. */
void h_listener_free(struct h_env *env, struct h_sock *l);

#endif
