/* A test PKI made with the openssl command line (see pki.h). */
#include "pki.h"
#include "harness.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

char pki_dir[64];

void pki_run_sh(const char *script)
{
    char cmd[4096];
    snprintf(cmd, sizeof(cmd), "cd '%s' && ( %s ) >gen.log 2>&1", pki_dir, script);
    int rc = system(cmd);
    if (rc != 0) {
        char log[512];
        snprintf(log, sizeof(log), "%s/gen.log", pki_dir);
        FILE *f = fopen(log, "r");
        char text[2048] = "";
        if (f) {
            size_t n = fread(text, 1, sizeof(text) - 1, f);
            text[n] = '\0';
            fclose(f);
        }
        cr_assert_fail("openssl failed (%d): %s", rc, text);
    }
}

uint8_t *pki_slurp(const char *name, size_t *len)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", pki_dir, name);
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc((size_t)n + 1);
    cr_assert_eq(fread(b, 1, (size_t)n, f), (size_t)n);
    b[n] = 0;
    fclose(f);
    *len = (size_t)n;
    return b;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

bool pki_parse_fingerprint(const char *text, uint8_t out[32])
{
    const char *p = strchr(text, '=');
    if (!p)
        return false;
    p++;
    for (int i = 0; i < 32; i++) {
        int hi = hexval(p[0]), lo = hexval(p[1]);
        if (hi < 0 || lo < 0)
            return false;
        out[i] = (uint8_t)(hi << 4 | lo);
        p += 2;
        if (i < 31 && *p++ != ':')
            return false;
    }
    return true;
}

void pki_openssl_fingerprint(const char *crt, uint8_t out[32])
{
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "openssl x509 -in '%s/%s' -noout -fingerprint -sha256", pki_dir,
             crt);
    FILE *f = popen(cmd, "r");
    cr_assert_not_null(f);
    char line[512] = "";
    cr_assert_not_null(fgets(line, sizeof(line), f));
    pclose(f);
    cr_assert(pki_parse_fingerprint(line, out), "cannot parse: %s", line);
}

void pki_load(struct pki_pem *pm, const char *name)
{
    char file[64];
    snprintf(file, sizeof(file), "%s.pem", name);
    pm->p = pki_slurp(file, &pm->len);
    snprintf(file, sizeof(file), "%s.crt", name);
    pki_openssl_fingerprint(file, pm->fp);
}

void pki_free(struct pki_pem *pm)
{
    free(pm->p);
    memset(pm, 0, sizeof(*pm));
}

#define EC PKI_EC

/* mk NAME KEYTYPE CN EXTFILE: a certificate signed by the CA, and NAME.pem */
#define MK                                                                                         \
    "mk() {\n"                                                                                     \
    "  openssl req -new -newkey $2 -nodes -keyout $1.key -out $1.csr -subj \"/CN=$3\"\n"           \
    "  openssl x509 -req -in $1.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out $1.crt"          \
    " -days 30 -extfile $4\n"                                                                      \
    "  cat $1.crt ca.crt $1.key > $1.pem\n"                                                        \
    "}\n"

static const char gen_script[] =
    "set -e\n"
    "openssl req -x509 -new -newkey " EC " -nodes -keyout ca.key -out ca.crt -days 30"
    " -subj '/CN=ringsock test CA' -addext basicConstraints=critical,CA:TRUE"
    " -addext keyUsage=critical,keyCertSign,cRLSign\n"
    "cp ca.crt ca.pem\n"
    "printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\nbasicConstraints=CA:FALSE\\n"
    "extendedKeyUsage=serverAuth\\n' > srv.ext\n"
    "printf 'subjectAltName=DNS:wrong.example\\nbasicConstraints=CA:FALSE\\n"
    "extendedKeyUsage=serverAuth\\n' > wrong.ext\n"
    "printf 'basicConstraints=CA:FALSE\\nextendedKeyUsage=clientAuth\\n' > cli.ext\n" MK
    "mk srv '" EC "' localhost srv.ext\n"
    "mk srv2 '" EC "' localhost srv.ext\n"
    "mk wrong '" EC "' wrong.example wrong.ext\n"
    "mk cli '" EC "' 'ringsock client' cli.ext\n"
    "openssl req -x509 -new -newkey " EC " -nodes -keyout selfcli.key -out selfcli.crt"
    " -days 30 -subj '/CN=rogue client'\n"
    "cat selfcli.crt selfcli.key > selfcli.pem\n";

void pki_unusable(struct pki_unusable out[PKI_UNUSABLE])
{
    pki_run_sh("set -e\n"
               "printf 'this is not PEM at all\\n' > junk.pem\n"
               "printf -- '-----BEGIN CERTIFICATE-----\\nbm90IGEgY2VydGlmaWNhdGU=\\n"
               "-----END CERTIFICATE-----\\n' | cat - srv.key > corrupt.pem\n"
               "cat srv.crt ca.crt > nokey.pem\n"
               "cat srv.crt ca.crt srv2.key > mismatch.pem\n");
    static const char *const names[PKI_UNUSABLE] = {"junk", "corrupt", "nokey", "mismatch"};
    for (int i = 0; i < PKI_UNUSABLE; i++) {
        char file[32];
        snprintf(file, sizeof(file), "%s.pem", names[i]);
        out[i].what = names[i];
        out[i].p = pki_slurp(file, &out[i].len);
    }
}

void pki_unusable_free(struct pki_unusable v[PKI_UNUSABLE])
{
    for (int i = 0; i < PKI_UNUSABLE; i++)
        free(v[i].p);
}

void pki_init(void)
{
    snprintf(pki_dir, sizeof(pki_dir), "/tmp/ringsock-certs-XXXXXX");
    cr_assert_not_null(mkdtemp(pki_dir));
    pki_run_sh(gen_script);
}

void pki_fini(void)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", pki_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", pki_dir);
    pki_dir[0] = '\0';
}

/* ms NAME CN [SAN]: a server certificate for those names (no SAN: none at all) */
static const char names_script[] =
    "set -e\n" MK "ms() {\n"
    "  { [ -z \"$3\" ] || echo \"subjectAltName=$3\"\n"
    "    printf 'basicConstraints=CA:FALSE\\nextendedKeyUsage=serverAuth\\n'; } > $1.ext\n"
    "  mk $1 '" EC "' \"$2\" $1.ext\n"
    "}\n"
    "ms dns localhost DNS:localhost\n"
    "ms ip4 'ringsock ip4' IP:127.0.0.1\n"
    "ms ip6 'ringsock ip6' IP:::1\n"
    "ms dnsip 'ringsock dns-ip' DNS:127.0.0.1\n"
    "ms cnonly localhost\n"
    "ms cnip 127.0.0.1\n"
    "ms wild 'ringsock wildcard' 'DNS:*.test.example'\n";

void pki_name_certs(void)
{
    pki_run_sh(names_script);
}

static bool settled(struct h_env *e, void *arg)
{
    (void)e;
    struct h_sock *c = arg;
    return h_count(c, H_CONNECT_COMPLETE) > 0 || h_has_shutdown(c);
}

void pki_conn_open(struct pki_conn *pc, struct h_env *env, ISocketProvider *p, ISocketContext *sctx,
                   ISocketContext *cctx, const char *cert, bool v6, const char *name,
                   enum LogFlags flag)
{
    pki_load(&pc->pem, cert);
    ISocketContext_SetServerCertificate(sctx, pc->pem.p, pc->pem.len, NULL);
    size_t len;
    uint8_t *ca = pki_slurp("ca.pem", &len);
    ISocketContext_SetTrustedCertificates(cctx, ca, len); /* copied */
    free(ca);
    IInstanceLog_SetLogFlags(env->log, flag);
    env->nlog = 0;
    pc->l = h_sock_new(env);
    pc->l->echo = true;
    pc->l->delete_on_shutdown = true;
    uint16_t port = h_listen_on(env, p, sctx, pc->l, v6 ? "::1" : "127.0.0.1");
    pc->c = h_sock_new(env);
    char addr[64];
    snprintf(addr, sizeof(addr), v6 ? "[::1]:%u" : "127.0.0.1:%u", port);
    CALL(pc->c->sock = ISocketProvider_CreateSocket(p, env->mux, &pc->c->user, env->log, v6, cctx));
    CALL(ISocket_Connect(pc->c->sock, addr, name));
    cr_assert(h_run_until(env, settled, pc->c, 8000), "%s", h_dump(pc->c));
    pc->ok = h_count(pc->c, H_CONNECT_COMPLETE) > 0;
}
