/* io.c: the transport under a connection (see io.h), and its plain TCP implementation. */
#include "fulcrum/io.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "fulcrum/common.h"

/* ---- plain TCP ----------------------------------------------------------------------------- */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    static char scratch[64]; /* idle connections read here: what they read is only news of a close */
    fc_io_t *io = fc_container_of(h, fc_io_t, tcp);
    if (io->rmode == FC_IO_READ_SCRATCH) {
        *buf = fc_iov(scratch, sizeof(scratch));
        return;
    }
    if (io->rbuf.base == NULL) { /* the common case: the lease was handed back after the last request */
        /* (an io reading into its owner's memory never has base NULL) */
        io->rbuf.base = fc_bufpool_get(io->pool);
        io->rbuf.cap = io->rbuf.base ? io->pool->size : 0;
        io->rbuf.len = 0;
    }
    if (io->rmode == FC_IO_READ_DISCARD) io->rbuf.len = 0;
    *buf = fc_iov(io->rbuf.base + io->rbuf.len, io->rbuf.cap - io->rbuf.len);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    fc_io_t *io = fc_container_of(s, fc_io_t, tcp);
    if (nread == 0) return;
    if (nread < 0) {
        fc_io_read_stop(io);
    } else if (io->rmode == FC_IO_READ_BUF) {
        io->rbuf.len += (size_t)nread;
        if (io->rbuf.len == io->rbuf.cap) fc_io_read_stop(io); /* resumes once the buffer has room */
    }
    io->on_read(io, nread);
}

static int plain_read_start(fc_io_t *io)
{
    int r = uv_read_start((uv_stream_t *)&io->tcp, on_alloc, on_read);
    if (r == 0) io->reading = 1;
    return r;
}

static void plain_read_stop(fc_io_t *io)
{
    uv_read_stop((uv_stream_t *)&io->tcp);
    io->reading = 0;
}

/* A connect or write request. Most writes leave at once through uv_try_write, so a request is
 * taken only for a write that must wait (and for a connect), and comes back when it completes. */
typedef union fc_io_req {
    uv_connect_t connect;
    uv_write_t write;
    union fc_io_req *next; /* freelist link */
} fc_io_req_t;

#define IO_REQS_KEEP 256 /* requests kept for reuse; the rest are freed */
static fc_io_req_t *free_reqs; /* per process: every worker is one thread */
static size_t nfree_reqs;

static fc_io_req_t *req_get(fc_io_t *io)
{
    fc_io_req_t *r = free_reqs;
    if (r != NULL) {
        free_reqs = r->next;
        nfree_reqs--;
    } else if ((r = malloc(sizeof(*r))) == NULL) {
        return NULL;
    }
    io->req = r;
    return r;
}

/* Gives <io>'s request back; returns <io> (found through the request's data pointer). */
static fc_io_t *req_done(uv_req_t *req)
{
    fc_io_t *io = req->data;
    fc_io_req_t *r = io->req;
    io->req = NULL;
    if (nfree_reqs < IO_REQS_KEEP) {
        r->next = free_reqs;
        free_reqs = r;
        nfree_reqs++;
    } else {
        free(r);
    }
    return io;
}

void fc_io_freelist_drain(void)
{
    while (free_reqs != NULL) {
        fc_io_req_t *r = free_reqs;
        free_reqs = r->next;
        free(r);
    }
    nfree_reqs = 0;
}

static void on_write(uv_write_t *req, int status)
{
    fc_io_t *io = req_done((uv_req_t *)req);
    io->writing = 0;
    io->done(io, status);
}

/* What the socket takes now with uv_try_write, the rest with uv_write. */
static int plain_write(fc_io_t *io, uv_buf_t *iov, unsigned n)
{
    FC_ASSERT(!io->writing);
    uv_stream_t *s = (uv_stream_t *)&io->tcp;
    size_t total = 0;
    for (unsigned i = 0; i < n; i++) total += iov[i].len;
    int r = uv_try_write(s, iov, n);
    if (r == UV_EAGAIN) r = 0;
    if (r < 0) return r;
    if ((size_t)r == total) return 0;
    size_t skip = (size_t)r;
    unsigned k = 0;
    while (skip >= iov[k].len) skip -= iov[k++].len;
    iov[k].base += skip;
    iov[k].len -= (unsigned)skip;
    fc_io_req_t *req = req_get(io);
    if (req == NULL) return UV_ENOMEM;
    req->write.data = io;
    r = uv_write(&req->write, s, iov + k, n - k, on_write);
    if (r < 0) {
        req_done((uv_req_t *)&req->write);
        return r;
    }
    io->writing = 1;
    return 1;
}

static void on_shutdown(uv_shutdown_t *req, int status) { free(req); }

static int plain_shutdown(fc_io_t *io)
{
    /* Allocated: a request every connection would carry for its last moments only. */
    uv_shutdown_t *req = malloc(sizeof(*req));
    if (req == NULL) return UV_ENOMEM;
    int r = uv_shutdown(req, (uv_stream_t *)&io->tcp, on_shutdown);
    if (r < 0) free(req);
    return r;
}

void fc__io_closed(fc_io_t *io)
{
    if (io->pool != NULL) fc_io_release_buf(io); /* else the owner's own memory */
    io->on_closed(io);
}

static void on_close(uv_handle_t *h) { fc__io_closed(fc_container_of(h, fc_io_t, tcp)); }

static void plain_close(fc_io_t *io) { uv_close((uv_handle_t *)&io->tcp, on_close); }

const fc_io_ops_t fc_io_plain = {
    .name = "tcp",
    .read_start = plain_read_start,
    .read_stop = plain_read_stop,
    .write = plain_write,
    .shutdown = plain_shutdown,
    .close = plain_close,
};

/* ---- the socket, whatever the transport ---------------------------------------------------- */

int fc_io_init(fc_io_t *io, uv_loop_t *loop, fc_bufpool_t *pool, fc_io_read_cb on_read_cb)
{
    memset(io, 0, sizeof(*io));
    int r = uv_tcp_init(loop, &io->tcp);
    if (r < 0) return r;
    io->ops = &fc_io_plain;
    io->pool = pool;
    io->on_read = on_read_cb;
    return 0;
}

int fc_io_open(fc_io_t *io, int fd) { return uv_tcp_open(&io->tcp, fd); }

static void on_connect(uv_connect_t *req, int status)
{
    fc_io_t *io = req_done((uv_req_t *)req);
    if (io->ops->connected != NULL) io->ops->connected(io, status);
    else io->done(io, status);
}

int fc_io_connect(fc_io_t *io, const struct sockaddr *addr, fc_io_cb cb)
{
    fc_io_req_t *req = req_get(io);
    if (req == NULL) return UV_ENOMEM;
    io->done = cb;
    req->connect.data = io;
    int r = uv_tcp_connect(&req->connect, &io->tcp, addr, on_connect);
    if (r < 0) req_done((uv_req_t *)&req->connect);
    return r;
}

int fc_io_shutdown(fc_io_t *io) { return io->ops->shutdown(io); }

void fc_io_close(fc_io_t *io, fc_io_close_cb cb)
{
    if (io->closing) return;
    io->closing = 1;
    io->on_closed = cb;
    fc_io_read_stop(io);
    io->ops->close(io);
}

int fc_io_sndbuf(fc_io_t *io, int bytes)
{
    uv_os_fd_t fd;
    if (uv_fileno((uv_handle_t *)&io->tcp, &fd) != 0) return UV_EBADF;
    return setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bytes, sizeof(bytes)) == 0 ? 0 : -errno;
}

void fc__io_set_nodelay(fc_io_t *io)
{
    io->nodelay = 1;
    uv_tcp_nodelay(&io->tcp, 1);
}

int fc_io_export(fc_io_t *io, int *fd)
{
    if (io->writing) return UV_EBUSY;
    if (io->ops->can_export != NULL) {
        int r = io->ops->can_export(io);
        if (r < 0) return r;
    }
    fc_io_read_stop(io);
    uv_os_fd_t f;
    int r = uv_fileno((uv_handle_t *)&io->tcp, &f);
    if (r == 0) *fd = f;
    return r;
}

int fc_io_address(fc_io_t *io, int peer, struct sockaddr_storage *ss)
{
    int len = sizeof(*ss);
    return peer ? uv_tcp_getpeername(&io->tcp, (struct sockaddr *)ss, &len)
                : uv_tcp_getsockname(&io->tcp, (struct sockaddr *)ss, &len);
}
