/* ringsock-echo: an echo server on the engine.
 *
 *   ringsock-echo [--port P] [--addr A] [--v6]     TCP
 *   ringsock-echo --udp [--port P] [--addr A]       UDP: each datagram goes back to its sender
 *                 [--sockperf]                      (answering sockperf's client as sockperf's
 *                                                   server does)
 *   ringsock-echo --local PATH                      Unix stream socket (PATH or @name)
 *   ringsock-echo --tls [--ktls] [--cert PEM] [--alpn a,b] [--require-client-cert CAFILE]
 *                 [--port P] ...                    TLS over TCP
 *   ringsock-echo --dtls [--srtp] [--cert PEM] [--port P] [--addr A] [--v6]
 *                                                   DTLS 1.2 over UDP
 *
 * --tls: the TLS provider wrapping the TCP provider. --cert loads a PEM file holding the
 * certificate chain and its private key; without it the engine generates a self-signed
 * certificate. --alpn sets the server's ALPN protocols, most preferred first.
 * --require-client-cert refuses clients without a certificate signed by a CA in CAFILE.
 * A failed handshake closes that connection only (the reason goes to stderr).
 * --ktls: kernel TLS offload (ISocketContext_EnableKernelTLS); each connection that completed
 * its handshake prints, when it closes, which directions the kernel took: "ktls tx+rx",
 * "ktls tx", "ktls rx" or "ktls none" (user space: no tls ULP, a cipher the kernel cannot
 * take). Not at the handshake's end: the keys go to the kernel a little later (sending once
 * the last handshake records are out, receiving at a record boundary).
 *
 * --dtls: the UDP provider with a DTLS context (ISocketContext_EnableDTLS): every peer that
 * returns a cookie is accepted and gets its own socket; each message comes back as one
 * message. --srtp: DTLS-SRTP: each received RTP/RTCP packet arrives unprotected and is sent
 * back protected with this end's keys, and each association prints its profile and keys
 * ("srtp profile=NAME keymat=HEX": RFC 5705 "EXTRACTOR-dtls_srtp"). --cert as for --tls;
 * either way the certificate's fingerprint is printed at start as
 * "fingerprint sha-256 AA:BB:..." (as in SDP).
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

#define BUF_SIZE      65536
#define MAX_SENDS_OUT 4

struct server {
    USocket user; /* the listener's callbacks */
    USocket udp_user;
    uint8_t *udp_buf;
    IShutdownHandler shutdown;
    IIoMux *mux;
    ISocketProvider *tcp;
    IInstanceLog *log;
    ISocketProvider *tls;    /* --tls: wraps tcp */
    ISocketContext *tls_ctx; /* --tls, --dtls */
    ISocket *listener;
    struct conn *conns; /* every live connection, to close them on shutdown */
    bool srtp;          /* --dtls --srtp */
    bool ktls;          /* --tls --ktls */
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
    struct conn *c = RINGSOCK_CONTAINER_OF(u, struct conn, user);
    ISocket_Send(sock, buf, len);
    if (++c->sends_out < MAX_SENDS_OUT)
        ISocket_Recv(sock, buf, BUF_SIZE, true);
    else
        c->paused = true;
}

static void conn_send_result(USocket *u, ISocket *sock)
{
    struct conn *c = RINGSOCK_CONTAINER_OF(u, struct conn, user);
    c->sends_out--;
    if (c->paused) {
        c->paused = false;
        ISocket_Recv(sock, c->buf, BUF_SIZE, true);
    }
}

/* --srtp: "srtp profile=NAME keymat=HEX", the keys (RFC 5764 4.2) an association derived. */
static void print_srtp_keys(ISocket *sock)
{
    const char *profile = ISocket_GetSRTPProfile(sock);
    size_t len = !profile                              ? 0
                 : strstr(profile, "AEAD_AES_256_GCM") ? 2 * (32 + 12)
                 : strstr(profile, "AEAD_AES_128_GCM") ? 2 * (16 + 12)
                                                       : 2 * (16 + 14);
    uint8_t keys[2 * (32 + 12)];
    printf("srtp profile=%s keymat=", profile ? profile : "none");
    if (len && ISocket_ExportKeyingMaterial(sock, "EXTRACTOR-dtls_srtp", NULL, 0, keys, len))
        for (size_t i = 0; i < len; i++)
            printf("%02x", keys[i]);
    putchar('\n');
    fflush(stdout);
}

static void conn_accept_complete(USocket *u, ISocket *sock)
{
    struct conn *c = RINGSOCK_CONTAINER_OF(u, struct conn, user);
    c->sock = sock;
    if (c->srv->stopping) { /* a TLS handshake that finished after the signal */
        ISocket_Shutdown(sock);
        return;
    }
    if (c->srv->srtp)
        print_srtp_keys(sock);
    ISocket_Recv(sock, c->buf, BUF_SIZE, true);
}

static void conn_shutdown(USocket *u, ISocket *sock, shutdownreason_t reason)
{
    struct conn *c = RINGSOCK_CONTAINER_OF(u, struct conn, user);
    if (reason == SOCKET_TLS_HANDSHAKE_FAILED)
        fprintf(stderr, "ringsock-echo: connection closed: %s\n",
                SocketShutdownReasonToStr(reason));
    if (c->srv->ktls && c->sock) { /* --ktls, the handshake done */
        unsigned k = ISocket_GetKernelTLS(sock);
        printf("ktls %s\n", k == (KTLS_TX | KTLS_RX) ? "tx+rx"
                            : k == KTLS_TX           ? "tx"
                            : k == KTLS_RX           ? "rx"
                                                     : "none");
        fflush(stdout);
    }
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
    struct server *s = RINGSOCK_CONTAINER_OF(u, struct server, user);
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
    listener_closed(RINGSOCK_CONTAINER_OF(u, struct server, user), sock, reason);
}

static const USocketVtbl srv_vtbl = {
    .SocketBindResult = srv_bind_result,
    .SocketListenResult = srv_listen_result,
    .SocketShutdown = srv_shutdown,
};

/* ---- UDP: one socket, one datagram at a time, straight back to its source ---- */

#define UDP_BUF_SIZE 65536

static bool sockperf_replies; /* --sockperf */

static void udp_recv_from(USocket *u, ISocket *sock, void *buf, size_t len, IPaddr src,
                          uint16_t port)
{
    (void)u;
    /* sockperf's client counts a reply only with the CLIENT flag of its 14-byte header
     * cleared (big-endian flags at offset 8), as its own server does. */
    if (sockperf_replies && len >= 14)
        ((uint8_t *)buf)[9] &= (uint8_t)~1u;
    ISocket_SendTo(sock, buf, len, src, port); /* copied: the buffer is free again */
    ISocket_Recv(sock, buf, UDP_BUF_SIZE, true);
}

static void udp_shutdown(USocket *u, ISocket *sock, shutdownreason_t reason)
{
    listener_closed(RINGSOCK_CONTAINER_OF(u, struct server, udp_user), sock, reason);
}

static const USocketVtbl udp_vtbl = {
    .SocketBindResult = srv_bind_result,
    .SocketRecvFromResult = udp_recv_from,
    .SocketShutdown = udp_shutdown,
};

static void on_shutdown(IShutdownHandler *h)
{
    struct server *s = RINGSOCK_CONTAINER_OF(h, struct server, shutdown);
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

/* ---- TLS options ---- */

/* The whole file, NUL-terminated (the PEM length excludes the NUL); exits on error. */
static uint8_t *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    uint8_t *buf = NULL;
    size_t cap = 0, n = 0;
    if (!f) {
        perror(path);
        exit(1);
    }
    for (;;) {
        if (cap - n < 4096) {
            cap = cap ? cap * 2 : 16384;
            buf = realloc(buf, cap + 1);
            if (!buf) {
                fprintf(stderr, "ringsock-echo: out of memory\n");
                exit(1);
            }
        }
        size_t r = fread(buf + n, 1, cap - n, f);
        n += r;
        if (r == 0)
            break;
    }
    if (ferror(f)) {
        perror(path);
        exit(1);
    }
    fclose(f);
    buf[n] = '\0';
    *len = n;
    return buf;
}

/* "a,b,c" -> {"a", "b", "c", NULL}, pointing into a copy of the text. */
static char **split_list(const char *text)
{
    char *copy = strdup(text);
    size_t n = 1;
    for (const char *p = text; *p; p++)
        n += *p == ',';
    char **list = calloc(n + 1, sizeof(*list));
    if (!copy || !list) {
        fprintf(stderr, "ringsock-echo: out of memory\n");
        exit(1);
    }
    size_t i = 0;
    for (char *save = NULL, *tok = strtok_r(copy, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save))
        list[i++] = tok;
    return list;
}

static void free_list(char **list)
{
    if (list)
        free(list[0]);
    free(list);
}

/* "fingerprint sha-256 AA:BB:...": the context's certificate, as SDP writes it (RFC 8122). */
static bool print_fingerprint(ISocketContext *ctx)
{
    size_t len = 0;
    const uint8_t *fp = ISocketContext_GetCertificateFingerprint(ctx, &len);
    if (!fp || len == 0) {
        fprintf(stderr, "ringsock-echo: no certificate\n");
        return false;
    }
    printf("fingerprint sha-256 ");
    for (size_t i = 0; i < len; i++)
        printf("%02X%s", fp[i], i + 1 < len ? ":" : "\n");
    fflush(stdout);
    return true;
}

static int usage(const char *argv0)
{
    fprintf(stderr,
            "usage: %s [--udp [--sockperf]] [--port P] [--addr A] [--v6] | --local PATH\n"
            "       %s --tls [--ktls] [--cert PEM] [--alpn a,b] [--require-client-cert CAFILE]\n"
            "                [--port P] [--addr A] [--v6]\n"
            "       %s --dtls [--srtp] [--cert PEM] [--port P] [--addr A] [--v6]\n",
            argv0, argv0, argv0);
    return 2;
}

int main(int argc, char **argv)
{
    const char *addr = NULL, *local = NULL;
    const char *cert = NULL, *alpn = NULL, *client_ca = NULL;
    unsigned port = 0;
    bool v6 = false, udp = false, tls = false, dtls = false, srtp = false, ktls = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--port") && i + 1 < argc)
            port = (unsigned)atoi(argv[++i]);
        else if (!strcmp(argv[i], "--addr") && i + 1 < argc)
            addr = argv[++i];
        else if (!strcmp(argv[i], "--v6"))
            v6 = true;
        else if (!strcmp(argv[i], "--udp"))
            udp = true;
        else if (!strcmp(argv[i], "--sockperf"))
            sockperf_replies = true;
        else if (!strcmp(argv[i], "--local") && i + 1 < argc)
            local = argv[++i];
        else if (!strcmp(argv[i], "--tls"))
            tls = true;
        else if (!strcmp(argv[i], "--dtls"))
            dtls = true;
        else if (!strcmp(argv[i], "--srtp"))
            srtp = true;
        else if (!strcmp(argv[i], "--ktls"))
            ktls = true;
        else if (!strcmp(argv[i], "--cert") && i + 1 < argc)
            cert = argv[++i];
        else if (!strcmp(argv[i], "--alpn") && i + 1 < argc)
            alpn = argv[++i];
        else if (!strcmp(argv[i], "--require-client-cert") && i + 1 < argc)
            client_ca = argv[++i];
        else
            return usage(argv[0]);
    }
    if (dtls ? tls || udp || local || sockperf_replies || alpn || client_ca : srtp)
        return usage(argv[0]);
    if (ktls && !tls)
        return usage(argv[0]);
    if (!dtls && (tls ? udp || local : cert || alpn || client_ca))
        return usage(argv[0]);
    struct server s = {
        .user.vtbl = &srv_vtbl, .udp_user.vtbl = &udp_vtbl, .shutdown.vtbl = &shutdown_vtbl};
    s.mux = IIoMux_Create();
    if (!s.mux)
        return 1;
    s.log = IInstanceLog_Create("ringsock-echo", 0);
    s.tcp = udp || dtls ? CreateUDPSocketProvider()
            : local     ? CreateLocalSocketProvider()
                        : CreateTCPSocketProvider();
    char **alpn_list = NULL;
    if (dtls) {
        s.tls_ctx = ISocketProvider_CreateSocketContext(s.tcp, s.log);
        ISocketContext_EnableDTLS(s.tls_ctx, srtp);
        s.srtp = srtp;
        if (cert) {
            size_t len;
            uint8_t *pem = read_file(cert, &len);
            ISocketContext_SetServerCertificate(s.tls_ctx, pem, len, NULL); /* copied */
            free(pem);
        }
    }
    if (tls) {
        s.tls = CreateTLSSocketProvider(s.tcp);
        s.tls_ctx = ISocketProvider_CreateSocketContext(s.tls, s.log);
        if (ktls) /* only then: RINGSOCK_KTLS=1 stays in force without it */
            ISocketContext_EnableKernelTLS(s.tls_ctx, true);
        s.ktls = ktls;
        size_t len;
        if (cert) {
            uint8_t *pem = read_file(cert, &len);
            ISocketContext_SetServerCertificate(s.tls_ctx, pem, len, NULL); /* copied */
            free(pem);
        }
        if (client_ca) {
            uint8_t *pem = read_file(client_ca, &len);
            ISocketContext_SetTrustedCertificates(s.tls_ctx, pem, len);
            ISocketContext_RequireClientCertificate(s.tls_ctx, true);
            free(pem);
        }
        if (alpn) {
            alpn_list = split_list(alpn);
            ISocketContext_SetALPNProtocols(s.tls_ctx, (const char *const *)alpn_list);
        }
    }
    IIoMux_RegisterShutdownHandler(s.mux, &s.shutdown);
    if (udp) {
        s.udp_buf = malloc(UDP_BUF_SIZE);
        s.listener = ISocketProvider_CreateSocket(s.tcp, s.mux, &s.udp_user, s.log, v6, NULL);
        ISocket_BindReuse(s.listener, addr, (uint16_t)port, true);
        ISocket_Recv(s.listener, s.udp_buf, UDP_BUF_SIZE, true);
    } else {
        s.listener =
            ISocketProvider_CreateSocket(tls ? s.tls : s.tcp, s.mux, &s.user, s.log, v6, s.tls_ctx);
        if (dtls && !print_fingerprint(s.tls_ctx))
            return 1;
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
    if (s.tls_ctx)
        ISocketContext_Delete(s.tls_ctx); /* after the sockets that use it */
    if (s.tls)
        ISocketProvider_Delete(s.tls);
    free_list(alpn_list);
    ISocketProvider_Delete(s.tcp);
    IInstanceLog_Delete(s.log);
    IIoMux_Delete(s.mux);
    return 0;
}
