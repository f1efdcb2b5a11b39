/* balance_rr.c: smooth weighted round robin, with nginx's current_weight/effective_weight
 * scheme: every pick adds each usable server's weight to its current weight, takes the largest,
 * and subtracts the total from the winner. Weights 5:1:1 give a a b a c a a. */
#include <stdlib.h>

#include "fulcrum/balance.h"

extern const fc_balancer_ops_t fc_balance_rr_ops;

typedef struct rr_balancer {
    fc_balancer_t super; /* must be first */
    size_t n;            /* number of servers */
    int64_t current[];   /* current_weight per server */
} rr_balancer_t;

static fc_balancer_t *rr_create(const fc_balance_server_t *servers, size_t n, const fc_balance_opts_t *opts)
{
    rr_balancer_t *b = calloc(1, sizeof(*b) + n * sizeof(b->current[0]));
    if (b == NULL) return NULL;
    b->super.ops = &fc_balance_rr_ops;
    b->n = n;
    return &b->super;
}

static int rr_pick(fc_balancer_t *base, const fc_balance_server_t *servers, size_t n, const fc_balance_req_t *req)
{
    rr_balancer_t *b = (rr_balancer_t *)base;
    return fc__balance_swrr(b->current, servers, n < b->n ? n : b->n, req, NULL);
}

static void rr_destroy(fc_balancer_t *b) { free(b); }

const fc_balancer_ops_t fc_balance_rr_ops = {
    .name = "round_robin",
    .create = rr_create,
    .pick = rr_pick,
    .destroy = rr_destroy,
};
