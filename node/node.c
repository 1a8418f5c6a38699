/* Node lifecycle (see node.h).
 *
 * Start order: store (refuses a newer schema before touching anything),
 * Raft (replays its log into the store; entries the store already holds are
 * skipped), HTTP server last, so nothing is served before the node can
 * answer. Shutdown runs in reverse, each step in the previous one's close
 * callback, and the store closes only after Raft has released it.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "api.h"
#include "auth.h"
#include "backup.h"
#include "catchup.h"
#include "datadir.h"
#include "http/client.h"
#include "log.h"
#include "node.h"
#include "loopwatch.h"
#include "history.h"
#include "members_poll.h"
#include "node_tls.h"
#include "raft_tls.h"
#include "repair.h"
#include "restart.h"
#include "roles.h"
#include "zone.h"
#include "restore.h"

#define LOCK_WAIT_MS 2000 /* For a dying predecessor's data-dir lock. */

static void replLog(void *arg, int level, const char *msg)
{
    int ours = LOG_ERROR;

    (void)arg;
    switch (level) {
    case LEDGER_REPL_DEBUG:
        ours = LOG_DEBUG;
        break;
    case LEDGER_REPL_INFO:
        ours = LOG_INFO;
        break;
    case LEDGER_REPL_WARN:
        ours = LOG_WARN;
        break;
    default:
        break;
    }
    ledger_log(ours, NULL, "%s", msg);
}

static void handleClosed(uv_handle_t *h)
{
    (void)h;
}

static void replClosed(void *arg)
{
    struct ledger_node *n = arg;
    n->repl = NULL;
    raft_tls_free(n->raft_tls); /* Raft closed it. */
    n->raft_tls = NULL;
    http_client_close(n->peers, NULL, NULL);
    n->peers = NULL;
    uv_close((uv_handle_t *)&n->sweep, handleClosed);
    uv_close((uv_handle_t *)&n->shutdown_timer, handleClosed);
    uv_close((uv_handle_t *)&n->sigterm, handleClosed);
    uv_close((uv_handle_t *)&n->sigint, handleClosed);
    uv_close((uv_handle_t *)&n->sighup, handleClosed);
    uv_close((uv_handle_t *)&n->join_timer, handleClosed);
    ledger_log(LOG_INFO, NULL, "raft closed");
}

static void httpClosed(void *arg)
{
    struct ledger_node *n = arg;
    n->http = NULL;
    ledger_log(LOG_INFO, NULL, "http server closed; closing raft");
    ledger_repl_close(n->repl, replClosed, n);
}

static void drainAndClose(struct ledger_node *n)
{
    uv_timer_stop(&n->shutdown_timer);
    uv_timer_stop(&n->join_timer);
    members_poll_close(n->applied_poll);
    n->applied_poll = NULL;
    history_close(n->history);
    n->history = NULL;
    loopwatch_close(n->loopwatch);
    n->loopwatch = NULL;
    restart_watch_close(n->restart);
    n->restart = NULL;
    repair_close(n);
    zone_close(n->zone);
    n->zone = NULL;
    roles_close(n->roles);
    n->roles = NULL;
    api_sweep(n, true); /* answer every waiting reader now */
    http_server_close(n->http, httpClosed, n);
}

static bool handedOver;

static void graceOver(uv_timer_t *t)
{
    drainAndClose(t->data);
}

static void transferDone(void *arg, uint64_t leader)
{
    struct ledger_node *n = arg;
    if (handedOver) {
        return;
    }
    handedOver = true;
    ledger_log(LOG_INFO, NULL, "leadership handed to %llu",
               (unsigned long long)leader);
    /* Followers learn the new leader from its first heartbeat; until then
     * they may still forward writes here. Keep serving (forwarding them
     * on) for a few heartbeats before closing the listener. */
    uv_timer_stop(&n->shutdown_timer);
    uv_timer_start(
        &n->shutdown_timer, graceOver,
        3ull * n->cfg->heartbeat_ms < 200 ? 200 : 3ull * n->cfg->heartbeat_ms,
        0);
}

static void shutdownTimeout(uv_timer_t *t)
{
    struct ledger_node *n = t->data;
    if (handedOver) {
        return;
    }
    handedOver = true;
    ledger_log(LOG_WARN, NULL, "leadership hand-over timed out; closing");
    drainAndClose(n);
}

static void beginShutdown(struct ledger_node *n);

void node_stop(struct ledger_node *n, int exit_code)
{
    if (n->shutting_down) {
        return;
    }
    n->exit_code = exit_code;
    beginShutdown(n);
}

static void onSignal(uv_signal_t *s, int signum)
{
    struct ledger_node *n = s->data;

    if (n->shutting_down) {
        return;
    }
    ledger_log(LOG_INFO, NULL, "%s: shutting down",
               signum == SIGTERM ? "SIGTERM" : "SIGINT");
    beginShutdown(n);
}

/* SIGHUP: reload what can change without a restart. Each reload logs its
 * outcome and keeps the old state when the new one is refused; one
 * failing does not stop the others. */
static void onHangup(uv_signal_t *s, int signum)
{
    struct ledger_node *n = s->data;

    (void)signum;
    if (n->shutting_down) {
        return;
    }
    ledger_log(LOG_INFO, NULL, "SIGHUP: reloading");
    node_tls_reload(n); /* --tls-* certificates (node_tls.c) */
    auth_reload(n);     /* --token-file (auth.c) */
}

/* Leader: hand over first (bounded), then drain and close. */
static void beginShutdown(struct ledger_node *n)
{
    struct ledger_repl_status st;

    n->shutting_down = true;
    uv_signal_stop(&n->sigterm);
    uv_signal_stop(&n->sigint);
    /* SIGHUP stays caught (and ignored) while shutting down: stopping its
     * handler would restore the default action, which kills. */
    ledger_repl_status(n->repl, &st);
    if (st.is_leader &&
        ledger_repl_transfer(n->repl, 0, transferDone, n) == 0) {
        uv_timer_start(&n->shutdown_timer, shutdownTimeout,
                       2ull * n->cfg->election_ms, 0);
        return;
    }
    handedOver = true;
    drainAndClose(n);
}

/* --join: ask the cluster (through any member's API; followers forward to
 * the leader) to add us as a voter. The call returns once the leader has
 * caught us up and promoted us; until then /health answers 503 "joining".
 * Retried every second until it succeeds or we are already a member. */
#define JOIN_TIMEOUT_MS 120000
static void joinTimerCb(uv_timer_t *t);

static void joinCb(void *arg, int status,
                   const struct http_client_response *resp)
{
    struct ledger_node *n = arg;
    if (status == 0 && resp->status == 409 && resp->body_len > 0 &&
        strstr(resp->body, "member_exists") != NULL) {
        /* Added before (maybe as a spare whose promotion failed): ask for
         * the voter role, which answers 200 at once if we have it. */
        n->join_promote = true;
        uv_timer_start(&n->join_timer, joinTimerCb, 0, 0);
        return;
    }
    if (status == 0 && resp->status == 409 && resp->body_len > 0 &&
        strstr(resp->body, "automatic_roles") != NULL) {
        /* A member already, and the leader manages roles: it promotes us
         * while the cluster is below its targets. */
        n->joining = false;
        ledger_log(LOG_INFO, NULL,
                   "joined the cluster through %s (automatic roles)",
                   n->cfg->join);
        return;
    }
    if (status == 0 && resp->status == 404 && n->join_promote) {
        /* Removed while we were promoting: start over with an add. */
        n->join_promote = false;
        uv_timer_start(&n->join_timer, joinTimerCb, 1000, 0);
        return;
    }
    if (status == 0 && resp->status == 409 && resp->body_len > 0 &&
        strstr(resp->body, "id_in_use") != NULL) {
        ledger_log(LOG_ERROR, NULL,
                   "join through %s: id %llu belongs to another member: "
                   "restart with another --id (retrying in 5 s)",
                   n->join_addr, (unsigned long long)n->cfg->id);
        uv_timer_start(&n->join_timer, joinTimerCb, 5000, 0);
        return;
    }
    if (status == 0 && (resp->status == 201 || resp->status == 200)) {
        n->joining = false;
        ledger_log(LOG_INFO, NULL, "joined the cluster through %s",
                   n->join_addr);
        repair_rejoined(n);
        return;
    }
    if (status != 0) {
        ledger_log(LOG_WARN, NULL, "join through %s: %s; retrying",
                   n->join_addr, uv_strerror(status));
    } else {
        ledger_log(LOG_WARN, NULL, "join through %s: HTTP %d %.*s; retrying",
                   n->join_addr, resp->status, (int)resp->body_len, resp->body);
    }
    if (!n->shutting_down) {
        uv_timer_start(&n->join_timer, joinTimerCb, 1000, 0);
    }
}

static void joinTimerCb(uv_timer_t *t)
{
    struct ledger_node *n = t->data;
    char body[512];
    char headers[API_PEER_HEADERS_MAX];
    char path[96];
    int rv;

    if (n->shutting_down) {
        return;
    }
    snprintf(body, sizeof body,
             "{\"id\":%llu,\"raft_addr\":\"%s\",\"api_addr\":\"%s\","
             "\"role\":\"voter\"}",
             (unsigned long long)n->cfg->id, n->cfg->raft_addr,
             n->cfg->api_addr);
    snprintf(headers, sizeof headers,
             "Content-Type: application/json\r\n%s%s%s",
             n->cfg->token ? "Authorization: Bearer " : "",
             n->cfg->token ? n->cfg->token : "", n->cfg->token ? "\r\n" : "");
    if (n->join_promote) {
        snprintf(path, sizeof path, "/v1/cluster/members/%llu/role",
                 (unsigned long long)n->cfg->id);
        snprintf(body, sizeof body, "{\"role\":\"voter\"}");
    } else {
        snprintf(path, sizeof path, "/v1/cluster/members");
    }
    rv = api_peer_request(n, n->join_addr, "POST", path, headers, body,
                          strlen(body), JOIN_TIMEOUT_MS, joinCb, n);
    if (rv != 0) {
        ledger_log(LOG_WARN, NULL, "join through %s: %s; retrying",
                   n->join_addr, uv_strerror(rv));
        uv_timer_start(&n->join_timer, joinTimerCb, 1000, 0);
    }
}

void node_join(struct ledger_node *n, const char *via, bool member)
{
    n->join_addr = via;
    n->joining = true;
    n->join_promote = member;
    uv_timer_start(&n->join_timer, joinTimerCb, 0, 0);
}

static void sweepCb(uv_timer_t *t)
{
    api_sweep(t->data, false);
}

static int makeDir(const char *path, char *err, size_t errlen)
{
    if (mkdir(path, 0755) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "create %.300s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

/* Fail early, and clearly, if nothing can listen on `addr`: raft_start
 * would only say "I/O error". The probe socket is closed at once. */
static int checkListenable(const char *flag, const char *addr, char *err,
                           size_t errlen)
{
    struct sockaddr_in sa;
    char host[64];
    int port;
    int one = 1;
    int fd;
    int rv = 0;

    if (ledger_parse_addr(addr, host, sizeof host, &port) != 0) {
        return 0; /* validated already */
    }
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
        return 0;
    }
    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return 0;
    }
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        snprintf(err, errlen,
                 "%s %s: %s: pick another address or stop the "
                 "process using it",
                 flag, addr, strerror(errno));
        rv = -1;
    }
    close(fd);
    return rv;
}

/* The dir's Raft log and vote belong to one node id (DIR/node-id, written
 * at the first start): refuse another --id. */
static int checkNodeId(const struct ledger_config *cfg, char *err,
                       size_t errlen)
{
    uint64_t id = 0;
    int rv = datadir_node_id(cfg->data_dir, &id, err, errlen);
    if (rv < 0) {
        return -1;
    }
    if (rv == 0) {
        return datadir_set_node_id(cfg->data_dir, cfg->id, err, errlen);
    }
    if (id != cfg->id) {
        snprintf(err, errlen,
                 "data dir %.300s belongs to node %llu, not --id %llu: start "
                 "it as node %llu, or give node %llu a new empty dir",
                 cfg->data_dir, (unsigned long long)id,
                 (unsigned long long)cfg->id, (unsigned long long)id,
                 (unsigned long long)cfg->id);
        return -1;
    }
    return 0;
}

/* The store failed and the data dir has room again (restart.h). */
static void restartInPlace(void *arg)
{
    node_stop(arg, NODE_EXIT_RESTART);
}

/* A start that failed once Raft runs: close Raft (and so the loop's
 * handles) the normal way; node_run returns 1. */
static void abortStart(struct ledger_node *n)
{
    repair_close(n);
    n->exit_code = 1;
    n->shutting_down = true;
    uv_timer_init(n->loop, &n->sweep);
    uv_timer_init(n->loop, &n->shutdown_timer);
    uv_signal_init(n->loop, &n->sigterm);
    uv_signal_init(n->loop, &n->sigint);
    uv_signal_init(n->loop, &n->sighup);
    uv_timer_init(n->loop, &n->join_timer);
    ledger_repl_close(n->repl, replClosed, n);
}

int node_run(struct ledger_config *cfg)
{
    struct ledger_node n;
    struct ledger_repl_config rc;
    struct http_client_options peer_opts;
    uv_loop_t loop;
    char path[4096];
    char err[512];
    int lock_fd;
    int rv;

    memset(&n, 0, sizeof n);
    n.cfg = cfg;
    n.loop = &loop;
    signal(SIGPIPE, SIG_IGN); /* raft writes to dead peers' sockets */

    /* Two ledgerd processes must never share a data dir (Raft's segments
     * and the store would be corrupted); a predecessor killed a moment ago
     * may still be exiting. */
    lock_fd = datadir_lock(cfg->data_dir, LOCK_WAIT_MS, true, err, sizeof err);
    if (lock_fd < 0) {
        fprintf(stderr, "ledgerd: %s\n", err);
        return 1;
    }
    if (checkNodeId(cfg, err, sizeof err) != 0) {
        fprintf(stderr, "ledgerd: %s\n", err);
        close(lock_fd);
        return 1;
    }

    if (checkListenable("--raft-addr", cfg->raft_addr, err, sizeof err) != 0 ||
        checkListenable("--api-addr", cfg->api_addr, err, sizeof err) != 0) {
        fprintf(stderr, "ledgerd: %s\n", err);
        close(lock_fd);
        return 1;
    }
    if (cfg->tls_cert != NULL &&
        node_tls_load(cfg, &n.tls, err, sizeof err) != 0) {
        fprintf(stderr, "ledgerd: %s\n", err);
        close(lock_fd);
        return 1;
    }

    backup_remove_stale(cfg->data_dir);
    if (cfg->restore != NULL && restore_seed(cfg, err, sizeof err) != 0) {
        fprintf(stderr, "ledgerd: %s\n", err);
        close(lock_fd);
        return 1;
    }
    snprintf(path, sizeof path, "%s/ledger.db", cfg->data_dir);
    rv = ledger_store_open(path, &n.store, err, sizeof err);
    if (rv == LEDGER_STORE_ECORRUPT) {
        /* SQLite cannot even read it: move it aside and rebuild. */
        char why[512];
        snprintf(why, sizeof why, "%s", err);
        ledger_log(LOG_ERROR, NULL, "store is corrupt: %s: moving it aside",
                   why);
        if (repair_quarantine_store(cfg->data_dir, why, err, sizeof err) == 0) {
            rv = ledger_store_open(path, &n.store, err, sizeof err);
        }
    }
    if (rv != 0) {
        fprintf(stderr, "ledgerd: %s\n", err);
        http_tls_free(n.tls);
        close(lock_fd);
        return 1;
    }
    snprintf(path, sizeof path, "%s/raft", cfg->data_dir);
    if (makeDir(path, err, sizeof err) != 0) {
        fprintf(stderr, "ledgerd: %s\n", err);
        ledger_store_close(n.store);
        return 1;
    }
    uv_loop_init(&loop);
    /* The store and the Raft log are checked before Raft replays one into
     * the other; what is corrupt is moved aside (repair.h). */
    n.exit_code = 1; /* until the start is done */
    if (repair_at_start(&n, err, sizeof err) != 0) {
        fprintf(stderr, "ledgerd: %s\n", err);
        goto out_early;
    }
    memset(&peer_opts, 0, sizeof peer_opts);
    if (n.tls != NULL) {
        /* Every node-to-node call is https and verifies the peer. */
        peer_opts.ca_file = cfg->tls_ca;
        peer_opts.cert_file = cfg->tls_cert;
        peer_opts.key_file = cfg->tls_key;
        peer_opts.https = 1;
    }
    rv = http_client_create(&loop, &peer_opts, &n.peers);
    if (rv != 0) {
        fprintf(stderr, "ledgerd: http client: %s\n", uv_strerror(rv));
        goto out_early;
    }
    if (repair_raft_rebuild(&n)) {
        rv = repair_leave_voters(&n, err, sizeof err);
        if (rv != 0) {
            if (rv < 0) {
                fprintf(stderr, "ledgerd: %s\n", err);
            }
            n.exit_code = rv < 0 ? 1 : 0;
            goto out_early;
        }
    }

    memset(&rc, 0, sizeof rc);
    rc.id = cfg->id;
    rc.raft_dir = path;
    rc.raft_addr = cfg->raft_addr;
    rc.api_addr = cfg->api_addr;
    /* A node rebuilding its Raft log must not bootstrap a configuration
     * of its own: it learns the cluster's from the leader. */
    rc.bootstrap = cfg->n_bootstrap > 0 && !repair_raft_rebuild(&n)
                       ? cfg->bootstrap
                       : NULL;
    rc.n_bootstrap = rc.bootstrap != NULL ? cfg->n_bootstrap : 0;
    rc.heartbeat_ms = cfg->heartbeat_ms;
    rc.election_ms = cfg->election_ms;
    rc.snapshot_threshold = cfg->snapshot_threshold;
    rc.snapshot_trailing = cfg->snapshot_trailing;
    rc.max_queue_ops = cfg->max_queue_ops;
    rc.max_queue_bytes = cfg->max_queue_bytes;
    node_catchup_source(&n, &rc.catchup); /* pulls as the node: https */
    if (n.tls != NULL) {
        if (raft_tls_create(&loop, n.tls, &n.raft_tls) != 0) {
            fprintf(stderr, "ledgerd: raft TLS transport: out of memory\n");
            goto out_early;
        }
        rc.transport = raft_tls_transport(n.raft_tls);
    }
    rv = ledger_repl_start(&loop, n.store, &rc, replLog, NULL, &n.repl, err,
                           sizeof err);
    if (rv != 0) {
        fprintf(stderr, "ledgerd: %s\n", err);
        goto out_early;
    }
    n.exit_code = 0;
    ledger_repl_on_applied(n.repl, api_on_applied, &n);
    ledger_repl_on_leader(n.repl, api_on_leader, &n);

    rv = http_server_start(&loop, cfg->api_addr, cfg->max_body, api_handle, &n,
                           &n.http, err, sizeof err);
    if (rv != 0) {
        fprintf(stderr, "ledgerd: %s\n", err);
        abortStart(&n);
        goto run;
    }
    if (n.tls != NULL) {
        http_server_set_tls(n.http, n.tls, cfg->tls_client_auth);
    }

    uv_timer_init(&loop, &n.sweep);
    n.sweep.data = &n;
    uv_timer_start(&n.sweep, sweepCb, API_SWEEP_MS, API_SWEEP_MS);
    n.applied_poll = members_poll_start(&n);
    n.zone = zone_start(&n);
    n.roles = roles_start(&n);
    n.history = history_start(&n);
    n.loopwatch = loopwatch_start(&loop, cfg->election_ms / 2);
    n.restart =
        restart_watch_start(&loop, n.repl, cfg->data_dir, restartInPlace, &n);
    uv_timer_init(&loop, &n.shutdown_timer);
    n.shutdown_timer.data = &n;
    uv_signal_init(&loop, &n.sigterm);
    n.sigterm.data = &n;
    uv_signal_start(&n.sigterm, onSignal, SIGTERM);
    uv_signal_init(&loop, &n.sigint);
    n.sigint.data = &n;
    uv_signal_start(&n.sigint, onSignal, SIGINT);
    uv_signal_init(&loop, &n.sighup);
    n.sighup.data = &n;
    uv_signal_start(&n.sighup, onHangup, SIGHUP);
    uv_timer_init(&loop, &n.join_timer);
    n.join_timer.data = &n;
    n.join_addr = cfg->join;
    repair_start(&n);
    if (cfg->join != NULL && !repair_raft_rebuild(&n)) {
        struct ledger_store_state st;
        if (ledger_store_get_state(n.store, &st) == 0 &&
            st.cluster_id[0] != '\0') {
            ledger_log(LOG_INFO, NULL,
                       "--join ignored: %s already holds cluster %s",
                       cfg->data_dir, st.cluster_id);
        } else {
            n.joining = true;
            uv_timer_start(&n.join_timer, joinTimerCb, 0, 0);
        }
    }

    auth_start(&n);
    ledger_log(LOG_INFO, NULL,
               "ledgerd %s node %llu: raft %s, api %s, data %s%s%s%s%s",
               LEDGER_VERSION, (unsigned long long)cfg->id, cfg->raft_addr,
               cfg->api_addr, cfg->data_dir, cfg->zone ? ", zone " : "",
               cfg->zone ? cfg->zone : "", cfg->config_file ? ", config " : "",
               cfg->config_file ? cfg->config_file : "");
    if (n.tls != NULL) {
        char what[256];
        http_tls_describe(n.tls, what, sizeof what);
        ledger_log(LOG_INFO, NULL,
                   "TLS on: mutual TLS on raft %s, HTTPS on %s (client "
                   "certificates: %s); %s",
                   cfg->raft_addr, cfg->api_addr,
                   cfg->tls_client_auth == HTTP_TLS_PEER_REQUIRE ? "required"
                   : cfg->tls_client_auth == HTTP_TLS_PEER_OPTIONAL
                       ? "optional"
                       : "not asked",
                   what);
    } else if (cfg->insecure) {
        ledger_log(LOG_WARN, NULL, "--insecure: no TLS on raft %s and api %s",
                   cfg->raft_addr, cfg->api_addr);
    }

run:
    uv_run(&loop, UV_RUN_DEFAULT);
    signal(SIGHUP, SIG_IGN); /* Its handler is closed: do not die of it. */
    rv = uv_loop_close(&loop);
    if (rv != 0) {
        ledger_log(LOG_WARN, NULL, "loop closed with handles open: %s",
                   uv_strerror(rv));
    }
    ledger_store_close(n.store);
    http_tls_free(n.tls);
    close(lock_fd);
    ledger_log(LOG_INFO, NULL, "stopped");
    return n.exit_code;

out_early:
    /* Nothing but the loop, the store and maybe the peers' client, whose
     * calls (the rebuild's, repair.c) end before the repair state goes. */
    if (n.peers != NULL) {
        http_client_close(n.peers, NULL, NULL);
        n.peers = NULL;
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    repair_close(&n);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    ledger_store_close(n.store);
    http_tls_free(n.tls);
    close(lock_fd);
    return n.exit_code;
}
