/* strict_test.c: checks the referee (strict.c) on known-good and known-bad messages, so the fuzz
 * invariants stand on a parser that is right. Built and run by `make fuzz` before the targets. */
#include "strict.h"
#include <stdio.h>
#include <string.h>
static int fails;
static void req(const char *s, int want, const char *body, const char *efft, const char *effh)
{
    static st_msg_t m;
    int r = st_parse_request(s, strlen(s), &m);
    int ok = r == want;
    if (ok && r == 0 && body) ok = m.body_len == strlen(body) && (m.body_len == 0 || memcmp(m.body, body, m.body_len) == 0);
    if (ok && r == 0 && efft) ok = m.eff_target_len == strlen(efft) && memcmp(m.eff_target, efft, m.eff_target_len) == 0;
    if (ok && r == 0 && effh) ok = m.eff_host_len == 0 ? strlen(effh) == 0 : m.eff_host_len == strlen(effh) && memcmp(m.eff_host, effh, m.eff_host_len) == 0;
    if (ok && r == 0) ok = m.end == strlen(s) || (body == NULL);
    if (!ok) { fails++; printf("FAIL req %-60.60s want %s got %s (%s) amb=%s end=%zu bl=%zu\n", s, st_result_name(want), st_result_name(r), m.why ? m.why : "", st_amb_name(m.amb), m.end, m.body_len); }
    st_free(&m);
}
static void resp(const char *s, int head, int want, const char *body, int framing)
{
    static st_msg_t m;
    int r = st_parse_response(s, strlen(s), head, &m);
    int ok = r == want;
    if (ok && r == 0 && body) ok = m.body_len == strlen(body) && (m.body_len == 0 || memcmp(m.body, body, m.body_len) == 0) && m.framing == framing;
    if (!ok) { fails++; printf("FAIL resp %-60.60s want %s got %s (%s) amb=%s fr=%d bl=%zu\n", s, st_result_name(want), st_result_name(r), m.why ? m.why : "", st_amb_name(m.amb), m.framing, m.body_len); }
    st_free(&m);
}
#define H "GET / HTTP/1.1\r\nHost: a\r\n"
#define P "POST /x HTTP/1.1\r\nHost: a\r\n"
#define TE P "Transfer-Encoding: chunked\r\n\r\n"
int main(void)
{
    req(H "\r\n", ST_OK, "", "/", "a");
    req("GET / HTTP/1.0\r\n\r\n", ST_OK, "", "/", "");
    req("GET / HTTP/1.1\r\n\r\n", ST_ERR_HOST, 0,0,0);
    req(H "Host: b\r\n\r\n", ST_ERR_HOST, 0,0,0);
    req("GET / HTTP/1.1\r\nHost: \r\n\r\n", ST_OK, "", "/", "");
    req("GET / HTTP/1.1\r\nHost: a:80\r\n\r\n", ST_OK, "", "/", "a:80");
    req("GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n", ST_OK, "", "/", "[::1]:8080");
    req("GET / HTTP/1.1\r\nHost: a@b\r\n\r\n", ST_ERR_HOST, 0,0,0);
    req("GET / HTTP/1.1\r\nHost: a b\r\n\r\n", ST_ERR_HOST, 0,0,0);
    req("GET / HTTP/1.1\r\nHost: a:1:2\r\n\r\n", ST_ERR_HOST, 0,0,0);
    req("GET / HTTP/1.1\r\nHost: a:\r\n\r\n", ST_ERR_HOST, 0,0,0);
    req("GET / HTTP/1.1\r\nHost: [::1\r\n\r\n", ST_ERR_HOST, 0,0,0);
    req("GET / HTTP/1.1\r\nHost: a:99999\r\n\r\n", ST_ERR_HOST, 0,0,0);
    req("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", ST_ERR_HOST, 0,0,0);
    req("GET http://auth/path?q HTTP/1.1\r\nHost: x\r\n\r\n", ST_OK, "", "/path?q", "auth");
    req("GET HTTPS://auth:1 HTTP/1.1\r\nHost: x\r\n\r\n", ST_OK, "", "/", "auth:1");
    req("GET http://a?q HTTP/1.1\r\nHost: x\r\n\r\n", ST_OK, "", "/?q", "a");
    req("GET http://u@a/ HTTP/1.1\r\nHost: x\r\n\r\n", ST_ERR_TARGET, 0,0,0);
    req("GET ftp://a/ HTTP/1.1\r\nHost: x\r\n\r\n", ST_ERR_TARGET, 0,0,0);
    req("GET /a#b HTTP/1.1\r\nHost: x\r\n\r\n", ST_ERR_TARGET, 0,0,0);
    req("GET * HTTP/1.1\r\nHost: x\r\n\r\n", ST_ERR_TARGET, 0,0,0);
    req("OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n", ST_OK, "", "*", "x");
    req("GET / HTTP/1.2\r\nHost: x\r\n\r\n", ST_ERR_START, 0,0,0);
    req("GET / HTTP/2.0\r\nHost: x\r\n\r\n", ST_ERR_START, 0,0,0);
    req("GET  / HTTP/1.1\r\nHost: x\r\n\r\n", ST_ERR_START, 0,0,0);
    req("HELLO\r\n\r\n", ST_ERR_START, 0,0,0);
    req("\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n", ST_ERR_START, 0,0,0);
    req("GET / HTTP/1.1\nHost: x\r\n\r\n", ST_ERR_START, 0,0,0);
    req(H "X: a\r\n b\r\n\r\n", ST_ERR_FIELD, 0,0,0);
    req(H "X : a\r\n\r\n", ST_ERR_FIELD, 0,0,0);
    req(H "X a: a\r\n\r\n", ST_ERR_FIELD, 0,0,0);
    req(H "X: a\rb\r\n\r\n", ST_ERR_FIELD, 0,0,0);
    req(H "X: a\nb\r\n\r\n", ST_ERR_FIELD, 0,0,0);
    req(H "X: a\x01\r\n\r\n", ST_ERR_FIELD, 0,0,0);
    req(H "X: a\x7f\r\n\r\n", ST_ERR_FIELD, 0,0,0);
    req(H "X: \xff\xfe\r\n\r\n", ST_OK, "", 0, 0);
    req(H "X\r\n\r\n", ST_ERR_FIELD, 0,0,0);
    req(H ": x\r\n\r\n", ST_ERR_FIELD, 0,0,0);
    req(H "X: y\r\n", ST_INCOMPLETE, 0,0,0);
    req(H "X: y\r\n\r", ST_INCOMPLETE, 0,0,0);
    req(P "Content-Length: 5\r\n\r\nhello", ST_OK, "hello", 0,0);
    req(P "Content-Length: 005\r\n\r\nhello", ST_OK, "hello", 0,0);
    req(P "Content-Length: 0\r\n\r\n", ST_OK, "", 0,0);
    req(P "Content-Length: 5\r\n\r\nhell", ST_INCOMPLETE, 0,0,0);
    req(P "Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello", ST_ERR_FRAMING, 0,0,0);
    req(P "Content-Length: 5, 5\r\n\r\nhello", ST_ERR_FRAMING, 0,0,0);
    req(P "Content-Length: +5\r\n\r\nhello", ST_ERR_FRAMING, 0,0,0);
    req(P "Content-Length: 5x\r\n\r\nhello", ST_ERR_FRAMING, 0,0,0);
    req(P "Content-Length: -1\r\n\r\nhello", ST_ERR_FRAMING, 0,0,0);
    req(P "Content-Length:\r\n\r\nhello", ST_ERR_FRAMING, 0,0,0);
    req(P "Content-Length: 99999999999999999999999\r\n\r\nhello", ST_ERR_FRAMING, 0,0,0);
    req(TE "5\r\nhello\r\n0\r\n\r\n", ST_OK, "hello", 0,0);
    req(P "Transfer-Encoding:\tchunked\t\r\n\r\n5\r\nhello\r\n0\r\n\r\n", ST_OK, "hello", 0,0);
    req(P "Transfer-Encoding: CHUNKED\r\n\r\n5\r\nhello\r\n0\r\n\r\n", ST_OK, "hello", 0,0);
    req(P "Transfer-Encoding: , chunked,\r\n\r\n5\r\nhello\r\n0\r\n\r\n", ST_OK, "hello", 0,0);
    req(P "Transfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", ST_ERR_FRAMING, 0,0,0);
    req(P "Transfer-Encoding: chunked, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", ST_ERR_FRAMING, 0,0,0);
    req(P "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", ST_ERR_FRAMING, 0,0,0);
    req(P "Transfer-Encoding: \r\n\r\n", ST_ERR_FRAMING, 0,0,0);
    req(P "Transfer-Encoding: chunkedx\r\n\r\n", ST_ERR_FRAMING, 0,0,0);
    req(P "Transfer-Encoding: identity\r\n\r\n", ST_ERR_FRAMING, 0,0,0);
    req(P "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n5\r\nhello\r\n0\r\n\r\n", ST_ERR_FRAMING, 0,0,0);
    req("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", ST_ERR_FRAMING, 0,0,0);
    req(TE "5;a=b\r\nhello\r\n0\r\n\r\n", ST_OK, "hello", 0,0);
    req(TE "5;a=\"b c\"\r\nhello\r\n0\r\n\r\n", ST_OK, "hello", 0,0);
    req(TE "5;a=\"b\\\"c\"\r\nhello\r\n0\r\n\r\n", ST_OK, "hello", 0,0);
    req(TE "5;a=b;c=d\r\nhello\r\n0\r\n\r\n", ST_OK, "hello", 0,0);
    req(TE "5 ; a = b\r\nhello\r\n0\r\n\r\n", ST_OK, "hello", 0,0);
    req(TE "5;a\r\nhello\r\n0;z\r\n\r\n", ST_OK, "hello", 0,0);
    req(TE "5;\r\nhello\r\n0\r\n\r\n", ST_ERR_BODY, 0,0,0);
    req(TE "5;a=\r\nhello\r\n0\r\n\r\n", ST_ERR_BODY, 0,0,0);
    req(TE "5;\"x\"\r\nhello\r\n0\r\n\r\n", ST_ERR_BODY, 0,0,0);
    req(TE "5 \r\nhello\r\n0\r\n\r\n", ST_ERR_BODY, 0,0,0);
    req(TE "5;a=b \r\nhello\r\n0\r\n\r\n", ST_ERR_BODY, 0,0,0);
    req(TE "5;a=\"b\r\nhello\r\n0\r\n\r\n", ST_ERR_BODY, 0,0,0);
    req(TE "0x5\r\nhello\r\n0\r\n\r\n", ST_ERR_BODY, 0,0,0);
    req(TE "-5\r\nhello\r\n0\r\n\r\n", ST_ERR_BODY, 0,0,0);
    req(TE "5\nhello\r\n0\r\n\r\n", ST_ERR_BODY, 0,0,0);
    req(TE "5\r\nhelloX\r\n0\r\n\r\n", ST_ERR_BODY, 0,0,0);
    req(TE "5\r\nhello0\r\n\r\n", ST_ERR_BODY, 0,0,0);
    req(TE "00000000000000005\r\nhello\r\n0\r\n\r\n", ST_OK, "hello", 0,0);
    req(TE "5\r\nhello\r\n00000000000000000000\r\n\r\n", ST_OK, "hello", 0,0);
    req(TE "10000000000000000\r\nhello\r\n0\r\n\r\n", ST_ERR_BODY, 0,0,0);
    req(TE "0000000000000005\r\nhello\r\n0\r\n\r\n", ST_OK, "hello", 0,0);
    req(TE "A\r\n0123456789\r\n0\r\n\r\n", ST_OK, "0123456789", 0,0);
    req(TE "a\r\n0123456789\r\n0\r\n\r\n", ST_OK, "0123456789", 0,0);
    req(TE "5\r\nhello\r\n0\r\nX-T: 1\r\nY: 2\r\n\r\n", ST_OK, "hello", 0,0);
    req(TE "5\r\nhello\r\n0\r\nX-T 1\r\n\r\n", ST_ERR_BODY, 0,0,0);
    req(TE "5\r\nhello\r\n0\r\nX-T: 1\r\n a\r\n\r\n", ST_ERR_BODY, 0,0,0);
    req(TE "5\r\nhello\r\n0\r\nX T: 1\r\n\r\n", ST_ERR_BODY, 0,0,0);
    req(TE "5\r\nhello\r\n0\r\nX: \x01\r\n\r\n", ST_ERR_BODY, 0,0,0);
    req(TE "5\r\nhello\r\n0\r\n", ST_INCOMPLETE, 0,0,0);
    req(TE "5\r\nhello\r\n", ST_INCOMPLETE, 0,0,0);
    req(TE "5\r\nhello\r", ST_INCOMPLETE, 0,0,0);
    req(TE "5\r\nhel", ST_INCOMPLETE, 0,0,0);
    req(TE "5\r\nhello\r\n0\r\n\r\nGET", ST_OK, NULL, 0,0); /* end before the extra bytes */
    /* responses */
    resp("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi", 0, ST_OK, "hi", ST_FRAME_LENGTH);
    resp("HTTP/1.1 200 \r\nContent-Length: 2\r\n\r\nhi", 0, ST_OK, "hi", ST_FRAME_LENGTH);
    resp("HTTP/1.1 200\r\nContent-Length: 2\r\n\r\nhi", 0, ST_ERR_START, 0, 0);
    resp("HTTP/1.1 2000 OK\r\n\r\n", 0, ST_ERR_START, 0, 0);
    resp("HTTP/1.1 200 OK\r\n\r\nrest of it", 0, ST_OK, "rest of it", ST_FRAME_CLOSE);
    resp("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi", 1, ST_OK, "", ST_FRAME_NONE);
    resp("HTTP/1.1 304 OK\r\nContent-Length: 2\r\n\r\n", 0, ST_OK, "", ST_FRAME_NONE);
    resp("HTTP/1.1 204 OK\r\n\r\n", 0, ST_OK, "", ST_FRAME_NONE);
    resp("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n", 0, ST_OK, "", ST_FRAME_NONE);
    resp("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n", 0, ST_OK, "hi", ST_FRAME_CHUNKED);
    resp("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", 1, ST_OK, "", ST_FRAME_NONE);
    resp("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 2\r\n\r\n", 1, ST_ERR_FRAMING, 0, 0);
    resp("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", 0, ST_ERR_FRAMING, 0, 0);
    resp("HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", 0, ST_ERR_FRAMING, 0, 0);
    resp("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nhi", 0, ST_ERR_FRAMING, 0, 0);
    resp("HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n", 0, ST_ERR_FIELD, 0, 0);
    resp("HTTP/1.1 200 OK\r\nX: a\rb\r\n\r\n", 0, ST_ERR_FIELD, 0, 0);
    resp("HTTP/1.1 200 O\x01K\r\n\r\n", 0, ST_ERR_START, 0, 0);
    resp("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nhi", 0, ST_INCOMPLETE, 0, 0);
    resp("HTTP/1.0 200 OK\r\n\r\nxyz", 0, ST_OK, "xyz", ST_FRAME_CLOSE);
    {
        static st_msg_t m;
        const char *s = TE "5\r\nhello\r\n0\r\nX-T: 1 \r\nY:\t2\r\n\r\nGET";
        int r = st_parse_request(s, strlen(s), &m);
        if (r != ST_OK || m.ntrailers != 2 || m.trailers[0].value_len != 1 || m.trailers[0].value[0] != '1' ||
            m.trailers[1].value_len != 1 || m.trailers[1].value[0] != '2' || m.end != strlen(s) - 3 || m.head_end != 57) {
            fails++;
            printf("FAIL trailers: r=%d ntrailers=%zu end=%zu head_end=%zu\n", r, m.ntrailers, m.end, m.head_end);
        }
        st_free(&m);
    }
    printf("strict-test: %d failures\n", fails);
    return fails != 0;
}
