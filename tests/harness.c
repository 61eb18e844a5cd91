#include "harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

int h_in_api;

static const char *const kind_names[] = {
    "ConnectComplete", "BindResult", "ListenResult",   "AcceptComplete", "Shutdown",
    "SendResult",      "RecvResult", "RecvFromResult", "RecvCanceled",
};

const char *h_kind_name(enum h_kind k)
{
    return kind_names[k];
}

/* ---- environment ------------------------------------------------------------------- */

static void log_sink(void *ctx, const char *line)
{
    struct h_env *env = ctx;
    if (getenv("RINGSOCK_TEST_LOG")) /* the whole log, for a test that hangs */
        fprintf(stderr, "%s\n", line);
    snprintf(env->log_lines[env->nlog % 64], sizeof(env->log_lines[0]), "%s", line);
    env->nlog++;
}

bool h_log_contains(struct h_env *env, const char *needle)
{
    unsigned n = env->nlog < 64 ? env->nlog : 64;
    for (unsigned i = 0; i < n; i++)
        if (strstr(env->log_lines[i], needle))
            return true;
    return false;
}

const char *h_logs(struct h_env *env)
{
    static char out[64 * 260];
    size_t o = 0;
    unsigned first = env->nlog > 64 ? env->nlog - 64 : 0;
    for (unsigned i = first; i < env->nlog && o < sizeof(out) - 260; i++)
        o += (size_t)snprintf(out + o, sizeof(out) - o, "%s\n", env->log_lines[i % 64]);
    out[o] = 0;
    return out;
}

static void check_cond(struct h_env *env)
{
    if (env->cond && env->cond(env, env->cond_arg))
        IIoMux_Terminate(env->mux);
}

static void watchdog_fired(UTimer *u, ITimer *t)
{
    (void)t;
    struct h_env *env = h_container_of(u, struct h_env, watchdog_user);
    env->timed_out = true;
    IIoMux_Terminate(env->mux);
}

static void poll_fired(UTimer *u, ITimer *t)
{
    struct h_env *env = h_container_of(u, struct h_env, poll_user);
    check_cond(env);
    ITimer_Start(t, 2);
}

static const struct UTimerVtbl watchdog_vtbl = {watchdog_fired};
static const struct UTimerVtbl poll_vtbl = {poll_fired};

void h_env_init(struct h_env *env)
{
    memset(env, 0, sizeof(*env));
    env->mux = IIoMux_Create();
    cr_assert_not_null(env->mux, "IIoMux_Create failed");
    env->tcp = CreateTCPSocketProvider();
    env->log = IInstanceLog_Create("test", LOG_DTLS);
    IInstanceLog_SetSink(env->log, log_sink, env);
    env->watchdog_user.vtbl = &watchdog_vtbl;
    env->poll_user.vtbl = &poll_vtbl;
    env->watchdog = ITimer_Create(env->mux, &env->watchdog_user);
    env->poll = ITimer_Create(env->mux, &env->poll_user);
}

void h_env_fini(struct h_env *env)
{
    ITimer_Delete(env->watchdog);
    ITimer_Delete(env->poll);
    ISocketProvider_Delete(env->tcp);
    IIoMux_Delete(env->mux);
    IInstanceLog_Delete(env->log);
    h_check_leaks();
}

bool h_run_until(struct h_env *env, bool (*cond)(struct h_env *, void *), void *arg,
                 unsigned timeout_ms)
{
    env->cond = cond;
    env->cond_arg = arg;
    env->timed_out = false;
    if (cond && cond(env, arg)) {
        env->cond = NULL;
        return true;
    }
    ITimer_Start(env->watchdog, timeout_ms);
    ITimer_Start(env->poll, 2);
    IIoMux_Run(env->mux);
    ITimer_Cancel(env->watchdog);
    ITimer_Cancel(env->poll);
    env->cond = NULL;
    return cond ? cond(env, arg) : true;
}

void h_run_for(struct h_env *env, unsigned ms)
{
    h_run_until(env, NULL, NULL, ms);
}

size_t h_delete_accepted(struct h_sock *l)
{
    size_t held = 0;
    for (size_t i = 0; i < l->naccepted; i++) {
        struct h_sock *ch = l->accepted[i];
        held += !ch->sock && !ch->deleted;
        if (ch->sock)
            CALL(ISocket_Delete(ch->sock));
        ch->sock = NULL;
    }
    return held;
}

/* ---- recording socket ------------------------------------------------------------------ */

static struct h_sock *hs_of(USocket *u)
{
    return h_container_of(u, struct h_sock, user);
}

static struct h_event *record(struct h_sock *hs, enum h_kind k, ISocket *s)
{
    cr_assert_eq(h_in_api, 0, "%s ran inside an API call", h_kind_name(k));
    if (hs->nev == hs->cap) {
        hs->cap = hs->cap ? hs->cap * 2 : 16;
        hs->ev = realloc(hs->ev, hs->cap * sizeof(*hs->ev));
        cr_assert_not_null(hs->ev);
    }
    struct h_event *e = &hs->ev[hs->nev++];
    memset(e, 0, sizeof(*e));
    e->kind = k;
    e->sock = s;
    return e;
}

static void done(struct h_sock *hs, struct h_event *e)
{
    if (hs->on_event)
        hs->on_event(hs, e);
    check_cond(hs->env);
}

static void cb_connect(USocket *u, ISocket *s)
{
    struct h_sock *hs = hs_of(u);
    struct h_event *e = record(hs, H_CONNECT_COMPLETE, s);
    if (hs->echo || hs->sink)
        CALL(ISocket_Recv(s, hs->echo_buf, hs->echo_len, true));
    done(hs, e);
}

static void cb_bind(USocket *u, ISocket *s, const char *addr, uint16_t port)
{
    struct h_sock *hs = hs_of(u);
    struct h_event *e = record(hs, H_BIND_RESULT, s);
    snprintf(e->addr, sizeof(e->addr), "%s", addr);
    e->port = port;
    done(hs, e);
}

static const USocketVtbl h_vtbl;

static void cb_listen(USocket *u, ISocket *s, const char *addr, uint16_t port)
{
    struct h_sock *hs = hs_of(u);
    struct h_event *e = record(hs, H_LISTEN_RESULT, s);
    snprintf(e->addr, sizeof(e->addr), "%s", addr);
    e->port = port;
    if (hs->reject) {
        CALL(ISocket_Accept(s, NULL));
    } else {
        struct h_sock *c = h_sock_new(hs->env);
        c->echo = hs->echo;
        c->sink = hs->sink;
        c->collect = hs->collect;
        c->delete_on_shutdown = hs->delete_on_shutdown;
        if (hs->naccepted == hs->accepted_cap) {
            hs->accepted_cap = hs->accepted_cap ? hs->accepted_cap * 2 : 8;
            hs->accepted = realloc(hs->accepted, hs->accepted_cap * sizeof(*hs->accepted));
        }
        hs->accepted[hs->naccepted++] = c;
        CALL(ISocket_Accept(s, &c->user));
    }
    done(hs, e);
}

static void cb_accept(USocket *u, ISocket *s)
{
    struct h_sock *hs = hs_of(u);
    struct h_event *e = record(hs, H_ACCEPT_COMPLETE, s);
    hs->sock = s;
    if (hs->echo || hs->sink)
        CALL(ISocket_Recv(s, hs->echo_buf, hs->echo_len, true));
    done(hs, e);
}

static void cb_shutdown(USocket *u, ISocket *s, shutdownreason_t reason)
{
    struct h_sock *hs = hs_of(u);
    struct h_event *e = record(hs, H_SHUTDOWN, s);
    e->reason = reason;
    if (!hs->sock && !hs->deleted)
        hs->sock = s; /* accepted, but it failed before SocketAcceptComplete: still ours */
    if (hs->delete_on_shutdown) {
        CALL(ISocket_Delete(s));
        hs->sock = NULL;
        hs->deleted = true;
    }
    done(hs, e);
}

static void cb_send(USocket *u, ISocket *s)
{
    struct h_sock *hs = hs_of(u);
    done(hs, record(hs, H_SEND_RESULT, s));
}

static void cb_recv(USocket *u, ISocket *s, void *buf, size_t len)
{
    struct h_sock *hs = hs_of(u);
    struct h_event *e = record(hs, H_RECV_RESULT, s);
    e->buf = buf;
    e->len = len;
    if (hs->collect) {
        if (hs->data_len + len > hs->data_cap) {
            hs->data_cap = (hs->data_len + len) * 2;
            hs->data = realloc(hs->data, hs->data_cap);
        }
        memcpy(hs->data + hs->data_len, buf, len);
        hs->data_len += len;
    }
    if (hs->echo)
        CALL(ISocket_Send(s, buf, len));
    if ((hs->echo || hs->sink) && !hs->deleted)
        CALL(ISocket_Recv(s, hs->echo_buf, hs->echo_len, true));
    done(hs, e);
}

static void cb_recv_from(USocket *u, ISocket *s, void *buf, size_t len, IPaddr a, uint16_t port)
{
    struct h_sock *hs = hs_of(u);
    struct h_event *e = record(hs, H_RECV_FROM_RESULT, s);
    e->buf = buf;
    e->len = len;
    IPaddr_ToString(&a, e->addr, sizeof(e->addr));
    e->port = port;
    done(hs, e);
}

static void cb_canceled(USocket *u, ISocket *s, void *buf)
{
    struct h_sock *hs = hs_of(u);
    struct h_event *e = record(hs, H_RECV_CANCELED, s);
    e->buf = buf;
    done(hs, e);
}

static const USocketVtbl h_vtbl = {
    .SocketConnectComplete = cb_connect,
    .SocketBindResult = cb_bind,
    .SocketListenResult = cb_listen,
    .SocketAcceptComplete = cb_accept,
    .SocketShutdown = cb_shutdown,
    .SocketSendResult = cb_send,
    .SocketRecvResult = cb_recv,
    .SocketRecvFromResult = cb_recv_from,
    .SocketRecvCanceled = cb_canceled,
};

struct h_sock *h_sock_new(struct h_env *env)
{
    struct h_sock *hs = calloc(1, sizeof(*hs));
    cr_assert_not_null(hs);
    hs->user.vtbl = &h_vtbl;
    hs->env = env;
    hs->echo_len = 65536;
    hs->echo_buf = malloc(hs->echo_len);
    return hs;
}

void h_sock_free(struct h_sock *hs)
{
    if (!hs)
        return;
    if (hs->sock)
        CALL(ISocket_Delete(hs->sock));
    for (size_t i = 0; i < hs->naccepted; i++)
        h_sock_free(hs->accepted[i]);
    free(hs->accepted);
    free(hs->ev);
    free(hs->echo_buf);
    free(hs->data);
    free(hs);
}

ISocket *h_tcp_socket(struct h_env *env, struct h_sock *hs, bool v6)
{
    CALL(hs->sock =
             ISocketProvider_CreateSocket(env->tcp, env->mux, &hs->user, env->log, v6, NULL));
    cr_assert_not_null(hs->sock);
    return hs->sock;
}

size_t h_count(const struct h_sock *hs, enum h_kind k)
{
    size_t n = 0;
    for (size_t i = 0; i < hs->nev; i++)
        n += hs->ev[i].kind == k;
    return n;
}

const struct h_event *h_last(const struct h_sock *hs, enum h_kind k)
{
    for (size_t i = hs->nev; i-- > 0;)
        if (hs->ev[i].kind == k)
            return &hs->ev[i];
    return NULL;
}

bool h_has_shutdown(const struct h_sock *hs)
{
    return h_count(hs, H_SHUTDOWN) > 0;
}

struct wait_arg {
    struct h_sock *hs;
    enum h_kind k;
    size_t n;
};

static bool wait_cond(struct h_env *env, void *arg)
{
    (void)env;
    struct wait_arg *w = arg;
    return h_count(w->hs, w->k) >= w->n;
}

bool h_wait_count(struct h_env *env, struct h_sock *hs, enum h_kind k, size_t n,
                  unsigned timeout_ms)
{
    struct wait_arg w = {hs, k, n};
    return h_run_until(env, wait_cond, &w, timeout_ms);
}

struct accepted_arg {
    struct h_sock *l;
    size_t n;
};

static bool accepted_cond(struct h_env *env, void *arg)
{
    (void)env;
    struct accepted_arg *a = arg;
    if (a->l->naccepted < a->n)
        return false;
    for (size_t i = 0; i < a->n; i++)
        if (!h_count(a->l->accepted[i], H_ACCEPT_COMPLETE))
            return false;
    return true;
}

struct h_sock *h_wait_accepted(struct h_env *env, struct h_sock *listener, size_t n,
                               unsigned timeout_ms)
{
    struct accepted_arg a = {listener, n};
    if (!h_run_until(env, accepted_cond, &a, timeout_ms))
        return NULL;
    return listener->accepted[n - 1];
}

const char *h_dump(const struct h_sock *hs)
{
    static char out[4096];
    size_t o = 0;
    out[0] = '\0';
    for (size_t i = 0; i < hs->nev && o < sizeof(out) - 64; i++) {
        const struct h_event *e = &hs->ev[i];
        o +=
            (size_t)snprintf(out + o, sizeof(out) - o, "%s%s", i ? ", " : "", h_kind_name(e->kind));
        if (e->kind == H_SHUTDOWN)
            o += (size_t)snprintf(out + o, sizeof(out) - o, "(%s)",
                                  SocketShutdownReasonToStr(e->reason));
        else if (e->kind == H_RECV_RESULT)
            o += (size_t)snprintf(out + o, sizeof(out) - o, "(%zu)", e->len);
    }
    return out;
}

uint16_t h_listen(struct h_env *env, struct h_sock *listener, const char *addr)
{
    return h_listen_on(env, env->tcp, NULL, listener, addr);
}

uint16_t h_listen_on(struct h_env *env, ISocketProvider *provider, ISocketContext *ctx,
                     struct h_sock *listener, const char *addr)
{
    bool v6 = addr && strchr(addr, ':');
    CALL(listener->sock =
             ISocketProvider_CreateSocket(provider, env->mux, &listener->user, env->log, v6, ctx));
    cr_assert_not_null(listener->sock);
    CALL(ISocket_Bind(listener->sock, addr, 0));
    CALL(ISocket_Listen(listener->sock));
    char a[64];
    uint16_t port = 0;
    CALL(ISocket_GetLocalAddress(listener->sock, a, sizeof(a), &port));
    cr_assert_neq(port, 0, "listener has no port");
    return port;
}

ISocket *h_connect_on(struct h_env *env, ISocketProvider *provider, ISocketContext *ctx,
                      struct h_sock *client, uint16_t port, const char *serverName)
{
    CALL(client->sock =
             ISocketProvider_CreateSocket(provider, env->mux, &client->user, env->log, false, ctx));
    cr_assert_not_null(client->sock);
    CALL(ISocket_Connect(client->sock, h_addr(port), serverName));
    return client->sock;
}

const char *h_addr(uint16_t port)
{
    static char buf[32];
    snprintf(buf, sizeof(buf), "127.0.0.1:%u", port);
    return buf;
}

void h_expect_abort(void (*scenario)(void), const char *needle)
{
    int p[2];
    cr_assert_eq(pipe(p), 0);
    fflush(NULL);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        close(p[0]);
        dup2(p[1], STDERR_FILENO);
        close(p[1]);
        scenario();
        fprintf(stderr, "scenario returned without aborting\n");
        _exit(0);
    }
    close(p[1]);
    static char out[8192];
    size_t n = 0;
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        struct pollfd pf = {.fd = p[0], .events = POLLIN};
        clock_gettime(CLOCK_MONOTONIC, &t);
        long left = 10000 - ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000);
        if (left <= 0 || poll(&pf, 1, (int)left) <= 0) {
            kill(pid, SIGKILL);
            break;
        }
        ssize_t r = read(p[0], out + n, sizeof(out) - 1 - n);
        if (r <= 0)
            break;
        n += (size_t)r;
        if (n == sizeof(out) - 1)
            break;
    }
    out[n] = '\0';
    close(p[0]);
    int status = 0;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT,
              "child did not abort (status %#x); stderr:\n%s", status, out);
    cr_assert(strstr(out, needle), "abort message lacks \"%s\"; stderr:\n%s", needle, out);
}

/* ---- raw sockets ------------------------------------------------------------------------ */

static socklen_t raw_addr(const char *ip, uint16_t port, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof(*ss));
    struct sockaddr_in *in = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, ip, &in->sin_addr) == 1) {
        in->sin_family = AF_INET;
        in->sin_port = htons(port);
        return sizeof(*in);
    }
    cr_assert_eq(inet_pton(AF_INET6, ip, &in6->sin6_addr), 1, "bad ip %s", ip);
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(port);
    return sizeof(*in6);
}

int h_raw_connect(const char *ip, uint16_t port)
{
    struct sockaddr_storage ss;
    socklen_t len = raw_addr(ip, port, &ss);
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(fd, 0);
    cr_assert_eq(connect(fd, (struct sockaddr *)&ss, len), 0, "connect: %s", strerror(errno));
    return fd;
}

int h_raw_listen(const char *ip, uint16_t *port)
{
    struct sockaddr_storage ss;
    socklen_t len = raw_addr(ip, 0, &ss);
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(fd, 0);
    cr_assert_eq(bind(fd, (struct sockaddr *)&ss, len), 0);
    cr_assert_eq(listen(fd, 128), 0);
    len = sizeof(ss);
    getsockname(fd, (struct sockaddr *)&ss, &len);
    *port = ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
                                          : ((struct sockaddr_in6 *)&ss)->sin6_port);
    return fd;
}

bool h_kernel_has_tls_ulp(void)
{
    uint16_t port = 0;
    int l = h_raw_listen("127.0.0.1", &port);
    int c = h_raw_connect("127.0.0.1", port);
    int s = accept(l, NULL, NULL);
    bool ok = setsockopt(c, SOL_TCP, TCP_ULP, "tls", sizeof("tls")) == 0;
    close(s);
    close(c);
    close(l);
    return ok;
}

void h_raw_reset(int fd)
{
    struct linger l = {.l_onoff = 1, .l_linger = 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
    close(fd);
}

void h_raw_write_all(int fd, const void *buf, size_t len)
{
    const uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        cr_assert_gt(n, 0, "raw write: %s", strerror(errno));
        p += n;
        len -= (size_t)n;
    }
}

size_t h_raw_read_n(int fd, void *buf, size_t len, unsigned timeout_ms)
{
    size_t got = 0;
    while (got < len) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, (int)timeout_ms) <= 0)
            break;
        ssize_t n = recv(fd, (uint8_t *)buf + got, len - got, 0);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    return got;
}

bool h_wait_readable(struct h_env *env, int fd, unsigned timeout_ms)
{
    for (unsigned t = 0; t <= timeout_ms; t += 5) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 0) > 0)
            return true;
        h_run_for(env, 5);
    }
    return false;
}

const uint8_t *h_ctx_fp(ISocketContext *ctx)
{
    size_t len = 99;
    const uint8_t *fp = ISocketContext_GetCertificateFingerprint(ctx, &len);
    cr_assert_not_null(fp);
    cr_assert_eq(len, 32);
    return fp;
}

void h_assert_peer_fp(struct h_sock *hs, const uint8_t want[32])
{
    uint8_t fp[32];
    cr_assert(ISocket_GetPeerCertificateFingerprint(hs->sock, fp), "no peer certificate");
    cr_assert_arr_eq(fp, want, 32);
}

bool h_listener_settled(struct h_env *env, void *arg)
{
    (void)env;
    struct h_sock *l = arg;
    for (size_t i = 0; i < l->naccepted; i++)
        if (!h_count(l->accepted[i], H_ACCEPT_COMPLETE) && !h_has_shutdown(l->accepted[i]))
            return false;
    return true;
}

void h_listener_free(struct h_env *env, struct h_sock *l)
{
    cr_assert(h_run_until(env, h_listener_settled, l, 3000),
              "a connection is stuck in its handshake");
    h_sock_free(l);
}
