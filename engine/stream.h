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
#endif
