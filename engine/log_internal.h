/* ringsock — engine-internal logging helpers (not installed, not public API). */
#ifndef RINGSOCK_LOG_INTERNAL_H
#define RINGSOCK_LOG_INTERNAL_H

#include <stdarg.h>

#include <ringsock/log.h>

/* Formats "HH:MM:SS.mmm app flag: message" and hands it to the log's sink,
 * without looking at the log's flags. NULL log: nothing. */
void rs_log_vemit(IInstanceLog *log, enum LogFlags flag, const char *fmt, va_list ap);

/* Errors are reported whether or not the flag is enabled; NULL log: nothing. */
void rs_log_error(IInstanceLog *log, enum LogFlags flag, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
