/* test_headers.c: the heads fulcrum sends, built from heads parsed out of real bytes. */
#include <string.h>

#include "fulcrum/headers.h"
#include "harness.h"

void test_headers(void);

#define S(lit) ((fc_slice_t){(lit), sizeof(lit) - 1})

static fc_http_head_t head;
static fc_buf_t out;

/* Parses the head in <bytes> into `head` (slices borrow from <bytes>). */
static int parse(llhttp_type_t type, const char *bytes)
{
    fc_http_parser_t p;
    size_t c;
    fc_http_parser_init(&p, type);
    p.head = &head;
    return fc_http_execute(&p, bytes, strlen(bytes), &c);
}

/* Builds the request head for a server from <bytes>; the result is NUL-terminated in `out`. */
static const char *request(const char *bytes, fc_slice_t target, const char *ip, const char *host)
{
    out.len = 0;
    if (parse(HTTP_REQUEST, bytes) != FC_HTTP_HEAD_DONE) return "(parse error)";
    if (fc_headers_build_request(&out, &head, target, ip, host) != 0) return "(build error)";
    fc_buf_append(&out, "", 1);
    return out.base;
}

static const char *response(const char *bytes, int flags)
{
    out.len = 0;
    if (parse(HTTP_RESPONSE, bytes) != FC_HTTP_HEAD_DONE) return "(parse error)";
    if (fc_headers_build_response(&out, &head, flags) != 0) return "(build error)";
    fc_buf_append(&out, "", 1);
    return out.base;
}

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
}

static void test_request(void)
{
    subtest("request: HTTP/1.1 line with the given target, hop-by-hop and forwarding headers replaced");
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
                   S("/x?y=1"), "10.0.0.9", "fallback"),
           "GET /x?y=1 HTTP/1.1\r\n"
           "Host: a.example\r\n"
           "Accept: */*\r\n"
           "Cookie: a=1\r\n"
           "X-Forwarded-For: 1.1.1.1, 2.2.2.2, 3.3.3.3, 10.0.0.9\r\n"
           "X-Real-IP: 10.0.0.9\r\n"
           "X-Forwarded-Proto: http\r\n"
           "\r\n");

    subtest("request: Host fallback when the request has none; empty X-Forwarded-For ignored");
    is_str(request("GET / HTTP/1.0\r\nX-Forwarded-For:\r\n\r\n", S("/"), "::1", "backend:8080"),
           "GET / HTTP/1.1\r\n"
           "Host: backend:8080\r\n"
           "X-Forwarded-For: ::1\r\n"
           "X-Real-IP: ::1\r\n"
           "X-Forwarded-Proto: http\r\n"
           "\r\n");

    subtest("request: Transfer-Encoding and Content-Length are kept, names and values as sent");
    is_str(request("POST /up HTTP/1.1\r\nhost: h\r\nTransfer-Encoding: chunked\r\nX-Case: MiXeD\r\n\r\n",
                   S("/up"), "192.0.2.1", "fallback"),
           "POST /up HTTP/1.1\r\n"
           "host: h\r\n"
           "Transfer-Encoding: chunked\r\n"
           "X-Case: MiXeD\r\n"
           "X-Forwarded-For: 192.0.2.1\r\n"
           "X-Real-IP: 192.0.2.1\r\n"
           "X-Forwarded-Proto: http\r\n"
           "\r\n");
    is_str(request("PUT /p HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\n", S("/p"), "192.0.2.1", "f"),
           "PUT /p HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n"
           "X-Forwarded-For: 192.0.2.1\r\nX-Real-IP: 192.0.2.1\r\nX-Forwarded-Proto: http\r\n\r\n");

    subtest("request: the head is appended after what the buffer holds");
    out.len = 0;
    FC_BUF_APPEND_LIT(&out, "previous");
    ok(parse(HTTP_REQUEST, "DELETE /d HTTP/1.1\r\nHost: h\r\n\r\n") == FC_HTTP_HEAD_DONE);
    is_int(fc_headers_build_request(&out, &head, S("/d"), "1.2.3.4", "f"), 0);
    fc_buf_append(&out, "", 1);
    is_str(out.base, "previousDELETE /d HTTP/1.1\r\nHost: h\r\n"
                     "X-Forwarded-For: 1.2.3.4\r\nX-Real-IP: 1.2.3.4\r\nX-Forwarded-Proto: http\r\n\r\n");
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
                               "Transfer-Encoding: chunked\r\n"
                               "Server: s\r\n";

    subtest("response: status line, hop-by-hop removed, no Connection added by default");
    is_str(response(resp, 0), "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n"
                              "Server: s\r\n\r\n");
    ok(strncmp(response(resp, 0), kept, sizeof(kept) - 1) == 0);

    subtest("response: FC_RESP_CLOSE, FC_RESP_KEEPALIVE (close wins), FC_RESP_DECHUNK");
    is_str(response(resp, FC_RESP_CLOSE) + sizeof(kept) - 1, "Connection: close\r\n\r\n");
    is_str(response(resp, FC_RESP_KEEPALIVE) + sizeof(kept) - 1, "Connection: keep-alive\r\n\r\n");
    is_str(response(resp, FC_RESP_CLOSE | FC_RESP_KEEPALIVE) + sizeof(kept) - 1, "Connection: close\r\n\r\n");
    is_str(response(resp, FC_RESP_DECHUNK | FC_RESP_CLOSE),
           "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nServer: s\r\nConnection: close\r\n\r\n");

    subtest("response: an HTTP/1.0 status line becomes HTTP/1.1, the reason is kept");
    is_str(response("HTTP/1.0 404 Not Found Here\r\nContent-Length: 0\r\n\r\n", FC_RESP_KEEPALIVE),
           "HTTP/1.1 404 Not Found Here\r\nContent-Length: 0\r\nConnection: keep-alive\r\n\r\n");
    is_str(response("HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\n", 0),
           "HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\n");
}

void test_headers(void)
{
    test_hop();
    test_request();
    test_response();
    fc_buf_free(&out);
}
