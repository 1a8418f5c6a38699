/* The replicated state machine: applies command entries to the store.
 *
 * Invariants:
 * - An entry is applied in exactly one store transaction whose commit also
 *   records the entry's Raft index as applied_index. The index of the entry
 *   being applied is raft.last_applied + 1 (raft 0.15 advances last_applied
 *   right after fsm->apply returns, for every entry type).
 * - Entries at or below the store's applied_index are skipped: after a
 *   restart Raft replays entries newer than its last snapshot, and the
 *   store already holds their effects. This is what makes replay safe.
 * - Each op in an entry is decided independently (a conflict in one op does
 *   not affect the others) and deterministically.
 * - A malformed entry (impossible unless a bug wrote it) is logged loudly
 *   and recorded as applied with no effect, so replicas stay identical.
 * - A store I/O error aborts the transaction and returns RAFT_IOERR: the
 *   entry is not marked applied and Raft will try again.
 */
#include <stdlib.h>
#include <string.h>

#include "replication/repl_int.h"

static void fsmFreeUnclaimed(ledger_repl *r)
{
    free(r->unclaimed);
    r->unclaimed = NULL;
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

    rv = ledger_store_begin(r->store);
    if (rv != 0) {
        goto err_io;
    }
    for (i = 0; i < n_ops; i++) {
        rv = applyOp(r, &ops[i], ts, &results[i]);
        if (rv == LEDGER_STORE_EIO || rv == LEDGER_STORE_ENOMEM) {
            ledger_store_rollback(r->store);
            goto err_io;
        }
        if (rv != 0) {
            /* Deterministic refusal (bad argument): the op has no effect on
             * any replica; its caller gets the error. */
            repl__log(r, 2, "apply %llu op %zu: %s", (unsigned long long)index,
                      i, ledger_store_errmsg(r->store));
        }
    }
    rv = ledger_store_commit(r->store, index);
    if (rv != 0) {
        goto err_io; /* commit rolled back; its message is the cause */
    }
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
        repl__log(r, 3, "apply %llu failed on the leader: handing "
                  "leadership to another voter", (unsigned long long)index);
    }
    free(results);
    entry_decoder_free(dec);
    return RAFT_IOERR;
}

void repl__fsm_init(ledger_repl *r)
{
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
}
