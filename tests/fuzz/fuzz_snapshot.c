/* Fuzz target: the snapshot reader (replication/snap.c repl__snap_decode,
 * what restore and the catch-up read from a snapshot the leader sent or
 * Raft stored). Input: the snapshot's bytes.
 *
 * Properties: the reader answers (no crash, leak, UB); an accepted
 * snapshot, packed again from what was decoded, decodes to the same
 * fields (so no field means something else than its bytes); its members
 * and checkpoints have the shape repl__snap_install reads (the decoder
 * checks them, so installing never meets a malformed one).
 *
 * fuzz-needs: replication/snap.c (built once the snapshot decoder has its
 * own file; tests/fuzz/CMakeLists.txt skips it before) */
#include <msgpack.h>
#include <string.h>

#include "fuzz.h"
#include "repl_int.h"
#include "replication/mpscan.h"

static void packStr(msgpack_packer *pk, const char *s)
{
    size_t n = strlen(s);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

static bool isStr(const msgpack_object *o)
{
    return o->type == MSGPACK_OBJECT_STR;
}

static bool hasRoles(const struct repl__snap *s)
{
    return s->roles.voters != 0 || s->roles.standbys != 0 ||
           s->roles.dead_after_s != 0;
}

/* Pack what was decoded, as snapshot.c packs a snapshot. */
static void repack(const struct repl__snap *s, msgpack_sbuffer *sb)
{
    msgpack_packer pk;
    const msgpack_object *m = s->members;
    const msgpack_object *c = s->checkpoints;

    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, hasRoles(s) ? 9 : s->has_restored_from ? 8 : 7);
    msgpack_pack_uint64(&pk, REPL__SNAPSHOT_FORMAT);
    msgpack_pack_uint64(&pk, s->index);
    msgpack_pack_uint64(&pk, s->position);
    msgpack_pack_bin(&pk, LEDGER_HASH_LEN);
    msgpack_pack_bin_body(&pk, s->head_hash, LEDGER_HASH_LEN);
    packStr(&pk, s->cluster_id);
    msgpack_pack_array(&pk, s->n_members);
    for (uint32_t i = 0; i < s->n_members; i++) {
        msgpack_pack_object(&pk, m[i]);
    }
    msgpack_pack_array(&pk, s->n_checkpoints);
    for (uint32_t i = 0; i < s->n_checkpoints; i++) {
        msgpack_pack_object(&pk, c[i]);
    }
    if (s->has_restored_from || hasRoles(s)) {
        packStr(&pk, s->restored_from);
    }
    if (hasRoles(s)) {
        msgpack_pack_array(&pk, 3);
        msgpack_pack_uint32(&pk, s->roles.voters);
        msgpack_pack_uint32(&pk, s->roles.standbys);
        msgpack_pack_uint32(&pk, s->roles.dead_after_s);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    msgpack_unpacked up;
    msgpack_unpacked up2;
    msgpack_sbuffer sb;
    struct repl__snap s;
    struct repl__snap s2;
    size_t used = 0;
    size_t off = 0;
    char err[160];

    err[0] = '\0';
    if (mpscan_object(data, size, &used, err, sizeof err) != 0) {
        CHECK(err[0] != '\0');
        return 0;
    }
    msgpack_unpacked_init(&up);
    if (msgpack_unpack_next(&up, (const char *)data, size, &off) !=
            MSGPACK_UNPACK_SUCCESS ||
        repl__snap_decode(&up.data, &s) != 0) {
        msgpack_unpacked_destroy(&up);
        return 0;
    }
    msgpack_sbuffer_init(&sb);
    repack(&s, &sb);
    msgpack_unpacked_init(&up2);
    off = 0;
    CHECK(msgpack_unpack_next(&up2, sb.data, sb.size, &off) ==
          MSGPACK_UNPACK_SUCCESS);
    CHECK(repl__snap_decode(&up2.data, &s2) == 0);
    CHECK(s.index == s2.index && s.position == s2.position);
    CHECK(memcmp(s.head_hash, s2.head_hash, LEDGER_HASH_LEN) == 0);
    CHECK(strcmp(s.cluster_id, s2.cluster_id) == 0);
    CHECK(s.has_restored_from == s2.has_restored_from &&
          strcmp(s.restored_from, s2.restored_from) == 0);
    CHECK(memcmp(&s.roles, &s2.roles, sizeof s.roles) == 0);
    CHECK(s.n_members == s2.n_members && s.n_checkpoints == s2.n_checkpoints);
    for (uint32_t i = 0; i < s.n_members; i++) {
        const msgpack_object *m = &((const msgpack_object *)s.members)[i];
        CHECK(m->type == MSGPACK_OBJECT_ARRAY &&
              (m->via.array.size == 3 || m->via.array.size == 4));
        CHECK(m->via.array.ptr[0].type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
              isStr(&m->via.array.ptr[1]) && isStr(&m->via.array.ptr[2]));
        CHECK(m->via.array.size == 3 ||
              (isStr(&m->via.array.ptr[3]) &&
               m->via.array.ptr[3].via.str.size < LEDGER_ZONE_MAX));
    }
    for (uint32_t i = 0; i < s.n_checkpoints; i++) {
        const msgpack_object *c = &((const msgpack_object *)s.checkpoints)[i];
        CHECK(c->type == MSGPACK_OBJECT_ARRAY && c->via.array.size == 3);
        CHECK(isStr(&c->via.array.ptr[0]) && isStr(&c->via.array.ptr[1]) &&
              isStr(&c->via.array.ptr[2]));
    }
    /* The strings are what the bytes say: no NUL cut them short. */
    {
        const msgpack_object *f = up.data.via.array.ptr;
        CHECK(strlen(s.cluster_id) == f[4].via.str.size);
        CHECK(!s.has_restored_from ||
              strlen(s.restored_from) == f[7].via.str.size);
    }
    msgpack_unpacked_destroy(&up2);
    msgpack_sbuffer_destroy(&sb);
    msgpack_unpacked_destroy(&up);
    return 0;
}
