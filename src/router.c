/* router.c: route selection (see router.h). Host comparison is case-insensitive and ignores a
 * trailing ":port" and a trailing dot; path prefixes compare bytes, as nginx's prefix locations. */
#include "fulcrum/router.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum { HOST_EXACT = 0, HOST_WILDCARD = 1, HOST_ANY = 2 };

static int host_kind(const fc_route_conf_t *rt)
{
    if (rt->host == NULL) return HOST_ANY;
    return rt->host[0] == '*' ? HOST_WILDCARD : HOST_EXACT;
}

static int cmp_routes(const void *a, const void *b)
{
    const fc_route_conf_t *x = *(const fc_route_conf_t *const *)a, *y = *(const fc_route_conf_t *const *)b;
    int kx = host_kind(x), ky = host_kind(y);
    if (kx != ky) return kx - ky;
    if (kx == HOST_WILDCARD) {
        size_t lx = strlen(x->host), ly = strlen(y->host);
        if (lx != ly) return lx > ly ? -1 : 1;
    }
    size_t px = strlen(x->path), py = strlen(y->path);
    if (px != py) return px > py ? -1 : 1;
    return x < y ? -1 : x > y; /* file order among equals */
}

int fc_router_init(fc_router_t *r, const fc_config_t *cfg)
{
    r->n = cfg->nroutes;
    r->routes = calloc(r->n ? r->n : 1, sizeof(*r->routes));
    if (r->routes == NULL) return -1;
    for (size_t i = 0; i < r->n; i++) r->routes[i] = &cfg->routes[i];
    qsort(r->routes, r->n, sizeof(*r->routes), cmp_routes);
    return 0;
}

void fc_router_free(fc_router_t *r)
{
    free(r->routes);
    r->routes = NULL;
    r->n = 0;
}

static int host_matches(const fc_route_conf_t *rt, const char *host, size_t hostlen)
{
    size_t n = strlen(rt->host);
    if (rt->host[0] != '*') return n == hostlen && strncasecmp(rt->host, host, n) == 0;
    /* "*.example.com" matches "a.example.com" and "a.b.example.com", not "example.com". */
    const char *suffix = rt->host + 1;
    n--;
    return hostlen > n && strncasecmp(host + hostlen - n, suffix, n) == 0;
}

const fc_route_conf_t *fc_router_match(const fc_router_t *r, const char *host, size_t hostlen, const char *path,
                                       size_t pathlen)
{
    if (host == NULL) hostlen = 0;
    if (hostlen > 0 && host[0] != '[') {
        const char *colon = memchr(host, ':', hostlen);
        if (colon != NULL) hostlen = (size_t)(colon - host);
    } else if (hostlen > 0) {
        const char *end = memchr(host, ']', hostlen);
        if (end != NULL) hostlen = (size_t)(end - host) + 1;
    }
    if (hostlen > 0 && host[hostlen - 1] == '.') hostlen--;
    for (size_t i = 0; i < r->n; i++) {
        const fc_route_conf_t *rt = r->routes[i];
        if (rt->host != NULL && (hostlen == 0 || !host_matches(rt, host, hostlen))) continue;
        size_t pl = strlen(rt->path);
        if (pl <= pathlen && memcmp(rt->path, path, pl) == 0) return rt;
    }
    return NULL;
}
