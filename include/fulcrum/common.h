/* common.h: macros, error type and small helpers shared by every module.
 * No module state lives here; each .c includes what it uses. */
#ifndef FULCRUM_COMMON_H
#define FULCRUM_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#define FC_VERSION "0.1.0"

#define FC_LIKELY(x) __builtin_expect(!!(x), 1)
#define FC_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define FC_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define FC_MIN(a, b) ((a) < (b) ? (a) : (b))
#define FC_MAX(a, b) ((a) > (b) ? (a) : (b))
#define fc_container_of(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

/* The monotonic clock in nanoseconds: uv_hrtime()'s clock, read without libuv's wrapper (the
 * exchange reads it twice per request when durations are kept). */
static inline uint64_t fc_clock_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* FC_ASSERT is on in debug and sanitizer builds (FC_DEBUG), off in release. */
#ifdef FC_DEBUG
#define FC_ASSERT(c)                                                                 \
    do {                                                                             \
        if (FC_UNLIKELY(!(c))) fc__assert_fail(#c, __FILE__, __LINE__);             \
    } while (0)
#else
#define FC_ASSERT(c) ((void)0)
#endif
_Noreturn void fc__assert_fail(const char *expr, const char *file, int line);

/* 64-bit FNV-1a: <h> (FC_FNV_INIT to begin) folded with <n> bytes at <p>. For keys of the shared
 * tables; a NUL between the parts of a key is fc_fnv1a(h, "", 1). */
#define FC_FNV_INIT UINT64_C(1469598103934665603)
static inline uint64_t fc_fnv1a(uint64_t h, const void *p, size_t n)
{
    for (size_t i = 0; i < n; i++) h = (h ^ ((const unsigned char *)p)[i]) * UINT64_C(1099511628211);
    return h;
}

/* Step results for functions that consume bytes. */
enum { FC_OK = 0, FC_AGAIN = 1, FC_DONE = 2, FC_ERROR = -1 };

/* An error with its words, filled by low-level code and logged by the top of the call chain.
 * file/line/column are set for configuration errors (line and column 1-based, 0 = unknown). */
typedef struct fc_err {
    char msg[256];    /* owned; NUL-terminated */
    const char *file; /* borrowed from the config being loaded, or NULL */
    int line;         /* 1-based line, 0 when not positional */
    int column;       /* 1-based column, 0 when not positional */
} fc_err_t;

/* Sets err's message (printf style); returns -1 so callers can `return fc_err_set(...)`. */
int fc_err_set(fc_err_t *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Same, with a position. */
int fc_err_setpos(fc_err_t *err, const char *file, int line, int column, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* Formats err as "FILE:LINE:COLUMN: msg" (or just msg) into out. */
void fc_err_format(const fc_err_t *err, char *out, size_t outlen);

/* malloc/calloc/strdup that abort on exhaustion (only used outside the per-request path). */
void *fc_xmalloc(size_t n);
void *fc_xcalloc(size_t n, size_t size);
void *fc_xrealloc(void *p, size_t n);
char *fc_xstrdup(const char *s);
char *fc_xstrndup(const char *s, size_t n);

#endif
