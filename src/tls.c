/* tls.c: TLS over fc_io_t (see tls.h). OpenSSL reads ciphertext from, and writes it to, a BIO of
 * our own over two buffers of the connection: what the socket read and OpenSSL has not taken
 * yet, and what OpenSSL wrote and the socket has not taken yet. One plaintext write of the owner
 * becomes ciphertext at once; the owner's callback comes when the socket took all of it. */
#include "fulcrum/tls_ctx.h"

#include <ctype.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "fulcrum/io.h"
#include "fulcrum/list.h"
#include "fulcrum/slab.h"
#include "fulcrum/tls_record.h"

#define TLS_BUF 17408          /* a pooled ciphertext buffer: one whole record (16 KiB + overhead) fits */
#define TLS_BUFS_KEEP 64
#define TLS_COALESCE 16384     /* plaintext pieces of a write up to this much in all become one record */
/* Handshake steps run before the rest of the loop's work gets its turn: a flood of new TLS
 * connections (0.5 ms of CPU each, or more with RSA) must not hold back the established ones.
 * The budget comes back each time the deferred queue is worked (once per loop turn with work). */
#define HANDSHAKE_BUDGET 16

/* ---- connections --------------------------------------------------------------------------- */

typedef struct fc_tls_conn {
    SSL *ssl;                   /* owned; NULL once the records are ours (<own>) */
    fc_io_t *io;                /* the io this is the TLS session of */
    fc_buf_t in;                /* ciphertext read and not yet taken by OpenSSL: a pooled block or grown;
                                   base NULL while there is none */
    size_t in_pos;              /* bytes of <in> OpenSSL has taken */
    fc_buf_t out[2];            /* ciphertext: out[cur] fills; out[cur ^ 1] is in flight while sock_writing */
    uint64_t made, sent;        /* ciphertext bytes made by OpenSSL, and taken by the socket */
    uint64_t owner_end;         /* the owner's write in flight is done once <sent> reaches this */
    size_t sending;             /* bytes of the socket write in flight */
    int status;                 /* once failed: what the owner is told (a negative libuv error) */
    uv_write_t wreq;            /* the socket write in flight */
    fc_list_t defer_link;       /* in <deferred> while a read must be resumed from buffered data */
    fc_tls_session_t **slot;    /* client: where the latest session goes (the caller's), or NULL */
    const char *error;          /* why the session failed (constant), or NULL */
    uint8_t cur;
    uint8_t sock_writing;       /* out[cur ^ 1] is being written */
    uint8_t sock_reading;       /* uv_read_start is on */
    uint8_t handshaken;
    uint8_t client;
    uint8_t connecting;         /* client: the connect callback waits for the handshake */
    uint8_t eof;                /* the socket read EOF (or failed) */
    uint8_t deferred;
    uint8_t shut;               /* the owner asked for a shutdown: after the last byte, shut the socket */
    uint8_t failed;             /* the session is dead: every later call fails */
    /* Our own TLS 1.3 record layer (tls_record.h), which replaces the SSL after a server
     * handshake. Until then the secrets are gathered in <rl> and the records counted. */
    uint8_t own;                /* the records are ours: <ssl> is freed */
    uint8_t secrets;            /* bit 0: the client's traffic secret is in rl.rd, bit 1: ours in rl.wr */
    uint8_t secret_len;
    uint8_t fin_r, fin_w;       /* the client's Finished was read; ours was written */
    uint8_t odd;                /* something the handover does not follow (a key update): keep the SSL */
    uint8_t resumed;            /* own: the handshake resumed a session */
    uint8_t close_sent;         /* own: close_notify (or a fatal alert) is sealed */
    uint8_t want_keys;          /* server: the keylog callback is wanted for the next handshake steps */
    uint32_t recs_r, recs_w;    /* records read since the client's Finished, written since ours */
    size_t rec_len;             /* own: the record at in_pos is opened, and this long (0: none) */
    size_t pt_off, pt_len;      /* own: its plaintext not yet handed over, at in_pos + 5 + pt_off */
    fc_tlsr_t rl;               /* the secrets, keys and sequence numbers; wiped when freed */
} fc_tls_conn_t;

struct fc_tls_session {
    SSL_SESSION *sess; /* owned */
};

static fc_bufpool_t tls_bufs = {TLS_BUF, NULL, 0, TLS_BUFS_KEEP};
static fc_list_t deferred_list = {&deferred_list, &deferred_list};
static uv_idle_t defer_idle;
static int defer_ready;
static BIO_METHOD *bio_method;
static unsigned handshake_budget = HANDSHAKE_BUDGET;
static unsigned sessions_freed;
static fc_slab_t conn_slab; /* the fc_tls_conn_t: long-lived, allocated among handshakes' pieces */

unsigned fc_tls_sessions_freed(void)
{
    unsigned n = sessions_freed;
    sessions_freed = 0;
    return n;
}

static void buf_release(fc_buf_t *b)
{
    if (b->base == NULL) return;
    if (b->cap == TLS_BUF) fc_bufpool_put(&tls_bufs, b->base);
    else free(b->base);
    b->base = NULL;
    b->len = b->cap = 0;
}

static int buf_room(fc_buf_t *b, size_t extra)
{
    if (b->base == NULL) {
        if (extra <= TLS_BUF) {
            if ((b->base = fc_bufpool_get(&tls_bufs)) == NULL) return -1;
            b->cap = TLS_BUF;
            b->len = 0;
            return 0;
        }
    }
    if (b->cap - b->len >= extra) return 0;
    size_t want = b->cap ? b->cap : TLS_BUF;
    while (want - b->len < extra) want *= 2;
    char *p = realloc(b->base, want); /* a pooled block is a malloc'd one: it may grow */
    if (p == NULL) return -1;
    b->base = p;
    b->cap = want;
    return 0;
}

void fc_tls_freelist_drain(void)
{
    fc_bufpool_drain(&tls_bufs);
    fc_tlsr_cleanup();
    fc_slab_drain(&conn_slab);
}

static int bio_write(BIO *b, const char *data, int len)
{
    fc_tls_conn_t *t = BIO_get_data(b);
    fc_buf_t *o = &t->out[t->cur];
    BIO_clear_retry_flags(b);
    if (len <= 0) return 0;
    if (buf_room(o, (size_t)len) < 0) return -1;
    memcpy(o->base + o->len, data, (size_t)len);
    o->len += (size_t)len;
    t->made += (uint64_t)len;
    return len;
}

static int bio_read(BIO *b, char *data, int len)
{
    fc_tls_conn_t *t = BIO_get_data(b);
    size_t avail = t->in.len - t->in_pos;
    BIO_clear_retry_flags(b);
    if (avail == 0) {
        if (t->eof) return 0;
        BIO_set_retry_read(b);
        return -1;
    }
    size_t n = FC_MIN(avail, (size_t)len);
    memcpy(data, t->in.base + t->in_pos, n);
    t->in_pos += n;
    return (int)n;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    (void)num;
    (void)ptr;
    fc_tls_conn_t *t = BIO_get_data(b);
    switch (cmd) {
    case BIO_CTRL_FLUSH: return 1;
    case BIO_CTRL_EOF: return t != NULL && t->eof && t->in_pos == t->in.len;
    case BIO_CTRL_PENDING: return t != NULL ? (long)(t->in.len - t->in_pos) : 0;
    case BIO_CTRL_WPENDING: return 0;
    default: return 0;
    }
}

static int bio_create(BIO *b)
{
    BIO_set_init(b, 1);
    return 1;
}

static BIO_METHOD *get_bio_method(void)
{
    if (bio_method != NULL) return bio_method;
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "fulcrum");
    if (m == NULL) return NULL;
    BIO_meth_set_write(m, bio_write);
    BIO_meth_set_read(m, bio_read);
    BIO_meth_set_ctrl(m, bio_ctrl);
    BIO_meth_set_create(m, bio_create);
    return bio_method = m;
}

static void process(fc_tls_conn_t *t);
static int flush(fc_tls_conn_t *t);
static void sock_on_write(uv_write_t *req, int status);

static void on_defer(uv_idle_t *h)
{
    handshake_budget = HANDSHAKE_BUDGET;
    fc_list_t list;
    fc_list_init(&list);
    while (!fc_list_empty(&deferred_list)) {
        fc_list_t *l = deferred_list.next;
        fc_list_remove(l);
        fc_list_insert_tail(&list, l);
    }
    while (!fc_list_empty(&list)) {
        fc_tls_conn_t *t = fc_container_of(list.next, fc_tls_conn_t, defer_link);
        fc_list_remove(&t->defer_link);
        fc_list_init(&t->defer_link);
        t->deferred = 0;
        if (!t->io->closing) process(t);
    }
    if (fc_list_empty(&deferred_list)) uv_idle_stop(h);
}

/* Buffered bytes are waiting for a reader that just came back: read them in a later loop phase
 * (not from inside the owner's read_start). */
static void defer(fc_tls_conn_t *t)
{
    if (t->deferred) return;
    if (!defer_ready) {
        uv_idle_init(t->io->tcp.loop, &defer_idle);
        uv_unref((uv_handle_t *)&defer_idle);
        defer_ready = 1;
    }
    t->deferred = 1;
    fc_list_insert_tail(&deferred_list, &t->defer_link);
    uv_idle_start(&defer_idle, on_defer);
}

static void on_defer_closed(uv_handle_t *h)
{
    (void)h;
    defer_ready = 0;
}

void fc_tls_loop_close(void)
{
    if (defer_ready && !uv_is_closing((uv_handle_t *)&defer_idle)) uv_close((uv_handle_t *)&defer_idle, on_defer_closed);
}

static void sock_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    fc_io_t *io = fc_container_of(h, fc_io_t, tcp);
    fc_tls_conn_t *t = io->tls;
    if (t->in_pos > 0 && t->in_pos == t->in.len) t->in.len = t->in_pos = 0;
    if (t->in_pos > 0 && t->in.cap - t->in.len < 1024) {
        memmove(t->in.base, t->in.base + t->in_pos, t->in.len - t->in_pos);
        t->in.len -= t->in_pos;
        t->in_pos = 0;
    }
    if (buf_room(&t->in, 1024) < 0) {
        *buf = fc_iov(NULL, 0); /* libuv reports UV_ENOBUFS */
        return;
    }
    *buf = fc_iov(t->in.base + t->in.len, t->in.cap - t->in.len);
}

static void sock_read_stop(fc_tls_conn_t *t)
{
    if (!t->sock_reading) return;
    uv_read_stop((uv_stream_t *)&t->io->tcp);
    t->sock_reading = 0;
}

static void sock_on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf;
    fc_io_t *io = fc_container_of(s, fc_io_t, tcp);
    fc_tls_conn_t *t = io->tls;
    if (nread == 0) return;
    if (nread < 0) {
        t->eof = 1;
        sock_read_stop(t);
    } else {
        t->in.len += (size_t)nread;
    }
    process(t);
}

static int sock_read_start(fc_tls_conn_t *t)
{
    if (t->sock_reading || t->eof) return 0;
    int r = uv_read_start((uv_stream_t *)&t->io->tcp, sock_alloc, sock_on_read);
    if (r == 0) t->sock_reading = 1;
    return r;
}

/* The session failed: the owner hears it once, on the path it is waiting on (a reader that comes
 * later hears it from tls_read_start). */
static void fail(fc_tls_conn_t *t, int status, const char *why)
{
    fc_io_t *io = t->io;
    if (t->failed) return;
    t->failed = 1;
    t->status = status;
    if (t->error == NULL) t->error = why;
    sock_read_stop(t);
    if (t->connecting) {
        t->connecting = 0;
        io->done(io, status);
    } else if (io->writing) {
        io->writing = 0;
        io->done(io, status);
    } else if (io->reading) {
        io->reading = 0;
        io->on_read(io, status);
    }
}

/* Sends what OpenSSL made: uv_try_write first, the rest with one uv_write. Calls nobody back.
 * Returns 0 or a negative libuv error. */
static int flush(fc_tls_conn_t *t)
{
    fc_io_t *io = t->io;
    while (!t->sock_writing) {
        fc_buf_t *o = &t->out[t->cur];
        if (o->len == 0) {
            buf_release(o);
            break;
        }
        uv_buf_t b = fc_iov(o->base, o->len);
        int r = uv_try_write((uv_stream_t *)&io->tcp, &b, 1);
        if (r == UV_EAGAIN) r = 0;
        if (r >= 0) {
            t->sent += (uint64_t)r;
            if ((size_t)r == o->len) {
                o->len = 0;
                continue;
            }
            b = fc_iov(o->base + r, o->len - (size_t)r);
            t->wreq.data = t;
            r = uv_write(&t->wreq, (uv_stream_t *)&io->tcp, &b, 1, sock_on_write);
        }
        if (r < 0) {
            o->len = 0;
            buf_release(o);
            return r;
        }
        t->sending = b.len;
        t->sock_writing = 1;
        t->cur ^= 1; /* new ciphertext goes to the other buffer meanwhile */
        break;
    }
    if (t->shut && !t->sock_writing && t->out[t->cur].len == 0) {
        t->shut = 0;
        fc_io_plain.shutdown(io);
    }
    return 0;
}

/* After a flush outside the owner's write call: a failure, or the end of the owner's write. */
static void flushed(fc_tls_conn_t *t, int r)
{
    fc_io_t *io = t->io;
    if (r < 0) {
        fail(t, r, "write failed");
    } else if (io->writing && t->sent >= t->owner_end) {
        io->writing = 0;
        io->done(io, 0);
    }
}

static void sock_on_write(uv_write_t *req, int status)
{
    fc_tls_conn_t *t = req->data;
    t->sock_writing = 0;
    t->sent += t->sending;
    t->sending = 0;
    buf_release(&t->out[t->cur ^ 1]);
    if (status < 0) {
        fail(t, status, status == UV_ECANCELED ? "closed" : "write failed");
        return;
    }
    if (t->io->closing) { /* finished as the close came: nothing more goes out on this socket */
        if (t->io->writing) {
            t->io->writing = 0;
            t->io->done(t->io, t->sent >= t->owner_end ? 0 : UV_ECANCELED);
        }
        return;
    }
    flushed(t, flush(t));
}

/* An idle connection holds no ciphertext buffer. */
static void in_trim(fc_tls_conn_t *t)
{
    if (t->in_pos < t->in.len) return;
    buf_release(&t->in);
    t->in_pos = 0;
}

/* ---- our own TLS 1.3 records ------------------------------------------------------------ */

/* OpenSSL's SSL object holds about 16 KB for the life of a connection (RELEASE_BUFFERS or not);
 * after a TLS 1.3 handshake, a connection needs only its two traffic secrets and the number of the
 * next record each way. OpenSSL tells the secrets to the keylog callback and each record header
 * and handshake message to the message callback, so a server connection gathers both during its
 * handshake, and at its end frees the SSL and goes on with tls_record.c. Whatever the handover
 * cannot follow (TLS 1.2, a CCM suite, a key update during the handshake, a negotiated maximum
 * fragment length, a record OpenSSL has half read) keeps the SSL. */

static int hexval(int c) { return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10; }

/* The keylog callback, set on the context <ssl> uses (<on> 1) or cleared. OpenSSL writes every
 * secret it logs as a hex line with sprintf (38,000 instructions for a TLS 1.2 master secret,
 * of a 390,000-instruction resumption), so the callback is set only while a TLS 1.3 server
 * handshake that may hand its records over runs, from its Finished on (the application secrets;
 * the handshake secrets are not formatted). A worker runs one handshake step at a time, and its
 * contexts are its own copies (the master built them before the fork). */
static void keylog_arm(const SSL *ssl, int on)
{
    SSL_CTX_set_keylog_callback(SSL_get_SSL_CTX(ssl), on ? fc__tls_keylog : NULL);
}

void fc__tls_keylog(const SSL *ssl, const char *line)
{
    fc_tls_conn_t *t = SSL_get_ex_data(ssl, fc__tls_ex_conn);
    if (t == NULL || t->client) return;
    fc_tlsr_dir_t *d;
    uint8_t bit;
    if (strncmp(line, "CLIENT_TRAFFIC_SECRET_0 ", 24) == 0) {
        d = &t->rl.rd;
        bit = 1;
    } else if (strncmp(line, "SERVER_TRAFFIC_SECRET_0 ", 24) == 0) {
        d = &t->rl.wr;
        bit = 2;
    } else {
        return;
    }
    const char *p = strchr(line + 24, ' '); /* past the client random */
    if (p == NULL) return;
    p++;
    size_t n = 0;
    while (n < sizeof(d->secret) && isxdigit((unsigned char)p[2 * n]) && isxdigit((unsigned char)p[2 * n + 1])) {
        d->secret[n] = (uint8_t)(hexval(p[2 * n]) << 4 | hexval(p[2 * n + 1]));
        n++;
    }
    if (p[2 * n] != '\0' || (n != 32 && n != 48) || (t->secret_len != 0 && t->secret_len != n)) {
        t->odd = 1;
        return;
    }
    t->secret_len = (uint8_t)n;
    t->secrets |= bit;
    if (t->secrets == 3) { /* both: no more lines wanted (the exporter secret may follow) */
        t->want_keys = 0;
        keylog_arm(ssl, 0);
    }
}

static void msg_cb(int write_p, int version, int content_type, const void *buf, size_t len, SSL *ssl, void *arg)
{
    (void)version;
    fc_tls_conn_t *t = arg;
    if (content_type == SSL3_RT_HEADER) { /* a record, read or written */
        if (write_p && t->fin_w) t->recs_w++;
        else if (!write_p && t->fin_r) t->recs_r++;
        return;
    }
    if (content_type != SSL3_RT_HANDSHAKE || len == 0) return;
    unsigned type = ((const unsigned char *)buf)[0];
    uint8_t *fin = write_p ? &t->fin_w : &t->fin_r;
    if (type == SSL3_MT_FINISHED && !*fin) {
        *fin = 1;
        if (write_p && SSL_version(ssl) == TLS1_3_VERSION) { /* our application secrets come next */
            t->want_keys = 1;
            keylog_arm(ssl, 1);
        }
    } else if (*fin && !(write_p && type == SSL3_MT_NEWSESSION_TICKET)) {
        t->odd = 1; /* a key update, or stranger */
    }
}

/* The end of a server handshake: the records become ours if the handover can follow them. */
static void take_over(fc_tls_conn_t *t)
{
    SSL *s = t->ssl;
    const fc_tls_ctx_t *c = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(s), fc__tls_ex_ctx);
    const SSL_CIPHER *ci = SSL_get_current_cipher(s);
    SSL_SESSION *sess = SSL_get0_session(s);
    SSL_set_msg_callback(s, NULL);
    t->want_keys = 0;
    if (c == NULL || !c->own_records || t->odd || t->secrets != 3 || !t->fin_r || !t->fin_w ||
        SSL_version(s) != TLS1_3_VERSION || ci == NULL || SSL_has_pending(s) || SSL_get_shutdown(s) != 0 ||
        (sess != NULL && SSL_SESSION_get_max_fragment_length(sess) != TLSEXT_max_fragment_length_DISABLED) ||
        fc_tlsr_init(&t->rl, SSL_CIPHER_get_protocol_id(ci), t->rl.rd.secret, t->rl.wr.secret, t->secret_len,
                     t->recs_r, t->recs_w) != 0) {
        fc_tlsr_wipe(&t->rl);
        return;
    }
    t->resumed = (uint8_t)SSL_session_reused(s);
    /* Told that the end was clean, OpenSSL leaves the session resumable (it drops one whose
     * connection it thinks broke off). */
    SSL_set_shutdown(s, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
    SSL_free(s); /* and the BIO */
    sessions_freed++;
    ERR_clear_error();
    t->ssl = NULL;
    t->own = 1;
}

/* Room for <n> bytes of records after the ciphertext being made, or NULL. */
static uint8_t *own_room(fc_tls_conn_t *t, size_t n)
{
    fc_buf_t *o = &t->out[t->cur];
    return buf_room(o, n) == 0 ? (uint8_t *)o->base + o->len : NULL;
}

static void own_made(fc_tls_conn_t *t, long n)
{
    t->out[t->cur].len += (size_t)n;
    t->made += (uint64_t)n;
}

/* Seals <alert>, once: nothing follows a close_notify or a fatal alert. */
static void own_alert(fc_tls_conn_t *t, uint8_t alert)
{
    if (t->close_sent) return;
    t->close_sent = 1;
    uint8_t *p = own_room(t, FC_TLSR_OVERHEAD + 2);
    long n = p != NULL ? fc_tlsr_seal_alert(&t->rl, p, alert) : -1;
    if (n > 0) own_made(t, n);
}

static const char *alert_text(int alert)
{
    switch (alert) {
    case FC_TLSR_BAD_RECORD_MAC: return "decryption failed or bad record mac";
    case FC_TLSR_UNEXPECTED_MESSAGE: return "unexpected message";
    case FC_TLSR_RECORD_OVERFLOW: return "record overflow";
    case FC_TLSR_DECODE_ERROR: return "decode error";
    case FC_TLSR_INTERNAL_ERROR: return "internal error";
    default: return "illegal parameter";
    }
}

/* A record the peer should not have sent: our fatal alert goes out, and the read side ends. */
static ssize_t own_fatal(fc_tls_conn_t *t, int alert, int *end)
{
    own_alert(t, (uint8_t)alert);
    t->error = alert_text(alert);
    *end = UV_EPROTO;
    return -1;
}

/* Up to <room> bytes of plaintext into <dst>: > 0 bytes, 0 when a whole record must come first, or
 * -1 with *<end> (UV_EOF for close_notify or the socket's end, UV_EPROTO for a bad record). A
 * record is opened in place in <in>, and stays there (in_pos at its start) until its plaintext is
 * all handed over. */
static ssize_t own_read(fc_tls_conn_t *t, char *dst, size_t room, int *end)
{
    for (;;) {
        if (t->pt_len > 0) {
            size_t n = FC_MIN(room, t->pt_len);
            memcpy(dst, t->in.base + t->in_pos + FC_TLSR_HEADER + t->pt_off, n);
            t->pt_off += n;
            t->pt_len -= n;
            if (t->pt_len == 0) {
                t->in_pos += t->rec_len;
                t->rec_len = 0;
            }
            return (ssize_t)n;
        }
        uint8_t *p = (uint8_t *)t->in.base + t->in_pos;
        long len = t->in.base != NULL ? fc_tlsr_record_len(p, t->in.len - t->in_pos) : 0;
        if (len == 0) {
            if (!t->eof) return 0;
            *end = UV_EOF; /* the socket ended without close_notify, maybe inside a record */
            return -1;
        }
        if (len < 0) return own_fatal(t, (int)-len, end);
        uint8_t type = 0;
        size_t plen = 0;
        int rc = fc_tlsr_open(&t->rl, p, (size_t)len, &type, &plen);
        if (rc < 0) return own_fatal(t, -rc, end);
        if (fc_tlsr_hs_pending(&t->rl) && type != FC_TLSR_HANDSHAKE) return own_fatal(t, FC_TLSR_UNEXPECTED_MESSAGE, end);
        if (type == FC_TLSR_APPDATA && plen > 0) {
            t->rl.empty = 0;
            t->rec_len = (size_t)len;
            t->pt_off = 0;
            t->pt_len = plen;
            continue;
        }
        t->in_pos += (size_t)len;
        /* Records without data (empty ones, key updates, user_canceled) cost a decryption each:
         * as OpenSSL does, no more than 32 in a row. */
        if (++t->rl.empty > 32) return own_fatal(t, FC_TLSR_UNEXPECTED_MESSAGE, end);
        const uint8_t *pt = p + FC_TLSR_HEADER;
        if (type == FC_TLSR_APPDATA) continue;
        if (type == FC_TLSR_ALERT) {
            if (plen != 2) return own_fatal(t, FC_TLSR_DECODE_ERROR, end);
            if (pt[1] == FC_TLSR_USER_CANCELED) continue; /* a close_notify follows */
            t->close_sent |= pt[1] != FC_TLSR_CLOSE_NOTIFY; /* no alert answers a fatal one */
            if (pt[1] != FC_TLSR_CLOSE_NOTIFY) t->error = "the peer sent a fatal alert";
            *end = pt[1] == FC_TLSR_CLOSE_NOTIFY ? UV_EOF : UV_EPROTO;
            return -1;
        }
        if (type != FC_TLSR_HANDSHAKE) return own_fatal(t, FC_TLSR_UNEXPECTED_MESSAGE, end);
        int answer = 0;
        if ((rc = fc_tlsr_handshake(&t->rl, pt, plen, &answer)) < 0) return own_fatal(t, -rc, end);
        if (answer && !t->close_sent) { /* (after our close_notify, no record at all) */
            uint8_t *o = own_room(t, FC_TLSR_OVERHEAD + 5);
            long n = o != NULL ? fc_tlsr_seal_key_update(&t->rl, o) : -1;
            if (n < 0) return own_fatal(t, FC_TLSR_INTERNAL_ERROR, end);
            own_made(t, n);
        }
    }
}

/* The owner's plaintext <iov> as records of up to 16 KiB (small pieces share one). */
static int own_write(fc_tls_conn_t *t, const uv_buf_t *iov, unsigned n)
{
    size_t total = 0;
    for (unsigned i = 0; i < n; i++) total += iov[i].len;
    if (t->close_sent) return UV_EPIPE; /* nothing follows our close_notify or a fatal alert */
    if (total == 0) return 0;
    size_t nrec = (total + FC_TLSR_MAX_PLAIN - 1) / FC_TLSR_MAX_PLAIN;
    uint8_t *p = own_room(t, total + nrec * FC_TLSR_OVERHEAD), *start = p;
    if (p == NULL) return UV_ENOMEM;
    unsigned i = 0;
    size_t off = 0;
    while (total > 0) {
        size_t plen = FC_MIN(total, (size_t)FC_TLSR_MAX_PLAIN);
        if (fc_tlsr_seal_begin(&t->rl, p, plen) != 0) goto bad;
        for (size_t at = 0; at < plen;) {
            while (off == iov[i].len) {
                i++;
                off = 0;
            }
            size_t k = FC_MIN(iov[i].len - off, plen - at);
            if (fc_tlsr_seal_add(p, at, iov[i].base + off, k) != 0) goto bad;
            at += k;
            off += k;
        }
        long len = fc_tlsr_seal_end(&t->rl, p, plen, FC_TLSR_APPDATA);
        if (len < 0) goto bad;
        p += len;
        total -= plen;
    }
    own_made(t, p - start);
    return 0;
bad: /* records were sealed and not kept: the sequence is lost with them */
    t->error = "cannot seal a record";
    t->failed = 1;
    t->status = UV_EPROTO;
    return UV_EPROTO;
}

/* Runs the handshake, then reads plaintext for the owner while it reads. */
static void process(fc_tls_conn_t *t)
{
    fc_io_t *io = t->io;
    if (io->closing) return;
    if (t->failed) {
        if (io->reading) { /* a reader came back to a dead session */
            io->reading = 0;
            io->on_read(io, t->status);
        }
        return;
    }
    if (!t->handshaken) {
        if (handshake_budget == 0) {
            defer(t); /* later in this loop turn, after what else is ready */
            return;
        }
        handshake_budget--;
        ERR_clear_error();
        if (t->want_keys) keylog_arm(t->ssl, 1);
        int r = SSL_do_handshake(t->ssl);
        if (t->want_keys) keylog_arm(t->ssl, 0); /* (the message callback may have armed it) */
        int e = r == 1 ? SSL_ERROR_NONE : SSL_get_error(t->ssl, r);
        const char *why = NULL;
        if (e == SSL_ERROR_SSL) {
            long v = SSL_get_verify_result(t->ssl);
            why = v != X509_V_OK ? X509_verify_cert_error_string(v) : fc__tls_reason("handshake failed");
        }
        int fr = flush(t); /* the handshake's output (an alert, too) */
        if (fr < 0) {
            fail(t, fr, why != NULL ? why : "write failed");
            return;
        }
        if (r != 1) {
            if (e == SSL_ERROR_WANT_READ && !t->eof) {
                ERR_clear_error();
                in_trim(t);
                if (sock_read_start(t) < 0) fail(t, UV_EIO, "cannot read");
                return;
            }
            if (why == NULL) why = t->eof ? "connection closed during the handshake" : fc__tls_reason("handshake failed");
            fail(t, e == SSL_ERROR_SSL ? UV_EPROTO : UV_ECONNRESET, why);
            return;
        }
        t->handshaken = 1;
        if (!t->client) take_over(t);
        if (t->connecting) {
            t->connecting = 0;
            sock_read_stop(t); /* the owner starts reading when it wants to */
            io->done(io, 0);
            if (t->failed || io->closing) return;
        } else if (!t->client) {
            io->on_read(io, 0);
            if (t->failed || io->closing) return;
        }
    }
    if (!io->reading) {
        /* Nobody reads: what arrived stays buffered, and the socket is not read further once
         * a record's worth waits. */
        in_trim(t);
        if (t->in.len - t->in_pos >= TLS_BUF / 2) sock_read_stop(t);
        return;
    }
    static char scratch[64];
    ssize_t total = 0;
    int end = 0;
    for (;;) {
        char *dst;
        size_t room;
        /* Only with something to read: OpenSSL allocates its 16 KiB record buffer for every
         * attempt, and keeps it while it waits (RELEASE_BUFFERS frees it only after a record was
         * consumed whole), so an attempt on an empty input would pin it to an idle connection;
         * and the owner's read buffer is leased only for bytes that are there. */
        if (t->in_pos == t->in.len && (t->own || !SSL_has_pending(t->ssl))) {
            if (t->eof) end = UV_EOF;
            break;
        }
        if (io->rmode == FC_IO_READ_SCRATCH) {
            dst = scratch;
            room = sizeof(scratch);
        } else {
            if (io->rbuf.base == NULL) {
                io->rbuf.base = fc_bufpool_get(io->pool);
                io->rbuf.cap = io->rbuf.base ? io->pool->size : 0;
                io->rbuf.len = 0;
                if (io->rbuf.base == NULL) {
                    end = UV_ENOBUFS;
                    break;
                }
            }
            if (io->rmode == FC_IO_READ_DISCARD) io->rbuf.len = 0;
            dst = io->rbuf.base + io->rbuf.len;
            room = io->rbuf.cap - io->rbuf.len;
            if (room == 0) break;
        }
        ssize_t n;
        if (t->own) {
            n = own_read(t, dst, room, &end);
            if (n <= 0) break;
        } else {
            ERR_clear_error();
            n = SSL_read(t->ssl, dst, (int)FC_MIN(room, (size_t)INT32_MAX));
        }
        if (n > 0) {
            if (io->rmode == FC_IO_READ_BUF) io->rbuf.len += (size_t)n;
            total += n;
            if (io->rmode == FC_IO_READ_BUF && io->rbuf.len == io->rbuf.cap) break;
            continue;
        }
        int e = SSL_get_error(t->ssl, (int)n);
        if (e == SSL_ERROR_WANT_READ) break;
        if (e == SSL_ERROR_ZERO_RETURN) end = UV_EOF; /* close_notify */
        else if (e == SSL_ERROR_SYSCALL || (e == SSL_ERROR_SSL && t->eof)) end = UV_EOF;
        else {
            t->error = fc__tls_reason("record error");
            end = UV_EPROTO;
        }
        ERR_clear_error();
        break;
    }
    int fr = flush(t); /* a key update or an alert OpenSSL answered with */
    /* The read side is over (EOF or an error): that is the news for the reader, not that the
     * alert OpenSSL sent about it found the socket reset. A writer still hears the failure. */
    if (fr < 0 && end != 0 && !io->writing) fr = 0;
    flushed(t, fr);
    if (t->failed || io->closing) return;
    int full = io->rmode == FC_IO_READ_BUF && io->rbuf.base != NULL && io->rbuf.len == io->rbuf.cap;
    if (full) io->reading = 0; /* resumes once the buffer has room (fc_io_read_start) */
    if (total > 0) {
        io->on_read(io, total);
        if (t->failed || io->closing) return;
    }
    if (end != 0) {
        t->failed = end != UV_EOF;
        if (t->failed) t->status = end; /* what a reader that comes back hears */
        if (io->reading) {
            io->reading = 0;
            sock_read_stop(t);
            io->on_read(io, end);
        } else {
            t->eof = 1;
        }
        return;
    }
    in_trim(t);
    if (io->reading) {
        if (sock_read_start(t) < 0) fail(t, UV_EIO, "cannot read");
    } else if (t->in.len - t->in_pos >= TLS_BUF / 2) {
        sock_read_stop(t);
    }
}

static int tls_read_start(fc_io_t *io)
{
    fc_tls_conn_t *t = io->tls;
    io->reading = 1;
    /* Data may be buffered already (ciphertext, or plaintext inside OpenSSL), or the session is
     * over: the reader hears it soon, not from inside this call. */
    if (t->failed || t->in_pos < t->in.len || (!t->own && SSL_pending(t->ssl) > 0) || t->eof) defer(t);
    if (t->failed) return 0;
    if (!t->eof) {
        int r = sock_read_start(t);
        if (r < 0) {
            io->reading = 0;
            return r;
        }
    }
    return 0;
}

static void tls_read_stop(fc_io_t *io)
{
    fc_tls_conn_t *t = io->tls;
    io->reading = 0;
    if (t->handshaken) sock_read_stop(t); /* a handshake in progress still reads */
}

static int tls_write(fc_io_t *io, uv_buf_t *iov, unsigned n)
{
    fc_tls_conn_t *t = io->tls;
    FC_ASSERT(!io->writing);
    if (t->failed || !t->handshaken) return UV_EPIPE;
    size_t total = 0;
    for (unsigned i = 0; i < n; i++) total += iov[i].len;
    ERR_clear_error();
    if (t->own) {
        int r = own_write(t, iov, n);
        if (r < 0) return r;
    } else if (n > 1 && total <= TLS_COALESCE) {
        /* Small pieces (a head and its body) go out as one record. */
        static char stage[TLS_COALESCE];
        size_t at = 0;
        for (unsigned i = 0; i < n; i++) {
            memcpy(stage + at, iov[i].base, iov[i].len);
            at += iov[i].len;
        }
        if (total > 0 && SSL_write(t->ssl, stage, (int)total) <= 0) {
            t->error = fc__tls_reason("write failed");
            return UV_EPROTO;
        }
    } else {
        for (unsigned i = 0; i < n; i++) {
            if (iov[i].len == 0) continue;
            if (SSL_write(t->ssl, iov[i].base, (int)iov[i].len) <= 0) {
                t->error = fc__tls_reason("write failed");
                return UV_EPROTO;
            }
        }
    }
    t->owner_end = t->made;
    int r = flush(t);
    if (r < 0) {
        t->failed = 1;
        t->status = r;
        return r;
    }
    if (t->sent >= t->owner_end) return 0;
    io->writing = 1;
    return 1;
}

static int tls_shutdown(fc_io_t *io)
{
    fc_tls_conn_t *t = io->tls;
    if (t->handshaken && !t->failed) {
        ERR_clear_error();
        if (t->own) own_alert(t, FC_TLSR_CLOSE_NOTIFY);
        else SSL_shutdown(t->ssl); /* close_notify, so the peer knows the end is the end */
        ERR_clear_error();
    }
    t->shut = 1;
    return flush(t);
}

static void tls_on_close(uv_handle_t *h)
{
    fc_io_t *io = fc_container_of(h, fc_io_t, tcp);
    fc_tls_conn_t *t = io->tls;
    if (t->connecting) { /* closed during a client handshake: the connect is cancelled */
        t->connecting = 0;
        io->done(io, UV_ECANCELED);
    }
    if (t->ssl != NULL) sessions_freed++;
    SSL_free(t->ssl); /* frees the BIO too */
    fc_tlsr_wipe(&t->rl);
    buf_release(&t->in);
    buf_release(&t->out[0]);
    buf_release(&t->out[1]);
    fc_slab_free(&conn_slab, t);
    io->tls = NULL;
    fc__io_closed(io);
}

static void tls_close(fc_io_t *io)
{
    fc_tls_conn_t *t = io->tls;
    if (t->deferred) {
        fc_list_remove(&t->defer_link);
        t->deferred = 0;
    }
    sock_read_stop(t);
    if (t->handshaken && !t->failed && !t->sock_writing) {
        /* close_notify, best effort: OpenSSL forgets a session whose connection ended without
         * one (no TLS 1.2 session-ID resumption after it), and the peer learns it was the end. */
        ERR_clear_error();
        if (t->own) own_alert(t, FC_TLSR_CLOSE_NOTIFY);
        else if (!(SSL_get_shutdown(t->ssl) & SSL_SENT_SHUTDOWN)) SSL_shutdown(t->ssl);
        ERR_clear_error();
        fc_buf_t *o = &t->out[t->cur];
        if (o->len > 0) {
            uv_buf_t b = fc_iov(o->base, o->len);
            (void)uv_try_write((uv_stream_t *)&io->tcp, &b, 1);
        }
    }
    /* A socket write in flight is cancelled by the close (the owner's callback, if its write
     * was that one, says UV_ECANCELED from there), as with a plain io. */
    uv_close((uv_handle_t *)&io->tcp, tls_on_close);
}

static void tls_connected(fc_io_t *io, int status)
{
    fc_tls_conn_t *t = io->tls;
    if (status < 0) {
        io->done(io, status);
        return;
    }
    t->connecting = 1;
    process(t);
}

static int tls_can_export(fc_io_t *io)
{
    (void)io;
    return UV_ENOTSUP; /* the session's keys cannot move to another process */
}

static const fc_io_ops_t fc_io_tls = {
    .name = "tls",
    .read_start = tls_read_start,
    .read_stop = tls_read_stop,
    .write = tls_write,
    .shutdown = tls_shutdown,
    .close = tls_close,
    .connected = tls_connected,
    .can_export = tls_can_export,
};

static fc_tls_conn_t *conn_new(fc_io_t *io, SSL_CTX *sc)
{
    BIO_METHOD *m = get_bio_method();
    if (m == NULL) return NULL;
    if (conn_slab.size == 0) fc_slab_init(&conn_slab, sizeof(fc_tls_conn_t));
    fc_tls_conn_t *t = fc_slab_alloc(&conn_slab);
    if (t == NULL) return NULL;
    t->ssl = SSL_new(sc);
    BIO *b = BIO_new(m);
    if (t->ssl == NULL || b == NULL) {
        SSL_free(t->ssl);
        BIO_free(b);
        fc_slab_free(&conn_slab, t);
        ERR_clear_error();
        return NULL;
    }
    BIO_set_data(b, t);
    SSL_set_bio(t->ssl, b, b);
    SSL_set_ex_data(t->ssl, fc__tls_ex_conn, t);
    t->io = io;
    fc_list_init(&t->defer_link);
    io->tls = t;
    io->ops = &fc_io_tls;
    return t;
}

int fc_io_tls_server(fc_io_t *io, fc_tls_ctx_t *ctx)
{
    fc_tls_conn_t *t = conn_new(io, ctx->ctxs[0]);
    if (t == NULL) return UV_ENOMEM;
    SSL_set_accept_state(t->ssl);
    if (ctx->own_records) {
        SSL_set_msg_callback(t->ssl, msg_cb);
        SSL_set_msg_callback_arg(t->ssl, t);
    }
    return 0;
}

int fc__tls_new_client_session(SSL *ssl, SSL_SESSION *sess)
{
    fc_tls_conn_t *t = SSL_get_ex_data(ssl, fc__tls_ex_conn);
    if (t == NULL || t->slot == NULL) return 0;
    if (*t->slot == NULL && (*t->slot = calloc(1, sizeof(fc_tls_session_t))) == NULL) return 0;
    SSL_SESSION_free((*t->slot)->sess);
    (*t->slot)->sess = sess;
    return 1; /* we keep the reference */
}

int fc_io_tls_client(fc_io_t *io, fc_tls_ctx_t *ctx, const char *sni, const char *verify_name,
                     fc_tls_session_t **slot)
{
    fc_tls_conn_t *t = conn_new(io, ctx->ctxs[0]);
    if (t == NULL) return UV_ENOMEM;
    t->client = 1;
    t->slot = slot;
    SSL_set_connect_state(t->ssl);
    if (sni != NULL) SSL_set_tlsext_host_name(t->ssl, sni);
    if (ctx->verify && verify_name != NULL) {
        X509_VERIFY_PARAM *p = SSL_get0_param(t->ssl);
        X509_VERIFY_PARAM_set_hostflags(p, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        if (X509_VERIFY_PARAM_set1_ip_asc(p, verify_name) != 1) {
            ERR_clear_error();
            X509_VERIFY_PARAM_set1_host(p, verify_name, 0);
        }
    }
    if (slot != NULL && *slot != NULL && (*slot)->sess != NULL) SSL_set_session(t->ssl, (*slot)->sess);
    ERR_clear_error();
    return 0;
}

void fc_tls_session_free(fc_tls_session_t **slot)
{
    if (*slot == NULL) return;
    SSL_SESSION_free((*slot)->sess);
    free(*slot);
    *slot = NULL;
}

const char *fc_io_tls_error(const fc_io_t *io) { return io->tls != NULL ? io->tls->error : NULL; }

int fc_io_tls_resumed(const fc_io_t *io)
{
    if (io->tls == NULL) return 0;
    return io->tls->own ? io->tls->resumed : SSL_session_reused(io->tls->ssl);
}

int fc_io_tls_own_records(const fc_io_t *io) { return io->tls != NULL && io->tls->own; }
