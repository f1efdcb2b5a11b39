/* harness.h: the unit-test harness. Each tests/unit/test_<name>.c defines void test_<name>(void),
 * which the runner (main.c) calls; checks print both values on failure. The run ends with the
 * plain line "N passed, N failed". */
#ifndef FC_TEST_HARNESS_H
#define FC_TEST_HARNESS_H

#include <stdint.h>
#include <string.h>

extern int fc_test_passed;
extern int fc_test_failed;
void fc_test_fail(const char *file, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void subtest(const char *name);

#define ok(cond)                                                                                   \
    do {                                                                                           \
        if (cond) fc_test_passed++;                                                                \
        else fc_test_fail(__FILE__, __LINE__, "%s", #cond);                                        \
    } while (0)

#define is_int(got, want)                                                                          \
    do {                                                                                           \
        long long g_ = (long long)(got), w_ = (long long)(want);                                   \
        if (g_ == w_) fc_test_passed++;                                                            \
        else fc_test_fail(__FILE__, __LINE__, "%s: got %lld, want %lld", #got, g_, w_);            \
    } while (0)

#define is_str(got, want)                                                                          \
    do {                                                                                           \
        const char *g_ = (got), *w_ = (want);                                                      \
        if (g_ != NULL && w_ != NULL && strcmp(g_, w_) == 0) fc_test_passed++;                     \
        else fc_test_fail(__FILE__, __LINE__, "%s: got \"%s\", want \"%s\"", #got,                 \
                          g_ ? g_ : "(null)", w_ ? w_ : "(null)");                                 \
    } while (0)

#endif
