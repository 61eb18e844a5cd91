/* Process-level test helpers that need nothing of ringsock's API, so the C harness
 * (harness.h) and the SDK C++ tests (tests/sdk) share them. */
#ifndef RS_TEST_PROC_H
#define RS_TEST_PROC_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Fails the test if LeakSanitizer (when linked in) finds leaked memory. */
void h_check_leaks(void);

/* The process's open descriptors (entries of /proc/self/fd). */
int h_count_fds(void);

/* Deterministic pseudo-random bytes. */
void h_fill(uint8_t *buf, size_t len, uint32_t seed);
uint32_t h_rand(uint32_t *state);

#ifdef __cplusplus
}
#endif

#endif
