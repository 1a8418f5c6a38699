/* A snapshot's state, as snapshot.c encodes it (the layout is at the top
 * of snapshot.c): decoded, and installed into the store.
 *
 * repl__snap_decode checks every field's type and size, members' and
 * checkpoints' included (the buffer comes from the leader: never trusted;
 * tests/fuzz/fuzz_snapshot drives it); names and addresses may not hold a
 * NUL (their C strings would say less than the bytes); msgpack-c gives an
 * empty string a NULL pointer, so copies check the length. The decoded
 * fields point into the unpacked object, which must outlive them.
 * repl__snap_install checks the store's head hash at the snapshot's position
 * (which ties events pulled from a peer to the state the majority agreed on)
 * and replaces cluster id, restored_from, members and checkpoints inside the
 * caller's store transaction; the caller commits with the snapshot's index.
 * Members may carry a 4th element (the zone) and the tail a 9th (the
 * automatic-roles targets, after a restored_from that is "" when none):
 * both are installed too (targets all 0, zones "" when absent). Used by
 * restore (snapshot.c) and by the catch-up (catchup.c). Calls nothing
 * else in replication/ but the log.
 */
#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

#include "repl_int.h"

/* A string that is the same as a C string (no NUL inside). */
static bool isText(const msgpack_object *o)
{
    return o->type == MSGPACK_OBJECT_STR &&
           (o->via.str.size == 0 ||
            memchr(o->via.str.ptr, '\0', o->via.str.size) == NULL);
}

/* Copy a checked string (isText, size < cap) into buf. */
static void copyText(char *buf, const msgpack_object *o)
{
    if (o->via.str.size > 0) {
        memcpy(buf, o->via.str.ptr, o->via.str.size);
    }
    buf[o->via.str.size] = '\0';
}

/* [id, raft_addr, api_addr (, zone)] */
static bool isMember(const msgpack_object *m)
{
    return m->type == MSGPACK_OBJECT_ARRAY &&
           (m->via.array.size == 3 ||
            (m->via.array.size == 4 && isText(&m->via.array.ptr[3]) &&
             m->via.array.ptr[3].via.str.size < LEDGER_ZONE_MAX)) &&
           m->via.array.ptr[0].type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
           isText(&m->via.array.ptr[1]) && isText(&m->via.array.ptr[2]);
}

/* [voters, standbys, dead_after_s] */
static int decodeRoles(const msgpack_object *o, struct ledger_roles *out)
{
    const msgpack_object *g = o->via.array.ptr;
    if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size != 3) {
        return -1;
    }
    for (int i = 0; i < 3; i++) {
        if (g[i].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
            g[i].via.u64 > UINT32_MAX) {
            return -1;
        }
    }
    out->voters = (unsigned)g[0].via.u64;
    out->standbys = (unsigned)g[1].via.u64;
    out->dead_after_s = (unsigned)g[2].via.u64;
    return 0;
}

/* [stream, name, value]; the value is kept with its length. */
static bool isCheckpoint(const msgpack_object *c)
{
    return c->type == MSGPACK_OBJECT_ARRAY && c->via.array.size == 3 &&
           isText(&c->via.array.ptr[0]) && isText(&c->via.array.ptr[1]) &&
           c->via.array.ptr[2].type == MSGPACK_OBJECT_STR;
}

int repl__snap_decode(const void *obj, struct repl__snap *s)
{
    const msgpack_object *o = obj;
    const msgpack_object *f;
    if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size < 7 ||
        o->via.array.size > 9) {
        return -1;
    }
    f = o->via.array.ptr;
    memset(s, 0, sizeof *s);
    if (o->via.array.size >= 8) {
        if (!isText(&f[7]) || f[7].via.str.size >= sizeof s->restored_from) {
            return -1;
        }
        /* "" (packed only before the roles) means none. */
        s->has_restored_from = f[7].via.str.size > 0;
        copyText(s->restored_from, &f[7]);
    }
    if (o->via.array.size == 9 && decodeRoles(&f[8], &s->roles) != 0) {
        return -1;
    }
    if (f[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
        f[0].via.u64 != REPL__SNAPSHOT_FORMAT ||
        f[1].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
        f[2].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
        f[3].type != MSGPACK_OBJECT_BIN ||
        f[3].via.bin.size != LEDGER_HASH_LEN || !isText(&f[4]) ||
        f[4].via.str.size >= sizeof s->cluster_id ||
        f[5].type != MSGPACK_OBJECT_ARRAY ||
        f[6].type != MSGPACK_OBJECT_ARRAY) {
        return -1;
    }
    s->index = f[1].via.u64;
    s->position = f[2].via.u64;
    memcpy(s->head_hash, f[3].via.bin.ptr, LEDGER_HASH_LEN);
    copyText(s->cluster_id, &f[4]);
    for (uint32_t i = 0; i < f[5].via.array.size; i++) {
        if (!isMember(&f[5].via.array.ptr[i])) {
            return -1;
        }
    }
    for (uint32_t i = 0; i < f[6].via.array.size; i++) {
        if (!isCheckpoint(&f[6].via.array.ptr[i])) {
            return -1;
        }
    }
    s->members = f[5].via.array.ptr;
    s->n_members = f[5].via.array.size;
    s->checkpoints = f[6].via.array.ptr;
    s->n_checkpoints = f[6].via.array.size;
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
        copyText(s, o);
        if (len != NULL) {
            *len = o->via.str.size;
        }
    }
    return s;
}

int repl__snap_install(ledger_repl *r, const struct repl__snap *s)
{
    const msgpack_object *members = s->members;
    const msgpack_object *checkpoints = s->checkpoints;
    uint8_t head[LEDGER_HASH_LEN];
    struct ledger_store_state st;
    uint32_t i;
    int rv = 0;

    if (ledger_store_get_state(r->store, &st) != 0 ||
        st.position != s->position) {
        return -1;
    }
    if (s->position > 0 &&
        (ledger_store_hash_at(r->store, s->position, head) != 0 ||
         memcmp(head, s->head_hash, LEDGER_HASH_LEN) != 0)) {
        repl__log(r, LEDGER_REPL_ERROR,
                  "restore: head hash at position %llu differs from the "
                  "snapshot's: the store is corrupt or from another cluster",
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
        const msgpack_object *m = &members[i];
        char *ra, *aa;
        char zone[LEDGER_ZONE_MAX] = "";
        if (!isMember(m)) {
            return -1;
        }
        if (m->via.array.size == 4) {
            copyText(zone, &m->via.array.ptr[3]);
        }
        ra = objStr(&m->via.array.ptr[1], NULL);
        aa = objStr(&m->via.array.ptr[2], NULL);
        rv = (ra == NULL || aa == NULL)
                 ? -1
                 : ledger_store_put_member(r->store,
                                           m->via.array.ptr[0].via.u64, ra, aa);
        if (rv == 0) {
            rv = ledger_store_set_member_zone(
                r->store, m->via.array.ptr[0].via.u64, zone);
        }
        free(ra);
        free(aa);
    }
    for (i = 0; i < s->n_checkpoints && rv == 0; i++) {
        const msgpack_object *c = &checkpoints[i];
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
