/* fuzz_forward.c: libFuzzer target for what fulcrum forwards to a server, checked against an
 * independent strict parser (strict.c). Built and run by `make fuzz` (and `make fuzz-long`).
 *
 * It drives the pure modules exactly as the proxy does for each request a client sends:
 * fc_http_execute (llhttp, paused after the head) -> fc_msg_check_request -> unless refused or
 * answered locally, fc_headers_build_request -> fc_body_init / fc_body_read over the bytes after
 * the head, a chunked body re-encoded with fc_chunk_prefix + payload + fc_chunk_suffix, a
 * Content-Length body copied. Pipelined requests are handled in turn while the connection is
 * kept alive.
 *
 * Input layout (a seed in tests/fuzz/corpus/forward/ is a plain file laid out the same way):
 *   byte 0   options: bit 0 underscores_in_headers: true; bit 1 via: off; bit 2 a chunked body is
 *            decoded into one compacted run (out lags behind in, as far as fc_body_read allows)
 *            instead of in place
 *   byte 1   the size of each read (1..255), 0 = everything in one read; bytes not read yet are
 *            poisoned for ASan
 *   bytes 2.. what the client sends
 * Handy option bytes for seeds: "\x00\x00" (defaults, one read), "\x00\x07" (7-byte reads).
 *
 * Invariants, for every request whose body fulcrum read to FC_BODY_DONE (a violation prints the
 * input, what was forwarded and why, and aborts):
 *   1. what fulcrum forwards parses with strict.c into exactly one request and nothing after it;
 *   2. its method is the client's, its target is view.target, its one Host is view.host (the
 *      fallback when the request had none), its body is the payload fulcrum produced;
 *   3. its framing is the one fulcrum decided: one Content-Length: view.length, or
 *      Transfer-Encoding: chunked, or none; no other Content-Length/Transfer-Encoding field;
 *   4. no field name with '_' unless allowed; no hop-by-hop field; no field fulcrum did not get
 *      from the client or add itself (Via, X-Forwarded-*, X-Real-IP, Host, Max-Forwards);
 *      every client field that is not hop-by-hop, framing or dropped is forwarded unchanged;
 *      the last Via is fulcrum's own unless via: off; Max-Forwards is view.max_forwards;
 *   5. no forwarded trailer is Content-Length, Transfer-Encoding, Host or hop-by-hop, and the
 *      others are the client's, in order;
 *   6. differential: strict.c parsing the client's bytes agrees: when it finds the request
 *      malformed or its framing ambiguous (TE+CL, two CLs, TE codings, bad chunk syntax, ...),
 *      fulcrum must not have forwarded it; when it accepts it, the method, the target and Host
 *      to route by, the framing, the body and the offset where the request ends are the same.
 * And when fulcrum refuses a chunked body strict.c accepts (within fulcrum's documented line
 * limits), that is a finding too: the decisions say every valid extension is accepted.
 *
 * FUZZ_SOFT=host,target,... (environment) turns those classes of findings into reports only. */
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

#define CLIENT_IP "192.0.2.1"
#define FALLBACK_HOST "backend.invalid:80"
#define MAX_PIPELINED 8

static fc_http_head_t head;   /* ~8 KiB: off the stack */
static st_msg_t st_in, st_out; /* ~70 KiB each */

typedef struct opts {
    fc_head_opts_t head;
    int lag;
} opts_t;

/* fulcrum's own Via entry: "1.<minor of the received message> <via name>" (RFC 9110 7.6.3). */
static int via_is_ours(const st_field_t *f, const opts_t *o)
{
    char want[64];
    int n = snprintf(want, sizeof(want), "1.%d %.*s", head.minor, (int)o->head.via.n, o->head.via.p);
    return n > 0 && (size_t)n < sizeof(want) && bytes_eq(f->value, f->value_len, want, (size_t)n);
}

/* <t> is the target fulcrum decided: view.target, after a "/" when view.target_slash. */
static int target_is(const char *t, size_t n, const fc_request_view_t *v)
{
    if (v->target_slash) {
        if (n == 0 || t[0] != '/') return 0;
        t++, n--;
    }
    return bytes_eq(t, n, v->target.p, v->target.n);
}

/* Checks what was forwarded for one request (invariants 1-5). */
static void check_forwarded(const fc_buf_t *out, const fc_request_view_t *v, const fc_buf_t *payload, const opts_t *o)
{
    rep.fwd = out->base;
    rep.fwd_len = out->len;
    int r = st_parse_request(out->base, out->len, &st_out);
    EXPECT("forwarded", r == ST_OK, "the forwarded request does not parse strictly: %s: %s at offset %zu",
           st_result_name(r), st_out.why ? st_out.why : "", st_out.err_off);
    if (r != ST_OK) return;
    EXPECT("forwarded", st_out.end == out->len, "%zu bytes after the forwarded request (it ends at %zu)",
           out->len - st_out.end, st_out.end);
    EXPECT("forwarded", st_out.minor == 1, "forwarded as HTTP/1.%d", st_out.minor);
    EXPECT("method", bytes_eq(st_out.method, st_out.method_len, head.method.p, head.method.n),
           "method forwarded as '%.*s', parsed as '%.*s'", (int)st_out.method_len, st_out.method, (int)head.method.n,
           head.method.p);
    EXPECT("target", target_is(st_out.target, st_out.target_len, v),
           "target forwarded as '%.*s', routed as '%s%.*s'", (int)st_out.target_len, st_out.target,
           v->target_slash ? "/" : "", (int)v->target.n, v->target.p);
    fc_slice_t want_host = v->has_host || v->host_from_target ? v->host : (fc_slice_t){FALLBACK_HOST, strlen(FALLBACK_HOST)};
    EXPECT("host", st_out.host_count == 1 && bytes_eq(st_out.host, st_out.host_len, want_host.p, want_host.n),
           "%d Host fields forwarded, the first '%.*s'; routed by '%.*s'", st_out.host_count, (int)st_out.host_len,
           st_out.host ? st_out.host : "", (int)want_host.n, want_host.p);
    EXPECT("body", bytes_eq(st_out.body, st_out.body_len, payload->base, payload->len),
           "the forwarded body (%zu bytes) is not the payload fulcrum read (%zu bytes)", st_out.body_len, payload->len);
    switch (v->framing) {
    case FC_FRAME_LENGTH:
        EXPECT("framing", st_out.framing == ST_FRAME_LENGTH && st_out.has_cl == 1 && !st_out.has_te &&
                              st_out.content_length == v->length,
               "framing: forwarded %d (cl %d te %d, %llu), decided Content-Length %llu", st_out.framing, st_out.has_cl,
               st_out.has_te, (unsigned long long)st_out.content_length, (unsigned long long)v->length);
        break;
    case FC_FRAME_CHUNKED:
        EXPECT("framing", st_out.framing == ST_FRAME_CHUNKED && st_out.has_te == 1 && !st_out.has_cl,
               "framing: forwarded %d (cl %d te %d), decided chunked", st_out.framing, st_out.has_cl, st_out.has_te);
        break;
    default:
        EXPECT("framing", st_out.framing == ST_FRAME_NONE && !st_out.has_te && !st_out.has_cl,
               "framing: forwarded %d (cl %d te %d), decided no body", st_out.framing, st_out.has_cl, st_out.has_te);
    }
    /* Field by field: nothing invented, nothing lost, nothing that must not cross. */
    static unsigned char used[ST_MAX_FIELDS];
    memset(used, 0, sizeof(used));
    long last_via = -1;
    for (size_t i = 0; i < st_out.nfields; i++) {
        const st_field_t *f = &st_out.fields[i];
        EXPECT("underscore", o->head.allow_underscores || !has_underscore(f->name, f->name_len),
               "field %.*s forwarded though underscores_in_headers is off", (int)f->name_len, f->name);
        EXPECT("hop", !is_hop_name(f->name, f->name_len), "hop-by-hop field %.*s forwarded", (int)f->name_len, f->name);
        if (st_name_is(f, "via")) last_via = (long)i;
        if (is_framing_name(f->name, f->name_len) || st_name_is(f, "host") || st_name_is(f, "x-forwarded-for") ||
            st_name_is(f, "x-real-ip") || st_name_is(f, "x-forwarded-proto") || st_name_is(f, "max-forwards"))
            continue;
        int found = 0;
        for (size_t k = 0; k < head.nheaders && !found; k++) {
            fc_slice_t n = head.headers[k].name, val = trim_ows(head.headers[k].value);
            if (names_ieq(n.p, n.n, f->name, f->name_len) && bytes_eq(val.p, val.n, f->value, f->value_len)) found = 1;
        }
        if (!found && st_name_is(f, "via") && o->head.via.p && via_is_ours(f, o))
            found = 1;
        EXPECT("invented", found, "forwarded field '%.*s: %.*s' is not the client's", (int)f->name_len, f->name,
               (int)f->value_len, f->value);
    }
    for (size_t k = 0; k < head.nheaders; k++) {
        fc_slice_t n = head.headers[k].name, val = trim_ows(head.headers[k].value);
        if (is_hop_name(n.p, n.n) || is_framing_name(n.p, n.n) || lit_ieq(n.p, n.n, "host") ||
            lit_ieq(n.p, n.n, "x-forwarded-for") || lit_ieq(n.p, n.n, "x-real-ip") ||
            lit_ieq(n.p, n.n, "x-forwarded-proto") || lit_ieq(n.p, n.n, "max-forwards") ||
            (!o->head.allow_underscores && has_underscore(n.p, n.n)))
            continue;
        if (connection_lists(&head, n.p, n.n)) continue;
        long at = find_field(st_out.fields, st_out.nfields, n.p, n.n, val.p, val.n, used);
        EXPECT("lost", at >= 0, "the client's field '%.*s: %.*s' is not forwarded", (int)n.n, n.p, (int)val.n, val.p);
        if (at >= 0) used[at] = 1;
    }
    if (o->head.via.p != NULL)
        EXPECT("via", last_via >= 0 && via_is_ours(&st_out.fields[last_via], o),
               "the last Via is not '1.%d %.*s'", head.minor, (int)o->head.via.n, o->head.via.p);
    const st_field_t *mf;
    size_t nmf = st_count(&st_out, "max-forwards", &mf);
    if (v->max_forwards >= 0) {
        char want[24];
        snprintf(want, sizeof(want), "%d", (int)v->max_forwards);
        EXPECT("max-forwards", nmf == 1 && bytes_eq(mf->value, mf->value_len, want, strlen(want)),
               "Max-Forwards forwarded %zu times, the first '%.*s', want %s", nmf, mf ? (int)mf->value_len : 0,
               mf ? mf->value : "", want);
    }
    check_no_dropped_trailers(&st_out);
}

static int framing_same(int st, int fc) /* enum st_framing vs enum fc_framing */
{
    return (st == ST_FRAME_NONE && fc == FC_FRAME_NONE) || (st == ST_FRAME_LENGTH && fc == FC_FRAME_LENGTH) ||
           (st == ST_FRAME_CHUNKED && fc == FC_FRAME_CHUNKED);
}

/* Invariant 6: fulcrum forwarded the request that starts at <start> and ends at <end> in the
 * client's bytes; strict.c reads the same bytes. */
static void check_differential(size_t start, size_t end, const fc_request_view_t *v, const fc_buf_t *payload,
                               const fc_buf_t *trailers_out)
{
    const char *in = (const char *)rep.input + start;
    size_t n = rep.input_len - start;
    st_lenient = 1; /* what was received: RFC 9112's allowances for recipients apply */
    int r = st_parse_request(in, n, &st_in);
    st_lenient = 0;
    (void)trailers_out;
    switch (r) {
    case ST_OK:
        break;
    case ST_ERR_FRAMING:
        violation("ambiguous", "fulcrum forwarded a request whose framing is ambiguous (%s); fulcrum read it as framing %d length %llu",
                  st_amb_name(st_in.amb), v->framing, (unsigned long long)v->length);
        return;
    case ST_ERR_FIELD:
        violation(strstr(st_in.why, "bare LF") ? "bare-lf" : "field", "fulcrum forwarded a request with a malformed field line: %s at offset %zu", st_in.why,
                  start + st_in.err_off);
        return;
    case ST_ERR_START:
        violation(strstr(st_in.why, "bare LF") ? "bare-lf" : "start", "fulcrum forwarded a request with a malformed request-line: %s at offset %zu", st_in.why,
                  start + st_in.err_off);
        return;
    case ST_ERR_HOST:
        violation("host", "fulcrum forwarded a request strict.c refuses for its Host: %s", st_in.why);
        return;
    case ST_ERR_TARGET:
        violation("target", "fulcrum forwarded a request strict.c refuses for its target: %s", st_in.why);
        return;
    case ST_ERR_BODY:
        violation("chunked", "fulcrum forwarded a chunked body strict.c refuses: %s at offset %zu", st_in.why,
                  start + st_in.err_off);
        return;
    case ST_INCOMPLETE:
        violation("boundary", "fulcrum says the request ends at %zu, strict.c that it goes on past the input (%s)",
                  end, st_in.why);
        return;
    default:
        violation("other", "strict.c: %s: %s", st_result_name(r), st_in.why);
        return;
    }
    EXPECT("boundary", start + st_in.end == end, "the request ends at %zu for fulcrum, at %zu for strict.c", end,
           start + st_in.end);
    EXPECT("framing", framing_same(st_in.framing, v->framing) &&
                          (v->framing != FC_FRAME_LENGTH || st_in.content_length == v->length),
           "framing: fulcrum %d (length %llu), strict.c %d (length %llu)", v->framing, (unsigned long long)v->length,
           st_in.framing, (unsigned long long)st_in.content_length);
    EXPECT("body", bytes_eq(st_in.body, st_in.body_len, payload->base, payload->len),
           "body: fulcrum read %zu bytes, strict.c %zu (or different bytes)", payload->len, st_in.body_len);
    EXPECT("target", target_is(st_in.eff_target, st_in.eff_target_len, v),
           "target: fulcrum routes '%s%.*s', strict.c '%.*s'", v->target_slash ? "/" : "", (int)v->target.n, v->target.p,
           (int)st_in.eff_target_len, st_in.eff_target);
    if (v->has_host || v->host_from_target)
        EXPECT("host", bytes_eq(st_in.eff_host, st_in.eff_host_len, v->host.p, v->host.n) &&
                           !v->host_from_target == !st_in.host_from_target,
               "host: fulcrum routes by '%.*s' (from target %d), strict.c by '%.*s' (%d)", (int)v->host.n, v->host.p,
               v->host_from_target, (int)st_in.eff_host_len, st_in.eff_host ? st_in.eff_host : "", st_in.host_from_target);
    else
        EXPECT("host", st_in.host_count == 0 && !st_in.host_from_target, "fulcrum saw no Host, strict.c did");
    if (v->framing == FC_FRAME_CHUNKED) check_trailers(&st_in, &st_out);
}

/* fulcrum refused a chunked body at offset <start>: fine unless strict.c accepts it within
 * fulcrum's documented limits. */
static void check_refused_body(size_t start, const fc_body_t *b)
{
    st_lenient = 1; /* what was received: RFC 9112's allowances for recipients apply */
    int r = st_parse_request((const char *)rep.input + start, rep.input_len - start, &st_in);
    st_lenient = 0;
    if (r != ST_OK || st_in.framing != ST_FRAME_CHUNKED) return;
    if (st_in.max_chunk_line > FC_CHUNKED_MAX_LINE - 2 || st_in.trailer_bytes > FC_CHUNKED_MAX_TRAILERS - 2 ||
        st_in.ntrailers > FC_CHUNKED_MAX_TRAILER_FIELDS)
        return; /* beyond a documented limit (body.h) */
    violation("refused", "fulcrum refused a chunked body strict.c accepts (%s)", b->error ? b->error : "no reason");
}

/* One request from f->buf + *pos. Returns 1 when the connection goes on with the next one. */
static int one_request(feed_t *f, size_t *pos, const opts_t *o)
{
    size_t start = *pos;
    fc_http_parser_t p;
    fc_http_parser_init(&p, HTTP_REQUEST);
    p.head = &head;
    int ev;
    for (;;) {
        size_t used = (size_t)-1, avail = f->avail - *pos;
        ev = fc_http_execute(&p, f->buf + *pos, avail, &used);
        CHECK(used <= avail);
        *pos += used;
        if (ev == FC_HTTP_NEED_MORE) {
            CHECK(*pos == f->avail);
            if (feed_more(f)) continue;
            return 0; /* EOF inside the head */
        }
        break;
    }
    if (ev == FC_HTTP_ERROR) return 0;
    CHECK(ev == FC_HTTP_HEAD_DONE);
    fc_request_view_t v;
    memset(&v, 0, sizeof(v));
    int status = fc_msg_check_request(&head, &p.ll, &v);
    if (status != 0) {
        CHECK(status == 400 || status == 405 || status == 501 || status == 505);
        return 0;
    }
    if (v.local) return 0; /* answered by fulcrum: nothing is forwarded */
    CHECK(v.framing == FC_FRAME_NONE || v.framing == FC_FRAME_LENGTH || v.framing == FC_FRAME_CHUNKED);
    int keepalive = llhttp_should_keep_alive(&p.ll);

    fc_buf_t out = {0}, payload = {0}, trailers = {0};
    CHECK(fc_headers_build_request(&out, &head, &v, CLIENT_IP, FALLBACK_HOST, &o->head) == 0);
    size_t head_len = out.len;
    CHECK(head_len >= 4 && memcmp(out.base + head_len - 4, "\r\n\r\n", 4) == 0);

    fc_body_t b;
    fc_body_init(&b, v.framing, v.length, &trailers);
    int done = v.framing == FC_FRAME_NONE, refused = 0;
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
        if (v.framing == FC_FRAME_LENGTH) CHECK(produced == used);
        CHECK(r == FC_BODY_MORE || r == FC_BODY_DONE || r == FC_BODY_ERROR);
        if (r == FC_BODY_ERROR) {
            CHECK(b.error != NULL);
            refused = 1;
            break;
        }
        buf_add(&payload, outp, produced);
        if (v.framing == FC_FRAME_CHUNKED) {
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
        if (used < avail && used == 0 && produced == 0) {
            /* no progress on what is there: only more bytes can help */
            if (!feed_more(f)) break;
            continue;
        }
        if (*pos == f->avail && !feed_more(f)) break; /* EOF inside the body: 400, nothing to check */
    }
    if (done) {
        if (v.framing == FC_FRAME_LENGTH) CHECK(b.total == v.length);
        if (verbose()) put_escaped("checked: forwarded request", out.base, out.len, 4096);
        check_forwarded(&out, &v, &payload, o);
        check_differential(start, *pos, &v, &payload, &trailers);
    } else if (refused && v.framing == FC_FRAME_CHUNKED) {
        check_refused_body(start, &b);
    }
    rep.fwd = NULL;
    st_free(&st_in);
    st_free(&st_out);
    fc_buf_free(&out);
    fc_buf_free(&payload);
    fc_buf_free(&trailers);
    return done && keepalive;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2) return 0;
    opts_t o;
    memset(&o, 0, sizeof(o));
    o.head.allow_underscores = data[0] & 1;
    if (!(data[0] & 2)) o.head.via = (fc_slice_t){"fulcrum", 7};
    o.lag = (data[0] >> 2) & 1;
    feed_t f;
    feed_init(&f, data + 2, size - 2, data[1]);
    rep.input = data + 2;
    rep.input_len = size - 2;
    rep.fwd = NULL;
    rep.what = "forwarded request";
    size_t pos = 0;
    for (int i = 0; i < MAX_PIPELINED && pos < f.len; i++) {
        while (pos == f.avail && feed_more(&f)) {}
        if (!one_request(&f, &pos, &o)) break;
    }
    feed_free(&f);
    return 0;
}
