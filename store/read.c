/* Reads: events by stream or position, stream heads, hashes.
 *
 * Each read runs in one SQLite read transaction (or inside the open write
 * transaction, whose uncommitted rows it then sees), so a multi-statement
 * read is one snapshot. Callbacks get pointers borrowed from the current
 * row: valid until the callback returns. A callback must not call back into
 * the same store handle (the cached statement is still being stepped). */
#include <string.h>

#include "internal.h"

/* SQLite integers are signed: clamp a u64 bound to INT64_MAX. */
static sqlite3_int64 clampI64(uint64_t v)
{
    return v > INT64_MAX ? INT64_MAX : (sqlite3_int64)v;
}

/* Step `stmt` (bound by the caller), calling cb per row. Returns the
 * callback's non-zero value, or an error code, or 0. Resets `stmt`. */
static int iterateEvents(ledger_store *s, sqlite3_stmt *stmt, const char *what,
                         ledger_event_cb cb, void *arg)
{
    struct ledger_event ev;
    const char *why;
    int rv = LEDGER_STORE_OK;
    int rc;

    if (cb == NULL) {
        rv = storeErrf(s, LEDGER_STORE_EINVAL, "%s: no callback", what);
        goto out_reset;
    }
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        if (storeRowToEvent(stmt, &ev, &why) != 0) {
            rv = storeErrf(
                s, LEDGER_STORE_ECORRUPT, "%s: event at position %llu: %s",
                what, (unsigned long long)sqlite3_column_int64(stmt, 0), why);
            goto out_reset;
        }
        rv = cb(arg, &ev);
        if (rv != 0) {
            goto out_reset;
        }
    }
    if (rc != SQLITE_DONE) {
        rv = storeSqlErr(s, what);
    }
out_reset:
    sqlite3_reset(stmt);
    sqlite3_clear_bindings(stmt);
    return rv;
}

static int checkStream(ledger_store *s, const char *what, const char *stream)
{
    if (stream == NULL || !ledger_stream_name_valid(stream, strlen(stream))) {
        return storeErrf(s, LEDGER_STORE_EINVAL,
                         "%s: invalid stream name (1..255 bytes of "
                         "[A-Za-z0-9._:-])",
                         what);
    }
    return LEDGER_STORE_OK;
}

/* limit 0 reads no event (only *last_seq); from_seq 0 reads from 1. */
int ledger_store_read_stream(ledger_store *s, const char *stream,
                             uint64_t from_seq, uint64_t limit,
                             uint64_t *last_seq, ledger_event_cb cb, void *arg)
{
    uint8_t head[LEDGER_HASH_LEN];
    uint64_t last = 0;
    sqlite3_stmt *stmt;
    bool opened;
    int rv = checkStream(s, "read stream", stream);
    if (rv != LEDGER_STORE_OK) {
        return rv;
    }
    rv = storeReadBegin(s, &opened);
    if (rv != LEDGER_STORE_OK) {
        return rv;
    }
    rv = storeHeadGet(s, stream, &last, head);
    if (rv != LEDGER_STORE_OK) {
        goto out_end_read;
    }
    if (last_seq != NULL) {
        *last_seq = last;
    }
    if (limit == 0 || last == 0 || from_seq > last) {
        goto out_end_read;
    }
    rv = storeStmt(s, STMT_READ_STREAM, &stmt);
    if (rv != LEDGER_STORE_OK) {
        goto out_end_read;
    }
    sqlite3_bind_text(stmt, 1, stream, -1, SQLITE_STATIC);
    sqlite3_bind_int64(stmt, 2, clampI64(from_seq));
    sqlite3_bind_int64(stmt, 3, clampI64(limit));
    rv = iterateEvents(s, stmt, "read stream", cb, arg);

out_end_read:
    storeReadEnd(s, opened);
    return rv;
}

/* limit 0 reads no event; from_pos 0 reads from 1. */
int ledger_store_read_positions(ledger_store *s, uint64_t from_pos,
                                uint64_t limit, ledger_event_cb cb, void *arg)
{
    sqlite3_stmt *stmt;
    int rv;
    if (limit == 0) {
        return LEDGER_STORE_OK;
    }
    rv = storeStmt(s, STMT_READ_POSITIONS, &stmt);
    if (rv != LEDGER_STORE_OK) {
        return rv;
    }
    sqlite3_bind_int64(stmt, 1, clampI64(from_pos));
    sqlite3_bind_int64(stmt, 2, clampI64(limit));
    return iterateEvents(s, stmt, "read positions", cb, arg);
}

int ledger_store_stream_head(ledger_store *s, const char *stream,
                             uint64_t *last_seq,
                             uint8_t head_hash[LEDGER_HASH_LEN])
{
    uint8_t hash[LEDGER_HASH_LEN];
    uint64_t last;
    int rv = checkStream(s, "stream head", stream);
    if (rv != LEDGER_STORE_OK) {
        return rv;
    }
    rv = storeHeadGet(s, stream, &last, hash);
    if (rv != LEDGER_STORE_OK) {
        return rv;
    }
    if (last == 0) {
        return storeErrf(s, LEDGER_STORE_ENOTFOUND, "no stream %s", stream);
    }
    if (last_seq != NULL) {
        *last_seq = last;
    }
    if (head_hash != NULL) {
        memcpy(head_hash, hash, LEDGER_HASH_LEN);
    }
    return LEDGER_STORE_OK;
}

/* Run a prepared streams query (STMT_STREAM_LIST or STMT_STREAM_PAGE,
 * parameters bound) through cb; resets it. */
static int iterateStreams(ledger_store *s, sqlite3_stmt *stmt,
                          ledger_stream_cb cb, void *arg)
{
    int rc;
    int rv = LEDGER_STORE_OK;

    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(stmt, 0);
        sqlite3_int64 last_seq = sqlite3_column_int64(stmt, 1);
        if (name == NULL || last_seq < 1 ||
            sqlite3_column_bytes(stmt, 2) != LEDGER_HASH_LEN) {
            rv = storeErrf(s, LEDGER_STORE_ECORRUPT,
                           "list streams: malformed stream row");
            goto out_reset;
        }
        rv = cb(arg, name, (uint64_t)last_seq, sqlite3_column_blob(stmt, 2));
        if (rv != 0) {
            goto out_reset;
        }
    }
    if (rc != SQLITE_DONE) {
        rv = storeSqlErr(s, "list streams");
    }
out_reset:
    sqlite3_reset(stmt);
    return rv;
}

int ledger_store_list_streams(ledger_store *s, ledger_stream_cb cb, void *arg)
{
    sqlite3_stmt *stmt;
    int rv;

    if (cb == NULL) {
        return storeErrf(s, LEDGER_STORE_EINVAL, "list streams: no callback");
    }
    rv = storeHeadsFlush(s); /* The table as the transaction has it. */
    if (rv == LEDGER_STORE_OK) {
        rv = storeStmt(s, STMT_STREAM_LIST, &stmt);
    }
    if (rv != LEDGER_STORE_OK) {
        return rv;
    }
    return iterateStreams(s, stmt, cb, arg);
}

int ledger_store_list_streams_page(ledger_store *s, const char *after,
                                   uint64_t limit, ledger_stream_cb cb,
                                   void *arg)
{
    sqlite3_stmt *stmt;
    int rv;

    if (cb == NULL) {
        return storeErrf(s, LEDGER_STORE_EINVAL, "list streams: no callback");
    }
    if (limit == 0) {
        return LEDGER_STORE_OK;
    }
    rv = storeHeadsFlush(s);
    if (rv == LEDGER_STORE_OK) {
        rv = storeStmt(s, STMT_STREAM_PAGE, &stmt);
    }
    if (rv != LEDGER_STORE_OK) {
        return rv;
    }
    sqlite3_bind_text(stmt, 1, after != NULL ? after : "", -1, SQLITE_STATIC);
    sqlite3_bind_int64(stmt, 2, clampI64(limit));
    rv = iterateStreams(s, stmt, cb, arg);
    sqlite3_clear_bindings(stmt);
    return rv;
}

int ledger_store_hash_at(ledger_store *s, uint64_t position,
                         uint8_t out[LEDGER_HASH_LEN])
{
    sqlite3_stmt *stmt;
    int rv = storeStmt(s, STMT_HASH_AT, &stmt);
    int rc;
    if (rv != LEDGER_STORE_OK) {
        return rv;
    }
    sqlite3_bind_int64(stmt, 1, clampI64(position));
    rc = sqlite3_step(stmt);
    if (rc == SQLITE_DONE) {
        rv = storeErrf(s, LEDGER_STORE_ENOTFOUND, "no event at position %llu",
                       (unsigned long long)position);
    } else if (rc != SQLITE_ROW) {
        rv = storeSqlErr(s, "hash at position");
    } else if (sqlite3_column_bytes(stmt, 0) != LEDGER_HASH_LEN) {
        rv = storeErrf(s, LEDGER_STORE_ECORRUPT,
                       "event at position %llu has a malformed hash",
                       (unsigned long long)position);
    } else {
        memcpy(out, sqlite3_column_blob(stmt, 0), LEDGER_HASH_LEN);
    }
    sqlite3_reset(stmt);
    return rv;
}
