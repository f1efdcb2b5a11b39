/* test_compress.c: content codings (src/compress.c) and the body queue (src/body.c): Accept-Encoding
 * negotiation by RFC 9110 12.5.3, the media type and no-transform readers, and each codec fed in
 * pieces with flushes, decoded by the reference decoders (tests/fuzz/decode.h) after every flush
 * and at the end; the queue's block accounting. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../fuzz/decode.h"
#include "fulcrum/body.h"
#include "fulcrum/common.h"
#include "fulcrum/compress.h"
#include "harness.h"

void test_compress(void);

#define S(lit) ((fc_slice_t){(lit), sizeof(lit) - 1})

static const uint8_t all_on[4] = {0, 1, 1, 1};
static const uint8_t prefer_default[4] = {FC_CODING_ZSTD, FC_CODING_BR, FC_CODING_GZIP, 0};

static const char *pick(const char *accept, const uint8_t *on, const uint8_t *prefer)
{
    fc_slice_t v = {accept, strlen(accept)};
    return fc_coding_name(fc_coding_negotiate(&v, 1, on, prefer));
}

static void negotiation(void)
{
    subtest("negotiation");
    is_str(pick("gzip", all_on, prefer_default), "gzip");
    is_str(pick("GZIP", all_on, prefer_default), "gzip");
    is_str(pick("x-gzip", all_on, prefer_default), "gzip");
    is_str(pick("gzip, deflate, br", all_on, prefer_default), "br");          /* tie: the server's order */
    is_str(pick("gzip, deflate, br, zstd", all_on, prefer_default), "zstd");
    is_str(pick("gzip;q=1.0, br;q=0.5", all_on, prefer_default), "gzip");     /* the higher q wins */
    is_str(pick("br;q=0.5, gzip;q=0.8, zstd;q=0.1", all_on, prefer_default), "gzip");
    is_str(pick("gzip;q=0", all_on, prefer_default), "identity");             /* q=0 excludes */
    is_str(pick("gzip; q=0.000", all_on, prefer_default), "identity");
    is_str(pick("*", all_on, prefer_default), "zstd");                        /* any: the first we prefer */
    is_str(pick("*;q=0", all_on, prefer_default), "identity");
    is_str(pick("*, zstd;q=0", all_on, prefer_default), "br");                /* * but not zstd */
    is_str(pick("gzip;q=0.5, *;q=0.9", all_on, prefer_default), "zstd");      /* * names the others */
    is_str(pick("identity", all_on, prefer_default), "identity");
    is_str(pick("identity;q=1, gzip;q=0.1", all_on, prefer_default), "identity"); /* identity weighed higher */
    is_str(pick("identity;q=0.5, gzip;q=0.5", all_on, prefer_default), "gzip");     /* a tie: compressed */
    is_str(pick("identity;q=0.2, gzip", all_on, prefer_default), "gzip");
    is_str(pick("gzip;q=0.5", all_on, prefer_default), "gzip");                      /* identity not named */
    is_str(pick("", all_on, prefer_default), "identity");                     /* empty: identity only */
    is_str(pick("deflate, compress", all_on, prefer_default), "identity");
    is_str(pick("gzip;q=2", all_on, prefer_default), "identity");             /* a bad weight drops the element */
    is_str(pick("gzip;q=abc, br", all_on, prefer_default), "br");
    is_str(pick(" ,, gzip ,", all_on, prefer_default), "gzip");
    is_str(pick("gzip;level=1;q=0.3", all_on, prefer_default), "gzip");
    static const uint8_t gzip_only[4] = {0, 1, 0, 0};
    is_str(pick("br, zstd", gzip_only, prefer_default), "identity");          /* not offered */
    is_str(pick("br, zstd, gzip;q=0.1", gzip_only, prefer_default), "gzip");
    static const uint8_t prefer_gzip[4] = {FC_CODING_GZIP, FC_CODING_BR, 0, 0};
    is_str(pick("zstd, br, gzip", all_on, prefer_gzip), "gzip");              /* zstd not in prefer: never */
    fc_slice_t two[2] = {S("gzip;q=0.5"), S("br;q=0.7")};                     /* two Accept-Encoding fields */
    is_int(fc_coding_negotiate(two, 2, all_on, prefer_default), FC_CODING_BR);
    is_int(fc_coding_negotiate(NULL, 0, all_on, prefer_default), FC_CODING_NONE); /* no field: none */
}

static void response_fields(void)
{
    subtest("media type and no-transform");
    fc_slice_t t = fc_media_type(S(" application/json; charset=utf-8"));
    ok(t.n == 16 && memcmp(t.p, "application/json", 16) == 0);
    t = fc_media_type(S("text/html"));
    ok(t.n == 9);
    ok(fc_has_no_transform(S("no-transform")));
    ok(fc_has_no_transform(S("public, max-age=60, No-Transform")));
    ok(!fc_has_no_transform(S("no-cache")));
    ok(!fc_has_no_transform(S("private=\"no-transform, x\"")));           /* inside a quoted value */
    ok(fc_has_no_transform(S("private=\"a, b\", no-transform")));
}

/* A body that compresses like JSON, and one that does not compress at all. */
static void fill(unsigned char *p, size_t n, int random)
{
    uint32_t x = 12345;
    for (size_t i = 0; i < n; i++) {
        x = x * 1103515245u + 12345u;
        p[i] = random ? (unsigned char)(x >> 16) : (unsigned char)("{\"id\":12,\"name\":\"user\"},"[i % 25] + (i % 997 == 0));
    }
}

/* Compresses <n> bytes of <in> with <coding>, in pieces of <piece>, flushing every <flush_every>
 * pieces (0: never) and checking after each flush that what came out so far decodes to what went
 * in; at the end, the whole stream decodes to the whole input. Returns the compressed size. */
static size_t round_trip(fc_codec_t *c, const unsigned char *in, size_t n, size_t piece, int flush_every)
{
    size_t cap = n + n / 8 + 4096, outlen = 0;
    unsigned char *out = malloc(cap), *dec = malloc(n + 1);
    int bad = 0, pieces = 0;
    for (size_t at = 0; at <= n && !bad;) {
        size_t k = n - at < piece ? n - at : piece;
        int last = at + k == n;
        int mode = last ? FC_CODEC_FINISH : (flush_every && ++pieces % flush_every == 0) ? FC_CODEC_FLUSH : FC_CODEC_RUN;
        const char *ip = (const char *)in + at;
        size_t il = k;
        for (int guard = 0;; guard++) {
            char *op = (char *)out + outlen;
            size_t ol = cap - outlen < 1000 ? cap - outlen : 1000; /* small output room: many calls */
            size_t ol0 = ol;
            int r = fc_codec_run(c, &ip, &il, &op, &ol, mode);
            outlen += ol0 - ol;
            if (r < 0 || guard > 100000) {
                bad = 1;
                break;
            }
            if (mode == FC_CODEC_RUN ? il == 0 : r == 1) break;
        }
        at += k;
        if (mode == FC_CODEC_FLUSH) {
            int complete;
            long got = fc_test_decode(fc_codec_coding(c), out, outlen, dec, n + 1, &complete);
            if (got != (long)at || memcmp(dec, in, at) != 0) bad = 2;
        }
        if (last) break;
    }
    ok(bad == 0);
    int complete = 0;
    long got = fc_test_decode(fc_codec_coding(c), out, outlen, dec, n + 1, &complete);
    ok(got == (long)n && complete && memcmp(dec, in, n) == 0);
    free(out);
    free(dec);
    return outlen;
}

static void codecs(void)
{
    static const struct {
        int coding, level;
    } cs[] = {{FC_CODING_GZIP, 6}, {FC_CODING_GZIP, 1}, {FC_CODING_BR, 4}, {FC_CODING_BR, 0}, {FC_CODING_ZSTD, 3}};
    size_t n = 300000;
    unsigned char *json = malloc(n), *noise = malloc(n);
    fill(json, n, 0);
    fill(noise, n, 1);
    for (size_t i = 0; i < FC_ARRAY_LEN(cs); i++) {
        char name[64];
        snprintf(name, sizeof(name), "%s level %d", fc_coding_name(cs[i].coding), cs[i].level);
        subtest(name);
        fc_codec_t *c = fc_codec_new(cs[i].coding, cs[i].level, 0);
        ok(c != NULL);
        if (c == NULL) continue;
        size_t z = round_trip(c, json, n, 16384, 3);
        ok(z < n / 4); /* it compresses */
        /* Reused for a body of unknown length, then one of known length (zstd and gzip reset). */
        if (fc_codec_reset(c, 0) == 0) round_trip(c, noise, 50000, 7000, 1);
        else {
            ok(cs[i].coding == FC_CODING_BR); /* only brotli cannot be reset */
            fc_codec_free(c);
            c = fc_codec_new(cs[i].coding, cs[i].level, 0);
            round_trip(c, noise, 50000, 7000, 1);
        }
        fc_codec_free(c);
        /* A known small length: a smaller window, the same bytes out. */
        c = fc_codec_new(cs[i].coding, cs[i].level, 2000);
        round_trip(c, json, 2000, 300, 2);
        fc_codec_free(c);
        /* An empty body is a valid, complete stream. */
        c = fc_codec_new(cs[i].coding, cs[i].level, 0);
        round_trip(c, json, 0, 1, 0);
        fc_codec_free(c);
        /* A flush with nothing new to flush completes at once, twice in a row. */
        c = fc_codec_new(cs[i].coding, cs[i].level, 0);
        const char *ip = (const char *)json;
        size_t il = 100;
        char out[4096], *op = out;
        size_t ol = sizeof(out);
        ok(fc_codec_run(c, &ip, &il, &op, &ol, FC_CODEC_FLUSH) == 1 && il == 0);
        ok(fc_codec_run(c, &ip, &il, &op, &ol, FC_CODEC_FLUSH) == 1);
        int complete;
        unsigned char dec[200];
        ok(fc_test_decode(cs[i].coding, (unsigned char *)out, sizeof(out) - ol, dec, sizeof(dec), &complete) == 100);
        fc_codec_free(c);
    }
    /* gzip keeps its window on reset only for a body that needs the same window. */
    subtest("gzip reset by window");
    fc_codec_t *g = fc_codec_new(FC_CODING_GZIP, 6, 1000);
    ok(fc_codec_reset(g, 1000) == 0);
    ok(fc_codec_reset(g, 0) == -1);
    fc_codec_free(g);
    free(json);
    free(noise);
}

static void queue(void)
{
    subtest("body queue");
    fc_bodyq_pool_t pool = {.keep = 2};
    fc_bodyq_t q = {0};
    static char src[2 * FC_BODYQ_BLOCK + 5000];
    for (size_t i = 0; i < sizeof(src); i++) src[i] = (char)(i * 7);
    ok(fc_bodyq_append(&q, &pool, src, sizeof(src)) == 0);
    is_int(q.len, sizeof(src));
    is_int(pool.out, 3 * sizeof(fc_bodyq_block_t)); /* two blocks and a bit */
    fc_slice_t sl[3];
    size_t bytes;
    size_t n = fc_bodyq_peek(&q, sl, 3, &bytes);
    is_int(n, 3);
    is_int(bytes, sizeof(src));
    ok(memcmp(sl[0].p, src, sl[0].n) == 0 && memcmp(sl[1].p, src + FC_BODYQ_BLOCK, sl[1].n) == 0);
    fc_bodyq_consume(&q, &pool, 100);
    n = fc_bodyq_peek(&q, sl, 3, &bytes);
    ok(sl[0].n == FC_BODYQ_BLOCK - 100 && sl[0].p[0] == src[100]);
    fc_bodyq_consume(&q, &pool, 2 * FC_BODYQ_BLOCK);
    is_int(q.len, sizeof(src) - 100 - 2 * FC_BODYQ_BLOCK);
    n = fc_bodyq_peek(&q, sl, 3, &bytes);
    ok(sl[0].p[0] == src[100 + 2 * FC_BODYQ_BLOCK]);
    is_int(pool.nfree, 2);
    /* Writing into the space at the end, then consuming all: the last block stays for reuse. */
    size_t avail;
    char *sp = fc_bodyq_space(&q, &pool, &avail);
    ok(sp != NULL && avail > 0);
    memcpy(sp, "xy", 2);
    fc_bodyq_commit(&q, 2);
    fc_bodyq_consume(&q, &pool, q.len);
    is_int(q.len, 0);
    n = fc_bodyq_peek(&q, sl, 3, &bytes);
    is_int(n, 0);
    fc_bodyq_clear(&q, &pool);
    is_int(pool.out, 0);
    ok(pool.nfree <= pool.keep);
    fc_bodyq_pool_drain(&pool);
    is_int(pool.nfree, 0);
}

void test_compress(void)
{
    negotiation();
    response_fields();
    codecs();
    queue();
    fc_codec_cache_drain();
}
