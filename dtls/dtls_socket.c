/* DTLS sockets: one DTLS 1.2 association per socket, wolfSSL over memory I/O on the
 * datagrams of a port (port.c). A message is a datagram: one Send is one record (or,
 * with SRTP, one protected RTP/RTCP packet), one SocketRecvResult one received
 * message, cut to the receive buffer if it is larger (counted as truncated).
 *
 * Records are read as they arrive, whether or not a Recv is outstanding: a peer's
 * retransmitted flight must be answered even while the application is busy. Messages
 * wait in a queue (up to RS_DTLS_QUEUE_MAX, then dropped and counted) until a Recv. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dtls.h"
#include "log_internal.h"
#include "sockaddr.h"
#include "tls_context.h"

#define RS_DTLS_QUEUE_MAX            1024
#define RS_DTLS_HANDSHAKE_TIMEOUT_MS 30000 /* a handshake that takes longer has failed */
#define RS_DTLS_MTU                  1400  /* handshake flights are cut to this */
#define RS_DTLS_RTX_MAX_S            8     /* retransmit at least this often (seconds) */

/* SRTP profiles. A server takes the first of the client's list it supports. A client
 * offers two: wolfSSL 5.5.4 writes a malformed use_srtp extension for more than two
 * (TLSX_UseSRTP_Write repeats the list), and it lists them by id, so its peers see
 * AES128_CM_SHA1_80 first. */
static const char srtp_server_profiles[] =
    "SRTP_AEAD_AES_128_GCM:SRTP_AES128_CM_SHA1_80:SRTP_AEAD_AES_256_GCM:SRTP_AES128_CM_SHA1_32";
static const char srtp_client_profiles[] = "SRTP_AEAD_AES_128_GCM:SRTP_AES128_CM_SHA1_80";

#define D(isock)    ((struct rs_dtls *)(isock))
#define LOG(d, ...) IInstanceLog_Log((d)->core.base.log, LOG_DTLS, __VA_ARGS__)

static const struct rs_socket_ops dtls_ops;
static const struct rs_core_type dtls_core_type;
static void drive(struct rs_dtls *d);
static void send_held_alert(struct rs_dtls *d);

/* ---- lifetime -------------------------------------------------------------------------- */

static void free_list(struct dmsg **head, struct dmsg **tail)
{
    while (*head) {
        struct dmsg *m = *head;
        *head = m->next;
        free(m);
    }
    *tail = NULL;
}

static void append(struct dmsg **head, struct dmsg **tail, const uint8_t *buf, size_t len)
{
    struct dmsg *m = malloc(sizeof(*m) + len);
    if (!m)
        rs_fatal("DTLS socket: out of memory");
    m->next = NULL;
    m->len = len;
    memcpy(m->bytes, buf, len);
    if (*tail)
        (*tail)->next = m;
    else
        *head = m;
    *tail = m;
}

/* Everything an ended socket no longer needs; the port reference stays until free. */
static void release(struct rs_dtls *d)
{
    if (d->rtx_timer)
        ITimer_Cancel(d->rtx_timer);
    if (d->hs_timer)
        ITimer_Cancel(d->hs_timer);
    if (d->port) {
        rs_port_remove(d->port, d);
        if (d->port->owner == d)
            d->port->owner = NULL;
    }
    if (d->ssl) {
        wolfSSL_free(d->ssl);
        d->ssl = NULL;
    }
    if (d->srtp) {
        rs_srtp_free(d->srtp);
        d->srtp = NULL;
    }
    free_list(&d->pending, &d->pending_tail);
    free_list(&d->flight, &d->flight_tail);
}

static void end(struct rs_dtls *d, shutdownreason_t reason)
{
    if (d->state == D_CLOSED || d->core.deleted)
        return;
    d->state = D_CLOSED;
    release(d);
    LOG(d, "dtls %p closed: %s", (void *)d, SocketShutdownReasonToStr(reason));
    rs_core_close_event(&d->core, reason);
}

static void dtls_free(struct rs_core *c)
{
    struct rs_dtls *d = (struct rs_dtls *)c;
    release(d);
    free_list(&d->qhead, &d->qtail);
    ITimer_Delete(d->rtx_timer);
    ITimer_Delete(d->hs_timer);
    if (d->port)
        rs_port_unref(d->port);
    free(d->server_name);
    free(d);
}

static struct rs_dtls *dtls_new(IIoMux *m, USocket *user, IInstanceLog *log, ISocketContext *ctx,
                                bool v6)
{
    struct rs_dtls *d = calloc(1, sizeof(*d));
    if (!d)
        rs_fatal("DTLS socket: out of memory");
    rs_core_init(&d->core, &dtls_core_type, &dtls_ops, m, user, log, LOG_DTLS);
    d->ctx = ctx;
    rs_tls_context_attach(ctx);
    d->use_srtp = ctx->srtp;
    d->v6 = v6;
    d->qos = -1;
    return d;
}

/* ---- wolfSSL memory I/O ------------------------------------------------------------------- */

static int io_send(WOLFSSL *ssl, char *buf, int sz, void *ctx)
{
    (void)ssl;
    struct rs_dtls *d = ctx;
    if (!d->port || d->state == D_CLOSED)
        return WOLFSSL_CBIO_ERR_CONN_CLOSE;
    if (d->state == D_HANDSHAKE && sz > 0 && sz <= (int)sizeof(d->held_alert) &&
        (uint8_t)buf[0] == 21) {
        /* An alert in the handshake is held until we know whether the handshake failed:
         * wolfSSL (with its extra alerts) also sends a fatal one for a record that arrives
         * out of order over a lossy path, and then carries on, as DTLS must. */
        memcpy(d->held_alert, buf, (size_t)sz);
        d->held_alert_len = (size_t)sz;
        return sz;
    }
    if (d->capture_flight)
        append(&d->flight, &d->flight_tail, (const uint8_t *)buf, (size_t)sz);
    /* One application message is one record in one datagram: that one owes the result. */
    bool app = d->in_app_write && d->written == 0;
    d->written++;
    rs_port_send(d->port, &d->peer, buf, (size_t)sz, d, app);
    return sz;
}

static int io_recv(WOLFSSL *ssl, char *buf, int sz, void *ctx)
{
    (void)ssl;
    struct rs_dtls *d = ctx;
    return rs_dgram_take(&d->in, buf, sz);
}

/* ---- messages to the application ------------------------------------------------------------ */

static void fill_receive(struct rs_dtls *d, const uint8_t *data, size_t len)
{
    size_t n = len < d->core.rlen ? len : d->core.rlen;
    memcpy(d->core.rbuf, data, n);
    if (n < len) {
        d->core.base.stats.truncated++;
        LOG(d, "dtls %p: message of %zu bytes cut to the %zu-byte receive buffer", (void *)d, len,
            d->core.rlen);
    }
    d->core.rfill = n;
    rs_core_event(&d->core, RS_EV_RECV_DONE);
}

static void deliver_message(struct rs_dtls *d, const uint8_t *data, size_t len)
{
    d->core.base.stats.bytesReceived += len;
    if (d->core.rbuf && !d->qhead && !(d->core.pending & RS_EV_RECV_DONE)) {
        fill_receive(d, data, len);
        return;
    }
    if (d->qlen >= RS_DTLS_QUEUE_MAX) {
        d->core.base.stats.dropped++;
        return;
    }
    append(&d->qhead, &d->qtail, data, len);
    d->qlen++;
}

/* ---- the state machine ------------------------------------------------------------------ */

static void log_failure(struct rs_dtls *d, const char *what, int ret)
{
    int err = wolfSSL_get_error(d->ssl, ret);
    char text[WOLFSSL_MAX_ERROR_SZ];
    wolfSSL_ERR_error_string_n((unsigned long)err, text, sizeof(text));
    IInstanceLog_Log(d->core.base.log, LOG_DTLS, "dtls %p: %s failed: %s (%d)", (void *)d, what,
                     text, err);
}

static void arm_rtx(struct rs_dtls *d)
{
    int s = wolfSSL_dtls_get_current_timeout(d->ssl); /* seconds */
    ITimer_Start(d->rtx_timer, (unsigned)(s > 0 ? s : 1) * 1000u);
}

static void rtx_fired(ITimer *t, void *arg)
{
    (void)t;
    struct rs_dtls *d = arg;
    if (d->state != D_HANDSHAKE)
        return;
    /* Resends the last flight and doubles the timeout, up to our cap; from there on it
     * resends at the cap. (wolfSSL's own maximum would fail the handshake instead, long
     * before our handshake timeout on a lossy path.) */
    bool ok = wolfSSL_dtls_get_current_timeout(d->ssl) >= RS_DTLS_RTX_MAX_S
                  ? wolfSSL_dtls_retransmit(d->ssl) == 0 /* 0: success, here */
                  : wolfSSL_dtls_got_timeout(d->ssl) == WOLFSSL_SUCCESS;
    if (!ok) {
        log_failure(d, "retransmission", WOLFSSL_FATAL_ERROR);
        send_held_alert(d);
        end(d, SOCKET_TLS_HANDSHAKE_FAILED);
        return;
    }
    arm_rtx(d);
}

static void handshake_timed_out(ITimer *t, void *arg)
{
    (void)t;
    struct rs_dtls *d = arg;
    IInstanceLog_Log(d->core.base.log, LOG_DTLS, "dtls %p: handshake timed out", (void *)d);
    end(d, SOCKET_TLS_HANDSHAKE_FAILED);
}

static bool start_ssl(struct rs_dtls *d, const char *server_name)
{
    WOLFSSL_CTX *x = rs_tls_context_get(d->ctx, d->server, true);
    d->ssl = x ? wolfSSL_new(x) : NULL;
    if (!d->ssl) {
        rs_log_error(d->core.base.log, LOG_DTLS, "dtls %p: cannot create the DTLS session",
                     (void *)d);
        return false;
    }
    wolfSSL_SSLSetIORecv(d->ssl, io_recv);
    wolfSSL_SSLSetIOSend(d->ssl, io_send);
    wolfSSL_SetIOReadCtx(d->ssl, d);
    wolfSSL_SetIOWriteCtx(d->ssl, d);
    wolfSSL_dtls_set_using_nonblock(d->ssl, 1); /* WANT_READ, not a timeout, when idle */
    wolfSSL_dtls_set_mtu(d->ssl, RS_DTLS_MTU);
    wolfSSL_KeepArrays(d->ssl); /* the exporter needs the master secret */
    if (d->use_srtp) {
        if (wolfSSL_set_tlsext_use_srtp(
                d->ssl, d->server ? srtp_server_profiles : srtp_client_profiles) != WOLFSSL_SUCCESS)
            return false;
    }
    if (d->server)
        return rs_cookie_prepare(d->port, d->ssl, &d->peer);
    rs_tls_expect_server(d->ssl, &d->expect, server_name, d->peer_known ? &d->peer.addr : NULL,
                         d->core.base.log, LOG_DTLS, d);
    return true;
}

static void begin_handshake(struct rs_dtls *d, const char *server_name)
{
    d->state = D_HANDSHAKE;
    IIoMux *m = d->core.base.mux;
    d->rtx_timer = rs_timer_create_internal(m, rtx_fired, d);
    d->hs_timer = rs_timer_create_internal(m, handshake_timed_out, d);
    unsigned ms = m->settings.dtls_handshake_timeout_ms;
    ITimer_Start(d->hs_timer, ms ? ms : RS_DTLS_HANDSHAKE_TIMEOUT_MS);
    if (!start_ssl(d, server_name)) {
        end(d, SOCKET_TLS_HANDSHAKE_FAILED);
        return;
    }
    drive(d);
}

static bool start_srtp(struct rs_dtls *d)
{
    const WOLFSSL_SRTP_PROTECTION_PROFILE *prof = wolfSSL_get_selected_srtp_profile(d->ssl);
    if (!prof || !prof->id) {
        IInstanceLog_Log(d->core.base.log, LOG_DTLS, "dtls %p: the peer did not negotiate use_srtp",
                         (void *)d);
        return false;
    }
    uint8_t km[128];
    size_t len = rs_srtp_keying_length((uint16_t)prof->id);
    size_t olen = sizeof(km);
    char err[128] = "";
    if (len > 0 && wolfSSL_export_dtls_srtp_keying_material(d->ssl, km, &olen) == WOLFSSL_SUCCESS &&
        olen == len)
        d->srtp = rs_srtp_new((uint16_t)prof->id, km, len, !d->server, err, sizeof(err));
    memset(km, 0, sizeof(km));
    if (!d->srtp) {
        rs_log_error(d->core.base.log, LOG_DTLS, "dtls %p: SRTP with %s: %s", (void *)d, prof->name,
                     err[0] ? err : "no keying material");
        return false;
    }
    d->srtp_profile = (uint16_t)prof->id;
    return true;
}

static void app_write(struct rs_dtls *d, const uint8_t *buf, size_t len);

static void begin_close(struct rs_dtls *d)
{
    d->state = D_CLOSING;
    wolfSSL_shutdown(d->ssl); /* close_notify, through io_send */
    if (d->sends_out == 0)
        end(d, SOCKET_SHUTDOWN_NORMAL);
}

static void handshake_done(struct rs_dtls *d)
{
    d->state = D_OPEN;
    ITimer_Cancel(d->rtx_timer);
    ITimer_Cancel(d->hs_timer);
    d->peer_fp_valid = rs_tls_peer_fingerprint(d->ssl, d->peer_fp);
    if (d->use_srtp && !start_srtp(d)) {
        end(d, SOCKET_TLS_HANDSHAKE_FAILED);
        return;
    }
    LOG(d, "dtls %p: %s %s%s%s", (void *)d, wolfSSL_get_version(d->ssl),
        wolfSSL_get_cipher_name(d->ssl), d->srtp ? " srtp=" : "",
        d->srtp ? rs_srtp_profile_name(d->srtp_profile) : "");
    rs_core_event(&d->core, d->server ? RS_EV_ACCEPTED : RS_EV_CONNECTED);
    while (d->pending && d->state == D_OPEN) {
        struct dmsg *m = d->pending;
        d->pending = m->next;
        if (!d->pending)
            d->pending_tail = NULL;
        app_write(d, m->bytes, m->len);
        free(m);
    }
    if (d->state == D_OPEN && d->core.shutdown_requested)
        begin_close(d);
}

static void read_records(struct rs_dtls *d)
{
    /* Decrypted records are copied out at once, so one on the stack serves (per-thread
     * storage would stay with every thread of the process, loop or not, after its loop). */
    uint8_t plain[RS_DTLS_DGRAM_MAX];
    while (d->state == D_OPEN || d->state == D_CLOSING) {
        int n = wolfSSL_read(d->ssl, plain, (int)sizeof(plain));
        if (n > 0) {
            free_list(&d->flight, &d->flight_tail); /* the peer is done: it sends data */
            if (d->state == D_OPEN)
                deliver_message(d, plain, (size_t)n);
            continue;
        }
        int err = wolfSSL_get_error(d->ssl, n);
        if (err == WOLFSSL_ERROR_WANT_READ || err == WOLFSSL_ERROR_WANT_WRITE)
            return;
        if (err == WOLFSSL_ERROR_ZERO_RETURN) {
            LOG(d, "dtls %p: close_notify from the peer", (void *)d);
            end(d, d->state == D_CLOSING ? SOCKET_SHUTDOWN_NORMAL : SOCKET_SHUTDOWN_BY_PEER);
        } else {
            log_failure(d, "read", n);
            end(d, SOCKET_LOST);
        }
        return;
    }
}

/* The handshake failed: the peer should learn why, at once rather than by its timeout.
 * wolfSSL sends no alert for some failures (a client that sent no certificate to a server
 * that requires one); then a fatal handshake_failure goes out in the clear, as a peer that
 * has not seen our ChangeCipherSpec reads it, with a record number far beyond any used. */
static void send_held_alert(struct rs_dtls *d)
{
    static const uint8_t handshake_failure[] = {21,   0xfe, 0xfd, 0, 0, 0x00, 0x00, 0x7f,
                                                0xff, 0xff, 0xff, 0, 2, 2,    40};
    if (!d->port)
        return;
    if (d->held_alert_len > 0)
        rs_port_send(d->port, &d->peer, d->held_alert, d->held_alert_len, NULL, false);
    else
        rs_port_send(d->port, &d->peer, handshake_failure, sizeof(handshake_failure), NULL, false);
    d->held_alert_len = 0;
}

/* Runs wolfSSL on d->in (or on nothing: a start). The application may delete the socket
 * in a callback made from here, hence the reference. */
static void drive(struct rs_dtls *d)
{
    rs_core_ref(&d->core);
    if (d->state == D_HANDSHAKE) {
        d->held_alert_len = 0;
        free_list(&d->flight, &d->flight_tail);
        d->capture_flight = d->server;
        int r = d->server ? wolfSSL_accept(d->ssl) : wolfSSL_connect(d->ssl);
        d->capture_flight = false;
        if (r != WOLFSSL_SUCCESS) {
            free_list(&d->flight, &d->flight_tail);
            if (wolfSSL_get_error(d->ssl, r) == WOLFSSL_ERROR_WANT_READ) {
                arm_rtx(d); /* and an alert it sent on the way is dropped */
            } else {
                log_failure(d, "handshake", r);
                send_held_alert(d);
                end(d, SOCKET_TLS_HANDSHAKE_FAILED);
            }
            goto out;
        }
        handshake_done(d);
    }
    if (d->state == D_OPEN || d->state == D_CLOSING)
        read_records(d);
out:
    d->in.data = NULL;
    rs_core_unref(&d->core);
}

/* ---- what the port calls ----------------------------------------------------------------------
 */

static void srtp_in(struct rs_dtls *d, uint8_t *buf, size_t len)
{
    if (!d->srtp || d->state != D_OPEN) {
        d->core.base.stats.dropped++;
        return;
    }
    enum rs_srtp_status st = rs_srtp_unprotect(d->srtp, buf, &len);
    if (st != RS_SRTP_OK) {
        /* the first of a kind, then every 1000th: a flood must not flood the log */
        unsigned kind = 1u << st;
        if (!(d->srtp_drop_kinds & kind) || d->srtp_dropped % 1000 == 0)
            LOG(d, "dtls %p: SRTP packet dropped: %s (%llu so far)", (void *)d,
                rs_srtp_status_str(st), (unsigned long long)d->srtp_dropped + 1);
        d->srtp_drop_kinds |= kind;
        d->srtp_dropped++;
        d->core.base.stats.dropped++;
        return;
    }
    free_list(&d->flight, &d->flight_tail); /* the peer is done: it sends media */
    deliver_message(d, buf, len);
}

/* True if the datagram holds a handshake record of an epoch above 0: the client's
 * Finished, sent again because it did not get ours. */
static bool has_encrypted_handshake(const uint8_t *p, size_t len)
{
    while (len >= 13) {
        size_t rl = 13 + ((size_t)p[11] << 8 | p[12]);
        if (p[0] == 22 && (p[3] | p[4]) != 0)
            return true;
        if (rl > len)
            break;
        p += rl;
        len -= rl;
    }
    return false;
}

/* A server whose last flight (ChangeCipherSpec, Finished) was lost hears the client's
 * flight again; wolfSSL 5.5.4 drops that without answering once its handshake is done,
 * and the client would time out. So the server answers it with the flight it kept. */
static void resend_flight(struct rs_dtls *d)
{
    for (struct dmsg *m = d->flight; m; m = m->next)
        rs_port_send(d->port, &d->peer, m->bytes, m->len, NULL, false);
}

void rs_dtls_datagram(struct rs_dtls *d, uint8_t *buf, size_t len)
{
    switch (rs_demux(buf, len)) {
    case RS_DEMUX_DTLS:
        if (d->state != D_HANDSHAKE && d->state != D_OPEN && d->state != D_CLOSING)
            return;
        if (d->state == D_OPEN && d->flight && has_encrypted_handshake(buf, len))
            resend_flight(d);
        d->in = (struct rs_dgram_in){buf, len};
        drive(d);
        break;
    case RS_DEMUX_RTP:
        if (d->use_srtp)
            srtp_in(d, buf, len);
        else
            d->core.base.stats.dropped++;
        break;
    default: /* STUN and the rest: not for a DTLS socket */
        d->core.base.stats.dropped++;
    }
}

void rs_dtls_new_peer(struct rs_dtls *l, const struct rs_peer *peer, const uint8_t *hello,
                      size_t len)
{
    char addr[64];
    IPaddr_ToString(&peer->addr, addr, sizeof(addr));
    rs_core_ref(&l->core);
    l->offer = peer;
    l->accepted = NULL;
    rs_cb_listen_result(&l->core.base, addr, peer->port);
    l->offer = NULL;
    struct rs_dtls *c = l->accepted;
    l->accepted = NULL;
    if (c) {
        c->in = (struct rs_dgram_in){hello, len};
        begin_handshake(c, NULL);
    } else {
        LOG(l, "dtls %p: peer %s:%u not accepted", (void *)l, addr, peer->port);
    }
    rs_core_unref(&l->core);
}

void rs_dtls_port_bound(struct rs_dtls *d, const char *addr, uint16_t port)
{
    if (d->state == D_UDP)
        d->state = D_LISTENING;
    rs_core_bound(&d->core, addr, port);
}

void rs_dtls_port_connected(struct rs_dtls *d)
{
    if (d->state != D_UDP)
        return;
    begin_handshake(d, d->server_name);
}

void rs_dtls_port_closed(struct rs_dtls *d, shutdownreason_t reason)
{
    if (d->state == D_HANDSHAKE)
        reason = SOCKET_TLS_HANDSHAKE_FAILED;
    end(d, reason);
}

void rs_dtls_send_done(struct rs_dtls *d, bool app)
{
    d->sends_out--;
    if (app && !d->core.deleted && !d->core.closed_delivered) {
        d->core.ready_results++;
        rs_core_event(&d->core, RS_EV_SENDS);
    }
    if (d->state == D_CLOSING && d->sends_out == 0)
        end(d, SOCKET_SHUTDOWN_NORMAL);
    rs_core_unref(&d->core);
}

/* ---- the application's calls ---------------------------------------------------------------- */

static void send_result_now(struct rs_dtls *d)
{
    d->core.ready_results++;
    rs_core_event(&d->core, RS_EV_SENDS);
}

static void app_write(struct rs_dtls *d, const uint8_t *buf, size_t len)
{
    if (d->srtp) {
        uint8_t pkt[RS_DTLS_DGRAM_MAX];
        size_t n = len;
        enum rs_srtp_status st = RS_SRTP_NO_ROOM;
        if (len <= sizeof(pkt)) {
            memcpy(pkt, buf, len);
            st = rs_srtp_protect(d->srtp, pkt, &n, sizeof(pkt));
        }
        if (st != RS_SRTP_OK) {
            LOG(d, "dtls %p: cannot protect a %zu-byte packet: %s", (void *)d, len,
                rs_srtp_status_str(st));
            send_result_now(d);
            return;
        }
        d->core.base.stats.bytesSent += len;
        rs_port_send(d->port, &d->peer, pkt, n, d, true);
        return;
    }
    d->written = 0;
    d->in_app_write = true;
    int n = wolfSSL_write(d->ssl, buf, (int)len);
    d->in_app_write = false;
    if (n == (int)len) {
        d->core.base.stats.bytesSent += len;
    } else {
        log_failure(d, "write", n); /* too large for a record, most likely */
    }
    if (d->written == 0)
        send_result_now(d);
}

static void dtls_connect(ISocket *is, const char *address, const char *serverName)
{
    struct rs_dtls *d = D(is);
    free(d->server_name);
    d->server_name = serverName ? strdup(serverName) : NULL;
    d->state = D_UDP;
    struct rs_sockaddr sa; /* the address the UDP socket connects to: the server's identity */
    d->peer_known = address && rs_addr_parse_hostport(address, &sa);
    if (d->peer_known)
        rs_addr_to_ipaddr(&sa.u.sa, &d->peer.addr, &d->peer.port);
    d->port = rs_port_new(is->mux, is->log, d->ctx, d->v6, true);
    d->port->owner = d;
    LOG(d, "dtls %p connecting to %s%s", (void *)d, address ? address : "(null)",
        d->use_srtp ? " (SRTP)" : "");
    ISocket_Connect(d->port->udp, address, NULL);
    if (d->qos >= 0)
        ISocket_SetQoS(d->port->udp, (qostraffictype_t)d->qos);
}

static void dtls_bind(ISocket *is, const char *addr, uint16_t port, bool reuse)
{
    struct rs_dtls *d = D(is);
    d->state = D_UDP;
    d->port = rs_port_new(is->mux, is->log, d->ctx, d->v6, false);
    d->port->owner = d;
    ISocket_BindReuse(d->port->udp, addr, port, reuse);
    if (d->qos >= 0)
        ISocket_SetQoS(d->port->udp, (qostraffictype_t)d->qos);
}

static void dtls_listen(ISocket *is)
{
    (void)is; /* a bound DTLS socket reports new peers from the start */
}

static void dtls_accept(ISocket *is, USocket *user)
{
    struct rs_dtls *l = D(is);
    if (!user || !l->offer || !l->port)
        return;
    struct rs_dtls *c = dtls_new(is->mux, user, is->log, l->ctx, l->v6);
    rs_core_accepted(&c->core);
    c->server = true;
    c->peer = *l->offer;
    c->port = l->port;
    c->port->refs++;
    c->qos = l->qos;
    rs_port_add(c->port, c);
    l->accepted = c;
}

static void dtls_shutdown(ISocket *is)
{
    struct rs_dtls *d = D(is);
    if (d->core.shutdown_requested || d->state == D_CLOSED)
        return;
    d->core.shutdown_requested = true;
    switch (d->state) {
    case D_OPEN:
        begin_close(d);
        break;
    case D_UDP:
    case D_HANDSHAKE:
        if (!d->pending)
            end(d, SOCKET_SHUTDOWN_NORMAL);
        break; /* the queued sends go out once the handshake is done, then it closes */
    default:
        end(d, SOCKET_SHUTDOWN_NORMAL); /* a listener: the associations carry on */
    }
}

static void dtls_send(ISocket *is, const void *buf, size_t len, bool nocopy)
{
    (void)nocopy;              /* encryption copies anyway */
    struct rs_dtls *d = D(is); /* a bound one never gets here: ISocket_Send refuses it */
    if (d->core.shutdown_requested || d->state == D_CLOSED || d->state == D_CLOSING)
        return;
    if (d->state == D_OPEN) {
        app_write(d, buf, len);
        return;
    }
    append(&d->pending, &d->pending_tail, buf, len);
}

static void dtls_send_to(ISocket *is, const void *buf, size_t len, IPaddr addr, uint16_t port)
{
    (void)buf;
    (void)len;
    (void)addr;
    (void)port;
    rs_socket_misuse(is, "ISocket_SendTo on a DTLS socket (use Send on its association)");
}

static void dtls_recv(ISocket *is)
{
    struct rs_dtls *d = D(is); /* a message is a datagram, partial or not */
    struct dmsg *m = d->qhead;
    if (m) {
        d->qhead = m->next;
        if (!d->qhead)
            d->qtail = NULL;
        d->qlen--;
        fill_receive(d, m->bytes, m->len);
        free(m);
    }
}

static void dtls_recv_cancel(ISocket *is)
{
    struct rs_dtls *d = D(is);
    if (d->core.pending & RS_EV_RECV_DONE) { /* taken already: it goes back to the front */
        struct dmsg *m = malloc(sizeof(*m) + d->core.rfill);
        if (!m)
            rs_fatal("ISocket_RecvCancel: out of memory");
        m->len = d->core.rfill;
        memcpy(m->bytes, d->core.rbuf, d->core.rfill);
        m->next = d->qhead;
        d->qhead = m;
        if (!d->qtail)
            d->qtail = m;
        d->qlen++;
    }
}

static void dtls_get_local_address(ISocket *is, char *out, unsigned size, uint16_t *port)
{
    struct rs_dtls *d = D(is);
    if (d->port && d->port->udp && !d->port->udp_closed) {
        ISocket_GetLocalAddress(d->port->udp, out, size, port);
        return;
    }
    if (size > 0)
        out[0] = '\0';
    if (port)
        *port = 0;
}

static void dtls_set_qos(ISocket *is, qostraffictype_t type)
{
    struct rs_dtls *d = D(is);
    d->qos = (int)type;
    if (d->port && d->port->udp && !d->port->udp_closed)
        ISocket_SetQoS(d->port->udp, type);
}

static void dtls_destroy(ISocket *is)
{
    struct rs_dtls *d = D(is);
    rs_core_delete(&d->core);
    d->state = D_CLOSED;
    release(d);
    d->core.rbuf = NULL;
    /* Results still owed for its datagrams are nobody's now: the socket goes at once, and
     * with the last user so does the port (an IIoMux deleted next leaks nothing). */
    if (d->port)
        rs_port_forget(d->port, d);
    rs_core_unref(&d->core);
}

static bool dtls_peer_fingerprint(ISocket *is, uint8_t out[32])
{
    struct rs_dtls *d = D(is);
    if (!d->peer_fp_valid)
        return false;
    memcpy(out, d->peer_fp, 32);
    return true;
}

static const char *dtls_srtp_profile(ISocket *is)
{
    struct rs_dtls *d = D(is);
    return d->srtp ? rs_srtp_profile_name(d->srtp_profile) : NULL;
}

static bool dtls_export(ISocket *is, const char *label, const uint8_t *context, size_t context_len,
                        uint8_t *out, size_t len)
{
    struct rs_dtls *d = D(is);
    if (d->state != D_OPEN || !d->ssl)
        return false;
    return wolfSSL_export_keying_material(d->ssl, out, len, label, strlen(label), context,
                                          context_len, context != NULL) == WOLFSSL_SUCCESS;
}

static const struct rs_socket_ops dtls_ops = {
    .name = "dtls",
    .connect = dtls_connect,
    .bind = dtls_bind,
    .get_local_address = dtls_get_local_address,
    .listen = dtls_listen,
    .accept = dtls_accept,
    .shutdown = dtls_shutdown,
    .send = dtls_send,
    .send_to = dtls_send_to,
    .recv = dtls_recv,
    .recv_cancel = dtls_recv_cancel,
    .set_qos = dtls_set_qos,
    .destroy = dtls_destroy,
    .peer_fingerprint = dtls_peer_fingerprint,
    .srtp_profile = dtls_srtp_profile,
    .export_keying_material = dtls_export,
};

/* ---- the socket core's hooks -------------------------------------------------------------- */

static const struct rs_core_type dtls_core_type = {
    .deliver_listen = NULL, /* delivered as the ClientHello arrives, see rs_dtls_new_peer */
    .canceled_ready = NULL, /* nothing writes into the buffer behind our back */
    .free = dtls_free,
};

ISocket *rs_dtls_create_socket(IIoMux *m, USocket *user, IInstanceLog *log, bool useIPv6,
                               ISocketContext *ctx)
{
    return &dtls_new(m, user, log, ctx, useIPv6)->core.base;
}
