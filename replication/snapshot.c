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
 * follower that is too far behind for the leader's log):
 * - If the store's applied_index >= index, the store already holds this
 *   state (or a newer one): only check that its hash at `position` equals
 *   head_hash; a mismatch means divergent or corrupt data and is refused.
 * - Otherwise the store lacks events store.position+1 .. position. They are
 *   immutable, so they are pulled from any peer (the leader first) over the
 *   internal API, and each one is checked as it is inserted: it must extend
 *   our chain (ledger_store_insert_event recomputes its hash). After the last
 *   one our head hash must equal head_hash, which ties the copied events to
 *   the snapshot the majority agreed on. Checkpoints and members are then
 *   replaced, and applied_index set to index, all in ONE store transaction:
 *   a crash midway leaves the store as it was.
 * The pull blocks the loop while it runs: only a lagging follower does it,
 * and Raft tolerates a follower that is slow to answer.
 *
 * Durability: the store commits with synchronous=NORMAL (no fsync per
 * commit, store/store.c), so the snapshot is taken only after
 * ledger_store_sync() made every applied entry durable, and a restore ends
 * with one too: Raft drops or replaces log entries only once their effects
 * are on disk in the store.
 */
#include <jansson.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ledger.h"
#include "repl_int.h"

#define SNAPSHOT_FORMAT 1
#define CATCHUP_PAGE 2000        /* Events per pull request. */
#define CATCHUP_TIMEOUT_MS 15000 /* Per pull request. */

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
    struct raft_buffer *out;
    struct ledger_roles roles;
    bool has_roles;
    int rv;

    /* Raft may drop the log entries this snapshot covers once it has it, and
     * the store commits without fsync (store/store.c): commit the apply
     * transaction (apply_tx.c) and make every applied entry durable in the
     * store first. No snapshot without it. */
    if (repl__tx_flush(r) != 0) {
        return RAFT_IOERR;
    }
    if (ledger_store_sync(r->store) != 0 ||
        ledger_store_get_state(r->store, &st) != 0) {
        repl__log(r, 3, "snapshot: %s", ledger_store_errmsg(r->store));
        return RAFT_IOERR;
    }
    /* raft reads the trailing count right after this returns (putSnapshot)
     * and again when the snapshot is stored (logSnapshot). */
    r->raft.snapshot.trailing = repl__fsm_trailing(r);
    repl__fsm_snapshotted(r);
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    if (ledger_store_get_roles(r->store, &roles) != 0) {
        repl__log(r, 3, "snapshot: %s", ledger_store_errmsg(r->store));
        return RAFT_IOERR;
    }
    has_roles =
        roles.voters != 0 || roles.standbys != 0 || roles.dead_after_s != 0;
    rv = msgpack_pack_array(&pk, has_roles                     ? 9
                                 : st.restored_from[0] != '\0' ? 8
                                                               : 7);
    rv |= msgpack_pack_uint8(&pk, SNAPSHOT_FORMAT);
    rv |= msgpack_pack_uint64(&pk, r->raft.last_applied);
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
        repl__log(r, 3, "snapshot: encoding failed");
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
    repl__log(r, 1, "snapshot at index %llu: position %llu, %zu bytes",
              (unsigned long long)r->raft.last_applied,
              (unsigned long long)st.position, out->len);
    return 0;
}

/* ---- Restore ---------------------------------------------------------- */

struct snap {
    uint64_t index;
    uint64_t position;
    uint8_t head_hash[LEDGER_HASH_LEN];
    char cluster_id[64];
    const msgpack_object *members;
    uint32_t n_members;
    const msgpack_object *checkpoints;
    uint32_t n_checkpoints;
    bool has_restored_from;
    char restored_from[64];
    struct ledger_roles roles; /* All 0 when the snapshot has none. */
};

static int snapDecode(const msgpack_object *o, struct snap *s)
{
    const msgpack_object *f;
    if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size < 7 ||
        o->via.array.size > 9) {
        return -1;
    }
    f = o->via.array.ptr;
    /* restored_from "" (packed before the roles) means none. */
    s->has_restored_from = o->via.array.size >= 8 &&
                           f[7].type == MSGPACK_OBJECT_STR &&
                           f[7].via.str.size > 0;
    if (o->via.array.size >= 8) {
        if (f[7].type != MSGPACK_OBJECT_STR ||
            f[7].via.str.size >= sizeof s->restored_from) {
            return -1;
        }
        memcpy(s->restored_from, f[7].via.str.ptr, f[7].via.str.size);
        s->restored_from[f[7].via.str.size] = '\0';
    }
    if (f[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
        f[0].via.u64 != SNAPSHOT_FORMAT ||
        f[1].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
        f[2].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
        f[3].type != MSGPACK_OBJECT_BIN ||
        f[3].via.bin.size != LEDGER_HASH_LEN ||
        f[4].type != MSGPACK_OBJECT_STR ||
        f[4].via.str.size >= sizeof s->cluster_id ||
        f[5].type != MSGPACK_OBJECT_ARRAY ||
        f[6].type != MSGPACK_OBJECT_ARRAY) {
        return -1;
    }
    s->index = f[1].via.u64;
    s->position = f[2].via.u64;
    memcpy(s->head_hash, f[3].via.bin.ptr, LEDGER_HASH_LEN);
    memcpy(s->cluster_id, f[4].via.str.ptr, f[4].via.str.size);
    s->cluster_id[f[4].via.str.size] = '\0';
    s->members = f[5].via.array.ptr;
    s->n_members = f[5].via.array.size;
    s->checkpoints = f[6].via.array.ptr;
    s->n_checkpoints = f[6].via.array.size;
    memset(&s->roles, 0, sizeof s->roles);
    if (o->via.array.size >= 8 && f[7].type != MSGPACK_OBJECT_STR) {
        return -1;
    }
    if (o->via.array.size == 9) {
        const msgpack_object *g = f[8].via.array.ptr;
        if (f[8].type != MSGPACK_OBJECT_ARRAY || f[8].via.array.size != 3) {
            return -1;
        }
        for (int i = 0; i < 3; i++) {
            if (g[i].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
                g[i].via.u64 > UINT32_MAX) {
                return -1;
            }
        }
        s->roles.voters = (unsigned)g[0].via.u64;
        s->roles.standbys = (unsigned)g[1].via.u64;
        s->roles.dead_after_s = (unsigned)g[2].via.u64;
    }
    return 0;
}

/* Copy a msgpack string into a NUL-terminated malloc'ed string. */
static char *objStr(const msgpack_object *o, size_t *len)
{
    char *s;
    if (o->type != MSGPACK_OBJECT_STR) {
        return NULL;
    }
    s = malloc(o->via.str.size + 1);
    if (s != NULL) {
        memcpy(s, o->via.str.ptr, o->via.str.size);
        s[o->via.str.size] = '\0';
        if (len != NULL) {
            *len = o->via.str.size;
        }
    }
    return s;
}

/* Insert one pulled event; the store checks it extends our chain. */
static int insertPulled(ledger_repl *r, const struct ledger_event *ev)
{
    if (ledger_store_insert_event(r->store, ev) != 0) {
        repl__log(r, 3, "catch-up: event %llu refused: %s",
                  (unsigned long long)ev->position,
                  ledger_store_errmsg(r->store));
        return -1;
    }
    return 0;
}

/* Insert one event from a JSON object of the internal events API. */
static int insertJsonEvent(ledger_repl *r, json_t *e)
{
    struct ledger_event ev;
    json_t *id = json_object_get(e, "id");
    const char *ph = json_string_value(json_object_get(e, "prev_hash"));
    const char *h = json_string_value(json_object_get(e, "hash"));

    memset(&ev, 0, sizeof ev);
    ev.position = (uint64_t)json_integer_value(json_object_get(e, "position"));
    ev.stream = json_string_value(json_object_get(e, "stream"));
    ev.seq = (uint64_t)json_integer_value(json_object_get(e, "seq"));
    ev.type = json_string_value(json_object_get(e, "type"));
    ev.id = json_is_string(id) ? json_string_value(id) : NULL;
    ev.ts_ms = json_integer_value(json_object_get(e, "ts"));
    ev.data = json_string_value(json_object_get(e, "data_text"));
    ev.data_len = json_string_length(json_object_get(e, "data_text"));
    if (ev.stream == NULL || ev.type == NULL || ev.data == NULL || ph == NULL ||
        h == NULL || ledger_hash_parse(ph, ev.prev_hash) != 0 ||
        ledger_hash_parse(h, ev.hash) != 0) {
        repl__log(r, 3, "catch-up: malformed event from peer");
        return -1;
    }
    return insertPulled(r, &ev);
}

/* Insert one event of a compact page (see LEDGER_EVENTS_MSGPACK). stream,
 * type and id need NUL-terminated copies: *scratch is grown as needed. */
static int insertPackedEvent(ledger_repl *r, const msgpack_object *o,
                             char **scratch, size_t *cap)
{
    struct ledger_event ev;
    const msgpack_object *f;
    size_t need;
    char *p;

    if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size != 9) {
        goto bad;
    }
    f = o->via.array.ptr;
    if (f[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
        f[1].type != MSGPACK_OBJECT_STR ||
        f[2].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
        f[3].type != MSGPACK_OBJECT_STR ||
        (f[4].type != MSGPACK_OBJECT_STR && f[4].type != MSGPACK_OBJECT_NIL) ||
        (f[5].type != MSGPACK_OBJECT_POSITIVE_INTEGER &&
         f[5].type != MSGPACK_OBJECT_NEGATIVE_INTEGER) ||
        f[6].type != MSGPACK_OBJECT_STR || f[7].type != MSGPACK_OBJECT_BIN ||
        f[7].via.bin.size != LEDGER_HASH_LEN ||
        f[8].type != MSGPACK_OBJECT_BIN ||
        f[8].via.bin.size != LEDGER_HASH_LEN) {
        goto bad;
    }
    need = f[1].via.str.size + f[3].via.str.size + 3 +
           (f[4].type == MSGPACK_OBJECT_STR ? f[4].via.str.size : 0);
    if (need > *cap) {
        p = realloc(*scratch, need);
        if (p == NULL) {
            repl__log(r, 3, "catch-up: out of memory");
            return -1;
        }
        *scratch = p;
        *cap = need;
    }
    memset(&ev, 0, sizeof ev);
    p = *scratch;
    ev.stream = p;
    memcpy(p, f[1].via.str.ptr, f[1].via.str.size);
    p += f[1].via.str.size;
    *p++ = '\0';
    ev.type = p;
    memcpy(p, f[3].via.str.ptr, f[3].via.str.size);
    p += f[3].via.str.size;
    *p++ = '\0';
    if (f[4].type == MSGPACK_OBJECT_STR) {
        ev.id = p;
        memcpy(p, f[4].via.str.ptr, f[4].via.str.size);
        p += f[4].via.str.size;
        *p++ = '\0';
    }
    ev.position = f[0].via.u64;
    ev.seq = f[2].via.u64;
    ev.ts_ms = f[5].type == MSGPACK_OBJECT_POSITIVE_INTEGER
                   ? (int64_t)f[5].via.u64
                   : f[5].via.i64;
    ev.data = f[6].via.str.ptr;
    ev.data_len = f[6].via.str.size;
    memcpy(ev.prev_hash, f[7].via.bin.ptr, LEDGER_HASH_LEN);
    memcpy(ev.hash, f[8].via.bin.ptr, LEDGER_HASH_LEN);
    return insertPulled(r, &ev);
bad:
    repl__log(r, 3, "catch-up: malformed event from peer");
    return -1;
}

/* Insert every event of a compact page; the number inserted, or -1. */
static long insertPackedPage(ledger_repl *r, const char *body, size_t len)
{
    msgpack_unpacked u;
    size_t off = 0;
    char *scratch = NULL;
    size_t cap = 0;
    long n = 0;
    int rc;

    msgpack_unpacked_init(&u);
    while ((rc = msgpack_unpack_next(&u, body, len, &off)) ==
           MSGPACK_UNPACK_SUCCESS) {
        if (insertPackedEvent(r, &u.data, &scratch, &cap) != 0) {
            n = -1;
            break;
        }
        n++;
    }
    (void)rc; /* it ends CONTINUE at the end of the buffer, else an error */
    if (n >= 0 && off != len) {
        repl__log(r, 3, "catch-up: malformed page from peer");
        n = -1;
    }
    msgpack_unpacked_destroy(&u);
    free(scratch);
    return n;
}

/* Pull events (from, to] ... [from, to] from one peer. Returns 0 when the
 * store reached `to`, -1 on any failure (the caller tries another peer). */
static int pullFrom(ledger_repl *r, const char *api, uint64_t to)
{
    struct ledger_store_state st;
    char headers[1200];
    char path[128];
    char err[256];

    snprintf(headers, sizeof headers, "Accept: %s\r\n%s%s%s",
             LEDGER_EVENTS_MSGPACK, r->token ? "Authorization: Bearer " : "",
             r->token ? r->token : "", r->token ? "\r\n" : "");
    for (;;) {
        struct ledger_http_response resp;
        json_error_t jerr;
        json_t *root;
        json_t *events;
        size_t i;
        uint64_t from;
        uint64_t limit;

        if (ledger_store_get_state(r->store, &st) != 0) {
            return -1;
        }
        if (st.position >= to) {
            return 0;
        }
        from = st.position + 1;
        limit = to - st.position;
        if (limit > CATCHUP_PAGE) {
            limit = CATCHUP_PAGE;
        }
        snprintf(path, sizeof path,
                 "/v1/internal/events?from_position=%llu&limit=%llu",
                 (unsigned long long)from, (unsigned long long)limit);
        if (ledger_http_request_tls(api, "GET", path, headers, NULL, 0,
                                    CATCHUP_TIMEOUT_MS, r->tls_ca, r->tls_cert,
                                    r->tls_key, &resp, err, sizeof err) != 0) {
            repl__log(r, 2, "catch-up from %s: %s", api, err);
            return -1;
        }
        if (resp.status != 200) {
            repl__log(r, 2, "catch-up from %s: HTTP %d", api, resp.status);
            ledger_http_response_free(&resp);
            return -1;
        }
        if (resp.content_type != NULL &&
            strncmp(resp.content_type, LEDGER_EVENTS_MSGPACK,
                    strlen(LEDGER_EVENTS_MSGPACK)) == 0) {
            long got = insertPackedPage(r, resp.body, resp.body_len);
            ledger_http_response_free(&resp);
            if (got <= 0) {
                if (got == 0) {
                    repl__log(r, 2, "catch-up from %s: no events from %llu",
                              api, (unsigned long long)from);
                }
                return -1;
            }
            continue;
        }
        /* A peer that predates the compact page answers JSON. */
        root = json_loadb(resp.body, resp.body_len, 0, &jerr);
        ledger_http_response_free(&resp);
        events = json_object_get(root, "events");
        if (!json_is_array(events) || json_array_size(events) == 0) {
            repl__log(r, 2, "catch-up from %s: no events from %llu", api,
                      (unsigned long long)from);
            json_decref(root);
            return -1;
        }
        for (i = 0; i < json_array_size(events); i++) {
            if (insertJsonEvent(r, json_array_get(events, i)) != 0) {
                json_decref(root);
                return -1;
            }
        }
        json_decref(root);
    }
}

static int pullEvents(ledger_repl *r, const struct snap *s)
{
    char apis[REPL__MAX_MEMBERS][REPL_ADDR_MAX];
    size_t n = 0;
    raft_id leader = 0;
    const char *leader_addr = NULL;
    uint32_t i;

    raft_leader(&r->raft, &leader, &leader_addr);
    /* Leader first, then every other member but us. */
    for (int pass = 0; pass < 2; pass++) {
        for (i = 0; i < s->n_members && n < REPL__MAX_MEMBERS; i++) {
            const msgpack_object *m = &s->members[i];
            const msgpack_object *f;
            if (m->type != MSGPACK_OBJECT_ARRAY || m->via.array.size < 3) {
                continue;
            }
            f = m->via.array.ptr;
            if (f[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
                f[2].type != MSGPACK_OBJECT_STR ||
                f[2].via.str.size >= REPL_ADDR_MAX ||
                f[0].via.u64 == r->cfg.id ||
                (pass == 0) != (f[0].via.u64 == leader)) {
                continue;
            }
            memcpy(apis[n], f[2].via.str.ptr, f[2].via.str.size);
            apis[n][f[2].via.str.size] = '\0';
            n++;
        }
    }
    for (i = 0; i < n; i++) {
        if (pullFrom(r, apis[i], s->position) == 0) {
            return 0;
        }
    }
    repl__log(r, 3, "catch-up: no peer could supply events up to %llu",
              (unsigned long long)s->position);
    return -1;
}

static int restoreState(ledger_repl *r, const struct snap *s)
{
    uint8_t head[LEDGER_HASH_LEN];
    struct ledger_store_state st;
    uint32_t i;
    int rv = 0;

    if (pullEvents(r, s) != 0) {
        return -1;
    }
    if (ledger_store_get_state(r->store, &st) != 0 ||
        st.position != s->position) {
        return -1;
    }
    if (s->position > 0 &&
        (ledger_store_hash_at(r->store, s->position, head) != 0 ||
         memcmp(head, s->head_hash, LEDGER_HASH_LEN) != 0)) {
        repl__log(r, 3, "catch-up: head hash at %llu differs from snapshot",
                  (unsigned long long)s->position);
        return -1;
    }
    if (s->cluster_id[0] != '\0') {
        rv |= ledger_store_init_cluster(r->store, s->cluster_id);
    }
    if (s->has_restored_from) {
        rv |= ledger_store_set_restored_from(r->store, s->restored_from);
    }
    if (rv == 0) {
        rv = ledger_store_set_roles(r->store, &s->roles);
    }
    for (i = 0; i < s->n_members && rv == 0; i++) {
        const msgpack_object *m = &s->members[i];
        char *ra, *aa;
        char *zone = NULL;
        if (m->type != MSGPACK_OBJECT_ARRAY ||
            (m->via.array.size != 3 && m->via.array.size != 4) ||
            m->via.array.ptr[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER) {
            return -1;
        }
        ra = objStr(&m->via.array.ptr[1], NULL);
        aa = objStr(&m->via.array.ptr[2], NULL);
        if (m->via.array.size == 4) {
            zone = objStr(&m->via.array.ptr[3], NULL);
        }
        rv = (ra == NULL || aa == NULL || (m->via.array.size == 4 && !zone))
                 ? -1
                 : ledger_store_put_member(r->store,
                                           m->via.array.ptr[0].via.u64, ra, aa);
        if (rv == 0) {
            rv = ledger_store_set_member_zone(
                r->store, m->via.array.ptr[0].via.u64, zone ? zone : "");
        }
        free(ra);
        free(aa);
        free(zone);
    }
    for (i = 0; i < s->n_checkpoints && rv == 0; i++) {
        const msgpack_object *c = &s->checkpoints[i];
        char *st_, *nm, *val;
        size_t vl = 0;
        if (c->type != MSGPACK_OBJECT_ARRAY || c->via.array.size != 3) {
            return -1;
        }
        st_ = objStr(&c->via.array.ptr[0], NULL);
        nm = objStr(&c->via.array.ptr[1], NULL);
        val = objStr(&c->via.array.ptr[2], &vl);
        rv = (st_ == NULL || nm == NULL || val == NULL)
                 ? -1
                 : ledger_store_put_checkpoint(r->store, st_, nm, val, vl);
        free(st_);
        free(nm);
        free(val);
    }
    return rv == 0 ? 0 : -1;
}

int repl__restore(struct raft_fsm *fsm, struct raft_buffer *buf)
{
    ledger_repl *r = fsm->data;
    struct ledger_store_state st;
    uint8_t head[LEDGER_HASH_LEN];
    msgpack_unpacked up;
    struct snap s;
    size_t off = 0;
    int rv = RAFT_CORRUPT;

    msgpack_unpacked_init(&up);
    if (msgpack_unpack_next(&up, buf->base, buf->len, &off) !=
            MSGPACK_UNPACK_SUCCESS ||
        snapDecode(&up.data, &s) != 0) {
        repl__log(r, 3, "restore: malformed snapshot");
        goto out;
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
            repl__log(r, 3,
                      "restore: store disagrees with snapshot at position "
                      "%llu: store is corrupt or from another cluster",
                      (unsigned long long)s.position);
            goto out;
        }
        rv = 0;
        goto out;
    }
    repl__log(r, 1,
              "restore: snapshot index %llu position %llu; store at index "
              "%llu position %llu: catching up from peers",
              (unsigned long long)s.index, (unsigned long long)s.position,
              (unsigned long long)st.applied_index,
              (unsigned long long)st.position);
    if (s.position < st.position) {
        repl__log(r, 3, "restore: store has more events than the snapshot");
        goto out;
    }
    if (ledger_store_begin(r->store) != 0) {
        rv = RAFT_IOERR;
        goto out;
    }
    if (restoreState(r, &s) != 0 ||
        ledger_store_commit(r->store, s.index) != 0) {
        ledger_store_rollback(r->store);
        rv = RAFT_IOERR;
        goto out;
    }
    /* Raft replaces its log with this snapshot: the state must be durable. */
    if (ledger_store_sync(r->store) != 0) {
        repl__log(r, 3, "restore: %s", ledger_store_errmsg(r->store));
        rv = RAFT_IOERR;
        goto out;
    }
    repl__fsm_snapshotted(r);
    repl__log(r, 1, "restore: caught up to position %llu",
              (unsigned long long)s.position);
    rv = 0;
out:
    msgpack_unpacked_destroy(&up);
    if (rv == 0) {
        raft_free(buf->base);
    }
    return rv;
}
