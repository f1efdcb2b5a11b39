/* test_slab.c: slab.c with packing on (as in the release build; the sanitizer build's default is
 * one calloc per object): objects are zeroed, distinct and inside 64 KiB chunks of their own,
 * slots are reused, a chunk that empties is freed except one spare, and draining leaves nothing. */
#include <stdint.h>
#include <string.h>

#include "fulcrum/slab.h"
#include "harness.h"

void test_slab(void);

#define N 1000

void test_slab(void)
{
    subtest("packed");
    fc_slab_t s;
    fc_slab_init(&s, 600);
    is_int(s.size, 608);
    s.packed = 1;
    static unsigned char *objs[N];
    int zeroed = 1, inside = 1;
    for (int i = 0; i < N; i++) {
        objs[i] = fc_slab_alloc(&s);
        if (objs[i] == NULL) break;
        for (size_t k = 0; k < s.size; k++) zeroed &= objs[i][k] == 0;
        uintptr_t chunk = (uintptr_t)objs[i] & ~(uintptr_t)(FC_SLAB_CHUNK - 1);
        inside &= (uintptr_t)objs[i] + s.size <= chunk + FC_SLAB_CHUNK && (uintptr_t)objs[i] > chunk;
        memset(objs[i], 0xA5, s.size); /* dirty, to see the next owner gets it zeroed */
    }
    ok(zeroed);
    ok(inside);
    size_t per = (FC_SLAB_CHUNK - 48) / 608; /* the chunk header is at most 48 bytes */
    ok(s.chunks >= (N + per - 1) / per && s.chunks <= N / 100 + 1);
    int distinct = 1;
    for (int i = 1; i < N; i++) distinct &= objs[i] != objs[i - 1];
    ok(distinct);

    /* a freed slot is the next one handed out, zeroed */
    unsigned char *freed = objs[500];
    fc_slab_free(&s, freed);
    objs[500] = fc_slab_alloc(&s);
    ok(objs[500] == freed);
    ok(objs[500][0] == 0 && objs[500][s.size - 1] == 0);

    /* everything freed: one spare chunk stays, draining frees it */
    size_t before = s.chunks;
    ok(before > 2);
    for (int i = 0; i < N; i++) fc_slab_free(&s, objs[i]);
    is_int(s.chunks, 1);
    ok(s.spare != NULL);
    unsigned char *again = fc_slab_alloc(&s); /* from the spare */
    is_int(s.chunks, 1);
    ok(s.spare == NULL);
    fc_slab_free(&s, again);
    fc_slab_drain(&s);
    is_int(s.chunks, 0);
    ok(fc_list_empty(&s.partial));
    fc_slab_free(&s, NULL);

    subtest("unpacked");
    fc_slab_t u;
    fc_slab_init(&u, 100);
    u.packed = 0;
    unsigned char *p = fc_slab_alloc(&u);
    ok(p != NULL && p[0] == 0 && p[111] == 0);
    is_int(u.chunks, 0);
    fc_slab_free(&u, p);
    fc_slab_drain(&u);
}
