/* health.h: active health checks. Every health_check.interval each server of an upstream that
 * has a health_check: block gets one probe: connect, "GET <path>", read the status line, close.
 * Results go to fc_server_check_result(), which applies the thresholds and logs transitions. */
#ifndef FULCRUM_HEALTH_H
#define FULCRUM_HEALTH_H

#include "fulcrum/worker.h"

/* Starts the check timers of every upstream with checks (the first round runs at once). */
int fc_health_start(fc_worker_t *w);
/* Stops the timers and closes probes in flight; their memory is freed in their close callbacks. */
void fc_health_stop(fc_worker_t *w);

#endif
