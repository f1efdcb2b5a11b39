/* test_router.c: host then longest-prefix route selection. */
#include <string.h>

#include "fulcrum/router.h"
#include "harness.h"

void test_router(void);

static const char *pick(const fc_router_t *r, const char *host, const char *path)
{
    const fc_route_conf_t *rt = fc_router_match(r, host, host ? strlen(host) : 0, path, strlen(path));
    return rt ? rt->upstream_name : "none";
}

void test_router(void)
{
    fc_route_conf_t routes[] = {
        {.host = NULL, .path = "/", .upstream_name = "any-root"},
        {.host = NULL, .path = "/api", .upstream_name = "any-api"},
        {.host = "api.example.com", .path = "/", .upstream_name = "exact-root"},
        {.host = "api.example.com", .path = "/v2", .upstream_name = "exact-v2"},
        {.host = "*.example.com", .path = "/", .upstream_name = "wild"},
        {.host = "*.deep.example.com", .path = "/", .upstream_name = "wild-deep"},
        {.host = "only.example.org", .path = "/x", .upstream_name = "only-x"},
    };
    fc_config_t cfg = {.routes = routes, .nroutes = FC_ARRAY_LEN(routes)};
    fc_router_t r;
    is_int(fc_router_init(&r, &cfg), 0);

    subtest("no host header uses host-less routes, longest prefix");
    is_str(pick(&r, NULL, "/"), "any-root");
    is_str(pick(&r, NULL, "/api/users"), "any-api");
    is_str(pick(&r, NULL, "/apix"), "any-api");
    is_str(pick(&r, NULL, "/other"), "any-root");

    subtest("exact host beats wildcard; port and case ignored");
    is_str(pick(&r, "api.example.com", "/v2/x"), "exact-v2");
    is_str(pick(&r, "API.Example.COM:8080", "/v1"), "exact-root");
    is_str(pick(&r, "api.example.com.", "/"), "exact-root");

    subtest("wildcards: longest suffix first, apex not matched");
    is_str(pick(&r, "www.example.com", "/"), "wild");
    is_str(pick(&r, "a.deep.example.com", "/"), "wild-deep");
    is_str(pick(&r, "example.com", "/"), "any-root");

    subtest("a host group whose paths miss falls through");
    is_str(pick(&r, "only.example.org", "/y"), "any-root");
    is_str(pick(&r, "only.example.org", "/x1"), "only-x");

    subtest("no match at all");
    fc_route_conf_t one[] = {{.host = "a.com", .path = "/", .upstream_name = "a"}};
    fc_config_t cfg1 = {.routes = one, .nroutes = 1};
    fc_router_t r1;
    fc_router_init(&r1, &cfg1);
    is_str(pick(&r1, "b.com", "/"), "none");
    fc_router_free(&r1);
    fc_router_free(&r);
}
