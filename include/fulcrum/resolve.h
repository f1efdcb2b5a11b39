/* resolve.h: host names of servers, through c-ares (it reports each record's TTL and can be
 * pointed at given DNS servers; getaddrinfo blocks and does neither). Two users:
 * - the config loader resolves a name once, blocking, at load (fc_resolve_once);
 * - the resolving worker (index 0 of the newest generation, the one that runs the active checks)
 *   re-resolves every name with `resolve: true` from its libuv loop (fc_resolver_start) and
 *   publishes the addresses in the name's shm positions (fc_shm_dyn_update); every worker follows
 *   them (fc_upstream_refresh). Nothing here touches a connection. */
#ifndef FULCRUM_RESOLVE_H
#define FULCRUM_RESOLVE_H

#include <stdint.h>

#include "fulcrum/config.h"
#include "fulcrum/worker.h"

/* Resolves <host> (A and AAAA; /etc/hosts first) with the DNS servers <servers> ("IP:port,...";
 * NULL = those of /etc/resolv.conf), blocking for a few seconds at most. Fills <out>[0..*<n>) with
 * its distinct addresses, each with <port> (at most <max>; more are left out) and *<ttl> with the
 * smallest TTL of the answer (0 = none, as from /etc/hosts). Returns 0, or -1 with <err> ("no such
 * name", "no address", "timeout", ...). */
int fc_resolve_once(const char *servers, const char *host, uint16_t port, fc_addr_t *out, size_t max, size_t *n,
                    uint32_t *ttl, fc_err_t *err);

/* How long until a name that answered with <ttl> seconds is asked again: its resolve_interval
 * <interval_ms>, or the TTL when shorter (1 s at least; a TTL of 0 means none was given). */
uint64_t fc_resolve_wait(uint64_t interval_ms, uint32_t ttl);

/* Starts re-resolving the names with `resolve: true` of <w>'s upstreams (the first round at once).
 * Returns 0 (also when there is none) or a negative libuv/c-ares failure, logged by the caller. */
int fc_resolver_start(fc_worker_t *w);
/* Stops: queries in flight are dropped, every handle closed; the memory goes in their close
 * callbacks. Idempotent. */
void fc_resolver_stop(fc_worker_t *w);

#endif
