/* tls_ctx.h: what the two halves of the TLS transport share, and nobody else: tls_ctx.c builds
 * the contexts (certificates, SNI, tickets, the session-ID cache), tls.c runs the connections
 * (the BIO, the handshake, OpenSSL's records or our own). */
#ifndef FULCRUM_TLS_CTX_H
#define FULCRUM_TLS_CTX_H

#include <openssl/ssl.h>

#include "fulcrum/tls.h"

typedef struct sni_entry {
    char *name;   /* owned, lower case; "*.example.com" for a wildcard */
    SSL_CTX *ctx; /* borrowed from fc_tls_ctx.ctxs */
} sni_entry_t;

struct fc_tls_ctx {
    SSL_CTX **ctxs;        /* owned: one per set of names (an ECDSA and an RSA pair share one); [0] default */
    size_t nctxs;
    sni_entry_t *names;    /* owned */
    size_t nnames;
    int client;            /* a client (upstream) context */
    int verify;            /* client: check the server's certificate */
    int own_records;       /* server: TLS 1.3 records are ours once the handshake is over */
};

extern int fc__tls_ex_conn; /* SSL ex_data: the connection */
extern int fc__tls_ex_ctx;  /* SSL_CTX ex_data: the fc_tls_ctx_t */

/* The reason of the last OpenSSL error on this thread, as a constant string (and the queue is
 * emptied: a stale error would be blamed on the next connection). */
const char *fc__tls_reason(const char *fallback);
/* tls.c's: the keylog callback of server contexts (a connection's traffic secrets), and the new
 * session callback of client contexts (the latest session, kept for the next connection). */
void fc__tls_keylog(const SSL *ssl, const char *line);

int fc__tls_new_client_session(SSL *ssl, SSL_SESSION *sess);

#endif
