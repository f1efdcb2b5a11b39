/* fuzz_http.c: libFuzzer target for the llhttp glue (src/http.c) and the head rewriting
 * (src/headers.c). Built and run by `make fuzz`.
 *
 * Input layout (a seed in tests/fuzz/corpus/http/ is a plain file laid out the same way):
 *
 *   byte 0      the mode byte
 *     bit 0     0 = requests (HTTP_REQUEST, driven like src/conn.c + fc_exchange_start),
 *               1 = responses (HTTP_RESPONSE, driven like pump_response in src/exchange.c)
 *     bit 1     de-chunk: a chunked body is decoded in place through parser.body_out, as
 *               pump_response does for an HTTP/1.0 client
 *     bit 2     responses only: they answer a HEAD request (parser.skip_body)
 *     bits 3-7  k (0..31): the payload is fed in two reads, the first of len * k / 32 bytes
 *               (k = 0: one read). While the first read is parsed, the rest of the buffer is
 *               poisoned for ASan, so a read past what was given is caught.
 *   bytes 1..   the payload: bytes as they come from a client or a server
 *
 * Handy mode bytes for seeds: 0x00 request, 0x01 response, 0x03 response de-chunked,
 * 0x05 response to HEAD, 0x81 response split in the middle ((16 << 3) | 1).
 *
 * Invariants checked (a violation calls __builtin_trap()): consumed <= the bytes given; every
 * slice of a parsed head lies inside the bytes consumed so far; nheaders <= FC_HTTP_MAX_HEADERS;
 * has_connection agrees with fc_http_find; de-chunked output never passes the parse position
 * and grows by exactly the body bytes reported; an error has a non-empty reason; rebuilt heads
 * start and end as HTTP heads do. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fulcrum/buf.h"
#include "fulcrum/headers.h"
#include "fulcrum/http.h"

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#include <sanitizer/asan_interface.h>
#endif
#endif
#ifndef ASAN_POISON_MEMORY_REGION
#define ASAN_POISON_MEMORY_REGION(addr, size) ((void)(addr), (void)(size))
#define ASAN_UNPOISON_MEMORY_REGION(addr, size) ((void)(addr), (void)(size))
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                                                    \
    do {                                                                                            \
        if (!(c)) __builtin_trap();                                                                 \
    } while (0)

/* One simulated connection: the read buffer and how far it was parsed and made available. */
typedef struct conn {
    char *buf;    /* scratch copy of the payload (de-chunking writes into it) */
    size_t len;   /* payload bytes in all */
    size_t end;   /* bytes "read" so far: the first piece, then all */
    size_t pos;   /* bytes consumed by the parser */
    int dechunk;  /* mode bit 1 */
    int head_req; /* mode bit 2 */
} conn_t;

static fc_http_head_t head; /* ~8 KiB: kept off the stack */

/* <s> is empty, or lies inside the consumed bytes of <c>. */
static void check_slice(const conn_t *c, fc_slice_t s)
{
    if (s.p == NULL) {
        CHECK(s.n == 0);
        return;
    }
    CHECK(s.p >= c->buf);
    CHECK(s.n <= c->pos);
    CHECK((size_t)(s.p - c->buf) <= c->pos - s.n);
}

static void check_head(const conn_t *c, const fc_http_head_t *h, int is_request)
{
    CHECK(h->nheaders <= FC_HTTP_MAX_HEADERS);
    if (is_request) {
        check_slice(c, h->method);
        check_slice(c, h->url);
        CHECK(h->method.n > 0);
    } else {
        check_slice(c, h->reason);
        CHECK(h->status >= 0 && h->status <= 999);
    }
    for (size_t i = 0; i < h->nheaders; i++) {
        check_slice(c, h->headers[i].name);
        check_slice(c, h->headers[i].value);
        fc_slice_t v = h->headers[i].value;
        CHECK(v.n == 0 || (v.p[v.n - 1] != ' ' && v.p[v.n - 1] != '\t')); /* trimmed */
    }
    CHECK(!h->has_connection == !fc_http_find(h, "connection", 10));
}

/* The header helpers the proxy calls on every head, on this one. */
static void use_helpers(const fc_http_head_t *h)
{
    const fc_header_t *hd = fc_http_find(h, "keep-alive", 10);
    if (hd != NULL) {
        long t = fc_http_keepalive_timeout(hd->value);
        CHECK(t >= -1 && t < 10000000);
    }
    hd = fc_http_find(h, "connection", 10);
    if (hd != NULL) {
        (void)fc_http_has_token(hd->value, "close", 5);
        (void)fc_http_has_token(hd->value, "keep-alive", 10);
    }
    hd = fc_http_find(h, "transfer-encoding", 17);
    if (hd != NULL) (void)fc_http_has_token(hd->value, "chunked", 7);
    for (size_t i = 0; i < h->nheaders; i++) {
        (void)fc_http_is_token(h->headers[i].name);
        (void)fc_headers_is_hop(h, h->headers[i].name);
        /* A header value as the token list and another header's name as the token. */
        if (i > 0) (void)fc_http_has_token(h->headers[i].value, h->headers[i - 1].name.p, h->headers[i - 1].name.n);
    }
}

static void check_built(const fc_buf_t *b, const char *start)
{
    size_t sl = strlen(start);
    CHECK(b->len >= sl + 4 && b->len <= b->cap);
    CHECK(memcmp(b->base, start, sl) == 0);
    CHECK(memcmp(b->base + b->len - 4, "\r\n\r\n", 4) == 0);
}

/* What fc_exchange_start checks before it builds the request for a server; 0 means the client
 * gets an error answer and the connection is closed. Builds the request head when it passes. */
static int start_request(const fc_http_parser_t *p, const fc_http_head_t *h)
{
    int http10 = h->major == 1 && h->minor == 0;
    if (p->ll.method == HTTP_CONNECT) return 0;
    const fc_header_t *host = NULL;
    for (size_t i = 0; i < h->nheaders; i++) {
        if (!fc_http_is_token(h->headers[i].name)) return 0;
        if (!FC_SLICE_IEQ(h->headers[i].name, "host")) continue;
        if (host != NULL) return 0;
        host = &h->headers[i];
    }
    if (host == NULL && !http10) return 0;
    fc_slice_t target = h->url;
    if (target.n > 7 && strncasecmp(target.p, "http://", 7) == 0) {
        const char *a = target.p + 7, *end = target.p + target.n;
        const char *slash = memchr(a, '/', (size_t)(end - a));
        target = slash ? (fc_slice_t){slash, (size_t)(end - slash)} : (fc_slice_t){"/", 1};
    } else if (target.n == 0 || (target.p[0] != '/' && !(target.n == 1 && target.p[0] == '*'))) {
        return 0;
    }
    fc_buf_t out = {0};
    CHECK(fc_headers_build_request(&out, h, target, "192.0.2.7", "127.0.0.1:3000") == 0);
    check_built(&out, "");
    CHECK(out.len > h->method.n && memcmp(out.base, h->method.p, h->method.n) == 0);
    fc_buf_free(&out);
    return 1;
}

static void build_response(const fc_http_head_t *h, int flags)
{
    fc_buf_t out = {0};
    CHECK(fc_headers_build_response(&out, h, flags) == 0);
    check_built(&out, "HTTP/1.1 ");
    fc_buf_free(&out);
}

/* Runs fc_http_execute on what is available at c->pos, as the proxy does, and checks what
 * comes back. Makes the second piece available when the first is used up. */
static int execute(conn_t *c, fc_http_parser_t *p)
{
    for (;;) {
        size_t avail = c->end - c->pos, used = (size_t)-1;
        uint64_t body_before = p->body_bytes;
        char *out_before = p->body_out;
        int ev = fc_http_execute(p, c->buf + c->pos, avail, &used);
        CHECK(used <= avail);
        c->pos += used;
        if (p->body_out != NULL) {
            CHECK(p->body_out >= out_before && p->body_out <= c->buf + c->pos);
            CHECK((uint64_t)(p->body_out - out_before) == p->body_bytes - body_before);
        } else {
            CHECK(out_before == NULL);
        }
        CHECK(ev == FC_HTTP_NEED_MORE || ev == FC_HTTP_HEAD_DONE || ev == FC_HTTP_MSG_DONE || ev == FC_HTTP_ERROR);
        if (ev == FC_HTTP_ERROR) {
            const char *why = fc_http_error(p);
            CHECK(why != NULL && why[0] != '\0');
        }
        if (ev == FC_HTTP_NEED_MORE) {
            CHECK(c->pos == c->end);
            if (c->end < c->len) { /* the second read arrives */
                ASAN_UNPOISON_MEMORY_REGION(c->buf + c->end, c->len - c->end);
                c->end = c->len;
                continue;
            }
        }
        return ev;
    }
}

/* EOF on the connection: what fc_exchange_on_upstream_error does for a close-delimited body. */
static void finish(fc_http_parser_t *p)
{
    int ev = fc_http_finish(p);
    CHECK(ev == FC_HTTP_MSG_DONE || ev == FC_HTTP_ERROR);
    const char *why = fc_http_error(p);
    CHECK(why != NULL);
}

/* Client side: one parser per request (src/conn.c), head collected until it is done
 * (fc_exchange_start), the body parsed with no head (pump_request), pipelined requests in turn. */
static void run_requests(conn_t *c)
{
    fc_http_parser_t p;
    for (;;) {
        if (c->pos == c->len) return; /* an idle connection: nothing more came */
        fc_http_parser_init(&p, HTTP_REQUEST);
        p.head = &head;
        int ev = execute(c, &p);
        if (ev == FC_HTTP_MSG_DONE) continue;
        if (ev != FC_HTTP_HEAD_DONE) {
            if (ev == FC_HTTP_NEED_MORE) finish(&p);
            return;
        }
        check_head(c, &head, 1);
        use_helpers(&head);
        int keepalive = llhttp_should_keep_alive(&p.ll);
        int req_done = !((p.ll.flags & F_CHUNKED) || p.ll.content_length > 0);
        if (!start_request(&p, &head)) return; /* 400/405: the connection is closed */
        p.head = NULL;
        if (!req_done) {
            size_t fwd_end = c->pos;
            p.body_out = c->dechunk ? c->buf + fwd_end : NULL;
            ev = execute(c, &p);
            if (ev == FC_HTTP_HEAD_DONE) __builtin_trap(); /* a head inside a body */
            if (ev != FC_HTTP_MSG_DONE) {
                if (ev == FC_HTTP_NEED_MORE) finish(&p); /* EOF in the middle of the body */
                return;
            }
        }
        if (!keepalive) return;
    }
}

/* Server side: one parser per upstream connection, llhttp_reset between responses when the
 * connection goes back to the pool (fc_pool_release), 1xx heads before the final one. */
static void run_responses(conn_t *c)
{
    fc_http_parser_t p;
    fc_http_parser_init(&p, HTTP_RESPONSE);
    for (;;) {
        p.head = &head;
        p.skip_body = (uint8_t)c->head_req;
        int ev, flags = 0;
        for (;;) { /* the head phase of pump_response */
            ev = execute(c, &p);
            if (ev == FC_HTTP_MSG_DONE) continue; /* the end of a 1xx */
            if (ev != FC_HTTP_HEAD_DONE) {
                if (ev == FC_HTTP_NEED_MORE) finish(&p);
                return;
            }
            check_head(c, &head, 0);
            use_helpers(&head);
            if (head.status >= 200) break;
            if (head.status == 101) return; /* not tunnelled: the exchange fails */
            build_response(&head, 0);
        }
        int st = head.status;
        int has_body = !(c->head_req || st == 204 || st == 304);
        int dechunk = has_body && (p.ll.flags & F_CHUNKED) && c->dechunk;
        int client_keepalive = llhttp_should_keep_alive(&p.ll); /* stands in for the client's */
        if (dechunk) {
            flags |= FC_RESP_DECHUNK;
            client_keepalive = 0;
        }
        if (has_body && fc_http_needs_eof(&p)) client_keepalive = 0;
        flags |= client_keepalive ? FC_RESP_KEEPALIVE : FC_RESP_CLOSE;
        build_response(&head, flags);
        p.head = NULL; /* trailers are forwarded, not collected */
        size_t fwd_end = c->pos;
        /* The body phase: execute() hands over the second read itself, so one call reaches the
         * end of the body, an error, or the end of the input. */
        p.body_out = dechunk ? c->buf + fwd_end : NULL;
        ev = execute(c, &p);
        if (ev == FC_HTTP_HEAD_DONE) __builtin_trap(); /* a head inside a body */
        if (ev != FC_HTTP_MSG_DONE) {
            if (ev == FC_HTTP_NEED_MORE && fc_http_needs_eof(&p)) finish(&p); /* a close-delimited body */
            return;
        }
        p.body_out = NULL;
        /* finish() in src/exchange.c: the connection is pooled when the server keeps it alive;
         * the bytes after this response stand for the next response on it. */
        if (!llhttp_should_keep_alive(&p.ll)) return;
        llhttp_reset(&p.ll);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    uint8_t mode = data[0];
    conn_t c = {0};
    c.len = size - 1;
    c.buf = malloc(c.len ? c.len : 1);
    if (c.buf == NULL) return 0;
    if (c.len) memcpy(c.buf, data + 1, c.len);
    c.dechunk = (mode >> 1) & 1;
    c.head_req = (mode >> 2) & 1;
    c.end = c.len * (size_t)(mode >> 3) / 32;
    if (c.end < c.len) ASAN_POISON_MEMORY_REGION(c.buf + c.end, c.len - c.end);
    if (mode & 1) run_responses(&c);
    else run_requests(&c);
    if (c.end < c.len) ASAN_UNPOISON_MEMORY_REGION(c.buf + c.end, c.len - c.end);
    free(c.buf);
    return 0;
}
