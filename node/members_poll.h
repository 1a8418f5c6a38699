/* The leader's view of the members beyond what Raft tells it
 * (node/members_poll.c): what each member reports about itself, and since
 * when each has been reachable.
 *
 * Raft tells the leader how far each member's log reaches (match index),
 * not how far the member has applied it, how much disk it has left or which
 * version it runs. While this node leads, it asks every other member's GET
 * /v1/internal/status once per MEMBERS_POLL_MS: the applied index goes to
 * the replication layer (ledger_repl_note_applied), which reports it as the
 * member's applied_index while it is fresh; disk space and version are kept
 * here, the last answer of each member.
 *
 * Reachability, as members_poll_view() reports it:
 * - voters and standbys: Raft's view (ledger_repl_members: "unreachable"
 *   when the member has not answered the leader within --election-ms);
 * - spares, to which the leader sends no Raft messages: the status poll; a
 *   spare that has not answered it for longer than --election-ms (counted
 *   from when this leader first saw it) is "unreachable", and its
 *   last_contact_ms is the age of its last answer.
 * A member is stable since the first tick of its current reachable stretch
 * as this leader saw it (ticks every MEMBERS_POLL_MS); the leader itself is
 * stable since it took the lead. Nothing of this survives a change of
 * leader: a new leader starts its own view.
 *
 * Invariants: at most one poll in flight per member; nothing is polled
 * while not leader; a member that does not answer is just not updated;
 * memory is one fixed table of MEMBERS_POLL_MAX members; members_poll_close
 * returns at once and the state is freed when the last poll in flight has
 * answered. */
#ifndef LEDGER_MEMBERS_POLL_H
#define LEDGER_MEMBERS_POLL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "replication/repl.h"

struct ledger_node;

#define MEMBERS_POLL_MS 500    /* Poll period. */
#define MEMBERS_POLL_MAX 64    /* Members tracked, at most. */
#define MEMBERS_VERSION_MAX 32 /* Version string length + 1. */

typedef struct members_poll members_poll;

/* One member as this node sees it now: Raft's view, corrected for spares,
 * plus what the member reported. Fields after `r` are meaningful in the
 * leader's view only (this node leads); elsewhere they are unknown, except
 * for this node's own entry. */
struct member_view {
    struct ledger_repl_member_info r;
    bool view_known;   /* This node leads: reachable/stable are known. */
    bool reachable;    /* r.state != "unreachable". */
    int64_t stable_ms; /* How long reachable without a break; -1: not
                          reachable, or unknown. */
    int64_t disk_free; /* Bytes free for the member's data dir (as it
                          last reported it); -1: unknown. */
    int64_t disk_size; /* Size of that file system; -1: unknown. */
    char version[MEMBERS_VERSION_MAX]; /* "" when unknown. */
};

/* Start polling (NULL on out of memory: lag then shows estimates, and
 * reachability comes from Raft alone). */
members_poll *members_poll_start(struct ledger_node *n);
void members_poll_close(members_poll *p);

/* Fill up to max entries (p may be NULL); returns the number of members. */
size_t members_poll_view(struct ledger_node *n, members_poll *p,
                         struct member_view *out, size_t max);

/* Further voters the cluster can lose and keep a quorum, in the leader's
 * view `v`: reachable voters minus a majority of all voters, at least 0. */
int members_fault_tolerance(const struct member_view *v, size_t n);

/* Space on the file system of this node's data dir: 0, or -1 (out
 * parameters then -1). */
int members_disk_space(const char *dir, int64_t *free_bytes,
                       int64_t *size_bytes);

#endif /* LEDGER_MEMBERS_POLL_H */
