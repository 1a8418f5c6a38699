/* Private: the store handle and helpers shared by the store/ sources. */
#ifndef LEDGER_STORE_INTERNAL_H
#define LEDGER_STORE_INTERNAL_H

#include <sqlite3.h>
#include <stdarg.h>

#include "hash.h"
#include "store/store.h"

#define STORE__ERRMSG_SIZE 256 /* Bytes of the handle's error message. */
#define STORE__BUSY_MS 5000    /* busy_timeout: wait for another process. */

/* Cached statements. Each is prepared on first use with
 * SQLITE_PREPARE_PERSISTENT, reset after every use and finalized at close.
 * A statement is stepped by one function at a time: store callbacks must not
 * call back into the same store handle. */
enum {
    STMT_BEGIN_WRITE,
    STMT_BEGIN_READ,
    STMT_COMMIT,
    STMT_ROLLBACK,
    STMT_SAVEPOINT,
    STMT_RELEASE,
    STMT_ROLLBACK_TO,
    STMT_META_GET,
    STMT_META_SET,
    STMT_CLUSTER_INIT,
    STMT_HEAD,
    STMT_STREAM_GET,
    STMT_STREAM_PUT,
    STMT_STREAM_LIST,
    STMT_STREAM_PAGE,
    STMT_EVENT_BY_ID,
    STMT_EVENT_INSERT,
    STMT_HASH_AT,
    STMT_READ_STREAM,
    STMT_READ_POSITIONS,
    STMT_CP_PUT,
    STMT_CP_GET,
    STMT_CP_LIST,
    STMT_MEMBER_PUT,
    STMT_MEMBER_DELETE,
    STMT_MEMBER_LIST,
    STMT_MEMBER_ZONE_SET,
    STMT_MEMBER_ZONE_GET,
    STMT_VERIFY_CHAIN,
    STMT_VERIFY_SEQS,
    STMT__N /* Number of cached statements. */
};

/* Columns selected by STMT_READ_STREAM, STMT_READ_POSITIONS and
 * STMT_VERIFY_CHAIN, in this order (see storeRowToEvent). */
#define STORE__EVENT_COLUMNS                                                   \
    "position, stream, seq, type, data, id, ts, prev_hash, hash"

/* Stream heads cached inside a write transaction (heads.c). */
#define STORE__HEADS 256
struct storeHead {
    bool used;
    bool dirty; /* Newer than the streams table. */
    uint64_t last_seq;
    uint8_t hash[LEDGER_HASH_LEN];
    char name[LEDGER_STREAM_MAX + 1];
};

struct ledger_store {
    sqlite3 *db;
    char *path;                      /* For messages. */
    bool in_tx;                      /* A write transaction is open. */
    struct hash_ctx hash;            /* Reused digest context. */
    sqlite3_stmt *stmts[STMT__N];    /* NULL until first use. */
    bool reader;                     /* Opened by ledger_store_open_reader. */
    bool state_cached;               /* `state` is valid (writer only). */
    struct ledger_store_state state; /* Last get_state outside a write
                                        transaction; dropped by begin. */
    bool tx_state_valid;             /* tx_state follows the open write
                                        transaction (see store.c). */
    struct ledger_store_state tx_state;
    uint64_t wal_frames; /* WAL size after the last commit, with
                            manual checkpoints (checkpoint.c). */
    struct storeHead heads[STORE__HEADS]; /* Empty outside a write tx. */
    unsigned n_heads;
    bool corrupt_seen; /* SQLite said CORRUPT or NOTADB (check.c). */
    char errmsg[STORE__ERRMSG_SIZE];
};

/* Format the handle's error message and return `rv`. */
int storeErrf(ledger_store *s, int rv, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Map the connection's last SQLite error to a code, set errmsg to
 * "<what>: <sqlite message>" and return the code. */
int storeSqlErr(ledger_store *s, const char *what);

/* Return the cached statement `id` in *out, preparing it if needed. */
int storeStmt(ledger_store *s, int id, sqlite3_stmt **out);

/* Step a statement that returns no row (or whose row is ignored), then reset
 * it. `what` names the operation in the error message. */
int storeExec(ledger_store *s, int id, const char *what);

/* Fail with LEDGER_STORE_EINVAL unless a write transaction is open. */
int storeRequireTx(ledger_store *s, const char *what);

/* Savepoint around a multi-statement write, so that a failure part way
 * leaves the transaction as it was before the call. */
int storeSavepoint(ledger_store *s);
int storeRelease(ledger_store *s);
void storeRollbackTo(ledger_store *s);

/* Open a read transaction if no write transaction is open, so that a
 * multi-statement read sees one snapshot. *opened tells storeReadEnd whether
 * to end it. */
int storeReadBegin(ledger_store *s, bool *opened);
void storeReadEnd(ledger_store *s, bool opened);

/* Position and hash of the last event (0 and zeros when there is none). */
int storeHead(ledger_store *s, uint64_t *position,
              uint8_t hash[LEDGER_HASH_LEN]);

/* last_seq and head hash of `stream` (0 and zeros when it does not exist). */
/* Stream heads through the transaction's cache (heads.c): Get and Put
 * behave like reading and writing the streams table; Flush writes what is
 * cached to the table (before SQL reads the table, and at commit); Clear
 * drops the cache (commit, rollback). */
int storeHeadGet(ledger_store *s, const char *stream, uint64_t *last_seq,
                 uint8_t hash[LEDGER_HASH_LEN]);
int storeHeadPut(ledger_store *s, const char *stream, uint64_t last_seq,
                 const uint8_t hash[LEDGER_HASH_LEN]);
int storeHeadsFlush(ledger_store *s);
void storeHeadsClear(ledger_store *s);

int storeStreamGet(ledger_store *s, const char *stream, uint64_t *last_seq,
                   uint8_t hash[LEDGER_HASH_LEN]);

/* Fill `ev` from the current row of a statement selecting
 * STORE__EVENT_COLUMNS. Returns 0, or -1 with `why` set when the row is
 * malformed (NULL field, hash not 32 bytes); `ev` borrows from the row. */
int storeRowToEvent(sqlite3_stmt *stmt, struct ledger_event *ev,
                    const char **why);

#endif /* LEDGER_STORE_INTERNAL_H */
