/* Backups offline: the checks of `ledgerd --verify-backup` and the seeding
 * of `ledgerd --restore` (see restore.h).
 *
 * A backup is good when three things hold, checked in this order (the
 * cheapest first, each one only on what the previous one vouched for):
 *   1. its bytes are the ones written: SHA-256 of the file equals FILE.sha256
 *      (or the expected value ledgerctl got from the node's header);
 *   2. its stamps (backup_meta) match its contents and its schema is not
 *      newer than this build's;
 *   3. its hash chain holds from position 1 to the stamped head.
 *
 * Seeding writes nothing until all three hold and the data dir is known to
 * be empty of state; the store is then written under a temporary name and
 * renamed (store/backup.c), so a failed or interrupted restore leaves the
 * data dir as it was.
 */
#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "store/backup.h"

#include "log.h"
#include "restore.h"

struct check {
    bool ok;
    struct ledger_backup_check c;
    char sha[LEDGER_HASH_HEX_LEN + 1];
    char reason[512];
    unsigned long long first_bad; /* 0: not about a position. */
};

/* The checksum written beside the backup: the first word of FILE.sha256
 * (the sha256sum format: "HEX  NAME"). */
static int readChecksumFile(const char *file, char *hex, char *why,
                            size_t whylen)
{
    char path[4200];
    char word[80];
    FILE *f;
    int n;

    snprintf(path, sizeof path, "%s.sha256", file);
    f = fopen(path, "r");
    if (f == NULL) {
        snprintf(why, whylen,
                 "%s: %s (a backup is checked against the checksum written "
                 "beside it)",
                 path, strerror(errno));
        return -1;
    }
    n = fscanf(f, "%79s", word);
    fclose(f);
    if (n != 1 || strlen(word) != LEDGER_HASH_HEX_LEN) {
        snprintf(why, whylen,
                 "%s does not start with a SHA-256 (64 hex "
                 "digits)",
                 path);
        return -1;
    }
    snprintf(hex, LEDGER_HASH_HEX_LEN + 1, "%s", word);
    return 0;
}

static void lower(char *s)
{
    for (; *s != '\0'; s++) {
        if (*s >= 'A' && *s <= 'F') {
            *s = (char)(*s - 'A' + 'a');
        }
    }
}

static void checkBackup(const char *file, const char *expect_hex,
                        int chain_only, struct check *k)
{
    uint8_t sum[LEDGER_HASH_LEN];
    char want[LEDGER_HASH_HEX_LEN + 1];
    char err[512];

    memset(k, 0, sizeof *k);
    if (access(file, R_OK) != 0) {
        snprintf(k->reason, sizeof k->reason, "cannot read %s: %s", file,
                 strerror(errno));
        return;
    }
    if (chain_only) {
        goto check_contents;
    }
    if (expect_hex != NULL) {
        snprintf(want, sizeof want, "%s", expect_hex);
    } else if (readChecksumFile(file, want, k->reason, sizeof k->reason) != 0) {
        return;
    }
    lower(want);
    if (ledger_file_sha256(file, sum, err, sizeof err) != 0) {
        snprintf(k->reason, sizeof k->reason, "%s", err);
        return;
    }
    ledger_hash_hex(sum, k->sha);
    if (strcmp(k->sha, want) != 0) {
        snprintf(k->reason, sizeof k->reason,
                 "checksum mismatch: %s has SHA-256 %.16s..., expected "
                 "%.16s... (cut short or changed since it was written)",
                 file, k->sha, want);
        return;
    }
check_contents:
    if (ledger_backup_verify(file, &k->c, err, sizeof err) != 0) {
        snprintf(k->reason, sizeof k->reason, "%s", err);
        return;
    }
    if (!k->c.ok) {
        k->first_bad = k->c.first_bad_position;
        if (k->first_bad != 0) {
            /* "position P: why" from the chain walk: P is said once. */
            char head[40];
            const char *why = k->c.reason;
            snprintf(head, sizeof head, "position %llu: ", k->first_bad);
            if (strncmp(why, head, strlen(head)) == 0) {
                why += strlen(head);
            }
            snprintf(k->reason, sizeof k->reason, "first bad position %llu: %s",
                     k->first_bad, why);
        } else {
            snprintf(k->reason, sizeof k->reason, "%s", k->c.reason);
        }
        return;
    }
    k->ok = true;
}

int restore_verify_cli(const char *file, const char *expect_hex, int chain_only)
{
    struct check k;
    char hex[LEDGER_HASH_HEX_LEN + 1];
    json_t *o;
    char *line;

    checkBackup(file, expect_hex, chain_only, &k);
    if (k.ok) {
        ledger_hash_hex(k.c.meta.head_hash, hex);
        o = json_pack(
            "{s:b, s:s, s:I, s:I, s:s, s:s, s:I, s:I, s:i, s:s, "
            "s:s}",
            "ok", 1, "file", file, "events", (json_int_t)k.c.events, "position",
            (json_int_t)k.c.meta.position, "hash", hex, "cluster_id",
            k.c.meta.cluster_id, "raft_index", (json_int_t)k.c.meta.raft_index,
            "raft_term", (json_int_t)k.c.meta.raft_term, "schema_version",
            k.c.meta.schema_version, "created_at", k.c.meta.created_at,
            "sha256", chain_only ? "not checked" : k.sha);
    } else {
        o = json_pack("{s:b, s:s, s:o, s:s}", "ok", 0, "file", file,
                      "first_bad_position",
                      k.first_bad != 0 ? json_integer((json_int_t)k.first_bad)
                                       : json_null(),
                      "reason", k.reason);
    }
    line = o != NULL ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(o);
    if (line == NULL) {
        fprintf(stderr, "ledgerd: --verify-backup: out of memory\n");
        return 1;
    }
    printf("%s\n", line);
    free(line);
    fflush(stdout);
    return k.ok ? 0 : 1;
}

/* True when `dir` has an entry other than . and .. */
static bool dirHasEntries(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    bool found = false;
    if (d == NULL) {
        return false;
    }
    while (!found && (e = readdir(d)) != NULL) {
        found = strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    }
    closedir(d);
    return found;
}

int restore_seed(const struct ledger_config *cfg, char *err, size_t errlen)
{
    struct ledger_backup_meta m;
    struct check k;
    char path[4200];
    char raft[4200];
    char wal[4200];
    char hex[LEDGER_HASH_HEX_LEN + 1];

    snprintf(path, sizeof path, "%s/ledger.db", cfg->data_dir);
    snprintf(wal, sizeof wal, "%s/ledger.db-wal", cfg->data_dir);
    snprintf(raft, sizeof raft, "%s/raft", cfg->data_dir);
    if (access(path, F_OK) == 0 || access(wal, F_OK) == 0 ||
        dirHasEntries(raft)) {
        snprintf(err, errlen,
                 "--restore: data dir %s already holds a store or a Raft "
                 "log: --restore seeds an empty data dir only (start without "
                 "--restore to run it as it is)",
                 cfg->data_dir);
        return -1;
    }
    ledger_log(LOG_INFO, NULL, "restore: checking backup %s", cfg->restore);
    checkBackup(cfg->restore, NULL, 0, &k);
    if (!k.ok) {
        snprintf(err, errlen, "--restore %s: %s", cfg->restore, k.reason);
        return -1;
    }
    if (ledger_backup_seed(cfg->restore, path, &m, err, errlen) != 0) {
        return -1;
    }
    ledger_hash_hex(m.head_hash, hex);
    ledger_log(LOG_INFO, NULL,
               "restore: seeded %s from %s: %llu events, position %llu, hash "
               "%s, taken from cluster %s at raft index %llu on %s; this node "
               "starts a new cluster",
               path, cfg->restore, (unsigned long long)k.c.events,
               (unsigned long long)m.position, hex, m.cluster_id,
               (unsigned long long)m.raft_index, m.created_at);
    return 0;
}
