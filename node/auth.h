/* Who a request is: the bearer token checked against the node's token
 * (--token-file), in constant time. */
#ifndef LEDGER_NODE_AUTH_H
#define LEDGER_NODE_AUTH_H

#include "routes.h"

enum auth_result {
    AUTH_OK = 0,
    AUTH_UNAUTHORIZED, /* No token, or not one of ours: 401. */
    AUTH_FORBIDDEN,    /* A valid token whose role is below `need`: 403. */
};

/* Check the Authorization header value (may be NULL) for access `need`.
 * ACCESS_OPEN always passes; without a token file every request passes. */
enum auth_result auth_check(struct ledger_node *n, const char *authorization,
                            enum route_access need);

#endif /* LEDGER_NODE_AUTH_H */
