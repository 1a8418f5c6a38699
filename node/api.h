/* HTTP API of a node (../shared/CONTRACT.md, docs/api.md): the request
 * context every part of the API shares, and the functions they call.
 *
 * Files, in the order a request meets them:
 *   routes.c       the route table; api_handle() matches, authenticates
 *                  (auth.c) and calls the route's handler
 *   write.c        the leader-bound life of a request: run here on the
 *                  leader, forward, park while there is no leader, retry,
 *                  or answer outcome_unknown (its state table is there)
 *   consistency.c  read consistency (barrier / read index)
 *   wait.c         the list of requests waiting on a condition with a
 *                  deadline
 *   peer.c         calls to other members' APIs and the leader's address
 *   reply.c        every answer, and the error table (errors.h)
 *   api_events.c, api_cluster.c, api_members.c, api_console.c
 *                  the handlers
 *
 * Invariants:
 * - Every request gets exactly one response, through api_reply*(), which
 *   also records metrics and frees the context.
 * - Bad input is refused before anything is proposed or changed.
 * - Writes are proposed only on the leader (write.c).
 * - A request waiting for something (a leader, the applied index, a
 *   forwarded answer) sits in node->waiters with a deadline; it is
 *   re-checked whenever the applied index moves and every
 *   API_SWEEP_MS, and answered at the deadline at the latest.
 */
#ifndef LEDGER_API_H
#define LEDGER_API_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "codec.h"
#include "errors.h"
#include "http/client.h"
#include "node.h"

#define API_SWEEP_MS 20 /* How often waiting requests are re-checked. */

enum { CONSISTENCY_STRONG = 0, CONSISTENCY_LEADER, CONSISTENCY_ANY };

struct api_req;
struct api_route;
typedef void (*api_step_fn)(struct api_req *a);
/* A waiting request's condition: true when it holds. */
typedef bool (*api_ready_fn)(struct api_req *a);

/* States of a request's leader-bound life (write.c has the table). */
enum api_write_state {
    WRITE_NONE = 0,  /* Not leader-bound (a local read, say). */
    WRITE_RUNNING,   /* Running here, on the leader. */
    WRITE_PARKED,    /* Waiting for a leader to be known. */
    WRITE_FORWARDED, /* Sent to the leader; its answer is awaited. */
};

/* The leader-bound part of a request (write.c). */
struct api_write {
    enum api_write_state state;
    api_step_fn run;    /* What the leader runs. */
    bool retry_safe;    /* Sending it again cannot apply it twice (every
                           event has an id; a checkpoint; a read). */
    bool safety_known;  /* retry_safe is final (the route's retry_safe
                           function ran, or the handler decided). */
    bool maybe_applied; /* An earlier attempt may have been applied: a
                           later 503/429 answers outcome_unknown. */
    bool handed_off;    /* We handed leadership over for it: it may be
                           forwarded although it was forwarded to us. */
    unsigned tries;     /* Attempts (runs and forwards). */
    uint64_t avoid_id;  /* Leader not to forward to again (refused the
                           connection or never answered); 0: none. */
    uint64_t leader_id; /* WRITE_FORWARDED: the leader and term it was */
    uint64_t term;      /* sent to. */
    http_call *call;    /* WRITE_FORWARDED: the call in flight. */
};

struct api_req {
    struct ledger_node *n;
    http_request *http;
    const struct api_route *rt; /* Matched route, or NULL. */
    const char *route;          /* Route name, for metrics and logs. */
    const char *method;
    char rid[48];
    uint64_t start_ns;
    enum codec_format out_fmt;
    bool forwarded; /* Came from another node. */
    unsigned hops;  /* X-Ledger-Forwarded: how many nodes passed it on. */
    unsigned retry_after_s; /* Retry-After of a 429/503 answer; 0: 1 s. */
    struct api_write w;

    /* Path and query parameters. */
    char stream[LEDGER_STREAM_MAX + 1];
    char name[LEDGER_STREAM_MAX + 1];
    uint64_t id; /* {id} in the path (members). */
    uint64_t from;
    uint64_t limit;
    uint64_t wait_ms;
    int consistency;
    size_t n_events;

    /* Waiting (consistency.c). */
    api_ready_fn ready;    /* Condition; true when it holds. */
    api_step_fn then;      /* Run when ready or at the deadline. */
    api_step_fn after;     /* Read to run once consistency is established. */
    api_step_fn caught_up; /* api_catch_up's continuation. */
    bool timed_out;
    bool through_shutdown; /* The next wait goes on while the node shuts
                              down (set just before api_wait; cleared when
                              that wait ends). */
    uint64_t wait_index;
    uint64_t wait_timeout;
    uint64_t deadline; /* uv_now ms */
    struct api_req *next;
    struct api_req *prev;
    bool waiting;
};

#define REPL__MEMBERS_MAX 64 /* Members shown by /v1/cluster. */
#define MEMBERSHIP_MAX_WAIT_MS                                                 \
    110000u /* Catch-up deadline, at most (below                               \
              the membership forward timeout). */

/* ---- Replies (reply.c); each frees `a` ----------------------------------- */

void api_reply_raw(struct api_req *a, int status, const char *ctype,
                   const char *body, size_t len, const char *extra_headers);
/* A streamed answer (a backup): records the metrics and log line, starts
 * the response (http_response_start, with X-Request-Id) and frees `a`.
 * Returns the request, which the caller writes and must finish
 * (http_response_write/finish, http/server.h) whatever *rv says (0, or
 * negative: the client is gone, finish at once). */
http_request *api_reply_stream(struct api_req *a, int status, const char *ctype,
                               uint64_t len, const char *extra_headers,
                               int *rv);
void api_reply_json(struct api_req *a, int status, json_t *body,
                    const char *extra_headers);
/* "2026-11-25T23:23:54.754Z" for a unix time in ms, as a JSON string:
 * the form of every time in an answer's body. */
json_t *api_json_time(int64_t unix_ms);
void api_reply_error(struct api_req *a, enum api_error e, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The same, with extra fields inside "error" (takes the reference). */
void api_reply_error_obj(struct api_req *a, enum api_error e, json_t *extra,
                         const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* 500 store_error with the store's message. */
void api_reply_store_error(struct api_req *a);
/* 405 with an Allow header. */
void api_method_not_allowed(struct api_req *a, const char *allow);

/* ---- Input helpers (reply.c) --------------------------------------------- */

/* Decode the request body per Content-Type; on failure replies 400 and
 * returns NULL. */
json_t *api_body(struct api_req *a);
/* Query parameter as a non-negative integer; replies 400 and returns -1 on
 * a bad value; `def` when absent, clipped to `max`. */
int api_query_u64(struct api_req *a, const char *name, uint64_t def,
                  uint64_t max, uint64_t *out);

/* ---- The leader-bound life of a request (write.c) ------------------------ */

/* Run `run` on the leader: here when this node leads, else forwarded to
 * the leader (or parked until one is known). retry_safe: sending the
 * request again cannot apply it twice (when false, the route's retry_safe
 * function decides, only if it comes to that). */
void api_write(struct api_req *a, api_step_fn run, bool retry_safe);
/* The attempt running here could not finish: leadership moved away.
 * maybe_applied: it may still be applied (raft's LEADERSHIPLOST). Routes
 * the request again, or answers. */
void api_write_lost(struct api_req *a, bool maybe_applied);

/* ---- Consistency (consistency.c) and waiting (wait.c) -------------------- */

/* Reads: establish the request's consistency, then run `fn`. */
void api_read(struct api_req *a, api_step_fn fn);
/* Read index from the leader (follower) or a barrier (leader), then wait
 * until applied; `then` runs with a->timed_out set on failure. */
void api_catch_up(struct api_req *a, uint64_t timeout_ms, api_step_fn then);
/* Park `a` until ready(a) or the deadline; then run `then`. */
void api_wait(struct api_req *a, uint64_t timeout_ms, api_ready_fn ready,
              api_step_fn then);
/* Take `a` off the waiting list (its condition no longer matters). */
void api_unwait(struct api_req *a);

/* ---- Peers (peer.c) ------------------------------------------------------ */

/* The leader as this node sees it now (struct api_leader, node.h),
 * refreshed from replication; its API address is read from the store only
 * when the leader changes. */
const struct api_leader *api_leader(struct ledger_node *n);
/* Room for the headers of a node-to-node call: two bearer tokens of
 * TOKEN_SECRET_MAX bytes (the client's and the node's) and a few more. */
#define API_PEER_HEADERS_MAX 4096
/* ledger_repl_on_leader callback (node.c registers it): refreshes the
 * cache and re-checks every waiting request at once. */
void api_on_leader(void *arg, const struct ledger_repl_leader *now);
/* Headers for a node-to-node call made on behalf of `a`: marked as
 * forwarded, with its request id, the client's Authorization (else the
 * node's own token, if it has one) and the node's proof (auth.h). */
void api_peer_headers(struct api_req *a, char *buf, size_t len);
/* "Authorization: Bearer <node credential>\r\n" plus, with peer_auth, the
 * X-Ledger-Node-Auth line (auth.h) with it: appended at buf + *off (*off
 * advanced); nothing without a token file. */
void api_peer_auth_headers(struct ledger_node *n, bool authorization,
                           bool peer_auth, char *buf, size_t len, size_t *off);
/* A request to a peer's API over the node's client (keep-alive
 * connections); connecting takes at most the election timeout. As
 * http_client_request; `call` may be NULL. */
int api_peer_request(struct ledger_node *n, const char *addr,
                     const char *method, const char *path, const char *headers,
                     const char *body, size_t len, unsigned timeout_ms,
                     http_client_cb cb, void *arg);
int api_peer_call(struct ledger_node *n, const struct http_call_spec *spec,
                  http_client_cb cb, void *arg, http_call **call);

/* ---- Handlers ------------------------------------------------------------ */

/* api_events.c */
void api_append(struct api_req *a);
/* True when every event of the append body carries an id. */
bool api_append_retry_safe(struct api_req *a);
void api_read_events(struct api_req *a);
void api_stream_head(struct api_req *a);
void api_list_streams(struct api_req *a);
void api_put_checkpoint(struct api_req *a);
void api_get_checkpoint(struct api_req *a);

/* api_members.c */
void api_member_add(struct api_req *a);
void api_member_remove(struct api_req *a);
void api_member_role(struct api_req *a);
void api_leader_transfer(struct api_req *a);

/* backup.c */
void api_backup(struct api_req *a);

/* api_cluster.c */
void api_cluster(struct api_req *a);
void api_health(struct api_req *a);
void api_metrics(struct api_req *a);
void api_verify(struct api_req *a);
void api_internal_events(struct api_req *a);
void api_internal_hash(struct api_req *a);
void api_internal_read_index(struct api_req *a);
void api_internal_status(struct api_req *a);

/* api_console.c */
void api_ui(struct api_req *a);
void api_cluster_history(struct api_req *a);

/* Page budget of the event reads answered on the loop (stream reads,
 * /v1/internal/events), so that no read holds the loop much past 20 ms
 * whatever its limit (issue 11: 10,000 events of 1 KiB held it 0.4 s). A
 * page ends after the event that brings its cost to API_PAGE_BUDGET: each
 * event costs its data, id and type bytes plus API_PAGE_EVENT_COST for the
 * rest (hashes, numbers, building the object: measured about 9 us per
 * event against 31 ns per data byte). A page always holds at least one
 * event; readers continue from the last seq or position + 1, as at any
 * page end. A page callback returns API_PAGE_FULL to end the page; it is
 * not an error. */
#define API_PAGE_BUDGET (512u * 1024u)
#define API_PAGE_EVENT_COST 256u
#define API_PAGE_FULL (-100)

struct api_page {
    size_t cost;
};

/* Count ev against the page; API_PAGE_FULL once the budget is spent, else
 * 0. Call after adding ev to the page. */
int api_page_add(struct api_page *p, const struct ledger_event *ev);

#endif /* LEDGER_API_H */
