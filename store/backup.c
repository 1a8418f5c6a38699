/* Backups: create, verify, seed (see store/backup.h for the file format).
 *
 * Create: a read-only connection on the live store and SQLite's backup API
 * copy every page in ONE step (sqlite3_backup_step(-1)), so the copy is the
 * snapshot of one read transaction; in WAL mode that transaction never
 * blocks the writer, which keeps committing to the WAL meanwhile (the
 * checkpointer cannot copy frames newer than our snapshot back until we
 * finish, so the WAL grows for the duration). The destination is written
 * with journal_mode=OFF and synchronous=OFF: it is a new private file,
 * removed on any failure. It is then switched to rollback-journal mode (a
 * single self-contained file) and stamped from its OWN contents, which
 * are the snapshot: stamps and data cannot disagree.
 *
 * Verify: backup_meta first, with a plain read-only connection, so that a
 * newer schema is named as such before the store code refuses it; then the
 * store's own reader (ledger_store_open_reader) for the state and the whole
 * chain (ledger_store_verify): memory stays constant whatever the size.
 *
 * Seed: the same page copy from the backup into STORE.seed, the identity
 * rewritten in one transaction (cluster_id cleared, restored_from set,
 * applied_index 0, members and backup_meta dropped), fsync, rename, fsync
 * of the directory.
 */
#include "store/backup.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <sqlite3.h>

#include "internal.h"

#define BACKUP__CHUNK (1u << 20) /* Bytes read at a time for SHA-256. */

static void errf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void errf(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    if (err == NULL || errlen == 0) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* rc of an sqlite3 call into one of our codes. */
static int sqlCode(int rc)
{
    switch (rc & 0xff) {
    case SQLITE_NOMEM:
        return LEDGER_STORE_ENOMEM;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
        return LEDGER_STORE_ECORRUPT;
    default:
        return LEDGER_STORE_EIO;
    }
}

/* Report db's last error as "<what>: <message>". */
static int sqlFail(sqlite3 *db, int rc, const char *what, char *err,
                   size_t errlen)
{
    errf(err, errlen, "%s: %s", what,
         db != NULL ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
    return sqlCode(rc);
}

static int openDb(const char *path, int flags, sqlite3 **out, char *err,
                  size_t errlen)
{
    int rc = sqlite3_open_v2(path, out, flags | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        int rv;
        if (*out == NULL) {
            errf(err, errlen, "open %s: out of memory", path);
            return LEDGER_STORE_ENOMEM;
        }
        rv = sqlFail(*out, rc, path, err, errlen);
        sqlite3_close(*out);
        *out = NULL;
        return rv;
    }
    sqlite3_extended_result_codes(*out, 1);
    sqlite3_busy_timeout(*out, STORE__BUSY_MS);
    return LEDGER_STORE_OK;
}

/* fsync a file or a directory. */
static int syncPath(const char *path, bool dir, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | (dir ? O_DIRECTORY : 0));
    if (fd < 0) {
        errf(err, errlen, "open %s: %s", path, strerror(errno));
        return LEDGER_STORE_EIO;
    }
    if (fsync(fd) != 0) {
        errf(err, errlen, "fsync %s: %s", path, strerror(errno));
        close(fd);
        return LEDGER_STORE_EIO;
    }
    close(fd);
    return LEDGER_STORE_OK;
}

static void dirOf(const char *path, char *out, size_t len)
{
    const char *slash = strrchr(path, '/');
    if (slash == NULL) {
        snprintf(out, len, ".");
    } else if (slash == path) {
        snprintf(out, len, "/");
    } else {
        snprintf(out, len, "%.*s", (int)(slash - path), path);
    }
}

/* Run one statement; its first column (text) into out when out != NULL. */
static int execOne(sqlite3 *db, const char *sql, char *out, size_t outlen,
                   char *err, size_t errlen)
{
    sqlite3_stmt *stmt = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &stmt, NULL);
    if (rc != SQLITE_OK) {
        return sqlFail(db, rc, sql, err, errlen);
    }
    rc = sqlite3_step(stmt);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        int rv = sqlFail(db, rc, sql, err, errlen);
        sqlite3_finalize(stmt);
        return rv;
    }
    if (out != NULL) {
        const unsigned char *t =
            rc == SQLITE_ROW ? sqlite3_column_text(stmt, 0) : NULL;
        snprintf(out, outlen, "%s", t != NULL ? (const char *)t : "");
    }
    sqlite3_finalize(stmt);
    return LEDGER_STORE_OK;
}

/* Copy every page of src into dst in one step (one read transaction on
 * src). dst is fresh: no journal, no syncs while copying. */
static int copyPages(sqlite3 *src, sqlite3 *dst, const char *what, char *err,
                     size_t errlen)
{
    sqlite3_backup *b;
    int rc;
    int rv;

    rv = execOne(dst, "PRAGMA journal_mode=OFF", NULL, 0, err, errlen);
    if (rv == LEDGER_STORE_OK) {
        rv = execOne(dst, "PRAGMA synchronous=OFF", NULL, 0, err, errlen);
    }
    if (rv != LEDGER_STORE_OK) {
        return rv;
    }
    b = sqlite3_backup_init(dst, "main", src, "main");
    if (b == NULL) {
        return sqlFail(dst, sqlite3_errcode(dst), what, err, errlen);
    }
    rc = sqlite3_backup_step(b, -1);
    if (rc != SQLITE_DONE) {
        errf(err, errlen, "%s: %s", what, sqlite3_errstr(rc));
        sqlite3_backup_finish(b);
        return sqlCode(rc);
    }
    rc = sqlite3_backup_finish(b);
    if (rc != SQLITE_OK) {
        return sqlFail(dst, rc, what, err, errlen);
    }
    return LEDGER_STORE_OK;
}

/* ---- Stamps ------------------------------------------------------------ */

static int metaText(sqlite3 *db, const char *key, char *out, size_t len,
                    bool *found, char *err, size_t errlen)
{
    sqlite3_stmt *stmt = NULL;
    int rc = sqlite3_prepare_v2(db, "SELECT value FROM meta WHERE key = ?", -1,
                                &stmt, NULL);
    if (rc != SQLITE_OK) {
        return sqlFail(db, rc, "read meta", err, errlen);
    }
    sqlite3_bind_text(stmt, 1, key, -1, SQLITE_STATIC);
    rc = sqlite3_step(stmt);
    *found = rc == SQLITE_ROW;
    out[0] = '\0';
    if (rc == SQLITE_ROW) {
        const unsigned char *t = sqlite3_column_text(stmt, 0);
        snprintf(out, len, "%s", t != NULL ? (const char *)t : "");
    } else if (rc != SQLITE_DONE) {
        int rv = sqlFail(db, rc, "read meta", err, errlen);
        sqlite3_finalize(stmt);
        return rv;
    }
    sqlite3_finalize(stmt);
    return LEDGER_STORE_OK;
}

static bool parseU64(const char *s, uint64_t *out)
{
    char *end;
    unsigned long long v;
    if (s == NULL || s[0] < '0' || s[0] > '9') {
        return false;
    }
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0' || v > INT64_MAX) {
        return false;
    }
    *out = v;
    return true;
}

/* Fill the stamps from the copy's own contents. */
static int stampsFromContents(sqlite3 *db, const char *path,
                              struct ledger_backup_meta *m, char *err,
                              size_t errlen)
{
    char buf[80];
    uint64_t v;
    bool found;
    sqlite3_stmt *stmt = NULL;
    int rc;
    int rv;

    rv = metaText(db, "cluster_id", m->cluster_id, sizeof m->cluster_id, &found,
                  err, errlen);
    if (rv == LEDGER_STORE_OK && found) {
        rv =
            metaText(db, "applied_index", buf, sizeof buf, &found, err, errlen);
    }
    if (rv == LEDGER_STORE_OK && found && parseU64(buf, &v)) {
        m->raft_index = v;
        rv = metaText(db, "schema_version", buf, sizeof buf, &found, err,
                      errlen);
    } else if (rv == LEDGER_STORE_OK) {
        found = false;
    }
    if (rv == LEDGER_STORE_OK && found && parseU64(buf, &v) && v > 0 &&
        v <= 1000000) {
        m->schema_version = (int)v;
    } else if (rv == LEDGER_STORE_OK) {
        errf(err, errlen,
             "%s: meta is missing cluster_id, applied_index or "
             "schema_version",
             path);
        return LEDGER_STORE_ECORRUPT;
    }
    if (rv != LEDGER_STORE_OK) {
        return rv;
    }
    rc = sqlite3_prepare_v2(
        db, "SELECT position, hash FROM events ORDER BY position DESC LIMIT 1",
        -1, &stmt, NULL);
    if (rc != SQLITE_OK) {
        return sqlFail(db, rc, "read head", err, errlen);
    }
    rc = sqlite3_step(stmt);
    if (rc == SQLITE_DONE) {
        m->position = 0;
        memset(m->head_hash, 0, LEDGER_HASH_LEN);
    } else if (rc == SQLITE_ROW && sqlite3_column_int64(stmt, 0) > 0 &&
               sqlite3_column_bytes(stmt, 1) == LEDGER_HASH_LEN) {
        m->position = (uint64_t)sqlite3_column_int64(stmt, 0);
        memcpy(m->head_hash, sqlite3_column_blob(stmt, 1), LEDGER_HASH_LEN);
    } else {
        rv = rc == SQLITE_ROW
                 ? (errf(err, errlen, "%s: malformed last event", path),
                    LEDGER_STORE_ECORRUPT)
                 : sqlFail(db, rc, "read head", err, errlen);
    }
    sqlite3_finalize(stmt);
    return rv;
}

static void nowIso(char *out, size_t len)
{
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static int writeStamps(sqlite3 *db, const struct ledger_backup_meta *m,
                       char *err, size_t errlen)
{
    char hex[LEDGER_HASH_HEX_LEN + 1];
    sqlite3_stmt *stmt = NULL;
    int rc;
    int rv;

    rv = execOne(db,
                 "CREATE TABLE backup_meta (cluster_id TEXT NOT NULL,"
                 " position INTEGER NOT NULL, head_hash TEXT NOT NULL,"
                 " raft_index INTEGER NOT NULL, raft_term INTEGER NOT NULL,"
                 " schema_version INTEGER NOT NULL,"
                 " created_at TEXT NOT NULL)",
                 NULL, 0, err, errlen);
    if (rv != LEDGER_STORE_OK) {
        return rv;
    }
    rc = sqlite3_prepare_v2(db,
                            "INSERT INTO backup_meta VALUES"
                            " (?, ?, ?, ?, ?, ?, ?)",
                            -1, &stmt, NULL);
    if (rc != SQLITE_OK) {
        return sqlFail(db, rc, "stamp backup", err, errlen);
    }
    ledger_hash_hex(m->head_hash, hex);
    sqlite3_bind_text(stmt, 1, m->cluster_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(stmt, 2, (sqlite3_int64)m->position);
    sqlite3_bind_text(stmt, 3, hex, -1, SQLITE_STATIC);
    sqlite3_bind_int64(stmt, 4, (sqlite3_int64)m->raft_index);
    sqlite3_bind_int64(stmt, 5, (sqlite3_int64)m->raft_term);
    sqlite3_bind_int(stmt, 6, m->schema_version);
    sqlite3_bind_text(stmt, 7, m->created_at, -1, SQLITE_STATIC);
    rc = sqlite3_step(stmt);
    sqlite3_finalize(stmt);
    if (rc != SQLITE_DONE) {
        return sqlFail(db, rc, "stamp backup", err, errlen);
    }
    return LEDGER_STORE_OK;
}

/* backup_meta's one row. Not a backup (no table, not one row, a bad
 * field): LEDGER_STORE_ECORRUPT. */
static int readStamps(sqlite3 *db, const char *path,
                      struct ledger_backup_meta *m, char *err, size_t errlen)
{
    sqlite3_stmt *stmt = NULL;
    const char *hex;
    const char *text;
    int rc;
    int rv = LEDGER_STORE_OK;

    rc = sqlite3_prepare_v2(db,
                            "SELECT cluster_id, position, head_hash,"
                            " raft_index, raft_term, schema_version,"
                            " created_at FROM backup_meta",
                            -1, &stmt, NULL);
    if (rc != SQLITE_OK) {
        if ((rc & 0xff) == SQLITE_NOTADB || (rc & 0xff) == SQLITE_CORRUPT) {
            return sqlFail(db, rc, path, err, errlen);
        }
        errf(err, errlen, "%s is not a ledger backup (%s)", path,
             sqlite3_errmsg(db));
        return LEDGER_STORE_ECORRUPT;
    }
    rc = sqlite3_step(stmt);
    if (rc != SQLITE_ROW) {
        rv = rc == SQLITE_DONE
                 ? (errf(err, errlen, "%s: backup_meta has no row", path),
                    LEDGER_STORE_ECORRUPT)
                 : sqlFail(db, rc, path, err, errlen);
        goto out;
    }
    memset(m, 0, sizeof *m);
    text = (const char *)sqlite3_column_text(stmt, 0);
    hex = (const char *)sqlite3_column_text(stmt, 2);
    if (text == NULL || strlen(text) >= sizeof m->cluster_id ||
        sqlite3_column_type(stmt, 1) != SQLITE_INTEGER ||
        sqlite3_column_int64(stmt, 1) < 0 || hex == NULL ||
        ledger_hash_parse(hex, m->head_hash) != 0 ||
        sqlite3_column_type(stmt, 3) != SQLITE_INTEGER ||
        sqlite3_column_int64(stmt, 3) < 0 ||
        sqlite3_column_type(stmt, 4) != SQLITE_INTEGER ||
        sqlite3_column_int64(stmt, 4) < 0 ||
        sqlite3_column_type(stmt, 5) != SQLITE_INTEGER ||
        sqlite3_column_int64(stmt, 5) < 1 ||
        sqlite3_column_int64(stmt, 5) > 1000000 ||
        sqlite3_column_text(stmt, 6) == NULL) {
        errf(err, errlen, "%s: backup_meta has a malformed field", path);
        rv = LEDGER_STORE_ECORRUPT;
        goto out;
    }
    snprintf(m->cluster_id, sizeof m->cluster_id, "%s", text);
    m->position = (uint64_t)sqlite3_column_int64(stmt, 1);
    m->raft_index = (uint64_t)sqlite3_column_int64(stmt, 3);
    m->raft_term = (uint64_t)sqlite3_column_int64(stmt, 4);
    m->schema_version = (int)sqlite3_column_int64(stmt, 5);
    snprintf(m->created_at, sizeof m->created_at, "%s",
             (const char *)sqlite3_column_text(stmt, 6));
    if (sqlite3_step(stmt) != SQLITE_DONE) {
        errf(err, errlen, "%s: backup_meta has more than one row", path);
        rv = LEDGER_STORE_ECORRUPT;
    }
out:
    sqlite3_finalize(stmt);
    return rv;
}

/* ---- Create ------------------------------------------------------------ */

int ledger_backup_create(const char *store_path, const char *dest_path,
                         uint64_t raft_term, struct ledger_backup_meta *out,
                         char *err, size_t errlen)
{
    struct ledger_backup_meta m;
    sqlite3 *src = NULL;
    sqlite3 *dst = NULL;
    char mode[32];
    int fd;
    int rv;

    memset(&m, 0, sizeof m);
    fd = open(dest_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        errf(err, errlen, "create %s: %s", dest_path, strerror(errno));
        return LEDGER_STORE_EIO;
    }
    close(fd);
    rv = openDb(store_path, SQLITE_OPEN_READONLY, &src, err, errlen);
    if (rv != LEDGER_STORE_OK) {
        goto out_unlink;
    }
    /* A read-only connection never checkpoints; say so at close too. */
    sqlite3_db_config(src, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, NULL);
    rv = openDb(dest_path, SQLITE_OPEN_READWRITE, &dst, err, errlen);
    if (rv == LEDGER_STORE_OK) {
        rv = copyPages(src, dst, "copy store", err, errlen);
    }
    sqlite3_close(src);
    src = NULL;
    if (rv != LEDGER_STORE_OK) {
        goto out_close;
    }
    /* One self-contained file: rollback-journal mode. */
    rv = execOne(dst, "PRAGMA journal_mode=DELETE", mode, sizeof mode, err,
                 errlen);
    if (rv == LEDGER_STORE_OK && strcmp(mode, "delete") != 0) {
        errf(err, errlen, "%s: cannot leave WAL mode (journal_mode %s)",
             dest_path, mode);
        rv = LEDGER_STORE_EIO;
    }
    if (rv == LEDGER_STORE_OK) {
        rv = stampsFromContents(dst, dest_path, &m, err, errlen);
    }
    if (rv == LEDGER_STORE_OK) {
        m.raft_term = raft_term;
        nowIso(m.created_at, sizeof m.created_at);
        rv = writeStamps(dst, &m, err, errlen);
    }
out_close:
    if (dst != NULL && sqlite3_close(dst) != SQLITE_OK && rv == 0) {
        rv = sqlFail(dst, sqlite3_errcode(dst), "close backup", err, errlen);
    }
out_unlink:
    if (rv != LEDGER_STORE_OK) {
        unlink(dest_path);
        return rv;
    }
    if (out != NULL) {
        *out = m;
    }
    return LEDGER_STORE_OK;
}

/* ---- Verify ------------------------------------------------------------ */

static void verdict(struct ledger_backup_check *c, uint64_t position,
                    const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void verdict(struct ledger_backup_check *c, uint64_t position,
                    const char *fmt, ...)
{
    va_list ap;
    c->ok = false;
    c->first_bad_position = position;
    va_start(ap, fmt);
    vsnprintf(c->reason, sizeof c->reason, fmt, ap);
    va_end(ap);
}

int ledger_backup_verify(const char *path, struct ledger_backup_check *out,
                         char *err, size_t errlen)
{
    struct ledger_store_state st;
    struct ledger_verify_result v;
    ledger_store *s = NULL;
    sqlite3 *db = NULL;
    char hex[LEDGER_HASH_HEX_LEN + 1];
    int rv;

    memset(out, 0, sizeof *out);
    if (access(path, R_OK) != 0) {
        errf(err, errlen, "cannot read %s: %s", path, strerror(errno));
        return LEDGER_STORE_EIO;
    }
    rv = openDb(path, SQLITE_OPEN_READONLY, &db, err, errlen);
    if (rv == LEDGER_STORE_OK) {
        rv = readStamps(db, path, &out->meta, err, errlen);
    }
    sqlite3_close(db);
    if (rv != LEDGER_STORE_OK) {
        return rv;
    }
    if (out->meta.schema_version > LEDGER_SCHEMA_VERSION) {
        errf(err, errlen,
             "%s has schema version %d, this ledgerd supports up to %d: "
             "use a newer ledgerd",
             path, out->meta.schema_version, LEDGER_SCHEMA_VERSION);
        return LEDGER_STORE_ESCHEMA;
    }
    rv = ledger_store_open_reader(path, &s, err, errlen);
    if (rv != LEDGER_STORE_OK) {
        return rv;
    }
    rv = ledger_store_get_state(s, &st);
    if (rv != LEDGER_STORE_OK) {
        errf(err, errlen, "%s", ledger_store_errmsg(s));
        goto out_close;
    }
    out->ok = true;
    ledger_hash_hex(out->meta.head_hash, hex);
    if (st.schema_version != out->meta.schema_version) {
        verdict(out, 0, "backup_meta says schema version %d, the store has %d",
                out->meta.schema_version, st.schema_version);
    } else if (strcmp(st.cluster_id, out->meta.cluster_id) != 0) {
        verdict(out, 0, "backup_meta says cluster %s, the store has %s",
                out->meta.cluster_id, st.cluster_id);
    } else if (st.applied_index != out->meta.raft_index) {
        verdict(out, 0,
                "backup_meta says raft index %llu, the store applied %llu",
                (unsigned long long)out->meta.raft_index,
                (unsigned long long)st.applied_index);
    } else if (st.position != out->meta.position) {
        verdict(out, st.position < out->meta.position ? st.position + 1 : 0,
                "backup_meta says position %llu, the last event is at %llu",
                (unsigned long long)out->meta.position,
                (unsigned long long)st.position);
    } else if (memcmp(st.head_hash, out->meta.head_hash, LEDGER_HASH_LEN) !=
               0) {
        verdict(out, st.position,
                "backup_meta says hash %.16s... at position %llu, the event "
                "there has another",
                hex, (unsigned long long)st.position);
    }
    if (!out->ok) {
        goto out_close;
    }
    rv = ledger_store_verify(s, &v);
    if (rv != LEDGER_STORE_OK) {
        errf(err, errlen, "%s", ledger_store_errmsg(s));
        goto out_close;
    }
    out->events = v.applied_position;
    if (!v.ok) {
        verdict(out, v.first_bad_position, "%s", v.reason);
    }
out_close:
    ledger_store_close(s);
    return rv;
}

/* ---- Seed -------------------------------------------------------------- */

int ledger_backup_seed(const char *backup_path, const char *store_path,
                       struct ledger_backup_meta *out, char *err, size_t errlen)
{
    struct ledger_backup_meta m;
    sqlite3 *src = NULL;
    sqlite3 *dst = NULL;
    char tmp[4200];
    char dir[4200];
    char *msg = NULL;
    int fd;
    int rv;

    if (access(store_path, F_OK) == 0) {
        errf(err, errlen, "%s exists: a backup seeds a new store only",
             store_path);
        return LEDGER_STORE_EINVAL;
    }
    snprintf(tmp, sizeof tmp, "%s.seed", store_path);
    unlink(tmp); /* Left by a crash: rebuilt from scratch. */
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) {
        errf(err, errlen, "create %s: %s", tmp, strerror(errno));
        return LEDGER_STORE_EIO;
    }
    close(fd);
    rv = openDb(backup_path, SQLITE_OPEN_READONLY, &src, err, errlen);
    if (rv == LEDGER_STORE_OK) {
        rv = readStamps(src, backup_path, &m, err, errlen);
    }
    if (rv == LEDGER_STORE_OK) {
        rv = openDb(tmp, SQLITE_OPEN_READWRITE, &dst, err, errlen);
    }
    if (rv == LEDGER_STORE_OK) {
        rv = copyPages(src, dst, "copy backup", err, errlen);
    }
    sqlite3_close(src);
    if (rv != LEDGER_STORE_OK) {
        goto out_close;
    }
    {
        char sql[512];
        char *quoted = sqlite3_mprintf("%Q", m.cluster_id);
        if (quoted == NULL) {
            errf(err, errlen, "seed: out of memory");
            rv = LEDGER_STORE_ENOMEM;
            goto out_close;
        }
        snprintf(sql, sizeof sql,
                 "BEGIN;"
                 "DROP TABLE backup_meta;"
                 "UPDATE meta SET value = '' WHERE key = 'cluster_id';"
                 "UPDATE meta SET value = 0 WHERE key = 'applied_index';"
                 "INSERT OR REPLACE INTO meta (key, value)"
                 "  VALUES ('restored_from', %s);"
                 "DELETE FROM members;"
                 "COMMIT;",
                 quoted);
        sqlite3_free(quoted);
        if (sqlite3_exec(dst, sql, NULL, NULL, &msg) != SQLITE_OK) {
            errf(err, errlen, "seed %s: %s", tmp, msg ? msg : "failed");
            sqlite3_free(msg);
            rv = LEDGER_STORE_EIO;
            goto out_close;
        }
    }
    rv = execOne(dst, "PRAGMA journal_mode=DELETE", NULL, 0, err, errlen);
out_close:
    if (dst != NULL && sqlite3_close(dst) != SQLITE_OK && rv == 0) {
        rv = sqlFail(dst, sqlite3_errcode(dst), "close seed", err, errlen);
    }
    if (rv == LEDGER_STORE_OK) {
        rv = syncPath(tmp, false, err, errlen);
    }
    if (rv == LEDGER_STORE_OK && rename(tmp, store_path) != 0) {
        errf(err, errlen, "rename %s: %s", tmp, strerror(errno));
        rv = LEDGER_STORE_EIO;
    }
    if (rv != LEDGER_STORE_OK) {
        unlink(tmp);
        return rv;
    }
    dirOf(store_path, dir, sizeof dir);
    rv = syncPath(dir, true, err, errlen);
    if (rv == LEDGER_STORE_OK && out != NULL) {
        *out = m;
    }
    return rv;
}

/* ---- SHA-256 ----------------------------------------------------------- */

int ledger_file_sha256(const char *path, uint8_t out[LEDGER_HASH_LEN],
                       char *err, size_t errlen)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned char *buf = malloc(BACKUP__CHUNK);
    unsigned int len = 0;
    int rv = LEDGER_STORE_OK;
    int fd = -1;

    if (ctx == NULL || buf == NULL ||
        EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
        errf(err, errlen, "sha256 %s: out of memory", path);
        rv = LEDGER_STORE_ENOMEM;
        goto out;
    }
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        errf(err, errlen, "open %s: %s", path, strerror(errno));
        rv = LEDGER_STORE_EIO;
        goto out;
    }
    for (;;) {
        ssize_t n = read(fd, buf, BACKUP__CHUNK);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            errf(err, errlen, "read %s: %s", path, strerror(errno));
            rv = LEDGER_STORE_EIO;
            goto out;
        }
        if (n == 0) {
            break;
        }
        if (EVP_DigestUpdate(ctx, buf, (size_t)n) != 1) {
            errf(err, errlen, "sha256 %s: digest failed", path);
            rv = LEDGER_STORE_ENOMEM;
            goto out;
        }
    }
    if (EVP_DigestFinal_ex(ctx, out, &len) != 1 || len != LEDGER_HASH_LEN) {
        errf(err, errlen, "sha256 %s: digest failed", path);
        rv = LEDGER_STORE_ENOMEM;
    }
out:
    if (fd >= 0) {
        close(fd);
    }
    free(buf);
    EVP_MD_CTX_free(ctx);
    return rv;
}
