/* balance.h: balancing policies behind one const vtable, and the registry that maps a config
 * name to its ops. The config validator asks fc_balance_ops_find() so unknown names are rejected
 * where they are written. Each policy lives in its own src/balance_<name>.c. */
#ifndef FULCRUM_BALANCE_H
#define FULCRUM_BALANCE_H

#include <stddef.h>
#include <stdint.h>

/* The most servers one upstream may list (the size of a request's tried bitmap). */
#define FC_UPSTREAM_MAX_SERVERS 256
#define FC_TRIED_WORDS (FC_UPSTREAM_MAX_SERVERS / 64)

typedef struct fc_balancer fc_balancer_t;
typedef struct fc_balancer_ops fc_balancer_ops_t;

/* What a policy may read about one server when it picks. The upstream keeps these current. */
typedef struct fc_balance_server {
    int weight;      /* effective weight now, >= 1: at create time the configured weight (0 for a server
                        with no address yet: a position of a resolving name); from then on configured
                        weight x 100, lowered during slow_start (only ratios matter) */
    int usable;      /* 0 when the server must not be picked (down, failed, at max_conns, or a
                        backup while a primary is usable) */
    uint32_t active; /* requests in flight to it */
    const char *id;  /* stable identity ("127.0.0.1:3000"), for hashing; borrowed from the config */
} fc_balance_server_t;

/* Per-request input to pick(). */
typedef struct fc_balance_req {
    const uint64_t *tried; /* FC_TRIED_WORDS words: bit i set = server i already tried for this request */
    const char *key;       /* hash key for hash/ip_hash (NULL for other policies) */
    size_t keylen;
} fc_balance_req_t;

/* Options from the config that a policy may need at create time. */
typedef struct fc_balance_opts {
    int two;              /* random: power of two choices */
} fc_balance_opts_t;

struct fc_balancer_ops {
    const char *name;
    /* Returns a new balancer over <n> servers (weights and ids read from <servers>), or NULL.
     * Sets the returned balancer's ops. */
    fc_balancer_t *(*create)(const fc_balance_server_t *servers, size_t n, const fc_balance_opts_t *opts);
    /* Picks a server index from <servers> that is usable and not tried (req->tried), or -1 when
     * none is left. Reads weights, usable and active afresh on every call. */
    int (*pick)(fc_balancer_t *b, const fc_balance_server_t *servers, size_t n, const fc_balance_req_t *req);
    void (*destroy)(fc_balancer_t *b);
    int needs_key; /* 1 when pick() reads req->key (hash, ip_hash) */
};

/* Every balancer embeds this first. */
struct fc_balancer {
    const fc_balancer_ops_t *ops;
};

/* The ops registered under <name>, or NULL. */
const fc_balancer_ops_t *fc_balance_ops_find(const char *name);
/* A comma-separated list of the known names, for error messages. */
const char *fc_balance_names(void);

static inline int fc_tried_has(const uint64_t *tried, size_t i) { return (int)((tried[i / 64] >> (i % 64)) & 1u); }
static inline void fc_tried_set(uint64_t *tried, size_t i) { tried[i / 64] |= (uint64_t)1 << (i % 64); }

/* Helpers shared by the policy files (src/balance_*.c), not for other modules. */

/* 1 when server <i> of <s> may be picked for <req>: usable and not yet tried. */
static inline int fc__balance_open(const fc_balance_server_t *s, const fc_balance_req_t *req, size_t i)
{
    return s[i].usable && !fc_tried_has(req->tried, i);
}

/* Compares the loads active/weight of <a> and <b> by cross-multiplying (no floats): negative when
 * <a> is less loaded, 0 when equal, positive when more. */
static inline int fc__balance_load_cmp(const fc_balance_server_t *a, const fc_balance_server_t *b)
{
    uint64_t la = (uint64_t)a->active * (uint64_t)b->weight, lb = (uint64_t)b->active * (uint64_t)a->weight;
    return (la > lb) - (la < lb);
}

/* Smooth weighted round robin (nginx's current_weight scheme) over the open servers; with <tied>
 * set, only over those whose load equals <tied>'s (least_conn's tie-break). <current> holds one
 * current weight per server. Returns the pick, or -1 when no server qualifies. */
int fc__balance_swrr(int64_t *current, const fc_balance_server_t *s, size_t n, const fc_balance_req_t *req,
                     const fc_balance_server_t *tied);

/* A 64-bit finalizer that spreads every input bit over the whole word (splitmix64's). */
static inline uint64_t fc__balance_mix64(uint64_t x)
{
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9u;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebu;
    return x ^ (x >> 31);
}

#endif
