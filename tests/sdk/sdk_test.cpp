#include "sdk_test.h"

#include <stdio.h>

int sdk_in_api;

std::string sdk_addr(word port, const char *ip)
{
    return std::string(ip) + ":" + std::to_string(port);
}

word sdk_port(ISocket *s)
{
    char addr[64];
    word port = 0;
    CALL(s->GetLocalAddress(addr, sizeof(addr), &port));
    cr_assert_neq(port, 0);
    return port;
}

static std::string vformat(const char *format, va_list ap)
{
    char buf[1024];
    vsnprintf(buf, sizeof(buf), format, ap);
    return buf;
}

void RecordingDebug::printf(const char *format, ...)
{
    va_list ap;
    va_start(ap, format);
    lines.push_back(vformat(format, ap));
    va_end(ap);
}

void RecordingDebug::hexdump(const void *buffer, size_t size)
{
    dumped.append(static_cast<const char *>(buffer), size);
}

void RecordingDebug::appPrintf(const char *appName, const char *appDomain, const char *format, ...)
{
    va_list ap;
    va_start(ap, format);
    appPrintfV(appName, appDomain, format, ap);
    va_end(ap);
}

void RecordingDebug::appPrintfV(const char *appName, const char *appDomain, const char *format,
                                va_list ap)
{
    lines.push_back(std::string(appName) + "@" + appDomain + ": " + vformat(format, ap));
}

void RecordingDebug::appHexdump(const char *appName, const char *appDomain, const void *buffer,
                                size_t size)
{
    (void)appName, (void)appDomain;
    dumped.append(static_cast<const char *>(buffer), size);
}

bool RecordingDebug::contains(const char *needle) const
{
    for (const std::string &l : lines)
        if (l.find(needle) != std::string::npos)
            return true;
    return false;
}

Loop::Loop()
{
    iomux = IIoMux::Create();
    cr_assert_not_null(iomux, "IIoMux::Create failed");
    watchdog = new ITimer(iomux, this);
    poll = new ITimer(iomux, this);
}

Loop::~Loop()
{
    delete watchdog;
    delete poll;
    delete iomux;
}

void Loop::TimerOnTimeout(ITimer *timer)
{
    CALLBACK("TimerOnTimeout");
    if (timer == watchdog) {
        timedOut = true;
        iomux->Terminate();
    } else if (cond && cond(arg)) {
        iomux->Terminate();
    } else {
        poll->Start(2);
    }
}

bool Loop::run(unsigned timeoutMs)
{
    if (cond && cond(arg))
        return true;
    timedOut = false;
    watchdog->Start(timeoutMs);
    poll->Start(2);
    iomux->Run();
    watchdog->Cancel();
    poll->Cancel();
    return cond ? cond(arg) : true;
}

void Loop::RunFor(unsigned ms)
{
    run(ms);
}
