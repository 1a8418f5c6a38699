/* ledgerctl tls cert: sign a node or client certificate with a cluster CA
 * (made if missing), for nodes started by hand or joining a TLS cluster
 * (docs/security.md). The files are those of tls_gen.h. */
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "ctl.h"
#include "tls_gen.h"

int ctlCmdTlsCert(struct ctl *ctl, int argc, char **argv)
{
    struct ctl_flag flags[] = {{"node", 1, NULL},    {"ip", 1, NULL},
                               {"client", 1, NULL},  {"dir", 1, NULL},
                               {"replace", 0, NULL}, {NULL, 0, NULL}};
    const char *pos[1];
    const char *dir;
    const char *node;
    const char *client;
    const char *ip;
    unsigned long long id = 0;
    char err[512];
    char base[96];
    char cert[PATH_MAX];
    char key[PATH_MAX];
    char ca[PATH_MAX];
    int replace;
    int n_pos;
    int rv = ctlParseArgs(ctl, "tls cert", argc, argv, flags, pos, 0, &n_pos);

    if (rv != 0) {
        return CTL_ARGS_EXIT(rv);
    }
    dir = ctlFlag(flags, "dir");
    node = ctlFlag(flags, "node");
    client = ctlFlag(flags, "client");
    ip = ctlFlag(flags, "ip");
    replace = ctlFlag(flags, "replace") != NULL;
    if (dir == NULL) {
        dir = "./ledger-data/tls";
    }
    if ((node == NULL) == (client == NULL)) {
        return ctlUsage("tls cert: give --node ID (with --ip) or --client "
                        "NAME");
    }
    if (node != NULL) {
        if (ctlParseU64("--node", node, 1, ~0ull, &id) != 0) {
            return CTL_EXIT_USAGE;
        }
        if (ip == NULL || ip[0] == '\0') {
            return ctlUsage("tls cert: --node needs --ip IP[,IP...]: the "
                            "addresses of its raft and API hosts");
        }
    } else if (ip != NULL) {
        return ctlUsage("tls cert: --ip goes with --node");
    }
    if (ctlTlsCa(dir, err, sizeof err) != 0) {
        return ctlFail("tls cert: %s", err);
    }
    if (node != NULL) {
        rv = ctlTlsNode(dir, id, ip, replace, err, sizeof err);
    } else {
        rv = ctlTlsClient(dir, client, replace, err, sizeof err);
    }
    if (rv != 0) {
        return ctlFail("tls cert: %s", err);
    }
    if (node != NULL) {
        snprintf(base, sizeof base, "node%llu", id);
    } else {
        snprintf(base, sizeof base, "%s", client);
    }
    snprintf(cert, sizeof cert, "%s/%s.pem", dir, base);
    snprintf(key, sizeof key, "%s/%s.key", dir, base);
    snprintf(ca, sizeof ca, "%s/ca.pem", dir);
    if (ctl->json) {
        json_t *v = json_pack("{ssssss}", "ca", ca, "cert", cert, "key", key);
        ctlPrintJson(v);
        json_decref(v);
    } else {
        printf("%s, %s (CA %s)\n", cert, key, ca);
    }
    return CTL_EXIT_OK;
}
