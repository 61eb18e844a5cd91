/* Zero-copy send for real. A ringsock client in the root network namespace streams to a
 * raw blocking sink in a network namespace of the test's own, over a veth pair, so
 * ISocket_SendNoCopy goes out with IORING_OP_SEND_ZC; on loopback it never does.
 *
 * Needs root and iproute2 (`ip`); skipped otherwise. Each test process makes its own
 * namespace "rszt<pid>" and veth pair "rszt<pid>r"/"rszt<pid>n" with a /30 of its own
 * from 198.18.0.0/15, and removes them in the suite's fini, also when the test fails.
 * Pairs left behind by a test process that crashed are removed by the next run. */
#include "harness.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define NS_PREFIX "rszt"
#define SINK_PORT 4790

/* ---- the namespace, the veth pair and the sink ------------------------------------------ */

struct zc_net {
    const char *ip_bin;
    bool made_ns, made_link;
    char ns[32], vroot[16], vns[16];
    char ip_root[INET_ADDRSTRLEN], ip_ns[INET_ADDRSTRLEN];
    pid_t sink;
    int ready_fd, report_fd; /* read ends of the sink's pipes */
    uint8_t *shm;            /* what the sink received, shared with it */
    size_t shm_cap;
};

static struct zc_net net = {.sink = -1, .ready_fd = -1, .report_fd = -1};
static struct h_env env;

/* SEND_ZC is io_uring's: on the epoll backend the same sends go out copied, with the same
 * results and the same buffer rules. */
static void check_zero_copy(const ISocketStats *st)
{
    if (strcmp(IIoMux_GetBackend(env.mux), "io_uring") == 0)
        cr_assert_gt(st->zeroCopySends, 0, "SendNoCopy of >= 64 KiB over veth used no SEND_ZC");
    else
        cr_assert_eq(st->zeroCopySends, 0, "SEND_ZC counted on the %s backend",
                     IIoMux_GetBackend(env.mux));
}
static bool env_up;

static const char *find_ip(void)
{
    static const char *const where[] = {"/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"};
    for (size_t i = 0; i < sizeof(where) / sizeof(where[0]); i++)
        if (access(where[i], X_OK) == 0)
            return where[i];
    return NULL;
}

/* Runs `ip ARGS...` quietly; true on success. */
static bool run_ip(const char *const *args)
{
    const char *argv[16];
    size_t n = 0;
    argv[n++] = "ip";
    for (; *args && n < 15; args++)
        argv[n++] = *args;
    argv[n] = NULL;
    pid_t pid = fork();
    if (pid < 0)
        return false;
    if (pid == 0) {
        int devnull = open("/dev/null", O_WRONLY);
        if (devnull >= 0) {
            dup2(devnull, 1);
            dup2(devnull, 2);
        }
        execv(net.ip_bin, (char *const *)argv);
        _exit(127);
    }
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}
#define IP(...) run_ip((const char *const[]){__VA_ARGS__, NULL})

/* Removes namespaces (and their root-side links) of this test's prefix whose process is
 * gone: what a crashed test process left behind. */
static void remove_stale(void)
{
    DIR *d = opendir("/var/run/netns");
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        int pid;
        char tail;
        if (sscanf(e->d_name, NS_PREFIX "%d%c", &pid, &tail) != 1 || pid <= 0)
            continue;
        if (kill(pid, 0) == 0 || errno != ESRCH)
            continue;
        char link[32], ns[32];
        snprintf(link, sizeof(link), NS_PREFIX "%dr", pid);
        snprintf(ns, sizeof(ns), NS_PREFIX "%d", pid);
        IP("link", "del", link);
        IP("netns", "del", ns);
    }
    closedir(d);
}

/* True if ip is an address of this (root) namespace already. */
static bool address_in_use(const char *ip)
{
    struct sockaddr_in sa = {.sin_family = AF_INET};
    inet_pton(AF_INET, ip, &sa.sin_addr);
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    bool used = bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 || errno != EADDRNOTAVAIL;
    close(fd);
    return used;
}

/* Writes "1" to /proc/sys/net/ipv6/conf/DEV/disable_ipv6 inside the namespace: no router
 * solicitations or DAD on the pair, only the test's own traffic. Best effort. */
static void ns_disable_ipv6(const char *dev)
{
    pid_t pid = fork();
    if (pid == 0) {
        char path[128];
        snprintf(path, sizeof(path), "/var/run/netns/%s", net.ns);
        int nsfd = open(path, O_RDONLY | O_CLOEXEC);
        if (nsfd < 0 || setns(nsfd, CLONE_NEWNET) < 0)
            _exit(1);
        snprintf(path, sizeof(path), "/proc/sys/net/ipv6/conf/%s/disable_ipv6", dev);
        int fd = open(path, O_WRONLY);
        if (fd < 0 || write(fd, "1", 1) != 1)
            _exit(1);
        _exit(0);
    }
    if (pid > 0)
        waitpid(pid, NULL, 0);
}

static void root_disable_ipv6(const char *dev)
{
    char path[128];
    snprintf(path, sizeof(path), "/proc/sys/net/ipv6/conf/%s/disable_ipv6", dev);
    int fd = open(path, O_WRONLY);
    if (fd >= 0) {
        if (write(fd, "1", 1) != 1) {
            /* best effort */
        }
        close(fd);
    }
}

/* The sink: enters the namespace, listens on ip_ns:SINK_PORT with a small receive buffer,
 * reports ready, takes one connection, waits read_delay_ms (so the sender's queue fills and
 * the kernel still holds SendNoCopy pages after the send completes), then reads everything
 * into the shared buffer and reports the total length at EOF. Runs in a forked child: plain
 * system calls and _exit only. */
static void sink_main(int ready_w, int report_w, unsigned read_delay_ms)
{
    alarm(20); /* never outlives a stuck test by much */
    char path[128];
    snprintf(path, sizeof(path), "/var/run/netns/%s", net.ns);
    int nsfd = open(path, O_RDONLY | O_CLOEXEC);
    int err = 0;
    if (nsfd < 0 || setns(nsfd, CLONE_NEWNET) < 0)
        err = errno ? errno : EINVAL;
    int l = -1;
    if (!err) {
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(SINK_PORT)};
        inet_pton(AF_INET, net.ip_ns, &sa.sin_addr);
        l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        int one = 1, rcvbuf = 64 * 1024;
        setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        setsockopt(l, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf)); /* inherited */
        if (l < 0 || bind(l, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(l, 4) < 0)
            err = errno ? errno : EINVAL;
    }
    if (write(ready_w, &err, sizeof(err)) != sizeof(err) || err)
        _exit(1);
    int c = accept(l, NULL, NULL);
    if (c < 0)
        _exit(1);
    if (read_delay_ms)
        usleep(read_delay_ms * 1000u);
    uint64_t total = 0;
    for (;;) {
        uint8_t scratch[65536];
        size_t room = total < net.shm_cap ? net.shm_cap - (size_t)total : 0;
        uint8_t *dst = room ? net.shm + total : scratch;
        size_t want = room ? room : sizeof(scratch);
        if (want > 256 * 1024)
            want = 256 * 1024;
        ssize_t n = recv(c, dst, want, 0);
        if (n > 0)
            total += (uint64_t)n;
        else if (n < 0 && errno == EINTR)
            continue;
        else
            break;
    }
    if (write(report_w, &total, sizeof(total)) != sizeof(total))
        _exit(1);
    _exit(0);
}

/* Makes the namespace, the pair and the sink. Skips the test where that is impossible. */
static void net_up(size_t shm_cap, unsigned read_delay_ms)
{
    if (geteuid() != 0)
        cr_skip_test("needs root (network namespaces)");
    net.ip_bin = find_ip();
    if (!net.ip_bin)
        cr_skip_test("needs iproute2 (ip)");
    struct io_uring_probe *probe = io_uring_get_probe();
    bool zc = probe && io_uring_opcode_supported(probe, IORING_OP_SEND_ZC);
    if (probe)
        io_uring_free_probe(probe);
    if (!zc)
        cr_skip_test("kernel without IORING_OP_SEND_ZC");
    remove_stale();

    pid_t me = getpid();
    snprintf(net.ns, sizeof(net.ns), NS_PREFIX "%d", (int)me);
    snprintf(net.vroot, sizeof(net.vroot), NS_PREFIX "%dr", (int)me);
    snprintf(net.vns, sizeof(net.vns), NS_PREFIX "%dn", (int)me);
    /* A /30 of 198.18.0.0/15 per process: .1 here, .2 in the namespace. */
    bool found = false;
    for (unsigned k = 0; k < 64 && !found; k++) {
        uint32_t base = (198u << 24 | 18u << 16) + (((unsigned)me + k * 7919u) % 32768u) * 4u;
        struct in_addr a = {.s_addr = htonl(base + 1)}, b = {.s_addr = htonl(base + 2)};
        inet_ntop(AF_INET, &a, net.ip_root, sizeof(net.ip_root));
        inet_ntop(AF_INET, &b, net.ip_ns, sizeof(net.ip_ns));
        found = !address_in_use(net.ip_root) && !address_in_use(net.ip_ns);
    }
    cr_assert(found, "no free /30 in 198.18.0.0/15");

    if (!IP("netns", "add", net.ns))
        cr_skip_test("cannot create a network namespace (ip netns add %s)", net.ns);
    net.made_ns = true;
    if (!IP("link", "add", net.vroot, "type", "veth", "peer", "name", net.vns, "netns", net.ns))
        cr_skip_test("cannot create a veth pair");
    net.made_link = true;
    root_disable_ipv6(net.vroot);
    ns_disable_ipv6(net.vns);
    char cidr[32];
    snprintf(cidr, sizeof(cidr), "%s/30", net.ip_root);
    cr_assert(IP("addr", "add", cidr, "dev", net.vroot));
    cr_assert(IP("link", "set", net.vroot, "up"));
    snprintf(cidr, sizeof(cidr), "%s/30", net.ip_ns);
    cr_assert(IP("-n", net.ns, "addr", "add", cidr, "dev", net.vns));
    cr_assert(IP("-n", net.ns, "link", "set", net.vns, "up"));

    net.shm_cap = shm_cap;
    net.shm = mmap(NULL, shm_cap, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    cr_assert_neq(net.shm, MAP_FAILED);
    int ready[2], report[2];
    cr_assert_eq(pipe2(ready, O_CLOEXEC), 0);
    cr_assert_eq(pipe2(report, O_CLOEXEC), 0);
    fflush(NULL);
    net.sink = fork();
    cr_assert_geq(net.sink, 0);
    if (net.sink == 0) {
        close(ready[0]);
        close(report[0]);
        sink_main(ready[1], report[1], read_delay_ms);
    }
    close(ready[1]);
    close(report[1]);
    net.ready_fd = ready[0];
    net.report_fd = report[0];
    struct pollfd p = {.fd = net.ready_fd, .events = POLLIN};
    cr_assert_eq(poll(&p, 1, 3000), 1, "the sink did not start");
    int err = -1;
    cr_assert_eq(read(net.ready_fd, &err, sizeof(err)), (ssize_t)sizeof(err), "the sink died");
    cr_assert_eq(err, 0, "sink: %s", strerror(err));
}

static void net_down(void)
{
    if (net.sink > 0) {
        kill(net.sink, SIGKILL);
        waitpid(net.sink, NULL, 0);
        net.sink = -1;
    }
    if (net.ready_fd >= 0)
        close(net.ready_fd);
    if (net.report_fd >= 0)
        close(net.report_fd);
    net.ready_fd = net.report_fd = -1;
    if (net.shm && net.shm != MAP_FAILED)
        munmap(net.shm, net.shm_cap);
    net.shm = NULL;
    if (net.made_link)
        IP("link", "del", net.vroot); /* takes the peer with it */
    if (net.made_ns)
        IP("netns", "del", net.ns);
    net.made_link = net.made_ns = false;
}

/* The sink's total, once it saw EOF; the loop keeps running meanwhile. */
static uint64_t sink_total(unsigned timeout_ms)
{
    struct pollfd p = {.fd = net.report_fd, .events = POLLIN};
    unsigned waited = 0;
    while (poll(&p, 1, 0) != 1) {
        cr_assert_lt(waited, timeout_ms, "the sink did not see the end of the stream");
        h_run_for(&env, 10);
        waited += 10;
    }
    uint64_t total = 0;
    cr_assert_eq(read(net.report_fd, &total, sizeof(total)), (ssize_t)sizeof(total));
    return total;
}

static void setup(void)
{
    env_up = false;
}

static void teardown(void)
{
    if (env_up)
        h_env_fini(&env);
    env_up = false;
    net_down();
}

TestSuite(zerocopy, .init = setup, .fini = teardown, .timeout = 15);

static void env_up_now(void)
{
    h_env_init(&env);
    env_up = true;
}

/* ---- a scripted stream of sends --------------------------------------------------------- */

struct item {
    bool nocopy;
    size_t len;
    uint8_t *mem; /* nocopy: the caller's buffer (mem + skew is what was sent) */
    size_t skew;  /* nocopy: start offset inside mem, for unaligned buffers */
    size_t off;   /* where the bytes sit in the stream */
};

struct plan {
    struct item *items;
    size_t n, issued, results;
    size_t window; /* sends outstanding at most */
    uint8_t *expected;
    size_t total;
    bool overwrite_checked_ok; /* every nocopy buffer intact up to its result */
    size_t overwritten;
};

static void issue(struct plan *p, ISocket *s)
{
    struct item *it = &p->items[p->issued];
    uint8_t tmp[4096];
    if (it->nocopy) {
        it->mem = malloc(it->len + it->skew);
        cr_assert_not_null(it->mem);
        h_fill(it->mem + it->skew, it->len, (uint32_t)p->issued * 7 + 1);
        memcpy(p->expected + it->off, it->mem + it->skew, it->len);
        CALL(ISocket_SendNoCopy(s, it->mem + it->skew, it->len));
    } else {
        /* a copied send: the engine must have copied before the call returns */
        uint8_t *b = it->len <= sizeof(tmp) ? tmp : malloc(it->len);
        cr_assert_not_null(b);
        h_fill(b, it->len, (uint32_t)p->issued * 7 + 1);
        memcpy(p->expected + it->off, b, it->len);
        CALL(ISocket_Send(s, b, it->len));
        memset(b, 0xCC, it->len);
        if (b != tmp)
            free(b);
    }
    p->issued++;
}

static void on_client_event(struct h_sock *hs, const struct h_event *e)
{
    struct plan *p = hs->ctx;
    if (e->kind != H_SEND_RESULT)
        return;
    cr_assert_lt(p->results, p->issued, "SendResult %zu without a send", p->results);
    struct item *it = &p->items[p->results++];
    if (it->nocopy) {
        /* The buffer was the caller's until now: unchanged; now it is free again. Overwrite
         * and free it at once: if the kernel still read from it, the sink would see 0xEE. */
        if (memcmp(it->mem + it->skew, p->expected + it->off, it->len) != 0)
            p->overwrite_checked_ok = false;
        memset(it->mem, 0xEE, it->len + it->skew);
        free(it->mem);
        it->mem = NULL;
        p->overwritten++;
    }
    while (p->issued < p->n && p->issued - p->results < p->window && hs->sock)
        issue(p, hs->sock);
}

static void plan_init(struct plan *p, size_t n, const size_t *lens, const bool *nocopy,
                      size_t window)
{
    memset(p, 0, sizeof(*p));
    p->items = calloc(n, sizeof(*p->items));
    cr_assert_not_null(p->items);
    p->n = n;
    p->window = window;
    for (size_t i = 0; i < n; i++) {
        p->items[i].nocopy = nocopy[i];
        p->items[i].len = lens[i];
        p->items[i].skew = nocopy[i] ? (i * 13) % 64 : 0;
        p->items[i].off = p->total;
        p->total += lens[i];
    }
    p->expected = malloc(p->total);
    cr_assert_not_null(p->expected);
    p->overwrite_checked_ok = true;
}

static void plan_free(struct plan *p)
{
    for (size_t i = 0; i < p->n; i++)
        free(p->items[i].mem);
    free(p->items);
    free(p->expected);
}

struct shutdown_arg {
    struct h_sock *hs;
};

static bool has_shutdown(struct h_env *e, void *arg)
{
    (void)e;
    return h_has_shutdown(((struct shutdown_arg *)arg)->hs);
}

/* Streams the plan to addr from one ringsock client, then shuts down (flush). Returns the
 * client's stats. The first `window` sends are issued before the connection is up. */
static ISocketStats stream_plan(struct plan *p, const char *addr)
{
    struct h_sock *c = h_sock_new(&env);
    c->on_event = on_client_event;
    c->ctx = p;
    h_tcp_socket(&env, c, strchr(addr, '[') != NULL);
    CALL(ISocket_Connect(c->sock, addr, NULL));
    while (p->issued < p->n && p->issued < p->window)
        issue(p, c->sock); /* held until connected */
    cr_assert_eq(c->nev, 0, "callback inside the calls: %s", h_dump(c));
    cr_assert(h_wait_count(&env, c, H_SEND_RESULT, p->n, 8000), "%zu of %zu SendResults: %s",
              h_count(c, H_SEND_RESULT), p->n, h_dump(c));
    cr_assert_eq(c->ev[0].kind, H_CONNECT_COMPLETE, "%s", h_dump(c));
    cr_assert(!h_has_shutdown(c), "%s", h_dump(c));
    ISocketStats st;
    CALL(ISocket_GetStats(c->sock, &st));
    CALL(ISocket_Shutdown(c->sock));
    struct shutdown_arg sa = {c};
    cr_assert(h_run_until(&env, has_shutdown, &sa, 3000), "%s", h_dump(c));
    cr_assert_eq(h_last(c, H_SHUTDOWN)->reason, SOCKET_SHUTDOWN_NORMAL, "%s", h_dump(c));
    cr_assert_eq(h_count(c, H_SEND_RESULT), p->n, "one SendResult per send: %s", h_dump(c));
    cr_assert_eq(p->results, p->n);
    h_sock_free(c);
    return st;
}

/* ---- tests ------------------------------------------------------------------------------ */

/* Large SendNoCopy buffers (64 KiB .. 2 MiB, some unaligned) interleaved with small copied
 * sends and a few larger copied ones, about 8 MiB, at most 6 sends outstanding, the first
 * ones queued before the connection is up; the sink reads nothing for 250 ms and has a
 * small receive buffer, so the sender's queue is full and the kernel holds the pages of
 * queued SEND_ZC data well after the send itself completed. */
Test(zerocopy, veth_nocopy_interleaved_with_send)
{
    static const size_t big[] = {65536,         1 << 20,      100 * 1024 + 7, 256 * 1024,
                                 (2 << 20) - 3, 65536 + 4096, 512 * 1024 + 1};
    enum { N = 28 };
    size_t lens[N];
    bool nocopy[N];
    for (size_t i = 0; i < N; i++) {
        nocopy[i] = i % 2 == 0;
        if (nocopy[i])
            lens[i] = big[(i / 2) % (sizeof(big) / sizeof(big[0]))];
        else if (i % 8 == 7)
            lens[i] = 150000; /* a large copied send (may go straight into the socket) */
        else
            lens[i] = 1 + (i * 397) % 3000;
    }
    net_up(16 << 20, 250);
    env_up_now();
    struct plan p;
    plan_init(&p, N, lens, nocopy, 6);
    cr_assert_leq(p.total, net.shm_cap);

    char addr[64];
    snprintf(addr, sizeof(addr), "%s:%u", net.ip_ns, SINK_PORT);
    ISocketStats st = stream_plan(&p, addr);

    check_zero_copy(&st);
    cr_assert_eq(st.sends, N);
    cr_assert_eq(st.bytesSent, p.total);
    cr_assert(p.overwrite_checked_ok, "a SendNoCopy buffer changed before its SendResult");
    cr_assert_eq(p.overwritten, N / 2);

    uint64_t got = sink_total(3000);
    cr_assert_eq(got, p.total, "sink got %llu bytes, sent %zu", (unsigned long long)got, p.total);
    size_t d = h_first_diff(net.shm, p.expected, p.total);
    cr_assert_eq(d, p.total, "sink's bytes differ from the sends at offset %zu (byte 0x%02x)", d,
                 d < p.total ? net.shm[d] : 0);
    plan_free(&p);
}

/* Small SendNoCopy payloads go out without SEND_ZC even off loopback: zero-copy does
 * not pay for them (perf/results/zerocopy.md). */
Test(zerocopy, veth_small_nocopy_is_not_zero_copy)
{
    enum { N = 40 };
    size_t lens[N];
    bool nocopy[N];
    for (size_t i = 0; i < N; i++) {
        nocopy[i] = true;
        lens[i] = i % 2 ? 4096 : 16384;
    }
    net_up(4 << 20, 0);
    env_up_now();
    struct plan p;
    plan_init(&p, N, lens, nocopy, 8);
    char addr[64];
    snprintf(addr, sizeof(addr), "%s:%u", net.ip_ns, SINK_PORT);
    ISocketStats st = stream_plan(&p, addr);
    cr_assert_eq(st.zeroCopySends, 0);
    cr_assert(p.overwrite_checked_ok);
    uint64_t got = sink_total(3000);
    cr_assert_eq(got, p.total);
    cr_assert_eq(h_first_diff(net.shm, p.expected, p.total), p.total);
    plan_free(&p);
}

/* On loopback the kernel copies anyway: SendNoCopy never uses SEND_ZC there. */
static void loopback_case(const char *listen_addr, const char *fmt)
{
    env_up_now();
    enum { N = 12 };
    size_t lens[N];
    bool nocopy[N];
    for (size_t i = 0; i < N; i++) {
        nocopy[i] = i % 3 != 2;
        lens[i] = nocopy[i] ? (i % 2 ? 256 * 1024 : 1 << 20) : 1 + i * 100;
    }
    struct plan p;
    plan_init(&p, N, lens, nocopy, 4);
    struct h_sock *l = h_sock_new(&env);
    l->sink = true;
    l->collect = true;
    uint16_t port = h_listen(&env, l, listen_addr);
    char addr[64];
    snprintf(addr, sizeof(addr), fmt, port);
    ISocketStats st = stream_plan(&p, addr);
    cr_assert_eq(st.zeroCopySends, 0, "SEND_ZC on loopback");
    cr_assert_eq(st.bytesSent, p.total);
    cr_assert(p.overwrite_checked_ok);
    struct h_sock *a = h_wait_accepted(&env, l, 1, 2000);
    cr_assert_not_null(a);
    cr_assert(h_wait_count(&env, a, H_SHUTDOWN, 1, 3000), "%s", h_dump(a));
    cr_assert_eq(a->data_len, p.total);
    cr_assert_eq(h_first_diff(a->data, p.expected, p.total), p.total);
    h_sock_free(l);
    plan_free(&p);
}

Test(zerocopy, loopback_v4_never_zero_copy)
{
    loopback_case("127.0.0.1", "127.0.0.1:%u");
}

Test(zerocopy, loopback_v6_never_zero_copy)
{
    loopback_case("::1", "[::1]:%u");
}

/* ISocket_Delete with a SEND_ZC send whose data still sits in the socket's send queue:
 * once Delete returns the buffer is the caller's again (socket.h), so rewriting it must
 * not change what the peer receives. (The skbs in the send queue point at the caller's
 * pages; the engine drops them, resetting the connection, see release_fd().) */
Test(zerocopy, veth_delete_releases_nocopy_buffer)
{
    net_up(8 << 20, 400);
    env_up_now();
    size_t len = 4 << 20;
    uint8_t *buf = malloc(len);
    cr_assert_not_null(buf);
    memset(buf, 'A', len);
    struct h_sock *c = h_sock_new(&env);
    h_tcp_socket(&env, c, false);
    char addr[64];
    snprintf(addr, sizeof(addr), "%s:%u", net.ip_ns, SINK_PORT);
    CALL(ISocket_Connect(c->sock, addr, NULL));
    cr_assert(h_wait_count(&env, c, H_CONNECT_COMPLETE, 1, 2000), "%s", h_dump(c));
    CALL(ISocket_SendNoCopy(c->sock, buf, len));
    h_run_for(&env, 150); /* the sink reads nothing yet: the data waits in the send queue */
    ISocketStats st;
    CALL(ISocket_GetStats(c->sock, &st));
    check_zero_copy(&st);
    cr_assert_eq(h_count(c, H_SEND_RESULT), 0, "%s", h_dump(c));
    CALL(ISocket_Delete(c->sock));
    c->sock = NULL;
    memset(buf, 'B', len);
    uint64_t got = sink_total(5000);
    size_t changed = 0;
    for (size_t i = 0; i < got && i < len; i++)
        changed += net.shm[i] != 'A';
    cr_assert_eq(changed, 0,
                 "the peer received %zu of %llu bytes rewritten after ISocket_Delete returned",
                 changed, (unsigned long long)got);
    free(buf);
    h_sock_free(c);
}
