/* One ledgerd node: store + replication + HTTP API on one libuv loop.
 *
 * Lifecycle: node_run() opens the store, starts Raft and the HTTP server and
 * runs the loop until SIGTERM/SIGINT. Shutdown is ordered: a leader first
 * hands leadership to the most up-to-date voter (bounded by the election
 * timeout), then waiting readers are answered, the HTTP server drains the
 * requests in flight, Raft closes, and the store closes last. */
#ifndef LEDGER_NODE_H
#define LEDGER_NODE_H

#include <stdbool.h>
#include <uv.h>

#include "config.h"
#include "http/server.h"
#include "replication/repl.h"
#include "store/store.h"

#include "http/client.h"

struct api_req;

/* The leader as this node sees it (peer.c, api_leader()). */
struct api_leader {
    uint64_t id; /* 0: none known. */
    uint64_t term;
    bool here;               /* This node leads and takes writes now. */
    bool hinted;             /* Known from the leader's status poll only
                                (Raft knows none: a spare; peer.c): good
                                to forward writes to, not for strong
                                reads, which this node could not apply. */
    char api[REPL_ADDR_MAX]; /* Its API address; empty while unknown. */
};

struct ledger_node {
    uv_loop_t *loop;
    struct ledger_config *cfg;
    ledger_store *store;
    ledger_repl *repl;
    http_server *http;
    uv_signal_t sigterm;
    uv_signal_t sigint;
    uv_signal_t sighup;        /* Reloads tokens (and certificates). */
    http_tls *tls;             /* --tls-*: the node's certificates (raft
                                  transport, HTTPS), NULL without. */
    struct raft_tls *raft_tls; /* Raft's mTLS transport; freed once Raft
                                  has closed. */
    uv_timer_t sweep;          /* Deadlines of waiting requests. */
    uv_timer_t shutdown_timer; /* Bounds the leadership hand-over. */
    uv_timer_t join_timer;     /* --join: retries the add request. */
    bool joining;              /* --join: not yet a member. */
    bool join_promote;         /* --join: member already; ask for voter. */
    const char *join_addr;     /* Whom the join flow asks (--join, or a
                                  peer after a rebuild: repair.c). */
    struct repair *repair;     /* Corrupt store or log (repair.h). */
    struct api_req *waiters;   /* Requests waiting on the applied index. */
    struct members_poll
        *applied_poll; /* Leader: polls members' status (members_poll.h). */
    struct history *history;       /* Leader: per-second samples. */
    struct loopwatch *loopwatch;   /* Logs and counts event-loop stalls. */
    struct restart_watch *restart; /* Restarts after a storage error. */
    struct zone_announcer *zone;   /* Replicates our --zone (zone.h). */
    struct roles_manager *roles;   /* Automatic roles (roles.h). */
    http_client *peers;            /* Calls to peers' APIs (peer.c); closed
                                      once Raft has closed. */
    struct api_leader leader;      /* Cache of api_leader(). */
    struct {                       /* The leader as its status poll last */
        uint64_t id;               /* named itself (X-Ledger-Leader): a */
        uint64_t term;             /* spare gets no Raft messages, so this */
        uint64_t at;               /* is how it knows whom to forward to. */
        char api[REPL_ADDR_MAX];   /* at: uv_now ms; 0: never. */
    } leader_hint;
    uint64_t next_rid;
    bool shutting_down;
    int exit_code;
};

/* Run a node until it is told to stop. Returns the process exit code, or
 * NODE_EXIT_RESTART (node/restart.h): run ledgerd again. */
int node_run(struct ledger_config *cfg);

/* Shut down cleanly (as on SIGTERM) and make node_run return exit_code. */
void node_stop(struct ledger_node *n, int exit_code);

/* Ask the cluster through the member API at `via` (borrowed: it must
 * outlive the join) to make this node a voter: added first unless
 * `member` (it is one already, as a standby or spare). /health answers
 * 503 until it is done (node.c, the --join flow). */
void node_join(struct ledger_node *n, const char *via, bool member);

/* routes.c, wait.c */
void api_handle(void *arg, http_request *req);
void api_on_applied(void *arg);
void api_sweep(struct ledger_node *n, bool flush_all);

#endif /* LEDGER_NODE_H */
