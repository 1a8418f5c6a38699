/* Whole-store verification: ledger_store_verify.
 *
 * Two streaming passes inside one read snapshot; memory use is constant
 * (one row plus one stream name), so any number of events is fine.
 *
 * Pass 1, chain (events by position): positions are 1, 2, 3, ... without
 * gaps; prev_hash(P) == hash(P-1) (zeros for P = 1); hash(P) recomputes from
 * the row's fields (layout in store.h). Stops at the first bad position.
 *
 * Pass 2, streams (events by (stream, seq), merged with the streams table by
 * name): each stream's seqs are 1, 2, 3, ... and increase with position;
 * streams(name) exists for every stream with events, and holds its last seq
 * and the hash of that event; no streams row lacks events.
 *
 * first_bad_position is the smallest position found bad by either pass:
 * a missing position is reported as itself; a stream-head mismatch as the
 * position of the stream's last event; a streams row without any event
 * (no event is wrong, the index is) as the chain head + 1.
 * applied_position is first_bad_position - 1 (the head when ok): the chain
 * is intact up to it, and `hash` is the hash there. */
#include <stdio.h>
#include <string.h>

#include "internal.h"

struct verifyState {
    uint64_t head; /* Last position seen by pass 1. */
    bool found;    /* Something is bad. */
    uint64_t bad;  /* Smallest bad position so far (when found); 0 is a
                      position too: an event stored at position 0 must not
                      read as "nothing found" (tests/fuzz/fuzz_backup). */
    char reason[sizeof((struct ledger_verify_result *)0)->reason];
};

static void markBad(struct verifyState *v, uint64_t position, const char *fmt,
                    ...) __attribute__((format(printf, 3, 4)));

static void markBad(struct verifyState *v, uint64_t position, const char *fmt,
                    ...)
{
    va_list ap;
    if (v->found && v->bad <= position) {
        return;
    }
    v->found = true;
    v->bad = position;
    va_start(ap, fmt);
    vsnprintf(v->reason, sizeof v->reason, fmt, ap);
    va_end(ap);
}

static int verifyChain(ledger_store *s, struct verifyState *v)
{
    static const uint8_t zeros[LEDGER_HASH_LEN];
    uint8_t prev[LEDGER_HASH_LEN];
    uint8_t computed[LEDGER_HASH_LEN];
    struct ledger_event ev;
    sqlite3_stmt *stmt;
    const char *why;
    uint64_t expected = 1;
    int rv = storeStmt(s, STMT_VERIFY_CHAIN, &stmt);
    int rc;

    if (rv != LEDGER_STORE_OK) {
        return rv;
    }
    memcpy(prev, zeros, sizeof prev);
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        uint64_t position = (uint64_t)sqlite3_column_int64(stmt, 0);
        if (position != expected) {
            markBad(v, expected, "position %llu is missing (next is %llu)",
                    (unsigned long long)expected, (unsigned long long)position);
            goto out_reset;
        }
        if (storeRowToEvent(stmt, &ev, &why) != 0) {
            markBad(v, position, "position %llu: %s",
                    (unsigned long long)position, why);
            goto out_reset;
        }
        if (memcmp(ev.prev_hash, prev, LEDGER_HASH_LEN) != 0) {
            markBad(v, position,
                    "position %llu: prev_hash is not the hash at %llu",
                    (unsigned long long)position,
                    (unsigned long long)(position - 1));
            goto out_reset;
        }
        if (hashEvent(&s->hash, ev.prev_hash, ev.position, ev.stream, ev.seq,
                      ev.type, ev.id, ev.ts_ms, ev.data, ev.data_len,
                      computed) != 0) {
            rv = storeErrf(s, LEDGER_STORE_ENOMEM, "verify: SHA-256 failed");
            goto out_reset;
        }
        if (memcmp(computed, ev.hash, LEDGER_HASH_LEN) != 0) {
            markBad(v, position,
                    "position %llu: stored hash does not match its fields",
                    (unsigned long long)position);
            goto out_reset;
        }
        memcpy(prev, ev.hash, LEDGER_HASH_LEN);
        v->head = position;
        expected++;
    }
    if (rc != SQLITE_DONE) {
        rv = storeSqlErr(s, "verify chain");
    }
out_reset:
    sqlite3_reset(stmt);
    return rv;
}

/* Cursor over the streams table, in name order. */
struct headCursor {
    sqlite3_stmt *stmt;
    bool valid; /* stmt is on a row. */
};

static int headNext(ledger_store *s, struct headCursor *c)
{
    int rc = sqlite3_step(c->stmt);
    c->valid = rc == SQLITE_ROW;
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        return storeSqlErr(s, "verify: read streams");
    }
    return LEDGER_STORE_OK;
}

static const char *headName(struct headCursor *c)
{
    const char *name = (const char *)sqlite3_column_text(c->stmt, 0);
    return name != NULL ? name : "";
}

/* A finished group of events of one stream. */
struct group {
    char name[LEDGER_STREAM_MAX + 1];
    uint64_t last_seq;
    uint64_t last_position;
    uint8_t last_hash[LEDGER_HASH_LEN];
};

/* Check `g` against the streams table, skipping (and reporting) rows for
 * names without events on the way. */
static int checkGroup(ledger_store *s, struct verifyState *v,
                      struct headCursor *c, const struct group *g)
{
    int rv;
    while (c->valid && strcmp(headName(c), g->name) < 0) {
        markBad(v, v->head + 1, "stream %.40s has a head but no events",
                headName(c));
        rv = headNext(s, c);
        if (rv != LEDGER_STORE_OK) {
            return rv;
        }
    }
    if (!c->valid || strcmp(headName(c), g->name) != 0) {
        markBad(v, g->last_position, "stream %.40s has events but no head",
                g->name);
        return LEDGER_STORE_OK;
    }
    if (sqlite3_column_int64(c->stmt, 1) != (sqlite3_int64)g->last_seq ||
        sqlite3_column_bytes(c->stmt, 2) != LEDGER_HASH_LEN ||
        memcmp(sqlite3_column_blob(c->stmt, 2), g->last_hash,
               LEDGER_HASH_LEN) != 0) {
        markBad(v, g->last_position,
                "stream %.40s: head does not match its last event (seq %llu)",
                g->name, (unsigned long long)g->last_seq);
    }
    return headNext(s, c);
}

static int verifyStreams(ledger_store *s, struct verifyState *v)
{
    struct headCursor c = {NULL, false};
    struct group g;
    sqlite3_stmt *stmt;
    bool in_group = false;
    int rv;
    int rc;

    rv = storeHeadsFlush(s); /* The table as the transaction has it. */
    if (rv == LEDGER_STORE_OK) {
        rv = storeStmt(s, STMT_STREAM_LIST, &c.stmt);
    }
    if (rv != LEDGER_STORE_OK) {
        return rv;
    }
    rv = storeStmt(s, STMT_VERIFY_SEQS, &stmt);
    if (rv != LEDGER_STORE_OK) {
        return rv;
    }
    rv = headNext(s, &c);
    if (rv != LEDGER_STORE_OK) {
        goto out_reset;
    }
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(stmt, 0);
        uint64_t seq = (uint64_t)sqlite3_column_int64(stmt, 1);
        uint64_t position = (uint64_t)sqlite3_column_int64(stmt, 2);
        if (name == NULL || strlen(name) > LEDGER_STREAM_MAX) {
            markBad(v, position, "position %llu: malformed stream name",
                    (unsigned long long)position);
            continue;
        }
        if (!in_group || strcmp(name, g.name) != 0) {
            if (in_group) {
                rv = checkGroup(s, v, &c, &g);
                if (rv != LEDGER_STORE_OK) {
                    goto out_reset;
                }
            }
            memset(&g, 0, sizeof g);
            strcpy(g.name, name);
            in_group = true;
        }
        if (seq != g.last_seq + 1) {
            markBad(v, position, "stream %.40s: seq %llu where %llu expected",
                    name, (unsigned long long)seq,
                    (unsigned long long)(g.last_seq + 1));
        } else if (position <= g.last_position) {
            markBad(v, position,
                    "stream %.40s: seq %llu precedes seq %llu in position",
                    name, (unsigned long long)seq,
                    (unsigned long long)g.last_seq);
        }
        g.last_seq = seq;
        g.last_position = position;
        if (sqlite3_column_bytes(stmt, 3) == LEDGER_HASH_LEN) {
            memcpy(g.last_hash, sqlite3_column_blob(stmt, 3), LEDGER_HASH_LEN);
        } else {
            markBad(v, position, "position %llu: malformed hash",
                    (unsigned long long)position);
            memset(g.last_hash, 0, LEDGER_HASH_LEN);
        }
    }
    if (rc != SQLITE_DONE) {
        rv = storeSqlErr(s, "verify streams");
        goto out_reset;
    }
    if (in_group) {
        rv = checkGroup(s, v, &c, &g);
        if (rv != LEDGER_STORE_OK) {
            goto out_reset;
        }
    }
    while (c.valid) {
        markBad(v, v->head + 1, "stream %.40s has a head but no events",
                headName(&c));
        rv = headNext(s, &c);
        if (rv != LEDGER_STORE_OK) {
            goto out_reset;
        }
    }
out_reset:
    sqlite3_reset(stmt);
    sqlite3_reset(c.stmt);
    return rv;
}

int ledger_store_verify(ledger_store *s, struct ledger_verify_result *out)
{
    struct verifyState v;
    bool opened;
    int rv;

    if (out == NULL) {
        return storeErrf(s, LEDGER_STORE_EINVAL, "verify: no output");
    }
    memset(&v, 0, sizeof v);
    memset(out, 0, sizeof *out);
    rv = storeReadBegin(s, &opened);
    if (rv != LEDGER_STORE_OK) {
        return rv;
    }
    rv = verifyChain(s, &v);
    if (rv != LEDGER_STORE_OK) {
        goto out_end_read;
    }
    rv = verifyStreams(s, &v);
    if (rv != LEDGER_STORE_OK) {
        goto out_end_read;
    }
    out->ok = !v.found;
    out->first_bad_position = v.found && v.bad == 0 ? 1 : v.bad;
    out->applied_position = !v.found ? v.head : v.bad > 0 ? v.bad - 1 : 0;
    memcpy(out->reason, v.reason, sizeof out->reason);
    if (out->applied_position > 0) {
        rv = ledger_store_hash_at(s, out->applied_position, out->hash);
    }

out_end_read:
    storeReadEnd(s, opened);
    return rv;
}
