/* router.h: picks a route for a request by Host, then by the longest path prefix.
 * Compiled once per config into one array ordered by specificity: exact hosts, then wildcard
 * hosts (longest suffix first), then routes without a host; within each, longest path first.
 * The first route whose host and path both match wins, so a host group whose paths all miss
 * falls through to the less specific groups (a catch-all route still catches). */
#ifndef FULCRUM_ROUTER_H
#define FULCRUM_ROUTER_H

#include <stddef.h>

#include "fulcrum/config.h"

typedef struct fc_router {
    const fc_route_conf_t **routes; /* owned array of borrowed pointers into the config */
    size_t n;
} fc_router_t;

/* Builds the router for <cfg> (which must outlive it). Returns 0 or -1 on allocation failure. */
int fc_router_init(fc_router_t *r, const fc_config_t *cfg);
void fc_router_free(fc_router_t *r);

/* The route for <host> (as sent, may carry ":port"; NULL or empty = none) and <path> (the
 * request target's path, query included or not), or NULL when nothing matches. */
const fc_route_conf_t *fc_router_match(const fc_router_t *r, const char *host, size_t hostlen, const char *path,
                                       size_t pathlen);

#endif
