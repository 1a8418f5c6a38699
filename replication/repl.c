/* Replication lifecycle, group commit and read barriers (see repl.h).
 *
 * Group commit: ledger_repl_submit() queues an encoded op and asks the env
 * for its idle hook; the idle hook (next loop iteration, before the loop
 * blocks)
 * packs every queued op into entries of at most REPL_MAX_BATCH_OPS ops /
 * REPL_MAX_BATCH_BYTES bytes, while fewer than REPL_MAX_INFLIGHT entries
 * are in flight. So requests parsed in the same loop iteration share one
 * entry, and a busy leader's entries grow with its load.
 *
 * Result delivery: fsm apply stores the entry's per-op results in
 * r->unclaimed; raft 0.15 then calls our apply callback synchronously (on
 * the leader that proposed it), which claims them and answers each op's
 * caller in order.
 *
 * Read barriers: concurrent ledger_repl_barrier() callers share one
 * RAFT_BARRIER entry. Joining a barrier already in flight is safe: every
 * entry acknowledged before the join was applied, so it precedes the
 * barrier, and the barrier commits only while we are leader.
 *
 * Observation: after every Raft message and tick (io.c) and every loop
 * turn (check hook), repl__observe compares the leader, term and state
 * with what it saw last: it counts leader changes, records when this node
 * became leader (election.c's contact rule), and tells the node through
 * the leader callback. Nothing here reads a clock or owns a loop handle:
 * time is Raft's (repl__now), loop services are the env's.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "raft_peek.h"
#include "repl_int.h"

struct repl__waiter {
    ledger_repl_op_cb cb;
    void *arg;
};

struct repl__batch {
    struct raft_apply req;
    ledger_repl *r;
    size_t n;
    struct repl__waiter *waiters;
};

struct repl__bwaiter {
    ledger_repl_barrier_cb cb;
    void *arg;
};

struct repl__barrier {
    struct raft_barrier req;
    ledger_repl *r;
    struct repl__bwaiter *waiters;
    size_t n;
    size_t cap;
};

struct repl__transfer {
    struct raft_transfer req;
    ledger_repl *r;
    uint64_t id;
    uint64_t deadline; /* Raft clock ms: transfer even if not quiet */
    bool started;      /* raft_transfer called */
    void (*cb)(void *arg, uint64_t leader);
    void *arg;
};

const char *ledger_repl_strerror(int code)
{
    switch (code) {
    case LEDGER_REPL_OK:
        return "ok";
    case LEDGER_REPL_ENOTLEADER:
        return "not the leader";
    case LEDGER_REPL_EFULL:
        return "write queue full";
    case LEDGER_REPL_EUNKNOWN:
        return "leadership lost: outcome unknown, retry with the same "
               "event ids";
    case LEDGER_REPL_ESHUTDOWN:
        return "node shutting down";
    case LEDGER_REPL_EAPPLY:
        return "store failed to apply";
    case LEDGER_REPL_ENOMEM:
        return "out of memory";
    case LEDGER_REPL_EBUSY:
        return "a leadership transfer is already in progress";
    default:
        return "unknown error";
    }
}

const char *ledger_repl_role_name(int role)
{
    switch (role) {
    case REPL_ROLE_VOTER:
        return "voter";
    case REPL_ROLE_STANDBY:
        return "standby";
    case REPL_ROLE_SPARE:
        return "spare";
    default:
        return "unknown";
    }
}

static int mapRaftStatus(int status)
{
    switch (status) {
    case 0:
        return LEDGER_REPL_OK;
    case RAFT_NOTLEADER:
        return LEDGER_REPL_ENOTLEADER;
    case RAFT_SHUTDOWN:
        return LEDGER_REPL_ESHUTDOWN;
    case RAFT_NOMEM:
        return LEDGER_REPL_ENOMEM;
    default:
        return LEDGER_REPL_EUNKNOWN;
    }
}

/* ---- Group commit ----------------------------------------------------- */

/* Fail the first n queued ops, oldest first. Each op leaves the queue
 * before its callback runs, so a callback may submit again. */
static void failPending(ledger_repl *r, size_t n, int status)
{
    while (n > 0 && r->n_pending > 0) {
        struct repl__pending one = r->pending[0];
        memmove(r->pending, r->pending + 1,
                (r->n_pending - 1) * sizeof *r->pending);
        r->n_pending--;
        r->pending_bytes -= one.buf.len;
        op_buf_free(&one.buf);
        one.cb(one.arg, status, NULL);
        n--;
    }
}

static void handoverTick(ledger_repl *r);

static void applyCb(struct raft_apply *req, int status, void *result)
{
    struct repl__batch *b = req->data;
    ledger_repl *r = b->r;
    struct ledger_op_result *results = NULL;
    size_t i;
    int code = mapRaftStatus(status);

    r->inflight--;
    if (r->handover != NULL) {
        /* Not from here: raft may be stepping down (raft_peek.c
         * peek_leading); the idle hook goes on with the hand-over. */
        repl__want_idle(r);
    }
    if (status != 0) {
        repl__log(r, LEDGER_REPL_WARN, "entry %llu of %zu ops failed: %s",
                  (unsigned long long)req->index, b->n, raft_strerror(status));
    }
    if (status == 0) {
        results = result;
        if (results != NULL && results == r->unclaimed) {
            r->unclaimed = NULL;
        } else {
            results = NULL;
            code = LEDGER_REPL_EAPPLY;
        }
    }
    for (i = 0; i < b->n; i++) {
        b->waiters[i].cb(b->waiters[i].arg, code,
                         results != NULL ? &results[i] : NULL);
    }
    free(results);
    free(b->waiters);
    free(b);
    if (r->n_pending > 0 && !r->closing) {
        repl__want_idle(r);
    }
}

/* Propose one entry from the head of the queue. Returns false when nothing
 * more can be proposed now. */
static bool flushOne(ledger_repl *r)
{
    struct repl__batch *b;
    struct raft_buffer buf;
    struct op_buf *ops;
    size_t n = 0;
    size_t bytes = 0;
    size_t i;
    int rv;

    if (r->n_pending == 0 || r->inflight >= REPL_MAX_INFLIGHT) {
        return false;
    }
    if (!peek_leading(r->raft)) {
        failPending(r, r->n_pending, LEDGER_REPL_ENOTLEADER);
        return false;
    }
    while (n < r->n_pending && n < REPL_MAX_BATCH_OPS &&
           (n == 0 || bytes + r->pending[n].buf.len <= REPL_MAX_BATCH_BYTES)) {
        bytes += r->pending[n].buf.len;
        n++;
    }
    b = calloc(1, sizeof *b);
    if (b == NULL) {
        goto err_nomem;
    }
    b->waiters = malloc(n * sizeof *b->waiters);
    if (b->waiters == NULL) {
        goto err_after_batch;
    }
    ops = malloc(n * sizeof *ops);
    if (ops == NULL) {
        goto err_after_waiters;
    }
    for (i = 0; i < n; i++) {
        ops[i] = r->pending[i].buf; /* shallow: the queue still owns it */
        b->waiters[i].cb = r->pending[i].cb;
        b->waiters[i].arg = r->pending[i].arg;
    }
    buf.base = entry_build(r->env->wall_ms(r->env), ops, n, &buf.len);
    free(ops);
    if (buf.base == NULL) {
        goto err_after_waiters;
    }
    b->r = r;
    b->n = n;
    b->req.data = b;
    rv = raft_apply(r->raft, &b->req, &buf, 1, applyCb);
    if (rv != 0) {
        repl__log(r, LEDGER_REPL_WARN, "raft_apply of %zu ops: %s (%s)", n,
                  raft_strerror(rv), raft_errmsg(r->raft));
        raft_free(buf.base);
        free(b->waiters);
        free(b);
        failPending(r, n, mapRaftStatus(rv));
        return false;
    }
    r->inflight++;
    repl__lag_record(r, b->req.index);
    for (i = 0; i < n; i++) {
        r->pending_bytes -= r->pending[i].buf.len;
        op_buf_free(&r->pending[i].buf);
    }
    memmove(r->pending, r->pending + n,
            (r->n_pending - n) * sizeof *r->pending);
    r->n_pending -= n;
    return true;

err_after_waiters:
    free(b->waiters);
err_after_batch:
    free(b);
err_nomem:
    failPending(r, n > 0 ? n : 1, LEDGER_REPL_ENOMEM);
    return false;
}

/* The env's idle hook: the group-commit flush and the catch-up's steps. */
static void idleHook(void *arg)
{
    ledger_repl *r = arg;
    bool more;
    handoverTick(r);
    while (flushOne(r)) {
    }
    /* Either the queue is empty or we wait for an entry to be applied
     * (applyCb asks again). */
    more = repl__catchup_idle(r);
    if (!more && r->idle_on) {
        r->idle_on = false;
        r->env->idle(r->env, false);
    }
}

int ledger_repl_submit(ledger_repl *r, struct op_buf *op, ledger_repl_op_cb cb,
                       void *arg)
{
    struct repl__pending *p;

    if (r->closing) {
        op_buf_free(op);
        return LEDGER_REPL_ESHUTDOWN;
    }
    if (raft_state(r->raft) != RAFT_LEADER || peek_transfer_pending(r->raft) ||
        r->handover != NULL || r->store_failed || repl__catchup_active(r)) {
        op_buf_free(op);
        return LEDGER_REPL_ENOTLEADER;
    }
    if (r->n_pending >= r->cfg.max_queue_ops ||
        r->pending_bytes + op->len > r->cfg.max_queue_bytes) {
        op_buf_free(op);
        return LEDGER_REPL_EFULL;
    }
    if (r->n_pending == r->cap_pending) {
        size_t cap = r->cap_pending ? r->cap_pending * 2 : 64;
        p = realloc(r->pending, cap * sizeof *p);
        if (p == NULL) {
            op_buf_free(op);
            return LEDGER_REPL_ENOMEM;
        }
        r->pending = p;
        r->cap_pending = cap;
    }
    p = &r->pending[r->n_pending++];
    p->buf = *op;
    p->cb = cb;
    p->arg = arg;
    r->pending_bytes += op->len;
    op->data = NULL;
    op->len = 0;
    repl__want_idle(r);
    return 0;
}

/* ---- Barriers ---------------------------------------------------------- */

static void barrierCb(struct raft_barrier *req, int status)
{
    struct repl__barrier *b = req->data;
    ledger_repl *r = b->r;
    size_t i;
    int code;

    if (r->barrier == b) {
        r->barrier = NULL;
    }
    /* Raft applied everything before the barrier, but a failed store
     * commit may have taken some of it back out of the store (apply_tx.c):
     * nothing read now would be strong. */
    code = r->store_failed ? LEDGER_REPL_EAPPLY : mapRaftStatus(status);
    for (i = 0; i < b->n; i++) {
        b->waiters[i].cb(b->waiters[i].arg, code, req->index);
    }
    free(b->waiters);
    free(b);
}

int ledger_repl_barrier(ledger_repl *r, ledger_repl_barrier_cb cb, void *arg)
{
    struct repl__barrier *b = r->barrier;
    int rv;

    if (r->closing) {
        return LEDGER_REPL_ESHUTDOWN;
    }
    if (r->store_failed) {
        return LEDGER_REPL_EAPPLY;
    }
    if (!peek_leading(r->raft) || repl__catchup_active(r)) {
        return LEDGER_REPL_ENOTLEADER;
    }
    if (b == NULL) {
        b = calloc(1, sizeof *b);
        if (b == NULL) {
            return LEDGER_REPL_ENOMEM;
        }
        b->r = r;
        b->req.data = b;
        rv = raft_barrier(r->raft, &b->req, barrierCb);
        if (rv != 0) {
            free(b);
            return mapRaftStatus(rv);
        }
        repl__lag_record(r, b->req.index);
        r->barrier = b;
    }
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 8;
        struct repl__bwaiter *w = realloc(b->waiters, cap * sizeof *w);
        if (w == NULL) {
            return LEDGER_REPL_ENOMEM;
        }
        b->waiters = w;
        b->cap = cap;
    }
    b->waiters[b->n].cb = cb;
    b->waiters[b->n].arg = arg;
    b->n++;
    return 0;
}

/* ---- Leadership transfer and membership ------------------------------- */

bool ledger_repl_transferring(ledger_repl *r)
{
    return r->handover != NULL || peek_transfer_pending(r->raft);
}

static void transferCb(struct raft_transfer *req)
{
    struct repl__transfer *t = req->data;
    raft_id id = 0;
    const char *addr = NULL;
    t->r->handover = NULL;
    raft_leader(t->r->raft, &id, &addr);
    if (t->cb != NULL) {
        t->cb(t->arg, id);
    }
    free(t);
}

/* The voter (not us) with the highest match index among those that
 * answered within the last election timeout (and since this node leads),
 * or 0. A voter that does not answer cannot take leadership over. */
static uint64_t bestTransferTarget(ledger_repl *r)
{
    const struct raft_configuration *c = peek_configuration(r->raft);
    uint64_t now = repl__now(r);
    struct peek_progress p;
    uint64_t best = 0;
    raft_index best_match = 0;
    unsigned i;

    for (i = 0; i < c->n; i++) {
        struct repl__contact *k;
        if (c->servers[i].id == r->cfg.id || c->servers[i].role != RAFT_VOTER ||
            !peek_progress(r->raft, i, &p)) {
            continue;
        }
        k = repl__contact_for(r, c->servers[i].id);
        if (k == NULL || k->last_contact < r->leader_since ||
            now - k->last_contact >= r->cfg.election_ms) {
            continue;
        }
        if (best == 0 || p.match_index > best_match) {
            best = c->servers[i].id;
            best_match = p.match_index;
        }
    }
    return best;
}

/* A transfer first quiesces: new ops are refused (ENOTLEADER: callers wait
 * for the new leader), the queue is flushed and every entry in flight is
 * applied, and only then raft_transfer runs. Raft fails the callbacks of
 * entries still in flight when leadership moves (RAFT_LEADERSHIPLOST, an
 * unknown outcome for the client); after the quiesce there are none. The
 * quiesce lasts at most one election timeout, and none at all when this
 * node's store cannot apply (failed, or catching up). */
static void handoverTick(ledger_repl *r)
{
    struct repl__transfer *t = r->handover;
    raft_id leader = 0;
    const char *addr = NULL;
    int rv;

    if (t == NULL || t->started) {
        return;
    }
    if (!peek_leading(r->raft)) {
        if (raft_state(r->raft) == RAFT_LEADER) {
            return; /* Stepping down right now: see it through. */
        }
        r->handover = NULL;
        raft_leader(r->raft, &leader, &addr);
        if (t->cb != NULL) {
            t->cb(t->arg, leader);
        }
        free(t);
        return;
    }
    /* A store that failed or is still catching up applies nothing: there
     * is nothing to wait for. */
    if ((r->inflight > 0 || r->n_pending > 0) && repl__now(r) < t->deadline &&
        !r->store_failed && !repl__catchup_active(r)) {
        return;
    }
    t->started = true;
    rv = raft_transfer(r->raft, &t->req, t->id, transferCb);
    if (rv != 0) {
        repl__log(r, LEDGER_REPL_WARN, "transfer to %llu: %s",
                  (unsigned long long)t->id, raft_strerror(rv));
        r->handover = NULL;
        if (t->cb != NULL) {
            t->cb(t->arg, r->cfg.id);
        }
        free(t);
    }
}

int ledger_repl_transfer(ledger_repl *r, uint64_t id,
                         void (*cb)(void *arg, uint64_t leader), void *arg)
{
    struct repl__transfer *t;

    if (!peek_leading(r->raft)) {
        return LEDGER_REPL_ENOTLEADER;
    }
    if (r->handover != NULL || peek_transfer_pending(r->raft)) {
        return LEDGER_REPL_EBUSY;
    }
    if (id == 0) {
        id = bestTransferTarget(r);
        if (id == 0) {
            return LEDGER_REPL_ENOTLEADER;
        }
    }
    t = calloc(1, sizeof *t);
    if (t == NULL) {
        return LEDGER_REPL_ENOMEM;
    }
    t->r = r;
    t->cb = cb;
    t->arg = arg;
    t->id = id;
    t->deadline = repl__now(r) + r->cfg.election_ms;
    t->req.data = t;
    r->handover = t;
    repl__want_idle(r); /* flush what is queued */
    return 0;
}

/* ---- State ------------------------------------------------------------ */

static const char *stateName(int state)
{
    switch (state) {
    case RAFT_LEADER:
        return "leader";
    case RAFT_FOLLOWER:
        return "follower";
    case RAFT_CANDIDATE:
        return "candidate";
    default:
        return "unavailable";
    }
}

void ledger_repl_status(ledger_repl *r, struct ledger_repl_status *out)
{
    raft_id id = 0;
    const char *addr = NULL;
    struct ledger_store_state st;
    int state = raft_state(r->raft);

    memset(out, 0, sizeof *out);
    raft_leader(r->raft, &id, &addr);
    out->state = stateName(state);
    out->is_leader = state == RAFT_LEADER;
    if (r->store_failed) {
        /* Raft may still run, but the store is behind it: serve nothing
         * (node/restart.c restarts the node). */
        out->state = "unavailable";
        out->is_leader = false;
        out->store_failed = true;
    }
    out->leader_id = id;
    out->term = peek_term(r->raft);
    out->commit_index = peek_commit_index(r->raft);
    out->last_index = raft_last_index(r->raft);
    out->applied_index = repl__applied(r);
    out->catching_up = repl__catchup_active(r);
    repl__catchup_status(r, &out->catchup_position, &out->catchup_target);
    out->leader_changes = r->leader_changes;
    out->leader_contact_ms = -1;
    out->leaderless_ms =
        id != 0 ? 0 : (int64_t)(repl__now(r) - r->leader_known_at);
    if (out->is_leader) {
        out->leader_contact_ms = 0;
    } else if (state == RAFT_FOLLOWER && id != 0) {
        /* A follower restarts its election timer on every contact from
         * the leader. */
        uint64_t now = repl__now(r);
        uint64_t start = peek_election_timer_start(r->raft);
        out->leader_contact_ms = now >= start ? (int64_t)(now - start) : 0;
    }
    if (ledger_store_get_state(r->store, &st) == 0) {
        snprintf(out->cluster_id, sizeof out->cluster_id, "%s", st.cluster_id);
        if (r->store_failed) {
            /* What the store holds, not what Raft applied: waits on the
             * applied index (strong reads on a follower) must not pass. */
            out->applied_index = st.applied_index;
        }
    }
}

bool ledger_repl_leader_api(ledger_repl *r, char *buf, size_t len)
{
    raft_id id = 0;
    const char *addr = NULL;
    raft_leader(r->raft, &id, &addr);
    if (id == 0) {
        return false;
    }
    return repl__member_api(r, id, buf, len);
}

void ledger_repl_on_applied(ledger_repl *r, void (*cb)(void *arg), void *arg)
{
    r->applied_cb = cb;
    r->applied_arg = arg;
}

/* ---- Observation: leader changes, cluster init, applied notifications -- */

void ledger_repl_leader(ledger_repl *r, struct ledger_repl_leader *out)
{
    raft_id id = 0;
    const char *addr = NULL;
    memset(out, 0, sizeof *out);
    raft_leader(r->raft, &id, &addr);
    out->id = id;
    out->term = peek_term(r->raft);
    out->is_self = raft_state(r->raft) == RAFT_LEADER;
    out->here = out->is_self && !r->store_failed &&
                !ledger_repl_transferring(r) && !repl__catchup_active(r);
}

void ledger_repl_on_leader(ledger_repl *r, ledger_repl_leader_cb cb, void *arg)
{
    r->leader_cb = cb;
    r->leader_arg = arg;
}

/* Tell the node when (leader, term, is_self) changed since last told. */
static void notifyLeader(ledger_repl *r)
{
    struct ledger_repl_leader now;

    if (r->leader_cb == NULL || r->closing) {
        return;
    }
    ledger_repl_leader(r, &now);
    if (now.id == r->reported.id && now.term == r->reported.term &&
        now.is_self == r->reported.is_self && now.here == r->reported.here) {
        return;
    }
    if (now.id != 0 &&
        !repl__member_api(r, now.id, now.api_addr, sizeof now.api_addr)) {
        now.api_addr[0] = '\0';
    }
    r->reported = now;
    r->leader_cb(r->leader_arg, &now);
}

void repl__observe(ledger_repl *r)
{
    raft_id leader = 0;
    const char *addr = NULL;
    int state;
    uint64_t term = peek_term(r->raft);
    uint64_t now = repl__now(r);

    repl__io_release_put(&r->io); /* Following again: answer it now. */
    state = raft_state(r->raft);

    raft_leader(r->raft, &leader, &addr);
    if (leader != 0) {
        r->leader_known_at = now;
    }
    if (leader != r->seen_leader) {
        if (leader != 0) {
            /* Forgetting a silent leader (election.c) and hearing from it
             * again in the same term is not a change. */
            if (leader != r->last_leader || term != r->last_leader_term) {
                r->leader_changes++;
            }
            r->last_leader = leader;
            r->last_leader_term = term;
            repl__log(r, LEDGER_REPL_INFO, "leader is now %llu (term %llu)",
                      (unsigned long long)leader, (unsigned long long)term);
        } else {
            repl__log(r, LEDGER_REPL_WARN, "no leader (term %llu)",
                      (unsigned long long)term);
        }
        r->seen_leader = leader;
    }
    if (state != r->seen_state) {
        if (state == RAFT_CANDIDATE) {
            repl__log(r, LEDGER_REPL_INFO,
                      "candidate for leadership (term %llu)",
                      (unsigned long long)term);
        }
        if (state == RAFT_LEADER) {
            r->leader_since = now; /* Every voter counts as heard now. */
        } else {
            r->init_proposed = false;
        }
        r->seen_state = state;
    }
    notifyLeader(r);
}

static void initCb(void *arg, int status, const struct ledger_op_result *res)
{
    ledger_repl *r = arg;
    (void)res;
    if (status != 0) {
        r->init_proposed = false; /* Try again on the next tick. */
    }
}

/* A new leader whose store has no cluster id proposes one, together with
 * every member's API address it knows (from --bootstrap). */
static void maybeProposeInit(ledger_repl *r)
{
    static const char hex[] = "0123456789abcdef";
    struct ledger_store_state st;
    struct op_member *m;
    struct op_buf op;
    unsigned char raw[16];
    char id[33];
    size_t i;

    if (r->init_proposed || raft_state(r->raft) != RAFT_LEADER ||
        repl__catchup_active(r) || ledger_store_get_state(r->store, &st) != 0 ||
        st.cluster_id[0] != '\0') {
        return;
    }
    m = calloc(r->n_bootstrap + 1, sizeof *m);
    if (m == NULL) {
        return;
    }
    for (i = 0; i < r->n_bootstrap; i++) {
        m[i].id = r->bootstrap[i].id;
        m[i].raft_addr = r->bootstrap[i].raft_addr;
        m[i].api_addr = r->bootstrap[i].api_addr;
    }
    if (r->n_bootstrap == 0) {
        m[0].id = r->cfg.id;
        m[0].raft_addr = r->raft_addr;
        m[0].api_addr = r->api_addr;
    }
    r->env->random(r->env, raw, sizeof raw);
    for (i = 0; i < sizeof raw; i++) {
        id[2 * i] = hex[raw[i] >> 4];
        id[2 * i + 1] = hex[raw[i] & 15];
    }
    id[2 * sizeof raw] = '\0';
    if (op_encode_init(id, m, r->n_bootstrap ? r->n_bootstrap : 1, &op) == 0 &&
        ledger_repl_submit(r, &op, initCb, r) == 0) {
        r->init_proposed = true;
        repl__log(r, LEDGER_REPL_INFO, "proposing cluster id %s", id);
    }
    free(m);
}

/* A leader that cannot serve hands leadership to a voter that can: its
 * store failed or an apply failed (apply.c, apply_tx.c), its store is
 * still catching up (catchup.c), or it won an election while a snapshot
 * it received was still being written (io.c). */
static void maybeHandOver(ledger_repl *r)
{
    const char *why = NULL;

    if (raft_state(r->raft) != RAFT_LEADER) {
        r->handover_wanted = false;
        return;
    }
    if (r->handover != NULL || peek_transfer_pending(r->raft) || r->closing) {
        return;
    }
    if (r->handover_wanted || r->store_failed) {
        why = "its store failed";
    } else if (repl__catchup_active(r)) {
        why = "it is still catching up";
    } else if (r->io.put_parked) {
        why = "a snapshot it received is not installed yet";
    }
    if (why != NULL && ledger_repl_transfer(r, 0, NULL, NULL) == 0) {
        r->handover_wanted = false;
        repl__log(r, LEDGER_REPL_WARN,
                  "leader, but %s: handing leadership to another voter", why);
    }
}

bool repl__tick_pre(ledger_repl *r)
{
    return repl__election_tick(r);
}

void repl__tick_post(ledger_repl *r)
{
    repl__observe(r);
    repl__membership_tick(r);
    handoverTick(r);
    maybeHandOver(r);
    maybeProposeInit(r);
    repl__lag_tick(r);
    repl__catchup_tick(r);
}

/* The env's check hook: every loop turn, after its I/O callbacks. */
static void checkHook(void *arg)
{
    ledger_repl *r = arg;
    uint64_t applied;

    if (r->tx_due) {
        repl__tx_flush(r);
    }
    applied = repl__applied(r);
    if (applied != r->seen_applied) {
        r->seen_applied = applied;
        if (r->applied_cb != NULL) {
            r->applied_cb(r->applied_arg);
        }
    }
    if (!r->closing) {
        repl__observe(r);
    }
}

static void timerHook(void *arg)
{
    repl__tx_timer(arg);
}

/* ---- Lifecycle -------------------------------------------------------- */

static const struct repl__io_hooks ioHooks = {
    .tick_pre = repl__tick_pre,
    .tick_post = repl__tick_post,
    .observe = repl__observe,
    .filter = repl__election_filter,
    .draw = repl__election_draw,
    .heard = repl__contact_heard,
};

static char *dupStr(const char *s)
{
    return s != NULL ? strdup(s) : NULL;
}

static void freeLayer(ledger_repl *r)
{
    repl__fsm_close(r);
    free(r->pending);
    free(r->bootstrap);
    free(r->raft_addr);
    free(r->api_addr);
    free(r);
}

int ledger_repl_start_env(struct ledger_repl_env *env, ledger_store *store,
                          const struct ledger_repl_config *cfg,
                          ledger_repl_log_fn log, void *log_arg,
                          ledger_repl **out, char *err, size_t errlen)
{
    struct ledger_repl_env_hooks hooks;
    struct raft_configuration conf;
    ledger_repl *r;
    unsigned tick_ms;
    size_t i;
    int rv;

    *out = NULL;
    r = calloc(1, sizeof *r);
    if (r == NULL) {
        snprintf(err, errlen, "out of memory");
        return LEDGER_REPL_ENOMEM;
    }
    r->env = env;
    r->store = store;
    r->cfg = *cfg;
    r->log = log;
    r->log_arg = log_arg;
    r->raft_addr = dupStr(cfg->raft_addr);
    r->api_addr = dupStr(cfg->api_addr);
    r->cfg.raft_dir = NULL; /* The env's business. */
    r->cfg.raft_addr = r->raft_addr;
    r->cfg.api_addr = r->api_addr;
    r->catchup_source = cfg->catchup;
    r->snapshot_threshold = cfg->snapshot_threshold;
    if (r->raft_addr == NULL || r->api_addr == NULL) {
        snprintf(err, errlen, "out of memory");
        goto err_after_alloc;
    }
    if (cfg->n_bootstrap > 0) {
        r->bootstrap = calloc(cfg->n_bootstrap, sizeof *r->bootstrap);
        if (r->bootstrap == NULL) {
            snprintf(err, errlen, "out of memory");
            goto err_after_alloc;
        }
        memcpy(r->bootstrap, cfg->bootstrap,
               cfg->n_bootstrap * sizeof *r->bootstrap);
        r->n_bootstrap = cfg->n_bootstrap;
    }
    r->cfg.bootstrap = r->bootstrap;

    /* Often enough that a silent leader is forgotten and a cut-off leader
     * steps down (election.c) within a small fraction of the election
     * timeout. */
    tick_ms = cfg->election_ms / 20;
    tick_ms = tick_ms < 5 ? 5 : (tick_ms > 50 ? 50 : tick_ms);
    r->tick_ms = tick_ms;
    repl__io_init(&r->io, r, env->io, tick_ms, &ioHooks);
    if (env->raft == NULL) {
        r->owns_raft = true;
        r->raft = &r->own_raft;
        r->fsm = &r->own_fsm;
        repl__fsm_init(r);
        rv = raft_init(r->raft, &r->io.base, r->fsm, cfg->id, r->raft_addr);
        if (rv != 0) {
            snprintf(err, errlen, "raft init: %s", raft_errmsg(r->raft));
            goto err_after_alloc;
        }
    } else {
        r->raft = env->raft;
        r->fsm = env->fsm;
        repl__fsm_init(r);
        peek_adopt_io(r->raft, &r->io.base);
    }

    if (r->n_bootstrap > 0) {
        raft_configuration_init(&conf);
        for (i = 0; i < r->n_bootstrap; i++) {
            rv = raft_configuration_add(&conf, r->bootstrap[i].id,
                                        r->bootstrap[i].raft_addr, RAFT_VOTER);
            if (rv != 0) {
                snprintf(err, errlen, "bootstrap member %llu: %s",
                         (unsigned long long)r->bootstrap[i].id,
                         raft_strerror(rv));
                raft_configuration_close(&conf);
                goto err_after_alloc;
            }
        }
        rv = raft_bootstrap(r->raft, &conf);
        raft_configuration_close(&conf);
        if (rv == RAFT_CANTBOOTSTRAP) {
            repl__log(r, LEDGER_REPL_INFO,
                      "--bootstrap ignored: %s already holds Raft state",
                      cfg->raft_dir != NULL ? cfg->raft_dir : "the env");
        } else if (rv != 0) {
            snprintf(err, errlen, "bootstrap: %s", raft_errmsg(r->raft));
            goto err_after_alloc;
        } else {
            repl__log(r, LEDGER_REPL_INFO,
                      "bootstrapped a new cluster of %zu members",
                      r->n_bootstrap);
        }
    }

    raft_set_heartbeat_timeout(r->raft, cfg->heartbeat_ms);
    raft_set_election_timeout(r->raft, cfg->election_ms);
    raft_set_pre_vote(r->raft, true);
    /* raft's default is 30 s: an InstallSnapshot that a follower drops
     * (it was taking its own snapshot) would stall its catch-up that long.
     * Restore returns at once (catchup.c), so a snapshot that arrived is
     * answered at once and never resent for being slow. */
    raft_set_install_snapshot_timeout(
        r->raft, cfg->election_ms * 2 > REPL__INSTALL_SNAPSHOT_TIMEOUT_MS
                     ? cfg->election_ms * 2
                     : REPL__INSTALL_SNAPSHOT_TIMEOUT_MS);
    raft_set_snapshot_threshold(r->raft, cfg->snapshot_threshold);
    raft_set_snapshot_trailing(r->raft, cfg->snapshot_trailing);

    /* Hooks first: a restore during raft_start may ask for the idle hook. */
    hooks.arg = r;
    hooks.idle = idleHook;
    hooks.check = checkHook;
    hooks.timer = timerHook;
    env->start(env, &hooks);
    r->leader_known_at = repl__now(r); /* "leaderless since start" */
    r->seen_state = -1;

    rv = raft_start(r->raft);
    if (rv != 0) {
        const char *m = raft_errmsg(r->raft);
        snprintf(err, errlen,
                 "raft start on %s (data %s): %s%s%s: is --raft-addr free "
                 "and the data dir intact?",
                 r->raft_addr, cfg->raft_dir != NULL ? cfg->raft_dir : "-",
                 raft_strerror(rv), m[0] ? ": " : "", m);
        goto err_after_alloc;
    }
    *out = r;
    return 0;

err_after_alloc:
    /* raft and env may be half-initialised: this path is only taken at
     * start-up, where the caller exits the process after reporting. */
    repl__catchup_close(r);
    free(r->bootstrap);
    free(r->raft_addr);
    free(r->api_addr);
    free(r);
    return LEDGER_REPL_EUNKNOWN;
}

static void envClosed(void *arg)
{
    ledger_repl *r = arg;
    void (*cb)(void *) = r->close_cb;
    void *cb_arg = r->close_arg;
    freeLayer(r);
    if (cb != NULL) {
        cb(cb_arg);
    }
}

/* Raft released the layer: commit what is applied, release the env. */
static void layerReleased(ledger_repl *r)
{
    repl__tx_flush(r);
    r->env->close(r->env, envClosed, r);
}

static void raftClosed(struct raft *raft)
{
    layerReleased(
        (ledger_repl *)((char *)raft - offsetof(ledger_repl, own_raft)));
}

void ledger_repl_close(ledger_repl *r, void (*cb)(void *arg), void *arg)
{
    r->closing = true;
    r->close_cb = cb;
    r->close_arg = arg;
    repl__tx_flush(r);
    failPending(r, r->n_pending, LEDGER_REPL_ESHUTDOWN);
    repl__membership_close(r);
    repl__catchup_close(r);
    if (r->handover != NULL && !r->handover->started) {
        /* Still quiescing: end it here (a started one ends in raft_close,
         * through transferCb). */
        struct repl__transfer *t = r->handover;
        r->handover = NULL;
        if (t->cb != NULL) {
            t->cb(t->arg, 0);
        }
        free(t);
    }
    if (r->idle_on) {
        r->idle_on = false;
        r->env->idle(r->env, false);
    }
    r->env->timer(r->env, LEDGER_REPL_TIMER_STOP);
    if (r->owns_raft) {
        raft_close(r->raft, raftClosed);
    } else {
        layerReleased(r); /* The caller closed its instance already. */
    }
}
