/* Schema and migrations.
 *
 * migrations[i] takes a store from schema_version i to i + 1; the version
 * lives in meta('schema_version'). A fresh file is version 0 (no meta
 * table). At open, ledger_store_open first calls schemaCheck, which only
 * reads: a store newer than LEDGER_SCHEMA_VERSION is refused before anything
 * (not even the journal mode) is written. Then schemaMigrate runs the
 * pending steps and bumps schema_version in ONE transaction (BEGIN
 * IMMEDIATE, version re-read inside it), so a crash leaves either the old or
 * the new schema, never a mix.
 *
 * Policy: steps are append-only. A released step is never edited; a change
 * is a new step plus LEDGER_SCHEMA_VERSION + 1. Steps use IF NOT EXISTS /
 * OR IGNORE where they can, so running one twice is harmless. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "schema.h"

/* Version 1: the initial schema. */
static const char migration1[] =
    "CREATE TABLE IF NOT EXISTS meta ("
    "  key TEXT PRIMARY KEY,"
    "  value);"
    "CREATE TABLE IF NOT EXISTS events ("
    "  position INTEGER PRIMARY KEY,"
    "  stream TEXT NOT NULL,"
    "  seq INTEGER NOT NULL,"
    "  type TEXT NOT NULL,"
    "  data TEXT NOT NULL,"
    "  id TEXT,"
    "  ts INTEGER NOT NULL,"
    "  prev_hash BLOB NOT NULL,"
    "  hash BLOB NOT NULL,"
    "  UNIQUE (stream, seq));"
    "CREATE UNIQUE INDEX IF NOT EXISTS events_stream_id"
    "  ON events (stream, id) WHERE id IS NOT NULL;"
    "CREATE TABLE IF NOT EXISTS streams ("
    "  name TEXT PRIMARY KEY,"
    "  last_seq INTEGER NOT NULL,"
    "  head_hash BLOB NOT NULL);"
    "CREATE TABLE IF NOT EXISTS checkpoints ("
    "  stream TEXT NOT NULL,"
    "  name TEXT NOT NULL,"
    "  value TEXT NOT NULL,"
    "  PRIMARY KEY (stream, name));"
    "CREATE TABLE IF NOT EXISTS members ("
    "  id INTEGER PRIMARY KEY,"
    "  raft_addr TEXT NOT NULL,"
    "  api_addr TEXT NOT NULL);"
    "INSERT OR IGNORE INTO meta (key, value) VALUES"
    "  ('cluster_id', ''), ('applied_index', 0);";

/* Version 2: a failure-zone label per member (ledgerd --zone), '' for
 * none. Every member of a version 1 store gets ''. */
static const char migration2[] =
    "ALTER TABLE members ADD COLUMN zone TEXT NOT NULL DEFAULT '';";

static const char *const migrations[] = {
    migration1,
    migration2,
};

_Static_assert(sizeof migrations / sizeof migrations[0] ==
                   LEDGER_SCHEMA_VERSION,
               "one migration step per schema version");

static bool textIsInteger(const char *t)
{
    size_t i;
    if (t == NULL || t[0] == '\0' || strlen(t) > 9) {
        return false;
    }
    for (i = 0; t[i] != '\0'; i++) {
        if (t[i] < '0' || t[i] > '9') {
            return false;
        }
    }
    return true;
}

/* Read schema_version; 0 when there is no meta table. */
static int readVersion(ledger_store *s, int *version)
{
    sqlite3_stmt *stmt = NULL;
    int rc;
    int rv;

    rc = sqlite3_prepare_v2(s->db,
                            "SELECT count(*) FROM sqlite_master"
                            " WHERE type = 'table' AND name = 'meta'",
                            -1, &stmt, NULL);
    if (rc != SQLITE_OK) {
        return storeSqlErr(s, "read schema");
    }
    rc = sqlite3_step(stmt);
    if (rc != SQLITE_ROW) {
        rv = storeSqlErr(s, "read schema");
        goto out_finalize;
    }
    if (sqlite3_column_int64(stmt, 0) == 0) {
        *version = 0;
        rv = LEDGER_STORE_OK;
        goto out_finalize;
    }
    sqlite3_finalize(stmt);
    stmt = NULL;

    rc = sqlite3_prepare_v2(
        s->db, "SELECT value FROM meta WHERE key = 'schema_version'", -1, &stmt,
        NULL);
    if (rc != SQLITE_OK) {
        return storeSqlErr(s, "read schema_version");
    }
    rc = sqlite3_step(stmt);
    if (rc == SQLITE_DONE) {
        rv = storeErrf(s, LEDGER_STORE_ECORRUPT,
                       "store %s: meta table has no schema_version", s->path);
        goto out_finalize;
    }
    if (rc != SQLITE_ROW) {
        rv = storeSqlErr(s, "read schema_version");
        goto out_finalize;
    }
    /* An integer, or text holding one (meta.value has no type affinity,
     * so a hand edit may store '99'): both name a version. */
    if ((sqlite3_column_type(stmt, 0) != SQLITE_INTEGER &&
         !(sqlite3_column_type(stmt, 0) == SQLITE_TEXT &&
           textIsInteger((const char *)sqlite3_column_text(stmt, 0)))) ||
        sqlite3_column_int64(stmt, 0) < 1 ||
        sqlite3_column_int64(stmt, 0) > 1000000) {
        rv = storeErrf(s, LEDGER_STORE_ECORRUPT,
                       "store %s: schema_version is not a positive integer",
                       s->path);
        goto out_finalize;
    }
    *version = (int)sqlite3_column_int64(stmt, 0);
    rv = LEDGER_STORE_OK;

out_finalize:
    sqlite3_finalize(stmt);
    return rv;
}

int schemaCheck(ledger_store *s, int *version)
{
    int rv = readVersion(s, version);
    if (rv != LEDGER_STORE_OK) {
        return rv;
    }
    if (*version > LEDGER_SCHEMA_VERSION) {
        return storeErrf(s, LEDGER_STORE_ESCHEMA,
                         "store %s has schema version %d, this ledgerd "
                         "supports up to %d: upgrade ledgerd",
                         s->path, *version, LEDGER_SCHEMA_VERSION);
    }
    return LEDGER_STORE_OK;
}

int schemaMigrate(ledger_store *s)
{
    char *errmsg = NULL;
    char sql[96];
    int version;
    int rv;

    if (sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
        return storeSqlErr(s, "migrate: begin");
    }
    /* Re-read inside the transaction: another process may have migrated. */
    rv = schemaCheck(s, &version);
    if (rv != LEDGER_STORE_OK) {
        goto out_rollback;
    }
    for (int v = version; v < LEDGER_SCHEMA_VERSION; v++) {
        if (sqlite3_exec(s->db, migrations[v], NULL, NULL, &errmsg) !=
            SQLITE_OK) {
            rv = storeErrf(s, LEDGER_STORE_EIO,
                           "migrate store %s to schema version %d: %s", s->path,
                           v + 1, errmsg ? errmsg : "unknown");
            sqlite3_free(errmsg);
            goto out_rollback;
        }
    }
    if (version < LEDGER_SCHEMA_VERSION) {
        snprintf(sql, sizeof sql,
                 "INSERT OR REPLACE INTO meta (key, value)"
                 " VALUES ('schema_version', %d)",
                 LEDGER_SCHEMA_VERSION);
        if (sqlite3_exec(s->db, sql, NULL, NULL, NULL) != SQLITE_OK) {
            rv = storeSqlErr(s, "migrate: set schema_version");
            goto out_rollback;
        }
    }
    if (sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
        rv = storeSqlErr(s, "migrate: commit");
        goto out_rollback;
    }
    return LEDGER_STORE_OK;

out_rollback:
    sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    return rv;
}
