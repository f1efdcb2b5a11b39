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

int fc_headers_is_hop(const fc_http_head_t *h, fc_slice_t name)
{
    /* Every hop-by-hop name is 2 to 16 bytes long and starts with c, k, p, t or u: most headers
     * are ruled out by these two tests before any comparison. */
    char c0 = (char)(name.n ? name.p[0] | 0x20 : 0);
    if (name.n >= 2 && name.n <= 16 && (c0 == 'c' || c0 == 'k' || c0 == 'p' || c0 == 't' || c0 == 'u'))
        for (size_t i = 0; i < FC_ARRAY_LEN(hop_names); i++)
            if (fc_slice_ieq(name, hop_names[i].name, hop_names[i].len)) return 1;
    if (!h->has_connection) return 0;
    for (size_t i = 0; i < h->nheaders; i++)
        if (FC_SLICE_IEQ(h->headers[i].name, "connection") && fc_http_has_token(h->headers[i].value, name.p, name.n))
            return 1;
    return 0;
}

static int append_header(fc_buf_t *out, fc_slice_t name, fc_slice_t value)
{
    if (fc_buf_reserve(out, name.n + value.n + 4) != 0) return -1;
    char *p = out->base + out->len;
    memcpy(p, name.p, name.n);
    p += name.n;
    *p++ = ':';
    *p++ = ' ';
    memcpy(p, value.p, value.n);
    p += value.n;
    *p++ = '\r';
    *p++ = '\n';
    out->len = (size_t)(p - out->base);
    return 0;
}

int fc_headers_build_request(fc_buf_t *out, const fc_http_head_t *h, fc_slice_t target, const char *client_ip,
                             const char *host_fallback)
{
    int have_host = 0, bad = 0; /* bad: an append ran out of memory */
    size_t iplen = strlen(client_ip);
    bad |= fc_buf_append(out, h->method.p, h->method.n);
    bad |= fc_buf_append(out, " ", 1);
    bad |= fc_buf_append(out, target.p, target.n);
    bad |= FC_BUF_APPEND_LIT(out, " HTTP/1.1\r\n");
    for (size_t i = 0; i < h->nheaders; i++) {
        const fc_header_t *hd = &h->headers[i];
        if (FC_SLICE_IEQ(hd->name, "x-real-ip") || FC_SLICE_IEQ(hd->name, "x-forwarded-proto") ||
            FC_SLICE_IEQ(hd->name, "x-forwarded-for") || fc_headers_is_hop(h, hd->name))
            continue;
        if (FC_SLICE_IEQ(hd->name, "host")) have_host = 1;
        bad |= append_header(out, hd->name, hd->value);
    }
    if (!have_host) {
        bad |= FC_BUF_APPEND_LIT(out, "Host: ");
        bad |= fc_buf_append(out, host_fallback, strlen(host_fallback));
        bad |= FC_BUF_APPEND_LIT(out, "\r\n");
    }
    /* Every X-Forwarded-For the client sent, in order, then the client's own address. */
    bad |= FC_BUF_APPEND_LIT(out, "X-Forwarded-For: ");
    for (size_t i = 0; i < h->nheaders; i++) {
        const fc_header_t *hd = &h->headers[i];
        if (!FC_SLICE_IEQ(hd->name, "x-forwarded-for") || hd->value.n == 0) continue;
        bad |= fc_buf_append(out, hd->value.p, hd->value.n);
        bad |= FC_BUF_APPEND_LIT(out, ", ");
    }
    bad |= fc_buf_append(out, client_ip, iplen);
    bad |= FC_BUF_APPEND_LIT(out, "\r\nX-Real-IP: ");
    bad |= fc_buf_append(out, client_ip, iplen);
    bad |= FC_BUF_APPEND_LIT(out, "\r\nX-Forwarded-Proto: http\r\n\r\n");
    return bad ? -1 : 0;
}

int fc_headers_build_response(fc_buf_t *out, const fc_http_head_t *h, int flags)
{
    /* No printf on the per-request path: the status is always three digits. */
    char line[13] = "HTTP/1.1 000 ";
    int st = h->status < 100 || h->status > 999 ? 502 : h->status;
    line[9] = (char)('0' + st / 100);
    line[10] = (char)('0' + st / 10 % 10);
    line[11] = (char)('0' + st % 10);
    int bad = 0; /* an append ran out of memory */
    bad |= fc_buf_append(out, line, sizeof(line));
    bad |= fc_buf_append(out, h->reason.p, h->reason.n);
    bad |= FC_BUF_APPEND_LIT(out, "\r\n");
    for (size_t i = 0; i < h->nheaders; i++) {
        const fc_header_t *hd = &h->headers[i];
        if (fc_headers_is_hop(h, hd->name)) continue;
        if ((flags & FC_RESP_DECHUNK) && FC_SLICE_IEQ(hd->name, "transfer-encoding")) continue;
        bad |= append_header(out, hd->name, hd->value);
    }
    if (flags & FC_RESP_CLOSE) bad |= FC_BUF_APPEND_LIT(out, "Connection: close\r\n");
    else if (flags & FC_RESP_KEEPALIVE) bad |= FC_BUF_APPEND_LIT(out, "Connection: keep-alive\r\n");
    bad |= FC_BUF_APPEND_LIT(out, "\r\n");
    return bad ? -1 : 0;
}
