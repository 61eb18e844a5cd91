// SPDX-License-Identifier: MIT
// ringsock-srtp-bench: RTP packet rate through the engine, SRTP (DTLS-SRTP sockets) against
// plain UDP, sender and receiver in one process on one IIoMux and one thread.
//
//   --plain  the receiver is a UDP socket bound to 127.0.0.1:0 (SocketRecvFromResult), the
//            sender a UDP socket connected to it (Send): the same shape as DTLS-SRTP below,
//            whose client port is connected and whose server port is bound.
//   --srtp   a DTLS-SRTP pair: the receiver binds (the DTLS server, Accept in
//            SocketListenResult), the sender connects (the DTLS client). The handshake runs
//            before anything is timed. Each Send protects one RTP packet; each RecvResult is
//            one unprotected packet.
//
// The sender keeps --window Sends outstanding: the next packet goes out when a
// SocketSendResult arrives. The receiver keeps one Recv posted and checks every packet: its
// length, header, sequence number and payload pattern (errors), and whether it is the one
// after the last (gaps). After --warmup, --seconds are timed: packets received in the window,
// and this process's CPU time (getrusage: user + system, which includes loopback delivery)
// per packet. Then sending stops; lost = packets sent (Send calls) - packets received once
// the receiver has drained (or DRAIN_MS passed).
//
// Output: one line of key=value pairs, or JSON with --json.
//   ringsock-srtp-bench --srtp --size 160 --seconds 3 --window 16
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <ringsock/socket.h>

#define RTP_HDR     12
#define MAX_PAYLOAD 1400
#define PATTERNS    256 /* prebuilt packets: payload pattern depends on the index mod 256 */
#define MAX_WINDOW  4096
#define RTP_PT      111
#define RTP_SSRC    0x5eed1234u
#define DRAIN_MS    1000 /* how long the receiver may take to catch up after sending stops */

enum phase { PH_SETUP, PH_WARMUP, PH_MEASURE, PH_DRAIN, PH_DONE };

struct bench {
    USocket tx_user, rx_user, listen_user;
    UTimer timer_user;
    IIoMux *mux;
    ITimer *timer;
    ISocket *tx, *rx, *listener; /* listener: the bound DTLS socket (srtp only) */
    bool srtp, json;
    size_t size; /* RTP payload bytes */
    unsigned window, seconds;
    double warmup;
    enum phase phase;
    bool failed, tx_ready, rx_ready, accepted;

    uint8_t pkts[PATTERNS][RTP_HDR + MAX_PAYLOAD];
    uint8_t rbuf[2048];
    uint32_t next_index; /* the index (RTP timestamp; low 16 bits the sequence) to send */
    uint32_t expect;     /* the index the receiver expects next */
    uint64_t sent;       /* SendResults (next_index: Sends) */
    uint64_t received, errors, gaps;

    /* measurement window */
    uint64_t rx0, rx1, tx0, tx1;
    double t0, t1, cpu0, cpu1;
};

#define B_OF(p, m) ((struct bench *)((char *)(p)-offsetof(struct bench, m)))

static void die(const char *msg)
{
    fprintf(stderr, "ringsock-srtp-bench: %s\n", msg);
    exit(2);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double rusage_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6;
}

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Prebuilt packets, so that a send only patches sequence and timestamp (the engine copies
 * on Send, so one buffer per pattern is enough) and a check is one memcmp. */
static void build_packets(struct bench *b)
{
    for (unsigned i = 0; i < PATTERNS; i++) {
        uint8_t *p = b->pkts[i];
        memset(p, 0, RTP_HDR);
        p[0] = 0x80; /* version 2 */
        p[1] = RTP_PT;
        put32(p + 8, RTP_SSRC);
        for (size_t k = 0; k < b->size; k++)
            p[RTP_HDR + k] = (uint8_t)(i * 13 + k * 7 + 1);
    }
}

static void send_one(struct bench *b)
{
    uint32_t idx = b->next_index++;
    uint8_t *p = b->pkts[idx % PATTERNS];
    p[2] = (uint8_t)(idx >> 8);
    p[3] = (uint8_t)idx;
    put32(p + 4, idx); /* the timestamp carries the whole index */
    ISocket_Send(b->tx, p, RTP_HDR + b->size);
}

static void snapshot(struct bench *b, uint64_t *rx, uint64_t *tx, double *t, double *cpu)
{
    *rx = b->received;
    *tx = b->sent;
    *t = now_s();
    *cpu = rusage_s();
}

static void check_packet(struct bench *b, const uint8_t *p, size_t len)
{
    b->received++;
    if (len != RTP_HDR + b->size || p[0] != 0x80 || p[1] != RTP_PT || get32(p + 8) != RTP_SSRC) {
        b->errors++;
        return;
    }
    uint32_t idx = get32(p + 4);
    const uint8_t *want = b->pkts[idx % PATTERNS];
    if (p[2] != (uint8_t)(idx >> 8) || p[3] != (uint8_t)idx ||
        memcmp(p + RTP_HDR, want + RTP_HDR, b->size) != 0) {
        b->errors++;
        return;
    }
    if (idx != b->expect)
        b->gaps++; /* lost or reordered before it */
    b->expect = idx + 1;
}

static void finish(struct bench *b)
{
    b->phase = PH_DONE;
    ITimer_Cancel(b->timer);
    IIoMux_Terminate(b->mux);
}

static void on_received(struct bench *b, size_t len)
{
    check_packet(b, b->rbuf, len);
    if (b->phase == PH_DRAIN && b->received >= b->next_index) { /* every packet is in */
        finish(b);
        return;
    }
    ISocket_Recv(b->rx, b->rbuf, sizeof(b->rbuf), false);
}

static void start_traffic(struct bench *b)
{
    if (!b->tx_ready || !b->rx_ready || b->phase != PH_SETUP)
        return;
    ISocket_Recv(b->rx, b->rbuf, sizeof(b->rbuf), false);
    b->phase = b->warmup > 0 ? PH_WARMUP : PH_MEASURE;
    if (b->phase == PH_MEASURE)
        snapshot(b, &b->rx0, &b->tx0, &b->t0, &b->cpu0);
    ITimer_Start(b->timer, b->warmup > 0 ? (unsigned)(b->warmup * 1000) : 1000 * b->seconds);
    for (unsigned i = 0; i < b->window; i++)
        send_one(b);
}

static void fail(struct bench *b, const char *what, shutdownreason_t reason)
{
    fprintf(stderr, "ringsock-srtp-bench: %s ended: %s\n", what, SocketShutdownReasonToStr(reason));
    b->failed = true;
    finish(b);
}

/* ---- sender ---------------------------------------------------------------------------- */

static void tx_connected(USocket *u, ISocket *s)
{
    (void)s;
    struct bench *b = B_OF(u, tx_user);
    b->tx_ready = true;
    start_traffic(b);
}

static void tx_send_result(USocket *u, ISocket *s)
{
    (void)s;
    struct bench *b = B_OF(u, tx_user);
    b->sent++;
    if (b->phase == PH_WARMUP || b->phase == PH_MEASURE)
        send_one(b);
}

static void tx_shutdown(USocket *u, ISocket *s, shutdownreason_t reason)
{
    (void)s;
    fail(B_OF(u, tx_user), "sender", reason);
}

static const USocketVtbl tx_vtbl = {
    .SocketConnectComplete = tx_connected,
    .SocketShutdown = tx_shutdown,
    .SocketSendResult = tx_send_result,
};

/* ---- receiver -------------------------------------------------------------------------- */

static void rx_accepted(USocket *u, ISocket *s)
{
    struct bench *b = B_OF(u, rx_user);
    b->rx = s;
    b->rx_ready = true;
    start_traffic(b);
}

static void rx_recv(USocket *u, ISocket *s, void *buf, size_t len)
{
    (void)s;
    (void)buf;
    on_received(B_OF(u, rx_user), len);
}

static void rx_recv_from(USocket *u, ISocket *s, void *buf, size_t len, IPaddr addr, uint16_t port)
{
    (void)s;
    (void)buf;
    (void)addr;
    (void)port;
    on_received(B_OF(u, rx_user), len);
}

static void rx_shutdown(USocket *u, ISocket *s, shutdownreason_t reason)
{
    (void)s;
    fail(B_OF(u, rx_user), "receiver", reason);
}

static const USocketVtbl rx_vtbl = {
    .SocketAcceptComplete = rx_accepted,
    .SocketShutdown = rx_shutdown,
    .SocketRecvResult = rx_recv,
    .SocketRecvFromResult = rx_recv_from,
};

/* The bound DTLS socket: takes the one peer (the sender) and nothing else. */
static void listen_result(USocket *u, ISocket *s, const char *addr, uint16_t port)
{
    (void)addr;
    (void)port;
    struct bench *b = B_OF(u, listen_user);
    ISocket_Accept(s, b->accepted ? NULL : &b->rx_user);
    b->accepted = true;
}

static void listen_shutdown(USocket *u, ISocket *s, shutdownreason_t reason)
{
    (void)s;
    fail(B_OF(u, listen_user), "DTLS listener", reason);
}

static const USocketVtbl listen_vtbl = {
    .SocketListenResult = listen_result,
    .SocketShutdown = listen_shutdown,
};

/* ---- timer: setup timeout, warmup, measurement, drain ----------------------------------- */

static void on_timer(UTimer *u, ITimer *t)
{
    struct bench *b = B_OF(u, timer_user);
    switch (b->phase) {
    case PH_SETUP:
        fprintf(stderr, "ringsock-srtp-bench: %s timed out\n",
                b->srtp ? "DTLS handshake" : "setup");
        b->failed = true;
        finish(b);
        break;
    case PH_WARMUP:
        b->phase = PH_MEASURE;
        snapshot(b, &b->rx0, &b->tx0, &b->t0, &b->cpu0);
        ITimer_Start(t, 1000 * b->seconds);
        break;
    case PH_MEASURE:
        snapshot(b, &b->rx1, &b->tx1, &b->t1, &b->cpu1);
        b->phase = PH_DRAIN; /* no new sends; wait for the outstanding ones to arrive */
        ITimer_Start(t, DRAIN_MS);
        break;
    default:
        finish(b); /* drain timed out: what is missing is lost */
    }
}

static const struct UTimerVtbl timer_vtbl = {on_timer};

/* ---- main ------------------------------------------------------------------------------- */

static void usage(void)
{
    fprintf(stderr,
            "usage: ringsock-srtp-bench --plain|--srtp [--size 160|1200 (RTP payload)]\n"
            "                           [--seconds N] [--warmup S] [--window W] [--json]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"plain", no_argument, 0, 'p'},
        {"srtp", no_argument, 0, 's'},
        {"size", required_argument, 0, 'z'},
        {"seconds", required_argument, 0, 't'},
        {"warmup", required_argument, 0, 'w'},
        {"window", required_argument, 0, 'W'},
        {"json", no_argument, 0, 'j'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    static struct bench b;
    int mode = -1;
    b.size = 160;
    b.seconds = 3;
    b.warmup = 0.5;
    b.window = 16;
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'p':
            mode = 0;
            break;
        case 's':
            mode = 1;
            break;
        case 'z':
            b.size = (size_t)strtoul(optarg, NULL, 10);
            break;
        case 't':
            b.seconds = (unsigned)strtoul(optarg, NULL, 10);
            break;
        case 'w':
            b.warmup = strtod(optarg, NULL);
            break;
        case 'W':
            b.window = (unsigned)strtoul(optarg, NULL, 10);
            break;
        case 'j':
            b.json = true;
            break;
        default:
            usage();
        }
    }
    if (mode < 0 || b.seconds == 0 || b.warmup < 0 || b.window == 0 || b.window > MAX_WINDOW)
        usage();
    if (b.size > MAX_PAYLOAD)
        die("--size: at most 1400 payload bytes (one datagram)");
    b.srtp = mode == 1;
    build_packets(&b);

    b.mux = IIoMux_Create();
    if (!b.mux)
        return 1;
    b.tx_user.vtbl = &tx_vtbl;
    b.rx_user.vtbl = &rx_vtbl;
    b.listen_user.vtbl = &listen_vtbl;
    b.timer_user.vtbl = &timer_vtbl;
    b.timer = ITimer_Create(b.mux, &b.timer_user);
    ISocketProvider *udp = CreateUDPSocketProvider();
    ISocketContext *sctx = NULL, *cctx = NULL;
    if (b.srtp) {
        sctx = ISocketProvider_CreateSocketContext(udp, NULL);
        cctx = ISocketProvider_CreateSocketContext(udp, NULL);
        ISocketContext_EnableDTLS(sctx, true);
        ISocketContext_EnableDTLS(cctx, true);
    }

    /* receiver first: the sender needs its port */
    ISocket *bound = ISocketProvider_CreateSocket(udp, b.mux, b.srtp ? &b.listen_user : &b.rx_user,
                                                  NULL, false, sctx);
    ISocket_Bind(bound, "127.0.0.1", 0);
    if (b.srtp) {
        ISocket_Listen(bound);
        b.listener = bound;
    } else {
        b.rx = bound;
        b.rx_ready = true;
    }
    char addr[64], target[80];
    uint16_t port = 0;
    ISocket_GetLocalAddress(bound, addr, sizeof(addr), &port);
    if (port == 0)
        die("cannot bind 127.0.0.1");
    snprintf(target, sizeof(target), "127.0.0.1:%u", port);
    b.tx = ISocketProvider_CreateSocket(udp, b.mux, &b.tx_user, NULL, false, cctx);
    ISocket_Connect(b.tx, target, NULL);
    ITimer_Start(b.timer, 10000); /* setup, the DTLS handshake included */
    IIoMux_Run(b.mux);

    const char *profile = b.srtp && b.rx ? ISocket_GetSRTPProfile(b.rx) : NULL;
    char profile_copy[64];
    snprintf(profile_copy, sizeof(profile_copy), "%s", profile ? profile : "none");
    ISocketStats rst = {0};
    if (b.rx)
        ISocket_GetStats(b.rx, &rst);
    ISocket_Delete(b.tx);
    if (b.srtp && b.rx)
        ISocket_Delete(b.rx);
    ISocket_Delete(bound);
    ITimer_Delete(b.timer);
    if (b.srtp) {
        ISocketContext_Delete(sctx);
        ISocketContext_Delete(cctx);
    }
    ISocketProvider_Delete(udp);
    IIoMux_Delete(b.mux);
    if (b.failed || b.t1 <= b.t0)
        return 1;

    double secs = b.t1 - b.t0;
    double pkts = (double)(b.rx1 - b.rx0);
    double pps = pkts / secs;
    double mbps = pps * (double)(RTP_HDR + b.size) / 1e6; /* RTP bytes, before SRTP */
    double cpu_us = pkts > 0 ? (b.cpu1 - b.cpu0) * 1e6 / pkts : 0;
    double util = 100.0 * (b.cpu1 - b.cpu0) / secs;
    uint64_t lost = b.next_index > b.received ? b.next_index - b.received : 0;
    const char *m = b.srtp ? "srtp" : "plain";
    if (b.json)
        printf("{\"mode\":\"%s\",\"size\":%zu,\"window\":%u,\"seconds\":%.3f,\"pkts_per_s\":%.0f,"
               "\"MB_per_s\":%.1f,\"cpu_us_per_pkt\":%.3f,\"cpu_util\":%.1f,\"lost\":%" PRIu64
               ",\"errors\":%" PRIu64 ",\"gaps\":%" PRIu64 ",\"sent\":%" PRIu64
               ",\"received\":%" PRIu64 ",\"rx_dropped\":%" PRIu64 ",\"profile\":\"%s\"}\n",
               m, b.size, b.window, secs, pps, mbps, cpu_us, util, lost, b.errors, b.gaps, b.sent,
               b.received, rst.dropped, profile_copy);
    else
        printf("mode=%s size=%zu pkts/s=%.0f MB/s=%.1f cpu_us_per_pkt=%.3f lost=%" PRIu64
               " errors=%" PRIu64 " gaps=%" PRIu64 " window=%u seconds=%.2f cpu_util=%.1f "
               "sent=%" PRIu64 " received=%" PRIu64 " rx_dropped=%" PRIu64 " profile=%s\n",
               m, b.size, pps, mbps, cpu_us, lost, b.errors, b.gaps, b.window, secs, util, b.sent,
               b.received, rst.dropped, profile_copy);
    return b.errors ? 3 : 0; /* losses are reported, not failed on */
}
