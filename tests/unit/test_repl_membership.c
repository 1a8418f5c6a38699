/* Membership changes, leadership transfer and the leader's per-member
 * figures, on raft's fixture (tests/lib/repl_fixture.h): add as spare,
 * promotion once caught up, the catch-up deadline, demotion, removal (of
 * the leader too), every refusal; transfer with its quiesce; lag in
 * entries and milliseconds, last contact, reported applied index. Fake
 * time: T = 1000 ms, heartbeat 100 ms. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "repl_fixture.h"

#define T 1000u
#define HB 100u
#define TICK 50u

/* A 3-voter cluster plus `extra` started, unbootstrapped nodes. */
static unsigned start(struct fx_test *f, const char *name, unsigned extra)
{
    struct fx_options o = {.n = 3 + extra, .voters = 3};
    fx_start_cluster(&f->fx, name, &o);
    return fx_leader(&f->fx);
}

static struct ledger_repl_member member(struct fx *x, unsigned i)
{
    struct ledger_repl_member m;
    memset(&m, 0, sizeof m);
    m.id = x->nodes[i].id;
    snprintf(m.raft_addr, sizeof m.raft_addr, "%s", x->nodes[i].raft_addr);
    snprintf(m.api_addr, sizeof m.api_addr, "%s", x->nodes[i].api_addr);
    return m;
}

static ledger_repl *repl(struct fx *x, unsigned i)
{
    return x->nodes[i].repl;
}

static struct ledger_repl_member_info info(struct fx *x, unsigned at,
                                           uint64_t id)
{
    struct ledger_repl_member_info m[FX_MAX_NODES];
    size_t n = ledger_repl_members(repl(x, at), m, FX_MAX_NODES);
    size_t k;
    struct ledger_repl_member_info none;
    for (k = 0; k < n; k++) {
        if (m[k].id == id) {
            return m[k];
        }
    }
    memset(&none, 0, sizeof none);
    none.role = -1;
    return none;
}

static void waitChange(struct fx *x, struct fx_change *c, unsigned ms)
{
    FX_CHECK_MSG(x, fx_step_until(x, fx_change_done, c, ms),
                 "membership change not done in %u ms", ms);
}

/* ---- Add, promote, demote, remove ------------------------------------ */

/* A node added as spare is in the configuration as spare and gets no
 * entries. */
static void test_add_as_spare(void **state)
{
    struct fx_test *f = *state;
    unsigned l = start(f, __func__, 1);
    struct ledger_repl_member m = member(&f->fx, 3);
    struct fx_change c = {0};

    FX_CHECK_EQ(&f->fx,
                ledger_repl_add(repl(&f->fx, l), &m, REPL_ROLE_SPARE, 0,
                                fx_change_cb, &c),
                0);
    waitChange(&f->fx, &c, 5000);
    FX_CHECK_EQ(&f->fx, c.status, 0);
    FX_CHECK(&f->fx, strcmp(c.msg, "added as spare") == 0);
    FX_CHECK_EQ(&f->fx, ledger_repl_member_role(repl(&f->fx, l), 4),
                REPL_ROLE_SPARE);
    fx_fill(&f->fx, 3);
    fx_step_for(&f->fx, T);
    FX_CHECK_EQ(&f->fx, fx_status(&f->fx, 3).applied_index, 0);
    FX_CHECK_EQ(&f->fx, info(&f->fx, l, 4).lag_entries, 0);
    FX_CHECK_EQ(&f->fx, info(&f->fx, l, 4).last_contact_ms, -1);
}

/* A node added as voter goes spare -> standby, catches up, and only then
 * becomes a voter; the message says how long the catch-up took. */
static void test_add_as_voter_promotes_when_caught_up(void **state)
{
    struct fx_test *f = *state;
    unsigned l = start(f, __func__, 1);
    struct ledger_repl_member m = member(&f->fx, 3);
    struct fx_change c = {0};
    struct ledger_repl_change_info ci;

    fx_fill(&f->fx, 20);
    FX_CHECK_EQ(&f->fx,
                ledger_repl_add(repl(&f->fx, l), &m, REPL_ROLE_VOTER, 0,
                                fx_change_cb, &c),
                0);
    FX_CHECK(&f->fx, ledger_repl_change_busy(repl(&f->fx, l)));
    FX_CHECK(&f->fx, ledger_repl_change_info(repl(&f->fx, l), &ci));
    FX_CHECK_EQ(&f->fx, ci.id, 4);
    FX_CHECK(&f->fx, strcmp(ci.step, "adding") == 0);
    waitChange(&f->fx, &c, 10000);
    FX_CHECK_EQ(&f->fx, c.status, 0);
    FX_CHECK_MSG(&f->fx, strstr(c.msg, "promoted to voter") != NULL, "%s",
                 c.msg);
    FX_CHECK_EQ(&f->fx, ledger_repl_member_role(repl(&f->fx, l), 4),
                REPL_ROLE_VOTER);
    FX_CHECK_EQ(&f->fx, ledger_repl_voters(repl(&f->fx, l)), 4);
    FX_CHECK(&f->fx, !ledger_repl_change_busy(repl(&f->fx, l)));
    FX_CHECK(&f->fx, fx_step_until(&f->fx, fx_all_applied, NULL, 5000));
}

/* A standby that never answers is not promoted: the change ends at its
 * deadline with RAFT_NOCONNECTION and "never answered", and the member
 * stays a standby. */
static void test_promotion_deadline_never_answered(void **state)
{
    struct fx_test *f = *state;
    unsigned l = start(f, __func__, 1);
    struct ledger_repl_member m = member(&f->fx, 3);
    struct fx_change c = {0};
    uint64_t t0;

    fx_freeze(&f->fx, 3);
    t0 = fx_now(&f->fx);
    FX_CHECK_EQ(&f->fx,
                ledger_repl_add(repl(&f->fx, l), &m, REPL_ROLE_VOTER, 3000,
                                fx_change_cb, &c),
                0);
    waitChange(&f->fx, &c, 10000);
    FX_CHECK_EQ(&f->fx, c.status, RAFT_NOCONNECTION);
    FX_CHECK_MSG(&f->fx, strstr(c.msg, "never answered") != NULL, "%s", c.msg);
    FX_CHECK(&f->fx, c.at >= t0 + 3000 && c.at <= t0 + 3000 + 2 * T);
    FX_CHECK_EQ(&f->fx, ledger_repl_member_role(repl(&f->fx, l), 4),
                REPL_ROLE_STANDBY);
}

/* A standby that stays far behind (its link drops most messages) misses
 * the deadline with "entries behind" in the message. */
static void test_promotion_deadline_still_behind(void **state)
{
    struct fx_test *f = *state;
    unsigned l = start(f, __func__, 1);
    struct ledger_repl_member m = member(&f->fx, 3);
    struct fx_change c = {0};
    struct fx_op ops[20];
    unsigned k;

    FX_CHECK_EQ(&f->fx,
                ledger_repl_add(repl(&f->fx, l), &m, REPL_ROLE_STANDBY, 0,
                                fx_change_cb, &c),
                0);
    waitChange(&f->fx, &c, 5000);
    FX_CHECK_EQ(&f->fx, c.status, 0);
    FX_CHECK(&f->fx, fx_step_until(&f->fx, fx_all_applied, NULL, 5000));
    /* The standby stops hearing the leader, then the log grows past the
     * promotion bound. */
    fx_cut(&f->fx, l, 3);
    for (k = 0; k < 20; k++) {
        char id[16];
        snprintf(id, sizeof id, "b%u", k);
        FX_CHECK_EQ(&f->fx, fx_append(&f->fx, l, "big", 64, id, &ops[k]), 0);
        FX_CHECK(&f->fx, fx_step_until(&f->fx, fx_op_done, &ops[k], 5000));
    }
    /* Each entry of the ops above is one index: add bare entries. */
    fx_fill(&f->fx, REPL_PROMOTE_MAX_LAG + 5);
    memset(&c, 0, sizeof c);
    FX_CHECK_EQ(&f->fx,
                ledger_repl_assign(repl(&f->fx, l), 4, REPL_ROLE_VOTER, 2000,
                                   fx_change_cb, &c),
                0);
    waitChange(&f->fx, &c, 10000);
    FX_CHECK_EQ(&f->fx, c.status, RAFT_NOCONNECTION);
    FX_CHECK_MSG(&f->fx, strstr(c.msg, "entries behind") != NULL, "%s", c.msg);
    FX_CHECK_EQ(&f->fx, ledger_repl_member_role(repl(&f->fx, l), 4),
                REPL_ROLE_STANDBY);
    /* Healed, a retry of the promotion succeeds. */
    fx_heal(&f->fx, l, 3);
    memset(&c, 0, sizeof c);
    FX_CHECK_EQ(&f->fx,
                ledger_repl_assign(repl(&f->fx, l), 4, REPL_ROLE_VOTER, 0,
                                   fx_change_cb, &c),
                0);
    waitChange(&f->fx, &c, 10000);
    FX_CHECK_EQ(&f->fx, c.status, 0);
    FX_CHECK_EQ(&f->fx, ledger_repl_member_role(repl(&f->fx, l), 4),
                REPL_ROLE_VOTER);
}

/* A voter is demoted to standby and then to spare; the voter count
 * follows. */
static void test_demotion(void **state)
{
    struct fx_test *f = *state;
    unsigned l = start(f, __func__, 0);
    unsigned k = (l + 1) % 3;
    struct fx_change c = {0};

    FX_CHECK_EQ(&f->fx,
                ledger_repl_assign(repl(&f->fx, l), k + 1, REPL_ROLE_STANDBY, 0,
                                   fx_change_cb, &c),
                0);
    waitChange(&f->fx, &c, 5000);
    FX_CHECK_EQ(&f->fx, c.status, 0);
    FX_CHECK_EQ(&f->fx, ledger_repl_member_role(repl(&f->fx, l), k + 1),
                REPL_ROLE_STANDBY);
    FX_CHECK_EQ(&f->fx, ledger_repl_voters(repl(&f->fx, l)), 2);
    memset(&c, 0, sizeof c);
    FX_CHECK_EQ(&f->fx,
                ledger_repl_assign(repl(&f->fx, l), k + 1, REPL_ROLE_SPARE, 0,
                                   fx_change_cb, &c),
                0);
    waitChange(&f->fx, &c, 5000);
    FX_CHECK_EQ(&f->fx, c.status, 0);
    FX_CHECK_EQ(&f->fx, ledger_repl_member_role(repl(&f->fx, l), k + 1),
                REPL_ROLE_SPARE);
}

/* A follower is removed; the leader's configuration no longer has it and
 * writes commit with the two left. */
static void test_remove_follower(void **state)
{
    struct fx_test *f = *state;
    unsigned l = start(f, __func__, 0);
    unsigned k = (l + 1) % 3;
    struct fx_change c = {0};
    struct fx_op op;

    FX_CHECK_EQ(&f->fx,
                ledger_repl_remove(repl(&f->fx, l), k + 1, fx_change_cb, &c),
                0);
    waitChange(&f->fx, &c, 5000);
    FX_CHECK_EQ(&f->fx, c.status, 0);
    FX_CHECK_EQ(&f->fx, ledger_repl_member_role(repl(&f->fx, l), k + 1), -1);
    FX_CHECK_EQ(&f->fx, ledger_repl_voters(repl(&f->fx, l)), 2);
    fx_freeze(&f->fx, k);
    FX_CHECK_EQ(&f->fx, fx_append_sync(&f->fx, l, "s", 1, "after", &op), 0);
}

/* Members come and go under new ids (automatic roles, replaced machines):
 * the leader forgets the figures of removed ids, so after more removals
 * than it has slots, a new member still gets its last contact, and a
 * removed id that joins again starts without its old figures. */
static void test_removed_members_forgotten(void **state)
{
    struct fx_test *f = *state;
    unsigned l = start(f, __func__, 1);
    struct ledger_repl_member gone;
    struct ledger_repl_member m = member(&f->fx, 3);
    struct fx_change c = {0};
    struct ledger_repl_member_info mi;
    unsigned i;

    for (i = 0; i < 70; i++) {
        memset(&gone, 0, sizeof gone);
        gone.id = 100 + i;
        snprintf(gone.raft_addr, sizeof gone.raft_addr, "gone-%u:1", i);
        snprintf(gone.api_addr, sizeof gone.api_addr, "gone-%u:2", i);
        memset(&c, 0, sizeof c);
        FX_CHECK_EQ(&f->fx,
                    ledger_repl_add(repl(&f->fx, l), &gone, REPL_ROLE_SPARE, 0,
                                    fx_change_cb, &c),
                    0);
        waitChange(&f->fx, &c, 5000);
        FX_CHECK_EQ(&f->fx, c.status, 0);
        fx_step_for(&f->fx, 2 * HB); /* The lag tick sees it. */
        memset(&c, 0, sizeof c);
        FX_CHECK_EQ(
            &f->fx,
            ledger_repl_remove(repl(&f->fx, l), gone.id, fx_change_cb, &c), 0);
        waitChange(&f->fx, &c, 5000);
        FX_CHECK_EQ(&f->fx, c.status, 0);
        fx_step_for(&f->fx, 2 * HB);
    }
    memset(&c, 0, sizeof c);
    FX_CHECK_EQ(&f->fx,
                ledger_repl_add(repl(&f->fx, l), &m, REPL_ROLE_VOTER, 0,
                                fx_change_cb, &c),
                0);
    waitChange(&f->fx, &c, 10000);
    FX_CHECK_EQ(&f->fx, c.status, 0);
    fx_step_for(&f->fx, T);
    mi = info(&f->fx, l, 4);
    FX_CHECK_MSG(
        &f->fx, mi.last_contact_ms >= 0 && mi.last_contact_ms <= (int64_t)T,
        "member 4's last contact %lld ms", (long long)mi.last_contact_ms);
}

/* The leader removes itself: the change completes, another node leads the
 * two that are left, and the old leader reports it is no longer leader. */
static void test_remove_the_leader(void **state)
{
    struct fx_test *f = *state;
    unsigned l = start(f, __func__, 0);
    struct fx_change c = {0};
    struct fx_op op;
    unsigned n;

    FX_CHECK_EQ(&f->fx,
                ledger_repl_remove(repl(&f->fx, l), l + 1, fx_change_cb, &c),
                0);
    waitChange(&f->fx, &c, 5000);
    FX_CHECK_EQ(&f->fx, c.status, 0);
    n = fx_wait_leader(&f->fx, 10 * T);
    FX_CHECK(&f->fx, n != FX_NONE && n != l);
    FX_CHECK_EQ(&f->fx, ledger_repl_member_role(repl(&f->fx, n), l + 1), -1);
    FX_CHECK(&f->fx, !fx_status(&f->fx, l).is_leader);
    FX_CHECK_EQ(&f->fx, fx_append_sync(&f->fx, n, "s", 1, "gone", &op), 0);
}

/* Every refusal: a second change while one runs (RAFT_CANTCHANGE), an
 * unknown member (RAFT_NOTFOUND), the same role again (RAFT_BADROLE), a
 * duplicate id (RAFT_DUPLICATEID), any change on a follower
 * (RAFT_NOTLEADER). None calls back. */
static void test_refusals(void **state)
{
    struct fx_test *f = *state;
    unsigned l = start(f, __func__, 1);
    unsigned k = (l + 1) % 3;
    struct ledger_repl_member m4 = member(&f->fx, 3);
    struct ledger_repl_member m1 = member(&f->fx, k);
    struct fx_change c = {0};
    struct fx_change never = {0};

    FX_CHECK_EQ(&f->fx,
                ledger_repl_add(repl(&f->fx, k), &m4, REPL_ROLE_VOTER, 0,
                                fx_change_cb, &never),
                RAFT_NOTLEADER);
    FX_CHECK_EQ(&f->fx,
                ledger_repl_assign(repl(&f->fx, l), 9, REPL_ROLE_VOTER, 0,
                                   fx_change_cb, &never),
                RAFT_NOTFOUND);
    FX_CHECK_EQ(&f->fx,
                ledger_repl_assign(repl(&f->fx, l), k + 1, REPL_ROLE_VOTER, 0,
                                   fx_change_cb, &never),
                RAFT_BADROLE);
    FX_CHECK_EQ(&f->fx,
                ledger_repl_add(repl(&f->fx, l), &m1, REPL_ROLE_VOTER, 0,
                                fx_change_cb, &never),
                RAFT_DUPLICATEID);
    fx_freeze(&f->fx, 3); /* the promotion below waits */
    FX_CHECK_EQ(&f->fx,
                ledger_repl_add(repl(&f->fx, l), &m4, REPL_ROLE_VOTER, 60000,
                                fx_change_cb, &c),
                0);
    FX_CHECK_EQ(&f->fx,
                ledger_repl_assign(repl(&f->fx, l), k + 1, REPL_ROLE_STANDBY, 0,
                                   fx_change_cb, &never),
                RAFT_CANTCHANGE);
    FX_CHECK(&f->fx, strcmp(ledger_repl_errmsg(repl(&f->fx, l)),
                            "another membership change is in progress") == 0);
    fx_step_for(&f->fx, T);
    FX_CHECK(&f->fx, !never.done);
}

/* Leadership lost while a standby catches up ends the promotion with
 * RAFT_LEADERSHIPLOST; the member stays a standby. */
static void test_leadership_lost_during_promotion(void **state)
{
    struct fx_test *f = *state;
    unsigned l = start(f, __func__, 1);
    struct ledger_repl_member m = member(&f->fx, 3);
    struct fx_change c = {0};
    unsigned n;

    fx_freeze(&f->fx, 3);
    FX_CHECK_EQ(&f->fx,
                ledger_repl_add(repl(&f->fx, l), &m, REPL_ROLE_VOTER, 60000,
                                fx_change_cb, &c),
                0);
    fx_step_for(&f->fx, T);
    FX_CHECK(&f->fx, !c.done);
    fx_isolate(&f->fx, l);
    waitChange(&f->fx, &c, 3 * T);
    FX_CHECK_EQ(&f->fx, c.status, RAFT_LEADERSHIPLOST);
    n = fx_wait_leader(&f->fx, 10 * T);
    FX_CHECK(&f->fx, n != FX_NONE && n != l);
    FX_CHECK_EQ(&f->fx, ledger_repl_member_role(repl(&f->fx, n), 4),
                REPL_ROLE_STANDBY);
}

/* Removing a member whose promotion is waiting cancels the promotion
 * (RAFT_CANCELED) and the removal goes through. */
static void test_remove_cancels_promotion(void **state)
{
    struct fx_test *f = *state;
    unsigned l = start(f, __func__, 1);
    struct ledger_repl_member m = member(&f->fx, 3);
    struct fx_change c = {0};
    struct fx_change rm = {0};

    fx_freeze(&f->fx, 3);
    FX_CHECK_EQ(&f->fx,
                ledger_repl_add(repl(&f->fx, l), &m, REPL_ROLE_VOTER, 60000,
                                fx_change_cb, &c),
                0);
    fx_step_for(&f->fx, T);
    FX_CHECK_EQ(&f->fx,
                ledger_repl_remove(repl(&f->fx, l), 4, fx_change_cb, &rm), 0);
    FX_CHECK(&f->fx, c.done);
    FX_CHECK_EQ(&f->fx, c.status, RAFT_CANCELED);
    waitChange(&f->fx, &rm, 5000);
    FX_CHECK_EQ(&f->fx, rm.status, 0);
    FX_CHECK_EQ(&f->fx, ledger_repl_member_role(repl(&f->fx, l), 4), -1);
}

/* ---- Leadership transfer ---------------------------------------------- */

struct xferResult {
    bool done;
    uint64_t leader;
    uint64_t at;
    struct fx *fx;
};

static void xferCb(void *arg, uint64_t leader)
{
    struct xferResult *x = arg;
    x->done = true;
    x->leader = leader;
    x->at = fx_now(x->fx);
}

static bool xferDone(struct fx *f, void *arg)
{
    (void)f;
    return ((struct xferResult *)arg)->done;
}

/* Transfer to "any" picks the most up-to-date voter; the callback names
 * the new leader, who takes writes. */
static void test_transfer_to_best_voter(void **state)
{
    struct fx_test *f = *state;
    unsigned l = start(f, __func__, 0);
    unsigned behind = (l + 1) % 3;
    unsigned best = (l + 2) % 3;
    struct xferResult x = {false, 0, 0, &f->fx};
    struct fx_op op;

    /* `behind` misses the last entries. */
    fx_cut(&f->fx, l, behind);
    fx_fill(&f->fx, 3);
    FX_CHECK_EQ(&f->fx, ledger_repl_transfer(repl(&f->fx, l), 0, xferCb, &x),
                0);
    FX_CHECK(&f->fx, ledger_repl_transferring(repl(&f->fx, l)));
    FX_CHECK(&f->fx, fx_step_until(&f->fx, xferDone, &x, 5 * T));
    FX_CHECK_EQ(&f->fx, x.leader, best + 1);
    FX_CHECK_EQ(&f->fx, fx_wait_leader(&f->fx, T), best);
    fx_heal(&f->fx, l, behind);
    FX_CHECK_EQ(&f->fx, fx_append_sync(&f->fx, best, "s", 1, "x", &op), 0);
}

/* Transfer to a named voter quiesces first: writes queued before it are
 * all applied (none gets EUNKNOWN), writes during it are refused with
 * ENOTLEADER, then the target leads. */
static void test_transfer_quiesces(void **state)
{
    struct fx_test *f = *state;
    unsigned l = start(f, __func__, 0);
    unsigned to = (l + 2) % 3;
    struct xferResult x = {false, 0, 0, &f->fx};
    struct fx_op ops[8];
    struct fx_op late;
    unsigned k;

    for (k = 0; k < 8; k++) {
        char id[16];
        snprintf(id, sizeof id, "q%u", k);
        FX_CHECK_EQ(&f->fx, fx_append(&f->fx, l, "s", 2, id, &ops[k]), 0);
    }
    FX_CHECK_EQ(&f->fx,
                ledger_repl_transfer(repl(&f->fx, l), to + 1, xferCb, &x), 0);
    FX_CHECK_EQ(&f->fx, fx_append(&f->fx, l, "s", 1, "late", &late),
                LEDGER_REPL_ENOTLEADER);
    FX_CHECK_EQ(&f->fx, ledger_repl_transfer(repl(&f->fx, l), 0, xferCb, &x),
                LEDGER_REPL_EBUSY);
    FX_CHECK(&f->fx, fx_step_until(&f->fx, xferDone, &x, 5 * T));
    FX_CHECK_EQ(&f->fx, x.leader, to + 1);
    for (k = 0; k < 8; k++) {
        FX_CHECK(&f->fx, ops[k].done);
        FX_CHECK_EQ(&f->fx, ops[k].status, 0);
    }
}

/* Transfer is refused on a follower (ENOTLEADER); a transfer whose target
 * cannot be reached ends within two election timeouts with this node
 * still leading. */
static void test_transfer_refusals_and_timeout(void **state)
{
    struct fx_test *f = *state;
    unsigned l = start(f, __func__, 0);
    unsigned to = (l + 1) % 3;
    struct xferResult x = {false, 0, 0, &f->fx};
    uint64_t t0;

    FX_CHECK_EQ(&f->fx, ledger_repl_transfer(repl(&f->fx, to), 0, xferCb, &x),
                LEDGER_REPL_ENOTLEADER);
    fx_cut(&f->fx, l, to);
    t0 = fx_now(&f->fx);
    FX_CHECK_EQ(&f->fx,
                ledger_repl_transfer(repl(&f->fx, l), to + 1, xferCb, &x), 0);
    FX_CHECK(&f->fx, fx_step_until(&f->fx, xferDone, &x, 4 * T));
    FX_CHECK(&f->fx, x.at <= t0 + 2 * T + TICK);
    FX_CHECK_EQ(&f->fx, x.leader, l + 1);
    FX_CHECK(&f->fx, !ledger_repl_transferring(repl(&f->fx, l)));
}

/* A leader cut off while its transfer still quiesces (entries in flight
 * that cannot commit) steps down; its entries end EUNKNOWN and the
 * transfer ends with its callback, without calling raft while raft is
 * stepping down (raft frees its progress array before it fails the
 * pending entries: a transfer started from their callbacks crashed). */
static void test_transfer_quiescing_when_leader_steps_down(void **state)
{
    struct fx_test *f = *state;
    unsigned l = start(f, __func__, 0);
    unsigned to = (l + 1) % 3;
    struct xferResult x = {false, 0, 0, &f->fx};
    struct fx_op ops[3];
    unsigned k;

    fx_step_for(&f->fx, 2 * HB);
    fx_isolate(&f->fx, l);
    for (k = 0; k < 3; k++) {
        char id[16];
        snprintf(id, sizeof id, "sd%u", k);
        FX_CHECK_EQ(&f->fx, fx_append(&f->fx, l, "s", 1, id, &ops[k]), 0);
    }
    fx_run(&f->fx); /* proposed: in flight */
    FX_CHECK_EQ(&f->fx,
                ledger_repl_transfer(repl(&f->fx, l), to + 1, xferCb, &x), 0);
    FX_CHECK(&f->fx, fx_step_until(&f->fx, xferDone, &x, 3 * T));
    FX_CHECK(&f->fx, !fx_status(&f->fx, l).is_leader);
    for (k = 0; k < 3; k++) {
        FX_CHECK(&f->fx, ops[k].done);
        FX_CHECK_EQ(&f->fx, ops[k].status, LEDGER_REPL_EUNKNOWN);
    }
}

/* ---- Lag and contact figures ------------------------------------------ */

/* A follower cut off from the leader falls behind by exactly the entries
 * appended since, its lag_ms counts from the first entry it lacks, and its
 * last contact from its last answer; past T it shows as unreachable. */
static void test_lag_and_last_contact_of_cut_follower(void **state)
{
    struct fx_test *f = *state;
    unsigned l = start(f, __func__, 0);
    unsigned k = (l + 1) % 3;
    struct ledger_repl_member_info m;
    struct fx_op op;
    uint64_t cut;
    uint64_t first;
    unsigned j;

    fx_fill(&f->fx, 2);
    fx_step_for(&f->fx, 2 * HB);
    m = info(&f->fx, l, k + 1);
    FX_CHECK_EQ(&f->fx, m.lag_entries, 0);
    FX_CHECK(&f->fx,
             m.last_contact_ms >= 0 && m.last_contact_ms <= (int64_t)HB + 40);
    FX_CHECK(&f->fx, strcmp(m.state, "follower") == 0);

    fx_cut(&f->fx, k, l); /* its answers are lost */
    fx_cut(&f->fx, l, k);
    cut = fx_now(&f->fx);
    FX_CHECK_EQ(&f->fx, fx_append_sync(&f->fx, l, "s", 1, "lag0", &op), 0);
    first = fx_now(&f->fx);
    for (j = 1; j < 5; j++) {
        char id[16];
        snprintf(id, sizeof id, "lag%u", j);
        FX_CHECK_EQ(&f->fx, fx_append_sync(&f->fx, l, "s", 1, id, &op), 0);
    }
    m = info(&f->fx, l, k + 1);
    FX_CHECK_EQ(&f->fx, m.lag_entries, 5);
    /* The first missing entry was proposed at most one round trip before
     * the first append's answer. */
    FX_CHECK(&f->fx, m.lag_ms >= fx_now(&f->fx) - first);
    FX_CHECK(&f->fx, m.lag_ms <= fx_now(&f->fx) - cut);
    FX_CHECK(&f->fx, m.last_contact_ms >= (int64_t)(fx_now(&f->fx) - cut));
    fx_step_for(&f->fx, T + TICK);
    m = info(&f->fx, l, k + 1);
    FX_CHECK(&f->fx, strcmp(m.state, "unreachable") == 0);
    FX_CHECK(&f->fx, m.last_contact_ms > (int64_t)T);
    fx_heal(&f->fx, k, l);
    fx_heal(&f->fx, l, k);
    fx_step_for(&f->fx, 3 * HB);
    m = info(&f->fx, l, k + 1);
    FX_CHECK_EQ(&f->fx, m.lag_entries, 0);
    FX_CHECK_EQ(&f->fx, m.lag_ms, 0);
    FX_CHECK(&f->fx, strcmp(m.state, "follower") == 0);
}

/* The applied index a member reports is shown while fresh; after
 * REPL_APPLIED_FRESH_MS the leader's estimate min(match, commit) again. */
static void test_reported_applied_index_freshness(void **state)
{
    struct fx_test *f = *state;
    unsigned l = start(f, __func__, 0);
    unsigned k = (l + 1) % 3;
    struct ledger_repl_member_info m;

    fx_fill(&f->fx, 3);
    fx_step_for(&f->fx, 2 * HB);
    ledger_repl_note_applied(repl(&f->fx, l), k + 1, 2);
    m = info(&f->fx, l, k + 1);
    FX_CHECK_EQ(&f->fx, m.applied_index, 2);
    fx_step_for(&f->fx, REPL_APPLIED_FRESH_MS + TICK);
    m = info(&f->fx, l, k + 1);
    FX_CHECK_EQ(&f->fx, m.applied_index, fx_status(&f->fx, l).commit_index);
}

/* A follower's own view: the leader is "leader", the others "follower",
 * its own row carries its applied index; status gives the leader's last
 * contact. */
static void test_follower_view_and_contact(void **state)
{
    struct fx_test *f = *state;
    unsigned l = start(f, __func__, 0);
    unsigned k = (l + 1) % 3;
    struct ledger_repl_status st;

    fx_fill(&f->fx, 2);
    fx_step_for(&f->fx, 3 * HB);
    FX_CHECK(&f->fx, strcmp(info(&f->fx, k, l + 1).state, "leader") == 0);
    FX_CHECK_EQ(&f->fx, info(&f->fx, k, k + 1).applied_index,
                fx_status(&f->fx, k).applied_index);
    st = fx_status(&f->fx, k);
    FX_CHECK(&f->fx, st.leader_contact_ms >= 0 &&
                         st.leader_contact_ms <= (int64_t)HB + 40);
    FX_CHECK_EQ(&f->fx, fx_status(&f->fx, l).leader_contact_ms, 0);
    fx_freeze(&f->fx, l);
    fx_step_for(&f->fx, T / 2);
    st = fx_status(&f->fx, k);
    FX_CHECK(&f->fx, st.leader_contact_ms >= (int64_t)(T / 2));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_add_as_spare, fx_test_setup,
                                        fx_test_teardown),
        cmocka_unit_test_setup_teardown(
            test_add_as_voter_promotes_when_caught_up, fx_test_setup,
            fx_test_teardown),
        cmocka_unit_test_setup_teardown(test_promotion_deadline_never_answered,
                                        fx_test_setup, fx_test_teardown),
        cmocka_unit_test_setup_teardown(test_promotion_deadline_still_behind,
                                        fx_test_setup, fx_test_teardown),
        cmocka_unit_test_setup_teardown(test_demotion, fx_test_setup,
                                        fx_test_teardown),
        cmocka_unit_test_setup_teardown(test_remove_follower, fx_test_setup,
                                        fx_test_teardown),
        cmocka_unit_test_setup_teardown(test_remove_the_leader, fx_test_setup,
                                        fx_test_teardown),
        cmocka_unit_test_setup_teardown(test_refusals, fx_test_setup,
                                        fx_test_teardown),
        cmocka_unit_test_setup_teardown(test_leadership_lost_during_promotion,
                                        fx_test_setup, fx_test_teardown),
        cmocka_unit_test_setup_teardown(test_remove_cancels_promotion,
                                        fx_test_setup, fx_test_teardown),
        cmocka_unit_test_setup_teardown(test_transfer_to_best_voter,
                                        fx_test_setup, fx_test_teardown),
        cmocka_unit_test_setup_teardown(test_transfer_quiesces, fx_test_setup,
                                        fx_test_teardown),
        cmocka_unit_test_setup_teardown(test_transfer_refusals_and_timeout,
                                        fx_test_setup, fx_test_teardown),
        cmocka_unit_test_setup_teardown(
            test_transfer_quiescing_when_leader_steps_down, fx_test_setup,
            fx_test_teardown),
        cmocka_unit_test_setup_teardown(
            test_lag_and_last_contact_of_cut_follower, fx_test_setup,
            fx_test_teardown),
        cmocka_unit_test_setup_teardown(test_reported_applied_index_freshness,
                                        fx_test_setup, fx_test_teardown),
        cmocka_unit_test_setup_teardown(test_removed_members_forgotten,
                                        fx_test_setup, fx_test_teardown),
        cmocka_unit_test_setup_teardown(test_follower_view_and_contact,
                                        fx_test_setup, fx_test_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
