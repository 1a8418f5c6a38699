/* The API's route table (routes.c): every endpoint with its method, path
 * pattern, handler, who may call it and how it runs. The table is the one
 * place that says which requests are writes, which must reach the leader
 * and which are open without a token. */
#ifndef LEDGER_NODE_ROUTES_H
#define LEDGER_NODE_ROUTES_H

#include "api.h"

/* Who may call a route (auth.c decides who a token is). */
enum route_access {
    ACCESS_OPEN = 0, /* No token needed (/health, /metrics, /ui). */
    ACCESS_READ,     /* Reads, stream heads, checkpoints GET, cluster view. */
    ACCESS_WRITE,    /* + appends and checkpoint PUT. */
    ACCESS_ADMIN,    /* + membership, leadership, backup. */
};

/* Route flags. */
/* Runs on the leader: api_write() (write.c). */
#define ROUTE_LEADER 0x1
/* Sending it twice cannot apply it twice. */
#define ROUTE_SAFE 0x2
/* Taken while shutting down (handed to the new leader), so a client never
 * sees it refused. */
#define ROUTE_HANDOVER 0x4
/* May take up to 120 s on the leader (membership catch-up): longer
 * forward wait. */
#define ROUTE_LONG 0x8
/* May itself move leadership (a transfer; a change that takes the leader
 * out of the voters): a leader change while it is forwarded is its effect,
 * not a reason to give up on the answer. */
#define ROUTE_MOVES_LEADER 0x10

struct api_route {
    const char *method;
    const char *pattern; /* "/v1/streams/{stream}/events": {stream} and
                            {name} are validated names, {id} a member id;
                            any other {x} matches one segment as it is. */
    const char *name;    /* Label in metrics and logs. */
    api_step_fn handler; /* For ROUTE_LEADER: what the leader runs. */
    enum route_access access;
    unsigned flags;
    /* ROUTE_LEADER without ROUTE_SAFE: decides from the request whether a
     * second delivery is harmless (an append whose events all have ids);
     * NULL: never. */
    bool (*retry_safe)(struct api_req *a);
};

/* Name of an access level ("read", ...). */
const char *route_access_name(enum route_access access);

#endif /* LEDGER_NODE_ROUTES_H */
