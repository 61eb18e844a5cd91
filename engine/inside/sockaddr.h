/* Address text <-> sockaddr for the socket types. Literals only, never DNS. */
#ifndef RS_SOCKADDR_H
#define RS_SOCKADDR_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "ringsock/ipaddr.h"

struct rs_sockaddr {
    union {
        struct sockaddr sa;
        struct sockaddr_in in4;
        struct sockaddr_in6 in6;
        struct sockaddr_un un;
        struct sockaddr_storage ss;
    } u;
    socklen_t len;
};

/* "a.b.c.d:port" or "[v6]:port", port 1..65535. */
bool rs_addr_parse_hostport(const char *text, struct rs_sockaddr *out);
/* A bind address: NULL or "" is the wildcard of the family v6 picks; "a.b.c.d", "v6"
 * or "[v6]" otherwise. Port 0 lets the kernel choose. */
bool rs_addr_parse_bind(const char *host, uint16_t port, bool v6, struct rs_sockaddr *out);
/* Room for any address text the engine reports: an IP address, a local path (sun_path). */
#define RS_ADDR_TEXT 108

/* Address text without port (IPv4-mapped shown as a.b.c.d) and the port. */
void rs_addr_format(const struct sockaddr *sa, char *out, size_t size, uint16_t *port);
/* The same with the rs_addr_format_fn shape (sockopt.h), for IP socket types. */
void rs_addr_format_ip(const struct sockaddr *sa, socklen_t len, char *out, size_t size,
                       uint16_t *port);
void rs_addr_to_ipaddr(const struct sockaddr *sa, IPaddr *addr, uint16_t *port);
bool rs_addr_is_loopback(const struct sockaddr *sa);

#endif
