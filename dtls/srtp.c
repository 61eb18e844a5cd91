/* SRTP for DTLS-SRTP sockets. Each association gets two libsrtp2 sessions keyed from the
 * DTLS exporter (RFC 5764 4.2): one with a wildcard outbound stream under our own key, one
 * with a wildcard inbound stream under the peer's, so any SSRC either side picks works
 * without being announced. Packets are protected and unprotected in place; the caller
 * leaves room for the trailer. */
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <srtp2/srtp.h>

#include "srtp.h"

#define RS_SRTP_WINDOW 1024 /* replay window in packets: room for video bursts reordered */

struct rs_srtp {
    srtp_t tx, rx;
    size_t rtp_overhead, rtcp_overhead; /* what protect appends (no MKI) */
};

struct profile {
    uint16_t id;
    const char *name;
    size_t key_len, salt_len;
    size_t rtp_tag, rtcp_tag;
    void (*rtp)(srtp_crypto_policy_t *p);
    void (*rtcp)(srtp_crypto_policy_t *p);
};

/* SHA1_32 keeps an 80-bit tag on SRTCP (RFC 5764 4.1.2); GCM is RFC 7714's 16-byte tag.
 * The _rtp_default setter is AES-CM-128/HMAC-SHA1-80: the _80 name is only a macro for it. */
static const struct profile profiles[] = {
    {RS_SRTP_AES128_CM_SHA1_80, "SRTP_AES128_CM_SHA1_80", SRTP_AES_128_KEY_LEN, SRTP_SALT_LEN, 10,
     10, srtp_crypto_policy_set_rtp_default, srtp_crypto_policy_set_rtp_default},
    {RS_SRTP_AES128_CM_SHA1_32, "SRTP_AES128_CM_SHA1_32", SRTP_AES_128_KEY_LEN, SRTP_SALT_LEN, 4,
     10, srtp_crypto_policy_set_aes_cm_128_hmac_sha1_32, srtp_crypto_policy_set_rtp_default},
    {RS_SRTP_AEAD_AES_128_GCM, "SRTP_AEAD_AES_128_GCM", SRTP_AES_128_KEY_LEN, SRTP_AEAD_SALT_LEN,
     16, 16, srtp_crypto_policy_set_aes_gcm_128_16_auth,
     srtp_crypto_policy_set_aes_gcm_128_16_auth},
    {RS_SRTP_AEAD_AES_256_GCM, "SRTP_AEAD_AES_256_GCM", SRTP_AES_256_KEY_LEN, SRTP_AEAD_SALT_LEN,
     16, 16, srtp_crypto_policy_set_aes_gcm_256_16_auth,
     srtp_crypto_policy_set_aes_gcm_256_16_auth},
};

static const struct profile *find_profile(uint16_t id)
{
    for (size_t i = 0; i < sizeof(profiles) / sizeof(profiles[0]); i++)
        if (profiles[i].id == id)
            return &profiles[i];
    return NULL;
}

const char *rs_srtp_profile_name(uint16_t profile)
{
    const struct profile *p = find_profile(profile);
    return p ? p->name : NULL;
}

size_t rs_srtp_keying_length(uint16_t profile)
{
    const struct profile *p = find_profile(profile);
    return p ? 2 * (p->key_len + p->salt_len) : 0;
}

/* ---- library ----------------------------------------------------------------------------- */

/* libsrtp2's crypto kernel is process-global; srtp_init must run once, before any session. */
static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static srtp_err_status_t init_status;

static void init_library(void)
{
    init_status = srtp_init();
}

/* ---- sessions ---------------------------------------------------------------------------- */

/* One session with a single wildcard stream. libsrtp2 copies the key, so the caller wipes it. */
static srtp_err_status_t make_session(srtp_t *session, const struct profile *p,
                                      srtp_ssrc_type_t dir, unsigned char *key)
{
    srtp_policy_t pol;
    memset(&pol, 0, sizeof(pol));
    p->rtp(&pol.rtp);
    p->rtcp(&pol.rtcp);
    pol.ssrc.type = dir;
    pol.key = key;
    pol.window_size = RS_SRTP_WINDOW;
    pol.allow_repeat_tx = 0; /* resending a sequence number would reuse the keystream */
    return srtp_create(session, &pol);
}

struct rs_srtp *rs_srtp_new(uint16_t profile, const uint8_t *material, size_t len, bool is_client,
                            char *err, size_t err_size)
{
    const struct profile *p = find_profile(profile);
    if (!p) {
        snprintf(err, err_size, "unsupported SRTP profile 0x%04x", profile);
        return NULL;
    }
    size_t need = 2 * (p->key_len + p->salt_len);
    if (!material || len != need) {
        snprintf(err, err_size, "%s needs %zu bytes of keying material, got %zu", p->name, need,
                 material ? len : 0);
        return NULL;
    }
    pthread_once(&init_once, init_library);
    if (init_status != srtp_err_status_ok) {
        snprintf(err, err_size, "srtp_init failed (%d)", (int)init_status);
        return NULL;
    }

    struct rs_srtp *s = calloc(1, sizeof(*s));
    if (!s) {
        snprintf(err, err_size, "out of memory");
        return NULL;
    }
    s->rtp_overhead = p->rtp_tag;
    s->rtcp_overhead = 4 + p->rtcp_tag; /* E flag + SRTCP index, then the tag */

    /* client key | server key | client salt | server salt; libsrtp2 wants key | salt. */
    const uint8_t *client_key = material, *server_key = material + p->key_len;
    const uint8_t *client_salt = material + 2 * p->key_len;
    const uint8_t *server_salt = client_salt + p->salt_len;
    unsigned char local[SRTP_MAX_KEY_LEN], remote[SRTP_MAX_KEY_LEN];
    memcpy(local, is_client ? client_key : server_key, p->key_len);
    memcpy(local + p->key_len, is_client ? client_salt : server_salt, p->salt_len);
    memcpy(remote, is_client ? server_key : client_key, p->key_len);
    memcpy(remote + p->key_len, is_client ? server_salt : client_salt, p->salt_len);

    srtp_err_status_t st = make_session(&s->tx, p, ssrc_any_outbound, local);
    if (st == srtp_err_status_ok)
        st = make_session(&s->rx, p, ssrc_any_inbound, remote);
    explicit_bzero(local, sizeof(local));
    explicit_bzero(remote, sizeof(remote));
    if (st != srtp_err_status_ok) {
        snprintf(err, err_size, "srtp_create (%s) failed (%d)", p->name, (int)st);
        rs_srtp_free(s);
        return NULL;
    }
    return s;
}

void rs_srtp_free(struct rs_srtp *s)
{
    if (!s)
        return;
    if (s->tx)
        srtp_dealloc(s->tx);
    if (s->rx)
        srtp_dealloc(s->rx);
    free(s);
}

/* ---- packets ----------------------------------------------------------------------------- */

static enum rs_srtp_status map_status(srtp_err_status_t st)
{
    switch (st) {
    case srtp_err_status_ok:
        return RS_SRTP_OK;
    case srtp_err_status_auth_fail:
        return RS_SRTP_AUTH_FAIL;
    case srtp_err_status_replay_fail:
    case srtp_err_status_replay_old:
        return RS_SRTP_REPLAY;
    case srtp_err_status_bad_param: /* what libsrtp2 says of a packet too short to parse */
    case srtp_err_status_parse_err:
        return RS_SRTP_MALFORMED;
    default:
        return RS_SRTP_ERROR;
    }
}

/* Header checks libsrtp2 leaves to the caller: version 2, a whole fixed header. */
static bool plausible(const uint8_t *buf, size_t len, bool rtcp)
{
    return len >= (rtcp ? 8u : 12u) && len <= INT_MAX && (buf[0] >> 6) == 2;
}

enum rs_srtp_status rs_srtp_protect(struct rs_srtp *s, uint8_t *buf, size_t *len, size_t cap)
{
    bool rtcp = rs_rtp_is_rtcp(buf, *len);
    if (!plausible(buf, *len, rtcp))
        return RS_SRTP_MALFORMED;
    size_t overhead = rtcp ? s->rtcp_overhead : s->rtp_overhead;
    if (cap < *len || cap - *len < overhead || *len + overhead > INT_MAX)
        return RS_SRTP_NO_ROOM;
    int n = (int)*len;
    srtp_err_status_t st = rtcp ? srtp_protect_rtcp(s->tx, buf, &n) : srtp_protect(s->tx, buf, &n);
    if (st == srtp_err_status_ok)
        *len = (size_t)n;
    return map_status(st);
}

enum rs_srtp_status rs_srtp_unprotect(struct rs_srtp *s, uint8_t *buf, size_t *len)
{
    bool rtcp = rs_rtp_is_rtcp(buf, *len);
    /* Too short for header and trailer is malformed, not an authentication failure. */
    if (!plausible(buf, *len, rtcp) || *len < (rtcp ? 8 + s->rtcp_overhead : 12 + s->rtp_overhead))
        return RS_SRTP_MALFORMED;
    int n = (int)*len;
    srtp_err_status_t st =
        rtcp ? srtp_unprotect_rtcp(s->rx, buf, &n) : srtp_unprotect(s->rx, buf, &n);
    if (st == srtp_err_status_ok)
        *len = (size_t)n;
    return map_status(st);
}

bool rs_rtp_is_rtcp(const uint8_t *buf, size_t len)
{
    return len >= 2 && (buf[0] >> 6) == 2 && buf[1] >= 192 && buf[1] <= 223;
}

enum rs_demux rs_demux(const uint8_t *buf, size_t len)
{
    if (len == 0)
        return RS_DEMUX_OTHER;
    uint8_t b = buf[0];
    if (b <= 3)
        return RS_DEMUX_STUN;
    if (b >= 20 && b <= 63)
        return RS_DEMUX_DTLS;
    if (b >= 128 && b <= 191)
        return RS_DEMUX_RTP;
    return RS_DEMUX_OTHER; /* 16-19 ZRTP, 64-79 TURN channels: not ours */
}

const char *rs_srtp_status_str(enum rs_srtp_status st)
{
    switch (st) {
    case RS_SRTP_OK:
        return "ok";
    case RS_SRTP_AUTH_FAIL:
        return "authentication failed";
    case RS_SRTP_REPLAY:
        return "replayed or too old";
    case RS_SRTP_MALFORMED:
        return "malformed packet";
    case RS_SRTP_NO_ROOM:
        return "no room for the SRTP trailer";
    case RS_SRTP_ERROR:
        break;
    }
    return "SRTP error";
}
