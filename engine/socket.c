/* The public ISocket_* entry points: mode and misuse checks happen here, once, for
 * every socket type; then the type's operations table does the work. */
#include <stdio.h>

#include "core.h"
#include "isocket.h"
#include "log_internal.h"

static const char *const reason_names[] = {
    "SOCKET_SHUTDOWN_NORMAL",       "SOCKET_SHUTDOWN_BY_PEER",     "SOCKET_LOST",
    "SOCKET_ADDRESS_INVALID",       "SOCKET_OPEN_FAILED",          "SOCKET_CONNECT_FAILED",
    "SOCKET_CONNECT_REJECTED",      "SOCKET_BIND_FAILED",          "SOCKET_LISTEN_FAILED",
    "SOCKET_ACCEPT_FAILED",         "SOCKET_TLS_HANDSHAKE_FAILED", "SOCKET_ADDR_IN_USE",
    "SOCKET_ALPN_SELECTION_FAILED",
};

const char *SocketShutdownReasonToStr(shutdownreason_t reason)
{
    if ((unsigned)reason < sizeof(reason_names) / sizeof(reason_names[0]))
        return reason_names[reason];
    return "SOCKET_SHUTDOWN_UNKNOWN";
}

static void check_user(USocket *user, const char *call)
{
    if (!user || !user->vtbl || !user->vtbl->SocketShutdown)
        rs_fatal("%s: the USocket must have a SocketShutdown callback", call);
}

void rs_socket_init(ISocket *s, const struct rs_socket_ops *ops, IIoMux *mux, USocket *user,
                    IInstanceLog *log, enum LogFlags flag)
{
    check_user(user, "ISocketProvider_CreateSocket");
    s->ops = ops;
    s->mux = mux;
    s->user = user;
    s->log = log;
    s->log_flag = flag;
    s->mode = RS_MODE_NEW;
}

void rs_socket_misuse(ISocket *s, const char *what)
{
    rs_log_error(s->log, s->log_flag, "%s socket %p: programming error: %s", s->ops->name,
                 (void *)s, what);
    rs_fatal("%s socket: programming error: %s", s->ops->name, what);
}

/* ---- callbacks --------------------------------------------------------------------- */

#define USER_CB(s, name) ((s)->user->vtbl->name)

/* A zero-length Recv may pass NULL, but the socket types take a NULL buffer for "no
 * receive outstanding": it travels as this address and goes back to the application as
 * the NULL it passed. */
static uint8_t no_buffer[1];

static void *app_buffer(void *buf)
{
    return buf == no_buffer ? NULL : buf;
}

void rs_cb_connect_complete(ISocket *s)
{
    rs_callback_check(s->mux, "SocketConnectComplete");
    if (USER_CB(s, SocketConnectComplete))
        USER_CB(s, SocketConnectComplete)(s->user, s);
}

void rs_cb_bind_result(ISocket *s, const char *addr, uint16_t port)
{
    rs_callback_check(s->mux, "SocketBindResult");
    if (USER_CB(s, SocketBindResult))
        USER_CB(s, SocketBindResult)(s->user, s, addr, port);
}

void rs_cb_listen_result(ISocket *s, const char *addr, uint16_t port)
{
    rs_callback_check(s->mux, "SocketListenResult");
    s->in_listen_result = true; /* ISocket_Accept is legal only now, once */
    s->accept_called = false;
    if (USER_CB(s, SocketListenResult))
        USER_CB(s, SocketListenResult)(s->user, s, addr, port);
    s->in_listen_result = false;
}

void rs_cb_accept_complete(ISocket *s)
{
    rs_callback_check(s->mux, "SocketAcceptComplete");
    if (USER_CB(s, SocketAcceptComplete))
        USER_CB(s, SocketAcceptComplete)(s->user, s);
}

void rs_cb_shutdown(ISocket *s, shutdownreason_t reason)
{
    rs_callback_check(s->mux, "SocketShutdown");
    USER_CB(s, SocketShutdown)(s->user, s, reason);
}

void rs_cb_send_result(ISocket *s)
{
    rs_callback_check(s->mux, "SocketSendResult");
    s->stats.sends++; /* completed calls, counted here for every socket type */
    if (USER_CB(s, SocketSendResult))
        USER_CB(s, SocketSendResult)(s->user, s);
}

void rs_cb_recv_result(ISocket *s, void *buf, size_t len)
{
    rs_callback_check(s->mux, "SocketRecvResult");
    s->stats.recvs++;
    if (USER_CB(s, SocketRecvResult))
        USER_CB(s, SocketRecvResult)(s->user, s, app_buffer(buf), len);
}

void rs_cb_recv_from_result(ISocket *s, void *buf, size_t len, IPaddr addr, uint16_t port)
{
    rs_callback_check(s->mux, "SocketRecvFromResult");
    s->stats.recvs++;
    if (USER_CB(s, SocketRecvFromResult))
        USER_CB(s, SocketRecvFromResult)(s->user, s, app_buffer(buf), len, addr, port);
}

void rs_cb_recv_canceled(ISocket *s, void *buf)
{
    rs_callback_check(s->mux, "SocketRecvCanceled");
    if (USER_CB(s, SocketRecvCanceled))
        USER_CB(s, SocketRecvCanceled)(s->user, s, app_buffer(buf));
}

void rs_cb_upgrade_complete(ISocket *s)
{
    rs_callback_check(s->mux, "SocketUpgradeToTLSComplete");
    if (USER_CB(s, SocketUpgradeToTLSComplete))
        USER_CB(s, SocketUpgradeToTLSComplete)(s->user, s);
}

bool rs_cb_accept_alpn(ISocket *s, const char *protocol)
{
    rs_callback_check(s->mux, "SocketAcceptSelectedALPNProtocol");
    if (USER_CB(s, SocketAcceptSelectedALPNProtocol))
        return USER_CB(s, SocketAcceptSelectedALPNProtocol)(s->user, s, protocol);
    return true;
}

/* ---- public entry points ----------------------------------------------------------- */

#define API_CALL(s, expr)                                                                          \
    do {                                                                                           \
        rs_api_enter((s)->mux);                                                                    \
        expr;                                                                                      \
        rs_api_leave((s)->mux);                                                                    \
    } while (0)

void ISocket_Delete(ISocket *s)
{
    if (!s)
        return;
    IIoMux *m = s->mux;
    rs_api_enter(m);
    s->ops->destroy(s);
    rs_api_leave(m);
}

void ISocket_Connect(ISocket *s, const char *address, const char *serverName)
{
    if (s->mode == RS_MODE_SERVER)
        rs_socket_misuse(s, "ISocket_Connect after ISocket_Bind");
    if (s->mode == RS_MODE_ACCEPTED)
        rs_socket_misuse(s, "ISocket_Connect on an accepted socket");
    if (s->mode == RS_MODE_CLIENT)
        rs_socket_misuse(s, "ISocket_Connect called twice");
    s->mode = RS_MODE_CLIENT;
    API_CALL(s, s->ops->connect(s, address, serverName));
}

void ISocket_BindReuse(ISocket *s, const char *localAddr, uint16_t localPort, bool reuseAddr)
{
    if (s->mode == RS_MODE_CLIENT)
        rs_socket_misuse(s, "ISocket_Bind after ISocket_Connect");
    if (s->mode == RS_MODE_ACCEPTED)
        rs_socket_misuse(s, "ISocket_Bind on an accepted socket");
    if (s->mode == RS_MODE_SERVER)
        rs_socket_misuse(s, "ISocket_Bind called twice");
    s->mode = RS_MODE_SERVER;
    API_CALL(s, s->ops->bind(s, localAddr, localPort, reuseAddr));
}

void ISocket_Bind(ISocket *s, const char *localAddr, uint16_t localPort)
{
    ISocket_BindReuse(s, localAddr, localPort, false);
}

void ISocket_GetLocalAddress(ISocket *s, char *localAddr, unsigned size, uint16_t *localPort)
{
    s->ops->get_local_address(s, localAddr, size, localPort);
}

void ISocket_Listen(ISocket *s)
{
    if (!s->ops->listen)
        rs_socket_misuse(s, "ISocket_Listen on a socket type that does not listen");
    if (s->mode == RS_MODE_CLIENT)
        rs_socket_misuse(s, "ISocket_Listen after ISocket_Connect");
    if (s->mode != RS_MODE_SERVER)
        rs_socket_misuse(s, "ISocket_Listen without ISocket_Bind");
    API_CALL(s, s->ops->listen(s));
}

void ISocket_Accept(ISocket *s, USocket *remoteUser)
{
    if (!s->in_listen_result)
        rs_socket_misuse(s, "ISocket_Accept outside SocketListenResult");
    if (s->accept_called)
        rs_socket_misuse(s, "ISocket_Accept called twice for one connection");
    if (remoteUser)
        check_user(remoteUser, "ISocket_Accept");
    s->accept_called = true;
    API_CALL(s, s->ops->accept(s, remoteUser));
}

void ISocket_Shutdown(ISocket *s)
{
    API_CALL(s, s->ops->shutdown(s));
}

/* A NULL buffer with a length is a programming error; a zero-length call is odd but
 * legal: logged, and handled like any other (its buffer, possibly NULL, is never read or
 * written). Returns the buffer to pass on, never NULL. */
static const void *check_buffer(ISocket *s, const void *buf, size_t len, const char *call)
{
    if (len > 0 && !buf) {
        char what[96];
        snprintf(what, sizeof(what), "%s with a NULL buffer", call);
        rs_socket_misuse(s, what);
    }
    if (len == 0)
        IInstanceLog_Log(s->log, s->log_flag, "%s %p: zero-length %s", s->ops->name, (void *)s,
                         call);
    return buf ? buf : no_buffer;
}

static void send_common(ISocket *s, const void *buf, size_t len, bool nocopy, const char *call)
{
    if (s->mode == RS_MODE_NEW || !s->ops->send) {
        char what[96];
        snprintf(what, sizeof(what), "%s before ISocket_Connect", call);
        rs_socket_misuse(s, what);
    }
    if (s->mode == RS_MODE_SERVER) {
        char what[96];
        snprintf(what, sizeof(what), "%s after ISocket_Bind", call);
        rs_socket_misuse(s, what);
    }
    buf = check_buffer(s, buf, len, call);
    API_CALL(s, s->ops->send(s, buf, len, nocopy));
}

void ISocket_Send(ISocket *s, const void *buf, size_t len)
{
    send_common(s, buf, len, false, "ISocket_Send");
}

void ISocket_SendNoCopy(ISocket *s, const void *buf, size_t len)
{
    send_common(s, buf, len, true, "ISocket_SendNoCopy");
}

void ISocket_SendTo(ISocket *s, const void *buf, size_t len, IPaddr dstAddr, uint16_t dstPort)
{
    buf = check_buffer(s, buf, len, "ISocket_SendTo");
    if (!s->ops->send_to) { /* the SDK's stream sockets inherit a SendTo that does nothing */
        rs_log_error(s->log, s->log_flag,
                     "%s socket %p: ISocket_SendTo on a stream socket: ignored", s->ops->name,
                     (void *)s);
        return;
    }
    API_CALL(s, s->ops->send_to(s, buf, len, dstAddr, dstPort));
}

/* A zero-length receive is complete at once on a stream (the socket type delivers it from
 * the loop once connected) and takes one message cut to nothing on a datagram socket. */
void ISocket_Recv(ISocket *s, void *buf, size_t len, bool recvPartial)
{
    if (s->mode == RS_MODE_NEW)
        rs_socket_misuse(s, "ISocket_Recv before ISocket_Connect");
    if (s->mode == RS_MODE_SERVER && s->ops->listen)
        rs_socket_misuse(s, "ISocket_Recv after ISocket_Bind");
    buf = (void *)check_buffer(s, buf, len, "ISocket_Recv");
    struct rs_core *c = rs_core_of(s);
    if (c->shutdown_requested || c->closed_delivered || c->deleted)
        return; /* ignored after Shutdown */
    if (c->rbuf)
        rs_socket_misuse(s, "ISocket_Recv while another receive is outstanding");
    c->rbuf = buf;
    c->rlen = len;
    c->rfill = 0;
    c->rpartial = recvPartial;
    c->rfrom = false;
    API_CALL(s, s->ops->recv(s));
}

/* The type takes back what the buffer already holds (the next Recv gets it first); the
 * core then owes the buffer's SocketRecvCanceled. */
void ISocket_RecvCancel(ISocket *s)
{
    struct rs_core *c = rs_core_of(s);
    if (!c->rbuf || c->closed_delivered)
        return; /* nothing outstanding */
    API_CALL(s, {
        s->ops->recv_cancel(s);
        rs_core_cancel_recv(c);
    });
}

void ISocket_SetQoS(ISocket *s, qostraffictype_t type)
{
    s->ops->set_qos(s, type);
}

void ISocket_SetUser(ISocket *s, USocket *user)
{
    check_user(user, "ISocket_SetUser");
    s->user = user;
}

bool ISocket_GetPeerCertificateFingerprint(ISocket *s, uint8_t out[32])
{
    return s->ops->peer_fingerprint && s->ops->peer_fingerprint(s, out);
}

const char *ISocket_GetALPNProtocol(ISocket *s)
{
    return s->ops->alpn_protocol ? s->ops->alpn_protocol(s) : NULL;
}

const char *ISocket_GetSRTPProfile(ISocket *s)
{
    return s->ops->srtp_profile ? s->ops->srtp_profile(s) : NULL;
}

bool ISocket_ExportKeyingMaterial(ISocket *s, const char *label, const uint8_t *context,
                                  size_t contextLen, uint8_t *out, size_t len)
{
    return label && out && s->ops->export_keying_material &&
           s->ops->export_keying_material(s, label, context, contextLen, out, len);
}

unsigned ISocket_GetKernelTLS(ISocket *s)
{
    return s && s->ops->kernel_tls ? s->ops->kernel_tls(s) : 0;
}

void ISocket_GetStats(ISocket *s, ISocketStats *stats)
{
    *stats = s->stats;
}
