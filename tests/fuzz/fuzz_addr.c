/* Address text as applications hand it to ringsock: Connect and Bind strings of TCP and
 * UDP sockets (engine/sockaddr.c), IPaddr_FromString/ToString, and local socket names
 * (engine/local.c) with GetLocalAddress into buffers of every size.
 *
 * Input: a selector byte, a port (2 bytes), a buffer size byte, then the text.
 * Oracles besides the sanitizers: an address that parses prints as text that parses to
 * the same address; text that does not parse ends a socket's Connect with
 * SOCKET_ADDRESS_INVALID; GetLocalAddress writes a NUL-terminated string that fits. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "sockaddr.h"

static void fail(const char *what, const char *text)
{
    fprintf(stderr, "fuzz_addr: %s (input \"%s\")\n", what, text);
    abort();
}

/* The address prints as text that parses back to it. */
static void check_roundtrip(const struct rs_sockaddr *sa, const char *text)
{
    IPaddr ip, ip2;
    uint16_t port, port2;
    char host[64], again[80];
    rs_addr_to_ipaddr(&sa->u.sa, &ip, &port);
    rs_addr_format(&sa->u.sa, host, sizeof(host), &port2);
    if (port2 != port)
        fail("rs_addr_format gives another port", text);
    snprintf(again, sizeof(again), strchr(host, ':') ? "[%s]:%u" : "%s:%u", host, port);
    struct rs_sockaddr sa2;
    if (port == 0) /* a bind address: Connect refuses port 0 */
        return;
    if (!rs_addr_parse_hostport(again, &sa2))
        fail("the printed address does not parse", text);
    rs_addr_to_ipaddr(&sa2.u.sa, &ip2, &port2);
    if (memcmp(&ip, &ip2, sizeof(ip)) != 0 || port != port2)
        fail("the printed address parses to another one", text);
}

static void check_ipaddr(const char *text, unsigned size)
{
    IPaddr a, b;
    if (!IPaddr_FromString(&a, text)) {
        static const IPaddr zero;
        if (memcmp(&a, &zero, sizeof(a)) != 0)
            fail("IPaddr_FromString failed but left an address", text);
        return;
    }
    char s[64];
    IPaddr_ToString(&a, s, sizeof(s));
    if (!IPaddr_FromString(&b, s) || memcmp(&a, &b, sizeof(a)) != 0)
        fail("IPaddr_ToString does not parse back", text);
    if (IPaddr_IsV4(&a) != (strchr(s, ':') == NULL))
        fail("IPaddr_IsV4 disagrees with the text", text);
    /* Truncation into a buffer of exactly size bytes (ASan sees an overrun). */
    char *small = malloc(size ? size : 1);
    IPaddr_ToString(&a, small, size);
    if (size && (strlen(small) >= size || strncmp(small, s, strlen(small)) != 0))
        fail("IPaddr_ToString truncates wrongly", text);
    free(small);
}

static bool ended(void *arg)
{
    return ((struct fz_sock *)arg)->ended;
}

/* Text that does not parse ends the socket with SOCKET_ADDRESS_INVALID, from the loop. */
static void connect_invalid(ISocketProvider *p, const char *text)
{
    struct fz_loop l;
    struct fz_sock fs;
    fz_loop_init(&l);
    fz_sock_init(&fs, &l, 0, false);
    fz_sock_create(&fs, p, NULL);
    ISocket_Connect(fs.sock, text, NULL);
    if (fs.ended)
        fail("a callback inside ISocket_Connect", text);
    fz_run(&l, ended, NULL, &fs, 5000);
    if (fs.reason != SOCKET_ADDRESS_INVALID)
        fail("an address that does not parse did not give SOCKET_ADDRESS_INVALID", text);
    fz_sock_free(&fs);
    fz_loop_fini(&l);
}

static void check_local_address(ISocket *s, unsigned size, const char *text)
{
    char *out = malloc(size ? size : 1);
    uint16_t port = 1;
    memset(out, 'x', size ? size : 1);
    ISocket_GetLocalAddress(s, out, size, &port);
    if (size && strnlen(out, size) == size)
        fail("GetLocalAddress left no NUL", text);
    free(out);
}

/* A local socket bound to an abstract name of ours (text appended), or to text itself
 * when it is too long to be one (those must fail without binding). */
static void local_bind(ISocketProvider *p, const char *text, unsigned size)
{
    struct fz_loop l;
    struct fz_sock fs;
    char name[512];
    snprintf(name, sizeof(name), "%s%s", fz_local_name("addr-"), text);
    fz_loop_init(&l);
    fz_sock_init(&fs, &l, 0, false);
    fz_sock_create(&fs, p, NULL);
    ISocket_Bind(fs.sock, name, 0);
    check_local_address(fs.sock, size, text);
    fz_sock_free(&fs);
    fz_loop_fini(&l);
}

static void ip_bind(ISocketProvider *p, const char *text, bool v6, unsigned size)
{
    struct rs_sockaddr sa;
    /* A literal that names another host fails at bind(2), quickly; port 0 keeps clear of
     * ports in use. */
    struct fz_loop l;
    struct fz_sock fs;
    fz_loop_init(&l);
    fz_sock_init(&fs, &l, 0, false);
    fs.sock = ISocketProvider_CreateSocket(p, l.mux, &fs.user, fz_log(), v6, NULL);
    ISocket_Bind(fs.sock, text, 0);
    check_local_address(fs.sock, size, text);
    if (!rs_addr_parse_bind(text, 0, v6, &sa))
        fz_run(&l, ended, NULL, &fs, 5000);
    fz_sock_free(&fs);
    fz_loop_fini(&l);
}

static ISocketProvider *tcp, *udp, *local;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!tcp) {
        tcp = CreateTCPSocketProvider();
        udp = CreateUDPSocketProvider();
        local = CreateLocalSocketProvider();
    }
    struct fz_in in = {data, size};
    uint8_t sel = fz_u8(&in);
    uint16_t port = fz_u16(&in);
    unsigned bufsize = fz_u8(&in) % 72;
    char *text = fz_str(&in, 300);

    struct rs_sockaddr sa;
    bool hostport = rs_addr_parse_hostport(text, &sa);
    if (hostport)
        check_roundtrip(&sa, text);
    if (rs_addr_parse_bind(text, port, sel & 1, &sa))
        check_roundtrip(&sa, text);
    check_ipaddr(text, bufsize);

    switch (sel >> 1 & 7) {
    case 1:
        if (!hostport)
            connect_invalid(tcp, text);
        break;
    case 2:
        if (!hostport)
            connect_invalid(udp, text);
        break;
    case 3:
        local_bind(local, text, bufsize);
        break;
    case 4:
        ip_bind(tcp, text, sel & 1, bufsize);
        break;
    case 5:
        ip_bind(udp, text, sel & 1, bufsize);
        break;
    }
    free(text);
    return 0;
}
