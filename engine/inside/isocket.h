/* ISocket internals shared by every socket type: the operations table each type
 * implements, the common header every socket starts with, and the callback helpers
 * that are the only way a callback reaches the application. */
#ifndef RS_ISOCKET_H
#define RS_ISOCKET_H

#include "ringsock/socket.h"
#include "reactor.h"

enum rs_mode {
    RS_MODE_NEW,      /* neither Connect nor Bind yet */
    RS_MODE_CLIENT,   /* Connect called */
    RS_MODE_SERVER,   /* Bind called */
    RS_MODE_ACCEPTED, /* handed out by Accept */
};

/* A record read by kernel TLS that is not application data (rs_stream_caps.ktls_rx). */
typedef void (*rs_stream_record_fn)(void *arg, uint8_t type, const uint8_t *data, size_t len);

/* What a layer that owns a stream socket (TLS) may do with it. Only TCP and local sockets
 * have these; that they do is what makes a socket upgradable. */
struct rs_stream_caps {
    int (*fd)(const ISocket *s);
    /* The IP address the socket is connected to (or accepted from); false if it has none
     * (a local socket, not connected). */
    bool (*peer_ip)(const ISocket *s, IPaddr *addr);
    /* A receive buffer is outstanding (UpgradeToTLSSocket refuses such a socket). */
    bool (*receiving)(const ISocket *s);
    /* Whether the socket may read ahead of the next Recv through the loop's multishot
     * receive (on by default). The TLS layer turns it off while kernel TLS may still take
     * over receiving at a record boundary (a running receive stops; what it read ahead is
     * served first), and on again once it cannot. */
    void (*readahead)(ISocket *s, bool on);
    /* Bytes were, or may still be, read ahead of the next Recv (kernel TLS cannot take
     * over receiving then). */
    bool (*read_ahead)(const ISocket *s);
    /* Kernel TLS, NULL where the kernel has none (local sockets). ktls_tx: the tls ULP is
     * set up by the caller; sends carry plaintext the kernel
     * seals, so none goes out zero-copy. */
    void (*ktls_tx)(ISocket *s);
    /* Receives carry plaintext the kernel opened; a record that is not application data
     * (an alert, a post-handshake message) goes to fn, from the loop, instead of the
     * caller's buffer, and the receive goes on. A record the kernel refused to open comes
     * as type 0, data NULL and len the errno (EBADMSG: it does not authenticate; EMSGSIZE,
     * EINVAL: malformed); then the socket ends as lost. fn may delete the socket. */
    void (*ktls_rx)(ISocket *s, rs_stream_record_fn fn, void *arg);
};

struct rs_socket_ops {
    const char *name; /* "tcp", "local", ... for messages */
    void (*connect)(ISocket *s, const char *address, const char *serverName);
    void (*bind)(ISocket *s, const char *localAddr, uint16_t localPort, bool reuse);
    void (*get_local_address)(ISocket *s, char *out, unsigned size, uint16_t *port);
    void (*listen)(ISocket *s);
    void (*accept)(ISocket *s, USocket *user);
    void (*shutdown)(ISocket *s);
    void (*send)(ISocket *s, const void *buf, size_t len, bool nocopy);
    void (*send_to)(ISocket *s, const void *buf, size_t len, IPaddr addr, uint16_t port);
    void (*recv)(ISocket *s); /* the core holds the buffer (rs_core.rbuf) */
    /* Only with a receive outstanding: keeps what rs_core.rbuf holds for the next Recv and
     * stops the kernel's; ISocket_RecvCancel then hands the buffer back. */
    void (*recv_cancel)(ISocket *s);
    void (*set_qos)(ISocket *s, qostraffictype_t type);
    void (*destroy)(ISocket *s); /* ISocket_Delete */
    /* Optional (TLS, DTLS): */
    bool (*peer_fingerprint)(ISocket *s, uint8_t out[32]);
    const char *(*alpn_protocol)(ISocket *s);
    const char *(*srtp_profile)(ISocket *s);
    bool (*export_keying_material)(ISocket *s, const char *label, const uint8_t *context,
                                   size_t context_len, uint8_t *out, size_t len);
    unsigned (*kernel_tls)(ISocket *s);  /* KTLS_TX|KTLS_RX */
    const struct rs_stream_caps *stream; /* TCP and local sockets */
};

struct ISocket {
    const struct rs_socket_ops *ops;
    IIoMux *mux;
    USocket *user;
    IInstanceLog *log;
    enum LogFlags log_flag;
    enum rs_mode mode;
    bool in_listen_result; /* Accept is legal only now */
    bool accept_called;
    ISocketStats stats;
};

void rs_socket_init(ISocket *s, const struct rs_socket_ops *ops, IIoMux *mux, USocket *user,
                    IInstanceLog *log, enum LogFlags flag);

/* Logs the misuse under the socket's flag and aborts with a message naming the call. */
void rs_socket_misuse(ISocket *s, const char *what) __attribute__((noreturn));

/* Callbacks to the application. Each checks the never-before-return rule and applies
 * the SDK default for a NULL table entry. */
void rs_cb_connect_complete(ISocket *s);
void rs_cb_bind_result(ISocket *s, const char *addr, uint16_t port);
void rs_cb_listen_result(ISocket *s, const char *addr, uint16_t port);
void rs_cb_accept_complete(ISocket *s);
void rs_cb_shutdown(ISocket *s, shutdownreason_t reason);
void rs_cb_send_result(ISocket *s);
void rs_cb_recv_result(ISocket *s, void *buf, size_t len);
void rs_cb_recv_from_result(ISocket *s, void *buf, size_t len, IPaddr addr, uint16_t port);
void rs_cb_recv_canceled(ISocket *s, void *buf);
void rs_cb_upgrade_complete(ISocket *s);
bool rs_cb_accept_alpn(ISocket *s, const char *protocol); /* NULL entry: accept */

#endif
