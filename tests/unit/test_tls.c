/* test_tls.c: the TLS transport (tls.c) on a real libuv loop over loopback TCP: a self-signed
 * ECDSA P-256 certificate made in memory at start (files in a mkdtemp directory, removed at the
 * end); handshake and echo, a large transfer into a small read buffer that the reader drains from
 * a timer, certificate and name checks, context build errors and expiry warnings, SNI, close with
 * a write queued or a handshake in progress, EOF and close_notify, ticket resumption across key
 * rotations, tickets on an idle scratch reader, and a record error that comes while the reader
 * is paused. Every case closes its ios, closes the transport's loop handle and checks that
 * uv_loop_close returns 0. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "fulcrum/buf.h"
#include "fulcrum/common.h"
#include "fulcrum/io.h"
#include "fulcrum/tls.h"
#include "harness.h"

void test_tls(void);

/* ---- the loop, with a deadline so a stall fails instead of hanging ----------------------- */

static uv_loop_t loop;
static uv_timer_t deadline;
static int timed_out;

static void on_deadline(uv_timer_t *t)
{
    (void)t;
    timed_out = 1;
}

static void loop_begin(void)
{
    uv_loop_init(&loop);
    uv_timer_init(&loop, &deadline);
}

/* Runs the loop until <cond> holds, failing (not hanging) after <ms>. The deadline repeats: a
 * timer that fired at the top of a UV_RUN_ONCE would leave the poll after it with no timeout. */
#define RUN_UNTIL(cond, ms)                                                                        \
    do {                                                                                           \
        timed_out = 0;                                                                             \
        uv_timer_start(&deadline, on_deadline, (ms), (ms));                                           \
        while (!(cond) && !timed_out) uv_run(&loop, UV_RUN_ONCE);                                  \
        uv_timer_stop(&deadline);                                                                  \
        if (!(cond)) fc_test_fail(__FILE__, __LINE__, "timed out waiting for %s", #cond);          \
    } while (0)

/* Runs the loop for <ms>. */
static void run_for(uint64_t ms)
{
    timed_out = 0;
    uv_timer_start(&deadline, on_deadline, ms, ms);
    while (!timed_out) uv_run(&loop, UV_RUN_ONCE);
    uv_timer_stop(&deadline);
}

/* The end of every case: the ios are closed already; the transport's idle handle goes, the
 * loop must have nothing left, and the per-process freelists are emptied. */
static void loop_end(void)
{
    uv_close((uv_handle_t *)&deadline, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    fc_tls_loop_close();
    uv_run(&loop, UV_RUN_DEFAULT);
    is_int(uv_loop_close(&loop), 0);
    fc_tls_freelist_drain();
    fc_io_freelist_drain();
}

/* ---- certificates ------------------------------------------------------------------------- */

static char dir[64];
static char path_cert[128], path_key[128];       /* test.local, 127.0.0.1: key A */
static char path_other[128], path_other_key[128]; /* other.local: key B */
static char path_exp[128];                        /* test.local, key A, expires in 5 days */
static char path_bundle[128];                     /* both certificates: a CA file for SNI */
static char path_missing[128];

static X509 *make_cert(EVP_PKEY *key, const char *cn, const char *san, long serial, long valid_secs)
{
    X509 *x = X509_new();
    if (x == NULL) return NULL;
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), serial);
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), valid_secs);
    X509_set_pubkey(x, key);
    X509_NAME *n = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(x, n);
    X509V3_CTX v3;
    X509V3_set_ctx_nodb(&v3);
    X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
    const struct {
        int nid;
        const char *value;
    } exts[] = {{NID_basic_constraints, "critical,CA:TRUE"}, {NID_subject_key_identifier, "hash"},
                {NID_subject_alt_name, san}};
    for (size_t i = 0; i < sizeof(exts) / sizeof(exts[0]); i++) {
        X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, &v3, exts[i].nid, exts[i].value);
        if (e == NULL || X509_add_ext(x, e, -1) != 1) {
            X509_EXTENSION_free(e);
            X509_free(x);
            return NULL;
        }
        X509_EXTENSION_free(e);
    }
    if (X509_sign(x, key, EVP_sha256()) <= 0) {
        X509_free(x);
        return NULL;
    }
    return x;
}

static int write_pem(const char *path, X509 *x, X509 *x2, EVP_PKEY *key)
{
    FILE *f = fopen(path, "w");
    if (f == NULL) return -1;
    int good = 1;
    if (x != NULL) good &= PEM_write_X509(f, x) == 1;
    if (x2 != NULL) good &= PEM_write_X509(f, x2) == 1;
    if (key != NULL) good &= PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL) == 1;
    return fclose(f) == 0 && good ? 0 : -1;
}

static int make_files(void)
{
    snprintf(dir, sizeof(dir), "/tmp/fc-tls-XXXXXX");
    if (mkdtemp(dir) == NULL) return -1;
    snprintf(path_cert, sizeof(path_cert), "%s/cert.pem", dir);
    snprintf(path_key, sizeof(path_key), "%s/key.pem", dir);
    snprintf(path_other, sizeof(path_other), "%s/other.pem", dir);
    snprintf(path_other_key, sizeof(path_other_key), "%s/other-key.pem", dir);
    snprintf(path_exp, sizeof(path_exp), "%s/expiring.pem", dir);
    snprintf(path_bundle, sizeof(path_bundle), "%s/bundle.pem", dir);
    snprintf(path_missing, sizeof(path_missing), "%s/missing.pem", dir);
    EVP_PKEY *a = EVP_EC_gen("P-256"), *b = EVP_EC_gen("P-256");
    X509 *ca = a ? make_cert(a, "test.local", "DNS:test.local,IP:127.0.0.1", 1, 365L * 86400) : NULL;
    X509 *cb = b ? make_cert(b, "other.local", "DNS:other.local", 2, 365L * 86400) : NULL;
    X509 *ce = a ? make_cert(a, "test.local", "DNS:test.local,IP:127.0.0.1", 3, 5L * 86400) : NULL;
    int rc = a && b && ca && cb && ce ? 0 : -1;
    if (rc == 0)
        rc = write_pem(path_cert, ca, NULL, NULL) | write_pem(path_key, NULL, NULL, a) |
             write_pem(path_other, cb, NULL, NULL) | write_pem(path_other_key, NULL, NULL, b) |
             write_pem(path_exp, ce, NULL, NULL) | write_pem(path_bundle, ca, cb, NULL);
    X509_free(ca);
    X509_free(cb);
    X509_free(ce);
    EVP_PKEY_free(a);
    EVP_PKEY_free(b);
    return rc;
}

static void remove_files(void)
{
    const char *paths[] = {path_cert, path_key, path_other, path_other_key, path_exp, path_bundle};
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) ok(unlink(paths[i]) == 0);
    ok(rmdir(dir) == 0);
}

/* ---- contexts ----------------------------------------------------------------------------- */

static fc_tls_server_opts_t server_opts(const fc_tls_pair_t *pairs, size_t n)
{
    fc_tls_server_opts_t o = {
        .pairs = pairs,
        .npairs = n,
        .protocols = FC_TLS_V12 | FC_TLS_V13,
        .ciphers = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256",
        .ciphersuites = "TLS_AES_128_GCM_SHA256",
        .groups = "X25519:P-256",
        .tickets = 1,
    };
    return o;
}

static fc_tls_ctx_t *server_ctx(const fc_tls_pair_t *pairs, size_t n)
{
    fc_tls_server_opts_t o = server_opts(pairs, n);
    fc_tls_ctx_t *c = NULL;
    fc_tls_fault_t f = {0};
    fc_err_t err;
    memset(&err, 0, sizeof(err));
    if (fc_tls_server_new(&o, &c, &f, &err, NULL, NULL) != 0) {
        fc_test_fail(__FILE__, __LINE__, "fc_tls_server_new: %s", err.msg);
        return NULL;
    }
    return c;
}

static fc_tls_ctx_t *client_ctx(const char *ca)
{
    fc_tls_client_opts_t o = {.verify = 1, .ca = ca};
    fc_tls_ctx_t *c = NULL;
    fc_tls_fault_t f = {0};
    fc_err_t err;
    memset(&err, 0, sizeof(err));
    if (fc_tls_client_new(&o, &c, &f, &err) != 0) {
        fc_test_fail(__FILE__, __LINE__, "fc_tls_client_new: %s", err.msg);
        return NULL;
    }
    return c;
}

static fc_tls_ctx_t *sctx, *cctx; /* test.local; trusts cert.pem */

/* ---- one side of a connection ------------------------------------------------------------- */

typedef struct side {
    fc_io_t io;
    int connects, connect_status;
    int reads0;          /* on_read(0): the server's handshake ended */
    int reads;           /* on_read(> 0) calls */
    int ends;            /* on_read(< 0) calls */
    ssize_t end;         /* the last negative nread */
    int writes, write_status;
    int closes;
    int seq_write, seq_close; /* when the write and close callbacks ran (for their order) */
    int stop_on_data;    /* on_read(> 0): stop reading after taking the bytes */
    fc_buf_t got;        /* owned: the bytes read */
    void (*on_connected)(struct side *s);
} side_t;

static int seq;

static side_t *side_of(fc_io_t *io) { return fc_container_of(io, side_t, io); }

static void on_connect(fc_io_t *io, int status)
{
    side_t *s = side_of(io);
    s->connects++;
    s->connect_status = status;
    if (status == 0 && s->on_connected != NULL) s->on_connected(s);
}

static void on_read_collect(fc_io_t *io, ssize_t nread)
{
    side_t *s = side_of(io);
    if (nread == 0) {
        s->reads0++;
        return;
    }
    if (nread < 0) {
        s->ends++;
        s->end = nread;
        return;
    }
    s->reads++;
    if (io->rmode == FC_IO_READ_BUF) {
        fc_buf_append(&s->got, io->rbuf.base, io->rbuf.len);
        io->rbuf.len = 0; /* consumed: a full buffer stopped reading, and reading resumes */
    }
    if (s->stop_on_data) fc_io_read_stop(io);
    else fc_io_read_start(io);
}

static void on_write(fc_io_t *io, int status)
{
    side_t *s = side_of(io);
    s->writes++;
    s->write_status = status;
    s->seq_write = ++seq;
}

static void on_closed(fc_io_t *io)
{
    side_t *s = side_of(io);
    s->closes++;
    s->seq_close = ++seq;
}

/* ---- connections over loopback TCP -------------------------------------------------------- */

static int lfd = -1;
static struct sockaddr_in laddr;

static int listener_open(void)
{
    lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (lfd < 0) return -1;
    memset(&laddr, 0, sizeof(laddr));
    laddr.sin_family = AF_INET;
    laddr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(laddr);
    if (bind(lfd, (struct sockaddr *)&laddr, sizeof(laddr)) != 0 || listen(lfd, 16) != 0 ||
        getsockname(lfd, (struct sockaddr *)&laddr, &len) != 0)
        return -1;
    return 0;
}

/* The connection the client's connect made (the kernel completes loopback connects at once). */
static int accept_one(void)
{
    struct pollfd p = {.fd = lfd, .events = POLLIN};
    if (poll(&p, 1, 5000) != 1) return -1;
    return accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
}

/* Starts a client of <cc> (its connect needs a real TCP peer: loopback, not a socketpair) and a
 * server io of <sc> on the accepted socket, reading (into <spool>) for its handshake. <raw> not
 * NULL: the accepted socket is left a plain fd in *<raw>, with no server io. */
static int start_pair(side_t *c, fc_tls_ctx_t *cc, const char *sni, const char *vname, fc_tls_session_t **slot,
                      fc_bufpool_t *cpool, side_t *s, fc_tls_ctx_t *sc, fc_bufpool_t *spool, int *raw)
{
    if (fc_io_init(&c->io, &loop, cpool, on_read_collect) != 0) return -1;
    if (fc_io_tls_client(&c->io, cc, sni, vname, slot) != 0) return -1;
    if (fc_io_connect(&c->io, (const struct sockaddr *)&laddr, on_connect) != 0) return -1;
    int fd = accept_one();
    if (fd < 0) return -1;
    if (raw != NULL) {
        *raw = fd;
        return 0;
    }
    if (fc_io_init(&s->io, &loop, spool, on_read_collect) != 0 || fc_io_open(&s->io, fd) != 0) {
        close(fd);
        return -1;
    }
    if (fc_io_tls_server(&s->io, sc) != 0) return -1;
    return fc_io_read_start(&s->io);
}

/* Closes both (the ones not closed yet) and waits for both close callbacks. */
static void close_pair(side_t *c, side_t *s)
{
    if (c != NULL) fc_io_close(&c->io, on_closed);
    if (s != NULL) fc_io_close(&s->io, on_closed);
    RUN_UNTIL((c == NULL || c->closes > 0) && (s == NULL || s->closes > 0), 5000);
    if (c != NULL) {
        is_int(c->closes, 1);
        fc_buf_free(&c->got);
    }
    if (s != NULL) {
        is_int(s->closes, 1);
        fc_buf_free(&s->got);
    }
}

static int got_is(const side_t *s, const char *want)
{
    return s->got.len == strlen(want) && memcmp(s->got.base, want, s->got.len) == 0;
}

/* ---- 1. handshake and echo ---------------------------------------------------------------- */

static int early_write; /* what a write from inside the connect callback returned */

static void write_three(side_t *s)
{
    static char a[] = "GET / HTTP/1.1\r\n", b[] = "Host: test.local\r\n", c[] = "\r\n";
    uv_buf_t iov[3] = {fc_iov(a, sizeof(a) - 1), fc_iov(b, sizeof(b) - 1), fc_iov(c, sizeof(c) - 1)};
    early_write = fc_io_write(&s->io, iov, 3, on_write); /* fails (UV_EPIPE) before the handshake */
}

static void case_echo(void)
{
    subtest("handshake and echo");
    loop_begin();
    fc_bufpool_t pool;
    fc_bufpool_init(&pool, 16384, 4);
    side_t c = {.on_connected = write_three}, s = {0};
    early_write = -1000;
    ok(start_pair(&c, cctx, "test.local", "test.local", NULL, &pool, &s, sctx, &pool, NULL) == 0);
    ok(strcmp(c.io.ops->name, "tls") == 0);
    is_int(c.connects, 0); /* not from inside fc_io_connect */
    const char *req = "GET / HTTP/1.1\r\nHost: test.local\r\n\r\n";
    RUN_UNTIL(c.connects == 1 && s.got.len >= strlen(req), 5000);
    is_int(c.connect_status, 0);
    ok(early_write == 0 || early_write == 1); /* the handshake was over when the callback came */
    is_int(s.reads0, 1);
    ok(got_is(&s, req));
    is_int(fc_io_tls_resumed(&c.io), 0);
    ok(fc_io_tls_error(&c.io) == NULL);
    ok(fc_io_tls_error(&s.io) == NULL);
    ok(fc_io_tls_own_records(&s.io));  /* the server's records are tls_record.c's from here on */
    ok(!fc_io_tls_own_records(&c.io)); /* a client's stay OpenSSL's */
    RUN_UNTIL(early_write == 0 || c.writes == 1, 5000);
    if (c.writes) is_int(c.write_status, 0);

    char answer[] = "HTTP/1.1 204 No Content\r\n\r\n";
    uv_buf_t iov = fc_iov(answer, sizeof(answer) - 1);
    int r = fc_io_write(&s.io, &iov, 1, on_write);
    ok(r == 0 || r == 1);
    is_int(fc_io_read_start(&c.io), 0);
    RUN_UNTIL(c.got.len >= sizeof(answer) - 1 && (r == 0 || s.writes == 1), 5000);
    ok(got_is(&c, answer));
    is_int(c.ends + s.ends, 0);
    is_int(s.reads0, 1); /* once only */
    int fd = -1;
    is_int(fc_io_export(&c.io, &fd), UV_ENOTSUP); /* TLS state cannot move */

    close_pair(&c, &s);
    is_int(pool.nfree, 2); /* both leases came back */
    fc_bufpool_drain(&pool);
    loop_end();
}

/* ---- 2. a large transfer into a small buffer drained from a timer ------------------------- */

#define BIG_TOTAL (4u << 20)
#define BIG_CHUNK (64u << 10)

static struct {
    side_t *c;
    char *chunk;
    size_t queued;        /* bytes handed to fc_io_write */
    size_t done_writes;   /* writes that completed (0 return or callback) */
    int write_err;
    uint64_t sent_hash, got_hash;
    size_t got;           /* bytes consumed by the server */
    size_t mismatches;
    size_t fulls, resumes, releases;
    int read_err;
    uv_timer_t resume;
} big;

static unsigned char pattern(size_t i) { return (unsigned char)(((i * 2654435761u) >> 11) ^ (i >> 16)); }

static uint64_t fnv(uint64_t h, const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

static void big_on_write(fc_io_t *io, int status);

/* Writes the next chunks: each one from the last one's callback, or at once after a 0 return. */
static void big_write_next(void)
{
    while (big.queued < BIG_TOTAL) {
        for (size_t i = 0; i < BIG_CHUNK; i++) big.chunk[i] = (char)pattern(big.queued + i);
        big.sent_hash = fnv(big.sent_hash, (unsigned char *)big.chunk, BIG_CHUNK);
        /* two pieces, each over the coalescing limit: one record run per piece */
        uv_buf_t iov[2] = {fc_iov(big.chunk, BIG_CHUNK / 2), fc_iov(big.chunk + BIG_CHUNK / 2, BIG_CHUNK / 2)};
        big.queued += BIG_CHUNK;
        int r = fc_io_write(&big.c->io, iov, 2, big_on_write);
        if (r < 0) {
            big.write_err = r;
            return;
        }
        if (r == 1) return;
        big.done_writes++;
    }
}

static void big_on_write(fc_io_t *io, int status)
{
    (void)io;
    big.done_writes++;
    if (status != 0) {
        big.write_err = status;
        return;
    }
    big_write_next();
}

static void big_on_resume(uv_timer_t *t)
{
    side_t *s = t->data;
    fc_io_t *io = &s->io;
    const unsigned char *p = (const unsigned char *)io->rbuf.base;
    for (size_t i = 0; i < io->rbuf.len; i++) big.mismatches += p[i] != pattern(big.got + i);
    big.got_hash = fnv(big.got_hash, p, io->rbuf.len);
    big.got += io->rbuf.len;
    if (big.resumes++ % 2) { /* every other time the lease goes back, and a new one is taken */
        fc_io_release_buf(io);
        big.releases++;
    } else {
        io->rbuf.len = 0;
    }
    if (fc_io_read_start(io) != 0) big.read_err = -1;
}

static void big_on_read(fc_io_t *io, ssize_t nread)
{
    side_t *s = side_of(io);
    if (nread == 0) {
        s->reads0++;
        return;
    }
    if (nread < 0) {
        big.read_err = (int)nread;
        return;
    }
    if (io->rbuf.len == io->rbuf.cap) { /* full: reading stopped by itself; drain later */
        if (io->reading) big.read_err = -2;
        big.fulls++;
        uv_timer_start(&big.resume, big_on_resume, 1, 0);
    } /* else the bytes stay in rbuf, and reading goes on */
}

static void case_big(void)
{
    subtest("4 MiB into a 16 KiB buffer drained from a timer");
    loop_begin();
    fc_bufpool_t pool;
    fc_bufpool_init(&pool, 16384, 4);
    side_t c = {0}, s = {0};
    memset(&big, 0, sizeof(big));
    big.c = &c;
    big.chunk = malloc(BIG_CHUNK);
    big.sent_hash = big.got_hash = 14695981039346656037ull;
    uv_timer_init(&loop, &big.resume);
    big.resume.data = &s;
    ok(start_pair(&c, cctx, "test.local", "test.local", NULL, &pool, &s, sctx, &pool, NULL) == 0);
    s.io.on_read = big_on_read;
    RUN_UNTIL(c.connects == 1, 5000);
    is_int(c.connect_status, 0);
    big_write_next();
    RUN_UNTIL(big.got == BIG_TOTAL || big.write_err != 0 || big.read_err != 0, 30000);
    is_int(big.write_err, 0);
    is_int(big.read_err, 0);
    is_int(big.got, BIG_TOTAL);
    is_int(big.mismatches, 0);
    ok(big.got_hash == big.sent_hash);
    is_int(big.queued, BIG_TOTAL);
    RUN_UNTIL(big.done_writes == BIG_TOTAL / BIG_CHUNK, 5000);
    is_int(big.fulls, BIG_TOTAL / 16384);
    ok(big.releases > 0);
    is_int(s.reads0, 1);
    uv_close((uv_handle_t *)&big.resume, NULL);
    close_pair(&c, &s);
    free(big.chunk);
    is_int(pool.nfree, 1); /* the server's lease came back (the client never read) */
    fc_bufpool_drain(&pool);
    loop_end();
}

/* ---- 3. certificate and name checks -------------------------------------------------------- */

static void verify_one(const char *what, fc_tls_ctx_t *cc, const char *vname, int want_ok, const char *want_error)
{
    subtest(what);
    loop_begin();
    fc_bufpool_t pool;
    fc_bufpool_init(&pool, 16384, 4);
    side_t c = {0}, s = {0};
    ok(start_pair(&c, cc, "test.local", vname, NULL, &pool, &s, sctx, &pool, NULL) == 0);
    RUN_UNTIL(c.connects == 1, 5000);
    if (want_ok) {
        is_int(c.connect_status, 0);
        ok(fc_io_tls_error(&c.io) == NULL);
    } else {
        ok(c.connect_status < 0);
        const char *e = fc_io_tls_error(&c.io);
        ok(e != NULL);
        if (want_error != NULL && (e == NULL || strstr(e, want_error) == NULL))
            fc_test_fail(__FILE__, __LINE__, "error \"%s\" does not mention \"%s\"", e ? e : "(null)", want_error);
        /* the server hears of the failure (the client's alert) as a negative read */
        RUN_UNTIL(s.ends == 1, 5000);
        ok(s.end < 0 && s.end != UV_EOF);
        is_int(s.reads0, 0);
        char x[] = "x";
        uv_buf_t iov = fc_iov(x, 1);
        is_int(fc_io_write(&c.io, &iov, 1, on_write), UV_EPIPE); /* a dead session takes no writes */
    }
    run_for(20);
    is_int(c.connects, 1); /* exactly once */
    close_pair(&c, &s);
    is_int(c.writes, 0);
    fc_bufpool_drain(&pool);
    loop_end();
}

static void case_verify(void)
{
    verify_one("the name an IP address SAN", cctx, "127.0.0.1", 1, NULL);
    verify_one("a name the certificate lacks", cctx, "wrong.local", 0, "hostname mismatch");
    fc_tls_ctx_t *other = client_ctx(path_other); /* trusts a different self-signed certificate */
    if (other != NULL) verify_one("a certificate no CA vouches for", other, "test.local", 0, NULL);
    fc_tls_ctx_free(other);
}

/* ---- 4. context errors, expiry warnings, SNI ---------------------------------------------- */

static long warn_days[4];
static size_t warn_pairs[4], nwarn;

static void on_warn(void *arg, size_t pair, long days, const char *subject)
{
    (void)arg;
    (void)subject;
    if (nwarn < 4) {
        warn_days[nwarn] = days;
        warn_pairs[nwarn] = pair;
    }
    nwarn++;
}

static int build(const fc_tls_server_opts_t *o, fc_tls_fault_t *f, fc_err_t *err)
{
    fc_tls_ctx_t *c = NULL;
    memset(f, 0, sizeof(*f));
    memset(err, 0, sizeof(*err));
    nwarn = 0;
    int rc = fc_tls_server_new(o, &c, f, err, on_warn, NULL);
    fc_tls_ctx_free(c);
    return rc;
}

static void sni_one(const char *what, fc_tls_ctx_t *sc, fc_tls_ctx_t *cc, const char *sni, const char *vname,
                    int want_ok)
{
    subtest(what);
    loop_begin();
    fc_bufpool_t pool;
    fc_bufpool_init(&pool, 16384, 4);
    side_t c = {0}, s = {0};
    ok(start_pair(&c, cc, sni, vname, NULL, &pool, &s, sc, &pool, NULL) == 0);
    RUN_UNTIL(c.connects == 1, 5000);
    if (want_ok) is_int(c.connect_status, 0);
    else ok(c.connect_status < 0);
    close_pair(&c, &s);
    fc_bufpool_drain(&pool);
    loop_end();
}

static void case_contexts(void)
{
    fc_tls_fault_t f;
    fc_err_t err;

    subtest("a key that does not match its certificate");
    fc_tls_pair_t bad_key[2] = {{path_cert, path_key}, {path_other, path_key}};
    fc_tls_server_opts_t o = server_opts(bad_key, 2);
    is_int(build(&o, &f, &err), -1);
    is_int(f.field, FC_TLS_F_KEY);
    is_int(f.pair, 1);
    ok(err.msg[0] != '\0');

    subtest("a missing certificate file");
    fc_tls_pair_t missing[1] = {{path_missing, path_key}};
    o = server_opts(missing, 1);
    is_int(build(&o, &f, &err), -1);
    is_int(f.field, FC_TLS_F_CERT);
    is_int(f.pair, 0);
    ok(strstr(err.msg, "missing.pem") != NULL);

    subtest("a cipher list with no usable cipher");
    fc_tls_pair_t one[1] = {{path_cert, path_key}};
    o = server_opts(one, 1);
    o.ciphers = "NO-SUCH-CIPHER";
    is_int(build(&o, &f, &err), -1);
    is_int(f.field, FC_TLS_F_CIPHERS);

    subtest("a certificate that expires in 5 days is warned about");
    fc_tls_pair_t expiring[2] = {{path_cert, path_key}, {path_exp, path_key}};
    o = server_opts(expiring, 2);
    is_int(build(&o, &f, &err), 0);
    is_int(nwarn, 1);
    ok(warn_days[0] == 4 || warn_days[0] == 5);
    is_int(warn_pairs[0], 1);
    o = server_opts(one, 1);
    is_int(build(&o, &f, &err), 0);
    is_int(nwarn, 0); /* a year away: no warning */

    subtest("two pairs for different names");
    fc_tls_pair_t two[2] = {{path_cert, path_key}, {path_other, path_other_key}};
    o = server_opts(two, 2);
    is_int(build(&o, &f, &err), 0);
    fc_tls_ctx_t *sc2 = server_ctx(two, 2), *both = client_ctx(path_bundle);
    if (sc2 != NULL && both != NULL) {
        sni_one("SNI other.local picks the second pair", sc2, both, "other.local", "other.local", 1);
        sni_one("SNI test.local picks the first pair", sc2, both, "test.local", "test.local", 1);
        sni_one("no SNI gets the first pair", sc2, both, NULL, "other.local", 0);
        sni_one("an unknown SNI name gets the first pair", sc2, both, "nope.local", "test.local", 1);
    }
    fc_tls_ctx_free(sc2);
    fc_tls_ctx_free(both);
}

/* ---- 5. close with a write queued, close during the handshake ----------------------------- */

static void case_close_queued(void)
{
    subtest("close with a write queued");
    loop_begin();
    fc_bufpool_t pool;
    fc_bufpool_init(&pool, 16384, 4);
    side_t c = {0}, s = {0};
    s.stop_on_data = 1;
    ok(start_pair(&c, cctx, "test.local", "test.local", NULL, &pool, &s, sctx, &pool, NULL) == 0);
    RUN_UNTIL(c.connects == 1 && s.reads0 == 1, 5000);
    is_int(c.connect_status, 0);
    fc_io_read_stop(&s.io); /* the server reads nothing more: the socket buffers fill */
    size_t n = 1u << 20;
    char *p = calloc(1, n);
    int r = 0, tries = 0;
    while (r == 0 && tries++ < 256) {
        uv_buf_t iov = fc_iov(p, n);
        r = fc_io_write(&c.io, &iov, 1, on_write);
    }
    is_int(r, 1);
    /* Closed at once: a turn of the loop first could let the kernel take the rest (its buffers
     * grow under autotuning), and then no write would be queued at the close. */
    ok(c.io.writing);
    is_int(c.writes, 0);
    seq = 0;
    fc_io_close(&c.io, on_closed);
    RUN_UNTIL(c.closes == 1, 5000);
    is_int(c.writes, 1);
    ok(c.write_status == UV_ECANCELED || c.write_status == 0);
    ok(c.seq_write > 0 && c.seq_write < c.seq_close); /* the write's callback first */
    run_for(10);
    is_int(c.writes, 1);
    is_int(c.closes, 1);
    close_pair(&c, &s);
    free(p);
    fc_bufpool_drain(&pool);
    loop_end();

    subtest("close during the handshake");
    loop_begin();
    fc_bufpool_init(&pool, 16384, 4);
    side_t c2 = {0};
    int raw = -1;
    ok(start_pair(&c2, cctx, "test.local", "test.local", NULL, &pool, NULL, NULL, NULL, &raw) == 0);
    struct pollfd pf = {.fd = raw, .events = POLLIN};
    RUN_UNTIL(poll(&pf, 1, 0) == 1, 5000); /* the ClientHello is there: the handshake waits */
    is_int(c2.connects, 0);
    seq = 0;
    fc_io_close(&c2.io, on_closed);
    RUN_UNTIL(c2.closes == 1, 5000);
    is_int(c2.connects, 1);
    is_int(c2.connect_status, UV_ECANCELED);
    ok(c2.seq_close > 0);
    close(raw);
    fc_bufpool_drain(&pool);
    loop_end();
}

/* ---- 6. EOF and close_notify ---------------------------------------------------------------- */

/* <how>: 0 the client closes its io (close_notify), 1 its io shuts down (close_notify, then FIN),
 * 2 its socket is shut with no close_notify; <paused>: the server is not reading when the end
 * comes and reads again after it; <unread>: the client never read what the server sent (its
 * tickets), so its kernel answers the close with a reset. */
static void eof_one(const char *what, int how, int paused, int unread)
{
    subtest(what);
    loop_begin();
    fc_bufpool_t pool;
    fc_bufpool_init(&pool, 16384, 4);
    side_t c = {0}, s = {0};
    ok(start_pair(&c, cctx, "test.local", "test.local", NULL, &pool, &s, sctx, &pool, NULL) == 0);
    RUN_UNTIL(c.connects == 1 && s.reads0 == 1, 5000);
    char hi[] = "hi";
    uv_buf_t iov = fc_iov(hi, 2);
    ok(fc_io_write(&c.io, &iov, 1, on_write) >= 0);
    RUN_UNTIL(s.got.len == 2, 5000);
    if (!unread) {
        char yo[] = "yo";
        uv_buf_t iov2 = fc_iov(yo, 2);
        ok(fc_io_write(&s.io, &iov2, 1, on_write) >= 0);
        is_int(fc_io_read_start(&c.io), 0);
        RUN_UNTIL(c.got.len == 2, 5000);
        fc_io_read_stop(&c.io);
    }
    if (paused) fc_io_read_stop(&s.io);
    if (how == 0) {
        fc_io_close(&c.io, on_closed);
    } else if (how == 1) {
        is_int(fc_io_shutdown(&c.io), 0);
    } else {
        uv_os_fd_t fd;
        is_int(uv_fileno((uv_handle_t *)&c.io.tcp, &fd), 0);
        is_int(shutdown(fd, SHUT_WR), 0);
    }
    if (paused) {
        run_for(30);
        is_int(s.ends, 0); /* nobody reads: nobody is told */
        is_int(fc_io_read_start(&s.io), 0);
        is_int(s.ends, 0); /* not from inside read_start */
    }
    RUN_UNTIL(s.ends == 1, 5000);
    is_int(s.end, UV_EOF);
    ok(!s.io.reading);
    run_for(10);
    is_int(s.ends, 1);
    close_pair(&c, &s); /* (fc_io_close is idempotent: a closed one is only waited for) */
    fc_bufpool_drain(&pool);
    loop_end();
}

static void case_eof(void)
{
    eof_one("close_notify from a closing client is EOF", 0, 0, 0);
    eof_one("close_notify and FIN from a shutdown is EOF", 1, 0, 0);
    eof_one("a FIN with no close_notify is EOF", 2, 0, 0);
    eof_one("close_notify while the server is paused is EOF once it reads", 0, 1, 0);
    eof_one("a bare FIN while the server is paused is EOF once it reads", 2, 1, 0);
    eof_one("a FIN from a client that read nothing is EOF", 2, 0, 1);
    eof_one("a client that read nothing closes (a reset): EOF, not the alert's write error", 0, 0, 1);
    eof_one("the same while the server is paused", 0, 1, 1);
}

/* ---- 7. ticket resumption across key rotations --------------------------------------------- */

/* One connection with <slot>: connect, one request and answer (so the client reads the
 * server's tickets), close. Returns whether the client resumed (-1: it did not connect). */
static int resume_one(fc_tls_session_t **slot, int *server_resumed)
{
    fc_bufpool_t pool;
    fc_bufpool_init(&pool, 16384, 4);
    side_t c = {0}, s = {0};
    int resumed = -1;
    ok(start_pair(&c, cctx, "test.local", "test.local", slot, &pool, &s, sctx, &pool, NULL) == 0);
    RUN_UNTIL(c.connects == 1 && s.reads0 == 1, 5000);
    if (c.connect_status == 0) {
        resumed = fc_io_tls_resumed(&c.io);
        *server_resumed = fc_io_tls_resumed(&s.io);
        char q[] = "ping", a[] = "pong";
        uv_buf_t iq = fc_iov(q, 4), ia = fc_iov(a, 4);
        ok(fc_io_write(&c.io, &iq, 1, on_write) >= 0);
        RUN_UNTIL(s.got.len == 4, 5000);
        ok(fc_io_write(&s.io, &ia, 1, on_write) >= 0);
        is_int(fc_io_read_start(&c.io), 0);
        RUN_UNTIL(c.got.len == 4, 5000);
        ok(got_is(&c, "pong"));
    }
    close_pair(&c, &s);
    fc_bufpool_drain(&pool);
    return resumed;
}

static void case_resume(fc_tls_tickets_t *keys)
{
    fc_tls_session_t *a = NULL, *b = NULL, *r = NULL;
    int sr = -1;
    loop_begin();

    subtest("a first connection is a full handshake and keeps a session");
    is_int(resume_one(&a, &sr), 0);
    is_int(sr, 0);
    ok(a != NULL);
    is_int(resume_one(&b, &sr), 0);
    ok(b != NULL);
    is_int(resume_one(&r, &sr), 0);
    ok(r != NULL);

    subtest("the next connection resumes");
    is_int(resume_one(&r, &sr), 1);
    is_int(sr, 1);

    /* A TLS 1.3 client uses a ticket once (OpenSSL marks the session not resumable when it
     * resumes with it), so a resumed connection must leave a fresh ticket in the slot. */
    subtest("and so does the one after it (a resumption renews the ticket)");
    is_int(resume_one(&r, &sr), 1);
    is_int(sr, 1);

    subtest("a session from before one rotation resumes");
    is_int(fc_tls_tickets_rotate(keys), 0);
    is_int(resume_one(&a, &sr), 1); /* the previous key: and a ticket of the new key comes */
    is_int(sr, 1);

    subtest("a session from before two rotations does not");
    is_int(fc_tls_tickets_rotate(keys), 0);
    is_int(resume_one(&b, &sr), 0); /* a full handshake, and a connection all the same */
    is_int(sr, 0);
    is_int(resume_one(&a, &sr), 1); /* its ticket is from the previous key */
    is_int(resume_one(&b, &sr), 1); /* it got a fresh ticket above */

    subtest("a connection without a slot does not resume");
    is_int(resume_one(NULL, &sr), 0);

    fc_tls_session_free(&a);
    fc_tls_session_free(&b);
    fc_tls_session_free(&r);
    ok(a == NULL && b == NULL && r == NULL);
    loop_end();
}

/* ---- 8. tickets only, to an idle scratch reader -------------------------------------------- */

static void case_idle_tickets(void)
{
    subtest("an idle scratch reader that receives only tickets is not called");
    loop_begin();
    fc_bufpool_t pool;
    fc_bufpool_init(&pool, 16384, 4);
    side_t c = {0}, s = {0};
    fc_tls_session_t *slot = NULL;
    ok(start_pair(&c, cctx, "test.local", "test.local", &slot, &pool, &s, sctx, &pool, NULL) == 0);
    RUN_UNTIL(c.connects == 1 && s.reads0 == 1, 5000);
    ok(slot == NULL); /* TLS 1.3: the tickets come after the handshake, and nobody read them yet */
    c.io.rmode = FC_IO_READ_SCRATCH;
    is_int(fc_io_read_start(&c.io), 0);
    RUN_UNTIL(slot != NULL, 5000); /* the tickets were read */
    run_for(30);
    is_int(c.reads + c.ends + c.reads0, 0);
    ok(c.io.reading); /* still watching for a close */
    ok(c.io.rbuf.base == NULL);
    fc_io_close(&s.io, on_closed); /* and a close is what it sees */
    RUN_UNTIL(c.ends == 1, 5000);
    is_int(c.end, UV_EOF);
    is_int(c.reads, 0);
    close_pair(&c, &s);
    fc_tls_session_free(&slot);
    fc_bufpool_drain(&pool);
    loop_end();
}

/* ---- 9. a record error while the reader is paused ------------------------------------------ */

static void case_paused_error(void)
{
    subtest("a bad record after data the paused reader took is an error when it reads again");
    loop_begin();
    fc_bufpool_t pool;
    fc_bufpool_init(&pool, 16384, 4);
    side_t c = {0}, s = {0};
    c.stop_on_data = 1; /* like a connection that has a whole message and stops to answer it */
    ok(start_pair(&c, cctx, "test.local", "test.local", NULL, &pool, &s, sctx, &pool, NULL) == 0);
    RUN_UNTIL(c.connects == 1 && s.reads0 == 1, 5000);
    /* data, then bytes that are no TLS record, in one go (the client reads both at once) */
    char hello[] = "hello";
    uv_buf_t iov = fc_iov(hello, 5);
    is_int(fc_io_write(&s.io, &iov, 1, on_write), 0);
    uv_os_fd_t fd;
    is_int(uv_fileno((uv_handle_t *)&s.io.tcp, &fd), 0);
    static const char junk[] = "\x17\x03\x03\x00\x10garbage-garbage!";
    is_int(write(fd, junk, sizeof(junk) - 1), (ssize_t)(sizeof(junk) - 1));
    is_int(fc_io_read_start(&c.io), 0);
    RUN_UNTIL(c.reads == 1, 5000);
    ok(got_is(&c, "hello"));
    ok(!c.io.reading);
    run_for(10);
    is_int(c.ends, 0);
    is_int(fc_io_read_start(&c.io), 0); /* the reader comes back */
    RUN_UNTIL(c.ends + c.reads0 > 0, 5000);
    is_int(c.reads0, 0); /* nread 0 means "a server handshake ended": never for this reader */
    is_int(c.ends, 1);
    ok(c.end < 0 && c.end != UV_EOF);
    ok(fc_io_tls_error(&c.io) != NULL);
    close_pair(&c, &s);
    fc_bufpool_drain(&pool);
    loop_end();
}

void test_tls(void)
{
    fc_tls_tickets_t keys;
    subtest("setup");
    void (*old_pipe)(int) = signal(SIGPIPE, SIG_IGN); /* as fulcrum's main does: a write to a reset
                                                          socket is an error, not a signal */
    if (make_files() != 0 || listener_open() != 0) {
        fc_test_fail(__FILE__, __LINE__, "cannot make the certificates or the listener");
        return;
    }
    ok(fc_tls_tickets_init(&keys) == 0);
    fc_tls_use_tickets(&keys);
    fc_tls_pair_t pair = {path_cert, path_key};
    sctx = server_ctx(&pair, 1);
    cctx = client_ctx(path_cert);
    if (sctx != NULL && cctx != NULL) {
        case_echo();
        case_big();
        case_verify();
        case_contexts();
        case_close_queued();
        case_eof();
        case_resume(&keys);
        case_idle_tickets();
        case_paused_error();
    }
    subtest("teardown");
    fc_tls_ctx_free(sctx);
    fc_tls_ctx_free(cctx);
    fc_tls_use_tickets(NULL);
    close(lfd);
    remove_files();
    signal(SIGPIPE, old_pipe);
}
