/* test_ratelimit.c: the bucket tables (take, delay, LRU eviction, collect and apply) and the
 * queue of waiting requests on a real libuv loop. */
#include <string.h>
#include <uv.h>

#include "fulcrum/ratelimit.h"
#include "harness.h"

void test_ratelimit(void);

static fc_rate_limit_conf_t policy(uint64_t rate, uint32_t burst, uint32_t delay, uint32_t max_keys)
{
    fc_rate_limit_conf_t r;
    memset(&r, 0, sizeof(r));
    r.name = "p";
    r.rate = rate;
    r.per = 1000;
    r.burst = burst;
    r.delay = delay;
    r.max_delay = 30000;
    r.max_keys = max_keys;
    return r;
}

static fc_rl_table_t *one_table(fc_rl_registry_t *reg, fc_config_t *cfg, fc_rate_limit_conf_t *r)
{
    static fc_rl_table_t *out[1];
    memset(cfg, 0, sizeof(*cfg));
    cfg->rate_limits = r;
    cfg->nrate_limits = 1;
    ok(fc_rl_assign(reg, cfg, out, NULL) == 0);
    return out[0];
}

static void test_take(void)
{
    fc_rl_registry_t reg = {0};
    fc_config_t cfg;
    double left;
    uint64_t wait;
    subtest("nodelay: burst + 1 at once, then a token per 1/rate; a rejection takes nothing");
    fc_rate_limit_conf_t r = policy(10, 20, 0, 64);
    fc_rl_table_t *t = one_table(&reg, &cfg, &r);
    int pass = 0;
    for (int i = 0; i < 100; i++) pass += fc_rl_take(t, 42, &r, 1000, 30000, &left, &wait) == FC_RL_PASS;
    is_int(pass, 21);
    is_int(fc_rl_take(t, 42, &r, 1000, 30000, &left, &wait), FC_RL_REJECT);
    is_int(wait, 100);
    is_int(fc_rl_take(t, 42, &r, 1100, 30000, &left, &wait), FC_RL_PASS);
    is_int(fc_rl_take(t, 42, &r, 1100, 30000, &left, &wait), FC_RL_REJECT);
    is_int(fc_rl_take(t, 7, &r, 1100, 30000, &left, &wait), FC_RL_PASS); /* another key: its own bucket */
    fc_rl_release(&reg, &cfg, &t);

    subtest("delay: all waits 1/rate more per request, delay N lets N through first");
    r = policy(10, 5, FC_RATE_DELAY_ALL, 64);
    t = one_table(&reg, &cfg, &r);
    is_int(fc_rl_take(t, 1, &r, 0, 30000, &left, &wait), FC_RL_PASS);
    for (int i = 1; i <= 5; i++) {
        is_int(fc_rl_take(t, 1, &r, 0, 30000, &left, &wait), FC_RL_DELAY);
        is_int(wait, 100 * i);
    }
    is_int(fc_rl_take(t, 1, &r, 0, 30000, &left, &wait), FC_RL_REJECT);
    fc_rl_release(&reg, &cfg, &t);
    r = policy(10, 5, 2, 64);
    t = one_table(&reg, &cfg, &r);
    for (int i = 0; i < 3; i++) is_int(fc_rl_take(t, 1, &r, 0, 30000, &left, &wait), FC_RL_PASS);
    is_int(fc_rl_take(t, 1, &r, 0, 30000, &left, &wait), FC_RL_DELAY);
    is_int(wait, 100);
    subtest("a wait beyond max_wait is a rejection that takes nothing");
    is_int(fc_rl_take(t, 1, &r, 0, 150, &left, &wait), FC_RL_REJECT);
    is_int(wait, 50);
    is_int(fc_rl_take(t, 1, &r, 0, 30000, &left, &wait), FC_RL_DELAY);
    is_int(wait, 200);
    fc_rl_release(&reg, &cfg, &t);

    subtest("max_keys: the least recently used key of a set makes room");
    r = policy(1, 0, 0, 8);
    t = one_table(&reg, &cfg, &r);
    is_int(t->nsets, 1);
    for (uint64_t k = 1; k <= 8; k++) is_int(fc_rl_take(t, k, &r, 0, 0, &left, &wait), FC_RL_PASS);
    for (uint64_t k = 1; k <= 8; k++) is_int(fc_rl_take(t, k, &r, 0, 0, &left, &wait), FC_RL_REJECT);
    is_int(fc_rl_take(t, 3, &r, 0, 0, &left, &wait), FC_RL_REJECT); /* 3 is now the most recent */
    is_int(fc_rl_take(t, 9, &r, 0, 0, &left, &wait), FC_RL_PASS);   /* evicts 1 */
    is_int(fc_rl_take(t, 1, &r, 0, 0, &left, &wait), FC_RL_PASS);   /* back full; evicts 2 */
    is_int(fc_rl_take(t, 3, &r, 0, 0, &left, &wait), FC_RL_REJECT);
    is_int(fc_rl_take(t, 2, &r, 0, 0, &left, &wait), FC_RL_PASS);
    ok(atomic_load(&t->evicted) == 3);

    subtest("collect and apply: deltas since the last collection; the store's state written back");
    fc_rl_pending_t p[64];
    size_t n = fc_rl_collect(t, p, 64);
    is_int(n, 8);
    uint32_t taken = 0;
    for (size_t i = 0; i < n; i++) taken += p[i].delta;
    is_int(taken, 8); /* one per bucket held: what an evicted key took was not told, and is lost */
    is_int(fc_rl_collect(t, p, 64), 0);
    is_int(fc_rl_take(t, 5, &r, 0, 0, &left, &wait), FC_RL_REJECT);
    n = fc_rl_collect(t, p, 64);
    is_int(n, 1);
    is_int(p[0].delta, 0);
    fc_rl_apply(t, &p[0], 1.0, 1.0, 0); /* the shared bucket has a token for key 5 */
    is_int(fc_rl_take(t, 5, &r, 0, 0, &left, &wait), FC_RL_PASS);
    fc_rl_apply(t, &p[0], -3.0, 1.0, 0); /* a debt, less the one taken since: -4 */
    ok(left == 0.0);
    is_int(fc_rl_take(t, 5, &r, 4000, 0, &left, &wait), FC_RL_REJECT);
    is_int(fc_rl_take(t, 5, &r, 5000, 0, &left, &wait), FC_RL_PASS);
    fc_rl_release(&reg, &cfg, &t);
    ok(reg.n == 0);
    fc_rl_registry_free(&reg, 1);

    subtest("a policy that stays keeps its table; a new max_keys makes a new one");
    r = policy(1, 0, 0, 64);
    fc_rl_table_t *t1 = one_table(&reg, &cfg, &r);
    fc_rl_table_t *t2 = one_table(&reg, &cfg, &r);
    ok(t1 == t2 && t1->refs == 2 && reg.n == 1);
    fc_rl_release(&reg, &cfg, &t2);
    r.max_keys = 128;
    t2 = one_table(&reg, &cfg, &r);
    ok(t1 != t2 && reg.n == 2);
    fc_rl_registry_free(&reg, 1);
}

static char order[16];
static size_t norder;
typedef struct waiter {
    fc_rl_wait_t w;
    char tag;
} waiter_t;

static void on_due(fc_rl_wait_t *w)
{
    waiter_t *x = fc_container_of(w, waiter_t, w);
    if (norder < sizeof(order) - 1) order[norder++] = x->tag;
}

static void test_waitq(void)
{
    uv_loop_t loop;
    subtest("waits run in due order; a cancelled one never runs");
    uv_loop_init(&loop);
    fc_rl_waitq_t *q = fc_rl_waitq_new(&loop);
    waiter_t ws[5];
    memset(ws, 0, sizeof(ws));
    uint64_t ms[5] = {40, 10, 30, 20, 5};
    for (int i = 0; i < 5; i++) {
        ws[i].tag = (char)('a' + i);
        ok(fc_rl_wait(q, &ws[i].w, ms[i], on_due) == 0);
    }
    fc_rl_wait_cancel(q, &ws[2].w); /* c */
    fc_rl_wait_cancel(q, &ws[4].w); /* e, the first due */
    fc_rl_wait_cancel(q, &ws[4].w); /* twice is nothing */
    for (int i = 0; i < 100 && norder < 3; i++) uv_run(&loop, UV_RUN_ONCE);
    is_str(order, "bda");
    fc_rl_waitq_close(q);
    uv_run(&loop, UV_RUN_DEFAULT);
    is_int(uv_loop_close(&loop), 0);
}

void test_ratelimit(void)
{
    test_take();
    test_waitq();
}
