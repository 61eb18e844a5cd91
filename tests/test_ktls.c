/* Kernel TLS offload (ISocketContext_EnableKernelTLS).
 *
 * The same tests run on every kernel: where the kernel has the tls ULP (Debian 12's in
 * the VM of scripts/vm-test, which sets RINGSOCK_EXPECT_KTLS=1) they assert that both
 * directions are offloaded; where it has none (this machine) that the socket stays in
 * user space with the same semantics. The peers are OpenSSL's libssl (in a thread) and
 * ringsock itself. The key hand-over is checked everywhere: a record sealed by wolfSSL is
 * opened with the keys, IV and sequence number ringsock would give the kernel. */
#include "harness.h" /* first: netdb.h, which OpenSSL includes, defines h_addr */

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/wolfcrypt/aes.h>
#include <wolfssl/wolfcrypt/chacha20_poly1305.h>

#include "ktls.h"

static struct h_env env;
static ISocketProvider *tls;
static ISocketContext *sctx, *cctx;
static char *cert_pem, *key_pem; /* P-256, CN localhost, self-signed: for the OpenSSL server */

/* ---- the kernel ----------------------------------------------------------------------- */

static unsigned expected; /* KTLS_TX|KTLS_RX where the kernel can, else 0 */
static bool ulp;

/* ---- a certificate for the OpenSSL and wolfSSL servers ---------------------------------- */

static char *bio_text(BIO *b)
{
    char *p;
    long n = BIO_get_mem_data(b, &p);
    char *s = malloc((size_t)n + 1);
    memcpy(s, p, (size_t)n);
    s[n] = '\0';
    BIO_free(b);
    return s;
}

static void make_cert(void)
{
    EVP_PKEY *k = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    cr_assert(k && x);
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), -60);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, k);
    X509_NAME *n = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)"localhost", -1, -1,
                               0);
    X509_set_issuer_name(x, n);
    cr_assert(X509_sign(x, k, EVP_sha256()) > 0);
    BIO *cb = BIO_new(BIO_s_mem()), *kb = BIO_new(BIO_s_mem());
    PEM_write_bio_X509(cb, x);
    PEM_write_bio_PrivateKey(kb, k, NULL, NULL, 0, NULL, NULL);
    cert_pem = bio_text(cb);
    key_pem = bio_text(kb);
    X509_free(x);
    EVP_PKEY_free(k);
}

static uint16_t tls_listen_port(struct h_sock *l)
{
    return h_listen_on(&env, tls, sctx, l, "127.0.0.1");
}

static void setup(void)
{
    h_env_init(&env);
    tls = CreateTLSSocketProvider(env.tcp);
    sctx = ISocketProvider_CreateSocketContext(tls, env.log);
    cctx = ISocketProvider_CreateSocketContext(tls, env.log);
    ISocketContext_SetVerifyPeer(cctx, false); /* the peers' certificates are self-signed */
    ISocketContext_EnableKernelTLS(sctx, true);
    ISocketContext_EnableKernelTLS(cctx, true);
    ulp = h_kernel_has_tls_ulp();
    expected = ulp ? KTLS_TX | KTLS_RX : 0;
    if (getenv("RINGSOCK_EXPECT_KTLS"))
        cr_assert(ulp, "RINGSOCK_EXPECT_KTLS is set but this kernel has no tls ULP");
    make_cert();
}

static void teardown(void)
{
    ISocketContext_Delete(sctx);
    ISocketContext_Delete(cctx);
    ISocketProvider_Delete(tls);
    h_env_fini(&env);
    free(cert_pem);
    free(key_pem);
}

TestSuite(ktls, .init = setup, .fini = teardown, .timeout = 120);

/* ---- an OpenSSL peer in a thread ---------------------------------------------------------- */

enum after {
    AFTER_WAIT_CLOSE_NOTIFY, /* read until ringsock's close_notify */
    AFTER_CLOSE_NOTIFY,      /* send close_notify, then read until EOF */
    AFTER_KEY_UPDATE,        /* KeyUpdate, then one more echo */
    AFTER_ALERT,             /* a fatal handshake_failure alert, sealed with its own keys */
    AFTER_GARBAGE,           /* an application data record that does not authenticate */
};

struct peer {
    bool server; /* accept on lfd; else connect to port */
    int lfd;
    uint16_t port;
    bool tls12;
    const char *suite; /* TLS 1.3 ciphersuite or TLS 1.2 cipher list */
    size_t total;      /* client: bytes echoed through ringsock */
    enum after after;
    atomic_bool go;   /* set by the test once it has looked at the ringsock socket */
    atomic_int stage; /* 1: echoed, 2: done */
    bool ok;
    bool got_close_notify;
    bool key_update_echoed;
    char err[256];
    char cipher[64];
    uint8_t secret[32]; /* client: CLIENT_TRAFFIC_SECRET_0 (TLS 1.3, SHA-256 suites) */
    pthread_t thread;
};

static bool peer_fail(struct peer *p, const char *what, SSL *ssl, int r)
{
    snprintf(p->err, sizeof(p->err), "%s: SSL error %d, errno %d, %s", what,
             ssl ? SSL_get_error(ssl, r) : 0, errno, ERR_error_string(ERR_get_error(), NULL));
    return false;
}

static void wait_io(int fd, SSL *ssl, int r)
{
    int e = SSL_get_error(ssl, r);
    struct pollfd pf = {fd, e == SSL_ERROR_WANT_WRITE ? POLLOUT : POLLIN, 0};
    poll(&pf, 1, 100);
}

/* Sends total bytes and reads them back, interleaved (non-blocking), byte-exact. */
static bool echo_through(struct peer *p, SSL *ssl, int fd, size_t total, uint32_t seed)
{
    uint8_t *out = malloc(total), *in = malloc(total);
    h_fill(out, total, seed);
    size_t w = 0, r = 0;
    int idle = 0;
    bool ok = true;
    while (r < total && ok) {
        bool moved = false;
        if (w < total) {
            int n = SSL_write(ssl, out + w, (int)(total - w < 65536 ? total - w : 65536));
            if (n > 0) {
                w += (size_t)n;
                moved = true;
            } else if (SSL_get_error(ssl, n) != SSL_ERROR_WANT_WRITE &&
                       SSL_get_error(ssl, n) != SSL_ERROR_WANT_READ) {
                ok = peer_fail(p, "SSL_write", ssl, n);
                break;
            }
        }
        int n = SSL_read(ssl, in + r, (int)(total - r));
        if (n > 0) {
            r += (size_t)n;
            moved = true;
        } else if (SSL_get_error(ssl, n) != SSL_ERROR_WANT_READ &&
                   SSL_get_error(ssl, n) != SSL_ERROR_WANT_WRITE) {
            ok = peer_fail(p, "SSL_read", ssl, n);
            break;
        }
        if (!moved) {
            if (++idle > 600) { /* 60 s without progress */
                snprintf(p->err, sizeof(p->err), "stalled at %zu written, %zu read", w, r);
                ok = false;
            }
            wait_io(fd, ssl, n);
        } else {
            idle = 0;
        }
    }
    if (ok && memcmp(in, out, total) != 0) {
        size_t i = 0;
        while (in[i] == out[i])
            i++;
        snprintf(p->err, sizeof(p->err), "echo differs at byte %zu of %zu", i, total);
        ok = false;
    }
    free(out);
    free(in);
    return ok;
}

/* Reads until the peer's close_notify (true) or EOF/error (false). */
static bool read_to_end(SSL *ssl, int fd)
{
    uint8_t b[4096];
    for (int i = 0; i < 600; i++) {
        int n = SSL_read(ssl, b, sizeof(b));
        if (n > 0)
            continue;
        int e = SSL_get_error(ssl, n);
        if (e == SSL_ERROR_ZERO_RETURN)
            return true;
        if (e != SSL_ERROR_WANT_READ)
            return false;
        wait_io(fd, ssl, n);
    }
    return false;
}

/* The server side: echoes until close_notify or EOF, then answers close_notify. */
static bool serve_echo(struct peer *p, SSL *ssl, int fd)
{
    uint8_t b[16384];
    for (int idle = 0; idle < 600;) {
        int n = SSL_read(ssl, b, sizeof(b));
        if (n > 0) {
            idle = 0;
            for (int off = 0; off < n;) {
                int m = SSL_write(ssl, b + off, n - off);
                if (m > 0)
                    off += m;
                else if (SSL_get_error(ssl, m) == SSL_ERROR_WANT_WRITE ||
                         SSL_get_error(ssl, m) == SSL_ERROR_WANT_READ)
                    wait_io(fd, ssl, m);
                else
                    return peer_fail(p, "SSL_write", ssl, m);
            }
            continue;
        }
        int e = SSL_get_error(ssl, n);
        if (e == SSL_ERROR_ZERO_RETURN) {
            p->got_close_notify = true;
            SSL_shutdown(ssl);
            return true;
        }
        if (e != SSL_ERROR_WANT_READ)
            return peer_fail(p, "SSL_read", ssl, n);
        idle++;
        wait_io(fd, ssl, n);
    }
    snprintf(p->err, sizeof(p->err), "idle for 60 s");
    return false;
}

static void keylog(const SSL *ssl, const char *line)
{
    struct peer *p = SSL_get_app_data(ssl);
    const char *tag = "CLIENT_TRAFFIC_SECRET_0 ";
    if (strncmp(line, tag, strlen(tag)) != 0)
        return;
    const char *hex = strchr(line + strlen(tag), ' ') + 1;
    for (size_t i = 0; i < sizeof(p->secret); i++)
        sscanf(hex + 2 * i, "%2hhx", &p->secret[i]);
}

/* RFC 8446 7.1 HKDF-Expand-Label(secret, label, "", len) with SHA-256. (These run in the
 * peer's thread: failures are returned, not asserted.) */
static bool expand_label(const uint8_t secret[32], const char *label, uint8_t *out, size_t len)
{
    uint8_t info[64];
    size_t n = 0;
    info[n++] = 0;
    info[n++] = (uint8_t)len;
    info[n++] = (uint8_t)(6 + strlen(label));
    memcpy(info + n, "tls13 ", 6);
    n += 6;
    memcpy(info + n, label, strlen(label));
    n += strlen(label);
    info[n++] = 0;
    EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_id(EVP_PKEY_HKDF, NULL);
    bool ok = c && EVP_PKEY_derive_init(c) > 0 &&
              EVP_PKEY_CTX_set_hkdf_mode(c, EVP_PKEY_HKDEF_MODE_EXPAND_ONLY) > 0 &&
              EVP_PKEY_CTX_set_hkdf_md(c, EVP_sha256()) > 0 &&
              EVP_PKEY_CTX_set1_hkdf_key(c, secret, 32) > 0 &&
              EVP_PKEY_CTX_add1_hkdf_info(c, info, (int)n) > 0 && EVP_PKEY_derive(c, out, &len) > 0;
    EVP_PKEY_CTX_free(c);
    return ok;
}

/* Writes, beside OpenSSL, the client's record number seq of TLS 1.3 AES-128-GCM: a fatal
 * handshake_failure alert, or (garbage) the same with a tag that cannot match. */
static bool write_sealed_alert(struct peer *p, int fd, uint64_t seq, bool garbage)
{
    uint8_t key[16], iv[12];
    if (!expand_label(p->secret, "key", key, sizeof(key)) ||
        !expand_label(p->secret, "iv", iv, sizeof(iv)))
        return peer_fail(p, "HKDF-Expand-Label", NULL, 0);
    for (int i = 0; i < 8; i++)
        iv[4 + i] ^= (uint8_t)(seq >> (56 - 8 * i));
    const uint8_t inner[3] = {2, 40, 21}; /* level fatal, handshake_failure; type alert */
    uint8_t rec[5 + sizeof(inner) + 16] = {23, 3, 3, 0, sizeof(inner) + 16};
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    int n, m;
    bool ok = c && EVP_EncryptInit_ex(c, EVP_aes_128_gcm(), NULL, key, iv) > 0 &&
              EVP_EncryptUpdate(c, NULL, &n, rec, 5) > 0 &&
              EVP_EncryptUpdate(c, rec + 5, &n, inner, sizeof(inner)) > 0 &&
              EVP_EncryptFinal_ex(c, rec + 5 + n, &m) > 0 &&
              EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, 16, rec + 5 + sizeof(inner)) > 0;
    EVP_CIPHER_CTX_free(c);
    if (!ok)
        return peer_fail(p, "AES-128-GCM", NULL, 0);
    if (garbage)
        rec[sizeof(rec) - 1] ^= 1;
    return write(fd, rec, sizeof(rec)) == (ssize_t)sizeof(rec) || peer_fail(p, "write", NULL, 0);
}

/* After a record written beside OpenSSL: no more TLS, reads until ringsock closes. */
static void drain_raw(int fd)
{
    shutdown(fd, SHUT_WR);
    uint8_t b[4096];
    for (int i = 0; i < 200; i++) {
        struct pollfd pf = {fd, POLLIN, 0};
        poll(&pf, 1, 100);
        ssize_t n = read(fd, b, sizeof(b));
        if (n == 0 || (n < 0 && errno != EAGAIN))
            return;
    }
}

static void *peer_main(void *arg)
{
    struct peer *p = arg;
    SSL_CTX *x = SSL_CTX_new(p->server ? TLS_server_method() : TLS_client_method());
    SSL_CTX_set_min_proto_version(x, TLS1_2_VERSION);
    SSL_CTX_set_max_proto_version(x, p->tls12 ? TLS1_2_VERSION : TLS1_3_VERSION);
    if (p->suite) {
        if (p->tls12)
            SSL_CTX_set_cipher_list(x, p->suite);
        else
            SSL_CTX_set_ciphersuites(x, p->suite);
    }
    SSL_CTX_set_mode(x, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    if (p->server) {
        BIO *cb = BIO_new_mem_buf(cert_pem, -1), *kb = BIO_new_mem_buf(key_pem, -1);
        X509 *c = PEM_read_bio_X509(cb, NULL, NULL, NULL);
        EVP_PKEY *k = PEM_read_bio_PrivateKey(kb, NULL, NULL, NULL);
        SSL_CTX_use_certificate(x, c);
        SSL_CTX_use_PrivateKey(x, k);
        X509_free(c);
        EVP_PKEY_free(k);
        BIO_free(cb);
        BIO_free(kb);
    }
    int fd = p->server ? accept(p->lfd, NULL, NULL) : h_raw_connect("127.0.0.1", p->port);
    SSL_CTX_set_keylog_callback(x, keylog);
    SSL *ssl = SSL_new(x);
    SSL_set_app_data(ssl, p);
    SSL_set_fd(ssl, fd);
    int r = p->server ? SSL_accept(ssl) : SSL_connect(ssl);
    if (r != 1) {
        peer_fail(p, "handshake", ssl, r);
        goto out;
    }
    snprintf(p->cipher, sizeof(p->cipher), "%s %s", SSL_get_version(ssl), SSL_get_cipher(ssl));
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    if (p->server) {
        p->ok = serve_echo(p, ssl, fd);
        goto out;
    }
    if (!echo_through(p, ssl, fd, p->total, 1))
        goto out;
    atomic_store(&p->stage, 1);
    while (!atomic_load(&p->go))
        usleep(1000);
    switch (p->after) {
    case AFTER_WAIT_CLOSE_NOTIFY:
        p->got_close_notify = read_to_end(ssl, fd);
        p->ok = true;
        break;
    case AFTER_CLOSE_NOTIFY:
        SSL_shutdown(ssl);
        p->ok = true;
        break;
    case AFTER_KEY_UPDATE:
        SSL_key_update(ssl, SSL_KEY_UPDATE_NOT_REQUESTED);
        p->key_update_echoed = echo_through(p, ssl, fd, 1000, 2);
        p->ok = true;
        break;
    case AFTER_ALERT:
    case AFTER_GARBAGE:
        /* echo_through sent total < 16 KiB in one SSL_write: one record, number 0 */
        p->ok = write_sealed_alert(p, fd, 1, p->after == AFTER_GARBAGE);
        drain_raw(fd);
        break;
    }
out:
    atomic_store(&p->stage, 2);
    SSL_free(ssl);
    SSL_CTX_free(x);
    if (fd >= 0)
        close(fd);
    return NULL;
}

static void peer_start(struct peer *p)
{
    cr_assert(pthread_create(&p->thread, NULL, peer_main, p) == 0);
}

/* Runs the loop until the peer thread reaches stage (1: echoed, 2: done). */
static void peer_wait(struct peer *p, int stage)
{
    bool ok = false;
    for (int i = 0; i < 6000 && !ok; i++) {
        h_run_for(&env, 10);
        ok = atomic_load(&p->stage) >= stage;
    }
    cr_assert(ok, "the OpenSSL peer did not get to stage %d: %s\n%s", stage, p->err, h_logs(&env));
}

static void peer_join(struct peer *p)
{
    atomic_store(&p->go, true);
    peer_wait(p, 2);
    pthread_join(p->thread, NULL);
}

/* ---- ringsock server, OpenSSL client ------------------------------------------------------ */

/* An OpenSSL client echoes total bytes through a ringsock TLS echo server; returns the
 * server's connection, checked for the offload while the connection is open. */
static struct h_sock *openssl_client_echo(struct peer *p, struct h_sock *l)
{
    l->echo = true;
    p->port = tls_listen_port(l);
    peer_start(p);
    peer_wait(p, 1);
    struct h_sock *c = h_wait_accepted(&env, l, 1, 5000);
    cr_assert_not_null(c);
    cr_assert_eq(ISocket_GetKernelTLS(c->sock), expected, "%s: offload %u, expected %u\n%s",
                 p->cipher, ISocket_GetKernelTLS(c->sock), expected, h_logs(&env));
    return c;
}

static void echo_case(bool tls12, const char *suite, const char *want, size_t total)
{
    struct h_sock *l = h_sock_new(&env);
    struct peer p = {.tls12 = tls12, .suite = suite, .total = total, .after = AFTER_CLOSE_NOTIFY};
    struct h_sock *c = openssl_client_echo(&p, l);
    cr_assert(strstr(p.cipher, want), "negotiated %s, wanted %s", p.cipher, want);
    peer_join(&p);
    cr_assert(p.ok, "%s", p.err);
    /* the peer's close_notify is a clean end */
    cr_assert(h_wait_count(&env, c, H_SHUTDOWN, 1, 5000), "%s", h_dump(c));
    cr_assert_eq(h_last(c, H_SHUTDOWN)->reason, SOCKET_SHUTDOWN_BY_PEER, "%s\n%s", h_dump(c),
                 h_logs(&env));
    h_delete_accepted(l);
    h_sock_free(l);
}

Test(ktls, tls13_aes128gcm_echoes_64_mib_byte_exact_with_openssl_client)
{
    echo_case(false, "TLS_AES_128_GCM_SHA256", "TLS_AES_128_GCM_SHA256", 64u << 20);
}

Test(ktls, tls13_aes256gcm_with_openssl_client)
{
    echo_case(false, "TLS_AES_256_GCM_SHA384", "TLS_AES_256_GCM_SHA384", 1u << 20);
}

Test(ktls, tls13_chacha20_with_openssl_client)
{
    echo_case(false, "TLS_CHACHA20_POLY1305_SHA256", "TLS_CHACHA20_POLY1305_SHA256", 1u << 20);
}

Test(ktls, tls12_aes128gcm_with_openssl_client)
{
    echo_case(true, "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES128-GCM-SHA256", 1u << 20);
}

Test(ktls, tls12_aes256gcm_with_openssl_client)
{
    echo_case(true, "ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-ECDSA-AES256-GCM-SHA384", 1u << 20);
}

Test(ktls, tls12_chacha20_with_openssl_client)
{
    echo_case(true, "ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-ECDSA-CHACHA20-POLY1305", 1u << 20);
}

Test(ktls, shutdown_sends_close_notify_the_peer_reads)
{
    struct h_sock *l = h_sock_new(&env);
    struct peer p = {.total = 100000, .after = AFTER_WAIT_CLOSE_NOTIFY};
    struct h_sock *c = openssl_client_echo(&p, l);
    CALL(ISocket_Shutdown(c->sock));
    peer_join(&p);
    cr_assert(p.got_close_notify, "the peer saw no close_notify: %s\n%s", p.err, h_logs(&env));
    cr_assert(h_wait_count(&env, c, H_SHUTDOWN, 1, 5000), "%s", h_dump(c));
    cr_assert_eq(h_last(c, H_SHUTDOWN)->reason, SOCKET_SHUTDOWN_NORMAL, "%s", h_dump(c));
    h_delete_accepted(l);
    h_sock_free(l);
}

Test(ktls, key_update_from_the_peer)
{
    struct h_sock *l = h_sock_new(&env);
    IInstanceLog_SetLogFlags(env.log, LOG_TLS); /* the reason is logged under LOG_TLS */
    struct peer p = {.total = 10000, .after = AFTER_KEY_UPDATE};
    struct h_sock *c = openssl_client_echo(&p, l);
    peer_join(&p);
    if (expected & KTLS_RX) {
        /* Linux 6.1 cannot take new receive keys: the end is clean and says why */
        cr_assert(h_wait_count(&env, c, H_SHUTDOWN, 1, 5000), "%s", h_dump(c));
        cr_assert_eq(h_last(c, H_SHUTDOWN)->reason, SOCKET_LOST, "%s", h_dump(c));
        cr_assert(h_log_contains(&env, "KeyUpdate"), "%s", h_logs(&env));
        cr_assert(!p.key_update_echoed);
    } else {
        cr_assert(p.key_update_echoed, "user space follows the KeyUpdate: %s\n%s", p.err,
                  h_logs(&env));
    }
    h_delete_accepted(l);
    h_sock_free(l);
}

/* A record the peer seals beside OpenSSL (TLS 1.3 AES-128-GCM): a fatal alert ends the
 * connection as lost, with the alert logged; a record that does not authenticate
 * (EBADMSG from the kernel, a MAC failure in user space) ends it as lost too. */
static void sealed_record_case(enum after after, const char *kernel_says, const char *user_says)
{
    IInstanceLog_SetLogFlags(env.log, LOG_TLS);
    struct h_sock *l = h_sock_new(&env);
    struct peer p = {.suite = "TLS_AES_128_GCM_SHA256", .total = 1000, .after = after};
    struct h_sock *c = openssl_client_echo(&p, l);
    atomic_store(&p.go, true);
    cr_assert(h_wait_count(&env, c, H_SHUTDOWN, 1, 10000), "%s\n%s", h_dump(c), h_logs(&env));
    cr_assert_eq(h_last(c, H_SHUTDOWN)->reason, SOCKET_LOST, "%s\n%s", h_dump(c), h_logs(&env));
    const char *says = expected & KTLS_RX ? kernel_says : user_says;
    if (says)
        cr_assert(h_log_contains(&env, says), "no \"%s\" in\n%s", says, h_logs(&env));
    h_delete_accepted(l);
    peer_join(&p);
    cr_assert(p.ok, "%s", p.err);
    h_sock_free(l);
}

Test(ktls, fatal_alert_from_the_peer_ends_the_connection_as_lost)
{
    sealed_record_case(AFTER_ALERT, "alert 40 (level 2) from the peer", "received alert fatal");
}

Test(ktls, record_that_does_not_authenticate_ends_the_connection_as_lost)
{
    sealed_record_case(AFTER_GARBAGE, "the kernel refused a record: Bad message",
                       "Authentication check fail");
}

/* ---- ringsock client, OpenSSL server ------------------------------------------------------ */

static void client_case(bool tls12, const char *suite)
{
    uint16_t port = 0;
    struct peer p = {.server = true, .tls12 = tls12, .suite = suite};
    p.lfd = h_raw_listen("127.0.0.1", &port);
    peer_start(&p);
    struct h_sock *c = h_sock_new(&env);
    c->collect = c->sink = true;
    h_connect_on(&env, tls, cctx, c, port, NULL);
    cr_assert(h_wait_count(&env, c, H_CONNECT_COMPLETE, 1, 10000), "%s\n%s", h_dump(c),
              h_logs(&env));
    /* TLS 1.3: the server's session tickets arrive after the handshake and are consumed */
    size_t total = 300000;
    uint8_t *out = malloc(total);
    h_fill(out, total, 7);
    CALL(ISocket_Send(c->sock, out, total)); /* the harness's sink receives */
    for (int i = 0; i < 6000 && c->data_len < total; i++)
        h_run_for(&env, 5);
    cr_assert_eq(c->data_len, total, "%zu of %zu echoed\n%s", c->data_len, total, h_logs(&env));
    cr_assert(memcmp(c->data, out, total) == 0);
    cr_assert_eq(ISocket_GetKernelTLS(c->sock), expected, "%s\n%s", p.cipher, h_logs(&env));
    CALL(ISocket_Shutdown(c->sock));
    cr_assert(h_wait_count(&env, c, H_SHUTDOWN, 1, 5000), "%s", h_dump(c));
    cr_assert_eq(h_last(c, H_SHUTDOWN)->reason, SOCKET_SHUTDOWN_NORMAL, "%s", h_dump(c));
    peer_join(&p);
    cr_assert(p.ok && p.got_close_notify, "%s", p.err);
    close(p.lfd);
    free(out);
    h_sock_free(c);
}

Test(ktls, tls13_client_consumes_session_tickets_with_openssl_server)
{
    client_case(false, "TLS_AES_128_GCM_SHA256");
}

Test(ktls, tls12_client_with_openssl_server)
{
    client_case(true, "ECDHE-ECDSA-AES256-GCM-SHA384");
}

/* ---- the key hand-over, on any kernel ---------------------------------------------------- */

/* A wolfSSL client and server over two in-memory pipes. */
struct pipe {
    uint8_t b[1 << 16];
    size_t len;
};
struct mem_end {
    struct pipe *in, *out;
};

static int mem_recv(WOLFSSL *ssl, char *buf, int sz, void *ctx)
{
    (void)ssl;
    struct mem_end *e = ctx;
    if (e->in->len == 0)
        return WOLFSSL_CBIO_ERR_WANT_READ;
    size_t n = e->in->len < (size_t)sz ? e->in->len : (size_t)sz;
    memcpy(buf, e->in->b, n);
    memmove(e->in->b, e->in->b + n, e->in->len - n);
    e->in->len -= n;
    return (int)n;
}

static int mem_send(WOLFSSL *ssl, char *buf, int sz, void *ctx)
{
    (void)ssl;
    struct mem_end *e = ctx;
    cr_assert(e->out->len + (size_t)sz <= sizeof(e->out->b));
    memcpy(e->out->b + e->out->len, buf, (size_t)sz);
    e->out->len += (size_t)sz;
    return sz;
}

/* Opens one application-data record as the kernel would with these keys; returns the
 * plaintext length or -1 when authentication fails. */
static int open_record(const struct rs_ktls_keys *k, const uint8_t *rec, size_t len, uint8_t *out)
{
    bool tls13 = k->u.info.version == TLS_1_3_VERSION;
    uint8_t nonce[12], aad[13];
    const uint8_t *key, *salt = NULL, *iv, *seqp;
    size_t keylen, ivlen;
    switch (k->u.info.cipher_type) {
    case TLS_CIPHER_AES_GCM_128:
        key = k->u.gcm128.key, keylen = 16, salt = k->u.gcm128.salt, iv = k->u.gcm128.iv,
        seqp = k->u.gcm128.rec_seq, ivlen = 8;
        break;
    case TLS_CIPHER_AES_GCM_256:
        key = k->u.gcm256.key, keylen = 32, salt = k->u.gcm256.salt, iv = k->u.gcm256.iv,
        seqp = k->u.gcm256.rec_seq, ivlen = 8;
        break;
    default:
        key = k->u.chacha.key, keylen = 32, iv = k->u.chacha.iv, seqp = k->u.chacha.rec_seq,
        ivlen = 12;
    }
    const uint8_t *body = rec + 5;
    size_t body_len = len - 5;
    if (salt && !tls13) { /* TLS 1.2 AES-GCM: salt, then the record's explicit nonce */
        memcpy(nonce, salt, 4);
        memcpy(nonce + 4, body, 8);
        body += 8;
        body_len -= 8;
    } else { /* the static IV XOR the sequence number */
        if (salt)
            memcpy(nonce, salt, 4);
        memcpy(nonce + 12 - ivlen, iv, ivlen);
        for (int i = 0; i < 8; i++)
            nonce[4 + i] ^= seqp[i];
    }
    size_t ct_len = body_len - 16;
    size_t aad_len = 5;
    if (tls13) {
        memcpy(aad, rec, 5);
    } else {
        memcpy(aad, seqp, 8);
        memcpy(aad + 8, rec, 3);
        aad[11] = (uint8_t)(ct_len >> 8);
        aad[12] = (uint8_t)ct_len;
        aad_len = 13;
    }
    int rc;
    if (k->u.info.cipher_type == TLS_CIPHER_CHACHA20_POLY1305) {
        rc = wc_ChaCha20Poly1305_Decrypt(key, nonce, aad, (word32)aad_len, body, (word32)ct_len,
                                         body + ct_len, out);
    } else {
        Aes aes;
        wc_AesInit(&aes, NULL, INVALID_DEVID);
        wc_AesGcmSetKey(&aes, key, (word32)keylen);
        rc = wc_AesGcmDecrypt(&aes, out, body, (word32)ct_len, nonce, 12, body + ct_len, 16, aad,
                              (word32)aad_len);
        wc_AesFree(&aes);
    }
    return rc == 0 ? (int)ct_len : -1;
}

static uint64_t get64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

static const uint8_t *rec_seq(const struct rs_ktls_keys *k)
{
    switch (k->u.info.cipher_type) {
    case TLS_CIPHER_AES_GCM_128:
        return k->u.gcm128.rec_seq;
    case TLS_CIPHER_AES_GCM_256:
        return k->u.gcm256.rec_seq;
    default:
        return k->u.chacha.rec_seq;
    }
}

/* One direction: the sender's TX keys equal the receiver's RX keys, and open the record the
 * sender seals next; afterwards both sequence numbers moved on by one. */
static void check_direction(WOLFSSL *tx, WOLFSSL *rx, struct pipe *wire, int cipher, bool tls13)
{
    char why[160];
    struct rs_ktls_keys kt, kr, kt2;
    cr_assert(rs_ktls_keys(tx, true, &kt, why, sizeof(why)), "%s", why);
    cr_assert(rs_ktls_keys(rx, false, &kr, why, sizeof(why)), "%s", why);
    cr_assert_eq(kt.u.info.cipher_type, cipher);
    cr_assert_eq(kt.u.info.version, tls13 ? TLS_1_3_VERSION : TLS_1_2_VERSION);
    cr_assert_eq(kt.len, kr.len);
    if (tls13 || cipher == TLS_CIPHER_CHACHA20_POLY1305)
        cr_assert(memcmp(&kt.u, &kr.u, kt.len) == 0, "TX and RX keys differ");
    else /* TLS 1.2 AES-GCM: the explicit nonce is each side's own; the rest agrees */
        cr_assert(get64(rec_seq(&kt)) == get64(rec_seq(&kr)));

    static const char msg[] = "a record the kernel would open";
    cr_assert_eq(wolfSSL_write(tx, msg, sizeof(msg)), (int)sizeof(msg));
    uint8_t plain[256];
    int n = open_record(&kt, wire->b, wire->len, plain);
    cr_assert(n >= (int)sizeof(msg), "the record does not open with the handed-over keys");
    cr_assert(memcmp(plain, msg, sizeof(msg)) == 0);
    if (tls13) /* the inner content type follows the data */
        cr_assert_eq(plain[sizeof(msg)], RS_TLS_APPLICATION_DATA);
    char got[64];
    cr_assert_eq(wolfSSL_read(rx, got, sizeof(got)), (int)sizeof(msg));
    cr_assert(rs_ktls_keys(tx, true, &kt2, why, sizeof(why)));
    cr_assert_eq(get64(rec_seq(&kt2)), get64(rec_seq(&kt)) + 1);
    cr_assert(rs_ktls_keys(rx, false, &kr, why, sizeof(why)));
    cr_assert_eq(get64(rec_seq(&kr)), get64(rec_seq(&kt)) + 1);
}

static void handover_case(bool tls13, const char *suite, int cipher)
{
    static struct pipe c2s, s2c;
    c2s.len = s2c.len = 0;
    struct mem_end ce = {&s2c, &c2s}, se = {&c2s, &s2c};
    WOLFSSL_CTX *sx = wolfSSL_CTX_new(wolfSSLv23_server_method());
    WOLFSSL_CTX *cx =
        wolfSSL_CTX_new(tls13 ? wolfTLSv1_3_client_method() : wolfTLSv1_2_client_method());
    cr_assert(sx && cx);
    cr_assert_eq(wolfSSL_CTX_use_certificate_buffer(sx, (const unsigned char *)cert_pem,
                                                    (long)strlen(cert_pem), WOLFSSL_FILETYPE_PEM),
                 WOLFSSL_SUCCESS);
    cr_assert_eq(wolfSSL_CTX_use_PrivateKey_buffer(sx, (const unsigned char *)key_pem,
                                                   (long)strlen(key_pem), WOLFSSL_FILETYPE_PEM),
                 WOLFSSL_SUCCESS);
    wolfSSL_CTX_set_verify(cx, WOLFSSL_VERIFY_NONE, NULL);
    for (WOLFSSL_CTX *x = sx; x; x = x == sx ? cx : NULL) {
        wolfSSL_CTX_SetIORecv(x, mem_recv);
        wolfSSL_CTX_SetIOSend(x, mem_send);
    }
    WOLFSSL *c = wolfSSL_new(cx), *s = wolfSSL_new(sx);
    cr_assert_eq(wolfSSL_set_cipher_list(c, suite), WOLFSSL_SUCCESS, "%s", suite);
    wolfSSL_SetIOReadCtx(c, &ce);
    wolfSSL_SetIOWriteCtx(c, &ce);
    wolfSSL_SetIOReadCtx(s, &se);
    wolfSSL_SetIOWriteCtx(s, &se);
    bool cdone = false, sdone = false;
    for (int i = 0; i < 20 && !(cdone && sdone); i++) {
        cdone = cdone || wolfSSL_connect(c) == WOLFSSL_SUCCESS;
        sdone = sdone || wolfSSL_accept(s) == WOLFSSL_SUCCESS;
    }
    cr_assert(cdone && sdone, "handshake did not finish");
    char drain[64]; /* what the server sent after its handshake (session tickets) */
    cr_assert_lt(wolfSSL_read(c, drain, sizeof(drain)), 0);
    cr_assert_eq(s2c.len, 0);

    check_direction(c, s, &c2s, cipher, tls13);
    check_direction(s, c, &s2c, cipher, tls13);
    wolfSSL_free(c);
    wolfSSL_free(s);
    wolfSSL_CTX_free(cx);
    wolfSSL_CTX_free(sx);
}

Test(ktls, handover_tls13_aes128gcm)
{
    handover_case(true, "TLS13-AES128-GCM-SHA256", TLS_CIPHER_AES_GCM_128);
}

Test(ktls, handover_tls13_aes256gcm)
{
    handover_case(true, "TLS13-AES256-GCM-SHA384", TLS_CIPHER_AES_GCM_256);
}

Test(ktls, handover_tls13_chacha20)
{
    handover_case(true, "TLS13-CHACHA20-POLY1305-SHA256", TLS_CIPHER_CHACHA20_POLY1305);
}

Test(ktls, handover_tls12_aes128gcm)
{
    handover_case(false, "ECDHE-ECDSA-AES128-GCM-SHA256", TLS_CIPHER_AES_GCM_128);
}

Test(ktls, handover_tls12_aes256gcm)
{
    handover_case(false, "ECDHE-ECDSA-AES256-GCM-SHA384", TLS_CIPHER_AES_GCM_256);
}

Test(ktls, handover_tls12_chacha20)
{
    handover_case(false, "ECDHE-ECDSA-CHACHA20-POLY1305", TLS_CIPHER_CHACHA20_POLY1305);
}

Test(ktls, handover_refuses_what_the_kernel_cannot_take)
{
    /* no session yet: neither TLS 1.2 nor 1.3 settled */
    WOLFSSL_CTX *x = wolfSSL_CTX_new(wolfSSLv23_client_method());
    WOLFSSL *ssl = wolfSSL_new(x);
    struct rs_ktls_keys k;
    char why[160] = "";
    cr_assert(!rs_ktls_keys(ssl, true, &k, why, sizeof(why)));
    cr_assert(why[0] != '\0');
    wolfSSL_free(ssl);
    wolfSSL_CTX_free(x);
}
