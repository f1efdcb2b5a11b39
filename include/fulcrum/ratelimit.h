/* ratelimit.h: the token buckets of `rate_limits` and the wait of a delayed request.
 * Each policy has its own table in a shared mapping of its own, made by the master before it
 * forks the workers that use it and sized by the policy's max_keys: sets of FC_RL_WAYS buckets,
 * the least recently used bucket of a set making room for a new key. A set's lock is only tried
 * (trylock.h) and held for a few arithmetic steps, never across a syscall. A policy that stays
 * across a reload (same name, same max_keys) keeps its table and so its buckets.
 * With a Redis store (redis_store.c) the table is also the local view of the shared bucket: each
 * bucket counts what it took since the last reconciliation, and the reconciliation writes the
 * shared state back into it. */
#ifndef FULCRUM_RATELIMIT_H
#define FULCRUM_RATELIMIT_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "fulcrum/config.h"

#define FC_RL_WAYS 8 /* buckets per set: the LRU is exact within a set */

typedef struct fc_rl_bucket {
    uint64_t key;        /* a hash of the policy name and the request's key; 0 = free */
    double tokens;       /* what the bucket holds at <at> (below 0: a debt a Redis store reported) */
    uint64_t at;         /* CLOCK_MONOTONIC ms of the last refill */
    uint64_t used;       /* the set's tick at the last use: the least recently used bucket goes first */
    uint32_t taken;      /* tokens taken since the key came in (wraps; only differences count) */
    uint32_t synced;     /* <taken> as last told to the store */
    uint32_t dirty;      /* used since the store last looked */
    uint32_t pad_;
} fc_rl_bucket_t;

typedef struct fc_rl_set {
    atomic_uint lock;    /* trylock.h */
    uint32_t pad_;
    uint64_t tick;       /* uses of the set, for the LRU order */
    fc_rl_bucket_t ways[FC_RL_WAYS];
} fc_rl_set_t;

/* The head of a policy's mapping, then its sets, then a bit per set: touched since the store's
 * reconciliation looked (the reconciliation reads only the sets marked). */
typedef struct fc_rl_table {
    size_t bytes;               /* the size of the mapping */
    uint32_t nsets;             /* max_keys / FC_RL_WAYS, rounded up */
    uint32_t refs;              /* generations using it; master only */
    char name[FC_UPSTREAM_NAME_MAX + 1]; /* the policy's name; master only */
    uint64_t seed;              /* FNV-1a of the name and a NUL: a key's hash goes on from here */
    atomic_uint store_down;     /* 1 while the Redis store is unreachable (written by its syncer) */
    atomic_ullong store_errors; /* failed connections and batches, all time (written by its syncer) */
    atomic_ullong delayed;      /* requests that waited their turn (delay), all workers */
    atomic_ullong evicted;      /* buckets that made room for another key */
    fc_rl_set_t *sets;          /* inside the mapping */
    atomic_ullong *marks;       /* inside the mapping: nsets bits */
} fc_rl_table_t;

/* The master's tables, by policy name (kept across reloads while a generation uses them). */
typedef struct fc_rl_registry {
    fc_rl_table_t **tables;     /* owned array of mapped tables */
    size_t n;
} fc_rl_registry_t;

/* Finds or maps the table of each policy of <cfg> into <out> (cfg->nrate_limits entries, in
 * policy order). Returns 0, or -1 with <err> set and nothing taken. */
int fc_rl_assign(fc_rl_registry_t *reg, const fc_config_t *cfg, fc_rl_table_t **out, fc_err_t *err);
/* Drops what fc_rl_assign took for <cfg>; a table no generation uses is unmapped (the workers
 * that still have it keep their own mapping). */
void fc_rl_release(fc_rl_registry_t *reg, const fc_config_t *cfg, fc_rl_table_t **tables);
/* Unmaps every table (the master, at exit). <unmap> 0: only frees the array (a worker's copy). */
void fc_rl_registry_free(fc_rl_registry_t *reg, int unmap);

enum fc_rl_verdict { FC_RL_PASS = 0, FC_RL_DELAY, FC_RL_REJECT };

/* Takes a token of policy <r> from the bucket of <key> at <now> (ms). FC_RL_PASS: taken, go on;
 * FC_RL_DELAY: taken, go on after *<wait_ms> (never above <max_wait> ms); FC_RL_REJECT: nothing
 * taken, a token is back (or the wait would fit) in *<wait_ms>. *<left> is what the bucket holds
 * after. A new key starts with a full bucket; a set found locked counts as a pass (fail open). */
int fc_rl_take(fc_rl_table_t *t, uint64_t key, const fc_rate_limit_conf_t *r, uint64_t now, uint64_t max_wait,
               double *left, uint64_t *wait_ms);

/* fc_rl_take for a request of <route>: its wait bounded by max_delay and by the route's request
 * deadline, and a rejection while the policy's Redis store is down and on_error is deny. */
int fc_rl_admit(fc_rl_table_t *t, const fc_rate_limit_conf_t *r, const fc_route_conf_t *route, uint64_t key,
                uint64_t now, double *left, uint64_t *wait_ms);

/* ---- the reconciliation's view of a table (redis_store.c) ---- */

typedef struct fc_rl_pending {
    uint64_t key;        /* the bucket's key when collected */
    uint32_t set, way;   /* where it was */
    uint32_t taken;      /* its <taken> when collected */
    uint32_t delta;      /* tokens taken locally since the previous collection */
} fc_rl_pending_t;

/* Collects up to <max> buckets used since the last collection into <out> (their deltas are now
 * counted as told). Returns how many. */
size_t fc_rl_collect(fc_rl_table_t *t, fc_rl_pending_t *out, size_t max);
/* Writes the shared bucket's <tokens> (at <now>) back into the bucket <p> was collected from,
 * less what was taken there since; nothing when the bucket holds another key now. */
void fc_rl_apply(fc_rl_table_t *t, const fc_rl_pending_t *p, double tokens, double cap, uint64_t now);

/* ---- delayed requests (one queue per worker) ---- */

typedef struct fc_rl_wait fc_rl_wait_t;
typedef void (*fc_rl_wait_cb)(fc_rl_wait_t *w);

/* A request waiting its turn. Embedded in its owner; the owner outlives it or cancels it. */
struct fc_rl_wait {
    uint64_t due;        /* uv_now() ms when it goes on */
    size_t pos;          /* 1 + its place in the heap; 0 = not waiting */
    fc_rl_wait_cb cb;    /* called once when due (never after fc_rl_wait_cancel) */
};

/* A worker's waiting requests: a min-heap on <due> and one timer for the earliest. */
typedef struct fc_rl_waitq {
    uv_timer_t timer;    /* closed by fc_rl_waitq_close; the struct is freed in its close callback */
    fc_rl_wait_t **heap; /* owned array */
    size_t n, cap;
} fc_rl_waitq_t;

/* A new queue on <loop> (NULL when out of memory). */
fc_rl_waitq_t *fc_rl_waitq_new(uv_loop_t *loop);
/* Closes the queue (the requests still waiting are not called); freed from the timer's close
 * callback. */
void fc_rl_waitq_close(fc_rl_waitq_t *q);
/* Makes <wt> wait <ms> from now. Returns 0, or -1 (out of memory: not waiting). */
int fc_rl_wait(fc_rl_waitq_t *q, fc_rl_wait_t *wt, uint64_t ms, fc_rl_wait_cb cb);
/* Takes <wt> out of the queue; nothing when it is not waiting. */
void fc_rl_wait_cancel(fc_rl_waitq_t *q, fc_rl_wait_t *wt);

#endif
