/* Members' own applied index, polled by the leader (node/members_poll.c).
 *
 * Raft tells the leader how far each member's log reaches (match index),
 * not how far the member has applied it. While this node leads, it asks
 * every other member's GET /v1/internal/status once per MEMBERS_POLL_MS and
 * hands the answer to the replication layer (ledger_repl_note_applied),
 * which reports it as the member's applied_index while it is fresh.
 *
 * Invariants: at most one poll in flight per member; nothing is polled
 * while not leader; a member that does not answer is just not updated;
 * members_poll_close returns at once and the state is freed when the last poll
 * in flight has answered. */
#ifndef LEDGER_MEMBERS_POLL_H
#define LEDGER_MEMBERS_POLL_H

struct ledger_node;

#define MEMBERS_POLL_MS 500 /* Poll period. */

typedef struct members_poll members_poll;

/* Start polling (NULL on out of memory: lag then shows estimates). */
members_poll *members_poll_start(struct ledger_node *n);
void members_poll_close(members_poll *p);

#endif /* LEDGER_MEMBERS_POLL_H */
