/* worker.c: one event loop serving a config: listening sockets (created here, adopted by the
 * loop), accept, signals, the graceful stop, and a teardown that closes every handle and checks
 * that the loop is empty. The master/worker process model builds on fc_worker_run. */
#include "fulcrum/worker.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fulcrum/conn.h"
#include "fulcrum/exchange.h"
#include "fulcrum/health.h"
#include "fulcrum/log.h"
#include "fulcrum/upstream.h"

#define LISTEN_BACKLOG 511
#define LINGER_MS 2000

int fc_listen_open(const fc_config_t *cfg, int *fds, fc_err_t *err)
{
    size_t i;
    for (i = 0; i < cfg->nlisteners; i++) {
        const fc_addr_t *a = &cfg->listeners[i].addr;
        int fam = a->ss.ss_family, on = 1;
        int fd = socket(fam, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) goto fail;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
        if (fam == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on));
        if (bind(fd, (const struct sockaddr *)&a->ss, a->len) != 0 || listen(fd, LISTEN_BACKLOG) != 0) {
            int e = errno;
            close(fd);
            errno = e;
            goto fail;
        }
        fds[i] = fd;
        continue;
    fail:
        fc_err_set(err, "listener %s: %s", a->text, strerror(errno));
        while (i-- > 0) close(fds[i]);
        return -1;
    }
    return 0;
}

static void on_connection(uv_stream_t *server, int status)
{
    fc_listener_t *l = fc_container_of(server, fc_listener_t, tcp);
    if (status < 0) {
        fc_log(FC_LOG_ERROR, "accept on %s: %s", l->conf->addr.text, uv_strerror(status));
        return;
    }
    fc_conn_accept(l->w, server);
}

static void on_listener_closed(uv_handle_t *h)
{
    fc_listener_t *l = fc_container_of(h, fc_listener_t, tcp);
    fc_worker_t *w = l->w;
    if (--w->listeners_open == 0) {
        free(w->listeners);
        w->listeners = NULL;
    }
}

static void close_listeners(fc_worker_t *w)
{
    for (size_t i = 0; i < w->nlisteners; i++) {
        uv_handle_t *h = (uv_handle_t *)&w->listeners[i].tcp;
        if (!uv_is_closing(h)) uv_close(h, on_listener_closed);
    }
}

static void stop_everything(fc_worker_t *w)
{
    if (w->stopped) return;
    w->stopped = 1;
    fc_pool_close_idle(w);
    fc_health_stop(w);
    uv_close((uv_handle_t *)&w->sig_term, NULL);
    uv_close((uv_handle_t *)&w->sig_int, NULL);
    uv_close((uv_handle_t *)&w->sig_quit, NULL);
    uv_close((uv_handle_t *)&w->drain_timer, NULL);
    fc_timeq_close(&w->tq);
}

void fc_worker_check_drained(fc_worker_t *w)
{
    if (w->draining && w->nconns == 0) stop_everything(w);
}

static void on_drain_timeout(uv_timer_t *t)
{
    fc_worker_t *w = fc_container_of(t, fc_worker_t, drain_timer);
    fc_log(FC_LOG_WARN, "shutdown_timeout reached with %zu connections open: closing them", w->nconns);
    fc_list_t *n = w->conns.next;
    while (n != &w->conns) {
        fc_conn_t *c = fc_list_entry(n, fc_conn_t, link);
        n = n->next;
        if (c->ex != NULL) fc_exchange_on_client_error(c->ex, UV_ECANCELED);
        else fc_conn_close(c);
    }
    fc_worker_check_drained(w);
}

void fc_worker_drain(fc_worker_t *w)
{
    if (w->draining) return;
    w->draining = 1;
    fc_log(FC_LOG_NOTICE, "graceful stop: %zu connections open, waiting up to %llu ms", w->nconns,
           (unsigned long long)w->cfg->shutdown_timeout);
    close_listeners(w);
    fc_list_t *n = w->conns.next;
    while (n != &w->conns) {
        fc_conn_t *c = fc_list_entry(n, fc_conn_t, link);
        n = n->next;
        fc_conn_drain(c);
    }
    fc_pool_close_idle(w);
    uv_timer_start(&w->drain_timer, on_drain_timeout, w->cfg->shutdown_timeout, 0);
    fc_worker_check_drained(w);
}

static void on_signal(uv_signal_t *s, int signum)
{
    fc_worker_t *w = s->data;
    fc_log(FC_LOG_NOTICE, "received %s", strsignal(signum));
    fc_worker_drain(w);
}

static void on_walk_close(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h)) uv_close(h, NULL);
}

static int setup(fc_worker_t *w, int *fds, fc_err_t *err)
{
    const fc_config_t *cfg = w->cfg;
    const fc_limits_conf_t *lim = &cfg->limits;
    fc_list_init(&w->conns);
    fc_list_init(&w->upconns);
    if (fc_timeq_init(w->loop, &w->tq) != 0) return fc_err_set(err, "cannot create a timer");
    w->t_header = fc_timeq_class(&w->tq, lim->client_header_timeout);
    w->t_body = fc_timeq_class(&w->tq, lim->client_body_timeout);
    w->t_send = fc_timeq_class(&w->tq, lim->send_timeout);
    w->t_keepalive = lim->keepalive_timeout > 0 ? fc_timeq_class(&w->tq, lim->keepalive_timeout) : NULL;
    w->t_linger = fc_timeq_class(&w->tq, LINGER_MS);
    w->route_connect = fc_xcalloc(cfg->nroutes, sizeof(*w->route_connect));
    w->route_send = fc_xcalloc(cfg->nroutes, sizeof(*w->route_send));
    w->route_read = fc_xcalloc(cfg->nroutes, sizeof(*w->route_read));
    for (size_t i = 0; i < cfg->nroutes; i++) {
        w->route_connect[i] = fc_timeq_class(&w->tq, cfg->routes[i].connect_timeout);
        w->route_send[i] = fc_timeq_class(&w->tq, cfg->routes[i].send_timeout);
        w->route_read[i] = fc_timeq_class(&w->tq, cfg->routes[i].read_timeout);
    }
    /* A request head must fit the read buffer whole; bodies stream through it. */
    size_t bufsize = FC_MAX((size_t)16384, (size_t)lim->max_header_size + 1024);
    fc_bufpool_init(&w->client_bufs, bufsize, 1024);
    if (fc_router_init(&w->router, cfg) != 0) return fc_err_set(err, "out of memory");
    if (fc_upstreams_init(w, err) != 0) return -1;
    fc_health_start(w);
    uv_timer_init(w->loop, &w->drain_timer);
    uv_signal_init(w->loop, &w->sig_term);
    uv_signal_init(w->loop, &w->sig_int);
    uv_signal_init(w->loop, &w->sig_quit);
    w->sig_term.data = w->sig_int.data = w->sig_quit.data = w;
    uv_signal_start(&w->sig_term, on_signal, SIGTERM);
    uv_signal_start(&w->sig_int, on_signal, SIGINT);
    uv_signal_start(&w->sig_quit, on_signal, SIGQUIT);
    w->nlisteners = cfg->nlisteners;
    w->listeners = fc_xcalloc(w->nlisteners, sizeof(fc_listener_t));
    for (size_t i = 0; i < w->nlisteners; i++) {
        fc_listener_t *l = &w->listeners[i];
        l->w = w;
        l->conf = &cfg->listeners[i];
        uv_tcp_init(w->loop, &l->tcp);
        w->listeners_open++;
        int r = uv_tcp_open(&l->tcp, fds[i]);
        if (r == 0) r = uv_listen((uv_stream_t *)&l->tcp, LISTEN_BACKLOG, on_connection);
        if (r != 0) return fc_err_set(err, "listener %s: %s", l->conf->addr.text, uv_strerror(r));
        fc_log(FC_LOG_NOTICE, "listening on %s", l->conf->addr.text);
    }
    return 0;
}

int fc_worker_run(const fc_config_t *cfg, int *fds)
{
    uv_loop_t loop;
    fc_worker_t w;
    fc_err_t err;
    memset(&w, 0, sizeof(w));
    if (uv_loop_init(&loop) != 0) {
        fc_log(FC_LOG_ERROR, "cannot create the event loop");
        return 1;
    }
    w.loop = &loop;
    w.cfg = cfg;
    loop.data = &w;
    if (setup(&w, fds, &err) != 0) {
        fc_log(FC_LOG_ERROR, "%s", err.msg);
        w.exit_code = 1;
        w.draining = 1;
        close_listeners(&w);
        stop_everything(&w);
    }
    uv_run(&loop, UV_RUN_DEFAULT);

    /* Teardown: nothing may be left open; a handle still here is a bug worth a log line. */
    uv_walk(&loop, on_walk_close, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&loop) != 0) fc_log(FC_LOG_ERROR, "event loop not empty at exit");
    fc_upstreams_free(&w);
    fc_router_free(&w.router);
    fc_exchange_freelist_drain(&w);
    fc_bufpool_drain(&w.client_bufs);
    free(w.route_connect);
    free(w.route_send);
    free(w.route_read);
    free(w.listeners);
    if (w.exit_code == 0) fc_log(FC_LOG_NOTICE, "stopped");
    return w.exit_code;
}
