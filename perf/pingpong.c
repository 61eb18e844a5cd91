// SPDX-License-Identifier: MIT
// ringsock-pingpong: single-threaded epoll load client for TCP echo servers.
//
// Each connection keeps --depth messages of --size bytes in flight. A message is done when all
// of its bytes have come back; its round-trip time runs from the send call that carried its
// first byte to the read that completed it. Payloads are slices of one random pattern buffer
// at an offset derived from (connection, message index), so sending needs no copying and
// checking the echo is a memcmp.

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define READ_BUF_SIZE   (64 * 1024)
#define PATTERN_WINDOW  65536 // distinct payload start offsets
#define MAX_IOV         64
#define MAX_EVENTS      512
#define CONNECT_TIMEOUT 10 // seconds for all connections to be established
#define MAX_SIZE        (64u << 20)
#define MAX_DEPTH       4096

// Latency histogram in nanoseconds: exact below 256, then 128 linear sub-buckets per power of
// two, so a bucket is at most 1/128 (< 0.8%) of its value wide.
#define SUB_BITS 7
#define SUB      (1u << SUB_BITS)
#define NBUCKETS ((64 - SUB_BITS) * SUB + SUB)

struct conn {
    int fd;
    uint32_t id;
    bool connected;
    bool wblocked;     // last send hit a full socket buffer; wait for EPOLLOUT
    uint64_t send_idx; // next message whose first byte hasn't been sent
    size_t send_off;   // bytes of message send_idx already sent (0 = not started)
    uint64_t recv_idx; // next message to complete
    size_t recv_off;
    uint64_t recv_mark; // recv_idx when measuring began
    uint64_t *sent_ns;  // send start time, ring indexed by message % depth
};

static struct {
    const char *host;
    const char *port;
    unsigned conns;
    size_t size;
    unsigned depth;
    double seconds;
    double warmup;
    bool json;
} cfg = {
    .host = "127.0.0.1",
    .conns = 1,
    .size = 64,
    .depth = 1,
    .seconds = 5,
    .warmup = 1,
};

static unsigned char *pattern;
static unsigned char rbuf[READ_BUF_SIZE];
static uint64_t hist[NBUCKETS];
static uint64_t hist_count;
static bool measuring;
static uint64_t msgs_done;

static void die(const char *what)
{
    fprintf(stderr, "ringsock-pingpong: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("ringsock-pingpong: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t mix64(uint64_t x)
{
    // splitmix64 finaliser
    x += 0x9e3779b97f4a7c15u;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9u;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebu;
    return x ^ (x >> 31);
}

static const unsigned char *payload(const struct conn *c, uint64_t msg)
{
    return pattern + (mix64(((uint64_t)c->id << 40) ^ msg) % PATTERN_WINDOW);
}

static unsigned hist_bucket(uint64_t v)
{
    if (v < 2 * SUB)
        return (unsigned)v;
    unsigned shift = 63 - (unsigned)__builtin_clzll(v) - SUB_BITS;
    return shift * SUB + (unsigned)(v >> shift);
}

// Midpoint of a bucket's value range.
static double hist_value(unsigned b)
{
    if (b < 2 * SUB)
        return b;
    unsigned shift = b / SUB - 1;
    uint64_t lo = (uint64_t)(SUB + b % SUB) << shift;
    return (double)lo + (double)((1ull << shift) - 1) / 2;
}

static double hist_quantile_us(double q)
{
    if (!hist_count)
        return 0;
    // Smallest value with at least ceil(q * count) samples at or below it.
    double want = q * (double)hist_count;
    uint64_t rank = (uint64_t)want;
    uint64_t seen = 0;
    if ((double)rank < want || rank == 0)
        rank++;
    for (unsigned b = 0; b < NBUCKETS; b++) {
        seen += hist[b];
        if (seen >= rank)
            return hist_value(b) / 1000;
    }
    return 0;
}

static void report_mismatch(const struct conn *c, const unsigned char *got, size_t len)
{
    const unsigned char *want = payload(c, c->recv_idx) + c->recv_off;
    size_t i = 0;
    while (i < len && got[i] == want[i])
        i++;
    fail("echo mismatch: conn %u msg %" PRIu64 " byte %zu: sent 0x%02x, got 0x%02x", c->id,
         c->recv_idx, c->recv_off + i, want[i], got[i]);
}

static bool has_to_send(const struct conn *c)
{
    return c->send_idx < c->recv_idx + cfg.depth;
}

static void conn_send(struct conn *c)
{
    while (!c->wblocked && has_to_send(c)) {
        struct iovec iov[MAX_IOV];
        size_t total = 0;
        int n_iov = 0;
        for (uint64_t m = c->send_idx; m < c->recv_idx + cfg.depth && n_iov < MAX_IOV; m++) {
            size_t off = m == c->send_idx ? c->send_off : 0;
            iov[n_iov].iov_base = (void *)(payload(c, m) + off);
            iov[n_iov].iov_len = cfg.size - off;
            total += iov[n_iov].iov_len;
            n_iov++;
        }
        struct msghdr mh = {.msg_iov = iov, .msg_iovlen = (size_t)n_iov};
        uint64_t t = now_ns();
        ssize_t n = sendmsg(c->fd, &mh, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                c->wblocked = true;
                return;
            }
            fail("conn %u: send: %s", c->id, strerror(errno));
        }
        if ((size_t)n < total) {
            // A short non-blocking send means the buffer filled up; the kernel has flagged
            // the socket so freed space raises EPOLLOUT, and a retry now would be EAGAIN.
            c->wblocked = true;
        }
        size_t left = (size_t)n;
        while (left > 0) {
            if (c->send_off == 0)
                c->sent_ns[c->send_idx % cfg.depth] = t;
            size_t rem = cfg.size - c->send_off;
            if (left >= rem) {
                left -= rem;
                c->send_idx++;
                c->send_off = 0;
            } else {
                c->send_off += left;
                left = 0;
            }
        }
    }
}

static void consume(struct conn *c, const unsigned char *p, size_t len, uint64_t t)
{
    while (len > 0) {
        size_t chunk = cfg.size - c->recv_off;
        if (chunk > len)
            chunk = len;
        // Never more back than was sent.
        if (c->recv_idx > c->send_idx ||
            (c->recv_idx == c->send_idx && c->recv_off + chunk > c->send_off))
            fail("conn %u: server echoed more bytes than were sent", c->id);
        if (memcmp(p, payload(c, c->recv_idx) + c->recv_off, chunk) != 0)
            report_mismatch(c, p, chunk);
        p += chunk;
        len -= chunk;
        c->recv_off += chunk;
        if (c->recv_off == cfg.size) {
            if (measuring) {
                uint64_t rtt = t - c->sent_ns[c->recv_idx % cfg.depth];
                hist[hist_bucket(rtt)]++;
                hist_count++;
            }
            c->recv_idx++;
            c->recv_off = 0;
            msgs_done++;
        }
    }
}

static void conn_recv(struct conn *c, bool hup)
{
    for (;;) {
        ssize_t n = read(c->fd, rbuf, sizeof(rbuf));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return;
            fail("conn %u: read: %s", c->id, strerror(errno));
        }
        if (n == 0)
            fail("conn %u: server closed the connection", c->id);
        consume(c, rbuf, (size_t)n, now_ns());
        // A short read emptied the receive queue; with edge-triggered epoll any data that
        // arrives later raises a fresh event, so there is no need to read until EAGAIN.
        // After a hangup no event follows, so read on to see the EOF.
        if ((size_t)n < sizeof(rbuf) && !hup)
            return;
    }
}

static void conn_event(struct conn *c, uint32_t events)
{
    if (events & EPOLLERR) {
        int err = 0;
        socklen_t len = sizeof(err);
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        fail("conn %u: %s", c->id, strerror(err ? err : EIO));
    }
    if (events & (EPOLLIN | EPOLLHUP | EPOLLRDHUP))
        conn_recv(c, events & (EPOLLHUP | EPOLLRDHUP));
    if (events & EPOLLOUT)
        c->wblocked = false;
    conn_send(c);
}

static struct addrinfo *resolve(void)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res;
    int rc = getaddrinfo(cfg.host, cfg.port, &hints, &res);
    if (rc != 0)
        fail("%s:%s: %s", cfg.host, cfg.port, gai_strerror(rc));
    return res;
}

// Opens every connection without blocking and waits until all are established.
static void connect_all(int epfd, struct conn *conns)
{
    struct addrinfo *ai = resolve();
    unsigned pending = 0;

    for (unsigned i = 0; i < cfg.conns; i++) {
        struct conn *c = &conns[i];
        c->id = i;
        c->fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (c->fd < 0)
            die("socket");
        int one = 1;
        if (setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0)
            die("setsockopt(TCP_NODELAY)");
        if (connect(c->fd, ai->ai_addr, ai->ai_addrlen) == 0) {
            c->connected = true;
        } else if (errno == EINPROGRESS) {
            pending++;
        } else {
            fail("connect %s:%s: %s", cfg.host, cfg.port, strerror(errno));
        }
        // Edge-triggered: the loop reads to a short read and writes until blocked, so it
        // never needs to re-arm or modify the registration.
        struct epoll_event ev = {
            .events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
            .data.ptr = c,
        };
        if (epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev) < 0)
            die("epoll_ctl");
    }
    freeaddrinfo(ai);

    struct epoll_event events[MAX_EVENTS];
    uint64_t deadline = now_ns() + (uint64_t)CONNECT_TIMEOUT * 1000000000u;
    while (pending > 0) {
        uint64_t t = now_ns();
        if (t >= deadline)
            fail("connect %s:%s: %u of %u connections timed out", cfg.host, cfg.port, pending,
                 cfg.conns);
        int n = epoll_wait(epfd, events, MAX_EVENTS, (int)((deadline - t) / 1000000) + 1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            die("epoll_wait");
        }
        for (int i = 0; i < n; i++) {
            struct conn *c = events[i].data.ptr;
            if (c->connected || !(events[i].events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
                continue;
            int err = 0;
            socklen_t len = sizeof(err);
            if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
                die("getsockopt(SO_ERROR)");
            if (err)
                fail("connect %s:%s: %s", cfg.host, cfg.port, strerror(err));
            c->connected = true;
            pending--;
        }
    }
}

static double tv_sec(struct timeval tv)
{
    return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

static double cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return tv_sec(ru.ru_utime) + tv_sec(ru.ru_stime);
}

static void usage(FILE *f)
{
    fprintf(f, "usage: ringsock-pingpong --port P [--host 127.0.0.1] [--conns N] [--size BYTES]\n"
               "                         [--depth D] [--seconds S] [--warmup S] [--json]\n"
               "defaults: --conns 1 --size 64 --depth 1 --seconds 5 --warmup 1\n");
}

static double parse_num(const char *opt, const char *s, double min, double max)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= min && v <= max)) {
        fprintf(stderr, "ringsock-pingpong: bad --%s '%s' (want %g..%g)\n", opt, s, min, max);
        exit(2);
    }
    return v;
}

static void parse_args(int argc, char **argv)
{
    static const struct option opts[] = {
        {"host", required_argument, NULL, 'H'},   {"port", required_argument, NULL, 'p'},
        {"conns", required_argument, NULL, 'c'},  {"size", required_argument, NULL, 's'},
        {"depth", required_argument, NULL, 'd'},  {"seconds", required_argument, NULL, 't'},
        {"warmup", required_argument, NULL, 'w'}, {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},         {0},
    };
    int opt;

    while ((opt = getopt_long(argc, argv, "H:p:c:s:d:t:w:jh", opts, NULL)) != -1) {
        switch (opt) {
        case 'H':
            cfg.host = optarg;
            break;
        case 'p':
            parse_num("port", optarg, 1, 65535);
            cfg.port = optarg;
            break;
        case 'c':
            cfg.conns = (unsigned)parse_num("conns", optarg, 1, 1000000);
            break;
        case 's':
            cfg.size = (size_t)parse_num("size", optarg, 1, MAX_SIZE);
            break;
        case 'd':
            cfg.depth = (unsigned)parse_num("depth", optarg, 1, MAX_DEPTH);
            break;
        case 't':
            cfg.seconds = parse_num("seconds", optarg, 0.001, 1e6);
            break;
        case 'w':
            cfg.warmup = parse_num("warmup", optarg, 0, 1e6);
            break;
        case 'j':
            cfg.json = true;
            break;
        case 'h':
            usage(stdout);
            exit(0);
        default:
            usage(stderr);
            exit(2);
        }
    }
    if (!cfg.port || optind != argc) {
        usage(stderr);
        exit(2);
    }
}

int main(int argc, char **argv)
{
    parse_args(argc, argv);
    signal(SIGPIPE, SIG_IGN);

    // Random bytes, so that a dropped, duplicated or reordered chunk never matches by luck.
    size_t plen = PATTERN_WINDOW + cfg.size;
    pattern = malloc(plen);
    if (!pattern)
        die("malloc");
    uint64_t seed = now_ns();
    for (size_t i = 0; i < plen; i++)
        pattern[i] = (unsigned char)(mix64(seed + i / 8) >> (i % 8 * 8));

    struct conn *conns = calloc(cfg.conns, sizeof(*conns));
    uint64_t *ts = calloc((size_t)cfg.conns * cfg.depth, sizeof(*ts));
    if (!conns || !ts)
        die("calloc");
    for (unsigned i = 0; i < cfg.conns; i++)
        conns[i].sent_ns = ts + (size_t)i * cfg.depth;

    int epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0)
        die("epoll_create1");
    connect_all(epfd, conns);

    uint64_t start = now_ns();
    uint64_t measure_at = start + (uint64_t)(cfg.warmup * 1e9);
    uint64_t stop_at = measure_at + (uint64_t)(cfg.seconds * 1e9);
    uint64_t msgs_at_start = 0;
    double cpu_at_start = 0;

    if (cfg.warmup == 0) {
        measuring = true;
        cpu_at_start = cpu_seconds();
    }
    for (unsigned i = 0; i < cfg.conns; i++)
        conn_send(&conns[i]);

    struct epoll_event events[MAX_EVENTS];
    uint64_t t = start;
    for (;;) {
        uint64_t next = measuring ? stop_at : measure_at;
        int timeout = next > t ? (int)((next - t + 999999) / 1000000) : 0;
        int n = epoll_wait(epfd, events, MAX_EVENTS, timeout);
        if (n < 0 && errno != EINTR)
            die("epoll_wait");
        for (int i = 0; i < n; i++)
            conn_event(events[i].data.ptr, events[i].events);

        t = now_ns();
        if (!measuring && t >= measure_at) {
            measuring = true;
            measure_at = t;
            msgs_at_start = msgs_done;
            cpu_at_start = cpu_seconds();
            for (unsigned i = 0; i < cfg.conns; i++)
                conns[i].recv_mark = conns[i].recv_idx;
        }
        if (measuring && t >= stop_at)
            break;
    }
    double cpu = cpu_seconds() - cpu_at_start;
    double wall = (double)(t - measure_at) / 1e9;
    double msgs = (double)(msgs_done - msgs_at_start);
    double rate = msgs / wall;
    double mbps = rate * (double)cfg.size / 1e6;
    double p50 = hist_quantile_us(0.5), p99 = hist_quantile_us(0.99);
    double p999 = hist_quantile_us(0.999);
    double client_cpu = cpu / wall;

    if (cfg.json) {
        printf("{\"msgs/s\": %.1f, \"MB/s\": %.3f, \"p50_us\": %.1f, \"p99_us\": %.1f, "
               "\"p999_us\": %.1f, \"conns\": %u, \"size\": %zu, \"depth\": %u, "
               "\"client_cpu\": %.3f, \"seconds\": %.3f, \"msgs\": %.0f}\n",
               rate, mbps, p50, p99, p999, cfg.conns, cfg.size, cfg.depth, client_cpu, wall, msgs);
    } else {
        printf("msgs/s=%.1f MB/s=%.3f p50_us=%.1f p99_us=%.1f p999_us=%.1f conns=%u size=%zu "
               "depth=%u client_cpu=%.3f\n",
               rate, mbps, p50, p99, p999, cfg.conns, cfg.size, cfg.depth, client_cpu);
    }
    // A server that stops serving some connections (say, out of fds) would otherwise go
    // unnoticed behind the ones still running.
    unsigned stalled = 0;
    for (unsigned i = 0; i < cfg.conns; i++)
        stalled += conns[i].recv_idx == conns[i].recv_mark;
    if (stalled)
        fprintf(stderr, "ringsock-pingpong: warning: %u of %u connections completed no message\n",
                stalled, cfg.conns);
    if (msgs == 0) {
        fprintf(stderr, "ringsock-pingpong: no message completed in the measured interval\n");
        return 1;
    }

    for (unsigned i = 0; i < cfg.conns; i++)
        close(conns[i].fd);
    close(epfd);
    free(ts);
    free(conns);
    free(pattern);
    return 0;
}
