/* Mutual TLS on the Raft port: a raft_uv_transport (raft/uv.h) that speaks
 * TLS 1.3 on every connection and binds each peer's Raft server id to its
 * certificate.
 *
 * Raft never sees the network: after the TLS handshake and the identity
 * checks, each connection is handed to Raft as one end of a socketpair
 * (a uv_pipe_t allocated with raft_malloc, which Raft closes and frees),
 * and a pump on the same loop moves bytes between the other end and the
 * TLS session over TCP. A peer that fails any check is dropped before Raft
 * reads a byte: one log line with its address and the reason, and
 * ledger_peer_rejected_total (metrics_peer_rejected) counts it.
 *
 * Checks on an accepted connection, in order:
 *   1. the first byte opens a TLS handshake, the peer speaks TLS 1.3 and
 *      presents a certificate that the cluster CA signed (http/tls.c);
 *   2. within RAFT_TLS_HANDSHAKE_MS it sends Raft's handshake (protocol 1,
 *      its server id, its Raft address) inside the TLS session;
 *   3. the id it announces is the id of its certificate: subject CN
 *      "ledger-node-<ID>" (RAFT_TLS_CN_PREFIX);
 *   4. its certificate names the host of the Raft address it announces
 *      (a subjectAltName IP), the address Raft will learn the leader by.
 * On a connection we open, the server's certificate must verify, name the
 * IP we dialled, and carry the id we dialled (same CN rule).
 */
#ifndef LEDGER_RAFT_TLS_H
#define LEDGER_RAFT_TLS_H

#include <raft.h>
#include <raft/uv.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "http/tls.h"

#define RAFT_TLS_CN_PREFIX "ledger-node-" /* Subject CN of node N's cert. */
#define RAFT_TLS_HANDSHAKE_MS 10000       /* TLS + Raft handshake, at most. */
#define RAFT_TLS_MAX_PENDING 64 /* Accepted, not yet checked, at most. */

struct raft_tls;

/* A transport on `loop` whose sessions use `tls` (borrowed: it must
 * outlive the transport; a reload, http_tls_swap, applies to new
 * connections). Accepted peers must present a certificate. Give
 * raft_tls_transport() to raft_uv_init. 0, or non-zero on OOM. */
int raft_tls_create(uv_loop_t *loop, http_tls *tls, struct raft_tls **out);
struct raft_uv_transport *raft_tls_transport(struct raft_tls *t);

/* Free it once Raft has closed it (after raft_close's callback, or if Raft
 * never used it). */
void raft_tls_free(struct raft_tls *t);

/* The node id in a certificate subject CN "ledger-node-<ID>"; 0 if the
 * name does not have that form. */
uint64_t raft_tls_cn_id(const char *cn);

#endif /* LEDGER_RAFT_TLS_H */
