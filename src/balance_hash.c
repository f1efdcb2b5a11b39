/* balance_hash.c: consistent hashing for `hash` (req->key, built by the caller from the
 * configured key) and `ip_hash` (the key is the client address). Owns a ketama-like ring: each
 * server gets 160 points per unit of weight, hashed from its id and the replica number, so
 * removing one of n servers moves about 1/n of the keys and no other key. A pick walks from the
 * key's point to the first server that is usable and not yet tried. */
#include <stdlib.h>
#include <string.h>

#include "fulcrum/balance.h"

extern const fc_balancer_ops_t fc_balance_hash_ops;
extern const fc_balancer_ops_t fc_balance_ip_hash_ops;

#define POINTS_PER_WEIGHT 160 /* ring points per unit of weight */
#define MAX_RING_WEIGHT 16    /* heavier servers get the points of this weight, to bound the ring */
#define FNV_BASIS 0xcbf29ce484222325u
#define FNV_PRIME 0x100000001b3u

typedef struct ring_point {
    uint64_t hash;   /* position on the ring */
    uint32_t server; /* index into the servers array given to create() */
} ring_point_t;

typedef struct hash_balancer {
    fc_balancer_t super;   /* must be first */
    size_t n;              /* number of servers */
    size_t npoints;        /* length of points */
    ring_point_t points[]; /* the ring, sorted by hash */
} hash_balancer_t;

/* FNV-1a over <len> bytes at <p>, continuing from <h>. */
static uint64_t fnv1a(uint64_t h, const void *p, size_t len)
{
    const unsigned char *c = p;
    for (size_t i = 0; i < len; i++) h = (h ^ c[i]) * FNV_PRIME;
    return h;
}

/* FNV-1a alone mixes its last bytes poorly; the finalizer spreads them over the whole word. */
static uint64_t key_hash(const char *key, size_t len) { return fc__balance_mix64(fnv1a(FNV_BASIS, key, len)); }

/* The ring position of replica <replica> of server <i>: a hash of "<id>#<replica>". A server
 * without an id is hashed by its index, which is stable only while the list is. */
static uint64_t point_hash(const fc_balance_server_t *s, uint32_t i, uint32_t replica)
{
    uint64_t h = FNV_BASIS;
    if (s->id != NULL) h = fnv1a(h, s->id, strlen(s->id));
    else h = fnv1a(h, (unsigned char[4]){(unsigned char)i, (unsigned char)(i >> 8), 0, 0}, 4);
    unsigned char tail[5] = {'#', (unsigned char)replica, (unsigned char)(replica >> 8),
                             (unsigned char)(replica >> 16), (unsigned char)(replica >> 24)};
    return fc__balance_mix64(fnv1a(h, tail, sizeof(tail)));
}

static int point_cmp(const void *a, const void *b)
{
    const ring_point_t *pa = a, *pb = b;
    if (pa->hash != pb->hash) return pa->hash < pb->hash ? -1 : 1;
    return (pa->server > pb->server) - (pa->server < pb->server);
}

/* Weight 0 is a server with no address now (a vacant position of a resolving name): no points. */
static size_t ring_weight(const fc_balance_server_t *s)
{
    return s->weight < 1 ? 0 : s->weight > MAX_RING_WEIGHT ? MAX_RING_WEIGHT : (size_t)s->weight;
}

/* Builds the ring for <servers> under <ops> (hash and ip_hash differ only in the name). */
static fc_balancer_t *ring_create(const fc_balancer_ops_t *ops, const fc_balance_server_t *servers, size_t n)
{
    size_t npoints = 0;
    for (size_t i = 0; i < n; i++) npoints += ring_weight(&servers[i]) * POINTS_PER_WEIGHT;
    hash_balancer_t *b = malloc(sizeof(*b) + (npoints + 1) * sizeof(b->points[0]));
    if (b == NULL) return NULL;
    b->super.ops = ops;
    b->n = n;
    b->npoints = npoints;
    size_t k = 0;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t replicas = (uint32_t)(ring_weight(&servers[i]) * POINTS_PER_WEIGHT);
        for (uint32_t r = 0; r < replicas; r++) b->points[k++] = (ring_point_t){point_hash(&servers[i], i, r), i};
    }
    qsort(b->points, npoints, sizeof(b->points[0]), point_cmp);
    return &b->super;
}

static fc_balancer_t *hash_create(const fc_balance_server_t *servers, size_t n, const fc_balance_opts_t *opts)
{
    return ring_create(&fc_balance_hash_ops, servers, n);
}

static fc_balancer_t *ip_hash_create(const fc_balance_server_t *servers, size_t n, const fc_balance_opts_t *opts)
{
    return ring_create(&fc_balance_ip_hash_ops, servers, n);
}

/* The index of the first ring point at or after <h>, wrapping to 0 past the end. */
static size_t ring_find(const hash_balancer_t *b, uint64_t h)
{
    size_t lo = 0, hi = b->npoints;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (b->points[mid].hash < h) lo = mid + 1;
        else hi = mid;
    }
    return lo == b->npoints ? 0 : lo;
}

static int hash_pick(fc_balancer_t *base, const fc_balance_server_t *servers, size_t n, const fc_balance_req_t *req)
{
    hash_balancer_t *b = (hash_balancer_t *)base;
    if (n > b->n) n = b->n;
    /* Checked first so that a ring with nothing open is not walked all the way round. */
    size_t open = 0;
    for (size_t i = 0; i < n && open == 0; i++) open = (size_t)fc__balance_open(servers, req, i);
    if (open == 0) return -1;
    size_t at = ring_find(b, key_hash(req->key != NULL ? req->key : "", req->key != NULL ? req->keylen : 0));
    for (size_t step = 0; step < b->npoints; step++) {
        uint32_t s = b->points[(at + step) % b->npoints].server;
        if (s < n && fc__balance_open(servers, req, s)) return (int)s;
    }
    return -1; /* not reached: every open server has points */
}

static void hash_destroy(fc_balancer_t *b) { free(b); }

const fc_balancer_ops_t fc_balance_hash_ops = {
    .name = "hash",
    .create = hash_create,
    .pick = hash_pick,
    .destroy = hash_destroy,
    .needs_key = 1,
};

const fc_balancer_ops_t fc_balance_ip_hash_ops = {
    .name = "ip_hash",
    .create = ip_hash_create,
    .pick = hash_pick,
    .destroy = hash_destroy,
    .needs_key = 1,
};
