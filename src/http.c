/* http.c: llhttp glue (see http.h). Callbacks record spans and pause; nothing here allocates.
 * Bodies are not llhttp's to read: body.c reads them with the framing message.c decided. */
#include "fulcrum/http.h"

#include <string.h>
#include <strings.h>

#include "fulcrum/common.h"

static fc_http_parser_t *P(llhttp_t *ll) { return (fc_http_parser_t *)ll->data; }

/* Extends <s> when <at> continues it in the same buffer (a span split across reads), else starts it. */
static void span(fc_slice_t *s, const char *at, size_t len)
{
    if (s->p != NULL && s->p + s->n == at) s->n += len;
    else {
        s->p = at;
        s->n = len;
    }
}

static int on_message_begin(llhttp_t *ll)
{
    fc_http_parser_t *p = P(ll);
    p->in_head = 1;
    p->last_was_value = 0;
    if (p->head != NULL) {
        fc_http_head_t *h = p->head;
        h->method.p = h->url.p = h->reason.p = NULL;
        h->method.n = h->url.n = h->reason.n = 0;
        h->nheaders = 0;
        h->has_connection = 0;
        h->n_host = h->n_cl = h->n_te = h->n_rid = 0;
        h->has_maxfwd = 0;
        h->status = 0;
    }
    return 0;
}

static int on_method(llhttp_t *ll, const char *at, size_t len)
{
    if (P(ll)->head) span(&P(ll)->head->method, at, len);
    return 0;
}

static int on_url(llhttp_t *ll, const char *at, size_t len)
{
    if (P(ll)->head) span(&P(ll)->head->url, at, len);
    return 0;
}

static int on_status(llhttp_t *ll, const char *at, size_t len)
{
    if (P(ll)->head) span(&P(ll)->head->reason, at, len);
    return 0;
}

static int on_header_field(llhttp_t *ll, const char *at, size_t len)
{
    fc_http_parser_t *p = P(ll);
    fc_http_head_t *h = p->head;
    if (h == NULL) return 0; /* trailers are forwarded raw, not collected */
    if (p->last_was_value || h->nheaders == 0) {
        if (h->nheaders == FC_HTTP_MAX_HEADERS) {
            p->user_error = FC_HTTP_ERR_TOO_MANY_HEADERS;
            return HPE_USER;
        }
        fc_header_t *hd = &h->headers[h->nheaders++];
        hd->name.p = at;
        hd->name.n = len;
        hd->value.p = NULL;
        hd->value.n = 0;
        p->last_was_value = 0;
    } else {
        span(&h->headers[h->nheaders - 1].name, at, len);
    }
    return 0;
}

static int on_header_value(llhttp_t *ll, const char *at, size_t len)
{
    fc_http_parser_t *p = P(ll);
    if (p->head == NULL || p->head->nheaders == 0) return 0;
    fc_header_t *hd = &p->head->headers[p->head->nheaders - 1];
    p->last_was_value = 1; /* the next name span starts a new field, even after an empty value */
    const char *colon = hd->name.p + hd->name.n;
    if (len == 0) {
        /* llhttp marks an empty (or all-whitespace) value with an empty span at the start of the
         * next line; a line feed before the one that ends the field's own line is a fold. */
        const char *lf = at > colon ? memchr(colon, '\n', (size_t)(at - colon)) : NULL;
        if (lf != NULL && lf != at - 1) {
            p->user_error = FC_HTTP_ERR_OBS_FOLD;
            return HPE_USER;
        }
        return 0;
    }
    /* obs-fold (RFC 9112 5.2): llhttp continues a value on a line that starts with SP or HTAB,
     * and the value's span then restarts after the fold. A field line is one run of the buffer,
     * so a value span that does not continue the previous one, or that does not follow its
     * field name's colon and whitespace (a fold after an empty value), is a fold: refused. */
    int fold = hd->value.p != NULL && hd->value.p + hd->value.n != at;
    if (hd->value.p == NULL) {
        const char *q = at;
        while (q > colon + 1 && (q[-1] == ' ' || q[-1] == '\t')) q--;
        fold = q != colon + 1;
    }
    if (fold) {
        p->user_error = FC_HTTP_ERR_OBS_FOLD;
        return HPE_USER;
    }
    span(&hd->value, at, len);
    return 0;
}

/* llhttp leaves trailing spaces and tabs on a value (RFC 9110 calls them OWS, not content). */
static int on_header_value_complete(llhttp_t *ll)
{
    fc_http_parser_t *p = P(ll);
    if (p->head == NULL || p->head->nheaders == 0) return 0;
    fc_http_head_t *h = p->head;
    uint16_t i = (uint16_t)(h->nheaders - 1);
    fc_slice_t *v = &h->headers[i].value, name = h->headers[i].name;
    while (v->n > 0 && (v->p[v->n - 1] == ' ' || v->p[v->n - 1] == '\t')) v->n--;
    /* llhttp checks that names are tokens, but lets an empty one through in responses (": x"). */
    if (name.n == 0) {
        p->user_error = FC_HTTP_ERR_EMPTY_NAME;
        return HPE_USER;
    }
    /* Note what the field is, once (first letter and length, then one compare). */
    uint8_t kind = FC_FIELD_OTHER;
    switch (name.p[0] | 0x20) {
    case 'c':
        if (FC_SLICE_IEQ(name, "content-length")) {
            kind = FC_FIELD_CONTENT_LENGTH;
            if (h->n_cl++ == 0) h->i_cl = i;
        } else if (FC_SLICE_IEQ(name, "connection")) {
            kind = FC_FIELD_HOP;
            h->has_connection = 1;
        }
        break;
    case 't':
        if (FC_SLICE_IEQ(name, "transfer-encoding")) {
            kind = FC_FIELD_TRANSFER_ENCODING;
            h->n_te++;
        } else if (FC_SLICE_IEQ(name, "te") || FC_SLICE_IEQ(name, "trailer")) kind = FC_FIELD_HOP;
        break;
    case 'h':
        if (FC_SLICE_IEQ(name, "host")) {
            kind = FC_FIELD_HOST;
            if (h->n_host++ == 0) h->i_host = i;
        }
        break;
    case 'm':
        if (FC_SLICE_IEQ(name, "max-forwards")) {
            kind = FC_FIELD_MAX_FORWARDS;
            if (!h->has_maxfwd) {
                h->has_maxfwd = 1;
                h->i_maxfwd = i;
            }
        }
        break;
    case 'k':
        if (FC_SLICE_IEQ(name, "keep-alive")) kind = FC_FIELD_HOP;
        break;
    case 'p':
        if (FC_SLICE_IEQ(name, "proxy-connection")) kind = FC_FIELD_HOP;
        break;
    case 'u':
        if (FC_SLICE_IEQ(name, "upgrade")) kind = FC_FIELD_HOP;
        break;
    case 'v':
        if (FC_SLICE_IEQ(name, "via")) kind = FC_FIELD_VIA;
        break;
    case 'd':
        if (FC_SLICE_IEQ(name, "date")) kind = FC_FIELD_DATE;
        break;
    case 'x':
        if (FC_SLICE_IEQ(name, "x-forwarded-for")) kind = FC_FIELD_XFF;
        else if (FC_SLICE_IEQ(name, "x-real-ip") || FC_SLICE_IEQ(name, "x-forwarded-proto")) kind = FC_FIELD_XFWD;
        else if (FC_SLICE_IEQ(name, "x-request-id")) {
            kind = FC_FIELD_REQUEST_ID;
            if (h->n_rid++ == 0) h->i_rid = i;
        }
        break;
    default: break;
    }
    if (ll->type == HTTP_REQUEST && memchr(name.p, '_', name.n) != NULL) kind |= FC_FIELD_UNDERSCORE;
    h->kind[i] = kind;
    return 0;
}

static int on_headers_complete(llhttp_t *ll)
{
    fc_http_parser_t *p = P(ll);
    if (p->head != NULL) {
        p->head->status = ll->status_code;
        p->head->major = ll->http_major;
        p->head->minor = ll->http_minor;
    }
    p->in_head = 0;
    /* fulcrum does not tunnel upgrades (Upgrade is a hop-by-hop header it removes), so the
     * message is an ordinary one; llhttp sets this flag just before calling us. */
    ll->upgrade = 0;
    /* Responses to HEAD, 1xx, 204 and 304 have no body whatever their headers say; setting the
     * flag has the effect of returning 1, and lets us pause as well. */
    if (ll->type == HTTP_RESPONSE &&
        (p->skip_body || ll->status_code < 200 || ll->status_code == 204 || ll->status_code == 304))
        ll->flags |= F_SKIPBODY;
    p->event = FC_HTTP_HEAD_DONE;
    return HPE_PAUSED;
}

static int on_message_complete(llhttp_t *ll)
{
    P(ll)->event = FC_HTTP_MSG_DONE;
    return HPE_PAUSED;
}

static const llhttp_settings_t settings = {
    .on_message_begin = on_message_begin,
    .on_method = on_method,
    .on_url = on_url,
    .on_status = on_status,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_header_value_complete = on_header_value_complete,
    .on_headers_complete = on_headers_complete,
    .on_message_complete = on_message_complete,
};

void fc_http_parser_init(fc_http_parser_t *p, llhttp_type_t type)
{
    memset(p, 0, sizeof(*p));
    llhttp_init(&p->ll, type, &settings);
    /* Transfer-Encoding is message.c's to judge (RFC 9110 5.6.1 list rules: "chunked," is
     * chunked); llhttp's strict reading of it would refuse valid lists, and llhttp reads no
     * bodies here, so its own conclusion from the field is never used. */
    llhttp_set_lenient_transfer_encoding(&p->ll, 1);
    p->ll.data = p;
}

int fc_http_execute(fc_http_parser_t *p, const char *data, size_t len, size_t *consumed)
{
    p->event = FC_HTTP_NEED_MORE;
    llhttp_errno_t e = llhttp_execute(&p->ll, data, len);
    if (e == HPE_OK) {
        *consumed = len;
        return FC_HTTP_NEED_MORE;
    }
    *consumed = (size_t)(llhttp_get_error_pos(&p->ll) - data);
    if (e == HPE_PAUSED) {
        llhttp_resume(&p->ll);
        return p->event;
    }
    return FC_HTTP_ERROR;
}

const char *fc_http_error(const fc_http_parser_t *p)
{
    if (p->user_error == FC_HTTP_ERR_TOO_MANY_HEADERS) return "too many headers";
    if (p->user_error == FC_HTTP_ERR_OBS_FOLD) return "obs-fold (a header line starting with whitespace)";
    if (p->user_error == FC_HTTP_ERR_EMPTY_NAME) return "empty header field name";
    const char *r = llhttp_get_error_reason(&p->ll);
    return r != NULL ? r : llhttp_errno_name(llhttp_get_errno(&p->ll));
}

int fc_slice_ieq(fc_slice_t s, const char *lit, size_t litlen)
{
    return s.n == litlen && strncasecmp(s.p, lit, litlen) == 0;
}

const fc_header_t *fc_http_find(const fc_http_head_t *h, const char *name, size_t namelen)
{
    for (size_t i = 0; i < h->nheaders; i++)
        if (fc_slice_ieq(h->headers[i].name, name, namelen)) return &h->headers[i];
    return NULL;
}

static int is_ows(char c) { return c == ' ' || c == '\t'; }

int fc_http_has_token(fc_slice_t v, const char *tok, size_t toklen)
{
    size_t i = 0;
    while (i < v.n) {
        while (i < v.n && (is_ows(v.p[i]) || v.p[i] == ',')) i++;
        size_t start = i;
        while (i < v.n && v.p[i] != ',') i++;
        size_t end = i;
        while (end > start && is_ows(v.p[end - 1])) end--;
        if (end - start == toklen && strncasecmp(v.p + start, tok, toklen) == 0) return 1;
    }
    return 0;
}

long fc_http_keepalive_timeout(fc_slice_t v)
{
    static const char key[] = "timeout=";
    for (size_t i = 0; i + sizeof(key) - 1 <= v.n; i++) {
        if ((i == 0 || v.p[i - 1] == ' ' || v.p[i - 1] == ',' || v.p[i - 1] == '\t') &&
            strncasecmp(v.p + i, key, sizeof(key) - 1) == 0) {
            long n = 0;
            size_t j = i + sizeof(key) - 1;
            if (j >= v.n || v.p[j] < '0' || v.p[j] > '9') return -1;
            for (; j < v.n && v.p[j] >= '0' && v.p[j] <= '9' && n < 1000000; j++) n = n * 10 + (v.p[j] - '0');
            return n;
        }
    }
    return -1;
}

/* Character classes (http.h): alphanumerics are both a tchar and a reg-name character. */
const uint8_t fc_http_chars[256] = {
    ['0' ... '9'] = FC_CHAR_TCHAR | FC_CHAR_REGNAME,
    ['A' ... 'Z'] = FC_CHAR_TCHAR | FC_CHAR_REGNAME,
    ['a' ... 'z'] = FC_CHAR_TCHAR | FC_CHAR_REGNAME,
    /* tchar only: "#%^`|" and the ones in both below */
    ['#'] = FC_CHAR_TCHAR, ['%'] = FC_CHAR_TCHAR, ['^'] = FC_CHAR_TCHAR, ['`'] = FC_CHAR_TCHAR, ['|'] = FC_CHAR_TCHAR,
    /* both: "!$&'*+-._~" */
    ['!'] = FC_CHAR_TCHAR | FC_CHAR_REGNAME, ['$'] = FC_CHAR_TCHAR | FC_CHAR_REGNAME,
    ['&'] = FC_CHAR_TCHAR | FC_CHAR_REGNAME, ['\''] = FC_CHAR_TCHAR | FC_CHAR_REGNAME,
    ['*'] = FC_CHAR_TCHAR | FC_CHAR_REGNAME, ['+'] = FC_CHAR_TCHAR | FC_CHAR_REGNAME,
    ['-'] = FC_CHAR_TCHAR | FC_CHAR_REGNAME, ['.'] = FC_CHAR_TCHAR | FC_CHAR_REGNAME,
    ['_'] = FC_CHAR_TCHAR | FC_CHAR_REGNAME, ['~'] = FC_CHAR_TCHAR | FC_CHAR_REGNAME,
    /* reg-name only (sub-delims): "(),;=" */
    ['('] = FC_CHAR_REGNAME, [')'] = FC_CHAR_REGNAME, [','] = FC_CHAR_REGNAME, [';'] = FC_CHAR_REGNAME,
    ['='] = FC_CHAR_REGNAME,
};

int fc_http_is_token(fc_slice_t s)
{
    if (s.n == 0) return 0;
    for (size_t i = 0; i < s.n; i++)
        if (!(fc_http_chars[(unsigned char)s.p[i]] & FC_CHAR_TCHAR)) return 0;
    return 1;
}
