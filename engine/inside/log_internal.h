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

/* Traffic: the line, then the bytes as a hex dump, under the socket type's flag, only
 * while both that flag and LOG_DATA are set (rs_log_data_on). Every payload dump of the
 * engine goes through here. */
bool rs_log_data_on(IInstanceLog *log, enum LogFlags flag);
void rs_log_data(IInstanceLog *log, enum LogFlags flag, const void *data, size_t len,
                 const char *fmt, ...) __attribute__((format(printf, 5, 6)));

#endif
