/* fuzz_compress.c: libFuzzer target for the response body chain's pure steps: the codecs
 * (src/compress.c) fed the way src/exchange.c feeds them (pieces of what the server sent, into
 * the free space at the end of a body queue, with flushes when the server pauses), the body queue
 * (src/body.c), and the Accept-Encoding / Cache-Control / Content-Type readers.
 *
 * Input layout:
 *   byte 0      the coding (bits 0-1: 1 gzip, 2 br, 3 zstd; 0 = gzip) and the level (bits 2-4)
 *   byte 1      the schedule seed: piece sizes and where flushes fall come from it
 *   bytes 2..   the body; it is also read as an Accept-Encoding value and a Cache-Control value
 *
 * Invariants (a violation traps): a codec never fails on any input; after every flush, the bytes
 * queued so far decode (reference decoder, tests/fuzz/decode.h) to exactly the body bytes fed so
 * far; after finish, to the whole body, as a complete stream; the queue's length is the sum of
 * what was committed minus what was consumed, its slices hold exactly those bytes in order, and
 * every block is back in the pool at the end; negotiation returns a coding that is offered (or
 * none); the media type lies inside the value and holds no ';' or blank. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "decode.h"
#include "fulcrum/body.h"
#include "fulcrum/common.h"
#include "fulcrum/compress.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                                                    \
    do {                                                                                            \
        if (!(c)) __builtin_trap();                                                                 \
    } while (0)

static fc_bodyq_pool_t pool = {.keep = 4};

/* Everything queued, copied out in order (the client's view), into <out>. */
static size_t drain(fc_bodyq_t *q, unsigned char *out, size_t at, size_t cap, int consume)
{
    fc_slice_t sl[64];
    size_t bytes, n = fc_bodyq_peek(q, sl, 64, &bytes), sum = 0;
    for (size_t i = 0; i < n; i++) {
        CHECK(at + sum + sl[i].n <= cap);
        memcpy(out + at + sum, sl[i].p, sl[i].n);
        sum += sl[i].n;
    }
    CHECK(sum == bytes && bytes <= q->len);
    if (consume) fc_bodyq_consume(q, &pool, bytes);
    return sum;
}

static void readers(const uint8_t *data, size_t size)
{
    fc_slice_t v = {(const char *)data, size};
    static const uint8_t on[4] = {0, 1, 0, 1}, prefer[4] = {FC_CODING_ZSTD, FC_CODING_BR, FC_CODING_GZIP, 0};
    int c = fc_coding_negotiate(&v, 1, on, prefer);
    CHECK(c == FC_CODING_NONE || (c > 0 && c < FC_CODINGS && on[c]));
    (void)fc_has_no_transform(v);
    fc_slice_t t = fc_media_type(v);
    CHECK(t.n == 0 || (t.p >= v.p && t.p + t.n <= v.p + v.n));
    CHECK(memchr(t.p ? t.p : "", ';', t.n) == NULL && memchr(t.p ? t.p : "", ' ', t.n) == NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2) return 0;
    int coding = data[0] & 3 ? data[0] & 3 : FC_CODING_GZIP;
    int lv = (data[0] >> 2) & 7;
    int level = coding == FC_CODING_GZIP ? 1 + lv : coding == FC_CODING_BR ? lv : 1 + lv;
    uint32_t seed = data[1] * 2654435761u + 1;
    const unsigned char *body = data + 2;
    size_t n = size - 2;
    readers(body, n);

    fc_codec_t *c = fc_codec_new(coding, level, (seed & 1) ? n : 0);
    CHECK(c != NULL);
    fc_bodyq_t q = {0};
    size_t cap = n + n / 2 + 65536, outlen = 0;
    unsigned char *out = malloc(cap), *dec = malloc(n + 1);
    size_t at = 0;
    for (;;) {
        seed = seed * 1103515245u + 12345u;
        size_t piece = 1 + (seed >> 8) % 4096;
        if (piece > n - at) piece = n - at;
        int last = at + piece == n;
        int mode = last ? FC_CODEC_FINISH : ((seed >> 4) & 7) == 0 ? FC_CODEC_FLUSH : FC_CODEC_RUN;
        const char *ip = (const char *)body + at;
        size_t il = piece;
        for (int guard = 0;; guard++) {
            size_t avail;
            char *sp = fc_bodyq_space(&q, &pool, &avail);
            CHECK(sp != NULL && avail > 0 && guard < 1000000);
            size_t left = avail;
            int r = fc_codec_run(c, &ip, &il, &sp, &left, mode);
            fc_bodyq_commit(&q, avail - left);
            CHECK(r >= 0);
            if (mode == FC_CODEC_RUN ? il == 0 : r == 1) break;
        }
        at += piece;
        /* The client takes some of the queue now and then, as writes complete. */
        if ((seed >> 12) & 1) outlen += drain(&q, out, outlen, cap, 1);
        if (mode != FC_CODEC_RUN) {
            outlen += drain(&q, out, outlen, cap, 1);
            int complete;
            long got = fc_test_decode(coding, out, outlen, dec, n + 1, &complete);
            CHECK(got == (long)at && memcmp(dec, body, at) == 0);
            CHECK(!last || complete);
        }
        if (last) break;
    }
    CHECK(q.len == 0);
    fc_bodyq_clear(&q, &pool);
    CHECK(pool.out == 0);
    fc_codec_free(c);
    free(out);
    free(dec);
    return 0;
}
