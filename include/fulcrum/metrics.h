/* metrics.h: counters and histograms in shared memory, one block per worker process slot,
 * written only by the worker that owns the slot (a few plain adds per request into its own cache
 * lines: no lock, no allocation, no formatting); a scrape by any worker sums every block. When the
 * master reaps a worker it folds that worker's block into the retired block, so no counter goes
 * down across a reload or a crash. Series are keyed by names (route name, "upstream/server",
 * upstream name, listener address), never by positions, so a reload keeps the series that stay.
 * This module also renders the exposition (Prometheus text 0.0.4 or OpenMetrics 1.0.0) and the
 * merged view the status page reads (status.c). */
#ifndef FULCRUM_METRICS_H
#define FULCRUM_METRICS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "fulcrum/buf.h"
#include "fulcrum/config.h"
#include "fulcrum/shm.h"

#define FC_METRICS_BLOCKS (FC_SHM_PROCS + 1) /* a block per process slot, then the retired block */
#define FC_METRICS_RETIRED FC_SHM_PROCS
#define FC_METRICS_KEY FC_SHM_KEY            /* room for "upstream/address", the longest key */
#define FC_METRICS_VALUES 30
#define FC_METRICS_METHODS 10                /* the 9 standard methods, then OTHER */

enum fc_metrics_family {
    FC_MF_ROUTE = 1, /* key: route name (empty: no route); method, status; request histogram */
    FC_MF_SERVER,    /* key: "upstream/address"; upstream histogram, responses, errors, opened, idle */
    FC_MF_UPSTREAM,  /* key: upstream name; connect histogram, retries */
    FC_MF_LISTENER,  /* key: listener address; accepted, TLS handshakes */
    FC_MF_RATELIMIT, /* key: route name; v[0]: requests a rate limit rejected */
};

/* Value slots of a series. A histogram keeps one count per bucket (not cumulative: each
 * observation adds to one slot), the one past the last finite bound being +Inf; the renderer
 * accumulates, so _count always equals the +Inf bucket. */
enum {
    FC_MV_HIST = 0,                              /* FC_METRICS_MAX_BUCKETS + 1 counts */
    FC_MV_SUM = FC_MV_HIST + FC_METRICS_MAX_BUCKETS + 1, /* sum of the observations, ns */
    FC_MV_RESP,                                  /* server: responses by class 1xx..5xx (5 slots) */
    FC_MV_ERR = FC_MV_RESP + 5,                  /* server: errors by fc_fail_kind - 1 (4 slots) */
    FC_MV_OPENED = FC_MV_ERR + 4,                /* server: connections opened */
    FC_MV_IDLE,                                  /* server: idle pooled connections (a gauge, set every second: not folded) */
    FC_MV_RETRIES = FC_MV_RESP,                  /* upstream: requests sent to another server */
    FC_MV_ACCEPTED = 0,                          /* listener: connections accepted */
    FC_MV_TLS_OK,                                /* listener: TLS handshakes completed */
    FC_MV_TLS_FAIL,                              /* listener: TLS handshakes failed */
};
_Static_assert(FC_MV_IDLE < FC_METRICS_VALUES, "the value slots fit");

/* Why a client's request ended early, for fulcrum_client_errors_total{reason}. */
enum fc_metrics_client_reason {
    FC_MC_HEADER_TIMEOUT = 0, FC_MC_BODY_TIMEOUT, FC_MC_SEND_TIMEOUT, FC_MC_BAD_REQUEST, FC_MC_TOO_LARGE,
    FC_MC_CLOSED, FC_MC_REASONS
};

/* What a client connection is doing, for fulcrum_client_connections{state} (a gauge: each worker
 * keeps the counts of its own connections in its block, a scrape sums them). */
enum fc_metrics_conn_state {
    FC_MCS_READING = 0, /* reading a request head */
    FC_MCS_WRITING,     /* an exchange in progress (its body read, the server asked, the answer
                           written), or its answer out and the connection lingering to close */
    FC_MCS_IDLE,        /* keep-alive, between requests (a new connection before its first byte too) */
    FC_MCS_HANDSHAKE,   /* a TLS handshake in progress */
    FC_MCS_TUNNEL,      /* a side of a tunnel after a 101, or a TLS connection relayed to a newer generation */
    FC_MCS_STATES,
    FC_MCS_NONE = 0xff, /* not counted (closing) */
};

typedef struct fc_metrics_series {
    uint8_t family;           /* enum fc_metrics_family; 0 = unused */
    uint8_t method;           /* route: index in the method names (FC_METRICS_METHODS - 1 = OTHER) */
    uint16_t status;          /* route: the status sent */
    char key[FC_METRICS_KEY]; /* see enum fc_metrics_family */
    _Atomic uint64_t v[FC_METRICS_VALUES]; /* written by the block's owner only (relaxed loads and stores) */
} __attribute__((aligned(64))) fc_metrics_series_t;

/* The head of one block; its series follow in the segment (fc_metrics_series_at). */
typedef struct fc_metrics_block {
    _Atomic uint32_t nseries;  /* series in use, published with release after the key is written */
    _Atomic uint32_t folded;   /* 1: counted in the retired block (or never used): scrapes skip it */
    _Atomic int32_t pid;       /* the worker's pid (process metrics), 0 = none */
    _Atomic uint64_t dropped;  /* series not made because max_series was reached */
    _Atomic uint64_t client_errors[FC_MC_REASONS];
    _Atomic uint32_t client_conns[FC_MCS_STATES]; /* a gauge: the owner's client connections by state
                                                     (not folded: a gone process has none) */
    _Atomic uint64_t buffer_bytes;      /* a gauge: response and request buffer memory of the owner now,
                                           published every second (not folded) */
    _Atomic uint64_t buffering_skipped; /* exchanges that streamed because limits.buffer_memory was reached */
    _Atomic uint64_t conns_refused[2];  /* connections closed at accept: [0] limits.max_connections,
                                           [1] limits.max_connections_per_client */
} __attribute__((aligned(64))) fc_metrics_block_t;

/* The segment: written per request only in the blocks; the rest by the master. */
typedef struct fc_metrics_shm {
    _Atomic uint32_t fold_seq;        /* odd while the master folds a block (scrapes retry) */
    uint32_t cap;                     /* series per block: max_series of the first configuration */
    size_t size;                      /* bytes mapped */
    _Atomic uint64_t reloads_ok, reloads_failed;
    _Atomic uint64_t last_reload_ok;  /* 1 when the last reload succeeded (or there was none) */
    _Atomic uint64_t last_reload_ok_time; /* unix seconds of the last successful (re)load */
    _Atomic uint64_t worker_restarts; /* workers of the serving generation that died and were replaced */
    _Atomic uint64_t retired_cpu_us;  /* CPU time of the workers reaped so far (wait4), so the sum never
                                         goes down when one leaves */
    uint64_t start_time;              /* unix seconds the master started (a reload keeps it) */
    int32_t master_pid;
    fc_metrics_block_t blocks[FC_METRICS_BLOCKS];
} fc_metrics_shm_t;

/* A worker's handle on its own block, and its index of route series. */
typedef struct fc_metrics_local {
    fc_metrics_shm_t *shm;          /* NULL: metrics are off in this worker */
    fc_metrics_block_t *block;      /* its own block */
    fc_metrics_series_t *series;    /* the block's series */
    const fc_metrics_conf_t *conf;  /* buckets */
    uint32_t *index;                /* owned: open-addressing table (route, method, status) -> series + 1 */
    uint32_t *index_keys;           /* owned: the key of each index entry */
    uint32_t index_cap, index_used; /* entries (a power of two), used */
    int dropped_logged;             /* max_series was reached and said so */
    uint32_t last_key;              /* the route key looked up last (0 = none) ... */
    fc_metrics_series_t *last;      /* ... and its series */
    fc_metrics_series_t **rate_limited; /* owned array per route: its FC_MF_RATELIMIT series, made
                                           at the first rejection */
    size_t nroutes;
} fc_metrics_local_t;

/* Maps the segment with room for <cap> series per block (the master, once, before forking).
 * Returns NULL with errno set. */
fc_metrics_shm_t *fc_metrics_shm_create(uint64_t cap);
void fc_metrics_shm_destroy(fc_metrics_shm_t *m);
/* The first series of block <b>. */
fc_metrics_series_t *fc_metrics_series_at(fc_metrics_shm_t *m, unsigned b);

/* The master, before forking worker process slot <proc>: an empty block for it. */
void fc_metrics_claim(fc_metrics_shm_t *m, unsigned proc);
/* The master, after reaping process slot <proc>: adds its counters to the retired block and
 * empties it; scrapes meanwhile retry (fold_seq). */
void fc_metrics_fold(fc_metrics_shm_t *m, unsigned proc);

/* A worker: takes its block (slot <proc>) for <cfg>, making the series of every server, upstream
 * and listener. Returns 0 or -1 (out of memory). */
int fc_metrics_local_init(fc_metrics_local_t *l, fc_metrics_shm_t *m, unsigned proc, const fc_config_t *cfg);
void fc_metrics_local_free(fc_metrics_local_t *l);
/* The series of <family> and <key> (method and status for routes) in the worker's own block,
 * made when missing; NULL when max_series is reached (counted, and logged once). */
fc_metrics_series_t *fc_metrics_local_series(fc_metrics_local_t *l, int family, const char *key, unsigned method,
                                             unsigned status);
/* The route series of route index <route> (its <name>), <method>, <status>: found through the
 * worker's index (the hot path), made when missing. NULL when max_series is reached. */
/* Counts a request of route index <route> (named <name>) that a rate limit rejected. */
void fc_metrics_rate_limited(fc_metrics_local_t *l, size_t route, const char *name);

fc_metrics_series_t *fc__metrics_route_slow(fc_metrics_local_t *l, uint32_t key, const char *name, unsigned method,
                                            unsigned status);

static inline uint32_t fc_metrics_route_key(uint32_t route, unsigned method, unsigned status)
{
    return (route << 14 | method << 10 | status) + 1; /* 0 marks a free entry */
}

static inline fc_metrics_series_t *fc_metrics_route(fc_metrics_local_t *l, uint32_t route, const char *name,
                                                    unsigned method, unsigned status)
{
    uint32_t key = fc_metrics_route_key(route, method, status);
    if (key == l->last_key) return l->last; /* the same as the request before: the common case */
    uint32_t mask = l->index_cap - 1, i = (key * 2654435761u) & mask;
    while (l->index_keys[i] != 0) {
        if (l->index_keys[i] == key) {
            l->last_key = key;
            return l->last = &l->series[l->index[i] - 1];
        }
        i = (i + 1) & mask;
    }
    return fc__metrics_route_slow(l, key, name, method, status);
}

/* Adds <n> to value <i> of <s>: the owner is the only writer, so a plain load and store. */
static inline void fc_metrics_add(fc_metrics_series_t *s, unsigned i, uint64_t n)
{
    atomic_store_explicit(&s->v[i], atomic_load_explicit(&s->v[i], memory_order_relaxed) + n, memory_order_relaxed);
}

static inline void fc_metrics_set(fc_metrics_series_t *s, unsigned i, uint64_t n)
{
    atomic_store_explicit(&s->v[i], n, memory_order_relaxed);
}

/* Counts <ns> in histogram of <s> with the bounds of <c>. */
static inline void fc_metrics_observe(fc_metrics_series_t *s, const fc_metrics_conf_t *c, uint64_t ns)
{
    unsigned b = 0, n = (unsigned)c->nbuckets;
    while (b < n && ns > c->bucket_ns[b]) b++;
    fc_metrics_add(s, FC_MV_HIST + b, 1);
    fc_metrics_add(s, FC_MV_SUM, ns);
}

/* A client connection of this worker went from state <from> to <to> (enum fc_metrics_conn_state). */
static inline void fc_metrics_conn_move(fc_metrics_local_t *l, unsigned from, unsigned to)
{
    if (l->block == NULL || from == to) return;
    _Atomic uint32_t *v = l->block->client_conns;
    if (from != FC_MCS_NONE)
        atomic_store_explicit(&v[from], atomic_load_explicit(&v[from], memory_order_relaxed) - 1, memory_order_relaxed);
    if (to != FC_MCS_NONE)
        atomic_store_explicit(&v[to], atomic_load_explicit(&v[to], memory_order_relaxed) + 1, memory_order_relaxed);
}

/* An exchange of this worker streamed instead of buffering (limits.buffer_memory reached). */
static inline void fc_metrics_buffering_skipped(fc_metrics_local_t *l)
{
    if (l->block == NULL) return;
    _Atomic uint64_t *v = &l->block->buffering_skipped;
    atomic_store_explicit(v, atomic_load_explicit(v, memory_order_relaxed) + 1, memory_order_relaxed);
}

/* A connection was closed at accept by limits.max_connections (<per_client> 0) or
 * limits.max_connections_per_client (1). */
static inline void fc_metrics_conn_refused(fc_metrics_local_t *l, unsigned per_client)
{
    if (l->block == NULL) return;
    _Atomic uint64_t *v = &l->block->conns_refused[per_client];
    atomic_store_explicit(v, atomic_load_explicit(v, memory_order_relaxed) + 1, memory_order_relaxed);
}

static inline void fc_metrics_client_error(fc_metrics_local_t *l, unsigned reason)
{
    _Atomic uint64_t *v = &l->block->client_errors[reason];
    atomic_store_explicit(v, atomic_load_explicit(v, memory_order_relaxed) + 1, memory_order_relaxed);
}

/* The index of llhttp method <m> among the method label values (OTHER for the rest), and the names. */
static inline unsigned fc_metrics_method(int m)
{
    /* llhttp's numbers: DELETE 0, GET 1, HEAD 2, POST 3, PUT 4, CONNECT 5, OPTIONS 6, TRACE 7, PATCH 28. */
    static const uint8_t map[29] = {4, 0, 1, 2, 3, 5, 6, 7, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 8};
    return m >= 0 && m < 29 ? map[m] : FC_METRICS_METHODS - 1;
}
extern const char *const fc_metrics_method_names[FC_METRICS_METHODS];

/* ---- the merged view: every live block and the retired one, summed by key ---- */

typedef struct fc_metrics_merged {
    uint8_t family, method;
    uint16_t status;
    const char *key;                 /* borrowed from the segment, valid while no fold reuses it; copied */
    char keybuf[FC_METRICS_KEY];
    uint64_t v[FC_METRICS_VALUES];
} fc_metrics_merged_t;

typedef struct fc_metrics_snapshot {
    fc_metrics_merged_t *s;          /* owned array, sorted by family, key, method, status */
    size_t n;
    uint64_t dropped;                /* summed over the blocks */
    uint64_t client_errors[FC_MC_REASONS];
    uint64_t client_conns[FC_MCS_STATES];
    uint64_t buffer_bytes, buffering_skipped;
    uint64_t conns_refused[2];
    int32_t pids[FC_METRICS_BLOCKS]; /* worker pids of the live blocks, 0 = none */
} fc_metrics_snapshot_t;

/* Sums the blocks of <m> into <snap> (consistent with the folds: retried while one runs). Returns
 * 0 or -1 (out of memory). */
int fc_metrics_snapshot(fc_metrics_shm_t *m, fc_metrics_snapshot_t *snap);
/* The same with only the series of the families in <families> (bit 1 << FC_MF_x each): the status
 * page reads the servers' series only, and skips the cost of the route series. */
int fc_metrics_snapshot_of(fc_metrics_shm_t *m, fc_metrics_snapshot_t *snap, uint32_t families);
void fc_metrics_snapshot_free(fc_metrics_snapshot_t *snap);
/* The merged series of <family> and <key> (method and status 0 for the others), or NULL. */
const fc_metrics_merged_t *fc_metrics_find(const fc_metrics_snapshot_t *snap, int family, const char *key);

struct fc_worker;
/* Called on the worker's loop with the rendered <text> (NULL when out of memory) and its
 * <content_type>, valid until this returns; the callee may take the memory of <text> (and leave
 * *<text> empty), which saves copying megabytes. */
typedef void (*fc_metrics_done_cb)(void *arg, fc_buf_t *text, const char *content_type);
typedef struct fc_metrics_job fc_metrics_job_t;
/* Renders the exposition of everything, as seen by worker <w>: the Prometheus text format 0.0.4,
 * or OpenMetrics 1.0.0 when <openmetrics>. Off the event loop, so that a scrape of many series
 * never stalls the worker's other connections: what only the loop may read (the balancer's view
 * of each server) is copied now; summing the blocks and formatting run on libuv's thread pool,
 * which reads only the shared segment, the configuration and the copy. Returns 0, and <done>(<arg>, ...) is called exactly
 * once, later, on the loop; or a negative libuv code, and <done> is never called. */
int fc_metrics_render_start(struct fc_worker *w, int openmetrics, fc_metrics_done_cb done, void *arg);

/* 1 when the Accept field value <accept> (<n> bytes; NULL: none) prefers OpenMetrics 1.0.0 to the
 * text format: application/openmetrics-text with version 1.0.0 or none, q above 0, and at least
 * the q of text/plain. */
int fc_metrics_wants_openmetrics(const char *accept, size_t n);

#endif
