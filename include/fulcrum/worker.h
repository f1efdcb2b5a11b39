/* worker.h: one event loop and everything it serves: listeners, client connections, upstream
 * pools, the timeout queues and the per-loop freelists. A worker is built from an immutable
 * config; a new config means a new worker (a new generation), never a change under its feet. */
#ifndef FULCRUM_WORKER_H
#define FULCRUM_WORKER_H

#include <uv.h>

#include "fulcrum/body.h"
#include "fulcrum/buf.h"
#include "fulcrum/config.h"
#include "fulcrum/headers.h"
#include "fulcrum/list.h"
#include "fulcrum/metrics.h"
#include "fulcrum/router.h"
#include "fulcrum/shm.h"
#include "fulcrum/timeq.h"

typedef struct fc_worker fc_worker_t;
typedef struct fc_upstream fc_upstream_t;
typedef struct fc_exchange fc_exchange_t;

typedef struct fc_listener {
    uv_poll_t poll;      /* readable: connections are waiting; the array is freed after the last
                            close callback */
    int fd;              /* this process's descriptor of the shared listening socket: owned, closed
                            in the close callback (the master and the other workers have their own) */
    fc_worker_t *w;      /* owner */
    const fc_listener_conf_t *conf; /* borrowed from w->cfg */
    fc_metrics_series_t *ms;        /* its series in the worker's metric block, NULL = metrics off */
} fc_listener_t;

/* What the master hands a worker process. */
typedef struct fc_worker_args {
    const fc_config_t *cfg;  /* borrowed: the generation's config */
    int *fds;                /* borrowed: listening sockets, one per cfg->listeners entry */
    fc_shm_t *shm;           /* borrowed: the shared segment */
    const uint32_t *slots;   /* borrowed: shm slot of each server, in config order */
    struct fc_rl_table **rl_tables; /* borrowed: the bucket table of each rate limit, in config order */
    unsigned generation;     /* the generation this worker belongs to */
    unsigned index;          /* its index in the generation (0 runs the active health checks) */
    unsigned proc;           /* its process slot in shm (active counts, readiness) */
    int master_pid;          /* names the generation's hand-over sockets */
} fc_worker_args_t;

struct fc_worker {
    uv_loop_t *loop;                 /* borrowed: the loop this worker runs on */
    const fc_config_t *cfg;          /* borrowed: outlives the worker */
    fc_shm_t *shm;                   /* borrowed: shared server state */
    const uint32_t *slots;           /* borrowed: shm slot of each server */
    struct fc_rl_table **rl_tables;  /* borrowed: the bucket table of each rate limit */
    struct fc_rl_waitq *rl_waitq;    /* owned: requests waiting their turn (rate_limits.delay) */
    struct fc_redis_store *redis;    /* owned: the Redis reconciliation (worker 0 only), or NULL */
    unsigned generation, index, proc; /* from fc_worker_args_t */
    int master_pid;
    uv_poll_t handover_poll;         /* receives connections handed over by an older generation */
    int handover_fd;                 /* the abstract unix datagram socket behind it, or -1 */
    int handover_send_fd;            /* our socket for handing connections over, or -1 */
    unsigned handover_gen;           /* draining for a reload: hand connections to this generation */
    unsigned handover_n;             /* ... which has this many workers */
    unsigned handover_next;          /* round robin over them */
    uv_signal_t sig_usr1, sig_usr2;  /* reopen logs; drain and hand over (reload) */
    uv_poll_t wake_poll;             /* queue.c: shm->wake_fd[proc] is readable (places were granted to
                                        this worker's waiters); initialised only with a queue */
    uv_timer_t delay_timer;          /* shutdown_delay before the graceful stop */
    int stopping;                    /* SIGTERM arrived: health endpoints answer 503 */
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
    fc_timeq_class_t **route_tunnel; /* owned array, per route: the idle timeout of its tunnels */
    fc_timeq_class_t **route_request; /* owned array, per route: its request deadline, or NULL (none) */
    fc_head_opts_t head_opts;        /* how fulcrum's own fields are written (via, underscores_in_headers) */
    fc_head_opts_t *listener_opts;   /* owned array, per cfg listener: head_opts with its https and HSTS */
    char (*hsts_lines)[96];          /* owned array, per cfg listener: the HSTS line listener_opts points at */
    fc_timeq_class_t *t_tls;         /* limits.tls_handshake_timeout */
    fc_timeq_class_t *t_tunnel_orphan; /* shutdown_timeout: the deadline of an adopted tunnel whose
                                          server this configuration does not have */
    fc_bufpool_t client_bufs;        /* read buffers of client connections */
    fc_bufpool_t upstream_bufs;      /* read buffers of upstream connections */
    fc_bodyq_pool_t bodyq;           /* blocks of buffered and compressed response bodies */
    struct fc_codec *idle_codecs[4][4]; /* owned: compression streams kept for reuse, per coding */
    unsigned nidle_codecs[4];
    fc_timeq_class_t *t_cflush;      /* a compressed stream with input not flushed: flushed after this */
    uint64_t buffering_warned;       /* uv_now() of the last "buffer_memory reached" log line */
    size_t req_buffers;              /* bytes of request bodies held in exchanges' req_buf now */
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
    uv_timer_t accept_timer;         /* resumes accepting after running out of descriptors */
    uv_timer_t tick_timer;           /* every second: the pool's idle counts to the metric block, and
                                        the heap trimmed after TLS handshakes */
    uint64_t yield_since;            /* uv_hrtime() since waiting connections are left to a less
                                        loaded worker (0: not yielding) */
    uv_check_t accept_check;         /* ends a yielding episode once the socket was not readable */
    int accept_seen;                 /* the listening socket was readable in this loop turn */
    int draining;                    /* a graceful stop has begun */
    int stopped;                     /* everything has been asked to close */
    int exit_code;                   /* what fc_worker_run returns */
    int timing;                      /* exchanges read the clock: something reads their durations
                                        (the access log, the metrics) */
    char rid[32];                    /* the request id made last here: 16 random hex digits, then a
                                        count in 16 hex digits, incremented in place */
    struct fc_resolver *resolver;    /* owned (resolve.c): re-resolves the names with resolve: true, in
                                        the worker that runs the active checks; NULL elsewhere */
    fc_metrics_local_t metrics;      /* this worker's metric block; metrics.shm NULL = metrics off
                                        (no listener serves metrics or status) */
};

/* Opens the listening sockets of <cfg> (SO_REUSEADDR, non-blocking, listening) into <fds>
 * (cfg->nlisteners entries). Returns 0, or -1 with <err> set and nothing left open. */
int fc_listen_open(const fc_config_t *cfg, int *fds, fc_err_t *err);

/* Runs a worker on a fresh loop, adopting args->fds as its listeners, until a graceful stop
 * completes. Returns the process exit status: 0 after SIGTERM/SIGINT/SIGQUIT, 1 when setup
 * failed or a libuv handle was still open once the loop had run dry (a leak: each is logged as
 * "handle left open at exit: TYPE", then closed). */
int fc_worker_run(const fc_worker_args_t *args);

/* Hands client connection <c> (between requests, no exchange) to the newer generation with the
 * bytes it has read but not parsed. Returns 0 (handed over: the caller closes it here), 1 (a TLS
 * connection: it stays here as a relay of its plaintext to the newer generation) or -1 (kept). */
struct fc_conn;
int fc_worker_handover(fc_worker_t *w, struct fc_conn *c);

/* Sends tunnel <g> (paused, no write in flight) to the newer generation: both sockets and the
 * bytes each side read and the other has not written. Returns 0 (sent: the caller closes its
 * copies) or -1. */
struct fc_upgrade;
int fc_worker_handover_tunnel(fc_worker_t *w, struct fc_upgrade *g);

/* Begins the graceful stop: stop accepting, finish in-flight requests, close idle connections. */
void fc_worker_drain(fc_worker_t *w);

/* How the heads of a connection accepted on <l> (NULL: unknown) are written. */
static inline const fc_head_opts_t *fc_worker_head_opts(const fc_worker_t *w, const fc_listener_conf_t *l)
{
    return l != NULL ? &w->listener_opts[l - w->cfg->listeners] : &w->head_opts;
}

/* Publishes w->nconns in shared memory, where the other workers read it to balance accepts. */
static inline void fc_worker_count_conns(fc_worker_t *w)
{
    atomic_store_explicit(&w->shm->conns[w->proc], (unsigned)w->nconns, memory_order_relaxed);
}

/* Called by connection close callbacks: ends the loop's work once a draining worker is empty. */
void fc_worker_check_drained(fc_worker_t *w);

#endif
