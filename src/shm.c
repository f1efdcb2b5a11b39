/* shm.c: the shared segment and its slot table (see shm.h). Only the master assigns and frees
 * slots, always before it forks the workers that use them, so the key table needs no lock. */
#include "fulcrum/shm.h"
#include "fulcrum/balance.h"
#include "fulcrum/trylock.h"

#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

fc_shm_t *fc_shm_create(void)
{
    void *p = mmap(NULL, sizeof(fc_shm_t), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return NULL; /* anonymous mappings come zeroed */
    fc_shm_t *shm = p;
    for (size_t i = 0; i < FC_SHM_PROCS; i++) {
        shm->wake_fd[i] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (shm->wake_fd[i] < 0) {
            int e = errno;
            while (i-- > 0) close(shm->wake_fd[i]);
            munmap(p, sizeof(fc_shm_t));
            errno = e;
            return NULL;
        }
    }
    return shm;
}

void fc_shm_destroy(fc_shm_t *shm)
{
    if (shm == NULL) return;
    for (size_t i = 0; i < FC_SHM_PROCS; i++) close(shm->wake_fd[i]); /* this process's copies */
    munmap(shm, sizeof(*shm));
}

void fc_shm_queue_lock(fc_shm_queue_t *q, unsigned me)
{
    for (unsigned i = 0;; i++) {
        unsigned free_ = 0;
        if (atomic_compare_exchange_weak_explicit(&q->lock, &free_, me + 1, memory_order_acquire, memory_order_relaxed))
            return;
        if (i >= 64) sched_yield(); /* the holder was preempted: let it run */
    }
}

void fc_shm_wake(fc_shm_t *shm, unsigned proc)
{
    uint64_t one = 1;
    ssize_t n;
    do n = write(shm->wake_fd[proc], &one, sizeof(one));
    while (n < 0 && errno == EINTR);
    /* EAGAIN means the counter is near 2^64 - 1 wake-ups unread: the process is awake anyway. */
}

void fc_shm_queue_unlock(fc_shm_queue_t *q) { atomic_store_explicit(&q->lock, 0, memory_order_release); }

/* Moves the head of <q> past the cells nobody waits in any more (under the lock). */
void fc_shm_queue_trim(fc_shm_queue_t *q)
{
    while (q->head < q->tail && q->cells[q->head % FC_SHM_QUEUE_RING].state == FC_QW_FREE) q->head++;
}

/* Takes the cells of process slot <proc> out of every queue: it left, its waiters with it (what
 * was granted to them is counted in its active_by, which fc_shm_forget_proc takes back). */
static void forget_waiters(fc_shm_t *shm, unsigned proc)
{
    for (size_t i = 0; i < FC_SHM_QUEUES; i++) {
        fc_shm_queue_t *q = &shm->queues[i];
        if (q->key[0] == '\0' && q->head == q->tail) continue;
        unsigned dead = proc + 1;
        /* Its lock, if it died holding it, is taken over: it was held for a few stores. */
        if (!atomic_compare_exchange_strong(&q->lock, &dead, FC_SHM_PROCS + 1)) fc_shm_queue_lock(q, FC_SHM_PROCS);
        for (uint64_t t = q->head; t < q->tail; t++) {
            fc_shm_waiter_t *c = &q->cells[t % FC_SHM_QUEUE_RING];
            if (c->proc != proc || c->state == FC_QW_FREE) continue;
            if (c->state == FC_QW_WAITING) atomic_fetch_sub(&q->waiting, 1);
            c->state = FC_QW_FREE;
        }
        fc_shm_queue_trim(q);
        fc_shm_queue_unlock(q);
    }
}

/* A new server is healthy unless active checks must pass first. */
static unsigned initial_health(const fc_upstream_conf_t *u) { return !(u->health.enabled && u->health.start_unhealthy); }

size_t fc_shm_nservers(const fc_config_t *cfg)
{
    size_t n = 0;
    for (size_t i = 0; i < cfg->nupstreams; i++) n += cfg->upstreams[i].nservers;
    return n;
}

size_t fc_shm_nslots(const fc_config_t *cfg) { return fc_shm_nservers(cfg) + cfg->nupstreams; }

/* The queue slot named <name> (refs taken), a free one, or FC_SHM_QUEUES when all are taken. */
static size_t queue_take(fc_shm_t *shm, const char *name)
{
    size_t free_slot = FC_SHM_QUEUES;
    for (size_t j = 0; j < FC_SHM_QUEUES; j++) {
        fc_shm_queue_t *q = &shm->queues[j];
        if (strcmp(q->key, name) == 0 && q->key[0] != '\0') {
            q->refs++;
            return j;
        }
        /* A free slot whose last waiters are still leaving (an older generation) is not reused. */
        if (q->key[0] == '\0' && atomic_load(&q->waiting) == 0 && free_slot == FC_SHM_QUEUES) free_slot = j;
    }
    if (free_slot == FC_SHM_QUEUES) return free_slot;
    fc_shm_queue_t *q = &shm->queues[free_slot];
    fc_shm_queue_lock(q, FC_SHM_PROCS);
    q->head = q->tail = 0;
    fc_shm_queue_unlock(q);
    snprintf(q->key, sizeof(q->key), "%s", name);
    q->refs = 1;
    return free_slot;
}

static void queue_put(fc_shm_t *shm, uint32_t slot)
{
    if (slot >= FC_SHM_QUEUES) return;
    fc_shm_queue_t *q = &shm->queues[slot];
    if (q->refs > 0 && --q->refs == 0) q->key[0] = '\0';
}

/* The positions of each resolving name that nobody has written yet get the addresses it had at
 * load, so the first requests find servers before the resolving worker has asked DNS. */
static void publish_initial(fc_shm_t *shm, const fc_config_t *cfg, const uint32_t *slots)
{
    size_t base = 0;
    for (size_t i = 0; i < cfg->nupstreams; i++) {
        const fc_upstream_conf_t *u = &cfg->upstreams[i];
        for (size_t k = 0; k < u->nnames; k++) {
            const fc_name_conf_t *nc = &u->names[k];
            fc_shm_server_t *pos[FC_UPSTREAM_MAX_SERVERS];
            int fresh = nc->resolve;
            for (size_t p = 0; fresh && p < nc->count; p++) {
                pos[p] = &shm->servers[slots[base + nc->first + p]];
                fresh = atomic_load(&pos[p]->dyn_seq) == 0;
            }
            fc_shm_dyn_result_t res;
            if (fresh) (void)fc_shm_dyn_update(pos, nc->count, nc->initial, nc->ninitial, initial_health(u), 0,
                                               FC_SHM_MASTER, &res);
        }
        base += u->nservers;
    }
}

int fc_shm_assign(fc_shm_t *shm, const fc_config_t *cfg, uint32_t *slots)
{
    size_t k = 0;
    for (size_t i = 0; i < cfg->nupstreams; i++) {
        const fc_upstream_conf_t *u = &cfg->upstreams[i];
        for (size_t s = 0; s < u->nservers; s++, k++) {
            char key[FC_SHM_KEY];
            const fc_server_conf_t *sc = &u->servers[s];
            const fc_name_conf_t *nc = sc->name ? &u->names[sc->name - 1] : NULL;
            int len = nc != NULL && nc->resolve
                          ? snprintf(key, sizeof(key), "%s/%s#%zu", u->name, nc->text, s - nc->first)
                          : snprintf(key, sizeof(key), "%s/%s", u->name, sc->addr.text);
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
                atomic_store(&st->healthy, initial_health(u));
            }
            shm->servers[found].refs++;
            slots[k] = (uint32_t)found;
        }
    }
    size_t nservers = k;
    for (size_t i = 0; i < cfg->nupstreams; i++) {
        slots[nservers + i] = UINT32_MAX;
        if (cfg->upstreams[i].queue.max == 0) continue;
        size_t q = queue_take(shm, cfg->upstreams[i].name);
        if (q == FC_SHM_QUEUES) {
            for (size_t j = 0; j < i; j++) queue_put(shm, slots[nservers + j]);
            for (size_t j = 0; j < nservers; j++)
                if (--shm->servers[slots[j]].refs == 0) shm->servers[slots[j]].key[0] = '\0';
            return -1;
        }
        slots[nservers + i] = (uint32_t)q;
    }
    publish_initial(shm, cfg, slots);
    return 0;
}

void fc_shm_release(fc_shm_t *shm, const fc_config_t *cfg, const uint32_t *slots)
{
    size_t n = fc_shm_nservers(cfg);
    for (size_t k = 0; k < n; k++) {
        fc_shm_server_t *st = &shm->servers[slots[k]];
        if (st->refs > 0 && --st->refs == 0) st->key[0] = '\0';
    }
    for (size_t i = 0; i < cfg->nupstreams; i++) queue_put(shm, slots[n + i]);
}

void fc_shm_forget_proc(fc_shm_t *shm, unsigned proc)
{
    for (size_t j = 0; j < FC_SHM_SLOTS; j++) {
        fc_shm_server_t *st = &shm->servers[j];
        unsigned n = atomic_exchange_explicit(&st->active_by[proc], 0, memory_order_relaxed);
        if (n > 0) atomic_fetch_sub_explicit(&st->active, n, memory_order_relaxed);
    }
    for (size_t j = 0; j < FC_SHM_SLOTS; j++) {
        unsigned mine = proc + 1; /* a resolving name it was rewriting: its positions may be half done,
                                     and the next update redoes them whole */
        atomic_compare_exchange_strong(&shm->servers[j].dyn_lock, &mine, 0);
    }
    atomic_store(&shm->ready[proc], 0);
    atomic_store(&shm->conns[proc], 0);
    forget_waiters(shm, proc);
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

/* ---- positions of resolving names ------------------------------------------------------------ */

static int addr_same(const fc_addr_t *a, const fc_addr_t *b)
{
    return a->len == b->len && a->len > 0 && memcmp(&a->ss, &b->ss, a->len) == 0;
}

int fc_shm_dyn_read(fc_shm_server_t *st, unsigned *seq, fc_addr_t *addr, int *used)
{
    unsigned s1 = atomic_load_explicit(&st->dyn_seq, memory_order_acquire);
    if (s1 & 1u) return -1;
    /* A seqlock read: the copy may be torn while a writer runs, and is then thrown away. */
    memcpy(addr, &st->dyn_addr, sizeof(*addr));
    *used = (int)st->dyn_used;
    atomic_thread_fence(memory_order_acquire);
    if (atomic_load_explicit(&st->dyn_seq, memory_order_relaxed) != s1) return -1;
    addr->text[sizeof(addr->text) - 1] = '\0';
    *seq = s1;
    return 0;
}

/* Rewrites position <st> (the caller holds the name's lock): <a> = NULL makes it vacant. */
static void dyn_write(fc_shm_server_t *st, const fc_addr_t *a, unsigned healthy, uint64_t now)
{
    unsigned s = atomic_load_explicit(&st->dyn_seq, memory_order_relaxed);
    atomic_store_explicit(&st->dyn_seq, s + 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
    if (a == NULL) {
        st->dyn_used = 0;
        st->dyn_vacant_since = now ? now : 1;
    } else {
        st->dyn_addr = *a;
        st->dyn_used = 1;
        /* A new address is a new server: no failures, checks or transitions of the one before. */
        atomic_store_explicit(&st->fails, 0, memory_order_relaxed);
        atomic_store_explicit(&st->fail_window, 0, memory_order_relaxed);
        atomic_store_explicit(&st->failed_until, 0, memory_order_relaxed);
        atomic_store_explicit(&st->probing, 0, memory_order_relaxed);
        atomic_store_explicit(&st->healthy, healthy, memory_order_relaxed);
        atomic_store_explicit(&st->hc_ok, 0, memory_order_relaxed);
        atomic_store_explicit(&st->hc_fail, 0, memory_order_relaxed);
        atomic_store_explicit(&st->up_since, now, memory_order_relaxed);
        atomic_store_explicit(&st->to_up, 0, memory_order_relaxed);
        atomic_store_explicit(&st->to_down, 0, memory_order_relaxed);
        atomic_store_explicit(&st->last_transition, 0, memory_order_relaxed);
        atomic_store_explicit(&st->checks_ok, 0, memory_order_relaxed);
        atomic_store_explicit(&st->checks_failed, 0, memory_order_relaxed);
        atomic_store_explicit(&st->last_check_ms, 0, memory_order_relaxed);
        atomic_store_explicit(&st->last_check_ok, 0, memory_order_relaxed);
    }
    atomic_store_explicit(&st->dyn_seq, s + 2, memory_order_release);
}

int fc_shm_dyn_update(fc_shm_server_t *const *pos, size_t n, const fc_addr_t *addrs, size_t naddrs, unsigned healthy,
                      uint64_t now, unsigned owner, fc_shm_dyn_result_t *res)
{
    memset(res, 0, sizeof(*res));
    if (n == 0) return 0;
    FC_ASSERT(n <= FC_UPSTREAM_MAX_SERVERS);
    if (naddrs > FC_UPSTREAM_MAX_SERVERS) naddrs = FC_UPSTREAM_MAX_SERVERS;
    unsigned free_ = 0;
    if (!atomic_compare_exchange_strong(&pos[0]->dyn_lock, &free_, owner)) return -1;
    /* Held addresses first: those gone leave their slot, those that stay are counted as placed. */
    unsigned char placed[FC_UPSTREAM_MAX_SERVERS] = {0};
    for (size_t p = 0; p < n; p++) {
        fc_shm_server_t *st = pos[p];
        if (!st->dyn_used) continue;
        size_t a = 0;
        while (a < naddrs && !addr_same(&addrs[a], &st->dyn_addr)) a++;
        if (a < naddrs && !placed[a]) {
            placed[a] = 1;
            res->kept++;
        } else {
            dyn_write(st, NULL, healthy, now);
            res->left++;
        }
    }
    for (size_t a = 0; a < naddrs; a++) {
        if (placed[a]) continue;
        size_t dup = 0;
        while (dup < a && !addr_same(&addrs[dup], &addrs[a])) dup++;
        if (dup < a) continue; /* listed twice by DNS */
        fc_shm_server_t *best = NULL;
        for (size_t p = 0; p < n; p++) {
            fc_shm_server_t *st = pos[p];
            if (st->dyn_used || atomic_load_explicit(&st->active, memory_order_relaxed) != 0) continue;
            if (best == NULL || st->dyn_vacant_since < best->dyn_vacant_since) best = st;
        }
        if (best == NULL) {
            res->dropped++;
            continue;
        }
        dyn_write(best, &addrs[a], healthy, now);
        placed[a] = 1;
        res->joined++;
    }
    atomic_store_explicit(&pos[0]->dyn_lock, 0, memory_order_release);
    return 0;
}
