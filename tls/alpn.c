#include <string.h>

#include "alpn.h"

/* A bounds-checked reader over the ClientHello. */
struct rd {
    const uint8_t *p;
    size_t left;
    bool bad;
};

static size_t take(struct rd *r, size_t n)
{
    if (r->bad || r->left < n) {
        r->bad = true;
        return 0;
    }
    size_t v = 0;
    for (size_t i = 0; i < n; i++)
        v = (v << 8) | r->p[i];
    r->p += n;
    r->left -= n;
    return v;
}

static void skip(struct rd *r, size_t n)
{
    if (r->bad || r->left < n) {
        r->bad = true;
        return;
    }
    r->p += n;
    r->left -= n;
}

/* The client's protocol list (length-prefixed names), or NULL. */
static const uint8_t *find_alpn(struct rd *r, size_t *list_len)
{
    skip(r, 2 + 32);          /* legacy_version, random */
    skip(r, take(r, 1));      /* session id */
    skip(r, take(r, 2));      /* cipher suites */
    skip(r, take(r, 1));      /* compression methods */
    if (r->bad || r->left == 0)
        return NULL;
    size_t ext_total = take(r, 2);
    struct rd ext = {r->p, ext_total <= r->left ? ext_total : 0, ext_total > r->left};
    while (!ext.bad && ext.left >= 4) {
        size_t type = take(&ext, 2), len = take(&ext, 2);
        if (ext.bad || len > ext.left)
            return NULL;
        if (type == 16) { /* application_layer_protocol_negotiation */
            struct rd a = {ext.p, len, false};
            size_t n = take(&a, 2);
            if (a.bad || n > a.left)
                return NULL;
            *list_len = n;
            return a.p;
        }
        skip(&ext, len);
    }
    return NULL;
}

enum rs_alpn_scan rs_alpn_choose(const uint8_t *data, size_t len, char *const *ours, char *out,
                                 size_t outlen)
{
    if (len < 5)
        return RS_ALPN_MORE;
    if (data[0] != 22) /* handshake record */
        return RS_ALPN_NOT_TLS;
    size_t rec_len = ((size_t)data[3] << 8) | data[4];
    if (len < 5 + rec_len)
        return RS_ALPN_MORE;
    struct rd r = {data + 5, rec_len, false};
    if (take(&r, 1) != 1) /* client_hello */
        return RS_ALPN_NOT_TLS;
    size_t hs_len = take(&r, 3);
    if (r.bad || hs_len > r.left)
        return RS_ALPN_NONE; /* spans records: rare; fall back to wolfSSL's choice */
    r.left = hs_len;
    size_t list_len = 0;
    const uint8_t *list = find_alpn(&r, &list_len);
    if (!list)
        return RS_ALPN_NONE;
    for (char *const *p = ours; p && *p; p++) {
        size_t n = strlen(*p);
        for (size_t i = 0; i < list_len;) {
            size_t l = list[i];
            if (i + 1 + l > list_len)
                break;
            if (l == n && memcmp(list + i + 1, *p, n) == 0 && n < outlen) {
                memcpy(out, *p, n + 1);
                return RS_ALPN_CHOSEN;
            }
            i += 1 + l;
        }
    }
    return RS_ALPN_NONE;
}
