/* test_shm.c: the slot table of the shared segment (shm.h): one slot per upstream and server
 * address, the same slot again for the same pair (so state survives a reload), never one slot for
 * two servers, however long the upstream name and the address are. */
#include <arpa/inet.h>
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

/* "127.0.0.<last>:3000" as fc_addr_parse reads it. */
static fc_addr_t ip(int last)
{
    char t[32];
    fc_addr_t a = {0};
    fc_err_t err;
    snprintf(t, sizeof(t), "127.0.0.%d:3000", last);
    ok(fc_addr_parse(t, &a, &err) == 0);
    return a;
}

/* The addresses positions <pos>[0..<n>) hold now, as "2 3 -" (last byte, '-' for vacant). */
static const char *held(fc_shm_server_t *const *pos, size_t n)
{
    static char out[64];
    size_t used = 0;
    for (size_t p = 0; p < n; p++) {
        unsigned seq;
        int inuse;
        fc_addr_t a;
        if (fc_shm_dyn_read(pos[p], &seq, &a, &inuse) != 0) return "being rewritten";
        const struct sockaddr_in *in = (const struct sockaddr_in *)&a.ss;
        used += (size_t)snprintf(out + used, sizeof(out) - used, p ? " %s" : "%s", "-");
        if (inuse) snprintf(out + used - 1, sizeof(out) - used + 1, "%u", (unsigned)(ntohl(in->sin_addr.s_addr) & 0xff));
        used = strlen(out);
    }
    return out;
}

/* Positions of resolving names (fc_shm_dyn_update): an address that stays keeps its slot and
 * state, one that goes leaves a vacant slot that is not reused while a request is active on it. */
static void test_dyn(fc_shm_t *shm)
{
    fc_shm_server_t *pos[3] = {&shm->servers[100], &shm->servers[101], &shm->servers[102]};
    fc_shm_dyn_result_t r;
    fc_addr_t a2 = ip(2), a3 = ip(3), a4 = ip(4), a5 = ip(5);

    subtest("dyn: the first set takes the positions in order; nothing is held before");
    is_str(held(pos, 3), "- - -");
    fc_addr_t set1[] = {a2, a3};
    is_int(fc_shm_dyn_update(pos, 3, set1, 2, 1, 0, FC_SHM_MASTER, &r), 0);
    is_int(r.joined, 2);
    is_int(r.left + r.kept + r.dropped, 0);
    is_str(held(pos, 3), "2 3 -");
    is_int(atomic_load(&pos[0]->healthy), 1);
    is_int(atomic_load(&pos[0]->up_since), 0);

    subtest("dyn: an address that stays keeps its slot and its failure state; a new one starts fresh");
    atomic_store(&pos[1]->fails, 2);
    atomic_store(&pos[1]->failed_until, 12345);
    fc_addr_t set2[] = {a4, a3, a3}; /* in another order, and one listed twice */
    is_int(fc_shm_dyn_update(pos, 3, set2, 3, 1, 5000, 1, &r), 0);
    is_int(r.kept, 1);
    is_int(r.left, 1);
    is_int(r.joined, 1);
    is_str(held(pos, 3), "- 3 4");
    is_int(atomic_load(&pos[1]->fails), 2);
    is_int(atomic_load(&pos[1]->failed_until), 12345);
    is_int(atomic_load(&pos[2]->up_since), 5000);
    is_int(atomic_load(&pos[2]->fails), 0);

    subtest("dyn: a vacant slot with a request still active on it is not reused (it drains)");
    atomic_store(&pos[0]->active, 1);
    fc_addr_t set3[] = {a3, a4, a5};
    is_int(fc_shm_dyn_update(pos, 3, set3, 3, 1, 6000, 1, &r), 0);
    is_int(r.dropped, 1);
    is_str(held(pos, 3), "- 3 4");
    atomic_store(&pos[0]->active, 0);
    is_int(fc_shm_dyn_update(pos, 3, set3, 3, 0, 7000, 1, &r), 0);
    is_int(r.joined, 1);
    is_str(held(pos, 3), "5 3 4");
    is_int(atomic_load(&pos[0]->healthy), 0);

    subtest("dyn: the slot vacant longest is reused first");
    fc_addr_t set4[] = {a5};
    is_int(fc_shm_dyn_update(pos, 3, set4, 1, 1, 8000, 1, &r), 0); /* 3 and 4 leave at 8000 */
    is_str(held(pos, 3), "5 - -");
    fc_addr_t set6[] = {a2};
    is_int(fc_shm_dyn_update(pos, 3, set6, 1, 1, 9500, 1, &r), 0); /* 5 leaves at 9500; 2 takes one of 8000 */
    is_str(held(pos, 3), "- 2 -");
    fc_addr_t set7[] = {a2, a4};
    is_int(fc_shm_dyn_update(pos, 3, set7, 2, 1, 10000, 1, &r), 0);
    is_str(held(pos, 3), "- 2 4"); /* the slot vacant since 8000, not the one since 9500 */

    subtest("dyn: a writer holding the name's lock keeps others out; the master frees a dead one's");
    atomic_store(&pos[0]->dyn_lock, 4);
    is_int(fc_shm_dyn_update(pos, 3, set1, 2, 1, 11000, 1, &r), -1);
    fc_shm_forget_proc(shm, 3);
    is_int(atomic_load(&pos[0]->dyn_lock), 0);
    is_int(fc_shm_dyn_update(pos, 3, set1, 2, 1, 11000, 1, &r), 0);

    subtest("dyn: a position being rewritten reads as such");
    atomic_fetch_add(&pos[1]->dyn_seq, 1);
    is_str(held(pos, 3), "being rewritten");
    atomic_fetch_add(&pos[1]->dyn_seq, 1);
    for (size_t p = 0; p < 3; p++) memset(pos[p], 0, sizeof(*pos[p]));
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
    test_dyn(shm);
out:
    fc_shm_destroy(shm);
}
