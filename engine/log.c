/* ringsock — IInstanceLog: flag-filtered logging with a replaceable sink. */
#include <ringsock/log.h>

#include "log_internal.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

/* "all": every socket type's events; payload dumps stay behind LOG_DATA */
#define LOG_ALL_FLAGS  ((uint64_t)(LOG_TLS | LOG_TCP | LOG_LDS | LOG_UDP | LOG_DTLS))
#define LOG_STACK_LINE 1024
#define HEXDUMP_WIDTH  16

struct IInstanceLog {
    char *app;
    uint64_t flags;
    void (*sink)(void *ctx, const char *line);
    void *sinkCtx;
};

/* One writev so concurrent lines from several threads never interleave mid-line. */
static void default_sink(void *ctx, const char *line)
{
    (void)ctx;
    struct iovec iov[2] = {
        {.iov_base = (void *)line, .iov_len = strlen(line)},
        {.iov_base = "\n", .iov_len = 1},
    };
    struct iovec *v = iov;
    int n = 2;

    while (n > 0) {
        ssize_t w = writev(STDERR_FILENO, v, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return; /* nowhere left to report a failing stderr */
        }
        /* Partial write (pipe full, huge line): resume where it stopped. */
        while (n > 0 && (size_t)w >= v->iov_len) {
            w -= (ssize_t)v->iov_len;
            v++;
            n--;
        }
        if (n > 0) {
            v->iov_base = (char *)v->iov_base + w;
            v->iov_len -= (size_t)w;
        }
    }
}

/* A RINGSOCK_LOG token: a flag's name or a number (decimal or 0x...); false if neither. */
static bool parse_flag_token(const char *tok, size_t len, uint64_t *bits)
{
    static const struct {
        const char *name;
        uint64_t bits;
    } names[] = {
        {"tls", LOG_TLS}, {"tcp", LOG_TCP},   {"lds", LOG_LDS},       {"local", LOG_LDS},
        {"udp", LOG_UDP}, {"dtls", LOG_DTLS}, {"all", LOG_ALL_FLAGS}, {"data", LOG_DATA},
    };

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (strlen(names[i].name) == len && strncasecmp(tok, names[i].name, len) == 0) {
            *bits = names[i].bits;
            return true;
        }
    }

    /* Numeric masks let users enable bits this table does not name. */
    char buf[32];
    if (len == 0 || len >= sizeof(buf))
        return false;
    memcpy(buf, tok, len);
    buf[len] = '\0';
    int base = 10;
    const char *digits = buf;
    if (len > 2 && buf[0] == '0' && (buf[1] == 'x' || buf[1] == 'X')) {
        base = 16;
        digits = buf + 2;
    }
    /* strtoull would accept signs and blanks; only plain digits are a mask. */
    for (const char *p = digits; *p; p++) {
        if (base == 16 ? !strchr("0123456789abcdefABCDEF", *p) : (*p < '0' || *p > '9'))
            return false;
    }
    if (!*digits)
        return false;
    errno = 0;
    unsigned long long v = strtoull(digits, NULL, base);
    if (errno != 0)
        return false;
    *bits = (uint64_t)v;
    return true;
}

static uint64_t env_flags(void)
{
    static atomic_bool told;
    const char *s = getenv("RINGSOCK_LOG");
    uint64_t flags = 0;

    if (!s)
        return 0;
    while (*s) {
        size_t skip = strspn(s, ", \t\r\n");
        s += skip;
        size_t len = strcspn(s, ", \t\r\n");
        if (len == 0)
            break;
        uint64_t bits;
        if (parse_flag_token(s, len, &bits))
            flags |= bits;
        else if (!atomic_exchange(&told, true)) /* once per process, not per log */
            fprintf(stderr,
                    "ringsock: IInstanceLog_Create: RINGSOCK_LOG: \"%.*s\" is not a log flag: "
                    "ignored\n",
                    (int)len, s);
        s += len;
    }
    return flags;
}

static const char *flag_name(enum LogFlags flag)
{
    switch (flag) {
    case LOG_TLS:
        return "tls";
    case LOG_TCP:
        return "tcp";
    case LOG_LDS:
        return "lds";
    case LOG_UDP:
        return "udp";
    case LOG_DTLS:
        return "dtls";
    case LOG_DATA:
        return "data";
    }
    return "log";
}

IInstanceLog *IInstanceLog_Create(const char *appName, uint64_t logFlags)
{
    IInstanceLog *log = calloc(1, sizeof(*log));
    if (!log)
        return NULL;
    log->app = strdup(appName ? appName : "");
    if (!log->app) {
        free(log);
        return NULL;
    }
    log->flags = logFlags | env_flags();
    log->sink = default_sink;
    return log;
}

void IInstanceLog_Delete(IInstanceLog *log)
{
    if (!log)
        return;
    free(log->app);
    free(log);
}

void IInstanceLog_SetLogFlags(IInstanceLog *log, uint64_t mask)
{
    if (log)
        log->flags = mask;
}

bool IInstanceLog_LogFlagSet(IInstanceLog *log, enum LogFlags flag)
{
    return log && (log->flags & (uint64_t)flag) != 0;
}

void IInstanceLog_SetSink(IInstanceLog *log, void (*sink)(void *ctx, const char *line), void *ctx)
{
    if (!log)
        return;
    log->sink = sink ? sink : default_sink;
    log->sinkCtx = sink ? ctx : NULL;
}

void rs_log_vemit(IInstanceLog *log, enum LogFlags flag, const char *fmt, va_list ap)
{
    if (!log)
        return;

    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    if (!localtime_r(&ts.tv_sec, &tm))
        memset(&tm, 0, sizeof(tm));

    char stackbuf[LOG_STACK_LINE];
    char *line = stackbuf;
    int pre = snprintf(stackbuf, sizeof(stackbuf), "%02d:%02d:%02d.%03ld %s%s%s: ", tm.tm_hour,
                       tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000L, log->app,
                       log->app[0] ? " " : "", flag_name(flag));
    if (pre < 0)
        return;

    /* Measure the message first so a long line costs one malloc, not a retry loop. */
    va_list ap2;
    va_copy(ap2, ap);
    int msg = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (msg < 0)
        return;

    size_t total = (size_t)pre + (size_t)msg + 1;
    if (total > sizeof(stackbuf)) {
        line = malloc(total);
        if (!line)
            return;
        /* The app name may have pushed the prefix past the stack buffer too. */
        snprintf(line, total, "%02d:%02d:%02d.%03ld %s%s%s: ", tm.tm_hour, tm.tm_min, tm.tm_sec,
                 ts.tv_nsec / 1000000L, log->app, log->app[0] ? " " : "", flag_name(flag));
    }
    vsnprintf(line + pre, total - (size_t)pre, fmt, ap);

    log->sink(log->sinkCtx, line);
    if (line != stackbuf)
        free(line);
}

static void log_emitf(IInstanceLog *log, enum LogFlags flag, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void log_emitf(IInstanceLog *log, enum LogFlags flag, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    rs_log_vemit(log, flag, fmt, ap);
    va_end(ap);
}

void rs_log_error(IInstanceLog *log, enum LogFlags flag, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    rs_log_vemit(log, flag, fmt, ap);
    va_end(ap);
}

void IInstanceLog_Log(IInstanceLog *log, enum LogFlags flag, const char *format, ...)
{
    if (!IInstanceLog_LogFlagSet(log, flag))
        return;
    va_list ap;
    va_start(ap, format);
    rs_log_vemit(log, flag, format, ap);
    va_end(ap);
}

bool rs_log_data_on(IInstanceLog *log, enum LogFlags flag)
{
    return IInstanceLog_LogFlagSet(log, flag) && IInstanceLog_LogFlagSet(log, LOG_DATA);
}

void rs_log_data(IInstanceLog *log, enum LogFlags flag, const void *data, size_t len,
                 const char *fmt, ...)
{
    if (!rs_log_data_on(log, flag))
        return;
    va_list ap;
    va_start(ap, fmt);
    rs_log_vemit(log, flag, fmt, ap);
    va_end(ap);
    IInstanceLog_HexDump(log, flag, data, len);
}

void IInstanceLog_HexDump(IInstanceLog *log, enum LogFlags flag, const void *data, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = data;

    if (!IInstanceLog_LogFlagSet(log, flag) || !data)
        return;

    for (size_t off = 0; off < len; off += HEXDUMP_WIDTH) {
        size_t n = len - off < HEXDUMP_WIDTH ? len - off : HEXDUMP_WIDTH;
        /* Hex column is always padded to full width so the ASCII column lines up. */
        char hexcol[HEXDUMP_WIDTH * 3];
        char asc[HEXDUMP_WIDTH + 1];
        memset(hexcol, ' ', sizeof(hexcol));
        for (size_t i = 0; i < n; i++) {
            unsigned char c = p[off + i];
            hexcol[i * 3] = hex[c >> 4];
            hexcol[i * 3 + 1] = hex[c & 0xf];
            asc[i] = (c >= 0x20 && c < 0x7f) ? (char)c : '.';
        }
        hexcol[sizeof(hexcol) - 1] = '\0';
        asc[n] = '\0';
        log_emitf(log, flag, "%04zx: %s  %s", off, hexcol, asc);
    }
}
