/* units.h: parsing of durations (ms, s, m, h, d, y = 365d) and sizes (k, m, g) as written in the config. */
#ifndef FULCRUM_UNITS_H
#define FULCRUM_UNITS_H

#include <stdint.h>

/* "250ms", "10s", "5m", "1h", "1h30m"; a bare number means seconds (as nginx).
 * Returns 0 and the duration in milliseconds in *<ms>, or -1 on a malformed or overflowing value. */
int fc_duration_parse(const char *text, uint64_t *ms);

/* "512", "16k", "10m", "1g" (case-insensitive; k = 1024). Returns 0 and bytes in *<bytes>, or -1. */
int fc_size_parse(const char *text, uint64_t *bytes);

#endif
