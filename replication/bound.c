/* When raft snapshots, and what it keeps: Raft's in-memory log bounded in
 * bytes.
 *
 * raft 0.15 keeps every entry since its last snapshot, plus `trailing`
 * older ones, in memory, and counts both in entries only. With big entries
 * (group commit packs up to REPL_MAX_BATCH_BYTES) that is unbounded in
 * bytes, so apply also counts bytes: once the entries since the last
 * snapshot hold REPL__SNAPSHOT_BYTES, the snapshot threshold is lowered so
 * that a snapshot is taken right after this entry, and the snapshot keeps
 * only as many trailing entries as fit in REPL__TRAILING_BYTES
 * (repl__bound_trailing). Snapshots are cheap here (snapshot.c): they do
 * not copy events.
 *
 * A store seeded from a backup (store/backup.h) holds events the Raft log
 * does not: its state at index 0 is the backup, not an empty store. A new
 * member that replayed the log from index 1 onto its empty store would
 * diverge. So until Raft holds a snapshot, such a node takes one right
 * after the next entry it applies (repl__base_pending), and membership
 * changes are refused (membership.c); a new member then gets that snapshot
 * and pulls the events (catchup.c), since raft 0.15 sends the snapshot to
 * any follower that needs index 1 once one exists.
 */
#include "raft_peek.h"
#include "repl_int.h"

/* Remember the entry's size; ask for a snapshot after this entry when the
 * entries since the last one hold REPL__SNAPSHOT_BYTES. raft reads the
 * threshold right after apply returns (replicationApply). */
void repl__bound_entry(ledger_repl *r, uint64_t index, size_t len)
{
    uint64_t since = index - peek_snapshot_index(r->raft);

    r->sizes[index % REPL__SIZE_RING].index = index;
    r->sizes[index % REPL__SIZE_RING].len =
        len > UINT32_MAX ? UINT32_MAX : (uint32_t)len;
    r->bytes_since_snapshot += len;
    if (r->bytes_since_snapshot >= REPL__SNAPSHOT_BYTES && since > 0 &&
        since < r->snapshot_threshold) {
        r->snapshot_threshold = (unsigned)since;
        raft_set_snapshot_threshold(r->raft, r->snapshot_threshold);
    }
    if (repl__base_pending(r)) {
        /* A snapshot right after this entry (raft checks the threshold
         * once apply returns): since the last one, `index` entries. */
        r->snapshot_threshold = (unsigned)index;
        raft_set_snapshot_threshold(r->raft, r->snapshot_threshold);
    }
}

unsigned repl__bound_trailing(ledger_repl *r)
{
    uint64_t last = raft_last_applied(r->raft);
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
    if (r->base_pending && peek_snapshot_index(r->raft) > 0) {
        r->base_pending = false;
        repl__log(r, LEDGER_REPL_INFO,
                  "restored cluster: first snapshot taken at index %llu",
                  (unsigned long long)peek_snapshot_index(r->raft));
    }
    return r->base_pending;
}

void repl__bound_snapshotted(ledger_repl *r)
{
    r->bytes_since_snapshot = 0;
    if (r->snapshot_threshold != r->cfg.snapshot_threshold) {
        r->snapshot_threshold = r->cfg.snapshot_threshold;
        raft_set_snapshot_threshold(r->raft, r->snapshot_threshold);
    }
}

void repl__bound_init(ledger_repl *r)
{
    struct ledger_store_state st;
    r->base_pending = ledger_store_get_state(r->store, &st) == 0 &&
                      st.restored_from[0] != '\0';
}
