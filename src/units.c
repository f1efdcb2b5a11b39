/* units.c: parsing of the durations and sizes written in the configuration (units.h).
 * Pure functions over a NUL-terminated string: no allocation, no state, no other module. */
#include "fulcrum/units.h"

#include <string.h>

/* Reads the decimal digits at *<p> into *<out> and advances *<p>. Returns 0, or -1 when there
 * is no digit or the number does not fit in 64 bits. */
static int read_number(const char **p, uint64_t *out)
{
    const char *s = *p;
    uint64_t v = 0;
    if (*s < '0' || *s > '9') return -1;
    for (; *s >= '0' && *s <= '9'; s++) {
        uint64_t d = (uint64_t)(*s - '0');
        if (v > (UINT64_MAX - d) / 10) return -1;
        v = v * 10 + d;
    }
    *p = s;
    *out = v;
    return 0;
}

/* Sets *<out> = a * b, or returns -1 on overflow. */
static int mul_checked(uint64_t a, uint64_t b, uint64_t *out)
{
    if (b != 0 && a > UINT64_MAX / b) return -1;
    *out = a * b;
    return 0;
}

/* Duration units in matching order ("ms" before "m"). A compound value must use strictly smaller
 * units from left to right, so "1h30m" is accepted and "30m1h" or "1m1m" are not (as nginx). */
static const struct {
    const char *suffix;
    uint64_t ms;
} duration_units[] = {
    {"ms", 1}, {"y", 31536000000}, {"d", 86400000}, {"h", 3600000}, {"m", 60000}, {"s", 1000},
};

int fc_duration_parse(const char *text, uint64_t *ms)
{
    const char *p = text;
    uint64_t total = 0;
    uint64_t last_unit = 0; /* ms of the previous component's unit; 0 before the first */
    if (text == NULL || *text == '\0') return -1;
    while (*p != '\0') {
        uint64_t n, part;
        size_t u;
        if (read_number(&p, &n) < 0) return -1;
        if (*p == '\0' && last_unit == 0) {
            /* A bare number is seconds; only allowed on its own ("1h30" is ambiguous). */
            if (mul_checked(n, 1000, &part) < 0) return -1;
            *ms = part;
            return 0;
        }
        for (u = 0; u < sizeof(duration_units) / sizeof(duration_units[0]); u++) {
            size_t sl = strlen(duration_units[u].suffix);
            if (strncmp(p, duration_units[u].suffix, sl) == 0) break;
        }
        if (u == sizeof(duration_units) / sizeof(duration_units[0])) return -1;
        if (last_unit != 0 && duration_units[u].ms >= last_unit) return -1;
        last_unit = duration_units[u].ms;
        p += strlen(duration_units[u].suffix);
        if (mul_checked(n, duration_units[u].ms, &part) < 0) return -1;
        if (total > UINT64_MAX - part) return -1;
        total += part;
    }
    *ms = total;
    return 0;
}

int fc_size_parse(const char *text, uint64_t *bytes)
{
    const char *p = text;
    uint64_t n, mult = 1;
    if (text == NULL || read_number(&p, &n) < 0) return -1;
    switch (*p) {
    case '\0': break;
    case 'k': case 'K': mult = (uint64_t)1 << 10; p++; break;
    case 'm': case 'M': mult = (uint64_t)1 << 20; p++; break;
    case 'g': case 'G': mult = (uint64_t)1 << 30; p++; break;
    default: return -1;
    }
    if (*p != '\0') return -1;
    return mul_checked(n, mult, bytes);
}
