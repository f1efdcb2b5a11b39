/* fuzz_config.c: libFuzzer target for the configuration loader (src/yaml.c + src/config.c).
 * Built and run by `make fuzz`. The whole input is YAML text (a seed in tests/fuzz/corpus/config/
 * is a plain YAML file); it is loaded with fc_config_load_string, from memory: no file is read or
 * written and nothing is bound or connected.
 *
 * Checked (a violation calls __builtin_trap()): a failed load leaves a non-empty, NUL-terminated
 * message and a sane position, and leaves *out untouched; a successful load obeys what
 * include/fulcrum/config.h promises (at least one listener and one route, every route resolved
 * to one of the config's upstreams, 1..FC_UPSTREAM_MAX_SERVERS servers of weight 1..1000, route
 * paths beginning with '/'). LeakSanitizer catches what fc_config_free or an error path leaks. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "fulcrum/balance.h"
#include "fulcrum/common.h"
#include "fulcrum/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                                                    \
    do {                                                                                            \
        if (!(c)) __builtin_trap();                                                                 \
    } while (0)

static void check_config(const fc_config_t *cfg)
{
    CHECK(cfg->file != NULL && strcmp(cfg->file, "fuzz.yaml") == 0);
    CHECK(cfg->nlisteners >= 1 && cfg->listeners != NULL);
    CHECK(cfg->nroutes >= 1 && cfg->routes != NULL);
    for (size_t i = 0; i < cfg->nlisteners; i++) {
        const fc_addr_t *a = &cfg->listeners[i].addr;
        CHECK(memchr(a->text, '\0', sizeof(a->text)) != NULL);
        CHECK(a->len == sizeof(struct sockaddr_in) || a->len == sizeof(struct sockaddr_in6));
    }
    for (size_t i = 0; i < cfg->nupstreams; i++) {
        const fc_upstream_conf_t *u = &cfg->upstreams[i];
        CHECK(u->name != NULL && u->balance != NULL);
        CHECK(u->index == i);
        CHECK(fc_config_upstream(cfg, u->name) != NULL);
        CHECK(u->nservers >= 1 && u->nservers <= FC_UPSTREAM_MAX_SERVERS && u->servers != NULL);
        for (size_t j = 0; j < u->nservers; j++) {
            CHECK(u->servers[j].weight >= 1 && u->servers[j].weight <= 1000);
            CHECK(memchr(u->servers[j].addr.text, '\0', sizeof(u->servers[j].addr.text)) != NULL);
        }
    }
    for (size_t i = 0; i < cfg->nroutes; i++) {
        const fc_route_conf_t *r = &cfg->routes[i];
        CHECK(r->path != NULL && r->path[0] == '/');
        CHECK(r->upstream_name != NULL && r->upstream != NULL);
        CHECK(r->upstream >= cfg->upstreams && r->upstream < cfg->upstreams + cfg->nupstreams);
        CHECK(strcmp(r->upstream->name, r->upstream_name) == 0);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fc_config_t *cfg = NULL, *const untouched = (fc_config_t *)(uintptr_t)0x1;
    fc_err_t err;
    memset(&err, 0, sizeof(err));
    cfg = untouched;
    if (fc_config_load_string("fuzz.yaml", (const char *)data, size, &cfg, &err) == 0) {
        CHECK(cfg != untouched && cfg != NULL);
        check_config(cfg);
        fc_config_free(cfg);
        return 0;
    }
    CHECK(cfg == untouched);
    CHECK(memchr(err.msg, '\0', sizeof(err.msg)) != NULL);
    CHECK(err.msg[0] != '\0');
    CHECK(err.line >= 0 && err.column >= 0);
    char line[512];
    fc_err_format(&err, line, sizeof(line));
    CHECK(memchr(line, '\0', sizeof(line)) != NULL && line[0] != '\0');
    return 0;
}
