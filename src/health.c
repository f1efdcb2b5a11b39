/* health.c: active health checks (see health.h). A probe owns its socket and a small buffer for
 * the status line; it is freed in its close callback. The upstream module owns the server state
 * the results feed. */
#include "fulcrum/health.h"

#include <stdio.h>
#include <string.h>

#include "fulcrum/log.h"
#include "fulcrum/upstream.h"

typedef struct fc_probe {
    uv_tcp_t tcp;          /* the socket; the probe is freed in its close callback */
    uv_connect_t creq;     /* the connect request */
    uv_write_t wreq;       /* the request write */
    fc_server_t *server;   /* borrowed; NULL once the server stopped waiting for it */
    fc_timeout_t timeout;  /* health.timeout for the whole probe */
    char req[512];         /* the request, owned */
    char resp[32];         /* the first bytes of the response: "HTTP/1.1 200" */
    size_t resp_len;
    int done;              /* the result has been reported */
} fc_probe_t;

static void on_probe_closed(uv_handle_t *h) { free(fc_container_of(h, fc_probe_t, tcp)); }

/* Reports the result once and closes the probe. */
static void probe_end(fc_probe_t *p, int ok, const char *why)
{
    if (p->done) return;
    p->done = 1;
    fc_timeout_clear(&p->timeout);
    fc_server_t *s = p->server;
    if (s != NULL) {
        s->probe = NULL;
        fc_server_check_result(s, ok, why);
    }
    uv_close((uv_handle_t *)&p->tcp, on_probe_closed);
}

static void on_probe_timeout(fc_timeout_t *t) { probe_end(fc_container_of(t, fc_probe_t, timeout), 0, "timeout"); }

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    fc_probe_t *p = fc_container_of(h, fc_probe_t, tcp);
    *buf = uv_buf_init(p->resp + p->resp_len, (unsigned)(sizeof(p->resp) - 1 - p->resp_len));
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    fc_probe_t *p = fc_container_of(st, fc_probe_t, tcp);
    if (p->done || nread == 0) return;
    if (nread > 0) p->resp_len += (size_t)nread;
    if (p->resp_len < 12 && nread > 0 && p->resp_len < sizeof(p->resp) - 1) return;
    p->resp[p->resp_len] = '\0';
    int status = 0;
    if (p->resp_len < 12 || sscanf(p->resp, "HTTP/1.%*1[01] %3d", &status) != 1) {
        probe_end(p, 0, nread < 0 && p->resp_len == 0 ? "closed without a response" : "not an HTTP response");
        return;
    }
    const fc_health_conf_t *hc = p->server ? &p->server->upstream->conf->health : NULL;
    char why[32];
    snprintf(why, sizeof(why), "status %d", status);
    probe_end(p, hc != NULL && status >= hc->expect_min && status <= hc->expect_max, why);
}

static void on_write(uv_write_t *req, int status)
{
    fc_probe_t *p = fc_container_of(req, fc_probe_t, wreq);
    if (status < 0) probe_end(p, 0, uv_strerror(status));
}

static void on_connect(uv_connect_t *req, int status)
{
    fc_probe_t *p = fc_container_of(req, fc_probe_t, creq);
    if (p->done) return;
    if (status < 0) {
        probe_end(p, 0, uv_strerror(status));
        return;
    }
    uv_buf_t b = uv_buf_init(p->req, (unsigned)strlen(p->req));
    int r = uv_write(&p->wreq, (uv_stream_t *)&p->tcp, &b, 1, on_write);
    if (r == 0) r = uv_read_start((uv_stream_t *)&p->tcp, on_alloc, on_read);
    if (r < 0) probe_end(p, 0, uv_strerror(r));
}

static void probe_start(fc_server_t *s)
{
    fc_upstream_t *u = s->upstream;
    const fc_health_conf_t *hc = &u->conf->health;
    if (s->probe != NULL || s->conf->down) return; /* the last one is still running */
    fc_probe_t *p = calloc(1, sizeof(*p));
    if (p == NULL) return;
    if (uv_tcp_init(u->w->loop, &p->tcp) != 0) {
        free(p);
        return;
    }
    p->server = s;
    s->probe = p;
    fc_timeout_init(&p->timeout, on_probe_timeout);
    snprintf(p->req, sizeof(p->req),
             "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: fulcrum-health-check\r\nConnection: close\r\n\r\n", hc->path,
             hc->host ? hc->host : s->conf->addr.text);
    fc_timeout_set(&u->w->tq, &p->timeout, u->t_health);
    int r = uv_tcp_connect(&p->creq, &p->tcp, (const struct sockaddr *)&s->conf->addr.ss, on_connect);
    if (r < 0) probe_end(p, 0, uv_strerror(r));
}

static void on_health_timer(uv_timer_t *t)
{
    fc_upstream_t *u = fc_container_of(t, fc_upstream_t, health_timer);
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
