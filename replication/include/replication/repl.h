/* Replication: canonical/raft (libuv storage + TCP transport) driving the
 * store's state machine.
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
    const char *token; /* Bearer token for calls to peers, or NULL. */
    /* TLS files for calls to peers (catch-up pulls), or NULL: plain http.
     * With them a peer's "HOST:PORT" is https://HOST:PORT. */
    const char *tls_ca;
    const char *tls_cert;
    const char *tls_key;
    /* Raft's network transport, or NULL for raft_uv_tcp with TCP_NODELAY
     * (transport.c). The caller's must stay valid until the close
     * callback of ledger_repl_close (Raft closes it). */
    struct raft_uv_transport *transport;
};

/* Log sink: level 0 debug, 1 info, 2 warn, 3 error. */
typedef void (*ledger_repl_log_fn)(void *arg, int level, const char *msg);

/* Create and start the replication layer. The store must stay open until
 * the close callback. On error returns non-zero and fills err. */
int ledger_repl_start(uv_loop_t *loop, ledger_store *store,
                      const struct ledger_repl_config *cfg,
                      ledger_repl_log_fn log, void *log_arg, ledger_repl **out,
                      char *err, size_t errlen);

/* Close: pending ops and barriers get LEDGER_REPL_ESHUTDOWN, then Raft and
 * its I/O close; cb fires once everything is released. */
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
    char cluster_id[64];
};
void ledger_repl_status(ledger_repl *r, struct ledger_repl_status *out);

/* The leader as Raft knows it now, cheaply (no store access): its id (0:
 * none) and the current term; `here` is true when this node leads and can
 * take writes now (its store has not failed, no transfer is pending). */
struct ledger_repl_leader {
    uint64_t id;
    uint64_t term;
    bool here;
};
void ledger_repl_leader(ledger_repl *r, struct ledger_repl_leader *out);
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

#endif /* LEDGER_REPL_H */
