/* Read consistency.
 *
 * Strong reads (docs/architecture.md, "Reads and consistency"): on the
 * leader a barrier; on a follower the leader's read index
 * (GET /v1/internal/read_index), then a wait until applied. The whole is
 * bounded by STRONG_WAIT_MS. A read index asked of a leader that is then
 * replaced, or that does not answer within the forward bound, is asked
 * again of the new leader; a barrier that fails because leadership moved
 * is retried through the new leader if one is known, else the read is
 * answered 503 at once.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "repair.h"
#include "log.h"

#define STRONG_WAIT_MS 5000 /* A strong read's whole wait. */
#define STRONG_MAX_ASKS 4   /* Read-index questions per strong read. */

/* ---- Strong reads ----------------------------------------------------------
 */

static uint64_t strongLeft(struct api_req *a)
{
    uint64_t now = uv_now(a->n->loop);
    return a->wait_timeout > now ? a->wait_timeout - now : 0;
}

static bool appliedReached(struct api_req *a)
{
    struct ledger_repl_status st;
    ledger_repl_status(a->n->repl, &st);
    return st.applied_index >= a->wait_index;
}

static void askLeader(struct api_req *a);

static void failStrong(struct api_req *a)
{
    a->timed_out = true;
    a->caught_up(a);
}

static void barrierDone(void *arg, int status, uint64_t index)
{
    struct api_req *a = arg;
    const struct api_leader *l;

    if (status == 0) {
        a->timed_out = false;
        a->wait_index = index;
        a->caught_up(a);
        return;
    }
    /* Leadership moved under the barrier: ask the new leader, if any. */
    l = api_leader(a->n);
    if (strongLeft(a) > 0 && l->id != 0 && !l->here && l->api[0] != '\0' &&
        ledger_repl_failed(a->n->repl) == NULL) {
        askLeader(a);
        return;
    }
    failStrong(a);
}

static void readIndexCb(void *arg, int status,
                        const struct http_client_response *resp)
{
    struct api_req *a = arg;
    json_t *root = NULL;
    json_t *idx;

    a->w.call = NULL;
    api_unwait(a);
    if (status == 0 && resp->status == 200) {
        root = json_loadb(resp->body, resp->body_len, 0, NULL);
    }
    idx = json_object_get(root, "index");
    if (!json_is_integer(idx)) {
        json_decref(root);
        failStrong(a);
        return;
    }
    a->wait_index = (uint64_t)json_integer_value(idx);
    json_decref(root);
    api_wait(a, strongLeft(a), appliedReached, a->caught_up);
}

static bool askedLeaderMoved(struct api_req *a)
{
    const struct api_leader *l = api_leader(a->n);
    return l->id != a->w.leader_id || l->term != a->w.term;
}

/* The leader we asked was replaced, or did not answer in time: ask again
 * (reads are safe to repeat). */
static void askAgain(struct api_req *a)
{
    http_call_cancel(a->w.call);
    a->w.call = NULL;
    if (strongLeft(a) == 0) {
        failStrong(a);
        return;
    }
    askLeader(a);
}

static void askLeader(struct api_req *a)
{
    const struct api_leader *l = api_leader(a->n);
    char headers[API_PEER_HEADERS_MAX];
    unsigned bound = 2 * a->n->cfg->election_ms;
    struct http_call_spec spec;
    int rv;

    if (++a->w.tries > STRONG_MAX_ASKS || l->id == 0 || l->hinted) {
        failStrong(a);
        return;
    }
    if (l->here) {
        rv = ledger_repl_barrier(a->n->repl, barrierDone, a);
        if (rv != 0) {
            failStrong(a);
        }
        return;
    }
    if (l->api[0] == '\0') {
        failStrong(a);
        return;
    }
    bound = bound < 2000 ? 2000 : bound;
    if (bound > strongLeft(a)) {
        bound = (unsigned)strongLeft(a);
    }
    api_peer_headers(a, headers, sizeof headers);
    memset(&spec, 0, sizeof spec);
    spec.addr = l->api;
    spec.method = "GET";
    spec.path = "/v1/internal/read_index";
    spec.headers = headers;
    spec.timeout_ms = bound + 1000; /* the sweep acts first */
    a->w.leader_id = l->id;
    a->w.term = l->term;
    rv = api_peer_call(a->n, &spec, readIndexCb, a, &a->w.call);
    if (rv != 0) {
        a->w.call = NULL;
        failStrong(a);
        return;
    }
    a->through_shutdown = true;
    api_wait(a, bound, askedLeaderMoved, askAgain);
}

void api_catch_up(struct api_req *a, uint64_t timeout_ms, api_step_fn then)
{
    struct ledger_repl_status st;

    a->caught_up = then;
    a->timed_out = false;
    a->wait_timeout = uv_now(a->n->loop) + timeout_ms;
    a->w.tries = 0;
    ledger_repl_status(a->n->repl, &st);
    if (st.is_leader) {
        /* A leader handing over still proves its reads with a barrier. */
        a->w.tries++;
        if (ledger_repl_barrier(a->n->repl, barrierDone, a) != 0) {
            failStrong(a);
        }
        return;
    }
    askLeader(a);
}

static void strongDone(struct api_req *a)
{
    const char *why = ledger_repl_failed(a->n->repl);

    if (a->timed_out && why != NULL) {
        /* The store failed while we waited (apply_tx.c): the barrier and
         * the applied index refuse to pass it. */
        api_reply_error(a, API_E_STORAGE_ERROR, "%s: use another node", why);
        return;
    }
    if (a->timed_out) {
        api_reply_error(a, API_E_NOT_CONSISTENT,
                        "could not confirm the latest committed state with "
                        "the leader: retry, or use consistency=any");
        return;
    }
    a->after(a);
}

void api_read(struct api_req *a, api_step_fn fn)
{
    const char *c = http_request_query_param(a->http, "consistency");

    if (c == NULL || strcmp(c, "strong") == 0) {
        a->consistency = CONSISTENCY_STRONG;
    } else if (strcmp(c, "leader") == 0) {
        a->consistency = CONSISTENCY_LEADER;
    } else if (strcmp(c, "any") == 0) {
        a->consistency = CONSISTENCY_ANY;
    } else {
        api_reply_error(a, API_E_BAD_QUERY,
                        "consistency='%s' must be strong, leader or any", c);
        return;
    }
    if (repair_blocked(a->n) != NULL) {
        /* Corrupt, or rebuilt and not yet caught up (repair.h). */
        api_reply_error(a, API_E_STORE_CORRUPT, "%s: use another node",
                        repair_blocked(a->n));
        return;
    }
    if (ledger_repl_failed(a->n->repl) != NULL) {
        /* The store may miss entries this node acknowledged. */
        api_reply_error(a, API_E_STORAGE_ERROR, "%s: use another node",
                        ledger_repl_failed(a->n->repl));
        return;
    }
    switch (a->consistency) {
    case CONSISTENCY_ANY:
        fn(a);
        return;
    case CONSISTENCY_LEADER:
        /* Served by the leader's store: leader-bound, safe to repeat. */
        api_write(a, fn, true);
        return;
    default:
        break;
    }
    a->after = fn;
    api_catch_up(a, STRONG_WAIT_MS, strongDone);
}
