/* inv.h: what fuzz_forward.c and fuzz_respond.c share: the simulated connection that hands the
 * input over in pieces (the rest poisoned for ASan), the report printed before aborting on a
 * violated invariant, and field list comparisons against strict.c's parse. Header-only (static):
 * each target is one translation unit plus strict.o. */
#ifndef FC_FUZZ_INV_H
#define FC_FUZZ_INV_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fulcrum/buf.h"
#include "fulcrum/http.h"
#include "strict.h"

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#include <sanitizer/asan_interface.h>
#endif
#endif
#ifndef ASAN_POISON_MEMORY_REGION
#define ASAN_POISON_MEMORY_REGION(addr, size) ((void)(addr), (void)(size))
#define ASAN_UNPOISON_MEMORY_REGION(addr, size) ((void)(addr), (void)(size))
#endif

/* One connection's received bytes: buf[0..len) is the whole input, buf[0..avail) what has
 * arrived so far (the rest is poisoned), step bytes arrive per read (0: all at once). */
typedef struct feed {
    char *buf;
    const uint8_t *orig; /* the input as given: chunked decoding rewrites buf in place */
    size_t len, avail, step;
} feed_t;

static inline void feed_init(feed_t *f, const uint8_t *data, size_t len, size_t step)
{
    f->len = len;
    f->orig = data;
    f->buf = malloc(len ? len : 1);
    if (f->buf == NULL) abort();
    if (len) memcpy(f->buf, data, len);
    f->step = step;
    f->avail = step == 0 || step >= len ? len : step;
    if (f->avail < len) ASAN_POISON_MEMORY_REGION(f->buf + f->avail, len - f->avail);
}

/* The next read arrives; 0 when the input is used up (the peer closed). */
static inline int feed_more(feed_t *f)
{
    if (f->avail == f->len) return 0;
    size_t n = f->len - f->avail < f->step ? f->len - f->avail : f->step;
    ASAN_UNPOISON_MEMORY_REGION(f->buf + f->avail, n);
    f->avail += n;
    return 1;
}

static inline void feed_free(feed_t *f)
{
    if (f->avail < f->len) ASAN_UNPOISON_MEMORY_REGION(f->buf + f->avail, f->len - f->avail);
    free(f->buf);
}

/* The bytes as a C string literal, at most <max> of them. */
static inline void put_escaped(const char *label, const void *p, size_t n, size_t max)
{
    const unsigned char *b = p;
    fprintf(stderr, "%s (%zu bytes): \"", label, n);
    for (size_t i = 0; i < n && i < max; i++) {
        unsigned char c = b[i];
        if (c == '\r') fputs("\\r", stderr);
        else if (c == '\n') fputs("\\n", stderr);
        else if (c == '\t') fputs("\\t", stderr);
        else if (c == '"' || c == '\\') fprintf(stderr, "\\%c", c);
        else if (c < 0x20 || c >= 0x7f) fprintf(stderr, "\\x%02x\"\"", c);
        else fputc(c, stderr);
    }
    fprintf(stderr, "\"%s\n", n > max ? " ..." : "");
}

/* What the report prints besides the message: set by the target before it checks. */
static struct {
    const void *input; size_t input_len;
    const void *fwd; size_t fwd_len;
    const char *what; /* "forwarded request" / "forwarded response" */
} rep;

/* Classes of findings that only print (FUZZ_SOFT="host,target,...": policy disagreements being
 * looked at), so a long run goes on past them. */
static inline int soft(const char *cls)
{
    const char *s = getenv("FUZZ_SOFT");
    if (s == NULL || cls == NULL) return 0;
    size_t n = strlen(cls);
    for (const char *p = s; (p = strstr(p, cls)) != NULL; p += n)
        if ((p == s || p[-1] == ',') && (p[n] == '\0' || p[n] == ',')) return 1;
    return 0;
}

/* FUZZ_VERBOSE=1: print every message that was checked (to look at seeds). */
static inline int verbose(void)
{
    static int v = -1;
    if (v < 0) v = getenv("FUZZ_VERBOSE") != NULL;
    return v;
}

/* A soft class is reported its first 3 times only. */
static inline int soft_quiet(const char *cls)
{
    static const char *seen[32];
    static int count[32];
    for (int i = 0; i < 32; i++) {
        if (seen[i] == NULL) seen[i] = cls;
        if (strcmp(seen[i], cls) == 0) return ++count[i] > 3;
    }
    return 1;
}

__attribute__((format(printf, 2, 3))) static void violation(const char *cls, const char *fmt, ...)
{
    va_list ap;
    if (soft(cls) && soft_quiet(cls)) return;
    fprintf(stderr, "\n==== INVARIANT VIOLATED [%s]: ", cls);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    put_escaped("input", rep.input, rep.input_len, 4096);
    if (rep.fwd) put_escaped(rep.what, rep.fwd, rep.fwd_len, 4096);
    if (soft(cls)) return;
    abort();
}

#define EXPECT(cls, cond, ...)                                                                      \
    do {                                                                                            \
        if (!(cond)) violation((cls), __VA_ARGS__);                                                 \
    } while (0)

/* API misuse or an impossible return: a plain trap, as fuzz_http.c does. */
#define CHECK(c)                                                                                    \
    do {                                                                                            \
        if (!(c)) {                                                                                 \
            fprintf(stderr, "CHECK failed: %s (%s:%d)\n", #c, __FILE__, __LINE__);                 \
            __builtin_trap();                                                                       \
        }                                                                                           \
    } while (0)

static inline int bytes_eq(const void *a, size_t an, const void *b, size_t bn)
{
    return an == bn && (an == 0 || memcmp(a, b, an) == 0);
}

static inline int lit_ieq(const char *p, size_t n, const char *lit)
{
    size_t l = strlen(lit);
    if (n != l) return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char a = (unsigned char)p[i], b = (unsigned char)lit[i];
        if (a >= 'A' && a <= 'Z') a |= 0x20;
        if (b >= 'A' && b <= 'Z') b |= 0x20;
        if (a != b) return 0;
    }
    return 1;
}

static inline int names_ieq(const char *a, size_t an, const char *b, size_t bn)
{
    if (an != bn) return 0;
    for (size_t i = 0; i < an; i++) {
        unsigned char x = (unsigned char)a[i], y = (unsigned char)b[i];
        if (x >= 'A' && x <= 'Z') x |= 0x20;
        if (y >= 'A' && y <= 'Z') y |= 0x20;
        if (x != y) return 0;
    }
    return 1;
}

/* The fixed hop-by-hop set (headers.h) and the framing fields. */
static inline int is_hop_name(const char *p, size_t n)
{
    static const char *const hop[] = {"connection", "keep-alive", "proxy-connection", "te", "trailer", "upgrade"};
    for (size_t i = 0; i < sizeof(hop) / sizeof(hop[0]); i++)
        if (lit_ieq(p, n, hop[i])) return 1;
    return 0;
}
static inline int is_framing_name(const char *p, size_t n)
{
    return lit_ieq(p, n, "content-length") || lit_ieq(p, n, "transfer-encoding");
}
/* Trailer fields fulcrum must drop (issue9-decisions.md). */
static inline int is_dropped_trailer(const char *p, size_t n)
{
    return is_hop_name(p, n) || is_framing_name(p, n) || lit_ieq(p, n, "host");
}

/* 1 if a Connection header of <h> lists <name> (a token list, OWS and empty members allowed). */
static inline int connection_lists(const fc_http_head_t *h, const char *name, size_t n)
{
    for (size_t i = 0; i < h->nheaders; i++) {
        const fc_header_t *hd = &h->headers[i];
        if (!lit_ieq(hd->name.p, hd->name.n, "connection")) continue;
        const char *v = hd->value.p;
        size_t vn = hd->value.n, k = 0;
        while (k <= vn) {
            size_t s = k;
            while (k < vn && v[k] != ',') k++;
            size_t e = k;
            while (s < e && (v[s] == ' ' || v[s] == '\t')) s++;
            while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t')) e--;
            if (e > s && names_ieq(v + s, e - s, name, n)) return 1;
            k++;
        }
    }
    return 0;
}

/* A field value as fulcrum's head has it, with leading OWS removed too (strict.c trims both). */
static inline fc_slice_t trim_ows(fc_slice_t v)
{
    while (v.n && (v.p[0] == ' ' || v.p[0] == '\t')) v.p++, v.n--;
    while (v.n && (v.p[v.n - 1] == ' ' || v.p[v.n - 1] == '\t')) v.n--;
    return v;
}

static inline int has_underscore(const char *p, size_t n) { return memchr(p, '_', n) != NULL; }

/* Index of the first field of <m> (from <from>) with this name and value, or -1. */
static inline long find_field(const st_field_t *fs, size_t nf, const char *name, size_t nn, const char *val, size_t vn,
                       const unsigned char *used)
{
    for (size_t i = 0; i < nf; i++)
        if (!(used && used[i]) && names_ieq(fs[i].name, fs[i].name_len, name, nn) &&
            bytes_eq(fs[i].value, fs[i].value_len, val, vn))
            return (long)i;
    return -1;
}

/* The forwarded trailers are exactly the original ones minus the dropped names, in order. */
static inline void check_trailers(const st_msg_t *orig, const st_msg_t *out)
{
    size_t j = 0;
    for (size_t i = 0; i < orig->ntrailers; i++) {
        const st_field_t *t = &orig->trailers[i];
        if (is_dropped_trailer(t->name, t->name_len)) continue;
        EXPECT("trailers", j < out->ntrailers && names_ieq(out->trailers[j].name, out->trailers[j].name_len, t->name, t->name_len) &&
                               bytes_eq(out->trailers[j].value, out->trailers[j].value_len, t->value, t->value_len),
               "trailer %zu (%.*s) of the original is not forwarded as is, in order", i, (int)t->name_len, t->name);
        j++;
    }
    EXPECT("trailers", j == out->ntrailers, "%zu trailers forwarded, %zu expected", out->ntrailers, j);
}

static inline void check_no_dropped_trailers(const st_msg_t *out)
{
    for (size_t i = 0; i < out->ntrailers; i++) {
        const st_field_t *t = &out->trailers[i];
        EXPECT("trailers", !is_dropped_trailer(t->name, t->name_len), "forwarded trailer %.*s must be dropped",
               (int)t->name_len, t->name);
    }
}

/* The payload produced so far, and the bytes forwarded. */
static inline void buf_add(fc_buf_t *b, const void *p, size_t n)
{
    if (n && fc_buf_append(b, p, n) != 0) abort();
}

#endif
