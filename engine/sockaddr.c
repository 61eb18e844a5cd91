#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include "sockaddr.h"

static bool parse_port(const char *p, uint16_t *port, bool allow_zero)
{
    if (*p < '0' || *p > '9')
        return false;
    unsigned long v = 0;
    for (; *p; p++) {
        if (*p < '0' || *p > '9')
            return false;
        v = v * 10 + (unsigned long)(*p - '0');
        if (v > 65535)
            return false;
    }
    if (v == 0 && !allow_zero)
        return false;
    *port = (uint16_t)v;
    return true;
}

static bool set_v4(const char *host, uint16_t port, struct rs_sockaddr *out)
{
    memset(out, 0, sizeof(*out));
    if (inet_pton(AF_INET, host, &out->u.in4.sin_addr) != 1)
        return false;
    out->u.in4.sin_family = AF_INET;
    out->u.in4.sin_port = htons(port);
    out->len = sizeof(out->u.in4);
    return true;
}

static bool set_v6(const char *host, uint16_t port, struct rs_sockaddr *out)
{
    memset(out, 0, sizeof(*out));
    if (inet_pton(AF_INET6, host, &out->u.in6.sin6_addr) != 1)
        return false;
    out->u.in6.sin6_family = AF_INET6;
    out->u.in6.sin6_port = htons(port);
    out->len = sizeof(out->u.in6);
    return true;
}

bool rs_addr_parse_hostport(const char *text, struct rs_sockaddr *out)
{
    char host[INET6_ADDRSTRLEN + 2];
    uint16_t port;
    if (!text)
        return false;
    if (text[0] == '[') {
        const char *end = strchr(text, ']');
        if (!end || end[1] != ':' || (size_t)(end - text - 1) >= sizeof(host))
            return false;
        memcpy(host, text + 1, (size_t)(end - text - 1));
        host[end - text - 1] = '\0';
        return parse_port(end + 2, &port, false) && set_v6(host, port, out);
    }
    const char *colon = strrchr(text, ':');
    if (!colon || (size_t)(colon - text) >= sizeof(host))
        return false;
    memcpy(host, text, (size_t)(colon - text));
    host[colon - text] = '\0';
    return parse_port(colon + 1, &port, false) && set_v4(host, port, out);
}

bool rs_addr_parse_bind(const char *host, uint16_t port, bool v6, struct rs_sockaddr *out)
{
    if (!host || !*host)
        return v6 ? set_v6("::", port, out) : set_v4("0.0.0.0", port, out);
    size_t n = strlen(host);
    if (host[0] == '[' && n > 2 && host[n - 1] == ']') {
        char inner[INET6_ADDRSTRLEN];
        if (n - 2 >= sizeof(inner))
            return false;
        memcpy(inner, host + 1, n - 2);
        inner[n - 2] = '\0';
        return set_v6(inner, port, out);
    }
    return set_v4(host, port, out) || set_v6(host, port, out);
}

void rs_addr_format(const struct sockaddr *sa, char *out, size_t size, uint16_t *port)
{
    IPaddr ip;
    uint16_t p = 0;
    if (sa->sa_family == AF_INET || sa->sa_family == AF_INET6) {
        rs_addr_to_ipaddr(sa, &ip, &p);
        IPaddr_ToString(&ip, out, size);
    } else if (size > 0) {
        out[0] = '\0';
    }
    if (port)
        *port = p;
}

void rs_addr_format_ip(const struct sockaddr *sa, socklen_t len, char *out, size_t size,
                       uint16_t *port)
{
    (void)len;
    rs_addr_format(sa, out, size, port);
}

void rs_addr_to_ipaddr(const struct sockaddr *sa, IPaddr *addr, uint16_t *port)
{
    memset(addr, 0, sizeof(*addr));
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        addr->b[10] = addr->b[11] = 0xff;
        memcpy(&addr->b[12], &in->sin_addr, 4);
        *port = ntohs(in->sin_port);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        memcpy(addr->b, &in6->sin6_addr, 16);
        *port = ntohs(in6->sin6_port);
    } else {
        *port = 0;
    }
}

bool rs_addr_is_loopback(const struct sockaddr *sa)
{
    IPaddr ip;
    uint16_t port;
    if (sa->sa_family == AF_UNIX)
        return true;
    rs_addr_to_ipaddr(sa, &ip, &port);
    if (IPaddr_IsV4(&ip))
        return ip.b[12] == 127;
    static const uint8_t lo6[16] = {[15] = 1};
    return memcmp(ip.b, lo6, 16) == 0;
}
