/* A node's data directory: DIR/LOCK (one process at a time), DIR/node-id
 * (the node id the dir belongs to), DIR/ledger.db (the store), DIR/raft/
 * (Raft's log, snapshots and metadata). */
#ifndef LEDGER_DATADIR_H
#define LEDGER_DATADIR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Take the exclusive lock on DIR/LOCK (flock), waiting up to wait_ms for a
 * predecessor that is still exiting, and (write_pid) write our pid into it
 * for the message a second ledgerd prints. Returns
 * the fd (keep it open for as long as the dir is in use: the kernel
 * releases the lock when the process dies, kill -9 included), or -1 with
 * a one-line reason in err ("data dir D is in use by another ledgerd (pid
 * P): stop it first"). */
int datadir_lock(const char *dir, unsigned wait_ms, bool write_pid, char *err,
                 size_t errlen);

/* The node id recorded in DIR/node-id: 1 found (*id set), 0 no such file,
 * -1 unreadable or malformed (err says why). */
int datadir_node_id(const char *dir, uint64_t *id, char *err, size_t errlen);

/* Record `id` in DIR/node-id (written to a temporary file, fsynced and
 * renamed). 0 or -1 with err. */
int datadir_set_node_id(const char *dir, uint64_t id, char *err, size_t errlen);

#endif /* LEDGER_DATADIR_H */
