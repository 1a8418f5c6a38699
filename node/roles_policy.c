/* Automatic roles: the pure decision (see roles_policy.h for the rules). */
#include "roles_policy.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "replication/repl.h"

const char *roles_reason_name(enum roles_reason r)
{
    static const char *names[ROLES_REASON__COUNT] = {
        "dead", "below_target", "above_target", "zone_spread"};
    return r < ROLES_REASON__COUNT ? names[r] : "unknown";
}

struct view {
    const struct roles_targets *t;
    const struct roles_member *m;
    size_t n;
    uint64_t dead_ms;
};

static bool isDead(const struct view *v, const struct roles_member *m)
{
    return !m->reachable && m->unreachable_ms > v->dead_ms;
}

static bool isHealthy(const struct roles_member *m)
{
    return m->reachable && m->healthy_ms >= ROLES_HEALTHY_MS;
}

static bool labelled(const struct roles_member *m)
{
    return m->zone != NULL && m->zone[0] != '\0';
}

static size_t count(const struct view *v, int role, bool alive_only,
                    bool live_only)
{
    size_t c = 0;
    for (size_t i = 0; i < v->n; i++) {
        const struct roles_member *m = &v->m[i];
        if (m->role == role && !(alive_only && isDead(v, m)) &&
            !(live_only && !m->reachable)) {
            c++;
        }
    }
    return c;
}

/* Live voters labelled with `zone`. */
static size_t zoneVoters(const struct view *v, const char *zone)
{
    size_t c = 0;
    for (size_t i = 0; i < v->n; i++) {
        const struct roles_member *m = &v->m[i];
        if (m->role == REPL_ROLE_VOTER && m->reachable && labelled(m) &&
            strcmp(m->zone, zone) == 0) {
            c++;
        }
    }
    return c;
}

/* The most live voters any one zone holds. */
static size_t maxZoneVoters(const struct view *v)
{
    size_t best = 0;
    for (size_t i = 0; i < v->n; i++) {
        const struct roles_member *m = &v->m[i];
        if (m->role == REPL_ROLE_VOTER && m->reachable && labelled(m)) {
            size_t c = zoneVoters(v, m->zone);
            best = c > best ? c : best;
        }
    }
    return best;
}

/* "Best" promotion candidate order: true when a should go before b. The
 * zone count is SIZE_MAX for an unlabelled member when zones_matter (it
 * spreads nothing), so a labelled one in a thin zone goes first. */
static bool betterCandidate(const struct view *v, const struct roles_member *a,
                            const struct roles_member *b)
{
    size_t za = labelled(a) ? zoneVoters(v, a->zone) : SIZE_MAX;
    size_t zb = labelled(b) ? zoneVoters(v, b->zone) : SIZE_MAX;
    bool sa = a->role == REPL_ROLE_STANDBY;
    bool sb = b->role == REPL_ROLE_STANDBY;
    if (za != zb) {
        return za < zb;
    }
    if (sa != sb) {
        return sa;
    }
    if (a->lag_entries != b->lag_entries) {
        return a->lag_entries < b->lag_entries;
    }
    if (a->healthy_ms != b->healthy_ms) {
        return a->healthy_ms > b->healthy_ms;
    }
    return a->id < b->id;
}

/* The best healthy member of role r1 (or r2, -1: none) for promotion; with
 * zone_below set, only labelled members whose zone has at most that many
 * live voters. NULL when none. */
static const struct roles_member *bestCandidate(const struct view *v, int r1,
                                                int r2, size_t zone_below)
{
    const struct roles_member *best = NULL;
    for (size_t i = 0; i < v->n; i++) {
        const struct roles_member *m = &v->m[i];
        if ((m->role != r1 && m->role != r2) || !isHealthy(m)) {
            continue;
        }
        if (zone_below != SIZE_MAX &&
            (!labelled(m) || zoneVoters(v, m->zone) > zone_below)) {
            continue;
        }
        if (best == NULL || betterCandidate(v, m, best)) {
            best = m;
        }
    }
    return best;
}

/* Rank of a voter for demotion: lower goes first. */
static int demoteRank(const struct view *v, const struct roles_member *m,
                      size_t crowded)
{
    if (isDead(v, m)) {
        return 0;
    }
    if (!m->reachable) {
        return 1;
    }
    if (crowded >= 2 && labelled(m) && zoneVoters(v, m->zone) == crowded) {
        return 2;
    }
    if (m->healthy_ms == 0) {
        return 3; /* Not healthy now (behind, or slow to answer). */
    }
    return 4;
}

/* Demotion order: rank, then (unreachable ones) unreachable for longer,
 * then the higher id. */
static bool demoteBefore(const struct roles_member *a, int ra,
                         const struct roles_member *b, int rb)
{
    if (ra != rb) {
        return ra < rb;
    }
    if (ra <= 1 && a->unreachable_ms != b->unreachable_ms) {
        return a->unreachable_ms > b->unreachable_ms;
    }
    return a->id > b->id;
}

/* Would taking voter m out leave the live voters a majority? */
static bool quorumKept(const struct view *v, const struct roles_member *m)
{
    size_t voters = count(v, REPL_ROLE_VOTER, false, false);
    size_t live = count(v, REPL_ROLE_VOTER, false, true);
    if (m->reachable) {
        live--;
    }
    voters--;
    return voters > 0 && 2 * live > voters;
}

static bool setChange(struct roles_change *out, const struct roles_member *m,
                      int to, enum roles_reason reason, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static bool setChange(struct roles_change *out, const struct roles_member *m,
                      int to, enum roles_reason reason, const char *fmt, ...)
{
    va_list ap;
    memset(out, 0, sizeof *out);
    out->id = m->id;
    out->from = m->role;
    out->to = to;
    out->reason = reason;
    va_start(ap, fmt);
    vsnprintf(out->why, sizeof out->why, fmt, ap);
    va_end(ap);
    return true;
}

/* A dead voter to name as the reason of a promotion, or NULL. */
static const struct roles_member *deadVoter(const struct view *v)
{
    const struct roles_member *d = NULL;
    for (size_t i = 0; i < v->n; i++) {
        const struct roles_member *m = &v->m[i];
        if (m->role == REPL_ROLE_VOTER && isDead(v, m) &&
            (d == NULL || m->unreachable_ms > d->unreachable_ms)) {
            d = m;
        }
    }
    return d;
}

static bool promoteVoter(const struct view *v, struct roles_change *out)
{
    size_t alive = count(v, REPL_ROLE_VOTER, true, false);
    const struct roles_member *c;
    const struct roles_member *dead;

    if (alive >= v->t->voters) {
        return false;
    }
    c = bestCandidate(v, REPL_ROLE_STANDBY, REPL_ROLE_SPARE, SIZE_MAX);
    if (c == NULL) {
        return false;
    }
    dead = deadVoter(v);
    if (dead != NULL) {
        return setChange(out, c, REPL_ROLE_VOTER, ROLES_REASON_DEAD,
                         "replaces voter %llu, unreachable for %llu s",
                         (unsigned long long)dead->id,
                         (unsigned long long)(dead->unreachable_ms / 1000));
    }
    return setChange(out, c, REPL_ROLE_VOTER, ROLES_REASON_BELOW_TARGET,
                     "%zu of %u voters alive", alive, v->t->voters);
}

static bool demoteVoter(const struct view *v, struct roles_change *out)
{
    size_t voters = count(v, REPL_ROLE_VOTER, false, false);
    size_t crowded = maxZoneVoters(v);
    const struct roles_member *pick = NULL;
    int pick_rank = 0;

    if (voters <= v->t->voters) {
        return false;
    }
    for (size_t i = 0; i < v->n; i++) {
        const struct roles_member *m = &v->m[i];
        int rank;
        if (m->role != REPL_ROLE_VOTER || m->leader || !quorumKept(v, m)) {
            continue;
        }
        rank = demoteRank(v, m, crowded);
        if (pick == NULL || demoteBefore(m, rank, pick, pick_rank)) {
            pick = m;
            pick_rank = rank;
        }
    }
    if (pick == NULL) {
        return false;
    }
    if (pick_rank == 0) {
        return setChange(out, pick, REPL_ROLE_SPARE, ROLES_REASON_DEAD,
                         "voter unreachable for %llu s (%zu voters, target "
                         "%u)",
                         (unsigned long long)(pick->unreachable_ms / 1000),
                         voters, v->t->voters);
    }
    return setChange(out, pick,
                     pick->reachable ? REPL_ROLE_STANDBY : REPL_ROLE_SPARE,
                     ROLES_REASON_ABOVE_TARGET, "%zu voters, target %u%s",
                     voters, v->t->voters,
                     pick_rank == 1   ? "; unreachable"
                     : pick_rank == 2 ? "; its zone holds the most voters"
                     : pick_rank == 3 ? "; not healthy"
                                      : "");
}

static bool spreadZones(const struct view *v, struct roles_change *out)
{
    size_t crowded = maxZoneVoters(v);
    const struct roles_member *c;

    if (crowded < 2 ||
        count(v, REPL_ROLE_VOTER, false, false) != v->t->voters ||
        count(v, REPL_ROLE_VOTER, false, true) != v->t->voters) {
        return false;
    }
    c = bestCandidate(v, REPL_ROLE_STANDBY, REPL_ROLE_SPARE, crowded - 2);
    if (c == NULL) {
        return false;
    }
    return setChange(out, c, REPL_ROLE_VOTER, ROLES_REASON_ZONE_SPREAD,
                     "zone %s has %zu voters, another has %zu", c->zone,
                     zoneVoters(v, c->zone), crowded);
}

static bool parkDeadStandby(const struct view *v, struct roles_change *out)
{
    for (size_t i = 0; i < v->n; i++) {
        const struct roles_member *m = &v->m[i];
        if (m->role == REPL_ROLE_STANDBY && isDead(v, m)) {
            return setChange(out, m, REPL_ROLE_SPARE, ROLES_REASON_DEAD,
                             "standby unreachable for %llu s",
                             (unsigned long long)(m->unreachable_ms / 1000));
        }
    }
    return false;
}

static bool promoteStandby(const struct view *v, struct roles_change *out)
{
    size_t standbys = count(v, REPL_ROLE_STANDBY, true, false);
    const struct roles_member *c;

    if (standbys >= v->t->standbys) {
        return false;
    }
    c = bestCandidate(v, REPL_ROLE_SPARE, -1, SIZE_MAX);
    if (c == NULL) {
        return false;
    }
    return setChange(out, c, REPL_ROLE_STANDBY, ROLES_REASON_BELOW_TARGET,
                     "%zu of %u standbys", standbys, v->t->standbys);
}

static bool demoteStandby(const struct view *v, struct roles_change *out)
{
    size_t standbys = count(v, REPL_ROLE_STANDBY, false, false);
    const struct roles_member *pick = NULL;

    if (standbys <= v->t->standbys) {
        return false;
    }
    for (size_t i = 0; i < v->n; i++) {
        const struct roles_member *m = &v->m[i];
        if (m->role != REPL_ROLE_STANDBY) {
            continue;
        }
        if (pick == NULL || (!m->reachable && pick->reachable) ||
            (m->reachable == pick->reachable &&
             (m->lag_entries > pick->lag_entries ||
              (m->lag_entries == pick->lag_entries && m->id > pick->id)))) {
            pick = m;
        }
    }
    return setChange(out, pick, REPL_ROLE_SPARE, ROLES_REASON_ABOVE_TARGET,
                     "%zu standbys, target %u%s", standbys, v->t->standbys,
                     pick->reachable ? "" : "; unreachable");
}

bool roles_next(const struct roles_targets *t, const struct roles_member *m,
                size_t n, struct roles_change *out)
{
    struct view v = {t, m, n, (uint64_t)t->dead_after_s * 1000};

    if (t->voters == 0) {
        return false;
    }
    return promoteVoter(&v, out) || demoteVoter(&v, out) ||
           spreadZones(&v, out) || parkDeadStandby(&v, out) ||
           promoteStandby(&v, out) || demoteStandby(&v, out);
}

void roles_tracker_reset(struct roles_tracker *t, uint64_t now)
{
    memset(t, 0, sizeof *t);
    t->lead_at = now;
}

static bool healthyNow(const struct roles_seen *s)
{
    if (s->self) {
        return true;
    }
    if (!s->reachable || s->last_contact_ms < 0) {
        return false;
    }
    if (s->role == REPL_ROLE_SPARE) {
        return true; /* Not replicated to: it answers the status poll. */
    }
    return s->last_contact_ms < ROLES_MAX_CONTACT_MS &&
           s->lag_entries < ROLES_MAX_LAG;
}

void roles_observe(struct roles_tracker *t, uint64_t now,
                   const struct roles_seen *in, size_t n,
                   struct roles_member *out)
{
    for (size_t k = 0; k < ROLES_TRACK_MAX; k++) { /* Members that left. */
        bool present = false;
        for (size_t i = 0; i < n && !present; i++) {
            present = in[i].id == t->t[k].id;
        }
        if (!present) {
            t->t[k].id = 0;
        }
    }
    for (size_t i = 0; i < n; i++) {
        const struct roles_seen *s = &in[i];
        uint64_t *since = NULL;
        uint64_t in_role = t->lead_at; /* In its role since, at the latest. */
        bool healthy = healthyNow(s);
        size_t at = ROLES_TRACK_MAX;
        for (size_t k = 0; k < ROLES_TRACK_MAX && at == ROLES_TRACK_MAX; k++) {
            if (t->t[k].id == s->id) {
                at = k;
            }
        }
        for (size_t k = 0; k < ROLES_TRACK_MAX && at == ROLES_TRACK_MAX; k++) {
            if (t->t[k].id == 0) {
                at = k;
                t->t[k].id = s->id;
                t->t[k].healthy_since = 0;
                t->t[k].role = s->role;
                t->t[k].role_since = now;
            }
        }
        if (at < ROLES_TRACK_MAX) {
            since = &t->t[at].healthy_since;
            if (t->t[at].role != s->role) {
                t->t[at].role = s->role;
                t->t[at].role_since = now;
            }
            in_role = t->t[at].role_since;
            if (!healthy) {
                *since = 0;
            } else if (*since == 0) {
                *since = now == 0 ? 1 : now;
            }
        }
        memset(&out[i], 0, sizeof out[i]);
        out[i].id = s->id;
        out[i].role = s->role;
        out[i].leader = s->self;
        out[i].zone = s->zone;
        out[i].reachable = s->self || s->reachable;
        out[i].lag_entries = s->lag_entries;
        out[i].healthy_ms =
            since != NULL && *since != 0 && now >= *since ? now - *since : 0;
        if (!out[i].reachable) {
            uint64_t cap = now > in_role ? now - in_role : 0;
            out[i].unreachable_ms =
                s->last_contact_ms >= 0 && (uint64_t)s->last_contact_ms < cap
                    ? (uint64_t)s->last_contact_ms
                    : cap;
        }
    }
}

int roles_check(const struct roles_targets *t, size_t n_members, char *err,
                size_t len)
{
    if (t->voters == 0 && t->standbys != 0) {
        snprintf(err, len,
                 "standbys %u needs a voters target too (voters 0 means "
                 "manual roles)",
                 t->standbys);
        return ROLES_BAD;
    }
    if (t->dead_after_s < ROLES_DEAD_AFTER_S_MIN ||
        t->dead_after_s > ROLES_DEAD_AFTER_S_MAX) {
        snprintf(err, len,
                 "dead_after_s %u is out of range: %d to %d seconds (a "
                 "voter unreachable this long is replaced)",
                 t->dead_after_s, ROLES_DEAD_AFTER_S_MIN,
                 ROLES_DEAD_AFTER_S_MAX);
        return ROLES_BAD;
    }
    if (t->voters > ROLES_VOTERS_MAX) {
        snprintf(err, len, "voters %u is more than %d", t->voters,
                 ROLES_VOTERS_MAX);
        return ROLES_BAD;
    }
    if ((size_t)t->voters + t->standbys > n_members) {
        snprintf(err, len,
                 "voters %u + standbys %u cannot be met: the cluster has %zu "
                 "member%s; add members first",
                 t->voters, t->standbys, n_members, n_members == 1 ? "" : "s");
        return ROLES_UNMET;
    }
    if (t->voters % 2 == 0 && t->voters != 0) {
        snprintf(err, len,
                 "voters %u is even: an even number of voters tolerates no "
                 "more failures than one less; use %u or %u",
                 t->voters, t->voters - 1, t->voters + 1);
        return ROLES_BAD;
    }
    return ROLES_OK;
}
