/* compress.h: content codings fulcrum applies to responses (gzip with zlib, br with libbrotlienc,
 * zstd with libzstd), the Accept-Encoding negotiation of RFC 9110 12.5.3, and the response checks
 * that decide whether a response may be compressed. Pure: no libuv, no exchange.
 *
 * Memory per stream (chosen so that 200 slow clients cost megabytes, not a gigabyte):
 * - gzip: windowBits 15 and memLevel 8 (zlib's defaults, 256 KiB + 6 KiB), lowered for a known
 *   small length the way nginx does (a window no larger than the body);
 * - br: lgwin 18 (256 KiB) at most, smaller for a known smaller length, and the size hint; its
 *   large blocks (about 2 MB per encoder) are reused through a cache of 4 MiB at most per worker,
 *   since an encoder cannot be reset (compress.c);
 * - zstd: windowLog 17 (128 KiB) at most, hash and chain tables of 2^15 and 2^14 for a body of
 *   unknown length (about 1.1 MB of state in all, libzstd's own buffers included); the pledged
 *   size is set when the length is known, which lets libzstd shrink its tables.
 * A stream lives only while the server's answer is being read: it is finished and returned to the
 * freelist as soon as the answer is whole, even if the client is still reading.
 * The streams come from the caller's freelist (fc_codec_reset) so a busy worker does not allocate
 * them per response. */
#ifndef FULCRUM_COMPRESS_H
#define FULCRUM_COMPRESS_H

#include <stddef.h>
#include <stdint.h>

#include "fulcrum/http.h"

enum fc_coding {
    FC_CODING_NONE = 0,
    FC_CODING_GZIP = 1,
    FC_CODING_BR = 2,
    FC_CODING_ZSTD = 3,
    FC_CODINGS = 4,
};

/* The token of <coding> as sent in Content-Encoding ("gzip", "br", "zstd"). */
const char *fc_coding_name(int coding);
/* The coding a token names (case-insensitive), or FC_CODING_NONE. */
int fc_coding_of(const char *p, size_t n);

/* Picks the coding for a request whose Accept-Encoding field values are <values> (<n> of them;
 * n == 0: the field is absent, and no coding is chosen). <on>[coding] != 0 for each coding
 * fulcrum may use; <prefer> lists codings in the server's order for ties (FC_CODINGS - 1 entries,
 * 0-terminated if shorter). RFC 9110 12.5.3: the highest q wins, q=0 excludes, "*" stands for
 * every coding not named, unknown codings are never chosen, and an identity weighed above every
 * accepted coding wins (a tie, or identity not named: the coding). Returns the coding, or
 * FC_CODING_NONE. */
int fc_coding_negotiate(const fc_slice_t *values, size_t n, const uint8_t *on, const uint8_t *prefer);

/* The media type of a Content-Type value (before ';', without whitespace), to compare with the
 * configured types (case-insensitive). */
fc_slice_t fc_media_type(fc_slice_t content_type);

/* 1 if the Cache-Control value <v> holds the no-transform directive. */
int fc_has_no_transform(fc_slice_t v);

enum { FC_CODEC_RUN = 0, FC_CODEC_FLUSH = 1, FC_CODEC_FINISH = 2 };

typedef struct fc_codec fc_codec_t; /* one compression stream (opaque) */

/* A new stream of <coding> at <level> (gzip 1..9, br 0..11, zstd 1..19) for a body of <length>
 * bytes (0 when unknown). NULL when out of memory. */
fc_codec_t *fc_codec_new(int coding, int level, uint64_t length);
/* Makes <c> ready for a new body of <length>, keeping its memory when its window fits; returns 0,
 * or -1 when <c> cannot be reused for that length (free it and make a new one). */
int fc_codec_reset(fc_codec_t *c, uint64_t length);
/* The coding and the level of <c>. */
int fc_codec_coding(const fc_codec_t *c);
int fc_codec_level(const fc_codec_t *c);
/* Compresses: reads up to *<inlen> bytes at *<in> and writes up to *<outlen> bytes at *<out>,
 * advancing both (the pointers move forward and the lengths shrink by what was used). <mode>
 * FC_CODEC_FLUSH also pushes out everything read so far (a decoder can then produce all of it),
 * FC_CODEC_FINISH ends the stream. Returns 1 when the flush or finish is complete (all input read
 * and all its output written), 0 when more output space is needed (or input remains), -1 on a
 * codec error (then the stream is unusable). */
int fc_codec_run(fc_codec_t *c, const char **in, size_t *inlen, char **out, size_t *outlen, int mode);
/* Frees <c>. NULL is fine. */
void fc_codec_free(fc_codec_t *c);
/* Frees the memory kept for brotli encoders (compress.c: a few freed blocks, reused by the next
 * encoder of the same parameters). At exit. */
void fc_codec_cache_drain(void);

#endif
