/* exchange.c: one request and its response (see exchange.h). The flow, top to bottom:
 * fc_exchange_start (validate, route) -> connect_next (pick, pool or connect) -> send ->
 * pump_request (request body, raw bytes as the client framed them) and pump_response (head
 * rewritten, body raw or decoded for HTTP/1.0) -> finish (log, give the upstream connection back,
 * hand the client connection back). Errors go through fail(), which answers with the status the
 * cause calls for while nothing was sent yet, or cuts the client connection if something was. */
#include "fulcrum/exchange.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <ctype.h>

#include "fulcrum/accesslog.h"
#include "fulcrum/compress.h"
#include "fulcrum/conn.h"
#include "fulcrum/headers.h"
#include "fulcrum/io.h"
#include "fulcrum/log.h"
#include "fulcrum/upgrade.h"
#include "fulcrum/message.h"
#include "fulcrum/metrics.h"
#include "fulcrum/reply.h"
#include "fulcrum/ratelimit.h"
#include "fulcrum/status.h"
#include "fulcrum/upstream.h"

#define EXCHANGE_FREELIST_KEEP 64 /* beyond this many idle exchanges, free them: idle memory stays small */

static void connect_next(fc_exchange_t *ex, uint64_t now);
static void send_request(fc_exchange_t *ex, uint64_t t);
static void pump_request(fc_exchange_t *ex);
static void pump_response(fc_exchange_t *ex);
static void flush_client(fc_exchange_t *ex);
static void flush_queued(fc_exchange_t *ex);
static void on_cflush(fc_timeout_t *t);
static void buffer_request(fc_exchange_t *ex);
static void finish(fc_exchange_t *ex);
static void fail(fc_exchange_t *ex, int cause);
static void on_rate_wait(fc_rl_wait_t *wt);
static void admitted(fc_exchange_t *ex, uint64_t now);
static uint64_t learn_key(const fc_exchange_t *ex, fc_slice_t v);

static fc_worker_t *W(const fc_exchange_t *ex) { return ex->w; }

/* routes[].timeouts.request ran out: 504 if no answer began (retries included, nothing more is
 * tried), else the connection is closed. */
static void on_deadline(fc_timeout_t *t)
{
    fc_exchange_t *ex = fc_container_of(t, fc_exchange_t, deadline);
    if (ex->finished) return;
    fc_log(FC_LOG_WARN, "request from %s: the route's request timeout ran out", ex->client ? ex->client->ip : ex->ip);
    fail(ex, FC_END_SERVER_TIMEOUT);
}
static fc_upstream_t *UP(const fc_exchange_t *ex) { return &W(ex)->upstreams[ex->route->upstream->index]; }

/* ---- lifetime ------------------------------------------------------------------------------ */

fc_exchange_t *fc_exchange_new(fc_conn_t *c)
{
    fc_worker_t *w = c->w;
    fc_exchange_t *ex = w->free_exchanges;
    if (ex != NULL) {
        w->free_exchanges = ex->next_free;
        w->nfree_exchanges--;
    } else {
        /* Not calloc: only the fields reset below and the buffers need a value, and untouched
         * header slots then cost no memory. */
        ex = malloc(sizeof(*ex));
        if (ex == NULL) return NULL;
        memset(&ex->head_out, 0, sizeof(ex->head_out));
        memset(&ex->resp_out, 0, sizeof(ex->resp_out));
        memset(&ex->key_buf, 0, sizeof(ex->key_buf));
        memset(&ex->req_tail, 0, sizeof(ex->req_tail));
        memset(&ex->req_buf, 0, sizeof(ex->req_buf));
        memset(&ex->resp_tail, 0, sizeof(ex->resp_tail));
        memset(&ex->req_trailers, 0, sizeof(ex->req_trailers));
        memset(&ex->resp_trailers, 0, sizeof(ex->resp_trailers));
        memset(&ex->req_connection, 0, sizeof(ex->req_connection));
        memset(&ex->resp_connection, 0, sizeof(ex->resp_connection));
        memset(&ex->local_body, 0, sizeof(ex->local_body));
    }
    memset(ex, 0, offsetof(fc_exchange_t, req));
    ex->qw.q = NULL;
    fc_timeout_init(&ex->deadline, on_deadline);
    ex->w = w;
    ex->client = c;
    ex->refs = 1;
    ex->head_out.len = 0;
    ex->resp_out.len = 0;
    return ex;
}

static void free_exchange(fc_exchange_t *ex)
{
    fc_buf_free(&ex->head_out);
    fc_buf_free(&ex->resp_out);
    fc_buf_free(&ex->key_buf);
    fc_buf_free(&ex->req_tail);
    fc_buf_free(&ex->req_buf);
    fc_buf_free(&ex->resp_tail);
    fc_buf_free(&ex->req_trailers);
    fc_buf_free(&ex->resp_trailers);
    fc_buf_free(&ex->req_connection);
    fc_buf_free(&ex->resp_connection);
    fc_buf_free(&ex->local_body);
    free(ex);
}

/* A compression stream for a body of <length> (0: unknown), from the worker's idle ones when one
 * fits (routes may use different levels: a stream of another level is freed). */
static fc_codec_t *codec_get(fc_worker_t *w, int coding, int level, uint64_t length)
{
    while (w->nidle_codecs[coding] > 0) {
        fc_codec_t *c = w->idle_codecs[coding][--w->nidle_codecs[coding]];
        if (fc_codec_level(c) == level && fc_codec_reset(c, length) == 0) return c;
        fc_codec_free(c);
    }
    return fc_codec_new(coding, level, length);
}

static void codec_put(fc_worker_t *w, fc_codec_t *c)
{
    int coding = fc_codec_coding(c);
    if (w->nidle_codecs[coding] < FC_ARRAY_LEN(w->idle_codecs[0])) w->idle_codecs[coding][w->nidle_codecs[coding]++] = c;
    else fc_codec_free(c);
}

/* Lets go of the queued body, the compressor and the request buffer (nothing written from them is
 * in flight). */
static void __attribute__((noinline)) release_buffers(fc_exchange_t *ex)
{
    fc_worker_t *w = W(ex);
    if (ex->queued) {
        fc_timeout_clear(&ex->flush_timer);
        fc_bodyq_clear(&ex->q, &w->bodyq);
        if (ex->codec != NULL) codec_put(w, ex->codec);
        ex->codec = NULL;
    }
    w->req_buffers -= ex->req_buf.cap;
    fc_buf_free(&ex->req_buf); /* request buffers are rare and large: not kept */
}

static void unref(fc_exchange_t *ex)
{
    FC_ASSERT(ex->refs > 0);
    if (--ex->refs > 0) return;
    fc_timeout_clear(&ex->deadline);
    if (FC_UNLIKELY(ex->queued || ex->req_buffered)) release_buffers(ex);
    if (ex->local_body.base != NULL) fc_buf_free(&ex->local_body); /* not all written: the client left */
    fc_worker_t *w = W(ex);
    if (w->nfree_exchanges >= EXCHANGE_FREELIST_KEEP || ex->head_out.cap > 65536 || ex->resp_out.cap > 65536 ||
        ex->req_trailers.cap > 65536 || ex->resp_trailers.cap > 65536) {
        free_exchange(ex);
        return;
    }
    ex->next_free = w->free_exchanges;
    w->free_exchanges = ex;
    w->nfree_exchanges++;
}

void fc_exchange_abandon(fc_exchange_t *ex)
{
    ex->client = NULL;
    ex->finished = 1;
    unref(ex);
}

void fc_exchange_freelist_drain(fc_worker_t *w)
{
    while (w->free_exchanges != NULL) {
        fc_exchange_t *ex = w->free_exchanges;
        w->free_exchanges = ex->next_free;
        free_exchange(ex);
    }
    w->nfree_exchanges = 0;
}

/* Gives the upstream connection back (pooled when <reusable>) and stops counting it as active. */
static void detach_upstream(fc_exchange_t *ex, int reusable)
{
    fc_upconn_t *up = ex->up;
    if (up == NULL) return;
    fc_server_done(up->server);
    ex->up = NULL;
    fc_pool_release(up, reusable);
}

static size_t route_index(const fc_exchange_t *ex) { return (size_t)(ex->route - W(ex)->cfg->routes); }

/* Takes <ex> out of its upstream's queue when it waits there (answered otherwise, or its client
 * left), counting the time it waited. */
static void leave_queue(fc_exchange_t *ex)
{
    if (FC_LIKELY(ex->qw.q == NULL)) return;
    ex->queue_ms += uv_now(W(ex)->loop) - ex->qw.since;
    fc_queue_leave(&ex->qw);
}

/* ---- the end-of-exchange record ----------------------------------------------------------- */

/* A timestamp (fc_clock_ns), or 1 when nothing reads durations (no access log, no metrics): the clock is then
 * not read at all, and a nonzero t_start still says "the exchange has started". */
static uint64_t stamp(const fc_exchange_t *ex)
{
    return W(ex)->timing ? fc_clock_ns() : 1;
}

/* Why the client's request ended early, counted (<cause> is not FC_END_NONE). */
static void __attribute__((cold, noinline)) count_client_error(fc_exchange_t *ex, unsigned cause, unsigned phase)
{
    fc_metrics_local_t *ml = &W(ex)->metrics;
    switch (cause) {
    case FC_END_CLIENT_TIMEOUT:
        fc_metrics_client_error(ml, phase == FC_PHASE_REQUEST ? FC_MC_HEADER_TIMEOUT
                                    : !ex->req_done          ? FC_MC_BODY_TIMEOUT
                                                             : FC_MC_SEND_TIMEOUT);
        break;
    case FC_END_CLIENT_BAD: fc_metrics_client_error(ml, FC_MC_BAD_REQUEST); break;
    case FC_END_LIMIT:
        if (ex->rate_limited) fc_metrics_rate_limited(ml, route_index(ex), ex->route->name);
        else fc_metrics_client_error(ml, FC_MC_TOO_LARGE);
        break;
    case FC_END_CLIENT_CLOSED: fc_metrics_client_error(ml, FC_MC_CLOSED); break;
    default: break;
    }
}

/* Counts the record <r> of <ex> in this worker's metric block: a few adds, no lock, no allocation
 * (but the first time a route, method and status are seen together). */
static void record_metrics(fc_exchange_t *ex, const fc_accesslog_record_t *r)
{
    fc_worker_t *w = W(ex);
    fc_metrics_local_t *ml = &w->metrics;
    uint32_t ri = ex->route ? (uint32_t)route_index(ex) : (uint32_t)w->cfg->nroutes;
    unsigned method = ex->t_start != 0 ? fc_metrics_method(ex->parser.ll.method) : FC_METRICS_METHODS - 1;
    fc_metrics_series_t *s = fc_metrics_route(ml, ri, ex->route ? ex->route->name : "", method, (unsigned)r->status);
    if (s != NULL) fc_metrics_observe(s, ml->conf, r->request_ns);
    if (ex->server != NULL && ex->server->ms != NULL && ex->t_up_head > 1 && ex->t_up_start > 1)
        fc_metrics_observe(ex->server->ms, ml->conf, r->upstream_header_ns);
    if (FC_UNLIKELY(r->cause != FC_END_NONE)) count_client_error(ex, r->cause, r->phase);
}

/* Fills the record of <ex> with one clock read and hands it to the access log and the metrics. */
static void end_record(fc_exchange_t *ex)
{
    if (ex->t_start == 0 && ex->status == 0) return; /* never started: nothing to tell */
    fc_worker_t *w = W(ex);
    int log = fc_access_log_enabled() && (ex->route == NULL || ex->route->access_log);
    int count = w->metrics.shm != NULL && !ex->own_endpoint && ex->status != 0;
    if (!log && !count) return;
    fc_accesslog_record_t r;
    r.status = ex->status;
    r.cause = ex->cause;
    r.phase = ex->cause == FC_END_NONE ? FC_PHASE_DONE : ex->phase;
    /* The answer went out in the turn its last byte came in: that moment is its end too. */
    r.now = !w->timing ? 0 : ex->end_at_up_end && ex->t_up_end > 1 ? ex->t_up_end : fc_clock_ns();
    r.request_ns = r.now && ex->t_start > 1 ? r.now - ex->t_start : 0;
    r.upstream_ns = r.now && ex->t_up_start > 1 ? (ex->t_up_end > 1 ? ex->t_up_end : r.now) - ex->t_up_start : 0;
    r.upstream_header_ns = ex->t_up_head > 1 && ex->t_up_start > 1 ? ex->t_up_head - ex->t_up_start : 0;
    r.connect_ns = ex->connect_ns;
    r.queue_ms = ex->queue_ms;
    if (count) record_metrics(ex, &r);
    if (!log) return;
    /* What only the log line reads. */
    r.method = ex->req.method;
    r.url = ex->req.url;
    r.head = (fc_slice_t){NULL, 0};
    if (ex->head_out.len > 0) {
        r.method = (fc_slice_t){ex->head_out.base, ex->log_method_len};
        r.url = (fc_slice_t){ex->head_out.base + ex->log_url_off, ex->log_url_len};
        r.head = (fc_slice_t){ex->head_out.base, ex->head_out.len};
    }
    r.client = ex->client ? ex->client->ip : ex->discard ? ex->ip : "-";
    r.upstream = ex->route ? ex->route->upstream->name : NULL;
    r.route = ex->route ? ex->route->name : NULL;
    r.server = ex->server ? ex->server->conf->addr.text : NULL;
    r.http10 = ex->http10;
    r.bytes_sent = ex->bytes_sent;
    fc_accesslog_write(&r, w->cfg->access_log_format);
}

/* ---- error responses ----------------------------------------------------------------------- */

/* The methods fulcrum forwards, for OPTIONS * and 405 answers. */
#define ALLOW_HEADER "Allow: GET, HEAD, POST, PUT, DELETE, OPTIONS, PATCH\r\n"

/* Answers the client from fulcrum itself: <status> with the short plain-text <body>, and the
 * header lines <extra> ("Name: value\r\n" each, or ""). */
static void reply_typed(fc_exchange_t *ex, int status, const char *ctype, const char *body, size_t blen,
                        const char *extra, int keepalive);
/* The send buffer a connection gets for a large local answer: the most written to it per loop turn. */
#define LOCAL_SNDBUF (256 * 1024)

static void reply_local(fc_exchange_t *ex, int status, const char *body, const char *extra, int keepalive)
{
    reply_typed(ex, status, "text/plain", body, strlen(body), extra, keepalive);
}

/* The same with Content-Type <ctype> and a body of <blen> bytes (<body> NULL: they are in
 * ex->local_body, or none for a HEAD). */
static void reply_typed(fc_exchange_t *ex, int status, const char *ctype, const char *body, size_t blen,
                        const char *extra, int keepalive)
{
    fc_conn_t *c = ex->client;
    leave_queue(ex);
    detach_upstream(ex, 0);
    if (c == NULL) {
        finish(ex);
        return;
    }
    fc_conn_set_state(c, FC_CONN_ACTIVE);
    fc_timeout_clear(&c->timeout);
    /* An unread request body would be taken for the next request: close instead. */
    if (!ex->req_done) keepalive = 0;
    ex->keepalive = (uint8_t)keepalive;
    if (fc_reply_build(&ex->resp_out, status, ctype, body, blen, extra, keepalive, ex->is_head, fc_log_time_http(),
                       c->opts) != 0) {
        ex->cause = FC_END_INTERNAL;
        finish(ex); /* closes the connection: a cause is set and no answer went out */
        return;
    }
    ex->status = status;
    ex->error_reply = 1;
    ex->resp_head_done = ex->resp_done = 1;
    flush_client(ex);
}

void fc_exchange_reply_error(fc_exchange_t *ex, int status, int keepalive)
{
    if (ex->cause == FC_END_NONE && status >= 400) ex->cause = (uint8_t)fc_reply_status_cause(status);
    char body[64];
    snprintf(body, sizeof(body), "%d %s\n", status, fc_reply_reason(status));
    /* RFC 9110 15.5.6: a 405 says which methods are allowed. */
    reply_local(ex, status, body, status == 405 ? ALLOW_HEADER : "", keepalive);
}

/* The first failure sets the cause; the answer depends on what the client has seen. */
static void fail(fc_exchange_t *ex, int cause)
{
    if (ex->finished) return;
    if (ex->cause == FC_END_NONE) ex->cause = (uint8_t)cause;
    /* Answered while waiting its turn (a client timeout): its turn must not send it on meanwhile. */
    if (ex->rl_wait.pos != 0) fc_rl_wait_cancel(W(ex)->rl_waitq, &ex->rl_wait);
    if (ex->status == 0 && !ex->cl_writing && ex->client != NULL) {
        /* A server's failure is not the client's: like nginx and HAProxy, its connection stays
         * open after a 502/504 when the request was read whole. */
        int server_side = ex->cause >= FC_END_SERVER_REFUSED && ex->cause <= FC_END_LOCAL;
        fc_exchange_reply_error(ex, fc_reply_cause_status(ex->cause), server_side && ex->keepalive);
        return;
    }
    /* Part of the response went out already: all we can do is cut the connection (finish
     * closes the client connection when a cause is set). */
    finish(ex);
}

/* ---- start --------------------------------------------------------------------------------- */

/* Keeps the Connection options of head <h> in <out> for body <b>, whose trailers they may name
 * (the head's slices do not outlive it). Only chunked messages have trailers. */
static int keep_connection(fc_body_t *b, fc_buf_t *out, const fc_http_head_t *h)
{
    out->len = 0;
    b->connection = (fc_slice_t){NULL, 0};
    if (b->framing != FC_FRAME_CHUNKED || !h->has_connection) return 0;
    for (size_t i = 0; i < h->nheaders; i++) {
        if (!FC_SLICE_IEQ(h->headers[i].name, "connection")) continue;
        if (fc_buf_append(out, h->headers[i].value.p, h->headers[i].value.n) != 0 || fc_buf_append(out, ",", 1) != 0)
            return -1;
    }
    b->connection = (fc_slice_t){out->base, out->len};
    return 0;
}

/* The value of cookie <name> in the request's Cookie headers, or {NULL, 0}. */
static fc_slice_t cookie_value(const fc_http_head_t *h, const char *name, size_t namelen)
{
    for (size_t i = 0; i < h->nheaders; i++) {
        if (!FC_SLICE_IEQ(h->headers[i].name, "cookie")) continue;
        const char *p = h->headers[i].value.p, *end = p + h->headers[i].value.n;
        while (p < end) {
            while (p < end && (*p == ' ' || *p == ';')) p++;
            const char *eq = memchr(p, '=', (size_t)(end - p));
            const char *semi = memchr(p, ';', (size_t)(end - p));
            if (semi == NULL) semi = end;
            if (eq != NULL && eq < semi && (size_t)(eq - p) == namelen && memcmp(p, name, namelen) == 0)
                return (fc_slice_t){eq + 1, (size_t)(semi - eq - 1)};
            p = semi;
        }
    }
    return (fc_slice_t){NULL, 0};
}

/* Builds the hash policy's key from its template ($request_uri, $remote_addr, $http_NAME,
 * $cookie_NAME and literal text; the config checked the variable names) into ex->key_buf. */
/* Expands key template <tpl> ($request_uri, $remote_addr, $cookie_NAME, $http_NAME and text) for
 * this request into <b>. */
static void expand_key(fc_exchange_t *ex, const char *tpl, fc_slice_t target, fc_buf_t *b)
{
    b->len = 0;
    for (const char *p = tpl; *p;) {
        if (*p != '$') {
            fc_buf_append(b, p++, 1);
            continue;
        }
        const char *v = ++p;
        while (*p && (*p == '_' || *p == '-' || (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                      (*p >= '0' && *p <= '9')))
            p++;
        size_t n = (size_t)(p - v);
        fc_slice_t val = {NULL, 0};
        if (n == 11 && memcmp(v, "request_uri", 11) == 0) val = target;
        else if (n == 11 && memcmp(v, "remote_addr", 11) == 0) val = (fc_slice_t){ex->client->ip, strlen(ex->client->ip)};
        else if (n > 7 && memcmp(v, "cookie_", 7) == 0) val = cookie_value(&ex->req, v + 7, n - 7);
        else if (n > 5 && memcmp(v, "http_", 5) == 0) {
            /* $http_x_user_id names the header X-User-Id, as in nginx. */
            for (size_t i = 0; i < ex->req.nheaders && val.p == NULL; i++) {
                fc_slice_t hn = ex->req.headers[i].name;
                if (hn.n != n - 5) continue;
                size_t k = 0;
                for (; k < hn.n; k++) {
                    char a = (char)tolower((unsigned char)hn.p[k]), c = (char)tolower((unsigned char)v[5 + k]);
                    if (c == '_') c = '-';
                    if (a != c) break;
                }
                if (k == hn.n) val = ex->req.headers[i].value;
            }
        }
        if (val.p != NULL) fc_buf_append(b, val.p, val.n);
    }
}

static void build_hash_key(fc_exchange_t *ex, const char *tpl, fc_slice_t target)
{
    fc_buf_t *b = &ex->key_buf;
    expand_key(ex, tpl, target, b);
    ex->hash_key = (fc_slice_t){b->base ? b->base : "", b->len};
}

/* The route's rate limits (ratelimit.c: a token bucket per policy and key, shared by every
 * worker): 1 when one rejected the request, which has been answered (status, Retry-After: seconds
 * until a token is back, and the RateLimit-Policy and RateLimit fields of
 * draft-ietf-httpapi-ratelimit-headers); else 0 and *<delay_ms> is how long the request waits its
 * turn (`delay`), before any server is picked. A rejected request takes no token, so a client
 * above the rate still gets the rate. An empty key is not limited. */
static int rate_limited(fc_exchange_t *ex, fc_slice_t target, uint64_t *delay_ms)
{
    fc_worker_t *w = W(ex);
    fc_buf_t *b = &ex->key_buf;
    uint64_t now = uv_now(w->loop);
    *delay_ms = 0;
    for (size_t i = 0; i < ex->route->nrate_limits; i++) {
        const fc_rate_limit_conf_t *r = ex->route->rate_limits[i];
        fc_rl_table_t *t = w->rl_tables[r->index];
        uint64_t h; /* the policy name, a NUL, the key (t->seed holds the first two) */
        if (r->key_addr) {
            h = fc_fnv1a(t->seed, ex->client->ip, strlen(ex->client->ip)); /* the usual key, without the template */
        } else {
            expand_key(ex, r->key, target, b);
            if (b->len == 0) continue;
            h = fc_fnv1a(t->seed, b->base, b->len);
        }
        double left;
        uint64_t wait_ms;
        int v = fc_rl_admit(t, r, ex->route, h, now, &left, &wait_ms);
        if (v == FC_RL_DELAY && !r->dry_run && wait_ms > *delay_ms) *delay_ms = wait_ms;
        if (v != FC_RL_REJECT) continue;
        uint64_t secs = (wait_ms + 999) / 1000;
        if (r->dry_run) {
            fc_log(FC_LOG_INFO, "rate limit %s: would reject a request of %s (dry_run)", r->name, ex->client->ip);
            continue;
        }
        char extra[320];
        int n = snprintf(extra, sizeof(extra), "Retry-After: %llu\r\n", (unsigned long long)secs);
        if (r->headers)
            snprintf(extra + n, sizeof(extra) - (size_t)n, "RateLimit-Policy: \"%s\";q=%llu;w=%llu\r\nRateLimit: \"%s\";r=0;t=%llu\r\n",
                     r->name, (unsigned long long)r->rate, (unsigned long long)(r->per / 1000), r->name,
                     (unsigned long long)secs);
        char body[64];
        snprintf(body, sizeof(body), "%d %s\n", r->status, fc_reply_reason(r->status));
        ex->cause = FC_END_LIMIT;
        ex->rate_limited = 1;
        reply_local(ex, r->status, body, extra, ex->keepalive);
        return 1;
    }
    return 0;
}

/* The protocol <h> may switch to: a GET over HTTP/1.1 whose Connection has the upgrade option and
 * whose Upgrade names one protocol the route allows (`upgrade:`, default [websocket]). Anything
 * else is an ordinary request: Upgrade and Connection are hop-by-hop, and dropped. */
static fc_slice_t upgrade_of(const fc_exchange_t *ex, const llhttp_t *ll, const fc_http_head_t *h)
{
    const fc_slice_t none = {NULL, 0};
    const char *allowed = ex->route->upgrade;
    if (allowed == NULL || ex->http10 || ll->method != HTTP_GET) return none;
    if (!(ll->flags & F_CONNECTION_UPGRADE) || !(ll->flags & F_UPGRADE)) return none;
    const fc_header_t *u = fc_http_find(h, "upgrade", 7);
    if (u == NULL) return none;
    fc_slice_t val = u->value;
    while (val.n > 0 && (val.p[val.n - 1] == ' ' || val.p[val.n - 1] == '\t')) val.n--;
    while (val.n > 0 && (val.p[0] == ' ' || val.p[0] == '\t')) {
        val.p++;
        val.n--;
    }
    for (const char *p = allowed; *p; p += strlen(p) + 1)
        if (strlen(p) == val.n && strncasecmp(p, val.p, val.n) == 0) return val;
    return none;
}

/* `redirect_https`: 308 to the same host (without its port; with the configured one) and target
 * over https. The host and target were checked by message.c: no byte in them can end the field. */
static void redirect_https(fc_exchange_t *ex, const fc_request_view_t *v)
{
    const fc_listener_conf_t *l = ex->client->listener;
    if (v->host.n == 0) {
        fc_exchange_reply_error(ex, 400, 0);
        return;
    }
    size_t hn = v->host.n;
    const char *end = v->host.p[0] == '[' ? memchr(v->host.p, ']', hn) : memchr(v->host.p, ':', hn);
    if (end != NULL) hn = (size_t)(end - v->host.p) + (v->host.p[0] == '[');
    fc_buf_t loc = {0};
    char port[16] = "";
    if (l->redirect_port != 0) snprintf(port, sizeof(port), ":%u", (unsigned)l->redirect_port);
    int bad = FC_BUF_APPEND_LIT(&loc, "Location: https://") != 0 || fc_buf_append(&loc, v->host.p, hn) != 0 ||
              fc_buf_append(&loc, port, strlen(port)) != 0 ||
              (v->target_slash && FC_BUF_APPEND_LIT(&loc, "/") != 0) ||
              fc_buf_append(&loc, v->target.p, v->target.n) != 0 || FC_BUF_APPEND_LIT(&loc, "\r\n\0") != 0;
    if (bad) {
        fc_buf_free(&loc);
        fc_exchange_reply_error(ex, 500, 0);
        return;
    }
    ex->status = 308;
    reply_local(ex, 308, "308 Permanent Redirect\n", loc.base, ex->keepalive);
    fc_buf_free(&loc);
}

#define REQUEST_ID_MAX 128 /* a client's X-Request-ID is kept up to this many characters */

/* The client's X-Request-ID when it sent exactly one, of 1..REQUEST_ID_MAX printable characters
 * (borrowed from its head); else the next one made here (w->rid, valid until the next request):
 * the worker's random prefix and its count, incremented as hex text (one digit, mostly). */
static fc_slice_t request_id(fc_worker_t *w, const fc_http_head_t *h)
{
    if (h->n_rid == 1) {
        fc_slice_t v = h->headers[h->i_rid].value;
        size_t k = 0;
        while (k < v.n && k <= REQUEST_ID_MAX && (unsigned char)v.p[k] > 0x20 && (unsigned char)v.p[k] < 0x7f) k++;
        if (k == v.n && k > 0 && k <= REQUEST_ID_MAX) return v;
    }
    for (int i = 31; i >= 16; i--) {
        char d = w->rid[i];
        if (d == 'f') {
            w->rid[i] = '0'; /* carry */
            continue;
        }
        w->rid[i] = d == '9' ? 'a' : (char)(d + 1);
        break;
    }
    return (fc_slice_t){w->rid, 32};
}

/* 1 when the path of <target> is <path> (<n> bytes) followed by <suffix> (the query is ignored).
 * Every request on a listener with endpoints asks: no scan of the target, a compare or two. */
static int path_is(fc_slice_t t, const char *path, size_t n, const char *suffix, size_t sn)
{
    if (t.n < n + sn || memcmp(t.p, path, n) != 0 || memcmp(t.p + n, suffix, sn) != 0) return 0;
    return t.n == n + sn || t.p[n + sn] == '?';
}

/* The metrics exposition for <arg> (an exchange) is ready: answered unless the exchange ended
 * meanwhile (the client left). */
static void on_metrics_rendered(void *arg, fc_buf_t *text, const char *content_type)
{
    fc_exchange_t *ex = arg;
    if (!ex->finished && text == NULL) fc_exchange_reply_error(ex, 500, 0);
    else if (!ex->finished) {
        /* Written from the render's own memory (no copy), a send buffer's worth per loop turn. */
        size_t len = text->len;
        if (!ex->is_head) {
            ex->local_body = *text;
            *text = (fc_buf_t){0};
        }
        if (ex->client != NULL) fc_conn_sndbuf(ex->client, LOCAL_SNDBUF);
        ex->status = 200;
        reply_typed(ex, 200, content_type, NULL, len, "", ex->keepalive);
    }
    unref(ex);
}

/* Answers a request for one of the listener's own endpoints (health, metrics, status) and returns
 * 1, or returns 0 when <target> is none of them. These reach no route and are not counted. */
static int own_endpoint(fc_exchange_t *ex, const fc_listener_conf_t *l, fc_slice_t target)
{
    fc_worker_t *w = W(ex);
    if (l->health_path != NULL && path_is(target, l->health_path, l->health_path_len, "", 0)) {
        /* fulcrum's own health: 503 from the moment a graceful stop begins. */
        ex->own_endpoint = 1;
        ex->status = w->stopping ? 503 : 200;
        reply_local(ex, ex->status, w->stopping ? "stopping\n" : "ok\n", "", ex->keepalive);
        return 1;
    }
    if (l->metrics_path != NULL && path_is(target, l->metrics_path, l->metrics_path_len, "", 0)) {
        /* Rendered off the loop: the answer comes in on_metrics_rendered, holding a reference. */
        ex->own_endpoint = 1;
        const fc_header_t *accept = fc_http_find(&ex->req, "accept", 6);
        int om = accept != NULL && fc_metrics_wants_openmetrics(accept->value.p, accept->value.n);
        if (fc_metrics_render_start(w, om, on_metrics_rendered, ex) != 0) fc_exchange_reply_error(ex, 500, 0);
        else ex->refs++;
        return 1;
    }
    int json = 0;
    if (l->status_path != NULL && (path_is(target, l->status_path, l->status_path_len, "", 0) ||
                                   (json = path_is(target, l->status_path, l->status_path_len, ".json", 5)))) {
        ex->own_endpoint = 1;
        fc_buf_t body = {0};
        char jp[160];
        snprintf(jp, sizeof(jp), "%s.json", l->status_path);
        if ((json ? fc_status_render_json(w, &body) : fc_status_render_html(w, jp, &body)) != 0) {
            fc_buf_free(&body);
            fc_exchange_reply_error(ex, 500, 0);
            return 1;
        }
        ex->status = 200;
        reply_typed(ex, 200, json ? "application/json" : "text/html; charset=utf-8", body.base ? body.base : "",
                    body.len, "Cache-Control: no-store\r\n", ex->keepalive);
        fc_buf_free(&body);
        return 1;
    }
    return 0;
}

/* The coding the request's Accept-Encoding asks for among those <cc> offers (none when the request
 * carries cc->skip_header). */
static int accepted_coding(const fc_compression_conf_t *cc, const fc_http_head_t *h)
{
    if (cc->skip_header != NULL && fc_http_find(h, cc->skip_header, strlen(cc->skip_header)) != NULL) return FC_CODING_NONE;
    fc_slice_t values[8];
    size_t n = 0;
    for (size_t i = 0; i < h->nheaders && n < FC_ARRAY_LEN(values); i++)
        if (FC_SLICE_IEQ(h->headers[i].name, "accept-encoding")) values[n++] = h->headers[i].value;
    return fc_coding_negotiate(values, n, cc->on, cc->prefer);
}

void fc_exchange_start(fc_exchange_t *ex)
{
    fc_conn_t *c = ex->client;
    fc_worker_t *w = c->w;
    llhttp_t *ll = &ex->parser.ll;
    fc_http_head_t *h = &ex->req;
    fc_request_view_t v;
    ex->t_start = stamp(ex);
    ex->http10 = h->major == 1 && h->minor == 0;
    ex->is_head = ll->method == HTTP_HEAD;
    ex->idempotent = ll->method == HTTP_GET || ll->method == HTTP_HEAD || ll->method == HTTP_PUT ||
                     ll->method == HTTP_DELETE || ll->method == HTTP_OPTIONS;
    /* A connection relayed by an older generation is answered with Connection: close: the client
     * reconnects to this generation directly, and the older one can leave. */
    ex->keepalive = llhttp_should_keep_alive(ll) && (!w->draining || w->handover_gen != 0) && !c->relayed;

    /* Every rule of what fulcrum forwards is in message.c; nothing refused there reaches a server. */
    int refused = fc_msg_check_request(h, ll, &v);
    fc_body_init(&ex->req_body, v.framing, v.length, &ex->req_trailers);
    ex->req_done = ex->req_body.done;
    if (refused != 0) {
        fc_log(FC_LOG_INFO, "client %s: refused (%d): %s", c->ip, refused, v.why);
        fc_exchange_reply_error(ex, refused, 0);
        return;
    }
    if (v.local) {
        /* OPTIONS * (or Max-Forwards: 0): answered here, never routed as a path. */
        ex->status = 200;
        reply_local(ex, 200, "", ALLOW_HEADER, ex->keepalive);
        return;
    }
    fc_slice_t target = v.target;
    if (c->listener != NULL && !v.target_slash && own_endpoint(ex, c->listener, target)) return;
    if (c->listener != NULL && c->listener->redirect_https) {
        redirect_https(ex, &v);
        return;
    }
    ex->route = v.target_slash ? fc_router_match(&w->router, v.host.p, v.host.n, "/", 1)
                               : fc_router_match(&w->router, v.host.p, v.host.n, target.p, target.n);
    if (ex->route == NULL) {
        fc_exchange_reply_error(ex, 404, ex->keepalive);
        return;
    }
    uint64_t max_body = w->cfg->limits.max_body_size;
    if (max_body > 0 && v.framing == FC_FRAME_LENGTH && v.length > max_body) {
        fc_exchange_reply_error(ex, 413, 0);
        return;
    }
    uint64_t delay_ms = 0;
    if (ex->route->nrate_limits > 0 && rate_limited(ex, target, &delay_ms)) return;
    if (ex->route->compression != NULL && !ex->is_head) ex->coding = (uint8_t)accepted_coding(ex->route->compression, h);
    v.upgrade = upgrade_of(ex, ll, h);
    ex->upgrade = v.upgrade.n > 0;
    if (w->cfg->request_id) v.request_id = request_id(w, h);
    ex->head_out.len = 0;
    if (fc_headers_build_request(&ex->head_out, h, &v, c->ip, ex->route->upstream->servers[0].addr.text,
                                 c->opts) != 0) {
        fc_exchange_reply_error(ex, 500, 0);
        return;
    }
    if (keep_connection(&ex->req_body, &ex->req_connection, h) != 0) {
        fc_exchange_reply_error(ex, 500, 0);
        return;
    }
    if (ex->route->upstream->hash_key != NULL) build_hash_key(ex, ex->route->upstream->hash_key, target);
    const fc_sticky_conf_t *sticky = &ex->route->upstream->sticky;
    if (sticky->cookie != NULL) {
        fc_slice_t sv = cookie_value(h, sticky->cookie, strlen(sticky->cookie));
        ex->sticky = (int16_t)(fc_upstream_sticky_find(UP(ex), sv.p, sv.n) + 1);
    } else if (sticky->learn != NULL) {
        fc_slice_t sv = cookie_value(h, sticky->learn, strlen(sticky->learn));
        if (sv.n > 0) {
            uint32_t slot = fc_shm_learn_get(w->shm, learn_key(ex, sv), uv_now(w->loop));
            fc_upstream_t *u = UP(ex);
            for (size_t i = 0; slot != UINT32_MAX && i < u->conf->nservers; i++)
                if (u->servers[i].st == &w->shm->servers[slot]) ex->sticky = (int16_t)(i + 1);
        }
    }
    ex->parser.head = NULL; /* the head is built: its slices are not needed any more */
    ex->log_method_len = h->method.n;
    ex->log_url_off = h->method.n + 1;
    ex->log_url_len = target.n + v.target_slash;
    ex->body_start = ex->fwd = ex->dec_end = c->pos;
    /* A chunked body is decoded in place, so it cannot be sent a second time. */
    ex->replayable = v.framing != FC_FRAME_CHUNKED;
    ex->phase = FC_PHASE_CONNECT;
    if (w->route_request[route_index(ex)] != NULL) fc_timeout_set(&w->tq, &ex->deadline, w->route_request[route_index(ex)]);
    if (!ex->req_done) fc_timeout_set(&w->tq, &c->timeout, w->t_body);
    /* A request that waits its turn (rate_limits.delay) holds no server connection meanwhile. */
    if (delay_ms > 0 && fc_rl_wait(w->rl_waitq, &ex->rl_wait, delay_ms, on_rate_wait) == 0) return;
    admitted(ex, ex->t_start); /* the same moment, as far as durations go: no second clock read */
}

static void on_rate_wait(fc_rl_wait_t *wt)
{
    fc_exchange_t *ex = fc_container_of(wt, fc_exchange_t, rl_wait);
    admitted(ex, stamp(ex));
}

/* The request may go on (<now>: as connect_next): its body is read first when the route buffers
 * requests and it fits, else a server is picked. */
static void admitted(fc_exchange_t *ex, uint64_t now)
{
    fc_worker_t *w = W(ex);
    uint64_t rb = ex->route->buffer_request;
    if (FC_UNLIKELY(rb > 0) && !ex->req_done &&
        (ex->req_body.framing == FC_FRAME_CHUNKED || ex->req_body.left <= rb)) {
        if (w->bodyq.out + w->req_buffers < w->cfg->limits.buffer_memory) {
            ex->req_buffering = ex->req_buffered = 1;
            buffer_request(ex);
            return;
        }
        fc_metrics_buffering_skipped(&w->metrics);
        if (uv_now(w->loop) - w->buffering_warned >= 10000) {
            fc_log(FC_LOG_WARN, "limits.buffer_memory (%llu) reached: request bodies stream without buffering",
                   (unsigned long long)w->cfg->limits.buffer_memory);
            w->buffering_warned = uv_now(w->loop);
        }
    }
    connect_next(ex, now);
}

/* After a read of the request body that gave <ev>: a bad body (400) or one past
 * limits.max_body_size (413) ends the exchange (-1); a complete one ends the body timeout. */
static int body_read_end(fc_exchange_t *ex, int ev)
{
    fc_conn_t *c = ex->client;
    if (ev == FC_BODY_ERROR) {
        fc_log(FC_LOG_INFO, "client %s: bad request body: %s", c->ip, ex->req_body.error);
        fail(ex, FC_END_CLIENT_BAD);
        return -1;
    }
    uint64_t max_body = W(ex)->cfg->limits.max_body_size;
    if (max_body > 0 && ex->req_body.total > max_body) {
        fail(ex, FC_END_LIMIT);
        return -1;
    }
    if (ev == FC_BODY_DONE) {
        ex->req_done = 1;
        fc_timeout_clear(&c->timeout);
    }
    return 0;
}

/* routes[].buffering.request: the request body is read into req_buf before a server is picked,
 * so a slow upload holds no server slot. A body that grows past the limit (chunked) goes on as a
 * stream once what was read is sent. */
static void buffer_request(fc_exchange_t *ex)
{
    fc_worker_t *w = W(ex);
    fc_conn_t *c = ex->client;
    int over = 0;
    while (c->pos < c->io.rbuf.len && !ex->req_done && !over) {
        size_t used = 0, made = 0;
        char *in = c->io.rbuf.base + c->pos;
        int ev = fc_body_read(&ex->req_body, in, c->io.rbuf.len - c->pos, in, &used, &made);
        size_t cap0 = ex->req_buf.cap;
        if (made > 0 && fc_buf_append(&ex->req_buf, in, made) != 0) {
            fail(ex, FC_END_INTERNAL);
            return;
        }
        w->req_buffers += ex->req_buf.cap - cap0;
        c->pos += used;
        if (body_read_end(ex, ev) != 0) return;
        over = ex->req_buf.len >= ex->route->buffer_request && !ex->req_done;
    }
    if (c->pos == c->io.rbuf.len) c->io.rbuf.len = c->pos = 0; /* all of it is in req_buf */
    if (!ex->req_done && !over) {
        fc_conn_read_start(c);
        return;
    }
    ex->req_buffering = 0;
    ex->body_start = ex->fwd = ex->dec_end = c->pos;
    ex->replayable = ex->req_done; /* the whole body is in req_buf: it can go again, chunked or not */
    connect_next(ex, 0);
}

/* ---- connecting ---------------------------------------------------------------------------- */


static unsigned tries_used(const fc_exchange_t *ex)
{
    unsigned n = 0;
    for (size_t i = 0; i < FC_TRIED_WORDS; i++) n += (unsigned)__builtin_popcountll(ex->tried[i]);
    return n;
}

/* 1 if, after a failure of <kind>/<status>, the request may go to another server: the retry
 * rules allow it, nothing reached the client, and either no byte of the request reached a server
 * or the request is idempotent and can be sent again whole. */
static int may_retry(const fc_exchange_t *ex, int kind, int status)
{
    const fc_retry_conf_t *rc = &ex->route->upstream->retry;
    if (!fc_fail_set_has(&rc->on, kind, status) || tries_used(ex) >= rc->tries) return 0;
    if (rc->timeout > 0 && uv_now(W(ex)->loop) - ex->t_first_try >= rc->timeout) return 0;
    if (ex->status != 0 || ex->bytes_sent > 0 || ex->cl_writing || ex->client == NULL) return 0;
    if (ex->head_sent && (!ex->idempotent || !ex->replayable)) return 0;
    return 1;
}

/* 1 if a usable server remains that this request has not tried. */
static int has_candidate(const fc_exchange_t *ex)
{
    fc_upstream_t *u = UP(ex);
    fc_upstream_refresh(u);
    for (size_t i = 0; i < u->conf->nservers; i++)
        if (u->view[i].usable && !fc_tried_has(ex->tried, i)) return 1;
    return 0;
}

/* 1 if connect error <r> is this process's, not the server's: descriptors or memory ran out. */
static int local_failure(int r)
{
    return r == UV_EMFILE || r == UV_ENFILE || r == UV_ENOMEM || r == UV_ENOBUFS;
}

/* The queue's answer: a place on server <server> of the upstream, or -1 when queue.timeout ran out. */
static void on_queue(fc_queue_wait_t *qw, int server)
{
    fc_exchange_t *ex = fc_container_of(qw, fc_exchange_t, qw);
    fc_worker_t *w = W(ex);
    ex->queue_ms += uv_now(w->loop) - qw->since;
    if (server < 0) {
        fc_log(FC_LOG_INFO, "upstream %s: a request of %s waited %llu ms in the queue: 503", UP(ex)->conf->name,
               ex->client ? ex->client->ip : "-", (unsigned long long)ex->queue_ms);
        ex->cause = FC_END_BUSY;
        reply_local(ex, 503, "503 Service Unavailable\n", "Retry-After: 1\r\n", 0);
        return;
    }
    ex->granted = (int16_t)(server + 1);
    connect_next(ex, 0);
}

/* No server has room for <ex> now (<why>): it waits in the upstream's queue, or, without one or
 * when the queue is full, gets 503 with Retry-After (busy, not down: not a 502). */
static void busy(fc_exchange_t *ex, fc_upstream_t *u, const char *why)
{
    if (u->queue != NULL && fc_queue_wait(u->queue, &ex->qw, on_queue) == 0) return;
    uint64_t t = uv_now(W(ex)->loop);
    if (u->all_down_logged == 0 || t - u->all_down_logged >= 10000) {
        fc_log(FC_LOG_WARN, "upstream %s: %s%s: 503", u->conf->name, why, u->queue != NULL ? " and the queue is full" : "");
        u->all_down_logged = t ? t : 1;
    }
    ex->cause = FC_END_BUSY;
    reply_local(ex, 503, "503 Service Unavailable\n", "Retry-After: 1\r\n", 0);
}

/* <now>: stamp() already taken in this callback, or 0 to read the clock when needed. */
static void connect_next(fc_exchange_t *ex, uint64_t now)
{
    fc_worker_t *w = W(ex);
    fc_upstream_t *u = UP(ex);
    size_t n = u->conf->nservers;
    if (ex->t_first_try == 0) ex->t_first_try = uv_now(w->loop);
    for (;;) {
        size_t usable = fc_upstream_refresh(u);
        int i = -1;
        if (ex->granted > 0) { /* the queue gave this request a place on a server */
            i = ex->granted - 1;
            ex->granted = 0;
            goto chosen;
        }
        if (usable == 0 && tries_used(ex) == 0 && u->all_busy) {
            /* Alive, but every one at max_conns: not the servers' failure, and soon over. */
            busy(ex, u, "every usable server is at max_conns");
            return;
        }
        if (usable > 0 && u->queue != NULL && tries_used(ex) == 0 && fc_queue_busy(u->queue)) {
            busy(ex, u, "requests are waiting for a server"); /* first come, first served */
            return;
        }
        if (usable == 0 && tries_used(ex) == 0) {
            /* Every server is down: answer at once instead of waiting for timeouts. */
            uint64_t t = uv_now(w->loop);
            if (u->all_down_logged == 0 || t - u->all_down_logged >= 10000) {
                fc_log(FC_LOG_ERROR, "upstream %s: no usable server (all down or failed): 502",
                       u->conf->name);
                u->all_down_logged = t ? t : 1;
            }
            fail(ex, FC_END_SERVER_REFUSED);
            return;
        }
        u->all_down_logged = 0;
        fc_balance_req_t req = {.tried = ex->tried};
        if (u->balancer->ops->needs_key) {
            req.key = ex->client ? ex->client->ip : "";
            req.keylen = strlen(req.key);
            fc_slice_t k = ex->hash_key;
            if (k.p != NULL) {
                req.key = k.p;
                req.keylen = k.n;
            }
        }
        /* Sticky: the server the client's cookie names, while it may be chosen (not down, failed,
         * draining or at max_conns); else the policy picks, and the answer re-sets the cookie. */
        if (ex->sticky > 0 && tries_used(ex) == 0 && u->view[ex->sticky - 1].usable) i = ex->sticky - 1;
        if (i < 0) i = u->balancer->ops->pick(u->balancer, u->view, n, &req);
        if (i < 0) {
            fc_log(FC_LOG_ERROR, "upstream %s: no server left to try for %s", u->conf->name,
                   ex->client ? ex->client->ip : "-");
            fail(ex, ex->try_cause != FC_END_NONE ? ex->try_cause : FC_END_SERVER_REFUSED);
            return;
        }
        /* Its last place may have gone to another worker since the refresh: look again. */
        if (fc_server_take(&u->servers[i]) != 0) continue;
    chosen:
        ex->set_sticky = u->sticky_ids != NULL && i != ex->sticky - 1;
        fc_tried_set(ex->tried, (size_t)i);
        fc_server_t *s = &u->servers[i];
        ex->server = s;
        fc_upconn_t *up = fc_pool_acquire(s, ex);
        if (up != NULL) {
            ex->up = up;
            send_request(ex, now ? now : stamp(ex));
            return;
        }
        ex->t_conn_start = now ? now : stamp(ex);
        int r = fc_upconn_connect(s, ex, &up);
        if (r == 0) {
            ex->up = up;
            ex->phase = FC_PHASE_CONNECT;
            fc_timeout_set(&w->tq, &up->timeout, w->route_connect[route_index(ex)]);
            return;
        }
        fc_server_done(s);
        if (local_failure(r)) {
            /* Out of descriptors or memory here: no fault of the server, and no other server
             * would fare better. */
            fc_log(FC_LOG_ERROR, "upstream %s: cannot connect to %s: %s (local): 503", u->conf->name,
                   s->conf->addr.text, uv_strerror(r));
            fail(ex, FC_END_LOCAL);
            return;
        }
        fc_log(FC_LOG_ERROR, "upstream %s: connect to %s failed: %s", u->conf->name, s->conf->addr.text,
               uv_strerror(r));
        fc_server_report(s, FC_FAIL_ERROR, 0, uv_strerror(r));
        ex->try_cause = FC_END_SERVER_REFUSED;
        if (!may_retry(ex, FC_FAIL_ERROR, 0)) {
            fail(ex, ex->try_cause);
            return;
        }
    }
}

/* After a failed attempt: the next server when the rules allow it, else the answer <cause> calls for. */
static void next_or_fail(fc_exchange_t *ex, int kind, int status, int cause)
{
    detach_upstream(ex, 0);
    if (may_retry(ex, kind, status)) {
        if (UP(ex)->ms != NULL) fc_metrics_add(UP(ex)->ms, FC_MV_RETRIES, 1);
        ex->try_cause = (uint8_t)cause;
        connect_next(ex, 0);
        return;
    }
    fail(ex, cause);
}

void fc_exchange_on_connect(fc_exchange_t *ex, int status)
{
    if (status == 0) {
        uint64_t t = stamp(ex);
        ex->connect_ns = t > 1 && ex->t_conn_start > 1 ? t - ex->t_conn_start : 0;
        fc_metrics_series_t *ums = ex->server->upstream->ms;
        if (ums != NULL) fc_metrics_observe(ums, W(ex)->metrics.conf, ex->connect_ns);
        send_request(ex, t);
        return;
    }
    fc_server_t *s = ex->server;
    int kind = status == UV_ETIMEDOUT ? FC_FAIL_TIMEOUT : FC_FAIL_ERROR;
    const char *tls = ex->up != NULL ? fc_io_tls_error(&ex->up->io) : NULL;
    const char *why = status == UV_ETIMEDOUT ? "connect timed out" : tls != NULL ? tls : uv_strerror(status);
    fc_log(FC_LOG_ERROR, "upstream %s: connect to %s failed: %s%s", s->upstream->conf->name, s->conf->addr.text,
           tls != NULL ? "tls: " : "", why);
    fc_server_report(s, kind, 0, why);
    /* Refused or timed out: either way nothing reached the server; the next one, then 502. */
    next_or_fail(ex, kind, 0, FC_END_SERVER_REFUSED);
}

/* <t>: stamp() taken by the caller, the moment the request is handed to the connection. */
static void send_request(fc_exchange_t *ex, uint64_t t)
{
    fc_upconn_t *up = ex->up;
    ex->phase = FC_PHASE_HEADERS;
    ex->head_sent = ex->req_sent = ex->rb_sent = 0;
    ex->fwd = ex->body_start;
    ex->resp_began = 0;
    ex->t_up_start = t;
    ex->t_up_head = 0;
    up->requests++;
    if (!ex->req_done && ex->body_t0 == 0) ex->body_t0 = uv_now(W(ex)->loop);
    up->parser.head = &ex->resp;
    up->parser.skip_body = ex->is_head;
    fc_upconn_read_start(up);
    pump_request(ex);
}

/* ---- request body -------------------------------------------------------------------------- */

static void on_up_write(fc_io_t *io, int status);

/* 1 while a write of this exchange to its current upstream connection is in flight. */
static int up_writing(const fc_exchange_t *ex) { return ex->up != NULL && ex->up->wex != NULL; }

/* Reads what the client sent of the body (framing as the head check decided: a chunked body is
 * decoded in place and framed again below) and writes it, after the head, to the server. One
 * write in flight at a time; the request counts as sent only once its last byte is handed over. */
static void pump_request(fc_exchange_t *ex)
{
    fc_worker_t *w = W(ex);
    for (;;) {
        fc_upconn_t *up = ex->up;
        fc_conn_t *c = ex->client;
        if (up == NULL || up->state != FC_UP_ACTIVE || up->wex != NULL || ex->finished || ex->req_sent) return;
        int chunked = ex->req_body.framing == FC_FRAME_CHUNKED;
        uv_buf_t iov[4];
        unsigned n = 0;
        /* The buffered start of the body (all of it once req_done: buffering.request) goes first. */
        int from_buf = FC_UNLIKELY(ex->req_buffered) && !ex->rb_sent;
        if (!ex->head_sent) iov[n++] = fc_iov(ex->head_out.base, (unsigned)ex->head_out.len);
        if (!from_buf && !ex->req_done && c != NULL && c->pos < c->io.rbuf.len) {
            size_t used = 0, made = 0;
            char *in = c->io.rbuf.base + c->pos;
            int ev = fc_body_read(&ex->req_body, in, c->io.rbuf.len - c->pos, chunked ? c->io.rbuf.base + ex->dec_end : in,
                                  &used, &made);
            c->pos += used;
            ex->dec_end = chunked ? ex->dec_end + made : c->pos;
            if (body_read_end(ex, ev) != 0) return;
        }
        size_t data = from_buf ? ex->req_buf.len : c != NULL && ex->fwd < ex->dec_end ? ex->dec_end - ex->fwd : 0;
        char *dp = from_buf ? ex->req_buf.base : c != NULL ? c->io.rbuf.base + ex->fwd : NULL;
        int last = ex->req_done; /* this write ends the request */
        ex->req_tail.len = 0;
        if (chunked && data > 0) iov[n++] = fc_iov(ex->up_prefix, (unsigned)fc_chunk_prefix(ex->up_prefix, data));
        if (data > 0) iov[n++] = fc_iov(dp, (unsigned)data);
        if (chunked && (data > 0 || last)) {
            if (fc_chunk_suffix(&ex->req_tail, &ex->req_body, data, last) != 0) {
                fail(ex, FC_END_INTERNAL);
                return;
            }
            iov[n++] = fc_iov(ex->req_tail.base, (unsigned)ex->req_tail.len);
        }
        if (n == 0 && !last) {
            if (c != NULL) {
                /* Everything read so far is sent: make room and read more. */
                if (c->pos == c->io.rbuf.len && c->io.rbuf.cap - c->io.rbuf.len < c->io.rbuf.cap / 4) {
                    c->io.rbuf.len = c->pos = ex->fwd = ex->dec_end = ex->body_start = 0;
                    ex->replayable = 0;
                }
                fc_conn_read_start(c);
            }
            return;
        }
        int r = n > 0 ? fc_io_write(&up->io, iov, n, on_up_write) : 0;
        if (r < 0) {
            fc_exchange_on_upstream_error(ex, r);
            return;
        }
        ex->head_sent = 1;
        if (from_buf) ex->rb_sent = 1;
        else ex->fwd = ex->dec_end;
        if (last) {
            ex->req_sent = 1;
            fc_timeout_set(&w->tq, &up->timeout, w->route_read[route_index(ex)]);
        }
        if (r == 0) continue;
        /* The rest is queued: the bytes stay put until on_up_write, which this connection carries. */
        up->wex = ex;
        ex->refs++;
        fc_timeout_set(&w->tq, &up->timeout, w->route_send[route_index(ex)]);
        return;
    }
}

static void on_up_write(fc_io_t *io, int status)
{
    fc_upconn_t *up = fc_container_of(io, fc_upconn_t, io);
    fc_exchange_t *ex = up->wex;
    up->wex = NULL;
    /* Only the exchange's current connection speaks for it: a write cancelled because its
     * connection was given up (a retry, an abort) is no news about the server now in use. */
    if (!ex->finished && ex->up == up) {
        if (status < 0) fc_exchange_on_upstream_error(ex, status);
        else {
            if (ex->req_sent) fc_timeout_set(&W(ex)->tq, &up->timeout, W(ex)->route_read[route_index(ex)]);
            pump_request(ex);
        }
    }
    unref(ex);
}

/* limits.client_body_min_rate: 1 when the body going to a server has averaged less than the rate
 * since it began, past the grace (a client trickling a body must not hold a server's place). Only
 * looked at as bytes arrive: a client that sends nothing is cut by client_body_timeout. */
static int body_too_slow(const fc_exchange_t *ex)
{
    const fc_limits_conf_t *lim = &W(ex)->cfg->limits;
    if (lim->client_body_min_rate == 0 || ex->body_t0 == 0 || ex->req_done) return 0;
    uint64_t ms = uv_now(W(ex)->loop) - ex->body_t0;
    if (ms <= lim->client_body_min_rate_after) return 0;
    const fc_conn_t *c = ex->client;
    uint64_t got = ex->req_body.total + (c != NULL ? c->io.rbuf.len - c->pos : 0);
    return got * 1000 < lim->client_body_min_rate * ms;
}

void fc_exchange_on_client_data(fc_exchange_t *ex)
{
    if (!ex->req_done) fc_timeout_set(&W(ex)->tq, &ex->client->timeout, W(ex)->t_body);
    if (FC_UNLIKELY(body_too_slow(ex))) {
        fc_log(FC_LOG_INFO, "client %s: request body slower than client_body_min_rate (%llu bytes in %llu ms)",
               ex->client->ip, (unsigned long long)ex->req_body.total,
               (unsigned long long)(uv_now(W(ex)->loop) - ex->body_t0));
        fail(ex, FC_END_CLIENT_TIMEOUT);
        return;
    }
    if (FC_UNLIKELY(ex->req_buffering)) buffer_request(ex);
    else pump_request(ex);
}

void fc_exchange_on_client_error(fc_exchange_t *ex, int status)
{
    if (ex->finished) return;
    /* EOF from the client before its answer is complete: like nginx (proxy_ignore_client_abort
     * off), it is taken as the client giving up, not as a half-close, so the server's work and a
     * graceful stop do not wait for an answer nobody will read. */
    if (ex->cause == FC_END_NONE) ex->cause = FC_END_CLIENT_CLOSED;
    if (ex->status == 0) ex->status = 499; /* nginx's code for "client closed request" */
    fc_upconn_t *up = ex->up;
    fc_conn_t *c = ex->client;
    if (!ex->discard && c != NULL && up != NULL && up->state == FC_UP_ACTIVE && ex->req_done && ex->head_sent &&
        !up_writing(ex) && !ex->error_reply && !W(ex)->draining) {
        /* The request is with the server already: read the rest of its answer and drop it, so its
         * connection goes back to the pool instead of being closed (HAProxy's default; bounded
         * by the read timeout, and cancelled by a graceful stop). The client's reference on the
         * exchange is now the discarding's. */
        memcpy(ex->ip, c->ip, sizeof(ex->ip)); /* for the access log line, written later */
        ex->client = NULL;
        c->ex = NULL;
        fc_conn_close(c);
        ex->discard = 1;
        if (ex->queued) flush_queued(ex);
        else if (!ex->cl_writing) flush_client(ex);
        return;
    }
    finish(ex);
}

void fc_exchange_cancel(fc_exchange_t *ex)
{
    if (ex->finished) return;
    if (ex->cause == FC_END_NONE) ex->cause = FC_END_CLIENT_CLOSED;
    finish(ex);
}

void fc_exchange_on_client_timeout(fc_exchange_t *ex)
{
    fc_log(FC_LOG_INFO, "client %s: timed out (%s)", ex->client->ip, ex->req_done ? "send" : "body");
    fail(ex, FC_END_CLIENT_TIMEOUT);
}

/* ---- response ------------------------------------------------------------------------------ */

void fc_exchange_on_upstream_data(fc_exchange_t *ex)
{
    ex->resp_began = 1;
    pump_response(ex);
}

void fc_exchange_on_upstream_error(fc_exchange_t *ex, int status)
{
    fc_upconn_t *up = ex->up;
    if (ex->finished || up == NULL) return;
    if (ex->phase == FC_PHASE_CONNECT) { /* connect timeout */
        fc_exchange_on_connect(ex, status);
        return;
    }
    fc_server_t *s = ex->server;
    if (status == UV_EOF && ex->resp_head_done && !ex->resp_done && ex->resp_body.framing == FC_FRAME_EOF) {
        if (fc_body_eof(&ex->resp_body) == FC_BODY_DONE) { /* a close-delimited body ended */
            ex->resp_done = 1;
            ex->t_up_end = stamp(ex);
            ex->end_at_up_end = 1;
            ex->keepalive = 0;
            pump_response(ex);
            return;
        }
    }
    if (status == UV_ETIMEDOUT) {
        const char *why = ex->req_sent ? "read timed out" : "send timed out";
        fc_log(FC_LOG_ERROR, "upstream %s: %s %s", s->upstream->conf->name, s->conf->addr.text, why);
        fc_server_report(s, FC_FAIL_TIMEOUT, 0, why);
        next_or_fail(ex, FC_FAIL_TIMEOUT, 0, FC_END_SERVER_TIMEOUT);
        return;
    }
    /* A reused connection that failed before any response byte was most likely closed by the
     * server just as we sent: an idempotent request goes once more, on a fresh connection to the
     * same server, and the server is not blamed. */
    if (!ex->resp_began && up->requests > 1 && !ex->retried && ex->replayable && ex->idempotent) {
        ex->retried = 1;
        if (s->upstream->ms != NULL) fc_metrics_add(s->upstream->ms, FC_MV_RETRIES, 1);
        fc_server_picked(s); /* first: the place stays this request's, not the next waiter's */
        detach_upstream(ex, 0);
        ex->t_conn_start = stamp(ex);
        int r = fc_upconn_connect(s, ex, &ex->up);
        if (r == 0) {
            ex->phase = FC_PHASE_CONNECT;
            fc_timeout_set(&W(ex)->tq, &ex->up->timeout, W(ex)->route_connect[route_index(ex)]);
            return;
        }
        ex->up = NULL;
        fc_server_done(s);
        fail(ex, local_failure(r) ? FC_END_LOCAL : FC_END_SERVER_CLOSED);
        return;
    }
    const char *why = status == UV_EOF ? "closed the connection" : uv_strerror(status);
    fc_log(FC_LOG_ERROR, "upstream %s: %s %s", s->upstream->conf->name, s->conf->addr.text, why);
    fc_server_report(s, FC_FAIL_ERROR, 0, why);
    next_or_fail(ex, FC_FAIL_ERROR, 0, FC_END_SERVER_CLOSED);
}

static void on_cl_write(fc_io_t *io, int status);

/* A response that must not reach the client: the server gets the failure kind invalid_header
 * (not in the default fail_on, so one bad answer does not take a server out) and the request
 * goes to the next server if the retry rules allow it, else this client alone gets a 502. */
static void bad_response(fc_exchange_t *ex, const char *why)
{
    fc_server_t *s = ex->server;
    fc_log(FC_LOG_ERROR, "upstream %s: %s sent a bad response: %s", s->upstream->conf->name, s->conf->addr.text, why);
    fc_server_report(s, FC_FAIL_INVALID, 0, why);
    next_or_fail(ex, FC_FAIL_INVALID, 0, FC_END_SERVER_BAD);
}

/* Parses what the upstream sent and writes it to the client: the rewritten head, then the body
 * as the head check framed it (passed on as received, or decoded and framed again with our own
 * chunk lines, or decoded only for an HTTP/1.0 client). One write in flight at most. */
/* The learn table's key for value <v> of this upstream's learned cookie. */
static uint64_t learn_key(const fc_exchange_t *ex, fc_slice_t v)
{
    const char *name = ex->route->upstream->name; /* the upstream's name, a NUL, the value */
    return fc_fnv1a(fc_fnv1a(FC_FNV_INIT, name, strlen(name) + 1), v.p, v.n);
}

/* Sticky learn mode: a Set-Cookie of the learned cookie in this answer ties its value to the
 * server that sent it, for every worker. */
static void learn_sticky(fc_exchange_t *ex)
{
    const fc_sticky_conf_t *st = &ex->route->upstream->sticky;
    size_t n = strlen(st->learn);
    fc_worker_t *w = W(ex);
    for (size_t i = 0; i < ex->resp.nheaders; i++) {
        const fc_header_t *hd = &ex->resp.headers[i];
        if (!FC_SLICE_IEQ(hd->name, "set-cookie")) continue;
        const char *p = hd->value.p, *end = p + hd->value.n;
        while (p < end && *p == ' ') p++;
        if ((size_t)(end - p) <= n || memcmp(p, st->learn, n) != 0 || p[n] != '=') continue;
        const char *v = p + n + 1, *semi = memchr(v, ';', (size_t)(end - v));
        fc_slice_t val = {v, (size_t)((semi ? semi : end) - v)};
        if (val.n == 0) continue;
        fc_shm_learn_put(w->shm, learn_key(ex, val), (uint32_t)(ex->server->st - w->shm->servers),
                         uv_now(w->loop) + st->learn_timeout);
    }
}

/* The Set-Cookie line of the upstream's sticky cookie, naming the server that answered, in <line>;
 * returns its length, or -1 when it does not fit. */
static int sticky_cookie(fc_exchange_t *ex, char *line, size_t size)
{
    const fc_sticky_conf_t *st = &ex->route->upstream->sticky;
    fc_upstream_t *u = UP(ex);
    fc_conn_t *c = ex->client;
    int secure = st->secure == 1 || (st->secure == 2 && c != NULL && c->io.tls != NULL);
    char age[40] = "";
    if (st->max_age > 0) snprintf(age, sizeof(age), "; Max-Age=%llu", (unsigned long long)(st->max_age / 1000));
    int n = snprintf(line, size, "Set-Cookie: %s=%s; Path=/%s%s%s%s%s\r\n", st->cookie,
                     u->sticky_ids[ex->server - u->servers], age, secure ? "; Secure" : "",
                     st->http_only ? "; HttpOnly" : "", st->same_site ? "; SameSite=" : "", st->same_site ? st->same_site : "");
    return n < 0 || (size_t)n >= size ? -1 : n;
}

/* ---- the queued response body (buffered or compressed) ------------------------------------ */

#define COMPRESS_AHEAD (64u << 10) /* compressed, not buffered: read this far ahead of the client */

/* 1 if the route may compress this response at all, by the rules that depend on the response
 * alone: then it varies on Accept-Encoding, compressed or not. */
static int compressible(const fc_exchange_t *ex, const fc_response_view_t *rv)
{
    const fc_compression_conf_t *cc = ex->route->compression;
    const fc_http_head_t *h = &ex->resp;
    int st = h->status;
    if (st < 200 || st == 204 || st == 206 || st == 304) return 0;
    if (rv->framing == FC_FRAME_LENGTH && rv->length < cc->min_length) return 0;
    fc_slice_t type = {NULL, 0};
    for (size_t i = 0; i < h->nheaders; i++) {
        const fc_header_t *hd = &h->headers[i];
        if (FC_SLICE_IEQ(hd->name, "content-encoding") || FC_SLICE_IEQ(hd->name, "content-range")) return 0;
        if (FC_SLICE_IEQ(hd->name, "cache-control") && fc_has_no_transform(hd->value)) return 0;
        if (FC_SLICE_IEQ(hd->name, "content-type")) type = fc_media_type(hd->value);
    }
    if (type.n == 0) return 0;
    for (size_t i = 0; i < cc->ntypes; i++)
        if (strlen(cc->types[i]) == type.n && strncasecmp(cc->types[i], type.p, type.n) == 0) return 1;
    return 0;
}

/* What the response head gets besides its own fields: the sticky cookie line (in <cookie>, of
 * <size> bytes), Vary and Content-Encoding. Returns the coding the body gets (FC_CODING_NONE:
 * none), or -1 (the cookie does not fit). */
static int __attribute__((noinline)) response_edit(fc_exchange_t *ex, const fc_response_view_t *rv, fc_resp_edit_t *e,
                                                   char *cookie, size_t size)
{
    memset(e, 0, sizeof(*e));
    if (ex->set_sticky) {
        int n = sticky_cookie(ex, cookie, size);
        if (n < 0) return -1;
        e->lines = (fc_slice_t){cookie, (size_t)n};
    }
    if (ex->route->compression == NULL || !compressible(ex, rv)) return FC_CODING_NONE;
    e->vary = 1;
    if (ex->coding != FC_CODING_NONE) e->encoding = fc_coding_name(ex->coding);
    return ex->coding;
}

/* The response body goes through q: compressed with <coding> (NONE: not), and read ahead of the
 * client up to the route's buffering.response. Returns 0 (also when limits.buffer_memory is
 * reached and nothing is compressed: the body then streams as usual) or -1 (out of memory). */
static int start_queue(fc_exchange_t *ex, int coding, const fc_response_view_t *rv)
{
    fc_worker_t *w = W(ex);
    size_t limit = COMPRESS_AHEAD;
    if (ex->route->buffer_response > 0) {
        if (w->bodyq.out < w->cfg->limits.buffer_memory) {
            limit = (size_t)ex->route->buffer_response;
        } else {
            fc_metrics_buffering_skipped(&w->metrics);
            if (uv_now(w->loop) - w->buffering_warned >= 10000) {
                fc_log(FC_LOG_WARN, "limits.buffer_memory (%llu) reached: responses stream without buffering",
                       (unsigned long long)w->cfg->limits.buffer_memory);
                w->buffering_warned = uv_now(w->loop);
            }
            if (coding == FC_CODING_NONE) return 0;
        }
    }
    ex->codec = NULL;
    if (coding != FC_CODING_NONE) {
        const fc_compression_conf_t *cc = ex->route->compression;
        ex->codec = codec_get(w, coding, cc->level[coding], rv->framing == FC_FRAME_LENGTH ? rv->length : 0);
        if (ex->codec == NULL) return -1;
    }
    ex->queued = 1;
    ex->q_limit = limit;
    ex->q_inflight = 0;
    memset(&ex->q, 0, sizeof(ex->q));
    fc_timeout_init(&ex->flush_timer, on_cflush);
    return 0;
}

/* Appends <n> payload bytes at <p> to q, through the compressor if there is one (<mode>: run,
 * flush or finish it). Returns 0 or -1 (out of memory, or a codec error). */
static int feed(fc_exchange_t *ex, const char *p, size_t n, int mode)
{
    fc_worker_t *w = W(ex);
    if (ex->codec == NULL) return fc_bodyq_append(&ex->q, &w->bodyq, p, n);
    for (;;) {
        size_t avail;
        char *out = fc_bodyq_space(&ex->q, &w->bodyq, &avail);
        if (out == NULL) return -1;
        size_t left = avail;
        int r = fc_codec_run(ex->codec, &p, &n, &out, &left, mode);
        fc_bodyq_commit(&ex->q, avail - left);
        if (r < 0) return -1;
        if (mode == FC_CODEC_RUN ? n == 0 : r == 1) return 0;
    }
}

/* A compressed stream whose server paused: what it sent so far goes to the client now. */
static void on_cflush(fc_timeout_t *t)
{
    fc_exchange_t *ex = fc_container_of(t, fc_exchange_t, flush_timer);
    if (ex->finished || ex->codec == NULL) return;
    if (feed(ex, NULL, 0, FC_CODEC_FLUSH) != 0) {
        fail(ex, FC_END_INTERNAL);
        return;
    }
    if (!ex->cl_writing) flush_queued(ex);
}

/* Moves the payload ready in the server connection's buffer into q, so that buffer is free at
 * once. Returns 0 or -1. */
static int take_payload(fc_exchange_t *ex)
{
    fc_upconn_t *up = ex->up;
    size_t n = up->fwd_end - up->fwd;
    int r = 0;
    if (n > 0 && ex->client != NULL) {
        r = feed(ex, up->io.rbuf.base + up->fwd, n, FC_CODEC_RUN);
        if (r == 0 && ex->codec != NULL && !fc_timeout_armed(&ex->flush_timer))
            fc_timeout_set(&W(ex)->tq, &ex->flush_timer, W(ex)->t_cflush);
    }
    up->fwd = up->fwd_end;
    if (up->pos == up->io.rbuf.len) up->io.rbuf.len = up->pos = up->fwd = up->fwd_end = 0;
    return r;
}

/* The whole response is read: the compressed stream ends, and the server connection goes back to
 * the pool now, however long the client takes to read the rest. Returns 0 or -1. */
static int end_queue(fc_exchange_t *ex)
{
    int r = 0;
    if (ex->codec != NULL) {
        if (ex->client != NULL) r = feed(ex, NULL, 0, FC_CODEC_FINISH);
        fc_timeout_clear(&ex->flush_timer);
        codec_put(W(ex), ex->codec);
        ex->codec = NULL;
    }
    fc_upconn_t *up = ex->up;
    if (up != NULL) {
        int reusable = ex->req_sent && !up_writing(ex) && up->pos == up->io.rbuf.len &&
                       ex->resp_body.framing != FC_FRAME_EOF && llhttp_should_keep_alive(&up->parser.ll);
        detach_upstream(ex, reusable);
    }
    return r;
}

/* A 101 to a request that asked to switch: the client gets the head (after any 1xx before it), and
 * the two connections become a tunnel (upgrade.c); the exchange is done with, and the tunnel
 * writes the access-log line when it ends. What the server sent after its head, and what the
 * client sent after its request, go first. */
static void upgrade_to_tunnel(fc_exchange_t *ex)
{
    fc_conn_t *c = ex->client;
    fc_upconn_t *up = ex->up;
    if (c == NULL || !ex->req_sent || up_writing(ex) || ex->cl_writing || fc_http_find(&ex->resp, "upgrade", 7) == NULL) {
        bad_response(ex, "101 before the request was sent whole, or without Upgrade");
        return;
    }
    if (fc_headers_build_response(&ex->resp_out, &ex->resp, NULL, FC_RESP_UPGRADE, fc_log_time_http(), c->opts) != 0) {
        fail(ex, FC_END_INTERNAL);
        return;
    }
    size_t rest = up->io.rbuf.len - up->pos, head = ex->resp_out.len;
    if (head + rest > up->io.rbuf.cap) {
        bad_response(ex, "101 head and the data after it do not fit the buffer");
        return;
    }
    memmove(up->io.rbuf.base + head, up->io.rbuf.base + up->pos, rest);
    memcpy(up->io.rbuf.base, ex->resp_out.base, head);
    up->io.rbuf.len = head + rest;
    up->pos = up->fwd = up->fwd_end = 0;
    if (c->io.rbuf.base != NULL) {
        memmove(c->io.rbuf.base, c->io.rbuf.base + c->pos, c->io.rbuf.len - c->pos);
        c->io.rbuf.len -= c->pos;
        c->pos = 0;
    }
    fc_upgrade_t *g = calloc(1, sizeof(*g));
    if (g == NULL) {
        fail(ex, FC_END_INTERNAL);
        return;
    }
    g->server = ex->server;
    g->route = ex->route;
    g->route_index = route_index(ex);
    g->t_start = ex->t_start;
    g->log = ex->route->access_log;
    size_t ml = fc_accesslog_escape(g->method, sizeof(g->method) - 1, ex->head_out.base, ex->log_method_len);
    size_t pl = fc_accesslog_escape(g->path, sizeof(g->path) - 1, ex->head_out.base + ex->log_url_off, ex->log_url_len);
    g->method[ml] = g->path[pl] = '\0';
    fc_server_report(ex->server, 0, 101, "");
    /* The exchange lets go of both connections without closing them, and of the server without
     * uncounting it: the tunnel counts it until it ends. */
    fc_timeout_clear(&c->timeout);
    up->parser.head = NULL;
    c->ex = NULL;
    up->ex = NULL;
    ex->client = NULL;
    ex->up = NULL;
    ex->finished = 1;
    unref(ex);
    fc_upgrade_begin(g, c, up);
}

static void pump_response(fc_exchange_t *ex)
{
    fc_worker_t *w = W(ex);
    fc_upconn_t *up = ex->up;
    int kick = 0; /* read the body once with no bytes: a bodiless response ends right after its head */
    int head_now = 0; /* the final head came in this turn: its clock read is the end's too */
    while (up != NULL && (!ex->cl_writing || ex->queued) && !ex->finished && !ex->resp_done) {
        size_t avail = up->io.rbuf.len - up->pos;
        if (avail == 0 && !kick) break;
        kick = 0;
        size_t used = 0;
        int ev;
        if (!ex->resp_head_done) {
            ev = fc_http_execute(&up->parser, up->io.rbuf.base + up->pos, avail, &used);
            up->pos += used;
            if (ev == FC_HTTP_NEED_MORE) {
                if (up->io.rbuf.len == up->io.rbuf.cap) {
                    bad_response(ex, "response head larger than the buffer");
                    return;
                }
                break;
            }
            if (ev == FC_HTTP_ERROR) {
                bad_response(ex, fc_http_error(&up->parser));
                return;
            }
            if (ev == FC_HTTP_MSG_DONE) continue; /* the end of a 1xx */
            /* A head: checked whole before anything of it goes out. A 1xx goes to the client as
             * it is (not to HTTP/1.0 clients); the final one decides the framing. */
            fc_response_view_t rv;
            if (fc_msg_check_response(&ex->resp, &up->parser.ll, ex->is_head, &rv) != 0) {
                ex->resp_out.len = 0; /* a 1xx built before it is not sent either */
                bad_response(ex, rv.why);
                return;
            }
            int st = ex->resp.status;
            if (st < 200) {
                if (st == 101) {
                    if (!ex->upgrade) bad_response(ex, "101 to a request that asked for no upgrade");
                    else {
                        if (ex->server->ms != NULL) fc_metrics_add(ex->server->ms, FC_MV_RESP, 1); /* a 1xx */
                        upgrade_to_tunnel(ex);
                    }
                    return;
                }
                if (!ex->http10 && fc_headers_build_response(&ex->resp_out, &ex->resp, &rv, 0, NULL, &w->head_opts) != 0) {
                    fail(ex, FC_END_INTERNAL);
                    return;
                }
                continue;
            }
            fc_server_t *srv = ex->server;
            int failed = fc_fail_set_has(&srv->upstream->conf->fail_on, FC_FAIL_STATUS, st);
            char why[32] = "";
            if (failed) snprintf(why, sizeof(why), "status %d", st); /* read only for a failure */
            fc_server_report(srv, failed ? FC_FAIL_STATUS : 0, st, why);
            if (srv->ms != NULL) fc_metrics_add(srv->ms, FC_MV_RESP + (unsigned)st / 100 - 1, 1);
            if (st >= 500 && may_retry(ex, FC_FAIL_STATUS, st) && has_candidate(ex)) {
                fc_log(FC_LOG_WARN, "upstream %s: %s answered %d: trying the next server", srv->upstream->conf->name,
                       srv->conf->addr.text, st);
                ex->resp_out.len = 0;
                next_or_fail(ex, FC_FAIL_STATUS, st, FC_END_SERVER_BAD);
                return;
            }
            const fc_header_t *ka = fc_http_find(&ex->resp, "keep-alive", 10);
            fc_upconn_set_server_keepalive(up, ka ? fc_http_keepalive_timeout(ka->value) : -1);
            fc_resp_edit_t edit, *ep = NULL;
            int coding = FC_CODING_NONE;
            char cookie[256];
            if (FC_UNLIKELY(ex->set_sticky || ex->route->compression != NULL)) {
                coding = response_edit(ex, &rv, &edit, cookie, sizeof(cookie));
                if (coding < 0) {
                    fail(ex, FC_END_INTERNAL);
                    return;
                }
                if (edit.encoding != NULL || edit.vary || edit.lines.n > 0) ep = &edit;
            }
            int flags = 0;
            if (coding != FC_CODING_NONE) {
                /* No length is known in advance: chunked, or for HTTP/1.0 ended by the close. */
                if (ex->http10) ex->keepalive = 0;
                else ex->rechunk = 1;
            }
            if (rv.framing == FC_FRAME_CHUNKED && ex->http10) {
                ex->keepalive = 0; /* an HTTP/1.0 client gets the decoded body, ended by the close */
                flags |= FC_RESP_DECHUNK;
            } else if (rv.framing == FC_FRAME_CHUNKED) {
                ex->rechunk = 1;
            }
            if (ex->http10) flags |= FC_RESP_DECHUNK; /* never Transfer-Encoding to HTTP/1.0 */
            if (rv.framing == FC_FRAME_EOF) ex->keepalive = 0;
            if (!ex->req_done) ex->keepalive = 0;
            if (!ex->keepalive || (w->draining && w->handover_gen == 0)) flags |= FC_RESP_CLOSE;
            else if (ex->http10) flags |= FC_RESP_KEEPALIVE;
            const fc_head_opts_t *ho = ex->client ? ex->client->opts : &w->head_opts;
            if ((FC_LIKELY(ep == NULL) ? fc_headers_build_response(&ex->resp_out, &ex->resp, &rv, flags, fc_log_time_http(), ho)
                                       : fc_headers_build_response_edit(&ex->resp_out, &ex->resp, &rv, flags,
                                                                        fc_log_time_http(), ho, ep)) != 0) {
                fail(ex, FC_END_INTERNAL);
                return;
            }
            if (ex->route->upstream->sticky.learn != NULL) learn_sticky(ex);
            if (FC_UNLIKELY(coding != FC_CODING_NONE || ex->route->buffer_response > 0) && rv.framing != FC_FRAME_NONE &&
                start_queue(ex, coding, &rv) != 0) {
                fail(ex, FC_END_INTERNAL);
                return;
            }
            fc_body_init(&ex->resp_body, rv.framing, rv.length, ex->rechunk ? &ex->resp_trailers : NULL);
            if (keep_connection(&ex->resp_body, &ex->resp_connection, &ex->resp) != 0) {
                fail(ex, FC_END_INTERNAL);
                return;
            }
            if (!ex->discard) ex->status = st; /* a client that left is logged 499 */
            up->parser.head = NULL;
            ex->resp_head_done = 1;
            ex->t_up_head = stamp(ex);
            head_now = 1;
            ex->phase = FC_PHASE_BODY;
            up->fwd = up->fwd_end = up->pos;
            kick = 1;
            continue;
        }
        int decode = ex->resp_body.framing == FC_FRAME_CHUNKED;
        size_t made = 0;
        char *in = up->io.rbuf.base + up->pos;
        ev = fc_body_read(&ex->resp_body, in, avail, decode ? up->io.rbuf.base + up->fwd_end : in, &used, &made);
        up->pos += used;
        up->fwd_end = decode ? up->fwd_end + made : up->pos;
        if (ev == FC_BODY_DONE) {
            ex->resp_done = 1;
            ex->t_up_end = head_now ? ex->t_up_head : stamp(ex);
            ex->end_at_up_end = 1;
        } else if (ev == FC_BODY_ERROR) {
            fc_log(FC_LOG_ERROR, "upstream %s: %s sent a bad body: %s", ex->server->upstream->conf->name,
                   ex->server->conf->addr.text, ex->resp_body.error);
            fail(ex, FC_END_SERVER_BAD);
            return;
        }
        if (ex->queued && take_payload(ex) != 0) {
            fail(ex, FC_END_INTERNAL);
            return;
        }
        break;
    }
    if (ex->finished) return;
    if (FC_UNLIKELY(ex->queued)) flush_queued(ex);
    else if (!ex->cl_writing) flush_client(ex);
}

/* Writes resp_out and the upstream bytes ready for the client (with our chunk lines around them
 * when re-encoding); finishes when all is done. */
static void flush_client(fc_exchange_t *ex)
{
    fc_worker_t *w = W(ex);
    fc_conn_t *c = ex->client;
    fc_upconn_t *up = ex->up;
    if (c == NULL && !ex->discard) return;
    if (c == NULL) { /* discarding: what is ready counts as written */
        ex->resp_out.len = 0;
        if (up != NULL) up->fwd = up->fwd_end;
    }
    while (c != NULL) {
        uv_buf_t iov[4];
        unsigned n = 0;
        size_t data = up != NULL && ex->resp_head_done ? up->fwd_end - up->fwd : 0;
        int last = ex->rechunk && ex->resp_done && !ex->resp_last_sent;
        char *dp = data > 0 ? up->io.rbuf.base + up->fwd : NULL;
        if (up == NULL && ex->local_body.len > 0) { /* a large local answer's body, after its head */
            data = ex->local_body.len;
            dp = ex->local_body.base;
        }
        size_t plen = ex->rechunk && data > 0 ? fc_chunk_prefix(ex->cl_prefix, data) : 0;
        ex->resp_tail.len = 0;
        if ((ex->rechunk && (data > 0 || last)) && fc_chunk_suffix(&ex->resp_tail, &ex->resp_body, data, last) != 0) {
            fc_exchange_on_client_error(ex, UV_ENOMEM);
            return;
        }
        if (ex->resp_out.len > 0 && data <= 2048 && fc_buf_reserve(&ex->resp_out, plen + data + ex->resp_tail.len) == 0) {
            /* A small body rides with the head: one write() instead of writev(). */
            fc_buf_append(&ex->resp_out, ex->cl_prefix, plen);
            fc_buf_append(&ex->resp_out, dp, data);
            fc_buf_append(&ex->resp_out, ex->resp_tail.base, ex->resp_tail.len);
            plen = data = ex->resp_tail.len = 0;
        }
        if (ex->resp_out.len > 0) iov[n++] = fc_iov(ex->resp_out.base, (unsigned)ex->resp_out.len);
        if (plen > 0) iov[n++] = fc_iov(ex->cl_prefix, (unsigned)plen);
        if (data > 0) iov[n++] = fc_iov(dp, (unsigned)data);
        if (ex->resp_tail.len > 0) iov[n++] = fc_iov(ex->resp_tail.base, (unsigned)ex->resp_tail.len);
        if (n == 0) break;
        size_t total = 0;
        for (unsigned i = 0; i < n; i++) total += iov[i].len;
        /* Without Nagle's delay a second small write goes out at once; the whole answer in one
         * write on a connection that then closes needs no setsockopt. */
        if (!(ex->resp_done && !ex->keepalive)) fc_conn_nodelay(c);
        int r = fc_io_write(&c->io, iov, n, on_cl_write);
        if (r < 0) {
            fc_exchange_on_client_error(ex, r);
            return;
        }
        ex->bytes_sent += total; /* what is queued counts now: on_cl_write completes it */
        ex->resp_last_sent |= (uint8_t)last;
        if (r == 1) {
            c->wex = ex; /* the callback comes to this connection, which finds the exchange here */
            ex->cl_writing = 1;
            ex->end_at_up_end = 0; /* the answer's end is when this write completes */
            ex->refs++;
            if (up != NULL) fc_upconn_read_stop(up);
            fc_timeout_set(&w->tq, &c->timeout, w->t_send);
            return;
        }
        ex->resp_out.len = 0;
        if (up != NULL) up->fwd = up->fwd_end;
        else if (ex->local_body.base != NULL) fc_buf_free(&ex->local_body);
        break;
    }
    if (up != NULL && up->fwd == up->fwd_end && up->pos == up->io.rbuf.len && ex->resp_head_done) {
        /* Everything received was passed on: reuse the buffer from its start. */
        up->io.rbuf.len = up->pos = up->fwd = up->fwd_end = 0;
    }
    if (ex->resp_done) {
        finish(ex);
        return;
    }
    if (up != NULL) {
        if (ex->req_done) fc_timeout_set(&w->tq, &up->timeout, w->route_read[route_index(ex)]);
        fc_upconn_read_start(up);
        if (up->pos < up->io.rbuf.len) pump_response(ex);
    }
}

/* flush_client for a queued body: the head, then what q holds with our chunk lines around it,
 * while the server is read ahead (up to q_limit); finishes when all is done. */
static void flush_queued(fc_exchange_t *ex)
{
    fc_worker_t *w = W(ex);
    fc_conn_t *c = ex->client;
    if (c == NULL && !ex->discard) return;
    if (ex->resp_done && (ex->codec != NULL || ex->up != NULL) && end_queue(ex) != 0) {
        fail(ex, FC_END_INTERNAL);
        return;
    }
    if (c == NULL) { /* discarding: what is ready counts as written */
        ex->resp_out.len = 0;
        fc_bodyq_clear(&ex->q, &w->bodyq);
    }
    while (c != NULL && !ex->cl_writing) {
        fc_slice_t sl[8];
        size_t data;
        size_t ns = fc_bodyq_peek(&ex->q, sl, FC_ARRAY_LEN(sl), &data);
        int last = ex->rechunk && ex->resp_done && data == ex->q.len && !ex->resp_last_sent;
        size_t plen = ex->rechunk && data > 0 ? fc_chunk_prefix(ex->cl_prefix, data) : 0;
        ex->resp_tail.len = 0;
        if ((ex->rechunk && (data > 0 || last)) && fc_chunk_suffix(&ex->resp_tail, &ex->resp_body, data, last) != 0) {
            fc_exchange_on_client_error(ex, UV_ENOMEM);
            return;
        }
        uv_buf_t iov[FC_ARRAY_LEN(sl) + 3];
        unsigned n = 0;
        size_t total = ex->resp_out.len + plen + data + ex->resp_tail.len;
        if (ex->resp_out.len > 0) iov[n++] = fc_iov(ex->resp_out.base, (unsigned)ex->resp_out.len);
        if (plen > 0) iov[n++] = fc_iov(ex->cl_prefix, (unsigned)plen);
        for (size_t i = 0; i < ns; i++) iov[n++] = fc_iov((char *)(uintptr_t)sl[i].p, (unsigned)sl[i].n);
        if (ex->resp_tail.len > 0) iov[n++] = fc_iov(ex->resp_tail.base, (unsigned)ex->resp_tail.len);
        if (n == 0) break;
        if (!(ex->resp_done && !ex->keepalive)) fc_conn_nodelay(c);
        int r = fc_io_write(&c->io, iov, n, on_cl_write);
        if (r < 0) {
            fc_exchange_on_client_error(ex, r);
            return;
        }
        ex->bytes_sent += total;
        ex->resp_last_sent |= (uint8_t)last;
        ex->q_inflight = data;
        if (r == 1) {
            c->wex = ex;
            ex->cl_writing = 1;
            ex->end_at_up_end = 0;
            ex->refs++;
            fc_timeout_set(&w->tq, &c->timeout, w->t_send);
            break;
        }
        ex->resp_out.len = 0;
        fc_bodyq_consume(&ex->q, &w->bodyq, data);
        ex->q_inflight = 0;
    }
    if (!ex->cl_writing && ex->resp_done && ex->q.len == 0 && (!ex->rechunk || ex->resp_last_sent || c == NULL)) {
        finish(ex);
        return;
    }
    fc_upconn_t *up = ex->up;
    if (up == NULL || ex->resp_done) return;
    /* Read the server ahead of the client while q has room (and the worker's buffer memory is not
     * used up: then only an empty q reads on, so every exchange still moves). */
    if (ex->q.len < ex->q_limit && (w->bodyq.out < w->cfg->limits.buffer_memory || ex->q.len == 0)) {
        if (ex->req_done) fc_timeout_set(&w->tq, &up->timeout, w->route_read[route_index(ex)]);
        fc_upconn_read_start(up);
        if (up->pos < up->io.rbuf.len) pump_response(ex);
    } else {
        fc_upconn_read_stop(up);
    }
}

static void on_cl_write(fc_io_t *io, int status)
{
    fc_conn_t *c = fc_container_of(io, fc_conn_t, io);
    fc_exchange_t *ex = c->wex;
    c->wex = NULL;
    ex->cl_writing = 0;
    if (!ex->finished) {
        if (status < 0 && !ex->discard) fc_exchange_on_client_error(ex, status);
        else if (FC_UNLIKELY(ex->queued)) {
            ex->resp_out.len = 0;
            fc_bodyq_consume(&ex->q, &W(ex)->bodyq, ex->q_inflight);
            ex->q_inflight = 0;
            if (ex->client != NULL) fc_timeout_clear(&ex->client->timeout);
            flush_queued(ex);
        } else {
            ex->resp_out.len = 0;
            if (ex->up != NULL) ex->up->fwd = ex->up->fwd_end;
            else if (ex->local_body.base != NULL) fc_buf_free(&ex->local_body);
            if (ex->client != NULL) fc_timeout_clear(&ex->client->timeout);
            flush_client(ex);
        }
    }
    unref(ex);
}

/* ---- the end ------------------------------------------------------------------------------- */

static void finish(fc_exchange_t *ex)
{
    if (ex->finished) return;
    ex->finished = 1;
    leave_queue(ex);
    fc_timeout_clear(&ex->deadline);
    if (ex->rl_wait.pos != 0) fc_rl_wait_cancel(W(ex)->rl_waitq, &ex->rl_wait); /* it left while waiting its turn */
    if (ex->cause == FC_END_NONE) ex->phase = FC_PHASE_DONE; /* a failure keeps the phase it happened in */
    end_record(ex);
    fc_upconn_t *up = ex->up;
    if (up != NULL) {
        /* Reused only when this request went out whole and its answer was read to the byte: a
         * connection that may hold half a request, or unread bytes, is closed. */
        int reusable = ex->resp_done && ex->req_sent && !up_writing(ex) && up->pos == up->io.rbuf.len &&
                       ex->resp_body.framing != FC_FRAME_EOF && llhttp_should_keep_alive(&up->parser.ll);
        detach_upstream(ex, reusable);
    }
    fc_conn_t *c = ex->client;
    if (c != NULL) {
        ex->client = NULL;
        c->ex = NULL;
        c->unread = !ex->req_done;
        if (ex->cause != FC_END_NONE && !ex->error_reply) fc_conn_close(c);
        else fc_conn_exchange_done(c, ex->keepalive && ex->req_done);
        unref(ex);
    } else if (ex->discard) {
        ex->discard = 0;
        unref(ex); /* the reference the client left to the discarding */
    }
}
