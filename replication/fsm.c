/* The replicated state machine: applies command entries to the store.
 *
 * Invariants:
 * - An entry is applied inside the apply transaction (apply_tx.c), which
 *   consecutive entries share; its commit records the last of them as
 *   applied_index. The index of the entry being applied is
 *   raft.last_applied + 1 (raft 0.15 advances last_applied right after
 *   fsm->apply returns, for every entry type).
 * - Entries at or below the store's applied_index are skipped: after a
 *   restart Raft replays entries newer than its last snapshot, and the
 *   store already holds their effects. This is what makes replay safe.
 * - Each op in an entry is decided independently (a conflict in one op does
 *   not affect the others) and deterministically.
 * - A malformed entry (impossible unless a bug wrote it) is logged loudly
 *   and recorded as applied with no effect, so replicas stay identical.
 * - A store I/O error during an apply loses the apply transaction (entries
 *   Raft already counts as applied): the node stops serving until it
 *   restarts and Raft replays them (apply_tx.c); this apply, and every one
 *   after it, returns RAFT_IOERR.
 * - Memory: raft 0.15 keeps every entry since its last snapshot, plus
 *   `trailing` older ones, in memory, and counts both in entries only. With
 *   big entries (group commit packs up to REPL_MAX_BATCH_BYTES) that is
 *   unbounded in bytes, so apply also counts bytes: once the entries since
 *   the last snapshot hold REPL__SNAPSHOT_BYTES, it lowers raft's snapshot
 *   threshold so that a snapshot is taken right after this entry, and the
 *   snapshot keeps only as many trailing entries as fit in
 *   REPL__TRAILING_BYTES (repl__fsm_trailing). Snapshots are cheap here
 *   (snapshot.c): they do not copy events.
 * - A store seeded from a backup (store/backup.h) holds events the Raft
 *   log does not: its state at index 0 is the backup, not an empty store.
 *   A new member that replayed the log from index 1 onto its empty store
 *   would diverge. So until Raft holds a snapshot, such a node takes one
 *   right after the next entry it applies (base_pending), and membership
 *   changes are refused (membership.c); a new member then gets that
 *   snapshot and pulls the events (snapshot.c), since raft 0.15 sends the
 *   snapshot to any follower that needs index 1 once one exists.
 * - WAL checkpoints run on libuv's threadpool with a second store handle
 *   (store/checkpoint.c), started after a commit once the WAL holds
 *   REPL__CHECKPOINT_FRAMES, one at a time; the loop checkpoints itself
 *   only if the WAL grows past REPL__CHECKPOINT_FORCE_FRAMES anyway. The
 *   checkpointer object outlives the replication layer while a checkpoint
 *   runs: its after-work callback frees it once closing is set.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "repl_int.h"

struct repl__checkpointer {
    uv_work_t work;
    ledger_repl *r;      /* NULL once closing. */
    ledger_store *store; /* Its own handle on the store's file. */
    bool running;
    bool closing;
    int rv;
    char errmsg[256];
};

static void checkpointWork(uv_work_t *w)
{
    struct repl__checkpointer *c = w->data;
    c->rv = ledger_store_checkpoint(c->store);
    if (c->rv != 0) {
        snprintf(c->errmsg, sizeof c->errmsg, "%s",
                 ledger_store_errmsg(c->store));
    }
}

static void checkpointDone(uv_work_t *w, int status)
{
    struct repl__checkpointer *c = w->data;

    c->running = false;
    if (c->closing) {
        ledger_store_close(c->store);
        free(c);
        return;
    }
    if (status != 0 || c->rv != 0) {
        repl__log(c->r, 2, "checkpoint: %s",
                  status != 0 ? uv_strerror(status) : c->errmsg);
    }
}

static void checkpointerOpen(ledger_repl *r);

void repl__fsm_committed(ledger_repl *r)
{
    struct repl__checkpointer *c = r->ckpt;
    uint64_t frames;

    if (c == NULL) {
        /* Opened at the first apply, not at start: a start that fails
         * never has a second handle to clean up. */
        if (!r->ckpt_tried) {
            r->ckpt_tried = true;
            checkpointerOpen(r);
        }
        return;
    }
    frames = ledger_store_wal_frames(r->store);
    if (frames >= REPL__CHECKPOINT_FORCE_FRAMES) {
        if (ledger_store_checkpoint(r->store) != 0) {
            repl__log(r, 2, "checkpoint: %s", ledger_store_errmsg(r->store));
        }
        return;
    }
    if (frames < REPL__CHECKPOINT_FRAMES || c->running) {
        return;
    }
    c->work.data = c;
    if (uv_queue_work(r->loop, &c->work, checkpointWork, checkpointDone) == 0) {
        c->running = true;
    }
}

static void checkpointerOpen(ledger_repl *r)
{
    struct repl__checkpointer *c = calloc(1, sizeof *c);
    char err[256];

    if (c == NULL || ledger_store_open(ledger_store_path(r->store), &c->store,
                                       err, sizeof err) != 0) {
        repl__log(r, 2, "checkpoints stay on the loop: %s",
                  c == NULL ? "out of memory" : err);
        free(c);
        return;
    }
    c->r = r;
    r->ckpt = c;
    ledger_store_manual_checkpoints(r->store);
}

static void checkpointerClose(ledger_repl *r)
{
    struct repl__checkpointer *c = r->ckpt;

    if (c == NULL) {
        return;
    }
    r->ckpt = NULL;
    c->r = NULL;
    if (c->running) {
        c->closing = true; /* checkpointDone frees it. */
        return;
    }
    ledger_store_close(c->store);
    free(c);
}

static void fsmFreeUnclaimed(ledger_repl *r)
{
    free(r->unclaimed);
    r->unclaimed = NULL;
}

/* Remember the entry's size; ask for a snapshot after this entry when the
 * entries since the last one hold REPL__SNAPSHOT_BYTES. raft reads the
 * threshold right after apply returns (replicationApply). */
static void accountEntry(ledger_repl *r, uint64_t index, size_t len)
{
    uint64_t since = index - r->raft.log.snapshot.last_index;

    r->sizes[index % REPL__SIZE_RING].index = index;
    r->sizes[index % REPL__SIZE_RING].len =
        len > UINT32_MAX ? UINT32_MAX : (uint32_t)len;
    r->bytes_since_snapshot += len;
    if (r->bytes_since_snapshot >= REPL__SNAPSHOT_BYTES && since > 0 &&
        since < r->raft.snapshot.threshold) {
        r->raft.snapshot.threshold = (unsigned)since;
    }
}

unsigned repl__fsm_trailing(ledger_repl *r)
{
    uint64_t last = r->raft.last_applied;
    uint64_t bytes = 0;
    unsigned n = 0;

    while (n < r->cfg.snapshot_trailing && n < REPL__SIZE_RING && n < last) {
        uint64_t i = last - n;
        uint64_t len = r->sizes[i % REPL__SIZE_RING].index == i
                           ? r->sizes[i % REPL__SIZE_RING].len
                           : 0; /* Barrier or configuration: tiny. */
        if (n >= REPL__TRAILING_MIN && bytes + len > REPL__TRAILING_BYTES) {
            break;
        }
        bytes += len;
        n++;
    }
    /* 0 would tell raft_uv this is a restore (a blocking barrier). */
    return n > 0 ? n : 1;
}

bool repl__base_pending(ledger_repl *r)
{
    if (r->base_pending && r->raft.log.snapshot.last_index > 0) {
        r->base_pending = false;
        repl__log(r, 1, "restored cluster: first snapshot taken at index %llu",
                  (unsigned long long)r->raft.log.snapshot.last_index);
    }
    return r->base_pending;
}

void repl__fsm_snapshotted(ledger_repl *r)
{
    r->bytes_since_snapshot = 0;
    r->raft.snapshot.threshold = r->cfg.snapshot_threshold;
}

static int applyOp(ledger_repl *r, const struct op *op, int64_t ts,
                   struct ledger_op_result *res)
{
    ledger_store *s = r->store;
    size_t i;
    int rv = 0;

    memset(res, 0, sizeof *res);
    switch (op->type) {
    case OP_APPEND:
        rv = ledger_store_append(s, op->stream, op->events, op->n_events,
                                 op->has_expected, op->expected, ts,
                                 &res->append);
        break;
    case OP_CHECKPOINT:
        rv = ledger_store_put_checkpoint(s, op->stream, op->name, op->value,
                                         op->value_len);
        break;
    case OP_INIT:
        rv = ledger_store_init_cluster(s, op->cluster_id);
        for (i = 0; rv == 0 && i < op->n_members; i++) {
            rv = ledger_store_put_member(s, op->members[i].id,
                                         op->members[i].raft_addr,
                                         op->members[i].api_addr);
        }
        break;
    case OP_MEMBER_PUT:
        rv = ledger_store_put_member(s, op->members[0].id,
                                     op->members[0].raft_addr,
                                     op->members[0].api_addr);
        break;
    case OP_MEMBER_DEL:
        rv = ledger_store_delete_member(s, op->member_id);
        break;
    case OP_MEMBER_ZONE:
        rv = ledger_store_set_member_zone(s, op->member_id, op->zone);
        break;
    case OP_ROLES:
        rv = ledger_store_set_roles(s, &op->roles);
        break;
    default:
        rv = LEDGER_STORE_EINVAL;
        break;
    }
    res->error = rv;
    return rv;
}

static int fsmApply(struct raft_fsm *fsm, const struct raft_buffer *buf,
                    void **result)
{
    ledger_repl *r = fsm->data;
    struct ledger_store_state st;
    struct ledger_op_result *results = NULL;
    entry_decoder *dec = NULL;
    struct op *ops = NULL;
    size_t n_ops = 0;
    uint64_t index = r->raft.last_applied + 1;
    int64_t ts = 0;
    char err[256];
    size_t i;
    int rv;

    *result = NULL;
    fsmFreeUnclaimed(r);
    if (r->store_failed) {
        return RAFT_IOERR; /* The store is behind: see apply_tx.c. */
    }
    accountEntry(r, index, buf->len);
    if (repl__base_pending(r)) {
        /* A snapshot right after this entry (raft checks the threshold
         * once apply returns): since the last one, `index` entries. */
        r->raft.snapshot.threshold = (unsigned)index;
    }

    rv = ledger_store_get_state(r->store, &st);
    if (rv != 0) {
        repl__log(r, 3, "apply %llu: %s", (unsigned long long)index,
                  ledger_store_errmsg(r->store));
        return RAFT_IOERR;
    }
    if (index <= st.applied_index) {
        return 0; /* Already in the store (replay after restart). */
    }

    if (entry_decode(buf->base, buf->len, &ts, &ops, &n_ops, &dec, err,
                     sizeof err) != 0) {
        repl__log(r, 3, "apply %llu: %s: entry skipped",
                  (unsigned long long)index, err);
        n_ops = 0;
    }
    if (n_ops > 0) {
        results = calloc(n_ops, sizeof *results);
        if (results == NULL) {
            entry_decoder_free(dec);
            return RAFT_NOMEM;
        }
    }

    rv = repl__tx_open(r);
    if (rv != 0) {
        goto err_io;
    }
    for (i = 0; i < n_ops; i++) {
        rv = applyOp(r, &ops[i], ts, &results[i]);
        if (rv == LEDGER_STORE_EIO || rv == LEDGER_STORE_ENOMEM) {
            snprintf(err, sizeof err, "apply %llu: %s",
                     (unsigned long long)index, ledger_store_errmsg(r->store));
            repl__tx_failed(r, err);
            goto err_failed;
        }
        if (rv != 0) {
            /* Deterministic refusal (bad argument): the op has no effect on
             * any replica; its caller gets the error. */
            repl__log(r, 2, "apply %llu op %zu: %s", (unsigned long long)index,
                      i, ledger_store_errmsg(r->store));
        }
    }
    repl__tx_applied(r, index, buf->len);
    entry_decoder_free(dec);
    r->unclaimed = results;
    *result = results;
    return 0;

err_io:
    repl__log(r, 3, "apply %llu: %s", (unsigned long long)index,
              ledger_store_errmsg(r->store));
    if (raft_state(&r->raft) == RAFT_LEADER && !r->closing &&
        ledger_repl_transfer(r, 0, NULL, NULL) == 0) {
        /* Raft 0.15 retries a failed apply only when the commit index
         * moves, and the writes waiting here are answered only after
         * their apply: a leader whose store fails (disk full) would hold
         * every write and strong read forever. Hand leadership to another
         * voter; as a follower this node retries the apply with every
         * commit and catches up once its store works again. */
        repl__log(r, 3,
                  "apply %llu failed on the leader: handing "
                  "leadership to another voter",
                  (unsigned long long)index);
    }
err_failed:
    free(results);
    entry_decoder_free(dec);
    return RAFT_IOERR;
}

void repl__fsm_init(ledger_repl *r)
{
    struct ledger_store_state st;

    /* Before raft_start, which may apply entries. */
    r->base_pending = ledger_store_get_state(r->store, &st) == 0 &&
                      st.restored_from[0] != '\0';
    memset(&r->fsm, 0, sizeof r->fsm);
    r->fsm.version = 1;
    r->fsm.data = r;
    r->fsm.apply = fsmApply;
    r->fsm.snapshot = repl__snapshot;
    r->fsm.restore = repl__restore;
}

void repl__fsm_close(ledger_repl *r)
{
    fsmFreeUnclaimed(r);
    checkpointerClose(r);
}
