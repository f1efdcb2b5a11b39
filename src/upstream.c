/* upstream.c: runtime upstreams and servers, upstream connections and the keep-alive pool.
 * An idle pooled connection keeps reading (into the transport's tiny shared scratch buffer,
 * holding no buffer of its own) so that a server closing it is noticed at once and it is never handed out.
 * It is also retired before the server's own announced Keep-Alive timeout can expire. */
#include "fulcrum/upstream.h"

#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/sha.h>

#include "fulcrum/exchange.h"
#include "fulcrum/log.h"
#include "fulcrum/queue.h"
#include "fulcrum/tls.h"
#include "fulcrum/upgrade.h"

#define UPSTREAM_BUF_SIZE (64 * 1024)

/* A server's state changed (<up> 1: usable again, 0: out): counted and stamped in shm, by the one
 * worker that made the change. */
static void transition(fc_shm_server_t *st, int up)
{
    atomic_fetch_add_explicit(up ? &st->to_up : &st->to_down, 1, memory_order_relaxed);
    atomic_store_explicit(&st->last_transition, (unsigned long long)time(NULL), memory_order_relaxed);
}

/* The sticky cookie value of server <i> of <u>: 16 hex digits of a SHA-256 of "upstream/address";
 * none (matching no cookie) while it is vacant. */
static void sticky_id(fc_upstream_t *u, size_t i)
{
    char key[FC_SHM_KEY + 16];
    unsigned char md[32];
    memset(u->sticky_ids[i], 0, sizeof(u->sticky_ids[i]));
    if (u->servers[i].vacant) return;
    int kn = snprintf(key, sizeof(key), "fulcrum-sticky/%s/%s", u->conf->name, u->servers[i].conf->addr.text);
    SHA256((const unsigned char *)key, (size_t)kn, md);
    for (int k = 0; k < 8; k++) snprintf(u->sticky_ids[i] + 2 * k, 3, "%02x", md[k]);
}

static void server_series(fc_upstream_t *u, fc_server_t *s)
{
    char key[FC_SHM_KEY];
    snprintf(key, sizeof(key), "%s/%s", u->conf->name, s->conf->addr.text);
    s->ms = fc_metrics_local_series(&u->w->metrics, FC_MF_SERVER, key, 0, 0);
}

/* A new balancer over <u>'s servers as they are now (a hash ring places only those with an address). */
static fc_balancer_t *balancer_new(fc_upstream_t *u)
{
    const fc_balancer_ops_t *ops = fc_balance_ops_find(u->conf->balance);
    fc_balance_opts_t opts = {.two = u->conf->balance_two};
    size_t n = u->conf->nservers;
    fc_balance_server_t *v = malloc(n * sizeof(*v));
    if (ops == NULL || v == NULL) {
        free(v);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        v[i] = u->view[i];
        v[i].weight = u->servers[i].vacant ? 0 : u->servers[i].conf->weight;
    }
    fc_balancer_t *b = ops->create(v, n, &opts);
    free(v);
    return b;
}

/* Position <s> of a resolving name takes the address <a> published for it (NULL: vacant). */
static void follow_one(fc_upstream_t *u, fc_server_t *s, const fc_addr_t *a)
{
    size_t i = (size_t)(s - u->servers);
    fc_server_conf_t *c = &u->dconf[i];
    if (a == NULL && s->vacant) return;
    if (a != NULL && !s->vacant && c->addr.len == a->len && memcmp(&c->addr.ss, &a->ss, a->len) == 0) return;
    /* Vacant, it keeps its last address: the requests still in flight there log and count it. */
    s->vacant = a == NULL;
    if (a != NULL) c->addr = *a;
    s->gen++;
    fc_list_t *n = s->idle.next;
    while (n != &s->idle) {
        fc_upconn_t *up = fc_list_entry(n, fc_upconn_t, link);
        n = n->next;
        fc_upconn_close(up);
    }
    if (u->sticky_ids != NULL) sticky_id(u, i);
    if (a != NULL && u->w->metrics.shm != NULL) server_series(u, s);
}

/* Applies what the resolving worker published for <u>'s positions of resolving names. */
static void follow(fc_upstream_t *u)
{
    int changed = 0;
    for (size_t i = 0; i < u->conf->nservers; i++) {
        fc_server_t *s = &u->servers[i];
        if (!s->dynamic || atomic_load_explicit(&s->st->dyn_seq, memory_order_acquire) == s->dyn_seq) continue;
        unsigned seq;
        int used;
        fc_addr_t a;
        if (fc_shm_dyn_read(s->st, &seq, &a, &used) != 0) continue; /* being rewritten: next time */
        s->dyn_seq = seq;
        uint32_t gen = s->gen;
        follow_one(u, s, used ? &a : NULL);
        changed |= gen != s->gen;
    }
    if (!changed || u->balancer == NULL || !u->balancer->ops->needs_key) return;
    fc_balancer_t *b = balancer_new(u); /* the ring moves with the addresses */
    if (b == NULL) return;
    u->balancer->ops->destroy(u->balancer);
    u->balancer = b;
}

int fc_upstreams_init(fc_worker_t *w, fc_err_t *err)
{
    const fc_config_t *cfg = w->cfg;
    size_t slot = 0;
    w->upstreams = fc_xcalloc(cfg->nupstreams, sizeof(fc_upstream_t));
    for (size_t i = 0; i < cfg->nupstreams; i++) {
        fc_upstream_t *u = &w->upstreams[i];
        const fc_upstream_conf_t *uc = &cfg->upstreams[i];
        u->conf = uc;
        u->w = w;
        u->servers = fc_xcalloc(uc->nservers, sizeof(fc_server_t));
        u->view = fc_xcalloc(uc->nservers, sizeof(fc_balance_server_t));
        if (uc->ndynamic > 0) u->dconf = fc_xcalloc(uc->nservers, sizeof(fc_server_conf_t));
        for (size_t s = 0; s < uc->nservers; s++) {
            fc_server_t *sv = &u->servers[s];
            const fc_server_conf_t *sc = &uc->servers[s];
            sv->conf = sc;
            if (sc->name != 0 && uc->names[sc->name - 1].resolve) {
                u->dconf[s] = *sc; /* "name:port" until an address is published */
                sv->conf = &u->dconf[s];
                sv->dynamic = sv->vacant = 1;
            }
            sv->upstream = u;
            sv->st = &w->shm->servers[w->slots[slot++]];
            fc_list_init(&sv->idle);
            u->view[s].weight = sc->weight;
            u->view[s].usable = 1;
            u->view[s].id = sv->conf->addr.text;
        }
        follow(u);
        if (uc->tls != NULL) u->tls = fc_xcalloc(uc->nservers, sizeof(fc_server_tls_t));
        if (uc->sticky.cookie != NULL) {
            u->sticky_ids = fc_xcalloc(uc->nservers, sizeof(*u->sticky_ids));
            for (size_t s = 0; s < uc->nservers; s++) sticky_id(u, s);
        }
        for (size_t s = 0; u->tls != NULL && s < uc->nservers; s++) {
            /* "10.0.0.1:443" -> "10.0.0.1", "[::1]:443" -> "::1"; a server written as a name is that name */
            const fc_server_conf_t *sc = &uc->servers[s];
            const char *t = sc->name ? uc->names[sc->name - 1].text : sc->addr.text, *colon = strrchr(t, ':');
            size_t n = colon != NULL ? (size_t)(colon - t) : strlen(t);
            if (n > 1 && t[n - 1] == '.') n--; /* an absolute name: SNI never carries the dot */
            if (n >= 2 && t[0] == '[') {
                t++;
                n -= 2;
            }
            snprintf(u->tls[s].host, sizeof(u->tls[s].host), "%.*s", (int)n, t);
        }
        if ((u->balancer = balancer_new(u)) == NULL)
            return fc_err_set(err, "upstream %s: cannot create balancer %s", uc->name, uc->balance);
        u->t_idle = uc->keepalive_timeout > 0 ? fc_timeq_class(&w->tq, uc->keepalive_timeout) : NULL;
        if (w->metrics.shm != NULL) {
            u->ms = fc_metrics_local_series(&w->metrics, FC_MF_UPSTREAM, uc->name, 0, 0);
            for (size_t s = 0; s < uc->nservers; s++) server_series(u, &u->servers[s]);
        }
        fc_upstream_refresh(u);
    }
    fc_bufpool_init(&w->upstream_bufs, UPSTREAM_BUF_SIZE, 64);
    return 0;
}

void fc_upstreams_free(fc_worker_t *w)
{
    if (w->upstreams == NULL) return;
    for (size_t i = 0; i < w->cfg->nupstreams; i++) {
        fc_upstream_t *u = &w->upstreams[i];
        if (u->balancer) u->balancer->ops->destroy(u->balancer);
        for (size_t s = 0; u->tls != NULL && s < u->conf->nservers; s++) fc_tls_session_free(&u->tls[s].session);
        free(u->tls);
        free(u->sticky_ids);
        free(u->dconf);
        free(u->servers);
        free(u->view);
    }
    free(w->upstreams);
    w->upstreams = NULL;
    fc_bufpool_drain(&w->upstream_bufs);
}

static fc_worker_t *W(const fc_upconn_t *up) { return up->server->upstream->w; }

static void release_buf(fc_upconn_t *up)
{
    fc_io_release_buf(&up->io);
    up->pos = up->fwd = up->fwd_end = 0;
}

static void on_close(fc_io_t *io)
{
    fc_upconn_t *up = fc_container_of(io, fc_upconn_t, io);
    fc_worker_t *w = W(up);
    if (up->upgrade != NULL) fc_upgrade_unref(up->upgrade);
    free(up);
    fc_worker_check_drained(w);
}

void fc_upconn_close(fc_upconn_t *up)
{
    if (up->state == FC_UP_CLOSING) return;
    FC_ASSERT(up->ex == NULL);
    if (up->upgrade != NULL && !up->upgrade->done) {
        fc_upgrade_end(up->upgrade, UV_ECANCELED); /* closes both sides, this one too */
        return;
    }
    if (up->state == FC_UP_IDLE) {
        fc_list_remove(&up->link);
        up->server->nidle--;
    }
    up->state = FC_UP_CLOSING;
    fc_timeout_clear(&up->timeout);
    fc_list_remove(&up->all);
    fc_io_close(&up->io, on_close);
}

static void on_timeout(fc_timeout_t *t)
{
    fc_upconn_t *up = fc_container_of(t, fc_upconn_t, timeout);
    if (up->ex != NULL) fc_exchange_on_upstream_error(up->ex, UV_ETIMEDOUT);
    else fc_upconn_close(up);
}

/* Active, the bytes are in io.rbuf; idle, they went to the scratch buffer (io.rmode). */
static void on_read(fc_io_t *io, ssize_t nread)
{
    fc_upconn_t *up = fc_container_of(io, fc_upconn_t, io);
    if (up->state == FC_UP_TUNNEL) {
        fc_upgrade_on_read(up->upgrade, 1, nread);
        return;
    }
    if (up->state == FC_UP_IDLE) {
        /* The server closed an idle connection, or sent bytes nobody asked for. */
        fc_upconn_close(up);
        return;
    }
    if (up->ex == NULL || up->state != FC_UP_ACTIVE) return;
    if (nread < 0) {
        fc_exchange_on_upstream_error(up->ex, (int)nread);
        return;
    }
    fc_exchange_on_upstream_data(up->ex);
}

void fc_upconn_read_start(fc_upconn_t *up)
{
    if (up->io.reading || up->state == FC_UP_CLOSING || up->state == FC_UP_CONNECTING) return;
    fc_io_read_start(&up->io);
}

void fc_upconn_read_stop(fc_upconn_t *up) { fc_io_read_stop(&up->io); }

static void on_connect(fc_io_t *io, int status)
{
    fc_upconn_t *up = fc_container_of(io, fc_upconn_t, io);
    if (up->state == FC_UP_CLOSING || up->ex == NULL) return; /* closed while connecting */
    fc_timeout_clear(&up->timeout);
    if (status == 0) {
        up->state = FC_UP_ACTIVE;
        fc_io_nodelay(&up->io);
    }
    fc_exchange_on_connect(up->ex, status);
}

int fc_upconn_connect(fc_server_t *s, fc_exchange_t *ex, fc_upconn_t **out)
{
    fc_worker_t *w = s->upstream->w;
    fc_upconn_t *up = calloc(1, sizeof(*up));
    if (up == NULL) return UV_ENOMEM;
    int r = fc_io_init(&up->io, w->loop, &w->upstream_bufs, on_read);
    if (r < 0) {
        free(up);
        return r;
    }
    up->server = s;
    up->ex = ex;
    up->state = FC_UP_CONNECTING;
    fc_list_init(&up->link);
    fc_list_insert_tail(&w->upconns, &up->all);
    fc_timeout_init(&up->timeout, on_timeout);
    fc_http_parser_init(&up->parser, HTTP_RESPONSE);
    up->t_idle = s->upstream->t_idle;
    up->gen = s->gen;
    r = fc_server_tls(s, &up->io);
    if (r == 0) r = fc_io_connect(&up->io, (const struct sockaddr *)&s->conf->addr.ss, on_connect);
    if (r < 0) {
        up->ex = NULL;
        fc_upconn_close(up);
        return r;
    }
    if (s->ms != NULL) fc_metrics_add(s->ms, FC_MV_OPENED, 1);
    *out = up;
    return 0;
}

fc_upconn_t *fc_upconn_adopt(fc_server_t *s, int fd)
{
    fc_worker_t *w = s->upstream->w;
    fc_upconn_t *up = calloc(1, sizeof(*up));
    if (up == NULL || fc_io_init(&up->io, w->loop, &w->upstream_bufs, on_read) != 0) {
        free(up);
        close(fd);
        return NULL;
    }
    up->server = s;
    up->gen = s->gen;
    up->state = FC_UP_ACTIVE;
    fc_list_init(&up->link);
    fc_list_insert_tail(&w->upconns, &up->all);
    fc_timeout_init(&up->timeout, on_timeout);
    fc_http_parser_init(&up->parser, HTTP_RESPONSE);
    up->t_idle = s->upstream->t_idle;
    if (fc_io_open(&up->io, fd) != 0) {
        close(fd);
        fc_upconn_close(up);
        return NULL;
    }
    return up;
}

int fc_upstream_sticky_find(const fc_upstream_t *u, const char *v, size_t n)
{
    if (u->sticky_ids == NULL || n != 16) return -1;
    for (size_t s = 0; s < u->conf->nservers; s++)
        if (memcmp(u->sticky_ids[s], v, 16) == 0) return (int)s;
    return -1;
}

fc_server_t *fc_server_find(fc_worker_t *w, const char *upstream, const char *address)
{
    for (size_t i = 0; i < w->cfg->nupstreams; i++) {
        fc_upstream_t *u = &w->upstreams[i];
        if (strcmp(u->conf->name, upstream) != 0) continue;
        for (size_t k = 0; k < u->conf->nservers; k++)
            if (strcmp(u->conf->servers[k].addr.text, address) == 0) return &u->servers[k];
    }
    return NULL;
}

int fc_server_tls(fc_server_t *s, fc_io_t *io)
{
    const fc_upstream_tls_conf_t *t = s->upstream->conf->tls;
    if (t == NULL) return 0;
    fc_server_tls_t *st = &s->upstream->tls[s - s->upstream->servers];
    return fc_io_tls_client(io, t->ctx, t->sni, t->sni != NULL ? t->sni : st->host, &st->session);
}

fc_upconn_t *fc_pool_acquire(fc_server_t *s, fc_exchange_t *ex)
{
    if (fc_list_empty(&s->idle)) return NULL;
    fc_upconn_t *up = fc_list_entry(s->idle.next, fc_upconn_t, link);
    fc_list_remove(&up->link);
    s->nidle--;
    fc_timeout_clear(&up->timeout);
    /* It keeps reading: into a real buffer from now on. Not toggling the read interest saves
     * two epoll_ctl calls per request. */
    up->state = FC_UP_ACTIVE;
    up->io.rmode = FC_IO_READ_BUF;
    up->ex = ex;
    return up;
}

void fc_pool_release(fc_upconn_t *up, int reusable)
{
    fc_server_t *s = up->server;
    up->ex = NULL;
    if (up->state == FC_UP_CLOSING) return;
    if (!reusable || up->t_idle == NULL || s->nidle >= (size_t)s->upstream->conf->keepalive ||
        s->upstream->w->draining || up->gen != s->gen) {
        fc_upconn_close(up);
        return;
    }
    release_buf(up);
    llhttp_reset(&up->parser.ll);
    up->parser.head = NULL;
    up->state = FC_UP_IDLE;
    up->io.rmode = FC_IO_READ_SCRATCH;
    fc_list_insert_head(&s->idle, &up->link);
    s->nidle++;
    fc_timeout_set(&s->upstream->w->tq, &up->timeout, up->t_idle);
    fc_upconn_read_start(up); /* a no-op unless backpressure had stopped it: idle, it watches for a close */
}

void fc_upconn_set_server_keepalive(fc_upconn_t *up, long secs)
{
    fc_upstream_t *u = up->server->upstream;
    up->t_idle = u->t_idle;
    if (secs < 0 || u->t_idle == NULL) return;
    /* Retire it before the server's timer can fire: a quarter of the timeout early, at least
     * 250 ms and at most 1 s, so a request never meets a socket the server is closing. */
    uint64_t ms = (uint64_t)secs * 1000, margin = FC_MIN(FC_MAX(ms / 4, 250), 1000);
    uint64_t limit = ms > margin ? ms - margin : 0;
    if (limit == 0) up->t_idle = NULL; /* timeout=0: not reusable at all */
    else if (limit < u->t_idle->ms) up->t_idle = fc_timeq_class(&u->w->tq, limit);
}

void fc_pool_close_idle(fc_worker_t *w)
{
    fc_list_t *n = w->upconns.next;
    while (n != &w->upconns) {
        fc_upconn_t *up = fc_list_entry(n, fc_upconn_t, all);
        n = n->next;
        if (up->state == FC_UP_IDLE) fc_upconn_close(up);
    }
}

/* ---- server state -------------------------------------------------------------------------- */

static uint64_t now_ms(const fc_upstream_t *u) { return uv_now(u->w->loop); }

#define LOAD(x) atomic_load_explicit(&(x), memory_order_relaxed)
#define STORE(x, v) atomic_store_explicit(&(x), (v), memory_order_relaxed)

/* 1 if <s> may take a request now, ignoring backup status and max_conns (and passive failures
 * when <ignore_failed>). */
static int server_alive(const fc_server_t *s, uint64_t now, int ignore_failed)
{
    fc_shm_server_t *st = s->st;
    if (s->conf->down || s->vacant || !LOAD(st->healthy)) return 0;
    uint64_t until = LOAD(st->failed_until);
    if (until != 0 && !ignore_failed) return now >= until && !LOAD(st->probing);
    return 1;
}

/* The view of <u>'s servers with passive failures counted or (<ignore_failed>) not. */
static size_t refresh(fc_upstream_t *u, uint64_t now, int ignore_failed)
{
    size_t n = u->conf->nservers, usable = 0, busy = 0;
    int primary_alive = 0;
    for (size_t i = 0; i < n; i++)
        if (!u->servers[i].conf->backup && server_alive(&u->servers[i], now, ignore_failed)) primary_alive = 1;
    for (size_t i = 0; i < n; i++) {
        const fc_server_t *s = &u->servers[i];
        fc_balance_server_t *v = &u->view[i];
        v->active = LOAD(s->st->active);
        int ok = server_alive(s, now, ignore_failed) && (s->conf->backup ? !primary_alive : 1);
        if (ok && s->conf->max_conns > 0 && v->active >= s->conf->max_conns) {
            ok = 0;
            busy++;
        }
        v->usable = ok;
        /* Policies only compare weights, so they run on weight x 100: slow_start can then ramp a
         * weight-1 server in a hundred steps instead of jumping from 1 to 1. */
        v->weight = s->conf->weight * FC_WEIGHT_SCALE;
        uint64_t ss = s->conf->slow_start, since = LOAD(s->st->up_since);
        if (ss > 0 && since != 0 && now - since < ss) {
            uint64_t wgt = (uint64_t)v->weight * (now - since) / ss;
            v->weight = wgt < 1 ? 1 : (int)wgt;
        }
        usable += (size_t)ok;
    }
    u->all_busy = usable == 0 && busy > 0;
    return usable;
}

size_t fc_upstream_refresh(fc_upstream_t *u)
{
    if (u->dconf != NULL) follow(u);
    uint64_t now = now_ms(u);
    size_t usable = refresh(u, now, 0);
    if (usable > 0) {
        u->all_failed = 0;
        return usable;
    }
    usable = refresh(u, now, 1);
    if (usable > 0 && !u->all_failed) {
        fc_log(FC_LOG_WARN, "upstream %s: every server is out after failures: trying them all again", u->conf->name);
        u->all_failed = 1;
    }
    return usable;
}

int fc_fail_set_has(const fc_fail_set_t *set, int kind, int status)
{
    switch (kind) {
    case FC_FAIL_ERROR: return set->error;
    case FC_FAIL_TIMEOUT: return set->timeout;
    case FC_FAIL_STATUS: return status >= 500 && status <= 599 && set->status[status - 500];
    case FC_FAIL_INVALID: return set->invalid_header;
    default: return 0;
    }
}

void fc_server_picked(fc_server_t *s)
{
    fc_shm_server_t *st = s->st;
    if (LOAD(st->failed_until) != 0) STORE(st->probing, 1);
    atomic_fetch_add_explicit(&st->active, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&st->active_by[s->upstream->w->proc], 1, memory_order_relaxed);
    s->upstream->view[s - s->upstream->servers].active++;
}

int fc_server_take(fc_server_t *s)
{
    fc_shm_server_t *st = s->st;
    unsigned max = s->conf->max_conns, cur = LOAD(st->active);
    if (max == 0) {
        fc_server_picked(s);
        return 0;
    }
    do {
        if (cur >= max) return -1;
    } while (!atomic_compare_exchange_weak_explicit(&st->active, &cur, cur + 1, memory_order_relaxed,
                                                    memory_order_relaxed));
    if (LOAD(st->failed_until) != 0) STORE(st->probing, 1);
    atomic_fetch_add_explicit(&st->active_by[s->upstream->w->proc], 1, memory_order_relaxed);
    s->upstream->view[s - s->upstream->servers].active = cur + 1;
    return 0;
}

void fc_server_done(fc_server_t *s)
{
    fc_shm_server_t *st = s->st;
    atomic_fetch_sub_explicit(&st->active, 1, memory_order_relaxed);
    atomic_fetch_sub_explicit(&st->active_by[s->upstream->w->proc], 1, memory_order_relaxed);
    if (s->upstream->queue != NULL) fc_queue_on_release(s);
}

/* How many of <u>'s servers have an address now (vacant positions of resolving names do not). */
static size_t servers_with_address(const fc_upstream_t *u)
{
    size_t n = u->conf->nservers;
    for (size_t i = 0; u->dconf != NULL && i < u->conf->nservers; i++) n -= u->servers[i].vacant;
    return n;
}

void fc_server_report(fc_server_t *s, int kind, int status, const char *why)
{
    fc_upstream_t *u = s->upstream;
    fc_shm_server_t *st = s->st;
    uint64_t now = now_ms(u);
    if (kind == 0) {
        /* The common case writes nothing: every worker reads this cache line on every request. */
        if (LOAD(st->failed_until) != 0 && atomic_exchange_explicit(&st->failed_until, 0, memory_order_relaxed) != 0) {
            fc_log(FC_LOG_NOTICE, "upstream %s: server %s is back (a request succeeded after fail_timeout)",
                   u->conf->name, s->conf->addr.text);
            transition(st, 1);
            STORE(st->up_since, now);
        }
        if (LOAD(st->fails) != 0) STORE(st->fails, 0);
        if (LOAD(st->probing) != 0) STORE(st->probing, 0);
        return;
    }
    if (s->ms != NULL) fc_metrics_add(s->ms, FC_MV_ERR + (unsigned)kind - 1, 1);
    if (!fc_fail_set_has(&u->conf->fail_on, kind, status)) return; /* neither a failure nor a success */
    if (atomic_exchange_explicit(&st->probing, 0, memory_order_relaxed)) {
        /* The probe after fail_timeout failed: out for another fail_timeout. */
        STORE(st->failed_until, now + s->conf->fail_timeout);
        fc_log(FC_LOG_WARN, "upstream %s: server %s still failing (%s): out for %llu ms", u->conf->name,
               s->conf->addr.text, why, (unsigned long long)s->conf->fail_timeout);
        return;
    }
    /* As in nginx, an upstream's only server is never taken out: there is nowhere else to go. */
    if (s->conf->max_fails == 0 || servers_with_address(u) == 1 || LOAD(st->failed_until) != 0) return;
    uint64_t window = LOAD(st->fail_window);
    if (window == 0 || now - window >= s->conf->fail_timeout) {
        STORE(st->fail_window, now);
        STORE(st->fails, 0);
    }
    unsigned fails = atomic_fetch_add_explicit(&st->fails, 1, memory_order_relaxed) + 1;
    unsigned long long zero = 0; /* the type of atomic_ullong, for compare-exchange */
    /* Only the worker whose failure crosses the line marks it (and logs it). */
    if (fails >= s->conf->max_fails &&
        atomic_compare_exchange_strong(&st->failed_until, &zero, now + s->conf->fail_timeout)) {
        fc_log(FC_LOG_WARN, "upstream %s: server %s marked failed for %llu ms after %u failure(s) (last: %s)",
               u->conf->name, s->conf->addr.text, (unsigned long long)s->conf->fail_timeout, fails, why);
        transition(st, 0);
    }
}

void fc_server_check_result(fc_server_t *s, int ok, const char *why, uint64_t took_ms)
{
    fc_upstream_t *u = s->upstream;
    fc_shm_server_t *st = s->st;
    const fc_health_conf_t *hc = &u->conf->health;
    atomic_fetch_add_explicit(ok ? &st->checks_ok : &st->checks_failed, 1, memory_order_relaxed);
    STORE(st->last_check_ms, took_ms);
    STORE(st->last_check_ok, (unsigned)ok);
    if (ok) {
        STORE(st->hc_fail, 0);
        if (!LOAD(st->healthy) && atomic_fetch_add(&st->hc_ok, 1) + 1 >= hc->healthy_threshold) {
            STORE(st->hc_ok, 0);
            STORE(st->failed_until, 0);
            STORE(st->fails, 0);
            STORE(st->probing, 0);
            STORE(st->up_since, now_ms(u));
            STORE(st->healthy, 1);
            transition(st, 1);
            fc_log(FC_LOG_NOTICE, "upstream %s: server %s is healthy (%u consecutive successful checks)",
                   u->conf->name, s->conf->addr.text, hc->healthy_threshold);
        }
        return;
    }
    STORE(st->hc_ok, 0);
    if (LOAD(st->healthy) && atomic_fetch_add(&st->hc_fail, 1) + 1 >= hc->unhealthy_threshold) {
        STORE(st->hc_fail, 0);
        STORE(st->healthy, 0);
        transition(st, 0);
        fc_log(FC_LOG_WARN, "upstream %s: server %s is unhealthy (%u consecutive failed checks, last: %s)",
               u->conf->name, s->conf->addr.text, hc->unhealthy_threshold, why);
    }
}
