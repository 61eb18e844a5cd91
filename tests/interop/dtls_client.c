/* ringsock-dtls-client: a DTLS (and DTLS-SRTP) client on the engine, for interop tests
 * against real servers.
 *
 *   ringsock-dtls-client --connect HOST:PORT [--srtp] [--count N] [--size BYTES]
 *                        [--send TEXT] [--expect-echo] [--cert PEM] [--timeout MS]
 *
 * HOST is an address literal. Connects through the UDP provider with a DTLS context
 * (ISocketContext_EnableDTLS; the server's certificate is not verified: DTLS peers check
 * fingerprints). Once the handshake is done it prints
 *
 *   connected
 *   handshake_ms=MS              (from Connect to SocketConnectComplete)
 *   peer_fp=HEX                  (SHA-256 of the server's certificate, lowercase, no colons)
 *   profile=NAME                 (--srtp: the SRTP protection profile)
 *   keymat=HEX                   (--srtp: RFC 5705 "EXTRACTOR-dtls_srtp", 2 * (key + salt)
 *                                 bytes of the profile: 60, 56 or 88)
 *
 * then sends N messages (default 1): TEXT if given, else BYTES (default 100) of a pattern
 * numbered by the message; with --srtp each is an RTP packet (sequence number = index).
 * With --expect-echo it waits for N messages back and compares each with what it sent
 * ("echo ok: N messages"); without, it waits for the sends' results. Then it shuts down
 * (close_notify) and exits 0.
 *
 * Failure: the socket's shutdown reason on stderr ("ringsock-dtls-client: SOCKET_..."),
 * and exit status 1; 4 when an echo differs; 3 when nothing happened within --timeout ms
 * (default 10000). */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <ringsock/socket.h>

#include "read_file.h"

#define MSG_MAX 1400

struct client {
    USocket user;
    UTimer timer_user;
    IIoMux *mux;
    ITimer *timer;
    ISocket *sock;
    bool srtp, expect_echo, closing;
    const char *text;
    unsigned count, sent_results, echoed;
    size_t size;
    int status;
    struct timespec start;
    uint8_t out[MSG_MAX];
    uint8_t in[MSG_MAX + 64];
};

static double ms_since(const struct timespec *t0)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)(t.tv_sec - t0->tv_sec) * 1e3 + (double)(t.tv_nsec - t0->tv_nsec) / 1e6;
}

static void finish(struct client *c, int status)
{
    c->status = status;
    ITimer_Cancel(c->timer);
    IIoMux_Terminate(c->mux);
}

static void close_client(struct client *c)
{
    c->closing = true;
    ISocket_Shutdown(c->sock);
}

/* Message i: an RTP packet (--srtp) or TEXT or a numbered pattern. */
static size_t message(struct client *c, unsigned i, uint8_t *p)
{
    size_t n = c->size, off = 0;
    if (c->text) {
        n = strlen(c->text);
        memcpy(p, c->text, n);
        return n;
    }
    if (c->srtp) {
        p[0] = 0x80; /* version 2 */
        p[1] = 96;   /* dynamic payload type */
        p[2] = (uint8_t)(i >> 8);
        p[3] = (uint8_t)i;
        memset(p + 4, 0, 4);
        p[8] = 0x12, p[9] = 0x34, p[10] = 0x56, p[11] = 0x78; /* SSRC */
        off = 12;
        n += off;
    }
    for (size_t k = off; k < n; k++)
        p[k] = (uint8_t)(k * 7 + i * 13 + 1);
    return n;
}

static size_t expected_keymat(const char *profile)
{
    if (!strcmp(profile, "SRTP_AES128_CM_SHA1_80") || !strcmp(profile, "SRTP_AES128_CM_SHA1_32"))
        return 2 * (16 + 14);
    if (!strcmp(profile, "SRTP_AEAD_AES_128_GCM"))
        return 2 * (16 + 12);
    if (!strcmp(profile, "SRTP_AEAD_AES_256_GCM"))
        return 2 * (32 + 12);
    return 0;
}

static void print_hex(const char *name, const uint8_t *b, size_t n)
{
    printf("%s=", name);
    for (size_t i = 0; i < n; i++)
        printf("%02x", b[i]);
    putchar('\n');
}

static void on_connect(USocket *u, ISocket *sock)
{
    struct client *c = RINGSOCK_CONTAINER_OF(u, struct client, user);
    printf("connected\nhandshake_ms=%.1f\n", ms_since(&c->start));
    uint8_t fp[32];
    if (ISocket_GetPeerCertificateFingerprint(sock, fp))
        print_hex("peer_fp", fp, sizeof(fp));
    else
        printf("peer_fp=none\n");
    if (c->srtp) {
        const char *profile = ISocket_GetSRTPProfile(sock);
        size_t n = profile ? expected_keymat(profile) : 0;
        uint8_t km[88];
        printf("profile=%s\n", profile ? profile : "none");
        if (n == 0 || !ISocket_ExportKeyingMaterial(sock, "EXTRACTOR-dtls_srtp", NULL, 0, km, n)) {
            fflush(stdout);
            fprintf(stderr, "ringsock-dtls-client: no SRTP profile or keying material\n");
            finish(c, 1);
            return;
        }
        print_hex("keymat", km, n);
    }
    fflush(stdout);
    if (c->count == 0) {
        close_client(c);
        return;
    }
    for (unsigned i = 0; i < c->count; i++) {
        size_t n = message(c, i, c->out);
        ISocket_Send(sock, c->out, n); /* copied */
    }
    if (c->expect_echo)
        ISocket_Recv(sock, c->in, sizeof(c->in), false);
}

static void on_send_result(USocket *u, ISocket *sock)
{
    struct client *c = RINGSOCK_CONTAINER_OF(u, struct client, user);
    (void)sock;
    if (++c->sent_results == c->count && !c->expect_echo)
        close_client(c);
}

static void on_recv(USocket *u, ISocket *sock, void *buf, size_t len)
{
    struct client *c = RINGSOCK_CONTAINER_OF(u, struct client, user);
    uint8_t want[MSG_MAX];
    size_t n = message(c, c->echoed, want);
    if (len != n || memcmp(buf, want, n) != 0) {
        fprintf(stderr, "ringsock-dtls-client: echo %u differs (%zu bytes, want %zu)\n", c->echoed,
                len, n);
        finish(c, 4);
        return;
    }
    if (++c->echoed == c->count) {
        printf("echo ok: %u messages\n", c->count);
        fflush(stdout);
        close_client(c);
        return;
    }
    ISocket_Recv(sock, c->in, sizeof(c->in), false);
}

static void on_shutdown(USocket *u, ISocket *sock, shutdownreason_t reason)
{
    struct client *c = RINGSOCK_CONTAINER_OF(u, struct client, user);
    (void)sock;
    if (c->closing && reason == SOCKET_SHUTDOWN_NORMAL) {
        finish(c, 0);
        return;
    }
    fprintf(stderr, "ringsock-dtls-client: %s\n", SocketShutdownReasonToStr(reason));
    finish(c, 1);
}

static const USocketVtbl client_vtbl = {
    .SocketConnectComplete = on_connect,
    .SocketSendResult = on_send_result,
    .SocketRecvResult = on_recv,
    .SocketShutdown = on_shutdown,
};

static void on_timeout(UTimer *u, ITimer *timer)
{
    (void)timer;
    struct client *c = RINGSOCK_CONTAINER_OF(u, struct client, timer_user);
    fprintf(stderr, "ringsock-dtls-client: timeout\n");
    finish(c, 3);
}

static const struct UTimerVtbl timer_vtbl = {on_timeout};

static int usage(void)
{
    fprintf(stderr, "usage: ringsock-dtls-client --connect HOST:PORT [--srtp] [--count N]\n"
                    "           [--size BYTES] [--send TEXT] [--expect-echo] [--cert PEM]\n"
                    "           [--timeout MS]\n");
    return 2;
}

int main(int argc, char **argv)
{
    static struct client c = {.user.vtbl = &client_vtbl, .timer_user.vtbl = &timer_vtbl};
    const char *target = NULL, *cert = NULL;
    unsigned timeout_ms = 10000;
    c.count = 1;
    c.size = 100;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--connect") && i + 1 < argc)
            target = argv[++i];
        else if (!strcmp(argv[i], "--srtp"))
            c.srtp = true;
        else if (!strcmp(argv[i], "--count") && i + 1 < argc)
            c.count = (unsigned)atoi(argv[++i]);
        else if (!strcmp(argv[i], "--size") && i + 1 < argc)
            c.size = (size_t)atoi(argv[++i]);
        else if (!strcmp(argv[i], "--send") && i + 1 < argc)
            c.text = argv[++i];
        else if (!strcmp(argv[i], "--expect-echo"))
            c.expect_echo = true;
        else if (!strcmp(argv[i], "--cert") && i + 1 < argc)
            cert = argv[++i];
        else if (!strcmp(argv[i], "--timeout") && i + 1 < argc)
            timeout_ms = (unsigned)atoi(argv[++i]);
        else
            return usage();
    }
    if (!target || c.size + 12 > MSG_MAX || (c.text && strlen(c.text) > MSG_MAX))
        return usage();

    c.status = 3;
    c.mux = IIoMux_Create();
    if (!c.mux)
        return 2;
    IInstanceLog *log = IInstanceLog_Create("ringsock-dtls-client", 0);
    ISocketProvider *udp = CreateUDPSocketProvider();
    ISocketContext *ctx = ISocketProvider_CreateSocketContext(udp, log);
    ISocketContext_EnableDTLS(ctx, c.srtp);
    ISocketContext_SetVerifyPeer(ctx, false);
    if (cert) {
        size_t len;
        uint8_t *pem = read_file(cert, &len);
        ISocketContext_SetClientCertificate(ctx, pem, len, NULL); /* copied */
        free(pem);
    }
    c.timer = ITimer_Create(c.mux, &c.timer_user);
    ITimer_Start(c.timer, timeout_ms);
    c.sock =
        ISocketProvider_CreateSocket(udp, c.mux, &c.user, log, strchr(target, '[') != NULL, ctx);
    clock_gettime(CLOCK_MONOTONIC, &c.start);
    ISocket_Connect(c.sock, target, NULL);
    IIoMux_Run(c.mux);

    ISocket_Delete(c.sock);
    ITimer_Delete(c.timer);
    ISocketContext_Delete(ctx);
    ISocketProvider_Delete(udp);
    IInstanceLog_Delete(log);
    IIoMux_Delete(c.mux);
    return c.status;
}
