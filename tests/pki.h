/* A test PKI made with the openssl command line in a temporary directory (tests that need
 * certificates: TLS and DTLS).
 *
 * pki_init makes a test CA (ECDSA P-256), server certificates for "localhost" signed by it
 * ("srv", "srv2"), one for a wrong name ("wrong"), a client certificate signed by the CA
 * ("cli") and a self-signed client certificate ("selfcli"). Each NAME has NAME.key,
 * NAME.crt and NAME.pem (the chain and then the key, as the SDK wants it); ca.pem is the
 * CA's certificate alone. pki_run_sh runs more openssl commands in the same directory. */
#ifndef RS_TEST_PKI_H
#define RS_TEST_PKI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ringsock/socket.h>

struct pki_pem {
    uint8_t *p;
    size_t len;
    uint8_t fp[32]; /* openssl's SHA-256 fingerprint of the leaf */
};

/* The directory of the current PKI ("" before pki_init). */
extern char pki_dir[64];

/* Makes the directory and the certificates above (fails the test if openssl fails). */
void pki_init(void);
/* Adds server certificates signed by the CA that differ in their names only (subject CN;
 * subjectAltName): "dns" (localhost; DNS:localhost), "ip4" (ringsock ip4; IP:127.0.0.1),
 * "ip6" (ringsock ip6; IP:::1), "dnsip" (ringsock dns-ip; DNS:127.0.0.1, a DNS name that
 * reads like an address), "cnonly" (localhost; no SAN), "cnip" (127.0.0.1; no SAN) and
 * "wild" (ringsock wildcard; DNS:*.test.example). "srv" has both DNS:localhost and
 * IP:127.0.0.1. */
void pki_name_certs(void);
/* Removes the directory. */
void pki_fini(void);
/* Runs a shell script in the directory; fails the test with openssl's output if it fails. */
void pki_run_sh(const char *script);
/* A file of the directory, NUL-terminated, malloc'd. */
uint8_t *pki_slurp(const char *name, size_t *len);
/* "sha256 Fingerprint=AB:CD:..." into 32 bytes. */
bool pki_parse_fingerprint(const char *text, uint8_t out[32]);
/* openssl's SHA-256 fingerprint of a certificate file of the directory. */
void pki_openssl_fingerprint(const char *crt, uint8_t out[32]);
/* NAME.pem into pm, with the fingerprint of NAME.crt. */
void pki_load(struct pki_pem *pm, const char *name);
/* Frees and clears. */
void pki_free(struct pki_pem *pm);

/* PEMs no TLS or DTLS end can use (api.md: logged and handled): not PEM at all, a
 * certificate block that holds no certificate (with a good key), a chain without its key,
 * a chain with another certificate's key. */
#define PKI_UNUSABLE 4
struct pki_unusable {
    const char *what;
    uint8_t *p;
    size_t len;
};
void pki_unusable(struct pki_unusable out[PKI_UNUSABLE]);
void pki_unusable_free(struct pki_unusable v[PKI_UNUSABLE]);

struct h_env;
struct h_sock;

/* One connection for the server-identity tests: sctx serves certificate CERT (a NAME as
 * above), cctx trusts the test CA; an echoing listener of provider p on 127.0.0.1 or ::1,
 * deleting what ends, and a client connecting to it with serverName NAME, run until its
 * handshake is settled. The env's log gets flag and starts afresh (this connection's
 * reasons only). Free pem, c and l when done. */
struct pki_conn {
    struct pki_pem pem;
    struct h_sock *l, *c;
    bool ok; /* the client connected */
};
void pki_conn_open(struct pki_conn *pc, struct h_env *env, ISocketProvider *p, ISocketContext *sctx,
                   ISocketContext *cctx, const char *cert, bool v6, const char *name,
                   enum LogFlags flag);

/* The key type of the generated certificates, for pki_run_sh scripts. */
#define PKI_EC "ec -pkeyopt ec_paramgen_curve:P-256"

#endif
