/* test_buf.c: fc_buf_t growth and append, fc_bufpool_t freelists. */
#include <stdint.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fulcrum/buf.h"
#include "harness.h"

void test_buf(void);

/* In a child process (a broken reserve may loop forever or corrupt the heap): a request for more
 * bytes than size_t can count past <len> fails with -1 and leaves the buffer intact. */
static int huge_reserve_fails_cleanly(size_t len)
{
    pid_t pid = fork();
    if (pid < 0) return 0;
    if (pid == 0) {
        alarm(1);
        fc_buf_t b = {0};
        for (size_t i = 0; i < len; i++) fc_buf_append(&b, "x", 1);
        size_t cap = b.cap;
        int rc = fc_buf_reserve(&b, SIZE_MAX - len / 2);
        int good = rc == -1 && b.len == len && b.cap == cap && (len == 0 || b.base[len - 1] == 'x');
        good = good && fc_buf_append(&b, "y", 1) == 0 && b.base[len] == 'y';
        fc_buf_free(&b);
        _exit(good ? 0 : 1);
    }
    int status = 0;
    if (waitpid(pid, &status, 0) != pid) return 0;
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

static void test_growth(void)
{
    subtest("an empty buffer; reserving nothing allocates nothing");
    fc_buf_t b = {0};
    is_int(fc_buf_reserve(&b, 0), 0);
    ok(b.base == NULL && b.len == 0 && b.cap == 0);

    subtest("append grows by doubling and keeps the bytes");
    is_int(FC_BUF_APPEND_LIT(&b, "abc"), 0);
    is_int(b.len, 3);
    is_int(b.cap, 256);
    ok(memcmp(b.base, "abc", 3) == 0);
    is_int(fc_buf_reserve(&b, 253), 0);
    is_int(b.cap, 256);
    is_int(fc_buf_reserve(&b, 254), 0);
    is_int(b.cap, 512);
    is_int(b.len, 3);
    char big[3000];
    for (size_t i = 0; i < sizeof(big); i++) big[i] = (char)('a' + i % 26);
    is_int(fc_buf_append(&b, big, sizeof(big)), 0);
    is_int(b.len, 3003);
    is_int(b.cap, 4096);
    ok(memcmp(b.base, "abc", 3) == 0 && memcmp(b.base + 3, big, sizeof(big)) == 0);
    is_int(fc_buf_append(&b, big, 0), 0);
    is_int(b.len, 3003);

    subtest("len can be reset and the room reused");
    b.len = 0;
    is_int(FC_BUF_APPEND_LIT(&b, "again"), 0);
    is_int(b.cap, 4096);
    ok(memcmp(b.base, "again", 5) == 0);

    subtest("free resets the fields, and the buffer can be used again");
    fc_buf_free(&b);
    ok(b.base == NULL && b.len == 0 && b.cap == 0);
    fc_buf_free(&b);
    is_int(FC_BUF_APPEND_LIT(&b, "x"), 0);
    is_int(b.cap, 256);
    fc_buf_free(&b);

    subtest("reserving more than size_t can hold fails cleanly");
    ok(huge_reserve_fails_cleanly(0));
    ok(huge_reserve_fails_cleanly(1));
}

static void test_pool(void)
{
    subtest("get, put, reuse in LIFO order");
    fc_bufpool_t p;
    fc_bufpool_init(&p, 4096, 2);
    is_int(p.size, 4096);
    char *a = fc_bufpool_get(&p), *b = fc_bufpool_get(&p), *c = fc_bufpool_get(&p);
    ok(a != NULL && b != NULL && c != NULL && a != b && b != c);
    memset(a, 1, 4096);
    memset(b, 2, 4096);
    memset(c, 3, 4096);
    is_int(p.nfree, 0);
    fc_bufpool_put(&p, a);
    fc_bufpool_put(&p, b);
    is_int(p.nfree, 2);

    subtest("beyond the keep limit, returned blocks are freed");
    fc_bufpool_put(&p, c);
    is_int(p.nfree, 2);
    fc_bufpool_put(&p, NULL);
    is_int(p.nfree, 2);
    ok(fc_bufpool_get(&p) == b);
    is_int(p.nfree, 1);
    ok(fc_bufpool_get(&p) == a);
    is_int(p.nfree, 0);
    ok(p.free == NULL);
    char *d = fc_bufpool_get(&p);
    ok(d != NULL && d != a && d != b);
    memset(d, 4, 4096);

    subtest("drain frees the freelist; the pool still works after");
    fc_bufpool_put(&p, a);
    fc_bufpool_put(&p, b);
    fc_bufpool_drain(&p);
    is_int(p.nfree, 0);
    ok(p.free == NULL);
    fc_bufpool_drain(&p);
    fc_bufpool_put(&p, d);
    is_int(p.nfree, 1);
    fc_bufpool_drain(&p);

    subtest("keep 0 keeps nothing; tiny blocks still hold the freelist link");
    fc_bufpool_t z;
    fc_bufpool_init(&z, 1, 0);
    is_int(z.size, sizeof(void *));
    char *e = fc_bufpool_get(&z);
    ok(e != NULL);
    fc_bufpool_put(&z, e);
    is_int(z.nfree, 0);
    fc_bufpool_t t;
    fc_bufpool_init(&t, 1, 4);
    char *f = fc_bufpool_get(&t), *g = fc_bufpool_get(&t);
    fc_bufpool_put(&t, f);
    fc_bufpool_put(&t, g);
    is_int(t.nfree, 2);
    ok(fc_bufpool_get(&t) == g && fc_bufpool_get(&t) == f);
    fc_bufpool_put(&t, f);
    fc_bufpool_put(&t, g);
    fc_bufpool_drain(&t);
    is_int(t.nfree, 0);
}

void test_buf(void)
{
    test_growth();
    test_pool();
}
