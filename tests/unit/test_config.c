/* test_config.c: the YAML tree (yaml.h) and the config loader (config.h): defaults, a full
 * config, and every validation error with its exact message, line and column. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fulcrum/balance.h"
#include "fulcrum/config.h"
#include "fulcrum/yaml.h"
#include "certs.h"
#include "harness.h"

void test_config(void);

static const char *const NAME = "t.yaml";

/* The three required sections, smallest valid form; tests append to or replace them. */
#define LISTEN "listeners:\n  - address: 127.0.0.1:8080\n"
#define UPS "upstreams:\n  b:\n    servers:\n      - address: 127.0.0.1:3000\n"
#define ROUTE "routes:\n  - upstream: b\n"
#define MIN LISTEN UPS ROUTE

static fc_config_t *load(const char *yaml, fc_err_t *err)
{
    fc_config_t *cfg = NULL;
    memset(err, 0, sizeof(*err));
    if (fc_config_load_string(NAME, yaml, strlen(yaml), &cfg, err) < 0) return NULL;
    return cfg;
}

/* Loads <yaml> and returns the error as the caller prints it ("t.yaml:L:C: msg"), or "ok". */
static const char *err_of(const char *yaml)
{
    static char out[512];
    fc_err_t err;
    fc_config_t *cfg = load(yaml, &err);
    if (cfg != NULL) {
        fc_config_free(cfg);
        return "ok";
    }
    if (err.file != NAME) return "error without the config's file name";
    fc_err_format(&err, out, sizeof(out));
    return out;
}

static uint16_t port_of(const fc_addr_t *a)
{
    if (a->ss.ss_family == AF_INET6) return ntohs(((const struct sockaddr_in6 *)(const void *)&a->ss)->sin6_port);
    return ntohs(((const struct sockaddr_in *)(const void *)&a->ss)->sin_port);
}

static const char *ip_of(const fc_addr_t *a)
{
    static char buf[INET6_ADDRSTRLEN];
    if (a->ss.ss_family == AF_INET6)
        return inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)&a->ss)->sin6_addr, buf, sizeof(buf));
    return inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)&a->ss)->sin_addr, buf, sizeof(buf));
}

/* An inline config and the exact error it must produce ("ok" when it must load). */
typedef struct err_case {
    const char *yaml;
    const char *want;
} err_case_t;

static void check_errors(const char *name, const err_case_t *cases, size_t n)
{
    subtest(name);
    for (size_t i = 0; i < n; i++) is_str(err_of(cases[i].yaml), cases[i].want);
}
#define CHECK_ERRORS(name, cases) check_errors(name, cases, FC_ARRAY_LEN(cases))

static const err_case_t yaml_syntax_cases[] = {
    {"a: b: c\n", "t.yaml:1:5: mapping values are not allowed in this context"},
    {"listeners:\n  - address: 1\n upstreams: x\n",
     "t.yaml:3:2: did not find expected key while parsing a block mapping"},
    {"limits: { max_body_size: 1m\n", "t.yaml:2:1: did not find expected ',' or '}' while parsing a flow mapping"},
    {"a:\n\tb: 1\n", "t.yaml:2:1: found character that cannot start any token while scanning for the next token "
                     "(tabs cannot indent YAML; use spaces)"},
    {"a: \"unterminated\n", "t.yaml:2:1: found unexpected end of stream while scanning a quoted scalar"},
    {"a: 1\nb: \xff\n", "t.yaml:2:4: invalid leading UTF-8 octet"},
};

static const err_case_t yaml_feature_cases[] = {
    {"workers: &w 2\n", "t.yaml:1:10: anchors (&w) are not supported; write the value out"},
    {"a: 1\nb: *w\n", "t.yaml:2:4: aliases (*w) are not supported; write the value out"},
    {"a: &m { x: 1 }\n", "t.yaml:1:4: anchors (&m) are not supported; write the value out"},
    {"workers: 1\n---\nworkers: 2\n", "t.yaml:2:1: only one YAML document is allowed"},
    {"{ [a]: 1 }\n", "t.yaml:1:3: mapping keys must be plain values, not a list"},
    {"? { a: 1 }\n: x\n", "t.yaml:1:3: mapping keys must be plain values, not a mapping"},
};

static const err_case_t duplicate_key_cases[] = {
    {"workers: 1\n" MIN "workers: 2\n", "t.yaml:10:1: duplicate key 'workers' (first set at line 1)"},
    {LISTEN "upstreams:\n  b:\n    keepalive: 1\n    keepalive: 2\n",
     "t.yaml:6:5: duplicate key 'keepalive' (first set at line 5)"},
    {MIN "limits: { send_timeout: 1s, send_timeout: 2s }\n",
     "t.yaml:9:29: duplicate key 'send_timeout' (first set at line 9)"},
    {LISTEN "upstreams:\n  b:\n    servers: [{address: 127.0.0.1:1}]\n  b:\n    servers: []\n",
     "t.yaml:6:3: duplicate key 'b' (first set at line 4)"},
};

static const err_case_t accepted_cases[] = {
    {"workers: 32\n" MIN, "ok"},
    {"workers: \"4\"\n" MIN, "ok"},
    {"access_log: /var/log/a.log\n" MIN, "ok"},
    {"shutdown_timeout: 0\n" MIN, "ok"},
    {"limits: { max_body_size: 1024g, max_header_size: 1k }\n" MIN, "ok"},
    {LISTEN UPS "routes:\n  - { host: a.example.com, upstream: b }\n  - { host: b.example.com, upstream: b }\n", "ok"},
    {LISTEN UPS "routes:\n  - { path: /a, upstream: b }\n  - { path: /a/, upstream: b }\n", "ok"},
    {LISTEN UPS "routes:\n  - { host: x_1.internal, upstream: b }\n", "ok"},
    {LISTEN UPS "routes:\n  - { host: 10.0.0.1, upstream: b }\n", "ok"},
    {"listeners:\n  - address: 127.0.0.1:8080\n  - address: 127.0.0.1:8081\n"
     "  - address: '[::1]:8080'\n" UPS ROUTE,
     "ok"},
};

static const err_case_t document_cases[] = {
    {"", "t.yaml: the configuration is empty (listeners, upstreams and routes are required)"},
    {"# nothing\n", "t.yaml: the configuration is empty (listeners, upstreams and routes are required)"},
    {"- a\n- b\n", "t.yaml:1:1: the configuration must be a mapping of keys like 'listeners:', not a list"},
    {"hello\n", "t.yaml:1:1: the configuration must be a mapping of keys like 'listeners:', not a value"},
};

static const err_case_t unknown_key_cases[] = {
    {"# top\n" MIN "worker: 2\n",
     "t.yaml:10:1: unknown key 'worker' at the top level (expected one of: workers, shutdown_timeout, "
     "shutdown_delay, pid_file, error_log, error_log_level, access_log, access_log_format, via, underscores_in_headers, request_id, "
     "resolver, listeners, upstreams, ...)"},
    {"listeners:\n  - address: 127.0.0.1:8080\n    port: 80\n" UPS ROUTE,
     "t.yaml:3:5: unknown key 'port' in listeners[0] (expected one of: address, health, metrics, status, tls, hsts, redirect_https)"},
    {LISTEN "upstreams:\n  b:\n    balancer: round_robin\n    servers: []\n" ROUTE,
     "t.yaml:5:5: unknown key 'balancer' in upstreams.b (expected one of: balance, keepalive, "
     "keepalive_timeout, servers, fail_on, health_check, retry, tls, sticky, queue, resolve, resolve_interval, max_addresses)"},
    {LISTEN "upstreams:\n  b:\n    servers:\n      - address: 127.0.0.1:1\n      - address: 127.0.0.1:2\n"
            "        wieght: 2\n" ROUTE,
     "t.yaml:8:9: unknown key 'wieght' in upstreams.b.servers[1] (expected one of: address, weight, backup, down, "
     "max_conns, max_fails, fail_timeout, slow_start, resolve, resolve_interval, max_addresses)"},
    {LISTEN UPS "routes:\n  - upstream: b\n  - upstream: b\n    prefix: /x\n",
     "t.yaml:10:5: unknown key 'prefix' in routes[1] (expected one of: host, path, upstream, name, access_log, upgrade, rate_limit, compression, buffering, timeouts)"},
    {LISTEN UPS "routes:\n  - upstream: b\n    timeouts: { connect: 1s, idle: 2s }\n",
     "t.yaml:9:30: unknown key 'idle' in routes[0].timeouts (expected one of: connect, send, read, tunnel, request)"},
    {MIN "limits:\n  max_body: 1m\n",
     "t.yaml:10:3: unknown key 'max_body' in limits (expected one of: client_header_timeout, "
     "client_body_timeout, send_timeout, keepalive_timeout, max_header_size, max_body_size, max_connections, max_connections_per_client, tls_handshake_timeout, buffer_memory, ...)"},
};

static const err_case_t missing_key_cases[] = {
    {"workers: 2\n" UPS ROUTE, "t.yaml:1:1: missing required key 'listeners' at the top level"},
    {LISTEN ROUTE, "t.yaml:1:1: missing required key 'upstreams' at the top level"},
    {LISTEN UPS, "t.yaml:1:1: missing required key 'routes' at the top level"},
    {"listeners: []\n" UPS ROUTE, "t.yaml:1:12: listeners: the list is empty; at least one entry is required"},
    {LISTEN UPS "routes: []\n", "t.yaml:7:9: routes: the list is empty; at least one entry is required"},
    {LISTEN "upstreams: {}\n" ROUTE, "t.yaml:3:12: upstreams: no upstreams are defined; at least one is required"},
    {LISTEN "upstreams:\n  b:\n    keepalive: 1\n" ROUTE, "t.yaml:5:5: missing required key 'servers' in upstreams.b"},
    {LISTEN "upstreams:\n  b:\n    servers: []\n" ROUTE,
     "t.yaml:5:14: upstreams.b.servers: the list is empty; at least one entry is required"},
    {LISTEN "upstreams:\n  b:\n    servers:\n      - weight: 2\n" ROUTE,
     "t.yaml:6:9: missing required key 'address' in upstreams.b.servers[0]"},
    {"listeners:\n  - {}\n" UPS ROUTE, "t.yaml:2:5: missing required key 'address' in listeners[0]"},
    {LISTEN UPS "routes:\n  - path: /x\n", "t.yaml:8:5: missing required key 'upstream' in routes[0]"},
};

static const err_case_t node_type_cases[] = {
    {"listeners: 0.0.0.0:8080\n" UPS ROUTE, "t.yaml:1:12: listeners: expected a list, got a value"},
    {"listeners:\n  address: 0.0.0.0:8080\n" UPS ROUTE, "t.yaml:2:3: listeners: expected a list, got a mapping"},
    {"listeners:\n  - 0.0.0.0:8080\n" UPS ROUTE, "t.yaml:2:5: listeners[0]: expected a mapping, got a value"},
    {LISTEN "upstreams:\n  - b\n" ROUTE, "t.yaml:4:3: upstreams: expected a mapping, got a list"},
    {LISTEN "upstreams:\n  b: 127.0.0.1:3000\n" ROUTE, "t.yaml:4:6: upstreams.b: expected a mapping, got a value"},
    {LISTEN "upstreams:\n  b:\n    servers: 127.0.0.1:3000\n" ROUTE,
     "t.yaml:5:14: upstreams.b.servers: expected a list, got a value"},
    {LISTEN UPS "routes:\n  upstream: b\n", "t.yaml:8:3: routes: expected a list, got a mapping"},
    {LISTEN UPS "routes:\n  - upstream: b\n    timeouts: 5s\n",
     "t.yaml:9:15: routes[0].timeouts: expected a mapping, got a value"},
    {MIN "limits: 5\n", "t.yaml:9:9: limits: expected a mapping, got a value"},
    {"workers: [1]\n" MIN, "t.yaml:1:10: workers: expected a single value, got a list"},
    {"error_log: { path: x }\n" MIN, "t.yaml:1:12: error_log: expected a single value, got a mapping"},
    {LISTEN "upstreams:\n  b:\n    servers:\n      - address: [127.0.0.1, 3000]\n" ROUTE,
     "t.yaml:6:18: upstreams.b.servers[0].address: expected a single value, got a list"},
};

static const err_case_t missing_value_cases[] = {
    {"workers:\n" MIN, "t.yaml:1:9: workers: missing value"},
    {"listeners:\n" UPS ROUTE, "t.yaml:1:11: listeners: missing value (expected a list)"},
    {LISTEN UPS ROUTE "limits: ~\n", "t.yaml:9:9: limits: missing value (expected a mapping)"},
    {"workers: ~\n" MIN, "t.yaml:1:10: workers: missing value"},
    {"error_log: null\n" MIN, "t.yaml:1:12: error_log: missing value"},
    {"error_log: ''\n" MIN, "t.yaml:1:12: error_log: must not be empty"},
    {"error_log: \"a\\0b\"\n" MIN, "t.yaml:1:12: error_log: the value contains a NUL byte"},
    {LISTEN UPS "routes:\n  - upstream:\n", "t.yaml:8:14: routes[0].upstream: missing value"},
    {LISTEN UPS "routes:\n  - { upstream: b, host: }\n", "t.yaml:8:26: routes[0].host: missing value"},
};

static const err_case_t workers_cases[] = {
    {"workers: 0\n" MIN, "t.yaml:1:10: workers: 0 is out of range (1..32)"},
    {"workers: 33\n" MIN, "t.yaml:1:10: workers: 33 is out of range (1..32)"},
    {"workers: -1\n" MIN, "t.yaml:1:10: workers: -1 is out of range (1..32)"},
    {"workers: many\n" MIN, "t.yaml:1:10: workers: expected 'auto' or a number of processes, got 'many'"},
    {"workers: 1.5\n" MIN, "t.yaml:1:10: workers: expected 'auto' or a number of processes, got '1.5'"},
    {"workers: 99999999999999999999999\n" MIN, "t.yaml:1:10: workers: 99999999999999999999999 is too large"},
};

static const err_case_t number_cases[] = {
    {LISTEN "upstreams:\n  b:\n    servers:\n      - { address: 127.0.0.1:1, weight: 0 }\n" ROUTE,
     "t.yaml:6:41: upstreams.b.servers[0].weight: 0 is out of range (1..1000)"},
    {LISTEN "upstreams:\n  b:\n    servers:\n      - { address: 127.0.0.1:1, weight: 1001 }\n" ROUTE,
     "t.yaml:6:41: upstreams.b.servers[0].weight: 1001 is out of range (1..1000)"},
    {LISTEN "upstreams:\n  b:\n    servers:\n      - { address: 127.0.0.1:1, weight: high }\n" ROUTE,
     "t.yaml:6:41: upstreams.b.servers[0].weight: expected a whole number, got 'high'"},
    {LISTEN "upstreams:\n  b:\n    keepalive: -1\n    servers: [{address: 127.0.0.1:1}]\n" ROUTE,
     "t.yaml:5:16: upstreams.b.keepalive: -1 is out of range (0..100000)"},
    {LISTEN "upstreams:\n  b:\n    keepalive: 100001\n    servers: [{address: 127.0.0.1:1}]\n" ROUTE,
     "t.yaml:5:16: upstreams.b.keepalive: 100001 is out of range (0..100000)"},
    {LISTEN "upstreams:\n  b:\n    keepalive: '-'\n    servers: [{address: 127.0.0.1:1}]\n" ROUTE,
     "t.yaml:5:16: upstreams.b.keepalive: expected a whole number, got '-'"},
    {MIN "limits:\n  max_connections: 0\n", "t.yaml:10:20: limits.max_connections: 0 is out of range (1..1000000)"},
    {MIN "limits:\n  max_connections: 1000001\n",
     "t.yaml:10:20: limits.max_connections: 1000001 is out of range (1..1000000)"},
    {MIN "limits:\n  max_connections: 1e6\n",
     "t.yaml:10:20: limits.max_connections: expected a whole number, got '1e6'"},
};

static const err_case_t duration_cases[] = {
    {"shutdown_timeout: 30 seconds\n" MIN,
     "t.yaml:1:19: shutdown_timeout: expected a duration like 500ms, 10s, 5m, 1h30m or 1d, got '30 seconds'"},
    {"shutdown_timeout: -1s\n" MIN,
     "t.yaml:1:19: shutdown_timeout: expected a duration like 500ms, 10s, 5m, 1h30m or 1d, got '-1s'"},
    {"shutdown_timeout: 25h\n" MIN, "t.yaml:1:19: shutdown_timeout: 25h is out of range (0ms..24h)"},
    {LISTEN UPS "routes:\n  - upstream: b\n    timeouts: { connect: 0s }\n",
     "t.yaml:9:26: routes[0].timeouts.connect: 0s is out of range (1ms..24h)"},
    {LISTEN UPS "routes:\n  - upstream: b\n    timeouts: { read: 1h1ms }\n", "ok"},
    {LISTEN UPS "routes:\n  - upstream: b\n    timeouts: { send: 24h1ms }\n",
     "t.yaml:9:23: routes[0].timeouts.send: 24h1ms is out of range (1ms..24h)"},
    {LISTEN "upstreams:\n  b:\n    keepalive_timeout: 0\n    servers: [{address: 127.0.0.1:1}]\n" ROUTE,
     "t.yaml:5:24: upstreams.b.keepalive_timeout: 0 is out of range (1ms..24h)"},
    {MIN "limits:\n  client_header_timeout: 0\n",
     "t.yaml:10:26: limits.client_header_timeout: 0 is out of range (1ms..24h)"},
    {MIN "limits:\n  client_body_timeout: 1w\n",
     "t.yaml:10:24: limits.client_body_timeout: expected a duration like 500ms, 10s, 5m, 1h30m or 1d, got '1w'"},
    {MIN "limits:\n  send_timeout: 0ms\n", "t.yaml:10:17: limits.send_timeout: 0ms is out of range (1ms..24h)"},
    {MIN "limits:\n  keepalive_timeout: 86401\n",
     "t.yaml:10:22: limits.keepalive_timeout: 86401 is out of range (0ms..24h)"},
};

static const err_case_t size_cases[] = {
    {MIN "limits:\n  max_header_size: 512\n", "t.yaml:10:20: limits.max_header_size: 512 is out of range (1k..1m)"},
    {MIN "limits:\n  max_header_size: 2m\n", "t.yaml:10:20: limits.max_header_size: 2m is out of range (1k..1m)"},
    {MIN "limits:\n  max_header_size: 1025k\n", "t.yaml:10:20: limits.max_header_size: 1025k is out of range (1k..1m)"},
    {MIN "limits:\n  max_body_size: 10mb\n",
     "t.yaml:10:18: limits.max_body_size: expected a size like 512, 16k, 10m or 1g, got '10mb'"},
    {MIN "limits:\n  max_body_size: -1\n",
     "t.yaml:10:18: limits.max_body_size: expected a size like 512, 16k, 10m or 1g, got '-1'"},
    {MIN "limits:\n  max_body_size: 99999999999g\n",
     "t.yaml:10:18: limits.max_body_size: expected a size like 512, 16k, 10m or 1g, got '99999999999g'"},
};

static const err_case_t choice_cases[] = {
    {"error_log_level: verbose\n" MIN,
     "t.yaml:1:18: error_log_level: unknown value 'verbose' (expected one of: error, warn, notice, info, debug)"},
    {"error_log_level: NOTICE\n" MIN,
     "t.yaml:1:18: error_log_level: unknown value 'NOTICE' (expected one of: error, warn, notice, info, debug)"},
    {"access_log_format: clf\n" MIN,
     "t.yaml:1:20: access_log_format: unknown value 'clf' (expected one of: json, combined)"},
    {"access_log: ''\n" MIN, "t.yaml:1:13: access_log: must not be empty"},
};

static const err_case_t address_cases[] = {
    {"listeners:\n  - address: 8080\n" UPS ROUTE,
     "t.yaml:2:14: listeners[0].address: missing port in '8080' (expected host:port, like 127.0.0.1:8080)"},
    {"listeners:\n  - address: 127.0.0.1:0\n" UPS ROUTE,
     "t.yaml:2:14: listeners[0].address: invalid port '0' in '127.0.0.1:0' (expected 1..65535)"},
    {"listeners:\n  - address: example.com:80\n" UPS ROUTE,
     "t.yaml:2:14: listeners[0].address: 'example.com' is not an IP address (only numeric addresses and "
     "localhost are accepted)"},
    {LISTEN "upstreams:\n  b:\n    servers:\n      - address: ::1:3000\n" ROUTE,
     "t.yaml:6:18: upstreams.b.servers[0].address: '::1:3000': write IPv6 addresses in brackets, like [::1]:8080"},
};

static const err_case_t duplicate_entry_cases[] = {
    {"listeners:\n  - address: 127.0.0.1:8080\n  - address: 127.0.0.1:8081\n"
     "  - address: 127.0.0.1:8080\n" UPS ROUTE,
     "t.yaml:4:14: listeners[2].address: 127.0.0.1:8080 is already listed as listeners[0]"},
    {"listeners:\n  - address: '*:80'\n  - address: 0.0.0.0:80\n" UPS ROUTE,
     "t.yaml:3:14: listeners[1].address: 0.0.0.0:80 is already listed as listeners[0]"},
    {LISTEN "upstreams:\n  b:\n    servers:\n      - address: 127.0.0.1:3000\n"
            "      - address: localhost:3000\n" ROUTE,
     "t.yaml:7:18: upstreams.b.servers[1].address: localhost:3000 is already listed as servers[0] "
     "(give it a higher weight instead)"},
    {LISTEN UPS "routes:\n  - { path: /api, upstream: b }\n  - { path: /api, upstream: b }\n",
     "t.yaml:9:5: routes[1]: same host and path as routes[0], so it could never be chosen"},
    {LISTEN UPS "routes:\n  - { host: A.com, upstream: b }\n  - { host: a.com, path: /, upstream: b }\n",
     "t.yaml:9:5: routes[1]: same host and path as routes[0], so it could never be chosen"},
};

static const err_case_t route_cases[] = {
    {LISTEN UPS "routes:\n  - upstream: backend\n",
     "t.yaml:8:15: routes[0].upstream: unknown upstream 'backend' (defined: b)"},
    {LISTEN "upstreams:\n  one:\n    servers: [{address: 127.0.0.1:1}]\n"
            "  two:\n    servers: [{address: 127.0.0.1:2}]\n"
            "routes:\n  - upstream: one\n  - { path: /x, upstream: three }\n",
     "t.yaml:10:27: routes[1].upstream: unknown upstream 'three' (defined: one, two)"},
    {LISTEN UPS "routes:\n  - { path: api, upstream: b }\n", "t.yaml:8:13: routes[0].path: 'api' must start with '/'"},
    {LISTEN UPS "routes:\n  - { path: '/a?b=1', upstream: b }\n",
     "t.yaml:8:13: routes[0].path: '/a?b=1' must not contain a query ('?') or fragment ('#'); routes match "
     "the path only"},
    {LISTEN UPS "routes:\n  - { path: '/a b', upstream: b }\n",
     "t.yaml:8:13: routes[0].path: '/a b' must not contain spaces or control characters"},
    {LISTEN UPS "routes:\n  - { host: '*', upstream: b }\n",
     "t.yaml:8:13: routes[0].host: '*' is not a host name; leave out 'host' to match any host"},
    {LISTEN UPS "routes:\n  - { host: 'api.*.com', upstream: b }\n",
     "t.yaml:8:13: routes[0].host: 'api.*.com': a wildcard is only allowed as a leading '*.', like *.example.com"},
    {LISTEN UPS "routes:\n  - { host: '*example.com', upstream: b }\n",
     "t.yaml:8:13: routes[0].host: '*example.com': a wildcard is only allowed as a leading '*.', like "
     "*.example.com"},
    {LISTEN UPS "routes:\n  - { host: 'api.example.com:8080', upstream: b }\n",
     "t.yaml:8:13: routes[0].host: 'api.example.com:8080': a host must not include a port"},
    {LISTEN UPS "routes:\n  - { host: a..com, upstream: b }\n",
     "t.yaml:8:13: routes[0].host: 'a..com' is not a valid host name (empty or over-long label)"},
    {LISTEN UPS "routes:\n  - { host: example.com., upstream: b }\n",
     "t.yaml:8:13: routes[0].host: 'example.com.' is not a valid host name (empty or over-long label)"},
    {LISTEN UPS "routes:\n  - { host: 'ex ample.com', upstream: b }\n",
     "t.yaml:8:13: routes[0].host: 'ex ample.com' is not a valid host name (use letters, digits, '-' and '.')"},
};

static const err_case_t upstream_name_cases[] = {
    {LISTEN "upstreams:\n  my backend:\n    servers: [{address: 127.0.0.1:1}]\n" ROUTE,
     "t.yaml:4:3: invalid upstream name 'my backend': use 1 to 64 letters, digits, '-', '_' and '.'"},
    {LISTEN "upstreams:\n  '':\n    servers: [{address: 127.0.0.1:1}]\n" ROUTE,
     "t.yaml:4:3: invalid upstream name '': use 1 to 64 letters, digits, '-', '_' and '.'"},
};

/* One upstream "b" whose keys (from line 5, indented four spaces) the case writes out. */
#define UP(keys) LISTEN "upstreams:\n  b:\n" keys ROUTE
#define SRV "    servers: [{address: 127.0.0.1:1}]\n"

static const err_case_t balance_cases[] = {
    {UP("    balance: least_conn\n" SRV), "ok"},
    {UP("    balance: ip_hash\n" SRV), "ok"},
    {UP("    balance: random\n" SRV), "ok"},
    {UP("    balance: { random: { two: TRUE } }\n" SRV), "ok"},
    {UP("    balance: { random: {} }\n" SRV), "ok"},
    {UP("    balance: { least_conn: {} }\n" SRV), "ok"},
    {UP("    balance:\n      least_conn:\n" SRV), "ok"},
    {UP("    balance:\n      hash:\n        key: $request_uri\n" SRV), "ok"},
    {UP("    balance: hash\n" SRV),
     "t.yaml:5:14: upstreams.b.balance: 'hash' needs a key, like balance: { hash: { key: \"$request_uri\" } }"},
    {UP("    balance: { hash: ~ }\n" SRV),
     "t.yaml:5:16: upstreams.b.balance: 'hash' needs a key, like balance: { hash: { key: \"$request_uri\" } }"},
    {UP("    balance: { hash: {} }\n" SRV), "t.yaml:5:22: missing required key 'key' in upstreams.b.balance.hash"},
    {UP("    balance: { random: { two: yes } }\n" SRV),
     "t.yaml:5:31: upstreams.b.balance.random.two: expected true or false, got 'yes'"},
    {UP("    balance: { random: { key: $remote_addr } }\n" SRV),
     "t.yaml:5:26: unknown key 'key' in upstreams.b.balance.random (expected one of: two)"},
    {UP("    balance: { hash: { key: $request_uri, two: true } }\n" SRV),
     "t.yaml:5:43: unknown key 'two' in upstreams.b.balance.hash (expected one of: key)"},
    {UP("    balance: { round_robin: { two: true } }\n" SRV),
     "t.yaml:5:29: upstreams.b.balance: 'round_robin' takes no options"},
    {UP("    balance: { least_conn: x }\n" SRV), "t.yaml:5:28: upstreams.b.balance: 'least_conn' takes no options"},
    {UP("    balance: { random: {}, hash: {} }\n" SRV),
     "t.yaml:5:14: upstreams.b.balance: expected one policy, as a name (balance: least_conn) or a name with "
     "options (balance: { random: { two: true } })"},
    {UP("    balance: {}\n" SRV),
     "t.yaml:5:14: upstreams.b.balance: expected one policy, as a name (balance: least_conn) or a name with "
     "options (balance: { random: { two: true } })"},
    {UP("    balance: [random]\n" SRV), "t.yaml:5:14: upstreams.b.balance: expected a single value, got a list"},
    {UP("    balance:\n" SRV), "t.yaml:5:13: upstreams.b.balance: missing value"},
};

/* `balance: { hash: { key: <k> } }` with <k> written as YAML at column 29 of line 5. */
#define HASH(k) UP("    balance: { hash: { key: " k " } }\n" SRV)
#define KEY_VARS "(known: $request_uri, $remote_addr, $http_NAME, $cookie_NAME)"

static const err_case_t hash_key_cases[] = {
    {HASH("$request_uri"), "ok"},
    {HASH("\"$http_x-user:$remote_addr\""), "ok"},
    {HASH("$cookie_session"), "ok"},
    {HASH("'user-$http_x_user_id:$cookie_s'"), "ok"},
    {HASH("$http_host/$remote_addr"), "ok"},
    {HASH("$http_host-$remote_addr"),
     "t.yaml:5:29: upstreams.b.balance.hash.key: '$http_host-$remote_addr': the name of '$http_host-' takes in "
     "the '-' that ends it; follow a variable with another character, like ':'"},
    {HASH("$remote_addr-x"),
     "t.yaml:5:29: upstreams.b.balance.hash.key: '$remote_addr-x': unknown variable '$remote_addr-x' " KEY_VARS},
    {HASH("$uri"), "t.yaml:5:29: upstreams.b.balance.hash.key: '$uri': unknown variable '$uri' " KEY_VARS},
    {HASH("$Request_uri"),
     "t.yaml:5:29: upstreams.b.balance.hash.key: '$Request_uri': unknown variable '$Request_uri' " KEY_VARS},
    {HASH("$request_uri_x"),
     "t.yaml:5:29: upstreams.b.balance.hash.key: '$request_uri_x': unknown variable '$request_uri_x' " KEY_VARS},
    {HASH("'a/$http_'"),
     "t.yaml:5:29: upstreams.b.balance.hash.key: 'a/$http_': $http_ needs a name after it, like $http_x_user_id "
     "or $cookie_session"},
    {HASH("$cookie_"),
     "t.yaml:5:29: upstreams.b.balance.hash.key: '$cookie_': $cookie_ needs a name after it, like "
     "$http_x_user_id or $cookie_session"},
    {HASH("static"),
     "t.yaml:5:29: upstreams.b.balance.hash.key: 'static' has no variable, so every request would go to the "
     "same server " KEY_VARS},
    {HASH("''"),
     "t.yaml:5:29: upstreams.b.balance.hash.key: '' has no variable, so every request would go to the same "
     "server " KEY_VARS},
    {HASH("'$remote_addr$'"),
     "t.yaml:5:29: upstreams.b.balance.hash.key: '$remote_addr$': '$' must be followed by a variable name " KEY_VARS},
    {HASH("'${request_uri}'"),
     "t.yaml:5:29: upstreams.b.balance.hash.key: '${request_uri}': '$' must be followed by a variable name " KEY_VARS},
    {HASH("\"$request_uri\\t\""),
     "t.yaml:5:29: upstreams.b.balance.hash.key: the key must not contain control characters"},
    {HASH("[$request_uri]"), "t.yaml:5:29: upstreams.b.balance.hash.key: expected a single value, got a list"},
};

static const err_case_t server_option_cases[] = {
    {UP("    servers: [{address: 127.0.0.1:1, backup: maybe}]\n"),
     "t.yaml:5:46: upstreams.b.servers[0].backup: expected true or false, got 'maybe'"},
    {UP("    servers: [{address: 127.0.0.1:1, down: 1}]\n"),
     "t.yaml:5:44: upstreams.b.servers[0].down: expected true or false, got '1'"},
    {UP("    servers: [{address: 127.0.0.1:1, max_conns: -1}]\n"),
     "t.yaml:5:49: upstreams.b.servers[0].max_conns: -1 is out of range (0..1000000)"},
    {UP("    servers: [{address: 127.0.0.1:1, max_conns: 1000001}]\n"),
     "t.yaml:5:49: upstreams.b.servers[0].max_conns: 1000001 is out of range (0..1000000)"},
    {UP("    servers: [{address: 127.0.0.1:1, max_fails: 1001}]\n"),
     "t.yaml:5:49: upstreams.b.servers[0].max_fails: 1001 is out of range (0..1000)"},
    {UP("    servers: [{address: 127.0.0.1:1, fail_timeout: 0}]\n"),
     "t.yaml:5:52: upstreams.b.servers[0].fail_timeout: 0 is out of range (1ms..24h)"},
    {UP("    servers: [{address: 127.0.0.1:1, slow_start: 25h}]\n"),
     "t.yaml:5:50: upstreams.b.servers[0].slow_start: 25h is out of range (0ms..24h)"},
    {UP("    servers: [{address: 127.0.0.1:1, slow_start: soon}]\n"),
     "t.yaml:5:50: upstreams.b.servers[0].slow_start: expected a duration like 500ms, 10s, 5m, 1h30m or 1d, got "
     "'soon'"},
    {UP("    servers:\n      - { address: 127.0.0.1:1, down: true }\n"
        "      - { address: 127.0.0.1:2, down: true, backup: true }\n"),
     "t.yaml:6:7: upstreams.b.servers: no usable server: every server is marked down"},
    {UP("    servers:\n      - { address: 127.0.0.1:1, down: true }\n      - { address: 127.0.0.1:2, backup: true }\n"),
     "ok"},
    {UP("    servers: [{address: 127.0.0.1:1, backup: true}]\n"), "ok"},
    {UP("    balance: { hash: { key: $remote_addr } }\n"
        "    servers:\n      - address: 127.0.0.1:1\n      - address: 127.0.0.1:2\n        backup: true\n"),
     "t.yaml:9:17: upstreams.b.servers[1].backup: 'backup' cannot be used with balance 'hash', which maps each "
     "request key to a fixed server"},
    {UP("    balance: ip_hash\n    servers:\n      - { address: 127.0.0.1:1, backup: true }\n"),
     "t.yaml:7:41: upstreams.b.servers[0].backup: 'backup' cannot be used with balance 'ip_hash', which maps each "
     "request key to a fixed server"},
    {UP("    balance: ip_hash\n    servers:\n      - { address: 127.0.0.1:1, slow_start: 30s }\n"),
     "t.yaml:7:45: upstreams.b.servers[0].slow_start: 'slow_start' cannot be used with balance 'ip_hash', which "
     "maps each request key to a fixed server"},
    {UP("    balance: ip_hash\n    servers:\n      - { address: 127.0.0.1:1, backup: false, slow_start: 0 }\n"), "ok"},
    {UP("    balance: random\n    servers:\n      - { address: 127.0.0.1:1, backup: true, slow_start: 1m }\n"),
     "ok"},
    {UP("    balance: least_conn\n    servers:\n      - { address: 127.0.0.1:1, max_fails: 0, max_conns: 1 }\n"),
     "ok"},
};

static const err_case_t fail_set_cases[] = {
    {UP(SRV "    fail_on: []\n"), "ok"},
    {UP(SRV "    fail_on: [error, timeout, 500, 502, 503, 504]\n"), "ok"},
    {UP(SRV "    fail_on: [5xx, error]\n"), "ok"},
    {UP(SRV "    fail_on: error\n"), "t.yaml:6:14: upstreams.b.fail_on: expected a list, got a value"},
    {UP(SRV "    fail_on:\n"), "t.yaml:6:13: upstreams.b.fail_on: missing value (expected a list)"},
    {UP(SRV "    fail_on: [error, error]\n"), "t.yaml:6:22: upstreams.b.fail_on[1]: 'error' is listed twice"},
    {UP(SRV "    fail_on: [timeout, 502, 502]\n"), "t.yaml:6:29: upstreams.b.fail_on[2]: 502 is listed twice"},
    {UP(SRV "    fail_on: [5xx, 502]\n"), "t.yaml:6:20: upstreams.b.fail_on[1]: 502 is already included in 5xx"},
    {UP(SRV "    fail_on: [503, 5xx]\n"),
     "t.yaml:6:20: upstreams.b.fail_on[1]: 5xx includes 503, listed before; keep one of them"},
    {UP(SRV "    fail_on: [5xx, 5xx]\n"), "t.yaml:6:20: upstreams.b.fail_on[1]: '5xx' is listed twice"},
    {UP(SRV "    fail_on: [404]\n"),
     "t.yaml:6:15: upstreams.b.fail_on[0]: 404 is not a 5xx status (expected 500..599)"},
    {UP(SRV "    fail_on: [5000]\n"),
     "t.yaml:6:15: upstreams.b.fail_on[0]: 5000 is not a 5xx status (expected 500..599)"},
    {UP(SRV "    fail_on: [http_502]\n"),
     "t.yaml:6:15: upstreams.b.fail_on[0]: unknown value 'http_502' (expected error, timeout, invalid_header, 5xx or a status "
     "from 500 to 599)"},
    {UP(SRV "    fail_on: [{error: 1}]\n"),
     "t.yaml:6:15: upstreams.b.fail_on[0]: expected a single value, got a mapping"},
    {UP(SRV "    fail_on: [~]\n"), "t.yaml:6:15: upstreams.b.fail_on[0]: missing value"},
    {UP(SRV "    retry: { on: [error, 4xx] }\n"),
     "t.yaml:6:26: upstreams.b.retry.on[1]: unknown value '4xx' (expected error, timeout, invalid_header, 5xx or a status from "
     "500 to 599)"},
};

static const err_case_t retry_cases[] = {
    {UP(SRV "    retry: { tries: 1, timeout: 0, on: [] }\n"), "ok"},
    {UP(SRV "    retry: {}\n"), "ok"},
    {UP(SRV "    retry: { tries: 0 }\n"), "t.yaml:6:21: upstreams.b.retry.tries: 0 is out of range (1..256)"},
    {UP(SRV "    retry: { tries: 257 }\n"), "t.yaml:6:21: upstreams.b.retry.tries: 257 is out of range (1..256)"},
    {UP(SRV "    retry: { timeout: 25h }\n"), "t.yaml:6:23: upstreams.b.retry.timeout: 25h is out of range (0ms..24h)"},
    {UP(SRV "    retry: { attempts: 2 }\n"),
     "t.yaml:6:14: unknown key 'attempts' in upstreams.b.retry (expected one of: tries, timeout, on)"},
    {UP(SRV "    retry: 3\n"), "t.yaml:6:12: upstreams.b.retry: expected a mapping, got a value"},
    {UP(SRV "    retry: { on: 502 }\n"), "t.yaml:6:18: upstreams.b.retry.on: expected a list, got a value"},
};

/* `health_check: { <keys> }`, opening at column 19 of line 6. */
#define HC(keys) UP(SRV "    health_check: { " keys " }\n")

static const err_case_t health_cases[] = {
    {UP(SRV "    health_check: {}\n"), "ok"},
    {HC("path: '/health?full=1', host: api.example.com:8443"), "ok"},
    {HC("expect_status: 204"), "ok"},
    {HC("expect_status: '200'"), "ok"},
    {HC("expect_status: 200-299, start_unhealthy: true"), "ok"},
    {HC("interval: 1s, timeout: 1s"), "ok"},
    {UP(SRV "    health_check:\n"), "t.yaml:6:18: upstreams.b.health_check: missing value (expected a mapping)"},
    {UP(SRV "    health_check: true\n"), "t.yaml:6:19: upstreams.b.health_check: expected a mapping, got a value"},
    {HC("url: /"),
     "t.yaml:6:21: unknown key 'url' in upstreams.b.health_check (expected one of: path, host, interval, timeout, "
     "healthy_threshold, unhealthy_threshold, expect_status, start_unhealthy)"},
    {HC("path: health"), "t.yaml:6:27: upstreams.b.health_check.path: 'health' must start with '/'"},
    {HC("path: '/a#b'"), "t.yaml:6:27: upstreams.b.health_check.path: '/a#b' must not contain a fragment ('#')"},
    {HC("path: '/a b'"),
     "t.yaml:6:27: upstreams.b.health_check.path: '/a b' must not contain spaces or control characters"},
    {HC("interval: 0"), "t.yaml:6:31: upstreams.b.health_check.interval: 0 is out of range (1ms..24h)"},
    {HC("interval: 5s, timeout: 10s"),
     "t.yaml:6:44: upstreams.b.health_check.timeout: 10s is longer than the interval (5s); a check must end before "
     "the next one starts"},
    {HC("timeout: 31s"),
     "t.yaml:6:30: upstreams.b.health_check.timeout: 31s is longer than the interval (30s); a check must end "
     "before the next one starts"},
    {HC("healthy_threshold: 0"), "t.yaml:6:40: upstreams.b.health_check.healthy_threshold: 0 is out of range (1..100)"},
    {HC("unhealthy_threshold: 101"),
     "t.yaml:6:42: upstreams.b.health_check.unhealthy_threshold: 101 is out of range (1..100)"},
    {HC("expect_status: 2xx"),
     "t.yaml:6:36: upstreams.b.health_check.expect_status: expected a status like 200 or a range like 200-399, got "
     "'2xx'"},
    {HC("expect_status: 200-"),
     "t.yaml:6:36: upstreams.b.health_check.expect_status: expected a status like 200 or a range like 200-399, got "
     "'200-'"},
    {HC("expect_status: 200 - 399"),
     "t.yaml:6:36: upstreams.b.health_check.expect_status: expected a status like 200 or a range like 200-399, got "
     "'200 - 399'"},
    {HC("expect_status: 1000"),
     "t.yaml:6:36: upstreams.b.health_check.expect_status: expected a status like 200 or a range like 200-399, got "
     "'1000'"},
    {HC("expect_status: 99"), "t.yaml:6:36: upstreams.b.health_check.expect_status: 99 is out of range (100..599)"},
    {HC("expect_status: 200-600"),
     "t.yaml:6:36: upstreams.b.health_check.expect_status: 200-600 is out of range (100..599)"},
    {HC("expect_status: 399-200"),
     "t.yaml:6:36: upstreams.b.health_check.expect_status: 399-200: the range is backwards; write the lower status "
     "first"},
    {HC("host: '*.example.com'"),
     "t.yaml:6:27: upstreams.b.health_check.host: '*.example.com' is not a valid host name (use letters, digits, "
     "'-' and '.')"},
    {HC("host: 'api.example.com:0'"),
     "t.yaml:6:27: upstreams.b.health_check.host: invalid port '0' in 'api.example.com:0' (expected 1..65535)"},
    {HC("host: 'a..b'"),
     "t.yaml:6:27: upstreams.b.health_check.host: 'a..b' is not a valid host name (empty or over-long label)"},
    {HC("start_unhealthy: no"),
     "t.yaml:6:38: upstreams.b.health_check.start_unhealthy: expected true or false, got 'no'"},
};

static const err_case_t process_cases[] = {
    {"workers: auto\n" MIN, "ok"},
    {"workers: Auto\n" MIN, "t.yaml:1:10: workers: expected 'auto' or a number of processes, got 'Auto'"},
    {"shutdown_delay: 1h\n" MIN, "ok"},
    {"shutdown_delay: 0s\n" MIN, "ok"},
    {"shutdown_delay: 1h1ms\n" MIN, "t.yaml:1:17: shutdown_delay: 1h1ms is out of range (0ms..1h)"},
    {"shutdown_delay: soon\n" MIN,
     "t.yaml:1:17: shutdown_delay: expected a duration like 500ms, 10s, 5m, 1h30m or 1d, got 'soon'"},
    {"shutdown_delay:\n" MIN, "t.yaml:1:16: shutdown_delay: missing value"},
    {"pid_file: fulcrum.pid\n" MIN, "ok"},
    {"pid_file: ''\n" MIN, "t.yaml:1:11: pid_file: must not be empty"},
    {"pid_file: ~\n" MIN, "t.yaml:1:11: pid_file: missing value"},
    {"pid_file: [a, b]\n" MIN, "t.yaml:1:11: pid_file: expected a single value, got a list"},
};

/* A listener whose health section (from column 40 of line 2) the case writes out. */
#define LH(health) "listeners:\n  - { address: 127.0.0.1:8080, health: " health " }\n" UPS ROUTE

static const err_case_t listener_health_cases[] = {
    {LH("{}"), "ok"},
    {LH("{ path: /healthz }"), "ok"},
    {LH("{ path: '/-/ready' }"), "ok"},
    {"listeners:\n  - address: 127.0.0.1:8080\n    health:\n      path: /up\n" UPS ROUTE, "ok"},
    {LH("{ path: healthz }"), "t.yaml:2:48: listeners[0].health.path: 'healthz' must start with '/'"},
    {LH("{ path: '/healthz?full=1' }"),
     "t.yaml:2:48: listeners[0].health.path: '/healthz?full=1' must not contain a query ('?') or fragment ('#'); "
     "the endpoint is matched by path only"},
    {LH("{ path: '/a#b' }"),
     "t.yaml:2:48: listeners[0].health.path: '/a#b' must not contain a query ('?') or fragment ('#'); the endpoint "
     "is matched by path only"},
    {LH("{ path: '/a b' }"),
     "t.yaml:2:48: listeners[0].health.path: '/a b' must not contain spaces or control characters"},
    {LH("{ path: ~ }"), "t.yaml:2:48: listeners[0].health.path: missing value"},
    {LH("{ url: /healthz }"), "t.yaml:2:42: unknown key 'url' in listeners[0].health (expected one of: path)"},
    {LH("/healthz"), "t.yaml:2:40: listeners[0].health: expected a mapping, got a value"},
    {LH("true"), "t.yaml:2:40: listeners[0].health: expected a mapping, got a value"},
    {"listeners:\n  - address: 127.0.0.1:8080\n    health:\n" UPS ROUTE,
     "t.yaml:3:12: listeners[0].health: missing value (expected a mapping)"},
};

/* A listener with metrics and status sections (from column 41 of line 2) the case writes out. */
#define LM(keys) "listeners:\n  - { address: 127.0.0.1:8080, " keys " }\n" UPS ROUTE

static const err_case_t listener_metrics_cases[] = {
    {LM("metrics: {}, status: {}"), "ok"},
    {LM("metrics: { path: /m }, status: { path: /s }, health: { path: /h }"), "ok"},
    {LM("metrics: { path: m }"), "t.yaml:2:49: listeners[0].metrics.path: 'm' must start with '/'"},
    {LM("status: { path: '/s?x' }"),
     "t.yaml:2:48: listeners[0].status.path: '/s?x' must not contain a query ('?') or fragment ('#'); the endpoint "
     "is matched by path only"},
    {LM("metrics: { url: /m }"), "t.yaml:2:43: unknown key 'url' in listeners[0].metrics (expected one of: path)"},
    {LM("metrics: true"), "t.yaml:2:41: listeners[0].metrics: expected a mapping, got a value"},
    {LM("health: { path: /x }, metrics: { path: /x }"),
     "t.yaml:2:71: listeners[0].metrics.path: '/x' is already the health path of this listener"},
    {LM("metrics: {}, status: { path: /metrics }"),
     "t.yaml:2:61: listeners[0].status.path: '/metrics' is already the metrics path of this listener"},
};

/* A route with `name: <v>` at column 26 of line 8. */
#define RN(v) LISTEN UPS "routes:\n  - { upstream: b, name: " v " }\n"

static const err_case_t route_name_cases[] = {
    {RN("api"), "ok"},
    {RN("api-v2.public_x"), "ok"},
    {RN("'/api'"),
     "t.yaml:8:26: routes[0].name: invalid route name '/api': use 1 to 64 letters, digits, '-', '_' and '.' (it is "
     "a metric label: never a path or a host)"},
    {RN("''"), "t.yaml:8:26: routes[0].name: invalid route name '': use 1 to 64 letters, digits, '-', '_' and '.' (it "
               "is a metric label: never a path or a host)"},
    {RN("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"),
     "t.yaml:8:26: routes[0].name: invalid route name 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa': "
     "use 1 to 64 letters, digits, '-', '_' and '.' (it is a metric label: never a path or a host)"},
    {RN("[a]"), "t.yaml:8:26: routes[0].name: expected a single value, got a list"},
};

/* `metrics: { <keys> }` at the top level, from column 12 of line 1. */
#define MB(keys) "metrics: { " keys " }\n" MIN

static const err_case_t metrics_cases[] = {
    {MB(""), "ok"},
    {MB("buckets: [0.005, 0.25, 2.5], max_series: 100"), "ok"},
    {MB("buckets: [1, 1]"), "t.yaml:1:25: metrics.buckets[1]: 1 is not above the bucket before it: bounds must increase"},
    {MB("buckets: [0.5, 0.1]"),
     "t.yaml:1:27: metrics.buckets[1]: 0.1 is not above the bucket before it: bounds must increase"},
    {MB("buckets: [10ms]"),
     "t.yaml:1:22: metrics.buckets[0]: expected a number of seconds from 0.000001 to 100000, got '10ms'"},
    {MB("buckets: [0]"), "t.yaml:1:22: metrics.buckets[0]: expected a number of seconds from 0.000001 to 100000, got '0'"},
    {MB("buckets: []"), "t.yaml:1:21: metrics.buckets: expected 1 to 16 bucket bounds, got 0"},
    {MB("buckets: [1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17]"),
     "t.yaml:1:21: metrics.buckets: expected 1 to 16 bucket bounds, got 17"},
    {MB("buckets: 1"), "t.yaml:1:21: metrics.buckets: expected a list, got a value"},
    {MB("max_series: 99"), "t.yaml:1:24: metrics.max_series: 99 is out of range (100..1000000)"},
    {MB("series: 1"),
     "t.yaml:1:12: unknown key 'series' in metrics (expected one of: buckets, max_series)"},
};

/* A route with `access_log: <v>` at column 32 of line 8. */
#define RA(v) LISTEN UPS "routes:\n  - { upstream: b, access_log: " v " }\n"

static const err_case_t route_access_log_cases[] = {
    {RA("off"), "ok"},
    {RA("on"), "ok"},
    {RA("false"), "ok"},
    {RA("TRUE"), "ok"},
    {RA("'off'"), "ok"},
    {RA("no"), "t.yaml:8:32: routes[0].access_log: expected on or off, got 'no'"},
    {RA("Off"), "t.yaml:8:32: routes[0].access_log: expected on or off, got 'Off'"},
    {RA("/var/log/a.log"), "t.yaml:8:32: routes[0].access_log: expected on or off, got '/var/log/a.log'"},
    {RA("0"), "t.yaml:8:32: routes[0].access_log: expected on or off, got '0'"},
    {RA("~"), "t.yaml:8:32: routes[0].access_log: missing value"},
    {RA("[off]"), "t.yaml:8:32: routes[0].access_log: expected a single value, got a list"},
};

static void test_process_keys(void)
{
    fc_err_t err;
    fc_config_t *cfg;

    CHECK_ERRORS("process: workers, shutdown_delay, pid_file", process_cases);

    CHECK_ERRORS("process: a listener's health endpoint", listener_health_cases);

    CHECK_ERRORS("process: access_log on a route", route_access_log_cases);

    CHECK_ERRORS("metrics: a listener's metrics and status endpoints", listener_metrics_cases);

    CHECK_ERRORS("metrics: a route's name", route_name_cases);

    CHECK_ERRORS("metrics: buckets and max_series", metrics_cases);

    subtest("metrics: a route's name defaults to its upstream's; buckets are kept in ns");
    cfg = load(LISTEN UPS "routes:\n  - { path: /a, upstream: b, name: api }\n  - { path: /b, upstream: b }\n"
                          "metrics: { buckets: [0.005, 2.5] }\n",
               &err);
    ok(cfg != NULL);
    if (cfg != NULL) {
        is_str(cfg->routes[0].name, "api");
        is_str(cfg->routes[1].name, "b");
        is_int(cfg->metrics.nbuckets, 2);
        is_int(cfg->metrics.bucket_ns[0], 5000000);
        is_int(cfg->metrics.bucket_ns[1], 2500000000);
        is_int(cfg->metrics.max_series, 10000);
        fc_config_free(cfg);
    }

    subtest("process: on and off, true and false read as 1 and 0");
    cfg = load(LISTEN UPS "routes:\n  - { path: /a, upstream: b, access_log: on }\n"
                          "  - { path: /b, upstream: b, access_log: false }\n"
                          "  - { path: /c, upstream: b, access_log: True }\n",
               &err);
    ok(cfg != NULL);
    if (cfg != NULL) {
        is_int(cfg->routes[0].access_log, 1);
        is_int(cfg->routes[1].access_log, 0);
        is_int(cfg->routes[2].access_log, 1);
    }
    fc_config_free(cfg);

    subtest("process: a relative pid_file is kept as written");
    cfg = load("pid_file: run/fulcrum.pid\n" MIN, &err);
    ok(cfg != NULL);
    if (cfg != NULL) is_str(cfg->pid_file, "run/fulcrum.pid");
    fc_config_free(cfg);
}

static void test_balancing_errors(void)
{
    CHECK_ERRORS("balancing: policy names and options", balance_cases);

    subtest("balancing: an unknown policy in the mapping form lists the known ones");
    {
        char want[300];
        snprintf(want, sizeof(want), "t.yaml:5:16: upstreams.b.balance: unknown balancing policy 'fastest' (known: %s)",
                 fc_balance_names());
        is_str(err_of(UP("    balance: { fastest: {} }\n" SRV)), want);
    }

    CHECK_ERRORS("balancing: hash key templates", hash_key_cases);

    CHECK_ERRORS("balancing: server options and the servers they allow", server_option_cases);

    CHECK_ERRORS("balancing: fail_on and retry.on lists", fail_set_cases);

    CHECK_ERRORS("balancing: retry", retry_cases);

    CHECK_ERRORS("balancing: health_check", health_cases);
}

static int fail_set_is(const fc_fail_set_t *fs, int error, int timeout, const char *statuses)
{
    char got[400] = "";
    size_t len = 0;
    for (int s = 0; s < 100; s++)
        if (fs->status[s]) len += (size_t)snprintf(got + len, sizeof(got) - len, "%s%d", len ? "," : "", 500 + s);
    return fs->error == error && fs->timeout == timeout && strcmp(got, statuses) == 0;
}

static const char BALANCED[] = LISTEN "upstreams:\n"
                                      "  backend:\n"
                                      "    balance: { random: { two: true } }\n"
                                      "    servers:\n"
                                      "      - address: 127.0.0.1:3000\n"
                                      "        weight: 3\n"
                                      "        max_conns: 100\n"
                                      "        max_fails: 0\n"
                                      "        fail_timeout: 30s\n"
                                      "        slow_start: 1m\n"
                                      "      - { address: 127.0.0.1:3001, backup: true }\n"
                                      "      - { address: 127.0.0.1:3002, down: True }\n"
                                      "    fail_on: [error, 5xx]\n"
                                      "    health_check:\n"
                                      "      path: /ready?deep=1\n"
                                      "      host: api.example.com\n"
                                      "      interval: 2s\n"
                                      "      timeout: 500ms\n"
                                      "      healthy_threshold: 1\n"
                                      "      unhealthy_threshold: 100\n"
                                      "      expect_status: 204\n"
                                      "      start_unhealthy: true\n"
                                      "    retry:\n"
                                      "      tries: 256\n"
                                      "      timeout: 10s\n"
                                      "      on: [timeout, 502, 504]\n"
                                      "  sticky:\n"
                                      "    balance:\n"
                                      "      hash:\n"
                                      "        key: \"$cookie_session|$http_x-user-id\"\n"
                                      "    servers: [{ address: 127.0.0.1:4000 }]\n"
                                      "    health_check: { interval: 1s }\n"
                                      "    retry: { on: [] }\n"
                                      "routes:\n  - upstream: backend\n";

static void test_balancing_values(void)
{
    fc_err_t err;
    char msg[512];
    fc_config_t *cfg = load(BALANCED, &err);

    subtest("balancing: every key set");
    if (cfg == NULL) {
        fc_err_format(&err, msg, sizeof(msg));
        is_str(msg, "ok");
        return;
    }
    const fc_upstream_conf_t *be = &cfg->upstreams[0], *st = &cfg->upstreams[1];
    is_str(be->balance, "random");
    is_int(be->balance_two, 1);
    ok(be->hash_key == NULL);
    const fc_server_conf_t *s0 = &be->servers[0], *s1 = &be->servers[1], *s2 = &be->servers[2];
    is_int(s0->weight, 3);
    is_int(s0->max_conns, 100);
    is_int(s0->max_fails, 0);
    is_int(s0->fail_timeout, 30000);
    is_int(s0->slow_start, 60000);
    is_int(s0->backup, 0);
    is_int(s0->down, 0);
    is_int(s1->backup, 1);
    is_int(s1->down, 0);
    is_int(s1->max_fails, 1);
    is_int(s1->fail_timeout, 10000);
    is_int(s2->down, 1);
    is_int(s2->backup, 0);
    ok(fail_set_is(&be->fail_on, 1, 0, "500,501,502,503,504,505,506,507,508,509,510,511,512,513,514,515,516,517,"
                                       "518,519,520,521,522,523,524,525,526,527,528,529,530,531,532,533,534,535,536,"
                                       "537,538,539,540,541,542,543,544,545,546,547,548,549,550,551,552,553,554,555,"
                                       "556,557,558,559,560,561,562,563,564,565,566,567,568,569,570,571,572,573,574,"
                                       "575,576,577,578,579,580,581,582,583,584,585,586,587,588,589,590,591,592,593,"
                                       "594,595,596,597,598,599"));
    const fc_health_conf_t *h = &be->health;
    is_int(h->enabled, 1);
    is_str(h->path, "/ready?deep=1");
    is_str(h->host, "api.example.com");
    is_int(h->interval, 2000);
    is_int(h->timeout, 500);
    is_int(h->healthy_threshold, 1);
    is_int(h->unhealthy_threshold, 100);
    is_int(h->expect_min, 204);
    is_int(h->expect_max, 204);
    is_int(h->start_unhealthy, 1);
    is_int(be->retry.tries, 256);
    is_int(be->retry.timeout, 10000);
    ok(fail_set_is(&be->retry.on, 0, 1, "502,504"));

    subtest("balancing: hash, a short interval and an empty retry list");
    is_str(st->balance, "hash");
    is_str(st->hash_key, "$cookie_session|$http_x-user-id");
    is_int(st->balance_two, 0);
    is_int(st->health.enabled, 1);
    is_str(st->health.path, "/health");
    ok(st->health.host == NULL);
    is_int(st->health.interval, 1000);
    is_int(st->health.timeout, 1000); /* the 5s default would outlast the interval */
    is_int(st->health.expect_min, 200);
    is_int(st->health.expect_max, 399);
    ok(fail_set_is(&st->fail_on, 1, 1, ""));
    ok(fail_set_is(&st->retry.on, 0, 0, ""));
    is_int(st->retry.tries, 3);
    fc_config_free(cfg);
}

static void test_yaml_tree(void)
{
    fc_yaml_doc_t *doc = NULL;
    fc_err_t err;
    const char *text = "# comment\n"
                       "a: 1   # trailing comment\n"
                       "b:\n"
                       "  - x\n"
                       "  - 'q'\n"
                       "c: { connect: 5s, read: \"\" }\n"
                       "d:\n"
                       "e: ~\n";

    subtest("yaml: tree shape and positions");
    is_int(fc_yaml_parse(NAME, text, strlen(text), &doc, &err), 0);
    if (doc == NULL) return;
    const fc_yaml_node_t *root = doc->root;
    is_int(root->kind, FC_YAML_MAPPING);
    is_int(root->map.n, 5);
    is_int(root->line, 2);
    is_int(root->column, 1);
    const fc_yaml_node_t *a = fc_yaml_map_get(root, "a");
    is_int(a->kind, FC_YAML_SCALAR);
    is_str(a->scalar.text, "1");
    is_int(a->line, 2);
    is_int(a->column, 4);
    is_int(root->map.pairs[0].key->line, 2);
    is_int(root->map.pairs[0].key->column, 1);
    const fc_yaml_node_t *b = fc_yaml_map_get(root, "b");
    is_int(b->kind, FC_YAML_SEQUENCE);
    is_int(b->seq.n, 2);
    is_int(b->line, 4);
    is_int(b->column, 3);
    is_str(b->seq.items[1]->scalar.text, "q");
    is_int(b->seq.items[1]->line, 5);
    is_int(b->seq.items[1]->column, 5);
    is_int(b->seq.items[0]->scalar.plain, 1);
    is_int(b->seq.items[1]->scalar.plain, 0);

    subtest("yaml: flow style");
    const fc_yaml_node_t *c = fc_yaml_map_get(root, "c");
    is_int(c->kind, FC_YAML_MAPPING);
    is_int(c->line, 6);
    is_int(c->column, 4);
    is_str(fc_yaml_map_get(c, "connect")->scalar.text, "5s");
    is_int(fc_yaml_map_get(c, "connect")->column, 15);
    is_int(fc_yaml_map_get(c, "read")->scalar.len, 0);

    subtest("yaml: nulls");
    ok(fc_yaml_is_null(fc_yaml_map_get(root, "d")));
    ok(fc_yaml_is_null(fc_yaml_map_get(root, "e")));
    ok(!fc_yaml_is_null(fc_yaml_map_get(c, "read"))); /* "" is quoted: an empty string, not null */
    ok(!fc_yaml_is_null(a));
    ok(!fc_yaml_is_null(b));
    ok(fc_yaml_map_get(root, "zz") == NULL);
    ok(fc_yaml_map_get(a, "a") == NULL);
    is_str(fc_yaml_kind_name(FC_YAML_SEQUENCE), "a list");
    fc_yaml_free(doc);
    fc_yaml_free(NULL);

    subtest("yaml: empty document");
    doc = NULL;
    is_int(fc_yaml_parse(NAME, "# only a comment\n", 17, &doc, &err), 0);
    ok(doc != NULL && doc->root == NULL);
    fc_yaml_free(doc);

    subtest("yaml: a large document spans several arena chunks");
    {
        size_t cap = 200000, len = 0;
        char *big = malloc(cap);
        for (int i = 0; i < 5000; i++) len += (size_t)snprintf(big + len, cap - len, "key%d: value number %d\n", i, i);
        doc = NULL;
        is_int(fc_yaml_parse(NAME, big, len, &doc, &err), 0);
        if (doc != NULL) {
            is_int(doc->root->map.n, 5000);
            is_str(fc_yaml_map_get(doc->root, "key4999")->scalar.text, "value number 4999");
            is_int(fc_yaml_map_get(doc->root, "key4999")->line, 5000);
        }
        fc_yaml_free(doc);
        free(big);
    }
}

static void test_yaml_errors(void)
{
    CHECK_ERRORS("yaml errors: libyaml problems with their position", yaml_syntax_cases);

    CHECK_ERRORS("yaml errors: features a config does not use", yaml_feature_cases);

    CHECK_ERRORS("yaml errors: duplicate keys, at every depth", duplicate_key_cases);
}

static void test_defaults(void)
{
    fc_err_t err;
    fc_config_t *cfg = load(MIN, &err);

    subtest("defaults: the smallest valid config");
    ok(cfg != NULL);
    if (cfg == NULL) return;
    is_str(cfg->file, NAME);
    ok(cfg->file != NAME);
    is_int(cfg->workers, 0);
    is_int(cfg->shutdown_timeout, 30000);
    is_int(cfg->shutdown_delay, 0);
    ok(cfg->pid_file == NULL);
    is_str(cfg->error_log, "stderr");
    is_str(cfg->error_log_level, "notice");
    is_str(cfg->access_log, "stdout");
    is_int(cfg->access_log_format, FC_LOG_FORMAT_JSON);

    is_int(cfg->nlisteners, 1);
    is_str(cfg->listeners[0].addr.text, "127.0.0.1:8080");
    is_int(cfg->listeners[0].addr.ss.ss_family, AF_INET);
    is_int(cfg->listeners[0].addr.len, sizeof(struct sockaddr_in));
    is_int(port_of(&cfg->listeners[0].addr), 8080);
    is_str(ip_of(&cfg->listeners[0].addr), "127.0.0.1");
    ok(cfg->listeners[0].health_path == NULL);
    ok(cfg->listeners[0].metrics_path == NULL);
    ok(cfg->listeners[0].status_path == NULL);

    is_int(cfg->nupstreams, 1);
    const fc_upstream_conf_t *u = &cfg->upstreams[0];
    is_str(u->name, "b");
    is_str(u->balance, "round_robin");
    is_int(u->keepalive, 32);
    is_int(u->keepalive_timeout, 60000);
    is_int(u->index, 0);
    is_int(u->nservers, 1);
    is_int(u->servers[0].weight, 1);
    is_int(port_of(&u->servers[0].addr), 3000);
    is_int(u->servers[0].backup, 0);
    is_int(u->servers[0].down, 0);
    is_int(u->servers[0].max_conns, 0);
    is_int(u->servers[0].max_fails, 1);
    is_int(u->servers[0].fail_timeout, 10000);
    is_int(u->servers[0].slow_start, 0);
    is_int(u->balance_two, 0);
    ok(u->hash_key == NULL);
    ok(fail_set_is(&u->fail_on, 1, 1, ""));
    is_int(u->health.enabled, 0);
    is_str(u->health.path, "/health");
    ok(u->health.host == NULL);
    is_int(u->health.interval, 30000);
    is_int(u->health.timeout, 5000);
    is_int(u->health.healthy_threshold, 2);
    is_int(u->health.unhealthy_threshold, 3);
    is_int(u->health.expect_min, 200);
    is_int(u->health.expect_max, 399);
    is_int(u->health.start_unhealthy, 0);
    is_int(u->retry.tries, 3);
    is_int(u->retry.timeout, 0);
    ok(fail_set_is(&u->retry.on, 1, 1, ""));

    is_int(cfg->nroutes, 1);
    const fc_route_conf_t *r = &cfg->routes[0];
    ok(r->host == NULL);
    is_str(r->path, "/");
    is_str(r->upstream_name, "b");
    ok(r->upstream == &cfg->upstreams[0]);
    is_int(r->connect_timeout, 5000);
    is_int(r->send_timeout, 60000);
    is_int(r->read_timeout, 60000);
    is_int(r->access_log, 1);
    is_str(r->name, "b");

    is_int(cfg->request_id, 1);
    is_int(cfg->metrics.nbuckets, 6);
    is_int(cfg->metrics.bucket_ns[0], 10000000);
    is_int(cfg->metrics.bucket_ns[5], 5000000000);
    is_int(cfg->metrics.max_series, 10000);

    is_int(cfg->limits.client_header_timeout, 10000);
    is_int(cfg->limits.client_body_timeout, 60000);
    is_int(cfg->limits.send_timeout, 60000);
    is_int(cfg->limits.keepalive_timeout, 75000);
    is_int(cfg->limits.max_header_size, 16384);
    is_int(cfg->limits.max_body_size, 10 * 1024 * 1024);
    is_int(cfg->limits.max_connections, 10000);

    ok(fc_config_upstream(cfg, "b") == &cfg->upstreams[0]);
    ok(fc_config_upstream(cfg, "nope") == NULL);
    fc_config_free(cfg);
    fc_config_free(NULL);

    subtest("defaults: a partial timeouts section and an empty limits section keep the other defaults");
    cfg = load(LISTEN UPS "routes:\n  - upstream: b\n    timeouts: { read: 2m }\nlimits: {}\n", &err);
    ok(cfg != NULL);
    if (cfg != NULL) {
        is_int(cfg->routes[0].connect_timeout, 5000);
        is_int(cfg->routes[0].send_timeout, 60000);
        is_int(cfg->routes[0].read_timeout, 120000);
        is_int(cfg->limits.max_header_size, 16384);
        is_int(cfg->limits.keepalive_timeout, 75000);
    }
    fc_config_free(cfg);
}

static const char FULL[] = "workers: 4\n"
                           "shutdown_timeout: 1m30s\n"
                           "shutdown_delay: 5s\n"
                           "pid_file: /run/fulcrum.pid\n"
                           "error_log: /var/log/fulcrum/error.log\n"
                           "error_log_level: debug\n"
                           "access_log: off\n"
                           "access_log_format: combined\n"
                           "listeners:\n"
                           "  - address: 0.0.0.0:8080\n"
                           "    health: { path: /ready }\n"
                           "  - address: '[::]:8080'\n"
                           "    health: {}\n"
                           "  - address: \"*:9090\"\n"
                           "upstreams:\n"
                           "  backend:\n"
                           "    balance: round_robin\n"
                           "    keepalive: 0\n"
                           "    keepalive_timeout: 500ms\n"
                           "    servers:\n"
                           "      - address: 127.0.0.1:3000\n"
                           "        weight: 3\n"
                           "      - address: localhost:3001\n"
                           "      - { address: '[::1]:3002', weight: 1000 }\n"
                           "  static.v2:\n"
                           "    keepalive: 100000\n"
                           "    servers: [{ address: 10.0.0.2:80 }]\n"
                           "routes:\n"
                           "  - host: API.Example.COM\n"
                           "    path: /v1/\n"
                           "    upstream: backend\n"
                           "    timeouts: { connect: 250ms, send: 1h, read: 24h }\n"
                           "  - host: '*.Example.com'\n"
                           "    upstream: static.v2\n"
                           "  - path: /static\n"
                           "    upstream: static.v2\n"
                           "    access_log: off\n"
                           "  - upstream: backend\n"
                           "limits:\n"
                           "  client_header_timeout: 1ms\n"
                           "  client_body_timeout: 2s\n"
                           "  send_timeout: 3m\n"
                           "  keepalive_timeout: 0\n"
                           "  max_header_size: 1m\n"
                           "  max_body_size: 0\n"
                           "  max_connections: 1000000\n";

static void test_full(void)
{
    fc_err_t err;
    fc_config_t *cfg = load(FULL, &err);

    subtest("full: every key set");
    if (cfg == NULL) {
        char msg[512];
        fc_err_format(&err, msg, sizeof(msg));
        is_str(msg, "ok");
        return;
    }
    is_int(cfg->workers, 4);
    is_int(cfg->shutdown_timeout, 90000);
    is_int(cfg->shutdown_delay, 5000);
    is_str(cfg->pid_file, "/run/fulcrum.pid");
    is_str(cfg->error_log, "/var/log/fulcrum/error.log");
    is_str(cfg->error_log_level, "debug");
    ok(cfg->access_log == NULL);
    is_int(cfg->access_log_format, FC_LOG_FORMAT_COMBINED);

    is_int(cfg->nlisteners, 3);
    is_str(ip_of(&cfg->listeners[0].addr), "0.0.0.0");
    is_int(cfg->listeners[1].addr.ss.ss_family, AF_INET6);
    is_int(cfg->listeners[1].addr.len, sizeof(struct sockaddr_in6));
    is_str(ip_of(&cfg->listeners[1].addr), "::");
    is_int(port_of(&cfg->listeners[1].addr), 8080);
    is_str(cfg->listeners[1].addr.text, "[::]:8080");
    is_str(ip_of(&cfg->listeners[2].addr), "0.0.0.0");
    is_int(port_of(&cfg->listeners[2].addr), 9090);
    is_str(cfg->listeners[2].addr.text, "*:9090");
    is_str(cfg->listeners[0].health_path, "/ready");
    is_str(cfg->listeners[1].health_path, "/healthz");
    ok(cfg->listeners[2].health_path == NULL);

    is_int(cfg->nupstreams, 2);
    const fc_upstream_conf_t *be = &cfg->upstreams[0], *st = &cfg->upstreams[1];
    is_str(be->name, "backend");
    is_int(be->keepalive, 0);
    is_int(be->keepalive_timeout, 500);
    is_int(be->nservers, 3);
    is_int(be->servers[0].weight, 3);
    is_int(be->servers[1].weight, 1);
    is_str(ip_of(&be->servers[1].addr), "127.0.0.1");
    is_str(be->servers[1].addr.text, "localhost:3001");
    is_int(be->servers[2].weight, 1000);
    is_str(ip_of(&be->servers[2].addr), "::1");
    is_str(st->name, "static.v2");
    is_int(st->index, 1);
    is_int(st->keepalive, 100000);
    is_int(st->nservers, 1);
    is_int(port_of(&st->servers[0].addr), 80);

    is_int(cfg->nroutes, 4);
    is_str(cfg->routes[0].host, "api.example.com");
    is_str(cfg->routes[0].path, "/v1/");
    ok(cfg->routes[0].upstream == be);
    is_int(cfg->routes[0].connect_timeout, 250);
    is_int(cfg->routes[0].send_timeout, 3600000);
    is_int(cfg->routes[0].read_timeout, 86400000);
    is_str(cfg->routes[1].host, "*.example.com");
    is_str(cfg->routes[1].path, "/");
    ok(cfg->routes[1].upstream == st);
    ok(cfg->routes[2].host == NULL);
    is_str(cfg->routes[2].path, "/static");
    is_int(cfg->routes[0].access_log, 1);
    is_int(cfg->routes[2].access_log, 0);
    ok(cfg->routes[3].upstream == be);
    ok(fc_config_upstream(cfg, "static.v2") == st);

    is_int(cfg->limits.client_header_timeout, 1);
    is_int(cfg->limits.client_body_timeout, 2000);
    is_int(cfg->limits.send_timeout, 180000);
    is_int(cfg->limits.keepalive_timeout, 0);
    is_int(cfg->limits.max_header_size, 1048576);
    is_int(cfg->limits.max_body_size, 0);
    is_int(cfg->limits.max_connections, 1000000);
    fc_config_free(cfg);

    CHECK_ERRORS("full: other accepted forms", accepted_cases);
}

static void test_structure_errors(void)
{
    CHECK_ERRORS("errors: empty and non-mapping documents", document_cases);

    CHECK_ERRORS("errors: unknown keys in every section", unknown_key_cases);

    CHECK_ERRORS("errors: missing required sections and keys", missing_key_cases);

    CHECK_ERRORS("errors: wrong node types", node_type_cases);

    CHECK_ERRORS("errors: missing values", missing_value_cases);
}

static void test_value_errors(void)
{
    CHECK_ERRORS("errors: workers", workers_cases);

    CHECK_ERRORS("errors: whole numbers", number_cases);

    CHECK_ERRORS("errors: durations", duration_cases);

    CHECK_ERRORS("errors: sizes", size_cases);

    CHECK_ERRORS("errors: words from a fixed list", choice_cases);

    subtest("errors: balancing policy");
    {
        char want[300];
        snprintf(want, sizeof(want), "t.yaml:5:14: upstreams.b.balance: unknown balancing policy 'fastest' (known: %s)",
                 fc_balance_names());
        is_str(err_of(LISTEN "upstreams:\n  b:\n    balance: fastest\n    servers: [{address: 127.0.0.1:1}]\n" ROUTE),
               want);
    }

    CHECK_ERRORS("errors: addresses", address_cases);

    CHECK_ERRORS("errors: duplicates that could never work", duplicate_entry_cases);

    CHECK_ERRORS("errors: routes", route_cases);

    CHECK_ERRORS("errors: upstream names", upstream_name_cases);
}

/* An upstream with <n> servers on distinct ports, as a config string the caller frees. */
static char *many_servers(int n)
{
    size_t cap = 64 + (size_t)n * 48 + 256, len = 0;
    char *s = malloc(cap);
    len += (size_t)snprintf(s + len, cap - len, "%s", LISTEN "upstreams:\n  b:\n    servers:\n");
    for (int i = 0; i < n; i++)
        len += (size_t)snprintf(s + len, cap - len, "      - address: 127.0.0.1:%d\n", 1000 + i);
    snprintf(s + len, cap - len, "%s", ROUTE);
    return s;
}

static void test_limits_on_counts(void)
{
    char *s;

    subtest("errors: at most FC_UPSTREAM_MAX_SERVERS servers");
    s = many_servers(FC_UPSTREAM_MAX_SERVERS);
    is_str(err_of(s), "ok");
    free(s);
    s = many_servers(FC_UPSTREAM_MAX_SERVERS + 1);
    is_str(err_of(s), "t.yaml:6:7: upstreams.b.servers: 257 entries listed, at most 256 are allowed");
    free(s);
}

/* Reads <path> whole into a NUL-terminated malloc'd string, or NULL. */
static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    long n;
    if (f == NULL) return NULL;
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0) {
        buf = malloc((size_t)n + 1);
        buf[fread(buf, 1, (size_t)n, f)] = '\0';
    }
    fclose(f);
    return buf;
}

/* The config embedded in conf/kubernetes.yaml: the block scalar under "  fulcrum.yaml: |", its
 * lines indented four spaces, ending at the first line indented less. NULL if absent; the
 * caller frees it. */
static char *kubernetes_config(void)
{
    static const char marker[] = "  fulcrum.yaml: |\n";
    char *text = slurp("conf/kubernetes.yaml"), *out, *p;
    size_t len = 0;
    if (text == NULL || (p = strstr(text, marker)) == NULL) {
        free(text);
        return NULL;
    }
    out = malloc(strlen(text) + 1);
    for (p += strlen(marker); *p == '\n' || strncmp(p, "    ", 4) == 0;) {
        char *eol = strchr(p, '\n');
        const char *line = *p == '\n' ? p : p + 4;
        size_t n = eol ? (size_t)(eol - line) + 1 : strlen(line);
        memcpy(out + len, line, n);
        len += n;
        if (eol == NULL) break;
        p = eol + 1;
    }
    out[len] = '\0';
    free(text);
    return out;
}

/* <text> with every <from> replaced by <to>; the caller frees it. */
static char *replace_all(const char *text, const char *from, const char *to)
{
    size_t fl = strlen(from), tl = strlen(to), n = 0;
    for (const char *p = text; (p = strstr(p, from)) != NULL; p += fl) n++;
    char *out = malloc(strlen(text) + n * (tl > fl ? tl - fl : 0) + 1), *o = out;
    for (const char *p = text;;) {
        const char *q = strstr(p, from);
        size_t k = q ? (size_t)(q - p) : strlen(p);
        memcpy(o, p, k);
        o += k;
        if (q == NULL) break;
        memcpy(o, to, tl);
        o += tl;
        p = q + fl;
    }
    *o = '\0';
    return out;
}

/* Every ```yaml block of docs/configuration.md must load, so the reference cannot drift. */
static void test_doc_examples(void)
{
    char *doc = slurp("docs/configuration.md");
    int blocks = 0;

    subtest("docs: the YAML examples in docs/configuration.md load");
    ok(doc != NULL);
    /* The examples name key files under /etc/fulcrum/: they are made for the test in a temporary
     * directory of the same path length's worth, and the paths rewritten to it. */
    char dir[] = "/tmp/fulcrum-docs-XXXXXX";
    ok(mkdtemp(dir) != NULL);
    static const char *const files[][2] = {{"api", "ec"}, {"api-rsa", "rsa"}, {"internal-ca", "ec"}};
    for (size_t i = 0; i < FC_ARRAY_LEN(files); i++) {
        char cert[128], key[128];
        snprintf(cert, sizeof(cert), "%s/%s.pem", dir, files[i][0]);
        snprintf(key, sizeof(key), "%s/%s.key", dir, files[i][0]);
        ok(test_make_cert(cert, key, files[i][1], "api.example.com", "DNS:api.example.com", 365) == 0);
    }
    for (char *p = doc; p != NULL && (p = strstr(p, "```yaml\n")) != NULL;) {
        char *start = p + 8, *end = strstr(start, "```");
        if (end == NULL) break;
        *end = '\0';
        char *text = replace_all(start, "/etc/fulcrum", dir);
        is_str(err_of(text), "ok");
        free(text);
        blocks++;
        p = end + 3;
    }
    ok(blocks >= 2);
    for (size_t i = 0; i < FC_ARRAY_LEN(files); i++) {
        char path[128];
        snprintf(path, sizeof(path), "%s/%s.pem", dir, files[i][0]);
        unlink(path);
        snprintf(path, sizeof(path), "%s/%s.key", dir, files[i][0]);
        unlink(path);
    }
    rmdir(dir);
    free(doc);
}

static void test_files(void)
{
    fc_err_t err;
    fc_config_t *cfg = NULL;
    char path[] = "/tmp/fulcrum-test-config-XXXXXX";
    char msg[512];

    subtest("files: a missing file names its path");
    is_int(fc_config_load("/nonexistent/fulcrum.yaml", &cfg, &err), -1);
    ok(cfg == NULL);
    fc_err_format(&err, msg, sizeof(msg));
    is_str(msg, "/nonexistent/fulcrum.yaml: cannot open: No such file or directory");

    subtest("files: errors point at the path argument");
    int fd = mkstemp(path);
    ok(fd >= 0);
    if (fd >= 0) {
        const char *text = MIN "limits:\n  max_body_size: lots\n";
        ok(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
        close(fd);
        is_int(fc_config_load(path, &cfg, &err), -1);
        ok(err.file == path);
        is_int(err.line, 10);
        is_int(err.column, 18);
        unlink(path);
    }

    subtest("files: the shipped configs load");
    cfg = NULL;
    is_int(fc_config_load("conf/fulcrum.yaml", &cfg, &err), 0);
    if (cfg == NULL) {
        fc_err_format(&err, msg, sizeof(msg));
        is_str(msg, "conf/fulcrum.yaml loads");
    }
    fc_config_free(cfg);
    cfg = NULL;
    is_int(fc_config_load("conf/demo.yaml", &cfg, &err), 0);
    if (cfg != NULL) {
        is_int(cfg->nlisteners, 1);
        is_str(cfg->listeners[0].addr.text, "0.0.0.0:8080");
        is_str(cfg->upstreams[0].name, "demo");
        is_int(cfg->upstreams[0].nservers, 2);
        is_str(cfg->upstreams[0].servers[1].addr.text, "127.0.0.1:3002");
        is_str(cfg->upstreams[0].balance, "round_robin");
        is_str(cfg->access_log, "stdout");
        is_int(cfg->access_log_format, FC_LOG_FORMAT_JSON);
        ok(cfg->routes[0].upstream == &cfg->upstreams[0]);
    } else {
        fc_err_format(&err, msg, sizeof(msg));
        is_str(msg, "conf/demo.yaml loads");
    }
    fc_config_free(cfg);

    subtest("files: the config in conf/kubernetes.yaml loads, with the delays its manifest assumes");
    char *k8s = kubernetes_config();
    ok(k8s != NULL);
    if (k8s != NULL) {
        /* Its names are the cluster's: looked up here with a resolver that fails at once (nothing
         * answers on port 1), so the test does not depend on this machine's DNS. */
        char *text = malloc(strlen(k8s) + 32);
        sprintf(text, "resolver: 127.0.0.1:1\n%s", k8s);
        cfg = load(text, &err);
        free(text);
        if (cfg != NULL) {
            is_str(cfg->listeners[0].health_path, "/healthz");
            is_int(cfg->shutdown_delay, 5000);
            is_int(cfg->shutdown_timeout, 30000);
            is_int(cfg->upstreams[0].nnames, 1);
            is_int(cfg->upstreams[0].names[0].resolve, 1);
            is_int(cfg->upstreams[0].nservers, 32);
        } else {
            fc_err_format(&err, msg, sizeof(msg));
            is_str(msg, "conf/kubernetes.yaml's fulcrum.yaml loads");
        }
        fc_config_free(cfg);
        free(k8s);
    }
}

/* Addresses fc_addr_parse rejects, with the message an operator sees. */
static const struct {
    const char *text;
    const char *msg;
} bad_addrs[] = {
    {"", "empty address (expected host:port, like 127.0.0.1:8080)"},
    {":8080", "missing host in ':8080' (write *:8080 to listen on every address)"},
    {"127.0.0.1", "missing port in '127.0.0.1' (expected host:port, like 127.0.0.1:8080)"},
    {"127.0.0.1:", "invalid port '' in '127.0.0.1:' (expected 1..65535)"},
    {"127.0.0.1:65536", "invalid port '65536' in '127.0.0.1:65536' (expected 1..65535)"},
    {"127.0.0.1:+80", "invalid port '+80' in '127.0.0.1:+80' (expected 1..65535)"},
    {"127.0.0.1:080000", "invalid port '080000' in '127.0.0.1:080000' (expected 1..65535)"},
    {"127.0.0.1:http", "invalid port 'http' in '127.0.0.1:http' (expected 1..65535)"},
    {"256.0.0.1:80", "'256.0.0.1' is not an IP address (only numeric addresses and localhost are accepted)"},
    {"::1:80", "'::1:80': write IPv6 addresses in brackets, like [::1]:8080"},
    {"[::1]", "missing port in '[::1]' (expected host:port, like 127.0.0.1:8080)"},
    {"[::1]80", "missing port in '[::1]80' (expected host:port, like 127.0.0.1:8080)"},
    {"[::1:80", "missing ']' in '[::1:80' (expected [address]:port)"},
    {"[1.2.3.4]:80", "'1.2.3.4' is not a valid IPv6 address"},
    {"0123456789012345678901234567890123456789012345678901234567890123:1",
     "address '0123456789012345678901234567890123456789...' is too long"},
};

static void test_addr_parse(void)
{
    fc_addr_t a;
    fc_err_t err;

    subtest("fc_addr_parse: accepted forms");
    is_int(fc_addr_parse("192.168.1.20:65535", &a, &err), 0);
    is_str(ip_of(&a), "192.168.1.20");
    is_int(port_of(&a), 65535);
    is_int(fc_addr_parse("[2001:db8::1]:443", &a, &err), 0);
    is_str(ip_of(&a), "2001:db8::1");
    is_int(port_of(&a), 443);
    is_str(a.text, "[2001:db8::1]:443");
    is_int(fc_addr_parse("*:1", &a, &err), 0);
    is_str(ip_of(&a), "0.0.0.0");
    is_int(fc_addr_parse("localhost:80", &a, &err), 0);
    is_str(ip_of(&a), "127.0.0.1");

    subtest("fc_addr_parse: rejected forms leave the output alone");
    for (size_t i = 0; i < FC_ARRAY_LEN(bad_addrs); i++) {
        memset(&a, 0x5a, sizeof(a));
        is_int(fc_addr_parse(bad_addrs[i].text, &a, &err), -1);
        is_str(err.msg, bad_addrs[i].msg);
        ok(err.file == NULL && err.line == 0);
        is_int(((unsigned char *)&a)[0], 0x5a);
    }
}

/* listeners[].tls, hsts, redirect_https and upstreams.<name>.tls, with real files. */
static void test_tls(void)
{
    char dir[] = "/tmp/fulcrum-tls-XXXXXX", yaml[2048], ec[64], eck[64], rsa[64], rsak[64], soon[64], soonk[64];
    ok(mkdtemp(dir) != NULL);
    snprintf(ec, sizeof(ec), "%s/ec.pem", dir);
    snprintf(eck, sizeof(eck), "%s/ec.key", dir);
    snprintf(rsa, sizeof(rsa), "%s/rsa.pem", dir);
    snprintf(rsak, sizeof(rsak), "%s/rsa.key", dir);
    snprintf(soon, sizeof(soon), "%s/soon.pem", dir);
    snprintf(soonk, sizeof(soonk), "%s/soon.key", dir);
    ok(test_make_cert(ec, eck, "ec", "a.test", "DNS:a.test,DNS:*.b.test", 365) == 0);
    ok(test_make_cert(rsa, rsak, "rsa", "a.test", "DNS:a.test,DNS:*.b.test", 365) == 0);
    ok(test_make_cert(soon, soonk, "ec", "soon.test", NULL, 5) == 0);
#define TLS_LISTEN(extra)                                                                              \
    "listeners:\n  - address: 127.0.0.1:8443\n    tls:\n      certificates:\n        - { cert: %s, key: %s }\n" extra \
    UPS ROUTE

    subtest("tls: a listener with a certificate loads, with the defaults");
    snprintf(yaml, sizeof(yaml), TLS_LISTEN(""), ec, eck);
    fc_err_t err;
    fc_config_t *cfg = load(yaml, &err);
    ok(cfg != NULL);
    if (cfg != NULL) {
        const fc_listen_tls_conf_t *t = cfg->listeners[0].tls;
        ok(t != NULL && t->ctx != NULL);
        is_int(t->npairs, 1);
        is_int(t->protocols, FC_TLS_V12 | FC_TLS_V13);
        is_str(t->groups, "X25519:P-256:P-384");
        is_int(t->session_tickets, 1);
        is_int(t->session_cache, 1);
        ok(t->client_ca == NULL);
        ok(cfg->warnings == NULL);
        is_int(cfg->limits.tls_handshake_timeout, 10000);
        fc_config_free(cfg);
    }

    subtest("tls: an ECDSA and an RSA pair for the same names load together");
    snprintf(yaml, sizeof(yaml), TLS_LISTEN("        - { cert: %s, key: %s }\n"), ec, eck, rsa, rsak);
    is_str(err_of(yaml), "ok");

    subtest("tls: a key that is not the certificate's is an error at the key");
    snprintf(yaml, sizeof(yaml), TLS_LISTEN(""), ec, rsak);
    char want[512];
    snprintf(want, sizeof(want),
             "t.yaml:5:%d: listeners[0].tls.certificates[0].key: the private key in %s does not match the certificate in %s",
             (int)(26 + strlen(ec)), rsak, ec);
    is_str(err_of(yaml), want);

    subtest("tls: a missing certificate file is an error at the cert");
    snprintf(yaml, sizeof(yaml), TLS_LISTEN(""), "/nonexistent/x.pem", eck);
    is_str(err_of(yaml), "t.yaml:5:19: listeners[0].tls.certificates[0].cert: cannot read a certificate from /nonexistent/x.pem (no such file)");

    subtest("tls: old protocols are refused by name");
    snprintf(yaml, sizeof(yaml), TLS_LISTEN("      protocols: [TLSv1.2, TLSv1.1]\n"), ec, eck);
    is_str(err_of(yaml), "t.yaml:6:28: listeners[0].tls.protocols: TLSv1.1 is refused: it is deprecated and unsafe (RFC 8996); use TLSv1.2 and TLSv1.3");
    snprintf(yaml, sizeof(yaml), TLS_LISTEN("      protocols: [TLSv1.4]\n"), ec, eck);
    is_str(err_of(yaml), "t.yaml:6:19: listeners[0].tls.protocols: unknown protocol 'TLSv1.4' (expected TLSv1.2 or TLSv1.3)");

    subtest("tls: a cipher list with nothing usable is an error at it");
    snprintf(yaml, sizeof(yaml), TLS_LISTEN("      ciphers: \"NOPE-CIPHER\"\n"), ec, eck);
    is_str(err_of(yaml), "t.yaml:6:16: listeners[0].tls.ciphers: no usable cipher in NOPE-CIPHER (no cipher match)");
    snprintf(yaml, sizeof(yaml), TLS_LISTEN("      groups: \"X25519:nope\"\n"), ec, eck);
    is_str(err_of(yaml), "t.yaml:6:15: listeners[0].tls.groups: an unknown group in X25519:nope (passed invalid argument)");

    subtest("tls: a certificate about to expire loads with a warning at its entry");
    snprintf(yaml, sizeof(yaml), TLS_LISTEN(""), soon, soonk);
    cfg = load(yaml, &err);
    ok(cfg != NULL);
    if (cfg != NULL) {
        static const char w[] = "t.yaml:5:19: listeners[0].tls.certificates[0].cert: warning: certificate "
                                "/CN=soon.test expires in ";
        ok(cfg->warnings != NULL && strncmp(cfg->warnings, w, sizeof(w) - 1) == 0);
        fc_config_free(cfg);
    }

    subtest("tls: hsts only with tls, redirect_https only without");
    snprintf(yaml, sizeof(yaml), TLS_LISTEN("    hsts: { max_age: 2y, include_subdomains: true }\n"), ec, eck);
    cfg = load(yaml, &err);
    ok(cfg != NULL);
    if (cfg != NULL) {
        is_int(cfg->listeners[0].hsts, 1);
        ok(cfg->listeners[0].hsts_max_age == UINT64_C(63072000000));
        is_int(cfg->listeners[0].hsts_subdomains, 1);
        fc_config_free(cfg);
    }
    is_str(err_of("listeners:\n  - address: 127.0.0.1:8080\n    hsts: {}\n" UPS ROUTE),
           "t.yaml:3:11: listeners[0].hsts: only a listener with 'tls' can send HSTS (browsers ignore it over plain HTTP)");
    snprintf(yaml, sizeof(yaml), TLS_LISTEN("    redirect_https: true\n"), ec, eck);
    is_str(err_of(yaml), "t.yaml:6:21: listeners[0].redirect_https: a listener with 'tls' cannot redirect to https: it is https already");
    cfg = load("listeners:\n  - address: 127.0.0.1:8080\n    redirect_https: { port: 8443 }\n" UPS ROUTE, &err);
    ok(cfg != NULL);
    if (cfg != NULL) {
        is_int(cfg->listeners[0].redirect_https, 1);
        is_int(cfg->listeners[0].redirect_port, 8443);
        fc_config_free(cfg);
    }

    subtest("tls: upstream tls verifies by default against the system CAs, or the given one");
    snprintf(yaml, sizeof(yaml), LISTEN "upstreams:\n  b:\n    tls: { ca: %s, sni: a.test }\n    servers:\n      - address: 127.0.0.1:3000\n" ROUTE, ec);
    cfg = load(yaml, &err);
    ok(cfg != NULL);
    if (cfg != NULL) {
        const fc_upstream_tls_conf_t *t = cfg->upstreams[0].tls;
        ok(t != NULL && t->ctx != NULL && t->verify == 1);
        is_str(t->sni, "a.test");
        fc_config_free(cfg);
    }
    is_str(err_of(LISTEN "upstreams:\n  b:\n    tls: { ca: /nonexistent/ca.pem }\n    servers:\n      - address: 127.0.0.1:3000\n" ROUTE),
           "t.yaml:5:16: upstreams.b.tls.ca: cannot load CAs from /nonexistent/ca.pem (system lib)");
    is_str(err_of(LISTEN "upstreams:\n  b:\n    tls: { key: /x.key }\n    servers:\n      - address: 127.0.0.1:3000\n" ROUTE),
           "t.yaml:5:17: upstreams.b.tls.key: a key needs its 'cert'");
#undef TLS_LISTEN
    const char *made[] = {ec, eck, rsa, rsak, soon, soonk};
    for (size_t i = 0; i < FC_ARRAY_LEN(made); i++) unlink(made[i]);
    rmdir(dir);
}

/* routes[].upgrade and timeouts.tunnel */
static void test_upgrade_config(void)
{
    fc_err_t err;
    subtest("upgrade: websocket by default, off, a list; the tunnel timeout");
    fc_config_t *cfg = load(MIN, &err);
    ok(cfg != NULL);
    if (cfg != NULL) {
        ok(cfg->routes[0].upgrade != NULL && memcmp(cfg->routes[0].upgrade, "websocket\0\0", 11) == 0);
        ok(cfg->routes[0].tunnel_timeout == 3600000);
        fc_config_free(cfg);
    }
    cfg = load(LISTEN UPS "routes:\n  - upstream: b\n    upgrade: off\n    timeouts: { tunnel: 10m }\n", &err);
    ok(cfg != NULL);
    if (cfg != NULL) {
        ok(cfg->routes[0].upgrade == NULL);
        ok(cfg->routes[0].tunnel_timeout == 600000);
        fc_config_free(cfg);
    }
    cfg = load(LISTEN UPS "routes:\n  - upstream: b\n    upgrade: [WebSocket, x-echo]\n", &err);
    ok(cfg != NULL);
    if (cfg != NULL) {
        ok(memcmp(cfg->routes[0].upgrade, "websocket\0x-echo\0\0", 18) == 0);
        fc_config_free(cfg);
    }
    is_str(err_of(LISTEN UPS "routes:\n  - upstream: b\n    upgrade: [h2c]\n"),
           "t.yaml:9:15: routes[0].upgrade: h2c is refused: fulcrum speaks HTTP/1.1 to servers, and a tunnel it cannot read could smuggle requests");
    is_str(err_of(LISTEN UPS "routes:\n  - upstream: b\n    upgrade: [\"web socket\"]\n"),
           "t.yaml:9:15: routes[0].upgrade: 'web socket' is not a protocol name (a token, like websocket)");
    is_str(err_of(LISTEN UPS "routes:\n  - upstream: b\n    upgrade: yes\n"),
           "t.yaml:9:14: routes[0].upgrade: expected a list of protocols like [websocket], or off, got 'yes'");
}

/* upstreams.<name>.sticky */
static void test_sticky_config(void)
{
    fc_err_t err;
    subtest("sticky: a cookie with its defaults, and its errors");
    fc_config_t *cfg = load(LISTEN "upstreams:\n  b:\n    sticky: { cookie: fsrv }\n    servers:\n      - address: 127.0.0.1:3000\n" ROUTE, &err);
    ok(cfg != NULL);
    if (cfg != NULL) {
        const fc_sticky_conf_t *st = &cfg->upstreams[0].sticky;
        is_str(st->cookie, "fsrv");
        ok(st->max_age == 0);
        is_int(st->secure, 2);
        is_int(st->http_only, 1);
        is_str(st->same_site, "Lax");
        fc_config_free(cfg);
    }
    cfg = load(LISTEN "upstreams:\n  b:\n    sticky: { cookie: s, max_age: 1d, secure: true, http_only: false, same_site: off }\n    servers:\n      - address: 127.0.0.1:3000\n" ROUTE, &err);
    ok(cfg != NULL);
    if (cfg != NULL) {
        const fc_sticky_conf_t *st = &cfg->upstreams[0].sticky;
        ok(st->max_age == 86400000);
        is_int(st->secure, 1);
        is_int(st->http_only, 0);
        ok(st->same_site == NULL);
        fc_config_free(cfg);
    }
    is_str(err_of(LISTEN "upstreams:\n  b:\n    sticky: { cookie: \"a b\" }\n    servers:\n      - address: 127.0.0.1:3000\n" ROUTE),
           "t.yaml:5:23: upstreams.b.sticky.cookie: 'a b' is not a cookie name (1 to 64 token characters)");
    is_str(err_of(LISTEN "upstreams:\n  b:\n    sticky: { max_age: 1h }\n    servers:\n      - address: 127.0.0.1:3000\n" ROUTE),
           "t.yaml:5:13: upstreams.b.sticky: give either 'cookie' (a cookie fulcrum sets) or 'learn' (the application's cookie), not neither");
    is_str(err_of(LISTEN "upstreams:\n  b:\n    sticky: { cookie: a, learn: b }\n    servers:\n      - address: 127.0.0.1:3000\n" ROUTE),
           "t.yaml:5:13: upstreams.b.sticky: give either 'cookie' (a cookie fulcrum sets) or 'learn' (the application's cookie), not both");
    cfg = load(LISTEN "upstreams:\n  b:\n    sticky: { learn: io }\n    servers:\n      - address: 127.0.0.1:3000\n" ROUTE, &err);
    ok(cfg != NULL && cfg->upstreams[0].sticky.cookie == NULL && strcmp(cfg->upstreams[0].sticky.learn, "io") == 0 &&
       cfg->upstreams[0].sticky.learn_timeout == 3600000);
    fc_config_free(cfg);
}

/* rate_limits and routes[].rate_limit */
static void test_rate_limit_config(void)
{
    fc_err_t err;
    subtest("rate limits: policies, rates, their use by routes");
    fc_config_t *cfg = load(LISTEN UPS "rate_limits:\n  a: { key: \"$remote_addr\", rate: 600/m, burst: 5 }\n  b: { key: \"$http_x_k:$cookie_s\", rate: 2/s, dry_run: true }\nroutes:\n  - upstream: b\n    rate_limit: [a, b]\n", &err);
    ok(cfg != NULL);
    if (cfg != NULL) {
        is_int(cfg->nrate_limits, 2);
        ok(cfg->rate_limits[0].rate == 600 && cfg->rate_limits[0].per == 60000 && cfg->rate_limits[0].burst == 5);
        is_int(cfg->rate_limits[0].status, 429);
        is_int(cfg->rate_limits[0].headers, 1);
        is_int(cfg->rate_limits[1].dry_run, 1);
        is_int(cfg->routes[0].nrate_limits, 2);
        ok(cfg->routes[0].rate_limits[1] == &cfg->rate_limits[1]);
        fc_config_free(cfg);
    }
    is_str(err_of(LISTEN UPS "rate_limits:\n  a: { key: \"$remote_addr\", rate: 10/d }\n" ROUTE),
           "t.yaml:8:35: rate_limits.a.rate: expected a rate like 10/s, 600/m or 5/h, got '10/d'");
    is_str(err_of(LISTEN UPS "rate_limits:\n  a: { key: \"fixed\", rate: 10/s }\n" ROUTE),
           "t.yaml:8:13: rate_limits.a.key: 'fixed' has no variable, so every request would share one bucket (known: $request_uri, $remote_addr, $http_NAME, $cookie_NAME)");
    is_str(err_of(LISTEN UPS "rate_limits:\n  a: { key: \"$remote_addr\" }\n" ROUTE),
           "t.yaml:8:6: missing required key 'rate' in rate_limits.a");
    is_str(err_of(LISTEN UPS "routes:\n  - upstream: b\n    rate_limit: x\n"),
           "t.yaml:9:17: routes[0].rate_limit: unknown rate limit 'x' (defined: none)");

    subtest("rate limits: delay, max_delay, max_keys, store");
    cfg = load(LISTEN UPS "rate_limits:\n  a: { key: \"$remote_addr\", rate: 10/s }\n"
                          "  b: { key: \"$remote_addr\", rate: 10/s, delay: all, max_delay: 2s, max_keys: 100,\n"
                          "       store: { redis: \"127.0.0.1:6380\", on_error: deny, sync: 50ms, timeout: 200ms } }\n"
                          "  c: { key: \"$remote_addr\", rate: 10/s, delay: 3, store: { redis: \"[::1]:6379\" } }\n" ROUTE, &err);
    ok(cfg != NULL);
    if (cfg != NULL) {
        const fc_rate_limit_conf_t *a = &cfg->rate_limits[0], *b = &cfg->rate_limits[1], *c = &cfg->rate_limits[2];
        ok(a->delay == 0 && a->max_delay == 30000 && a->max_keys == 65536 && a->store == NULL);
        ok(b->delay == FC_RATE_DELAY_ALL && b->max_delay == 2000 && b->max_keys == 100 && b->store != NULL);
        if (b->store != NULL) {
            is_str(b->store->redis.text, "127.0.0.1:6380");
            ok(b->store->on_error == FC_RATE_DENY && b->store->sync == 50 && b->store->timeout == 200);
        }
        ok(c->delay == 3 && c->store != NULL);
        if (c->store != NULL) ok(c->store->on_error == FC_RATE_ALLOW && c->store->sync == 100 && c->store->timeout == 1000);
        fc_config_free(cfg);
    }
    is_str(err_of(LISTEN UPS "rate_limits:\n  a: { key: \"$remote_addr\", rate: 10/s, delay: -1 }\n" ROUTE),
           "t.yaml:8:48: rate_limits.a.delay: -1 is out of range (0..100000)");
    is_str(err_of(LISTEN UPS "rate_limits:\n  a: { key: \"$remote_addr\", rate: 10/s, store: { on_error: allow } }\n" ROUTE),
           "t.yaml:8:48: missing required key 'redis' in rate_limits.a.store");
    is_str(err_of(LISTEN UPS "rate_limits:\n  a: { key: \"$remote_addr\", rate: 10/s, store: { redis: \"127.0.0.1:6379\", on_error: maybe } }\n" ROUTE),
           "t.yaml:8:85: rate_limits.a.store.on_error: unknown value 'maybe' (expected one of: allow, deny)");
}

static void test_queue_config(void)
{
    fc_err_t err;
    subtest("queue: none by default; max and timeout; client_body_min_rate");
    fc_config_t *cfg = load(MIN, &err);
    ok(cfg != NULL);
    if (cfg != NULL) {
        is_int(cfg->upstreams[0].queue.max, 0);
        is_int(cfg->upstreams[0].queue.timeout, 5000);
        is_int(cfg->limits.client_body_min_rate, 0);
        is_int(cfg->limits.client_body_min_rate_after, 10000);
        fc_config_free(cfg);
    }
    cfg = load(LISTEN UPS "    queue: { max: 100, timeout: 1500ms }\n" ROUTE
                          "limits:\n  client_body_min_rate: 1k/s\n  client_body_min_rate_after: 2s\n", &err);
    ok(cfg != NULL);
    if (cfg != NULL) {
        is_int(cfg->upstreams[0].queue.max, 100);
        is_int(cfg->upstreams[0].queue.timeout, 1500);
        is_int(cfg->limits.client_body_min_rate, 1024);
        is_int(cfg->limits.client_body_min_rate_after, 2000);
        fc_config_free(cfg);
    }
    is_str(err_of(LISTEN UPS "    queue: { max: 5000 }\n" ROUTE),
           "t.yaml:7:19: upstreams.b.queue.max: 5000 is out of range (0..4096)");
    is_str(err_of(LISTEN UPS "    queue: { size: 5 }\n" ROUTE),
           "t.yaml:7:14: unknown key 'size' in upstreams.b.queue (expected one of: max, timeout)");
    is_str(err_of(MIN "limits:\n  client_body_min_rate: fast\n"),
           "t.yaml:10:25: limits.client_body_min_rate: expected a rate like 1k/s or 500/s, got 'fast'");
}

/* Servers written as host names, and `resolver`. Nothing answers on 127.0.0.1:1, so a lookup
 * fails at once (port unreachable) and no test here depends on a DNS server. */
#define NOWHERE "resolver: 127.0.0.1:1\n"
#define NAMED(keys, server) LISTEN "upstreams:\n  b:\n" keys "    servers:\n      - address: " server "\n" ROUTE
static void test_names(void)
{
    static const err_case_t cases[] = {
        {NOWHERE NAMED("", "app.test:3000"),
         "t.yaml:7:18: upstreams.b.servers[0].address: cannot resolve 'app.test': Could not contact DNS servers "
         "(with resolve: true it would be looked up again while serving)"},
        {NOWHERE NAMED("    resolve: true\n", "app.test:3000"), "ok"},
        {NOWHERE NAMED("    resolve: true\n", "app.test.:3000"), "ok"},
        {NAMED("", "app..test:3000"),
         "t.yaml:6:18: upstreams.b.servers[0].address: 'app..test:3000' is not a valid host name (empty or over-long label)"},
        {NAMED("", "app.test:99999"),
         "t.yaml:6:18: upstreams.b.servers[0].address: invalid port '99999' in 'app.test:99999' (expected 1..65535)"},
        {NAMED("", "app.test"),
         "t.yaml:6:18: upstreams.b.servers[0].address: missing port in 'app.test' (expected host:port, like "
         "127.0.0.1:8080)"},
        {NAMED("", "a123456789a123456789a123456789a123456789a123456789a123456789.x:3000"),
         "t.yaml:6:18: upstreams.b.servers[0].address: 'a123456789a123456789a123456789a123456789a123456789a123456789.x:3000' "
         "is too long: a host name and its port take 63 characters at most"},
        {NAMED("    resolve: yes\n", "app.test:3000"),
         "t.yaml:5:14: upstreams.b.resolve: expected true or false, got 'yes'"},
        {NAMED("    resolve_interval: 100ms\n", "app.test:3000"),
         "t.yaml:5:23: upstreams.b.resolve_interval: 100ms is out of range (1s..24h)"},
        {NAMED("    max_addresses: 0\n", "app.test:3000"),
         "t.yaml:5:20: upstreams.b.max_addresses: 0 is out of range (1..256)"},
        {NOWHERE LISTEN "upstreams:\n  b:\n    resolve: true\n    max_addresses: 200\n    servers:\n"
                 "      - address: a.test:3000\n      - address: b.test:3000\n" ROUTE,
         "t.yaml:10:18: upstreams.b.servers[1].address: 400 servers in all with the addresses of 'b.test', at most 256 "
         "are allowed"},
        {NAMED("", "app.test:3000\n      - address: APP.test:3000"),
         "t.yaml:7:18: upstreams.b.servers[1].address: APP.test:3000 is already listed as servers[0] (give it a "
         "higher weight instead)"},
        {"resolver: dns.example:53\n" MIN,
         "t.yaml:1:11: resolver: 'dns.example:53' is not a DNS server address (an IP address with an optional port, "
         "like 127.0.0.1:5353)"},
        {"resolver: [127.0.0.1:5353, \"::1\", 10.0.0.1]\n" MIN, "ok"},
        {"resolver: []\n" MIN, "t.yaml:1:11: resolver: the list is empty; leave out 'resolver' to use /etc/resolv.conf"},
    };
    check_errors("names", cases, FC_ARRAY_LEN(cases));

    subtest("names: resolver is kept as the list c-ares takes, port 53 when none is written");
    fc_err_t err;
    fc_config_t *cfg = load("resolver: [127.0.0.1:5353, \"::1\", 10.0.0.1]\n" MIN, &err);
    ok(cfg != NULL);
    if (cfg != NULL) is_str(cfg->resolver, "127.0.0.1:5353,[::1]:53,10.0.0.1:53");
    fc_config_free(cfg);

    subtest("names: resolve: true makes max_addresses positions, a server's keys over the upstream's");
    cfg = load("resolver: 127.0.0.1:1\n" LISTEN "upstreams:\n  b:\n    resolve: true\n"
                            "    max_addresses: 3\n    servers:\n      - address: 127.0.0.1:4000\n"
                            "      - address: app.test:3000\n        weight: 5\n"
                            "      - address: api.test:3001\n        resolve_interval: 2s\n        max_addresses: 2\n"
                            ROUTE, &err);
    ok(cfg != NULL);
    if (cfg == NULL) return;
    is_str(cfg->resolver, "127.0.0.1:1");
    const fc_upstream_conf_t *u = &cfg->upstreams[0];
    is_int(u->nservers, 6);
    is_int(u->nnames, 2);
    is_int(u->ndynamic, 5);
    char got[1024] = "";
    for (size_t k = 0; k < u->nnames; k++) {
        const fc_name_conf_t *nc = &u->names[k];
        size_t used = strlen(got);
        snprintf(got + used, sizeof(got) - used, "%s%s %s:%u at %zu+%zu every %llu, %zu known", k ? "; " : "", nc->text,
                 nc->host, nc->port, nc->first, nc->count, (unsigned long long)nc->interval, nc->ninitial);
    }
    is_str(got, "app.test:3000 app.test:3000 at 1+3 every 5000, 0 known; api.test:3001 api.test:3001 at 4+2 every 2000, "
                "0 known");
    is_int(u->servers[0].name, 0);
    is_int(u->servers[3].name, 1);
    is_int(u->servers[3].weight, 5);
    is_int(u->servers[5].name, 2);
    ok(cfg->warnings != NULL && strstr(cfg->warnings, "t.yaml:10:18: upstreams.b.servers[1].address: warning: cannot "
                                       "resolve 'app.test' now: Could not contact DNS servers") != NULL);
    fc_config_free(cfg);
}

void test_config(void)
{
    test_yaml_tree();
    test_yaml_errors();
    test_defaults();
    test_full();
    test_structure_errors();
    test_value_errors();
    test_limits_on_counts();
    test_process_keys();
    test_balancing_errors();
    test_balancing_values();
    test_addr_parse();
    test_names();
    test_files();
    test_doc_examples();
    test_tls();
    test_upgrade_config();
    test_sticky_config();
    test_rate_limit_config();
    test_queue_config();
}
