/* Server-side ALPN by the server's preference. wolfSSL (without its OpenSSL layer)
 * picks by the client's order, so the server reads the client's list from the
 * ClientHello first and offers wolfSSL only its own choice. */
#ifndef RS_TLS_ALPN_H
#define RS_TLS_ALPN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum rs_alpn_scan {
    RS_ALPN_MORE,     /* the first record is not complete yet */
    RS_ALPN_CHOSEN,   /* out holds the protocol */
    RS_ALPN_NONE,     /* no ALPN offered, or nothing in common */
    RS_ALPN_NOT_TLS,  /* not a ClientHello: let wolfSSL say what is wrong */
};

/* data/len: the first bytes from the client. ours: NULL-terminated, most preferred
 * first. */
enum rs_alpn_scan rs_alpn_choose(const uint8_t *data, size_t len, char *const *ours, char *out,
                                 size_t outlen);

#endif
