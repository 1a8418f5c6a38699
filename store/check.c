/* Store health checks: SQLite's quick_check, the hash chain of the last
 * events, and whether SQLite ever found the file corrupt (store.h).
 *
 * A node runs quick_check and the tail of the chain at every start, before
 * Raft replays anything into the store, and quick_check with the whole
 * chain (ledger_store_verify) in the background and on GET /v1/verify
 * (node/repair.c). Both only read. */
#include <stdio.h>
#include <string.h>

#include "hash.h"
#include "internal.h"

bool ledger_store_corrupt_seen(const ledger_store *s)
{
    return s != NULL && s->corrupt_seen;
}

int ledger_store_quick_check(ledger_store *s)
{
    sqlite3_stmt *stmt = NULL;
    char first[200] = "";
    int rows = 0;
    int rc;

    /* Up to 10 problems are listed; the first one is reported. */
    rc = sqlite3_prepare_v2(s->db, "PRAGMA quick_check(10)", -1, &stmt, NULL);
    if (rc != SQLITE_OK) {
        return storeSqlErr(s, "quick_check");
    }
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        const char *t = (const char *)sqlite3_column_text(stmt, 0);
        if (rows++ == 0) {
            snprintf(first, sizeof first, "%s", t != NULL ? t : "?");
        }
    }
    if (rc != SQLITE_DONE) {
        int rv = storeSqlErr(s, "quick_check");
        sqlite3_finalize(stmt);
        return rv;
    }
    sqlite3_finalize(stmt);
    if (rows == 1 && strcmp(first, "ok") == 0) {
        return LEDGER_STORE_OK;
    }
    s->corrupt_seen = true;
    return storeErrf(s, LEDGER_STORE_ECORRUPT,
                     "store %s fails SQLite's quick_check: %s%s", s->path,
                     first, rows > 1 ? " (and more)" : "");
}

static void tailBad(struct ledger_verify_result *out, uint64_t position,
                    const char *fmt, uint64_t a)
{
    out->ok = false;
    out->first_bad_position = position;
    out->applied_position = position > 0 ? position - 1 : 0;
    snprintf(out->reason, sizeof out->reason, fmt, (unsigned long long)a);
}

int ledger_store_check_tail(ledger_store *s, uint64_t n,
                            struct ledger_verify_result *out)
{
    static const uint8_t zeros[LEDGER_HASH_LEN];
    struct ledger_store_state st;
    struct ledger_event ev;
    sqlite3_stmt *stmt = NULL;
    uint8_t prev[LEDGER_HASH_LEN];
    uint8_t computed[LEDGER_HASH_LEN];
    uint64_t from;
    uint64_t expected;
    uint64_t last_seq = 0;
    uint8_t head[LEDGER_HASH_LEN];
    char stream[LEDGER_STREAM_MAX + 1] = "";
    const char *why;
    bool opened;
    int rv;
    int rc;

    memset(out, 0, sizeof *out);
    out->ok = true;
    rv = storeReadBegin(s, &opened);
    if (rv != LEDGER_STORE_OK) {
        return rv;
    }
    rv = ledger_store_get_state(s, &st);
    if (rv != LEDGER_STORE_OK) {
        goto out_end;
    }
    out->applied_position = st.position;
    memcpy(out->hash, st.head_hash, LEDGER_HASH_LEN);
    if (st.position == 0) {
        goto out_end;
    }
    from = st.position > n ? st.position - n + 1 : 1;
    if (from == 1) {
        memcpy(prev, zeros, sizeof prev);
    } else {
        rv = ledger_store_hash_at(s, from - 1, prev);
        if (rv == LEDGER_STORE_ENOTFOUND) {
            tailBad(out, from - 1, "position %llu is missing", from - 1);
            rv = LEDGER_STORE_OK;
            goto out_end;
        }
        if (rv != LEDGER_STORE_OK) {
            goto out_end;
        }
    }
    rc = sqlite3_prepare_v2(s->db,
                            "SELECT " STORE__EVENT_COLUMNS " FROM events"
                            " WHERE position >= ? ORDER BY position",
                            -1, &stmt, NULL);
    if (rc != SQLITE_OK) {
        rv = storeSqlErr(s, "check tail");
        goto out_end;
    }
    sqlite3_bind_int64(stmt, 1, (sqlite3_int64)from);
    expected = from;
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        uint64_t position = (uint64_t)sqlite3_column_int64(stmt, 0);
        if (position != expected) {
            tailBad(out, expected, "position %llu is missing", expected);
            goto out_finalize;
        }
        if (storeRowToEvent(stmt, &ev, &why) != 0 ||
            memcmp(ev.prev_hash, prev, LEDGER_HASH_LEN) != 0) {
            tailBad(out, position,
                    "position %llu: malformed, or prev_hash is not the "
                    "hash before it",
                    position);
            goto out_finalize;
        }
        if (hashEvent(&s->hash, ev.prev_hash, ev.position, ev.stream, ev.seq,
                      ev.type, ev.id, ev.ts_ms, ev.data, ev.data_len,
                      computed) != 0) {
            rv = storeErrf(s, LEDGER_STORE_ENOMEM, "check tail: SHA-256");
            goto out_finalize;
        }
        if (memcmp(computed, ev.hash, LEDGER_HASH_LEN) != 0) {
            tailBad(out, position,
                    "position %llu: stored hash does not match its fields",
                    position);
            goto out_finalize;
        }
        memcpy(prev, ev.hash, LEDGER_HASH_LEN);
        snprintf(stream, sizeof stream, "%s", ev.stream);
        last_seq = ev.seq;
        expected++;
    }
    if (rc != SQLITE_DONE) {
        rv = storeSqlErr(s, "check tail");
        goto out_finalize;
    }
    if (expected != st.position + 1 ||
        memcmp(prev, st.head_hash, LEDGER_HASH_LEN) != 0) {
        tailBad(out, expected, "the chain ends before the head (%llu)",
                st.position);
        goto out_finalize;
    }
    /* The head's stream row must hold the head. */
    rv = ledger_store_stream_head(s, stream, &last_seq, head);
    if (rv == LEDGER_STORE_ENOTFOUND ||
        (rv == LEDGER_STORE_OK && memcmp(head, prev, LEDGER_HASH_LEN) != 0)) {
        tailBad(out, st.position,
                "position %llu: its stream's head does not hold it",
                st.position);
        rv = LEDGER_STORE_OK;
    }
out_finalize:
    sqlite3_finalize(stmt);
out_end:
    storeReadEnd(s, opened);
    if (rv == LEDGER_STORE_OK && !out->ok) {
        s->corrupt_seen = true;
    }
    return rv;
}
