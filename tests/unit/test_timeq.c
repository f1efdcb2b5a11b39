/* test_timeq.c: timeout classes on a real libuv loop (durations of a few ms, bounded runs). */
#include <string.h>
#include <uv.h>

#include "fulcrum/common.h"
#include "fulcrum/timeq.h"
#include "harness.h"

void test_timeq(void);

typedef struct ent {
    fc_timeout_t t;
    char tag;
    fc_timeout_t *chain;         /* armed in <chain_cls> when this one fires, if set */
    fc_timeq_class_t *chain_cls;
    uint64_t chain_ms;           /* if set, <chain> goes into the class for this many ms, made on the spot */
    int repeat;                  /* re-armed in its own class this many more times */
    fc_timeq_class_t *cls;
} ent_t;

static uv_loop_t loop;
static fc_timeq_t tq;
static char fired[64];
static size_t nfired;
static int early; /* callbacks that ran before their deadline */

static void on_fire(fc_timeout_t *t)
{
    ent_t *e = fc_container_of(t, ent_t, t);
    if (uv_now(&loop) < t->deadline) early++;
    if (fc_timeout_armed(t)) early += 100; /* the entry must be unarmed when its callback runs */
    if (nfired < sizeof(fired) - 1) fired[nfired++] = e->tag;
    fired[nfired] = '\0';
    if (e->chain != NULL) fc_timeout_set(&tq, e->chain, e->chain_ms ? fc_timeq_class(&tq, e->chain_ms) : e->chain_cls);
    if (e->repeat > 0) {
        e->repeat--;
        fc_timeout_set(&tq, t, e->cls);
    }
}

static void ent_init(ent_t *e, char tag)
{
    memset(e, 0, sizeof(*e));
    fc_timeout_init(&e->t, on_fire);
    e->tag = tag;
}

static void arm(ent_t *e, fc_timeq_class_t *cls)
{
    e->cls = cls;
    fc_timeout_set(&tq, &e->t, cls);
}

/* Runs the loop until <want> callbacks have run, or the timer has nothing left to wait for. */
static void run_until(size_t want)
{
    for (int i = 0; i < 200 && nfired < want && uv_loop_alive(&loop); i++) uv_run(&loop, UV_RUN_ONCE);
}

/* Runs the loop until nothing is armed: exactly <want> fired, in that order, none early. */
#define FIRED_IS(want)                                                                             \
    do {                                                                                           \
        run_until(strlen(want) + 1);                                                               \
        is_str(fired, (want));                                                                     \
        is_int(early, 0);                                                                          \
        ok(!uv_loop_alive(&loop));                                                                 \
    } while (0)

static void reset(void)
{
    nfired = 0;
    fired[0] = '\0';
    early = 0;
}

void test_timeq(void)
{
    is_int(uv_loop_init(&loop), 0);
    is_int(fc_timeq_init(&loop, &tq), 0);

    subtest("one class per duration, as many as there are durations");
    fc_timeq_class_t *c1 = fc_timeq_class(&tq, 1), *c5 = fc_timeq_class(&tq, 5);
    fc_timeq_class_t *c15 = fc_timeq_class(&tq, 15), *c30 = fc_timeq_class(&tq, 30);
    ok(c1 != NULL && c5 != NULL && c15 != NULL && c30 != NULL);
    ok(fc_timeq_class(&tq, 5) == c5);
    ok(c5 != c15 && c15 != c30 && c1 != c5);
    is_int(c30->ms, 30);
    is_int(tq.nclasses, 4);
    {
        /* Classes are never refused (a NULL class is "no timeout"): 1000 distinct durations, the
         * first ones still where they were after the array grew. */
        fc_timeq_t many;
        fc_timeq_class_t *first = NULL, *got[1000];
        int all = 1, distinct = 1;
        is_int(fc_timeq_init(&loop, &many), 0);
        for (uint64_t ms = 1; ms <= 1000; ms++) {
            got[ms - 1] = fc_timeq_class(&many, ms);
            all &= got[ms - 1] != NULL && got[ms - 1]->ms == ms;
            if (ms == 1) first = got[0];
            if (ms > 1) distinct &= got[ms - 1] != got[ms - 2];
        }
        ok(all);
        ok(distinct);
        is_int(many.nclasses, 1000);
        ok(fc_timeq_class(&many, 1) == first);
        ok(fc_timeq_class(&many, 700) == got[699]);
        is_int(many.nclasses, 1000);
        fc_timeq_close(&many);
        uv_run(&loop, UV_RUN_NOWAIT);
    }

    subtest("entries fire in deadline order, same-class entries in arming order");
    ent_t a, b, c, d, e;
    ent_init(&a, 'a');
    ent_init(&b, 'b');
    ent_init(&c, 'c');
    ent_init(&d, 'd');
    ent_init(&e, 'e');
    reset();
    ok(!fc_timeout_armed(&a.t));
    arm(&a, c30);
    arm(&b, c5);
    arm(&c, c5);
    arm(&d, c15);
    arm(&e, c1);
    ok(fc_timeout_armed(&a.t));
    FIRED_IS("ebcda");
    ok(!fc_timeout_armed(&a.t) && !fc_timeout_armed(&e.t));

    subtest("re-arming moves an entry to the tail, also into another class");
    reset();
    arm(&a, c5);
    arm(&b, c5);
    arm(&c, c5);
    arm(&a, c5);
    arm(&d, c30);
    arm(&d, c1);
    FIRED_IS("dbca");

    subtest("re-arming the earliest entry postpones it past a later one");
    reset();
    arm(&a, c5);
    arm(&b, c15);
    uv_sleep(8);
    uv_update_time(&loop);
    arm(&a, c15); /* now due after b */
    FIRED_IS("ba");

    subtest("clearing prevents firing");
    reset();
    arm(&a, c1);
    arm(&b, c5);
    arm(&c, c5);
    fc_timeout_clear(&a.t);
    fc_timeout_set(&tq, &b.t, NULL);
    fc_timeout_clear(&a.t); /* twice is harmless */
    ok(!fc_timeout_armed(&a.t) && !fc_timeout_armed(&b.t));
    FIRED_IS("c");
    reset();
    arm(&a, c1);
    fc_timeout_clear(&a.t);
    FIRED_IS("");

    subtest("a callback arms other entries and re-arms itself");
    reset();
    a.chain = &b.t;
    a.chain_cls = c1; /* due before c, which was armed earlier */
    c.repeat = 2;
    arm(&c, c15);
    arm(&a, c1);
    FIRED_IS("abccc");
    ok(!fc_timeout_armed(&c.t));
    a.chain = NULL;

    subtest("a callback arms an entry in a class it creates");
    reset();
    /* e is due long after d even when a's callback runs late on a loaded machine. */
    fc_timeq_class_t *c300 = fc_timeq_class(&tq, 300);
    a.chain = &d.t;
    a.chain_ms = 3;
    arm(&a, c1);
    arm(&e, c300);
    FIRED_IS("ade");
    is_int(tq.nclasses, 6);
    a.chain = NULL;

    subtest("an entry in the 100th class fires on time");
    reset();
    for (uint64_t ms = 100; ms < 196; ms++) fc_timeq_class(&tq, ms); /* 300 exists already */
    is_int(tq.nclasses, 102);
    arm(&b, fc_timeq_class(&tq, 2));
    is_int(tq.nclasses, 103);
    FIRED_IS("b");

    subtest("close, then the loop closes cleanly");
    fc_timeq_close(&tq);
    is_int(uv_run(&loop, UV_RUN_DEFAULT), 0);
    is_int(uv_loop_close(&loop), 0);
}
