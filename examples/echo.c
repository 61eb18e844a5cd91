/* ringsock-echo: an echo server on the engine.
 *
 *   ringsock-echo [--port P] [--addr A] [--v6]     TCP
 *   ringsock-echo --udp [--port P] [--addr A]       UDP: each datagram goes back to its sender
 *   ringsock-echo --local PATH                      Unix stream socket (PATH or @name)
 *
 * Prints "listening on PORT" (for --local: "listening on PATH") once bound;
 * SIGINT/SIGTERM stop it cleanly. Each
 * connection receives into its own buffer, sends what arrived (the engine copies)
 * and receives again at once, unless MAX_SENDS_OUT sends are still queued: a client
 * that stops reading stops being read. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ringsock/socket.h>

#define container_of(p, T, m) ((T *)((char *)(p)-offsetof(T, m)))
#define BUF_SIZE              65536
#define MAX_SENDS_OUT         4

struct server {
    USocket user; /* the listener's callbacks */
    USocket udp_user;
    uint8_t *udp_buf;
    IShutdownHandler shutdown;
    IIoMux *mux;
    ISocketProvider *tcp;
    IInstanceLog *log;
    ISocket *listener;
    struct conn *conns; /* every live connection, to close them on shutdown */
    bool stopping;
};

struct conn {
    USocket user;
    struct server *srv;
    ISocket *sock;
    struct conn *prev, *next;
    unsigned sends_out; /* sends without SendResult yet: bounds what the engine queues */
    bool paused;
    uint8_t buf[BUF_SIZE];
};

static void conn_unlink(struct conn *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        c->srv->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
}

static void maybe_done(struct server *s)
{
    if (s->stopping && !s->listener && !s->conns)
        IIoMux_ShutdownComplete(s->mux, &s->shutdown);
}

static void conn_recv_result(USocket *u, ISocket *sock, void *buf, size_t len)
{
    struct conn *c = container_of(u, struct conn, user);
    ISocket_Send(sock, buf, len);
    if (++c->sends_out < MAX_SENDS_OUT)
        ISocket_Recv(sock, buf, BUF_SIZE, true);
    else
        c->paused = true;
}

static void conn_send_result(USocket *u, ISocket *sock)
{
    struct conn *c = container_of(u, struct conn, user);
    c->sends_out--;
    if (c->paused) {
        c->paused = false;
        ISocket_Recv(sock, c->buf, BUF_SIZE, true);
    }
}

static void conn_accept_complete(USocket *u, ISocket *sock)
{
    struct conn *c = container_of(u, struct conn, user);
    c->sock = sock;
    ISocket_Recv(sock, c->buf, BUF_SIZE, true);
}

static void conn_shutdown(USocket *u, ISocket *sock, shutdownreason_t reason)
{
    struct conn *c = container_of(u, struct conn, user);
    (void)reason;
    ISocket_Delete(sock);
    conn_unlink(c);
    struct server *s = c->srv;
    free(c);
    maybe_done(s);
}

static const USocketVtbl conn_vtbl = {
    .SocketAcceptComplete = conn_accept_complete,
    .SocketShutdown = conn_shutdown,
    .SocketRecvResult = conn_recv_result,
    .SocketSendResult = conn_send_result,
};

static void srv_bind_result(USocket *u, ISocket *sock, const char *addr, uint16_t port)
{
    (void)u;
    (void)sock;
    if (port)
        printf("listening on %u\n", port);
    else
        printf("listening on %s\n", addr);
    fflush(stdout);
}

static void srv_listen_result(USocket *u, ISocket *sock, const char *addr, uint16_t port)
{
    struct server *s = container_of(u, struct server, user);
    (void)addr;
    (void)port;
    struct conn *c = malloc(sizeof(*c));
    if (!c || s->stopping) {
        free(c);
        ISocket_Accept(sock, NULL);
        return;
    }
    c->user.vtbl = &conn_vtbl;
    c->srv = s;
    c->sock = NULL;
    c->sends_out = 0;
    c->paused = false;
    c->prev = NULL;
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    ISocket_Accept(sock, &c->user);
}

static void listener_closed(struct server *s, ISocket *sock, shutdownreason_t reason)
{
    if (!s->stopping)
        fprintf(stderr, "ringsock-echo: listener closed: %s\n", SocketShutdownReasonToStr(reason));
    ISocket_Delete(sock);
    s->listener = NULL;
    if (!s->stopping)
        IIoMux_Terminate(s->mux);
    maybe_done(s);
}

static void srv_shutdown(USocket *u, ISocket *sock, shutdownreason_t reason)
{
    listener_closed(container_of(u, struct server, user), sock, reason);
}

static const USocketVtbl srv_vtbl = {
    .SocketBindResult = srv_bind_result,
    .SocketListenResult = srv_listen_result,
    .SocketShutdown = srv_shutdown,
};

/* ---- UDP: one socket, one datagram at a time, straight back to its source ---- */

#define UDP_BUF_SIZE 65536

static void udp_recv_from(USocket *u, ISocket *sock, void *buf, size_t len, IPaddr src,
                          uint16_t port)
{
    (void)u;
    ISocket_SendTo(sock, buf, len, src, port); /* copied: the buffer is free again */
    ISocket_Recv(sock, buf, UDP_BUF_SIZE, true);
}

static void udp_shutdown(USocket *u, ISocket *sock, shutdownreason_t reason)
{
    listener_closed(container_of(u, struct server, udp_user), sock, reason);
}

static const USocketVtbl udp_vtbl = {
    .SocketBindResult = srv_bind_result,
    .SocketRecvFromResult = udp_recv_from,
    .SocketShutdown = udp_shutdown,
};

static void on_shutdown(IShutdownHandler *h)
{
    struct server *s = container_of(h, struct server, shutdown);
    s->stopping = true;
    if (s->listener)
        ISocket_Shutdown(s->listener);
    for (struct conn *c = s->conns; c; c = c->next)
        if (c->sock)
            ISocket_Shutdown(c->sock);
    maybe_done(s);
}

static void on_shutdown_timeout(IShutdownHandler *h)
{
    (void)h;
    fprintf(stderr, "ringsock-echo: connections did not close in time\n");
}

static const struct IShutdownHandlerVtbl shutdown_vtbl = {on_shutdown, on_shutdown_timeout};

int main(int argc, char **argv)
{
    const char *addr = NULL, *local = NULL;
    unsigned port = 0;
    bool v6 = false, udp = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--port") && i + 1 < argc)
            port = (unsigned)atoi(argv[++i]);
        else if (!strcmp(argv[i], "--addr") && i + 1 < argc)
            addr = argv[++i];
        else if (!strcmp(argv[i], "--v6"))
            v6 = true;
        else if (!strcmp(argv[i], "--udp"))
            udp = true;
        else if (!strcmp(argv[i], "--local") && i + 1 < argc)
            local = argv[++i];
        else {
            fprintf(stderr, "usage: %s [--udp] [--port P] [--addr A] [--v6] | --local PATH\n",
                    argv[0]);
            return 2;
        }
    }
    struct server s = {
        .user.vtbl = &srv_vtbl, .udp_user.vtbl = &udp_vtbl, .shutdown.vtbl = &shutdown_vtbl};
    s.mux = IIoMux_Create();
    if (!s.mux)
        return 1;
    s.log = IInstanceLog_Create("ringsock-echo", 0);
    s.tcp = udp     ? CreateUDPSocketProvider()
            : local ? CreateLocalSocketProvider()
                    : CreateTCPSocketProvider();
    IIoMux_RegisterShutdownHandler(s.mux, &s.shutdown);
    if (udp) {
        s.udp_buf = malloc(UDP_BUF_SIZE);
        s.listener = ISocketProvider_CreateSocket(s.tcp, s.mux, &s.udp_user, s.log, v6, NULL);
        ISocket_BindReuse(s.listener, addr, (uint16_t)port, true);
        ISocket_Recv(s.listener, s.udp_buf, UDP_BUF_SIZE, true);
    } else {
        s.listener = ISocketProvider_CreateSocket(s.tcp, s.mux, &s.user, s.log, v6, NULL);
        if (local)
            ISocket_Bind(s.listener, local, 0);
        else
            ISocket_BindReuse(s.listener, addr, (uint16_t)port, true);
        ISocket_Listen(s.listener);
    }
    IIoMux_Run(s.mux);
    /* Terminated: by the shutdown handler, or because the listener failed. */
    while (s.conns) {
        struct conn *c = s.conns;
        s.conns = c->next;
        if (c->sock)
            ISocket_Delete(c->sock);
        free(c);
    }
    if (s.listener)
        ISocket_Delete(s.listener);
    free(s.udp_buf);
    ISocketProvider_Delete(s.tcp);
    IInstanceLog_Delete(s.log);
    IIoMux_Delete(s.mux);
    return 0;
}
