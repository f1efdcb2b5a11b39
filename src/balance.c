/* balance.c: the registry of balancing policies (name -> const ops). The config validator and
 * the upstream module both look policies up here, so a name is known in exactly one place. */
#include "fulcrum/balance.h"

#include <string.h>

extern const fc_balancer_ops_t fc_balance_rr_ops;

static const fc_balancer_ops_t *const registry[] = {
    &fc_balance_rr_ops,
};

const fc_balancer_ops_t *fc_balance_ops_find(const char *name)
{
    for (size_t i = 0; i < sizeof(registry) / sizeof(registry[0]); i++)
        if (strcmp(registry[i]->name, name) == 0) return registry[i];
    return NULL;
}

const char *fc_balance_names(void) { return "round_robin"; }
