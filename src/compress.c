/* compress.c: content codings, negotiation and the compressibility checks (see compress.h). */
#include "fulcrum/compress.h"

#include <brotli/encode.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>
#include <zstd.h>

#include "fulcrum/common.h"

/* br: lgwin 18 (256 KiB) at most, smaller for a body of known smaller length. */
#define BR_WINDOW_BITS 18
#define ZSTD_WINDOW_BITS 17 /* zstd: 128 KiB (see zstd_params) */

struct fc_codec {
    int coding;
    int level;
    int bits;        /* the window (log2) this stream was made for */
    int finished;    /* FINISH completed */
    union {
        z_stream z;
        BrotliEncoderState *br;
        ZSTD_CCtx *zs;
    } u;
};

const char *fc_coding_name(int coding)
{
    switch (coding) {
    case FC_CODING_GZIP: return "gzip";
    case FC_CODING_BR: return "br";
    case FC_CODING_ZSTD: return "zstd";
    default: return "identity";
    }
}

int fc_coding_of(const char *p, size_t n)
{
    if (n == 4 && strncasecmp(p, "gzip", 4) == 0) return FC_CODING_GZIP;
    if (n == 6 && strncasecmp(p, "x-gzip", 6) == 0) return FC_CODING_GZIP; /* RFC 9110 8.4.1.3 */
    if (n == 2 && strncasecmp(p, "br", 2) == 0) return FC_CODING_BR;
    if (n == 4 && strncasecmp(p, "zstd", 4) == 0) return FC_CODING_ZSTD;
    return FC_CODING_NONE;
}

static int is_ows(char c) { return c == ' ' || c == '\t'; }

/* A qvalue (RFC 9110 12.4.2) in thousandths, or -1 when it is not one. */
static int parse_q(const char *p, size_t n)
{
    if (n == 0 || (p[0] != '0' && p[0] != '1')) return -1;
    int v = (p[0] - '0') * 1000;
    if (n == 1) return v;
    if (p[1] != '.' || n > 5) return -1;
    int scale = 100;
    for (size_t i = 2; i < n; i++, scale /= 10) {
        if (p[i] < '0' || p[i] > '9') return -1;
        v += (p[i] - '0') * scale;
    }
    return v > 1000 ? -1 : v;
}

/* Reads one list element "coding *( OWS ; OWS param )" of [p, end): its token in *tok and its q
 * (1000 when absent; -1 when a weight is malformed, which drops the element). */
static const char *next_element(const char *p, const char *end, fc_slice_t *tok, int *q)
{
    while (p < end && (is_ows(*p) || *p == ',')) p++;
    const char *t = p;
    while (p < end && *p != ',' && *p != ';' && !is_ows(*p)) p++;
    *tok = (fc_slice_t){t, (size_t)(p - t)};
    *q = 1000;
    while (p < end && *p != ',') {
        while (p < end && (is_ows(*p) || *p == ';')) p++;
        const char *a = p;
        while (p < end && *p != ',' && *p != ';' && !is_ows(*p)) p++;
        size_t an = (size_t)(p - a);
        if (an >= 2 && (a[0] == 'q' || a[0] == 'Q') && a[1] == '=') *q = parse_q(a + 2, an - 2);
    }
    return p;
}

int fc_coding_negotiate(const fc_slice_t *values, size_t n, const uint8_t *on, const uint8_t *prefer)
{
    if (n == 0) return FC_CODING_NONE;
    int q[FC_CODINGS] = {-1, -1, -1, -1}; /* -1: not named */
    int star = -1, identity = -1;
    for (size_t i = 0; i < n; i++) {
        const char *p = values[i].p, *end = p + values[i].n;
        while (p < end) {
            fc_slice_t tok;
            int w;
            p = next_element(p, end, &tok, &w);
            if (tok.n == 0 || w < 0) continue;
            if (tok.n == 1 && tok.p[0] == '*') {
                star = w;
                continue;
            }
            if (tok.n == 8 && strncasecmp(tok.p, "identity", 8) == 0) {
                if (w > identity) identity = w;
                continue;
            }
            int c = fc_coding_of(tok.p, tok.n);
            if (c != FC_CODING_NONE && w > q[c]) q[c] = w; /* named twice: the higher weight (lenient) */
        }
    }
    int best = FC_CODING_NONE, bestq = 0;
    for (int i = 0; i < FC_CODINGS - 1 && prefer[i] != 0; i++) {
        int c = prefer[i];
        if (c <= FC_CODING_NONE || c >= FC_CODINGS || !on[c]) continue;
        int w = q[c] >= 0 ? q[c] : star >= 0 ? star : 0;
        if (w > bestq) { /* strictly higher: on a tie the earlier (preferred) one stays */
            best = c;
            bestq = w;
        }
    }
    /* A client that weighs identity above every coding it accepts gets identity; on a tie, and
     * when identity is not named, the coding (the usual "gzip;q=0.5" means "gzip, please"). */
    return identity > bestq ? FC_CODING_NONE : best;
}

fc_slice_t fc_media_type(fc_slice_t ct)
{
    const char *p = ct.p, *end = ct.p + ct.n;
    while (p < end && is_ows(*p)) p++;
    const char *s = p;
    while (p < end && *p != ';' && !is_ows(*p)) p++;
    return (fc_slice_t){s, (size_t)(p - s)};
}

int fc_has_no_transform(fc_slice_t v)
{
    const char *p = v.p, *end = v.p + v.n;
    while (p < end) {
        while (p < end && (is_ows(*p) || *p == ',')) p++;
        const char *s = p;
        while (p < end && *p != ',' && *p != '=' && !is_ows(*p)) p++;
        if (p - s == 12 && strncasecmp(s, "no-transform", 12) == 0) return 1;
        /* Skip the rest of this directive (a quoted value may hold commas). */
        int quoted = 0;
        while (p < end && (quoted || *p != ',')) {
            if (*p == '"') quoted = !quoted;
            else if (*p == '\\' && quoted && p + 1 < end) p++;
            p++;
        }
    }
    return 0;
}

/* The smallest window (log2, within [lo, hi]) that holds <length> bytes; hi when unknown. */
static int window_for(uint64_t length, int lo, int hi)
{
    if (length == 0) return hi;
    int b = lo;
    while (b < hi && ((uint64_t)1 << b) < length) b++;
    return b;
}

static int gzip_init(fc_codec_t *c, uint64_t length)
{
    /* nginx's choice: the window no larger than the body, memLevel lowered with it. */
    c->bits = window_for(length, 9, 15);
    int mem = c->bits - 7 < 1 ? 1 : c->bits - 7;
    memset(&c->u.z, 0, sizeof(c->u.z));
    /* windowBits + 16: a gzip header and trailer around the deflate stream. */
    return deflateInit2(&c->u.z, c->level, Z_DEFLATED, c->bits + 16, mem, Z_DEFAULT_STRATEGY) == Z_OK ? 0 : -1;
}

/* libbrotlienc's memory, through a small cache of its large blocks. An encoder cannot be reset, so
 * one is made per response, and at quality 4 it allocates four to six blocks of 64 KiB to 800 KiB
 * (about 2 MB for a 64 KiB body): beyond main.c's M_MMAP_THRESHOLD each would be mapped, faulted
 * in and unmapped for every response, which measured 3.4 ms of a 64 KiB body's 4 ms (0.7 ms with
 * the memory reused; the window size made no difference then). The cache keeps up to BR_CACHE
 * freed blocks of 64 KiB or more, BR_CACHE_BYTES in all, and gives one back for an allocation it
 * holds, without wasting more than half of it. Per process (a worker is one thread; the metrics
 * thread never compresses). */
#define BR_CACHE 8
#define BR_CACHE_MIN (64u << 10)
#define BR_CACHE_BYTES (4u << 20)

typedef struct br_block {
    size_t cap;      /* bytes after the header */
    max_align_t pad; /* the encoder's memory follows, aligned */
} br_block_t;

static br_block_t *br_cache[BR_CACHE];
static size_t br_cached; /* bytes held in br_cache */

static void *br_alloc(void *opaque, size_t size)
{
    (void)opaque;
    if (size >= BR_CACHE_MIN) {
        int best = -1;
        for (int i = 0; i < BR_CACHE; i++) {
            br_block_t *b = br_cache[i];
            if (b != NULL && b->cap >= size && b->cap / 2 <= size && (best < 0 || b->cap < br_cache[best]->cap)) best = i;
        }
        if (best >= 0) {
            br_block_t *b = br_cache[best];
            br_cache[best] = NULL;
            br_cached -= b->cap;
            return &b->pad;
        }
    }
    br_block_t *b = malloc(offsetof(br_block_t, pad) + size);
    if (b == NULL) return NULL;
    b->cap = size;
    return &b->pad;
}

static void br_free(void *opaque, void *p)
{
    (void)opaque;
    if (p == NULL) return;
    br_block_t *b = (br_block_t *)(void *)((char *)p - offsetof(br_block_t, pad));
    if (b->cap >= BR_CACHE_MIN && br_cached + b->cap <= BR_CACHE_BYTES) {
        for (int i = 0; i < BR_CACHE; i++) {
            if (br_cache[i] == NULL) {
                br_cache[i] = b;
                br_cached += b->cap;
                return;
            }
        }
    }
    free(b);
}

void fc_codec_cache_drain(void)
{
    for (int i = 0; i < BR_CACHE; i++) {
        free(br_cache[i]);
        br_cache[i] = NULL;
    }
    br_cached = 0;
}

static int br_init(fc_codec_t *c, uint64_t length)
{
    c->bits = window_for(length, BROTLI_MIN_WINDOW_BITS, BR_WINDOW_BITS);
    c->u.br = BrotliEncoderCreateInstance(br_alloc, br_free, NULL);
    if (c->u.br == NULL) return -1;
    BrotliEncoderSetParameter(c->u.br, BROTLI_PARAM_QUALITY, (uint32_t)c->level);
    BrotliEncoderSetParameter(c->u.br, BROTLI_PARAM_LGWIN, (uint32_t)c->bits);
    if (length > 0 && length < (1u << 30)) BrotliEncoderSetParameter(c->u.br, BROTLI_PARAM_SIZE_HINT, (uint32_t)length);
    return 0;
}

/* zstd: a 128 KiB window at most and, for a body of unknown or large length, hash and chain
 * tables of 2^15 and 2^14 entries instead of level 3's 2^17 and 2^16 (measured on a 276 KB JSON
 * body: 1.1 MB of state instead of 1.8 MB, and 44.8 KB out instead of 47.8 KB). A known smaller
 * length lets libzstd pick smaller tables itself (the pledged size). */
static int zstd_params(fc_codec_t *c, uint64_t length)
{
    ZSTD_CCtx *z = c->u.zs;
    c->bits = window_for(length, 10, ZSTD_WINDOW_BITS);
    if (ZSTD_isError(ZSTD_CCtx_setParameter(z, ZSTD_c_compressionLevel, c->level))) return -1;
    if (ZSTD_isError(ZSTD_CCtx_setParameter(z, ZSTD_c_windowLog, c->bits))) return -1;
    if (length == 0 || length > (1u << ZSTD_WINDOW_BITS)) {
        if (ZSTD_isError(ZSTD_CCtx_setParameter(z, ZSTD_c_hashLog, 15))) return -1;
        if (ZSTD_isError(ZSTD_CCtx_setParameter(z, ZSTD_c_chainLog, 14))) return -1;
    }
    if (length > 0 && ZSTD_isError(ZSTD_CCtx_setPledgedSrcSize(z, length))) return -1;
    return 0;
}

fc_codec_t *fc_codec_new(int coding, int level, uint64_t length)
{
    fc_codec_t *c = calloc(1, sizeof(*c));
    if (c == NULL) return NULL;
    c->coding = coding;
    c->level = level;
    int r = -1;
    switch (coding) {
    case FC_CODING_GZIP: r = gzip_init(c, length); break;
    case FC_CODING_BR: r = br_init(c, length); break;
    case FC_CODING_ZSTD:
        c->u.zs = ZSTD_createCCtx();
        r = c->u.zs != NULL ? zstd_params(c, length) : -1;
        break;
    default: break;
    }
    if (r != 0) {
        fc_codec_free(c);
        return NULL;
    }
    return c;
}

int fc_codec_reset(fc_codec_t *c, uint64_t length)
{
    c->finished = 0;
    switch (c->coding) {
    case FC_CODING_GZIP:
        /* A stream keeps its window: reuse it only for a body that needs that window. */
        if (window_for(length, 9, 15) != c->bits) return -1;
        return deflateReset(&c->u.z) == Z_OK ? 0 : -1;
    case FC_CODING_ZSTD:
        if (ZSTD_isError(ZSTD_CCtx_reset(c->u.zs, ZSTD_reset_session_and_parameters))) return -1;
        return zstd_params(c, length);
    default: return -1; /* a brotli encoder cannot be reset */
    }
}

int fc_codec_coding(const fc_codec_t *c) { return c->coding; }

int fc_codec_level(const fc_codec_t *c) { return c->level; }

static int gzip_run(fc_codec_t *c, const char **in, size_t *inlen, char **out, size_t *outlen, int mode)
{
    z_stream *z = &c->u.z;
    z->next_in = (Bytef *)(uintptr_t)*in;
    z->avail_in = (uInt)(*inlen > UINT32_MAX ? UINT32_MAX : *inlen);
    z->next_out = (Bytef *)*out;
    z->avail_out = (uInt)(*outlen > UINT32_MAX ? UINT32_MAX : *outlen);
    uInt in0 = z->avail_in, out0 = z->avail_out;
    int flush = mode == FC_CODEC_FINISH ? Z_FINISH : mode == FC_CODEC_FLUSH ? Z_SYNC_FLUSH : Z_NO_FLUSH;
    int r = deflate(z, flush);
    size_t used = in0 - z->avail_in, made = out0 - z->avail_out;
    *in += used;
    *inlen -= used;
    *out += made;
    *outlen -= made;
    if (r == Z_STREAM_END) return 1;
    if (r == Z_BUF_ERROR) /* no progress: out of output space, or a flush with nothing left to flush */
        return mode == FC_CODEC_FLUSH && z->avail_in == 0 && out0 > 0 ? 1 : 0;
    if (r != Z_OK) return -1;
    /* A flush is complete when deflate left output space unused (zlib's documented test). */
    if (mode == FC_CODEC_FLUSH && z->avail_in == 0 && z->avail_out > 0) return 1;
    return 0;
}

static int br_run(fc_codec_t *c, const char **in, size_t *inlen, char **out, size_t *outlen, int mode)
{
    BrotliEncoderOperation op = mode == FC_CODEC_FINISH  ? BROTLI_OPERATION_FINISH
                                : mode == FC_CODEC_FLUSH ? BROTLI_OPERATION_FLUSH
                                                         : BROTLI_OPERATION_PROCESS;
    const uint8_t *ip = (const uint8_t *)*in;
    uint8_t *op_ = (uint8_t *)*out;
    if (!BrotliEncoderCompressStream(c->u.br, op, inlen, &ip, outlen, &op_, NULL)) return -1;
    *in = (const char *)ip;
    *out = (char *)op_;
    if (mode == FC_CODEC_FINISH) return BrotliEncoderIsFinished(c->u.br) ? 1 : 0;
    if (mode == FC_CODEC_FLUSH) return *inlen == 0 && !BrotliEncoderHasMoreOutput(c->u.br) ? 1 : 0;
    return 0;
}

static int zstd_run(fc_codec_t *c, const char **in, size_t *inlen, char **out, size_t *outlen, int mode)
{
    ZSTD_inBuffer ib = {*in, *inlen, 0};
    ZSTD_outBuffer ob = {*out, *outlen, 0};
    ZSTD_EndDirective d = mode == FC_CODEC_FINISH ? ZSTD_e_end : mode == FC_CODEC_FLUSH ? ZSTD_e_flush : ZSTD_e_continue;
    size_t r = ZSTD_compressStream2(c->u.zs, &ob, &ib, d);
    if (ZSTD_isError(r)) return -1;
    *in += ib.pos;
    *inlen -= ib.pos;
    *out += ob.pos;
    *outlen -= ob.pos;
    if (mode == FC_CODEC_RUN) return 0;
    return r == 0 && *inlen == 0 ? 1 : 0; /* r: bytes still to flush */
}

int fc_codec_run(fc_codec_t *c, const char **in, size_t *inlen, char **out, size_t *outlen, int mode)
{
    if (c->finished) return *inlen == 0 ? 1 : -1;
    int r;
    switch (c->coding) {
    case FC_CODING_GZIP: r = gzip_run(c, in, inlen, out, outlen, mode); break;
    case FC_CODING_BR: r = br_run(c, in, inlen, out, outlen, mode); break;
    case FC_CODING_ZSTD: r = zstd_run(c, in, inlen, out, outlen, mode); break;
    default: return -1;
    }
    if (r == 1 && mode == FC_CODEC_FINISH) c->finished = 1;
    return r;
}

void fc_codec_free(fc_codec_t *c)
{
    if (c == NULL) return;
    switch (c->coding) {
    case FC_CODING_GZIP: deflateEnd(&c->u.z); break;
    case FC_CODING_BR: BrotliEncoderDestroyInstance(c->u.br); break;
    case FC_CODING_ZSTD: ZSTD_freeCCtx(c->u.zs); break;
    default: break;
    }
    free(c);
}
