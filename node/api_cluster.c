/* Cluster, health, metrics, verification and internal (node-to-node)
 * endpoints (docs/api.md).
 *
 * Internal endpoints serve peers: /v1/internal/events (immutable events by
 * position, with the exact stored data text, for snapshot catch-up),
 * /v1/internal/hash (hash at a position, for `ledgerctl verify`),
 * /v1/internal/read_index (leader: a barrier, then the index a follower must
 * apply before a strong read) and /v1/internal/status.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "api.h"
#include "auth.h"
#include "events_page.h"
#include "repair.h"
#include "restart.h"
#include "http/client.h"
#include "members_poll.h"
#include "roles.h"
#include "metrics.h"

#define CLUSTER_FORWARD_TIMEOUT_MS 3000
#define MAX_INTERNAL_LIMIT 10000
#define MAX_HEALTH_TIMEOUT_MS 60000

static json_t *hexJson(const uint8_t h[LEDGER_HASH_LEN])
{
    char hex[LEDGER_HASH_HEX_LEN + 1];
    ledger_hash_hex(h, hex);
    return json_string(hex);
}

/* ---- /v1/cluster ------------------------------------------------------ */

static json_t *intOrNull(bool known, int64_t v)
{
    return known ? json_integer((json_int_t)v) : json_null();
}

static json_t *memberJson(const struct member_view *v, int64_t now_ms)
{
    const struct ledger_repl_member_info *m = &v->r;
    json_t *o = json_pack(
        "{s:I, s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:o}", "id",
        (json_int_t)m->id, "raft_addr", m->raft_addr, "api_addr", m->api_addr,
        "role", ledger_repl_role_name(m->role), "state", m->state,
        "match_index", (json_int_t)m->match_index, "applied_index",
        (json_int_t)m->applied_index, "lag_entries", (json_int_t)m->lag_entries,
        "lag_ms", (json_int_t)m->lag_ms, "last_contact_ms",
        intOrNull(m->last_contact_ms >= 0, m->last_contact_ms));
    json_object_set_new(o, "reachable",
                        v->view_known ? json_boolean(v->reachable)
                                      : json_null());
    json_object_set_new(o, "stable_ms",
                        intOrNull(v->stable_ms >= 0, v->stable_ms));
    json_object_set_new(o, "stable_since",
                        v->stable_ms >= 0 ? api_json_time(now_ms - v->stable_ms)
                                          : json_null());
    json_object_set_new(o, "disk_free_bytes",
                        intOrNull(v->disk_free >= 0, v->disk_free));
    json_object_set_new(o, "disk_size_bytes",
                        intOrNull(v->disk_size >= 0, v->disk_size));
    json_object_set_new(o, "version",
                        v->version[0] != '\0' ? json_string(v->version)
                                              : json_null());
    json_object_set_new(
        o, "zone", m->zone[0] != '\0' ? json_string(m->zone) : json_null());
    return o;
}

static void clusterLocal(struct api_req *a)
{
    static struct member_view v[REPL__MEMBERS_MAX]; /* Loop thread only. */
    struct ledger_repl_status st;
    struct ledger_repl_change_info ci;
    struct ledger_store_state ss;
    json_t *members = json_array();
    json_t *change = json_null();
    json_t *o;
    struct timeval tv;
    int64_t now_ms;
    size_t n;
    size_t i;

    gettimeofday(&tv, NULL);
    now_ms = (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
    ledger_repl_status(a->n->repl, &st);
    n = members_poll_view(a->n, a->n->applied_poll, v, REPL__MEMBERS_MAX);
    n = n < REPL__MEMBERS_MAX ? n : REPL__MEMBERS_MAX;
    for (i = 0; i < n; i++) {
        json_array_append_new(members, memberJson(&v[i], now_ms));
    }
    if (ledger_repl_change_info(a->n->repl, &ci)) {
        change = json_pack("{s:I, s:s, s:s, s:I}", "id", (json_int_t)ci.id,
                           "role", ledger_repl_role_name(ci.role), "step",
                           ci.step, "elapsed_ms", (json_int_t)ci.elapsed_ms);
    }
    o = json_pack(
        "{s:s, s:I, s:I, s:I, s:I, s:s, s:o, s:o, s:o}", "cluster_id",
        st.cluster_id, "leader_id", (json_int_t)st.leader_id, "term",
        (json_int_t)st.term, "commit_index", (json_int_t)st.commit_index,
        "node_id", (json_int_t)a->n->cfg->id, "node_state", st.state,
        "fault_tolerance",
        n > 0 && v[0].view_known ? json_integer(members_fault_tolerance(v, n))
                                 : json_null(),
        "membership_change", change, "members", members);
    /* A restored cluster names the cluster its backup came from. */
    if (o != NULL && ledger_store_get_state(a->n->store, &ss) == 0 &&
        ss.restored_from[0] != '\0') {
        json_object_set_new(o, "restored_from", json_string(ss.restored_from));
    }
    api_reply_json(a, 200, o, NULL);
}

static void clusterForwardCb(void *arg, int status,
                             const struct http_client_response *resp)
{
    struct api_req *a = arg;
    json_t *v;
    if (status != 0 || resp->status != 200) {
        clusterLocal(a); /* The leader's view is best; ours will do. */
        return;
    }
    v = json_loadb(resp->body, resp->body_len, 0, NULL);
    if (v == NULL) {
        clusterLocal(a);
        return;
    }
    api_reply_json(a, 200, v, NULL);
}

/* The leader knows lag and contact: ask it, unless we are it or told not
 * to (?local=1); fall back to our own view. */
void api_cluster(struct api_req *a)
{
    struct ledger_repl_status st;
    char leader[REPL_ADDR_MAX];
    char headers[API_PEER_HEADERS_MAX];
    const char *local = http_request_query_param(a->http, "local");

    ledger_repl_status(a->n->repl, &st);
    if (st.is_leader || a->forwarded || (local && strcmp(local, "0") != 0) ||
        !ledger_repl_leader_api(a->n->repl, leader, sizeof leader)) {
        clusterLocal(a);
        return;
    }
    api_peer_headers(a, headers, sizeof headers);
    if (api_peer_request(a->n, leader, "GET", "/v1/cluster", headers, NULL, 0,
                         CLUSTER_FORWARD_TIMEOUT_MS, clusterForwardCb,
                         a) != 0) {
        clusterLocal(a);
    }
}

/* ---- /health ---------------------------------------------------------- */

static json_t *healthBody(struct api_req *a, const char *status,
                          const char *reason)
{
    struct ledger_repl_status st;
    ledger_repl_status(a->n->repl, &st);
    json_t *o =
        json_pack("{s:s, s:I, s:s, s:I, s:I, s:I, s:I}", "status", status, "id",
                  (json_int_t)a->n->cfg->id, "state", st.state, "leader_id",
                  (json_int_t)st.leader_id, "term", (json_int_t)st.term,
                  "commit_index", (json_int_t)st.commit_index, "applied_index",
                  (json_int_t)st.applied_index);
    if (reason != NULL) {
        json_object_set_new(o, "reason", json_string(reason));
    }
    return o;
}

static void healthUnavailable(struct api_req *a, const char *reason)
{
    api_reply_json(a, 503, healthBody(a, "unavailable", reason),
                   "Retry-After: 1\r\n");
}

static void healthCaughtUp(struct api_req *a)
{
    if (a->timed_out) {
        healthUnavailable(a, "not caught up with the leader's commit index "
                             "within timeout_ms");
        return;
    }
    api_reply_json(a, 200, healthBody(a, "ok", NULL), NULL);
}

void api_health(struct api_req *a)
{
    struct ledger_repl_status st;
    char leader[REPL_ADDR_MAX];
    const char *cu = http_request_query_param(a->http, "caught_up");
    uint64_t timeout = 0;

    if (api_query_u64(a, "timeout_ms", 0, MAX_HEALTH_TIMEOUT_MS, &timeout) !=
        0) {
        return;
    }
    if (a->n->shutting_down) {
        healthUnavailable(a, "shutting down");
        return;
    }
    if (restart_watch_reason(a->n->restart) != NULL) {
        healthUnavailable(a, restart_watch_reason(a->n->restart));
        return;
    }
    if (repair_blocked(a->n) != NULL) {
        /* The store is corrupt, or rebuilt and not yet caught up: reason
         * store_corrupt (CONTRACT.md), and what is going on. */
        json_t *o = healthBody(a, "unavailable", "store_corrupt");
        json_object_set_new(o, "detail", json_string(repair_blocked(a->n)));
        api_reply_json(a, 503, o, "Retry-After: 1\r\n");
        return;
    }
    if (a->n->joining) {
        healthUnavailable(a, "joining the cluster (waiting to be added and "
                             "caught up)");
        return;
    }
    ledger_repl_status(a->n->repl, &st);
    if (!st.is_leader && st.leader_id == 0) {
        healthUnavailable(a, "no leader known");
        return;
    }
    if (!st.is_leader &&
        st.leader_contact_ms > (int64_t)a->n->cfg->election_ms) {
        healthUnavailable(a, "no contact with the leader for over an "
                             "election timeout");
        return;
    }
    if (!st.is_leader &&
        !ledger_repl_leader_api(a->n->repl, leader, sizeof leader)) {
        healthUnavailable(a, "leader's API address unknown");
        return;
    }
    if (cu != NULL && strcmp(cu, "0") != 0 && strcmp(cu, "false") != 0) {
        api_catch_up(a, timeout, healthCaughtUp);
        return;
    }
    api_reply_json(a, 200, healthBody(a, "ok", NULL), NULL);
}

/* ---- /metrics --------------------------------------------------------- */

void api_metrics(struct api_req *a)
{
    static struct member_view v[REPL__MEMBERS_MAX]; /* Loop thread only. */
    struct ledger_repl_status st;
    struct ledger_store_state ss;
    int64_t disk_free;
    int64_t disk_size;
    char *text;
    size_t len = 0;

    ledger_repl_status(a->n->repl, &st);
    if (ledger_store_get_state(a->n->store, &ss) != 0) {
        ss.position = 0;
    }
    members_disk_space(a->n->cfg->data_dir, &disk_free, &disk_size);
    text = metrics_render(&st, ss.position, http_server_inflight(a->n->http),
                          disk_free, disk_size, &len);
    if (text != NULL && st.is_leader) {
        size_t nm =
            members_poll_view(a->n, a->n->applied_poll, v, REPL__MEMBERS_MAX);
        size_t mlen = 0;
        char *more = metrics_render_members(
            v, nm < REPL__MEMBERS_MAX ? nm : REPL__MEMBERS_MAX, &mlen);
        char *all = more != NULL ? realloc(text, len + mlen + 1) : NULL;
        if (all != NULL) {
            memcpy(all + len, more, mlen);
            len += mlen;
            all[len] = '\0';
            text = all;
        }
        free(more);
    }
    if (text != NULL) {
        size_t rlen = 0;
        char *more = roles_metrics_render(a->n, &rlen);
        char *all = more != NULL ? realloc(text, len + rlen + 1) : NULL;
        if (all != NULL) {
            memcpy(all + len, more, rlen);
            len += rlen;
            all[len] = '\0';
            text = all;
        }
        free(more);
    }
    if (text != NULL) {
        size_t more = repair_metrics(a->n, &text, len);
        if (more == 0) {
            free(text);
            text = NULL;
        }
        len = more;
    }
    if (text == NULL) {
        api_reply_error(a, API_E_INTERNAL, "out of memory");
        return;
    }
    http_request_set_data(a->http, NULL);
    api_reply_raw(a, 200, "text/plain; version=0.0.4", text, len, NULL);
    free(text);
}

/* ---- /v1/verify ------------------------------------------------------- */

/* The whole-chain walk takes about a second per million events, too long
 * for the loop (a leader would miss heartbeats): it runs on libuv's
 * threadpool with its own read-only store handle, which sees a consistent
 * snapshot of committed transactions while the loop keeps applying. */
struct verifyWork {
    uv_work_t work;
    struct api_req *a;
    char path[4200];
    struct ledger_verify_result v;
    int rv;
    bool corrupt; /* quick_check or the chain failed */
    char err[256];
};

static void verifyRun(uv_work_t *w)
{
    struct verifyWork *vw = w->data;
    ledger_store *r = NULL;

    vw->rv = ledger_store_open_reader(vw->path, &r, vw->err, sizeof vw->err);
    if (vw->rv != 0) {
        return;
    }
    /* The full check: SQLite's quick_check, then the whole chain. */
    if (ledger_store_quick_check(r) != 0) {
        vw->corrupt = ledger_store_corrupt_seen(r);
        snprintf(vw->err, sizeof vw->err, "%s", ledger_store_errmsg(r));
    }
    vw->rv = ledger_store_verify(r, &vw->v);
    if (vw->rv != 0) {
        vw->corrupt = vw->corrupt || ledger_store_corrupt_seen(r);
        snprintf(vw->err, sizeof vw->err, "%s", ledger_store_errmsg(r));
    } else if (vw->corrupt) {
        vw->v.ok = false;
        snprintf(vw->v.reason, sizeof vw->v.reason, "%s", vw->err);
    } else if (!vw->v.ok) {
        vw->corrupt = true;
    }
    ledger_store_close(r);
}

static void verifyDone(uv_work_t *w, int status)
{
    struct verifyWork *vw = w->data;
    struct api_req *a = vw->a;
    struct ledger_verify_result *v = &vw->v;
    json_t *o;

    if (status == 0 && vw->corrupt) {
        /* Rebuild it (repair.c); this answer still says what was found. */
        repair_verify_failed(a->n, vw->rv != 0 ? vw->err : v->reason);
    }
    if (status != 0 || vw->rv != 0) {
        api_reply_error(a, API_E_STORE_ERROR, "verify: %s",
                        status != 0 ? uv_strerror(status) : vw->err);
        free(vw);
        return;
    }
    o = json_pack("{s:b, s:I, s:o, s:o}", "ok", v->ok, "applied_position",
                  (json_int_t)v->applied_position, "hash", hexJson(v->hash),
                  "first_bad_position",
                  v->ok ? json_null()
                        : json_integer((json_int_t)v->first_bad_position));
    if (!v->ok) {
        json_object_set_new(o, "reason", json_string(v->reason));
    }
    free(vw);
    api_reply_json(a, 200, o, NULL);
}

void api_verify(struct api_req *a)
{
    struct verifyWork *vw = calloc(1, sizeof *vw);
    if (vw == NULL) {
        api_reply_error(a, API_E_OUT_OF_MEMORY, "out of memory");
        return;
    }
    vw->a = a;
    vw->work.data = vw;
    /* The reader sees committed transactions: commit what is applied. */
    ledger_repl_flush(a->n->repl);
    snprintf(vw->path, sizeof vw->path, "%s/ledger.db", a->n->cfg->data_dir);
    if (uv_queue_work(a->n->loop, &vw->work, verifyRun, verifyDone) != 0) {
        free(vw);
        api_reply_error(a, API_E_UNAVAILABLE, "cannot start verify");
    }
}

/* ---- Internal --------------------------------------------------------- */

struct fullPage {
    json_t *arr;
    struct api_page budget;
};

static int collectFull(void *arg, const struct ledger_event *ev)
{
    struct fullPage *p = arg;
    json_array_append_new(p->arr, events_page_json_event(ev));
    return api_page_add(&p->budget, ev);
}

/* The compact form of the page (events_page.h), within the page budget. */
struct packedPage {
    struct events_page_enc enc;
    struct api_page budget;
};

static int packEvent(void *arg, const struct ledger_event *ev)
{
    struct packedPage *p = arg;
    if (events_page_enc_add(&p->enc, ev) != 0) {
        return -1;
    }
    return api_page_add(&p->budget, ev);
}

static void internalEventsPacked(struct api_req *a, uint64_t from,
                                 uint64_t limit)
{
    struct packedPage p;
    struct events_page_enc *enc = &p.enc;
    int rv;

    memset(&p, 0, sizeof p);
    events_page_enc_init(enc);
    rv = ledger_store_read_positions(a->n->store, from, limit, packEvent, &p);
    if (rv == API_PAGE_FULL) {
        rv = 0;
    }
    if (rv == -1) {
        events_page_enc_destroy(enc);
        api_reply_error(a, API_E_OUT_OF_MEMORY, "out of memory");
        return;
    }
    if (rv != 0) {
        events_page_enc_destroy(enc);
        api_reply_store_error(a);
        return;
    }
    api_reply_raw(a, 200, EVENTS_PAGE_COMPACT, enc->sb.data, enc->sb.size,
                  NULL);
    events_page_enc_destroy(enc);
}

void api_internal_events(struct api_req *a)
{
    uint64_t from = 1;
    uint64_t limit = 1000;
    const char *accept = http_request_header(a->http, "Accept");
    struct fullPage p = {NULL, {0}};
    int rv;

    if (api_query_u64(a, "from_position", 1, UINT64_MAX, &from) != 0 ||
        api_query_u64(a, "limit", 1000, MAX_INTERNAL_LIMIT, &limit) != 0) {
        return;
    }
    if (repair_blocked(a->n) != NULL) {
        /* A peer catching up asks another member. */
        api_reply_error(a, API_E_STORE_CORRUPT, "%s", repair_blocked(a->n));
        return;
    }
    if (accept != NULL && strstr(accept, EVENTS_PAGE_COMPACT) != NULL) {
        internalEventsPacked(a, from ? from : 1, limit ? limit : 1);
        return;
    }
    p.arr = json_array();
    rv = ledger_store_read_positions(a->n->store, from ? from : 1,
                                     limit ? limit : 1, collectFull, &p);
    if (rv != 0 && rv != API_PAGE_FULL) {
        json_decref(p.arr);
        api_reply_store_error(a);
        return;
    }
    api_reply_json(a, 200, json_pack("{s:o}", "events", p.arr), NULL);
}

void api_internal_hash(struct api_req *a)
{
    uint64_t pos = 0;
    uint8_t h[LEDGER_HASH_LEN];
    int rv;
    if (api_query_u64(a, "position", 0, UINT64_MAX, &pos) != 0) {
        return;
    }
    rv = ledger_store_hash_at(a->n->store, pos, h);
    if (rv == LEDGER_STORE_ENOTFOUND) {
        api_reply_error(a, API_E_POSITION_NOT_FOUND,
                        "no event at position %llu", (unsigned long long)pos);
        return;
    }
    if (rv != 0) {
        api_reply_store_error(a);
        return;
    }
    api_reply_json(a, 200,
                   json_pack("{s:I, s:o}", "position", (json_int_t)pos, "hash",
                             hexJson(h)),
                   NULL);
}

static void readIndexDone(struct api_req *a)
{
    if (a->timed_out) {
        api_reply_error(a, API_E_NOT_LEADER,
                        "could not confirm leadership: retry");
        return;
    }
    api_reply_json(
        a, 200, json_pack("{s:I}", "index", (json_int_t)a->wait_index), NULL);
}

void api_internal_read_index(struct api_req *a)
{
    struct ledger_repl_status st;
    ledger_repl_status(a->n->repl, &st);
    if (!st.is_leader) {
        api_reply_error(a, API_E_NOT_LEADER, "this node is not the leader");
        return;
    }
    api_catch_up(a, 0, readIndexDone);
}

void api_internal_status(struct api_req *a)
{
    struct ledger_repl_status st;
    struct ledger_store_state ss;
    int64_t disk_free;
    int64_t disk_size;
    json_t *o;

    ledger_repl_status(a->n->repl, &st);
    {
        /* The leader's poll names it: remembered for a spare (peer.c).
         * Only from a node: a spare forwards writes, with the client's
         * token, to the address it names. */
        const char *h = http_request_header(a->http, "X-Ledger-Leader");
        unsigned long long id, term;
        char addr[REPL_ADDR_MAX];
        if (h != NULL &&
            auth_is_node(a->n,
                         http_request_header(a->http, AUTH_PEER_HEADER)) &&
            sscanf(h, "%llu %llu %127s", &id, &term, addr) == 3 && id != 0 &&
            id != a->n->cfg->id) {
            a->n->leader_hint.id = id;
            a->n->leader_hint.term = term;
            a->n->leader_hint.at = uv_now(a->n->loop);
            snprintf(a->n->leader_hint.api, sizeof a->n->leader_hint.api, "%s",
                     addr);
        }
    }
    if (ledger_store_get_state(a->n->store, &ss) != 0) {
        api_reply_store_error(a);
        return;
    }
    o = json_pack(
        "{s:I, s:I, s:s, s:I, s:I, s:I, s:I, s:o, s:s}", "id",
        (json_int_t)a->n->cfg->id, "pid", (json_int_t)getpid(), "state",
        st.state, "applied_index", (json_int_t)st.applied_index, "commit_index",
        (json_int_t)st.commit_index, "store_applied_index",
        (json_int_t)ss.applied_index, "position", (json_int_t)ss.position,
        "head_hash", hexJson(ss.head_hash), "version", LEDGER_VERSION);
    if (members_disk_space(a->n->cfg->data_dir, &disk_free, &disk_size) == 0) {
        json_object_set_new(o, "disk_free_bytes", json_integer(disk_free));
        json_object_set_new(o, "disk_size_bytes", json_integer(disk_size));
    }
    api_reply_json(a, 200, o, NULL);
}
