/* Fuzz target: the Raft entry decoder (replication/entry.c). Input: the
 * bytes of one command entry as Raft hands them to the state machine
 * (from the local log or from the leader).
 *
 * Properties: a refusal says why; an accepted entry's ops, encoded again
 * with the encoders and built into an entry, decode to the same ops
 * (types, strings with their lengths, numbers) and the same timestamp. */
#include <raft.h>
#include <string.h>

#include "fuzz.h"
#include "replication/entry.h"

static int sameStr(const char *a, const char *b)
{
    return (a == NULL && b == NULL) ||
           (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static int encodeOp(const struct op *o, struct op_buf *out)
{
    switch (o->type) {
    case OP_APPEND:
        return op_encode_append(o->stream, o->has_expected, o->expected,
                                o->events, o->n_events, out);
    case OP_CHECKPOINT:
        return op_encode_checkpoint(o->stream, o->name, o->value, o->value_len,
                                    out);
    case OP_INIT:
        return op_encode_init(o->cluster_id, o->members, o->n_members, out);
    case OP_MEMBER_PUT:
        return op_encode_member_put(&o->members[0], out);
    case OP_MEMBER_DEL:
        return op_encode_member_del(o->member_id, out);
    case OP_MEMBER_ZONE:
        return op_encode_member_zone(o->member_id, o->zone, out);
    case OP_ROLES:
        return op_encode_roles(&o->roles, out);
    }
    CHECK(!"decoded an unknown op type");
    return -1;
}

static void checkSameOp(const struct op *a, const struct op *b)
{
    CHECK(a->type == b->type);
    switch (a->type) {
    case OP_APPEND:
        CHECK(sameStr(a->stream, b->stream));
        CHECK(a->has_expected == b->has_expected);
        CHECK(!a->has_expected || a->expected == b->expected);
        CHECK(a->n_events == b->n_events);
        for (size_t i = 0; i < a->n_events; i++) {
            const struct ledger_event_in *x = &a->events[i];
            const struct ledger_event_in *y = &b->events[i];
            CHECK(sameStr(x->type, y->type) && sameStr(x->id, y->id));
            CHECK(x->data_len == y->data_len &&
                  memcmp(x->data, y->data, x->data_len) == 0);
        }
        return;
    case OP_CHECKPOINT:
        CHECK(sameStr(a->stream, b->stream) && sameStr(a->name, b->name));
        CHECK(a->value_len == b->value_len &&
              memcmp(a->value, b->value, a->value_len) == 0);
        return;
    case OP_INIT:
    case OP_MEMBER_PUT:
        CHECK(sameStr(a->cluster_id, b->cluster_id));
        CHECK(a->n_members == b->n_members);
        for (size_t i = 0; i < a->n_members; i++) {
            CHECK(a->members[i].id == b->members[i].id);
            CHECK(sameStr(a->members[i].raft_addr, b->members[i].raft_addr));
            CHECK(sameStr(a->members[i].api_addr, b->members[i].api_addr));
        }
        return;
    case OP_MEMBER_DEL:
        CHECK(a->member_id == b->member_id);
        return;
    case OP_MEMBER_ZONE:
        CHECK(a->member_id == b->member_id && sameStr(a->zone, b->zone));
        return;
    case OP_ROLES:
        CHECK(a->roles.voters == b->roles.voters &&
              a->roles.standbys == b->roles.standbys &&
              a->roles.dead_after_s == b->roles.dead_after_s);
        return;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    entry_decoder *d = NULL;
    entry_decoder *d2 = NULL;
    struct op *ops = NULL;
    struct op *ops2 = NULL;
    struct op_buf *bufs;
    size_t n = 0;
    size_t n2 = 0;
    int64_t ts = 0;
    int64_t ts2 = 0;
    size_t len = 0;
    void *entry;
    char err[256];

    err[0] = '\0';
    if (entry_decode(data, size, &ts, &ops, &n, &d, err, sizeof err) != 0) {
        CHECK(err[0] != '\0' && d == NULL);
        return 0;
    }
    bufs = calloc(n + 1, sizeof *bufs);
    CHECK(bufs != NULL);
    for (size_t i = 0; i < n; i++) {
        CHECK(encodeOp(&ops[i], &bufs[i]) == 0);
    }
    entry = entry_build(ts, bufs, n, &len);
    CHECK(entry != NULL && len % 8 == 0);
    CHECK(entry_decode(entry, len, &ts2, &ops2, &n2, &d2, err, sizeof err) ==
          0);
    CHECK(ts == ts2 && n == n2);
    for (size_t i = 0; i < n; i++) {
        checkSameOp(&ops[i], &ops2[i]);
        op_buf_free(&bufs[i]);
    }
    free(bufs);
    raft_free(entry);
    entry_decoder_free(d2);
    entry_decoder_free(d);
    return 0;
}
