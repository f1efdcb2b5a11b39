/* balance_lc.c: least connections. Picks the open server with the fewest active requests per
 * unit of weight; servers tied on that load share the request by smooth weighted round robin
 * (nginx's least_conn does the same), so idle servers split load evenly and weights still hold
 * when nothing is in flight. Owns only the tie-break current weights; reads balance.h's view. */
#include <stdlib.h>

#include "fulcrum/balance.h"

extern const fc_balancer_ops_t fc_balance_lc_ops;

typedef struct lc_balancer {
    fc_balancer_t super; /* must be first */
    size_t n;            /* number of servers */
    int64_t current[];   /* smooth round robin current_weight per server, for tie-breaks */
} lc_balancer_t;

static fc_balancer_t *lc_create(const fc_balance_server_t *servers, size_t n, const fc_balance_opts_t *opts)
{
    lc_balancer_t *b = calloc(1, sizeof(*b) + n * sizeof(b->current[0]));
    if (b == NULL) return NULL;
    b->super.ops = &fc_balance_lc_ops;
    b->n = n;
    return &b->super;
}

/* The open server with the lowest load (any one of the tied), or -1 when none is open. */
static int least_loaded(const fc_balance_server_t *servers, size_t n, const fc_balance_req_t *req)
{
    int best = -1;
    for (size_t i = 0; i < n; i++) {
        if (!fc__balance_open(servers, req, i)) continue;
        if (best < 0 || fc__balance_load_cmp(&servers[i], &servers[best]) < 0) best = (int)i;
    }
    return best;
}

static int lc_pick(fc_balancer_t *base, const fc_balance_server_t *servers, size_t n, const fc_balance_req_t *req)
{
    lc_balancer_t *b = (lc_balancer_t *)base;
    if (n > b->n) n = b->n;
    int least = least_loaded(servers, n, req);
    if (least < 0) return -1;
    /* Smooth weighted round robin restricted to the servers tied with the least loaded one. */
    return fc__balance_swrr(b->current, servers, n, req, &servers[least]);
}

static void lc_destroy(fc_balancer_t *b) { free(b); }

const fc_balancer_ops_t fc_balance_lc_ops = {
    .name = "least_conn",
    .create = lc_create,
    .pick = lc_pick,
    .destroy = lc_destroy,
};
