/* Raft's files of a stopped node, offline: what they hold, and the forced
 * new configuration of a quorum-loss recovery (node/recover.c).
 *
 * Both read the files with raft's own loader (raft_uv, raft 0.15), with
 * auto-recovery off: a segment that fails its checksum is reported, never
 * renamed away. The caller must hold the data dir's lock (no ledgerd may
 * run on it).
 */
#ifndef LEDGER_REPL_DISK_H
#define LEDGER_REPL_DISK_H

#include <stddef.h>
#include <stdint.h>

#include "replication/repl.h"

#define REPL_DISK_MAX_MEMBERS 64

/* What a Raft directory holds. */
struct ledger_repl_disk {
    uint64_t term;           /* Current term (metadata). */
    uint64_t voted_for;      /* Vote in that term, 0: none. */
    uint64_t snapshot_index; /* Last snapshot, 0: none. */
    uint64_t snapshot_term;
    uint64_t first_index; /* First entry in the log, 0: no entries. */
    uint64_t last_index;  /* Last entry (or the snapshot's index). */
    uint64_t last_term;   /* Its term. */
    uint64_t n_entries;
    /* The latest configuration in the log (or the snapshot's) and the
     * index of the entry that holds it (the snapshot's index when it comes
     * from the snapshot). */
    uint64_t config_index;
    size_t n_members;
    struct {
        uint64_t id;
        char raft_addr[REPL_ADDR_MAX];
        int role; /* REPL_ROLE_* */
    } members[REPL_DISK_MAX_MEMBERS];
};

/* Read the Raft directory `raft_dir` without changing it: raft's loader
 * runs on a private copy of its files (in $TMPDIR), because loading closes
 * an open segment in place. 0, or -1 with a one-line reason in err (e.g.
 * a segment that fails its checksum). */
int ledger_repl_disk_read(const char *raft_dir, struct ledger_repl_disk *out,
                          char *err, size_t errlen);

/* Before a start: is the Raft log in raft_dir whole? (disk.c says why
 * raft 0.15 alone cannot tell.) It is not when
 * - an open segment is shorter than raft allocates it (it was cut), or
 *   holds a batch that fails its checksum followed by one that passes (a
 *   flipped bit, not a torn last write: raft would drop every entry from
 *   the bad batch on, acknowledged ones included, without a word);
 * - raft's loader fails on it (a closed segment or a snapshot that fails
 *   its checksum, a gap);
 * - it ends before min_last_index (the store's applied index: entries the
 *   node applied, so committed, are gone).
 * Loads in place (what raft_start does next anyway), after the scan.
 * Returns 0 whole, 1 not whole (err says why), -1 could not tell (err). */
int ledger_repl_disk_check(const char *raft_dir, uint64_t min_last_index,
                           char *err, size_t errlen);

/* Force `members` (all voters) as the configuration of the Raft log in
 * raft_dir: raft_recover appends it as one entry after the last one (raft
 * 0.15 writes it with term 1). Node `id` is the node that owns the dir.
 * *index receives the entry's index. 0, or -1 with err. */
int ledger_repl_disk_recover(const char *raft_dir, uint64_t id,
                             const struct ledger_repl_member *members, size_t n,
                             uint64_t *index, char *err, size_t errlen);

#endif /* LEDGER_REPL_DISK_H */
