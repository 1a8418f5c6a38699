/* Replication lag as seen by the leader.
 *
 * raft 0.15 has no lag API; the leader's per-follower match index comes
 * from its progress array (raft_peek.c), valid only while leader.
 *
 * lag_entries = leader's last index - follower's match index.
 * lag_ms      = how long ago the oldest entry the follower lacks was
 *               appended on the leader (0 when it lacks none). Append times
 *               come from a ring of the last REPL__TIME_RING proposals; an
 *               entry not in the ring counts from the earliest proposal
 *               after it (a lower bound).
 * last_contact_ms: time since the follower's last AppendEntries result of
 *               the current term arrived (io.c records it as raft receives
 *               it; election.c's contact rule reads the same times).
 * applied_index: what the member itself last reported (node/members_poll.c
 * polls it) while fresh, else min(match_index, commit_index): what it holds
 * that is committed, so what it will apply next. Spares get no entries from the
 * leader: no lag, no contact, "follower".
 */
#include <string.h>

#include "raft_peek.h"
#include "repl_int.h"

void repl__lag_record(ledger_repl *r, uint64_t index)
{
    size_t slot = index % REPL__TIME_RING;
    r->ring[slot].index = index;
    r->ring[slot].time = repl__now(r);
}

/* When was `index` appended? Its own record if the ring has it, else the
 * earliest proposal after it (entries the leader appends itself, such as
 * configuration changes, are not recorded, and an entry is appended no
 * later than the next one). 0 if unknown. */
static uint64_t appendTime(ledger_repl *r, uint64_t index)
{
    uint64_t best = 0;
    size_t i;
    for (i = 0; i < REPL__TIME_RING; i++) {
        if (r->ring[i].index == index && r->ring[i].time != 0) {
            return r->ring[i].time;
        }
        if (r->ring[i].index > index && r->ring[i].time != 0 &&
            (best == 0 || r->ring[i].time < best)) {
            best = r->ring[i].time;
        }
    }
    return best;
}

struct repl__contact *repl__contact_for(ledger_repl *r, uint64_t id)
{
    size_t i;
    struct repl__contact *free_slot = NULL;
    for (i = 0; i < REPL__MAX_MEMBERS; i++) {
        if (r->contact[i].id == id) {
            return &r->contact[i];
        }
        if (r->contact[i].id == 0 && free_slot == NULL) {
            free_slot = &r->contact[i];
        }
    }
    if (free_slot != NULL) {
        memset(free_slot, 0, sizeof *free_slot);
        free_slot->id = id;
    }
    return free_slot;
}

void ledger_repl_note_applied(ledger_repl *r, uint64_t id, uint64_t applied)
{
    struct repl__contact *k = repl__contact_for(r, id);
    if (k != NULL) {
        k->applied = applied;
        k->applied_at = repl__now(r);
    }
}

void repl__contact_heard(ledger_repl *r, uint64_t id, uint64_t now)
{
    struct repl__contact *k = repl__contact_for(r, id);
    if (k != NULL) {
        k->last_contact = now;
    }
}

/* Drop the records of ids no longer in the configuration: a member that
 * was removed and joins again starts without its old contact and applied
 * figures, and churn through new ids never runs out of slots. */
static void forgetRemoved(ledger_repl *r, const struct raft_configuration *c)
{
    size_t i;
    unsigned j;
    for (i = 0; i < REPL__MAX_MEMBERS; i++) {
        bool member = false;
        if (r->contact[i].id == 0) {
            continue;
        }
        for (j = 0; j < c->n && !member; j++) {
            member = c->servers[j].id == r->contact[i].id;
        }
        if (!member) {
            memset(&r->contact[i], 0, sizeof r->contact[i]);
        }
    }
}

void repl__lag_tick(ledger_repl *r)
{
    const struct raft_configuration *c = peek_configuration(r->raft);
    struct peek_progress p;
    unsigned i;

    if (c->n > 0) {
        forgetRemoved(r, c);
    }
    if (raft_state(r->raft) != RAFT_LEADER) {
        return;
    }
    for (i = 0; i < c->n; i++) {
        struct repl__contact *k = repl__contact_for(r, c->servers[i].id);
        if (k != NULL && peek_progress(r->raft, i, &p)) {
            k->match_index = p.match_index;
        }
    }
}

size_t ledger_repl_members(ledger_repl *r, struct ledger_repl_member_info *out,
                           size_t max)
{
    const struct raft_configuration *c = peek_configuration(r->raft);
    int state = raft_state(r->raft);
    bool leader = state == RAFT_LEADER;
    raft_index last = raft_last_index(r->raft);
    uint64_t commit = peek_commit_index(r->raft);
    raft_id leader_id = 0;
    const char *leader_addr = NULL;
    uint64_t now = repl__now(r);
    unsigned i;

    raft_leader(r->raft, &leader_id, &leader_addr);
    for (i = 0; i < c->n && i < max; i++) {
        struct ledger_repl_member_info *m = &out[i];
        const struct raft_server *s = &c->servers[i];
        memset(m, 0, sizeof *m);
        m->id = s->id;
        snprintf(m->raft_addr, sizeof m->raft_addr, "%s", s->address);
        if (!repl__member_api(r, s->id, m->api_addr, sizeof m->api_addr)) {
            m->api_addr[0] = '\0';
        }
        m->role = s->role;
        m->last_contact_ms = -1;
        ledger_store_member_zone(r->store, s->id, m->zone, sizeof m->zone);
        if (s->id == r->cfg.id) {
            m->state =
                leader ? "leader"
                       : (state == RAFT_CANDIDATE ? "candidate" : "follower");
            m->match_index = last;
            m->applied_index = repl__applied(r);
            m->last_contact_ms = 0;
        } else if (leader && s->role == RAFT_SPARE) {
            /* The leader sends nothing to spares: no lag, no contact. */
            m->state = "follower";
        } else if (leader) {
            struct peek_progress pp = {0, false};
            struct peek_progress *p = &pp;
            struct repl__contact *k = repl__contact_for(r, s->id);
            peek_progress(r->raft, i, &pp);
            m->match_index = p->match_index;
            /* A follower applies what it has that is committed. */
            m->applied_index =
                p->match_index < commit ? p->match_index : commit;
            if (k != NULL && k->applied_at != 0 &&
                now - k->applied_at < REPL_APPLIED_FRESH_MS) {
                m->applied_index = k->applied;
            }
            m->lag_entries = last > p->match_index ? last - p->match_index : 0;
            if (m->lag_entries > 0) {
                uint64_t t = appendTime(r, p->match_index + 1);
                m->lag_ms = t != 0 && now > t ? now - t : 0;
            }
            if (k != NULL && k->last_contact != 0) {
                m->last_contact_ms = (int64_t)(now - k->last_contact);
            }
            m->state = (p->recent_recv ||
                        (m->last_contact_ms >= 0 &&
                         m->last_contact_ms <= (int64_t)r->cfg.election_ms))
                           ? "follower"
                           : "unreachable";
        } else {
            m->state = s->id == leader_id ? "leader" : "follower";
        }
    }
    return c->n;
}
