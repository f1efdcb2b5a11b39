/* test_tls_record.c: tls_record.c with OpenSSL's own TLS 1.3 as the peer. A client and a server
 * SSL shake hands over a BIO pair (a certificate made in memory); the server's traffic secrets come
 * from the keylog callback, as in tls.c; then the server SSL is freed and tls_record.c speaks for
 * it: records both ways, 16 KiB records and the limit, padded records from the client, key updates
 * asked for and not, a flipped bit, close_notify both ways, for each of the three suites. Also
 * HKDF-Expand-Label against OpenSSL's TLS13-KDF, the header checks, and the handshake-message
 * rules (only KeyUpdate, split across records, aligned with a record's end). */
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "fulcrum/tls_record.h"
#include "harness.h"

void test_tls_record(void);

static uint8_t secret_c[48], secret_s[48];
static size_t secret_len;

static int unhex(char c) { return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10; }

static void keylog(const SSL *ssl, const char *line)
{
    (void)ssl;
    uint8_t *dst = strncmp(line, "CLIENT_TRAFFIC_SECRET_0 ", 24) == 0   ? secret_c
                   : strncmp(line, "SERVER_TRAFFIC_SECRET_0 ", 24) == 0 ? secret_s
                                                                         : NULL;
    if (dst == NULL) return;
    const char *p = strchr(line + 24, ' ') + 1;
    size_t n = strlen(p) / 2;
    for (size_t i = 0; i < n && i < 48; i++) dst[i] = (uint8_t)(unhex(p[2 * i]) << 4 | unhex(p[2 * i + 1]));
    secret_len = n;
}

static SSL_CTX *server_ctx(void)
{
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    SSL_CTX *sc = SSL_CTX_new(TLS_server_method());
    if (key == NULL || x == NULL || sc == NULL) return NULL;
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), -60);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, key);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC, (const unsigned char *)"t", -1, -1, 0);
    X509_set_issuer_name(x, X509_get_subject_name(x));
    X509_sign(x, key, EVP_sha256());
    SSL_CTX_use_certificate(sc, x);
    SSL_CTX_use_PrivateKey(sc, key);
    SSL_CTX_set_min_proto_version(sc, TLS1_3_VERSION);
    SSL_CTX_set_num_tickets(sc, 0); /* nothing after the server's Finished: both sequences start at 0 */
    SSL_CTX_set_keylog_callback(sc, keylog);
    X509_free(x);
    EVP_PKEY_free(key);
    return sc;
}

typedef struct pair {
    SSL *c;
    BIO *net; /* the server's end of the BIO pair: what the client wrote, and where our records go */
    fc_tlsr_t r;
} pair_t;

/* A handshake between a client offering only <suite> and the server; then the server SSL is
 * freed and <p->r> takes its place. Returns 0 or -1. */
static int pair_open(pair_t *p, SSL_CTX *sc, const char *suite)
{
    SSL_CTX *cc = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_min_proto_version(cc, TLS1_3_VERSION);
    SSL_CTX_set_ciphersuites(cc, suite);
    p->c = SSL_new(cc);
    SSL_CTX_free(cc);
    SSL *s = SSL_new(sc);
    BIO *bc, *bs;
    BIO_new_bio_pair(&bc, 1 << 17, &bs, 1 << 17); /* room for 50,000 bytes of records at once */
    SSL_set_bio(p->c, bc, bc);
    SSL_set_bio(s, bs, bs);
    SSL_set_connect_state(p->c);
    SSL_set_accept_state(s);
    secret_len = 0;
    int cdone = 0, sdone = 0;
    for (int i = 0; i < 20 && !(cdone && sdone); i++) {
        if (!cdone) cdone = SSL_do_handshake(p->c) == 1;
        if (!sdone) sdone = SSL_do_handshake(s) == 1;
    }
    unsigned id = SSL_CIPHER_get_protocol_id(SSL_get_current_cipher(s));
    BIO_up_ref(bs);
    p->net = bs;
    SSL_free(s);
    ERR_clear_error();
    if (!cdone || !sdone) return -1;
    return fc_tlsr_init(&p->r, id, secret_c, secret_s, secret_len, 0, 0);
}

static void pair_close(pair_t *p)
{
    SSL_free(p->c);
    BIO_free(p->net);
    fc_tlsr_wipe(&p->r);
}

static uint8_t wire[70000];

/* What the client wrote so far. */
static size_t from_client(pair_t *p)
{
    int n = BIO_read(p->net, wire, sizeof(wire));
    return n > 0 ? (size_t)n : 0;
}

/* Opens the record at <rec> (<avail> bytes there). Returns its length, or -alert. */
static long open_at(pair_t *p, uint8_t *rec, size_t avail, uint8_t *type, size_t *plen)
{
    long len = fc_tlsr_record_len(rec, avail);
    if (len <= 0) return len == 0 ? -1000 : len;
    int rc = fc_tlsr_open(&p->r, rec, (size_t)len, type, plen);
    return rc < 0 ? rc : len;
}

/* Seals <n> bytes of <data> as records of at most 16 KiB into <out>; returns the length. */
static size_t seal_all(pair_t *p, const uint8_t *data, size_t n, uint8_t *out)
{
    size_t at = 0;
    do {
        size_t k = n > FC_TLSR_MAX_PLAIN ? FC_TLSR_MAX_PLAIN : n;
        if (fc_tlsr_seal_begin(&p->r, out + at, k) != 0) return 0;
        /* in two pieces: a record is sealed from several */
        if (fc_tlsr_seal_add(out + at, 0, data, k / 3) != 0 || fc_tlsr_seal_add(out + at, k / 3, data + k / 3, k - k / 3) != 0)
            return 0;
        long len = fc_tlsr_seal_end(&p->r, out + at, k, FC_TLSR_APPDATA);
        if (len < 0) return 0;
        at += (size_t)len;
        data += k;
        n -= k;
    } while (n > 0);
    return at;
}

static int client_reads(pair_t *p, const uint8_t *want, size_t n)
{
    static uint8_t got[70000];
    size_t have = 0;
    for (int i = 0; i < 64 && have < n; i++) {
        int k = SSL_read(p->c, got + have, (int)(n - have));
        if (k <= 0) break;
        have += (size_t)k;
    }
    return have == n && memcmp(got, want, n) == 0;
}

static uint8_t pattern[50000];

static void case_suite(SSL_CTX *sc, const char *suite, size_t want_len)
{
    subtest(suite);
    pair_t p;
    memset(&p, 0, sizeof(p));
    if (pair_open(&p, sc, suite) != 0) {
        fc_test_fail(__FILE__, __LINE__, "handshake or init failed for %s", suite);
        pair_close(&p);
        return;
    }
    is_int(secret_len, want_len);
    uint8_t type = 0;
    size_t plen = 0;

    /* the client's record, opened */
    is_int(SSL_write(p.c, "hello", 5), 5);
    size_t n = from_client(&p);
    is_int(open_at(&p, wire, n, &type, &plen), (long)n);
    is_int(type, FC_TLSR_APPDATA);
    ok(plen == 5 && memcmp(wire + FC_TLSR_HEADER, "hello", 5) == 0);
    is_int(p.r.rd.seq, 1);

    /* ours, read by the client: a small one, then 50,000 bytes in 16 KiB records */
    static uint8_t out[70000];
    n = seal_all(&p, (const uint8_t *)"world", 5, out);
    is_int(n, 5 + FC_TLSR_OVERHEAD);
    BIO_write(p.net, out, (int)n);
    ok(client_reads(&p, (const uint8_t *)"world", 5));
    n = seal_all(&p, pattern, sizeof(pattern), out);
    is_int(n, sizeof(pattern) + 4 * FC_TLSR_OVERHEAD);
    is_int(BIO_write(p.net, out, (int)n), (int)n);
    ok(client_reads(&p, pattern, sizeof(pattern)));
    ok(fc_tlsr_seal_begin(&p.r, out, FC_TLSR_MAX_PLAIN + 1) != 0); /* no record carries more */

    /* 40,000 bytes from the client: three records, opened one after the other */
    is_int(SSL_write(p.c, pattern, 40000), 40000);
    n = from_client(&p);
    size_t at = 0, got = 0;
    int recs = 0, same = 1;
    while (at < n) {
        long len = open_at(&p, wire + at, n - at, &type, &plen);
        if (len <= 0) break;
        same &= type == FC_TLSR_APPDATA && memcmp(wire + at + FC_TLSR_HEADER, pattern + got, plen) == 0;
        got += plen;
        at += (size_t)len;
        recs++;
    }
    is_int(got, 40000);
    is_int(recs, 3);
    ok(same);

    /* padded: the padding goes, the content type stays */
    SSL_set_block_padding(p.c, 512);
    is_int(SSL_write(p.c, "x", 1), 1);
    n = from_client(&p);
    is_int(n, FC_TLSR_HEADER + 512 + FC_TLSR_TAG);
    is_int(open_at(&p, wire, n, &type, &plen), (long)n);
    ok(type == FC_TLSR_APPDATA && plen == 1 && wire[FC_TLSR_HEADER] == 'x');
    SSL_set_block_padding(p.c, 0);

    /* a key update the client asks us to answer: ours goes first, then data under the new key */
    ok(SSL_key_update(p.c, SSL_KEY_UPDATE_REQUESTED) == 1);
    is_int(SSL_write(p.c, "after", 5), 5);
    n = from_client(&p);
    long len = open_at(&p, wire, n, &type, &plen);
    ok(len > 0 && type == FC_TLSR_HANDSHAKE);
    int answer = 0;
    is_int(fc_tlsr_handshake(&p.r, wire + FC_TLSR_HEADER, plen, &answer), 0);
    is_int(answer, 1);
    is_int(p.r.rd.seq, 0);
    ok(len > 0 && open_at(&p, wire + len, n - (size_t)len, &type, &plen) > 0);
    ok(type == FC_TLSR_APPDATA && plen == 5 && memcmp(wire + len + FC_TLSR_HEADER, "after", 5) == 0);
    long ku = fc_tlsr_seal_key_update(&p.r, out);
    is_int(ku, 5 + FC_TLSR_OVERHEAD);
    is_int(p.r.wr.seq, 0);
    n = (size_t)ku + seal_all(&p, (const uint8_t *)"reply", 5, out + ku);
    BIO_write(p.net, out, (int)n);
    ok(client_reads(&p, (const uint8_t *)"reply", 5));

    /* one not asked to be answered */
    ok(SSL_key_update(p.c, SSL_KEY_UPDATE_NOT_REQUESTED) == 1);
    is_int(SSL_write(p.c, "again", 5), 5);
    n = from_client(&p);
    len = open_at(&p, wire, n, &type, &plen);
    is_int(fc_tlsr_handshake(&p.r, wire + FC_TLSR_HEADER, plen, &answer), 0);
    is_int(answer, 0);
    ok(len > 0 && open_at(&p, wire + len, n - (size_t)len, &type, &plen) > 0 && plen == 5);
    n = seal_all(&p, (const uint8_t *)"still", 5, out);
    BIO_write(p.net, out, (int)n);
    ok(client_reads(&p, (const uint8_t *)"still", 5));

    /* close_notify from the client */
    uint8_t saved[64];
    is_int(SSL_write(p.c, "y", 1), 1);
    n = from_client(&p);
    memcpy(saved, wire, n < sizeof(saved) ? n : sizeof(saved));
    wire[FC_TLSR_HEADER] ^= 1; /* one bit of the ciphertext */
    is_int(open_at(&p, wire, n, &type, &plen), -FC_TLSR_BAD_RECORD_MAC);
    is_int(p.r.rd.seq, 1); /* not counted (tls.c ends the connection here; the test goes on) */
    memcpy(wire, saved, n); /* (opening in place wrote over it) */
    wire[n - 1] ^= 0x80; /* one bit of the tag */
    is_int(open_at(&p, wire, n, &type, &plen), -FC_TLSR_BAD_RECORD_MAC);
    memcpy(wire, saved, n);
    is_int(open_at(&p, wire, n, &type, &plen), (long)n);
    SSL_shutdown(p.c);
    n = from_client(&p);
    is_int(open_at(&p, wire, n, &type, &plen), (long)n);
    ok(type == FC_TLSR_ALERT && plen == 2 && wire[FC_TLSR_HEADER + 1] == FC_TLSR_CLOSE_NOTIFY);

    /* ours, and the client sees the end */
    len = fc_tlsr_seal_alert(&p.r, out, FC_TLSR_CLOSE_NOTIFY);
    is_int(len, 2 + FC_TLSR_OVERHEAD);
    BIO_write(p.net, out, (int)len);
    char c;
    ok(SSL_read(p.c, &c, 1) <= 0);
    is_int(SSL_get_error(p.c, 0), SSL_ERROR_ZERO_RETURN);
    ERR_clear_error();
    pair_close(&p);
}

/* Rules that need no peer: a connection whose two directions share one secret opens what it
 * seals. */
static void case_rules(void)
{
    subtest("headers and handshake messages");
    uint8_t s[32], rec[64];
    memset(s, 7, sizeof(s));
    fc_tlsr_t r;
    ok(fc_tlsr_init(&r, 0x1304, s, s, 32, 0, 0) != 0); /* CCM stays with OpenSSL */
    ok(fc_tlsr_init(&r, 0x1302, s, s, 32, 0, 0) != 0); /* SHA-384's secrets are 48 bytes */
    ok(!fc_tlsr_suite_ok(0x1305) && fc_tlsr_suite_ok(0x1303));
    is_int(fc_tlsr_init(&r, 0x1301, s, s, 32, 0, 0), 0);

    const uint8_t partial[] = {23, 3, 3, 0, 40, 1, 2};
    is_int(fc_tlsr_record_len(partial, 3), 0);
    is_int(fc_tlsr_record_len(partial, sizeof(partial)), 0);
    const uint8_t ccs[] = {20, 3, 3, 0, 1, 1};
    is_int(fc_tlsr_record_len(ccs, sizeof(ccs)), -FC_TLSR_UNEXPECTED_MESSAGE);
    const uint8_t huge[] = {23, 3, 3, 0x41, 0x01};
    is_int(fc_tlsr_record_len(huge, sizeof(huge)), -FC_TLSR_RECORD_OVERFLOW);
    const uint8_t most[] = {23, 3, 3, 0x41, 0x00};
    is_int(fc_tlsr_record_len(most, sizeof(most)), 0); /* 2^14 + 256 is allowed; it is not all here */
    const uint8_t tiny[] = {23, 3, 3, 0, 16};
    is_int(fc_tlsr_record_len(tiny, sizeof(tiny)), -FC_TLSR_BAD_RECORD_MAC);

    /* padding only: no content type */
    uint8_t type = 0;
    size_t plen = 0;
    ok(fc_tlsr_seal_begin(&r, rec, 0) == 0);
    long len = fc_tlsr_seal_end(&r, rec, 0, 0);
    is_int(fc_tlsr_open(&r, rec, (size_t)len, &type, &plen), -FC_TLSR_UNEXPECTED_MESSAGE);
    /* an empty application-data record is fine (tls.c counts them) */
    ok(fc_tlsr_seal_begin(&r, rec, 0) == 0);
    len = fc_tlsr_seal_end(&r, rec, 0, FC_TLSR_APPDATA);
    is_int(fc_tlsr_open(&r, rec, (size_t)len, &type, &plen), 0);
    ok(type == FC_TLSR_APPDATA && plen == 0);
    /* the sequence numbers are in the nonce: a record opened out of turn fails */
    ok(fc_tlsr_seal_begin(&r, rec, 0) == 0);
    len = fc_tlsr_seal_end(&r, rec, 0, FC_TLSR_APPDATA);
    r.rd.seq++;
    is_int(fc_tlsr_open(&r, rec, (size_t)len, &type, &plen), -FC_TLSR_BAD_RECORD_MAC);

    int answer = 0;
    const uint8_t ku[] = {24, 0, 0, 1, 1};
    const uint8_t ticket[] = {4, 0, 0, 1, 0};
    const uint8_t bad_req[] = {24, 0, 0, 1, 2};
    const uint8_t bad_len[] = {24, 0, 0, 2, 0, 0};
    const uint8_t two[] = {24, 0, 0, 1, 0, 24, 0, 0, 1, 0};
    is_int(fc_tlsr_handshake(&r, ticket, sizeof(ticket), &answer), -FC_TLSR_UNEXPECTED_MESSAGE);
    r.hs_len = 0;
    is_int(fc_tlsr_handshake(&r, bad_req, sizeof(bad_req), &answer), -47);
    is_int(fc_tlsr_handshake(&r, bad_len, sizeof(bad_len), &answer), -FC_TLSR_DECODE_ERROR);
    r.hs_len = 0;
    is_int(fc_tlsr_handshake(&r, two, sizeof(two), &answer), -FC_TLSR_UNEXPECTED_MESSAGE); /* not at a record's end */
    is_int(fc_tlsr_handshake(&r, ku, 0, &answer), -FC_TLSR_UNEXPECTED_MESSAGE);
    /* split across two records */
    uint8_t before[48];
    memcpy(before, r.rd.secret, sizeof(before));
    is_int(fc_tlsr_handshake(&r, ku, 3, &answer), 0);
    ok(fc_tlsr_hs_pending(&r));
    ok(memcmp(before, r.rd.secret, 32) == 0);
    is_int(fc_tlsr_handshake(&r, ku + 3, 2, &answer), 0);
    ok(!fc_tlsr_hs_pending(&r));
    is_int(answer, 1);
    ok(memcmp(before, r.rd.secret, 32) != 0);
    fc_tlsr_wipe(&r);
}

/* HKDF-Expand-Label against OpenSSL's own TLS 1.3 KDF. */
static void case_expand(void)
{
    subtest("HKDF-Expand-Label");
    EVP_KDF *kdf = EVP_KDF_fetch(NULL, "TLS13-KDF", NULL);
    ok(kdf != NULL);
    const char *labels[] = {"key", "iv", "traffic upd"};
    const size_t lens[] = {16, 12, 32};
    for (int md = 0; md < 2 && kdf != NULL; md++) {
        size_t mdl = md ? 48 : 32;
        uint8_t secret[48];
        for (size_t i = 0; i < sizeof(secret); i++) secret[i] = (uint8_t)(i * 37 + md);
        for (size_t l = 0; l < 3; l++) {
            uint8_t mine[48], theirs[48];
            size_t n = l == 2 ? mdl : lens[l];
            int mode = EVP_KDF_HKDF_MODE_EXPAND_ONLY;
            OSSL_PARAM ps[] = {
                OSSL_PARAM_construct_int(OSSL_KDF_PARAM_MODE, &mode),
                OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, md ? "SHA384" : "SHA256", 0),
                OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, secret, mdl),
                OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_PREFIX, (void *)"tls13 ", 6),
                OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_LABEL, (void *)labels[l], strlen(labels[l])),
                OSSL_PARAM_construct_end(),
            };
            EVP_KDF_CTX *k = EVP_KDF_CTX_new(kdf);
            ok(k != NULL && EVP_KDF_derive(k, theirs, n, ps) == 1);
            EVP_KDF_CTX_free(k);
            is_int(fc_tlsr_expand_label(secret, mdl, labels[l], mine, n), 0);
            ok(memcmp(mine, theirs, n) == 0);
        }
    }
    EVP_KDF_free(kdf);
}

void test_tls_record(void)
{
    for (size_t i = 0; i < sizeof(pattern); i++) pattern[i] = (uint8_t)(i * 131 + (i >> 8));
    SSL_CTX *sc = server_ctx();
    ok(sc != NULL);
    if (sc != NULL) {
        case_suite(sc, "TLS_AES_128_GCM_SHA256", 32);
        case_suite(sc, "TLS_AES_256_GCM_SHA384", 48);
        case_suite(sc, "TLS_CHACHA20_POLY1305_SHA256", 32);
    }
    SSL_CTX_free(sc);
    case_rules();
    case_expand();
    fc_tlsr_cleanup();
}
