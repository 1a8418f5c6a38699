/* Automatic roles policy (node/roles_policy.c): members + health -> the
 * next change. Each scenario checks the next change, and most run the
 * policy to its fixed point (applying each change to the members, as the
 * leader would) and check where it ends. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "replication/repl.h"
#include "roles_policy.h"

#define V REPL_ROLE_VOTER
#define S REPL_ROLE_STANDBY
#define P REPL_ROLE_SPARE
#define OK_MS (ROLES_HEALTHY_MS + 5000) /* healthy long enough */

/* A reachable, healthy member. */
static struct roles_member mk(uint64_t id, int role, const char *zone)
{
    struct roles_member m = {id, role, false, zone, true, OK_MS, 0, 0};
    return m;
}

/* Unreachable for `s` seconds. */
static struct roles_member down(uint64_t id, int role, const char *zone,
                                unsigned s)
{
    struct roles_member m = {id, role, false, zone, false, 0, s * 1000ull, 0};
    return m;
}

static struct roles_member *byId(struct roles_member *m, size_t n, uint64_t id)
{
    for (size_t i = 0; i < n; i++) {
        if (m[i].id == id) {
            return &m[i];
        }
    }
    fail_msg("no member %llu", (unsigned long long)id);
    return NULL;
}

static void expectChange(const struct roles_targets *t, struct roles_member *m,
                         size_t n, uint64_t id, int to,
                         enum roles_reason reason)
{
    struct roles_change c;
    assert_true(roles_next(t, m, n, &c));
    if (c.id != id || c.to != to || c.reason != reason) {
        fail_msg("expected %llu -> %s (%s), got %llu -> %s (%s): %s",
                 (unsigned long long)id, ledger_repl_role_name(to),
                 roles_reason_name(reason), (unsigned long long)c.id,
                 ledger_repl_role_name(c.to), roles_reason_name(c.reason),
                 c.why);
    }
    assert_int_equal(c.from, byId(m, n, id)->role);
    assert_true(strlen(c.why) > 0);
}

static void expectNone(const struct roles_targets *t,
                       const struct roles_member *m, size_t n)
{
    struct roles_change c;
    if (roles_next(t, m, n, &c)) {
        fail_msg("expected no change, got %llu -> %s: %s",
                 (unsigned long long)c.id, ledger_repl_role_name(c.to), c.why);
    }
}

/* Apply changes until none is left (at most 20); returns how many. */
static int settle(const struct roles_targets *t, struct roles_member *m,
                  size_t n)
{
    struct roles_change c;
    int steps = 0;
    while (roles_next(t, m, n, &c)) {
        struct roles_member *x = byId(m, n, c.id);
        assert_false(x->leader);
        assert_int_not_equal(c.to, c.from);
        x->role = c.to;
        if (++steps > 20) {
            fail_msg("no fixed point after 20 changes (last: %s)", c.why);
        }
    }
    return steps;
}

static size_t countRole(const struct roles_member *m, size_t n, int role)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++) {
        c += m[i].role == role;
    }
    return c;
}

/* Targets 0: manual, whatever the members look like. */
static void test_manual(void **state)
{
    struct roles_targets t = {0, 0, 30};
    struct roles_member m[] = {mk(1, V, ""), down(2, V, "", 999), mk(3, P, "")};
    (void)state;
    m[0].leader = true;
    expectNone(&t, m, 3);
}

/* Five bootstrapped voters, targets 3 / 1: two are demoted (highest ids,
 * never the leader), then the extra standby goes to spare. */
static void test_five_voters_to_three_and_one(void **state)
{
    struct roles_targets t = {3, 1, 30};
    struct roles_member m[] = {mk(1, V, ""), mk(2, V, ""), mk(3, V, ""),
                               mk(4, V, ""), mk(5, V, "")};
    (void)state;
    m[4].leader = true;
    expectChange(&t, m, 5, 4, S, ROLES_REASON_ABOVE_TARGET);
    assert_int_equal(settle(&t, m, 5), 3);
    assert_int_equal(countRole(m, 5, V), 3);
    assert_int_equal(countRole(m, 5, S), 1);
    assert_int_equal(countRole(m, 5, P), 1);
    assert_int_equal(m[4].role, V);
}

/* A voter dead for longer than dead-after: the healthy standby replaces
 * it first (voters never dip), then the dead one goes to spare, then a
 * spare becomes the standby. */
static void test_dead_voter_replaced(void **state)
{
    struct roles_targets t = {3, 1, 30};
    struct roles_member m[] = {mk(1, V, ""), mk(2, V, ""), down(3, V, "", 31),
                               mk(4, S, ""), mk(5, P, "")};
    (void)state;
    m[0].leader = true;
    expectChange(&t, m, 5, 4, V, ROLES_REASON_DEAD);
    m[3].role = V;
    expectChange(&t, m, 5, 3, P, ROLES_REASON_DEAD);
    m[2].role = P;
    expectChange(&t, m, 5, 5, S, ROLES_REASON_BELOW_TARGET);
    m[4].role = S;
    expectNone(&t, m, 5);
    /* The dead node comes back: a spare, standbys at the target. */
    m[2] = mk(3, P, "");
    expectNone(&t, m, 5);
}

/* Unreachable, but not for longer than dead-after: nothing yet. Dead, but
 * nobody has been healthy for 10 s: nothing either (the voter count is
 * not lowered without a replacement). */
static void test_no_change_without_cause_or_replacement(void **state)
{
    struct roles_targets t = {3, 1, 30};
    struct roles_member m[] = {mk(1, V, ""), mk(2, V, ""), down(3, V, "", 29),
                               mk(4, S, "")};
    (void)state;
    m[0].leader = true;
    expectNone(&t, m, 4);
    m[2].unreachable_ms = 31000;
    m[3].healthy_ms = ROLES_HEALTHY_MS - 1;
    expectNone(&t, m, 4);
    m[3].healthy_ms = ROLES_HEALTHY_MS;
    expectChange(&t, m, 4, 4, V, ROLES_REASON_DEAD);
}

/* A spare stands in when no standby is healthy; a new member (a spare)
 * is promoted while the cluster is below its target. */
static void test_spare_promoted(void **state)
{
    struct roles_targets t = {3, 0, 30};
    struct roles_member m[] = {mk(1, V, ""), mk(2, V, ""), down(3, V, "", 60),
                               down(4, S, "", 60), mk(5, P, "")};
    (void)state;
    m[0].leader = true;
    expectChange(&t, m, 5, 5, V, ROLES_REASON_DEAD);
    settle(&t, m, 5);
    assert_int_equal(m[4].role, V);
    assert_int_equal(m[2].role, P);
    assert_int_equal(m[3].role, P); /* dead standby parked */

    struct roles_member g[] = {mk(1, V, ""), mk(2, P, "")};
    struct roles_targets one = {3, 0, 30};
    g[0].leader = true;
    expectChange(&one, g, 2, 2, V, ROLES_REASON_BELOW_TARGET);
}

/* Extra voters: never the leader, even when it has the highest id;
 * unreachable ones go first, to spare. */
static void test_extra_voters(void **state)
{
    struct roles_targets t = {1, 0, 30};
    struct roles_member m[] = {mk(1, V, ""), down(2, V, "", 5), mk(3, V, "")};
    (void)state;
    m[2].leader = true;
    expectChange(&t, m, 3, 2, P, ROLES_REASON_ABOVE_TARGET);
    m[1].role = P;
    expectChange(&t, m, 3, 1, S, ROLES_REASON_ABOVE_TARGET);
    m[0].role = S;
    /* Standbys target 0: it goes on to spare. */
    expectChange(&t, m, 3, 1, P, ROLES_REASON_ABOVE_TARGET);
    m[0].role = P;
    expectNone(&t, m, 3);
}

/* The live voters always keep a quorum: with 3 voters of which only 2
 * are live (the third unreachable, not yet dead), a live one is never
 * demoted first. */
static void test_quorum_kept(void **state)
{
    struct roles_targets t = {1, 1, 30};
    struct roles_member m[] = {mk(1, V, ""), mk(2, V, ""), down(3, V, "", 3)};
    struct roles_change c;
    (void)state;
    m[0].leader = true;
    assert_true(roles_next(&t, m, 3, &c));
    assert_int_equal(c.id, 3);
    assert_int_equal(c.to, P);
}

/* Zones: voters crowded in zone a while a healthy standby waits in zone
 * c: it is promoted, then one of zone a is demoted. Promotions prefer the
 * thinnest zone, even a spare over a standby. */
static void test_zones_spread(void **state)
{
    struct roles_targets t = {3, 1, 30};
    struct roles_member m[] = {mk(1, V, "a"), mk(2, V, "a"), mk(3, V, "b"),
                               mk(4, S, "c")};
    (void)state;
    m[0].leader = true;
    expectChange(&t, m, 4, 4, V, ROLES_REASON_ZONE_SPREAD);
    m[3].role = V;
    expectChange(&t, m, 4, 2, S, ROLES_REASON_ABOVE_TARGET);
    m[1].role = S;
    expectNone(&t, m, 4);

    struct roles_member d[] = {mk(1, V, "a"), mk(2, V, "b"),
                               down(3, V, "c", 40), mk(4, S, "a"),
                               mk(5, P, "c")};
    d[0].leader = true;
    expectChange(&t, d, 5, 5, V, ROLES_REASON_DEAD);
    settle(&t, d, 5);
    assert_int_equal(d[4].role, V);
    assert_int_equal(d[3].role, S);
    assert_int_equal(d[2].role, P);

    /* Without labels, a standby goes before a spare, then fewer entries
     * behind, then the lowest id. */
    struct roles_member u[] = {mk(1, V, ""), mk(2, V, ""), down(3, V, "", 40),
                               mk(4, P, ""), mk(5, S, ""), mk(6, S, "")};
    u[0].leader = true;
    u[4].lag_entries = 9;
    expectChange(&t, u, 6, 6, V, ROLES_REASON_DEAD);
}

/* Standbys: a dead one is parked, fewer than the target promotes a
 * healthy spare, more demotes the unreachable or most behind one. */
static void test_standbys(void **state)
{
    struct roles_targets t = {1, 1, 30};
    struct roles_member m[] = {mk(1, V, ""), down(2, S, "", 31), mk(3, P, "")};
    (void)state;
    m[0].leader = true;
    expectChange(&t, m, 3, 2, P, ROLES_REASON_DEAD);
    m[1].role = P;
    expectChange(&t, m, 3, 3, S, ROLES_REASON_BELOW_TARGET);

    struct roles_member x[] = {mk(1, V, ""), mk(2, S, ""), mk(3, S, ""),
                               down(4, S, "", 3)};
    x[0].leader = true;
    x[1].lag_entries = 100;
    expectChange(&t, x, 4, 4, P, ROLES_REASON_ABOVE_TARGET);
    x[3].role = P;
    expectChange(&t, x, 4, 2, P, ROLES_REASON_ABOVE_TARGET);
}

/* Two nodes: voters 1, standbys 1 (the policy docs/operations.md states):
 * the follower becomes the standby. */
static void test_two_nodes(void **state)
{
    struct roles_targets t = {1, 1, 30};
    struct roles_member m[] = {mk(1, V, ""), mk(2, V, "")};
    (void)state;
    m[1].leader = true;
    expectChange(&t, m, 2, 1, S, ROLES_REASON_ABOVE_TARGET);
    m[0].role = S;
    expectNone(&t, m, 2);
}

/* Health bookkeeping across checks: healthy time grows while every
 * check finds the member healthy and restarts after one that does not;
 * spares count as healthy when they answer at all; unreachable time is
 * the last contact, or the time since the lead when there was none, and
 * never more than the time since the member was first seen in its role. */
static void test_observe(void **state)
{
    struct roles_tracker t;
    struct roles_member out[4];
    struct roles_seen in[4] = {
        {1, V, "a", true, true, 0, 0},   /* the leader */
        {2, V, "b", false, true, 40, 3}, /* healthy voter */
        {3, S, "", false, false, -1, 0}, /* never answered */
        {4, P, "", false, true, 900, 0}, /* spare, polled */
    };
    (void)state;
    roles_tracker_reset(&t, 5000);
    roles_observe(&t, 5000, in, 4, out);
    assert_int_equal(out[0].healthy_ms, 0);
    assert_true(out[0].leader);
    assert_int_equal(out[1].healthy_ms, 0);
    assert_int_equal(out[2].unreachable_ms, 0);
    assert_false(out[2].reachable);
    roles_observe(&t, 16000, in, 4, out);
    assert_int_equal(out[1].healthy_ms, 11000);
    assert_int_equal(out[3].healthy_ms, 11000); /* a spare: 900 ms is ok */
    assert_int_equal(out[2].healthy_ms, 0);
    assert_int_equal(out[2].unreachable_ms, 11000); /* since the lead */
    assert_string_equal(out[1].zone, "b");
    /* Slow to answer once: healthy time starts again. */
    in[1].last_contact_ms = ROLES_MAX_CONTACT_MS;
    roles_observe(&t, 17000, in, 4, out);
    assert_int_equal(out[1].healthy_ms, 0);
    in[1].last_contact_ms = 10;
    roles_observe(&t, 18000, in, 4, out);
    roles_observe(&t, 19500, in, 4, out);
    assert_int_equal(out[1].healthy_ms, 1500);
    /* Too far behind: not healthy. */
    in[1].lag_entries = ROLES_MAX_LAG;
    roles_observe(&t, 20000, in, 4, out);
    assert_int_equal(out[1].healthy_ms, 0);
    /* Unreachable with a last contact: that is the time... */
    in[1].reachable = false;
    in[1].last_contact_ms = 9000;
    roles_observe(&t, 21000, in, 4, out);
    assert_int_equal(out[1].unreachable_ms, 9000);
    /* ...but a contact older than this lead counts from the lead. */
    in[1].last_contact_ms = 31000;
    roles_observe(&t, 21000, in, 4, out);
    assert_int_equal(out[1].unreachable_ms, 16000);
    /* A spare just made standby, its last contact from long ago (before
     * it was removed and joined again): unreachable since the change. */
    in[3].role = S;
    in[3].reachable = false;
    in[3].last_contact_ms = 43000;
    roles_observe(&t, 21000, in, 4, out);
    assert_int_equal(out[3].unreachable_ms, 0);
    roles_observe(&t, 21800, in, 4, out);
    assert_int_equal(out[3].unreachable_ms, 800);
    in[3].role = P;
    in[3].reachable = true;
    in[3].last_contact_ms = 900;
    /* Member 4 leaves, comes back: it starts from nothing. */
    roles_observe(&t, 22000, in, 3, out);
    roles_observe(&t, 23000, in, 4, out);
    assert_int_equal(out[3].healthy_ms, 0);
    roles_observe(&t, 24000, in, 4, out);
    assert_int_equal(out[3].healthy_ms, 1000);
    /* A new lead forgets everything. */
    roles_tracker_reset(&t, 30000);
    roles_observe(&t, 30000, in, 4, out);
    assert_int_equal(out[3].healthy_ms, 0);
}

static void expectCheck(unsigned v, unsigned s, unsigned d, size_t n, int want,
                        const char *needle)
{
    struct roles_targets t = {v, s, d};
    char err[256] = "";
    assert_int_equal(roles_check(&t, n, err, sizeof err), want);
    if (needle != NULL) {
        if (strstr(err, needle) == NULL) {
            fail_msg("'%s' not in '%s'", needle, err);
        }
        assert_null(strchr(err, '\n'));
    }
}

static void test_check(void **state)
{
    (void)state;
    expectCheck(3, 1, 30, 5, ROLES_OK, NULL);
    expectCheck(0, 0, 30, 1, ROLES_OK, NULL);
    expectCheck(1, 1, 30, 2, ROLES_OK, NULL);
    expectCheck(4, 0, 30, 3, ROLES_UNMET, "cannot be met: the cluster has 3");
    expectCheck(5, 0, 30, 3, ROLES_UNMET, "cannot be met");
    expectCheck(3, 1, 30, 3, ROLES_UNMET, "standbys 1 cannot be met");
    expectCheck(2, 0, 30, 5, ROLES_BAD, "voters 2 is even");
    expectCheck(0, 1, 30, 5, ROLES_BAD, "needs a voters target");
    expectCheck(3, 0, 0, 5, ROLES_BAD, "dead_after_s 0 is out of range");
    expectCheck(3, 0, 4, 5, ROLES_BAD, "out of range");
    expectCheck(3, 0, 86401, 5, ROLES_BAD, "out of range");
    expectCheck(17, 0, 30, 20, ROLES_BAD, "more than 15");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_manual),
        cmocka_unit_test(test_five_voters_to_three_and_one),
        cmocka_unit_test(test_dead_voter_replaced),
        cmocka_unit_test(test_no_change_without_cause_or_replacement),
        cmocka_unit_test(test_spare_promoted),
        cmocka_unit_test(test_extra_voters),
        cmocka_unit_test(test_quorum_kept),
        cmocka_unit_test(test_zones_spread),
        cmocka_unit_test(test_standbys),
        cmocka_unit_test(test_two_nodes),
        cmocka_unit_test(test_observe),
        cmocka_unit_test(test_check),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
