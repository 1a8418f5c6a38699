/* HTTP API core: request contexts, routing, authentication, replies,
 * forwarding to the leader, read consistency and waiting (see api.h). */
#include "api.h"
#include "restart.h"

#include <openssl/crypto.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/client.h"
#include "log.h"
#include "metrics.h"

#define FORWARD_TIMEOUT_MS 10000
#define MEMBERSHIP_FORWARD_TIMEOUT_MS 120000 /* promotion catch-up */
#define READ_INDEX_TIMEOUT_MS 5000
#define STRONG_WAIT_MS 5000
#define PEER_POOL_MAX_IDLE 64 /* Idle keep-alive connections to peers. */

/* ---- Replies ---------------------------------------------------------- */

/* Record metrics and the access log line, then send and free. The request
 * must not be touched after http_response_send (it frees it). */
static void replyRaw(struct api_req *a, int status, const char *ctype,
                     const char *body, size_t len, const char *extra)
{
    double secs = (double)(uv_hrtime() - a->start_ns) / 1e9;
    char headers[256];
    int level = status >= 500 ? LOG_WARN : LOG_DEBUG;

    metrics_request(a->route, a->method, status);
    if (strcmp(a->route, "append") == 0 && status == 201) {
        metrics_append_latency(secs, a->n_events);
    }
    if (ledger_log_enabled(level)) {
        ledger_log(level, a->rid, "%s %s -> %d (%.1f ms)", a->method,
                   http_request_path(a->http), status, secs * 1000);
    }
    snprintf(headers, sizeof headers, "X-Request-Id: %s\r\n%s", a->rid,
             extra != NULL ? extra : "");
    http_response_send(a->http, status, ctype, body, len, headers);
    free(a);
}

void api_reply_raw(struct api_req *a, int status, const char *ctype,
                   const char *body, size_t len)
{
    replyRaw(a, status, ctype, body, len, NULL);
}

void api_reply_json(struct api_req *a, int status, json_t *body,
                    const char *extra_headers)
{
    size_t len = 0;
    char *out = codec_encode(a->out_fmt, body, &len);
    json_decref(body);
    if (out == NULL) {
        static const char oom[] =
            "{\"error\":{\"code\":\"internal\",\"message\":\"out of "
            "memory encoding the response\"}}";
        replyRaw(a, 500, "application/json", oom, sizeof oom - 1, NULL);
        return;
    }
    replyRaw(a, status, codec_content_type(a->out_fmt), out, len,
             extra_headers);
    free(out);
}

static void replyErrorV(struct api_req *a, int status, const char *code,
                        json_t *extra, const char *fmt, va_list ap)
{
    char msg[512];
    json_t *err;
    size_t off = 0;

    if (a->maybe_appended && (status == 503 || status == 429)) {
        /* An earlier attempt of this append may have committed: whatever
         * stopped the retry, "nothing was appended" would be false. */
        code = "outcome_unknown";
        off = (size_t)snprintf(msg, sizeof msg,
                               "an earlier attempt may have been appended "
                               "(retry with the same ids): ");
    }
    vsnprintf(msg + off, sizeof msg - off, fmt, ap);
    err = json_pack("{s:s, s:s}", "code", code, "message", msg);
    if (extra != NULL) {
        json_object_update(err, extra);
        json_decref(extra);
    }
    api_reply_json(a, status, json_pack("{s:o}", "error", err),
                   (status == 503 || status == 429 ||
                    strcmp(code, "change_in_progress") == 0)
                       ? "Retry-After: 1\r\n"
                       : NULL);
}

void api_reply_store_error(struct api_req *a)
{
    api_reply_error(a, 500, "store_error", "%s",
                    ledger_store_errmsg(a->n->store));
}

void api_reply_error(struct api_req *a, int status, const char *code,
                     const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    replyErrorV(a, status, code, NULL, fmt, ap);
    va_end(ap);
}

void api_reply_error_obj(struct api_req *a, int status, const char *code,
                         json_t *extra, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    replyErrorV(a, status, code, extra, fmt, ap);
    va_end(ap);
}

/* ---- Input helpers ---------------------------------------------------- */

json_t *api_body(struct api_req *a)
{
    size_t len = 0;
    const char *body = http_request_body(a->http, &len);
    const char *ctype = http_request_header(a->http, "Content-Type");
    char err[256];
    json_t *v;

    if (len == 0) {
        api_reply_error(a, 400, "empty_body",
                        "request body is empty: send "
                        "a JSON or MessagePack object");
        return NULL;
    }
    /* Anything but MessagePack is read as JSON (curl -d sends a form
     * content type by default). */
    v = codec_decode(codec_format_from_header(ctype), body, len, err,
                     sizeof err);
    if (v == NULL) {
        api_reply_error(a, 400, "malformed_body", "%s", err);
    }
    return v;
}

int api_query_u64(struct api_req *a, const char *name, uint64_t def,
                  uint64_t max, uint64_t *out)
{
    const char *v = http_request_query_param(a->http, name);
    char *end;
    unsigned long long x;

    if (v == NULL) {
        *out = def;
        return 0;
    }
    if (*v < '0' || *v > '9' || strlen(v) > 19) {
        goto bad;
    }
    x = strtoull(v, &end, 10);
    if (*end != '\0') {
        goto bad;
    }
    *out = x > max ? max : x;
    return 0;
bad:
    api_reply_error(a, 400, "bad_query",
                    "query parameter %s='%s' must be a non-negative integer",
                    name, v);
    return -1;
}

/* ---- Forwarding ------------------------------------------------------- */

/* Requests to a peer's API (forwarded writes, read-index queries) go over
 * the node's pool of keep-alive connections, created on first use; once
 * shutdown has begun (the pool is closed by api_sweep) they use one-shot
 * connections. */
int api_peer_request(struct ledger_node *n, const char *addr,
                     const char *method, const char *path, const char *headers,
                     const char *body, size_t len, unsigned timeout_ms,
                     http_client_cb cb, void *arg)
{
    if (!n->shutting_down && n->peers == NULL) {
        n->peers = http_pool_create(n->loop, PEER_POOL_MAX_IDLE);
    }
    if (n->shutting_down || n->peers == NULL) {
        return http_client_request(n->loop, addr, method, path, headers, body,
                                   len, timeout_ms, cb, arg);
    }
    return http_pool_request(n->peers, addr, method, path, headers, body, len,
                             timeout_ms, cb, arg);
}

/* Writes during a leadership change wait for the new leader instead of
 * failing: a node that knows no leader (or only one that refused the
 * connection, or is itself handing leadership over) parks the request for
 * up to leaderWaitMs, then runs it here or forwards it. A forwarded request
 * may be passed on again (a follower's view of the leader lags by up to a
 * heartbeat) up to FORWARD_MAX_HOPS times. Only a refused connection is
 * retried: nothing was delivered, so nothing can be applied twice. */
#define FORWARD_MAX_HOPS 3
#define WRITE_MAX_TRIES 8

static unsigned leaderWaitMs(struct api_req *a)
{
    unsigned w = 3 * a->n->cfg->election_ms;
    return w < 3000 ? 3000 : w;
}

enum { ROUTE_NONE, ROUTE_HERE, ROUTE_LEADER };

static int writeRoute(struct api_req *a, char *leader, size_t len)
{
    struct ledger_repl_status st;
    ledger_repl_status(a->n->repl, &st);
    if (st.is_leader) {
        return ledger_repl_transferring(a->n->repl) || a->write_fn == NULL
                   ? ROUTE_NONE
                   : ROUTE_HERE;
    }
    if (!ledger_repl_leader_api(a->n->repl, leader, len)) {
        return ROUTE_NONE;
    }
    if (a->refused[0] != '\0' && strcmp(leader, a->refused) == 0) {
        return ROUTE_NONE;
    }
    return ROUTE_LEADER;
}

static bool leaderKnown(struct api_req *a)
{
    char leader[REPL_ADDR_MAX];
    return writeRoute(a, leader, sizeof leader) != ROUTE_NONE;
}

static void forwardTo(struct api_req *a, const char *leader);

/* Run the write here or forward it, if a route is known; false if not. */
static bool route(struct api_req *a)
{
    char leader[REPL_ADDR_MAX];
    switch (writeRoute(a, leader, sizeof leader)) {
    case ROUTE_HERE:
        a->write_fn(a);
        return true;
    case ROUTE_LEADER:
        forwardTo(a, leader);
        return true;
    default:
        return false;
    }
}

static void dispatch(struct api_req *a)
{
    if (!route(a)) {
        api_reply_error(a, 503, "no_leader",
                        "the cluster has no leader right now: retry shortly");
    }
}

void api_forward(struct api_req *a)
{
    struct ledger_repl_status st;
    const char *why;

    if (++a->tries > WRITE_MAX_TRIES) {
        api_reply_error(a, 503, "no_leader",
                        "leadership kept moving: retry shortly");
        return;
    }
    if (route(a)) {
        return; /* the common case: no waiting */
    }
    why = ledger_repl_failed(a->n->repl);
    if (why == NULL) {
        why = restart_watch_reason(a->n->restart);
    }
    if (why != NULL) {
        api_reply_error(a, 503, "storage_error", "%s: use another node", why);
        return;
    }
    /* Waiting helps while leadership moves, not in a partition that has
     * been without a leader for longer than the wait: answer at once. */
    ledger_repl_status(a->n->repl, &st);
    if (st.leaderless_ms > (int64_t)leaderWaitMs(a)) {
        api_reply_error(a, 503, "no_leader",
                        "the cluster has no leader right now (none for %lld "
                        "ms): retry shortly",
                        (long long)st.leaderless_ms);
        return;
    }
    a->through_shutdown = true;
    api_wait(a, leaderWaitMs(a), leaderKnown, dispatch);
}

static void forwardCb(void *arg, int status,
                      const struct http_client_response *resp)
{
    struct api_req *a = arg;
    char extra[128];

    if (status == UV_ECONNREFUSED && a->write_fn != NULL) {
        /* The leader we knew is gone (stopped, or restarting): nothing
         * was sent, so wait for the next one. */
        char leader[REPL_ADDR_MAX];
        if (ledger_repl_leader_api(a->n->repl, leader, sizeof leader)) {
            snprintf(a->refused, sizeof a->refused, "%s", leader);
        }
        api_forward(a);
        return;
    }
    if (status != 0) {
        api_reply_error(a, 503, "leader_unreachable",
                        "the leader did not answer (%s): retry shortly",
                        uv_strerror(status));
        return;
    }
    snprintf(extra, sizeof extra, "%s%s%s%s",
             resp->retry_after ? "Retry-After: " : "",
             resp->retry_after ? resp->retry_after : "",
             resp->retry_after ? "\r\n" : "",
             resp->duplicate ? "X-Ledger-Duplicate: true\r\n" : "");
    replyRaw(a, resp->status,
             resp->content_type ? resp->content_type : "application/json",
             resp->body, resp->body_len, extra);
}

static void forwardTo(struct api_req *a, const char *leader)
{
    char path[2048];
    char headers[2048];
    const char *q = http_request_query(a->http);
    const char *h;
    size_t hl = 0;
    size_t blen = 0;
    const char *body = http_request_body(a->http, &blen);
    int rv;

    if (a->hops >= FORWARD_MAX_HOPS && !a->handed_off) {
        api_reply_error(a, 503, "not_leader",
                        "this node is not the leader (leadership is "
                        "changing): retry shortly");
        return;
    }
    snprintf(path, sizeof path, "%s%s%s", http_request_path(a->http),
             q[0] ? "?" : "", q);
    hl += (size_t)snprintf(headers + hl, sizeof headers - hl,
                           "X-Ledger-Forwarded: %u\r\nX-Request-Id: %s\r\n",
                           a->hops + 1, a->rid);
    static const char *pass[] = {"Content-Type", "Accept", "Authorization"};
    for (size_t i = 0; i < sizeof pass / sizeof pass[0]; i++) {
        h = http_request_header(a->http, pass[i]);
        if (h != NULL && hl < sizeof headers) {
            hl += (size_t)snprintf(headers + hl, sizeof headers - hl,
                                   "%s: %s\r\n", pass[i], h);
        }
    }
    metrics_forwarded();
    /* A forwarded long poll may legitimately take wait_ms. */
    rv = api_peer_request(a->n, leader, a->method, path, headers, body, blen,
                          strncmp(a->route, "member", 6) == 0
                              ? MEMBERSHIP_FORWARD_TIMEOUT_MS
                              : FORWARD_TIMEOUT_MS + (unsigned)a->wait_ms,
                          forwardCb, a);
    if (rv != 0) {
        api_reply_error(a, 503, "leader_unreachable",
                        "cannot reach the leader at %s (%s): retry shortly",
                        leader, uv_strerror(rv));
    }
}

void api_write(struct api_req *a, api_step_fn fn)
{
    a->write_fn = fn;
    api_forward(a); /* runs here, forwards, or waits for a leader */
}

/* ---- Waiting on the applied index ------------------------------------- */

static void unlinkWaiter(struct api_req *a)
{
    struct ledger_node *n = a->n;
    if (!a->waiting) {
        return;
    }
    if (a->prev != NULL) {
        a->prev->next = a->next;
    } else {
        n->waiters = a->next;
    }
    if (a->next != NULL) {
        a->next->prev = a->prev;
    }
    a->next = a->prev = NULL;
    a->waiting = false;
}

void api_wait(struct api_req *a, uint64_t timeout_ms, api_ready_fn ready,
              api_step_fn then)
{
    struct ledger_node *n = a->n;
    a->ready = ready;
    a->then = then;
    a->timed_out = false;
    if (ready(a)) {
        then(a);
        return;
    }
    if ((n->shutting_down && !a->through_shutdown) || timeout_ms == 0) {
        a->timed_out = true;
        then(a);
        return;
    }
    a->deadline = uv_now(n->loop) + timeout_ms;
    a->waiting = true;
    a->prev = NULL;
    a->next = n->waiters;
    if (n->waiters != NULL) {
        n->waiters->prev = a;
    }
    n->waiters = a;
}

/* Run every waiter whose condition holds or whose deadline passed (all of
 * them when flush_all, at shutdown). */
void api_sweep(struct ledger_node *n, bool flush_all)
{
    uint64_t now = uv_now(n->loop);
    struct api_req *a = n->waiters;
    struct api_req *ready_list = NULL;

    if (flush_all) {
        /* Shutdown (node.c): no new pooled requests; the idle ones close. */
        http_pool_close(n->peers);
        n->peers = NULL;
    }
    /* Collect first, then run: running may add or free waiters. */
    while (a != NULL) {
        struct api_req *next = a->next;
        bool ok = a->ready(a);
        if (ok || flush_all || now >= a->deadline) {
            unlinkWaiter(a);
            a->timed_out = !ok;
            a->next = ready_list;
            ready_list = a;
        }
        a = next;
    }
    while (ready_list != NULL) {
        struct api_req *next = ready_list->next;
        ready_list->next = NULL;
        ready_list->then(ready_list);
        ready_list = next;
    }
}

void api_on_applied(void *arg)
{
    api_sweep(arg, false);
}

/* ---- Consistency ------------------------------------------------------ */

static bool appliedReached(struct api_req *a)
{
    struct ledger_repl_status st;
    ledger_repl_status(a->n->repl, &st);
    return st.applied_index >= a->wait_index;
}

static void barrierDone(void *arg, int status, uint64_t index)
{
    struct api_req *a = arg;
    a->timed_out = status != 0;
    a->wait_index = index;
    a->then(a);
}

static void readIndexCb(void *arg, int status,
                        const struct http_client_response *resp)
{
    struct api_req *a = arg;
    json_t *root = NULL;
    json_t *idx;

    if (status == 0 && resp->status == 200) {
        root = json_loadb(resp->body, resp->body_len, 0, NULL);
    }
    idx = json_object_get(root, "index");
    if (!json_is_integer(idx)) {
        json_decref(root);
        a->timed_out = true;
        a->then(a);
        return;
    }
    a->wait_index = (uint64_t)json_integer_value(idx);
    json_decref(root);
    api_wait(a, a->wait_timeout, appliedReached, a->then);
}

void api_peer_headers(struct api_req *a, char *buf, size_t len)
{
    const char *auth = http_request_header(a->http, "Authorization");
    const char *token = a->n->cfg->token;
    snprintf(buf, len, "X-Ledger-Forwarded: 1\r\nX-Request-Id: %s\r\n%s%s%s%s",
             a->rid, auth || token ? "Authorization: " : "",
             auth ? auth : (token ? "Bearer " : ""),
             auth ? "" : (token ? token : ""), auth || token ? "\r\n" : "");
}

void api_catch_up(struct api_req *a, uint64_t timeout_ms, api_step_fn then)
{
    struct ledger_repl_status st;
    char leader[REPL_ADDR_MAX];
    char headers[1200];
    int rv;

    a->then = then;
    a->timed_out = false;
    ledger_repl_status(a->n->repl, &st);
    if (st.is_leader) {
        rv = ledger_repl_barrier(a->n->repl, barrierDone, a);
        if (rv != 0) {
            a->timed_out = true;
            then(a);
        }
        return;
    }
    if (!ledger_repl_leader_api(a->n->repl, leader, sizeof leader)) {
        a->timed_out = true;
        then(a);
        return;
    }
    api_peer_headers(a, headers, sizeof headers);
    a->wait_timeout = timeout_ms;
    rv = api_peer_request(a->n, leader, "GET", "/v1/internal/read_index",
                          headers, NULL, 0, READ_INDEX_TIMEOUT_MS, readIndexCb,
                          a);
    if (rv != 0) {
        a->timed_out = true;
        then(a);
    }
}

static void strongDone(struct api_req *a)
{
    const char *why = ledger_repl_failed(a->n->repl);

    if (a->timed_out && why != NULL) {
        /* The store failed while we waited (apply_tx.c): the barrier and
         * the applied index refuse to pass it. */
        api_reply_error(a, 503, "storage_error", "%s: use another node", why);
        return;
    }
    if (a->timed_out) {
        api_reply_error(a, 503, "not_consistent",
                        "could not confirm the latest committed state with "
                        "the leader: retry, or use consistency=any");
        return;
    }
    a->after(a);
}

void api_read(struct api_req *a, api_step_fn fn)
{
    const char *c = http_request_query_param(a->http, "consistency");
    struct ledger_repl_status st;

    if (c == NULL || strcmp(c, "strong") == 0) {
        a->consistency = CONSISTENCY_STRONG;
    } else if (strcmp(c, "leader") == 0) {
        a->consistency = CONSISTENCY_LEADER;
    } else if (strcmp(c, "any") == 0) {
        a->consistency = CONSISTENCY_ANY;
    } else {
        api_reply_error(a, 400, "bad_query",
                        "consistency='%s' must be strong, leader or any", c);
        return;
    }
    if (ledger_repl_failed(a->n->repl) != NULL) {
        /* The store may miss entries this node acknowledged. */
        api_reply_error(a, 503, "storage_error", "%s: use another node",
                        ledger_repl_failed(a->n->repl));
        return;
    }
    ledger_repl_status(a->n->repl, &st);
    switch (a->consistency) {
    case CONSISTENCY_ANY:
        fn(a);
        return;
    case CONSISTENCY_LEADER:
        if (st.is_leader) {
            fn(a);
        } else {
            api_forward(a);
        }
        return;
    default:
        break;
    }
    a->after = fn;
    api_catch_up(a, STRONG_WAIT_MS, strongDone);
}

/* ---- Routing ---------------------------------------------------------- */

#include <openssl/evp.h>

/* Constant-time bearer token check: compare digests of equal length. */
static bool authorized(struct api_req *a)
{
    const char *token = a->n->cfg->token;
    const char *h = http_request_header(a->http, "Authorization");
    unsigned char want[EVP_MAX_MD_SIZE];
    unsigned char got[EVP_MAX_MD_SIZE];
    unsigned int wl = 0;
    unsigned int gl = 0;

    if (token == NULL) {
        return true;
    }
    if (h == NULL || strncmp(h, "Bearer ", 7) != 0) {
        return false;
    }
    h += 7;
    if (!EVP_Digest(token, strlen(token), want, &wl, EVP_sha256(), NULL) ||
        !EVP_Digest(h, strlen(h), got, &gl, EVP_sha256(), NULL) || wl != gl) {
        return false;
    }
    return CRYPTO_memcmp(want, got, wl) == 0;
}

void api_method_not_allowed(struct api_req *a, const char *allow)
{
    char extra[96];
    char msg[160];
    snprintf(extra, sizeof extra, "Allow: %s\r\n", allow);
    snprintf(msg, sizeof msg,
             "{\"error\":{\"code\":\"method_not_allowed\",\"message\":\"%s "
             "is not allowed here; allowed: %s\"}}",
             a->method, allow);
    replyRaw(a, 405, "application/json", msg, strlen(msg), extra);
}

static bool safeRid(const char *s)
{
    size_t i;
    if (s == NULL || s[0] == '\0' || strlen(s) > 40) {
        return false;
    }
    for (i = 0; s[i]; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.')) {
            return false;
        }
    }
    return true;
}

/* Copy a validated name segment; replies 400 and returns false if bad. */
static bool nameSegment(struct api_req *a, const char *seg, char *out,
                        const char *what)
{
    if (!ledger_stream_name_valid(seg, strlen(seg))) {
        api_reply_error(a, 400, "bad_name",
                        "%s name '%.64s%s' is invalid: use 1-255 characters "
                        "from A-Z a-z 0-9 . _ : -",
                        what, seg, strlen(seg) > 64 ? "..." : "");
        return false;
    }
    snprintf(out, LEDGER_STREAM_MAX + 1, "%s", seg);
    return true;
}

#define IS(m) (strcmp(a->method, (m)) == 0)

void api_handle(void *arg, http_request *req)
{
    struct ledger_node *n = arg;
    struct api_req *a = calloc(1, sizeof *a);
    char path[2048];
    char *segs[8];
    size_t ns = 0;
    char *tok;
    const char *rid;

    if (a == NULL) {
        http_response_send(req, 503, "application/json",
                           "{\"error\":{\"code\":\"out_of_memory\","
                           "\"message\":\"out of memory\"}}",
                           58, "Retry-After: 1\r\n");
        return;
    }
    a->n = n;
    a->http = req;
    a->method = http_request_method(req);
    a->start_ns = uv_hrtime();
    a->route = "unknown";
    a->out_fmt = codec_format_from_header(http_request_header(req, "Accept"));
    a->forwarded = http_request_header(req, "X-Ledger-Forwarded") != NULL;
    if (a->forwarded) {
        a->hops = (unsigned)strtoul(
            http_request_header(req, "X-Ledger-Forwarded"), NULL, 10);
        a->hops = a->hops == 0 ? 1 : a->hops;
    }
    rid = http_request_header(req, "X-Request-Id");
    if (safeRid(rid)) {
        snprintf(a->rid, sizeof a->rid, "%s", rid);
    } else {
        snprintf(a->rid, sizeof a->rid, "%llu-%llu",
                 (unsigned long long)n->cfg->id,
                 (unsigned long long)++n->next_rid);
    }

    /* Split on '/', keeping empty segments: "/v1/streams//events" names an
     * empty stream (400), it is not "/v1/streams/events". */
    snprintf(path, sizeof path, "%s", http_request_path(req));
    tok = path[0] == '/' ? path + 1 : path;
    while (tok != NULL && ns < 8) {
        char *slash = strchr(tok, '/');
        if (slash != NULL) {
            *slash = '\0';
        }
        segs[ns++] = tok;
        tok = slash != NULL ? slash + 1 : NULL;
    }
    if (tok != NULL) {
        ns = 99; /* too deep: no route matches */
    } else if (ns > 1 && segs[ns - 1][0] == '\0') {
        ns--; /* one trailing slash is ignored */
    }

    if (ns == 1 && strcmp(segs[0], "health") == 0) {
        a->route = "health";
        IS("GET") ? api_health(a) : api_method_not_allowed(a, "GET");
        return;
    }
    if (ns == 1 && strcmp(segs[0], "metrics") == 0) {
        a->route = "metrics";
        IS("GET") ? api_metrics(a) : api_method_not_allowed(a, "GET");
        return;
    }
    if (ns < 2 || strcmp(segs[0], "v1") != 0) {
        goto not_found;
    }
    if (!authorized(a)) {
        a->route = "auth";
        api_reply_error(a, 401, "unauthorized",
                        "missing or wrong bearer token: send "
                        "'Authorization: Bearer TOKEN'");
        return;
    }
    /* A node shutting down still takes writes: it hands them to the new
     * leader (api_write waits for the hand-over), so a client that sent
     * one just then sees no failure. Everything else goes elsewhere. */
    if (n->shutting_down &&
        !((IS("POST") || IS("PUT")) && strcmp(segs[1], "streams") == 0)) {
        a->route = "shutdown";
        api_reply_error(a, 503, "shutting_down",
                        "this node is shutting down: use another node");
        return;
    }

    if (strcmp(segs[1], "streams") == 0) {
        if (ns == 2) {
            a->route = "streams";
            IS("GET") ? api_list_streams(a) : api_method_not_allowed(a, "GET");
            return;
        }
        if (ns == 3) {
            a->route = "stream";
            if (!IS("GET")) {
                api_method_not_allowed(a, "GET");
            } else if (nameSegment(a, segs[2], a->stream, "stream")) {
                api_stream_head(a);
            }
            return;
        }
        if (ns == 4 && strcmp(segs[3], "events") == 0) {
            a->route = IS("POST") ? "append" : "read";
            if (!IS("GET") && !IS("POST")) {
                api_method_not_allowed(a, "GET, POST");
            } else if (nameSegment(a, segs[2], a->stream, "stream")) {
                IS("POST") ? api_write(a, api_append) : api_read_events(a);
            }
            return;
        }
        if (ns == 5 && strcmp(segs[3], "checkpoints") == 0) {
            a->route = "checkpoint";
            if (!IS("GET") && !IS("PUT")) {
                api_method_not_allowed(a, "GET, PUT");
            } else if (nameSegment(a, segs[2], a->stream, "stream") &&
                       nameSegment(a, segs[4], a->name, "checkpoint")) {
                IS("PUT") ? api_write(a, api_put_checkpoint)
                          : api_get_checkpoint(a);
            }
            return;
        }
        goto not_found;
    }
    if (strcmp(segs[1], "cluster") == 0) {
        if (ns == 2) {
            a->route = "cluster";
            IS("GET") ? api_cluster(a) : api_method_not_allowed(a, "GET");
            return;
        }
        if ((ns >= 3 && strcmp(segs[2], "members") == 0 && ns <= 5) ||
            (ns == 3 && strcmp(segs[2], "leader") == 0)) {
            api_members(a, segs, ns);
            return;
        }
        goto not_found;
    }
    if (ns == 2 && strcmp(segs[1], "verify") == 0) {
        a->route = "verify";
        IS("GET") ? api_verify(a) : api_method_not_allowed(a, "GET");
        return;
    }
    if (ns == 3 && strcmp(segs[1], "internal") == 0) {
        a->route = "internal";
        if (!IS("GET")) {
            api_method_not_allowed(a, "GET");
        } else if (strcmp(segs[2], "events") == 0) {
            api_internal_events(a);
        } else if (strcmp(segs[2], "hash") == 0) {
            api_internal_hash(a);
        } else if (strcmp(segs[2], "read_index") == 0) {
            api_internal_read_index(a);
        } else if (strcmp(segs[2], "status") == 0) {
            api_internal_status(a);
        } else {
            goto not_found;
        }
        return;
    }

not_found:
    a->route = "not_found";
    api_reply_error(a, 404, "not_found", "no route for %s %s", a->method,
                    http_request_path(req));
}
