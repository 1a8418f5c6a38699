/* Members' own applied index, polled by the leader (node/peers.c).
 *
 * Raft tells the leader how far each member's log reaches (match index),
 * not how far the member has applied it. While this node leads, it asks
 * every other member's GET /v1/internal/status once per PEERS_POLL_MS and
 * hands the answer to the replication layer (ledger_repl_note_applied),
 * which reports it as the member's applied_index while it is fresh.
 *
 * Invariants: at most one poll in flight per member; nothing is polled
 * while not leader; a member that does not answer is just not updated;
 * peers_close returns at once and the state is freed when the last poll in
 * flight has answered. */
#ifndef LEDGER_PEERS_H
#define LEDGER_PEERS_H

struct ledger_node;

#define PEERS_POLL_MS 500 /* Poll period. */

typedef struct peers peers;

/* Start polling (NULL on out of memory: lag then shows estimates). */
peers *peers_start(struct ledger_node *n);
void peers_close(peers *p);

#endif /* LEDGER_PEERS_H */
