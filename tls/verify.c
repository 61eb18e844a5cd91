/* The client's check of the server's names (verify.h). wolfSSL's own check
 * (wolfSSL_check_domain_name) compares an address with DNS SANs and the CN as text, and
 * lets "*.x.y" match ".x.y", so the names are checked here instead. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <wolfssl/wolfcrypt/asn.h>

#include "verify.h"

/* ALWAYS_VERIFY_CB: the callback also runs for a good chain; IP_ALT_NAME: wolfSSL keeps the
 * iPAddress SANs (cmake/wolfssl.cmake). */
#if !defined(WOLFSSL_ALWAYS_VERIFY_CB) || !defined(WOLFSSL_IP_ALT_NAME)
#error "wolfSSL without WOLFSSL_ALWAYS_VERIFY_CB or WOLFSSL_IP_ALT_NAME: names go unchecked"
#endif

static void set_ip(struct rs_tls_expect *e, const IPaddr *a)
{
    e->ip_len = IPaddr_IsV4(a) ? 4 : 16;
    memcpy(e->ip, a->b + 16 - e->ip_len, e->ip_len);
}

void rs_tls_expect_server(WOLFSSL *ssl, struct rs_tls_expect *e, const char *server_name,
                          const IPaddr *peer, IInstanceLog *log, enum LogFlags flag,
                          const void *sock)
{
    memset(e, 0, sizeof(*e));
    e->log = log;
    e->flag = flag;
    e->sock = sock;
    IPaddr a;
    if (server_name && *server_name) {
        if (IPaddr_FromString(&a, server_name)) {
            set_ip(e, &a);
        } else {
            e->dns = server_name;
            wolfSSL_UseSNI(ssl, WOLFSSL_SNI_HOST_NAME, server_name,
                           (unsigned short)strlen(server_name));
        }
    } else if (peer) {
        set_ip(e, peer);
        e->connected = true;
    }
    wolfSSL_SetCertCbCtx(ssl, e);
}

/* A dNSName SAN (or CN) of len bytes, not NUL-terminated, against the expected name. */
static bool dns_match(const char *pat, int len, const char *host)
{
    if (!pat || len <= 0 || memchr(pat, '\0', (size_t)len) || strchr(host, '*'))
        return false;
    size_t n = (size_t)len;
    if (n > 2 && pat[0] == '*' && pat[1] == '.') {
        const char *rest = pat + 1, *dot = strchr(host, '.'); /* ".example.com" */
        if (!memchr(rest + 1, '.', n - 2) || memchr(rest, '*', n - 1))
            return false; /* "*.com", or another '*' */
        return dot && dot != host && strlen(dot) == n - 1 && strncasecmp(dot, rest, n - 1) == 0;
    }
    return strlen(host) == n && strncasecmp(host, pat, n) == 0;
}

static bool names_match(const struct rs_tls_expect *e, const DecodedCert *dc)
{
    bool dns_san = false;
    for (const DNS_entry *n = dc->altNames; n; n = n->next) {
        if (n->type == ASN_IP_TYPE && e->ip_len && n->len == e->ip_len &&
            memcmp(n->name, e->ip, e->ip_len) == 0)
            return true;
        if (n->type == ASN_DNS_TYPE) {
            dns_san = true;
            if (e->dns && dns_match(n->name, n->len, e->dns))
                return true;
        }
    }
    return e->dns && !dns_san && dns_match(dc->subjectCN, dc->subjectCNLen, e->dns);
}

/* What the certificate names, for the log: "DNS:a, IP:1.2.3.4, CN:b". */
static void describe(const DecodedCert *dc, char *out, size_t size)
{
    size_t o = 0;
    out[0] = '\0';
    for (const DNS_entry *n = dc->altNames; n && o < size; n = n->next) {
        char ip[INET6_ADDRSTRLEN] = "?";
        if (n->type == ASN_IP_TYPE && (n->len == 4 || n->len == 16))
            inet_ntop(n->len == 4 ? AF_INET : AF_INET6, n->name, ip, sizeof(ip));
        if (n->type == ASN_IP_TYPE)
            o += (size_t)snprintf(out + o, size - o, "%sIP:%s", o ? ", " : "", ip);
        else if (n->type == ASN_DNS_TYPE)
            o += (size_t)snprintf(out + o, size - o, "%sDNS:%.*s", o ? ", " : "", n->len, n->name);
    }
    if (o < size && dc->subjectCN && dc->subjectCNLen > 0)
        snprintf(out + o, size - o, "%sCN:%.*s", o ? ", " : "", dc->subjectCNLen, dc->subjectCN);
}

static void log_mismatch(const struct rs_tls_expect *e, const DecodedCert *dc, bool parsed)
{
    if (!IInstanceLog_LogFlagSet(e->log, e->flag))
        return;
    char want[INET6_ADDRSTRLEN + 32] = "", has[512] = "the certificate cannot be parsed";
    if (e->ip_len)
        inet_ntop(e->ip_len == 4 ? AF_INET : AF_INET6, e->ip, want, sizeof(want));
    if (parsed)
        describe(dc, has, sizeof(has));
    IInstanceLog_Log(e->log, e->flag,
                     "%s %p: name mismatch: the server's certificate (%s) is not for %s%s%s",
                     e->flag == LOG_DTLS ? "dtls" : "tls", e->sock, has[0] ? has : "no names",
                     e->dns      ? e->dns
                     : e->ip_len ? want
                                 : "anything known (no serverName, no IP address)",
                     e->connected ? ", the address connected to" : "",
                     e->dns || !e->ip_len ? "" : " (an IP SAN is needed)");
}

int rs_tls_verify_server(int preverify, WOLFSSL_X509_STORE_CTX *store)
{
    if (!preverify || store->error_depth != 0)
        return preverify; /* the chain's verdict, and the CAs' certificates name no server */
    struct rs_tls_expect *e = store->userCtx;
    if (!e || store->totalCerts < 1 || !store->certs)
        return 0;
    DecodedCert *dc = malloc(sizeof(*dc));
    if (!dc)
        return 0;
    wc_InitDecodedCert(dc, store->certs[0].buffer, store->certs[0].length, NULL);
    bool parsed = wc_ParseCert(dc, CERT_TYPE, NO_VERIFY, NULL) == 0;
    bool ok = parsed && names_match(e, dc);
    if (!ok)
        log_mismatch(e, dc, parsed);
    wc_FreeDecodedCert(dc);
    free(dc);
    return ok;
}
