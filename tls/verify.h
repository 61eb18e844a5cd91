/* The server's identity, as a TLS or DTLS client checks it (api.md "Verification").
 *
 * What is expected is Connect's serverName, a DNS name or an IP literal, or without one
 * the IP address the socket connected to. wolfSSL checks the chain; its verify callback
 * (rs_tls_verify_server, run for the server's own certificate once the chain is good)
 * then checks the certificate's names:
 *  - an IP address matches an iPAddress SAN of the same family, byte for byte (IPv4-mapped
 *    IPv6 counts as IPv4); never a dNSName SAN or the subject CN, whatever their text;
 *  - a DNS name matches a dNSName SAN, ignoring ASCII case; "*.rest" matches one non-empty
 *    label in front of "rest", and only if "rest" has two labels or more. Only when the
 *    certificate has no dNSName SAN at all is the subject CN compared the same way (as
 *    OpenSSL's X509_check_host does); an iPAddress SAN never satisfies a DNS name.
 * A mismatch fails the handshake (wolfSSL sends bad_certificate) and is logged. */
#ifndef RS_TLS_VERIFY_H
#define RS_TLS_VERIFY_H

#include <stdbool.h>
#include <stdint.h>

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>

#include "ringsock/ipaddr.h"
#include "ringsock/log.h"

struct rs_tls_expect {
    IInstanceLog *log;
    enum LogFlags flag; /* LOG_TLS or LOG_DTLS */
    const void *sock;   /* for the log line */
    const char *dns;    /* the DNS name expected (the socket's serverName), or NULL */
    uint8_t ip[16];     /* else the address expected, ip_len bytes (4 or 16) */
    uint8_t ip_len;     /* 0 with dns NULL: nothing known, nothing can match */
    bool connected;     /* the address is the connected one, not a serverName */
};

/* A new client session: sends server_name as SNI when it is a DNS name (RFC 6066 has no
 * place for an address) and gives the verify callback what to expect: server_name, or
 * without one (NULL or "") peer, the address connected to (NULL: none). e and server_name
 * must live as long as ssl. */
void rs_tls_expect_server(WOLFSSL *ssl, struct rs_tls_expect *e, const char *server_name,
                          const IPaddr *peer, IInstanceLog *log, enum LogFlags flag,
                          const void *sock);

/* The verify callback of a client that verifies: the chain's verdict, and for the server's
 * certificate the name check above. */
int rs_tls_verify_server(int preverify, WOLFSSL_X509_STORE_CTX *store);

#endif
