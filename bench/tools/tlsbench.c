/* tlsbench.c: a TLS handshake load generator for bench/ (bench/lib/bench.py runs it; docs/benchmarks.md).
 * One thread, epoll (edge-triggered), -c connections in flight. Each connection connects, does a TLS handshake
 * (a full one, or resuming the session its slot saved from its previous connection: a TLS 1.3 ticket, a TLS 1.2
 * ticket, or a TLS 1.2 session ID with tickets off), sends one `GET PATH HTTP/1.1` with `Connection: close`,
 * reads the response, and counts once the proxy has closed. It reports handshakes/s, how many were resumed, the
 * negotiated protocol, cipher suite, group, certificate and ALPN (to show every proxy got the same), latency,
 * and errors by kind. --hold N instead opens N keep-alive connections, one request each, and holds them idle.
 * Every run is bounded: -d seconds and -n connections, 5 s of drain, a per-connection timeout.
 * Talks to nothing but OpenSSL and the kernel; loopback targets only (the harness passes 127.0.0.1).
 */
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define TB_HEAD_MAX 4096          /* a response head larger than this is an error */
#define TB_READ_CHUNK 16384       /* one TLS record's worth of plaintext per SSL_read */
#define TB_MAX_COMBOS 8           /* distinct "protocol cipher group cert alpn" lines kept */
#define TB_MAX_ERRTEXT 4          /* distinct error texts kept */
#define TB_DRAIN_NS 5000000000LL  /* in-flight connections may finish this long after -d */
#define TB_SETUP_NS 60000000000LL /* --hold: every connection is set up within this, or counted failed */
#define TB_LAT_BUCKETS 400        /* latency histogram: 40 buckets per decade, 1 us .. 10 s */
#define TB_MAX_CONNS 100000       /* upper bound for -c and --hold */

/* What a connection is doing. */
enum tb_state {
    TB_FREE = 0,      /* slot unused */
    TB_CONNECTING,    /* TCP connect in progress */
    TB_HANDSHAKE,     /* SSL_connect not finished */
    TB_WRITING,       /* request partly written */
    TB_READING,       /* reading the response, then the close */
    TB_HELD,          /* --hold: response read, connection kept idle */
};

/* Error kinds, counted separately. */
enum tb_err {
    TB_E_CONNECT = 0, /* socket/connect failed */
    TB_E_HANDSHAKE,   /* SSL_connect failed */
    TB_E_IO,          /* SSL_write/SSL_read failed after the handshake */
    TB_E_STATUS,      /* response not 200 or unparsable */
    TB_E_TRUNCATED,   /* closed before the full response */
    TB_E_TIMEOUT,     /* per-connection timeout */
    TB_E_COUNT
};
static const char *const tb_err_names[TB_E_COUNT] = {"connect", "handshake", "io", "status", "truncated",
                                                     "timeout"};

/* One connection slot. In load mode a slot runs one connection after another and keeps the session for the
 * next one; in --hold mode each slot is one held connection. */
typedef struct tb_conn {
    enum tb_state state;     /* see enum tb_state */
    int fd;                  /* socket, or -1 */
    SSL *ssl;                /* owned while the connection lives */
    SSL_SESSION *sess;       /* owned: the session the next connection of this slot offers, or NULL */
    int64_t started_ns;      /* when connect() was called */
    int64_t deadline_ns;     /* per-connection timeout */
    size_t wrote;            /* request bytes written */
    char head[TB_HEAD_MAX];  /* the response head, until complete */
    size_t head_len;         /* bytes in head */
    bool head_done;          /* the head was parsed */
    int status;              /* response status code */
    int64_t body_left;       /* Content-Length bytes still to read; -1: until close */
    bool complete;           /* the whole response was read */
    bool offered;            /* a session was offered in this connection's ClientHello */
    bool offered_ticket;     /* ... and it carried a ticket */
    int tickets;             /* tickets received on this connection */
} tb_conn_t;

/* Command line. */
static struct {
    const char *host;        /* IPv4 address to connect to */
    int port;                /* port */
    const char *sni;         /* server name sent, and the Host header */
    const char *path;        /* request target */
    int conns;               /* connections in flight */
    double duration;         /* seconds of load */
    long max;                /* connections started at most (0: no limit) */
    int tls_version;         /* 0: any of 1.2/1.3; else TLS1_2_VERSION or TLS1_3_VERSION */
    enum { TB_RESUME_NONE = 0, TB_RESUME_TICKET, TB_RESUME_ID } resume;
    const char *sigalgs;     /* client signature algorithms, or NULL for OpenSSL's default */
    const char *groups;      /* client groups, or NULL */
    const char *sessions;    /* file: load the slots' sessions from it, save them back at the end */
    long hold;               /* --hold: connections to open and hold (0: load mode) */
    double hold_max;         /* --hold: seconds to hold at most */
    double timeout;          /* per-connection timeout, seconds */
    bool json;               /* print the BENCHJSON line */
    bool verbose;            /* one line per finished connection on stderr */
} opt = {"127.0.0.1", 0, "bench.test", "/small", 64, 10, 0, 0, TB_RESUME_NONE, NULL, NULL, NULL, 0, 600, 10,
         false, false};

/* Results. */
static struct {
    long started;            /* connections started */
    long ok;                 /* completed: full response read (and, in load mode, closed by the server) */
    long resumed;            /* of ok: SSL_session_reused() */
    long resumed_ticket;     /* of resumed: the offered session carried a ticket */
    long offered;            /* of ok: a session was offered */
    long clean_close;        /* of ok in load mode: the server sent close_notify before closing */
    long tickets;            /* tickets received over all ok connections */
    long err[TB_E_COUNT];    /* errors by kind */
    long held_closed;        /* --hold: held connections the server closed while held */
    long aborted;            /* in flight when the drain time ran out */
    uint64_t lat[TB_LAT_BUCKETS]; /* latency histogram of ok connections (connect to response complete) */
    struct { char what[160]; long count; } combo[TB_MAX_COMBOS];
    int ncombo;
    long combo_other;        /* ok connections whose combination did not fit the table */
    char errtext[TB_MAX_ERRTEXT][200];
    int nerrtext;
} st;

static tb_conn_t *g_conns;   /* opt.conns slots (load) or opt.hold slots (--hold) */
static long g_nslots;
static int g_ep = -1;
static SSL_CTX *g_ctx;
static struct sockaddr_in g_addr;
static char g_request[1024];
static size_t g_request_len;
static char g_rbuf[TB_READ_CHUNK];
static long g_inflight;      /* connections not TB_FREE and not TB_HELD */
static volatile sig_atomic_t g_stop;

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

static void note_error_text(const char *text)
{
    for (int i = 0; i < st.nerrtext; i++)
        if (strcmp(st.errtext[i], text) == 0)
            return;
    if (st.nerrtext < TB_MAX_ERRTEXT)
        snprintf(st.errtext[st.nerrtext++], sizeof st.errtext[0], "%s", text);
}

/* Counts an error of <kind> and remembers its text (OpenSSL's queue first, else <what>). */
static void count_error(enum tb_err kind, const char *what)
{
    char text[200];
    unsigned long e = ERR_peek_last_error();
    if (e) {
        char ebuf[160];
        ERR_error_string_n(e, ebuf, sizeof ebuf);
        snprintf(text, sizeof text, "%s: %s", tb_err_names[kind], ebuf);
    } else {
        snprintf(text, sizeof text, "%s: %s", tb_err_names[kind], what);
    }
    ERR_clear_error();
    note_error_text(text);
    st.err[kind]++;
}

/* Latency histogram: bucket b covers [10^(b/40), 10^((b+1)/40)) us, 40 buckets per decade (6% wide). */
static void lat_add(int64_t ns)
{
    double us = (double)ns / 1000.0;
    int b = us > 1.0 ? (int)(log10(us) * 40.0) : 0;
    st.lat[b < TB_LAT_BUCKETS ? b : TB_LAT_BUCKETS - 1]++;
}

/* The upper edge, in us, of the bucket holding the <pct> percentile (6% resolution). */
static double lat_pct(double pct)
{
    uint64_t total = 0;
    for (int i = 0; i < TB_LAT_BUCKETS; i++)
        total += st.lat[i];
    if (!total)
        return 0;
    uint64_t want = (uint64_t)((double)total * pct / 100.0 + 0.5);
    if (want < 1)
        want = 1;
    uint64_t seen = 0;
    for (int i = 0; i < TB_LAT_BUCKETS; i++) {
        seen += st.lat[i];
        if (seen >= want)
            return pow(10.0, (double)(i + 1) / 40.0);
    }
    return 0;
}

/* "TLSv1.3 TLS_AES_128_GCM_SHA256 X25519 ECDSA-P-256 alpn=http/1.1" for a finished handshake. */
static void describe(SSL *ssl, char *out, size_t outlen)
{
    const char *group = "none";
    char gbuf[64];
    EVP_PKEY *tmp = NULL;
    if (SSL_get_peer_tmp_key(ssl, &tmp) && tmp) {
        size_t glen = 0;
        if (EVP_PKEY_get_group_name(tmp, gbuf, sizeof gbuf, &glen) && glen)
            group = gbuf;
        else
            group = EVP_PKEY_get0_type_name(tmp) ? EVP_PKEY_get0_type_name(tmp) : "?";
        if (strcmp(group, "prime256v1") == 0)
            group = "P-256";
        else if (strcmp(group, "secp384r1") == 0)
            group = "P-384";
    }
    char cbuf[64] = "none";
    X509 *cert = SSL_get0_peer_certificate(ssl);
    EVP_PKEY *pk = cert ? X509_get0_pubkey(cert) : NULL;
    if (pk) {
        if (EVP_PKEY_is_a(pk, "RSA"))
            snprintf(cbuf, sizeof cbuf, "RSA-%d", EVP_PKEY_get_bits(pk));
        else if (EVP_PKEY_is_a(pk, "EC")) {
            char n[40] = "";
            size_t nl = 0;
            EVP_PKEY_get_group_name(pk, n, sizeof n, &nl);
            snprintf(cbuf, sizeof cbuf, "ECDSA-%s", strcmp(n, "prime256v1") == 0 ? "P-256" : n);
        } else
            snprintf(cbuf, sizeof cbuf, "%s", EVP_PKEY_get0_type_name(pk) ? EVP_PKEY_get0_type_name(pk) : "?");
    }
    const unsigned char *alpn = NULL;
    unsigned int alpn_len = 0;
    SSL_get0_alpn_selected(ssl, &alpn, &alpn_len);
    const SSL_CIPHER *c = SSL_get_current_cipher(ssl);
    snprintf(out, outlen, "%s %s %s %s alpn=%.*s", SSL_get_version(ssl), c ? SSL_CIPHER_standard_name(c) : "?",
             group, cbuf, alpn_len ? (int)alpn_len : 4, alpn_len ? (const char *)alpn : "none");
    EVP_PKEY_free(tmp);
}

static void note_combo(SSL *ssl)
{
    char what[160];
    describe(ssl, what, sizeof what);
    for (int i = 0; i < st.ncombo; i++) {
        if (strcmp(st.combo[i].what, what) == 0) {
            st.combo[i].count++;
            return;
        }
    }
    if (st.ncombo < TB_MAX_COMBOS) {
        snprintf(st.combo[st.ncombo].what, sizeof st.combo[0].what, "%s", what);
        st.combo[st.ncombo++].count = 1;
    } else {
        st.combo_other++;
    }
}

/* OpenSSL's new-session callback: a ticket (TLS 1.3 may send several) or a TLS 1.2 session. The slot keeps
 * the newest for its next connection. Returns 1: we took the reference. */
static int on_new_session(SSL *ssl, SSL_SESSION *sess)
{
    tb_conn_t *c = SSL_get_app_data(ssl);
    if (SSL_SESSION_has_ticket(sess))
        c->tickets++;
    if (opt.resume == TB_RESUME_NONE)
        return 0;
    SSL_SESSION_free(c->sess);
    c->sess = sess;
    return 1;
}

/* Frees the connection's socket and SSL; the slot (and its saved session) stays. */
static void conn_close(tb_conn_t *c)
{
    if (c->ssl) {
        SSL_free(c->ssl);
        c->ssl = NULL;
    }
    if (c->fd >= 0) {
        close(c->fd);   /* also removes it from the epoll set */
        c->fd = -1;
    }
    if (c->state != TB_HELD && c->state != TB_FREE)
        g_inflight--;
    c->state = TB_FREE;
}

static void conn_fail(tb_conn_t *c, enum tb_err kind, const char *what)
{
    count_error(kind, what);
    conn_close(c);
}

static void conn_ok(tb_conn_t *c, bool clean)
{
    st.ok++;
    if (SSL_session_reused(c->ssl)) {
        st.resumed++;
        if (c->offered_ticket)
            st.resumed_ticket++;
    }
    if (c->offered)
        st.offered++;
    if (clean)
        st.clean_close++;
    st.tickets += c->tickets;
    lat_add(now_ns() - c->started_ns);
    note_combo(c->ssl);
    if (opt.verbose) {
        char what[160];
        describe(c->ssl, what, sizeof what);
        fprintf(stderr, "tlsbench: slot %ld: %s, offered %s, %s, %d ticket(s) received, %.0f us\n",
                (long)(c - g_conns), SSL_session_reused(c->ssl) ? "resumed" : "full handshake",
                !c->offered ? "no session" : c->offered_ticket ? "a ticket" : "a session ID", what, c->tickets,
                (double)(now_ns() - c->started_ns) / 1000.0);
    }
}

static int conn_start(tb_conn_t *c, int64_t now)
{
    memset(c->head, 0, 1);
    c->head_len = 0;
    c->head_done = false;
    c->status = 0;
    c->body_left = -1;
    c->complete = false;
    c->wrote = 0;
    c->tickets = 0;
    c->offered = false;
    c->offered_ticket = false;
    c->started_ns = now;
    c->deadline_ns = now + (int64_t)(opt.timeout * 1e9);
    st.started++;
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        count_error(TB_E_CONNECT, strerror(errno));
        return -1;
    }
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->state = TB_CONNECTING;
    g_inflight++;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLET, .data.ptr = c};
    if (epoll_ctl(g_ep, EPOLL_CTL_ADD, c->fd, &ev) < 0) {
        conn_fail(c, TB_E_CONNECT, strerror(errno));
        return -1;
    }
    if (connect(c->fd, (struct sockaddr *)&g_addr, sizeof g_addr) < 0 && errno != EINPROGRESS) {
        conn_fail(c, TB_E_CONNECT, strerror(errno));
        return -1;
    }
    return 0;
}

/* Parses the head in c->head once it holds "\r\n\r\n"; leftover body bytes are counted. 0, or -1 if bad. */
static int parse_head(tb_conn_t *c, size_t end)
{
    if (c->head_len < 12 || memcmp(c->head, "HTTP/1.", 7) != 0)
        return -1;
    c->status = atoi(c->head + 9);
    c->body_left = -1;
    const char *p = c->head;
    const char *stop = c->head + end + 2;   /* through the last field line's CRLF */
    while (p < stop) {
        const char *eol = memchr(p, '\n', (size_t)(stop - p));
        if (!eol)
            break;
        if ((size_t)(eol - p) > 15 && strncasecmp(p, "content-length:", 15) == 0)
            c->body_left = strtoll(p + 15, NULL, 10);
        p = eol + 1;
    }
    c->head_done = true;
    size_t extra = c->head_len - (end + 4);
    if (c->body_left >= 0) {
        c->body_left -= (int64_t)extra;
        if (c->body_left <= 0)
            c->complete = true;
    }
    return 0;
}

/* Takes <n> response bytes. 0, or -1 if the head is bad or too large. */
static int take(tb_conn_t *c, const char *buf, size_t n)
{
    if (c->head_done) {
        if (c->body_left >= 0) {
            c->body_left -= (int64_t)n;
            if (c->body_left <= 0)
                c->complete = true;
        }
        return 0;
    }
    size_t old = c->head_len;
    size_t room = sizeof c->head - 1 - c->head_len;
    size_t copy = n < room ? n : room;
    memcpy(c->head + c->head_len, buf, copy);
    c->head_len += copy;
    c->head[c->head_len] = '\0';
    size_t from = old >= 3 ? old - 3 : 0;
    char *e = memmem(c->head + from, c->head_len - from, "\r\n\r\n", 4);
    if (!e)
        return copy < n || c->head_len >= sizeof c->head - 1 ? -1 : 0;
    if (parse_head(c, (size_t)(e - c->head)) < 0)
        return -1;
    if (copy < n && c->body_left >= 0) {
        c->body_left -= (int64_t)(n - copy);
        if (c->body_left <= 0)
            c->complete = true;
    }
    return 0;
}

static void on_eof(tb_conn_t *c, bool clean)
{
    if (c->state == TB_HELD) {
        st.held_closed++;
        conn_close(c);
        return;
    }
    if (!c->head_done || c->body_left > 0) {
        conn_fail(c, TB_E_TRUNCATED, "closed before the whole response");
        return;
    }
    if (c->status != 200) {
        char what[40];
        snprintf(what, sizeof what, "status %d", c->status);
        conn_fail(c, TB_E_STATUS, what);
        return;
    }
    conn_ok(c, clean);
    /* The server has closed: no close_notify of ours (it would meet a closed socket), but a connection freed
     * without a shutdown has its session marked not resumable by OpenSSL, so mark it shut down. */
    SSL_set_shutdown(c->ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
    conn_close(c);
}

/* Runs the connection's state machine until it must wait for the socket, or ends. */
static void drive(tb_conn_t *c)
{
    for (;;) {
        switch (c->state) {
        case TB_FREE:
            return;
        case TB_CONNECTING: {
            int err = 0;
            socklen_t len = sizeof err;
            if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
                err = errno;
            if (err == EINPROGRESS || err == EALREADY)
                return;
            if (err) {
                conn_fail(c, TB_E_CONNECT, strerror(err));
                return;
            }
            c->ssl = SSL_new(g_ctx);
            if (!c->ssl) {
                conn_fail(c, TB_E_HANDSHAKE, "SSL_new");
                return;
            }
            SSL_set_app_data(c->ssl, c);
            SSL_set_fd(c->ssl, c->fd);
            SSL_set_tlsext_host_name(c->ssl, opt.sni);
            if (c->sess && opt.resume != TB_RESUME_NONE) {
                SSL_set_session(c->ssl, c->sess);
                c->offered = true;
                c->offered_ticket = SSL_SESSION_has_ticket(c->sess);
            }
            c->state = TB_HANDSHAKE;
            break;
        }
        case TB_HANDSHAKE: {
            int r = SSL_connect(c->ssl);
            if (r == 1) {
                c->state = TB_WRITING;
                break;
            }
            int e = SSL_get_error(c->ssl, r);
            if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
                return;
            conn_fail(c, TB_E_HANDSHAKE, e == SSL_ERROR_SYSCALL ? "connection closed" : "SSL_connect");
            return;
        }
        case TB_WRITING: {
            int r = SSL_write(c->ssl, g_request + c->wrote, (int)(g_request_len - c->wrote));
            if (r > 0) {
                c->wrote += (size_t)r;
                if (c->wrote == g_request_len)
                    c->state = TB_READING;
                break;
            }
            int e = SSL_get_error(c->ssl, r);
            if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
                return;
            conn_fail(c, TB_E_IO, "SSL_write");
            return;
        }
        case TB_READING:
        case TB_HELD: {
            int r = SSL_read(c->ssl, g_rbuf, sizeof g_rbuf);
            if (r > 0) {
                if (c->state == TB_HELD)
                    break;   /* bytes on a held connection: ignored */
                if (take(c, g_rbuf, (size_t)r) < 0) {
                    conn_fail(c, TB_E_STATUS, "bad response head");
                    return;
                }
                if (c->complete && opt.hold) {
                    if (c->status != 200) {
                        char what[40];
                        snprintf(what, sizeof what, "status %d", c->status);
                        conn_fail(c, TB_E_STATUS, what);
                        return;
                    }
                    conn_ok(c, false);
                    c->state = TB_HELD;
                    g_inflight--;
                }
                break;
            }
            int e = SSL_get_error(c->ssl, r);
            if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
                return;
            if (e == SSL_ERROR_ZERO_RETURN) {
                on_eof(c, true);
                return;
            }
            unsigned long le = ERR_peek_last_error();
            if ((e == SSL_ERROR_SYSCALL && le == 0) ||
                (e == SSL_ERROR_SSL && ERR_GET_REASON(le) == SSL_R_UNEXPECTED_EOF_WHILE_READING)) {
                ERR_clear_error();
                on_eof(c, false);   /* closed without close_notify */
                return;
            }
            if (c->state == TB_HELD) {
                ERR_clear_error();
                st.held_closed++;
                conn_close(c);
                return;
            }
            if (c->complete) {
                /* A reset after the whole response (the proxy closed with our bytes unread): still served. */
                ERR_clear_error();
                on_eof(c, false);
                return;
            }
            conn_fail(c, TB_E_IO, e == SSL_ERROR_SYSCALL ? strerror(errno) : "SSL_read");
            return;
        }
        }
    }
}

static void sweep_timeouts(int64_t now)
{
    for (long i = 0; i < g_nslots; i++) {
        tb_conn_t *c = &g_conns[i];
        if (c->state != TB_FREE && c->state != TB_HELD && now >= c->deadline_ns)
            conn_fail(c, TB_E_TIMEOUT, "per-connection timeout");
    }
}

static void load_sessions(void)
{
    FILE *f = fopen(opt.sessions, "r");
    if (!f)
        return;   /* first run: nothing saved yet */
    long n = 0;
    SSL_SESSION *s;
    while (n < g_nslots && (s = PEM_read_SSL_SESSION(f, NULL, NULL, NULL)) != NULL)
        g_conns[n++].sess = s;
    ERR_clear_error();
    fclose(f);
    for (long i = n; n > 0 && i < g_nslots; i++) {
        g_conns[i].sess = g_conns[i % n].sess;
        SSL_SESSION_up_ref(g_conns[i].sess);
    }
}

static void save_sessions(void)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", opt.sessions);
    FILE *f = fopen(tmp, "w");
    if (!f) {
        fprintf(stderr, "tlsbench: %s: %s\n", tmp, strerror(errno));
        return;
    }
    for (long i = 0; i < g_nslots; i++)
        if (g_conns[i].sess)
            PEM_write_SSL_SESSION(f, g_conns[i].sess);
    if (fclose(f) != 0 || rename(tmp, opt.sessions) != 0)
        fprintf(stderr, "tlsbench: %s: %s\n", opt.sessions, strerror(errno));
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: tlsbench [options] --port P\n"
            "  -c N             connections in flight (default 64)\n"
            "  -d SECONDS       run time (default 10; at most 3600)\n"
            "  -n N             start at most N connections (default: no limit)\n"
            "  --tls1.2 | --tls1.3   only that version (default: either, the newest wins)\n"
            "  --resume=none|ticket|id  offer the slot's previous session: a ticket, or a TLS 1.2\n"
            "                   session ID with tickets off (id needs --tls1.2)\n"
            "  --sigalgs=ecdsa|rsa|LIST  client signature algorithms (picks the server's certificate)\n"
            "  --groups=LIST    client groups (default OpenSSL's)\n"
            "  --sessions=FILE  load the slots' sessions from FILE (if it exists) and save them back\n"
            "  --host=IPV4      (default 127.0.0.1)  --port=P  --sni=NAME (default bench.test; also Host)\n"
            "  --path=PATH      request target (default /small)\n"
            "  --hold=N         open N keep-alive connections, one request each, print\n"
            "                   'ready OK FAILED', hold them until stdin closes, SIGTERM or --hold-max\n"
            "  --hold-max=S     seconds to hold at most (default 600)\n"
            "  --timeout=S      per-connection timeout (default 10)\n"
            "  --json           also print a BENCHJSON {...} line\n"
            "  -v               one line per finished connection on stderr\n");
}

static double parse_num(const char *s, const char *name, double lo, double hi)
{
    char *end;
    double v = strtod(s, &end);
    if (end == s || *end || v < lo || v > hi) {
        fprintf(stderr, "tlsbench: %s: '%s' is not a number from %g to %g\n", name, s, lo, hi);
        exit(2);
    }
    return v;
}

static void parse_args(int argc, char **argv)
{
    enum { OPT_TLS12 = 256, OPT_TLS13, OPT_RESUME, OPT_SIGALGS, OPT_GROUPS, OPT_SESSIONS, OPT_HOST, OPT_PORT, OPT_SNI, OPT_PATH,
           OPT_HOLD, OPT_HOLDMAX, OPT_TIMEOUT, OPT_JSON, OPT_HELP };
    static const struct option longopts[] = {
        {"tls1.2", no_argument, NULL, OPT_TLS12},       {"tls1.3", no_argument, NULL, OPT_TLS13},
        {"resume", required_argument, NULL, OPT_RESUME}, {"sigalgs", required_argument, NULL, OPT_SIGALGS},
        {"groups", required_argument, NULL, OPT_GROUPS}, {"sessions", required_argument, NULL, OPT_SESSIONS},
        {"host", required_argument, NULL, OPT_HOST},     {"port", required_argument, NULL, OPT_PORT},
        {"sni", required_argument, NULL, OPT_SNI},       {"path", required_argument, NULL, OPT_PATH},
        {"hold", required_argument, NULL, OPT_HOLD},     {"hold-max", required_argument, NULL, OPT_HOLDMAX},
        {"timeout", required_argument, NULL, OPT_TIMEOUT}, {"json", no_argument, NULL, OPT_JSON},
        {"help", no_argument, NULL, OPT_HELP},           {NULL, 0, NULL, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "c:d:n:hv", longopts, NULL)) != -1) {
        switch (ch) {
        case 'c': opt.conns = (int)parse_num(optarg, "-c", 1, TB_MAX_CONNS); break;
        case 'd': opt.duration = parse_num(optarg, "-d", 0.1, 3600); break;
        case 'n': opt.max = (long)parse_num(optarg, "-n", 1, 1e12); break;
        case 'v': opt.verbose = true; break;
        case OPT_TLS12: opt.tls_version = TLS1_2_VERSION; break;
        case OPT_TLS13: opt.tls_version = TLS1_3_VERSION; break;
        case OPT_RESUME:
            if (strcmp(optarg, "none") == 0) opt.resume = TB_RESUME_NONE;
            else if (strcmp(optarg, "ticket") == 0) opt.resume = TB_RESUME_TICKET;
            else if (strcmp(optarg, "id") == 0) opt.resume = TB_RESUME_ID;
            else { fprintf(stderr, "tlsbench: --resume: none, ticket or id\n"); exit(2); }
            break;
        case OPT_SIGALGS:
            if (strcmp(optarg, "ecdsa") == 0) opt.sigalgs = "ecdsa_secp256r1_sha256";
            else if (strcmp(optarg, "rsa") == 0) opt.sigalgs = "rsa_pss_rsae_sha256:rsa_pkcs1_sha256";
            else opt.sigalgs = optarg;
            break;
        case OPT_GROUPS: opt.groups = optarg; break;
        case OPT_SESSIONS: opt.sessions = optarg; break;
        case OPT_HOST: opt.host = optarg; break;
        case OPT_PORT: opt.port = (int)parse_num(optarg, "--port", 1, 65535); break;
        case OPT_SNI: opt.sni = optarg; break;
        case OPT_PATH: opt.path = optarg; break;
        case OPT_HOLD: opt.hold = (long)parse_num(optarg, "--hold", 1, TB_MAX_CONNS); break;
        case OPT_HOLDMAX: opt.hold_max = parse_num(optarg, "--hold-max", 0, 3600); break;
        case OPT_TIMEOUT: opt.timeout = parse_num(optarg, "--timeout", 0.1, 600); break;
        case OPT_JSON: opt.json = true; break;
        case 'h':
        case OPT_HELP: usage(stdout); exit(0);
        default: usage(stderr); exit(2);
        }
    }
    if (optind != argc || !opt.port) {
        usage(stderr);
        exit(2);
    }
    if (opt.resume == TB_RESUME_ID && opt.tls_version != TLS1_2_VERSION) {
        fprintf(stderr, "tlsbench: --resume=id needs --tls1.2 (TLS 1.3 resumes only with tickets)\n");
        exit(2);
    }
    if (inet_pton(AF_INET, opt.host, &g_addr.sin_addr) != 1) {
        fprintf(stderr, "tlsbench: --host: '%s' is not an IPv4 address\n", opt.host);
        exit(2);
    }
    g_addr.sin_family = AF_INET;
    g_addr.sin_port = htons((uint16_t)opt.port);
}

static SSL_CTX *make_ctx(void)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx)
        return NULL;
    SSL_CTX_set_min_proto_version(ctx, opt.tls_version ? opt.tls_version : TLS1_2_VERSION);
    SSL_CTX_set_max_proto_version(ctx, opt.tls_version ? opt.tls_version : TLS1_3_VERSION);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);   /* the handshake signature is still checked */
    if (opt.resume == TB_RESUME_ID)
        SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(ctx, on_new_session);
    static const unsigned char alpn[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
    SSL_CTX_set_alpn_protos(ctx, alpn, sizeof alpn);
    if (opt.sigalgs && !SSL_CTX_set1_sigalgs_list(ctx, opt.sigalgs)) {
        fprintf(stderr, "tlsbench: --sigalgs: OpenSSL refused '%s'\n", opt.sigalgs);
        exit(2);
    }
    if (opt.groups && !SSL_CTX_set1_groups_list(ctx, opt.groups)) {
        fprintf(stderr, "tlsbench: --groups: OpenSSL refused '%s'\n", opt.groups);
        exit(2);
    }
    return ctx;
}

static void json_string(FILE *out, const char *s)
{
    fputc('"', out);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            fputc('\\', out);
        if ((unsigned char)*s >= 0x20)
            fputc(*s, out);
    }
    fputc('"', out);
}

static void report(double elapsed)
{
    long errors = 0;
    for (int i = 0; i < TB_E_COUNT; i++)
        errors += st.err[i];
    double rate = elapsed > 0 ? (double)st.ok / elapsed : 0;
    printf("tlsbench: %s %ld connection(s) in %.2f s: %ld ok (%.0f/s), %ld resumed (%ld by ticket), "
           "%ld error(s), %ld aborted at the end\n",
           opt.hold ? "held" : "ran", st.started, elapsed, st.ok, rate, st.resumed, st.resumed_ticket, errors,
           st.aborted);
    printf("  latency (connect to response): p50 %.0f us, p99 %.0f us; tickets/connection %.2f; "
           "close_notify before close: %ld of %ld\n",
           lat_pct(50), lat_pct(99), st.ok ? (double)st.tickets / (double)st.ok : 0.0, st.clean_close, st.ok);
    for (int i = 0; i < st.ncombo; i++)
        printf("  negotiated %ld x %s\n", st.combo[i].count, st.combo[i].what);
    if (st.combo_other)
        printf("  negotiated %ld x (other combinations)\n", st.combo_other);
    for (int i = 0; i < TB_E_COUNT; i++)
        if (st.err[i])
            printf("  errors %s: %ld\n", tb_err_names[i], st.err[i]);
    for (int i = 0; i < st.nerrtext; i++)
        printf("  error: %s\n", st.errtext[i]);
    if (!opt.json) {
        fflush(stdout);
        return;
    }
    printf("BENCHJSON {\"started\":%ld,\"ok\":%ld,\"resumed\":%ld,\"resumed_ticket\":%ld,\"offered\":%ld,"
           "\"errors\":%ld,\"aborted\":%ld,\"held_closed\":%ld,\"elapsed_us\":%.0f,\"rate\":%.1f,"
           "\"p50_us\":%.0f,\"p99_us\":%.0f,\"tickets_per_conn\":%.3f,\"clean_close\":%ld,\"error_kinds\":{",
           st.started, st.ok, st.resumed, st.resumed_ticket, st.offered, errors, st.aborted, st.held_closed,
           elapsed * 1e6, rate, lat_pct(50), lat_pct(99), st.ok ? (double)st.tickets / (double)st.ok : 0.0,
           st.clean_close);
    for (int i = 0; i < TB_E_COUNT; i++)
        printf("%s\"%s\":%ld", i ? "," : "", tb_err_names[i], st.err[i]);
    printf("},\"negotiated\":[");
    for (int i = 0; i < st.ncombo; i++) {
        printf("%s{\"what\":", i ? "," : "");
        json_string(stdout, st.combo[i].what);
        printf(",\"count\":%ld}", st.combo[i].count);
    }
    printf("],\"error_texts\":[");
    for (int i = 0; i < st.nerrtext; i++) {
        printf("%s", i ? "," : "");
        json_string(stdout, st.errtext[i]);
    }
    printf("]}\n");
    fflush(stdout);
}

/* --hold: after "ready", wait for stdin to close (when it is a pipe), a signal or --hold-max; held
 * connections the server closes meanwhile are closed here too. */
static void hold_wait(void)
{
    int64_t end = now_ns() + (int64_t)(opt.hold_max * 1e9);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(g_ep, EPOLL_CTL_ADD, STDIN_FILENO, &ev);   /* refused for a file or /dev/null: signals only */
    struct epoll_event evs[256];
    while (!g_stop && now_ns() < end) {
        int n = epoll_wait(g_ep, evs, 256, 200);
        for (int i = 0; i < n; i++) {
            if (!evs[i].data.ptr) {
                char b[256];
                if (read(STDIN_FILENO, b, sizeof b) <= 0)
                    g_stop = 1;
                continue;
            }
            drive(evs[i].data.ptr);
        }
    }
}

int main(int argc, char **argv)
{
    parse_args(argc, argv);
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    g_ctx = make_ctx();
    if (!g_ctx) {
        fprintf(stderr, "tlsbench: SSL_CTX_new failed\n");
        return 1;
    }
    g_request_len = (size_t)snprintf(g_request, sizeof g_request, "GET %s HTTP/1.1\r\nHost: %s\r\n%s\r\n",
                                     opt.path, opt.sni, opt.hold ? "" : "Connection: close\r\n");
    if (g_request_len >= sizeof g_request) {
        fprintf(stderr, "tlsbench: --path/--sni too long\n");
        return 2;
    }
    g_nslots = opt.hold ? opt.hold : opt.conns;
    g_conns = calloc((size_t)g_nslots, sizeof *g_conns);
    g_ep = epoll_create1(EPOLL_CLOEXEC);
    if (!g_conns || g_ep < 0) {
        fprintf(stderr, "tlsbench: out of memory or epoll_create1 failed\n");
        return 1;
    }
    for (long i = 0; i < g_nslots; i++)
        g_conns[i].fd = -1;
    if (opt.sessions && opt.resume != TB_RESUME_NONE)
        load_sessions();

    int64_t t0 = now_ns();
    int64_t stop_starting = opt.hold ? t0 + TB_SETUP_NS : t0 + (int64_t)(opt.duration * 1e9);
    int64_t hard_end = stop_starting + (opt.hold ? 0 : TB_DRAIN_NS);
    int64_t last_ok = t0, next_sweep = t0 + 100000000LL;
    long next_slot = 0;   /* --hold: the next slot to open */
    struct epoll_event evs[256];
    for (;;) {
        int64_t now = now_ns();
        bool starting = !g_stop && now < stop_starting && (!opt.max || st.started < opt.max);
        if (opt.hold) {
            while (starting && next_slot < g_nslots && g_inflight < opt.conns)
                conn_start(&g_conns[next_slot++], now);
            if (next_slot >= g_nslots && g_inflight == 0)
                break;
        } else {
            for (long i = 0; starting && i < g_nslots; i++) {
                if (g_conns[i].state != TB_FREE)
                    continue;
                if (opt.max && st.started >= opt.max)
                    break;
                conn_start(&g_conns[i], now);
            }
            if (!starting && g_inflight == 0)
                break;
        }
        if (now >= hard_end || g_stop || (opt.hold && now >= stop_starting)) {
            for (long i = 0; i < g_nslots; i++) {
                if (g_conns[i].state != TB_FREE && g_conns[i].state != TB_HELD) {
                    st.aborted++;
                    conn_close(&g_conns[i]);
                }
            }
            if (opt.hold)
                st.aborted += g_nslots - next_slot;
            break;
        }
        int n = epoll_wait(g_ep, evs, 256, 50);
        long ok_before = st.ok;
        for (int i = 0; i < n; i++)
            drive(evs[i].data.ptr);
        now = now_ns();
        if (st.ok != ok_before)
            last_ok = now;
        if (now >= next_sweep) {
            sweep_timeouts(now);
            next_sweep = now + 100000000LL;
        }
    }
    double elapsed = (double)((opt.hold ? now_ns() : last_ok) - t0) / 1e9;
    if (opt.hold) {
        long failed = 0;
        for (int i = 0; i < TB_E_COUNT; i++)
            failed += st.err[i];
        printf("ready %ld %ld\n", st.ok - st.held_closed, failed + st.aborted + st.held_closed);
        fflush(stdout);
        report(elapsed);
        hold_wait();
    } else {
        report(elapsed);
    }
    if (opt.sessions && opt.resume != TB_RESUME_NONE)
        save_sessions();
    for (long i = 0; i < g_nslots; i++) {
        conn_close(&g_conns[i]);
        SSL_SESSION_free(g_conns[i].sess);
    }
    free(g_conns);
    close(g_ep);
    SSL_CTX_free(g_ctx);
    return 0;
}
