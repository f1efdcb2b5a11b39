/* redis_store.c: rate-limit buckets shared through Redis (see redis_store.h). One connection and
 * one timer per policy with a store, on the first worker's loop. Each interval: the buckets used
 * since the last one are collected from the shared table (ratelimit.c), and each goes to Redis as
 * `EVALSHA <script> 1 <key> <capacity> <rate per ms> <taken here since>`, all pipelined; the script
 * refills the shared bucket by Redis's own clock, takes what this process took, and answers what
 * is left, which is written back into the local bucket. One batch is in flight at a time. */
#include "fulcrum/redis_store.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis.h>
#include <async.h>
#include <adapters/libuv.h>

#include "fulcrum/log.h"
#include "fulcrum/ratelimit.h"
#include "fulcrum/worker.h"

#define BATCH_MAX 4096       /* keys reconciled per interval at most; the rest wait for the next */
#define RECONNECT_MS 1000    /* between two connection attempts */

/* KEYS[1]: the bucket; ARGV: capacity, tokens per ms, tokens taken. The bucket is a hash of
 * k (tokens) and a (Redis ms of the last refill); it expires once it would be full again. The
 * answer is a string: Lua numbers would come back cut to integers. */
static const char SCRIPT[] =
    "local cap = tonumber(ARGV[1]) local per = tonumber(ARGV[2]) local d = tonumber(ARGV[3]) "
    "local t = redis.call('TIME') local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) "
    "local v = redis.call('HMGET', KEYS[1], 'k', 'a') "
    "local k = tonumber(v[1]) local a = tonumber(v[2]) "
    "if k == nil or a == nil then k = cap a = now end "
    "if now > a then k = math.min(cap, k + (now - a) * per) end "
    "k = k - d "
    "redis.call('HSET', KEYS[1], 'k', tostring(k), 'a', tostring(now)) "
    "redis.call('PEXPIRE', KEYS[1], math.ceil((cap - k) / per) + 1000) "
    "return tostring(k)";

typedef struct policy policy_t;

/* The keys of one interval, waiting for their answers (in the order they were sent). */
typedef struct batch {
    policy_t *p;          /* NULL once its policy stopped waiting for it */
    size_t n, answered;
    int failed;           /* an answer was missing or an error */
    fc_rl_pending_t items[]; /* owned */
} batch_t;

struct policy {
    fc_redis_store_t *owner;
    const fc_rate_limit_conf_t *r; /* borrowed from the worker's config */
    fc_rl_table_t *t;     /* borrowed: the policy's table */
    uv_timer_t timer;     /* the interval; closed by stop (the last close frees the store) */
    redisAsyncContext *ac; /* NULL while not connected (hiredis frees it) */
    int connected;        /* the connection is up */
    int ready;            /* connected and the script loaded */
    uint64_t connect_at;  /* uv_now() ms the connection attempt began */
    char sha[48];         /* the script's SHA1, from SCRIPT LOAD */
    char host[INET6_ADDRSTRLEN];
    int port;
    uint64_t next_connect; /* uv_now() ms of the next attempt */
    batch_t *inflight;    /* the batch sent, or NULL */
    uint64_t sent_at;     /* uv_now() ms it was sent */
    fc_rl_pending_t *scratch; /* owned: BATCH_MAX entries */
};

struct fc_redis_store {
    size_t n;             /* policies */
    size_t open;          /* timers not closed yet */
    policy_t p[];
};

/* ---- up and down ---- */

static void went_down(policy_t *p, const char *why)
{
    atomic_fetch_add_explicit(&p->t->store_errors, 1, memory_order_relaxed);
    if (atomic_exchange(&p->t->store_down, 1) == 0)
        fc_log(FC_LOG_ERROR, "rate limit %s: redis %s:%d: %s: %s until it answers again", p->r->name, p->host, p->port,
               why, p->r->store->on_error == FC_RATE_DENY ? "rejecting the policy's requests (on_error: deny)"
                                                          : "this process's buckets alone decide (on_error: allow)");
}

static void came_up(policy_t *p)
{
    if (atomic_exchange(&p->t->store_down, 0) == 1)
        fc_log(FC_LOG_NOTICE, "rate limit %s: redis %s:%d answers again: the limit is shared", p->r->name, p->host, p->port);
}

/* Drops the connection (its pending answers come back NULL first). */
static void drop(policy_t *p, const char *why)
{
    went_down(p, why);
    p->ready = p->connected = 0;
    p->next_connect = uv_now(p->timer.loop) + RECONNECT_MS;
    if (p->ac != NULL) {
        redisAsyncContext *ac = p->ac;
        p->ac = NULL;
        ac->data = NULL;
        redisAsyncFree(ac);
    }
}

/* ---- answers ---- */

static void batch_done(batch_t *b)
{
    policy_t *p = b->p;
    if (p != NULL) {
        p->inflight = NULL;
        if (!b->failed) came_up(p);
    }
    free(b);
}

static void on_answer(redisAsyncContext *ac, void *reply, void *priv)
{
    batch_t *b = priv;
    redisReply *rp = reply;
    size_t i = b->answered++;
    policy_t *p = b->p;
    if (rp != NULL && rp->type == REDIS_REPLY_STRING && p != NULL) {
        double cap = (double)p->r->burst + 1;
        fc_rl_apply(p->t, &b->items[i], strtod(rp->str, NULL), cap, uv_now(p->timer.loop));
    } else if (!b->failed) {
        b->failed = 1;
        if (p != NULL) {
            /* NOSCRIPT: the server lost its scripts (a restart behind a proxy): loaded again. */
            if (rp != NULL && rp->type == REDIS_REPLY_ERROR && strncmp(rp->str, "NOSCRIPT", 8) == 0) p->ready = 0;
            if (rp != NULL && rp->type == REDIS_REPLY_ERROR) went_down(p, rp->str);
        }
    }
    (void)ac;
    if (b->answered == b->n) batch_done(b);
}

static void on_script(redisAsyncContext *ac, void *reply, void *priv)
{
    policy_t *p = priv;
    redisReply *rp = reply;
    if (ac->data == NULL) return; /* the connection was dropped: <p> may be gone */
    if (rp != NULL && rp->type == REDIS_REPLY_STRING && rp->len < sizeof(p->sha)) {
        memcpy(p->sha, rp->str, rp->len + 1);
        p->ready = 1;
        came_up(p);
    } else {
        drop(p, rp != NULL && rp->type == REDIS_REPLY_ERROR ? rp->str : "SCRIPT LOAD failed");
    }
}

/* ---- the connection ---- */

static void on_connect(const redisAsyncContext *ac, int status)
{
    policy_t *p = ac->data;
    if (p == NULL) return;
    if (status != REDIS_OK) {
        p->ac = NULL; /* hiredis frees the context after this returns */
        drop(p, ac->errstr[0] ? ac->errstr : "cannot connect");
        return;
    }
    p->connected = 1;
    redisAsyncCommand(p->ac, on_script, p, "SCRIPT LOAD %s", SCRIPT);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    policy_t *p = ac->data;
    if (p == NULL) return; /* dropped by us */
    p->ac = NULL;          /* hiredis frees it */
    drop(p, ac->errstr[0] ? ac->errstr : "connection closed");
}

static void connect_store(policy_t *p)
{
    redisAsyncContext *ac = redisAsyncConnect(p->host, p->port);
    if (ac == NULL) {
        drop(p, "out of memory");
        return;
    }
    if (ac->err) {
        char why[128];
        snprintf(why, sizeof(why), "%s", ac->errstr);
        redisAsyncFree(ac);
        drop(p, why);
        return;
    }
    if (redisLibuvAttach(ac, p->timer.loop) != REDIS_OK) {
        redisAsyncFree(ac);
        drop(p, "cannot watch the connection");
        return;
    }
    ac->data = p;
    p->ac = ac;
    p->connect_at = uv_now(p->timer.loop);
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
}

/* ---- the interval ---- */

static void send_batch(policy_t *p, size_t n)
{
    batch_t *b = malloc(sizeof(*b) + n * sizeof(b->items[0]));
    if (b == NULL) return;
    *b = (batch_t){.p = p, .n = n};
    memcpy(b->items, p->scratch, n * sizeof(b->items[0]));
    char cap[32], per[32];
    snprintf(cap, sizeof(cap), "%u", p->r->burst + 1);
    snprintf(per, sizeof(per), "%.17g", (double)p->r->rate / (double)p->r->per);
    size_t queued = 0;
    for (size_t i = 0; i < n; i++) {
        char key[128];
        snprintf(key, sizeof(key), "fulcrum:rl:%s:%016llx", p->r->name, (unsigned long long)b->items[i].key);
        if (redisAsyncCommand(p->ac, on_answer, b, "EVALSHA %s 1 %s %s %s %u", p->sha, key, cap, per,
                              b->items[i].delta) != REDIS_OK)
            break;
        queued++;
    }
    if (queued == 0) {
        free(b);
        return;
    }
    b->n = queued; /* answers come for the queued ones only */
    p->inflight = b;
    p->sent_at = uv_now(p->timer.loop);
}

/* An interval with nothing to reconcile still proves the connection alive (a reset one is not
 * always seen otherwise, see on_tick): a PING is a batch of none. */
static void on_pong(redisAsyncContext *ac, void *reply, void *priv)
{
    batch_t *b = priv;
    redisReply *rp = reply;
    (void)ac;
    b->failed = rp == NULL || rp->type != REDIS_REPLY_STATUS;
    if (b->failed && b->p != NULL && rp != NULL && rp->type == REDIS_REPLY_ERROR) went_down(b->p, rp->str);
    batch_done(b);
}

static void send_ping(policy_t *p)
{
    batch_t *b = malloc(sizeof(*b));
    if (b == NULL) return;
    *b = (batch_t){.p = p, .n = 0};
    if (redisAsyncCommand(p->ac, on_pong, b, "PING") != REDIS_OK) {
        free(b);
        return;
    }
    p->inflight = b;
    p->sent_at = uv_now(p->timer.loop);
}

static void on_tick(uv_timer_t *timer)
{
    policy_t *p = fc_container_of(timer, policy_t, timer);
    uint64_t now = uv_now(timer->loop);
    if (p->inflight != NULL) {
        if (now - p->sent_at < p->r->store->timeout) return; /* still waiting: skip this interval */
        char why[64];
        snprintf(why, sizeof(why), "no answer within %llu ms", (unsigned long long)p->r->store->timeout);
        p->inflight->p = NULL; /* its answers, if any come, are dropped */
        p->inflight = NULL;
        drop(p, why);
    }
    if (p->ac != NULL && !p->ready && now - p->connect_at >= p->r->store->timeout) {
        /* hiredis 0.14's libuv adapter ignores a poll error (a refused or reset connection), and a
         * frozen server still completes the TCP handshake: an attempt that is not connected with
         * its script loaded in time is given up here. */
        char why[80];
        snprintf(why, sizeof(why), "%s within %llu ms", p->connected ? "no answer to SCRIPT LOAD" : "cannot connect",
                 (unsigned long long)p->r->store->timeout);
        drop(p, why);
    }
    if (p->ac == NULL && now >= p->next_connect) connect_store(p);
    size_t n = fc_rl_collect(p->t, p->scratch, BATCH_MAX);
    /* Not ready: what was taken meanwhile is forgotten, not charged to the shared bucket later
     * (while Redis was away the local buckets decided alone). */
    if (p->ready && p->ac != NULL) {
        if (n > 0) send_batch(p, n);
        else send_ping(p);
    }
}

int fc_redis_store_start(fc_worker_t *w, fc_err_t *err)
{
    const fc_config_t *cfg = w->cfg;
    size_t n = 0;
    for (size_t i = 0; i < cfg->nrate_limits; i++) n += cfg->rate_limits[i].store != NULL;
    if (n == 0) return 0;
    fc_redis_store_t *s = calloc(1, sizeof(*s) + n * sizeof(s->p[0]));
    if (s == NULL) return fc_err_set(err, "out of memory");
    for (size_t i = 0; i < cfg->nrate_limits; i++) {
        const fc_rate_limit_conf_t *r = &cfg->rate_limits[i];
        if (r->store == NULL) continue;
        policy_t *p = &s->p[s->n];
        p->owner = s;
        p->r = r;
        p->t = w->rl_tables[i];
        p->scratch = malloc(BATCH_MAX * sizeof(*p->scratch));
        const struct sockaddr_storage *ss = &r->store->redis.ss;
        if (ss->ss_family == AF_INET6) {
            const struct sockaddr_in6 *a = (const void *)ss;
            inet_ntop(AF_INET6, &a->sin6_addr, p->host, sizeof(p->host));
            p->port = ntohs(a->sin6_port);
        } else {
            const struct sockaddr_in *a = (const void *)ss;
            inet_ntop(AF_INET, &a->sin_addr, p->host, sizeof(p->host));
            p->port = ntohs(a->sin_port);
        }
        uv_timer_init(w->loop, &p->timer);
        uv_unref((uv_handle_t *)&p->timer);
        s->n++;
        s->open++;
        if (p->scratch == NULL) continue; /* never started: closed by stop like the others */
        connect_store(p);
        uv_timer_start(&p->timer, on_tick, r->store->sync, r->store->sync);
    }
    w->redis = s;
    return 0;
}

static void on_timer_closed(uv_handle_t *h)
{
    policy_t *p = fc_container_of((uv_timer_t *)h, policy_t, timer);
    fc_redis_store_t *s = p->owner;
    free(p->scratch);
    p->scratch = NULL;
    if (--s->open == 0) free(s);
}

void fc_redis_store_stop(fc_worker_t *w)
{
    fc_redis_store_t *s = w->redis;
    if (s == NULL) return;
    w->redis = NULL;
    for (size_t i = 0; i < s->n; i++) {
        policy_t *p = &s->p[i];
        if (p->inflight != NULL) p->inflight->p = NULL;
        p->inflight = NULL;
        if (p->ac != NULL) {
            redisAsyncContext *ac = p->ac;
            p->ac = NULL;
            ac->data = NULL;
            redisAsyncFree(ac); /* the pending answers come back NULL now; its poll handle closes */
        }
        uv_close((uv_handle_t *)&p->timer, on_timer_closed);
    }
}
