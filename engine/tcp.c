/* TCP: the stream core with IP addresses, TCP_NODELAY and DSCP. */
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>

#include "provider.h"
#include "stream.h"

static int tcp_configure(struct rs_stream *s, int fd, bool listener)
{
    (void)s;
    (void)listener; /* accepted sockets inherit TCP_NODELAY from the listener */
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return 0;
}

static const struct rs_stream_type tcp_type = {
    .ops = &rs_tcp_stream_ops,
    .log_flag = LOG_TCP,
    .parse_connect = rs_addr_parse_hostport,
    .parse_bind = rs_addr_parse_bind,
    .configure = tcp_configure,
    .format = rs_addr_format_ip,
};

static ISocket *tcp_create_socket(ISocketProvider *p, IIoMux *iomux, USocket *user,
                                  IInstanceLog *log, bool useIPv6, ISocketContext *ctx)
{
    (void)p;
    (void)ctx;
    return rs_stream_create(&tcp_type, iomux, user, log, useIPv6);
}

static const struct rs_provider_ops tcp_provider_ops = {
    .create_socket = tcp_create_socket,
    .destroy = rs_provider_free,
};

ISocketProvider *CreateTCPSocketProvider(void)
{
    return rs_provider_new(&tcp_provider_ops);
}
