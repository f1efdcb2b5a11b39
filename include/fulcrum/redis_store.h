/* redis_store.h: `rate_limits.NAME.store: { redis: ... }`: a policy's buckets shared by several
 * fulcrum processes (replicas) through a Redis server, without a round trip per request.
 * Requests are decided by the local table (ratelimit.h) as always. Every `sync` interval the first
 * worker of the generation sends, for each bucket used since the last time, what this process
 * took from it (one atomic Lua script per key, pipelined on one connection per policy) and writes
 * the shared bucket Redis answers back into the local one. Redis down or slow never holds a
 * request: the policy's on_error decides, the error log says it once, a counter counts it.
 * Uses hiredis and its libuv adapter on the worker's loop. */
#ifndef FULCRUM_REDIS_STORE_H
#define FULCRUM_REDIS_STORE_H

#include "fulcrum/common.h"

struct fc_worker;
typedef struct fc_redis_store fc_redis_store_t;

/* Starts the reconciliation of each policy of <w>'s config that has a store (w->redis; none:
 * stays NULL). Connecting happens in the background. Returns 0, or -1 with <err> set. */
int fc_redis_store_start(struct fc_worker *w, fc_err_t *err);
/* Stops it: the connections close, what was not sent is dropped, the memory is freed from the
 * last close callback. Nothing when it is not running. */
void fc_redis_store_stop(struct fc_worker *w);

#endif
