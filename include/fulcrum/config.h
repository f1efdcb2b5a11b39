/* config.h: the parsed, validated, immutable configuration (one YAML file).
 * config.c fills it from yaml.c's positioned node tree through per-section directive tables;
 * nothing else writes to it. A reload builds a whole new fc_config_t and keeps the old one
 * if anything fails. All strings and arrays are owned by the config and freed by fc_config_free. */
#ifndef FULCRUM_CONFIG_H
#define FULCRUM_CONFIG_H

#include <netinet/in.h>
#include <stdint.h>
#include <sys/socket.h>

#include "fulcrum/common.h"
#include "fulcrum/tls.h"

#define FC_UPSTREAM_NAME_MAX 64 /* characters in an upstream name, at most */

typedef struct fc_config fc_config_t;
typedef struct fc_upstream_conf fc_upstream_conf_t;

/* A host:port, "[v6]:port" or "*:port" parsed into a socket address. */
typedef struct fc_addr {
    struct sockaddr_storage ss; /* IPv4 or IPv6 address with port */
    socklen_t len;              /* sizeof(sockaddr_in) or sizeof(sockaddr_in6) */
    char text[64];              /* the address as written in the config, for logs */
} fc_addr_t;

typedef struct fc_server_conf {
    fc_addr_t addr;        /* where the server listens */
    int weight;            /* 1..1000, default 1 */
    int backup;            /* backup: true — used only while no primary server is usable */
    int down;              /* down: true — never used (kept in the config, like nginx's "down") */
    uint32_t max_conns;    /* requests in flight to it at most; 0 = unlimited (default) */
    uint32_t max_fails;    /* failures within fail_timeout that take it out; 0 = never (default 1) */
    uint64_t fail_timeout; /* ms, default 10000: the failure window and how long it stays out */
    uint64_t slow_start;   /* ms, default 0: ramp its weight from ~0 to full after it comes back */
    uint32_t name;         /* 1 + the index in its upstream's names[] when the address was written as a
                              host name, else 0 */
    int resolve;           /* as read: `resolve` of the entry, -1 = the upstream's */
    uint64_t resolve_interval; /* as read: ms, 0 = the upstream's */
    uint32_t max_addresses;    /* as read: 0 = the upstream's */
} fc_server_conf_t;

/* A server entry whose address is a host name (`address: app.default.svc.cluster.local:3000`). It
 * became servers[first .. first + count) of its upstream: one per address it resolved to at load
 * (resolve off), or max_addresses positions whose address follows DNS while serving (resolve on:
 * see resolve.h and shm.h). */
typedef struct fc_name_conf {
    char host[254];        /* the name as written, without the port */
    char text[64];         /* "name:port" as written */
    uint16_t port;
    int resolve;           /* re-resolved while serving */
    uint64_t interval;     /* ms: resolve_interval (a shorter TTL wins) */
    size_t first, count;   /* its servers in fc_upstream_conf_t.servers */
    fc_addr_t *initial;    /* owned (resolve on): the addresses it had at load, ninitial of them (at most
                              count); the master publishes them before the first fork */
    size_t ninitial;
} fc_name_conf_t;

/* What counts as a failed attempt: bits for connect/IO errors, timeouts, and listed statuses. */
typedef struct fc_fail_set {
    int error;            /* connect refused/reset/closed before a full response */
    int timeout;          /* connect or read timeout */
    int invalid_header;   /* a malformed or ambiguous response head (nginx's invalid_header) */
    uint8_t status[100];  /* status[s - 500] != 0 for each listed 5xx status */
} fc_fail_set_t;

typedef struct fc_health_conf {
    int enabled;                /* a health_check: block is present */
    char *path;                 /* owned; default "/health" */
    char *host;                 /* owned; Host header, NULL = the server's address */
    uint64_t interval;          /* ms, default 30000 */
    uint64_t timeout;           /* ms, default 5000 */
    uint32_t healthy_threshold;   /* default 2 (1..100) */
    uint32_t unhealthy_threshold; /* default 3 (1..100) */
    int expect_min, expect_max; /* expect_status range, default 200-399 ("200", "200-399") */
    int start_unhealthy;        /* default false */
} fc_health_conf_t;

typedef struct fc_retry_conf {
    uint32_t tries;   /* servers tried per request at most, default 3 (1..FC_UPSTREAM_MAX_SERVERS) */
    uint64_t timeout; /* ms, total budget for the tries; 0 = none (default 0) */
    fc_fail_set_t on; /* default [error, timeout] (nginx's proxy_next_upstream default) */
} fc_retry_conf_t;

#define FC_QUEUE_MAX 4096 /* queue.max, at most: the shared segment keeps room for twice as many */

/* `queue:` of an upstream: requests wait here while every usable server is at max_conns. */
typedef struct fc_queue_conf {
    uint32_t max;     /* requests waiting at most, all workers together; 0 = no queue (default) */
    uint64_t timeout; /* ms a request waits at most before a 503, default 5000 */
} fc_queue_conf_t;

/* `tls:` of an upstream: fulcrum is the TLS client of its servers. */
typedef struct fc_upstream_tls_conf {
    int verify;          /* check the server's certificate against ca and its name (default true) */
    char *ca;            /* owned; default /etc/ssl/certs/ca-certificates.crt */
    char *sni;           /* owned; the server name sent and checked, NULL = none (the server's IP is
                            checked) */
    char *cert, *key;    /* owned; a client certificate and its key, or NULL */
    fc_tls_ctx_t *ctx;   /* owned: built by the loader */
} fc_upstream_tls_conf_t;

/* `sticky:` of an upstream: a client stays with one server. */
typedef struct fc_sticky_conf {
    char *cookie;        /* owned; the cookie fulcrum sets naming the server, or NULL */
    char *learn;         /* owned; the application's cookie to learn servers from, or NULL (one of
                            cookie and learn is set when sticky: is present) */
    uint64_t learn_timeout; /* ms, default 1h: how long a learned value keeps its server */
    uint64_t max_age;    /* ms, whole seconds sent; 0 = a session cookie (default) */
    int secure;          /* 0 no, 1 yes, 2 auto (default: when the client came over TLS) */
    int http_only;       /* default true */
    char *same_site;     /* owned; "Lax" (default), "Strict", "None", or NULL for none */
} fc_sticky_conf_t;

struct fc_upstream_conf {
    char *name;                   /* owned; the key under `upstreams:`, 1..FC_UPSTREAM_NAME_MAX characters */
    char *balance;                /* owned; a name fc_balance_ops_find() knows, default "round_robin".
                                     Written as a name (`balance: least_conn`) or a one-key mapping with
                                     options (`balance: { random: { two: true } }`,
                                     `balance: { hash: { key: "$cookie_session" } }`). */
    int balance_two;              /* random: { two: true } — power of two choices */
    char *hash_key;               /* owned; hash: { key: ... } template, NULL for other policies */
    fc_health_conf_t health;      /* health_check: (active checks) */
    fc_fail_set_t fail_on;        /* passive health: what counts as a failure; default [error, timeout] */
    fc_retry_conf_t retry;        /* retry: */
    int keepalive;                /* idle keep-alive connections kept per server, 0..100000, default 32 */
    uint64_t keepalive_timeout;   /* ms an idle pooled connection is kept, default 60000 */
    fc_server_conf_t *servers;    /* owned array of nservers (1..FC_UPSTREAM_MAX_SERVERS) */
    size_t nservers;
    size_t index;                 /* position in fc_config_t.upstreams */
    fc_upstream_tls_conf_t *tls;  /* owned; NULL = plain TCP to the servers */
    fc_sticky_conf_t sticky;      /* sticky: { cookie: ... } */
    fc_queue_conf_t queue;        /* queue: { max: 100, timeout: 5s } */
    int resolve;                  /* `resolve`: default for its servers written as names (default false) */
    uint64_t resolve_interval;    /* ms, default 5000 */
    uint32_t max_addresses;       /* positions per resolving name, default 16 */
    fc_name_conf_t *names;        /* owned array of nnames: the entries written as host names */
    size_t nnames;
    size_t ndynamic;              /* servers that are positions of a resolving name */
};

#define FC_RATE_DELAY_ALL UINT32_MAX /* `delay: all`: every request beyond the rate waits its turn */
enum fc_rate_on_error { FC_RATE_ALLOW = 0, FC_RATE_DENY = 1 };

/* `store:` of a rate limit: the bucket is shared with other fulcrum processes through Redis. */
typedef struct fc_rate_store_conf {
    fc_addr_t redis;     /* `redis`: the Redis server (IP:port) */
    int on_error;        /* enum fc_rate_on_error: while Redis is unreachable, the local bucket alone
                            decides (allow, default) or every request of the policy is rejected (deny) */
    uint64_t sync;       /* ms between two reconciliations with Redis, default 100 */
    uint64_t timeout;    /* ms: a reconciliation unanswered this long counts as Redis being down,
                            default 1000 */
} fc_rate_store_conf_t;

/* One policy under `rate_limits:`: a token bucket per key, shared by every worker. */
typedef struct fc_rate_limit_conf {
    char *name;          /* owned; the key under rate_limits */
    char *key;           /* owned; the key template ($remote_addr, $http_NAME, $cookie_NAME, $request_uri) */
    uint64_t rate;       /* requests ... */
    uint64_t per;        /* ... per this many ms (rate: 10/s -> 10 per 1000) */
    uint32_t burst;      /* requests beyond the rate a key may send at once (bucket capacity burst + 1) */
    int status;          /* the answer to a rejected request, default 429 */
    int dry_run;         /* count and log, never reject */
    int headers;         /* Retry-After is always sent; RateLimit and RateLimit-Policy too (default true) */
    uint32_t delay;      /* 0 (default): beyond the burst, rejected at once; N: the first N requests beyond
                            the rate pass at once, the rest of the burst waits its turn; FC_RATE_DELAY_ALL:
                            every request beyond the rate waits */
    uint64_t max_delay;  /* ms a request may wait its turn, at most (default 30000); a longer wait is a
                            rejection */
    uint32_t max_keys;   /* buckets kept (default 65536): the least recently used key makes room */
    fc_rate_store_conf_t *store; /* owned; NULL = this process's buckets only */
    int key_addr;        /* <key> is exactly "$remote_addr": hashed as it is, without expanding the template */
    size_t index;        /* position in fc_config_t.rate_limits */
} fc_rate_limit_conf_t;

/* `compression:` (top level, or a route's own): the codings fulcrum applies to responses. */
typedef struct fc_compression_conf {
    int level[4];           /* level[FC_CODING_*] (compress.h): gzip 1..9, br 0..11, zstd 1..19 */
    uint8_t on[4];          /* on[FC_CODING_*]: the coding is offered (its key is present, not off) */
    uint8_t prefer[4];      /* FC_CODING_* in the server's order for ties, 0-terminated (default
                               zstd, br, gzip) */
    uint64_t min_length;    /* bytes, default 1k: a known Content-Length below it is sent as it is */
    char **types;           /* owned array of owned lower-case media types (default: text and JSON/XML/JS/SVG) */
    size_t ntypes;
    char *skip_header;      /* owned; a request field name (lower case) that turns compression off, or NULL */
} fc_compression_conf_t;

#define FC_ROUTE_NAME_MAX 64 /* characters in a route name (the `route` label), at most */

typedef struct fc_route_conf {
    char *name;                   /* owned; the `route` label of the metrics and the access log, default the
                                     upstream's name; 1..FC_ROUTE_NAME_MAX letters, digits, '-', '_', '.' */
    char *host;                   /* owned, lower-cased; NULL = any host. "*.example.com" is stored whole */
    char *path;                   /* owned; prefix beginning with '/', default "/" */
    char *upstream_name;          /* owned */
    fc_upstream_conf_t *upstream; /* borrowed from fc_config_t.upstreams: resolved by the loader */
    uint64_t connect_timeout;     /* ms, default 5000 */
    uint64_t send_timeout;        /* ms, default 60000 */
    uint64_t read_timeout;        /* ms, default 60000 */
    int access_log;               /* `access_log: off` on a route -> 0; default 1 */
    uint64_t tunnel_timeout;      /* ms, default 1h: idle timeout of an upgraded connection (a tunnel) */
    uint64_t request_timeout;     /* ms, 0 = none (default): the whole exchange, retries included */
    const fc_rate_limit_conf_t **rate_limits; /* owned array of borrowed policies: all apply */
    size_t nrate_limits;
    fc_compression_conf_t *compression; /* owned (the route's own, merged over the top level's), or
                                     borrowed from fc_config_t.compression (compression_owned 0);
                                     NULL: no compression on this route */
    int compression_owned;
    uint64_t buffer_response;     /* `buffering.response`: bytes read ahead of the client, 0 = off (default) */
    uint64_t buffer_request;      /* `buffering.request`: a request body up to this size is read whole
                                     before a server is picked, 0 = off (default) */
    char *upgrade;                /* owned: the protocols a client may upgrade to, lower case, each
                                     followed by a NUL, the list ending with an empty one ("websocket\0\0",
                                     the default); NULL: `upgrade: off` */
} fc_route_conf_t;

/* `tls:` of a listener. */
typedef struct fc_listen_tls_conf {
    fc_tls_pair_t *pairs;  /* owned array: `certificates`, 1..16; the first is the default */
    size_t npairs;
    unsigned protocols;    /* FC_TLS_V12 | FC_TLS_V13 (default both; older ones are refused) */
    char *ciphers;         /* owned; TLS 1.2 list (default ECDHE + AEAD, AES-128-GCM first) */
    char *ciphersuites;    /* owned; TLS 1.3 suites (default the three standard ones, AES-128 first) */
    char *groups;          /* owned; default "X25519:P-256:P-384" */
    int session_tickets;   /* default true */
    int session_cache;     /* TLS 1.2 session IDs, default true */
    char *client_ca;       /* owned; client_auth.ca, NULL = no client certificates asked for */
    int client_required;   /* client_auth.required, default true */
    int openssl_records;   /* record_layer: 0 fulcrum (the default: TLS 1.3 records are ours after
                              the handshake), 1 openssl (its SSL object keeps them) */
    fc_tls_ctx_t *ctx;     /* owned: built by the loader from the fields above */
} fc_listen_tls_conf_t;

typedef struct fc_listener_conf {
    fc_addr_t addr;    /* "0.0.0.0:8080", "[::]:8080", "127.0.0.1:8080"; "*:8080" means 0.0.0.0 */
    char *health_path; /* owned; `health: { path: /healthz }`: fulcrum's own health endpoint on this
                          listener (200 while serving, 503 once a graceful stop began), or NULL */
    char *metrics_path; /* owned; `metrics: { path: /metrics }`: Prometheus metrics of every worker on this
                           listener, or NULL */
    char *status_path;  /* owned; `status: { path: /status }`: the status page (and <path>.json), or NULL */
    size_t health_path_len, metrics_path_len, status_path_len; /* their lengths (0 when NULL) */
    fc_listen_tls_conf_t *tls; /* owned; NULL = plain HTTP */
    int hsts;                  /* `hsts:` is set (TLS listeners only) */
    uint64_t hsts_max_age;     /* ms (written in whole seconds), default 1y */
    int hsts_subdomains;       /* include_subdomains, default false */
    int hsts_preload;          /* preload, default false */
    int redirect_https;        /* answer every request (but the health path) with 308 to https:// */
    uint32_t redirect_port;    /* the port in the Location, 0 = none (443) */
} fc_listener_conf_t;

typedef struct fc_limits_conf {
    uint64_t client_header_timeout; /* ms, default 10000: the whole request head must arrive within it */
    uint64_t client_body_timeout;   /* ms, default 60000: between two reads of a request body */
    uint64_t send_timeout;          /* ms, default 60000: between two writes to a client (nginx send_timeout) */
    uint64_t keepalive_timeout;     /* ms, default 75000: idle client connection between requests; 0 = no keep-alive */
    uint64_t max_header_size;       /* bytes, default 16384 (16k); 1k..1m */
    uint64_t max_body_size;         /* bytes, default 10m; 0 = unlimited */
    uint64_t max_connections;       /* client connections per worker, default 10000 */
    uint64_t tls_handshake_timeout; /* ms, default 10000: a TLS handshake must end within it */
    uint64_t max_connections_per_client; /* connections from one address at once, all workers
                                            together; 0 = unlimited (default) */
    uint64_t buffer_memory;         /* bytes, default 64m: response and request buffers of one worker at
                                       most; beyond it new exchanges stream instead of buffering */
    uint64_t client_body_min_rate;  /* bytes per second a request body must average once
                                       client_body_min_rate_after has passed; 0 = none (default) */
    uint64_t client_body_min_rate_after; /* ms, default 10000: the grace before the rate counts */
} fc_limits_conf_t;

#define FC_METRICS_MAX_BUCKETS 16 /* finite histogram buckets, at most */

/* `metrics:` at the top level: how the metrics are kept (where they are served: listeners[].metrics). */
typedef struct fc_metrics_conf {
    double buckets[FC_METRICS_MAX_BUCKETS]; /* `buckets`: upper bounds in seconds, increasing; default
                                               0.01 0.05 0.1 0.5 1 5 (prom-client's users' buckets) */
    uint64_t bucket_ns[FC_METRICS_MAX_BUCKETS]; /* the same in nanoseconds */
    size_t nbuckets;
    uint64_t max_series;      /* `max_series`: series kept at most, default 10000 (100..1000000) */
} fc_metrics_conf_t;

enum fc_log_format { FC_LOG_FORMAT_JSON = 0, FC_LOG_FORMAT_COMBINED = 1 };

struct fc_config {
    char *file;                    /* owned; the path the config was read from */
    int workers;                   /* 0 = auto; 1..32 (64 process slots hold two generations) */
    uint64_t shutdown_timeout;     /* ms, default 30000: how long a graceful stop waits for in-flight requests */
    uint64_t shutdown_delay;       /* ms, default 0: after SIGTERM, keep accepting (health endpoints answer 503)
                                      this long before the graceful stop begins (Kubernetes: 5s) */
    char *pid_file;                /* owned; the master's pid is written here, NULL = none (default) */
    char *error_log;               /* owned; "stderr" or a path */
    char *error_log_level;         /* owned; error|warn|notice|info|debug, default "notice" */
    char *access_log;              /* owned; "stdout", a path, or NULL when off */
    enum fc_log_format access_log_format; /* default json */
    char *via;                     /* owned; the name in the Via entry fulcrum adds, NULL = via: off
                                      (default "fulcrum") */
    int underscores_in_headers;    /* forward request header names with '_' (default false: dropped) */
    int request_id;                /* `request_id: on|off` (default on): keep the client's X-Request-ID (one,
                                      1..128 printable characters) or set one, forwarded and logged */
    fc_listener_conf_t *listeners; /* owned array, nlisteners >= 1 */
    size_t nlisteners;
    fc_upstream_conf_t *upstreams; /* owned array, in file order */
    size_t nupstreams;
    fc_rate_limit_conf_t *rate_limits; /* owned array, in file order */
    size_t nrate_limits;
    fc_compression_conf_t *compression; /* owned; `compression:`, NULL = none (the default) */
    fc_route_conf_t *routes;       /* owned array, in file order, nroutes >= 1 */
    size_t nroutes;
    fc_limits_conf_t limits;
    fc_metrics_conf_t metrics;
    char *resolver;                /* owned; `resolver`: the DNS servers to ask, "IP:port,IP:port" as c-ares
                                      takes them, NULL = those of /etc/resolv.conf */
    char *warnings;                /* owned; "FILE:LINE:COLUMN: message" lines (a certificate about to
                                      expire), NULL when none: the caller logs them */
};

/* Reads and validates <path>. On success returns 0 and *<out> is a new config the caller frees
 * with fc_config_free. On failure returns -1, *<out> is untouched, and <err> holds the first
 * error with file, line and column ("key 'x' is unknown", "duplicate key", ...). */
int fc_config_load(const char *path, fc_config_t **out, fc_err_t *err);

/* Same, from a string held in memory; <name> is used as the file name in errors. */
int fc_config_load_string(const char *name, const char *text, size_t len, fc_config_t **out, fc_err_t *err);

/* Frees <cfg> and everything it owns. NULL is fine. */
void fc_config_free(fc_config_t *cfg);

/* Looks up an upstream by name; NULL if there is none. */
fc_upstream_conf_t *fc_config_upstream(const fc_config_t *cfg, const char *name);

/* Parses "host:port", "[v6]:port" or "*:port" (numeric addresses only; "localhost" is accepted
 * as 127.0.0.1). Returns 0, or -1 with a message in <err> (no position). */
int fc_addr_parse(const char *text, fc_addr_t *out, fc_err_t *err);

#endif
