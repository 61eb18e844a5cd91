/* A plain-UDP program built against an installed ringsock (tests/install/install_link.sh):
 * one datagram over loopback, then "ok". Linked statically it must bring no wolfSSL and no
 * libsrtp2: the UDP provider is the engine's, and only ISocketContext_EnableDTLS links the
 * DTLS layer. */
#include <ringsock/socket.h>
#include <stdio.h>
#include <string.h>

static IIoMux *iomux;
static ISocket *rx, *tx;
static char buf[16];
static int ok;

static void bound(USocket *self, ISocket *s, const char *addr, uint16_t port)
{
    static uint16_t rx_port;
    static int n;
    (void)self;
    (void)addr;
    if (s == rx)
        rx_port = port;
    if (++n < 2)
        return; /* SendTo needs a bound socket: both are */
    ISocket_Recv(rx, buf, sizeof(buf), false);
    IPaddr dst;
    IPaddr_FromString(&dst, "127.0.0.1");
    ISocket_SendTo(tx, "datagram", 8, dst, rx_port);
}

static void received(USocket *self, ISocket *s, void *data, size_t len, IPaddr src, uint16_t port)
{
    (void)self;
    (void)s;
    (void)src;
    (void)port;
    ok = len == 8 && memcmp(data, "datagram", 8) == 0;
    IIoMux_Terminate(iomux);
}

static void ignore(USocket *self, ISocket *s)
{
    (void)self;
    (void)s;
}

static void shut(USocket *self, ISocket *s, shutdownreason_t reason)
{
    (void)self;
    (void)s;
    printf("shutdown: %s\n", SocketShutdownReasonToStr(reason));
    IIoMux_Terminate(iomux);
}

static const USocketVtbl vtbl = {
    .SocketBindResult = bound,
    .SocketRecvFromResult = received,
    .SocketSendResult = ignore,
    .SocketShutdown = shut,
};

int main(void)
{
    iomux = IIoMux_Create();
    if (!iomux)
        return 2; /* it said why on stderr */
    ISocketProvider *udp = CreateUDPSocketProvider();
    USocket user = {.vtbl = &vtbl};
    rx = ISocketProvider_CreateSocket(udp, iomux, &user, NULL, false, NULL);
    tx = ISocketProvider_CreateSocket(udp, iomux, &user, NULL, false, NULL);
    ISocket_Bind(rx, "127.0.0.1", 0);
    ISocket_Bind(tx, "127.0.0.1", 0);
    IIoMux_Run(iomux);
    ISocket_Delete(rx);
    ISocket_Delete(tx);
    ISocketProvider_Delete(udp);
    IIoMux_Delete(iomux);
    puts(ok ? "ok" : "no datagram");
    return ok ? 0 : 1;
}
