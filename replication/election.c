/* Election timing: leader stickiness as the Raft thesis states it, and a
 * narrower randomised timeout.
 *
 * 1. Stickiness (thesis section 4.2.3).
 * The thesis: a server that receives a RequestVote "within the minimum
 * election timeout of hearing from a current leader" does not grant it.
 * raft 0.15 is stickier: a follower refuses every vote (and pre-vote) for
 * as long as it remembers a leader at all, and it forgets the leader only
 * when its own randomised timeout (1-2x the election timeout) fires. After
 * the leader dies, the first follower to time out is therefore refused by
 * the others and has to wait out a second timeout: the election takes the
 * *latest* of the followers' timeouts instead of the earliest (measured:
 * median 1.7 s at --election-ms 1000 on three nodes).
 *
 * repl__election_tick restores the thesis rule: a follower that has not
 * heard from its leader for a full (minimum) election timeout forgets the
 * leader's id, so it grants a pre-vote and a vote to the first candidate.
 * It does not start an election itself; its own timer still does that.
 *
 * 2. Range. raft 0.15 draws each follower's and candidate's timeout once
 * per term (not per heartbeat) from [T, 2T). With two survivors the new
 * leader arrives after the earlier of their two draws, median about
 * 1.3 T plus a tick. ledger halves the random part: [T, 1.5T), drawn by raft
 * and rescaled here within one tick of the draw (long before it can fire,
 * since T is at least 20 ticks). The minimum, and so the guarantee that no
 * follower stands up before T ms of silence, is unchanged; simultaneous
 * candidacies stay rare (pre-vote, 0.5T of spread against millisecond
 * vote round trips).
 *
 * Invariants:
 * - Only the id is cleared, never the address: raft may still send a
 *   pending AppendEntries result to current_leader.address, which must stay
 *   a valid string. The next AppendEntries from any leader sets both again.
 * - Safety is unaffected: vote granting still checks term and log
 *   up-to-dateness; stickiness is a liveness/disruption rule only, and a
 *   leader that is alive keeps resetting the timer well before it fires.
 * - The fields read and written here are public in raft.h (0.15) and are
 *   touched in this file only.
 */
#include "repl_int.h"

/* Map a fresh draw from [T, 2T) onto [T, 1.5T). */
static void narrow(ledger_repl *r, unsigned *timeout)
{
    unsigned t = r->raft.election_timeout;
    if (*timeout == r->drawn_timeout) {
        return; /* already ours (or, rarely, the same draw: harmless) */
    }
    if (*timeout > t) {
        *timeout = t + (*timeout - t) / 2;
    }
    r->drawn_timeout = *timeout;
}

void repl__election_tick(ledger_repl *r)
{
    raft_time now;

    if (r->raft.state == RAFT_FOLLOWER) {
        narrow(r, &r->raft.follower_state.randomized_election_timeout);
    } else if (r->raft.state == RAFT_CANDIDATE) {
        narrow(r, &r->raft.candidate_state.randomized_election_timeout);
    }
    if (r->raft.state != RAFT_FOLLOWER ||
        r->raft.follower_state.current_leader.id == 0) {
        return;
    }
    now = r->io.time(&r->io);
    if (now >= r->raft.election_timer_start &&
        now - r->raft.election_timer_start >= r->raft.election_timeout) {
        repl__log(r, 1,
                  "no word from leader %llu for %llu ms: ready to vote "
                  "for a new one",
                  (unsigned long long)r->raft.follower_state.current_leader.id,
                  (unsigned long long)(now - r->raft.election_timer_start));
        r->raft.follower_state.current_leader.id = 0;
    }
}
