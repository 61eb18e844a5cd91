/* ringsock SDK headers — platform/platform.h: what the innovaphone SDK's platform header
 * gives an application (integer types, ASSERT, the debug output and IPaddr), for Linux.
 * SDK applications include it first; the other SDK headers include it themselves. */
#ifndef RINGSOCK_SDK_PLATFORM_H
#define RINGSOCK_SDK_PLATFORM_H

#ifndef __cplusplus
#error "the ringsock SDK headers are C++; C programs use <ringsock/socket.h>"
#endif

#include <assert.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

typedef unsigned char byte;
typedef unsigned short word;
typedef short int16;
typedef unsigned int dword;
typedef int int32;
typedef long long long64;
typedef unsigned long long ulong64;
typedef intptr_t intp;
typedef uintptr_t uintp;

#define NAMESPACE_BEGIN
#define NAMESPACE_END
#define USING_NAMESPACE

#ifndef MIN
#define MIN(a, b) ((a) > (b) ? (b) : (a))
#endif
#ifndef MAX
#define MAX(a, b) ((a) > (b) ? (a) : (b))
#endif

/* As in the SDK: a failed assertion is reported through debug and ends the process. */
#define ASSERT(a, s)                                                                               \
    do {                                                                                           \
        if (!(a)) {                                                                                \
            if (debug)                                                                             \
                debug->printf("ASSERT: %s (%s:%u)", s, __FUNCTION__, (unsigned)__LINE__);          \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#include "common/os/debug.h"
#include "common/ilib/ipaddr.h"

#endif
