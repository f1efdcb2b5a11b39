/* test_headers.c: the heads fulcrum sends, built from heads parsed out of real bytes and the views
 * the head checks (message.c) make of them, as fc_exchange_start and pump_response do. */
#include <stdio.h>
#include <string.h>

#include "fulcrum/headers.h"
#include "fulcrum/message.h"
#include "harness.h"

void test_headers(void);

#define S(lit) ((fc_slice_t){(lit), sizeof(lit) - 1})

static fc_http_head_t head;
static fc_http_parser_t parser;
static fc_buf_t out;

/* via: off, underscores dropped: the legacy expectations need no Via line */
static const fc_head_opts_t NOVIA = {.via = {NULL, 0}};
/* the defaults of the config: via: fulcrum, underscores_in_headers: false */
static const fc_head_opts_t DEFAULTS = {.via = {"fulcrum", 7}};
static const fc_head_opts_t UNDERSCORES = {.via = {"fulcrum", 7}, .allow_underscores = 1};

/* Parses the head in <bytes> into `head` (slices borrow from <bytes>); HEAD responses when <head_req>. */
static int parse_x(llhttp_type_t type, const char *bytes, int head_req)
{
    size_t c;
    fc_http_parser_init(&parser, type);
    parser.head = &head;
    parser.skip_body = (uint8_t)head_req;
    return fc_http_execute(&parser, bytes, strlen(bytes), &c);
}

static int parse(llhttp_type_t type, const char *bytes) { return parse_x(type, bytes, 0); }

/* Builds the request head for a server from <bytes> with the view fc_msg_check_request makes of
 * it; the result is NUL-terminated in `out`. */
static const char *request_o(const char *bytes, const char *ip, const char *host, const fc_head_opts_t *o)
{
    static char err[64];
    fc_request_view_t v;
    out.len = 0;
    if (parse(HTTP_REQUEST, bytes) != FC_HTTP_HEAD_DONE) return "(parse error)";
    int st = fc_msg_check_request(&head, &parser.ll, &v);
    if (st != 0) {
        snprintf(err, sizeof(err), "(refused %d)", st);
        return err;
    }
    if (fc_headers_build_request(&out, &head, &v, ip, host, o) != 0) return "(build error)";
    fc_buf_append(&out, "", 1);
    return out.base;
}

static const char *request(const char *bytes, const char *ip, const char *host)
{
    return request_o(bytes, ip, host, &NOVIA);
}

/* The same with a view given by the test. */
static const char *request_view(const char *bytes, const fc_request_view_t *v, const fc_head_opts_t *o)
{
    out.len = 0;
    if (parse(HTTP_REQUEST, bytes) != FC_HTTP_HEAD_DONE) return "(parse error)";
    if (fc_headers_build_request(&out, &head, v, "192.0.2.1", "fallback", o) != 0) return "(build error)";
    fc_buf_append(&out, "", 1);
    return out.base;
}

/* Builds the response head for a client from <bytes> with the view fc_msg_check_response makes of
 * it (a 1xx: no view, as pump_response does), for a HEAD request when <head_req>. */
static const char *response_x(const char *bytes, int head_req, int flags, const char *date, const fc_head_opts_t *o)
{
    fc_response_view_t v;
    out.len = 0;
    if (parse_x(HTTP_RESPONSE, bytes, head_req) != FC_HTTP_HEAD_DONE) return "(parse error)";
    if (fc_msg_check_response(&head, &parser.ll, head_req, &v) != 0) return "(refused)";
    if (fc_headers_build_response(&out, &head, head.status < 200 ? NULL : &v, flags, date, o) != 0)
        return "(build error)";
    fc_buf_append(&out, "", 1);
    return out.base;
}

static const char *response(const char *bytes, int flags) { return response_x(bytes, 0, flags, NULL, &NOVIA); }

#define XF(ip) "X-Forwarded-For: " ip "\r\nX-Real-IP: " ip "\r\nX-Forwarded-Proto: http\r\n"
#define XF1 XF("192.0.2.1")

static void test_hop(void)
{
    subtest("hop-by-hop: the fixed set and the names a Connection header lists");
    ok(parse(HTTP_REQUEST, "GET / HTTP/1.1\r\nConnection: keep-alive, X-Secret\r\nconnection: x-other\r\n"
                           "X-Secret: 1\r\n\r\n") == FC_HTTP_HEAD_DONE);
    static const char *hop[] = {"Connection", "KEEP-ALIVE", "Proxy-Connection", "te", "Trailer",
                                "Upgrade", "x-secret", "X-SECRET", "X-Other"};
    for (size_t i = 0; i < sizeof(hop) / sizeof(hop[0]); i++)
        ok(fc_headers_is_hop(&head, (fc_slice_t){hop[i], strlen(hop[i])}));
    static const char *kept[] = {"Transfer-Encoding", "Content-Length", "Host", "X-Secre", "X-Secret2",
                                 "Trailers", "Keep"};
    for (size_t i = 0; i < sizeof(kept) / sizeof(kept[0]); i++)
        ok(!fc_headers_is_hop(&head, (fc_slice_t){kept[i], strlen(kept[i])}));

    subtest("hop-by-hop: Connection options naming Content-Length, Transfer-Encoding or Host are ignored");
    ok(parse(HTTP_REQUEST, "GET / HTTP/1.1\r\nConnection: Content-Length, transfer-encoding, HOST, X-Foo\r\n"
                           "Host: h\r\n\r\n") == FC_HTTP_HEAD_DONE);
    ok(!fc_headers_is_hop(&head, S("Content-Length")));
    ok(!fc_headers_is_hop(&head, S("content-length")));
    ok(!fc_headers_is_hop(&head, S("Transfer-Encoding")));
    ok(!fc_headers_is_hop(&head, S("Host")));
    ok(!fc_headers_is_hop(&head, S("host")));
    ok(fc_headers_is_hop(&head, S("X-Foo")));
    ok(fc_headers_is_hop(&head, S("Connection")));
}

static void test_request(void)
{
    subtest("request: HTTP/1.1 line with the origin-form target, hop-by-hop and forwarding headers replaced");
    is_str(request("GET http://a.example/x?y=1 HTTP/1.0\r\n"
                   "Host: a.example\r\n"
                   "Connection: keep-alive, X-Drop\r\n"
                   "Keep-Alive: timeout=5\r\n"
                   "X-Drop: 1\r\n"
                   "X-Forwarded-For: 1.1.1.1\r\n"
                   "X-Real-IP: 6.6.6.6\r\n"
                   "Accept: */*\r\n"
                   "x-forwarded-for: 2.2.2.2, 3.3.3.3\r\n"
                   "X-Forwarded-Proto: https\r\n"
                   "x-real-ip: 7.7.7.7\r\n"
                   "TE: trailers\r\n"
                   "Trailer: X-T\r\n"
                   "Upgrade: h2c\r\n"
                   "Proxy-Connection: keep-alive\r\n"
                   "Cookie: a=1\r\n"
                   "\r\n",
                   "10.0.0.9", "fallback"),
           "GET /x?y=1 HTTP/1.1\r\n"
           "Accept: */*\r\n"
           "Cookie: a=1\r\n"
           "Host: a.example\r\n"
           "X-Forwarded-For: 1.1.1.1, 2.2.2.2, 3.3.3.3, 10.0.0.9\r\n"
           "X-Real-IP: 10.0.0.9\r\n"
           "X-Forwarded-Proto: http\r\n"
           "\r\n");

    subtest("request: Host fallback when the request has none; empty X-Forwarded-For ignored");
    is_str(request("GET / HTTP/1.0\r\nX-Forwarded-For:\r\n\r\n", "::1", "backend:8080"),
           "GET / HTTP/1.1\r\n"
           "Host: backend:8080\r\n"
           "X-Forwarded-For: ::1\r\n"
           "X-Real-IP: ::1\r\n"
           "X-Forwarded-Proto: http\r\n"
           "\r\n");
    is_str(request("GET / HTTP/1.0\r\nX-Forwarded-For: \r\nAccept: a\r\n\r\n", "::1", "backend:8080"),
           "GET / HTTP/1.1\r\nAccept: a\r\nHost: backend:8080\r\n" XF("::1") "\r\n");
    is_str(request("GET / HTTP/1.0\r\nAccept: a\r\n\r\n", "::1", "backend:8080"),
           "GET / HTTP/1.1\r\nAccept: a\r\nHost: backend:8080\r\n" XF("::1") "\r\n");

    subtest("request: framing rebuilt from the view, names and values of the other headers as sent");
    is_str(request("POST /up HTTP/1.1\r\nhost: h\r\nTransfer-Encoding: chunked\r\nX-Case: MiXeD\r\n\r\n",
                   "192.0.2.1", "fallback"),
           "POST /up HTTP/1.1\r\n"
           "host: h\r\n"
           "X-Case: MiXeD\r\n"
           "Transfer-Encoding: chunked\r\n"
           "X-Forwarded-For: 192.0.2.1\r\n"
           "X-Real-IP: 192.0.2.1\r\n"
           "X-Forwarded-Proto: http\r\n"
           "\r\n");
    is_str(request("PUT /p HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\n", "192.0.2.1", "f"),
           "PUT /p HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n"
           "X-Forwarded-For: 192.0.2.1\r\nX-Real-IP: 192.0.2.1\r\nX-Forwarded-Proto: http\r\n\r\n");

    subtest("request: Content-Length normalised, the client's framing fields never forwarded");
    is_str(request("PUT /p HTTP/1.1\r\nHost: h\r\nContent-Length: 005\r\nX-A: 1\r\n\r\n", "192.0.2.1", "f"),
           "PUT /p HTTP/1.1\r\nHost: h\r\nX-A: 1\r\nContent-Length: 5\r\n" XF1 "\r\n");
    is_str(request("PUT /p HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n", "192.0.2.1", "f"),
           "PUT /p HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n" XF1 "\r\n");
    is_str(request("PUT /p HTTP/1.1\r\nHost: h\r\ncontent-length: 000\r\n\r\n", "192.0.2.1", "f"),
           "PUT /p HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n" XF1 "\r\n");
    is_str(request("POST /c HTTP/1.1\r\nHost: h\r\ntransfer-encoding:\tChunked\t\r\n\r\n", "192.0.2.1", "f"),
           "POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n" XF1 "\r\n");
    is_str(request("GET / HTTP/1.1\r\nHost: h\r\n\r\n", "192.0.2.1", "f"), "GET / HTTP/1.1\r\nHost: h\r\n" XF1 "\r\n");
    {
        /* the view decides, whatever the head says */
        fc_request_view_t v = {.target = S("/t"), .framing = FC_FRAME_CHUNKED, .has_host = 1, .max_forwards = -1};
        is_str(request_view("POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\n", &v, &NOVIA),
               "POST /t HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n" XF1 "\r\n");
        v.framing = FC_FRAME_LENGTH;
        v.length = 18446744073709551615ull;
        is_str(request_view("POST /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n", &v, &NOVIA),
               "POST /t HTTP/1.1\r\nHost: h\r\nContent-Length: 18446744073709551615\r\n" XF1 "\r\n");
        v.framing = FC_FRAME_NONE;
        is_str(request_view("POST /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", &v, &NOVIA),
               "(parse error)"); /* llhttp refuses TE + CL itself */
    }

    subtest("request: Connection: Content-Length / Transfer-Encoding / Host removes none of them");
    is_str(request("POST / HTTP/1.1\r\nHost: h\r\nConnection: Content-Length, Host, Transfer-Encoding, X-Foo\r\n"
                   "Content-Length: 2\r\nX-Foo: 1\r\nX-Bar: 2\r\n\r\n",
                   "192.0.2.1", "f"),
           "POST / HTTP/1.1\r\nHost: h\r\nX-Bar: 2\r\nContent-Length: 2\r\n" XF1 "\r\n");
    is_str(request("POST / HTTP/1.1\r\nHost: h\r\nConnection: transfer-encoding\r\nTransfer-Encoding: chunked\r\n\r\n",
                   "192.0.2.1", "f"),
           "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n" XF1 "\r\n");

    subtest("request: names with '_' are dropped unless underscores_in_headers");
    static const char under[] = "GET / HTTP/1.1\r\nHost: h\r\nX_Under: 1\r\nContent_Length: 5\r\nX-Ok: 2\r\n"
                                "_: 3\r\nx-a_: 4\r\n\r\n";
    is_str(request_o(under, "192.0.2.1", "f", &DEFAULTS),
           "GET / HTTP/1.1\r\nHost: h\r\nX-Ok: 2\r\n" XF1 "Via: 1.1 fulcrum\r\n\r\n");
    is_str(request_o(under, "192.0.2.1", "f", &UNDERSCORES),
           "GET / HTTP/1.1\r\nHost: h\r\nX_Under: 1\r\nContent_Length: 5\r\nX-Ok: 2\r\n_: 3\r\nx-a_: 4\r\n" XF1
           "Via: 1.1 fulcrum\r\n\r\n");
    is_str(request_o(under, "192.0.2.1", "f", NULL), "GET / HTTP/1.1\r\nHost: h\r\nX-Ok: 2\r\n" XF1 "\r\n");
    /* a dropped name changes nothing else: no framing from Content_Length */
    is_str(request_o("POST / HTTP/1.1\r\nHost: h\r\nContent_Length: 5\r\nContent-Length: 1\r\n\r\n", "192.0.2.1", "f",
                     &NOVIA),
           "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\n" XF1 "\r\n");

    subtest("request: an absolute-form target's authority replaces the client's Host");
    is_str(request("GET http://auth:81/p?q HTTP/1.1\r\nHost: other\r\nAccept: x\r\n\r\n", "192.0.2.1", "f"),
           "GET /p?q HTTP/1.1\r\nAccept: x\r\nHost: auth:81\r\n" XF1 "\r\n");
    is_str(request("GET HTTPS://[::1]:8443 HTTP/1.1\r\nhost: other\r\n\r\n", "192.0.2.1", "f"),
           "GET / HTTP/1.1\r\nHost: [::1]:8443\r\n" XF1 "\r\n");
    is_str(request("GET http://a?q HTTP/1.1\r\nHost: a\r\n\r\n", "192.0.2.1", "f"),
           "GET /?q HTTP/1.1\r\nHost: a\r\n" XF1 "\r\n");
    is_str(request("GET http://a.example/x HTTP/1.0\r\n\r\n", "192.0.2.1", "f"),
           "GET /x HTTP/1.1\r\nHost: a.example\r\n" XF1 "\r\n");
    is_str(request("POST http://a/up HTTP/1.1\r\nHost: a\r\nContent-Length: 02\r\n\r\n", "192.0.2.1", "f"),
           "POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n" XF1 "\r\n");

    subtest("request: Max-Forwards on OPTIONS is replaced by the decremented value");
    is_str(request("OPTIONS /x HTTP/1.1\r\nHost: h\r\nMax-Forwards: 5\r\nAccept: y\r\n\r\n", "192.0.2.1", "f"),
           "OPTIONS /x HTTP/1.1\r\nHost: h\r\nAccept: y\r\nMax-Forwards: 4\r\n" XF1 "\r\n");
    is_str(request("OPTIONS /x HTTP/1.1\r\nHost: h\r\nmax-forwards: 01\r\n\r\n", "192.0.2.1", "f"),
           "OPTIONS /x HTTP/1.1\r\nHost: h\r\nMax-Forwards: 0\r\n" XF1 "\r\n");
    is_str(request("OPTIONS /x HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nMax-Forwards: 3\r\n\r\n", "192.0.2.1", "f"),
           "OPTIONS /x HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nMax-Forwards: 2\r\n" XF1 "\r\n");
    /* other methods forward it as sent */
    is_str(request("GET /x HTTP/1.1\r\nHost: h\r\nMax-Forwards: 5\r\n\r\n", "192.0.2.1", "f"),
           "GET /x HTTP/1.1\r\nHost: h\r\nMax-Forwards: 5\r\n" XF1 "\r\n");

    subtest("request: Via: 1.1 fulcrum after the client's Via; 1.0 for HTTP/1.0; none with via off");
    is_str(request_o("GET / HTTP/1.1\r\nHost: h\r\nVia: 1.1 edge\r\nAccept: a\r\n\r\n", "192.0.2.1", "f", &DEFAULTS),
           "GET / HTTP/1.1\r\nHost: h\r\nVia: 1.1 edge\r\nAccept: a\r\n" XF1 "Via: 1.1 fulcrum\r\n\r\n");
    is_str(request_o("GET / HTTP/1.0\r\nHost: h\r\n\r\n", "192.0.2.1", "f", &DEFAULTS),
           "GET / HTTP/1.1\r\nHost: h\r\n" XF1 "Via: 1.0 fulcrum\r\n\r\n");
    is_str(request_o("GET / HTTP/1.1\r\nHost: h\r\n\r\n", "192.0.2.1", "f", &NOVIA),
           "GET / HTTP/1.1\r\nHost: h\r\n" XF1 "\r\n");
    {
        static const fc_head_opts_t named = {.via = {"edge-7", 6}};
        is_str(request_o("GET / HTTP/1.1\r\nHost: h\r\n\r\n", "192.0.2.1", "f", &named),
               "GET / HTTP/1.1\r\nHost: h\r\n" XF1 "Via: 1.1 edge-7\r\n\r\n");
    }
    /* a request's Date is the client's: kept, none added */
    is_str(request_o("GET / HTTP/1.1\r\nHost: h\r\nDate: x\r\n\r\n", "192.0.2.1", "f", &DEFAULTS),
           "GET / HTTP/1.1\r\nHost: h\r\nDate: x\r\n" XF1 "Via: 1.1 fulcrum\r\n\r\n");

    subtest("request: the head is appended after what the buffer holds");
    {
        fc_request_view_t v;
        out.len = 0;
        FC_BUF_APPEND_LIT(&out, "previous");
        ok(parse(HTTP_REQUEST, "DELETE /d HTTP/1.1\r\nHost: h\r\n\r\n") == FC_HTTP_HEAD_DONE);
        is_int(fc_msg_check_request(&head, &parser.ll, &v), 0);
        is_int(fc_headers_build_request(&out, &head, &v, "1.2.3.4", "f", &NOVIA), 0);
        fc_buf_append(&out, "", 1);
        is_str(out.base, "previousDELETE /d HTTP/1.1\r\nHost: h\r\n"
                         "X-Forwarded-For: 1.2.3.4\r\nX-Real-IP: 1.2.3.4\r\nX-Forwarded-Proto: http\r\n\r\n");
    }
}

static void test_response(void)
{
    static const char resp[] = "HTTP/1.1 200 OK\r\n"
                               "Connection: keep-alive, X-Hop\r\n"
                               "Keep-Alive: timeout=5\r\n"
                               "Content-Type: text/plain\r\n"
                               "X-Hop: 1\r\n"
                               "Transfer-Encoding: chunked\r\n"
                               "Upgrade: h2\r\n"
                               "Server: s\r\n"
                               "\r\n";
    static const char kept[] = "HTTP/1.1 200 OK\r\n"
                               "Content-Type: text/plain\r\n"
                               "Server: s\r\n";

    subtest("response: status line, hop-by-hop removed, framing from the view, no Connection by default");
    is_str(response(resp, 0), "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nServer: s\r\n"
                              "Transfer-Encoding: chunked\r\n\r\n");
    ok(strncmp(response(resp, 0), kept, sizeof(kept) - 1) == 0);

    subtest("response: FC_RESP_CLOSE, FC_RESP_KEEPALIVE (close wins), FC_RESP_DECHUNK");
    is_str(response(resp, FC_RESP_CLOSE) + sizeof(kept) - 1, "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n");
    is_str(response(resp, FC_RESP_KEEPALIVE) + sizeof(kept) - 1,
           "Transfer-Encoding: chunked\r\nConnection: keep-alive\r\n\r\n");
    is_str(response(resp, FC_RESP_CLOSE | FC_RESP_KEEPALIVE) + sizeof(kept) - 1,
           "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n");
    is_str(response(resp, FC_RESP_DECHUNK | FC_RESP_CLOSE),
           "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nServer: s\r\nConnection: close\r\n\r\n");

    subtest("response: an HTTP/1.0 status line becomes HTTP/1.1, the reason is kept");
    is_str(response("HTTP/1.0 404 Not Found Here\r\nContent-Length: 0\r\n\r\n", FC_RESP_KEEPALIVE),
           "HTTP/1.1 404 Not Found Here\r\nContent-Length: 0\r\nConnection: keep-alive\r\n\r\n");
    is_str(response("HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\n", 0),
           "HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\n");

    subtest("response: Content-Length normalised and written after the kept fields");
    is_str(response("HTTP/1.1 200 OK\r\ncontent-length: 007\r\nX-A: 1\r\n\r\n", 0),
           "HTTP/1.1 200 OK\r\nX-A: 1\r\nContent-Length: 7\r\n\r\n");
    is_str(response("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 0), "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    subtest("response: HEAD and 304 keep their Content-Length, 1xx and 204 get none, close-delimited none");
    is_str(response_x("HTTP/1.1 200 OK\r\nContent-Length: 010\r\n\r\n", 1, 0, NULL, &NOVIA),
           "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n");
    is_str(response_x("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", 1, 0, NULL, &NOVIA),
           "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
    is_str(response("HTTP/1.1 304 Not Modified\r\nContent-Length: 7\r\nETag: \"e\"\r\n\r\n", 0),
           "HTTP/1.1 304 Not Modified\r\nETag: \"e\"\r\nContent-Length: 7\r\n\r\n");
    is_str(response("HTTP/1.1 204 No Content\r\nContent-Length: 5\r\nX-A: 1\r\n\r\n", 0),
           "HTTP/1.1 204 No Content\r\nX-A: 1\r\n\r\n");
    is_str(response("HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n", 0),
           "HTTP/1.1 204 No Content\r\n\r\n");
    is_str(response("HTTP/1.1 100 Continue\r\nContent-Length: 5\r\n\r\n", 0), "HTTP/1.1 100 Continue\r\n\r\n");
    is_str(response("HTTP/1.1 200 OK\r\nServer: s\r\n\r\n", FC_RESP_CLOSE),
           "HTTP/1.1 200 OK\r\nServer: s\r\nConnection: close\r\n\r\n");
    subtest("response: Connection: Content-Length does not remove the framing");
    is_str(response("HTTP/1.1 200 OK\r\nConnection: Content-Length, X-Foo\r\nContent-Length: 2\r\nX-Foo: 1\r\n\r\n", 0),
           "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n");
    subtest("response: '_' names are the server's business: kept");
    is_str(response_x("HTTP/1.1 200 OK\r\nX_Under: 1\r\nContent-Length: 0\r\n\r\n", 0, 0, NULL, &DEFAULTS),
           "HTTP/1.1 200 OK\r\nX_Under: 1\r\nContent-Length: 0\r\nVia: 1.1 fulcrum\r\n\r\n");

    subtest("response: Via (1.1, 1.0 for an HTTP/1.0 response, none with via off), after the server's");
    is_str(response_x("HTTP/1.1 200 OK\r\nVia: 1.1 app\r\nContent-Length: 1\r\n\r\n", 0, FC_RESP_CLOSE, NULL, &DEFAULTS),
           "HTTP/1.1 200 OK\r\nVia: 1.1 app\r\nContent-Length: 1\r\nVia: 1.1 fulcrum\r\nConnection: close\r\n\r\n");
    is_str(response_x("HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n", 0, 0, NULL, &DEFAULTS),
           "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nVia: 1.0 fulcrum\r\n\r\n");
    is_str(response_x("HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\n", 0, 0, NULL, &DEFAULTS),
           "HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\nVia: 1.1 fulcrum\r\n\r\n");
    is_str(response_x("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n", 0, 0, NULL, &NOVIA),
           "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n");

    subtest("response: Date added only when the server sent none");
    static const char date[] = "Sun, 06 Nov 1994 08:49:37 GMT";
    is_str(response_x("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n", 0, 0, date, &DEFAULTS),
           "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nVia: 1.1 fulcrum\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n\r\n");
    is_str(response_x("HTTP/1.1 200 OK\r\ndate: Mon, 07 Nov 1994 08:49:37 GMT\r\nContent-Length: 1\r\n\r\n", 0, 0, date,
                      &DEFAULTS),
           "HTTP/1.1 200 OK\r\ndate: Mon, 07 Nov 1994 08:49:37 GMT\r\nContent-Length: 1\r\nVia: 1.1 fulcrum\r\n\r\n");
    is_str(response_x("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n", 0, 0, NULL, &DEFAULTS),
           "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nVia: 1.1 fulcrum\r\n\r\n");
    is_str(response_x("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", 0, FC_RESP_KEEPALIVE, date, &NOVIA),
           "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n"
           "Connection: keep-alive\r\n\r\n");
}

void test_headers(void)
{
    test_hop();
    test_request();
    test_response();
    fc_buf_free(&out);
}
