/* Every read and write of raft 0.15's internals, in one place.
 *
 * raft 0.15 (Debian libraft-dev) keeps much of its state in `struct raft`
 * fields with no accessor: the term, the commit index, the configuration,
 * the leader's per-follower progress, the election timer. They are in the
 * public header but their meaning and layout are version-specific (0.16+
 * moved several of them), so the rest of replication/ never touches a
 * field of `struct raft` or `struct raft_io`: it calls these functions,
 * and raft_peek.c says for each field why it is needed and what a raft
 * upgrade must re-check. Public API calls (raft_state, raft_leader,
 * raft_last_index, raft_last_applied, raft_set_*) are used directly.
 */
#ifndef LEDGER_REPL_RAFT_PEEK_H
#define LEDGER_REPL_RAFT_PEEK_H

#include <raft.h>
#include <stdbool.h>
#include <stdint.h>

/* ---- Reads ------------------------------------------------------------ */

uint64_t peek_term(const struct raft *r);
/* Leader, and not in the middle of stepping down: raft's leader calls
 * (raft_apply, raft_barrier, raft_transfer) are safe. */
bool peek_leading(const struct raft *r);
uint64_t peek_commit_index(const struct raft *r);
/* Index of the last snapshot raft holds (0: none). */
uint64_t peek_snapshot_index(const struct raft *r);
/* The current configuration (committed or not): borrowed, valid until the
 * next raft call that may change it. */
const struct raft_configuration *peek_configuration(const struct raft *r);
/* True while a raft_transfer() started on this node is pending. */
bool peek_transfer_pending(const struct raft *r);
/* Follower: when the election timer last restarted (its last contact with
 * a leader or a vote granted), in raft's clock. */
uint64_t peek_election_timer_start(const struct raft *r);
/* Follower or candidate: when its randomised election timer expires, in
 * raft's clock (UINT64_MAX in any other state). */
uint64_t peek_election_deadline(const struct raft *r);

/* Candidate: true while it asks for pre-votes (it has not raised its
 * term yet). */
bool peek_in_pre_vote(const struct raft *r);
/* Term of the last entry in the log (the snapshot's if the log is
 * empty), as raft compares logs for votes. */
uint64_t peek_last_log_term(const struct raft *r);

/* The leader's view of member i of peek_configuration() (leader only). */
struct peek_progress {
    uint64_t match_index; /* Highest index known replicated on it. */
    bool recent_recv;     /* An AppendEntries result since raft's last
                             contact-quorum check. */
};
bool peek_progress(const struct raft *r, unsigned i, struct peek_progress *out);

/* ---- Writes ----------------------------------------------------------- */

/* Follower: forget the current leader's id (election.c): it then grants
 * pre-votes and votes as if it had never heard from one. */
void peek_forget_leader(struct raft *r);
/* Follower or candidate: make its election timer expire now (it stands,
 * or stands again, at the next tick). */
void peek_expire_election_timer(struct raft *r);

/* Leader: make raft's next tick find the contact quorum lost, so that it
 * steps down through its own path (tickLeader -> convertToFollower, which
 * fails pending applies and barriers with RAFT_LEADERSHIPLOST). */
void peek_expire_contact_quorum(struct raft *r);

/* Point an instance created by someone else (raft_fixture) at `io`, which
 * forwards to the io it was created with (io.c). Before raft_start only. */
void peek_adopt_io(struct raft *r, struct raft_io *io);

#endif /* LEDGER_REPL_RAFT_PEEK_H */
