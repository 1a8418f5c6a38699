/* Raft's in-memory log, bounded by bytes as well as by entries.
 *
 * raft 0.15 keeps every entry applied since its last snapshot, plus
 * `trailing` older ones, in memory, and counts only entries: at the
 * defaults (threshold 1024, trailing 2048) and with group commit filling
 * entries up to REPL_MAX_BATCH_BYTES, that could pin gigabytes (measured:
 * 1,000 entries of 1,000 events each held ~70 MiB on every node, and a
 * node joining that cluster received them all by replication and peaked
 * at 214 MiB).
 *
 * ledger's snapshots are small (state only, see snapshot.c) and a follower
 * that falls behind the trailing log catches up by pulling events over HTTP,
 * so snapshotting often is cheap. This file keeps an average of the applied
 * entries' sizes (exponential, weight 1/8) and sets
 *     threshold = clamp(REPL_LOG_BUDGET / 2 / average, 8, configured)
 *     trailing  = clamp(REPL_LOG_BUDGET / 2 / average, 8, configured)
 * so the log held in memory stays near REPL_LOG_BUDGET bytes whatever the
 * entry size; with small entries the configured counts apply unchanged.
 *
 * Invariants: runs on every node (from apply); only raft's two snapshot
 * knobs are written, through their public setters, which raft reads at
 * each apply (threshold) and at each snapshot (trailing).
 */
#include "replication/repl_int.h"

#define LOGMEM__MIN 8 /* Entries, at least, for both knobs. */

static unsigned clampCount(uint64_t want, unsigned configured)
{
    if (want < LOGMEM__MIN) {
        want = LOGMEM__MIN;
    }
    return want < configured ? (unsigned)want : configured;
}

void repl__logmem_note(ledger_repl *r, size_t entry_bytes)
{
    uint64_t per_half;
    unsigned threshold;
    unsigned trailing;

    r->avg_entry_bytes = r->avg_entry_bytes == 0
                             ? entry_bytes
                             : (r->avg_entry_bytes * 7 + entry_bytes) / 8;
    if (r->avg_entry_bytes == 0) {
        return;
    }
    per_half = (REPL_LOG_BUDGET / 2) / r->avg_entry_bytes;
    threshold = clampCount(per_half, r->cfg.snapshot_threshold);
    trailing = clampCount(per_half, r->cfg.snapshot_trailing);
    if (threshold != r->raft.snapshot.threshold) {
        raft_set_snapshot_threshold(&r->raft, threshold);
    }
    if (trailing != r->raft.snapshot.trailing) {
        raft_set_snapshot_trailing(&r->raft, trailing);
    }
}
