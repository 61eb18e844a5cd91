/* One loop per core: several IIoMux on several threads, each with its own listeners on one
 * port (ISocket_BindReuse), sharing providers and a TLS context (docs/threads.md). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"

#define NLOOPS  4
#define NCONN   8 /* clients of each kind per round */
#define MAXID   (5 * NCONN)
#define MSG_MAX (4 + 3000 + MAXID * 317)

/* What every loop and the clients share: providers, the server's TLS context, the ports. */
static struct {
    ISocketProvider *tcp, *tls, *udp;
    ISocketContext *srv_ctx, *cli_ctx;
    uint16_t port_tcp, port_tls, port_udp;
    atomic_int owner[MAXID]; /* the loop (1-based) whose connection carried the id */
} g;

/* ---- a server loop: TCP and TLS echo listeners and a UDP echo socket ------------------ */

struct srv;

struct sconn {
    USocket user;
    struct srv *srv;
    ISocket *s;
    struct sconn *next, **pprev;
    uint8_t hdr[4];
    size_t hdr_len;
    uint8_t buf[4096];
};

struct srv {
    int idx;
    pthread_t th;
    sem_t ready;
    IIoMux *mux;
    ISocket *tcp, *tls, *udp;
    USocket listen_user, udp_user;
    UIoExec stop;
    struct sconn *conns;
    atomic_int accepted;
    uint8_t ubuf[2048];
};

static void conn_free(struct sconn *c)
{
    *c->pprev = c->next;
    if (c->next)
        c->next->pprev = c->pprev;
    if (c->s)
        ISocket_Delete(c->s);
    free(c);
}

static void conn_accept_complete(USocket *self, ISocket *s)
{
    struct sconn *c = container_of(self, struct sconn, user);
    c->s = s;
    ISocket_Recv(s, c->buf, sizeof(c->buf), true);
}

static void conn_recv(USocket *self, ISocket *s, void *buf, size_t len)
{
    struct sconn *c = container_of(self, struct sconn, user);
    size_t take = len < 4 - c->hdr_len ? len : 4 - c->hdr_len;
    memcpy(c->hdr + c->hdr_len, buf, take);
    c->hdr_len += take;
    if (take && c->hdr_len == 4) {
        uint32_t id;
        memcpy(&id, c->hdr, 4);
        if (id < MAXID)
            atomic_store(&g.owner[id], c->srv->idx + 1);
    }
    ISocket_Send(s, buf, len); /* copied: the buffer is free again */
    ISocket_Recv(s, c->buf, sizeof(c->buf), true);
}

static void conn_shutdown(USocket *self, ISocket *s, shutdownreason_t reason)
{
    (void)s;
    (void)reason;
    conn_free(container_of(self, struct sconn, user));
}

static const USocketVtbl conn_vtbl = {
    .SocketAcceptComplete = conn_accept_complete,
    .SocketRecvResult = conn_recv,
    .SocketShutdown = conn_shutdown,
};

static void srv_listen_result(USocket *self, ISocket *s, const char *addr, uint16_t port)
{
    (void)addr;
    (void)port;
    struct srv *v = container_of(self, struct srv, listen_user);
    struct sconn *c = calloc(1, sizeof(*c));
    cr_assert_not_null(c);
    c->user.vtbl = &conn_vtbl;
    c->srv = v;
    c->next = v->conns;
    if (c->next)
        c->next->pprev = &c->next;
    c->pprev = &v->conns;
    v->conns = c;
    atomic_fetch_add(&v->accepted, 1);
    ISocket_Accept(s, &c->user);
}

static void srv_socket_shutdown(USocket *self, ISocket *s, shutdownreason_t reason)
{
    (void)self;
    (void)s;
    cr_assert_fail("a server socket ended: %s", SocketShutdownReasonToStr(reason));
}

static const USocketVtbl listen_vtbl = {
    .SocketListenResult = srv_listen_result,
    .SocketShutdown = srv_socket_shutdown,
};

static void udp_recv_from(USocket *self, ISocket *s, void *buf, size_t len, IPaddr src,
                          uint16_t port)
{
    struct srv *v = container_of(self, struct srv, udp_user);
    ISocket_SendTo(s, buf, len, src, port);
    ISocket_Recv(s, v->ubuf, sizeof(v->ubuf), true);
}

static const USocketVtbl udp_vtbl = {
    .SocketRecvFromResult = udp_recv_from,
    .SocketShutdown = srv_socket_shutdown,
};

/* Runs on the loop's own thread: deletes every socket of the loop and ends it. */
static void srv_stop(UIoExec *self, void *ctx)
{
    (void)ctx;
    struct srv *v = container_of(self, struct srv, stop);
    while (v->conns)
        conn_free(v->conns);
    ISocket_Delete(v->tcp);
    ISocket_Delete(v->tls);
    ISocket_Delete(v->udp);
    IIoMux_Terminate(v->mux);
}

static const struct UIoExecVtbl stop_vtbl = {.IoExec = srv_stop};

static ISocket *srv_bind(struct srv *v, ISocketProvider *p, ISocketContext *ctx, USocket *user,
                         uint16_t port)
{
    ISocket *s = ISocketProvider_CreateSocket(p, v->mux, user, NULL, false, ctx);
    cr_assert_not_null(s);
    ISocket_BindReuse(s, "127.0.0.1", port, true);
    return s;
}

/* The whole life of a loop happens on its thread: made, served, deleted. */
static void *srv_main(void *arg)
{
    struct srv *v = arg;
    v->mux = IIoMux_Create();
    cr_assert_not_null(v->mux);
    v->listen_user.vtbl = &listen_vtbl;
    v->udp_user.vtbl = &udp_vtbl;
    v->stop.vtbl = &stop_vtbl;
    v->tcp = srv_bind(v, g.tcp, NULL, &v->listen_user, g.port_tcp);
    ISocket_Listen(v->tcp);
    v->tls = srv_bind(v, g.tls, g.srv_ctx, &v->listen_user, g.port_tls);
    ISocket_Listen(v->tls);
    v->udp = srv_bind(v, g.udp, NULL, &v->udp_user, g.port_udp);
    ISocket_Recv(v->udp, v->ubuf, sizeof(v->ubuf), true);
    sem_post(&v->ready);
    IIoMux_Run(v->mux);
    IIoMux_Delete(v->mux);
    return NULL;
}

/* A port for the loops to share, held by a bound socket in their SO_REUSEPORT group until
 * they are up: then they all start at once (a bound socket that does not listen takes no
 * connections, but a UDP one would take datagrams, so it goes before the clients come). */
static int reserve_port(int type, uint16_t *port)
{
    int fd = socket(AF_INET, type, 0), one = 1;
    cr_assert_geq(fd, 0);
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    *port = ntohs(a.sin_port);
    return fd;
}

/* Starts the loops at once: their first TLS sockets attach the shared context together. */
static void srv_start_all(struct srv *v, int n)
{
    int fds[3] = {reserve_port(SOCK_STREAM, &g.port_tcp), reserve_port(SOCK_STREAM, &g.port_tls),
                  reserve_port(SOCK_DGRAM, &g.port_udp)};
    for (int i = 0; i < n; i++) {
        v[i].idx = i;
        sem_init(&v[i].ready, 0, 0);
        cr_assert_eq(pthread_create(&v[i].th, NULL, srv_main, &v[i]), 0);
    }
    for (int i = 0; i < n; i++)
        sem_wait(&v[i].ready);
    for (int i = 0; i < 3; i++)
        close(fds[i]);
}

static void srv_stop_join(struct srv *v)
{
    IIoMux_SetExecLocked(v->mux, &v->stop, NULL);
    pthread_join(v->th, NULL);
    sem_destroy(&v->ready);
    v->mux = NULL;
}

static void shared_init(void)
{
    memset(&g, 0, sizeof(g));
    g.tcp = CreateTCPSocketProvider();
    g.tls = CreateTLSSocketProvider(g.tcp);
    g.udp = CreateUDPSocketProvider();
    /* Shared by every loop, with the generated self-signed certificate. Made by the TCP
     * provider, it gets its TLS layer from the first TLS socket: the loops race for it. */
    g.srv_ctx = ISocketProvider_CreateSocketContext(g.tcp, NULL);
    g.cli_ctx = ISocketProvider_CreateSocketContext(g.tls, NULL);
    ISocketContext_SetVerifyPeer(g.cli_ctx, false); /* the server's certificate is self-signed */
}

static void shared_fini(void)
{
    ISocketContext_Delete(g.srv_ctx);
    ISocketContext_Delete(g.cli_ctx);
    ISocketProvider_Delete(g.tls);
    ISocketProvider_Delete(g.tcp);
    ISocketProvider_Delete(g.udp);
    h_check_leaks();
}

/* ---- clients: one loop on the test's thread ----------------------------------------- */

enum kind { K_TCP, K_TLS, K_UDP };
static const char *const kind_name[] = {"tcp", "tls", "udp"};

struct cli {
    USocket user;
    int id;
    enum kind kind;
    ISocket *s;
    size_t len;
    bool done, shut;
    shutdownreason_t reason;
    unsigned echoes; /* exact echoes received */
    uint8_t out[MSG_MAX], in[MSG_MAX];
};

static struct {
    IIoMux *mux;
    ITimer *watchdog;
    UTimer watchdog_user;
    int pending;
    bool timed_out;
} cl;

static void cli_settle(struct cli *c)
{
    if (!c->done) {
        c->done = true;
        if (--cl.pending == 0)
            IIoMux_Terminate(cl.mux);
    }
}

static void cli_recv(USocket *self, ISocket *s, void *buf, size_t len)
{
    (void)s;
    struct cli *c = container_of(self, struct cli, user);
    cr_assert_eq(buf, c->in);
    cr_assert_eq(len, c->len, "%s client %d: %zu bytes back, sent %zu", kind_name[c->kind], c->id,
                 len, c->len);
    size_t d = h_first_diff(c->in, c->out, len);
    cr_assert_eq(d, len, "%s client %d: byte %zu differs", kind_name[c->kind], c->id, d);
    c->echoes++;
    cli_settle(c);
}

static void cli_shutdown(USocket *self, ISocket *s, shutdownreason_t reason)
{
    (void)s;
    struct cli *c = container_of(self, struct cli, user);
    c->shut = true;
    c->reason = reason;
    cli_settle(c);
}

static const USocketVtbl cli_vtbl = {
    .SocketRecvResult = cli_recv,
    .SocketShutdown = cli_shutdown,
};

/* One message of the round: the id, then bytes that differ per id and round. Datagrams
 * stay under the MTU; streams span several TLS records. */
static void cli_send_round(struct cli *c, unsigned round)
{
    c->len = c->kind == K_UDP ? 4 + 100 + (size_t)c->id * 23 : 4 + 3000 + (size_t)c->id * 317;
    uint32_t id = (uint32_t)c->id;
    memcpy(c->out, &id, 4);
    h_fill(c->out + 4, c->len - 4, (uint32_t)c->id * 131 + round);
    c->done = false;
    cl.pending++;
    ISocket_Send(c->s, c->out, c->len);
    ISocket_Recv(c->s, c->in, c->len, false);
}

static struct cli *cli_new(int id, enum kind kind)
{
    struct cli *c = calloc(1, sizeof(*c));
    cr_assert_not_null(c);
    c->user.vtbl = &cli_vtbl;
    c->id = id;
    c->kind = kind;
    ISocketProvider *p = kind == K_TCP ? g.tcp : kind == K_TLS ? g.tls : g.udp;
    uint16_t port = kind == K_TCP ? g.port_tcp : kind == K_TLS ? g.port_tls : g.port_udp;
    c->s = ISocketProvider_CreateSocket(p, cl.mux, &c->user, NULL, false,
                                        kind == K_TLS ? g.cli_ctx : NULL);
    cr_assert_not_null(c->s);
    ISocket_Connect(c->s, h_addr(port), NULL);
    return c;
}

static void cli_free(struct cli *c)
{
    if (c)
        ISocket_Delete(c->s);
    free(c);
}

static void watchdog_fired(UTimer *self, ITimer *t)
{
    (void)self;
    (void)t;
    cl.timed_out = true;
    IIoMux_Terminate(cl.mux);
}

static const struct UTimerVtbl watchdog_vtbl = {.TimerOnTimeout = watchdog_fired};

static void cli_init(void)
{
    memset(&cl, 0, sizeof(cl));
    cl.mux = IIoMux_Create();
    cr_assert_not_null(cl.mux);
    cl.watchdog_user.vtbl = &watchdog_vtbl;
    cl.watchdog = ITimer_Create(cl.mux, &cl.watchdog_user);
}

static void cli_fini(void)
{
    ITimer_Delete(cl.watchdog);
    IIoMux_Delete(cl.mux);
}

/* Runs the client loop until every client of the round has its echo or its end. */
static void cli_run_round(void)
{
    ITimer_Start(cl.watchdog, 20000);
    if (cl.pending > 0)
        IIoMux_Run(cl.mux);
    ITimer_Cancel(cl.watchdog);
    cr_assert_not(cl.timed_out, "%d clients still waiting after 20 s", cl.pending);
}

/* ---- tests ------------------------------------------------------------------------ */

Test(multiloop, four_loops_serve_one_port_tcp_tls_udp)
{
    shared_init();
    static struct srv srv[NLOOPS];
    memset(srv, 0, sizeof(srv));
    srv_start_all(srv, NLOOPS);
    cr_assert(g.port_tcp && g.port_tls && g.port_udp);
    cli_init();

    /* Round 1: 3 x NCONN clients at once, every loop serving. */
    struct cli *c[MAXID] = {0};
    int n = 0;
    for (int k = K_TCP; k <= K_UDP; k++)
        for (int i = 0; i < NCONN; i++, n++)
            c[n] = cli_new(n, (enum kind)k);
    for (int i = 0; i < n; i++)
        cli_send_round(c[i], 1);
    cli_run_round();
    int total = 0, busy = 0;
    for (int i = 0; i < NLOOPS; i++) {
        int a = atomic_load(&srv[i].accepted);
        total += a;
        busy += a > 0;
    }
    for (int i = 0; i < n; i++) {
        cr_assert_not(c[i]->shut, "%s client %d ended: %s", kind_name[c[i]->kind], i,
                      SocketShutdownReasonToStr(c[i]->reason));
        cr_assert_eq(c[i]->echoes, 1);
        if (c[i]->kind != K_UDP)
            cr_assert(atomic_load(&g.owner[i]) >= 1, "client %d has no server loop", i);
    }
    cr_assert_eq(total, 2 * NCONN, "accepted %d connections, %d made", total, 2 * NCONN);
    cr_assert_geq(busy, 2, "SO_REUSEPORT spread %d connections over %d loop(s)", total, busy);

    /* One loop goes (its sockets deleted on its thread) while the others keep serving. */
    int victim = atomic_load(&g.owner[0]) - 1;
    srv_stop_join(&srv[victim]);

    /* Round 2: the old connections again, plus new ones that only the others can take. */
    for (int k = K_TCP; k <= K_TLS; k++)
        for (int i = 0; i < NCONN; i++, n++)
            c[n] = cli_new(n, (enum kind)k);
    for (int i = 0; i < n; i++)
        cli_send_round(c[i], 2);
    cli_run_round();
    int lost = 0;
    for (int i = 0; i < n; i++) {
        bool on_victim = c[i]->kind != K_UDP && atomic_load(&g.owner[i]) == victim + 1;
        if (on_victim && i < 3 * NCONN) {
            cr_assert(c[i]->shut, "%s client %d: its loop is gone but it got an echo",
                      kind_name[c[i]->kind], i);
            cr_assert(c[i]->reason == SOCKET_SHUTDOWN_BY_PEER || c[i]->reason == SOCKET_LOST,
                      "client %d: %s", i, SocketShutdownReasonToStr(c[i]->reason));
            lost++;
            continue;
        }
        cr_assert_not(on_victim, "client %d reached the deleted loop", i);
        cr_assert_not(c[i]->shut, "%s client %d ended: %s", kind_name[c[i]->kind], i,
                      SocketShutdownReasonToStr(c[i]->reason));
        cr_assert_eq(c[i]->echoes, i < 3 * NCONN ? 2u : 1u, "%s client %d", kind_name[c[i]->kind],
                     i);
    }
    cr_assert_geq(lost, 1);

    for (int i = 0; i < NLOOPS; i++)
        if (srv[i].mux)
            srv_stop_join(&srv[i]);
    for (int i = 0; i < n; i++)
        cli_free(c[i]);
    cli_fini();
    shared_fini();
}

/* ---- one SIGTERM reaches every loop's shutdown handler once --------------------------- */

struct sigloop {
    IShutdownHandler h;
    IIoMux *mux;
    pthread_t th;
    sem_t ready;
    atomic_int shutdowns, timeouts;
};

static void sig_shutdown(IShutdownHandler *self)
{
    struct sigloop *l = container_of(self, struct sigloop, h);
    atomic_fetch_add(&l->shutdowns, 1);
    IIoMux_ShutdownComplete(l->mux, self); /* the loop ends once its handlers are done */
}

static void sig_timeout(IShutdownHandler *self)
{
    atomic_fetch_add(&container_of(self, struct sigloop, h)->timeouts, 1);
}

static const struct IShutdownHandlerVtbl sig_vtbl = {.Shutdown = sig_shutdown,
                                                     .ShutdownTimeout = sig_timeout};

static void *sig_main(void *arg)
{
    struct sigloop *l = arg;
    l->mux = IIoMux_Create();
    cr_assert_not_null(l->mux);
    l->h.vtbl = &sig_vtbl;
    IIoMux_RegisterShutdownHandler(l->mux, &l->h);
    sem_post(&l->ready);
    IIoMux_Run(l->mux);
    IIoMux_Delete(l->mux);
    return NULL;
}

Test(multiloop, sigterm_reaches_every_loop_once)
{
    static struct sigloop l[NLOOPS];
    memset(l, 0, sizeof(l));
    for (int i = 0; i < NLOOPS; i++) {
        sem_init(&l[i].ready, 0, 0);
        cr_assert_eq(pthread_create(&l[i].th, NULL, sig_main, &l[i]), 0);
        sem_wait(&l[i].ready);
    }
    cr_assert_eq(kill(getpid(), SIGTERM), 0);
    for (int i = 0; i < NLOOPS; i++) {
        pthread_join(l[i].th, NULL); /* returns only once that loop saw the signal */
        cr_assert_eq(atomic_load(&l[i].shutdowns), 1, "loop %d: %d Shutdown calls", i,
                     atomic_load(&l[i].shutdowns));
        cr_assert_eq(atomic_load(&l[i].timeouts), 0);
        sem_destroy(&l[i].ready);
    }
    h_check_leaks();
}

/* ---- IIoMux_SetExecLocked hands work back and forth between two loops ----------------- */

#define PINGS 2000

struct pingloop {
    UIoExec exec;
    IIoMux *mux;
    pthread_t th;
    sem_t ready;
    struct pingloop *peer;
    int seen; /* touched only by this loop's thread */
    bool bad_order;
};

static void ping(UIoExec *self, void *ctx)
{
    struct pingloop *l = container_of(self, struct pingloop, exec);
    intptr_t n = (intptr_t)ctx;
    /* A and B alternate: this loop gets every second number, in order. */
    if (n != 2 * l->seen + (l->peer < l ? 1 : 0))
        l->bad_order = true;
    l->seen++;
    if (n + 1 < PINGS)
        IIoMux_SetExecLocked(l->peer->mux, &l->peer->exec, (void *)(n + 1));
    if (n + 2 >= PINGS)
        IIoMux_Terminate(l->mux); /* its last one */
}

static const struct UIoExecVtbl ping_vtbl = {.IoExec = ping};

static void *ping_main(void *arg)
{
    struct pingloop *l = arg;
    sem_wait(&l->ready); /* both loops exist */
    IIoMux_Run(l->mux);
    return NULL;
}

Test(multiloop, setexeclocked_hands_work_between_loops)
{
    static struct pingloop l[2];
    memset(l, 0, sizeof(l));
    for (int i = 0; i < 2; i++) {
        l[i].exec.vtbl = &ping_vtbl;
        l[i].peer = &l[1 - i];
        l[i].mux = IIoMux_Create();
        cr_assert_not_null(l[i].mux);
        sem_init(&l[i].ready, 0, 0);
        cr_assert_eq(pthread_create(&l[i].th, NULL, ping_main, &l[i]), 0);
    }
    IIoMux_SetExecLocked(l[0].mux, &l[0].exec, (void *)0); /* from a third thread */
    for (int i = 0; i < 2; i++)
        sem_post(&l[i].ready);
    for (int i = 0; i < 2; i++) {
        pthread_join(l[i].th, NULL);
        cr_assert_eq(l[i].seen, PINGS / 2, "loop %d ran %d", i, l[i].seen);
        cr_assert_not(l[i].bad_order, "loop %d ran them out of order", i);
        IIoMux_Delete(l[i].mux);
        sem_destroy(&l[i].ready);
    }
    h_check_leaks();
}
