/* shm.c: the shared segment and its slot table (see shm.h). Only the master assigns and frees
 * slots, always before it forks the workers that use them, so the key table needs no lock. */
#include "fulcrum/shm.h"
#include "fulcrum/trylock.h"

#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

fc_shm_t *fc_shm_create(void)
{
    void *p = mmap(NULL, sizeof(fc_shm_t), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p; /* anonymous mappings come zeroed */
}

void fc_shm_destroy(fc_shm_t *shm)
{
    if (shm != NULL) munmap(shm, sizeof(*shm));
}

size_t fc_shm_nservers(const fc_config_t *cfg)
{
    size_t n = 0;
    for (size_t i = 0; i < cfg->nupstreams; i++) n += cfg->upstreams[i].nservers;
    return n;
}

int fc_shm_assign(fc_shm_t *shm, const fc_config_t *cfg, uint32_t *slots)
{
    size_t k = 0;
    for (size_t i = 0; i < cfg->nupstreams; i++) {
        const fc_upstream_conf_t *u = &cfg->upstreams[i];
        for (size_t s = 0; s < u->nservers; s++, k++) {
            char key[FC_SHM_KEY];
            int len = snprintf(key, sizeof(key), "%s/%s", u->name, u->servers[s].addr.text);
            FC_ASSERT(len > 0 && (size_t)len < sizeof(key)); /* the loader bounds both parts */
            (void)len;
            size_t found = FC_SHM_SLOTS, free_slot = FC_SHM_SLOTS;
            for (size_t j = 0; j < FC_SHM_SLOTS; j++) {
                if (shm->servers[j].key[0] == '\0') {
                    if (free_slot == FC_SHM_SLOTS) free_slot = j;
                } else if (strcmp(shm->servers[j].key, key) == 0) {
                    found = j;
                    break;
                }
            }
            if (found == FC_SHM_SLOTS) {
                if (free_slot == FC_SHM_SLOTS) {
                    for (size_t j = 0; j < k; j++) /* undo what this call took so far */
                        if (--shm->servers[slots[j]].refs == 0) shm->servers[slots[j]].key[0] = '\0';
                    return -1;
                }
                found = free_slot;
                fc_shm_server_t *st = &shm->servers[found];
                memset(st, 0, sizeof(*st));
                strcpy(st->key, key);
                atomic_store(&st->healthy, !(u->health.enabled && u->health.start_unhealthy));
            }
            shm->servers[found].refs++;
            slots[k] = (uint32_t)found;
        }
    }
    return 0;
}

void fc_shm_release(fc_shm_t *shm, const fc_config_t *cfg, const uint32_t *slots)
{
    size_t n = fc_shm_nservers(cfg);
    for (size_t k = 0; k < n; k++) {
        fc_shm_server_t *st = &shm->servers[slots[k]];
        if (st->refs > 0 && --st->refs == 0) st->key[0] = '\0';
    }
}

void fc_shm_forget_proc(fc_shm_t *shm, unsigned proc)
{
    for (size_t j = 0; j < FC_SHM_SLOTS; j++) {
        fc_shm_server_t *st = &shm->servers[j];
        unsigned n = atomic_exchange_explicit(&st->active_by[proc], 0, memory_order_relaxed);
        if (n > 0) atomic_fetch_sub_explicit(&st->active, n, memory_order_relaxed);
    }
    atomic_store(&shm->ready[proc], 0);
    atomic_store(&shm->conns[proc], 0);
}

void fc_shm_learn_put(fc_shm_t *shm, uint64_t key, uint32_t slot, uint64_t expires)
{
    if (key == 0) key = 1;
    size_t set = (size_t)(key % FC_SHM_LEARN_SETS);
    if (fc_trylock(&shm->learn_lock[set], 64) < 0) return;
    fc_shm_learn_t *ways = &shm->learn[set * FC_SHM_LEARN_WAYS], *pick = &ways[0];
    for (size_t i = 0; i < FC_SHM_LEARN_WAYS; i++) {
        if (ways[i].key == key || ways[i].key == 0) {
            pick = &ways[i];
            break;
        }
        if (ways[i].expires < pick->expires) pick = &ways[i];
    }
    pick->key = key;
    pick->slot = slot;
    pick->expires = expires;
    fc_unlock(&shm->learn_lock[set]);
}

uint32_t fc_shm_learn_get(fc_shm_t *shm, uint64_t key, uint64_t now)
{
    if (key == 0) key = 1;
    size_t set = (size_t)(key % FC_SHM_LEARN_SETS);
    uint32_t slot = UINT32_MAX;
    if (fc_trylock(&shm->learn_lock[set], 64) < 0) return slot;
    fc_shm_learn_t *ways = &shm->learn[set * FC_SHM_LEARN_WAYS];
    for (size_t i = 0; i < FC_SHM_LEARN_WAYS; i++)
        if (ways[i].key == key && ways[i].expires > now) slot = ways[i].slot;
    fc_unlock(&shm->learn_lock[set]);
    return slot;
}

int fc_shm_peer_enter(fc_shm_t *shm, uint64_t key, uint32_t max)
{
    if (key == 0) key = 1;
    size_t set = (size_t)(key % FC_SHM_PEER_SETS);
    if (fc_trylock(&shm->peer_lock[set], 256) < 0) return -1;
    fc_shm_peer_t *ways = &shm->peers[set * FC_SHM_PEER_WAYS], *p = NULL, *empty = NULL;
    for (size_t i = 0; i < FC_SHM_PEER_WAYS && p == NULL; i++) {
        if (ways[i].key == key) p = &ways[i];
        else if (ways[i].count == 0 && empty == NULL) empty = &ways[i];
    }
    int rc;
    if (p == NULL && empty != NULL) {
        p = empty;
        p->key = key;
        p->count = 0;
    }
    if (p == NULL) rc = -1;
    else if (p->count >= max) rc = 0;
    else {
        p->count++;
        rc = 1;
    }
    fc_unlock(&shm->peer_lock[set]);
    return rc;
}

void fc_shm_peer_leave(fc_shm_t *shm, uint64_t key)
{
    if (key == 0) key = 1;
    size_t set = (size_t)(key % FC_SHM_PEER_SETS);
    /* Waited for (a leave should not be lost; the lock is held for a few stores), but bounded: a
     * worker that died holding it must not hang the others. */
    if (fc_trylock(&shm->peer_lock[set], 1000000) < 0) return;
    fc_shm_peer_t *ways = &shm->peers[set * FC_SHM_PEER_WAYS];
    for (size_t i = 0; i < FC_SHM_PEER_WAYS; i++)
        if (ways[i].key == key && ways[i].count > 0) {
            ways[i].count--;
            break;
        }
    fc_unlock(&shm->peer_lock[set]);
}

void fc_shm_peer_reset(fc_shm_t *shm)
{
    for (size_t set = 0; set < FC_SHM_PEER_SETS; set++) {
        (void)fc_trylock(&shm->peer_lock[set], 256); /* a dead holder's lock is simply overwritten */
        memset(&shm->peers[set * FC_SHM_PEER_WAYS], 0, FC_SHM_PEER_WAYS * sizeof(fc_shm_peer_t));
        fc_unlock(&shm->peer_lock[set]);
    }
}
