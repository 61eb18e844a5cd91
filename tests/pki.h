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

struct pki_pem {
    uint8_t *p;
    size_t len;
    uint8_t fp[32]; /* openssl's SHA-256 fingerprint of the leaf */
};

/* The directory of the current PKI ("" before pki_init). */
extern char pki_dir[64];

/* Makes the directory and the certificates above (fails the test if openssl fails). */
void pki_init(void);
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

/* The key type of the generated certificates, for pki_run_sh scripts. */
#define PKI_EC "ec -pkeyopt ec_paramgen_curve:P-256"

#endif
