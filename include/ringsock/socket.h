/* ringsock — the SDK's socket interface (ISocketProvider, ISocketContext, ISocket,
 * USocket) in COM-style C. See README.md for the semantics every socket type honours. */
#ifndef RINGSOCK_SOCKET_H
#define RINGSOCK_SOCKET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ringsock/iomux.h>
#include <ringsock/ipaddr.h>
#include <ringsock/log.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ISocketProvider ISocketProvider;
typedef struct ISocketContext ISocketContext;
typedef struct ISocket ISocket;
typedef struct USocket USocket;
typedef struct USocketVtbl USocketVtbl;

typedef enum shutdownreason_t {
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
    SOCKET_ALPN_SELECTION_FAILED
} shutdownreason_t; /* values in this order, from 0 */
const char *SocketShutdownReasonToStr(shutdownreason_t reason);

typedef enum qostraffictype_t { QOS_BEST_EFFORT, QOS_AUDIO_VIDEO, QOS_VOICE } qostraffictype_t;

struct USocketVtbl {
    void (*SocketConnectComplete)(USocket *self, ISocket *socket);
    void (*SocketBindResult)(USocket *self, ISocket *socket, const char *localAddr,
                             uint16_t localPort);
    void (*SocketListenResult)(USocket *self, ISocket *socket, const char *remoteAddr,
                               uint16_t remotePort);
    void (*SocketAcceptComplete)(USocket *self, ISocket *socket);
    void (*SocketShutdown)(USocket *self, ISocket *socket, shutdownreason_t reason);
    void (*SocketSendResult)(USocket *self, ISocket *socket);
    void (*SocketRecvResult)(USocket *self, ISocket *socket, void *buf, size_t len);
    void (*SocketRecvFromResult)(USocket *self, ISocket *socket, void *buf, size_t len,
                                 IPaddr srcAddr, uint16_t srcPort);
    void (*SocketRecvCanceled)(USocket *self, ISocket *socket, void *buf);
    void (*SocketUpgradeToTLSComplete)(USocket *self, ISocket *socket);
    bool (*SocketAcceptSelectedALPNProtocol)(USocket *self, ISocket *socket, const char *protocol);
};
struct USocket {
    const USocketVtbl *vtbl;
};

/* Extension. The object a member is embedded in, from a pointer to that member: an
 * application embeds its USocket (UTimer, UIoExec, IShutdownHandler) in its own struct and
 * gets the struct back in a callback with RINGSOCK_CONTAINER_OF(self, struct conn, user).
 * Not named container_of: applications (and other libraries) define that themselves. */
#define RINGSOCK_CONTAINER_OF(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

/* Providers. A provider may be deleted while its sockets live. */
ISocketProvider *CreateTCPSocketProvider(void);
ISocketProvider *CreateTLSSocketProvider(ISocketProvider *tcpSocketProvider); /* may be NULL: upgrade only */
ISocketProvider *CreateUDPSocketProvider(void);
ISocketProvider *CreateLocalSocketProvider(void); /* Unix stream sockets: a path or "@name" */
void ISocketProvider_Delete(ISocketProvider *provider);
ISocketContext *ISocketProvider_CreateSocketContext(ISocketProvider *provider, IInstanceLog *log);
ISocket *ISocketProvider_CreateSocket(ISocketProvider *provider, IIoMux *iomux, USocket *user,
                                      IInstanceLog *log, bool useIPv6,
                                      ISocketContext *socketContext);
ISocket *ISocketProvider_UpgradeToTLSSocket(ISocketProvider *provider, ISocket *fromTCPSocket,
                                            IIoMux *iomux, USocket *user, IInstanceLog *log,
                                            bool initServerSide, ISocketContext *socketContext);

/* Contexts: shared settings; a context must outlive the sockets that use it. */
void ISocketContext_Delete(ISocketContext *ctx);
void ISocketContext_EnableDTLS(ISocketContext *ctx, bool useSrtp);
void ISocketContext_SetServerCertificate(ISocketContext *ctx, const uint8_t *cert, size_t certLen,
                                         const char *hostName);
void ISocketContext_SetClientCertificate(ISocketContext *ctx, const uint8_t *cert, size_t certLen,
                                         const char *hostName);
const uint8_t *ISocketContext_GetCertificateFingerprint(ISocketContext *ctx, size_t *length);
void ISocketContext_DisableClientCertificate(ISocketContext *ctx);
void ISocketContext_SetALPNProtocols(ISocketContext *ctx,
                                     const char *const *alpnList);      /* NULL-terminated */
#define ISocketContext_SetALPNProcotols ISocketContext_SetALPNProtocols /* the SDK's spelling */

void ISocket_Delete(ISocket *socket);
void ISocket_Connect(ISocket *socket, const char *address, const char *serverName);
void ISocket_Bind(ISocket *socket, const char *localAddr, uint16_t localPort);
void ISocket_BindReuse(ISocket *socket, const char *localAddr, uint16_t localPort, bool reuseAddr);
void ISocket_GetLocalAddress(ISocket *socket, char *localAddr, unsigned size, uint16_t *localPort);
void ISocket_Listen(ISocket *socket);
void ISocket_Accept(ISocket *socket, USocket *remoteUser); /* NULL rejects */
void ISocket_Shutdown(ISocket *socket);
void ISocket_Send(ISocket *socket, const void *buf, size_t len);
void ISocket_SendTo(ISocket *socket, const void *buf, size_t len, IPaddr dstAddr, uint16_t dstPort);
void ISocket_Recv(ISocket *socket, void *buf, size_t len, bool recvPartial);
void ISocket_RecvCancel(ISocket *socket);
void ISocket_SetQoS(ISocket *socket, qostraffictype_t type);
void ISocket_SetUser(ISocket *socket, USocket *user);

/* ---- Extensions (not in the SDK) ------------------------------------------------ */

/* Sends without copying: buf stays the caller's, unchanged, until this send's
 * SocketSendResult. Ordered with ISocket_Send like any other send. Large payloads on
 * routes off loopback go out with zero-copy (IORING_OP_SEND_ZC) where the kernel has it.
 * If the socket ends first, the buffer is free again once SocketShutdown runs, or once
 * ISocket_Delete returns. */
void ISocket_SendNoCopy(ISocket *socket, const void *buf, size_t len);

/* TLS trust and verification. A TLS client verifies the server's chain against the
 * system trust store and its host name (Connect's serverName) by default. */
/* Trust these PEM certificates instead of the system store (clients; and servers that
 * require client certificates). */
void ISocketContext_SetTrustedCertificates(ISocketContext *ctx, const uint8_t *pem, size_t len);
/* false: a client accepts any server certificate (say so explicitly: tests, pinning by
 * fingerprint). Default true. */
void ISocketContext_SetVerifyPeer(ISocketContext *ctx, bool verify);
/* A server asks for a client certificate and refuses the handshake without a valid
 * one (verified against the trusted certificates, or the system store). Default false. */
void ISocketContext_RequireClientCertificate(ISocketContext *ctx, bool require);
/* SHA-256 of the peer's certificate (DER) once the handshake is done: 32 bytes into
 * out. false when there is none (no TLS, not yet connected, peer sent none). */
bool ISocket_GetPeerCertificateFingerprint(ISocket *socket, uint8_t out[32]);
/* The ALPN protocol the handshake settled on, or NULL. Valid while the socket lives. */
const char *ISocket_GetALPNProtocol(ISocket *socket);

/* DTLS-SRTP: the SRTP protection profile the handshake settled on
 * ("SRTP_AES128_CM_SHA1_80", "SRTP_AEAD_AES_128_GCM", ...), or NULL before it is done
 * and on sockets without SRTP. Valid while the socket lives. */
const char *ISocket_GetSRTPProfile(ISocket *socket);

/* DTLS: RFC 5705 keying material exporter, once the handshake is done (SocketConnectComplete
 * or SocketAcceptComplete): len bytes for label (and an optional context) into out. With
 * label "EXTRACTOR-dtls_srtp" and no context it gives the SRTP keys (RFC 5764 4.2).
 * false before the handshake, on other socket types, or on error. */
bool ISocket_ExportKeyingMaterial(ISocket *socket, const char *label, const uint8_t *context,
                                  size_t contextLen, uint8_t *out, size_t len);

/* Kernel TLS offload (api.md). With it on, a TLS socket on TCP whose handshake settled on
 * TLS 1.2/1.3 AES-GCM-128/256 or ChaCha20-Poly1305 hands its record keys to the kernel
 * (TCP_ULP "tls", TLS_TX / TLS_RX) and then moves plaintext; where the kernel cannot (no
 * tls ULP, another cipher, a setsockopt refused) it stays in user space, silently, with
 * the same semantics. Default off; RINGSOCK_KTLS=1 turns it on for every context. */
void ISocketContext_EnableKernelTLS(ISocketContext *ctx, bool enable);
enum { KTLS_TX = 1, KTLS_RX = 2 };
/* KTLS_TX|KTLS_RX in effect; 0 before the handshake, without offload, other socket types. */
unsigned ISocket_GetKernelTLS(ISocket *socket);

/* Counters of one socket, for diagnostics. */
typedef struct ISocketStats {
    uint64_t bytesSent, bytesReceived;
    uint64_t sends, recvs;  /* calls completed: SendResults and RecvResults */
    uint64_t zeroCopySends; /* kernel sends made with IORING_OP_SEND_ZC */
    uint64_t truncated;     /* UDP: datagrams cut to the receive buffer */
    uint64_t dropped;       /* UDP: datagrams dropped because the application did not receive;
                               DTLS-SRTP: also packets that failed authentication or replay */
} ISocketStats;
void ISocket_GetStats(ISocket *socket, ISocketStats *stats);

#ifdef __cplusplus
}
#endif
#endif
