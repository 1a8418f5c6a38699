/* Certificates for a ledger cluster, made with the OpenSSL library: a
 * cluster CA, node certificates and client certificates (docs/security.md).
 *
 * Files in a directory DIR (keys mode 0600, written to a temporary name
 * and renamed, so a reader never sees half a file):
 *   ca.pem, ca.key             the cluster CA (self-signed, CN "ledger
 *                              cluster CA <random>", 10 years)
 *   node<ID>.pem, node<ID>.key node ID: CN "ledger-node-<ID>", SAN IP
 *                              entries for its addresses, serverAuth and
 *                              clientAuth (it is both on the Raft port),
 *                              825 days
 *   <NAME>.pem, <NAME>.key     a client: CN NAME, clientAuth, 825 days
 * Keys are ECDSA P-256; signatures SHA-256.
 */
#ifndef LEDGER_CTL_TLS_GEN_H
#define LEDGER_CTL_TLS_GEN_H

#include <stddef.h>

/* DIR/ca.pem and DIR/ca.key: kept when both exist, else created (DIR
 * too, mode 0700). 0, or -1 with a one-line reason in err. */
int ctlTlsCa(const char *dir, char *err, size_t errlen);

/* DIR/node<ID>.pem/.key signed by DIR's CA, naming the comma-separated
 * IPv4 addresses `ips`. Kept when both exist and `replace` is 0. */
int ctlTlsNode(const char *dir, unsigned long long id, const char *ips,
               int replace, char *err, size_t errlen);

/* DIR/<name>.pem/.key: a client certificate with CN `name`. Kept when both
 * exist and `replace` is 0. */
int ctlTlsClient(const char *dir, const char *name, int replace, char *err,
                 size_t errlen);

#endif /* LEDGER_CTL_TLS_GEN_H */
