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

typedef struct fc_config fc_config_t;
typedef struct fc_upstream_conf fc_upstream_conf_t;

/* A host:port, "[v6]:port" or "*:port" parsed into a socket address. */
typedef struct fc_addr {
    struct sockaddr_storage ss; /* IPv4 or IPv6 address with port */
    socklen_t len;              /* sizeof(sockaddr_in) or sizeof(sockaddr_in6) */
    char text[64];              /* the address as written in the config, for logs */
} fc_addr_t;

typedef struct fc_server_conf {
    fc_addr_t addr; /* where the server listens */
    int weight;     /* 1..1000, default 1 */
} fc_server_conf_t;

struct fc_upstream_conf {
    char *name;                   /* owned; the key under `upstreams:` */
    char *balance;                /* owned; a name fc_balance_ops_find() knows, default "round_robin" */
    int keepalive;                /* idle keep-alive connections kept per server, 0..100000, default 32 */
    uint64_t keepalive_timeout;   /* ms an idle pooled connection is kept, default 60000 */
    fc_server_conf_t *servers;    /* owned array of nservers (1..FC_UPSTREAM_MAX_SERVERS) */
    size_t nservers;
    size_t index;                 /* position in fc_config_t.upstreams */
};

typedef struct fc_route_conf {
    char *host;                   /* owned, lower-cased; NULL = any host. "*.example.com" is stored whole */
    char *path;                   /* owned; prefix beginning with '/', default "/" */
    char *upstream_name;          /* owned */
    fc_upstream_conf_t *upstream; /* borrowed from fc_config_t.upstreams: resolved by the loader */
    uint64_t connect_timeout;     /* ms, default 5000 */
    uint64_t send_timeout;        /* ms, default 60000 */
    uint64_t read_timeout;        /* ms, default 60000 */
} fc_route_conf_t;

typedef struct fc_listener_conf {
    fc_addr_t addr; /* "0.0.0.0:8080", "[::]:8080", "127.0.0.1:8080"; "*:8080" means 0.0.0.0 */
} fc_listener_conf_t;

typedef struct fc_limits_conf {
    uint64_t client_header_timeout; /* ms, default 10000: the whole request head must arrive within it */
    uint64_t client_body_timeout;   /* ms, default 60000: between two reads of a request body */
    uint64_t send_timeout;          /* ms, default 60000: between two writes to a client (nginx send_timeout) */
    uint64_t keepalive_timeout;     /* ms, default 75000: idle client connection between requests; 0 = no keep-alive */
    uint64_t max_header_size;       /* bytes, default 16384 (16k); 1k..1m */
    uint64_t max_body_size;         /* bytes, default 10m; 0 = unlimited */
    uint64_t max_connections;       /* client connections per worker, default 10000 */
} fc_limits_conf_t;

enum fc_log_format { FC_LOG_FORMAT_JSON = 0, FC_LOG_FORMAT_COMBINED = 1 };

struct fc_config {
    char *file;                    /* owned; the path the config was read from */
    int workers;                   /* 0 = auto; 1..256 */
    uint64_t shutdown_timeout;     /* ms, default 30000: how long a graceful stop waits for in-flight requests */
    char *error_log;               /* owned; "stderr" or a path */
    char *error_log_level;         /* owned; error|warn|notice|info|debug, default "notice" */
    char *access_log;              /* owned; "stdout", a path, or NULL when off */
    enum fc_log_format access_log_format; /* default json */
    fc_listener_conf_t *listeners; /* owned array, nlisteners >= 1 */
    size_t nlisteners;
    fc_upstream_conf_t *upstreams; /* owned array, in file order */
    size_t nupstreams;
    fc_route_conf_t *routes;       /* owned array, in file order, nroutes >= 1 */
    size_t nroutes;
    fc_limits_conf_t limits;
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
