/* tls_record.h: the TLS 1.3 record layer (RFC 8446 section 5) of an established connection, for
 * the application traffic after a handshake OpenSSL did. OpenSSL's SSL object holds about 16 KB
 * for as long as a connection lives; once the handshake is over, all a TLS 1.3 connection needs is
 * this: a traffic secret, a key, an IV and a sequence number per direction. tls.c hands the secrets
 * and sequence numbers over from OpenSSL and frees the SSL; from then on these functions seal and
 * open every record, answer key updates, and tell which alert a bad record gets.
 *
 * Pure: no I/O, no libuv, no allocation per connection. The AEAD work runs on cipher contexts kept
 * per process (one per cipher and direction; records are sealed and opened one at a time, on the
 * loop's thread), keyed again only when another connection's key comes. Suites:
 * TLS_AES_128_GCM_SHA256, TLS_AES_256_GCM_SHA384 and TLS_CHACHA20_POLY1305_SHA256 (the others, the
 * CCM ones, stay with OpenSSL). Errors are TLS alert numbers, returned negated. */
#ifndef FULCRUM_TLS_RECORD_H
#define FULCRUM_TLS_RECORD_H

#include <stddef.h>
#include <stdint.h>

#define FC_TLSR_HEADER 5
#define FC_TLSR_TAG 16
#define FC_TLSR_MAX_PLAIN 16384                      /* 2^14: the most a record carries */
#define FC_TLSR_MAX_CIPHER (FC_TLSR_MAX_PLAIN + 256) /* the most a record's body may be (RFC 8446 5.2) */
#define FC_TLSR_OVERHEAD (FC_TLSR_HEADER + 1 + FC_TLSR_TAG) /* what sealing adds to a record */

/* Content types and the alerts this layer sends. */
enum {
    FC_TLSR_ALERT = 21, FC_TLSR_HANDSHAKE = 22, FC_TLSR_APPDATA = 23,
};
enum {
    FC_TLSR_CLOSE_NOTIFY = 0, FC_TLSR_UNEXPECTED_MESSAGE = 10, FC_TLSR_BAD_RECORD_MAC = 20,
    FC_TLSR_RECORD_OVERFLOW = 22, FC_TLSR_DECODE_ERROR = 50, FC_TLSR_INTERNAL_ERROR = 80,
    FC_TLSR_USER_CANCELED = 90,
};

/* One direction: its traffic secret (kept for key updates), the key and IV made from it, and the
 * number of the next record. Wiped by fc_tlsr_wipe. */
typedef struct fc_tlsr_dir {
    uint64_t seq;
    uint8_t secret[48];
    uint8_t key[32];
    uint8_t iv[12];
} fc_tlsr_dir_t;

typedef struct fc_tlsr {
    fc_tlsr_dir_t rd, wr;
    uint8_t suite;        /* 1..3: AES-128-GCM, AES-256-GCM, ChaCha20-Poly1305; 0: none */
    uint8_t hs[5];        /* a handshake message begun in one record and not finished yet */
    uint8_t hs_len;
    uint8_t empty;        /* records in a row that carried no application data */
} fc_tlsr_t;

/* Sets up <r> for cipher suite <id> (0x1301, 0x1302 or 0x1303) with the peer's (read) and our
 * (write) application traffic secrets of <len> bytes (the suite's hash length), and the numbers
 * of the next record each way. Returns 0, or -1 for a suite or length this layer does not do. */
int fc_tlsr_init(fc_tlsr_t *r, unsigned id, const uint8_t *rsecret, const uint8_t *wsecret, size_t len,
                 uint64_t rseq, uint64_t wseq);
/* Whether suite <id> is one fc_tlsr_init takes. */
int fc_tlsr_suite_ok(unsigned id);
void fc_tlsr_wipe(fc_tlsr_t *r);

/* The length of the whole record at <p> (<avail> bytes there): > 0 when it is all there, 0 when
 * more must come first, or -alert for a header no TLS 1.3 peer sends after the handshake (another
 * outer type, a body too short for a tag or too long). */
long fc_tlsr_record_len(const uint8_t *p, size_t avail);
/* Opens the record of <len> bytes at <rec> (as fc_tlsr_record_len measured it) in place. Returns
 * 0 with the plaintext at rec + FC_TLSR_HEADER, *<plen> bytes of inner content type *<type>; or
 * -alert (bad_record_mac, unexpected_message for a record of padding only, record_overflow). */
int fc_tlsr_open(fc_tlsr_t *r, uint8_t *rec, size_t len, uint8_t *type, size_t *plen);

/* Sealing is three steps, so one record can take several pieces of the caller's memory: begin
 * writes the header of a record carrying <plen> (<= FC_TLSR_MAX_PLAIN) bytes at <rec>, which must
 * have plen + FC_TLSR_OVERHEAD bytes of room; add encrypts the next <n> bytes of it from <in> to
 * their place; end adds the content type and the tag and returns the record's length. One record
 * is sealed at a time per process. Returns -1 (begin, add, end) only when the cipher fails. */
int fc_tlsr_seal_begin(fc_tlsr_t *r, uint8_t *rec, size_t plen);
int fc_tlsr_seal_add(uint8_t *rec, size_t at, const void *in, size_t n);
long fc_tlsr_seal_end(fc_tlsr_t *r, uint8_t *rec, size_t plen, uint8_t type);
/* One alert record (close_notify as a warning, the others fatal) at <rec> (FC_TLSR_OVERHEAD + 2
 * bytes of room). Returns its length or -1. */
long fc_tlsr_seal_alert(fc_tlsr_t *r, uint8_t *rec, uint8_t alert);

/* The handshake bytes <p>, <n> of a handshake record opened just now. After the handshake a
 * client may send only KeyUpdate (RFC 8446 4.6.3): the read key moves on, and *<answer> says the
 * peer asked for ours to move too (call fc_tlsr_seal_key_update before any other record). A
 * message may span records but must end where one ends. Returns 0 or -alert. */
int fc_tlsr_handshake(fc_tlsr_t *r, const uint8_t *p, size_t n, int *answer);
/* Whether a handshake message is begun and not finished (then only handshake records may come). */
static inline int fc_tlsr_hs_pending(const fc_tlsr_t *r) { return r->hs_len > 0; }
/* Our KeyUpdate (update_not_requested) at <rec> (FC_TLSR_OVERHEAD + 5 bytes of room), after which
 * the write key moves on. Returns its length or -1. */
long fc_tlsr_seal_key_update(fc_tlsr_t *r, uint8_t *rec);

/* HKDF-Expand-Label (RFC 8446 7.1) with an empty context, for <out_len> <= the hash's length;
 * <md_len> 32 (SHA-256) or 48 (SHA-384). For the tests' known answers too. Returns 0 or -1. */
int fc_tlsr_expand_label(const uint8_t *secret, size_t md_len, const char *label, uint8_t *out, size_t out_len);

/* Frees the per-process cipher contexts (at a worker's exit). */
void fc_tlsr_cleanup(void);

#endif
