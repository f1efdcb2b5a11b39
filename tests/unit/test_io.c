/* test_io.c: the transport's contract on a socketpair: a write that fits returns 0 with no
 * callback, a large one returns 1 and calls back once, reads lease from the pool and stop when
 * the buffer is full, scratch reads lease nothing, close is idempotent and calls back once with
 * the lease returned, export refuses while a write is in flight. */
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fulcrum/io.h"
#include "harness.h"

void test_io(void);

static size_t got, writes_done, closes, reads_stopped;
static int write_status = 1;

static void on_read_drain(fc_io_t *io, ssize_t nread)
{
    if (nread > 0) {
        got += (size_t)nread;
        io->rbuf.len = 0; /* consumed: reading stopped by itself if the buffer was full */
        fc_io_read_start(io);
    }
}

static void on_read_keep(fc_io_t *io, ssize_t nread)
{
    if (nread > 0) got += (size_t)nread;
    if (!io->reading) reads_stopped++;
}

static void on_write_done(fc_io_t *io, int status)
{
    writes_done++;
    write_status = status;
}

static void on_closed(fc_io_t *io) { closes++; }

void test_io(void)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    fc_bufpool_t pool;
    fc_bufpool_init(&pool, 4096, 4);
    int sv[2];
    ok(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) == 0);
    fc_io_t a, b;
    is_int(fc_io_init(&a, &loop, &pool, on_read_keep), 0);
    is_int(fc_io_init(&b, &loop, &pool, on_read_drain), 0);
    is_int(fc_io_open(&a, sv[0]), 0);
    is_int(fc_io_open(&b, sv[1]), 0);

    subtest("a small write goes out at once");
    char small[] = "hello";
    uv_buf_t iov = uv_buf_init(small, 5);
    is_int(fc_io_write(&a, &iov, 1, on_write_done), 0);
    is_int(fc_io_read_start(&b), 0);
    while (got < 5) uv_run(&loop, UV_RUN_ONCE);
    is_int(got, 5);
    ok(b.rbuf.base != NULL); /* leased on the first read */
    is_int(writes_done, 0);

    subtest("a large write is queued and calls back once");
    size_t big = 8u << 20;
    char *p = calloc(1, big);
    uv_buf_t iov2[2] = {uv_buf_init(p, (unsigned)(big / 2)), uv_buf_init(p + big / 2, (unsigned)(big / 2))};
    got = 0;
    is_int(fc_io_write(&a, iov2, 2, on_write_done), 1);
    ok(a.writing);
    int fd = -1;
    is_int(fc_io_export(&a, &fd), UV_EBUSY);
    while (writes_done == 0 || got < big) uv_run(&loop, UV_RUN_ONCE);
    is_int(writes_done, 1);
    is_int(write_status, 0);
    is_int(got, big);
    ok(!a.writing);
    free(p);

    subtest("a full buffer stops reading; scratch reads lease nothing");
    got = 0;
    is_int(fc_io_read_start(&a), 0);
    char *q = calloc(1, 8192);
    uv_buf_t iov3 = uv_buf_init(q, 8192);
    ok(fc_io_write(&b, &iov3, 1, on_write_done) >= 0);
    while (reads_stopped == 0) uv_run(&loop, UV_RUN_ONCE);
    is_int(a.rbuf.len, 4096);
    ok(!a.reading);
    is_int(fc_io_read_start(&a), 0); /* still full: a no-op */
    ok(!a.reading);
    fc_io_release_buf(&a);
    ok(a.rbuf.base == NULL);
    a.rmode = FC_IO_READ_SCRATCH;
    is_int(fc_io_read_start(&a), 0);
    while (got < 8192) uv_run(&loop, UV_RUN_ONCE);
    ok(a.rbuf.base == NULL);
    free(q);

    subtest("export gives the fd; close is idempotent and returns the lease");
    is_int(fc_io_export(&a, &fd), 0);
    is_int(fd, sv[0]);
    ok(!a.reading);
    fc_io_close(&a, on_closed);
    fc_io_close(&a, on_closed);
    fc_io_close(&b, on_closed);
    uv_run(&loop, UV_RUN_DEFAULT);
    is_int(closes, 2);
    ok(b.rbuf.base == NULL);
    is_int(pool.nfree, 2); /* a's (released above) and b's */
    fc_bufpool_drain(&pool);
    is_int(uv_loop_close(&loop), 0);
}
