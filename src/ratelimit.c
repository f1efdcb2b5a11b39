/* ratelimit.c: the bucket tables of `rate_limits` (a shared mapping per policy, see ratelimit.h)
 * and the per-worker queue of requests waiting their turn. Called by exchange.c (take, wait),
 * master.c (assign, release) and redis_store.c (collect, apply). */
#include "fulcrum/ratelimit.h"

#include <errno.h>
#include <stdio.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/mman.h>

#include "fulcrum/trylock.h"

#define TAKE_TRIES 64   /* a set's lock is tried this often in a row ... */
#define TAKE_YIELDS 256 /* ... and after each of this many sched_yield()s, before the request is let through */
#define APPLY_TRIES 4096 /* the reconciliation may try harder: it is not on a request's path */

/* ---- tables ---- */

static size_t align64(size_t n) { return (n + 63) & ~(size_t)63; }

static fc_rl_table_t *table_map(const char *name, uint32_t max_keys)
{
    uint32_t nsets = (max_keys + FC_RL_WAYS - 1) / FC_RL_WAYS;
    size_t head = align64(sizeof(fc_rl_table_t));
    size_t sets = align64((size_t)nsets * sizeof(fc_rl_set_t));
    size_t marks = align64(((size_t)nsets + 63) / 64 * sizeof(atomic_ullong));
    size_t bytes = head + sets + marks;
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return NULL;
    fc_rl_table_t *t = p; /* anonymous mappings come zeroed */
    t->bytes = bytes;
    t->nsets = nsets;
    t->sets = (fc_rl_set_t *)((char *)p + head);
    t->marks = (atomic_ullong *)((char *)p + head + sets);
    snprintf(t->name, sizeof(t->name), "%s", name);
    t->seed = fc_fnv1a(FC_FNV_INIT, name, strlen(name) + 1);
    return t;
}

static uint32_t table_keys(const fc_rl_table_t *t) { return t->nsets * FC_RL_WAYS; }

int fc_rl_assign(fc_rl_registry_t *reg, const fc_config_t *cfg, fc_rl_table_t **out, fc_err_t *err)
{
    for (size_t i = 0; i < cfg->nrate_limits; i++) {
        const fc_rate_limit_conf_t *r = &cfg->rate_limits[i];
        uint32_t want = (r->max_keys + FC_RL_WAYS - 1) / FC_RL_WAYS * FC_RL_WAYS;
        fc_rl_table_t *t = NULL;
        for (size_t k = 0; k < reg->n && t == NULL; k++)
            if (strcmp(reg->tables[k]->name, r->name) == 0 && table_keys(reg->tables[k]) == want) t = reg->tables[k];
        if (t == NULL) {
            /* A new policy, or one whose max_keys changed: its buckets start afresh. */
            t = table_map(r->name, r->max_keys);
            fc_rl_table_t **grown = t ? realloc(reg->tables, (reg->n + 1) * sizeof(*grown)) : NULL;
            if (grown == NULL) {
                if (t != NULL) munmap(t, t->bytes);
                fc_rl_release(reg, cfg, out); /* what this call took so far (out[i..] are NULL) */
                return fc_err_set(err, "rate limit %s: cannot map %u buckets: %s", r->name, want, strerror(errno ? errno : ENOMEM));
            }
            reg->tables = grown;
            reg->tables[reg->n++] = t;
        }
        t->refs++;
        out[i] = t;
    }
    return 0;
}

void fc_rl_release(fc_rl_registry_t *reg, const fc_config_t *cfg, fc_rl_table_t **tables)
{
    for (size_t i = 0; i < cfg->nrate_limits; i++) {
        fc_rl_table_t *t = tables[i];
        if (t == NULL || --t->refs > 0) continue;
        for (size_t k = 0; k < reg->n; k++)
            if (reg->tables[k] == t) {
                reg->tables[k] = reg->tables[--reg->n];
                break;
            }
        munmap(t, t->bytes);
        tables[i] = NULL;
    }
}

void fc_rl_registry_free(fc_rl_registry_t *reg, int unmap)
{
    for (size_t k = 0; unmap && k < reg->n; k++) munmap(reg->tables[k], reg->tables[k]->bytes);
    free(reg->tables);
    reg->tables = NULL;
    reg->n = 0;
}

/* Takes the lock of set <s> for a request. A holder is only ever a few arithmetic steps from
 * letting go, unless it was descheduled there: so after the spin the CPU is given up a bounded
 * number of times before the request is let through unlimited (fail open; a holder that died
 * costs that set this wait, never a stuck worker). */
static int lock_set(fc_rl_set_t *s)
{
    if (fc_trylock(&s->lock, TAKE_TRIES) == 0) return 0;
    for (int i = 0; i < TAKE_YIELDS; i++) {
        sched_yield();
        if (fc_trylock(&s->lock, TAKE_TRIES) == 0) return 0;
    }
    return -1;
}

/* The bucket of <key> in set <s> (locked), made from the least recently used one when the key
 * is new: a full bucket. */
static fc_rl_bucket_t *find_bucket(fc_rl_table_t *t, fc_rl_set_t *s, uint64_t key, double cap, uint64_t now)
{
    fc_rl_bucket_t *lru = &s->ways[0];
    for (size_t i = 0; i < FC_RL_WAYS; i++) {
        if (s->ways[i].key == key) return &s->ways[i];
        if (s->ways[i].used < lru->used) lru = &s->ways[i];
    }
    if (lru->key != 0) atomic_fetch_add_explicit(&t->evicted, 1, memory_order_relaxed);
    memset(lru, 0, sizeof(*lru));
    lru->key = key;
    lru->tokens = cap;
    lru->at = now;
    return lru;
}

int fc_rl_take(fc_rl_table_t *t, uint64_t key, const fc_rate_limit_conf_t *r, uint64_t now, uint64_t max_wait,
               double *left, uint64_t *wait_ms)
{
    double cap = (double)r->burst + 1, per_ms = (double)r->rate / (double)r->per;
    if (key == 0) key = 1;
    uint32_t si = (uint32_t)(key % t->nsets);
    fc_rl_set_t *s = &t->sets[si];
    *left = cap - 1;
    *wait_ms = 0;
    if (lock_set(s) < 0) return FC_RL_PASS;
    fc_rl_bucket_t *b = find_bucket(t, s, key, cap, now);
    b->used = ++s->tick;
    double tk = b->tokens;
    if (now > b->at) tk += (double)(now - b->at) * per_ms;
    if (tk > cap) tk = cap;
    b->at = now;
    b->tokens = tk;
    int verdict;
    if (tk < 1.0) {
        verdict = FC_RL_REJECT;
        *wait_ms = (uint64_t)ceil((1.0 - tk) / per_ms);
    } else {
        /* nginx's delay: the requests beyond the rate (the bucket's emptiness after this one,
         * cap - tk) up to <delay> pass at once; the rest wait until the bucket has refilled to
         * where they would have passed. */
        double excess = cap - tk;
        double free_ = r->delay == 0 ? cap : r->delay == FC_RATE_DELAY_ALL ? 0 : (double)r->delay;
        uint64_t wait = excess > free_ ? (uint64_t)ceil((excess - free_) / per_ms) : 0;
        if (wait > max_wait) {
            verdict = FC_RL_REJECT;
            *wait_ms = wait - max_wait;
        } else {
            verdict = wait > 0 ? FC_RL_DELAY : FC_RL_PASS;
            *wait_ms = wait;
            b->tokens = tk - 1.0;
            b->taken++;
        }
    }
    *left = b->tokens;
    if (!b->dirty) {
        b->dirty = 1;
        atomic_fetch_or_explicit(&t->marks[si / 64], UINT64_C(1) << (si % 64), memory_order_relaxed);
    }
    fc_unlock(&s->lock);
    if (verdict == FC_RL_DELAY) atomic_fetch_add_explicit(&t->delayed, 1, memory_order_relaxed);
    return verdict;
}

int fc_rl_admit(fc_rl_table_t *t, const fc_rate_limit_conf_t *r, const fc_route_conf_t *route, uint64_t key,
                uint64_t now, double *left, uint64_t *wait_ms)
{
    if (r->store != NULL && r->store->on_error == FC_RATE_DENY &&
        atomic_load_explicit(&t->store_down, memory_order_relaxed)) {
        *left = 0;
        *wait_ms = 1000; /* the store is tried again about every second */
        return FC_RL_REJECT;
    }
    uint64_t max_wait = r->max_delay;
    /* A wait that would outlast the request's deadline is answered now, not with a 504 later. */
    if (route->request_timeout > 0 && route->request_timeout <= max_wait) max_wait = route->request_timeout - 1;
    return fc_rl_take(t, key, r, now, max_wait, left, wait_ms);
}

size_t fc_rl_collect(fc_rl_table_t *t, fc_rl_pending_t *out, size_t max)
{
    size_t n = 0;
    uint32_t nwords = (t->nsets + 63) / 64;
    for (uint32_t wi = 0; wi < nwords && n + FC_RL_WAYS <= max; wi++) {
        uint64_t bits = atomic_exchange_explicit(&t->marks[wi], 0, memory_order_relaxed);
        while (bits != 0) {
            uint32_t si = wi * 64 + (uint32_t)__builtin_ctzll(bits);
            bits &= bits - 1;
            fc_rl_set_t *s = &t->sets[si];
            if (n + FC_RL_WAYS > max || fc_trylock(&s->lock, APPLY_TRIES) < 0) {
                /* No room in this batch (or the set is busy): the next round takes it. */
                atomic_fetch_or_explicit(&t->marks[wi], UINT64_C(1) << (si % 64), memory_order_relaxed);
                continue;
            }
            for (uint32_t k = 0; k < FC_RL_WAYS; k++) {
                fc_rl_bucket_t *b = &s->ways[k];
                if (b->key == 0 || !b->dirty) continue;
                b->dirty = 0;
                out[n++] = (fc_rl_pending_t){.key = b->key, .set = si, .way = k, .taken = b->taken,
                                             .delta = b->taken - b->synced};
                b->synced = b->taken;
            }
            fc_unlock(&s->lock);
        }
    }
    return n;
}

void fc_rl_apply(fc_rl_table_t *t, const fc_rl_pending_t *p, double tokens, double cap, uint64_t now)
{
    fc_rl_set_t *s = &t->sets[p->set];
    if (fc_trylock(&s->lock, APPLY_TRIES) < 0) return;
    fc_rl_bucket_t *b = &s->ways[p->way];
    if (b->key == p->key) {
        /* The shared state as of the answer, less what this process took since it was asked
         * (that is in the next batch's delta). */
        double tk = tokens - (double)(uint32_t)(b->taken - p->taken);
        b->tokens = tk > cap ? cap : tk;
        b->at = now;
    }
    fc_unlock(&s->lock);
}

/* ---- waiting requests ---- */

static void heap_swap(fc_rl_waitq_t *q, size_t a, size_t b)
{
    fc_rl_wait_t *x = q->heap[a];
    q->heap[a] = q->heap[b];
    q->heap[b] = x;
    q->heap[a]->pos = a + 1;
    q->heap[b]->pos = b + 1;
}

static void heap_up(fc_rl_waitq_t *q, size_t i)
{
    while (i > 0 && q->heap[(i - 1) / 2]->due > q->heap[i]->due) {
        heap_swap(q, i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
}

static void heap_down(fc_rl_waitq_t *q, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < q->n && q->heap[l]->due < q->heap[m]->due) m = l;
        if (r < q->n && q->heap[r]->due < q->heap[m]->due) m = r;
        if (m == i) return;
        heap_swap(q, i, m);
        i = m;
    }
}

static void heap_remove(fc_rl_waitq_t *q, size_t i)
{
    q->heap[i]->pos = 0;
    q->n--;
    if (i == q->n) return;
    q->heap[i] = q->heap[q->n];
    q->heap[i]->pos = i + 1;
    heap_up(q, i);
    heap_down(q, i);
}

static void on_wait_timer(uv_timer_t *timer);

static void arm(fc_rl_waitq_t *q)
{
    if (q->n == 0) {
        uv_timer_stop(&q->timer);
        return;
    }
    uint64_t now = uv_now(q->timer.loop), due = q->heap[0]->due;
    uv_timer_start(&q->timer, on_wait_timer, due > now ? due - now : 0, 0);
}

static void on_wait_timer(uv_timer_t *timer)
{
    fc_rl_waitq_t *q = fc_container_of(timer, fc_rl_waitq_t, timer);
    uint64_t now = uv_now(timer->loop);
    /* Each callback may cancel or add waits: the heap is read afresh every time. */
    while (q->n > 0 && q->heap[0]->due <= now) {
        fc_rl_wait_t *wt = q->heap[0];
        heap_remove(q, 0);
        wt->cb(wt);
    }
    arm(q);
}

fc_rl_waitq_t *fc_rl_waitq_new(uv_loop_t *loop)
{
    fc_rl_waitq_t *q = calloc(1, sizeof(*q));
    if (q == NULL) return NULL;
    uv_timer_init(loop, &q->timer);
    return q;
}

static void on_waitq_closed(uv_handle_t *h)
{
    fc_rl_waitq_t *q = fc_container_of((uv_timer_t *)h, fc_rl_waitq_t, timer);
    free(q->heap);
    free(q);
}

void fc_rl_waitq_close(fc_rl_waitq_t *q)
{
    for (size_t i = 0; i < q->n; i++) q->heap[i]->pos = 0;
    q->n = 0;
    uv_close((uv_handle_t *)&q->timer, on_waitq_closed);
}

int fc_rl_wait(fc_rl_waitq_t *q, fc_rl_wait_t *wt, uint64_t ms, fc_rl_wait_cb cb)
{
    FC_ASSERT(wt->pos == 0);
    if (q->n == q->cap) {
        size_t cap = q->cap ? q->cap * 2 : 64;
        fc_rl_wait_t **grown = realloc(q->heap, cap * sizeof(*grown));
        if (grown == NULL) return -1;
        q->heap = grown;
        q->cap = cap;
    }
    wt->due = uv_now(q->timer.loop) + ms;
    wt->cb = cb;
    q->heap[q->n++] = wt;
    wt->pos = q->n;
    heap_up(q, q->n - 1);
    if (q->heap[0] == wt) arm(q);
    return 0;
}

void fc_rl_wait_cancel(fc_rl_waitq_t *q, fc_rl_wait_t *wt)
{
    if (wt->pos == 0) return;
    int first = wt->pos == 1;
    heap_remove(q, wt->pos - 1);
    if (first) arm(q);
}
