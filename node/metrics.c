/* Metrics registry (see metrics.h). Fixed-size tables: a route/method/status
 * triple that does not fit is counted under route="other", never dropped. */
#include "metrics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define METRICS__MAX_SERIES 256
#define METRICS__MAX_REASONS 16
#define METRICS__MAX_TOKEN_SERIES 512 /* token x reason series. */

static const double BUCKETS[] = {0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05,
                                 0.1,    0.25,  0.5,   1,     2.5,  5,     10};
#define N_BUCKETS (sizeof BUCKETS / sizeof BUCKETS[0])

static struct {
    const char *route;
    const char *method;
    int status;
    uint64_t count;
} series[METRICS__MAX_SERIES];
static size_t nSeries;

static uint64_t bucketCounts[N_BUCKETS + 1];
static double latencySum;
static uint64_t latencyCount;
static uint64_t eventsAppended;
static uint64_t forwarded;
static uint64_t forwardLostTimeout; /* Forwards the leader left unanswered. */
static uint64_t
    forwardLostLeaderChange; /* Forwards overtaken by a new leader. */
static struct {
    const char *reason;
    uint64_t count;
} rejected[METRICS__MAX_REASONS];
/* Per token NAME and reason; past the table, counted as token "other". */
static struct {
    char token[65];
    const char *reason;
    uint64_t count;
} tokenRejected[METRICS__MAX_TOKEN_SERIES];
static size_t nTokenRejected;

/* A literal for the method: series keep pointers, and the request's own
 * strings die with it. */
static const char *methodLiteral(const char *m)
{
    static const char *known[] = {"GET",  "POST",  "PUT",    "DELETE",
                                  "HEAD", "PATCH", "OPTIONS"};
    size_t i;
    for (i = 0; i < sizeof known / sizeof known[0]; i++) {
        if (strcmp(m, known[i]) == 0) {
            return known[i];
        }
    }
    return "other";
}

void metrics_request(const char *route, const char *method, int status)
{
    size_t i;

    method = methodLiteral(method);
    for (i = 0; i < nSeries; i++) {
        if (series[i].route == route && series[i].status == status &&
            series[i].method == method) {
            series[i].count++;
            return;
        }
    }
    if (nSeries == METRICS__MAX_SERIES - 1) {
        route = "other";
        method = "any";
        status = 0;
        for (i = 0; i < nSeries; i++) {
            if (series[i].route == route) {
                series[i].count++;
                return;
            }
        }
    }
    series[nSeries].route = route;
    series[nSeries].method = method;
    series[nSeries].status = status;
    series[nSeries].count = 1;
    nSeries++;
}

void metrics_append_latency(double seconds, size_t events)
{
    size_t i;
    for (i = 0; i < N_BUCKETS && seconds > BUCKETS[i]; i++) {
    }
    bucketCounts[i]++;
    latencySum += seconds;
    latencyCount++;
    eventsAppended += events;
}

uint64_t metrics_appends_total(void)
{
    return latencyCount;
}

uint64_t metrics_events_total(void)
{
    return eventsAppended;
}

void metrics_forwarded(void)
{
    forwarded++;
}

void metrics_forward_lost(const char *reason)
{
    if (strcmp(reason, "timeout") == 0) {
        forwardLostTimeout++;
    } else {
        forwardLostLeaderChange++;
    }
}

static const unsigned STALL_BUCKETS_MS[] = {50, 100, 250, 500, 1000};
#define N_STALL_BUCKETS (sizeof STALL_BUCKETS_MS / sizeof STALL_BUCKETS_MS[0])
static uint64_t stallCounts[N_STALL_BUCKETS];
static uint64_t stallMaxMs;

void metrics_loop_stall(uint64_t ms)
{
    size_t i;
    for (i = 0; i < N_STALL_BUCKETS; i++) {
        if (ms >= STALL_BUCKETS_MS[i]) {
            stallCounts[i]++;
        }
    }
    if (ms > stallMaxMs) {
        stallMaxMs = ms;
    }
}

static uint64_t peerRejected;

void metrics_peer_rejected(void)
{
    peerRejected++;
}

void metrics_rejected(const char *reason)
{
    size_t i;
    for (i = 0; i < METRICS__MAX_REASONS; i++) {
        if (rejected[i].reason == NULL) {
            rejected[i].reason = reason;
        }
        if (rejected[i].reason == reason) {
            rejected[i].count++;
            return;
        }
    }
}

void metrics_token_rejected(const char *name, const char *reason)
{
    size_t i;

    for (;;) {
        for (i = 0; i < nTokenRejected; i++) {
            if (tokenRejected[i].reason == reason &&
                strcmp(tokenRejected[i].token, name) == 0) {
                tokenRejected[i].count++;
                return;
            }
        }
        if (nTokenRejected < METRICS__MAX_TOKEN_SERIES - 2 ||
            strcmp(name, "other") == 0) {
            break;
        }
        name = "other"; /* Table full: lump the rest together. */
    }
    snprintf(tokenRejected[nTokenRejected].token,
             sizeof tokenRejected[nTokenRejected].token, "%s", name);
    tokenRejected[nTokenRejected].reason = reason;
    tokenRejected[nTokenRejected].count = 1;
    nTokenRejected++;
}

struct buf {
    char *p;
    size_t len;
    size_t cap;
    int oom;
};

static void bputf(struct buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#include <stdarg.h>
static void bputf(struct buf *b, const char *fmt, ...)
{
    va_list ap;
    int n;
    if (b->oom) {
        return;
    }
    for (;;) {
        va_start(ap, fmt);
        n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n >= 0 && (size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        char *np = realloc(b->p, b->cap * 2 + (size_t)n);
        if (np == NULL) {
            b->oom = 1;
            return;
        }
        b->p = np;
        b->cap = b->cap * 2 + (size_t)n;
    }
}

char *metrics_render(const struct ledger_repl_status *st, uint64_t position,
                     size_t inflight_http, int64_t disk_free, int64_t disk_size,
                     size_t *len)
{
    struct buf b = {malloc(8192), 0, 8192, 0};
    uint64_t cum = 0;
    size_t i;

    if (b.p == NULL) {
        return NULL;
    }
    bputf(&b, "# HELP ledger_http_requests_total HTTP requests by route, "
              "method and status.\n# TYPE ledger_http_requests_total "
              "counter\n");
    for (i = 0; i < nSeries; i++) {
        bputf(&b,
              "ledger_http_requests_total{route=\"%s\",method=\"%s\","
              "status=\"%d\"} %llu\n",
              series[i].route, series[i].method, series[i].status,
              (unsigned long long)series[i].count);
    }
    bputf(&b, "# HELP ledger_append_latency_seconds Time from receiving an "
              "append to answering it (leader).\n# TYPE "
              "ledger_append_latency_seconds histogram\n");
    for (i = 0; i < N_BUCKETS; i++) {
        cum += bucketCounts[i];
        bputf(&b, "ledger_append_latency_seconds_bucket{le=\"%g\"} %llu\n",
              BUCKETS[i], (unsigned long long)cum);
    }
    cum += bucketCounts[N_BUCKETS];
    bputf(&b, "ledger_append_latency_seconds_bucket{le=\"+Inf\"} %llu\n",
          (unsigned long long)cum);
    bputf(&b, "ledger_append_latency_seconds_sum %.6f\n", latencySum);
    bputf(&b, "ledger_append_latency_seconds_count %llu\n",
          (unsigned long long)latencyCount);
    bputf(&b,
          "# HELP ledger_events_appended_total Events appended through this "
          "node as leader.\n# TYPE ledger_events_appended_total counter\n"
          "ledger_events_appended_total %llu\n",
          (unsigned long long)eventsAppended);
    bputf(&b,
          "# HELP ledger_forwarded_total Requests forwarded to the leader.\n"
          "# TYPE ledger_forwarded_total counter\nledger_forwarded_total "
          "%llu\n",
          (unsigned long long)forwarded);
    bputf(&b,
          "# HELP ledger_forward_abandoned_total Forwarded requests given up "
          "on before the leader answered (then sent again when safe, else "
          "answered outcome_unknown).\n"
          "# TYPE ledger_forward_abandoned_total counter\n"
          "ledger_forward_abandoned_total{reason=\"leader_change\"} %llu\n"
          "ledger_forward_abandoned_total{reason=\"timeout\"} %llu\n",
          (unsigned long long)forwardLostLeaderChange,
          (unsigned long long)forwardLostTimeout);
    bputf(&b, "# HELP ledger_rejected_total Requests refused by "
              "backpressure or state.\n# TYPE ledger_rejected_total "
              "counter\n");
    for (i = 0; i < METRICS__MAX_REASONS && rejected[i].reason; i++) {
        bputf(&b, "ledger_rejected_total{reason=\"%s\"} %llu\n",
              rejected[i].reason, (unsigned long long)rejected[i].count);
    }
    bputf(&b, "# HELP ledger_requests_rejected_total Requests refused for "
              "their token, by token name and reason (forbidden: role too "
              "low; rate_limited: over its rate).\n# TYPE "
              "ledger_requests_rejected_total counter\n");
    for (i = 0; i < nTokenRejected; i++) {
        bputf(&b,
              "ledger_requests_rejected_total{token=\"%s\",reason=\"%s\"} "
              "%llu\n",
              tokenRejected[i].token, tokenRejected[i].reason,
              (unsigned long long)tokenRejected[i].count);
    }
    bputf(&b,
          "# HELP ledger_raft_term Current Raft term.\n# TYPE "
          "ledger_raft_term gauge\nledger_raft_term %llu\n",
          (unsigned long long)st->term);
    bputf(&b,
          "# HELP ledger_raft_commit_index Raft commit index.\n# TYPE "
          "ledger_raft_commit_index gauge\nledger_raft_commit_index %llu\n",
          (unsigned long long)st->commit_index);
    bputf(&b,
          "# HELP ledger_raft_applied_index Raft index applied to the "
          "store.\n# TYPE ledger_raft_applied_index gauge\n"
          "ledger_raft_applied_index %llu\n",
          (unsigned long long)st->applied_index);
    bputf(&b,
          "# HELP ledger_raft_last_index Last index in the local Raft log.\n"
          "# TYPE ledger_raft_last_index gauge\nledger_raft_last_index "
          "%llu\n",
          (unsigned long long)st->last_index);
    bputf(&b,
          "# HELP ledger_raft_leader_changes_total Leader changes seen.\n"
          "# TYPE ledger_raft_leader_changes_total counter\n"
          "ledger_raft_leader_changes_total %llu\n",
          (unsigned long long)st->leader_changes);
    bputf(&b,
          "# HELP ledger_raft_is_leader 1 when this node is the leader.\n"
          "# TYPE ledger_raft_is_leader gauge\nledger_raft_is_leader %d\n",
          st->is_leader ? 1 : 0);
    bputf(&b,
          "# HELP ledger_store_position Last event position in the local "
          "store.\n# TYPE ledger_store_position gauge\n"
          "ledger_store_position %llu\n",
          (unsigned long long)position);
    bputf(&b,
          "# HELP ledger_store_failed 1 when the store failed to apply or "
          "commit (data dir full?) and the node serves nothing until it "
          "restarts.\n# TYPE ledger_store_failed gauge\n"
          "ledger_store_failed %d\n",
          st->store_failed ? 1 : 0);
    bputf(&b,
          "# HELP ledger_http_inflight Requests received and not yet "
          "answered.\n# TYPE ledger_http_inflight gauge\n"
          "ledger_http_inflight %zu\n",
          inflight_http);
    bputf(&b, "# HELP ledger_loop_stalls_total Event-loop stalls at least "
              "this long (le: seconds).\n# TYPE ledger_loop_stalls_total "
              "counter\n");
    for (i = 0; i < N_STALL_BUCKETS; i++) {
        bputf(&b, "ledger_loop_stalls_total{over=\"%g\"} %llu\n",
              STALL_BUCKETS_MS[i] / 1000.0, (unsigned long long)stallCounts[i]);
    }
    bputf(&b,
          "# HELP ledger_loop_stall_max_seconds Longest event-loop stall "
          "since start.\n# TYPE ledger_loop_stall_max_seconds gauge\n"
          "ledger_loop_stall_max_seconds %.3f\n",
          stallMaxMs / 1000.0);
    if (disk_free >= 0 && disk_size >= 0) {
        bputf(&b,
              "# HELP ledger_disk_free_bytes Bytes free for the data dir "
              "(available to ledgerd's user).\n"
              "# TYPE ledger_disk_free_bytes gauge\n"
              "ledger_disk_free_bytes %lld\n"
              "# HELP ledger_disk_size_bytes Size of the data dir's file "
              "system.\n# TYPE ledger_disk_size_bytes gauge\n"
              "ledger_disk_size_bytes %lld\n",
              (long long)disk_free, (long long)disk_size);
    }
    bputf(&b,
          "# HELP ledger_build_info The running version (value 1).\n"
          "# TYPE ledger_build_info gauge\n"
          "ledger_build_info{version=\"%s\"} 1\n",
          LEDGER_VERSION);
    bputf(&b,
          "# HELP ledger_peer_rejected_total Connections refused on the "
          "Raft port (TLS or identity checks).\n# TYPE "
          "ledger_peer_rejected_total counter\nledger_peer_rejected_total "
          "%llu\n",
          (unsigned long long)peerRejected);
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    *len = b.len;
    return b.p;
}

/* Per-member replication gauges, as the leader sees them (a follower knows
 * only itself and renders nothing here), and the cluster's fault
 * tolerance. A value that is unknown (a member never heard from) has no
 * sample: Prometheus' convention for "absent", rather than a -1 a query
 * would have to know about. */
char *metrics_render_members(const struct member_view *v, size_t n, size_t *len)
{
    enum { MATCH, APPLIED, LAG_ENTRIES, LAG_S, CONTACT_S, REACHABLE, N_G };
    static const struct {
        const char *name;
        const char *help;
    } G[N_G] = {
        [MATCH] = {"ledger_member_match_index",
                   "Last log index known replicated on the member."},
        [APPLIED] = {"ledger_member_applied_index",
                     "Last index the member applied."},
        [LAG_ENTRIES] = {"ledger_member_lag_entries",
                         "Entries the member lacks."},
        [LAG_S] = {"ledger_member_lag_seconds",
                   "Age of the oldest entry the member lacks."},
        [CONTACT_S] = {"ledger_member_last_contact_seconds",
                       "Time since the member last answered the leader "
                       "(no sample: never)."},
        [REACHABLE] = {"ledger_member_reachable",
                       "1 unless the member is unreachable."},
    };
    struct buf b = {malloc(4096), 0, 4096, 0};
    size_t voters = 0;
    size_t g;
    size_t i;

    if (b.p == NULL) {
        return NULL;
    }
    for (g = 0; g < N_G; g++) {
        bputf(&b, "# HELP %s %s\n# TYPE %s gauge\n", G[g].name, G[g].help,
              G[g].name);
        for (i = 0; i < n; i++) {
            const struct ledger_repl_member_info *m = &v[i].r;
            char labels[96];
            snprintf(labels, sizeof labels, "{id=\"%llu\",role=\"%s\"}",
                     (unsigned long long)m->id, ledger_repl_role_name(m->role));
            switch (g) {
            case MATCH:
                bputf(&b, "%s%s %llu\n", G[g].name, labels,
                      (unsigned long long)m->match_index);
                break;
            case APPLIED:
                bputf(&b, "%s%s %llu\n", G[g].name, labels,
                      (unsigned long long)m->applied_index);
                break;
            case LAG_ENTRIES:
                bputf(&b, "%s%s %llu\n", G[g].name, labels,
                      (unsigned long long)m->lag_entries);
                break;
            case LAG_S:
                bputf(&b, "%s%s %.3f\n", G[g].name, labels,
                      (double)m->lag_ms / 1000.0);
                break;
            case CONTACT_S:
                if (m->last_contact_ms >= 0) {
                    bputf(&b, "%s%s %.3f\n", G[g].name, labels,
                          (double)m->last_contact_ms / 1000.0);
                }
                break;
            default:
                bputf(&b, "%s%s %d\n", G[g].name, labels,
                      v[i].reachable ? 1 : 0);
                break;
            }
        }
    }
    for (i = 0; i < n; i++) {
        voters += v[i].r.role == REPL_ROLE_VOTER;
    }
    bputf(&b,
          "# HELP ledger_cluster_voters Voters in the configuration.\n"
          "# TYPE ledger_cluster_voters gauge\nledger_cluster_voters %zu\n",
          voters);
    bputf(&b,
          "# HELP ledger_cluster_fault_tolerance Further voters the cluster "
          "can lose and keep a quorum (reachable voters minus a majority "
          "of the voters, at least 0).\n"
          "# TYPE ledger_cluster_fault_tolerance gauge\n"
          "ledger_cluster_fault_tolerance %d\n",
          members_fault_tolerance(v, n));
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    *len = b.len;
    return b.p;
}
