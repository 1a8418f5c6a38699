/* Cluster CA, node and client certificates (see tls_gen.h). */
#include "tls_gen.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#define GEN__CA_DAYS 3650  /* CA validity. */
#define GEN__LEAF_DAYS 825 /* Node and client certificate validity. */
#define GEN__SKEW_S 3600   /* notBefore this far back: clock skew. */

static int sslFail(char *err, size_t errlen, const char *what)
{
    unsigned long e = ERR_get_error();
    const char *r = e != 0 ? ERR_reason_error_string(e) : NULL;
    snprintf(err, errlen, "%s: %s", what, r != NULL ? r : "OpenSSL error");
    ERR_clear_error();
    return -1;
}

static int exists(const char *path)
{
    return access(path, F_OK) == 0;
}

/* Write a PEM object to `path` (mode `mode`) through path.tmp + rename. */
static int writePem(const char *path, mode_t mode, EVP_PKEY *key, X509 *cert,
                    char *err, size_t errlen)
{
    char tmp[PATH_MAX];
    FILE *f;
    int fd;
    int ok;

    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0 || (f = fdopen(fd, "w")) == NULL) {
        snprintf(err, errlen, "create %s: %s", tmp, strerror(errno));
        if (fd >= 0) {
            close(fd);
        }
        return -1;
    }
    ok = key != NULL ? PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL)
                     : PEM_write_X509(f, cert);
    ok = ok && fflush(f) == 0 && fsync(fileno(f)) == 0;
    if (fclose(f) != 0 || !ok) {
        unlink(tmp);
        snprintf(err, errlen, "write %s: %s", tmp, strerror(errno));
        ERR_clear_error();
        return -1;
    }
    if (rename(tmp, path) != 0) {
        snprintf(err, errlen, "rename %s: %s", tmp, strerror(errno));
        unlink(tmp);
        return -1;
    }
    return 0;
}

static int addExt(X509 *cert, X509V3_CTX *ctx, int nid, const char *value)
{
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, ctx, nid, value);
    int ok;
    if (ext == NULL) {
        return 0;
    }
    ok = X509_add_ext(cert, ext, -1);
    X509_EXTENSION_free(ext);
    return ok;
}

/* A certificate for `key` with subject CN `cn`, signed by issuer/ikey
 * (NULL: self-signed), with extensions given as (nid, value) pairs ended by
 * NID_undef. */
static X509 *makeCert(EVP_PKEY *key, const char *cn, X509 *issuer,
                      EVP_PKEY *ikey, long days, const int *nids,
                      const char *const *values)
{
    X509 *cert = X509_new();
    BIGNUM *serial = BN_new();
    X509_NAME *name;
    X509V3_CTX ctx;

    if (cert == NULL || serial == NULL ||
        !BN_rand(serial, 127, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) ||
        BN_to_ASN1_INTEGER(serial, X509_get_serialNumber(cert)) == NULL ||
        !X509_set_version(cert, 2) ||
        X509_gmtime_adj(X509_getm_notBefore(cert), -GEN__SKEW_S) == NULL ||
        X509_gmtime_adj(X509_getm_notAfter(cert), days * 86400L) == NULL ||
        !X509_set_pubkey(cert, key)) {
        goto err;
    }
    name = X509_get_subject_name(cert);
    if (!X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                                    (const unsigned char *)cn, -1, -1, 0) ||
        !X509_set_issuer_name(
            cert, issuer != NULL ? X509_get_subject_name(issuer) : name)) {
        goto err;
    }
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer != NULL ? issuer : cert, cert, NULL, NULL, 0);
    for (size_t i = 0; nids[i] != NID_undef; i++) {
        if (!addExt(cert, &ctx, nids[i], values[i])) {
            goto err;
        }
    }
    if (X509_sign(cert, issuer != NULL ? ikey : key, EVP_sha256()) == 0) {
        goto err;
    }
    BN_free(serial);
    return cert;

err:
    BN_free(serial);
    X509_free(cert);
    return NULL;
}

/* Write key and certificate as DIR/<base>.key and DIR/<base>.pem. */
static int writePair(const char *dir, const char *base, EVP_PKEY *key,
                     X509 *cert, char *err, size_t errlen)
{
    char path[PATH_MAX];

    snprintf(path, sizeof path, "%s/%s.key", dir, base);
    if (writePem(path, 0600, key, NULL, err, errlen) != 0) {
        return -1;
    }
    snprintf(path, sizeof path, "%s/%s.pem", dir, base);
    return writePem(path, 0644, NULL, cert, err, errlen);
}

static int pairExists(const char *dir, const char *base)
{
    char a[PATH_MAX];
    char b[PATH_MAX];
    snprintf(a, sizeof a, "%s/%s.key", dir, base);
    snprintf(b, sizeof b, "%s/%s.pem", dir, base);
    return exists(a) && exists(b);
}

int ctlTlsCa(const char *dir, char *err, size_t errlen)
{
    static const int nids[] = {NID_basic_constraints, NID_key_usage,
                               NID_subject_key_identifier, NID_undef};
    static const char *const values[] = {"critical,CA:TRUE,pathlen:0",
                                         "critical,keyCertSign,cRLSign", "hash",
                                         NULL};
    unsigned char rnd[4];
    char cn[64];
    EVP_PKEY *key;
    X509 *cert;
    int rv;

    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "create %s: %s", dir, strerror(errno));
        return -1;
    }
    if (pairExists(dir, "ca")) {
        return 0;
    }
    if (RAND_bytes(rnd, sizeof rnd) != 1) {
        return sslFail(err, errlen, "random");
    }
    snprintf(cn, sizeof cn, "ledger cluster CA %02x%02x%02x%02x", rnd[0],
             rnd[1], rnd[2], rnd[3]);
    key = EVP_EC_gen("P-256");
    if (key == NULL) {
        return sslFail(err, errlen, "CA key");
    }
    cert = makeCert(key, cn, NULL, NULL, GEN__CA_DAYS, nids, values);
    if (cert == NULL) {
        EVP_PKEY_free(key);
        return sslFail(err, errlen, "CA certificate");
    }
    rv = writePair(dir, "ca", key, cert, err, errlen);
    X509_free(cert);
    EVP_PKEY_free(key);
    return rv;
}

/* Load DIR's CA. */
static int loadCa(const char *dir, X509 **cert, EVP_PKEY **key, char *err,
                  size_t errlen)
{
    char path[PATH_MAX];
    FILE *f;

    *cert = NULL;
    *key = NULL;
    snprintf(path, sizeof path, "%s/ca.pem", dir);
    f = fopen(path, "r");
    if (f == NULL) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    *cert = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    snprintf(path, sizeof path, "%s/ca.key", dir);
    f = fopen(path, "r");
    if (f == NULL) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        X509_free(*cert);
        *cert = NULL;
        return -1;
    }
    *key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    if (*cert == NULL || *key == NULL) {
        X509_free(*cert);
        EVP_PKEY_free(*key);
        *cert = NULL;
        *key = NULL;
        return sslFail(err, errlen, "the CA in ca.pem/ca.key");
    }
    return 0;
}

/* A leaf signed by DIR's CA, written as DIR/<base>.{pem,key}. */
static int makeLeaf(const char *dir, const char *base, const char *cn,
                    const char *eku, const char *san, char *err, size_t errlen)
{
    int nids[] = {NID_basic_constraints,
                  NID_key_usage,
                  NID_ext_key_usage,
                  NID_subject_key_identifier,
                  NID_authority_key_identifier,
                  NID_subject_alt_name,
                  NID_undef};
    const char *values[] = {"critical,CA:FALSE",
                            "critical,digitalSignature",
                            eku,
                            "hash",
                            "keyid:always",
                            san,
                            NULL};
    X509 *ca;
    EVP_PKEY *cakey;
    EVP_PKEY *key;
    X509 *cert;
    int rv;

    if (san == NULL) {
        nids[5] = NID_undef;
    }
    if (loadCa(dir, &ca, &cakey, err, errlen) != 0) {
        return -1;
    }
    key = EVP_EC_gen("P-256");
    if (key == NULL) {
        X509_free(ca);
        EVP_PKEY_free(cakey);
        return sslFail(err, errlen, "key");
    }
    cert = makeCert(key, cn, ca, cakey, GEN__LEAF_DAYS, nids, values);
    X509_free(ca);
    EVP_PKEY_free(cakey);
    if (cert == NULL) {
        EVP_PKEY_free(key);
        return sslFail(err, errlen, cn);
    }
    rv = writePair(dir, base, key, cert, err, errlen);
    X509_free(cert);
    EVP_PKEY_free(key);
    return rv;
}

int ctlTlsNode(const char *dir, unsigned long long id, const char *ips,
               int replace, char *err, size_t errlen)
{
    char base[64];
    char cn[64];
    char san[1024] = "";
    size_t used = 0;
    const char *p = ips;

    snprintf(base, sizeof base, "node%llu", id);
    if (!replace && pairExists(dir, base)) {
        return 0;
    }
    while (*p != '\0') {
        const char *comma = strchr(p, ',');
        size_t n = comma != NULL ? (size_t)(comma - p) : strlen(p);
        unsigned char bin[4];
        char ip[64];
        if (n == 0 || n >= sizeof ip) {
            snprintf(err, errlen, "bad IP list '%s'", ips);
            return -1;
        }
        memcpy(ip, p, n);
        ip[n] = '\0';
        if (inet_pton(AF_INET, ip, bin) != 1) {
            snprintf(err, errlen, "'%s' is not an IPv4 address", ip);
            return -1;
        }
        used += (size_t)snprintf(san + used, sizeof san - used, "%sIP:%s",
                                 used > 0 ? "," : "", ip);
        if (used >= sizeof san) {
            snprintf(err, errlen, "too many IP addresses");
            return -1;
        }
        p = comma != NULL ? comma + 1 : p + n;
    }
    if (used == 0) {
        snprintf(err, errlen, "a node certificate needs an IP address");
        return -1;
    }
    snprintf(cn, sizeof cn, "ledger-node-%llu", id);
    return makeLeaf(dir, base, cn, "serverAuth,clientAuth", san, err, errlen);
}

int ctlTlsClient(const char *dir, const char *name, int replace, char *err,
                 size_t errlen)
{
    if (name[0] == '\0' || strchr(name, '/') != NULL || name[0] == '.' ||
        strlen(name) > 64) {
        snprintf(err, errlen, "bad client name '%s'", name);
        return -1;
    }
    if (!replace && pairExists(dir, name)) {
        return 0;
    }
    return makeLeaf(dir, name, name, "clientAuth", NULL, err, errlen);
}
