/* http.h: llhttp glue for both directions. Pure: bytes in, a parsed head out, no libuv.
 * Span callbacks only record slices of the caller's buffer into an fc_http_head_t; decisions are
 * made by the caller after fc_http_execute() returns. Execution pauses after every head and after
 * every message, so pipelined messages are handled one at a time and in order. */
#ifndef FULCRUM_HTTP_H
#define FULCRUM_HTTP_H

#include <llhttp.h>
#include <stddef.h>
#include <stdint.h>

/* A borrowed byte range. Whoever stores one says what it borrows from and until when. */
typedef struct fc_slice {
    const char *p;
    size_t n;
} fc_slice_t;

#define FC_HTTP_MAX_HEADERS 256 /* more is 431, as HAProxy does past its (lower, 101) tune.http.maxhdr */

typedef struct fc_header {
    fc_slice_t name;  /* borrowed from the read buffer, valid until the head is forwarded */
    fc_slice_t value; /* same; trailing spaces and tabs trimmed (on_header_value_complete) */
} fc_header_t;

/* One parsed request or response head. All slices borrow from the buffer given to
 * fc_http_execute() and stay valid while that buffer's bytes are neither moved nor reused. */
typedef struct fc_http_head {
    fc_slice_t method;   /* request only */
    fc_slice_t url;      /* request target, request only */
    fc_slice_t reason;   /* response only */
    int status;          /* response only */
    uint8_t major, minor;
    size_t nheaders;
    int has_connection;  /* a Connection header is present (it may name more hop-by-hop headers) */
    /* The fields message.c judges, noted once as each field completes (no second pass over the
     * head): how many there are and the index of the first. */
    uint16_t n_host, n_cl, n_te, n_rid;
    uint16_t i_rid;      /* the first X-Request-ID, valid when n_rid > 0 */
    uint16_t i_host, i_cl, i_maxfwd; /* valid when the count is > 0 (i_maxfwd: when has_maxfwd) */
    uint8_t has_maxfwd;
    fc_header_t headers[FC_HTTP_MAX_HEADERS];
    uint8_t kind[FC_HTTP_MAX_HEADERS]; /* enum fc_field_kind of each header, noted as it completes */
} fc_http_head_t;

/* What a received field is to the checks and the head builders (http.c notes it once per
 * field, so nothing after the parser compares names again). */
enum fc_field_kind {
    FC_FIELD_OTHER = 0,         /* forwarded as it is */
    FC_FIELD_CONTENT_LENGTH,    /* framing: fulcrum writes its own */
    FC_FIELD_TRANSFER_ENCODING, /* the same */
    FC_FIELD_HOST,
    FC_FIELD_MAX_FORWARDS,
    FC_FIELD_VIA,
    FC_FIELD_DATE,
    FC_FIELD_HOP,               /* Connection, Keep-Alive, Proxy-Connection, TE, Trailer, Upgrade */
    FC_FIELD_XFF,               /* X-Forwarded-For: a request's values are merged into fulcrum's */
    FC_FIELD_XFWD,              /* X-Real-IP, X-Forwarded-Proto: fulcrum sets them in requests */
    FC_FIELD_REQUEST_ID,        /* X-Request-ID: forwarded, or replaced by the one fulcrum sets */
    FC_FIELD_UNDERSCORE = 0x80, /* flag (requests): the name contains '_' */
};

enum fc_http_event {
    FC_HTTP_NEED_MORE = 0,   /* every byte was consumed; the message goes on */
    FC_HTTP_HEAD_DONE = 1,   /* a head is complete; bytes after it are not consumed yet */
    FC_HTTP_MSG_DONE = 2,    /* a message is complete; bytes after it are not consumed yet */
    FC_HTTP_ERROR = -1,      /* malformed or ambiguous input; fc_http_error() says why */
};

typedef struct fc_http_parser {
    llhttp_t ll;            /* llhttp state; ll.data points back at this struct */
    fc_http_head_t *head;   /* borrowed: where head spans go, NULL when not collecting */
    uint8_t last_was_value; /* header span bookkeeping */
    uint8_t skip_body;      /* response to HEAD: the next head has no body */
    uint8_t in_head;        /* between message begin and head done */
    uint8_t user_error;     /* a FC_HTTP_ERR_* set by a callback */
    int8_t event;           /* the enum fc_http_event a callback paused for */
} fc_http_parser_t;

enum { FC_HTTP_ERR_NONE = 0, FC_HTTP_ERR_TOO_MANY_HEADERS = 1, FC_HTTP_ERR_OBS_FOLD = 2, FC_HTTP_ERR_EMPTY_NAME = 3 };

/* Initializes <p> for requests (HTTP_REQUEST) or responses (HTTP_RESPONSE), strict parsing. */
void fc_http_parser_init(fc_http_parser_t *p, llhttp_type_t type);

/* Parses up to <len> bytes at <data>; *<consumed> says how many were used. Spans go into
 * p->head, which the caller sets before a head starts (it may be NULL for bodies). */
int fc_http_execute(fc_http_parser_t *p, const char *data, size_t len, size_t *consumed);

/* A short reason for the last FC_HTTP_ERROR. */
const char *fc_http_error(const fc_http_parser_t *p);

/* Case-insensitive equality of <s> and <lit>. */
int fc_slice_ieq(fc_slice_t s, const char *lit, size_t litlen);
/* The same, inline, for a token <s> (a field name: llhttp checked it) and a lower-case literal
 * of letters, digits and '-': OR-ing 0x20 lower-cases a letter and changes no other token byte
 * into one of those. No library call: these compares run for every field of every message. */
static inline int fc_slice_ieq_lower(fc_slice_t s, const char *lit, size_t n)
{
    if (s.n != n) return 0;
    for (size_t i = 0; i < n; i++)
        if ((char)(s.p[i] | 0x20) != lit[i]) return 0;
    return 1;
}
#define FC_SLICE_IEQ(s, lit) fc_slice_ieq_lower((s), (lit), sizeof(lit) - 1)
/* Finds a header by name in <h>; NULL if absent. */
const fc_header_t *fc_http_find(const fc_http_head_t *h, const char *name, size_t namelen);
/* 1 if the comma-separated header value <v> contains the token <tok> (case-insensitive). */
int fc_http_has_token(fc_slice_t v, const char *tok, size_t toklen);
/* Character classes, per byte: FC_CHAR_TCHAR (RFC 9110 5.6.2 tchar) and FC_CHAR_REGNAME
 * (RFC 3986 reg-name without pct-encoded: unreserved / sub-delims). */
enum { FC_CHAR_TCHAR = 1, FC_CHAR_REGNAME = 2 };
extern const uint8_t fc_http_chars[256];
/* 1 if <s> is a non-empty RFC 9110 token (a valid header name). */
int fc_http_is_token(fc_slice_t s);
/* Parses "timeout=N" out of a Keep-Alive header value; returns N seconds or -1. */
long fc_http_keepalive_timeout(fc_slice_t v);

#endif
