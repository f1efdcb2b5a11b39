/* config.c: the YAML configuration -> an immutable fc_config_t (config.h).
 * yaml.c gives a positioned tree; here per-section directive tables (name, setter, offsetof,
 * min, max, default) fill the structs, so every key, type, range and default is written once.
 * Every error names the key path and the file position of the offending node. Balancing policy
 * names are checked against balance.c's registry; durations and sizes are read by units.c. */
#include "fulcrum/config.h"
#include "fulcrum/shm.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fulcrum/balance.h"
#include "fulcrum/compress.h"
#include "fulcrum/http.h"
#include "fulcrum/resolve.h"
#include "fulcrum/units.h"
#include "fulcrum/yaml.h"

#define CONFIG_MAX_FILE_SIZE (8u << 20)
#define HOUR_MS UINT64_C(3600000)
#define DAY_MS (24 * HOUR_MS)

/* State of one load: the config being built and where errors go. */
typedef struct loader {
    fc_config_t *cfg; /* the config being filled; freed by the caller on failure */
    const char *file; /* borrowed from the caller; named in errors */
    fc_err_t *err;    /* where the first error goes */
    char path[192];   /* key path of the value being set, like "routes[0].timeouts.connect" */
    size_t pathlen;   /* strlen(path) */
    const fc_yaml_node_t *certs; /* the `certificates` list being built into a context (warnings) */
    const fc_yaml_node_t *compression; /* the top-level `compression:` mapping, which routes' own
                                          compression maps are merged over (NULL: none) */
} loader_t;

typedef struct directive directive_t;

/* Sets the field at <base> + <d>->offset from <value>. <value> is NULL only for D_DEFAULTS
 * directives whose key is absent: the setter then fills in its defaults. Returns 0 or -1 with
 * the loader's error set. */
typedef int (*setter_t)(loader_t *ld, const directive_t *d, const fc_yaml_node_t *value, void *base);

enum {
    D_REQUIRED = 1, /* the key must be present */
    D_DEFAULTS = 2, /* when absent, the setter is called with NULL to apply its own defaults */
};

/* One key of a section. */
struct directive {
    const char *name;  /* the key as written in the file */
    setter_t set;      /* reads the value into the field */
    size_t offset;     /* offsetof the field in the section's struct */
    uint64_t min, max; /* accepted range for numbers, durations (ms) and sizes (bytes) */
    const char *def;   /* default, written as it would be in the file; NULL = none (zero) */
    unsigned flags;    /* D_* */
    const void *extra; /* setter data: a NULL-terminated choice list, a table_t or a list_spec_t */
};

/* The keys of one mapping section. */
typedef struct table {
    const directive_t *d;
    size_t n;
} table_t;

#define TABLE(arr) {arr, FC_ARRAY_LEN(arr)}

/* The field of <type> that directive <d> sets in the struct at <base>. */
#define FIELD(type, base, d) (*(type *)(void *)((char *)(base) + (d)->offset))

/* A list of mappings (listeners, servers, routes) read into an owned array of structs. */
typedef struct list_spec {
    const table_t *table; /* keys of each item */
    size_t size;          /* bytes per item */
    size_t count_offset;  /* offsetof the size_t count that follows the array pointer */
    size_t max;           /* most items allowed */
    /* Checks item <i> against items 0..i-1 right after it is read (duplicates); NULL for none. */
    int (*check)(loader_t *ld, const fc_yaml_node_t *list, void *items, size_t i);
} list_spec_t;

/* ---- errors and key paths ---- */

static int vfail(loader_t *ld, const fc_yaml_node_t *at, int with_path, const char *fmt, va_list ap)
{
    char msg[256];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    if (with_path && ld->pathlen > 0)
        return fc_err_setpos(ld->err, ld->file, at->line, at->column, "%s: %s", ld->path, msg);
    return fc_err_setpos(ld->err, ld->file, at->line, at->column, "%s", msg);
}

/* Sets "<path>: <message>" at <at>'s position; returns -1. */
__attribute__((format(printf, 3, 4))) static int fail(loader_t *ld, const fc_yaml_node_t *at, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = vfail(ld, at, 1, fmt, ap);
    va_end(ap);
    return rc;
}

/* Sets "<message>" at <at>'s position, for messages that place the path themselves; returns -1. */
__attribute__((format(printf, 3, 4))) static int fail_raw(loader_t *ld, const fc_yaml_node_t *at, const char *fmt,
                                                          ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = vfail(ld, at, 0, fmt, ap);
    va_end(ap);
    return rc;
}

/* Appends to the key path; returns the previous length for path_pop. */
__attribute__((format(printf, 2, 3))) static size_t path_push(loader_t *ld, const char *fmt, ...)
{
    size_t saved = ld->pathlen;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ld->path + saved, sizeof(ld->path) - saved, fmt, ap);
    va_end(ap);
    ld->pathlen = strlen(ld->path);
    return saved;
}

static size_t path_push_key(loader_t *ld, const char *key)
{
    return path_push(ld, ld->pathlen ? ".%s" : "%s", key);
}

static void path_pop(loader_t *ld, size_t saved)
{
    ld->pathlen = saved;
    ld->path[saved] = '\0';
}

/* Where "unknown key" and "missing key" messages say they are: "in listeners[0]" or "at the top level". */
static const char *path_where(const loader_t *ld, char *buf, size_t buflen)
{
    if (ld->pathlen == 0) return "at the top level";
    snprintf(buf, buflen, "in %s", ld->path);
    return buf;
}

/* Returns the text of scalar <v>, or NULL with the error set (not a scalar, null, or a NUL byte). */
static const char *scalar_text(loader_t *ld, const fc_yaml_node_t *v)
{
    if (v->kind != FC_YAML_SCALAR) {
        fail(ld, v, "expected a single value, got %s", fc_yaml_kind_name(v->kind));
        return NULL;
    }
    if (fc_yaml_is_null(v)) {
        fail(ld, v, "missing value");
        return NULL;
    }
    if (strlen(v->scalar.text) != v->scalar.len) {
        fail(ld, v, "the value contains a NUL byte");
        return NULL;
    }
    return v->scalar.text;
}

/* Checks that <v> is of <kind>; sets the error otherwise. */
static int expect_kind(loader_t *ld, const fc_yaml_node_t *v, fc_yaml_kind_t kind)
{
    if (v->kind == kind) return 0;
    if (fc_yaml_is_null(v)) return fail(ld, v, "missing value (expected %s)", fc_yaml_kind_name(kind));
    return fail(ld, v, "expected %s, got %s", fc_yaml_kind_name(kind), fc_yaml_kind_name(v->kind));
}

/* Writes "a, b, c" into <out> (at least 8 bytes), ending with "..." when the rest does not fit.
 * <name_at> returns name <i> of <ctx>. */
static void join_names(char *out, size_t outlen, size_t n, const char *(*name_at)(const void *, size_t),
                       const void *ctx)
{
    const size_t reserve = sizeof(", ...");
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        const char *sep = i ? ", " : "";
        const char *name = name_at(ctx, i);
        if (used + strlen(sep) + strlen(name) + reserve > outlen) {
            strcpy(out + used, i ? ", ..." : "...");
            return;
        }
        used += (size_t)sprintf(out + used, "%s%s", sep, name);
    }
}

/* ---- numbers, durations and sizes ---- */

/* A unit for printing range bounds in messages, as the operator would write them. */
typedef struct unit {
    const char *suffix; /* "h", "k", or "" for the base unit */
    uint64_t factor;    /* base units (ms or bytes) per unit */
} unit_t;

static const unit_t duration_units[] = {{"h", HOUR_MS}, {"m", 60000}, {"s", 1000}, {"ms", 1}};
static const unit_t size_units[] = {{"g", 1u << 30}, {"m", 1u << 20}, {"k", 1u << 10}, {"", 1}};
static const unit_t count_units[] = {{"", 1}};

/* Formats <v> with the largest unit that divides it exactly: <units> lists the units from the
 * largest down and ends with the unit of factor 1. */
static void format_unit(char *out, size_t outlen, uint64_t v, const unit_t *units, size_t nunits)
{
    size_t i = 0;
    while (i + 1 < nunits && (v == 0 || v % units[i].factor != 0)) i++;
    snprintf(out, outlen, "%llu%s", (unsigned long long)(v / units[i].factor), units[i].suffix);
}

/* Sets "<text> is out of range (<min>..<max>)" for <d>, printing the bounds with <units>. */
static int range_error(loader_t *ld, const directive_t *d, const fc_yaml_node_t *at, const char *text,
                       const unit_t *units, size_t nunits)
{
    char lo[32], hi[32];
    format_unit(lo, sizeof(lo), d->min, units, nunits);
    format_unit(hi, sizeof(hi), d->max, units, nunits);
    if (d->max == UINT64_MAX) return fail(ld, at, "%s is too small (the minimum is %s)", text, lo);
    return fail(ld, at, "%s is out of range (%s..%s)", text, lo, hi);
}

/* Checks <v> (read from <text>) against <d>'s range. */
static int check_range(loader_t *ld, const directive_t *d, const fc_yaml_node_t *at, uint64_t v, const char *text,
                       const unit_t *units, size_t nunits)
{
    if (v >= d->min && v <= d->max) return 0;
    return range_error(ld, d, at, text, units, nunits);
}

/* Reads a whole decimal number within <d>'s range. A negative number is read only to be
 * reported as out of range, which says more than "not a number". */
static int read_whole(loader_t *ld, const directive_t *d, const fc_yaml_node_t *v, uint64_t *out)
{
    const char *t = scalar_text(ld, v);
    uint64_t n = 0;
    const char *p;
    if (t == NULL) return -1;
    p = t[0] == '-' ? t + 1 : t;
    if (*p == '\0') return fail(ld, v, "expected a whole number, got '%s'", t);
    for (; *p; p++) {
        if (*p < '0' || *p > '9') return fail(ld, v, "expected a whole number, got '%s'", t);
        if (n > (UINT64_MAX - 9) / 10) return fail(ld, v, "%s is too large", t);
        n = n * 10 + (uint64_t)(*p - '0');
    }
    if (t[0] == '-' && n != 0) return range_error(ld, d, v, t, count_units, 1);
    if (check_range(ld, d, v, n, t, count_units, 1) < 0) return -1;
    *out = n;
    return 0;
}

static int set_int(loader_t *ld, const directive_t *d, const fc_yaml_node_t *v, void *base)
{
    uint64_t n;
    FC_ASSERT(d->max <= INT32_MAX);
    if (read_whole(ld, d, v, &n) < 0) return -1;
    FIELD(int, base, d) = (int)n;
    return 0;
}

static int set_uint(loader_t *ld, const directive_t *d, const fc_yaml_node_t *v, void *base)
{
    uint64_t n;
    if (read_whole(ld, d, v, &n) < 0) return -1;
    FIELD(uint64_t, base, d) = n;
    return 0;
}

static int set_u32(loader_t *ld, const directive_t *d, const fc_yaml_node_t *v, void *base)
{
    uint64_t n;
    FC_ASSERT(d->max <= UINT32_MAX);
    if (read_whole(ld, d, v, &n) < 0) return -1;
    FIELD(uint32_t, base, d) = (uint32_t)n;
    return 0;
}

/* `true` or `false` (also True/TRUE/False/FALSE, as YAML 1.2 reads them), stored as 1 or 0.
 * YAML 1.1's yes/no/on/off are refused: they read as strings elsewhere and mislead. */
static int set_bool(loader_t *ld, const directive_t *d, const fc_yaml_node_t *v, void *base)
{
    static const char *const words[] = {"false", "False", "FALSE", "true", "True", "TRUE"};
    const char *t = scalar_text(ld, v);
    if (t == NULL) return -1;
    for (size_t i = 0; i < FC_ARRAY_LEN(words); i++) {
        if (strcmp(t, words[i]) != 0) continue;
        FIELD(int, base, d) = i >= 3;
        return 0;
    }
    return fail(ld, v, "expected true or false, got '%s'", t);
}

/* A switch: `on` or `off`, and the booleans set_bool reads, stored as 1 or 0. Here YAML 1.1's
 * on/off are meant as words (`access_log: off`), so they are accepted. */
static int set_switch(loader_t *ld, const directive_t *d, const fc_yaml_node_t *v, void *base)
{
    static const char *const words[] = {"off", "false", "False", "FALSE", "on", "true", "True", "TRUE"};
    const char *t = scalar_text(ld, v);
    if (t == NULL) return -1;
    for (size_t i = 0; i < FC_ARRAY_LEN(words); i++) {
        if (strcmp(t, words[i]) != 0) continue;
        FIELD(int, base, d) = i >= 4;
        return 0;
    }
    return fail(ld, v, "expected on or off, got '%s'", t);
}

/* `workers`: "auto" (stored as 0) or a number in range. */
static int set_workers(loader_t *ld, const directive_t *d, const fc_yaml_node_t *v, void *base)
{
    if (v->kind == FC_YAML_SCALAR && strcmp(v->scalar.text, "auto") == 0) {
        FIELD(int, base, d) = 0;
        return 0;
    }
    if (v->kind == FC_YAML_SCALAR && !fc_yaml_is_null(v) && strspn(v->scalar.text, "-0123456789") != v->scalar.len)
        return fail(ld, v, "expected 'auto' or a number of processes, got '%s'", v->scalar.text);
    return set_int(ld, d, v, base);
}

static int set_duration(loader_t *ld, const directive_t *d, const fc_yaml_node_t *v, void *base)
{
    const char *t = scalar_text(ld, v);
    uint64_t ms;
    if (t == NULL) return -1;
    if (fc_duration_parse(t, &ms) < 0)
        return fail(ld, v, "expected a duration like 500ms, 10s, 5m, 1h30m or 1d, got '%s'", t);
    if (check_range(ld, d, v, ms, t, duration_units, FC_ARRAY_LEN(duration_units)) < 0) return -1;
    FIELD(uint64_t, base, d) = ms;
    return 0;
}

static int set_size(loader_t *ld, const directive_t *d, const fc_yaml_node_t *v, void *base)
{
    const char *t = scalar_text(ld, v);
    uint64_t bytes;
    if (t == NULL) return -1;
    if (fc_size_parse(t, &bytes) < 0) return fail(ld, v, "expected a size like 512, 16k, 10m or 1g, got '%s'", t);
    if (check_range(ld, d, v, bytes, t, size_units, FC_ARRAY_LEN(size_units)) < 0) return -1;
    FIELD(uint64_t, base, d) = bytes;
    return 0;
}

/* A rate in bytes per second: a size with "/s" ("1k/s"; a bare size means the same). */
static int set_byte_rate(loader_t *ld, const directive_t *d, const fc_yaml_node_t *v, void *base)
{
    const char *t = scalar_text(ld, v);
    uint64_t bytes;
    char num[64];
    if (t == NULL) return -1;
    size_t n = strlen(t);
    if (n >= 2 && strcmp(t + n - 2, "/s") == 0) n -= 2;
    if (n == 0 || n >= sizeof(num)) return fail(ld, v, "expected a rate like 1k/s, got '%s'", t);
    memcpy(num, t, n);
    num[n] = '\0';
    if (fc_size_parse(num, &bytes) < 0) return fail(ld, v, "expected a rate like 1k/s or 500/s, got '%s'", t);
    if (check_range(ld, d, v, bytes, t, size_units, FC_ARRAY_LEN(size_units)) < 0) return -1;
    FIELD(uint64_t, base, d) = bytes;
    return 0;
}

/* ---- strings ---- */

/* Stores a copy of <text> in <d>'s field, replacing nothing (each key is set once). */
static void store_string(const directive_t *d, void *base, const char *text)
{
    FC_ASSERT(FIELD(char *, base, d) == NULL);
    FIELD(char *, base, d) = fc_xstrdup(text);
}

/* Any non-empty string. */
static int set_string(loader_t *ld, const directive_t *d, const fc_yaml_node_t *v, void *base)
{
    const char *t = scalar_text(ld, v);
    if (t == NULL) return -1;
    if (*t == '\0') return fail(ld, v, "must not be empty");
    store_string(d, base, t);
    return 0;
}

static const char *choice_at(const void *ctx, size_t i) { return ((const char *const *)ctx)[i]; }

/* Returns the index of <v>'s text in <d>'s NULL-terminated choice list, or -1 with the error set. */
static int find_choice(loader_t *ld, const directive_t *d, const fc_yaml_node_t *v)
{
    const char *const *choices = d->extra;
    const char *t = scalar_text(ld, v);
    char list[160];
    size_t n = 0;
    if (t == NULL) return -1;
    for (; choices[n] != NULL; n++)
        if (strcmp(choices[n], t) == 0) return (int)n;
    join_names(list, sizeof(list), n, choice_at, choices);
    return fail(ld, v, "unknown value '%s' (expected one of: %s)", t, list);
}

/* One of a fixed list of words, stored as a string. */
static int set_choice(loader_t *ld, const directive_t *d, const fc_yaml_node_t *v, void *base)
{
    int i = find_choice(ld, d, v);
    if (i < 0) return -1;
    store_string(d, base, v->scalar.text);
    return 0;
}

/* One of a fixed list of words, stored as its index (an enum whose values follow the list). */
static int set_enum(loader_t *ld, const directive_t *d, const fc_yaml_node_t *v, void *base)
{
    int i = find_choice(ld, d, v);
    if (i < 0) return -1;
    FIELD(int, base, d) = i;
    return 0;
}

/* `access_log`: "off" is stored as NULL; anything else ("stdout", a path) as written. */
static int set_access_log(loader_t *ld, const directive_t *d, const fc_yaml_node_t *v, void *base)
{
    if (v->kind == FC_YAML_SCALAR && strcmp(v->scalar.text, "off") == 0) return 0;
    return set_string(ld, d, v, base);
}

/* `via`: the name fulcrum gives itself in Via (a token, RFC 9110 7.6.3), or off. */
static int set_via(loader_t *ld, const directive_t *d, const fc_yaml_node_t *v, void *base)
{
    const char *t = scalar_text(ld, v);
    if (t == NULL) return -1;
    if (strcmp(t, "off") == 0) return 0;
    if (*t == '\0' || strlen(t) > 64 || !fc_http_is_token((fc_slice_t){t, strlen(t)}))
        return fail(ld, v, "expected off or a name of up to 64 token characters (letters, digits, -._~...), got '%s'", t);
    store_string(d, base, t);
    return 0;
}

static int set_addr(loader_t *ld, const directive_t *d, const fc_yaml_node_t *v, void *base)
{
    const char *t = scalar_text(ld, v);
    fc_err_t why;
    if (t == NULL) return -1;
    if (fc_addr_parse(t, &FIELD(fc_addr_t, base, d), &why) < 0)
        return fail(ld, v, "%s", why.msg);
    return 0;
}

/* A host name label character (underscores are common in internal names). */
static int is_label_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

/* Checks that <name> (part of <t>, the value of <v>) is dot-separated labels of 1 to 63 letters,
 * digits, '-' and '_', at most 253 characters. */
static int check_host_name(loader_t *ld, const fc_yaml_node_t *v, const char *t, const char *name, size_t len)
{
    size_t label = 0;
    if (len > 253) return fail(ld, v, "'%s' is longer than 253 characters", t);
    for (size_t i = 0; i <= len; i++) {
        if (i == len || name[i] == '.') {
            if (label == 0 || label > 63)
                return fail(ld, v, "'%s' is not a valid host name (empty or over-long label)", t);
            label = 0;
        } else if (!is_label_char(name[i])) {
            return fail(ld, v, "'%s' is not a valid host name (use letters, digits, '-' and '.')", t);
        } else {
            label++;
        }
    }
    return 0;
}

/* `host` of a route: an exact name or "*.suffix", stored lower-cased. */
static int set_host(loader_t *ld, const directive_t *d, const fc_yaml_node_t *v, void *base)
{
    const char *t = scalar_text(ld, v);
    const char *name;
    if (t == NULL) return -1;
    if (strcmp(t, "*") == 0) return fail(ld, v, "'*' is not a host name; leave out 'host' to match any host");
    name = strncmp(t, "*.", 2) == 0 ? t + 2 : t;
    if (strchr(name, '*') != NULL)
        return fail(ld, v, "'%s': a wildcard is only allowed as a leading '*.', like *.example.com", t);
    if (strchr(name, ':') != NULL) return fail(ld, v, "'%s': a host must not include a port", t);
    if (check_host_name(ld, v, t, name, strlen(name)) < 0) return -1;
    store_string(d, base, t);
    for (char *p = FIELD(char *, base, d); *p; p++)
        if (*p >= 'A' && *p <= 'Z') *p = (char)(*p - 'A' + 'a');
    return 0;
}

/* The port 1..65535 written in decimal as the whole of <text>, or -1. */
static long parse_port(const char *text)
{
    size_t n = strlen(text);
    if (n == 0 || n > 5 || strspn(text, "0123456789") != n) return -1;
    long p = strtol(text, NULL, 10);
    return p >= 1 && p <= 65535 ? p : -1;
}

/* `address` of a server: an IP address with its port, as listeners take them, or a host name with
 * its port (`app.default.svc.cluster.local:3000`), kept as written (len 0, family AF_UNSPEC) until
 * the upstream is read whole and its names are resolved (expand_names). */
static int set_server_addr(loader_t *ld, const directive_t *d, const fc_yaml_node_t *v, void *base)
{
    const char *t = scalar_text(ld, v);
    fc_err_t why;
    if (t == NULL) return -1;
    fc_addr_t *a = &FIELD(fc_addr_t, base, d);
    if (fc_addr_parse(t, a, &why) == 0) return 0;
    const char *colon = strrchr(t, ':');
    size_t hl = colon != NULL ? (size_t)(colon - t) : 0;
    /* A name has a letter (or '-', '_') somewhere; all digits and dots is an IP address gone wrong,
     * and fc_addr_parse said how. */
    if (t[0] == '[' || colon == NULL || hl == 0 || strspn(t, "0123456789.") >= hl || memchr(t, ':', hl) != NULL ||
        strcmp(t, "*") == 0 || t[0] == '*')
        return fail(ld, v, "%s", why.msg);
    if (parse_port(colon + 1) < 0) return fail(ld, v, "invalid port '%s' in '%s' (expected 1..65535)", colon + 1, t);
    if (strlen(t) >= sizeof(a->text))
        return fail(ld, v, "'%s' is too long: a host name and its port take %zu characters at most", t,
                    sizeof(a->text) - 1);
    /* A trailing dot (an absolute name, not tried with the search domains) is fine. */
    if (check_host_name(ld, v, t, t, hl > 1 && t[hl - 1] == '.' ? hl - 1 : hl) < 0) return -1;
    memset(a, 0, sizeof(*a));
    a->ss.ss_family = AF_UNSPEC;
    memcpy(a->text, t, strlen(t) + 1);
    return 0;
}

/* `resolve` of a server: true or false, -1 when absent (the upstream's applies). */
static int set_resolve(loader_t *ld, const directive_t *d, const fc_yaml_node_t *v, void *base)
{
    if (v != NULL) return set_bool(ld, d, v, base);
    FIELD(int, base, d) = -1;
    return 0;
}

/* `resolver`: the DNS servers to ask instead of /etc/resolv.conf's: an IP address with an optional
 * port (53), or a list of them. Stored as the list c-ares takes ("127.0.0.1:5353,[::1]:53"). */
static int set_resolver(loader_t *ld, const directive_t *d, const fc_yaml_node_t *v, void *base)
{
    const fc_yaml_node_t *one[1] = {v};
    const fc_yaml_node_t *const *items = one;
    size_t n = 1;
    if (v->kind == FC_YAML_SEQUENCE) {
        items = (const fc_yaml_node_t *const *)v->seq.items;
        n = v->seq.n;
        if (n == 0) return fail(ld, v, "the list is empty; leave out 'resolver' to use /etc/resolv.conf");
        if (n > 8) return fail(ld, v, "%zu servers listed, at most 8 are allowed", n);
    }
    char csv[8 * 72] = "";
    for (size_t i = 0; i < n; i++) {
        const char *t = scalar_text(ld, items[i]);
        if (t == NULL) return -1;
        char with_port[80];
        fc_addr_t a;
        fc_err_t why;
        int has_port = t[0] == '[' ? strstr(t, "]:") != NULL : strchr(t, ':') != NULL && strchr(t, ':') == strrchr(t, ':');
        snprintf(with_port, sizeof(with_port), has_port ? "%s" : strchr(t, ':') ? "[%s]:53" : "%s:53", t);
        if (fc_addr_parse(with_port, &a, &why) < 0 || strcmp(t, "localhost") == 0 || t[0] == '*')
            return fail(ld, items[i], "'%s' is not a DNS server address (an IP address with an optional port, like "
                        "127.0.0.1:5353)", t);
        size_t used = strlen(csv);
        snprintf(csv + used, sizeof(csv) - used, "%s%s", used ? "," : "", a.text);
    }
    store_string(d, base, csv);
    return 0;
}

/* `host` of a health check: the Host header to send, a name with an optional ":port". */
static int set_check_host(loader_t *ld, const directive_t *d, const fc_yaml_node_t *v, void *base)
{
    const char *t = scalar_text(ld, v);
    const char *colon;
    size_t len;
    if (t == NULL) return -1;
    colon = strchr(t, ':');
    len = colon ? (size_t)(colon - t) : strlen(t);
    if (colon != NULL && parse_port(colon + 1) < 0)
        return fail(ld, v, "invalid port '%s' in '%s' (expected 1..65535)", colon + 1, t);
    if (check_host_name(ld, v, t, t, len) < 0) return -1;
    store_string(d, base, t);
    return 0;
}

/* Checks that <t> (the value of <v>) starts with '/' and holds no spaces or control characters.
 * A fragment is always refused; a query too unless <no_query> is NULL, and then <no_query> ends
 * the message (it says why only the path counts). */
static int check_path(loader_t *ld, const fc_yaml_node_t *v, const char *t, const char *no_query)
{
    if (t[0] != '/') return fail(ld, v, "'%s' must start with '/'", t);
    for (const unsigned char *p = (const unsigned char *)t; *p; p++) {
        if (*p <= ' ' || *p == 0x7f) return fail(ld, v, "'%s' must not contain spaces or control characters", t);
        if ((*p == '?' || *p == '#') && no_query != NULL)
            return fail(ld, v, "'%s' must not contain a query ('?') or fragment ('#'); %s", t, no_query);
        if (*p == '#') return fail(ld, v, "'%s' must not contain a fragment ('#')", t);
    }
    return 0;
}

/* `path` of a route: a prefix beginning with '/', without query, fragment, spaces or control characters. */
static int set_path(loader_t *ld, const directive_t *d, const fc_yaml_node_t *v, void *base)
{
    const char *t = scalar_text(ld, v);
    if (t == NULL || check_path(ld, v, t, "routes match the path only") < 0) return -1;
    store_string(d, base, t);
    return 0;
}

/* `path` of a listener's health endpoint: the path it answers, beginning with '/', without a query. */
static int set_endpoint_path(loader_t *ld, const directive_t *d, const fc_yaml_node_t *v, void *base)
{
    const char *t = scalar_text(ld, v);
    if (t == NULL || check_path(ld, v, t, "the endpoint is matched by path only") < 0) return -1;
    store_string(d, base, t);
    return 0;
}

/* `path` of a health check: what to GET, beginning with '/'; a query is allowed. */
static int set_check_path(loader_t *ld, const directive_t *d, const fc_yaml_node_t *v, void *base)
{
    const char *t = scalar_text(ld, v);
    if (t == NULL || check_path(ld, v, t, NULL) < 0) return -1;
    store_string(d, base, t);
    return 0;
}

/* ---- sections ---- */

static const directive_t *table_find(const table_t *t, const char *name)
{
    for (size_t i = 0; i < t->n; i++)
        if (strcmp(t->d[i].name, name) == 0) return &t->d[i];
    return NULL;
}

static const char *directive_at(const void *ctx, size_t i) { return ((const table_t *)ctx)->d[i].name; }

/* Fills <base> from mapping <map> (NULL = every key absent) with table <t>: unknown keys first,
 * then each directive in table order, so sections that others refer to (upstreams before routes)
 * are read first. Absent keys get their default, or are an error when required. */
static int apply_table(loader_t *ld, const table_t *t, const fc_yaml_node_t *map, void *base)
{
    if (map != NULL) {
        if (expect_kind(ld, map, FC_YAML_MAPPING) < 0) return -1;
        for (size_t i = 0; i < map->map.n; i++) {
            const fc_yaml_node_t *key = map->map.pairs[i].key;
            char known[200], where[200];
            if (table_find(t, key->scalar.text) != NULL) continue;
            join_names(known, sizeof(known), t->n, directive_at, t);
            return fail_raw(ld, key, "unknown key '%s' %s (expected one of: %s)", key->scalar.text,
                            path_where(ld, where, sizeof(where)), known);
        }
    }
    for (size_t i = 0; i < t->n; i++) {
        const directive_t *d = &t->d[i];
        const fc_yaml_node_t *v = fc_yaml_map_get(map, d->name);
        char where[200];
        size_t saved;
        int rc = 0;
        if (v == NULL && (d->flags & D_REQUIRED)) {
            FC_ASSERT(map != NULL);
            return fail_raw(ld, map, "missing required key '%s' %s", d->name, path_where(ld, where, sizeof(where)));
        }
        saved = path_push_key(ld, d->name);
        if (v != NULL) {
            rc = d->set(ld, d, v, base);
        } else if (d->def != NULL) {
            fc_yaml_node_t def = {.kind = FC_YAML_SCALAR};
            def.scalar.text = d->def;
            def.scalar.len = strlen(d->def);
            rc = d->set(ld, d, &def, base);
            FC_ASSERT(rc == 0);
        } else if (d->flags & D_DEFAULTS) {
            rc = d->set(ld, d, NULL, base);
        }
        path_pop(ld, saved);
        if (rc < 0) return -1;
    }
    return 0;
}

/* A sub-mapping read into a struct embedded at <d>->offset (limits, route timeouts); when absent,
 * every default applies. */
static int set_section(loader_t *ld, const directive_t *d, const fc_yaml_node_t *v, void *base)
{
    return apply_table(ld, d->extra, v, (char *)base + d->offset);
}

/* A list of mappings (see list_spec_t) into an owned array at <d>->offset. */
static int set_list(loader_t *ld, const directive_t *d, const fc_yaml_node_t *v, void *base)
{
    const list_spec_t *spec = d->extra;
    char *items;
    if (expect_kind(ld, v, FC_YAML_SEQUENCE) < 0) return -1;
    if (v->seq.n == 0) return fail(ld, v, "the list is empty; at least one entry is required");
    if (v->seq.n > spec->max)
        return fail(ld, v, "%zu entries listed, at most %zu are allowed", v->seq.n, spec->max);
    items = fc_xcalloc(v->seq.n, spec->size);
    /* The field is a pointer to the item type; memcpy stores it without punning the lvalue. */
    memcpy((char *)base + d->offset, &items, sizeof(items));
    *(size_t *)(void *)((char *)base + spec->count_offset) = v->seq.n;
    for (size_t i = 0; i < v->seq.n; i++) {
        size_t saved = path_push(ld, "[%zu]", i);
        int rc = apply_table(ld, spec->table, v->seq.items[i], items + i * spec->size);
        if (rc == 0 && spec->check != NULL) rc = spec->check(ld, v, items, i);
        path_pop(ld, saved);
        if (rc < 0) return -1;
    }
    return 0;
}

static int addr_equal(const fc_addr_t *a, const fc_addr_t *b)
{
    if (a->len == 0 || b->len == 0) return a->len == b->len && strcasecmp(a->text, b->text) == 0; /* names */
    return a->len == b->len && memcmp(&a->ss, &b->ss, a->len) == 0;
}

/* Rejects item <i> of <list> when its address (the first field of each <size>-byte item) repeats
 * an earlier one. <what> names the list in the message; <hint> ends it. */
static int check_addr_unique(loader_t *ld, const fc_yaml_node_t *list, const void *items, size_t size, size_t i,
                             const char *what, const char *hint)
{
    const fc_addr_t *a = (const fc_addr_t *)(const void *)((const char *)items + i * size);
    for (size_t j = 0; j < i; j++) {
        const fc_addr_t *b = (const fc_addr_t *)(const void *)((const char *)items + j * size);
        if (!addr_equal(a, b)) continue;
        const fc_yaml_node_t *at = fc_yaml_map_get(list->seq.items[i], "address");
        size_t saved = path_push(ld, ".address");
        int rc = fail(ld, at, "%s is already listed as %s[%zu]%s", a->text, what, j, hint);
        path_pop(ld, saved);
        return rc;
    }
    return 0;
}

static int check_listener(loader_t *ld, const fc_yaml_node_t *list, void *items, size_t i)
{
    _Static_assert(offsetof(fc_listener_conf_t, addr) == 0, "the address leads a listener");
    const fc_listener_conf_t *l = (const fc_listener_conf_t *)items + i;
    const char *bad = l->hsts && l->tls == NULL ? "hsts" : l->redirect_https && l->tls != NULL ? "redirect_https" : NULL;
    if (bad != NULL) {
        size_t saved = path_push(ld, ".%s", bad);
        fail(ld, fc_yaml_map_get(list->seq.items[i], bad),
             l->tls == NULL ? "only a listener with 'tls' can send HSTS (browsers ignore it over plain HTTP)"
                            : "a listener with 'tls' cannot redirect to https: it is https already");
        path_pop(ld, saved);
        return -1;
    }
    fc_listener_conf_t *lw = (fc_listener_conf_t *)items + i;
    lw->health_path_len = l->health_path ? strlen(l->health_path) : 0;
    lw->metrics_path_len = l->metrics_path ? strlen(l->metrics_path) : 0;
    lw->status_path_len = l->status_path ? strlen(l->status_path) : 0;
    const char *eps[] = {l->health_path, l->metrics_path, l->status_path};
    const char *names[] = {"health", "metrics", "status"};
    for (size_t a = 0; a < 3; a++)
        for (size_t b = a + 1; b < 3; b++) {
            if (eps[a] == NULL || eps[b] == NULL || strcmp(eps[a], eps[b]) != 0) continue;
            size_t saved = path_push(ld, ".%s.path", names[b]);
            const fc_yaml_node_t *sec = fc_yaml_map_get(list->seq.items[i], names[b]);
            const fc_yaml_node_t *at = fc_yaml_map_get(sec, "path");
            fail(ld, at ? at : sec, "'%s' is already the %s path of this listener", eps[b], names[a]);
            path_pop(ld, saved);
            return -1;
        }
    return check_addr_unique(ld, list, items, sizeof(fc_listener_conf_t), i, "listeners", "");
}

static int check_server(loader_t *ld, const fc_yaml_node_t *list, void *items, size_t i)
{
    _Static_assert(offsetof(fc_server_conf_t, addr) == 0, "the address leads a server");
    return check_addr_unique(ld, list, items, sizeof(fc_server_conf_t), i, "servers",
                             " (give it a higher weight instead)");
}

/* A route whose host and path repeat an earlier route's could never be chosen. */
static int check_route(loader_t *ld, const fc_yaml_node_t *list, void *items, size_t i)
{
    const fc_route_conf_t *routes = items, *r = &routes[i];
    for (size_t j = 0; j < i; j++) {
        const fc_route_conf_t *o = &routes[j];
        int same_host = (r->host == NULL && o->host == NULL) || (r->host && o->host && strcmp(r->host, o->host) == 0);
        if (same_host && strcmp(r->path, o->path) == 0)
            return fail(ld, list->seq.items[i], "same host and path as routes[%zu], so it could never be chosen", j);
    }
    return 0;
}

static const char *upstream_at(const void *ctx, size_t i) { return ((const fc_config_t *)ctx)->upstreams[i].name; }

/* `upstream` in a route: a name under `upstreams:`, resolved to its entry. */
static int set_route_upstream(loader_t *ld, const directive_t *d, const fc_yaml_node_t *v, void *base)
{
    fc_route_conf_t *r = base;
    char names[160];
    if (set_string(ld, d, v, base) < 0) return -1;
    r->upstream = fc_config_upstream(ld->cfg, r->upstream_name);
    if (r->upstream != NULL) return 0;
    join_names(names, sizeof(names), ld->cfg->nupstreams, upstream_at, ld->cfg);
    return fail(ld, v, "unknown upstream '%s' (defined: %s)", r->upstream_name, names);
}

/* `name` of a route: the `route` label. Absent: the upstream's name (set before it, in the table). */
static int set_route_name(loader_t *ld, const directive_t *d, const fc_yaml_node_t *v, void *base)
{
    fc_route_conf_t *r = base;
    if (v == NULL) {
        r->name = fc_xstrdup(r->upstream_name);
        return 0;
    }
    const char *t = scalar_text(ld, v);
    if (t == NULL) return -1;
    size_t n = strlen(t);
    if (n == 0 || n > FC_ROUTE_NAME_MAX ||
        strspn(t, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") != n)
        return fail(ld, v, "invalid route name '%s': use 1 to %d letters, digits, '-', '_' and '.' (it is a metric "
                    "label: never a path or a host)", t, FC_ROUTE_NAME_MAX);
    store_string(d, base, t);
    return 0;
}

/* `buckets` of `metrics`: upper bounds in seconds, increasing. Absent: 0.01 0.05 0.1 0.5 1 5. */
static int set_buckets(loader_t *ld, const directive_t *d, const fc_yaml_node_t *v, void *base)
{
    static const double defaults[] = {0.01, 0.05, 0.1, 0.5, 1, 5};
    fc_metrics_conf_t *m = base;
    if (v == NULL) {
        m->nbuckets = FC_ARRAY_LEN(defaults);
        for (size_t i = 0; i < m->nbuckets; i++) m->buckets[i] = defaults[i];
    } else {
        if (expect_kind(ld, v, FC_YAML_SEQUENCE) < 0) return -1;
        if (v->seq.n == 0 || v->seq.n > FC_METRICS_MAX_BUCKETS)
            return fail(ld, v, "expected 1 to %d bucket bounds, got %zu", FC_METRICS_MAX_BUCKETS, v->seq.n);
        for (size_t i = 0; i < v->seq.n; i++) {
            size_t saved = path_push(ld, "[%zu]", i);
            const char *t = scalar_text(ld, v->seq.items[i]);
            char *end = NULL;
            double b = t ? strtod(t, &end) : 0;
            int rc = 0;
            if (t == NULL) rc = -1;
            else if (end == t || *end != '\0' || !(b >= 0.000001 && b <= 100000))
                rc = fail(ld, v->seq.items[i], "expected a number of seconds from 0.000001 to 100000, got '%s'", t);
            else if (i > 0 && b <= m->buckets[i - 1])
                rc = fail(ld, v->seq.items[i], "%s is not above the bucket before it: bounds must increase", t);
            path_pop(ld, saved);
            if (rc < 0) return -1;
            m->buckets[i] = b;
        }
        m->nbuckets = v->seq.n;
    }
    for (size_t i = 0; i < m->nbuckets; i++) m->bucket_ns[i] = (uint64_t)(m->buckets[i] * 1e9 + 0.5);
    return 0;
}

/* ---- balancing, passive and active health, retries ---- */

#define KEY_VARS "$request_uri, $remote_addr, $http_NAME, $cookie_NAME"

/* 1 when the <n> bytes at <name> (after '$') are a variable a hash key may use. */
static int known_variable(const char *name, size_t n)
{
    static const char *const fixed[] = {"request_uri", "remote_addr"};
    static const char *const families[] = {"http_", "cookie_"};
    for (size_t i = 0; i < FC_ARRAY_LEN(fixed); i++)
        if (n == strlen(fixed[i]) && memcmp(name, fixed[i], n) == 0) return 1;
    for (size_t i = 0; i < FC_ARRAY_LEN(families); i++)
        if (n > strlen(families[i]) && memcmp(name, families[i], strlen(families[i])) == 0) return 1;
    return 0;
}

/* `key` of balance: { hash: { key: ... } }: literal text and $variables, with at least one
 * variable, since a constant key would send every request to one server. A variable's name is
 * the longest run of letters, digits, '_' and '-' after the '$', as exchange.c reads it. */
static int set_hash_key(loader_t *ld, const directive_t *d, const fc_yaml_node_t *v, void *base)
{
    static const char name_chars[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-";
    const char *t = scalar_text(ld, v);
    int vars = 0;
    if (t == NULL) return -1;
    for (const char *p = t; *p != '\0';) {
        if ((unsigned char)*p < ' ' || *p == 0x7f) return fail(ld, v, "the key must not contain control characters");
        if (*p++ != '$') continue;
        const char *name = p;
        size_t n = strspn(name, name_chars);
        if (n == 0) return fail(ld, v, "'%s': '$' must be followed by a variable name (known: " KEY_VARS ")", t);
        if ((n == 5 && memcmp(name, "http_", 5) == 0) || (n == 7 && memcmp(name, "cookie_", 7) == 0))
            return fail(ld, v, "'%s': $%.*s needs a name after it, like $http_x_user_id or $cookie_session", t,
                        (int)n, name);
        if (!known_variable(name, n))
            return fail(ld, v, "'%s': unknown variable '$%.*s' (known: " KEY_VARS ")", t, (int)n, name);
        if (name[n - 1] == '-')
            return fail(ld, v, "'%s': the name of '$%.*s' takes in the '-' that ends it; follow a variable with "
                               "another character, like ':'", t, (int)n, name);
        p = name + n;
        vars++;
    }
    if (vars == 0)
        return fail(ld, v, "'%s' has no variable, so %s (known: " KEY_VARS ")", t,
                    d->extra != NULL ? (const char *)d->extra : "every request would go to the same server");
    store_string(d, base, t);
    return 0;
}

/* A policy that takes options in the mapping form `balance: { <name>: { ... } }`. */
typedef struct policy_opts {
    const char *name;
    const table_t *table; /* its option keys, read into the fc_upstream_conf_t */
    const char *needs;    /* non-NULL when the options are required: what to write, for the message */
} policy_opts_t;

static const directive_t random_keys[] = {
    {"two", set_bool, offsetof(fc_upstream_conf_t, balance_two), 0, 0, "false", 0, NULL},
};
static const table_t random_table = TABLE(random_keys);
static const directive_t hash_keys[] = {
    {"key", set_hash_key, offsetof(fc_upstream_conf_t, hash_key), 0, 0, NULL, D_REQUIRED, NULL},
};
static const table_t hash_table = TABLE(hash_keys);
static const policy_opts_t policy_opts[] = {
    {"random", &random_table, NULL},
    {"hash", &hash_table, "a key, like balance: { hash: { key: \"$request_uri\" } }"},
};

/* `balance`: a name balance.c registers, or a one-key mapping of that name to its options.
 * Options go through the policy's own table, so `two` is only known to random and `key` only to
 * hash (where it is required). */
static int set_balance(loader_t *ld, const directive_t *d, const fc_yaml_node_t *v, void *base)
{
    const fc_yaml_node_t *name_node = v, *opts = NULL;
    const policy_opts_t *po = NULL;
    const char *name;
    size_t saved;
    int rc;
    if (v->kind == FC_YAML_MAPPING) {
        if (v->map.n != 1)
            return fail(ld, v, "expected one policy, as a name (balance: least_conn) or a name with options "
                               "(balance: { random: { two: true } })");
        name_node = v->map.pairs[0].key;
        opts = fc_yaml_is_null(v->map.pairs[0].value) ? NULL : v->map.pairs[0].value;
    }
    if ((name = scalar_text(ld, name_node)) == NULL) return -1;
    if (fc_balance_ops_find(name) == NULL)
        return fail(ld, name_node, "unknown balancing policy '%s' (known: %s)", name, fc_balance_names());
    store_string(d, base, name);
    for (size_t i = 0; i < FC_ARRAY_LEN(policy_opts); i++)
        if (strcmp(policy_opts[i].name, name) == 0) po = &policy_opts[i];
    if (po == NULL) {
        if (opts != NULL && !(opts->kind == FC_YAML_MAPPING && opts->map.n == 0))
            return fail(ld, opts, "'%s' takes no options", name);
        return 0;
    }
    if (opts == NULL && po->needs != NULL) return fail(ld, name_node, "'%s' needs %s", name, po->needs);
    saved = path_push(ld, ".%s", name);
    rc = apply_table(ld, po->table, opts, base);
    path_pop(ld, saved);
    return rc;
}

/* Adds one entry of a failure list to <fs>: error, timeout, 5xx or a status 500..599.
 * <saw_5xx> tracks "5xx" across the list so that overlaps are reported as such. */
static int add_failure(loader_t *ld, const fc_yaml_node_t *v, fc_fail_set_t *fs, int *saw_5xx)
{
    const char *t = scalar_text(ld, v);
    int *flag = NULL;
    if (t == NULL) return -1;
    if (strcmp(t, "error") == 0) flag = &fs->error;
    else if (strcmp(t, "timeout") == 0) flag = &fs->timeout;
    else if (strcmp(t, "invalid_header") == 0) flag = &fs->invalid_header;
    if (flag != NULL) {
        if (*flag) return fail(ld, v, "'%s' is listed twice", t);
        *flag = 1;
        return 0;
    }
    if (strcmp(t, "5xx") == 0) {
        if (*saw_5xx) return fail(ld, v, "'5xx' is listed twice");
        for (int s = 0; s < 100; s++)
            if (fs->status[s]) return fail(ld, v, "5xx includes %d, listed before; keep one of them", 500 + s);
        memset(fs->status, 1, sizeof(fs->status));
        *saw_5xx = 1;
        return 0;
    }
    if (strspn(t, "0123456789") != strlen(t))
        return fail(ld, v, "unknown value '%s' (expected error, timeout, invalid_header, 5xx or a status from 500 to 599)", t);
    if (strlen(t) != 3 || t[0] != '5') return fail(ld, v, "%s is not a 5xx status (expected 500..599)", t);
    int s = atoi(t) - 500;
    if (*saw_5xx) return fail(ld, v, "%s is already included in 5xx", t);
    if (fs->status[s]) return fail(ld, v, "%s is listed twice", t);
    fs->status[s] = 1;
    return 0;
}

/* `fail_on`, `retry.on`: a list of failure kinds; [] means none. Absent: [error, timeout]. */
static int set_fail_set(loader_t *ld, const directive_t *d, const fc_yaml_node_t *v, void *base)
{
    fc_fail_set_t *fs = &FIELD(fc_fail_set_t, base, d);
    int saw_5xx = 0;
    if (v == NULL) {
        fs->error = fs->timeout = 1;
        return 0;
    }
    if (expect_kind(ld, v, FC_YAML_SEQUENCE) < 0) return -1;
    for (size_t i = 0; i < v->seq.n; i++) {
        size_t saved = path_push(ld, "[%zu]", i);
        int rc = add_failure(ld, v->seq.items[i], fs, &saw_5xx);
        path_pop(ld, saved);
        if (rc < 0) return -1;
    }
    return 0;
}

/* Reads one to three digits at <p> into *<out>; returns the end, or NULL when there are none or more. */
static const char *read_status(const char *p, int *out)
{
    size_t k = strspn(p, "0123456789");
    if (k == 0 || k > 3) return NULL;
    *out = atoi(p);
    return p + k;
}

/* `expect_status` of a health check: a status (200) or an inclusive range (200-399), in 100..599. */
static int set_expect_status(loader_t *ld, const directive_t *d, const fc_yaml_node_t *v, void *base)
{
    fc_health_conf_t *h = base;
    const char *t = scalar_text(ld, v), *p;
    int lo = 0, hi;
    if (t == NULL) return -1;
    p = read_status(t, &lo);
    hi = lo;
    if (p != NULL && *p == '-') p = read_status(p + 1, &hi);
    if (p == NULL || *p != '\0')
        return fail(ld, v, "expected a status like 200 or a range like 200-399, got '%s'", t);
    if (lo < 100 || hi < 100 || lo > 599 || hi > 599) return fail(ld, v, "%s is out of range (100..599)", t);
    if (lo > hi) return fail(ld, v, "%s: the range is backwards; write the lower status first", t);
    h->expect_min = lo;
    h->expect_max = hi;
    return 0;
}

/* `health_check`: present (even as {}) turns active checks on. A check must end before the next
 * one starts: a timeout longer than the interval is an error, and when only the interval is
 * written and it is shorter than the default timeout, the timeout becomes the interval. */
static int set_health(loader_t *ld, const directive_t *d, const fc_yaml_node_t *v, void *base)
{
    fc_health_conf_t *h = &FIELD(fc_health_conf_t, base, d);
    const fc_yaml_node_t *tv;
    char interval[32];
    size_t saved;
    if (apply_table(ld, d->extra, v, h) < 0) return -1;
    h->enabled = v != NULL;
    if (h->timeout <= h->interval) return 0;
    if ((tv = fc_yaml_map_get(v, "timeout")) == NULL) {
        h->timeout = h->interval;
        return 0;
    }
    format_unit(interval, sizeof(interval), h->interval, duration_units, FC_ARRAY_LEN(duration_units));
    saved = path_push(ld, ".timeout");
    fail(ld, tv, "%s is longer than the interval (%s); a check must end before the next one starts",
         tv->scalar.text, interval);
    path_pop(ld, saved);
    return -1;
}

/* Checks across one upstream's keys once all are read: at least one server is not down, and a
 * policy that maps each key to a fixed server (hash, ip_hash) has no backup or slow_start server,
 * as nginx requires. <node> is the upstream's mapping. */
static int check_upstream(loader_t *ld, const fc_yaml_node_t *node, const fc_upstream_conf_t *u)
{
    const fc_yaml_node_t *list = fc_yaml_map_get(node, "servers");
    const fc_balancer_ops_t *ops = fc_balance_ops_find(u->balance);
    size_t usable = 0, saved;
    FC_ASSERT(ops != NULL && list != NULL);
    for (size_t i = 0; i < u->nservers; i++) {
        const fc_server_conf_t *s = &u->servers[i];
        const char *bad = !ops->needs_key ? NULL : s->backup ? "backup" : s->slow_start ? "slow_start" : NULL;
        usable += !s->down;
        if (bad == NULL) continue;
        saved = path_push(ld, ".servers[%zu].%s", i, bad);
        fail(ld, fc_yaml_map_get(list->seq.items[i], bad),
             "'%s' cannot be used with balance '%s', which maps each request key to a fixed server", bad, u->balance);
        path_pop(ld, saved);
        return -1;
    }
    if (usable > 0) return 0;
    saved = path_push(ld, ".servers");
    fail(ld, list, "no usable server: every server is marked down");
    path_pop(ld, saved);
    return -1;
}

/* Appends "FILE:LINE:COLUMN: <path>: warning: <msg>" to the config's warnings (the caller logs them). */
__attribute__((format(printf, 3, 4))) static void warn(loader_t *ld, const fc_yaml_node_t *at, const char *fmt, ...)
{
    char msg[320], line[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    snprintf(line, sizeof(line), "%s:%d:%d: %s: warning: %s\n", ld->file, at->line, at->column, ld->path, msg);
    size_t have = ld->cfg->warnings != NULL ? strlen(ld->cfg->warnings) : 0, n = strlen(line);
    ld->cfg->warnings = fc_xrealloc(ld->cfg->warnings, have + n + 1);
    memcpy(ld->cfg->warnings + have, line, n + 1);
}

/* Turns each server written as a host name into servers: without `resolve`, one per address it has
 * now (a name that does not resolve is an error); with it, max_addresses positions whose address
 * follows DNS (one that does not resolve now is a warning: in Kubernetes the Service may have no
 * ready pod yet). <node> is the upstream's mapping. */
static int expand_names(loader_t *ld, const fc_yaml_node_t *node, fc_upstream_conf_t *u)
{
    const fc_yaml_node_t *list = fc_yaml_map_get(node, "servers");
    size_t nnames = 0, total = 0;
    for (size_t i = 0; i < u->nservers; i++) nnames += u->servers[i].addr.len == 0;
    if (nnames == 0) return 0;
    u->names = fc_xcalloc(nnames, sizeof(*u->names));
    fc_server_conf_t *out = fc_xcalloc(FC_UPSTREAM_MAX_SERVERS, sizeof(*out));
    fc_addr_t *addrs = fc_xcalloc(FC_UPSTREAM_MAX_SERVERS, sizeof(*addrs));
    int rc = 0;
    for (size_t i = 0; i < u->nservers && rc == 0; i++) {
        const fc_server_conf_t *s = &u->servers[i];
        const fc_yaml_node_t *item = list->seq.items[i], *at = fc_yaml_map_get(item, "address");
        size_t saved = path_push(ld, ".servers[%zu].address", i);
        if (s->addr.len != 0) {
            for (size_t j = 0; j < total && rc == 0; j++)
                if (addr_equal(&out[j].addr, &s->addr))
                    rc = fail(ld, at, "%s is already listed: a name above resolves to it", s->addr.text);
            if (rc == 0) out[total++] = *s;
            path_pop(ld, saved);
            continue;
        }
        fc_name_conf_t *nc = &u->names[u->nnames++];
        const char *colon = strrchr(s->addr.text, ':');
        memcpy(nc->host, s->addr.text, (size_t)(colon - s->addr.text));
        memcpy(nc->text, s->addr.text, strlen(s->addr.text) + 1);
        nc->port = (uint16_t)parse_port(colon + 1);
        nc->resolve = s->resolve >= 0 ? s->resolve : u->resolve;
        nc->interval = s->resolve_interval ? s->resolve_interval : u->resolve_interval;
        size_t max = s->max_addresses ? s->max_addresses : u->max_addresses;
        size_t n = 0;
        uint32_t ttl;
        fc_err_t why = {0};
        int bad = fc_resolve_once(ld->cfg->resolver, nc->host, nc->port, addrs, FC_UPSTREAM_MAX_SERVERS, &n, &ttl, &why);
        nc->first = total;
        nc->count = nc->resolve ? max : n;
        if (!nc->resolve && bad) {
            rc = fail(ld, at, "cannot resolve '%s': %s (with resolve: true it would be looked up again while "
                      "serving)", nc->host, why.msg);
        } else if (total + nc->count > FC_UPSTREAM_MAX_SERVERS) {
            rc = fail(ld, at, "%zu servers in all with the addresses of '%s', at most %d are allowed", total + nc->count,
                      nc->host, FC_UPSTREAM_MAX_SERVERS);
        } else if (nc->resolve) {
            if (bad) warn(ld, at, "cannot resolve '%s' now: %s; it is looked up again every %llu ms", nc->host, why.msg,
                          (unsigned long long)nc->interval);
            if (!bad && n > max)
                warn(ld, at, "'%s' has %zu addresses; max_addresses (%zu) are used", nc->host, n, max);
            nc->ninitial = bad ? 0 : FC_MIN(n, max);
            nc->initial = fc_xcalloc(nc->ninitial ? nc->ninitial : 1, sizeof(fc_addr_t));
            memcpy(nc->initial, addrs, nc->ninitial * sizeof(fc_addr_t));
            for (size_t k = 0; k < max; k++) {
                out[total] = *s;
                out[total++].name = (uint32_t)u->nnames;
            }
            u->ndynamic += max;
        } else {
            for (size_t k = 0; k < n && rc == 0; k++) {
                for (size_t j = 0; j < total && rc == 0; j++)
                    if (addr_equal(&out[j].addr, &addrs[k]))
                        rc = fail(ld, at, "'%s' resolves to %s, which is already listed", nc->host, addrs[k].text);
                out[total] = *s;
                out[total].addr = addrs[k];
                out[total++].name = (uint32_t)u->nnames;
            }
        }
        path_pop(ld, saved);
    }
    free(addrs);
    if (rc < 0) {
        free(out);
        return -1;
    }
    free(u->servers);
    u->servers = out;
    u->nservers = total;
    return 0;
}

/* ---- TLS ---- */

#define DEFAULT_CIPHERS                                                                                    \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"          \
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
#define DEFAULT_SUITES "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"
#define DEFAULT_CA_FILE "/etc/ssl/certs/ca-certificates.crt"

/* `protocols: [TLSv1.2, TLSv1.3]`; older versions are refused by name (RFC 8996). */
static int set_protocols(loader_t *ld, const directive_t *d, const fc_yaml_node_t *v, void *base)
{
    static const char *const old[] = {"SSLv2", "SSLv3", "TLSv1", "TLSv1.0", "TLSv1.1"};
    unsigned *out = &FIELD(unsigned, base, d);
    if (v == NULL) {
        *out = FC_TLS_V12 | FC_TLS_V13;
        return 0;
    }
    if (expect_kind(ld, v, FC_YAML_SEQUENCE) < 0) return -1;
    if (v->seq.n == 0) return fail(ld, v, "the list is empty; use [TLSv1.2, TLSv1.3]");
    *out = 0;
    for (size_t i = 0; i < v->seq.n; i++) {
        const fc_yaml_node_t *p = v->seq.items[i];
        const char *t = scalar_text(ld, p);
        if (t == NULL) return -1;
        if (strcmp(t, "TLSv1.2") == 0) *out |= FC_TLS_V12;
        else if (strcmp(t, "TLSv1.3") == 0) *out |= FC_TLS_V13;
        else {
            for (size_t k = 0; k < FC_ARRAY_LEN(old); k++)
                if (strcmp(t, old[k]) == 0)
                    return fail(ld, p, "%s is refused: it is deprecated and unsafe (RFC 8996); use TLSv1.2 and TLSv1.3",
                                t);
            return fail(ld, p, "unknown protocol '%s' (expected TLSv1.2 or TLSv1.3)", t);
        }
    }
    return 0;
}

/* The node an option of a TLS section was read from, for an error about it; the section when
 * the option was left at its default. */
static const fc_yaml_node_t *tls_node(const fc_yaml_node_t *sec, const char *key, const char **name)
{
    const fc_yaml_node_t *n = fc_yaml_map_get(sec, key);
    *name = key;
    return n != NULL ? n : sec;
}

static void tls_warn(void *arg, size_t pair, long days, const char *subject)
{
    loader_t *ld = arg;
    const fc_yaml_node_t *item = ld->certs != NULL && pair < ld->certs->seq.n ? ld->certs->seq.items[pair] : NULL;
    const fc_yaml_node_t *at = item != NULL && fc_yaml_map_get(item, "cert") ? fc_yaml_map_get(item, "cert") : item;
    char line[512];
    if (days < 0)
        snprintf(line, sizeof(line), "%s:%d:%d: %s.certificates[%zu].cert: warning: certificate %s expired %ld days ago\n",
                 ld->file, at ? at->line : 0, at ? at->column : 0, ld->path, pair, subject, -days);
    else
        snprintf(line, sizeof(line), "%s:%d:%d: %s.certificates[%zu].cert: warning: certificate %s expires in %ld days\n",
                 ld->file, at ? at->line : 0, at ? at->column : 0, ld->path, pair, subject, days);
    size_t have = ld->cfg->warnings != NULL ? strlen(ld->cfg->warnings) : 0, n = strlen(line);
    ld->cfg->warnings = fc_xrealloc(ld->cfg->warnings, have + n + 1);
    memcpy(ld->cfg->warnings + have, line, n + 1);
}

/* Points an error building a context at the option it came from. */
static int tls_fault(loader_t *ld, const fc_yaml_node_t *sec, const fc_tls_fault_t *f, const fc_err_t *why)
{
    const char *name = NULL;
    const fc_yaml_node_t *at = sec;
    size_t saved;
    switch (f->field) {
    case FC_TLS_F_CERT:
    case FC_TLS_F_KEY: {
        const char *key = f->field == FC_TLS_F_CERT ? "cert" : "key";
        const fc_yaml_node_t *list = fc_yaml_map_get(sec, "certificates");
        if (list != NULL && list->kind == FC_YAML_SEQUENCE && f->pair < list->seq.n) {
            saved = path_push(ld, ".certificates[%zu].%s", f->pair, key);
            at = fc_yaml_map_get(list->seq.items[f->pair], key);
            fail(ld, at != NULL ? at : list->seq.items[f->pair], "%s", why->msg);
        } else { /* an upstream's cert or key */
            at = tls_node(sec, key, &name);
            saved = path_push(ld, ".%s", name);
            fail(ld, at, "%s", why->msg);
        }
        path_pop(ld, saved);
        return -1;
    }
    case FC_TLS_F_CIPHERS: at = tls_node(sec, "ciphers", &name); break;
    case FC_TLS_F_CIPHERSUITES: at = tls_node(sec, "ciphersuites", &name); break;
    case FC_TLS_F_GROUPS: at = tls_node(sec, "groups", &name); break;
    case FC_TLS_F_CLIENT_CA: at = tls_node(sec, "client_auth", &name); break;
    case FC_TLS_F_CA: at = tls_node(sec, "ca", &name); break;
    default: name = "tls"; break;
    }
    saved = path_push(ld, ".%s", name);
    fail(ld, at, "%s", why->msg);
    path_pop(ld, saved);
    return -1;
}

static const directive_t pair_keys[] = {
    {"cert", set_string, offsetof(fc_tls_pair_t, cert), 0, 0, NULL, D_REQUIRED, NULL},
    {"key", set_string, offsetof(fc_tls_pair_t, key), 0, 0, NULL, D_REQUIRED, NULL},
};
static const table_t pair_table = TABLE(pair_keys);
static const list_spec_t pair_list = {&pair_table, sizeof(fc_tls_pair_t), offsetof(fc_listen_tls_conf_t, npairs),
                                      16, NULL};

static const directive_t client_auth_keys[] = {
    {"ca", set_string, offsetof(fc_listen_tls_conf_t, client_ca), 0, 0, NULL, D_REQUIRED, NULL},
    {"required", set_bool, offsetof(fc_listen_tls_conf_t, client_required), 0, 0, "true", 0, NULL},
};
static const table_t client_auth_table = TABLE(client_auth_keys);

static const char *const record_layer_words[] = {"fulcrum", "openssl", NULL};
static const directive_t listen_tls_keys[] = {
    {"certificates", set_list, offsetof(fc_listen_tls_conf_t, pairs), 0, 0, NULL, D_REQUIRED, &pair_list},
    {"protocols", set_protocols, offsetof(fc_listen_tls_conf_t, protocols), 0, 0, NULL, D_DEFAULTS, NULL},
    {"ciphers", set_string, offsetof(fc_listen_tls_conf_t, ciphers), 0, 0, DEFAULT_CIPHERS, 0, NULL},
    {"ciphersuites", set_string, offsetof(fc_listen_tls_conf_t, ciphersuites), 0, 0, DEFAULT_SUITES, 0, NULL},
    {"groups", set_string, offsetof(fc_listen_tls_conf_t, groups), 0, 0, "X25519:P-256:P-384", 0, NULL},
    {"session_tickets", set_bool, offsetof(fc_listen_tls_conf_t, session_tickets), 0, 0, "true", 0, NULL},
    {"session_cache", set_bool, offsetof(fc_listen_tls_conf_t, session_cache), 0, 0, "true", 0, NULL},
    {"record_layer", set_enum, offsetof(fc_listen_tls_conf_t, openssl_records), 0, 0, "fulcrum", 0,
     record_layer_words},
    /* Its fields live directly in the TLS section's struct. */
    {"client_auth", set_section, 0, 0, 0, NULL, 0, &client_auth_table},
};
static const table_t listen_tls_table = TABLE(listen_tls_keys);

/* A listener's `tls:`: read, then built into its contexts (certificates and keys are read here,
 * in the master, and checked against each other). */
static int set_listen_tls(loader_t *ld, const directive_t *d, const fc_yaml_node_t *v, void *base)
{
    fc_listen_tls_conf_t *t = fc_xcalloc(1, sizeof(*t));
    FIELD(fc_listen_tls_conf_t *, base, d) = t;
    if (apply_table(ld, &listen_tls_table, v, t) < 0) return -1;
    fc_tls_server_opts_t o = {.pairs = t->pairs, .npairs = t->npairs, .protocols = t->protocols,
                              .ciphers = t->ciphers, .ciphersuites = t->ciphersuites, .groups = t->groups,
                              .tickets = t->session_tickets, .cache = t->session_cache,
                              .client_ca = t->client_ca, .client_required = t->client_required,
                              .openssl_records = t->openssl_records};
    fc_tls_fault_t f = {0};
    fc_err_t why = {0};
    ld->certs = fc_yaml_map_get(v, "certificates");
    int rc = fc_tls_server_new(&o, &t->ctx, &f, &why, tls_warn, ld);
    ld->certs = NULL;
    return rc < 0 ? tls_fault(ld, v, &f, &why) : 0;
}

static const directive_t upstream_tls_keys[] = {
    {"verify", set_bool, offsetof(fc_upstream_tls_conf_t, verify), 0, 0, "true", 0, NULL},
    {"ca", set_string, offsetof(fc_upstream_tls_conf_t, ca), 0, 0, DEFAULT_CA_FILE, 0, NULL},
    {"sni", set_check_host, offsetof(fc_upstream_tls_conf_t, sni), 0, 0, NULL, 0, NULL},
    {"cert", set_string, offsetof(fc_upstream_tls_conf_t, cert), 0, 0, NULL, 0, NULL},
    {"key", set_string, offsetof(fc_upstream_tls_conf_t, key), 0, 0, NULL, 0, NULL},
};
static const table_t upstream_tls_table = TABLE(upstream_tls_keys);

/* An upstream's `tls:` (`tls: {}` or `tls: true`-like use of defaults is written `tls: {}`). */
static int set_upstream_tls(loader_t *ld, const directive_t *d, const fc_yaml_node_t *v, void *base)
{
    fc_upstream_tls_conf_t *t = fc_xcalloc(1, sizeof(*t));
    FIELD(fc_upstream_tls_conf_t *, base, d) = t;
    if (apply_table(ld, &upstream_tls_table, v, t) < 0) return -1;
    if (t->key != NULL && t->cert == NULL) {
        size_t saved = path_push(ld, ".key");
        fail(ld, fc_yaml_map_get(v, "key"), "a key needs its 'cert'");
        path_pop(ld, saved);
        return -1;
    }
    fc_tls_client_opts_t o = {.verify = t->verify, .ca = t->ca, .cert = t->cert, .key = t->key};
    fc_tls_fault_t f = {0};
    fc_err_t why = {0};
    return fc_tls_client_new(&o, &t->ctx, &f, &why) < 0 ? tls_fault(ld, v, &f, &why) : 0;
}

static const char *const secure_words[] = {"false", "true", "auto", NULL};
static const char *const same_site_words[] = {"lax", "strict", "none", "off", NULL};

/* `secure: auto|true|false` */
static int set_secure(loader_t *ld, const directive_t *d, const fc_yaml_node_t *v, void *base)
{
    int i = find_choice(ld, d, v);
    if (i < 0) return -1;
    FIELD(int, base, d) = i;
    return 0;
}

/* `same_site: lax|strict|none|off`, stored as the attribute's value ("Lax"), NULL for off */
static int set_same_site(loader_t *ld, const directive_t *d, const fc_yaml_node_t *v, void *base)
{
    static const char *const values[] = {"Lax", "Strict", "None", NULL};
    int i = find_choice(ld, d, v);
    if (i < 0) return -1;
    if (values[i] != NULL) store_string(d, base, values[i]);
    return 0;
}

/* A cookie name: an RFC 6265 token. */
static int set_cookie_name(loader_t *ld, const directive_t *d, const fc_yaml_node_t *v, void *base)
{
    const char *t = scalar_text(ld, v);
    if (t == NULL) return -1;
    size_t n = strlen(t);
    if (n == 0 || n > 64 || strspn(t, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-.^_`|~") != n)
        return fail(ld, v, "'%s' is not a cookie name (1 to 64 token characters)", t);
    store_string(d, base, t);
    return 0;
}

static const directive_t sticky_keys[] = {
    {"cookie", set_cookie_name, offsetof(fc_sticky_conf_t, cookie), 0, 0, NULL, 0, NULL},
    {"learn", set_cookie_name, offsetof(fc_sticky_conf_t, learn), 0, 0, NULL, 0, NULL},
    {"timeout", set_duration, offsetof(fc_sticky_conf_t, learn_timeout), 1000, 30 * DAY_MS, "1h", 0, NULL},
    {"max_age", set_duration, offsetof(fc_sticky_conf_t, max_age), 0, 100 * 365 * DAY_MS, "0", 0, NULL},
    {"secure", set_secure, offsetof(fc_sticky_conf_t, secure), 0, 0, "auto", 0, secure_words},
    {"http_only", set_bool, offsetof(fc_sticky_conf_t, http_only), 0, 0, "true", 0, NULL},
    {"same_site", set_same_site, offsetof(fc_sticky_conf_t, same_site), 0, 0, "lax", 0, same_site_words},
};
static const table_t sticky_table = TABLE(sticky_keys);

/* `sticky:` names exactly one of cookie (fulcrum's own) and learn (the application's). */
static int set_sticky(loader_t *ld, const directive_t *d, const fc_yaml_node_t *v, void *base)
{
    fc_sticky_conf_t *st = &FIELD(fc_sticky_conf_t, base, d);
    if (apply_table(ld, &sticky_table, v, st) < 0) return -1;
    if ((st->cookie == NULL) == (st->learn == NULL))
        return fail(ld, v, "give either 'cookie' (a cookie fulcrum sets) or 'learn' (the application's cookie), not %s",
                    st->cookie == NULL ? "neither" : "both");
    return 0;
}

/* `rate: 10/s`, `600/m`, `5/h`. */
static int set_rate(loader_t *ld, const directive_t *d, const fc_yaml_node_t *v, void *base)
{
    fc_rate_limit_conf_t *r = base;
    const char *t = scalar_text(ld, v);
    if (t == NULL) return -1;
    char *end = NULL;
    unsigned long long n = strtoull(t, &end, 10);
    uint64_t per = end && strcmp(end, "/s") == 0 ? 1000 : end && strcmp(end, "/m") == 0 ? 60000
                   : end && strcmp(end, "/h") == 0 ? HOUR_MS : 0;
    if (end == t || per == 0 || t[0] == '-')
        return fail(ld, v, "expected a rate like 10/s, 600/m or 5/h, got '%s'", t);
    if (n == 0 || n > 1000000) return fail(ld, v, "%s is out of range (1..1000000 per unit)", t);
    r->rate = n;
    r->per = per;
    return 0;
}

/* `delay`: a number of requests, or `all`. */
static int set_delay(loader_t *ld, const directive_t *d, const fc_yaml_node_t *v, void *base)
{
    if (v->kind == FC_YAML_SCALAR && strcmp(v->scalar.text, "all") == 0) {
        FIELD(uint32_t, base, d) = FC_RATE_DELAY_ALL;
        return 0;
    }
    if (v->kind == FC_YAML_SCALAR && !fc_yaml_is_null(v) && strspn(v->scalar.text, "-0123456789") != v->scalar.len)
        return fail(ld, v, "expected 'all' or a number of requests, got '%s'", v->scalar.text);
    return set_u32(ld, d, v, base);
}

static const char *const on_error_words[] = {"allow", "deny", NULL};
static const directive_t store_keys[] = {
    {"redis", set_addr, offsetof(fc_rate_store_conf_t, redis), 0, 0, NULL, D_REQUIRED, NULL},
    {"on_error", set_enum, offsetof(fc_rate_store_conf_t, on_error), 0, 0, "allow", 0, on_error_words},
    {"sync", set_duration, offsetof(fc_rate_store_conf_t, sync), 10, 60000, "100ms", 0, NULL},
    {"timeout", set_duration, offsetof(fc_rate_store_conf_t, timeout), 10, 60000, "1s", 0, NULL},
};
static const table_t store_table = TABLE(store_keys);

/* `store: { redis: ... }` of a rate limit. */
static int set_store(loader_t *ld, const directive_t *d, const fc_yaml_node_t *v, void *base)
{
    fc_rate_limit_conf_t *r = base;
    (void)d;
    r->store = fc_xcalloc(1, sizeof(*r->store));
    return apply_table(ld, &store_table, v, r->store);
}

static const directive_t rate_limit_keys[] = {
    {"key", set_hash_key, offsetof(fc_rate_limit_conf_t, key), 0, 0, NULL, D_REQUIRED,
     "every request would share one bucket"},
    {"rate", set_rate, 0, 0, 0, NULL, D_REQUIRED, NULL},
    {"burst", set_u32, offsetof(fc_rate_limit_conf_t, burst), 0, 100000, "0", 0, NULL},
    {"status", set_int, offsetof(fc_rate_limit_conf_t, status), 400, 599, "429", 0, NULL},
    {"dry_run", set_bool, offsetof(fc_rate_limit_conf_t, dry_run), 0, 0, "false", 0, NULL},
    {"headers", set_bool, offsetof(fc_rate_limit_conf_t, headers), 0, 0, "true", 0, NULL},
    {"delay", set_delay, offsetof(fc_rate_limit_conf_t, delay), 0, 100000, "0", 0, NULL},
    {"max_delay", set_duration, offsetof(fc_rate_limit_conf_t, max_delay), 1, HOUR_MS, "30s", 0, NULL},
    {"max_keys", set_u32, offsetof(fc_rate_limit_conf_t, max_keys), 8, 16777216, "65536", 0, NULL},
    {"store", set_store, 0, 0, 0, NULL, 0, NULL},
};
static const table_t rate_limit_table = TABLE(rate_limit_keys);

/* `rate_limits`: a mapping of name -> policy, kept in file order. */
static int set_rate_limits(loader_t *ld, const directive_t *d, const fc_yaml_node_t *v, void *base)
{
    fc_config_t *cfg = base;
    (void)d;
    if (expect_kind(ld, v, FC_YAML_MAPPING) < 0) return -1;
    if (v->map.n > 64) return fail(ld, v, "%zu policies, at most 64 are allowed", v->map.n);
    cfg->rate_limits = fc_xcalloc(v->map.n ? v->map.n : 1, sizeof(*cfg->rate_limits));
    cfg->nrate_limits = v->map.n;
    for (size_t i = 0; i < v->map.n; i++) {
        const fc_yaml_node_t *key = v->map.pairs[i].key;
        fc_rate_limit_conf_t *r = &cfg->rate_limits[i];
        const char *name = key->scalar.text;
        if (*name == '\0' || key->scalar.len > FC_UPSTREAM_NAME_MAX ||
            strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") != key->scalar.len)
            return fail_raw(ld, key, "invalid rate limit name '%s': use 1 to 64 letters, digits, '-', '_' and '.'", name);
        r->name = fc_xstrdup(name);
        r->index = i;
        size_t saved = path_push(ld, ".%s", name);
        int rc = apply_table(ld, &rate_limit_table, v->map.pairs[i].value, r);
        path_pop(ld, saved);
        if (rc < 0) return -1;
        r->key_addr = strcmp(r->key, "$remote_addr") == 0;
    }
    return 0;
}

static const char *rate_limit_at(const void *ctx, size_t i) { return ((const fc_config_t *)ctx)->rate_limits[i].name; }

/* `rate_limit: NAME` or `[A, B]` on a route: every policy named applies. */
static int set_route_rate_limit(loader_t *ld, const directive_t *d, const fc_yaml_node_t *v, void *base)
{
    fc_route_conf_t *r = base;
    (void)d;
    size_t n = v->kind == FC_YAML_SEQUENCE ? v->seq.n : 1;
    if (v->kind != FC_YAML_SEQUENCE && expect_kind(ld, v, FC_YAML_SCALAR) < 0) return -1;
    r->rate_limits = fc_xcalloc(n ? n : 1, sizeof(*r->rate_limits));
    for (size_t i = 0; i < n; i++) {
        const fc_yaml_node_t *item = v->kind == FC_YAML_SEQUENCE ? v->seq.items[i] : v;
        const char *t = scalar_text(ld, item);
        if (t == NULL) return -1;
        const fc_rate_limit_conf_t *found = NULL;
        for (size_t k = 0; k < ld->cfg->nrate_limits && found == NULL; k++)
            if (strcmp(ld->cfg->rate_limits[k].name, t) == 0) found = &ld->cfg->rate_limits[k];
        if (found == NULL) {
            char known[200];
            join_names(known, sizeof(known), ld->cfg->nrate_limits, rate_limit_at, ld->cfg);
            return fail(ld, item, "unknown rate limit '%s' (defined: %s)", t, ld->cfg->nrate_limits ? known : "none");
        }
        r->rate_limits[r->nrate_limits++] = found;
    }
    return 0;
}

static const directive_t hsts_keys[] = {
    {"max_age", set_duration, offsetof(fc_listener_conf_t, hsts_max_age), 0, 100 * 365 * DAY_MS, "1y", 0, NULL},
    {"include_subdomains", set_bool, offsetof(fc_listener_conf_t, hsts_subdomains), 0, 0, "false", 0, NULL},
    {"preload", set_bool, offsetof(fc_listener_conf_t, hsts_preload), 0, 0, "false", 0, NULL},
};
static const table_t hsts_table = TABLE(hsts_keys);

static int set_hsts(loader_t *ld, const directive_t *d, const fc_yaml_node_t *v, void *base)
{
    fc_listener_conf_t *l = base;
    if (apply_table(ld, &hsts_table, v, l) < 0) return -1;
    l->hsts = 1;
    return 0;
}

static const directive_t redirect_keys[] = {
    {"port", set_u32, offsetof(fc_listener_conf_t, redirect_port), 1, 65535, NULL, 0, NULL},
};
static const table_t redirect_table = TABLE(redirect_keys);

/* `redirect_https: true`, or `redirect_https: { port: 8443 }`. */
static int set_redirect_https(loader_t *ld, const directive_t *d, const fc_yaml_node_t *v, void *base)
{
    fc_listener_conf_t *l = base;
    if (v->kind == FC_YAML_MAPPING) {
        l->redirect_https = 1;
        return apply_table(ld, &redirect_table, v, l);
    }
    return set_bool(ld, d, v, base);
}

/* `upgrade: [websocket]` (the default), other protocol tokens, or `off`. h2c is refused: fulcrum
 * speaks HTTP/1.1 to the server, and an h2c upgrade it cannot see into is a smuggling vector. */
static int set_upgrade(loader_t *ld, const directive_t *d, const fc_yaml_node_t *v, void *base)
{
    char **out = &FIELD(char *, base, d);
    if (v == NULL) {
        *out = fc_xmalloc(11);
        memcpy(*out, "websocket\0\0", 11);
        return 0;
    }
    if (v->kind == FC_YAML_SCALAR) {
        const char *t = scalar_text(ld, v);
        if (t == NULL) return -1;
        if (strcmp(t, "off") == 0 || strcmp(t, "false") == 0) return 0;
        return fail(ld, v, "expected a list of protocols like [websocket], or off, got '%s'", t);
    }
    if (expect_kind(ld, v, FC_YAML_SEQUENCE) < 0) return -1;
    size_t len = 1;
    for (size_t i = 0; i < v->seq.n; i++) {
        const fc_yaml_node_t *p = v->seq.items[i];
        const char *t = scalar_text(ld, p);
        if (t == NULL) return -1;
        if (*t == '\0' || strspn(t, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-.^_`|~/") != strlen(t))
            return fail(ld, p, "'%s' is not a protocol name (a token, like websocket)", t);
        if (strncasecmp(t, "h2c", 3) == 0)
            return fail(ld, p, "h2c is refused: fulcrum speaks HTTP/1.1 to servers, and a tunnel it cannot read could smuggle requests");
        len += strlen(t) + 1;
    }
    char *list = fc_xmalloc(len), *w = list;
    for (size_t i = 0; i < v->seq.n; i++) {
        for (const char *t = v->seq.items[i]->scalar.text; *t; t++) *w++ = (char)tolower((unsigned char)*t);
        *w++ = '\0';
    }
    *w = '\0';
    *out = list;
    return 0;
}

/* ---- compression ---- */

/* The codings' keys: which coding, the name of its level key and the level's range and default. */
typedef struct coding_spec {
    int coding;
    const char *key;
    int min, max;
    const char *def;
} coding_spec_t;
static const coding_spec_t gzip_spec = {FC_CODING_GZIP, "level", 1, 9, "6"};
static const coding_spec_t brotli_spec = {FC_CODING_BR, "quality", 0, 11, "4"};
static const coding_spec_t zstd_spec = {FC_CODING_ZSTD, "level", 1, 19, "3"};

/* `gzip: { level: 6 }`, `brotli: { quality: 4 }`, `zstd: { level: 3 }` (`{}`: the default level),
 * or `off`. */
static int set_coding(loader_t *ld, const directive_t *d, const fc_yaml_node_t *v, void *base)
{
    fc_compression_conf_t *c = base;
    const coding_spec_t *cs = d->extra;
    if (v->kind == FC_YAML_SCALAR && strcmp(v->scalar.text, "off") == 0) {
        c->on[cs->coding] = 0;
        return 0;
    }
    int level;
    directive_t ld_ = {cs->key, set_int, 0, (uint64_t)cs->min, (uint64_t)cs->max, cs->def, 0, NULL};
    table_t t = {&ld_, 1};
    if (v->kind != FC_YAML_MAPPING)
        return fail(ld, v, "expected off or a mapping like { %s: %s }", cs->key, cs->def);
    if (apply_table(ld, &t, v, &level) < 0) return -1;
    c->level[cs->coding] = level;
    c->on[cs->coding] = 1;
    return 0;
}

static const char *const default_types[] = {"text/html", "text/css", "text/plain", "text/javascript",
                                             "application/javascript", "application/json", "application/xml",
                                             "image/svg+xml"};

static void free_types(fc_compression_conf_t *c)
{
    for (size_t i = 0; i < c->ntypes; i++) free(c->types[i]);
    free(c->types);
    c->types = NULL;
    c->ntypes = 0;
}

/* `types: [text/html, ...]`: media types, compared without case. */
static int set_types(loader_t *ld, const directive_t *d, const fc_yaml_node_t *v, void *base)
{
    fc_compression_conf_t *c = base;
    free_types(c);
    if (v == NULL) {
        c->types = fc_xcalloc(FC_ARRAY_LEN(default_types), sizeof(char *));
        for (size_t i = 0; i < FC_ARRAY_LEN(default_types); i++) c->types[i] = fc_xstrdup(default_types[i]);
        c->ntypes = FC_ARRAY_LEN(default_types);
        return 0;
    }
    if (expect_kind(ld, v, FC_YAML_SEQUENCE) < 0) return -1;
    if (v->seq.n > 256) return fail(ld, v, "%zu types listed, at most 256 are allowed", v->seq.n);
    for (size_t i = 0; i < v->seq.n; i++) {
        const fc_yaml_node_t *t = v->seq.items[i];
        if (t->kind != FC_YAML_SCALAR || strchr(t->scalar.text, '/') == NULL || strpbrk(t->scalar.text, " ;,") != NULL)
            return fail(ld, t, "expected a media type like text/html");
    }
    c->types = fc_xcalloc(v->seq.n ? v->seq.n : 1, sizeof(char *));
    c->ntypes = v->seq.n;
    for (size_t i = 0; i < v->seq.n; i++) {
        c->types[i] = fc_xstrdup(v->seq.items[i]->scalar.text);
        for (char *p = c->types[i]; *p; p++) *p = (char)tolower((unsigned char)*p);
    }
    return 0;
}

/* `prefer: [zstd, br, gzip]`: the server's order when the client's q-values tie. */
static int set_prefer(loader_t *ld, const directive_t *d, const fc_yaml_node_t *v, void *base)
{
    fc_compression_conf_t *c = base;
    memset(c->prefer, 0, sizeof(c->prefer));
    if (v == NULL) {
        c->prefer[0] = FC_CODING_ZSTD;
        c->prefer[1] = FC_CODING_BR;
        c->prefer[2] = FC_CODING_GZIP;
        return 0;
    }
    if (expect_kind(ld, v, FC_YAML_SEQUENCE) < 0) return -1;
    if (v->seq.n == 0 || v->seq.n > FC_CODINGS - 1) return fail(ld, v, "list one to three of zstd, br, gzip");
    for (size_t i = 0; i < v->seq.n; i++) {
        const fc_yaml_node_t *t = v->seq.items[i];
        int cd = t->kind == FC_YAML_SCALAR ? fc_coding_of(t->scalar.text, t->scalar.len) : FC_CODING_NONE;
        if (cd == FC_CODING_NONE) return fail(ld, t, "expected zstd, br or gzip");
        if (memchr(c->prefer, cd, i) != NULL) return fail(ld, t, "'%s' is listed twice", t->scalar.text);
        c->prefer[i] = (uint8_t)cd;
    }
    return 0;
}

/* `skip_if_request_header: x-no-compression`: a request with this field is never compressed. */
static int set_skip_header(loader_t *ld, const directive_t *d, const fc_yaml_node_t *v, void *base)
{
    const char *t = scalar_text(ld, v);
    if (t == NULL) return -1;
    if (*t == '\0' || !fc_http_is_token((fc_slice_t){t, strlen(t)}))
        return fail(ld, v, "expected a header field name, got '%s'", t);
    char **field = &FIELD(char *, base, d);
    free(*field);
    *field = fc_xstrdup(t);
    for (char *p = *field; *p; p++) *p = (char)tolower((unsigned char)*p);
    return 0;
}

static const directive_t compression_keys[] = {
    {"gzip", set_coding, 0, 0, 0, NULL, 0, &gzip_spec},
    {"brotli", set_coding, 0, 0, 0, NULL, 0, &brotli_spec},
    {"zstd", set_coding, 0, 0, 0, NULL, 0, &zstd_spec},
    {"min_length", set_size, offsetof(fc_compression_conf_t, min_length), 0, UINT64_C(1) << 30, "1k", 0, NULL},
    {"types", set_types, 0, 0, 0, NULL, D_DEFAULTS, NULL},
    {"prefer", set_prefer, 0, 0, 0, NULL, D_DEFAULTS, NULL},
    {"skip_if_request_header", set_skip_header, offsetof(fc_compression_conf_t, skip_header), 0, 0, NULL, 0, NULL},
};
static const table_t compression_table = TABLE(compression_keys);

static void free_compression(fc_compression_conf_t *c)
{
    if (c == NULL) return;
    free_types(c);
    free(c->skip_header);
    free(c);
}

/* Top-level `compression:` (a mapping; `off` is the same as no key). */
static int set_compression(loader_t *ld, const directive_t *d, const fc_yaml_node_t *v, void *base)
{
    fc_config_t *cfg = base;
    if (v->kind == FC_YAML_SCALAR && strcmp(v->scalar.text, "off") == 0) return 0;
    if (expect_kind(ld, v, FC_YAML_MAPPING) < 0) return -1;
    cfg->compression = fc_xcalloc(1, sizeof(*cfg->compression));
    ld->compression = v;
    return apply_table(ld, &compression_table, v, cfg->compression);
}

/* A route's `compression`: absent, the top level's; `off`, none; a mapping, its keys over the top
 * level's (each key absent here keeps the top level's value). */
static int set_route_compression(loader_t *ld, const directive_t *d, const fc_yaml_node_t *v, void *base)
{
    fc_route_conf_t *r = base;
    if (v == NULL) {
        r->compression = ld->cfg->compression;
        return 0;
    }
    if (v->kind == FC_YAML_SCALAR && strcmp(v->scalar.text, "off") == 0) return 0;
    if (expect_kind(ld, v, FC_YAML_MAPPING) < 0) return -1;
    const fc_yaml_node_t *top = ld->compression;
    size_t ntop = top != NULL ? top->map.n : 0;
    fc_yaml_node_t merged = {.kind = FC_YAML_MAPPING, .line = v->line, .column = v->column};
    merged.map.pairs = fc_xcalloc(v->map.n + ntop + 1, sizeof(fc_yaml_pair_t));
    for (size_t i = 0; i < v->map.n; i++) merged.map.pairs[merged.map.n++] = v->map.pairs[i];
    for (size_t i = 0; i < ntop; i++)
        if (fc_yaml_map_get(v, top->map.pairs[i].key->scalar.text) == NULL) merged.map.pairs[merged.map.n++] = top->map.pairs[i];
    r->compression = fc_xcalloc(1, sizeof(*r->compression));
    r->compression_owned = 1;
    int rc = apply_table(ld, &compression_table, &merged, r->compression);
    free(merged.map.pairs);
    return rc;
}

/* A route's `buffering: { response: 256k, request: 64k }`, or `off` (the default). */
static const directive_t buffering_keys[] = {
    {"response", set_size, offsetof(fc_route_conf_t, buffer_response), 0, UINT64_C(1) << 30, "0", 0, NULL},
    {"request", set_size, offsetof(fc_route_conf_t, buffer_request), 0, UINT64_C(64) << 20, "0", 0, NULL},
};
static const table_t buffering_table = TABLE(buffering_keys);

static int set_buffering(loader_t *ld, const directive_t *d, const fc_yaml_node_t *v, void *base)
{
    if (v->kind == FC_YAML_SCALAR && strcmp(v->scalar.text, "off") == 0) return 0;
    return apply_table(ld, &buffering_table, v, base);
}

/* ---- the tables ---- */

/* `health: { path: ... }` of a listener; `health: {}` gives the default path. */
static const directive_t endpoint_keys[] = {
    {"path", set_endpoint_path, offsetof(fc_listener_conf_t, health_path), 0, 0, "/healthz", 0, NULL},
};
static const table_t endpoint_table = TABLE(endpoint_keys);
static const directive_t metrics_endpoint_keys[] = {
    {"path", set_endpoint_path, offsetof(fc_listener_conf_t, metrics_path), 0, 0, "/metrics", 0, NULL},
};
static const table_t metrics_endpoint_table = TABLE(metrics_endpoint_keys);
static const directive_t status_endpoint_keys[] = {
    {"path", set_endpoint_path, offsetof(fc_listener_conf_t, status_path), 0, 0, "/status", 0, NULL},
};
static const table_t status_endpoint_table = TABLE(status_endpoint_keys);

static const directive_t listener_keys[] = {
    {"address", set_addr, offsetof(fc_listener_conf_t, addr), 0, 0, NULL, D_REQUIRED, NULL},
    /* Its path lives directly in the listener struct, so the section's base is the listener; when
     * the key is absent nothing is set and there is no endpoint. */
    {"health", set_section, 0, 0, 0, NULL, 0, &endpoint_table},
    {"metrics", set_section, 0, 0, 0, NULL, 0, &metrics_endpoint_table},
    {"status", set_section, 0, 0, 0, NULL, 0, &status_endpoint_table},
    {"tls", set_listen_tls, offsetof(fc_listener_conf_t, tls), 0, 0, NULL, 0, NULL},
    {"hsts", set_hsts, 0, 0, 0, NULL, 0, NULL},
    {"redirect_https", set_redirect_https, offsetof(fc_listener_conf_t, redirect_https), 0, 0, NULL, 0, NULL},
};
static const table_t listener_table = TABLE(listener_keys);
static const list_spec_t listener_list = {&listener_table, sizeof(fc_listener_conf_t),
                                          offsetof(fc_config_t, nlisteners), 64, check_listener};

static const directive_t server_keys[] = {
    {"address", set_server_addr, offsetof(fc_server_conf_t, addr), 0, 0, NULL, D_REQUIRED, NULL},
    {"weight", set_int, offsetof(fc_server_conf_t, weight), 1, 1000, "1", 0, NULL},
    {"backup", set_bool, offsetof(fc_server_conf_t, backup), 0, 0, "false", 0, NULL},
    {"down", set_bool, offsetof(fc_server_conf_t, down), 0, 0, "false", 0, NULL},
    {"max_conns", set_u32, offsetof(fc_server_conf_t, max_conns), 0, 1000000, "0", 0, NULL},
    {"max_fails", set_u32, offsetof(fc_server_conf_t, max_fails), 0, 1000, "1", 0, NULL},
    {"fail_timeout", set_duration, offsetof(fc_server_conf_t, fail_timeout), 1, DAY_MS, "10s", 0, NULL},
    {"slow_start", set_duration, offsetof(fc_server_conf_t, slow_start), 0, DAY_MS, "0", 0, NULL},
    {"resolve", set_resolve, offsetof(fc_server_conf_t, resolve), 0, 0, NULL, D_DEFAULTS, NULL},
    {"resolve_interval", set_duration, offsetof(fc_server_conf_t, resolve_interval), 1000, DAY_MS, NULL, 0, NULL},
    {"max_addresses", set_u32, offsetof(fc_server_conf_t, max_addresses), 1, FC_UPSTREAM_MAX_SERVERS, NULL, 0, NULL},
};
static const table_t server_table = TABLE(server_keys);
static const list_spec_t server_list = {&server_table, sizeof(fc_server_conf_t),
                                        offsetof(fc_upstream_conf_t, nservers), FC_UPSTREAM_MAX_SERVERS,
                                        check_server};

static const directive_t health_keys[] = {
    {"path", set_check_path, offsetof(fc_health_conf_t, path), 0, 0, "/health", 0, NULL},
    {"host", set_check_host, offsetof(fc_health_conf_t, host), 0, 0, NULL, 0, NULL},
    {"interval", set_duration, offsetof(fc_health_conf_t, interval), 1, DAY_MS, "30s", 0, NULL},
    {"timeout", set_duration, offsetof(fc_health_conf_t, timeout), 1, DAY_MS, "5s", 0, NULL},
    {"healthy_threshold", set_u32, offsetof(fc_health_conf_t, healthy_threshold), 1, 100, "2", 0, NULL},
    {"unhealthy_threshold", set_u32, offsetof(fc_health_conf_t, unhealthy_threshold), 1, 100, "3", 0, NULL},
    {"expect_status", set_expect_status, offsetof(fc_health_conf_t, expect_min), 0, 0, "200-399", 0, NULL},
    {"start_unhealthy", set_bool, offsetof(fc_health_conf_t, start_unhealthy), 0, 0, "false", 0, NULL},
};
static const table_t health_table = TABLE(health_keys);

static const directive_t retry_keys[] = {
    {"tries", set_u32, offsetof(fc_retry_conf_t, tries), 1, FC_UPSTREAM_MAX_SERVERS, "3", 0, NULL},
    {"timeout", set_duration, offsetof(fc_retry_conf_t, timeout), 0, DAY_MS, "0", 0, NULL},
    {"on", set_fail_set, offsetof(fc_retry_conf_t, on), 0, 0, NULL, D_DEFAULTS, NULL},
};
static const table_t retry_table = TABLE(retry_keys);

static const directive_t queue_keys[] = {
    {"max", set_u32, offsetof(fc_queue_conf_t, max), 0, FC_QUEUE_MAX, "0", 0, NULL},
    {"timeout", set_duration, offsetof(fc_queue_conf_t, timeout), 1, DAY_MS, "5s", 0, NULL},
};
static const table_t queue_table = TABLE(queue_keys);

static const directive_t upstream_keys[] = {
    {"balance", set_balance, offsetof(fc_upstream_conf_t, balance), 0, 0, "round_robin", 0, NULL},
    {"keepalive", set_int, offsetof(fc_upstream_conf_t, keepalive), 0, 100000, "32", 0, NULL},
    {"keepalive_timeout", set_duration, offsetof(fc_upstream_conf_t, keepalive_timeout), 1, DAY_MS, "60s", 0, NULL},
    {"servers", set_list, offsetof(fc_upstream_conf_t, servers), 0, 0, NULL, D_REQUIRED, &server_list},
    {"fail_on", set_fail_set, offsetof(fc_upstream_conf_t, fail_on), 0, 0, NULL, D_DEFAULTS, NULL},
    {"health_check", set_health, offsetof(fc_upstream_conf_t, health), 0, 0, NULL, D_DEFAULTS, &health_table},
    {"retry", set_section, offsetof(fc_upstream_conf_t, retry), 0, 0, NULL, D_DEFAULTS, &retry_table},
    {"tls", set_upstream_tls, offsetof(fc_upstream_conf_t, tls), 0, 0, NULL, 0, NULL},
    {"sticky", set_sticky, offsetof(fc_upstream_conf_t, sticky), 0, 0, NULL, 0, NULL},
    {"queue", set_section, offsetof(fc_upstream_conf_t, queue), 0, 0, NULL, D_DEFAULTS, &queue_table},
    {"resolve", set_bool, offsetof(fc_upstream_conf_t, resolve), 0, 0, "false", 0, NULL},
    {"resolve_interval", set_duration, offsetof(fc_upstream_conf_t, resolve_interval), 1000, DAY_MS, "5s", 0, NULL},
    {"max_addresses", set_u32, offsetof(fc_upstream_conf_t, max_addresses), 1, FC_UPSTREAM_MAX_SERVERS, "16", 0,
     NULL},
};
static const table_t upstream_table = TABLE(upstream_keys);

static const directive_t timeout_keys[] = {
    {"connect", set_duration, offsetof(fc_route_conf_t, connect_timeout), 1, DAY_MS, "5s", 0, NULL},
    {"send", set_duration, offsetof(fc_route_conf_t, send_timeout), 1, DAY_MS, "60s", 0, NULL},
    {"read", set_duration, offsetof(fc_route_conf_t, read_timeout), 1, DAY_MS, "60s", 0, NULL},
    {"tunnel", set_duration, offsetof(fc_route_conf_t, tunnel_timeout), 1, 7 * DAY_MS, "1h", 0, NULL},
    {"request", set_duration, offsetof(fc_route_conf_t, request_timeout), 0, DAY_MS, "0", 0, NULL},
};
static const table_t timeout_table = TABLE(timeout_keys);

static const directive_t route_keys[] = {
    {"host", set_host, offsetof(fc_route_conf_t, host), 0, 0, NULL, 0, NULL},
    {"path", set_path, offsetof(fc_route_conf_t, path), 0, 0, "/", 0, NULL},
    {"upstream", set_route_upstream, offsetof(fc_route_conf_t, upstream_name), 0, 0, NULL, D_REQUIRED, NULL},
    /* After `upstream`: its default is the upstream's name. */
    {"name", set_route_name, offsetof(fc_route_conf_t, name), 0, 0, NULL, D_DEFAULTS, NULL},
    {"access_log", set_switch, offsetof(fc_route_conf_t, access_log), 0, 0, "on", 0, NULL},
    {"upgrade", set_upgrade, offsetof(fc_route_conf_t, upgrade), 0, 0, NULL, D_DEFAULTS, NULL},
    {"rate_limit", set_route_rate_limit, 0, 0, 0, NULL, 0, NULL},
    {"compression", set_route_compression, 0, 0, 0, NULL, D_DEFAULTS, NULL},
    {"buffering", set_buffering, 0, 0, 0, NULL, 0, NULL},
    /* The timeouts live directly in the route struct, so the section's base is the route itself. */
    {"timeouts", set_section, 0, 0, 0, NULL, D_DEFAULTS, &timeout_table},
};
static const table_t route_table = TABLE(route_keys);
static const list_spec_t route_list = {&route_table, sizeof(fc_route_conf_t), offsetof(fc_config_t, nroutes),
                                       100000, check_route};

static const directive_t limit_keys[] = {
    {"client_header_timeout", set_duration, offsetof(fc_limits_conf_t, client_header_timeout), 1, DAY_MS, "10s",
     0, NULL},
    {"client_body_timeout", set_duration, offsetof(fc_limits_conf_t, client_body_timeout), 1, DAY_MS, "60s", 0,
     NULL},
    {"send_timeout", set_duration, offsetof(fc_limits_conf_t, send_timeout), 1, DAY_MS, "60s", 0, NULL},
    {"keepalive_timeout", set_duration, offsetof(fc_limits_conf_t, keepalive_timeout), 0, DAY_MS, "75s", 0, NULL},
    {"max_header_size", set_size, offsetof(fc_limits_conf_t, max_header_size), 1u << 10, 1u << 20, "16k", 0, NULL},
    {"max_body_size", set_size, offsetof(fc_limits_conf_t, max_body_size), 0, UINT64_MAX, "10m", 0, NULL},
    {"max_connections", set_uint, offsetof(fc_limits_conf_t, max_connections), 1, 1000000, "10000", 0, NULL},
    {"max_connections_per_client", set_uint, offsetof(fc_limits_conf_t, max_connections_per_client), 0, 1000000, "0",
     0, NULL},
    {"tls_handshake_timeout", set_duration, offsetof(fc_limits_conf_t, tls_handshake_timeout), 1, HOUR_MS, "10s", 0,
     NULL},
    {"buffer_memory", set_size, offsetof(fc_limits_conf_t, buffer_memory), 0, UINT64_C(1) << 40, "64m", 0, NULL},
    {"client_body_min_rate", set_byte_rate, offsetof(fc_limits_conf_t, client_body_min_rate), 0, 1u << 30, "0", 0,
     NULL},
    {"client_body_min_rate_after", set_duration, offsetof(fc_limits_conf_t, client_body_min_rate_after), 0, DAY_MS,
     "10s", 0, NULL},
};
static const table_t limit_table = TABLE(limit_keys);

static const directive_t metrics_keys[] = {
    {"buckets", set_buckets, 0, 0, 0, NULL, D_DEFAULTS, NULL},
    {"max_series", set_uint, offsetof(fc_metrics_conf_t, max_series), 100, 1000000, "10000", 0, NULL},
};
static const table_t metrics_table = TABLE(metrics_keys);

static const char *const log_levels[] = {"error", "warn", "notice", "info", "debug", NULL};
static const char *const log_formats[] = {"json", "combined", NULL};
_Static_assert(FC_LOG_FORMAT_JSON == 0 && FC_LOG_FORMAT_COMBINED == 1, "log_formats[] follows the enum");
_Static_assert(sizeof(enum fc_log_format) == sizeof(int), "set_enum stores an int");

static int set_upstreams(loader_t *ld, const directive_t *d, const fc_yaml_node_t *v, void *base);

static const directive_t top_keys[] = {
    {"workers", set_workers, offsetof(fc_config_t, workers), 1, FC_SHM_PROCS / 2, "auto", 0, NULL},
    {"shutdown_timeout", set_duration, offsetof(fc_config_t, shutdown_timeout), 0, DAY_MS, "30s", 0, NULL},
    {"shutdown_delay", set_duration, offsetof(fc_config_t, shutdown_delay), 0, HOUR_MS, "0", 0, NULL},
    {"pid_file", set_string, offsetof(fc_config_t, pid_file), 0, 0, NULL, 0, NULL},
    {"error_log", set_string, offsetof(fc_config_t, error_log), 0, 0, "stderr", 0, NULL},
    {"error_log_level", set_choice, offsetof(fc_config_t, error_log_level), 0, 0, "notice", 0, log_levels},
    {"access_log", set_access_log, offsetof(fc_config_t, access_log), 0, 0, "stdout", 0, NULL},
    {"access_log_format", set_enum, offsetof(fc_config_t, access_log_format), 0, 0, "json", 0, log_formats},
    {"via", set_via, offsetof(fc_config_t, via), 0, 0, "fulcrum", 0, NULL},
    {"underscores_in_headers", set_bool, offsetof(fc_config_t, underscores_in_headers), 0, 0, "false", 0, NULL},
    {"request_id", set_switch, offsetof(fc_config_t, request_id), 0, 0, "on", 0, NULL},
    /* Before upstreams, whose host names are resolved as they are read. */
    {"resolver", set_resolver, offsetof(fc_config_t, resolver), 0, 0, NULL, 0, NULL},
    {"listeners", set_list, offsetof(fc_config_t, listeners), 0, 0, NULL, D_REQUIRED, &listener_list},
    /* Upstreams come before routes so that a route's upstream can be resolved as it is read. */
    {"upstreams", set_upstreams, offsetof(fc_config_t, upstreams), 0, 0, NULL, D_REQUIRED, &upstream_table},
    /* Before routes, which name them. */
    {"rate_limits", set_rate_limits, 0, 0, 0, NULL, 0, NULL},
    /* Before routes, which inherit it. */
    {"compression", set_compression, 0, 0, 0, NULL, 0, NULL},
    {"routes", set_list, offsetof(fc_config_t, routes), 0, 0, NULL, D_REQUIRED, &route_list},
    {"limits", set_section, offsetof(fc_config_t, limits), 0, 0, NULL, D_DEFAULTS, &limit_table},
    {"metrics", set_section, offsetof(fc_config_t, metrics), 0, 0, NULL, D_DEFAULTS, &metrics_table},
};
static const table_t top_table = TABLE(top_keys);

/* `upstreams`: a mapping of name -> upstream section, kept in file order. */
static int set_upstreams(loader_t *ld, const directive_t *d, const fc_yaml_node_t *v, void *base)
{
    fc_config_t *cfg = base;
    if (expect_kind(ld, v, FC_YAML_MAPPING) < 0) return -1;
    if (v->map.n == 0) return fail(ld, v, "no upstreams are defined; at least one is required");
    cfg->upstreams = fc_xcalloc(v->map.n, sizeof(*cfg->upstreams));
    cfg->nupstreams = v->map.n;
    for (size_t i = 0; i < v->map.n; i++) {
        const fc_yaml_node_t *key = v->map.pairs[i].key;
        fc_upstream_conf_t *u = &cfg->upstreams[i];
        const char *name = key->scalar.text;
        size_t saved;
        int rc;
        if (*name == '\0' || key->scalar.len > FC_UPSTREAM_NAME_MAX ||
            strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") != key->scalar.len)
            return fail_raw(ld, key, "invalid upstream name '%s': use 1 to 64 letters, digits, '-', '_' and '.'",
                            name);
        u->name = fc_xstrdup(name);
        u->index = i;
        saved = path_push(ld, ".%s", name);
        rc = apply_table(ld, d->extra, v->map.pairs[i].value, u);
        if (rc == 0) rc = check_upstream(ld, v->map.pairs[i].value, u);
        if (rc == 0) rc = expand_names(ld, v->map.pairs[i].value, u);
        path_pop(ld, saved);
        if (rc < 0) return -1;
    }
    return 0;
}

/* ---- public API ---- */

int fc_addr_parse(const char *text, fc_addr_t *out, fc_err_t *err)
{
    fc_addr_t a;
    char host[64];
    const char *port, *end;
    size_t hostlen, tl = strlen(text);
    long p = 0;

    memset(&a, 0, sizeof(a));
    if (tl == 0) return fc_err_set(err, "empty address (expected host:port, like 127.0.0.1:8080)");
    if (tl >= sizeof(a.text)) return fc_err_set(err, "address '%.40s...' is too long", text);
    if (text[0] == '[') {
        end = strchr(text, ']');
        if (end == NULL) return fc_err_set(err, "missing ']' in '%s' (expected [address]:port)", text);
        hostlen = (size_t)(end - text - 1);
        port = end[1] == ':' ? end + 2 : NULL;
        memcpy(host, text + 1, hostlen);
    } else {
        end = strrchr(text, ':');
        if (end != NULL && memchr(text, ':', (size_t)(end - text)) != NULL)
            return fc_err_set(err, "'%s': write IPv6 addresses in brackets, like [::1]:8080", text);
        hostlen = end ? (size_t)(end - text) : tl;
        port = end ? end + 1 : NULL;
        memcpy(host, text, hostlen);
    }
    host[hostlen] = '\0';
    if (port == NULL) return fc_err_set(err, "missing port in '%s' (expected host:port, like 127.0.0.1:8080)", text);
    if ((p = parse_port(port)) < 0)
        return fc_err_set(err, "invalid port '%s' in '%s' (expected 1..65535)", port, text);
    if (text[0] == '[') {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&a.ss;
        if (inet_pton(AF_INET6, host, &s6->sin6_addr) != 1)
            return fc_err_set(err, "'%s' is not a valid IPv6 address", host);
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)p);
        a.len = sizeof(*s6);
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&a.ss;
        if (hostlen == 0)
            return fc_err_set(err, "missing host in '%s' (write *%s to listen on every address)", text, text);
        if (strcmp(host, "*") == 0) s4->sin_addr.s_addr = htonl(INADDR_ANY);
        else if (strcmp(host, "localhost") == 0) s4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        else if (inet_pton(AF_INET, host, &s4->sin_addr) != 1)
            return fc_err_set(err, "'%s' is not an IP address (only numeric addresses and localhost are accepted)",
                              host);
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)p);
        a.len = sizeof(*s4);
    }
    memcpy(a.text, text, tl + 1);
    *out = a;
    return 0;
}

int fc_config_load_string(const char *name, const char *text, size_t len, fc_config_t **out, fc_err_t *err)
{
    fc_yaml_doc_t *doc;
    fc_config_t *cfg;
    int rc;

    if (fc_yaml_parse(name, text, len, &doc, err) < 0) return -1;
    cfg = fc_xcalloc(1, sizeof(*cfg));
    cfg->file = fc_xstrdup(name);
    loader_t ld = {.cfg = cfg, .file = name, .err = err};
    if (doc->root == NULL)
        rc = fc_err_setpos(err, name, 0, 0,
                           "the configuration is empty (listeners, upstreams and routes are required)");
    else if (doc->root->kind != FC_YAML_MAPPING)
        rc = fail_raw(&ld, doc->root, "the configuration must be a mapping of keys like 'listeners:', not %s",
                      fc_yaml_kind_name(doc->root->kind));
    else
        rc = apply_table(&ld, &top_table, doc->root, cfg);
    fc_yaml_free(doc);
    if (rc < 0) {
        fc_config_free(cfg);
        return -1;
    }
    *out = cfg;
    return 0;
}

int fc_config_load(const char *path, fc_config_t **out, fc_err_t *err)
{
    FILE *f = fopen(path, "rb");
    char *text;
    size_t len;
    int rc;

    if (f == NULL) return fc_err_setpos(err, path, 0, 0, "cannot open: %s", strerror(errno));
    text = fc_xmalloc(CONFIG_MAX_FILE_SIZE + 1);
    len = fread(text, 1, CONFIG_MAX_FILE_SIZE + 1, f);
    if (ferror(f)) rc = fc_err_setpos(err, path, 0, 0, "cannot read: %s", strerror(errno));
    else if (len > CONFIG_MAX_FILE_SIZE)
        rc = fc_err_setpos(err, path, 0, 0, "larger than 8m; is this the config file?");
    else rc = fc_config_load_string(path, text, len, out, err);
    fclose(f);
    free(text);
    return rc;
}

void fc_config_free(fc_config_t *cfg)
{
    if (cfg == NULL) return;
    for (size_t i = 0; i < cfg->nupstreams; i++) {
        free(cfg->upstreams[i].name);
        free(cfg->upstreams[i].balance);
        free(cfg->upstreams[i].hash_key);
        free(cfg->upstreams[i].health.path);
        free(cfg->upstreams[i].health.host);
        free(cfg->upstreams[i].servers);
        for (size_t k = 0; k < cfg->upstreams[i].nnames; k++) free(cfg->upstreams[i].names[k].initial);
        free(cfg->upstreams[i].names);
        free(cfg->upstreams[i].sticky.cookie);
        free(cfg->upstreams[i].sticky.learn);
        free(cfg->upstreams[i].sticky.same_site);
        fc_upstream_tls_conf_t *t = cfg->upstreams[i].tls;
        if (t != NULL) {
            fc_tls_ctx_free(t->ctx);
            free(t->ca);
            free(t->sni);
            free(t->cert);
            free(t->key);
            free(t);
        }
    }
    for (size_t i = 0; i < cfg->nroutes; i++) {
        free(cfg->routes[i].name);
        free(cfg->routes[i].host);
        free(cfg->routes[i].path);
        free(cfg->routes[i].upstream_name);
        free(cfg->routes[i].upgrade);
        free(cfg->routes[i].rate_limits);
        if (cfg->routes[i].compression_owned) free_compression(cfg->routes[i].compression);
    }
    for (size_t i = 0; i < cfg->nlisteners; i++) {
        free(cfg->listeners[i].health_path);
        free(cfg->listeners[i].metrics_path);
        free(cfg->listeners[i].status_path);
        fc_listen_tls_conf_t *t = cfg->listeners[i].tls;
        if (t == NULL) continue;
        fc_tls_ctx_free(t->ctx);
        for (size_t k = 0; k < t->npairs; k++) {
            free(t->pairs[k].cert);
            free(t->pairs[k].key);
        }
        free(t->pairs);
        free(t->ciphers);
        free(t->ciphersuites);
        free(t->groups);
        free(t->client_ca);
        free(t);
    }
    free_compression(cfg->compression);
    free(cfg->warnings);
    free(cfg->resolver);
    for (size_t i = 0; i < cfg->nrate_limits; i++) {
        free(cfg->rate_limits[i].name);
        free(cfg->rate_limits[i].key);
        free(cfg->rate_limits[i].store);
    }
    free(cfg->rate_limits);
    free(cfg->upstreams);
    free(cfg->routes);
    free(cfg->listeners);
    free(cfg->file);
    free(cfg->pid_file);
    free(cfg->error_log);
    free(cfg->error_log_level);
    free(cfg->via);
    free(cfg->access_log);
    free(cfg);
}

fc_upstream_conf_t *fc_config_upstream(const fc_config_t *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->nupstreams; i++)
        if (cfg->upstreams[i].name != NULL && strcmp(cfg->upstreams[i].name, name) == 0) return &cfg->upstreams[i];
    return NULL;
}
