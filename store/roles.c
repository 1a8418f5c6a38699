/* Automatic-roles targets in the store: one meta row, key 'roles', value
 * "VOTERS STANDBYS DEAD_AFTER_S" (text). Written only by the replicated
 * state machine (an OP_ROLES entry), so every replica holds the same
 * targets; carried by snapshots. No row: all 0 (manual roles). */
#include <stdio.h>
#include <string.h>

#include "internal.h"

int ledger_store_set_roles(ledger_store *s, const struct ledger_roles *r)
{
    sqlite3_stmt *stmt = NULL;
    char text[64];
    int rv = storeRequireTx(s, "set roles");
    if (rv != LEDGER_STORE_OK) {
        return rv;
    }
    snprintf(text, sizeof text, "%u %u %u", r->voters, r->standbys,
             r->dead_after_s);
    if (sqlite3_prepare_v2(s->db,
                           "INSERT OR REPLACE INTO meta (key, value)"
                           " VALUES ('roles', ?)",
                           -1, &stmt, NULL) != SQLITE_OK) {
        return storeSqlErr(s, "set roles");
    }
    sqlite3_bind_text(stmt, 1, text, -1, SQLITE_STATIC);
    if (sqlite3_step(stmt) != SQLITE_DONE) {
        rv = storeSqlErr(s, "set roles");
    }
    sqlite3_finalize(stmt);
    return rv;
}

int ledger_store_get_roles(ledger_store *s, struct ledger_roles *r)
{
    sqlite3_stmt *stmt = NULL;
    int rv = LEDGER_STORE_OK;
    int rc;

    memset(r, 0, sizeof *r);
    if (sqlite3_prepare_v2(s->db, "SELECT value FROM meta WHERE key = 'roles'",
                           -1, &stmt, NULL) != SQLITE_OK) {
        return storeSqlErr(s, "get roles");
    }
    rc = sqlite3_step(stmt);
    if (rc == SQLITE_ROW) {
        const char *t = (const char *)sqlite3_column_text(stmt, 0);
        char tail;
        if (t == NULL || sscanf(t, "%u %u %u%c", &r->voters, &r->standbys,
                                &r->dead_after_s, &tail) != 3) {
            memset(r, 0, sizeof *r);
            rv = storeErrf(s, LEDGER_STORE_ECORRUPT,
                           "store %s: meta roles is malformed", s->path);
        }
    } else if (rc != SQLITE_DONE) {
        rv = storeSqlErr(s, "get roles");
    }
    sqlite3_finalize(stmt);
    return rv;
}
