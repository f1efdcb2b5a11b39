/* strict.h: an independent, strict HTTP/1.1 message parser for the fuzz targets' invariants
 * (tests/fuzz/fuzz_forward.c, fuzz_respond.c). It is the referee: written from RFC 9110/9112
 * for the tests, sharing no code with src/ and not using llhttp, and it refuses whatever a
 * recipient could read in more than one way.
 *
 * It parses ONE message from a complete byte buffer: a request (request-line, field lines, a
 * Content-Length or chunked body with extensions and trailers) or a response (status-line, field
 * lines, a body framed by Content-Length, chunked or the close, given whether the request was
 * HEAD). Rules, all strict:
 *   - lines end in CRLF only: a bare CR or a bare LF anywhere in the head or a chunk line is an
 *     error; no empty lines before the start line;
 *   - request-line: token SP 1*VCHAR SP "HTTP/1.0"|"HTTP/1.1"; status-line: "HTTP/1.x" SP 3DIGIT
 *     SP *(HTAB / SP / VCHAR / obs-text), status 100..599;
 *   - field lines: token ":" OWS value OWS, value = HTAB / SP / VCHAR / obs-text only; a line
 *     starting with SP/HTAB (obs-fold) is an error, as is whitespace before the colon;
 *   - framing: at most one Transfer-Encoding field whose list (empty members ignored) is exactly
 *     "chunked", or exactly one Content-Length field of 1*DIGIT; never both; no Transfer-Encoding
 *     in HTTP/1.0. A framing error still says what an RFC 9112 6.3 reader would have done
 *     (st_msg_t.read_framing), so a caller can compare a lenient reading with its own;
 *   - chunked: 1*HEXDIG of at most 16 significant digits, extensions *( BWS ";" BWS token [ BWS "=" BWS (token /
 *     quoted-string) ] ), CRLF, data, CRLF; last chunk, trailer field lines (same rules as head
 *     fields), CRLF;
 *   - requests: HTTP/1.1 needs exactly one Host, HTTP/1.0 at most one; Host = uri-host
 *     [":" 1*DIGIT <= 65535] (reg-name, IPv4 or [IPv6]) or empty; the target is origin-form,
 *     absolute-form (http/https, no userinfo), or "*" for OPTIONS; no "#".
 * Responses to HEAD and 1xx/204/304 responses have no body (their framing fields are still
 * checked). */
#ifndef FC_FUZZ_STRICT_H
#define FC_FUZZ_STRICT_H

#include <stddef.h>
#include <stdint.h>

#define ST_MAX_FIELDS 512

enum st_result {
    ST_OK = 0,
    ST_INCOMPLETE,  /* a valid prefix: the buffer ends before the message does */
    ST_ERR_START,   /* request-line / status-line syntax, version other than 1.0/1.1 */
    ST_ERR_FIELD,   /* a field line: bare CR/LF, obs-fold, non-token name, space before colon, CTL */
    ST_ERR_LIMIT,   /* more than ST_MAX_FIELDS fields */
    ST_ERR_HOST,    /* Host missing (1.1), duplicated, or not a valid authority */
    ST_ERR_TARGET,  /* request-target: not origin/absolute/asterisk form, '#', bad authority */
    ST_ERR_FRAMING, /* ambiguous or invalid framing fields: st_msg_t.amb says which */
    ST_ERR_BODY,    /* chunked body syntax (chunk line, data CRLF, trailer line) */
};

/* Which framing rule a message broke (ST_ERR_FRAMING). */
enum st_amb {
    ST_AMB_NONE = 0,
    ST_AMB_TE_CL,         /* Transfer-Encoding and Content-Length */
    ST_AMB_TE_MULTI,      /* two or more Transfer-Encoding fields */
    ST_AMB_TE_EMPTY,      /* a Transfer-Encoding with no coding */
    ST_AMB_TE_CODING,     /* codings other than exactly "chunked" (gzip, chunked; chunked, chunked; gzip) */
    ST_AMB_TE_HTTP10,     /* Transfer-Encoding in an HTTP/1.0 message */
    ST_AMB_CL_BAD,        /* a Content-Length that is not 1*DIGIT (or overflows) */
    ST_AMB_CL_MULTI_SAME, /* several Content-Length values (fields or list members), all equal */
    ST_AMB_CL_MULTI_DIFF, /* several Content-Length values that differ */
};

enum st_framing { ST_FRAME_NONE = 0, ST_FRAME_LENGTH, ST_FRAME_CHUNKED, ST_FRAME_CLOSE, ST_FRAME_INVALID };

typedef struct st_field {
    const char *name;  /* borrowed from the parsed buffer */
    size_t name_len;
    const char *value; /* leading and trailing OWS removed */
    size_t value_len;
} st_field_t;

typedef struct st_msg {
    int is_request;
    const char *method; size_t method_len;      /* request */
    const char *target; size_t target_len;      /* request: as sent */
    int status;                                 /* response */
    const char *reason; size_t reason_len;      /* response */
    int major, minor;
    st_field_t fields[ST_MAX_FIELDS]; size_t nfields;
    int host_count;                             /* Host fields */
    const char *host; size_t host_len;          /* the Host value (the first one) */
    /* requests: where it goes. eff_target is origin-form ("/p?q", "/" for an empty path) or "*";
     * eff_host is the absolute-form target's authority, else the Host value. Owned (malloc). */
    char *eff_target; size_t eff_target_len;
    const char *eff_host; size_t eff_host_len;
    int host_from_target;                       /* absolute-form */
    int target_rfc3986;                         /* 1: every target byte is allowed by RFC 3986 */
    /* framing */
    int framing;                                /* enum st_framing, valid when ST_OK */
    uint64_t content_length;                    /* ST_FRAME_LENGTH; also a CL field's value in a bodiless response */
    int has_cl, has_te;                         /* framing fields present (counts of fields) */
    int amb;                                    /* enum st_amb after ST_ERR_FRAMING (the first rule broken) */
    int read_framing;                           /* what a lenient RFC 9112 6.3 reader does (enum st_framing) */
    uint64_t read_length;                       /* its length for ST_FRAME_LENGTH */
    /* body */
    unsigned char *body; size_t body_len;       /* decoded payload (malloc, NULL when empty) */
    st_field_t trailers[ST_MAX_FIELDS]; size_t ntrailers;
    size_t head_end;                            /* offset just after the head's final CRLF */
    size_t end;                                 /* offset just after the message */
    size_t max_chunk_line;                      /* longest chunk-size or trailer line (without CRLF) */
    size_t trailer_bytes;                       /* trailer lines with their CRLFs */
    size_t max_hex_digits;                      /* longest chunk-size digit run (leading zeros included) */
    int result;                                 /* enum st_result */
    const char *why;                            /* a constant reason when result != ST_OK */
    size_t err_off;                             /* where the error was found */
} st_msg_t;

/* Lenient mode, for reading what a client or server sent (not what fulcrum forwards): it also
 * accepts what RFC 9112 lets a recipient accept, because fulcrum rewrites the start line and the
 * field lines it forwards: a bare LF ending the start line or a field line (2.2), empty lines and
 * stray CR/LF before the start line (2.2), runs of SP between request-line parts (3), a status
 * line without the SP before an empty reason phrase ("HTTP/1.1 200", common in practice),
 * leading zeros in a status code ("0204": fulcrum writes three digits). Bodies
 * (chunk lines, trailers) stay strict. Off by default. */
extern int st_lenient;

/* Parses one request from buf[0..len). Returns m->result. Call st_free(m) after any result. */
int st_parse_request(const char *buf, size_t len, st_msg_t *m);
/* Parses one response from buf[0..len) answering a HEAD request when <req_is_head>. A 1xx
 * response is a complete message at its head's end (the caller parses the next one from m->end). */
int st_parse_response(const char *buf, size_t len, int req_is_head, st_msg_t *m);
void st_free(st_msg_t *m);

/* 1 if the field name equals <lit> case-insensitively. */
int st_name_is(const st_field_t *f, const char *lit);
/* Number of fields (head) of <m> named <lit>; *first gets the first one (may be NULL). */
size_t st_count(const st_msg_t *m, const char *lit, const st_field_t **first);

const char *st_result_name(int r);
const char *st_amb_name(int a);

#endif
