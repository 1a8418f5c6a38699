/* Membership changes: add, assign a role, remove; one at a time.
 *
 * Raft (0.15) allows one configuration change at a time and refuses a
 * second with RAFT_CANTCHANGE. A change here can take several Raft steps,
 * so this file keeps its own "change in progress" (r->change) for the whole
 * sequence, and refuses another change meanwhile with RAFT_CANTCHANGE too.
 *
 * Promotion to voter is gated on catch-up, visibly:
 *   spare --assign--> standby (the leader now replicates to it)
 *         --wait----> its match index is within REPL_PROMOTE_MAX_LAG entries
 *                     of the leader's last index (polled every tick)
 *         --assign--> voter (Raft runs its own catch-up round first, which
 *                     is short now; with the member up to date it is none)
 * so a new voter never counts towards a quorum while it is far behind. If
 * the wait passes its deadline the change ends with RAFT_NOCONNECTION and
 * a message naming the lag; the member stays a standby (a retry of the
 * promotion picks up from there).
 *
 * Invariants:
 * - r->change is non-NULL from the first Raft call of a change until its
 *   callback has fired; the callback fires exactly once.
 * - Only the leader starts changes; losing leadership during the wait ends
 *   the change with RAFT_LEADERSHIPLOST (what was done so far stays done).
 * - ledger_repl_close ends a waiting change with RAFT_SHUTDOWN; a change
 *   with a Raft request in flight is ended by Raft's own close.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "raft_peek.h"
#include "repl_int.h"

enum {
    STEP_RAFT,    /* A Raft request is in flight; then finish. */
    STEP_STANDBY, /* raft_assign(STANDBY) in flight; then wait. */
    STEP_ADD,     /* raft_add in flight; then the role. */
    STEP_WAIT,    /* Waiting for the standby to catch up (no request). */
    STEP_PROMOTE, /* raft_assign(VOTER) in flight; then finish. */
};

struct repl__change {
    struct raft_change req;
    ledger_repl *r;
    ledger_repl_change_cb cb;
    void *arg;
    uint64_t id;
    int role; /* Final role. */
    int step;
    uint64_t started;  /* Raft clock ms */
    uint64_t deadline; /* Raft clock ms, for STEP_WAIT */
    uint64_t caught_up_ms;
    unsigned timeout_ms; /* For STEP_WAIT. */
};

static void finish(struct repl__change *c, int status, const char *msg)
{
    ledger_repl *r = c->r;
    r->change = NULL;
    if (c->cb != NULL) {
        c->cb(c->arg, status, msg);
    }
    free(c);
}

static void changeCb(struct raft_change *req, int status);

static int progressIndex(ledger_repl *r, uint64_t id)
{
    const struct raft_configuration *c = peek_configuration(r->raft);
    unsigned i;
    for (i = 0; i < c->n; i++) {
        if (c->servers[i].id == id) {
            return (int)i;
        }
    }
    return -1;
}

/* The standby's lag in entries behind the leader's last index, or -1 if
 * it is no longer in the configuration. Leader only. A member that never
 * acknowledged an entry (match index 0: not running, unreachable) counts
 * as the whole log behind, however short the log is. */
static int64_t standbyLag(ledger_repl *r, uint64_t id)
{
    int i = progressIndex(r, id);
    raft_index last = raft_last_index(r->raft);
    struct peek_progress p;
    raft_index match;
    if (i < 0 || !peek_progress(r->raft, (unsigned)i, &p)) {
        return -1;
    }
    match = p.match_index;
    if (match == 0) {
        return (int64_t)last + REPL_PROMOTE_MAX_LAG + 1;
    }
    return match >= last ? 0 : (int64_t)(last - match);
}

static void startWait(struct repl__change *c)
{
    ledger_repl *r = c->r;
    c->step = STEP_WAIT;
    c->deadline = repl__now(r) + c->timeout_ms;
    repl__log(r, LEDGER_REPL_INFO,
              "membership: %llu is a standby; promoting it to voter once "
              "it is within %u entries of the leader",
              (unsigned long long)c->id, REPL_PROMOTE_MAX_LAG);
}

static void promote(struct repl__change *c)
{
    ledger_repl *r = c->r;
    char msg[160];
    int rv;
    c->caught_up_ms = repl__now(r) - c->started;
    c->step = STEP_PROMOTE;
    rv = raft_assign(r->raft, &c->req, c->id, RAFT_VOTER, changeCb);
    if (rv != 0) {
        snprintf(msg, sizeof msg, "promotion to voter: %s", raft_strerror(rv));
        finish(c, rv, msg);
    }
}

static void changeCb(struct raft_change *req, int status)
{
    struct repl__change *c = req->data;
    ledger_repl *r = c->r;
    char msg[200];
    int rv;

    if (status != 0) {
        snprintf(msg, sizeof msg, "%s", raft_strerror(status));
        finish(c, status, msg);
        return;
    }
    switch (c->step) {
    case STEP_ADD:
        if (c->role == RAFT_SPARE) {
            finish(c, 0, "added as spare");
            return;
        }
        c->step = STEP_STANDBY;
        rv = raft_assign(r->raft, &c->req, c->id, RAFT_STANDBY, changeCb);
        if (rv != 0) {
            snprintf(msg, sizeof msg, "added as spare; role standby: %s",
                     raft_strerror(rv));
            finish(c, rv, msg);
        }
        return;
    case STEP_STANDBY:
        if (c->role == RAFT_STANDBY) {
            finish(c, 0, "standby");
            return;
        }
        startWait(c);
        return;
    case STEP_PROMOTE:
        snprintf(msg, sizeof msg,
                 "caught up in %llu ms, then promoted to voter",
                 (unsigned long long)c->caught_up_ms);
        repl__log(r, LEDGER_REPL_INFO, "membership: %llu %s",
                  (unsigned long long)c->id, msg);
        finish(c, 0, msg);
        return;
    default:
        finish(c, 0, "ok");
        return;
    }
}

void repl__membership_tick(ledger_repl *r)
{
    struct repl__change *c = r->change;
    int64_t lag;
    char msg[256];

    if (c == NULL || c->step != STEP_WAIT) {
        return;
    }
    if (raft_state(r->raft) != RAFT_LEADER) {
        finish(c, RAFT_LEADERSHIPLOST,
               "leadership lost while the member was catching up: it stays "
               "a standby; retry the promotion");
        return;
    }
    lag = standbyLag(r, c->id);
    if (lag < 0) {
        finish(c, RAFT_NOTFOUND,
               "the member left the configuration while "
               "catching up");
        return;
    }
    if (lag <= REPL_PROMOTE_MAX_LAG) {
        promote(c);
        return;
    }
    if (repl__now(r) >= c->deadline) {
        char what[64];
        if (lag > (int64_t)raft_last_index(r->raft)) {
            snprintf(what, sizeof what, "it never answered");
        } else {
            snprintf(what, sizeof what, "still %lld entries behind",
                     (long long)lag);
        }
        snprintf(msg, sizeof msg,
                 "member %llu did not catch up within %u ms (%s): it stays "
                 "a standby; check that it runs and can reach the leader, "
                 "then retry the promotion",
                 (unsigned long long)c->id, c->timeout_ms, what);
        repl__log(r, LEDGER_REPL_WARN, "membership: %s", msg);
        finish(c, RAFT_NOCONNECTION, msg);
    }
}

void repl__membership_close(ledger_repl *r)
{
    if (r->change != NULL && r->change->step == STEP_WAIT) {
        finish(r->change, RAFT_SHUTDOWN, "node shutting down");
    }
}

static struct repl__change *changeNew(ledger_repl *r, uint64_t id, int role,
                                      unsigned timeout_ms,
                                      ledger_repl_change_cb cb, void *arg)
{
    struct repl__change *c = calloc(1, sizeof *c);
    if (c != NULL) {
        c->timeout_ms = timeout_ms != 0 ? timeout_ms : REPL_PROMOTE_TIMEOUT_MS;
        c->r = r;
        c->cb = cb;
        c->arg = arg;
        c->id = id;
        c->role = role;
        c->req.data = c;
        c->started = repl__now(r);
    }
    return c;
}

/* After the first Raft call of a change: on failure (rv != 0) drop the
 * change, else it is the one in progress. Returns rv. */
static int begin(ledger_repl *r, struct repl__change *c, int rv)
{
    if (rv != 0) {
        free(c);
        return rv;
    }
    r->change = c;
    return 0;
}

bool ledger_repl_change_busy(ledger_repl *r)
{
    return r->change != NULL;
}

bool ledger_repl_change_info(ledger_repl *r,
                             struct ledger_repl_change_info *out)
{
    static const char *names[] = {"changing", "standby", "adding",
                                  "catching_up", "promoting"};
    struct repl__change *c = r->change;
    if (c == NULL) {
        return false;
    }
    out->id = c->id;
    out->role = c->role;
    out->step = names[c->step];
    out->elapsed_ms = repl__now(r) - c->started;
    return true;
}

int ledger_repl_add(ledger_repl *r, const struct ledger_repl_member *m,
                    int role, unsigned timeout_ms, ledger_repl_change_cb cb,
                    void *arg)
{
    struct repl__change *c;
    if (r->change != NULL) {
        return RAFT_CANTCHANGE;
    }
    if (raft_state(r->raft) == RAFT_LEADER && !peek_leading(r->raft)) {
        return RAFT_NOTLEADER; /* Stepping down right now (raft_peek.c). */
    }
    if (repl__base_pending(r)) {
        return RAFT_BUSY; /* A new member would replay onto nothing. */
    }
    if ((c = changeNew(r, m->id, role, timeout_ms, cb, arg)) == NULL) {
        return RAFT_NOMEM;
    }
    c->step = STEP_ADD;
    return begin(r, c,
                 raft_add(r->raft, &c->req, m->id, m->raft_addr, changeCb));
}

int ledger_repl_assign(ledger_repl *r, uint64_t id, int role,
                       unsigned timeout_ms, ledger_repl_change_cb cb, void *arg)
{
    struct repl__change *c;
    int current = ledger_repl_member_role(r, id);

    if (r->change != NULL) {
        return RAFT_CANTCHANGE;
    }
    if (raft_state(r->raft) == RAFT_LEADER && !peek_leading(r->raft)) {
        return RAFT_NOTLEADER; /* Stepping down right now (raft_peek.c). */
    }
    if (current < 0) {
        return RAFT_NOTFOUND;
    }
    if (repl__base_pending(r) && role != RAFT_SPARE) {
        return RAFT_BUSY; /* It would start replicating from index 1. */
    }
    if ((c = changeNew(r, id, role, timeout_ms, cb, arg)) == NULL) {
        return RAFT_NOMEM;
    }
    if (role != RAFT_VOTER || current == RAFT_VOTER) {
        c->step = STEP_RAFT;
        return begin(r, c, raft_assign(r->raft, &c->req, id, role, changeCb));
    }
    if (current == RAFT_SPARE) {
        c->step = STEP_STANDBY;
        return begin(r, c,
                     raft_assign(r->raft, &c->req, id, RAFT_STANDBY, changeCb));
    }
    r->change = c; /* a standby: straight to the wait */
    startWait(c);
    return 0;
}

int ledger_repl_remove(ledger_repl *r, uint64_t id, ledger_repl_change_cb cb,
                       void *arg)
{
    struct repl__change *c;
    if (r->change != NULL && r->change->step == STEP_WAIT &&
        r->change->id == id) {
        /* Removing the member being promoted ends that promotion. */
        finish(r->change, RAFT_CANCELED,
               "cancelled: the member is being removed");
    }
    if (r->change != NULL) {
        return RAFT_CANTCHANGE;
    }
    if (raft_state(r->raft) == RAFT_LEADER && !peek_leading(r->raft)) {
        return RAFT_NOTLEADER; /* Stepping down right now (raft_peek.c). */
    }
    if ((c = changeNew(r, id, 0, 0, cb, arg)) == NULL) {
        return RAFT_NOMEM;
    }
    c->step = STEP_RAFT;
    return begin(r, c, raft_remove(r->raft, &c->req, id, changeCb));
}

int ledger_repl_member_role(ledger_repl *r, uint64_t id)
{
    int i = progressIndex(r, id);
    return i < 0 ? -1 : peek_configuration(r->raft)->servers[i].role;
}

size_t ledger_repl_voters(ledger_repl *r)
{
    const struct raft_configuration *c = peek_configuration(r->raft);
    size_t n = 0;
    unsigned i;
    for (i = 0; i < c->n; i++) {
        n += c->servers[i].role == RAFT_VOTER;
    }
    return n;
}

const char *ledger_repl_errmsg(ledger_repl *r)
{
    if (r->change != NULL) {
        return "another membership change is in progress";
    }
    if (r->base_pending) {
        return "this cluster was restored from a backup and has not taken "
               "its first snapshot yet: retry in a moment";
    }
    return raft_errmsg(r->raft);
}
