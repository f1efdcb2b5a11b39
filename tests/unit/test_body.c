/* test_body.c: body sources (src/body.c) driven the way src/exchange.c drives them: the received
 * bytes sit in one read buffer, the payload of a chunked body is decoded in place (out = buffer +
 * decoded end, in = buffer + parse position), Content-Length and close-delimited bodies pass
 * through untouched. Every input is fed whole, in 7-byte pieces and byte by byte; the three runs
 * must give the same trace. The pipeline tests at the end put heads (http.c), the head checks
 * (message.c) and bodies together as src/conn.c and src/exchange.c do. */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fulcrum/body.h"
#include "fulcrum/common.h"
#include "fulcrum/http.h"
#include "fulcrum/message.h"
#include "harness.h"

void test_body(void);

#define S(lit) ((fc_slice_t){(lit), sizeof(lit) - 1})
#define CHUNKED FC_FRAME_CHUNKED
#define LENGTH FC_FRAME_LENGTH
#define EOFB FC_FRAME_EOF

static char tr[65536];
static char work[65536];        /* the read buffer: a copy of the input, decoded in place */
static fc_buf_t trailers;       /* the trailer buffer given to fc_body_init */
static const char *last_why;    /* b->error of the last run that failed */
static int invariants_ok;       /* 0 once a run broke an invariant (checked once per run) */

static void add(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void add(const char *fmt, ...)
{
    size_t used = strlen(tr);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tr + used, sizeof(tr) - used, fmt, ap);
    va_end(ap);
}

static const char *evname(int ev)
{
    return ev == FC_BODY_DONE ? "done" : ev == FC_BODY_MORE ? "more" : ev == FC_BODY_ERROR ? "error" : "?";
}

/* One read as pump_request/pump_response make it: in = work + *pos, out = work + *dec for a
 * chunked body (else in). Checks what the contract promises and moves *pos and *dec on. */
static int read_once(fc_body_t *b, const char *src, size_t avail_end, size_t *pos, size_t *dec)
{
    int chunked = b->framing == FC_FRAME_CHUNKED;
    size_t used = (size_t)-1, made = (size_t)-1, avail = avail_end - *pos;
    char *in = work + *pos;
    int ev = fc_body_read(b, in, avail, chunked ? work + *dec : in, &used, &made);
    if (used > avail || made > used || (!chunked && made != used)) invariants_ok = 0;
    if (ev == FC_BODY_MORE && used != avail) invariants_ok = 0; /* MORE means every byte was used */
    if (ev != FC_BODY_MORE && ev != FC_BODY_DONE && ev != FC_BODY_ERROR) invariants_ok = 0;
    if (ev == FC_BODY_ERROR && (b->error == NULL || b->error[0] == '\0')) invariants_ok = 0;
    if (used > avail) used = avail;
    *pos += used;
    *dec = chunked ? *dec + made : *pos;
    if (*dec > *pos) invariants_ok = 0;
    /* bytes not consumed yet are never touched by the in-place decoding */
    if (memcmp(work + *pos, src + *pos, avail_end - *pos) != 0) invariants_ok = 0;
    return ev;
}

/* Reads the body <src>/<len> of <framing> (<length> for LENGTH) from offset 0 of the read buffer,
 * the bytes arriving <step> at a time; <keep_trailers> 0 gives fc_body_init a NULL trailers
 * buffer; <eof> 1: the sender closes after the last byte (fc_body_eof). The trace is
 * "<last event> <bytes consumed> [<payload>] {<kept trailers>}" then " eof=<event>" with <eof>. */
static const char *body_trace_n(int framing, uint64_t length, const char *src, size_t len, size_t step,
                                int keep_trailers, int eof)
{
    fc_body_t b;
    size_t pos = 0, dec = 0, end = 0;
    memcpy(work, src, len);
    fc_body_init(&b, framing, length, keep_trailers ? &trailers : NULL);
    /* pump_response reads once with no bytes right after the head (a bodiless message ends there) */
    int ev = read_once(&b, src, 0, &pos, &dec);
    while (ev == FC_BODY_MORE && end < len) {
        end = len - end < step ? len : end + step;
        ev = read_once(&b, src, end, &pos, &dec);
    }
    if (b.total != (framing == FC_FRAME_CHUNKED ? dec : pos)) invariants_ok = 0;
    if (ev != FC_BODY_MORE) {
        /* nothing more is read after the end or an error */
        size_t p2 = pos, d2 = dec;
        if (read_once(&b, src, len, &p2, &d2) != ev || p2 != pos) invariants_ok = 0;
    }
    last_why = ev == FC_BODY_ERROR ? b.error : NULL;
    tr[0] = '\0';
    add("%s %zu [%.*s] {%.*s}", evname(ev), pos, (int)dec, work, keep_trailers ? (int)trailers.len : 0,
        keep_trailers && trailers.base ? trailers.base : "");
    if (eof) add(" eof=%s", evname(fc_body_eof(&b)));
    return tr;
}

static const char *body_trace(int framing, uint64_t length, const char *src, size_t step, int keep, int eof)
{
    return body_trace_n(framing, length, src, strlen(src), step, keep, eof);
}

/* The same trace whole, in 7-byte pieces and byte by byte, with trailers kept. */
#define BODY_IS_X(framing, length, str, keep, eof, want)                                           \
    do {                                                                                           \
        invariants_ok = 1;                                                                         \
        is_str(body_trace((framing), (length), (str), SIZE_MAX, (keep), (eof)), (want));          \
        is_str(body_trace((framing), (length), (str), 7, (keep), (eof)), (want));                 \
        is_str(body_trace((framing), (length), (str), 1, (keep), (eof)), (want));                 \
        ok(invariants_ok);                                                                         \
    } while (0)
#define BODY_IS(framing, length, str, want) BODY_IS_X(framing, length, str, 1, 0, want)
#define CHUNKED_IS(str, want) BODY_IS(CHUNKED, 0, str, want)
/* A chunked body that fails: the trace and the reason. */
#define CHUNKED_FAILS(str, at, why)                                                                \
    do {                                                                                           \
        char want_[64];                                                                            \
        snprintf(want_, sizeof(want_), "error %d", (int)(at));                                     \
        invariants_ok = 1;                                                                         \
        static const size_t steps_[] = {SIZE_MAX, 7, 1};                                           \
        for (size_t s_ = 0; s_ < 3; s_++) {                                                        \
            const char *t_ = body_trace(CHUNKED, 0, (str), steps_[s_], 1, 0);                      \
            ok(strncmp(t_, want_, strlen(want_)) == 0 && t_[strlen(want_)] == ' ');                \
            if (strncmp(t_, want_, strlen(want_)) != 0 && strlen(t_) < 200)                        \
                fprintf(stderr, "  input \"%s\": got \"%s\", want \"%s ...\"\n", (str), t_, want_);   \
            ok(last_why != NULL && strstr(last_why, (why)) != NULL);                               \
            if (last_why != NULL && strstr(last_why, (why)) == NULL)                               \
                fprintf(stderr, "  reason \"%s\", want \"%s\"\n", last_why, (why));                \
        }                                                                                          \
        ok(invariants_ok);                                                                         \
    } while (0)

static void test_length_and_eof(void)
{
    subtest("Content-Length: exactly <length> bytes, the rest is not consumed");
    BODY_IS(LENGTH, 5, "hello", "done 5 [hello] {}");
    BODY_IS(LENGTH, 5, "helloGET / HTTP/1.1\r\n\r\n", "done 5 [hello] {}");
    BODY_IS(LENGTH, 1, "xy", "done 1 [x] {}");
    BODY_IS(LENGTH, 10, "abc", "more 3 [abc] {}");
    subtest("Content-Length: 0 is done before any byte");
    BODY_IS(LENGTH, 0, "", "done 0 [] {}");
    BODY_IS(LENGTH, 0, "NEXT", "done 0 [] {}");
    subtest("no framing (FC_FRAME_NONE) is done before any byte");
    BODY_IS(FC_FRAME_NONE, 0, "NEXT", "done 0 [] {}");
    BODY_IS(FC_FRAME_NONE, 123, "NEXT", "done 0 [] {}");

    subtest("close-delimited: every byte is payload, only fc_body_eof ends it");
    BODY_IS(EOFB, 0, "some body\r\n0\r\n\r\n", "more 16 [some body\r\n0\r\n\r\n] {}");
    BODY_IS_X(EOFB, 0, "some body", 1, 1, "more 9 [some body] {} eof=done");
    BODY_IS_X(EOFB, 0, "", 1, 1, "more 0 [] {} eof=done");

    subtest("EOF inside a Content-Length or chunked body is an error");
    BODY_IS_X(LENGTH, 10, "abc", 1, 1, "more 3 [abc] {} eof=error");
    BODY_IS_X(LENGTH, 10, "", 1, 1, "more 0 [] {} eof=error");
    BODY_IS_X(CHUNKED, 0, "5\r\nab", 1, 1, "more 5 [ab] {} eof=error");
    BODY_IS_X(CHUNKED, 0, "", 1, 1, "more 0 [] {} eof=error");
    BODY_IS_X(CHUNKED, 0, "5\r\nhello\r\n0\r\n", 1, 1, "more 13 [hello] {} eof=error");
    BODY_IS_X(CHUNKED, 0, "5\r\nhello\r\n0\r\nX-T: 1\r\n", 1, 1, "more 21 [hello] {X-T: 1\r\n} eof=error");

    subtest("fc_body_eof after the end, after an error, for no body");
    BODY_IS_X(LENGTH, 3, "abc", 1, 1, "done 3 [abc] {} eof=done");
    BODY_IS_X(LENGTH, 0, "", 1, 1, "done 0 [] {} eof=done");
    BODY_IS_X(FC_FRAME_NONE, 0, "", 1, 1, "done 0 [] {} eof=done");
    BODY_IS_X(CHUNKED, 0, "0\r\n\r\n", 1, 1, "done 5 [] {} eof=done");
    BODY_IS_X(CHUNKED, 0, "zz", 1, 1, "error 1 [] {} eof=error");
    {
        fc_body_t b;
        fc_body_init(&b, FC_FRAME_LENGTH, 4, NULL);
        is_int(fc_body_eof(&b), FC_BODY_ERROR);
        ok(b.error != NULL && strstr(b.error, "closed") != NULL);
        fc_body_init(&b, FC_FRAME_CHUNKED, 0, NULL);
        is_int(fc_body_eof(&b), FC_BODY_ERROR);
        ok(b.error != NULL && strstr(b.error, "chunked") != NULL);
        /* the reason of the first error stays */
        size_t c, m;
        char in[] = "x";
        fc_body_init(&b, FC_FRAME_CHUNKED, 0, NULL);
        is_int(fc_body_read(&b, in, 1, in, &c, &m), FC_BODY_ERROR);
        const char *why = b.error;
        is_int(fc_body_eof(&b), FC_BODY_ERROR);
        ok(b.error == why);
        fc_body_init(&b, FC_FRAME_EOF, 0, NULL);
        is_int(fc_body_eof(&b), FC_BODY_DONE);
        is_int(b.done, 1);
        is_int(fc_body_read(&b, in, 1, in, &c, &m), FC_BODY_DONE);
        is_int(c, 0);
    }

    subtest("a large Content-Length counts down across reads; total counts the payload");
    {
        fc_body_t b;
        static char big[4096];
        size_t c, m;
        fc_body_init(&b, FC_FRAME_LENGTH, UINT64_MAX, NULL);
        for (int i = 0; i < 3; i++) is_int(fc_body_read(&b, big, sizeof(big), big, &c, &m), FC_BODY_MORE);
        is_int(b.total, 3 * sizeof(big));
        ok(b.left == UINT64_MAX - 3 * sizeof(big));
        fc_body_init(&b, FC_FRAME_LENGTH, 4097, NULL);
        is_int(fc_body_read(&b, big, sizeof(big), big, &c, &m), FC_BODY_MORE);
        is_int(fc_body_read(&b, big, sizeof(big), big, &c, &m), FC_BODY_DONE);
        is_int(c, 1);
        is_int(m, 1);
        is_int(b.total, 4097);
    }
}

static void test_chunked_basic(void)
{
    subtest("chunked: decoded in place, the bytes after the end are not consumed");
    CHUNKED_IS("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", "done 26 [hello world] {}");
    CHUNKED_IS("5\r\nhello\r\n6;x=y\r\n world\r\n1\r\n!\r\n0\r\nX-T: z\r\n\r\nNEXT",
               "done 44 [hello world!] {X-T: z\r\n}");
    CHUNKED_IS("0\r\n\r\n", "done 5 [] {}");
    CHUNKED_IS("0\r\n\r\nGET / HTTP/1.1\r\n\r\n", "done 5 [] {}");
    CHUNKED_IS("1\r\na\r\n1\r\nb\r\n1\r\nc\r\n0\r\n\r\n\r\n", "done 23 [abc] {}");
    subtest("chunked: a body that has not all arrived yet");
    CHUNKED_IS("5\r\nhel", "more 6 [hel] {}");
    CHUNKED_IS("5\r\nhello\r", "more 9 [hello] {}");
    CHUNKED_IS("5\r\nhello\r\n0\r\nX-T: 1\r\n\r", "more 22 [hello] {X-T: 1\r\n}");
    subtest("chunked: payload bytes that look like framing are payload");
    CHUNKED_IS("a\r\n0\r\n\r\n0\r\n\r\n\r\n0\r\n\r\n", "done 20 [0\r\n\r\n0\r\n\r\n] {}");

    subtest("chunk sizes: hex, upper and lower case, leading zeros");
    CHUNKED_IS("A\r\n0123456789\r\n0\r\n\r\n", "done 20 [0123456789] {}");
    CHUNKED_IS("a\r\n0123456789\r\n0\r\n\r\n", "done 20 [0123456789] {}");
    CHUNKED_IS("000005\r\nhello\r\n000\r\n\r\n", "done 22 [hello] {}");
    CHUNKED_IS("0010\r\n0123456789abcdef\r\n0\r\n\r\n", "done 29 [0123456789abcdef] {}");
    {
        /* 0x1F = 31 and 0xfF = 255 */
        char in[400], want[400];
        memset(want, 0, sizeof(want));
        snprintf(in, sizeof(in), "1F\r\n%031d\r\nfF\r\n%0255d\r\n0\r\n\r\n", 0, 0);
        snprintf(want, sizeof(want), "done %zu [%031d%0255d] {}", strlen(in), 0, 0);
        invariants_ok = 1;
        is_str(body_trace(CHUNKED, 0, in, SIZE_MAX, 1, 0), want);
        is_str(body_trace(CHUNKED, 0, in, 7, 1, 0), want);
        is_str(body_trace(CHUNKED, 0, in, 1, 1, 0), want);
        ok(invariants_ok);
    }
    subtest("chunk sizes: 16 hex digits are accepted (a size that never arrives), 17 are not");
    CHUNKED_IS("ffffffffffffffff\r\nabc", "more 21 [abc] {}");
    CHUNKED_IS("FFFFFFFFFFFFFFFF\r\n", "more 18 [] {}");
    CHUNKED_IS("1000000000000000\r\nab", "more 20 [ab] {}");
    CHUNKED_FAILS("10000000000000000\r\n", 17, "too large");
    CHUNKED_FAILS("fffffffffffffffff\r\n", 17, "too large");
    CHUNKED_FAILS("ffffffffffffffffff", 17, "too large");
    /* leading zeros do not count: the value has at most 16 significant digits */
    CHUNKED_IS("00000000000000000005\r\nhello\r\n0\r\n\r\n", "done 34 [hello] {}");
    {
        /* the 2^64-1 chunk counts down as its data arrives */
        fc_body_t b;
        char in[] = "ffffffffffffffff\r\nabcdef";
        size_t c, m;
        fc_body_init(&b, FC_FRAME_CHUNKED, 0, NULL);
        is_int(fc_body_read(&b, in, strlen(in), in, &c, &m), FC_BODY_MORE);
        is_int(c, strlen(in));
        is_int(m, 6);
        ok(memcmp(in, "abcdef", 6) == 0);
        ok(b.left == UINT64_MAX - 6);
        is_int(b.total, 6);
    }
    subtest("chunk sizes: invalid ones");
    CHUNKED_FAILS("0x5\r\nhello\r\n0\r\n\r\n", 2, "invalid chunk size");
    CHUNKED_FAILS("-5\r\nhello\r\n0\r\n\r\n", 1, "invalid chunk size");
    CHUNKED_FAILS("+5\r\nhello\r\n0\r\n\r\n", 1, "invalid chunk size");
    CHUNKED_FAILS("\r\nhello\r\n0\r\n\r\n", 1, "invalid chunk size");
    CHUNKED_FAILS(";a=b\r\nhello\r\n0\r\n\r\n", 1, "invalid chunk size");
    CHUNKED_FAILS(" 5\r\nhello\r\n0\r\n\r\n", 1, "invalid chunk size");
    CHUNKED_FAILS("zz\r\nhello\r\n0\r\n\r\n", 1, "invalid chunk size");
    CHUNKED_FAILS("5g\r\nhello\r\n0\r\n\r\n", 2, "invalid chunk size");
    CHUNKED_FAILS("5\r\nhello\r\nx\r\n\r\n", 11, "invalid chunk size");

    subtest("CRLF: a bare LF after the size, a CR without LF, missing CRLF after data");
    CHUNKED_FAILS("5\nhello\r\n0\r\n\r\n", 2, "invalid chunk size");
    CHUNKED_FAILS("5\rhello\r\n0\r\n\r\n", 3, "LF after chunk size");
    CHUNKED_FAILS("5\r\nhelloXX0\r\n\r\n", 9, "CRLF after chunk data");
    CHUNKED_FAILS("5\r\nhello0\r\n\r\n", 9, "CRLF after chunk data");
    CHUNKED_FAILS("5\r\nhello\n0\r\n\r\n", 9, "CRLF after chunk data");
    CHUNKED_FAILS("5\r\nhello\rX0\r\n\r\n", 10, "CRLF after chunk data");
    CHUNKED_FAILS("5\r\nhello\r\r\n0\r\n\r\n", 10, "CRLF after chunk data");
    CHUNKED_FAILS("0\r\n\n", 4, "invalid trailer field name");
    CHUNKED_FAILS("0\r\n\rX", 5, "LF after trailer section");
    CHUNKED_FAILS("0\n\r\n", 2, "invalid chunk size");
    {
        /* the payload produced before an error is reported with it */
        invariants_ok = 1;
        is_str(body_trace(CHUNKED, 0, "3\r\nabc\r\n2\r\nde!!", SIZE_MAX, 1, 0), "error 14 [abcde] {}");
        is_str(body_trace(CHUNKED, 0, "3\r\nabc\r\n2\r\nde!!", 1, 1, 0), "error 14 [abcde] {}");
        ok(invariants_ok);
    }
}

static void test_extensions(void)
{
    subtest("chunk extensions: valid forms are accepted and stripped");
    static const char *good[] = {
        "5;a\r\nhello\r\n0\r\n\r\n",
        "5;a=b\r\nhello\r\n0\r\n\r\n",
        "5;a=b;c=d\r\nhello\r\n0\r\n\r\n",
        "5;a=\"b c\"\r\nhello\r\n0\r\n\r\n",
        "5;a=\"b\\\"c\"\r\nhello\r\n0\r\n\r\n",
        "5 ; a = b\r\nhello\r\n0\r\n\r\n",
        "5\t;\ta\t=\tb\r\nhello\r\n0\r\n\r\n",
        "5;a;b;c\r\nhello\r\n0\r\n\r\n",
        "5;a=\"\"\r\nhello\r\n0\r\n\r\n",
        "5;a=\"x\";b=y\r\nhello\r\n0\r\n\r\n",
        "5;a=\"x\" ; b\r\nhello\r\n0\r\n\r\n",
        "5;a=\"\\\\\"\r\nhello\r\n0\r\n\r\n",
        "5;a=\"\t!#[]~\x80\xff\"\r\nhello\r\n0\r\n\r\n",
        "5;a=\"\\\x80\\ \"\r\nhello\r\n0\r\n\r\n",
        "5;!#$%&'*+-.^_`|~=!#$%&'*+-.^_`|~\r\nhello\r\n0\r\n\r\n",
        "5;a=b\r\nhello\r\n0;last=1;q=\"z\"\r\n\r\n",
        "5;a = \"b\"\r\nhello\r\n0\r\n\r\n",
    };
    for (size_t i = 0; i < FC_ARRAY_LEN(good); i++) {
        char want[128];
        snprintf(want, sizeof(want), "done %zu [hello] {}", strlen(good[i]));
        invariants_ok = 1;
        const char *t = body_trace(CHUNKED, 0, good[i], SIZE_MAX, 1, 0);
        is_str(t, want);
        if (strcmp(t, want) != 0) fprintf(stderr, "  input: %s\n", good[i]);
        is_str(body_trace(CHUNKED, 0, good[i], 7, 1, 0), want);
        is_str(body_trace(CHUNKED, 0, good[i], 1, 1, 0), want);
        ok(invariants_ok);
    }

    subtest("chunk extensions: invalid forms");
    CHUNKED_FAILS("5;\r\nhello\r\n0\r\n\r\n", 3, "extension name");
    CHUNKED_FAILS("5;a=\r\nhello\r\n0\r\n\r\n", 5, "extension value");
    CHUNKED_FAILS("5;\"x\"\r\nhello\r\n0\r\n\r\n", 3, "extension name");
    CHUNKED_FAILS("5;=b\r\nhello\r\n0\r\n\r\n", 3, "extension name");
    CHUNKED_FAILS("5;;a\r\nhello\r\n0\r\n\r\n", 3, "extension name");
    CHUNKED_FAILS("5;a=b=c\r\nhello\r\n0\r\n\r\n", 6, "extension value");
    CHUNKED_FAILS("5;a=\"b\r\nhello\r\n0\r\n\r\n", 7, "quoted");
    CHUNKED_FAILS("5;a=\"b\001\"\r\nhello\r\n0\r\n\r\n", 7, "quoted");
    CHUNKED_FAILS("5;a=\"b\x7f\"\r\nhello\r\n0\r\n\r\n", 7, "quoted");
    CHUNKED_FAILS("5;a=\"b\n\"\r\nhello\r\n0\r\n\r\n", 7, "quoted");
    CHUNKED_FAILS("5;a=\"\\\001\"\r\nhello\r\n0\r\n\r\n", 7, "quoted-pair");
    CHUNKED_FAILS("5;a=\"\\\r\nhello\r\n0\r\n\r\n", 7, "quoted-pair");
    CHUNKED_FAILS("5;a=\"b\"c\r\nhello\r\n0\r\n\r\n", 8, "extension");
    CHUNKED_FAILS("5;a=b c\r\nhello\r\n0\r\n\r\n", 7, "extension");
    CHUNKED_FAILS("5;a b\r\nhello\r\n0\r\n\r\n", 5, "extension");
    CHUNKED_FAILS("5;a(b\r\nhello\r\n0\r\n\r\n", 4, "extension name");
    CHUNKED_FAILS("5;a=b(\r\nhello\r\n0\r\n\r\n", 6, "extension value");
    CHUNKED_FAILS("5;a=(\r\nhello\r\n0\r\n\r\n", 5, "extension value");
    /* BWS is only allowed around ';' and '=': not at the end of the line (RFC 9112 7.1.1) */
    CHUNKED_FAILS("5 \r\nhello\r\n0\r\n\r\n", 3, "extension");
    CHUNKED_FAILS("5;a \r\nhello\r\n0\r\n\r\n", 5, "extension");
    CHUNKED_FAILS("5;a=b \r\nhello\r\n0\r\n\r\n", 7, "extension");
    CHUNKED_FAILS("5 x\r\nhello\r\n0\r\n\r\n", 3, "extension");
    CHUNKED_FAILS("5;a\nhello\r\n0\r\n\r\n", 4, "extension name");
    CHUNKED_FAILS("5;a=b\nhello\r\n0\r\n\r\n", 6, "extension value");
    CHUNKED_FAILS("5;a=\"b\"\nhello\r\n0\r\n\r\n", 8, "extension");
    CHUNKED_FAILS("5;a\rhello\r\n0\r\n\r\n", 5, "LF after chunk size");
}

/* A chunked body of one chunk "hi" with the trailer section <tsec> (ending in the final CRLF). */
static const char *with_trailers(const char *tsec, int keep)
{
    static char in[32768];
    snprintf(in, sizeof(in), "2\r\nhi\r\n0\r\n%s", tsec);
    invariants_ok = 1;
    static char first[32768];
    snprintf(first, sizeof(first), "%s", body_trace(CHUNKED, 0, in, SIZE_MAX, keep, 0));
    if (strcmp(first, body_trace(CHUNKED, 0, in, 7, keep, 0)) != 0 ||
        strcmp(first, body_trace(CHUNKED, 0, in, 1, keep, 0)) != 0)
        invariants_ok = 0;
    return first;
}

static void test_trailers(void)
{
    subtest("trailers: kept lines are appended as received");
    is_str(with_trailers("X-A: 1\r\nX-B:  two words \r\nx-c:\r\nX-D:3\r\n\r\n", 1),
           "done 51 [hi] {X-A: 1\r\nX-B:  two words \r\nx-c:\r\nX-D:3\r\n}");
    ok(invariants_ok);
    is_str(with_trailers("Checksum: abc\x80\xff\t~\r\n\r\n", 1), "done 31 [hi] {Checksum: abc\x80\xff\t~\r\n}");
    ok(invariants_ok);
    is_str(with_trailers("!#$%&'*+-.^_`|~: v\r\n\r\n", 1), "done 32 [hi] {!#$%&'*+-.^_`|~: v\r\n}");
    ok(invariants_ok);

    subtest("trailers: framing, routing and hop-by-hop fields are dropped, any case");
    static const char *dropped[] = {"Content-Length", "Transfer-Encoding", "Host", "Connection",
                                    "TE", "Trailer", "Upgrade", "Keep-Alive", "Proxy-Connection",
                                    "content-length", "TRANSFER-ENCODING", "hOsT", "te"};
    for (size_t i = 0; i < FC_ARRAY_LEN(dropped); i++) {
        char tsec[256], want[256];
        snprintf(tsec, sizeof(tsec), "X-A: 1\r\n%s: 5\r\nX-B: 2\r\n\r\n", dropped[i]);
        snprintf(want, sizeof(want), "done %zu [hi] {X-A: 1\r\nX-B: 2\r\n}", 10 + strlen(tsec));
        is_str(with_trailers(tsec, 1), want);
        ok(invariants_ok);
        /* the first and the last line, too */
        snprintf(tsec, sizeof(tsec), "%s: 5\r\nX-B: 2\r\n%s: x y\r\n\r\n", dropped[i], dropped[i]);
        snprintf(want, sizeof(want), "done %zu [hi] {X-B: 2\r\n}", 10 + strlen(tsec));
        is_str(with_trailers(tsec, 1), want);
    }
    subtest("trailers: names that only start like a dropped one are kept");
    is_str(with_trailers("Hosts: a\r\nTEx: b\r\nContent-Length2: c\r\nX-Host: d\r\nT: e\r\n\r\n", 1),
           "done 67 [hi] {Hosts: a\r\nTEx: b\r\nContent-Length2: c\r\nX-Host: d\r\nT: e\r\n}");
    ok(invariants_ok);

    subtest("trailers: a NULL trailers buffer drops them all (the section is still checked)");
    is_str(with_trailers("X-A: 1\r\nX-B: 2\r\n\r\n", 0), "done 28 [hi] {}");
    ok(invariants_ok);
    is_str(with_trailers("X-A: 1\r\n b\r\n\r\n", 0), "error 19 [hi] {}");
    {
        fc_body_t b;
        char in[] = "0\r\nX-A: 1\r\n\r\n";
        size_t c, m;
        fc_body_init(&b, FC_FRAME_CHUNKED, 0, NULL);
        is_int(fc_body_read(&b, in, strlen(in), in, &c, &m), FC_BODY_DONE);
        ok(b.trailers == NULL);
        fc_buf_t out = {0};
        is_int(fc_chunk_suffix(&out, &b, 0, 1), 0);
        ok(out.len == 5 && memcmp(out.base, "0\r\n\r\n", 5) == 0);
        fc_buf_free(&out);
    }

    subtest("trailers: malformed lines are errors");
    is_str(with_trailers("X-A: 1\r\n folded\r\n\r\n", 1), "error 19 [hi] {X-A: 1\r\n}");
    ok(last_why != NULL && strstr(last_why, "obs-fold") != NULL);
    is_str(with_trailers("X-A: 1\r\n\tfolded\r\n\r\n", 1), "error 19 [hi] {X-A: 1\r\n}");
    ok(last_why != NULL && strstr(last_why, "obs-fold") != NULL);
    is_str(with_trailers(" X-A: 1\r\n\r\n", 1), "error 11 [hi] {}");
    ok(last_why != NULL && strstr(last_why, "obs-fold") != NULL);
    ok(strncmp(with_trailers("X-A\r\n\r\n", 1), "error 14 ", 9) == 0);
    ok(strncmp(with_trailers("X-A 1\r\n\r\n", 1), "error 14 ", 9) == 0);
    ok(strncmp(with_trailers("X-A : 1\r\n\r\n", 1), "error 14 ", 9) == 0);
    ok(strncmp(with_trailers("X A: 1\r\n\r\n", 1), "error 12 ", 9) == 0);
    ok(strncmp(with_trailers(": 1\r\n\r\n", 1), "error 11 ", 9) == 0);
    ok(strncmp(with_trailers("X-A: 1\001\r\n\r\n", 1), "error 17 ", 9) == 0);
    ok(last_why != NULL && strstr(last_why, "invalid character") != NULL);
    ok(strncmp(with_trailers("X-A: \x7f\r\n\r\n", 1), "error 16 ", 9) == 0);
    ok(strncmp(with_trailers("X-A: a\0b\r\n\r\n", 1), "more 16 ", 8) == 0); /* strlen stops at the NUL */
    {
        static const char in[] = "2\r\nhi\r\n0\r\nX-A: a\0b\r\n\r\n";
        invariants_ok = 1;
        ok(strncmp(body_trace_n(CHUNKED, 0, in, sizeof(in) - 1, SIZE_MAX, 1, 0), "error 17 ", 9) == 0);
        ok(strncmp(body_trace_n(CHUNKED, 0, in, sizeof(in) - 1, 1, 1, 0), "error 17 ", 9) == 0);
        ok(invariants_ok);
    }
    ok(strncmp(with_trailers("X-A: a\nb\r\n\r\n", 1), "error 17 ", 9) == 0);
    ok(strncmp(with_trailers("X-A: a\rb\r\n\r\n", 1), "error 18 ", 9) == 0);
    ok(strncmp(with_trailers("X-A: a\n\r\n", 1), "error 17 ", 9) == 0);
    /* a dropped field is checked like a kept one */
    ok(strncmp(with_trailers("Host: a\001\r\n\r\n", 1), "error 18 ", 9) == 0);
    ok(strncmp(with_trailers("Host: a\r\n b\r\n\r\n", 1), "error 20 ", 9) == 0);
    ok(invariants_ok);

    subtest("trailers: those the message's Connection options name are dropped (b->connection)");
    {
        static const size_t steps[] = {SIZE_MAX, 7, 1};
        for (size_t s = 0; s < FC_ARRAY_LEN(steps); s++) {
            static const char src[] = "2\r\nhi\r\n0\r\nX-Secret: 1\r\nX-Keep: 2\r\nx-other: 3\r\nX-Secrets: 4\r\n\r\n";
            fc_body_t b;
            size_t len = sizeof(src) - 1, pos = 0, dec = 0, end = 0;
            int ev = FC_BODY_MORE;
            memcpy(work, src, len);
            fc_body_init(&b, FC_FRAME_CHUNKED, 0, &trailers);
            b.connection = S("keep-alive, X-SECRET,X-Other,"); /* as keep_connection in exchange.c joins them */
            invariants_ok = 1;
            while (ev == FC_BODY_MORE && end < len) {
                end = len - end < steps[s] ? len : end + steps[s];
                ev = read_once(&b, src, end, &pos, &dec);
            }
            is_int(ev, FC_BODY_DONE);
            is_int(pos, len);
            fc_buf_append(&trailers, "", 1);
            is_str(trailers.base, "X-Keep: 2\r\nX-Secrets: 4\r\n");
            ok(invariants_ok);
        }
    }

    subtest("fc_body_init empties the trailers buffer it is given");
    {
        fc_body_t b;
        FC_BUF_APPEND_LIT(&trailers, "stale");
        fc_body_init(&b, FC_FRAME_CHUNKED, 0, &trailers);
        is_int(trailers.len, 0);
    }
}

/* Appends <n> bytes of "X-L<k>: vvvv...\r\n" (n >= 8) to <s>. */
static void trailer_line(char *s, int k, size_t n)
{
    size_t at = strlen(s);
    int h = sprintf(s + at, "X-L%d: ", k);
    memset(s + at + h, 'v', n - (size_t)h - 2);
    memcpy(s + at + n - 2, "\r\n", 3);
}

static void test_limits(void)
{
    static char in[40000], want[40000];

    subtest("limits: a chunk-size line of FC_CHUNKED_MAX_LINE bytes (CRLF included) is accepted");
    {
        /* "5;e=vvv...\r\n" */
        size_t n = FC_CHUNKED_MAX_LINE;
        strcpy(in, "5;e=");
        memset(in + 4, 'v', n - 6);
        strcpy(in + n - 2, "\r\nhello\r\n0\r\n\r\n");
        snprintf(want, sizeof(want), "done %zu [hello] {}", strlen(in));
        invariants_ok = 1;
        is_str(body_trace(CHUNKED, 0, in, SIZE_MAX, 1, 0), want);
        is_str(body_trace(CHUNKED, 0, in, 7, 1, 0), want);
        is_str(body_trace(CHUNKED, 0, in, 1, 1, 0), want);
        ok(invariants_ok);
        /* one byte more is an error at that byte */
        strcpy(in, "5;e=");
        memset(in + 4, 'v', n - 5);
        strcpy(in + n - 1, "\r\nhello\r\n0\r\n\r\n");
        CHUNKED_FAILS(in, n + 1, "line too long");
        /* leading zeros count towards the line */
        memset(in, '0', n + 10);
        strcpy(in + n + 10, "5\r\nhello\r\n0\r\n\r\n");
        CHUNKED_FAILS(in, n + 1, "line too long");
        /* the limit is per line: two long lines are fine */
        strcpy(in, "5;e=");
        memset(in + 4, 'v', n - 6);
        strcpy(in + n - 2, "\r\nhello\r\n0;e=");
        size_t at = strlen(in);
        memset(in + at, 'w', n - 6);
        strcpy(in + at + n - 6, "\r\n\r\n");
        snprintf(want, sizeof(want), "done %zu [hello] {}", strlen(in));
        invariants_ok = 1;
        is_str(body_trace(CHUNKED, 0, in, SIZE_MAX, 1, 0), want);
        is_str(body_trace(CHUNKED, 0, in, 1, 1, 0), want);
        ok(invariants_ok);
    }

    subtest("limits: a trailer section of FC_CHUNKED_MAX_TRAILERS bytes (final CRLF included) is accepted");
    {
        /* four lines of 4000 bytes, one of 382, the final CRLF: 16384 */
        char *t = want; /* the trailer section, built in want, then the input in in */
        t[0] = '\0';
        for (int k = 0; k < 4; k++) trailer_line(t, k, 4000);
        trailer_line(t, 4, FC_CHUNKED_MAX_TRAILERS - 16000 - 2);
        strcat(t, "\r\n");
        is_int(strlen(t), FC_CHUNKED_MAX_TRAILERS);
        strcpy(in, "2\r\nhi\r\n0\r\n");
        strcat(in, t);
        invariants_ok = 1;
        const char *got = body_trace(CHUNKED, 0, in, SIZE_MAX, 1, 0);
        ok(strncmp(got, "done ", 5) == 0);
        is_int(trailers.len, FC_CHUNKED_MAX_TRAILERS - 2);
        got = body_trace(CHUNKED, 0, in, 1, 1, 0);
        ok(strncmp(got, "done ", 5) == 0);
        ok(invariants_ok);
        /* one byte more in the last line: an error */
        t[0] = '\0';
        for (int k = 0; k < 4; k++) trailer_line(t, k, 4000);
        trailer_line(t, 4, FC_CHUNKED_MAX_TRAILERS - 16000 - 1);
        strcat(t, "\r\n");
        strcpy(in, "2\r\nhi\r\n0\r\n");
        strcat(in, t);
        CHUNKED_FAILS(in, 10 + FC_CHUNKED_MAX_TRAILERS + 1, "trailer section too large");
        /* dropped trailers count as well (what was received, not what is kept) */
        t[0] = '\0';
        for (int k = 0; k < 5; k++) {
            size_t at = strlen(t);
            sprintf(t + at, "Host: ");
            memset(t + at + 6, 'h', 3500);
            strcpy(t + at + 3506, "\r\n");
        }
        strcat(t, "\r\n");
        strcpy(in, "2\r\nhi\r\n0\r\n");
        strcat(in, t);
        CHUNKED_FAILS(in, 10 + FC_CHUNKED_MAX_TRAILERS + 1, "trailer section too large");
    }

    subtest("limits: FC_CHUNKED_MAX_TRAILER_FIELDS trailer fields are accepted, one more is an error");
    {
        /* found by fuzz_forward: thousands of short trailer fields within the byte limit */
        strcpy(in, "2\r\nhi\r\n0\r\n");
        for (int k = 0; k < FC_CHUNKED_MAX_TRAILER_FIELDS; k++) strcat(in, "X: y\r\n");
        strcat(in, "\r\n");
        invariants_ok = 1;
        ok(strncmp(body_trace(CHUNKED, 0, in, SIZE_MAX, 1, 0), "done ", 5) == 0);
        ok(invariants_ok);
        strcpy(in, "2\r\nhi\r\n0\r\n");
        for (int k = 0; k <= FC_CHUNKED_MAX_TRAILER_FIELDS; k++) strcat(in, "X: y\r\n");
        strcat(in, "\r\n");
        CHUNKED_FAILS(in, 10 + 6 * FC_CHUNKED_MAX_TRAILER_FIELDS + 1, "too many trailer fields");
    }

    subtest("limits: a trailer line is limited to FC_CHUNKED_MAX_LINE (body.h: \"a chunk-size line or trailer line\")");
    {
        /* one trailer line of FC_CHUNKED_MAX_LINE + 1 bytes, far below FC_CHUNKED_MAX_TRAILERS */
        in[0] = '\0';
        strcpy(in, "2\r\nhi\r\n0\r\n");
        trailer_line(in, 0, FC_CHUNKED_MAX_LINE);
        strcat(in, "\r\n");
        snprintf(want, sizeof(want), "done %zu [hi] {", strlen(in));
        invariants_ok = 1;
        ok(strncmp(body_trace(CHUNKED, 0, in, SIZE_MAX, 1, 0), want, strlen(want)) == 0);
        in[0] = '\0';
        strcpy(in, "2\r\nhi\r\n0\r\n");
        trailer_line(in, 0, FC_CHUNKED_MAX_LINE + 1);
        strcat(in, "\r\n");
        static const size_t steps[] = {SIZE_MAX, 7, 1};
        for (size_t s = 0; s < FC_ARRAY_LEN(steps); s++) {
            const char *t = body_trace(CHUNKED, 0, in, steps[s], 1, 0);
            const char *sp = strchr(t, ' ');
            sp = sp ? strchr(sp + 1, ' ') : NULL;
            snprintf(want, sizeof(want), "%.*s", sp ? (int)(sp - t) : 0, t);
            /* the error comes at the latest at the byte past the limit, the line's LF */
            ok(strncmp(want, "error ", 6) == 0 && atoi(want + 6) > 10 && atoi(want + 6) <= 10 + FC_CHUNKED_MAX_LINE + 1);
            if (strncmp(want, "error ", 6) != 0) fprintf(stderr, "  a trailer line of %d bytes: got \"%s\", want an error\n", FC_CHUNKED_MAX_LINE + 1, want);
        }
        ok(last_why != NULL && strstr(last_why, "too long") != NULL);
    }
}

static void test_reencode(void)
{
    char p[FC_CHUNK_PREFIX_MAX + 1];
    subtest("fc_chunk_prefix: lower-case hex without leading zeros, then CRLF");
    static const struct {
        uint64_t n;
        const char *want;
    } pre[] = {
        {1, "1\r\n"},       {9, "9\r\n"},         {10, "a\r\n"},         {15, "f\r\n"},
        {16, "10\r\n"},     {255, "ff\r\n"},      {256, "100\r\n"},      {4096, "1000\r\n"},
        {65535, "ffff\r\n"}, {0xdeadbeef, "deadbeef\r\n"},
        {UINT64_MAX, "ffffffffffffffff\r\n"}, {(uint64_t)1 << 63, "8000000000000000\r\n"},
    };
    for (size_t i = 0; i < FC_ARRAY_LEN(pre); i++) {
        memset(p, '#', sizeof(p));
        size_t n = fc_chunk_prefix(p, pre[i].n);
        is_int(n, strlen(pre[i].want));
        p[n < sizeof(p) ? n : sizeof(p) - 1] = '\0';
        is_str(p, pre[i].want);
    }
    memset(p, '#', sizeof(p));
    is_int(fc_chunk_prefix(p, UINT64_MAX), FC_CHUNK_PREFIX_MAX);
    is_int(p[FC_CHUNK_PREFIX_MAX], '#'); /* nothing past FC_CHUNK_PREFIX_MAX is written */

    subtest("fc_chunk_suffix: CRLF after data, the last chunk with the kept trailers");
    {
        fc_body_t b;
        fc_buf_t out = {0};
        char in[] = "3\r\nabc\r\n0\r\nX-A: 1\r\nHost: h\r\nX-B: 2\r\n\r\n";
        size_t c, m;
        fc_body_init(&b, FC_FRAME_CHUNKED, 0, &trailers);
        is_int(fc_body_read(&b, in, strlen(in), in, &c, &m), FC_BODY_DONE);

        FC_BUF_APPEND_LIT(&out, "<");
        is_int(fc_chunk_suffix(&out, &b, 3, 0), 0);
        fc_buf_append(&out, "", 1);
        is_str(out.base, "<\r\n");
        out.len = 0;
        is_int(fc_chunk_suffix(&out, &b, 0, 0), 0);
        is_int(out.len, 0);
        is_int(fc_chunk_suffix(&out, &b, 3, 1), 0);
        fc_buf_append(&out, "", 1);
        is_str(out.base, "\r\n0\r\nX-A: 1\r\nX-B: 2\r\n\r\n");
        out.len = 0;
        is_int(fc_chunk_suffix(&out, &b, 0, 1), 0);
        fc_buf_append(&out, "", 1);
        is_str(out.base, "0\r\nX-A: 1\r\nX-B: 2\r\n\r\n");

        /* no trailers kept: the last chunk and the final CRLF */
        fc_body_init(&b, FC_FRAME_CHUNKED, 0, &trailers);
        char in2[] = "0\r\n\r\n";
        is_int(fc_body_read(&b, in2, 5, in2, &c, &m), FC_BODY_DONE);
        out.len = 0;
        is_int(fc_chunk_suffix(&out, &b, 0, 1), 0);
        fc_buf_append(&out, "", 1);
        is_str(out.base, "0\r\n\r\n");
        out.len = 0;
        is_int(fc_chunk_suffix(&out, &b, 7, 1), 0);
        fc_buf_append(&out, "", 1);
        is_str(out.base, "\r\n0\r\n\r\n");
        fc_buf_free(&out);
    }

    subtest("re-encoding a decoded body: fulcrum's own chunk lines, no extensions, same payload");
    {
        static const char src[] = "005;a=\"b c\"\r\nhello\r\n6 ; x = y\r\n world\r\n0;end\r\nX-T: z\r\nTE: x\r\n\r\n";
        static const size_t steps[] = {SIZE_MAX, 7, 1};
        for (size_t s = 0; s < FC_ARRAY_LEN(steps); s++) {
            /* what pump_request writes: per read, prefix + the data decoded by it + suffix */
            fc_body_t b;
            fc_buf_t wire = {0}, tail = {0};
            char pfx[FC_CHUNK_PREFIX_MAX];
            size_t len = sizeof(src) - 1, pos = 0, dec = 0, fwd = 0, end = 0;
            memcpy(work, src, len);
            fc_body_init(&b, FC_FRAME_CHUNKED, 0, &trailers);
            int ev = FC_BODY_MORE;
            while (ev == FC_BODY_MORE && end < len) {
                end = len - end < steps[s] ? len : end + steps[s];
                ev = read_once(&b, src, end, &pos, &dec);
                size_t data = dec - fwd;
                int last = ev == FC_BODY_DONE;
                if (data > 0) fc_buf_append(&wire, pfx, fc_chunk_prefix(pfx, data));
                fc_buf_append(&wire, work + fwd, data);
                tail.len = 0;
                if (data > 0 || last) is_int(fc_chunk_suffix(&tail, &b, data, last), 0);
                fc_buf_append(&wire, tail.base, tail.len);
                fwd = dec;
            }
            is_int(ev, FC_BODY_DONE);
            /* the re-encoded body decodes to the same payload and kept trailers */
            fc_buf_append(&wire, "", 1);
            if (steps[s] == SIZE_MAX) is_str(wire.base, "b\r\nhello world\r\n0\r\nX-T: z\r\n\r\n");
            if (steps[s] == 7) ok(strstr(wire.base, ";") == NULL);
            char again[256], want[256];
            snprintf(again, sizeof(again), "%s", wire.base);
            snprintf(want, sizeof(want), "done %zu [hello world] {X-T: z\r\n}", strlen(again));
            is_str(body_trace(CHUNKED, 0, again, SIZE_MAX, 1, 0), want);
            fc_buf_free(&wire);
            fc_buf_free(&tail);
        }
    }
}

/* ---- heads and bodies together ------------------------------------------------------------- */

/* Feeds <src> (a connection's bytes) <step> at a time the way a connection does: a head through
 * fc_http_execute (a new request parser per request as src/conn.c makes one; for responses one
 * parser reset after every response as the pool does), the head check, then the body through
 * fc_body_read from the first byte after the head, decoded in place. Trace per message:
 * "H<offset> <first line>;" then "D<offset> [<payload>]{<trailers>};" for its body, "R<status>;"
 * for a refused head, "E<offset>;" for a head error, "B<offset> [<payload so far>]" + "." when the
 * input ends inside a body (and " eof=<event>" with <eof>), "." when it ends between messages. */
static const char *pipeline(llhttp_type_t type, const char *src, size_t step, int eof)
{
    static fc_http_parser_t p;
    static fc_http_head_t h;
    size_t len = strlen(src), pos = 0, end = 0;
    memcpy(work, src, len);
    tr[0] = '\0';
    if (type == HTTP_RESPONSE) fc_http_parser_init(&p, type);
    for (int guard = 0; guard < 10000; guard++) {
        /* the head */
        if (type == HTTP_REQUEST) fc_http_parser_init(&p, type);
        p.head = &h;
        int ev;
        for (;;) {
            size_t used = 0;
            ev = fc_http_execute(&p, work + pos, end - pos, &used);
            pos += used;
            if (ev == FC_HTTP_NEED_MORE && end < len) {
                end = len - end < step ? len : end + step;
                continue;
            }
            if (ev == FC_HTTP_MSG_DONE) continue; /* the end of a 1xx */
            if (ev == FC_HTTP_HEAD_DONE && type == HTTP_RESPONSE && h.status < 200) {
                add("H%zu %d;", pos, h.status);
                continue;
            }
            break;
        }
        if (ev == FC_HTTP_NEED_MORE) {
            add(".");
            return tr;
        }
        if (ev == FC_HTTP_ERROR) {
            add("E%zu;", pos);
            return tr;
        }
        int framing;
        uint64_t length;
        if (type == HTTP_REQUEST) {
            fc_request_view_t v;
            add("H%zu %.*s %.*s;", pos, (int)h.method.n, h.method.p, (int)h.url.n, h.url.p);
            int st = fc_msg_check_request(&h, &p.ll, &v);
            if (st != 0) {
                add("R%d;", st);
                return tr;
            }
            framing = v.framing;
            length = v.length;
        } else {
            fc_response_view_t v;
            add("H%zu %d;", pos, h.status);
            if (fc_msg_check_response(&h, &p.ll, 0, &v) != 0) {
                add("R502;");
                return tr;
            }
            framing = v.framing;
            length = v.length;
        }
        p.head = NULL;
        /* the body, from the first byte after the head */
        fc_body_t b;
        size_t start = pos, dec = pos;
        fc_body_init(&b, framing, length, &trailers);
        ev = read_once(&b, src, end, &pos, &dec);
        while (ev == FC_BODY_MORE && end < len) {
            end = len - end < step ? len : end + step;
            ev = read_once(&b, src, end, &pos, &dec);
        }
        if (ev == FC_BODY_ERROR) {
            add("BE%zu;", pos);
            return tr;
        }
        if (ev == FC_BODY_MORE) {
            add("B%zu [%.*s].", pos, (int)(dec - start), work + start);
            if (eof) add(" eof=%s", evname(fc_body_eof(&b)));
            return tr;
        }
        add("D%zu [%.*s]{%.*s};", pos, (int)(dec - start), work + start, (int)trailers.len,
            trailers.base ? trailers.base : "");
        if (type == HTTP_RESPONSE) llhttp_reset(&p.ll);
    }
    add("(no progress)");
    return tr;
}

#define PIPE_IS(type, str, eof, want)                                                              \
    do {                                                                                           \
        invariants_ok = 1;                                                                         \
        is_str(pipeline((type), (str), SIZE_MAX, (eof)), (want));                                 \
        is_str(pipeline((type), (str), 7, (eof)), (want));                                        \
        is_str(pipeline((type), (str), 1, (eof)), (want));                                        \
        ok(invariants_ok);                                                                         \
    } while (0)

static void test_pipeline(void)
{
    subtest("pipelined requests: Content-Length bodies end exactly, then the next head");
    PIPE_IS(HTTP_REQUEST,
            "GET /1 HTTP/1.1\r\nHost: h\r\n\r\n"
            "POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello"
            "GET /3 HTTP/1.1\r\nHost: h\r\n\r\n",
            0,
            "H28 GET /1;D28 []{};"
            "H77 POST /up;D82 [hello]{};"
            "H110 GET /3;D110 []{};.");
    PIPE_IS(HTTP_REQUEST, "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 005\r\n\r\nhello", 0,
            "H49 POST /;D54 [hello]{};.");
    /* what follows a body is the next head: here not one */
    PIPE_IS(HTTP_REQUEST, "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhelloX\r\n\r\n", 0,
            "H47 POST /;D52 [hello]{};E52;");

    subtest("a request body that has not all arrived yet");
    PIPE_IS(HTTP_REQUEST, "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nabc", 1,
            "H48 POST /;B51 [abc]. eof=error");

    subtest("chunked requests with extensions and trailers end exactly, then the next message");
    PIPE_IS(HTTP_REQUEST,
            "POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
            "5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Trailer: t\r\nX-Other: u\r\n\r\n"
            "GET /n HTTP/1.1\r\nHost: h\r\n\r\n",
            0,
            "H57 POST /c;D115 [hello world]{X-Trailer: t\r\nX-Other: u\r\n};H143 GET /n;D143 []{};.");
    PIPE_IS(HTTP_REQUEST, "POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 0,
            "H57 POST /c;D62 []{};.");
    subtest("chunk lines llhttp never reads: extensions it would refuse are fine here");
    PIPE_IS(HTTP_REQUEST,
            "POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
            "5 ; a = \"b\\\"c\"\r\nhello\r\n0\r\n\r\n",
            0, "H57 POST /c;D85 [hello]{};.");
    subtest("a bad chunked request body is an error where it goes wrong");
    PIPE_IS(HTTP_REQUEST,
            "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n", 0,
            "H56 POST /;BE57;");
    PIPE_IS(HTTP_REQUEST,
            "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n", 0,
            "H56 POST /;BE65;");
    subtest("a chunked body that looks like a request is payload, not a second request");
    PIPE_IS(HTTP_REQUEST,
            "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
            "20\r\nGET /admin HTTP/1.1\r\nHost: h\r\n\r\n\r\n0\r\n\r\n",
            0, "H56 POST /;D99 [GET /admin HTTP/1.1\r\nHost: h\r\n\r\n]{};.");
    subtest("refused heads never get a body read");
    PIPE_IS(HTTP_REQUEST, "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\nxyz", 0,
            "H53 POST /;R400;");

    subtest("responses: Content-Length and chunked bodies, then the next response");
    PIPE_IS(HTTP_RESPONSE,
            "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc"
            "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            "3\r\nabc\r\n0\r\nX-T: 1\r\n\r\n"
            "HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n"
            "HTTP/1.1 304 Not Modified\r\nContent-Length: 7\r\n\r\n"
            "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
            0,
            "H38 200;D41 [abc]{};H66 100;H113 200;D134 [abc]{X-T: 1\r\n};"
            "H180 204;D180 []{};H228 304;D228 []{};H266 200;D266 []{};.");
    subtest("a close-delimited response ends at fc_body_eof");
    PIPE_IS(HTTP_RESPONSE, "HTTP/1.1 200 OK\r\nServer: s\r\n\r\nsome body", 1, "H30 200;B39 [some body]. eof=done");
    PIPE_IS(HTTP_RESPONSE, "HTTP/1.0 200 OK\r\n\r\nHTTP/1.1 200 OK\r\n\r\n", 1,
            "H19 200;B38 [HTTP/1.1 200 OK\r\n\r\n]. eof=done");
    subtest("EOF inside a Content-Length or chunked response body is an error");
    PIPE_IS(HTTP_RESPONSE, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", 1, "H39 200;B42 [abc]. eof=error");
    PIPE_IS(HTTP_RESPONSE, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab", 1,
            "H47 200;B52 [ab]. eof=error");
    subtest("dechunking moves the decoded bytes down in place, the next response is untouched");
    PIPE_IS(HTTP_RESPONSE,
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            "5\r\nhello\r\n6;x=y\r\n world\r\n1\r\n!\r\n0\r\nX-T: z\r\n\r\n"
            "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nNEXT",
            0, "H47 200;D91 [hello world!]{X-T: z\r\n};H129 200;D133 [NEXT]{};.");
}

void test_body(void)
{
    test_length_and_eof();
    test_chunked_basic();
    test_extensions();
    test_trailers();
    test_limits();
    test_reencode();
    test_pipeline();
    fc_buf_free(&trailers);
}
