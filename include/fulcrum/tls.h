/* tls.h: TLS (OpenSSL 3) as a second transport of fc_io_t. Contexts are built from plain option
 * structs by the config loader (in the master, before the workers fork, so private keys are read
 * once and the workers inherit them); a connection switches its io to TLS with fc_io_tls_server
 * or fc_io_tls_client and its callers go on unchanged: reads deliver plaintext, writes take
 * plaintext, and a client io's connect completes once the handshake (and the certificate check)
 * has. Session ticket keys live in memory the master shares with every worker.
 * tls.c knows no HTTP, exchange, connection, upstream or config; it logs nothing: errors are
 * constant strings the caller logs. */
#ifndef FULCRUM_TLS_H
#define FULCRUM_TLS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "fulcrum/common.h"

typedef struct fc_io fc_io_t; /* io.h */

typedef struct fc_tls_ctx fc_tls_ctx_t; /* opaque: one listener's or one upstream's contexts */
typedef struct fc_tls_session fc_tls_session_t; /* opaque: a client session kept for resumption */

enum { FC_TLS_V12 = 1, FC_TLS_V13 = 2 };

typedef struct fc_tls_pair {
    char *cert; /* owned by the options' owner: PEM file, leaf first, then its chain */
    char *key;  /* owned by the options' owner: PEM private key file */
} fc_tls_pair_t;

/* What a listener's TLS is made of. Strings are borrowed from the caller for the call only. */
typedef struct fc_tls_server_opts {
    const fc_tls_pair_t *pairs; /* 1.. pairs; SNI picks among them, the first is the default */
    size_t npairs;
    unsigned protocols;         /* FC_TLS_V12 | FC_TLS_V13 */
    const char *ciphers;        /* TLS 1.2 cipher list, OpenSSL syntax */
    const char *ciphersuites;   /* TLS 1.3 suites, OpenSSL syntax */
    const char *groups;         /* key exchange groups, OpenSSL syntax */
    int tickets;                /* session tickets (keys from fc_tls_use_tickets) */
    int cache;                  /* TLS 1.2 session IDs, in a per-process cache */
    const char *client_ca;      /* PEM file of the CAs client certificates must chain to, or NULL */
    int client_required;        /* a client certificate is required (else requested, checked if sent) */
    int openssl_records;        /* TLS 1.3 records stay OpenSSL's for the whole connection (else
                                   tls_record.c takes them over after the handshake) */
} fc_tls_server_opts_t;

typedef struct fc_tls_client_opts {
    int verify;                 /* check the server's certificate and name */
    const char *ca;             /* PEM file of trusted CAs */
    const char *cert, *key;     /* client certificate and key, or NULL */
} fc_tls_client_opts_t;

/* Which option a context could not be built from (so the loader can point at it). */
enum fc_tls_field {
    FC_TLS_F_NONE = 0, FC_TLS_F_CERT, FC_TLS_F_KEY, FC_TLS_F_CIPHERS, FC_TLS_F_CIPHERSUITES, FC_TLS_F_GROUPS,
    FC_TLS_F_CLIENT_CA, FC_TLS_F_CA, FC_TLS_F_PROTOCOLS,
};
typedef struct fc_tls_fault {
    enum fc_tls_field field; /* the option at fault */
    size_t pair;             /* for CERT and KEY: which pair */
} fc_tls_fault_t;

/* Called for each certificate that expires within 30 days (<days> < 0: expired already). */
typedef void (*fc_tls_warn_cb)(void *arg, size_t pair, long days, const char *subject);

/* Builds a listener's contexts. Returns 0 with *<out> set, or -1 with <err> (no position) and
 * <fault> naming the option. */
int fc_tls_server_new(const fc_tls_server_opts_t *o, fc_tls_ctx_t **out, fc_tls_fault_t *fault, fc_err_t *err,
                      fc_tls_warn_cb warn, void *warn_arg);
int fc_tls_client_new(const fc_tls_client_opts_t *o, fc_tls_ctx_t **out, fc_tls_fault_t *fault, fc_err_t *err);
void fc_tls_ctx_free(fc_tls_ctx_t *ctx);

/* Makes <io> (opened, not reading yet) a TLS server connection of <ctx>. The handshake runs as
 * reads start; its end is told to io->on_read with nread 0; its failure with a negative nread
 * (fc_io_tls_error says why). Returns 0 or a negative libuv error (the io stays plain). */
int fc_io_tls_server(fc_io_t *io, fc_tls_ctx_t *ctx);
/* Makes <io> (initialised, not connected) a TLS client connection of <ctx>: <sni> is sent as the
 * server name (NULL: none), the certificate must name <verify_name> (a DNS name or an IP
 * address) when the context verifies, and *<slot> (per server, the caller's) keeps the latest
 * session for the next connection to resume (free it with fc_tls_session_free). fc_io_connect's
 * callback then comes after the handshake. Returns 0 or a negative libuv error. */
int fc_io_tls_client(fc_io_t *io, fc_tls_ctx_t *ctx, const char *sni, const char *verify_name,
                     fc_tls_session_t **slot);
/* Why the TLS session of <io> failed (a constant string), or NULL. */
const char *fc_io_tls_error(const fc_io_t *io);
/* Whether the io has resumed a session (TLS only). */
int fc_io_tls_resumed(const fc_io_t *io);
/* Whether the records of <io> are fulcrum's own now (tls_record.c; OpenSSL's session is freed). */
int fc_io_tls_own_records(const fc_io_t *io);
void fc_tls_session_free(fc_tls_session_t **slot);

/* Ticket keys shared by every worker: the master makes them before the first fork and rotates
 * them; a worker encrypts with the current key and decrypts with the current or previous one.
 * Lives in the shared segment. */
#define FC_TLS_TICKET_KEYS 3
typedef struct fc_tls_ticket_key {
    unsigned char name[16], aes[32], hmac[32];
} fc_tls_ticket_key_t;
typedef struct fc_tls_tickets {
    atomic_uint current;            /* keys[current % FC_TLS_TICKET_KEYS] encrypts */
    atomic_ullong since;            /* realtime seconds the current key was made */
    fc_tls_ticket_key_t keys[FC_TLS_TICKET_KEYS];
} fc_tls_tickets_t;

/* Makes the first key (master, once). Returns 0 or -1 (no randomness). */
int fc_tls_tickets_init(fc_tls_tickets_t *t);
/* Makes a new current key; the old one stays for decryption until the next rotation. */
int fc_tls_tickets_rotate(fc_tls_tickets_t *t);
/* The keys this process's contexts use (set before contexts are used; NULL: tickets are made
 * with keys of this process only). */
void fc_tls_use_tickets(fc_tls_tickets_t *t);

/* The TLS 1.2 session-ID cache shared by every worker: a fixed set-associative table in the
 * shared segment. A set's lock is only ever tried (never waited on) and held for a copy, so a
 * worker never blocks on it, and one that died holding it costs that set, not the process. */
#define FC_TLS_CACHE_SETS 1024
#define FC_TLS_CACHE_WAYS 4
#define FC_TLS_CACHE_DER 2400 /* a larger session (a client certificate chain beyond ~2 KiB) is not kept;
                                 the segment's pages are only touched as sessions fill them */
typedef struct fc_tls_cache_slot {
    uint64_t expires;        /* realtime seconds; 0 = free */
    uint16_t len;            /* DER bytes */
    uint8_t idlen;
    unsigned char id[32];
    unsigned char der[FC_TLS_CACHE_DER];
} fc_tls_cache_slot_t;
typedef struct fc_tls_cache {
    atomic_uint lock[FC_TLS_CACHE_SETS];
    fc_tls_cache_slot_t slots[FC_TLS_CACHE_SETS * FC_TLS_CACHE_WAYS];
} fc_tls_cache_t;
/* The cache this process's listener contexts use (NULL: none, no session-ID resumption). */
void fc_tls_use_cache(fc_tls_cache_t *c);

/* The OpenSSL sessions (SSL objects, some 50 KB of small allocations at a handshake's end) freed
 * since the last call: the worker trims its heap after many. */
unsigned fc_tls_sessions_freed(void);
/* Frees what the TLS transport keeps per process (buffers, the deferred-read handle: call
 * before the loop's last run). */
void fc_tls_loop_close(void);
void fc_tls_freelist_drain(void);

#endif
