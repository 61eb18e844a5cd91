/* ISocketProvider, ISocketContext and ISocket of the SDK over ringsock's C sockets.
 *
 * Each SDK ISocket is an adapter that owns one C ISocket and one C USocket whose table
 * forwards every callback to the application's USocket, passing the adapter. delete is
 * ISocket_Delete; the engine calls nothing after that, so a callback may delete. */
#include "internal.h"

#include <string.h>

#define SAME_REASON(r) static_assert((int)r == (int)rsc::r, #r " differs from the C enum")
SAME_REASON(SOCKET_SHUTDOWN_NORMAL);
SAME_REASON(SOCKET_SHUTDOWN_BY_PEER);
SAME_REASON(SOCKET_LOST);
SAME_REASON(SOCKET_ADDRESS_INVALID);
SAME_REASON(SOCKET_OPEN_FAILED);
SAME_REASON(SOCKET_CONNECT_FAILED);
SAME_REASON(SOCKET_CONNECT_REJECTED);
SAME_REASON(SOCKET_BIND_FAILED);
SAME_REASON(SOCKET_LISTEN_FAILED);
SAME_REASON(SOCKET_ACCEPT_FAILED);
SAME_REASON(SOCKET_TLS_HANDSHAKE_FAILED);
SAME_REASON(SOCKET_ADDR_IN_USE);
SAME_REASON(SOCKET_ALPN_SELECTION_FAILED);
static_assert((int)QOS_BEST_EFFORT == (int)rsc::QOS_BEST_EFFORT &&
                  (int)QOS_AUDIO_VIDEO == (int)rsc::QOS_AUDIO_VIDEO &&
                  (int)QOS_VOICE == (int)rsc::QOS_VOICE,
              "qostraffictype_t differs from the C enum");
static_assert(sizeof(::IPaddr) == sizeof(rsc::IPaddr), "IPaddr differs from the C union");
static_assert((uint64_t)LOG_TCP == (uint64_t)rsc::LOG_TCP &&
                  (uint64_t)LOG_TLS == (uint64_t)rsc::LOG_TLS &&
                  (uint64_t)LOG_LDS == (uint64_t)rsc::LOG_LDS &&
                  (uint64_t)LOG_UDP == (uint64_t)rsc::LOG_UDP &&
                  (uint64_t)LOG_DTLS == (uint64_t)rsc::LOG_DTLS,
              "socket log flags differ from the C enum");

namespace ringsock_sdk
{

class Socket final : public ::ISocket
{
  public:
    Socket(IoMux *mux, ::USocket *user) : link{{&vtbl}, this}, user(user), mux(mux) {}
    ~Socket() override
    {
        if (held)
            mux->release(this);
        rsc::ISocket_Delete(c);
        delete upgradedFrom;
    }

    void Connect(const char *address, const char *serverName) override
    {
        rsc::ISocket_Connect(c, address, serverName);
    }
    void Bind(const char *localAddr, word localPort) override
    {
        rsc::ISocket_Bind(c, localAddr, localPort);
    }
    void Bind(const char *localAddr, word localPort, bool reuseAddr) override
    {
        rsc::ISocket_BindReuse(c, localAddr, localPort, reuseAddr);
    }
    void GetLocalAddress(char *localAddr, unsigned size, word *localPort) override
    {
        rsc::ISocket_GetLocalAddress(c, localAddr, size, localPort);
    }
    void Listen() override
    {
        rsc::ISocket_Listen(c);
    }
    void Accept(::USocket *remoteUser) override
    {
        if (!remoteUser) {
            rsc::ISocket_Accept(c, nullptr);
            return;
        }
        /* Its C socket arrives with its first callback (SocketAcceptComplete, or
         * SocketShutdown when the connection fails first). */
        Socket *s = new Socket(mux, remoteUser);
        mux->hold(s);
        rsc::ISocket_Accept(c, &s->link.c);
    }
    void Shutdown() override
    {
        rsc::ISocket_Shutdown(c);
    }
    void Send(const void *buf, size_t len) override
    {
        rsc::ISocket_Send(c, buf, len);
    }
    void SendTo(const void *buf, size_t len, ::IPaddr dstAddr, word dstPort) override
    {
        rsc::IPaddr a;
        memcpy(&a, &dstAddr, sizeof(a));
        rsc::ISocket_SendTo(c, buf, len, a, dstPort);
    }
    void Recv(void *buf, size_t len, bool recvPartial) override
    {
        rsc::ISocket_Recv(c, buf, len, recvPartial);
    }
    void SetQoS(qostraffictype_t type) override
    {
        rsc::ISocket_SetQoS(c, (rsc::qostraffictype_t)type);
    }
    void SetUser(::USocket *const u) override
    {
        user = u;
    }
    void RecvCancel() override
    {
        rsc::ISocket_RecvCancel(c);
    }
    void SendNoCopy(const void *buf, size_t len) override
    {
        rsc::ISocket_SendNoCopy(c, buf, len);
    }
    bool GetPeerCertificateFingerprint(byte out[32]) override
    {
        return rsc::ISocket_GetPeerCertificateFingerprint(c, out);
    }
    const char *GetALPNProtocol() override
    {
        return rsc::ISocket_GetALPNProtocol(c);
    }

    /* The C USocket the engine calls; first member, so the engine's pointer is the
     * link's. */
    struct Link {
        rsc::USocket c;
        Socket *self;
    } link;
    rsc::ISocket *c = nullptr;
    ::USocket *user;
    IoMux *const mux;
    Socket *upgradedFrom = nullptr; /* the TCP socket an upgrade took over */
    /* On the loop's list of accepted sockets the application has not received yet. */
    bool held = false;
    Socket *prev = nullptr, *next = nullptr;

    static Socket *of(rsc::USocket *u)
    {
        return reinterpret_cast<Link *>(u)->self;
    }
    /* An accepted socket's first callback: the application has it now. */
    static Socket *claim(rsc::USocket *u, rsc::ISocket *s)
    {
        Socket *k = of(u);
        if (k->held) {
            k->mux->release(k);
            k->c = s;
        }
        return k;
    }

  private:
    static const rsc::USocketVtbl vtbl;
};

static void cb_connect(rsc::USocket *u, rsc::ISocket *)
{
    Socket *k = Socket::of(u);
    k->user->SocketConnectComplete(k);
}

static void cb_bind(rsc::USocket *u, rsc::ISocket *, const char *addr, uint16_t port)
{
    Socket *k = Socket::of(u);
    k->user->SocketBindResult(k, addr, port);
}

static void cb_listen(rsc::USocket *u, rsc::ISocket *, const char *addr, uint16_t port)
{
    Socket *k = Socket::of(u);
    k->user->SocketListenResult(k, addr, port);
}

static void cb_accept(rsc::USocket *u, rsc::ISocket *s)
{
    Socket *k = Socket::claim(u, s);
    k->user->SocketAcceptComplete(k);
}

static void cb_shutdown(rsc::USocket *u, rsc::ISocket *s, rsc::shutdownreason_t reason)
{
    Socket *k = Socket::claim(u, s);
    k->user->SocketShutdown(k, (shutdownreason_t)reason);
}

static void cb_send(rsc::USocket *u, rsc::ISocket *)
{
    Socket *k = Socket::of(u);
    k->user->SocketSendResult(k);
}

static void cb_recv(rsc::USocket *u, rsc::ISocket *, void *buf, size_t len)
{
    Socket *k = Socket::of(u);
    k->user->SocketRecvResult(k, buf, len);
}

static void cb_recv_from(rsc::USocket *u, rsc::ISocket *, void *buf, size_t len, rsc::IPaddr src,
                         uint16_t port)
{
    Socket *k = Socket::of(u);
    ::IPaddr a;
    memcpy(&a, &src, sizeof(a));
    k->user->SocketRecvFromResult(k, buf, len, a, port);
}

static void cb_recv_canceled(rsc::USocket *u, rsc::ISocket *, void *buf)
{
    Socket *k = Socket::of(u);
    k->user->SocketRecvCanceled(k, buf);
}

static void cb_upgraded(rsc::USocket *u, rsc::ISocket *)
{
    Socket *k = Socket::of(u);
    k->user->SocketUpgradeToTLSComplete(k);
}

static bool cb_alpn(rsc::USocket *u, rsc::ISocket *, const char *protocol)
{
    Socket *k = Socket::of(u);
    return k->user->SocketAcceptSelectedALPNProtocol(k, protocol);
}

const rsc::USocketVtbl Socket::vtbl = {
    cb_connect, cb_bind,      cb_listen,        cb_accept,   cb_shutdown, cb_send,
    cb_recv,    cb_recv_from, cb_recv_canceled, cb_upgraded, cb_alpn,
};

void IoMux::hold(Socket *s)
{
    s->held = true;
    list_push(unclaimed, s);
}

void IoMux::release(Socket *s)
{
    list_remove(unclaimed, s);
    s->held = false;
}

void IoMux::drop_unclaimed()
{
    while (unclaimed)
        delete unclaimed; /* its destructor releases it */
}

class Context final : public ::ISocketContext
{
  public:
    explicit Context(rsc::ISocketContext *c) : c(c) {}
    ~Context() override
    {
        rsc::ISocketContext_Delete(c);
    }
    void EnableDTLS(bool useSrtp) override
    {
        rsc::ISocketContext_EnableDTLS(c, useSrtp);
    }
    void SetServerCertificate(const byte *cert, size_t certLen, const char *hostName) override
    {
        rsc::ISocketContext_SetServerCertificate(c, cert, certLen, hostName);
    }
    void SetClientCertificate(const byte *cert, size_t certLen, const char *hostName) override
    {
        rsc::ISocketContext_SetClientCertificate(c, cert, certLen, hostName);
    }
    const byte *GetCertificateFingerprint(size_t *length) override
    {
        return rsc::ISocketContext_GetCertificateFingerprint(c, length);
    }
    void DisableClientCertificate() override
    {
        rsc::ISocketContext_DisableClientCertificate(c);
    }
    void SetALPNProcotols(const char *const *alpnList) override
    {
        rsc::ISocketContext_SetALPNProtocols(c, alpnList);
    }
    void SetTrustedCertificates(const byte *pem, size_t len) override
    {
        rsc::ISocketContext_SetTrustedCertificates(c, pem, len);
    }
    void SetVerifyPeer(bool verify) override
    {
        rsc::ISocketContext_SetVerifyPeer(c, verify);
    }
    void RequireClientCertificate(bool require) override
    {
        rsc::ISocketContext_RequireClientCertificate(c, require);
    }
    void EnableKernelTLS(bool enable) override
    {
        rsc::ISocketContext_EnableKernelTLS(c, enable);
    }

    rsc::ISocketContext *const c;
};

static rsc::ISocketContext *c_ctx(::ISocketContext *ctx)
{
    return ctx ? static_cast<Context *>(ctx)->c : nullptr;
}

class Provider final : public ::ISocketProvider
{
  public:
    explicit Provider(rsc::ISocketProvider *c) : c(c) {}
    ~Provider() override
    {
        rsc::ISocketProvider_Delete(c);
    }
    ::ISocketContext *CreateSocketContext(::IInstanceLog *const log) override
    {
        rsc::ISocketContext *ctx = rsc::ISocketProvider_CreateSocketContext(c, c_log(log));
        return ctx ? new Context(ctx) : nullptr;
    }
    ::ISocket *CreateSocket(::IIoMux *const iomux, ::USocket *const user, ::IInstanceLog *const log,
                            bool useIPv6, ::ISocketContext *socketContext) override
    {
        Socket *s = new Socket(static_cast<IoMux *>(iomux), user);
        s->c = rsc::ISocketProvider_CreateSocket(c, c_mux(iomux), &s->link.c, c_log(log), useIPv6,
                                                 c_ctx(socketContext));
        if (!s->c) {
            delete s;
            return nullptr;
        }
        return s;
    }
    ::ISocket *UpgradeToTLSSocket(::ISocket *fromTCPSocket, ::IIoMux *const iomux,
                                  ::USocket *const user, ::IInstanceLog *const log,
                                  bool initServerSide, ::ISocketContext *socketContext) override
    {
        Socket *from = static_cast<Socket *>(fromTCPSocket);
        Socket *s = new Socket(static_cast<IoMux *>(iomux), user);
        s->c = rsc::ISocketProvider_UpgradeToTLSSocket(
            c, from->c, c_mux(iomux), &s->link.c, c_log(log), initServerSide, c_ctx(socketContext));
        /* The TLS socket owns the C TCP socket now; the adapter goes with the TLS one. */
        from->c = nullptr;
        s->upgradedFrom = from;
        return s;
    }

    rsc::ISocketProvider *const c;
};

} // namespace ringsock_sdk

using ringsock_sdk::Provider;

ISocketProvider *CreateTCPSocketProvider()
{
    return new Provider(rsc::CreateTCPSocketProvider());
}

ISocketProvider *CreateTLSSocketProvider(ISocketProvider *tcpSocketProvider)
{
    rsc::ISocketProvider *tcp =
        tcpSocketProvider ? static_cast<Provider *>(tcpSocketProvider)->c : nullptr;
    return new Provider(rsc::CreateTLSSocketProvider(tcp));
}

ISocketProvider *CreateUDPSocketProvider()
{
    return new Provider(rsc::CreateUDPSocketProvider());
}

ISocketProvider *CreateLocalSocketProvider()
{
    return new Provider(rsc::CreateLocalSocketProvider());
}
