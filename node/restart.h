/* Restart in place after Raft stopped on a storage error (node/restart.c).
 *
 * raft 0.15 turns an instance RAFT_UNAVAILABLE for good when a write to its
 * log or an apply fails (a full disk, an I/O error); the node then serves
 * nothing until it is restarted. The watch checks the state every
 * RESTART_CHECK_MS; once it is unavailable it logs that once (error), and
 * /health says so. When the data dir has room again (statvfs: at least
 * RESTART_MIN_FREE bytes free for an unprivileged writer) it calls
 * `restart`, which shuts the node down cleanly (node.c), and node_run
 * returns NODE_EXIT_RESTART, on which main()
 * executes ledgerd again with the same arguments. The new process opens the
 * store and replays Raft's log like any restart: nothing acknowledged is
 * lost, and it catches up from the leader.
 *
 * Invariants: the node closes the watch when it shuts down for another
 * reason; at most one restart is requested per process; a start that has
 * not yet reached a Raft state other than unavailable is left alone,
 * unless its store failed (it applied entries, so it ran: a failure within
 * the first check interval must not leave it stopped for good). */
#ifndef LEDGER_RESTART_H
#define LEDGER_RESTART_H

#include <stdbool.h>
#include <uv.h>

#include "replication/repl.h"

#define RESTART_CHECK_MS 1000 /* How often the state is checked. */
#define RESTART_MIN_FREE                                                       \
    (16ull << 20)            /* Room needed to restart: two of                 \
                                raft's 8 MiB segments. */
#define NODE_EXIT_RESTART 75 /* node_run: exec ledgerd again. */

typedef struct restart_watch restart_watch;

/* Watch `repl`; `data_dir` is borrowed and must outlive the watch. */
restart_watch *restart_watch_start(uv_loop_t *loop, ledger_repl *repl,
                                   const char *data_dir,
                                   void (*restart)(void *arg), void *arg);
void restart_watch_close(restart_watch *w);

/* Why the node is stopped, for /health; NULL while it is not. */
const char *restart_watch_reason(const restart_watch *w);

#endif /* LEDGER_RESTART_H */
