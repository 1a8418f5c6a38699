/* Private state of the replication layer, shared by its files:
 * repl.c (lifecycle, batching, barriers), fsm.c (state machine),
 * snapshot.c (snapshot encode/restore, catch-up), lag.c (progress, lag). */
#ifndef LEDGER_REPL_INT_H
#define LEDGER_REPL_INT_H

#include <raft.h>
#include <raft/uv.h>

#include "replication/repl.h"

#define REPL__MAX_MEMBERS 64 /* Members tracked for lag. */
#define REPL__TIME_RING 4096 /* Append times remembered for lag_ms. */
#define REPL__INSTALL_SNAPSHOT_TIMEOUT_MS 3000 /* Resend a lost snapshot. */

struct repl__pending {
    struct op_buf buf;
    ledger_repl_op_cb cb;
    void *arg;
};

struct repl__batch;    /* repl.c */
struct repl__change;   /* membership.c */
struct repl__transfer; /* repl.c */
struct repl__barrier;

struct repl__contact {
    uint64_t id;
    uint64_t match_index;
    uint64_t last_contact; /* uv_now ms, 0: never */
    uint64_t applied;      /* As the member last reported it... */
    uint64_t applied_at;   /* ...at this uv_now ms (0: never). */
};

struct ledger_repl {
    uv_loop_t *loop;
    ledger_store *store;
    struct ledger_repl_config cfg;
    char *raft_dir;
    char *raft_addr;
    char *api_addr;
    char *token;
    struct ledger_repl_member *bootstrap;
    size_t n_bootstrap;
    ledger_repl_log_fn log;
    void *log_arg;

    struct raft raft;
    struct raft_io io;
    struct raft_uv_transport transport;
    struct raft_fsm fsm;

    /* Group commit queue (ops not yet in an entry). */
    struct repl__pending *pending;
    size_t n_pending;
    size_t cap_pending;
    size_t pending_bytes;
    unsigned inflight;
    uv_idle_t flush_idle;

    struct repl__barrier *barrier; /* In flight, joinable. */

    /* Results of the entry just applied, until the leader's apply callback
     * claims them (followers never do; freed at the next apply). */
    struct ledger_op_result *unclaimed;

    /* State observation. */
    uv_timer_t tick;
    uv_check_t check;
    uint64_t seen_applied;
    uint64_t seen_leader;
    int seen_state;
    uint64_t leader_changes;
    struct repl__change *change;     /* Membership change in progress. */
    struct repl__transfer *handover; /* Transfer quiescing or running. */
    uint64_t avg_entry_bytes;        /* Applied entries (logmem.c). */
    unsigned drawn_timeout; /* Last election timeout narrowed (election.c) */
    uint64_t last_leader;   /* Last non-zero leader seen, and its term. */
    uint64_t last_leader_term;
    bool init_proposed;
    void (*applied_cb)(void *arg);
    void *applied_arg;

    /* Lag bookkeeping (leader). */
    struct repl__contact contact[REPL__MAX_MEMBERS];
    struct {
        uint64_t index;
        uint64_t time;
    } ring[REPL__TIME_RING];

    /* Shutdown. */
    bool closing;
    int open_handles;
    void (*close_cb)(void *arg);
    void *close_arg;
};

void repl__log(ledger_repl *r, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* fsm.c */
void repl__fsm_init(ledger_repl *r);
void repl__fsm_close(ledger_repl *r);

/* snapshot.c */
int repl__snapshot(struct raft_fsm *fsm, struct raft_buffer *bufs[],
                   unsigned *n_bufs);
int repl__restore(struct raft_fsm *fsm, struct raft_buffer *buf);

/* repl.c: API address of member `id` (store, else --bootstrap). */
bool repl__member_api(ledger_repl *r, uint64_t id, char *buf, size_t len);

/* election.c: forget a silent leader after one election timeout. */
void repl__election_tick(ledger_repl *r);

/* membership.c */
void repl__membership_tick(ledger_repl *r);
void repl__membership_close(ledger_repl *r);

/* logmem.c: adapt raft's snapshot knobs to the average entry size. */
#define REPL_LOG_BUDGET (32u << 20) /* Bytes of Raft log kept in memory. */
void repl__logmem_note(ledger_repl *r, size_t entry_bytes);

/* lag.c */
void repl__lag_tick(ledger_repl *r);
void repl__lag_record(ledger_repl *r, uint64_t index);

#endif /* LEDGER_REPL_INT_H */
