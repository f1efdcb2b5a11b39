/* tunnel.c: the two-way byte pump (see tunnel.h). */
#include "fulcrum/tunnel.h"

static void finish(fc_tunnel_t *t, int status)
{
    if (t->ended) return;
    t->ended = 1;
    fc_io_read_stop(t->io[0]);
    fc_io_read_stop(t->io[1]);
    t->end(t, status);
}

static void check_done(fc_tunnel_t *t)
{
    if (t->eof[0] && t->eof[1] && !t->writing[0] && !t->writing[1]) finish(t, 0);
}

/* Side <from> has nothing more to send: once its last bytes are written, shut the other side. */
static void pass_eof(fc_tunnel_t *t, int from)
{
    int to = 1 - from;
    if (t->writing[to] || t->shut[to]) return;
    t->shut[to] = 1;
    if (fc_io_shutdown(t->io[to]) < 0) {
        finish(t, UV_EPIPE);
        return;
    }
    check_done(t);
}

/* Writes what side <from> has read to the other side. */
static void pump(fc_tunnel_t *t, int from)
{
    int to = 1 - from;
    fc_io_t *in = t->io[from];
    if (t->ended || t->writing[to] || t->paused) return;
    if (in->rbuf.base == NULL || in->rbuf.len == 0) {
        if (t->eof[from]) pass_eof(t, from);
        else if (fc_io_read_start(in) < 0) finish(t, UV_EIO);
        return;
    }
    uv_buf_t b = fc_iov(in->rbuf.base, in->rbuf.len);
    t->bytes[from] += in->rbuf.len;
    fc_io_read_stop(in); /* until the other side took these */
    int r = fc_io_write(t->io[to], &b, 1, t->wrote[to]);
    if (r < 0) {
        finish(t, r);
        return;
    }
    if (r == 1) {
        t->writing[to] = 1;
        return;
    }
    fc_tunnel_on_write(t, to, 0);
}

/* Written: the source's buffer is free again (and handed back while the side is quiet). */
void fc_tunnel_on_write(fc_tunnel_t *t, int side, int status)
{
    t->writing[side] = 0;
    if (t->ended) return;
    if (status < 0) {
        finish(t, status);
        return;
    }
    fc_io_t *in = t->io[1 - side];
    in->rbuf.len = 0;
    if (in->pool != NULL) fc_io_release_buf(in);
    if (t->paused) return;
    pump(t, 1 - side);
}

void fc_tunnel_on_read(fc_tunnel_t *t, int side, ssize_t nread)
{
    if (t->ended || nread == 0) return;
    if (nread < 0) {
        if (nread != UV_EOF) {
            finish(t, (int)nread);
            return;
        }
        t->eof[side] = 1;
    }
    pump(t, side);
}

void fc_tunnel_pause(fc_tunnel_t *t)
{
    t->paused = 1;
    fc_io_read_stop(t->io[0]);
    fc_io_read_stop(t->io[1]);
}

void fc_tunnel_start(fc_tunnel_t *t)
{
    for (int i = 0; i < 2; i++) {
        t->io[i]->rmode = FC_IO_READ_BUF;
        pump(t, i);
        if (t->ended) return;
    }
}
