/* upgrade.c: the tunnel after a 101 (see upgrade.h). */
#include "fulcrum/upgrade.h"

#include <stdio.h>

#include "fulcrum/conn.h"
#include "fulcrum/log.h"
#include "fulcrum/upstream.h"

static fc_worker_t *W(const fc_upgrade_t *g) { return g->server->upstream->w; }

static void renew(fc_upgrade_t *g)
{
    if (g->c != NULL) fc_timeout_set(&W(g)->tq, &g->c->timeout, W(g)->route_tunnel[g->route_index]);
}

static void client_written(fc_io_t *io, int status)
{
    fc_conn_t *c = fc_container_of(io, fc_conn_t, io);
    if (c->upgrade != NULL) fc_tunnel_on_write(&c->upgrade->tun, 0, status);
}

static void server_written(fc_io_t *io, int status)
{
    fc_upconn_t *up = fc_container_of(io, fc_upconn_t, io);
    if (up->upgrade != NULL) fc_tunnel_on_write(&up->upgrade->tun, 1, status);
}

static void on_end(fc_tunnel_t *t, int status) { fc_upgrade_end(fc_container_of(t, fc_upgrade_t, tun), status); }

void fc_upgrade_begin(fc_upgrade_t *g, fc_conn_t *c, fc_upconn_t *up)
{
    g->c = c;
    g->up = up;
    g->refs = 2;
    c->upgrade = g;
    up->upgrade = g;
    c->state = FC_CONN_TUNNEL;
    up->state = FC_UP_TUNNEL;
    fc_timeout_clear(&up->timeout);
    renew(g);
    g->tun.io[0] = &c->io;
    g->tun.io[1] = &up->io;
    g->tun.wrote[0] = client_written;
    g->tun.wrote[1] = server_written;
    g->tun.end = on_end;
    fc_tunnel_start(&g->tun);
}

void fc_upgrade_on_read(fc_upgrade_t *g, int side, ssize_t nread)
{
    if (g->done) return;
    if (nread > 0) renew(g);
    fc_tunnel_on_read(&g->tun, side, nread);
}

static void log_end(const fc_upgrade_t *g, int status)
{
    if (!g->log || !fc_access_log_enabled()) return;
    char line[1024];
    double dur = g->t_start ? (double)(uv_hrtime() - g->t_start) / 1e6 : 0.0;
    const char *ip = g->c != NULL ? g->c->ip : "-";
    const char *why = status == 0 ? "closed" : status == UV_ETIMEDOUT ? "timeout" : status == UV_ECANCELED ? "stopped"
                                                                                                 : uv_err_name(status);
    int n;
    if (W(g)->cfg->access_log_format == FC_LOG_FORMAT_COMBINED)
        n = snprintf(line, sizeof(line), "%s - - [%s] \"%s %s HTTP/1.1\" 101 %llu \"-\" \"-\" %.3f %s 0.000\n", ip,
                     fc_log_time_clf(), g->method, g->path, (unsigned long long)g->tun.bytes[1], dur / 1000,
                     g->server->conf->addr.text);
    else
        n = snprintf(line, sizeof(line),
                     "{\"time\":\"%s\",\"client\":\"%s\",\"method\":\"%s\",\"path\":\"%s\",\"status\":101,"
                     "\"bytes\":%llu,\"bytes_received\":%llu,\"duration_ms\":%.3f,\"upstream\":\"%s\","
                     "\"tunnel\":\"%s\"}\n",
                     fc_log_time_iso(), ip, g->method, g->path, (unsigned long long)g->tun.bytes[1],
                     (unsigned long long)g->tun.bytes[0], dur, g->server->conf->addr.text, why);
    if (n > 0) fc_access_log_write(line, FC_MIN((size_t)n, sizeof(line) - 1));
}

void fc_upgrade_end(fc_upgrade_t *g, int status)
{
    if (g->done) return;
    g->done = 1;
    g->tun.ended = 1; /* the closes' own callbacks are not the pump's business */
    log_end(g, status);
    fc_server_done(g->server);
    fc_upconn_t *up = g->up;
    fc_conn_t *c = g->c;
    g->up = NULL;
    g->c = NULL;
    if (up != NULL) fc_upconn_close(up);
    if (c != NULL) fc_conn_close(c);
}

void fc_upgrade_unref(fc_upgrade_t *g)
{
    if (--g->refs == 0) free(g);
}
