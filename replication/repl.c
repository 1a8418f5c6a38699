/* Replication lifecycle, group commit and read barriers (see repl.h).
 *
 * Group commit: ledger_repl_submit() queues an encoded op and arms an idle
 * handle; the idle callback (next loop iteration, before the loop blocks)
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
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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
    uint64_t deadline; /* uv_now ms: transfer even if not quiet by then */
    bool started;      /* raft_transfer called */
    void (*cb)(void *arg, uint64_t leader);
    void *arg;
};

void repl__log(ledger_repl *r, int level, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (r->log != NULL) {
        r->log(r->log_arg, level, msg);
    }
}

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

static int64_t wallClockMs(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
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

static void flushIdleCb(uv_idle_t *h);
static void handoverTick(ledger_repl *r);

static void applyCb(struct raft_apply *req, int status, void *result)
{
    struct repl__batch *b = req->data;
    ledger_repl *r = b->r;
    struct ledger_op_result *results = NULL;
    size_t i;
    int code = mapRaftStatus(status);

    r->inflight--;
    handoverTick(r);
    if (status != 0) {
        repl__log(r, 2, "entry %llu of %zu ops failed: %s",
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
        uv_idle_start(&r->flush_idle, flushIdleCb);
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
    if (raft_state(&r->raft) != RAFT_LEADER) {
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
    buf.base = entry_build(wallClockMs(), ops, n, &buf.len);
    free(ops);
    if (buf.base == NULL) {
        goto err_after_waiters;
    }
    b->r = r;
    b->n = n;
    b->req.data = b;
    rv = raft_apply(&r->raft, &b->req, &buf, 1, applyCb);
    if (rv != 0) {
        repl__log(r, 2, "raft_apply of %zu ops: %s (%s)", n, raft_strerror(rv),
                  raft_errmsg(&r->raft));
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

static void flushIdleCb(uv_idle_t *h)
{
    ledger_repl *r = h->data;
    while (flushOne(r)) {
    }
    /* Either the queue is empty or we wait for an entry to be applied
     * (applyCb re-arms us). */
    uv_idle_stop(h);
}

int ledger_repl_submit(ledger_repl *r, struct op_buf *op, ledger_repl_op_cb cb,
                       void *arg)
{
    struct repl__pending *p;

    if (r->closing) {
        op_buf_free(op);
        return LEDGER_REPL_ESHUTDOWN;
    }
    if (raft_state(&r->raft) != RAFT_LEADER || r->raft.transfer != NULL ||
        r->handover != NULL || r->store_failed) {
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
    uv_idle_start(&r->flush_idle, flushIdleCb);
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
    if (raft_state(&r->raft) != RAFT_LEADER) {
        return LEDGER_REPL_ENOTLEADER;
    }
    if (b == NULL) {
        b = calloc(1, sizeof *b);
        if (b == NULL) {
            return LEDGER_REPL_ENOMEM;
        }
        b->r = r;
        b->req.data = b;
        rv = raft_barrier(&r->raft, &b->req, barrierCb);
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
    return r->handover != NULL || r->raft.transfer != NULL;
}

static void transferCb(struct raft_transfer *req)
{
    struct repl__transfer *t = req->data;
    raft_id id = 0;
    const char *addr = NULL;
    t->r->handover = NULL;
    raft_leader(&t->r->raft, &id, &addr);
    if (t->cb != NULL) {
        t->cb(t->arg, id);
    }
    free(t);
}

/* The voter (not us) with the highest match index, or 0. */
static uint64_t bestTransferTarget(ledger_repl *r)
{
    struct raft_configuration *c = &r->raft.configuration;
    uint64_t best = 0;
    raft_index best_match = 0;
    unsigned i;

    if (r->raft.state != RAFT_LEADER) {
        return 0;
    }
    for (i = 0; i < c->n; i++) {
        raft_index m = r->raft.leader_state.progress[i].match_index;
        if (c->servers[i].id == r->raft.id ||
            c->servers[i].role != RAFT_VOTER) {
            continue;
        }
        if (best == 0 || m > best_match) {
            best = c->servers[i].id;
            best_match = m;
        }
    }
    return best;
}

/* A transfer first quiesces: new ops are refused (ENOTLEADER: callers wait
 * for the new leader), the queue is flushed and every entry in flight is
 * applied, and only then raft_transfer runs. Raft fails the callbacks of
 * entries still in flight when leadership moves (RAFT_LEADERSHIPLOST, an
 * unknown outcome for the client); after the quiesce there are none. The
 * quiesce lasts at most one election timeout. */
static void handoverTick(ledger_repl *r)
{
    struct repl__transfer *t = r->handover;
    raft_id leader = 0;
    const char *addr = NULL;
    int rv;

    if (t == NULL || t->started) {
        return;
    }
    if (raft_state(&r->raft) != RAFT_LEADER) {
        r->handover = NULL;
        raft_leader(&r->raft, &leader, &addr);
        t->cb(t->arg, leader);
        free(t);
        return;
    }
    if ((r->inflight > 0 || r->n_pending > 0) &&
        uv_now(r->loop) < t->deadline) {
        return;
    }
    t->started = true;
    rv = raft_transfer(&r->raft, &t->req, t->id, transferCb);
    if (rv != 0) {
        repl__log(r, 2, "transfer to %llu: %s", (unsigned long long)t->id,
                  raft_strerror(rv));
        r->handover = NULL;
        t->cb(t->arg, r->raft.id);
        free(t);
    }
}

int ledger_repl_transfer(ledger_repl *r, uint64_t id,
                         void (*cb)(void *arg, uint64_t leader), void *arg)
{
    struct repl__transfer *t;

    if (raft_state(&r->raft) != RAFT_LEADER) {
        return LEDGER_REPL_ENOTLEADER;
    }
    if (r->handover != NULL || r->raft.transfer != NULL) {
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
    t->deadline = uv_now(r->loop) + r->cfg.election_ms;
    t->req.data = t;
    r->handover = t;
    uv_idle_start(&r->flush_idle, flushIdleCb); /* flush what is queued */
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

    memset(out, 0, sizeof *out);
    raft_leader(&r->raft, &id, &addr);
    out->state = stateName(raft_state(&r->raft));
    out->is_leader = raft_state(&r->raft) == RAFT_LEADER;
    if (r->store_failed) {
        /* Raft may still run, but the store is behind it: serve nothing
         * (node/restart.c restarts the node). */
        out->state = "unavailable";
        out->is_leader = false;
        out->store_failed = true;
    }
    out->leader_id = id;
    out->term = r->raft.current_term;
    out->commit_index = r->raft.commit_index;
    out->last_index = raft_last_index(&r->raft);
    out->applied_index = raft_last_applied(&r->raft);
    out->leader_changes = r->leader_changes;
    out->leader_contact_ms = -1;
    out->leaderless_ms =
        id != 0 ? 0 : (int64_t)(uv_now(r->loop) - r->leader_known_at);
    if (out->is_leader) {
        out->leader_contact_ms = 0;
    } else if (raft_state(&r->raft) == RAFT_FOLLOWER && id != 0) {
        /* A follower restarts its election timer on every contact from
         * the leader. */
        raft_time now = r->io.time(&r->io);
        out->leader_contact_ms =
            now >= r->raft.election_timer_start
                ? (int64_t)(now - r->raft.election_timer_start)
                : 0;
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

struct apiLookup {
    uint64_t id;
    char *buf;
    size_t len;
    bool found;
};

static int apiLookupCb(void *arg, uint64_t id, const char *ra, const char *aa)
{
    struct apiLookup *l = arg;
    (void)ra;
    if (id == l->id) {
        snprintf(l->buf, l->len, "%s", aa);
        l->found = true;
        return 1;
    }
    return 0;
}

/* API address of member `id`: from the store (replicated), else from the
 * bootstrap list given on the command line. */
bool repl__member_api(ledger_repl *r, uint64_t id, char *buf, size_t len)
{
    struct apiLookup l = {id, buf, len, false};
    size_t i;
    if (id == r->cfg.id) {
        snprintf(buf, len, "%s", r->api_addr);
        return true;
    }
    ledger_store_list_members(r->store, apiLookupCb, &l);
    if (l.found) {
        return true;
    }
    for (i = 0; i < r->n_bootstrap; i++) {
        if (r->bootstrap[i].id == id) {
            snprintf(buf, len, "%s", r->bootstrap[i].api_addr);
            return true;
        }
    }
    return false;
}

void ledger_repl_leader(ledger_repl *r, struct ledger_repl_leader *out)
{
    raft_id id = 0;
    const char *addr = NULL;
    raft_leader(&r->raft, &id, &addr);
    out->id = id;
    out->term = r->raft.current_term;
    out->here = raft_state(&r->raft) == RAFT_LEADER && !r->store_failed &&
                !ledger_repl_transferring(r);
}

bool ledger_repl_leader_api(ledger_repl *r, char *buf, size_t len)
{
    raft_id id = 0;
    const char *addr = NULL;
    raft_leader(&r->raft, &id, &addr);
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

static void randomHex(char *out, size_t bytes)
{
    unsigned char raw[32];
    FILE *f = fopen("/dev/urandom", "rb");
    size_t i;
    size_t got = 0;
    if (bytes > sizeof raw) {
        bytes = sizeof raw;
    }
    if (f != NULL) {
        got = fread(raw, 1, bytes, f);
        fclose(f);
    }
    for (i = got; i < bytes; i++) {
        raw[i] = (unsigned char)(wallClockMs() >> (i % 8));
    }
    for (i = 0; i < bytes; i++) {
        sprintf(out + 2 * i, "%02x", raw[i]);
    }
    out[2 * bytes] = '\0';
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
    struct ledger_store_state st;
    struct op_member *m;
    struct op_buf op;
    char id[33];
    size_t i;

    if (r->init_proposed || raft_state(&r->raft) != RAFT_LEADER ||
        ledger_store_get_state(r->store, &st) != 0 ||
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
    randomHex(id, 16);
    if (op_encode_init(id, m, r->n_bootstrap ? r->n_bootstrap : 1, &op) == 0 &&
        ledger_repl_submit(r, &op, initCb, r) == 0) {
        r->init_proposed = true;
        repl__log(r, 1, "proposing cluster id %s", id);
    }
    free(m);
}

static void tickCb(uv_timer_t *t)
{
    ledger_repl *r = t->data;
    raft_id leader = 0;
    const char *addr = NULL;
    int state = raft_state(&r->raft);

    raft_leader(&r->raft, &leader, &addr);
    if (leader != 0) {
        r->leader_known_at = uv_now(r->loop);
    }
    if (leader != r->seen_leader) {
        if (leader != 0) {
            /* Forgetting a silent leader (election.c) and hearing from it
             * again in the same term is not a change. */
            if (leader != r->last_leader ||
                r->raft.current_term != r->last_leader_term) {
                r->leader_changes++;
            }
            r->last_leader = leader;
            r->last_leader_term = r->raft.current_term;
            repl__log(r, 1, "leader is now %llu (term %llu)",
                      (unsigned long long)leader,
                      (unsigned long long)r->raft.current_term);
        } else {
            repl__log(r, 2, "no leader (term %llu)",
                      (unsigned long long)r->raft.current_term);
        }
        r->seen_leader = leader;
    }
    if (state != r->seen_state) {
        if (state == RAFT_CANDIDATE) {
            repl__log(r, 1, "candidate for leadership (term %llu)",
                      (unsigned long long)r->raft.current_term);
        }
        if (state != RAFT_LEADER) {
            r->init_proposed = false;
        }
        r->seen_state = state;
    }
    repl__election_tick(r);
    repl__membership_tick(r);
    handoverTick(r);
    maybeProposeInit(r);
    repl__lag_tick(r);
}

static void checkCb(uv_check_t *h)
{
    ledger_repl *r = h->data;
    uint64_t applied = raft_last_applied(&r->raft);
    if (r->tx_due) {
        repl__tx_flush(r);
    }
    if (applied != r->seen_applied) {
        r->seen_applied = applied;
        if (r->applied_cb != NULL) {
            r->applied_cb(r->applied_arg);
        }
    }
}

/* ---- Lifecycle -------------------------------------------------------- */

static char *dupStr(const char *s)
{
    return s != NULL ? strdup(s) : NULL;
}

int ledger_repl_start(uv_loop_t *loop, ledger_store *store,
                      const struct ledger_repl_config *cfg,
                      ledger_repl_log_fn log, void *log_arg, ledger_repl **out,
                      char *err, size_t errlen)
{
    ledger_repl *r;
    struct raft_configuration conf;
    unsigned tick_ms;
    size_t i;
    int rv;

    *out = NULL;
    r = calloc(1, sizeof *r);
    if (r == NULL) {
        snprintf(err, errlen, "out of memory");
        return LEDGER_REPL_ENOMEM;
    }
    r->loop = loop;
    r->store = store;
    r->cfg = *cfg;
    r->log = log;
    r->log_arg = log_arg;
    r->raft_dir = dupStr(cfg->raft_dir);
    r->raft_addr = dupStr(cfg->raft_addr);
    r->api_addr = dupStr(cfg->api_addr);
    r->token = dupStr(cfg->token);
    r->tls_ca = dupStr(cfg->tls_ca);
    r->tls_cert = dupStr(cfg->tls_cert);
    r->tls_key = dupStr(cfg->tls_key);
    r->cfg.raft_dir = r->raft_dir;
    r->cfg.raft_addr = r->raft_addr;
    r->cfg.api_addr = r->api_addr;
    r->cfg.token = r->token;
    r->cfg.tls_ca = r->tls_ca;
    r->cfg.tls_cert = r->tls_cert;
    r->cfg.tls_key = r->tls_key;
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

    rv = repl__transport_init(&r->transport, loop);
    if (rv != 0) {
        snprintf(err, errlen, "raft transport: %s", raft_strerror(rv));
        goto err_after_alloc;
    }
    /* The caller's transport (mutual TLS: node/raft_tls.c) if it gave one;
     * the TCP_NODELAY one, initialised either way, is then left unused. */
    rv = raft_uv_init(&r->io, loop, r->raft_dir,
                      cfg->transport != NULL ? cfg->transport
                                             : &r->transport.base);
    if (rv != 0) {
        snprintf(err, errlen, "raft storage in %s: %s", r->raft_dir,
                 r->io.errmsg[0] ? r->io.errmsg : raft_strerror(rv));
        goto err_after_alloc;
    }
    repl__fsm_init(r);
    rv = raft_init(&r->raft, &r->io, &r->fsm, cfg->id, r->raft_addr);
    if (rv != 0) {
        snprintf(err, errlen, "raft init: %s", raft_errmsg(&r->raft));
        goto err_after_alloc;
    }
    r->raft.data = r;

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
        rv = raft_bootstrap(&r->raft, &conf);
        raft_configuration_close(&conf);
        if (rv == RAFT_CANTBOOTSTRAP) {
            repl__log(r, 1, "--bootstrap ignored: %s already holds Raft state",
                      r->raft_dir);
        } else if (rv != 0) {
            snprintf(err, errlen, "bootstrap: %s", raft_errmsg(&r->raft));
            goto err_after_alloc;
        } else {
            repl__log(r, 1, "bootstrapped a new cluster of %zu members",
                      r->n_bootstrap);
        }
    }

    raft_set_heartbeat_timeout(&r->raft, cfg->heartbeat_ms);
    raft_set_election_timeout(&r->raft, cfg->election_ms);
    raft_set_pre_vote(&r->raft, true);
    /* raft's default is 30 s: an InstallSnapshot that a follower drops
     * (it was taking its own snapshot) would stall its catch-up that long.
     * A resend to a follower still restoring is harmless: the second
     * restore finds the store caught up. */
    raft_set_install_snapshot_timeout(
        &r->raft, cfg->election_ms * 2 > REPL__INSTALL_SNAPSHOT_TIMEOUT_MS
                      ? cfg->election_ms * 2
                      : REPL__INSTALL_SNAPSHOT_TIMEOUT_MS);
    raft_set_snapshot_threshold(&r->raft, cfg->snapshot_threshold);
    raft_set_snapshot_trailing(&r->raft, cfg->snapshot_trailing);

    rv = raft_start(&r->raft);
    if (rv != 0) {
        const char *m = raft_errmsg(&r->raft);
        snprintf(err, errlen,
                 "raft start on %s (data %s): %s%s%s: is --raft-addr free "
                 "and the data dir intact?",
                 r->raft_addr, r->raft_dir, raft_strerror(rv), m[0] ? ": " : "",
                 m);
        goto err_after_alloc;
    }

    uv_idle_init(loop, &r->flush_idle);
    r->flush_idle.data = r;
    uv_timer_init(loop, &r->tick);
    r->tick.data = r;
    /* Often enough that a silent leader is forgotten (election.c) within
     * a small fraction of the election timeout. */
    tick_ms = cfg->election_ms / 20;
    tick_ms = tick_ms < 5 ? 5 : (tick_ms > 50 ? 50 : tick_ms);
    uv_timer_start(&r->tick, tickCb, tick_ms, tick_ms);
    uv_check_init(loop, &r->check);
    r->check.data = r;
    uv_check_start(&r->check, checkCb);
    repl__tx_init(r);
    r->open_handles = 4;
    r->leader_known_at = uv_now(loop); /* "leaderless since start" */
    r->seen_state = -1;
    *out = r;
    return 0;

err_after_alloc:
    /* raft/io handles may be half-initialised: this path is only taken at
     * start-up, where the caller exits the process after reporting. */
    free(r->bootstrap);
    free(r->raft_dir);
    free(r->raft_addr);
    free(r->api_addr);
    free(r->token);
    free(r->tls_ca);
    free(r->tls_cert);
    free(r->tls_key);
    free(r);
    return LEDGER_REPL_EUNKNOWN;
}

static void maybeFireClose(ledger_repl *r)
{
    void (*cb)(void *) = r->close_cb;
    void *arg = r->close_arg;
    if (r->open_handles > 0) {
        return;
    }
    repl__fsm_close(r);
    free(r->pending);
    free(r->bootstrap);
    free(r->raft_dir);
    free(r->raft_addr);
    free(r->api_addr);
    free(r->token);
    free(r->tls_ca);
    free(r->tls_cert);
    free(r->tls_key);
    free(r);
    if (cb != NULL) {
        cb(arg);
    }
}

void repl__handle_closed(uv_handle_t *h)
{
    ledger_repl *r = h->data;
    r->open_handles--;
    maybeFireClose(r);
}

static void raftClosed(struct raft *raft)
{
    ledger_repl *r = raft->data;
    raft_uv_close(&r->io);
    repl__transport_close(&r->transport);
    uv_close((uv_handle_t *)&r->flush_idle, repl__handle_closed);
    uv_close((uv_handle_t *)&r->tick, repl__handle_closed);
    uv_close((uv_handle_t *)&r->check, repl__handle_closed);
    repl__tx_close(r);
}

void ledger_repl_close(ledger_repl *r, void (*cb)(void *arg), void *arg)
{
    r->closing = true;
    r->close_cb = cb;
    r->close_arg = arg;
    repl__tx_flush(r);
    failPending(r, r->n_pending, LEDGER_REPL_ESHUTDOWN);
    repl__membership_close(r);
    uv_idle_stop(&r->flush_idle);
    uv_timer_stop(&r->tick);
    uv_check_stop(&r->check);
    raft_close(&r->raft, raftClosed);
}
