/* accesslog.c: the access-log line made from the end-of-exchange record (see accesslog.h). Pure
 * formatting into one buffer, written with one call; no libuv, no exchange. */
#include "fulcrum/accesslog.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "fulcrum/common.h"
#include "fulcrum/config.h"
#include "fulcrum/log.h"

static const char *const cause_names[] = {"-", "client_timeout", "client_closed", "client_bad", "limit", "no_route",
                                          "server_refused", "server_timeout", "server_closed", "server_bad", "local",
                                          "internal", "busy"};
static const char *const phase_names[] = {"request", "connect", "headers", "body", "done"};

const char *fc_accesslog_cause_name(unsigned cause)
{
    return cause < FC_ARRAY_LEN(cause_names) ? cause_names[cause] : "-";
}

const char *fc_accesslog_phase_name(unsigned phase)
{
    return phase < FC_ARRAY_LEN(phase_names) ? phase_names[phase] : "-";
}

size_t fc_accesslog_escape(char *out, size_t cap, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    for (size_t i = 0; i < n && o + 7 < cap; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '"' || ch == '\\') {
            out[o++] = '\\';
            out[o++] = (char)ch;
        } else if (ch < 0x20 || ch >= 0x7f) {
            memcpy(out + o, "\\u00", 4);
            out[o + 4] = hex[ch >> 4];
            out[o + 5] = hex[ch & 15];
            o += 6;
        } else out[o++] = (char)ch;
    }
    return o;
}

/* The value of header <name> in <head> (the request as sent upstream; combined format only). */
static fc_slice_t sent_header(fc_slice_t head, const char *name, size_t namelen)
{
    const char *p = head.p, *end = p + head.n;
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (eol == NULL) break;
        p = eol + 1;
        if ((size_t)(end - p) > namelen + 1 && strncasecmp(p, name, namelen) == 0 && p[namelen] == ':') {
            const char *v = p + namelen + 2, *ve = memchr(v, '\r', (size_t)(end - v));
            return ve ? (fc_slice_t){v, (size_t)(ve - v)} : (fc_slice_t){NULL, 0};
        }
    }
    return (fc_slice_t){NULL, 0};
}

static size_t escape_or_dash(char *out, size_t cap, fc_slice_t s)
{
    return s.p ? fc_accesslog_escape(out, cap, s.p, s.n) : fc_accesslog_escape(out, cap, "-", 1);
}

size_t fc_accesslog_format(char *line, size_t cap, const fc_accesslog_record_t *r, int format, const char *time_iso,
                           const char *time_clf)
{
    char method[64], path[2048];
    size_t ml = escape_or_dash(method, sizeof(method), r->method);
    size_t pl = escape_or_dash(path, sizeof(path), r->url);
    double dur = (double)r->request_ns / 1e6, up_ms = (double)r->upstream_ns / 1e6, conn_ms = (double)r->connect_ns / 1e6;
    double hdr_ms = (double)r->upstream_header_ns / 1e6;
    const char *server = r->server ? r->server : "-", *route = r->route ? r->route : "-";
    const char *cause = fc_accesslog_cause_name(r->cause), *phase = fc_accesslog_phase_name(r->phase);
    char rid[300];
    size_t il = escape_or_dash(rid, sizeof(rid), sent_header(r->head, "x-request-id", 12));
    int n;
    if (format == FC_LOG_FORMAT_COMBINED) {
        char ref[512], ua[512];
        size_t rl = escape_or_dash(ref, sizeof(ref), sent_header(r->head, "referer", 7));
        size_t al = escape_or_dash(ua, sizeof(ua), sent_header(r->head, "user-agent", 10));
        /* The combined fields, then (as nginx's $request_time $upstream_addr $upstream_response_time) fulcrum's:
         * route, end cause/phase, connect time, request id and the time waited in the queue. */
        n = snprintf(line, cap,
                     "%s - - [%s] \"%.*s %.*s HTTP/1.%d\" %d %llu \"%.*s\" \"%.*s\" %.3f %s %.3f %s %s/%s %.3f %.*s %.3f\n",
                     r->client, time_clf, (int)ml, method, (int)pl, path, r->http10 ? 0 : 1, r->status,
                     (unsigned long long)r->bytes_sent, (int)rl, ref, (int)al, ua, dur / 1000, server, up_ms / 1000,
                     route, cause, phase, conn_ms / 1000, (int)il, rid, (double)r->queue_ms / 1000);
    } else {
        n = snprintf(line, cap,
                     "{\"time\":\"%s\",\"client\":\"%s\",\"method\":\"%.*s\",\"path\":\"%.*s\",\"status\":%d,"
                     "\"bytes\":%llu,\"duration_ms\":%.3f,\"upstream\":\"%s\",\"upstream_ms\":%.3f,\"upstream_header_ms\":%.3f,"
                     "\"route\":\"%s\",\"end\":\"%s\",\"phase\":\"%s\",\"connect_ms\":%.3f,\"queue_ms\":%llu,\"request_id\":\"%.*s\"}\n",
                     time_iso, r->client, (int)ml, method, (int)pl, path, r->status,
                     (unsigned long long)r->bytes_sent, dur, server, up_ms, hdr_ms, route, cause, phase, conn_ms,
                     (unsigned long long)r->queue_ms, (int)il, rid);
    }
    if (n <= 0 || cap == 0) return 0;
    if ((size_t)n >= cap) { /* cut short: still one line */
        line[cap - 1] = '\n';
        return cap;
    }
    return (size_t)n;
}

void fc_accesslog_write(const fc_accesslog_record_t *r, int format)
{
    char line[4096];
    size_t n = fc_accesslog_format(line, sizeof(line), r, format, fc_log_time_iso(), fc_log_time_clf());
    if (n > 0) fc_access_log_write(line, n);
}
