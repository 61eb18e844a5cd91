/* SRTP for DTLS-SRTP sockets (RFC 5764): libsrtp2 sessions keyed from the DTLS
 * exporter, one for what we send and one for what we receive, and RFC 7983's
 * first-byte demultiplexing of a port shared by DTLS, SRTP and STUN. */
#ifndef RS_SRTP_H
#define RS_SRTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* SRTP protection profiles, by their IANA ids (RFC 5764, RFC 7714). */
enum {
    RS_SRTP_AES128_CM_SHA1_80 = 0x0001,
    RS_SRTP_AES128_CM_SHA1_32 = 0x0002,
    RS_SRTP_AEAD_AES_128_GCM = 0x0007,
    RS_SRTP_AEAD_AES_256_GCM = 0x0008,
};

enum rs_srtp_status {
    RS_SRTP_OK,
    RS_SRTP_AUTH_FAIL, /* tag does not verify: tampered, wrong key */
    RS_SRTP_REPLAY,    /* seen already, or too old for the replay window */
    RS_SRTP_MALFORMED, /* too short or not RTP/RTCP */
    RS_SRTP_NO_ROOM,   /* protect: the buffer cannot take the overhead */
    RS_SRTP_ERROR,     /* anything else libsrtp2 reports */
};

/* What the first byte of a datagram says it is (RFC 7983). */
enum rs_demux { RS_DEMUX_STUN, RS_DEMUX_DTLS, RS_DEMUX_RTP, RS_DEMUX_OTHER };

struct rs_srtp;

/* "SRTP_AEAD_AES_128_GCM"... (the names OpenSSL and wolfSSL use), NULL if unknown. */
const char *rs_srtp_profile_name(uint16_t profile);

/* Bytes of keying material the profile needs from the "EXTRACTOR-dtls_srtp" exporter:
 * 2 * (key + salt). 0 for a profile this build does not support. */
size_t rs_srtp_keying_length(uint16_t profile);

/* Sessions for one DTLS association. material is the exporter output, laid out as
 * client key | server key | client salt | server salt (RFC 5764 4.2); the client sends
 * with the client's key. NULL on error, with the reason in err. */
struct rs_srtp *rs_srtp_new(uint16_t profile, const uint8_t *material, size_t len, bool is_client,
                            char *err, size_t err_size);
void rs_srtp_free(struct rs_srtp *s);

/* Protects an RTP or RTCP packet (told apart by rs_rtp_is_rtcp) in place. cap is the
 * room in buf; *len is updated. */
enum rs_srtp_status rs_srtp_protect(struct rs_srtp *s, uint8_t *buf, size_t *len, size_t cap);

/* Authenticates, replay-checks and decrypts an SRTP or SRTCP packet in place. */
enum rs_srtp_status rs_srtp_unprotect(struct rs_srtp *s, uint8_t *buf, size_t *len);

/* RTCP (payload types 192-223 in the second byte, RFC 5761) rather than RTP. */
bool rs_rtp_is_rtcp(const uint8_t *buf, size_t len);

enum rs_demux rs_demux(const uint8_t *buf, size_t len);

const char *rs_srtp_status_str(enum rs_srtp_status st);

#endif
