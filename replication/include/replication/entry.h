/* Command entry codec: the bytes of one Raft command entry.
 *
 * An entry carries a batch of operations (group commit): many client
 * requests share one entry, one Raft round trip and one fsync per node.
 * Layout (MessagePack):
 *
 *   entry = [ format:1, ts_ms:int, ops:[op, ...] ]
 *   op    = [ 1, stream:str, expected:uint|nil, events:[[type:str, id:str|nil,
 *             data:str], ...] ]                                     APPEND
 *         | [ 2, stream:str, name:str, value:str ]                  CHECKPOINT
 *         | [ 3, cluster_id:str, members:[[id, raft_addr, api_addr]...] ] INIT
 *         | [ 4, id:uint, raft_addr:str, api_addr:str ]             MEMBER_PUT
 *         | [ 5, id:uint ]                                          MEMBER_DEL
 *         | [ 6, id:uint, zone:str ]                                MEMBER_ZONE
 *         | [ 7, voters:uint, standbys:uint, dead_after_s:uint ]    ROLES
 *
 * `data` and checkpoint `value` are compact JSON text. ts_ms is the leader's
 * wall clock when it formed the entry: it is part of the replicated data,
 * so every replica stores the same timestamp (and the same hash).
 *
 * Ops are encoded once, when a request is accepted, and concatenated
 * verbatim into an entry by the batcher (entry_build).
 */
#ifndef LEDGER_ENTRY_H
#define LEDGER_ENTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

#define ENTRY_FORMAT 1 /* Format number written in every entry. */

enum {
    OP_APPEND = 1,
    OP_CHECKPOINT = 2,
    OP_INIT = 3,
    OP_MEMBER_PUT = 4,
    OP_MEMBER_DEL = 5,
    OP_MEMBER_ZONE = 6, /* Since store schema 2: a member's zone label. */
    OP_ROLES = 7,       /* Automatic-roles targets (meta 'roles'). */
};

/* An encoded op: malloc'ed bytes. */
struct op_buf {
    char *data;
    size_t len;
};

struct op_member {
    uint64_t id;
    const char *raft_addr;
    const char *api_addr;
};

/* Encoders. Return 0, or -1 on out of memory (out is then empty). */
int op_encode_append(const char *stream, bool has_expected, uint64_t expected,
                     const struct ledger_event_in *events, size_t n,
                     struct op_buf *out);
int op_encode_checkpoint(const char *stream, const char *name,
                         const char *value, size_t value_len,
                         struct op_buf *out);
int op_encode_init(const char *cluster_id, const struct op_member *members,
                   size_t n, struct op_buf *out);
int op_encode_member_put(const struct op_member *m, struct op_buf *out);
int op_encode_member_del(uint64_t id, struct op_buf *out);
int op_encode_member_zone(uint64_t id, const char *zone, struct op_buf *out);
int op_encode_roles(const struct ledger_roles *r, struct op_buf *out);
void op_buf_free(struct op_buf *b);

/* Build one entry from n encoded ops. The returned buffer is allocated with
 * raft_malloc (ready for raft_apply). Returns NULL on out of memory. */
void *entry_build(int64_t ts_ms, const struct op_buf *ops, size_t n,
                  size_t *len);

/* A decoded op. Strings are NUL-terminated and owned by the decoder. */
struct op {
    int type;
    const char *stream;
    bool has_expected;
    uint64_t expected;
    struct ledger_event_in *events; /* APPEND */
    size_t n_events;
    const char *name; /* CHECKPOINT */
    const char *value;
    size_t value_len;
    const char *cluster_id;    /* INIT */
    struct op_member *members; /* INIT, MEMBER_PUT (1 member) */
    size_t n_members;
    uint64_t member_id;        /* MEMBER_DEL, MEMBER_ZONE */
    const char *zone;          /* MEMBER_ZONE ("" clears the label) */
    struct ledger_roles roles; /* ROLES */
};

typedef struct entry_decoder entry_decoder;

/* Decode an entry. On success *out owns everything *ops points into; free
 * with entry_decoder_free. On malformed input returns -1 and writes why. */
int entry_decode(const void *buf, size_t len, int64_t *ts_ms, struct op **ops,
                 size_t *n_ops, entry_decoder **out, char *err, size_t errlen);
void entry_decoder_free(entry_decoder *d);

#endif /* LEDGER_ENTRY_H */
