#include "proc.h"

#include <criterion/criterion.h>
#include <dirent.h>

/* LeakSanitizer's report at process exit does not fail a Criterion test, so suites ask
 * for a leak check themselves when the sanitizer is linked in. */
int __lsan_do_recoverable_leak_check(void) __attribute__((weak));

void h_check_leaks(void)
{
    if (__lsan_do_recoverable_leak_check)
        cr_assert_eq(__lsan_do_recoverable_leak_check(), 0, "LeakSanitizer found leaks");
}

int h_count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    cr_assert_not_null(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n - 1; /* the directory's own descriptor */
}

uint32_t h_rand(uint32_t *state)
{
    uint32_t x = *state ? *state : 0x9e3779b9u;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return *state = x;
}

void h_fill(uint8_t *buf, size_t len, uint32_t seed)
{
    uint32_t st = seed | 1;
    for (size_t i = 0; i < len; i++)
        buf[i] = (uint8_t)(h_rand(&st) >> 24);
}
