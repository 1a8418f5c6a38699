/* Private state of the replication layer, shared by its files, from the
 * top of the call graph down (no file calls one above it; io.c reaches
 * the layer only through the hooks repl.c gives it):
 *   env_uv.c     the libuv environment (ledger_repl_start)
 *   repl.c       lifecycle, group commit, barriers, transfer, observation
 *   election.c   election timing, the leader's contact rule, tie-break
 *   lag.c        per-member progress and contact figures
 *   fsm.c        the raft_fsm raft calls (apply; snapshot.c for the rest)
 *   snapshot.c   snapshot encode, restore
 *   catchup.c    the asynchronous pull after a restore
 *   apply.c      one entry applied to the store
 *   membership.c add, assign, remove, one at a time
 *   apply_tx.c   the store transaction applied entries share
 *   io.c         the raft_io decorator: tick, contact, draws, installs
 *   bound.c      the memory bound of Raft's log
 *   ckpt.c       WAL checkpoints off the loop
 *   snap.c       a snapshot's state decoded and installed
 *   addr.c       members' API addresses
 *   log.c        the log line
 *   transport.c  Raft's TCP transport with TCP_NODELAY
 *   raft_peek.c  every access to raft 0.15 internals
 *   entry.c      the command entry codec (public: entry.h) */
#ifndef LEDGER_REPL_INT_H
#define LEDGER_REPL_INT_H

#include <raft.h>
#include <raft/uv.h>
#include <stdio.h>
#include <string.h>

#include "replication/env.h"
#include "replication/repl.h"

#define REPL__MAX_MEMBERS 64    /* Members tracked for lag. */
#define REPL__IO_TICK_MS 10     /* Resolution of the election timers (io.c). */
#define REPL__SNAPSHOT_FORMAT 1 /* First element of every snapshot. */
#define REPL__TIME_RING 4096    /* Append times remembered for lag_ms. */
#define REPL__INSTALL_SNAPSHOT_TIMEOUT_MS 3000 /* Resend a lost snapshot. */
#define REPL__SIZE_RING                                                        \
    4096 /* Sizes of the last applied entries (bound.c).                       \
          */
/* Memory bound of Raft's in-memory log (bound.c): snapshot once the entries
 * applied since the last snapshot hold REPL__SNAPSHOT_BYTES; keep trailing
 * entries holding at most REPL__TRAILING_BYTES, but at least
 * REPL__TRAILING_MIN of them. */
#define REPL__SNAPSHOT_BYTES (8u << 20) /* Bytes that trigger a snapshot. */
#define REPL__TRAILING_BYTES (8u << 20) /* Bytes of trailing entries kept. */
#define REPL__TRAILING_MIN 8            /* Trailing entries kept, at least. */
/* WAL checkpoints (ckpt.c): on the threadpool from this many frames, on the
 * loop itself (the thread fell behind) from the second. */
#define REPL__CHECKPOINT_FRAMES 1000        /* Checkpoint off the loop. */
#define REPL__CHECKPOINT_FORCE_FRAMES 32000 /* Checkpoint on the loop. */
/* The apply transaction (apply_tx.c): entries applied within this many ms
 * share one store commit; a commit comes sooner, at the end of the loop
 * turn, once the transaction holds this many entries or bytes. */
#define REPL__TX_MAX_MS 50
#define REPL__TX_MAX_ENTRIES 256
#define REPL__TX_MAX_BYTES (8u << 20)

struct repl__checkpointer; /* ckpt.c */
struct repl__catchup;      /* catchup.c */

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
    uint64_t last_contact; /* Raft clock ms of its last AppendEntries
                              result in the current term; 0: never. */
    uint64_t applied;      /* As the member last reported it... */
    uint64_t applied_at;   /* ...at this time (0: never). */
};

/* Raft's TCP transport with TCP_NODELAY (transport.c). `base` is what raft
 * uses; it must stay the first member. */
struct repl__transport {
    struct raft_uv_transport base;
    struct raft_uv_transport inner; /* raft_uv_tcp */
    raft_uv_accept_cb accept_cb;
    raft_uv_transport_close_cb close_cb;
};

/* What the raft_io decorator (io.c) calls in the layer. */
struct repl__io_hooks {
    bool (*tick_pre)(ledger_repl *r); /* true: run raft's tick now */
    void (*tick_post)(ledger_repl *r);
    void (*observe)(ledger_repl *r); /* after raft handled an event */
    bool (*filter)(ledger_repl *r, const struct raft_message *m); /* drop */
    int (*draw)(ledger_repl *r, int min, int max, int drawn);
    void (*heard)(ledger_repl *r, uint64_t id, uint64_t now); /* AE result */
};

/* The raft_io decorator (io.c). `base` is what raft uses: first member. */
struct repl__vote_send;

struct repl__io {
    struct raft_io base;
    const struct repl__io_hooks *hooks;
    struct raft_io *inner; /* The env's io; inner->data points here. */
    ledger_repl *r;
    raft_io_tick_cb raft_tick;
    raft_io_recv_cb raft_recv;
    raft_io_close_cb close_cb;
    unsigned tick_ms;      /* The layer's tick. */
    unsigned heartbeat_ms; /* raft's tick, as raft asked. */
    uint64_t next_raft_tick;
    uint64_t next_layer_tick;
    /* An installed snapshot's write (snapshot_put, trailing 0): raft's
     * callback, and the result parked until this node follows (io.c). */
    struct raft_io_snapshot_put *put_req;
    raft_io_snapshot_put_cb put_cb;
    bool put_parked;
    int put_status;
    struct repl__io *next_live;    /* Decorators with an install in flight. */
    struct repl__vote_send *retry; /* Vote messages to send again (io.c). */
};

struct ledger_repl {
    struct ledger_repl_env *env;
    bool owns_env;  /* Created by ledger_repl_start: closed by us. */
    bool owns_raft; /* raft_init ran here: raft_close runs here. */
    ledger_store *store;
    struct ledger_repl_config cfg;
    char *raft_addr;
    char *api_addr;
    struct ledger_repl_member *bootstrap;
    size_t n_bootstrap;
    ledger_repl_log_fn log;
    void *log_arg;
    struct ledger_repl_catchup_source catchup_source; /* Copy of cfg's. */

    struct raft *raft; /* &own_raft, or the env's instance. */
    struct raft own_raft;
    struct raft_fsm *fsm; /* &own_fsm, or the env's. */
    struct raft_fsm own_fsm;
    struct repl__io io;
    unsigned tick_ms;

    /* Group commit queue (ops not yet in an entry). */
    struct repl__pending *pending;
    size_t n_pending;
    size_t cap_pending;
    size_t pending_bytes;
    unsigned inflight;
    bool idle_on; /* env idle requested (the flush). */

    struct repl__barrier *barrier; /* In flight, joinable. */

    /* Results of the entry just applied, until the leader's apply callback
     * claims them (followers never do; freed at the next apply). */
    struct ledger_op_result *unclaimed;

    /* State observation (repl.c). */
    uint64_t seen_applied;
    uint64_t seen_leader;
    int seen_state;
    uint64_t leader_changes;
    uint64_t leader_known_at;    /* Raft clock ms a leader was last known. */
    uint64_t leader_since;       /* When this node last became leader. */
    struct repl__change *change; /* Membership change in progress. */
    struct repl__transfer *handover; /* Transfer quiescing or running. */
    uint64_t last_leader; /* Last non-zero leader seen, and its term. */
    uint64_t last_leader_term;
    bool init_proposed;
    bool handover_wanted; /* apply failed on the leader: hand over at the
                             next tick (apply.c, apply_tx.c -> repl.c) */
    bool base_pending;    /* Restored store, no snapshot yet (bound.c). */
    void (*applied_cb)(void *arg);
    void *applied_arg;
    ledger_repl_leader_cb leader_cb;
    void *leader_arg;
    struct ledger_repl_leader reported; /* Last value given to leader_cb. */
    bool reported_once;
    bool stepped_down;     /* election.c forced a step-down this tick. */
    uint64_t tie_term;     /* election.c: the last pre-vote request from a */
    uint64_t tie_at;       /* lower id with a log as recent: its term, */
    uint64_t tie_id;       /* when, who; */
    uint64_t tie_logged;   /* and the round whose yield was logged. */
    uint64_t refused_at;   /* election.c rule 6: when we last refused an */
    uint64_t refused_term; /* up-to-date pre-vote for remembering a */
    uint64_t refused_id;   /* leader: when, its term, who. */

    /* Lag bookkeeping (leader). */
    struct repl__contact contact[REPL__MAX_MEMBERS];
    struct {
        uint64_t index;
        uint64_t time;
    } ring[REPL__TIME_RING];

    /* Memory bound of Raft's in-memory log (bound.c): sizes of
     * recent entries and the bytes applied since the last snapshot. */
    struct {
        uint64_t index;
        uint32_t len;
    } sizes[REPL__SIZE_RING];
    uint64_t bytes_since_snapshot;
    unsigned snapshot_threshold; /* As last set on raft. */

    /* WAL checkpoints off the loop (ckpt.c); NULL: SQLite's own. */
    struct repl__checkpointer *ckpt;
    bool ckpt_tried;

    /* The apply transaction (apply_tx.c). */
    bool tx_open;
    bool tx_due;       /* Commit in this loop turn's check phase. */
    bool store_failed; /* Store behind Raft until restart. */
    uint64_t tx_index; /* Last entry applied in the open transaction. */
    uint32_t tx_entries;
    size_t tx_bytes;

    /* Catch-up after a restore (catchup.c); NULL: none. */
    struct repl__catchup *cu;

    /* Shutdown. */
    bool closing;
    void (*close_cb)(void *arg);
    void *close_arg;
};

/* log.c */
void repl__log(ledger_repl *r, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* io.c: the decorator; now is Raft's clock (ms). */
void repl__io_init(struct repl__io *x, ledger_repl *r, struct raft_io *inner,
                   unsigned tick_ms, const struct repl__io_hooks *hooks);

/* Raft's clock (ms): the inner io's time, the one raft reads. */
static inline uint64_t repl__now(ledger_repl *r)
{
    return r->io.inner->time(r->io.inner);
}

/* Ask the env for the idle hook (the group-commit flush, the catch-up's
 * steps) until it finds nothing to do. */
static inline void repl__want_idle(ledger_repl *r)
{
    if (!r->idle_on && !r->closing) {
        r->idle_on = true;
        r->env->idle(r->env, true);
    }
}
/* Hand a parked snapshot write to raft once this node follows (or is
 * closing); true while one stays parked. */
bool repl__io_release_put(struct repl__io *x);

/* repl.c: the tick around raft's (pre returns true when raft's tick must
 * run now), the observation of leader/term/applied changes (after every
 * raft event), and the idle request of the group-commit flush. */
bool repl__tick_pre(ledger_repl *r);
void repl__tick_post(ledger_repl *r);
void repl__observe(ledger_repl *r);
/* The index the store reflects: raft's last applied, or less while a
 * catch-up runs (catchup.c). */
uint64_t repl__applied(ledger_repl *r);

/* election.c */
int repl__election_draw(ledger_repl *r, int min, int max, int drawn);
/* A message about to reach raft: true to drop it (election.c's pre-vote
 * tie-break). */
bool repl__election_filter(ledger_repl *r, const struct raft_message *m);
/* Follower: forget a silent leader. Leader: true if the contact rule
 * wants raft to step down now (raft's tick must run). */
bool repl__election_tick(ledger_repl *r);

/* fsm.c: the raft_fsm raft calls. */
void repl__fsm_init(ledger_repl *r);
void repl__fsm_close(ledger_repl *r);

/* bound.c: the memory bound of Raft's log. entry counts an entry about to
 * be applied (and lowers the snapshot threshold when due); trailing is
 * the number of entries to keep after a snapshot at the last applied
 * index: at most cfg.snapshot_trailing, and the most recent ones holding
 * at most REPL__TRAILING_BYTES (but at least REPL__TRAILING_MIN);
 * snapshotted restarts the count after a snapshot taken or installed.
 * base_pending: the store was seeded from a backup and Raft holds no
 * snapshot yet: one is due, and no member may be added until it exists. */
void repl__bound_init(ledger_repl *r);
void repl__bound_entry(ledger_repl *r, uint64_t index, size_t len);
unsigned repl__bound_trailing(ledger_repl *r);
void repl__bound_snapshotted(ledger_repl *r);
bool repl__base_pending(ledger_repl *r);

/* apply.c: apply one command entry to the store inside the apply
 * transaction. *results (n ops) on success. 0, RAFT_IOERR (the store
 * failed: see apply_tx.c) or RAFT_NOMEM. */
int repl__apply_entry(ledger_repl *r, uint64_t index,
                      const struct raft_buffer *buf,
                      struct ledger_op_result **results);

/* ckpt.c: the store committed: start a WAL checkpoint if due. close:
 * before the layer goes. */
void repl__ckpt_committed(ledger_repl *r);
void repl__ckpt_close(ledger_repl *r);

/* apply_tx.c: the store transaction that applied entries share. open
 * begins one unless open; applied records an entry applied in it; flush
 * commits it (0, or -1 once the store failed); failed rolls it back and
 * stops the node serving until restart. */
int repl__tx_open(ledger_repl *r);
void repl__tx_applied(ledger_repl *r, uint64_t index, size_t bytes);
int repl__tx_flush(ledger_repl *r);
void repl__tx_failed(ledger_repl *r, const char *why);
void repl__tx_timer(ledger_repl *r); /* The env timer fired. */

/* snapshot.c */
int repl__snapshot(struct raft_fsm *fsm, struct raft_buffer *bufs[],
                   unsigned *n_bufs);
int repl__restore(struct raft_fsm *fsm, struct raft_buffer *buf);

/* catchup.c: a restore whose events the store lacks. begin takes `buf`
 * (the snapshot, raft_malloc'ed) and the decoded fields pointing into it;
 * from then on apply defers entries (defer) until the pulled events and
 * the snapshot's state are in the store, then applies them in order
 * (idle). active: a catch-up or its deferred entries are pending. */
struct repl__snap {
    uint64_t index;
    uint64_t position;
    uint8_t head_hash[LEDGER_HASH_LEN];
    char cluster_id[64];
    const void *members; /* msgpack_object array, into the buffer */
    uint32_t n_members;
    const void *checkpoints;
    uint32_t n_checkpoints;
    bool has_restored_from;    /* A restored cluster's (8th element)... */
    char restored_from[64];    /* ...backup cluster id. */
    struct ledger_roles roles; /* Roles targets (9th); all 0 when none. */
};
int repl__catchup_begin(ledger_repl *r, struct raft_buffer *buf,
                        const struct repl__snap *s, void *unpacked);
bool repl__catchup_active(ledger_repl *r);
int repl__catchup_defer(ledger_repl *r, uint64_t index,
                        const struct raft_buffer *buf);
/* From the idle hook: start a pull, install, or apply deferred entries;
 * true if it has more to do in the next loop turn. */
bool repl__catchup_idle(ledger_repl *r);
void repl__catchup_tick(ledger_repl *r); /* A retry falls due. */
/* Store position and the position being caught up to (0, 0: none). */
void repl__catchup_status(ledger_repl *r, uint64_t *position, uint64_t *target);
void repl__catchup_close(ledger_repl *r);
/* snap.c: decode a snapshot (obj: its msgpack_object, which the fields
 * then point into; 0 or -1), and install its state (cluster id,
 * restored_from, members, checkpoints) inside an open store transaction
 * after checking the store's head hash (0 or -1). */
int repl__snap_decode(const void *obj, struct repl__snap *s);
int repl__snap_install(ledger_repl *r, const struct repl__snap *s);

/* addr.c: API address of member `id` (store, else --bootstrap). */
bool repl__member_api(ledger_repl *r, uint64_t id, char *buf, size_t len);

/* membership.c */
void repl__membership_tick(ledger_repl *r);
void repl__membership_close(ledger_repl *r);

/* transport.c: raft_uv_tcp_init / raft_uv_tcp_close of the decorator. */
int repl__transport_init(struct repl__transport *x, uv_loop_t *loop);
void repl__transport_close(struct repl__transport *x);

/* lag.c */
void repl__lag_tick(ledger_repl *r);
void repl__lag_record(ledger_repl *r, uint64_t index);
struct repl__contact *repl__contact_for(ledger_repl *r, uint64_t id);
void repl__contact_heard(ledger_repl *r, uint64_t id, uint64_t now);

#endif /* LEDGER_REPL_INT_H */
