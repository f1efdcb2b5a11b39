/* shm.h: the state every worker must see the same way, in one shared anonymous mapping made by
 * the master before it forks: per-server slots (active requests, passive failures, health) and
 * the generation control block that reloads use. Slots are keyed by "upstream/address", so a
 * server that stays in the config across a reload keeps its slot and its health state.
 * Fields written by several processes are C11 atomics; counters use relaxed order. */
#ifndef FULCRUM_SHM_H
#define FULCRUM_SHM_H

#include <stdatomic.h>
#include <stdint.h>

#include "fulcrum/config.h"

#define FC_SHM_SLOTS 4096
/* Room for the longest "upstream/address" the loader accepts, so a key is never cut short (two
 * servers whose keys differ only past a cut would share a slot, and their health). */
#define FC_SHM_KEY (FC_UPSTREAM_NAME_MAX + 1 + sizeof(((fc_addr_t *)0)->text))
#define FC_SHM_PROCS 64 /* worker processes alive at once, all generations together */

typedef struct fc_shm_server {
    atomic_uint active;           /* requests in flight to the server, all workers together */
    atomic_uint active_by[FC_SHM_PROCS]; /* the same per worker process slot, so the master can take
                                            back what a crashed worker counted */
    atomic_uint fails;            /* passive failures in the current window */
    atomic_ullong fail_window;    /* monotonic ms the window began */
    atomic_ullong failed_until;   /* out until this monotonic ms; 0 = not out */
    atomic_uint probing;          /* out-time over, one request is trying it */
    atomic_uint healthy;          /* active health state */
    atomic_uint hc_ok, hc_fail;   /* consecutive check results (written by the checking worker) */
    atomic_ullong up_since;       /* monotonic ms it became usable again (slow_start) */
    atomic_ullong to_up, to_down; /* state changes (active health, passive failure and recovery) */
    atomic_ullong last_transition; /* unix seconds of the last change, 0 = none */
    atomic_ullong checks_ok, checks_failed; /* active checks (written by the checking worker) */
    atomic_ullong last_check_ms;  /* how long the last check took */
    atomic_uint last_check_ok;    /* 1: the last check passed; 0 failed or none */
    uint32_t refs;                /* configs (generations) using the slot; master only */
    char key[FC_SHM_KEY];         /* "upstream/address", empty when free; master only writes */
} fc_shm_server_t;

/* Sticky "learn" mode: which server set a given value of an application's cookie, for every
 * worker. A fixed set-associative table; a set's lock is only ever tried, never waited on, and
 * held for a few stores (a worker that died holding one costs that set, not the process). */
#define FC_SHM_LEARN_SETS 4096
#define FC_SHM_LEARN_WAYS 4
typedef struct fc_shm_learn {
    uint64_t key;       /* a hash of upstream name and cookie value; 0 = free */
    uint64_t expires;   /* CLOCK_MONOTONIC ms */
    uint32_t slot;      /* the server's slot in servers[] */
} fc_shm_learn_t;

/* Client connections per address, for every worker (limits.max_connections_per_client). */
#define FC_SHM_PEER_SETS 4096
#define FC_SHM_PEER_WAYS 4
typedef struct fc_shm_peer {
    uint64_t key;       /* a hash of the client's address; 0 = free */
    uint32_t count;     /* its connections open now (an entry at 0 may be taken by another address) */
} fc_shm_peer_t;

struct fc_metrics_shm;

typedef struct fc_shm {
    struct fc_metrics_shm *metrics;     /* the metric blocks (metrics.h): a mapping of their own,
                                           sized by max_series */
    atomic_uint generation;             /* the newest generation of workers */
    atomic_uint nworkers;               /* how many workers the newest generation has */
    atomic_uint ready[FC_SHM_PROCS];    /* per process slot: the generation it is ready to serve */
    atomic_uint conns[FC_SHM_PROCS];    /* per process slot: client connections open (accept balance) */
    fc_tls_cache_t sessions;            /* TLS 1.2 session IDs, for every worker */
    atomic_uint peer_lock[FC_SHM_PEER_SETS];
    fc_shm_peer_t peers[FC_SHM_PEER_SETS * FC_SHM_PEER_WAYS];
    atomic_uint learn_lock[FC_SHM_LEARN_SETS];
    fc_shm_learn_t learn[FC_SHM_LEARN_SETS * FC_SHM_LEARN_WAYS];
    fc_tls_tickets_t tickets;           /* TLS session ticket keys: made and rotated by the master, kept
                                           across reloads, used by every worker */
    fc_shm_server_t servers[FC_SHM_SLOTS];
} fc_shm_t;

/* Counts one more connection of the client <key> unless it has <max> already. Returns 1 (counted:
 * fc_shm_peer_leave later), 0 (at the limit: not counted) or -1 (not counted: the set was busy or
 * full; the connection is let in uncounted). */
int fc_shm_peer_enter(fc_shm_t *shm, uint64_t key, uint32_t max);
void fc_shm_peer_leave(fc_shm_t *shm, uint64_t key);
/* Forgets every count (the master, after a worker died with connections it counted: the counts
 * go low for a while, never stuck high). */
void fc_shm_peer_reset(fc_shm_t *shm);

/* Sticky learn mode: remembers that <slot> answered with cookie value <key> until <expires>
 * (the entry expiring first in its set makes room), or finds it (UINT32_MAX: unknown). */
void fc_shm_learn_put(fc_shm_t *shm, uint64_t key, uint32_t slot, uint64_t expires);
uint32_t fc_shm_learn_get(fc_shm_t *shm, uint64_t key, uint64_t now);

/* Takes back the active counts process slot <proc> left behind (it exited or crashed). */
void fc_shm_forget_proc(fc_shm_t *shm, unsigned proc);

/* Maps the segment (once, before any fork). Returns NULL with errno set on failure. */
fc_shm_t *fc_shm_create(void);
void fc_shm_destroy(fc_shm_t *shm);

/* For each server of <cfg> finds (or takes a free) slot keyed by upstream and address, and
 * writes the slot numbers into <slots> (one per server, in config order, upstream by upstream).
 * A new slot starts healthy unless start_unhealthy. Returns 0, or -1 when the slots ran out. */
int fc_shm_assign(fc_shm_t *shm, const fc_config_t *cfg, uint32_t *slots);
/* Drops <cfg>'s references taken by fc_shm_assign; slots nobody uses become free. */
void fc_shm_release(fc_shm_t *shm, const fc_config_t *cfg, const uint32_t *slots);
/* How many servers <cfg> lists in all (the length of its slots array). */
size_t fc_shm_nservers(const fc_config_t *cfg);

#endif
