/* slab.h: a connection's own long-lived state, packed. A TLS handshake allocates some 50 KB in
 * small pieces and frees them at its end; the connection objects allocated among them (a few
 * hundred bytes each, for as long as the connection lives) would each pin a page of that freed
 * memory, so an idle TLS connection measured 6.5 KB of RSS for 1.2 KB of objects. A slab keeps
 * objects of one size in 64 KiB chunks of their own (outside the heap: beyond main.c's mmap
 * threshold), carved as they are needed, so the pages the heap frees go back whole.
 *
 * Per process, one thread (the worker's loop). A chunk that empties is freed, except one kept as
 * a spare. Under AddressSanitizer every object is its own calloc (so a use after free is still
 * caught), unless a test sets <packed>. */
#ifndef FULCRUM_SLAB_H
#define FULCRUM_SLAB_H

#include <stddef.h>

#include "fulcrum/list.h"

#define FC_SLAB_CHUNK 65536

typedef struct fc_slab {
    size_t size;       /* object size, rounded up to 16 */
    fc_list_t partial; /* chunks with room (a free slot or uncarved space) */
    void *spare;       /* an empty chunk kept (in <partial>), or NULL */
    size_t chunks;     /* chunks held */
    int packed;        /* 0: calloc and free per object */
} fc_slab_t;

void fc_slab_init(fc_slab_t *s, size_t size);
/* A zeroed object, or NULL. */
void *fc_slab_alloc(fc_slab_t *s);
void fc_slab_free(fc_slab_t *s, void *p);
/* Frees the spare chunk (at exit, with every object freed: then nothing is left). */
void fc_slab_drain(fc_slab_t *s);

#endif
