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
    is_int(fc_shm_nslots(cfg), 4); /* and its upstream's queue */
    is_int(strlen(cfg->upstreams[0].servers[2].addr.text), 53); /* ffff:..:255.255.255.255 is as long */
    uint32_t slots[4], again[4];
    is_int(fc_shm_assign(shm, cfg, slots), 0);
    ok(slots[0] != slots[1] && slots[1] != slots[2] && slots[0] != slots[2]);
    is_int(slots[3], UINT32_MAX); /* no queue: no queue slot */
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

    subtest("a queued upstream gets a queue slot by name, shared by the configs that have it");
    cfg = load("listeners:\n  - address: 127.0.0.1:8080\nupstreams:\n  a:\n    queue: { max: 5 }\n"
               "    servers:\n      - address: 127.0.0.1:3000\n  b:\n    servers:\n      - address: 127.0.0.1:3001\n"
               "routes:\n  - upstream: a\n", line, sizeof(line));
    is_str(line, "ok");
    if (cfg == NULL) goto out;
    is_int(fc_shm_nslots(cfg), 4);
    is_int(fc_shm_assign(shm, cfg, slots), 0);
    ok(slots[2] < FC_SHM_QUEUES && slots[3] == UINT32_MAX);
    is_str(shm->queues[slots[2]].key, "a");
    is_int(fc_shm_assign(shm, cfg, again), 0);
    is_int(again[2], slots[2]);
    is_int(shm->queues[slots[2]].refs, 2);
    fc_shm_release(shm, cfg, again);
    fc_shm_release(shm, cfg, slots);
    is_int(shm->queues[slots[2]].refs, 0);
    is_int(shm->queues[slots[2]].key[0], 0);

    subtest("a process that left leaves the queue: its waiters go, a lock it held is taken over");
    fc_shm_queue_t *q = &shm->queues[0];
    q->head = 10;
    q->tail = 13;
    q->cells[10 % FC_SHM_QUEUE_RING] = (fc_shm_waiter_t){.ticket = 10, .proc = 3, .state = FC_QW_WAITING};
    q->cells[11 % FC_SHM_QUEUE_RING] = (fc_shm_waiter_t){.ticket = 11, .proc = 5, .state = FC_QW_WAITING};
    q->cells[12 % FC_SHM_QUEUE_RING] = (fc_shm_waiter_t){.ticket = 12, .proc = 3, .state = FC_QW_GRANTED};
    atomic_store(&q->waiting, 2);
    atomic_store(&q->lock, 3 + 1); /* process 3 died holding it */
    fc_shm_forget_proc(shm, 3);
    is_int(atomic_load(&q->lock), 0);
    is_int(atomic_load(&q->waiting), 1);
    is_int(q->head, 11); /* the head moved past its cell to the one still waiting */
    is_int(q->cells[12 % FC_SHM_QUEUE_RING].state, FC_QW_FREE);
    fc_config_free(cfg);
out:
    fc_shm_destroy(shm);
}
