/* balance.c: the registry of balancing policies (name -> const ops). The config validator and
 * the upstream module both look policies up here, so a name is known in exactly one place. */
#include "fulcrum/balance.h"

#include <stdio.h>
#include <string.h>

extern const fc_balancer_ops_t fc_balance_rr_ops;
extern const fc_balancer_ops_t fc_balance_lc_ops;
extern const fc_balancer_ops_t fc_balance_ip_hash_ops;
extern const fc_balancer_ops_t fc_balance_random_ops;
extern const fc_balancer_ops_t fc_balance_hash_ops;

/* In the order fc_balance_names() lists them. */
static const fc_balancer_ops_t *const registry[] = {
    &fc_balance_rr_ops, &fc_balance_lc_ops, &fc_balance_ip_hash_ops, &fc_balance_random_ops, &fc_balance_hash_ops,
};

const fc_balancer_ops_t *fc_balance_ops_find(const char *name)
{
    for (size_t i = 0; i < sizeof(registry) / sizeof(registry[0]); i++)
        if (strcmp(registry[i]->name, name) == 0) return registry[i];
    return NULL;
}

/* Joined from the registry on first use, so the list cannot drift from it. */
const char *fc_balance_names(void)
{
    static char names[128]; /* "round_robin, least_conn, ..." once built */
    if (names[0] != '\0') return names;
    size_t len = 0;
    for (size_t i = 0; i < sizeof(registry) / sizeof(registry[0]) && len < sizeof(names); i++)
        len += (size_t)snprintf(names + len, sizeof(names) - len, "%s%s", i ? ", " : "", registry[i]->name);
    return names;
}

int fc__balance_swrr(int64_t *current, const fc_balance_server_t *s, size_t n, const fc_balance_req_t *req,
                     const fc_balance_server_t *tied)
{
    int64_t total = 0;
    int best = -1;
    for (size_t i = 0; i < n; i++) {
        if (!fc__balance_open(s, req, i) || (tied != NULL && fc__balance_load_cmp(&s[i], tied) != 0)) continue;
        current[i] += s[i].weight;
        total += s[i].weight;
        if (best < 0 || current[i] > current[best]) best = (int)i;
    }
    if (best >= 0) current[best] -= total;
    return best;
}
