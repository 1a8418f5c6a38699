/* ledgerctl restore FILE --dir DIR [--nodes 3] [--raft-port 7001]
 *                   [--api-port 8001] [--wait-s 120]
 *
 * A NEW local cluster from a backup (docs/operations.md, "Restore"), laid
 * out like `ledgerctl cluster up` lays out its clusters (cluster.json,
 * nodeN/, nodeN.log, nodeN.pid), so `cluster down` and `cluster up`
 * manage it afterwards. The steps are those of a real deployment:
 *   1. refuse, changing nothing: a DIR that is not empty (or where a node
 *      runs), a backup that does not verify (`ledgerd --verify-backup`:
 *      checksum, stamps, chain) or comes from a newer schema;
 *   2. node 1 starts with `--restore FILE --bootstrap "1=..."`: it seeds its
 *      store from the backup (every event and hash as they were), starts a
 *      new cluster alone, and its first leader picks a new cluster id (the
 *      old one is kept as restored_from);
 *   3. nodes 2..N start with `--join` node 1: each is added as a voter once
 *      it has copied the events (snapshot catch-up), one after the other.
 * Appends then continue from the backup's position. If any step fails,
 * the nodes started here are stopped and what was created in DIR removed.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ctl.h"
#include "procs.h"

#define RESTORE__HOST "127.0.0.1"
#define RESTORE__MAX_NODES 64
#define RESTORE__WAIT_S 120 /* Default bound on each wait. */
#define RESTORE__POLL_MS 200

struct rnode {
    unsigned id;
    pid_t pid; /* 0: not running (or reaped). */
    char api[64];
    char raft[64];
    char data_dir[PATH_MAX];
    char log_path[PATH_MAX];
    char pid_path[PATH_MAX];
};

struct restore {
    struct ctl *ctl;
    const char *file;
    const char *dir;
    char ledgerd[PATH_MAX];
    unsigned nodes;
    unsigned raft_port;
    unsigned api_port;
    unsigned wait_s;
    int created_dir; /* DIR did not exist: remove it on failure. */
    struct rnode *n;
};

/* ---- DIR ------------------------------------------------------------------
 */

/* 1: DIR exists and has entries; 0: empty or absent; -1: not a dir. */
static int dirState(const char *dir)
{
    struct stat st;
    DIR *d;
    struct dirent *e;
    int has = 0;
    if (stat(dir, &st) != 0) {
        return 0;
    }
    if (!S_ISDIR(st.st_mode)) {
        return -1;
    }
    d = opendir(dir);
    if (d == NULL) {
        return -1;
    }
    while (!has && (e = readdir(d)) != NULL) {
        has = strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    }
    closedir(d);
    return has;
}

static int removeOne(const char *path, const struct stat *st, int flag,
                     struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* Undo what restore created in DIR (it was empty or absent). */
static void removeCreated(struct restore *r)
{
    char path[PATH_MAX + 32];
    for (unsigned i = 0; i < r->nodes; i++) {
        nftw(r->n[i].data_dir, removeOne, 16, FTW_DEPTH | FTW_PHYS);
        unlink(r->n[i].log_path);
        unlink(r->n[i].pid_path);
    }
    snprintf(path, sizeof path, "%s/cluster.json", r->dir);
    unlink(path);
    if (r->created_dir) {
        rmdir(r->dir);
    }
}

/* cluster.json as `cluster up` reads it (it restarts the nodes later). */
static int writeLayout(struct restore *r, const char *restored_from)
{
    char path[PATH_MAX + 32];
    char *bootstrap = malloc((size_t)r->nodes * 64 + 1);
    char *real = realpath(r->file, NULL);
    size_t used = 0;
    char *text;
    json_t *v;
    int rv;

    if (bootstrap == NULL) {
        free(real);
        return -1;
    }
    bootstrap[0] = '\0';
    for (unsigned i = 0; i < r->nodes; i++) {
        used += (size_t)snprintf(bootstrap + used, 64, "%s%u=%s@%s",
                                 i > 0 ? "," : "", r->n[i].id, r->n[i].raft,
                                 r->n[i].api);
    }
    v = json_pack("{sI ss sI sI ss ss ss}", "nodes", (json_int_t)r->nodes,
                  "host", RESTORE__HOST, "raft_port", (json_int_t)r->raft_port,
                  "api_port", (json_int_t)r->api_port, "bootstrap", bootstrap,
                  "restored_from_backup", real != NULL ? real : r->file,
                  "restored_from", restored_from != NULL ? restored_from : "");
    free(bootstrap);
    free(real);
    if (v == NULL) {
        return -1;
    }
    if (r->ctl->token_file != NULL) {
        json_object_set_new(v, "token_file", json_string(r->ctl->token_file));
    }
    text = json_dumps(v, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(v);
    if (text == NULL) {
        return -1;
    }
    snprintf(path, sizeof path, "%s/cluster.json", r->dir);
    rv = ctlWriteFileAtomic(path, text);
    free(text);
    return rv;
}

/* ---- Nodes -----------------------------------------------------------------
 */

/* Start node `n` detached, its output appended to its log. extra: the
 * arguments after the common ones (NULL-terminated). */
static int nodeStart(struct restore *r, struct rnode *n, char **extra)
{
    char id[16];
    char banner[64];
    char *args[24];
    int a = 0;

    snprintf(id, sizeof id, "%u", n->id);
    if (mkdir(n->data_dir, 0755) != 0 && errno != EEXIST) {
        return ctlFail("restore: create %s: %s", n->data_dir, strerror(errno));
    }
    args[a++] = r->ledgerd;
    args[a++] = "--id";
    args[a++] = id;
    args[a++] = "--data-dir";
    args[a++] = n->data_dir;
    args[a++] = "--raft-addr";
    args[a++] = n->raft;
    args[a++] = "--api-addr";
    args[a++] = n->api;
    if (r->ctl->token_file != NULL) {
        args[a++] = "--token-file";
        args[a++] = r->ctl->token_file;
    }
    for (int i = 0; extra[i] != NULL && a < 23; i++) {
        args[a++] = extra[i];
    }
    args[a] = NULL;
    snprintf(banner, sizeof banner, "restore: starting node %u", n->id);
    return ctlSpawn("restore", args, n->log_path, n->pid_path, banner, &n->pid);
}

/* A node of ours that exited: reaped, its last log line in why. */
static int nodeDied(struct rnode *n, char *why, size_t len)
{
    char how[64];
    char last[512];
    if (!ctlChildExited(n->pid, how, sizeof how)) {
        return 0;
    }
    n->pid = 0;
    ctlLastLogLine(n->log_path, last, sizeof last);
    snprintf(why, len, "node %u %s during the restore: %s (see %s)", n->id, how,
             last[0] != '\0' ? last : "no output", n->log_path);
    return 1;
}

static void stopAll(struct restore *r)
{
    pid_t pids[RESTORE__MAX_NODES];
    for (unsigned i = 0; i < r->nodes; i++) {
        pids[i] = r->n[i].pid;
    }
    ctlStopChildren(pids, r->nodes, 10000);
    for (unsigned i = 0; i < r->nodes; i++) {
        r->n[i].pid = 0;
    }
}

/* Voters of /v1/cluster that are not unreachable. */
static unsigned liveVoters(const json_t *cluster)
{
    const json_t *m;
    size_t i;
    unsigned n = 0;
    json_array_foreach(json_object_get(cluster, "members"), i, m)
    {
        const char *role = json_string_value(json_object_get(m, "role"));
        const char *state = json_string_value(json_object_get(m, "state"));
        n += role != NULL && strcmp(role, "voter") == 0 && state != NULL &&
             strcmp(state, "unreachable") != 0;
    }
    return n;
}

/* Poll node 1 until `want` voters (and a cluster id) or the deadline; dead
 * nodes end the wait at once. The cluster view in *out. */
static int waitVoters(struct restore *r, unsigned want, json_t **out, char *why,
                      size_t len)
{
    long long deadline = ctlNowMs() + (long long)r->wait_s * 1000;
    *out = NULL;
    for (;;) {
        json_t *v;
        for (unsigned i = 0; i < r->nodes; i++) {
            if (nodeDied(&r->n[i], why, len)) {
                return -1;
            }
        }
        v = ctlGetJson(r->ctl, r->n[0].api, "/v1/cluster");
        if (v != NULL &&
            json_integer_value(json_object_get(v, "leader_id")) != 0 &&
            json_string_length(json_object_get(v, "cluster_id")) > 0 &&
            liveVoters(v) >= want) {
            *out = v;
            return 0;
        }
        json_decref(v);
        if (ctlNowMs() > deadline) {
            snprintf(why, len,
                     "%u of %u nodes were not voters within %u s (see "
                     "%s/node*.log; --wait-s waits longer)",
                     want, r->nodes, r->wait_s, r->dir);
            return -1;
        }
        ctlSleepMs(RESTORE__POLL_MS);
    }
}

/* ---- The command -----------------------------------------------------------
 */

int ctlCmdRestore(struct ctl *ctl, int argc, char **argv)
{
    struct ctl_flag flags[] = {{"dir", 1, NULL},       {"nodes", 1, NULL},
                               {"raft-port", 1, NULL}, {"api-port", 1, NULL},
                               {"wait-s", 1, NULL},    {NULL, 0, NULL}};
    struct restore r;
    const char *pos[2];
    json_t *check = NULL;
    json_t *cluster = NULL;
    char why[1024];
    char join[80];
    char bootstrap[200];
    int n_pos;
    int state;
    pid_t running;
    int rv = ctlParseArgs(ctl, "restore", argc, argv, flags, pos, 2, &n_pos);

    if (rv != 0) {
        return CTL_ARGS_EXIT(rv);
    }
    memset(&r, 0, sizeof r);
    r.ctl = ctl;
    r.nodes = 3;
    r.raft_port = 7001;
    r.api_port = 8001;
    r.wait_s = RESTORE__WAIT_S;
    if (n_pos != 1) {
        return ctlUsage("restore needs one backup FILE");
    }
    r.file = pos[0];
    r.dir = ctlFlag(flags, "dir");
    if (r.dir == NULL || r.dir[0] == '\0' || strlen(r.dir) > PATH_MAX - 64) {
        return ctlUsage("restore needs --dir DIR, a new or empty directory");
    }
    if (ctlFlagUnsigned(flags, "nodes", 1, RESTORE__MAX_NODES, &r.nodes) != 0 ||
        ctlFlagUnsigned(flags, "raft-port", 1, 65535, &r.raft_port) != 0 ||
        ctlFlagUnsigned(flags, "api-port", 1, 65535, &r.api_port) != 0 ||
        ctlFlagUnsigned(flags, "wait-s", 1, 86400, &r.wait_s) != 0) {
        return CTL_EXIT_USAGE;
    }
    if (r.raft_port + r.nodes - 1 > 65535 || r.api_port + r.nodes - 1 > 65535) {
        return ctlUsage("restore: ports past 65535 with --nodes %u", r.nodes);
    }
    if (r.raft_port < r.api_port + r.nodes &&
        r.api_port < r.raft_port + r.nodes) {
        return ctlUsage("restore: raft ports %u.. and API ports %u.. overlap; "
                        "pick other --raft-port/--api-port",
                        r.raft_port, r.api_port);
    }

    /* 1. Refusals, before anything is written. */
    running = ctlRunningNode(r.dir);
    if (running > 0) {
        return ctlFail("restore: a ledgerd (pid %d) runs in %s: restore "
                       "into a new, empty directory (nothing changed)",
                       (int)running, r.dir);
    }
    state = dirState(r.dir);
    if (state != 0) {
        return ctlFail("restore: %s %s: restore into a new, empty directory "
                       "(nothing changed)",
                       r.dir,
                       state < 0 ? "is not a directory" : "is not empty");
    }
    if (access(r.file, R_OK) != 0) {
        return ctlFail("restore: cannot read %s: %s (nothing changed)", r.file,
                       strerror(errno));
    }
    if (ctlFindLedgerd(r.ledgerd, sizeof r.ledgerd, "restore") != 0 ||
        ctlVerifyBackupFile(r.ledgerd, r.file, NULL, "restore", &check) != 0) {
        return CTL_EXIT_FAIL;
    }
    if (!json_is_true(json_object_get(check, "ok"))) {
        rv = ctlFail("restore: %s: %s (nothing changed)", r.file,
                     json_string_value(json_object_get(check, "reason")));
        json_decref(check);
        return rv;
    }

    /* 2. Node 1 seeds its store and starts the new cluster alone. */
    r.n = calloc(r.nodes, sizeof *r.n);
    if (r.n == NULL) {
        json_decref(check);
        return ctlFail("restore: out of memory");
    }
    for (unsigned i = 0; i < r.nodes; i++) {
        struct rnode *n = &r.n[i];
        n->id = i + 1;
        snprintf(n->api, sizeof n->api, "%s:%u", RESTORE__HOST, r.api_port + i);
        snprintf(n->raft, sizeof n->raft, "%s:%u", RESTORE__HOST,
                 r.raft_port + i);
        snprintf(n->data_dir, sizeof n->data_dir, "%s/node%u", r.dir, n->id);
        snprintf(n->log_path, sizeof n->log_path, "%s/node%u.log", r.dir,
                 n->id);
        snprintf(n->pid_path, sizeof n->pid_path, "%s/node%u.pid", r.dir,
                 n->id);
    }
    r.created_dir = access(r.dir, F_OK) != 0;
    if (r.created_dir && mkdir(r.dir, 0755) != 0) {
        rv = ctlFail("restore: create %s: %s", r.dir, strerror(errno));
        goto out;
    }
    if (writeLayout(
            &r, json_string_value(json_object_get(check, "cluster_id"))) != 0) {
        rv = ctlFail("restore: cannot write %s/cluster.json", r.dir);
        goto out_undo;
    }
    snprintf(bootstrap, sizeof bootstrap, "1=%s@%s", r.n[0].raft, r.n[0].api);
    {
        char *extra[] = {"--bootstrap", bootstrap, "--restore", (char *)r.file,
                         NULL};
        if (nodeStart(&r, &r.n[0], extra) != 0) {
            rv = CTL_EXIT_FAIL;
            goto out_undo;
        }
    }
    if (!ctl->json) {
        printf("node 1: seeding its store from %s and starting a new cluster "
               "(pid %d, api %s)\n",
               r.file, (int)r.n[0].pid, r.n[0].api);
        fflush(stdout);
    }
    if (waitVoters(&r, 1, &cluster, why, sizeof why) != 0) {
        rv = ctlFail("restore: %s", why);
        goto out_undo;
    }
    json_decref(cluster);
    cluster = NULL;

    /* 3. The others join it and copy the events. */
    snprintf(join, sizeof join, "%s", r.n[0].api);
    for (unsigned i = 1; i < r.nodes; i++) {
        char *extra[] = {"--join", join, NULL};
        if (nodeStart(&r, &r.n[i], extra) != 0) {
            rv = CTL_EXIT_FAIL;
            goto out_undo;
        }
        if (!ctl->json) {
            printf("node %u: joining (pid %d, api %s)\n", r.n[i].id,
                   (int)r.n[i].pid, r.n[i].api);
            fflush(stdout);
        }
    }
    if (waitVoters(&r, r.nodes, &cluster, why, sizeof why) != 0) {
        rv = ctlFail("restore: %s", why);
        goto out_undo;
    }
    if (ctl->json) {
        json_object_set_new(check, "cluster", json_incref(cluster));
        ctlPrintJson(check);
    } else {
        printf(
            "restore: %lld events, position %lld, hash %s from cluster %s; "
            "new cluster %s with %u nodes\n",
            (long long)json_integer_value(json_object_get(check, "events")),
            (long long)json_integer_value(json_object_get(check, "position")),
            json_string_value(json_object_get(check, "hash")),
            json_string_value(json_object_get(check, "cluster_id")),
            json_string_value(json_object_get(cluster, "cluster_id")), r.nodes);
        ctlPrintClusterTable(cluster, 0);
    }
    rv = CTL_EXIT_OK;
    goto out;

out_undo:
    stopAll(&r);
    removeCreated(&r);
out:
    json_decref(cluster);
    json_decref(check);
    free(r.n);
    return rv;
}
