/* The replicated state machine raft calls: apply, snapshot and restore
 * (snapshot.c).
 *
 * Invariants:
 * - The index of the entry being applied is raft.last_applied + 1 (raft
 *   0.15 advances last_applied right after fsm->apply returns, for every
 *   entry type).
 * - Every entry is counted for the memory bound of Raft's log (bound.c),
 *   then applied to the store (apply.c); its per-op results wait in
 *   r->unclaimed for the leader's apply callback (repl.c).
 * - While a catch-up runs (catchup.c: a snapshot was installed whose
 *   events the store still lacks), apply keeps a copy of each entry and
 *   returns at once; catchup.c applies them, in order, once the store
 *   holds the snapshot's state.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "repl_int.h"

static void fsmFreeUnclaimed(ledger_repl *r)
{
    free(r->unclaimed);
    r->unclaimed = NULL;
}

static int fsmApply(struct raft_fsm *fsm, const struct raft_buffer *buf,
                    void **result)
{
    ledger_repl *r = fsm->data;
    struct ledger_op_result *results = NULL;
    /* raft 0.15 advances last_applied right after apply returns. */
    uint64_t index = raft_last_applied(r->raft) + 1;
    int rv;

    *result = NULL;
    fsmFreeUnclaimed(r);
    repl__bound_entry(r, index, buf->len);
    if (repl__catchup_active(r)) {
        /* The store lacks the events of the snapshot below this entry:
         * keep the entry until they are in (catchup.c). */
        return repl__catchup_defer(r, index, buf);
    }
    rv = repl__apply_entry(r, index, buf, &results);
    if (rv != 0) {
        return rv;
    }
    r->unclaimed = results;
    *result = results;
    return 0;
}

void repl__fsm_init(ledger_repl *r)
{
    repl__bound_init(r); /* Before raft_start, which may apply entries. */
    memset(r->fsm, 0, sizeof *r->fsm);
    r->fsm->version = 1;
    r->fsm->data = r;
    r->fsm->apply = fsmApply;
    r->fsm->snapshot = repl__snapshot;
    r->fsm->restore = repl__restore;
}

void repl__fsm_close(ledger_repl *r)
{
    fsmFreeUnclaimed(r);
    repl__ckpt_close(r);
}
