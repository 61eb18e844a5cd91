/* ringsock — IInstanceLog: flag-filtered logging with a replaceable sink. */
#ifndef RINGSOCK_LOG_H
#define RINGSOCK_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum LogFlags {
    LOG_TLS = 0x400, /* the SDK's bit values */
    LOG_TCP = 0x800,
    LOG_LDS = 0x1000,
    LOG_UDP = 0x200000,
    LOG_DTLS = 0x400000,
    /* Extension: payload. With it and a socket type's flag, that type also logs each
     * transfer with its bytes as a hex dump; the type's flag alone logs its events
     * (connects, binds, closes, failures) only. It is the SDK's LOG_BROWSER bit (the
     * largest an int enum holds), which nothing of ringsock logs under; the SDK C++ layer
     * (sdk/) keeps it out of the flags an SDK application sets. */
    LOG_DATA = 0x40000000
};

typedef struct IInstanceLog IInstanceLog;

/* A NULL IInstanceLog * is accepted everywhere and logs nothing. The environment
 * variable RINGSOCK_LOG ("tcp,tls", "all", "tcp,data", ...) adds flags to every log
 * created; "all" is every socket type's flag, without "data". */
IInstanceLog *IInstanceLog_Create(const char *appName, uint64_t logFlags);
void IInstanceLog_Delete(IInstanceLog *log);
void IInstanceLog_SetLogFlags(IInstanceLog *log, uint64_t mask);
bool IInstanceLog_LogFlagSet(IInstanceLog *log, enum LogFlags flag);
void IInstanceLog_Log(IInstanceLog *log, enum LogFlags flag, const char *format, ...)
    __attribute__((format(printf, 3, 4)));
void IInstanceLog_HexDump(IInstanceLog *log, enum LogFlags flag, const void *data, size_t len);
/* Default sink: one line per entry on stderr, with time and app name. The sink gets
 * the whole line without a trailing newline; NULL restores the default. */
void IInstanceLog_SetSink(IInstanceLog *log, void (*sink)(void *ctx, const char *line), void *ctx);

#ifdef __cplusplus
}
#endif
#endif
