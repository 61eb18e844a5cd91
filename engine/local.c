/* Local (Unix domain) stream sockets: the stream core with filesystem paths and
 * "@name" for the Linux abstract namespace. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "provider.h"
#include "stream.h"

/* "@name" is abstract (leading NUL, no file); anything else a path. */
static bool local_parse(const char *text, struct rs_sockaddr *out)
{
    memset(out, 0, sizeof(*out));
    if (!text || !*text)
        return false;
    size_t n = strlen(text);
    if (n >= sizeof(out->u.un.sun_path))
        return false; /* would be truncated: refuse rather than bind elsewhere */
    out->u.un.sun_family = AF_UNIX;
    if (text[0] == '@') {
        if (n < 2)
            return false;
        memcpy(out->u.un.sun_path + 1, text + 1, n - 1);
        out->len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
    } else {
        memcpy(out->u.un.sun_path, text, n + 1);
        out->len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
    }
    return true;
}

static bool local_parse_bind(const char *addr, uint16_t port, bool v6, struct rs_sockaddr *out)
{
    (void)port;
    (void)v6;
    return local_parse(addr, out);
}

static bool is_abstract(const struct rs_sockaddr *a)
{
    return a->u.un.sun_path[0] == '\0';
}

/* A socket file left by a dead process refuses connections: remove it. A live one, or
 * a file that is not a socket, stays (bind then fails). */
static int local_before_bind(struct rs_stream *s, const struct rs_sockaddr *addr)
{
    (void)s;
    if (is_abstract(addr))
        return 0;
    struct stat st;
    if (lstat(addr->u.un.sun_path, &st) < 0)
        return 0;
    if (!S_ISSOCK(st.st_mode))
        return ENOTSOCK;
    int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (probe < 0)
        return errno;
    int r = connect(probe, &addr->u.sa, addr->len);
    int err = errno;
    close(probe);
    if (r == 0)
        return EADDRINUSE; /* somebody serves it */
    if (err == ECONNREFUSED)
        unlink(addr->u.un.sun_path);
    return 0;
}

static void local_after_bind(struct rs_stream *s, const struct rs_sockaddr *addr)
{
    (void)s;
    if (!is_abstract(addr))
        chmod(addr->u.un.sun_path, 0666); /* read/write for all users, as the SDK does */
}

static void local_format(const struct sockaddr *sa, socklen_t len, char *out, size_t size,
                         uint16_t *port)
{
    const struct sockaddr_un *un = (const struct sockaddr_un *)sa;
    size_t off = offsetof(struct sockaddr_un, sun_path);
    size_t n = len > off ? len - off : 0;
    if (port)
        *port = 0;
    if (size == 0)
        return;
    out[0] = '\0';
    if (sa->sa_family != AF_UNIX || n == 0)
        return; /* an unnamed (client) socket */
    if (un->sun_path[0] == '\0') {
        if (size < 2)
            return; /* not even the '@' fits */
        size_t k = n - 1 < size - 2 ? n - 1 : size - 2;
        out[0] = '@';
        memcpy(out + 1, un->sun_path + 1, k);
        out[k + 1] = '\0';
    } else {
        size_t k = strnlen(un->sun_path, n);
        if (k >= size)
            k = size - 1;
        memcpy(out, un->sun_path, k);
        out[k] = '\0';
    }
}

static const struct rs_stream_type local_type = {
    .ops = &rs_local_stream_ops,
    .log_flag = LOG_LDS,
    .parse_connect = local_parse,
    .parse_bind = local_parse_bind,
    .before_bind = local_before_bind,
    .after_bind = local_after_bind,
    .format = local_format,
};

static ISocket *local_create_socket(ISocketProvider *p, IIoMux *iomux, USocket *user,
                                    IInstanceLog *log, bool useIPv6, ISocketContext *ctx)
{
    (void)p;
    (void)ctx;
    return rs_stream_create(&local_type, iomux, user, log, useIPv6);
}

static const struct rs_provider_ops local_provider_ops = {
    .create_socket = local_create_socket,
    .destroy = rs_provider_free,
};

ISocketProvider *CreateLocalSocketProvider(void)
{
    return rs_provider_new(&local_provider_ops);
}
