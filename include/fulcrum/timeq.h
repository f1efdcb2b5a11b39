/* timeq.h: timeouts without a timer handle per connection. A class is one fixed duration; its
 * entries form a list ordered by deadline, because an entry is always (re)appended at the tail
 * when it is armed. One uv_timer_t per loop fires at the earliest head of all classes.
 * Arming, re-arming and clearing are O(1); there is one class per distinct duration, as many as
 * the config and the servers' Keep-Alive timeouts call for (the class table grows). */
#ifndef FULCRUM_TIMEQ_H
#define FULCRUM_TIMEQ_H

#include <stdint.h>
#include <uv.h>

#include "fulcrum/list.h"

typedef struct fc_timeout fc_timeout_t;
typedef void (*fc_timeout_cb)(fc_timeout_t *t);

typedef struct fc_timeq_class {
    fc_list_t entries; /* fc_timeout_t.node, oldest deadline first */
    uint64_t ms;       /* the duration of every entry in this class */
} fc_timeq_class_t;

typedef struct fc_timeq {
    uv_timer_t timer;       /* the one timer; closed by fc_timeq_close */
    uint64_t armed_at;      /* deadline the timer is armed for, UINT64_MAX when idle */
    size_t nclasses;        /* classes in use */
    size_t cap;             /* room in <classes> */
    fc_timeq_class_t **classes; /* owned array of owned classes; it grows, a class never moves */
} fc_timeq_t;

struct fc_timeout {
    fc_list_t node;        /* in its class while armed; self-linked otherwise */
    uint64_t deadline;     /* loop time (ms) when it fires */
    fc_timeout_cb cb;      /* called once when it fires; the entry is already unarmed then */
};

int fc_timeq_init(uv_loop_t *loop, fc_timeq_t *tq);
/* Starts closing the timer and frees the classes; entries must all be cleared already. */
void fc_timeq_close(fc_timeq_t *tq);
/* The class for duration <ms> (> 0), created on first use; never NULL (it aborts when memory is
 * exhausted, like fc_xmalloc). The pointer stays valid until fc_timeq_close. */
fc_timeq_class_t *fc_timeq_class(fc_timeq_t *tq, uint64_t ms);

static inline void fc_timeout_init(fc_timeout_t *t, fc_timeout_cb cb)
{
    fc_list_init(&t->node);
    t->cb = cb;
}
/* Arms <t> to fire <cls>->ms from now (re-arms if armed). A NULL <cls> just clears it. */
void fc_timeout_set(fc_timeq_t *tq, fc_timeout_t *t, fc_timeq_class_t *cls);
static inline void fc_timeout_clear(fc_timeout_t *t) { fc_list_remove(&t->node); }
static inline int fc_timeout_armed(const fc_timeout_t *t) { return fc_list_linked(&t->node); }

#endif
