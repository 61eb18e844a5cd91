// SPDX-License-Identifier: MIT
// epoll-echo: a plain single-threaded epoll TCP echo server, the baseline that ringsock's echo
// examples are measured against. Level-triggered, no tricks: one shared 64 KiB read buffer,
// per-connection pending output when the peer is slow, and no reading while output is pending
// (backpressure, so memory per connection stays bounded by one read).

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
#include <time.h>
#include <unistd.h>

#include "baseline.h"

#define READ_BUF_SIZE   (64 * 1024)
#define MAX_EVENTS      256
#define READS_PER_EVENT 16  // fairness: one busy peer must not starve the others
#define ACCEPT_BACKOFF  100 // ms the listener stays paused after running out of fds

struct conn {
    int fd;
    bool want_out; // registered for EPOLLOUT instead of EPOLLIN
    char *out;     // pending output, at most one read's worth
    size_t out_off;
    size_t out_len;
    struct conn *prev, *next;
};

// epoll_event.data.ptr for the two non-connection fds; connections use their struct conn.
static int listen_tag, signal_tag;

static struct conn *conns; // all live connections, so shutdown can close them
static int epfd = -1;
static char rbuf[READ_BUF_SIZE];

static void usage(FILE *f)
{
    fprintf(f, "usage: epoll-echo --port P [--addr 127.0.0.1]\n");
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void conn_close(struct conn *c)
{
    // close() drops the fd from the epoll set; nothing else can refer to it.
    close(c->fd);
    if (c->prev)
        c->prev->next = c->next;
    else
        conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    free(c->out);
    free(c);
}

static int conn_set_interest(struct conn *c, bool want_out)
{
    struct epoll_event ev = {.events = want_out ? EPOLLOUT : EPOLLIN, .data.ptr = c};

    if (c->want_out == want_out)
        return 0;
    if (epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev) < 0)
        return -1;
    c->want_out = want_out;
    return 0;
}

// Send as much of buf as the socket takes. Returns bytes sent, or -1 on a fatal error.
static ssize_t send_some(int fd, const char *buf, size_t len)
{
    size_t done = 0;

    while (done < len) {
        ssize_t n = send(fd, buf + done, len - done, MSG_NOSIGNAL);
        if (n > 0) {
            done += (size_t)n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            break;
        } else {
            return -1;
        }
    }
    return (ssize_t)done;
}

// Returns false when the connection was closed.
static bool conn_flush(struct conn *c)
{
    ssize_t n = send_some(c->fd, c->out + c->out_off, c->out_len - c->out_off);

    if (n < 0) {
        conn_close(c);
        return false;
    }
    c->out_off += (size_t)n;
    if (c->out_off == c->out_len) {
        c->out_off = c->out_len = 0;
        if (conn_set_interest(c, false) < 0) {
            conn_close(c);
            return false;
        }
    }
    return true;
}

static void conn_readable(struct conn *c)
{
    for (int i = 0; i < READS_PER_EVENT; i++) {
        ssize_t n = read(c->fd, rbuf, sizeof(rbuf));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return;
            conn_close(c); // ECONNRESET, ETIMEDOUT, ...
            return;
        }
        if (n == 0) {
            // Peer closed; nothing is pending (we only read with an empty out buffer).
            conn_close(c);
            return;
        }
        ssize_t sent = send_some(c->fd, rbuf, (size_t)n);
        if (sent < 0) {
            conn_close(c);
            return;
        }
        if (sent < n) {
            // Peer is not keeping up: park the rest and stop reading until it drains.
            if (!c->out && !(c->out = malloc(READ_BUF_SIZE))) {
                conn_close(c);
                return;
            }
            c->out_len = (size_t)(n - sent);
            c->out_off = 0;
            memcpy(c->out, rbuf + sent, c->out_len);
            if (conn_set_interest(c, true) < 0)
                conn_close(c);
            return;
        }
        if ((size_t)n < sizeof(rbuf))
            return; // drained for now; level-triggered epoll reports any later data
    }
}

static void conn_event(struct conn *c, uint32_t events)
{
    if (events & EPOLLERR) {
        conn_close(c);
        return;
    }
    // EPOLLHUP without EPOLLERR: let read()/send() see EOF or EPIPE and close normally.
    if (c->want_out) {
        if (events & (EPOLLOUT | EPOLLHUP))
            conn_flush(c);
    } else if (events & (EPOLLIN | EPOLLHUP)) {
        conn_readable(c);
    }
}

static int listener_pause(int lfd)
{
    return epoll_ctl(epfd, EPOLL_CTL_DEL, lfd, NULL);
}

static int listener_resume(int lfd)
{
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &listen_tag};
    return epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &ev);
}

// Returns true when the listener had to be paused (out of fds or memory).
static bool accept_ready(int lfd)
{
    for (int i = 0; i < MAX_EVENTS; i++) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            switch (errno) {
            case EAGAIN:
#if EAGAIN != EWOULDBLOCK
            case EWOULDBLOCK:
#endif
                return false;
            case EINTR:
            case ECONNABORTED:
            case EPROTO:
            case EPERM:
                continue; // that one connection is gone; others may be queued
            case EMFILE:
            case ENFILE:
            case ENOBUFS:
            case ENOMEM:
                // The pending connection stays queued and the listener stays readable, so
                // polling it now would spin. Stop watching it for a while instead.
                fprintf(stderr, "epoll-echo: accept: %s, pausing %d ms\n", strerror(errno),
                        ACCEPT_BACKOFF);
                if (listener_pause(lfd) < 0)
                    die("epoll_ctl(listener)");
                return true;
            default:
                die("accept4");
            }
        }

        int one = 1;
        // Failure here only costs latency; keep the connection.
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));

        struct conn *c = calloc(1, sizeof(*c));
        if (!c) {
            close(fd);
            continue;
        }
        c->fd = fd;
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
            close(fd);
            free(c);
            continue;
        }
        c->next = conns;
        if (conns)
            conns->prev = c;
        conns = c;
    }
    return false; // more may be queued; level-triggered epoll will say so
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {BASELINE_LONG_OPTIONS, {0}};
    struct baseline_args args = {0};
    int opt;
    baseline_name = "epoll-echo";

    while ((opt = getopt_long(argc, argv, BASELINE_SHORT_OPTIONS, opts, NULL)) != -1)
        baseline_option(opt, &args, usage);
    baseline_check_args(argc, &args, NULL, usage);

    int sfd = baseline_signalfd();
    int lfd = baseline_listen(args.addr, args.port);

    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0)
        die("epoll_create1");
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &signal_tag};
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, sfd, &ev) < 0)
        die("epoll_ctl(signalfd)");
    if (listener_resume(lfd) < 0)
        die("epoll_ctl(listener)");

    baseline_announce(lfd);

    struct epoll_event events[MAX_EVENTS];
    int64_t resume_at = -1; // when a paused listener goes back into the set
    bool running = true;

    while (running) {
        int timeout = -1;
        if (resume_at >= 0) {
            int64_t left = resume_at - now_ms();
            timeout = left > 0 ? (int)left : 0;
        }
        int n = epoll_wait(epfd, events, MAX_EVENTS, timeout);
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
                if (accept_ready(lfd))
                    resume_at = now_ms() + ACCEPT_BACKOFF;
            } else {
                // Safe to free conns inside the batch: each fd is reported at most once per
                // epoll_wait() and a handler only ever closes its own conn.
                conn_event(p, events[i].events);
            }
        }
        if (resume_at >= 0 && now_ms() >= resume_at) {
            if (listener_resume(lfd) < 0)
                die("epoll_ctl(listener)");
            resume_at = -1;
        }
    }

    while (conns)
        conn_close(conns);
    close(lfd);
    close(sfd);
    close(epfd);
    return 0;
}
