/* balance_random.c: weighted random, and with opts->two the power of two choices: draw two
 * distinct servers by weight and send to the one with fewer active requests per weight. Owns a
 * splitmix64 generator seeded per balancer; reads balance.h's view afresh on every pick. */
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "fulcrum/balance.h"

extern const fc_balancer_ops_t fc_balance_random_ops;

typedef struct random_balancer {
    fc_balancer_t super; /* must be first */
    size_t n;            /* number of servers */
    int two;             /* 1: power of two choices */
    uint64_t state;      /* splitmix64 state, seeded from the pid, the time and this address */
} random_balancer_t;

/* The next pseudo-random 64-bit word of <b>'s generator. */
static uint64_t next_u64(random_balancer_t *b)
{
    b->state += 0x9e3779b97f4a7c15u;
    return fc__balance_mix64(b->state);
}

/* A draw in [0, <bound>); the modulo bias is below bound / 2^64, far under any test's notice. */
static uint64_t draw_below(random_balancer_t *b, uint64_t bound) { return next_u64(b) % bound; }

static fc_balancer_t *random_create(const fc_balance_server_t *servers, size_t n, const fc_balance_opts_t *opts)
{
    random_balancer_t *b = calloc(1, sizeof(*b));
    if (b == NULL) return NULL;
    b->super.ops = &fc_balance_random_ops;
    b->n = n;
    b->two = opts != NULL && opts->two;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    b->state = fc__balance_mix64((uint64_t)getpid() ^ ((uint64_t)ts.tv_sec << 20) ^ (uint64_t)ts.tv_nsec) ^
               (uint64_t)(uintptr_t)b;
    return &b->super;
}

/* Draws one open server other than <skip> (-1: none skipped) with probability proportional to
 * its weight; -1 when no such server is open. */
static int draw_weighted(random_balancer_t *b, const fc_balance_server_t *servers, size_t n,
                         const fc_balance_req_t *req, int skip)
{
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++)
        if ((int)i != skip && fc__balance_open(servers, req, i)) total += (uint64_t)servers[i].weight;
    if (total == 0) return -1;
    uint64_t r = draw_below(b, total);
    for (size_t i = 0; i < n; i++) {
        if ((int)i == skip || !fc__balance_open(servers, req, i)) continue;
        if (r < (uint64_t)servers[i].weight) return (int)i;
        r -= (uint64_t)servers[i].weight;
    }
    return -1; /* not reached: r < total */
}

static int random_pick(fc_balancer_t *base, const fc_balance_server_t *servers, size_t n, const fc_balance_req_t *req)
{
    random_balancer_t *b = (random_balancer_t *)base;
    if (n > b->n) n = b->n;
    int first = draw_weighted(b, servers, n, req, -1);
    if (first < 0 || !b->two) return first;
    int second = draw_weighted(b, servers, n, req, first);
    if (second < 0) return first;
    return fc__balance_load_cmp(&servers[second], &servers[first]) < 0 ? second : first;
}

static void random_destroy(fc_balancer_t *b) { free(b); }

const fc_balancer_ops_t fc_balance_random_ops = {
    .name = "random",
    .create = random_create,
    .pick = random_pick,
    .destroy = random_destroy,
};
