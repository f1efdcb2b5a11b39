/* test_balance.c: policy choice sequences and distributions: the registry, smooth weighted
 * round robin (nginx's 5:1:1), least_conn, random and two choices, hash and ip_hash rings. */
#include <stdio.h>
#include <string.h>

#include "fulcrum/balance.h"
#include "harness.h"

void test_balance(void);

#define NKEYS 1000

/* The balancer registered under <name> over <s>[0..<n>), with <two> for random. */
static fc_balancer_t *make(const char *name, const fc_balance_server_t *s, size_t n, int two)
{
    fc_balance_opts_t opts = {.two = two};
    const fc_balancer_ops_t *ops = fc_balance_ops_find(name);
    return ops != NULL ? ops->create(s, n, &opts) : NULL;
}

/* One pick of <b> over <s>, with nothing tried and no key. */
static int pick(fc_balancer_t *b, const fc_balance_server_t *s, size_t n)
{
    uint64_t tried[FC_TRIED_WORDS] = {0};
    fc_balance_req_t req = {.tried = tried};
    return b->ops->pick(b, s, n, &req);
}

/* One pick of <b> over <s> for <key>, with <tried> (NULL: nothing tried). */
static int pick_key(fc_balancer_t *b, const fc_balance_server_t *s, size_t n, const char *key, const uint64_t *tried)
{
    static const uint64_t none[FC_TRIED_WORDS];
    fc_balance_req_t req = {.tried = tried ? tried : none, .key = key, .keylen = strlen(key)};
    return b->ops->pick(b, s, n, &req);
}

/* <count> picks of <b>, as a string of letters 'a' + index ('-' for -1). */
static const char *sequence(fc_balancer_t *b, const fc_balance_server_t *s, size_t n, int count)
{
    static char seq[64];
    for (int i = 0; i < count && i < 63; i++) {
        int p = pick(b, s, n);
        seq[i] = p < 0 ? '-' : (char)('a' + p);
        seq[i + 1] = '\0';
    }
    return seq;
}

/* Counts <picks> picks of <b> per server into <counts> (index n counts -1). */
static void tally(fc_balancer_t *b, const fc_balance_server_t *s, size_t n, int picks, int *counts)
{
    memset(counts, 0, (n + 1) * sizeof(counts[0]));
    for (int i = 0; i < picks; i++) {
        int p = pick(b, s, n);
        counts[p < 0 ? (int)n : p]++;
    }
}

static void test_registry(void)
{
    subtest("registry");
    static const char *const names[] = {"round_robin", "least_conn", "ip_hash", "random", "hash"};
    for (size_t i = 0; i < 5; i++) {
        const fc_balancer_ops_t *ops = fc_balance_ops_find(names[i]);
        ok(ops != NULL && strcmp(ops->name, names[i]) == 0);
        if (ops != NULL) is_int(ops->needs_key, strstr(names[i], "hash") != NULL);
    }
    ok(fc_balance_ops_find("nope") == NULL);
    is_str(fc_balance_names(), "round_robin, least_conn, ip_hash, random, hash");
}

static void test_round_robin(void)
{
    subtest("smooth weighted round robin 5:1:1 is nginx's a a b a c a a");
    fc_balance_server_t s[3] = {{5, 1, 0, "a"}, {1, 1, 0, "b"}, {1, 1, 0, "c"}};
    const fc_balancer_ops_t *ops = fc_balance_ops_find("round_robin");
    fc_balance_opts_t opts = {0};
    fc_balancer_t *b = ops->create(s, 3, &opts);
    uint64_t tried[FC_TRIED_WORDS] = {0};
    fc_balance_req_t req = {.tried = tried};
    char seq[15] = {0};
    for (int i = 0; i < 14; i++) seq[i] = (char)('a' + ops->pick(b, s, 3, &req));
    is_str(seq, "aabacaaaabacaa");

    subtest("tried and unusable servers are skipped");
    fc_tried_set(tried, 0);
    int p1 = ops->pick(b, s, 3, &req);
    ok(p1 == 1 || p1 == 2);
    s[1].usable = 0;
    is_int(ops->pick(b, s, 3, &req), 2);
    fc_tried_set(tried, 2);
    is_int(ops->pick(b, s, 3, &req), -1);
    ops->destroy(b);
}

static void test_least_conn(void)
{
    int counts[4];
    subtest("least_conn: the idle server gets the request");
    fc_balance_server_t s[3] = {{1, 1, 10, "a"}, {1, 1, 0, "b"}, {1, 1, 5, "c"}};
    fc_balancer_t *b = make("least_conn", s, 3, 0);
    is_str(sequence(b, s, 3, 5), "bbbbb");

    subtest("least_conn: load is active divided by weight");
    s[0] = (fc_balance_server_t){4, 1, 8, "a"}; /* 2 per weight */
    s[1] = (fc_balance_server_t){1, 1, 3, "b"}; /* 3 per weight */
    s[2] = (fc_balance_server_t){2, 1, 5, "c"}; /* 2.5 per weight */
    is_int(pick(b, s, 3), 0);

    subtest("least_conn: idle ties go round robin");
    for (int i = 0; i < 3; i++) s[i] = (fc_balance_server_t){1, 1, 0, s[i].id};
    is_str(sequence(b, s, 3, 9), "abcabcabc");
    s[0].active = 4; /* only b and c tie now */
    is_str(sequence(b, s, 3, 6), "bcbcbc");
    b->ops->destroy(b);

    subtest("least_conn: weights 3:2:1 hold when everything is idle");
    s[0] = (fc_balance_server_t){3, 1, 0, "a"};
    s[1] = (fc_balance_server_t){2, 1, 0, "b"};
    s[2] = (fc_balance_server_t){1, 1, 0, "c"};
    b = make("least_conn", s, 3, 0);
    is_str(sequence(b, s, 3, 12), "abacbaabacba");
    tally(b, s, 3, 600, counts);
    ok(counts[0] == 300 && counts[1] == 200 && counts[2] == 100);

    subtest("least_conn: weights 3:2:1 hold when requests pile up");
    for (int i = 0; i < 60; i++) s[pick(b, s, 3)].active++;
    is_int(s[0].active, 30);
    is_int(s[1].active, 20);
    is_int(s[2].active, 10);

    subtest("least_conn: tried and unusable skipped, none left is -1");
    uint64_t tried[FC_TRIED_WORDS] = {0};
    fc_balance_req_t req = {.tried = tried};
    s[2].active = 0; /* c is the least loaded by far */
    fc_tried_set(tried, 2);
    int p = b->ops->pick(b, s, 3, &req);
    ok(p == 0 || p == 1);
    s[0].usable = 0;
    is_int(b->ops->pick(b, s, 3, &req), 1);
    s[1].usable = 0;
    is_int(b->ops->pick(b, s, 3, &req), -1);
    b->ops->destroy(b);
}

static void test_random(void)
{
    int counts[4];
    subtest("random: 60000 picks follow weights 3:2:1 within 2%");
    fc_balance_server_t s[3] = {{3, 1, 0, "a"}, {2, 1, 0, "b"}, {1, 1, 0, "c"}};
    fc_balancer_t *b = make("random", s, 3, 0);
    tally(b, s, 3, 60000, counts);
    ok(counts[0] > 30000 - 1200 && counts[0] < 30000 + 1200);
    ok(counts[1] > 20000 - 1200 && counts[1] < 20000 + 1200);
    ok(counts[2] > 10000 - 1200 && counts[2] < 10000 + 1200);

    subtest("random: unusable servers are never picked, none usable is -1");
    s[1].usable = 0;
    tally(b, s, 3, 3000, counts);
    is_int(counts[1], 0);
    ok(counts[0] > 2000 && counts[2] > 500 && counts[0] + counts[2] == 3000);
    s[0].usable = s[2].usable = 0;
    is_int(pick(b, s, 3), -1);
    b->ops->destroy(b);

    subtest("random two choices: the loaded server loses every draw");
    s[0] = (fc_balance_server_t){1, 1, 100, "a"};
    s[1] = (fc_balance_server_t){1, 1, 0, "b"};
    s[2] = (fc_balance_server_t){1, 1, 0, "c"};
    b = make("random", s, 3, 1);
    tally(b, s, 3, 3000, counts);
    is_int(counts[0], 0);
    ok(counts[1] > 1200 && counts[2] > 1200);

    subtest("random two choices: an idle server wins whenever it is drawn (2/3)");
    s[0].active = 0;
    s[1].active = s[2].active = 7;
    tally(b, s, 3, 30000, counts);
    ok(counts[0] > 19000 && counts[0] < 21000);

    subtest("random two choices: one open server is picked alone, tried respected");
    uint64_t tried[FC_TRIED_WORDS] = {0};
    fc_balance_req_t req = {.tried = tried};
    fc_tried_set(tried, 0);
    s[2].usable = 0;
    is_int(b->ops->pick(b, s, 3, &req), 1);
    fc_tried_set(tried, 1);
    is_int(b->ops->pick(b, s, 3, &req), -1);
    b->ops->destroy(b);
}

/* The index in <s> of the server whose id is <id>, or -1. */
static int index_of(const fc_balance_server_t *s, size_t n, const char *id)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(s[i].id, id) == 0) return (int)i;
    return -1;
}

static void test_hash(void)
{
    static const char *const ids[5] = {"10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80", "10.0.0.4:80", "10.0.0.5:80"};
    fc_balance_server_t s5[5], s4[4];
    for (int i = 0, j = 0; i < 5; i++) {
        s5[i] = (fc_balance_server_t){1, 1, 0, ids[i]};
        if (i != 2) s4[j++] = s5[i];
    }
    fc_balancer_t *b5 = make("hash", s5, 5, 0), *again = make("hash", s5, 5, 0), *b4 = make("hash", s4, 4, 0);
    char key[32];
    int on5[NKEYS], per[5] = {0};

    subtest("hash: a key always maps to the same server, in every balancer over the same list");
    int stable = 1;
    for (int k = 0; k < NKEYS; k++) {
        snprintf(key, sizeof(key), "/item/%d", k);
        on5[k] = pick_key(b5, s5, 5, key, NULL);
        stable &= on5[k] >= 0 && pick_key(b5, s5, 5, key, NULL) == on5[k] && pick_key(again, s5, 5, key, NULL) == on5[k];
        if (on5[k] >= 0) per[on5[k]]++;
    }
    ok(stable);
    for (int i = 0; i < 5; i++) ok(per[i] > 100 && per[i] < 300);

    subtest("hash: removing one of 5 servers moves only its keys (at most 1.5/n)");
    int moved = 0, wrong = 0;
    for (int k = 0; k < NKEYS; k++) {
        snprintf(key, sizeof(key), "/item/%d", k);
        int p = pick_key(b4, s4, 4, key, NULL);
        if (p < 0 || strcmp(s4[p].id, s5[on5[k]].id) == 0) continue;
        moved++;
        wrong += on5[k] != 2;
    }
    ok(moved <= NKEYS * 3 / 10);
    is_int(moved, per[2]);
    is_int(wrong, 0);

    subtest("hash: an unusable server moves only its own keys, where removing it would");
    s5[2].usable = 0;
    wrong = 0;
    for (int k = 0; k < NKEYS; k++) {
        snprintf(key, sizeof(key), "/item/%d", k);
        int p = pick_key(b5, s5, 5, key, NULL);
        wrong += p < 0 || (on5[k] != 2 && p != on5[k]) ||
                 (on5[k] == 2 && p != index_of(s5, 5, s4[pick_key(b4, s4, 4, key, NULL)].id));
    }
    is_int(wrong, 0);
    s5[2].usable = 1;

    subtest("hash: tried servers are walked past; none left is -1");
    uint64_t tried[FC_TRIED_WORDS] = {0};
    int first = pick_key(b5, s5, 5, "/retry", NULL), seen = 0;
    for (int i = 0; i < 5; i++) {
        int p = pick_key(b5, s5, 5, "/retry", tried);
        ok(p >= 0 && !fc_tried_has(tried, (size_t)p));
        if (i == 0) is_int(p, first);
        if (p < 0) continue;
        fc_tried_set(tried, (size_t)p);
        seen++;
    }
    is_int(seen, 5);
    is_int(pick_key(b5, s5, 5, "/retry", tried), -1);
    for (int i = 0; i < 5; i++) s5[i].usable = 0;
    is_int(pick_key(b5, s5, 5, "/retry", NULL), -1);
    for (int i = 0; i < 5; i++) s5[i].usable = 1;
    b5->ops->destroy(b5);
    again->ops->destroy(again);
    b4->ops->destroy(b4);

    subtest("hash: weight 3 gets about three times the keys of weight 1");
    fc_balance_server_t w[2] = {{3, 1, 0, "heavy:80"}, {1, 1, 0, "light:80"}};
    fc_balancer_t *bw = make("hash", w, 2, 0);
    int heavy = 0;
    for (int k = 0; k < NKEYS; k++) {
        snprintf(key, sizeof(key), "/w/%d", k);
        heavy += pick_key(bw, w, 2, key, NULL) == 0;
    }
    ok(heavy > 650 && heavy < 850);
    bw->ops->destroy(bw);
}

static void test_ip_hash(void)
{
    subtest("ip_hash: each client address sticks to one server, and addresses spread");
    fc_balance_server_t s[3] = {{1, 1, 0, "10.0.0.1:80"}, {1, 1, 0, "10.0.0.2:80"}, {1, 1, 0, "10.0.0.3:80"}};
    fc_balancer_t *b = make("ip_hash", s, 3, 0);
    ok(b != NULL && b->ops == fc_balance_ops_find("ip_hash"));
    int per[3] = {0}, sticky = 1;
    char addr[48];
    for (int k = 0; k < 300; k++) {
        snprintf(addr, sizeof(addr), k % 2 ? "192.168.%d.%d" : "2001:db8::%x:%x", k / 250, k % 250);
        int p = pick_key(b, s, 3, addr, NULL);
        for (int again = 0; again < 3; again++) {
            s[0].active += 5; /* load must not matter to ip_hash */
            sticky &= pick_key(b, s, 3, addr, NULL) == p;
        }
        if (p >= 0) per[p]++;
    }
    ok(sticky);
    ok(per[0] > 50 && per[1] > 50 && per[2] > 50);
    b->ops->destroy(b);
}

void test_balance(void)
{
    test_registry();
    test_round_robin();
    test_least_conn();
    test_random();
    test_hash();
    test_ip_hash();
}
