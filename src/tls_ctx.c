/* tls_ctx.c: the TLS contexts (see tls.h): a listener's certificates, chosen by SNI, with its
 * protocols, suites and groups, ALPN, session tickets with keys shared by every worker, and the
 * shared TLS 1.2 session-ID cache; an upstream's client context. Built by the config loader in the
 * master. The connections that use them are tls.c's. */
#include "fulcrum/tls_ctx.h"

#include <ctype.h>
#include <string.h>
#include <time.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "fulcrum/trylock.h"

#define MAX_NAMES 64           /* SNI names per certificate pair that are looked at */



int fc__tls_ex_conn = -1; /* SSL ex_data: the connection (tls.c's fc_tls_conn_t) */
int fc__tls_ex_ctx = -1;  /* SSL_CTX ex_data: the fc_tls_ctx_t */
static fc_tls_tickets_t *tickets; /* shared keys, or NULL */
static EVP_CIPHER *ticket_cipher;

static void ensure_indexes(void)
{
    if (fc__tls_ex_conn < 0) fc__tls_ex_conn = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
    if (fc__tls_ex_ctx < 0) fc__tls_ex_ctx = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, NULL);
}

const char *fc__tls_reason(const char *fallback)
{
    unsigned long e = ERR_peek_last_error();
    const char *r = e != 0 ? ERR_reason_error_string(e) : NULL;
    ERR_clear_error();
    return r != NULL ? r : fallback;
}

static int errf(fc_err_t *err, fc_tls_fault_t *fault, enum fc_tls_field field, size_t pair, const char *what,
                const char *path)
{
    fault->field = field;
    fault->pair = pair;
    const char *why = fc__tls_reason("invalid");
    if (path != NULL) return fc_err_set(err, "%s %s (%s)", what, path, why);
    return fc_err_set(err, "%s (%s)", what, why);
}

void fc_tls_use_tickets(fc_tls_tickets_t *t) { tickets = t; }

int fc_tls_tickets_init(fc_tls_tickets_t *t)
{
    memset(t, 0, sizeof(*t));
    atomic_store(&t->current, 0);
    return fc_tls_tickets_rotate(t);
}

int fc_tls_tickets_rotate(fc_tls_tickets_t *t)
{
    /* The slot after the current one is neither current nor previous: nobody reads it now. */
    unsigned next = atomic_load(&t->current) + 1;
    fc_tls_ticket_key_t *k = &t->keys[next % FC_TLS_TICKET_KEYS];
    if (RAND_bytes(k->name, sizeof(k->name)) != 1 || RAND_bytes(k->aes, sizeof(k->aes)) != 1 ||
        RAND_bytes(k->hmac, sizeof(k->hmac)) != 1)
        return -1;
    atomic_store(&t->since, (unsigned long long)time(NULL));
    atomic_store(&t->current, next);
    return 0;
}

/* Session ticket keys: encrypt with the current shared key, decrypt with it or the previous one
 * (which asks for a fresh ticket). 0: unknown key, a full handshake. */
static int ticket_cb(SSL *s, unsigned char name[16], unsigned char *iv, EVP_CIPHER_CTX *cctx, EVP_MAC_CTX *hctx,
                     int enc)
{
    if (tickets == NULL) return 0;
    if (ticket_cipher == NULL && (ticket_cipher = EVP_CIPHER_fetch(NULL, "AES-256-CBC", NULL)) == NULL) return -1;
    unsigned cur = atomic_load_explicit(&tickets->current, memory_order_acquire);
    const fc_tls_ticket_key_t *k = NULL;
    int rc = 1;
    if (enc) {
        k = &tickets->keys[cur % FC_TLS_TICKET_KEYS];
        if (RAND_bytes(iv, EVP_CIPHER_get_iv_length(ticket_cipher)) != 1) return -1;
        memcpy(name, k->name, 16);
    } else {
        for (unsigned back = 0; back < 2 && k == NULL; back++) {
            const fc_tls_ticket_key_t *c = &tickets->keys[(cur - back) % FC_TLS_TICKET_KEYS];
            if (memcmp(c->name, name, 16) == 0) {
                k = c;
                /* 2 asks for a fresh ticket: always in TLS 1.3, whose clients use a ticket
                 * once (and OpenSSL sends none on a resumption told 1) */
                rc = back == 0 && SSL_version(s) != TLS1_3_VERSION ? 1 : 2;
            }
        }
        if (k == NULL) return 0;
    }
    OSSL_PARAM params[3];
    params[0] = OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, (void *)k->hmac, sizeof(k->hmac));
    params[1] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0);
    params[2] = OSSL_PARAM_construct_end();
    if (EVP_CipherInit_ex(cctx, ticket_cipher, NULL, k->aes, iv, enc) != 1) return -1;
    if (EVP_MAC_CTX_set_params(hctx, params) != 1) return -1;
    return rc;
}

/* ---- the shared session-ID cache ---- */

static fc_tls_cache_t *cache;

void fc_tls_use_cache(fc_tls_cache_t *c) { cache = c; }

static size_t cache_set(const unsigned char *id, size_t n)
{
    uint32_t h = 2166136261u; /* FNV-1a: session IDs are random already */
    for (size_t i = 0; i < n; i++) h = (h ^ id[i]) * 16777619u;
    return h % FC_TLS_CACHE_SETS;
}

static int cache_lock(size_t set) { return fc_trylock(&cache->lock[set], 64); }

static void cache_unlock(size_t set) { fc_unlock(&cache->lock[set]); }

static int cache_new(SSL *ssl, SSL_SESSION *sess)
{
    /* A TLS 1.3 session resumes from its ticket alone when tickets are stateless: never looked
     * up here, so not kept (two 2.4 KB slots of the shared segment per full handshake otherwise).
     * With session_tickets off, a TLS 1.3 "ticket" is the session ID, and is kept. */
    if (SSL_version(ssl) == TLS1_3_VERSION && !(SSL_get_options(ssl) & SSL_OP_NO_TICKET)) return 0;
    unsigned int idlen;
    const unsigned char *id = SSL_SESSION_get_id(sess, &idlen);
    int len = i2d_SSL_SESSION(sess, NULL);
    if (cache == NULL || idlen == 0 || idlen > 32 || len <= 0 || len > FC_TLS_CACHE_DER) return 0;
    unsigned char der[FC_TLS_CACHE_DER], *p = der;
    i2d_SSL_SESSION(sess, &p);
    uint64_t now = (uint64_t)time(NULL);
    uint64_t expires = (uint64_t)SSL_SESSION_get_time(sess) + (uint64_t)SSL_SESSION_get_timeout(sess);
    size_t set = cache_set(id, idlen);
    if (cache_lock(set) < 0) return 0;
    fc_tls_cache_slot_t *ways = &cache->slots[set * FC_TLS_CACHE_WAYS], *pick = &ways[0];
    for (size_t i = 0; i < FC_TLS_CACHE_WAYS; i++) {
        if (ways[i].expires <= now) { /* free or expired */
            pick = &ways[i];
            break;
        }
        if (ways[i].expires < pick->expires) pick = &ways[i]; /* else the one that expires first goes */
    }
    pick->expires = expires;
    pick->len = (uint16_t)len;
    pick->idlen = (uint8_t)idlen;
    memcpy(pick->id, id, idlen);
    memcpy(pick->der, der, (size_t)len);
    cache_unlock(set);
    return 0; /* OpenSSL keeps its reference */
}

static fc_tls_cache_slot_t *cache_find(const unsigned char *id, size_t idlen, size_t set)
{
    fc_tls_cache_slot_t *ways = &cache->slots[set * FC_TLS_CACHE_WAYS];
    for (size_t i = 0; i < FC_TLS_CACHE_WAYS; i++)
        if (ways[i].expires != 0 && ways[i].idlen == idlen && memcmp(ways[i].id, id, idlen) == 0) return &ways[i];
    return NULL;
}

static SSL_SESSION *cache_get(SSL *ssl, const unsigned char *id, int idlen, int *copy)
{
    (void)ssl;
    *copy = 0; /* the session returned is ours to give: OpenSSL takes its only reference */
    if (cache == NULL || idlen <= 0 || idlen > 32) return NULL;
    size_t set = cache_set(id, (size_t)idlen);
    unsigned char der[FC_TLS_CACHE_DER];
    size_t len = 0;
    if (cache_lock(set) < 0) return NULL;
    fc_tls_cache_slot_t *s = cache_find(id, (size_t)idlen, set);
    if (s != NULL && s->expires > (uint64_t)time(NULL)) {
        len = s->len;
        memcpy(der, s->der, len);
    }
    cache_unlock(set);
    const unsigned char *p = der;
    return len > 0 ? d2i_SSL_SESSION(NULL, &p, (long)len) : NULL;
}

static void cache_remove(SSL_CTX *sc, SSL_SESSION *sess)
{
    (void)sc;
    unsigned int idlen;
    const unsigned char *id = SSL_SESSION_get_id(sess, &idlen);
    if (cache == NULL || idlen == 0 || idlen > 32) return;
    size_t set = cache_set(id, idlen);
    if (cache_lock(set) < 0) return;
    fc_tls_cache_slot_t *s = cache_find(id, idlen, set);
    if (s != NULL) s->expires = 0;
    cache_unlock(set);
}

/* The context for a client's server name: an exact name, then a one-label wildcard, else NULL. */
static SSL_CTX *pick_ctx(const fc_tls_ctx_t *c, const char *sn)
{
    if (sn == NULL || c->nnames == 0) return NULL;
    char name[256];
    size_t n = strlen(sn);
    if (n >= sizeof(name)) return NULL;
    for (size_t i = 0; i <= n; i++) name[i] = (char)tolower((unsigned char)sn[i]);
    if (n > 0 && name[n - 1] == '.') name[--n] = '\0';
    SSL_CTX *pick = NULL;
    for (size_t i = 0; i < c->nnames && pick == NULL; i++)
        if (strcmp(c->names[i].name, name) == 0) pick = c->names[i].ctx;
    const char *dot = strchr(name, '.');
    for (size_t i = 0; i < c->nnames && pick == NULL && dot != NULL; i++) {
        const char *w = c->names[i].name;
        if (w[0] == '*' && w[1] == '.' && strcmp(w + 1, dot) == 0) pick = c->names[i].ctx;
    }
    return pick;
}

static int servername_cb(SSL *ssl, int *alert, void *arg)
{
    (void)alert;
    SSL_CTX *pick = pick_ctx(arg, SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name));
    if (pick != NULL && pick != SSL_get_SSL_CTX(ssl)) SSL_set_SSL_CTX(ssl, pick);
    return SSL_TLSEXT_ERR_OK; /* an unknown name gets the default certificate */
}

static int alpn_cb(SSL *ssl, const unsigned char **out, unsigned char *outlen, const unsigned char *in,
                   unsigned inlen, void *arg)
{
    (void)ssl;
    (void)arg;
    for (unsigned i = 0; i < inlen;) {
        unsigned l = in[i];
        if (i + 1 + l > inlen) break;
        if (l == 8 && memcmp(in + i + 1, "http/1.1", 8) == 0) {
            *out = in + i + 1;
            *outlen = (unsigned char)l;
            return SSL_TLSEXT_ERR_OK;
        }
        i += 1 + l;
    }
    return SSL_TLSEXT_ERR_NOACK; /* h2 only: no protocol is agreed, and HTTP/1.1 is spoken */
}

/* The settings every context of a listener shares. */
static int server_common(SSL_CTX *sc, const fc_tls_server_opts_t *o, fc_tls_ctx_t *c, fc_tls_fault_t *fault,
                         fc_err_t *err)
{
    SSL_CTX_set_min_proto_version(sc, (o->protocols & FC_TLS_V12) ? TLS1_2_VERSION : TLS1_3_VERSION);
    SSL_CTX_set_max_proto_version(sc, (o->protocols & FC_TLS_V13) ? TLS1_3_VERSION : TLS1_2_VERSION);
    SSL_CTX_set_options(sc, SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
    SSL_CTX_set_mode(sc, SSL_MODE_RELEASE_BUFFERS);
    if (SSL_CTX_set_cipher_list(sc, o->ciphers) != 1)
        return errf(err, fault, FC_TLS_F_CIPHERS, 0, "no usable cipher in", o->ciphers);
    if (SSL_CTX_set_ciphersuites(sc, o->ciphersuites) != 1)
        return errf(err, fault, FC_TLS_F_CIPHERSUITES, 0, "no usable suite in", o->ciphersuites);
    if (SSL_CTX_set1_groups_list(sc, o->groups) != 1)
        return errf(err, fault, FC_TLS_F_GROUPS, 0, "an unknown group in", o->groups);
    SSL_CTX_set_max_early_data(sc, 0); /* no 0-RTT: early data can be replayed */
    SSL_CTX_set_alpn_select_cb(sc, alpn_cb, NULL);
    SSL_CTX_set_tlsext_servername_callback(sc, servername_cb);
    SSL_CTX_set_tlsext_servername_arg(sc, c);
    if (o->tickets) {
        SSL_CTX_set_tlsext_ticket_key_evp_cb(sc, ticket_cb);
    } else {
        SSL_CTX_set_options(sc, SSL_OP_NO_TICKET);
        SSL_CTX_set_num_tickets(sc, 0);
    }
    if (o->cache) {
        SSL_CTX_set_session_cache_mode(sc, SSL_SESS_CACHE_SERVER | SSL_SESS_CACHE_NO_INTERNAL);
        SSL_CTX_sess_set_new_cb(sc, cache_new);
        SSL_CTX_sess_set_get_cb(sc, cache_get);
        SSL_CTX_sess_set_remove_cb(sc, cache_remove);
    } else {
        SSL_CTX_set_session_cache_mode(sc, SSL_SESS_CACHE_OFF);
    }
    if (o->client_ca != NULL) {
        STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(o->client_ca);
        if (names == NULL || SSL_CTX_load_verify_locations(sc, o->client_ca, NULL) != 1) {
            sk_X509_NAME_pop_free(names, X509_NAME_free);
            return errf(err, fault, FC_TLS_F_CLIENT_CA, 0, "cannot load client CAs from", o->client_ca);
        }
        SSL_CTX_set_client_CA_list(sc, names);
        SSL_CTX_set_verify(sc, SSL_VERIFY_PEER | (o->client_required ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0), NULL);
    }
    return 0;
}

/* The names a certificate is for: its DNS subjectAltNames, else its common name. */
static size_t cert_names(X509 *x, char **out, size_t max)
{
    size_t n = 0;
    GENERAL_NAMES *gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    for (int i = 0; gens != NULL && i < sk_GENERAL_NAME_num(gens) && n < max; i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
        if (g->type != GEN_DNS) continue;
        const unsigned char *s = ASN1_STRING_get0_data(g->d.dNSName);
        out[n++] = fc_xstrndup((const char *)s, (size_t)ASN1_STRING_length(g->d.dNSName));
    }
    int had_san = gens != NULL;
    GENERAL_NAMES_free(gens);
    if (n == 0 && !had_san) {
        char cn[256];
        if (X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn, sizeof(cn)) > 0)
            out[n++] = fc_xstrdup(cn);
    }
    for (size_t i = 0; i < n; i++)
        for (char *p = out[i]; *p; p++) *p = (char)tolower((unsigned char)*p);
    return n;
}

static int same_names(const fc_tls_ctx_t *c, SSL_CTX *sc, char **names, size_t n)
{
    size_t have = 0;
    for (size_t i = 0; i < c->nnames; i++) {
        if (c->names[i].ctx != sc) continue;
        have++;
        int found = 0;
        for (size_t k = 0; k < n && !found; k++) found = strcmp(c->names[i].name, names[k]) == 0;
        if (!found) return 0;
    }
    return have == n;
}

static void check_expiry(X509 *x, size_t pair, fc_tls_warn_cb warn, void *arg)
{
    if (warn == NULL) return;
    int days = 0, secs = 0;
    if (ASN1_TIME_diff(&days, &secs, NULL, X509_get0_notAfter(x)) != 1) return;
    if (days > 30 || (days == 30 && secs > 0)) return;
    char subject[256];
    X509_NAME_oneline(X509_get_subject_name(x), subject, sizeof(subject));
    warn(arg, pair, days < 0 || secs < 0 ? (long)days - (secs < 0) : (long)days, subject);
}

void fc_tls_ctx_free(fc_tls_ctx_t *c)
{
    if (c == NULL) return;
    for (size_t i = 0; i < c->nctxs; i++) SSL_CTX_free(c->ctxs[i]);
    for (size_t i = 0; i < c->nnames; i++) free(c->names[i].name);
    free(c->ctxs);
    free(c->names);
    free(c);
}

static int key_type(EVP_PKEY *k) { return EVP_PKEY_get_base_id(k); }

/* Hashes file <path> into <md>. Returns 0 or -1. */
static int digest_file(EVP_MD_CTX *md, const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) return -1;
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), f)) > 0) EVP_DigestUpdate(md, buf, n);
    int bad = ferror(f);
    fclose(f);
    return bad ? -1 : 0;
}

/* SHA-256 of what a session's resumption depends on: every certificate file, and the client
 * CAs and whether a client certificate is required. */
static int sid_context(const fc_tls_server_opts_t *o, unsigned char out[32], unsigned int *len)
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    int rc = md != NULL && EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1 ? 0 : -1;
    if (rc == 0) EVP_DigestUpdate(md, "fulcrum-sid", 11);
    for (size_t i = 0; rc == 0 && i < o->npairs; i++) rc = digest_file(md, o->pairs[i].cert);
    if (rc == 0 && o->client_ca != NULL) {
        EVP_DigestUpdate(md, o->client_required ? "ca-required" : "ca-optional", 11);
        rc = digest_file(md, o->client_ca);
    }
    if (rc == 0 && EVP_DigestFinal_ex(md, out, len) != 1) rc = -1;
    EVP_MD_CTX_free(md);
    return rc;
}

int fc_tls_server_new(const fc_tls_server_opts_t *o, fc_tls_ctx_t **out, fc_tls_fault_t *fault, fc_err_t *err,
                      fc_tls_warn_cb warn, void *warn_arg)
{
    ensure_indexes();
    ERR_clear_error();
    fc_tls_ctx_t *c = fc_xcalloc(1, sizeof(*c));
    c->ctxs = fc_xcalloc(o->npairs, sizeof(SSL_CTX *));
    int *types = fc_xcalloc(o->npairs * 8, sizeof(int)); /* key types per context (at most 8 each) */
    int rc = -1;
    for (size_t i = 0; i < o->npairs; i++) {
        const fc_tls_pair_t *p = &o->pairs[i];
        BIO *b = BIO_new_file(p->cert, "r");
        X509 *leaf = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
        BIO_free(b);
        if (leaf == NULL) {
            errf(err, fault, FC_TLS_F_CERT, i, "cannot read a certificate from", p->cert);
            goto out;
        }
        check_expiry(leaf, i, warn, warn_arg);
        b = BIO_new_file(p->key, "r");
        EVP_PKEY *key = b ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : NULL;
        BIO_free(b);
        if (key == NULL) {
            X509_free(leaf);
            errf(err, fault, FC_TLS_F_KEY, i, "cannot read a private key from", p->key);
            goto out;
        }
        char *names[MAX_NAMES];
        size_t nn = cert_names(leaf, names, MAX_NAMES);
        /* A pair with the same names as an earlier context and a key type it has not got joins it. */
        SSL_CTX *sc = NULL;
        size_t at = 0;
        for (size_t k = 0; k < c->nctxs && sc == NULL; k++) {
            int clash = 0;
            for (size_t t = 0; t < 8; t++) clash |= types[k * 8 + t] == key_type(key);
            if (!clash && same_names(c, c->ctxs[k], names, nn)) {
                sc = c->ctxs[k];
                at = k;
            }
        }
        int fresh = sc == NULL;
        if (fresh) {
            sc = SSL_CTX_new(TLS_server_method());
            if (sc == NULL || server_common(sc, o, c, fault, err) < 0) {
                if (sc == NULL) errf(err, fault, FC_TLS_F_CERT, i, "cannot make a TLS context", NULL);
                SSL_CTX_free(sc);
                X509_free(leaf);
                EVP_PKEY_free(key);
                for (size_t k = 0; k < nn; k++) free(names[k]);
                goto out;
            }
            at = c->nctxs;
            c->ctxs[c->nctxs++] = sc;
        }
        int ok = SSL_CTX_use_certificate_chain_file(sc, p->cert) == 1;
        if (!ok) errf(err, fault, FC_TLS_F_CERT, i, "cannot use the certificate chain in", p->cert);
        else if (!(ok = SSL_CTX_use_PrivateKey(sc, key) == 1))
            errf(err, fault, FC_TLS_F_KEY, i, "cannot use the private key in", p->key);
        else if (!(ok = SSL_CTX_check_private_key(sc) == 1)) {
            ERR_clear_error();
            fault->field = FC_TLS_F_KEY;
            fault->pair = i;
            fc_err_set(err, "the private key in %s does not match the certificate in %s", p->key, p->cert);
        }
        for (size_t t = 0; t < 8; t++)
            if (types[at * 8 + t] == 0) {
                types[at * 8 + t] = key_type(key);
                break;
            }
        X509_free(leaf);
        EVP_PKEY_free(key);
        if (fresh || !ok) {
            for (size_t k = 0; k < nn; k++) {
                if (!ok) {
                    free(names[k]);
                    continue;
                }
                c->names = fc_xrealloc(c->names, (c->nnames + 1) * sizeof(*c->names));
                c->names[c->nnames].name = names[k];
                c->names[c->nnames++].ctx = sc;
            }
        } else {
            for (size_t k = 0; k < nn; k++) free(names[k]);
        }
        if (!ok) goto out;
    }
    /* The session ID context: a session (a ticket or a cached ID, shared by every listener and
     * every generation) resumes only where it was made under the same certificates and the same
     * client-certificate rules, so a session from a listener without client_auth, or trusting
     * other CAs, or from before a reload that added client_auth, never skips the check. */
    unsigned char sid[32];
    unsigned int sidlen = 0;
    if (sid_context(o, sid, &sidlen) != 0) {
        errf(err, fault, o->client_ca ? FC_TLS_F_CLIENT_CA : FC_TLS_F_CERT, 0, "cannot read", o->client_ca ? o->client_ca : o->pairs[0].cert);
        goto out;
    }
    for (size_t k = 0; k < c->nctxs; k++) {
        SSL_CTX_set_ex_data(c->ctxs[k], fc__tls_ex_ctx, c);
        SSL_CTX_set_session_id_context(c->ctxs[k], sid, sidlen);
    }
    c->own_records = !o->openssl_records;
    rc = 0;
out:
    free(types);
    if (rc < 0) fc_tls_ctx_free(c);
    else *out = c;
    return rc;
}

int fc_tls_client_new(const fc_tls_client_opts_t *o, fc_tls_ctx_t **out, fc_tls_fault_t *fault, fc_err_t *err)
{
    ensure_indexes();
    ERR_clear_error();
    SSL_CTX *sc = SSL_CTX_new(TLS_client_method());
    if (sc == NULL) return errf(err, fault, FC_TLS_F_CA, 0, "cannot make a TLS context", NULL);
    SSL_CTX_set_min_proto_version(sc, TLS1_2_VERSION);
    SSL_CTX_set_options(sc, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
    SSL_CTX_set_mode(sc, SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_session_cache_mode(sc, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(sc, fc__tls_new_client_session);
    static const unsigned char alpn[] = "\x08http/1.1";
    SSL_CTX_set_alpn_protos(sc, alpn, sizeof(alpn) - 1);
    if (o->verify) {
        if (SSL_CTX_load_verify_locations(sc, o->ca, NULL) != 1) {
            SSL_CTX_free(sc);
            return errf(err, fault, FC_TLS_F_CA, 0, "cannot load CAs from", o->ca);
        }
        SSL_CTX_set_verify(sc, SSL_VERIFY_PEER, NULL);
    }
    if (o->cert != NULL) {
        if (SSL_CTX_use_certificate_chain_file(sc, o->cert) != 1) {
            SSL_CTX_free(sc);
            return errf(err, fault, FC_TLS_F_CERT, 0, "cannot use the certificate chain in", o->cert);
        }
        if (SSL_CTX_use_PrivateKey_file(sc, o->key != NULL ? o->key : o->cert, SSL_FILETYPE_PEM) != 1 ||
            SSL_CTX_check_private_key(sc) != 1) {
            SSL_CTX_free(sc);
            return errf(err, fault, FC_TLS_F_KEY, 0, "cannot use the private key in", o->key ? o->key : o->cert);
        }
    }
    fc_tls_ctx_t *c = fc_xcalloc(1, sizeof(*c));
    c->ctxs = fc_xcalloc(1, sizeof(SSL_CTX *));
    c->ctxs[0] = sc;
    c->nctxs = 1;
    c->client = 1;
    c->verify = o->verify;
    SSL_CTX_set_ex_data(sc, fc__tls_ex_ctx, c);
    *out = c;
    return 0;
}
