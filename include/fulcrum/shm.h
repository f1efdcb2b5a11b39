/* shm.h: the state every worker must see the same way, in one shared anonymous mapping made by
 * the master before it forks: per-server slots (active requests, passive failures, health) and
 * the generation control block that reloads use. Slots are keyed by "upstream/address", so a
 * server that stays in the config across a reload keeps its slot and its health state.
 * A name with `resolve: true` has max_addresses slots ("upstream/name:port#k"), whose address
 * follows DNS: the resolving worker writes it (fc_shm_dyn_update), every worker reads it
 * (fc_shm_dyn_read). Fields written by several processes are C11 atomics; counters use relaxed
 * order. */
#ifndef FULCRUM_SHM_H
#define FULCRUM_SHM_H

#include <stdatomic.h>
#include <stdint.h>

#include "fulcrum/config.h"

#define FC_SHM_SLOTS 4096
/* Room for the longest "upstream/address" (or "upstream/name:port#255") the loader accepts, so a
 * key is never cut short (two servers whose keys differ only past a cut would share a slot, and
 * their health). */
#define FC_SHM_KEY (FC_UPSTREAM_NAME_MAX + 1 + sizeof(((fc_addr_t *)0)->text) + 4)
#define FC_SHM_MASTER (FC_SHM_PROCS + 1) /* the owner the master writes into dyn_lock */
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
    /* A position of a resolving name (the rest of the slot is then the state of dyn_addr). */
    atomic_uint dyn_seq;          /* even: dyn_addr and dyn_used are stable; odd: being rewritten. Changes
                                     with every rewrite; 0 = never written (vacant) */
    uint32_t dyn_used;            /* 1: dyn_addr is a server now; 0: vacant (draining while active > 0) */
    fc_addr_t dyn_addr;           /* its address, text "IP:port" (read under dyn_seq) */
    uint64_t dyn_vacant_since;    /* monotonic ms it became vacant (the writer's: which slot to reuse) */
    atomic_uint dyn_lock;         /* first position of a name: the writer's process slot + 1 (or
                                     FC_SHM_MASTER) while it rewrites the name's positions, 0 = free */
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

/* The request queues at max_conns (queue.c), one per upstream name with `queue:`, for every worker
 * and every generation: a waiter's place is its ticket, its cell is ticket % FC_SHM_QUEUE_RING, and
 * every field but <waiting> is read and written under <lock>. */
#define FC_SHM_QUEUES 64
#define FC_SHM_QUEUE_RING 8192 /* twice FC_QUEUE_MAX: cells of waiters that left wait for the head */
enum fc_shm_waiter_state { FC_QW_FREE = 0, FC_QW_WAITING, FC_QW_GRANTED };
typedef struct fc_shm_waiter {
    uint64_t ticket;    /* its place in line */
    uint32_t slot;      /* GRANTED: the server slot (servers[]) counted active for it */
    uint16_t proc;      /* the worker process slot it waits in */
    uint8_t state;      /* enum fc_shm_waiter_state */
} fc_shm_waiter_t;
typedef struct fc_shm_queue {
    atomic_uint lock;   /* 0 free, else 1 + the process slot holding it (the master frees a dead
                           holder's); held for a few loads and stores, never across a syscall */
    atomic_uint waiting; /* WAITING cells: the queue_size gauge, and the release path's unlocked test */
    uint64_t head, tail; /* the cells of tickets [head, tail) are in use */
    uint32_t refs;      /* configs (generations) using it; master only */
    char key[FC_UPSTREAM_NAME_MAX + 1]; /* the upstream's name, empty when free; master only writes */
    fc_shm_waiter_t cells[FC_SHM_QUEUE_RING];
} fc_shm_queue_t;

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
    int wake_fd[FC_SHM_PROCS];          /* an eventfd per process slot, made before any fork (so every
                                           process has them all, at the same numbers): a queue wakes a
                                           waiting worker by writing to its slot's */
    fc_shm_queue_t queues[FC_SHM_QUEUES];
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

/* The lock of queue <q>, taken by process slot <me> (FC_SHM_PROCS: the master). Waited for,
 * yielding the CPU while it is held: it guards a few stores, and the master takes over the lock
 * of a process that died holding it. */
void fc_shm_queue_lock(fc_shm_queue_t *q, unsigned me);
void fc_shm_queue_unlock(fc_shm_queue_t *q);
/* Wakes the worker in process slot <proc>: its wake_fd becomes readable. */
void fc_shm_wake(fc_shm_t *shm, unsigned proc);
/* Moves the head of <q> past the cells nobody waits in (lock held). */
void fc_shm_queue_trim(fc_shm_queue_t *q);

/* Reads position <st> of a resolving name: 0 with *<seq> (its dyn_seq), *<addr> and *<used>, or -1
 * while it is being rewritten (try again later). */
int fc_shm_dyn_read(fc_shm_server_t *st, unsigned *seq, fc_addr_t *addr, int *used);

/* What fc_shm_dyn_update did. */
typedef struct fc_shm_dyn_result {
    unsigned joined;  /* addresses that took a vacant position */
    unsigned left;    /* positions made vacant: their address is gone (in-flight requests finish) */
    unsigned kept;    /* addresses already held, left with their health and failure state */
    unsigned dropped; /* new addresses that found no vacant position without active requests */
} fc_shm_dyn_result_t;

/* Makes positions <pos>[0..<n>) of one resolving name hold the addresses <addrs>[0..<naddrs>):
 * an address already held stays in its slot with its state; a slot whose address is gone becomes
 * vacant (never picked again; reused only once no request is active on it, the one vacant longest
 * first); a new address takes such a slot with fresh state: healthy = <healthy>, up_since = <now>
 * (slow_start; 0 at load, when there is nothing to ramp from). <owner> (process slot + 1, or
 * FC_SHM_MASTER) holds the name's lock meanwhile. Returns 0 with <res>, or -1 when another process
 * holds the lock (nothing changed). */
int fc_shm_dyn_update(fc_shm_server_t *const *pos, size_t n, const fc_addr_t *addrs, size_t naddrs, unsigned healthy,
                      uint64_t now, unsigned owner, fc_shm_dyn_result_t *res);

/* Takes back the active counts (and the queue places) process slot <proc> left behind (it exited
 * or crashed), and the resolving names' locks it held. */
void fc_shm_forget_proc(fc_shm_t *shm, unsigned proc);

/* Maps the segment (once, before any fork). Returns NULL with errno set on failure. */
fc_shm_t *fc_shm_create(void);
void fc_shm_destroy(fc_shm_t *shm);

/* For each server of <cfg> finds (or takes a free) slot keyed by upstream and address, and
 * writes the slot numbers into <slots> (one per server, in config order, upstream by upstream),
 * then the same for the queue of each upstream (one per upstream; UINT32_MAX when it has none).
 * A new slot starts healthy unless start_unhealthy. The positions of a resolving name that were
 * never written get the addresses it had at load. Returns 0, or -1 when the slots ran out. */
int fc_shm_assign(fc_shm_t *shm, const fc_config_t *cfg, uint32_t *slots);
/* Drops <cfg>'s references taken by fc_shm_assign; slots nobody uses become free. */
void fc_shm_release(fc_shm_t *shm, const fc_config_t *cfg, const uint32_t *slots);
/* How many servers <cfg> lists in all (where the queue slots begin in its slots array). */
size_t fc_shm_nservers(const fc_config_t *cfg);
/* The length of <cfg>'s slots array: a slot per server, then one per upstream (its queue). */
size_t fc_shm_nslots(const fc_config_t *cfg);

#endif
