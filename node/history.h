/* The last minutes of the cluster, sampled by the leader once a second
 * (node/history.c): throughput and per-member lag, for the console's
 * charts (GET /v1/cluster/history, docs/api.md).
 *
 * A sample is taken every HISTORY_INTERVAL_MS while this node leads, and
 * never otherwise: after a change of leader the new leader's ring holds
 * only what it saw while it led (gaps are gaps: samples carry their wall
 * clock time). Rates are the differences of the leader's own counters
 * (201 appends and the events they appended, metrics.c) over the interval;
 * every append of the cluster runs on the leader, so they are the
 * cluster's.
 *
 * Invariants: memory is one ring of HISTORY_SAMPLES samples of at most
 * HISTORY_MEMBERS members each, allocated at start and never grown (about
 * 330 KiB); the oldest sample is overwritten; loop thread only. */
#ifndef LEDGER_HISTORY_H
#define LEDGER_HISTORY_H

#include <jansson.h>
#include <stdint.h>

struct ledger_node;

#define HISTORY_INTERVAL_MS 1000 /* One sample a second... */
#define HISTORY_SAMPLES 600      /* ...for the last 10 minutes. */
#define HISTORY_MEMBERS 16       /* Members per sample (lowest ids). */

typedef struct history history;

/* Start sampling (NULL on out of memory: the history is then empty). */
history *history_start(struct ledger_node *n);
/* Stop; frees everything once the timer has closed. */
void history_close(history *h);

/* {"interval_ms", "node_id", "samples": [...]} with the samples taken
 * after since_ms (unix ms; 0: all), oldest first; h may be NULL. */
json_t *history_json(history *h, uint64_t node_id, int64_t since_ms);

#endif /* LEDGER_HISTORY_H */
