/* main.c: the unit-test runner. Runs every test_<name>() listed in build/unit_list.h, or only
 * the ones named on the command line, and ends with "N passed, N failed". */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "harness.h"

int fc_test_passed;
int fc_test_failed;
static const char *current_test = "";
static const char *current_sub = "";

void subtest(const char *name) { current_sub = name; }

void fc_test_fail(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    fc_test_failed++;
    fprintf(stderr, "not ok: %s%s%s (%s:%d): ", current_test, *current_sub ? " / " : "", current_sub, file, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

#define FC_UNIT(name) void test_##name(void);
#include "unit_list.h"
#undef FC_UNIT

static const struct {
    const char *name;
    void (*fn)(void);
} tests[] = {
#define FC_UNIT(name) {#name, test_##name},
#include "unit_list.h"
#undef FC_UNIT
};

int main(int argc, char **argv)
{
    for (size_t i = 0; i < sizeof(tests) / sizeof(tests[0]); i++) {
        int want = argc < 2;
        for (int a = 1; a < argc; a++)
            if (strcmp(argv[a], tests[i].name) == 0) want = 1;
        if (!want) continue;
        int before = fc_test_failed;
        current_test = tests[i].name;
        current_sub = "";
        tests[i].fn();
        printf("%s %s\n", fc_test_failed == before ? "ok    " : "FAILED", tests[i].name);
    }
    printf("%d passed, %d failed\n", fc_test_passed, fc_test_failed);
    return fc_test_failed ? 1 : 0;
}
