/* Backups of a store: a consistent copy taken while the node keeps
 * appending, its offline verification, and seeding the first store of a
 * new cluster from it (docs/operations.md, "Disaster recovery").
 *
 * A backup is one SQLite file in rollback-journal mode (the sqlite3 tool
 * reads it as it is): the store's tables (meta, events, streams,
 * checkpoints, members) exactly as one committed transaction left them,
 * plus a one-row table
 *
 *   backup_meta(cluster_id TEXT, position INTEGER, head_hash TEXT,
 *               raft_index INTEGER, raft_term INTEGER,
 *               schema_version INTEGER, created_at TEXT)
 *
 * whose stamps describe that copy: position and head_hash (64 lowercase
 * hex digits) are those of its last event (0 and 64 zeros when it has
 * none), raft_index its meta applied_index, cluster_id and schema_version
 * its meta values, raft_term the Raft term of the node that took it when
 * it took it, created_at the time (ISO 8601, UTC, e.g.
 * "2025-12-03T06:15:21Z").
 *
 * Copies are made with SQLite's online backup API from a read-only
 * connection: one read transaction of the WAL, so the copy is a snapshot of
 * committed transactions and the writer is never blocked. Never by copying
 * the database and -wal files, which gives a torn copy while it writes.
 *
 * Thread-safety: every function opens its own connections and may run on
 * any thread (the node runs them on libuv's threadpool). Errors: the
 * LEDGER_STORE_* codes of store.h and a one-line reason in err.
 */
#ifndef LEDGER_STORE_BACKUP_H
#define LEDGER_STORE_BACKUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

struct ledger_backup_meta {
    char cluster_id[64];
    uint64_t position;
    uint8_t head_hash[LEDGER_HASH_LEN];
    uint64_t raft_index;
    uint64_t raft_term;
    int schema_version;
    char created_at[32];
};

/* Copy the store at store_path (a live store: another connection may be
 * writing it) into a new file dest_path, which must not exist, and stamp
 * it (backup_meta, with raft_term as given). The copy is not fsynced.
 * *out receives the stamps. On failure dest_path is removed. */
int ledger_backup_create(const char *store_path, const char *dest_path,
                         uint64_t raft_term, struct ledger_backup_meta *out,
                         char *err, size_t errlen);

/* The verdict of ledger_backup_verify. */
struct ledger_backup_check {
    bool ok;                        /* Stamps and chain hold. */
    struct ledger_backup_meta meta; /* The stamps, as read. */
    uint64_t events;                /* Events checked (= position). */
    uint64_t first_bad_position;    /* 0: none, or not about an event. */
    char reason[256];               /* Why not ok. */
};

/* Check the backup at `path` offline, reading only: one backup_meta row
 * with well-formed stamps; a schema not newer than this build's
 * (LEDGER_STORE_ESCHEMA otherwise, err says which versions); stamps equal
 * to the contents (cluster id, applied index, schema version, last
 * position and its hash); then the whole hash chain and stream heads
 * (ledger_store_verify). Returns LEDGER_STORE_OK when the check ran, the
 * verdict in out->ok; another code (err set) when it could not run: not a
 * SQLite file, not a backup, unreadable, newer schema. */
int ledger_backup_verify(const char *path, struct ledger_backup_check *out,
                         char *err, size_t errlen);

/* Make store_path, which must not exist, the store of the first node of a
 * new cluster, from a backup verified beforehand: the backup's tables
 * without backup_meta, its cluster id moved to meta 'restored_from' and
 * cluster_id cleared (the new cluster's first leader picks a new one),
 * applied_index 0 (the new Raft log starts at index 1) and no members (the
 * new cluster records its own). Written to store_path.seed, fsynced, then
 * renamed: a crash leaves either no store or the whole seeded one. *out
 * receives the backup's stamps. */
int ledger_backup_seed(const char *backup_path, const char *store_path,
                       struct ledger_backup_meta *out, char *err,
                       size_t errlen);

/* SHA-256 of a whole file, streamed (1 MiB at a time). */
int ledger_file_sha256(const char *path, uint8_t out[LEDGER_HASH_LEN],
                       char *err, size_t errlen);

#endif /* LEDGER_STORE_BACKUP_H */
