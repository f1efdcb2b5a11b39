/* queue.c: the request queue at max_conns (see queue.h). The line is shared (shm.h's
 * fc_shm_queue_t, under its lock); each worker keeps its own waiters in ticket order beside it.
 * No wake-up is lost between a place freed and a request joining the line: the freeing side gives
 * its place back, then looks for waiters; the joining side joins, then looks for free places; a
 * sequentially consistent fence in each means at least one of them sees the other. */
#include "fulcrum/queue.h"

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "fulcrum/log.h"
#include "fulcrum/upstream.h"
#include "fulcrum/worker.h"

#define LOAD(x) atomic_load_explicit(&(x), memory_order_relaxed)

static fc_worker_t *W(const fc_queue_t *q) { return q->u->w; }

/* The server of <q>'s upstream whose shared slot is <slot>, or -1 (this config does not have it:
 * an older or newer generation's grant). */
static int server_of(const fc_queue_t *q, uint32_t slot)
{
    const fc_upstream_t *u = q->u;
    for (size_t i = 0; i < u->conf->nservers; i++)
        if (u->servers[i].st == &W(q)->shm->servers[slot]) return (int)i;
    return -1;
}

/* Gives back a place on shared slot <slot> that this worker holds but has no server for. */
static void give_back_slot(fc_queue_t *q, uint32_t slot)
{
    fc_shm_server_t *st = &W(q)->shm->servers[slot];
    atomic_fetch_sub_explicit(&st->active, 1, memory_order_relaxed);
    atomic_fetch_sub_explicit(&st->active_by[W(q)->proc], 1, memory_order_relaxed);
}

/* Takes a place on a server of <q>'s upstream for the line: <first> when it has room (the server
 * that just freed one), else the usable server with the fewest requests that has room. */
static fc_server_t *take_place(fc_queue_t *q, fc_server_t *first)
{
    if (first != NULL && fc_server_take(first) == 0) return first;
    fc_upstream_t *u = q->u;
    for (;;) {
        if (fc_upstream_refresh(u) == 0) return NULL;
        fc_server_t *best = NULL;
        for (size_t i = 0; i < u->conf->nservers; i++)
            if (u->view[i].usable && (best == NULL || u->view[i].active < u->view[best - u->servers].active))
                best = &u->servers[i];
        if (best == NULL) return NULL;
        if (fc_server_take(best) == 0) return best;
        /* Another worker took its last place first: look again (refresh now sees it full). */
    }
}

/* While requests wait and a place is free, hands places to the oldest waiters, in any worker. */
static void dispatch(fc_queue_t *q, fc_server_t *first)
{
    fc_worker_t *w = W(q);
    fc_shm_queue_t *sq = q->shm;
    while (atomic_load(&sq->waiting) > 0) {
        fc_server_t *s = take_place(q, first);
        first = NULL;
        if (s == NULL) return;
        uint32_t slot = (uint32_t)(s->st - w->shm->servers);
        int proc = -1;
        fc_shm_queue_lock(sq, w->proc);
        for (uint64_t t = sq->head; t < sq->tail; t++) {
            fc_shm_waiter_t *c = &sq->cells[t % FC_SHM_QUEUE_RING];
            if (c->state != FC_QW_WAITING) continue;
            c->state = FC_QW_GRANTED;
            c->slot = slot;
            proc = c->proc;
            atomic_fetch_sub(&sq->waiting, 1);
            break;
        }
        fc_shm_queue_unlock(sq);
        if (proc < 0) { /* the last waiter left meanwhile */
            atomic_fetch_sub_explicit(&s->st->active, 1, memory_order_relaxed);
            atomic_fetch_sub_explicit(&s->st->active_by[w->proc], 1, memory_order_relaxed);
            return;
        }
        if ((unsigned)proc != w->proc) { /* the place is counted for the waiter's process now */
            atomic_fetch_sub_explicit(&s->st->active_by[w->proc], 1, memory_order_relaxed);
            atomic_fetch_add_explicit(&s->st->active_by[proc], 1, memory_order_relaxed);
        }
        fc_shm_wake(w->shm, (unsigned)proc); /* itself too: grants are taken up in a turn of their own */
    }
}

void fc_queue_on_release(fc_server_t *s)
{
    fc_queue_t *q = s->upstream->queue;
    atomic_thread_fence(memory_order_seq_cst); /* the place given back, before looking for waiters */
    if (atomic_load_explicit(&q->shm->waiting, memory_order_relaxed) > 0) dispatch(q, s);
}

int fc_queue_busy(const fc_queue_t *q) { return atomic_load_explicit(&q->shm->waiting, memory_order_relaxed) > 0; }

unsigned fc_queue_size(const fc_upstream_t *u)
{
    return u->queue != NULL ? atomic_load_explicit(&u->queue->shm->waiting, memory_order_relaxed) : 0;
}

static void on_wait_timeout(fc_timeout_t *t);

int fc_queue_wait(fc_queue_t *q, fc_queue_wait_t *qw, fc_queue_cb cb)
{
    fc_worker_t *w = W(q);
    fc_shm_queue_t *sq = q->shm;
    fc_shm_queue_lock(sq, w->proc);
    if (atomic_load(&sq->waiting) >= q->u->conf->queue.max || sq->tail - sq->head >= FC_SHM_QUEUE_RING) {
        fc_shm_queue_unlock(sq);
        return -1;
    }
    qw->ticket = sq->tail++;
    sq->cells[qw->ticket % FC_SHM_QUEUE_RING] =
        (fc_shm_waiter_t){.ticket = qw->ticket, .proc = (uint16_t)w->proc, .state = FC_QW_WAITING};
    atomic_fetch_add(&sq->waiting, 1);
    fc_shm_queue_unlock(sq);
    qw->q = q;
    qw->cb = cb;
    qw->since = uv_now(w->loop);
    fc_list_insert_tail(&q->waiters, &qw->link);
    fc_timeout_init(&qw->timeout, on_wait_timeout);
    fc_timeout_set(&w->tq, &qw->timeout, q->t_wait);
    atomic_thread_fence(memory_order_seq_cst); /* in line, before looking for free places */
    dispatch(q, NULL);
    return 0;
}

/* Takes <qw> out of the shared line; returns the shared slot granted to it meanwhile, or
 * UINT32_MAX when none was. */
static uint32_t unlink_waiter(fc_queue_wait_t *qw)
{
    fc_queue_t *q = qw->q;
    fc_shm_queue_t *sq = q->shm;
    uint32_t granted = UINT32_MAX;
    fc_list_remove(&qw->link);
    fc_timeout_clear(&qw->timeout);
    qw->q = NULL;
    fc_shm_queue_lock(sq, W(q)->proc);
    fc_shm_waiter_t *c = &sq->cells[qw->ticket % FC_SHM_QUEUE_RING];
    if (c->ticket == qw->ticket && c->state != FC_QW_FREE) {
        if (c->state == FC_QW_WAITING) atomic_fetch_sub(&sq->waiting, 1);
        else granted = c->slot;
        c->state = FC_QW_FREE;
        fc_shm_queue_trim(sq);
    }
    fc_shm_queue_unlock(sq);
    return granted;
}

/* Hands back a place granted to a waiter that will not use it: to the next in line. */
static void pass_on(fc_queue_t *q, uint32_t slot)
{
    int i = server_of(q, slot);
    if (i >= 0) {
        fc_server_done(&q->u->servers[i]);
        return;
    }
    give_back_slot(q, slot);
    atomic_thread_fence(memory_order_seq_cst);
    dispatch(q, NULL);
}

void fc_queue_leave(fc_queue_wait_t *qw)
{
    if (qw->q == NULL) return;
    fc_queue_t *q = qw->q;
    uint32_t granted = unlink_waiter(qw);
    if (granted != UINT32_MAX) pass_on(q, granted);
}

/* queue.timeout ran out; a place granted just before still counts (it is used, not refused). */
static void on_wait_timeout(fc_timeout_t *t)
{
    fc_queue_wait_t *qw = fc_container_of(t, fc_queue_wait_t, timeout);
    fc_queue_t *q = qw->q;
    uint32_t granted = unlink_waiter(qw);
    int i = granted != UINT32_MAX ? server_of(q, granted) : -1;
    if (granted != UINT32_MAX && i < 0) pass_on(q, granted);
    qw->cb(qw, i);
}

/* The worker's eventfd: places were granted to its waiters (or freed by the master after a
 * worker died). Each queue's granted waiters are a prefix of its list, in ticket order, because
 * a place always goes to the oldest waiting cell. */
static void on_wake(uv_poll_t *p, int status, int events)
{
    (void)events;
    fc_worker_t *w = p->data;
    uint64_t n;
    if (status < 0) return;
    while (read(w->shm->wake_fd[w->proc], &n, sizeof(n)) < 0 && errno == EINTR) continue;
    for (size_t k = 0; k < w->cfg->nupstreams; k++) {
        fc_queue_t *q = w->upstreams[k].queue;
        if (q == NULL) continue;
        fc_list_t granted;
        fc_list_init(&granted);
        fc_shm_queue_lock(q->shm, w->proc);
        while (!fc_list_empty(&q->waiters)) {
            fc_queue_wait_t *qw = fc_list_entry(q->waiters.next, fc_queue_wait_t, link);
            fc_shm_waiter_t *c = &q->shm->cells[qw->ticket % FC_SHM_QUEUE_RING];
            if (c->ticket != qw->ticket || c->state != FC_QW_GRANTED) break;
            c->state = FC_QW_FREE;
            qw->ticket = c->slot; /* kept here until the callback below */
            fc_list_remove(&qw->link);
            fc_list_insert_tail(&granted, &qw->link);
        }
        fc_shm_queue_trim(q->shm);
        fc_shm_queue_unlock(q->shm);
        while (!fc_list_empty(&granted)) {
            fc_queue_wait_t *qw = fc_list_entry(granted.next, fc_queue_wait_t, link);
            fc_list_remove(&qw->link);
            fc_timeout_clear(&qw->timeout);
            qw->q = NULL;
            uint32_t slot = (uint32_t)qw->ticket;
            int i = server_of(q, slot);
            if (i < 0) { /* a server this config does not have: the place goes to the next in line */
                pass_on(q, slot);
                continue;
            }
            qw->cb(qw, i);
        }
        atomic_thread_fence(memory_order_seq_cst);
        dispatch(q, NULL); /* places the master freed (a worker died) reach the line too */
    }
}

int fc_queues_init(fc_worker_t *w, fc_err_t *err)
{
    const fc_config_t *cfg = w->cfg;
    size_t nservers = fc_shm_nservers(cfg);
    int any = 0;
    for (size_t i = 0; i < cfg->nupstreams; i++) {
        fc_upstream_t *u = &w->upstreams[i];
        uint32_t slot = w->slots[nservers + i];
        if (cfg->upstreams[i].queue.max == 0 || slot >= FC_SHM_QUEUES) continue;
        fc_queue_t *q = fc_xcalloc(1, sizeof(*q));
        q->u = u;
        q->shm = &w->shm->queues[slot];
        fc_list_init(&q->waiters);
        q->t_wait = fc_timeq_class(&w->tq, cfg->upstreams[i].queue.timeout);
        u->queue = q;
        any = 1;
    }
    if (!any) return 0;
    int r = uv_poll_init(w->loop, &w->wake_poll, w->shm->wake_fd[w->proc]);
    if (r != 0) return fc_err_set(err, "queue wake-up: %s", uv_strerror(r));
    w->wake_poll.data = w;
    uv_poll_start(&w->wake_poll, UV_READABLE, on_wake);
    /* Wake-ups meant for a process that used this slot before are read and ignored. */
    return 0;
}

void fc_queues_free(fc_worker_t *w)
{
    if (w->upstreams == NULL) return;
    for (size_t i = 0; i < w->cfg->nupstreams; i++) {
        free(w->upstreams[i].queue);
        w->upstreams[i].queue = NULL;
    }
}
