/* The stream core shared by TCP and local sockets: connect, listen/accept, ordered
 * sends, receives into the caller's buffer, shutdown and safe deletion. A socket type
 * supplies an rs_stream_type; everything else is here. */
#ifndef RS_STREAM_H
#define RS_STREAM_H

#include "isocket.h"
#include "sockaddr.h"

struct rs_stream;

struct rs_stream_type {
    const struct rs_socket_ops *ops; /* rs_tcp_stream_ops or rs_local_stream_ops */
    enum LogFlags log_flag;
    /* Parses a Connect address; false: SOCKET_ADDRESS_INVALID. */
    bool (*parse_connect)(const char *text, struct rs_sockaddr *out);
    /* Parses a Bind address; false: SOCKET_ADDRESS_INVALID. */
    bool (*parse_bind)(const char *addr, uint16_t port, bool v6, struct rs_sockaddr *out);
    /* Socket options on a new descriptor, before bind or connect. Return 0 or a positive
     * errno. */
    int (*configure)(struct rs_stream *s, int fd, bool listener);
    /* Around a bind (a local socket clears a stale path before and sets its file mode
     * after). before_bind returns 0 or a positive errno. */
    int (*before_bind)(struct rs_stream *s, const struct rs_sockaddr *addr);
    void (*after_bind)(struct rs_stream *s, const struct rs_sockaddr *addr);
    /* Address text and port of a sockaddr, for callbacks and logs. */
    void (*format)(const struct sockaddr *sa, socklen_t len, char *out, size_t size,
                   uint16_t *port);
};

extern const struct rs_socket_ops rs_tcp_stream_ops;
extern const struct rs_socket_ops rs_local_stream_ops;

ISocket *rs_stream_create(const struct rs_stream_type *type, IIoMux *iomux, USocket *user,
                          IInstanceLog *log, bool useIPv6);
int rs_stream_fd(const ISocket *s);
/* The IP address the socket is connected to (or accepted from); false if it has none (a
 * local socket, not connected, or no stream socket at all). */
bool rs_stream_peer_ip(const ISocket *s, IPaddr *addr);
/* A receive buffer is outstanding (UpgradeToTLSSocket refuses such a socket). */
bool rs_stream_receiving(const ISocket *s);
/* The TLS layer reads record by record: no multishot receive (a running one stops; what
 * it read ahead is served first). Any other socket (or NULL) is left alone. */
void rs_stream_no_readahead(ISocket *s);
/* Bytes were, or may still be, read ahead of the next Recv (kernel TLS cannot take over
 * receiving then). */
bool rs_stream_read_ahead(const ISocket *s);
void rs_stream_set_qos(ISocket *s, qostraffictype_t type);

/* Kernel TLS (the tls ULP set up by the caller): sends carry plaintext the kernel seals,
 * so none goes out zero-copy. */
void rs_stream_ktls_tx(ISocket *s);
/* Receives carry plaintext the kernel opened; a record that is not application data
 * (an alert, a post-handshake message) goes to fn, from the loop, instead of the
 * caller's buffer, and the receive goes on. A record the kernel refused to open comes as
 * type 0, data NULL and len the errno (EBADMSG: it does not authenticate; EMSGSIZE,
 * EINVAL: malformed); then the socket ends as lost. fn may delete the socket. */
typedef void (*rs_stream_record_fn)(void *arg, uint8_t type, const uint8_t *data, size_t len);
void rs_stream_ktls_rx(ISocket *s, rs_stream_record_fn fn, void *arg);

#endif
