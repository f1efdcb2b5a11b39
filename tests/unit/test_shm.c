/* test_shm.c: the slot table of the shared segment (shm.h): one slot per upstream and server
 * address, the same slot again for the same pair (so state survives a reload), never one slot for
 * two servers, however long the upstream name and the address are. */
#include <stdio.h>
#include <string.h>

#include "fulcrum/config.h"
#include "fulcrum/shm.h"
#include "harness.h"

void test_shm(void);

/* The longest upstream name the loader accepts, and the longest addresses it can parse, which
 * differ only in their last characters. */
#define NAME64 "u123456789u123456789u123456789u123456789u123456789u123456789abcd"
#define LONG6(last) "[1111:2222:3333:4444:5555:6666:255.255.255." last "]:65535"

/* Loads <yaml>; on failure NULL, with the error as printed ("t.yaml:L:C: msg") in <line>. */
static fc_config_t *load(const char *yaml, char *line, size_t n)
{
    fc_config_t *cfg = NULL;
    fc_err_t err = {0};
    snprintf(line, n, "ok");
    if (fc_config_load_string("t.yaml", yaml, strlen(yaml), &cfg, &err) < 0) {
        fc_err_format(&err, line, n);
        return NULL;
    }
    return cfg;
}

void test_shm(void)
{
    fc_shm_t *shm = fc_shm_create();
    ok(shm != NULL);
    if (shm == NULL) return;
    is_int(strlen(NAME64), 64);

    subtest("a long upstream name with long IPv6 addresses: one slot per server");
    const char *yaml = "listeners:\n  - address: 127.0.0.1:8080\n"
                       "upstreams:\n"
                       "  " NAME64 ":\n"
                       "    servers:\n"
                       "      - address: \"" LONG6("1") "\"\n"
                       "      - address: \"" LONG6("2") "\"\n"
                       "      - address: \"" LONG6("255") "\"\n"
                       "  " NAME64 "x" ":\n" /* 65 characters: refused by the loader */
                       "    servers:\n"
                       "      - address: 127.0.0.1:3000\n"
                       "routes:\n  - upstream: " NAME64 "\n";
    char line[512], text[1024];
    ok(load(yaml, line, sizeof(line)) == NULL);
    is_str(line, "t.yaml:9:3: invalid upstream name '" NAME64 "x': use 1 to 64 letters, digits, '-', '_' and '.'");
    snprintf(text, sizeof(text), "%.*s%s", (int)(strstr(yaml, "  " NAME64 "x") - yaml), yaml,
             strstr(yaml, "routes:"));
    fc_config_t *cfg = load(text, line, sizeof(line));
    is_str(line, "ok");
    if (cfg == NULL) goto out;
    is_int(fc_shm_nservers(cfg), 3);
    is_int(strlen(cfg->upstreams[0].servers[2].addr.text), 53); /* ffff:..:255.255.255.255 is as long */
    uint32_t slots[3], again[3];
    is_int(fc_shm_assign(shm, cfg, slots), 0);
    ok(slots[0] != slots[1] && slots[1] != slots[2] && slots[0] != slots[2]);
    is_int(shm->servers[slots[1]].refs, 1);
    is_str(shm->servers[slots[2]].key, NAME64 "/" LONG6("255"));

    subtest("the same servers in the next config get the same slots");
    is_int(fc_shm_assign(shm, cfg, again), 0);
    ok(memcmp(slots, again, sizeof(slots)) == 0);
    is_int(shm->servers[slots[0]].refs, 2);
    fc_shm_release(shm, cfg, again);
    is_int(shm->servers[slots[0]].refs, 1);
    fc_shm_release(shm, cfg, slots);
    is_int(shm->servers[slots[0]].refs, 0);
    is_int(shm->servers[slots[0]].key[0], 0);
    fc_config_free(cfg);
out:
    fc_shm_destroy(shm);
}
