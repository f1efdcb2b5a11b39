/* buf.h: the one growable byte buffer type, and fixed-size buffer pools (per worker freelists)
 * so no read buffer is malloc'd per request and idle connections hold none. */
#ifndef FULCRUM_BUF_H
#define FULCRUM_BUF_H

#include <stddef.h>

typedef struct fc_buf {
    char *base; /* owned by whoever holds the fc_buf_t, unless the field says otherwise */
    size_t len; /* bytes in use */
    size_t cap; /* bytes allocated */
} fc_buf_t;

/* Makes room for <extra> more bytes (grows by doubling). Returns 0 or -1 (out of memory). */
int fc_buf_reserve(fc_buf_t *b, size_t extra);
/* Appends <n> bytes; returns 0 or -1. */
int fc_buf_append(fc_buf_t *b, const void *p, size_t n);
#define FC_BUF_APPEND_LIT(b, lit) fc_buf_append((b), (lit), sizeof(lit) - 1)
void fc_buf_free(fc_buf_t *b);
/* Appends printf-style text (growing as needed); returns 0 or -1 (out of memory, or a bad format). */
int fc_buf_printf(fc_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A freelist of equally sized blocks. Blocks come back through fc_bufpool_put. */
typedef struct fc_bufpool {
    size_t size;  /* every block's size */
    void *free;   /* singly linked through the first word of each free block */
    size_t nfree; /* blocks on the freelist */
    size_t keep;  /* at most this many are kept; the rest are freed */
} fc_bufpool_t;

void fc_bufpool_init(fc_bufpool_t *p, size_t size, size_t keep);
/* A block of p->size bytes, or NULL when memory is exhausted. */
char *fc_bufpool_get(fc_bufpool_t *p);
void fc_bufpool_put(fc_bufpool_t *p, char *block);
/* Frees every block on the freelist. */
void fc_bufpool_drain(fc_bufpool_t *p);

#endif
