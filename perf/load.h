// SPDX-License-Identifier: MIT
// ringsock-load: what the front end (load.c) shares with its two I/O back ends,
// load_uring.c (TCP and local streams through io_uring) and load_epoll.c (TLS, UDP, and
// streams with --epoll).
#ifndef RINGSOCK_LOAD_H
#define RINGSOCK_LOAD_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>

#define PATTERN_WINDOW  65536 // distinct payload start offsets
#define CONNECT_TIMEOUT 10    // seconds for all connections to be established
#define MAX_SIZE        (64u << 20)
#define MAX_DEPTH       4096
#define URING_IOV       32 // messages one io_uring send carries at most

// --udp: a sockperf-compatible header
#define UDP_HDR      14    // tag(8) flags(2) length(4)
#define UDP_MAX_SIZE 65507 // largest IPv4 UDP payload

enum mode { MODE_PINGPONG, MODE_PIPELINED, MODE_BULK, MODE_CHURN, MODE_IDLE };

struct conn {
    int fd;
    uint32_t id;
    bool connected;
    bool wblocked;     // epoll: last send hit a full socket buffer; wait for EPOLLOUT
    bool rate_waiting; // in the rate limiter's queue
    uint64_t send_idx; // next message whose first byte hasn't been sent
    size_t send_off;   // bytes of message send_idx already sent (0 = not started)
    uint64_t recv_idx; // next message to complete
    size_t recv_off;
    uint64_t recv_mark; // recv_idx when measuring began
    uint64_t allowed;   // --rate: messages this connection may have started
    uint64_t next_try;  // --mode churn: connect no earlier than this (after a failure)
    uint64_t *sent_ns;  // send start time, ring indexed by message % depth
    // --udp: recv_idx counts answered datagrams; sent_ns[k] is 0 while slot k waits in pend.
    uint64_t *seq;      // sequence number of each slot's current datagram
    unsigned char *hdr; // each slot's header, UDP_HDR bytes apart
    uint32_t *pend;     // slots waiting to be sent, in order
    unsigned npend;
    void *ssl; // --tls: the connection's SSL
    // io_uring back end
    bool recv_armed, send_busy;
    uint64_t churn_start; // --mode churn: when this connection's connect was issued
    struct msghdr msg;
    struct iovec *iov; // URING_IOV entries, allocated on first use
};

struct config {
    const char *host;
    const char *port;
    const char *local; // --local PATH
    bool udp;
    int tls; // --tls: 13, --tls12: 12, plain: 0
    bool epoll;
    bool verify;
    bool quiet;
    bool json;
    enum mode mode;
    double timeout_ms; // --udp: a datagram without an answer this long is lost
    unsigned conns;
    size_t size;
    unsigned depth;
    double seconds;
    double warmup;
    double rate; // messages (churn: connections) per second in all, 0 = unlimited
    int server_pid;
    unsigned threads; // load threads, each with its share of the connections
};

extern struct config cfg;
extern unsigned char *pattern;
// Each load thread's own: its clock, counters and latency samples (merged at the end).
extern _Thread_local bool measuring;
extern _Thread_local uint64_t msgs_done;
extern _Thread_local uint64_t udp_lost, udp_late;

void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
void die(const char *what) __attribute__((noreturn));
uint64_t now_ns(void);
const unsigned char *payload(const struct conn *c, uint64_t msg);
void record_rtt(uint64_t ns);

// The first message index c may not send yet: the window (depth), --rate and --mode idle
// (one message each) all limit it. A connection held back by --rate is queued and resumed
// through rate_resume() once tokens are there.
uint64_t send_limit(struct conn *c);
bool has_to_send(struct conn *c);
// --rate: takes one token, or queues c and returns false.
bool rate_take(struct conn *c);
// Checks echoed bytes and counts completed messages.
void consume(struct conn *c, const unsigned char *p, size_t len, uint64_t t);

// Connection set-up shared by the back ends.
struct addrinfo *resolve(void);
void local_connect(struct conn *c);
bool inet_connect(struct conn *c, const struct addrinfo *ai);
void connect_all(struct conn *conns);

// The front end's clock, one per load thread: call after each wait with the current time.
// Switches from warmup to measuring, prints the progress line, feeds the rate limiter.
// Returns false when the run is over.
bool tick(uint64_t t);
// Nanoseconds until tick() has something to do.
uint64_t tick_wait_ns(uint64_t t);
// The back end's way of sending for conns the rate limiter lets go.
extern _Thread_local void (*rate_resume)(struct conn *c);

// Back ends: run the calling thread's n connections. uring_run returns false when io_uring
// cannot be used (then epoll runs).
bool uring_run(struct conn *conns, unsigned n);
// Releases the thread's ring and buffers after a uring_run that returned true.
void uring_done(void);
void epoll_run(struct conn *conns, unsigned n);
void tls_connect_all(struct conn *conns);
void tls_close_all(struct conn *conns);
extern const bool have_tls;

#endif
