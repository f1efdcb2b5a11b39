/* resolve.c: host names through c-ares (see resolve.h). The resolving worker's channel is driven
 * by the loop: a uv_poll_t per socket c-ares opens (its sock_state callback says which, and for
 * what) and one timer for both c-ares's own timeouts and the next name due. Each handle is freed
 * in its close callback; the resolver itself once the last one has run. */
#include "fulcrum/resolve.h"

#include <ares.h>
#include <arpa/inet.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fulcrum/log.h"
#include "fulcrum/shm.h"
#include "fulcrum/upstream.h"

#define QUERY_TIMEOUT_MS 1000 /* per try; c-ares doubles it on the next round of servers */
#define QUERY_TRIES 2
#define ONCE_DEADLINE_MS 8000 /* fc_resolve_once gives up after this, whatever c-ares is doing */
#define LOCK_RETRY_MS 200     /* another process was rewriting the name: publish again this soon */

static int library_ready(void)
{
    static int done;
    if (!done && ares_library_init(ARES_LIB_INIT_ALL) == ARES_SUCCESS) done = 1;
    return done;
}

/* A channel asking <servers> (NULL = resolv.conf), with short timeouts; <sock_cb> as c-ares's
 * socket state callback (NULL = none). Returns an ARES_ status. */
static int channel_new(ares_channel *ch, const char *servers, ares_sock_state_cb sock_cb, void *data)
{
    if (!library_ready()) return ARES_ENOTINITIALIZED;
    struct ares_options o;
    memset(&o, 0, sizeof(o));
    o.timeout = QUERY_TIMEOUT_MS;
    o.tries = QUERY_TRIES;
    int mask = ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES;
    if (sock_cb != NULL) {
        o.sock_state_cb = sock_cb;
        o.sock_state_cb_data = data;
        mask |= ARES_OPT_SOCK_STATE_CB;
    }
    int r = ares_init_options(ch, &o, mask);
    if (r != ARES_SUCCESS) return r;
    if (servers != NULL && (r = ares_set_servers_ports_csv(*ch, servers)) != ARES_SUCCESS) ares_destroy(*ch);
    return r;
}

/* <sa> with <port> as an fc_addr_t ("10.0.0.1:3000", "[fd00::1]:3000"). 0, or -1 for a family
 * that is neither IPv4 nor IPv6. */
static int addr_of(const struct sockaddr *sa, uint16_t port, fc_addr_t *out)
{
    int v6 = sa->sa_family == AF_INET6;
    if (!v6 && sa->sa_family != AF_INET) return -1;
    memset(out, 0, sizeof(*out));
    out->len = v6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    memcpy(&out->ss, sa, out->len);
    struct sockaddr_in *in = (struct sockaddr_in *)&out->ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&out->ss;
    if (v6) in6->sin6_port = htons(port);
    else in->sin_port = htons(port);
    char ip[INET6_ADDRSTRLEN];
    inet_ntop(sa->sa_family, v6 ? (const void *)&in6->sin6_addr : (const void *)&in->sin_addr, ip, sizeof(ip));
    snprintf(out->text, sizeof(out->text), v6 ? "[%s]:%u" : "%s:%u", ip, port);
    return 0;
}

/* The distinct addresses of <res> into <out> (at most <max>), the smallest TTL into *<ttl>. */
static size_t collect(const struct ares_addrinfo *res, uint16_t port, fc_addr_t *out, size_t max, uint32_t *ttl)
{
    size_t n = 0;
    int min = -1;
    for (const struct ares_addrinfo_node *a = res->nodes; a != NULL; a = a->ai_next) {
        if (a->ai_ttl > 0 && (min < 0 || a->ai_ttl < min)) min = a->ai_ttl;
        if (n == max || addr_of(a->ai_addr, port, &out[n]) != 0) continue;
        size_t k = 0;
        while (k < n && !(out[k].len == out[n].len && memcmp(&out[k].ss, &out[n].ss, out[n].len) == 0)) k++;
        if (k == n) n++;
    }
    for (const struct ares_addrinfo_cname *c = res->cnames; c != NULL; c = c->next)
        if (c->ttl > 0 && (min < 0 || c->ttl < min)) min = c->ttl;
    *ttl = min > 0 ? (uint32_t)min : 0;
    return n;
}

static const struct ares_addrinfo_hints hints = {.ai_flags = ARES_AI_NOSORT, .ai_family = AF_UNSPEC};

uint64_t fc_resolve_wait(uint64_t interval_ms, uint32_t ttl)
{
    if (ttl == 0) return interval_ms;
    uint64_t t = (uint64_t)ttl * 1000;
    return t < interval_ms ? t : interval_ms;
}

/* ---- once, blocking (the config loader) ------------------------------------------------------ */

typedef struct once {
    int done, status;
    fc_addr_t *out;
    size_t max, n;
    uint16_t port;
    uint32_t ttl;
} once_t;

static void on_once(void *arg, int status, int timeouts, struct ares_addrinfo *res)
{
    once_t *o = arg;
    o->done = 1;
    o->status = status;
    if (status == ARES_SUCCESS && res != NULL) o->n = collect(res, o->port, o->out, o->max, &o->ttl);
    if (res != NULL) ares_freeaddrinfo(res);
}

int fc_resolve_once(const char *servers, const char *host, uint16_t port, fc_addr_t *out, size_t max, size_t *n,
                    uint32_t *ttl, fc_err_t *err)
{
    ares_channel ch;
    int r = channel_new(&ch, servers, NULL, NULL);
    if (r != ARES_SUCCESS) return fc_err_set(err, "cannot start the resolver: %s", ares_strerror(r));
    once_t o = {.out = out, .max = max, .port = port};
    ares_getaddrinfo(ch, host, NULL, &hints, on_once, &o);
    uint64_t start = uv_hrtime();
    while (!o.done) {
        if ((uv_hrtime() - start) / 1000000 > ONCE_DEADLINE_MS) {
            ares_cancel(ch); /* calls on_once with ARES_ECANCELLED */
            break;
        }
        ares_socket_t socks[ARES_GETSOCK_MAXNUM];
        /* ARES_GETSOCK_WRITABLE shifts a signed 1 into the sign bit: the same test, unsigned. */
        unsigned bits = (unsigned)ares_getsock(ch, socks, ARES_GETSOCK_MAXNUM);
        struct pollfd pfd[ARES_GETSOCK_MAXNUM];
        nfds_t np = 0;
        for (unsigned i = 0; i < ARES_GETSOCK_MAXNUM; i++) {
            short ev = (short)((bits & (1u << i) ? POLLIN : 0) | (bits & (1u << (i + ARES_GETSOCK_MAXNUM)) ? POLLOUT : 0));
            if (ev != 0) pfd[np++] = (struct pollfd){.fd = socks[i], .events = ev};
        }
        struct timeval tv, *tvp = ares_timeout(ch, NULL, &tv);
        int ms = tvp != NULL ? (int)(tvp->tv_sec * 1000 + tvp->tv_usec / 1000) + 1 : 100;
        int ready = poll(pfd, np, ms);
        if (ready <= 0) {
            ares_process_fd(ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD); /* timeouts */
            continue;
        }
        for (nfds_t i = 0; i < np; i++)
            if (pfd[i].revents != 0)
                ares_process_fd(ch, pfd[i].revents & (POLLIN | POLLERR | POLLHUP) ? pfd[i].fd : ARES_SOCKET_BAD,
                                pfd[i].revents & POLLOUT ? pfd[i].fd : ARES_SOCKET_BAD);
    }
    ares_destroy(ch);
    if (!o.done || o.status == ARES_ECANCELLED || o.status == ARES_ETIMEOUT)
        return fc_err_set(err, "no answer from %s", servers != NULL ? servers : "the DNS servers of /etc/resolv.conf");
    if (o.status != ARES_SUCCESS) return fc_err_set(err, "%s", ares_strerror(o.status));
    if (o.n == 0) return fc_err_set(err, "it has no address");
    *n = o.n;
    *ttl = o.ttl;
    return 0;
}

/* ---- the resolving worker ---------------------------------------------------------------------- */

typedef struct fc_resolver fc_resolver_t; /* struct fc_resolver of worker.h */

/* A socket of the channel, watched for c-ares. Freed in its close callback. */
typedef struct dns_poll {
    uv_poll_t h;
    ares_socket_t fd;
    fc_resolver_t *r;      /* owner */
    struct dns_poll *next; /* in r->polls while watched */
} dns_poll_t;

/* One name with `resolve: true`. */
typedef struct dns_name {
    fc_resolver_t *r;          /* owner */
    fc_upstream_t *u;          /* borrowed: its upstream */
    const fc_name_conf_t *nc;  /* borrowed from the config */
    uint64_t due;              /* loop ms of its next query */
    int inflight;              /* a query is out */
    int failing;               /* the last query failed (said once, until one succeeds) */
    int full;                  /* it had more addresses than positions (said once, until they fit) */
    size_t naddrs;             /* addresses published last */
} dns_name_t;

struct fc_resolver {
    fc_worker_t *w;       /* owner */
    ares_channel ch;      /* owned */
    uv_timer_t timer;     /* c-ares's timeouts and the next name due */
    dns_poll_t *polls;    /* the sockets watched now */
    dns_name_t *names;    /* owned array of nnames */
    size_t nnames;
    unsigned open;        /* handles whose close callback has not run (the timer, the polls) */
    int stopped;
    fc_addr_t addrs[FC_UPSTREAM_MAX_SERVERS]; /* scratch: one answer */
};

static void maybe_free(fc_resolver_t *r)
{
    if (!r->stopped || r->open > 0) return;
    free(r->names);
    free(r);
}

static void on_poll_closed(uv_handle_t *h)
{
    dns_poll_t *p = fc_container_of((uv_poll_t *)h, dns_poll_t, h);
    fc_resolver_t *r = p->r;
    free(p);
    r->open--;
    maybe_free(r);
}

static void on_timer_closed(uv_handle_t *h)
{
    fc_resolver_t *r = fc_container_of((uv_timer_t *)h, fc_resolver_t, timer);
    r->open--;
    maybe_free(r);
}

static void arm(fc_resolver_t *r);

static void on_poll(uv_poll_t *h, int status, int events)
{
    dns_poll_t *p = fc_container_of(h, dns_poll_t, h);
    fc_resolver_t *r = p->r;
    ares_socket_t fd = p->fd; /* p may be closed from inside ares_process_fd */
    if (status < 0) ares_process_fd(r->ch, fd, fd);
    else ares_process_fd(r->ch, events & UV_READABLE ? fd : ARES_SOCKET_BAD, events & UV_WRITABLE ? fd : ARES_SOCKET_BAD);
    arm(r);
}

/* c-ares opened, changed or is about to close socket <fd>. */
static void on_sock_state(void *data, ares_socket_t fd, int readable, int writable)
{
    fc_resolver_t *r = data;
    dns_poll_t **pp = &r->polls;
    while (*pp != NULL && (*pp)->fd != fd) pp = &(*pp)->next;
    dns_poll_t *p = *pp;
    if (!readable && !writable) {
        if (p == NULL) return;
        *pp = p->next;
        uv_close((uv_handle_t *)&p->h, on_poll_closed); /* before c-ares closes the fd */
        return;
    }
    if (p == NULL) {
        if (r->stopped || (p = calloc(1, sizeof(*p))) == NULL) return;
        if (uv_poll_init(r->w->loop, &p->h, fd) != 0) {
            free(p);
            return; /* the query on it times out */
        }
        p->fd = fd;
        p->r = r;
        p->next = r->polls;
        r->polls = p;
        r->open++;
    }
    uv_poll_start(&p->h, (readable ? UV_READABLE : 0) | (writable ? UV_WRITABLE : 0), on_poll);
}

/* "10.0.0.1:3000 10.0.0.2:3000" for the log, cut with "..." where it does not fit. */
static void list_addrs(const fc_addr_t *a, size_t n, char *out, size_t cap)
{
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        int k = snprintf(out + used, cap - used, "%s%s", i ? " " : "", a[i].text);
        if (k < 0 || (size_t)k >= cap - used) {
            snprintf(out + (used < cap - 5 ? used : cap - 5), 5, " ...");
            return;
        }
        used += (size_t)k;
    }
}

static void publish(dns_name_t *d, size_t naddrs, uint32_t ttl)
{
    fc_resolver_t *r = d->r;
    fc_upstream_t *u = d->u;
    const fc_name_conf_t *nc = d->nc;
    uint64_t now = uv_now(r->w->loop);
    fc_shm_server_t *pos[FC_UPSTREAM_MAX_SERVERS];
    for (size_t k = 0; k < nc->count; k++) pos[k] = u->servers[nc->first + k].st;
    fc_shm_dyn_result_t res;
    unsigned healthy = !(u->conf->health.enabled && u->conf->health.start_unhealthy);
    if (fc_shm_dyn_update(pos, nc->count, r->addrs, naddrs, healthy, now ? now : 1, r->w->proc + 1, &res) != 0) {
        d->due = now + LOCK_RETRY_MS;
        return;
    }
    if (d->failing) {
        fc_log(FC_LOG_NOTICE, "upstream %s: %s resolves again", u->conf->name, nc->text);
        d->failing = 0;
    }
    if (res.joined > 0 || res.left > 0) {
        char list[512];
        list_addrs(r->addrs, naddrs, list, sizeof(list));
        fc_log(FC_LOG_NOTICE, "upstream %s: %s now resolves to %s (%u joined, %u left, %u kept)", u->conf->name,
               nc->text, list, res.joined, res.left, res.kept);
    }
    if (res.dropped > 0 && !d->full)
        fc_log(FC_LOG_WARN, "upstream %s: %s has %zu addresses, more than max_addresses (%zu) or positions still "
               "draining: %u not used", u->conf->name, nc->text, naddrs, nc->count, res.dropped);
    d->full = res.dropped > 0;
    d->naddrs = naddrs;
    d->due = now + fc_resolve_wait(nc->interval, ttl);
    fc_upstream_refresh(u); /* this worker follows at once (its health checks too) */
}

static void on_result(void *arg, int status, int timeouts, struct ares_addrinfo *res)
{
    dns_name_t *d = arg;
    fc_resolver_t *r = d->r;
    d->inflight = 0;
    if (r->stopped || status == ARES_EDESTRUCTION) {
        if (res != NULL) ares_freeaddrinfo(res);
        return;
    }
    uint32_t ttl = 0;
    size_t n = status == ARES_SUCCESS && res != NULL ? collect(res, d->nc->port, r->addrs, FC_ARRAY_LEN(r->addrs), &ttl) : 0;
    if (res != NULL) ares_freeaddrinfo(res);
    if (n > 0) {
        publish(d, n, ttl);
        return;
    }
    /* Kept as they are: a DNS server that stops answering must not empty the upstream. */
    if (!d->failing)
        fc_log(FC_LOG_WARN, "upstream %s: cannot resolve %s: %s: keeping its %zu last known address(es)",
               d->u->conf->name, d->nc->text, status == ARES_SUCCESS ? "no address" : ares_strerror(status), d->naddrs);
    d->failing = 1;
    d->due = uv_now(r->w->loop) + d->nc->interval;
}

static void on_timer(uv_timer_t *t)
{
    fc_resolver_t *r = fc_container_of(t, fc_resolver_t, timer);
    ares_process_fd(r->ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD); /* c-ares's timeouts */
    uint64_t now = uv_now(r->w->loop);
    for (size_t i = 0; i < r->nnames && !r->stopped; i++) {
        dns_name_t *d = &r->names[i];
        if (d->inflight || d->due > now) continue;
        d->inflight = 1;
        ares_getaddrinfo(r->ch, d->nc->host, NULL, &hints, on_result, d); /* may answer at once */
    }
    arm(r);
}

/* Sets the timer for whichever comes first: a c-ares timeout or the next name due. */
static void arm(fc_resolver_t *r)
{
    if (r->stopped) return;
    uint64_t now = uv_now(r->w->loop), wait = UINT64_MAX;
    for (size_t i = 0; i < r->nnames; i++) {
        const dns_name_t *d = &r->names[i];
        if (d->inflight) continue;
        uint64_t w = d->due > now ? d->due - now : 0;
        if (w < wait) wait = w;
    }
    struct timeval tv, *tvp = ares_timeout(r->ch, NULL, &tv);
    if (tvp != NULL) {
        uint64_t w = (uint64_t)tvp->tv_sec * 1000 + (uint64_t)tvp->tv_usec / 1000 + 1;
        if (w < wait) wait = w;
    }
    if (wait == UINT64_MAX) wait = 1000; /* not reached: a name is either due or in flight */
    uv_timer_start(&r->timer, on_timer, wait, 0);
}

int fc_resolver_start(fc_worker_t *w)
{
    size_t n = 0;
    for (size_t i = 0; i < w->cfg->nupstreams; i++)
        for (size_t k = 0; k < w->cfg->upstreams[i].nnames; k++) n += (size_t)w->cfg->upstreams[i].names[k].resolve;
    if (n == 0 || w->resolver != NULL) return 0;
    fc_resolver_t *r = calloc(1, sizeof(*r));
    dns_name_t *names = calloc(n, sizeof(*names));
    if (r == NULL || names == NULL) {
        free(r);
        free(names);
        return UV_ENOMEM;
    }
    r->w = w;
    r->names = names;
    int rc = channel_new(&r->ch, w->cfg->resolver, on_sock_state, r);
    if (rc != ARES_SUCCESS) {
        fc_log(FC_LOG_ERROR, "resolver: %s: names with resolve: true will not follow DNS", ares_strerror(rc));
        free(names);
        free(r);
        return UV_EINVAL;
    }
    for (size_t i = 0; i < w->cfg->nupstreams; i++) {
        const fc_upstream_conf_t *uc = &w->cfg->upstreams[i];
        for (size_t k = 0; k < uc->nnames; k++) {
            if (!uc->names[k].resolve) continue;
            dns_name_t *d = &names[r->nnames++];
            *d = (dns_name_t){.r = r, .u = &w->upstreams[i], .nc = &uc->names[k], .naddrs = uc->names[k].ninitial};
        }
    }
    uv_timer_init(w->loop, &r->timer);
    r->open = 1;
    w->resolver = r;
    uv_timer_start(&r->timer, on_timer, 0, 0);
    return 0;
}

void fc_resolver_stop(fc_worker_t *w)
{
    fc_resolver_t *r = w->resolver;
    if (r == NULL) return;
    w->resolver = NULL;
    r->stopped = 1;
    ares_destroy(r->ch); /* answers in flight come back as ARES_EDESTRUCTION; sockets close */
    while (r->polls != NULL) { /* whatever c-ares did not report closed */
        dns_poll_t *p = r->polls;
        r->polls = p->next;
        uv_close((uv_handle_t *)&p->h, on_poll_closed);
    }
    uv_close((uv_handle_t *)&r->timer, on_timer_closed);
}
