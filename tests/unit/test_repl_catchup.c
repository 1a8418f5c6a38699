/* Snapshot install and the asynchronous catch-up (replication/catchup.c)
 * on raft's fixture (tests/lib/repl_fixture.h), with the harness as the
 * catch-up source: a follower that missed more than the leader's log
 * keeps gets a snapshot, pulls the events it lacks page by page
 * (FX_PULL_PAGE), member after member when one fails or lies, while the
 * entries above the snapshot wait and are applied after, in order. Fake
 * time: T = 1000 ms; snapshots every 8 entries, 4 kept. */
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
#define EVENTS_PER_ENTRY 20u

static unsigned start(struct fx_test *f, const char *name, unsigned n)
{
    struct fx_options o = {
        .n = n, .snapshot_threshold = 8, .snapshot_trailing = 4};
    fx_start_cluster(&f->fx, name, &o);
    return fx_leader(&f->fx);
}

/* `entries` appends of EVENTS_PER_ENTRY events on the leader. */
static void load(struct fx *x, unsigned entries, const char *tag)
{
    unsigned k;
    for (k = 0; k < entries; k++) {
        struct fx_op op;
        char id[32];
        unsigned l = fx_wait_leader(x, 10 * T);
        FX_CHECK(x, l != FX_NONE);
        snprintf(id, sizeof id, "%s%u", tag, k);
        FX_CHECK_EQ(x, fx_append_sync(x, l, "load", EVENTS_PER_ENTRY, id, &op),
                    0);
    }
}

static bool catchingUp(struct fx *x, void *arg)
{
    return fx_status(x, *(unsigned *)arg).catching_up;
}

static bool caughtUp(struct fx *x, void *arg)
{
    unsigned i = *(unsigned *)arg;
    unsigned l = fx_leader(x);
    struct ledger_repl_status st = fx_status(x, i);
    return l != FX_NONE && !st.catching_up &&
           st.applied_index == fx_status(x, l).last_index &&
           fx_position(x, i) == fx_position(x, l);
}

static void sameHead(struct fx *x, unsigned a, unsigned b)
{
    uint8_t ha[LEDGER_HASH_LEN];
    uint8_t hb[LEDGER_HASH_LEN];
    FX_CHECK_EQ(x, fx_position(x, a), fx_position(x, b));
    fx_head(x, a, ha);
    fx_head(x, b, hb);
    FX_CHECK(x, memcmp(ha, hb, LEDGER_HASH_LEN) == 0);
}

/* Cut follower k off, load the leader past several snapshots, heal. */
static void fallBehind(struct fx *x, unsigned k, unsigned entries)
{
    fx_isolate(x, k);
    load(x, entries, "behind");
    fx_rejoin(x, k);
}

/* A follower that missed 30 entries (600 events) gets a snapshot, pulls
 * every event it lacks (from the leader first) and ends with the leader's
 * head hash and applied index. */
static void test_lagging_follower_restores_and_pulls(void **state)
{
    struct fx_test *f = *state;
    unsigned l = start(f, __func__, 3);
    unsigned k = (l + 1) % 3;

    load(&f->fx, 2, "pre");
    fallBehind(&f->fx, k, 30);
    FX_CHECK(&f->fx, fx_step_until(&f->fx, catchingUp, &k, 3 * T));
    FX_CHECK(&f->fx, fx_step_until(&f->fx, caughtUp, &k, 10 * T));
    sameHead(&f->fx, k, l);
    FX_CHECK(&f->fx, f->fx.nodes[l].pulls_served >=
                         30 * EVENTS_PER_ENTRY / FX_PULL_PAGE - 1);
}

/* While the pull runs, entries committed above the snapshot wait: the
 * applied index the follower reports stays at the store's until they are
 * applied, and the store never shows an applied index it lacks. */
static void test_entries_wait_for_the_pull(void **state)
{
    struct fx_test *f = *state;
    unsigned l = start(f, __func__, 3);
    unsigned k = (l + 1) % 3;
    unsigned o = (l + 2) % 3;
    struct ledger_repl_status st;
    uint64_t before;

    load(&f->fx, 1, "pre");
    before = fx_status(&f->fx, k).applied_index;
    /* Only the third node serves pulls, and not yet. */
    f->fx.nodes[l].pull_fails = true;
    f->fx.nodes[o].pull_fails = true;
    fallBehind(&f->fx, k, 20);
    FX_CHECK(&f->fx, fx_step_until(&f->fx, catchingUp, &k, 3 * T));
    load(&f->fx, 5, "during");
    fx_step_for(&f->fx, T / 2);
    st = fx_status(&f->fx, k);
    FX_CHECK(&f->fx, st.catching_up);
    FX_CHECK_EQ(&f->fx, st.applied_index, before);
    FX_CHECK(&f->fx, st.catchup_target > st.catchup_position);
    FX_CHECK(&f->fx, st.commit_index > before); /* Raft moved on */
    f->fx.nodes[o].pull_fails = false;
    FX_CHECK(&f->fx, fx_step_until(&f->fx, caughtUp, &k, 10 * T));
    sameHead(&f->fx, k, l);
}

/* The leader cannot serve the pull: the next member does. */
static void test_pull_moves_to_next_member(void **state)
{
    struct fx_test *f = *state;
    unsigned l = start(f, __func__, 3);
    unsigned k = (l + 1) % 3;
    unsigned o = (l + 2) % 3;

    f->fx.nodes[l].pull_fails = true;
    fallBehind(&f->fx, k, 12);
    FX_CHECK(&f->fx, fx_step_until(&f->fx, caughtUp, &k, 10 * T));
    FX_CHECK_EQ(&f->fx, f->fx.nodes[l].pulls_served, 0);
    FX_CHECK(&f->fx, f->fx.nodes[o].pulls_served > 0);
    sameHead(&f->fx, k, l);
}

/* A member whose events do not extend the chain (tampered data) is
 * refused at the first bad event and another member supplies the rest;
 * nothing of the bad page is kept. */
static void test_tampered_page_is_refused(void **state)
{
    struct fx_test *f = *state;
    unsigned l = start(f, __func__, 3);
    unsigned k = (l + 1) % 3;

    f->fx.nodes[l].pull_tampers = true;
    fallBehind(&f->fx, k, 12);
    FX_CHECK(&f->fx, fx_step_until(&f->fx, caughtUp, &k, 10 * T));
    sameHead(&f->fx, k, l);
    {
        struct ledger_verify_result v;
        FX_CHECK_EQ(&f->fx, ledger_store_verify(f->fx.nodes[k].store, &v), 0);
        FX_CHECK(&f->fx, v.ok);
    }
}

/* When every member fails, the pull waits REPL__CATCHUP_RETRY_MS (1 s)
 * and tries again; once a member serves, the follower catches up. */
static void test_pull_retries_after_every_member_failed(void **state)
{
    struct fx_test *f = *state;
    unsigned l = start(f, __func__, 3);
    unsigned k = (l + 1) % 3;
    unsigned o = (l + 2) % 3;
    uint64_t t0;

    f->fx.nodes[l].pull_fails = true;
    f->fx.nodes[o].pull_fails = true;
    fallBehind(&f->fx, k, 12);
    FX_CHECK(&f->fx, fx_step_until(&f->fx, catchingUp, &k, 3 * T));
    fx_step_for(&f->fx, 3 * T);
    FX_CHECK(&f->fx, fx_status(&f->fx, k).catching_up);
    f->fx.nodes[o].pull_fails = false;
    t0 = fx_now(&f->fx);
    FX_CHECK(&f->fx, fx_step_until(&f->fx, caughtUp, &k, 10 * T));
    FX_CHECK(&f->fx, fx_now(&f->fx) <= t0 + 1000 + 2 * HB + T);
    sameHead(&f->fx, k, l);
}

/* A newer snapshot that arrives while a pull is still waiting replaces
 * the target: the follower ends at the leader's state, with every entry
 * applied exactly once. */
static void test_newer_snapshot_retargets_the_pull(void **state)
{
    struct fx_test *f = *state;
    unsigned l = start(f, __func__, 3);
    unsigned k = (l + 1) % 3;
    unsigned o = (l + 2) % 3;
    struct ledger_repl_status st;
    uint64_t first;

    f->fx.nodes[l].pull_fails = true;
    f->fx.nodes[o].pull_fails = true;
    fallBehind(&f->fx, k, 12);
    FX_CHECK(&f->fx, fx_step_until(&f->fx, catchingUp, &k, 3 * T));
    first = fx_status(&f->fx, k).catchup_target;
    fallBehind(&f->fx, k, 30);
    fx_step_for(&f->fx, 2 * T);
    st = fx_status(&f->fx, k);
    FX_CHECK(&f->fx, st.catching_up);
    FX_CHECK_MSG(&f->fx, st.catchup_target > first, "target %llu, first %llu",
                 (unsigned long long)st.catchup_target,
                 (unsigned long long)first);
    f->fx.nodes[l].pull_fails = false;
    FX_CHECK(&f->fx, fx_step_until(&f->fx, caughtUp, &k, 10 * T));
    sameHead(&f->fx, k, l);
}

/* A node that wins an election while still catching up takes no writes
 * and hands leadership to a voter that has the state. */
static void test_catching_up_leader_hands_over(void **state)
{
    struct fx_test *f = *state;
    /* Node 1 leads first; node 2 stands next (smaller draw than node 3). */
    struct fx_options o3 = {.n = 3,
                            .snapshot_threshold = 8,
                            .snapshot_trailing = 4,
                            .draws = {T, T + 100, 2 * T - 1}};
    unsigned l;
    unsigned k = 1;
    unsigned o = 2;
    struct fx_op op;
    unsigned n;

    fx_start_cluster(&f->fx, __func__, &o3);
    l = fx_leader(&f->fx);
    FX_CHECK_EQ(&f->fx, l, 0);
    f->fx.nodes[l].pull_fails = true;
    f->fx.nodes[o].pull_fails = true;
    fallBehind(&f->fx, k, 12);
    FX_CHECK(&f->fx, fx_step_until(&f->fx, catchingUp, &k, 3 * T));
    fx_step_for(&f->fx, 3 * HB);
    fx_freeze(&f->fx, l);
    n = fx_wait_leader(&f->fx, 10 * T);
    FX_CHECK_EQ(&f->fx, n, k);
    FX_CHECK_EQ(&f->fx, fx_append(&f->fx, k, "s", 1, "no", &op),
                LEDGER_REPL_ENOTLEADER);
    fx_step_for(&f->fx, 3 * HB);
    FX_CHECK_EQ(&f->fx, fx_wait_leader(&f->fx, 3 * T), o);
    FX_CHECK_EQ(&f->fx, fx_append_sync(&f->fx, o, "s", 1, "yes", &op), 0);
    f->fx.nodes[o].pull_fails = false;
    FX_CHECK(&f->fx, fx_step_until(&f->fx, caughtUp, &k, 10 * T));
    sameHead(&f->fx, k, o);
}

/* Without a catch-up source in reach (every member fails for a long
 * time), Raft on the follower stays healthy: it keeps receiving entries,
 * its snapshots are refused while the store is behind, and it catches up
 * once a member answers. */
static void test_long_outage_keeps_raft_healthy(void **state)
{
    struct fx_test *f = *state;
    unsigned l = start(f, __func__, 3);
    unsigned k = (l + 1) % 3;
    unsigned o = (l + 2) % 3;

    f->fx.nodes[l].pull_fails = true;
    f->fx.nodes[o].pull_fails = true;
    fallBehind(&f->fx, k, 12);
    FX_CHECK(&f->fx, fx_step_until(&f->fx, catchingUp, &k, 3 * T));
    load(&f->fx, 20, "more"); /* past k's own snapshot threshold */
    fx_step_for(&f->fx, 5 * T);
    FX_CHECK(&f->fx, strcmp(fx_status(&f->fx, k).state, "follower") == 0);
    FX_CHECK_EQ(&f->fx, fx_status(&f->fx, k).commit_index,
                fx_status(&f->fx, l).commit_index);
    f->fx.nodes[l].pull_fails = false;
    FX_CHECK(&f->fx, fx_step_until(&f->fx, caughtUp, &k, 10 * T));
    sameHead(&f->fx, k, l);
}

static bool snapshotArrived(struct fx *x, void *arg)
{
    unsigned k = *(unsigned *)arg;
    return raft_fixture_n_recv(&x->rf, k, RAFT_IO_INSTALL_SNAPSHOT) > 0;
}

/* A follower whose election timer fires while a received snapshot is
 * still being written becomes a candidate; the write's completion waits
 * until it follows again (raft 0.15 would answer the leader through the
 * candidate's state: a segfault in ledgerd), then the snapshot installs
 * and the catch-up runs. */
static void test_snapshot_written_while_candidate(void **state)
{
    struct fx_test *f = *state;
    unsigned l = start(f, __func__, 3);
    unsigned k = (l + 1) % 3;

    fx_isolate(&f->fx, k);
    load(&f->fx, 12, "behind");
    raft_fixture_set_disk_latency(&f->fx.rf, k, 3 * T); /* a stalled disk */
    fx_rejoin(&f->fx, k);
    FX_CHECK(&f->fx, fx_step_until(&f->fx, snapshotArrived, &k, 3 * T));
    fx_cut(&f->fx, l, k); /* no more heartbeats: its timer fires */
    fx_step_for(&f->fx, 2 * T + T / 2);
    FX_CHECK(&f->fx, strcmp(fx_status(&f->fx, k).state, "candidate") == 0);
    fx_step_for(&f->fx, T); /* the write completed meanwhile: parked */
    FX_CHECK(&f->fx, strcmp(fx_status(&f->fx, k).state, "candidate") == 0);
    FX_CHECK_EQ(&f->fx, fx_position(&f->fx, k), 0); /* not restored */
    FX_CHECK(&f->fx, !fx_status(&f->fx, k).catching_up);
    raft_fixture_set_disk_latency(&f->fx.rf, k, 10);
    fx_heal(&f->fx, l, k);
    FX_CHECK(&f->fx, fx_step_until(&f->fx, caughtUp, &k, 10 * T));
    sameHead(&f->fx, k, l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(
            test_lagging_follower_restores_and_pulls, fx_test_setup,
            fx_test_teardown),
        cmocka_unit_test_setup_teardown(test_entries_wait_for_the_pull,
                                        fx_test_setup, fx_test_teardown),
        cmocka_unit_test_setup_teardown(test_pull_moves_to_next_member,
                                        fx_test_setup, fx_test_teardown),
        cmocka_unit_test_setup_teardown(test_tampered_page_is_refused,
                                        fx_test_setup, fx_test_teardown),
        cmocka_unit_test_setup_teardown(
            test_pull_retries_after_every_member_failed, fx_test_setup,
            fx_test_teardown),
        cmocka_unit_test_setup_teardown(test_newer_snapshot_retargets_the_pull,
                                        fx_test_setup, fx_test_teardown),
        cmocka_unit_test_setup_teardown(test_catching_up_leader_hands_over,
                                        fx_test_setup, fx_test_teardown),
        cmocka_unit_test_setup_teardown(test_long_outage_keeps_raft_healthy,
                                        fx_test_setup, fx_test_teardown),
        cmocka_unit_test_setup_teardown(test_snapshot_written_while_candidate,
                                        fx_test_setup, fx_test_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
