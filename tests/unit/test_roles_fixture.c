/* Automatic roles on raft's fixture (tests/lib/repl_fixture.h): the
 * targets and the zone labels go through the log (OP_ROLES,
 * OP_MEMBER_ZONE), and a driver that does what node/roles.c does once a
 * second (the leader's view of members -> roles_observe -> roles_next ->
 * ledger_repl_assign, one change at a time, none in the first two election
 * timeouts of a lead) runs the policy against real replication layers.
 * Replayable: LEDGER_FIXTURE_SEED=<seed> (printed on failure). Fake time:
 * T = 1000 ms, heartbeat 100 ms. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "node/roles_policy.h"
#include "repl_fixture.h"
#include "replication/entry.h"

#define T 1000u
#define TICK_MS 1000u /* ROLES_TICK_MS */

static ledger_repl *repl(struct fx *x, unsigned i)
{
    return x->nodes[i].repl;
}

/* ---- Writing through the log ------------------------------------------ */

struct submitted {
    bool done;
    int status;
    int error;
};

static void submittedCb(void *arg, int status,
                        const struct ledger_op_result *res)
{
    struct submitted *s = arg;
    s->done = true;
    s->status = status;
    s->error = res != NULL ? res->error : 0;
}

static bool submittedDone(struct fx *x, void *arg)
{
    (void)x;
    return ((struct submitted *)arg)->done;
}

/* Submit one encoded op on the leader and wait until it is applied there;
 * then until every started node applied it. */
static void submitSync(struct fx *x, struct op_buf *op)
{
    unsigned l = fx_wait_leader(x, 10 * T);
    struct submitted s = {0};

    FX_CHECK(x, l != FX_NONE);
    FX_CHECK_EQ(x, ledger_repl_submit(repl(x, l), op, submittedCb, &s), 0);
    FX_CHECK_MSG(x, fx_step_until(x, submittedDone, &s, 10 * T),
                 "op not applied in %u ms", 10 * T);
    FX_CHECK_EQ(x, s.status, 0);
    FX_CHECK_EQ(x, s.error, 0);
}

static void putMember(struct fx *x, unsigned i)
{
    struct op_member m = {x->nodes[i].id, x->nodes[i].raft_addr,
                          x->nodes[i].api_addr};
    struct op_buf op;
    FX_CHECK_EQ(x, op_encode_member_put(&m, &op), 0);
    submitSync(x, &op);
}

static void setZone(struct fx *x, unsigned i, const char *zone)
{
    struct op_buf op;
    FX_CHECK_EQ(x, op_encode_member_zone(x->nodes[i].id, zone, &op), 0);
    submitSync(x, &op);
}

static void setTargets(struct fx *x, unsigned voters, unsigned standbys,
                       unsigned dead_after_s)
{
    struct ledger_roles r = {voters, standbys, dead_after_s};
    struct op_buf op;
    FX_CHECK_EQ(x, op_encode_roles(&r, &op), 0);
    submitSync(x, &op);
}

static void addSpare(struct fx *x, unsigned i)
{
    unsigned l = fx_wait_leader(x, 10 * T);
    struct ledger_repl_member m;
    struct fx_change c = {0};

    memset(&m, 0, sizeof m);
    m.id = x->nodes[i].id;
    snprintf(m.raft_addr, sizeof m.raft_addr, "%s", x->nodes[i].raft_addr);
    snprintf(m.api_addr, sizeof m.api_addr, "%s", x->nodes[i].api_addr);
    FX_CHECK(x, l != FX_NONE);
    FX_CHECK_EQ(
        x,
        ledger_repl_add(repl(x, l), &m, REPL_ROLE_SPARE, 0, fx_change_cb, &c),
        0);
    FX_CHECK_MSG(x, fx_step_until(x, fx_change_done, &c, 10 * T),
                 "adding node %u not done", i + 1);
    FX_CHECK_EQ(x, c.status, 0);
    putMember(x, i);
}

/* ---- The driver: node/roles.c's tick on the fixture -------------------- */

struct change_seen {
    uint64_t id;
    int from;
    int to;
    enum roles_reason reason;
};

struct driver {
    struct roles_tracker tracker;
    unsigned leader;                /* FX_NONE: none at the last tick. */
    bool down[FX_MAX_NODES];        /* Frozen: a spare's status poll fails */
    uint64_t down_at[FX_MAX_NODES]; /* since this fake time. */
    bool inflight;
    struct fx_change c;
    struct change_seen changes[32];
    unsigned n_changes;
    unsigned min_voters; /* Fewest voters seen in the leader's config. */
};

static void driverInit(struct driver *d)
{
    memset(d, 0, sizeof *d);
    d->leader = FX_NONE;
    d->min_voters = UINT32_MAX;
}

/* One check by the leader, as roles.c's tickCb. */
static void driverTick(struct fx *x, struct driver *d)
{
    struct ledger_repl_member_info info[FX_MAX_NODES];
    struct roles_seen seen[FX_MAX_NODES];
    struct roles_member rm[FX_MAX_NODES];
    struct roles_targets tg;
    struct ledger_roles stored;
    struct roles_change c;
    uint64_t now = fx_now(x);
    unsigned l = fx_leader(x);
    size_t n;
    size_t i;

    if (l == FX_NONE || d->down[l]) {
        d->leader = FX_NONE;
        return;
    }
    if (l != d->leader) {
        d->leader = l;
        roles_tracker_reset(&d->tracker, now);
    }
    n = ledger_repl_members(repl(x, l), info, FX_MAX_NODES);
    for (i = 0; i < n; i++) {
        unsigned at = (unsigned)info[i].id - 1;
        seen[i].id = info[i].id;
        seen[i].role = info[i].role;
        seen[i].zone = info[i].zone;
        seen[i].self = info[i].id == x->nodes[l].id;
        /* members_poll.c: a spare is reachable while it answers the status
         * poll; the others as Raft sees them. */
        seen[i].reachable = info[i].role == REPL_ROLE_SPARE
                                ? !d->down[at]
                                : strcmp(info[i].state, "unreachable") != 0;
        seen[i].last_contact_ms = info[i].last_contact_ms;
        if (info[i].role == REPL_ROLE_SPARE && !seen[i].self) {
            /* Its last answer to the poll (every 500 ms): now, or when it
             * went down. */
            seen[i].last_contact_ms =
                d->down[at] ? (int64_t)(now - d->down_at[at]) : 0;
        }
        seen[i].lag_entries = info[i].lag_entries;
    }
    roles_observe(&d->tracker, now, seen, n, rm);
    if (ledger_repl_voters(repl(x, l)) < d->min_voters) {
        d->min_voters = (unsigned)ledger_repl_voters(repl(x, l));
    }
    if (d->inflight && !d->c.done) {
        return;
    }
    d->inflight = false;
    FX_CHECK_EQ(x, ledger_store_get_roles(x->nodes[l].store, &stored), 0);
    tg.voters = stored.voters;
    tg.standbys = stored.standbys;
    tg.dead_after_s = stored.dead_after_s != 0 ? stored.dead_after_s
                                               : ROLES_DEAD_AFTER_S_DEFAULT;
    if (now - d->tracker.lead_at < 2ull * T ||
        ledger_repl_change_busy(repl(x, l)) || tg.voters == 0 ||
        !roles_next(&tg, rm, n, &c)) {
        return;
    }
    FX_CHECK_MSG(x, c.id != x->nodes[l].id, "the leader itself: %s", c.why);
    FX_CHECK(x, d->n_changes < sizeof d->changes / sizeof d->changes[0]);
    d->changes[d->n_changes++] =
        (struct change_seen){c.id, c.from, c.to, c.reason};
    memset(&d->c, 0, sizeof d->c);
    d->inflight = true;
    FX_CHECK_EQ(
        x, ledger_repl_assign(repl(x, l), c.id, c.to, 0, fx_change_cb, &d->c),
        0);
}

/* Run the driver for `ms` of fake time, a check every TICK_MS. */
static void driverRun(struct fx *x, struct driver *d, unsigned ms)
{
    for (unsigned t = 0; t < ms; t += TICK_MS) {
        fx_step_for(x, TICK_MS);
        driverTick(x, d);
    }
}

/* The role of node index i in node index at's configuration. */
static int roleOf(struct fx *x, unsigned at, unsigned i)
{
    return ledger_repl_member_role(repl(x, at), x->nodes[i].id);
}

static unsigned countRole(struct fx *x, unsigned at, int role)
{
    unsigned k = 0;
    for (unsigned i = 0; i < x->n; i++) {
        k += roleOf(x, at, i) == role;
    }
    return k;
}

static bool votersHaveTargets(struct fx *x, void *unused)
{
    (void)unused;
    for (unsigned i = 0; i < 3; i++) {
        struct ledger_roles r;
        if (ledger_store_get_roles(x->nodes[i].store, &r) != 0 ||
            r.voters != 3 || r.standbys != 1 || r.dead_after_s != 5) {
            return false;
        }
    }
    return true;
}

/* ---- Tests ------------------------------------------------------------- */

/* Targets 3 voters + 1 standby, zones a b c for the voters, a and d for
 * the two spares: the spare of the empty zone d becomes the standby; a
 * frozen voter is replaced by it once dead (the voter count never dips
 * below 3), then parked as spare, and the other spare becomes the
 * standby. Thawed, the parked voter stays a spare: nothing flaps. */
static void test_dead_voter_replaced(void **state)
{
    struct fx_test *f = *state;
    struct fx *x = &f->fx;
    struct fx_options o = {.n = 5, .voters = 3};
    static const char *zones[5] = {"a", "b", "c", "a", "d"};
    struct driver d;
    unsigned l;
    unsigned dead = FX_NONE;

    driverInit(&d);
    fx_start_cluster(x, __func__, &o);
    addSpare(x, 3);
    addSpare(x, 4);
    for (unsigned i = 0; i < 5; i++) {
        setZone(x, i, zones[i]);
    }
    setTargets(x, 3, 1, 5);
    /* Through the log: on every voter (spares get no entries). */
    FX_CHECK_MSG(x, fx_step_until(x, votersHaveTargets, NULL, 10 * T),
                 "targets not applied on every voter");

    /* Spares are promoted only after ROLES_HEALTHY_MS. */
    driverRun(x, &d, ROLES_HEALTHY_MS / 2);
    FX_CHECK_EQ(x, d.n_changes, 0);
    driverRun(x, &d, ROLES_HEALTHY_MS);
    l = fx_leader(x);
    FX_CHECK(x, l != FX_NONE);
    FX_CHECK_EQ(x, d.n_changes, 1);
    FX_CHECK_EQ(x, d.changes[0].id, 5); /* zone d holds no voter */
    FX_CHECK_EQ(x, d.changes[0].to, REPL_ROLE_STANDBY);
    FX_CHECK_EQ(x, roleOf(x, l, 4), REPL_ROLE_STANDBY);
    FX_CHECK_EQ(x, roleOf(x, l, 3), REPL_ROLE_SPARE);

    /* A voter other than the leader dies. */
    for (unsigned i = 0; i < 3 && dead == FX_NONE; i++) {
        dead = i != l ? i : FX_NONE;
    }
    fx_freeze(x, dead);
    d.down[dead] = true;
    d.down_at[dead] = fx_now(x);
    driverRun(x, &d, 3 * T); /* Not dead yet (5 s). */
    FX_CHECK_EQ(x, d.n_changes, 1);
    driverRun(x, &d, ROLES_HEALTHY_MS + 10 * T);
    l = fx_leader(x);
    FX_CHECK(x, l != FX_NONE && l != dead);
    FX_CHECK_MSG(x, d.n_changes == 4, "%u changes", d.n_changes);
    /* First the replacement, then the dead one parked, then a standby. */
    FX_CHECK_EQ(x, d.changes[1].id, 5);
    FX_CHECK_EQ(x, d.changes[1].to, REPL_ROLE_VOTER);
    FX_CHECK_EQ(x, d.changes[1].reason, ROLES_REASON_DEAD);
    FX_CHECK_EQ(x, d.changes[2].id, x->nodes[dead].id);
    FX_CHECK_EQ(x, d.changes[2].to, REPL_ROLE_SPARE);
    FX_CHECK_EQ(x, d.changes[3].id, 4);
    FX_CHECK_EQ(x, d.changes[3].to, REPL_ROLE_STANDBY);
    FX_CHECK_EQ(x, roleOf(x, l, dead), REPL_ROLE_SPARE);
    FX_CHECK_EQ(x, roleOf(x, l, 4), REPL_ROLE_VOTER);
    FX_CHECK_EQ(x, roleOf(x, l, 3), REPL_ROLE_STANDBY);
    FX_CHECK_EQ(x, countRole(x, l, REPL_ROLE_VOTER), 3);
    FX_CHECK_MSG(x, d.min_voters >= 3, "voters dipped to %u", d.min_voters);

    /* The dead voter comes back: it stays a spare; writes still commit. */
    fx_thaw(x, dead);
    d.down[dead] = false;
    driverRun(x, &d, 2 * ROLES_HEALTHY_MS);
    FX_CHECK_EQ(x, d.n_changes, 4);
    fx_fill(x, 5);
    l = fx_leader(x);
    FX_CHECK_EQ(x, roleOf(x, l, dead), REPL_ROLE_SPARE);
    FX_CHECK_EQ(x, countRole(x, l, REPL_ROLE_VOTER), 3);
    FX_CHECK_EQ(x, countRole(x, l, REPL_ROLE_STANDBY), 1);
}

/* A node that joins after the log was compacted gets the targets and the
 * zone labels from the snapshot (its 9th element and the members' 4th). */
static void test_snapshot_carries_targets_and_zones(void **state)
{
    struct fx_test *f = *state;
    struct fx *x = &f->fx;
    struct fx_options o = {
        .n = 4, .voters = 3, .snapshot_threshold = 16, .snapshot_trailing = 4};
    struct ledger_roles r;
    char zone[LEDGER_ZONE_MAX];
    struct fx_change c = {0};
    struct ledger_repl_member m;
    unsigned l;

    fx_start_cluster(x, __func__, &o);
    setZone(x, 0, "rack-1");
    setZone(x, 2, "rack-3");
    setTargets(x, 3, 0, 7);
    fx_fill(x, 60); /* Several snapshots; the early entries are gone. */
    l = fx_wait_leader(x, 10 * T);
    FX_CHECK(x, l != FX_NONE);
    FX_CHECK(x, fx_status(x, l).applied_index > 40);
    memset(&m, 0, sizeof m);
    m.id = x->nodes[3].id;
    snprintf(m.raft_addr, sizeof m.raft_addr, "%s", x->nodes[3].raft_addr);
    snprintf(m.api_addr, sizeof m.api_addr, "%s", x->nodes[3].api_addr);
    FX_CHECK_EQ(
        x,
        ledger_repl_add(repl(x, l), &m, REPL_ROLE_STANDBY, 0, fx_change_cb, &c),
        0);
    FX_CHECK_MSG(x, fx_step_until(x, fx_change_done, &c, 20 * T),
                 "adding node 4 not done");
    FX_CHECK_EQ(x, c.status, 0);
    FX_CHECK_MSG(x, fx_step_until(x, fx_all_applied, NULL, 20 * T),
                 "node 4 did not catch up");
    FX_CHECK_EQ(x, fx_position(x, 3), fx_position(x, l));
    FX_CHECK_EQ(x, ledger_store_get_roles(x->nodes[3].store, &r), 0);
    FX_CHECK(x, r.voters == 3 && r.standbys == 0 && r.dead_after_s == 7);
    FX_CHECK_EQ(
        x, ledger_store_member_zone(x->nodes[3].store, 1, zone, sizeof zone),
        0);
    FX_CHECK(x, strcmp(zone, "rack-1") == 0);
    FX_CHECK_EQ(
        x, ledger_store_member_zone(x->nodes[3].store, 2, zone, sizeof zone),
        0);
    FX_CHECK(x, strcmp(zone, "") == 0);
    FX_CHECK_EQ(
        x, ledger_store_member_zone(x->nodes[3].store, 3, zone, sizeof zone),
        0);
    FX_CHECK(x, strcmp(zone, "rack-3") == 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_dead_voter_replaced, fx_test_setup,
                                        fx_test_teardown),
        cmocka_unit_test_setup_teardown(test_snapshot_carries_targets_and_zones,
                                        fx_test_setup, fx_test_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
