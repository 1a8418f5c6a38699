/* A cluster of real replication layers on raft's in-memory fixture.
 *
 * Each node is a ledger_repl (replication/repl.h) with a real SQLite store
 * in a fresh temporary directory, started with ledger_repl_start_env on a
 * test env (env.h): raft_fixture's io (fake time, an in-memory log and
 * network that the test can cut, one way or both, or make lossy), the
 * fixture's clock as wall clock (FX_EPOCH_MS + fake time), and the loop
 * services run by the harness after every fixture step. Nothing reads real
 * time, nothing sleeps, no socket is opened.
 *
 * Replay: every random choice (election timeout draws, network latency,
 * message loss, cluster ids, catch-up source latency) comes from one
 * xorshift generator seeded per test: by default from the test's name, or
 * from LEDGER_FIXTURE_SEED (a number, or "random" for a fresh one). A
 * failed FX_CHECK prints the seed, the fake time and every node's last log
 * lines; LEDGER_FIXTURE_SEED=<seed> replays the run bit for bit.
 * LEDGER_FIXTURE_LOG=1 prints every node's log as it happens.
 *
 * Catch-up: the harness is the catch-up source (repl.h): a pull asks node
 * N's store for events (after, to], answered FX_PULL_LATENCY_MS of fake
 * time later, at most FX_PULL_PAGE events; pulls from a node can be made
 * to fail or to return a tampered event.
 */
#ifndef LEDGER_TEST_REPL_FIXTURE_H
#define LEDGER_TEST_REPL_FIXTURE_H

#include <raft.h>
#include <raft/fixture.h>
#include <stdbool.h>
#include <stdint.h>

#include "replication/env.h"
#include "replication/repl.h"

#define FX_MAX_NODES 7
#define FX_EPOCH_MS 1800000000000LL /* Wall clock at fake time 0. */
#define FX_LOG_RING 48              /* Log lines kept per node. */
#define FX_PULL_PAGE 50             /* Events per catch-up page. */
#define FX_PULL_LATENCY_MS 3        /* Fake time a pull takes. */
#define FX_MAX_PULLS 16
#define FX_MAX_LEADER_EVENTS 64

/* One write and its outcome. */
struct fx_op {
    bool done;
    int status;  /* LEDGER_REPL_* */
    int error;   /* Store error of the op (0). */
    int outcome; /* LEDGER_APPEND_* */
    uint64_t first_seq;
    uint64_t last_seq;
    uint64_t position;
    uint64_t at; /* Fake time of the callback. */
};

struct fx_barrier {
    bool done;
    int status;
    uint64_t index;
    uint64_t at;
};

struct fx_change {
    bool done;
    int status;
    char msg[256];
    uint64_t at;
};

struct fx_leader_event {
    uint64_t at;
    struct ledger_repl_leader l;
};

struct fx;

struct fx_pull {
    struct ledger_repl_pull *req;
    uint64_t due;
    bool used;
};

struct fx_node {
    struct fx *f;
    unsigned i; /* Fixture index; Raft id is i + 1. */
    uint64_t id;
    char raft_addr[16]; /* The fixture's: the id as a string. */
    char api_addr[32];  /* "node-<id>": only a name here. */
    char db[256];
    ledger_store *store;
    ledger_repl *repl;
    bool started;
    bool closed;
    struct raft_fsm fsm;
    struct ledger_repl_env env;
    struct ledger_repl_env_hooks hooks;
    bool hooks_on;
    bool idle_on;
    uint64_t timer_at; /* Fake ms; UINT64_MAX: not armed. */
    bool env_closing;
    void (*env_close_cb)(void *arg);
    void *env_close_arg;
    /* Catch-up faults: pulls from this node fail / return a bad hash. */
    bool pull_fails;
    bool pull_tampers;
    unsigned pulls_served;
    struct fx_leader_event leaders[FX_MAX_LEADER_EVENTS];
    unsigned n_leaders;
    char log[FX_LOG_RING][200];
    unsigned n_log;
};

struct fx_options {
    unsigned n;                   /* Nodes created (fixture servers). */
    unsigned voters;              /* The first `voters` bootstrap (0: all). */
    unsigned heartbeat_ms;        /* 0: 100 */
    unsigned election_ms;         /* 0: 1000 */
    unsigned snapshot_threshold;  /* 0: 1024 */
    unsigned snapshot_trailing;   /* 0: 64 */
    size_t max_queue_ops;         /* 0: 10000 */
    unsigned draw;                /* Non-zero: every election timeout draw
                                     of every node (else random)... */
    unsigned draws[FX_MAX_NODES]; /* ...or of node i, when non-zero. */
};

struct fx {
    struct raft_fixture rf;
    struct fx_node nodes[FX_MAX_NODES];
    unsigned n;
    struct fx_options opt;
    char dir[128];
    const char *test;
    uint64_t seed;
    uint64_t rng;
    unsigned loss_pct;           /* Messages dropped per link, per step (%). */
    unsigned draw[FX_MAX_NODES]; /* Non-zero: node i's election timeout
                                    draws (else random in [T, 2T)). */
    bool jitter;                 /* Draw network latency per step (5..25 ms). */
    struct fx_pull pulls[FX_MAX_PULLS];
};

/* ---- Set-up ------------------------------------------------------------ */

/* Create n nodes (stores, fixture servers), none started. */
void fx_init(struct fx *f, const char *test, const struct fx_options *opt);
/* Start node i (bootstrap: with the first `voters` nodes as the initial
 * configuration; else it waits to be added). */
void fx_start(struct fx *f, unsigned i, bool bootstrap);
/* fx_init, start every node, bootstrapping the voters, and wait for a
 * leader with a cluster id applied everywhere. */
void fx_start_cluster(struct fx *f, const char *test,
                      const struct fx_options *opt);
/* Add a fresh node (a new fixture server), not started. Its index. */
unsigned fx_grow(struct fx *f);
void fx_close(struct fx *f);
/* The state of a cmocka test on the fixture: fx_test_setup allocates it
 * zeroed (the test starts its cluster), fx_test_teardown closes whatever
 * cluster the test started and frees it. */
struct fx_test {
    struct fx fx;
};
int fx_test_setup(void **state);
int fx_test_teardown(void **state);

/* ---- Driving ----------------------------------------------------------- */

uint64_t fx_now(struct fx *f);
/* Run every node's loop services at the current time (no time passes). */
void fx_run(struct fx *f);
/* One fixture event (time jumps to it), then the loop services. */
void fx_step(struct fx *f);
/* Step until pred(f, arg) or max_ms of fake time passed; pred's value. */
bool fx_step_until(struct fx *f, bool (*pred)(struct fx *f, void *arg),
                   void *arg, unsigned max_ms);
void fx_step_for(struct fx *f, unsigned ms);
uint64_t fx_rand(struct fx *f);

/* ---- Network and process faults ---------------------------------------- */

/* Messages from i to j are dropped (one way) / delivered again. */
void fx_cut(struct fx *f, unsigned i, unsigned j);
void fx_heal(struct fx *f, unsigned i, unsigned j);
/* Both ways between i and every other node. */
void fx_isolate(struct fx *f, unsigned i);
void fx_rejoin(struct fx *f, unsigned i);
/* Freeze (no tick, no message: SIGSTOP) / thaw node i. */
void fx_freeze(struct fx *f, unsigned i);
void fx_thaw(struct fx *f, unsigned i);
/* Make every write of node i's store fail (EIO, as a full disk would). */
void fx_fail_store(struct fx *f, unsigned i, bool fail);

/* ---- Looking ----------------------------------------------------------- */

/* Index of the node whose layer says it leads (highest term), or FX_NONE. */
#define FX_NONE 99u
unsigned fx_leader(struct fx *f);
/* Step until some node leads (and return it) or max_ms passed (FX_NONE). */
unsigned fx_wait_leader(struct fx *f, unsigned max_ms);
struct ledger_repl_status fx_status(struct fx *f, unsigned i);
uint64_t fx_position(struct fx *f, unsigned i);
/* Head hash at the store's position (zeros when empty). */
void fx_head(struct fx *f, unsigned i, uint8_t out[LEDGER_HASH_LEN]);

/* ---- Acting ------------------------------------------------------------ */

/* Submit an append of n events to `stream` on node i; ids "<id>-k" when
 * id is not NULL. Returns the submit code; op->done once its cb fired. */
int fx_append(struct fx *f, unsigned i, const char *stream, unsigned n,
              const char *id, struct fx_op *op);
/* Append and step until done; the op's status. */
int fx_append_sync(struct fx *f, unsigned i, const char *stream, unsigned n,
                   const char *id, struct fx_op *op);
/* Append `count` single-event entries on the leader and wait for each. */
void fx_fill(struct fx *f, unsigned count);
int fx_barrier(struct fx *f, unsigned i, struct fx_barrier *b);
void fx_change_cb(void *arg, int status, const char *msg);
bool fx_op_done(struct fx *f, void *op);         /* pred: ((fx_op*))->done */
bool fx_change_done(struct fx *f, void *change); /* pred */
bool fx_all_applied(struct fx *f, void *unused); /* every started node's
                                                    applied == leader's last */

/* ---- Failing ----------------------------------------------------------- */

/* Print the seed, the time and every node's last log lines, then fail. */
void fx_fail(struct fx *f, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#define FX_CHECK(f, cond)                                                      \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fx_fail((f), __FILE__, __LINE__, "%s", #cond);                     \
        }                                                                      \
    } while (0)
#define FX_CHECK_EQ(f, a, b)                                                   \
    do {                                                                       \
        unsigned long long a_ = (unsigned long long)(a);                       \
        unsigned long long b_ = (unsigned long long)(b);                       \
        if (a_ != b_) {                                                        \
            fx_fail((f), __FILE__, __LINE__, "%s == %s (%llu != %llu)", #a,    \
                    #b, a_, b_);                                               \
        }                                                                      \
    } while (0)
#define FX_CHECK_MSG(f, cond, ...)                                             \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fx_fail((f), __FILE__, __LINE__, __VA_ARGS__);                     \
        }                                                                      \
    } while (0)

#endif /* LEDGER_TEST_REPL_FIXTURE_H */
