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

/* What a policy may read about one server when it picks. */
typedef struct fc_balance_server {
    int weight;      /* configured weight, >= 1 */
    int usable;      /* 0 when the server must not be picked (down, failed, at max_conns) */
    uint32_t active; /* requests in flight to it */
} fc_balance_server_t;

struct fc_balancer_ops {
    const char *name;
    /* Returns a new balancer over <n> servers (weights read from <servers>), or NULL. */
    fc_balancer_t *(*create)(const fc_balance_server_t *servers, size_t n);
    /* Picks a server index from <servers> that is usable and not set in <tried> (bit i = server i
     * was tried for this request), or -1 when none is left. */
    int (*pick)(fc_balancer_t *b, const fc_balance_server_t *servers, size_t n, const uint64_t *tried);
    void (*destroy)(fc_balancer_t *b);
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

#endif
