#include <errno.h>
#include <netinet/in.h>
#include <string.h>

#include "sockaddr.h"
#include "sockopt.h"

void rs_fd_set_qos(int fd, int qos)
{
    static const int dscp[] = {[QOS_BEST_EFFORT] = 0, [QOS_AUDIO_VIDEO] = 34, [QOS_VOICE] = 46};
    static const int prio[] = {[QOS_BEST_EFFORT] = 0, [QOS_AUDIO_VIDEO] = 5, [QOS_VOICE] = 6};
    if (qos < 0 || qos > QOS_VOICE || fd < 0)
        return;
    struct rs_sockaddr a;
    a.len = sizeof(a.u);
    if (getsockname(fd, &a.u.sa, &a.len) < 0)
        return;
    int tos = dscp[qos] << 2;
    if (a.u.sa.sa_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_TCLASS, &tos, sizeof(tos));
    if (a.u.sa.sa_family == AF_INET || a.u.sa.sa_family == AF_INET6) /* v4 of dual-stack too */
        setsockopt(fd, IPPROTO_IP, IP_TOS, &tos, sizeof(tos));
    setsockopt(fd, SOL_SOCKET, SO_PRIORITY, &prio[qos], sizeof(int));
}

void rs_fd_local_address(int fd, rs_addr_format_fn format, char *out, unsigned size, uint16_t *port)
{
    struct rs_sockaddr a;
    a.len = sizeof(a.u);
    if (size > 0)
        out[0] = '\0';
    if (port)
        *port = 0;
    if (fd >= 0 && getsockname(fd, &a.u.sa, &a.len) == 0)
        format(&a.u.sa, a.len, out, size, port);
}

int rs_fd_bind(int fd, const struct sockaddr *sa, socklen_t len, bool reuse)
{
    int one = 1, zero = 0;
    if (reuse && sa->sa_family != AF_UNIX) {
        /* Also lets one loop per core share the port (SO_REUSEPORT). */
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
    }
    if (sa->sa_family == AF_INET6) /* "::" serves IPv4 too */
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
    return bind(fd, sa, len) < 0 ? errno : 0;
}
