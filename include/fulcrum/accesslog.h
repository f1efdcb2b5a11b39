/* accesslog.h: the end-of-exchange record and the access-log line made from it. The exchange
 * fills one record when it ends (one clock read), and both the access log and the metrics read
 * that same record, so the two cannot disagree. This module formats the line; it knows no
 * exchange, connection or libuv type. */
#ifndef FULCRUM_ACCESSLOG_H
#define FULCRUM_ACCESSLOG_H

#include <stddef.h>
#include <stdint.h>

#include "fulcrum/http.h"

/* Everything the access log and the metrics know about one finished exchange. The strings are
 * borrowed (from the config, the exchange or the connection) and valid only during the call the
 * record is passed to. */
typedef struct fc_accesslog_record {
    const char *client;      /* the client's address, "-" when unknown */
    const char *route;       /* the route's name (its upstream's name by default), NULL = no route */
    const char *upstream;    /* the upstream's name, NULL = no route */
    const char *server;      /* the last server tried ("address"), NULL = none */
    fc_slice_t method;       /* the request method, {NULL, 0} when the head was never parsed */
    fc_slice_t url;          /* the request target as forwarded, {NULL, 0} when unknown */
    fc_slice_t head;         /* the request head as sent upstream (referer and user agent for the
                                combined format), {NULL, 0} when none was built */
    int status;              /* sent to the client (499: the client left first), 0 = nothing */
    uint8_t cause;           /* enum fc_end_cause (exchange.h): why it ended early, 0 = completed */
    uint8_t phase;           /* enum fc_end_phase: where it was when it ended (FC_PHASE_DONE when complete) */
    uint8_t http10;          /* the client spoke HTTP/1.0 */
    uint64_t bytes_sent;     /* bytes written to the client */
    uint64_t now;            /* the one clock read at the end (uv_hrtime ns); 0 when timing is off */
    uint64_t request_ns;     /* the request head's first byte to now */
    uint64_t upstream_ns;    /* the request handed to the server to the response read whole (or now) */
    uint64_t upstream_header_ns; /* the request handed to the server to its final response head, 0 = none came */
    uint64_t connect_ns;     /* the last fresh connection's connect, 0 when pooled or none */
    uint64_t queue_ms;       /* time waited in the upstream's queue at max_conns (ms), 0 = none */
} fc_accesslog_record_t;

/* The short names of the end causes and phases, as the log prints them ("server_timeout",
 * "headers"); the index is the enum value. Unknown values give "-". */
const char *fc_accesslog_cause_name(unsigned cause);
const char *fc_accesslog_phase_name(unsigned phase);

/* Writes the <n> bytes at <s> into <out> (<cap> bytes) with '"', '\\' and bytes outside printable
 * ASCII escaped for a JSON string (as much as fits, 7 bytes kept free); returns the length. */
size_t fc_accesslog_escape(char *out, size_t cap, const char *s, size_t n);

/* Formats <r> as one line in <format> (enum fc_log_format: JSON or combined) into <out>
 * (<cap> bytes), the '\n' included. Returns its length (0 when <cap> is too small for any line).
 * <time_iso>/<time_clf> are the current time strings (log.h). */
size_t fc_accesslog_format(char *out, size_t cap, const fc_accesslog_record_t *r, int format, const char *time_iso,
                           const char *time_clf);

/* Formats <r> and writes it to the access log. */
void fc_accesslog_write(const fc_accesslog_record_t *r, int format);

#endif
