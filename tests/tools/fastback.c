/* fastback.c: a small, fast HTTP/1.1 origin server on libuv, used by the benchmark and the demo.
 * It answers every request with 200 and a fixed body (or N bytes for GET /size/N; or the same N bytes with
 * Transfer-Encoding: chunked in chunks of K bytes for GET /chunked/N/K, the last one shorter), keeps connections
 * alive, serves pipelined requests in order with one write per read, and discards request bodies (Content-Length
 * or chunked). It counts accepted connections and requests; GET /__stats returns them as JSON and SIGTERM/SIGINT
 * print "connections N" to stderr before a clean uv_walk shutdown. It talks to nothing but libuv.
 *
 * Usage: fastback --port P [--host 127.0.0.1] [--name NAME] [--size BYTES]
 */
#include <uv.h>

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define FB_READ_CHUNK 65536         /* bytes offered to each read */
#define FB_MAX_HEAD 65536           /* a request head larger than this closes the connection */
#define FB_FILL_SIZE 65536          /* size of the shared pattern used for response bodies */
#define FB_MAX_BODY (1ull << 30)    /* largest /size/N served */
#define FB_INLINE_BODY 16384        /* bodies up to this size are copied into the output buffer */
#define FB_MAX_CHUNKS 65536         /* most chunks in one /chunked/N/K response (N / K rounded up) */

/* Parser state of one connection: reading a head, or discarding a body. */
enum fb_state {
    FB_HEAD = 0,         /* looking for the end of a request head */
    FB_BODY_LEN,         /* discarding <body_left> bytes of a Content-Length body */
    FB_CHUNK_SIZE,       /* reading a chunk-size line */
    FB_CHUNK_DATA,       /* discarding <body_left> bytes of chunk data */
    FB_CHUNK_DATA_END,   /* discarding the CRLF after chunk data */
    FB_CHUNK_TRAILER,    /* reading trailer lines until an empty one */
};

/* One piece of pending output: a range of the connection's obuf, or borrowed static memory. */
typedef struct fb_seg {
    const char *ptr;     /* borrowed static memory, or NULL when the range is in obuf */
    size_t off;          /* offset into obuf when ptr is NULL */
    size_t len;          /* bytes */
} fb_seg_t;

/* One client connection. Freed only in its close callback. */
typedef struct fb_conn {
    uv_tcp_t tcp;             /* the socket; tcp.data points back here */
    uv_write_t wreq;          /* the single write request in flight, if write_inflight */
    char *rbuf;               /* owned: bytes read and not yet consumed */
    size_t rlen;              /* bytes in rbuf */
    size_t rcap;              /* capacity of rbuf */
    size_t scanned;           /* head bytes already searched for the blank line */
    char *obuf;               /* owned: response heads and small bodies being built or written */
    size_t olen;              /* bytes in obuf */
    size_t ocap;              /* capacity of obuf */
    fb_seg_t *segs;           /* owned: output segments in order */
    size_t nsegs;             /* segments in use */
    size_t segcap;            /* capacity of segs */
    uv_buf_t *wbufs;          /* owned: buffers of the write in flight */
    size_t wbufcap;           /* capacity of wbufs */
    enum fb_state state;      /* parser state */
    uint64_t body_left;       /* body or chunk bytes still to discard */
    bool chunk_line_empty;    /* FB_CHUNK_TRAILER: no byte but CR seen yet on this line */
    bool chunk_digits;        /* FB_CHUNK_SIZE: still reading hex digits (not an extension) */
    bool pending_close;       /* the current request asked for Connection: close */
    bool close_after_write;   /* close once the output is flushed */
    bool write_inflight;      /* wreq is in flight: obuf/segs/wbufs must not change */
    bool reading;             /* uv_read_start is active */
    bool stats_only;          /* only /__stats requests so far: not counted as traffic */
    bool counted;             /* this connection is included in g_connections */
    /* What the request being discarded will be answered with (decided when its head is parsed). */
    uint64_t resp_size;       /* body size of the pending response */
    uint64_t resp_chunk;      /* chunk size of the pending response, 0 = Content-Length */
    bool resp_stats;          /* pending response is /__stats */
    bool resp_head;           /* HEAD request: no body */
} fb_conn_t;

static uv_loop_t *g_loop;
static uv_tcp_t g_server;
static uv_signal_t g_sigterm;
static uv_signal_t g_sigint;
static const char *g_name = "fastback";
static uint64_t g_default_size;      /* body size of the default response, 0 = the hello text */
static char *g_default_body;         /* owned: the default body */
static size_t g_default_len;         /* bytes in g_default_body */
static char g_fill[FB_FILL_SIZE];    /* pattern bytes for sized bodies */
static uint64_t g_connections;       /* accepted connections, minus those whose first request was /__stats */
static uint64_t g_requests;          /* requests answered, minus /__stats */
static bool g_stopping;              /* shutdown started */

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf);
static void on_write(uv_write_t *req, int status);
static void on_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf);

static void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n);
    if (q == NULL) {
        fprintf(stderr, "fastback: out of memory\n");
        exit(1);
    }
    return q;
}

static void on_conn_closed(uv_handle_t *handle)
{
    fb_conn_t *c = handle->data;
    free(c->rbuf);
    free(c->obuf);
    free(c->segs);
    free(c->wbufs);
    free(c);
}

static void conn_close(fb_conn_t *c)
{
    if (uv_is_closing((uv_handle_t *)&c->tcp)) return;
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
}

/* Reserves <n> more bytes in obuf and returns where they start. */
static char *obuf_reserve(fb_conn_t *c, size_t n)
{
    if (c->olen + n > c->ocap) {
        size_t cap = c->ocap ? c->ocap : 4096;
        while (cap < c->olen + n) cap *= 2;
        c->obuf = xrealloc(c->obuf, cap);
        c->ocap = cap;
    }
    return c->obuf + c->olen;
}

static void seg_push(fb_conn_t *c, const char *ptr, size_t off, size_t len)
{
    if (len == 0) return;
    /* Consecutive obuf ranges merge into one segment. */
    if (ptr == NULL && c->nsegs > 0) {
        fb_seg_t *last = &c->segs[c->nsegs - 1];
        if (last->ptr == NULL && last->off + last->len == off) {
            last->len += len;
            return;
        }
    }
    if (c->nsegs == c->segcap) {
        c->segcap = c->segcap ? c->segcap * 2 : 16;
        c->segs = xrealloc(c->segs, c->segcap * sizeof(*c->segs));
    }
    c->segs[c->nsegs++] = (fb_seg_t){ptr, off, len};
}

/* Appends <len> bytes to obuf as output. */
static void out_copy(fb_conn_t *c, const char *p, size_t len)
{
    char *dst = obuf_reserve(c, len);
    memcpy(dst, p, len);
    seg_push(c, NULL, c->olen, len);
    c->olen += len;
}

/* Appends <len> pattern bytes as output, copied when small and borrowed from g_fill when large. */
static void out_fill(fb_conn_t *c, uint64_t len)
{
    if (len <= FB_INLINE_BODY) {
        out_copy(c, g_fill, (size_t)len);
        return;
    }
    while (len > 0) {
        size_t n = len > FB_FILL_SIZE ? FB_FILL_SIZE : (size_t)len;
        seg_push(c, g_fill, 0, n);
        len -= n;
    }
}

/* Appends <len> pattern bytes as output, the bytes [pos, pos+len) of the sequence /size/N sends (g_fill repeated):
 * copied when <copy>, else borrowed from g_fill. */
static void out_fill_at(fb_conn_t *c, uint64_t pos, uint64_t len, bool copy)
{
    while (len > 0) {
        size_t at = (size_t)(pos % FB_FILL_SIZE);
        size_t n = FB_FILL_SIZE - at;
        if (n > len) n = (size_t)len;
        if (copy) out_copy(c, g_fill + at, n);
        else seg_push(c, g_fill + at, 0, n);
        pos += n;
        len -= n;
    }
}

/* Writes <v> in lowercase hex without leading zeros at <dst>; returns the digits written (1 to 16). */
static size_t put_hex(char *dst, uint64_t v)
{
    char tmp[16];
    size_t n = 0;
    do {
        tmp[n++] = "0123456789abcdef"[v & 15];
        v >>= 4;
    } while (v != 0);
    for (size_t i = 0; i < n; i++) dst[i] = tmp[n - 1 - i];
    return n;
}

/* Appends a chunked body carrying <len> pattern bytes (the same bytes as /size/<len>) in chunks of <chunk> bytes:
 * "<hex>\r\n<data>\r\n" each, then "0\r\n\r\n". Chunk lines always go to obuf; the data is copied next to
 * them when the body is small (one contiguous segment) and borrowed from g_fill when large, as in out_fill. */
static void out_chunked(fb_conn_t *c, uint64_t len, uint64_t chunk)
{
    bool copy = len <= FB_INLINE_BODY;
    char line[24];
    uint64_t pos = 0;
    size_t ln = 0;       /* bytes pending in line: the CRLF ending the previous chunk and the next size line */
    while (pos < len) {
        uint64_t n = len - pos < chunk ? len - pos : chunk;
        ln += put_hex(line + ln, n);
        line[ln++] = '\r';
        line[ln++] = '\n';
        out_copy(c, line, ln);
        out_fill_at(c, pos, n, copy);
        pos += n;
        line[0] = '\r';
        line[1] = '\n';
        ln = 2;
    }
    memcpy(line + ln, "0\r\n\r\n", 5);
    out_copy(c, line, ln + 5);
}

/* Queues the response to the request whose head (and body) has been fully consumed. */
static void respond(fb_conn_t *c)
{
    char head[256];
    char stats[128];
    const char *body = NULL;
    uint64_t blen;

    if (c->resp_stats) {
        /* A connection opened only to ask for the counters is not traffic: leave it out of them. */
        if (c->stats_only && c->counted) {
            c->counted = false;
            g_connections--;
        }
        blen = (uint64_t)snprintf(stats, sizeof(stats), "{\"connections\":%" PRIu64 ",\"requests\":%" PRIu64 "}\n",
                                  g_connections, g_requests);
        body = stats;
    } else {
        g_requests++;
        if (c->stats_only) {
            c->stats_only = false;
            if (!c->counted) {
                c->counted = true;
                g_connections++;
            }
        }
        if (c->resp_size == UINT64_MAX) {
            body = g_default_body;
            blen = g_default_len;
        } else {
            blen = c->resp_size;
        }
    }
    bool chunked = !c->resp_stats && c->resp_chunk > 0;
    int hn;
    if (chunked) {
        hn = snprintf(head, sizeof(head),
                      "HTTP/1.1 200 OK\r\nServer: fastback\r\nX-Backend: %s\r\nContent-Type: text/plain\r\n"
                      "Transfer-Encoding: chunked\r\n%s\r\n",
                      g_name, c->pending_close ? "Connection: close\r\n" : "");
    } else {
        hn = snprintf(head, sizeof(head),
                      "HTTP/1.1 200 OK\r\nServer: fastback\r\nX-Backend: %s\r\nContent-Type: %s\r\n"
                      "Content-Length: %" PRIu64 "\r\n%s\r\n",
                      g_name, c->resp_stats ? "application/json" : "text/plain", blen,
                      c->pending_close ? "Connection: close\r\n" : "");
    }
    if (hn < 0 || (size_t)hn >= sizeof(head)) hn = 0;
    out_copy(c, head, (size_t)hn);
    if (!c->resp_head) {
        if (chunked) out_chunked(c, blen, c->resp_chunk);
        else if (body != NULL) out_copy(c, body, (size_t)blen);
        else out_fill(c, blen);
    }
    if (c->pending_close) c->close_after_write = true;
}

/* Returns true when header line [p, p+n) is named <name> (case-insensitive) and stores its value. */
static bool header_is(const char *p, size_t n, const char *name, const char **val, size_t *vlen)
{
    size_t nl = strlen(name);
    if (n <= nl || p[nl] != ':' || strncasecmp(p, name, nl) != 0) return false;
    const char *v = p + nl + 1;
    const char *end = p + n;
    while (v < end && (*v == ' ' || *v == '\t')) v++;
    while (end > v && (end[-1] == ' ' || end[-1] == '\t')) end--;
    *val = v;
    *vlen = (size_t)(end - v);
    return true;
}

/* Returns true when the comma-separated list [v, v+n) contains <token> (case-insensitive). */
static bool has_token(const char *v, size_t n, const char *token)
{
    size_t tl = strlen(token);
    const char *end = v + n;
    while (v < end) {
        while (v < end && (*v == ' ' || *v == ',' || *v == '\t')) v++;
        const char *s = v;
        while (v < end && *v != ',') v++;
        const char *e = v;
        while (e > s && (e[-1] == ' ' || e[-1] == '\t')) e--;
        if ((size_t)(e - s) == tl && strncasecmp(s, token, tl) == 0) return true;
    }
    return false;
}

/* Parses the decimal number at [*p, end) into *out (at most <max>); advances *p. Returns -1 without a digit or above
 * max. */
static int parse_num(const char **p, const char *end, uint64_t max, uint64_t *out)
{
    const char *s = *p;
    uint64_t v = 0;
    while (*p < end && **p >= '0' && **p <= '9') {
        v = v * 10 + (uint64_t)(**p - '0');
        if (v > max) return -1;
        (*p)++;
    }
    if (*p == s) return -1;
    *out = v;
    return 0;
}

/* Parses the request head [p, p+n) (without the final blank line). Returns 0, or -1 for a malformed head. */
static int parse_head(fb_conn_t *c, const char *p, size_t n)
{
    const char *end = p + n;
    const char *eol = memchr(p, '\n', n);
    if (eol == NULL) eol = end;
    const char *sp1 = memchr(p, ' ', (size_t)(eol - p));
    if (sp1 == NULL) return -1;
    const char *path = sp1 + 1;
    const char *sp2 = memchr(path, ' ', (size_t)(eol - path));
    if (sp2 == NULL) return -1;
    size_t plen = (size_t)(sp2 - path);
    const char *ver = sp2 + 1;
    bool http10 = (eol - ver) >= 8 && memcmp(ver, "HTTP/1.0", 8) == 0;

    c->resp_head = (sp1 - p) == 4 && memcmp(p, "HEAD", 4) == 0;
    c->resp_stats = plen == 8 && memcmp(path, "/__stats", 8) == 0;
    c->resp_size = UINT64_MAX;
    c->resp_chunk = 0;
    if (plen > 6 && memcmp(path, "/size/", 6) == 0) {
        const char *q = path + 6;
        if (parse_num(&q, sp2, FB_MAX_BODY, &c->resp_size) != 0) return -1;
    } else if (plen > 9 && memcmp(path, "/chunked/", 9) == 0) {
        /* /chunked/N/K: N bytes in chunks of K (an HTTP/1.0 client gets them with Content-Length instead). */
        const char *q = path + 9;
        uint64_t k;
        if (parse_num(&q, sp2, FB_MAX_BODY, &c->resp_size) != 0 || q == sp2 || *q++ != '/' ||
            parse_num(&q, sp2, FB_MAX_BODY, &k) != 0 || k == 0 || (c->resp_size + k - 1) / k > FB_MAX_CHUNKS)
            return -1;
        if (!http10) c->resp_chunk = k;
    } else if (g_default_size > 0) {
        c->resp_size = g_default_size;
    }

    bool keep_alive = !http10;
    bool chunked = false;
    uint64_t clen = 0;
    const char *line = eol < end ? eol + 1 : end;
    while (line < end) {
        const char *le = memchr(line, '\n', (size_t)(end - line));
        if (le == NULL) le = end;
        size_t ll = (size_t)(le - line);
        if (ll > 0 && line[ll - 1] == '\r') ll--;
        const char *v;
        size_t vl;
        if (header_is(line, ll, "content-length", &v, &vl)) {
            clen = 0;
            for (size_t i = 0; i < vl; i++) {
                if (v[i] < '0' || v[i] > '9') return -1;
                clen = clen * 10 + (uint64_t)(v[i] - '0');
                if (clen > (1ull << 50)) return -1;
            }
        } else if (header_is(line, ll, "transfer-encoding", &v, &vl)) {
            if (has_token(v, vl, "chunked")) chunked = true;
        } else if (header_is(line, ll, "connection", &v, &vl)) {
            if (has_token(v, vl, "close")) keep_alive = false;
            else if (has_token(v, vl, "keep-alive")) keep_alive = true;
        }
        line = le + 1;
    }
    c->pending_close = !keep_alive;
    if (chunked) {
        c->state = FB_CHUNK_SIZE;
        c->body_left = 0;
        c->chunk_digits = true;
    } else if (clen > 0) {
        c->state = FB_BODY_LEN;
        c->body_left = clen;
    } else {
        c->state = FB_HEAD;
    }
    return 0;
}

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}

/* Consumes bytes of a chunked body from [p, p+n). Returns bytes consumed, or -1 on a framing error.
 * Sets state to FB_HEAD when the body (with trailers) is complete. */
static ssize_t eat_chunked(fb_conn_t *c, const char *p, size_t n)
{
    size_t i = 0;
    while (i < n && c->state != FB_HEAD) {
        char ch = p[i];
        switch (c->state) {
        case FB_CHUNK_SIZE:
            i++;
            if (ch == '\n') {
                if (c->body_left == 0) {
                    c->state = FB_CHUNK_TRAILER;
                    c->chunk_line_empty = true;
                } else {
                    c->state = FB_CHUNK_DATA;
                }
            } else if (c->chunk_digits) {
                int h = hexval(ch);
                if (h >= 0) {
                    c->body_left = c->body_left * 16 + (uint64_t)h;
                    if (c->body_left > (1ull << 50)) return -1;
                } else {
                    c->chunk_digits = false;
                }
            }
            break;
        case FB_CHUNK_DATA: {
            size_t take = n - i;
            if (take > c->body_left) take = (size_t)c->body_left;
            i += take;
            c->body_left -= take;
            if (c->body_left == 0) c->state = FB_CHUNK_DATA_END;
            break;
        }
        case FB_CHUNK_DATA_END:
            i++;
            if (ch == '\n') {
                c->state = FB_CHUNK_SIZE;
                c->chunk_digits = true;
                c->body_left = 0;
            }
            break;
        case FB_CHUNK_TRAILER:
            i++;
            if (ch == '\n') {
                if (c->chunk_line_empty) c->state = FB_HEAD;
                c->chunk_line_empty = true;
            } else if (ch != '\r') {
                c->chunk_line_empty = false;
            }
            break;
        default:
            return -1;
        }
    }
    return (ssize_t)i;
}

/* Consumes every complete request in rbuf, queueing one response per request. Returns -1 to close. */
static int process(fb_conn_t *c)
{
    size_t pos = 0;
    while (pos < c->rlen && !c->close_after_write) {
        const char *p = c->rbuf + pos;
        size_t n = c->rlen - pos;
        if (c->state == FB_HEAD) {
            /* Tolerate blank lines between requests (RFC 9112 section 2.2). */
            if (c->scanned == 0 && (p[0] == '\r' || p[0] == '\n')) {
                pos++;
                continue;
            }
            size_t from = c->scanned > 3 ? c->scanned - 3 : 0;
            const char *hit = memmem(p + from, n - from, "\r\n\r\n", 4);
            if (hit == NULL) {
                c->scanned = n;
                if (n > FB_MAX_HEAD) return -1;
                break;
            }
            size_t hlen = (size_t)(hit - p);
            c->scanned = 0;
            if (parse_head(c, p, hlen) != 0) return -1;
            pos += hlen + 4;
            if (c->state == FB_HEAD) respond(c);
        } else if (c->state == FB_BODY_LEN) {
            size_t take = n < c->body_left ? n : (size_t)c->body_left;
            pos += take;
            c->body_left -= take;
            if (c->body_left == 0) {
                c->state = FB_HEAD;
                respond(c);
            }
        } else {
            ssize_t used = eat_chunked(c, p, n);
            if (used < 0) return -1;
            pos += (size_t)used;
            if (c->state == FB_HEAD) respond(c);
        }
    }
    if (pos > 0) {
        memmove(c->rbuf, c->rbuf + pos, c->rlen - pos);
        c->rlen -= pos;
    }
    return 0;
}

/* Writes the queued output: uv_try_write first, then one uv_write for the rest (reads stop meanwhile). */
static void flush(fb_conn_t *c)
{
    if (c->nsegs == 0) {
        if (c->close_after_write) conn_close(c);
        return;
    }
    if (c->wbufcap < c->nsegs) {
        c->wbufcap = c->nsegs;
        c->wbufs = xrealloc(c->wbufs, c->wbufcap * sizeof(*c->wbufs));
    }
    for (size_t i = 0; i < c->nsegs; i++) {
        const fb_seg_t *s = &c->segs[i];
        c->wbufs[i] = uv_buf_init((char *)(s->ptr ? s->ptr : c->obuf + s->off), (unsigned)s->len);
    }
    uv_buf_t *bufs = c->wbufs;
    size_t nbufs = c->nsegs;
    int r = uv_try_write((uv_stream_t *)&c->tcp, bufs, (unsigned)nbufs);
    if (r < 0 && r != UV_EAGAIN) {
        conn_close(c);
        return;
    }
    size_t done = r > 0 ? (size_t)r : 0;
    while (nbufs > 0 && done >= bufs->len) {
        done -= bufs->len;
        bufs++;
        nbufs--;
    }
    if (nbufs == 0) {
        c->nsegs = 0;
        c->olen = 0;
        if (c->close_after_write) conn_close(c);
        return;
    }
    bufs->base += done;
    bufs->len -= (unsigned)done;
    if (uv_write(&c->wreq, (uv_stream_t *)&c->tcp, bufs, (unsigned)nbufs, on_write) != 0) {
        conn_close(c);
        return;
    }
    c->write_inflight = true;
    if (c->reading) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = false;
    }
}

static void on_write(uv_write_t *req, int status)
{
    fb_conn_t *c = req->handle->data;
    c->write_inflight = false;
    c->nsegs = 0;
    c->olen = 0;
    if (status < 0 || c->close_after_write || g_stopping) {
        conn_close(c);
        return;
    }
    /* Requests that arrived before the write stopped reads are still in rbuf. */
    if (process(c) != 0) {
        conn_close(c);
        return;
    }
    if (c->nsegs > 0 || c->close_after_write) {
        flush(c);
        if (c->write_inflight || uv_is_closing((uv_handle_t *)&c->tcp)) return;
    }
    if (!c->reading && uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0) c->reading = true;
}

static void on_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
    fb_conn_t *c = handle->data;
    if (c->rcap - c->rlen < FB_READ_CHUNK / 4) {
        size_t cap = c->rcap ? c->rcap * 2 : FB_READ_CHUNK;
        c->rbuf = xrealloc(c->rbuf, cap);
        c->rcap = cap;
    }
    *buf = uv_buf_init(c->rbuf + c->rlen, (unsigned)(c->rcap - c->rlen));
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    fb_conn_t *c = stream->data;
    if (nread == 0) return;
    if (nread < 0) {
        conn_close(c);
        return;
    }
    c->rlen += (size_t)nread;
    if (process(c) != 0) {
        conn_close(c);
        return;
    }
    /* Large bodies being discarded need no buffer growth: shrink back to one chunk when empty. */
    if (c->rlen == 0 && c->rcap > FB_READ_CHUNK) {
        free(c->rbuf);
        c->rbuf = NULL;
        c->rcap = 0;
    }
    flush(c);
}

static void on_connection(uv_stream_t *server, int status)
{
    if (status < 0) return;
    fb_conn_t *c = calloc(1, sizeof(*c));
    if (c == NULL) return;
    uv_tcp_init(g_loop, &c->tcp);
    c->tcp.data = c;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
        conn_close(c);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    c->stats_only = true;
    c->counted = true;
    g_connections++;
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0) {
        conn_close(c);
        return;
    }
    c->reading = true;
}

static void on_walk_close(uv_handle_t *handle, void *arg)
{
    if (uv_is_closing(handle)) return;
    if (handle->type == UV_TCP && handle != (uv_handle_t *)&g_server) uv_close(handle, on_conn_closed);
    else uv_close(handle, NULL);
}

static void on_signal(uv_signal_t *sig, int signum)
{
    if (g_stopping) return;
    g_stopping = true;
    fprintf(stderr, "connections %" PRIu64 "\n", g_connections);
    fflush(stderr);
    uv_walk(g_loop, on_walk_close, NULL);
}

static void usage(void)
{
    fprintf(stderr, "usage: fastback --port P [--host 127.0.0.1] [--name NAME] [--size BYTES]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1";
    long port = -1;
    for (int i = 1; i < argc; i++) {
        if (i + 1 >= argc) usage();
        if (strcmp(argv[i], "--port") == 0) port = strtol(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--host") == 0) host = argv[++i];
        else if (strcmp(argv[i], "--name") == 0) g_name = argv[++i];
        else if (strcmp(argv[i], "--size") == 0) g_default_size = strtoull(argv[++i], NULL, 10);
        else usage();
    }
    if (port < 0 || port > 65535 || g_default_size > FB_MAX_BODY) usage();
    signal(SIGPIPE, SIG_IGN);

    for (size_t i = 0; i < FB_FILL_SIZE; i++) g_fill[i] = (i % 64 == 63) ? '\n' : (char)('a' + i % 26);
    if (g_default_size > 0) {
        g_default_len = 0;
        g_default_body = NULL;
    } else {
        size_t n = strlen(g_name) + 16;
        g_default_body = xrealloc(NULL, n);
        g_default_len = (size_t)snprintf(g_default_body, n, "hello from %s\n", g_name);
    }

    g_loop = uv_default_loop();
    struct sockaddr_storage addr;
    int r = uv_ip4_addr(host, (int)port, (struct sockaddr_in *)&addr);
    if (r != 0) r = uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)&addr);
    if (r != 0) {
        fprintf(stderr, "fastback: bad host %s\n", host);
        return 2;
    }
    uv_tcp_init(g_loop, &g_server);
    r = uv_tcp_bind(&g_server, (const struct sockaddr *)&addr, 0);
    if (r == 0) r = uv_listen((uv_stream_t *)&g_server, 4096, on_connection);
    if (r != 0) {
        fprintf(stderr, "fastback: cannot listen on %s:%ld: %s\n", host, port, uv_strerror(r));
        return 1;
    }
    struct sockaddr_storage bound;
    int blen = sizeof(bound);
    uv_tcp_getsockname(&g_server, (struct sockaddr *)&bound, &blen);
    int bport = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                                  : ((struct sockaddr_in *)&bound)->sin_port);
    uv_signal_init(g_loop, &g_sigterm);
    uv_signal_start(&g_sigterm, on_signal, SIGTERM);
    uv_signal_init(g_loop, &g_sigint);
    uv_signal_start(&g_sigint, on_signal, SIGINT);
    printf("ready %d\n", bport);
    fflush(stdout);

    uv_run(g_loop, UV_RUN_DEFAULT);
    uv_walk(g_loop, on_walk_close, NULL);
    uv_run(g_loop, UV_RUN_DEFAULT);
    r = uv_loop_close(g_loop);
    free(g_default_body);
    if (r != 0) {
        fprintf(stderr, "fastback: loop not empty at exit\n");
        return 1;
    }
    return 0;
}
