/* HTTP API of a node (../shared/CONTRACT.md, docs/api.md): the request
 * context shared by the routing core (api.c) and the handlers
 * (api_events.c, api_cluster.c).
 *
 * Invariants:
 * - Every request gets exactly one response, through api_reply*(), which
 *   also records metrics and frees the context.
 * - Bad input is refused before anything is proposed or changed.
 * - Writes are proposed only on the leader; a follower forwards them (once:
 *   a forwarded request that does not reach a leader gets 503).
 * - A request waiting on the applied index (strong read on a follower,
 *   long poll, caught-up health) sits in node->waiters with a deadline; it
 *   is re-checked whenever the applied index moves and answered at the
 *   deadline at the latest.
 */
#ifndef LEDGER_API_H
#define LEDGER_API_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "codec.h"
#include "http/client.h"
#include "node.h"

enum { CONSISTENCY_STRONG = 0, CONSISTENCY_LEADER, CONSISTENCY_ANY };

struct api_req;
typedef void (*api_step_fn)(struct api_req *a);
/* Resume after waiting; timed_out true when the deadline passed. */
typedef bool (*api_ready_fn)(struct api_req *a);

struct api_req {
    struct ledger_node *n;
    http_request *http;
    const char *route; /* literal, for metrics */
    const char *method;
    char rid[48];
    uint64_t start_ns;
    enum codec_format out_fmt;
    bool forwarded;        /* Came from another node. */
    bool handed_off;       /* We handed leadership over for this request and
                              may forward it although it was forwarded. */
    bool idempotent;       /* Every event carries an id: a retry is safe. */
    bool maybe_appended;   /* Retrying after an outcome_unknown: a 503 or
                              429 now answers outcome_unknown too. */
    bool through_shutdown; /* Keeps waiting while the node shuts down
                              (for the hand-over). */
    unsigned hops;        /* X-Ledger-Forwarded: how many nodes passed it on. */
    unsigned tries;       /* Dispatches of a write (re-run or re-forward). */
    api_step_fn write_fn; /* The write to run if we become its leader. */
    char refused[64];     /* Leader API that refused a connection: not again
                             until the leader changes. */

    char stream[LEDGER_STREAM_MAX + 1];
    char name[LEDGER_STREAM_MAX + 1];
    uint64_t from;
    uint64_t limit;
    uint64_t wait_ms;
    int consistency;
    size_t n_events;

    /* Waiting. */
    api_ready_fn ready; /* Condition; true when it holds. */
    api_step_fn then;   /* Run when ready or at the deadline. */
    api_step_fn after;  /* Read to run once consistency is established. */
    bool timed_out;
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

/* Replies (each frees `a`). */
void api_reply_raw(struct api_req *a, int status, const char *ctype,
                   const char *body, size_t len);
void api_reply_json(struct api_req *a, int status, json_t *body,
                    const char *extra_headers);
void api_reply_error(struct api_req *a, int status, const char *code,
                     const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* 500 store_error with the store's message. */
void api_reply_store_error(struct api_req *a);
/* 409-style error carrying extra fields inside "error". */
void api_reply_error_obj(struct api_req *a, int status, const char *code,
                         json_t *extra, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* 405 with an Allow header. */
void api_method_not_allowed(struct api_req *a, const char *allow);

/* Decode the request body per Content-Type; on failure replies 400 and
 * returns NULL. */
json_t *api_body(struct api_req *a);

/* Query parameter as a non-negative integer; replies 400 and returns -1 on
 * a bad value; `def` when absent. */
int api_query_u64(struct api_req *a, const char *name, uint64_t def,
                  uint64_t max, uint64_t *out);

/* Headers for a node-to-node call made on behalf of `a`: marked as
 * forwarded, with its request id and the client's Authorization (else the
 * node's own token, if it has one). */
void api_peer_headers(struct api_req *a, char *buf, size_t len);

/* A request to a peer's API over the node's keep-alive pool (one-shot
 * connections once shutdown began); as http_client_request. */
int api_peer_request(struct ledger_node *n, const char *addr,
                     const char *method, const char *path, const char *headers,
                     const char *body, size_t len, unsigned timeout_ms,
                     http_client_cb cb, void *arg);
/* Forward the request to the leader and relay its answer. */
void api_forward(struct api_req *a);
/* Writes: run `fn` on the leader, else forward (or 503). */
void api_write(struct api_req *a, api_step_fn fn);
/* Reads: establish the request's consistency, then run `fn`. */
void api_read(struct api_req *a, api_step_fn fn);

/* Park `a` until ready(a) or the deadline; then run `then`. */
void api_wait(struct api_req *a, uint64_t timeout_ms, api_ready_fn ready,
              api_step_fn then);

/* Handlers (api_events.c). */
void api_append(struct api_req *a);
void api_read_events(struct api_req *a);
void api_stream_head(struct api_req *a);
void api_list_streams(struct api_req *a);
void api_put_checkpoint(struct api_req *a);
void api_get_checkpoint(struct api_req *a);

/* Membership routes under /v1/cluster/ (api_members.c). */
void api_members(struct api_req *a, char **segs, size_t ns);

/* Handlers (api_cluster.c). */
void api_cluster(struct api_req *a);
void api_health(struct api_req *a);
void api_metrics(struct api_req *a);
void api_verify(struct api_req *a);
void api_internal_events(struct api_req *a);
void api_internal_hash(struct api_req *a);
void api_internal_read_index(struct api_req *a);
void api_internal_status(struct api_req *a);

/* Read index from the leader (follower) or a barrier (leader), then wait
 * until applied; `then` runs with a->timed_out set on failure. */
void api_catch_up(struct api_req *a, uint64_t timeout_ms, api_step_fn then);

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
