/* metrics.c: per-worker metric blocks in shared memory, the master's fold of a reaped worker, the
 * merged view, and the Prometheus text exposition (see metrics.h). The hot path is the inline
 * part of metrics.h; what is here runs at start, at a new (route, method, status), at a reap and
 * at a scrape. */
#include "fulcrum/metrics.h"
#include "fulcrum/ratelimit.h"

#include <dirent.h>
#include <stdarg.h>
#include <errno.h>
#include <math.h>
#include <openssl/opensslv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "fulcrum/log.h"
#include "fulcrum/queue.h"
#include "fulcrum/upstream.h"
#include "fulcrum/worker.h"

#define LOAD(x) atomic_load_explicit(&(x), memory_order_relaxed)
#define STORE(x, v) atomic_store_explicit(&(x), (v), memory_order_relaxed)
#define SNAPSHOT_TRIES 20 /* a fold takes microseconds to a few ms; a scrape retries this often at most,
                             200 us apart, then answers with what it has */

static uint32_t hash_series(const fc_metrics_series_t *s);

const char *const fc_metrics_method_names[FC_METRICS_METHODS] = {"GET",     "HEAD",    "POST",  "PUT",   "DELETE",
                                                                 "CONNECT", "OPTIONS", "TRACE", "PATCH", "OTHER"};

/* ---- the segment ---- */

static size_t header_size(void) { return (sizeof(fc_metrics_shm_t) + 63) & ~(size_t)63; }

fc_metrics_shm_t *fc_metrics_shm_create(uint64_t cap)
{
    size_t size = header_size() + (size_t)FC_METRICS_BLOCKS * (size_t)cap * sizeof(fc_metrics_series_t);
    /* Pages are only backed once touched: a block uses what its series use. */
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) return NULL;
    fc_metrics_shm_t *m = p;
    m->cap = (uint32_t)cap;
    m->size = size;
    m->start_time = (uint64_t)time(NULL);
    m->master_pid = (int32_t)getpid();
    STORE(m->last_reload_ok, 1);
    STORE(m->last_reload_ok_time, m->start_time);
    for (unsigned b = 0; b < FC_METRICS_BLOCKS; b++) STORE(m->blocks[b].folded, b != FC_METRICS_RETIRED);
    return m;
}

void fc_metrics_shm_destroy(fc_metrics_shm_t *m)
{
    if (m != NULL) munmap(m, m->size);
}

fc_metrics_series_t *fc_metrics_series_at(fc_metrics_shm_t *m, unsigned b)
{
    return (fc_metrics_series_t *)(void *)((char *)m + header_size() +
                                           (size_t)b * m->cap * sizeof(fc_metrics_series_t));
}

void fc_metrics_claim(fc_metrics_shm_t *m, unsigned proc)
{
    fc_metrics_block_t *b = &m->blocks[proc];
    fc_metrics_series_t *s = fc_metrics_series_at(m, proc);
    uint32_t n = LOAD(b->nseries);
    memset((void *)s, 0, n * sizeof(*s));
    STORE(b->nseries, 0);
    STORE(b->dropped, 0);
    STORE(b->pid, 0);
    for (unsigned r = 0; r < FC_MC_REASONS; r++) STORE(b->client_errors[r], 0);
    for (unsigned k = 0; k < FC_MCS_STATES; k++) STORE(b->client_conns[k], 0);
    STORE(b->buffer_bytes, 0);
    STORE(b->buffering_skipped, 0);
    STORE(b->conns_refused[0], 0);
    STORE(b->conns_refused[1], 0);
    atomic_store_explicit(&b->folded, 0, memory_order_release);
}

/* The series of <family>/<key>/<method>/<status> among the <n> at <s>, or NULL. */
static fc_metrics_series_t *find_in(fc_metrics_series_t *s, uint32_t n, int family, const char *key, unsigned method,
                                    unsigned status)
{
    for (uint32_t i = 0; i < n; i++)
        if (s[i].family == family && s[i].method == method && s[i].status == status && strcmp(s[i].key, key) == 0)
            return &s[i];
    return NULL;
}

/* Makes a series at the end of block <b> (its only writer calls this). NULL when full. */
static fc_metrics_series_t *append(fc_metrics_block_t *b, fc_metrics_series_t *s, uint32_t cap, int family,
                                   const char *key, unsigned method, unsigned status)
{
    uint32_t n = LOAD(b->nseries);
    if (n >= cap) {
        STORE(b->dropped, LOAD(b->dropped) + 1);
        return NULL;
    }
    fc_metrics_series_t *x = &s[n];
    memset((void *)x, 0, sizeof(*x));
    x->family = (uint8_t)family;
    x->method = (uint8_t)method;
    x->status = (uint16_t)status;
    snprintf(x->key, sizeof(x->key), "%s", key);
    atomic_store_explicit(&b->nseries, n + 1, memory_order_release);
    return x;
}

void fc_metrics_fold(fc_metrics_shm_t *m, unsigned proc)
{
    fc_metrics_block_t *b = &m->blocks[proc], *r = &m->blocks[FC_METRICS_RETIRED];
    if (LOAD(b->folded)) return;
    fc_metrics_series_t *src = fc_metrics_series_at(m, proc), *dst = fc_metrics_series_at(m, FC_METRICS_RETIRED);
    /* The retired block's series by key, for this fold (the master's own memory; without it, a
     * linear search per series: 10,000 series would take the master seconds). */
    uint32_t nr = LOAD(r->nseries), cap = 16;
    while (cap < 2 * (nr + LOAD(b->nseries))) cap *= 2;
    uint32_t *table = calloc(cap, sizeof(*table)); /* series index + 1 */
    for (uint32_t i = 0; table != NULL && i < nr; i++) {
        uint32_t h = hash_series(&dst[i]) & (cap - 1);
        while (table[h] != 0) h = (h + 1) & (cap - 1);
        table[h] = i + 1;
    }
    atomic_fetch_add_explicit(&m->fold_seq, 1, memory_order_acq_rel); /* odd: a fold runs */
    uint32_t n = atomic_load_explicit(&b->nseries, memory_order_acquire);
    for (uint32_t i = 0; i < n; i++) {
        fc_metrics_series_t *s = &src[i], *d = NULL;
        uint32_t h = 0;
        if (table != NULL) {
            for (h = hash_series(s) & (cap - 1); table[h] != 0; h = (h + 1) & (cap - 1)) {
                fc_metrics_series_t *c = &dst[table[h] - 1];
                if (c->family == s->family && c->method == s->method && c->status == s->status &&
                    strcmp(c->key, s->key) == 0) {
                    d = c;
                    break;
                }
            }
        } else {
            d = find_in(dst, LOAD(r->nseries), s->family, s->key, s->method, s->status);
        }
        if (d == NULL) {
            d = append(r, dst, m->cap, s->family, s->key, s->method, s->status);
            if (d != NULL && table != NULL) table[h] = (uint32_t)(d - dst) + 1;
        }
        if (d == NULL) continue; /* counted as dropped in the retired block */
        for (unsigned k = 0; k < FC_METRICS_VALUES; k++) {
            if (s->family == FC_MF_SERVER && k == FC_MV_IDLE) continue; /* a gauge of a process that is gone */
            fc_metrics_add(d, k, LOAD(s->v[k]));
        }
    }
    STORE(r->dropped, LOAD(r->dropped) + LOAD(b->dropped));
    for (unsigned k = 0; k < FC_MC_REASONS; k++) STORE(r->client_errors[k], LOAD(r->client_errors[k]) + LOAD(b->client_errors[k]));
    STORE(r->buffering_skipped, LOAD(r->buffering_skipped) + LOAD(b->buffering_skipped));
    for (unsigned k = 0; k < 2; k++) STORE(r->conns_refused[k], LOAD(r->conns_refused[k]) + LOAD(b->conns_refused[k]));
    STORE(b->pid, 0);
    atomic_store_explicit(&b->folded, 1, memory_order_release);
    atomic_fetch_add_explicit(&m->fold_seq, 1, memory_order_acq_rel); /* even: done */
    free(table);
}

/* ---- a worker's own block ---- */

fc_metrics_series_t *fc_metrics_local_series(fc_metrics_local_t *l, int family, const char *key, unsigned method,
                                             unsigned status)
{
    fc_metrics_series_t *s = find_in(l->series, LOAD(l->block->nseries), family, key, method, status);
    if (s == NULL) s = append(l->block, l->series, l->shm->cap, family, key, method, status);
    if (s == NULL && !l->dropped_logged) {
        l->dropped_logged = 1;
        fc_log(FC_LOG_WARN, "metrics: max_series (%u) reached: new series are dropped (counted in "
               "fulcrum_metrics_series_dropped_total)", l->shm->cap);
    }
    return s;
}

static int index_grow(fc_metrics_local_t *l)
{
    uint32_t cap = l->index_cap ? l->index_cap * 2 : 256;
    uint32_t *idx = calloc(cap, sizeof(*idx)), *keys = calloc(cap, sizeof(*keys));
    if (idx == NULL || keys == NULL) {
        free(idx);
        free(keys);
        return -1;
    }
    for (uint32_t i = 0; i < l->index_cap; i++) {
        if (l->index_keys[i] == 0) continue;
        uint32_t j = (l->index_keys[i] * 2654435761u) & (cap - 1);
        while (keys[j] != 0) j = (j + 1) & (cap - 1);
        keys[j] = l->index_keys[i];
        idx[j] = l->index[i];
    }
    free(l->index);
    free(l->index_keys);
    l->index = idx;
    l->index_keys = keys;
    l->index_cap = cap;
    return 0;
}

fc_metrics_series_t *fc__metrics_route_slow(fc_metrics_local_t *l, uint32_t key, const char *name, unsigned method,
                                            unsigned status)
{
    fc_metrics_series_t *s = fc_metrics_local_series(l, FC_MF_ROUTE, name, method, status);
    if (s == NULL) return NULL;
    if ((l->index_used + 1) * 2 > l->index_cap && index_grow(l) != 0) return s;
    uint32_t mask = l->index_cap - 1, i = (key * 2654435761u) & mask;
    while (l->index_keys[i] != 0) i = (i + 1) & mask;
    l->index_keys[i] = key;
    l->index[i] = (uint32_t)(s - l->series) + 1;
    l->index_used++;
    return s;
}

int fc_metrics_local_init(fc_metrics_local_t *l, fc_metrics_shm_t *m, unsigned proc, const fc_config_t *cfg)
{
    memset(l, 0, sizeof(*l));
    l->shm = m;
    l->block = &m->blocks[proc];
    l->series = fc_metrics_series_at(m, proc);
    l->conf = &cfg->metrics;
    STORE(l->block->pid, (int32_t)getpid());
    l->nroutes = cfg->nroutes;
    l->rate_limited = calloc(cfg->nroutes ? cfg->nroutes : 1, sizeof(*l->rate_limited));
    if (l->rate_limited == NULL) return -1;
    return index_grow(l);
}

void fc_metrics_local_free(fc_metrics_local_t *l)
{
    free(l->index);
    free(l->index_keys);
    free(l->rate_limited);
    l->rate_limited = NULL;
    l->index = l->index_keys = NULL;
    l->shm = NULL;
    l->block = NULL;
}

void fc_metrics_rate_limited(fc_metrics_local_t *l, size_t route, const char *name)
{
    if (route >= l->nroutes) return;
    if (l->rate_limited[route] == NULL) l->rate_limited[route] = fc_metrics_local_series(l, FC_MF_RATELIMIT, name, 0, 0);
    if (l->rate_limited[route] != NULL) fc_metrics_add(l->rate_limited[route], 0, 1);
}

/* ---- the merged view ---- */

static int merged_cmp(const void *a, const void *b)
{
    const fc_metrics_merged_t *x = a, *y = b;
    if (x->family != y->family) return x->family - y->family;
    int c = strcmp(x->keybuf, y->keybuf);
    if (c != 0) return c;
    if (x->method != y->method) return x->method - y->method;
    return x->status - y->status;
}

static int merged_ptr_cmp(const void *a, const void *b)
{
    return merged_cmp(*(const fc_metrics_merged_t *const *)a, *(const fc_metrics_merged_t *const *)b);
}

static uint32_t hash_series(const fc_metrics_series_t *s)
{
    uint32_t h = 2166136261u ^ s->family ^ ((uint32_t)s->method << 8) ^ ((uint32_t)s->status << 16);
    for (const char *p = s->key; *p; p++) h = (h ^ (unsigned char)*p) * 16777619u;
    return h;
}

/* One pass over the blocks into <snap>, of the series whose family is in <families> (a bit per
 * family); the caller checks fold_seq around it. */
static int collect(fc_metrics_shm_t *m, fc_metrics_snapshot_t *snap, uint32_t families)
{
    size_t total = 0;
    for (unsigned b = 0; b < FC_METRICS_BLOCKS; b++)
        if (!atomic_load_explicit(&m->blocks[b].folded, memory_order_acquire))
            total += atomic_load_explicit(&m->blocks[b].nseries, memory_order_acquire);
    size_t cap = 16;
    while (cap < total * 2) cap *= 2;
    uint32_t *table = calloc(cap, sizeof(*table)); /* merged index + 1 */
    fc_metrics_merged_t *out = malloc((total ? total : 1) * sizeof(*out));
    if (table == NULL || out == NULL) {
        free(table);
        free(out);
        return -1;
    }
    size_t n = 0;
    memset(snap, 0, sizeof(*snap));
    for (unsigned b = 0; b < FC_METRICS_BLOCKS; b++) {
        fc_metrics_block_t *blk = &m->blocks[b];
        if (atomic_load_explicit(&blk->folded, memory_order_acquire)) continue;
        snap->pids[b] = LOAD(blk->pid);
        snap->dropped += LOAD(blk->dropped);
        for (unsigned k = 0; k < FC_MC_REASONS; k++) snap->client_errors[k] += LOAD(blk->client_errors[k]);
        for (unsigned k = 0; k < FC_MCS_STATES; k++) snap->client_conns[k] += LOAD(blk->client_conns[k]);
        snap->buffer_bytes += LOAD(blk->buffer_bytes);
        snap->buffering_skipped += LOAD(blk->buffering_skipped);
        for (unsigned k = 0; k < 2; k++) snap->conns_refused[k] += LOAD(blk->conns_refused[k]);
        uint32_t ns = atomic_load_explicit(&blk->nseries, memory_order_acquire);
        fc_metrics_series_t *s = fc_metrics_series_at(m, b);
        for (uint32_t i = 0; i < ns && n < total; i++) {
            if (!(families >> s[i].family & 1)) continue;
            uint32_t h = hash_series(&s[i]) & (uint32_t)(cap - 1);
            fc_metrics_merged_t *d = NULL;
            while (table[h] != 0) {
                fc_metrics_merged_t *c = &out[table[h] - 1];
                if (c->family == s[i].family && c->method == s[i].method && c->status == s[i].status &&
                    strcmp(c->keybuf, s[i].key) == 0) {
                    d = c;
                    break;
                }
                h = (h + 1) & (uint32_t)(cap - 1);
            }
            if (d == NULL) {
                d = &out[n++];
                table[h] = (uint32_t)n;
                d->family = s[i].family;
                d->method = s[i].method;
                d->status = s[i].status;
                memcpy(d->keybuf, s[i].key, sizeof(d->keybuf));
                d->keybuf[sizeof(d->keybuf) - 1] = '\0';
                d->key = d->keybuf;
                memset(d->v, 0, sizeof(d->v));
            }
            for (unsigned k = 0; k < FC_METRICS_VALUES; k++) d->v[k] += LOAD(s[i].v[k]);
        }
    }
    free(table);
    /* Sorted through pointers (the entries are large), then copied once in order. */
    const fc_metrics_merged_t **order = malloc((n ? n : 1) * sizeof(*order));
    fc_metrics_merged_t *sorted = malloc((n ? n : 1) * sizeof(*sorted));
    if (order == NULL || sorted == NULL) {
        free(order);
        free(sorted);
        free(out);
        return -1;
    }
    for (size_t i = 0; i < n; i++) order[i] = &out[i];
    qsort(order, n, sizeof(*order), merged_ptr_cmp);
    for (size_t i = 0; i < n; i++) {
        sorted[i] = *order[i];
        sorted[i].key = sorted[i].keybuf;
    }
    free(order);
    free(out);
    out = sorted;
    snap->s = out;
    snap->n = n;
    return 0;
}

int fc_metrics_snapshot(fc_metrics_shm_t *m, fc_metrics_snapshot_t *snap)
{
    return fc_metrics_snapshot_of(m, snap, UINT32_MAX);
}

int fc_metrics_snapshot_of(fc_metrics_shm_t *m, fc_metrics_snapshot_t *snap, uint32_t families)
{
    for (int tries = 0; tries < SNAPSHOT_TRIES; tries++) {
        uint32_t before = atomic_load_explicit(&m->fold_seq, memory_order_acquire);
        if (before & 1) {
            struct timespec pause = {0, 200 * 1000};
            nanosleep(&pause, NULL);
            continue;
        }
        if (collect(m, snap, families) != 0) return -1;
        if (atomic_load_explicit(&m->fold_seq, memory_order_acquire) == before) return 0;
        fc_metrics_snapshot_free(snap);
    }
    return collect(m, snap, families); /* a master stuck mid-fold: answer with what is there */
}

void fc_metrics_snapshot_free(fc_metrics_snapshot_t *snap)
{
    free(snap->s);
    snap->s = NULL;
    snap->n = 0;
}

const fc_metrics_merged_t *fc_metrics_find(const fc_metrics_snapshot_t *snap, int family, const char *key)
{
    size_t lo = 0, hi = snap->n;
    fc_metrics_merged_t probe;
    probe.family = (uint8_t)family;
    probe.method = 0;
    probe.status = 0;
    snprintf(probe.keybuf, sizeof(probe.keybuf), "%s", key);
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = merged_cmp(&snap->s[mid], &probe);
        if (c == 0) return &snap->s[mid];
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

/* ---- the text exposition ---- */

typedef struct out {
    fc_buf_t *b;
    int failed;
    int openmetrics; /* OpenMetrics: families are named without their samples' suffix */
} out_t;

#define put(o, ...)                                                                                \
    do {                                                                                           \
        if (fc_buf_printf((o)->b, __VA_ARGS__) != 0) (o)->failed = 1;                              \
    } while (0)

/* The HELP and TYPE lines of family <name> (the name its samples have, without histogram suffixes).
 * OpenMetrics names a counter's family without the samples' _total and has an info type, whose
 * samples end in _info; the text format 0.0.4 names the family as its samples and has no info type
 * (a gauge of value 1, as before). Sample lines are the same in both formats. */
static void family(out_t *o, const char *name, const char *type, const char *help)
{
    size_t n = strlen(name);
    int info = strcmp(type, "info") == 0;
    if (o->openmetrics) {
        const char *suffix = info ? "_info" : strcmp(type, "counter") == 0 ? "_total" : "";
        size_t sl = strlen(suffix);
        if (sl > 0 && n > sl && strcmp(name + n - sl, suffix) == 0) n -= sl;
    } else if (info) {
        type = "gauge";
    }
    put(o, "# HELP %.*s %s\n# TYPE %.*s %s\n", (int)n, name, help, (int)n, name, type);
}

/* A label value with '\\', '"' and newlines escaped (names are restricted by the loader; this is
 * for safety only). */
static const char *esc(const char *s, char *buf, size_t n)
{
    size_t o = 0;
    for (; *s && o + 3 < n; s++) {
        if (*s == '\\' || *s == '"') buf[o++] = '\\';
        if (*s == '\n') {
            buf[o++] = '\\';
            buf[o++] = 'n';
            continue;
        }
        buf[o++] = *s;
    }
    buf[o] = '\0';
    return buf;
}

/* The upper bound as `le` prints it, the same way everywhere. */
static void le_text(double b, char *buf, size_t n) { snprintf(buf, n, "%.6g", b); }

static void histogram(out_t *o, const char *name, const char *labels, const uint64_t *v, const fc_metrics_conf_t *c)
{
    uint64_t cum = 0;
    char le[32];
    for (size_t i = 0; i < c->nbuckets; i++) {
        cum += v[FC_MV_HIST + i];
        le_text(c->buckets[i], le, sizeof(le));
        put(o, "%s_bucket{%s%sle=\"%s\"} %llu\n", name, labels, *labels ? "," : "", le, (unsigned long long)cum);
    }
    cum += v[FC_MV_HIST + c->nbuckets];
    put(o, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, labels, *labels ? "," : "", (unsigned long long)cum);
    put(o, "%s_sum{%s} %.9f\n", name, labels, (double)v[FC_MV_SUM] / 1e9);
    put(o, "%s_count{%s} %llu\n", name, labels, (unsigned long long)cum);
}

/* Splits "upstream/address" into its two halves (escaped) for labels. */
static void server_labels(const char *key, char *buf, size_t n)
{
    char up[FC_METRICS_KEY], e1[2 * FC_METRICS_KEY], e2[2 * FC_METRICS_KEY];
    const char *slash = strchr(key, '/');
    size_t ul = slash ? (size_t)(slash - key) : strlen(key);
    memcpy(up, key, ul);
    up[ul] = '\0';
    snprintf(buf, n, "upstream=\"%s\",server=\"%s\"", esc(up, e1, sizeof(e1)), esc(slash ? slash + 1 : "", e2, sizeof(e2)));
}

/* CPU seconds, resident bytes and open descriptors of process <pid>; 0 when it is gone. */
static int proc_stats(int pid, double *cpu, double *rss, double *fds)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (f == NULL) return -1;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *p = strrchr(buf, ')'); /* the command name may hold spaces */
    unsigned long long ut = 0, st = 0;
    long long rs = 0;
    if (p == NULL || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d %*d %*d %*d %*d %*d "
                                   "%*u %*u %lld",
                            &ut, &st, &rs) != 3)
        return -1;
    long hz = sysconf(_SC_CLK_TCK);
    *cpu += (double)(ut + st) / (double)(hz > 0 ? hz : 100);
    *rss += (double)rs * (double)sysconf(_SC_PAGESIZE);
    snprintf(path, sizeof(path), "/proc/%d/fd", pid);
    DIR *d = opendir(path);
    if (d != NULL) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL)
            if (e->d_name[0] != '.') *fds += 1;
        closedir(d);
    }
    return 0;
}

static const char *const code_classes[] = {"1xx", "2xx", "3xx", "4xx", "5xx"};
static const char *const error_kinds[] = {"error", "timeout", "http_status", "invalid_header"};
static const char *const client_reasons[] = {"header_timeout", "body_timeout", "send_timeout",
                                             "bad_request",    "too_large",    "client_closed"};
_Static_assert(sizeof(client_reasons) / sizeof(client_reasons[0]) == FC_MC_REASONS, "a name per reason");

/* The range of merged series of <family> in <snap>: [*lo, *hi). */
static void family_range(const fc_metrics_snapshot_t *snap, int fam, size_t *lo, size_t *hi)
{
    size_t i = 0;
    while (i < snap->n && snap->s[i].family < fam) i++;
    *lo = i;
    while (i < snap->n && snap->s[i].family == fam) i++;
    *hi = i;
}

/* The rate limits' own counters, kept in their tables (ratelimit.h), by policy. */
static void rate_limit_families(out_t *o, const fc_config_t *cfg, struct fc_rl_table *const *tables)
{
    char e[FC_METRICS_KEY * 2];
    family(o, "fulcrum_rate_limit_delayed_total", "counter", "Requests that waited their turn (delay), by policy.");
    for (size_t i = 0; i < cfg->nrate_limits; i++)
        put(o, "fulcrum_rate_limit_delayed_total{policy=\"%s\"} %llu\n", esc(cfg->rate_limits[i].name, e, sizeof(e)),
            (unsigned long long)atomic_load_explicit(&tables[i]->delayed, memory_order_relaxed));
    family(o, "fulcrum_rate_limit_evictions_total", "counter", "Buckets that made room for another key (max_keys), by policy.");
    for (size_t i = 0; i < cfg->nrate_limits; i++)
        put(o, "fulcrum_rate_limit_evictions_total{policy=\"%s\"} %llu\n", esc(cfg->rate_limits[i].name, e, sizeof(e)),
            (unsigned long long)atomic_load_explicit(&tables[i]->evicted, memory_order_relaxed));
    family(o, "fulcrum_rate_limit_store_errors_total", "counter",
           "Failed connections to and reconciliations with a policy's Redis store, by policy.");
    for (size_t i = 0; i < cfg->nrate_limits; i++)
        if (cfg->rate_limits[i].store != NULL)
            put(o, "fulcrum_rate_limit_store_errors_total{policy=\"%s\"} %llu\n", esc(cfg->rate_limits[i].name, e, sizeof(e)),
                (unsigned long long)atomic_load_explicit(&tables[i]->store_errors, memory_order_relaxed));
    family(o, "fulcrum_rate_limit_store_up", "gauge", "1 while a policy's Redis store answers, by policy.");
    for (size_t i = 0; i < cfg->nrate_limits; i++)
        if (cfg->rate_limits[i].store != NULL)
            put(o, "fulcrum_rate_limit_store_up{policy=\"%s\"} %u\n", esc(cfg->rate_limits[i].name, e, sizeof(e)),
                atomic_load_explicit(&tables[i]->store_down, memory_order_relaxed) ? 0u : 1u);
}

/* ---- content negotiation ---- */

static int is_ows(char c) { return c == ' ' || c == '\t'; }

/* <p>..<e> with optional white space and one pair of quotes taken off, compared with <lit>
 * ignoring case. */
static int token_is(const char *p, const char *e, const char *lit)
{
    while (p < e && is_ows(*p)) p++;
    while (e > p && is_ows(e[-1])) e--;
    if (e - p >= 2 && *p == '"' && e[-1] == '"') p++, e--;
    size_t n = strlen(lit);
    return (size_t)(e - p) == n && strncasecmp(p, lit, n) == 0;
}

int fc_metrics_wants_openmetrics(const char *a, size_t n)
{
    double om = -1, text = -1; /* the best q of each; -1: not acceptable */
    const char *end = a == NULL ? NULL : a + n;
    for (const char *p = a; p != NULL && p < end;) {
        const char *el = memchr(p, ',', (size_t)(end - p));
        if (el == NULL) el = end;
        const char *semi = memchr(p, ';', (size_t)(el - p));
        const char *type_end = semi != NULL ? semi : el;
        double q = 1;
        int version_ok = 1;
        for (const char *par = semi; par != NULL && par < el;) {
            const char *next = memchr(par + 1, ';', (size_t)(el - par - 1));
            if (next == NULL) next = el;
            const char *eq = memchr(par + 1, '=', (size_t)(next - par - 1));
            if (eq != NULL && token_is(par + 1, eq, "q")) {
                char num[16];
                size_t len = (size_t)(next - eq - 1) < sizeof(num) - 1 ? (size_t)(next - eq - 1) : sizeof(num) - 1;
                memcpy(num, eq + 1, len);
                num[len] = '\0';
                q = strtod(num, NULL);
            } else if (eq != NULL && token_is(par + 1, eq, "version")) {
                version_ok = token_is(eq + 1, next, "1.0.0");
            }
            par = next;
        }
        if (token_is(p, type_end, "application/openmetrics-text")) {
            if (version_ok && q > om) om = q;
        } else if (token_is(p, type_end, "text/plain") || token_is(p, type_end, "text/*") ||
                   token_is(p, type_end, "*/*")) {
            if (q > text) text = q;
        }
        p = el + 1;
    }
    return om > 0 && om >= text;
}

/* One server of the worker's configuration as a render sees it: what only the worker's loop may
 * read (the balancer's view, the loop's clock) is taken before the render leaves the loop. */
typedef struct render_server {
    char key[FC_METRICS_KEY]; /* "upstream/address" */
    fc_shm_server_t *st;      /* its shared state (atomics: read from any thread) */
    int up;                   /* may be chosen now */
    double weight;            /* the effective weight now */
} render_server_t;

/* One render of the exposition, from the loop to the thread pool and back. */
struct fc_metrics_job {
    uv_work_t req;                 /* on libuv's thread pool; req.data unused */
    fc_metrics_shm_t *m;           /* the segment (read with atomics) */
    fc_shm_t *shm;                 /* the shared state: connections, workers */
    const fc_config_t *cfg;        /* borrowed from the worker, which outlives the job (its loop runs
                                      until the job is done) */
    int openmetrics;               /* OpenMetrics 1.0.0 rather than the text format 0.0.4 */
    render_server_t *servers;      /* owned: the servers of cfg, in order */
    unsigned *queue_sizes;         /* owned: requests waiting per upstream of cfg, taken on the loop */
    struct fc_rl_table *const *rl_tables; /* borrowed from the worker: the rate limits' tables (shared
                                      mappings read with atomics), which outlive the job */
    size_t nservers;
    fc_buf_t out;                  /* owned: the text */
    int failed;                    /* out of memory: out is not to be sent */
    fc_metrics_done_cb done;       /* called on the loop when the text is ready */
    void *arg;
};

/* A job for <w>, with what only the loop may read taken now. NULL when out of memory. */
static fc_metrics_job_t *job_new(fc_worker_t *w, int openmetrics)
{
    const fc_config_t *cfg = w->cfg;
    size_t n = 0;
    for (size_t u = 0; u < cfg->nupstreams; u++) n += w->upstreams[u].conf->nservers;
    fc_metrics_job_t *j = calloc(1, sizeof(*j));
    render_server_t *rs = calloc(n ? n : 1, sizeof(*rs));
    unsigned *qs = calloc(cfg->nupstreams ? cfg->nupstreams : 1, sizeof(*qs));
    if (j == NULL || rs == NULL || qs == NULL || w->metrics.shm == NULL) {
        free(j);
        free(rs);
        free(qs);
        return NULL;
    }
    for (size_t u = 0; u < cfg->nupstreams; u++) qs[u] = fc_queue_size(&w->upstreams[u]);
    j->queue_sizes = qs;
    j->rl_tables = w->rl_tables;
    j->m = w->metrics.shm;
    j->shm = w->shm;
    j->cfg = cfg;
    j->openmetrics = openmetrics;
    j->servers = rs;
    j->nservers = n;
    uint64_t now_ms = uv_now(w->loop);
    for (size_t u = 0; u < cfg->nupstreams; u++) {
        fc_upstream_t *up = &w->upstreams[u];
        fc_upstream_refresh(up);
        for (size_t k = 0; k < up->conf->nservers; k++) {
            fc_server_t *s = &up->servers[k];
            if (s->vacant) continue; /* a position of a resolving name with no address now */
            uint64_t until = LOAD(s->st->failed_until);
            snprintf(rs->key, sizeof(rs->key), "%s/%s", up->conf->name, s->conf->addr.text);
            rs->st = s->st;
            rs->up = !s->conf->down && LOAD(s->st->healthy) && (until == 0 || now_ms >= until);
            rs->weight = s->conf->down ? 0.0 : (double)up->view[k].weight / FC_WEIGHT_SCALE;
            rs++;
        }
    }
    j->nservers = (size_t)(rs - j->servers);
    return j;
}

static void job_free(fc_metrics_job_t *j)
{
    fc_buf_free(&j->out);
    free(j->servers);
    free(j->queue_sizes);
    free(j);
}

/* Sums the blocks and formats everything into j->out: reads only the segment, the shared state and
 * the job, so it may run on any thread. */
static void job_format(fc_metrics_job_t *j)
{
    fc_metrics_shm_t *m = j->m;
    const fc_config_t *cfg = j->cfg;
    const fc_metrics_conf_t *mc = &cfg->metrics;
    fc_metrics_snapshot_t snap;
    if (fc_metrics_snapshot(m, &snap) != 0) {
        j->failed = 1;
        return;
    }
    out_t o = {&j->out, 0, j->openmetrics};
    char labels[512], e1[2 * FC_METRICS_KEY], e2[2 * FC_METRICS_KEY];
    size_t lo, hi;

    family(&o, "http_request_duration_seconds", "histogram",
           "Requests by method, route and status: the request head's first byte to the response's last byte.");
    family_range(&snap, FC_MF_ROUTE, &lo, &hi);
    for (size_t i = lo; i < hi; i++) {
        const fc_metrics_merged_t *s = &snap.s[i];
        snprintf(labels, sizeof(labels), "method=\"%s\",route=\"%s\",status=\"%03u\"",
                 fc_metrics_method_names[s->method % FC_METRICS_METHODS], esc(s->key, e1, sizeof(e1)), s->status);
        histogram(&o, "http_request_duration_seconds", labels, s->v, mc);
    }

    unsigned conns = 0;
    for (unsigned p = 0; p < FC_SHM_PROCS; p++) conns += LOAD(j->shm->conns[p]);
    family(&o, "http_active_connections", "gauge", "Open client connections, all workers together.");
    put(&o, "http_active_connections %u\n", conns);

    static const char *const conn_states[FC_MCS_STATES] = {"reading", "writing", "idle", "tls_handshake", "tunnel"};
    family(&o, "fulcrum_client_connections", "gauge",
           "Open client connections by state: reading a request head, writing (a request in progress), idle "
           "(keep-alive), tls_handshake, tunnel (after a 101).");
    for (unsigned k = 0; k < FC_MCS_STATES; k++)
        put(&o, "fulcrum_client_connections{state=\"%s\"} %llu\n", conn_states[k], (unsigned long long)snap.client_conns[k]);

    family(&o, "queue_size", "gauge", "Requests waiting for a server of the upstream named by queue.");
    for (size_t u = 0; u < cfg->nupstreams; u++)
        put(&o, "queue_size{queue=\"%s\"} %u\n", esc(cfg->upstreams[u].name, e1, sizeof(e1)), j->queue_sizes[u]);

    family(&o, "fulcrum_buffer_memory_bytes", "gauge",
           "Memory of response and request buffers (routes[].buffering, compressed read-ahead), all workers.");
    put(&o, "fulcrum_buffer_memory_bytes %llu\n", (unsigned long long)snap.buffer_bytes);
    family(&o, "fulcrum_buffering_skipped_total", "counter",
           "Exchanges that streamed instead of buffering because limits.buffer_memory was reached.");
    put(&o, "fulcrum_buffering_skipped_total %llu\n", (unsigned long long)snap.buffering_skipped);
    family(&o, "fulcrum_connections_refused_total", "counter",
           "Client connections closed at accept by a limit: limits.max_connections (per worker) or "
           "limits.max_connections_per_client (503 first on a plain listener).");
    put(&o, "fulcrum_connections_refused_total{limit=\"max_connections\"} %llu\n", (unsigned long long)snap.conns_refused[0]);
    put(&o, "fulcrum_connections_refused_total{limit=\"max_connections_per_client\"} %llu\n",
        (unsigned long long)snap.conns_refused[1]);

    family_range(&snap, FC_MF_SERVER, &lo, &hi);
    family(&o, "fulcrum_upstream_request_duration_seconds", "histogram",
           "Requests to a server: handed to its connection to the response read whole.");
    for (size_t i = lo; i < hi; i++) {
        server_labels(snap.s[i].key, labels, sizeof(labels));
        histogram(&o, "fulcrum_upstream_request_duration_seconds", labels, snap.s[i].v, mc);
    }
    family(&o, "fulcrum_upstream_responses_total", "counter", "Response heads received from a server, by class.");
    for (size_t i = lo; i < hi; i++) {
        server_labels(snap.s[i].key, labels, sizeof(labels));
        for (unsigned c = 0; c < 5; c++)
            put(&o, "fulcrum_upstream_responses_total{%s,code_class=\"%s\"} %llu\n", labels, code_classes[c],
                (unsigned long long)snap.s[i].v[FC_MV_RESP + c]);
    }
    family(&o, "fulcrum_upstream_errors_total", "counter", "Failed attempts on a server, by kind.");
    for (size_t i = lo; i < hi; i++) {
        server_labels(snap.s[i].key, labels, sizeof(labels));
        for (unsigned k = 0; k < 4; k++)
            put(&o, "fulcrum_upstream_errors_total{%s,kind=\"%s\"} %llu\n", labels, error_kinds[k],
                (unsigned long long)snap.s[i].v[FC_MV_ERR + k]);
    }
    family(&o, "fulcrum_upstream_connections_opened_total", "counter", "Connections opened to a server.");
    for (size_t i = lo; i < hi; i++) {
        server_labels(snap.s[i].key, labels, sizeof(labels));
        put(&o, "fulcrum_upstream_connections_opened_total{%s} %llu\n", labels,
            (unsigned long long)snap.s[i].v[FC_MV_OPENED]);
    }

    family_range(&snap, FC_MF_UPSTREAM, &lo, &hi);
    family(&o, "fulcrum_upstream_connect_duration_seconds", "histogram", "Connects to the servers of an upstream.");
    for (size_t i = lo; i < hi; i++) {
        snprintf(labels, sizeof(labels), "upstream=\"%s\"", esc(snap.s[i].key, e1, sizeof(e1)));
        histogram(&o, "fulcrum_upstream_connect_duration_seconds", labels, snap.s[i].v, mc);
    }
    family(&o, "fulcrum_upstream_retries_total", "counter", "Requests sent again, to another server or connection.");
    for (size_t i = lo; i < hi; i++)
        put(&o, "fulcrum_upstream_retries_total{upstream=\"%s\"} %llu\n", esc(snap.s[i].key, e1, sizeof(e1)),
            (unsigned long long)snap.s[i].v[FC_MV_RETRIES]);

    /* Gauges of the servers of this configuration. */
    family(&o, "fulcrum_upstream_connections", "gauge", "Connections to a server: carrying a request, or idle in the pool.");
    for (size_t i = 0; i < j->nservers; i++) {
        const render_server_t *rs = &j->servers[i];
        const fc_metrics_merged_t *ms = fc_metrics_find(&snap, FC_MF_SERVER, rs->key);
        server_labels(rs->key, labels, sizeof(labels));
        put(&o, "fulcrum_upstream_connections{%s,state=\"active\"} %u\n", labels, LOAD(rs->st->active));
        put(&o, "fulcrum_upstream_connections{%s,state=\"idle\"} %llu\n", labels,
            (unsigned long long)(ms ? ms->v[FC_MV_IDLE] : 0));
    }
    static const struct {
        const char *name, *type, *help;
    } per_server[] = {
        {"fulcrum_upstream_in_flight_requests", "gauge", "Requests in flight to a server."},
        {"fulcrum_server_up", "gauge", "1 when the server may be chosen (not down, healthy, not out after failures)."},
        {"fulcrum_server_effective_weight", "gauge", "The weight the balancer uses now (slow_start ramps it)."},
        {"fulcrum_server_health_transitions_total", "counter", "Changes of a server's state, by the state it went to."},
        {"fulcrum_server_last_transition_timestamp_seconds", "gauge", "When the server's state last changed (0: never)."},
        {"fulcrum_health_checks_total", "counter", "Active health checks of a server, by result."},
    };
    for (size_t f = 0; f < FC_ARRAY_LEN(per_server); f++) {
        family(&o, per_server[f].name, per_server[f].type, per_server[f].help);
        for (size_t i = 0; i < j->nservers; i++) {
            const render_server_t *rs = &j->servers[i];
            fc_shm_server_t *st = rs->st;
            server_labels(rs->key, labels, sizeof(labels));
            const char *n = per_server[f].name;
            switch (f) {
            case 0: put(&o, "%s{%s} %u\n", n, labels, LOAD(st->active)); break;
            case 1: put(&o, "%s{%s} %d\n", n, labels, rs->up); break;
            case 2: put(&o, "%s{%s} %g\n", n, labels, rs->weight); break;
            case 3:
                put(&o, "%s{%s,to=\"up\"} %llu\n%s{%s,to=\"down\"} %llu\n", n, labels, LOAD(st->to_up), n, labels,
                    LOAD(st->to_down));
                break;
            case 4: put(&o, "%s{%s} %llu\n", n, labels, LOAD(st->last_transition)); break;
            default:
                put(&o, "%s{%s,result=\"success\"} %llu\n%s{%s,result=\"failure\"} %llu\n", n, labels,
                    LOAD(st->checks_ok), n, labels, LOAD(st->checks_failed));
                break;
            }
        }
    }

    family_range(&snap, FC_MF_LISTENER, &lo, &hi);
    family(&o, "fulcrum_connections_accepted_total", "counter", "Client connections accepted, by listener.");
    for (size_t i = lo; i < hi; i++)
        put(&o, "fulcrum_connections_accepted_total{listener=\"%s\"} %llu\n", esc(snap.s[i].key, e1, sizeof(e1)),
            (unsigned long long)snap.s[i].v[FC_MV_ACCEPTED]);
    family(&o, "fulcrum_tls_handshakes_total", "counter", "TLS handshakes on a listener, by result.");
    for (size_t i = lo; i < hi; i++) {
        esc(snap.s[i].key, e1, sizeof(e1));
        put(&o, "fulcrum_tls_handshakes_total{listener=\"%s\",result=\"success\"} %llu\n", e1,
            (unsigned long long)snap.s[i].v[FC_MV_TLS_OK]);
        put(&o, "fulcrum_tls_handshakes_total{listener=\"%s\",result=\"failure\"} %llu\n", e1,
            (unsigned long long)snap.s[i].v[FC_MV_TLS_FAIL]);
    }

    family(&o, "fulcrum_client_errors_total", "counter", "Requests that ended early because of the client, by reason.");
    for (unsigned r = 0; r < FC_MC_REASONS; r++)
        put(&o, "fulcrum_client_errors_total{reason=\"%s\"} %llu\n", client_reasons[r],
            (unsigned long long)snap.client_errors[r]);
    family(&o, "fulcrum_rate_limited_requests_total", "counter", "Requests a rate limit rejected, by route.");
    family_range(&snap, FC_MF_RATELIMIT, &lo, &hi);
    for (size_t i = lo; i < hi; i++)
        put(&o, "fulcrum_rate_limited_requests_total{route=\"%s\"} %llu\n", esc(snap.s[i].key, e1, sizeof(e1)),
            (unsigned long long)snap.s[i].v[0]);
    for (size_t r = 0; r < cfg->nroutes; r++) { /* present, at 0, for the routes nothing was rejected on */
        size_t prev = 0;
        while (prev < r && strcmp(cfg->routes[prev].name, cfg->routes[r].name) != 0) prev++;
        if (prev == r && fc_metrics_find(&snap, FC_MF_RATELIMIT, cfg->routes[r].name) == NULL)
            put(&o, "fulcrum_rate_limited_requests_total{route=\"%s\"} 0\n", esc(cfg->routes[r].name, e1, sizeof(e1)));
    }

    rate_limit_families(&o, cfg, j->rl_tables);

    family(&o, "fulcrum_config_reloads_total", "counter", "Configuration reloads (SIGHUP), by result.");
    put(&o, "fulcrum_config_reloads_total{result=\"success\"} %llu\n", (unsigned long long)LOAD(m->reloads_ok));
    put(&o, "fulcrum_config_reloads_total{result=\"failure\"} %llu\n", (unsigned long long)LOAD(m->reloads_failed));
    family(&o, "fulcrum_config_last_reload_successful", "gauge", "1 when the last reload succeeded (or none was tried).");
    put(&o, "fulcrum_config_last_reload_successful %llu\n", (unsigned long long)LOAD(m->last_reload_ok));
    family(&o, "fulcrum_config_last_reload_success_timestamp_seconds", "gauge", "When a configuration was last loaded.");
    put(&o, "fulcrum_config_last_reload_success_timestamp_seconds %llu\n", (unsigned long long)LOAD(m->last_reload_ok_time));
    family(&o, "fulcrum_workers", "gauge", "Worker processes of the serving generation.");
    put(&o, "fulcrum_workers %u\n", LOAD(j->shm->nworkers));
    family(&o, "fulcrum_worker_restarts_total", "counter", "Workers of the serving generation that died and were replaced.");
    put(&o, "fulcrum_worker_restarts_total %llu\n", (unsigned long long)LOAD(m->worker_restarts));
    family(&o, "fulcrum_metrics_series_dropped_total", "counter", "Series not kept because metrics.max_series was reached.");
    put(&o, "fulcrum_metrics_series_dropped_total %llu\n", (unsigned long long)snap.dropped);
    family(&o, "fulcrum_build_info", "info", "The version of fulcrum and of the libraries it runs on.");
    put(&o, "fulcrum_build_info{version=\"%s\",libuv=\"%s\",openssl=\"%s\"} 1\n", FC_VERSION, uv_version_string(),
        esc(OPENSSL_VERSION_TEXT, e2, sizeof(e2)));

    double cpu = 0, rss = 0, fds = 0;
    proc_stats(m->master_pid, &cpu, &rss, &fds);
    for (unsigned b = 0; b < FC_SHM_PROCS; b++)
        if (snap.pids[b] > 0) proc_stats(snap.pids[b], &cpu, &rss, &fds);
    struct rlimit rl;
    double maxfds = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY ? (double)rl.rlim_cur : -1;
    family(&o, "process_cpu_seconds_total", "counter", "User and system CPU time of the master and the workers.");
    put(&o, "process_cpu_seconds_total %.2f\n", cpu + (double)LOAD(m->retired_cpu_us) / 1e6);
    family(&o, "process_resident_memory_bytes", "gauge", "Resident memory of the master and the workers.");
    put(&o, "process_resident_memory_bytes %.0f\n", rss);
    family(&o, "process_open_fds", "gauge", "Open file descriptors of the master and the workers.");
    put(&o, "process_open_fds %.0f\n", fds);
    family(&o, "process_max_fds", "gauge", "The descriptor limit of a worker.");
    put(&o, "process_max_fds %.0f\n", maxfds);
    family(&o, "process_start_time_seconds", "gauge", "When the master started (a reload keeps it).");
    put(&o, "process_start_time_seconds %llu\n", (unsigned long long)m->start_time);
    if (j->openmetrics) put(&o, "# EOF\n");
    fc_metrics_snapshot_free(&snap);
    j->failed = o.failed;
}

static const char *content_type(const fc_metrics_job_t *j)
{
    return j->openmetrics ? "application/openmetrics-text; version=1.0.0; charset=utf-8"
                          : "text/plain; version=0.0.4; charset=utf-8";
}

static void on_job_work(uv_work_t *req) { job_format(fc_container_of(req, fc_metrics_job_t, req)); }

static void on_job_done(uv_work_t *req, int status)
{
    fc_metrics_job_t *j = fc_container_of(req, fc_metrics_job_t, req);
    j->done(j->arg, status == 0 && !j->failed ? &j->out : NULL, content_type(j));
    job_free(j);
}

int fc_metrics_render_start(fc_worker_t *w, int openmetrics, fc_metrics_done_cb done, void *arg)
{
    fc_metrics_job_t *j = job_new(w, openmetrics);
    if (j == NULL) return UV_ENOMEM;
    j->done = done;
    j->arg = arg;
    int r = uv_queue_work(w->loop, &j->req, on_job_work, on_job_done);
    if (r != 0) job_free(j);
    return r;
}
