/* fuzz_respond.c: libFuzzer target for what fulcrum sends a client in answer, checked against an
 * independent strict parser (strict.c). Built and run by `make fuzz` (and `make fuzz-long`).
 *
 * It drives the pure modules as the proxy does with the bytes a server sends:
 * fc_http_parser_init(HTTP_RESPONSE) (skip_body for a HEAD request) -> fc_http_execute to each
 * head (a 1xx head, then its FC_HTTP_MSG_DONE, is forwarded with fc_headers_build_response(NULL)
 * to an HTTP/1.1 client and skipped for HTTP/1.0) -> fc_msg_check_response on the final head ->
 * fc_headers_build_response with the flags the exchange would use -> fc_body_read over the bytes
 * after the head: chunked re-encoded with fc_chunk_prefix/fc_chunk_suffix for an HTTP/1.1 client,
 * decoded (FC_RESP_DECHUNK) for an HTTP/1.0 one; Content-Length and close-delimited bodies
 * copied; fc_body_eof at the end of the input for a close-delimited one. Responses after a
 * kept-alive one stand for the next responses on the pooled connection.
 *
 * Input layout (a seed in tests/fuzz/corpus/respond/ is a plain file laid out the same way):
 *   byte 0   options: bit 0 the request was HEAD; bit 1 the client speaks HTTP/1.0; bit 2 via:
 *            off; bit 3 a chunked body is decoded into one compacted run instead of in place;
 *            bit 4 an HTTP/1.1 client sent Connection: close / an HTTP/1.0 one asked keep-alive
 *            (an HTTP/1.0 client always gets FC_RESP_DECHUNK, as src/exchange.c does)
 *   byte 1   the size of each read (1..255), 0 = everything in one read
 *   bytes 2.. what the server sends
 * Handy option bytes: "\x00\x00" GET from an HTTP/1.1 client, "\x01\x00" HEAD, "\x02\x00" an
 * HTTP/1.0 client.
 *
 * Invariants, for every response fulcrum read to its end (a violation prints and aborts):
 *   1. what fulcrum sends parses with strict.c (for a HEAD request: no body) into the 1xx heads
 *      fulcrum saw (none for HTTP/1.0) and exactly one final response, nothing after it;
 *   2. same status; the body is the payload fulcrum produced; the framing is fulcrum's: chunked
 *      for an HTTP/1.1 client when the server chunked, none for HTTP/1.0 (then close-delimited,
 *      with Connection: close), the Content-Length view.length (kept for HEAD and 304), none
 *      for 1xx and 204; never two framing fields;
 *   3. no hop-by-hop field, no field that is not the server's or fulcrum's (Via, Date,
 *      Connection, framing), every server field that is not hop-by-hop or framing kept, the
 *      last Via is fulcrum's unless via: off, exactly one Date when the server sent at most one;
 *      trailers: none of Content-Length, Transfer-Encoding, Host or hop-by-hop, the rest the
 *      server's, in order;
 *   4. differential: when strict.c finds the server's response malformed or its framing
 *      ambiguous, fulcrum must have refused it (two equal Content-Lengths excepted, when
 *      fulcrum reads them as that length); when strict.c accepts it, status, framing, body and
 *      where it ends agree.
 *
 * FUZZ_SOFT=start,... (environment) turns those classes of findings into reports only. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fulcrum/body.h"
#include "fulcrum/buf.h"
#include "fulcrum/headers.h"
#include "fulcrum/http.h"
#include "fulcrum/message.h"
#include "inv.h"
#include "strict.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define DATE "Tue, 01 Dec 2026 19:00:00 GMT"
#define MAX_RESPONSES 8
#define MAX_INTERIM 16

static fc_http_head_t head;
static st_msg_t st_in, st_out;

typedef struct opts {
    fc_head_opts_t head;
    int req_head, client10, lag, client_ka;
} opts_t;

/* What fulcrum did with one response: the statuses of the 1xx it forwarded and the final one. */
typedef struct seen {
    int interim[MAX_INTERIM];
    size_t ninterim;   /* 1xx heads fulcrum parsed */
    size_t nforwarded; /* of them, forwarded */
    int status;
    int flags;
    int date_in;       /* Date fields the server sent */
} seen_t;

/* fulcrum's own Via entry: "1.<minor of the received message> <via name>" (RFC 9110 7.6.3). */
static int via_is_ours(const st_field_t *f, const opts_t *o)
{
    char want[64];
    int n = snprintf(want, sizeof(want), "1.%d %.*s", head.minor, (int)o->head.via.n, o->head.via.p);
    return n > 0 && (size_t)n < sizeof(want) && bytes_eq(f->value, f->value_len, want, (size_t)n);
}

static int conn_has(const st_msg_t *m, const char *tok)
{
    for (size_t i = 0; i < m->nfields; i++) {
        const st_field_t *f = &m->fields[i];
        if (!st_name_is(f, "connection")) continue;
        size_t k = 0, n = f->value_len;
        while (k <= n) {
            size_t s = k;
            while (k < n && f->value[k] != ',') k++;
            size_t e = k;
            while (s < e && (f->value[s] == ' ' || f->value[s] == '\t')) s++;
            while (e > s && (f->value[e - 1] == ' ' || f->value[e - 1] == '\t')) e--;
            if (lit_ieq(f->value + s, e - s, tok)) return 1;
            k++;
        }
    }
    return 0;
}

/* The final head's fields against the server's (invariant 3). */
static void check_fields(const opts_t *o, const seen_t *s)
{
    static unsigned char used[ST_MAX_FIELDS];
    memset(used, 0, sizeof(used));
    long last_via = -1;
    for (size_t i = 0; i < st_out.nfields; i++) {
        const st_field_t *f = &st_out.fields[i];
        if (st_name_is(f, "via")) last_via = (long)i;
        if (st_name_is(f, "connection")) continue; /* fulcrum's own (flags) */
        EXPECT("hop", !is_hop_name(f->name, f->name_len), "hop-by-hop field %.*s forwarded", (int)f->name_len, f->name);
        if (is_framing_name(f->name, f->name_len)) continue;
        int found = 0;
        for (size_t k = 0; k < head.nheaders && !found; k++) {
            fc_slice_t n = head.headers[k].name, val = trim_ows(head.headers[k].value);
            if (names_ieq(n.p, n.n, f->name, f->name_len) && bytes_eq(val.p, val.n, f->value, f->value_len)) found = 1;
        }
        if (!found && st_name_is(f, "via") && o->head.via.p && via_is_ours(f, o))
            found = 1;
        if (!found && st_name_is(f, "date") && s->date_in == 0 && bytes_eq(f->value, f->value_len, DATE, strlen(DATE)))
            found = 1;
        EXPECT("invented", found, "field '%.*s: %.*s' is not the server's", (int)f->name_len, f->name, (int)f->value_len,
               f->value);
    }
    for (size_t k = 0; k < head.nheaders; k++) {
        fc_slice_t n = head.headers[k].name, val = trim_ows(head.headers[k].value);
        if (is_hop_name(n.p, n.n) || is_framing_name(n.p, n.n) || connection_lists(&head, n.p, n.n)) continue;
        long at = find_field(st_out.fields, st_out.nfields, n.p, n.n, val.p, val.n, used);
        EXPECT("lost", at >= 0, "the server's field '%.*s: %.*s' is not forwarded", (int)n.n, n.p, (int)val.n, val.p);
        if (at >= 0) used[at] = 1;
    }
    if (o->head.via.p != NULL)
        EXPECT("via", last_via >= 0 && via_is_ours(&st_out.fields[last_via], o),
               "the last Via is not '1.%d %.*s'", head.minor, (int)o->head.via.n, o->head.via.p);
    if (s->date_in <= 1 && !connection_lists(&head, "date", 4))
        EXPECT("date", st_count(&st_out, "date", NULL) == 1, "%zu Date fields sent (the server sent %d)",
               st_count(&st_out, "date", NULL), s->date_in);
}

/* The class of a strict.c refusal of what fulcrum sent: a reason phrase or a status out of
 * range and a malformed field line are their own findings (FUZZ_SOFT can quiet them), anything else is "forwarded". */
static const char *out_class(int r)
{
    if (r == ST_ERR_FIELD) return "field-out";
    if (r != ST_ERR_START || st_out.why == NULL) return "forwarded";
    if (strstr(st_out.why, "reason")) return "reason";
    if (strstr(st_out.why, "outside")) return "status";
    return "forwarded";
}

/* Invariants 1-3 on <out>. */
static void check_sent(const fc_buf_t *out, const fc_response_view_t *v, const fc_buf_t *payload, const opts_t *o,
                       const seen_t *s)
{
    rep.fwd = out->base;
    rep.fwd_len = out->len;
    size_t off = 0;
    for (size_t i = 0; i < s->nforwarded; i++) {
        int r = st_parse_response(out->base + off, out->len - off, o->req_head, &st_out);
        EXPECT(out_class(r), r == ST_OK && st_out.status == s->interim[i], "1xx head %zu sent does not parse strictly as %d: %s: %s",
               i, s->interim[i], st_result_name(r), st_out.why ? st_out.why : "");
        if (r != ST_OK) {
            if (strcmp(out_class(r), "forwarded") == 0) return;
            /* soft: go past the head (its status line is all that is wrong) */
            const char *e = memmem(out->base + off, out->len - off, "\r\n\r\n", 4);
            if (e == NULL) return;
            off = (size_t)(e + 4 - out->base);
            st_free(&st_out);
            continue;
        }
        EXPECT("framing", !st_out.has_cl && !st_out.has_te, "a 1xx sent with a framing field");
        off += st_out.end;
        st_free(&st_out);
    }
    int r = st_parse_response(out->base + off, out->len - off, o->req_head, &st_out);
    EXPECT(out_class(r), r == ST_OK,
           "the response sent does not parse strictly: %s: %s at offset %zu", st_result_name(r),
           st_out.why ? st_out.why : "", off + st_out.err_off);
    if (r != ST_OK) return;
    EXPECT("status", st_out.status == s->status, "status %d sent, %d received", st_out.status, s->status);
    EXPECT("forwarded", off + st_out.end == out->len, "%zu bytes after the response sent", out->len - off - st_out.end);
    EXPECT("body", bytes_eq(st_out.body, st_out.body_len, payload->base, payload->len),
           "the body sent (%zu bytes) is not the payload fulcrum read (%zu bytes)", st_out.body_len, payload->len);
    int st = s->status, dechunk = s->flags & FC_RESP_DECHUNK;
    if (st < 200 || st == 204) EXPECT("framing", !st_out.has_cl && !st_out.has_te, "a %d sent with a framing field", st);
    switch (v->framing) {
    case FC_FRAME_LENGTH:
        EXPECT("framing", st_out.has_cl == 1 && !st_out.has_te && st_out.framing == ST_FRAME_LENGTH &&
                              st_out.content_length == v->length,
               "framing sent: cl %d te %d (%d), decided Content-Length %llu", st_out.has_cl, st_out.has_te,
               st_out.framing, (unsigned long long)v->length);
        break;
    case FC_FRAME_CHUNKED:
        if (dechunk)
            EXPECT("framing", !st_out.has_cl && !st_out.has_te && conn_has(&st_out, "close"),
                   "decoded for HTTP/1.0 but sent with cl %d te %d, Connection: close %d", st_out.has_cl, st_out.has_te,
                   conn_has(&st_out, "close"));
        else
            EXPECT("framing", st_out.has_te == 1 && !st_out.has_cl && st_out.framing == ST_FRAME_CHUNKED,
                   "framing sent: cl %d te %d, decided chunked", st_out.has_cl, st_out.has_te);
        break;
    case FC_FRAME_EOF:
        EXPECT("framing", !st_out.has_cl && !st_out.has_te && conn_has(&st_out, "close"),
               "close-delimited but sent with cl %d te %d, Connection: close %d", st_out.has_cl, st_out.has_te,
               conn_has(&st_out, "close"));
        break;
    default: /* no body: HEAD and 304 keep what the server said */
        EXPECT("framing", st_out.has_cl == (v->has_length ? 1 : 0) && (!v->has_length || st_out.content_length == v->length),
               "no body: Content-Length sent %d (%llu), decided %d (%llu)", st_out.has_cl,
               (unsigned long long)st_out.content_length, v->has_length, (unsigned long long)v->length);
        if (!dechunk && st >= 200 && st != 204)
            EXPECT("framing", st_out.has_te == (v->chunked ? 1 : 0), "no body: Transfer-Encoding sent %d, server chunked %d",
                   st_out.has_te, v->chunked);
    }
    if (dechunk) EXPECT("framing", !st_out.has_te, "Transfer-Encoding sent though the body is decoded");
    if (o->client10) EXPECT("framing", !st_out.has_te, "Transfer-Encoding sent to an HTTP/1.0 client (RFC 9112 6.1)");
    if (s->flags & FC_RESP_CLOSE) EXPECT("connection", conn_has(&st_out, "close"), "FC_RESP_CLOSE without Connection: close");
    if (s->flags & FC_RESP_KEEPALIVE)
        EXPECT("connection", conn_has(&st_out, "keep-alive"), "FC_RESP_KEEPALIVE without Connection: keep-alive");
    check_fields(o, s);
    check_no_dropped_trailers(&st_out);
}

static int framing_same(int st, int fc)
{
    return (st == ST_FRAME_NONE && fc == FC_FRAME_NONE) || (st == ST_FRAME_LENGTH && fc == FC_FRAME_LENGTH) ||
           (st == ST_FRAME_CHUNKED && fc == FC_FRAME_CHUNKED) || (st == ST_FRAME_CLOSE && fc == FC_FRAME_EOF);
}

/* Invariant 4: fulcrum read the response (1xx included) that starts at <start> in the server's
 * bytes and ends at <end>. */
static void check_differential(size_t start, size_t end, const fc_response_view_t *v, const fc_buf_t *payload,
                               const opts_t *o, const seen_t *s)
{
    const char *in = (const char *)rep.input;
    size_t off = start;
    int r;
    size_t k = 0;
    for (;;) {
        st_lenient = 1; /* what was received: RFC 9112's allowances for recipients apply */
        r = st_parse_response(in + off, rep.input_len - off, o->req_head, &st_in);
        st_lenient = 0;
        if (r != ST_OK || st_in.status >= 200) break;
        EXPECT("interim", k < s->ninterim && s->interim[k] == st_in.status, "1xx %zu: strict.c reads %d, fulcrum %d", k,
               st_in.status, k < s->ninterim ? s->interim[k] : -1);
        k++;
        off += st_in.end;
        st_free(&st_in);
    }
    switch (r) {
    case ST_OK:
        break;
    case ST_ERR_FRAMING:
        if (st_in.amb == ST_AMB_CL_MULTI_SAME) {
            EXPECT("ambiguous", framing_same(st_in.read_framing, v->framing) &&
                                    (v->framing != FC_FRAME_LENGTH || st_in.read_length == v->length),
                   "several equal Content-Lengths: fulcrum reads framing %d length %llu, RFC 9112 framing %d length %llu",
                   v->framing, (unsigned long long)v->length, st_in.read_framing, (unsigned long long)st_in.read_length);
            return;
        }
        violation("ambiguous", "fulcrum forwarded a response whose framing is ambiguous (%s); fulcrum read it as framing %d length %llu",
                  st_amb_name(st_in.amb), v->framing, (unsigned long long)v->length);
        return;
    case ST_ERR_FIELD:
        violation(strstr(st_in.why, "bare LF") ? "bare-lf" : "field", "fulcrum forwarded a response with a malformed field line: %s at offset %zu", st_in.why,
                  off + st_in.err_off);
        return;
    case ST_ERR_START:
        violation(strstr(st_in.why, "bare LF") ? "bare-lf" : strstr(st_in.why, "outside") ? "status" : strstr(st_in.why, "reason") ? "reason" : "start", "fulcrum forwarded a response with a malformed status-line: %s at offset %zu", st_in.why,
                  off + st_in.err_off);
        return;
    case ST_ERR_BODY:
        violation("chunked", "fulcrum forwarded a chunked body strict.c refuses: %s at offset %zu", st_in.why,
                  off + st_in.err_off);
        return;
    case ST_INCOMPLETE:
        violation("boundary", "fulcrum says the response ends at %zu, strict.c that it goes on past the input (%s)", end,
                  st_in.why);
        return;
    default:
        violation("other", "strict.c: %s: %s", st_result_name(r), st_in.why);
        return;
    }
    EXPECT("interim", k == s->ninterim, "%zu 1xx for strict.c, %zu for fulcrum", k, s->ninterim);
    EXPECT("status", st_in.status == s->status, "status: strict.c %d, fulcrum %d", st_in.status, s->status);
    EXPECT("boundary", off + st_in.end == end, "the response ends at %zu for fulcrum, at %zu for strict.c", end,
           off + st_in.end);
    EXPECT("framing", framing_same(st_in.framing, v->framing) && (v->framing != FC_FRAME_LENGTH || st_in.content_length == v->length),
           "framing: fulcrum %d (length %llu), strict.c %d (length %llu)", v->framing, (unsigned long long)v->length,
           st_in.framing, (unsigned long long)st_in.content_length);
    if (v->framing == FC_FRAME_NONE && st_in.has_cl == 1 && s->status >= 200 && s->status != 204)
        EXPECT("framing", v->has_length && v->length == st_in.content_length,
               "no body: the server's Content-Length %llu, fulcrum keeps %d (%llu)", (unsigned long long)st_in.content_length,
               v->has_length, (unsigned long long)v->length);
    EXPECT("body", bytes_eq(st_in.body, st_in.body_len, payload->base, payload->len),
           "body: fulcrum read %zu bytes, strict.c %zu (or different bytes)", payload->len, st_in.body_len);
    if (v->framing == FC_FRAME_CHUNKED && !(s->flags & FC_RESP_DECHUNK)) check_trailers(&st_in, &st_out);
}

static void check_refused_body(size_t start, const fc_body_t *b, const opts_t *o)
{
    size_t off = start;
    int r;
    for (;;) {
        st_lenient = 1; /* what was received: RFC 9112's allowances for recipients apply */
        r = st_parse_response((const char *)rep.input + off, rep.input_len - off, o->req_head, &st_in);
        st_lenient = 0;
        if (r != ST_OK || st_in.status >= 200) break;
        off += st_in.end;
        st_free(&st_in);
    }
    if (r != ST_OK || st_in.framing != ST_FRAME_CHUNKED) return;
    if (st_in.max_chunk_line > FC_CHUNKED_MAX_LINE - 2 || st_in.trailer_bytes > FC_CHUNKED_MAX_TRAILERS - 2 ||
        st_in.ntrailers > FC_CHUNKED_MAX_TRAILER_FIELDS)
        return; /* beyond a documented limit (body.h) */
    violation("refused", "fulcrum refused a chunked body strict.c accepts (%s)", b->error ? b->error : "no reason");
}

/* One response (its 1xx included) from f->buf + *pos. Returns 1 when the connection goes on. */
static int one_response(feed_t *f, size_t *pos, const opts_t *o)
{
    size_t start = *pos;
    fc_http_parser_t p;
    fc_http_parser_init(&p, HTTP_RESPONSE);
    p.head = &head;
    p.skip_body = (uint8_t)o->req_head;
    fc_buf_t out = {0}, payload = {0}, trailers = {0};
    seen_t s;
    memset(&s, 0, sizeof(s));
    int ret = 0;
    for (;;) {
        size_t used = (size_t)-1, avail = f->avail - *pos;
        int ev = fc_http_execute(&p, f->buf + *pos, avail, &used);
        CHECK(used <= avail);
        *pos += used;
        if (ev == FC_HTTP_NEED_MORE) {
            CHECK(*pos == f->avail);
            if (feed_more(f)) continue;
            goto out; /* the server closed before or inside the head: 502 */
        }
        if (ev == FC_HTTP_ERROR) goto out;
        if (ev == FC_HTTP_MSG_DONE) continue; /* the end of a 1xx */
        CHECK(ev == FC_HTTP_HEAD_DONE);
        /* As src/exchange.c: every head, 1xx included, is checked before any of it goes out. */
        fc_response_view_t v1;
        if (fc_msg_check_response(&head, &p.ll, o->req_head, &v1) != 0) goto out;
        if (head.status >= 200) break;
        if (head.status == 101) goto out; /* not tunnelled */
        if (s.ninterim == MAX_INTERIM) goto out;
        s.interim[s.ninterim++] = head.status;
        if (!o->client10) {
            s.interim[s.nforwarded++] = head.status;
            CHECK(fc_headers_build_response(&out, &head, &v1, 0, NULL, &o->head) == 0);
        }
    }
    s.status = head.status;
    for (size_t i = 0; i < head.nheaders; i++) s.date_in += lit_ieq(head.headers[i].name.p, head.headers[i].name.n, "date");
    fc_response_view_t v;
    memset(&v, 0, sizeof(v));
    int rc = fc_msg_check_response(&head, &p.ll, o->req_head, &v);
    if (rc != 0) {
        CHECK(rc == -1);
        goto out;
    }
    CHECK(v.framing <= FC_FRAME_EOF);
    if (o->req_head || head.status == 204 || head.status == 304) CHECK(v.framing == FC_FRAME_NONE);
    int ka = o->client_ka;
    if (v.framing == FC_FRAME_CHUNKED && o->client10) {
        s.flags |= FC_RESP_DECHUNK;
        ka = 0;
    }
    if (o->client10) s.flags |= FC_RESP_DECHUNK; /* never Transfer-Encoding to HTTP/1.0 (as src/exchange.c) */
    if (v.framing == FC_FRAME_EOF) ka = 0;
    if (!ka) s.flags |= FC_RESP_CLOSE;
    else if (o->client10) s.flags |= FC_RESP_KEEPALIVE;
    int server_ka = llhttp_should_keep_alive(&p.ll);
    CHECK(fc_headers_build_response(&out, &head, &v, s.flags, DATE, &o->head) == 0);
    CHECK(out.len >= 4 && memcmp(out.base + out.len - 4, "\r\n\r\n", 4) == 0);

    fc_body_t b;
    int done = v.framing == FC_FRAME_NONE, refused = 0, rechunk = v.framing == FC_FRAME_CHUNKED && !o->client10;
    fc_body_init(&b, v.framing, v.length, rechunk ? &trailers : NULL); /* decoded: trailers dropped */
    size_t body_start = *pos;
    while (!done) {
        size_t avail = f->avail - *pos, used = (size_t)-1, produced = (size_t)-1;
        char *in = f->buf + *pos;
        char *outp = v.framing == FC_FRAME_CHUNKED && o->lag ? f->buf + body_start + payload.len : in;
        uint64_t total_before = b.total;
        int r = fc_body_read(&b, in, avail, outp, &used, &produced);
        CHECK(used <= avail);
        CHECK(produced <= used);
        CHECK(b.total == total_before + produced);
        if (v.framing != FC_FRAME_CHUNKED) CHECK(produced == used);
        CHECK(r == FC_BODY_MORE || r == FC_BODY_DONE || r == FC_BODY_ERROR);
        if (v.framing == FC_FRAME_EOF) CHECK(r != FC_BODY_DONE);
        if (r == FC_BODY_ERROR) {
            CHECK(b.error != NULL);
            refused = 1;
            break;
        }
        buf_add(&payload, outp, produced);
        if (rechunk) {
            if (produced > 0) {
                char pre[FC_CHUNK_PREFIX_MAX + 8];
                size_t pl = fc_chunk_prefix(pre, produced);
                CHECK(pl > 2 && pl <= FC_CHUNK_PREFIX_MAX);
                buf_add(&out, pre, pl);
                buf_add(&out, outp, produced);
            }
            if (produced > 0 || r == FC_BODY_DONE) CHECK(fc_chunk_suffix(&out, &b, produced, r == FC_BODY_DONE) == 0);
        } else {
            buf_add(&out, outp, produced);
        }
        *pos += used;
        if (r == FC_BODY_DONE) {
            done = 1;
            break;
        }
        if (used == 0 && produced == 0 && used < avail) {
            if (!feed_more(f)) break;
            continue;
        }
        if (*pos == f->avail && !feed_more(f)) {
            if (v.framing == FC_FRAME_EOF) {
                int e = fc_body_eof(&b);
                CHECK(e == FC_BODY_DONE);
                done = 1;
            } else {
                CHECK(fc_body_eof(&b) == FC_BODY_ERROR); /* cut short */
            }
            break;
        }
    }
    if (done) {
        if (v.framing == FC_FRAME_LENGTH) CHECK(b.total == v.length);
        if (verbose()) put_escaped("checked: response sent", out.base, out.len, 4096);
        check_sent(&out, &v, &payload, o, &s);
        check_differential(start, *pos, &v, &payload, o, &s);
        ret = server_ka && v.framing != FC_FRAME_EOF;
    } else if (refused && v.framing == FC_FRAME_CHUNKED) {
        check_refused_body(start, &b, o);
    }
out:
    rep.fwd = NULL;
    st_free(&st_in);
    st_free(&st_out);
    fc_buf_free(&out);
    fc_buf_free(&payload);
    fc_buf_free(&trailers);
    return ret;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2) return 0;
    opts_t o;
    memset(&o, 0, sizeof(o));
    o.req_head = data[0] & 1;
    o.client10 = (data[0] >> 1) & 1;
    if (!(data[0] & 4)) o.head.via = (fc_slice_t){"fulcrum", 7};
    o.lag = (data[0] >> 3) & 1;
    o.client_ka = o.client10 ? (data[0] >> 4) & 1 : !((data[0] >> 4) & 1);
    feed_t f;
    feed_init(&f, data + 2, size - 2, data[1]);
    rep.input = data + 2;
    rep.input_len = size - 2;
    rep.fwd = NULL;
    rep.what = "response sent";
    size_t pos = 0;
    for (int i = 0; i < MAX_RESPONSES && pos < f.len; i++) {
        while (pos == f.avail && feed_more(&f)) {}
        if (!one_response(&f, &pos, &o)) break;
    }
    feed_free(&f);
    return 0;
}
