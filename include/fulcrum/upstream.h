/* upstream.h: upstreams and their servers as one worker sees them, upstream connections
 * (connect, response reading, idle-close detection) and the per-server keep-alive pool.
 * An upstream connection never points at a client connection: only at its exchange. */
#ifndef FULCRUM_UPSTREAM_H
#define FULCRUM_UPSTREAM_H

#include <uv.h>

#include "fulcrum/balance.h"
#include "fulcrum/buf.h"
#include "fulcrum/config.h"
#include "fulcrum/http.h"
#include "fulcrum/io.h"
#include "fulcrum/list.h"
#include "fulcrum/metrics.h"
#include "fulcrum/shm.h"
#include "fulcrum/timeq.h"
#include "fulcrum/worker.h"

#define FC_WEIGHT_SCALE 100 /* policies run on weight x 100, so slow_start ramps in small steps */

typedef struct fc_server {
    const fc_server_conf_t *conf; /* borrowed from the config; for a position of a resolving name, the
                                     upstream's copy (dconf), whose addr is the address it has now */
    fc_upstream_t *upstream;      /* owner */
    fc_list_t idle;               /* idle pooled connections, most recently used first */
    size_t nidle;
    fc_shm_server_t *st;          /* shared state (health, failures, active count): in the shm segment */
    struct fc_probe *probe;       /* the active check in flight, or NULL */
    fc_metrics_series_t *ms;      /* its series in this worker's metric block, NULL = metrics off */
    uint32_t gen;                 /* changes with its address: a connection made before is not pooled */
    uint32_t dyn_seq;             /* a position of a resolving name: the shm dyn_seq it follows now */
    uint8_t dynamic;              /* a position of a resolving name (its address follows DNS) */
    uint8_t vacant;               /* ... with no address now: never picked, probed or shown */
} fc_server_t;

/* What a server of an upstream with `tls:` needs besides (kept apart: the hot loops over
 * fc_server_t do not need it). */
typedef struct fc_server_tls {
    fc_tls_session_t *session;    /* owned: the latest TLS session with it, resumed by the next
                                     connection; NULL = none */
    char host[64];                /* its address without the port, or the host name it was written as:
                                     the name its certificate must have when the upstream's tls gives
                                     no sni */
} fc_server_tls_t;

/* The server of <u> whose sticky cookie value is <v>, or -1. */
int fc_upstream_sticky_find(const fc_upstream_t *u, const char *v, size_t n);

/* The server of upstream <upstream> at <address> (as written in the config), or NULL. */
fc_server_t *fc_server_find(fc_worker_t *w, const char *upstream, const char *address);

/* Makes <io> (initialised, not connected) a TLS client connection to <s> when its upstream has
 * `tls:`. Returns 0 or a negative libuv error. */
int fc_server_tls(fc_server_t *s, fc_io_t *io);

/* Why an attempt on a server failed, for passive health and for the retry rules. */
enum fc_fail_kind { FC_FAIL_ERROR = 1, FC_FAIL_TIMEOUT = 2, FC_FAIL_STATUS = 3, FC_FAIL_INVALID = 4 };

struct fc_upstream {
    const fc_upstream_conf_t *conf; /* borrowed from the config */
    fc_worker_t *w;                 /* owner */
    fc_server_t *servers;           /* owned array of conf->nservers */
    fc_balance_server_t *view;      /* owned array: what the policy sees of each server */
    fc_server_tls_t *tls;           /* owned array of conf->nservers when conf->tls, else NULL */
    char (*sticky_ids)[17];         /* owned array of conf->nservers when conf->sticky.cookie: the
                                       cookie value naming each server (16 hex digits of a SHA-256 of
                                       "upstream/address": opaque, and the same across reloads,
                                       restarts and replicas), else NULL */
    fc_balancer_t *balancer;        /* owned, conf->balance's policy */
    fc_server_conf_t *dconf;        /* owned array of conf->nservers when conf->ndynamic, else NULL: the
                                       confs of the positions of resolving names, their addr rewritten as
                                       DNS changes (the other entries are unused) */
    fc_timeq_class_t *t_idle;       /* conf->keepalive_timeout */
    uv_timer_t health_timer;        /* starts a round of active checks every health.interval */
    fc_timeq_class_t *t_health;     /* health.timeout */
    uint64_t all_down_logged;       /* loop time "no usable server" was last said, 0 = taken back */
    fc_metrics_series_t *ms;        /* its series in this worker's metric block, NULL = metrics off */
    struct fc_queue *queue;         /* owned (queue.c): its request queue at max_conns, NULL = none */
    uint8_t all_failed;             /* every server is out through passive failures: all are tried */
    uint8_t all_busy;               /* the last refresh found no usable server only because those alive
                                       are at max_conns (a 503, not a 502) */
};

enum fc_upconn_state {
    FC_UP_CONNECTING = 0, /* connect in flight, exchange attached */
    FC_UP_ACTIVE,         /* carrying an exchange */
    FC_UP_IDLE,           /* in its server's pool, reading only to notice a close */
    FC_UP_TUNNEL,         /* switched protocols (101): one side of a tunnel (upgrade.c) */
    FC_UP_CLOSING,        /* uv_close called; freed in the close callback */
};

typedef struct fc_upconn {
    fc_io_t io;               /* the socket and its transport (read buffer from w->upstream_bufs
                                 while active, none while idle; the request write in flight);
                                 this struct is freed in its close callback */
    fc_exchange_t *wex;       /* the exchange whose write is in flight here (holding a reference
                                 on it until the callback), NULL when none: write state travels
                                 with the connection that issued it, so a write cancelled on an
                                 abandoned connection is never blamed on the next one */
    fc_server_t *server;      /* borrowed: the server it talks to */
    fc_exchange_t *ex;        /* the exchange it carries, NULL when idle */
    fc_list_t link;           /* in server->idle while idle */
    fc_list_t all;            /* in w->upconns */
    fc_timeout_t timeout;     /* connect, send/read, or idle timeout */
    fc_http_parser_t parser;  /* response parser */
    size_t pos;               /* bytes of io.rbuf consumed by the parser */
    size_t fwd;               /* start of the bytes not yet handed to the client write */
    size_t fwd_end;           /* end of the bytes ready for the client (decoded end in dechunk mode) */
    fc_timeq_class_t *t_idle; /* how long it may stay idle: the upstream's, or shorter when the
                                 server announced Keep-Alive: timeout=N */
    uint32_t requests;        /* requests carried so far */
    uint32_t gen;             /* server->gen when it connected: pooled only while they are equal */
    uint8_t state;            /* enum fc_upconn_state */
    struct fc_upgrade *upgrade; /* FC_UP_TUNNEL: the tunnel it is a side of (a reference) */
} fc_upconn_t;

/* Takes over connected socket <fd> (a tunnel's server side, handed over by an older generation)
 * as a connection to <s>, active and not reading yet. NULL on failure (<fd> closed). */
fc_upconn_t *fc_upconn_adopt(fc_server_t *s, int fd);

/* Builds the runtime upstreams of w->cfg into w->upstreams. Returns 0 or -1 with <err>. */
int fc_upstreams_init(fc_worker_t *w, fc_err_t *err);
/* Frees them; every connection must be closed already. */
void fc_upstreams_free(fc_worker_t *w);

/* An idle pooled connection to <s> (now ACTIVE and carrying <ex>), or NULL when none is idle. */
fc_upconn_t *fc_pool_acquire(fc_server_t *s, fc_exchange_t *ex);
/* Starts a connection to <s> for <ex>. Returns 0 (fc_exchange_on_connect will be called exactly
 * once) or a negative libuv error (nothing to clean up, no callback). */
int fc_upconn_connect(fc_server_t *s, fc_exchange_t *ex, fc_upconn_t **out);
/* Takes <up> back from its exchange: pooled when <reusable> and the pool has room, else closed. */
void fc_pool_release(fc_upconn_t *up, int reusable);
/* Closes <up> (idempotent); its exchange must have detached. */
void fc_upconn_close(fc_upconn_t *up);
/* Starts/stops reading the response. */
void fc_upconn_read_start(fc_upconn_t *up);
void fc_upconn_read_stop(fc_upconn_t *up);
/* Recomputes what the policy sees of <u>'s servers (usable, effective weight) from their health,
 * failures, max_conns and backup status, after following what the resolving worker published for
 * the positions of resolving names (a new address: the position's idle connections close and its
 * sticky value changes; vacant: it is never picked, and its requests in flight finish). When passive failures alone leave no server usable, the
 * failed ones are usable again (nginx: "all peers failed, mark them as live for quick recovery"):
 * active checks and `down` still count. Returns how many servers are usable. */
size_t fc_upstream_refresh(fc_upstream_t *u);
/* The outcome of one attempt on <s>: <kind> 0 for success, else an fc_fail_kind counted if the
 * upstream's fail_on lists it (<status> for FC_FAIL_STATUS). <why> is for the log. */
void fc_server_report(fc_server_t *s, int kind, int status, const char *why);
/* Marks <s> as picked for a request (its passive out-time over: this request is the probe) and
 * counts the request as active on it, in every worker's view. */
void fc_server_picked(fc_server_t *s);
/* The same as fc_server_picked, but only while <s> is below max_conns (all workers together, one
 * compare-and-swap): returns 0 (counted) or -1 (at max_conns, nothing counted). */
int fc_server_take(fc_server_t *s);
/* The request picked on <s> is over (or moved elsewhere); in a queued upstream its place goes to
 * the oldest waiter. */
void fc_server_done(fc_server_t *s);
/* The result of one active check of <s> (<ok> 1 or 0, <why> says what happened). */
void fc_server_check_result(fc_server_t *s, int ok, const char *why, uint64_t took_ms);
/* 1 if <kind>/<status> is in <set>. */
int fc_fail_set_has(const fc_fail_set_t *set, int kind, int status);

/* Closes every idle pooled connection of the worker (graceful stop). */
void fc_pool_close_idle(fc_worker_t *w);
/* Sets how long <up> may stay idle from the response's Keep-Alive: timeout=<secs> (-1 = none). */
void fc_upconn_set_server_keepalive(fc_upconn_t *up, long secs);

#endif
