/* Replication layer with real components: a one-node Raft cluster over
 * raft_uv in a temporary directory, a real SQLite store, a real libuv loop.
 *
 * Scenarios: ops submitted in one loop turn share an entry (group commit);
 * a duplicate id returns the original result; after a restart Raft replays
 * its log and the state machine skips what the store already holds (no
 * event twice, numbering continues); snapshots taken every few entries are
 * restored at start; the write queue bound refuses at once. */
#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "replication/repl.h"
#include "tmpdir.h"

#define DEADLINE_MS 20000
#define N_BURST 200

struct fixture {
    char dir[128];
    char db[256];
    char raft_dir[256];
    char raft_addr[64];
    char api_addr[64];
    uv_loop_t loop;
    ledger_store *store;
    ledger_repl *repl;
    int closed;
};

struct result {
    int done;
    int status;
    struct ledger_op_result res;
};

static int freePort(void)
{
    struct sockaddr_in sa;
    socklen_t len = sizeof sa;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int port;
    assert_true(fd >= 0);
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    port = ntohs(sa.sin_port);
    close(fd);
    return port;
}

static void deadlineCb(uv_timer_t *t)
{
    *(int *)t->data = 1;
}

/* Run the loop until *flag or fn(f) holds, failing at the deadline. */
static void runUntil(struct fixture *f, int (*fn)(struct fixture *),
                     const int *flag)
{
    uv_timer_t t;
    int expired = 0;
    assert_int_equal(uv_timer_init(&f->loop, &t), 0);
    t.data = &expired;
    uv_timer_start(&t, deadlineCb, DEADLINE_MS, 0);
    while (!expired && !(flag != NULL && *flag) && !(fn != NULL && fn(f))) {
        uv_run(&f->loop, UV_RUN_ONCE);
    }
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_false(expired);
}

static int isReady(struct fixture *f)
{
    struct ledger_repl_status st;
    ledger_repl_status(f->repl, &st);
    return st.is_leader && st.cluster_id[0] != '\0';
}

static void startNoWait(struct fixture *f, bool bootstrap, unsigned threshold,
                        size_t max_queue);

static void start(struct fixture *f, bool bootstrap, unsigned threshold,
                  size_t max_queue)
{
    startNoWait(f, bootstrap, threshold, max_queue);
    runUntil(f, isReady, NULL);
}

static void startNoWait(struct fixture *f, bool bootstrap, unsigned threshold,
                        size_t max_queue)
{
    struct ledger_repl_member m;
    struct ledger_repl_config cfg;
    char err[512];

    assert_int_equal(ledger_store_open(f->db, &f->store, err, sizeof err), 0);
    memset(&m, 0, sizeof m);
    m.id = 1;
    snprintf(m.raft_addr, sizeof m.raft_addr, "%s", f->raft_addr);
    snprintf(m.api_addr, sizeof m.api_addr, "%s", f->api_addr);
    memset(&cfg, 0, sizeof cfg);
    cfg.id = 1;
    cfg.raft_dir = f->raft_dir;
    cfg.raft_addr = f->raft_addr;
    cfg.api_addr = f->api_addr;
    cfg.bootstrap = bootstrap ? &m : NULL;
    cfg.n_bootstrap = bootstrap ? 1 : 0;
    cfg.heartbeat_ms = 20;
    cfg.election_ms = 100;
    cfg.snapshot_threshold = threshold;
    cfg.snapshot_trailing = threshold / 2;
    cfg.max_queue_ops = max_queue;
    cfg.max_queue_bytes = 64u << 20;
    if (ledger_repl_start(&f->loop, f->store, &cfg, NULL, NULL, &f->repl, err,
                          sizeof err) != 0) {
        fail_msg("repl start: %s", err);
    }
}

static void closedCb(void *arg)
{
    ((struct fixture *)arg)->closed = 1;
}

static void stop(struct fixture *f)
{
    f->closed = 0;
    ledger_repl_close(f->repl, closedCb, f);
    runUntil(f, NULL, &f->closed);
    f->repl = NULL;
    ledger_store_close(f->store);
    f->store = NULL;
}

static int setUp(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    assert_int_equal(tmpdirCreate(f->dir, sizeof f->dir), 0);
    snprintf(f->db, sizeof f->db, "%s/ledger.db", f->dir);
    snprintf(f->raft_dir, sizeof f->raft_dir, "%s/raft", f->dir);
    assert_int_equal(mkdir(f->raft_dir, 0755), 0);
    snprintf(f->raft_addr, sizeof f->raft_addr, "127.0.0.1:%d", freePort());
    snprintf(f->api_addr, sizeof f->api_addr, "127.0.0.1:%d", freePort());
    assert_int_equal(uv_loop_init(&f->loop), 0);
    *state = f;
    return 0;
}

static int tearDown(void **state)
{
    struct fixture *f = *state;
    if (f->repl != NULL) {
        stop(f);
    }
    uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    assert_int_equal(tmpdirRemove(f->dir), 0);
    free(f);
    return 0;
}

static void opCb(void *arg, int status, const struct ledger_op_result *res)
{
    struct result *r = arg;
    r->done = 1;
    r->status = status;
    if (res != NULL) {
        r->res = *res;
    }
}

static int submitAppend(struct fixture *f, const char *stream, const char *id,
                        struct result *r)
{
    struct ledger_event_in e = {"t", id, "{\"x\":1}", 7};
    struct op_buf op;
    assert_int_equal(op_encode_append(stream, false, 0, &e, 1, &op), 0);
    return ledger_repl_submit(f->repl, &op, opCb, r);
}

/* Submit one append and wait for its result. */
static struct ledger_append_result
appendWait(struct fixture *f, const char *stream, const char *id)
{
    struct result r;
    memset(&r, 0, sizeof r);
    assert_int_equal(submitAppend(f, stream, id, &r), 0);
    runUntil(f, NULL, &r.done);
    assert_int_equal(r.status, 0);
    assert_int_equal(r.res.error, 0);
    return r.res.append;
}

static uint64_t storePosition(struct fixture *f)
{
    struct ledger_store_state st;
    assert_int_equal(ledger_store_get_state(f->store, &st), 0);
    return st.position;
}

/* Snapshot files raft_uv wrote ("snapshot-TERM-INDEX-TIMESTAMP"). */
static int countSnapshots(struct fixture *f)
{
    DIR *d = opendir(f->raft_dir);
    struct dirent *e;
    int n = 0;
    assert_non_null(d);
    while ((e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, "snapshot-", 9) == 0 &&
            strstr(e->d_name, ".meta") == NULL) {
            n++;
        }
    }
    closedir(d);
    return n;
}

static struct result burst[N_BURST];

static int burstDone(struct fixture *f)
{
    (void)f;
    for (int i = 0; i < N_BURST; i++) {
        if (!burst[i].done) {
            return 0;
        }
    }
    return 1;
}

/* N_BURST appends submitted in one loop turn are applied in a handful of
 * entries (not one each), get contiguous seqs in submission order, and a
 * duplicate id answers the original result. A restart replays the log
 * without applying anything twice, and numbering continues. */
static void test_group_commit_and_replay(void **state)
{
    struct fixture *f = *state;
    struct ledger_repl_status before;
    struct ledger_repl_status after;
    struct ledger_append_result dup;
    struct ledger_verify_result v;
    char id[32];
    int i;

    start(f, true, 1024, 10000);
    ledger_repl_status(f->repl, &before);
    memset(burst, 0, sizeof burst);
    for (i = 0; i < N_BURST; i++) {
        snprintf(id, sizeof id, "e%d", i);
        assert_int_equal(submitAppend(f, "s", id, &burst[i]), 0);
    }
    runUntil(f, burstDone, NULL);
    ledger_repl_status(f->repl, &after);
    for (i = 0; i < N_BURST; i++) {
        assert_int_equal(burst[i].status, 0);
        assert_int_equal(burst[i].res.append.outcome, LEDGER_APPEND_OK);
        assert_int_equal(burst[i].res.append.first_seq, (uint64_t)i + 1);
    }
    /* One entry per flush, at most REPL_MAX_INFLIGHT in flight. */
    assert_true(after.last_index - before.last_index <= REPL_MAX_INFLIGHT);

    dup = appendWait(f, "s", "e5");
    assert_int_equal(dup.outcome, LEDGER_APPEND_DUPLICATE);
    assert_int_equal(dup.first_seq, 6);
    assert_memory_equal(dup.hash, burst[5].res.append.hash, LEDGER_HASH_LEN);

    stop(f);
    start(f, true, 1024, 10000); /* bootstrap is ignored on restart */
    assert_int_equal(storePosition(f), N_BURST);
    assert_int_equal(appendWait(f, "s", "after").first_seq, N_BURST + 1);
    assert_int_equal(ledger_store_verify(f->store, &v), 0);
    assert_true(v.ok);
    assert_int_equal(v.applied_position, N_BURST + 1);
}

/* With a snapshot every 8 entries, 40 entries produce snapshots and a
 * compacted log; a restart restores the latest snapshot over a store that
 * already holds it, replays the rest, and loses nothing. */
static void test_snapshots_and_restart(void **state)
{
    struct fixture *f = *state;
    struct ledger_verify_result v;
    char id[32];
    int i;

    start(f, true, 8, 10000);
    for (i = 0; i < 40; i++) {
        snprintf(id, sizeof id, "k%d", i);
        assert_int_equal(appendWait(f, i % 2 ? "a" : "b", id).position,
                         (uint64_t)i + 1);
    }
    stop(f);
    assert_true(countSnapshots(f) >= 1);
    start(f, false, 8, 10000);
    assert_int_equal(storePosition(f), 40);
    assert_int_equal(appendWait(f, "a", "k1").outcome, LEDGER_APPEND_DUPLICATE);
    assert_int_equal(appendWait(f, "a", "new").position, 41);
    assert_int_equal(ledger_store_verify(f->store, &v), 0);
    assert_true(v.ok);
}

/* Past max_queue_ops queued ops, submit refuses at once (nothing queued,
 * no callback); the accepted ones all complete. */
static void test_queue_bound(void **state)
{
    struct fixture *f = *state;
    struct result r[10];
    int accepted = 0;
    int i;

    start(f, true, 1024, 5);
    memset(r, 0, sizeof r);
    for (i = 0; i < 10; i++) {
        char id[16];
        int rv;
        snprintf(id, sizeof id, "q%d", i);
        rv = submitAppend(f, "q", id, &r[i]);
        if (rv == 0) {
            accepted++;
        } else {
            assert_int_equal(rv, LEDGER_REPL_EFULL);
        }
    }
    assert_int_equal(accepted, 5);
    for (i = 0; i < 5; i++) {
        runUntil(f, NULL, &r[i].done);
        assert_int_equal(r[i].status, 0);
    }
    for (i = 5; i < 10; i++) {
        assert_false(r[i].done);
    }
    assert_int_equal(storePosition(f), 5);
}

/* Closing right after start, at every point of the first loop turns
 * (raft_uv still preparing segments, the cluster id entry in flight), and
 * again after a restart, leaves nothing running and nothing freed early
 * (raft_uv fires its close callback before all its work is done:
 * env_uv.c); the ASan build checks the memory. */
static void test_close_right_after_start(void **state)
{
    struct fixture *f = *state;
    unsigned turns;

    for (turns = 0; turns < 8; turns++) {
        unsigned k;
        startNoWait(f, turns == 0, 64, 1000);
        for (k = 0; k < turns; k++) {
            uv_run(&f->loop, UV_RUN_NOWAIT);
        }
        stop(f);
    }
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setUp, tearDown)
    const struct CMUnitTest tests[] = {
        T(test_group_commit_and_replay),
        T(test_snapshots_and_restart),
        T(test_queue_bound),
        T(test_close_right_after_start),
    };
    return cmocka_run_group_tests_name("repl", tests, NULL, NULL);
}
