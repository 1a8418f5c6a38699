/* Every read and write of raft 0.15's internals (see raft_peek.h).
 *
 * Each function names the fields it touches, why replication needs them,
 * and what a raft upgrade must re-check. Sources quoted: canonical/raft
 * v0.15.0, src/ (tick.c, progress.c, ...). Nothing else in replication/ may
 * name a field of `struct raft` or `struct raft_io`.
 */
#include "raft_peek.h"

/* r->current_term: raft 0.15 has no getter for the term. Read-only; shown
 * in /v1/cluster and used to tell a new leader from the same one heard
 * again (repl.c). */
uint64_t peek_term(const struct raft *r)
{
    return r->current_term;
}

/* r->state and r->leader_state.progress: while raft steps down
 * (convert.c convertToFollower -> convertClearLeader) it frees the progress
 * array and then fails every pending apply and barrier, calling their
 * callbacks, before it sets the state to follower: inside those callbacks
 * raft_state() still says leader, and raft_transfer or raft_barrier there
 * read the freed array (a SEGV found by chaos: a transfer started from an
 * apply callback during a step-down). Read-only. */
bool peek_leading(const struct raft *r)
{
    return r->state == RAFT_LEADER && r->leader_state.progress != NULL;
}

/* r->commit_index: no getter in 0.15. On the leader it is the majority's
 * commit point; on a follower it trails the leader's by up to one
 * heartbeat. Read-only (status, lag estimates). */
uint64_t peek_commit_index(const struct raft *r)
{
    return r->commit_index;
}

/* r->log.snapshot.last_index: raft's in-memory log records the index of the
 * last snapshot it holds; fsm.c counts the bytes applied since then to
 * bound raft's memory (raft only counts entries). Read-only. Upgrade note:
 * `struct raft_log` is private in 0.16+ (r->log becomes a pointer). */
uint64_t peek_snapshot_index(const struct raft *r)
{
    return r->log.snapshot.last_index;
}

/* r->configuration: no getter in 0.15 (raft_configuration is only built
 * by the caller). Membership roles, voter counts, the progress array's
 * order (parallel to servers[]) and the members table all come from it.
 * Read-only. */
const struct raft_configuration *peek_configuration(const struct raft *r)
{
    return &r->configuration;
}

/* r->transfer: non-NULL while raft_transfer() is pending; raft_apply()
 * fails with RAFT_NOTLEADER meanwhile, so writes wait for the outcome
 * (repl.c). Read-only. */
bool peek_transfer_pending(const struct raft *r)
{
    return r->transfer != NULL;
}

/* r->election_timer_start: a follower restarts it on every AppendEntries
 * or InstallSnapshot from its leader (recv_append_entries.c,
 * recv_install_snapshot.c) and when it grants a vote; so now minus it is
 * how long the leader has been silent (election.c, status). Read-only. */
uint64_t peek_election_timer_start(const struct raft *r)
{
    return r->election_timer_start;
}

/* r->election_timer_start plus follower_state/candidate_state
 * .randomized_election_timeout: tickFollower and tickCandidate stand for
 * election once `now - election_timer_start >= randomized_election_timeout`
 * (election.c electionTimerExpired), but only when raft's tick runs, every
 * heartbeat. io.c runs raft's tick at this deadline instead, so that two
 * followers whose draws differ by less than a heartbeat do not stand at the
 * same tick and split the vote. Read-only. */
uint64_t peek_election_deadline(const struct raft *r)
{
    if (r->state == RAFT_FOLLOWER) {
        return r->election_timer_start +
               r->follower_state.randomized_election_timeout;
    }
    if (r->state == RAFT_CANDIDATE) {
        return r->election_timer_start +
               r->candidate_state.randomized_election_timeout;
    }
    return UINT64_MAX;
}

/* r->candidate_state.in_pre_vote: true while a candidate collects
 * pre-votes (recv_request_vote_result.c clears it when a majority
 * granted them and the real election starts). election.c's tie-break
 * acts only in that phase. Read-only. */
bool peek_in_pre_vote(const struct raft *r)
{
    return r->state == RAFT_CANDIDATE && r->candidate_state.in_pre_vote;
}

/* r->log (struct raft_log: a circular buffer of entries [front, back) of
 * `size` slots, plus the last snapshot's index and term): the term of the
 * last entry, as log.c logLastTerm computes it, for election.c to compare
 * a candidate's log with ours the way electionVote does. Read-only.
 * Upgrade note: the log is private and a pointer in 0.16+. */
uint64_t peek_last_log_term(const struct raft *r)
{
    const struct raft_log *l = &r->log;
    size_t n =
        l->front <= l->back ? l->back - l->front : l->size - l->front + l->back;
    if (n == 0) {
        return l->snapshot.last_term;
    }
    return l->entries[(l->front + n - 1) % l->size].term;
}

/* r->leader_state.progress[i]: the leader's replication state for
 * r->configuration.servers[i] (progress.c). Valid only while leader: the
 * array is freed on stepping down and rebuilt on every configuration
 * change. match_index gives lag and catch-up; recent_recv is the flag
 * tickLeader's checkContactQuorum reads and clears once per election
 * timeout. Read-only here. */
bool peek_progress(const struct raft *r, unsigned i, struct peek_progress *out)
{
    if (r->state != RAFT_LEADER || r->leader_state.progress == NULL ||
        i >= r->configuration.n) {
        return false;
    }
    out->match_index = r->leader_state.progress[i].match_index;
    out->recent_recv = r->leader_state.progress[i].recent_recv;
    return true;
}

/* r->follower_state.current_leader.id (write): raft 0.15 refuses every
 * vote and pre-vote while a follower remembers a leader at all
 * (recv_request_vote.c), and forgets it only when its own randomised
 * timer fires; election.c forgets it after one election timeout of
 * silence, as the thesis (4.2.3) says. Only the id is cleared: raft may
 * still send a pending AppendEntries result to current_leader.address,
 * which must stay a valid string; the next AppendEntries from any leader
 * sets both again (recvUpdateLeader). */
void peek_forget_leader(struct raft *r)
{
    if (r->state == RAFT_FOLLOWER) {
        r->follower_state.current_leader.id = 0;
    }
}

/* r->election_timer_start (write), follower or candidate: moved back by
 * the node's randomized_election_timeout (follower_state's or
 * candidate_state's), so that the timer has expired now; io.c runs raft's
 * tick at the expiry (within REPL__IO_TICK_MS): tickFollower converts a
 * voter to candidate (a pre-vote round), tickCandidate calls
 * electionStart (a pre-candidate starts a new pre-vote round: the same
 * future term, requests sent again, a new draw). election.c does this when
 * a round can be won at once (rules 5 and 6). */
void peek_expire_election_timer(struct raft *r)
{
    raft_time now = r->io->time(r->io);
    if (r->state == RAFT_FOLLOWER) {
        r->election_timer_start =
            now - r->follower_state.randomized_election_timeout;
    } else if (r->state == RAFT_CANDIDATE) {
        r->election_timer_start =
            now - r->candidate_state.randomized_election_timeout;
    }
}

/* r->election_timer_start and r->leader_state.progress[i].recent_recv
 * (write): tickLeader steps down when `now - election_timer_start >=
 * election_timeout` and checkContactQuorum finds recent_recv set on fewer
 * than a majority of voters (tick.c). Moving the timer start one election
 * timeout back and clearing every flag makes the next tick step down
 * through raft's own path (convertToFollower: pending applies and barriers
 * fail with RAFT_LEADERSHIPLOST, a promotion in progress with the same).
 * election.c calls this, then the tick, when its own contact rule (a
 * sliding window, where raft's fixed window allows up to two election
 * timeouts) says the quorum is gone. */
void peek_expire_contact_quorum(struct raft *r)
{
    unsigned i;
    if (r->state != RAFT_LEADER || r->leader_state.progress == NULL) {
        return;
    }
    r->election_timer_start = r->io->time(r->io) - r->election_timeout;
    for (i = 0; i < r->configuration.n; i++) {
        r->leader_state.progress[i].recent_recv = false;
    }
}

/* r->io and io->data (write): raft_fixture creates each server's `struct
 * raft` itself, with raft_init on its in-memory io (fixture.c serverInit).
 * To run our io decorator (io.c) in front of it, as ledgerd runs it in
 * front of raft_uv, the instance is pointed at the decorator and the
 * decorator's data at the instance, exactly what raft_init would have done
 * (raft.c: `r->io = io; r->io->data = r`). Before raft_start only: the
 * inner io's init() already ran. */
void peek_adopt_io(struct raft *r, struct raft_io *io)
{
    r->io = io;
    io->data = r;
}
