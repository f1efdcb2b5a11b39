/* upgrade.c: the tunnel after a 101 (see upgrade.h). */
#include "fulcrum/upgrade.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "fulcrum/conn.h"
#include "fulcrum/log.h"
#include "fulcrum/upstream.h"
#include "fulcrum/worker.h"

static fc_worker_t *W(const fc_upgrade_t *g) { return g->w; }

/* Traffic renews the idle timeout; a tunnel without a server in this configuration has the fixed
 * deadline of shutdown_timeout instead. */
static void renew(fc_upgrade_t *g)
{
    if (g->c != NULL && g->server != NULL) fc_timeout_set(&W(g)->tq, &g->c->timeout, W(g)->route_tunnel[g->route_index]);
}

static void try_move(fc_upgrade_t *g);

static void client_written(fc_io_t *io, int status)
{
    fc_conn_t *c = fc_container_of(io, fc_conn_t, io);
    fc_upgrade_t *g = c->upgrade;
    if (g == NULL) return;
    fc_tunnel_on_write(&g->tun, 0, status);
    if (g->moving && !g->done && fc_tunnel_quiet(&g->tun)) try_move(g);
}

static void server_written(fc_io_t *io, int status)
{
    fc_upconn_t *up = fc_container_of(io, fc_upconn_t, io);
    fc_upgrade_t *g = up->upgrade;
    if (g == NULL) return;
    fc_tunnel_on_write(&g->tun, 1, status);
    if (g->moving && !g->done && fc_tunnel_quiet(&g->tun)) try_move(g);
}

static void on_end(fc_tunnel_t *t, int status) { fc_upgrade_end(fc_container_of(t, fc_upgrade_t, tun), status); }

void fc_upgrade_begin(fc_upgrade_t *g, fc_conn_t *c, fc_upconn_t *up)
{
    g->w = c->w;
    snprintf(g->ip, sizeof(g->ip), "%s", c->ip);
    g->c = c;
    g->up = up;
    g->refs = 2;
    c->upgrade = g;
    up->upgrade = g;
    fc_conn_set_state(c, FC_CONN_TUNNEL);
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
    const char *ip = g->ip;
    const char *why = status == 0 ? "closed" : status == UV_ETIMEDOUT ? "timeout" : status == UV_ECANCELED ? "stopped"
                                                                                                 : uv_err_name(status);
    int n;
    if (W(g)->cfg->access_log_format == FC_LOG_FORMAT_COMBINED)
        n = snprintf(line, sizeof(line), "%s - - [%s] \"%s %s HTTP/1.1\" 101 %llu \"-\" \"-\" %.3f %s 0.000\n", ip,
                     fc_log_time_clf(), g->method, g->path, (unsigned long long)g->tun.bytes[1], dur / 1000,
                     fc_upgrade_address(g));
    else
        n = snprintf(line, sizeof(line),
                     "{\"time\":\"%s\",\"client\":\"%s\",\"method\":\"%s\",\"path\":\"%s\",\"status\":101,"
                     "\"bytes\":%llu,\"bytes_received\":%llu,\"duration_ms\":%.3f,\"upstream\":\"%s\","
                     "\"tunnel\":\"%s\"}\n",
                     fc_log_time_iso(), ip, g->method, g->path, (unsigned long long)g->tun.bytes[1],
                     (unsigned long long)g->tun.bytes[0], dur, fc_upgrade_address(g), why);
    if (n > 0) fc_access_log_write(line, FC_MIN((size_t)n, sizeof(line) - 1));
}

void fc_upgrade_end(fc_upgrade_t *g, int status)
{
    if (g->done) return;
    g->done = 1;
    g->tun.ended = 1; /* the closes' own callbacks are not the pump's business */
    log_end(g, status);
    if (g->server != NULL) fc_server_done(g->server);
    fc_upconn_t *up = g->up;
    fc_conn_t *c = g->c;
    g->up = NULL;
    g->c = NULL;
    if (up != NULL) fc_upconn_close(up);
    if (c != NULL) fc_conn_close(c);
}

/* Sends it; on failure it goes on here. */
static void try_move(fc_upgrade_t *g)
{
    g->moving = 0;
    if (fc_worker_handover_tunnel(W(g), g) == 0) {
        g->log = 0; /* the newer generation writes the line when it ends */
        fc_upgrade_end(g, 0);
        return;
    }
    g->tun.paused = 0;
    fc_tunnel_start(&g->tun);
}

int fc_upgrade_move(fc_upgrade_t *g)
{
    if (g->done || g->moving || g->c == NULL || g->up == NULL || g->c->io.tls != NULL || g->up->io.tls != NULL)
        return -1;
    if (g->tun.eof[0] || g->tun.eof[1] || g->tun.shut[0] || g->tun.shut[1]) return -1; /* ending anyway */
    fc_tunnel_pause(&g->tun);
    if (fc_tunnel_quiet(&g->tun)) try_move(g);
    else g->moving = 1;
    return 0;
}

/* Puts <n> bytes into <io>'s read buffer (a new lease). */
static int prefill(fc_io_t *io, const char *b, size_t n)
{
    if (n == 0) return 0;
    io->rbuf.base = fc_bufpool_get(io->pool);
    io->rbuf.cap = io->rbuf.base != NULL ? io->pool->size : 0;
    if (io->rbuf.base == NULL || n > io->rbuf.cap) return -1;
    memcpy(io->rbuf.base, b, n);
    io->rbuf.len = n;
    return 0;
}

const char *fc_upgrade_upstream(const fc_upgrade_t *g)
{
    return g->server != NULL ? g->server->upstream->conf->name : g->orphan != NULL ? g->orphan : "-";
}

const char *fc_upgrade_address(const fc_upgrade_t *g)
{
    return g->server != NULL ? g->server->conf->addr.text : g->orphan != NULL ? g->orphan + strlen(g->orphan) + 1 : "-";
}

void fc_upgrade_adopt(fc_worker_t *w, int cfd, int ufd, const fc_upgrade_t *from, const char *upstream,
                      const char *address, const char *b0, size_t n0, const char *b1, size_t n1)
{
    fc_server_t *s = fc_server_find(w, upstream, address);
    fc_upgrade_t *g = calloc(1, sizeof(*g));
    if (g == NULL) {
        close(cfd);
        close(ufd);
        return;
    }
    fc_conn_t *c = fc_conn_adopt_tunnel(w, cfd, from->ip); /* owns cfd from here */
    if (c == NULL) {
        free(g);
        close(ufd);
        return;
    }
    /* A server this configuration does not have: the tunnel still goes on, uncounted, until it
     * ends or shutdown_timeout, as a graceful stop would bound it. Its upconn needs a server
     * object: the first of the first upstream stands in (never counted, never reported). */
    fc_upconn_t *up = fc_upconn_adopt(s != NULL ? s : &w->upstreams[0].servers[0], ufd);
    if (up == NULL) {
        free(g);
        fc_conn_close(c);
        return;
    }
    g->server = s;
    if (s != NULL) fc_server_picked(s);
    g->t_start = from->t_start;
    g->log = from->log;
    memcpy(g->method, from->method, sizeof(g->method));
    memcpy(g->path, from->path, sizeof(g->path));
    g->tun.bytes[0] = from->tun.bytes[0];
    g->tun.bytes[1] = from->tun.bytes[1];
    /* the route: the first one to this server's upstream (for its tunnel timeout) */
    for (size_t i = 0; s != NULL && i < w->cfg->nroutes; i++)
        if (w->cfg->routes[i].upstream == s->upstream->conf) {
            g->route = &w->cfg->routes[i];
            g->route_index = i;
            break;
        }
    if (g->route == NULL) g->route = &w->cfg->routes[0];
    if (prefill(&c->io, b0, n0) != 0 || prefill(&up->io, b1, n1) != 0) {
        free(g);
        fc_upconn_close(up);
        fc_conn_close(c);
        return;
    }
    fc_upgrade_begin(g, c, up);
    if (s == NULL) {
        size_t un = strlen(upstream), an = strlen(address);
        g->orphan = malloc(un + an + 2);
        if (g->orphan != NULL) {
            memcpy(g->orphan, upstream, un + 1);
            memcpy(g->orphan + un + 1, address, an + 1);
        }
        fc_timeout_set(&w->tq, &c->timeout, w->t_tunnel_orphan);
    }
}

void fc_upgrade_unref(fc_upgrade_t *g)
{
    if (--g->refs > 0) return;
    free(g->orphan);
    free(g);
}
