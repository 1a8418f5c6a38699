/* Writing events: ledger_store_append (the state machine's decision) and
 * ledger_store_insert_event (snapshot catch-up).
 *
 * Determinism: every decision reads only the store (inside the write
 * transaction) and the arguments; ts_ms comes from the Raft entry. The
 * steps, in this order (store.h is the contract):
 *   1. an id repeated inside the batch, or a mix of stored and new ids:
 *      PARTIAL_DUP; every event carries an id and all are stored: DUPLICATE
 *      with the original result;
 *   2. expected version mismatch: CONFLICT;
 *   3. append, chaining each hash to the one before.
 *
 * Invariants kept by every successful write:
 * - positions are 1, 2, 3, ... without gaps, and prev_hash(P) == hash(P-1)
 *   (zeros for P = 1);
 * - a stream's seqs are 1, 2, 3, ... in position order;
 * - streams(name) holds the stream's last seq and the hash of that event.
 * A failed write is undone to a savepoint, so it leaves nothing behind.
 *
 * Cost per batch: one head lookup, one stream lookup, one indexed id lookup
 * per event with an id, one INSERT per event, one stream upsert (the last
 * two through the transaction's head cache, heads.c: one lookup and one
 * upsert per stream and transaction). */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* qsort comparator over an array of id strings. */
static int compareIds(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static bool hasId(const char *id)
{
    return id != NULL && id[0] != '\0';
}

static int checkAppendArgs(ledger_store *s, const char *stream,
                           const struct ledger_event_in *events, size_t n,
                           struct ledger_append_result *res)
{
    int rv = storeRequireTx(s, "append");
    if (rv != LEDGER_STORE_OK) {
        return rv;
    }
    if (stream == NULL || !ledger_stream_name_valid(stream, strlen(stream))) {
        return storeErrf(s, LEDGER_STORE_EINVAL,
                         "append: invalid stream name (1..255 bytes of "
                         "[A-Za-z0-9._:-])");
    }
    if (events == NULL || n == 0 || res == NULL) {
        return storeErrf(s, LEDGER_STORE_EINVAL, "append to %s: empty batch",
                         stream);
    }
    if (n > INT64_MAX / 2) {
        return storeErrf(s, LEDGER_STORE_EINVAL,
                         "append to %s: batch too large", stream);
    }
    for (size_t i = 0; i < n; i++) {
        if (events[i].type == NULL || events[i].data == NULL) {
            return storeErrf(s, LEDGER_STORE_EINVAL,
                             "append to %s: event %zu has no type or data",
                             stream, i);
        }
        if (events[i].data_len > INT32_MAX) {
            return storeErrf(s, LEDGER_STORE_EINVAL,
                             "append to %s: event %zu data is over 2 GiB",
                             stream, i);
        }
    }
    return LEDGER_STORE_OK;
}

/* Step 1. *decided is set when the outcome is DUPLICATE or PARTIAL_DUP. */
static int checkDuplicates(ledger_store *s, const char *stream,
                           const struct ledger_event_in *events, size_t n,
                           struct ledger_append_result *res, bool *decided)
{
    const char **ids;
    sqlite3_stmt *stmt;
    size_t n_ids = 0;
    size_t n_matched = 0;
    uint64_t best_position = 0;
    int rv;

    *decided = false;
    for (size_t i = 0; i < n; i++) {
        n_ids += hasId(events[i].id) ? 1 : 0;
    }
    if (n_ids == 0) {
        return LEDGER_STORE_OK;
    }
    ids = malloc(n_ids * sizeof *ids);
    if (ids == NULL) {
        return storeErrf(s, LEDGER_STORE_ENOMEM, "append: out of memory");
    }
    n_ids = 0;
    for (size_t i = 0; i < n; i++) {
        if (hasId(events[i].id)) {
            ids[n_ids++] = events[i].id;
        }
    }
    qsort(ids, n_ids, sizeof *ids, compareIds);
    for (size_t i = 1; i < n_ids; i++) {
        if (strcmp(ids[i - 1], ids[i]) == 0) {
            res->outcome = LEDGER_APPEND_PARTIAL_DUP;
            *decided = true;
            rv = LEDGER_STORE_OK;
            goto out_free_ids;
        }
    }

    rv = storeStmt(s, STMT_EVENT_BY_ID, &stmt);
    if (rv != LEDGER_STORE_OK) {
        goto out_free_ids;
    }
    for (size_t i = 0; i < n_ids; i++) {
        int rc;
        sqlite3_bind_text(stmt, 1, stream, -1, SQLITE_STATIC);
        sqlite3_bind_text(stmt, 2, ids[i], -1, SQLITE_STATIC);
        rc = sqlite3_step(stmt);
        if (rc == SQLITE_ROW) {
            uint64_t seq = (uint64_t)sqlite3_column_int64(stmt, 0);
            uint64_t position = (uint64_t)sqlite3_column_int64(stmt, 1);
            if (sqlite3_column_bytes(stmt, 2) != LEDGER_HASH_LEN) {
                sqlite3_reset(stmt);
                rv = storeErrf(s, LEDGER_STORE_ECORRUPT,
                               "append: event at position %llu has a "
                               "malformed hash",
                               (unsigned long long)position);
                goto out_free_ids;
            }
            if (n_matched == 0 || seq < res->first_seq) {
                res->first_seq = seq;
            }
            if (n_matched == 0 || seq > res->last_seq) {
                res->last_seq = seq;
            }
            if (position > best_position) {
                best_position = position;
                memcpy(res->hash, sqlite3_column_blob(stmt, 2),
                       LEDGER_HASH_LEN);
            }
            n_matched++;
        } else if (rc != SQLITE_DONE) {
            rv = storeSqlErr(s, "append: look up event id");
            sqlite3_reset(stmt);
            goto out_free_ids;
        }
        sqlite3_reset(stmt);
    }
    sqlite3_clear_bindings(stmt);

    if (n_matched > 0) {
        *decided = true;
        if (n_matched == n_ids && n_ids == n) {
            res->outcome = LEDGER_APPEND_DUPLICATE;
            res->position = best_position;
        } else {
            memset(res, 0, sizeof *res);
            res->outcome = LEDGER_APPEND_PARTIAL_DUP;
        }
    }
    rv = LEDGER_STORE_OK;

out_free_ids:
    free(ids);
    return rv;
}

/* INSERT one event row. */
static int insertRow(ledger_store *s, const struct ledger_event *ev)
{
    sqlite3_stmt *stmt;
    int rv = storeStmt(s, STMT_EVENT_INSERT, &stmt);
    if (rv != LEDGER_STORE_OK) {
        return rv;
    }
    sqlite3_bind_int64(stmt, 1, (sqlite3_int64)ev->position);
    sqlite3_bind_text(stmt, 2, ev->stream, -1, SQLITE_STATIC);
    sqlite3_bind_int64(stmt, 3, (sqlite3_int64)ev->seq);
    sqlite3_bind_text(stmt, 4, ev->type, -1, SQLITE_STATIC);
    sqlite3_bind_text(stmt, 5, ev->data, (int)ev->data_len, SQLITE_STATIC);
    if (hasId(ev->id)) {
        sqlite3_bind_text(stmt, 6, ev->id, -1, SQLITE_STATIC);
    } else {
        sqlite3_bind_null(stmt, 6);
    }
    sqlite3_bind_int64(stmt, 7, ev->ts_ms);
    sqlite3_bind_blob(stmt, 8, ev->prev_hash, LEDGER_HASH_LEN, SQLITE_STATIC);
    sqlite3_bind_blob(stmt, 9, ev->hash, LEDGER_HASH_LEN, SQLITE_STATIC);
    if (sqlite3_step(stmt) != SQLITE_DONE) {
        rv = storeSqlErr(s, "insert event");
    }
    sqlite3_reset(stmt); /* Every parameter is bound again next time. */
    return rv;
}

int ledger_store_append(ledger_store *s, const char *stream,
                        const struct ledger_event_in *events, size_t n,
                        bool has_expected, uint64_t expected, int64_t ts_ms,
                        struct ledger_append_result *res)
{
    struct ledger_append_result r;
    struct ledger_event ev;
    uint8_t stream_hash[LEDGER_HASH_LEN];
    uint64_t last_seq;
    bool decided;
    int rv;

    rv = checkAppendArgs(s, stream, events, n, res);
    if (rv != LEDGER_STORE_OK) {
        return rv;
    }
    memset(&r, 0, sizeof r);

    /* 1. Idempotency. */
    rv = checkDuplicates(s, stream, events, n, &r, &decided);
    if (rv != LEDGER_STORE_OK) {
        return rv;
    }
    if (decided) {
        *res = r;
        return LEDGER_STORE_OK;
    }

    /* 2. Expected version. */
    rv = storeHeadGet(s, stream, &last_seq, stream_hash);
    if (rv != LEDGER_STORE_OK) {
        return rv;
    }
    if (has_expected && expected != last_seq) {
        r.outcome = LEDGER_APPEND_CONFLICT;
        r.last_seq = last_seq;
        *res = r;
        return LEDGER_STORE_OK;
    }
    if (last_seq > INT64_MAX - n) {
        return storeErrf(s, LEDGER_STORE_EINVAL,
                         "append to %s: seq would overflow", stream);
    }

    /* 3. Append. */
    memset(&ev, 0, sizeof ev);
    rv = storeHead(s, &ev.position, ev.hash);
    if (rv != LEDGER_STORE_OK) {
        return rv;
    }
    if (ev.position > INT64_MAX - n) {
        return storeErrf(s, LEDGER_STORE_EINVAL,
                         "append to %s: position would overflow", stream);
    }
    rv = storeSavepoint(s);
    if (rv != LEDGER_STORE_OK) {
        return rv;
    }
    ev.stream = stream;
    ev.seq = last_seq;
    ev.ts_ms = ts_ms;
    for (size_t i = 0; i < n; i++) {
        memcpy(ev.prev_hash, ev.hash, LEDGER_HASH_LEN);
        ev.position++;
        ev.seq++;
        ev.type = events[i].type;
        ev.id = hasId(events[i].id) ? events[i].id : NULL;
        ev.data = events[i].data;
        ev.data_len = events[i].data_len;
        if (hashEvent(&s->hash, ev.prev_hash, ev.position, ev.stream, ev.seq,
                      ev.type, ev.id, ev.ts_ms, ev.data, ev.data_len,
                      ev.hash) != 0) {
            rv = storeErrf(s, LEDGER_STORE_ENOMEM,
                           "append to %s: SHA-256 failed", stream);
            goto out_rollback_savepoint;
        }
        rv = insertRow(s, &ev);
        if (rv != LEDGER_STORE_OK) {
            goto out_rollback_savepoint;
        }
    }
    rv = storeRelease(s);
    if (rv != LEDGER_STORE_OK) {
        goto out_rollback_savepoint;
    }
    /* After the release: a failed append leaves the cached head as it was
     * (heads.c). The head's slot was claimed by storeHeadGet above, so
     * this put cannot fail. */
    rv = storeHeadPut(s, stream, ev.seq, ev.hash);
    if (rv != LEDGER_STORE_OK) {
        return rv;
    }

    if (s->tx_state_valid) {
        s->tx_state.position = ev.position;
        memcpy(s->tx_state.head_hash, ev.hash, LEDGER_HASH_LEN);
    }
    r.outcome = LEDGER_APPEND_OK;
    r.first_seq = last_seq + 1;
    r.last_seq = ev.seq;
    r.position = ev.position;
    memcpy(r.hash, ev.hash, LEDGER_HASH_LEN);
    *res = r;
    return LEDGER_STORE_OK;

out_rollback_savepoint:
    storeRollbackTo(s);
    return rv;
}

/* Fail with LEDGER_STORE_ECHAIN. */
#define CHAIN_ERR(...) storeErrf(s, LEDGER_STORE_ECHAIN, __VA_ARGS__)

int ledger_store_insert_event(ledger_store *s, const struct ledger_event *ev)
{
    uint8_t head_hash[LEDGER_HASH_LEN];
    uint8_t stream_hash[LEDGER_HASH_LEN];
    uint8_t computed[LEDGER_HASH_LEN];
    uint64_t head;
    uint64_t last_seq;
    bool decided;
    int rv;

    rv = storeRequireTx(s, "insert event");
    s->tx_state_valid = false; /* Catch-up: get_state reads SQLite again. */
    if (rv != LEDGER_STORE_OK) {
        return rv;
    }
    if (ev == NULL || ev->stream == NULL || ev->type == NULL ||
        ev->data == NULL || ev->data_len > INT32_MAX) {
        return storeErrf(s, LEDGER_STORE_EINVAL,
                         "insert event: missing stream, type or data");
    }
    if (!ledger_stream_name_valid(ev->stream, strlen(ev->stream))) {
        return storeErrf(s, LEDGER_STORE_EINVAL,
                         "insert event: invalid stream name");
    }

    rv = storeHead(s, &head, head_hash);
    if (rv != LEDGER_STORE_OK) {
        return rv;
    }
    if (head >= INT64_MAX || ev->position != head + 1) {
        return CHAIN_ERR("insert event: position %llu does not follow the "
                         "head %llu",
                         (unsigned long long)ev->position,
                         (unsigned long long)head);
    }
    if (memcmp(ev->prev_hash, head_hash, LEDGER_HASH_LEN) != 0) {
        return CHAIN_ERR("insert event: prev_hash at position %llu is not "
                         "the head hash",
                         (unsigned long long)ev->position);
    }
    rv = storeHeadGet(s, ev->stream, &last_seq, stream_hash);
    if (rv != LEDGER_STORE_OK) {
        return rv;
    }
    if (last_seq >= INT64_MAX || ev->seq != last_seq + 1) {
        return CHAIN_ERR("insert event: seq %llu in stream %s does not "
                         "follow last_seq %llu",
                         (unsigned long long)ev->seq, ev->stream,
                         (unsigned long long)last_seq);
    }
    if (hashEvent(&s->hash, ev->prev_hash, ev->position, ev->stream, ev->seq,
                  ev->type, hasId(ev->id) ? ev->id : NULL, ev->ts_ms, ev->data,
                  ev->data_len, computed) != 0) {
        return storeErrf(s, LEDGER_STORE_ENOMEM,
                         "insert event: SHA-256 failed");
    }
    if (memcmp(computed, ev->hash, LEDGER_HASH_LEN) != 0) {
        return CHAIN_ERR("insert event: hash at position %llu does not "
                         "match its fields",
                         (unsigned long long)ev->position);
    }
    if (hasId(ev->id)) {
        struct ledger_event_in in = {ev->type, ev->id, ev->data, 0};
        struct ledger_append_result dup;
        memset(&dup, 0, sizeof dup);
        rv = checkDuplicates(s, ev->stream, &in, 1, &dup, &decided);
        if (rv != LEDGER_STORE_OK) {
            return rv;
        }
        if (decided) {
            return CHAIN_ERR("insert event: id %s already stored in "
                             "stream %s",
                             ev->id, ev->stream);
        }
    }

    rv = storeSavepoint(s);
    if (rv != LEDGER_STORE_OK) {
        return rv;
    }
    rv = insertRow(s, ev);
    if (rv != LEDGER_STORE_OK) {
        goto out_rollback_savepoint;
    }
    rv = storeRelease(s);
    if (rv != LEDGER_STORE_OK) {
        goto out_rollback_savepoint;
    }
    return storeHeadPut(s, ev->stream, ev->seq, ev->hash); /* see append */

out_rollback_savepoint:
    storeRollbackTo(s);
    return rv;
}
