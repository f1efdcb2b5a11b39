/* test_units.c: duration and size parsing (units.h), good values and every kind of bad one.
 * Each case is a table row; a failure names the text that was parsed. */
#include "fulcrum/units.h"
#include "harness.h"

void test_units(void);

#define NO -1       /* the text must be rejected */
#define UNSET 12345 /* sentinel: a rejected text must leave the output alone */

typedef struct unit_case {
    const char *text; /* what the config would say */
    int rc;           /* 0 or NO */
    uint64_t want;    /* the parsed value when rc is 0 */
} unit_case_t;

static const unit_case_t durations[] = {
    /* single units */
    {"250ms", 0, 250},
    {"10s", 0, 10000},
    {"5m", 0, 300000},
    {"1h", 0, 3600000},
    {"0", 0, 0},
    {"0s", 0, 0},
    {"0ms", 0, 0},
    {"007s", 0, 7000},
    {"90m", 0, 5400000},
    /* a bare number is seconds */
    {"30", 0, 30000},
    {"1", 0, 1000},
    /* compound, largest unit first */
    {"1h30m", 0, 5400000},
    {"1m30s", 0, 90000},
    {"1s500ms", 0, 1500},
    {"2h15m10s250ms", 0, 2 * 3600000 + 15 * 60000 + 10000 + 250},
    /* malformed */
    {"", NO, 0},
    {"s", NO, 0},
    {"ms", NO, 0},
    {"-1s", NO, 0},
    {"+1s", NO, 0},
    {"-5", NO, 0},
    {"1.5s", NO, 0},
    {"10 s", NO, 0},
    {" 10s", NO, 0},
    {"10s ", NO, 0},
    {"10x", NO, 0},
    {"10sec", NO, 0},
    {"1d", 0, 86400000},
    {"1y", 0, UINT64_C(31536000000)},
    {"1y2d", 0, UINT64_C(31708800000)},
    {"1d1y", NO, 0},
    {"1w", NO, 0},
    {"10S", NO, 0},
    {"abc", NO, 0},
    {"1h30", NO, 0},  /* a bare number only on its own */
    {"30m1h", NO, 0}, /* units must shrink */
    {"1m1m", NO, 0},  /* each unit once */
    {"1ms1s", NO, 0},
    {"1s1s", NO, 0},
    {"1hm", NO, 0},
    /* the edge of 64 bits */
    {"18446744073709551615ms", 0, UINT64_MAX},
    {"18446744073709551616ms", NO, 0},
    {"99999999999999999999999ms", NO, 0},
    {"18446744073709551615s", NO, 0},
    {"18446744073709551615", NO, 0},
    {"5124095576030h1ms", 0, UINT64_C(5124095576030) * 3600000 + 1},
    {"5124095576031h", NO, 0},
    {"5124095576030h18446744073709551615ms", NO, 0}, /* the sum overflows */
};

static const unit_case_t sizes[] = {
    {"0", 0, 0},
    {"512", 0, 512},
    {"16k", 0, 16384},
    {"16K", 0, 16384},
    {"10m", 0, 10 * 1048576},
    {"10M", 0, 10 * 1048576},
    {"1g", 0, 1073741824},
    {"2G", 0, 2147483648u},
    {"0k", 0, 0},
    /* malformed */
    {"", NO, 0},
    {"k", NO, 0},
    {"-1", NO, 0},
    {"-1k", NO, 0},
    {"+1k", NO, 0},
    {"1.5m", NO, 0},
    {"16kb", NO, 0},
    {"16KB", NO, 0},
    {"1t", NO, 0},
    {"16 k", NO, 0},
    {" 16k", NO, 0},
    {"1k1k", NO, 0},
    {"abc", NO, 0},
    /* the edge of 64 bits */
    {"18446744073709551615", 0, UINT64_MAX},
    {"18446744073709551616", NO, 0},
    {"17179869183g", 0, UINT64_C(17179869183) << 30},
    {"17179869184g", NO, 0},
    {"18014398509481984k", NO, 0},
};

static void check(int (*parse)(const char *, uint64_t *), const unit_case_t *cases, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint64_t v = UNSET;
        subtest(cases[i].text);
        is_int(parse(cases[i].text, &v), cases[i].rc);
        is_int(v, cases[i].rc == 0 ? cases[i].want : UNSET);
    }
}

void test_units(void)
{
    check(fc_duration_parse, durations, sizeof(durations) / sizeof(durations[0]));
    check(fc_size_parse, sizes, sizeof(sizes) / sizeof(sizes[0]));
}
