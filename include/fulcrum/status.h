/* status.h: the status page of a listener's `status:` endpoint: <path> answers a small HTML page
 * rendered here (readable without JavaScript; its script refreshes the tables from <path>.json
 * every 2 s), <path>.json the same state as JSON (docs/observability.md describes it as an
 * interface). Both read the merged metric blocks (metrics.h) and the shared server state. */
#ifndef FULCRUM_STATUS_H
#define FULCRUM_STATUS_H

#include "fulcrum/buf.h"

struct fc_worker;

/* Renders the JSON document into <out>. Returns 0 or -1 (out of memory, or metrics off). */
int fc_status_render_json(struct fc_worker *w, fc_buf_t *out);
/* Renders the HTML page into <out>; <json_path> is where its script fetches from. Returns 0 or -1. */
int fc_status_render_html(struct fc_worker *w, const char *json_path, fc_buf_t *out);

#endif
