/* Raft's I/O as the replication layer sees it: a decorator over the
 * caller's raft_io (raft_uv in ledgerd, raft_fixture's in the tests).
 *
 * Every method is forwarded unchanged, except four, which give the layer
 * its clock, its tick and its view of the network without reading raft's
 * internals or owning a timer, and keep vote messages from being lost:
 *
 * - start: raft asks for a tick every heartbeat; the inner io is asked for
 *   one every REPL__IO_TICK_MS (10 ms, or less when tick_ms or the
 *   heartbeat is shorter). Every `tick_ms` one of them runs the layer's
 *   tick (repl__tick_pre: election.c's rules; repl__tick_post:
 *   observation, membership, lag); raft's own tick runs every heartbeat,
 *   at once when the contact rule needs it, and also as soon as a
 *   follower's or candidate's election timer has expired. raft alone
 *   notices an expired timer only at its next heartbeat tick: two
 *   followers that lost the same leader at the same moment (a frozen
 *   leader) and drew timeouts less than a heartbeat apart then stood at
 *   the same moment, both voted for themselves, and the election took a
 *   second round (gray's SIGSTOP runs: first ack 2.7 s instead of 1.5 s,
 *   about 1 in 6). With 10 ms resolution they stand about as far apart as
 *   their draws. raft's heartbeat cadence is kept: its tick is due
 *   `heartbeat` ms after the previous due time (or after now, when a stall
 *   made it late), as a repeating uv timer would fire.
 * - send: a vote message (RequestVote or its result, pre-vote or not) is
 *   copied, and sent once more at the next tick when the inner io fails
 *   it. raft_uv's connection to a peer is written to only, never read, so
 *   a follower learns that the peer restarted since it last wrote to it
 *   only when a write fails; raft_uv then reconnects but drops that
 *   message, and raft 0.15 never sends a vote message again within a
 *   round: after a kill -9 and restart of one node, the next election
 *   lost its first round that way (gray: a SIGSTOP round right after a
 *   kill round, new leader at 2.7-2.8 s). The first write into such a
 *   connection may even "succeed" (the peer's kernel answers it with a
 *   reset); only the next one fails, and that one is sent again. Other
 *   messages are left to raft (AppendEntries are resent by the leader).
 * - recv: before raft sees a message, an AppendEntries result in the
 *   current term records the time the sender was last heard (lag.c,
 *   election.c), and election.c may hold back a pre-vote answer (its
 *   tie-break between simultaneous candidates); after raft handled it, the
 * layer checks whether the leader or term changed (repl.c) so the node hears of
 * it in the same loop turn.
 * - random: raft draws its randomised election timeout from [T, 2T); the
 *   draw is mapped onto [T, 1.5T) (election.c explains why). raft 0.15
 *   calls io->random for nothing else (election.c electionResetTimer).
 * - snapshot_put of an installed snapshot (trailing 0): raft 0.15's
 *   callback (replication.c installSnapshotCb) restores it and then
 *   answers the leader through r->follower_state.current_leader without
 *   checking that this node is still a follower. If its election timer
 *   fired while the write was on disk (a loop stall longer than the
 *   election timeout), the node is a candidate, that union member holds
 *   candidate_state (votes pointer, in_pre_vote), and raft dereferences
 *   "address" 0x100: a segfault seen in ledgerd. So the write's completion
 *   is handed to raft only while this node is a follower (or closing, when
 *   raft discards it); otherwise it is parked until the next message or
 *   tick that finds it following again (a candidate becomes follower at
 *   the leader's next heartbeat; a leader holding one hands leadership
 *   over, repl.c). raft sees a slow disk write meanwhile, which it handles:
 *   it refuses another InstallSnapshot and commits nothing until then.
 *
 * The layer's rules are reached through the hooks given at init (repl.c
 * fills them), so this file calls into no other file of the layer but the
 * log and raft_peek.c.
 *
 * Invariants:
 * - `base` is the first member: raft hands back &base, callbacks from the
 *   inner io carry the inner pointer, whose `data` points here.
 * - Time is the inner io's: repl__now() is inner->time(inner), the same
 *   clock raft reads (uv_now for raft_uv, the fixture's fake time).
 * - Async work (raft's snapshot_async) is not used: the fsm is version 1,
 *   so async_work is never called; it is forwarded with a NULL check.
 */
#include <assert.h>
#include <stdlib.h>

#include "raft_peek.h"
#include "repl_int.h"

static void sendRetries(struct repl__io *x);
static void cancelRetries(struct repl__io *x);

static struct repl__io *outerOf(struct raft_io *inner)
{
    return inner->data;
}

static struct raft_io *innerOf(struct raft_io *io)
{
    return ((struct repl__io *)io)->inner;
}

static void keepErrmsg(struct raft_io *io, int rv)
{
    if (rv != 0) {
        snprintf(io->errmsg, sizeof io->errmsg, "%s", innerOf(io)->errmsg);
    }
}

static int ioInit(struct raft_io *io, raft_id id, const char *address)
{
    int rv = innerOf(io)->init(innerOf(io), id, address);
    keepErrmsg(io, rv);
    return rv;
}

static void innerClosed(struct raft_io *inner)
{
    struct repl__io *x = outerOf(inner);
    raft_io_close_cb cb;
    /* raft_uv may fire its close callback more than once, even after the
     * layer is gone (env_uv.c clears inner->data then). */
    if (x == NULL) {
        return;
    }
    cb = x->close_cb;
    x->close_cb = NULL;
    if (cb != NULL) {
        cb(&x->base);
    }
}

static void ioClose(struct raft_io *io, raft_io_close_cb cb)
{
    struct repl__io *x = (struct repl__io *)io;
    x->close_cb = cb;
    cancelRetries(x);
    repl__io_release_put(x); /* raft is unavailable now: it discards it */
    x->inner->close(x->inner, innerClosed);
}

static int ioLoad(struct raft_io *io, raft_term *term, raft_id *voted_for,
                  struct raft_snapshot **snapshot, raft_index *start_index,
                  struct raft_entry *entries[], size_t *n_entries)
{
    int rv = innerOf(io)->load(innerOf(io), term, voted_for, snapshot,
                               start_index, entries, n_entries);
    keepErrmsg(io, rv);
    return rv;
}

/* One tick of the inner io (every REPL__IO_TICK_MS at most): the layer's
 * rules every tick_ms, raft's tick every heartbeat, and raft's tick at
 * once when a follower's or candidate's election timer has expired. */
static void tickCb(struct raft_io *inner)
{
    struct repl__io *x = outerOf(inner);
    uint64_t now;
    bool layer;
    bool due;
    bool timer;

    if (x == NULL) {
        return; /* After close (env_uv.c): no layer any more. */
    }
    if (x->retry != NULL) {
        sendRetries(x);
    }
    now = inner->time(inner);
    layer = now >= x->next_layer_tick;
    due = now >= x->next_raft_tick;
    timer = now >= peek_election_deadline(x->r->raft);

    if (layer) {
        x->next_layer_tick += x->tick_ms;
        if (x->next_layer_tick <= now) {
            x->next_layer_tick = now + x->tick_ms;
        }
        if (x->hooks->tick_pre(x->r)) {
            due = true; /* The contact rule wants raft's verdict now. */
        }
    }
    if (due) {
        x->next_raft_tick += x->heartbeat_ms;
        if (x->next_raft_tick <= now) {
            x->next_raft_tick = now + x->heartbeat_ms;
        }
    }
    if ((due || timer) && x->raft_tick != NULL) {
        x->raft_tick(&x->base);
    }
    if (layer) {
        x->hooks->tick_post(x->r);
    } else if (timer) {
        x->hooks->observe(x->r);
    }
}

static void recvCb(struct raft_io *inner, struct raft_message *m)
{
    struct repl__io *x = outerOf(inner);

    if (x == NULL) {
        return; /* After close (env_uv.c); raft is gone: drop it. */
    }

    if (m->type == RAFT_IO_APPEND_ENTRIES_RESULT &&
        m->append_entries_result.term == peek_term(x->r->raft)) {
        x->hooks->heard(x->r, m->server_id, inner->time(inner));
    }
    if (x->hooks->filter(x->r, m)) {
        return; /* A vote result owns no memory: dropping frees nothing. */
    }
    x->raft_recv(&x->base, m); /* raft owns m from here */
    x->hooks->observe(x->r);
}

static int ioStart(struct raft_io *io, unsigned msecs, raft_io_tick_cb tick,
                   raft_io_recv_cb recv)
{
    struct repl__io *x = (struct repl__io *)io;
    unsigned every = x->tick_ms < msecs ? x->tick_ms : msecs;
    int rv;

    if (every > REPL__IO_TICK_MS) {
        every = REPL__IO_TICK_MS;
    }
    x->heartbeat_ms = msecs;
    x->raft_tick = tick;
    x->raft_recv = recv;
    x->next_raft_tick = x->inner->time(x->inner) + msecs;
    x->next_layer_tick = x->inner->time(x->inner) + x->tick_ms;
    rv = x->inner->start(x->inner, every, tickCb, recvCb);
    keepErrmsg(io, rv);
    return rv;
}

static int ioBootstrap(struct raft_io *io, const struct raft_configuration *c)
{
    int rv = innerOf(io)->bootstrap(innerOf(io), c);
    keepErrmsg(io, rv);
    return rv;
}

static int ioRecover(struct raft_io *io, const struct raft_configuration *c)
{
    int rv = innerOf(io)->recover(innerOf(io), c);
    keepErrmsg(io, rv);
    return rv;
}

static int ioSetTerm(struct raft_io *io, raft_term term)
{
    int rv = innerOf(io)->set_term(innerOf(io), term);
    keepErrmsg(io, rv);
    return rv;
}

static int ioSetVote(struct raft_io *io, raft_id id)
{
    int rv = innerOf(io)->set_vote(innerOf(io), id);
    keepErrmsg(io, rv);
    return rv;
}

/* A vote message (RequestVote or its result, pre-vote or not) on its way:
 * a copy, so that it can be sent once more when the first send fails. */
struct repl__vote_send {
    struct raft_io_send req; /* Ours, to the inner io. */
    struct raft_io_send *outer;
    raft_io_send_cb cb;
    struct raft_io *inner;
    struct raft_message m;
    char address[REPL_ADDR_MAX];
    bool retried;
    struct repl__vote_send *next; /* In x->retry. */
};

static void voteDone(struct repl__vote_send *v, int status)
{
    struct raft_io_send *outer = v->outer;
    raft_io_send_cb cb = v->cb;
    free(v);
    if (cb != NULL) {
        cb(outer, status);
    }
}

static void voteSent(struct raft_io_send *req, int status)
{
    struct repl__vote_send *v = req->data;
    struct repl__io *x = outerOf(v->inner);

    if (status != 0 && status != RAFT_CANCELED && !v->retried && x != NULL &&
        x->close_cb == NULL) {
        /* raft_uv failed it on a broken connection (a peer restarted since
         * we last wrote to it) and is reconnecting: send it again at the
         * next tick rather than lose a round of the election. */
        repl__log(x->r, LEDGER_REPL_DEBUG,
                  "vote message to %llu failed (%d): sending it again",
                  (unsigned long long)v->m.server_id, status);
        v->retried = true;
        v->next = x->retry;
        x->retry = v;
        return;
    }
    voteDone(v, status);
}

/* At a tick: the vote messages whose first send failed. */
static void sendRetries(struct repl__io *x)
{
    struct repl__vote_send *v = x->retry;
    x->retry = NULL;
    while (v != NULL) {
        struct repl__vote_send *next = v->next;
        int rv = x->inner->send(x->inner, &v->req, &v->m, voteSent);
        if (rv != 0) {
            voteDone(v, rv);
        }
        v = next;
    }
}

/* Closing: raft's callbacks for the messages not sent again. */
static void cancelRetries(struct repl__io *x)
{
    struct repl__vote_send *v = x->retry;
    x->retry = NULL;
    while (v != NULL) {
        struct repl__vote_send *next = v->next;
        voteDone(v, RAFT_CANCELED);
        v = next;
    }
}

static int ioSend(struct raft_io *io, struct raft_io_send *req,
                  const struct raft_message *m, raft_io_send_cb cb)
{
    struct repl__vote_send *v;
    int rv;

    if ((m->type != RAFT_IO_REQUEST_VOTE &&
         m->type != RAFT_IO_REQUEST_VOTE_RESULT) ||
        m->server_address == NULL ||
        strlen(m->server_address) >= REPL_ADDR_MAX ||
        (v = calloc(1, sizeof *v)) == NULL) {
        rv = innerOf(io)->send(innerOf(io), req, m, cb);
        keepErrmsg(io, rv);
        return rv;
    }
    v->outer = req;
    v->cb = cb;
    v->inner = innerOf(io);
    v->m = *m;
    strcpy(v->address, m->server_address);
    v->m.server_address = v->address;
    v->req.data = v;
    rv = v->inner->send(v->inner, &v->req, &v->m, voteSent);
    keepErrmsg(io, rv);
    if (rv != 0) {
        free(v);
    }
    return rv;
}

static int ioAppend(struct raft_io *io, struct raft_io_append *req,
                    const struct raft_entry entries[], unsigned n,
                    raft_io_append_cb cb)
{
    int rv = innerOf(io)->append(innerOf(io), req, entries, n, cb);
    keepErrmsg(io, rv);
    return rv;
}

static int ioTruncate(struct raft_io *io, raft_index index)
{
    int rv = innerOf(io)->truncate(innerOf(io), index);
    keepErrmsg(io, rv);
    return rv;
}

/* Decorators with an install in flight (a handful at most: one per
 * layer in this process), to find ours from the request in putCb. */
static struct repl__io *liveInstalls;

static void unlinkInstall(struct repl__io *x)
{
    struct repl__io **p = &liveInstalls;
    while (*p != NULL && *p != x) {
        p = &(*p)->next_live;
    }
    if (*p == x) {
        *p = x->next_live;
    }
    x->next_live = NULL;
}

bool repl__io_release_put(struct repl__io *x)
{
    int state;
    struct raft_io_snapshot_put *req = x->put_req;
    raft_io_snapshot_put_cb cb = x->put_cb;

    if (!x->put_parked) {
        return false;
    }
    state = raft_state(x->r->raft);
    if (state != RAFT_FOLLOWER && state != RAFT_UNAVAILABLE) {
        return true;
    }
    x->put_parked = false;
    x->put_req = NULL;
    x->put_cb = NULL;
    unlinkInstall(x);
    cb(req, x->put_status);
    return false;
}

static void putCb(struct raft_io_snapshot_put *req, int status)
{
    struct repl__io *x = liveInstalls;
    while (x != NULL && x->put_req != req) {
        x = x->next_live;
    }
    assert(x != NULL);
    x->put_parked = true;
    x->put_status = status;
    if (repl__io_release_put(x)) {
        repl__log(x->r, LEDGER_REPL_WARN,
                  "snapshot written while this node is a %s: answering it "
                  "once it follows a leader again",
                  raft_state(x->r->raft) == RAFT_LEADER ? "leader"
                                                        : "candidate");
    }
}

static int ioSnapshotPut(struct raft_io *io, unsigned trailing,
                         struct raft_io_snapshot_put *req,
                         const struct raft_snapshot *s,
                         raft_io_snapshot_put_cb cb)
{
    struct repl__io *x = (struct repl__io *)io;
    int rv;

    if (trailing != 0) { /* Our own snapshot: raft checks its state. */
        rv = x->inner->snapshot_put(x->inner, trailing, req, s, cb);
        keepErrmsg(io, rv);
        return rv;
    }
    assert(x->put_req == NULL); /* raft installs one at a time */
    x->put_req = req;
    x->put_cb = cb;
    x->next_live = liveInstalls;
    liveInstalls = x;
    rv = x->inner->snapshot_put(x->inner, trailing, req, s, putCb);
    if (rv != 0) {
        x->put_req = NULL;
        x->put_cb = NULL;
        unlinkInstall(x);
    }
    keepErrmsg(io, rv);
    return rv;
}

static int ioSnapshotGet(struct raft_io *io, struct raft_io_snapshot_get *req,
                         raft_io_snapshot_get_cb cb)
{
    int rv = innerOf(io)->snapshot_get(innerOf(io), req, cb);
    keepErrmsg(io, rv);
    return rv;
}

static raft_time ioTime(struct raft_io *io)
{
    return innerOf(io)->time(innerOf(io));
}

static int ioRandom(struct raft_io *io, int min, int max)
{
    struct repl__io *x = (struct repl__io *)io;
    int drawn = x->inner->random(x->inner, min, max);
    return x->hooks->draw(x->r, min, max, drawn);
}

static int ioAsyncWork(struct raft_io *io, struct raft_io_async_work *req,
                       raft_io_async_work_cb cb)
{
    struct raft_io *inner = innerOf(io);
    if (inner->version < 2 || inner->async_work == NULL) {
        return RAFT_INVALID;
    }
    return inner->async_work(inner, req, cb);
}

void repl__io_init(struct repl__io *x, ledger_repl *r, struct raft_io *inner,
                   unsigned tick_ms, const struct repl__io_hooks *hooks)
{
    memset(x, 0, sizeof *x);
    x->hooks = hooks;
    x->inner = inner;
    x->r = r;
    x->tick_ms = tick_ms;
    inner->data = x;
    x->base.version = inner->version;
    x->base.init = ioInit;
    x->base.close = ioClose;
    x->base.load = ioLoad;
    x->base.start = ioStart;
    x->base.bootstrap = ioBootstrap;
    x->base.recover = ioRecover;
    x->base.set_term = ioSetTerm;
    x->base.set_vote = ioSetVote;
    x->base.send = ioSend;
    x->base.append = ioAppend;
    x->base.truncate = ioTruncate;
    x->base.snapshot_put = ioSnapshotPut;
    x->base.snapshot_get = ioSnapshotGet;
    x->base.time = ioTime;
    x->base.random = ioRandom;
    x->base.async_work = ioAsyncWork;
}
