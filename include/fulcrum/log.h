/* log.h: the one error log (levels, printf-style, checked before arguments are evaluated) and
 * the access log (one preformatted buffer written per exchange). Both write to a file
 * descriptor: stderr/stdout or a file opened with O_APPEND; fc_log_reopen() reopens files. */
#ifndef FULCRUM_LOG_H
#define FULCRUM_LOG_H

#include <stddef.h>

enum fc_log_level { FC_LOG_ERROR = 0, FC_LOG_WARN, FC_LOG_NOTICE, FC_LOG_INFO, FC_LOG_DEBUG };

extern int fc_log_level; /* messages above this level are dropped; default FC_LOG_NOTICE */

#define fc_log(level, ...)                                                                         \
    do {                                                                                           \
        if ((level) <= fc_log_level) fc__log_write((level), __VA_ARGS__);                          \
    } while (0)

void fc__log_write(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3), cold));

/* Maps "error".."debug" to a level, or -1. */
int fc_log_level_parse(const char *name);

/* Points the error log at "stderr" or a path and the access log at "stdout", a path or NULL (off).
 * Returns 0, or a negative errno with the failing path in <failed> (borrowed from the arguments). */
int fc_log_open(const char *error_log, const char *access_log, const char **failed);
/* Reopens file logs (after logrotate). Returns 0 or a negative errno. */
int fc_log_reopen(void);
/* Closes file logs; stderr/stdout stay. */
void fc_log_close(void);

/* 1 when an access log is configured. */
int fc_access_log_enabled(void);
/* Writes one preformatted line (including its '\n'). */
void fc_access_log_write(const char *line, size_t len);

/* The current time as "2026-11-22T18:00:00.123Z" (25 bytes with NUL) and as the combined-log
 * form "22/Nov/2026:18:00:00 +0000"; both cached per millisecond/second. */
const char *fc_log_time_iso(void);
const char *fc_log_time_clf(void);
/* The current time as an HTTP date (IMF-fixdate, RFC 9110 5.6.7: "Tue, 01 Dec 2026 19:00:00 GMT"),
 * cached per second: the Date fulcrum adds to a response that has none. */
const char *fc_log_time_http(void);

#endif
