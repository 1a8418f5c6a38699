/* Who a request is and what it may do: the bearer token looked up in the
 * node's token set (--token-file, node/tokens.h), its role checked against
 * the route's access level, and its rate limit charged.
 *
 * Rules (docs/security.md, "Tokens and roles"):
 * - A route needs ACCESS_READ, ACCESS_WRITE or ACCESS_ADMIN (routes.c); a
 *   token's role must be at least that (node counts as admin), else 403.
 * - Each token with rate=N has a bucket of `burst` requests refilled at N
 *   per second; a request finding it empty gets 429 with Retry-After (the
 *   seconds until one request is available again). Buckets live in memory
 *   and survive a reload for tokens whose NAME stays.
 * - A request is charged once, on the node the client called. A request
 *   one node passes to another (forwarded write, read index, ...) carries
 *   the client's Authorization, so the receiving node applies the client's
 *   role, and `X-Ledger-Node-Auth: Bearer <node credential>`; when that
 *   names a node credential of the receiver's file the request is not
 *   charged again. Without it (or with a wrong one) it is charged: never
 *   less than once.
 * - Refusals are counted per token NAME (never the secret) in
 *   ledger_requests_rejected_total{token,reason} (metrics.c).
 * - SIGHUP: auth_reload() reads the file again; a file that does not parse
 *   is refused with its line number in the log and the old set kept.
 */
#ifndef LEDGER_NODE_AUTH_H
#define LEDGER_NODE_AUTH_H

#include <stdbool.h>

#include "routes.h"
#include "tokens.h"

#define AUTH_PEER_HEADER "X-Ledger-Node-Auth" /* Node-to-node proof. */

enum auth_result {
    AUTH_OK = 0,
    AUTH_UNAUTHORIZED, /* No token, or not one of ours: 401. */
    AUTH_FORBIDDEN,    /* A valid token whose role is below `need`: 403. */
    AUTH_RATE_LIMITED, /* Its bucket is empty: 429. */
};

/* Who a request turned out to be. */
struct auth_who {
    char name[TOKEN_NAME_MAX + 1]; /* Token NAME; "" without auth. */
    enum token_role role;          /* 0 without auth. */
    unsigned retry_after_s;        /* AUTH_RATE_LIMITED: seconds to wait. */
};

/* Check a request: `authorization` and `peer_auth` are the values of its
 * Authorization and X-Ledger-Node-Auth headers (either may be NULL).
 * ACCESS_OPEN always passes, uncharged; without a token file every request
 * passes. Fills *who. */
enum auth_result auth_check(struct ledger_node *n, const char *authorization,
                            const char *peer_auth, enum route_access need,
                            struct auth_who *who);

/* True when `peer_auth` (an X-Ledger-Node-Auth value) names a node
 * credential of this node's token file, or when there is no token file
 * (every request is anyone's then). What a peer says about the cluster
 * (the leader a spare should forward to) is taken only from a node. */
bool auth_is_node(struct ledger_node *n, const char *peer_auth);

/* At start: log what was loaded, and warn when the token file can be read
 * by other users (its mode has group or other bits). */
void auth_start(struct ledger_node *n);

/* SIGHUP: read --token-file again. On success the new set replaces the
 * old one (buckets carried over by NAME) and n->cfg->token becomes the new
 * node credential; on failure the old set stays. Logs either way. Returns
 * 0 or -1. */
int auth_reload(struct ledger_node *n);

#endif /* LEDGER_NODE_AUTH_H */
