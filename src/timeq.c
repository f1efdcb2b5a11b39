/* timeq.c: per-loop timeout classes driven by one uv_timer_t (see timeq.h). */
#include "fulcrum/timeq.h"

#include "fulcrum/common.h"

static void on_timer(uv_timer_t *timer);

int fc_timeq_init(uv_loop_t *loop, fc_timeq_t *tq)
{
    tq->nclasses = tq->cap = 0;
    tq->classes = NULL;
    tq->armed_at = UINT64_MAX;
    return uv_timer_init(loop, &tq->timer);
}

void fc_timeq_close(fc_timeq_t *tq)
{
    for (size_t i = 0; i < tq->nclasses; i++) free(tq->classes[i]);
    free(tq->classes);
    tq->classes = NULL;
    tq->nclasses = tq->cap = 0;
    if (tq->timer.loop != NULL && !uv_is_closing((uv_handle_t *)&tq->timer)) uv_close((uv_handle_t *)&tq->timer, NULL);
}

fc_timeq_class_t *fc_timeq_class(fc_timeq_t *tq, uint64_t ms)
{
    for (size_t i = 0; i < tq->nclasses; i++)
        if (tq->classes[i]->ms == ms) return tq->classes[i];
    if (tq->nclasses == tq->cap) {
        /* Only the array of pointers moves: a class a caller holds stays where it is. */
        tq->cap = tq->cap ? tq->cap * 2 : 16;
        tq->classes = fc_xrealloc(tq->classes, tq->cap * sizeof(*tq->classes));
    }
    fc_timeq_class_t *c = fc_xmalloc(sizeof(*c));
    fc_list_init(&c->entries);
    c->ms = ms;
    tq->classes[tq->nclasses++] = c;
    return c;
}

static void arm(fc_timeq_t *tq, uint64_t deadline)
{
    uint64_t now = uv_now(tq->timer.loop);
    tq->armed_at = deadline;
    uv_timer_start(&tq->timer, on_timer, deadline > now ? deadline - now : 0, 0);
}

void fc_timeout_set(fc_timeq_t *tq, fc_timeout_t *t, fc_timeq_class_t *cls)
{
    fc_list_remove(&t->node);
    if (cls == NULL) return;
    t->deadline = uv_now(tq->timer.loop) + cls->ms;
    fc_list_insert_tail(&cls->entries, &t->node);
    if (t->deadline < tq->armed_at) arm(tq, t->deadline);
}

static void on_timer(uv_timer_t *timer)
{
    fc_timeq_t *tq = fc_container_of(timer, fc_timeq_t, timer);
    uint64_t now = uv_now(timer->loop);
    uint64_t next = UINT64_MAX;
    tq->armed_at = UINT64_MAX;
    for (size_t i = 0; i < tq->nclasses; i++) {
        fc_list_t *head = &tq->classes[i]->entries;
        /* A callback may arm or clear other entries, so the head is read afresh each time. */
        while (!fc_list_empty(head)) {
            fc_timeout_t *t = fc_list_entry(head->next, fc_timeout_t, node);
            if (t->deadline > now) {
                if (t->deadline < next) next = t->deadline;
                break;
            }
            fc_list_remove(&t->node);
            t->cb(t);
        }
    }
    /* Callbacks may have armed the timer for something earlier than what we found. */
    if (next < tq->armed_at) arm(tq, next);
}
