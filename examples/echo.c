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
 * --threads N [--pin] (TCP, TLS, UDP): one loop per thread, N threads, each with its own
 * listener (or UDP socket) bound to the same port with SO_REUSEPORT (ISocket_BindReuse);
 * the kernel spreads connections and datagrams over them by a hash of the 4-tuple. The
 * providers and the TLS context are shared (docs/threads.md). --pin pins thread i to the
 * i-th CPU this process may run on. With --port 0 the first loop's port is the others'.
 * Why the plain hash and not SO_INCOMING_CPU or a steering BPF program: README, "One
 * loop per core".
 *
 * Prints "listening on PORT" (for --local: "listening on PATH") once bound (the first
 * loop only); SIGINT/SIGTERM stop every loop cleanly. Each
 * connection receives into its own buffer, sends what arrived (the engine copies)
 * and receives again at once, unless MAX_SENDS_OUT sends are still queued: a client
 * that stops reading stops being read. */
#define _GNU_SOURCE /* CPU sets, pthread_setaffinity_np (--pin) */
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ringsock/socket.h>

#define BUF_SIZE      65536
#define MAX_SENDS_OUT 4

/* What every loop shares (made before the loops start, deleted after they end). */
static struct {
    const char *addr, *local;
    uint16_t port; /* with --threads and port 0: the first loop's */
    bool v6, udp, dtls, pin;
    IInstanceLog *log;
    ISocketProvider *tcp;    /* the TCP, UDP or local provider */
    ISocketProvider *tls;    /* --tls: wraps tcp */
    ISocketContext *tls_ctx; /* --tls, --dtls */
    bool srtp;               /* --dtls --srtp */
    bool ktls;               /* --tls --ktls */
} g;

/* One loop: its IIoMux, listener (or UDP socket) and connections. */
struct server {
    USocket user; /* the listener's callbacks */
    USocket udp_user;
    uint8_t *udp_buf;
    IShutdownHandler shutdown;
    IIoMux *mux;
    ISocket *listener;
    struct conn *conns; /* every live connection, to close them on shutdown */
    bool stopping;
    int idx;
    pthread_t thread;
    sem_t bound; /* the first loop's listener is bound: the others may take its port */
    int status;  /* main's exit status for this loop */
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
    if (g.srtp)
        print_srtp_keys(sock);
    ISocket_Recv(sock, c->buf, BUF_SIZE, true);
}

static void conn_shutdown(USocket *u, ISocket *sock, shutdownreason_t reason)
{
    struct conn *c = RINGSOCK_CONTAINER_OF(u, struct conn, user);
    if (reason == SOCKET_TLS_HANDSHAKE_FAILED)
        fprintf(stderr, "ringsock-echo: connection closed: %s\n",
                SocketShutdownReasonToStr(reason));
    if (g.ktls && c->sock) { /* --ktls, the handshake done */
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

static const USocketVtbl srv_vtbl;

static void srv_bind_result(USocket *u, ISocket *sock, const char *addr, uint16_t port)
{
    (void)sock;
    struct server *s = u->vtbl == &srv_vtbl ? RINGSOCK_CONTAINER_OF(u, struct server, user)
                                            : RINGSOCK_CONTAINER_OF(u, struct server, udp_user);
    if (s->idx > 0) /* the same port again */
        return;
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
            "       %s --dtls [--srtp] [--cert PEM] [--port P] [--addr A] [--v6]\n"
            "       TCP, --udp and --tls also take [--threads N [--pin]]\n",
            argv0, argv0, argv0);
    return 2;
}

/* --pin: the idx-th CPU of those this process may run on. */
static void pin_thread(int idx)
{
    cpu_set_t allowed, one;
    if (sched_getaffinity(0, sizeof(allowed), &allowed) != 0 || CPU_COUNT(&allowed) == 0)
        return;
    int want = idx % CPU_COUNT(&allowed);
    for (int cpu = 0; cpu < CPU_SETSIZE; cpu++) {
        if (CPU_ISSET(cpu, &allowed) && want-- == 0) {
            CPU_ZERO(&one);
            CPU_SET(cpu, &one);
            pthread_setaffinity_np(pthread_self(), sizeof(one), &one);
            return;
        }
    }
}

/* A loop's whole life, on its own thread (or main's, for one loop): made, bound, run until
 * the shutdown handler or a failed listener ends it, then everything it owns deleted. */
static void run_loop(struct server *s)
{
    s->mux = IIoMux_Create();
    if (!s->mux) {
        s->status = 1;
        sem_post(&s->bound);
        return;
    }
    IIoMux_RegisterShutdownHandler(s->mux, &s->shutdown);
    if (g.udp) {
        s->udp_buf = malloc(UDP_BUF_SIZE);
        s->listener = ISocketProvider_CreateSocket(g.tcp, s->mux, &s->udp_user, g.log, g.v6, NULL);
        ISocket_BindReuse(s->listener, g.addr, g.port, true);
        ISocket_Recv(s->listener, s->udp_buf, UDP_BUF_SIZE, true);
    } else {
        s->listener = ISocketProvider_CreateSocket(g.tls ? g.tls : g.tcp, s->mux, &s->user, g.log,
                                                   g.v6, g.tls_ctx);
        if (g.local)
            ISocket_Bind(s->listener, g.local, 0);
        else
            ISocket_BindReuse(s->listener, g.addr, g.port, true);
        ISocket_Listen(s->listener);
    }
    if (s->idx == 0 && g.port == 0 && !g.local) { /* bound before the call returned */
        char a[64];
        ISocket_GetLocalAddress(s->listener, a, sizeof(a), &g.port);
    }
    sem_post(&s->bound);
    IIoMux_Run(s->mux);
    /* Terminated: by the shutdown handler, or because the listener failed. */
    while (s->conns) {
        struct conn *c = s->conns;
        s->conns = c->next;
        if (c->sock)
            ISocket_Delete(c->sock);
        free(c);
    }
    if (s->listener)
        ISocket_Delete(s->listener);
    free(s->udp_buf);
    IIoMux_Delete(s->mux);
}

static void *loop_thread(void *arg)
{
    struct server *s = arg;
    if (g.pin)
        pin_thread(s->idx);
    run_loop(s);
    return NULL;
}

int main(int argc, char **argv)
{
    const char *cert = NULL, *alpn = NULL, *client_ca = NULL;
    unsigned port = 0;
    int threads = 1;
    bool tls = false, srtp = false, ktls = false, sockperf = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--port") && i + 1 < argc)
            port = (unsigned)atoi(argv[++i]);
        else if (!strcmp(argv[i], "--addr") && i + 1 < argc)
            g.addr = argv[++i];
        else if (!strcmp(argv[i], "--v6"))
            g.v6 = true;
        else if (!strcmp(argv[i], "--udp"))
            g.udp = true;
        else if (!strcmp(argv[i], "--sockperf"))
            sockperf = true;
        else if (!strcmp(argv[i], "--local") && i + 1 < argc)
            g.local = argv[++i];
        else if (!strcmp(argv[i], "--tls"))
            tls = true;
        else if (!strcmp(argv[i], "--dtls"))
            g.dtls = true;
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
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--pin"))
            g.pin = true;
        else
            return usage(argv[0]);
    }
    sockperf_replies = sockperf;
    g.port = (uint16_t)port;
    if (g.dtls ? tls || g.udp || g.local || sockperf || alpn || client_ca : srtp)
        return usage(argv[0]);
    if (ktls && !tls)
        return usage(argv[0]);
    if (!g.dtls && (tls ? g.udp || g.local : cert || alpn || client_ca))
        return usage(argv[0]);
    /* Unix sockets have no SO_REUSEPORT; DTLS over several loops is not tried yet. */
    if (threads < 1 || threads > 1024 || (threads > 1 && (g.local || g.dtls)))
        return usage(argv[0]);
    g.log = IInstanceLog_Create("ringsock-echo", 0);
    g.tcp = g.udp || g.dtls ? CreateUDPSocketProvider()
            : g.local       ? CreateLocalSocketProvider()
                            : CreateTCPSocketProvider();
    char **alpn_list = NULL;
    if (g.dtls) {
        g.tls_ctx = ISocketProvider_CreateSocketContext(g.tcp, g.log);
        ISocketContext_EnableDTLS(g.tls_ctx, srtp);
        g.srtp = srtp;
        if (cert) {
            size_t len;
            uint8_t *pem = read_file(cert, &len);
            ISocketContext_SetServerCertificate(g.tls_ctx, pem, len, NULL); /* copied */
            free(pem);
        }
        if (!print_fingerprint(g.tls_ctx))
            return 1;
    }
    if (tls) {
        g.tls = CreateTLSSocketProvider(g.tcp);
        g.tls_ctx = ISocketProvider_CreateSocketContext(g.tls, g.log);
        if (ktls) /* only then: RINGSOCK_KTLS=1 stays in force without it */
            ISocketContext_EnableKernelTLS(g.tls_ctx, true);
        g.ktls = ktls;
        size_t len;
        if (cert) {
            uint8_t *pem = read_file(cert, &len);
            ISocketContext_SetServerCertificate(g.tls_ctx, pem, len, NULL); /* copied */
            free(pem);
        }
        if (client_ca) {
            uint8_t *pem = read_file(client_ca, &len);
            ISocketContext_SetTrustedCertificates(g.tls_ctx, pem, len);
            ISocketContext_RequireClientCertificate(g.tls_ctx, true);
            free(pem);
        }
        if (alpn) {
            alpn_list = split_list(alpn);
            ISocketContext_SetALPNProtocols(g.tls_ctx, (const char *const *)alpn_list);
        }
    }
    /* The context is configured: from here on the loops only read it (docs/threads.md). */
    struct server *loops = calloc((size_t)threads, sizeof(*loops));
    if (!loops)
        return 1;
    for (int i = 0; i < threads; i++) {
        loops[i] = (struct server){.user.vtbl = &srv_vtbl,
                                   .udp_user.vtbl = &udp_vtbl,
                                   .shutdown.vtbl = &shutdown_vtbl,
                                   .idx = i};
        sem_init(&loops[i].bound, 0, 0);
    }
    int status = 0;
    if (threads == 1) {
        if (g.pin)
            pin_thread(0);
        run_loop(&loops[0]);
    } else {
        /* The first loop binds first: with --port 0 the others take the port it got. */
        int started = 0;
        for (int i = 0; i < threads; i++, started++) {
            if (pthread_create(&loops[i].thread, NULL, loop_thread, &loops[i]) != 0) {
                fprintf(stderr, "ringsock-echo: cannot start loop %d\n", i);
                status = 1;
                break;
            }
            if (i == 0)
                sem_wait(&loops[0].bound);
        }
        for (int i = 0; i < started; i++)
            pthread_join(loops[i].thread, NULL);
    }
    for (int i = 0; i < threads; i++) {
        status |= loops[i].status;
        sem_destroy(&loops[i].bound);
    }
    free(loops);
    if (g.tls_ctx)
        ISocketContext_Delete(g.tls_ctx); /* after the sockets that use it */
    if (g.tls)
        ISocketProvider_Delete(g.tls);
    free_list(alpn_list);
    ISocketProvider_Delete(g.tcp);
    IInstanceLog_Delete(g.log);
    return status;
}
