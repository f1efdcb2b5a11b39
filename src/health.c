/* health.c: active health checks (see health.h). A probe owns its socket and a small buffer for
 * the status line (its transport reads there); it is freed in its close callback. The upstream module owns the server state
 * the results feed. */
#include "fulcrum/health.h"

#include <stdio.h>
#include <string.h>

#include "fulcrum/io.h"
#include "fulcrum/log.h"
#include "fulcrum/tls.h"
#include "fulcrum/upstream.h"

typedef struct fc_probe {
    fc_io_t io;            /* the socket (reading into resp); the probe is freed in its close callback */
    fc_server_t *server;   /* borrowed; NULL once the server stopped waiting for it */
    fc_timeout_t timeout;  /* health.timeout for the whole probe */
    char req[512];         /* the request, owned */
    char resp[32];         /* the first bytes of the response: "HTTP/1.1 200" (io.rbuf's memory) */
    int done;              /* the result has been reported */
    uint64_t started;      /* loop time (ms) the probe began, for its latency */
    uint32_t gen;          /* server->gen at the start: a result for an address it no longer has is dropped */
} fc_probe_t;

static void on_probe_closed(fc_io_t *io) { free(fc_container_of(io, fc_probe_t, io)); }

/* Reports the result once and closes the probe. */
static void probe_end(fc_probe_t *p, int ok, const char *why)
{
    if (p->done) return;
    p->done = 1;
    fc_timeout_clear(&p->timeout);
    fc_server_t *s = p->server;
    if (s != NULL) {
        s->probe = NULL;
        if (s->gen == p->gen) fc_server_check_result(s, ok, why, uv_now(s->upstream->w->loop) - p->started);
    }
    fc_io_close(&p->io, on_probe_closed);
}

static void on_probe_timeout(fc_timeout_t *t) { probe_end(fc_container_of(t, fc_probe_t, timeout), 0, "timeout"); }

/* The bytes are at the end of io.rbuf (p->resp, keeping room for a NUL). */
static void on_read(fc_io_t *io, ssize_t nread)
{
    fc_probe_t *p = fc_container_of(io, fc_probe_t, io);
    size_t len = p->io.rbuf.len;
    if (p->done) return;
    if (len < 12 && nread > 0 && len < p->io.rbuf.cap) return;
    p->resp[len] = '\0';
    int status = 0;
    if (len < 12 || sscanf(p->resp, "HTTP/1.%*1[01] %3d", &status) != 1) {
        probe_end(p, 0, nread < 0 && len == 0 ? "closed without a response" : "not an HTTP response");
        return;
    }
    const fc_health_conf_t *hc = p->server ? &p->server->upstream->conf->health : NULL;
    char why[32];
    snprintf(why, sizeof(why), "status %d", status);
    probe_end(p, hc != NULL && status >= hc->expect_min && status <= hc->expect_max, why);
}

static void on_write(fc_io_t *io, int status)
{
    fc_probe_t *p = fc_container_of(io, fc_probe_t, io);
    if (status < 0) probe_end(p, 0, uv_strerror(status));
}

static void on_connect(fc_io_t *io, int status)
{
    fc_probe_t *p = fc_container_of(io, fc_probe_t, io);
    if (p->done) return;
    if (status < 0) {
        const char *tls = fc_io_tls_error(io);
        probe_end(p, 0, tls != NULL ? tls : uv_strerror(status));
        return;
    }
    uv_buf_t b = fc_iov(p->req, (unsigned)strlen(p->req));
    int r = fc_io_write(&p->io, &b, 1, on_write); /* 0 or 1: either way the answer is read next */
    if (r >= 0) r = fc_io_read_start(&p->io);
    if (r < 0) probe_end(p, 0, uv_strerror(r));
}

static void probe_start(fc_server_t *s)
{
    fc_upstream_t *u = s->upstream;
    const fc_health_conf_t *hc = &u->conf->health;
    if (s->probe != NULL || s->conf->down || s->vacant) return; /* the last one is still running, or no address */
    fc_probe_t *p = calloc(1, sizeof(*p));
    if (p == NULL) return;
    if (fc_io_init(&p->io, u->w->loop, NULL, on_read) != 0) {
        free(p);
        return;
    }
    p->io.rbuf = (fc_buf_t){p->resp, 0, sizeof(p->resp) - 1};
    p->server = s;
    p->gen = s->gen;
    p->started = uv_now(u->w->loop);
    s->probe = p;
    fc_timeout_init(&p->timeout, on_probe_timeout);
    snprintf(p->req, sizeof(p->req),
             "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: fulcrum-health-check\r\nConnection: close\r\n\r\n", hc->path,
             hc->host ? hc->host : s->conf->addr.text);
    fc_timeout_set(&u->w->tq, &p->timeout, u->t_health);
    int r = fc_server_tls(s, &p->io);
    if (r == 0) r = fc_io_connect(&p->io, (const struct sockaddr *)&s->conf->addr.ss, on_connect);
    if (r < 0) probe_end(p, 0, uv_strerror(r));
}

static void on_health_timer(uv_timer_t *t)
{
    fc_upstream_t *u = fc_container_of(t, fc_upstream_t, health_timer);
    fc_upstream_refresh(u); /* the addresses of resolving names, as published now */
    for (size_t i = 0; i < u->conf->nservers; i++) probe_start(&u->servers[i]);
}

int fc_health_start(fc_worker_t *w)
{
    for (size_t i = 0; i < w->cfg->nupstreams; i++) {
        fc_upstream_t *u = &w->upstreams[i];
        uv_timer_init(w->loop, &u->health_timer);
        if (!u->conf->health.enabled) continue;
        u->t_health = fc_timeq_class(&w->tq, u->conf->health.timeout);
        uv_timer_start(&u->health_timer, on_health_timer, 0, u->conf->health.interval);
    }
    return 0;
}

void fc_health_stop(fc_worker_t *w)
{
    if (w->upstreams == NULL) return;
    for (size_t i = 0; i < w->cfg->nupstreams; i++) {
        fc_upstream_t *u = &w->upstreams[i];
        if (u->health_timer.loop == NULL) continue; /* never started */
        if (!uv_is_closing((uv_handle_t *)&u->health_timer)) uv_close((uv_handle_t *)&u->health_timer, NULL);
        for (size_t s = 0; s < u->conf->nservers; s++) {
            fc_probe_t *p = u->servers[s].probe;
            if (p == NULL) continue;
            p->server = NULL;
            u->servers[s].probe = NULL;
            probe_end(p, 0, "stopping");
        }
    }
}
