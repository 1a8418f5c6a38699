/* ledgerctl cluster up/down: a local cluster as background ledgerd processes.
 *
 * Layout of --dir (default ./ledger-data):
 *   cluster.json   {"nodes":N,"host":"127.0.0.1","raft_port":RP,
 *                   "api_port":AP,"bootstrap":"1=...@...,..."}
 *   nodeN/         node N's data directory (--data-dir)
 *   nodeN.log      its stdout and stderr (appended across restarts)
 *   nodeN.pid      its pid while it runs
 *   tls/, token    with --tls (docs/security.md): the cluster CA, every
 *                  node's certificate and a client certificate (tls_gen.h),
 *                  and a random bearer token; the nodes run with
 *                  --tls-cert/--tls-key/--tls-ca and --token-file, and
 *                  cluster.json says "tls": true, so a later `cluster up`
 *                  restarts them the same way.
 *
 * Node N listens on raft port RP+N-1 and API port AP+N-1. Every start passes
 * the same --bootstrap string; ledgerd ignores it once its dir holds state,
 * so a second `cluster up` restarts stopped nodes with their data and leaves
 * running ones alone. A pid is ours only if its /proc cmdline still looks
 * like ledgerd: a stale pid file never makes us signal a stranger.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "ctl.h"
#include "procs.h"
#include "tls_gen.h"

#define CLUSTER__HOST "127.0.0.1"
#define CLUSTER__MAX_NODES 64   /* Upper bound for --nodes. */
#define CLUSTER__WAIT_S 30      /* Default wait for a leader. */
#define CLUSTER__SETTLE_MS 5000 /* Extra wait for every member to show. */
#define CLUSTER__STOP_MS 15000  /* SIGTERM grace before SIGKILL. */
#define CLUSTER__POLL_MS 200    /* Poll interval while waiting. */

struct layout {
    unsigned nodes;
    unsigned raft_port;
    unsigned api_port;
    char token_file[PATH_MAX]; /* "" without: nodes run without auth. */
    int tls;                   /* Certificates in DIR/tls/. */
};

struct node {
    unsigned id;
    pid_t pid;   /* 0: not running. */
    int started; /* Started by this invocation (our child). */
    char api_addr[64];
    char log_path[PATH_MAX];
    char pid_path[PATH_MAX];
};

/* Read DIR/cluster.json if present: 1 found, 0 absent, -1 broken. */
/* Use `path` as the token file: remember it and read the token. */
static int loadTokenFile(struct ctl *ctl, const char *path)
{
    char *token = ctlReadTokenFile(path);
    char *copy = strdup(path);

    if (token == NULL || token[0] == '\0' || copy == NULL) {
        free(token);
        free(copy);
        return -1;
    }
    free(ctl->token_file);
    free(ctl->token);
    ctl->token_file = copy;
    ctl->token = token;
    return 0;
}

static int layoutLoad(const char *path, struct layout *l)
{
    json_error_t jerr;
    json_t *v = json_load_file(path, 0, &jerr);
    json_int_t nodes;
    json_int_t rp;
    json_int_t ap;
    if (v == NULL) {
        return access(path, F_OK) == 0 ? -1 : 0;
    }
    if (json_unpack(v, "{sI sI sI}", "nodes", &nodes, "raft_port", &rp,
                    "api_port", &ap) != 0 ||
        nodes < 1 || nodes > CLUSTER__MAX_NODES || rp < 1 || rp > 65535 ||
        ap < 1 || ap > 65535) {
        json_decref(v);
        return -1;
    }
    l->nodes = (unsigned)nodes;
    l->raft_port = (unsigned)rp;
    l->api_port = (unsigned)ap;
    snprintf(l->token_file, sizeof l->token_file, "%s",
             json_string_value(json_object_get(v, "token_file"))
                 ? json_string_value(json_object_get(v, "token_file"))
                 : "");
    l->tls = json_is_true(json_object_get(v, "tls"));
    json_decref(v);
    return 1;
}

static char *bootstrapString(const struct layout *l)
{
    size_t cap = (size_t)l->nodes * 64 + 1;
    char *s = malloc(cap);
    size_t used = 0;
    if (s == NULL) {
        return NULL;
    }
    s[0] = '\0';
    for (unsigned i = 1; i <= l->nodes; i++) {
        used += (size_t)snprintf(s + used, cap - used, "%s%u=%s:%u@%s:%u",
                                 i > 1 ? "," : "", i, CLUSTER__HOST,
                                 l->raft_port + i - 1, CLUSTER__HOST,
                                 l->api_port + i - 1);
    }
    return s;
}

static int layoutSave(const char *path, const struct layout *l,
                      const char *bootstrap)
{
    json_t *v =
        json_pack("{sIsssIsIss}", "nodes", (json_int_t)l->nodes, "host",
                  CLUSTER__HOST, "raft_port", (json_int_t)l->raft_port,
                  "api_port", (json_int_t)l->api_port, "bootstrap", bootstrap);
    char *text;
    int rv;
    if (v == NULL) {
        return -1;
    }
    if (l->token_file[0] != '\0') {
        json_object_set_new(v, "token_file", json_string(l->token_file));
    }
    if (l->tls) {
        json_object_set_new(v, "tls", json_true());
    }
    text = json_dumps(v, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(v);
    if (text == NULL) {
        return -1;
    }
    rv = ctlWriteFileAtomic(path, text);
    free(text);
    return rv;
}

/* Start one node detached. Returns 0 with n->pid set, or CTL_EXIT_FAIL
 * after printing why. */
static int nodeStart(struct node *n, const char *ledgerd, const char *dir,
                     const struct layout *l, const char *bootstrap,
                     const char *token_file, const char *tls_dir)
{
    char cert[PATH_MAX];
    char key[PATH_MAX];
    char ca[PATH_MAX];
    char id[16];
    char data_dir[PATH_MAX];
    char raft_addr[64];
    char banner[PATH_MAX * 2 + 256];
    char *args[] = {(char *)ledgerd,
                    "--id",
                    id,
                    "--data-dir",
                    data_dir,
                    "--raft-addr",
                    raft_addr,
                    "--api-addr",
                    n->api_addr,
                    "--bootstrap",
                    (char *)bootstrap,
                    NULL,
                    NULL,
                    NULL,
                    NULL,
                    NULL,
                    NULL,
                    NULL,
                    NULL,
                    NULL,
                    NULL};
    int a = 11;

    snprintf(id, sizeof id, "%u", n->id);
    snprintf(data_dir, sizeof data_dir, "%s/node%u", dir, n->id);
    snprintf(raft_addr, sizeof raft_addr, "%s:%u", CLUSTER__HOST,
             l->raft_port + n->id - 1);
    if (ctlMkdirP(data_dir) != 0) {
        return ctlFail("cluster up: create %s: %s; check --dir", data_dir,
                       strerror(errno));
    }
    if (token_file != NULL) {
        /* The nodes require the token we were given. */
        args[a++] = "--token-file";
        args[a++] = (char *)token_file;
    }
    if (tls_dir != NULL) {
        snprintf(cert, sizeof cert, "%s/node%u.pem", tls_dir, n->id);
        snprintf(key, sizeof key, "%s/node%u.key", tls_dir, n->id);
        snprintf(ca, sizeof ca, "%s/ca.pem", tls_dir);
        args[a++] = "--tls-cert";
        args[a++] = cert;
        args[a++] = "--tls-key";
        args[a++] = key;
        args[a++] = "--tls-ca";
        args[a++] = ca;
    }
    snprintf(banner, sizeof banner,
             "cluster up: starting node %u: %s --id %s --data-dir %s "
             "--raft-addr %s --api-addr %s",
             n->id, ledgerd, id, data_dir, raft_addr, n->api_addr);
    if (ctlSpawn("cluster up", args, n->log_path, n->pid_path, banner,
                 &n->pid) != 0) {
        return CTL_EXIT_FAIL;
    }
    n->started = 1;
    return 0;
}

/* Has a node died? For our children, reap and describe the exit. */
static int nodeDied(struct node *n, char *why, size_t whylen)
{
    if (n->pid == 0) {
        return 0;
    }
    if (n->started) {
        return ctlChildExited(n->pid, why, whylen);
    }
    if (ctlPidAlive(n->pid)) {
        return 0;
    }
    snprintf(why, whylen, "exited");
    return 1;
}

/* Stop the nodes this invocation started (after a failed start-up). */
static void stopStarted(struct node *nodes, unsigned n_nodes)
{
    pid_t pids[CLUSTER__MAX_NODES];
    for (unsigned i = 0; i < n_nodes; i++) {
        pids[i] = nodes[i].started ? nodes[i].pid : 0;
    }
    ctlStopChildren(pids, n_nodes, 5000);
    for (unsigned i = 0; i < n_nodes; i++) {
        if (nodes[i].started) {
            unlink(nodes[i].pid_path);
            nodes[i].pid = 0;
        }
    }
}

static json_t *clusterStatusFrom(const struct ctl *ctl, const char *addr)
{
    return ctlGetJson(ctl, addr, "/v1/cluster");
}

/* True when the process answering at the node's API is the one we started
 * (a stale process may hold the address while ours died on the lock). */
static int answersAsOurs(const struct ctl *ctl, const struct node *n)
{
    json_t *v = ctlGetJson(ctl, n->api_addr, "/v1/internal/status");
    int ours = v != NULL && json_integer_value(json_object_get(v, "pid")) ==
                                (json_int_t)n->pid;
    json_decref(v);
    return ours;
}

static int allMembersReachable(const json_t *cluster)
{
    size_t i;
    const json_t *m;
    json_array_foreach(json_object_get(cluster, "members"), i, m)
    {
        const char *state = json_string_value(json_object_get(m, "state"));
        if (state == NULL || strcmp(state, "unreachable") == 0) {
            return 0;
        }
    }
    return 1;
}

/* Parse a port-ish flag; *given says whether it was on the command line. */
static int flagUnsigned(const struct ctl_flag *flags, const char *name,
                        unsigned long long min, unsigned long long max,
                        unsigned *out, int *given)
{
    *given = ctlFlag(flags, name) != NULL;
    return ctlFlagUnsigned(flags, name, min, max, out);
}

/* --tls: DIR/tls/ (CA, node and client certificates) and DIR/token,
 * created where missing; ctl then uses them for its own calls unless TLS
 * flags were given. The absolute tls dir goes to tls_dir. */
static int tlsSetUp(struct ctl *ctl, const char *dir, struct layout *l,
                    char *tls_dir, size_t len)
{
    char path[PATH_MAX];
    char err[512];
    char *abs = realpath(dir, NULL);

    if (abs == NULL) {
        return ctlFail("cluster up: %s: %s", dir, strerror(errno));
    }
    snprintf(tls_dir, len, "%s/tls", abs);
    if (ctlTlsCa(tls_dir, err, sizeof err) != 0) {
        free(abs);
        return ctlFail("cluster up --tls: %s", err);
    }
    for (unsigned i = 1; i <= l->nodes; i++) {
        if (ctlTlsNode(tls_dir, i, CLUSTER__HOST, 0, err, sizeof err) != 0) {
            free(abs);
            return ctlFail("cluster up --tls: node %u: %s", i, err);
        }
    }
    if (ctlTlsClient(tls_dir, "client", 0, err, sizeof err) != 0) {
        free(abs);
        return ctlFail("cluster up --tls: client: %s", err);
    }
    if (ctl->token_file == NULL && l->token_file[0] == '\0') {
        /* A random token, readable by the owner only. */
        unsigned char rnd[24];
        char hex[2 * sizeof rnd + 2];
        int fd;
        snprintf(path, sizeof path, "%s/token", abs);
        if (access(path, F_OK) != 0) {
            if (RAND_bytes(rnd, sizeof rnd) != 1) {
                free(abs);
                return ctlFail("cluster up --tls: no random bytes");
            }
            for (size_t i = 0; i < sizeof rnd; i++) {
                snprintf(hex + 2 * i, 3, "%02x", rnd[i]);
            }
            strcat(hex, "\n");
            fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
            if (fd < 0 || write(fd, hex, strlen(hex)) != (ssize_t)strlen(hex) ||
                close(fd) != 0) {
                free(abs);
                return ctlFail("cluster up --tls: write %s: %s", path,
                               strerror(errno));
            }
        }
        snprintf(l->token_file, sizeof l->token_file, "%s", path);
        if (loadTokenFile(ctl, path) != 0) {
            free(abs);
            return ctlFail("cluster up --tls: cannot read %s", path);
        }
    }
    free(abs);
    if (ctl->tls_ca == NULL && ctl->tls_cert == NULL) {
        static const char *const names[3] = {"ca.pem", "client.pem",
                                             "client.key"};
        for (int k = 0; k < 3; k++) {
            free(ctl->tls_own[k]);
            ctl->tls_own[k] = malloc(strlen(tls_dir) + 16);
            if (ctl->tls_own[k] == NULL) {
                return ctlFail("cluster up: out of memory");
            }
            sprintf(ctl->tls_own[k], "%s/%s", tls_dir, names[k]);
        }
        ctl->tls_ca = ctl->tls_own[0];
        ctl->tls_cert = ctl->tls_own[1];
        ctl->tls_key = ctl->tls_own[2];
    }
    return 0;
}

int ctlCmdClusterUp(struct ctl *ctl, int argc, char **argv)
{
    struct ctl_flag flags[] = {{"nodes", 1, NULL},     {"dir", 1, NULL},
                               {"raft-port", 1, NULL}, {"api-port", 1, NULL},
                               {"wait-s", 1, NULL},    {"tls", 0, NULL},
                               {NULL, 0, NULL}};
    struct layout want = {3, 7001, 8001, "", 0};
    char tls_dir[PATH_MAX] = "";
    struct layout l;
    struct node *nodes = NULL;
    const char *pos[1];
    const char *dir;
    char ledgerd[PATH_MAX];
    char layout_path[PATH_MAX];
    char *bootstrap = NULL;
    json_t *cluster = NULL;
    unsigned wait_s = CLUSTER__WAIT_S;
    int g_nodes, g_rp, g_ap, g_wait;
    long long deadline;
    long long settle_deadline = 0;
    int n_pos;
    int found;
    int save_token = 0;
    int rv = ctlParseArgs(ctl, "cluster up", argc, argv, flags, pos, 0, &n_pos);
    if (rv != 0) {
        return CTL_ARGS_EXIT(rv);
    }
    want.tls = ctlFlag(flags, "tls") != NULL;
    if (ctlCheckTls(ctl) != 0) {
        return CTL_EXIT_USAGE;
    }
    if (flagUnsigned(flags, "nodes", 1, CLUSTER__MAX_NODES, &want.nodes,
                     &g_nodes) != 0 ||
        flagUnsigned(flags, "raft-port", 1, 65535, &want.raft_port, &g_rp) !=
            0 ||
        flagUnsigned(flags, "api-port", 1, 65535, &want.api_port, &g_ap) != 0 ||
        flagUnsigned(flags, "wait-s", 1, 3600, &wait_s, &g_wait) != 0) {
        return CTL_EXIT_USAGE;
    }
    if (want.raft_port + want.nodes - 1 > 65535 ||
        want.api_port + want.nodes - 1 > 65535) {
        return ctlUsage("cluster up: ports past 65535 with --nodes %u",
                        want.nodes);
    }
    if (want.raft_port < want.api_port + want.nodes &&
        want.api_port < want.raft_port + want.nodes) {
        return ctlUsage("cluster up: raft ports %u.. and API ports %u.. "
                        "overlap; pick other --raft-port/--api-port",
                        want.raft_port, want.api_port);
    }
    dir = ctlFlag(flags, "dir");
    if (dir == NULL) {
        dir = "./ledger-data";
    }
    if (dir[0] == '\0' || strlen(dir) > PATH_MAX - 64) {
        return ctlUsage("cluster up: --dir must be a usable path");
    }

    snprintf(layout_path, sizeof layout_path, "%s/cluster.json", dir);
    found = layoutLoad(layout_path, &l);
    if (found < 0) {
        return ctlFail("cluster up: %s is unreadable or malformed; fix or "
                       "remove it, or use another --dir",
                       layout_path);
    }
    if (found) {
        if ((g_nodes && want.nodes != l.nodes) ||
            (g_rp && want.raft_port != l.raft_port) ||
            (g_ap && want.api_port != l.api_port)) {
            return ctlFail("cluster up: %s already holds a %u-node cluster "
                           "(raft port %u, API port %u); drop the flags to "
                           "restart it, or use another --dir",
                           dir, l.nodes, l.raft_port, l.api_port);
        }
        if (want.tls && !l.tls) {
            return ctlFail("cluster up: %s holds a cluster that runs without "
                           "TLS; use another --dir for a TLS cluster",
                           dir);
        }
    } else {
        l = want;
    }
    /* The token file is part of the cluster: remembered in cluster.json
     * and reused by a later `cluster up` that does not name one. */
    if (ctl->token_file != NULL) {
        save_token = strcmp(l.token_file, ctl->token_file) != 0;
        snprintf(l.token_file, sizeof l.token_file, "%s", ctl->token_file);
    } else if (l.token_file[0] != '\0') {
        if (loadTokenFile(ctl, l.token_file) != 0) {
            return ctlFail("cluster up: cannot read the cluster's token file "
                           "%s (recorded in %s): restore it or pass "
                           "--token-file",
                           l.token_file, layout_path);
        }
    }
    if (ctlFindLedgerd(ledgerd, sizeof ledgerd, "cluster up") != 0) {
        return CTL_EXIT_FAIL;
    }
    if (ctlMkdirP(dir) != 0) {
        return ctlFail("cluster up: create %s: %s; check --dir", dir,
                       strerror(errno));
    }
    if (l.tls) {
        rv = tlsSetUp(ctl, dir, &l, tls_dir, sizeof tls_dir);
        if (rv != 0) {
            goto out;
        }
        save_token = save_token || !found;
    }
    bootstrap = bootstrapString(&l);
    nodes = calloc(l.nodes, sizeof *nodes);
    if (bootstrap == NULL || nodes == NULL) {
        rv = ctlFail("cluster up: out of memory");
        goto out;
    }
    if ((!found || save_token) && layoutSave(layout_path, &l, bootstrap) != 0) {
        rv = ctlFail("cluster up: write %s: %s; check --dir", layout_path,
                     strerror(errno));
        goto out;
    }

    for (unsigned i = 0; i < l.nodes; i++) {
        struct node *n = &nodes[i];
        pid_t old;
        n->id = i + 1;
        snprintf(n->api_addr, sizeof n->api_addr, "%s:%u", CLUSTER__HOST,
                 l.api_port + i);
        snprintf(n->log_path, sizeof n->log_path, "%s/node%u.log", dir, n->id);
        snprintf(n->pid_path, sizeof n->pid_path, "%s/node%u.pid", dir, n->id);
        old = ctlReadPidFile(n->pid_path);
        if (old > 0 && ctlPidAlive(old) && ctlPidIsLedgerd(old)) {
            n->pid = old;
            if (!ctl->json) {
                printf("node %u: already running (pid %d, api %s)\n", n->id,
                       (int)old, n->api_addr);
            }
            continue;
        }
        rv = nodeStart(n, ledgerd, dir, &l, bootstrap, ctl->token_file,
                       l.tls ? tls_dir : NULL);
        if (rv != 0) {
            stopStarted(nodes, l.nodes);
            goto out;
        }
        if (!ctl->json) {
            printf("node %u: started (pid %d, api %s, log %s)\n", n->id,
                   (int)n->pid, n->api_addr, n->log_path);
        }
    }
    fflush(stdout);

    /* Wait for a leader, watching for nodes that die early. */
    int started_answer;
    deadline = ctlNowMs() + (long long)wait_s * 1000;
    for (;;) {
        for (unsigned i = 0; i < l.nodes; i++) {
            char why[64];
            char last[512];
            if (!nodeDied(&nodes[i], why, sizeof why)) {
                continue;
            }
            nodes[i].started = 0; /* Reaped. */
            nodes[i].pid = 0;
            unlink(nodes[i].pid_path);
            ctlLastLogLine(nodes[i].log_path, last, sizeof last);
            stopStarted(nodes, l.nodes);
            rv = ctlFail("cluster up: node %u %s during start-up%s%s; see "
                         "%s",
                         nodes[i].id, why, last[0] != '\0' ? ": " : "", last,
                         nodes[i].log_path);
            goto out;
        }
        /* Every node started now must answer on its API (a node that
         * exits at once, e.g. on a locked data dir, is caught above while
         * we wait for it), and some node must report a leader. */
        started_answer = 1;
        for (unsigned i = 0; i < l.nodes; i++) {
            json_t *v = clusterStatusFrom(ctl, nodes[i].api_addr);
            if (nodes[i].started && !answersAsOurs(ctl, &nodes[i])) {
                started_answer = 0;
            }
            if (v == NULL) {
                continue;
            }
            if (json_integer_value(json_object_get(v, "leader_id")) == 0) {
                json_decref(v);
                continue;
            }
            json_decref(cluster);
            cluster = v;
        }
        if (cluster != NULL) {
            if (settle_deadline == 0) {
                settle_deadline = ctlNowMs() + CLUSTER__SETTLE_MS;
            }
            if ((allMembersReachable(cluster) && started_answer) ||
                ctlNowMs() > settle_deadline) {
                break;
            }
        }
        if (ctlNowMs() > deadline) {
            if (cluster != NULL) {
                break;
            }
            stopStarted(nodes, l.nodes);
            rv = ctlFail("cluster up: no leader elected within %u s; see the "
                         "logs %s/node*.log",
                         wait_s, dir);
            goto out;
        }
        ctlSleepMs(CLUSTER__POLL_MS);
    }
    if (ctl->json) {
        ctlPrintJson(cluster);
    } else {
        ctlPrintClusterTable(cluster, 0);
        if (l.tls) {
            printf("\nTLS is on (certificates in %s, token in %s). Talk to "
                   "this cluster with:\n  ledgerctl --tls-ca %s/ca.pem "
                   "--tls-cert %s/client.pem --tls-key %s/client.key "
                   "--token-file %s --endpoints %s ...\n",
                   tls_dir, l.token_file, tls_dir, tls_dir, tls_dir,
                   l.token_file, nodes[0].api_addr);
        }
    }
    rv = CTL_EXIT_OK;

out:
    if (rv != CTL_EXIT_OK && !found) {
        /* A first start failed: let the next try pick other flags. */
        unlink(layout_path);
    }
    json_decref(cluster);
    free(nodes);
    free(bootstrap);
    return rv;
}

/* Pid files in dir: node<N>.pid. */
static int listPidFiles(const char *dir, unsigned *ids, unsigned max,
                        unsigned *n_ids)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    *n_ids = 0;
    if (d == NULL) {
        return -1;
    }
    while ((e = readdir(d)) != NULL && *n_ids < max) {
        unsigned id;
        char tail[8];
        if (sscanf(e->d_name, "node%u.pi%1s", &id, tail) == 2 &&
            strcmp(tail, "d") == 0 && id > 0) {
            char expect[32];
            snprintf(expect, sizeof expect, "node%u.pid", id);
            if (strcmp(expect, e->d_name) == 0) {
                ids[(*n_ids)++] = id;
            }
        }
    }
    closedir(d);
    /* Report in id order. */
    for (unsigned i = 1; i < *n_ids; i++) {
        for (unsigned j = i; j > 0 && ids[j - 1] > ids[j]; j--) {
            unsigned t = ids[j];
            ids[j] = ids[j - 1];
            ids[j - 1] = t;
        }
    }
    return 0;
}

int ctlCmdClusterDown(struct ctl *ctl, int argc, char **argv)
{
    struct ctl_flag flags[] = {{"dir", 1, NULL}, {NULL, 0, NULL}};
    const char *pos[1];
    const char *dir;
    unsigned ids[256];
    pid_t pids[256];
    const char *outcome[256];
    unsigned n_ids;
    long long deadline;
    int failed = 0;
    int n_pos;
    json_t *report;
    int rv =
        ctlParseArgs(ctl, "cluster down", argc, argv, flags, pos, 0, &n_pos);
    if (rv != 0) {
        return CTL_ARGS_EXIT(rv);
    }
    dir = ctlFlag(flags, "dir");
    if (dir == NULL) {
        dir = "./ledger-data";
    }
    if (listPidFiles(dir, ids, 256, &n_ids) != 0) {
        return ctlFail("cluster down: cannot open %s: %s; pass the --dir "
                       "given to 'cluster up'",
                       dir, strerror(errno));
    }
    for (unsigned i = 0; i < n_ids; i++) {
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s/node%u.pid", dir, ids[i]);
        pids[i] = ctlReadPidFile(path);
        outcome[i] = "not running (stale pid file)";
        if (pids[i] > 0 && ctlPidAlive(pids[i]) && ctlPidIsLedgerd(pids[i])) {
            if (kill(pids[i], SIGTERM) == 0) {
                outcome[i] = "stopped";
            } else {
                outcome[i] = "cannot signal";
                failed = 1;
            }
        } else {
            pids[i] = 0;
            unlink(path);
        }
    }
    deadline = ctlNowMs() + CLUSTER__STOP_MS;
    for (;;) {
        int alive = 0;
        for (unsigned i = 0; i < n_ids; i++) {
            alive += pids[i] > 0 && strcmp(outcome[i], "stopped") == 0 &&
                     ctlPidAlive(pids[i]);
        }
        if (alive == 0 || ctlNowMs() > deadline) {
            break;
        }
        ctlSleepMs(100);
    }
    for (unsigned i = 0; i < n_ids; i++) {
        if (pids[i] > 0 && strcmp(outcome[i], "stopped") == 0 &&
            ctlPidAlive(pids[i])) {
            long long kill_deadline = ctlNowMs() + 5000;
            kill(pids[i], SIGKILL);
            outcome[i] = "killed (did not stop within 15 s of SIGTERM)";
            while (ctlPidAlive(pids[i]) && ctlNowMs() < kill_deadline) {
                ctlSleepMs(50);
            }
            if (ctlPidAlive(pids[i])) {
                outcome[i] = "still running after SIGKILL";
                failed = 1;
            }
        }
        if (pids[i] > 0 && !ctlPidAlive(pids[i])) {
            char path[PATH_MAX];
            snprintf(path, sizeof path, "%s/node%u.pid", dir, ids[i]);
            unlink(path);
        }
    }
    report = json_pack("{ss s[]}", "dir", dir, "nodes");
    for (unsigned i = 0; i < n_ids; i++) {
        if (ctl->json) {
            json_array_append_new(
                json_object_get(report, "nodes"),
                json_pack("{sIsIss}", "id", (json_int_t)ids[i], "pid",
                          (json_int_t)pids[i], "result", outcome[i]));
        } else if (pids[i] > 0) {
            printf("node %u (pid %d): %s\n", ids[i], (int)pids[i], outcome[i]);
        } else {
            printf("node %u: %s\n", ids[i], outcome[i]);
        }
    }
    if (ctl->json) {
        ctlPrintJson(report);
    } else if (n_ids == 0) {
        printf("no nodes running in %s\n", dir);
    }
    json_decref(report);
    fflush(stdout);
    if (failed) {
        return ctlFail("cluster down: some nodes in %s could not be stopped; "
                       "check permissions and stop them by hand",
                       dir);
    }
    return CTL_EXIT_OK;
}
