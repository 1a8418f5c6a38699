/* Replicas that repair themselves: see repair.h, and docs/architecture.md
 * ("Corrupt stores and Raft logs") for why nothing acknowledged is lost
 * and why a damaged node never counts in a quorum that could lose data.
 *
 * Files in the data dir (they outlive the process):
 *   corrupt-YYYYMMDDTHHMMSS/  what was moved aside (ledger.db*, raft/...);
 *                             their number is ledger_store_repairs_total
 *   store-rebuild             the store was moved aside: serve nothing from
 *                             the new one until it holds the leader's
 *                             commit index
 *   raft-rebuild              Raft's log and snapshots were moved aside
 *                             (metadata1/2, the term and the vote, stay):
 *                             {"reason","role"}: role is what the node was
 *                             before ("voter": it comes back as one)
 *
 * Order at a start (repair_at_start, before Raft): the store first
 * (quick_check, the chain of the last events), then the Raft log
 * (ledger_repl_disk_check with the store's applied index as the least
 * index the log must reach). While running: the background check and GET
 * /v1/verify (quick_check and the whole chain on a read-only handle, on the
 * threadpool), and SQLite's own reports (ledger_store_corrupt_seen) every
 * REPAIR_TICK_MS. A corrupt store found while running stops the node
 * (node_stop hands leadership over first); main() moves the store aside and
 * runs ledgerd again (NODE_EXIT_REPAIR).
 */
#include "repair.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "api.h"
#include "log.h"
#include "node.h"
#include "replication/disk.h"

#define REPAIR__PEERS 16
#define REPAIR__CALL_MS 10000   /* Per call to a peer in the pre-phase. */
#define REPAIR__DEMOTE_MS 30000 /* The role change itself. */

struct repair {
    struct ledger_node *n;
    bool store_rebuild;
    bool raft_rebuild;
    bool promote; /* raft rebuild: it was a voter; become one again */
    bool corrupt; /* found corrupt while running: stopping */
    bool closing;
    unsigned repairs;
    char reason[300];
    uv_timer_t tick;
    uv_timer_t verify_timer;
    bool timers;
    int open_handles; /* closing: timers not yet closed */
    bool verify_running;
    bool target_asked; /* leader's commit index asked, answer pending */
    uint64_t target;   /* rebuild: the leader's commit index, 0: unknown */
    /* Leaving the voters before Raft starts. */
    http_server *pre_http;
    uv_timer_t pre_timer;
    uv_signal_t pre_term;
    bool pre_done;
    bool pre_stop;
    int pre_step; /* 0: ask the role, 1: demote */
    char peers[REPAIR__PEERS][REPL_ADDR_MAX];
    size_t n_peers;
    size_t peer;
    char join_addr[REPL_ADDR_MAX];
};

/* Why main() must move the store aside (NODE_EXIT_REPAIR). */
static char exitReason[300];

/* ---- Files ----------------------------------------------------------------
 */

static void pathOf(const struct ledger_node *n, const char *name, char *out,
                   size_t len)
{
    snprintf(out, len, "%s/%s", n->cfg->data_dir, name);
}

static void syncDir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

static int writeMarker(const char *dir, const char *name, json_t *v, char *err,
                       size_t errlen)
{
    char path[PATH_MAX + 64];
    char tmp[PATH_MAX + 72];
    int rv;

    snprintf(path, sizeof path, "%s/%s", dir, name);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    rv = json_dump_file(v, tmp, JSON_COMPACT);
    json_decref(v);
    if (rv != 0 || rename(tmp, path) != 0) {
        snprintf(err, errlen, "write %s: %s", path, strerror(errno));
        unlink(tmp);
        return -1;
    }
    syncDir(dir);
    return 0;
}

static json_t *readMarker(const char *dir, const char *name)
{
    char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return json_load_file(path, 0, NULL);
}

static void removeMarker(const char *dir, const char *name)
{
    char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    unlink(path);
    syncDir(dir);
}

static unsigned countRepairs(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    unsigned n = 0;
    if (d == NULL) {
        return 0;
    }
    while ((e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, "corrupt-", 8) == 0) {
            n++;
        }
    }
    closedir(d);
    return n;
}

static void nowIso(char *out, size_t len)
{
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* A new DIR/corrupt-TIMESTAMP[-N] into `out`. */
static int makeQuarantine(const char *dir, char *out, size_t len, char *err,
                          size_t errlen)
{
    char stamp[32];
    time_t t = time(NULL);
    struct tm tm;

    gmtime_r(&t, &tm);
    strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%S", &tm);
    for (int i = 0; i < 100; i++) {
        if (i == 0) {
            snprintf(out, len, "%s/corrupt-%s", dir, stamp);
        } else {
            snprintf(out, len, "%s/corrupt-%s-%d", dir, stamp, i);
        }
        if (mkdir(out, 0755) == 0) {
            return 0;
        }
        if (errno != EEXIST) {
            break;
        }
    }
    snprintf(err, errlen, "create %s: %s", out, strerror(errno));
    return -1;
}

/* Move ledger.db and its -wal and -shm into q. */
static int moveStore(const char *dir, const char *q, char *err, size_t errlen)
{
    static const char *const names[] = {"ledger.db", "ledger.db-wal",
                                        "ledger.db-shm"};
    char from[PATH_MAX + 32];
    char to[PATH_MAX + 64];

    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        snprintf(from, sizeof from, "%s/%s", dir, names[i]);
        snprintf(to, sizeof to, "%s/%s", q, names[i]);
        if (rename(from, to) != 0 && errno != ENOENT) {
            snprintf(err, errlen, "move %s aside: %s", from, strerror(errno));
            return -1;
        }
    }
    syncDir(dir);
    syncDir(q);
    return 0;
}

/* Move every file of DIR/raft but the metadata (term and vote) into
 * q/raft. */
static int moveRaft(const char *dir, const char *q, char *err, size_t errlen)
{
    char raft[PATH_MAX + 32];
    char to_dir[PATH_MAX + 64];
    char from[PATH_MAX + 300];
    char to[PATH_MAX + 330];
    struct dirent *e;
    DIR *d;
    int rv = 0;

    snprintf(raft, sizeof raft, "%s/raft", dir);
    snprintf(to_dir, sizeof to_dir, "%s/raft", q);
    if (mkdir(to_dir, 0755) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "create %s: %s", to_dir, strerror(errno));
        return -1;
    }
    d = opendir(raft);
    if (d == NULL) {
        snprintf(err, errlen, "open %s: %s", raft, strerror(errno));
        return -1;
    }
    while (rv == 0 && (e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0 ||
            strncmp(e->d_name, "metadata", 8) == 0) {
            continue;
        }
        snprintf(from, sizeof from, "%s/%s", raft, e->d_name);
        snprintf(to, sizeof to, "%s/%s", to_dir, e->d_name);
        if (rename(from, to) != 0) {
            snprintf(err, errlen, "move %s aside: %s", from, strerror(errno));
            rv = -1;
        }
    }
    closedir(d);
    syncDir(raft);
    syncDir(to_dir);
    return rv;
}

int repair_quarantine_store(const char *data_dir, const char *why, char *err,
                            size_t errlen)
{
    char q[PATH_MAX];
    char at[32];

    if (why != NULL) {
        snprintf(exitReason, sizeof exitReason, "%s", why);
    }

    if (makeQuarantine(data_dir, q, sizeof q, err, errlen) != 0 ||
        moveStore(data_dir, q, err, errlen) != 0) {
        return -1;
    }
    nowIso(at, sizeof at);
    if (writeMarker(data_dir, "store-rebuild",
                    json_pack("{ssssss}", "reason",
                              exitReason[0] ? exitReason : "corrupt", "at", at,
                              "moved_to", q),
                    err, errlen) != 0) {
        return -1;
    }
    ledger_log(LOG_WARN, NULL, "store moved aside to %s (%s): rebuilding it", q,
               exitReason[0] ? exitReason : "corrupt");
    return 0;
}

/* ---- At start --------------------------------------------------------- */

static const char *storeProblem(ledger_store *s, char *buf, size_t len)
{
    struct ledger_verify_result v;
    if (ledger_store_quick_check(s) != 0) {
        snprintf(buf, len, "%s", ledger_store_errmsg(s));
        return buf;
    }
    if (ledger_store_check_tail(s, REPAIR_TAIL_EVENTS, &v) != 0) {
        if (!ledger_store_corrupt_seen(s)) {
            return NULL; /* an I/O problem, not evidence: start */
        }
        snprintf(buf, len, "%s", ledger_store_errmsg(s));
        return buf;
    }
    if (!v.ok) {
        snprintf(buf, len, "hash chain: %s", v.reason);
        return buf;
    }
    return NULL;
}

int repair_at_start(struct ledger_node *n, char *err, size_t errlen)
{
    const char *dir = n->cfg->data_dir;
    struct repair *r = calloc(1, sizeof *r);
    struct ledger_store_state st;
    char path[PATH_MAX + 32];
    char why[300];
    char q[PATH_MAX] = "";
    char at[32];
    json_t *m;
    int rv;

    if (r == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    n->repair = r;
    r->n = n;
    r->repairs = countRepairs(dir);
    m = readMarker(dir, "store-rebuild");
    r->store_rebuild = m != NULL;
    json_decref(m);
    m = readMarker(dir, "raft-rebuild");
    if (m != NULL) {
        r->raft_rebuild = true;
        r->promote =
            json_is_string(json_object_get(m, "role")) &&
            strcmp(json_string_value(json_object_get(m, "role")), "voter") == 0;
        json_decref(m);
    }
    nowIso(at, sizeof at);

    if (!r->store_rebuild && storeProblem(n->store, why, sizeof why)) {
        ledger_log(LOG_ERROR, NULL, "store is corrupt: %s: moving it aside",
                   why);
        ledger_store_close(n->store);
        n->store = NULL;
        if (makeQuarantine(dir, q, sizeof q, err, errlen) != 0 ||
            moveStore(dir, q, err, errlen) != 0 ||
            writeMarker(
                dir, "store-rebuild",
                json_pack("{ssssss}", "reason", why, "at", at, "moved_to", q),
                err, errlen) != 0) {
            return -1;
        }
        pathOf(n, "ledger.db", path, sizeof path);
        if (ledger_store_open(path, &n->store, err, errlen) != 0) {
            return -1;
        }
        r->store_rebuild = true;
        r->repairs++;
        ledger_log(LOG_WARN, NULL,
                   "store moved aside to %s: rebuilding it from the Raft "
                   "log and the other members",
                   q);
    }

    if (!r->raft_rebuild) {
        uint64_t min = 0;
        if (!r->store_rebuild && ledger_store_get_state(n->store, &st) == 0) {
            min = st.applied_index;
        }
        pathOf(n, "raft", path, sizeof path);
        rv = ledger_repl_disk_check(path, min, why, sizeof why);
        if (rv < 0) {
            ledger_log(LOG_WARN, NULL,
                       "could not check the Raft log (%s): starting anyway",
                       why);
        } else if (rv > 0) {
            ledger_log(LOG_ERROR, NULL,
                       "Raft log is damaged: %s: moving it aside (the term "
                       "and vote stay); this node leaves the voters and "
                       "rebuilds",
                       why);
            if (q[0] == '\0') {
                if (makeQuarantine(dir, q, sizeof q, err, errlen) != 0) {
                    return -1;
                }
                r->repairs++;
            }
            if (moveRaft(dir, q, err, errlen) != 0 ||
                writeMarker(dir, "raft-rebuild",
                            json_pack("{sssssssn}", "reason", why, "at", at,
                                      "moved_to", q, "role"),
                            err, errlen) != 0) {
                return -1;
            }
            r->raft_rebuild = true;
        }
    }
    if (r->store_rebuild || r->raft_rebuild) {
        snprintf(r->reason, sizeof r->reason, "%s",
                 r->raft_rebuild ? "rebuilding after a damaged Raft log"
                                 : "rebuilding a corrupt store");
    }
    return 0;
}

bool repair_raft_rebuild(const struct ledger_node *n)
{
    return n->repair != NULL && n->repair->raft_rebuild;
}

/* ---- Leaving the voters before Raft starts ---------------------------- */

static void addPeer(struct repair *r, const char *api)
{
    if (api == NULL || api[0] == '\0' ||
        strcmp(api, r->n->cfg->api_addr) == 0 || r->n_peers == REPAIR__PEERS) {
        return;
    }
    for (size_t i = 0; i < r->n_peers; i++) {
        if (strcmp(r->peers[i], api) == 0) {
            return;
        }
    }
    snprintf(r->peers[r->n_peers++], REPL_ADDR_MAX, "%s", api);
}

static int peerCb(void *arg, uint64_t id, const char *ra, const char *aa)
{
    struct repair *r = arg;
    (void)ra;
    if (id != r->n->cfg->id) {
        addPeer(r, aa);
    }
    return 0;
}

static void preReply(http_request *req, int status, json_t *body)
{
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    http_response_send(req, status, "application/json", text ? text : "{}",
                       text ? strlen(text) : 2,
                       status == 503 ? "Retry-After: 1\r\n" : NULL);
    free(text);
}

/* The API while Raft does not run yet: /health and /metrics say why. */
static void preHandle(void *arg, http_request *req)
{
    struct ledger_node *n = arg;
    struct repair *r = n->repair;
    const char *path = http_request_path(req);

    if (strcmp(path, "/health") == 0) {
        preReply(req, 503,
                 json_pack("{sssIsssssssI}", "status", "unavailable", "id",
                           (json_int_t)n->cfg->id, "state", "unavailable",
                           "reason", "store_corrupt", "detail", r->reason,
                           "leader_id", (json_int_t)0));
        return;
    }
    if (strcmp(path, "/metrics") == 0) {
        char *text = NULL;
        size_t len = repair_metrics(n, &text, 0);
        http_response_send(req, 200, "text/plain; version=0.0.4",
                           text ? text : "", len, NULL);
        free(text);
        return;
    }
    preReply(req, 503,
             json_pack("{s{ssss}}", "error", "code", "store_corrupt", "message",
                       r->reason));
}

static void preNext(struct repair *r, unsigned delay_ms);

static void preAuth(struct repair *r, char *headers, size_t len, bool json_body)
{
    size_t off = 0;

    headers[0] = '\0';
    if (json_body) {
        off = (size_t)snprintf(headers, len,
                               "Content-Type: application/json\r\n");
    }
    /* The node's own credential (role node: admin), as every node-to-node
     * call presents it (peer.c). */
    api_peer_auth_headers(r->n, true, false, headers, len, &off);
}

static void saveRole(struct repair *r, const char *role)
{
    char err[256];
    json_t *m = readMarker(r->n->cfg->data_dir, "raft-rebuild");
    if (m == NULL) {
        m = json_object();
    }
    json_object_set_new(m, "role", json_string(role));
    if (writeMarker(r->n->cfg->data_dir, "raft-rebuild", m, err, sizeof err) !=
        0) {
        ledger_log(LOG_WARN, NULL, "%s", err);
    }
}

static void preFinish(struct repair *r)
{
    r->pre_done = true;
    snprintf(r->join_addr, sizeof r->join_addr, "%s", r->peers[r->peer]);
    uv_timer_stop(&r->pre_timer);
}

static void demoteCb(void *arg, int status,
                     const struct http_client_response *resp)
{
    struct repair *r = arg;
    if (status == 0 && resp->status == 200) {
        ledger_log(LOG_INFO, NULL,
                   "left the voters through %s: rebuilding as a standby",
                   r->peers[r->peer]);
        preFinish(r);
        return;
    }
    ledger_log(
        LOG_WARN, NULL, "leaving the voters through %s: %s%.*s; retrying",
        r->peers[r->peer], status != 0 ? uv_strerror(status) : "",
        status == 0 ? (int)resp->body_len : 0, status == 0 ? resp->body : "");
    r->pre_step = 0;
    r->peer = (r->peer + 1) % r->n_peers;
    preNext(r, 1000);
}

static void roleCb(void *arg, int status,
                   const struct http_client_response *resp)
{
    struct repair *r = arg;
    json_t *v = NULL;
    json_t *m;
    size_t i;
    const char *role = NULL;

    if (status == 0 && resp->status == 200) {
        v = json_loadb(resp->body, resp->body_len, 0, NULL);
    }
    if (v == NULL || json_integer_value(json_object_get(v, "leader_id")) == 0) {
        /* The peer's refusal as it came (e.g. 401 when the node's
         * credential is not in the peer's token file). */
        char why[300];
        if (status != 0) {
            snprintf(why, sizeof why, "%s", uv_strerror(status));
        } else if (resp->status != 200) {
            snprintf(why, sizeof why, "HTTP %d %.*s", resp->status,
                     (int)(resp->body_len < 200 ? resp->body_len : 200),
                     resp->body != NULL ? resp->body : "");
        } else {
            snprintf(why, sizeof why, "%s",
                     v == NULL ? "no answer" : "no leader");
        }
        ledger_log(LOG_WARN, NULL,
                   "rebuild: asking %s for the members: %s; retrying",
                   r->peers[r->peer], why);
        json_decref(v);
        r->peer = (r->peer + 1) % r->n_peers;
        preNext(r, 1000);
        return;
    }
    json_array_foreach(json_object_get(v, "members"), i, m)
    {
        if ((uint64_t)json_integer_value(json_object_get(m, "id")) ==
            r->n->cfg->id) {
            role = json_string_value(json_object_get(m, "role"));
        }
    }
    if (role == NULL) {
        /* Not a member (any more): join from scratch, as a voter. */
        ledger_log(LOG_INFO, NULL,
                   "rebuild: not a member of the cluster: joining it anew");
        r->promote = false;
        saveRole(r, "none");
        json_decref(v);
        preFinish(r);
        return;
    }
    if (strcmp(role, "voter") != 0) {
        ledger_log(LOG_INFO, NULL, "rebuild: already a %s", role);
        json_decref(v);
        preFinish(r);
        return;
    }
    r->promote = true;
    saveRole(r, "voter");
    json_decref(v);
    r->pre_step = 1;
    preNext(r, 0);
}

static void preTimerCb(uv_timer_t *t)
{
    struct repair *r = t->data;
    struct ledger_node *n = r->n;
    char headers[API_PEER_HEADERS_MAX];
    char path[128];
    char body[96];
    int rv;

    if (r->pre_done || r->pre_stop) {
        return;
    }
    if (r->pre_step == 0) {
        preAuth(r, headers, sizeof headers, false);
        rv = api_peer_request(n, r->peers[r->peer], "GET", "/v1/cluster",
                              headers, NULL, 0, REPAIR__CALL_MS, roleCb, r);
    } else {
        preAuth(r, headers, sizeof headers, true);
        snprintf(path, sizeof path, "/v1/cluster/members/%llu/role",
                 (unsigned long long)n->cfg->id);
        snprintf(body, sizeof body, "{\"role\":\"standby\",\"timeout_ms\":%u}",
                 REPAIR__DEMOTE_MS);
        rv = api_peer_request(n, r->peers[r->peer], "POST", path, headers, body,
                              strlen(body), REPAIR__DEMOTE_MS + 5000, demoteCb,
                              r);
    }
    if (rv != 0) {
        r->peer = (r->peer + 1) % r->n_peers;
        preNext(r, 1000);
    }
}

static void preNext(struct repair *r, unsigned delay_ms)
{
    if (!r->pre_done && !r->pre_stop) {
        uv_timer_start(&r->pre_timer, preTimerCb, delay_ms, 0);
    }
}

static void preSignal(uv_signal_t *s, int signum)
{
    struct repair *r = s->data;
    (void)signum;
    ledger_log(LOG_INFO, NULL, "signal while rebuilding: stopping");
    r->pre_stop = true;
    uv_timer_stop(&r->pre_timer);
}

static void preClosed(uv_handle_t *h)
{
    (void)h;
}

static void preHttpClosed(void *arg)
{
    struct repair *r = arg;
    r->pre_http = NULL;
}

int repair_leave_voters(struct ledger_node *n, char *err, size_t errlen)
{
    struct repair *r = n->repair;
    uv_loop_t *loop = n->loop;
    char herr[256];

    ledger_store_list_members(n->store, peerCb, r);
    for (size_t i = 0; i < n->cfg->n_bootstrap; i++) {
        if (n->cfg->bootstrap[i].id != n->cfg->id) {
            addPeer(r, n->cfg->bootstrap[i].api_addr);
        }
    }
    addPeer(r, n->cfg->join);
    if (r->n_peers == 0) {
        snprintf(err, errlen,
                 "the Raft log was moved aside and no other member is "
                 "known to rebuild from: start with --bootstrap (the old "
                 "members) or --join HOST:APORT");
        return -1;
    }
    ledger_log(LOG_WARN, NULL,
               "the Raft log was damaged: leaving the voters through %s "
               "before Raft runs again",
               r->peers[0]);
    if (http_server_start(loop, n->cfg->api_addr, n->cfg->max_body, preHandle,
                          n, &r->pre_http, herr, sizeof herr) != 0) {
        ledger_log(LOG_WARN, NULL, "no API while leaving the voters: %s", herr);
        r->pre_http = NULL;
    } else if (n->tls != NULL) {
        http_server_set_tls(r->pre_http, n->tls, n->cfg->tls_client_auth);
    }
    uv_timer_init(loop, &r->pre_timer);
    r->pre_timer.data = r;
    uv_signal_init(loop, &r->pre_term);
    r->pre_term.data = r;
    uv_signal_start(&r->pre_term, preSignal, SIGTERM);
    preNext(r, 0);
    while (!r->pre_done && !r->pre_stop) {
        uv_run(loop, UV_RUN_ONCE);
    }
    uv_close((uv_handle_t *)&r->pre_timer, preClosed);
    uv_close((uv_handle_t *)&r->pre_term, preClosed);
    if (r->pre_http != NULL) {
        http_server_close(r->pre_http, preHttpClosed, r);
        while (r->pre_http != NULL) {
            uv_run(loop, UV_RUN_ONCE);
        }
    }
    uv_run(loop, UV_RUN_NOWAIT);
    return r->pre_stop ? 1 : 0;
}

/* ---- While running ---------------------------------------------------- */

const char *repair_blocked(const struct ledger_node *n)
{
    const struct repair *r = n->repair;
    if (r == NULL || !(r->corrupt || r->store_rebuild || r->raft_rebuild)) {
        return NULL;
    }
    return r->reason;
}

size_t repair_metrics(const struct ledger_node *n, char **buf, size_t len)
{
    const struct repair *r = n->repair;
    char more[512];
    int k = snprintf(
        more, sizeof more,
        "# HELP ledger_store_corrupt 1 while this node's store (or Raft log) "
        "was found corrupt and is not yet rebuilt.\n"
        "# TYPE ledger_store_corrupt gauge\n"
        "ledger_store_corrupt %d\n"
        "# HELP ledger_store_repairs_total Stores or Raft logs this data dir "
        "moved aside and rebuilt (its corrupt-* dirs).\n"
        "# TYPE ledger_store_repairs_total counter\n"
        "ledger_store_repairs_total %u\n",
        repair_blocked(n) != NULL ? 1 : 0, r != NULL ? r->repairs : 0);
    char *all = realloc(*buf, len + (size_t)k + 1);
    if (all == NULL) {
        return 0;
    }
    memcpy(all + len, more, (size_t)k + 1);
    *buf = all;
    return len + (size_t)k;
}

void repair_trigger(struct ledger_node *n, const char *why)
{
    struct repair *r = n->repair;
    if (r == NULL || r->corrupt || n->shutting_down) {
        return;
    }
    r->corrupt = true;
    snprintf(r->reason, sizeof r->reason, "store is corrupt: %s", why);
    snprintf(exitReason, sizeof exitReason, "%s", why);
    ledger_log(LOG_ERROR, NULL,
               "store is corrupt: %s: serving nothing from it; handing "
               "leadership over if leader, then restarting with it moved "
               "aside",
               why);
    node_stop(n, NODE_EXIT_REPAIR);
}

void repair_verify_failed(struct ledger_node *n, const char *why)
{
    struct repair *r = n->repair;
    if (r != NULL && !r->store_rebuild && !r->raft_rebuild) {
        repair_trigger(n, why);
    }
}

void repair_rejoined(struct ledger_node *n)
{
    struct repair *r = n->repair;
    if (r == NULL || !r->raft_rebuild) {
        return;
    }
    removeMarker(n->cfg->data_dir, "raft-rebuild");
    r->raft_rebuild = false;
    ledger_log(LOG_INFO, NULL,
               "rebuilt after a damaged Raft log: a voter again");
}

/* Background check: quick_check and the whole chain, on a read-only
 * handle, off the loop. */
struct verifyJob {
    uv_work_t work;
    struct repair *r; /* NULL once the repair state closed */
    char path[PATH_MAX + 32];
    bool bad;
    char why[300];
};

static void jobRun(uv_work_t *w)
{
    struct verifyJob *j = w->data;
    struct ledger_verify_result v;
    ledger_store *s = NULL;
    char err[256];

    if (ledger_store_open_reader(j->path, &s, err, sizeof err) != 0) {
        return; /* cannot tell */
    }
    if (ledger_store_quick_check(s) != 0) {
        j->bad = ledger_store_corrupt_seen(s);
        snprintf(j->why, sizeof j->why, "%s", ledger_store_errmsg(s));
    } else if (ledger_store_verify(s, &v) != 0) {
        j->bad = ledger_store_corrupt_seen(s);
        snprintf(j->why, sizeof j->why, "%s", ledger_store_errmsg(s));
    } else if (!v.ok) {
        j->bad = true;
        snprintf(j->why, sizeof j->why, "hash chain: %s", v.reason);
    }
    ledger_store_close(s);
}

static void freeIfClosed(struct repair *r);

static void jobDone(uv_work_t *w, int status)
{
    struct verifyJob *j = w->data;
    struct repair *r = j->r;
    (void)status;
    r->verify_running = false;
    if (!r->closing) {
        if (j->bad) {
            repair_verify_failed(r->n, j->why);
        } else {
            ledger_log(LOG_DEBUG, NULL, "background store check: ok");
        }
    }
    free(j);
    freeIfClosed(r);
}

static void verifyTimerCb(uv_timer_t *t)
{
    struct repair *r = t->data;
    struct ledger_node *n = r->n;
    struct verifyJob *j;

    if (r->verify_running || r->corrupt || r->store_rebuild ||
        r->raft_rebuild || n->shutting_down) {
        return;
    }
    j = calloc(1, sizeof *j);
    if (j == NULL) {
        return;
    }
    j->r = r;
    j->work.data = j;
    pathOf(n, "ledger.db", j->path, sizeof j->path);
    ledger_repl_flush(n->repl); /* the reader sees committed state */
    if (uv_queue_work(n->loop, &j->work, jobRun, jobDone) != 0) {
        free(j);
        return;
    }
    r->verify_running = true;
}

/* The leader's commit index (the rebuild's target). */
static void targetCb(void *arg, int status,
                     const struct http_client_response *resp)
{
    struct repair *r = arg;
    json_t *v;
    r->target_asked = false;
    if (r->closing || status != 0 || resp->status != 200) {
        freeIfClosed(r);
        return;
    }
    v = json_loadb(resp->body, resp->body_len, 0, NULL);
    if (json_is_integer(json_object_get(v, "commit_index"))) {
        uint64_t c =
            (uint64_t)json_integer_value(json_object_get(v, "commit_index"));
        if (c > r->target) {
            r->target = c;
        }
    }
    json_decref(v);
}

/* Rebuilt: this node has applied the leader's commit index as it was
 * after the rebuild began (asked once a leader is known). The applied
 * index is the one the replication layer reports: the store's own lags
 * behind entries that do not touch it (barriers, configuration changes),
 * and during a snapshot catch-up the layer reports what the store holds. */
static bool rebuilt(struct repair *r)
{
    struct ledger_node *n = r->n;
    struct ledger_repl_status st;
    const struct api_leader *l;
    char headers[API_PEER_HEADERS_MAX];

    ledger_repl_status(n->repl, &st);
    if (st.store_failed || st.leader_id == 0 || st.catching_up) {
        return false;
    }
    if (st.is_leader) {
        return st.applied_index >= st.commit_index && st.commit_index > 0;
    }
    if (r->target == 0) {
        l = api_leader(n);
        if (!r->target_asked && l->api[0] != '\0') {
            preAuth(r, headers, sizeof headers, false);
            if (api_peer_request(n, l->api, "GET", "/v1/internal/status",
                                 headers, NULL, 0, 2000, targetCb, r) == 0) {
                r->target_asked = true;
            }
        }
        return false;
    }
    return st.applied_index >= r->target;
}

static void tickCb(uv_timer_t *t)
{
    struct repair *r = t->data;
    struct ledger_node *n = r->n;

    if (r->corrupt || n->shutting_down) {
        return;
    }
    if (ledger_store_corrupt_seen(n->store)) {
        repair_trigger(n, ledger_store_errmsg(n->store));
        return;
    }
    if ((r->store_rebuild || (r->raft_rebuild && !r->promote)) && rebuilt(r)) {
        removeMarker(n->cfg->data_dir, "store-rebuild");
        if (r->raft_rebuild) {
            removeMarker(n->cfg->data_dir, "raft-rebuild");
        }
        r->store_rebuild = false;
        r->raft_rebuild = false;
        ledger_log(LOG_INFO, NULL,
                   "store rebuilt (applied index %llu): serving again",
                   (unsigned long long)r->target);
    }
}

void repair_start(struct ledger_node *n)
{
    struct repair *r = n->repair;
    if (r == NULL) {
        return;
    }
    uv_timer_init(n->loop, &r->tick);
    r->tick.data = r;
    uv_timer_start(&r->tick, tickCb, REPAIR_TICK_MS, REPAIR_TICK_MS);
    uv_timer_init(n->loop, &r->verify_timer);
    r->verify_timer.data = r;
    if (n->cfg->verify_interval_s > 0) {
        uint64_t ms = (uint64_t)n->cfg->verify_interval_s * 1000;
        uv_timer_start(&r->verify_timer, verifyTimerCb, ms, ms);
    }
    r->timers = true;
    if (r->raft_rebuild && r->join_addr[0] != '\0') {
        /* Back as a voter (promote), or in as a new one (no longer a
         * member), through the join flow (node.c): the leader promotes it
         * once it has caught up. */
        node_join(n, r->join_addr, r->promote);
    }
}

static void freeIfClosed(struct repair *r)
{
    if (r->closing && !r->verify_running && !r->target_asked &&
        r->open_handles == 0) {
        free(r);
    }
}

static void handleClosed(uv_handle_t *h)
{
    struct repair *r = h->data;
    r->open_handles--;
    freeIfClosed(r);
}

void repair_close(struct ledger_node *n)
{
    struct repair *r = n->repair;
    if (r == NULL) {
        return;
    }
    n->repair = NULL;
    r->closing = true;
    if (r->timers) {
        r->open_handles = 2;
        uv_close((uv_handle_t *)&r->tick, handleClosed);
        uv_close((uv_handle_t *)&r->verify_timer, handleClosed);
    } else {
        freeIfClosed(r);
    }
}
