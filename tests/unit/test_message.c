/* test_message.c: the head checks (src/message.c) against the decisions of issue 9: every head is
 * parsed from raw bytes with fc_http_parser_t first, as src/conn.c and pump_response do, and what
 * llhttp refuses gets fc_msg_request_error_status's answer (responses: 502) as it would there. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "fulcrum/common.h"
#include "fulcrum/http.h"
#include "fulcrum/message.h"
#include "harness.h"

void test_message(void);

#define S(lit) ((fc_slice_t){(lit), sizeof(lit) - 1})

static fc_http_parser_t P;
static fc_http_head_t H;
static char out[1024];

static const char *frame_name(int f)
{
    switch (f) {
    case FC_FRAME_NONE: return "none";
    case FC_FRAME_LENGTH: return "length";
    case FC_FRAME_CHUNKED: return "chunked";
    case FC_FRAME_EOF: return "eof";
    default: return "?";
    }
}

/* The status a request head in <raw> gets: llhttp's refusal mapped by fc_msg_request_error_status,
 * or fc_msg_check_request's answer; "incomplete" when the head does not end. 0 (forwarded) and a
 * local answer come with the view: "0 <framing>[ <length>] target=<t> host=<h> [flags] mf=<n>". */
static const char *req(const char *raw, size_t len, fc_request_view_t *v)
{
    size_t used = 0;
    fc_http_parser_init(&P, HTTP_REQUEST);
    P.head = &H;
    memset(v, 0, sizeof(*v));
    int ev = fc_http_execute(&P, raw, len, &used);
    if (ev == FC_HTTP_ERROR) {
        snprintf(out, sizeof(out), "%d", fc_msg_request_error_status(&P, raw, len));
        return out;
    }
    if (ev != FC_HTTP_HEAD_DONE) return "incomplete";
    int st = fc_msg_check_request(&H, &P.ll, v);
    if (st != 0) {
        snprintf(out, sizeof(out), "%d", st);
        if (v->why == NULL) strcat(out, " (no why)");
        return out;
    }
    int n = snprintf(out, sizeof(out), "0 %s", frame_name(v->framing));
    if (v->framing == FC_FRAME_LENGTH) n += snprintf(out + n, sizeof(out) - (size_t)n, " %llu", (unsigned long long)v->length);
    n += snprintf(out + n, sizeof(out) - (size_t)n, " target=%s%.*s host=%.*s", v->target_slash ? "/" : "",
                  (int)v->target.n, v->target.p ? v->target.p : "", (int)v->host.n, v->host.p ? v->host.p : "");
    if (v->host_from_target) n += snprintf(out + n, sizeof(out) - (size_t)n, " from-target");
    if (!v->has_host) n += snprintf(out + n, sizeof(out) - (size_t)n, " no-host");
    if (v->local) n += snprintf(out + n, sizeof(out) - (size_t)n, " local");
    if (v->max_forwards >= 0) snprintf(out + n, sizeof(out) - (size_t)n, " mf=%d", (int)v->max_forwards);
    return out;
}

static const char *req_s(const char *raw)
{
    fc_request_view_t v;
    return req(raw, strlen(raw), &v);
}

#define REQ_IS(raw, want)                                                                          \
    do {                                                                                           \
        const char *got_ = req_s(raw);                                                               \
        is_str(got_, (want));                                                                      \
        if (strcmp(got_, (want)) != 0) fprintf(stderr, "  request: %s\n", (raw));                   \
    } while (0)

/* A request line + Host: h + <fields> + the empty line. */
static const char *with(const char *method_target_version, const char *fields)
{
    static char raw[2048];
    snprintf(raw, sizeof(raw), "%s\r\nHost: h\r\n%s\r\n", method_target_version, fields);
    return raw;
}

static void test_request_framing(void)
{
    static const struct {
        const char *fields, *want;
    } t[] = {
        /* no framing, Content-Length (normalised), chunked */
        {"", "0 none target=/ host=h"},
        {"Content-Length: 5\r\n", "0 length 5 target=/ host=h"},
        {"Content-Length: 005\r\n", "0 length 5 target=/ host=h"},
        {"Content-Length: 0\r\n", "0 length 0 target=/ host=h"},
        {"Content-Length: 000\r\n", "0 length 0 target=/ host=h"},
        /* at most 19 significant digits (message.c parse_length): 2^64-1 itself is refused */
        {"Content-Length: 9999999999999999999\r\n", "0 length 9999999999999999999 target=/ host=h"},
        {"Content-Length: 00000000000000000000000000001\r\n", "0 length 1 target=/ host=h"},
        {"Content-Length: 18446744073709551615\r\n", "400"},
        {"Transfer-Encoding: chunked\r\n", "0 chunked target=/ host=h"},
        {"Transfer-Encoding: CHUNKED\r\n", "0 chunked target=/ host=h"},
        {"transfer-encoding: Chunked\r\n", "0 chunked target=/ host=h"},
        {"Transfer-Encoding:\tchunked\t\r\n", "0 chunked target=/ host=h"},
        {"Transfer-Encoding: chunked \r\n", "0 chunked target=/ host=h"},
        /* empty list members are ignored (RFC 9110 5.6.1) */
        {"Transfer-Encoding: ,chunked\r\n", "0 chunked target=/ host=h"},
        {"Transfer-Encoding: , \t, chunked\r\n", "0 chunked target=/ host=h"},
        /* a final coding other than chunked: 400 (RFC 9112 6.3) */
        {"Transfer-Encoding: gzip\r\n", "400"},
        {"Transfer-Encoding: identity\r\n", "400"},
        {"Transfer-Encoding: chunkedx\r\n", "400"},
        {"Transfer-Encoding: chunked, gzip\r\n", "400"},
        {"Transfer-Encoding: chunked;q=1\r\n", "400"},
        {"Transfer-Encoding: \"chunked\"\r\n", "400"},
        /* a coding fulcrum does not implement before a final chunked: 501 (RFC 9112 6.1) */
        {"Transfer-Encoding: gzip, chunked\r\n", "501"},
        {"Transfer-Encoding: deflate,chunked\r\n", "501"},
        /* chunked twice, two fields, empty */
        {"Transfer-Encoding: chunked, chunked\r\n", "400"},
        {"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n", "400"},
        {"Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n", "400"},
        {"Transfer-Encoding:\r\n", "400"},
        {"Transfer-Encoding: ,\r\n", "400"},
        /* TE with CL, in either order */
        {"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n", "400"},
        {"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n", "400"},
        {"Content-Length: 0\r\nTransfer-Encoding: chunked\r\n", "400"},
        /* Content-Length: only 1*DIGIT, only once */
        {"Content-Length: 5\r\nContent-Length: 5\r\n", "400"},
        {"Content-Length: 5\r\nContent-Length: 6\r\n", "400"},
        {"Content-Length: 5, 5\r\n", "400"},
        {"Content-Length: +5\r\n", "400"},
        {"Content-Length: 5x\r\n", "400"},
        {"Content-Length: -1\r\n", "400"},
        {"Content-Length: 0x5\r\n", "400"},
        {"Content-Length: 5 5\r\n", "400"},
        {"Content-Length: 18446744073709551616\r\n", "400"},
        {"Content-Length: 99999999999999999999\r\n", "400"},
    };
    subtest("request framing: Content-Length and Transfer-Encoding (RFC 9112 6.1-6.3)");
    for (size_t i = 0; i < FC_ARRAY_LEN(t); i++) REQ_IS(with("POST / HTTP/1.1", t[i].fields), t[i].want);

    subtest("request framing: Transfer-Encoding in an HTTP/1.0 request is refused");
    REQ_IS("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", "400");
    REQ_IS("POST / HTTP/1.0\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n", "400");
    REQ_IS("POST / HTTP/1.0\r\nContent-Length: 3\r\n\r\n", "0 length 3 target=/ host= no-host");

    subtest("request framing: the view the forwarded head and the body reader use");
    {
        fc_request_view_t v;
        static const char raw[] = "PUT /p HTTP/1.1\r\nHost: h\r\nContent-Length: 0042\r\n\r\n";
        is_str(req(raw, sizeof(raw) - 1, &v), "0 length 42 target=/p host=h");
        is_int(v.framing, FC_FRAME_LENGTH);
        ok(v.length == 42);
        ok(v.target.p == raw + 4); /* slices borrow from the head's buffer */
        ok(v.host.p == raw + 23);
        is_int(v.has_host, 1);
        is_int(v.max_forwards, -1);
        ok(v.why == NULL);
        is_str(req(with("POST / HTTP/1.1", "Transfer-Encoding: gzip\r\n"), strlen(with("POST / HTTP/1.1", "Transfer-Encoding: gzip\r\n")), &v), "400");
        ok(v.why != NULL && v.why[0] != '\0');
    }
}

static void test_request_fields(void)
{
    subtest("field syntax: obs-fold, control bytes, whitespace before the colon: 400");
    REQ_IS(with("GET / HTTP/1.1", "X: a\r\n b\r\n"), "400");
    REQ_IS(with("GET / HTTP/1.1", "X: a\r\n\tb\r\n"), "400");
    REQ_IS("GET / HTTP/1.1\r\nHost: h\r\nX: a\001b\r\n\r\n", "400");
    REQ_IS("GET / HTTP/1.1\r\nHost: h\r\nX: a\177b\r\n\r\n", "400");
    REQ_IS("GET / HTTP/1.1\r\nHost: h\r\nX: a\rb\r\n\r\n", "400");
    REQ_IS("GET / HTTP/1.1\r\nHost: h\r\nX: a\nb\r\n\r\n", "400");
    REQ_IS("GET / HTTP/1.1\r\nHost: h\r\nX: a\n\r\n", "400");
    {
        static const char raw[] = "GET / HTTP/1.1\r\nHost: h\r\nX: a\0b\r\n\r\n";
        fc_request_view_t v;
        is_str(req(raw, sizeof(raw) - 1, &v), "400");
    }
    REQ_IS(with("GET / HTTP/1.1", "X-A : 1\r\n"), "400");
    REQ_IS(with("GET / HTTP/1.1", "X-A\t: 1\r\n"), "400");
    REQ_IS(with("GET / HTTP/1.1", "X A: 1\r\n"), "400");
    REQ_IS(with("GET / HTTP/1.1", "X-A\r\n"), "400");
    REQ_IS(with("GET / HTTP/1.1", ": 1\r\n"), "400");
    REQ_IS(with("GET / HTTP/1.1", "X(A): 1\r\n"), "400");
    subtest("field syntax: obs-text in a value is allowed, '_' names pass the check (headers.c drops them)");
    REQ_IS(with("GET / HTTP/1.1", "X-T: caf\xc3\xa9 \x80\xff\r\n"), "0 none target=/ host=h");
    REQ_IS(with("GET / HTTP/1.1", "X_Under: 1\r\nContent_Length: 5\r\n"), "0 none target=/ host=h");
    REQ_IS(with("GET / HTTP/1.1", "X-Empty:\r\n"), "0 none target=/ host=h");
}

static void test_request_target(void)
{
    subtest("Host: HTTP/1.1 needs exactly one; HTTP/1.0 may have none");
    REQ_IS("GET / HTTP/1.1\r\n\r\n", "400");
    REQ_IS("GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", "400");
    REQ_IS("GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n", "400");
    REQ_IS("GET / HTTP/1.0\r\n\r\n", "0 none target=/ host= no-host");
    REQ_IS("GET / HTTP/1.0\r\nHost: a.example\r\n\r\n", "0 none target=/ host=a.example");
    REQ_IS("GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n", "400");

    subtest("Host: uri-host [\":\" port], an empty value is allowed (RFC 9110 7.2)");
    REQ_IS("GET / HTTP/1.1\r\nHost: a.example:8080\r\n\r\n", "0 none target=/ host=a.example:8080");
    REQ_IS("GET / HTTP/1.1\r\nHost: [::1]:80\r\n\r\n", "0 none target=/ host=[::1]:80");
    REQ_IS("GET / HTTP/1.1\r\nHost: 10.0.0.1\r\n\r\n", "0 none target=/ host=10.0.0.1");
    REQ_IS("GET / HTTP/1.1\r\nHost:\r\n\r\n", "0 none target=/ host=");
    REQ_IS("GET / HTTP/1.1\r\nHost: \r\n\r\n", "0 none target=/ host=");
    static const char *bad_hosts[] = {"a@b", "a b", "a:1:2", "a:", "[::1", "a:99999", "a/b", "u@a:80", ":80", "a:8x"};
    for (size_t i = 0; i < FC_ARRAY_LEN(bad_hosts); i++) {
        char raw[128];
        snprintf(raw, sizeof(raw), "GET / HTTP/1.1\r\nHost: %s\r\n\r\n", bad_hosts[i]);
        REQ_IS(raw, "400");
    }

    subtest("absolute-form: routed by the authority, forwarded in origin-form with Host replaced");
    REQ_IS("GET http://auth.example/path?q=1 HTTP/1.1\r\nHost: other\r\n\r\n",
           "0 none target=/path?q=1 host=auth.example from-target");
    REQ_IS("GET HTTPS://a.b:8443/x HTTP/1.1\r\nHost: other\r\n\r\n", "0 none target=/x host=a.b:8443 from-target");
    REQ_IS("GET hTtP://a/ HTTP/1.1\r\nHost: a\r\n\r\n", "0 none target=/ host=a from-target");
    REQ_IS("GET http://a HTTP/1.1\r\nHost: a\r\n\r\n", "0 none target=/ host=a from-target");
    REQ_IS("GET http://a?q HTTP/1.1\r\nHost: a\r\n\r\n", "0 none target=/?q host=a from-target");
    REQ_IS("GET http://[::1]:8080/p HTTP/1.1\r\nHost: a\r\n\r\n", "0 none target=/p host=[::1]:8080 from-target");
    REQ_IS("GET http://a.example/x HTTP/1.0\r\n\r\n", "0 none target=/x host=a.example from-target no-host");
    REQ_IS("POST http://a/up HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\n", "0 length 2 target=/up host=a from-target");
    {
        fc_request_view_t v;
        static const char raw[] = "GET http://a?q HTTP/1.1\r\nHost: a\r\n\r\n";
        is_str(req(raw, sizeof(raw) - 1, &v), "0 none target=/?q host=a from-target");
        is_int(v.target_slash, 1);
        ok(v.target.n == 2 && v.target.p == raw + 12);
        ok(v.host.n == 1 && v.host.p == raw + 11);
        is_int(v.host_from_target, 1);
        static const char raw2[] = "GET http://a/b HTTP/1.1\r\nHost: a\r\n\r\n";
        is_str(req(raw2, sizeof(raw2) - 1, &v), "0 none target=/b host=a from-target");
        is_int(v.target_slash, 0);
    }
    subtest("absolute-form: invalid authority, other schemes: 400");
    REQ_IS("GET http://u@a/ HTTP/1.1\r\nHost: a\r\n\r\n", "400");
    REQ_IS("GET http://u:p@a/ HTTP/1.1\r\nHost: a\r\n\r\n", "400");
    REQ_IS("GET http:///x HTTP/1.1\r\nHost: a\r\n\r\n", "400");
    REQ_IS("GET http://a:99999/ HTTP/1.1\r\nHost: a\r\n\r\n", "400");
    REQ_IS("GET http://a:/ HTTP/1.1\r\nHost: a\r\n\r\n", "400");
    REQ_IS("GET ftp://a/ HTTP/1.1\r\nHost: a\r\n\r\n", "400");
    REQ_IS("GET ws://a/ HTTP/1.1\r\nHost: a\r\n\r\n", "400");
    REQ_IS("GET a/b HTTP/1.1\r\nHost: a\r\n\r\n", "400");
    subtest("a '#' anywhere in the target: 400");
    REQ_IS("GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n", "400");
    REQ_IS("GET /a?x#b HTTP/1.1\r\nHost: a\r\n\r\n", "400");
    REQ_IS("GET http://a/#x HTTP/1.1\r\nHost: a\r\n\r\n", "400");
    REQ_IS("GET /# HTTP/1.1\r\nHost: a\r\n\r\n", "400");

    subtest("'*' only with OPTIONS, answered locally");
    REQ_IS("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", "0 none target=* host=a local");
    REQ_IS("OPTIONS * HTTP/1.0\r\n\r\n", "0 none target=* host= no-host local");
    REQ_IS("GET * HTTP/1.1\r\nHost: a\r\n\r\n", "400");
    REQ_IS("POST * HTTP/1.1\r\nHost: a\r\n\r\n", "400");
    subtest("OPTIONS with Max-Forwards: 0 is local, N is forwarded as N-1, invalid: 400 (RFC 9110 7.6.2)");
    REQ_IS("OPTIONS /x HTTP/1.1\r\nHost: a\r\nMax-Forwards: 0\r\n\r\n", "0 none target=/x host=a local");
    REQ_IS("OPTIONS /x HTTP/1.1\r\nHost: a\r\nMax-Forwards: 1\r\n\r\n", "0 none target=/x host=a mf=0");
    REQ_IS("OPTIONS /x HTTP/1.1\r\nHost: a\r\nMax-Forwards: 10\r\n\r\n", "0 none target=/x host=a mf=9");
    REQ_IS("OPTIONS /x HTTP/1.1\r\nHost: a\r\nmax-forwards: 007\r\n\r\n", "0 none target=/x host=a mf=6");
    REQ_IS("OPTIONS /x HTTP/1.1\r\nHost: a\r\nMax-Forwards: 99999999999\r\n\r\n",
           "0 none target=/x host=a mf=2147483646");
    REQ_IS("OPTIONS * HTTP/1.1\r\nHost: a\r\nMax-Forwards: 5\r\n\r\n", "0 none target=* host=a local mf=4");
    REQ_IS("OPTIONS /x HTTP/1.1\r\nHost: a\r\nMax-Forwards: x\r\n\r\n", "400");
    REQ_IS("OPTIONS /x HTTP/1.1\r\nHost: a\r\nMax-Forwards: -1\r\n\r\n", "400");
    REQ_IS("OPTIONS /x HTTP/1.1\r\nHost: a\r\nMax-Forwards: 1 2\r\n\r\n", "400");
    REQ_IS("OPTIONS /x HTTP/1.1\r\nHost: a\r\nMax-Forwards:\r\n\r\n", "400");
    REQ_IS("OPTIONS /x HTTP/1.1\r\nHost: a\r\n\r\n", "0 none target=/x host=a");
    /* on other methods Max-Forwards is an ordinary field */
    REQ_IS("GET /x HTTP/1.1\r\nHost: a\r\nMax-Forwards: 0\r\n\r\n", "0 none target=/x host=a");
    REQ_IS("GET /x HTTP/1.1\r\nHost: a\r\nMax-Forwards: x\r\n\r\n", "0 none target=/x host=a");

    subtest("methods: TRACE and CONNECT 405, an unknown method 501");
    REQ_IS("TRACE / HTTP/1.1\r\nHost: a\r\n\r\n", "405");
    REQ_IS("TRACE / HTTP/1.0\r\n\r\n", "405");
    REQ_IS("CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n", "405");
    REQ_IS("FOO / HTTP/1.1\r\nHost: a\r\n\r\n", "501");
    REQ_IS("PATCH /p HTTP/1.1\r\nHost: a\r\n\r\n", "0 none target=/p host=a");
    REQ_IS("DELETE /p HTTP/1.1\r\nHost: a\r\n\r\n", "0 none target=/p host=a");
}

static void test_request_errors(void)
{
    subtest("fc_msg_request_error_status: what llhttp refused");
    REQ_IS("FOO / HTTP/1.1\r\n\r\n", "501");
    REQ_IS("BREW /pot HTTP/1.1\r\nHost: a\r\n\r\n", "501");
    REQ_IS("HELLO\r\n\r\n", "400");
    REQ_IS("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", "400");
    REQ_IS("GET / HTTP/1.2\r\nHost: a\r\n\r\n", "505");
    REQ_IS("GET / HTTP/2.0\r\nHost: a\r\n\r\n", "505");
    REQ_IS("GET / HTTP/3.0\r\nHost: a\r\n\r\n", "505");
    REQ_IS("GET / HTTP/0.9\r\nHost: a\r\n\r\n", "505");
    REQ_IS("GET / HTTP/9.9\r\nHost: a\r\n\r\n", "505");
    REQ_IS("GET /\r\n\r\n", "505"); /* HTTP/0.9-style: no version */
    REQ_IS("GET / XTTP/1.1\r\nHost: a\r\n\r\n", "400");
    {
        static char raw[64 + 16 * (FC_HTTP_MAX_HEADERS + 1)];
        strcpy(raw, "GET / HTTP/1.1\r\nHost: a\r\n");
        for (int i = 0; i < FC_HTTP_MAX_HEADERS - 1; i++) sprintf(raw + strlen(raw), "X-H%d: %d\r\n", i, i);
        size_t at = strlen(raw);
        strcpy(raw + at, "\r\n");
        REQ_IS(raw, "0 none target=/ host=a");
        strcpy(raw + at, "X-Last: y\r\n\r\n");
        REQ_IS(raw, "431");
    }
    /* direct: an error that is not llhttp's errno */
    {
        fc_http_parser_t p;
        size_t c;
        static const char fold[] = "GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n";
        fc_http_parser_init(&p, HTTP_REQUEST);
        p.head = &H;
        is_int(fc_http_execute(&p, fold, sizeof(fold) - 1, &c), FC_HTTP_ERROR);
        is_int(fc_msg_request_error_status(&p, fold, sizeof(fold) - 1), 400);
    }
}

/* The response check for <raw> answering a HEAD request when <head>: "502" when llhttp or the
 * check refuses it, else "0 <framing>[ len=<n>][ chunked]". */
static const char *resp(const char *raw, int head)
{
    size_t used = 0;
    fc_response_view_t v;
    fc_http_parser_init(&P, HTTP_RESPONSE);
    P.head = &H;
    P.skip_body = (uint8_t)head;
    int ev = fc_http_execute(&P, raw, strlen(raw), &used);
    if (ev == FC_HTTP_ERROR) return "502";
    if (ev != FC_HTTP_HEAD_DONE) return "incomplete";
    memset(&v, 0x5a, sizeof(v));
    int rc = fc_msg_check_response(&H, &P.ll, head, &v);
    if (rc != 0) {
        snprintf(out, sizeof(out), "%s", rc == -1 ? (v.why != NULL ? "502" : "502 (no why)") : "(bad rc)");
        return out;
    }
    int n = snprintf(out, sizeof(out), "0 %s", frame_name(v.framing));
    if (v.has_length) n += snprintf(out + n, sizeof(out) - (size_t)n, " len=%llu", (unsigned long long)v.length);
    if (v.chunked) snprintf(out + n, sizeof(out) - (size_t)n, " chunked");
    return out;
}

#define RESP_IS(raw, head, want)                                                                   \
    do {                                                                                           \
        const char *got_ = resp((raw), (head));                                                      \
        is_str(got_, (want));                                                                      \
        if (strcmp(got_, (want)) != 0) fprintf(stderr, "  response: %s\n", (raw));                  \
    } while (0)

static void test_responses(void)
{
    subtest("response framing per status");
    RESP_IS("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n", 0, "0 length len=3");
    RESP_IS("HTTP/1.1 200 OK\r\nContent-Length: 003\r\n\r\n", 0, "0 length len=3");
    RESP_IS("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 0, "0 length len=0");
    RESP_IS("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", 0, "0 chunked chunked");
    RESP_IS("HTTP/1.1 200 OK\r\nTransfer-Encoding:\tChunked\t\r\n\r\n", 0, "0 chunked chunked");
    RESP_IS("HTTP/1.1 200 OK\r\n\r\n", 0, "0 eof");
    RESP_IS("HTTP/1.0 200 OK\r\n\r\n", 0, "0 eof");
    RESP_IS("HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n", 0, "0 length len=2");
    RESP_IS("HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\n", 0, "0 length len=9");
    RESP_IS("HTTP/1.1 500 Oops\r\n\r\n", 0, "0 eof");
    subtest("HEAD and 304: no body, the Content-Length (and chunked) kept for the head");
    RESP_IS("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", 1, "0 none len=10");
    RESP_IS("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", 1, "0 none chunked");
    RESP_IS("HTTP/1.1 200 OK\r\n\r\n", 1, "0 none");
    RESP_IS("HTTP/1.1 304 Not Modified\r\nContent-Length: 7\r\n\r\n", 0, "0 none len=7");
    RESP_IS("HTTP/1.1 304 Not Modified\r\n\r\n", 0, "0 none");
    RESP_IS("HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n", 0, "0 none chunked");
    subtest("1xx and 204: no body and no framing fields");
    RESP_IS("HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n", 0, "0 none");
    RESP_IS("HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n", 0, "0 none");
    RESP_IS("HTTP/1.1 204 No Content\r\n\r\n", 1, "0 none");
    RESP_IS("HTTP/1.1 100 Continue\r\n\r\n", 0, "0 none");
    RESP_IS("HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\n", 0, "0 none");
    RESP_IS("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n", 0, "0 none");

    subtest("502: ambiguous framing");
    RESP_IS("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", 0, "502");
    RESP_IS("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", 0, "502");
    RESP_IS("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", 1, "502");
    RESP_IS("HTTP/1.1 204 No Content\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", 0, "502");
    RESP_IS("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", 0, "502");
    RESP_IS("HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\n", 0, "502");
    RESP_IS("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", 0, "502");
    RESP_IS("HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\n", 0, "502");
    RESP_IS("HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\n", 0, "502");
    RESP_IS("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", 0, "502");
    RESP_IS("HTTP/1.1 200 OK\r\nTransfer-Encoding: identity\r\n\r\n", 0, "502");
    RESP_IS("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", 0, "502");
    RESP_IS("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 0, "502");
    RESP_IS("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 0, "502");
    RESP_IS("HTTP/1.1 200 OK\r\nTransfer-Encoding:\r\n\r\n", 0, "502");
    RESP_IS("HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", 0, "502");
    subtest("502: malformed heads");
    RESP_IS("HTTP/1.1 200 OK\r\nX: a\r\n b\r\nContent-Length: 0\r\n\r\n", 0, "502");
    RESP_IS("HTTP/1.1 200 OK\r\nX: a\rb\r\nContent-Length: 0\r\n\r\n", 0, "502");
    RESP_IS("HTTP/1.1 200 OK\r\nX-A : 1\r\nContent-Length: 0\r\n\r\n", 0, "502");
    RESP_IS("HTTP/1.1 200 OK\r\nNoColon\r\nContent-Length: 0\r\n\r\n", 0, "502");
    RESP_IS("HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n", 0, "502");
    RESP_IS("SSH-2.0-OpenSSH_9.6\r\n\r\n", 0, "502");
    RESP_IS("HTTP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n", 0, "502");
    {
        static const char raw[] = "HTTP/1.1 200 OK\r\nX: a\0b\r\n\r\n";
        size_t used;
        fc_http_parser_init(&P, HTTP_RESPONSE);
        P.head = &H;
        is_int(fc_http_execute(&P, raw, sizeof(raw) - 1, &used), FC_HTTP_ERROR);
    }
    {
        static char raw[64 + 16 * (FC_HTTP_MAX_HEADERS + 1)];
        strcpy(raw, "HTTP/1.1 200 OK\r\n");
        for (int i = 0; i < FC_HTTP_MAX_HEADERS; i++) sprintf(raw + strlen(raw), "X-H%d: %d\r\n", i, i);
        size_t at = strlen(raw);
        strcpy(raw + at, "\r\n");
        RESP_IS(raw, 0, "0 eof");
        strcpy(raw + at, "X-Last: y\r\n\r\n");
        RESP_IS(raw, 0, "502");
    }
    subtest("the view says why a response is refused");
    {
        fc_response_view_t v;
        size_t used;
        static const char raw[] = "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n";
        fc_http_parser_init(&P, HTTP_RESPONSE);
        P.head = &H;
        is_int(fc_http_execute(&P, raw, sizeof(raw) - 1, &used), FC_HTTP_HEAD_DONE);
        is_int(fc_msg_check_response(&H, &P.ll, 0, &v), -1);
        ok(v.why != NULL && v.why[0] != '\0');
    }
}

static void test_authority(void)
{
    subtest("fc_msg_valid_authority: valid");
    static const char *good[] = {"a", "a.b:80", "[::1]:8080", "1.2.3.4", "", "xn--d1acj3b", "a%41",
                                 "[::1]", "[2001:db8::1]:443", "a-b_c~d", "a:0", "a:65535", "a!$&'()*+,;=b",
                                 "%41", "A.EXAMPLE", "a:00080", "1.2.3.4:1"};
    for (size_t i = 0; i < FC_ARRAY_LEN(good); i++) {
        int r = fc_msg_valid_authority((fc_slice_t){good[i], strlen(good[i])});
        ok(r == 1);
        if (r != 1) fprintf(stderr, "  should be valid: \"%s\"\n", good[i]);
    }
    subtest("fc_msg_valid_authority: invalid");
    static const char *bad[] = {"a@b", "a b", "a:1:2", "a:", ":80", "[::1", "a:99999", "a/b", "[v1.x]",
                                "a:65536", "[]", "[::1]x", "[::1]:", "[::1]:99999", "[1.2.3.4]", "a%4",
                                "a%", "a%zz", "a?b", "a#b", "a\tb", "a\"b", "a:-1", "a:+1", "a:1 ", "[::1]]",
                                "a:123456", "a[b]", "a\\b", "a<b"};
    for (size_t i = 0; i < FC_ARRAY_LEN(bad); i++) {
        int r = fc_msg_valid_authority((fc_slice_t){bad[i], strlen(bad[i])});
        ok(r == 0);
        if (r != 0) fprintf(stderr, "  should be invalid: \"%s\"\n", bad[i]);
    }
    /* the value ends at the slice's end, not at a NUL; a NUL inside is invalid */
    ok(fc_msg_valid_authority((fc_slice_t){"a:80/x", 4}));
    ok(!fc_msg_valid_authority((fc_slice_t){"a:8", 2}));
    ok(fc_msg_valid_authority((fc_slice_t){"a%41zz", 4}));
    ok(!fc_msg_valid_authority((fc_slice_t){"a%41", 3}));
    ok(!fc_msg_valid_authority((fc_slice_t){"a\0b", 3}));
    ok(fc_msg_valid_authority((fc_slice_t){NULL, 0}));
}

void test_message(void)
{
    test_request_framing();
    test_request_fields();
    test_request_target();
    test_request_errors();
    test_responses();
    test_authority();
}
