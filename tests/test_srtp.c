/* Tests for dtls/srtp.c: round trips, trailer sizes, replay and tamper detection for every
 * profile; the RFC 5764 key layout cross-checked against sessions made with libsrtp2
 * directly; RFC 7983 demultiplexing and the RTP/RTCP split. */
#include <criterion/criterion.h>

#include <srtp2/srtp.h>

#include <stdlib.h>
#include <string.h>

#include "srtp.h"

/* The test's own view of each profile, written from RFC 5764 / RFC 7714, not from srtp.c.
 * srtp_crypto_policy_set_rtp_default is AES-CM-128/HMAC-SHA1-80 (the _80 setter is a macro). */
struct prof {
    uint16_t id;
    size_t key, salt;
    size_t rtp_tag, rtcp_tag;
    void (*rtp)(srtp_crypto_policy_t *p);
    void (*rtcp)(srtp_crypto_policy_t *p);
};

static const struct prof profs[] = {
    {RS_SRTP_AES128_CM_SHA1_80, 16, 14, 10, 10, srtp_crypto_policy_set_rtp_default,
     srtp_crypto_policy_set_rtp_default},
    {RS_SRTP_AES128_CM_SHA1_32, 16, 14, 4, 10, srtp_crypto_policy_set_aes_cm_128_hmac_sha1_32,
     srtp_crypto_policy_set_rtp_default},
    {RS_SRTP_AEAD_AES_128_GCM, 16, 12, 16, 16, srtp_crypto_policy_set_aes_gcm_128_16_auth,
     srtp_crypto_policy_set_aes_gcm_128_16_auth},
    {RS_SRTP_AEAD_AES_256_GCM, 32, 12, 16, 16, srtp_crypto_policy_set_aes_gcm_256_16_auth,
     srtp_crypto_policy_set_aes_gcm_256_16_auth},
};
#define NPROFS (sizeof(profs) / sizeof(profs[0]))

#define CAP 1500

static size_t material(const struct prof *p, uint8_t seed, uint8_t *m)
{
    size_t n = 2 * (p->key + p->salt);
    for (size_t i = 0; i < n; i++)
        m[i] = (uint8_t)(seed + i * 7);
    return n;
}

static struct rs_srtp *session(const struct prof *p, uint8_t seed, bool is_client)
{
    uint8_t m[128];
    char err[128] = "";
    size_t n = material(p, seed, m);
    struct rs_srtp *s = rs_srtp_new(p->id, m, n, is_client, err, sizeof(err));
    cr_assert_not_null(s, "%s: %s", rs_srtp_profile_name(p->id), err);
    return s;
}

static size_t rtp_packet(uint8_t *b, uint32_t ssrc, uint16_t seq, size_t payload)
{
    b[0] = 0x80;
    b[1] = 96;
    b[2] = seq >> 8;
    b[3] = seq & 0xff;
    uint32_t ts = seq * 160u;
    for (int i = 0; i < 4; i++) {
        b[4 + i] = ts >> (24 - 8 * i);
        b[8 + i] = ssrc >> (24 - 8 * i);
    }
    for (size_t i = 0; i < payload; i++)
        b[12 + i] = (uint8_t)(i * 13 + seq);
    return 12 + payload;
}

/* A sender report without report blocks: 28 bytes. */
static size_t rtcp_sr(uint8_t *b, uint32_t ssrc, uint8_t fill)
{
    memset(b, fill, 28);
    b[0] = 0x80;
    b[1] = 200;
    b[2] = 0;
    b[3] = 6;
    for (int i = 0; i < 4; i++)
        b[4 + i] = ssrc >> (24 - 8 * i);
    return 28;
}

static const char *name(const struct prof *p)
{
    return rs_srtp_profile_name(p->id);
}

/* from protects a copy of pkt, to must get the same bytes back. */
static void round_trip(const struct prof *p, struct rs_srtp *from, struct rs_srtp *to,
                       const uint8_t *pkt, size_t len, size_t overhead)
{
    uint8_t buf[CAP];
    memcpy(buf, pkt, len);
    size_t n = len;
    cr_assert_eq(rs_srtp_protect(from, buf, &n, sizeof(buf)), RS_SRTP_OK, "%s", name(p));
    cr_assert_eq(n, len + overhead, "%s: %zu bytes protected to %zu", name(p), len, n);
    cr_assert(memcmp(buf + 12, pkt + 12, len - 12) != 0, "%s: payload not encrypted", name(p));
    cr_assert_eq(rs_srtp_unprotect(to, buf, &n), RS_SRTP_OK, "%s", name(p));
    cr_assert_eq(n, len, "%s", name(p));
    cr_assert_arr_eq(buf, pkt, len, "%s: unprotect changed the packet", name(p));
}

Test(srtp, round_trip_every_profile)
{
    for (size_t i = 0; i < NPROFS; i++) {
        const struct prof *p = &profs[i];
        struct rs_srtp *c = session(p, 1, true), *s = session(p, 1, false);
        uint8_t pkt[CAP];
        for (uint16_t seq = 100; seq < 110; seq++) {
            size_t n = rtp_packet(pkt, 0x11223344, seq, 160);
            round_trip(p, c, s, pkt, n, p->rtp_tag);
            n = rtp_packet(pkt, 0x55667788, seq, 40);
            round_trip(p, s, c, pkt, n, p->rtp_tag);
        }
        /* SRTCP: E flag + 31-bit index, then the tag. */
        size_t n = rtcp_sr(pkt, 0x11223344, 0xa5);
        round_trip(p, c, s, pkt, n, 4 + p->rtcp_tag);
        round_trip(p, c, s, pkt, n, 4 + p->rtcp_tag); /* next index, not a replay */
        n = rtcp_sr(pkt, 0x55667788, 0x5a);
        round_trip(p, s, c, pkt, n, 4 + p->rtcp_tag);
        rs_srtp_free(c);
        rs_srtp_free(s);
    }
}

Test(srtp, exact_room_no_overrun)
{
    /* A heap buffer of exactly len + overhead: the sanitizer sees any write past it. */
    for (size_t i = 0; i < NPROFS; i++) {
        const struct prof *p = &profs[i];
        struct rs_srtp *c = session(p, 2, true), *s = session(p, 2, false);
        uint8_t pkt[64];
        size_t len = rtp_packet(pkt, 1, 1, 20), n = len;
        uint8_t *b = malloc(len + p->rtp_tag);
        memcpy(b, pkt, len);
        cr_assert_eq(rs_srtp_protect(c, b, &n, len + p->rtp_tag), RS_SRTP_OK, "%s", name(p));
        cr_assert_eq(rs_srtp_unprotect(s, b, &n), RS_SRTP_OK);
        cr_assert_arr_eq(b, pkt, len);
        free(b);

        len = n = rtcp_sr(pkt, 1, 0);
        b = malloc(len + 4 + p->rtcp_tag);
        memcpy(b, pkt, len);
        cr_assert_eq(rs_srtp_protect(c, b, &n, len + 4 + p->rtcp_tag), RS_SRTP_OK, "%s", name(p));
        cr_assert_eq(rs_srtp_unprotect(s, b, &n), RS_SRTP_OK);
        cr_assert_arr_eq(b, pkt, len);
        free(b);
        rs_srtp_free(c);
        rs_srtp_free(s);
    }
}

Test(srtp, no_room)
{
    for (size_t i = 0; i < NPROFS; i++) {
        const struct prof *p = &profs[i];
        struct rs_srtp *c = session(p, 3, true);
        uint8_t buf[CAP], orig[CAP];
        size_t len = rtp_packet(buf, 1, 1, 20), n = len;
        memcpy(orig, buf, len);
        cr_assert_eq(rs_srtp_protect(c, buf, &n, len + p->rtp_tag - 1), RS_SRTP_NO_ROOM, "%s",
                     name(p));
        cr_assert_eq(rs_srtp_protect(c, buf, &n, len), RS_SRTP_NO_ROOM);
        cr_assert_eq(n, len);
        cr_assert_arr_eq(buf, orig, len, "refused packet must be left alone");
        len = n = rtcp_sr(buf, 1, 0);
        cr_assert_eq(rs_srtp_protect(c, buf, &n, len + 4 + p->rtcp_tag - 1), RS_SRTP_NO_ROOM);
        rs_srtp_free(c);
    }
}

Test(srtp, replay)
{
    for (size_t i = 0; i < NPROFS; i++) {
        const struct prof *p = &profs[i];
        struct rs_srtp *c = session(p, 4, true), *s = session(p, 4, false);
        uint8_t buf[CAP], copy[CAP];
        size_t n = rtp_packet(buf, 7, 500, 50);
        cr_assert_eq(rs_srtp_protect(c, buf, &n, sizeof(buf)), RS_SRTP_OK);
        size_t m = n;
        memcpy(copy, buf, n);
        cr_assert_eq(rs_srtp_unprotect(s, buf, &n), RS_SRTP_OK);
        cr_assert_eq(rs_srtp_unprotect(s, copy, &m), RS_SRTP_REPLAY, "%s: RTP replay", name(p));

        n = rtcp_sr(buf, 7, 1);
        cr_assert_eq(rs_srtp_protect(c, buf, &n, sizeof(buf)), RS_SRTP_OK);
        m = n;
        memcpy(copy, buf, n);
        cr_assert_eq(rs_srtp_unprotect(s, buf, &n), RS_SRTP_OK);
        cr_assert_eq(rs_srtp_unprotect(s, copy, &m), RS_SRTP_REPLAY, "%s: RTCP replay", name(p));

        /* Sending a sequence number again would reuse keystream: refused. */
        n = rtp_packet(buf, 7, 500, 50);
        cr_assert_eq(rs_srtp_protect(c, buf, &n, sizeof(buf)), RS_SRTP_REPLAY, "%s", name(p));
        rs_srtp_free(c);
        rs_srtp_free(s);
    }
}

/* Protects a fresh packet, flips one bit at off (from the end if negative), expects fail. */
static void tamper(const struct prof *p, bool rtcp, long off)
{
    static uint16_t seq = 1000;
    struct rs_srtp *c = session(p, 5, true), *s = session(p, 5, false);
    uint8_t buf[CAP];
    size_t n = rtcp ? rtcp_sr(buf, 9, 3) : rtp_packet(buf, 9, seq++, 64);
    cr_assert_eq(rs_srtp_protect(c, buf, &n, sizeof(buf)), RS_SRTP_OK);
    size_t at = off < 0 ? n + off : (size_t)off;
    buf[at] ^= 0x10;
    cr_assert_eq(rs_srtp_unprotect(s, buf, &n), RS_SRTP_AUTH_FAIL, "%s %s: bit flipped at %zu",
                 name(p), rtcp ? "RTCP" : "RTP", at);
    rs_srtp_free(c);
    rs_srtp_free(s);
}

Test(srtp, tampered_tag_or_payload)
{
    for (size_t i = 0; i < NPROFS; i++) {
        tamper(&profs[i], false, -1); /* last byte of the tag */
        tamper(&profs[i], false, 20); /* payload */
        tamper(&profs[i], false, 1);  /* header (payload type): authenticated too */
        tamper(&profs[i], true, -1);
        tamper(&profs[i], true, 12);
    }
}

Test(srtp, wrong_keying_material)
{
    for (size_t i = 0; i < NPROFS; i++) {
        const struct prof *p = &profs[i];
        struct rs_srtp *c = session(p, 6, true), *s = session(p, 7, false);
        /* Both from the same material but both clients: each expects the server's key. */
        struct rs_srtp *c2 = session(p, 6, true);
        uint8_t buf[CAP];
        size_t n = rtp_packet(buf, 9, 1, 64), n2;
        cr_assert_eq(rs_srtp_protect(c, buf, &n, sizeof(buf)), RS_SRTP_OK);
        uint8_t copy[CAP];
        memcpy(copy, buf, n2 = n);
        cr_assert_eq(rs_srtp_unprotect(s, buf, &n), RS_SRTP_AUTH_FAIL, "%s", name(p));
        cr_assert_eq(rs_srtp_unprotect(c2, copy, &n2), RS_SRTP_AUTH_FAIL, "%s", name(p));
        n = rtcp_sr(buf, 9, 0);
        cr_assert_eq(rs_srtp_protect(c, buf, &n, sizeof(buf)), RS_SRTP_OK);
        cr_assert_eq(rs_srtp_unprotect(s, buf, &n), RS_SRTP_AUTH_FAIL, "%s", name(p));
        rs_srtp_free(c);
        rs_srtp_free(c2);
        rs_srtp_free(s);
    }
}

Test(srtp, truncated)
{
    for (size_t i = 0; i < NPROFS; i++) {
        const struct prof *p = &profs[i];
        struct rs_srtp *c = session(p, 8, true), *s = session(p, 8, false);
        uint8_t buf[CAP];
        rtp_packet(buf, 9, 1, 64);
        for (size_t len = 0; len < 12; len++) {
            size_t n = len;
            cr_assert_eq(rs_srtp_protect(c, buf, &n, sizeof(buf)), RS_SRTP_MALFORMED);
            n = len;
            cr_assert_eq(rs_srtp_unprotect(s, buf, &n), RS_SRTP_MALFORMED, "%s len %zu", name(p),
                         len);
        }
        /* A header but the tag cut short. */
        size_t n = rtp_packet(buf, 9, 1, 0);
        cr_assert_eq(rs_srtp_protect(c, buf, &n, sizeof(buf)), RS_SRTP_OK);
        n--;
        cr_assert_eq(rs_srtp_unprotect(s, buf, &n), RS_SRTP_MALFORMED, "%s", name(p));
        n = rtcp_sr(buf, 9, 0);
        cr_assert_eq(rs_srtp_protect(c, buf, &n, sizeof(buf)), RS_SRTP_OK);
        n = 8 + 4 + p->rtcp_tag - 1;
        cr_assert_eq(rs_srtp_unprotect(s, buf, &n), RS_SRTP_MALFORMED, "%s", name(p));
        /* Not version 2. */
        n = rtp_packet(buf, 9, 2, 20);
        buf[0] = 0x40;
        cr_assert_eq(rs_srtp_protect(c, buf, &n, sizeof(buf)), RS_SRTP_MALFORMED);
        rs_srtp_free(c);
        rs_srtp_free(s);
    }
}

Test(srtp, any_ssrc)
{
    /* Wildcard streams: SSRCs nobody announced are protected and accepted. */
    const struct prof *p = &profs[0];
    struct rs_srtp *c = session(p, 9, true), *s = session(p, 9, false);
    uint8_t pkt[CAP];
    for (uint32_t ssrc = 1; ssrc <= 5; ssrc++)
        round_trip(p, c, s, pkt, rtp_packet(pkt, ssrc * 0x01010101u, 1, 30), p->rtp_tag);
    rs_srtp_free(c);
    rs_srtp_free(s);
}

/* ---- key layout against libsrtp2 used directly ------------------------------------------ */

/* A libsrtp2 session keyed with one role's key and salt, picked out of the material by the
 * RFC 5764 4.2 layout: client key | server key | client salt | server salt. */
static srtp_t direct(const struct prof *p, const uint8_t *m, bool client_role, bool outbound)
{
    unsigned char key[SRTP_MAX_KEY_LEN];
    memcpy(key, m + (client_role ? 0 : p->key), p->key);
    memcpy(key + p->key, m + 2 * p->key + (client_role ? 0 : p->salt), p->salt);
    srtp_policy_t pol;
    memset(&pol, 0, sizeof(pol));
    p->rtp(&pol.rtp);
    p->rtcp(&pol.rtcp);
    pol.ssrc.type = outbound ? ssrc_any_outbound : ssrc_any_inbound;
    pol.key = key;
    pol.window_size = 128;
    srtp_t sess = NULL;
    cr_assert_eq(srtp_create(&sess, &pol), srtp_err_status_ok, "%s", name(p));
    return sess;
}

Test(srtp, key_layout_matches_libsrtp2)
{
    for (size_t i = 0; i < NPROFS; i++) {
        const struct prof *p = &profs[i];
        uint8_t m[128];
        material(p, 10, m);
        /* rs_srtp_new first: it runs srtp_init for the whole process. */
        struct rs_srtp *c = session(p, 10, true), *s = session(p, 10, false);
        srtp_t client_out = direct(p, m, true, true), client_in = direct(p, m, true, false);
        srtp_t server_out = direct(p, m, false, true), server_in = direct(p, m, false, false);
        uint8_t pkt[CAP], buf[CAP];
        int n;
        size_t len;

        /* The client's key, applied by libsrtp2, is what the server session expects. */
        len = rtp_packet(pkt, 0xabcdef01, 42, 100);
        memcpy(buf, pkt, len);
        n = (int)len;
        cr_assert_eq(srtp_protect(client_out, buf, &n), srtp_err_status_ok);
        cr_assert_eq((size_t)n, len + p->rtp_tag, "%s", name(p));
        size_t got = (size_t)n;
        cr_assert_eq(rs_srtp_unprotect(s, buf, &got), RS_SRTP_OK, "%s: client key", name(p));
        cr_assert_arr_eq(buf, pkt, len);

        /* And what the rs_srtp client sends, libsrtp2 opens with the client's key. */
        len = rtp_packet(pkt, 0xabcdef02, 43, 100);
        memcpy(buf, pkt, len);
        got = len;
        cr_assert_eq(rs_srtp_protect(c, buf, &got, sizeof(buf)), RS_SRTP_OK);
        n = (int)got;
        cr_assert_eq(srtp_unprotect(client_in, buf, &n), srtp_err_status_ok, "%s", name(p));
        cr_assert_arr_eq(buf, pkt, len);

        /* Server direction, RTCP this time. */
        len = rtcp_sr(pkt, 0xabcdef03, 0x33);
        memcpy(buf, pkt, len);
        n = (int)len;
        cr_assert_eq(srtp_protect_rtcp(server_out, buf, &n), srtp_err_status_ok);
        got = (size_t)n;
        cr_assert_eq(rs_srtp_unprotect(c, buf, &got), RS_SRTP_OK, "%s: server key", name(p));
        cr_assert_arr_eq(buf, pkt, len);

        len = rtcp_sr(pkt, 0xabcdef04, 0x44);
        memcpy(buf, pkt, len);
        got = len;
        cr_assert_eq(rs_srtp_protect(s, buf, &got, sizeof(buf)), RS_SRTP_OK);
        n = (int)got;
        cr_assert_eq(srtp_unprotect_rtcp(server_in, buf, &n), srtp_err_status_ok, "%s", name(p));
        cr_assert_arr_eq(buf, pkt, len);

        /* The other role's key does not open it: the halves are not interchangeable. */
        len = rtp_packet(pkt, 0xabcdef05, 44, 100);
        memcpy(buf, pkt, len);
        n = (int)len;
        cr_assert_eq(srtp_protect(server_out, buf, &n), srtp_err_status_ok);
        got = (size_t)n;
        cr_assert_eq(rs_srtp_unprotect(s, buf, &got), RS_SRTP_AUTH_FAIL, "%s", name(p));

        srtp_dealloc(client_out);
        srtp_dealloc(client_in);
        srtp_dealloc(server_out);
        srtp_dealloc(server_in);
        rs_srtp_free(c);
        rs_srtp_free(s);
    }
}

/* ---- profiles, demux, classification ----------------------------------------------------- */

Test(srtp, keying_length)
{
    cr_assert_eq(rs_srtp_keying_length(RS_SRTP_AES128_CM_SHA1_80), 60);
    cr_assert_eq(rs_srtp_keying_length(RS_SRTP_AES128_CM_SHA1_32), 60);
    cr_assert_eq(rs_srtp_keying_length(RS_SRTP_AEAD_AES_128_GCM), 56);
    cr_assert_eq(rs_srtp_keying_length(RS_SRTP_AEAD_AES_256_GCM), 88);
    cr_assert_eq(rs_srtp_keying_length(0x0005), 0);
    cr_assert_eq(rs_srtp_keying_length(0), 0);
}

Test(srtp, profile_names)
{
    cr_assert_str_eq(rs_srtp_profile_name(0x0001), "SRTP_AES128_CM_SHA1_80");
    cr_assert_str_eq(rs_srtp_profile_name(0x0002), "SRTP_AES128_CM_SHA1_32");
    cr_assert_str_eq(rs_srtp_profile_name(0x0007), "SRTP_AEAD_AES_128_GCM");
    cr_assert_str_eq(rs_srtp_profile_name(0x0008), "SRTP_AEAD_AES_256_GCM");
    cr_assert_null(rs_srtp_profile_name(0x0005));
}

Test(srtp, new_rejects)
{
    uint8_t m[128] = {0};
    char err[128] = "";
    cr_assert_null(rs_srtp_new(0x0005, m, 60, true, err, sizeof(err)));
    cr_assert_neq(err[0], 0, "unsupported profile needs a message");
    err[0] = 0;
    cr_assert_null(rs_srtp_new(RS_SRTP_AES128_CM_SHA1_80, m, 56, true, err, sizeof(err)));
    cr_assert_neq(err[0], 0, "short material needs a message");
    err[0] = 0;
    cr_assert_null(rs_srtp_new(RS_SRTP_AEAD_AES_128_GCM, m, 60, false, err, sizeof(err)));
    cr_assert_neq(err[0], 0);
    rs_srtp_free(NULL);
}

Test(srtp, demux_boundaries)
{
    static const struct {
        uint8_t b;
        enum rs_demux want;
    } t[] = {
        {0, RS_DEMUX_STUN},  {3, RS_DEMUX_STUN},  {4, RS_DEMUX_OTHER},   {19, RS_DEMUX_OTHER},
        {20, RS_DEMUX_DTLS}, {63, RS_DEMUX_DTLS}, {64, RS_DEMUX_OTHER},  {127, RS_DEMUX_OTHER},
        {128, RS_DEMUX_RTP}, {191, RS_DEMUX_RTP}, {192, RS_DEMUX_OTHER}, {255, RS_DEMUX_OTHER},
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
        cr_assert_eq(rs_demux(&t[i].b, 1), t[i].want, "first byte %u", t[i].b);
    uint8_t b = 22;
    cr_assert_eq(rs_demux(&b, 0), RS_DEMUX_OTHER, "empty datagram");
}

Test(srtp, rtcp_or_rtp)
{
    uint8_t b[12] = {0x80};
    static const struct {
        uint8_t second;
        bool rtcp;
    } t[] = {
        {200, true}, {201, true}, {192, true},  {223, true},
        {0, false},  {96, false}, {111, false}, {0x80 | 96, false}, /* marker bit + PT 96 is 224 */
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        b[1] = t[i].second;
        cr_assert_eq(rs_rtp_is_rtcp(b, sizeof(b)), t[i].rtcp, "second byte %u", t[i].second);
    }
    b[1] = 200;
    b[0] = 0x40; /* version 1 */
    cr_assert_not(rs_rtp_is_rtcp(b, sizeof(b)));
    b[0] = 0x80;
    cr_assert_not(rs_rtp_is_rtcp(b, 1));
}

Test(srtp, status_strings)
{
    for (int st = RS_SRTP_OK; st <= RS_SRTP_ERROR; st++)
        cr_assert_not_null(rs_srtp_status_str((enum rs_srtp_status)st));
}
