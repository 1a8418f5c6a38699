/* A cluster of real replication layers on raft's in-memory fixture (see
 * repl_fixture.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "repl_fixture.h"
#include "tmpdir.h"

static struct fx *current; /* For the store fault hook and fx_fail. */

/* ---- Randomness -------------------------------------------------------- */

uint64_t fx_rand(struct fx *f)
{
    /* xorshift64* */
    uint64_t x = f->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    f->rng = x;
    return x * 0x2545F4914F6CDD1DULL;
}

static uint64_t seedFor(const char *test)
{
    const char *env = getenv("LEDGER_FIXTURE_SEED");
    uint64_t h = 1469598103934665603ULL; /* FNV-1a of the test's name */
    const char *p;

    if (env != NULL && strcmp(env, "random") == 0) {
        FILE *u = fopen("/dev/urandom", "rb");
        uint64_t s = 0;
        if (u != NULL) {
            if (fread(&s, sizeof s, 1, u) != 1) {
                s = (uint64_t)getpid();
            }
            fclose(u);
        }
        return s != 0 ? s : 1;
    }
    if (env != NULL && env[0] != '\0') {
        return strtoull(env, NULL, 0);
    }
    for (p = test; *p != '\0'; p++) {
        h ^= (unsigned char)*p;
        h *= 1099511628211ULL;
    }
    return h != 0 ? h : 1;
}

/* ---- Failing ----------------------------------------------------------- */

void fx_fail(struct fx *f, const char *file, int line, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    unsigned i;
    unsigned k;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n%s:%d: check failed: %s\n", file, line, msg);
    fprintf(stderr,
            "  test %s, seed %llu, fake time %llu ms: replay with "
            "LEDGER_FIXTURE_SEED=%llu\n",
            f->test, (unsigned long long)f->seed, (unsigned long long)fx_now(f),
            (unsigned long long)f->seed);
    for (i = 0; i < f->n; i++) {
        struct fx_node *nd = &f->nodes[i];
        unsigned first = nd->n_log > FX_LOG_RING ? nd->n_log - FX_LOG_RING : 0;
        if (!nd->started) {
            continue;
        }
        fprintf(stderr, "  --- node %llu, last log lines:\n",
                (unsigned long long)nd->id);
        for (k = first; k < nd->n_log; k++) {
            fprintf(stderr, "    %s\n", nd->log[k % FX_LOG_RING]);
        }
    }
    fail_msg("%s (seed %llu)", msg, (unsigned long long)f->seed);
}

/* ---- The test env ------------------------------------------------------ */

static int64_t envWall(struct ledger_repl_env *env)
{
    struct fx_node *nd = env->impl;
    return FX_EPOCH_MS + (int64_t)fx_now(nd->f);
}

static void envRandom(struct ledger_repl_env *env, void *buf, size_t len)
{
    struct fx_node *nd = env->impl;
    unsigned char *p = buf;
    size_t i;
    for (i = 0; i < len; i++) {
        p[i] = (unsigned char)fx_rand(nd->f);
    }
}

static void envStart(struct ledger_repl_env *env,
                     const struct ledger_repl_env_hooks *hooks)
{
    struct fx_node *nd = env->impl;
    nd->hooks = *hooks;
    nd->hooks_on = true;
}

static void envIdle(struct ledger_repl_env *env, bool on)
{
    struct fx_node *nd = env->impl;
    nd->idle_on = on;
}

static void envTimer(struct ledger_repl_env *env, uint64_t ms)
{
    struct fx_node *nd = env->impl;
    nd->timer_at =
        ms == LEDGER_REPL_TIMER_STOP ? UINT64_MAX : fx_now(nd->f) + ms;
}

static void envClose(struct ledger_repl_env *env, void (*cb)(void *arg),
                     void *arg)
{
    struct fx_node *nd = env->impl;
    nd->hooks_on = false;
    nd->idle_on = false;
    nd->timer_at = UINT64_MAX;
    nd->env_closing = true;
    nd->env_close_cb = cb;
    nd->env_close_arg = arg;
}

static void logCb(void *arg, int level, const char *msg)
{
    struct fx_node *nd = arg;
    static const char *names[] = {"debug", "info", "warn", "error"};
    char *slot = nd->log[nd->n_log % FX_LOG_RING];
    snprintf(slot, sizeof nd->log[0], "%6llu %s %s",
             (unsigned long long)fx_now(nd->f),
             names[level >= 0 && level < 4 ? level : 3], msg);
    nd->n_log++;
    if (getenv("LEDGER_FIXTURE_LOG") != NULL) {
        fprintf(stderr, "[node %llu] %s\n", (unsigned long long)nd->id, slot);
    }
}

static void leaderCb(void *arg, const struct ledger_repl_leader *l)
{
    struct fx_node *nd = arg;
    if (nd->n_leaders < FX_MAX_LEADER_EVENTS) {
        nd->leaders[nd->n_leaders].at = fx_now(nd->f);
        nd->leaders[nd->n_leaders].l = *l;
        nd->n_leaders++;
    }
}

/* ---- The catch-up source ----------------------------------------------- */

static int sourcePull(void *data, struct ledger_repl_pull *req)
{
    struct fx *f = data;
    unsigned k;
    for (k = 0; k < FX_MAX_PULLS; k++) {
        if (!f->pulls[k].used) {
            f->pulls[k].used = true;
            f->pulls[k].req = req;
            f->pulls[k].due = fx_now(f) + FX_PULL_LATENCY_MS;
            return 0;
        }
    }
    return -1;
}

static void sourceCancel(void *data, struct ledger_repl_pull *req)
{
    (void)data;
    (void)req; /* Answered at its due time anyway, like a real request. */
}

struct collect {
    struct ledger_event ev[FX_PULL_PAGE];
    size_t n;
};

static int collectEvent(void *arg, const struct ledger_event *ev)
{
    struct collect *c = arg;
    struct ledger_event *e = &c->ev[c->n++];
    *e = *ev;
    e->stream = strdup(ev->stream);
    e->type = strdup(ev->type);
    e->id = ev->id != NULL ? strdup(ev->id) : NULL;
    e->data = strndup(ev->data, ev->data_len);
    return 0;
}

static void servePull(struct fx *f, struct ledger_repl_pull *req)
{
    struct collect c;
    unsigned idx = (unsigned)(req->member - 1);
    struct fx_node *src = idx < f->n ? &f->nodes[idx] : NULL;
    uint64_t limit = req->to - req->after;
    size_t k;

    if (limit > FX_PULL_PAGE) {
        limit = FX_PULL_PAGE;
    }
    if (src == NULL || !src->started || src->closed || src->pull_fails ||
        !raft_fixture_alive(&f->rf, idx)) {
        req->cb(req, -1, NULL, 0, "fixture: member unreachable");
        return;
    }
    c.n = 0;
    if (ledger_store_read_positions(src->store, req->after + 1, limit,
                                    collectEvent, &c) != 0 ||
        c.n == 0) {
        req->cb(req, -1, NULL, 0, "fixture: no events");
    } else {
        src->pulls_served++;
        if (src->pull_tampers) {
            ((char *)c.ev[0].data)[0] ^= 1; /* breaks the hash */
        }
        req->cb(req, 0, c.ev, c.n, NULL);
    }
    for (k = 0; k < c.n; k++) {
        free((char *)c.ev[k].stream);
        free((char *)c.ev[k].type);
        free((char *)c.ev[k].id);
        free((char *)c.ev[k].data);
    }
}

/* ---- Store faults (SQLite's VFS system-call table) ---------------------- */

typedef ssize_t (*pwrite64_fn)(int, const void *, size_t, off_t);
static sqlite3_syscall_ptr origPwrite64;
static sqlite3_syscall_ptr origPwrite;
static char failingDir[FX_MAX_NODES][200];

static bool fdFails(int fd)
{
    char link[64];
    char path[PATH_MAX];
    ssize_t n;
    unsigned i;
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    n = readlink(link, path, sizeof path - 1);
    if (n <= 0) {
        return false;
    }
    path[n] = '\0';
    for (i = 0; i < FX_MAX_NODES; i++) {
        if (failingDir[i][0] != '\0' &&
            strncmp(path, failingDir[i], strlen(failingDir[i])) == 0) {
            return true;
        }
    }
    return false;
}

static ssize_t faultPwrite64(int fd, const void *buf, size_t n, off_t off)
{
    if (fdFails(fd)) {
        errno = ENOSPC;
        return -1;
    }
    return ((pwrite64_fn)origPwrite64)(fd, buf, n, off);
}

static ssize_t faultPwrite(int fd, const void *buf, size_t n, off_t off)
{
    if (fdFails(fd)) {
        errno = ENOSPC;
        return -1;
    }
    return ((pwrite64_fn)origPwrite)(fd, buf, n, off);
}

static void installFaultHooks(void)
{
    sqlite3_vfs *vfs = sqlite3_vfs_find(NULL);
    if (origPwrite64 == NULL && origPwrite == NULL && vfs != NULL &&
        vfs->xGetSystemCall != NULL) {
        origPwrite64 = vfs->xGetSystemCall(vfs, "pwrite64");
        origPwrite = vfs->xGetSystemCall(vfs, "pwrite");
        if (origPwrite64 != NULL) {
            vfs->xSetSystemCall(vfs, "pwrite64",
                                (sqlite3_syscall_ptr)faultPwrite64);
        }
        if (origPwrite != NULL) {
            vfs->xSetSystemCall(vfs, "pwrite",
                                (sqlite3_syscall_ptr)faultPwrite);
        }
    }
}

void fx_fail_store(struct fx *f, unsigned i, bool fail)
{
    installFaultHooks();
    if (fail) {
        snprintf(failingDir[i], sizeof failingDir[i], "%s/node%u/", f->dir,
                 i + 1);
    } else {
        failingDir[i][0] = '\0';
    }
}

/* ---- Set-up ------------------------------------------------------------ */

static void nodeInit(struct fx *f, unsigned i)
{
    struct fx_node *nd = &f->nodes[i];
    char dir[200];
    char err[256];

    memset(nd, 0, sizeof *nd);
    nd->f = f;
    nd->i = i;
    nd->id = i + 1;
    nd->timer_at = UINT64_MAX;
    snprintf(nd->raft_addr, sizeof nd->raft_addr, "%u", i + 1);
    snprintf(nd->api_addr, sizeof nd->api_addr, "node-%u", i + 1);
    snprintf(dir, sizeof dir, "%s/node%u", f->dir, i + 1);
    if (mkdir(dir, 0755) != 0) {
        fx_fail(f, __FILE__, __LINE__, "mkdir %s: %s", dir, strerror(errno));
    }
    snprintf(nd->db, sizeof nd->db, "%s/ledger.db", dir);
    if (ledger_store_open(nd->db, &nd->store, err, sizeof err) != 0) {
        fx_fail(f, __FILE__, __LINE__, "store: %s", err);
    }
    if (raft_fixture_grow(&f->rf, &nd->fsm) != 0) {
        fx_fail(f, __FILE__, __LINE__, "raft_fixture_grow");
    }
    nd->env.impl = nd;
    nd->env.io = &f->rf.servers[i].io;
    nd->env.raft = &f->rf.servers[i].raft;
    nd->env.fsm = &nd->fsm;
    nd->env.wall_ms = envWall;
    nd->env.random = envRandom;
    nd->env.start = envStart;
    nd->env.idle = envIdle;
    nd->env.timer = envTimer;
    nd->env.work = NULL;
    nd->env.close = envClose;
}

void fx_init(struct fx *f, const char *test, const struct fx_options *opt)
{
    unsigned i;

    memset(f, 0, sizeof *f);
    current = f;
    f->test = test;
    f->seed = seedFor(test);
    f->rng = f->seed;
    f->opt = *opt;
    if (f->opt.voters == 0) {
        f->opt.voters = f->opt.n;
    }
    if (f->opt.heartbeat_ms == 0) {
        f->opt.heartbeat_ms = 100;
    }
    if (f->opt.election_ms == 0) {
        f->opt.election_ms = 1000;
    }
    if (f->opt.snapshot_threshold == 0) {
        f->opt.snapshot_threshold = 1024;
    }
    if (f->opt.snapshot_trailing == 0) {
        f->opt.snapshot_trailing = 64;
    }
    if (f->opt.max_queue_ops == 0) {
        f->opt.max_queue_ops = 10000;
    }
    for (i = 0; i < FX_MAX_NODES; i++) {
        f->draw[i] = f->opt.draws[i] != 0 ? f->opt.draws[i] : f->opt.draw;
    }
    if (tmpdirCreate(f->dir, sizeof f->dir) != 0) {
        fail_msg("tmpdir: %s", strerror(errno));
    }
    raft_fixture_initialize(&f->rf);
    for (i = 0; i < opt->n; i++) {
        nodeInit(f, i);
        f->n++;
    }
}

unsigned fx_grow(struct fx *f)
{
    unsigned i = f->n;
    FX_CHECK(f, i < FX_MAX_NODES);
    nodeInit(f, i);
    f->n++;
    return i;
}

void fx_start(struct fx *f, unsigned i, bool bootstrap)
{
    struct fx_node *nd = &f->nodes[i];
    struct ledger_repl_member members[FX_MAX_NODES];
    struct ledger_repl_config cfg;
    char err[512];
    unsigned k;

    memset(members, 0, sizeof members);
    for (k = 0; k < f->opt.voters; k++) {
        members[k].id = k + 1;
        snprintf(members[k].raft_addr, sizeof members[k].raft_addr, "%u",
                 k + 1);
        snprintf(members[k].api_addr, sizeof members[k].api_addr, "node-%u",
                 k + 1);
    }
    memset(&cfg, 0, sizeof cfg);
    cfg.id = nd->id;
    cfg.raft_addr = nd->raft_addr;
    cfg.api_addr = nd->api_addr;
    cfg.bootstrap = bootstrap ? members : NULL;
    cfg.n_bootstrap = bootstrap ? f->opt.voters : 0;
    cfg.heartbeat_ms = f->opt.heartbeat_ms;
    cfg.election_ms = f->opt.election_ms;
    cfg.snapshot_threshold = f->opt.snapshot_threshold;
    cfg.snapshot_trailing = f->opt.snapshot_trailing;
    cfg.max_queue_ops = f->opt.max_queue_ops;
    cfg.max_queue_bytes = 64u << 20;
    cfg.catchup.data = f;
    cfg.catchup.pull = sourcePull;
    cfg.catchup.cancel = sourceCancel;
    /* raft draws its first timeout in raft_start, before any step. */
    raft_fixture_set_randomized_election_timeout(
        &f->rf, i,
        f->draw[i] != 0
            ? f->draw[i]
            : f->opt.election_ms + (unsigned)(fx_rand(f) % f->opt.election_ms));
    if (ledger_repl_start_env(&nd->env, nd->store, &cfg, logCb, nd, &nd->repl,
                              err, sizeof err) != 0) {
        fx_fail(f, __FILE__, __LINE__, "start node %u: %s", i + 1, err);
    }
    ledger_repl_on_leader(nd->repl, leaderCb, nd);
    nd->started = true;
}

static bool clusterReady(struct fx *f, void *arg)
{
    unsigned l = fx_leader(f);
    unsigned i;
    (void)arg;
    if (l == FX_NONE) {
        return false;
    }
    for (i = 0; i < f->opt.voters; i++) {
        struct ledger_repl_status st = fx_status(f, i);
        if (st.cluster_id[0] == '\0') {
            return false;
        }
    }
    return true;
}

void fx_start_cluster(struct fx *f, const char *test,
                      const struct fx_options *opt)
{
    unsigned i;
    fx_init(f, test, opt);
    for (i = 0; i < f->n; i++) {
        fx_start(f, i, i < f->opt.voters);
    }
    FX_CHECK_MSG(f, fx_step_until(f, clusterReady, NULL, 10000),
                 "no leader with a cluster id on every node in 10 s");
}

static void runEnvCloses(struct fx *f)
{
    unsigned i;
    for (i = 0; i < f->n; i++) {
        struct fx_node *nd = &f->nodes[i];
        if (nd->env_closing && nd->env_close_cb != NULL) {
            void (*cb)(void *) = nd->env_close_cb;
            nd->env_close_cb = NULL;
            cb(nd->env_close_arg);
        }
    }
}

static void layerClosed(void *arg)
{
    struct fx_node *nd = arg;
    nd->repl = NULL;
    nd->closed = true;
}

void fx_close(struct fx *f)
{
    unsigned i;
    unsigned k;

    if (f->dir[0] == '\0') {
        return;
    }
    for (i = 0; i < FX_MAX_NODES; i++) {
        failingDir[i][0] = '\0';
    }
    /* Raft first (it calls into the layers while it closes), then the
     * layers, then the stores. */
    raft_fixture_close(&f->rf);
    for (k = 0; k < FX_MAX_PULLS; k++) {
        if (f->pulls[k].used) {
            f->pulls[k].used = false;
            f->pulls[k].req->cb(f->pulls[k].req, -1, NULL, 0, "closing");
        }
    }
    for (i = 0; i < f->n; i++) {
        struct fx_node *nd = &f->nodes[i];
        if (nd->started && nd->repl != NULL) {
            ledger_repl_close(nd->repl, layerClosed, nd);
        }
    }
    runEnvCloses(f);
    for (i = 0; i < f->n; i++) {
        ledger_store_close(f->nodes[i].store);
        f->nodes[i].store = NULL;
    }
    tmpdirRemove(f->dir);
    f->dir[0] = '\0';
    current = NULL;
}

/* ---- Driving ----------------------------------------------------------- */

int fx_test_setup(void **state)
{
    struct fx_test *t = calloc(1, sizeof *t);
    assert_non_null(t);
    *state = t;
    return 0;
}

int fx_test_teardown(void **state)
{
    struct fx_test *t = *state;
    fx_close(&t->fx);
    free(t);
    return 0;
}

uint64_t fx_now(struct fx *f)
{
    return raft_fixture_time(&f->rf);
}

void fx_run(struct fx *f)
{
    uint64_t now = fx_now(f);
    unsigned i;
    unsigned k;

    for (k = 0; k < FX_MAX_PULLS; k++) {
        if (f->pulls[k].used && f->pulls[k].due <= now) {
            struct ledger_repl_pull *req = f->pulls[k].req;
            f->pulls[k].used = false;
            servePull(f, req);
        }
    }
    for (i = 0; i < f->n; i++) {
        struct fx_node *nd = &f->nodes[i];
        if (!nd->started || !nd->hooks_on || !raft_fixture_alive(&f->rf, i)) {
            continue;
        }
        if (nd->timer_at <= now) {
            nd->timer_at = UINT64_MAX;
            nd->hooks.timer(nd->hooks.arg);
        }
        if (nd->hooks_on) {
            nd->hooks.check(nd->hooks.arg);
        }
        if (nd->hooks_on && nd->idle_on) {
            nd->hooks.idle(nd->hooks.arg);
        }
    }
    runEnvCloses(f);
}

/* Random choices of this step: election timeout draws in [T, 2T), and,
 * when asked for, network latency and message loss. */
static void drawStep(struct fx *f)
{
    unsigned i;
    unsigned j;
    unsigned t = f->opt.election_ms;
    for (i = 0; i < f->n; i++) {
        unsigned d = t + (unsigned)(fx_rand(f) % t);
        raft_fixture_set_randomized_election_timeout(
            &f->rf, i, f->draw[i] != 0 ? f->draw[i] : d);
        if (f->jitter) {
            raft_fixture_set_network_latency(&f->rf, i,
                                             5 + (unsigned)(fx_rand(f) % 21));
        }
    }
    if (f->loss_pct == 0) {
        return;
    }
    for (i = 0; i < f->n; i++) {
        for (j = 0; j < f->n; j++) {
            bool drop;
            if (i == j || !raft_fixture_alive(&f->rf, i) ||
                !raft_fixture_alive(&f->rf, j)) {
                continue;
            }
            drop = fx_rand(f) % 100 < f->loss_pct;
            if (drop && !raft_fixture_saturated(&f->rf, i, j)) {
                raft_fixture_saturate(&f->rf, i, j);
            } else if (!drop && raft_fixture_saturated(&f->rf, i, j)) {
                raft_fixture_desaturate(&f->rf, i, j);
            }
        }
    }
}

void fx_step(struct fx *f)
{
    unsigned i;
    /* An io that raft never started has no tick time (fixture.c ioInit
     * leaves it unset): every server must run before time moves. */
    for (i = 0; i < f->n; i++) {
        FX_CHECK_MSG(f, f->nodes[i].started, "node %u was never started",
                     i + 1);
    }
    fx_run(f);
    drawStep(f);
    raft_fixture_step(&f->rf);
    fx_run(f);
}

bool fx_step_until(struct fx *f, bool (*pred)(struct fx *f, void *arg),
                   void *arg, unsigned max_ms)
{
    uint64_t start = fx_now(f);
    fx_run(f);
    while (!pred(f, arg)) {
        if (fx_now(f) - start >= max_ms) {
            return false;
        }
        fx_step(f);
    }
    return true;
}

static bool never(struct fx *f, void *arg)
{
    (void)f;
    (void)arg;
    return false;
}

void fx_step_for(struct fx *f, unsigned ms)
{
    fx_step_until(f, never, NULL, ms);
}

/* ---- Faults ------------------------------------------------------------ */

void fx_cut(struct fx *f, unsigned i, unsigned j)
{
    FX_CHECK(f, f->loss_pct == 0);
    if (!raft_fixture_saturated(&f->rf, i, j)) {
        raft_fixture_saturate(&f->rf, i, j);
    }
}

void fx_heal(struct fx *f, unsigned i, unsigned j)
{
    if (raft_fixture_saturated(&f->rf, i, j)) {
        raft_fixture_desaturate(&f->rf, i, j);
    }
}

void fx_isolate(struct fx *f, unsigned i)
{
    unsigned j;
    for (j = 0; j < f->n; j++) {
        if (j != i) {
            fx_cut(f, i, j);
            fx_cut(f, j, i);
        }
    }
}

void fx_rejoin(struct fx *f, unsigned i)
{
    unsigned j;
    for (j = 0; j < f->n; j++) {
        if (j != i && raft_fixture_alive(&f->rf, j)) {
            fx_heal(f, i, j);
            fx_heal(f, j, i);
        }
    }
}

void fx_freeze(struct fx *f, unsigned i)
{
    raft_fixture_kill(&f->rf, i);
}

void fx_thaw(struct fx *f, unsigned i)
{
    raft_fixture_revive(&f->rf, i);
}

/* ---- Looking ----------------------------------------------------------- */

struct ledger_repl_status fx_status(struct fx *f, unsigned i)
{
    struct ledger_repl_status st;
    memset(&st, 0, sizeof st);
    if (f->nodes[i].started && f->nodes[i].repl != NULL) {
        ledger_repl_status(f->nodes[i].repl, &st);
    }
    return st;
}

unsigned fx_leader(struct fx *f)
{
    unsigned best = FX_NONE;
    uint64_t term = 0;
    unsigned i;
    for (i = 0; i < f->n; i++) {
        struct ledger_repl_status st;
        if (!f->nodes[i].started || f->nodes[i].repl == NULL ||
            !raft_fixture_alive(&f->rf, i)) {
            continue;
        }
        st = fx_status(f, i);
        if (st.is_leader && st.term > term) {
            best = i;
            term = st.term;
        }
    }
    return best;
}

static bool hasLeader(struct fx *f, void *arg)
{
    (void)arg;
    return fx_leader(f) != FX_NONE;
}

unsigned fx_wait_leader(struct fx *f, unsigned max_ms)
{
    return fx_step_until(f, hasLeader, NULL, max_ms) ? fx_leader(f) : FX_NONE;
}

uint64_t fx_position(struct fx *f, unsigned i)
{
    struct ledger_store_state st;
    if (ledger_store_get_state(f->nodes[i].store, &st) != 0) {
        return 0;
    }
    return st.position;
}

void fx_head(struct fx *f, unsigned i, uint8_t out[LEDGER_HASH_LEN])
{
    struct ledger_store_state st;
    memset(out, 0, LEDGER_HASH_LEN);
    if (ledger_store_get_state(f->nodes[i].store, &st) == 0) {
        memcpy(out, st.head_hash, LEDGER_HASH_LEN);
    }
}

/* ---- Acting ------------------------------------------------------------ */

static void opCb(void *arg, int status, const struct ledger_op_result *res)
{
    struct fx_op *op = arg;
    op->done = true;
    op->status = status;
    op->at = current != NULL ? fx_now(current) : 0;
    if (res != NULL) {
        op->error = res->error;
        op->outcome = res->append.outcome;
        op->first_seq = res->append.first_seq;
        op->last_seq = res->append.last_seq;
        op->position = res->append.position;
    }
}

int fx_append(struct fx *f, unsigned i, const char *stream, unsigned n,
              const char *id, struct fx_op *op)
{
    struct ledger_event_in ev[64];
    char ids[64][48];
    char data[64][32];
    struct op_buf buf;
    unsigned k;

    FX_CHECK(f, n > 0 && n <= 64);
    memset(op, 0, sizeof *op);
    for (k = 0; k < n; k++) {
        snprintf(data[k], sizeof data[k], "{\"k\":%u}", k);
        ev[k].type = "test";
        ev[k].data = data[k];
        ev[k].data_len = strlen(data[k]);
        ev[k].id = NULL;
        if (id != NULL) {
            snprintf(ids[k], sizeof ids[k], "%s-%u", id, k);
            ev[k].id = ids[k];
        }
    }
    FX_CHECK(f, op_encode_append(stream, false, 0, ev, n, &buf) == 0);
    return ledger_repl_submit(f->nodes[i].repl, &buf, opCb, op);
}

bool fx_op_done(struct fx *f, void *op)
{
    (void)f;
    return ((struct fx_op *)op)->done;
}

int fx_append_sync(struct fx *f, unsigned i, const char *stream, unsigned n,
                   const char *id, struct fx_op *op)
{
    int rv = fx_append(f, i, stream, n, id, op);
    if (rv != 0) {
        return rv;
    }
    FX_CHECK_MSG(f, fx_step_until(f, fx_op_done, op, 10000),
                 "append on node %u not answered in 10 s", i + 1);
    return op->status;
}

void fx_fill(struct fx *f, unsigned count)
{
    unsigned k;
    for (k = 0; k < count; k++) {
        struct fx_op op;
        char id[32];
        unsigned l = fx_wait_leader(f, 10000);
        FX_CHECK(f, l != FX_NONE);
        snprintf(id, sizeof id, "fill-%llu-%u", (unsigned long long)fx_now(f),
                 k);
        FX_CHECK_EQ(f, fx_append_sync(f, l, "fill", 1, id, &op), 0);
    }
}

static void barrierCb(void *arg, int status, uint64_t index)
{
    struct fx_barrier *b = arg;
    b->done = true;
    b->status = status;
    b->index = index;
    b->at = current != NULL ? fx_now(current) : 0;
}

int fx_barrier(struct fx *f, unsigned i, struct fx_barrier *b)
{
    memset(b, 0, sizeof *b);
    return ledger_repl_barrier(f->nodes[i].repl, barrierCb, b);
}

void fx_change_cb(void *arg, int status, const char *msg)
{
    struct fx_change *c = arg;
    c->done = true;
    c->status = status;
    snprintf(c->msg, sizeof c->msg, "%s", msg != NULL ? msg : "");
    c->at = current != NULL ? fx_now(current) : 0;
}

bool fx_change_done(struct fx *f, void *change)
{
    (void)f;
    return ((struct fx_change *)change)->done;
}

bool fx_all_applied(struct fx *f, void *unused)
{
    unsigned l = fx_leader(f);
    struct ledger_repl_status ls;
    unsigned i;
    (void)unused;
    if (l == FX_NONE) {
        return false;
    }
    ls = fx_status(f, l);
    for (i = 0; i < f->n; i++) {
        struct ledger_repl_status st;
        if (!f->nodes[i].started || f->nodes[i].repl == NULL ||
            !raft_fixture_alive(&f->rf, i)) {
            continue;
        }
        st = fx_status(f, i);
        if (st.applied_index < ls.last_index || st.catching_up) {
            return false;
        }
    }
    return true;
}
