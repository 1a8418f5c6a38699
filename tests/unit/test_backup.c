/* Unit tests for store/backup.c: a backup taken while a writer is mid
 * transaction holds exactly the committed state and its stamps; it verifies;
 * tampering, a newer schema and files that are not backups are refused with
 * a reason; seeding makes a store for a new cluster with the same events.
 * Every test runs on real SQLite files in its own temporary directory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/backup.h"
#include "store/store.h"
#include "tmpdir.h"

struct fixture {
    char dir[128];
    char path[256];   /* The live store. */
    char backup[256]; /* Where a test writes its backup. */
    ledger_store *s;
};

static int setUp(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    char err[256];
    assert_non_null(f);
    assert_int_equal(tmpdirCreate(f->dir, sizeof f->dir), 0);
    snprintf(f->path, sizeof f->path, "%s/ledger.db", f->dir);
    snprintf(f->backup, sizeof f->backup, "%s/backup.db", f->dir);
    assert_int_equal(ledger_store_open(f->path, &f->s, err, sizeof err), 0);
    *state = f;
    return 0;
}

static int tearDown(void **state)
{
    struct fixture *f = *state;
    ledger_store_close(f->s);
    assert_int_equal(tmpdirRemove(f->dir), 0);
    free(f);
    return 0;
}

#define ASSERT_OK(EXPR)                                                        \
    do {                                                                       \
        int rv_ = (EXPR);                                                      \
        if (rv_ != 0) {                                                        \
            fail_msg("%s -> %d: %s", #EXPR, rv_, ledger_store_errmsg(f->s));   \
        }                                                                      \
    } while (0)

static void rawExec(const char *path, const char *sql)
{
    sqlite3 *db;
    char *msg = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        fail_msg("raw sql %s: %s", sql, msg);
    }
    assert_int_equal(sqlite3_close(db), SQLITE_OK);
}

/* First column of the first row of `sql`, as text. */
static void rawText(const char *path, const char *sql, char *out, size_t len)
{
    sqlite3 *db;
    sqlite3_stmt *stmt;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &stmt, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(stmt), SQLITE_ROW);
    snprintf(out, len, "%s", (const char *)sqlite3_column_text(stmt, 0));
    sqlite3_finalize(stmt);
    assert_int_equal(sqlite3_close(db), SQLITE_OK);
}

/* A cluster of n events over three streams, a checkpoint and two members,
 * committed at applied_index 7. */
static void populate(struct fixture *f, unsigned n)
{
    struct ledger_append_result r;
    static const char *streams[] = {"orders", "audit", "x.y:z-1"};
    ASSERT_OK(ledger_store_begin(f->s));
    ASSERT_OK(ledger_store_init_cluster(f->s, "c0ffee"));
    ASSERT_OK(ledger_store_put_member(f->s, 1, "127.0.0.1:1", "127.0.0.1:2"));
    ASSERT_OK(ledger_store_put_member(f->s, 2, "127.0.0.1:3", "127.0.0.1:4"));
    for (unsigned i = 0; i < n; i++) {
        char id[32];
        char data[64];
        struct ledger_event_in e = {"t", id, data, 0};
        snprintf(id, sizeof id, "id-%u", i);
        e.data_len = (size_t)snprintf(data, sizeof data, "{\"i\":%u}", i);
        ASSERT_OK(ledger_store_append(f->s, streams[i % 3], &e, 1, false, 0,
                                      1000 + i, &r));
    }
    ASSERT_OK(ledger_store_put_checkpoint(f->s, "orders", "cp", "42", 2));
    ASSERT_OK(ledger_store_commit(f->s, 7));
}

/* A backup taken while the writer holds an uncommitted transaction has the
 * committed state only, stamped from it; it is one file in rollback mode
 * and verifies. */
static void test_create_consistent(void **state)
{
    struct fixture *f = *state;
    struct ledger_store_state st;
    struct ledger_backup_meta m;
    struct ledger_backup_check c;
    struct ledger_append_result r;
    struct ledger_event_in e = {"late", "late-1", "1", 1};
    char err[256];
    char text[128];
    char hex[LEDGER_HASH_HEX_LEN + 1];
    char wal[300];

    populate(f, 30);
    ASSERT_OK(ledger_store_get_state(f->s, &st));
    ASSERT_OK(ledger_store_begin(f->s));
    ASSERT_OK(ledger_store_append(f->s, "orders", &e, 1, false, 0, 5000, &r));
    if (ledger_backup_create(f->path, f->backup, 9, &m, err, sizeof err) != 0) {
        fail_msg("create: %s", err);
    }
    ASSERT_OK(ledger_store_commit(f->s, 8));

    assert_string_equal(m.cluster_id, "c0ffee");
    assert_int_equal(m.position, 30);
    assert_memory_equal(m.head_hash, st.head_hash, LEDGER_HASH_LEN);
    assert_int_equal(m.raft_index, 7);
    assert_int_equal(m.raft_term, 9);
    assert_int_equal(m.schema_version, LEDGER_SCHEMA_VERSION);
    assert_int_equal(strlen(m.created_at), 20);

    rawText(f->backup, "PRAGMA journal_mode", text, sizeof text);
    assert_string_equal(text, "delete");
    snprintf(wal, sizeof wal, "%s-wal", f->backup);
    assert_int_not_equal(access(wal, F_OK), 0);
    rawText(f->backup, "SELECT head_hash FROM backup_meta", text, sizeof text);
    ledger_hash_hex(st.head_hash, hex);
    assert_string_equal(text, hex);
    rawText(f->backup, "SELECT count(*) FROM events", text, sizeof text);
    assert_string_equal(text, "30");

    if (ledger_backup_verify(f->backup, &c, err, sizeof err) != 0) {
        fail_msg("verify: %s", err);
    }
    if (!c.ok) {
        fail_msg("verify: %s", c.reason);
    }
    assert_int_equal(c.events, 30);
    assert_int_equal(c.meta.position, 30);
    assert_string_equal(c.meta.cluster_id, "c0ffee");
}

/* An existing destination is refused and left alone. */
static void test_create_refuses_existing(void **state)
{
    struct fixture *f = *state;
    struct ledger_backup_meta m;
    char err[256];
    struct stat sb;
    FILE *fp = fopen(f->backup, "w");
    assert_non_null(fp);
    fputs("keep", fp);
    fclose(fp);
    populate(f, 3);
    assert_int_not_equal(
        ledger_backup_create(f->path, f->backup, 1, &m, err, sizeof err), 0);
    assert_non_null(strstr(err, "File exists"));
    assert_int_equal(stat(f->backup, &sb), 0);
    assert_int_equal(sb.st_size, 4);
}

static void makeBackup(struct fixture *f, unsigned n)
{
    struct ledger_backup_meta m;
    char err[256];
    populate(f, n);
    if (ledger_backup_create(f->path, f->backup, 3, &m, err, sizeof err) != 0) {
        fail_msg("create: %s", err);
    }
}

static void expectBad(struct fixture *f, uint64_t first_bad, const char *why)
{
    struct ledger_backup_check c;
    char err[256];
    if (ledger_backup_verify(f->backup, &c, err, sizeof err) != 0) {
        fail_msg("verify did not run: %s", err);
    }
    assert_false(c.ok);
    assert_int_equal(c.first_bad_position, first_bad);
    if (strstr(c.reason, why) == NULL) {
        fail_msg("reason '%s' lacks '%s'", c.reason, why);
    }
}

/* A changed event is found at its position. */
static void test_verify_tampered_event(void **state)
{
    struct fixture *f = *state;
    makeBackup(f, 20);
    rawExec(f->backup, "UPDATE events SET data = '{\"i\":99}' "
                       "WHERE position = 12");
    expectBad(f, 12, "does not match");
}

/* Stamps that disagree with the contents. */
static void test_verify_tampered_stamps(void **state)
{
    struct fixture *f = *state;
    makeBackup(f, 20);
    rawExec(f->backup, "UPDATE backup_meta SET position = 25");
    expectBad(f, 21, "position 25");
    rawExec(f->backup, "UPDATE backup_meta SET position = 20, "
                       "head_hash = '" /* 64 zeros */
                       "0000000000000000000000000000000000000000000000000000"
                       "000000000000'");
    expectBad(f, 20, "hash");
    rawExec(f->backup, "UPDATE backup_meta SET cluster_id = 'other'");
    expectBad(f, 0, "cluster other");
}

/* A newer schema, a file that is no backup, garbage and a missing file:
 * each an error with its reason, nothing verified. */
static void test_verify_refusals(void **state)
{
    struct fixture *f = *state;
    struct ledger_backup_check c;
    char err[256];
    FILE *fp;

    makeBackup(f, 5);
    rawExec(f->backup, "UPDATE backup_meta SET schema_version = 99;"
                       "UPDATE meta SET value = 99 "
                       "WHERE key = 'schema_version'");
    assert_int_equal(ledger_backup_verify(f->backup, &c, err, sizeof err),
                     LEDGER_STORE_ESCHEMA);
    assert_non_null(strstr(err, "schema version 99"));
    assert_non_null(strstr(err, "newer ledgerd"));

    /* The live store is a SQLite file but no backup. */
    assert_int_equal(ledger_backup_verify(f->path, &c, err, sizeof err),
                     LEDGER_STORE_ECORRUPT);
    assert_non_null(strstr(err, "not a ledger backup"));

    fp = fopen(f->backup, "w");
    assert_non_null(fp);
    fputs("this is not a database at all, just some text", fp);
    fclose(fp);
    assert_int_not_equal(ledger_backup_verify(f->backup, &c, err, sizeof err),
                         0);
    assert_false(c.ok);

    unlink(f->backup);
    assert_int_equal(ledger_backup_verify(f->backup, &c, err, sizeof err),
                     LEDGER_STORE_EIO);
    assert_non_null(strstr(err, "No such file"));
}

/* A truncated backup (half its pages gone) never verifies. */
static void test_verify_truncated(void **state)
{
    struct fixture *f = *state;
    struct ledger_backup_check c;
    struct stat sb;
    char err[256];
    int rv;

    makeBackup(f, 3000);
    assert_int_equal(stat(f->backup, &sb), 0);
    assert_int_equal(truncate(f->backup, sb.st_size / 2), 0);
    rv = ledger_backup_verify(f->backup, &c, err, sizeof err);
    assert_true(rv != 0 || !c.ok);
}

/* Seeding: same events, checkpoints and hashes; a cleared cluster id, the
 * old one as restored_from, applied_index 0, no members; an existing store
 * is refused. */
static void test_seed(void **state)
{
    struct fixture *f = *state;
    struct ledger_store_state before;
    struct ledger_store_state after;
    struct ledger_backup_meta m;
    struct ledger_verify_result v;
    ledger_store *seeded = NULL;
    char seed_path[300];
    char err[256];
    char *value = NULL;
    size_t len = 0;
    uint8_t h1[LEDGER_HASH_LEN];
    uint8_t h2[LEDGER_HASH_LEN];
    int n_members = 0;

    makeBackup(f, 50);
    ASSERT_OK(ledger_store_get_state(f->s, &before));
    snprintf(seed_path, sizeof seed_path, "%s/seeded.db", f->dir);
    if (ledger_backup_seed(f->backup, seed_path, &m, err, sizeof err) != 0) {
        fail_msg("seed: %s", err);
    }
    assert_string_equal(m.cluster_id, "c0ffee");
    if (ledger_store_open(seed_path, &seeded, err, sizeof err) != 0) {
        fail_msg("open seeded: %s", err);
    }
    assert_int_equal(ledger_store_get_state(seeded, &after), 0);
    assert_string_equal(after.cluster_id, "");
    assert_string_equal(after.restored_from, "c0ffee");
    assert_int_equal(after.applied_index, 0);
    assert_int_equal(after.position, before.position);
    assert_memory_equal(after.head_hash, before.head_hash, LEDGER_HASH_LEN);
    for (uint64_t p = 1; p <= before.position; p++) {
        ASSERT_OK(ledger_store_hash_at(f->s, p, h1));
        assert_int_equal(ledger_store_hash_at(seeded, p, h2), 0);
        assert_memory_equal(h1, h2, LEDGER_HASH_LEN);
    }
    assert_int_equal(
        ledger_store_get_checkpoint(seeded, "orders", "cp", &value, &len), 0);
    assert_string_equal(value, "42");
    free(value);
    assert_int_equal(ledger_store_verify(seeded, &v), 0);
    assert_true(v.ok);
    ledger_store_close(seeded);
    {
        char text[32];
        rawText(seed_path, "SELECT count(*) FROM members", text, sizeof text);
        n_members = atoi(text);
        rawText(seed_path,
                "SELECT count(*) FROM sqlite_master WHERE name = "
                "'backup_meta'",
                text, sizeof text);
        assert_string_equal(text, "0");
    }
    assert_int_equal(n_members, 0);

    assert_int_equal(
        ledger_backup_seed(f->backup, seed_path, &m, err, sizeof err),
        LEDGER_STORE_EINVAL);
    assert_non_null(strstr(err, "exists"));
}

/* restored_from is written in a write transaction and read back. */
static void test_restored_from(void **state)
{
    struct fixture *f = *state;
    struct ledger_store_state st;
    ASSERT_OK(ledger_store_get_state(f->s, &st));
    assert_string_equal(st.restored_from, "");
    assert_int_not_equal(ledger_store_set_restored_from(f->s, "x"), 0);
    ASSERT_OK(ledger_store_begin(f->s));
    ASSERT_OK(ledger_store_set_restored_from(f->s, "abc"));
    ASSERT_OK(ledger_store_commit(f->s, 1));
    ASSERT_OK(ledger_store_get_state(f->s, &st));
    assert_string_equal(st.restored_from, "abc");
}

/* The file checksum is SHA-256 of the bytes. */
static void test_file_sha256(void **state)
{
    struct fixture *f = *state;
    uint8_t h[LEDGER_HASH_LEN];
    char hex[LEDGER_HASH_HEX_LEN + 1];
    char err[256];
    FILE *fp = fopen(f->backup, "w");
    assert_non_null(fp);
    fputs("abc", fp);
    fclose(fp);
    assert_int_equal(ledger_file_sha256(f->backup, h, err, sizeof err), 0);
    ledger_hash_hex(h, hex);
    assert_string_equal(
        hex,
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    unlink(f->backup);
    assert_int_not_equal(ledger_file_sha256(f->backup, h, err, sizeof err), 0);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setUp, tearDown)
    const struct CMUnitTest tests[] = {
        T(test_create_consistent),
        T(test_create_refuses_existing),
        T(test_verify_tampered_event),
        T(test_verify_tampered_stamps),
        T(test_verify_refusals),
        T(test_verify_truncated),
        T(test_seed),
        T(test_restored_from),
        T(test_file_sha256),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
