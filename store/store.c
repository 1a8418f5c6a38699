/* The store handle: open/close, errors, cached statements, the write
 * transaction, state and meta, checkpoints and members.
 *
 * One SQLite file per node, in WAL mode with synchronous=NORMAL: a commit
 * writes its WAL frames (so it survives a crash of the process, kill -9
 * included) but does not fsync them; SQLite fsyncs the WAL only when it
 * checkpoints. An OS crash or power loss may therefore take the last
 * commits away. That is safe because the Raft log is the node's write-ahead
 * log (it is fsynced before any entry is acknowledged) and replay after a
 * restart re-applies every entry above the store's applied_index, as long
 * as Raft still holds those entries. Raft drops entries only after a
 * snapshot, so the state machine calls ledger_store_sync() before it hands
 * Raft a snapshot (replication/snapshot.c) and after a restore: every entry
 * Raft may then forget is durable in the store. This takes one fdatasync
 * per applied entry off the write path (docs/architecture.md,
 * "Durability").
 *
 * Invariants:
 * - meta('applied_index') is written by ledger_store_commit in the same
 *   transaction as the rows it covers: after a crash the store is exactly
 *   the state after entries 1..applied_index.
 * - After ledger_store_sync() returns 0, every committed transaction is on
 *   disk.
 * - A writer handle caches the state (applied_index, head, cluster_id) read
 *   outside a write transaction. ledger_store_begin moves it to tx_state,
 *   which appends keep up to date (head position and hash); a successful
 *   commit makes tx_state, with the committed applied_index, the cache
 *   again, so the state machine does not read it back from SQLite after
 *   every entry. Inside a write transaction get_state answers tx_state
 *   (the writer's own changes; applied_index is the committed one): the
 *   replication layer keeps one transaction open across many entries. Writes
 * whose effect on the state is not tracked (init_cluster, insert_event) and
 * rollbacks drop it: the next get_state reads SQLite. Another process writing
 * the file behind our back (never done but by an operator's sqlite3 shell) is
 * seen once the cache is dropped.
 * - Every write goes through the one write transaction (in_tx); nothing
 *   writes outside it except the schema migration at open.
 * - Every error path leaves a one-line message in errmsg. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <unistd.h>

#include "internal.h"
#include "schema.h"

static const char *const stmt_sql[STMT__N] = {
    [STMT_BEGIN_WRITE] = "BEGIN IMMEDIATE",
    [STMT_BEGIN_READ] = "BEGIN DEFERRED",
    [STMT_COMMIT] = "COMMIT",
    [STMT_ROLLBACK] = "ROLLBACK",
    [STMT_SAVEPOINT] = "SAVEPOINT store_op",
    [STMT_RELEASE] = "RELEASE store_op",
    [STMT_ROLLBACK_TO] = "ROLLBACK TO store_op",
    [STMT_META_GET] = "SELECT value FROM meta WHERE key = ?",
    [STMT_META_SET] = "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
    [STMT_CLUSTER_INIT] = "UPDATE meta SET value = ?"
                          " WHERE key = 'cluster_id' AND value = ''",
    [STMT_HEAD] = "SELECT position, hash FROM events"
                  " ORDER BY position DESC LIMIT 1",
    [STMT_STREAM_GET] = "SELECT last_seq, head_hash FROM streams"
                        " WHERE name = ?",
    [STMT_STREAM_PUT] = "INSERT OR REPLACE INTO streams"
                        " (name, last_seq, head_hash) VALUES (?, ?, ?)",
    [STMT_STREAM_LIST] = "SELECT name, last_seq, head_hash FROM streams"
                         " ORDER BY name",
    [STMT_STREAM_PAGE] = "SELECT name, last_seq, head_hash FROM streams"
                         " WHERE name > ? ORDER BY name LIMIT ?",
    [STMT_EVENT_BY_ID] = "SELECT seq, position, hash FROM events"
                         " WHERE stream = ? AND id = ?",
    [STMT_EVENT_INSERT] = "INSERT INTO events (" STORE__EVENT_COLUMNS ")"
                          " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    [STMT_HASH_AT] = "SELECT hash FROM events WHERE position = ?",
    [STMT_READ_STREAM] = "SELECT " STORE__EVENT_COLUMNS " FROM events"
                         " WHERE stream = ? AND seq >= ?"
                         " ORDER BY seq LIMIT ?",
    [STMT_READ_POSITIONS] = "SELECT " STORE__EVENT_COLUMNS " FROM events"
                            " WHERE position >= ? ORDER BY position LIMIT ?",
    [STMT_CP_PUT] = "INSERT OR REPLACE INTO checkpoints (stream, name, value)"
                    " VALUES (?, ?, ?)",
    [STMT_CP_GET] = "SELECT value FROM checkpoints"
                    " WHERE stream = ? AND name = ?",
    [STMT_CP_LIST] = "SELECT stream, name, value FROM checkpoints"
                     " ORDER BY stream, name",
    [STMT_MEMBER_PUT] = "INSERT INTO members (id, raft_addr, api_addr)"
                        " VALUES (?, ?, ?) ON CONFLICT (id) DO UPDATE"
                        " SET raft_addr = excluded.raft_addr,"
                        " api_addr = excluded.api_addr",
    [STMT_MEMBER_DELETE] = "DELETE FROM members WHERE id = ?",
    [STMT_MEMBER_LIST] = "SELECT id, raft_addr, api_addr FROM members"
                         " ORDER BY id",
    [STMT_MEMBER_ZONE_SET] = "UPDATE members SET zone = ? WHERE id = ?",
    [STMT_MEMBER_ZONE_GET] = "SELECT zone FROM members WHERE id = ?",
    [STMT_VERIFY_CHAIN] = "SELECT " STORE__EVENT_COLUMNS " FROM events"
                          " ORDER BY position",
    [STMT_VERIFY_SEQS] = "SELECT stream, seq, position, hash FROM events"
                         " ORDER BY stream, seq",
};

/* ---- Errors and statements -------------------------------------------- */

int storeErrf(ledger_store *s, int rv, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->errmsg, sizeof s->errmsg, fmt, ap);
    va_end(ap);
    return rv;
}

int storeSqlErr(ledger_store *s, const char *what)
{
    int rc = sqlite3_errcode(s->db);
    int rv;
    switch (rc & 0xff) {
    case SQLITE_NOMEM:
        rv = LEDGER_STORE_ENOMEM;
        break;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
        rv = LEDGER_STORE_ECORRUPT;
        s->corrupt_seen = true;
        break;
    default:
        rv = LEDGER_STORE_EIO;
        break;
    }
    return storeErrf(s, rv, "%s: %s", what, sqlite3_errmsg(s->db));
}

int storeStmt(ledger_store *s, int id, sqlite3_stmt **out)
{
    if (s->stmts[id] == NULL) {
        int rc =
            sqlite3_prepare_v3(s->db, stmt_sql[id], -1,
                               SQLITE_PREPARE_PERSISTENT, &s->stmts[id], NULL);
        if (rc != SQLITE_OK) {
            return storeSqlErr(s, "prepare statement");
        }
    }
    *out = s->stmts[id];
    return LEDGER_STORE_OK;
}

int storeExec(ledger_store *s, int id, const char *what)
{
    sqlite3_stmt *stmt = NULL;
    int rv = storeStmt(s, id, &stmt);
    int rc;
    if (rv != LEDGER_STORE_OK) {
        return rv;
    }
    rc = sqlite3_step(stmt);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
        rv = storeSqlErr(s, what);
    }
    sqlite3_reset(stmt);
    sqlite3_clear_bindings(stmt);
    return rv;
}

int storeRequireTx(ledger_store *s, const char *what)
{
    if (!s->in_tx) {
        return storeErrf(s, LEDGER_STORE_EINVAL,
                         "%s: no write transaction is open", what);
    }
    return LEDGER_STORE_OK;
}

int storeSavepoint(ledger_store *s)
{
    return storeExec(s, STMT_SAVEPOINT, "savepoint");
}

int storeRelease(ledger_store *s)
{
    return storeExec(s, STMT_RELEASE, "release savepoint");
}

/* Best effort: keeps the caller's error message. */
void storeRollbackTo(ledger_store *s)
{
    char saved[STORE__ERRMSG_SIZE];
    memcpy(saved, s->errmsg, sizeof saved);
    storeExec(s, STMT_ROLLBACK_TO, "rollback to savepoint");
    storeExec(s, STMT_RELEASE, "release savepoint");
    memcpy(s->errmsg, saved, sizeof saved);
}

int storeReadBegin(ledger_store *s, bool *opened)
{
    *opened = false;
    if (s->in_tx || !sqlite3_get_autocommit(s->db)) {
        return LEDGER_STORE_OK;
    }
    int rv = storeExec(s, STMT_BEGIN_READ, "begin read transaction");
    if (rv == LEDGER_STORE_OK) {
        *opened = true;
    }
    return rv;
}

void storeReadEnd(ledger_store *s, bool opened)
{
    if (opened) {
        char saved[STORE__ERRMSG_SIZE];
        memcpy(saved, s->errmsg, sizeof saved);
        storeExec(s, STMT_COMMIT, "end read transaction");
        memcpy(s->errmsg, saved, sizeof saved);
    }
}

/* Copy a hash column; false unless it is a 32-byte blob. */
static bool columnHash(sqlite3_stmt *stmt, int col,
                       uint8_t out[LEDGER_HASH_LEN])
{
    if (sqlite3_column_type(stmt, col) != SQLITE_BLOB ||
        sqlite3_column_bytes(stmt, col) != LEDGER_HASH_LEN) {
        return false;
    }
    memcpy(out, sqlite3_column_blob(stmt, col), LEDGER_HASH_LEN);
    return true;
}

int storeHead(ledger_store *s, uint64_t *position,
              uint8_t hash[LEDGER_HASH_LEN])
{
    sqlite3_stmt *stmt = NULL;
    int rv;
    int rc;

    /* The writer follows the head through its transaction (tx_state):
     * no query per append. */
    if (s->in_tx && s->tx_state_valid) {
        *position = s->tx_state.position;
        memcpy(hash, s->tx_state.head_hash, LEDGER_HASH_LEN);
        return LEDGER_STORE_OK;
    }
    rv = storeStmt(s, STMT_HEAD, &stmt);
    if (rv != LEDGER_STORE_OK) {
        return rv;
    }
    rc = sqlite3_step(stmt);
    if (rc == SQLITE_DONE) {
        *position = 0;
        memset(hash, 0, LEDGER_HASH_LEN);
    } else if (rc != SQLITE_ROW) {
        rv = storeSqlErr(s, "read head");
    } else if (sqlite3_column_int64(stmt, 0) < 1 ||
               !columnHash(stmt, 1, hash)) {
        rv = storeErrf(s, LEDGER_STORE_ECORRUPT,
                       "head event at position %lld has a malformed hash",
                       (long long)sqlite3_column_int64(stmt, 0));
    } else {
        *position = (uint64_t)sqlite3_column_int64(stmt, 0);
    }
    sqlite3_reset(stmt);
    return rv;
}

int storeStreamGet(ledger_store *s, const char *stream, uint64_t *last_seq,
                   uint8_t hash[LEDGER_HASH_LEN])
{
    sqlite3_stmt *stmt = NULL;
    int rv = storeStmt(s, STMT_STREAM_GET, &stmt);
    int rc;
    if (rv != LEDGER_STORE_OK) {
        return rv;
    }
    sqlite3_bind_text(stmt, 1, stream, -1, SQLITE_STATIC);
    rc = sqlite3_step(stmt);
    if (rc == SQLITE_DONE) {
        *last_seq = 0;
        memset(hash, 0, LEDGER_HASH_LEN);
    } else if (rc != SQLITE_ROW) {
        rv = storeSqlErr(s, "read stream head");
    } else if (sqlite3_column_int64(stmt, 0) < 1 ||
               !columnHash(stmt, 1, hash)) {
        rv = storeErrf(s, LEDGER_STORE_ECORRUPT,
                       "stream %s: malformed head (last_seq or head_hash)",
                       stream);
    } else {
        *last_seq = (uint64_t)sqlite3_column_int64(stmt, 0);
    }
    sqlite3_reset(stmt);
    sqlite3_clear_bindings(stmt);
    return rv;
}

int storeRowToEvent(sqlite3_stmt *stmt, struct ledger_event *ev,
                    const char **why)
{
    ev->position = (uint64_t)sqlite3_column_int64(stmt, 0);
    ev->stream = (const char *)sqlite3_column_text(stmt, 1);
    ev->seq = (uint64_t)sqlite3_column_int64(stmt, 2);
    ev->type = (const char *)sqlite3_column_text(stmt, 3);
    ev->data = (const char *)sqlite3_column_text(stmt, 4);
    ev->data_len = (size_t)sqlite3_column_bytes(stmt, 4);
    ev->id = (const char *)sqlite3_column_text(stmt, 5);
    ev->ts_ms = sqlite3_column_int64(stmt, 6);
    if (ev->stream == NULL || ev->type == NULL || ev->data == NULL) {
        *why = "NULL stream, type or data";
        return -1;
    }
    if (!columnHash(stmt, 7, ev->prev_hash) || !columnHash(stmt, 8, ev->hash)) {
        *why = "prev_hash or hash is not a 32-byte blob";
        return -1;
    }
    return 0;
}

bool ledger_stream_name_valid(const char *name, size_t len)
{
    if (name == NULL || len == 0 || len > LEDGER_STREAM_MAX) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                  (c >= '0' && c <= '9') || c == '.' || c == '_' || c == ':' ||
                  c == '-';
        if (!ok) {
            return false;
        }
    }
    return true;
}

/* ---- Open / close ------------------------------------------------------ */

/* journal_mode=WAL must actually take effect (it cannot on some file
 * systems); then synchronous=NORMAL (see the top of this file). */
static int configure(ledger_store *s)
{
    sqlite3_stmt *stmt = NULL;
    const char *mode;
    int rv = LEDGER_STORE_OK;

    if (sqlite3_prepare_v2(s->db, "PRAGMA journal_mode=WAL", -1, &stmt, NULL) !=
        SQLITE_OK) {
        return storeSqlErr(s, "set journal_mode");
    }
    if (sqlite3_step(stmt) != SQLITE_ROW) {
        rv = storeSqlErr(s, "set journal_mode");
        goto out_finalize;
    }
    mode = (const char *)sqlite3_column_text(stmt, 0);
    if (mode == NULL || strcmp(mode, "wal") != 0) {
        rv = storeErrf(s, LEDGER_STORE_EIO,
                       "store %s: cannot enable WAL (journal_mode is %s)",
                       s->path, mode ? mode : "unknown");
        goto out_finalize;
    }
    if (sqlite3_exec(s->db, "PRAGMA synchronous=NORMAL", NULL, NULL, NULL) !=
        SQLITE_OK) {
        rv = storeSqlErr(s, "set synchronous");
    }

out_finalize:
    sqlite3_finalize(stmt);
    return rv;
}

/* Process-wide, before SQLite's first use: no memory statistics (each
 * of SQLite's allocations took a global mutex for them; nothing here reads
 * them). A no-op (SQLITE_MISUSE) if SQLite was initialised already. */
static void configureSqlite(void)
{
    sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
}

static int storeOpen(const char *path, bool reader, ledger_store **out,
                     char *err, size_t errlen)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    ledger_store *s;
    char wal[4200];
    bool had_wal;
    int version;
    int rv;

    *out = NULL;
    if (path == NULL) {
        if (err != NULL && errlen > 0) {
            snprintf(err, errlen, "open store: no path");
        }
        return LEDGER_STORE_EINVAL;
    }
    pthread_once(&once, configureSqlite);
    s = calloc(1, sizeof *s);
    if (s == NULL) {
        if (err != NULL && errlen > 0) {
            snprintf(err, errlen, "open store %s: out of memory", path);
        }
        return LEDGER_STORE_ENOMEM;
    }
    s->reader = reader;
    s->path = strdup(path);
    if (s->path == NULL) {
        rv = storeErrf(s, LEDGER_STORE_ENOMEM, "open store: out of memory");
        goto out_free_handle;
    }
    if (hashInit(&s->hash) != 0) {
        rv = storeErrf(s, LEDGER_STORE_ENOMEM,
                       "open store %s: cannot create SHA-256 context", path);
        goto out_free_path;
    }
    snprintf(wal, sizeof wal, "%s-wal", path);
    had_wal = access(wal, F_OK) == 0;
    if (sqlite3_open_v2(path, &s->db,
                        (reader ? SQLITE_OPEN_READONLY
                                : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE) |
                            SQLITE_OPEN_NOMUTEX,
                        NULL) != SQLITE_OK) {
        if (s->db == NULL) {
            rv = storeErrf(s, LEDGER_STORE_ENOMEM,
                           "open store %s: out of memory", path);
        } else {
            rv = storeErrf(s, LEDGER_STORE_EIO, "open store %s: %s", path,
                           sqlite3_errmsg(s->db));
        }
        goto out_close_db;
    }
    sqlite3_extended_result_codes(s->db, 1);
    /* Connection-level only: writes nothing to the file. */
    sqlite3_busy_timeout(s->db, STORE__BUSY_MS);
    /* A WAL left by another (maybe newer) ledgerd must not be checkpointed
     * into the file if we refuse it: no checkpoint on close until the
     * schema is known to be ours. Without a prior WAL, the default close
     * (checkpoint of an empty WAL, then removal of -wal and -shm) leaves
     * the file exactly as it was. */
    if (had_wal || reader) {
        sqlite3_db_config(s->db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, NULL);
    }

    /* Read-only check first: a newer store is left untouched. */
    rv = schemaCheck(s, &version);
    if (rv != LEDGER_STORE_OK) {
        goto out_close_db;
    }
    if (reader) {
        if (version != LEDGER_SCHEMA_VERSION) {
            rv = storeErrf(s, LEDGER_STORE_ESCHEMA,
                           "store %s has schema version %d, expected %d: "
                           "open it for writing first",
                           path, version, LEDGER_SCHEMA_VERSION);
            goto out_close_db;
        }
        *out = s;
        return LEDGER_STORE_OK;
    }
    sqlite3_db_config(s->db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 0, NULL);
    rv = configure(s);
    if (rv != LEDGER_STORE_OK) {
        goto out_close_db;
    }
    rv = schemaMigrate(s);
    if (rv != LEDGER_STORE_OK) {
        goto out_close_db;
    }
    *out = s;
    return LEDGER_STORE_OK;

out_close_db:
    sqlite3_close(s->db);
    hashClose(&s->hash);
out_free_path:
    free(s->path);
out_free_handle:
    if (err != NULL && errlen > 0) {
        snprintf(err, errlen, "%s", s->errmsg);
    }
    free(s);
    return rv;
}

int ledger_store_open(const char *path, ledger_store **out, char *err,
                      size_t errlen)
{
    return storeOpen(path, false, out, err, errlen);
}

int ledger_store_open_reader(const char *path, ledger_store **out, char *err,
                             size_t errlen)
{
    return storeOpen(path, true, out, err, errlen);
}

void ledger_store_close(ledger_store *s)
{
    if (s == NULL) {
        return;
    }
    if (s->in_tx) {
        ledger_store_rollback(s);
    }
    for (int i = 0; i < STMT__N; i++) {
        sqlite3_finalize(s->stmts[i]);
    }
    sqlite3_close(s->db);
    hashClose(&s->hash);
    free(s->path);
    free(s);
}

const char *ledger_store_errmsg(const ledger_store *s)
{
    if (s == NULL) {
        return "no store handle";
    }
    return s->errmsg;
}

/* ---- State ------------------------------------------------------------- */

/* Step the meta lookup of `key`: LEDGER_STORE_OK with *stmt on its row,
 * LEDGER_STORE_ENOTFOUND without a row, or an I/O error. The caller reads
 * the row, then calls metaLookupEnd(*stmt) in every case but an error
 * from storeStmt (then *stmt is NULL). */
static int metaLookup(ledger_store *s, const char *key, sqlite3_stmt **stmt)
{
    int rv = storeStmt(s, STMT_META_GET, stmt);
    int rc;
    if (rv != LEDGER_STORE_OK) {
        *stmt = NULL;
        return rv;
    }
    sqlite3_bind_text(*stmt, 1, key, -1, SQLITE_STATIC);
    rc = sqlite3_step(*stmt);
    if (rc == SQLITE_ROW) {
        return LEDGER_STORE_OK;
    }
    return rc == SQLITE_DONE ? LEDGER_STORE_ENOTFOUND
                             : storeSqlErr(s, "read meta");
}

static void metaLookupEnd(sqlite3_stmt *stmt)
{
    if (stmt != NULL) {
        sqlite3_reset(stmt);
        sqlite3_clear_bindings(stmt);
    }
}

/* meta value as a non-negative integer. */
static int metaGetU64(ledger_store *s, const char *key, uint64_t *value)
{
    sqlite3_stmt *stmt = NULL;
    int rv = metaLookup(s, key, &stmt);
    if (rv == LEDGER_STORE_ENOTFOUND ||
        (rv == LEDGER_STORE_OK &&
         (sqlite3_column_type(stmt, 0) != SQLITE_INTEGER ||
          sqlite3_column_int64(stmt, 0) < 0))) {
        rv = storeErrf(s, LEDGER_STORE_ECORRUPT,
                       "store %s: meta %s is missing or not an integer",
                       s->path, key);
    } else if (rv == LEDGER_STORE_OK) {
        *value = (uint64_t)sqlite3_column_int64(stmt, 0);
    }
    metaLookupEnd(stmt);
    return rv;
}

static int metaGetText(ledger_store *s, const char *key, char *out, size_t size)
{
    sqlite3_stmt *stmt = NULL;
    int rv = metaLookup(s, key, &stmt);
    if (rv == LEDGER_STORE_ENOTFOUND ||
        (rv == LEDGER_STORE_OK &&
         (sqlite3_column_type(stmt, 0) != SQLITE_TEXT ||
          (size_t)sqlite3_column_bytes(stmt, 0) >= size))) {
        rv = storeErrf(s, LEDGER_STORE_ECORRUPT,
                       "store %s: meta %s is missing or malformed", s->path,
                       key);
    } else if (rv == LEDGER_STORE_OK) {
        memcpy(out, sqlite3_column_text(stmt, 0),
               (size_t)sqlite3_column_bytes(stmt, 0) + 1);
    }
    metaLookupEnd(stmt);
    return rv;
}

/* Optional text value: "" when the key is absent. */
static int metaGetOptText(ledger_store *s, const char *key, char *out,
                          size_t size)
{
    sqlite3_stmt *stmt = NULL;
    int rv = metaLookup(s, key, &stmt);
    if (rv == LEDGER_STORE_ENOTFOUND) {
        out[0] = '\0';
        rv = LEDGER_STORE_OK;
    } else if (rv == LEDGER_STORE_OK &&
               (sqlite3_column_type(stmt, 0) != SQLITE_TEXT ||
                (size_t)sqlite3_column_bytes(stmt, 0) >= size)) {
        rv = storeErrf(s, LEDGER_STORE_ECORRUPT,
                       "store %s: meta %s is malformed", s->path, key);
    } else if (rv == LEDGER_STORE_OK) {
        memcpy(out, sqlite3_column_text(stmt, 0),
               (size_t)sqlite3_column_bytes(stmt, 0) + 1);
    }
    metaLookupEnd(stmt);
    return rv;
}

int ledger_store_get_state(ledger_store *s, struct ledger_store_state *out)
{
    struct ledger_store_state st;
    uint64_t version;
    bool opened;
    int rv;

    if (out == NULL) {
        return storeErrf(s, LEDGER_STORE_EINVAL, "get state: no output");
    }
    /* Only this handle writes, and only inside begin..commit: the state read
     * after the last write transaction is still the state (the API asks
     * for it on every request; reading it is a read transaction with four
     * queries). A reader handle never caches: the writer moves on. */
    if (s->state_cached && !s->in_tx) {
        *out = s->state;
        return LEDGER_STORE_OK;
    }
    /* Inside a write transaction the writer follows its own changes
     * (tx_state; applied_index stays the committed one until commit). */
    if (s->in_tx && s->tx_state_valid) {
        *out = s->tx_state;
        return LEDGER_STORE_OK;
    }
    memset(&st, 0, sizeof st);
    rv = storeReadBegin(s, &opened);
    if (rv != LEDGER_STORE_OK) {
        return rv;
    }
    rv = metaGetU64(s, "applied_index", &st.applied_index);
    if (rv == LEDGER_STORE_OK) {
        rv = metaGetU64(s, "schema_version", &version);
    }
    if (rv == LEDGER_STORE_OK) {
        st.schema_version = (int)version;
        rv = metaGetText(s, "cluster_id", st.cluster_id, sizeof st.cluster_id);
    }
    if (rv == LEDGER_STORE_OK) {
        rv = metaGetOptText(s, "restored_from", st.restored_from,
                            sizeof st.restored_from);
    }
    if (rv == LEDGER_STORE_OK) {
        rv = storeHead(s, &st.position, st.head_hash);
    }
    storeReadEnd(s, opened);
    if (rv == LEDGER_STORE_OK) {
        *out = st;
        if (!s->reader && !s->in_tx) {
            s->state = st;
            s->state_cached = true;
        }
    }
    return rv;
}

/* ---- Write transaction ------------------------------------------------- */

int ledger_store_begin(ledger_store *s)
{
    int rv;
    if (s->in_tx) {
        return storeErrf(s, LEDGER_STORE_EINVAL,
                         "begin: a write transaction is already open");
    }
    /* The transaction changes the state: follow it in tx_state. */
    s->tx_state_valid = s->state_cached;
    s->tx_state = s->state;
    s->state_cached = false;
    storeHeadsClear(s);
    rv = storeExec(s, STMT_BEGIN_WRITE, "begin write transaction");
    if (rv == LEDGER_STORE_OK) {
        s->in_tx = true;
    }
    return rv;
}

int ledger_store_commit(ledger_store *s, uint64_t applied_index)
{
    sqlite3_stmt *stmt = NULL;
    int rv = storeRequireTx(s, "commit");
    int rc;
    if (rv != LEDGER_STORE_OK) {
        return rv;
    }
    if (applied_index > INT64_MAX) {
        rv = storeErrf(s, LEDGER_STORE_EINVAL,
                       "commit: applied_index %llu out of range",
                       (unsigned long long)applied_index);
        goto out;
    }
    rv = storeHeadsFlush(s);
    if (rv != LEDGER_STORE_OK) {
        goto out;
    }
    rv = storeStmt(s, STMT_META_SET, &stmt);
    if (rv != LEDGER_STORE_OK) {
        goto out;
    }
    sqlite3_bind_text(stmt, 1, "applied_index", -1, SQLITE_STATIC);
    sqlite3_bind_int64(stmt, 2, (sqlite3_int64)applied_index);
    rc = sqlite3_step(stmt);
    sqlite3_reset(stmt);
    sqlite3_clear_bindings(stmt);
    if (rc != SQLITE_DONE) {
        rv = storeSqlErr(s, "commit: write applied_index");
        goto out;
    }
    rv = storeExec(s, STMT_COMMIT, "commit");
out:
    if (rv != LEDGER_STORE_OK && !sqlite3_get_autocommit(s->db)) {
        /* A failed commit ends the transaction too (rolled back), so the
         * handle is usable again, nothing half-done survives, and the
         * caller's error message is the cause, not a failed rollback. */
        char saved[STORE__ERRMSG_SIZE];
        memcpy(saved, s->errmsg, sizeof saved);
        storeExec(s, STMT_ROLLBACK, "rollback");
        memcpy(s->errmsg, saved, sizeof saved);
    }
    s->in_tx = false;
    storeHeadsClear(s);
    if (rv == LEDGER_STORE_OK && s->tx_state_valid && !s->reader) {
        s->tx_state.applied_index = applied_index;
        s->state = s->tx_state;
        s->state_cached = true;
    }
    s->tx_state_valid = false;
    return rv;
}

int ledger_store_rollback(ledger_store *s)
{
    int rv = storeRequireTx(s, "rollback");
    if (rv != LEDGER_STORE_OK) {
        return rv;
    }
    s->in_tx = false;
    s->tx_state_valid = false;
    storeHeadsClear(s);
    if (sqlite3_get_autocommit(s->db)) {
        return LEDGER_STORE_OK; /* SQLite already rolled it back. */
    }
    return storeExec(s, STMT_ROLLBACK, "rollback");
}

int ledger_store_init_cluster(ledger_store *s, const char *cluster_id)
{
    sqlite3_stmt *stmt = NULL;
    size_t len = cluster_id != NULL ? strlen(cluster_id) : 0;
    int rv = storeRequireTx(s, "init cluster");
    if (rv != LEDGER_STORE_OK) {
        return rv;
    }
    if (len == 0 || len >= sizeof((struct ledger_store_state *)0)->cluster_id) {
        return storeErrf(s, LEDGER_STORE_EINVAL,
                         "init cluster: cluster_id must be 1..63 bytes");
    }
    s->tx_state_valid = false; /* Whether it changes is SQLite's call. */
    rv = storeStmt(s, STMT_CLUSTER_INIT, &stmt);
    if (rv != LEDGER_STORE_OK) {
        return rv;
    }
    sqlite3_bind_text(stmt, 1, cluster_id, (int)len, SQLITE_STATIC);
    if (sqlite3_step(stmt) != SQLITE_DONE) {
        rv = storeSqlErr(s, "init cluster");
    }
    sqlite3_reset(stmt);
    sqlite3_clear_bindings(stmt);
    return rv;
}

int ledger_store_set_restored_from(ledger_store *s, const char *cluster_id)
{
    sqlite3_stmt *stmt = NULL;
    size_t len = cluster_id != NULL ? strlen(cluster_id) : 0;
    int rv = storeRequireTx(s, "set restored_from");
    if (rv != LEDGER_STORE_OK) {
        return rv;
    }
    if (len >= sizeof((struct ledger_store_state *)0)->restored_from) {
        return storeErrf(s, LEDGER_STORE_EINVAL,
                         "set restored_from: cluster id over 63 bytes");
    }
    rv = storeStmt(s, STMT_META_SET, &stmt);
    if (rv != LEDGER_STORE_OK) {
        return rv;
    }
    sqlite3_bind_text(stmt, 1, "restored_from", -1, SQLITE_STATIC);
    sqlite3_bind_text(stmt, 2, len > 0 ? cluster_id : "", (int)len,
                      SQLITE_STATIC);
    if (sqlite3_step(stmt) != SQLITE_DONE) {
        rv = storeSqlErr(s, "set restored_from");
    } else if (s->tx_state_valid) {
        memcpy(s->tx_state.restored_from, len > 0 ? cluster_id : "", len + 1);
    }
    sqlite3_reset(stmt);
    sqlite3_clear_bindings(stmt);
    return rv;
}

/* ---- Free-text meta keys ----------------------------------------------- */

/* Keys the store itself maintains: never written through put_meta. */
static bool metaKeyReserved(const char *key)
{
    return strcmp(key, "schema_version") == 0 ||
           strcmp(key, "applied_index") == 0 ||
           strcmp(key, "cluster_id") == 0 || strcmp(key, "restored_from") == 0;
}

int ledger_store_put_meta(ledger_store *s, const char *key, const char *value)
{
    sqlite3_stmt *stmt = NULL;
    int rv = storeRequireTx(s, "put meta");
    if (rv != LEDGER_STORE_OK) {
        return rv;
    }
    if (key == NULL || key[0] == '\0' || strlen(key) > 64 ||
        metaKeyReserved(key) || value == NULL) {
        return storeErrf(s, LEDGER_STORE_EINVAL,
                         "put meta: key must be 1..64 bytes and not one the "
                         "store maintains");
    }
    rv = storeStmt(s, STMT_META_SET, &stmt);
    if (rv != LEDGER_STORE_OK) {
        return rv;
    }
    sqlite3_bind_text(stmt, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_text(stmt, 2, value, -1, SQLITE_STATIC);
    if (sqlite3_step(stmt) != SQLITE_DONE) {
        rv = storeSqlErr(s, "put meta");
    }
    sqlite3_reset(stmt);
    sqlite3_clear_bindings(stmt);
    return rv;
}

int ledger_store_get_meta(ledger_store *s, const char *key, char **value)
{
    sqlite3_stmt *stmt = NULL;
    bool opened;
    int rv;

    *value = NULL;
    rv = storeReadBegin(s, &opened);
    if (rv != LEDGER_STORE_OK) {
        return rv;
    }
    rv = metaLookup(s, key, &stmt);
    if (rv == LEDGER_STORE_OK) {
        const unsigned char *t = sqlite3_column_text(stmt, 0);
        *value = strdup(t != NULL ? (const char *)t : "");
        if (*value == NULL) {
            rv = storeErrf(s, LEDGER_STORE_ENOMEM, "get meta: out of memory");
        }
    }
    metaLookupEnd(stmt);
    storeReadEnd(s, opened);
    return rv;
}

/* ---- Checkpoints ------------------------------------------------------- */

static int checkCheckpointName(ledger_store *s, const char *what,
                               const char *stream, const char *name)
{
    if (stream == NULL || !ledger_stream_name_valid(stream, strlen(stream))) {
        return storeErrf(s, LEDGER_STORE_EINVAL,
                         "%s: invalid stream name (1..255 bytes of "
                         "[A-Za-z0-9._:-])",
                         what);
    }
    if (name == NULL || name[0] == '\0' || strlen(name) > LEDGER_STREAM_MAX) {
        return storeErrf(s, LEDGER_STORE_EINVAL,
                         "%s: checkpoint name must be 1..255 bytes", what);
    }
    return LEDGER_STORE_OK;
}

int ledger_store_put_checkpoint(ledger_store *s, const char *stream,
                                const char *name, const char *value,
                                size_t value_len)
{
    sqlite3_stmt *stmt = NULL;
    int rv = storeRequireTx(s, "put checkpoint");
    if (rv != LEDGER_STORE_OK) {
        return rv;
    }
    rv = checkCheckpointName(s, "put checkpoint", stream, name);
    if (rv != LEDGER_STORE_OK) {
        return rv;
    }
    if (value == NULL || value_len > INT32_MAX) {
        return storeErrf(s, LEDGER_STORE_EINVAL,
                         "put checkpoint: value is NULL or too large");
    }
    rv = storeStmt(s, STMT_CP_PUT, &stmt);
    if (rv != LEDGER_STORE_OK) {
        return rv;
    }
    sqlite3_bind_text(stmt, 1, stream, -1, SQLITE_STATIC);
    sqlite3_bind_text(stmt, 2, name, -1, SQLITE_STATIC);
    sqlite3_bind_text(stmt, 3, value, (int)value_len, SQLITE_STATIC);
    if (sqlite3_step(stmt) != SQLITE_DONE) {
        rv = storeSqlErr(s, "put checkpoint");
    }
    sqlite3_reset(stmt);
    sqlite3_clear_bindings(stmt);
    return rv;
}

int ledger_store_get_checkpoint(ledger_store *s, const char *stream,
                                const char *name, char **value,
                                size_t *value_len)
{
    sqlite3_stmt *stmt = NULL;
    int rv = checkCheckpointName(s, "get checkpoint", stream, name);
    int rc;
    if (rv != LEDGER_STORE_OK) {
        return rv;
    }
    if (value == NULL) {
        return storeErrf(s, LEDGER_STORE_EINVAL, "get checkpoint: no output");
    }
    rv = storeStmt(s, STMT_CP_GET, &stmt);
    if (rv != LEDGER_STORE_OK) {
        return rv;
    }
    sqlite3_bind_text(stmt, 1, stream, -1, SQLITE_STATIC);
    sqlite3_bind_text(stmt, 2, name, -1, SQLITE_STATIC);
    rc = sqlite3_step(stmt);
    if (rc == SQLITE_DONE) {
        rv = storeErrf(s, LEDGER_STORE_ENOTFOUND,
                       "no checkpoint %s in stream %s", name, stream);
    } else if (rc != SQLITE_ROW) {
        rv = storeSqlErr(s, "get checkpoint");
    } else {
        const unsigned char *text = sqlite3_column_text(stmt, 0);
        size_t len = (size_t)sqlite3_column_bytes(stmt, 0);
        char *copy = malloc(len + 1);
        if (copy == NULL) {
            rv = storeErrf(s, LEDGER_STORE_ENOMEM,
                           "get checkpoint: out of memory");
        } else {
            if (len > 0) {
                memcpy(copy, text, len);
            }
            copy[len] = '\0';
            *value = copy;
            if (value_len != NULL) {
                *value_len = len;
            }
        }
    }
    sqlite3_reset(stmt);
    sqlite3_clear_bindings(stmt);
    return rv;
}

int ledger_store_list_checkpoints(ledger_store *s, ledger_checkpoint_cb cb,
                                  void *arg)
{
    sqlite3_stmt *stmt = NULL;
    int rv = storeStmt(s, STMT_CP_LIST, &stmt);
    int rc;
    if (rv != LEDGER_STORE_OK) {
        return rv;
    }
    if (cb == NULL) {
        return storeErrf(s, LEDGER_STORE_EINVAL,
                         "list checkpoints: no callback");
    }
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        const char *stream = (const char *)sqlite3_column_text(stmt, 0);
        const char *name = (const char *)sqlite3_column_text(stmt, 1);
        const char *value = (const char *)sqlite3_column_text(stmt, 2);
        if (stream == NULL || name == NULL || value == NULL) {
            rv = storeErrf(s, LEDGER_STORE_ECORRUPT,
                           "list checkpoints: NULL field in a row");
            goto out_reset;
        }
        rv =
            cb(arg, stream, name, value, (size_t)sqlite3_column_bytes(stmt, 2));
        if (rv != 0) {
            goto out_reset;
        }
    }
    if (rc != SQLITE_DONE) {
        rv = storeSqlErr(s, "list checkpoints");
    }
out_reset:
    sqlite3_reset(stmt);
    return rv;
}

/* ---- Members ----------------------------------------------------------- */

int ledger_store_put_member(ledger_store *s, uint64_t id, const char *raft_addr,
                            const char *api_addr)
{
    sqlite3_stmt *stmt = NULL;
    int rv = storeRequireTx(s, "put member");
    if (rv != LEDGER_STORE_OK) {
        return rv;
    }
    if (id == 0 || id > INT64_MAX || raft_addr == NULL || api_addr == NULL) {
        return storeErrf(s, LEDGER_STORE_EINVAL,
                         "put member: id must be positive and addresses set");
    }
    rv = storeStmt(s, STMT_MEMBER_PUT, &stmt);
    if (rv != LEDGER_STORE_OK) {
        return rv;
    }
    sqlite3_bind_int64(stmt, 1, (sqlite3_int64)id);
    sqlite3_bind_text(stmt, 2, raft_addr, -1, SQLITE_STATIC);
    sqlite3_bind_text(stmt, 3, api_addr, -1, SQLITE_STATIC);
    if (sqlite3_step(stmt) != SQLITE_DONE) {
        rv = storeSqlErr(s, "put member");
    }
    sqlite3_reset(stmt);
    sqlite3_clear_bindings(stmt);
    return rv;
}

int ledger_store_set_member_zone(ledger_store *s, uint64_t id, const char *zone)
{
    sqlite3_stmt *stmt = NULL;
    int rv = storeRequireTx(s, "set member zone");
    if (rv != LEDGER_STORE_OK) {
        return rv;
    }
    if (id == 0 || id > INT64_MAX || zone == NULL ||
        strlen(zone) >= LEDGER_ZONE_MAX) {
        return storeErrf(s, LEDGER_STORE_EINVAL,
                         "set member zone: id must be positive and the zone "
                         "at most %d bytes",
                         LEDGER_ZONE_MAX - 1);
    }
    rv = storeStmt(s, STMT_MEMBER_ZONE_SET, &stmt);
    if (rv != LEDGER_STORE_OK) {
        return rv;
    }
    sqlite3_bind_text(stmt, 1, zone, -1, SQLITE_STATIC);
    sqlite3_bind_int64(stmt, 2, (sqlite3_int64)id);
    if (sqlite3_step(stmt) != SQLITE_DONE) {
        rv = storeSqlErr(s, "set member zone");
    } else if (sqlite3_changes(s->db) == 0) {
        rv = storeErrf(s, LEDGER_STORE_ENOTFOUND,
                       "set member zone: no member %llu",
                       (unsigned long long)id);
    }
    sqlite3_reset(stmt);
    sqlite3_clear_bindings(stmt);
    return rv;
}

int ledger_store_member_zone(ledger_store *s, uint64_t id, char *buf,
                             size_t len)
{
    sqlite3_stmt *stmt = NULL;
    int rv = storeStmt(s, STMT_MEMBER_ZONE_GET, &stmt);
    int rc;
    if (len > 0) {
        buf[0] = '\0';
    }
    if (rv != LEDGER_STORE_OK) {
        return rv;
    }
    sqlite3_bind_int64(stmt, 1, (sqlite3_int64)(id > INT64_MAX ? 0 : id));
    rc = sqlite3_step(stmt);
    if (rc == SQLITE_ROW) {
        const char *z = (const char *)sqlite3_column_text(stmt, 0);
        snprintf(buf, len, "%s", z != NULL ? z : "");
    } else if (rc == SQLITE_DONE) {
        rv = LEDGER_STORE_ENOTFOUND; /* Not an error: no message. */
    } else {
        rv = storeSqlErr(s, "member zone");
    }
    sqlite3_reset(stmt);
    return rv;
}

/* Deleting an absent member is not an error: the state machine applies it
 * deterministically either way. */
int ledger_store_delete_member(ledger_store *s, uint64_t id)
{
    sqlite3_stmt *stmt = NULL;
    int rv = storeRequireTx(s, "delete member");
    if (rv != LEDGER_STORE_OK) {
        return rv;
    }
    if (id == 0 || id > INT64_MAX) {
        return storeErrf(s, LEDGER_STORE_EINVAL,
                         "delete member: id must be positive");
    }
    rv = storeStmt(s, STMT_MEMBER_DELETE, &stmt);
    if (rv != LEDGER_STORE_OK) {
        return rv;
    }
    sqlite3_bind_int64(stmt, 1, (sqlite3_int64)id);
    if (sqlite3_step(stmt) != SQLITE_DONE) {
        rv = storeSqlErr(s, "delete member");
    }
    sqlite3_reset(stmt);
    return rv;
}

int ledger_store_list_members(ledger_store *s, ledger_member_cb cb, void *arg)
{
    sqlite3_stmt *stmt = NULL;
    int rv = storeStmt(s, STMT_MEMBER_LIST, &stmt);
    int rc;
    if (rv != LEDGER_STORE_OK) {
        return rv;
    }
    if (cb == NULL) {
        return storeErrf(s, LEDGER_STORE_EINVAL, "list members: no callback");
    }
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        sqlite3_int64 id = sqlite3_column_int64(stmt, 0);
        const char *raft_addr = (const char *)sqlite3_column_text(stmt, 1);
        const char *api_addr = (const char *)sqlite3_column_text(stmt, 2);
        if (id < 1 || raft_addr == NULL || api_addr == NULL) {
            rv = storeErrf(s, LEDGER_STORE_ECORRUPT,
                           "list members: malformed member row");
            goto out_reset;
        }
        rv = cb(arg, (uint64_t)id, raft_addr, api_addr);
        if (rv != 0) {
            goto out_reset;
        }
    }
    if (rc != SQLITE_DONE) {
        rv = storeSqlErr(s, "list members");
    }
out_reset:
    sqlite3_reset(stmt);
    return rv;
}

/* ---- Durability barrier ------------------------------------------------ */

/* fdatasync `path` (fsync for a directory); a missing file is fine when
 * `optional`. */
static int syncPath(ledger_store *s, const char *path, bool optional, bool dir)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | (dir ? O_DIRECTORY : 0));
    int rv;

    if (fd < 0) {
        if (optional && errno == ENOENT) {
            return LEDGER_STORE_OK;
        }
        return storeErrf(s, LEDGER_STORE_EIO, "sync: open %s: %s", path,
                         strerror(errno));
    }
    rv = dir ? fsync(fd) : fdatasync(fd);
    if (rv != 0) {
        rv = storeErrf(s, LEDGER_STORE_EIO, "sync: %s: %s", path,
                       strerror(errno));
        close(fd);
        return rv;
    }
    close(fd);
    return LEDGER_STORE_OK;
}

int ledger_store_sync(ledger_store *s)
{
    size_t len = strlen(s->path);
    char *p = malloc(len + 8);
    char *slash;
    int rv;

    if (p == NULL) {
        return storeErrf(s, LEDGER_STORE_ENOMEM, "sync: out of memory");
    }
    /* fsync works on the file, whichever descriptor asks: syncing our own
     * descriptors of the WAL and the database flushes SQLite's writes. */
    snprintf(p, len + 8, "%s-wal", s->path);
    rv = syncPath(s, p, true, false);
    if (rv == 0) {
        rv = syncPath(s, s->path, false, false);
    }
    if (rv == 0) {
        /* The directory entries of both files (the WAL is created later
         * than the database). */
        snprintf(p, len + 8, "%s", s->path);
        slash = strrchr(p, '/');
        if (slash == p) {
            slash[1] = '\0';
        } else if (slash != NULL) {
            *slash = '\0';
        } else {
            snprintf(p, len + 8, ".");
        }
        rv = syncPath(s, p, false, true);
    }
    free(p);
    return rv;
}

const char *ledger_store_path(const ledger_store *s)
{
    return s->path;
}
