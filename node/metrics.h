/* Prometheus metrics of one node: counters and a histogram kept in memory,
 * rendered in the text exposition format on GET /metrics. Loop thread only. */
#ifndef LEDGER_METRICS_H
#define LEDGER_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "members_poll.h"
#include "replication/repl.h"

/* `route` must be a string literal (kept by pointer); `method` is copied. */
void metrics_request(const char *route, const char *method, int status);
void metrics_append_latency(double seconds, size_t events);
void metrics_forwarded(void);
/* A forwarded request abandoned: reason "timeout" or "leader_change". */
void metrics_forward_lost(const char *reason);
void metrics_rejected(const char *reason); /* literal */
/* A request refused for its token (auth.c): `name` is the token's NAME
 * (copied; never its secret), `reason` a literal ("forbidden",
 * "rate_limited"). */
void metrics_token_rejected(const char *name, const char *reason);
void metrics_loop_stall(uint64_t ms); /* node/loopwatch.c */
void metrics_peer_rejected(void); /* node/raft_tls.c */

/* Appends answered 201 and the events they appended (history.c). */
uint64_t metrics_appends_total(void);
uint64_t metrics_events_total(void);

/* Render everything; returns malloc'ed text (caller frees) or NULL. */
char *metrics_render(const struct ledger_repl_status *st, uint64_t position,
                     size_t inflight_http, int64_t disk_free, int64_t disk_size,
                     size_t *len);

/* The leader's gauges: per member (ledger_member_*{id,role}) and of the
 * cluster (ledger_cluster_*); malloc'ed text or NULL. */
char *metrics_render_members(const struct member_view *v, size_t n,
                             size_t *len);

#endif /* LEDGER_METRICS_H */
