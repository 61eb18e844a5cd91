// SPDX-License-Identifier: MIT
// ringsock-zc-bench: where does zero-copy send pay?
//
// Client (default): one ringsock TCP connection streams messages of --size bytes to a sink
// for --seconds (after --warmup), keeping --depth sends outstanding. --mode copy uses
// ISocket_Send; --mode nocopy uses ISocket_SendNoCopy over a fixed set of --depth buffers,
// a buffer being sent again only after its SocketSendResult (results come in order, so the
// oldest outstanding buffer is the one whose result just arrived). Copy mode keeps the same
// number of sends outstanding, so both modes are paced alike.
//
// It prints one line of key=value pairs:
//   MBps           megabytes (1e6) per second whose SocketSendResult arrived in the window
//   cpu_ms_per_GB  this process's CPU time (getrusage, user+sys) per gigabyte (1e9)
//   core_ms_per_GB busy time of the core the client is pinned to (from /proc/stat: user,
//                  system, irq and softirq of every task on it, so it includes the softirq
//                  receive work a veth or loopback peer does on the sender's core); "-" when
//                  the client is not pinned to one core
//   all_ms_per_GB  busy time of all cores per gigabyte (client, sink, softirq)
//   zc_sends       kernel sends made with IORING_OP_SEND_ZC (ISocket_GetStats)
//   cpu_total_s    this process's CPU time over its whole life (warmup and setup included)
//
// Sink (--sink): a plain blocking TCP sink in libc: listens on --addr:--port (port 0: any),
// prints "listening on PORT", then serves one connection at a time, reading (1 MiB at a
// time, copying like any receiver) until EOF.
//
//   ringsock-zc-bench --sink --addr 198.18.0.2 --port 5201
//   ringsock-zc-bench --addr 198.18.0.2 --port 5201 --size 64K --mode nocopy --seconds 3
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <ringsock/socket.h>

#define MAX_DEPTH 256

static void die(const char *msg)
{
    fprintf(stderr, "ringsock-zc-bench: %s\n", msg);
    exit(2);
}

static size_t parse_size(const char *s)
{
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    switch (*end) {
    case 'k':
    case 'K':
        v <<= 10;
        end++;
        break;
    case 'm':
    case 'M':
        v <<= 20;
        end++;
        break;
    default:
        break;
    }
    if (*end == 'i' || *end == 'B' || *end == 'b') /* "64KiB", "64KB" */
        end += strspn(end, "iBb");
    if (*end || v == 0 || v > (1ull << 30))
        die("bad size (bytes, or with K/M suffix, 1 .. 1G)");
    return (size_t)v;
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

/* Busy ticks (user nice system irq softirq; not idle, iowait, steal) of one cpu, or of all
 * (cpu < 0), from /proc/stat. */
static long long busy_ticks(int cpu)
{
    FILE *f = fopen("/proc/stat", "r");
    if (!f)
        return -1;
    char line[512], want[32];
    if (cpu < 0)
        snprintf(want, sizeof(want), "cpu ");
    else
        snprintf(want, sizeof(want), "cpu%d ", cpu);
    long long busy = -1;
    while (fgets(line, sizeof(line), f)) {
        if (strncmp(line, want, strlen(want)) != 0)
            continue;
        long long v[8] = {0};
        if (sscanf(line + strlen(want), "%lld %lld %lld %lld %lld %lld %lld %lld", &v[0], &v[1],
                   &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]) >= 7)
            busy = v[0] + v[1] + v[2] + v[5] + v[6];
        break;
    }
    fclose(f);
    return busy;
}

/* The one cpu this process is pinned to, or -1. */
static int pinned_cpu(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof(set), &set) != 0 || CPU_COUNT(&set) != 1)
        return -1;
    for (int i = 0; i < CPU_SETSIZE; i++)
        if (CPU_ISSET(i, &set))
            return i;
    return -1;
}

/* ---- sink ------------------------------------------------------------------------------ */

static int run_sink(const char *addr, uint16_t port)
{
    signal(SIGPIPE, SIG_IGN);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    if (inet_pton(AF_INET, addr, &sa.sin_addr) != 1)
        die("--sink: --addr must be an IPv4 address");
    int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (l < 0 || bind(l, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(l, 16) < 0) {
        perror("ringsock-zc-bench --sink");
        return 1;
    }
    socklen_t len = sizeof(sa);
    getsockname(l, (struct sockaddr *)&sa, &len);
    printf("listening on %u\n", ntohs(sa.sin_port));
    fflush(stdout);
    size_t cap = 1 << 20;
    char *buf = malloc(cap);
    if (!buf)
        die("out of memory");
    for (;;) {
        int c = accept4(l, NULL, NULL, SOCK_CLOEXEC);
        if (c < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            perror("accept");
            return 1;
        }
        unsigned long long total = 0;
        for (;;) {
            ssize_t n = recv(c, buf, cap, 0);
            if (n > 0) {
                total += (unsigned long long)n;
            } else if (n < 0 && errno == EINTR) {
                continue;
            } else {
                break;
            }
        }
        close(c);
        fprintf(stderr, "sink: connection done, %llu bytes\n", total);
    }
}

/* ---- client ---------------------------------------------------------------------------- */

enum phase { PH_CONNECTING, PH_WARMUP, PH_MEASURE, PH_DRAIN, PH_DONE };

struct bench {
    USocket user;
    UTimer timer_user;
    IIoMux *mux;
    ISocket *sock;
    ITimer *timer;
    bool nocopy;
    size_t size;
    unsigned depth, seconds, warmup;
    uint8_t *bufs[MAX_DEPTH];
    unsigned next_buf;    /* buffer for the next send */
    unsigned outstanding; /* sends without their SocketSendResult yet */
    uint64_t results;     /* SocketSendResults so far */
    enum phase phase;
    bool failed;
    /* measurement window */
    uint64_t r0, r1;
    double t0, t1, cpu0, cpu1;
    long long core0, core1, all0, all1;
    int cpu;
};

#define B_OF(p, m) ((struct bench *)((char *)(p)-offsetof(struct bench, m)))

static void send_one(struct bench *b)
{
    uint8_t *buf = b->bufs[b->next_buf];
    b->next_buf = (b->next_buf + 1) % b->depth;
    b->outstanding++;
    if (b->nocopy)
        ISocket_SendNoCopy(b->sock, buf, b->size);
    else
        ISocket_Send(b->sock, buf, b->size);
}

static void snapshot(struct bench *b, uint64_t *r, double *t, double *cpu, long long *core,
                     long long *all)
{
    *r = b->results;
    *t = now_s();
    *cpu = rusage_s();
    *core = b->cpu >= 0 ? busy_ticks(b->cpu) : -1;
    *all = busy_ticks(-1);
}

static void on_connect(USocket *u, ISocket *s)
{
    (void)s;
    struct bench *b = B_OF(u, user);
    b->phase = b->warmup ? PH_WARMUP : PH_MEASURE;
    if (b->phase == PH_MEASURE)
        snapshot(b, &b->r0, &b->t0, &b->cpu0, &b->core0, &b->all0);
    ITimer_Start(b->timer, 1000 * (b->warmup ? b->warmup : b->seconds));
    for (unsigned i = 0; i < b->depth; i++)
        send_one(b);
}

static void on_send_result(USocket *u, ISocket *s)
{
    (void)s;
    struct bench *b = B_OF(u, user);
    b->outstanding--;
    b->results++;
    if (b->phase == PH_WARMUP || b->phase == PH_MEASURE)
        send_one(b); /* reuses the buffer whose result this is */
}

static void on_shutdown(USocket *u, ISocket *s, shutdownreason_t reason)
{
    (void)s;
    struct bench *b = B_OF(u, user);
    if (b->phase != PH_DRAIN || reason != SOCKET_SHUTDOWN_NORMAL) {
        fprintf(stderr, "ringsock-zc-bench: connection ended: %s\n",
                SocketShutdownReasonToStr(reason));
        b->failed = true;
    }
    b->phase = PH_DONE;
    IIoMux_Terminate(b->mux);
}

static void on_timer(UTimer *u, ITimer *t)
{
    struct bench *b = B_OF(u, timer_user);
    if (b->phase == PH_CONNECTING) {
        fprintf(stderr, "ringsock-zc-bench: connect timed out\n");
        b->failed = true;
        IIoMux_Terminate(b->mux);
    } else if (b->phase == PH_WARMUP) {
        b->phase = PH_MEASURE;
        snapshot(b, &b->r0, &b->t0, &b->cpu0, &b->core0, &b->all0);
        ITimer_Start(t, 1000 * b->seconds);
    } else if (b->phase == PH_MEASURE) {
        snapshot(b, &b->r1, &b->t1, &b->cpu1, &b->core1, &b->all1);
        b->phase = PH_DRAIN;
        ISocket_Shutdown(b->sock); /* flushes what is outstanding, then SocketShutdown */
        ITimer_Start(t, 10000);
    } else {
        fprintf(stderr, "ringsock-zc-bench: drain timed out\n");
        b->failed = true;
        IIoMux_Terminate(b->mux);
    }
}

static const USocketVtbl bench_vtbl = {
    .SocketConnectComplete = on_connect,
    .SocketShutdown = on_shutdown,
    .SocketSendResult = on_send_result,
};
static const struct UTimerVtbl bench_timer_vtbl = {on_timer};

static void usage(void)
{
    fprintf(stderr,
            "usage: ringsock-zc-bench --addr IPV4 --port P [--size S] [--mode copy|nocopy]\n"
            "                         [--seconds N] [--warmup W] [--depth D]\n"
            "       ringsock-zc-bench --sink [--addr IPV4] --port P\n");
    exit(2);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"addr", required_argument, 0, 'a'},    {"port", required_argument, 0, 'p'},
        {"size", required_argument, 0, 's'},    {"mode", required_argument, 0, 'm'},
        {"seconds", required_argument, 0, 't'}, {"warmup", required_argument, 0, 'w'},
        {"depth", required_argument, 0, 'd'},   {"sink", no_argument, 0, 'S'},
        {"help", no_argument, 0, 'h'},          {0, 0, 0, 0},
    };
    const char *addr = NULL;
    long port = -1;
    bool sink = false;
    static struct bench b;
    b.size = 65536;
    b.depth = 8;
    b.seconds = 5;
    b.warmup = 1;
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'a':
            addr = optarg;
            break;
        case 'p':
            port = strtol(optarg, NULL, 10);
            break;
        case 's':
            b.size = parse_size(optarg);
            break;
        case 'm':
            if (strcmp(optarg, "copy") == 0)
                b.nocopy = false;
            else if (strcmp(optarg, "nocopy") == 0)
                b.nocopy = true;
            else
                usage();
            break;
        case 't':
            b.seconds = (unsigned)strtoul(optarg, NULL, 10);
            break;
        case 'w':
            b.warmup = (unsigned)strtoul(optarg, NULL, 10);
            break;
        case 'd':
            b.depth = (unsigned)strtoul(optarg, NULL, 10);
            break;
        case 'S':
            sink = true;
            break;
        default:
            usage();
        }
    }
    if (port < 0 || port > 65535)
        usage();
    if (sink)
        return run_sink(addr ? addr : "127.0.0.1", (uint16_t)port);
    if (!addr || port == 0 || b.seconds == 0 || b.depth == 0 || b.depth > MAX_DEPTH)
        usage();

    for (unsigned i = 0; i < b.depth; i++) {
        b.bufs[i] = aligned_alloc(4096, (b.size + 4095) & ~(size_t)4095);
        if (!b.bufs[i])
            die("out of memory");
        for (size_t k = 0; k < b.size; k++) /* touch every page: no faults while measuring */
            b.bufs[i][k] = (uint8_t)(k * 31 + i);
    }
    b.cpu = pinned_cpu();
    b.mux = IIoMux_Create();
    if (!b.mux)
        return 1;
    ISocketProvider *tcp = CreateTCPSocketProvider();
    b.user.vtbl = &bench_vtbl;
    b.timer_user.vtbl = &bench_timer_vtbl;
    b.timer = ITimer_Create(b.mux, &b.timer_user);
    b.sock =
        ISocketProvider_CreateSocket(tcp, b.mux, &b.user, NULL, strchr(addr, ':') != NULL, NULL);
    char target[128];
    snprintf(target, sizeof(target), strchr(addr, ':') ? "[%s]:%ld" : "%s:%ld", addr, port);
    b.phase = PH_CONNECTING;
    ISocket_Connect(b.sock, target, NULL);
    ITimer_Start(b.timer, 5000);
    IIoMux_Run(b.mux);

    ISocketStats st = {0};
    if (b.sock) {
        ISocket_GetStats(b.sock, &st);
        ISocket_Delete(b.sock);
    }
    ITimer_Delete(b.timer);
    ISocketProvider_Delete(tcp);
    IIoMux_Delete(b.mux);
    for (unsigned i = 0; i < b.depth; i++)
        free(b.bufs[i]);
    if (b.failed || b.t1 <= b.t0)
        return 1;

    double secs = b.t1 - b.t0;
    double bytes = (double)(b.r1 - b.r0) * (double)b.size;
    double gb = bytes / 1e9;
    long tck = sysconf(_SC_CLK_TCK);
    char core[32] = "-";
    if (b.core0 >= 0 && b.core1 >= 0 && gb > 0)
        snprintf(core, sizeof(core), "%.1f", (double)(b.core1 - b.core0) / (double)tck * 1e3 / gb);
    printf("mode=%s size=%zu depth=%u seconds=%.2f MBps=%.1f cpu_ms_per_GB=%.1f "
           "core_ms_per_GB=%s all_ms_per_GB=%.1f cpu_util=%.1f zc_sends=%" PRIu64 " sends=%" PRIu64
           " cpu_total_s=%.3f\n",
           b.nocopy ? "nocopy" : "copy", b.size, b.depth, secs, bytes / 1e6 / secs,
           gb > 0 ? (b.cpu1 - b.cpu0) * 1e3 / gb : 0.0, core,
           gb > 0 ? (double)(b.all1 - b.all0) / (double)tck * 1e3 / gb : 0.0,
           100.0 * (b.cpu1 - b.cpu0) / secs, st.zeroCopySends, st.sends, rusage_s());
    return 0;
}
