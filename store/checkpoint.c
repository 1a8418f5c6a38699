/* WAL checkpoints off the writer's thread.
 *
 * SQLite checkpoints a WAL database from inside a commit once the WAL holds
 * wal_autocheckpoint pages (1000): that commit then copies the WAL back
 * into the database and fsyncs both, which on the node's loop stalls
 * heartbeats and every answer for milliseconds (measured: the p99 of
 * appends at one client went from 1.2 to 4.5 ms). A store handle may
 * instead report the WAL's size after each commit (a WAL hook, which
 * replaces automatic checkpoints) and leave checkpoints to another handle
 * on the same file, used from another thread: a PASSIVE checkpoint copies
 * what no reader still needs while the writer keeps appending; the writer
 * restarts the WAL from its beginning at its next transaction after a
 * complete checkpoint.
 *
 * Invariants:
 * - With the hook installed, s->wal_frames is the WAL's size in frames as
 *   of the last commit on this handle.
 * - A checkpoint never loses a commit: it only copies committed frames.
 *   With synchronous=NORMAL it fsyncs the WAL before copying and the
 *   database after.
 */
#include <sqlite3.h>

#include "internal.h"

static int walHook(void *arg, sqlite3 *db, const char *name, int n_frames)
{
    ledger_store *s = arg;
    (void)db;
    (void)name;
    s->wal_frames = n_frames > 0 ? (uint64_t)n_frames : 0;
    return SQLITE_OK;
}

void ledger_store_manual_checkpoints(ledger_store *s)
{
    sqlite3_wal_hook(s->db, walHook, s);
}

uint64_t ledger_store_wal_frames(const ledger_store *s)
{
    return s->wal_frames;
}

int ledger_store_checkpoint(ledger_store *s)
{
    int n_log = 0;
    int n_done = 0;
    int rc;

    if (s->in_tx) {
        return storeErrf(s, LEDGER_STORE_EINVAL,
                         "checkpoint inside a write transaction");
    }
    rc = sqlite3_wal_checkpoint_v2(s->db, NULL, SQLITE_CHECKPOINT_PASSIVE,
                                   &n_log, &n_done);
    if (rc != SQLITE_OK && rc != SQLITE_BUSY) {
        return storeSqlErr(s, "checkpoint");
    }
    return LEDGER_STORE_OK;
}
