/* Stream heads inside a write transaction: a small cache in front of the
 * streams table.
 *
 * Every append reads its stream's head (last_seq, head_hash) and writes it
 * back: a SELECT and an INSERT OR REPLACE per request, a fifth of a
 * follower's CPU when each request carries one event. The replication
 * layer keeps one write transaction open across many entries
 * (replication/apply_tx.c), so within it the heads of busy streams are
 * read once and written once, at commit.
 *
 * Invariants:
 * - Outside a write transaction the cache is empty: every read goes to
 *   SQLite (the cache never outlives begin..commit/rollback).
 * - Inside one, a cached head is the stream's current head: either read
 *   from the table in this transaction, or written by an append in it
 *   (dirty). storeHeadsFlush writes every dirty head to the table; commit
 *   flushes before it records applied_index and commits, and whatever
 *   reads the streams table with SQL (STMT_STREAM_LIST) flushes first.
 * - An append updates the cache only after its savepoint is released, so
 *   a failed append leaves the cache as it was; a rollback of the whole
 *   transaction clears the cache with it.
 * - A full cache is flushed and emptied, never grown: memory is fixed
 *   (STORE__HEADS slots per handle).
 */
#include <stdio.h>
#include <string.h>

#include "internal.h"

static uint32_t nameHash(const char *name)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
        h = (h ^ *p) * 16777619u;
    }
    return h;
}

/* The slot holding `name`, or the empty slot where it would go, or NULL
 * when the table is full and `name` is not in it. */
static struct storeHead *slotFor(ledger_store *s, const char *name)
{
    uint32_t i = nameHash(name) % STORE__HEADS;
    for (unsigned n = 0; n < STORE__HEADS; n++) {
        struct storeHead *h = &s->heads[i];
        if (!h->used || strcmp(h->name, name) == 0) {
            return h;
        }
        i = (i + 1) % STORE__HEADS;
    }
    return NULL;
}

void storeHeadsClear(ledger_store *s)
{
    if (s->n_heads > 0) {
        for (unsigned i = 0; i < STORE__HEADS; i++) {
            s->heads[i].used = false;
        }
        s->n_heads = 0;
    }
}

static int putRow(ledger_store *s, const char *stream, uint64_t last_seq,
                  const uint8_t hash[LEDGER_HASH_LEN])
{
    sqlite3_stmt *stmt;
    int rv = storeStmt(s, STMT_STREAM_PUT, &stmt);
    if (rv != LEDGER_STORE_OK) {
        return rv;
    }
    sqlite3_bind_text(stmt, 1, stream, -1, SQLITE_STATIC);
    sqlite3_bind_int64(stmt, 2, (sqlite3_int64)last_seq);
    sqlite3_bind_blob(stmt, 3, hash, LEDGER_HASH_LEN, SQLITE_STATIC);
    if (sqlite3_step(stmt) != SQLITE_DONE) {
        rv = storeSqlErr(s, "update stream head");
    }
    sqlite3_reset(stmt);
    return rv;
}

int storeHeadsFlush(ledger_store *s)
{
    for (unsigned i = 0; i < STORE__HEADS && s->n_heads > 0; i++) {
        struct storeHead *h = &s->heads[i];
        if (h->used && h->dirty) {
            int rv = putRow(s, h->name, h->last_seq, h->hash);
            if (rv != LEDGER_STORE_OK) {
                return rv;
            }
            h->dirty = false;
        }
    }
    return LEDGER_STORE_OK;
}

/* A slot for `name` (existing or new), flushing and emptying a full
 * cache first. NULL only if that flush fails. */
static struct storeHead *claim(ledger_store *s, const char *name, int *rv)
{
    struct storeHead *h = slotFor(s, name);
    *rv = LEDGER_STORE_OK;
    if (h == NULL || (!h->used && s->n_heads + 1 >= STORE__HEADS)) {
        *rv = storeHeadsFlush(s);
        if (*rv != LEDGER_STORE_OK) {
            return NULL;
        }
        storeHeadsClear(s);
        h = slotFor(s, name);
    }
    if (!h->used) {
        h->used = true;
        h->dirty = false;
        snprintf(h->name, sizeof h->name, "%s", name);
        s->n_heads++;
    }
    return h;
}

int storeHeadGet(ledger_store *s, const char *stream, uint64_t *last_seq,
                 uint8_t hash[LEDGER_HASH_LEN])
{
    struct storeHead *h;
    int rv;

    if (!s->in_tx || strlen(stream) > LEDGER_STREAM_MAX) {
        return storeStreamGet(s, stream, last_seq, hash);
    }
    h = slotFor(s, stream);
    if (h != NULL && h->used) {
        *last_seq = h->last_seq;
        memcpy(hash, h->hash, LEDGER_HASH_LEN);
        return LEDGER_STORE_OK;
    }
    rv = storeStreamGet(s, stream, last_seq, hash);
    if (rv != LEDGER_STORE_OK) {
        return rv;
    }
    h = claim(s, stream, &rv);
    if (h != NULL) {
        h->last_seq = *last_seq;
        memcpy(h->hash, hash, LEDGER_HASH_LEN);
    }
    return rv;
}

int storeHeadPut(ledger_store *s, const char *stream, uint64_t last_seq,
                 const uint8_t hash[LEDGER_HASH_LEN])
{
    struct storeHead *h;
    int rv;

    if (!s->in_tx || strlen(stream) > LEDGER_STREAM_MAX) {
        return putRow(s, stream, last_seq, hash);
    }
    h = claim(s, stream, &rv);
    if (h == NULL) {
        return rv;
    }
    h->last_seq = last_seq;
    memcpy(h->hash, hash, LEDGER_HASH_LEN);
    h->dirty = true;
    return LEDGER_STORE_OK;
}
