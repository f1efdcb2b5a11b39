/* io.h: the transport under a connection. An fc_io_t is one stream socket: its read buffer
 * (leased from a buffer pool while in use), at most one connect or write in flight with its own
 * request and completion callback, read start/stop, shutdown, close and export of the fd. It is
 * driven through a const ops table so a second transport (TLS) can replace the plain one without
 * its callers changing. Owners (client connections, upstream connections, health probes) embed
 * one and find themselves from it with fc_container_of in its callbacks.
 * This is the only module that calls libuv stream functions for connections; it knows no HTTP,
 * exchange, connection, upstream or config. */
#ifndef FULCRUM_IO_H
#define FULCRUM_IO_H

#include <sys/socket.h>
#include <uv.h>

#include "fulcrum/buf.h"

typedef struct fc_io fc_io_t;

/* uv_buf_init without the call into libuv (it is not inline there). */
static inline uv_buf_t fc_iov(char *base, size_t len)
{
    uv_buf_t b;
    b.base = base;
    b.len = len;
    return b;
}

/* A connect or write finished: <status> 0, or a negative libuv error (UV_ECANCELED when the io
 * was closed first). Called exactly once per connect or write that returned "queued". */
typedef void (*fc_io_cb)(fc_io_t *io, int status);
/* Bytes arrived: <nread> > 0 bytes were appended to io->rbuf (in FC_IO_READ_BUF mode; in the
 * other modes they were dropped), or <nread> < 0 (UV_EOF, an error, UV_ENOBUFS when no buffer
 * could be leased): reading has stopped. <nread> 0: a server TLS handshake completed (no bytes). */
typedef void (*fc_io_read_cb)(fc_io_t *io, ssize_t nread);
/* The io is closed: the owner may free the memory that holds it (only here). */
typedef void (*fc_io_close_cb)(fc_io_t *io);

/* Where reads go. */
enum fc_io_read_mode {
    FC_IO_READ_BUF = 0,  /* appended to rbuf, leased from the pool on the first read; reading
                            stops by itself when rbuf is full */
    FC_IO_READ_SCRATCH,  /* into a 64-byte scratch buffer shared by the worker's ios (an idle
                            connection that only watches for a close); no lease */
    FC_IO_READ_DISCARD,  /* into rbuf from offset 0, then dropped (a lingering close) */
};

typedef struct fc_io_ops {
    const char *name;
    int (*read_start)(fc_io_t *io);
    void (*read_stop)(fc_io_t *io);
    /* 0 written now, 1 queued (io->done runs once), < 0 nothing queued and no callback. */
    int (*write)(fc_io_t *io, uv_buf_t *iov, unsigned n);
    int (*shutdown)(fc_io_t *io);
    void (*close)(fc_io_t *io);
    /* The socket connected (<status> 0) or not: NULL calls io->done at once; TLS handshakes
     * first. */
    void (*connected)(fc_io_t *io, int status);
    /* May the fd move to another process? 0 or a negative error (TLS state cannot move). */
    int (*can_export)(fc_io_t *io);
} fc_io_ops_t;

/* Plain TCP. */
extern const fc_io_ops_t fc_io_plain;

struct fc_io {
    uv_tcp_t tcp;                /* the socket; the owner's memory is freed in on_closed */
    union fc_io_req *req;        /* owned while a connect or queued write is in flight, else NULL:
                                    from a per-process freelist, so an idle connection carries a
                                    pointer and not libuv's 192-byte request */
    const fc_io_ops_t *ops;
    struct fc_tls_conn *tls;     /* owned: the TLS session of a TLS io (tls.c), else NULL */
    fc_bufpool_t *pool;          /* where rbuf comes from; NULL: rbuf is the owner's own memory */
    fc_buf_t rbuf;               /* leased from pool while in use (base NULL otherwise), or the
                                    owner's fixed buffer when pool is NULL */
    fc_io_read_cb on_read;
    fc_io_cb done;               /* the callback of the connect or write in flight */
    fc_io_close_cb on_closed;
    uint8_t rmode;               /* enum fc_io_read_mode */
    uint8_t reading;             /* reads are started */
    uint8_t writing;             /* a write is in flight */
    uint8_t closing;             /* fc_io_close was called */
    uint8_t nodelay;             /* TCP_NODELAY is set */
};

/* Initialises <io> on <loop> with the plain transport, reading into buffers of <pool> (or NULL:
 * the owner sets io->rbuf to memory of its own) and calling <on_read>. Returns 0 or a negative
 * libuv error (nothing to close). */
int fc_io_init(fc_io_t *io, uv_loop_t *loop, fc_bufpool_t *pool, fc_io_read_cb on_read);
/* Takes connected socket <fd>. Returns 0 or a negative libuv error (<fd> is then the caller's to
 * close, and <io> must still be closed). */
int fc_io_open(fc_io_t *io, int fd);
/* Connects to <addr>. Returns 0 (<cb> is called exactly once) or a negative libuv error (no
 * callback). */
int fc_io_connect(fc_io_t *io, const struct sockaddr *addr, fc_io_cb cb);

/* Starts reading (a no-op while reading, or while a FC_IO_READ_BUF rbuf is full). Returns 0 or a
 * negative libuv error. */
static inline int fc_io_read_start(fc_io_t *io)
{
    if (io->reading || io->closing) return 0; /* reading already: the common case on the hot path */
    if (io->rmode == FC_IO_READ_BUF && io->rbuf.base != NULL && io->rbuf.len == io->rbuf.cap) return 0;
    return io->ops->read_start(io);
}
static inline void fc_io_read_stop(fc_io_t *io)
{
    if (io->reading) io->ops->read_stop(io);
}
/* Writes <iov> (it may be modified). Returns 0 when everything was written now (no callback),
 * 1 when the rest is queued (the buffers must stay put until <cb>, which is called exactly once),
 * or a negative libuv error (nothing queued, no callback). One write in flight at most. */
static inline int fc_io_write(fc_io_t *io, uv_buf_t *iov, unsigned n, fc_io_cb cb)
{
    io->done = cb;
    return io->ops->write(io, iov, n);
}
/* Shuts the write side down once everything queued is written. Returns 0 or a negative error. */
int fc_io_shutdown(fc_io_t *io);
/* Closes <io> (idempotent): reads stop, a write or connect in flight gets UV_ECANCELED, then
 * <cb> runs (in a later loop phase), after the read lease went back to its pool. */
void fc_io_close(fc_io_t *io, fc_io_close_cb cb);
/* Hands the read lease back to the pool (rbuf empty and NULL; the owner's offsets are its own).
 * Not for an io reading into its owner's memory (pool NULL). Inline: twice per request. */
static inline void fc_io_release_buf(fc_io_t *io)
{
    if (io->rbuf.base == NULL) return;
    fc_bufpool_put(io->pool, io->rbuf.base);
    io->rbuf.base = NULL;
    io->rbuf.len = io->rbuf.cap = 0;
}
void fc__io_set_nodelay(fc_io_t *io);
/* Caps the kernel's send buffer of <io>'s socket at <bytes> (SO_SNDBUF; no more autotuning): a large
 * answer then leaves in pieces of at most that much per loop turn. Returns 0 or a negative errno. */
int fc_io_sndbuf(fc_io_t *io, int bytes);
/* For transports: the socket handle is closed; hands the read lease back, calls on_closed. */
void fc__io_closed(fc_io_t *io);
/* Sets TCP_NODELAY once. */
static inline void fc_io_nodelay(fc_io_t *io)
{
    if (!io->nodelay) fc__io_set_nodelay(io);
}
/* Frees the requests kept for reuse (at a worker's exit). */
void fc_io_freelist_drain(void);
/* The socket's fd for a hand-over to another process (the io keeps it, and closes it when it is
 * closed). Reading stops. Returns 0, UV_EBUSY while a write is in flight, or another negative
 * error. The bytes already read are in io->rbuf. */
int fc_io_export(fc_io_t *io, int *fd);
/* The peer's (<peer> 1) or the local address. Returns 0 or a negative libuv error. */
int fc_io_address(fc_io_t *io, int peer, struct sockaddr_storage *ss);

#endif
