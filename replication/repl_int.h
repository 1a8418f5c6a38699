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
#define REPL__SIZE_RING 4096 /* Sizes of the last applied entries (fsm.c). */
/* Memory bound of Raft's in-memory log (fsm.c): snapshot once the entries
 * applied since the last snapshot hold REPL__SNAPSHOT_BYTES; keep trailing
 * entries holding at most REPL__TRAILING_BYTES, but at least
 * REPL__TRAILING_MIN of them. */
#define REPL__SNAPSHOT_BYTES (8u << 20) /* Bytes that trigger a snapshot. */
#define REPL__TRAILING_BYTES (8u << 20) /* Bytes of trailing entries kept. */
#define REPL__TRAILING_MIN 8            /* Trailing entries kept, at least. */
/* WAL checkpoints (fsm.c): on the threadpool from this many frames, on the
 * loop itself (the thread fell behind) from the second. */
#define REPL__CHECKPOINT_FRAMES 1000        /* Checkpoint off the loop. */
#define REPL__CHECKPOINT_FORCE_FRAMES 32000 /* Checkpoint on the loop. */
/* The apply transaction (apply_tx.c): entries applied within this many ms
 * share one store commit; a commit comes sooner, at the end of the loop
 * turn, once the transaction holds this many entries or bytes. */
#define REPL__TX_MAX_MS 50
#define REPL__TX_MAX_ENTRIES 256
#define REPL__TX_MAX_BYTES (8u << 20)

struct repl__checkpointer; /* fsm.c */

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

/* Raft's TCP transport with TCP_NODELAY (transport.c). `base` is what raft
 * uses; it must stay the first member. */
struct repl__transport {
    struct raft_uv_transport base;
    struct raft_uv_transport inner; /* raft_uv_tcp */
    raft_uv_accept_cb accept_cb;
    raft_uv_transport_close_cb close_cb;
};

struct ledger_repl {
    uv_loop_t *loop;
    ledger_store *store;
    struct ledger_repl_config cfg;
    char *raft_dir;
    char *raft_addr;
    char *api_addr;
    char *token;
    char *tls_ca; /* Copies of cfg's TLS files (NULL without). */
    char *tls_cert;
    char *tls_key;
    struct ledger_repl_member *bootstrap;
    size_t n_bootstrap;
    ledger_repl_log_fn log;
    void *log_arg;

    struct raft raft;
    struct raft_io io;
    struct repl__transport transport;
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
    uint64_t leader_known_at;    /* uv_now ms a leader was last known (tick). */
    struct repl__change *change; /* Membership change in progress. */
    struct repl__transfer *handover; /* Transfer quiescing or running. */
    unsigned drawn_timeout; /* Last election timeout narrowed (election.c) */
    uint64_t last_leader;   /* Last non-zero leader seen, and its term. */
    uint64_t last_leader_term;
    bool init_proposed;
    bool base_pending; /* Restored store, no snapshot yet (fsm.c). */
    void (*applied_cb)(void *arg);
    void *applied_arg;

    /* Lag bookkeeping (leader). */
    struct repl__contact contact[REPL__MAX_MEMBERS];
    struct {
        uint64_t index;
        uint64_t time;
    } ring[REPL__TIME_RING];

    /* Memory bound of Raft's in-memory log (fsm.c, snapshot.c): sizes of
     * recent entries and the bytes applied since the last snapshot. */
    struct {
        uint64_t index;
        uint32_t len;
    } sizes[REPL__SIZE_RING];
    uint64_t bytes_since_snapshot;

    /* WAL checkpoints on the threadpool (fsm.c); NULL: SQLite's own. */
    struct repl__checkpointer *ckpt;
    bool ckpt_tried;

    /* The apply transaction (apply_tx.c). */
    uv_timer_t tx_timer;
    bool tx_open;
    bool tx_due;       /* Commit in this loop turn's check phase. */
    bool store_failed; /* Store behind Raft until restart. */
    uint64_t tx_index; /* Last entry applied in the open transaction. */
    uint32_t tx_entries;
    size_t tx_bytes;

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
/* Entries to keep after a snapshot at the last applied index: at most
 * cfg.snapshot_trailing, and the most recent ones holding at most
 * REPL__TRAILING_BYTES (but at least REPL__TRAILING_MIN). */
unsigned repl__fsm_trailing(ledger_repl *r);
/* A snapshot was taken or installed: count bytes from zero again. */
void repl__fsm_snapshotted(ledger_repl *r);
/* The store was seeded from a backup and Raft holds no snapshot yet: one
 * is due, and no member may be added until it exists (fsm.c). */
bool repl__base_pending(ledger_repl *r);
/* The apply transaction committed: start a WAL checkpoint if due. */
void repl__fsm_committed(ledger_repl *r);

/* apply_tx.c: the store transaction that applied entries share. open
 * begins one unless open; applied records an entry applied in it; flush
 * commits it (0, or -1 once the store failed); failed rolls it back and
 * stops the node serving until restart. */
void repl__tx_init(ledger_repl *r);
int repl__tx_open(ledger_repl *r);
void repl__tx_applied(ledger_repl *r, uint64_t index, size_t bytes);
int repl__tx_flush(ledger_repl *r);
void repl__tx_failed(ledger_repl *r, const char *why);
void repl__tx_close(ledger_repl *r);

/* repl.c: close callback of the layer's uv handles. */
void repl__handle_closed(uv_handle_t *h);

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

/* transport.c: raft_uv_tcp_init / raft_uv_tcp_close of the decorator. */
int repl__transport_init(struct repl__transport *x, uv_loop_t *loop);
void repl__transport_close(struct repl__transport *x);

/* lag.c */
void repl__lag_tick(ledger_repl *r);
void repl__lag_record(ledger_repl *r, uint64_t index);

#endif /* LEDGER_REPL_INT_H */
