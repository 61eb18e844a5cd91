// SPDX-License-Identifier: MIT
// ringsock-load: a load generator for TCP, TLS, UDP and Unix stream echo servers.
//
// Modes (--mode):
//   pingpong   one message in flight per connection (the default with --depth 1)
//   pipelined  --depth messages in flight per connection (the default with --depth > 1)
//   bulk       streaming: 64 KiB messages, 16 in flight (both changeable)
//   churn      each connection slot connects, sends one message, waits for its echo and
//              closes, over and over: a "message" is one connection, its latency runs from
//              the connect to the echo's last byte (TCP and local only)
//   idle       opens --conns connections, one echo each, then holds them for --seconds; with
//              --server-pid it reports the server's RSS growth per connection
//
// Every echoed byte is checked (--no-verify skips the compare, not the counting). A message
// is done when all its bytes have come back; its round-trip time runs from the send that
// carried its first byte to the receive that completed it. Payloads are slices of one random
// pattern buffer at an offset derived from (connection, message index), so sending copies
// nothing and checking an echo is a memcmp.
//
// Plain TCP and local streams go through io_uring (load_uring.c): one io_uring_enter per
// loop round, multishot receives into a provided buffer ring, one send per connection in
// flight carrying every message the window allows. TLS (OpenSSL, non-blocking), UDP
// (sendmmsg/recvmmsg) and --epoll use edge-triggered epoll (load_epoll.c).
//
// --threads N: N load threads, each with its own share of the connections, its own event
// loop (ring or epoll), clock, counters and latency histogram; thread 0 is the main thread,
// which also prints the progress line. The figures are merged at the end: rates summed, the
// histograms added, so the percentiles are over every sample. Connecting (and the TLS
// handshakes) happens in the main thread before the threads start.
//
// The client must not be what is measured: it reports its own CPU use (all threads, from
// CLOCK_PROCESS_CPUTIME_ID), per second and per message, and warns when a load thread used
// more than 90% of a core. --server-pid adds the server's CPU time and minor page faults per
// message from /proc/PID/stat over the measured interval.

#include "load.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define CONNECTS_IN_FLIGHT 256  // a listener's backlog (somaxconn) must not overflow
#define SATURATED          0.90 // client CPU share of its core above which it warns

// Latency histogram in nanoseconds: exact below 256, then 128 linear sub-buckets per power of
// two, so a bucket is at most 1/128 (< 0.8%) of its value wide.
#define SUB_BITS 7
#define SUB      (1u << SUB_BITS)
#define NBUCKETS ((64 - SUB_BITS) * SUB + SUB)

struct config cfg = {
    .host = "127.0.0.1",
    .conns = 1,
    .size = 64,
    .depth = 1,
    .seconds = 5,
    .warmup = 1,
    .timeout_ms = 50,
    .verify = true,
    .threads = 1,
};

unsigned char *pattern;
_Thread_local bool measuring;
_Thread_local uint64_t msgs_done;
_Thread_local uint64_t udp_lost, udp_late;
_Thread_local void (*rate_resume)(struct conn *c);

static const char *const mode_names[] = {"pingpong", "pipelined", "bulk", "churn", "idle"};

struct hist {
    uint64_t n[NBUCKETS];
    uint64_t count;
};
// The thread's measured interval; its current second.
static _Thread_local struct hist hist_all, hist_sec;

// The progress line's second: each thread adds its samples once a second, thread 0 prints
// and empties it.
static struct {
    pthread_mutex_t lock;
    struct hist sec;
} progress = {.lock = PTHREAD_MUTEX_INITIALIZER};

// One load thread: its share of the connections and, once it has finished, its figures.
struct worker {
    pthread_t thread;
    unsigned index;
    int cpu; // pinned to this CPU, or -1
    struct conn *conns;
    unsigned n;
    struct hist hist;  // its measured interval's samples
    uint64_t msgs;     // messages completed in it
    double wall, busy; // its length and the thread's CPU share in it
    uint64_t udp_lost, udp_late;
};

// --server-pid: the server's /proc/PID/stat figures.
struct srv_stat {
    long ticks; // utime + stime
    long minflt;
};

// Each thread's clock, set by start_clock(). Thread 0's also holds the process's CPU time and
// the server's figures at the start of its measured interval.
static _Thread_local struct {
    bool leader; // thread 0: the progress line, the process-wide figures
    struct conn *conns;
    unsigned n;
    uint64_t start, measure_at, stop_at, next_report;
    uint64_t msgs_at_start;
    double cpu_at_start, cpu_at_report, thread_cpu_at_start;
    struct srv_stat srv_at_start;
    uint64_t idle_first; // --mode idle: connections that have had their echo
    bool idle_ready;
} clk;

// --mode idle: the threads whose connections have all had their echo, and the end of the
// hold once all have (thread 0 sets it; UINT64_MAX until then).
static struct {
    unsigned ready;
    uint64_t stop_at;
} idle_sync = {0, UINT64_MAX};

// --rate, per thread (each gets an equal share of R): a token bucket holding at most 10 ms
// worth (epoll waits in whole milliseconds), and the connections waiting for tokens (each at
// most once).
static _Thread_local struct {
    double per_sec, tokens, burst;
    uint64_t last;
    struct conn **q;
    unsigned head, len;
} rate;

// --server-pid
static long srv_rss_before_kb, srv_rss_after_kb;

// The first thread to fail ends the process; another one failing meanwhile waits here.
static pthread_mutex_t exit_lock = PTHREAD_MUTEX_INITIALIZER;

void die(const char *what)
{
    int err = errno;
    pthread_mutex_lock(&exit_lock);
    fprintf(stderr, "ringsock-load: %s: %s\n", what, strerror(err));
    exit(1);
}

void fail(const char *fmt, ...)
{
    va_list ap;
    pthread_mutex_lock(&exit_lock);
    va_start(ap, fmt);
    fputs("ringsock-load: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static double clock_seconds(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

// Every thread's CPU time, alive or gone.
static double cpu_seconds(void)
{
    return clock_seconds(CLOCK_PROCESS_CPUTIME_ID);
}

static uint64_t mix64(uint64_t x)
{
    // splitmix64 finaliser
    x += 0x9e3779b97f4a7c15u;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9u;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebu;
    return x ^ (x >> 31);
}

const unsigned char *payload(const struct conn *c, uint64_t msg)
{
    return pattern + (mix64(((uint64_t)c->id << 40) ^ msg) % PATTERN_WINDOW);
}

// ---- latency histogram ----

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

static double hist_quantile_us(const struct hist *h, double q)
{
    if (!h->count)
        return 0;
    // Smallest value with at least ceil(q * count) samples at or below it.
    double want = q * (double)h->count;
    uint64_t rank = (uint64_t)want;
    uint64_t seen = 0;
    if ((double)rank < want || rank == 0)
        rank++;
    for (unsigned b = 0; b < NBUCKETS; b++) {
        seen += h->n[b];
        if (seen >= rank)
            return hist_value(b) / 1000;
    }
    return 0;
}

static void hist_add(struct hist *to, const struct hist *from)
{
    if (!from->count)
        return;
    for (unsigned b = 0; b < NBUCKETS; b++)
        to->n[b] += from->n[b];
    to->count += from->count;
}

void record_rtt(uint64_t ns)
{
    unsigned b = hist_bucket(ns);
    hist_sec.n[b]++;
    hist_sec.count++;
    if (measuring) {
        hist_all.n[b]++;
        hist_all.count++;
    }
}

// ---- the window, --rate and the echo check ----

bool rate_take(struct conn *c)
{
    if (rate.tokens >= 1) {
        rate.tokens -= 1;
        return true;
    }
    if (!c->rate_waiting) {
        c->rate_waiting = true;
        rate.q[(rate.head + rate.len++) % clk.n] = c;
    }
    return false;
}

uint64_t send_limit(struct conn *c)
{
    uint64_t lim = c->recv_idx + cfg.depth;
    if (cfg.mode == MODE_IDLE || cfg.mode == MODE_CHURN) {
        if (lim > 1)
            lim = 1;
        if (cfg.mode == MODE_CHURN)
            return lim; // --rate counts connections there
    }
    if (cfg.rate > 0) {
        while (c->allowed < lim && rate_take(c))
            c->allowed++;
        if (lim > c->allowed)
            lim = c->allowed;
    }
    return lim;
}

bool has_to_send(struct conn *c)
{
    return c->send_idx < send_limit(c);
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

void consume(struct conn *c, const unsigned char *p, size_t len, uint64_t t)
{
    size_t pos = 0; // p is NULL when the bytes were dropped unread (--no-verify)
    while (pos < len) {
        size_t chunk = cfg.size - c->recv_off;
        if (chunk > len - pos)
            chunk = len - pos;
        // Never more back than was sent.
        if (c->recv_idx > c->send_idx ||
            (c->recv_idx == c->send_idx && c->recv_off + chunk > c->send_off))
            fail("conn %u: server echoed more bytes than were sent", c->id);
        if (cfg.verify && memcmp(p + pos, payload(c, c->recv_idx) + c->recv_off, chunk) != 0)
            report_mismatch(c, p + pos, chunk);
        pos += chunk;
        c->recv_off += chunk;
        if (c->recv_off == cfg.size) {
            record_rtt(t - c->sent_ns[c->recv_idx % cfg.depth]);
            c->recv_idx++;
            c->recv_off = 0;
            msgs_done++;
            if (c->recv_idx == 1)
                clk.idle_first++;
        }
    }
}

// ---- connecting ----

struct addrinfo *resolve(void)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = cfg.udp ? SOCK_DGRAM : SOCK_STREAM};
    struct addrinfo *res;
    int rc = getaddrinfo(cfg.host, cfg.port, &hints, &res);
    if (rc != 0)
        fail("%s:%s: %s", cfg.host, cfg.port, gai_strerror(rc));
    return res;
}

// A Unix stream connect does not complete later: it either succeeds or, with the listener's
// backlog full, fails with EAGAIN. So connect blocking (bounded by SO_SNDTIMEO), then switch
// to non-blocking.
void local_connect(struct conn *c)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    size_t n = strlen(cfg.local);
    if (n == 0 || n >= sizeof(sun.sun_path))
        fail("--local '%s': path empty or too long", cfg.local);
    socklen_t len;
    if (cfg.local[0] == '@') { // abstract: no terminating NUL in the address
        memcpy(sun.sun_path + 1, cfg.local + 1, n - 1);
        len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
    } else {
        memcpy(sun.sun_path, cfg.local, n + 1);
        len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
    }
    c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        die("socket");
    struct timeval tv = {.tv_sec = CONNECT_TIMEOUT};
    if (setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0)
        die("setsockopt(SO_SNDTIMEO)");
    while (connect(c->fd, (struct sockaddr *)&sun, len) < 0) {
        if (errno != EINTR)
            fail("connect %s: %s", cfg.local, strerror(errno));
    }
    tv.tv_sec = 0;
    if (setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0)
        die("setsockopt(SO_SNDTIMEO)");
    int fl = fcntl(c->fd, F_GETFL);
    if (fl < 0 || fcntl(c->fd, F_SETFL, fl | O_NONBLOCK) < 0)
        die("fcntl(O_NONBLOCK)");
    c->connected = true;
}

// Opens a TCP or UDP socket to the resolved address; true while a TCP connect is in progress.
bool inet_connect(struct conn *c, const struct addrinfo *ai)
{
    c->fd = socket(ai->ai_family,
                   (cfg.udp ? SOCK_DGRAM : SOCK_STREAM) | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        die("socket");
    int one = 1;
    if (!cfg.udp && setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0)
        die("setsockopt(TCP_NODELAY)");
    if (connect(c->fd, ai->ai_addr, ai->ai_addrlen) == 0) {
        c->connected = true;
        return false;
    }
    if (errno != EINPROGRESS)
        fail("connect %s:%s: %s", cfg.host, cfg.port, strerror(errno));
    return true;
}

// Opens every connection, at most CONNECTS_IN_FLIGHT TCP connects at a time, and waits
// until all are established.
void connect_all(struct conn *conns)
{
    if (cfg.local) {
        for (unsigned i = 0; i < cfg.conns; i++)
            local_connect(&conns[i]);
        return;
    }
    struct addrinfo *ai = resolve();
    int epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0)
        die("epoll_create1");
    unsigned next = 0, pending = 0, done = 0;
    struct epoll_event events[CONNECTS_IN_FLIGHT];
    uint64_t deadline = now_ns() + (uint64_t)CONNECT_TIMEOUT * 1000000000u;
    while (done < cfg.conns) {
        while (next < cfg.conns && pending < CONNECTS_IN_FLIGHT) {
            struct conn *c = &conns[next++];
            if (!inet_connect(c, ai)) {
                done++;
                continue;
            }
            struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = c};
            if (epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev) < 0)
                die("epoll_ctl");
            pending++;
        }
        if (!pending)
            continue;
        uint64_t t = now_ns();
        if (t >= deadline)
            fail("connect %s:%s: %u of %u connections not established after %d s", cfg.host,
                 cfg.port, cfg.conns - done, cfg.conns, CONNECT_TIMEOUT);
        int n = epoll_wait(epfd, events, CONNECTS_IN_FLIGHT, (int)((deadline - t) / 1000000) + 1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            die("epoll_wait");
        }
        for (int i = 0; i < n; i++) {
            struct conn *c = events[i].data.ptr;
            int err = 0;
            socklen_t len = sizeof(err);
            if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
                die("getsockopt(SO_ERROR)");
            if (err)
                fail("connect %s:%s: %s", cfg.host, cfg.port, strerror(err));
            if (epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL) < 0)
                die("epoll_ctl");
            c->connected = true;
            pending--;
            done++;
        }
    }
    close(epfd);
    freeaddrinfo(ai);
}

// ---- the server, from /proc ----

// utime + stime of every thread, alive or gone, in clock ticks, and the minor page faults;
// ticks -1 if unreadable.
static struct srv_stat server_stat(void)
{
    struct srv_stat st = {-1, -1};
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", cfg.server_pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return st;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    // Fields after "(comm)": state is field 3, minflt 10, utime 14, stime 15.
    char *p = strrchr(buf, ')');
    unsigned long minflt, ut, stime;
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %lu %*u %*u %*u %lu %lu", &minflt, &ut,
                     &stime) != 3)
        return st;
    st.ticks = (long)(ut + stime);
    st.minflt = (long)minflt;
    return st;
}

static long server_rss_kb(void)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", cfg.server_pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    long kb = -1;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
            break;
    fclose(f);
    return kb;
}

// ---- the clock: warmup, measuring, progress, --rate ----

static void start_clock(struct worker *w, uint64_t t)
{
    clk.leader = w->index == 0;
    clk.conns = w->conns;
    clk.n = w->n;
    clk.start = t;
    clk.next_report = t + 1000000000u;
    if (clk.leader)
        clk.cpu_at_report = cpu_seconds();
    if (cfg.mode == MODE_IDLE) {
        measuring = true; // the first echoes' latency
        clk.measure_at = t;
        clk.stop_at = UINT64_MAX; // set once every connection has had its echo
        clk.thread_cpu_at_start = clock_seconds(CLOCK_THREAD_CPUTIME_ID);
    } else {
        clk.measure_at = t + (uint64_t)(cfg.warmup * 1e9);
        clk.stop_at = clk.measure_at + (uint64_t)(cfg.seconds * 1e9);
    }
    rate.per_sec = cfg.rate / cfg.threads;
    rate.burst = rate.per_sec / 100 > 1 ? rate.per_sec / 100 : 1;
    rate.last = t;
    rate.tokens = 1;
    if (cfg.rate > 0 && !(rate.q = calloc(w->n, sizeof(*rate.q))))
        die("calloc");
}

static void begin_measuring(uint64_t t)
{
    measuring = true;
    clk.measure_at = t;
    clk.stop_at = t + (uint64_t)(cfg.seconds * 1e9);
    clk.msgs_at_start = msgs_done;
    clk.thread_cpu_at_start = clock_seconds(CLOCK_THREAD_CPUTIME_ID);
    if (clk.leader) {
        clk.cpu_at_start = cpu_seconds();
        if (cfg.server_pid)
            clk.srv_at_start = server_stat();
    }
    for (unsigned i = 0; i < clk.n; i++)
        clk.conns[i].recv_mark = clk.conns[i].recv_idx;
}

// Every thread adds its second's samples; thread 0 prints them all.
static void report_second(uint64_t t)
{
    pthread_mutex_lock(&progress.lock);
    hist_add(&progress.sec, &hist_sec);
    if (clk.leader) {
        double wall = (double)(t - clk.next_report + 1000000000u) / 1e9;
        double cpu = cpu_seconds();
        double share = (cpu - clk.cpu_at_report) / wall;
        // A sample is a completed message.
        double rate_now = (double)progress.sec.count / wall;
        if (!cfg.quiet) {
            fprintf(stderr,
                    "ringsock-load: %5.1fs %-9s %s=%.0f MB/s=%.2f p50_us=%.1f p99_us=%.1f "
                    "client_cpu=%.0f%%%s\n",
                    (double)(t - clk.start) / 1e9,
                    cfg.mode == MODE_IDLE ? (clk.idle_ready ? "idle" : "opening")
                    : measuring           ? "measuring"
                                          : "warmup",
                    cfg.mode == MODE_CHURN ? "conns/s" : "msgs/s", rate_now,
                    rate_now * (double)cfg.size / 1e6, hist_quantile_us(&progress.sec, 0.5),
                    hist_quantile_us(&progress.sec, 0.99), 100 * share,
                    share > SATURATED * cfg.threads ? " (saturated)" : "");
        }
        memset(&progress.sec, 0, sizeof(progress.sec));
        clk.cpu_at_report = cpu;
    }
    pthread_mutex_unlock(&progress.lock);
    memset(&hist_sec, 0, sizeof(hist_sec));
    clk.next_report = t + 1000000000u;
}

static void rate_refill(uint64_t t)
{
    rate.tokens += (double)(t - rate.last) * rate.per_sec / 1e9;
    rate.last = t;
    if (rate.tokens > rate.burst)
        rate.tokens = rate.burst;
    // Each resumed connection takes what it needs or goes back to the end of the queue.
    unsigned n = rate.len;
    while (n-- > 0 && rate.tokens >= 1) {
        struct conn *c = rate.q[rate.head];
        rate.head = (rate.head + 1) % clk.n;
        rate.len--;
        c->rate_waiting = false;
        rate_resume(c);
    }
}

// --mode idle: once every thread's connections have had their echo, thread 0 takes the
// server's RSS, prints "ready" and sets the end of the hold for all.
static void idle_tick(uint64_t t)
{
    if (clk.idle_first == clk.n && !clk.idle_ready) {
        clk.idle_ready = true;
        __atomic_add_fetch(&idle_sync.ready, 1, __ATOMIC_RELEASE);
    }
    if (clk.leader && clk.idle_ready && clk.stop_at == UINT64_MAX &&
        __atomic_load_n(&idle_sync.ready, __ATOMIC_ACQUIRE) == cfg.threads) {
        uint64_t took = t - clk.start;
        if (cfg.server_pid) {
            usleep(200000); // let the server finish what the last echoes started
            srv_rss_after_kb = server_rss_kb();
        }
        printf("ready: %u connections open and idle after %.2f s\n", cfg.conns, (double)took / 1e9);
        fflush(stdout);
        __atomic_store_n(&idle_sync.stop_at, now_ns() + (uint64_t)(cfg.seconds * 1e9),
                         __ATOMIC_RELEASE);
    }
    clk.stop_at = __atomic_load_n(&idle_sync.stop_at, __ATOMIC_ACQUIRE);
}

bool tick(uint64_t t)
{
    if (cfg.rate > 0)
        rate_refill(t);
    if (cfg.mode == MODE_IDLE)
        idle_tick(t);
    if (t >= clk.next_report)
        report_second(t);
    if (!measuring && t >= clk.measure_at)
        begin_measuring(t);
    return t < clk.stop_at;
}

uint64_t tick_wait_ns(uint64_t t)
{
    uint64_t next = clk.next_report;
    if (!measuring && clk.measure_at < next)
        next = clk.measure_at;
    if (clk.stop_at < next)
        next = clk.stop_at;
    // --mode idle: the other threads' progress comes with no event here; look every 10 ms.
    if (cfg.mode == MODE_IDLE && cfg.threads > 1 && clk.stop_at == UINT64_MAX &&
        t + 10000000u < next)
        next = t + 10000000u;
    if (cfg.rate > 0 && rate.len > 0) {
        // Waking for every token costs more than the sends (a timer each time), so wait
        // for a millisecond's worth.
        double want = rate.per_sec / 1000 > 1 ? rate.per_sec / 1000 : 1;
        uint64_t refill = t + (uint64_t)((want - rate.tokens) / rate.per_sec * 1e9) + 1;
        if (refill < next)
            next = refill;
    }
    return next > t ? next - t : 0;
}

// ---- options ----

static void usage(FILE *f)
{
    fprintf(
        f,
        "usage: ringsock-load [--mode pingpong|pipelined|bulk|churn|idle] --port P [--host H]\n"
        "                     [--conns N] [--size BYTES] [--depth D] [--seconds S] [--warmup S]\n"
        "                     [--rate R] [--server-pid PID] [--no-verify] [--epoll] [--quiet]\n"
        "                     [--threads N] [--json]\n"
        "       ringsock-load ... --target HOST:PORT | --target [V6]:PORT\n"
        "       ringsock-load ... --local PATH|@NAME     (Unix stream socket)\n"
        "       ringsock-load ... --udp [--timeout MS]   (connected UDP sockets)\n"
        "       ringsock-load ... --tls | --tls12        (TLS over TCP, OpenSSL client)\n"
        "defaults: --mode pingpong --conns 1 --size 64 --depth 1 --seconds 5 --warmup 1\n"
        "  pipelined: --depth 16; bulk: --size 65536 --depth 16; idle: --seconds 1 (the hold)\n"
        "--rate R: at most R messages (churn: connections) per second in all\n"
        "--threads N: N load threads (default 1), the connections split evenly between them;\n"
        "             with at least N CPUs in its affinity mask (taskset -c LIST), thread i\n"
        "             runs on the i-th of them\n"
        "--server-pid PID: the server's CPU and minor page faults per message from /proc/PID/stat\n"
        "                  over the measured interval; idle mode: its VmRSS growth per connection\n"
        "--epoll: TCP/local through epoll instead of io_uring\n"
        "--no-verify: count echoed bytes without comparing them (TCP through io_uring: they\n"
        "             are dropped unread, MSG_TRUNC, so receiving costs no copy)\n"
        "--udp: D datagrams in flight per socket (--size %d..%d), sockperf-compatible header;\n"
        "       a datagram unanswered for --timeout ms (default 50) is counted lost\n"
        "--tls: TLS 1.3 with TLS_AES_128_GCM_SHA256; --tls12: TLS 1.2 with\n"
        "       ECDHE-ECDSA-AES128-GCM-SHA256 (the server's certificate is not verified)%s\n"
        "A progress line goes to stderr each second, the summary to stdout.\n",
        UDP_HDR, UDP_MAX_SIZE,
        have_tls ? "" : "\n       (this build has no TLS: OpenSSL was not found)");
}

static double parse_num(const char *opt, const char *s, double min, double max)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= min && v <= max)) {
        fprintf(stderr, "ringsock-load: bad --%s '%s' (want %g..%g)\n", opt, s, min, max);
        exit(2);
    }
    return v;
}

// "host:port" or "[v6]:port"; the strings point into a copy.
static void parse_target(const char *s)
{
    char *copy = strdup(s);
    char *colon = copy ? strrchr(copy, ':') : NULL;
    if (!colon) {
        fprintf(stderr, "ringsock-load: bad --target '%s' (want HOST:PORT)\n", s);
        exit(2);
    }
    *colon = '\0';
    cfg.port = colon + 1;
    parse_num("target port", cfg.port, 1, 65535);
    cfg.host = copy;
    size_t n = strlen(copy);
    if (n >= 2 && copy[0] == '[' && copy[n - 1] == ']') {
        copy[n - 1] = '\0';
        cfg.host = copy + 1;
    }
}

static void bad_combination(const char *what)
{
    fprintf(stderr, "ringsock-load: %s\n", what);
    exit(2);
}

static void parse_args(int argc, char **argv)
{
    static const struct option opts[] = {
        {"host", required_argument, NULL, 'H'},
        {"port", required_argument, NULL, 'p'},
        {"target", required_argument, NULL, 'A'},
        {"mode", required_argument, NULL, 'm'},
        {"conns", required_argument, NULL, 'c'},
        {"size", required_argument, NULL, 's'},
        {"depth", required_argument, NULL, 'd'},
        {"seconds", required_argument, NULL, 't'},
        {"warmup", required_argument, NULL, 'w'},
        {"rate", required_argument, NULL, 'r'},
        {"server-pid", required_argument, NULL, 'P'},
        {"json", no_argument, NULL, 'j'},
        {"quiet", no_argument, NULL, 'q'},
        {"no-verify", no_argument, NULL, 'V'},
        {"epoll", no_argument, NULL, 'E'},
        {"udp", no_argument, NULL, 'u'},
        {"local", required_argument, NULL, 'L'},
        {"timeout", required_argument, NULL, 'T'},
        {"tls", no_argument, NULL, 'S'},
        {"tls12", no_argument, NULL, '2'},
        {"threads", required_argument, NULL, 'N'},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    bool have_mode = false, have_size = false, have_depth = false, have_seconds = false;
    int opt;

    while ((opt = getopt_long(argc, argv, "H:p:c:s:d:t:w:juL:T:h", opts, NULL)) != -1) {
        switch (opt) {
        case 'H':
            cfg.host = optarg;
            break;
        case 'p':
            parse_num("port", optarg, 1, 65535);
            cfg.port = optarg;
            break;
        case 'A':
            parse_target(optarg);
            break;
        case 'm': {
            unsigned i = 0;
            while (i < sizeof(mode_names) / sizeof(mode_names[0]) && strcmp(optarg, mode_names[i]))
                i++;
            if (i == sizeof(mode_names) / sizeof(mode_names[0]))
                bad_combination("--mode is one of pingpong, pipelined, bulk, churn, idle");
            cfg.mode = (enum mode)i;
            have_mode = true;
            break;
        }
        case 'c':
            cfg.conns = (unsigned)parse_num("conns", optarg, 1, 1000000);
            break;
        case 's':
            cfg.size = (size_t)parse_num("size", optarg, 1, MAX_SIZE);
            have_size = true;
            break;
        case 'd':
            cfg.depth = (unsigned)parse_num("depth", optarg, 1, MAX_DEPTH);
            have_depth = true;
            break;
        case 't':
            cfg.seconds = parse_num("seconds", optarg, 0.001, 1e6);
            have_seconds = true;
            break;
        case 'w':
            cfg.warmup = parse_num("warmup", optarg, 0, 1e6);
            break;
        case 'r':
            cfg.rate = parse_num("rate", optarg, 1, 1e9);
            break;
        case 'P':
            cfg.server_pid = (int)parse_num("server-pid", optarg, 1, 1 << 30);
            break;
        case 'j':
            cfg.json = true;
            break;
        case 'q':
            cfg.quiet = true;
            break;
        case 'V':
            cfg.verify = false;
            break;
        case 'E':
            cfg.epoll = true;
            break;
        case 'u':
            cfg.udp = true;
            break;
        case 'L':
            cfg.local = optarg;
            break;
        case 'T':
            cfg.timeout_ms = parse_num("timeout", optarg, 1, 1e6);
            break;
        case 'S':
            cfg.tls = 13;
            break;
        case '2':
            cfg.tls = 12;
            break;
        case 'N':
            cfg.threads = (unsigned)parse_num("threads", optarg, 1, 1024);
            break;
        case 'h':
            usage(stdout);
            exit(0);
        default:
            usage(stderr);
            exit(2);
        }
    }
    if (!(cfg.port || cfg.local) || (cfg.port && cfg.local) || optind != argc) {
        usage(stderr);
        exit(2);
    }
    if (cfg.udp && (cfg.local || cfg.tls))
        bad_combination("--udp goes with neither --local nor --tls");
    if (cfg.tls && !have_tls)
        bad_combination("built without TLS (OpenSSL was not found)");
    if (cfg.threads > cfg.conns)
        bad_combination("--threads N needs at least N --conns");

    if (!have_mode)
        cfg.mode = cfg.depth > 1 ? MODE_PIPELINED : MODE_PINGPONG;
    switch (cfg.mode) {
    case MODE_PINGPONG:
        if (cfg.depth != 1)
            bad_combination("--mode pingpong has one message in flight: --depth 1");
        break;
    case MODE_PIPELINED:
        if (!have_depth)
            cfg.depth = 16;
        break;
    case MODE_BULK:
        if (!have_size)
            cfg.size = 65536;
        if (!have_depth)
            cfg.depth = 16;
        break;
    case MODE_CHURN:
    case MODE_IDLE:
        if (cfg.depth != 1)
            bad_combination("--mode churn and idle send one message per connection: --depth 1");
        if (cfg.mode == MODE_CHURN && (cfg.udp || cfg.tls || cfg.epoll))
            bad_combination("--mode churn: TCP and local streams through io_uring only");
        if (cfg.mode == MODE_IDLE && !have_seconds)
            cfg.seconds = 1;
        break;
    }
    if ((cfg.mode == MODE_BULK || cfg.mode == MODE_IDLE) && cfg.udp)
        bad_combination("--mode bulk and idle: streams only");
    if (cfg.udp && (cfg.size < UDP_HDR || cfg.size > UDP_MAX_SIZE)) {
        fprintf(stderr, "ringsock-load: --udp needs --size %d..%d\n", UDP_HDR, UDP_MAX_SIZE);
        exit(2);
    }
}

// ---- the summary ----

// The run's figures, merged over the threads.
struct totals {
    struct hist hist;
    double msgs;    // completed in the threads' measured intervals
    double rate;    // msgs/s: the threads' rates summed (0 in idle mode)
    double wall;    // thread 0's measured interval, the base of client_cpu (0 in idle mode)
    double cpu;     // the process's CPU seconds in it (idle: from before the connects)
    double busiest; // the highest CPU share of one load thread
    uint64_t udp_lost, udp_late;
    // --server-pid: over the same interval (idle: from before the connects); ticks -1 without
    double srv_span;
    struct srv_stat srv;
};

static void print_summary(const struct totals *r)
{
    double msgs = r->msgs, wall = r->wall, rate_v = r->rate;
    double mbps = rate_v * (double)cfg.size / 1e6;
    double p50 = hist_quantile_us(&r->hist, 0.5), p99 = hist_quantile_us(&r->hist, 0.99);
    double p999 = hist_quantile_us(&r->hist, 0.999);
    double client_cpu = wall > 0 ? r->cpu / wall : 0;
    double client_us = msgs > 0 ? r->cpu * 1e6 / msgs : 0;
    // One thread: the process (as before there were threads); more: the busiest thread.
    double load_cpu = cfg.threads == 1 ? client_cpu : r->busiest;
    double hz = (double)sysconf(_SC_CLK_TCK);
    double srv_cpu = -1, srv_us = -1, srv_flt = -1;
    if (r->srv.ticks >= 0 && r->srv_span > 0) {
        double srv_s = (double)r->srv.ticks / hz;
        srv_cpu = srv_s / r->srv_span;
        srv_us = msgs > 0 ? srv_s * 1e6 / msgs : 0;
        srv_flt = msgs > 0 ? (double)r->srv.minflt / msgs : 0;
    }
    const char *proto = cfg.udp ? "udp" : cfg.tls ? "tls" : cfg.local ? "local" : "tcp";
    const char *io = cfg.udp || cfg.tls || cfg.epoll ? "epoll" : "io_uring";
    if (cfg.json) {
        printf("{\"msgs/s\": %.1f, \"MB/s\": %.3f, \"p50_us\": %.1f, \"p99_us\": %.1f, "
               "\"p999_us\": %.1f, \"conns\": %u, \"size\": %zu, \"depth\": %u, "
               "\"client_cpu\": %.3f, \"client_saturated\": %s, \"seconds\": %.3f, "
               "\"msgs\": %.0f, \"mode\": \"%s\", \"proto\": \"%s\", \"io\": \"%s\", "
               "\"threads\": %u, \"client_us_per_msg\": %.3f, \"client_thread_cpu_max\": %.3f",
               rate_v, mbps, p50, p99, p999, cfg.conns, cfg.size, cfg.depth, client_cpu,
               load_cpu > SATURATED ? "true" : "false", wall, msgs, mode_names[cfg.mode], proto, io,
               cfg.threads, client_us, r->busiest);
        if (cfg.udp)
            printf(", \"lost\": %" PRIu64, r->udp_lost);
        if (srv_cpu >= 0)
            printf(", \"server_cpu\": %.3f, \"server_us_per_msg\": %.3f, "
                   "\"server_minflt_per_msg\": %.4f",
                   srv_cpu, srv_us, srv_flt);
        if (cfg.mode == MODE_IDLE && cfg.server_pid)
            printf(", \"server_rss_before_kb\": %ld, \"server_rss_after_kb\": %ld, "
                   "\"server_bytes_per_conn\": %.0f",
                   srv_rss_before_kb, srv_rss_after_kb,
                   (double)(srv_rss_after_kb - srv_rss_before_kb) * 1024 / cfg.conns);
        printf("}\n");
    } else {
        // The fields added later go before "lost", which scripts expect last without
        // --server-pid.
        printf("msgs/s=%.1f MB/s=%.3f p50_us=%.1f p99_us=%.1f p999_us=%.1f conns=%u size=%zu "
               "depth=%u client_cpu=%.3f mode=%s proto=%s io=%s threads=%u "
               "client_us_per_msg=%.3f client_thread_cpu_max=%.3f",
               rate_v, mbps, p50, p99, p999, cfg.conns, cfg.size, cfg.depth, client_cpu,
               mode_names[cfg.mode], proto, io, cfg.threads, client_us, r->busiest);
        if (cfg.udp)
            printf(" lost=%" PRIu64, r->udp_lost);
        if (srv_cpu >= 0)
            printf(" server_cpu=%.3f server_us_per_msg=%.3f server_minflt_per_msg=%.4f", srv_cpu,
                   srv_us, srv_flt);
        if (cfg.mode == MODE_IDLE && cfg.server_pid)
            printf(" server_rss_before_kb=%ld server_rss_after_kb=%ld server_bytes_per_conn=%.0f",
                   srv_rss_before_kb, srv_rss_after_kb,
                   (double)(srv_rss_after_kb - srv_rss_before_kb) * 1024 / cfg.conns);
        putchar('\n');
    }
    fflush(stdout);
    if (load_cpu > SATURATED)
        fprintf(stderr,
                "ringsock-load: warning: %s saturated (%.0f%% of its core): the figures may "
                "measure the client rather than the server\n",
                cfg.threads == 1 ? "load generator" : "a load thread", 100 * load_cpu);
}

// ---- the load threads ----

static uint64_t run_start; // the threads' common start: after the connects

// Pins thread i to the i-th CPU of the affinity mask the process started with, when it
// has one for each thread (taskset -c LIST); else the scheduler places them.
static void plan_cpus(struct worker *w)
{
    cpu_set_t set;
    for (unsigned i = 0; i < cfg.threads; i++)
        w[i].cpu = -1;
    if (cfg.threads == 1 || sched_getaffinity(0, sizeof(set), &set) != 0)
        return;
    if ((unsigned)CPU_COUNT(&set) < cfg.threads) {
        fprintf(stderr, "ringsock-load: warning: %u load threads share %d CPUs\n", cfg.threads,
                CPU_COUNT(&set));
        return;
    }
    unsigned i = 0;
    for (int c = 0; c < CPU_SETSIZE && i < cfg.threads; c++)
        if (CPU_ISSET(c, &set))
            w[i++].cpu = c;
}

static void *run_worker(void *arg)
{
    struct worker *w = arg;
    if (w->cpu >= 0) {
        cpu_set_t one;
        CPU_ZERO(&one);
        CPU_SET(w->cpu, &one);
        int rc = pthread_setaffinity_np(pthread_self(), sizeof(one), &one);
        if (rc) {
            errno = rc;
            die("pthread_setaffinity_np");
        }
    }
    start_clock(w, run_start);
    if (cfg.warmup == 0 && cfg.mode != MODE_IDLE)
        begin_measuring(run_start);

    bool uring = !(cfg.udp || cfg.tls || cfg.epoll);
    if (uring && !uring_run(w->conns, w->n)) {
        if (cfg.mode == MODE_CHURN)
            fail("--mode churn needs io_uring");
        if (w->index == 0)
            fprintf(stderr, "ringsock-load: io_uring unavailable, using epoll\n");
        uring = false;
    }
    if (!uring)
        epoll_run(w->conns, w->n);

    uint64_t t = now_ns();
    w->wall = (double)(t - clk.measure_at) / 1e9;
    w->busy = w->wall > 0
                  ? (clock_seconds(CLOCK_THREAD_CPUTIME_ID) - clk.thread_cpu_at_start) / w->wall
                  : 0;
    w->msgs = msgs_done - clk.msgs_at_start;
    w->hist = hist_all;
    w->udp_lost = udp_lost;
    w->udp_late = udp_late;
    if (uring)
        uring_done(); /* after the figures: its cancels are no load */
    free(rate.q);
    return NULL;
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
    struct worker *workers = calloc(cfg.threads, sizeof(*workers));
    struct totals *r = calloc(1, sizeof(*r));
    if (!conns || !ts || !workers || !r)
        die("calloc");
    for (unsigned i = 0; i < cfg.conns; i++) {
        conns[i].id = i;
        conns[i].fd = -1;
        conns[i].sent_ns = ts + (size_t)i * cfg.depth;
    }
    if (cfg.server_pid) {
        srv_rss_before_kb = server_rss_kb();
        if (srv_rss_before_kb < 0 || server_stat().ticks < 0)
            fail("--server-pid %d: cannot read /proc/%d", cfg.server_pid, cfg.server_pid);
    }
    // Idle mode's CPU per message (per connection) covers the connects.
    uint64_t t_open = now_ns();
    double cpu_open = cpu_seconds();
    struct srv_stat srv_open = cfg.server_pid ? server_stat() : (struct srv_stat){-1, -1};

    if (cfg.mode != MODE_CHURN) {
        connect_all(conns);
        if (cfg.tls)
            tls_connect_all(conns);
    }

    plan_cpus(workers);
    for (unsigned i = 0; i < cfg.threads; i++) {
        unsigned from = (unsigned)((uint64_t)cfg.conns * i / cfg.threads);
        unsigned to = (unsigned)((uint64_t)cfg.conns * (i + 1) / cfg.threads);
        workers[i].index = i;
        workers[i].conns = conns + from;
        workers[i].n = to - from;
    }
    run_start = now_ns();
    for (unsigned i = 1; i < cfg.threads; i++) {
        int rc = pthread_create(&workers[i].thread, NULL, run_worker, &workers[i]);
        if (rc) {
            errno = rc;
            die("pthread_create");
        }
    }
    run_worker(&workers[0]); // thread 0: clk is its clock from here on
    for (unsigned i = 1; i < cfg.threads; i++)
        pthread_join(workers[i].thread, NULL);

    uint64_t t = now_ns();
    struct srv_stat srv = cfg.server_pid ? server_stat() : (struct srv_stat){-1, -1};
    for (unsigned i = 0; i < cfg.threads; i++) {
        struct worker *w = &workers[i];
        hist_add(&r->hist, &w->hist);
        r->msgs += (double)w->msgs;
        if (w->wall > 0)
            r->rate += (double)w->msgs / w->wall;
        if (w->busy > r->busiest)
            r->busiest = w->busy;
        r->udp_lost += w->udp_lost;
        r->udp_late += w->udp_late;
    }
    struct srv_stat srv0 = clk.srv_at_start;
    if (cfg.mode == MODE_IDLE) {
        // No rate to speak of: the summary carries the latency, the memory and the CPU per
        // connection.
        r->rate = r->wall = r->busiest = 0;
        r->cpu = cpu_seconds() - cpu_open;
        r->srv_span = (double)(t - t_open) / 1e9;
        srv0 = srv_open;
    } else {
        r->wall = r->srv_span = (double)(t - clk.measure_at) / 1e9;
        r->cpu = cpu_seconds() - clk.cpu_at_start;
    }
    r->srv = (struct srv_stat){-1, -1};
    if (srv.ticks >= 0 && srv0.ticks >= 0)
        r->srv = (struct srv_stat){srv.ticks - srv0.ticks, srv.minflt - srv0.minflt};
    print_summary(r);

    if (r->udp_late)
        fprintf(stderr,
                "ringsock-load: %" PRIu64 " echoes came after their datagram was counted lost, "
                "or twice\n",
                r->udp_late);
    // A server that stops serving some connections (say, out of fds) would otherwise go
    // unnoticed behind the ones still running.
    unsigned stalled = 0;
    if (cfg.mode != MODE_CHURN && cfg.mode != MODE_IDLE)
        for (unsigned i = 0; i < cfg.conns; i++)
            stalled += conns[i].recv_idx == conns[i].recv_mark;
    if (stalled)
        fprintf(stderr, "ringsock-load: warning: %u of %u connections completed no message\n",
                stalled, cfg.conns);
    if (r->msgs == 0 && cfg.mode != MODE_IDLE) {
        fprintf(stderr, "ringsock-load: no message completed in the measured interval\n");
        return 1;
    }
    if (cfg.tls)
        tls_close_all(conns);
    for (unsigned i = 0; i < cfg.conns; i++) {
        if (conns[i].fd >= 0)
            close(conns[i].fd);
        free(conns[i].iov); // io_uring's send vector
    }
    free(r);
    free(workers);
    free(ts);
    free(conns);
    free(pattern);
    return 0;
}
