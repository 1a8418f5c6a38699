/* Event-loop stall watch (node/loopwatch.c).
 *
 * Everything a node does runs on one libuv loop, Raft's heartbeats
 * included: a loop that stalls longer than the election timeout costs a
 * leader its leadership. A timer fires every LOOPWATCH_MS and compares when
 * it ran with when it was due; the difference is a stall. Every stall is
 * counted in /metrics (ledger_loop_stall_*), and one longer than half the
 * election timeout is logged at warn with its length.
 *
 * Invariants: loop thread only; the watch adds one timer wake-up per
 * LOOPWATCH_MS and nothing else. */
#ifndef LEDGER_LOOPWATCH_H
#define LEDGER_LOOPWATCH_H

#include <uv.h>

#define LOOPWATCH_MS 50 /* Timer period. */

typedef struct loopwatch loopwatch;

/* Start watching; NULL on out of memory (no watch then). */
loopwatch *loopwatch_start(uv_loop_t *loop, unsigned warn_ms);
void loopwatch_close(loopwatch *w);

#endif /* LEDGER_LOOPWATCH_H */
