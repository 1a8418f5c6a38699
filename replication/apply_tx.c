/* The apply transaction: entries applied in one loop turn, and in the few
 * milliseconds after, share one store transaction (see repl_int.h).
 *
 * Why: a SQLite commit writes every page the transaction dirtied to the
 * WAL (a frame header and a page per pwrite), and consecutive entries dirty
 * the same pages (the table's last leaf, the index leaves, the stream head,
 * the meta row). Committing once per REPL__TX_MAX_MS instead of once per
 * entry writes those pages once (make bench, 3 nodes on 2 cores: 1 / 16 /
 * 64 clients 1,500 / 7,500 / 10,500 -> 2,000 / 10,500 / 14,000 req/s with
 * 50 ms; 10 ms gained half of that), and moves the commit out of the path of
 * the leader's answers: raft calls the apply callback (which answers the
 * writers) right after fsm apply, and the commit comes later, in the check
 * phase or on the timer.
 *
 * Invariants:
 * - Durability does not depend on the store: an entry is acknowledged once
 *   Raft committed it, i.e. it is in the Raft log of a majority. The store
 *   holds applied entries in this transaction; a crash loses at most the
 *   open transaction, and Raft replays those entries at restart because
 *   the store's applied_index (written by the commit) is older. Raft drops
 *   log entries only after a snapshot, and repl__snapshot flushes first.
 * - This node sees its own applied entries at once: the API reads through
 *   the same SQLite handle. Other handles (the verify reader, the
 *   checkpointer) see what was committed; ledger_repl_flush() commits on
 *   demand.
 * - No transaction stays open across a snapshot, a restore, or close:
 *   each flushes first.
 * - A failed commit or a failed apply loses the whole transaction, i.e.
 *   entries Raft believes applied: the store is then behind Raft for good,
 *   so the node stops serving (r->store_failed: status "unavailable",
 *   every later apply fails, a leader hands leadership over) until it
 *   restarts, when Raft replays what the store lacks (node/restart.c
 *   restarts it in place once the data dir has room).
 */
#include <stdio.h>

#include "repl_int.h"

void repl__tx_timer(ledger_repl *r)
{
    repl__tx_flush(r);
}

int repl__tx_open(ledger_repl *r)
{
    if (r->tx_open) {
        return 0;
    }
    if (ledger_store_begin(r->store) != 0) {
        return -1;
    }
    r->tx_open = true;
    r->tx_entries = 0;
    r->tx_bytes = 0;
    if (!r->closing) {
        r->env->timer(r->env, REPL__TX_MAX_MS); /* The env's one timer. */
    }
    return 0;
}

void repl__tx_applied(ledger_repl *r, uint64_t index, size_t bytes)
{
    r->tx_index = index;
    r->tx_entries++;
    r->tx_bytes += bytes;
    if (r->tx_entries >= REPL__TX_MAX_ENTRIES ||
        r->tx_bytes >= REPL__TX_MAX_BYTES) {
        r->tx_due = true; /* Committed in this turn's check phase. */
    }
}

void repl__tx_failed(ledger_repl *r, const char *why)
{
    if (r->tx_open) {
        ledger_store_rollback(r->store);
        r->tx_open = false;
        r->env->timer(r->env, LEDGER_REPL_TIMER_STOP);
    }
    r->tx_due = false;
    if (r->store_failed) {
        return;
    }
    r->store_failed = true;
    repl__log(r, LEDGER_REPL_ERROR,
              "store: %s: the store is now behind Raft; this node serves "
              "nothing until it restarts (Raft replays what it lacks)",
              why);
    if (raft_state(r->raft) == RAFT_LEADER && !r->closing) {
        r->handover_wanted = true; /* At the next tick (repl.c). */
        repl__log(r, LEDGER_REPL_ERROR,
                  "store failed on the leader: handing leadership to "
                  "another voter");
    }
}

int repl__tx_flush(ledger_repl *r)
{
    char why[320];

    r->tx_due = false;
    if (!r->tx_open) {
        return r->store_failed ? -1 : 0;
    }
    r->env->timer(r->env, LEDGER_REPL_TIMER_STOP);
    r->tx_open = false;
    if (ledger_store_commit(r->store, r->tx_index) != 0) {
        /* The commit rolled back: the transaction is gone. */
        snprintf(why, sizeof why, "commit up to entry %llu: %s",
                 (unsigned long long)r->tx_index,
                 ledger_store_errmsg(r->store));
        repl__tx_failed(r, why);
        return -1;
    }
    repl__ckpt_committed(r);
    return 0;
}

int ledger_repl_flush(ledger_repl *r)
{
    return repl__tx_flush(r);
}

const char *ledger_repl_failed(ledger_repl *r)
{
    return r->store_failed ? "the store failed to apply or commit (data dir "
                             "full?); the node "
                             "restarts itself once the data dir has room"
                           : NULL;
}
