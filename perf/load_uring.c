// SPDX-License-Identifier: MIT
// ringsock-load's io_uring back end: plain TCP and local streams, every mode.
//
// Cheapness is the point: the load generator shares the machine with the server it measures,
// so each loop round is one io_uring_enter that submits everything the previous round's
// completions asked for and waits for the next ones (DEFER_TASKRUN: completions are only
// processed when we ask for them, so they arrive batched). Receives are multishot, into a
// provided buffer ring that is refilled as soon as a buffer is checked; each connection
// has one send in flight carrying every message its window allows (SEND for one message,
// SENDMSG with an iovec for more).
//
// --mode churn: each slot creates a socket and submits connect -> send -> recv as one linked
// chain; when the echo is complete it closes the socket (the client closes first, so
// TIME_WAIT stays on this side, where Linux reuses loopback ports) and starts over.

#include "load.h"

#include <errno.h>
#include <liburing.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/un.h>
#include <unistd.h>

#define SQ_ENTRIES 4096
#define BGID       0 // the one buffer group
#define MAX_BUFMEM (64u << 20)

// user_data: the conn's address with the operation in the low bits (struct conn is aligned).
enum { OP_RECV, OP_SEND, OP_CONNECT };
#define OP_MASK 3u

// Each load thread has its own ring and buffers.
static _Thread_local struct io_uring ring;
static _Thread_local struct io_uring_buf_ring *br;
static _Thread_local unsigned char *bufs;
static _Thread_local unsigned buf_size, nbufs, recycled;
static _Thread_local uint64_t loop_t;  // the time of the current round: send timestamps
static _Thread_local bool drop_unread; // --no-verify over TCP: receive without copying

// --mode churn: where to connect
static _Thread_local struct sockaddr_storage churn_addr;
static _Thread_local socklen_t churn_addr_len;
static _Thread_local int churn_family;

static struct io_uring_sqe *get_sqe(void)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
    if (!sqe) {
        int r = io_uring_submit(&ring);
        if (r < 0) {
            errno = -r;
            die("io_uring_submit");
        }
        sqe = io_uring_get_sqe(&ring);
        if (!sqe)
            fail("io_uring: no free submission entry");
    }
    return sqe;
}

static void set_data(struct io_uring_sqe *sqe, struct conn *c, unsigned op)
{
    io_uring_sqe_set_data64(sqe, (uint64_t)(uintptr_t)c | op);
}

// Churn receives one message per connection, so single-shot receives: nothing is left armed
// when the socket is closed.
static struct io_uring_sqe *arm_recv(struct conn *c, bool multishot)
{
    struct io_uring_sqe *sqe = get_sqe();
    if (drop_unread) {
        // MSG_TRUNC: TCP counts the bytes and frees them without copying them anywhere.
        io_uring_prep_recv(sqe, c->fd, NULL, 1u << 30, MSG_TRUNC);
        set_data(sqe, c, OP_RECV);
        c->recv_armed = true;
        return sqe;
    }
    if (multishot)
        io_uring_prep_recv_multishot(sqe, c->fd, NULL, 0, 0);
    else
        io_uring_prep_recv(sqe, c->fd, NULL, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = BGID;
    set_data(sqe, c, OP_RECV);
    c->recv_armed = true;
    return sqe;
}

static struct io_uring_sqe *uring_send(struct conn *c)
{
    if (c->send_busy)
        return NULL;
    uint64_t lim = send_limit(c);
    if (c->send_idx >= lim)
        return NULL;
    if (!c->iov && !(c->iov = malloc(URING_IOV * sizeof(*c->iov))))
        die("malloc");
    unsigned n = 0;
    for (uint64_t m = c->send_idx; m < lim && n < URING_IOV; m++, n++) {
        size_t off = m == c->send_idx ? c->send_off : 0;
        c->iov[n].iov_base = (void *)(payload(c, m) + off);
        c->iov[n].iov_len = cfg.size - off;
        if (off == 0)
            c->sent_ns[m % cfg.depth] = cfg.mode == MODE_CHURN ? c->churn_start : loop_t;
    }
    struct io_uring_sqe *sqe = get_sqe();
    if (n == 1) {
        io_uring_prep_send(sqe, c->fd, c->iov[0].iov_base, c->iov[0].iov_len, MSG_NOSIGNAL);
    } else {
        c->msg = (struct msghdr){.msg_iov = c->iov, .msg_iovlen = n};
        io_uring_prep_sendmsg(sqe, c->fd, &c->msg, MSG_NOSIGNAL);
    }
    set_data(sqe, c, OP_SEND);
    c->send_busy = true;
    return sqe;
}

static void send_done(struct conn *c, size_t sent)
{
    c->send_busy = false;
    while (sent > 0) {
        size_t rem = cfg.size - c->send_off;
        if (sent >= rem) {
            sent -= rem;
            c->send_idx++;
            c->send_off = 0;
        } else {
            c->send_off += sent;
            sent = 0;
        }
    }
}

static void recycle(unsigned bid)
{
    io_uring_buf_ring_add(br, bufs + (size_t)bid * buf_size, buf_size, (unsigned short)bid,
                          io_uring_buf_ring_mask(nbufs), (int)recycled++);
}

// ---- --mode churn ----

static void churn_start(struct conn *c)
{
    if (cfg.rate > 0 && !rate_take(c))
        return; // rate_resume() calls again
    c->fd = socket(churn_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        die("socket");
    int one = 1;
    if (churn_family != AF_UNIX &&
        setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0)
        die("setsockopt(TCP_NODELAY)");
    c->send_idx = c->recv_idx = 0;
    c->send_off = c->recv_off = 0;
    c->churn_start = now_ns();
    // The chain must go to the kernel in one submission, or it would be cut in two.
    if (io_uring_sq_space_left(&ring) < 3)
        io_uring_submit(&ring);
    struct io_uring_sqe *sqe = get_sqe();
    io_uring_prep_connect(sqe, c->fd, (struct sockaddr *)&churn_addr, churn_addr_len);
    sqe->flags |= IOSQE_IO_LINK;
    set_data(sqe, c, OP_CONNECT);
    uring_send(c)->flags |= IOSQE_IO_LINK;
    arm_recv(c, false);
}

static void churn_maybe_next(struct conn *c)
{
    if (c->recv_idx < 1 || c->send_busy || c->recv_armed)
        return;
    close(c->fd);
    c->fd = -1;
    churn_start(c);
}

static void churn_addr_init(void)
{
    if (cfg.local) {
        struct sockaddr_un *sun = (struct sockaddr_un *)&churn_addr;
        size_t n = strlen(cfg.local);
        if (n == 0 || n >= sizeof(sun->sun_path))
            fail("--local '%s': path empty or too long", cfg.local);
        sun->sun_family = AF_UNIX;
        if (cfg.local[0] == '@') { // abstract: no terminating NUL in the address
            memcpy(sun->sun_path + 1, cfg.local + 1, n - 1);
            churn_addr_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
        } else {
            memcpy(sun->sun_path, cfg.local, n + 1);
            churn_addr_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
        }
        churn_family = AF_UNIX;
        return;
    }
    struct addrinfo *ai = resolve();
    memcpy(&churn_addr, ai->ai_addr, ai->ai_addrlen);
    churn_addr_len = ai->ai_addrlen;
    churn_family = ai->ai_family;
    freeaddrinfo(ai);
}

// ---- completions ----

static void on_recv(struct conn *c, struct io_uring_cqe *cqe)
{
    int res = cqe->res;
    if (!(cqe->flags & IORING_CQE_F_MORE))
        c->recv_armed = false;
    if (res > 0 && drop_unread) {
        consume(c, NULL, (size_t)res, loop_t);
    } else if (res > 0) {
        unsigned bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
        consume(c, bufs + (size_t)bid * buf_size, (size_t)res, loop_t);
        recycle(bid);
    } else if (res == 0) {
        fail("conn %u: server closed the connection", c->id);
    } else if (res == -ECANCELED && cfg.mode == MODE_CHURN) {
        return; // the connect failed; its completion says why
    } else if (res != -ENOBUFS) {
        fail("conn %u: receive: %s", c->id, strerror(-res));
    }
    if (cfg.mode == MODE_CHURN) {
        if (c->recv_idx < 1)
            arm_recv(c, false);
        churn_maybe_next(c);
        return;
    }
    if (!c->recv_armed)
        arm_recv(c, true);
    uring_send(c);
}

static void on_send(struct conn *c, int res)
{
    if (res < 0) {
        if (res == -ECANCELED && cfg.mode == MODE_CHURN) {
            c->send_busy = false;
            return;
        }
        fail("conn %u: send: %s", c->id, strerror(-res));
    }
    send_done(c, (size_t)res);
    uring_send(c);
    if (cfg.mode == MODE_CHURN)
        churn_maybe_next(c);
}

static void on_cqe(struct io_uring_cqe *cqe)
{
    struct conn *c = (struct conn *)(uintptr_t)(cqe->user_data & ~(uint64_t)OP_MASK);
    switch (cqe->user_data & OP_MASK) {
    case OP_RECV:
        on_recv(c, cqe);
        break;
    case OP_SEND:
        on_send(c, cqe->res);
        break;
    case OP_CONNECT:
        if (cqe->res < 0)
            fail("conn %u: connect %s%s%s: %s", c->id, cfg.local ? cfg.local : cfg.host,
                 cfg.local ? "" : ":", cfg.local ? "" : cfg.port, strerror(-cqe->res));
        break;
    }
}

// ---- set-up and the loop ----

static unsigned pow2_at_least(size_t v)
{
    unsigned p = 1;
    while (p < v && p < (1u << 30))
        p <<= 1;
    return p;
}

static bool ring_init(unsigned conns)
{
    unsigned cq = pow2_at_least((size_t)conns * 4);
    if (cq < 2 * SQ_ENTRIES)
        cq = 2 * SQ_ENTRIES;
    if (cq > 65536)
        cq = 65536; // the kernel's limit; more completions than that wait in its overflow list
    struct io_uring_params p = {
        .flags = IORING_SETUP_CQSIZE | IORING_SETUP_SUBMIT_ALL | IORING_SETUP_SINGLE_ISSUER |
                 IORING_SETUP_DEFER_TASKRUN,
        .cq_entries = cq,
    };
    int r = io_uring_queue_init_params(SQ_ENTRIES, &ring, &p);
    if (r < 0) { // kernels before 6.1: no DEFER_TASKRUN
        p = (struct io_uring_params){
            .flags = IORING_SETUP_CQSIZE | IORING_SETUP_SUBMIT_ALL | IORING_SETUP_COOP_TASKRUN,
            .cq_entries = cq,
        };
        r = io_uring_queue_init_params(SQ_ENTRIES, &ring, &p);
    }
    if (r < 0)
        return false;

    // Buffers: 4 KiB hold a small message and some of the ones behind it; bulk messages get
    // up to 64 KiB. Enough that every connection can have a completion or two waiting.
    buf_size = pow2_at_least(cfg.size * (cfg.depth < 4 ? cfg.depth : 4));
    if (buf_size < 4096)
        buf_size = 4096;
    if (buf_size > 65536)
        buf_size = 65536;
    nbufs = pow2_at_least((size_t)conns * 2);
    if (nbufs < 256)
        nbufs = 256;
    if (nbufs > 32768)
        nbufs = 32768;
    while (nbufs > 256 && (size_t)nbufs * buf_size > MAX_BUFMEM)
        nbufs /= 2;
    size_t ring_bytes = (size_t)nbufs * sizeof(struct io_uring_buf);
    br = mmap(NULL, ring_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    bufs = malloc((size_t)nbufs * buf_size);
    if (br == MAP_FAILED || !bufs)
        die("buffer ring");
    struct io_uring_buf_reg reg = {
        .ring_addr = (uint64_t)(uintptr_t)br, .ring_entries = nbufs, .bgid = BGID};
    if (io_uring_register_buf_ring(&ring, &reg, 0) < 0) { // before 5.19
        io_uring_queue_exit(&ring);
        return false;
    }
    io_uring_buf_ring_init(br);
    for (unsigned i = 0; i < nbufs; i++)
        recycle(i);
    io_uring_buf_ring_advance(br, (int)recycled);
    recycled = 0;
    return true;
}

static void resume(struct conn *c)
{
    if (cfg.mode == MODE_CHURN)
        churn_start(c);
    else
        uring_send(c);
}

bool uring_run(struct conn *conns, unsigned n_conns)
{
    if (!ring_init(n_conns))
        return false;
    drop_unread = !cfg.verify && !cfg.local && cfg.mode != MODE_CHURN;
    rate_resume = resume;
    loop_t = now_ns();
    if (cfg.mode == MODE_CHURN) {
        churn_addr_init();
        for (unsigned i = 0; i < n_conns; i++)
            churn_start(&conns[i]);
    } else {
        for (unsigned i = 0; i < n_conns; i++) {
            arm_recv(&conns[i], true);
            uring_send(&conns[i]);
        }
    }
    uint64_t t = loop_t;
    while (tick(t)) {
        uint64_t wait = tick_wait_ns(t);
        struct __kernel_timespec ts = {.tv_sec = (long long)(wait / 1000000000u),
                                       .tv_nsec = (long long)(wait % 1000000000u)};
        struct io_uring_cqe *cqe;
        int r = io_uring_submit_and_wait_timeout(&ring, &cqe, 1, &ts, NULL);
        if (r < 0 && r != -ETIME && r != -EINTR && r != -EBUSY) {
            errno = -r;
            die("io_uring_submit_and_wait_timeout");
        }
        t = loop_t = now_ns();
        unsigned head, n = 0;
        io_uring_for_each_cqe(&ring, head, cqe)
        {
            on_cqe(cqe);
            n++;
        }
        io_uring_cq_advance(&ring, n);
        if (recycled) {
            io_uring_buf_ring_advance(br, (int)recycled);
            recycled = 0;
        }
    }
    return true;
}

void uring_done(void)
{
    io_uring_queue_exit(&ring);
    munmap(br, (size_t)nbufs * sizeof(struct io_uring_buf));
    free(bufs);
    bufs = NULL;
}
