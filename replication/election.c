/* Election timing, both sides: a follower forgets a silent leader, draws
 * narrower timeouts, simultaneous candidates settle in one round (a
 * tie-break by id, prompt pre-vote rounds after a refusal), and a leader that
 * lost its majority steps down within one election timeout.
 *
 * 1. Stickiness (thesis section 4.2.3), follower side.
 * The thesis: a server that receives a RequestVote "within the minimum
 * election timeout of hearing from a current leader" does not grant it.
 * raft 0.15 is stickier: a follower refuses every vote (and pre-vote) for
 * as long as it remembers a leader at all, and it forgets the leader only
 * when its own randomised timeout (1-2x the election timeout) fires. After
 * the leader dies, the first follower to time out is therefore refused by
 * the others and has to wait out a second timeout: the election takes the
 * *latest* of the followers' timeouts instead of the earliest (measured:
 * median 1.7 s at --election-ms 1000 on three nodes).
 * repl__election_tick restores the thesis rule: a follower that has not
 * heard from its leader for a full (minimum) election timeout forgets the
 * leader's id (raft_peek.c), so it grants a pre-vote and a vote to the
 * first candidate. It does not start an election itself; its own timer
 * still does that. The same check runs when a vote or pre-vote request
 * arrives, before raft sees it, so a request that comes a few ms after
 * the T is not refused for want of a layer tick (up to T/20 later).
 *
 * 2. Range. raft 0.15 draws each follower's and candidate's timeout once
 * per term (not per heartbeat) from [T, 2T). With two survivors the new
 * leader arrives after the earlier of their two draws, median about
 * 1.3 T plus a tick. ledger halves the random part: [T, 1.5T), mapped at
 * the draw itself (io.c decorates raft_io->random, which raft 0.15 calls
 * for nothing else). The minimum, and so the guarantee that no follower
 * stands up before T ms of silence, is unchanged; simultaneous
 * candidacies stay rare (pre-vote, 0.5T of spread against millisecond
 * vote round trips).
 *
 * 3. Contact quorum, leader side (thesis section 6.2: "A leader in Raft
 * steps down if an election timeout elapses without a successful round of
 * heartbeats to a majority of its cluster").
 * raft 0.15 checks this in fixed windows (tick.c, tickLeader ->
 * checkContactQuorum): once per election timeout it looks whether each
 * voter's progress.recent_recv flag was set since the previous check, and
 * clears them. A leader cut off just after a check still finds the flags
 * set by messages received before the cut at the next check, so it steps
 * down only at the one after: between T and 2T (plus a heartbeat of tick
 * drift) after the cut, while its clients wait. This holds for every way
 * of losing the majority, one-way partitions included: when the leader
 * can send but not receive, followers keep it as leader and only the
 * leader's own check ends its term; when it can receive but not send,
 * the followers elect another leader after T..1.5T and the old one steps
 * down at the first message of the new term, or by the check.
 * ledger's rule is a sliding window over the same signal: io.c records
 * when each member's last AppendEntries result of the current term
 * arrived; at every tick a leader counts the voters heard within the last
 * T ms (itself included, as raft does, and every voter counts as heard at
 * the moment this node became leader); without a majority it makes raft's
 * next tick find the quorum lost (raft_peek.c) and runs that tick at
 * once. So a leader steps down at most T plus one tick (T/20, 5..50 ms)
 * after its last contact with a majority, through raft's own path: its
 * pending applies end with RAFT_LEADERSHIPLOST (EUNKNOWN to callers), its
 * barriers too, and a promotion in progress fails.
 *
 * 4. Tie-break between simultaneous candidates (pre-vote phase).
 * When a leader freezes, its followers lose it at the same moment; two
 * whose draws fall close together stand within a message delay of each
 * other. Each grants the other's pre-vote (raft 0.15 grants pre-votes to
 * any up-to-date log, candidate or not), both go on to the real vote, each
 * votes for itself, and with two survivors of three neither can win: a
 * second round, 1-1.5 T later (gray's SIGSTOP runs: 1 in ~6). io.c now
 * runs raft's tick at the timer's expiry (10 ms resolution instead of a
 * heartbeat), which makes such near-ties rarer; for the rest,
 * repl__election_filter breaks the tie by id: a pre-candidate that saw a
 * pre-vote request for the same term from a voter with a lower id, whose
 * log is at least as up to date as its own, during its round or at most
 * REPL__TIE_WINDOW (T/10) before it started, yields this round. It still
 * grants that pre-vote (raft does), but ignores the pre-vote answers to
 * its own requests, so it never raises its term; the other wins, and its
 * RequestVote converts this node to follower. The yield lasts one round:
 * if the other cannot win, this node stands again at its next timeout, as
 * after a split vote; the short window keeps a lower id that keeps asking
 * and cannot win (it can send but not receive) from holding this node
 * back more than a round in ten.
 * And a candidate that already stands in term t (it passed its pre-vote
 * and voted for itself) leaves pre-vote requests for terms up to t
 * unanswered: raft 0.15 would grant them, and the late-comer would pass
 * its pre-vote and stand in the same term as well (measured on the
 * fixture: most of the split votes left after the tick change). The
 * late-comer gets our RequestVote instead and follows.
 * Only a pre-vote request this node grants is a tie. On a loaded machine
 * the frozen leader's last heartbeat reaches the survivors tens of ms
 * apart; the one that heard it first (L) may stand while the other (H)
 * still remembers the leader, and H refuses. If H then stands within the
 * window and had counted L's refused request as a tie, it yielded to a
 * node that could not win with H's refusal, and both waited a whole new
 * timeout: a new leader about 2T after the freeze (gray's SIGSTOP rounds
 * at 2.6 s). So the tie is recorded only when raft will grant the
 * request (no leader remembered, not leading, term and log as recent).
 *
 * 5. A node without a leader that refuses for the log stands at once.
 * The other half of the same skew: H, which heard the leader last, may
 * still lack the last entry L got (its copy was on the way when the
 * leader froze). L stands first and H refuses (it remembers the leader);
 * H stands next and L refuses (H's log is behind). raft 0.15 then waits
 * for L's next timeout, another T..1.5T. But a voter that asks for
 * pre-votes remembers no leader, so it would grant L's now: a
 * pre-candidate, or a follower that remembers no leader, that receives a
 * pre-vote request for its own next term from a log behind its own
 * stands (again) at once (a request for an older term is stale: an old
 * leader resumed after a SIGSTOP reads such requests from its socket): its
 * election timer is made to expire (raft_peek.c) and io.c runs raft's tick at
 * the expiry, within 10 ms. It still refuses the request (raft does). Each such
 * request starts at most one round, and the round is raft's own (a pre-vote for
 * the next term, a new draw), so nothing loops and no term moves without a
 * pre-vote majority.
 *
 * 6. A follower that refused a peer for its leader stands when it
 * forgets that leader. When L stood first and H refused it only because
 * H still remembered the leader (L's log as recent, L's term next), L
 * waits a new timeout and H would stand at its own draw, up to 1.5T
 * after its last contact. So H notes the refusal, and when the silence
 * rule (1) makes it forget the leader at its tick, within T of that
 * refusal, it stands at once (the same timer expiry as in rule 5): L, a
 * pre-candidate, grants it (or, its log ahead, stands again by rule 5).
 * Not when the forgetting happens as a request arrives: that request is
 * granted (its sender wins) or rule 5 applies. Only a node that lost the
 * leader for T itself stands early, and only after a peer lost it too;
 * pre-vote still keeps it harmless if the others hear a leader.
 *
 * Invariants:
 * - Safety is unaffected: vote granting still checks term and log
 *   up-to-dateness; stickiness, tie-break, restart and step-down are
 *   liveness rules only.
 * - A leader that hears from a majority at least once per T ms never
 *   steps down by this rule: heartbeats go out every heartbeat_ms < T and
 *   every one is answered.
 */
#include "raft_peek.h"
#include "repl_int.h"

/* How long before our round a lower id's pre-vote request still counts as
 * a tie (ms). */
#define REPL__TIE_WINDOW(r) ((uint64_t)(r)->cfg.election_ms / 10)

static const char *stateName(int state)
{
    switch (state) {
    case RAFT_FOLLOWER:
        return "follower";
    case RAFT_CANDIDATE:
        return "candidate";
    case RAFT_LEADER:
        return "leader";
    default:
        return "unavailable";
    }
}

/* Debug: every vote message as this node sees it, with what raft will
 * weigh (our state, the leader we remember and for how long it has been
 * silent, our log), so that an election's rounds can be read from the
 * logs of a real cluster. */
static void traceVote(ledger_repl *r, const struct raft_message *m,
                      uint64_t now)
{
    struct raft *raft = r->raft;
    raft_id leader = 0;
    const char *addr = NULL;
    uint64_t start = peek_election_timer_start(raft);

    if (r->log == NULL) {
        return;
    }
    raft_leader(raft, &leader, &addr);
    if (m->type == RAFT_IO_REQUEST_VOTE) {
        const struct raft_request_vote *v = &m->request_vote;
        repl__log(
            r, LEDGER_REPL_DEBUG,
            "%s request from %llu for term %llu (log %llu/%llu); "
            "here: %s%s term %llu, leader %llu silent %lld ms, "
            "log %llu/%llu",
            v->pre_vote ? "pre-vote" : "vote", (unsigned long long)m->server_id,
            (unsigned long long)v->term, (unsigned long long)v->last_log_index,
            (unsigned long long)v->last_log_term, stateName(raft_state(raft)),
            peek_in_pre_vote(raft) ? " (pre-vote)" : "",
            (unsigned long long)peek_term(raft), (unsigned long long)leader,
            (long long)(now - start), (unsigned long long)raft_last_index(raft),
            (unsigned long long)peek_last_log_term(raft));
    } else {
        const struct raft_request_vote_result *v = &m->request_vote_result;
        repl__log(r, LEDGER_REPL_DEBUG,
                  "%s answer from %llu: %s (term %llu); here: %s%s term %llu",
                  v->pre_vote == raft_tribool_true ? "pre-vote" : "vote",
                  (unsigned long long)m->server_id,
                  v->vote_granted ? "granted" : "refused",
                  (unsigned long long)v->term, stateName(raft_state(raft)),
                  peek_in_pre_vote(raft) ? " (pre-vote)" : "",
                  (unsigned long long)peek_term(raft));
    }
}

/* Follower: forget a leader silent for a full election timeout (rule 1);
 * with `stand`, also apply rule 6. */
static void forgetSilentLeader(ledger_repl *r, uint64_t now, bool stand)
{
    raft_id leader = 0;
    const char *addr = NULL;
    uint64_t start;

    if (raft_state(r->raft) != RAFT_FOLLOWER) {
        return;
    }
    raft_leader(r->raft, &leader, &addr);
    if (leader == 0) {
        return;
    }
    start = peek_election_timer_start(r->raft);
    if (now >= start && now - start >= r->cfg.election_ms) {
        repl__log(r, LEDGER_REPL_INFO,
                  "no word from leader %llu for %llu ms: ready to vote "
                  "for a new one",
                  (unsigned long long)leader,
                  (unsigned long long)(now - start));
        peek_forget_leader(r->raft);
        if (stand && r->refused_at != 0 &&
            now - r->refused_at < r->cfg.election_ms &&
            r->refused_term == peek_term(r->raft) + 1) {
            /* Rule 6: a peer lost the leader before us and we refused it;
             * it waits for a new timeout. Stand now. */
            repl__log(r, LEDGER_REPL_INFO,
                      "%llu asked for a pre-vote %llu ms ago, refused for "
                      "the leader we remembered: standing now",
                      (unsigned long long)r->refused_id,
                      (unsigned long long)(now - r->refused_at));
            r->refused_at = 0;
            peek_expire_election_timer(r->raft);
        }
    }
}

static bool rememberLeader(struct raft *raft)
{
    raft_id leader = 0;
    const char *addr = NULL;
    raft_leader(raft, &leader, &addr);
    return leader != 0;
}

/* Is the requester's log behind ours (electionVote refuses it)? */
static bool logBehind(ledger_repl *r, const struct raft_request_vote *v)
{
    uint64_t last_term = peek_last_log_term(r->raft);
    return v->last_log_term < last_term ||
           (v->last_log_term == last_term &&
            v->last_log_index < raft_last_index(r->raft));
}

/* Will raft 0.15 grant this pre-vote (recv_request_vote.c,
 * electionVote)? Not while we lead or follow a leader we remember, not
 * for a term below ours, not from a log behind ours. */
static bool grantsPreVote(ledger_repl *r, const struct raft_request_vote *v)
{
    struct raft *raft = r->raft;
    raft_id leader = 0;
    const char *addr = NULL;

    if (raft_state(raft) == RAFT_LEADER) {
        return false;
    }
    raft_leader(raft, &leader, &addr);
    if (raft_state(raft) == RAFT_FOLLOWER && leader != 0) {
        return false;
    }
    if (v->term < peek_term(raft)) {
        return false;
    }
    return !logBehind(r, v);
}

bool repl__election_filter(ledger_repl *r, const struct raft_message *m)
{
    struct raft *raft = r->raft;
    uint64_t now = repl__now(r);
    uint64_t round;

    if (m->type != RAFT_IO_REQUEST_VOTE &&
        m->type != RAFT_IO_REQUEST_VOTE_RESULT) {
        return false;
    }
    traceVote(r, m, now);
    if (raft_state(raft) == RAFT_CANDIDATE && !peek_in_pre_vote(raft) &&
        m->type == RAFT_IO_REQUEST_VOTE && m->request_vote.pre_vote &&
        m->request_vote.term <= peek_term(raft)) {
        /* We stand for this term already (voted for ourselves): a pre-vote
         * granted now would only start a rival election in the same term.
         * Unanswered, the other waits for our RequestVote. */
        return true;
    }
    if (m->type == RAFT_IO_REQUEST_VOTE) {
        /* The stickiness rule (1) at the moment it matters, not up to a
         * layer tick later. Not rule 6: we grant this request if its log
         * is as recent as ours (it wins), else rule 5 makes us stand. */
        forgetSilentLeader(r, now, false);
    }
    if (m->type == RAFT_IO_REQUEST_VOTE && m->request_vote.pre_vote &&
        raft_state(raft) == RAFT_FOLLOWER &&
        !grantsPreVote(r, &m->request_vote) &&
        m->request_vote.term == peek_term(raft) + 1 &&
        !logBehind(r, &m->request_vote)) {
        /* Refused only for the leader we remember (rule 6). */
        r->refused_at = now;
        r->refused_term = m->request_vote.term;
        r->refused_id = m->server_id;
    }
    if (m->type == RAFT_IO_REQUEST_VOTE && m->request_vote.pre_vote &&
        (peek_in_pre_vote(raft) ||
         (raft_state(raft) == RAFT_FOLLOWER && !rememberLeader(raft))) &&
        m->request_vote.term == peek_term(raft) + 1 &&
        logBehind(r, &m->request_vote)) {
        /* Rule 5: raft refuses it (its log is behind ours), but a voter
         * asking for pre-votes remembers no leader: it would grant ours
         * now. Stand (again) at once instead of at our next timeout. */
        repl__log(r, LEDGER_REPL_INFO,
                  "pre-vote request from %llu, whose log is behind ours: "
                  "asking for pre-votes again now",
                  (unsigned long long)m->server_id);
        peek_expire_election_timer(raft);
        return false;
    }
    if (m->type == RAFT_IO_REQUEST_VOTE && m->request_vote.pre_vote &&
        m->server_id < r->cfg.id && grantsPreVote(r, &m->request_vote)) {
        /* A lower id would take this term, with our pre-vote: remember
         * when (raft answers). A pre-vote raft refuses is no tie: that
         * node cannot win with it, and yielding to it would cost both of
         * us a whole timeout. */
        r->tie_term = m->request_vote.term;
        r->tie_at = now;
        r->tie_id = m->server_id;
        return false;
    }
    if (m->type != RAFT_IO_REQUEST_VOTE_RESULT || !peek_in_pre_vote(raft) ||
        m->request_vote_result.pre_vote != raft_tribool_true) {
        return false;
    }
    /* An answer to our pre-vote: yield if that lower id asked for the same
     * term during this round or just before it. */
    round = peek_election_timer_start(raft);
    if (r->tie_term == peek_term(raft) + 1 &&
        r->tie_at + REPL__TIE_WINDOW(r) >= round) {
        if (r->tie_logged != round) {
            r->tie_logged = round;
            repl__log(r, LEDGER_REPL_INFO,
                      "pre-vote tie with %llu (lower id, log as recent): "
                      "yielding this round",
                      (unsigned long long)r->tie_id);
        }
        return true;
    }
    return false;
}

int repl__election_draw(ledger_repl *r, int min, int max, int drawn)
{
    (void)r;
    (void)max;
    if (drawn > min) {
        drawn = min + (drawn - min) / 2;
    }
    return drawn;
}

/* Leader: have we heard from a majority of voters within T? */
static bool contactQuorum(ledger_repl *r, uint64_t now)
{
    const struct raft_configuration *c = peek_configuration(r->raft);
    unsigned voters = 0;
    unsigned heard = 0;
    unsigned i;

    for (i = 0; i < c->n; i++) {
        const struct raft_server *s = &c->servers[i];
        struct repl__contact *k;
        uint64_t last;
        if (s->role == RAFT_VOTER) {
            voters++;
        }
        if (s->id == r->cfg.id) {
            heard++; /* As raft counts itself, voter or not. */
            continue;
        }
        if (s->role != RAFT_VOTER) {
            continue;
        }
        k = repl__contact_for(r, s->id);
        last = k != NULL ? k->last_contact : 0;
        if (last < r->leader_since) {
            last = r->leader_since;
        }
        if (now - last < r->cfg.election_ms) {
            heard++;
        }
    }
    return heard > voters / 2;
}

bool repl__election_tick(ledger_repl *r)
{
    uint64_t now = repl__now(r);

    if (raft_state(r->raft) == RAFT_LEADER) {
        if (contactQuorum(r, now)) {
            return false;
        }
        repl__log(r, LEDGER_REPL_WARN,
                  "no answer from a majority of voters for %u ms: stepping "
                  "down (term %llu)",
                  r->cfg.election_ms, (unsigned long long)peek_term(r->raft));
        peek_expire_contact_quorum(r->raft);
        r->stepped_down = true;
        return true;
    }
    forgetSilentLeader(r, now, true);
    return false;
}
