/* buf.c: fc_buf_t growth and fixed-size block freelists (see buf.h). */
#include "fulcrum/buf.h"

#include <stdarg.h>
#include <stdio.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int fc_buf_reserve(fc_buf_t *b, size_t extra)
{
    if (b->cap - b->len >= extra) return 0;
    if (extra > SIZE_MAX / 2 - b->len) return -1; /* the doubling below could not hold it */
    size_t cap = b->cap ? b->cap : 256;
    while (cap - b->len < extra) cap *= 2;
    char *n = realloc(b->base, cap);
    if (n == NULL) return -1;
    b->base = n;
    b->cap = cap;
    return 0;
}

int fc_buf_append(fc_buf_t *b, const void *p, size_t n)
{
    if (n == 0) return 0; /* p may be NULL (an empty slice): memcpy must not see it */
    if (fc_buf_reserve(b, n) != 0) return -1;
    memcpy(b->base + b->len, p, n);
    b->len += n;
    return 0;
}

void fc_buf_free(fc_buf_t *b)
{
    free(b->base);
    b->base = NULL;
    b->len = b->cap = 0;
}

void fc_bufpool_init(fc_bufpool_t *p, size_t size, size_t keep)
{
    p->size = size < sizeof(void *) ? sizeof(void *) : size;
    p->free = NULL;
    p->nfree = 0;
    p->keep = keep;
}

char *fc_bufpool_get(fc_bufpool_t *p)
{
    if (p->free != NULL) {
        char *b = p->free;
        p->free = *(void **)(void *)b; /* a free block holds the next one's address */
        p->nfree--;
        return b;
    }
    return malloc(p->size);
}

void fc_bufpool_put(fc_bufpool_t *p, char *block)
{
    if (block == NULL) return;
    if (p->nfree >= p->keep) {
        free(block);
        return;
    }
    *(void **)(void *)block = p->free;
    p->free = block;
    p->nfree++;
}

void fc_bufpool_drain(fc_bufpool_t *p)
{
    while (p->free != NULL) {
        char *b = p->free;
        p->free = *(void **)(void *)b;
        free(b);
    }
    p->nfree = 0;
}

int fc_buf_printf(fc_buf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || fc_buf_reserve(b, (size_t)n + 1) != 0) return -1;
    va_start(ap, fmt);
    vsnprintf(b->base + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}
