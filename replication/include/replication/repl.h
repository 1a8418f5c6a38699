/* Replication: canonical/raft driving the store's state machine.
 *
 * ledgerd runs it on libuv (raft_uv storage + TCP transport:
 * ledger_repl_start); the unit tests run the same code on raft's in-memory
 * fixture (ledger_repl_start_env, replication/env.h).
 *
 * Invariants:
 * - The Raft log is the write-ahead log. A submitted op is acknowledged
 *   (callback with status 0) only after its entry is committed on a majority
 *   and applied to the local store.
 * - Ops are batched (group commit): every op submitted during one loop
 *   iteration, up to REPL_MAX_BATCH_OPS / REPL_MAX_BATCH_BYTES, shares one
 *   entry; at most REPL_MAX_INFLIGHT entries are in flight. The queue of
 *   ops not yet in an entry is bounded (max_queue_ops / max_queue_bytes):
 *   past the bound, submit fails at once with LEDGER_REPL_EFULL.
 * - Every decision about an op (idempotency, expected version, numbering,
 *   hashing) is made in apply, from the store and the entry alone, so every
 *   replica reaches the same result.
 * - Callbacks never fire from inside the call that registered them.
 */
#ifndef LEDGER_REPL_H
#define LEDGER_REPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "replication/entry.h"
#include "replication/env.h"
#include "store/store.h"

#define REPL_MAX_BATCH_OPS 4096         /* Ops per entry, at most. */
#define REPL_MAX_BATCH_BYTES (4u << 20) /* Bytes per entry, about. */
#define REPL_MAX_INFLIGHT 4             /* Entries appended, not applied. */
#define REPL_ADDR_MAX 128               /* Max "host:port" length + 1. */
#define REPL_ZONE_MAX LEDGER_ZONE_MAX   /* Max zone label length + 1. */
/* Content type of the compact internal events page (GET
 * /v1/internal/events with this Accept): MessagePack arrays back to back,
 * [position, stream, seq, type, id|nil, ts, data_text, prev_hash(bin 32),
 * hash(bin 32)]; the catch-up after a snapshot pulls with it. */
#define LEDGER_EVENTS_MSGPACK "application/x-ledger-events"

/* Status codes given to callbacks and returned by submit. */
enum {
    LEDGER_REPL_OK = 0,
    LEDGER_REPL_ENOTLEADER, /* Not leader: nothing was appended. */
    LEDGER_REPL_EFULL,      /* Write queue at its bound: retry later. */
    LEDGER_REPL_EUNKNOWN,   /* Leadership lost after append: the op may
                               or may not commit; retry with the same ids. */
    LEDGER_REPL_ESHUTDOWN,  /* Node shutting down. */
    LEDGER_REPL_EAPPLY,     /* The store failed to apply the op. */
    LEDGER_REPL_ENOMEM,
    LEDGER_REPL_EBUSY, /* A leadership transfer is already running. */
};
const char *ledger_repl_strerror(int code);

typedef struct ledger_repl ledger_repl;
struct raft_uv_transport; /* raft/uv.h */

struct ledger_repl_member {
    uint64_t id;
    char raft_addr[REPL_ADDR_MAX];
    char api_addr[REPL_ADDR_MAX];
};

/* ---- Catch-up source (supplied by node/) ------------------------------- */

/* A snapshot installed from the leader describes the store's state (head
 * position and hash, checkpoints, members) but carries no events: the
 * events the store lacks are immutable and pulled from a member, one page
 * at a time, through this interface (node/catchup.c implements it with the
 * internal events API). Each page is inserted into the store on the loop,
 * checked to extend the chain; the pull itself must not block the loop.
 * See docs/architecture.md, "Catch-up". */
struct ledger_repl_pull;
typedef void (*ledger_repl_pull_cb)(struct ledger_repl_pull *req, int status,
                                    const struct ledger_event *events, size_t n,
                                    const char *errmsg);
struct ledger_repl_pull {
    void *data;             /* The source's own, while the pull runs. */
    uint64_t member;        /* Member to ask (id)... */
    const char *api_addr;   /* ...at this API address. */
    uint64_t after;         /* Events with positions after+1... */
    uint64_t to;            /* ...up to `to` (a page may end sooner). */
    ledger_repl_pull_cb cb; /* Set by ledger_repl. */
};
struct ledger_repl_catchup_source {
    void *data;
    /* Start a pull. Returns 0: req->cb fires exactly once, later (never
     * inside this call), with status 0 and n >= 1 events at positions
     * after+1 .. after+n in order (borrowed until cb returns), or with a
     * non-zero status and a message. Non-zero: cb will not fire. */
    int (*pull)(void *data, struct ledger_repl_pull *req);
    /* Ask a pull in flight to end soon; its cb still fires once. */
    void (*cancel)(void *data, struct ledger_repl_pull *req);
};

struct ledger_repl_config {
    uint64_t id;
    const char *raft_dir; /* Existing directory for Raft's files. */
    const char *raft_addr;
    const char *api_addr;
    const struct ledger_repl_member *bootstrap; /* NULL: no bootstrap. */
    size_t n_bootstrap;
    unsigned heartbeat_ms;
    unsigned election_ms;
    unsigned snapshot_threshold;
    unsigned snapshot_trailing;
    size_t max_queue_ops;
    size_t max_queue_bytes;
    /* Where the events a snapshot lacks come from (copied); pull NULL: a
     * restore that lacks events waits (logged) until restart. The source
     * carries the node's token and TLS (node/catchup.c). */
    struct ledger_repl_catchup_source catchup;
    /* ledger_repl_start only: Raft's network transport, or NULL for
     * raft_uv_tcp with TCP_NODELAY (transport.c). The caller's must stay
     * valid until the close callback of ledger_repl_close (Raft closes
     * it). */
    struct raft_uv_transport *transport;
};

/* Log levels of the sink below; the same order and values as node's. */
enum ledger_repl_log_level {
    LEDGER_REPL_DEBUG = 0,
    LEDGER_REPL_INFO = 1,
    LEDGER_REPL_WARN = 2,
    LEDGER_REPL_ERROR = 3
};

/* Log sink: `level` is an enum ledger_repl_log_level. */
typedef void (*ledger_repl_log_fn)(void *arg, int level, const char *msg);

/* Create and start the replication layer on libuv: Raft's storage in
 * cfg->raft_dir, its TCP transport on cfg->raft_addr, the loop's clock and
 * handles (env_uv.c). The store must stay open until the close callback.
 * On error returns non-zero and fills err. */
int ledger_repl_start(uv_loop_t *loop, ledger_store *store,
                      const struct ledger_repl_config *cfg,
                      ledger_repl_log_fn log, void *log_arg, ledger_repl **out,
                      char *err, size_t errlen);

/* The same on any environment (replication/env.h); cfg->raft_dir is
 * unused. env must stay valid until the close callback; it is not closed
 * by ledger_repl_close unless ledger_repl_start created it. */
int ledger_repl_start_env(struct ledger_repl_env *env, ledger_store *store,
                          const struct ledger_repl_config *cfg,
                          ledger_repl_log_fn log, void *log_arg,
                          ledger_repl **out, char *err, size_t errlen);

/* Close: pending ops and barriers get LEDGER_REPL_ESHUTDOWN, then Raft and
 * its I/O close; cb fires once everything is released. With an env whose
 * Raft instance the caller created, the caller closes that instance
 * first (it may still call into the layer while it closes). */
void ledger_repl_close(ledger_repl *r, void (*cb)(void *arg), void *arg);

/* ---- Writes ----------------------------------------------------------- */

struct ledger_op_result {
    int error;                          /* 0, or a store error code. */
    struct ledger_append_result append; /* For OP_APPEND. */
};

typedef void (*ledger_repl_op_cb)(void *arg, int status,
                                  const struct ledger_op_result *res);

/* Submit an encoded op. Takes ownership of op->data in every case. Returns
 * 0 (cb will fire later), LEDGER_REPL_ENOTLEADER or LEDGER_REPL_EFULL (cb
 * will not fire). */
int ledger_repl_submit(ledger_repl *r, struct op_buf *op, ledger_repl_op_cb cb,
                       void *arg);

/* Leader only: cb(arg, 0, index) once every entry appended before the call
 * is applied locally, proving leadership at that point (Raft thesis 6.4).
 * Concurrent callers share one barrier entry. */
typedef void (*ledger_repl_barrier_cb)(void *arg, int status, uint64_t index);
int ledger_repl_barrier(ledger_repl *r, ledger_repl_barrier_cb cb, void *arg);

/* Leadership transfer to `id` (0: the most up-to-date voter). cb(arg,
 * new_leader_id) fires when done or timed out. */
int ledger_repl_transfer(ledger_repl *r, uint64_t id,
                         void (*cb)(void *arg, uint64_t leader), void *arg);

/* True while a leadership transfer started here is pending (Raft refuses
 * new entries meanwhile: writes should wait for its outcome). */
bool ledger_repl_transferring(ledger_repl *r);

/* Membership changes, one at a time, leader only (membership.c). Return 0
 * (cb will fire later, never from inside the call, with status 0 or a
 * RAFT_* code and a message) or a RAFT_* code at once (cb will not fire;
 * message in ledger_repl_errmsg). RAFT_CANTCHANGE: another change is in
 * progress.
 *
 * ledger_repl_add enters the member as spare and then assigns `role`.
 * Becoming a voter (from add or assign) goes through standby and waits,
 * up to timeout_ms (0: REPL_PROMOTE_TIMEOUT_MS), until the member is within
 * REPL_PROMOTE_MAX_LAG entries of the leader; past the deadline it ends
 * with RAFT_NOCONNECTION and the member stays a standby. */
#define REPL_PROMOTE_MAX_LAG 64        /* Entries behind, at most. */
#define REPL_PROMOTE_TIMEOUT_MS 60000u /* Default catch-up deadline. */
typedef void (*ledger_repl_change_cb)(void *arg, int status, const char *msg);
int ledger_repl_add(ledger_repl *r, const struct ledger_repl_member *m,
                    int role, unsigned timeout_ms, ledger_repl_change_cb cb,
                    void *arg);
int ledger_repl_assign(ledger_repl *r, uint64_t id, int role,
                       unsigned timeout_ms, ledger_repl_change_cb cb,
                       void *arg);
int ledger_repl_remove(ledger_repl *r, uint64_t id, ledger_repl_change_cb cb,
                       void *arg);
bool ledger_repl_change_busy(ledger_repl *r);
/* The change in progress, if any (false: none). */
struct ledger_repl_change_info {
    uint64_t id;
    int role;         /* Role it is heading for. */
    const char *step; /* "adding", "standby", "catching_up", "promoting",
                         "changing" */
    uint64_t elapsed_ms;
};
bool ledger_repl_change_info(ledger_repl *r,
                             struct ledger_repl_change_info *out);
/* Role of member `id` in the current configuration, -1 if not a member. */
int ledger_repl_member_role(ledger_repl *r, uint64_t id);
/* Number of voters in the current configuration. */
size_t ledger_repl_voters(ledger_repl *r);
const char *ledger_repl_errmsg(ledger_repl *r);

/* ---- State ------------------------------------------------------------ */

enum { REPL_ROLE_STANDBY = 0, REPL_ROLE_VOTER = 1, REPL_ROLE_SPARE = 2 };
const char *ledger_repl_role_name(int role);

struct ledger_repl_status {
    const char *state; /* "leader", "follower", "candidate", "unavailable" */
    bool is_leader;
    uint64_t leader_id; /* 0: unknown */
    uint64_t term;
    uint64_t commit_index;
    uint64_t last_index;
    uint64_t applied_index;
    uint64_t leader_changes;
    int64_t leaderless_ms;     /* 0: a leader is known; else since one was
                                  last known, or since start. */
    int64_t leader_contact_ms; /* Since the leader was last heard; -1:
                                  no leader, 0: we are it. */
    bool store_failed;         /* The store is behind Raft until a restart
                                  (ledger_repl_failed). */
    bool catching_up;          /* Pulling the events of an installed
                                  snapshot, or applying the entries that
                                  waited for them: applied_index is the
                                  store's. */
    uint64_t catchup_position; /* Store position while catching up... */
    uint64_t catchup_target;   /* ...and the snapshot's. */
    char cluster_id[64];
};
void ledger_repl_status(ledger_repl *r, struct ledger_repl_status *out);

/* API address of the current leader into buf (read from the store); false
 * if unknown. */
bool ledger_repl_leader_api(ledger_repl *r, char *buf, size_t len);

struct ledger_repl_member_info {
    uint64_t id;
    char raft_addr[REPL_ADDR_MAX];
    char api_addr[REPL_ADDR_MAX];
    int role;
    const char *state; /* leader|follower|candidate|unreachable */
    uint64_t match_index;
    uint64_t applied_index;
    uint64_t lag_entries;
    uint64_t lag_ms;
    int64_t last_contact_ms;  /* -1: unknown */
    char zone[REPL_ZONE_MAX]; /* Its --zone label as replicated (store
                                 members table); "" for none. */
};
/* Fill up to max entries; returns the number of members. */
size_t ledger_repl_members(ledger_repl *r, struct ledger_repl_member_info *out,
                           size_t max);

/* Leader: member `id` reports having applied `applied` (node/members_poll.c).
 * Shown as its applied_index while younger than REPL_APPLIED_FRESH_MS;
 * after that the leader's estimate min(match_index, commit_index). */
#define REPL_APPLIED_FRESH_MS 2000
void ledger_repl_note_applied(ledger_repl *r, uint64_t id, uint64_t applied);

/* Commit the store transaction that applied entries share (it commits by
 * itself within a few ms): before reading the store through another
 * handle. 0, or -1 once the store failed. */
int ledger_repl_flush(ledger_repl *r);
/* Why this node serves nothing until it restarts (a store commit failed:
 * the store is behind Raft), or NULL. */
const char *ledger_repl_failed(ledger_repl *r);

/* Called (from the loop) whenever the applied index advanced. */
void ledger_repl_on_applied(ledger_repl *r, void (*cb)(void *arg), void *arg);

/* ---- Leader and term changes ------------------------------------------ */

/* Who leads, as this node sees it. */
struct ledger_repl_leader {
    uint64_t id;   /* Leader's id; 0: none known (no election won yet, or
                      the leader was silent for an election timeout and
                      this node forgot it: election.c). */
    uint64_t term; /* This node's current term. */
    bool is_self;  /* This node is the Raft leader... */
    bool here;     /* ...and can take writes now: its store has not
                      failed, is not catching up, and no leadership
                      transfer is pending. */
    char api_addr[REPL_ADDR_MAX]; /* Leader's API address, in the
                                     callback's value only (one store read
                                     per change); "" if id is 0, unknown,
                                     or from ledger_repl_leader. */
};
typedef void (*ledger_repl_leader_cb)(void *arg,
                                      const struct ledger_repl_leader *now);
/* cb fires on the loop, never from inside a ledger_repl_* call, each time
 * (id, term, is_self, here) differs from what it last reported (the first
 * call reports the state at registration if it differs from "no leader,
 * term 0"). Checked right after every Raft message received and every
 * tick, and once per loop turn, so in the loop turn in which Raft learned
 * of the change. */
void ledger_repl_on_leader(ledger_repl *r, ledger_repl_leader_cb cb, void *arg);
/* The same value now, cheaply (no store access; api_addr is ""). */
void ledger_repl_leader(ledger_repl *r, struct ledger_repl_leader *out);

#endif /* LEDGER_REPL_H */
