/* tunnel.h: a byte pump between two ios, both directions at once: what one side reads is
 * written to the other, one write in flight each way, reading a side only while the other has
 * taken what it read (so memory stays one read buffer per direction). A side's EOF becomes a
 * shutdown of the other side's write half once its last bytes are out; the tunnel ends when
 * both directions have ended, or at the first error. It knows no HTTP.
 * The owners keep the ios and forward their callbacks: an io's read callback to
 * fc_tunnel_on_read, the completion of a write the tunnel issued to fc_tunnel_on_write. */
#ifndef FULCRUM_TUNNEL_H
#define FULCRUM_TUNNEL_H

#include "fulcrum/io.h"

typedef struct fc_tunnel fc_tunnel_t;

/* The tunnel has ended (<status> 0: both directions ended; else the first error): the owner
 * closes both ios. Called once. */
typedef void (*fc_tunnel_end_cb)(fc_tunnel_t *t, int status);

struct fc_tunnel {
    fc_io_t *io[2];        /* borrowed: the two sides */
    fc_io_cb wrote[2];     /* the owners' write callbacks for io[0] and io[1] */
    fc_tunnel_end_cb end;
    uint64_t bytes[2];     /* bytes read from io[i] and passed on */
    uint8_t eof[2];        /* io[i] will read nothing more */
    uint8_t writing[2];    /* a write to io[i] is in flight (bytes of the other side's read buffer) */
    uint8_t shut[2];       /* io[i]'s write half is shut */
    uint8_t ended;
    uint8_t paused;        /* quiesced for a hand-over: no reads, no new writes */
};

/* Starts pumping. Bytes already in either io's read buffer go first. */
void fc_tunnel_start(fc_tunnel_t *t);
void fc_tunnel_on_read(fc_tunnel_t *t, int side, ssize_t nread);
void fc_tunnel_on_write(fc_tunnel_t *t, int side, int status);
/* Stops reading both sides and starting writes; the writes in flight finish. What was read and not
 * written stays in the ios' read buffers. */
void fc_tunnel_pause(fc_tunnel_t *t);
/* Paused with no write in flight: both ios may be exported. */
static inline int fc_tunnel_quiet(const fc_tunnel_t *t) { return t->paused && !t->writing[0] && !t->writing[1]; }

#endif
