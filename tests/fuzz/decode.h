/* decode.h: the reference decoders of the compression tests (zlib's inflate for gzip, libbrotlidec,
 * libzstd's streaming decoder), shared by tests/unit/test_compress.c and fuzz_compress.c. Each
 * decodes a whole or partial stream and says how many bytes it produced; a partial stream (cut
 * after a flush) must give every byte fed before that flush. */
#ifndef FC_TEST_DECODE_H
#define FC_TEST_DECODE_H

#include <brotli/decode.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>

#include "fulcrum/compress.h"

/* Decodes the <n> bytes at <in> of <coding> into <out> (room for <cap>). Returns the bytes
 * produced, or -1 when the stream is corrupt. *<complete> says whether the stream ended there. */
static inline long fc_test_decode(int coding, const unsigned char *in, size_t n, unsigned char *out, size_t cap,
                                  int *complete)
{
    *complete = 0;
    if (coding == FC_CODING_GZIP) {
        z_stream z;
        memset(&z, 0, sizeof(z));
        if (inflateInit2(&z, 15 + 16) != Z_OK) return -1;
        z.next_in = (Bytef *)(uintptr_t)in;
        z.avail_in = (uInt)n;
        z.next_out = out;
        z.avail_out = (uInt)cap;
        int r = inflate(&z, Z_SYNC_FLUSH);
        long made = (long)(cap - z.avail_out);
        inflateEnd(&z);
        if (r == Z_STREAM_END) *complete = 1;
        else if (r != Z_OK && r != Z_BUF_ERROR) return -1;
        return made;
    }
    if (coding == FC_CODING_BR) {
        size_t avail_in = n, avail_out = cap;
        const uint8_t *ip = in;
        uint8_t *op = out;
        BrotliDecoderState *d = BrotliDecoderCreateInstance(NULL, NULL, NULL);
        if (d == NULL) return -1;
        BrotliDecoderResult r = BrotliDecoderDecompressStream(d, &avail_in, &ip, &avail_out, &op, NULL);
        BrotliDecoderDestroyInstance(d);
        if (r == BROTLI_DECODER_RESULT_ERROR) return -1;
        if (r == BROTLI_DECODER_RESULT_SUCCESS) *complete = 1;
        return (long)(cap - avail_out);
    }
    if (coding == FC_CODING_ZSTD) {
        ZSTD_DCtx *d = ZSTD_createDCtx();
        if (d == NULL) return -1;
        ZSTD_inBuffer ib = {in, n, 0};
        ZSTD_outBuffer ob = {out, cap, 0};
        size_t r = 1;
        while (ib.pos < ib.size && ob.pos < ob.size) {
            r = ZSTD_decompressStream(d, &ob, &ib);
            if (ZSTD_isError(r)) {
                ZSTD_freeDCtx(d);
                return -1;
            }
            if (r == 0) break;
        }
        ZSTD_freeDCtx(d);
        if (r == 0 && ib.pos == ib.size) *complete = 1;
        return (long)ob.pos;
    }
    return -1;
}

#endif
