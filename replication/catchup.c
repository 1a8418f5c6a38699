/* Catch-up after a restore: pull the events an installed snapshot
 * describes but the store lacks, without blocking the loop.
 *
 * raft 0.15 restores a snapshot synchronously (fsm->restore returns, then
 * raft sets commit and applied index to the snapshot's index and answers
 * the leader; recv_install_snapshot.c, replication.c installSnapshotCb).
 * Our snapshots carry no events (snapshot.c), and pulling a million of
 * them takes seconds, so restore cannot wait for them. Instead:
 *
 * 1. restore (snapshot.c) hands the snapshot to repl__catchup_begin and
 *    returns 0 at once. Raft's side is then complete and durable: the
 *    snapshot was written to Raft's storage before restore was called
 *    (snapshot_put, trailing 0), and entries above it are appended to
 *    Raft's log as usual.
 * 2. The events store.position+1 .. snapshot.position are pulled through
 *    the catch-up source node/ supplies (repl.h; node/catchup.c asks a
 *    peer's GET /v1/internal/events over the loop's HTTP client), one page
 *    per request, one request at a time, from the leader first and then
 *    every other member of the snapshot; a member that fails (error,
 *    timeout, an event that does not extend our chain) is skipped; after
 *    every member failed, the next round starts REPL__CATCHUP_RETRY_MS
 *    later. Each page is inserted on the loop in its own store
 *    transaction, every event checked to extend the chain
 *    (ledger_store_insert_event); applied_index stays the old one, so a
 *    crash midway leaves a store that is consistent and resumes from its
 *    position (the restore at restart finds the same snapshot in Raft's
 *    storage and comes back here).
 * 3. Once the store reaches snapshot.position, the snapshot's state is
 *    installed in one transaction (head hash checked against the
 *    snapshot's: this ties the pulled events to the state the majority
 *    agreed on; checkpoints, members, applied_index = snapshot index) and
 *    synced (repl__snap_install).
 * 4. Meanwhile Raft goes on applying entries above the snapshot: fsm apply
 *    keeps a copy of each (repl__catchup_defer) and returns 0, so Raft's
 *    apply never fails (a failed apply on a heartbeat makes raft 0.15
 *    unavailable for good: recv.c recvCb). After step 3 they are applied
 *    to the store in order, REPL__CATCHUP_DRAIN_BYTES per loop turn (the
 *    install has a turn of its own), through the same code as any apply.
 *    Then the catch-up ends.
 *
 * While it runs (repl__catchup_active), nothing reads or writes a state
 * the store does not have yet:
 * - the applied index the layer reports is the store's (status, members,
 *   the applied notification), so a strong read on this follower waits
 *   for the leader's index to be in the store;
 * - raft's snapshots are refused with RAFT_BUSY (snapshot.c), so Raft
 *   keeps every deferred entry in its log until it is in the store;
 * - if this node becomes leader it takes no writes and no barriers (they
 *   get ENOTLEADER) and hands leadership over at the next tick (repl.c).
 * Nothing acknowledged can be lost: an acknowledged entry is in the Raft
 * log of a majority, which Raft never compacts past what the store holds
 * (snapshots wait for the store), and the deferred copies are only a
 * shortcut for entries Raft would replay after a restart anyway.
 *
 * A newer snapshot arriving during a catch-up (the leader compacted past
 * the entries it sent) retargets it: the old snapshot is dropped, the
 * deferred entries too (Raft re-applies everything above the new index),
 * and the pull goes on towards the new position.
 */
#include <msgpack.h>
#include <stdlib.h>

#include "repl_int.h"

/* Next round of pulls after every member failed. */
#define REPL__CATCHUP_RETRY_MS 1000
/* Deferred entries applied per loop turn: at least one, and more while
 * they hold less than this many bytes (an entry of 1,000 events of 100
 * bytes takes about 10 ms to apply; 64 KiB keeps a turn near that). */
#define REPL__CATCHUP_DRAIN_BYTES (64u << 10)

struct repl__deferred {
    uint64_t index;
    struct raft_buffer buf; /* malloc'ed copy */
};

struct repl__peer {
    uint64_t id;
    char api[REPL_ADDR_MAX];
};

struct pullReq {
    struct ledger_repl_pull req; /* First member. */
    struct repl__catchup *cu;    /* NULL: the catch-up went away. */
    char api[REPL_ADDR_MAX];
};

struct repl__catchup {
    ledger_repl *r;
    /* The snapshot being caught up to, until installed: its buffer (we own
     * it) and the decoded fields, pointing into `up`. */
    struct raft_buffer buf;
    msgpack_unpacked *up;
    struct repl__snap snap;
    bool installed;
    struct repl__peer peers[REPL__MAX_MEMBERS];
    size_t n_peers;
    size_t next_peer; /* Member asked next. */
    size_t failed;    /* Members that failed in this round. */
    struct pullReq *inflight;
    uint64_t retry_at;  /* Raft clock ms; 0: now. */
    bool warned_source; /* No source configured: said so once. */
    /* Entries Raft applied above the snapshot, oldest first. */
    struct repl__deferred *q;
    size_t q_head;
    size_t q_len;
    size_t q_cap;
    size_t q_bytes;
    uint64_t applied; /* Last index the store reflects. */
    uint64_t started; /* Raft clock ms. */
    uint64_t pulled;  /* Events inserted. */
};

static void dropSnapshot(struct repl__catchup *cu)
{
    if (cu->up != NULL) {
        msgpack_unpacked_destroy(cu->up);
        free(cu->up);
        cu->up = NULL;
    }
    if (cu->buf.base != NULL) {
        raft_free(cu->buf.base);
        cu->buf.base = NULL;
    }
}

static void dropDeferred(struct repl__catchup *cu)
{
    size_t i;
    for (i = 0; i < cu->q_len; i++) {
        free(cu->q[(cu->q_head + i) % cu->q_cap].buf.base);
    }
    cu->q_head = 0;
    cu->q_len = 0;
    cu->q_bytes = 0;
}

static void catchupFree(struct repl__catchup *cu)
{
    if (cu->inflight != NULL) {
        cu->inflight->cu = NULL; /* Its callback frees it. */
    }
    dropSnapshot(cu);
    dropDeferred(cu);
    free(cu->q);
    free(cu);
}

static void addPeer(struct repl__catchup *cu, uint64_t id, const char *api,
                    size_t len)
{
    size_t i;
    if (id == cu->r->cfg.id || len == 0 || len >= REPL_ADDR_MAX ||
        cu->n_peers == REPL__MAX_MEMBERS) {
        return;
    }
    for (i = 0; i < cu->n_peers; i++) {
        if (cu->peers[i].id == id) {
            return;
        }
    }
    cu->peers[cu->n_peers].id = id;
    memcpy(cu->peers[cu->n_peers].api, api, len);
    cu->peers[cu->n_peers].api[len] = '\0';
    cu->n_peers++;
}

/* Members to pull from: the leader first, then every other member of the
 * snapshot, then the --bootstrap list. */
static void choosePeers(struct repl__catchup *cu)
{
    const msgpack_object *members = cu->snap.members;
    ledger_repl *r = cu->r;
    raft_id leader = 0;
    const char *addr = NULL;
    uint32_t i;
    int pass;

    cu->n_peers = 0;
    cu->next_peer = 0;
    cu->failed = 0;
    raft_leader(r->raft, &leader, &addr);
    for (pass = 0; pass < 2; pass++) {
        for (i = 0; i < cu->snap.n_members; i++) {
            const msgpack_object *m = &members[i];
            const msgpack_object *f;
            if (m->type != MSGPACK_OBJECT_ARRAY || m->via.array.size < 3) {
                continue;
            }
            f = m->via.array.ptr;
            if (f[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
                f[2].type != MSGPACK_OBJECT_STR ||
                (pass == 0) != (f[0].via.u64 == leader)) {
                continue;
            }
            addPeer(cu, f[0].via.u64, f[2].via.str.ptr, f[2].via.str.size);
        }
    }
    for (i = 0; i < r->n_bootstrap; i++) {
        addPeer(cu, r->bootstrap[i].id, r->bootstrap[i].api_addr,
                strlen(r->bootstrap[i].api_addr));
    }
}

int repl__catchup_begin(ledger_repl *r, struct raft_buffer *buf,
                        const struct repl__snap *s, void *unpacked)
{
    struct repl__catchup *cu = r->cu;
    struct ledger_store_state st;

    if (cu == NULL) {
        if (ledger_store_get_state(r->store, &st) != 0) {
            return RAFT_IOERR;
        }
        cu = calloc(1, sizeof *cu);
        if (cu == NULL) {
            return RAFT_NOMEM;
        }
        cu->r = r;
        cu->applied = st.applied_index;
        cu->started = repl__now(r);
        r->cu = cu;
    } else {
        repl__log(r, LEDGER_REPL_INFO,
                  "catch-up: newer snapshot index %llu position %llu "
                  "replaces index %llu position %llu",
                  (unsigned long long)s->index, (unsigned long long)s->position,
                  (unsigned long long)cu->snap.index,
                  (unsigned long long)cu->snap.position);
        dropSnapshot(cu);
        dropDeferred(cu);
        cu->installed = false;
    }
    cu->buf = *buf;
    cu->up = unpacked;
    cu->snap = *s;
    cu->retry_at = 0;
    choosePeers(cu);
    repl__want_idle(r); /* Start pulling from the loop, not from here. */
    return 0;
}

bool repl__catchup_active(ledger_repl *r)
{
    return r->cu != NULL;
}

int repl__catchup_defer(ledger_repl *r, uint64_t index,
                        const struct raft_buffer *buf)
{
    struct repl__catchup *cu = r->cu;
    struct repl__deferred *d;

    if (cu->q_len == cu->q_cap) {
        size_t cap = cu->q_cap ? cu->q_cap * 2 : 64;
        struct repl__deferred *q = malloc(cap * sizeof *q);
        size_t i;
        if (q == NULL) {
            return RAFT_NOMEM;
        }
        for (i = 0; i < cu->q_len; i++) {
            q[i] = cu->q[(cu->q_head + i) % cu->q_cap];
        }
        free(cu->q);
        cu->q = q;
        cu->q_cap = cap;
        cu->q_head = 0;
    }
    d = &cu->q[(cu->q_head + cu->q_len) % cu->q_cap];
    d->index = index;
    d->buf.len = buf->len;
    d->buf.base = malloc(buf->len > 0 ? buf->len : 1);
    if (d->buf.base == NULL) {
        return RAFT_NOMEM;
    }
    memcpy(d->buf.base, buf->base, buf->len);
    cu->q_len++;
    cu->q_bytes += buf->len;
    if (cu->installed) {
        repl__want_idle(r);
    }
    return 0;
}

uint64_t repl__applied(ledger_repl *r)
{
    return r->cu != NULL ? r->cu->applied : raft_last_applied(r->raft);
}

/* The snapshot's events are all in: install its state. */
static void install(struct repl__catchup *cu)
{
    ledger_repl *r = cu->r;
    char why[256];

    if (ledger_store_begin(r->store) != 0) {
        snprintf(why, sizeof why, "catch-up: %s",
                 ledger_store_errmsg(r->store));
        repl__tx_failed(r, why);
        return;
    }
    if (repl__snap_install(r, &cu->snap) != 0 ||
        ledger_store_commit(r->store, cu->snap.index) != 0) {
        ledger_store_rollback(r->store);
        snprintf(
            why, sizeof why, "catch-up: installing snapshot %llu failed (%s)",
            (unsigned long long)cu->snap.index, ledger_store_errmsg(r->store));
        repl__tx_failed(r, why);
        return;
    }
    if (ledger_store_sync(r->store) != 0) {
        snprintf(why, sizeof why, "catch-up: %s",
                 ledger_store_errmsg(r->store));
        repl__tx_failed(r, why);
        return;
    }
    repl__bound_snapshotted(r);
    cu->installed = true;
    cu->applied = cu->snap.index;
    repl__log(r, LEDGER_REPL_INFO,
              "catch-up: %llu events pulled in %llu ms; snapshot index %llu "
              "position %llu installed; %zu entries waited for it",
              (unsigned long long)cu->pulled,
              (unsigned long long)(repl__now(r) - cu->started),
              (unsigned long long)cu->snap.index,
              (unsigned long long)cu->snap.position, cu->q_len);
    dropSnapshot(cu);
}

/* A member failed: move on; after a whole round, wait before the next. */
static void peerFailed(struct repl__catchup *cu)
{
    cu->next_peer = (cu->next_peer + 1) % (cu->n_peers ? cu->n_peers : 1);
    cu->failed++;
    if (cu->failed >= cu->n_peers) {
        repl__log(cu->r, LEDGER_REPL_ERROR,
                  "catch-up: no member could supply events after %llu; "
                  "retrying in %u ms",
                  (unsigned long long)cu->snap.position,
                  REPL__CATCHUP_RETRY_MS);
        cu->failed = 0;
        cu->retry_at = repl__now(cu->r) + REPL__CATCHUP_RETRY_MS;
    }
}

/* Insert one page; 0, or -1 if it does not extend the chain. */
static int insertPage(struct repl__catchup *cu, const struct ledger_event *ev,
                      size_t n, uint64_t after)
{
    ledger_repl *r = cu->r;
    struct ledger_store_state st;
    size_t i;

    if (ledger_store_get_state(r->store, &st) != 0 ||
        ledger_store_begin(r->store) != 0) {
        return -1;
    }
    for (i = 0; i < n; i++) {
        if (ev[i].position != after + 1 + i || ev[i].position <= st.position ||
            ev[i].position > cu->snap.position) {
            repl__log(r, LEDGER_REPL_ERROR,
                      "catch-up: event %llu out of order (want %llu)",
                      (unsigned long long)ev[i].position,
                      (unsigned long long)(after + 1 + i));
            goto err_after_begin;
        }
        if (ledger_store_insert_event(r->store, &ev[i]) != 0) {
            repl__log(r, LEDGER_REPL_ERROR, "catch-up: event %llu refused: %s",
                      (unsigned long long)ev[i].position,
                      ledger_store_errmsg(r->store));
            goto err_after_begin;
        }
    }
    /* The applied index stays the old one: the events alone change no
     * state a reader relies on, and a crash resumes from here. */
    if (ledger_store_commit(r->store, st.applied_index) != 0) {
        repl__log(r, LEDGER_REPL_ERROR, "catch-up: %s",
                  ledger_store_errmsg(r->store));
        return -1;
    }
    cu->pulled += n;
    repl__ckpt_committed(r);
    return 0;

err_after_begin:
    ledger_store_rollback(r->store);
    return -1;
}

static void pullCb(struct ledger_repl_pull *req, int status,
                   const struct ledger_event *events, size_t n,
                   const char *errmsg)
{
    struct pullReq *p = (struct pullReq *)req;
    struct repl__catchup *cu = p->cu;

    if (cu == NULL) {
        free(p); /* Catch-up ended or the layer closed meanwhile. */
        return;
    }
    cu->inflight = NULL;
    if (status != 0 || n == 0) {
        repl__log(cu->r, LEDGER_REPL_WARN, "catch-up from %llu (%s): %s",
                  (unsigned long long)req->member, p->api,
                  status != 0 && errmsg != NULL ? errmsg : "no events");
        peerFailed(cu);
    } else if (insertPage(cu, events, n, req->after) != 0) {
        peerFailed(cu);
    } else {
        cu->failed = 0;
    }
    free(p);
    repl__want_idle(cu->r);
}

static void startPull(struct repl__catchup *cu)
{
    ledger_repl *r = cu->r;
    struct ledger_repl_catchup_source *src = &r->catchup_source;
    struct ledger_store_state st;
    struct repl__peer *peer;
    struct pullReq *p;

    if (ledger_store_get_state(r->store, &st) != 0) {
        repl__tx_failed(r, "catch-up: cannot read the store's state");
        return;
    }
    if (st.position >= cu->snap.position) {
        install(cu);
        return;
    }
    if (src->pull == NULL || cu->n_peers == 0) {
        if (!cu->warned_source) {
            repl__log(r, LEDGER_REPL_ERROR,
                      "catch-up: %s: the store stays at position %llu "
                      "(snapshot position %llu)",
                      src->pull == NULL ? "no catch-up source"
                                        : "no member to pull from",
                      (unsigned long long)st.position,
                      (unsigned long long)cu->snap.position);
            cu->warned_source = true;
        }
        return;
    }
    p = calloc(1, sizeof *p);
    if (p == NULL) {
        cu->retry_at = repl__now(r) + REPL__CATCHUP_RETRY_MS;
        return;
    }
    peer = &cu->peers[cu->next_peer % cu->n_peers];
    p->cu = cu;
    memcpy(p->api, peer->api, sizeof p->api);
    p->req.member = peer->id;
    p->req.api_addr = p->api;
    p->req.after = st.position;
    p->req.to = cu->snap.position;
    p->req.cb = pullCb;
    cu->inflight = p;
    if (src->pull(src->data, &p->req) != 0) {
        cu->inflight = NULL;
        free(p);
        repl__log(r, LEDGER_REPL_WARN,
                  "catch-up from %llu (%s): cannot start a request",
                  (unsigned long long)peer->id, peer->api);
        peerFailed(cu);
    }
}

bool repl__catchup_idle(ledger_repl *r)
{
    struct repl__catchup *cu = r->cu;
    struct ledger_op_result *results;
    size_t bytes = 0;

    if (cu == NULL || r->closing || r->store_failed) {
        return false;
    }
    if (!cu->installed) {
        if (cu->inflight == NULL && repl__now(r) >= cu->retry_at) {
            startPull(cu);
        }
        /* After an install (in startPull), drain from the next turn. */
        return cu->installed;
    }
    while (cu->q_len > 0 && (bytes == 0 || bytes < REPL__CATCHUP_DRAIN_BYTES)) {
        struct repl__deferred *d = &cu->q[cu->q_head];
        int rv = repl__apply_entry(r, d->index, &d->buf, &results);
        if (rv != 0) {
            return false; /* The store failed (apply_tx.c), or NOMEM. */
        }
        free(results);
        cu->applied = d->index;
        cu->q_bytes -= d->buf.len;
        bytes += d->buf.len > 0 ? d->buf.len : 1;
        free(d->buf.base);
        cu->q_head = (cu->q_head + 1) % cu->q_cap;
        cu->q_len--;
    }
    if (cu->q_len > 0) {
        return true;
    }
    /* The store now reflects every entry Raft applied. */
    repl__log(r, LEDGER_REPL_INFO,
              "catch-up: done in %llu ms (applied index %llu)",
              (unsigned long long)(repl__now(r) - cu->started),
              (unsigned long long)cu->applied);
    r->cu = NULL;
    catchupFree(cu);
    return false;
}

void repl__catchup_tick(ledger_repl *r)
{
    struct repl__catchup *cu = r->cu;
    if (cu != NULL && !cu->installed && cu->inflight == NULL &&
        cu->retry_at != 0 && repl__now(r) >= cu->retry_at) {
        cu->retry_at = 0;
        repl__want_idle(r);
    }
}

void repl__catchup_status(ledger_repl *r, uint64_t *position, uint64_t *target)
{
    struct ledger_store_state st;
    *position = 0;
    *target = 0;
    if (r->cu != NULL && ledger_store_get_state(r->store, &st) == 0) {
        *position = st.position;
        /* Installed: only deferred entries are left to apply. */
        *target = r->cu->installed ? st.position : r->cu->snap.position;
    }
}

void repl__catchup_close(ledger_repl *r)
{
    struct repl__catchup *cu = r->cu;
    if (cu == NULL) {
        return;
    }
    if (cu->inflight != NULL && r->catchup_source.cancel != NULL) {
        r->catchup_source.cancel(r->catchup_source.data, &cu->inflight->req);
    }
    r->cu = NULL;
    catchupFree(cu);
}
