/* Helpers for the SDK C++ tests: the tests are SDK applications (platform/platform.h,
 * common/interface/socket.h, common/os/iomux.h and nothing of ringsock's C API).
 *
 * Every API call a test makes goes through CALL(), which marks "inside an API call";
 * every callback a test records checks the mark is clear (never before return). */
#ifndef RS_SDK_TEST_H
#define RS_SDK_TEST_H

#include "platform/platform.h"
#include "common/interface/socket.h"
#include "common/os/iomux.h"
#include "proc.h"

#include <criterion/criterion.h>
#include <string>
#include <vector>

extern int sdk_in_api;
#define CALL(expr)                                                                                 \
    do {                                                                                           \
        sdk_in_api++;                                                                              \
        expr;                                                                                      \
        sdk_in_api--;                                                                              \
    } while (0)
/* In every callback a test writes. */
#define CALLBACK(name) cr_assert_eq(sdk_in_api, 0, "%s ran inside an API call", name)

/* A log that names the app (what AppInstance is in the SDK). */
class TestLog : public IInstanceLog
{
  public:
    explicit TestLog(const char *app, ulong64 flags = 0) : app(app)
    {
        SetLogFlags(flags);
    }

  private:
    const char *GetAppName() const override
    {
        return app;
    }
    const char *GetAppDomain() const override
    {
        return "test.example";
    }
    const char *app;
};

/* An IDebug that keeps what it is given (install with Capture). */
class RecordingDebug : public IDebug
{
  public:
    std::vector<std::string> lines;
    std::string dumped; /* hexdump's bytes */
    void printf(const char *format, ...) override;
    void hexdump(const void *buffer, size_t size) override;
    void appPrintf(const char *appName, const char *appDomain, const char *format, ...) override;
    void appPrintfV(const char *appName, const char *appDomain, const char *format,
                    va_list ap) override;
    void appHexdump(const char *appName, const char *appDomain, const void *buffer,
                    size_t size) override;
    bool contains(const char *needle) const;
};

/* Points `debug` at a RecordingDebug while it lives. */
class Capture
{
  public:
    RecordingDebug rec;
    Capture() : old(debug)
    {
        debug = &rec;
    }
    ~Capture()
    {
        debug = old;
    }

  private:
    IDebug *old;
};

/* The loop of a test, with a watchdog: RunUntil runs it until cond() holds (checked every
 * 2 ms) or timeoutMs passes. */
class Loop final : public UTimer
{
  public:
    IIoMux *iomux;
    Loop();
    ~Loop();
    template <class F> bool RunUntil(F until, unsigned timeoutMs = 5000)
    {
        this->cond = [](void *f) { return (*static_cast<F *>(f))(); };
        this->arg = &until;
        bool ok = run(timeoutMs);
        this->cond = nullptr;
        return ok;
    }
    void RunFor(unsigned ms);

  private:
    void TimerOnTimeout(ITimer *timer) override;
    bool run(unsigned timeoutMs);
    bool (*cond)(void *) = nullptr;
    void *arg = nullptr;
    ITimer *watchdog, *poll;
    bool timedOut = false;
};

/* "127.0.0.1:port" */
std::string sdk_addr(word port, const char *ip = "127.0.0.1");
/* The port a bound socket got. */
word sdk_port(ISocket *s);

#endif
