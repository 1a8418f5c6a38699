/* Unit tests for the leader's member gauges (node/metrics.c) and the
 * fault tolerance they report (node/members_poll.c): Prometheus' base
 * units, no sample for an unknown value, the quorum arithmetic. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "members_poll.h"
#include "metrics.h"

#define ASSERT_CONTAINS(text, needle)                                          \
    do {                                                                       \
        if (strstr((text), (needle)) == NULL) {                                \
            fail_msg("'%s' not in:\n%s", (needle), (text));                    \
        }                                                                      \
    } while (0)
#define ASSERT_LACKS(text, needle)                                             \
    do {                                                                       \
        if (strstr((text), (needle)) != NULL) {                                \
            fail_msg("'%s' unexpected in:\n%s", (needle), (text));             \
        }                                                                      \
    } while (0)

static struct member_view member(uint64_t id, int role, bool reachable)
{
    struct member_view v;
    memset(&v, 0, sizeof v);
    v.r.id = id;
    v.r.role = role;
    v.r.state = reachable ? "follower" : "unreachable";
    v.r.last_contact_ms = -1;
    v.view_known = true;
    v.reachable = reachable;
    v.stable_ms = -1;
    return v;
}

/* Further voters one can lose: reachable voters minus a majority. */
static void test_fault_tolerance(void **state)
{
    static const struct {
        int voters;
        int live;
        int standbys;
        int want;
    } cases[] = {
        {1, 1, 0, 0}, {2, 2, 0, 0}, {3, 3, 0, 1}, {3, 2, 0, 0},
        {3, 1, 0, 0}, {4, 4, 0, 1}, {5, 5, 2, 2}, {5, 4, 0, 1},
        {5, 3, 0, 0}, {5, 2, 3, 0}, {7, 7, 0, 3},
    };
    (void)state;
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        struct member_view v[16];
        int n = 0;
        for (int i = 0; i < cases[c].voters; i++, n++) {
            v[n] = member((uint64_t)n + 1, REPL_ROLE_VOTER, i < cases[c].live);
        }
        /* Standbys and spares never count, reachable or not. */
        for (int i = 0; i < cases[c].standbys; i++, n++) {
            v[n] = member((uint64_t)n + 1,
                          i % 2 ? REPL_ROLE_SPARE : REPL_ROLE_STANDBY, true);
        }
        if (members_fault_tolerance(v, (size_t)n) != cases[c].want) {
            fail_msg("%d voters, %d reachable: want %d, got %d",
                     cases[c].voters, cases[c].live, cases[c].want,
                     members_fault_tolerance(v, (size_t)n));
        }
    }
}

/* Times in seconds; a never-contacted member has no last-contact sample;
 * the cluster gauges follow. */
static void test_member_gauges_in_base_units(void **state)
{
    struct member_view v[3] = {
        member(1, REPL_ROLE_VOTER, true),
        member(2, REPL_ROLE_VOTER, false),
        member(3, REPL_ROLE_SPARE, true),
    };
    size_t len = 0;
    char *text;

    (void)state;
    v[0].r.last_contact_ms = 0;
    v[1].r.lag_entries = 14;
    v[1].r.lag_ms = 8129;
    v[1].r.last_contact_ms = 11826;
    text = metrics_render_members(v, 3, &len);
    assert_non_null(text);
    assert_int_equal(strlen(text), len);
    ASSERT_CONTAINS(text, "# TYPE ledger_member_lag_seconds gauge\n");
    ASSERT_CONTAINS(text, "ledger_member_lag_seconds{id=\"2\",role=\"voter\"} "
                          "8.129\n");
    ASSERT_CONTAINS(text, "ledger_member_last_contact_seconds{id=\"2\","
                          "role=\"voter\"} 11.826\n");
    ASSERT_CONTAINS(text, "ledger_member_last_contact_seconds{id=\"1\","
                          "role=\"voter\"} 0.000\n");
    ASSERT_LACKS(text, "ledger_member_last_contact_seconds{id=\"3\"");
    ASSERT_CONTAINS(text,
                    "ledger_member_lag_entries{id=\"2\",role=\"voter\"} 14\n");
    ASSERT_CONTAINS(text,
                    "ledger_member_reachable{id=\"2\",role=\"voter\"} 0\n");
    ASSERT_CONTAINS(text,
                    "ledger_member_reachable{id=\"3\",role=\"spare\"} 1\n");
    ASSERT_CONTAINS(text, "ledger_cluster_voters 2\n");
    ASSERT_CONTAINS(text, "ledger_cluster_fault_tolerance 0\n");
    ASSERT_LACKS(text, "_ms{");
    ASSERT_LACKS(text, "-1\n");
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fault_tolerance),
        cmocka_unit_test(test_member_gauges_in_base_units),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
