/* epoll backend (backend.h): the completion model of the io_uring one, for hosts where
 * io_uring cannot be set up (a seccomp profile such as Docker's, a sysctl, an old kernel).
 *
 * An operation is tried with a non-blocking system call when it is queued, if nothing
 * queued before it on its descriptor waits and the descriptor may be ready; what would
 * block waits on the descriptor until epoll reports it ready (edge-triggered: each
 * descriptor is added once, for reading; writing is added the first time a write has to
 * wait). Results are completions, handed out by the next poll, never inside the call that
 * queued the operation.
 *
 * What a descriptor may do is remembered, so the common case costs the system calls a
 * hand-written edge-triggered server makes and no more: a stream receive that returned
 * less than it asked for emptied the socket (the next one waits for an edge), and a send
 * that took less than it was given filled it. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "backend.h"
#include "queue.h"

#define EP_EVENTS       256
#define EP_DISPATCH_MAX 1024 /* completions per poll: timers and tasks run between batches */
#define EP_RETRY_MS     1    /* connect on a full local listener: how soon to try again */

enum ep_kind { EP_CONNECT, EP_ACCEPT, EP_RECV, EP_RECVMSG, EP_READ, EP_SEND, EP_SENDMSG };

struct ep_op {
    struct ep_op *next;
    struct rs_op *op;
    int fd;
    enum ep_kind kind;
    int flags;
    bool connecting; /* EP_CONNECT: connect() said EINPROGRESS, the result is SO_ERROR */
    union {
        struct {
            void *buf;
            size_t len;
        } io;
        struct msghdr *msg;
        struct {
            const struct sockaddr *addr;
            socklen_t len;
        } peer;
    } u;
};

struct ep_list {
    struct ep_op *head, *tail;
};

/* What the backend knows of a descriptor, indexed by its number. gen tells an event for
 * an earlier descriptor of the same number (closed meanwhile) from one for this one. */
struct ep_fd {
    struct ep_list reads, writes; /* operations waiting, in the order they were queued */
    uint32_t gen;
    bool added;      /* in the epoll set */
    bool out;        /* ... for writing too */
    bool rd_blocked; /* EAGAIN or a short stream read since the last edge: reads wait */
    bool wr_blocked; /* the same for writes */
    bool nonblock;   /* O_NONBLOCK set (for accept4, connect and read, which take no flags) */
    bool hup;        /* the peer's end (or an error) was seen: a short read no longer blocks */
};

struct ep_done {
    struct rs_op *op;
    int res;
    unsigned flags;
};

struct rs_epoll {
    struct rs_backend base;
    int epfd;
    struct ep_fd *fds;
    size_t nfds;
    struct rs_queue done; /* of struct ep_done: completions for the next poll */
    struct ep_list retry; /* connects to a local listener whose backlog was full */
    struct ep_op *spare;  /* freed operation records, for reuse */
    bool waited;          /* the last poll called epoll_wait */
    int nready;           /* events[] that ep_wait collected for the next poll */
    struct epoll_event events[EP_EVENTS];
};

static inline struct rs_epoll *E(struct rs_backend *base)
{
    return (struct rs_epoll *)base;
}

/* ---- bookkeeping ------------------------------------------------------------------------ */

static void list_push(struct ep_list *l, struct ep_op *o)
{
    o->next = NULL;
    if (l->tail)
        l->tail->next = o;
    else
        l->head = o;
    l->tail = o;
}

static struct ep_op *list_pop(struct ep_list *l)
{
    struct ep_op *o = l->head;
    if (o && !(l->head = o->next))
        l->tail = NULL;
    return o;
}

__attribute__((noreturn)) static void out_of_memory(void)
{
    fprintf(stderr, "ringsock: epoll backend: out of memory\n");
    abort();
}

static struct ep_fd *fd_entry(struct rs_epoll *b, int fd)
{
    if ((size_t)fd >= b->nfds) {
        size_t n = b->nfds ? b->nfds : 64;
        while (n <= (size_t)fd)
            n *= 2;
        struct ep_fd *v = realloc(b->fds, n * sizeof(*v));
        if (!v)
            out_of_memory();
        memset(v + b->nfds, 0, (n - b->nfds) * sizeof(*v));
        b->fds = v;
        b->nfds = n;
    }
    return &b->fds[fd];
}

static struct ep_op *op_new(struct rs_epoll *b, struct rs_op *op, int fd, enum ep_kind kind)
{
    struct ep_op *o = b->spare;
    if (o)
        b->spare = o->next;
    else if (!(o = malloc(sizeof(*o))))
        out_of_memory();
    memset(o, 0, sizeof(*o));
    o->op = op;
    o->fd = fd;
    o->kind = kind;
    return o;
}

static void op_free(struct rs_epoll *b, struct ep_op *o)
{
    o->next = b->spare;
    b->spare = o;
}

static void complete(struct rs_epoll *b, struct rs_op *op, int res, unsigned flags)
{
    *RS_QUEUE_PUSH(&b->done, struct ep_done, "epoll backend") = (struct ep_done){op, res, flags};
}

static int set_nonblock(struct ep_fd *e, int fd)
{
    if (e->nonblock)
        return 0;
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        return -errno;
    e->nonblock = true;
    return 0;
}

/* Adds fd to the epoll set for reading, and for writing once a write has had to wait
 * (most sockets never fill up: their wake-ups on acknowledged data are not asked for);
 * 0 or -errno. Both report what is ready at once, so nothing is missed in between. */
static int watch(struct rs_epoll *b, struct ep_fd *e, int fd, bool out)
{
    if (e->added && (e->out || !out))
        return 0;
    struct epoll_event ev = {
        .events = EPOLLIN | EPOLLRDHUP | EPOLLET | (out || e->out ? EPOLLOUT : 0),
        .data.u64 = (uint64_t)(uint32_t)fd | (uint64_t)e->gen << 32,
    };
    if (epoll_ctl(b->epfd, e->added ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, fd, &ev) < 0)
        return -errno;
    e->added = true;
    e->out = e->out || out;
    return 0;
}

/* ---- trying an operation -------------------------------------------------------------------- */

static bool is_write(enum ep_kind k)
{
    return k == EP_SEND || k == EP_SENDMSG || k == EP_CONNECT;
}

enum { EP_AGAIN = 1 }; /* try(): the operation waits for the descriptor */

/* Runs o once without blocking: its result (a completion was queued or is to be queued
 * by the caller via *res), or EP_AGAIN. Updates what the entry knows. */
static int try(struct rs_epoll *b, struct ep_fd *e, struct ep_op *o, int *res)
{
    ssize_t n;
    for (;;) {
        switch (o->kind) {
        case EP_RECV:
            n = recv(o->fd, o->u.io.buf, o->u.io.len, o->flags | MSG_DONTWAIT);
            /* A stream read short of its length emptied the socket, unless the end of the
             * stream is queued behind the data: its edge may have come and gone. */
            if (n >= 0 && (size_t)n < o->u.io.len && !e->hup)
                e->rd_blocked = true;
            break;
        case EP_RECVMSG:
            n = recvmsg(o->fd, o->u.msg, o->flags | MSG_DONTWAIT);
            break;
        case EP_READ:
            n = read(o->fd, o->u.io.buf, o->u.io.len);
            break;
        case EP_SEND:
            n = send(o->fd, o->u.io.buf, o->u.io.len, o->flags | MSG_DONTWAIT | MSG_NOSIGNAL);
            if (n >= 0 && (size_t)n < o->u.io.len)
                e->wr_blocked = true;
            break;
        case EP_SENDMSG:
            n = sendmsg(o->fd, o->u.msg, o->flags | MSG_DONTWAIT | MSG_NOSIGNAL);
            break;
        case EP_ACCEPT:
            /* Multishot: every connection waiting now, then it stays armed. */
            while ((n = accept4(o->fd, NULL, NULL, SOCK_CLOEXEC)) >= 0)
                complete(b, o->op, (int)n, RS_CQE_MORE);
            break;
        case EP_CONNECT:
            if (o->connecting) {
                int err = 0;
                socklen_t len = sizeof(err);
                if (getsockopt(o->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
                    err = errno;
                if (err == 0) {
                    /* an edge before the handshake ended (a spurious wake-up) */
                    struct sockaddr_storage peer;
                    socklen_t plen = sizeof(peer);
                    if (getpeername(o->fd, (struct sockaddr *)&peer, &plen) < 0 &&
                        errno == ENOTCONN) {
                        e->wr_blocked = true;
                        return EP_AGAIN;
                    }
                }
                *res = -err;
                return 0;
            }
            n = connect(o->fd, o->u.peer.addr, o->u.peer.len);
            if (n < 0 && (errno == EINPROGRESS || errno == EALREADY)) {
                o->connecting = true;
                e->wr_blocked = true;
                return EP_AGAIN;
            }
            break;
        }
        if (n >= 0 || errno != EINTR)
            break;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        if (is_write(o->kind))
            e->wr_blocked = true;
        else
            e->rd_blocked = true;
        return EP_AGAIN;
    }
    if (o->kind == EP_ACCEPT) {
        /* it ends, as a multishot accept does on an error (EMFILE: the engine retries) */
        *res = -errno;
        return 0;
    }
    *res = n < 0 ? -errno : (int)n;
    return 0;
}

/* Runs the operations waiting on one side of fd until it blocks. */
static void run_side(struct rs_epoll *b, struct ep_fd *e, struct ep_list *l, const bool *blocked)
{
    struct ep_op *o;
    while (!*blocked && (o = l->head) != NULL) {
        int res = 0;
        if (try(b, e, o, &res) == EP_AGAIN) {
            if (o->kind == EP_CONNECT && !o->connecting) { /* full local backlog: later */
                list_pop(l);
                list_push(&b->retry, o);
            }
            break;
        }
        list_pop(l);
        complete(b, o->op, res, 0);
        op_free(b, o);
    }
}

/* Queues o: tried now when nothing waits before it and its side may be ready, else (or
 * when it would block) it waits for epoll. */
static void submit(struct rs_epoll *b, struct ep_op *o)
{
    struct ep_fd *e = fd_entry(b, o->fd);
    bool w = is_write(o->kind);
    struct ep_list *l = w ? &e->writes : &e->reads;
    const bool *blocked = w ? &e->wr_blocked : &e->rd_blocked;
    int err = 0;
    if ((o->kind == EP_ACCEPT || o->kind == EP_CONNECT || o->kind == EP_READ) &&
        (err = set_nonblock(e, o->fd)) != 0) {
        complete(b, o->op, err, 0);
        op_free(b, o);
        return;
    }
    list_push(l, o);
    if (l->head == o)
        run_side(b, e, l, blocked);
    if (l->head && (err = watch(b, e, o->fd, w)) != 0) {
        /* not pollable (or out of memory): everything waiting here fails */
        while ((o = list_pop(l)) != NULL) {
            complete(b, o->op, err, 0);
            op_free(b, o);
        }
    }
}

/* ---- the operations ------------------------------------------------------------------------- */

static void ep_connect(struct rs_backend *base, struct rs_op *op, int fd,
                       const struct sockaddr *addr, socklen_t len)
{
    struct rs_epoll *b = E(base);
    struct ep_op *o = op_new(b, op, fd, EP_CONNECT);
    o->u.peer.addr = addr;
    o->u.peer.len = len;
    submit(b, o);
}

static void ep_accept(struct rs_backend *base, struct rs_op *op, int fd)
{
    struct rs_epoll *b = E(base);
    submit(b, op_new(b, op, fd, EP_ACCEPT));
}

static void queue_io(struct rs_backend *base, struct rs_op *op, int fd, enum ep_kind kind,
                     const void *buf, size_t len, int flags)
{
    struct rs_epoll *b = E(base);
    struct ep_op *o = op_new(b, op, fd, kind);
    o->u.io.buf = (void *)buf;
    o->u.io.len = len;
    o->flags = flags;
    submit(b, o);
}

static void ep_recv(struct rs_backend *b, struct rs_op *op, int fd, void *buf, size_t len,
                    int flags)
{
    queue_io(b, op, fd, EP_RECV, buf, len, flags);
}

static void ep_send(struct rs_backend *b, struct rs_op *op, int fd, const void *buf, size_t len,
                    int flags)
{
    queue_io(b, op, fd, EP_SEND, buf, len, flags);
}

static void ep_read(struct rs_backend *b, struct rs_op *op, int fd, void *buf, size_t len)
{
    queue_io(b, op, fd, EP_READ, buf, len, 0);
}

static void queue_msg(struct rs_backend *base, struct rs_op *op, int fd, enum ep_kind kind,
                      const struct msghdr *msg, int flags)
{
    struct rs_epoll *b = E(base);
    struct ep_op *o = op_new(b, op, fd, kind);
    o->u.msg = (struct msghdr *)msg;
    o->flags = flags;
    submit(b, o);
}

static void ep_recvmsg(struct rs_backend *b, struct rs_op *op, int fd, struct msghdr *msg,
                       int flags)
{
    queue_msg(b, op, fd, EP_RECVMSG, msg, flags);
}

static void ep_sendmsg(struct rs_backend *b, struct rs_op *op, int fd, const struct msghdr *msg,
                       int flags)
{
    queue_msg(b, op, fd, EP_SENDMSG, msg, flags);
}

/* Not offered (no RS_FEAT_SEND_ZC): a plain send, one completion, no notification. */
static void ep_send_zc(struct rs_backend *b, struct rs_op *op, int fd, const void *buf, size_t len,
                       int flags)
{
    ep_send(b, op, fd, buf, len, flags);
}

/* Moves the operations of l that match (op, or any when op is NULL) to the completions as
 * canceled. */
static void cancel_in(struct rs_epoll *b, struct ep_list *l, struct rs_op *op, int fd)
{
    struct ep_list keep = {NULL, NULL};
    struct ep_op *o;
    while ((o = list_pop(l)) != NULL) {
        if (o->fd == fd && (!op || o->op == op)) {
            complete(b, o->op, -ECANCELED, 0);
            op_free(b, o);
        } else {
            list_push(&keep, o);
        }
    }
    *l = keep;
}

static void cancel(struct rs_epoll *b, struct rs_op *op, int fd)
{
    if (fd >= 0 && (size_t)fd < b->nfds) {
        cancel_in(b, &b->fds[fd].reads, op, fd);
        cancel_in(b, &b->fds[fd].writes, op, fd);
    }
    cancel_in(b, &b->retry, op, fd);
}

static void ep_cancel_fd(struct rs_backend *b, int fd)
{
    cancel(E(b), NULL, fd);
}

static void ep_cancel_op(struct rs_backend *b, struct rs_op *op, int fd)
{
    cancel(E(b), op, fd);
}

/* The number may come back for another descriptor: forget this one (close removes it
 * from the epoll set; an event still on its way has the old generation). */
static void ep_close(struct rs_backend *base, int fd)
{
    struct rs_epoll *b = E(base);
    cancel(b, NULL, fd);
    if ((size_t)fd < b->nfds) {
        struct ep_fd *e = &b->fds[fd];
        uint32_t gen = e->gen + 1;
        *e = (struct ep_fd){.gen = gen};
    }
    close(fd);
}

/* ---- the loop ------------------------------------------------------------------------------- */

static void ep_start(struct rs_backend *b)
{
    (void)b; /* epoll binds to no thread */
}

static void on_event(struct rs_epoll *b, const struct epoll_event *ev)
{
    int fd = (int)(uint32_t)ev->data.u64;
    if ((size_t)fd >= b->nfds || b->fds[fd].gen != (uint32_t)(ev->data.u64 >> 32))
        return; /* for a descriptor closed since */
    struct ep_fd *e = &b->fds[fd];
    /* errors and hang-ups wake both sides: the next call reports them */
    if (ev->events & (EPOLLRDHUP | EPOLLERR | EPOLLHUP))
        e->hup = true;
    if (ev->events & (EPOLLIN | EPOLLRDHUP | EPOLLERR | EPOLLHUP)) {
        e->rd_blocked = false;
        run_side(b, e, &e->reads, &e->rd_blocked);
    }
    if (ev->events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) {
        e->wr_blocked = false;
        run_side(b, e, &e->writes, &e->wr_blocked);
    }
}

static void retry_connects(struct rs_epoll *b)
{
    struct ep_list l = b->retry;
    b->retry = (struct ep_list){NULL, NULL};
    struct ep_op *o;
    while ((o = list_pop(&l)) != NULL) {
        fd_entry(b, o->fd)->wr_blocked = false;
        submit(b, o);
    }
}

/* Hands out the completions queued before this call; those their handlers queue wait for
 * the next poll, as an io_uring submission would. */
static unsigned dispatch(struct rs_epoll *b)
{
    size_t n = b->done.len < EP_DISPATCH_MAX ? b->done.len : EP_DISPATCH_MAX;
    for (size_t i = 0; i < n; i++) {
        struct ep_done d = *RS_QUEUE_AT(&b->done, struct ep_done, 0);
        rs_queue_pop(&b->done);
        d.op->complete(d.op, d.res, d.flags);
    }
    return (unsigned)n;
}

static int timeout_ms(uint64_t ns)
{
    if (ns == UINT64_MAX)
        return -1;
    uint64_t ms = (ns + 999999) / 1000000; /* rounded up: waking early would spin */
    return ms > INT32_MAX ? INT32_MAX : (int)ms;
}

/* epoll_wait for at most timeout_ns (not at all while completions wait; at most
 * EP_RETRY_MS while connects wait for a retry); returns how many events it left in events[]. */
static int collect(struct rs_epoll *b, uint64_t timeout_ns)
{
    int ms = timeout_ms(timeout_ns);
    if (b->done.len > 0)
        ms = 0;
    else if (b->retry.head && (ms < 0 || ms > EP_RETRY_MS))
        ms = EP_RETRY_MS;
    int n = epoll_wait(b->epfd, b->events, EP_EVENTS, ms);
    if (n < 0 && errno != EINTR) {
        fprintf(stderr, "ringsock: epoll_wait failed: %s\n", strerror(errno));
        abort();
    }
    return n < 0 ? 0 : n;
}

static void ep_wait(struct rs_backend *base, uint64_t timeout_ns)
{
    struct rs_epoll *b = E(base);
    if (b->nready == 0 && b->done.len == 0)
        b->nready = collect(b, timeout_ns);
}

static unsigned ep_poll(struct rs_backend *base, uint64_t timeout_ns)
{
    struct rs_epoll *b = E(base);
    if (b->retry.head)
        retry_connects(b);
    int n = b->nready;
    b->nready = 0;
    if (n == 0) {
        /* Completions queued since the last wait go out first, without a system call; the
         * round after, epoll is asked again (without waiting while completions are ready). */
        if (b->done.len > 0 && b->waited) {
            b->waited = false;
            return dispatch(b);
        }
        n = collect(b, timeout_ns);
    }
    for (int i = 0; i < n; i++)
        on_event(b, &b->events[i]);
    b->waited = true;
    return dispatch(b);
}

static void ep_drain(struct rs_backend *base)
{
    struct rs_epoll *b = E(base);
    for (int i = 0; i < 8 && b->done.len > 0; i++)
        dispatch(b);
}

static void free_list(struct ep_list *l)
{
    struct ep_op *o;
    while ((o = list_pop(l)) != NULL)
        free(o);
}

static void ep_destroy(struct rs_backend *base)
{
    struct rs_epoll *b = E(base);
    for (size_t i = 0; i < b->nfds; i++) {
        free_list(&b->fds[i].reads);
        free_list(&b->fds[i].writes);
    }
    free_list(&b->retry);
    free_list(&(struct ep_list){b->spare, NULL}); /* linked through next as well */
    rs_queue_free(&b->done);
    free(b->fds);
    close(b->epfd);
    free(b);
}

static const struct rs_backend_ops epoll_ops = {
    .name = "epoll",
    .destroy = ep_destroy,
    .start = ep_start,
    .drain = ep_drain,
    .poll = ep_poll,
    .wait = ep_wait,
    .connect = ep_connect,
    .accept = ep_accept,
    .recv = ep_recv,
    .send = ep_send,
    .send_zc = ep_send_zc,
    .recvmsg = ep_recvmsg,
    .sendmsg = ep_sendmsg,
    .read = ep_read,
    .close = ep_close,
    .cancel_fd = ep_cancel_fd,
    .cancel_op = ep_cancel_op,
    /* no buffer pools: receives go into the engine's buffers, one at a time */
};

struct rs_backend *rs_epoll_create(char *why, size_t whylen)
{
    struct rs_epoll *b = calloc(1, sizeof(*b));
    if (!b) {
        snprintf(why, whylen, "out of memory");
        return NULL;
    }
    b->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (b->epfd < 0) {
        snprintf(why, whylen, "epoll_create1 failed: %s", strerror(errno));
        free(b);
        return NULL;
    }
    b->base.ops = &epoll_ops;
    /* Accept is always multishot and cancels synchronous here; the flags for those are
     * io_uring's own probes, which nothing outside uring.c reads. */
    b->base.features = RS_FEAT_SYSCALL_PER_OP;
    return &b->base;
}
