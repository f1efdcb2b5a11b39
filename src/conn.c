/* conn.c: client connections (see conn.h). Reads into a pooled buffer that is handed back while
 * the connection is idle, parses request heads, and hands each request to an exchange. */
#include "fulcrum/conn.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fulcrum/exchange.h"
#include "fulcrum/io.h"
#include "fulcrum/log.h"
#include "fulcrum/message.h"
#include "fulcrum/slab.h"
#include "fulcrum/tls.h"
#include "fulcrum/tunnel.h"
#include "fulcrum/upgrade.h"

static void process(fc_conn_t *c);

/* A TLS connection relayed to a newer generation: its plaintext goes through a socketpair whose
 * other end a worker of that generation serves as a connection of its own. */
typedef struct fc_relay {
    fc_io_t io;          /* our end of the socketpair (reading into the client buffer pool) */
    fc_conn_t *c;        /* the TLS connection, NULL once it is closing */
    fc_tunnel_t tun;     /* side 0: the client's TLS io, side 1: the socketpair */
    int refs;            /* the connection's and the io's: freed when both let go */
} fc_relay_t;

static void relay_unref(fc_relay_t *r)
{
    if (--r->refs == 0) free(r);
}

static void relay_io_closed(fc_io_t *io) { relay_unref(fc_container_of(io, fc_relay_t, io)); }

static void relay_on_read(fc_io_t *io, ssize_t nread)
{
    fc_relay_t *r = fc_container_of(io, fc_relay_t, io);
    fc_tunnel_on_read(&r->tun, 1, nread);
}

static void relay_written(fc_io_t *io, int status)
{
    fc_relay_t *r = fc_container_of(io, fc_relay_t, io);
    fc_tunnel_on_write(&r->tun, 1, status);
}

static void client_written(fc_io_t *io, int status)
{
    fc_conn_t *c = fc_container_of(io, fc_conn_t, io);
    if (c->relay != NULL) fc_tunnel_on_write(&c->relay->tun, 0, status);
}

static void relay_end(fc_tunnel_t *t, int status)
{
    (void)status;
    fc_relay_t *r = fc_container_of(t, fc_relay_t, tun);
    if (r->c != NULL) fc_conn_close(r->c); /* closes the socketpair too */
}

int fc_conn_relay(fc_conn_t *c, int *peer_fd)
{
    int sv[2];
    if (c->eof || c->relay != NULL || socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0)
        return -1;
    fc_relay_t *r = calloc(1, sizeof(*r));
    if (r == NULL || fc_io_init(&r->io, c->w->loop, &c->w->client_bufs, relay_on_read) != 0) {
        free(r);
        close(sv[0]);
        close(sv[1]);
        return -1;
    }
    r->refs = 2;
    r->c = c;
    c->relay = r;
    if (fc_io_open(&r->io, sv[0]) != 0) {
        close(sv[0]);
        close(sv[1]);
        fc_conn_relay_cancel(c);
        return -1;
    }
    *peer_fd = sv[1];
    return 0;
}

void fc_conn_relay_cancel(fc_conn_t *c)
{
    fc_relay_t *r = c->relay;
    c->relay = NULL;
    r->c = NULL;
    r->tun.ended = 1;
    fc_io_close(&r->io, relay_io_closed);
    relay_unref(r); /* the connection's reference */
}

void fc_conn_relay_start(fc_conn_t *c)
{
    fc_relay_t *r = c->relay;
    if (c->ex != NULL) { /* a request head partly read: its bytes went with the hand-over */
        fc_exchange_t *ex = c->ex;
        c->ex = NULL;
        fc_exchange_abandon(ex);
    }
    fc_conn_set_state(c, FC_CONN_RELAY);
    fc_timeout_clear(&c->timeout); /* bounded by the drain's shutdown_timeout, and by the other side */
    c->io.rbuf.len = c->pos = 0;   /* what was read went with the hand-over */
    fc_io_release_buf(&c->io);
    r->tun.io[0] = &c->io;
    r->tun.io[1] = &r->io;
    r->tun.wrote[0] = client_written;
    r->tun.wrote[1] = relay_written;
    r->tun.end = relay_end;
    fc_tunnel_start(&r->tun);
}

/* What <c> counts as in fulcrum_client_connections. */
static unsigned counted_state(const fc_conn_t *c)
{
    static const uint8_t of_state[] = {
        [FC_CONN_IDLE] = FC_MCS_IDLE,       [FC_CONN_HEAD] = FC_MCS_READING,  [FC_CONN_ACTIVE] = FC_MCS_WRITING,
        [FC_CONN_LINGER] = FC_MCS_WRITING,  [FC_CONN_RELAY] = FC_MCS_TUNNEL,  [FC_CONN_TUNNEL] = FC_MCS_TUNNEL,
        [FC_CONN_CLOSING] = FC_MCS_NONE,
    };
    return c->handshaking && c->state == FC_CONN_IDLE ? FC_MCS_HANDSHAKE : of_state[c->state];
}

/* Counts <c> under the state it is in now (a gauge in this worker's metric block). */
static void recount(fc_conn_t *c)
{
    if (c->w->metrics.block == NULL) return; /* metrics are off in this worker, for its whole life */
    unsigned k = counted_state(c);
    if (k == c->counted_as) return;
    fc_metrics_conn_move(&c->w->metrics, c->counted_as, k);
    c->counted_as = (uint8_t)k;
}

void fc_conn_set_state(fc_conn_t *c, unsigned s)
{
    c->state = (uint8_t)s;
    recount(c);
}

static void release_buf(fc_conn_t *c)
{
    fc_io_release_buf(&c->io);
    c->pos = 0;
}

/* Client connections live long and are allocated among the pieces of TLS handshakes: packed in
 * a slab of their own (slab.h). */
static fc_slab_t conn_slab;

void fc_conn_slab_drain(void) { fc_slab_drain(&conn_slab); }

static void on_close(fc_io_t *io)
{
    fc_conn_t *c = fc_container_of(io, fc_conn_t, io);
    fc_worker_t *w = c->w;
    if (c->relay != NULL) relay_unref(c->relay);
    if (c->upgrade != NULL) fc_upgrade_unref(c->upgrade);
    fc_slab_free(&conn_slab, c);
    fc_worker_check_drained(w);
}

void fc_conn_close(fc_conn_t *c)
{
    if (c->state == FC_CONN_CLOSING) return;
    FC_ASSERT(c->ex == NULL);
    if (c->upgrade != NULL && !c->upgrade->done) {
        fc_upgrade_end(c->upgrade, UV_ECANCELED); /* closes both sides, this one too */
        return;
    }
    if (c->relay != NULL) {
        fc_relay_t *r = c->relay;
        r->c = NULL;
        r->tun.ended = 1; /* the callbacks of the close are not the pump's business */
        fc_io_close(&r->io, relay_io_closed);
    }
    fc_conn_set_state(c, FC_CONN_CLOSING);
    if (c->peer_counted) fc_shm_peer_leave(c->w->shm, c->peer_key);
    c->peer_counted = 0;
    fc_timeout_clear(&c->timeout);
    fc_list_remove(&c->link);
    c->w->nconns--;
    fc_worker_count_conns(c->w);
    fc_io_close(&c->io, on_close); /* reads stop; the read lease goes back before on_close */
}

static void on_timeout(fc_timeout_t *t)
{
    fc_conn_t *c = fc_container_of(t, fc_conn_t, timeout);
    switch (c->state) {
    case FC_CONN_HEAD:
        /* Part of a head arrived but not all of it in time: say so, then close. */
        if (c->ex != NULL) {
            fc_exchange_reply_error(c->ex, 408, 0);
            return;
        }
        fc_conn_close(c);
        return;
    case FC_CONN_ACTIVE:
        if (c->ex != NULL) fc_exchange_on_client_timeout(c->ex);
        return;
    case FC_CONN_TUNNEL:
        fc_upgrade_end(c->upgrade, UV_ETIMEDOUT); /* idle both ways for timeouts.tunnel */
        return;
    default:
        fc_conn_close(c);
        return;
    }
}

/* New bytes are at the end of io.rbuf (lingering, they were dropped); reading stopped by itself
 * if the buffer is full, or on an error or EOF. */
/* The metric series of the listener <c> was accepted on (its TLS handshakes), or NULL. */
static fc_metrics_series_t *tls_series(const fc_conn_t *c)
{
    fc_worker_t *w = c->w;
    if (w->metrics.shm == NULL || c->listener == NULL) return NULL;
    return w->listeners[c->listener - w->cfg->listeners].ms;
}

static void on_read(fc_io_t *io, ssize_t nread)
{
    fc_conn_t *c = fc_container_of(io, fc_conn_t, io);
    if (FC_LIKELY(nread > 0)) {
        if (c->state <= FC_CONN_HEAD) process(c); /* the common case: a request (head) arrives */
        else if (c->state == FC_CONN_ACTIVE) {
            if (c->ex != NULL) fc_exchange_on_client_data(c->ex);
        } else if (c->state == FC_CONN_TUNNEL) {
            fc_upgrade_on_read(c->upgrade, 0, nread);
        } else if (c->state == FC_CONN_RELAY) {
            fc_tunnel_on_read(&c->relay->tun, 0, nread);
        }
        return; /* lingering or closing: dropped */
    }
    if (c->state == FC_CONN_RELAY) {
        fc_tunnel_on_read(&c->relay->tun, 0, nread);
        return;
    }
    if (c->state == FC_CONN_TUNNEL) {
        fc_upgrade_on_read(c->upgrade, 0, nread);
        return;
    }
    if (c->handshaking) {
        c->handshaking = 0;
        recount(c);
        fc_metrics_series_t *ms = tls_series(c);
        if (nread == 0) { /* the TLS handshake is done: the request head's own time begins */
            if (ms != NULL) fc_metrics_add(ms, FC_MV_TLS_OK, 1);
            fc_timeout_set(&c->w->tq, &c->timeout, c->w->t_header);
            return;
        }
        if (ms != NULL) fc_metrics_add(ms, FC_MV_TLS_FAIL, 1);
        const char *why = fc_io_tls_error(io);
        fc_log(FC_LOG_INFO, "tls handshake from %s failed: %s", c->ip, why != NULL ? why : uv_strerror((int)nread));
        c->eof = 1;
        fc_conn_close(c);
        return;
    }
    c->eof = 1;
    /* EOF in the middle of a request head is an abort like any other EOF (logged 499, nothing
     * sent): process() has given every byte of the partial head to the parser already, which
     * took them all, so there is nothing left to answer. */
    if (c->state == FC_CONN_ACTIVE && c->ex != NULL) fc_exchange_on_client_error(c->ex, (int)nread);
    else if (c->state != FC_CONN_CLOSING) {
        if (c->ex != NULL) fc_exchange_on_client_error(c->ex, (int)nread);
        else fc_conn_close(c);
    }
}

void fc_conn_read_start(fc_conn_t *c)
{
    if (c->io.reading || c->eof || c->state == FC_CONN_CLOSING) return;
    fc_io_read_start(&c->io); /* a no-op while the buffer is full */
}

void fc_conn_nodelay(fc_conn_t *c) { fc_io_nodelay(&c->io); }

void fc_conn_sndbuf(fc_conn_t *c, int bytes) { (void)fc_io_sndbuf(&c->io, bytes); }

void fc_conn_read_stop(fc_conn_t *c) { fc_io_read_stop(&c->io); }

static void parse_heads(fc_conn_t *c);

/* Parses request heads; a connection left with half a head is counted as reading only now, so a
 * head that came whole in one read costs one move of the gauges (idle to writing), not two. */
static void process(fc_conn_t *c)
{
    parse_heads(c);
    if (c->state == FC_CONN_HEAD) recount(c);
}

/* Parses request heads from the buffer while the connection is between exchanges. */
static void parse_heads(fc_conn_t *c)
{
    fc_worker_t *w = c->w;
    while (c->state == FC_CONN_IDLE || c->state == FC_CONN_HEAD) {
        if (c->pos == c->io.rbuf.len) {
            if (c->state == FC_CONN_IDLE) {
                release_buf(c); /* idle connections hold no buffer */
                if (c->eof) fc_conn_close(c);
            }
            return;
        }
        if (c->state == FC_CONN_IDLE) {
            /* A new request begins: its head starts at offset 0 of the buffer. */
            if (c->pos > 0) {
                memmove(c->io.rbuf.base, c->io.rbuf.base + c->pos, c->io.rbuf.len - c->pos);
                c->io.rbuf.len -= c->pos;
                c->pos = 0;
                fc_conn_read_start(c);
            }
            c->state = FC_CONN_HEAD; /* counted by process() if the head is not complete */
            fc_timeout_set(&w->tq, &c->timeout, w->t_header);
        }
        if (c->ex == NULL) {
            c->ex = fc_exchange_new(c);
            if (c->ex == NULL) {
                fc_conn_close(c);
                return;
            }
            fc_http_parser_init(&c->ex->parser, HTTP_REQUEST);
            c->ex->parser.head = &c->ex->req;
        }
        size_t used = 0;
        int ev = fc_http_execute(&c->ex->parser, c->io.rbuf.base + c->pos, c->io.rbuf.len - c->pos, &used);
        c->pos += used;
        switch (ev) {
        case FC_HTTP_HEAD_DONE:
            if (c->pos > w->cfg->limits.max_header_size) {
                fc_exchange_reply_error(c->ex, 431, 0);
                return;
            }
            fc_conn_set_state(c, FC_CONN_ACTIVE);
            fc_timeout_clear(&c->timeout);
            /* The exchange may end before this returns (an error answer, a pipelined 404):
             * the loop then goes on with the next request instead of recursing. */
            c->processing = 1;
            fc_exchange_start(c->ex);
            c->processing = 0;
            continue;
        case FC_HTTP_MSG_DONE:
            continue; /* the end of a bodiless message before this one: nothing to do */
        case FC_HTTP_NEED_MORE:
            if (c->pos > w->cfg->limits.max_header_size || c->io.rbuf.len == c->io.rbuf.cap) {
                fc_exchange_reply_error(c->ex, 431, 0);
            }
            return;
        default:
            fc_log(FC_LOG_INFO, "client %s: bad request: %s", c->ip, fc_http_error(&c->ex->parser));
            fc_exchange_reply_error(c->ex, fc_msg_request_error_status(&c->ex->parser, c->io.rbuf.base, c->io.rbuf.len), 0);
            return;
        }
    }
}

void fc_conn_exchange_done(fc_conn_t *c, int keepalive)
{
    fc_worker_t *w = c->w;
    c->ex = NULL;
    if (keepalive && w->handover_gen != 0 && !c->eof) {
        /* Reloading: the next request on this connection belongs to the new configuration. */
        fc_conn_set_state(c, FC_CONN_IDLE);
        int r = fc_worker_handover(w, c);
        if (r == 0) fc_conn_close(c);
        if (r >= 0) return; /* handed over, or relayed from here */
    }
    if (!keepalive || w->draining || w->t_keepalive == NULL || c->eof) {
        if (c->eof) fc_conn_close(c);
        else fc_conn_linger(c);
        return;
    }
    fc_conn_set_state(c, FC_CONN_IDLE);
    fc_timeout_set(&w->tq, &c->timeout, w->t_keepalive);
    fc_conn_read_start(c);
    if (!c->processing) process(c); /* a pipelined request may be waiting already */
}

void fc_conn_linger(fc_conn_t *c)
{
    fc_worker_t *w = c->w;
    c->ex = NULL;
    if (c->eof || (!c->unread && c->pos == c->io.rbuf.len)) {
        /* Nothing more is coming (the request was read whole, nothing after it): a plain close
         * sends FIN after the answer, as nginx's lingering_close heuristic does. */
        fc_conn_close(c);
        return;
    }
    /* Shut our side and read until the client closes, so that unread input does not turn the
     * close into a reset that could destroy the response before the client reads it. */
    fc_conn_set_state(c, FC_CONN_LINGER);
    c->io.rmode = FC_IO_READ_DISCARD;
    c->pos = 0;
    if (fc_io_shutdown(&c->io) != 0) {
        fc_conn_close(c);
        return;
    }
    fc_timeout_set(&w->tq, &c->timeout, w->t_linger);
    fc_conn_read_start(c);
}

void fc_conn_drain(fc_conn_t *c)
{
    fc_worker_t *w = c->w;
    if (c->state == FC_CONN_TUNNEL) {
        /* Reloading: the tunnel moves to the new generation with both its sockets (a TLS one
         * stays here until it ends or shutdown_timeout). */
        if (w->handover_gen != 0) fc_upgrade_move(c->upgrade);
        return;
    }
    if (c->state == FC_CONN_LINGER) {
        fc_conn_close(c); /* its answer is out already */
        return;
    }
    int between = c->state == FC_CONN_IDLE || (c->state == FC_CONN_HEAD && c->ex != NULL && c->ex->t_start == 0);
    if (!between) return; /* an exchange in progress finishes first */
    if (w->handover_gen != 0) {
        /* A connection between requests (or with a request head only partly read) moves to the
         * new generation with its unread bytes; the client sees nothing of the reload. */
        fc_conn_read_stop(c);
        int r = fc_worker_handover(w, c);
        if (r == 1) return; /* relayed from here */
        if (r == 0) {
            if (c->ex != NULL) {
                fc_exchange_t *ex = c->ex;
                c->ex = NULL;
                            fc_exchange_abandon(ex);
            }
            fc_conn_close(c);
            return;
        }
        fc_conn_read_start(c);
        if (c->state == FC_CONN_HEAD) return; /* could not hand over: let it finish here */
    }
    if ((c->state == FC_CONN_IDLE && c->ex == NULL) || c->state == FC_CONN_LINGER) fc_conn_close(c);
}

static const fc_listener_conf_t *find_listener(const fc_worker_t *w, const struct sockaddr_storage *ss)
{
    for (size_t i = 0; i < w->cfg->nlisteners; i++) {
        const fc_listener_conf_t *l = &w->cfg->listeners[i];
        if (l->addr.ss.ss_family != ss->ss_family) continue;
        if (ss->ss_family == AF_INET) {
            const struct sockaddr_in *a = (const void *)&l->addr.ss, *b = (const void *)ss;
            if (a->sin_port == b->sin_port &&
                (a->sin_addr.s_addr == htonl(INADDR_ANY) || a->sin_addr.s_addr == b->sin_addr.s_addr))
                return l;
        } else if (ss->ss_family == AF_INET6) {
            const struct sockaddr_in6 *a = (const void *)&l->addr.ss, *b = (const void *)ss;
            if (a->sin6_port == b->sin6_port &&
                (IN6_IS_ADDR_UNSPECIFIED(&a->sin6_addr) || memcmp(&a->sin6_addr, &b->sin6_addr, 16) == 0))
                return l;
        }
    }
    return NULL;
}

/* A new connection object on <w>'s loop for socket <fd>, counted and listed, not reading yet.
 * NULL on failure, with <fd> closed. */
static fc_conn_t *conn_new(fc_worker_t *w, int fd)
{
    if (conn_slab.size == 0) fc_slab_init(&conn_slab, sizeof(fc_conn_t));
    fc_conn_t *c = fc_slab_alloc(&conn_slab);
    if (c == NULL) {
        close(fd);
        return NULL;
    }
    if (fc_io_init(&c->io, w->loop, &w->client_bufs, on_read) != 0) {
        fc_slab_free(&conn_slab, c);
        close(fd);
        return NULL;
    }
    c->w = w;
    c->counted_as = FC_MCS_NONE;
    fc_list_insert_tail(&w->conns, &c->link);
    w->nconns++;
    fc_worker_count_conns(w);
    fc_timeout_init(&c->timeout, on_timeout);
    fc_conn_set_state(c, FC_CONN_IDLE);
    if (fc_io_open(&c->io, fd) != 0) {
        close(fd);
        fc_conn_close(c);
        return NULL;
    }
    return c;
}

static void set_ip(fc_conn_t *c, const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, c->ip, sizeof(c->ip));
    else if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, c->ip, sizeof(c->ip));
}

/* Takes the addresses of an accepted or adopted socket (<peer> when accept gave it, else asked
 * for), and starts reading. */
static void conn_start(fc_conn_t *c, const struct sockaddr *peer)
{
    fc_worker_t *w = c->w;
    struct sockaddr_storage ss;
    if (!c->relayed) { /* a relayed one was told its client and listener */
        strcpy(c->ip, "-");
        if (peer != NULL) set_ip(c, peer);
        else if (fc_io_address(&c->io, 1, &ss) == 0) set_ip(c, (struct sockaddr *)&ss);
        if (c->listener == NULL && fc_io_address(&c->io, 0, &ss) == 0) c->listener = find_listener(w, &ss);
    }
    c->opts = fc_worker_head_opts(w, c->listener);
    fc_timeout_set(&w->tq, &c->timeout, c->handshaking ? w->t_tls : w->t_header);
    fc_conn_read_start(c);
}

static uint64_t address_key(const struct sockaddr *sa);

/* A connection taken over from an older generation is counted here (the older one stopped
 * counting it when it let go), whatever the limit: it is not refused. */
static void count_adopted(fc_conn_t *c)
{
    struct sockaddr_storage ss;
    if (c->w->cfg->limits.max_connections_per_client == 0 || fc_io_address(&c->io, 1, &ss) != 0) return;
    c->peer_key = address_key((const struct sockaddr *)&ss);
    c->peer_counted = fc_shm_peer_enter(c->w->shm, c->peer_key, UINT32_MAX) == 1;
}

/* FNV-1a of a client's address bytes (not its port). */
static uint64_t address_key(const struct sockaddr *sa)
{
    const unsigned char *p;
    size_t n;
    if (sa->sa_family == AF_INET6) {
        p = (const unsigned char *)&((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;
        n = 16;
    } else {
        p = (const unsigned char *)&((const struct sockaddr_in *)(const void *)sa)->sin_addr;
        n = 4;
    }
    return fc_fnv1a(FC_FNV_INIT, p, n);
}

/* limits.max_connections_per_client reached: 503 and close at once, before any request is read
 * (a TLS listener: closed only; a plaintext answer would mean nothing to a TLS client). */
static void too_many(fc_worker_t *w, const fc_listener_t *l, int fd, const struct sockaddr *peer)
{
    static const char answer[] = "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n"
                                 "Content-Length: 46\r\nRetry-After: 1\r\nConnection: close\r\n\r\n"
                                 "503 too many connections from your address\r\n\r\n";
    static uint64_t last_log;
    fc_metrics_conn_refused(&w->metrics, 1);
    if (l->conf->tls == NULL) (void)!send(fd, answer, sizeof(answer) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
    char ip[46] = "-";
    if (peer->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)peer)->sin_addr, ip, sizeof(ip));
    else if (peer->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)peer)->sin6_addr, ip, sizeof(ip));
    if (uv_now(w->loop) - last_log >= 1000) {
        fc_log(FC_LOG_WARN, "max_connections_per_client (%llu) reached by %s: closing its new connections",
               (unsigned long long)w->cfg->limits.max_connections_per_client, ip);
        last_log = uv_now(w->loop);
    }
    /* A request that arrived with the connection would turn the close into a reset that can
     * destroy the 503 before the client reads it: drop what is there already (one bounded read,
     * never waiting), then send FIN before closing. */
    char sink[4096];
    (void)!recv(fd, sink, sizeof(sink), MSG_DONTWAIT);
    shutdown(fd, SHUT_WR);
    close(fd);
}

void fc_conn_accept(fc_worker_t *w, const fc_listener_t *l, int fd, const struct sockaddr *peer)
{
    if (w->nconns >= w->cfg->limits.max_connections) {
        static uint64_t last_warn;
        fc_metrics_conn_refused(&w->metrics, 0);
        if (uv_now(w->loop) - last_warn > 10000) {
            fc_log(FC_LOG_WARN, "max_connections (%llu) reached: closing new connections",
                   (unsigned long long)w->cfg->limits.max_connections);
            last_warn = uv_now(w->loop);
        }
        close(fd);
        return;
    }
    uint64_t peer_key = 0;
    int counted = 0;
    if (w->cfg->limits.max_connections_per_client > 0 && peer != NULL) {
        peer_key = address_key(peer);
        counted = fc_shm_peer_enter(w->shm, peer_key, (uint32_t)w->cfg->limits.max_connections_per_client);
        if (counted == 0) {
            too_many(w, l, fd, peer);
            return;
        }
    }
    fc_conn_t *c = conn_new(w, fd);
    if (c == NULL) {
        if (counted == 1) fc_shm_peer_leave(w->shm, peer_key);
        return;
    }
    c->peer_counted = counted == 1;
    c->peer_key = peer_key;
    c->listener = l->conf;
    if (l->ms != NULL) fc_metrics_add(l->ms, FC_MV_ACCEPTED, 1);
    if (l->conf->tls != NULL) {
        if (fc_io_tls_server(&c->io, l->conf->tls->ctx) != 0) {
            fc_conn_close(c);
            return;
        }
        c->handshaking = 1;
        recount(c);
    }
    conn_start(c, peer);
}

fc_conn_t *fc_conn_adopt_tunnel(fc_worker_t *w, int fd, const char *ip)
{
    fc_conn_t *c = conn_new(w, fd); /* (on failure it closed <fd>) */
    if (c == NULL) return NULL;
    snprintf(c->ip, sizeof(c->ip), "%s", ip);
    struct sockaddr_storage ss;
    if (fc_io_address(&c->io, 0, &ss) == 0) c->listener = find_listener(w, &ss);
    c->opts = fc_worker_head_opts(w, c->listener);
    count_adopted(c);
    return c;
}

void fc_conn_adopt(fc_worker_t *w, int fd, const char *bytes, size_t len)
{
    fc_conn_adopt_relayed(w, fd, NULL, NULL, bytes, len);
}

void fc_conn_adopt_relayed(fc_worker_t *w, int fd, const char *ip, const struct sockaddr_storage *local,
                           const char *bytes, size_t len)
{
    fc_conn_t *c = conn_new(w, fd);
    if (c == NULL) return;
    if (ip != NULL) {
        c->relayed = 1; /* counted by the older generation, which keeps its TLS side */
        snprintf(c->ip, sizeof(c->ip), "%s", ip);
        c->listener = find_listener(w, local);
    } else {
        count_adopted(c);
    }
    if (len > 0) {
        c->io.rbuf.base = fc_bufpool_get(&w->client_bufs);
        c->io.rbuf.cap = c->io.rbuf.base ? w->client_bufs.size : 0;
        if (c->io.rbuf.base == NULL || len > c->io.rbuf.cap) {
            fc_conn_close(c);
            return;
        }
        memcpy(c->io.rbuf.base, bytes, len);
        c->io.rbuf.len = len;
    }
    conn_start(c, NULL);
    process(c);
}
