/* The small interface between the reactor/socket layers and the kernel I/O mechanism,
 * implemented by io_uring (uring.c) and by epoll (epoll.c). Every call queues one operation; its
 * completion arrives later, from the loop, as op->complete(op, res, flags), never inside the call
 * that queued it. */
#ifndef RS_BACKEND_H
#define RS_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "ringsock/iomux.h"

/* Completion flags handed to rs_op.complete. */
enum {
    RS_CQE_MORE = 1u << 0,   /* a multishot operation stays armed */
    RS_CQE_NOTIF = 1u << 1,  /* zero-copy send: the kernel let go of the buffer */
    RS_CQE_BUFFER = 1u << 2, /* the data is in pool buffer RS_CQE_BUFFER_ID(flags) */
};
#define RS_CQE_BUFFER_ID(flags) ((unsigned)(flags) >> 16)

struct rs_op;
typedef void (*rs_op_fn)(struct rs_op *op, int res, unsigned flags);
struct rs_op {
    rs_op_fn complete;
};

/* Features probed at IIoMux_Create; the engine uses the newer ones only where present. */
enum rs_feature {
    RS_FEAT_MULTISHOT_ACCEPT = 1u << 0,
    RS_FEAT_SEND_ZC = 1u << 1,
    RS_FEAT_SYNC_CANCEL = 1u << 2,
    RS_FEAT_RECV_MULTISHOT = 1u << 3,
    /* Every operation is a system call of its own (epoll): a small send made at once costs
     * no more than one queued, and saves the copy and the completion. */
    RS_FEAT_SYSCALL_PER_OP = 1u << 4,
};

/* A backend: io_uring (uring.c) or epoll (epoll.c), chosen at IIoMux_Create. Each
 * implements these operations with the same completion model; the rs_io_* calls below
 * are how sockets reach them. */
struct rs_bufpool;
struct rs_backend;
struct rs_backend_ops {
    const char *name; /* IIoMux_GetBackend */
    void (*destroy)(struct rs_backend *b);
    void (*start)(struct rs_backend *b);
    void (*drain)(struct rs_backend *b);
    unsigned (*poll)(struct rs_backend *b, uint64_t timeout_ns);
    void (*wait)(struct rs_backend *b, uint64_t timeout_ns);
    bool (*ready)(struct rs_backend *b); /* NULL: cannot tell without a system call */
    void (*connect)(struct rs_backend *b, struct rs_op *op, int fd, const struct sockaddr *addr,
                    socklen_t len);
    void (*accept)(struct rs_backend *b, struct rs_op *op, int fd);
    void (*recv)(struct rs_backend *b, struct rs_op *op, int fd, void *buf, size_t len, int flags);
    void (*send)(struct rs_backend *b, struct rs_op *op, int fd, const void *buf, size_t len,
                 int flags);
    void (*send_zc)(struct rs_backend *b, struct rs_op *op, int fd, const void *buf, size_t len,
                    int flags);
    void (*recvmsg)(struct rs_backend *b, struct rs_op *op, int fd, struct msghdr *msg, int flags);
    void (*sendmsg)(struct rs_backend *b, struct rs_op *op, int fd, const struct msghdr *msg,
                    int flags);
    void (*read)(struct rs_backend *b, struct rs_op *op, int fd, void *buf, size_t len);
    void (*close)(struct rs_backend *b, int fd);
    void (*cancel_fd)(struct rs_backend *b, int fd);
    void (*cancel_op)(struct rs_backend *b, struct rs_op *op, int fd);
    /* NULL where the backend has no buffer pools */
    struct rs_bufpool *(*bufpool_create)(struct rs_backend *b, unsigned count, unsigned size);
    void (*recvmsg_multishot)(struct rs_backend *b, struct rs_op *op, int fd, struct msghdr *msg,
                              struct rs_bufpool *p);
    void (*recv_multishot)(struct rs_backend *b, struct rs_op *op, int fd, struct rs_bufpool *p);
};

struct rs_backend {
    const struct rs_backend_ops *ops;
    unsigned features; /* enum rs_feature */
};

/* Each sets up its backend; on failure returns NULL and writes the reason into why. */
struct rs_backend *rs_uring_create(char *why, size_t whylen);
struct rs_backend *rs_epoll_create(char *why, size_t whylen);

static inline void rs_backend_destroy(struct rs_backend *b)
{
    if (b)
        b->ops->destroy(b);
}
/* Binds the backend to the calling thread (the loop's); called by the first Run. */
static inline void rs_backend_start(struct rs_backend *b)
{
    b->ops->start(b);
}
/* Completes what is finished or never started, so deleted sockets can be freed. */
static inline void rs_backend_drain(struct rs_backend *b)
{
    b->ops->drain(b);
}
static inline unsigned rs_backend_features(const struct rs_backend *b)
{
    return b->features;
}
static inline const char *rs_backend_name(const struct rs_backend *b)
{
    return b->ops->name;
}

/* Submits what is queued and dispatches completions. Waits at most timeout_ns
 * (0: do not wait, UINT64_MAX: wait for at least one completion). Returns the number of
 * completions it dispatched. */
static inline unsigned rs_backend_poll(struct rs_backend *b, uint64_t timeout_ns)
{
    return b->ops->poll(b, timeout_ns);
}
/* Submits what is queued and waits (at most timeout_ns, UINT64_MAX: no limit) until a
 * poll would dispatch something; dispatches nothing. The loop times its sleeps with it. */
static inline void rs_backend_wait(struct rs_backend *b, uint64_t timeout_ns)
{
    b->ops->wait(b, timeout_ns);
}
/* False only when a poll now would certainly find nothing; tells without a system call
 * where the backend can (io_uring's ring flags), so a loop can spin on it. */
static inline bool rs_backend_ready(struct rs_backend *b)
{
    return !b->ops->ready || b->ops->ready(b);
}

static inline void rs_io_connect(struct rs_backend *b, struct rs_op *op, int fd,
                                 const struct sockaddr *addr, socklen_t len)
{
    b->ops->connect(b, op, fd, addr, len);
}
/* Multishot: a completion per connection (RS_CQE_MORE while it stays armed). */
static inline void rs_io_accept(struct rs_backend *b, struct rs_op *op, int fd)
{
    b->ops->accept(b, op, fd);
}
/* A stream socket's receive. */
static inline void rs_io_recv(struct rs_backend *b, struct rs_op *op, int fd, void *buf, size_t len,
                              int flags)
{
    b->ops->recv(b, op, fd, buf, len, flags);
}
static inline void rs_io_send(struct rs_backend *b, struct rs_op *op, int fd, const void *buf,
                              size_t len, int flags)
{
    b->ops->send(b, op, fd, buf, len, flags);
}
/* Zero-copy send (only with RS_FEAT_SEND_ZC): one completion with the result (RS_CQE_MORE
 * set when a notification follows), then one with RS_CQE_NOTIF. */
static inline void rs_io_send_zc(struct rs_backend *b, struct rs_op *op, int fd, const void *buf,
                                 size_t len, int flags)
{
    b->ops->send_zc(b, op, fd, buf, len, flags);
}
static inline void rs_io_recvmsg(struct rs_backend *b, struct rs_op *op, int fd, struct msghdr *msg,
                                 int flags)
{
    b->ops->recvmsg(b, op, fd, msg, flags);
}
static inline void rs_io_sendmsg(struct rs_backend *b, struct rs_op *op, int fd,
                                 const struct msghdr *msg, int flags)
{
    b->ops->sendmsg(b, op, fd, msg, flags);
}
/* A read of a counter (the wake eventfd). */
static inline void rs_io_read(struct rs_backend *b, struct rs_op *op, int fd, void *buf, size_t len)
{
    b->ops->read(b, op, fd, buf, len);
}
/* Closes a descriptor the backend has seen; its operations are canceled or complete. */
static inline void rs_io_close(struct rs_backend *b, int fd)
{
    b->ops->close(b, fd);
}

/* Cancels every operation on fd and returns only when the kernel has let go of their
 * buffers; their completions (-ECANCELED or a result) still arrive later. */
static inline void rs_io_cancel_fd(struct rs_backend *b, int fd)
{
    b->ops->cancel_fd(b, fd);
}
/* The same for one operation (on fd). */
static inline void rs_io_cancel_op(struct rs_backend *b, struct rs_op *op, int fd)
{
    b->ops->cancel_op(b, op, fd);
}

/* A pool of equal receive buffers the kernel picks from (a provided buffer ring).
 * NULL where the kernel or the backend has none (epoll): then the engine receives into
 * its own buffers, one operation at a time. A buffer handed out in a completion belongs
 * to the receiver until it gives it back with rs_bufpool_recycle, from that completion
 * (the kernel gets it again once the completions at hand are handled). */
static inline struct rs_bufpool *rs_bufpool_create(struct rs_backend *b, unsigned count,
                                                   unsigned size)
{
    return b->ops->bufpool_create ? b->ops->bufpool_create(b, count, size) : NULL;
}
void rs_bufpool_destroy(struct rs_bufpool *p); /* NULL: nothing */
void *rs_bufpool_buf(struct rs_bufpool *p, unsigned id);
void rs_bufpool_recycle(struct rs_bufpool *p, unsigned id);
/* Multishot recvmsg into pool buffers; each completion carries RS_CQE_BUFFER and the
 * id. msg gives the name length to reserve (no iovec). */
static inline void rs_io_recvmsg_multishot(struct rs_backend *b, struct rs_op *op, int fd,
                                           struct msghdr *msg, struct rs_bufpool *p)
{
    b->ops->recvmsg_multishot(b, op, fd, msg, p);
}
/* Multishot recv on a stream socket into pool buffers: a completion per arrival, each
 * with RS_CQE_BUFFER and the id; 0 for the end of the stream. */
static inline void rs_io_recv_multishot(struct rs_backend *b, struct rs_op *op, int fd,
                                        struct rs_bufpool *p)
{
    b->ops->recv_multishot(b, op, fd, p);
}
/* Parses a multishot recvmsg buffer: source address, payload, its length in the buffer
 * and its real length (larger when truncated). False if the buffer is malformed. */
bool rs_recvmsg_parse(void *buf, int res, struct msghdr *msg, struct sockaddr **name,
                      void **payload, size_t *len, size_t *real_len);

#endif
