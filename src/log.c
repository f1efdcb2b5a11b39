/* log.c: error log with levels and the access log writer. Owns the two log file descriptors
 * and their paths; the rest of the program only formats and calls in. */
#include "fulcrum/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "fulcrum/common.h"

int fc_log_level = FC_LOG_NOTICE;

static const char *const level_names[] = {"error", "warn", "notice", "info", "debug"};

static int error_fd = 2;
static int access_fd = -1;
static char *error_path;  /* owned; NULL when stderr */
static char *access_path; /* owned; NULL when stdout or off */

int fc_log_level_parse(const char *name)
{
    for (size_t i = 0; i < FC_ARRAY_LEN(level_names); i++)
        if (strcmp(level_names[i], name) == 0) return (int)i;
    return -1;
}

static int open_append(const char *path)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    return fd < 0 ? -errno : fd;
}

int fc_log_open(const char *error_log, const char *access_log, const char **failed)
{
    int efd = 2, afd = -1;
    if (error_log != NULL && strcmp(error_log, "stderr") != 0) {
        efd = open_append(error_log);
        if (efd < 0) {
            *failed = error_log;
            return efd;
        }
    }
    if (access_log != NULL) {
        if (strcmp(access_log, "stdout") == 0) afd = 1;
        else if (strcmp(access_log, "stderr") == 0) afd = 2;
        else {
            afd = open_append(access_log);
            if (afd < 0) {
                if (efd > 2) close(efd);
                *failed = access_log;
                return afd;
            }
        }
    }
    fc_log_close();
    error_fd = efd;
    access_fd = afd;
    error_path = efd > 2 ? fc_xstrdup(error_log) : NULL;
    access_path = afd > 2 ? fc_xstrdup(access_log) : NULL;
    return 0;
}

static int reopen_one(int *fd, const char *path)
{
    if (path == NULL) return 0;
    int nfd = open_append(path);
    if (nfd < 0) return nfd;
    dup2(nfd, *fd); /* keeps the descriptor number, so nothing else needs to know */
    close(nfd);
    return 0;
}

int fc_log_reopen(void)
{
    int r = reopen_one(&error_fd, error_path);
    int r2 = reopen_one(&access_fd, access_path);
    return r < 0 ? r : r2;
}

void fc_log_close(void)
{
    if (error_fd > 2) close(error_fd);
    if (access_fd > 2) close(access_fd);
    error_fd = 2;
    access_fd = -1;
    free(error_path);
    free(access_path);
    error_path = access_path = NULL;
}

int fc_access_log_enabled(void) { return access_fd >= 0; }

static void write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return; /* a full or broken log must never stop serving */
        }
        p += w;
        n -= (size_t)w;
    }
}

void fc_access_log_write(const char *line, size_t len)
{
    if (access_fd >= 0) write_all(access_fd, line, len);
}

const char *fc_log_time_iso(void)
{
    static char buf[32];
    static long long cached_ms = -1;
    static time_t cached_sec = -1;
    static char secbuf[24];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    long long ms = (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    if (ms == cached_ms) return buf;
    if (ts.tv_sec != cached_sec) {
        struct tm tm;
        gmtime_r(&ts.tv_sec, &tm);
        strftime(secbuf, sizeof(secbuf), "%Y-%m-%dT%H:%M:%S", &tm);
        cached_sec = ts.tv_sec;
    }
    snprintf(buf, sizeof(buf), "%s.%03dZ", secbuf, (int)(ms % 1000));
    cached_ms = ms;
    return buf;
}

/* A per-second time string in <c>: <fmt> (strftime, UTC) of now, formatted again only when the
 * second changes. strftime's %a and %b follow the locale; fulcrum never calls setlocale. */
typedef struct second_clock {
    char buf[32];
    time_t at;
} second_clock_t;

static const char *second_clock(second_clock_t *c, const char *fmt)
{
    time_t now = time(NULL);
    if (now != c->at) {
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(c->buf, sizeof(c->buf), fmt, &tm);
        c->at = now;
    }
    return c->buf;
}

const char *fc_log_time_clf(void)
{
    static second_clock_t c = {.at = -1};
    return second_clock(&c, "%d/%b/%Y:%H:%M:%S +0000");
}

const char *fc_log_time_http(void)
{
    static second_clock_t c = {.at = -1};
    return second_clock(&c, "%a, %d %b %Y %H:%M:%S GMT");
}

void fc__log_write(int level, const char *fmt, ...)
{
    char line[2048];
    va_list ap;
    int n = snprintf(line, sizeof(line), "%s [%s] %d: ", fc_log_time_iso(),
                     level_names[level < 0 ? 0 : level > FC_LOG_DEBUG ? FC_LOG_DEBUG : level], (int)getpid());
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (m < 0 ? 0 : FC_MIN((size_t)m, sizeof(line) - (size_t)n - 2));
    line[len++] = '\n';
    write_all(error_fd, line, len);
}
