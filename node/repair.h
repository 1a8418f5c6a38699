/* Replicas that repair themselves (node/repair.c; docs/architecture.md,
 * "Corrupt stores and Raft logs").
 *
 * A node checks its store and its Raft log at every start, its store in the
 * background (--verify-interval-s) and on GET /v1/verify, and watches for
 * SQLite reporting the file corrupt. What it finds corrupt it moves aside,
 * to DIR/corrupt-TIMESTAMP/, and rebuilds from the others:
 * - a corrupt store: its Raft log is intact, so the node restarts with an
 *   empty store and Raft's snapshot catch-up and replay fill it (marker
 *   DIR/store-rebuild until it has caught up);
 * - a damaged Raft log: the node leaves the voters before Raft runs again
 *   (its vote must not count while it lacks entries it acknowledged),
 *   starts with an empty log (term and vote kept), catches up as a
 *   standby, and becomes a voter again (marker DIR/raft-rebuild).
 * Until then /health answers 503 with reason store_corrupt, reads are
 * refused (503 store_corrupt), and ledger_store_corrupt is 1.
 */
#ifndef LEDGER_REPAIR_H
#define LEDGER_REPAIR_H

#include <stdbool.h>
#include <stddef.h>

struct ledger_node;
struct repair;

#define NODE_EXIT_REPAIR                                                       \
    76                          /* node_run: store corrupt; move it aside and  \
                                   run ledgerd again (main.c). */
#define REPAIR_TAIL_EVENTS 1000 /* Events whose chain a start checks. */
#define REPAIR_TICK_MS 500      /* Watch: corruption seen, rebuild done. */

/* Before Raft starts: check the store (quick_check, the chain of the last
 * REPAIR_TAIL_EVENTS events) and the Raft log (replication/disk.h); move
 * what is corrupt aside. May replace n->store with a new, empty store.
 * 0, or -1 with a one-line reason in err (the node cannot start). */
int repair_at_start(struct ledger_node *n, char *err, size_t errlen);

/* A damaged Raft log was moved aside (this start or an earlier one):
 * Raft must not run with this node's vote counted. Leaves the voters
 * through a peer's API (serving /health meanwhile), on n's loop, before
 * Raft starts. 0 when done (start Raft: no --bootstrap), 1 when told to
 * stop meanwhile, -1 with err when no peer is known. */
int repair_leave_voters(struct ledger_node *n, char *err, size_t errlen);
/* True while the node rebuilds without Raft state of its own (start Raft
 * without --bootstrap). */
bool repair_raft_rebuild(const struct ledger_node *n);

/* Once Raft and the API run: background checks and the watch. */
void repair_start(struct ledger_node *n);
void repair_close(struct ledger_node *n);

/* The store was found corrupt while running: stop serving from it, hand
 * leadership over, and restart in place with it moved aside. */
void repair_trigger(struct ledger_node *n, const char *why);

/* The join flow (node.c) made this node a voter again. */
void repair_rejoined(struct ledger_node *n);

/* Why this node must not serve from its store (corrupt, or rebuilding),
 * or NULL. */
const char *repair_blocked(const struct ledger_node *n);

/* Metrics: ledger_store_corrupt and ledger_store_repairs_total, appended
 * to buf (malloc'ed, grown); its new length, or 0 on out of memory. */
size_t repair_metrics(const struct ledger_node *n, char **buf, size_t len);

/* GET /v1/verify found the store corrupt (run on the threadpool, answered
 * on the loop): treat it as the background check would. */
void repair_verify_failed(struct ledger_node *n, const char *why);

/* Move the store aside and mark it for a rebuild: main() after node_run
 * returned NODE_EXIT_REPAIR (why NULL: the reason repair_trigger gave),
 * and node_run when SQLite cannot even open it. 0, or -1 with err. */
int repair_quarantine_store(const char *data_dir, const char *why, char *err,
                            size_t errlen);

#endif /* LEDGER_REPAIR_H */
