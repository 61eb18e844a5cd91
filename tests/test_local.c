/* Local (Unix) stream sockets: paths, the abstract namespace, stale socket files,
 * permissions, and the stream semantics shared with TCP. */
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static struct h_env env;
static ISocketProvider *local;
static char dir[64];
static char path[128];

static void setup(void)
{
    h_env_init(&env);
    local = CreateLocalSocketProvider();
    snprintf(dir, sizeof(dir), "/tmp/ringsock-local-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/sock", dir);
}

static void teardown(void)
{
    unlink(path);
    rmdir(dir);
    ISocketProvider_Delete(local);
    h_env_fini(&env);
}

TestSuite(local, .init = setup, .fini = teardown, .timeout = 30);

static ISocket *local_socket(struct h_sock *hs)
{
    CALL(hs->sock = ISocketProvider_CreateSocket(local, env.mux, &hs->user, env.log, false, NULL));
    return hs->sock;
}

static struct h_sock *serve(const char *where, bool echo)
{
    struct h_sock *l = h_sock_new(&env);
    l->echo = echo;
    local_socket(l);
    CALL(ISocket_Bind(l->sock, where, 0));
    CALL(ISocket_Listen(l->sock));
    return l;
}

static void exchange(const char *where)
{
    struct h_sock *l = serve(where, true);
    struct h_sock *c = h_sock_new(&env);
    local_socket(c);
    CALL(ISocket_Connect(c->sock, where, NULL));
    static const char msg[] = "local stream bytes";
    CALL(ISocket_Send(c->sock, msg, sizeof(msg)));
    static char in[sizeof(msg)];
    CALL(ISocket_Recv(c->sock, in, sizeof(in), false));
    cr_assert(h_wait_count(&env, c, H_RECV_RESULT, 1, 3000), "%s", h_dump(c));
    cr_assert_eq(c->ev[0].kind, H_CONNECT_COMPLETE);
    cr_assert_arr_eq(in, msg, sizeof(msg));
    cr_assert(h_wait_count(&env, l, H_BIND_RESULT, 1, 1000));
    cr_assert_str_eq(h_last(l, H_BIND_RESULT)->addr, where);
    cr_assert_eq(h_last(l, H_BIND_RESULT)->port, 0);
    /* client closes: the server side sees the peer go */
    CALL(ISocket_Shutdown(c->sock));
    cr_assert(h_wait_count(&env, c, H_SHUTDOWN, 1, 2000));
    cr_assert_eq(h_last(c, H_SHUTDOWN)->reason, SOCKET_SHUTDOWN_NORMAL);
    cr_assert(h_wait_count(&env, l->accepted[0], H_SHUTDOWN, 1, 2000));
    cr_assert_eq(h_last(l->accepted[0], H_SHUTDOWN)->reason, SOCKET_SHUTDOWN_BY_PEER);
    h_sock_free(c);
    h_sock_free(l);
}

Test(local, path_echo_and_permissions)
{
    exchange(path);
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    cr_assert(S_ISSOCK(st.st_mode));
    cr_assert_eq(st.st_mode & 0777, 0666, "mode %o", st.st_mode & 0777);
}

Test(local, abstract_namespace_makes_no_file)
{
    char name[64];
    snprintf(name, sizeof(name), "@ringsock-test-%d", getpid());
    exchange(name);
    struct stat st;
    cr_assert_neq(stat(name, &st), 0);
    cr_assert_neq(stat(name + 1, &st), 0);
}

/* GetLocalAddress truncates an abstract name to the buffer, down to one byte (which holds
 * only the NUL), and writes nothing past it. */
Test(local, abstract_name_truncates_to_any_buffer)
{
    char name[64];
    snprintf(name, sizeof(name), "@ringsock-test-%d", getpid());
    struct h_sock *l = serve(name, false);
    for (unsigned size = 1; size <= strlen(name) + 1; size++) {
        char out[80];
        uint16_t port = 1;
        memset(out, 'x', sizeof(out));
        CALL(ISocket_GetLocalAddress(l->sock, out, size, &port));
        cr_assert_eq(strlen(out), size - 1, "size %u: \"%s\"", size, out);
        cr_assert_eq(strncmp(out, name, size - 1), 0, "size %u: \"%s\"", size, out);
        cr_assert_eq(out[size], 'x', "size %u: wrote past the buffer", size);
        cr_assert_eq(port, 0);
    }
    h_sock_free(l);
}

Test(local, stale_socket_file_is_replaced)
{
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un un = {.sun_family = AF_UNIX};
    strcpy(un.sun_path, path);
    cr_assert_eq(bind(fd, (struct sockaddr *)&un, sizeof(un)), 0);
    close(fd); /* the file stays: a dead server's leftover */
    exchange(path);
}

Test(local, live_socket_is_not_stolen)
{
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un un = {.sun_family = AF_UNIX};
    strcpy(un.sun_path, path);
    cr_assert_eq(bind(fd, (struct sockaddr *)&un, sizeof(un)), 0);
    cr_assert_eq(listen(fd, 4), 0);
    struct h_sock *l = serve(path, false);
    cr_assert(h_wait_count(&env, l, H_SHUTDOWN, 1, 2000));
    cr_assert_eq(h_last(l, H_SHUTDOWN)->reason, SOCKET_ADDR_IN_USE, "%s", h_dump(l));
    /* the original server still answers */
    int c = socket(AF_UNIX, SOCK_STREAM, 0);
    cr_assert_eq(connect(c, (struct sockaddr *)&un, sizeof(un)), 0);
    close(c);
    close(fd);
    h_sock_free(l);
}

Test(local, refuses_to_clobber_a_regular_file)
{
    int fd = open(path, O_CREAT | O_WRONLY, 0600);
    cr_assert_eq(write(fd, "keep", 4), 4);
    close(fd);
    struct h_sock *l = serve(path, false);
    cr_assert(h_wait_count(&env, l, H_SHUTDOWN, 1, 2000));
    cr_assert_eq(h_last(l, H_SHUTDOWN)->reason, SOCKET_BIND_FAILED, "%s", h_dump(l));
    char buf[8] = {0};
    fd = open(path, O_RDONLY);
    cr_assert_eq(read(fd, buf, sizeof(buf)), 4);
    close(fd);
    cr_assert_str_eq(buf, "keep");
    h_sock_free(l);
}

Test(local, bad_paths_are_invalid)
{
    char longpath[300];
    memset(longpath, 'a', sizeof(longpath) - 1);
    longpath[0] = '/';
    longpath[sizeof(longpath) - 1] = '\0';
    const char *bad[] = {longpath, "", "@", NULL};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct h_sock *c = h_sock_new(&env);
        local_socket(c);
        CALL(ISocket_Connect(c->sock, bad[i], NULL));
        cr_assert_eq(c->nev, 0);
        cr_assert(h_wait_count(&env, c, H_SHUTDOWN, 1, 1000));
        cr_assert_eq(h_last(c, H_SHUTDOWN)->reason, SOCKET_ADDRESS_INVALID, "case %zu", i);
        h_sock_free(c);
    }
    struct h_sock *l = serve(longpath, false);
    cr_assert(h_wait_count(&env, l, H_SHUTDOWN, 1, 1000));
    cr_assert_eq(h_last(l, H_SHUTDOWN)->reason, SOCKET_ADDRESS_INVALID);
    h_sock_free(l);
}

Test(local, connect_to_missing_or_dead_path)
{
    struct h_sock *c = h_sock_new(&env);
    local_socket(c);
    CALL(ISocket_Connect(c->sock, path, NULL)); /* nothing there */
    cr_assert(h_wait_count(&env, c, H_SHUTDOWN, 1, 1000));
    cr_assert_eq(h_last(c, H_SHUTDOWN)->reason, SOCKET_CONNECT_FAILED, "%s", h_dump(c));
    h_sock_free(c);

    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un un = {.sun_family = AF_UNIX};
    strcpy(un.sun_path, path);
    cr_assert_eq(bind(fd, (struct sockaddr *)&un, sizeof(un)), 0);
    close(fd); /* a socket file nobody listens on */
    c = h_sock_new(&env);
    local_socket(c);
    CALL(ISocket_Connect(c->sock, path, NULL));
    cr_assert(h_wait_count(&env, c, H_SHUTDOWN, 1, 1000));
    cr_assert_eq(h_last(c, H_SHUTDOWN)->reason, SOCKET_CONNECT_REJECTED, "%s", h_dump(c));
    h_sock_free(c);
}

/* A listener whose backlog is full: the connect waits (no failure) and completes once the
 * listener accepts; the bytes then flow. */
Test(local, connect_waits_for_a_full_backlog)
{
    int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
    struct sockaddr_un un = {.sun_family = AF_UNIX};
    strcpy(un.sun_path, path);
    cr_assert_eq(bind(lfd, (struct sockaddr *)&un, sizeof(un)), 0);
    cr_assert_eq(listen(lfd, 0), 0);
    int fillers[16], nfill = 0;
    for (; nfill < 16; nfill++) {
        fillers[nfill] = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
        if (connect(fillers[nfill], (struct sockaddr *)&un, sizeof(un)) < 0) {
            cr_assert_eq(errno, EAGAIN, "connect: %s", strerror(errno));
            close(fillers[nfill]);
            break;
        }
    }
    cr_assert_lt(nfill, 16, "the backlog never filled");

    struct h_sock *c = h_sock_new(&env);
    local_socket(c);
    CALL(ISocket_Connect(c->sock, path, NULL));
    struct h_sock *gone = h_sock_new(&env); /* deleted while it waits: nothing left behind */
    local_socket(gone);
    CALL(ISocket_Connect(gone->sock, path, NULL));
    h_run_for(&env, 100);
    cr_assert_eq(c->nev, 0, "while the backlog is full: %s", h_dump(c));
    cr_assert_eq(gone->nev, 0, "%s", h_dump(gone));
    h_sock_free(gone);

    int accepted[17], nacc = 0;
    for (int tries = 0; tries < 200 && !h_count(c, H_CONNECT_COMPLETE); tries++) {
        int a;
        while (nacc < 17 && (a = accept(lfd, NULL, NULL)) >= 0)
            accepted[nacc++] = a;
        h_run_for(&env, 10);
    }
    cr_assert_eq(h_count(c, H_CONNECT_COMPLETE), 1, "%s", h_dump(c));
    int a;
    while (nacc < 17 && (a = accept(lfd, NULL, NULL)) >= 0)
        accepted[nacc++] = a;
    cr_assert_eq(nacc, nfill + 1);
    CALL(ISocket_Send(c->sock, "x", 1));
    h_run_for(&env, 50);
    char got = 0; /* the last connection accepted is ours */
    cr_assert_eq(recv(accepted[nacc - 1], &got, 1, MSG_DONTWAIT), 1);
    cr_assert_eq(got, 'x');
    h_sock_free(c);
    for (int i = 0; i < nacc; i++)
        close(accepted[i]);
    for (int i = 0; i < nfill; i++)
        close(fillers[i]);
    close(lfd);
}

Test(local, logs_under_lds)
{
    IInstanceLog_SetLogFlags(env.log, LOG_LDS);
    exchange(path);
    cr_assert(h_log_contains(&env, " lds: local "), "no LOG_LDS line");
    cr_assert(h_log_contains(&env, "bound to"));
}
