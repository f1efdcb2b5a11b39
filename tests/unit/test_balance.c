/* test_balance.c: policy choice sequences. */
#include "fulcrum/balance.h"
#include "harness.h"

void test_balance(void);

void test_balance(void)
{
    subtest("registry");
    ok(fc_balance_ops_find("round_robin") != NULL);
    ok(fc_balance_ops_find("nope") == NULL);

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
