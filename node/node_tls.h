/* The node's certificates (docs/security.md): loaded at start from
 * --tls-cert/--tls-key/--tls-ca, checked against the node's identity, and
 * reloaded on SIGHUP without a restart. One http_tls serves the Raft
 * transport (raft_tls.c) and the HTTPS API; the peer client (peer.c) reads
 * the same files for each new connection. */
#ifndef LEDGER_NODE_TLS_H
#define LEDGER_NODE_TLS_H

#include <stddef.h>

#include "config.h"
#include "http/tls.h"

struct ledger_node;

/* Load the files and check that the certificate is this node's: subject
 * CN "ledger-node-<--id>" and subjectAltName IPs naming the hosts of
 * --raft-addr and --api-addr (peers check both). 0, or -1 with a one-line
 * reason in err. */
int node_tls_load(const struct ledger_config *cfg, http_tls **out, char *err,
                  size_t errlen);

/* SIGHUP: load and check the files again; on success new connections
 * (Raft, API, calls to peers) use them, open ones carry on. A failure is
 * logged and the certificates in use are kept. 0 or -1. */
int node_tls_reload(struct ledger_node *n);

#endif /* LEDGER_NODE_TLS_H */
