/* test_http.c: the llhttp glue, heads only (bodies are body.c's: test_body.c). Each message is fed
 * whole, in 7-byte pieces and byte by byte from one buffer (spans then arrive split across calls);
 * the three runs must give the same trace. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "fulcrum/common.h"
#include "fulcrum/http.h"
#include "harness.h"

void test_http(void);

#define S(lit) ((fc_slice_t){(lit), sizeof(lit) - 1})

static char tr[8192];

static void add(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void add(const char *fmt, ...)
{
    size_t used = strlen(tr);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tr + used, sizeof(tr) - used, fmt, ap);
    va_end(ap);
}

static void add_head(const fc_http_head_t *h, int response)
{
    if (response) add("%d %.*s", h->status, (int)h->reason.n, h->reason.p);
    else add("%.*s %.*s", (int)h->method.n, h->method.p, (int)h->url.n, h->url.p);
    add(" %d.%d", h->major, h->minor);
    for (size_t i = 0; i < h->nheaders; i++)
        add(" %.*s=%.*s", (int)h->headers[i].name.n, h->headers[i].name.p, (int)h->headers[i].value.n,
            h->headers[i].value.p);
}

static fc_http_parser_t P;
static fc_http_head_t H;

/* A fresh parser P collecting into H. */
static fc_http_parser_t *parser(llhttp_type_t type)
{
    fc_http_parser_init(&P, type);
    P.head = &H;
    return &P;
}

/* A fresh parser fed all of <in> at once; returns the event, *consumed the bytes used. */
static int execute_all(llhttp_type_t type, const char *in, size_t *consumed)
{
    return fc_http_execute(parser(type), in, strlen(in), consumed);
}

/* Feeds <in> from *<off> in pieces of at most <step> bytes until an event or the end. */
static int feed(fc_http_parser_t *p, const char *in, size_t len, size_t *off, size_t step)
{
    int ev = FC_HTTP_NEED_MORE;
    size_t c;
    while (ev == FC_HTTP_NEED_MORE && *off < len) {
        ev = fc_http_execute(p, in + *off, FC_MIN(step, len - *off), &c);
        *off += c;
    }
    return ev;
}

/* Feeds <buf> in pieces of at most <step> bytes the way a connection does: after an event the
 * next call starts at the first unconsumed byte. The trace lists "H<offset> <head>;" per head,
 * then "M<offset>;" when the message ends with its head (no body: llhttp says so on a call with no
 * bytes, as pump_response's first body read has none), or "B<offset>" and the end of the trace
 * when a body follows (llhttp never reads bodies: src/body.c does, test_body.c tests it); then "."
 * (all consumed) or "E<offset> <reason>". */
static const char *trace(llhttp_type_t type, const char *buf, size_t len, size_t step, int skip_body)
{
    fc_http_parser_t *p = parser(type);
    p->skip_body = (uint8_t)skip_body;
    tr[0] = '\0';
    size_t off = 0;
    for (size_t guard = 0; guard < 4 * len + 16; guard++) {
        size_t n = len - off < step ? len - off : step, c = 0;
        int ev = fc_http_execute(p, buf + off, n, &c);
        off += c;
        if (ev == FC_HTTP_HEAD_DONE) {
            add("H%zu ", off);
            add_head(&H, type == HTTP_RESPONSE);
            add(";");
            p->head = NULL;
            size_t c0 = 1;
            if (fc_http_execute(p, buf + off, 0, &c0) != FC_HTTP_MSG_DONE || c0 != 0) {
                add("B%zu", off);
                return tr;
            }
            add("M%zu;", off);
            p->head = &H;
        } else if (ev == FC_HTTP_MSG_DONE) {
            add("(unexpected M%zu)", off);
            p->head = &H;
        } else if (ev == FC_HTTP_ERROR) {
            add("E%zu %s", off, fc_http_error(p));
            return tr;
        } else if (off == len) {
            add(".");
            return tr;
        }
    }
    add("(no progress)");
    return tr;
}

/* The same trace whole, in 7-byte pieces and byte by byte. */
#define TRACE_IS(type, str, skip, want)                                                            \
    do {                                                                                           \
        static const char in_[] = str;                                                             \
        is_str(trace((type), in_, sizeof(in_) - 1, SIZE_MAX, (skip)), (want));                    \
        is_str(trace((type), in_, sizeof(in_) - 1, 7, (skip)), (want));                           \
        is_str(trace((type), in_, sizeof(in_) - 1, 1, (skip)), (want));                           \
    } while (0)
#define REQ_IS(str, want) TRACE_IS(HTTP_REQUEST, str, 0, want)
#define RESP_IS(str, want) TRACE_IS(HTTP_RESPONSE, str, 0, want)

/* 1 when <str> fails (whole and byte by byte) with a reason that contains <why>. */
static int fails(llhttp_type_t type, const char *str, const char *why)
{
    static const size_t steps[] = {1, 7, SIZE_MAX};
    for (size_t i = 0; i < FC_ARRAY_LEN(steps); i++) {
        const char *t = trace(type, str, strlen(str), steps[i], 0);
        const char *e = strstr(t, "E");
        while (e != NULL && e != t && e[-1] != ';') e = strstr(e + 1, "E");
        if (e == NULL || strstr(e, why) == NULL) return 0;
    }
    return 1;
}

static void test_requests(void)
{
    subtest("request head: method, target, version, headers; then the bodiless message");
    REQ_IS("GET /a?x=1 HTTP/1.1\r\nHost: example.com\r\nX-Multi: a\r\nX-Multi:  b\r\n\r\n",
           "H67 GET /a?x=1 1.1 Host=example.com X-Multi=a X-Multi=b;M67;.");
    REQ_IS("OPTIONS * HTTP/1.0\r\n\r\n", "H22 OPTIONS * 1.0;M22;.");

    subtest("header values: trailing whitespace trimmed, inner kept (http.h: fc_header_t.value)");
    REQ_IS("GET / HTTP/1.1\r\nHost: h \r\nX-A: a b\t \r\n\r\n", "H40 GET / 1.1 Host=h X-A=a b;M40;.");

    subtest("an empty header value keeps its header");
    REQ_IS("GET / HTTP/1.1\r\nX-Empty:\r\nHost: h\r\n\r\n", "H37 GET / 1.1 X-Empty= Host=h;M37;.");
    /* llhttp reports an empty value as a zero-length span at the start of the next line: that
     * line feed is the field's own end, not an obs-fold */
    REQ_IS("GET / HTTP/1.1\r\nX-Empty: \t\r\nHost: h\r\n\r\n", "H39 GET / 1.1 X-Empty= Host=h;M39;.");
    REQ_IS("GET / HTTP/1.1\r\nHost: h\r\nX-Empty:\r\n\r\n", "H37 GET / 1.1 Host=h X-Empty=;M37;.");
    RESP_IS("HTTP/1.1 204 No Content\r\nX-Empty:\r\n\r\n", "H37 204 No Content 1.1 X-Empty=;M37;.");

    subtest("slices point into the caller's buffer, also when fed byte by byte");
    {
        static const char in[] = "PUT /long/path HTTP/1.1\r\nX-Name: some value\r\n\r\n";
        fc_http_parser_t *p = parser(HTTP_REQUEST);
        fc_http_head_t *h = &H;
        size_t off = 0, c = 0;
        is_int(feed(p, in, sizeof(in) - 1, &off, 1), FC_HTTP_HEAD_DONE);
        is_int(off, sizeof(in) - 1);
        ok(h->method.p == in && h->method.n == 3);
        ok(h->url.p == in + 4 && h->url.n == 10);
        is_int(h->nheaders, 1);
        ok(h->headers[0].name.p == in + 25 && h->headers[0].name.n == 6);
        ok(h->headers[0].value.p == in + 33 && h->headers[0].value.n == 10);
        is_int(fc_http_execute(p, in + off, 0, &c), FC_HTTP_MSG_DONE);
        is_int(c, 0);
    }

    subtest("pipelined messages come one at a time; a head with a body stops at its end");
    REQ_IS("GET /1 HTTP/1.1\r\n\r\n"
           "GET /2 HTTP/1.1\r\nContent-Length: 0\r\n\r\n"
           "GET /3 HTTP/1.1\r\nHost: h\r\n\r\n"
           "POST /up HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello",
           "H19 GET /1 1.1;M19;"
           "H57 GET /2 1.1 Content-Length=0;M57;"
           "H85 GET /3 1.1 Host=h;M85;"
           "H125 POST /up 1.1 Content-Length=5;B125");

    subtest("a head whose body has not arrived yet");
    REQ_IS("POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc", "H39 POST / 1.1 Content-Length=10;B39");

    subtest("chunked heads: the body (extensions, trailers) is not llhttp's to read");
    REQ_IS("POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
           "5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Trailer: t\r\nX-Other: u\r\n\r\n"
           "GET /n HTTP/1.1\r\n\r\n",
           "H48 POST /c 1.1 Transfer-Encoding=chunked;B48");
    REQ_IS("POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
           "H48 POST /c 1.1 Transfer-Encoding=chunked;B48");

    subtest("an upgrade request is parsed as an ordinary message");
    REQ_IS("GET /ws HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\nGET /2 HTTP/1.1\r\n\r\n",
           "H61 GET /ws 1.1 Connection=Upgrade Upgrade=websocket;M61;H80 GET /2 1.1;M80;.");

    subtest("ambiguous framing and malformed input are rejected");
    ok(fails(HTTP_REQUEST, "POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\nhello",
             ""));
    ok(fails(HTTP_REQUEST, "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\nhello",
             ""));
    ok(fails(HTTP_REQUEST, "POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", ""));
    ok(fails(HTTP_REQUEST, "POST / HTTP/1.1\r\nContent-Length: 5, 6\r\n\r\nhello!", ""));
    /* (bad chunk lines are body.c's: test_body.c) strict parsing: a header name must be a token */
    ok(fails(HTTP_REQUEST, "GET / HTTP/1.1\r\nBad Name: x\r\n\r\n", ""));
    ok(fails(HTTP_REQUEST, "GET / HTTP/1.1\r\nX-A : x\r\n\r\n", ""));
    ok(fails(HTTP_REQUEST, "GET / HTTP/1.1\r\nX: a\001b\r\n\r\n", ""));
    ok(fails(HTTP_REQUEST, "GET / HTTP/9.9\r\n\r\n", ""));
    ok(!fails(HTTP_REQUEST, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", ""));

    subtest("obs-fold: a field line starting with SP or HTAB is refused (FC_HTTP_ERR_OBS_FOLD)");
    ok(fails(HTTP_REQUEST, "GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n", "obs-fold"));
    ok(fails(HTTP_REQUEST, "GET / HTTP/1.1\r\nX: a\r\n\tb\r\nHost: h\r\n\r\n", "obs-fold"));
    ok(fails(HTTP_REQUEST, "GET / HTTP/1.1\r\nX:\r\n b\r\n\r\n", "obs-fold"));
    ok(fails(HTTP_REQUEST, "GET / HTTP/1.1\r\nX: a\r\n  b c\r\n\r\n", "obs-fold"));
    /* a fold whose continuation is only whitespace, or that follows an empty value */
    ok(fails(HTTP_REQUEST, "GET / HTTP/1.1\r\nX: a\r\n \r\nHost: h\r\n\r\n", "obs-fold"));
    ok(fails(HTTP_REQUEST, "GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n\t\t\r\n\r\n", "obs-fold"));
    {
        static const char in[] = "GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n";
        size_t c;
        is_int(execute_all(HTTP_REQUEST, in, &c), FC_HTTP_ERROR);
        is_int(P.user_error, FC_HTTP_ERR_OBS_FOLD);
        ok(strstr(fc_http_error(&P), "obs-fold") != NULL);
    }
    /* whitespace inside a value is not a fold */
    REQ_IS("GET / HTTP/1.1\r\nX: a \t b\r\n\r\n", "H28 GET / 1.1 X=a \t b;M28;.");
    /* a line that starts with whitespace before any field is an error too */
    ok(fails(HTTP_REQUEST, "GET / HTTP/1.1\r\n X: a\r\n\r\n", ""));

    subtest("header count: FC_HTTP_MAX_HEADERS is accepted, one more is an error");
    {
        static char in[64 + 16 * (FC_HTTP_MAX_HEADERS + 1)];
        strcpy(in, "GET / HTTP/1.1\r\n");
        for (int i = 0; i < FC_HTTP_MAX_HEADERS; i++) sprintf(in + strlen(in), "X-H%d: %d\r\n", i, i);
        size_t at = strlen(in);
        strcpy(in + at, "\r\n");
        const char *t = trace(HTTP_REQUEST, in, strlen(in), SIZE_MAX, 0);
        char last[32];
        snprintf(last, sizeof(last), " X-H%d=%d;M", FC_HTTP_MAX_HEADERS - 1, FC_HTTP_MAX_HEADERS - 1);
        ok(strncmp(t, "H", 1) == 0 && strstr(t, last) != NULL);
        strcpy(in + at, "X-Last: y\r\n\r\n");
        ok(fails(HTTP_REQUEST, in, "too many headers"));
        size_t c;
        is_int(execute_all(HTTP_REQUEST, in, &c), FC_HTTP_ERROR);
        is_str(fc_http_error(&P), "too many headers");
        is_int(H.nheaders, FC_HTTP_MAX_HEADERS);
    }
}

static void test_responses(void)
{
    subtest("response head: status, reason, version, body");
    RESP_IS("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc", "H38 200 OK 1.1 Content-Length=3;B38");
    RESP_IS("HTTP/1.0 404 Not Found Here\r\nContent-Length: 0\r\n\r\n",
            "H50 404 Not Found Here 1.0 Content-Length=0;M50;.");

    subtest("1xx heads come before the final one, with no body");
    RESP_IS("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\n"
            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi",
            "H25 100 Continue 1.1;M25;H69 103 Early Hints 1.1 Link=</s.css>;M69;"
            "H107 200 OK 1.1 Content-Length=2;B107");

    subtest("a response to HEAD has no body whatever its headers say");
    TRACE_IS(HTTP_RESPONSE,
             "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", 1,
             "H39 200 OK 1.1 Content-Length=10;M39;H86 200 OK 1.1 Transfer-Encoding=chunked;M86;.");

    subtest("204 and 304 with a Content-Length have no body");
    RESP_IS("HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n"
            "HTTP/1.1 304 Not Modified\r\nContent-Length: 7\r\n\r\n"
            "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx",
            "H46 204 No Content 1.1 Content-Length=5;M46;H94 304 Not Modified 1.1 Content-Length=7;M94;"
            "H132 200 OK 1.1 Content-Length=1;B132");

    subtest("chunked and close-delimited responses: a body follows the head");
    RESP_IS("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-T: 1\r\n\r\n",
            "H47 200 OK 1.1 Transfer-Encoding=chunked;B47");
    RESP_IS("HTTP/1.1 200 OK\r\nServer: s\r\n\r\nsome body", "H30 200 OK 1.1 Server=s;B30");
    RESP_IS("HTTP/1.0 200 OK\r\n\r\n", "H19 200 OK 1.0;B19");

    subtest("obs-fold in a response is refused (FC_HTTP_ERR_OBS_FOLD)");
    ok(fails(HTTP_RESPONSE, "HTTP/1.1 200 OK\r\nX: a\r\n b\r\nContent-Length: 0\r\n\r\n", "obs-fold"));
    ok(fails(HTTP_RESPONSE, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX: a\r\n\tb\r\n\r\n", "obs-fold"));
    {
        static const char in[] = "HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n";
        size_t c;
        is_int(execute_all(HTTP_RESPONSE, in, &c), FC_HTTP_ERROR);
        is_int(P.user_error, FC_HTTP_ERR_OBS_FOLD);
        ok(strstr(fc_http_error(&P), "obs-fold") != NULL);
    }

    subtest("malformed response heads are errors");
    ok(fails(HTTP_RESPONSE, "HTTP/1.1 2000 OK\r\n\r\n", ""));
    ok(fails(HTTP_RESPONSE, "HTTP/1.1 200 OK\r\nX-A : 1\r\n\r\n", ""));
    ok(fails(HTTP_RESPONSE, "HTTP/1.1 200 OK\r\nNoColon\r\n\r\n", ""));
    ok(fails(HTTP_RESPONSE, "HTTP/1.1 200 OK\r\nX: a\rb\r\n\r\n", ""));
    ok(fails(HTTP_RESPONSE, "SSH-2.0-OpenSSH\r\n\r\n", ""));
}

static void test_helpers(void)
{
    subtest("fc_slice_ieq");
    ok(FC_SLICE_IEQ(S("Content-LENGTH"), "content-length"));
    ok(!FC_SLICE_IEQ(S("Content-Length2"), "content-length"));
    ok(!FC_SLICE_IEQ(S("Content-Lengt"), "content-length"));
    ok(FC_SLICE_IEQ(S(""), ""));

    subtest("fc_http_find");
    {
        static const char in[] = "GET / HTTP/1.1\r\nHost: a\r\nX-Dup: 1\r\nx-dup: 2\r\n\r\n";
        size_t c;
        is_int(execute_all(HTTP_REQUEST, in, &c), FC_HTTP_HEAD_DONE);
        ok(fc_http_find(&H, "X-DUP", 5) == &H.headers[1]);
        ok(fc_http_find(&H, "host", 4) == &H.headers[0]);
        ok(fc_http_find(&H, "hos", 3) == NULL);
        ok(fc_http_find(&H, "x-missing", 9) == NULL);
    }

    subtest("fc_http_has_token");
    ok(fc_http_has_token(S("close"), "close", 5));
    ok(fc_http_has_token(S("keep-alive, Upgrade"), "upgrade", 7));
    ok(fc_http_has_token(S(" ,, x ,\tKeep-Alive\t, y"), "keep-alive", 10));
    ok(!fc_http_has_token(S("closed, xclose"), "close", 5));
    ok(!fc_http_has_token(S("keep-alive"), "keep", 4));
    ok(!fc_http_has_token(S(""), "close", 5));
    ok(!fc_http_has_token(S(", ,"), "close", 5));

    subtest("fc_http_keepalive_timeout");
    is_int(fc_http_keepalive_timeout(S("timeout=5, max=100")), 5);
    is_int(fc_http_keepalive_timeout(S("max=100, timeout=30")), 30);
    is_int(fc_http_keepalive_timeout(S("Timeout=7")), 7);
    is_int(fc_http_keepalive_timeout(S("timeout=0")), 0);
    is_int(fc_http_keepalive_timeout(S("max=5")), -1);
    is_int(fc_http_keepalive_timeout(S("")), -1);
    is_int(fc_http_keepalive_timeout(S("timeout=")), -1);
    is_int(fc_http_keepalive_timeout(S("timeout=abc")), -1);
    is_int(fc_http_keepalive_timeout(S("timeout=-3")), -1);
    is_int(fc_http_keepalive_timeout(S("xtimeout=5")), -1);
    is_int(fc_http_keepalive_timeout(S("timeout")), -1);
    ok(fc_http_keepalive_timeout(S("timeout=99999999999999999999999")) > 0);
    {
        /* the digits end at the slice's end, not at a NUL */
        static const char v[] = "timeout=12345";
        is_int(fc_http_keepalive_timeout((fc_slice_t){v, 10}), 12);
    }

    subtest("fc_http_is_token");
    ok(fc_http_is_token(S("X-Forwarded-For")));
    ok(fc_http_is_token(S("!#$%&'*+-.^_`|~09azAZ")));
    ok(!fc_http_is_token(S("")));
    ok(!fc_http_is_token(S("Bad Name")));
    ok(!fc_http_is_token(S("a:b")));
    ok(!fc_http_is_token(S("a\"b")));
    ok(!fc_http_is_token(S("caf\xc3\xa9")));
    ok(!fc_http_is_token((fc_slice_t){"a\0b", 3}));
}

void test_http(void)
{
    test_requests();
    test_responses();
    test_helpers();
}
