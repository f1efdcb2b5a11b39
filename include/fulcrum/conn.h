/* conn.h: a client connection: its socket, read buffer, request parser and the exchange in
 * progress. Pipelined requests wait in the read buffer and are parsed one at a time, after the
 * exchange before them has finished, so responses go out in order. */
#ifndef FULCRUM_CONN_H
#define FULCRUM_CONN_H

#include <netinet/in.h>
#include <uv.h>

#include "fulcrum/buf.h"
#include "fulcrum/http.h"
#include "fulcrum/io.h"
#include "fulcrum/list.h"
#include "fulcrum/timeq.h"
#include "fulcrum/worker.h"

enum fc_conn_state {
    FC_CONN_IDLE = 0, /* between requests (keep-alive) */
    FC_CONN_HEAD,     /* reading a request head */
    FC_CONN_ACTIVE,   /* an exchange is in progress */
    FC_CONN_LINGER,   /* final response sent, write side shut; discarding input until EOF */
    FC_CONN_RELAY,    /* a TLS connection whose plaintext is relayed to a newer generation */
    FC_CONN_TUNNEL,   /* switched protocols (101): one side of a tunnel (upgrade.c) */
    FC_CONN_CLOSING,  /* fc_io_close called; freed in the close callback */
};

typedef struct fc_conn {
    fc_io_t io;              /* the socket and its transport: read buffer from w->client_bufs (none
                                while idle with nothing buffered), the response write in flight;
                                this struct is freed in its close callback */
    fc_worker_t *w;          /* owner */
    const fc_listener_conf_t *listener; /* borrowed from the config: where it was accepted (its
                                           health endpoint), NULL if unknown */
    const fc_head_opts_t *opts; /* borrowed from the worker: how heads are written for its listener */
    fc_list_t link;          /* in w->conns */
    fc_timeout_t timeout;    /* header, body, send, keep-alive or linger timeout */
    size_t pos;              /* bytes of io.rbuf consumed by the parser */
    fc_exchange_t *ex;       /* the exchange in progress (owned through its refs), or NULL */
    fc_exchange_t *wex;      /* the exchange whose write to this client is in flight (holding a
                                reference on it until the callback), NULL when none */
    char ip[46];             /* the client's address as text, for X-Real-IP and logs */
    uint8_t state;           /* enum fc_conn_state */
    uint8_t eof;             /* the client shut its write side */
    uint8_t processing;      /* inside process(): the loop there picks up the next request */
    uint8_t unread;          /* the last request was not read whole: closing needs a lingering close */
    uint8_t handshaking;     /* a TLS connection whose handshake has not completed yet */
    uint8_t peer_counted;    /* counted in the shared per-client connection counts (peer_key) */
    uint8_t counted_as;      /* the enum fc_metrics_conn_state it is counted under (FC_MCS_NONE: none) */
    uint64_t peer_key;       /* a hash of the client's address, when peer_counted */
    uint8_t relayed;         /* adopted through an older generation's TLS relay: answered with
                                Connection: close, so the client comes back to this generation */
    struct fc_relay *relay;  /* FC_CONN_RELAY: the socketpair to the newer generation (a reference) */
    struct fc_upgrade *upgrade; /* FC_CONN_TUNNEL: the tunnel it is a side of (a reference) */
} fc_conn_t;

/* Takes accepted socket <fd> (non-blocking) from <l>, whose peer is <peer>, into a new fc_conn_t
 * owned by <w>; on failure the socket is closed. */
struct fc_listener;
void fc_conn_accept(fc_worker_t *w, const struct fc_listener *l, int fd, const struct sockaddr *peer);
/* Takes over socket <fd> handed over by an older generation, with <len> bytes it had already
 * read; they are parsed as the start of the next request. */
void fc_conn_adopt(fc_worker_t *w, int fd, const char *bytes, size_t len);
/* Takes over the plaintext side <fd> of a TLS connection an older generation relays: the client
 * is <ip>, it connected to <local> (which listener), and <bytes> were read already. */
void fc_conn_adopt_relayed(fc_worker_t *w, int fd, const char *ip, const struct sockaddr_storage *local,
                           const char *bytes, size_t len);
/* Takes over client socket <fd> of a tunnel an older generation hands over (not reading yet;
 * fc_upgrade_begin makes it a tunnel side). NULL on failure (<fd> is closed). */
fc_conn_t *fc_conn_adopt_tunnel(fc_worker_t *w, int fd, const char *ip);
/* Makes TLS connection <c> (between requests) a relay: a socketpair whose other end, *<peer_fd>,
 * the caller hands to the newer generation, then calls fc_conn_relay_start (or, if the hand-over
 * failed, fc_conn_relay_cancel). Returns 0 or -1 (nothing changed). */
int fc_conn_relay(fc_conn_t *c, int *peer_fd);
void fc_conn_relay_start(fc_conn_t *c);
void fc_conn_relay_cancel(fc_conn_t *c);
/* Moves <c> to state <s> (enum fc_conn_state), counting it under its new state for
 * fulcrum_client_connections. Every change of c->state goes through here but one: conn.c's
 * parser loop enters FC_CONN_HEAD directly and counts it only if the head stays incomplete. */
void fc_conn_set_state(fc_conn_t *c, unsigned s);
/* Closes <c> (idempotent). Its exchange, if any, must be detached first. */
void fc_conn_close(fc_conn_t *c);
/* Frees the connection slab's spare chunk (at a worker's exit, with every connection closed). */
void fc_conn_slab_drain(void);
/* Sets TCP_NODELAY on <c> once. Called before a write that another may follow on the same
 * connection; a lone final answer on a closing connection does without (one syscall less per
 * short-lived connection; nginx likewise sets it only on keep-alive connections). */
void fc_conn_nodelay(fc_conn_t *c);
/* Caps <c>'s socket send buffer (fc_io_sndbuf), so a large local answer is written a piece per
 * loop turn. */
void fc_conn_sndbuf(fc_conn_t *c, int bytes);
/* Called by the exchange when it has finished with <c>: keep-alive or close. */
void fc_conn_exchange_done(fc_conn_t *c, int keepalive);
/* Called by the exchange after a final error response: shut down writing, linger, close. */
void fc_conn_linger(fc_conn_t *c);
/* Starts/stops reading; reading stops by itself while the read buffer is full. */
void fc_conn_read_start(fc_conn_t *c);
void fc_conn_read_stop(fc_conn_t *c);
/* A draining worker closes connections that are between requests. */
void fc_conn_drain(fc_conn_t *c);

#endif
