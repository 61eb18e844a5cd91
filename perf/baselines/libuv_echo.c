// SPDX-License-Identifier: MIT
// libuv-echo: a single-threaded libuv TCP echo server, the second baseline ringsock-echo is
// measured against. The same behaviour as ringsock-echo and epoll-echo: every byte goes back
// in order; TCP_NODELAY; a connection whose output could not all be written is not read until
// it has drained (backpressure, so memory per connection stays bounded by one read).
//
// The usual libuv way, no tricks: reads land in one shared 64 KiB buffer (libuv calls
// alloc_cb, read() and read_cb back to back, so the buffer is free again when read_cb
// returns); uv_try_write sends what the socket takes, the rest is copied and queued with
// uv_write, and reading stops until that write completes.
//
//   libuv-echo --port P [--addr 127.0.0.1]     prints "listening on PORT"; SIGINT/SIGTERM stop it

#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#define READ_BUF_SIZE (64 * 1024)

struct conn {
    uv_tcp_t tcp; // first: the handle's address is the conn's
    uv_write_t wr;
    char *out; // the part of one read the socket did not take, while it is written
};

static uv_loop_t *loop;
static uv_tcp_t listener;
static uv_signal_t sigint, sigterm;
static char rbuf[READ_BUF_SIZE];

static void check(int rc, const char *what)
{
    if (rc < 0) {
        fprintf(stderr, "libuv-echo: %s: %s\n", what, uv_strerror(rc));
        exit(1);
    }
}

static void on_close(uv_handle_t *h)
{
    struct conn *c = h->data;
    if (c) {
        free(c->out);
        free(c);
    }
}

static void conn_close(struct conn *c)
{
    if (!uv_is_closing((uv_handle_t *)&c->tcp))
        uv_close((uv_handle_t *)&c->tcp, on_close);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    (void)suggested;
    *buf = uv_buf_init(rbuf, sizeof(rbuf));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static void on_write(uv_write_t *wr, int status)
{
    struct conn *c = wr->data;
    free(c->out);
    c->out = NULL;
    if (status < 0 || uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) < 0)
        conn_close(c);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct conn *c = s->data;
    if (nread < 0) { // UV_EOF, ECONNRESET, ...
        conn_close(c);
        return;
    }
    if (nread == 0)
        return; // EAGAIN
    uv_buf_t b = uv_buf_init(buf->base, (unsigned)nread);
    int n = uv_try_write(s, &b, 1);
    if (n == nread)
        return;
    if (n < 0 && n != UV_EAGAIN) {
        conn_close(c);
        return;
    }
    if (n < 0)
        n = 0;
    // The peer is not keeping up: queue the rest and stop reading until it is written.
    size_t rest = (size_t)nread - (size_t)n;
    if (!(c->out = malloc(rest))) {
        conn_close(c);
        return;
    }
    memcpy(c->out, buf->base + n, rest);
    b = uv_buf_init(c->out, (unsigned)rest);
    c->wr.data = c;
    if (uv_write(&c->wr, s, &b, 1, on_write) < 0 || uv_read_stop(s) < 0)
        conn_close(c);
}

static void on_connection(uv_stream_t *server, int status)
{
    if (status < 0) {
        fprintf(stderr, "libuv-echo: accept: %s\n", uv_strerror(status));
        return;
    }
    struct conn *c = calloc(1, sizeof(*c));
    if (!c)
        return; // stays in the backlog; libuv retries on the next event
    uv_tcp_init(loop, &c->tcp);
    c->tcp.data = c;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) < 0) {
        uv_close((uv_handle_t *)&c->tcp, on_close);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) < 0)
        conn_close(c);
}

static void close_any(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, on_close);
}

static void on_signal(uv_signal_t *sig, int signum)
{
    (void)sig;
    (void)signum;
    uv_walk(loop, close_any, NULL); // the loop ends once every handle is closed
}

static void usage(FILE *f)
{
    fprintf(f, "usage: libuv-echo --port P [--addr 127.0.0.1]\n");
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"port", required_argument, NULL, 'p'},
        {"addr", required_argument, NULL, 'a'},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    const char *addr = "127.0.0.1";
    const char *port = NULL;
    int opt;
    while ((opt = getopt_long(argc, argv, "p:a:h", opts, NULL)) != -1) {
        switch (opt) {
        case 'p':
            port = optarg;
            break;
        case 'a':
            addr = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (!port || optind != argc) {
        usage(stderr);
        return 2;
    }
    char *end;
    long pnum = strtol(port, &end, 10);
    if (*end || end == port || pnum < 0 || pnum > 65535) {
        fprintf(stderr, "libuv-echo: bad port '%s'\n", port);
        return 2;
    }

    signal(SIGPIPE, SIG_IGN); // a peer that is gone shows up as EPIPE from write
    loop = uv_default_loop();
    struct sockaddr_storage ss;
    if (uv_ip4_addr(addr, (int)pnum, (struct sockaddr_in *)&ss) < 0)
        check(uv_ip6_addr(addr, (int)pnum, (struct sockaddr_in6 *)&ss), addr);
    check(uv_tcp_init(loop, &listener), "uv_tcp_init");
    listener.data = NULL; // on_close frees only connections
    check(uv_tcp_bind(&listener, (struct sockaddr *)&ss, 0), "bind");
    check(uv_listen((uv_stream_t *)&listener, SOMAXCONN, on_connection), "listen");
    check(uv_signal_init(loop, &sigint), "uv_signal_init");
    check(uv_signal_init(loop, &sigterm), "uv_signal_init");
    sigint.data = sigterm.data = NULL;
    check(uv_signal_start(&sigint, on_signal, SIGINT), "uv_signal_start");
    check(uv_signal_start(&sigterm, on_signal, SIGTERM), "uv_signal_start");

    int len = sizeof(ss);
    check(uv_tcp_getsockname(&listener, (struct sockaddr *)&ss, &len), "getsockname");
    int bound = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                               : ((struct sockaddr_in *)&ss)->sin_port);
    printf("listening on %d\n", bound);
    fflush(stdout);

    uv_run(loop, UV_RUN_DEFAULT);
    check(uv_loop_close(loop), "uv_loop_close");
    return 0;
}
