/* Command entry codec (layout in entry.h).
 *
 * Decoding never trusts its input: every type and length is checked, and a
 * malformed entry is reported, not asserted. All decoded strings are copied,
 * NUL-terminated, into the decoder's msgpack zone, which is freed in one go.
 */
#include "replication/entry.h"
#include "replication/mpscan.h"

#include <msgpack.h>
#include <raft.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct entry_decoder {
    msgpack_zone *zone;
};

static int packStr(msgpack_packer *pk, const char *s, size_t len)
{
    if (msgpack_pack_str(pk, len) != 0) {
        return -1;
    }
    return msgpack_pack_str_body(pk, s, len);
}

static int packCStr(msgpack_packer *pk, const char *s)
{
    return packStr(pk, s, strlen(s));
}

static int packOptCStr(msgpack_packer *pk, const char *s)
{
    if (s == NULL || s[0] == '\0') {
        return msgpack_pack_nil(pk);
    }
    return packCStr(pk, s);
}

/* Start an op buffer: a packer writing into a fresh sbuffer. */
static void opStart(msgpack_sbuffer *sb, msgpack_packer *pk)
{
    msgpack_sbuffer_init(sb);
    msgpack_packer_init(pk, sb, msgpack_sbuffer_write);
}

static int opFinish(msgpack_sbuffer *sb, int rv, struct op_buf *out)
{
    if (rv != 0) {
        msgpack_sbuffer_destroy(sb);
        out->data = NULL;
        out->len = 0;
        return -1;
    }
    out->len = sb->size;
    out->data = msgpack_sbuffer_release(sb);
    return 0;
}

int op_encode_append(const char *stream, bool has_expected, uint64_t expected,
                     const struct ledger_event_in *events, size_t n,
                     struct op_buf *out)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    size_t i;
    int rv;

    opStart(&sb, &pk);
    rv = msgpack_pack_array(&pk, 4);
    rv |= msgpack_pack_uint8(&pk, OP_APPEND);
    rv |= packCStr(&pk, stream);
    rv |= has_expected ? msgpack_pack_uint64(&pk, expected)
                       : msgpack_pack_nil(&pk);
    rv |= msgpack_pack_array(&pk, n);
    for (i = 0; i < n && rv == 0; i++) {
        rv |= msgpack_pack_array(&pk, 3);
        rv |= packCStr(&pk, events[i].type);
        rv |= packOptCStr(&pk, events[i].id);
        rv |= packStr(&pk, events[i].data, events[i].data_len);
    }
    return opFinish(&sb, rv, out);
}

int op_encode_checkpoint(const char *stream, const char *name,
                         const char *value, size_t value_len,
                         struct op_buf *out)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    int rv;

    opStart(&sb, &pk);
    rv = msgpack_pack_array(&pk, 4);
    rv |= msgpack_pack_uint8(&pk, OP_CHECKPOINT);
    rv |= packCStr(&pk, stream);
    rv |= packCStr(&pk, name);
    rv |= packStr(&pk, value, value_len);
    return opFinish(&sb, rv, out);
}

static int packMember(msgpack_packer *pk, const struct op_member *m)
{
    int rv = msgpack_pack_array(pk, 3);
    rv |= msgpack_pack_uint64(pk, m->id);
    rv |= packCStr(pk, m->raft_addr);
    rv |= packCStr(pk, m->api_addr);
    return rv;
}

int op_encode_init(const char *cluster_id, const struct op_member *members,
                   size_t n, struct op_buf *out)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    size_t i;
    int rv;

    opStart(&sb, &pk);
    rv = msgpack_pack_array(&pk, 3);
    rv |= msgpack_pack_uint8(&pk, OP_INIT);
    rv |= packCStr(&pk, cluster_id);
    rv |= msgpack_pack_array(&pk, n);
    for (i = 0; i < n && rv == 0; i++) {
        rv |= packMember(&pk, &members[i]);
    }
    return opFinish(&sb, rv, out);
}

int op_encode_member_put(const struct op_member *m, struct op_buf *out)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    int rv;

    opStart(&sb, &pk);
    rv = msgpack_pack_array(&pk, 4);
    rv |= msgpack_pack_uint8(&pk, OP_MEMBER_PUT);
    rv |= msgpack_pack_uint64(&pk, m->id);
    rv |= packCStr(&pk, m->raft_addr);
    rv |= packCStr(&pk, m->api_addr);
    return opFinish(&sb, rv, out);
}

int op_encode_member_del(uint64_t id, struct op_buf *out)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    int rv;

    opStart(&sb, &pk);
    rv = msgpack_pack_array(&pk, 2);
    rv |= msgpack_pack_uint8(&pk, OP_MEMBER_DEL);
    rv |= msgpack_pack_uint64(&pk, id);
    return opFinish(&sb, rv, out);
}

int op_encode_member_zone(uint64_t id, const char *zone, struct op_buf *out)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    int rv;

    opStart(&sb, &pk);
    rv = msgpack_pack_array(&pk, 3);
    rv |= msgpack_pack_uint8(&pk, OP_MEMBER_ZONE);
    rv |= msgpack_pack_uint64(&pk, id);
    rv |= packCStr(&pk, zone);
    return opFinish(&sb, rv, out);
}

int op_encode_roles(const struct ledger_roles *r, struct op_buf *out)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    int rv;

    opStart(&sb, &pk);
    rv = msgpack_pack_array(&pk, 4);
    rv |= msgpack_pack_uint8(&pk, OP_ROLES);
    rv |= msgpack_pack_uint32(&pk, r->voters);
    rv |= msgpack_pack_uint32(&pk, r->standbys);
    rv |= msgpack_pack_uint32(&pk, r->dead_after_s);
    return opFinish(&sb, rv, out);
}

void op_buf_free(struct op_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = 0;
}

void *entry_build(int64_t ts_ms, const struct op_buf *ops, size_t n,
                  size_t *len)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    size_t total;
    size_t i;
    char *buf;
    int rv;

    /* Header: [format, ts, array(n)], then the ops verbatim. */
    opStart(&sb, &pk);
    rv = msgpack_pack_array(&pk, 3);
    rv |= msgpack_pack_uint8(&pk, ENTRY_FORMAT);
    rv |= msgpack_pack_int64(&pk, ts_ms);
    rv |= msgpack_pack_array(&pk, n);
    if (rv != 0) {
        msgpack_sbuffer_destroy(&sb);
        return NULL;
    }
    total = sb.size;
    for (i = 0; i < n; i++) {
        total += ops[i].len;
    }
    /* raft 0.15's segment loader requires entry lengths that are multiples
     * of 8 (it sums unpadded lengths while the writer pads): pad with zero
     * bytes, which the decoder accepts after the single msgpack object. */
    total = (total + 7) & ~(size_t)7;
    buf = raft_malloc(total);
    if (buf == NULL) {
        msgpack_sbuffer_destroy(&sb);
        return NULL;
    }
    memcpy(buf, sb.data, sb.size);
    *len = sb.size;
    msgpack_sbuffer_destroy(&sb);
    for (i = 0; i < n; i++) {
        memcpy(buf + *len, ops[i].data, ops[i].len);
        *len += ops[i].len;
    }
    memset(buf + *len, 0, total - *len);
    *len = total;
    return buf;
}

/* ---- Decoding --------------------------------------------------------- */

struct dec {
    msgpack_zone *zone;
    char *err;
    size_t errlen;
};

static int decFail(struct dec *d, const char *what)
{
    snprintf(d->err, d->errlen, "malformed entry: %s", what);
    return -1;
}

static int decStr(struct dec *d, const msgpack_object *o, const char **out,
                  size_t *len, const char *what)
{
    char *s;
    if (o->type != MSGPACK_OBJECT_STR) {
        return decFail(d, what);
    }
    /* Kept as a C string (no length): a NUL inside would cut it short and
     * make it another name than the one encoded (found by tests/fuzz). */
    if (len == NULL && o->via.str.size > 0 &&
        memchr(o->via.str.ptr, '\0', o->via.str.size) != NULL) {
        return decFail(d, what);
    }
    s = msgpack_zone_malloc(d->zone, o->via.str.size + 1);
    if (s == NULL) {
        return decFail(d, "out of memory");
    }
    if (o->via.str.size > 0) { /* ptr may be NULL for "" */
        memcpy(s, o->via.str.ptr, o->via.str.size);
    }
    s[o->via.str.size] = '\0';
    *out = s;
    if (len != NULL) {
        *len = o->via.str.size;
    }
    return 0;
}

static int decOptStr(struct dec *d, const msgpack_object *o, const char **out,
                     const char *what)
{
    if (o->type == MSGPACK_OBJECT_NIL) {
        *out = NULL;
        return 0;
    }
    if (o->type == MSGPACK_OBJECT_STR && o->via.str.size == 0) {
        return decFail(d, what); /* The encoder writes nil for "". */
    }
    return decStr(d, o, out, NULL, what);
}

static int decUint(struct dec *d, const msgpack_object *o, uint64_t *out,
                   const char *what)
{
    if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER) {
        return decFail(d, what);
    }
    *out = o->via.u64;
    return 0;
}

static const msgpack_object *decArray(struct dec *d, const msgpack_object *o,
                                      uint32_t n, const char *what)
{
    if (o->type != MSGPACK_OBJECT_ARRAY || (n > 0 && o->via.array.size != n)) {
        decFail(d, what);
        return NULL;
    }
    return o->via.array.ptr;
}

static void *decAlloc(struct dec *d, size_t n, size_t size)
{
    void *p;
    if (n == 0) {
        n = 1;
    }
    p = msgpack_zone_malloc(d->zone, n * size);
    if (p != NULL) {
        memset(p, 0, n * size);
    }
    return p;
}

static int decMember(struct dec *d, const msgpack_object *o,
                     struct op_member *m)
{
    const msgpack_object *f = decArray(d, o, 3, "member");
    if (f == NULL || decUint(d, &f[0], &m->id, "member id") != 0 ||
        decStr(d, &f[1], &m->raft_addr, NULL, "member raft_addr") != 0 ||
        decStr(d, &f[2], &m->api_addr, NULL, "member api_addr") != 0) {
        return -1;
    }
    return 0;
}

static int decAppend(struct dec *d, const msgpack_object *f, struct op *op)
{
    const msgpack_object *evs;
    uint32_t i;

    if (decStr(d, &f[1], &op->stream, NULL, "append stream") != 0) {
        return -1;
    }
    if (f[2].type == MSGPACK_OBJECT_NIL) {
        op->has_expected = false;
    } else if (decUint(d, &f[2], &op->expected, "expected version") != 0) {
        return -1;
    } else {
        op->has_expected = true;
    }
    evs = decArray(d, &f[3], 0, "append events");
    if (evs == NULL) {
        return -1;
    }
    op->n_events = f[3].via.array.size;
    op->events = decAlloc(d, op->n_events, sizeof *op->events);
    if (op->events == NULL) {
        return decFail(d, "out of memory");
    }
    for (i = 0; i < op->n_events; i++) {
        struct ledger_event_in *e = &op->events[i];
        const msgpack_object *ef = decArray(d, &evs[i], 3, "event");
        if (ef == NULL || decStr(d, &ef[0], &e->type, NULL, "type") != 0 ||
            decOptStr(d, &ef[1], &e->id, "id") != 0 ||
            decStr(d, &ef[2], &e->data, &e->data_len, "data") != 0) {
            return -1;
        }
    }
    return 0;
}

static int decOp(struct dec *d, const msgpack_object *o, struct op *op)
{
    const msgpack_object *f;
    uint64_t type;
    uint32_t i;

    if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size < 2) {
        return decFail(d, "op is not an array");
    }
    f = o->via.array.ptr;
    if (decUint(d, &f[0], &type, "op type") != 0) {
        return -1;
    }
    op->type = (int)type;
    switch (type) {
    case OP_APPEND:
        if (o->via.array.size != 4) {
            return decFail(d, "append arity");
        }
        return decAppend(d, f, op);
    case OP_CHECKPOINT:
        if (o->via.array.size != 4) {
            return decFail(d, "checkpoint arity");
        }
        if (decStr(d, &f[1], &op->stream, NULL, "stream") != 0 ||
            decStr(d, &f[2], &op->name, NULL, "name") != 0 ||
            decStr(d, &f[3], &op->value, &op->value_len, "value") != 0) {
            return -1;
        }
        return 0;
    case OP_INIT:
        if (o->via.array.size != 3) {
            return decFail(d, "init arity"); /* found by tests/fuzz */
        }
        if (decStr(d, &f[1], &op->cluster_id, NULL, "cluster_id") != 0 ||
            decArray(d, &f[2], 0, "members") == NULL) {
            return -1;
        }
        op->n_members = f[2].via.array.size;
        op->members = decAlloc(d, op->n_members, sizeof *op->members);
        if (op->members == NULL) {
            return decFail(d, "out of memory");
        }
        for (i = 0; i < op->n_members; i++) {
            if (decMember(d, &f[2].via.array.ptr[i], &op->members[i]) != 0) {
                return -1;
            }
        }
        return 0;
    case OP_MEMBER_PUT:
        if (o->via.array.size != 4) {
            return decFail(d, "member_put arity");
        }
        op->n_members = 1;
        op->members = decAlloc(d, 1, sizeof *op->members);
        if (op->members == NULL) {
            return decFail(d, "out of memory");
        }
        if (decUint(d, &f[1], &op->members[0].id, "id") != 0 ||
            decStr(d, &f[2], &op->members[0].raft_addr, NULL, "raft") ||
            decStr(d, &f[3], &op->members[0].api_addr, NULL, "api")) {
            return -1;
        }
        return 0;
    case OP_MEMBER_DEL:
        return decUint(d, &f[1], &op->member_id, "member id");
    case OP_MEMBER_ZONE:
        if (o->via.array.size != 3) {
            return decFail(d, "member_zone arity");
        }
        if (decUint(d, &f[1], &op->member_id, "member id") != 0 ||
            decStr(d, &f[2], &op->zone, NULL, "zone") != 0) {
            return -1;
        }
        return 0;
    case OP_ROLES: {
        uint64_t v[3];
        if (o->via.array.size != 4) {
            return decFail(d, "roles arity");
        }
        for (i = 0; i < 3; i++) {
            if (decUint(d, &f[1 + i], &v[i], "roles target") != 0) {
                return -1;
            }
            if (v[i] > UINT32_MAX) {
                return decFail(d, "roles target out of range");
            }
        }
        op->roles.voters = (unsigned)v[0];
        op->roles.standbys = (unsigned)v[1];
        op->roles.dead_after_s = (unsigned)v[2];
        return 0;
    }
    default:
        return decFail(d, "unknown op type");
    }
}

int entry_decode(const void *buf, size_t len, int64_t *ts_ms, struct op **ops,
                 size_t *n_ops, entry_decoder **out, char *err, size_t errlen)
{
    struct dec d;
    entry_decoder *dec;
    msgpack_object root;
    const msgpack_object *f;
    size_t off = 0;
    uint32_t i;
    int rv;
    char why[160];

    *out = NULL;
    dec = malloc(sizeof *dec);
    if (dec == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    dec->zone = msgpack_zone_new(MSGPACK_ZONE_CHUNK_SIZE);
    if (dec->zone == NULL) {
        free(dec);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    d.zone = dec->zone;
    d.err = err;
    d.errlen = errlen;

    /* Bound what msgpack-c allocates before it does (mpscan.h). */
    if (mpscan_object(buf, len, &off, why, sizeof why) != 0) {
        decFail(&d, why);
        goto err_after_zone;
    }
    off = 0;
    rv = msgpack_unpack(buf, len, &off, dec->zone, &root);
    if (rv == MSGPACK_UNPACK_EXTRA_BYTES && len - off < 8) {
        /* Padding to a multiple of 8 (see entry_build): zeros only. */
        for (size_t k = off; k < len; k++) {
            if (((const unsigned char *)buf)[k] != 0) {
                rv = MSGPACK_UNPACK_PARSE_ERROR;
            }
        }
        if (rv == MSGPACK_UNPACK_EXTRA_BYTES) {
            rv = MSGPACK_UNPACK_SUCCESS;
        }
    }
    if (rv != MSGPACK_UNPACK_SUCCESS) {
        decFail(&d, "not a single msgpack object");
        goto err_after_zone;
    }
    f = decArray(&d, &root, 3, "header");
    if (f == NULL) {
        goto err_after_zone;
    }
    if (f[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
        f[0].via.u64 != ENTRY_FORMAT) {
        decFail(&d, "unknown entry format");
        goto err_after_zone;
    }
    if (f[1].type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        *ts_ms = (int64_t)f[1].via.u64;
    } else if (f[1].type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
        *ts_ms = f[1].via.i64;
    } else {
        decFail(&d, "timestamp");
        goto err_after_zone;
    }
    if (decArray(&d, &f[2], 0, "ops") == NULL) {
        goto err_after_zone;
    }
    *n_ops = f[2].via.array.size;
    *ops = decAlloc(&d, *n_ops, sizeof **ops);
    if (*ops == NULL) {
        decFail(&d, "out of memory");
        goto err_after_zone;
    }
    for (i = 0; i < *n_ops; i++) {
        if (decOp(&d, &f[2].via.array.ptr[i], &(*ops)[i]) != 0) {
            goto err_after_zone;
        }
    }
    *out = dec;
    return 0;

err_after_zone:
    msgpack_zone_free(dec->zone);
    free(dec);
    return -1;
}

void entry_decoder_free(entry_decoder *d)
{
    if (d == NULL) {
        return;
    }
    msgpack_zone_free(d->zone);
    free(d);
}
