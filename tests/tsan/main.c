/* Runs the tests the criterion.h next to it registered (see there why not Criterion). */
#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#define MAX_TESTS 64

static struct {
    const char *name;
    void (*fn)(void);
} tests[MAX_TESTS];
static int ntests;

void tsan_test_register(const char *name, void (*fn)(void))
{
    if (ntests == MAX_TESTS)
        abort();
    tests[ntests].name = name;
    tests[ntests++].fn = fn;
}

void tsan_test_fail(const char *file, int line, const char *what, const char *fmt, ...)
{
    fprintf(stderr, "%s:%d: assertion failed: %s", file, line, what);
    if (fmt[1]) { /* the macros put a blank before the message */
        va_list ap;
        va_start(ap, fmt);
        fputc(':', stderr);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
    }
    fputc('\n', stderr);
    abort();
}

int main(void)
{
    for (int i = 0; i < ntests; i++) {
        fprintf(stderr, "[RUN ] %s\n", tests[i].name);
        tests[i].fn();
        fprintf(stderr, "[PASS] %s\n", tests[i].name);
    }
    return 0;
}
