/* DTLS sockets: wolfSSL over datagrams, on top of a UDP socket the layer owns (the
 * "port"), used only through the public ISocket API.
 *
 * A port is one UDP socket and the associations on it: a client's port carries one
 * (a connected UDP socket), a server's port carries one per peer, found by the
 * datagram's source address. Before a peer has returned a cookie (RFC 6347 4.2.1) the
 * port keeps nothing for it. The port lives as long as the listener or any association
 * uses it. */
#ifndef RS_DTLS_H
#define RS_DTLS_H

#include <string.h>

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>

#include "core.h"
#include "srtp.h"
#include "verify.h"

#define RS_DTLS_DGRAM_MAX (16384 + 2048) /* the largest record, with room to spare */

struct rs_dtls;

/* One datagram for a wolfSSL read callback: it reads it whole (or the part that fits), once. */
struct rs_dgram_in {
    const uint8_t *data; /* NULL: nothing to read */
    size_t len;
};

static inline int rs_dgram_take(struct rs_dgram_in *in, char *buf, int sz)
{
    if (!in->data)
        return WOLFSSL_CBIO_ERR_WANT_READ;
    size_t n = in->len < (size_t)sz ? in->len : (size_t)sz;
    memcpy(buf, in->data, n);
    in->data = NULL;
    return (int)n;
}

struct rs_peer {
    IPaddr addr;
    uint16_t port;
};

/* Who a datagram handed to the UDP socket belongs to, for its SocketSendResult. */
struct rs_send_owner {
    struct rs_dtls *d; /* holds a reference; NULL: the port's own (cookie exchange) */
    bool app;          /* the last datagram of an application Send */
};

struct dtls_port {
    unsigned refs;
    IIoMux *mux;
    IInstanceLog *log;
    ISocketContext *ctx;
    ISocket *udp;
    USocket udp_user;
    bool client;
    bool udp_closed;
    bool receiving;        /* a Recv into rx is outstanding */
    struct rs_dtls *owner; /* the client, or the server's listener; NULL once it is gone */

    struct rs_dtls **table; /* associations by peer; chained through dtls->hnext */
    size_t table_size, table_len;

    uint8_t rx[RS_DTLS_DGRAM_MAX]; /* the datagram being handled */

    struct rs_queue sends; /* of struct rs_send_owner: datagrams the UDP socket owes results for */

    /* stateless cookie exchange (cookie.c) */
    uint8_t cookie_secret[32];
    struct rs_dgram_in cookie_in;
    struct rs_peer cookie_peer;
    bool cookie_good;
};

/* port.c */
struct dtls_port *rs_port_new(IIoMux *m, IInstanceLog *log, ISocketContext *ctx, bool useIPv6,
                              bool client);
void rs_port_unref(struct dtls_port *p);
void rs_port_add(struct dtls_port *p, struct rs_dtls *d);
void rs_port_remove(struct dtls_port *p, struct rs_dtls *d);
/* Sends one datagram to the peer (ignored for a client's connected socket). */
void rs_port_send(struct dtls_port *p, const struct rs_peer *to, const void *buf, size_t len,
                  struct rs_dtls *owner, bool app);

/* Drops d from the datagrams awaiting results (d is being deleted). */
void rs_port_forget(struct dtls_port *p, struct rs_dtls *d);

/* cookie.c: answers a ClientHello without a valid cookie with a HelloVerifyRequest and
 * keeps nothing. True when the ClientHello carries a valid cookie. */
bool rs_cookie_check(struct dtls_port *p, const struct rs_peer *from, const uint8_t *dgram,
                     size_t len);
/* Gives a new association's session the port's cookie secret and the peer's identity,
 * so that it accepts the ClientHello the port checked. */
bool rs_cookie_prepare(struct dtls_port *p, WOLFSSL *ssl, const struct rs_peer *peer);

enum rs_dtls_state {
    D_IDLE,      /* created */
    D_UDP,       /* waiting for the UDP socket's connect or bind */
    D_LISTENING, /* a server's bound socket: no DTLS of its own */
    D_HANDSHAKE, /* wolfSSL handshake running */
    D_OPEN,      /* application data (or SRTP) */
    D_CLOSING,   /* close_notify on its way */
    D_CLOSED,
};

struct dmsg {
    struct dmsg *next;
    size_t len;
    uint8_t bytes[];
};

/* One DTLS socket: a client, a server's listener, or an accepted association. */
struct rs_dtls {
    struct rs_core core;
    struct dtls_port *port;
    struct rs_dtls *hnext; /* the port's table chain */
    bool in_table;
    struct rs_peer peer; /* the peer; a client sets it from Connect's address (peer_known) */
    bool peer_known;
    struct rs_tls_expect expect; /* a client: the server's identity, for the verify callback */
    ISocketContext *ctx;
    WOLFSSL *ssl;
    enum rs_dtls_state state;
    bool server, use_srtp;
    bool v6;
    int qos;

    struct rs_dgram_in in; /* the datagram wolfSSL reads next */
    bool in_app_write;     /* datagrams written now belong to an application Send */
    unsigned written;      /* datagrams written during the current wolfSSL call */
    unsigned sends_out;    /* datagrams the UDP socket has not reported yet */

    struct dmsg *flight, *flight_tail; /* a server's last flight, until the client shows
                                          it has it (see resend_flight) */
    bool capture_flight;
    uint8_t held_alert[64]; /* see io_send */
    size_t held_alert_len;

    struct rs_srtp *srtp;
    uint16_t srtp_profile;
    uint64_t srtp_dropped;
    unsigned srtp_drop_kinds; /* the rs_srtp_status kinds logged already (bits) */

    struct dmsg *qhead, *qtail; /* messages waiting for a Recv */
    unsigned qlen;
    struct dmsg *pending, *pending_tail; /* sends made before the handshake finished */

    const struct rs_peer *offer; /* a listener, in SocketListenResult: the new peer */
    struct rs_dtls *accepted;    /* ... and the socket Accept made for it */
    char *server_name;
    ITimer *rtx_timer, *hs_timer;
    uint8_t peer_fp[32];
    bool peer_fp_valid;
};

/* dtls_socket.c: what the port calls. */
void rs_dtls_datagram(struct rs_dtls *d, uint8_t *buf, size_t len);
/* A new peer proved its address: offer it to the listener. */
void rs_dtls_new_peer(struct rs_dtls *listener, const struct rs_peer *peer, const uint8_t *hello,
                      size_t len);
void rs_dtls_port_bound(struct rs_dtls *d, const char *addr, uint16_t port);
void rs_dtls_port_connected(struct rs_dtls *d);
void rs_dtls_port_closed(struct rs_dtls *d, shutdownreason_t reason);
void rs_dtls_send_done(struct rs_dtls *d, bool app);

ISocket *rs_dtls_create_socket(IIoMux *m, USocket *user, IInstanceLog *log, bool useIPv6,
                               ISocketContext *ctx);

#endif
