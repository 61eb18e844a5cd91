// SPDX-License-Identifier: MIT
// ringsock-load's epoll back end: TLS (OpenSSL's libssl, non-blocking), UDP and, with --epoll,
// plain TCP and local streams. Edge-triggered: a connection reads until a short read and
// writes until the socket is full, so registrations never change.
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
// ECDHE-ECDSA-AES128-GCM-SHA256 only): the same stream protocol inside TLS (built only where
// CMake finds OpenSSL: LOAD_TLS). The handshakes run one connection at a time before the load
// starts; the server's certificate is not verified (a benchmark, not a security check). Each
// message is one SSL_write; reads go on until SSL_read wants more from the socket.

#include "load.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>
#ifdef LOAD_TLS
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#endif

#define READ_BUF_SIZE (64 * 1024)
#define MAX_IOV       64
#define MAX_EVENTS    512

// --udp
#define UDP_BATCH    64 // datagrams per sendmmsg/recvmmsg
#define UDP_ID_SHIFT 40 // tag = flow id << 40 | sequence number
#define UDP_SEQ_MASK ((1ull << UDP_ID_SHIFT) - 1)
#define SP_CLIENT    1 // sockperf flags: sent by a client,
#define SP_PONG      2 // ... and wants an answer

static _Thread_local unsigned char rbuf[READ_BUF_SIZE]; // each load thread's own

static void tls_send(struct conn *c);
static void tls_recv(struct conn *c);

static void conn_send(struct conn *c)
{
    if (cfg.tls) {
        tls_send(c);
        return;
    }
    uint64_t lim;
    while (!c->wblocked && c->send_idx < (lim = send_limit(c))) {
        struct iovec iov[MAX_IOV];
        size_t total = 0;
        int n_iov = 0;
        for (uint64_t m = c->send_idx; m < lim && n_iov < MAX_IOV; m++) {
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

#ifdef LOAD_TLS
const bool have_tls = true;
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
void tls_connect_all(struct conn *conns)
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
            fprintf(stderr, "ringsock-load: %s %s\n", SSL_get_version(ssl),
                    SSL_get_cipher_name(ssl));
    }
}

void tls_close_all(struct conn *conns)
{
    for (unsigned i = 0; i < cfg.conns; i++)
        SSL_free(conns[i].ssl);
    SSL_CTX_free(tls_ctx);
}
#else
const bool have_tls = false;
static void tls_send(struct conn *c)
{
    (void)c;
}
static void tls_recv(struct conn *c)
{
    (void)c;
}
void tls_connect_all(struct conn *conns)
{
    (void)conns;
}
void tls_close_all(struct conn *conns)
{
    (void)conns;
}
#endif

// ---- --udp: flows of connected UDP sockets ----

static _Thread_local struct mmsghdr umsg[UDP_BATCH];
static _Thread_local struct iovec uiov[UDP_BATCH][2];
static _Thread_local unsigned char *urbuf; // UDP_BATCH receive buffers of cfg.size bytes

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
        if (cfg.rate > 0) {
            unsigned ok = 0;
            while (ok < n && rate_take(c))
                ok++;
            if (!(n = ok))
                break; // queued: rate_resume() flushes again
        }
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
    record_rtt(t - c->sent_ns[k]);
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
static void udp_expire(struct conn *conns, unsigned n_conns, uint64_t t)
{
    uint64_t limit = (uint64_t)(cfg.timeout_ms * 1e6);
    for (unsigned i = 0; i < n_conns; i++) {
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

static void stream_resume(struct conn *c)
{
    conn_send(c);
}

static void udp_resume(struct conn *c)
{
    udp_flush(c);
}

void epoll_run(struct conn *conns, unsigned n_conns)
{
    int epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0)
        die("epoll_create1");
    for (unsigned i = 0; i < n_conns; i++) {
        // Edge-triggered: the loop reads to a short read and writes until blocked, so it
        // never needs to re-arm or modify the registration.
        struct epoll_event ev = {
            .events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
            .data.ptr = &conns[i],
        };
        if (epoll_ctl(epfd, EPOLL_CTL_ADD, conns[i].fd, &ev) < 0)
            die("epoll_ctl");
    }
    uint64_t *useq = NULL;
    unsigned char *uhdr = NULL;
    uint32_t *upend = NULL;
    if (cfg.udp) {
        size_t slots = (size_t)n_conns * cfg.depth;
        useq = calloc(slots, sizeof(*useq));
        uhdr = malloc(slots * UDP_HDR);
        upend = malloc(slots * sizeof(*upend));
        urbuf = malloc((size_t)UDP_BATCH * cfg.size);
        if (!useq || !uhdr || !upend || !urbuf)
            die("malloc");
        for (unsigned i = 0; i < n_conns; i++) {
            conns[i].seq = useq + (size_t)i * cfg.depth;
            conns[i].hdr = uhdr + (size_t)i * cfg.depth * UDP_HDR;
            conns[i].pend = upend + (size_t)i * cfg.depth;
        }
    }
    rate_resume = cfg.udp ? udp_resume : stream_resume;

    uint64_t t = now_ns();
    for (unsigned i = 0; i < n_conns; i++) {
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
    uint64_t scan_at = t + scan_every;
    struct epoll_event events[MAX_EVENTS];
    while (tick(t)) {
        uint64_t wait = tick_wait_ns(t);
        if (cfg.udp && scan_at < t + wait)
            wait = scan_at > t ? scan_at - t : 0;
        int n = epoll_wait(epfd, events, MAX_EVENTS, (int)((wait + 999999) / 1000000));
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
            udp_expire(conns, n_conns, t);
            scan_at = t + scan_every;
        }
    }
    close(epfd);
    free(useq);
    free(uhdr);
    free(upend);
    free(urbuf); // the thread's own: gone with it
    urbuf = NULL;
}
