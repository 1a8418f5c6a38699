/* Zone labels (ledgerd --zone Z): how a node's label reaches every replica
 * (node/zone.c).
 *
 * A member's zone lives in the replicated members table (store schema 2),
 * set by an OP_MEMBER_ZONE entry, so every node shows it in /v1/cluster,
 * a new leader knows the zones of members it never heard from, and
 * automatic roles can spread voters over zones.
 *
 * The node's own flag is the source of truth: once a second, a node that
 * is a member compares its --zone (none: "") with the replicated label and,
 * when they differ, asks the leader to set it (PUT
 * /v1/cluster/members/{id}/zone, with the node's token). So a first start,
 * a restart with another --zone and a restart without one all converge
 * within a few seconds of a leader being known.
 *
 * Invariants: at most one request in flight; after a failure the next try
 * waits ZONE_RETRY_MS; nothing is sent while joining or shutting down;
 * zone_close returns at once and frees the state once the timer has closed
 * and the request in flight (if any) has answered. */
#ifndef LEDGER_NODE_ZONE_H
#define LEDGER_NODE_ZONE_H

struct ledger_node;
struct api_req;

#define ZONE_CHECK_MS 1000 /* How often the label is compared. */
#define ZONE_RETRY_MS 5000 /* Pause after a failed request. */

typedef struct zone_announcer zone_announcer;

/* NULL on out of memory (logged: the label then is not replicated). */
zone_announcer *zone_start(struct ledger_node *n);
void zone_close(zone_announcer *z);

/* PUT /v1/cluster/members/{id}/zone {"zone":"Z"|null} (on the leader):
 * 200 {"id","zone"} once applied, at once when it already has that label;
 * 400 bad zone, 404 no such member. */
void api_member_zone(struct api_req *a);

#endif /* LEDGER_NODE_ZONE_H */
