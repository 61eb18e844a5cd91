/* ringsock — IPaddr, the SDK's 16-byte address (IPv4 stored IPv4-mapped). */
#ifndef RINGSOCK_IPADDR_H
#define RINGSOCK_IPADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef union IPaddr {
    uint8_t b[16];
    uint16_t w[8];
    uint32_t d[4];
    uint64_t q[2];
} IPaddr;

/* IPv4 is stored IPv4-mapped (::ffff:a.b.c.d), as in the SDK. */
bool IPaddr_FromString(IPaddr *out, const char *text); /* "1.2.3.4" or "::1" */
void IPaddr_ToString(const IPaddr *addr, char *out,
                     size_t size); /* IPv4-mapped prints as a.b.c.d */
bool IPaddr_IsV4(const IPaddr *addr);

#ifdef __cplusplus
}
#endif
#endif
