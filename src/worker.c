/* worker.c: one event loop serving a config: listening sockets (created here, adopted by the
 * loop), accept, signals, the graceful stop, and a teardown that closes every handle and checks
 * that the loop is empty. The master/worker process model builds on fc_worker_run. */
#include "fulcrum/worker.h"

#include <errno.h>
#include <malloc.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <string.h>
#include <stdio.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "fulcrum/compress.h"
#include "fulcrum/conn.h"
#include "fulcrum/exchange.h"
#include "fulcrum/health.h"
#include "fulcrum/resolve.h"
#include "fulcrum/io.h"
#include "fulcrum/log.h"
#include "fulcrum/queue.h"
#include "fulcrum/ratelimit.h"
#include "fulcrum/redis_store.h"
#include "fulcrum/tls.h"
#include "fulcrum/upgrade.h"
#include "fulcrum/upstream.h"

#define LISTEN_BACKLOG 511
#define LINGER_MS 2000
#define COMPRESS_FLUSH_MS 50 /* a compressed stream waits this long for more input before it is flushed */
#define TRIM_AFTER_SESSIONS 32 /* TLS sessions freed in a second that make the heap worth trimming */

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

#define ACCEPT_BATCH 64        /* one worker: connections taken per wake-up before other events get a turn */
#define ACCEPT_PAUSE_MS 100     /* out of descriptors: how long to stop accepting */
#define ACCEPT_SLACK 2          /* connections a worker may hold above the least loaded one (plus an
                                   eighth of that one's) and still accept */
#define ACCEPT_YIELD_NS 300000  /* how long an over-loaded worker leaves waiting connections to the others */

static void on_accept_timer(uv_timer_t *t);

/* After each poll phase while a worker is yielding: if the listening socket was not reported
 * readable in that poll, the waiting connections were taken by another worker and the yielding
 * episode is over. While it stays readable the episode goes on, so ACCEPT_YIELD_NS bounds how
 * long a connection waits for a peer that is stuck, however long this worker's loop turns take. */
static void on_accept_check(uv_check_t *h)
{
    fc_worker_t *w = fc_container_of(h, fc_worker_t, accept_check);
    if (!w->accept_seen) {
        w->yield_since = 0;
        uv_check_stop(h);
    }
    w->accept_seen = 0;
}

/* 1 if another ready worker of this generation holds fewer connections than w by more than the
 * slack (so that connections closing and opening all the time do not make workers yield to each
 * other constantly): it was woken for the same connection, so it should take it. */
static int others_less_loaded(const fc_worker_t *w)
{
    unsigned mine = (unsigned)w->nconns;
    if (mine <= ACCEPT_SLACK) return 0;
    for (unsigned p = 0; p < FC_SHM_PROCS; p++) {
        if (p == w->proc || atomic_load_explicit(&w->shm->ready[p], memory_order_relaxed) != w->generation) continue;
        unsigned theirs = atomic_load_explicit(&w->shm->conns[p], memory_order_relaxed);
        if (theirs + theirs / 8 + ACCEPT_SLACK < mine) return 1;
    }
    return 0;
}

/* Connections are waiting on <l>'s socket, which every worker of the generation polls (all are
 * woken). A lone worker takes up to ACCEPT_BATCH of them. With several, libuv's own accept loop
 * (take all until EAGAIN) let whichever worker was awake take a whole burst, so instead each
 * takes one per wake-up (nginx's multi_accept off), and a worker holding more connections than
 * another leaves them alone for up to ACCEPT_YIELD_NS (the socket stays readable, so it is woken
 * again at once: a short spin, while the less loaded worker accepts). A peer that is stuck or
 * gone therefore delays a connection by at most that, never more. */
static void on_acceptable(uv_poll_t *h, int status, int events)
{
    (void)events;
    fc_listener_t *l = fc_container_of(h, fc_listener_t, poll);
    fc_worker_t *w = l->w;
    if (status < 0) {
        fc_log(FC_LOG_ERROR, "accept on %s: %s", l->conf->addr.text, uv_strerror(status));
        return;
    }
    int batch = ACCEPT_BATCH;
    if (atomic_load_explicit(&w->shm->nworkers, memory_order_relaxed) > 1) {
        w->accept_seen = 1;
        if (others_less_loaded(w)) {
            uint64_t now = uv_hrtime();
            if (w->yield_since == 0) {
                w->yield_since = now;
                uv_check_start(&w->accept_check, on_accept_check);
            }
            if (now - w->yield_since < ACCEPT_YIELD_NS) return;
        }
        w->yield_since = 0;
        batch = 1;
    }
    for (int i = 0; i < batch && !w->draining; i++) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof(ss);
        int fd = accept4(l->fd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            fc_conn_accept(w, l, fd, (struct sockaddr *)&ss);
            continue;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK) return; /* another worker took it */
        if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO) continue;
        /* Out of descriptors or memory: the socket stays readable, so waiting for the next
         * event would spin. Stop accepting for a moment, as nginx does. */
        fc_log(FC_LOG_ERROR, "accept on %s: %s: not accepting for %d ms", l->conf->addr.text, strerror(errno),
               ACCEPT_PAUSE_MS);
        for (size_t k = 0; k < w->nlisteners; k++) uv_poll_stop(&w->listeners[k].poll);
        uv_timer_start(&w->accept_timer, on_accept_timer, ACCEPT_PAUSE_MS, 0);
        return;
    }
}

static void start_listeners(fc_worker_t *w)
{
    if (w->draining) return;
    for (size_t i = 0; i < w->nlisteners; i++) {
        fc_listener_t *l = &w->listeners[i];
        if (!uv_is_closing((uv_handle_t *)&l->poll)) uv_poll_start(&l->poll, UV_READABLE, on_acceptable);
    }
}

static void on_accept_timer(uv_timer_t *t)
{
    start_listeners(fc_container_of(t, fc_worker_t, accept_timer));
}

static void on_listener_closed(uv_handle_t *h)
{
    fc_listener_t *l = fc_container_of(h, fc_listener_t, poll);
    fc_worker_t *w = l->w;
    close(l->fd);
    if (--w->listeners_open == 0) {
        free(w->listeners);
        w->listeners = NULL;
    }
}

static void close_listeners(fc_worker_t *w)
{
    if (w->listeners == NULL) return;
    for (size_t i = 0; i < w->nlisteners; i++) {
        fc_listener_t *l = &w->listeners[i];
        if (l->poll.loop != NULL && !uv_is_closing((uv_handle_t *)&l->poll)) uv_close((uv_handle_t *)&l->poll, on_listener_closed);
    }
}

static void close_if_open(uv_handle_t *h)
{
    if (h->loop != NULL && !uv_is_closing(h)) uv_close(h, NULL);
}

/* Every second: this worker's idle pooled connections per server go to its metric block (a gauge;
 * published here rather than on every pool change, which is per request), and the heap is trimmed after TLS
 * handshakes. A handshake allocates some 50 KB in small pieces and frees them at its end, while
 * the connection's own few hundred bytes stay: after a burst of handshakes the freed pieces sit in
 * pages between live connections, which glibc never gives back by itself (an idle TLS connection
 * then measured 5 to 9 KB of RSS instead of 2). malloc_trim returns the whole free pages. */
static void on_tick(uv_timer_t *t)
{
    fc_worker_t *w = fc_container_of(t, fc_worker_t, tick_timer);
#ifdef __GLIBC__
    if (fc_tls_sessions_freed() >= TRIM_AFTER_SESSIONS) malloc_trim(0);
#endif
    if (w->metrics.block != NULL)
        atomic_store_explicit(&w->metrics.block->buffer_bytes, (uint64_t)(w->bodyq.out + w->req_buffers),
                              memory_order_relaxed);
    for (size_t i = 0; i < w->cfg->nupstreams; i++) {
        fc_upstream_t *u = &w->upstreams[i];
        for (size_t k = 0; k < u->conf->nservers; k++)
            if (u->servers[k].ms != NULL) fc_metrics_set(u->servers[k].ms, FC_MV_IDLE, u->servers[k].nidle);
    }
}

static void stop_everything(fc_worker_t *w)
{
    if (w->stopped) return;
    w->stopped = 1;
    fc_pool_close_idle(w);
    fc_health_stop(w);
    fc_resolver_stop(w);
    fc_redis_store_stop(w);
    if (w->rl_waitq != NULL) fc_rl_waitq_close(w->rl_waitq);
    w->rl_waitq = NULL;
    uv_handle_t *hs[] = {(uv_handle_t *)&w->sig_term,    (uv_handle_t *)&w->sig_int,     (uv_handle_t *)&w->sig_quit,
                         (uv_handle_t *)&w->sig_usr1,    (uv_handle_t *)&w->sig_usr2,    (uv_handle_t *)&w->drain_timer,
                         (uv_handle_t *)&w->delay_timer, (uv_handle_t *)&w->handover_poll,
                         (uv_handle_t *)&w->accept_timer, (uv_handle_t *)&w->accept_check,
                         (uv_handle_t *)&w->tick_timer, (uv_handle_t *)&w->wake_poll};
    for (size_t i = 0; i < FC_ARRAY_LEN(hs); i++) close_if_open(hs[i]);
    /* Closing the last watcher of a signal gives it back its default action, which for these is
     * death: a second stop signal while the stop runs (Ctrl-C reaches the whole process group as
     * the master forwards SIGTERM) would kill the worker and make its stop look unclean. */
    signal(SIGTERM, SIG_IGN);
    signal(SIGINT, SIG_IGN);
    signal(SIGQUIT, SIG_IGN);
    if (w->handover_fd >= 0) close(w->handover_fd);
    if (w->handover_send_fd >= 0) close(w->handover_send_fd);
    w->handover_fd = w->handover_send_fd = -1;
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
    w->stopping = 1;
    fc_health_stop(w); /* the newer generation's first worker checks from now on */
    fc_resolver_stop(w); /* and resolves */
    fc_redis_store_stop(w); /* ... and reconciles with Redis */
    fc_log(FC_LOG_NOTICE, "%s: %zu connections open, waiting up to %llu ms",
           w->handover_gen ? "reload: handing connections to the new generation" : "graceful stop", w->nconns,
           (unsigned long long)w->cfg->shutdown_timeout);
    close_listeners(w);
    fc_list_t *n = w->conns.next;
    while (n != &w->conns) {
        fc_conn_t *c = fc_list_entry(n, fc_conn_t, link);
        n = n->next;
        fc_conn_drain(c);
    }
    /* Answers being read only to be dropped (their client left) are not waited for. */
    for (fc_list_t *it = w->upconns.next; it != &w->upconns;) {
        fc_upconn_t *up = fc_list_entry(it, fc_upconn_t, all);
        it = it->next;
        if (up->ex != NULL && up->ex->client == NULL) fc_exchange_cancel(up->ex);
    }
    fc_pool_close_idle(w);
    uv_timer_start(&w->drain_timer, on_drain_timeout, w->cfg->shutdown_timeout, 0);
    fc_worker_check_drained(w);
}

static void on_delay_over(uv_timer_t *t) { fc_worker_drain(fc_container_of(t, fc_worker_t, delay_timer)); }

static void on_signal(uv_signal_t *s, int signum)
{
    fc_worker_t *w = s->data;
    if (signum == SIGUSR1) {
        int r = fc_log_reopen();
        if (r < 0) fc_log(FC_LOG_ERROR, "reopening logs: %s", strerror(-r));
        return;
    }
    if (signum == SIGUSR2) {
        /* The master started a newer generation: it accepts now; we hand over and finish. */
        w->handover_gen = atomic_load(&w->shm->generation);
        w->handover_n = atomic_load(&w->shm->nworkers);
        if (w->handover_gen == w->generation) w->handover_gen = 0;
        fc_worker_drain(w);
        return;
    }
    fc_log(FC_LOG_INFO, "received %s", strsignal(signum));
    if (w->stopping || w->draining) return;
    w->stopping = 1; /* health endpoints answer 503 from now on */
    if (w->cfg->shutdown_delay > 0) uv_timer_start(&w->delay_timer, on_delay_over, w->cfg->shutdown_delay, 0);
    else fc_worker_drain(w);
}

/* ---- connection hand-over between generations ------------------------------------------- */

static socklen_t handover_addr(struct sockaddr_un *sa, int master_pid, unsigned gen, unsigned index)
{
    memset(sa, 0, sizeof(*sa));
    sa->sun_family = AF_UNIX;
    /* An abstract socket (leading NUL): no file to clean up, gone with its process. */
    int n = snprintf(sa->sun_path + 1, sizeof(sa->sun_path) - 1, "fulcrum-%d-%u-%u", master_pid, gen, index);
    return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n);
}

/* Sends one hand-over message (<iov>, and <nfds> descriptors) to a worker of the newer
 * generation, round robin. Returns 0 or -1 (errno says why). */
static int handover_send(fc_worker_t *w, struct iovec *iov, size_t niov, const int *fds, int nfds)
{
    if (w->handover_gen == 0 || w->handover_n == 0) return -1;
    if (w->handover_send_fd < 0) {
        w->handover_send_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (w->handover_send_fd < 0) return -1;
        /* Blocking with a bound: the receiver drains its queue from its own loop. */
        struct timeval tv = {1, 0};
        setsockopt(w->handover_send_fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    }
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(2 * sizeof(int))];
    } ctl;
    memset(&ctl, 0, sizeof(ctl));
    struct msghdr msg = {.msg_iov = iov, .msg_iovlen = niov, .msg_control = ctl.buf,
                         .msg_controllen = CMSG_SPACE((size_t)nfds * sizeof(int))};
    struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN((size_t)nfds * sizeof(int));
    memcpy(CMSG_DATA(cm), fds, (size_t)nfds * sizeof(int));
    for (unsigned attempt = 0; attempt < w->handover_n; attempt++) {
        struct sockaddr_un sa;
        unsigned target = w->handover_next++ % w->handover_n;
        msg.msg_name = &sa;
        msg.msg_namelen = handover_addr(&sa, w->master_pid, w->handover_gen, target);
        if (sendmsg(w->handover_send_fd, &msg, MSG_NOSIGNAL) >= 0) return 0;
    }
    return -1;
}

int fc_worker_handover(fc_worker_t *w, fc_conn_t *c)
{
    if (w->handover_gen == 0 || w->handover_n == 0) return -1;
    int fd;
    /* A TLS session cannot move: its plaintext is relayed instead, through a socketpair whose
     * other end moves. 'R' messages say who the client is and where it connected. */
    int relay = c->io.tls != NULL;
    char head[1 + 1 + sizeof(c->ip) + sizeof(struct sockaddr_storage)];
    size_t headlen = 1;
    head[0] = relay ? 'R' : 'C';
    if (relay) {
        struct sockaddr_storage local;
        if (c->io.writing || fc_io_address(&c->io, 0, &local) != 0 || fc_conn_relay(c, &fd) != 0) return -1;
        size_t iplen = strlen(c->ip);
        head[1] = (char)iplen;
        memcpy(head + 2, c->ip, iplen);
        memcpy(head + 2 + iplen, &local, sizeof(local));
        headlen = 2 + iplen + sizeof(local);
    } else if (fc_io_export(&c->io, &fd) != 0) {
        return -1; /* reading stops; a write in flight refuses */
    }
    /* The bytes read but not answered yet: a partial head starts at 0, else after pos. */
    size_t from = c->state == FC_CONN_HEAD ? 0 : c->pos;
    struct iovec iov[2] = {{head, headlen}, {c->io.rbuf.base ? c->io.rbuf.base + from : NULL, c->io.rbuf.base ? c->io.rbuf.len - from : 0}};
    if (handover_send(w, iov, iov[1].iov_len ? 2 : 1, &fd, 1) == 0) {
        if (!relay) return 0;
        close(fd); /* the other process has its own copy now */
        fc_conn_relay_start(c);
        return 1;
    }
    fc_log(FC_LOG_WARN, "reload: could not hand a connection of %s to the new generation: %s", c->ip,
           strerror(errno));
    if (relay) {
        close(fd);
        fc_conn_relay_cancel(c);
    }
    return -1;
}

/* A 'T' message: the tag, the sizes of the two pending byte runs, the tunnel's record (the same
 * binary runs both generations: the master forks them), then the bytes. */
typedef struct tunnel_head {
    char tag;
    uint32_t n0, n1;
    char upstream[FC_UPSTREAM_NAME_MAX + 1];
    char address[sizeof(((fc_addr_t *)0)->text)];
    fc_upgrade_t g; /* only its plain fields are read by the receiver */
} tunnel_head_t;

int fc_worker_handover_tunnel(fc_worker_t *w, fc_upgrade_t *g)
{
    int fds[2];
    if (fc_io_export(&g->c->io, &fds[0]) != 0 || fc_io_export(&g->up->io, &fds[1]) != 0) return -1;
    tunnel_head_t th;
    memset(&th, 0, sizeof(th));
    th.tag = 'T';
    th.g = *g;
    snprintf(th.upstream, sizeof(th.upstream), "%s", fc_upgrade_upstream(g));
    snprintf(th.address, sizeof(th.address), "%s", fc_upgrade_address(g));
    fc_buf_t *b0 = &g->c->io.rbuf, *b1 = &g->up->io.rbuf;
    th.n0 = b0->base ? (uint32_t)b0->len : 0;
    th.n1 = b1->base ? (uint32_t)b1->len : 0;
    struct iovec iov[3] = {{&th, sizeof(th)}, {b0->base, th.n0}, {b1->base, th.n1}};
    if (handover_send(w, iov, 3, fds, 2) == 0) return 0;
    fc_log(FC_LOG_WARN, "reload: could not hand a tunnel of %s to the new generation: %s", g->ip, strerror(errno));
    return -1;
}

static void on_handover(uv_poll_t *p, int status, int events)
{
    fc_worker_t *w = fc_container_of(p, fc_worker_t, handover_poll);
    if (status < 0) return;
    /* the bytes, and the head of an 'R' message; or a tunnel's record and both directions' bytes */
    size_t cap = sizeof(tunnel_head_t) + w->client_bufs.size + w->upstream_bufs.size + 256;
    char *buf = malloc(cap);
    if (buf == NULL) return;
    for (int i = 0; i < 256; i++) { /* bounded per wake-up; the poll fires again if more wait */
        union {
            struct cmsghdr h;
            char buf[CMSG_SPACE(2 * sizeof(int))];
        } ctl;
        struct iovec iov = {buf, cap};
        struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf, .msg_controllen = sizeof(ctl.buf)};
        ssize_t n = recvmsg(w->handover_fd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
        if (n < 0) break;
        struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
        int fd = -1, fd2 = -1;
        if (cm != NULL && cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS) {
            size_t nfds = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            if (nfds >= 1) memcpy(&fd, CMSG_DATA(cm), sizeof(int));
            if (nfds >= 2) memcpy(&fd2, CMSG_DATA(cm) + sizeof(int), sizeof(int));
        }
        if (fd < 0) continue;
        if (n >= 1 && buf[0] == 'T' && fd2 >= 0 && !(msg.msg_flags & MSG_TRUNC) && (size_t)n >= sizeof(tunnel_head_t)) {
            tunnel_head_t th;
            memcpy(&th, buf, sizeof(th));
            if ((size_t)n == sizeof(th) + th.n0 + th.n1) {
                th.upstream[sizeof(th.upstream) - 1] = th.address[sizeof(th.address) - 1] = '\0';
                fc_upgrade_adopt(w, fd, fd2, &th.g, th.upstream, th.address, buf + sizeof(th), th.n0,
                                 buf + sizeof(th) + th.n0, th.n1);
                continue;
            }
        }
        if (fd2 >= 0) close(fd2);
        if (n < 1 || (buf[0] != 'C' && buf[0] != 'R') || (msg.msg_flags & MSG_TRUNC)) {
            close(fd);
            continue;
        }
        if (buf[0] == 'C') {
            fc_conn_adopt(w, fd, buf + 1, (size_t)n - 1);
            continue;
        }
        /* 'R', iplen, ip, the local sockaddr_storage, then the bytes */
        size_t iplen = n >= 2 ? (unsigned char)buf[1] : 0, at = 2 + iplen + sizeof(struct sockaddr_storage);
        char ip[46];
        struct sockaddr_storage local;
        if (n < 2 || iplen >= sizeof(ip) || (size_t)n < at) {
            close(fd);
            continue;
        }
        memcpy(ip, buf + 2, iplen);
        ip[iplen] = '\0';
        memcpy(&local, buf + 2 + iplen, sizeof(local));
        fc_conn_adopt_relayed(w, fd, ip, &local, buf + at, (size_t)n - at);
    }
    free(buf);
}

static int handover_listen(fc_worker_t *w, fc_err_t *err)
{
    struct sockaddr_un sa;
    socklen_t len = handover_addr(&sa, w->master_pid, w->generation, w->index);
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, len) != 0) {
        if (fd >= 0) close(fd);
        return fc_err_set(err, "hand-over socket: %s", strerror(errno));
    }
    int sz = 4 << 20;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
    w->handover_fd = fd;
    uv_poll_init(w->loop, &w->handover_poll, fd);
    uv_poll_start(&w->handover_poll, UV_READABLE, on_handover);
    return 0;
}

static void on_walk_close(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h)) uv_close(h, NULL);
}

/* Once the loop has run dry, stop_everything and the owners of every connection have closed
 * all they opened: a handle still open (not closing) then is a leak. Counts it in <*arg> and
 * names its type; the caller closes it. */
static void on_walk_leak(uv_handle_t *h, void *arg)
{
    if (uv_is_closing(h)) return;
    (*(unsigned *)arg)++;
    fc_log(FC_LOG_ERROR, "handle left open at exit: %s%s", uv_handle_type_name(uv_handle_get_type(h)),
           uv_is_active(h) ? " (active)" : "");
}

/* 64 random bits as the hex prefix of the request ids this worker makes (unique across workers,
 * restarts and hosts, as far as 64 random bits go). */
static void request_id_prefix(fc_worker_t *w)
{
    static const char hex[] = "0123456789abcdef";
    uint64_t r = 0;
    if (getrandom(&r, sizeof(r), 0) != (ssize_t)sizeof(r)) r = fc_clock_ns() ^ ((uint64_t)getpid() << 32);
    for (int i = 15; i >= 0; i--, r >>= 4) w->rid[i] = hex[r & 15];
    memset(w->rid + 16, '0', 16);
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
    w->t_cflush = fc_timeq_class(&w->tq, COMPRESS_FLUSH_MS);
    w->bodyq.keep = 32; /* 2 MiB of idle blocks at most */
    w->route_connect = fc_xcalloc(cfg->nroutes, sizeof(*w->route_connect));
    w->route_send = fc_xcalloc(cfg->nroutes, sizeof(*w->route_send));
    w->route_read = fc_xcalloc(cfg->nroutes, sizeof(*w->route_read));
    w->route_tunnel = fc_xcalloc(cfg->nroutes, sizeof(*w->route_tunnel));
    w->route_request = fc_xcalloc(cfg->nroutes, sizeof(*w->route_request));
    for (size_t i = 0; i < cfg->nroutes; i++) {
        w->route_connect[i] = fc_timeq_class(&w->tq, cfg->routes[i].connect_timeout);
        w->route_send[i] = fc_timeq_class(&w->tq, cfg->routes[i].send_timeout);
        w->route_read[i] = fc_timeq_class(&w->tq, cfg->routes[i].read_timeout);
        w->route_tunnel[i] = fc_timeq_class(&w->tq, cfg->routes[i].tunnel_timeout);
        if (cfg->routes[i].request_timeout > 0) w->route_request[i] = fc_timeq_class(&w->tq, cfg->routes[i].request_timeout);
    }
    w->head_opts.via = cfg->via ? (fc_slice_t){cfg->via, strlen(cfg->via)} : (fc_slice_t){NULL, 0};
    w->head_opts.allow_underscores = (uint8_t)cfg->underscores_in_headers;
    w->t_tls = fc_timeq_class(&w->tq, lim->tls_handshake_timeout);
    w->t_tunnel_orphan = fc_timeq_class(&w->tq, cfg->shutdown_timeout > 0 ? cfg->shutdown_timeout : 1);
    w->listener_opts = fc_xcalloc(cfg->nlisteners, sizeof(*w->listener_opts));
    w->hsts_lines = fc_xcalloc(cfg->nlisteners, sizeof(*w->hsts_lines));
    for (size_t i = 0; i < cfg->nlisteners; i++) {
        const fc_listener_conf_t *l = &cfg->listeners[i];
        fc_head_opts_t *o = &w->listener_opts[i];
        *o = w->head_opts;
        o->https = l->tls != NULL;
        if (!l->hsts) continue;
        int n = snprintf(w->hsts_lines[i], sizeof(w->hsts_lines[i]), "Strict-Transport-Security: max-age=%llu%s%s\r\n",
                         (unsigned long long)(l->hsts_max_age / 1000), l->hsts_subdomains ? "; includeSubDomains" : "",
                         l->hsts_preload ? "; preload" : "");
        o->hsts = (fc_slice_t){w->hsts_lines[i], (size_t)n};
    }
    /* A request head must fit the read buffer whole; bodies stream through it. */
    size_t bufsize = FC_MAX((size_t)32768, (size_t)lim->max_header_size + 1024);
    fc_bufpool_init(&w->client_bufs, bufsize, 64);
    if (fc_router_init(&w->router, cfg) != 0) return fc_err_set(err, "out of memory");
    int metrics_on = 0;
    for (size_t i = 0; i < cfg->nlisteners; i++)
        metrics_on |= cfg->listeners[i].metrics_path != NULL || cfg->listeners[i].status_path != NULL;
    if (metrics_on && w->shm->metrics != NULL) {
        if (fc_metrics_local_init(&w->metrics, w->shm->metrics, w->proc, cfg) != 0) return fc_err_set(err, "out of memory");
        w->timing = 1;
    }
    if (fc_upstreams_init(w, err) != 0) return -1;
    if (fc_queues_init(w, err) != 0) return -1;
    if (w->index == 0) fc_health_start(w); /* one worker checks for the whole group */
    if (w->index == 0) fc_resolver_start(w); /* and resolves the names that follow DNS */
    w->rl_waitq = fc_rl_waitq_new(w->loop);
    if (w->rl_waitq == NULL) return fc_err_set(err, "out of memory");
    if (w->index == 0 && fc_redis_store_start(w, err) != 0) return -1; /* one worker for the whole group */
    uv_timer_init(w->loop, &w->drain_timer);
    uv_timer_init(w->loop, &w->accept_timer);
    uv_check_init(w->loop, &w->accept_check);
    uv_unref((uv_handle_t *)&w->accept_check);
    uv_timer_init(w->loop, &w->delay_timer);
    uv_timer_init(w->loop, &w->tick_timer);
    uv_timer_start(&w->tick_timer, on_tick, 1000, 1000);
    uv_unref((uv_handle_t *)&w->tick_timer);
    uv_signal_t *sigs[] = {&w->sig_term, &w->sig_int, &w->sig_quit, &w->sig_usr1, &w->sig_usr2};
    int nums[] = {SIGTERM, SIGINT, SIGQUIT, SIGUSR1, SIGUSR2};
    for (size_t i = 0; i < FC_ARRAY_LEN(sigs); i++) {
        uv_signal_init(w->loop, sigs[i]);
        sigs[i]->data = w;
        uv_signal_start(sigs[i], on_signal, nums[i]);
    }
    if (handover_listen(w, err) != 0) return -1;
    w->nlisteners = cfg->nlisteners;
    w->listeners = fc_xcalloc(w->nlisteners, sizeof(fc_listener_t));
    for (size_t i = 0; i < w->nlisteners; i++) {
        fc_listener_t *l = &w->listeners[i];
        l->w = w;
        l->conf = &cfg->listeners[i];
        l->fd = fds[i]; /* the fork's copy: this process closes it, the master keeps its own */
        if (w->metrics.shm != NULL) l->ms = fc_metrics_local_series(&w->metrics, FC_MF_LISTENER, l->conf->addr.text, 0, 0);
        int r = uv_poll_init(w->loop, &l->poll, l->fd);
        if (r != 0) {
            close(l->fd);
            return fc_err_set(err, "listener %s: %s", l->conf->addr.text, uv_strerror(r));
        }
        w->listeners_open++;
        fc_log(FC_LOG_NOTICE, "listening on %s", l->conf->addr.text);
    }
    start_listeners(w);
    return 0;
}

int fc_worker_run(const fc_worker_args_t *args)
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
    w.cfg = args->cfg;
    w.shm = args->shm;
    w.slots = args->slots;
    w.rl_tables = args->rl_tables;
    w.generation = args->generation;
    w.index = args->index;
    w.proc = args->proc;
    w.master_pid = args->master_pid;
    w.handover_fd = w.handover_send_fd = -1;
    w.timing = fc_access_log_enabled();
    request_id_prefix(&w);
    loop.data = &w;
    int ok = setup(&w, args->fds, &err) == 0;
    /* Inherited from the master, the signals were blocked until the handlers above existed; what
     * came meanwhile is delivered now, to them. */
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    if (ok) {
        atomic_store(&w.shm->ready[w.proc], w.generation); /* the master may retire older workers */
    } else {
        fc_log(FC_LOG_ERROR, "%s", err.msg);
        w.exit_code = 1;
        w.draining = 1;
        close_listeners(&w);
        stop_everything(&w);
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    fc_tls_loop_close(); /* an unreferenced handle of the TLS transport's, not a leak */

    /* Teardown: nothing may be left open. A handle still here is a bug: it is logged, closed, and
     * the worker exits 1, so the master's exit status and the tests see it. */
    unsigned leaked = 0;
    uv_walk(&loop, on_walk_leak, &leaked);
    uv_walk(&loop, on_walk_close, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&loop) != 0) {
        fc_log(FC_LOG_ERROR, "event loop not empty at exit");
        leaked++;
    }
    if (leaked > 0) w.exit_code = 1;
    fc_queues_free(&w);
    fc_upstreams_free(&w);
    fc_router_free(&w.router);
    fc_metrics_local_free(&w.metrics);
    fc_exchange_freelist_drain(&w);
    fc_bodyq_pool_drain(&w.bodyq);
    fc_codec_cache_drain();
    for (int i = 0; i < 4; i++)
        for (unsigned k = 0; k < w.nidle_codecs[i]; k++) fc_codec_free(w.idle_codecs[i][k]);
    fc_io_freelist_drain();
    fc_tls_freelist_drain();
    fc_conn_slab_drain();
    fc_bufpool_drain(&w.client_bufs);
    free(w.route_connect);
    free(w.route_send);
    free(w.route_read);
    free(w.route_tunnel);
    free(w.route_request);
    free(w.listener_opts);
    free(w.hsts_lines);
    free(w.listeners);
    if (w.exit_code == 0) fc_log(FC_LOG_NOTICE, "stopped");
    return w.exit_code;
}
