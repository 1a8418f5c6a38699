/* The leader-bound life of a request: writes (appends, checkpoints,
 * membership) and reads that must be served by the leader.
 *
 * Only the leader proposes. A request that reaches another node is
 * forwarded to the leader; while no leader is known it is parked; when the
 * leader it was sent to is replaced, goes silent or refuses the
 * connection, it is sent again if that is safe, else answered at once.
 * "Safe" (api_write.retry_safe) means a second delivery cannot apply it
 * twice: every event of an append carries an id (the store deduplicates),
 * a checkpoint PUT (same value), a read.
 *
 * States (enum api_write_state) and transitions. L is the leader this node
 * knows (api_leader()), T the term:
 *
 *   from       event                                   to / action
 *   ---------  --------------------------------------  ---------------------
 *   (new)      api_write()                             route
 *   route      this node leads                         RUNNING: run it here
 *   route      L known (not avoided), hops left        FORWARDED: send to L
 *   route      store failed                            503 storage_error
 *   route      no L for longer than the leader wait    503 no_leader
 *   route      no L, leadership was just lost here     503 outcome_unknown
 *                (and no transfer is running)            or not_leader, at once
 *   route      no L                                    PARKED
 *   route      out of tries / hops                     503 no_leader /
 * not_leader RUNNING    the handler answers                     done RUNNING
 * leadership lost, nothing applied        route RUNNING    leadership lost,
 * maybe applied, safe    route (maybe_applied) RUNNING    leadership lost,
 * maybe applied, unsafe  503 outcome_unknown PARKED     a usable L is known
 * route PARKED     leader wait over (or shutdown)          503 no_leader
 *   FORWARDED  L answers                               relay the answer
 *   FORWARDED  nothing was sent (refused, no connect)  avoid L until it
 *                                                        changes; route
 *   FORWARDED  L or T changes, request safe (and not   cancel; route
 *                one that moves leadership itself)       (maybe_applied)
 *   FORWARDED  L or T changes, request unsafe          keep waiting: a leader
 *                                                        handing over cleanly
 *                                                        still answers it
 *   FORWARDED  no answer by the forward deadline,      cancel; avoid L; safe:
 *                or the connection broke after sending   route (maybe_applied);
 *                                                        else outcome_unknown
 *
 * Bounds (issue 11): connecting to a peer takes at most the election
 * timeout (peer.c); a forwarded request waits for its answer at most
 * max(2 x election timeout, 2 s) (plus its long-poll wait; membership
 * changes, whose catch-up may take up to 110 s, wait up to 120 s but are
 * still resolved on a leader change); a parked request waits at most
 * max(3 x election timeout, 3 s). Once any attempt may have been applied,
 * every later 503/429 answers outcome_unknown (reply.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "log.h"
#include "metrics.h"
#include "restart.h"
#include "routes.h"

#define WRITE__MAX_HOPS 3  /* Nodes a request may be passed through. */
#define WRITE__MAX_TRIES 8 /* Runs and forwards of one request. */
#define WRITE__MEMBERSHIP_WAIT_MS 120000u /* Forwarded membership change. */

static unsigned leaderWaitMs(struct ledger_node *n)
{
    unsigned w = 3 * n->cfg->election_ms;
    return w < 3000 ? 3000 : w;
}

static unsigned forwardWaitMs(struct api_req *a)
{
    unsigned w = 2 * a->n->cfg->election_ms;
    if (a->rt != NULL && (a->rt->flags & ROUTE_LONG)) {
        return WRITE__MEMBERSHIP_WAIT_MS;
    }
    return (w < 2000 ? 2000 : w) + (unsigned)a->wait_ms;
}

/* A leader we may send to: not the one that refused or ignored us, unless
 * the term moved on since. */
static bool usable(struct api_req *a, const struct api_leader *l)
{
    if (l->here) {
        return a->w.run != NULL;
    }
    /* Leading but not taking writes (handing over, store failed): wait
     * for the successor rather than forward to ourselves. */
    return l->id != 0 && l->id != a->n->cfg->id && l->api[0] != '\0' &&
           !(l->id == a->w.avoid_id && l->term == a->w.term);
}

static bool leaderUsable(struct api_req *a)
{
    return usable(a, api_leader(a->n));
}

static void route(struct api_req *a, bool may_park);

/* Decided only when it matters (a forward went unanswered, leadership was
 * lost), since deciding may mean decoding the body. */
static bool retrySafe(struct api_req *a)
{
    if (!a->w.retry_safe && !a->w.safety_known && a->rt != NULL &&
        a->rt->retry_safe != NULL) {
        a->w.retry_safe = a->rt->retry_safe(a);
    }
    a->w.safety_known = true;
    return a->w.retry_safe;
}

static void parkedDone(struct api_req *a)
{
    if (a->timed_out) {
        api_reply_error(a, API_E_NO_LEADER,
                        "the cluster has no leader right now: retry shortly");
        return;
    }
    route(a, true);
}

/* ---- Forwarded ---------------------------------------------------------- */

static void resolveUnanswered(struct api_req *a, const char *why)
{
    if (retrySafe(a)) {
        a->w.maybe_applied = true;
        route(a, true);
        return;
    }
    api_reply_error(a, API_E_OUTCOME_UNKNOWN,
                    "%s before it answered: the request may or may not have "
                    "been applied; check, then retry",
                    why);
}

static void forwardCb(void *arg, int status,
                      const struct http_client_response *resp)
{
    struct api_req *a = arg;
    char extra[160] = "";
    char dup[16];
    size_t len = 0;

    a->w.call = NULL;
    api_unwait(a);
    a->w.state = WRITE_NONE;
    if (status != 0 && !resp->sent) {
        /* Nothing reached the leader (refused, or no connection within the
         * election timeout): it is gone; wait for the next one. */
        a->w.avoid_id = a->w.leader_id;
        route(a, true);
        return;
    }
    if (status != 0) {
        a->w.avoid_id = a->w.leader_id;
        ledger_log(LOG_INFO, a->rid, "forward to leader %llu failed: %s",
                   (unsigned long long)a->w.leader_id, uv_strerror(status));
        resolveUnanswered(a, "the leader's connection broke");
        return;
    }
    if (resp->retry_after != NULL) {
        len += (size_t)snprintf(extra + len, sizeof extra - len,
                                "Retry-After: %s\r\n", resp->retry_after);
    }
    if (http_client_response_header(resp, "X-Ledger-Duplicate", dup,
                                    sizeof dup) != NULL &&
        len < sizeof extra) {
        snprintf(extra + len, sizeof extra - len, "X-Ledger-Duplicate: %s\r\n",
                 dup);
    }
    api_reply_raw(a, resp->status,
                  resp->content_type ? resp->content_type : "application/json",
                  resp->body, resp->body_len, extra);
}

/* Give up on the forwarded answer now: the leader or term it was sent to
 * changed, and sending it again is safe. An unsafe request keeps waiting
 * for its answer, up to the forward bound: a leader that hands over
 * cleanly (SIGTERM, a transfer) passes it on to its successor and relays
 * the answer, so the client sees no failure; a frozen or cut-off one is
 * given up at the bound. A request that moves leadership itself waits for
 * its answer too. */
static bool leaderMoved(struct api_req *a)
{
    const struct api_leader *l = api_leader(a->n);
    if (l->id == a->w.leader_id && l->term == a->w.term) {
        return false;
    }
    if (a->rt != NULL && (a->rt->flags & ROUTE_MOVES_LEADER)) {
        return false;
    }
    return retrySafe(a);
}

/* The leader changed, or the deadline passed, before the answer came. */
static void forwardLost(struct api_req *a)
{
    const struct api_leader *l = api_leader(a->n);
    uint64_t was = a->w.leader_id;

    http_call_cancel(a->w.call);
    a->w.call = NULL;
    a->w.state = WRITE_NONE;
    metrics_forward_lost(a->timed_out ? "timeout" : "leader_change");
    if (a->timed_out) {
        a->w.avoid_id = was;
        ledger_log(LOG_INFO, a->rid,
                   "leader %llu did not answer within %u ms: %s",
                   (unsigned long long)was, forwardWaitMs(a),
                   retrySafe(a) ? "sending it again" : "outcome unknown");
        resolveUnanswered(a, "the leader did not answer in time");
        return;
    }
    ledger_log(LOG_INFO, a->rid,
               "leader changed (%llu -> %llu, term %llu) while a forwarded "
               "request waited: %s",
               (unsigned long long)was, (unsigned long long)l->id,
               (unsigned long long)l->term,
               retrySafe(a) ? "sending it again" : "outcome unknown");
    resolveUnanswered(a, "the leader changed");
}

static void forwardTo(struct api_req *a, const struct api_leader *l)
{
    char path[2048];
    char headers[API_PEER_HEADERS_MAX];
    const char *q = http_request_query(a->http);
    size_t hl = 0;
    size_t blen = 0;
    const char *body = http_request_body(a->http, &blen);
    static const char *pass[] = {"Content-Type", "Accept", "Authorization"};
    struct http_call_spec spec;
    int rv;

    snprintf(path, sizeof path, "%s%s%s", http_request_path(a->http),
             q[0] ? "?" : "", q);
    hl += (size_t)snprintf(headers + hl, sizeof headers - hl,
                           "X-Ledger-Forwarded: %u\r\nX-Request-Id: %s\r\n",
                           a->hops + 1, a->rid);
    for (size_t i = 0; i < sizeof pass / sizeof pass[0]; i++) {
        const char *h = http_request_header(a->http, pass[i]);
        if (h != NULL && hl < sizeof headers) {
            hl += (size_t)snprintf(headers + hl, sizeof headers - hl,
                                   "%s: %s\r\n", pass[i], h);
        }
    }
    /* The client's role travels in its Authorization; our proof says the
     * client was charged here (auth.h). */
    api_peer_auth_headers(a->n, false, true, headers, sizeof headers, &hl);
    memset(&spec, 0, sizeof spec);
    spec.addr = l->api;
    spec.method = a->method;
    spec.path = path;
    spec.headers = headers;
    spec.body = body;
    spec.body_len = blen;
    spec.timeout_ms = forwardWaitMs(a) + 1000; /* the sweep acts first */
    a->w.leader_id = l->id;
    a->w.term = l->term;
    rv = api_peer_call(a->n, &spec, forwardCb, a, &a->w.call);
    if (rv != 0) {
        a->w.call = NULL;
        api_reply_error(a, API_E_LEADER_UNREACHABLE,
                        "cannot reach the leader at %s (%s): retry shortly",
                        l->api, uv_strerror(rv));
        return;
    }
    metrics_forwarded();
    a->w.state = WRITE_FORWARDED;
    a->through_shutdown = true;
    api_wait(a, forwardWaitMs(a), leaderMoved, forwardLost);
}

/* ---- Routing ------------------------------------------------------------ */

/* Why nothing can run now, if the node itself is the reason. */
static const char *nodeBroken(struct ledger_node *n)
{
    const char *why = ledger_repl_failed(n->repl);
    return why != NULL ? why : restart_watch_reason(n->restart);
}

static void route(struct api_req *a, bool may_park)
{
    const struct api_leader *l;
    struct ledger_repl_status st;
    const char *why;

    if (++a->w.tries > WRITE__MAX_TRIES) {
        api_reply_error(a, API_E_NO_LEADER,
                        "leadership kept moving: retry shortly");
        return;
    }
    l = api_leader(a->n);
    if (usable(a, l)) {
        if (l->here) {
            a->w.state = WRITE_RUNNING;
            a->w.run(a);
            return;
        }
        if (a->hops >= WRITE__MAX_HOPS && !a->w.handed_off) {
            api_reply_error(a, API_E_NOT_LEADER,
                            "this node is not the leader (leadership is "
                            "changing): retry shortly");
            return;
        }
        forwardTo(a, l);
        return;
    }
    why = nodeBroken(a->n);
    if (why != NULL) {
        api_reply_error(a, API_E_STORAGE_ERROR, "%s: use another node", why);
        return;
    }
    if (!may_park) {
        api_reply_error(a, API_E_NOT_LEADER,
                        "this node lost leadership and knows no new leader "
                        "yet: retry on another node");
        return;
    }
    /* Waiting helps while leadership moves, not in a partition that has
     * been without a leader for longer than the wait: answer at once. */
    ledger_repl_status(a->n->repl, &st);
    if (st.leaderless_ms > (int64_t)leaderWaitMs(a->n)) {
        api_reply_error(a, API_E_NO_LEADER,
                        "the cluster has no leader right now (none for %lld "
                        "ms): retry shortly",
                        (long long)st.leaderless_ms);
        return;
    }
    a->w.state = WRITE_PARKED;
    a->through_shutdown = true;
    api_wait(a, leaderWaitMs(a->n), leaderUsable, parkedDone);
}

void api_write(struct api_req *a, api_step_fn run, bool retry_safe)
{
    a->w.run = run;
    a->w.retry_safe = retry_safe;
    route(a, true);
}

void api_write_lost(struct api_req *a, bool maybe_applied)
{
    a->w.state = WRITE_NONE;
    if (maybe_applied && !retrySafe(a)) {
        api_reply_error(a, API_E_OUTCOME_UNKNOWN,
                        "leadership was lost before the write was confirmed: "
                        "it may or may not have been applied; check, then "
                        "retry");
        return;
    }
    a->w.maybe_applied = a->w.maybe_applied || maybe_applied;
    /* Lost here: a leader handing over on purpose parks the request for
     * its successor; a leader that lost its quorum (cut off, or deposed)
     * answers at once unless it already knows the new leader, so the
     * client can go elsewhere instead of waiting. */
    route(a, ledger_repl_transferring(a->n->repl) || a->w.handed_off);
}
