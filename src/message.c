/* message.c: request and response head checks (see message.h). Each rule names the RFC section it
 * comes from; docs/architecture.md ("What fulcrum rejects and why") lists them for operators. */
#include "fulcrum/message.h"

#include <arpa/inet.h>
#include <string.h>
#include <strings.h>

#include "fulcrum/common.h"

static int is_ows(char c) { return c == ' ' || c == '\t'; }
static int is_digit(char c) { return c >= '0' && c <= '9'; }
static int is_hex(char c) { return is_digit(c) || ((c | 0x20) >= 'a' && (c | 0x20) <= 'f'); }

/* A Content-Length value: 1*DIGIT, at most 19 digits after leading zeros (fits in uint64). */
static int parse_length(fc_slice_t v, uint64_t *out)
{
    uint64_t n = 0;
    size_t i = 0, sig = 0;
    if (v.n == 0) return -1;
    for (; i < v.n; i++) {
        if (!is_digit(v.p[i])) return -1;
        if (n == 0 && v.p[i] == '0') continue;
        if (++sig > 19) return -1;
        n = n * 10 + (uint64_t)(v.p[i] - '0');
    }
    *out = n;
    return 0;
}

/* A Transfer-Encoding list: counts its members and the chunked ones, and says whether the last
 * member is chunked. Members are tokens with optional parameters; empty members are skipped
 * (RFC 9110 5.6.1). Returns -1 for a member that is not a token. */
typedef struct te_info {
    unsigned members, chunked;
    int last_chunked;
} te_info_t;

static int parse_te(fc_slice_t v, te_info_t *t)
{
    size_t i = 0;
    while (i < v.n) {
        while (i < v.n && (is_ows(v.p[i]) || v.p[i] == ',')) i++;
        if (i == v.n) break;
        size_t start = i;
        while (i < v.n && v.p[i] != ',' && v.p[i] != ';' && !is_ows(v.p[i])) i++;
        fc_slice_t name = {v.p + start, i - start};
        if (!fc_http_is_token(name)) return -1;
        while (i < v.n && v.p[i] != ',') i++; /* parameters (none is valid for chunked) */
        int has_params = 0;
        for (size_t k = start + name.n; k < i; k++)
            if (!is_ows(v.p[k])) has_params = 1;
        t->members++;
        t->last_chunked = FC_SLICE_IEQ(name, "chunked") && !has_params;
        if (FC_SLICE_IEQ(name, "chunked")) t->chunked++;
    }
    return 0;
}

int fc_msg_valid_authority(fc_slice_t v)
{
    size_t i = 0;
    if (v.n == 0) return 1;
    if (v.p[0] == '[') {
        /* IP-literal: an IPv6 address in brackets (IPvFuture is not accepted). */
        const char *close = memchr(v.p, ']', v.n);
        size_t len = close ? (size_t)(close - v.p) - 1 : 0;
        char tmp[INET6_ADDRSTRLEN];
        struct in6_addr a6;
        if (close == NULL || len == 0 || len >= sizeof(tmp)) return 0;
        memcpy(tmp, v.p + 1, len);
        tmp[len] = 0;
        if (inet_pton(AF_INET6, tmp, &a6) != 1) return 0;
        i = len + 2;
    } else {
        /* reg-name (which covers IPv4address): unreserved / pct-encoded / sub-delims */
        for (; i < v.n && v.p[i] != ':'; i++) {
            unsigned char c = (unsigned char)v.p[i];
            if (c == '%') {
                if (i + 2 >= v.n || !is_hex(v.p[i + 1]) || !is_hex(v.p[i + 2])) return 0;
                i += 2;
            } else if (!(fc_http_chars[c] & FC_CHAR_REGNAME)) return 0;
        }
        if (i == 0) return 0; /* ":80": a port without a host */
    }
    if (i == v.n) return 1;
    if (v.p[i] != ':') return 0;
    /* port: 1*5DIGIT, at most 65535 (RFC 3986 allows an empty port; fulcrum does not) */
    size_t digits = v.n - i - 1;
    if (digits == 0 || digits > 5) return 0;
    unsigned port = 0;
    for (size_t k = i + 1; k < v.n; k++) {
        if (!is_digit(v.p[k])) return 0;
        port = port * 10 + (unsigned)(v.p[k] - '0');
    }
    return port <= 65535;
}

static int refuse(fc_request_view_t *v, int status, const char *why)
{
    v->why = why;
    return status;
}

/* What one pass over a head's fields found. */
typedef struct fields {
    te_info_t te;                 /* the Transfer-Encoding members, over all TE fields */
    unsigned nte, ncl;            /* Transfer-Encoding and Content-Length fields */
    uint64_t len;                 /* the Content-Length value */
    const fc_header_t *host;      /* requests: the Host field */
    const fc_header_t *maxfwd;    /* requests: the Max-Forwards field */
} fields_t;

/* What the parser noted of <h>'s fields (http.c counts them as they complete, so there is no
 * second pass over the head): framing (RFC 9112 6.1-6.3) and, for a <request>, the singletons.
 * Field names are tokens already (llhttp in strict mode; http.c refuses an empty one). Returns
 * NULL or the reason the head is refused. */
static const char *scan_fields(const fc_http_head_t *h, int request, fields_t *f)
{
    memset(f, 0, sizeof(*f));
    f->ncl = h->n_cl;
    if (h->n_cl > 1) return "more than one Content-Length";
    if (h->n_cl == 1 && parse_length(h->headers[h->i_cl].value, &f->len) != 0) return "invalid Content-Length";
    for (size_t i = 0; i < h->nheaders && f->nte < h->n_te; i++) {
        if (!FC_SLICE_IEQ(h->headers[i].name, "transfer-encoding")) continue;
        if (parse_te(h->headers[i].value, &f->te) != 0) return "invalid Transfer-Encoding";
        f->nte++;
    }
    if (!request) return NULL;
    if (h->n_host > 1) return "more than one Host";
    f->host = h->n_host ? &h->headers[h->i_host] : NULL;
    f->maxfwd = h->has_maxfwd ? &h->headers[h->i_maxfwd] : NULL;
    return NULL;
}


int fc_msg_check_request(const fc_http_head_t *h, const llhttp_t *ll, fc_request_view_t *v)
{
    memset(v, 0, sizeof(*v));
    v->max_forwards = -1;
    if (h->major != 1) return refuse(v, 505, "HTTP version not supported");
    int method = ll->method;
    if (method == HTTP_CONNECT) return refuse(v, 405, "CONNECT is not supported");
    if (method == HTTP_TRACE) return refuse(v, 405, "TRACE is not allowed");

    /* Field names (RFC 9110 5.1), the singletons, and the framing: RFC 9112 6.1 and 6.3. */
    fields_t f;
    const char *why = scan_fields(h, 1, &f);
    if (why != NULL) return refuse(v, 400, why);
    const fc_header_t *host = f.host, *maxfwd = f.maxfwd;
    if (f.nte > 0) {
        if (f.ncl > 0) return refuse(v, 400, "Transfer-Encoding and Content-Length together");
        if (h->minor == 0) return refuse(v, 400, "Transfer-Encoding in an HTTP/1.0 request");
        if (f.nte > 1) return refuse(v, 400, "more than one Transfer-Encoding");
        if (f.te.members == 0) return refuse(v, 400, "empty Transfer-Encoding");
        if (f.te.chunked > 1) return refuse(v, 400, "chunked applied more than once");
        if (!f.te.last_chunked) return refuse(v, 400, "Transfer-Encoding without a final chunked");
        if (f.te.members > 1) return refuse(v, 501, "transfer coding not implemented");
        v->framing = FC_FRAME_CHUNKED;
    } else if (f.ncl > 0) {
        /* llhttp read the same field; a disagreement would be a parser bug, never forwarded. */
        if (!(ll->flags & F_CONTENT_LENGTH) || ll->content_length != f.len)
            return refuse(v, 400, "Content-Length not understood");
        v->framing = FC_FRAME_LENGTH;
        v->length = f.len;
    } else if ((ll->flags & F_CHUNKED) || ll->content_length > 0) {
        return refuse(v, 400, "framing not understood");
    }

    /* Host: RFC 9110 7.2 and RFC 9112 3.2. */
    if (host == NULL && h->minor >= 1) return refuse(v, 400, "no Host");
    if (host != NULL && !fc_msg_valid_authority(host->value)) return refuse(v, 400, "invalid Host");
    v->has_host = host != NULL;
    if (host != NULL) v->host = host->value;

    /* The request target: RFC 9112 3.2. */
    fc_slice_t t = h->url;
    if (t.n == 0) return refuse(v, 400, "empty request target");
    if (memchr(t.p, '#', t.n) != NULL) return refuse(v, 400, "fragment in request target");
    if (t.n == 1 && t.p[0] == '*') {
        if (method != HTTP_OPTIONS) return refuse(v, 400, "asterisk-form target without OPTIONS");
        v->local = 1;
        v->target = t;
    } else if (t.p[0] == '/') {
        v->target = t;
    } else {
        size_t skip = 0;
        if (t.n >= 7 && strncasecmp(t.p, "http://", 7) == 0) skip = 7;
        else if (t.n >= 8 && strncasecmp(t.p, "https://", 8) == 0) skip = 8;
        if (skip == 0) return refuse(v, 400, "invalid request target");
        const char *a = t.p + skip, *end = t.p + t.n, *e = a;
        while (e < end && *e != '/' && *e != '?') e++;
        fc_slice_t auth = {a, (size_t)(e - a)};
        /* An http URI with an empty host is invalid (RFC 9110 4.2.1); userinfo is refused too. */
        if (auth.n == 0 || !fc_msg_valid_authority(auth)) return refuse(v, 400, "invalid authority in request target");
        v->host = auth;
        v->host_from_target = 1;
        if (e == end && method == HTTP_OPTIONS) {
            /* RFC 9112 3.2.4: the last proxy forwards this as "OPTIONS *", which fulcrum answers. */
            v->target = (fc_slice_t){"*", 1};
            v->local = 1;
        } else if (e == end) v->target = (fc_slice_t){"/", 1};
        else {
            v->target = (fc_slice_t){e, (size_t)(end - e)};
            v->target_slash = *e == '?';
        }
    }

    /* Max-Forwards on OPTIONS: RFC 9110 7.6.2 (TRACE is refused above). */
    if (method == HTTP_OPTIONS && maxfwd != NULL) {
        uint64_t mf = 0;
        if (parse_length(maxfwd->value, &mf) != 0) return refuse(v, 400, "invalid Max-Forwards");
        if (mf == 0) v->local = 1;
        else v->max_forwards = mf > 0x7fffffff ? 0x7ffffffe : (int32_t)(mf - 1);
    }
    return 0;
}

int fc_msg_check_response(const fc_http_head_t *h, const llhttp_t *ll, int req_is_head, fc_response_view_t *v)
{
    memset(v, 0, sizeof(*v));
    if (h->major != 1) {
        v->why = "HTTP version not supported";
        return -1;
    }
    fields_t f;
    const char *why = scan_fields(h, 0, &f);
    int st = h->status;
    /* llhttp reads any three digits: 099 or 600 would pass as a 1xx or a final status. */
    if (st < 100 || st > 599) why = "status outside 100..599";
    /* reason-phrase = 1*( HTAB / SP / VCHAR / obs-text ) (RFC 9112 4): llhttp passes controls. */
    for (size_t i = 0; why == NULL && i < h->reason.n; i++) {
        unsigned char c = (unsigned char)h->reason.p[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f) why = "control character in the reason phrase";
    }
    if (why == NULL && f.nte > 0) {
        if (f.ncl > 0) why = "Transfer-Encoding and Content-Length together";
        else if (h->minor == 0) why = "Transfer-Encoding in an HTTP/1.0 response";
        else if (f.nte > 1) why = "more than one Transfer-Encoding";
        else if (f.te.members != 1 || !f.te.last_chunked) why = "Transfer-Encoding other than chunked";
    }
    if (why == NULL && f.ncl > 0 && (ll->content_length != f.len || !(ll->flags & F_CONTENT_LENGTH)))
        why = "Content-Length not understood";
    if (why != NULL) {
        v->why = why;
        return -1;
    }
    if (st < 200 || st == 204) return 0; /* no body and no framing fields (RFC 9110 8.6, 15.3.5) */
    v->chunked = f.nte > 0;
    v->has_length = f.ncl > 0;
    v->length = f.len;
    if (req_is_head || st == 304) v->framing = FC_FRAME_NONE;
    else if (f.nte > 0) v->framing = FC_FRAME_CHUNKED;
    else if (f.ncl > 0) v->framing = FC_FRAME_LENGTH;
    else v->framing = FC_FRAME_EOF;
    return 0;
}

int fc_msg_request_error_status(const fc_http_parser_t *p, const char *data, size_t len)
{
    if (p->user_error == FC_HTTP_ERR_TOO_MANY_HEADERS) return 431;
    if (p->user_error != FC_HTTP_ERR_NONE) return 400;
    llhttp_errno_t e = llhttp_get_errno(&p->ll);
    if (e == HPE_INVALID_VERSION) {
        /* "HTTP/" DIGIT "." DIGIT that llhttp does not speak (2.0, 1.2) is 505; "HTTP/1.10" or
         * "HTTP/x" is not a version at all: 400. */
        const char *pos = llhttp_get_error_pos(&p->ll);
        const char *ver = pos;
        while (ver > data && ver - data > 0 && ver[-1] != ' ') ver--;
        size_t rest = (size_t)(data + len - ver);
        if (rest >= 10 && memcmp(ver, "HTTP/", 5) == 0 && is_digit(ver[5]) && ver[6] == '.' && is_digit(ver[7]) &&
            ver[8] == '\r' && ver[9] == '\n')
            return 505;
        return 400;
    }
    if (e == HPE_INVALID_METHOD) {
        /* "FOO / HTTP/1.1": a method token llhttp does not know, then SP: not implemented
         * (RFC 9110 9.1). Anything else is not a request line at all. */
        size_t i = 0;
        while (i < len && i < 64 && fc_http_is_token((fc_slice_t){data + i, 1})) i++;
        if (i > 0 && i < len && data[i] == ' ') return 501;
    }
    return 400;
}
