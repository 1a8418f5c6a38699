/* The catch-up source node/ supplies to replication (replication/repl.h,
 * struct ledger_repl_catchup_source): events a snapshot lacks, pulled
 * from a peer's GET /v1/internal/events. */
#ifndef LEDGER_NODE_CATCHUP_H
#define LEDGER_NODE_CATCHUP_H

#include "replication/repl.h"

struct ledger_node;

/* Fill `out` with the source of node `n` (n must outlive the layer). */
void node_catchup_source(struct ledger_node *n,
                         struct ledger_repl_catchup_source *out);

#endif /* LEDGER_NODE_CATCHUP_H */
