// SPDX-License-Identifier: MIT
// openssl-tls-echo: a single-threaded OpenSSL 3 TLS echo server, the baseline that
// `ringsock-echo --tls` is measured against (scripts/bench-tls). It drives OpenSSL the way
// nginx does: non-blocking sockets with TCP_NODELAY, one edge-triggered epoll registration
// per connection (EPOLLIN | EPOLLOUT | EPOLLRDHUP), readiness kept in flags that only a
// WANT_READ / WANT_WRITE clears, the socket BIO (SSL_set_fd), read-ahead on,
// SSL_MODE_RELEASE_BUFFERS on (nginx sets it unconditionally; --keep-buffers turns it off)
// and no internal session store (nginx's default `ssl_session_cache none`).
//
//   openssl-tls-echo [--port P] [--addr A] [--cert PEM] [--keep-buffers]
//
// Echo: every byte comes back in order. Each connection has one 16 KiB buffer: SSL_read
// fills it (at most one record), SSL_write sends it back, and the connection is not read
// again until that write has completed (back-pressure: a peer that does not read stops
// being read, and nothing grows beyond that buffer and OpenSSL's own record buffers). A
// retried SSL_write passes the same buffer and length. SSL_read and SSL_write may each
// want either direction (TLS 1.3 tickets and key updates): each remembers which readiness
// it waits for (a client's TLS 1.2 renegotiation is refused: OpenSSL 3's default). A
// connection still readable after READS_PER_TURN echoes goes to the back of a queue, so
// that one busy peer cannot starve the others.
//
// Certificate: --cert loads a PEM file holding the chain and then the private key (as
// ringsock-echo's --cert); without it a self-signed ECDSA P-256 certificate is generated at
// start, as ringsock-echo's engine does. TLS 1.2 and 1.3, OpenSSL's default ciphers.
// Prints "listening on PORT" once bound (--port 0: an ephemeral port); SIGINT/SIGTERM stop
// it (exit status 0).

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "baseline.h"

#define BUF_SIZE       16384 // one TLS record's plaintext
#define MAX_EVENTS     256
#define READS_PER_TURN 16

// Which readiness an SSL call that could not finish waits for.
enum wait { WAIT_IN, WAIT_OUT };

struct conn {
    int fd;
    SSL *ssl;
    bool handshaken;
    bool readable, writable; // edge-triggered readiness, cleared by WANT_READ / WANT_WRITE
    bool queued;             // on the run queue
    enum wait hs_wait, rd_wait, wr_wait;
    size_t out_off, out_len;  // buf[out_off, out_len): echo not yet taken by SSL_write
    struct conn *prev, *next; // every live connection, so shutdown can close them
    struct conn *q_next;
    unsigned char buf[BUF_SIZE];
};

static int listen_tag, signal_tag; // epoll_event.data.ptr of the two other fds
static struct conn *conns;
static struct conn *q_head, *q_tail; // connections with work left after their turn
static int epfd = -1;
static SSL_CTX *ctx;

static void die_ssl(const char *what)
{
    fprintf(stderr, "openssl-tls-echo: %s\n", what);
    ERR_print_errors_fp(stderr);
    exit(1);
}

static void usage(FILE *f)
{
    fprintf(f, "usage: openssl-tls-echo [--port P] [--addr 127.0.0.1] [--cert PEM] "
               "[--keep-buffers]\n");
}

static void conn_close(struct conn *c)
{
    if (c->handshaken)
        SSL_shutdown(c->ssl); // close_notify, best effort: the socket is non-blocking
    SSL_free(c->ssl);
    close(c->fd); // also drops it from the epoll set
    if (c->prev)
        c->prev->next = c->next;
    else
        conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    // A queued connection is only closed from its own turn, after it left the queue.
    free(c);
}

static bool ready_for(const struct conn *c, enum wait w)
{
    return w == WAIT_IN ? c->readable : c->writable;
}

// After an SSL call returned ret <= 0: true when it only has to wait (for *w), false when
// the connection is finished (closed by the peer, or an error).
static bool must_wait(struct conn *c, int ret, enum wait *w)
{
    switch (SSL_get_error(c->ssl, ret)) {
    case SSL_ERROR_WANT_READ:
        c->readable = false;
        *w = WAIT_IN;
        return true;
    case SSL_ERROR_WANT_WRITE:
        c->writable = false;
        *w = WAIT_OUT;
        return true;
    case SSL_ERROR_ZERO_RETURN: // close_notify, or EOF (SSL_OP_IGNORE_UNEXPECTED_EOF)
        return false;
    default: // SSL_ERROR_SYSCALL (reset), SSL_ERROR_SSL (bad record, failed handshake)
        ERR_clear_error();
        return false;
    }
}

static void enqueue(struct conn *c)
{
    c->queued = true;
    c->q_next = NULL;
    if (q_tail)
        q_tail->q_next = c;
    else
        q_head = c;
    q_tail = c;
}

// Runs a connection as far as its readiness allows; closes it when it is finished.
static void conn_run(struct conn *c)
{
    if (!c->handshaken) {
        if (!ready_for(c, c->hs_wait))
            return;
        int r = SSL_do_handshake(c->ssl);
        if (r != 1) {
            if (!must_wait(c, r, &c->hs_wait))
                conn_close(c);
            return;
        }
        c->handshaken = true;
    }
    for (int turn = 0;; turn++) {
        while (c->out_off < c->out_len) {
            if (!ready_for(c, c->wr_wait))
                return; // back-pressure: no read until the echo is out
            int n = SSL_write(c->ssl, c->buf + c->out_off, (int)(c->out_len - c->out_off));
            if (n <= 0) {
                if (!must_wait(c, n, &c->wr_wait))
                    conn_close(c);
                return;
            }
            c->out_off += (size_t)n;
        }
        c->out_off = c->out_len = 0;
        if (!ready_for(c, c->rd_wait))
            return;
        if (turn == READS_PER_TURN) {
            if (!c->queued)
                enqueue(c);
            return;
        }
        int n = SSL_read(c->ssl, c->buf, BUF_SIZE);
        if (n <= 0) {
            if (!must_wait(c, n, &c->rd_wait))
                conn_close(c);
            return;
        }
        c->out_len = (size_t)n;
    }
}

static void accept_ready(int lfd)
{
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return;
            if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO || errno == EPERM)
                continue;
            // Out of fds or memory: the rest stays queued until a connection closes.
            fprintf(stderr, "openssl-tls-echo: accept: %s\n", strerror(errno));
            return;
        }
        int one = 1;
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        // Not zeroed: the buffer's pages are touched only when used.
        struct conn *c = malloc(sizeof(*c));
        SSL *ssl = c ? SSL_new(ctx) : NULL;
        if (!ssl || !SSL_set_fd(ssl, fd)) {
            SSL_free(ssl);
            free(c);
            close(fd);
            ERR_clear_error();
            continue;
        }
        SSL_set_accept_state(ssl);
        // Field by field: a compound literal would zero the buffer too, touching its pages.
        c->fd = fd;
        c->ssl = ssl;
        c->handshaken = c->readable = c->writable = c->queued = false;
        c->hs_wait = c->rd_wait = WAIT_IN;
        c->wr_wait = WAIT_OUT;
        c->out_off = c->out_len = 0;
        c->prev = c->q_next = NULL;
        // Registered once for both directions: the first epoll_wait reports what is ready.
        struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
                                 .data.ptr = c};
        if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
            SSL_free(ssl);
            free(c);
            close(fd);
            continue;
        }
        c->next = conns;
        if (conns)
            conns->prev = c;
        conns = c;
    }
}

// A self-signed ECDSA P-256 certificate (CN=openssl-tls-echo), valid from a day ago.
static void use_generated_certificate(void)
{
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    if (!key || !x)
        die_ssl("cannot generate a P-256 key");
    X509_NAME *name = X509_get_subject_name(x);
    if (!X509_set_version(x, 2) || !ASN1_INTEGER_set(X509_get_serialNumber(x), getpid()) ||
        !X509_gmtime_adj(X509_getm_notBefore(x), -86400) ||
        !X509_gmtime_adj(X509_getm_notAfter(x), 3650L * 86400) || !X509_set_pubkey(x, key) ||
        !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                    (const unsigned char *)"openssl-tls-echo", -1, -1, 0) ||
        !X509_set_issuer_name(x, name) || !X509_sign(x, key, EVP_sha256()))
        die_ssl("cannot make a self-signed certificate");
    if (!SSL_CTX_use_certificate(ctx, x) || !SSL_CTX_use_PrivateKey(ctx, key))
        die_ssl("cannot use the generated certificate");
    X509_free(x);
    EVP_PKEY_free(key);
}

static void setup_ctx(const char *cert, bool keep_buffers)
{
    ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx || !SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION))
        die_ssl("SSL_CTX_new failed");
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_IGNORE_UNEXPECTED_EOF);
    if (!keep_buffers)
        SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_read_ahead(ctx, 1);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    if (!cert) {
        use_generated_certificate();
    } else if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 ||
               SSL_CTX_use_PrivateKey_file(ctx, cert, SSL_FILETYPE_PEM) != 1 ||
               SSL_CTX_check_private_key(ctx) != 1) {
        fprintf(stderr, "openssl-tls-echo: %s: ", cert);
        die_ssl("no usable certificate chain and private key");
    }
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        BASELINE_LONG_OPTIONS,
        {"cert", required_argument, NULL, 'c'},
        {"keep-buffers", no_argument, NULL, 'k'},
        {0},
    };
    struct baseline_args args = {0};
    const char *cert = NULL;
    bool keep_buffers = false;
    int opt;
    baseline_name = "openssl-tls-echo";
    while ((opt = getopt_long(argc, argv, BASELINE_SHORT_OPTIONS "c:k", opts, NULL)) != -1) {
        if (opt == 'c')
            cert = optarg;
        else if (opt == 'k')
            keep_buffers = true;
        else
            baseline_option(opt, &args, usage);
    }
    baseline_check_args(argc, &args, "0", usage);

    int sfd = baseline_signalfd();
    setup_ctx(cert, keep_buffers);
    int lfd = baseline_listen(args.addr, args.port);
    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0)
        die("epoll_create1");
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &signal_tag};
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, sfd, &ev) < 0)
        die("epoll_ctl(signalfd)");
    ev = (struct epoll_event){.events = EPOLLIN, .data.ptr = &listen_tag};
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &ev) < 0)
        die("epoll_ctl(listener)");
    baseline_announce(lfd);

    struct epoll_event events[MAX_EVENTS];
    bool running = true;
    while (running) {
        int n = epoll_wait(epfd, events, MAX_EVENTS, q_head ? 0 : -1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            die("epoll_wait");
        }
        for (int i = 0; i < n; i++) {
            void *p = events[i].data.ptr;
            if (p == &signal_tag) {
                running = false;
            } else if (p == &listen_tag) {
                accept_ready(lfd);
            } else {
                // Each fd is reported at most once per epoll_wait and conn_run only closes
                // its own connection; a queued one stays queued and keeps its turn there.
                struct conn *c = p;
                uint32_t e = events[i].events;
                if (e & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
                    c->readable = true; // the SSL call will see the EOF or the error
                if (e & (EPOLLOUT | EPOLLHUP | EPOLLERR))
                    c->writable = true;
                if (!c->queued)
                    conn_run(c);
            }
        }
        // One turn for each connection queued before this round.
        struct conn *last = q_tail;
        while (running && q_head) {
            struct conn *c = q_head;
            q_head = c->q_next;
            if (!q_head)
                q_tail = NULL;
            c->queued = false;
            conn_run(c);
            if (c == last)
                break;
        }
    }

    while (conns) {
        conns->handshaken = false; // no close_notify on the way out
        conn_close(conns);
    }
    SSL_CTX_free(ctx);
    close(lfd);
    close(sfd);
    close(epfd);
    return 0;
}
