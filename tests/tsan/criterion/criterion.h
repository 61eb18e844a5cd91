/* The few Criterion macros the multi-loop test and its harness use, for the ThreadSanitizer
 * build: Criterion cannot start under TSan (its boxfort arena wants a fixed address that
 * TSan's shadow memory holds: github.com/Snaipe/Criterion/issues/274). Tests run one after
 * another in one process; a failed assertion prints where and aborts. */
#ifndef RS_TSAN_CRITERION_H
#define RS_TSAN_CRITERION_H

#include <string.h>

void tsan_test_register(const char *name, void (*fn)(void));
_Noreturn void tsan_test_fail(const char *file, int line, const char *what, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#define Test(suite, name)                                                                          \
    static void suite##_##name(void);                                                              \
    __attribute__((constructor)) static void suite##_##name##_register(void)                       \
    {                                                                                              \
        tsan_test_register(#suite "::" #name, suite##_##name);                                     \
    }                                                                                              \
    static void suite##_##name(void)

/* " " __VA_ARGS__: the optional message is a string literal, then its arguments. */
#define cr_assert(cond, ...)                                                                       \
    ((cond) ? (void)0 : tsan_test_fail(__FILE__, __LINE__, #cond, " " __VA_ARGS__))
#define cr_assert_not(cond, ...)          cr_assert(!(cond), __VA_ARGS__)
#define cr_assert_eq(a, b, ...)           cr_assert((a) == (b), __VA_ARGS__)
#define cr_assert_neq(a, b, ...)          cr_assert((a) != (b), __VA_ARGS__)
#define cr_assert_lt(a, b, ...)           cr_assert((a) < (b), __VA_ARGS__)
#define cr_assert_leq(a, b, ...)          cr_assert((a) <= (b), __VA_ARGS__)
#define cr_assert_gt(a, b, ...)           cr_assert((a) > (b), __VA_ARGS__)
#define cr_assert_geq(a, b, ...)          cr_assert((a) >= (b), __VA_ARGS__)
#define cr_assert_not_null(p, ...)        cr_assert((p) != NULL, __VA_ARGS__)
#define cr_assert_arr_eq(a, b, size, ...) cr_assert(memcmp((a), (b), (size)) == 0, __VA_ARGS__)
#define cr_assert_fail(...)               tsan_test_fail(__FILE__, __LINE__, "fail", " " __VA_ARGS__)

#endif
