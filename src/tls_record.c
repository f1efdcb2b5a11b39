/* tls_record.c: TLS 1.3 records of an established connection (see tls_record.h). */
#include "fulcrum/tls_record.h"

#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#define ILLEGAL_PARAMETER 47
#define KEY_UPDATE 24

typedef struct suite_info {
    unsigned id;
    const char *cipher;  /* OpenSSL's name for the AEAD */
    size_t key_len;
    size_t md_len;       /* the suite's hash: 32 SHA-256, 48 SHA-384 */
} suite_info_t;

static const suite_info_t suites[] = {
    {0, NULL, 0, 0},
    {0x1301, "AES-128-GCM", 16, 32},
    {0x1302, "AES-256-GCM", 32, 48},
    {0x1303, "ChaCha20-Poly1305", 32, 32},
};
#define NSUITES (sizeof(suites) / sizeof(suites[0]))

/* Per process, per suite: the cipher and a context per direction (0 opens, 1 seals), with the key
 * each context holds now, so the records of one connection in a row are not keyed each time. */
static struct {
    EVP_CIPHER *cipher;
    EVP_CIPHER_CTX *ctx[2];
    uint8_t key[2][32];
    uint8_t keyed[2];
} aead[NSUITES];
static EVP_CIPHER_CTX *sealing; /* the context of the record being sealed (begin to end) */
/* HMAC's hashes, fetched once: HMAC() fetches its algorithms on every call (about 25,000
 * instructions each, four per connection). */
static EVP_MD *sha256, *sha384;
static EVP_MD_CTX *mdx;

/* HMAC (RFC 2104) of <msg> under <key> of <md_len> bytes (the hash's own length, so no key
 * hashing), into <out>. Returns 0 or -1. */
static int hmac(size_t md_len, const uint8_t *key, const uint8_t *msg, size_t n, uint8_t *out)
{
    EVP_MD **slot = md_len == 48 ? &sha384 : &sha256;
    if (*slot == NULL && (*slot = EVP_MD_fetch(NULL, md_len == 48 ? "SHA384" : "SHA256", NULL)) == NULL) return -1;
    if (mdx == NULL && (mdx = EVP_MD_CTX_new()) == NULL) return -1;
    size_t block = md_len == 48 ? 128 : 64;
    uint8_t pad[128], inner[48];
    unsigned int len = 0;
    int ok = 1;
    for (int round = 0; round < 2 && ok; round++) {
        memset(pad, round == 0 ? 0x36 : 0x5c, block);
        for (size_t i = 0; i < md_len; i++) pad[i] ^= key[i];
        ok = EVP_DigestInit_ex2(mdx, *slot, NULL) == 1 && EVP_DigestUpdate(mdx, pad, block) == 1 &&
             EVP_DigestUpdate(mdx, round == 0 ? msg : inner, round == 0 ? n : md_len) == 1 &&
             EVP_DigestFinal_ex(mdx, round == 0 ? inner : out, &len) == 1 && len == md_len;
    }
    OPENSSL_cleanse(pad, sizeof(pad));
    OPENSSL_cleanse(inner, sizeof(inner));
    return ok ? 0 : -1;
}

int fc_tlsr_suite_ok(unsigned id)
{
    for (size_t i = 1; i < NSUITES; i++)
        if (suites[i].id == id) return 1;
    return 0;
}

int fc_tlsr_expand_label(const uint8_t *secret, size_t md_len, const char *label, uint8_t *out, size_t out_len)
{
    size_t ll = strlen(label);
    if (out_len > md_len || ll > 64 || (md_len != 32 && md_len != 48)) return -1;
    /* HkdfLabel (length, "tls13 " label, an empty context), then T(1)'s counter byte: one HMAC block
     * is enough for any output up to the hash's length. */
    uint8_t info[2 + 1 + 6 + 64 + 1 + 1];
    size_t n = 0;
    info[n++] = (uint8_t)(out_len >> 8);
    info[n++] = (uint8_t)out_len;
    info[n++] = (uint8_t)(6 + ll);
    memcpy(info + n, "tls13 ", 6);
    n += 6;
    memcpy(info + n, label, ll);
    n += ll;
    info[n++] = 0;
    info[n++] = 1;
    uint8_t t[48];
    if (hmac(md_len, secret, info, n, t) != 0) return -1;
    memcpy(out, t, out_len);
    OPENSSL_cleanse(t, sizeof(t));
    return 0;
}

/* The key and IV of <d> from its secret. */
static int derive(const suite_info_t *s, fc_tlsr_dir_t *d)
{
    if (fc_tlsr_expand_label(d->secret, s->md_len, "key", d->key, s->key_len) != 0) return -1;
    return fc_tlsr_expand_label(d->secret, s->md_len, "iv", d->iv, sizeof(d->iv));
}

/* RFC 8446 7.2: the next traffic secret, and its key and IV; records count from 0 again. */
static int update(const suite_info_t *s, fc_tlsr_dir_t *d)
{
    uint8_t next[48];
    if (fc_tlsr_expand_label(d->secret, s->md_len, "traffic upd", next, s->md_len) != 0) return -1;
    memcpy(d->secret, next, s->md_len);
    OPENSSL_cleanse(next, sizeof(next));
    d->seq = 0;
    return derive(s, d);
}

int fc_tlsr_init(fc_tlsr_t *r, unsigned id, const uint8_t *rsecret, const uint8_t *wsecret, size_t len,
                 uint64_t rseq, uint64_t wseq)
{
    uint8_t rs[48], ws[48]; /* the secrets may be in <r> already (gathered during the handshake) */
    if (len > sizeof(rs)) return -1;
    memcpy(rs, rsecret, len);
    memcpy(ws, wsecret, len);
    memset(r, 0, sizeof(*r));
    for (size_t i = 1; i < NSUITES; i++)
        if (suites[i].id == id) r->suite = (uint8_t)i;
    if (r->suite == 0 || len != suites[r->suite].md_len) {
        OPENSSL_cleanse(rs, sizeof(rs));
        OPENSSL_cleanse(ws, sizeof(ws));
        r->suite = 0;
        return -1;
    }
    memcpy(r->rd.secret, rs, len);
    memcpy(r->wr.secret, ws, len);
    OPENSSL_cleanse(rs, sizeof(rs));
    OPENSSL_cleanse(ws, sizeof(ws));
    r->rd.seq = rseq;
    r->wr.seq = wseq;
    if (derive(&suites[r->suite], &r->rd) != 0 || derive(&suites[r->suite], &r->wr) != 0) {
        fc_tlsr_wipe(r);
        return -1;
    }
    return 0;
}

void fc_tlsr_wipe(fc_tlsr_t *r) { OPENSSL_cleanse(r, sizeof(*r)); }

void fc_tlsr_cleanup(void)
{
    for (size_t i = 0; i < NSUITES; i++) {
        for (int d = 0; d < 2; d++) EVP_CIPHER_CTX_free(aead[i].ctx[d]);
        EVP_CIPHER_free(aead[i].cipher);
    }
    OPENSSL_cleanse(aead, sizeof(aead));
    memset(aead, 0, sizeof(aead));
    sealing = NULL;
    EVP_MD_CTX_free(mdx);
    EVP_MD_free(sha256);
    EVP_MD_free(sha384);
    mdx = NULL;
    sha256 = sha384 = NULL;
}

/* The context of <r>'s suite for direction <dir> (1 seals), keyed with <d>'s key and set to the
 * nonce of its next record (the IV xor the sequence number, RFC 8446 5.3). */
static EVP_CIPHER_CTX *keyed(const fc_tlsr_t *r, const fc_tlsr_dir_t *d, int dir)
{
    const suite_info_t *s = &suites[r->suite];
    if (r->suite == 0 || d->seq == UINT64_MAX) return NULL; /* the sequence must not wrap */
    if (aead[r->suite].cipher == NULL && (aead[r->suite].cipher = EVP_CIPHER_fetch(NULL, s->cipher, NULL)) == NULL)
        return NULL;
    EVP_CIPHER_CTX *x = aead[r->suite].ctx[dir];
    if (x == NULL) {
        if ((x = EVP_CIPHER_CTX_new()) == NULL) return NULL;
        if (EVP_CipherInit_ex(x, aead[r->suite].cipher, NULL, NULL, NULL, dir) != 1) {
            EVP_CIPHER_CTX_free(x);
            return NULL;
        }
        aead[r->suite].ctx[dir] = x;
    }
    uint8_t nonce[12];
    memcpy(nonce, d->iv, sizeof(nonce));
    for (int i = 0; i < 8; i++) nonce[4 + i] ^= (uint8_t)(d->seq >> (56 - 8 * i));
    int same = aead[r->suite].keyed[dir] && CRYPTO_memcmp(aead[r->suite].key[dir], d->key, s->key_len) == 0;
    int ok = EVP_CipherInit_ex(x, NULL, NULL, same ? NULL : d->key, nonce, dir) == 1;
    if (ok && !same) {
        memcpy(aead[r->suite].key[dir], d->key, s->key_len);
        aead[r->suite].keyed[dir] = 1;
    } else if (!ok) {
        aead[r->suite].keyed[dir] = 0;
    }
    return ok ? x : NULL;
}

long fc_tlsr_record_len(const uint8_t *p, size_t avail)
{
    if (avail < FC_TLSR_HEADER) return 0;
    /* After the handshake every record is application_data outside (RFC 8446 5: a
     * change_cipher_spec now is unexpected); legacy_record_version is ignored. */
    if (p[0] != FC_TLSR_APPDATA) return -FC_TLSR_UNEXPECTED_MESSAGE;
    size_t len = (size_t)p[3] << 8 | p[4];
    if (len > FC_TLSR_MAX_CIPHER) return -FC_TLSR_RECORD_OVERFLOW;
    if (len < FC_TLSR_TAG + 1) return -FC_TLSR_BAD_RECORD_MAC; /* no room for a content type and a tag */
    if (avail < FC_TLSR_HEADER + len) return 0;
    return (long)(FC_TLSR_HEADER + len);
}

int fc_tlsr_open(fc_tlsr_t *r, uint8_t *rec, size_t len, uint8_t *type, size_t *plen)
{
    EVP_CIPHER_CTX *x = keyed(r, &r->rd, 0);
    if (x == NULL) return -FC_TLSR_INTERNAL_ERROR;
    uint8_t *body = rec + FC_TLSR_HEADER;
    size_t clen = len - FC_TLSR_HEADER - FC_TLSR_TAG;
    int outl = 0;
    if (EVP_CipherUpdate(x, NULL, &outl, rec, FC_TLSR_HEADER) != 1 ||
        EVP_CipherUpdate(x, body, &outl, body, (int)clen) != 1 || (size_t)outl != clen ||
        EVP_CIPHER_CTX_ctrl(x, EVP_CTRL_AEAD_SET_TAG, FC_TLSR_TAG, body + clen) != 1 ||
        EVP_CipherFinal_ex(x, body + clen, &outl) != 1)
        return -FC_TLSR_BAD_RECORD_MAC;
    r->rd.seq++;
    /* TLSInnerPlaintext: the content, its type, then zeros of padding; padding included, at most
     * 2^14 + 1 bytes (RFC 8446 5.4). */
    if (clen > FC_TLSR_MAX_PLAIN + 1) return -FC_TLSR_RECORD_OVERFLOW;
    size_t i = clen;
    while (i > 0 && body[i - 1] == 0) i--;
    if (i == 0) return -FC_TLSR_UNEXPECTED_MESSAGE;
    *type = body[i - 1];
    *plen = i - 1;
    if (*plen > FC_TLSR_MAX_PLAIN) return -FC_TLSR_RECORD_OVERFLOW;
    return 0;
}

int fc_tlsr_seal_begin(fc_tlsr_t *r, uint8_t *rec, size_t plen)
{
    size_t len = plen + 1 + FC_TLSR_TAG;
    rec[0] = FC_TLSR_APPDATA;
    rec[1] = 3;
    rec[2] = 3;
    rec[3] = (uint8_t)(len >> 8);
    rec[4] = (uint8_t)len;
    int outl = 0;
    sealing = plen <= FC_TLSR_MAX_PLAIN ? keyed(r, &r->wr, 1) : NULL;
    if (sealing == NULL || EVP_CipherUpdate(sealing, NULL, &outl, rec, FC_TLSR_HEADER) != 1) {
        sealing = NULL;
        return -1;
    }
    return 0;
}

int fc_tlsr_seal_add(uint8_t *rec, size_t at, const void *in, size_t n)
{
    int outl = 0;
    if (sealing == NULL) return -1;
    if (n == 0) return 0;
    if (EVP_CipherUpdate(sealing, rec + FC_TLSR_HEADER + at, &outl, in, (int)n) != 1 || (size_t)outl != n) {
        sealing = NULL;
        return -1;
    }
    return 0;
}

long fc_tlsr_seal_end(fc_tlsr_t *r, uint8_t *rec, size_t plen, uint8_t type)
{
    EVP_CIPHER_CTX *x = sealing;
    uint8_t *tail = rec + FC_TLSR_HEADER + plen;
    int outl = 0, fin = 0;
    sealing = NULL;
    if (x == NULL || EVP_CipherUpdate(x, tail, &outl, &type, 1) != 1 || outl != 1 ||
        EVP_CipherFinal_ex(x, tail + 1, &fin) != 1 || fin != 0 ||
        EVP_CIPHER_CTX_ctrl(x, EVP_CTRL_AEAD_GET_TAG, FC_TLSR_TAG, tail + 1) != 1)
        return -1;
    r->wr.seq++;
    return (long)(FC_TLSR_HEADER + plen + 1 + FC_TLSR_TAG);
}

/* One record of <n> bytes of type <type> from <p>. */
static long seal_one(fc_tlsr_t *r, uint8_t *rec, uint8_t type, const uint8_t *p, size_t n)
{
    if (fc_tlsr_seal_begin(r, rec, n) != 0 || fc_tlsr_seal_add(rec, 0, p, n) != 0) return -1;
    return fc_tlsr_seal_end(r, rec, n, type);
}

long fc_tlsr_seal_alert(fc_tlsr_t *r, uint8_t *rec, uint8_t alert)
{
    /* close_notify and user_canceled are warnings; every other alert is fatal (RFC 8446 6). */
    const uint8_t a[2] = {alert == FC_TLSR_CLOSE_NOTIFY || alert == FC_TLSR_USER_CANCELED ? 1 : 2, alert};
    return seal_one(r, rec, FC_TLSR_ALERT, a, sizeof(a));
}

long fc_tlsr_seal_key_update(fc_tlsr_t *r, uint8_t *rec)
{
    static const uint8_t ku[5] = {KEY_UPDATE, 0, 0, 1, 0}; /* update_not_requested */
    long n = seal_one(r, rec, FC_TLSR_HANDSHAKE, ku, sizeof(ku));
    if (n < 0 || update(&suites[r->suite], &r->wr) != 0) return -1;
    return n;
}

int fc_tlsr_handshake(fc_tlsr_t *r, const uint8_t *p, size_t n, int *answer)
{
    *answer = 0;
    if (n == 0) return -FC_TLSR_UNEXPECTED_MESSAGE; /* a handshake record is never empty */
    for (size_t i = 0; i < n;) {
        r->hs[r->hs_len++] = p[i++];
        if (r->hs_len == 1 && r->hs[0] != KEY_UPDATE) return -FC_TLSR_UNEXPECTED_MESSAGE;
        if (r->hs_len == 4 && (r->hs[1] != 0 || r->hs[2] != 0 || r->hs[3] != 1)) return -FC_TLSR_DECODE_ERROR;
        if (r->hs_len < 5) continue;
        r->hs_len = 0;
        if (r->hs[4] > 1) return -ILLEGAL_PARAMETER;
        /* A key change must come at the end of a record (RFC 8446 5.1). */
        if (i != n) return -FC_TLSR_UNEXPECTED_MESSAGE;
        if (update(&suites[r->suite], &r->rd) != 0) return -FC_TLSR_INTERNAL_ERROR;
        *answer = r->hs[4] == 1;
    }
    return 0;
}
