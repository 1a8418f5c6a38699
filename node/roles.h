/* Automatic roles on this node (node/roles.c, node/api_roles.c).
 *
 * Cluster-wide targets (voters, standbys, dead_after_s) are replicated
 * through the Raft log (an OP_ROLES entry, meta 'roles' in every store) and
 * set with PUT /v1/cluster/roles. Voters 0 (the default) means manual roles,
 * as before. With targets set, the leader checks once a second
 * (ROLES_TICK_MS): it tracks how long each member has been healthy and how
 * long unreachable (members_poll_view: Raft's contact for voters and
 * standbys, the status poll for spares), asks roles_next()
 * (roles_policy.h) for the next change and runs it with
 * ledger_repl_assign(), one at a time (none while another membership
 * change runs). Every change is logged with its reason and counted in
 * ledger_roles_changes_total{reason,role}; a failed one in
 * ledger_roles_change_failures_total, and the next change then waits
 * ROLES_RETRY_MS.
 *
 * While targets are set, a member added through the API (also by --join)
 * enters as a spare and the policy promotes it, and a manual role change
 * is refused (409 automatic_roles): set voters 0 first.
 *
 * Health as the leader sees it: voters and standbys healthy when reachable
 * with last contact under ROLES_MAX_CONTACT_MS and fewer than ROLES_MAX_LAG
 * entries behind; spares (not replicated to) when they answer the status
 * poll. Unreachable time counts from the last contact this leader had, or
 * from when it took the lead: a new leader starts its own clock, so a
 * member dead before an election is replaced dead_after_s after it.
 *
 * A new leader makes no change for its first two election timeouts (until
 * it has heard from every live member, Raft shows them unreachable).
 *
 * Health bookkeeping is roles_observe() (roles_policy.h), pure as well.
 *
 * Invariants: nothing runs while not leader; at most one change in flight;
 * roles_close returns at once and frees the state once the timer has
 * closed and the change in flight (if any) has answered. */
#ifndef LEDGER_NODE_ROLES_H
#define LEDGER_NODE_ROLES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "roles_policy.h"

struct ledger_node;

#define ROLES_TICK_MS 1000   /* How often the leader checks. */
#define ROLES_RETRY_MS 10000 /* Pause after a failed change. */

typedef struct roles_manager roles_manager;

/* NULL on out of memory (logged: roles then stay as they are). */
roles_manager *roles_start(struct ledger_node *n);
void roles_close(roles_manager *m);

/* The replicated targets, dead_after_s defaulted when unset. 0 or -1 (the
 * store failed; *out then all 0). */
int roles_targets(struct ledger_node *n, struct roles_targets *out);

/* The last change this node started while leading, or false. */
struct roles_record {
    struct roles_change c;
    uint64_t started_ms; /* Wall clock, ms since the epoch. */
    bool running;
    bool failed;
    char error[160]; /* When failed. */
};
bool roles_last(const roles_manager *m, struct roles_record *out);

/* Metrics: targets (gauges) and this node's changes (counters); malloc'ed
 * text or NULL. */
char *roles_metrics_render(struct ledger_node *n, size_t *len);

/* Handlers (api_roles.c): GET (local, after the request's consistency)
 * and PUT (leader) /v1/cluster/roles. */
struct api_req;
void api_roles_get(struct api_req *a);
void api_roles_put(struct api_req *a);

#endif /* LEDGER_NODE_ROLES_H */
