/* ringsock SDK headers — common/interface/socket.h: the SDK's socket classes
 * (ISocketProvider, ISocketContext, ISocket, USocket) with its signatures and defaults,
 * running on ringsock's C engine (docs/sdk-cxx.md). Every object is freed with delete.
 *
 * The four Create*SocketProvider functions have C++ linkage here, where the SDK declares
 * them extern "C": the C library exports C functions of the same names, and the two must
 * not be one symbol. Applications call them exactly as in the SDK. */
#ifndef RINGSOCK_SDK_SOCKET_H
#define RINGSOCK_SDK_SOCKET_H

#include "platform/platform.h"

class IIoMux;
class IInstanceLog;

/* The SDK's reasons, in its order (and ringsock's C enum's: the library checks). */
typedef enum {
    SOCKET_SHUTDOWN_NORMAL,
    SOCKET_SHUTDOWN_BY_PEER,
    SOCKET_LOST,
    SOCKET_ADDRESS_INVALID,
    SOCKET_OPEN_FAILED,
    SOCKET_CONNECT_FAILED,
    SOCKET_CONNECT_REJECTED,
    SOCKET_BIND_FAILED,
    SOCKET_LISTEN_FAILED,
    SOCKET_ACCEPT_FAILED,
    SOCKET_TLS_HANDSHAKE_FAILED,
    SOCKET_ADDR_IN_USE,
    SOCKET_ALPN_SELECTION_FAILED /* SocketAcceptSelectedALPNProtocol returned false */
} shutdownreason_t;

typedef enum {
    QOS_BEST_EFFORT,
    QOS_AUDIO_VIDEO,
    QOS_VOICE,
} qostraffictype_t;

class USocket;

class ISocket
{
  public:
    virtual ~ISocket() {}
    virtual void Connect(const char *address, const char *serverName = NULL) = 0;
    virtual void Bind(const char *localAddr = NULL, word localPort = 0) = 0;
    virtual void Bind(const char *localAddr, word localPort, bool reuseAddr)
    {
        (void)localAddr, (void)localPort, (void)reuseAddr;
    }
    virtual void GetLocalAddress(char *localAddr, unsigned size, word *localPort)
    {
        (void)localAddr, (void)size, (void)localPort;
    }
    virtual void Listen() = 0;
    virtual void Accept(class USocket *remoteUser) = 0; /* NULL rejects */
    virtual void Shutdown() = 0;
    virtual void Send(const void *buf, size_t len) = 0;
    virtual void SendTo(const void *buf, size_t len, IPaddr dstAddr, word dstPort)
    {
        (void)buf, (void)len, (void)dstAddr, (void)dstPort;
    }
    virtual void Recv(void *buf, size_t len, bool recvPartial = false) = 0;
    virtual void SetQoS(qostraffictype_t type)
    {
        (void)type;
    }
    virtual void SetUser(class USocket *const user) = 0;

    /* ---- Extensions (not in the SDK's ISocket; ringsock's C calls of the same names) --- */
    /* Gives the outstanding Recv buffer back through SocketRecvCanceled; the socket stays
     * open. */
    virtual void RecvCancel() {}
    /* Send without a copy: buf stays the caller's, unchanged, until this send's
     * SocketSendResult (or until SocketShutdown, or delete, if the socket ends first). */
    virtual void SendNoCopy(const void *buf, size_t len)
    {
        Send(buf, len);
    }
    /* TLS/DTLS: SHA-256 of the peer's certificate (DER) once the handshake is done. */
    virtual bool GetPeerCertificateFingerprint(byte out[32])
    {
        (void)out;
        return false;
    }
    /* TLS: the ALPN protocol the handshake settled on, or NULL. */
    virtual const char *GetALPNProtocol()
    {
        return NULL;
    }
};

/* The application's side. One USocket may serve many sockets: the socket is always
 * passed. SocketShutdown and SocketRecvCanceled are required; the others default to doing
 * nothing (SocketAcceptSelectedALPNProtocol to accepting). No callback ever runs inside
 * the call that caused it; after SocketShutdown none comes for that socket, and the
 * socket may be deleted inside any callback. */
class USocket
{
  public:
    virtual ~USocket() {}
    virtual void SocketConnectComplete(ISocket *const socket)
    {
        (void)socket;
    }
    virtual void SocketBindResult(ISocket *const socket, const char *localAddr, word localPort)
    {
        (void)socket, (void)localAddr, (void)localPort;
    }
    virtual void SocketListenResult(ISocket *const socket, const char *remoteAddr, word remotePort)
    {
        (void)socket, (void)remoteAddr, (void)remotePort;
    }
    virtual void SocketAcceptComplete(ISocket *const socket)
    {
        (void)socket;
    }
    virtual void SocketShutdown(ISocket *const socket, shutdownreason_t reason) = 0;
    virtual void SocketSendResult(ISocket *const socket)
    {
        (void)socket;
    }
    virtual void SocketRecvResult(ISocket *const socket, void *buf, size_t len)
    {
        (void)socket, (void)buf, (void)len;
    }
    virtual void SocketRecvFromResult(ISocket *const socket, void *buf, size_t len, IPaddr dstAddr,
                                      word dstPort)
    {
        (void)socket, (void)buf, (void)len, (void)dstAddr, (void)dstPort;
    }
    virtual void SocketRecvCanceled(ISocket *const socket, void *buf) = 0;
    virtual void SocketUpgradeToTLSComplete(ISocket *const socket)
    {
        (void)socket;
    }
    virtual bool SocketAcceptSelectedALPNProtocol(ISocket *const socket, const char *protocol)
    {
        (void)socket, (void)protocol;
        return true;
    }
};

/* Settings shared by sockets (certificates, DTLS, ALPN). It must outlive the sockets that
 * use it. */
class ISocketContext
{
  public:
    virtual ~ISocketContext() {}
    virtual void EnableDTLS(bool useSrtp)
    {
        (void)useSrtp;
    }
    /* PEM: the certificate chain and its private key. A server without one uses a
     * self-signed certificate made at start. */
    virtual void SetServerCertificate(const byte *cert, size_t certLen, const char *hostName = NULL)
    {
        (void)cert, (void)certLen, (void)hostName;
    }
    virtual void SetClientCertificate(const byte *cert, size_t certLen, const char *hostName = NULL)
    {
        (void)cert, (void)certLen, (void)hostName;
    }
    /* SHA-256 of the local certificate (DER), 32 bytes. */
    virtual const byte *GetCertificateFingerprint(size_t *length)
    {
        (void)length;
        return NULL;
    }
    virtual void DisableClientCertificate() {}
    /* NULL-terminated list (the SDK's spelling). */
    virtual void SetALPNProcotols(const char *const *alpnList)
    {
        (void)alpnList;
    }

    /* ---- Extensions (ringsock's C calls of the same names) --------------------------- */
    /* Trust these PEM certificates instead of the system store. */
    virtual void SetTrustedCertificates(const byte *pem, size_t len)
    {
        (void)pem, (void)len;
    }
    /* false: a client accepts any server certificate. Default true: TLS and DTLS clients
     * verify the server's chain and name. */
    virtual void SetVerifyPeer(bool verify)
    {
        (void)verify;
    }
    virtual void RequireClientCertificate(bool require)
    {
        (void)require;
    }
    virtual void EnableKernelTLS(bool enable)
    {
        (void)enable;
    }
};

class ISocketProvider
{
  public:
    virtual ~ISocketProvider() {}
    virtual ISocketContext *CreateSocketContext(class IInstanceLog *const log) = 0;
    virtual ISocket *CreateSocket(class IIoMux *const iomux, USocket *const user,
                                  class IInstanceLog *const log, bool useIPv6,
                                  class ISocketContext *socketContext = NULL) = 0;
    /* TLS providers: takes over a connected TCP socket (StartTLS). The returned socket
     * owns fromTCPSocket, which the application forgets (deleting the TLS socket deletes
     * it). Other providers assert, as in the SDK. */
    virtual ISocket *UpgradeToTLSSocket(class ISocket *fromTCPSocket, IIoMux *const iomux,
                                        USocket *const user, IInstanceLog *const log,
                                        bool initServerSide = false,
                                        class ISocketContext *socketContext = NULL)
    {
        (void)fromTCPSocket, (void)iomux, (void)user, (void)log, (void)initServerSide,
            (void)socketContext;
        ASSERT(false, "UpgradeToTLSSocket() only allowed for TLSSocketProviders!");
        return NULL;
    }
};

ISocketProvider *CreateUDPSocketProvider();
ISocketProvider *CreateTCPSocketProvider();
ISocketProvider *
CreateTLSSocketProvider(ISocketProvider *tcpSocketProvider); /* NULL: upgrade only */
ISocketProvider *CreateLocalSocketProvider();

#endif
