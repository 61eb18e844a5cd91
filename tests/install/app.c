/* A program built against an installed ringsock (tests/install/install_link.sh): it touches
 * the engine (a timer through the loop), TLS (wolfSSL makes a certificate) and DTLS-SRTP
 * (so a static link must resolve libsrtp2 too), then prints "ok". */
#include <ringsock/socket.h>
#include <stdio.h>

static IIoMux *iomux;

static void on_timeout(UTimer *self, ITimer *timer)
{
    (void)self;
    (void)timer;
    IIoMux_Terminate(iomux);
}

static const struct UTimerVtbl timer_vtbl = {.TimerOnTimeout = on_timeout};

int main(void)
{
    iomux = IIoMux_Create();
    if (!iomux)
        return 2; /* it said why on stderr */
    UTimer user = {.vtbl = &timer_vtbl};
    ITimer *timer = ITimer_Create(iomux, &user);
    ITimer_Start(timer, 1);
    IIoMux_Run(iomux);

    ISocketProvider *tcp = CreateTCPSocketProvider();
    ISocketProvider *tls = CreateTLSSocketProvider(tcp);
    ISocketProvider *udp = CreateUDPSocketProvider();
    ISocketContext *tls_ctx = ISocketProvider_CreateSocketContext(tls, NULL);
    ISocketContext *dtls_ctx = ISocketProvider_CreateSocketContext(udp, NULL);
    ISocketContext_EnableDTLS(dtls_ctx, true);
    size_t len = 0, dlen = 0;
    const uint8_t *fp = ISocketContext_GetCertificateFingerprint(tls_ctx, &len);
    /* the DTLS layer's certificates: its registration with the UDP provider came along */
    const uint8_t *dfp = ISocketContext_GetCertificateFingerprint(dtls_ctx, &dlen);
    int ok = fp && len == 32 && dfp && dlen == 32;

    ISocketContext_Delete(dtls_ctx);
    ISocketContext_Delete(tls_ctx);
    ISocketProvider_Delete(udp);
    ISocketProvider_Delete(tls);
    ISocketProvider_Delete(tcp);
    ITimer_Delete(timer);
    IIoMux_Delete(iomux);
    puts(ok ? "ok" : "no TLS or DTLS certificate fingerprint");
    return ok ? 0 : 1;
}
