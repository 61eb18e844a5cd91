/* ringsock-tls-client: a TLS client on the engine, for interop tests against real servers.
 *
 *   ringsock-tls-client --connect HOST:PORT [--servername NAME] [--cafile PEM] [--no-verify]
 *                       [--cert PEM] [--alpn a,b] [--send TEXT] [--timeout MS]
 *
 * HOST is an address literal (the engine takes no names). Connects through the TLS
 * provider wrapping the TCP provider, verifying the server against --cafile (default: the
 * system store) and NAME unless --no-verify. --cert presents a client certificate (PEM:
 * chain and key). Once connected it prints
 *
 *   connected
 *   alpn: PROTO                  ("alpn: none" when none was agreed)
 *   peer fingerprint: HEX        (SHA-256 of the server's certificate, lowercase, no colons)
 *
 * then sends TEXT and a newline, and copies what comes back to stdout until as many bytes
 * as it sent have arrived; then it shuts down (close_notify) and exits 0. Without --send it
 * shuts down right after the handshake.
 *
 * Failure: the socket's shutdown reason on stderr ("ringsock-tls-client: SOCKET_..."), and
 * exit status 1; 3 when nothing happened within --timeout ms (default 10000). */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ringsock/socket.h>

#include "read_file.h"

#define BUF_SIZE 16384

struct client {
    USocket user;
    UTimer timer_user;
    IIoMux *mux;
    ITimer *timer;
    ISocket *sock;
    char *text; /* what --send sends: TEXT and a newline */
    size_t text_len, got;
    bool closing;
    int status;
    uint8_t buf[BUF_SIZE];
};

static void finish(struct client *c, int status)
{
    c->status = status;
    ITimer_Cancel(c->timer);
    IIoMux_Terminate(c->mux);
}

static void on_connect(USocket *u, ISocket *sock)
{
    struct client *c = RINGSOCK_CONTAINER_OF(u, struct client, user);
    const char *alpn = ISocket_GetALPNProtocol(sock);
    uint8_t fp[32];
    printf("connected\nalpn: %s\n", alpn ? alpn : "none");
    if (ISocket_GetPeerCertificateFingerprint(sock, fp)) {
        printf("peer fingerprint: ");
        for (int i = 0; i < 32; i++)
            printf("%02x", fp[i]);
        putchar('\n');
    } else {
        printf("peer fingerprint: none\n");
    }
    fflush(stdout);
    if (!c->text) {
        c->closing = true;
        ISocket_Shutdown(sock);
        return;
    }
    ISocket_Send(sock, c->text, c->text_len);
    ISocket_Recv(sock, c->buf, sizeof(c->buf), true);
}

static void on_recv(USocket *u, ISocket *sock, void *buf, size_t len)
{
    struct client *c = RINGSOCK_CONTAINER_OF(u, struct client, user);
    fwrite(buf, 1, len, stdout);
    fflush(stdout);
    c->got += len;
    if (c->got >= c->text_len) {
        c->closing = true;
        ISocket_Shutdown(sock);
        return;
    }
    ISocket_Recv(sock, c->buf, sizeof(c->buf), true);
}

static void on_shutdown(USocket *u, ISocket *sock, shutdownreason_t reason)
{
    struct client *c = RINGSOCK_CONTAINER_OF(u, struct client, user);
    (void)sock;
    if (c->closing && reason == SOCKET_SHUTDOWN_NORMAL) {
        finish(c, 0);
        return;
    }
    fprintf(stderr, "ringsock-tls-client: %s\n", SocketShutdownReasonToStr(reason));
    finish(c, 1);
}

static const USocketVtbl client_vtbl = {
    .SocketConnectComplete = on_connect,
    .SocketRecvResult = on_recv,
    .SocketShutdown = on_shutdown,
};

static void on_timeout(UTimer *u, ITimer *timer)
{
    (void)timer;
    struct client *c = RINGSOCK_CONTAINER_OF(u, struct client, timer_user);
    fprintf(stderr, "ringsock-tls-client: timeout\n");
    finish(c, 3);
}

static const struct UTimerVtbl timer_vtbl = {on_timeout};

static int usage(void)
{
    fprintf(stderr, "usage: ringsock-tls-client --connect HOST:PORT [--servername NAME]\n"
                    "           [--cafile PEM] [--no-verify] [--cert PEM] [--alpn a,b]\n"
                    "           [--send TEXT] [--timeout MS]\n");
    return 2;
}

int main(int argc, char **argv)
{
    const char *target = NULL, *name = NULL, *cafile = NULL, *cert = NULL, *alpn = NULL;
    const char *send = NULL;
    bool verify = true;
    unsigned timeout_ms = 10000;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--connect") && i + 1 < argc)
            target = argv[++i];
        else if (!strcmp(argv[i], "--servername") && i + 1 < argc)
            name = argv[++i];
        else if (!strcmp(argv[i], "--cafile") && i + 1 < argc)
            cafile = argv[++i];
        else if (!strcmp(argv[i], "--cert") && i + 1 < argc)
            cert = argv[++i];
        else if (!strcmp(argv[i], "--no-verify"))
            verify = false;
        else if (!strcmp(argv[i], "--alpn") && i + 1 < argc)
            alpn = argv[++i];
        else if (!strcmp(argv[i], "--send") && i + 1 < argc)
            send = argv[++i];
        else if (!strcmp(argv[i], "--timeout") && i + 1 < argc)
            timeout_ms = (unsigned)atoi(argv[++i]);
        else
            return usage();
    }
    if (!target)
        return usage();

    static struct client c = {.user.vtbl = &client_vtbl, .timer_user.vtbl = &timer_vtbl};
    c.status = 3;
    if (send) {
        c.text_len = strlen(send) + 1;
        c.text = malloc(c.text_len);
        if (!c.text)
            return 2;
        memcpy(c.text, send, c.text_len - 1);
        c.text[c.text_len - 1] = '\n';
    }
    c.mux = IIoMux_Create();
    if (!c.mux)
        return 2;
    IInstanceLog *log = IInstanceLog_Create("ringsock-tls-client", 0);
    ISocketProvider *tcp = CreateTCPSocketProvider();
    ISocketProvider *tls = CreateTLSSocketProvider(tcp);
    ISocketContext *ctx = ISocketProvider_CreateSocketContext(tls, log);
    size_t len;
    if (cafile) {
        uint8_t *pem = read_file(cafile, &len);
        ISocketContext_SetTrustedCertificates(ctx, pem, len); /* copied */
        free(pem);
    }
    if (cert) {
        uint8_t *pem = read_file(cert, &len);
        ISocketContext_SetClientCertificate(ctx, pem, len, NULL);
        free(pem);
    }
    ISocketContext_SetVerifyPeer(ctx, verify);
    char *alpn_copy = NULL;
    const char *alpn_list[17] = {NULL};
    if (alpn) {
        alpn_copy = strdup(alpn);
        size_t n = 0;
        for (char *save = NULL, *tok = strtok_r(alpn_copy, ",", &save); tok && n < 16;
             tok = strtok_r(NULL, ",", &save))
            alpn_list[n++] = tok;
        ISocketContext_SetALPNProtocols(ctx, alpn_list);
    }
    c.timer = ITimer_Create(c.mux, &c.timer_user);
    ITimer_Start(c.timer, timeout_ms);
    c.sock =
        ISocketProvider_CreateSocket(tls, c.mux, &c.user, log, strchr(target, '[') != NULL, ctx);
    ISocket_Connect(c.sock, target, name);
    IIoMux_Run(c.mux);

    ISocket_Delete(c.sock);
    ITimer_Delete(c.timer);
    ISocketContext_Delete(ctx);
    ISocketProvider_Delete(tls);
    ISocketProvider_Delete(tcp);
    IInstanceLog_Delete(log);
    IIoMux_Delete(c.mux);
    free(alpn_copy);
    free(c.text);
    return c.status;
}
