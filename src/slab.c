/* slab.c: fixed-size objects in chunks of their own (see slab.h). */
#include "fulcrum/slab.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fulcrum/common.h"

#if defined(__SANITIZE_ADDRESS__)
#define PACKED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define PACKED 1
#endif
#endif
#ifndef PACKED
#define PACKED 1
#endif

/* At the start of each chunk, which is aligned to its size so an object finds it by masking. */
typedef struct chunk {
    fc_list_t link;  /* in the slab's <partial> while it has room */
    void *free;      /* freed slots, each holding the next */
    size_t bump;     /* offset of the first slot never handed out: slots are carved as needed, so
                        a new chunk's pages are touched only as it fills */
    size_t used;
} chunk_t;

#define FIRST ((sizeof(chunk_t) + 15) & ~(size_t)15)

void fc_slab_init(fc_slab_t *s, size_t size)
{
    memset(s, 0, sizeof(*s));
    s->size = (size + 15) & ~(size_t)15;
    fc_list_init(&s->partial);
    s->packed = PACKED && s->size <= (FC_SLAB_CHUNK - FIRST) / 4;
}

static int has_room(const fc_slab_t *s, const chunk_t *c)
{
    return c->free != NULL || c->bump + s->size <= FC_SLAB_CHUNK;
}

void *fc_slab_alloc(fc_slab_t *s)
{
    if (!s->packed) return calloc(1, s->size);
    chunk_t *c;
    if (fc_list_empty(&s->partial)) {
        void *mem = NULL;
        if (posix_memalign(&mem, FC_SLAB_CHUNK, FC_SLAB_CHUNK) != 0) return NULL;
        c = mem;
        c->free = NULL;
        c->bump = FIRST;
        c->used = 0;
        fc_list_insert_tail(&s->partial, &c->link);
        s->chunks++;
    } else {
        c = fc_container_of(s->partial.next, chunk_t, link);
    }
    if (c == s->spare) s->spare = NULL;
    void *o;
    if (c->free != NULL) {
        o = c->free;
        c->free = *(void **)o;
    } else {
        o = (char *)c + c->bump;
        c->bump += s->size;
    }
    c->used++;
    if (!has_room(s, c)) {
        fc_list_remove(&c->link);
        fc_list_init(&c->link);
    }
    memset(o, 0, s->size);
    return o;
}

void fc_slab_free(fc_slab_t *s, void *p)
{
    if (p == NULL) return;
    if (!s->packed) {
        free(p);
        return;
    }
    chunk_t *c = (chunk_t *)((uintptr_t)p & ~(uintptr_t)(FC_SLAB_CHUNK - 1));
    int was_full = !has_room(s, c);
    *(void **)p = c->free;
    c->free = p;
    c->used--;
    if (was_full) fc_list_insert_head(&s->partial, &c->link); /* the fullest chunks fill first */
    if (c->used > 0) return;
    if (s->spare == NULL) {
        s->spare = c;
        return;
    }
    fc_list_remove(&c->link);
    s->chunks--;
    free(c);
}

void fc_slab_drain(fc_slab_t *s)
{
    if (s->spare == NULL) return;
    chunk_t *c = s->spare;
    s->spare = NULL;
    fc_list_remove(&c->link);
    s->chunks--;
    free(c);
}
