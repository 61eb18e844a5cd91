/* IDebug (the global `debug`) and IInstanceLog of the SDK; the sockets' log lines reach
 * `debug` through the engine log each IInstanceLog gets. */
#include "internal.h"

#include <stdio.h>
#include <string>
#include <string.h>
#include <sys/uio.h>
#include <time.h>

namespace
{

/* The default IDebug: each line on stderr (one writev, so lines of several threads do
 * not mix), app lines with the time and the app's name as the engine's own lines have. */
class StderrDebug final : public IDebug
{
  public:
    void printf(const char *format, ...) override
    {
        va_list ap;
        va_start(ap, format);
        line("", format, ap);
        va_end(ap);
    }
    void hexdump(const void *buffer, size_t size) override
    {
        dump("", buffer, size);
    }
    void appPrintf(const char *appName, const char *appDomain, const char *format, ...) override
    {
        va_list ap;
        va_start(ap, format);
        appPrintfV(appName, appDomain, format, ap);
        va_end(ap);
    }
    void appPrintfV(const char *appName, const char *appDomain, const char *format,
                    va_list ap) override
    {
        (void)appDomain;
        line(prefix(appName).c_str(), format, ap);
    }
    void appHexdump(const char *appName, const char *appDomain, const void *buffer,
                    size_t size) override
    {
        (void)appDomain;
        dump(prefix(appName).c_str(), buffer, size);
    }

  private:
    static std::string prefix(const char *app)
    {
        struct timespec ts;
        struct tm tm;
        clock_gettime(CLOCK_REALTIME, &ts);
        if (!localtime_r(&ts.tv_sec, &tm))
            memset(&tm, 0, sizeof(tm));
        char p[48];
        snprintf(p, sizeof(p), "%02d:%02d:%02d.%03ld ", tm.tm_hour, tm.tm_min, tm.tm_sec,
                 ts.tv_nsec / 1000000L);
        return std::string(p) + (app ? app : "") + ": ";
    }
    static void write_line(const char *pre, const std::string &text)
    {
        bool nl = !text.empty() && text.back() == '\n';
        struct iovec iov[3] = {{const_cast<char *>(pre), strlen(pre)},
                               {const_cast<char *>(text.data()), text.size()},
                               {const_cast<char *>("\n"), nl ? 0u : 1u}};
        ssize_t r = writev(STDERR_FILENO, iov, 3);
        (void)r; /* nowhere left to report a failing stderr */
    }
    static void line(const char *pre, const char *format, va_list ap)
    {
        va_list ap2;
        va_copy(ap2, ap);
        int n = vsnprintf(nullptr, 0, format, ap2);
        va_end(ap2);
        if (n < 0)
            return;
        std::string text((size_t)n + 1, '\0');
        vsnprintf(&text[0], text.size(), format, ap);
        text.resize((size_t)n);
        write_line(pre, text);
    }
    static void dump(const char *pre, const void *buffer, size_t size)
    {
        const unsigned char *b = static_cast<const unsigned char *>(buffer);
        for (size_t off = 0; off < size; off += 16) {
            char row[16 * 3 + 16];
            int o = snprintf(row, sizeof(row), "%04zx:", off);
            for (size_t i = off; i < off + 16 && i < size; i++)
                o += snprintf(row + o, sizeof(row) - (size_t)o, " %02x", b[i]);
            write_line(pre, row);
        }
    }
};

StderrDebug default_debug;

/* Engine lines come whole (time, app, flag name): they go to `debug` as they are. */
void engine_line(void *ctx, const char *line)
{
    (void)ctx;
    if (debug)
        debug->printf("%s", line);
}

/* LOG_BROWSER's bit is the C API's LOG_DATA extension (payload dumps): an SDK
 * application's LOG_BROWSER must not turn those on. */
uint64_t engine_flags(ulong64 sdk)
{
    return sdk & ~(uint64_t)LOG_BROWSER;
}

} // namespace

IDebug *debug = &default_debug;

IDebug::~IDebug() {}

IDebug *IDebug::Create()
{
    return new StderrDebug();
}

/* An IInstanceLog's engineLog. */
struct EngineLog {
    rsc::IInstanceLog *c;
    uint64_t env; /* the flags RINGSOCK_LOG added, kept across SetLogFlags */
};

IInstanceLog::~IInstanceLog()
{
    EngineLog *e = static_cast<EngineLog *>(engineLog);
    if (e)
        rsc::IInstanceLog_Delete(e->c);
    delete e;
}

void IInstanceLog::EngineLogFlags()
{
    EngineLog *e = static_cast<EngineLog *>(engineLog);
    if (e)
        rsc::IInstanceLog_SetLogFlags(e->c, engine_flags(logFlags) | e->env);
}

namespace ringsock_sdk
{

rsc::IInstanceLog *c_log(::IInstanceLog *log)
{
    if (!log)
        return nullptr;
    void *&slot = RingsockSdkAccess::engine_log(log);
    uint64_t flags = engine_flags(RingsockSdkAccess::flags(log));
    if (!slot) {
        /* Made on first use, not in the constructor: GetAppName is the subclass's. */
        rsc::IInstanceLog *l = rsc::IInstanceLog_Create(RingsockSdkAccess::app_name(log), flags);
        if (!l)
            return nullptr;
        rsc::IInstanceLog_SetSink(l, engine_line, nullptr);
        /* The engine added RINGSOCK_LOG's flags: find them, to keep them. */
        uint64_t env = 0;
        for (unsigned bit = 0; bit < 31; bit++) /* the C enum's range */
            if (rsc::IInstanceLog_LogFlagSet(l, (rsc::LogFlags)(1u << bit)))
                env |= 1ull << bit;
        slot = new EngineLog{l, env & ~flags};
    }
    EngineLog *e = static_cast<EngineLog *>(slot);
    rsc::IInstanceLog_SetLogFlags(e->c, flags | e->env); /* logFlags may have been written */
    return e->c;
}

} // namespace ringsock_sdk
