/* common.c: the error type and the aborting allocators declared in common.h. */
#include "fulcrum/common.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void fc__assert_fail(const char *expr, const char *file, int line)
{
    fprintf(stderr, "fulcrum: assertion failed: %s (%s:%d)\n", expr, file, line);
    abort();
}

int fc_err_set(fc_err_t *err, const char *fmt, ...)
{
    va_list ap;
    if (err == NULL) return -1;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
    err->file = NULL;
    err->line = err->column = 0;
    return -1;
}

int fc_err_setpos(fc_err_t *err, const char *file, int line, int column, const char *fmt, ...)
{
    va_list ap;
    if (err == NULL) return -1;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
    err->file = file;
    err->line = line;
    err->column = column;
    return -1;
}

void fc_err_format(const fc_err_t *err, char *out, size_t outlen)
{
    if (err->file != NULL && err->line > 0)
        snprintf(out, outlen, "%s:%d:%d: %s", err->file, err->line, err->column, err->msg);
    else if (err->file != NULL)
        snprintf(out, outlen, "%s: %s", err->file, err->msg);
    else
        snprintf(out, outlen, "%s", err->msg);
}

static void *check(void *p)
{
    if (p == NULL) {
        fputs("fulcrum: out of memory\n", stderr);
        abort();
    }
    return p;
}

void *fc_xmalloc(size_t n) { return check(malloc(n ? n : 1)); }
void *fc_xcalloc(size_t n, size_t size) { return check(calloc(n ? n : 1, size ? size : 1)); }
void *fc_xrealloc(void *p, size_t n) { return check(realloc(p, n ? n : 1)); }
char *fc_xstrdup(const char *s) { return check(strdup(s)); }
char *fc_xstrndup(const char *s, size_t n) { return check(strndup(s, n)); }
