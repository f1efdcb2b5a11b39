/* body.c: body sources (see body.h). The chunked decoder is a byte-at-a-time state machine over
 * RFC 9112 7.1 (chunk-size, chunk-ext with BWS, token and quoted-string values, trailer fields)
 * except for chunk data, which moves in runs. */
#include "fulcrum/body.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fulcrum/common.h"
#include "fulcrum/message.h"

enum {
    S_SIZE = 0,     /* hex digits of a chunk size */
    S_SIZE_BWS,     /* whitespace after the size: only ';' may follow */
    S_EXT_START,    /* after ';': BWS, then an extension name */
    S_EXT_NAME,     /* in an extension name */
    S_EXT_NAME_BWS, /* whitespace after a name: '=' or ';' must follow */
    S_EXT_EQ,       /* after '=': BWS, then a token or a quoted string */
    S_EXT_TOKEN,    /* in a token value */
    S_EXT_QUOTED,   /* in a quoted-string value */
    S_EXT_QPAIR,    /* after a backslash in a quoted string */
    S_EXT_AFTER,    /* after a value: ';', BWS or the end of the line */
    S_EXT_AFTER_BWS,/* whitespace after a value: only ';' may follow */
    S_SIZE_LF,      /* CR seen at the end of a size line */
    S_DATA,         /* chunk data */
    S_DATA_CR,      /* the CRLF after chunk data */
    S_DATA_LF,
    S_TR_START,     /* the start of a trailer line, or the final CRLF */
    S_TR_NAME,      /* in a trailer field name */
    S_TR_VALUE,     /* in a trailer field value */
    S_TR_LF,        /* CR seen at the end of a trailer line */
    S_END_LF,       /* CR seen at the end of the trailer section */
    S_DONE,
};

enum { F_DIGITS = 1, F_DROP = 2 }; /* b->flags: a size digit was seen; this trailer is dropped */

static int is_tchar(unsigned char c) { return fc_http_chars[c] & FC_CHAR_TCHAR; }

static int is_ws(unsigned char c) { return c == ' ' || c == '\t'; }

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    c |= 0x20;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

/* Trailer fields that never cross fulcrum: framing, routing and hop-by-hop fields. */
static int trailer_forbidden(const char *name, size_t n)
{
    static const char *const names[] = {"content-length", "transfer-encoding", "host", "connection", "keep-alive",
                                        "proxy-connection", "te", "trailer", "upgrade"};
    for (size_t i = 0; i < FC_ARRAY_LEN(names); i++)
        if (strlen(names[i]) == n && strncasecmp(names[i], name, n) == 0) return 1;
    return 0;
}

void fc_body_init(fc_body_t *b, int framing, uint64_t length, fc_buf_t *trailers)
{
    memset(b, 0, sizeof(*b));
    b->framing = (uint8_t)framing;
    b->trailers = trailers;
    if (trailers != NULL) trailers->len = 0;
    if (framing == FC_FRAME_LENGTH) b->left = length;
    if (framing == FC_FRAME_NONE || (framing == FC_FRAME_LENGTH && length == 0)) b->done = 1;
}

static int fail(fc_body_t *b, const char *why)
{
    b->error = why;
    b->state = S_DONE;
    b->done = 0;
    return FC_BODY_ERROR;
}

/* Appends one trailer byte when the line is being kept. */
static int keep(fc_body_t *b, char c)
{
    if (b->trailers == NULL || (b->flags & F_DROP)) return 0;
    return fc_buf_append(b->trailers, &c, 1);
}

static int read_chunked(fc_body_t *b, const char *in, size_t len, char *out, size_t *consumed, size_t *produced)
{
    size_t i = 0, o = 0;
    while (i < len) {
        unsigned char c = (unsigned char)in[i];
        if (b->state == S_DATA) {
            size_t n = len - i;
            if (n > b->left) n = (size_t)b->left;
            if (out + o != in + i) memmove(out + o, in + i, n);
            o += n;
            i += n;
            b->left -= n;
            b->total += n;
            if (b->left == 0) b->state = S_DATA_CR;
            continue;
        }
        i++;
        if (b->state < S_DATA && ++b->line > FC_CHUNKED_MAX_LINE) {
            *consumed = i;
            *produced = o;
            return fail(b, "chunk-size line too long");
        }
        if (b->state >= S_TR_START && b->state <= S_END_LF) {
            if (b->state == S_TR_START) b->line = 0;
            if (++b->trailer_bytes > FC_CHUNKED_MAX_TRAILERS || ++b->line > FC_CHUNKED_MAX_LINE) {
                *consumed = i;
                *produced = o;
                return fail(b, b->line > FC_CHUNKED_MAX_LINE ? "trailer line too long" : "trailer section too large");
            }
        }
        const char *why = NULL;
        switch (b->state) {
        case S_SIZE: {
            int h = hexval(c);
            if (h >= 0) {
                if ((b->flags & F_DIGITS) && b->left == 0 && h == 0) break; /* leading zeros */
                if (b->left >> 60) why = "chunk size too large";
                b->left = b->left << 4 | (uint64_t)h;
                b->flags |= F_DIGITS;
            } else if (!(b->flags & F_DIGITS)) why = "invalid chunk size";
            else if (c == ';') b->state = S_EXT_START;
            else if (is_ws(c)) b->state = S_SIZE_BWS;
            else if (c == '\r') b->state = S_SIZE_LF;
            else why = "invalid chunk size";
            break;
        }
        case S_SIZE_BWS:
        case S_EXT_AFTER_BWS:
            if (c == ';') b->state = S_EXT_START;
            else if (!is_ws(c)) why = "invalid chunk extension";
            break;
        case S_EXT_START:
            if (is_tchar(c)) b->state = S_EXT_NAME;
            else if (!is_ws(c)) why = "invalid chunk extension name";
            break;
        case S_EXT_NAME:
            if (c == ';') b->state = S_EXT_START;
            else if (c == '=') b->state = S_EXT_EQ;
            else if (is_ws(c)) b->state = S_EXT_NAME_BWS;
            else if (c == '\r') b->state = S_SIZE_LF;
            else if (!is_tchar(c)) why = "invalid chunk extension name";
            break;
        case S_EXT_NAME_BWS:
            if (c == ';') b->state = S_EXT_START;
            else if (c == '=') b->state = S_EXT_EQ;
            else if (!is_ws(c)) why = "invalid chunk extension";
            break;
        case S_EXT_EQ:
            if (c == '"') b->state = S_EXT_QUOTED;
            else if (is_tchar(c)) b->state = S_EXT_TOKEN;
            else if (!is_ws(c)) why = "invalid chunk extension value";
            break;
        case S_EXT_TOKEN:
            if (c == ';') b->state = S_EXT_START;
            else if (is_ws(c)) b->state = S_EXT_AFTER_BWS;
            else if (c == '\r') b->state = S_SIZE_LF;
            else if (!is_tchar(c)) why = "invalid chunk extension value";
            break;
        case S_EXT_QUOTED:
            /* qdtext = HTAB / SP / %x21 / %x23-5B / %x5D-7E / obs-text */
            if (c == '"') b->state = S_EXT_AFTER;
            else if (c == '\\') b->state = S_EXT_QPAIR;
            else if (!(c == '\t' || c == ' ' || c == 0x21 || (c >= 0x23 && c <= 0x7e) || c >= 0x80))
                why = "invalid quoted chunk extension";
            break;
        case S_EXT_QPAIR:
            if (c == '\t' || c == ' ' || (c >= 0x21 && c <= 0x7e) || c >= 0x80) b->state = S_EXT_QUOTED;
            else why = "invalid quoted-pair in chunk extension";
            break;
        case S_EXT_AFTER:
            if (c == ';') b->state = S_EXT_START;
            else if (is_ws(c)) b->state = S_EXT_AFTER_BWS;
            else if (c == '\r') b->state = S_SIZE_LF;
            else why = "invalid chunk extension";
            break;
        case S_SIZE_LF:
            if (c != '\n') {
                why = "expected LF after chunk size";
                break;
            }
            b->line = 0;
            b->flags = 0;
            b->state = b->left == 0 ? S_TR_START : S_DATA;
            break;
        case S_DATA_CR:
            if (c == '\r') b->state = S_DATA_LF;
            else why = "expected CRLF after chunk data";
            break;
        case S_DATA_LF:
            if (c == '\n') b->state = S_SIZE;
            else why = "expected CRLF after chunk data";
            break;
        case S_TR_START:
            b->flags = 0;
            if (c == '\r') b->state = S_END_LF;
            else if (is_tchar(c) && ++b->trailer_fields > FC_CHUNKED_MAX_TRAILER_FIELDS) why = "too many trailer fields";
            else if (is_tchar(c)) {
                b->state = S_TR_NAME;
                if (b->trailers != NULL) b->field_start = b->trailers->len;
                if (keep(b, (char)c) != 0) why = "out of memory";
            } else why = is_ws(c) ? "obs-fold in trailer section" : "invalid trailer field name";
            break;
        case S_TR_NAME:
            if (c == ':') {
                if (b->trailers != NULL) {
                    const char *name = b->trailers->base + b->field_start;
                    size_t n = b->trailers->len - b->field_start;
                    if (trailer_forbidden(name, n) ||
                        (b->connection.n > 0 && fc_http_has_token(b->connection, name, n))) {
                        b->trailers->len = b->field_start;
                        b->flags |= F_DROP;
                    }
                }
                b->state = S_TR_VALUE;
                if (keep(b, ':') != 0) why = "out of memory";
            } else if (is_tchar(c)) {
                if (keep(b, (char)c) != 0) why = "out of memory";
            } else why = "invalid trailer field name";
            break;
        case S_TR_VALUE:
            /* field-value: VCHAR, obs-text, SP and HTAB; CR only as the end of the line */
            if (c == '\r') b->state = S_TR_LF;
            else if (c == '\t' || (c >= 0x20 && c != 0x7f)) {
                if (keep(b, (char)c) != 0) why = "out of memory";
            } else why = "invalid character in trailer field";
            break;
        case S_TR_LF:
            if (c != '\n') why = "expected LF after trailer field";
            else {
                b->state = S_TR_START;
                if (keep(b, '\r') != 0 || keep(b, '\n') != 0) why = "out of memory";
            }
            break;
        case S_END_LF:
            if (c != '\n') {
                why = "expected LF after trailer section";
                break;
            }
            b->state = S_DONE;
            b->done = 1;
            *consumed = i;
            *produced = o;
            return FC_BODY_DONE;
        default: why = "read after the end of the body"; break;
        }
        if (why != NULL) {
            *consumed = i;
            *produced = o;
            return fail(b, why);
        }
    }
    *consumed = i;
    *produced = o;
    return FC_BODY_MORE;
}

int fc_body_read(fc_body_t *b, const char *in, size_t len, char *out, size_t *consumed, size_t *produced)
{
    *consumed = *produced = 0;
    if (b->error != NULL) return FC_BODY_ERROR;
    if (b->done) return FC_BODY_DONE;
    switch (b->framing) {
    case FC_FRAME_LENGTH: {
        FC_ASSERT(out == in);
        size_t n = len < b->left ? len : (size_t)b->left;
        b->left -= n;
        b->total += n;
        *consumed = *produced = n;
        if (b->left > 0) return FC_BODY_MORE;
        b->done = 1;
        return FC_BODY_DONE;
    }
    case FC_FRAME_EOF:
        FC_ASSERT(out == in);
        b->total += len;
        *consumed = *produced = len;
        return FC_BODY_MORE;
    case FC_FRAME_CHUNKED: return read_chunked(b, in, len, out, consumed, produced);
    default: b->done = 1; return FC_BODY_DONE;
    }
}

int fc_body_eof(fc_body_t *b)
{
    if (b->done || b->framing == FC_FRAME_EOF) {
        b->done = 1;
        return FC_BODY_DONE;
    }
    if (b->error == NULL) b->error = b->framing == FC_FRAME_CHUNKED ? "closed inside a chunked body" : "closed before the end of the body";
    return FC_BODY_ERROR;
}

size_t fc_chunk_prefix(char *out, uint64_t n)
{
    static const char hex[] = "0123456789abcdef";
    char tmp[16];
    size_t k = 0;
    do {
        tmp[k++] = hex[n & 15];
        n >>= 4;
    } while (n != 0);
    for (size_t i = 0; i < k; i++) out[i] = tmp[k - 1 - i];
    out[k] = '\r';
    out[k + 1] = '\n';
    return k + 2;
}

int fc_chunk_suffix(fc_buf_t *out, const fc_body_t *b, size_t n, int last)
{
    int bad = 0;
    if (n > 0) bad |= FC_BUF_APPEND_LIT(out, "\r\n");
    if (last) {
        bad |= FC_BUF_APPEND_LIT(out, "0\r\n");
        if (b->trailers != NULL && b->trailers->len > 0) bad |= fc_buf_append(out, b->trailers->base, b->trailers->len);
        bad |= FC_BUF_APPEND_LIT(out, "\r\n");
    }
    return bad ? -1 : 0;
}

/* ---- the queue ----------------------------------------------------------------------------- */

static fc_bodyq_block_t *block_get(fc_bodyq_pool_t *pool)
{
    fc_bodyq_block_t *b = pool->free;
    if (b != NULL) {
        pool->free = b->next;
        pool->nfree--;
    } else if ((b = malloc(sizeof(*b))) == NULL) {
        return NULL;
    }
    b->next = NULL;
    b->start = b->end = 0;
    pool->out += sizeof(*b);
    return b;
}

static void block_put(fc_bodyq_pool_t *pool, fc_bodyq_block_t *b)
{
    pool->out -= sizeof(*b);
    if (pool->nfree >= pool->keep) {
        free(b);
        return;
    }
    b->next = pool->free;
    pool->free = b;
    pool->nfree++;
}

char *fc_bodyq_space(fc_bodyq_t *q, fc_bodyq_pool_t *pool, size_t *avail)
{
    fc_bodyq_block_t *t = q->tail;
    if (t == NULL || t->end == FC_BODYQ_BLOCK) {
        fc_bodyq_block_t *b = block_get(pool);
        if (b == NULL) return NULL;
        if (t != NULL) t->next = b;
        else q->head = b;
        q->tail = t = b;
    }
    *avail = FC_BODYQ_BLOCK - t->end;
    return t->data + t->end;
}

void fc_bodyq_commit(fc_bodyq_t *q, size_t n)
{
    FC_ASSERT(q->tail != NULL && q->tail->end + n <= FC_BODYQ_BLOCK);
    q->tail->end += (uint32_t)n;
    q->len += n;
}

int fc_bodyq_append(fc_bodyq_t *q, fc_bodyq_pool_t *pool, const char *p, size_t n)
{
    while (n > 0) {
        size_t avail;
        char *dst = fc_bodyq_space(q, pool, &avail);
        if (dst == NULL) return -1; /* the exchange fails: what was queued of it does not matter */
        size_t k = n < avail ? n : avail;
        memcpy(dst, p, k);
        fc_bodyq_commit(q, k);
        p += k;
        n -= k;
    }
    return 0;
}

size_t fc_bodyq_peek(const fc_bodyq_t *q, fc_slice_t *out, size_t max, size_t *bytes)
{
    size_t n = 0, total = 0;
    for (const fc_bodyq_block_t *b = q->head; b != NULL && n < max; b = b->next) {
        if (b->end == b->start) continue;
        out[n++] = (fc_slice_t){b->data + b->start, b->end - b->start};
        total += b->end - b->start;
    }
    *bytes = total;
    return n;
}

void fc_bodyq_consume(fc_bodyq_t *q, fc_bodyq_pool_t *pool, size_t n)
{
    FC_ASSERT(n <= q->len);
    q->len -= n;
    while (q->head != NULL) {
        fc_bodyq_block_t *b = q->head;
        size_t k = b->end - b->start;
        if (n < k || (n == k && b == q->tail && b->end < FC_BODYQ_BLOCK)) {
            /* The last block keeps its free space for what comes next; emptied, it starts over. */
            b->start += (uint32_t)n;
            if (b->start == b->end) b->start = b->end = 0;
            return;
        }
        n -= k;
        q->head = b->next;
        if (q->head == NULL) q->tail = NULL;
        block_put(pool, b);
    }
}

void fc_bodyq_clear(fc_bodyq_t *q, fc_bodyq_pool_t *pool)
{
    while (q->head != NULL) {
        fc_bodyq_block_t *b = q->head;
        q->head = b->next;
        block_put(pool, b);
    }
    q->tail = NULL;
    q->len = 0;
}

void fc_bodyq_pool_drain(fc_bodyq_pool_t *pool)
{
    while (pool->free != NULL) {
        fc_bodyq_block_t *b = pool->free;
        pool->free = b->next;
        free(b);
    }
    pool->nfree = 0;
}
