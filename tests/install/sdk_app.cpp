/* An SDK C++ program built against an installed ringsock-sdk (scripts/package, with
 * `pkg-config --cflags --libs ringsock-sdk`): a timer through the loop, then a TLS context
 * with its certificate fingerprint, through the SDK's classes; prints "ok". */
#include "common/interface/socket.h"
#include "common/os/iomux.h"
#include <cstdio>

class App : public UTimer
{
  public:
    IIoMux *iomux;
    ITimer timer;
    explicit App(IIoMux *iomux) : iomux(iomux), timer(iomux, this) {}
    void TimerOnTimeout(ITimer *t) override
    {
        (void)t;
        iomux->Terminate();
    }
};

int main()
{
    IIoMux *iomux = IIoMux::Create();
    if (!iomux)
        return 2; /* it said why on stderr */
    bool ok;
    {
        App app(iomux);
        app.timer.Start(1);
        iomux->Run();

        ISocketProvider *tcp = CreateTCPSocketProvider();
        ISocketProvider *tls = CreateTLSSocketProvider(tcp);
        ISocketContext *ctx = tls->CreateSocketContext(nullptr);
        size_t len = 0;
        const byte *fp = ctx->GetCertificateFingerprint(&len);
        ok = fp && len == 32;
        delete ctx;
        delete tls;
        delete tcp;
    }
    delete iomux;
    std::puts(ok ? "ok" : "no TLS certificate fingerprint");
    return ok ? 0 : 1;
}
