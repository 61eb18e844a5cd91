/* ringsock-starttls-server: the server side of StartTLS on the engine, for interop tests
 * (openssl s_client -starttls smtp).
 *
 *   ringsock-starttls-server [--port P] [--cert PEM]
 *
 * Speaks just enough SMTP over plain TCP: a 220 greeting; EHLO/HELO → 250-STARTTLS, 250 OK;
 * STARTTLS → 220 Ready to start TLS, and once that reply has left (its SocketSendResult) the
 * TCP socket goes to ISocketProvider_UpgradeToTLSSocket(initServerSide=true) on a TLS
 * provider made for upgrades only (CreateTLSSocketProvider(NULL)); QUIT → 221; anything
 * else → 500. After the handshake every byte that arrives is echoed. Bytes the client sent
 * after STARTTLS but before the handshake (RFC 3207 forbids pipelining it) close the
 * connection: they must not be taken as part of the TLS session.
 *
 * --cert: certificate chain and key (PEM); without it the engine's self-signed one.
 * Prints "listening on PORT"; for each connection "upgraded: TLS" or "closed: REASON" on
 * stderr. SIGINT/SIGTERM stop it. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <ringsock/socket.h>

#define BUF_SIZE     16384
#define LINE_MAX_LEN 1000 /* RFC 5321's limit on a command line */

enum cstate { C_PLAIN, C_UPGRADING, C_HANDSHAKE, C_TLS };

struct server {
    USocket user;
    IShutdownHandler shutdown;
    IIoMux *mux;
    IInstanceLog *log;
    ISocketProvider *tcp, *tls;
    ISocketContext *ctx;
    ISocket *listener;
    struct conn *conns;
};

struct conn {
    USocket plain_user, tls_user;
    struct server *srv;
    struct conn *prev, *next;
    ISocket *sock; /* the TCP socket, then the TLS one */
    enum cstate state;
    unsigned sends_out;
    size_t line_len;
    char line[LINE_MAX_LEN + 2];
    uint8_t buf[BUF_SIZE];
};

static void conn_free(struct conn *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        c->srv->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    if (c->sock)
        ISocket_Delete(c->sock);
    free(c);
}

static const USocketVtbl tls_vtbl;

static void reply(struct conn *c, const char *text)
{
    c->sends_out++;
    ISocket_Send(c->sock, text, strlen(text));
}

/* ---- after the upgrade: echo ---- */

static void tls_upgraded(USocket *u, ISocket *sock)
{
    struct conn *c = RINGSOCK_CONTAINER_OF(u, struct conn, tls_user);
    const char *alpn = ISocket_GetALPNProtocol(sock);
    fprintf(stderr, "ringsock-starttls-server: upgraded: TLS%s%s\n", alpn ? ", alpn " : "",
            alpn ? alpn : "");
    c->state = C_TLS;
    ISocket_Recv(sock, c->buf, BUF_SIZE, true);
}

static void tls_recv(USocket *u, ISocket *sock, void *buf, size_t len)
{
    (void)u;
    ISocket_Send(sock, buf, len); /* copied */
    ISocket_Recv(sock, buf, BUF_SIZE, true);
}

static void conn_shutdown(USocket *u, ISocket *sock, shutdownreason_t reason)
{
    struct conn *c = u->vtbl == &tls_vtbl ? RINGSOCK_CONTAINER_OF(u, struct conn, tls_user)
                                          : RINGSOCK_CONTAINER_OF(u, struct conn, plain_user);
    (void)sock;
    fprintf(stderr, "ringsock-starttls-server: closed: %s\n", SocketShutdownReasonToStr(reason));
    conn_free(c);
}

static const USocketVtbl tls_vtbl = {
    .SocketUpgradeToTLSComplete = tls_upgraded,
    .SocketRecvResult = tls_recv,
    .SocketShutdown = conn_shutdown,
};

/* ---- before: a line-based SMTP subset ---- */

static void upgrade(struct conn *c)
{
    struct server *s = c->srv;
    c->state = C_HANDSHAKE;
    /* The TLS socket owns the TCP socket from here; no receive is outstanding on it. */
    c->sock = ISocketProvider_UpgradeToTLSSocket(s->tls, c->sock, s->mux, &c->tls_user, s->log,
                                                 true, s->ctx);
}

/* One command line without its line end; false when the connection is done with. */
static bool command(struct conn *c, const char *line)
{
    if (!strncasecmp(line, "EHLO", 4) || !strncasecmp(line, "HELO", 4)) {
        reply(c, "250-ringsock\r\n250-STARTTLS\r\n250 OK\r\n");
    } else if (!strcasecmp(line, "STARTTLS")) {
        reply(c, "220 Ready to start TLS\r\n");
        c->state = C_UPGRADING; /* upgrade once the reply has left: conn_send_result */
        return false;
    } else if (!strcasecmp(line, "QUIT")) {
        reply(c, "221 Bye\r\n");
        ISocket_Shutdown(c->sock);
        return false;
    } else {
        reply(c, "500 Unrecognised command\r\n");
    }
    return true;
}

static void conn_recv(USocket *u, ISocket *sock, void *buf, size_t len)
{
    struct conn *c = RINGSOCK_CONTAINER_OF(u, struct conn, plain_user);
    const char *p = buf, *end = p + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
        if (c->line_len + n > LINE_MAX_LEN) {
            reply(c, "500 Line too long\r\n");
            ISocket_Shutdown(sock);
            return;
        }
        memcpy(c->line + c->line_len, p, n);
        c->line_len += n;
        p += n;
        if (!nl)
            break;
        p++; /* the '\n' */
        if (c->line_len > 0 && c->line[c->line_len - 1] == '\r')
            c->line_len--;
        c->line[c->line_len] = '\0';
        c->line_len = 0;
        if (!command(c, c->line)) {
            if (c->state == C_UPGRADING && p < end) {
                fprintf(stderr, "ringsock-starttls-server: bytes after STARTTLS: closing\n");
                c->state = C_PLAIN;
                ISocket_Shutdown(sock);
            }
            return; /* no receive outstanding: the upgrade needs none */
        }
    }
    ISocket_Recv(sock, c->buf, BUF_SIZE, true);
}

static void conn_send_result(USocket *u, ISocket *sock)
{
    struct conn *c = RINGSOCK_CONTAINER_OF(u, struct conn, plain_user);
    (void)sock;
    if (--c->sends_out == 0 && c->state == C_UPGRADING)
        upgrade(c);
}

static void conn_accepted(USocket *u, ISocket *sock)
{
    struct conn *c = RINGSOCK_CONTAINER_OF(u, struct conn, plain_user);
    c->sock = sock;
    reply(c, "220 ringsock ESMTP StartTLS test server\r\n");
    ISocket_Recv(sock, c->buf, BUF_SIZE, true);
}

static const USocketVtbl plain_vtbl = {
    .SocketAcceptComplete = conn_accepted,
    .SocketRecvResult = conn_recv,
    .SocketSendResult = conn_send_result,
    .SocketShutdown = conn_shutdown,
};

/* ---- the listener ---- */

static void srv_bind_result(USocket *u, ISocket *sock, const char *addr, uint16_t port)
{
    (void)u;
    (void)sock;
    (void)addr;
    printf("listening on %u\n", port);
    fflush(stdout);
}

static void srv_listen_result(USocket *u, ISocket *sock, const char *addr, uint16_t port)
{
    struct server *s = RINGSOCK_CONTAINER_OF(u, struct server, user);
    (void)addr;
    (void)port;
    struct conn *c = calloc(1, sizeof(*c));
    if (!c) {
        ISocket_Accept(sock, NULL);
        return;
    }
    c->plain_user.vtbl = &plain_vtbl;
    c->tls_user.vtbl = &tls_vtbl;
    c->srv = s;
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    ISocket_Accept(sock, &c->plain_user);
}

static void srv_shutdown(USocket *u, ISocket *sock, shutdownreason_t reason)
{
    struct server *s = RINGSOCK_CONTAINER_OF(u, struct server, user);
    fprintf(stderr, "ringsock-starttls-server: listener closed: %s\n",
            SocketShutdownReasonToStr(reason));
    ISocket_Delete(sock);
    s->listener = NULL;
    IIoMux_Terminate(s->mux);
}

static const USocketVtbl srv_vtbl = {
    .SocketBindResult = srv_bind_result,
    .SocketListenResult = srv_listen_result,
    .SocketShutdown = srv_shutdown,
};

static void on_signal(IShutdownHandler *h)
{
    struct server *s = RINGSOCK_CONTAINER_OF(h, struct server, shutdown);
    IIoMux_ShutdownComplete(s->mux, h); /* main closes what is left */
}

static void on_signal_timeout(IShutdownHandler *h)
{
    (void)h;
}

static const struct IShutdownHandlerVtbl shutdown_vtbl = {on_signal, on_signal_timeout};

int main(int argc, char **argv)
{
    unsigned port = 0;
    const char *cert = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--port") && i + 1 < argc) {
            port = (unsigned)atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--cert") && i + 1 < argc) {
            cert = argv[++i];
        } else {
            fprintf(stderr, "usage: %s [--port P] [--cert PEM]\n", argv[0]);
            return 2;
        }
    }
    static struct server s = {.user.vtbl = &srv_vtbl, .shutdown.vtbl = &shutdown_vtbl};
    s.mux = IIoMux_Create();
    if (!s.mux)
        return 1;
    s.log = IInstanceLog_Create("ringsock-starttls-server", 0);
    s.tcp = CreateTCPSocketProvider();
    s.tls = CreateTLSSocketProvider(NULL); /* upgrades only */
    s.ctx = ISocketProvider_CreateSocketContext(s.tls, s.log);
    if (cert) {
        FILE *f = fopen(cert, "rb");
        static uint8_t pem[65536];
        size_t n = f ? fread(pem, 1, sizeof(pem), f) : 0;
        if (!f || ferror(f) || n == sizeof(pem)) {
            fprintf(stderr, "%s: cannot read %s\n", argv[0], cert);
            return 1;
        }
        fclose(f);
        ISocketContext_SetServerCertificate(s.ctx, pem, n, NULL);
    }
    IIoMux_RegisterShutdownHandler(s.mux, &s.shutdown);
    s.listener = ISocketProvider_CreateSocket(s.tcp, s.mux, &s.user, s.log, false, NULL);
    ISocket_BindReuse(s.listener, "127.0.0.1", (uint16_t)port, true);
    ISocket_Listen(s.listener);
    IIoMux_Run(s.mux);

    while (s.conns)
        conn_free(s.conns);
    if (s.listener)
        ISocket_Delete(s.listener);
    ISocketContext_Delete(s.ctx);
    ISocketProvider_Delete(s.tls);
    ISocketProvider_Delete(s.tcp);
    IInstanceLog_Delete(s.log);
    IIoMux_Delete(s.mux);
    return 0;
}
