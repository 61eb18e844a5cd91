/* The small interface between the reactor/socket layers and the kernel I/O mechanism.
 * io_uring implements it now (uring.c); an epoll backend can implement the same calls.
 * Every call queues one operation; its completion arrives later, from the loop, as
 * op->complete(op, res, flags), never inside the call that queued it. */
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
};

struct rs_backend;

/* Sets up the backend; on failure returns NULL and writes the reason into why. */
struct rs_backend *rs_backend_create(char *why, size_t whylen);
void rs_backend_destroy(struct rs_backend *b);
/* Binds the backend to the calling thread (the loop's); called by the first Run. */
void rs_backend_start(struct rs_backend *b);
/* Completes what is finished or never started, so deleted sockets can be freed. */
void rs_backend_drain(struct rs_backend *b);
unsigned rs_backend_features(const struct rs_backend *b);

/* Submits what is queued and dispatches completions. Waits at most timeout_ns
 * (0: do not wait, UINT64_MAX: wait for at least one completion). Returns the number of
 * completions it dispatched. */
unsigned rs_backend_poll(struct rs_backend *b, uint64_t timeout_ns);

void rs_io_connect(struct rs_backend *b, struct rs_op *op, int fd, const struct sockaddr *addr,
                   socklen_t len);
void rs_io_accept(struct rs_backend *b, struct rs_op *op, int fd); /* multishot where possible */
void rs_io_recv(struct rs_backend *b, struct rs_op *op, int fd, void *buf, size_t len, int flags);
void rs_io_send(struct rs_backend *b, struct rs_op *op, int fd, const void *buf, size_t len,
                int flags);
/* Zero-copy send: one completion with the result (RS_CQE_MORE set when a notification
 * follows), then one with RS_CQE_NOTIF. */
void rs_io_send_zc(struct rs_backend *b, struct rs_op *op, int fd, const void *buf, size_t len,
                   int flags);
struct msghdr;
void rs_io_recvmsg(struct rs_backend *b, struct rs_op *op, int fd, struct msghdr *msg, int flags);
void rs_io_sendmsg(struct rs_backend *b, struct rs_op *op, int fd, const struct msghdr *msg,
                   int flags);
void rs_io_read(struct rs_backend *b, struct rs_op *op, int fd, void *buf, size_t len);

/* A pool of equal receive buffers the kernel picks from (a provided buffer ring).
 * NULL where the kernel has none. A buffer handed out in a completion belongs to the
 * receiver until it gives it back with rs_bufpool_recycle. */
struct rs_bufpool;
struct rs_bufpool *rs_bufpool_create(struct rs_backend *b, unsigned count, unsigned size);
void rs_bufpool_destroy(struct rs_bufpool *p);
void *rs_bufpool_buf(struct rs_bufpool *p, unsigned id);
void rs_bufpool_recycle(struct rs_bufpool *p, unsigned id);
/* Multishot recvmsg into pool buffers; each completion carries RS_CQE_BUFFER and the
 * id. msg gives the name length to reserve (no iovec). */
void rs_io_recvmsg_multishot(struct rs_backend *b, struct rs_op *op, int fd, struct msghdr *msg,
                             struct rs_bufpool *p);
/* Multishot recv on a stream socket into pool buffers: a completion per arrival, each
 * with RS_CQE_BUFFER and the id; 0 for the end of the stream. */
void rs_io_recv_multishot(struct rs_backend *b, struct rs_op *op, int fd, struct rs_bufpool *p);
/* Parses a multishot recvmsg buffer: source address, payload, its length in the buffer
 * and its real length (larger when truncated). False if the buffer is malformed. */
bool rs_recvmsg_parse(void *buf, int res, struct msghdr *msg, struct sockaddr **name,
                      void **payload, size_t *len, size_t *real_len);

/* Cancels every operation on fd and returns only when the kernel has let go of their
 * buffers; their completions (-ECANCELED or a result) still arrive later. */
void rs_io_cancel_fd(struct rs_backend *b, int fd);
/* The same for one operation. */
void rs_io_cancel_op(struct rs_backend *b, struct rs_op *op);

#endif
