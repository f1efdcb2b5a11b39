/* queue.h: the request queue of an upstream at max_conns (`queue: { max, timeout }`). While every
 * usable server is at max_conns a request waits here instead of failing, in one FIFO line for all
 * workers and generations (fc_shm_queue_t in the shared segment). A server place freed in any
 * worker goes straight to the oldest waiter, counted for it before it knows (HAProxy's pendconn
 * hand-off): the freeing worker marks the waiter's cell granted and writes to the waiting worker's
 * eventfd, which wakes its loop; nothing polls. This module knows servers and the shared segment,
 * not exchanges: a waiter is told the outcome through its callback. */
#ifndef FULCRUM_QUEUE_H
#define FULCRUM_QUEUE_H

#include <stdint.h>

#include "fulcrum/common.h"
#include "fulcrum/list.h"
#include "fulcrum/shm.h"
#include "fulcrum/timeq.h"

typedef struct fc_worker fc_worker_t;
typedef struct fc_upstream fc_upstream_t;
struct fc_server;
typedef struct fc_queue_wait fc_queue_wait_t;

/* The outcome of a wait: <server> is the index in its upstream of the server whose place is now
 * counted for the waiter (it must use it, or give it back with fc_server_done), or -1 when
 * queue.timeout ran out. Called once per fc_queue_wait that returned 0, unless fc_queue_leave came
 * first; never from inside fc_queue_wait, fc_queue_leave or fc_server_done (from the wake-up or
 * the timeout, in a loop turn of its own). */
typedef void (*fc_queue_cb)(fc_queue_wait_t *qw, int server);

/* One request's place in line; lives in the exchange. */
struct fc_queue_wait {
    fc_list_t link;          /* in its queue's waiters while waiting */
    fc_timeout_t timeout;    /* queue.timeout */
    uint64_t ticket;         /* its place in the shared line */
    uint64_t since;          /* loop time (ms) it began waiting */
    struct fc_queue *q;      /* the queue it waits in, NULL when not waiting */
    fc_queue_cb cb;
};

/* An upstream's queue as one worker sees it. */
typedef struct fc_queue {
    fc_upstream_t *u;        /* owner */
    fc_shm_queue_t *shm;     /* the shared line, for every worker and generation */
    fc_list_t waiters;       /* this worker's fc_queue_wait_t, oldest first */
    fc_timeq_class_t *t_wait; /* queue.timeout */
} fc_queue_t;

/* Builds the queues of w->upstreams (those with queue.max > 0: u->queue) and starts watching the
 * worker's wake-up eventfd. Returns 0 or -1 with <err>. */
int fc_queues_init(fc_worker_t *w, fc_err_t *err);
/* Frees them (after the loop ended: every waiter has left). */
void fc_queues_free(fc_worker_t *w);

/* 1 when requests wait in <q>'s line, in any worker: a new request waits behind them. */
int fc_queue_busy(const fc_queue_t *q);
/* Puts <qw> in line. Returns 0 (waiting: <cb> will be called, see fc_queue_cb) or -1 (the line
 * holds queue.max requests already: nothing to undo, no callback). */
int fc_queue_wait(fc_queue_t *q, fc_queue_wait_t *qw, fc_queue_cb cb);
/* Takes <qw> out of line (a no-op when it is not waiting): its client left, or it is answered
 * otherwise. A place granted to it meanwhile goes to the next in line. */
void fc_queue_leave(fc_queue_wait_t *qw);
/* Called by fc_server_done once a place of <s> (in a queued upstream) was given back: when
 * someone waits, the place is taken again and handed to the oldest waiter. */
void fc_queue_on_release(struct fc_server *s);
/* Requests waiting in <u>'s line, all workers together (the queue_size gauge); 0 without a queue. */
unsigned fc_queue_size(const fc_upstream_t *u);

#endif
