/* Automatic roles: the decision, as a pure function (node/roles_policy.c).
 *
 * Given the cluster-wide targets and each member's role and health as the
 * leader sees them, roles_next() names the one membership change to make
 * next, or none. No I/O and no clock: node/roles.c feeds it once a second
 * and applies its answer through replication/membership.c, one change at
 * a time.
 *
 * Terms:
 * - dead: unreachable for longer than dead_after_s;
 * - healthy: reachable and healthy without a break for ROLES_HEALTHY_MS
 *   (the caller decides what healthy means per role: for voters and
 *   standbys last contact under ROLES_MAX_CONTACT_MS and fewer than
 *   ROLES_MAX_LAG entries behind; spares get no Raft traffic, so for them
 *   answering the leader's status poll);
 * - alive voters: voters that are not dead; live voters: reachable ones.
 *
 * Rules, the first that applies wins (targets voters 0: manual, nothing):
 *  1. fewer alive voters than the target: promote the best healthy
 *     standby, else spare, to voter (a dead voter is replaced before it is
 *     taken out, so the voter count never dips);
 *  2. more voters than the target: demote one, never the leader: dead
 *     ones first (to spare), then unreachable ones (to spare), then one
 *     from the zone with the most voters, then ones not healthy now
 *     (behind or slow to answer), then the highest id (to standby);
 *  3. voters at the target but a zone holds two more voters than the zone
 *     of a healthy labelled standby or spare: promote it (rule 2 then
 *     demotes one of the crowded zone);
 *  4. a dead standby: demote it to spare;
 *  5. fewer standbys than the target: promote the best healthy spare;
 *  6. more standbys than the target: demote one to spare (unreachable,
 *     then most behind, then highest id).
 * No demotion ever leaves fewer live voters than a majority of the voters
 * (the live ones keep a quorum). "Best" candidate: its zone has the fewest
 * live voters (labelled members only; no label: no preference), then a
 * standby before a spare, then fewer entries behind, then healthy for
 * longer, then the lowest id.
 */
#ifndef LEDGER_NODE_ROLES_POLICY_H
#define LEDGER_NODE_ROLES_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ROLES_HEALTHY_MS 10000   /* Healthy this long before a promotion. */
#define ROLES_MAX_CONTACT_MS 200 /* Healthy: last contact under this, */
#define ROLES_MAX_LAG 250        /* and fewer entries behind than this. */
#define ROLES_DEAD_AFTER_S_DEFAULT 30
#define ROLES_DEAD_AFTER_S_MIN 5
#define ROLES_DEAD_AFTER_S_MAX 86400 /* A day. */
#define ROLES_VOTERS_MAX 15          /* More voters only slow commits. */

/* Cluster-wide targets (replicated). voters 0: manual, as before. */
struct roles_targets {
    unsigned voters;
    unsigned standbys;
    unsigned dead_after_s;
};

/* One member as the leader sees it now. */
struct roles_member {
    uint64_t id;
    int role;         /* REPL_ROLE_VOTER, _STANDBY, _SPARE */
    bool leader;      /* The leader (never demoted). */
    const char *zone; /* "" or NULL: no label. */
    bool reachable;
    uint64_t healthy_ms;     /* Healthy without a break for; 0: not now. */
    uint64_t unreachable_ms; /* Unreachable without a break for; 0 when
                                reachable. */
    uint64_t lag_entries;
};

/* Why a change is made (the `reason` label of its metric). */
enum roles_reason {
    ROLES_REASON_DEAD = 0,     /* Replaces or parks a dead member. */
    ROLES_REASON_BELOW_TARGET, /* Fewer than the target. */
    ROLES_REASON_ABOVE_TARGET, /* More than the target. */
    ROLES_REASON_ZONE_SPREAD,  /* Spreads voters over zones. */
    ROLES_REASON__COUNT
};
const char *roles_reason_name(enum roles_reason r);

struct roles_change {
    uint64_t id;
    int from; /* Its role now. */
    int to;   /* The role it gets. */
    enum roles_reason reason;
    char why[200]; /* One line for the log, e.g. "replaces voter 3,
                      unreachable for 31 s". */
};

/* ---- Health bookkeeping (the input of roles_next) ---------------------- */

/* What the leader sees of one member at one check. */
struct roles_seen {
    uint64_t id;
    int role;
    const char *zone;
    bool self;               /* The leader itself. */
    bool reachable;          /* Not "unreachable" in the leader's view. */
    int64_t last_contact_ms; /* -1: never, since this node leads. */
    uint64_t lag_entries;
};

#define ROLES_TRACK_MAX 64 /* Members tracked, at most. */

/* How long each member has been healthy, and in its role, across checks. */
struct roles_tracker {
    uint64_t lead_at; /* When this node took the lead (ms, any clock). */
    struct {
        uint64_t id;            /* 0: free. */
        uint64_t healthy_since; /* 0: not healthy at the last check. */
        int role;               /* Its role at the last check, */
        uint64_t role_since;    /* first seen in it at. */
    } t[ROLES_TRACK_MAX];
};

/* Forget everything: this node took the lead at `now`. */
void roles_tracker_reset(struct roles_tracker *t, uint64_t now);

/* One check at `now` (same clock as the reset): healthy now is reachable
 * and, for voters and standbys, last contact under ROLES_MAX_CONTACT_MS and
 * fewer than ROLES_MAX_LAG entries behind (a spare: any answer at all); the
 * leader itself is. Fills out[0..n) for roles_next: healthy_ms since the
 * member became healthy without a break, unreachable_ms since its last
 * contact, but never longer than since this leader first saw it in its
 * current role (a spare just made standby was never contacted by Raft: its
 * last contact, if any, is from before it was a spare, or from a previous
 * lead; it must not count as dead at once). Members not in `in` are
 * forgotten. */
void roles_observe(struct roles_tracker *t, uint64_t now,
                   const struct roles_seen *in, size_t n,
                   struct roles_member *out);

/* The next change, if any (true: *out is filled). */
bool roles_next(const struct roles_targets *t, const struct roles_member *m,
                size_t n, struct roles_change *out);

/* Check targets against the cluster (n_members members): ROLES_OK,
 * ROLES_BAD (malformed: even voters, standbys without voters, dead-after
 * out of range) or ROLES_UNMET (more voters + standbys than members); err
 * holds one line. */
enum { ROLES_OK = 0, ROLES_BAD, ROLES_UNMET };
int roles_check(const struct roles_targets *t, size_t n_members, char *err,
                size_t len);

#endif /* LEDGER_NODE_ROLES_POLICY_H */
