/* The node's certificates: load, identity checks, reload (node_tls.h). */
#include "node_tls.h"

#include <stdio.h>
#include <string.h>

#include "log.h"
#include "node.h"
#include "raft_tls.h"

/* The certificate names `addr`'s host (an unspecified 0.0.0.0 cannot be
 * named and is not checked). */
static int namesHost(const http_tls *t, const char *flag, const char *addr,
                     const char *cert, char *err, size_t errlen)
{
    char host[64];
    int port;

    if (ledger_parse_addr(addr, host, sizeof host, &port) != 0 ||
        strcmp(host, "0.0.0.0") == 0 || http_tls_cert_has_ip(t, host)) {
        return 0;
    }
    snprintf(err, errlen,
             "--tls-cert %s does not name %s (the host of %s %s) in its "
             "subjectAltName: peers would refuse this node",
             cert, host, flag, addr);
    return -1;
}

int node_tls_load(const struct ledger_config *cfg, http_tls **out, char *err,
                  size_t errlen)
{
    struct http_tls_config tc = {cfg->tls_cert, cfg->tls_key, cfg->tls_ca};
    http_tls *t;
    char cn[256];
    char why[512];

    *out = NULL;
    if (http_tls_create(&tc, &t, why, sizeof why) != 0) {
        snprintf(err, errlen, "TLS: %s", why);
        return -1;
    }
    if (http_tls_cert_cn(t, cn, sizeof cn) != 0 ||
        raft_tls_cn_id(cn) != cfg->id) {
        snprintf(err, errlen,
                 "--tls-cert %s is not node %llu's: its subject CN must be "
                 "\"" RAFT_TLS_CN_PREFIX "%llu\" (it is \"%s\")",
                 cfg->tls_cert, (unsigned long long)cfg->id,
                 (unsigned long long)cfg->id,
                 http_tls_cert_cn(t, cn, sizeof cn) == 0 ? cn : "");
        http_tls_free(t);
        return -1;
    }
    if (namesHost(t, "--raft-addr", cfg->raft_addr, cfg->tls_cert, err,
                  errlen) != 0 ||
        namesHost(t, "--api-addr", cfg->api_addr, cfg->tls_cert, err, errlen) !=
            0) {
        http_tls_free(t);
        return -1;
    }
    *out = t;
    return 0;
}

int node_tls_reload(struct ledger_node *n)
{
    http_tls *fresh;
    char err[768];
    char what[256];

    if (n->tls == NULL) {
        return 0;
    }
    if (node_tls_load(n->cfg, &fresh, err, sizeof err) != 0) {
        ledger_log(LOG_ERROR, NULL,
                   "SIGHUP: certificates not reloaded, the ones in use are "
                   "kept: %s",
                   err);
        return -1;
    }
    http_tls_swap(n->tls, fresh);
    if (n->peers != NULL) {
        /* libcurl reads the files for each new connection. */
        http_client_set_tls(n->peers, n->cfg->tls_ca, n->cfg->tls_cert,
                            n->cfg->tls_key);
    }
    http_tls_describe(n->tls, what, sizeof what);
    ledger_log(LOG_INFO, NULL, "SIGHUP: certificates reloaded (%s)", what);
    return 0;
}
