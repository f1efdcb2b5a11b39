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
#include "fulcrum/worker.h"

struct fc_conn;
struct fc_upconn;
struct fc_server;

typedef struct fc_upgrade {
    fc_tunnel_t tun;              /* side 0: the client connection's io, side 1: the server's */
    fc_worker_t *w;               /* owner */
    struct fc_conn *c;            /* borrowed; NULL once it is closing */
    struct fc_upconn *up;         /* borrowed; NULL once it is closing */
    struct fc_server *server;     /* counted active until the end; NULL for a tunnel adopted from an
                                     older generation whose server this configuration does not have */
    const fc_route_conf_t *route; /* borrowed from the config */
    size_t route_index;
    uint64_t t_start;             /* uv_hrtime() of the request head (0: no access log) */
    int refs;                     /* one per connection: freed when both have closed */
    uint8_t done;
    uint8_t log;                  /* write the access-log line */
    uint8_t moving;               /* paused for a hand-over to a newer generation */
    char method[16];              /* for the log line, JSON-escaped (a longer path is cut) */
    char path[160];
    char ip[46];                  /* the client's address, for the log */
    char *orphan;                 /* owned: "upstream\0address" of a server this configuration does not
                                     have (server NULL), else NULL */
} fc_upgrade_t;

/* Moves tunnel <g> to the newer generation a draining worker hands over to: pauses it and, once no
 * write is in flight, sends both sockets with what each side read and the other has not written
 * (fc_worker_handover_tunnel). A TLS tunnel, or a half-closed one, stays. Returns 0 (moving or
 * moved) or -1 (it stays here). */
int fc_upgrade_move(fc_upgrade_t *g);
/* The newer generation's side: takes over client socket <cfd> and server socket <ufd> of a tunnel
 * to <upstream>/<address>, with the bytes each had read (<b0>: the client's, for the server;
 * <b1>: the server's, for the client). */
void fc_upgrade_adopt(fc_worker_t *w, int cfd, int ufd, const fc_upgrade_t *from, const char *upstream,
                      const char *address, const char *b0, size_t n0, const char *b1, size_t n1);
/* The upstream name and server address of <g>'s server (its orphan copy when it has none). */
const char *fc_upgrade_upstream(const fc_upgrade_t *g);
const char *fc_upgrade_address(const fc_upgrade_t *g);

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
