/* upgrade.h: a connection that switched protocols after a 101 (a WebSocket). The client and the
 * server connection become a byte tunnel (tunnel.c, one pump both ways) with an idle timeout
 * (routes[].timeouts.tunnel) that traffic either way renews. The server counts it as an active
 * request (least_conn, max_conns) until it ends, and one access-log line says how it went:
 * duration and bytes each way. Small on purpose: an open WebSocket is this, its two connection
 * objects and no buffer while both sides are quiet. */
#ifndef FULCRUM_UPGRADE_H
#define FULCRUM_UPGRADE_H

#include <stdint.h>

#include "fulcrum/config.h"
#include "fulcrum/tunnel.h"

struct fc_conn;
struct fc_upconn;
struct fc_server;

typedef struct fc_upgrade {
    fc_tunnel_t tun;              /* side 0: the client connection's io, side 1: the server's */
    struct fc_conn *c;            /* borrowed; NULL once it is closing */
    struct fc_upconn *up;         /* borrowed; NULL once it is closing */
    struct fc_server *server;     /* counted active until the end */
    const fc_route_conf_t *route; /* borrowed from the config */
    size_t route_index;
    uint64_t t_start;             /* uv_hrtime() of the request head (0: no access log) */
    int refs;                     /* one per connection: freed when both have closed */
    uint8_t done;
    uint8_t log;                  /* write the access-log line */
    char method[16];              /* for the log line, JSON-escaped */
    char path[256];
} fc_upgrade_t;

/* Turns <c> and <up> (both between messages: the 101 head is the first thing in up's read
 * buffer, the client's early bytes first in c's) into a tunnel. <g> is filled by the caller
 * (server, route, t_start, log fields); on return it owns the wiring. */
void fc_upgrade_begin(fc_upgrade_t *g, struct fc_conn *c, struct fc_upconn *up);
/* From the connections' callbacks. */
void fc_upgrade_on_read(fc_upgrade_t *g, int side, ssize_t nread);
/* Ends it (idempotent): logs, stops counting the server, closes both connections. */
void fc_upgrade_end(fc_upgrade_t *g, int status);
/* A connection's close callback let go of it. */
void fc_upgrade_unref(fc_upgrade_t *g);

#endif
