/* io_uring backend (backend.h): ring setup with feature probing, batched submission, completion
 * dispatch. Sockets never see an SQE; they call rs_io_* (backend.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <liburing.h>

#include "backend.h"

#define RS_SQ_ENTRIES 1024
#define RS_CQ_ENTRIES 16384 /* multishot accept and bursts of completions */
#define RS_REAP_BATCH 64

struct rs_uring {
    struct rs_backend base;
    struct io_uring ring;
    uint16_t next_bgid;
    struct rs_bufpool *back_pools; /* pools given buffers back during this reap */
    bool started; /* created disabled: the first Run binds the ring to its thread */
};

/* An operation canceled before the ring started is turned into a NOP whose user_data
 * carries this bit; its completion then reports -ECANCELED. Ops are 8-byte aligned. */
#define RS_UDATA_CANCELED 1u

static inline struct rs_uring *U(struct rs_backend *base)
{
    return (struct rs_uring *)base;
}

static int ring_init(struct rs_uring *b, unsigned setup_flags)
{
    struct io_uring_params p;
    memset(&p, 0, sizeof(p));
    p.flags = setup_flags | IORING_SETUP_CQSIZE;
    p.cq_entries = RS_CQ_ENTRIES;
    return io_uring_queue_init_params(RS_SQ_ENTRIES, &b->ring, &p);
}

static void explain_setup_failure(int err, char *why, size_t whylen)
{
    const char *hint = "";
    FILE *f = fopen("/proc/sys/kernel/io_uring_disabled", "r");
    int disabled = 0;
    if (f) {
        if (fscanf(f, "%d", &disabled) != 1)
            disabled = 0;
        fclose(f);
    }
    if (disabled)
        hint = " (io_uring is disabled by sysctl kernel.io_uring_disabled)";
    else if (err == ENOSYS)
        hint = " (kernel without io_uring, or blocked by a seccomp profile such as Docker's "
               "default)";
    else if (err == EPERM)
        hint = " (not permitted: seccomp profile or kernel.io_uring_disabled)";
    else if (err == ENOMEM)
        hint = " (out of memory or locked-memory limit, see ulimit -l)";
    snprintf(why, whylen, "io_uring_setup failed: %s%s", strerror(err), hint);
}

static void probe(struct rs_uring *b)
{
    struct io_uring_probe *pr = io_uring_get_probe_ring(&b->ring);
    if (pr) {
        if (io_uring_opcode_supported(pr, IORING_OP_SEND_ZC)) {
            /* SEND_ZC, multishot accept and multishot recv all arrived by 6.0. */
            b->base.features |= RS_FEAT_SEND_ZC | RS_FEAT_MULTISHOT_ACCEPT | RS_FEAT_RECV_MULTISHOT;
        } else if (io_uring_opcode_supported(pr, IORING_OP_SOCKET)) {
            b->base.features |= RS_FEAT_MULTISHOT_ACCEPT; /* 5.19 */
        }
        io_uring_free_probe(pr);
    }
    /* A synchronous cancel of a key nobody uses answers ENOENT where it exists. */
    struct io_uring_sync_cancel_reg reg;
    memset(&reg, 0, sizeof(reg));
    reg.addr = 0x5245;
    reg.timeout.tv_sec = -1;
    reg.timeout.tv_nsec = -1;
    if (io_uring_register_sync_cancel(&b->ring, &reg) == -ENOENT)
        b->base.features |= RS_FEAT_SYNC_CANCEL;
}

static const struct rs_backend_ops uring_ops;

struct rs_backend *rs_uring_create(char *why, size_t whylen)
{
    struct rs_uring *b = calloc(1, sizeof(*b));
    if (!b) {
        snprintf(why, whylen, "out of memory");
        return NULL;
    }
    /* Disabled until the first Run: SINGLE_ISSUER and DEFER_TASKRUN bind the ring to the
     * thread that enables it, which should be the loop's, not the creator's. */
    /* TASKRUN_FLAG: the kernel flags pending task work in the SQ ring, which lets the loop
     * spin on memory before it sleeps (uring_ready). */
    static const unsigned tries[] = {
        IORING_SETUP_R_DISABLED | IORING_SETUP_SUBMIT_ALL | IORING_SETUP_SINGLE_ISSUER |
            IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_TASKRUN_FLAG,
        IORING_SETUP_R_DISABLED | IORING_SETUP_SUBMIT_ALL | IORING_SETUP_SINGLE_ISSUER |
            IORING_SETUP_DEFER_TASKRUN,
        IORING_SETUP_R_DISABLED | IORING_SETUP_SUBMIT_ALL | IORING_SETUP_COOP_TASKRUN |
            IORING_SETUP_TASKRUN_FLAG,
        IORING_SETUP_R_DISABLED | IORING_SETUP_SUBMIT_ALL | IORING_SETUP_COOP_TASKRUN,
        IORING_SETUP_R_DISABLED,
    };
    int ret = -EINVAL;
    for (size_t i = 0; i < sizeof(tries) / sizeof(tries[0]); i++) {
        ret = ring_init(b, tries[i]);
        if (ret != -EINVAL)
            break;
    }
    if (ret < 0) {
        explain_setup_failure(-ret, why, whylen);
        free(b);
        return NULL;
    }
    probe(b);
    if (!(b->base.features & RS_FEAT_SYNC_CANCEL)) {
        /* Safe Delete with a receive in flight needs it (kernel 6.0). */
        snprintf(why, whylen,
                 "io_uring lacks synchronous cancel (IORING_REGISTER_SYNC_CANCEL, kernel 6.0+)");
        io_uring_queue_exit(&b->ring);
        free(b);
        return NULL;
    }
    b->base.ops = &uring_ops;
    return &b->base;
}

static void uring_start(struct rs_backend *base)
{
    struct rs_uring *b = U(base);
    if (b->started)
        return;
    /* Debian's liburing 2.3 declares io_uring_enable_rings but does not export it. */
    if (syscall(__NR_io_uring_register, b->ring.ring_fd, IORING_REGISTER_ENABLE_RINGS, NULL, 0) < 0)
        fprintf(stderr, "ringsock: enabling the ring failed: %s\n", strerror(errno));
    /* Per thread: saves an fd lookup per enter. Optional. */
    io_uring_register_ring_fd(&b->ring);
    b->started = true;
}

static void uring_destroy(struct rs_backend *base)
{
    struct rs_uring *b = U(base);
    io_uring_queue_exit(&b->ring);
    free(b);
}

/* The SQ is sized for a loop iteration's worth of work; when it fills up mid-iteration
 * we submit early rather than fail. */
static struct io_uring_sqe *get_sqe(struct rs_uring *b, struct rs_op *op)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&b->ring);
    while (!sqe) {
        uring_start(&b->base); /* more queued before Run than the SQ holds: start here */
        io_uring_submit(&b->ring);
        sqe = io_uring_get_sqe(&b->ring);
    }
    io_uring_sqe_set_data(sqe, op);
    return sqe;
}

static void uring_connect(struct rs_backend *base, struct rs_op *op, int fd,
                          const struct sockaddr *addr, socklen_t len)
{
    struct rs_uring *b = U(base);
    io_uring_prep_connect(get_sqe(b, op), fd, addr, len);
}

static void uring_accept(struct rs_backend *base, struct rs_op *op, int fd)
{
    struct rs_uring *b = U(base);
    struct io_uring_sqe *sqe = get_sqe(b, op);
    if (b->base.features & RS_FEAT_MULTISHOT_ACCEPT)
        io_uring_prep_multishot_accept(sqe, fd, NULL, NULL, SOCK_CLOEXEC);
    else
        io_uring_prep_accept(sqe, fd, NULL, NULL, SOCK_CLOEXEC);
}

static void uring_recv(struct rs_backend *base, struct rs_op *op, int fd, void *buf, size_t len,
                       int flags)
{
    struct rs_uring *b = U(base);
    io_uring_prep_recv(get_sqe(b, op), fd, buf, len, flags);
}

static void uring_send(struct rs_backend *base, struct rs_op *op, int fd, const void *buf,
                       size_t len, int flags)
{
    struct rs_uring *b = U(base);
    io_uring_prep_send(get_sqe(b, op), fd, buf, len, flags | MSG_NOSIGNAL);
}

static void uring_send_zc(struct rs_backend *base, struct rs_op *op, int fd, const void *buf,
                          size_t len, int flags)
{
    struct rs_uring *b = U(base);
    io_uring_prep_send_zc(get_sqe(b, op), fd, buf, len, flags | MSG_NOSIGNAL, 0);
}

static void uring_recvmsg(struct rs_backend *base, struct rs_op *op, int fd, struct msghdr *msg,
                          int flags)
{
    struct rs_uring *b = U(base);
    io_uring_prep_recvmsg(get_sqe(b, op), fd, msg, (unsigned)flags);
}

static void uring_sendmsg(struct rs_backend *base, struct rs_op *op, int fd,
                          const struct msghdr *msg, int flags)
{
    struct rs_uring *b = U(base);
    io_uring_prep_sendmsg(get_sqe(b, op), fd, msg, (unsigned)(flags | MSG_NOSIGNAL));
}

static void uring_read(struct rs_backend *base, struct rs_op *op, int fd, void *buf, size_t len)
{
    struct rs_uring *b = U(base);
    io_uring_prep_read(get_sqe(b, op), fd, buf, (unsigned)len, 0);
}

/* Before the ring started nothing reached the kernel: neutralize the queued SQEs. */
static void cancel_unsubmitted(struct rs_uring *b, int fd, const struct rs_op *op)
{
    struct io_uring_sq *sq = &b->ring.sq;
    for (unsigned i = *sq->khead; i != sq->sqe_tail; i++) {
        struct io_uring_sqe *sqe = &sq->sqes[i & sq->ring_mask];
        uint64_t ud = sqe->user_data;
        if (sqe->opcode == IORING_OP_NOP || (ud & RS_UDATA_CANCELED))
            continue;
        if ((op && ud == (uint64_t)(uintptr_t)op) || (!op && sqe->fd == fd)) {
            io_uring_prep_nop(sqe);
            sqe->user_data = ud | RS_UDATA_CANCELED;
        }
    }
}

static void sync_cancel(struct rs_uring *b, struct io_uring_sync_cancel_reg *reg)
{
    /* Operations still in the SQ are unknown to the kernel until submitted. */
    io_uring_submit(&b->ring);
    reg->timeout.tv_sec = -1;
    reg->timeout.tv_nsec = -1;
    int ret;
    do {
        ret = io_uring_register_sync_cancel(&b->ring, reg);
    } while (ret == -EINTR);
}

static void uring_cancel_fd(struct rs_backend *base, int fd)
{
    struct rs_uring *b = U(base);
    if (!b->started) {
        cancel_unsubmitted(b, fd, NULL);
        return;
    }
    struct io_uring_sync_cancel_reg reg;
    memset(&reg, 0, sizeof(reg));
    reg.fd = fd;
    reg.flags = IORING_ASYNC_CANCEL_FD | IORING_ASYNC_CANCEL_ALL;
    sync_cancel(b, &reg);
}

static void uring_cancel_op(struct rs_backend *base, struct rs_op *op, int fd)
{
    (void)fd; /* the key is the operation */
    struct rs_uring *b = U(base);
    if (!b->started) {
        cancel_unsubmitted(b, -1, op);
        return;
    }
    struct io_uring_sync_cancel_reg reg;
    memset(&reg, 0, sizeof(reg));
    reg.addr = (uint64_t)(uintptr_t)op;
    reg.flags = IORING_ASYNC_CANCEL_ALL;
    sync_cancel(b, &reg);
}

static void uring_close(struct rs_backend *base, int fd)
{
    (void)base;
    close(fd);
}

/* ---- provided buffer pools ------------------------------------------------------------ */

/* The kernel takes a ring's buffers in ring order, so with every buffer in the ring each
 * one would in turn be written (and made resident) however small the messages. The ring
 * therefore holds only as many as the loop's bursts need: `target`, starting at
 * RS_POOL_START and doubling whenever the completions of one reap took all but a quarter
 * of them; the buffers beyond it wait, untouched, on the spare stack. Buffers given back
 * during a reap go back into the ring at its end, together (one tail update), which also
 * makes the count of buffers the kernel still has exact. */
#define RS_POOL_START 64u

struct rs_bufpool {
    struct rs_uring *b;
    struct io_uring_buf_ring *br;
    uint8_t *mem;
    unsigned count, size;
    unsigned avail;  /* buffers in the ring, as of the last refill */
    unsigned target; /* how many the ring is kept at */
    unsigned nspare, nback;
    uint16_t *spare;              /* ids never yet in the ring */
    uint16_t *back;               /* ids given back during this reap */
    struct rs_bufpool *next_back; /* on b->back_pools while nback > 0 */
    uint16_t bgid;
};

static void pool_refill(struct rs_bufpool *p)
{
    p->avail -= p->nback; /* the kernel took each of them */
    if (p->nback > 0 && p->avail < p->target / 4 && p->target < p->count)
        p->target *= 2;
    int n = 0;
    unsigned mask = io_uring_buf_ring_mask(p->count);
    while (p->nback > 0 || (p->avail + (unsigned)n < p->target && p->nspare > 0)) {
        unsigned id = p->nback > 0 ? p->back[--p->nback] : p->spare[--p->nspare];
        io_uring_buf_ring_add(p->br, rs_bufpool_buf(p, id), p->size, (unsigned short)id, mask, n++);
    }
    io_uring_buf_ring_advance(p->br, n);
    p->avail += (unsigned)n;
}

static struct rs_bufpool *uring_bufpool_create(struct rs_backend *base, unsigned count,
                                               unsigned size)
{
    struct rs_uring *b = U(base);
    if (!(b->base.features & RS_FEAT_RECV_MULTISHOT) || (count & (count - 1)) || count > 32768)
        return NULL;
    struct rs_bufpool *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    p->spare = malloc(2 * count * sizeof(*p->spare));
    if (!p->spare) {
        free(p);
        return NULL;
    }
    p->back = p->spare + count;
    size_t ring_bytes = count * sizeof(struct io_uring_buf);
    p->br = mmap(NULL, ring_bytes, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    /* Untouched pages cost nothing: only buffers the kernel fills become resident. */
    p->mem = mmap(NULL, (size_t)count * size, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE,
                  -1, 0);
    if (p->br == MAP_FAILED || p->mem == MAP_FAILED)
        goto fail;
    /* Where transparent huge pages are "always" (Debian 12's kernel), the first datagram
     * into a 2 MiB stretch would make all of it resident: 16 MiB for the pool. */
    madvise(p->mem, (size_t)count * size, MADV_NOHUGEPAGE);
    p->b = b;
    p->count = count;
    p->size = size;
    p->bgid = b->next_bgid++;
    io_uring_buf_ring_init(p->br);
    struct io_uring_buf_reg reg;
    memset(&reg, 0, sizeof(reg));
    reg.ring_addr = (uint64_t)(uintptr_t)p->br;
    reg.ring_entries = count;
    reg.bgid = p->bgid;
    if (io_uring_register_buf_ring(&b->ring, &reg, 0) < 0)
        goto fail;
    p->target = count < RS_POOL_START ? count : RS_POOL_START;
    for (unsigned i = count; i-- > 0;)
        p->spare[p->nspare++] = (uint16_t)i;
    pool_refill(p);
    return p;
fail:
    if (p->br && p->br != MAP_FAILED)
        munmap(p->br, ring_bytes);
    if (p->mem && p->mem != MAP_FAILED)
        munmap(p->mem, (size_t)count * size);
    free(p->spare);
    free(p);
    return NULL;
}

void rs_bufpool_destroy(struct rs_bufpool *p)
{
    if (!p)
        return;
    for (struct rs_bufpool **q = &p->b->back_pools; *q; q = &(*q)->next_back)
        if (*q == p) {
            *q = p->next_back;
            break;
        }
    io_uring_unregister_buf_ring(&p->b->ring, p->bgid);
    munmap(p->br, p->count * sizeof(struct io_uring_buf));
    munmap(p->mem, (size_t)p->count * p->size);
    free(p->spare);
    free(p);
}

void *rs_bufpool_buf(struct rs_bufpool *p, unsigned id)
{
    return p->mem + (size_t)id * p->size;
}

void rs_bufpool_recycle(struct rs_bufpool *p, unsigned id)
{
    if (p->nback == 0) {
        p->next_back = p->b->back_pools;
        p->b->back_pools = p;
    }
    p->back[p->nback++] = (uint16_t)id;
}

static void uring_recvmsg_multishot(struct rs_backend *base, struct rs_op *op, int fd,
                                    struct msghdr *msg, struct rs_bufpool *p)
{
    struct rs_uring *b = U(base);
    struct io_uring_sqe *sqe = get_sqe(b, op);
    /* MSG_TRUNC: the header reports a datagram's real size even when it was cut. */
    io_uring_prep_recvmsg_multishot(sqe, fd, msg, MSG_TRUNC);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = p->bgid;
}

static void uring_recv_multishot(struct rs_backend *base, struct rs_op *op, int fd,
                                 struct rs_bufpool *p)
{
    struct rs_uring *b = U(base);
    struct io_uring_sqe *sqe = get_sqe(b, op);
    io_uring_prep_recv_multishot(sqe, fd, NULL, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = p->bgid;
}

bool rs_recvmsg_parse(void *buf, int res, struct msghdr *msg, struct sockaddr **name,
                      void **payload, size_t *len, size_t *real_len)
{
    struct io_uring_recvmsg_out *o = io_uring_recvmsg_validate(buf, res, msg);
    if (!o)
        return false;
    *name = io_uring_recvmsg_name(o);
    *payload = io_uring_recvmsg_payload(o, msg);
    *len = io_uring_recvmsg_payload_length(o, res, msg);
    *real_len = o->payloadlen;
    return true;
}

static unsigned map_flags(unsigned cqe_flags)
{
    unsigned f = 0;
    if (cqe_flags & IORING_CQE_F_BUFFER)
        f |= RS_CQE_BUFFER | ((cqe_flags >> IORING_CQE_BUFFER_SHIFT) << 16);
    if (cqe_flags & IORING_CQE_F_MORE)
        f |= RS_CQE_MORE;
    if (cqe_flags & IORING_CQE_F_NOTIF)
        f |= RS_CQE_NOTIF;
    return f;
}

/* Copies a batch out and releases the CQ slots before running handlers, so handlers
 * may submit, cancel or delete freely. */
static unsigned reap(struct rs_uring *b)
{
    struct {
        struct rs_op *op;
        int res;
        unsigned flags;
    } batch[RS_REAP_BATCH];
    unsigned n = 0, head;
    struct io_uring_cqe *cqe;
    io_uring_for_each_cqe(&b->ring, head, cqe)
    {
        uint64_t ud = cqe->user_data;
        if (ud == LIBURING_UDATA_TIMEOUT || ud == 0) {
            batch[n].op = NULL;
        } else {
            batch[n].op = (struct rs_op *)(uintptr_t)(ud & ~(uint64_t)RS_UDATA_CANCELED);
            batch[n].res = (ud & RS_UDATA_CANCELED) ? -ECANCELED : cqe->res;
            batch[n].flags = map_flags(cqe->flags);
        }
        if (++n == RS_REAP_BATCH)
            break;
    }
    io_uring_cq_advance(&b->ring, n);
    for (unsigned i = 0; i < n; i++)
        if (batch[i].op)
            batch[i].op->complete(batch[i].op, batch[i].res, batch[i].flags);
    while (b->back_pools) {
        struct rs_bufpool *p = b->back_pools;
        b->back_pools = p->next_back;
        pool_refill(p);
    }
    return n;
}

static void rs_fatal_backend(const char *why)
{
    fprintf(stderr, "ringsock: io_uring_enter failed: %s\n", why);
    abort();
}

static void uring_drain(struct rs_backend *base)
{
    struct rs_uring *b = U(base);
    if (!b->started) {
        /* Nothing reached the kernel: complete what is queued as canceled. */
        struct io_uring_sq *sq = &b->ring.sq;
        unsigned end = sq->sqe_tail; /* a handler may queue more (a listener re-arming) */
        for (unsigned i = *sq->khead; i != end; i++) {
            struct io_uring_sqe *sqe = &sq->sqes[i & sq->ring_mask];
            uint64_t ud = sqe->user_data & ~(uint64_t)RS_UDATA_CANCELED;
            io_uring_prep_nop(sqe);
            sqe->user_data = 0;
            if (ud)
                ((struct rs_op *)(uintptr_t)ud)
                    ->complete((struct rs_op *)(uintptr_t)ud, -ECANCELED, 0);
        }
        return;
    }
    for (int i = 0; i < 8; i++) {
        io_uring_submit_and_get_events(&b->ring);
        if (reap(b) == 0)
            break;
    }
}

static void check_enter(int ret)
{
    /* -ETIME, -EINTR, -EAGAIN and -EBUSY (CQ overflow) all mean: reap what is there. */
    if (ret < 0 && ret != -ETIME && ret != -EINTR && ret != -EAGAIN && ret != -EBUSY) {
        if (ret == -EEXIST)
            rs_fatal_backend("IIoMux_Run: this loop already ran on another thread; an IIoMux "
                             "is bound to the thread that first runs it");
        rs_fatal_backend(strerror(-ret));
    }
}

static void uring_wait(struct rs_backend *base, uint64_t timeout_ns)
{
    struct rs_uring *b = U(base);
    if (timeout_ns == UINT64_MAX) {
        check_enter(io_uring_submit_and_wait(&b->ring, 1));
        return;
    }
    struct __kernel_timespec ts = {
        .tv_sec = (long long)(timeout_ns / 1000000000u),
        .tv_nsec = (long long)(timeout_ns % 1000000000u),
    };
    struct io_uring_cqe *cqe;
    check_enter(io_uring_submit_and_wait_timeout(&b->ring, &cqe, 1, &ts, NULL));
}

/* Task work the kernel has for this thread, or it cannot say (a ring without TASKRUN_FLAG). */
static bool task_work_flagged(struct rs_uring *b)
{
    return !(b->ring.flags & IORING_SETUP_TASKRUN_FLAG) ||
           (IO_URING_READ_ONCE(*b->ring.sq.kflags) & (IORING_SQ_TASKRUN | IORING_SQ_CQ_OVERFLOW));
}

static bool uring_ready(struct rs_backend *base)
{
    struct rs_uring *b = U(base);
    return io_uring_cq_ready(&b->ring) || task_work_flagged(b);
}

static unsigned uring_poll(struct rs_backend *base, uint64_t timeout_ns)
{
    struct rs_uring *b = U(base);
    if (timeout_ns != 0)
        uring_wait(base, timeout_ns);
    else if (io_uring_sq_ready(&b->ring) || task_work_flagged(b) || !io_uring_cq_ready(&b->ring))
        check_enter(io_uring_submit_and_get_events(&b->ring));
    /* else nothing to submit and no task work, but completions wait: no system call */
    /* Bounded so timers and deferred work are not starved by a flood. */
    unsigned total = 0, n;
    for (int i = 0; i < 16; i++) {
        total += n = reap(b);
        if (n < RS_REAP_BATCH)
            break;
    }
    return total;
}

static const struct rs_backend_ops uring_ops = {
    .name = "io_uring",
    .destroy = uring_destroy,
    .start = uring_start,
    .drain = uring_drain,
    .poll = uring_poll,
    .wait = uring_wait,
    .ready = uring_ready,
    .connect = uring_connect,
    .accept = uring_accept,
    .recv = uring_recv,
    .send = uring_send,
    .send_zc = uring_send_zc,
    .recvmsg = uring_recvmsg,
    .sendmsg = uring_sendmsg,
    .read = uring_read,
    .close = uring_close,
    .cancel_fd = uring_cancel_fd,
    .cancel_op = uring_cancel_op,
    .bufpool_create = uring_bufpool_create,
    .recvmsg_multishot = uring_recvmsg_multishot,
    .recv_multishot = uring_recv_multishot,
};
