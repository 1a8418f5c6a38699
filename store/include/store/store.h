/* Durable local event store: one SQLite file in WAL mode per node.
 *
 * The store holds append-only streams of events, a global hash chain over
 * all events (in position order), per-stream heads, per-stream named
 * checkpoints, cluster members' API addresses, and a meta table with
 * schema_version, cluster_id and applied_index (the last Raft index whose
 * effects the store holds). applied_index is written in the same SQLite
 * transaction as the rows it covers, so after any crash the store is exactly
 * the state after applying entries 1..applied_index.
 *
 * Writes happen only through a write transaction (ledger_store_begin ...
 * ledger_store_commit), driven by the replicated state machine: every
 * decision (idempotency, expected version, seq and position numbering, the
 * hash) depends only on the store's contents and the arguments, so every
 * replica computes the same result.
 *
 * Hash chain (docs/store.md, "Hash chain", is the normative text):
 *   hash(P) = SHA-256( prev_hash               32 raw bytes, hash(P-1),
 *                                             all zero for P = 1
 *                    | u64be(position)
 *                    | u32be(len(stream)) | stream bytes
 *                    | u64be(seq)
 *                    | u32be(len(type))   | type bytes
 *                    | u32be(len(id))     | id bytes     (len 0: no id)
 *                    | i64be(ts_ms)
 *                    | u32be(len(data))   | data bytes   (compact JSON text)
 *                    )
 *
 * Not thread-safe: one thread (the node's loop) uses a store handle.
 * Error model: functions return LEDGER_STORE_OK (0) or an error code and
 * write a one-line description retrievable with ledger_store_errmsg().
 */
#ifndef LEDGER_STORE_H
#define LEDGER_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LEDGER_SCHEMA_VERSION 2 /* Schema this build writes. */
#define LEDGER_ZONE_MAX 64      /* Longest zone label + 1. */
#define LEDGER_HASH_LEN 32      /* SHA-256 digest size. */
#define LEDGER_HASH_HEX_LEN 64  /* Lowercase hex, without NUL. */
#define LEDGER_STREAM_MAX 255   /* Max stream name length in bytes. */

/* Error codes. */
enum {
    LEDGER_STORE_OK = 0,
    LEDGER_STORE_EIO,       /* SQLite or file system error. */
    LEDGER_STORE_ENOMEM,    /* Out of memory. */
    LEDGER_STORE_ESCHEMA,   /* Store written by a newer version. */
    LEDGER_STORE_ECORRUPT,  /* Stored data fails a check (chain, meta). */
    LEDGER_STORE_EINVAL,    /* Bad argument (caller bug or bad input). */
    LEDGER_STORE_ENOTFOUND, /* No such stream / checkpoint / position. */
    LEDGER_STORE_ECHAIN,    /* Inserted event does not extend the chain. */
};

typedef struct ledger_store ledger_store;

/* One stored event. In callbacks, every pointer is borrowed and valid only
 * until the callback returns. `id` is NULL when the event has none. `data` is
 * compact JSON text (not NUL-terminated: use data_len). */
struct ledger_event {
    uint64_t position;
    const char *stream;
    uint64_t seq;
    const char *type;
    const char *id;
    int64_t ts_ms;
    const char *data;
    size_t data_len;
    uint8_t prev_hash[LEDGER_HASH_LEN];
    uint8_t hash[LEDGER_HASH_LEN];
};

/* Return non-zero to stop iterating (that value is returned to the caller
 * of the iterating function). */
typedef int (*ledger_event_cb)(void *arg, const struct ledger_event *ev);

/* Open (creating if needed) the store at `path`, enable WAL, run pending
 * migrations in order in one transaction. A store whose schema_version is
 * newer than LEDGER_SCHEMA_VERSION is refused with LEDGER_STORE_ESCHEMA and
 * not modified; `err` then reads e.g. "store /x/ledger.db has schema version
 * 3, this ledgerd supports up to 1: upgrade ledgerd". On failure *out is
 * NULL and `err` (size errlen) holds the reason. */
int ledger_store_open(const char *path, ledger_store **out, char *err,
                      size_t errlen);

/* Open a read-only handle on an existing store of this schema version,
 * for reads on another thread (e.g. a long verify off the node's loop).
 * It sees committed transactions (WAL snapshot isolation), never writes,
 * and never checkpoints. Write functions on it fail. */
int ledger_store_open_reader(const char *path, ledger_store **out, char *err,
                             size_t errlen);

/* Close the store. Rolls back an open write transaction. NULL is a no-op. */
void ledger_store_close(ledger_store *s);

/* Description of the last error on this handle. */
const char *ledger_store_errmsg(const ledger_store *s);

/* Compute an event's hash from its canonical fields (layout above). */
void ledger_hash_event(const uint8_t prev_hash[LEDGER_HASH_LEN],
                       uint64_t position, const char *stream, uint64_t seq,
                       const char *type, const char *id, int64_t ts_ms,
                       const char *data, size_t data_len,
                       uint8_t out[LEDGER_HASH_LEN]);

/* Lowercase hex of a hash into out (LEDGER_HASH_HEX_LEN + 1 bytes). */
void ledger_hash_hex(const uint8_t hash[LEDGER_HASH_LEN], char *out);

/* Parse 64 hex digits. Returns 0 or LEDGER_STORE_EINVAL. */
int ledger_hash_parse(const char *hex, uint8_t out[LEDGER_HASH_LEN]);

/* True for a valid stream name: 1..255 bytes of [A-Za-z0-9._:-]. */
bool ledger_stream_name_valid(const char *name, size_t len);

/* ---- State ------------------------------------------------------------ */

struct ledger_store_state {
    uint64_t applied_index;             /* Last Raft index applied. */
    uint64_t position;                  /* Last event position (0: none). */
    uint8_t head_hash[LEDGER_HASH_LEN]; /* Hash at position (zeros: 0). */
    char cluster_id[64];                /* "" until initialised. */
    int schema_version;
    char restored_from[64]; /* Cluster id of the backup this store was
                               seeded from (ledger_backup_seed, or a
                               snapshot of such a cluster); "" if none. */
};

int ledger_store_get_state(ledger_store *s, struct ledger_store_state *out);

/* Durability barrier: fdatasync the store's WAL and database files (and
 * fsync their directory), so every committed transaction survives an OS
 * crash or power loss. Commits alone survive only a crash of the process
 * (synchronous=NORMAL). Call it before anything that lets the Raft log
 * forget applied entries. Must not be called inside a write transaction. */
int ledger_store_sync(ledger_store *s);

/* Checkpoints off the writer's thread (store/checkpoint.c). After
 * ledger_store_manual_checkpoints(s), commits on s no longer checkpoint the
 * WAL; ledger_store_wal_frames(s) tells its size after the last commit, and
 * ledger_store_checkpoint() on another handle of the same file (opened with
 * ledger_store_open, used by one thread at a time) copies the WAL back
 * (PASSIVE: it never blocks the writer). ledger_store_checkpoint() on s
 * itself is the fallback when the other handle cannot keep up. Returns 0
 * also when readers kept part of the WAL from being copied. */
void ledger_store_manual_checkpoints(ledger_store *s);
uint64_t ledger_store_wal_frames(const ledger_store *s);
int ledger_store_checkpoint(ledger_store *s);

/* The path the store was opened with (borrowed). */
const char *ledger_store_path(const ledger_store *s);

/* ---- Write transaction (used by the state machine only) ---------------- */

/* Begin / commit / roll back the single write transaction. Commit records
 * `applied_index` in meta in the same transaction; a failed commit rolls
 * the transaction back itself (do not call rollback after it: the error
 * message would become "no write transaction is open"). All write functions
 * below require an open transaction (else LEDGER_STORE_EINVAL). */
int ledger_store_begin(ledger_store *s);
int ledger_store_commit(ledger_store *s, uint64_t applied_index);
int ledger_store_rollback(ledger_store *s);

/* One event of an append request. `id` NULL or "" means none; `data` is
 * compact JSON text. */
struct ledger_event_in {
    const char *type;
    const char *id;
    const char *data;
    size_t data_len;
};

/* Outcome of an append. */
enum {
    LEDGER_APPEND_OK = 0,      /* Appended now. */
    LEDGER_APPEND_DUPLICATE,   /* Every event's id already stored: nothing
                                  appended, result is the original one. */
    LEDGER_APPEND_CONFLICT,    /* expected_version != last_seq: current
                                  last_seq in result.last_seq. */
    LEDGER_APPEND_PARTIAL_DUP, /* Some ids stored, some not, or an id is
                                  repeated in the batch: nothing appended. */
};

struct ledger_append_result {
    int outcome;                   /* LEDGER_APPEND_* */
    uint64_t first_seq;            /* Seq of the batch's first event. */
    uint64_t last_seq;             /* Seq of its last event (CONFLICT:
                                      the stream's current last_seq). */
    uint64_t position;             /* Position of the last event. */
    uint8_t hash[LEDGER_HASH_LEN]; /* Hash of the last event. */
};

/* Append a batch to `stream`, deciding deterministically:
 * 1. If any event carries an id already stored in this stream: when every
 *    event with an id is stored and the batch has no event without id,
 *    outcome DUPLICATE with the original result (first_seq/last_seq the
 *    min/max seq of the matched events, position/hash of the matched event
 *    with the highest position); otherwise PARTIAL_DUP. A batch repeating
 *    one id twice is PARTIAL_DUP as well.
 * 2. Else if has_expected and expected != stream last_seq (0 when the stream
 *    does not exist): CONFLICT.
 * 3. Else append: seq = last_seq+1.., position = global head+1.., chain
 *    hashes, stream head updated. Outcome OK.
 * Returns an error code only for I/O or invalid arguments (n == 0, bad
 * stream name); a non-OK outcome is not an error. */
int ledger_store_append(ledger_store *s, const char *stream,
                        const struct ledger_event_in *events, size_t n,
                        bool has_expected, uint64_t expected, int64_t ts_ms,
                        struct ledger_append_result *res);

/* Set checkpoint `name` of `stream` to `value` (JSON text). */
int ledger_store_put_checkpoint(ledger_store *s, const char *stream,
                                const char *name, const char *value,
                                size_t value_len);

/* Set cluster_id in meta if it is still empty (first one wins). */
int ledger_store_init_cluster(ledger_store *s, const char *cluster_id);

/* Insert a member, or replace its addresses (its zone stays). */
/* Record the cluster id of the backup this store's state descends from
 * (meta 'restored_from'; "" clears it). Written by a snapshot install on a
 * member of a restored cluster (replication/snapshot.c); ledger_backup_seed
 * writes it on the seeded store itself. */
int ledger_store_set_restored_from(ledger_store *s, const char *cluster_id);

/* Insert or replace a member's addresses. */
int ledger_store_put_member(ledger_store *s, uint64_t id, const char *raft_addr,
                            const char *api_addr);
/* Set member `id`'s zone label ("" for none; at most LEDGER_ZONE_MAX - 1
 * bytes). LEDGER_STORE_ENOTFOUND when there is no such member. */
int ledger_store_set_member_zone(ledger_store *s, uint64_t id,
                                 const char *zone);
int ledger_store_delete_member(ledger_store *s, uint64_t id);

/* Free-text meta keys (not replicated: this node's own notes, e.g.
 * "recovered" written by `ledgerd recover`). put needs an open write
 * transaction and refuses the keys the store maintains (schema_version,
 * applied_index, cluster_id). get returns a malloc'ed copy in *value
 * (caller frees), or LEDGER_STORE_ENOTFOUND with *value NULL. */
int ledger_store_put_meta(ledger_store *s, const char *key, const char *value);
int ledger_store_get_meta(ledger_store *s, const char *key, char **value);

/* Insert an event copied from a peer (snapshot catch-up). Its position must
 * be head+1, its prev_hash the current head hash, its seq the stream's
 * last_seq+1, and its hash must recompute; else LEDGER_STORE_ECHAIN and
 * nothing is written. Updates the stream head. */
int ledger_store_insert_event(ledger_store *s, const struct ledger_event *ev);

/* ---- Reads ------------------------------------------------------------ */

/* Events of `stream` with seq >= from_seq, at most `limit`, in seq order.
 * *last_seq receives the stream's last_seq (0 if it does not exist). */
int ledger_store_read_stream(ledger_store *s, const char *stream,
                             uint64_t from_seq, uint64_t limit,
                             uint64_t *last_seq, ledger_event_cb cb, void *arg);

/* Events with position >= from_pos, at most `limit`, in position order. */
int ledger_store_read_positions(ledger_store *s, uint64_t from_pos,
                                uint64_t limit, ledger_event_cb cb, void *arg);

/* Stream head. LEDGER_STORE_ENOTFOUND if the stream has no events. */
int ledger_store_stream_head(ledger_store *s, const char *stream,
                             uint64_t *last_seq,
                             uint8_t head_hash[LEDGER_HASH_LEN]);

/* Iterate streams in name order: cb(arg, name, last_seq, head_hash). */
typedef int (*ledger_stream_cb)(void *arg, const char *name, uint64_t last_seq,
                                const uint8_t head_hash[LEDGER_HASH_LEN]);
int ledger_store_list_streams(ledger_store *s, ledger_stream_cb cb, void *arg);
/* One page of that order: the streams whose names sort after `after`
 * (NULL or "": from the first), at most `limit` of them (0: none), by the
 * primary key, so a page costs O(limit log n) however many streams there
 * are. Names compare bytewise (SQLite's BINARY collation). */
int ledger_store_list_streams_page(ledger_store *s, const char *after,
                                   uint64_t limit, ledger_stream_cb cb,
                                   void *arg);

/* Checkpoint value (JSON text, malloc'ed into *value, caller frees).
 * LEDGER_STORE_ENOTFOUND when absent. */
int ledger_store_get_checkpoint(ledger_store *s, const char *stream,
                                const char *name, char **value,
                                size_t *value_len);

/* Iterate all checkpoints: cb(arg, stream, name, value, value_len). */
typedef int (*ledger_checkpoint_cb)(void *arg, const char *stream,
                                    const char *name, const char *value,
                                    size_t value_len);
int ledger_store_list_checkpoints(ledger_store *s, ledger_checkpoint_cb cb,
                                  void *arg);

/* Iterate members in id order: cb(arg, id, raft_addr, api_addr). */
typedef int (*ledger_member_cb)(void *arg, uint64_t id, const char *raft_addr,
                                const char *api_addr);
int ledger_store_list_members(ledger_store *s, ledger_member_cb cb, void *arg);
/* Zone label of member `id` into buf ("" when it has none). Returns
 * LEDGER_STORE_ENOTFOUND (buf "") when there is no such member. */
int ledger_store_member_zone(ledger_store *s, uint64_t id, char *buf,
                             size_t len);

/* Automatic-roles targets (store/roles.c), replicated: voters 0 means
 * manual roles. All 0 until set. */
struct ledger_roles {
    unsigned voters;
    unsigned standbys;
    unsigned dead_after_s;
};
int ledger_store_set_roles(ledger_store *s, const struct ledger_roles *r);
int ledger_store_get_roles(ledger_store *s, struct ledger_roles *r);

/* Hash of the event at `position` (LEDGER_STORE_ENOTFOUND if absent). */
int ledger_store_hash_at(ledger_store *s, uint64_t position,
                         uint8_t out[LEDGER_HASH_LEN]);

/* Walk the whole chain from position 1, recomputing every hash and checking
 * prev_hash links, positions without gaps, per-stream seqs without gaps and
 * the stream heads. */
struct ledger_verify_result {
    bool ok;
    uint64_t applied_position;     /* Last position checked. */
    uint8_t hash[LEDGER_HASH_LEN]; /* Hash at applied_position. */
    uint64_t first_bad_position;   /* 0 when ok. */
    char reason[160];              /* Why the first bad one is bad. */
};
int ledger_store_verify(ledger_store *s, struct ledger_verify_result *out);

/* ---- Health checks (check.c) ------------------------------------------ */

/* SQLite's quick_check of the whole file (every page, B-tree structure,
 * record formats; no index contents): LEDGER_STORE_OK, or
 * LEDGER_STORE_ECORRUPT with the first problem in the message. Reads the
 * whole file (about 4 ms per MB in the page cache). */
int ledger_store_quick_check(ledger_store *s);

/* The hash chain of the last `n` events: positions without gaps up to the
 * head, each prev_hash the hash before it, each hash recomputed from its
 * row, and the head's stream row holding it. Fills out as
 * ledger_store_verify does (ok false with first_bad_position and reason). */
int ledger_store_check_tail(ledger_store *s, uint64_t n,
                            struct ledger_verify_result *out);

/* True once SQLite reported this handle's file corrupt (SQLITE_CORRUPT or
 * SQLITE_NOTADB) on any call: what failed was not the disk's room or the
 * caller, but the file. */
bool ledger_store_corrupt_seen(const ledger_store *s);

#endif /* LEDGER_STORE_H */
