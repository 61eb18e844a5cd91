// SPDX-License-Identifier: MIT
// ringsock-pingpong: single-threaded epoll load client for TCP, UDP and Unix stream echo
// servers.
//
// Each connection keeps --depth messages of --size bytes in flight. A message is done when all
// of its bytes have come back; its round-trip time runs from the send call that carried its
// first byte to the read that completed it. Payloads are slices of one random pattern buffer
// at an offset derived from (connection, message index), so sending needs no copying and
// checking the echo is a memcmp.
//
// --local PATH speaks the same stream protocol over a Unix stream socket (PATH, or @name for
// the abstract namespace).
//
// --udp: each "connection" is a connected UDP socket (a flow) with --depth datagrams in flight.
// A datagram starts with a sockperf-compatible header (big-endian: 64-bit tag, 16-bit flags
// CLIENT|PONG_REQUEST, 32-bit length), so `sockperf server` answers it too; the tag carries
// the flow id and the datagram's sequence number, the rest is the pattern slice of
// (flow, sequence). An echo must come back byte for byte (a sockperf server clears the CLIENT
// flag in its reply; that is the one difference allowed). Sequence numbers of slot k of a flow
// are k, k + depth, k + 2 * depth, ..., so an echo finds its slot directly. A datagram without
// an answer after --timeout ms is counted lost and its slot sends a new one; an echo that
// turns up after that is checked and otherwise ignored. Sends and receives are batched with
// sendmmsg/recvmmsg.
//
// --tls (TLS 1.3, TLS_AES_128_GCM_SHA256 only) or --tls12 (TLS 1.2,
// ECDHE-ECDSA-AES128-GCM-SHA256 only): the same stream protocol inside TLS, with OpenSSL's
// libssl in non-blocking mode (built only where CMake finds OpenSSL: PINGPONG_TLS). The
// handshakes run one connection at a time before the load starts; the server's certificate
// is not verified (a benchmark, not a security check). Each message is one SSL_write; reads
// go on until SSL_read wants more from the socket.

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
#include <fcntl.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#ifdef PINGPONG_TLS
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#endif

#define READ_BUF_SIZE   (64 * 1024)
#define PATTERN_WINDOW  65536 // distinct payload start offsets
#define MAX_IOV         64
#define MAX_EVENTS      512
#define CONNECT_TIMEOUT 10 // seconds for all connections to be established
#define MAX_SIZE        (64u << 20)
#define MAX_DEPTH       4096

// --udp
#define UDP_HDR      14    // sockperf header: tag(8) flags(2) length(4)
#define UDP_MAX_SIZE 65507 // largest IPv4 UDP payload
#define UDP_BATCH    64    // datagrams per sendmmsg/recvmmsg
#define UDP_ID_SHIFT 40    // tag = flow id << 40 | sequence number
#define UDP_SEQ_MASK ((1ull << UDP_ID_SHIFT) - 1)
#define SP_CLIENT    1 // sockperf flags: sent by a client,
#define SP_PONG      2 // ... and wants an answer

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
    // --udp: recv_idx counts answered datagrams; sent_ns[k] is 0 while slot k waits in pend.
    uint64_t *seq;      // sequence number of each slot's current datagram
    unsigned char *hdr; // each slot's header, UDP_HDR bytes apart
    uint32_t *pend;     // slots waiting to be sent, in order
    unsigned npend;
    void *ssl; // --tls: the connection's SSL
};

static struct {
    const char *host;
    const char *port;
    const char *local; // --local PATH
    bool udp;
    int tls;           // --tls: 13, --tls12: 12, plain: 0
    double timeout_ms; // --udp: a datagram without an answer this long is lost
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
    .timeout_ms = 50,
};

static unsigned char *pattern;
static unsigned char rbuf[READ_BUF_SIZE];
static uint64_t hist[NBUCKETS];
static uint64_t hist_count;
static bool measuring;
static uint64_t msgs_done;
static uint64_t udp_lost; // counted while measuring
static uint64_t udp_late; // echoes that came after their datagram was counted lost, or twice

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

static void tls_send(struct conn *c);
static void tls_recv(struct conn *c);

static bool has_to_send(const struct conn *c)
{
    return c->send_idx < c->recv_idx + cfg.depth;
}

static void conn_send(struct conn *c)
{
    if (cfg.tls) {
        tls_send(c);
        return;
    }
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
    if (cfg.tls) {
        tls_recv(c);
        return;
    }
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

// ---- --tls: the stream protocol through OpenSSL ----

#ifdef PINGPONG_TLS
static SSL_CTX *tls_ctx;

static void tls_fail(const struct conn *c, const char *what, int ret)
{
    unsigned long e = ERR_get_error();
    char text[256] = "";
    if (e)
        ERR_error_string_n(e, text, sizeof(text));
    fail("conn %u: %s: SSL error %d%s%s", c->id, what, SSL_get_error(c->ssl, ret), e ? ": " : "",
         text);
}

static void tls_send(struct conn *c)
{
    while (!c->wblocked && has_to_send(c)) {
        // One message (or its rest) per SSL_write: a 16 KiB message is one record. A retry
        // after SSL_ERROR_WANT_WRITE passes the same buffer and length, as OpenSSL wants.
        uint64_t t = now_ns();
        int n =
            SSL_write(c->ssl, payload(c, c->send_idx) + c->send_off, (int)(cfg.size - c->send_off));
        if (n <= 0) {
            int err = SSL_get_error(c->ssl, n);
            if (err == SSL_ERROR_WANT_WRITE || err == SSL_ERROR_WANT_READ) {
                c->wblocked = true; // EPOLLOUT clears it
                return;
            }
            tls_fail(c, "SSL_write", n);
        }
        if (c->send_off == 0)
            c->sent_ns[c->send_idx % cfg.depth] = t;
        c->send_off += (size_t)n;
        if (c->send_off == cfg.size) {
            c->send_idx++;
            c->send_off = 0;
        }
    }
}

static void tls_recv(struct conn *c)
{
    // Edge-triggered: read until OpenSSL needs the socket again (it may hold whole records
    // already read ahead).
    for (;;) {
        int n = SSL_read(c->ssl, rbuf, (int)sizeof(rbuf));
        if (n > 0) {
            consume(c, rbuf, (size_t)n, now_ns());
            continue;
        }
        int err = SSL_get_error(c->ssl, n);
        if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE)
            return;
        if (err == SSL_ERROR_ZERO_RETURN)
            fail("conn %u: server closed the TLS connection", c->id);
        tls_fail(c, "SSL_read", n);
    }
}

// Handshakes, one connection at a time (poll on its socket), once all TCP connects are done.
static void tls_connect_all(struct conn *conns)
{
    tls_ctx = SSL_CTX_new(TLS_client_method());
    if (!tls_ctx)
        fail("SSL_CTX_new failed");
    int v = cfg.tls == 13 ? TLS1_3_VERSION : TLS1_2_VERSION;
    if (!SSL_CTX_set_min_proto_version(tls_ctx, v) || !SSL_CTX_set_max_proto_version(tls_ctx, v))
        fail("cannot restrict the TLS version");
    if (cfg.tls == 13 ? !SSL_CTX_set_ciphersuites(tls_ctx, "TLS_AES_128_GCM_SHA256")
                      : !SSL_CTX_set_cipher_list(tls_ctx, "ECDHE-ECDSA-AES128-GCM-SHA256"))
        fail("cannot restrict the cipher");
    SSL_CTX_set_verify(tls_ctx, SSL_VERIFY_NONE, NULL);
    SSL_CTX_set_mode(tls_ctx, SSL_MODE_ENABLE_PARTIAL_WRITE);
    SSL_CTX_set_read_ahead(tls_ctx, 1);
    uint64_t deadline = now_ns() + (uint64_t)CONNECT_TIMEOUT * 1000000000u;
    for (unsigned i = 0; i < cfg.conns; i++) {
        struct conn *c = &conns[i];
        SSL *ssl = SSL_new(tls_ctx);
        if (!ssl || !SSL_set_fd(ssl, c->fd))
            fail("conn %u: SSL_new failed", c->id);
        c->ssl = ssl;
        SSL_set_connect_state(ssl);
        for (;;) {
            int r = SSL_do_handshake(ssl);
            if (r == 1)
                break;
            int err = SSL_get_error(ssl, r);
            if (err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE)
                tls_fail(c, "handshake", r);
            uint64_t t = now_ns();
            if (t >= deadline)
                fail("conn %u: TLS handshake timed out", c->id);
            struct pollfd pfd = {c->fd, err == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, 0};
            if (poll(&pfd, 1, (int)((deadline - t) / 1000000) + 1) < 0 && errno != EINTR)
                die("poll");
        }
        if (i == 0)
            fprintf(stderr, "ringsock-pingpong: %s %s\n", SSL_get_version(ssl),
                    SSL_get_cipher_name(ssl));
    }
}

static void tls_close_all(struct conn *conns)
{
    for (unsigned i = 0; i < cfg.conns; i++)
        SSL_free(conns[i].ssl);
    SSL_CTX_free(tls_ctx);
}
#else
static void tls_send(struct conn *c)
{
    (void)c;
}
static void tls_recv(struct conn *c)
{
    (void)c;
}
static void tls_connect_all(struct conn *conns)
{
    (void)conns;
}
static void tls_close_all(struct conn *conns)
{
    (void)conns;
}
#endif

// ---- --udp: flows of connected UDP sockets ----

static struct mmsghdr umsg[UDP_BATCH];
static struct iovec uiov[UDP_BATCH][2];
static unsigned char *urbuf; // UDP_BATCH receive buffers of cfg.size bytes

static void put_be(unsigned char *p, uint64_t v, unsigned bytes)
{
    for (unsigned i = 0; i < bytes; i++)
        p[i] = (unsigned char)(v >> (8 * (bytes - 1 - i)));
}

static uint64_t get_be(const unsigned char *p, unsigned bytes)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < bytes; i++)
        v = v << 8 | p[i];
    return v;
}

static void udp_header(unsigned char *h, const struct conn *c, uint64_t seq, unsigned flags)
{
    put_be(h, (uint64_t)c->id << UDP_ID_SHIFT | seq, 8);
    put_be(h + 8, flags, 2);
    put_be(h + 10, cfg.size, 4);
}

// Gives slot k its next sequence number and queues it for sending.
static void udp_queue(struct conn *c, unsigned k, bool first)
{
    if (!first)
        c->seq[k] += cfg.depth;
    c->sent_ns[k] = 0;
    udp_header(c->hdr + (size_t)k * UDP_HDR, c, c->seq[k], SP_CLIENT | SP_PONG);
    c->pend[c->npend++] = k;
}

static void udp_flush(struct conn *c)
{
    unsigned done = 0;
    while (!c->wblocked && done < c->npend) {
        unsigned n = c->npend - done;
        if (n > UDP_BATCH)
            n = UDP_BATCH;
        for (unsigned i = 0; i < n; i++) {
            unsigned k = c->pend[done + i];
            uiov[i][0].iov_base = c->hdr + (size_t)k * UDP_HDR;
            uiov[i][0].iov_len = UDP_HDR;
            uiov[i][1].iov_base = (void *)(payload(c, c->seq[k]) + UDP_HDR);
            uiov[i][1].iov_len = cfg.size - UDP_HDR;
            umsg[i].msg_hdr = (struct msghdr){.msg_iov = uiov[i], .msg_iovlen = 2};
        }
        uint64_t t = now_ns();
        int r = sendmmsg(c->fd, umsg, n, 0);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                c->wblocked = true; // the socket raises EPOLLOUT once its buffer drains
                break;
            }
            fail("conn %u: sendmmsg to %s:%s: %s", c->id, cfg.host, cfg.port, strerror(errno));
        }
        for (int i = 0; i < r; i++)
            c->sent_ns[c->pend[done + (unsigned)i]] = t;
        done += (unsigned)r;
    }
    if (done) {
        c->npend -= done;
        memmove(c->pend, c->pend + done, c->npend * sizeof(*c->pend));
    }
}

static void udp_mismatch(const struct conn *c, uint64_t seq, const unsigned char *got,
                         const unsigned char *hdr)
{
    const unsigned char *body = payload(c, seq);
    size_t i = 0;
    while (i < cfg.size && got[i] == (i < UDP_HDR ? hdr[i] : body[i]))
        i++;
    fail("echo mismatch: conn %u datagram %" PRIu64 " byte %zu: sent 0x%02x, got 0x%02x", c->id,
         seq, i, i < UDP_HDR ? hdr[i] : body[i], got[i]);
}

static void udp_datagram(struct conn *c, const unsigned char *p, size_t len, int flags, uint64_t t)
{
    if ((flags & MSG_TRUNC) || len != cfg.size)
        fail("conn %u: echoed a datagram of %s%zu bytes, sent %zu", c->id,
             flags & MSG_TRUNC ? "more than " : "", len, cfg.size);
    uint64_t tag = get_be(p, 8);
    uint64_t seq = tag & UDP_SEQ_MASK;
    unsigned k = (unsigned)(seq % cfg.depth);
    if (tag >> UDP_ID_SHIFT != c->id || seq > c->seq[k] || (seq == c->seq[k] && c->sent_ns[k] == 0))
        fail("conn %u: echoed a datagram that was never sent (tag 0x%016" PRIx64 ")", c->id, tag);
    // A sockperf server answers with the CLIENT flag cleared; anything else must be as sent.
    unsigned got_flags = (unsigned)get_be(p + 8, 2);
    unsigned char want[UDP_HDR];
    udp_header(want, c, seq, got_flags == SP_PONG ? SP_PONG : SP_CLIENT | SP_PONG);
    if (memcmp(p, want, UDP_HDR) != 0 ||
        memcmp(p + UDP_HDR, payload(c, seq) + UDP_HDR, cfg.size - UDP_HDR) != 0)
        udp_mismatch(c, seq, p, want);
    if (seq != c->seq[k]) {
        udp_late++; // already counted lost (or a duplicate)
        return;
    }
    if (measuring) {
        hist[hist_bucket(t - c->sent_ns[k])]++;
        hist_count++;
    }
    c->recv_idx++;
    msgs_done++;
    udp_queue(c, k, false);
}

static void udp_recv(struct conn *c)
{
    for (;;) {
        for (unsigned i = 0; i < UDP_BATCH; i++) {
            uiov[i][0].iov_base = urbuf + (size_t)i * cfg.size;
            uiov[i][0].iov_len = cfg.size;
            umsg[i].msg_hdr = (struct msghdr){.msg_iov = uiov[i], .msg_iovlen = 1};
        }
        int r = recvmmsg(c->fd, umsg, UDP_BATCH, MSG_DONTWAIT, NULL);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return;
            fail("conn %u: recvmmsg from %s:%s: %s", c->id, cfg.host, cfg.port, strerror(errno));
        }
        uint64_t t = now_ns();
        for (int i = 0; i < r; i++)
            udp_datagram(c, urbuf + (size_t)i * cfg.size, umsg[i].msg_len,
                         umsg[i].msg_hdr.msg_flags, t);
        // A short batch emptied the queue; a datagram arriving later raises a fresh edge.
        if (r < UDP_BATCH)
            return;
    }
}

static void udp_event(struct conn *c, uint32_t events)
{
    if (events & EPOLLERR) {
        // ICMP errors on a connected UDP socket: port unreachable means no server.
        int err = 0;
        socklen_t len = sizeof(err);
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        fail("conn %u: %s:%s: %s", c->id, cfg.host, cfg.port, strerror(err ? err : EIO));
    }
    if (events & EPOLLIN)
        udp_recv(c);
    if (events & EPOLLOUT)
        c->wblocked = false;
    udp_flush(c);
}

// Counts datagrams unanswered for --timeout as lost and sends new ones in their slots.
static void udp_expire(struct conn *conns, uint64_t t)
{
    uint64_t limit = (uint64_t)(cfg.timeout_ms * 1e6);
    for (unsigned i = 0; i < cfg.conns; i++) {
        struct conn *c = &conns[i];
        unsigned before = c->npend;
        for (unsigned k = 0; k < cfg.depth; k++) {
            if (c->sent_ns[k] != 0 && t - c->sent_ns[k] >= limit) {
                if (measuring)
                    udp_lost++;
                udp_queue(c, k, false);
            }
        }
        if (c->npend != before)
            udp_flush(c);
    }
}

static struct addrinfo *resolve(void)
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
static void local_connect(struct conn *c)
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
static bool inet_connect(struct conn *c, const struct addrinfo *ai)
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

// Opens every connection without blocking and waits until all are established.
static void connect_all(int epfd, struct conn *conns)
{
    struct addrinfo *ai = cfg.local ? NULL : resolve();
    unsigned pending = 0;

    for (unsigned i = 0; i < cfg.conns; i++) {
        struct conn *c = &conns[i];
        c->id = i;
        if (cfg.local)
            local_connect(c);
        else if (inet_connect(c, ai))
            pending++;
        // Edge-triggered: the loop reads to a short read and writes until blocked, so it
        // never needs to re-arm or modify the registration.
        struct epoll_event ev = {
            .events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
            .data.ptr = c,
        };
        if (epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev) < 0)
            die("epoll_ctl");
    }
    if (ai)
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
    fprintf(
        f,
        "usage: ringsock-pingpong --port P [--host 127.0.0.1] [--udp] [--conns N] [--size BYTES]\n"
        "                         [--depth D] [--seconds S] [--warmup S] [--timeout MS] [--json]\n"
        "       ringsock-pingpong --local PATH|@NAME [--conns N] ...\n"
        "defaults: --conns 1 --size 64 --depth 1 --seconds 5 --warmup 1\n"
        "--udp: N connected UDP sockets, D datagrams in flight each (--size %d..%d);\n"
        "       a datagram unanswered for --timeout ms (default 50) is counted lost\n"
        "--tls: TLS 1.3 with TLS_AES_128_GCM_SHA256; --tls12: TLS 1.2 with\n"
        "       ECDHE-ECDSA-AES128-GCM-SHA256 (the server's certificate is not verified)%s\n",
        UDP_HDR, UDP_MAX_SIZE,
#ifdef PINGPONG_TLS
        ""
#else
        "\n       (this build has no TLS: OpenSSL was not found)"
#endif
    );
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
        {"host", required_argument, NULL, 'H'},
        {"port", required_argument, NULL, 'p'},
        {"conns", required_argument, NULL, 'c'},
        {"size", required_argument, NULL, 's'},
        {"depth", required_argument, NULL, 'd'},
        {"seconds", required_argument, NULL, 't'},
        {"warmup", required_argument, NULL, 'w'},
        {"json", no_argument, NULL, 'j'},
        {"udp", no_argument, NULL, 'u'},
        {"local", required_argument, NULL, 'L'},
        {"timeout", required_argument, NULL, 'T'},
        {"tls", no_argument, NULL, 'S'},
        {"tls12", no_argument, NULL, '2'},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
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
        case 'h':
            usage(stdout);
            exit(0);
        default:
            usage(stderr);
            exit(2);
        }
    }
    if (!(cfg.port || cfg.local) || (cfg.port && cfg.local) || (cfg.udp && cfg.local) ||
        optind != argc) {
        usage(stderr);
        exit(2);
    }
#ifndef PINGPONG_TLS
    if (cfg.tls) {
        fprintf(stderr, "ringsock-pingpong: built without TLS (OpenSSL was not found)\n");
        exit(2);
    }
#endif
    if (cfg.tls && cfg.udp) {
        usage(stderr);
        exit(2);
    }
    if (cfg.udp && (cfg.size < UDP_HDR || cfg.size > UDP_MAX_SIZE)) {
        fprintf(stderr, "ringsock-pingpong: --udp needs --size %d..%d\n", UDP_HDR, UDP_MAX_SIZE);
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
    uint64_t *useq = NULL;
    unsigned char *uhdr = NULL;
    uint32_t *upend = NULL;
    if (cfg.udp) {
        size_t slots = (size_t)cfg.conns * cfg.depth;
        useq = calloc(slots, sizeof(*useq));
        uhdr = malloc(slots * UDP_HDR);
        upend = malloc(slots * sizeof(*upend));
        urbuf = malloc((size_t)UDP_BATCH * cfg.size);
        if (!useq || !uhdr || !upend || !urbuf)
            die("malloc");
        for (unsigned i = 0; i < cfg.conns; i++) {
            conns[i].seq = useq + (size_t)i * cfg.depth;
            conns[i].hdr = uhdr + (size_t)i * cfg.depth * UDP_HDR;
            conns[i].pend = upend + (size_t)i * cfg.depth;
        }
    }

    int epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0)
        die("epoll_create1");
    connect_all(epfd, conns);
    if (cfg.tls)
        tls_connect_all(conns);

    uint64_t start = now_ns();
    uint64_t measure_at = start + (uint64_t)(cfg.warmup * 1e9);
    uint64_t stop_at = measure_at + (uint64_t)(cfg.seconds * 1e9);
    uint64_t msgs_at_start = 0;
    double cpu_at_start = 0;

    if (cfg.warmup == 0) {
        measuring = true;
        cpu_at_start = cpu_seconds();
    }
    for (unsigned i = 0; i < cfg.conns; i++) {
        if (cfg.udp) {
            for (unsigned k = 0; k < cfg.depth; k++) {
                conns[i].seq[k] = k;
                udp_queue(&conns[i], k, true);
            }
            udp_flush(&conns[i]);
        } else {
            conn_send(&conns[i]);
        }
    }

    // --udp: look for lost datagrams a few times per timeout.
    uint64_t scan_every = (uint64_t)(cfg.timeout_ms * 1e6 / 5);
    uint64_t scan_at = start + scan_every;
    struct epoll_event events[MAX_EVENTS];
    uint64_t t = start;
    for (;;) {
        uint64_t next = measuring ? stop_at : measure_at;
        if (cfg.udp && scan_at < next)
            next = scan_at;
        int timeout = next > t ? (int)((next - t + 999999) / 1000000) : 0;
        int n = epoll_wait(epfd, events, MAX_EVENTS, timeout);
        if (n < 0 && errno != EINTR)
            die("epoll_wait");
        for (int i = 0; i < n; i++) {
            if (cfg.udp)
                udp_event(events[i].data.ptr, events[i].events);
            else
                conn_event(events[i].data.ptr, events[i].events);
        }

        t = now_ns();
        if (cfg.udp && t >= scan_at) {
            udp_expire(conns, t);
            scan_at = t + scan_every;
        }
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

    if (cfg.json && cfg.udp) {
        printf("{\"msgs/s\": %.1f, \"MB/s\": %.3f, \"p50_us\": %.1f, \"p99_us\": %.1f, "
               "\"p999_us\": %.1f, \"conns\": %u, \"size\": %zu, \"depth\": %u, "
               "\"client_cpu\": %.3f, \"seconds\": %.3f, \"msgs\": %.0f, \"lost\": %" PRIu64
               ", \"proto\": \"udp\"}\n",
               rate, mbps, p50, p99, p999, cfg.conns, cfg.size, cfg.depth, client_cpu, wall, msgs,
               udp_lost);
    } else if (cfg.json) {
        printf("{\"msgs/s\": %.1f, \"MB/s\": %.3f, \"p50_us\": %.1f, \"p99_us\": %.1f, "
               "\"p999_us\": %.1f, \"conns\": %u, \"size\": %zu, \"depth\": %u, "
               "\"client_cpu\": %.3f, \"seconds\": %.3f, \"msgs\": %.0f}\n",
               rate, mbps, p50, p99, p999, cfg.conns, cfg.size, cfg.depth, client_cpu, wall, msgs);
    } else {
        printf("msgs/s=%.1f MB/s=%.3f p50_us=%.1f p99_us=%.1f p999_us=%.1f conns=%u size=%zu "
               "depth=%u client_cpu=%.3f",
               rate, mbps, p50, p99, p999, cfg.conns, cfg.size, cfg.depth, client_cpu);
        if (cfg.udp)
            printf(" lost=%" PRIu64, udp_lost);
        putchar('\n');
    }
    if (udp_late)
        fprintf(stderr,
                "ringsock-pingpong: %" PRIu64 " echoes came after their datagram was "
                "counted lost, or twice\n",
                udp_late);
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

    if (cfg.tls)
        tls_close_all(conns);
    for (unsigned i = 0; i < cfg.conns; i++)
        close(conns[i].fd);
    close(epfd);
    free(useq);
    free(uhdr);
    free(upend);
    free(urbuf);
    free(ts);
    free(conns);
    free(pattern);
    return 0;
}
