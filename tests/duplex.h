/* A full-duplex peer for the stress suites (TCP, TLS): it sends its stream in random
 * sizes with a bounded window of sends awaiting their SocketSendResult, receives the other
 * side's in random sizes, full and partial, and checks every byte, the order of results
 * and that no callback comes inside an API call. A listener hands connections to it. */
#ifndef RS_TEST_DUPLEX_H
#define RS_TEST_DUPLEX_H

#include "harness.h"

#define H_DUPLEX_MAX_SENDS 512

struct h_duplex_config {
    size_t window_bytes;                /* sent but not yet confirmed by a SendResult */
    unsigned window_sends;              /* at most H_DUPLEX_MAX_SENDS */
    size_t rbuf_size;                   /* the receive buffer, >= the largest size */
    size_t (*rand_size)(uint32_t *rng); /* send and receive sizes; 0 means 1 to Recv */
};

struct h_peer {
    USocket user;
    ISocket *sock;
    const char *name;
    const struct h_duplex_config *cfg;
    uint32_t tx_rng, rx_rng; /* separate: the size sequences must not depend on timing */
    /* sender */
    const uint8_t *tx;
    size_t tx_total, tx_off;
    size_t sends, results, zero_sends, results_before_connect;
    size_t fifo[H_DUPLEX_MAX_SENDS]; /* sizes of the sends awaiting their result, oldest first */
    size_t fifo_head, fifo_n, window;
    bool pump_on_result; /* a SendResult sends more (the default) */
    /* receiver */
    const uint8_t *rx_expect;
    size_t rx_total, rx_off;
    uint8_t *rbuf;
    size_t rreq;
    bool rpartial, rpending, tail;
    size_t recv_results, full_recvs, partial_recvs, tail_results, canceled;
    /* lifecycle */
    bool connected;
    size_t shutdowns;
    shutdownreason_t reason;
    int last_event; /* 1 canceled, 2 shutdown: for the order at the end */
};

/* tx: what it sends, rx: what it must receive, both total bytes. Its rbuf is malloc'd. */
void h_peer_init(struct h_peer *p, const struct h_duplex_config *cfg, const char *name,
                 uint32_t seed, const uint8_t *tx, const uint8_t *rx, size_t total);
void h_peer_pump(struct h_peer *p);      /* sends while the window allows */
void h_peer_recv_next(struct h_peer *p); /* the next random receive (past the end: a last
                                          * partial one that catches any byte too many) */
bool h_peer_done(const struct h_peer *p);
bool h_duplex_done(struct h_env *e, void *arg);      /* arg: struct h_peer[2] */
bool h_duplex_both_shut(struct h_env *e, void *arg); /* arg: struct h_peer[2] */

/* A minimal listener: accepts every connection with the USocket next_user points at; a
 * SocketShutdown of its own fails the test. */
struct h_listener {
    USocket user;
    ISocket *sock;
    USocket *next_user;
    unsigned offers;
};
uint16_t h_listener_start(struct h_env *env, struct h_listener *l, ISocketProvider *provider,
                          ISocketContext *ctx);

#endif
