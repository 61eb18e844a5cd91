// SPDX-License-Identifier: MIT
// uring-echo: a single-threaded TCP echo server written straight on io_uring (liburing), the
// upper bound that ringsock's abstractions are measured against: what the kernel interface
// gives when nothing sits between it and the echo.
//
//   uring-echo --port P [--addr 127.0.0.1] [--no-bundle] [--no-direct] [--bufs N]
//              [--buf-size S]
//
// Same echo as epoll-echo: every byte goes back in order, TCP_NODELAY, back-pressure, prints
// "listening on PORT", SIGINT/SIGTERM stop it with status 0. How:
//
// - One ring, IORING_SETUP_SINGLE_ISSUER | DEFER_TASKRUN where the kernel takes them (else
//   COOP_TASKRUN, else neither), its fd registered; each loop round is one
//   io_uring_submit_and_wait that submits what the last round's completions asked for.
// - A multishot accept on the listener, into direct descriptors (IORING_FILE_INDEX_ALLOC)
//   unless --no-direct or the kernel has none; TCP_NODELAY is set on the listener, which
//   accepted sockets inherit (a direct descriptor has no fd for setsockopt).
// - Per connection one multishot recv into a shared provided buffer ring (--bufs buffers of
//   --buf-size bytes), as recv bundles (IORING_RECVSEND_BUNDLE: several buffers in one
//   completion, kernel 6.10) where the kernel has them, DEFER_TASKRUN is on and --no-bundle
//   is not given. A recv that ends (no IORING_CQE_F_MORE) is armed again; one that ended for
//   want of buffers (ENOBUFS) is armed again once buffers have come back.
// - Received buffers queue on their connection in order; each connection has at most one
//   send in flight (SEND for one buffer, SENDMSG for up to MAX_IOV), so bytes cannot be
//   reordered, and a short send is sent on from where it stopped. A buffer goes back to the
//   ring once all of it has been sent (the ring is advanced once per round).
// - Back-pressure: a connection with more than MAX_PENDING bytes queued has its recv
//   cancelled and not armed again until the queue is below half of that; the buffer pool is
//   fixed, so nothing grows beyond it whatever the peers do.
// - Close on EOF once the queue has been sent, at once on an error (a reset peer): the
//   connection's operations are cancelled and it is freed when the last one has completed.
//
// Needs kernel 6.0 (multishot recv) and the buffer ring API (5.19).

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "baseline.h"

// Newer than liburing 2.3's headers; whether the kernel has them is asked at run time.
#ifndef IORING_RECVSEND_BUNDLE
#define IORING_RECVSEND_BUNDLE (1U << 4)
#endif
#ifndef IORING_FEAT_RECVSEND_BUNDLE
#define IORING_FEAT_RECVSEND_BUNDLE (1U << 14)
#endif

#define SQ_ENTRIES     4096
#define CQ_ENTRIES     (4 * SQ_ENTRIES)
#define BGID           0
#define MAX_FILES      65536        // direct descriptor table
#define MAX_IOV        8            // buffers one SENDMSG carries
#define MAX_PENDING    (512 * 1024) // queued bytes above which a connection's recv stops
#define ACCEPT_BACKOFF 100          // ms the listener stays paused after running out of fds

// user_data: a struct conn's address with the operation in the low bits, or one of the
// tags below (the cancels and closes of IGNORE report nothing we act on).
enum { OP_RECV = 1, OP_SEND = 2, OP_MASK = 3 };
enum { TAG_IGNORE = 0, TAG_ACCEPT = 4, TAG_SIGNAL = 8, TAG_ACCEPT_RESUME = 12 };

struct conn {
    int fd; // socket, or direct descriptor index
    bool recv_armed, send_busy;
    bool eof, closing;
    bool dirty;               // on the dirty list: has queued bytes to send at the round's end
    bool starved;             // on the starved list: its recv ended with ENOBUFS
    bool recv_cancelled;      // a cancel of the armed recv is on its way
    int head, tail;           // the queued buffers, a list through buf_next; -1: none
    uint32_t head_off;        // bytes of the head buffer already sent
    size_t pending;           // bytes queued
    struct conn *prev, *next; // every live connection
    struct conn *dirty_next, *starved_next;
    struct msghdr msg;
    struct iovec iov[MAX_IOV];
};

static struct io_uring ring;
static bool direct;  // connections are direct descriptors
static bool bundles; // recvs are bundles
static int lfd;

// The provided buffer ring: nbufs buffers of buf_size bytes. ring_tail counts the buffers
// ever added; buf_slot[bid] is the ring slot a buffer was last added at (a bundle's
// completion names its first buffer, the rest follow in the ring's slots).
static struct io_uring_buf_ring *br;
static unsigned char *bufs;
static unsigned nbufs = 4096, buf_size = 16384;
static unsigned ring_tail, held; // held: buffers out of the ring (queued or being recycled)
static unsigned *buf_slot;
static uint32_t *buf_len;
static int *buf_next;
static int *recycle_bids; // buffers to give back at the end of the round
static unsigned nrecycle;

static struct conn *conns, *dirty, *starved;

static void usage(FILE *f)
{
    fprintf(f, "usage: uring-echo --port P [--addr 127.0.0.1] [--no-bundle] [--no-direct] "
               "[--bufs N] [--buf-size S]\n");
}

static struct io_uring_sqe *get_sqe(void)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
    if (!sqe) { // the SQ is full: submit what is there and take the next one
        int r = io_uring_submit(&ring);
        if (r < 0) {
            errno = -r;
            die("io_uring_submit");
        }
        sqe = io_uring_get_sqe(&ring);
        if (!sqe)
            die("io_uring_get_sqe");
    }
    return sqe;
}

static void conn_sqe_fd(struct io_uring_sqe *sqe, struct conn *c, unsigned op)
{
    if (direct)
        sqe->flags |= IOSQE_FIXED_FILE;
    io_uring_sqe_set_data64(sqe, (uint64_t)(uintptr_t)c | op);
}

static void recycle(int bid)
{
    recycle_bids[nrecycle++] = bid;
}

// Gives the round's sent buffers back to the kernel: one ring advance per round.
static void recycle_flush(void)
{
    for (unsigned i = 0; i < nrecycle; i++) {
        int bid = recycle_bids[i];
        buf_slot[bid] = (ring_tail + i) & (nbufs - 1);
        io_uring_buf_ring_add(br, bufs + (size_t)bid * buf_size, buf_size, (unsigned short)bid,
                              io_uring_buf_ring_mask(nbufs), (int)i);
    }
    io_uring_buf_ring_advance(br, (int)nrecycle);
    ring_tail += nrecycle;
    held -= nrecycle;
    nrecycle = 0;
}

static void arm_accept(void)
{
    struct io_uring_sqe *sqe = get_sqe();
    if (direct)
        io_uring_prep_multishot_accept_direct(sqe, lfd, NULL, NULL, 0);
    else
        io_uring_prep_multishot_accept(sqe, lfd, NULL, NULL, SOCK_CLOEXEC);
    io_uring_sqe_set_data64(sqe, TAG_ACCEPT);
}

static void arm_recv(struct conn *c)
{
    struct io_uring_sqe *sqe = get_sqe();
    io_uring_prep_recv(sqe, c->fd, NULL, 0, 0);
    sqe->ioprio |= IORING_RECV_MULTISHOT | (bundles ? IORING_RECVSEND_BUNDLE : 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = BGID;
    conn_sqe_fd(sqe, c, OP_RECV);
    c->recv_armed = true;
    c->recv_cancelled = false;
}

static void cancel(struct conn *c, unsigned op)
{
    struct io_uring_sqe *sqe = get_sqe();
    io_uring_prep_cancel64(sqe, (uint64_t)(uintptr_t)c | op, 0);
    io_uring_sqe_set_data64(sqe, TAG_IGNORE);
}

static void cancel_recv(struct conn *c)
{
    if (c->recv_armed && !c->recv_cancelled) {
        cancel(c, OP_RECV);
        c->recv_cancelled = true;
    }
}

// A closing connection gives its buffers back once no send reads them (others may be
// waiting for them), and is freed once nothing of it is in flight or on a list; the lists'
// walks call this again when they let go of it.
static void conn_maybe_free(struct conn *c)
{
    if (!c->closing || c->send_busy)
        return;
    for (int b = c->head; b >= 0; b = buf_next[b])
        recycle(b);
    c->head = c->tail = -1;
    if (c->recv_armed || c->dirty || c->starved)
        return;
    if (direct) {
        struct io_uring_sqe *sqe = get_sqe();
        io_uring_prep_close_direct(sqe, (unsigned)c->fd);
        io_uring_sqe_set_data64(sqe, TAG_IGNORE);
    } else {
        close(c->fd);
    }
    if (c->prev)
        c->prev->next = c->next;
    else
        conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    free(c);
}

static void conn_close(struct conn *c)
{
    if (!c->closing) {
        c->closing = true;
        cancel_recv(c);
        if (c->send_busy)
            cancel(c, OP_SEND); // a peer that does not read would hold it forever
    }
    conn_maybe_free(c);
}

// Arms the recv again where nothing holds it back: EOF, closing, back-pressure, or waiting
// on the starved list for buffers.
static void conn_resume(struct conn *c)
{
    if (!c->recv_armed && !c->eof && !c->closing && !c->starved && c->pending <= MAX_PENDING / 2)
        arm_recv(c);
}

static void mark_dirty(struct conn *c)
{
    if (!c->dirty) {
        c->dirty = true;
        c->dirty_next = dirty;
        dirty = c;
    }
}

// Queues the RES bytes a recv completion brought, in the buffers from BID on.
static void take_buffers(struct conn *c, int bid, unsigned res)
{
    unsigned slot = buf_slot[bid];
    c->pending += res;
    for (unsigned i = 0; res; i++) {
        int b = i ? br->bufs[(slot + i) & (nbufs - 1)].bid : bid;
        uint32_t len = res < buf_size ? res : buf_size;
        res -= len;
        held++;
        buf_len[b] = len;
        buf_next[b] = -1;
        if (c->tail >= 0)
            buf_next[c->tail] = b;
        else
            c->head = b;
        c->tail = b;
    }
    mark_dirty(c);
    if (c->pending > MAX_PENDING)
        cancel_recv(c); // back-pressure
}

static void on_recv(struct conn *c, int res, unsigned flags)
{
    bool more = flags & IORING_CQE_F_MORE;
    if (!more)
        c->recv_armed = false;
    if (res > 0) {
        take_buffers(c, (int)(flags >> IORING_CQE_BUFFER_SHIFT), (unsigned)res);
    } else if (res == 0) {
        c->eof = true; // closes once the queue has gone out (on_send)
        if (c->head < 0 && !c->send_busy) {
            conn_close(c);
            return;
        }
    } else if (res == -ENOBUFS) {
        if (!c->starved && !c->closing) {
            c->starved = true;
            c->starved_next = starved;
            starved = c;
        }
    } else if (res == -EINVAL) {
        errno = EINVAL;
        die("multishot recv (kernel 6.0 or later needed)");
    } else if (res != -ECANCELED) {
        conn_close(c); // ECONNRESET, ...
        return;
    }
    if (c->closing)
        conn_maybe_free(c); // c may be gone now
    else if (!more)
        conn_resume(c);
}

// One send of the queued buffers, from where the last one stopped.
static void conn_send(struct conn *c)
{
    int n = 0;
    uint32_t off = c->head_off;
    for (int b = c->head; b >= 0 && n < MAX_IOV; b = buf_next[b], off = 0) {
        c->iov[n].iov_base = bufs + (size_t)b * buf_size + off;
        c->iov[n].iov_len = buf_len[b] - off;
        n++;
    }
    struct io_uring_sqe *sqe = get_sqe();
    if (n == 1) {
        io_uring_prep_send(sqe, c->fd, c->iov[0].iov_base, c->iov[0].iov_len, MSG_NOSIGNAL);
    } else {
        c->msg.msg_iov = c->iov;
        c->msg.msg_iovlen = (size_t)n;
        io_uring_prep_sendmsg(sqe, c->fd, &c->msg, MSG_NOSIGNAL);
    }
    conn_sqe_fd(sqe, c, OP_SEND);
    c->send_busy = true;
}

static void on_send(struct conn *c, int res)
{
    c->send_busy = false;
    if (res <= 0 || c->closing) {
        conn_close(c); // EPIPE, ECONNRESET, our cancel...
        return;
    }
    c->pending -= (size_t)res;
    while (res > 0) { // whole buffers go back; a short send leaves the rest at the head
        int b = c->head;
        uint32_t left = buf_len[b] - c->head_off;
        if ((uint32_t)res < left) {
            c->head_off += (uint32_t)res;
            break;
        }
        res -= (int)left;
        c->head = buf_next[b];
        c->head_off = 0;
        recycle(b);
    }
    if (c->head < 0) {
        c->tail = -1;
        if (c->eof) {
            conn_close(c);
            return;
        }
    } else {
        mark_dirty(c);
    }
    conn_resume(c);
}

static void on_accept(int res, unsigned flags)
{
    if (res >= 0) {
        struct conn *c = calloc(1, sizeof(*c));
        if (!c) {
            if (direct) {
                struct io_uring_sqe *sqe = get_sqe();
                io_uring_prep_close_direct(sqe, (unsigned)res);
                io_uring_sqe_set_data64(sqe, TAG_IGNORE);
            } else {
                close(res);
            }
        } else {
            c->fd = res;
            c->head = c->tail = -1;
            c->next = conns;
            if (conns)
                conns->prev = c;
            conns = c;
            arm_recv(c);
        }
    }
    if (flags & IORING_CQE_F_MORE)
        return;
    switch (-res) {
    case EMFILE:
    case ENFILE:
    case ENOBUFS:
    case ENOMEM: {
        // The connection stays queued; accepting again at once would fail again at once.
        static struct __kernel_timespec backoff = {.tv_nsec = ACCEPT_BACKOFF * 1000000L};
        fprintf(stderr, "uring-echo: accept: %s, pausing %d ms\n", strerror(-res), ACCEPT_BACKOFF);
        struct io_uring_sqe *sqe = get_sqe();
        io_uring_prep_timeout(sqe, &backoff, 0, 0);
        io_uring_sqe_set_data64(sqe, TAG_ACCEPT_RESUME);
        return;
    }
    case EINVAL:
        errno = EINVAL;
        die("multishot accept (kernel 5.19 or later needed)");
    default:
        arm_accept(); // ended after a connection, or that one connection failed
    }
}

// What the round's completions left to do: sends, buffers back to the ring, and the recvs
// that waited for them.
static void end_round(void)
{
    while (dirty) {
        struct conn *c = dirty;
        dirty = c->dirty_next;
        c->dirty = false;
        if (c->closing)
            conn_maybe_free(c);
        else if (!c->send_busy && c->head >= 0)
            conn_send(c);
    }
    recycle_flush();
    if (held < nbufs) {
        while (starved) {
            struct conn *c = starved;
            starved = c->starved_next;
            c->starved = false;
            if (c->closing)
                conn_maybe_free(c);
            else
                conn_resume(c);
        }
    }
}

static void setup_ring(void)
{
    struct io_uring_params p = {
        .flags = IORING_SETUP_CQSIZE | IORING_SETUP_SUBMIT_ALL | IORING_SETUP_SINGLE_ISSUER |
                 IORING_SETUP_DEFER_TASKRUN,
        .cq_entries = CQ_ENTRIES,
    };
    bool defer = true;
    int r = io_uring_queue_init_params(SQ_ENTRIES, &ring, &p);
    if (r == -EINVAL) { // before 6.1
        defer = false;
        p = (struct io_uring_params){
            .flags = IORING_SETUP_CQSIZE | IORING_SETUP_SUBMIT_ALL | IORING_SETUP_COOP_TASKRUN,
            .cq_entries = CQ_ENTRIES,
        };
        r = io_uring_queue_init_params(SQ_ENTRIES, &ring, &p);
    }
    if (r == -EINVAL) { // before 5.19
        p = (struct io_uring_params){.flags = IORING_SETUP_CQSIZE, .cq_entries = CQ_ENTRIES};
        r = io_uring_queue_init_params(SQ_ENTRIES, &ring, &p);
    }
    if (r < 0) {
        errno = -r;
        die("io_uring_queue_init");
    }
    // The completions of a bundle are read off the ring's slots, which is safe only while
    // nothing completes between two rounds: DEFER_TASKRUN.
    bundles = bundles && defer && (p.features & IORING_FEAT_RECVSEND_BUNDLE);
    (void)io_uring_register_ring_fd(
        &ring); // an optimisation; without it io_uring_enter takes the fd
    // The table may not be larger than RLIMIT_NOFILE: direct descriptors count as open files.
    struct rlimit nofile;
    unsigned nfiles = MAX_FILES;
    if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nfiles)
        nfiles = (unsigned)nofile.rlim_cur;
    if (direct && io_uring_register_files_sparse(&ring, nfiles) < 0)
        direct = false;

    size_t ring_bytes = (size_t)nbufs * sizeof(struct io_uring_buf);
    br = mmap(NULL, ring_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    // Touched now, so that the pool is in the RSS from the start (the idle-memory row).
    bufs = mmap(NULL, (size_t)nbufs * buf_size, PROT_READ | PROT_WRITE,
                MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    buf_slot = calloc(nbufs, sizeof(*buf_slot));
    buf_len = calloc(nbufs, sizeof(*buf_len));
    buf_next = calloc(nbufs, sizeof(*buf_next));
    recycle_bids = calloc(nbufs, sizeof(*recycle_bids));
    if (br == MAP_FAILED || bufs == MAP_FAILED || !buf_slot || !buf_len || !buf_next ||
        !recycle_bids)
        die("buffer pool");
    struct io_uring_buf_reg reg = {
        .ring_addr = (uint64_t)(uintptr_t)br, .ring_entries = nbufs, .bgid = BGID};
    r = io_uring_register_buf_ring(&ring, &reg, 0);
    if (r < 0) {
        errno = -r;
        die("io_uring_register_buf_ring (kernel 5.19 or later needed)");
    }
    io_uring_buf_ring_init(br);
    held = nbufs;
    for (unsigned i = 0; i < nbufs; i++)
        recycle((int)i);
    recycle_flush();
}

static unsigned parse_pow2(const char *s, unsigned min, unsigned max)
{
    char *end;
    unsigned long n = strtoul(s, &end, 10);
    if (end == s || *end || n < min || n > max || (n & (n - 1))) {
        fprintf(stderr, "uring-echo: '%s': a power of two from %u to %u\n", s, min, max);
        exit(2);
    }
    return (unsigned)n;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        BASELINE_LONG_OPTIONS,
        {"no-bundle", no_argument, NULL, 'B'},
        {"no-direct", no_argument, NULL, 'D'},
        {"bufs", required_argument, NULL, 'n'},
        {"buf-size", required_argument, NULL, 's'},
        {0},
    };
    struct baseline_args args = {0};
    int opt;
    baseline_name = "uring-echo";
    bundles = direct = true;
    while ((opt = getopt_long(argc, argv, BASELINE_SHORT_OPTIONS, opts, NULL)) != -1) {
        if (opt == 'B')
            bundles = false;
        else if (opt == 'D')
            direct = false;
        else if (opt == 'n')
            nbufs = parse_pow2(optarg, 16, 32768); // the ring's bids are 16 bits
        else if (opt == 's')
            buf_size = parse_pow2(optarg, 512, 1u << 20);
        else
            baseline_option(opt, &args, usage);
    }
    baseline_check_args(argc, &args, NULL, usage);

    int sfd = baseline_signalfd();
    lfd = baseline_listen(args.addr, args.port);
    int one = 1;
    // Accepted sockets inherit it (Linux copies the listener's TCP options).
    if (setsockopt(lfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0)
        die("setsockopt(TCP_NODELAY)");
    // io_uring waits for connections itself; an O_NONBLOCK listener would make it fail instead.
    if (fcntl(lfd, F_SETFL, fcntl(lfd, F_GETFL) & ~O_NONBLOCK) < 0)
        die("fcntl(listener)");
    setup_ring();
    if (getenv("URING_ECHO_VERBOSE"))
        fprintf(stderr, "uring-echo: bundles %s, direct descriptors %s, %u x %u B buffers\n",
                bundles ? "on" : "off", direct ? "on" : "off", nbufs, buf_size);

    struct io_uring_sqe *sqe = get_sqe();
    io_uring_prep_poll_add(sqe, sfd, POLLIN);
    io_uring_sqe_set_data64(sqe, TAG_SIGNAL);
    arm_accept();
    baseline_announce(lfd);

    bool running = true;
    while (running) {
        int r = io_uring_submit_and_wait(&ring, 1);
        if (r < 0 && r != -EINTR && r != -EAGAIN && r != -EBUSY) {
            errno = -r;
            die("io_uring_submit_and_wait");
        }
        struct io_uring_cqe *cqe;
        unsigned head, seen = 0;
        io_uring_for_each_cqe(&ring, head, cqe)
        {
            seen++;
            uint64_t ud = cqe->user_data;
            struct conn *c = (struct conn *)(uintptr_t)(ud & ~(uint64_t)OP_MASK);
            switch (ud & OP_MASK) {
            case OP_RECV:
                on_recv(c, cqe->res, cqe->flags);
                break;
            case OP_SEND:
                on_send(c, cqe->res);
                break;
            default:
                if (ud == TAG_ACCEPT)
                    on_accept(cqe->res, cqe->flags);
                else if (ud == TAG_ACCEPT_RESUME)
                    arm_accept();
                else if (ud == TAG_SIGNAL)
                    running = false;
            }
        }
        io_uring_cq_advance(&ring, seen);
        end_round();
    }

    while (conns) { // the kernel drops what is in flight with the ring
        struct conn *c = conns;
        conns = c->next;
        if (!direct)
            close(c->fd);
        free(c);
    }
    io_uring_queue_exit(&ring);
    close(lfd);
    close(sfd);
    return 0;
}
