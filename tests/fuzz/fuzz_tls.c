/* fuzz_tls.c: libFuzzer target for the TLS 1.3 record layer (src/tls_record.c). A peer (a second
 * fc_tlsr_t holding the same secrets the other way round) seals what the input says, the record
 * layer under test measures and opens it, as tls.c does, record by record.
 *
 * Input layout:
 *   byte 0      the suite (0x1301 + byte % 3)
 *   then ops, each: a kind byte, a length byte L, then L bytes of content (fewer at the end):
 *     kind % 6 == 0  an application_data record of the content, padded with (kind >> 3) zeros
 *     kind % 6 == 1  a handshake record of the content (a KeyUpdate or anything else)
 *     kind % 6 == 2  an alert record of the content
 *     kind % 6 == 3  a record of inner type content[0] (any type, 0 too) of the rest
 *     kind % 6 == 4  an application_data record of the content with one bit of it flipped at
 *                    content[0] (header, body or tag)
 *     kind % 6 == 5  raw bytes as they come off the wire (a header and body of anything)
 *   The record bytes are also measured in every prefix (a record arrives in pieces).
 *
 * Invariants (a violation traps): fc_tlsr_record_len never claims more than is there, and its
 * answer for a prefix is 0 or the same error; an authentic record opens to exactly what was
 * sealed (content and inner type, the padding gone) unless a key update desynchronised the two
 * sides, in which case nothing opens any more; a record with a flipped bit never opens; a handshake
 * record never leaves more than 4 bytes of a message pending; a key update the layer answers is
 * one the peer opens, and the peer's key follows it. */
#include <stdint.h>
#include <string.h>

#include "fulcrum/tls_record.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                                                    \
    do {                                                                                            \
        if (!(c)) __builtin_trap();                                                                 \
    } while (0)

static uint8_t rec[FC_TLSR_HEADER + FC_TLSR_MAX_CIPHER + 64];

/* Seals <n> bytes of <p> with inner type <type> and <pad> zeros of padding. Returns the length. */
static long seal(fc_tlsr_t *w, uint8_t type, const uint8_t *p, size_t n, size_t pad)
{
    static const uint8_t zeros[256];
    if (pad == 0) {
        if (fc_tlsr_seal_begin(w, rec, n) != 0 || fc_tlsr_seal_add(rec, 0, p, n) != 0) return -1;
        return fc_tlsr_seal_end(w, rec, n, type);
    }
    /* content, type, pad - 1 zeros, and the last zero as the "type" seal_end writes */
    size_t plen = n + pad;
    if (fc_tlsr_seal_begin(w, rec, plen) != 0 || fc_tlsr_seal_add(rec, 0, p, n) != 0 ||
        fc_tlsr_seal_add(rec, n, &type, 1) != 0 || fc_tlsr_seal_add(rec, n + 1, zeros, pad - 1) != 0)
        return -1;
    return fc_tlsr_seal_end(w, rec, plen, 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    unsigned id = 0x1301 + data[0] % 3;
    uint8_t sc[48], ss[48];
    size_t len = id == 0x1302 ? 48 : 32;
    for (size_t i = 0; i < sizeof(sc); i++) {
        sc[i] = (uint8_t)(i * 7 + 1);
        ss[i] = (uint8_t)(i * 13 + 5);
    }
    fc_tlsr_t me, peer;
    CHECK(fc_tlsr_init(&me, id, sc, ss, len, 0, 0) == 0);
    CHECK(fc_tlsr_init(&peer, id, ss, sc, len, 0, 0) == 0);
    int in_step = 1; /* the peer's write key and my read key agree */
    static uint8_t content[256];
    for (size_t at = 1; at + 2 <= size;) {
        uint8_t kind = data[at], n = data[at + 1];
        at += 2;
        size_t k = size - at < n ? size - at : n;
        memcpy(content, data + at, k);
        at += k;
        long rl;
        uint8_t want_type;
        const uint8_t *body = content;
        size_t blen = k;
        int flipped = 0;
        switch (kind % 6) {
        case 0: want_type = FC_TLSR_APPDATA; break;
        case 1: want_type = FC_TLSR_HANDSHAKE; break;
        case 2: want_type = FC_TLSR_ALERT; break;
        case 3:
            want_type = k > 0 ? content[0] : FC_TLSR_APPDATA;
            body = content + (k > 0);
            blen = k - (k > 0);
            break;
        case 4: want_type = FC_TLSR_APPDATA; flipped = 1; break;
        default: want_type = 0; break;
        }
        if (kind % 6 == 5) {
            memcpy(rec, content, k);
            rl = (long)k;
        } else {
            size_t pad = kind % 6 == 0 ? (size_t)(kind >> 3) : 0;
            rl = seal(&peer, want_type, body, blen, pad);
            CHECK(rl > 0);
            if (flipped) {
                size_t bit = k > 0 ? content[0] : 0;
                rec[(bit >> 3) % (size_t)rl] ^= (uint8_t)(1u << (bit & 7));
            }
        }
        long full = fc_tlsr_record_len(rec, (size_t)rl);
        CHECK(full <= rl);
        for (size_t p = 0; p < (size_t)rl; p++) {
            long part = fc_tlsr_record_len(rec, p);
            CHECK(part == 0 || (part < 0 && part == full) || (part > 0 && part <= (long)p));
        }
        if (full <= 0) {
            CHECK(kind % 6 == 5 || flipped); /* what the peer sealed is always a whole record */
            if (flipped) me.rd.seq++;        /* (and counted) */
            continue;
        }
        uint8_t type = 0;
        size_t plen = 0;
        int rc = fc_tlsr_open(&me, rec, (size_t)full, &type, &plen);
        if (flipped || kind % 6 == 5 || !in_step) {
            CHECK(rc != 0); /* no key opens it, or not the key it was sealed with */
            /* a failed open counts nothing; the peer counted what it sealed */
            if (kind % 6 != 5) me.rd.seq++;
            continue;
        }
        /* what opens: the inner plaintext (body, type, padding) without its trailing zeros */
        size_t last = want_type != 0 ? blen + 1 : blen;
        while (last > 0 && (last > blen ? want_type : body[last - 1]) == 0) last--;
        if (last == 0) {
            CHECK(rc == -FC_TLSR_UNEXPECTED_MESSAGE); /* padding only */
            continue;
        }
        uint8_t exp_type = last > blen ? want_type : body[last - 1];
        CHECK(rc == 0);
        CHECK(type == exp_type && plen == last - 1 && memcmp(rec + FC_TLSR_HEADER, body, plen) == 0);
        if (type != FC_TLSR_HANDSHAKE) {
            if (fc_tlsr_hs_pending(&me)) me.hs_len = 0; /* tls.c ends the connection here */
            continue;
        }
        int answer = 0;
        uint64_t rseq = me.rd.seq;
        rc = fc_tlsr_handshake(&me, rec + FC_TLSR_HEADER, plen, &answer);
        CHECK(me.hs_len <= 4);
        if (rc < 0) {
            me.hs_len = 0;
            in_step = me.rd.seq == rseq; /* a rejected message changed no key... */
            CHECK(in_step);
            continue;
        }
        if (me.rd.seq != rseq) {
            /* my read key moved on: the peer sent a KeyUpdate by hand, its key did not follow */
            CHECK(me.rd.seq == 0);
            in_step = 0;
        }
        if (answer) {
            long kn = fc_tlsr_seal_key_update(&me, rec);
            CHECK(kn > 0);
            uint8_t t2 = 0;
            size_t p2 = 0;
            CHECK(fc_tlsr_open(&peer, rec, (size_t)kn, &t2, &p2) == 0 && t2 == FC_TLSR_HANDSHAKE && p2 == 5);
            int a2 = 1;
            CHECK(fc_tlsr_handshake(&peer, rec + FC_TLSR_HEADER, p2, &a2) == 0 && a2 == 0);
            CHECK(peer.rd.seq == 0 && me.wr.seq == 0);
        }
    }
    fc_tlsr_wipe(&me);
    fc_tlsr_wipe(&peer);
    return 0;
}
