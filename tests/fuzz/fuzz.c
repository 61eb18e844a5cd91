#include "fuzz.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* ---- input ---------------------------------------------------------------------------- */

uint8_t fz_u8(struct fz_in *in)
{
    if (in->n == 0)
        return 0;
    in->n--;
    return *in->p++;
}

uint16_t fz_u16(struct fz_in *in)
{
    uint16_t hi = fz_u8(in);
    return (uint16_t)(hi << 8 | fz_u8(in));
}

size_t fz_take(struct fz_in *in, size_t want, const uint8_t **out)
{
    size_t n = want < in->n ? want : in->n;
    *out = in->p;
    in->p += n;
    in->n -= n;
    return n;
}

char *fz_str(struct fz_in *in, size_t max)
{
    size_t n = 0;
    while (n < max && n < in->n && in->p[n] != 0)
        n++;
    char *s = malloc(n + 1);
    if (!s)
        abort();
    memcpy(s, in->p, n);
    s[n] = '\0';
    /* the terminating NUL is part of the string's bytes */
    n += n < in->n;
    in->p += n;
    in->n -= n;
    return s;
}

static void drop_line(void *ctx, const char *line)
{
    (void)ctx;
    (void)line;
}

IInstanceLog *fz_log(void)
{
    static IInstanceLog *log;
    if (!log) {
        log = IInstanceLog_Create("fuzz", 0);
        /* Errors are logged whatever the flags: the inputs make thousands a second. */
        if (!getenv("RINGSOCK_LOG"))
            IInstanceLog_SetSink(log, drop_line, NULL);
    }
    return log;
}

/* ---- loop ----------------------------------------------------------------------------- */

static double cpu_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A run past its time is a hang only if the process had the CPU meanwhile: on a machine
 * busy with other work a niced fuzzer may get almost none (then the watchdog waits again,
 * up to 20 times). */
static void watchdog_fired(UTimer *u, ITimer *t)
{
    struct fz_loop *l = fz_container_of(u, struct fz_loop, watchdog_user);
    double cpu = cpu_seconds() - l->cpu_start;
    if (cpu < 0.5 * l->timeout_ms / 1000.0 && ++l->extensions < 20) {
        l->cpu_start = cpu_seconds();
        ITimer_Start(t, l->timeout_ms);
        return;
    }
    fprintf(stderr, "fuzz: the loop did not settle (hang): %u ms, %.1f s of CPU in the last\n",
            l->timeout_ms, cpu);
    abort();
}
static const struct UTimerVtbl watchdog_vtbl = {watchdog_fired};

static void pump_run(UIoExec *e, void *ctx)
{
    (void)ctx;
    struct fz_loop *l = fz_container_of(e, struct fz_loop, pump);
    l->pumping = false;
    if (l->step && !l->step(l->arg))
        l->step = NULL;
    fz_poke(l);
    if (l->step && !l->pumping) {
        l->pumping = true;
        IIoMux_SetExec(l->mux, &l->pump, NULL);
    }
}
static const struct UIoExecVtbl pump_vtbl = {pump_run};

void fz_loop_init(struct fz_loop *l)
{
    memset(l, 0, sizeof(*l));
    l->mux = IIoMux_Create();
    if (!l->mux) {
        fprintf(stderr, "fuzz: IIoMux_Create failed\n");
        abort();
    }
    l->watchdog_user.vtbl = &watchdog_vtbl;
    l->watchdog = ITimer_Create(l->mux, &l->watchdog_user);
    l->pump.vtbl = &pump_vtbl;
}

void fz_loop_fini(struct fz_loop *l)
{
    ITimer_Delete(l->watchdog);
    IIoMux_Delete(l->mux);
}

void fz_run(struct fz_loop *l, bool (*done)(void *), bool (*step)(void *), void *arg,
            unsigned timeout_ms)
{
    l->done = done;
    l->step = step;
    l->arg = arg;
    if (done(arg))
        return;
    if (step && !l->pumping) {
        l->pumping = true;
        IIoMux_SetExec(l->mux, &l->pump, NULL);
    }
    l->timeout_ms = timeout_ms;
    l->extensions = 0;
    l->cpu_start = cpu_seconds();
    ITimer_Start(l->watchdog, timeout_ms);
    IIoMux_Run(l->mux);
    ITimer_Cancel(l->watchdog);
    IIoMux_CancelSetExec(l->mux, &l->pump);
    l->pumping = false;
    l->done = NULL;
    l->step = NULL;
}

void fz_poke(struct fz_loop *l)
{
    if (l->done && l->done(l->arg))
        IIoMux_Terminate(l->mux);
}

/* ---- a recording USocket -------------------------------------------------------------- */

/* The socket's callbacks: none after its SocketShutdown (api.md). */
static struct fz_sock *fs_of(USocket *u)
{
    struct fz_sock *fs = fz_container_of(u, struct fz_sock, user);
    if (fs->ended) {
        fprintf(stderr, "fuzz: a callback after SocketShutdown\n");
        abort();
    }
    return fs;
}

static void fs_recv(struct fz_sock *fs)
{
    if (fs->rlen && fs->sock && !fs->ended) {
        fs->receiving = true;
        ISocket_Recv(fs->sock, fs->rbuf, fs->rlen, fs->partial);
    }
}

static void fs_connected(struct fz_sock *fs)
{
    fs->connected = true;
    if (!fs->receiving)
        fs_recv(fs);
    if (fs->on_connected) /* after the Recv: a Shutdown there must hand its buffer back */
        fs->on_connected(fs);
    fz_poke(fs->loop);
}

static void cb_connect(USocket *u, ISocket *s)
{
    (void)s;
    fs_connected(fs_of(u));
}

static void cb_listen(USocket *u, ISocket *s, const char *addr, uint16_t port)
{
    (void)addr;
    (void)port;
    struct fz_sock *fs = fs_of(u);
    if (fs->child) {
        ISocket_Accept(s, NULL); /* one connection per input */
        return;
    }
    struct fz_sock *ch = malloc(sizeof(*ch));
    if (!ch)
        abort();
    fz_sock_init(ch, fs->loop, fs->rlen, fs->partial);
    ch->on_connected = fs->on_connected;
    ch->on_recv = fs->on_recv;
    ch->ctx = fs->ctx;
    fs->child = ch;
    ISocket_Accept(s, &ch->user);
}

static void cb_accept(USocket *u, ISocket *s)
{
    struct fz_sock *fs = fs_of(u);
    fs->sock = s;
    fs_connected(fs);
}

static void cb_shutdown(USocket *u, ISocket *s, shutdownreason_t reason)
{
    struct fz_sock *fs = fs_of(u);
    fs->sock = s; /* an accepted socket that ended in its handshake */
    fs->ended = true;
    fs->reason = reason;
    fz_poke(fs->loop);
}

static void cb_send_result(USocket *u, ISocket *s)
{
    (void)s;
    struct fz_sock *fs = fs_of(u);
    fs->send_results++;
    if (fs->send_results > fs->sends) {
        fprintf(stderr, "fuzz: %u send results for %u sends\n", fs->send_results, fs->sends);
        abort();
    }
    fz_poke(fs->loop);
}

static void cb_recv_result(USocket *u, ISocket *s, void *buf, size_t len)
{
    (void)s;
    struct fz_sock *fs = fs_of(u);
    if (buf != fs->rbuf || len > fs->rlen || (!fs->partial && len != fs->rlen && len != 0)) {
        fprintf(stderr, "fuzz: receive of %zu bytes into a %zu-byte Recv\n", len, fs->rlen);
        abort();
    }
    fs->receiving = false;
    fs->received += len;
    if (fs->on_recv)
        fs->on_recv(fs, buf, len);
    fs_recv(fs);
    fz_poke(fs->loop);
}

static void cb_recv_canceled(USocket *u, ISocket *s, void *buf)
{
    (void)s;
    struct fz_sock *fs = fs_of(u);
    if (buf != fs->rbuf || !fs->receiving) {
        fprintf(stderr, "fuzz: a receive buffer came back that was not out\n");
        abort();
    }
    fs->receiving = false;
    fz_poke(fs->loop);
}

static void cb_upgrade(USocket *u, ISocket *s)
{
    (void)s;
    fs_connected(fs_of(u));
}

static const USocketVtbl fs_vtbl = {
    .SocketConnectComplete = cb_connect,
    .SocketListenResult = cb_listen,
    .SocketAcceptComplete = cb_accept,
    .SocketShutdown = cb_shutdown,
    .SocketSendResult = cb_send_result,
    .SocketRecvResult = cb_recv_result,
    .SocketRecvCanceled = cb_recv_canceled,
    .SocketUpgradeToTLSComplete = cb_upgrade,
};

void fz_sock_init(struct fz_sock *fs, struct fz_loop *l, size_t rlen, bool partial)
{
    memset(fs, 0, sizeof(*fs));
    fs->user.vtbl = &fs_vtbl;
    fs->loop = l;
    fs->rlen = rlen <= sizeof(fs->rbuf) ? rlen : sizeof(fs->rbuf);
    fs->partial = partial;
}

ISocket *fz_sock_create(struct fz_sock *fs, ISocketProvider *p, ISocketContext *ctx)
{
    fs->sock = ISocketProvider_CreateSocket(p, fs->loop->mux, &fs->user, fz_log(), false, ctx);
    return fs->sock;
}

void fz_sock_free(struct fz_sock *fs)
{
    if (fs->child) {
        fz_sock_free(fs->child);
        free(fs->child);
        fs->child = NULL;
    }
    if (fs->sock)
        ISocket_Delete(fs->sock);
    fs->sock = NULL;
}

/* A self-signed P-256 certificate (CN and DNS name fuzz.ringsock.test, IP 127.0.0.1) and
 * its key: the harnesses' server identity, whichever end serves. */
const char fz_cert_pem[] = "-----BEGIN CERTIFICATE-----\n"
                           "MIIBtjCCAVygAwIBAgIUcJbGaO5G+lBPYrvIqRSXj0SaocowCgYIKoZIzj0EAwIw\n"
                           "HTEbMBkGA1UEAwwSZnV6ei5yaW5nc29jay50ZXN0MCAXDTI2MTIwNDE0MjM1MloY\n"
                           "DzIxMjYxMTEwMTQyMzUyWjAdMRswGQYDVQQDDBJmdXp6LnJpbmdzb2NrLnRlc3Qw\n"
                           "WTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAAQjemhR4Lnx34vCeBP8C8hfRtGB/g9I\n"
                           "GIzAhRWBv/czoAKbtGEzai0ukwuZkwtsjk0EfQ64eb2a4Zxqp0ej4yGao3gwdjAd\n"
                           "BgNVHQ4EFgQUgpcCx/27dJUP+HpRAZrBiUrGCHYwHwYDVR0jBBgwFoAUgpcCx/27\n"
                           "dJUP+HpRAZrBiUrGCHYwDwYDVR0TAQH/BAUwAwEB/zAjBgNVHREEHDAaghJmdXp6\n"
                           "LnJpbmdzb2NrLnRlc3SHBH8AAAEwCgYIKoZIzj0EAwIDSAAwRQIgJo6kOezDgAh/\n"
                           "dNENgxWZfYBb55m/ZiGOv7aUOu7xJZECIQDT110oLe0AgBXNyViX+w8pazsNKOjl\n"
                           "6Rhm4/wOT8on6g==\n"
                           "-----END CERTIFICATE-----\n";
const char fz_key_pem[] = "-----BEGIN PRIVATE KEY-----\n"
                          "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgyU+cOv1VYB2yjJs5\n"
                          "7xFDwrJILC/FiBl5idunA20GjcuhRANCAAQjemhR4Lnx34vCeBP8C8hfRtGB/g9I\n"
                          "GIzAhRWBv/czoAKbtGEzai0ukwuZkwtsjk0EfQ64eb2a4Zxqp0ej4yGa\n"
                          "-----END PRIVATE KEY-----\n";

void fz_set_server_identity(ISocketContext *ctx)
{
    char pem[sizeof(fz_cert_pem) + sizeof(fz_key_pem)];
    snprintf(pem, sizeof(pem), "%s%s", fz_cert_pem, fz_key_pem);
    ISocketContext_SetServerCertificate(ctx, (const uint8_t *)pem, strlen(pem), NULL);
}

/* ---- a raw peer ----------------------------------------------------------------------- */

const char *fz_local_name(const char *what)
{
    static char name[96];
    snprintf(name, sizeof(name), "@ringsock-fuzz-%d-%s", (int)getpid(), what);
    return name;
}

static socklen_t abstract_addr(struct sockaddr_un *sun, const char *name)
{
    memset(sun, 0, sizeof(*sun));
    sun->sun_family = AF_UNIX;
    size_t n = strlen(name); /* "@..." */
    memcpy(sun->sun_path + 1, name + 1, n - 1);
    return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
}

static void raw_init(struct fz_raw *r)
{
    memset(r, 0, sizeof(*r));
    r->fd = r->listen_fd = -1;
}

bool fz_raw_listen(struct fz_raw *r, const char *name)
{
    raw_init(r);
    struct sockaddr_un sun;
    socklen_t len = abstract_addr(&sun, name);
    r->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (r->listen_fd < 0 || bind(r->listen_fd, (struct sockaddr *)&sun, len) < 0 ||
        listen(r->listen_fd, 4) < 0) {
        fz_raw_close(r);
        return false;
    }
    return true;
}

bool fz_raw_connect(struct fz_raw *r, const char *name)
{
    raw_init(r);
    struct sockaddr_un sun;
    socklen_t len = abstract_addr(&sun, name);
    r->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (r->fd < 0 || connect(r->fd, (struct sockaddr *)&sun, len) < 0) {
        fz_raw_close(r);
        return false;
    }
    return true;
}

bool fz_raw_step(struct fz_raw *r)
{
    bool moved = false;
    if (r->fd < 0 && r->listen_fd >= 0) {
        r->fd = accept4(r->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (r->fd < 0)
            return false;
        moved = true;
    }
    if (r->fd < 0)
        return false;
    while (r->out_off < r->out_len) {
        ssize_t n = send(r->fd, r->out + r->out_off, r->out_len - r->out_off, MSG_NOSIGNAL);
        if (n <= 0)
            break;
        r->out_off += (size_t)n;
        moved = true;
    }
    if (r->eof && !r->eof_sent && r->out_off == r->out_len) {
        shutdown(r->fd, SHUT_WR);
        r->eof_sent = true;
        moved = true;
    }
    uint8_t sink[16384];
    while (r->drain && !r->peer_closed) {
        ssize_t n = recv(r->fd, sink, sizeof(sink), 0);
        if (n > 0) {
            r->in_bytes += (size_t)n;
            moved = true;
        } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
            r->peer_closed = true;
            moved = true;
        } else {
            break;
        }
    }
    return moved;
}

void fz_raw_close(struct fz_raw *r)
{
    if (r->fd >= 0)
        close(r->fd);
    if (r->listen_fd >= 0)
        close(r->listen_fd);
    r->fd = r->listen_fd = -1;
}
