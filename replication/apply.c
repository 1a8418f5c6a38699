/* One command entry applied to the store.
 *
 * Invariants:
 * - An entry is applied inside the apply transaction (apply_tx.c), which
 *   consecutive entries share; its commit records the last of them as
 *   applied_index.
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
 *   after it, returns RAFT_IOERR. A leader whose apply fails asks for its
 *   leadership to be handed over (r->handover_wanted: repl.c's tick).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "repl_int.h"

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

int repl__apply_entry(ledger_repl *r, uint64_t index,
                      const struct raft_buffer *buf,
                      struct ledger_op_result **out)
{
    struct ledger_store_state st;
    struct ledger_op_result *results = NULL;
    entry_decoder *dec = NULL;
    struct op *ops = NULL;
    size_t n_ops = 0;
    int64_t ts = 0;
    char err[256];
    size_t i;
    int rv;

    *out = NULL;
    if (r->store_failed) {
        return RAFT_IOERR; /* The store is behind: see apply_tx.c. */
    }
    rv = ledger_store_get_state(r->store, &st);
    if (rv != 0) {
        repl__log(r, LEDGER_REPL_ERROR, "apply %llu: %s",
                  (unsigned long long)index, ledger_store_errmsg(r->store));
        return RAFT_IOERR;
    }
    if (index <= st.applied_index) {
        return 0; /* Already in the store (replay after restart). */
    }

    if (entry_decode(buf->base, buf->len, &ts, &ops, &n_ops, &dec, err,
                     sizeof err) != 0) {
        repl__log(r, LEDGER_REPL_ERROR, "apply %llu: %s: entry skipped",
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
            repl__log(r, LEDGER_REPL_WARN, "apply %llu op %zu: %s",
                      (unsigned long long)index, i,
                      ledger_store_errmsg(r->store));
        }
    }
    repl__tx_applied(r, index, buf->len);
    entry_decoder_free(dec);
    *out = results;
    return 0;

err_io:
    repl__log(r, LEDGER_REPL_ERROR, "apply %llu: %s", (unsigned long long)index,
              ledger_store_errmsg(r->store));
    if (raft_state(r->raft) == RAFT_LEADER && !r->closing) {
        /* Raft 0.15 retries a failed apply only when the commit index
         * moves, and the writes waiting here are answered only after
         * their apply: a leader whose store fails (disk full) would hold
         * every write and strong read forever. Hand leadership to another
         * voter (at the next tick, repl.c); as a follower this node retries
         * the apply with every commit and catches up once its store works
         * again. */
        r->handover_wanted = true;
        repl__log(r, LEDGER_REPL_ERROR,
                  "apply %llu failed on the leader: handing "
                  "leadership to another voter",
                  (unsigned long long)index);
    }
err_failed:
    free(results);
    entry_decoder_free(dec);
    return RAFT_IOERR;
}
