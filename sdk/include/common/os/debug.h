/* ringsock SDK headers — common/os/debug.h: LogFlags, IDebug (the process's debug output,
 * the global `debug`) and IInstanceLog, with the SDK's names, values and signatures. */
#ifndef RINGSOCK_SDK_DEBUG_H
#define RINGSOCK_SDK_DEBUG_H

#include "platform/platform.h"

/* The SDK's flag bits. The sockets log under LOG_TCP, LOG_TLS, LOG_UDP, LOG_DTLS and
 * LOG_LDS (local sockets). */
enum LogFlags {
    LOG_APP = 0x1,
    LOG_DATABASE = 0x2,
    LOG_DB_FILES = 0x4,
    LOG_DNS = 0x8,
    LOG_ETHERNET = 0x10,
    LOG_FILE = 0x20,
    LOG_FILES = 0x40,
    LOG_HTTP_CLIENT = 0x80,
    LOG_HTTP_FILE = 0x100,
    LOG_PROCESS = 0x200,
    LOG_TLS = 0x400,
    LOG_TCP = 0x800,
    LOG_LDS = 0x1000,
    LOG_WEBSERVER_PLUGIN = 0x2000,
    LOG_WEBSOCKET_CLIENT = 0x4000,
    LOG_APP_WEBSOCKET = 0x8000,
    LOG_WEBDAV_SERVICE = 0x10000,
    LOG_COMMAND = 0x20000,
    LOG_CONFIG = 0x40000,
    LOG_TIME = 0x80000,
    LOG_SMTP = 0x100000,
    LOG_UDP = 0x200000,
    LOG_DTLS = 0x400000,
    LOG_MEDIA = 0x800000,
    LOG_MEDIA_CHANNEL = 0x1000000,
    LOG_ICE = 0x2000000,
    LOG_TURN = 0x4000000,
    LOG_APPSHARING = 0x8000000,
    LOG_AUDIO = 0x10000000,
    LOG_VIDEO = 0x20000000,
    LOG_BROWSER = 0x40000000,
    LOG_APPPROXY = 0x80000000,
    LOG_ALARM_CLIENT = 0x100000000,
    LOG_WEBSERVER = 0x200000000,
};

/* The process's debug output. The library's default writes each line to stderr with the
 * time (and the app name for the app* calls); an application may point `debug` at its own
 * IDebug. */
class IDebug
{
  public:
    virtual ~IDebug();
    static IDebug *Create();

    virtual void printf(const char *format, ...) __attribute__((format(__printf__, 2, 3))) = 0;
    virtual void hexdump(const void *buffer, size_t size) = 0;
    virtual void appPrintf(const char *appName, const char *appDomain, const char *format, ...)
        __attribute__((format(__printf__, 4, 5))) = 0;
    virtual void appPrintfV(const char *appName, const char *appDomain, const char *format,
                            va_list ap) = 0;
    virtual void appHexdump(const char *appName, const char *appDomain, const void *buffer,
                            size_t size) = 0;
    virtual bool IsDebuggerPresent()
    {
        return false;
    }
    virtual void SetIIoMux(void *iomux)
    {
        (void)iomux;
    }
    virtual void ReOpenLogFile() {}
    virtual void SetLogging(bool on)
    {
        (void)on;
    }
    virtual void SetHexdump(bool on)
    {
        (void)on;
    }
    virtual void SetLogFileSize(off_t size)
    {
        (void)size;
    }
};

extern IDebug *debug; /* set before main runs */

/* An application's log. As in the SDK, the application subclasses it (GetAppName,
 * GetAppDomain) and Log/HexDump write through `debug` when the flag is set. The sockets
 * given this log write their lines (under LOG_TCP, LOG_TLS, ...) through `debug` too.
 * Change the flags with SetLogFlags: the sockets see a change made that way at once, a
 * write to logFlags itself only with the next socket or context created. */
class IInstanceLog
{
    friend struct RingsockSdkAccess;
    virtual const char *GetAppName() const = 0;
    virtual const char *GetAppDomain() const = 0;
    void *engineLog; /* the engine's log for this one, made when a socket first needs it */
    void EngineLogFlags();

  protected:
    ulong64 logFlags;

  public:
    IInstanceLog() : engineLog(nullptr), logFlags(LOG_APP | LOG_APP_WEBSOCKET) {}
    IInstanceLog(const IInstanceLog &other) : engineLog(nullptr), logFlags(other.logFlags) {}
    IInstanceLog &operator=(const IInstanceLog &other)
    {
        SetLogFlags(other.logFlags);
        return *this;
    }
    virtual ~IInstanceLog();

    inline void Log(enum LogFlags flag, const char *format, ...)
        __attribute__((format(__printf__, 3, 4)))
    {
        if (logFlags & flag) {
            va_list ap;
            va_start(ap, format);
            debug->appPrintfV(GetAppName(), GetAppDomain(), format, ap);
            va_end(ap);
        }
    }
    inline void LogV(enum LogFlags flag, const char *format, va_list ap)
    {
        if (logFlags & flag)
            debug->appPrintfV(GetAppName(), GetAppDomain(), format, ap);
    }
    inline void HexDump(enum LogFlags flag, const void *buffer, size_t size)
    {
        if (logFlags & flag)
            debug->appHexdump(GetAppName(), GetAppDomain(), buffer, size);
    }
    inline bool LogFlagSet(enum LogFlags flag)
    {
        return (logFlags & flag) > 0;
    }
    inline void SetLogFlags(ulong64 mask)
    {
        logFlags = mask;
        EngineLogFlags();
    }
};

#endif
