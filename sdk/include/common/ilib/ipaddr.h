/* ringsock SDK headers — common/ilib/ipaddr.h: IPaddr, the SDK's 16-byte address (IPv4
 * stored IPv4-mapped, ::ffff:a.b.c.d), and the most used of its helpers. */
#ifndef RINGSOCK_SDK_IPADDR_H
#define RINGSOCK_SDK_IPADDR_H

#include "platform/platform.h"

typedef union {
    byte b[16];
    word w[8];
    dword d[4];
    ulong64 q[2];
} IPaddr;

inline bool is_ip4(const IPaddr &a)
{
    return a.q[0] == 0 && a.w[4] == 0 && a.w[5] == 0xffff;
}

inline bool ip_match(const IPaddr &a, const IPaddr &b)
{
    return a.q[0] == b.q[0] && a.q[1] == b.q[1];
}

inline bool is_loopback(const IPaddr &a)
{
    static const byte v6[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    return memcmp(a.b, v6, 16) == 0 || (is_ip4(a) && a.b[12] == 127);
}

inline bool is_unspecified(const IPaddr *a)
{
    return a->q[0] == 0 && a->q[1] == 0;
}

#endif
