/* ringsock — IPaddr text conversion; IPv4 lives in the IPv4-mapped range. */
#include <ringsock/ipaddr.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

static const uint8_t v4_mapped_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

bool IPaddr_FromString(IPaddr *out, const char *text)
{
    IPaddr a;

    if (out)
        memset(out, 0, sizeof(*out));
    if (!out || !text)
        return false;

    memset(&a, 0, sizeof(a));
    struct in_addr v4;
    if (inet_pton(AF_INET, text, &v4) == 1) {
        memcpy(a.b, v4_mapped_prefix, sizeof(v4_mapped_prefix));
        memcpy(a.b + 12, &v4, 4);
    } else if (inet_pton(AF_INET6, text, a.b) != 1) {
        /* Parse into a temporary so a failure can never leave half an address behind. */
        return false;
    }
    *out = a;
    return true;
}

bool IPaddr_IsV4(const IPaddr *addr)
{
    return addr && memcmp(addr->b, v4_mapped_prefix, sizeof(v4_mapped_prefix)) == 0;
}

void IPaddr_ToString(const IPaddr *addr, char *out, size_t size)
{
    char buf[INET6_ADDRSTRLEN];

    if (!out || size == 0)
        return;
    buf[0] = '\0';
    if (addr) {
        if (IPaddr_IsV4(addr))
            inet_ntop(AF_INET, addr->b + 12, buf, sizeof(buf));
        else
            inet_ntop(AF_INET6, addr->b, buf, sizeof(buf));
    }
    /* inet_ntop refuses short buffers outright; callers prefer a truncated string. */
    size_t len = strlen(buf);
    if (len >= size)
        len = size - 1;
    memcpy(out, buf, len);
    out[len] = '\0';
}
