/* fuzz_http.c: libFuzzer target for the llhttp glue (src/http.c, heads only), the head checks
 * (src/message.c), the body reader (src/body.c) and the head rewriting (src/headers.c), driven the
 * way src/conn.c and src/exchange.c drive them. Built and run by `make fuzz`.
 *
 * Input layout (a seed in tests/fuzz/corpus/http/ is a plain file laid out the same way):
 *
 *   byte 0      the mode byte
 *     bit 0     0 = requests (HTTP_REQUEST, driven like src/conn.c, fc_exchange_start and
 *               pump_request), 1 = responses (HTTP_RESPONSE, driven like pump_response)
 *     bit 1     requests: the other head options (via: off, underscores_in_headers: true);
 *               responses: the client is HTTP/1.0, so a chunked body is decoded only (not framed
 *               again with fulcrum's chunk lines) and the head gets FC_RESP_DECHUNK
 *     bit 2     responses only: they answer a HEAD request (parser.skip_body, req_is_head)
 *     bits 3-7  k (0..31): the payload is fed in two reads, the first of len * k / 32 bytes
 *               (k = 0: one read). While the first read is parsed, the rest of the buffer is
 *               poisoned for ASan, so a read past what was given is caught.
 *   bytes 1..   the payload: bytes as they come from a client or a server
 *
 * Handy mode bytes for seeds: 0x00 request, 0x01 response, 0x03 response to an HTTP/1.0 client,
 * 0x05 response to HEAD, 0x81 response split in the middle ((16 << 3) | 1).
 *
 * Invariants checked (a violation calls __builtin_trap()): consumed <= the bytes given; every
 * slice of a parsed head lies inside the bytes consumed so far; nheaders <= FC_HTTP_MAX_HEADERS;
 * values are trimmed; has_connection agrees with fc_http_find; an error has a non-empty reason
 * and a refused request one of the statuses message.h lists; a view's slices lie in the head;
 * the body reader produces no more than it consumes, never writes past the parse position nor
 * touches bytes it has not consumed, counts its payload in total, and reads nothing after the
 * end or an error; kept trailer lines are valid field lines none of which is a dropped name or
 * one the message's Connection options name; a
 * body framed again with fc_chunk_prefix/fc_chunk_suffix decodes to the same payload and
 * trailers; a rebuilt head starts and ends as HTTP heads do, carries exactly the framing field its
 * view says (no other Content-Length or Transfer-Encoding), no '_' name unless allowed, and
 * parses and checks again to the same framing, length, target and Host. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "fulcrum/body.h"
#include "fulcrum/buf.h"
#include "fulcrum/headers.h"
#include "fulcrum/http.h"
#include "fulcrum/message.h"

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
        if (!(c)) {                                                                                 \
            fprintf(stderr, "fuzz_http: CHECK failed at line %d: %s\n", __LINE__, #c);              \
            __builtin_trap();                                                                       \
        }                                                                                           \
    } while (0)

#define FALLBACK_HOST "127.0.0.1:3000"

/* One simulated connection: the read buffer and how far it was parsed and made available. */
typedef struct conn {
    char *buf;        /* scratch copy of the payload (chunked bodies are decoded into it) */
    const char *orig; /* the payload as received, to check that unread bytes stay untouched */
    size_t len;       /* payload bytes in all */
    size_t end;       /* bytes "read" so far: the first piece, then all */
    size_t pos;       /* bytes consumed (heads by the parser, bodies by fc_body_read) */
    int alt;          /* mode bit 1 */
    int head_req;     /* mode bit 2 */
} conn_t;

static fc_http_head_t head;  /* ~8 KiB: kept off the stack */
static fc_http_head_t again; /* a rebuilt head parsed again */
static fc_buf_t trailers, wire, tail, redo, conn_opts;

/* The Connection options of <h> joined as keep_connection in src/exchange.c does: trailers they
 * name are dropped. */
static fc_slice_t connection_options(const fc_http_head_t *h)
{
    conn_opts.len = 0;
    for (size_t i = 0; i < h->nheaders; i++) {
        if (!FC_SLICE_IEQ(h->headers[i].name, "connection")) continue;
        CHECK(fc_buf_append(&conn_opts, h->headers[i].value.p, h->headers[i].value.n) == 0);
        CHECK(fc_buf_append(&conn_opts, ",", 1) == 0);
    }
    return (fc_slice_t){conn_opts.base, conn_opts.len};
}

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

/* <s> lies inside <outer>. */
static int inside(fc_slice_t s, fc_slice_t outer)
{
    return s.n == 0 || (outer.p != NULL && s.p >= outer.p && s.n <= outer.n && (size_t)(s.p - outer.p) <= outer.n - s.n);
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
    for (size_t i = 0; i < h->nheaders; i++) {
        (void)fc_http_is_token(h->headers[i].name);
        (void)fc_msg_valid_authority(h->headers[i].value);
        int hop = fc_headers_is_hop(h, h->headers[i].name);
        /* a Connection option never removes the framing or the Host */
        if (FC_SLICE_IEQ(h->headers[i].name, "content-length") || FC_SLICE_IEQ(h->headers[i].name, "host") ||
            FC_SLICE_IEQ(h->headers[i].name, "transfer-encoding"))
            CHECK(!hop);
        /* A header value as the token list and another header's name as the token. */
        if (i > 0) (void)fc_http_has_token(h->headers[i].value, h->headers[i - 1].name.p, h->headers[i - 1].name.n);
    }
}

/* The number of field lines of head <b> named <name> (case-insensitive), and whether any field
 * name has a '_' (*<under>). */
static unsigned count_fields(const fc_buf_t *b, const char *name, int *under)
{
    size_t nl = strlen(name);
    unsigned n = 0;
    const char *p = memchr(b->base, '\n', b->len); /* after the start line */
    const char *end = b->base + b->len;
    while (p != NULL && p + 1 < end) {
        const char *line = p + 1;
        const char *eol = memchr(line, '\n', (size_t)(end - line));
        if (eol == NULL) break;
        const char *colon = memchr(line, ':', (size_t)(eol - line));
        if (colon != NULL) {
            if ((size_t)(colon - line) == nl && strncasecmp(line, name, nl) == 0) n++;
            if (under != NULL && memchr(line, '_', (size_t)(colon - line)) != NULL) *under = 1;
        }
        p = eol;
    }
    return n;
}

static void check_built(const fc_buf_t *b, const char *start)
{
    size_t sl = strlen(start);
    CHECK(b->len >= sl + 4 && b->len <= b->cap);
    CHECK(memcmp(b->base, start, sl) == 0);
    CHECK(memcmp(b->base + b->len - 4, "\r\n\r\n", 4) == 0);
}

/* The decimal value of the one Content-Length line of <b>. */
static uint64_t built_length(const fc_buf_t *b)
{
    static const char key[] = "\r\nContent-Length: ";
    const char *p = memmem(b->base, b->len, key, sizeof(key) - 1);
    CHECK(p != NULL);
    p += sizeof(key) - 1;
    uint64_t n = 0;
    CHECK(*p >= '0' && *p <= '9');
    CHECK(*p != '0' || p[1] == '\r'); /* normalised: no leading zeros */
    while (*p >= '0' && *p <= '9') n = n * 10 + (uint64_t)(*p++ - '0');
    CHECK(*p == '\r');
    return n;
}

/* Parses the head in <b> again as the next hop would: HEAD_DONE with every byte used. */
static int reparse(const fc_buf_t *b, fc_http_parser_t *p, llhttp_type_t type, int head_req)
{
    size_t used = 0;
    fc_http_parser_init(p, type);
    p->head = &again;
    p->skip_body = (uint8_t)head_req;
    int ev = fc_http_execute(p, b->base, b->len, &used);
    if (ev != FC_HTTP_HEAD_DONE) return 0;
    CHECK(used == b->len);
    return 1;
}

/* Kept trailer lines: "name:value\r\n" with a token name that is never a dropped one nor one the
 * Connection options <conn> name. */
static void check_trailers(const fc_buf_t *t, fc_slice_t conn)
{
    static const char *const dropped[] = {"content-length", "transfer-encoding", "host", "connection", "keep-alive",
                                          "proxy-connection", "te", "trailer", "upgrade"};
    size_t i = 0;
    while (i < t->len) {
        const char *line = t->base + i;
        const char *eol = memmem(line, t->len - i, "\r\n", 2);
        CHECK(eol != NULL);
        const char *colon = memchr(line, ':', (size_t)(eol - line));
        CHECK(colon != NULL);
        fc_slice_t name = {line, (size_t)(colon - line)};
        CHECK(fc_http_is_token(name));
        for (size_t k = 0; k < sizeof(dropped) / sizeof(dropped[0]); k++)
            CHECK(!fc_slice_ieq(name, dropped[k], strlen(dropped[k])));
        CHECK(conn.n == 0 || !fc_http_has_token(conn, name.p, name.n));
        for (const char *q = colon + 1; q < eol; q++)
            CHECK(*q == '\t' || ((unsigned char)*q >= 0x20 && *q != 0x7f));
        i = (size_t)(eol - t->base) + 2;
    }
}

/* One fc_body_read as pump_request/pump_response make it, at c->pos with what is available; the
 * decoded end is *<dec>. Checks the contract and moves c->pos and *<dec> on. */
static int read_body(conn_t *c, fc_body_t *b, size_t *dec, size_t body_start)
{
    int chunked = b->framing == FC_FRAME_CHUNKED;
    size_t avail = c->end - c->pos, used = (size_t)-1, made = (size_t)-1;
    char *in = c->buf + c->pos;
    uint64_t total_before = b->total;
    int ev = fc_body_read(b, in, avail, chunked ? c->buf + *dec : in, &used, &made);
    CHECK(ev == FC_BODY_MORE || ev == FC_BODY_DONE || ev == FC_BODY_ERROR);
    CHECK(used <= avail && made <= used);
    if (!chunked) CHECK(made == used);
    if (ev == FC_BODY_MORE) CHECK(used == avail);
    if (ev == FC_BODY_ERROR) CHECK(b->error != NULL && b->error[0] != '\0');
    CHECK(b->total == total_before + made);
    c->pos += used;
    *dec = chunked ? *dec + made : c->pos;
    CHECK(*dec <= c->pos);
    CHECK(b->total == *dec - body_start);
    /* bytes not consumed yet are untouched by the in-place decoding */
    CHECK(memcmp(c->buf + c->pos, c->orig + c->pos, c->end - c->pos) == 0);
    if (ev != FC_BODY_MORE) {
        /* nothing more is read after the end or an error */
        size_t u2 = 1, m2 = 1;
        CHECK(fc_body_read(b, in + used, avail - used, in + used, &u2, &m2) == ev);
        CHECK(u2 == 0 && m2 == 0);
    }
    return ev;
}

/* Makes the second read available. */
static int more(conn_t *c)
{
    if (c->end == c->len) return 0;
    ASAN_UNPOISON_MEMORY_REGION(c->buf + c->end, c->len - c->end);
    c->end = c->len;
    return 1;
}

/* Reads a body of <framing>/<length> from c->pos to its end, an error or the end of the input
 * (then EOF: fc_body_eof), framing it again as fulcrum's chunk lines when <rechunk> (and then
 * checking that those decode to the same payload and trailers). Returns the last event. */
static int run_body(conn_t *c, int framing, uint64_t length, int keep_trailers, int rechunk, fc_slice_t conn)
{
    fc_body_t b;
    size_t start = c->pos, dec = c->pos, fwd = c->pos;
    char pfx[FC_CHUNK_PREFIX_MAX];
    fc_body_init(&b, framing, length, keep_trailers ? &trailers : NULL);
    b.connection = conn;
    wire.len = 0;
    int ev;
    for (;;) {
        ev = read_body(c, &b, &dec, start); /* with no bytes too: a bodiless message ends here */
        if (rechunk && ev != FC_BODY_ERROR) {
            size_t n = dec - fwd;
            int last = ev == FC_BODY_DONE;
            if (n > 0) {
                size_t pl = fc_chunk_prefix(pfx, n);
                CHECK(pl >= 3 && pl <= FC_CHUNK_PREFIX_MAX && pfx[pl - 2] == '\r' && pfx[pl - 1] == '\n');
                CHECK(fc_buf_append(&wire, pfx, pl) == 0);
                CHECK(fc_buf_append(&wire, c->buf + fwd, n) == 0);
            }
            tail.len = 0;
            if (n > 0 || last) CHECK(fc_chunk_suffix(&tail, &b, n, last) == 0);
            CHECK(fc_buf_append(&wire, tail.base, tail.len) == 0);
        }
        fwd = dec;
        if (ev != FC_BODY_MORE || !more(c)) break;
    }
    if (ev == FC_BODY_MORE) {
        int e = fc_body_eof(&b);
        CHECK(e == (framing == FC_FRAME_EOF ? FC_BODY_DONE : FC_BODY_ERROR));
        if (e == FC_BODY_ERROR) CHECK(b.error != NULL);
        return e == FC_BODY_DONE ? FC_BODY_DONE : FC_BODY_MORE;
    }
    if (ev == FC_BODY_DONE && framing == FC_FRAME_CHUNKED) {
        if (keep_trailers) check_trailers(&trailers, conn);
        if (rechunk) {
            /* fulcrum's own chunk lines decode to the same payload and the same kept trailers */
            fc_body_t b2;
            size_t used = 0, made = 0, tl = keep_trailers ? trailers.len : 0;
            redo.len = 0;
            if (tl > 0) CHECK(fc_buf_append(&redo, trailers.base, tl) == 0);
            static fc_buf_t t2;
            fc_body_init(&b2, FC_FRAME_CHUNKED, 0, &t2);
            CHECK(wire.len > 0);
            CHECK(fc_body_read(&b2, wire.base, wire.len, wire.base, &used, &made) == FC_BODY_DONE);
            CHECK(used == wire.len);
            CHECK(made == dec - start && memcmp(wire.base, c->buf + start, made) == 0);
            CHECK(t2.len == tl && (tl == 0 || memcmp(t2.base, redo.base, tl) == 0));
            fc_buf_free(&t2);
        }
    }
    return ev;
}

/* The request head for a server: built, checked, parsed and checked again as the server would. */
static void build_request(const conn_t *c, const fc_http_head_t *h, const fc_request_view_t *v)
{
    static const fc_head_opts_t opts[2] = {{.via = {"fulcrum", 7}}, {.via = {NULL, 0}, .allow_underscores = 1, .https = 1}};
    const fc_head_opts_t *o = &opts[c->alt];
    fc_buf_t out = {0};
    CHECK(fc_headers_build_request(&out, h, v, "192.0.2.7", FALLBACK_HOST, o) == 0);
    check_built(&out, "");
    CHECK(out.len > h->method.n && memcmp(out.base, h->method.p, h->method.n) == 0);
    int under = 0;
    CHECK(count_fields(&out, "content-length", &under) == (v->framing == FC_FRAME_LENGTH));
    CHECK(count_fields(&out, "transfer-encoding", NULL) == (v->framing == FC_FRAME_CHUNKED));
    CHECK(count_fields(&out, "host", NULL) == 1);
    CHECK(count_fields(&out, "via", NULL) >= (o->via.n > 0));
    if (!o->allow_underscores) CHECK(!under);
    if (v->framing == FC_FRAME_LENGTH) CHECK(built_length(&out) == v->length);
    /* The server reads the same message: same framing, target and Host. Past ~240 fields the
     * added ones may pass FC_HTTP_MAX_HEADERS: not checked there. */
    if (h->nheaders < 240) {
        fc_http_parser_t p2;
        fc_request_view_t v2;
        CHECK(reparse(&out, &p2, HTTP_REQUEST, 0));
        CHECK(fc_msg_check_request(&again, &p2.ll, &v2) == 0);
        CHECK(v2.framing == v->framing && v2.length == v->length);
        CHECK(!v2.host_from_target && !v2.target_slash);
        CHECK(v2.target.n == v->target.n + v->target_slash);
        CHECK(memcmp(v2.target.p + v->target_slash, v->target.p, v->target.n) == 0);
        fc_slice_t want_host = v->has_host || v->host_from_target ? v->host : (fc_slice_t){FALLBACK_HOST, strlen(FALLBACK_HOST)};
        CHECK(v2.host.n == want_host.n && (want_host.n == 0 || memcmp(v2.host.p, want_host.p, want_host.n) == 0));
    }
    fc_buf_free(&out);
}

/* Client side: one parser per request (src/conn.c), the head checked (fc_exchange_start), the
 * body read from the first byte after the head and framed again (pump_request), pipelined
 * requests in turn. */
static void run_requests(conn_t *c)
{
    fc_http_parser_t p;
    for (;;) {
        if (c->pos == c->len) return; /* an idle connection: nothing more came */
        fc_http_parser_init(&p, HTTP_REQUEST);
        p.head = &head;
        int ev;
        for (;;) {
            size_t avail = c->end - c->pos, used = (size_t)-1;
            ev = fc_http_execute(&p, c->buf + c->pos, avail, &used);
            CHECK(used <= avail);
            c->pos += used;
            CHECK(ev == FC_HTTP_NEED_MORE || ev == FC_HTTP_HEAD_DONE || ev == FC_HTTP_MSG_DONE || ev == FC_HTTP_ERROR);
            if (ev == FC_HTTP_NEED_MORE) CHECK(c->pos == c->end);
            if (ev == FC_HTTP_MSG_DONE) continue; /* the end of a bodiless message before this one */
            if (ev == FC_HTTP_NEED_MORE && more(c)) continue;
            break;
        }
        if (ev == FC_HTTP_NEED_MORE) return; /* EOF inside a head */
        if (ev == FC_HTTP_ERROR) {
            const char *why = fc_http_error(&p);
            CHECK(why != NULL && why[0] != '\0');
            int st = fc_msg_request_error_status(&p, c->buf, c->end);
            CHECK(st == 400 || st == 431 || st == 501 || st == 505);
            return;
        }
        check_head(c, &head, 1);
        use_helpers(&head);
        fc_request_view_t v;
        int st = fc_msg_check_request(&head, &p.ll, &v);
        if (st != 0) { /* answered with an error, the connection closed */
            CHECK(st == 400 || st == 405 || st == 501 || st == 505);
            CHECK(v.why != NULL && v.why[0] != '\0');
            return;
        }
        CHECK(v.framing == FC_FRAME_NONE || v.framing == FC_FRAME_LENGTH || v.framing == FC_FRAME_CHUNKED);
        CHECK(v.framing == FC_FRAME_LENGTH || v.length == 0);
        /* A literal "/" (absolute-form, empty path) or "*" (the same for OPTIONS, answered locally). */
        CHECK(inside(v.target, head.url) || (v.target.n == 1 && v.target.p[0] == '/') ||
              (v.local && v.target.n == 1 && v.target.p[0] == '*'));
        CHECK(v.target.n > 0);
        if (v.host_from_target) CHECK(inside(v.host, head.url) && v.host.n > 0);
        else if (v.has_host) CHECK(fc_http_find(&head, "host", 4) != NULL);
        else CHECK(v.host.n == 0 && head.minor == 0);
        CHECK(fc_msg_valid_authority(v.host));
        CHECK(v.max_forwards >= -1);
        if (v.local) {
            if (v.framing != FC_FRAME_NONE) return;
            continue; /* answered by fulcrum, the next request */
        }
        build_request(c, &head, &v);
        if (run_body(c, v.framing, v.length, 1, v.framing == FC_FRAME_CHUNKED, connection_options(&head)) != FC_BODY_DONE)
            return;
        if (!llhttp_should_keep_alive(&p.ll)) return;
    }
}

/* The response head for a client, built and checked; a final one is parsed and checked again as
 * the client would. */
static void build_response(const fc_http_head_t *h, const fc_response_view_t *v, int flags, int head_req)
{
    static const fc_head_opts_t o = {.via = {"fulcrum", 7}};
    fc_buf_t out = {0};
    CHECK(fc_headers_build_response(&out, h, v, flags, "Sun, 06 Nov 1994 08:49:37 GMT", &o) == 0);
    check_built(&out, "HTTP/1.1 ");
    int has_te = v != NULL && v->chunked && !(flags & FC_RESP_DECHUNK);
    CHECK(count_fields(&out, "content-length", NULL) == (v != NULL && v->has_length));
    CHECK(count_fields(&out, "transfer-encoding", NULL) == (unsigned)has_te);
    CHECK(count_fields(&out, "date", NULL) >= 1);
    if (v != NULL && v->has_length) CHECK(built_length(&out) == v->length);
    if (v != NULL && h->nheaders < 240) {
        fc_http_parser_t p2;
        fc_response_view_t v2;
        CHECK(reparse(&out, &p2, HTTP_RESPONSE, head_req));
        CHECK(fc_msg_check_response(&again, &p2.ll, head_req, &v2) == 0);
        int want = v->framing;
        if (want == FC_FRAME_CHUNKED && (flags & FC_RESP_DECHUNK)) want = FC_FRAME_EOF; /* ended by the close */
        CHECK(v2.framing == want);
        CHECK(v2.has_length == v->has_length && v2.length == v->length);
    }
    fc_buf_free(&out);
}

/* Server side: one parser per upstream connection, llhttp_reset between responses when the
 * connection goes back to the pool (fc_pool_release), 1xx heads before the final one; the body
 * read by body.c from the first byte after the final head. */
static void run_responses(conn_t *c)
{
    fc_http_parser_t p;
    int http10 = c->alt;
    fc_http_parser_init(&p, HTTP_RESPONSE);
    for (;;) {
        p.head = &head;
        p.skip_body = (uint8_t)c->head_req;
        int ev;
        for (;;) { /* the head phase of pump_response */
            size_t avail = c->end - c->pos, used = (size_t)-1;
            ev = fc_http_execute(&p, c->buf + c->pos, avail, &used);
            CHECK(used <= avail);
            c->pos += used;
            CHECK(ev == FC_HTTP_NEED_MORE || ev == FC_HTTP_HEAD_DONE || ev == FC_HTTP_MSG_DONE || ev == FC_HTTP_ERROR);
            if (ev == FC_HTTP_NEED_MORE) {
                CHECK(c->pos == c->end);
                if (more(c)) continue;
                return; /* the server closed before or inside the head: 502 */
            }
            if (ev == FC_HTTP_ERROR) {
                const char *why = fc_http_error(&p);
                CHECK(why != NULL && why[0] != '\0');
                return; /* 502 */
            }
            if (ev == FC_HTTP_MSG_DONE) continue; /* the end of a 1xx */
            check_head(c, &head, 0);
            use_helpers(&head);
            if (head.status >= 200) break;
            if (head.status == 101) return; /* not tunnelled: the exchange fails */
            build_response(&head, NULL, 0, c->head_req);
        }
        fc_response_view_t rv;
        if (fc_msg_check_response(&head, &p.ll, c->head_req, &rv) != 0) {
            CHECK(rv.why != NULL && rv.why[0] != '\0');
            return; /* 502, the server connection closed */
        }
        int st = head.status;
        if (c->head_req || st == 204 || st == 304) CHECK(rv.framing == FC_FRAME_NONE);
        if (st == 204) CHECK(!rv.has_length && !rv.chunked);
        if (rv.framing == FC_FRAME_CHUNKED) CHECK(rv.chunked && !rv.has_length);
        if (rv.framing == FC_FRAME_LENGTH) CHECK(rv.has_length && !rv.chunked);
        if (rv.framing == FC_FRAME_EOF) CHECK(!rv.has_length && !rv.chunked);
        int rechunk = rv.framing == FC_FRAME_CHUNKED && !http10;
        int flags = http10 ? FC_RESP_DECHUNK : 0;
        int client_keepalive = llhttp_should_keep_alive(&p.ll); /* stands in for the client's */
        if (rv.framing == FC_FRAME_EOF || (rv.framing == FC_FRAME_CHUNKED && http10)) client_keepalive = 0;
        flags |= client_keepalive ? (http10 ? FC_RESP_KEEPALIVE : 0) : FC_RESP_CLOSE;
        build_response(&head, &rv, flags, c->head_req);
        p.head = NULL;
        if (run_body(c, rv.framing, rv.length, rechunk, rechunk, connection_options(&head)) != FC_BODY_DONE) return;
        if (rv.framing == FC_FRAME_EOF) return; /* ended by the close */
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
    c.orig = (const char *)data + 1;
    c.alt = (mode >> 1) & 1;
    c.head_req = (mode >> 2) & 1;
    c.end = c.len * (size_t)(mode >> 3) / 32;
    if (c.end < c.len) ASAN_POISON_MEMORY_REGION(c.buf + c.end, c.len - c.end);
    if (mode & 1) run_responses(&c);
    else run_requests(&c);
    if (c.end < c.len) ASAN_UNPOISON_MEMORY_REGION(c.buf + c.end, c.len - c.end);
    free(c.buf);
    return 0;
}
