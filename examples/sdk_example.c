/* The SDK documentation's socket example, in C: a server that accepts one client
 * and answers its request, and a client that connects, sends the request, reads
 * the answer and shuts down. Both run on one IIoMux; the program exits when both
 * sockets have reported SocketShutdown.
 *
 *   sdk-example            prints what each side sees, exits 0 on success */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <ringsock/socket.h>

static const char request[] = "hello server";
static const char answer[] = "hello client";

struct app {
    IIoMux *mux;
    ISocketProvider *tcp;
    IInstanceLog *log;
    int open_sockets;
    bool ok;
};

/* ---- server: listener plus one accepted connection ---- */

struct server {
    USocket listen_user, conn_user;
    struct app *app;
    ISocket *listener, *conn;
    char buf[sizeof(request) - 1];
    char addr[64];
    uint16_t port;
};

struct client {
    USocket user;
    struct app *app;
    ISocket *sock;
    char buf[sizeof(answer) - 1];
};

static struct client the_client;

static void closed(struct app *a, ISocket *s)
{
    ISocket_Delete(s);
    if (--a->open_sockets == 0)
        IIoMux_Terminate(a->mux);
}

static void srv_bind(USocket *u, ISocket *s, const char *addr, uint16_t port)
{
    struct server *sv = RINGSOCK_CONTAINER_OF(u, struct server, listen_user);
    (void)s;
    printf("server: bound to %s:%u\n", addr, port);
    snprintf(sv->addr, sizeof(sv->addr), "127.0.0.1:%u", port);
    /* Start the client now that the port is known. */
    the_client.sock = ISocketProvider_CreateSocket(sv->app->tcp, sv->app->mux, &the_client.user,
                                                   sv->app->log, false, NULL);
    sv->app->open_sockets++;
    ISocket_Connect(the_client.sock, sv->addr, NULL);
    ISocket_Send(the_client.sock, request, sizeof(request) - 1); /* held until connected */
}

static void srv_listen(USocket *u, ISocket *s, const char *addr, uint16_t port)
{
    struct server *sv = RINGSOCK_CONTAINER_OF(u, struct server, listen_user);
    printf("server: connection from %s:%u\n", addr, port);
    ISocket_Accept(s, &sv->conn_user);
    ISocket_Shutdown(sv->listener); /* one client is all this example serves */
}

static void srv_listen_shutdown(USocket *u, ISocket *s, shutdownreason_t r)
{
    struct server *sv = RINGSOCK_CONTAINER_OF(u, struct server, listen_user);
    printf("server: listener closed (%s)\n", SocketShutdownReasonToStr(r));
    closed(sv->app, s);
}

static void srv_accepted(USocket *u, ISocket *s)
{
    struct server *sv = RINGSOCK_CONTAINER_OF(u, struct server, conn_user);
    sv->conn = s;
    sv->app->open_sockets++;
    ISocket_Recv(s, sv->buf, sizeof(sv->buf), false); /* the whole request */
}

static void srv_recv(USocket *u, ISocket *s, void *buf, size_t len)
{
    (void)u;
    printf("server: received '%.*s'\n", (int)len, (char *)buf);
    ISocket_Send(s, answer, sizeof(answer) - 1);
    ISocket_Shutdown(s); /* flushes the answer first */
}

static void srv_conn_shutdown(USocket *u, ISocket *s, shutdownreason_t r)
{
    struct server *sv = RINGSOCK_CONTAINER_OF(u, struct server, conn_user);
    printf("server: connection closed (%s)\n", SocketShutdownReasonToStr(r));
    closed(sv->app, s);
}

static const USocketVtbl listen_vtbl = {
    .SocketBindResult = srv_bind,
    .SocketListenResult = srv_listen,
    .SocketShutdown = srv_listen_shutdown,
};
static const USocketVtbl conn_vtbl = {
    .SocketAcceptComplete = srv_accepted,
    .SocketRecvResult = srv_recv,
    .SocketShutdown = srv_conn_shutdown,
};

/* ---- client ---- */

static void cli_connected(USocket *u, ISocket *s)
{
    struct client *c = RINGSOCK_CONTAINER_OF(u, struct client, user);
    printf("client: connected\n");
    ISocket_Recv(s, c->buf, sizeof(c->buf), false);
}

static void cli_recv(USocket *u, ISocket *s, void *buf, size_t len)
{
    struct client *c = RINGSOCK_CONTAINER_OF(u, struct client, user);
    printf("client: received '%.*s'\n", (int)len, (char *)buf);
    c->app->ok = len == sizeof(answer) - 1 && memcmp(buf, answer, len) == 0;
    ISocket_Shutdown(s);
}

static void cli_shutdown(USocket *u, ISocket *s, shutdownreason_t r)
{
    struct client *c = RINGSOCK_CONTAINER_OF(u, struct client, user);
    printf("client: closed (%s)\n", SocketShutdownReasonToStr(r));
    closed(c->app, s);
}

static const USocketVtbl client_vtbl = {
    .SocketConnectComplete = cli_connected,
    .SocketRecvResult = cli_recv,
    .SocketShutdown = cli_shutdown,
};

int main(void)
{
    struct app a = {0};
    a.mux = IIoMux_Create();
    if (!a.mux)
        return 1;
    a.tcp = CreateTCPSocketProvider();
    a.log = IInstanceLog_Create("sdk-example", 0);
    struct server sv = {.listen_user.vtbl = &listen_vtbl, .conn_user.vtbl = &conn_vtbl, .app = &a};
    the_client.user.vtbl = &client_vtbl;
    the_client.app = &a;

    sv.listener = ISocketProvider_CreateSocket(a.tcp, a.mux, &sv.listen_user, a.log, false, NULL);
    a.open_sockets = 1;
    ISocket_Bind(sv.listener, "127.0.0.1", 0);
    ISocket_Listen(sv.listener);
    IIoMux_Run(a.mux);

    ISocketProvider_Delete(a.tcp);
    IInstanceLog_Delete(a.log);
    IIoMux_Delete(a.mux);
    printf("%s\n", a.ok ? "ok" : "FAILED");
    return a.ok ? 0 : 1;
}
