/* What the libFuzzer harnesses share: a reader over the input, a loop runner that stops
 * when the harness says it is done (and aborts on a hang), a recording USocket, and a raw
 * peer on the far end of a local (AF_UNIX) stream that the loop pumps.
 *
 * Every harness builds its IIoMux per input and deletes everything before it returns, so
 * LeakSanitizer sees one input's leaks, and uses no sleep: the loop runs until the sockets
 * the input made have ended. */
#ifndef RS_FUZZ_H
#define RS_FUZZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ringsock/socket.h>

#define fz_container_of(p, T, m) ((T *)((char *)(p)-offsetof(T, m)))

/* ---- input ---------------------------------------------------------------------------- */

struct fz_in {
    const uint8_t *p;
    size_t n;
};
uint8_t fz_u8(struct fz_in *in);   /* 0 once the input is used up */
uint16_t fz_u16(struct fz_in *in); /* big-endian */
/* Up to want bytes (fewer at the end of the input); returns how many, *out points at them. */
size_t fz_take(struct fz_in *in, size_t want, const uint8_t **out);
/* A NUL-terminated copy of up to max bytes (stops at a NUL in the input); malloc'd. */
char *fz_str(struct fz_in *in, size_t max);

/* The log every socket and context of the harnesses writes to: silent (errors too) unless
 * RINGSOCK_LOG is set (RINGSOCK_LOG=tls,dtls to see what a finding does). */
IInstanceLog *fz_log(void);

/* ---- loop ----------------------------------------------------------------------------- */

struct fz_loop {
    IIoMux *mux;
    ITimer *watchdog;
    UTimer watchdog_user;
    unsigned timeout_ms, extensions;
    double cpu_start;
    UIoExec pump;            /* runs step() every loop round while set */
    bool (*step)(void *arg); /* returns false once it needs no more rounds */
    bool (*done)(void *arg); /* checked after every callback and pump round */
    void *arg;
    bool pumping;
};

void fz_loop_init(struct fz_loop *l);
void fz_loop_fini(struct fz_loop *l);
/* Runs until done(arg) holds; step (may be NULL) runs once per loop round meanwhile. A
 * run that takes more than timeout_ms with the CPU (or 20 times that without) is a hang:
 * the harness aborts with a message. */
void fz_run(struct fz_loop *l, bool (*done)(void *), bool (*step)(void *), void *arg,
            unsigned timeout_ms);
/* Callbacks call this: ends the run once done(arg) holds. */
void fz_poke(struct fz_loop *l);

/* ---- a recording USocket -------------------------------------------------------------- */

struct fz_sock {
    USocket user;
    struct fz_loop *loop;
    ISocket *sock;
    struct fz_sock *child; /* a listener: the one connection it accepted (as fz_sock) */
    bool connected, ended, sending_done;
    shutdownreason_t reason;
    unsigned sends, send_results;
    /* receiving: keeps a Recv outstanding of rlen bytes (partial or not) */
    bool receiving, partial;
    uint8_t rbuf[4096];
    size_t rlen;
    size_t received;
    void (*on_connected)(struct fz_sock *fs); /* optional: after Connect/Accept/Upgrade */
    void (*on_recv)(struct fz_sock *fs, const uint8_t *buf, size_t len); /* optional */
    void *ctx;
};

/* A socket of provider p with this recording user; Recv of rlen bytes starts once it is
 * connected (rlen 0: no Recv). */
void fz_sock_init(struct fz_sock *fs, struct fz_loop *l, size_t rlen, bool partial);
ISocket *fz_sock_create(struct fz_sock *fs, ISocketProvider *p, ISocketContext *ctx);
/* Deletes its ISocket (and its accepted child's) if still there. */
void fz_sock_free(struct fz_sock *fs);

/* ---- identities ---------------------------------------------------------------------- */

/* A self-signed P-256 certificate for fuzz.ringsock.test (and IP 127.0.0.1), its key. */
extern const char fz_cert_pem[], fz_key_pem[];
/* SetServerCertificate with the two (no certificate generated per context). */
void fz_set_server_identity(ISocketContext *ctx);

/* ---- a raw peer ----------------------------------------------------------------------- */

/* "@ringsock-fuzz-<pid>-<what>": an abstract local name no other process uses. */
const char *fz_local_name(const char *what);

/* The far end of a local stream as a plain descriptor, pumped from the loop: it writes
 * out (then shuts down its write side if eof), and with drain set reads and drops
 * whatever comes, so the ringsock end never sees a reset for unread data. */
struct fz_raw {
    int fd, listen_fd;
    const uint8_t *out;
    size_t out_len, out_off;
    bool eof, eof_sent, drain, peer_closed;
    size_t in_bytes;
};
/* A listening descriptor on name (the raw end accepts in fz_raw_step). */
bool fz_raw_listen(struct fz_raw *r, const char *name);
/* A connection to name (a ringsock listener). */
bool fz_raw_connect(struct fz_raw *r, const char *name);
/* One round: accept, write, read. Returns whether anything moved. */
bool fz_raw_step(struct fz_raw *r);
void fz_raw_close(struct fz_raw *r);

#endif
