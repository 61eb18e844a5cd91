/*
 * Kernel TLS probe, run inside the test VM (scripts/vm-test) after the tls module chain is
 * loaded: on a connected loopback TCP pair, setsockopt(TCP_ULP, "tls") on both ends, TLS 1.3
 * AES-128-GCM keys for transmit on one end and receive on the other, and one record sent
 * through both: the bytes read must be the bytes written. Prints one line, "ktls: ...", and
 * exits 0 only when every step worked. Built static, so it needs nothing in the VM.
 * scripts/bench-tls --ktls runs it on the host first and reads that line: "ktls: ok", or the
 * TCP_ULP step failing with ENOENT (strerror's words) for a kernel without the tls ULP.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/tls.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#ifndef SOL_TLS
#define SOL_TLS 282
#endif

static int fail(const char *step)
{
    printf("ktls: FAIL at %s: %s\n", step, strerror(errno));
    return 1;
}

int main(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof(a);
    int l = socket(AF_INET, SOCK_STREAM, 0);
    if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(l, 1) < 0 ||
        getsockname(l, (struct sockaddr *)&a, &alen) < 0)
        return fail("listen");
    int c = socket(AF_INET, SOCK_STREAM, 0);
    if (c < 0 || connect(c, (struct sockaddr *)&a, sizeof(a)) < 0)
        return fail("connect");
    int s = accept(l, NULL, NULL);
    if (s < 0)
        return fail("accept");

    if (setsockopt(c, SOL_TCP, TCP_ULP, "tls", sizeof("tls")) < 0 ||
        setsockopt(s, SOL_TCP, TCP_ULP, "tls", sizeof("tls")) < 0)
        return fail("setsockopt(TCP_ULP, \"tls\")");

    /* Fixed test keys: the same on both ends, so what one end seals the other opens. */
    struct tls12_crypto_info_aes_gcm_128 ci = {
        .info = {.version = TLS_1_3_VERSION, .cipher_type = TLS_CIPHER_AES_GCM_128}};
    memset(ci.key, 0x11, sizeof(ci.key));
    memset(ci.iv, 0x22, sizeof(ci.iv));
    memset(ci.salt, 0x33, sizeof(ci.salt));
    if (setsockopt(c, SOL_TLS, TLS_TX, &ci, sizeof(ci)) < 0)
        return fail("setsockopt(TLS_TX, TLS 1.3 AES-128-GCM)");
    if (setsockopt(s, SOL_TLS, TLS_RX, &ci, sizeof(ci)) < 0)
        return fail("setsockopt(TLS_RX, TLS 1.3 AES-128-GCM)");

    static const char msg[] = "ringsock kTLS probe";
    if (send(c, msg, sizeof(msg), 0) != (ssize_t)sizeof(msg))
        return fail("send");
    char got[64];
    size_t n = 0;
    while (n < sizeof(msg)) {
        ssize_t r = recv(s, got + n, sizeof(got) - n, 0);
        if (r <= 0)
            return fail("recv");
        n += (size_t)r;
    }
    if (n != sizeof(msg) || memcmp(got, msg, sizeof(msg)) != 0) {
        printf("ktls: FAIL: the record read back differs from the one sent\n");
        return 1;
    }
    printf("ktls: ok (TCP_ULP tls, TLS 1.3 AES-128-GCM TLS_TX -> TLS_RX round trip)\n");
    return 0;
}
