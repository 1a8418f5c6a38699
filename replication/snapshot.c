/* Snapshots that stay small as the store grows.
 *
 * The store is append-only and hash-chained, so a snapshot does not copy
 * events. It describes the state after applying entries 1..index:
 *
 *   snapshot = [ format:1, index:uint, position:uint, head_hash:bin(32),
 *                cluster_id:str, members:[[id, raft_addr, api_addr
 *                (, zone:str)]...],
 *                checkpoints:[[stream, name, value]...]
 *                (, restored_from:str
 *                (, roles:[voters, standbys, dead_after_s])) ]
 *
 * The optional tail, so that a node that predates an element still reads
 * the snapshots of every cluster that does not use it:
 * - restored_from (the cluster id of the backup a restored cluster started
 *   from, store.h): the 8th element, on restored clusters, or "" (none)
 *   when the 9th is there;
 * - the automatic-roles targets: the 9th element, only when they are set.
 * A member's zone is packed only when it has one.
 *
 * Its size is O(members + checkpoints), independent of the number of events.
 *
 * Restore (Raft calls it at start with our own latest snapshot, or on a
 * follower that is too far behind for the leader's log, once the snapshot
 * is durable in Raft's storage). raft 0.15's restore is synchronous: it
 * returns, and Raft then sets its applied and commit index to the
 * snapshot's index and answers the leader. So restore never waits for the
 * network:
 * - If the store's applied_index >= index, the store already holds this
 *   state (or a newer one): only check that its hash at `position` equals
 *   head_hash; a mismatch means divergent or corrupt data and is refused.
 * - If the store already holds every event up to `position` (a catch-up
 *   that pulled them ran before a restart), the snapshot's state is
 *   installed at once: head hash checked, checkpoints and members
 *   replaced, applied_index set to index, in ONE store transaction, then
 *   synced.
 * - Otherwise the store lacks events store.position+1 .. position: restore
 *   hands the snapshot to catchup.c and returns 0. catchup.c pulls the
 *   events asynchronously, installs the state the same way once the chain
 *   reaches head_hash, and meanwhile keeps every entry Raft applies above
 *   `index` to apply it afterwards, in order (see catchup.c for why
 *   nothing acknowledged can be lost and nothing is read too early).
 * A snapshot is refused (RAFT_BUSY, raft retries later) while a catch-up
 * runs: the store does not yet hold the state at Raft's applied index.
 *
 * Durability: the store commits with synchronous=NORMAL (no fsync per
 * commit, store/store.c), so the snapshot is taken only after
 * ledger_store_sync() made every applied entry durable, and an install
 * ends with one too: Raft drops or replaces log entries only once their
 * effects are on disk in the store.
 */
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "repl_int.h"
#include "replication/mpscan.h"

struct packCtx {
    ledger_store *store;
    msgpack_packer *pk;
    int rv;
    size_t n;
};

static int packStr(msgpack_packer *pk, const char *s, size_t len)
{
    int rv = msgpack_pack_str(pk, len);
    return rv | msgpack_pack_str_body(pk, s, len);
}

static int countMember(void *arg, uint64_t id, const char *ra, const char *aa)
{
    (void)id, (void)ra, (void)aa;
    ((struct packCtx *)arg)->n++;
    return 0;
}

static int packMember(void *arg, uint64_t id, const char *ra, const char *aa)
{
    struct packCtx *c = arg;
    char zone[LEDGER_ZONE_MAX];
    c->rv |= ledger_store_member_zone(c->store, id, zone, sizeof zone);
    c->rv |= msgpack_pack_array(c->pk, zone[0] != '\0' ? 4 : 3);
    c->rv |= msgpack_pack_uint64(c->pk, id);
    c->rv |= packStr(c->pk, ra, strlen(ra));
    c->rv |= packStr(c->pk, aa, strlen(aa));
    if (zone[0] != '\0') {
        c->rv |= packStr(c->pk, zone, strlen(zone));
    }
    return 0;
}

static int countCheckpoint(void *arg, const char *s, const char *n,
                           const char *v, size_t vl)
{
    (void)s, (void)n, (void)v, (void)vl;
    ((struct packCtx *)arg)->n++;
    return 0;
}

static int packCheckpoint(void *arg, const char *s, const char *n,
                          const char *v, size_t vl)
{
    struct packCtx *c = arg;
    c->rv |= msgpack_pack_array(c->pk, 3);
    c->rv |= packStr(c->pk, s, strlen(s));
    c->rv |= packStr(c->pk, n, strlen(n));
    c->rv |= packStr(c->pk, v, vl);
    return 0;
}

int repl__snapshot(struct raft_fsm *fsm, struct raft_buffer *bufs[],
                   unsigned *n_bufs)
{
    ledger_repl *r = fsm->data;
    struct ledger_store_state st;
    msgpack_sbuffer sb;
    msgpack_packer pk;
    struct packCtx c = {r->store, &pk, 0, 0};
    struct ledger_roles roles;
    bool has_roles;
    struct raft_buffer *out;
    uint64_t index = raft_last_applied(r->raft);
    int rv;

    if (repl__catchup_active(r)) {
        return RAFT_BUSY; /* The store is behind Raft's applied index. */
    }
    /* Raft may drop the log entries this snapshot covers once it has it, and
     * the store commits without fsync (store/store.c): commit the apply
     * transaction (apply_tx.c) and make every applied entry durable in the
     * store first. No snapshot without it. */
    if (repl__tx_flush(r) != 0) {
        return RAFT_IOERR;
    }
    if (ledger_store_sync(r->store) != 0 ||
        ledger_store_get_state(r->store, &st) != 0) {
        repl__log(r, LEDGER_REPL_ERROR, "snapshot: %s",
                  ledger_store_errmsg(r->store));
        return RAFT_IOERR;
    }
    /* raft reads the trailing count right after this returns (putSnapshot)
     * and again when the snapshot is stored (logSnapshot). */
    raft_set_snapshot_trailing(r->raft, repl__bound_trailing(r));
    repl__bound_snapshotted(r);
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    if (ledger_store_get_roles(r->store, &roles) != 0) {
        repl__log(r, LEDGER_REPL_ERROR, "snapshot: %s",
                  ledger_store_errmsg(r->store));
        msgpack_sbuffer_destroy(&sb);
        return RAFT_IOERR;
    }
    has_roles =
        roles.voters != 0 || roles.standbys != 0 || roles.dead_after_s != 0;
    rv = msgpack_pack_array(&pk, has_roles                     ? 9
                                 : st.restored_from[0] != '\0' ? 8
                                                               : 7);
    rv |= msgpack_pack_uint8(&pk, REPL__SNAPSHOT_FORMAT);
    rv |= msgpack_pack_uint64(&pk, index);
    rv |= msgpack_pack_uint64(&pk, st.position);
    rv |= msgpack_pack_bin(&pk, LEDGER_HASH_LEN);
    rv |= msgpack_pack_bin_body(&pk, st.head_hash, LEDGER_HASH_LEN);
    rv |= packStr(&pk, st.cluster_id, strlen(st.cluster_id));

    c.n = 0;
    rv |= ledger_store_list_members(r->store, countMember, &c);
    rv |= msgpack_pack_array(&pk, c.n);
    rv |= ledger_store_list_members(r->store, packMember, &c);
    c.n = 0;
    rv |= ledger_store_list_checkpoints(r->store, countCheckpoint, &c);
    rv |= msgpack_pack_array(&pk, c.n);
    rv |= ledger_store_list_checkpoints(r->store, packCheckpoint, &c);
    if (st.restored_from[0] != '\0' || has_roles) {
        rv |= packStr(&pk, st.restored_from, strlen(st.restored_from));
    }
    if (has_roles) {
        rv |= msgpack_pack_array(&pk, 3);
        rv |= msgpack_pack_uint32(&pk, roles.voters);
        rv |= msgpack_pack_uint32(&pk, roles.standbys);
        rv |= msgpack_pack_uint32(&pk, roles.dead_after_s);
    }
    rv |= c.rv;
    if (rv != 0) {
        msgpack_sbuffer_destroy(&sb);
        repl__log(r, LEDGER_REPL_ERROR, "snapshot: encoding failed");
        return RAFT_NOMEM;
    }

    out = raft_calloc(1, sizeof *out);
    if (out == NULL) {
        msgpack_sbuffer_destroy(&sb);
        return RAFT_NOMEM;
    }
    out->base = raft_malloc(sb.size);
    if (out->base == NULL) {
        raft_free(out);
        msgpack_sbuffer_destroy(&sb);
        return RAFT_NOMEM;
    }
    memcpy(out->base, sb.data, sb.size);
    out->len = sb.size;
    msgpack_sbuffer_destroy(&sb);
    *bufs = out;
    *n_bufs = 1;
    repl__log(
        r, LEDGER_REPL_INFO, "snapshot at index %llu: position %llu, %zu bytes",
        (unsigned long long)index, (unsigned long long)st.position, out->len);
    return 0;
}

/* ---- Restore ---------------------------------------------------------- */

/* Install a snapshot whose events the store already holds. */
static int installNow(ledger_repl *r, const struct repl__snap *s)
{
    if (ledger_store_begin(r->store) != 0) {
        return RAFT_IOERR;
    }
    if (repl__snap_install(r, s) != 0 ||
        ledger_store_commit(r->store, s->index) != 0) {
        ledger_store_rollback(r->store);
        return RAFT_IOERR;
    }
    /* Raft replaces its log with this snapshot: the state must be durable. */
    if (ledger_store_sync(r->store) != 0) {
        repl__log(r, LEDGER_REPL_ERROR, "restore: %s",
                  ledger_store_errmsg(r->store));
        return RAFT_IOERR;
    }
    repl__bound_snapshotted(r);
    repl__log(r, LEDGER_REPL_INFO,
              "restore: snapshot index %llu position %llu installed",
              (unsigned long long)s->index, (unsigned long long)s->position);
    return 0;
}

int repl__restore(struct raft_fsm *fsm, struct raft_buffer *buf)
{
    ledger_repl *r = fsm->data;
    struct ledger_store_state st;
    uint8_t head[LEDGER_HASH_LEN];
    msgpack_unpacked *up;
    struct repl__snap s;
    size_t off = 0;
    char why[160];
    int rv = RAFT_CORRUPT;

    up = malloc(sizeof *up);
    if (up == NULL) {
        return RAFT_NOMEM;
    }
    msgpack_unpacked_init(up);
    /* Bound what msgpack-c allocates before it does (mpscan.h). */
    if (mpscan_object(buf->base, buf->len, &off, why, sizeof why) != 0 ||
        (off = 0, msgpack_unpack_next(up, buf->base, buf->len, &off)) !=
            MSGPACK_UNPACK_SUCCESS ||
        repl__snap_decode(&up->data, &s) != 0) {
        repl__log(r, LEDGER_REPL_ERROR, "restore: malformed snapshot");
        goto out;
    }
    if (repl__catchup_active(r)) {
        /* A newer snapshot while pulling for an older one: aim for it. */
        rv = repl__catchup_begin(r, buf, &s, up);
        return rv;
    }
    if (repl__tx_flush(r) != 0) {
        rv = RAFT_IOERR; /* The store failed: see apply_tx.c. */
        goto out;
    }
    if (ledger_store_get_state(r->store, &st) != 0) {
        rv = RAFT_IOERR;
        goto out;
    }
    if (st.applied_index >= s.index) {
        /* We hold this state already: the chains must agree. */
        if (s.position > 0 &&
            (ledger_store_hash_at(r->store, s.position, head) != 0 ||
             memcmp(head, s.head_hash, LEDGER_HASH_LEN) != 0)) {
            repl__log(r, LEDGER_REPL_ERROR,
                      "restore: store disagrees with snapshot at position "
                      "%llu: store is corrupt or from another cluster",
                      (unsigned long long)s.position);
            goto out;
        }
        rv = 0;
        goto out;
    }
    if (s.position < st.position) {
        repl__log(r, LEDGER_REPL_ERROR,
                  "restore: the store holds more events (%llu) than the "
                  "snapshot (%llu): store is corrupt or from another cluster",
                  (unsigned long long)st.position,
                  (unsigned long long)s.position);
        goto out;
    }
    if (s.position == st.position) {
        rv = installNow(r, &s);
        goto out;
    }
    repl__log(r, LEDGER_REPL_INFO,
              "restore: snapshot index %llu position %llu; store at index "
              "%llu position %llu: catching up from peers",
              (unsigned long long)s.index, (unsigned long long)s.position,
              (unsigned long long)st.applied_index,
              (unsigned long long)st.position);
    return repl__catchup_begin(r, buf, &s, up);

out:
    msgpack_unpacked_destroy(up);
    free(up);
    if (rv == 0) {
        raft_free(buf->base);
    }
    return rv;
}
