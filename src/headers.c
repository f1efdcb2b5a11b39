/* headers.c: request and response head serialization (see headers.h). */
#include "fulcrum/headers.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "fulcrum/common.h"

#define LIT(s) s, sizeof(s) - 1

static const struct {
    const char *name;
    size_t len;
} hop_names[] = {
    {LIT("connection")}, {LIT("keep-alive")}, {LIT("proxy-connection")}, {LIT("te")},
    {LIT("trailer")},    {LIT("upgrade")},
};

/* 1 if <name> may never be removed by a Connection option: the message's framing and routing. */
static int connection_immune(fc_slice_t name)
{
    return FC_SLICE_IEQ(name, "content-length") || FC_SLICE_IEQ(name, "transfer-encoding") || FC_SLICE_IEQ(name, "host");
}

/* 1 if a Connection field of <h> lists <name> as an option. */
static int named_by_connection(const fc_http_head_t *h, fc_slice_t name)
{
    for (size_t i = 0; i < h->nheaders; i++)
        if ((h->kind[i] & ~FC_FIELD_UNDERSCORE) == FC_FIELD_HOP && FC_SLICE_IEQ(h->headers[i].name, "connection") &&
            fc_http_has_token(h->headers[i].value, name.p, name.n))
            return 1;
    return 0;
}

int fc_headers_is_hop(const fc_http_head_t *h, fc_slice_t name)
{
    /* Every hop-by-hop name is 2 to 16 bytes long and starts with c, k, p, t or u: most headers
     * are ruled out by these two tests before any comparison. */
    char c0 = (char)(name.n ? name.p[0] | 0x20 : 0);
    if (name.n >= 2 && name.n <= 16 && (c0 == 'c' || c0 == 'k' || c0 == 'p' || c0 == 't' || c0 == 'u'))
        for (size_t i = 0; i < FC_ARRAY_LEN(hop_names); i++)
            if (fc_slice_ieq(name, hop_names[i].name, hop_names[i].len)) return 1;
    return h->has_connection && named_by_connection(h, name) && !connection_immune(name);
}

/* What the head builders do with received field <i> of <h>: its kind as the parser noted it,
 * with a field named by a Connection option counted as hop-by-hop. */
static int kind_of(const fc_http_head_t *h, size_t i)
{
    int kind = h->kind[i] & ~FC_FIELD_UNDERSCORE;
    /* The fixed hop-by-hop names are FC_FIELD_HOP already; framing and Host are immune. */
    if (h->has_connection && (kind == FC_FIELD_OTHER || kind == FC_FIELD_MAX_FORWARDS || kind == FC_FIELD_VIA ||
                              kind == FC_FIELD_DATE || kind == FC_FIELD_XFF || kind == FC_FIELD_XFWD ||
                              kind == FC_FIELD_REQUEST_ID) &&
        named_by_connection(h, h->headers[i].name))
        kind = FC_FIELD_HOP;
    return kind;
}

/* The builders reserve an upper bound once, then write with these (no call per piece). */
static char *put(char *p, const void *src, size_t n)
{
    if (n > 0) memcpy(p, src, n); /* an empty slice may have no pointer at all */
    return p + n;
}
#define PUT_LIT(p, lit) put((p), (lit), sizeof(lit) - 1)

static char *put_header(char *p, fc_slice_t name, fc_slice_t value)
{
    p = put(p, name.p, name.n);
    *p++ = ':';
    *p++ = ' ';
    p = put(p, value.p, value.n);
    *p++ = '\r';
    *p++ = '\n';
    return p;
}

/* "<decimal n>\r\n" (no printf on the per-request path); at most 22 bytes. */
static char *put_number(char *p, uint64_t n)
{
    char tmp[20];
    size_t k = sizeof(tmp);
    do {
        tmp[--k] = (char)('0' + n % 10);
        n /= 10;
    } while (n != 0);
    p = put(p, tmp + k, sizeof(tmp) - k);
    return PUT_LIT(p, "\r\n");
}

/* fulcrum's Via entry for a message received as HTTP/1.<minor> (RFC 9110 7.6.3); at most
 * 11 + o->via.n bytes. */
static char *put_via(char *p, const fc_head_opts_t *o, int minor)
{
    if (o == NULL || o->via.n == 0) return p;
    p = PUT_LIT(p, "Via: 1.");
    *p++ = (char)('0' + (minor > 9 ? 1 : minor));
    *p++ = ' ';
    p = put(p, o->via.p, o->via.n);
    return PUT_LIT(p, "\r\n");
}

/* Room for every received field line of <h> as it is (an upper bound for what is kept). */
static size_t fields_size(const fc_http_head_t *h)
{
    size_t n = 0;
    for (size_t i = 0; i < h->nheaders; i++) n += h->headers[i].name.n + h->headers[i].value.n + 4;
    return n;
}

int fc_headers_build_request(fc_buf_t *out, const fc_http_head_t *h, const fc_request_view_t *v,
                             const char *client_ip, const char *host_fallback, const fc_head_opts_t *o)
{
    int underscores = o != NULL && o->allow_underscores;
    size_t iplen = strlen(client_ip), fallback_len = strlen(host_fallback);
    /* The request line, the fields, Host, framing, Max-Forwards, the X-Forwarded family (its
     * earlier values are among the fields), Via and the blank line. */
    size_t need = h->method.n + v->target.n + 16 + fields_size(h) + FC_MAX(v->host.n, fallback_len) + 8 + 48 + 40 +
                  2 * iplen + 64 + (o ? o->via.n : 0) + 16 + v->upgrade.n + 40 + v->request_id.n + 16;
    if (fc_buf_reserve(out, need) != 0) return -1;
    char *p = out->base + out->len;
    p = put(p, h->method.p, h->method.n);
    p = v->target_slash ? PUT_LIT(p, " /") : PUT_LIT(p, " ");
    p = put(p, v->target.p, v->target.n);
    p = PUT_LIT(p, " HTTP/1.1\r\n");
    for (size_t i = 0; i < h->nheaders; i++) {
        const fc_header_t *hd = &h->headers[i];
        switch (kind_of(h, i)) {
        case FC_FIELD_OTHER:
        case FC_FIELD_VIA:
        case FC_FIELD_DATE: break;
        case FC_FIELD_REQUEST_ID:
            if (v->request_id.n > 0) continue; /* replaced by the one below */
            break;
        case FC_FIELD_HOST:
            if (v->host_from_target) continue; /* replaced by the target's authority below */
            break;
        case FC_FIELD_MAX_FORWARDS:
            if (v->max_forwards >= 0) continue; /* replaced by the decremented value below */
            break;
        default: continue; /* hop-by-hop, framing, the X-Forwarded family */
        }
        /* CGI, WSGI and PHP read "Content_Length" as "Content-Length": like nginx's
         * underscores_in_headers off, such names are dropped unless allowed. */
        if (!underscores && (h->kind[i] & FC_FIELD_UNDERSCORE)) continue;
        p = put_header(p, hd->name, hd->value);
    }
    if (v->host_from_target) p = put_header(p, (fc_slice_t){"Host", 4}, v->host);
    else if (!v->has_host) p = put_header(p, (fc_slice_t){"Host", 4}, (fc_slice_t){host_fallback, fallback_len});
    if (v->framing == FC_FRAME_LENGTH) p = put_number(PUT_LIT(p, "Content-Length: "), v->length);
    else if (v->framing == FC_FRAME_CHUNKED) p = PUT_LIT(p, "Transfer-Encoding: chunked\r\n");
    if (v->max_forwards >= 0) p = put_number(PUT_LIT(p, "Max-Forwards: "), (uint64_t)v->max_forwards);
    if (v->upgrade.n > 0) {
        p = put_header(p, (fc_slice_t){"Upgrade", 7}, v->upgrade);
        p = PUT_LIT(p, "Connection: upgrade\r\n");
    }
    /* Every X-Forwarded-For the client sent, in order, then the client's own address. */
    p = PUT_LIT(p, "X-Forwarded-For: ");
    for (size_t i = 0; i < h->nheaders; i++) {
        const fc_header_t *hd = &h->headers[i];
        if (hd->value.n == 0 || (h->kind[i] & ~FC_FIELD_UNDERSCORE) != FC_FIELD_XFF) continue;
        p = put(p, hd->value.p, hd->value.n);
        p = PUT_LIT(p, ", ");
    }
    p = put(p, client_ip, iplen);
    p = PUT_LIT(p, "\r\nX-Real-IP: ");
    p = put(p, client_ip, iplen);
    p = o != NULL && o->https ? PUT_LIT(p, "\r\nX-Forwarded-Proto: https\r\n") : PUT_LIT(p, "\r\nX-Forwarded-Proto: http\r\n");
    if (v->request_id.n > 0) p = put_header(p, (fc_slice_t){"X-Request-ID", 12}, v->request_id);
    p = put_via(p, o, h->minor);
    p = PUT_LIT(p, "\r\n");
    out->len = (size_t)(p - out->base);
    FC_ASSERT(out->len <= out->cap);
    return 0;
}

/* The response fields a client gets (hop-by-hop and framing dropped; with <no_sts>, the server's
 * Strict-Transport-Security too: fulcrum's replaces it). Inlined twice, so the common case has
 * no test for the rare one per field. */
static inline __attribute__((always_inline)) char *put_response_fields(char *p, const fc_http_head_t *h, int no_sts,
                                                                       int *have_date)
{
    for (size_t i = 0; i < h->nheaders; i++) {
        const fc_header_t *hd = &h->headers[i];
        int kind = kind_of(h, i);
        if (kind == FC_FIELD_HOP || kind == FC_FIELD_CONTENT_LENGTH || kind == FC_FIELD_TRANSFER_ENCODING) continue;
        *have_date |= kind == FC_FIELD_DATE;
        if (no_sts && hd->name.n == 25 && strncasecmp(hd->name.p, "Strict-Transport-Security", 25) == 0) continue;
        p = put_header(p, hd->name, hd->value);
    }
    return p;
}

/* 1 if a Vary field of <h> lists Accept-Encoding or "*" already. */
static int varies_on_encoding(const fc_http_head_t *h)
{
    for (size_t i = 0; i < h->nheaders; i++) {
        const fc_header_t *hd = &h->headers[i];
        if (!FC_SLICE_IEQ(hd->name, "vary")) continue;
        const char *p = hd->value.p, *end = p + hd->value.n;
        while (p < end) {
            while (p < end && (*p == ' ' || *p == '\t' || *p == ',')) p++;
            const char *t = p;
            while (p < end && *p != ',' && *p != ' ' && *p != '\t') p++;
            size_t n = (size_t)(p - t);
            if ((n == 1 && *t == '*') || (n == 15 && strncasecmp(t, "accept-encoding", 15) == 0)) return 1;
        }
    }
    return 0;
}

/* The response fields with the edits of <e>: a strong ETag made weak for a compressed body. */
static __attribute__((noinline)) char *put_edited_fields(char *p, const fc_http_head_t *h, int no_sts, int *have_date,
                                                        const fc_resp_edit_t *e)
{
    for (size_t i = 0; i < h->nheaders; i++) {
        const fc_header_t *hd = &h->headers[i];
        int kind = kind_of(h, i);
        if (kind == FC_FIELD_HOP || kind == FC_FIELD_CONTENT_LENGTH || kind == FC_FIELD_TRANSFER_ENCODING) continue;
        *have_date |= kind == FC_FIELD_DATE;
        if (no_sts && hd->name.n == 25 && strncasecmp(hd->name.p, "Strict-Transport-Security", 25) == 0) continue;
        if (e->encoding != NULL && FC_SLICE_IEQ(hd->name, "etag") && hd->value.n > 0 && hd->value.p[0] == '"') {
            /* RFC 9110 8.8.1: a strong validator names these exact bytes, which we changed. */
            p = put(p, hd->name.p, hd->name.n);
            p = PUT_LIT(p, ": W/");
            p = put(p, hd->value.p, hd->value.n);
            p = PUT_LIT(p, "\r\n");
            continue;
        }
        p = put_header(p, hd->name, hd->value);
    }
    if (e->encoding != NULL) {
        p = PUT_LIT(p, "Content-Encoding: ");
        p = put(p, e->encoding, strlen(e->encoding));
        p = PUT_LIT(p, "\r\n");
    }
    if (e->vary && !varies_on_encoding(h)) p = PUT_LIT(p, "Vary: Accept-Encoding\r\n");
    return put(p, e->lines.p, e->lines.n);
}

/* Both entry points below: inlined into each, so the common one (no edits) has no test for them. */
static inline __attribute__((always_inline)) int build_response(fc_buf_t *out, const fc_http_head_t *h,
                                                                const fc_response_view_t *v, int flags,
                                                                const char *date, const fc_head_opts_t *o,
                                                                const fc_resp_edit_t *e)
{
    size_t datelen = date != NULL ? strlen(date) : 0;
    size_t need = 16 + h->reason.n + fields_size(h) + 32 + 40 + (o ? o->via.n + o->hsts.n : 0) + 16 + datelen + 8 + 28;
    if (FC_UNLIKELY(e != NULL)) need += h->nheaders * 2 + 64 + e->lines.n; /* W/ per ETag, the added fields */
    int hsts = o != NULL && o->hsts.n > 0;
    if (fc_buf_reserve(out, need) != 0) return -1;
    char *p = out->base + out->len;
    /* The status is always three digits. */
    int st = h->status < 100 || h->status > 999 ? 502 : h->status;
    p = PUT_LIT(p, "HTTP/1.1 ");
    *p++ = (char)('0' + st / 100);
    *p++ = (char)('0' + st / 10 % 10);
    *p++ = (char)('0' + st % 10);
    *p++ = ' ';
    p = put(p, h->reason.p, h->reason.n);
    p = PUT_LIT(p, "\r\n");
    int have_date = 0;
    if (FC_UNLIKELY(e != NULL)) {
        p = put_edited_fields(p, h, hsts, &have_date, e);
        if (hsts) p = put(p, o->hsts.p, o->hsts.n);
    } else if (FC_LIKELY(!hsts)) {
        p = put_response_fields(p, h, 0, &have_date);
    } else {
        p = put_response_fields(p, h, 1, &have_date);
        p = put(p, o->hsts.p, o->hsts.n);
    }
    if (v != NULL) {
        int encoded = e != NULL && e->encoding != NULL;
        /* A compressed body has no length known in advance: chunked, or (HTTP/1.0) ended by the close. */
        if ((v->chunked || encoded) && !(flags & FC_RESP_DECHUNK)) p = PUT_LIT(p, "Transfer-Encoding: chunked\r\n");
        if (v->has_length && !encoded) p = put_number(PUT_LIT(p, "Content-Length: "), v->length);
    }
    p = put_via(p, o, h->minor);
    if (!have_date && date != NULL) {
        p = PUT_LIT(p, "Date: ");
        p = put(p, date, datelen);
        p = PUT_LIT(p, "\r\n");
    }
    if (flags & FC_RESP_UPGRADE) {
        const fc_header_t *u = fc_http_find(h, "upgrade", 7);
        if (u != NULL) p = put_header(p, u->name, u->value);
        p = PUT_LIT(p, "Connection: upgrade\r\n");
    }
    if (flags & FC_RESP_CLOSE) p = PUT_LIT(p, "Connection: close\r\n");
    else if (flags & FC_RESP_KEEPALIVE) p = PUT_LIT(p, "Connection: keep-alive\r\n");
    p = PUT_LIT(p, "\r\n");
    out->len = (size_t)(p - out->base);
    FC_ASSERT(out->len <= out->cap);
    return 0;
}

int fc_headers_build_response(fc_buf_t *out, const fc_http_head_t *h, const fc_response_view_t *v, int flags,
                              const char *date, const fc_head_opts_t *o)
{
    return build_response(out, h, v, flags, date, o, NULL);
}

int fc_headers_build_response_edit(fc_buf_t *out, const fc_http_head_t *h, const fc_response_view_t *v, int flags,
                                   const char *date, const fc_head_opts_t *o, const fc_resp_edit_t *e)
{
    return build_response(out, h, v, flags, date, o, e);
}
