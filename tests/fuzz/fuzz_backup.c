/* Fuzz target: the backup reader (store/backup.c: ledger_backup_verify,
 * then ledger_backup_seed when it passes, as `ledgerd --restore` does).
 *
 * A backup is an SQLite file; mutating its pages mostly exercises SQLite's
 * own (heavily fuzzed) file parser. What ledger adds is the reading of the
 * tables' contents, so the input here is SQL: the statements that build the
 * file (the seeds are `sqlite3 backup.db .dump` of real backups, then
 * edited). Each statement runs on a fresh file, failures skipped, under an
 * authorizer that allows only schema and row changes (no ATTACH, VACUUM or
 * PRAGMA: nothing may touch another file), a step budget and a length
 * limit; then the file is read as a backup.
 *
 * Properties: the reader answers (no crash, leak, UB or hang); a check
 * that could not run says why; a passed check saw exactly `position`
 * events; a failed one says why; seeding a passed backup works and leaves
 * a store. */
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "fuzz.h"
#include "store/backup.h"

static char dir[64];

static int allow(void *arg, int action, const char *a, const char *b,
                 const char *c, const char *d)
{
    (void)arg, (void)a, (void)b, (void)c, (void)d;
    switch (action) {
    case SQLITE_CREATE_TABLE:
    case SQLITE_CREATE_INDEX:
    case SQLITE_CREATE_VIEW:
    case SQLITE_DROP_TABLE:
    case SQLITE_DROP_INDEX:
    case SQLITE_DROP_VIEW:
    case SQLITE_INSERT:
    case SQLITE_UPDATE:
    case SQLITE_DELETE:
    case SQLITE_READ:
    case SQLITE_SELECT:
    case SQLITE_FUNCTION:
    case SQLITE_TRANSACTION:
    case SQLITE_SAVEPOINT:
    case SQLITE_RECURSIVE:
    case SQLITE_ALTER_TABLE:
        return SQLITE_OK;
    default:
        return SQLITE_DENY;
    }
}

static int budget(void *arg)
{
    return ++*(unsigned *)arg > 2000; /* x 1000 VM steps */
}

static void removeFiles(const char *path)
{
    static const char *suffix[] = {"",     "-journal", "-wal",
                                   "-shm", ".seed",    ".seed-journal"};
    char p[128];
    for (size_t i = 0; i < sizeof suffix / sizeof suffix[0]; i++) {
        snprintf(p, sizeof p, "%s%s", path, suffix[i]);
        unlink(p);
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    snprintf(dir, sizeof dir, "%s/ledger-fuzz-backup-XXXXXX",
             access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
    CHECK(mkdtemp(dir) != NULL);
    return 0;
}

/* Build the file from the SQL in data; 0, or -1 when it cannot be made. */
static int build(const char *path, const uint8_t *data, size_t size)
{
    char *sql = malloc(size + 1);
    const char *p;
    unsigned steps = 0;
    sqlite3 *db;

    CHECK(sql != NULL);
    memcpy(sql, data, size);
    sql[size] = '\0';
    /* Belt and braces with the authorizer: nothing may name a file. */
    if (strcasestr(sql, "attach") != NULL ||
        strcasestr(sql, "vacuum") != NULL) {
        free(sql);
        return -1;
    }
    if (sqlite3_open(path, &db) != SQLITE_OK) {
        sqlite3_close(db);
        free(sql);
        return -1;
    }
    /* Building is not what is tested: no journal, no fsync. */
    sqlite3_exec(db, "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF", NULL,
                 NULL, NULL);
    sqlite3_limit(db, SQLITE_LIMIT_LENGTH, 1 << 20);
    sqlite3_set_authorizer(db, allow, NULL);
    sqlite3_progress_handler(db, 1000, budget, &steps);
    p = sql;
    while (*p != '\0') {
        sqlite3_stmt *st = NULL;
        const char *tail = NULL;
        int rc = sqlite3_prepare_v2(db, p, -1, &st, &tail);
        if (rc == SQLITE_OK && st != NULL) {
            while (sqlite3_step(st) == SQLITE_ROW) {
            }
        }
        sqlite3_finalize(st);
        if (tail == NULL || tail <= p) {
            /* No progress: skip to after the next ';'. */
            const char *semi = strchr(p, ';');
            if (semi == NULL) {
                break;
            }
            tail = semi + 1;
        }
        p = tail;
    }
    sqlite3_exec(db, "COMMIT", NULL, NULL, NULL); /* an open transaction */
    sqlite3_close(db);
    free(sql);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[128];
    char seeded[128];
    struct ledger_backup_check chk;
    struct ledger_backup_meta meta;
    char err[512];
    int rv;

    snprintf(path, sizeof path, "%s/backup.db", dir);
    snprintf(seeded, sizeof seeded, "%s/seeded.db", dir);
    removeFiles(path);
    removeFiles(seeded);
    if (build(path, data, size) != 0) {
        removeFiles(path);
        return 0;
    }
    err[0] = '\0';
    rv = ledger_backup_verify(path, &chk, err, sizeof err);
    if (rv != LEDGER_STORE_OK) {
        CHECK(err[0] != '\0');
    } else if (!chk.ok) {
        CHECK(chk.reason[0] != '\0');
    } else {
        CHECK(chk.events == chk.meta.position);
        err[0] = '\0';
        rv = ledger_backup_seed(path, seeded, &meta, err, sizeof err);
        CHECK(rv == LEDGER_STORE_OK || err[0] != '\0');
        CHECK(rv != LEDGER_STORE_OK || access(seeded, F_OK) == 0);
    }
    removeFiles(path);
    removeFiles(seeded);
    return 0;
}
