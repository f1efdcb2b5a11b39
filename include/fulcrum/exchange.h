/* exchange.h: one request and its response. The only object that knows both the client
 * connection and the upstream connection: each of those points at the exchange, never at each
 * other. It routes, picks a server, gets a pooled or new connection, writes the head, streams
 * both bodies with backpressure, retries where safe, answers errors, and logs.
 * Lifetime: refs counts the client attachment and each write in flight; the exchange returns to
 * the worker's freelist when refs reaches 0. */
#ifndef FULCRUM_EXCHANGE_H
#define FULCRUM_EXCHANGE_H

#include <uv.h>

#include "fulcrum/balance.h"
#include "fulcrum/body.h"
#include "fulcrum/buf.h"
#include "fulcrum/config.h"
#include "fulcrum/http.h"
#include "fulcrum/queue.h"
#include "fulcrum/ratelimit.h"
#include "fulcrum/worker.h"

struct fc_conn;
struct fc_upconn;
struct fc_server;

/* Why an exchange ended early (set once, by the first failure). */
enum fc_end_cause {
    FC_END_NONE = 0,       /* completed normally */
    FC_END_CLIENT_TIMEOUT, /* client too slow (header/body/send) */
    FC_END_CLIENT_CLOSED,  /* client went away */
    FC_END_CLIENT_BAD,     /* malformed or ambiguous request */
    FC_END_LIMIT,          /* a configured limit: head or body size */
    FC_END_NO_ROUTE,       /* no route matched */
    FC_END_SERVER_REFUSED, /* no server could be connected */
    FC_END_SERVER_TIMEOUT, /* connect or read timeout */
    FC_END_SERVER_CLOSED,  /* server closed or reset */
    FC_END_SERVER_BAD,     /* malformed response */
    FC_END_LOCAL,          /* this process ran out of descriptors or memory connecting (503) */
    FC_END_INTERNAL,       /* out of memory or a libuv error */
    FC_END_BUSY,           /* every server that may be chosen is at max_conns (503, Retry-After) */
};

/* Where it was when it ended. */
enum fc_end_phase {
    FC_PHASE_REQUEST = 0, /* reading the request head */
    FC_PHASE_CONNECT,     /* connecting to a server */
    FC_PHASE_HEADERS,     /* waiting for the response head */
    FC_PHASE_BODY,        /* streaming the response body */
    FC_PHASE_DONE,        /* response complete */
};

typedef struct fc_exchange {
    fc_worker_t *w;               /* owner */
    struct fc_conn *client;       /* NULL once detached */
    struct fc_upconn *up;         /* NULL when not attached to an upstream connection */
    const fc_route_conf_t *route; /* borrowed from the config */
    struct fc_server *server;     /* the server in use, or NULL */
    uint64_t tried[FC_TRIED_WORDS]; /* servers already tried for this request */
    uint64_t bytes_sent;          /* bytes written to the client */
    uint64_t t_start;             /* uv_hrtime() at the request head; 1 when timing is off (w->timing) */
    uint64_t t_conn_start;        /* uv_hrtime() when the last fresh connect began (or 1) */
    uint64_t connect_ns;          /* how long the last successful fresh connect took; 0 = pooled */
    uint64_t t_up_start;          /* uv_hrtime() when the request was handed to a server (or 1) */
    uint64_t t_up_head;           /* uv_hrtime() when the final response head was parsed (or 1), 0 = none yet */
    uint64_t t_up_end;            /* uv_hrtime() when the response completed (or 1) */
    uint64_t t_first_try;         /* uv_now() (ms) of the first attempt, for retry.timeout */
    fc_slice_t hash_key;          /* the hash policy's key, built in key_buf; {NULL, 0} = none */
    size_t body_start;            /* offset of the request body in client->io.rbuf while replayable */
    size_t fwd;                   /* offset in client->io.rbuf of the next body byte to send upstream */
    size_t dec_end;               /* chunked request: end of the decoded payload not yet sent */
    size_t log_method_len;        /* the method and target are the first bytes of head_out */
    size_t log_url_off, log_url_len;
    int status;                   /* status sent to the client, 0 until a head goes out */
    uint16_t refs;                /* client attachment + writes in flight */
    uint8_t cause;                /* enum fc_end_cause */
    uint8_t phase;                /* enum fc_end_phase: kept as it was when a failure ended the exchange */
    uint8_t try_cause;            /* why the last server tried failed (becomes cause if none is left) */
    uint8_t cl_writing;           /* a write to the client is in flight */
    uint8_t head_sent;            /* head_out handed to the current upstream connection */
    uint8_t req_done;             /* the whole request was read from the client */
    uint8_t req_sent;             /* the whole request was handed to the current upstream connection */
    uint8_t replayable;           /* the request can be sent again (body still in client->io.rbuf) */
    uint8_t retried;              /* the one retry on a fresh connection was used */
    uint8_t resp_began;           /* a response byte arrived from the upstream */
    uint8_t resp_head_done;       /* the final response head was parsed */
    uint8_t resp_done;            /* the whole response was read from the upstream */
    uint8_t resp_last_sent;       /* re-encoded response: the last chunk went to the client */
    uint8_t rechunk;              /* the response body is re-encoded chunked for this client */
    uint8_t keepalive;            /* the client connection may serve another request */
    uint8_t is_head;              /* the request method is HEAD */
    uint8_t idempotent;           /* GET, HEAD, PUT, DELETE, OPTIONS: safe to send twice */
    uint8_t http10;               /* the client speaks HTTP/1.0 */
    uint8_t finished;             /* fc_exchange_finish ran */
    uint8_t error_reply;          /* resp_out holds a generated error response */
    uint8_t discard;              /* the client left: the answer is read and dropped to keep the connection */
    uint8_t end_at_up_end;        /* the response's last byte went to the client in the turn it arrived
                                     (t_up_end is the end of the exchange too) */
    uint8_t rate_limited;         /* a rate limit rejected the request */
    uint8_t own_endpoint;         /* answered by fulcrum's health, metrics or status endpoint: not counted */
    uint8_t upgrade;              /* the request asked to switch protocols (forwarded): a 101 makes a tunnel */
    uint8_t set_sticky;           /* the answer sets the upstream's sticky cookie (the server chosen is
                                     not the one the client's cookie named) */
    int16_t sticky;               /* 1 + the server the client's sticky cookie names, 0 = none */
    uint8_t coding;               /* the coding the request accepts and the route offers (FC_CODING_*),
                                     chosen with the request head; NONE for HEAD and the skip header */
    uint8_t queued;               /* the response body goes through q (buffered or compressed), not
                                     from the server connection's buffer */
    uint8_t req_buffering;        /* reading the request body into req_buf before a server is picked */
    uint8_t req_buffered;         /* req_buf holds the start of the body (all of it once req_done) */
    uint8_t rb_sent;              /* req_buf went to the current upstream connection */
    int16_t granted;              /* 1 + the server the queue gave this request a place on (counted
                                     active for it already), 0 = none */
    uint64_t queue_ms;            /* how long it waited in its upstream's queue (ms) */
    uint64_t body_t0;             /* loop time (ms) the request body began to go to a server, 0 = not
                                     yet (limits.client_body_min_rate) */
    fc_timeout_t deadline;        /* routes[].timeouts.request, armed from routing to the end */
    fc_rl_wait_t rl_wait;         /* waiting its turn (rate_limits.delay) before a server is picked */
    char up_prefix[FC_CHUNK_PREFIX_MAX]; /* the chunk-size line of the write to the upstream */
    char cl_prefix[FC_CHUNK_PREFIX_MAX]; /* the chunk-size line of the write to the client */
    char ip[46];                  /* the client's address, kept for the log line once it left */
    fc_body_t req_body;           /* the request body as read from the client (framing from the head check) */
    fc_body_t resp_body;          /* the response body as read from the server */
    /* Everything above is reset for each request (fc_exchange_new zeroes up to here). */
    fc_http_parser_t parser;      /* the request's parser (lives here, not in the connection: an idle
                                     connection needs none, and each request starts a fresh one) */
    /* The request head is done with (head_out built) before the response head is parsed, so the
     * two share their storage: an exchange is half the size. */
    union {
        fc_http_head_t req;       /* slices borrowed from client->io.rbuf, valid until head_out is built */
        fc_http_head_t resp;      /* slices borrowed from up->io.rbuf, valid until resp_out is built */
    };
    fc_queue_wait_t qw;           /* its place in the upstream's queue while all servers are at
                                     max_conns (qw.q NULL, set for each request, when not waiting) */
    fc_buf_t head_out;            /* owned: the request head as sent upstream (kept for a retry and the log) */
    fc_buf_t resp_out;            /* owned: the response head for the client, while being written */
    fc_buf_t key_buf;             /* owned: the hash key of this request (hash policy only) */
    fc_buf_t req_tail;            /* owned: what follows request payload re-encoded chunked, while written */
    fc_buf_t req_buf;             /* owned: the request payload read before a server was picked
                                     (routes[].buffering.request), kept for a retry */
    fc_buf_t resp_tail;           /* owned: the same for the response */
    fc_buf_t req_trailers;        /* owned: the request trailer lines that are forwarded */
    fc_buf_t resp_trailers;       /* owned: the response trailer lines that are forwarded */
    fc_buf_t req_connection;      /* owned: a chunked request's Connection options (req_body.connection) */
    fc_buf_t resp_connection;     /* owned: the same for a chunked response */
    /* Set by start_queue, valid while queued (not reset per request: the plain path never
     * touches them). */
    size_t q_limit;               /* the server is read while q holds fewer bytes than this */
    size_t q_inflight;            /* bytes of q in the client write in flight */
    struct fc_codec *codec;       /* owned: the response's compressor, or NULL */
    fc_bodyq_t q;                 /* owned blocks (from the worker's pool): the queued response body */
    fc_timeout_t flush_timer;     /* a compressed stream's input not flushed yet: flush after 50 ms */
    fc_buf_t local_body;          /* owned: the body of a large local answer (the metrics exposition),
                                     written after resp_out from where it was made, freed once written */
    struct fc_exchange *next_free; /* freelist link */
} fc_exchange_t;

/* A new exchange for <c> (from the freelist), refs = 1 for the client. */
fc_exchange_t *fc_exchange_new(struct fc_conn *c);
/* Called by conn.c when <ex>'s request head is parsed (ex->req filled): validates, routes,
 * picks and connects. May finish the exchange before returning. */
void fc_exchange_start(fc_exchange_t *ex);
/* Called by conn.c when new request bytes are in the client's read buffer. */
void fc_exchange_on_client_data(fc_exchange_t *ex);
/* Called by conn.c when the client closed or failed (<status> < 0; UV_EOF for a clean close). */
void fc_exchange_on_client_error(fc_exchange_t *ex, int status);
/* Ends <ex> now without an answer (a graceful stop cancelling a discarded answer). */
void fc_exchange_cancel(fc_exchange_t *ex);
/* Called by conn.c when a client timeout fired during the exchange. */
void fc_exchange_on_client_timeout(fc_exchange_t *ex);
/* Called by upstream.c: the connect finished (<status> 0) or failed. */
void fc_exchange_on_connect(fc_exchange_t *ex, int status);
/* Called by upstream.c when response bytes are in the upstream connection's buffer. */
void fc_exchange_on_upstream_data(fc_exchange_t *ex);
/* Called by upstream.c when the upstream connection closed, failed or timed out (<status> < 0,
 * UV_ETIMEDOUT for a timeout). */
void fc_exchange_on_upstream_error(fc_exchange_t *ex, int status);
/* Sends a short error response for a request that never reached a server (400, 404, 408, 413,
 * 431, ...) and ends the exchange; the client connection closes unless <keepalive>. */
void fc_exchange_reply_error(fc_exchange_t *ex, int status, int keepalive);
/* Drops an exchange whose request head was never complete, without answering or logging. */
void fc_exchange_abandon(fc_exchange_t *ex);
/* Frees every exchange on the worker's freelist. */
void fc_exchange_freelist_drain(fc_worker_t *w);

#endif
