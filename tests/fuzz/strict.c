/* strict.c: the referee parser of the fuzz invariants (see strict.h). Written from RFC 9110 and
 * RFC 9112 for the tests only: nothing here is shared with src/ or llhttp. */
#include "strict.h"

#include <stdlib.h>
#include <string.h>

typedef struct cur {
    const unsigned char *b;
    size_t len;
    size_t pos;
} cur_t;

static int is_tchar(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return 1;
    switch (c) {
    case '!': case '#': case '$': case '%': case '&': case '\'': case '*': case '+': case '-':
    case '.': case '^': case '_': case '`': case '|': case '~':
        return 1;
    default:
        return 0;
    }
}
static int is_digit(unsigned char c) { return c >= '0' && c <= '9'; }
static int is_hex(unsigned char c) { return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }
static int hexval(unsigned char c) { return is_digit(c) ? c - '0' : (c | 0x20) - 'a' + 10; }
static int is_vchar(unsigned char c) { return c >= 0x21 && c <= 0x7e; }
static int is_ows(unsigned char c) { return c == ' ' || c == '\t'; }
/* field-vchar / SP / HTAB (obs-text included) */
static int is_field_char(unsigned char c) { return c == '\t' || c == ' ' || is_vchar(c) || c >= 0x80; }
static unsigned char lower(unsigned char c) { return c >= 'A' && c <= 'Z' ? (unsigned char)(c | 0x20) : c; }

static int ieq(const char *p, size_t n, const char *lit)
{
    size_t l = strlen(lit);
    if (n != l) return 0;
    for (size_t i = 0; i < n; i++)
        if (lower((unsigned char)p[i]) != lower((unsigned char)lit[i])) return 0;
    return 1;
}

int st_name_is(const st_field_t *f, const char *lit) { return ieq(f->name, f->name_len, lit); }

size_t st_count(const st_msg_t *m, const char *lit, const st_field_t **first)
{
    size_t n = 0;
    if (first) *first = NULL;
    for (size_t i = 0; i < m->nfields; i++) {
        if (!st_name_is(&m->fields[i], lit)) continue;
        if (n == 0 && first) *first = &m->fields[i];
        n++;
    }
    return n;
}

int st_lenient;

static int fail(st_msg_t *m, int r, const char *why, size_t off)
{
    m->result = r;
    m->why = why;
    m->err_off = off;
    return r;
}

/* The next line from c->pos: [*s, *s + *n), CRLF excluded; c->pos moves past the CRLF.
 * Returns ST_OK, ST_INCOMPLETE, or <bad> for a bare CR or a bare LF. */
static int next_line(st_msg_t *m, cur_t *c, size_t *s, size_t *n, int bad)
{
    for (size_t i = c->pos; i < c->len; i++) {
        unsigned char ch = c->b[i];
        if (ch == '\n' && st_lenient && bad != ST_ERR_BODY) { /* RFC 9112 2.2: LF alone ends a line */
            *s = c->pos;
            *n = i - c->pos;
            c->pos = i + 1;
            return ST_OK;
        }
        if (ch == '\n') return fail(m, bad, "bare LF", i);
        if (ch != '\r') continue;
        if (i + 1 == c->len) return fail(m, ST_INCOMPLETE, "buffer ends inside a line", i);
        if (c->b[i + 1] != '\n') return fail(m, bad, "bare CR", i);
        *s = c->pos;
        *n = i - c->pos;
        c->pos = i + 2;
        return ST_OK;
    }
    return fail(m, ST_INCOMPLETE, "buffer ends inside a line", c->len);
}

/* One field line [s, s+n) into <f>. Returns ST_OK or <bad>. */
static int parse_field(st_msg_t *m, const unsigned char *b, size_t s, size_t n, st_field_t *f, int bad)
{
    if (n == 0) return fail(m, bad, "empty field line", s);
    if (is_ows(b[s])) return fail(m, bad, "obs-fold (line starts with SP/HTAB)", s);
    size_t i = 0;
    while (i < n && is_tchar(b[s + i])) i++;
    if (i == 0) return fail(m, bad, "field name is not a token", s);
    if (i == n) return fail(m, bad, "field line without a colon", s);
    if (b[s + i] != ':') return fail(m, bad, "field name is not a token / space before colon", s + i);
    f->name = (const char *)b + s;
    f->name_len = i;
    size_t v = i + 1, e = n;
    for (size_t k = v; k < n; k++)
        if (!is_field_char(b[s + k])) return fail(m, bad, "control byte in a field value", s + k);
    while (v < e && is_ows(b[s + v])) v++;
    while (e > v && is_ows(b[s + e - 1])) e--;
    f->value = (const char *)b + s + v;
    f->value_len = e - v;
    return ST_OK;
}

/* Field lines up to and including the empty line. */
static int parse_fields(st_msg_t *m, cur_t *c)
{
    for (;;) {
        size_t s, n;
        int r = next_line(m, c, &s, &n, ST_ERR_FIELD);
        if (r != ST_OK) return r;
        if (n == 0) return ST_OK;
        if (m->nfields == ST_MAX_FIELDS) return fail(m, ST_ERR_LIMIT, "too many fields", s);
        r = parse_field(m, c->b, s, n, &m->fields[m->nfields], ST_ERR_FIELD);
        if (r != ST_OK) return r;
        m->nfields++;
    }
}

/* "HTTP/1.0" or "HTTP/1.1" at b[0..8). */
static int parse_version(st_msg_t *m, const unsigned char *b, size_t n)
{
    if (n != 8 || memcmp(b, "HTTP/", 5) != 0 || !is_digit(b[5]) || b[6] != '.' || !is_digit(b[7])) return -1;
    m->major = b[5] - '0';
    m->minor = b[7] - '0';
    if (m->major != 1 || m->minor > 1) return -1;
    return 0;
}


/* ---- authority and target ---- */

static int is_alnum(unsigned char c) { return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
static int is_unreserved(unsigned char c) { return is_alnum(c) || c == '-' || c == '.' || c == '_' || c == '~'; }
static int is_subdelim(unsigned char c) { return c && strchr("!$&'()*+,;=", c) != NULL; }

/* uri-host [ ":" port ], port 1*DIGIT <= 65535; empty is valid (RFC 9110 7.2). */
static int valid_authority(const unsigned char *p, size_t n)
{
    size_t i = 0;
    if (n == 0) return 1;
    if (p[0] == '[') {
        size_t colons = 0;
        i = 1;
        if (i < n && (p[i] == 'v' || p[i] == 'V')) { /* IPvFuture: "v" 1*HEXDIG "." 1*( unreserved / sub-delims / ":" ) */
            size_t h = 0, t = 0;
            for (i++; i < n && is_hex(p[i]); i++) h++;
            if (h == 0 || i >= n || p[i] != '.') return 0;
            for (i++; i < n && (is_unreserved(p[i]) || is_subdelim(p[i]) || p[i] == ':'); i++) t++;
            if (t == 0) return 0;
        } else {
            size_t k = 0;
            for (; i < n && (is_hex(p[i]) || p[i] == ':' || p[i] == '.'); i++, k++) colons += p[i] == ':';
            if (k < 2 || colons < 2) return 0;
        }
        if (i >= n || p[i] != ']') return 0;
        i++;
    } else {
        while (i < n && p[i] != ':') {
            if (p[i] == '%') {
                if (i + 2 >= n || !is_hex(p[i + 1]) || !is_hex(p[i + 2])) return 0;
                i += 3;
                continue;
            }
            if (!is_unreserved(p[i]) && !is_subdelim(p[i])) return 0;
            i++;
        }
    }
    if (i == n) return 1;
    if (p[i] != ':') return 0;
    i++;
    if (i == n) return 0; /* "a:": the port, when there is a colon, is not empty */
    unsigned long port = 0;
    for (; i < n; i++) {
        if (!is_digit(p[i])) return 0;
        port = port * 10 + (unsigned long)(p[i] - '0');
        if (port > 65535) return 0;
    }
    return 1;
}

/* Every byte allowed in a request-target by RFC 3986 (pchar, "/", "?", a valid pct-encoding). */
static int rfc3986_target(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = p[i];
        if (c == '%') {
            if (i + 2 >= n || !is_hex(p[i + 1]) || !is_hex(p[i + 2])) return 0;
            i += 2;
        } else if (!(is_unreserved(c) || is_subdelim(c) || c == ':' || c == '@' || c == '/' || c == '?')) {
            return 0;
        }
    }
    return 1;
}

static int set_eff_target(st_msg_t *m, const unsigned char *path, size_t pn, const unsigned char *q, size_t qn)
{
    int slash = pn == 0;
    m->eff_target_len = (size_t)slash + pn + qn;
    m->eff_target = malloc(m->eff_target_len + 1);
    if (m->eff_target == NULL) abort();
    char *o = m->eff_target;
    if (slash) *o++ = '/';
    if (pn) memcpy(o, path, pn);
    o += pn;
    if (qn) memcpy(o, q, qn);
    o[qn] = '\0';
    return 0;
}

/* Request-target and Host. Returns ST_OK, ST_ERR_TARGET or ST_ERR_HOST (m->why says which rule). */
static int check_route(st_msg_t *m, const char **why)
{
    const unsigned char *t = (const unsigned char *)m->target;
    size_t n = m->target_len;
    const st_field_t *host;
    m->host_count = (int)st_count(m, "host", &host);
    if (host) {
        m->host = host->value;
        m->host_len = host->value_len;
    }
    m->target_rfc3986 = rfc3986_target(t, n);
    if (memchr(t, '#', n) != NULL) return *why = "'#' in the target", ST_ERR_TARGET;
    if (n == 1 && t[0] == '*') {
        if (!ieq(m->method, m->method_len, "OPTIONS")) return *why = "'*' target without OPTIONS", ST_ERR_TARGET;
        set_eff_target(m, t, 1, NULL, 0);
    } else if (t[0] == '/') {
        set_eff_target(m, t, n, NULL, 0);
    } else {
        size_t i = 0;
        if (!(t[0] >= 'a' && t[0] <= 'z') && !(t[0] >= 'A' && t[0] <= 'Z'))
            return *why = "target is neither origin-form nor absolute-form", ST_ERR_TARGET;
        while (i < n && (is_alnum(t[i]) || t[i] == '+' || t[i] == '-' || t[i] == '.')) i++;
        if (i == n || t[i] != ':') return *why = "target is neither origin-form nor absolute-form", ST_ERR_TARGET;
        if (!ieq((const char *)t, i, "http") && !ieq((const char *)t, i, "https"))
            return *why = "absolute-form with a scheme other than http(s)", ST_ERR_TARGET;
        i++;
        if (i + 2 > n || t[i] != '/' || t[i + 1] != '/') return *why = "absolute-form without //authority", ST_ERR_TARGET;
        i += 2;
        size_t a = i;
        while (i < n && t[i] != '/' && t[i] != '?') i++;
        if (memchr(t + a, '@', i - a) != NULL) return *why = "userinfo in the target's authority", ST_ERR_TARGET;
        if (i == a || t[a] == ':') return *why = "empty host in the target's authority", ST_ERR_TARGET;
        if (!valid_authority(t + a, i - a)) return *why = "invalid authority in the target", ST_ERR_TARGET;
        size_t p = i;
        while (i < n && t[i] != '?') i++;
        set_eff_target(m, t + p, i - p, t + i, n - i);
        m->eff_host = (const char *)t + a;
        m->eff_host_len = p - a;
        m->host_from_target = 1;
    }
    if (m->host_count > 1) return *why = "more than one Host", ST_ERR_HOST;
    if (m->host_count == 0 && m->minor == 1) return *why = "HTTP/1.1 without Host", ST_ERR_HOST;
    if (host && !valid_authority((const unsigned char *)host->value, host->value_len))
        return *why = "Host is not a valid authority", ST_ERR_HOST;
    if (!m->host_from_target) {
        m->eff_host = m->host;
        m->eff_host_len = m->host_len;
    }
    return ST_OK;
}

/* ---- framing ---- */

/* Content-Length values of every field and list member: *count, and whether they are all valid
 * and equal (*value). Returns 0 when valid and equal, 1 when equal but several, 2 when they
 * differ, 3 when one is not 1*DIGIT. */
static int cl_values(const st_msg_t *m, uint64_t *value, int *single_syntax)
{
    size_t count = 0;
    int differ = 0;
    *single_syntax = 1;
    for (size_t f = 0; f < m->nfields; f++) {
        const st_field_t *fd = &m->fields[f];
        if (!st_name_is(fd, "content-length")) continue;
        const unsigned char *v = (const unsigned char *)fd->value;
        size_t n = fd->value_len, i = 0;
        if (n == 0) return 3;
        for (;;) { /* one list member, then "," */
            while (i < n && is_ows(v[i])) i++;
            size_t s = i;
            uint64_t x = 0;
            while (i < n && is_digit(v[i])) {
                if (x > (UINT64_MAX / 2) / 10) return 3; /* keep far from overflow */
                x = x * 10 + (uint64_t)(v[i] - '0');
                i++;
            }
            if (i == s) return 3;
            while (i < n && is_ows(v[i])) i++;
            if (i < n && v[i] != ',') return 3;
            if (count > 0 && x != *value) differ = 1;
            if (count == 0) *value = x;
            count++;
            if (i == n) break;
            *single_syntax = 0; /* a list: not the 1*DIGIT grammar */
            i++;
        }
    }
    if (differ) return 2;
    return count > 1 ? 1 : 0;
}

/* The codings of every Transfer-Encoding field: *nfields, the number of non-empty members,
 * whether the last one is "chunked" and whether all are tokens. */
static void te_codings(const st_msg_t *m, size_t *nfields, size_t *ncodings, int *last_chunked, int *nchunked,
                       int *bad_token)
{
    *nfields = *ncodings = 0;
    *last_chunked = *nchunked = *bad_token = 0;
    for (size_t f = 0; f < m->nfields; f++) {
        const st_field_t *fd = &m->fields[f];
        if (!st_name_is(fd, "transfer-encoding")) continue;
        (*nfields)++;
        const unsigned char *v = (const unsigned char *)fd->value;
        size_t n = fd->value_len, i = 0;
        while (i <= n) {
            size_t s = i;
            while (i < n && v[i] != ',') i++;
            size_t e = i;
            while (s < e && is_ows(v[s])) s++;
            while (e > s && is_ows(v[e - 1])) e--;
            if (e > s) {
                (*ncodings)++;
                int ch = ieq((const char *)v + s, e - s, "chunked");
                *last_chunked = ch;
                *nchunked += ch;
                for (size_t k = s; k < e; k++)
                    if (!is_tchar(v[k])) *bad_token = 1; /* parameters (";q=") included: not accepted */
            }
            i++;
        }
    }
}

static void set_amb(st_msg_t *m, int amb)
{
    if (m->amb == ST_AMB_NONE) m->amb = amb;
}

/* Decides the framing from the fields (RFC 9112 6.1-6.3) for a message that has a body
 * unless <no_body>. Sets m->framing, m->amb, m->read_framing. */
static void decide_framing(st_msg_t *m, int no_body)
{
    size_t te_fields, ncodings;
    int last_chunked, nchunked, bad_token, cl_single;
    uint64_t cl = 0;
    te_codings(m, &te_fields, &ncodings, &last_chunked, &nchunked, &bad_token);
    m->has_te = (int)te_fields;
    m->has_cl = (int)st_count(m, "content-length", NULL);
    int clr = m->has_cl ? cl_values(m, &cl, &cl_single) : -1;
    int read;
    if (te_fields) {
        if (m->minor == 0) set_amb(m, ST_AMB_TE_HTTP10);
        if (m->has_cl) set_amb(m, ST_AMB_TE_CL);
        if (te_fields > 1) set_amb(m, ST_AMB_TE_MULTI);
        if (ncodings == 0) set_amb(m, ST_AMB_TE_EMPTY);
        if (ncodings != 1 || !last_chunked || bad_token) set_amb(m, ST_AMB_TE_CODING);
        if (m->minor == 0) read = ST_FRAME_INVALID;
        else if (last_chunked) read = ST_FRAME_CHUNKED;
        else read = m->is_request ? ST_FRAME_INVALID : ST_FRAME_CLOSE;
    } else if (m->has_cl) {
        if (clr == 3) set_amb(m, ST_AMB_CL_BAD), read = ST_FRAME_INVALID;
        else if (clr == 2) set_amb(m, ST_AMB_CL_MULTI_DIFF), read = ST_FRAME_INVALID;
        else {
            if (clr == 1) set_amb(m, ST_AMB_CL_MULTI_SAME);
            read = ST_FRAME_LENGTH;
            m->read_length = cl;
        }
        if (clr == 0 || clr == 1) m->content_length = cl;
    } else {
        read = m->is_request ? ST_FRAME_NONE : ST_FRAME_CLOSE;
    }
    if (no_body) read = ST_FRAME_NONE;
    m->read_framing = read;
    m->framing = read;
}

/* ---- bodies ---- */

static void body_append(st_msg_t *m, const unsigned char *p, size_t n, size_t cap)
{
    if (n == 0) return;
    if (m->body == NULL) {
        m->body = malloc(cap ? cap : 1);
        if (m->body == NULL) abort();
    }
    memcpy(m->body + m->body_len, p, n);
    m->body_len += n;
}

/* chunk-ext after the size digits: *( BWS ";" BWS token [ BWS "=" BWS ( token / quoted-string ) ] ) */
static int chunk_ext(const unsigned char *b, size_t i, size_t e, const char **why)
{
    while (i < e) {
        while (i < e && is_ows(b[i])) i++;
        if (i == e) return *why = "whitespace after the chunk size or extension", -1;
        if (b[i] != ';') return *why = "invalid chunk-size line", -1;
        i++;
        while (i < e && is_ows(b[i])) i++;
        size_t s = i;
        while (i < e && is_tchar(b[i])) i++;
        if (i == s) return *why = "chunk extension without a name", -1;
        size_t save = i;
        while (i < e && is_ows(b[i])) i++;
        if (i < e && b[i] == '=') {
            i++;
            while (i < e && is_ows(b[i])) i++;
            if (i < e && b[i] == '"') {
                i++;
                for (;;) {
                    if (i == e) return *why = "unterminated quoted chunk extension value", -1;
                    unsigned char c = b[i];
                    if (c == '"') break;
                    if (c == '\\') {
                        if (i + 1 == e) return *why = "quoted-pair at the end of the line", -1;
                        unsigned char d = b[i + 1];
                        if (!(d == '\t' || d == ' ' || is_vchar(d) || d >= 0x80))
                            return *why = "invalid quoted-pair in a chunk extension", -1;
                        i += 2;
                        continue;
                    }
                    if (!(c == '\t' || c == ' ' || c == 0x21 || (c >= 0x23 && c <= 0x5b) || (c >= 0x5d && c <= 0x7e) ||
                          c >= 0x80))
                        return *why = "invalid byte in a quoted chunk extension value", -1;
                    i++;
                }
                i++; /* the closing quote */
            } else {
                size_t v = i;
                while (i < e && is_tchar(b[i])) i++;
                if (i == v) return *why = "chunk extension '=' without a value", -1;
            }
        } else {
            i = save; /* BWS not followed by '=': back to before it, the loop wants ';' */
        }
    }
    return 0;
}

static int parse_chunked(st_msg_t *m, cur_t *c)
{
    size_t cap = c->len - c->pos; /* decoded bytes never exceed the encoded ones */
    for (;;) {
        size_t s, n;
        int r = next_line(m, c, &s, &n, ST_ERR_BODY);
        if (r != ST_OK) return r;
        if (n > m->max_chunk_line) m->max_chunk_line = n;
        const unsigned char *b = c->b;
        size_t i = s, e = s + n;
        uint64_t size = 0;
        size_t sig = 0; /* significant digits: leading zeros are valid (1*HEXDIG) and change nothing */
        while (i < e && is_hex(b[i])) {
            if (size != 0 || b[i] != '0') sig++;
            size = size * 16 + (uint64_t)hexval(b[i]);
            i++;
            if (sig > 16) return fail(m, ST_ERR_BODY, "a chunk size over 16 significant hex digits", s);
        }
        if (i - s > m->max_hex_digits) m->max_hex_digits = i - s;
        if (i == s) return fail(m, ST_ERR_BODY, "chunk-size line without hex digits", s);
        const char *why = NULL;
        if (chunk_ext(b, i, e, &why) != 0) return fail(m, ST_ERR_BODY, why, s);
        if (size == 0) break;
        if (c->len - c->pos < size) return fail(m, ST_INCOMPLETE, "buffer ends inside chunk data", c->len);
        body_append(m, b + c->pos, (size_t)size, cap);
        c->pos += (size_t)size;
        if (c->len - c->pos < 2) {
            if (c->len == c->pos || b[c->pos] == '\r') return fail(m, ST_INCOMPLETE, "buffer ends after chunk data", c->len);
            return fail(m, ST_ERR_BODY, "chunk data not followed by CRLF", c->pos);
        }
        if (b[c->pos] != '\r' || b[c->pos + 1] != '\n') return fail(m, ST_ERR_BODY, "chunk data not followed by CRLF", c->pos);
        c->pos += 2;
    }
    for (;;) { /* trailer-section, then CRLF */
        size_t s, n;
        int r = next_line(m, c, &s, &n, ST_ERR_BODY);
        if (r != ST_OK) return r;
        m->trailer_bytes += n + 2;
        if (n > m->max_chunk_line) m->max_chunk_line = n;
        if (n == 0) return ST_OK;
        if (m->ntrailers == ST_MAX_FIELDS) return fail(m, ST_ERR_LIMIT, "too many trailer fields", s);
        r = parse_field(m, c->b, s, n, &m->trailers[m->ntrailers], ST_ERR_BODY);
        if (r != ST_OK) return r;
        m->ntrailers++;
    }
}

static int parse_body(st_msg_t *m, cur_t *c)
{
    switch (m->framing) {
    case ST_FRAME_NONE:
        return ST_OK;
    case ST_FRAME_LENGTH:
        if (c->len - c->pos < m->content_length) return fail(m, ST_INCOMPLETE, "buffer ends inside the body", c->len);
        body_append(m, c->b + c->pos, (size_t)m->content_length, (size_t)m->content_length);
        c->pos += (size_t)m->content_length;
        return ST_OK;
    case ST_FRAME_CHUNKED:
        return parse_chunked(m, c);
    case ST_FRAME_CLOSE:
        body_append(m, c->b + c->pos, c->len - c->pos, c->len - c->pos);
        c->pos = c->len;
        return ST_OK;
    default:
        return fail(m, ST_ERR_FRAMING, "no valid framing", c->pos);
    }
}

/* ---- messages ---- */

static void reset(st_msg_t *m, int is_request)
{
    memset(m, 0, sizeof(*m));
    m->is_request = is_request;
    m->status = -1;
}

/* Lenient: skips CR and LF bytes before a start line (llhttp does; RFC 9112 2.2 asks for at
 * least one empty line to be ignored). */
static void skip_leading_eol(cur_t *c)
{
    while (st_lenient && c->pos < c->len && (c->b[c->pos] == '\r' || c->b[c->pos] == '\n')) c->pos++;
}

/* Lenient: the end of a run of SP from <i> (RFC 9112 3: parse on whitespace boundaries). */
static size_t skip_sp(const unsigned char *b, size_t i, size_t e)
{
    while (st_lenient && i < e && b[i] == ' ') i++;
    return i;
}

int st_parse_request(const char *buf, size_t len, st_msg_t *m)
{
    reset(m, 1);
    cur_t c = {(const unsigned char *)buf, len, 0};
    size_t s, n;
    skip_leading_eol(&c);
    int r = next_line(m, &c, &s, &n, ST_ERR_START);
    if (r != ST_OK) return r;
    const unsigned char *b = c.b;
    size_t i = s, e = s + n;
    while (i < e && is_tchar(b[i])) i++;
    if (i == s) return fail(m, ST_ERR_START, "method is not a token", s);
    m->method = buf + s;
    m->method_len = i - s;
    if (i == e || b[i] != ' ') return fail(m, ST_ERR_START, "method not followed by one SP", i);
    size_t t = i = skip_sp(b, i + 1, e);
    while (i < e && is_vchar(b[i])) i++;
    if (i == t) return fail(m, ST_ERR_START, "empty or invalid request-target", t);
    m->target = buf + t;
    m->target_len = i - t;
    if (i == e || b[i] != ' ') return fail(m, ST_ERR_START, "request-target not followed by one SP", i);
    i = skip_sp(b, i + 1, e);
    if (parse_version(m, b + i, e - i) != 0) return fail(m, ST_ERR_START, "version is not HTTP/1.0 or HTTP/1.1", i);
    r = parse_fields(m, &c);
    if (r != ST_OK) return r;
    m->head_end = c.pos;
    decide_framing(m, 0);
    const char *why = NULL;
    int route = check_route(m, &why);
    if (m->amb != ST_AMB_NONE) return fail(m, ST_ERR_FRAMING, st_amb_name(m->amb), m->head_end);
    if (route != ST_OK) return fail(m, route, why, s);
    r = parse_body(m, &c);
    if (r != ST_OK) return r;
    m->end = c.pos;
    return m->result = ST_OK;
}

int st_parse_response(const char *buf, size_t len, int req_is_head, st_msg_t *m)
{
    reset(m, 0);
    cur_t c = {(const unsigned char *)buf, len, 0};
    size_t s, n;
    skip_leading_eol(&c);
    int r = next_line(m, &c, &s, &n, ST_ERR_START);
    if (r != ST_OK) return r;
    const unsigned char *b = c.b;
    /* Lenient: leading zeros before the three digits ("0204", which llhttp reads as 204; fulcrum
     * writes the status with three digits). */
    size_t z = 0;
    while (st_lenient && n > 12 + z && b[s + 9 + z] == '0' && is_digit(b[s + 10 + z]) && is_digit(b[s + 11 + z]) &&
           is_digit(b[s + 12 + z]))
        z++;
    if (n < 12 + z || parse_version(m, b + s, 8) != 0 || b[s + 8] != ' ' || !is_digit(b[s + 9 + z]) ||
        !is_digit(b[s + 10 + z]) || !is_digit(b[s + 11 + z]) || (n > 12 + z && b[s + 12 + z] != ' ') ||
        (n == 12 + z && !st_lenient))
        return fail(m, ST_ERR_START, "status-line is not HTTP/1.x SP 3DIGIT SP reason", s);
    m->status = (b[s + 9 + z] - '0') * 100 + (b[s + 10 + z] - '0') * 10 + (b[s + 11 + z] - '0');
    if (m->status < 100 || m->status > 599) return fail(m, ST_ERR_START, "status outside 100..599", s + 9);
    for (size_t k = s + 13 + z; k < s + n; k++)
        if (!is_field_char(b[k])) return fail(m, ST_ERR_START, "control byte in the reason phrase", k);
    m->reason = buf + s + 13 + z;
    m->reason_len = n > 13 + z ? n - 13 - z : 0;
    r = parse_fields(m, &c);
    if (r != ST_OK) return r;
    m->head_end = c.pos;
    int no_body = req_is_head || m->status < 200 || m->status == 204 || m->status == 304;
    decide_framing(m, no_body);
    const st_field_t *host;
    m->host_count = (int)st_count(m, "host", &host);
    if (m->amb != ST_AMB_NONE) return fail(m, ST_ERR_FRAMING, st_amb_name(m->amb), m->head_end);
    r = parse_body(m, &c);
    if (r != ST_OK) return r;
    m->end = c.pos;
    return m->result = ST_OK;
}

void st_free(st_msg_t *m)
{
    free(m->body);
    free(m->eff_target);
    m->body = NULL;
    m->eff_target = NULL;
}

const char *st_result_name(int r)
{
    static const char *const names[] = {"ok", "incomplete", "start-line", "field", "limit", "host", "target", "framing", "body"};
    return r >= 0 && r < (int)(sizeof(names) / sizeof(names[0])) ? names[r] : "?";
}

const char *st_amb_name(int a)
{
    static const char *const names[] = {"none", "TE with CL", "several TE fields", "empty TE", "TE codings other than chunked",
                                        "TE in HTTP/1.0", "invalid CL", "several equal CLs", "several different CLs"};
    return a >= 0 && a < (int)(sizeof(names) / sizeof(names[0])) ? names[a] : "?";
}
