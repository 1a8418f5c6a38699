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

static long long nowMs(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleepMs(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static int mkdirP(const char *path)
{
    char buf[PATH_MAX];
    size_t len = strlen(path);
    if (len == 0 || len >= sizeof buf) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(buf, path, len + 1);
    for (char *p = buf + 1; *p != '\0'; p++) {
        if (*p == '/') {
            *p = '\0';
            if (mkdir(buf, 0755) != 0 && errno != EEXIST) {
                return -1;
            }
            *p = '/';
        }
    }
    if (mkdir(buf, 0755) != 0 && errno != EEXIST) {
        return -1;
    }
    return 0;
}

/* Read /proc/PID/cmdline into argv-like pieces; 1 if it looks like ledgerd
 * (some argument's base name contains "ledgerd"). */
static int pidIsLedgerd(pid_t pid)
{
    char path[64];
    char buf[8192];
    ssize_t n;
    int fd;
    snprintf(path, sizeof path, "/proc/%d/cmdline", (int)pid);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return 0;
    }
    n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) {
        return 0;
    }
    buf[n] = '\0';
    for (ssize_t off = 0; off < n; off += (ssize_t)strlen(buf + off) + 1) {
        const char *arg = buf + off;
        const char *base = strrchr(arg, '/');
        base = base != NULL ? base + 1 : arg;
        if (strstr(base, "ledgerd") != NULL) {
            return 1;
        }
    }
    return 0;
}

/* Alive and not a zombie. */
static int pidAlive(pid_t pid)
{
    char path[64];
    char buf[512];
    FILE *f;
    char *close_paren;
    if (pid <= 0 || (kill(pid, 0) != 0 && errno != EPERM)) {
        return 0;
    }
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    f = fopen(path, "r");
    if (f == NULL) {
        return 0;
    }
    if (fgets(buf, sizeof buf, f) == NULL) {
        fclose(f);
        return 0;
    }
    fclose(f);
    close_paren = strrchr(buf, ')');
    if (close_paren != NULL && close_paren[1] == ' ' &&
        (close_paren[2] == 'Z' || close_paren[2] == 'X')) {
        return 0;
    }
    return 1;
}

static pid_t readPidFile(const char *path)
{
    FILE *f = fopen(path, "r");
    long v = 0;
    if (f == NULL) {
        return 0;
    }
    if (fscanf(f, "%ld", &v) != 1 || v <= 0 || v > INT_MAX) {
        v = 0;
    }
    fclose(f);
    return (pid_t)v;
}

static int writeFileAtomic(const char *path, const char *text)
{
    char tmp[PATH_MAX + 8];
    FILE *f;
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    f = fopen(tmp, "w");
    if (f == NULL) {
        return -1;
    }
    if (fputs(text, f) < 0 || fclose(f) != 0) {
        unlink(tmp);
        return -1;
    }
    return rename(tmp, path);
}

/* Last non-empty line of a log file, for error messages. */
static void lastLogLine(const char *path, char *out, size_t outlen)
{
    char buf[4096];
    FILE *f = fopen(path, "r");
    long size;
    size_t n;
    char *end;
    char *start;
    out[0] = '\0';
    if (f == NULL) {
        return;
    }
    fseek(f, 0, SEEK_END);
    size = ftell(f);
    fseek(f, size > (long)sizeof buf - 1 ? size - (long)sizeof buf + 1 : 0,
          SEEK_SET);
    n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    end = buf + n;
    while (end > buf &&
           (end[-1] == '\n' || end[-1] == '\r' || end[-1] == ' ')) {
        *--end = '\0';
    }
    start = strrchr(buf, '\n');
    start = start != NULL ? start + 1 : buf;
    if (strncmp(start, "--- ledgerctl", 13) == 0) {
        return; /* Our own start banner: the node printed nothing. */
    }
    snprintf(out, outlen, "%s", start);
}

static int isExecutable(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode) &&
           access(path, X_OK) == 0;
}

/* Find ledgerd: $LEDGERD, next to this executable, then $PATH. */
static int findLedgerd(char *out, size_t outlen)
{
    const char *env = getenv("LEDGERD");
    char self[PATH_MAX];
    const char *path;
    ssize_t n;

    if (env != NULL && env[0] != '\0') {
        if (!isExecutable(env)) {
            return ctlFail("cluster up: LEDGERD=%s is not an executable "
                           "file; point LEDGERD at the ledgerd binary",
                           env);
        }
        snprintf(out, outlen, "%s", env);
        return 0;
    }
    n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n > 0) {
        char *slash;
        self[n] = '\0';
        slash = strrchr(self, '/');
        if (slash != NULL) {
            *slash = '\0';
            snprintf(out, outlen, "%s/ledgerd", self);
            if (isExecutable(out)) {
                return 0;
            }
        }
    }
    path = getenv("PATH");
    while (path != NULL && *path != '\0') {
        const char *colon = strchr(path, ':');
        size_t len = colon != NULL ? (size_t)(colon - path) : strlen(path);
        if (len > 0 && len < outlen - 16) {
            snprintf(out, outlen, "%.*s/ledgerd", (int)len, path);
            if (isExecutable(out)) {
                return 0;
            }
        }
        path = colon != NULL ? colon + 1 : NULL;
    }
    return ctlFail("cluster up: cannot find the ledgerd binary (not next to "
                   "ledgerctl, not in PATH); set LEDGERD=/path/to/ledgerd");
}

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
    rv = writeFileAtomic(path, text);
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
    char pidtext[32];
    int pfd[2];
    int child_errno = 0;
    ssize_t got;
    pid_t pid;

    snprintf(id, sizeof id, "%u", n->id);
    snprintf(data_dir, sizeof data_dir, "%s/node%u", dir, n->id);
    snprintf(raft_addr, sizeof raft_addr, "%s:%u", CLUSTER__HOST,
             l->raft_port + n->id - 1);
    if (mkdirP(data_dir) != 0) {
        return ctlFail("cluster up: create %s: %s; check --dir", data_dir,
                       strerror(errno));
    }
    if (pipe2(pfd, O_CLOEXEC) != 0) {
        return ctlFail("cluster up: pipe: %s", strerror(errno));
    }
    fflush(stdout);
    fflush(stderr);
    pid = fork();
    if (pid < 0) {
        close(pfd[0]);
        close(pfd[1]);
        return ctlFail("cluster up: fork: %s", strerror(errno));
    }
    if (pid == 0) {
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
        int fd;
        int e;
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
        close(pfd[0]);
        setsid();
        fd = open("/dev/null", O_RDONLY);
        if (fd >= 0) {
            dup2(fd, 0);
            if (fd != 0) {
                close(fd);
            }
        }
        fd = open(n->log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            if (fd > 2) {
                close(fd);
            }
        }
        dprintf(2,
                "--- ledgerctl cluster up: starting node %u: %s --id %s "
                "--data-dir %s --raft-addr %s --api-addr %s ---\n",
                n->id, ledgerd, id, data_dir, raft_addr, n->api_addr);
        execv(ledgerd, args);
        e = errno;
        dprintf(2, "ledgerctl: exec %s: %s\n", ledgerd, strerror(e));
        if (write(pfd[1], &e, sizeof e) < 0) {
            /* Nothing more to do: the parent sees the exit. */
        }
        _exit(127);
    }
    close(pfd[1]);
    do {
        got = read(pfd[0], &child_errno, sizeof child_errno);
    } while (got < 0 && errno == EINTR);
    close(pfd[0]);
    if (got == (ssize_t)sizeof child_errno) {
        waitpid(pid, NULL, 0);
        return ctlFail("cluster up: cannot run %s: %s; set LEDGERD to the "
                       "ledgerd binary",
                       ledgerd, strerror(child_errno));
    }
    n->pid = pid;
    n->started = 1;
    snprintf(pidtext, sizeof pidtext, "%d\n", (int)pid);
    if (writeFileAtomic(n->pid_path, pidtext) != 0) {
        return ctlFail("cluster up: write %s: %s", n->pid_path,
                       strerror(errno));
    }
    return 0;
}

/* Has a node died? For our children, reap and describe the exit. */
static int nodeDied(struct node *n, char *why, size_t whylen)
{
    if (n->pid == 0) {
        return 0;
    }
    if (n->started) {
        int st;
        pid_t r = waitpid(n->pid, &st, WNOHANG);
        if (r == 0) {
            return 0;
        }
        if (r == n->pid && WIFEXITED(st)) {
            snprintf(why, whylen, "exited with status %d", WEXITSTATUS(st));
        } else if (r == n->pid && WIFSIGNALED(st)) {
            snprintf(why, whylen, "was killed by signal %d", WTERMSIG(st));
        } else {
            snprintf(why, whylen, "exited");
        }
        return 1;
    }
    if (pidAlive(n->pid)) {
        return 0;
    }
    snprintf(why, whylen, "exited");
    return 1;
}

/* Stop the nodes this invocation started (after a failed start-up). */
static void stopStarted(struct node *nodes, unsigned n_nodes)
{
    long long deadline = nowMs() + 5000;
    for (unsigned i = 0; i < n_nodes; i++) {
        if (nodes[i].started && nodes[i].pid > 0) {
            kill(nodes[i].pid, SIGTERM);
        }
    }
    for (unsigned i = 0; i < n_nodes; i++) {
        struct node *n = &nodes[i];
        if (!n->started || n->pid <= 0) {
            continue;
        }
        while (waitpid(n->pid, NULL, WNOHANG) == 0) {
            if (nowMs() > deadline) {
                kill(n->pid, SIGKILL);
                waitpid(n->pid, NULL, 0);
                break;
            }
            sleepMs(50);
        }
        unlink(n->pid_path);
        n->pid = 0;
    }
}

/* GET `path` from one node (short timeout, the token and TLS files of
 * ctl); NULL if no 200 answer. */
static json_t *getJson(const struct ctl *ctl, const char *addr,
                       const char *path)
{
    struct ledger_http_response r;
    ledger_client *c;
    char err[256];
    json_t *v = NULL;

    if (ledger_client_create(addr, ctl->token, &c, err, sizeof err) != 0) {
        return NULL;
    }
    ledger_client_set_timeout(c, 1000);
    if ((ctl->tls_ca == NULL && ctl->tls_cert == NULL) ||
        ledger_client_set_tls(c, ctl->tls_ca, ctl->tls_cert, ctl->tls_key) ==
            0) {
        if (ledger_client_call_one(c, 0, "GET", path, NULL, 0, &r) == 0) {
            if (r.status == 200) {
                v = json_loadb(r.body, r.body_len, 0, NULL);
            }
            ledger_http_response_free(&r);
        }
    }
    ledger_client_destroy(c);
    return v;
}

static json_t *clusterStatusFrom(const struct ctl *ctl, const char *addr)
{
    return getJson(ctl, addr, "/v1/cluster");
}

/* True when the process answering at the node's API is the one we started
 * (a stale process may hold the address while ours died on the lock). */
static int answersAsOurs(const struct ctl *ctl, const struct node *n)
{
    json_t *v = getJson(ctl, n->api_addr, "/v1/internal/status");
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
    const char *v = ctlFlag(flags, name);
    unsigned long long x;
    char what[64];
    *given = v != NULL;
    if (v == NULL) {
        return 0;
    }
    snprintf(what, sizeof what, "--%s", name);
    if (ctlParseU64(what, v, min, max, &x) != 0) {
        return CTL_EXIT_USAGE;
    }
    *out = (unsigned)x;
    return 0;
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
    if (findLedgerd(ledgerd, sizeof ledgerd) != 0) {
        return CTL_EXIT_FAIL;
    }
    if (mkdirP(dir) != 0) {
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
        old = readPidFile(n->pid_path);
        if (old > 0 && pidAlive(old) && pidIsLedgerd(old)) {
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
    deadline = nowMs() + (long long)wait_s * 1000;
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
            lastLogLine(nodes[i].log_path, last, sizeof last);
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
                settle_deadline = nowMs() + CLUSTER__SETTLE_MS;
            }
            if ((allMembersReachable(cluster) && started_answer) ||
                nowMs() > settle_deadline) {
                break;
            }
        }
        if (nowMs() > deadline) {
            if (cluster != NULL) {
                break;
            }
            stopStarted(nodes, l.nodes);
            rv = ctlFail("cluster up: no leader elected within %u s; see the "
                         "logs %s/node*.log",
                         wait_s, dir);
            goto out;
        }
        sleepMs(CLUSTER__POLL_MS);
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
        pids[i] = readPidFile(path);
        outcome[i] = "not running (stale pid file)";
        if (pids[i] > 0 && pidAlive(pids[i]) && pidIsLedgerd(pids[i])) {
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
    deadline = nowMs() + CLUSTER__STOP_MS;
    for (;;) {
        int alive = 0;
        for (unsigned i = 0; i < n_ids; i++) {
            alive += pids[i] > 0 && strcmp(outcome[i], "stopped") == 0 &&
                     pidAlive(pids[i]);
        }
        if (alive == 0 || nowMs() > deadline) {
            break;
        }
        sleepMs(100);
    }
    for (unsigned i = 0; i < n_ids; i++) {
        if (pids[i] > 0 && strcmp(outcome[i], "stopped") == 0 &&
            pidAlive(pids[i])) {
            long long kill_deadline = nowMs() + 5000;
            kill(pids[i], SIGKILL);
            outcome[i] = "killed (did not stop within 15 s of SIGTERM)";
            while (pidAlive(pids[i]) && nowMs() < kill_deadline) {
                sleepMs(50);
            }
            if (pidAlive(pids[i])) {
                outcome[i] = "still running after SIGKILL";
                failed = 1;
            }
        }
        if (pids[i] > 0 && !pidAlive(pids[i])) {
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
