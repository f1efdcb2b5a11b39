/* body.h: a message body as fulcrum reads it and forwards it. A body source knows the framing the
 * head check decided (message.h) and cuts the payload out of received bytes: Content-Length and
 * close-delimited bodies pass through untouched, chunked ones are decoded in place (our own
 * decoder, RFC 9112 7.1, not llhttp's: it accepts every valid chunk extension and keeps only the
 * trailer fields that may be forwarded). Forwarding chunked means framing the payload again with
 * fulcrum's own chunk lines, so extensions and the sender's chunk sizes never cross the proxy.
 * Pure: no libuv. */
#ifndef FULCRUM_BODY_H
#define FULCRUM_BODY_H

#include <stddef.h>
#include <stdint.h>

#include "fulcrum/buf.h"
#include "fulcrum/http.h"

enum { FC_BODY_MORE = 0, FC_BODY_DONE = 1, FC_BODY_ERROR = -1 };

#define FC_CHUNKED_MAX_LINE 4096       /* a chunk-size line (with its extensions) or trailer line */
#define FC_CHUNKED_MAX_TRAILERS 16384  /* all trailer lines of one message together */
#define FC_CHUNKED_MAX_TRAILER_FIELDS 256 /* trailer fields of one message (as FC_HTTP_MAX_HEADERS) */
#define FC_CHUNK_PREFIX_MAX 18         /* "<16 hex digits>\r\n" */

typedef struct fc_body {
    uint64_t left;        /* LENGTH: bytes still to come; CHUNKED: payload bytes left in this chunk */
    uint64_t total;       /* payload bytes produced so far */
    fc_buf_t *trailers;   /* borrowed, may be NULL (trailers dropped): kept trailer field lines
                             ("name: value\r\n", validated) are appended here */
    fc_slice_t connection; /* borrowed, valid until the body is read: the options of the message's
                             Connection fields ("a, b"); trailers they name are dropped too
                             (RFC 9110 7.6.1), as are framing, routing and hop-by-hop ones */
    size_t line;          /* CHUNKED: bytes of the current size or trailer line so far */
    size_t field_start;   /* CHUNKED: offset in *trailers of the trailer line being collected */
    size_t trailer_bytes; /* CHUNKED: bytes of trailer lines so far */
    unsigned trailer_fields; /* CHUNKED: trailer fields so far */
    uint8_t framing;      /* enum fc_framing */
    uint8_t state;        /* the decoder's state (body.c) */
    uint8_t flags;        /* the decoder's line flags (body.c) */
    uint8_t done;         /* the body is complete */
    const char *error;    /* after FC_BODY_ERROR: a constant reason */
} fc_body_t;

/* Starts a body of <framing> (enum fc_framing) with <length> for FC_FRAME_LENGTH. Trailer lines
 * worth forwarding go to <trailers> (NULL to drop them). */
void fc_body_init(fc_body_t *b, int framing, uint64_t length, fc_buf_t *trailers);

/* Reads up to <len> received bytes at <in>; *<consumed> says how many were used (bytes after the
 * end of the body are left alone). The payload among them, *<produced> bytes, is at <out>:
 * LENGTH and EOF bodies produce exactly what they consume and <out> must equal <in> (nothing
 * moves); CHUNKED bodies move payload bytes down to <out>, which may equal <in> or lie before it
 * in the same buffer. Returns FC_BODY_MORE, FC_BODY_DONE (the body ended; for EOF framing only
 * fc_body_eof ends it) or FC_BODY_ERROR (b->error says why; nothing more may be read). */
int fc_body_read(fc_body_t *b, const char *in, size_t len, char *out, size_t *consumed, size_t *produced);

/* The sender closed: returns FC_BODY_DONE for an EOF-framed body, FC_BODY_ERROR when the body
 * was cut short. */
int fc_body_eof(fc_body_t *b);

/* Writes the chunk-size line for <n> > 0 payload bytes ("<hex>\r\n") to <out> (at least
 * FC_CHUNK_PREFIX_MAX bytes); returns its length. */
size_t fc_chunk_prefix(char *out, uint64_t n);

/* Appends to <out> what follows <n> payload bytes re-encoded as chunked: "\r\n" when n > 0, then,
 * when <last>, the last chunk, the trailers kept in b->trailers and the final CRLF
 * ("0\r\n" trailers "\r\n"). Returns 0 or -1 (out of memory). */
int fc_chunk_suffix(fc_buf_t *out, const fc_body_t *b, size_t n, int last);

/* ---- the queue between the body source and the client ----------------------------------------
 * A response that is buffered or compressed is not written from the server connection's read
 * buffer: its bytes (as read, or as a codec made them) wait here, in blocks, until the client
 * takes them. The server connection's buffer is then free at once, so the server can be read as
 * fast as it sends (and released when its answer is whole) while the client is slow. */

/* Payload bytes per block: a block with its header is just under 64 KiB. Blocks beyond the pool's
 * idle ones come from mmap (main.c's M_MMAP_THRESHOLD), and a munmap's cost on this kind of VM is
 * nearly all TLB shootdown, whatever the size: big blocks make four times fewer of them than
 * 16 KiB ones did (bench/buffering.sh at 1 MiB answers, docs/benchmarks.md). */
#define FC_BODYQ_BLOCK 65472

typedef struct fc_bodyq_block {
    struct fc_bodyq_block *next;
    uint32_t start, end;       /* [start, end) of data is queued */
    char data[FC_BODYQ_BLOCK];
} fc_bodyq_block_t;

/* The blocks of one worker: idle ones kept for reuse, and the count of every block handed out. */
typedef struct fc_bodyq_pool {
    fc_bodyq_block_t *free;    /* owned: idle blocks */
    size_t nfree;
    size_t out;                /* bytes of the blocks in queues now (the memory that limits.buffer_memory bounds) */
    size_t keep;               /* idle blocks kept at most */
} fc_bodyq_pool_t;

typedef struct fc_bodyq {
    fc_bodyq_block_t *head, *tail; /* owned, from the pool */
    size_t len;                /* bytes queued */
} fc_bodyq_t;

/* Free space at the end of <q> (a new block from <pool> when the last one is full): at least one
 * byte, *<avail> of them. NULL when out of memory. Bytes written there count once fc_bodyq_commit
 * says so. Bytes already queued never move, so a write in flight may point at them. */
char *fc_bodyq_space(fc_bodyq_t *q, fc_bodyq_pool_t *pool, size_t *avail);
/* <n> bytes were written at the space fc_bodyq_space returned. */
void fc_bodyq_commit(fc_bodyq_t *q, size_t n);
/* Copies <n> bytes to the end of <q>; returns 0 or -1 (out of memory: nothing was queued). */
int fc_bodyq_append(fc_bodyq_t *q, fc_bodyq_pool_t *pool, const char *p, size_t n);
/* Fills up to <max> slices with the first queued bytes; returns how many, their total in *<bytes>. */
size_t fc_bodyq_peek(const fc_bodyq_t *q, fc_slice_t *out, size_t max, size_t *bytes);
/* Drops the first <n> queued bytes (n <= q->len); emptied blocks go back to <pool>. */
void fc_bodyq_consume(fc_bodyq_t *q, fc_bodyq_pool_t *pool, size_t n);
/* Drops everything queued. */
void fc_bodyq_clear(fc_bodyq_t *q, fc_bodyq_pool_t *pool);
/* Frees the pool's idle blocks (at exit; blocks in queues must be back first). */
void fc_bodyq_pool_drain(fc_bodyq_pool_t *pool);

#endif
