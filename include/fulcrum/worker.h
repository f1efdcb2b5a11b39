/* worker.h: one event loop and everything it serves: listeners, client connections, upstream
 * pools, the timeout queues and the per-loop freelists. A worker is built from an immutable
 * config; a new config means a new worker (a new generation), never a change under its feet. */
#ifndef FULCRUM_WORKER_H
#define FULCRUM_WORKER_H

#include <uv.h>

#include "fulcrum/buf.h"
#include "fulcrum/config.h"
#include "fulcrum/list.h"
#include "fulcrum/router.h"
#include "fulcrum/timeq.h"

typedef struct fc_worker fc_worker_t;
typedef struct fc_upstream fc_upstream_t;
typedef struct fc_exchange fc_exchange_t;

typedef struct fc_listener {
    uv_tcp_t tcp;        /* the listening handle; the array is freed after the last close callback */
    fc_worker_t *w;      /* owner */
    const fc_listener_conf_t *conf; /* borrowed from w->cfg */
} fc_listener_t;

struct fc_worker {
    uv_loop_t *loop;                 /* borrowed: the loop this worker runs on */
    const fc_config_t *cfg;          /* borrowed: outlives the worker */
    fc_router_t router;              /* owned */
    fc_upstream_t *upstreams;        /* owned array of cfg->nupstreams */
    fc_timeq_t tq;                   /* the worker's one timer and its classes */
    fc_timeq_class_t *t_header;      /* limits.client_header_timeout */
    fc_timeq_class_t *t_body;        /* limits.client_body_timeout */
    fc_timeq_class_t *t_send;        /* limits.send_timeout */
    fc_timeq_class_t *t_keepalive;   /* limits.keepalive_timeout (NULL when 0) */
    fc_timeq_class_t *t_linger;      /* lingering close after a final response */
    fc_timeq_class_t **route_connect; /* owned arrays, per route: its connect, send and read timeouts */
    fc_timeq_class_t **route_send;
    fc_timeq_class_t **route_read;
    fc_bufpool_t client_bufs;        /* read buffers of client connections */
    fc_bufpool_t upstream_bufs;      /* read buffers of upstream connections */
    fc_exchange_t *free_exchanges;   /* freelist, linked through next_free */
    size_t nfree_exchanges;
    fc_list_t conns;                 /* every client connection (fc_conn_t.link) */
    size_t nconns;
    fc_list_t upconns;               /* every upstream connection (fc_upconn_t.all) */
    fc_listener_t *listeners;        /* owned array of cfg->nlisteners */
    size_t nlisteners;
    size_t listeners_open;           /* listener handles not closed yet */
    int *listen_fds;                 /* borrowed: sockets the listeners adopt */
    uv_signal_t sig_term, sig_int, sig_quit; /* graceful stop */
    uv_timer_t drain_timer;          /* bounds the graceful stop by shutdown_timeout */
    int draining;                    /* a graceful stop has begun */
    int stopped;                     /* everything has been asked to close */
    int exit_code;                   /* what fc_worker_run returns */
};

/* Opens the listening sockets of <cfg> (SO_REUSEADDR, non-blocking, listening) into <fds>
 * (cfg->nlisteners entries). Returns 0, or -1 with <err> set and nothing left open. */
int fc_listen_open(const fc_config_t *cfg, int *fds, fc_err_t *err);

/* Runs a worker for <cfg> on a fresh loop, adopting <fds> as its listeners, until a graceful
 * stop completes. Returns the process exit status (0 after SIGTERM/SIGINT/SIGQUIT). */
int fc_worker_run(const fc_config_t *cfg, int *fds);

/* Begins the graceful stop: stop accepting, finish in-flight requests, close idle connections. */
void fc_worker_drain(fc_worker_t *w);

/* Called by connection close callbacks: ends the loop's work once a draining worker is empty. */
void fc_worker_check_drained(fc_worker_t *w);

#endif
