/* ledgerctl status, member, leader and lag commands (GET/POST /v1/cluster). */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ctl.h"

static long long intField(const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);
    if (json_is_integer(v)) {
        return (long long)json_integer_value(v);
    }
    if (json_is_real(v)) {
        return (long long)json_real_value(v);
    }
    return 0;
}

static const char *strField(const json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s != NULL ? s : "-";
}

void ctlPrintClusterTable(const json_t *cluster, int members_only)
{
    const json_t *members = json_object_get(cluster, "members");
    size_t i;
    const json_t *m;

    if (!members_only) {
        const json_t *cid = json_object_get(cluster, "cluster_id");
        char idbuf[64] = "-";
        if (json_is_string(cid)) {
            snprintf(idbuf, sizeof idbuf, "%s", json_string_value(cid));
        } else if (json_is_integer(cid)) {
            snprintf(idbuf, sizeof idbuf, "%lld",
                     (long long)json_integer_value(cid));
        }
        printf("cluster %s  leader %lld  term %lld  commit_index %lld\n", idbuf,
               intField(cluster, "leader_id"), intField(cluster, "term"),
               intField(cluster, "commit_index"));
        const json_t *ch = json_object_get(cluster, "membership_change");
        if (json_is_object(ch)) {
            printf("membership change in progress: member %lld -> %s (%s, "
                   "%lld ms)\n",
                   intField(ch, "id"), strField(ch, "role"),
                   strField(ch, "step"), intField(ch, "elapsed_ms"));
        }
        printf("%-4s %-21s %-21s %-8s %-12s %11s %13s %11s %8s\n", "ID",
               "RAFT_ADDR", "API_ADDR", "ROLE", "STATE", "MATCH_INDEX",
               "APPLIED_INDEX", "LAG_ENTRIES", "LAG_MS");
    } else {
        printf("%-4s %-21s %-21s %-8s %-12s\n", "ID", "RAFT_ADDR", "API_ADDR",
               "ROLE", "STATE");
    }
    json_array_foreach(members, i, m)
    {
        if (members_only) {
            printf("%-4lld %-21s %-21s %-8s %-12s\n", intField(m, "id"),
                   strField(m, "raft_addr"), strField(m, "api_addr"),
                   strField(m, "role"), strField(m, "state"));
            continue;
        }
        printf("%-4lld %-21s %-21s %-8s %-12s %11lld %13lld %11lld %8lld\n",
               intField(m, "id"), strField(m, "raft_addr"),
               strField(m, "api_addr"), strField(m, "role"),
               strField(m, "state"), intField(m, "match_index"),
               intField(m, "applied_index"), intField(m, "lag_entries"),
               intField(m, "lag_ms"));
    }
    fflush(stdout);
}

static int noArgs(struct ctl *ctl, const char *cmd, int argc, char **argv)
{
    const char *pos[1];
    int n_pos;
    int rv = ctlParseArgs(ctl, cmd, argc, argv, NULL, pos, 0, &n_pos);
    return rv;
}

static int showCluster(struct ctl *ctl, const char *cmd, int argc, char **argv,
                       int members_only)
{
    json_t *cluster;
    int rv = noArgs(ctl, cmd, argc, argv);
    if (rv != 0) {
        return CTL_ARGS_EXIT(rv);
    }
    rv = ctlApi(ctl, "get cluster status", "GET", "/v1/cluster", NULL, &cluster,
                NULL);
    if (rv != 0) {
        return rv;
    }
    if (ctl->json) {
        ctlPrintJson(cluster);
    } else {
        ctlPrintClusterTable(cluster, members_only);
    }
    json_decref(cluster);
    return CTL_EXIT_OK;
}

int ctlCmdStatus(struct ctl *ctl, int argc, char **argv)
{
    return showCluster(ctl, "status", argc, argv, 0);
}

int ctlCmdMemberList(struct ctl *ctl, int argc, char **argv)
{
    return showCluster(ctl, "member list", argc, argv, 1);
}

static int checkRole(const char *cmd, const char *role)
{
    if (strcmp(role, "voter") != 0 && strcmp(role, "standby") != 0 &&
        strcmp(role, "spare") != 0) {
        return ctlUsage("%s: role must be voter, standby or spare, got '%s'",
                        cmd, role);
    }
    return 0;
}

/* Print the answer of a membership change: JSON, or a line (with the
 * server's detail, such as how long the catch-up took). */
static void reportChange(struct ctl *ctl, json_t *answer, const char *line)
{
    const char *detail = json_string_value(json_object_get(answer, "detail"));
    if (ctl->json) {
        ctlPrintJson(answer);
    } else if (detail != NULL) {
        printf("%s: %s\n", line, detail);
    } else {
        puts(line);
    }
}

/* --catch-up-ms MS of member add/role: the server's deadline for a new
 * voter to catch up (body "timeout_ms"); the client waits 15 s longer. */
static int catchUpFlag(struct ctl *ctl, const struct ctl_flag *flags,
                       json_t *body)
{
    unsigned long long ms = 0;
    const char *v = ctlFlag(flags, "catch-up-ms");
    if (v != NULL) {
        if (ctlParseU64("--catch-up-ms", v, 1, 110000, &ms) != 0) {
            return CTL_EXIT_USAGE;
        }
        json_object_set_new(body, "timeout_ms", json_integer((json_int_t)ms));
    }
    if (ctl->timeout_ms == 0) {
        ctl->timeout_ms =
            ms != 0 ? (unsigned)ms + 15000 : CTL_MEMBERSHIP_TIMEOUT_MS;
    }
    return 0;
}

int ctlCmdMemberAdd(struct ctl *ctl, int argc, char **argv)
{
    struct ctl_flag flags[] = {
        {"role", 1, NULL}, {"catch-up-ms", 1, NULL}, {NULL, 0, NULL}};
    const char *pos[3];
    const char *role;
    unsigned long long id;
    json_t *body;
    json_t *answer;
    char line[256];
    int n_pos;
    int rv = ctlParseArgs(ctl, "member add", argc, argv, flags, pos, 3, &n_pos);
    if (rv != 0) {
        return CTL_ARGS_EXIT(rv);
    }
    if (n_pos != 3) {
        return ctlUsage("member add needs ID RAFT_ADDR API_ADDR");
    }
    if (ctlParseU64("member ID", pos[0], 1, INT64_MAX, &id) != 0) {
        return CTL_EXIT_USAGE;
    }
    role = ctlFlag(flags, "role");
    if (role == NULL) {
        role = "voter";
    }
    if (checkRole("member add", role) != 0) {
        return CTL_EXIT_USAGE;
    }
    body = json_pack("{sIssssss}", "id", (json_int_t)id, "raft_addr", pos[1],
                     "api_addr", pos[2], "role", role);
    /* Adding a voter waits until it has caught up. */
    if (catchUpFlag(ctl, flags, body) != 0) {
        json_decref(body);
        return CTL_EXIT_USAGE;
    }
    rv = ctlApi(ctl, "add member", "POST", "/v1/cluster/members", body, &answer,
                NULL);
    json_decref(body);
    if (rv != 0) {
        return rv;
    }
    snprintf(line, sizeof line, "member %llu added (%s, raft %s, api %s)", id,
             role, pos[1], pos[2]);
    reportChange(ctl, answer, line);
    json_decref(answer);
    return CTL_EXIT_OK;
}

int ctlCmdMemberRemove(struct ctl *ctl, int argc, char **argv)
{
    const char *pos[1];
    unsigned long long id;
    json_t *answer;
    char path[64];
    char line[64];
    int n_pos;
    int rv =
        ctlParseArgs(ctl, "member remove", argc, argv, NULL, pos, 1, &n_pos);
    if (rv != 0) {
        return CTL_ARGS_EXIT(rv);
    }
    if (n_pos != 1) {
        return ctlUsage("member remove needs ID");
    }
    if (ctlParseU64("member ID", pos[0], 1, INT64_MAX, &id) != 0) {
        return CTL_EXIT_USAGE;
    }
    snprintf(path, sizeof path, "/v1/cluster/members/%llu", id);
    rv = ctlApi(ctl, "remove member", "DELETE", path, NULL, &answer, NULL);
    if (rv != 0) {
        return rv;
    }
    snprintf(line, sizeof line, "member %llu removed", id);
    reportChange(ctl, answer, line);
    json_decref(answer);
    return CTL_EXIT_OK;
}

int ctlCmdMemberRole(struct ctl *ctl, int argc, char **argv)
{
    const char *pos[2];
    unsigned long long id;
    json_t *body;
    json_t *answer;
    char path[80];
    char line[96];
    int n_pos;
    struct ctl_flag flags[] = {{"catch-up-ms", 1, NULL}, {NULL, 0, NULL}};
    int rv =
        ctlParseArgs(ctl, "member role", argc, argv, flags, pos, 2, &n_pos);
    if (rv != 0) {
        return CTL_ARGS_EXIT(rv);
    }
    if (n_pos != 2) {
        return ctlUsage("member role needs ID and voter|standby|spare");
    }
    if (ctlParseU64("member ID", pos[0], 1, INT64_MAX, &id) != 0 ||
        checkRole("member role", pos[1]) != 0) {
        return CTL_EXIT_USAGE;
    }
    snprintf(path, sizeof path, "/v1/cluster/members/%llu/role", id);
    body = json_pack("{ss}", "role", pos[1]);
    /* Promoting waits until the member has caught up. */
    if (catchUpFlag(ctl, flags, body) != 0) {
        json_decref(body);
        return CTL_EXIT_USAGE;
    }
    rv = ctlApi(ctl, "change member role", "POST", path, body, &answer, NULL);
    json_decref(body);
    if (rv != 0) {
        return rv;
    }
    snprintf(line, sizeof line, "member %llu is now %s", id, pos[1]);
    reportChange(ctl, answer, line);
    json_decref(answer);
    return CTL_EXIT_OK;
}

int ctlCmdLeaderTransfer(struct ctl *ctl, int argc, char **argv)
{
    const char *pos[1];
    unsigned long long id = 0;
    json_t *body;
    json_t *answer;
    json_t *cluster;
    char line[96];
    int n_pos;
    int rv =
        ctlParseArgs(ctl, "leader transfer", argc, argv, NULL, pos, 1, &n_pos);
    if (rv != 0) {
        return CTL_ARGS_EXIT(rv);
    }
    if (n_pos == 1 &&
        ctlParseU64("leader ID", pos[0], 0, INT64_MAX, &id) != 0) {
        return CTL_EXIT_USAGE;
    }
    body = json_pack("{sI}", "id", (json_int_t)id);
    rv = ctlApi(ctl, "transfer leadership", "POST", "/v1/cluster/leader", body,
                &answer, NULL);
    json_decref(body);
    if (rv != 0) {
        return rv;
    }
    if (ctl->json) {
        ctlPrintJson(answer);
        json_decref(answer);
        return CTL_EXIT_OK;
    }
    json_decref(answer);
    /* Report who leads now (best effort: the answer shape is free). */
    if (ctlApi(ctl, "get cluster status", "GET", "/v1/cluster", NULL, &cluster,
               NULL) == 0) {
        snprintf(line, sizeof line,
                 "leadership transferred; leader is now %lld",
                 intField(cluster, "leader_id"));
        json_decref(cluster);
    } else {
        snprintf(line, sizeof line, "leadership transfer requested");
    }
    puts(line);
    return CTL_EXIT_OK;
}

static volatile sig_atomic_t lagStop;

static void lagOnSignal(int sig)
{
    (void)sig;
    lagStop = 1;
}

int ctlCmdLag(struct ctl *ctl, int argc, char **argv)
{
    struct ctl_flag flags[] = {{"watch", 0, NULL},
                               {"max-entries", 1, NULL},
                               {"max-ms", 1, NULL},
                               {"interval-ms", 1, NULL},
                               {NULL, 0, NULL}};
    const char *pos[1];
    unsigned long long max_entries = 0;
    unsigned long long max_ms = 0;
    unsigned long long interval = 1000;
    int has_entries;
    int has_ms;
    int watch;
    int ever_over = 0;
    int n_pos;
    int rv = ctlParseArgs(ctl, "lag", argc, argv, flags, pos, 0, &n_pos);
    if (rv != 0) {
        return CTL_ARGS_EXIT(rv);
    }
    has_entries = ctlFlag(flags, "max-entries") != NULL;
    has_ms = ctlFlag(flags, "max-ms") != NULL;
    watch = ctlFlag(flags, "watch") != NULL;
    if ((has_entries &&
         ctlParseU64("--max-entries", ctlFlag(flags, "max-entries"), 0,
                     INT64_MAX, &max_entries) != 0) ||
        (has_ms && ctlParseU64("--max-ms", ctlFlag(flags, "max-ms"), 0,
                               INT64_MAX, &max_ms) != 0) ||
        (ctlFlag(flags, "interval-ms") != NULL &&
         ctlParseU64("--interval-ms", ctlFlag(flags, "interval-ms"), 10,
                     3600000, &interval) != 0)) {
        return CTL_EXIT_USAGE;
    }
    if (watch) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = lagOnSignal;
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGTERM, &sa, NULL);
    }
    for (;;) {
        json_t *cluster;
        json_t *m;
        size_t i;
        char over[512] = "";
        size_t used = 0;
        rv = ctlApi(ctl, "get cluster lag", "GET", "/v1/cluster", NULL,
                    &cluster, NULL);
        if (rv != 0) {
            return rv;
        }
        if (ctl->json) {
            json_t *out =
                json_pack("{sIsO}", "leader_id",
                          (json_int_t)intField(cluster, "leader_id"), "members",
                          json_object_get(cluster, "members"));
            ctlPrintJson(out);
            json_decref(out);
        } else {
            if (watch && isatty(STDOUT_FILENO)) {
                fputs("\033[H\033[2J", stdout); /* refresh in place */
            }
            printf("leader %lld  term %lld  commit_index %lld\n",
                   intField(cluster, "leader_id"), intField(cluster, "term"),
                   intField(cluster, "commit_index"));
            printf("%-4s %-21s %-8s %-12s %11s %13s %11s %8s %15s\n", "ID",
                   "API_ADDR", "ROLE", "STATE", "MATCH_INDEX", "APPLIED_INDEX",
                   "LAG_ENTRIES", "LAG_MS", "LAST_CONTACT_MS");
        }
        json_array_foreach(json_object_get(cluster, "members"), i, m)
        {
            long long le = intField(m, "lag_entries");
            long long lm = intField(m, "lag_ms");
            if (!ctl->json) {
                printf("%-4lld %-21s %-8s %-12s %11lld %13lld %11lld %8lld "
                       "%15lld\n",
                       intField(m, "id"), strField(m, "api_addr"),
                       strField(m, "role"), strField(m, "state"),
                       intField(m, "match_index"), intField(m, "applied_index"),
                       le, lm, intField(m, "last_contact_ms"));
            }
            if ((has_entries && le > (long long)max_entries) ||
                (has_ms && lm > (long long)max_ms)) {
                int n =
                    snprintf(over + used, sizeof over - used,
                             "%snode %lld lags %lld entries / %lld ms",
                             used > 0 ? ", " : "", intField(m, "id"), le, lm);
                if (n > 0 && (size_t)n < sizeof over - used) {
                    used += (size_t)n;
                }
            }
        }
        fflush(stdout);
        json_decref(cluster);
        if (!watch) {
            if (used > 0) {
                char bound[96];
                int k = 0;
                if (has_entries) {
                    k = snprintf(bound, sizeof bound, "--max-entries %llu",
                                 max_entries);
                }
                if (has_ms) {
                    snprintf(bound + k, sizeof bound - (size_t)k,
                             "%s--max-ms %llu", k > 0 ? ", " : "", max_ms);
                }
                return ctlFail("lag over the bound (%s): %s", bound, over);
            }
            return CTL_EXIT_OK;
        }
        if (used > 0) {
            fprintf(stderr, "ledgerctl: lag over the bound: %s\n", over);
            ever_over = 1;
        }
        for (unsigned long long slept = 0; slept < interval && !lagStop;
             slept += 50) {
            struct timespec ts = {0, 50 * 1000000L};
            nanosleep(&ts, NULL);
        }
        if (lagStop) {
            /* --watch: exit 1 if any sample was over a bound. */
            return ever_over ? CTL_EXIT_FAIL : CTL_EXIT_OK;
        }
        if (!ctl->json && !isatty(STDOUT_FILENO)) {
            putchar('\n');
        }
    }
}
