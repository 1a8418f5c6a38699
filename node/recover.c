/* ledgerd recover: quorum-loss recovery, offline (docs/operations.md,
 * "Disaster recovery").
 *
 *   recover inspect DIR...            what each stopped node's dir holds,
 *                                     and which one to recover from
 *   recover DIR --members LIST [--force]
 *                                     force LIST as the configuration of
 *                                     DIR's Raft log, once
 *
 * Safety, in the order the checks run:
 * - Every dir is locked (DIR/LOCK, as ledgerd does) for the whole command:
 *   a dir whose node runs is refused, and no node can start meanwhile.
 * - inspect reads without writing: Raft's files through raft's loader on a
 *   private copy (replication/disk.c), the store through a read-only
 *   handle. It writes one file, DIR/recover-inspect.json, into each dir it
 *   inspected: every dir's figures and the one chosen, which `recover`
 *   checks. The choice is Raft's own rule for an up-to-date log (thesis
 *   3.6.1): the highest term of the last entry, then the highest last
 *   index; then the store's applied index.
 * - recover refuses (unless --force): a dir that no inspection saw, a dir
 *   that was not the chosen one, a dir that changed since it was inspected
 *   (its node ran), and a second recovery of the same cluster (the store's
 *   meta "recovered", written by the first). Without --force it never
 *   writes before every check passed.
 * - The members list must keep the dir's own node (DIR/node-id); all are
 *   voters. raft_recover appends the configuration after the last entry;
 *   at its next start the node, alone or with the others listed, commits
 *   every entry of its log, including ones the old cluster never
 *   committed: recover says which ones.
 */
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "datadir.h"
#include "offline.h"
#include "replication/disk.h"
#include "store/store.h"

#define RECOVER__MAX_DIRS 16
#define RECOVER__RECORD "recover-inspect.json" /* In each inspected dir. */

/* What one data dir holds. */
struct dirInfo {
    char dir[PATH_MAX]; /* Absolute. */
    int lock_fd;
    uint64_t node_id; /* 0: unknown */
    bool raft_ok;
    struct ledger_repl_disk raft;
    bool store_ok;
    struct ledger_store_state store;
    char api_addr[REPL_ADDR_MAX]; /* Its own row in the members table. */
    char *recovered;              /* meta "recovered", or NULL */
    char error[512];              /* Why raft or store could not be read. */
};

static void nowIso(char *out, size_t len)
{
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static int usage(const char *msg)
{
    return offline_fail(2,
                        "recover: %s; usage: recover inspect DIR... | recover "
                        "DIR --members \"ID=RAFT@API,...\" [--force]",
                        msg);
}

/* ---- Reading a dir ----------------------------------------------------- */

struct ownRow {
    uint64_t id;
    char *api;
    size_t len;
};

static int ownRowCb(void *arg, uint64_t id, const char *ra, const char *aa)
{
    struct ownRow *o = arg;
    (void)ra;
    if (id == o->id) {
        snprintf(o->api, o->len, "%s", aa);
        return 1;
    }
    return 0;
}

/* Lock DIR and read what it holds. -1 (message printed) when the dir
 * cannot be used at all (missing, not a data dir, locked); 0 otherwise,
 * with raft_ok/store_ok telling what could be read. */
static int dirRead(const char *arg, struct dirInfo *d)
{
    char path[PATH_MAX + 32];
    char wal[PATH_MAX + 40];
    char shm[PATH_MAX + 40];
    char err[512];
    struct stat st;
    ledger_store *s = NULL;
    bool had_wal;
    bool had_shm;

    memset(d, 0, sizeof *d);
    d->lock_fd = -1;
    if (realpath(arg, d->dir) == NULL) {
        offline_fail(1, "recover: %s: %s", arg, strerror(errno));
        return -1;
    }
    snprintf(path, sizeof path, "%s/ledger.db", d->dir);
    if (stat(path, &st) != 0) {
        offline_fail(1, "recover: %s is not a ledger data dir (no ledger.db)",
                     d->dir);
        return -1;
    }
    d->lock_fd = datadir_lock(d->dir, 0, false, err, sizeof err);
    if (d->lock_fd < 0) {
        offline_fail(1, "recover: %s", err);
        return -1;
    }
    if (datadir_node_id(d->dir, &d->node_id, err, sizeof err) < 0) {
        offline_fail(1, "recover: %s", err);
        return -1;
    }
    snprintf(path, sizeof path, "%s/raft", d->dir);
    if (ledger_repl_disk_read(path, &d->raft, err, sizeof err) == 0) {
        d->raft_ok = true;
    } else {
        snprintf(d->error, sizeof d->error, "%s", err);
    }
    snprintf(path, sizeof path, "%s/ledger.db", d->dir);
    snprintf(wal, sizeof wal, "%s-wal", path);
    snprintf(shm, sizeof shm, "%s-shm", path);
    had_wal = access(wal, F_OK) == 0;
    had_shm = access(shm, F_OK) == 0;
    if (ledger_store_open_reader(path, &s, err, sizeof err) == 0 &&
        ledger_store_get_state(s, &d->store) == 0) {
        struct ownRow o = {d->node_id, d->api_addr, sizeof d->api_addr};
        d->store_ok = true;
        ledger_store_list_members(s, ownRowCb, &o);
        if (ledger_store_get_meta(s, "recovered", &d->recovered) != 0) {
            d->recovered = NULL;
        }
    } else if (d->error[0] == '\0') {
        snprintf(d->error, sizeof d->error, "store: %s",
                 s != NULL ? ledger_store_errmsg(s) : err);
    }
    ledger_store_close(s);
    /* A read-only SQLite handle on a WAL database creates an empty -wal
     * and a -shm when there were none (after a clean stop): remove them,
     * so that reading leaves the dir as it was. No other process has the
     * store open: we hold the dir's lock. */
    if (!had_wal && stat(wal, &st) == 0 && st.st_size == 0) {
        unlink(wal);
        if (!had_shm) {
            unlink(shm);
        }
    }
    return 0;
}

static void dirRelease(struct dirInfo *d)
{
    if (d->lock_fd >= 0) {
        close(d->lock_fd);
        d->lock_fd = -1;
    }
    free(d->recovered);
    d->recovered = NULL;
}

/* True when a's log is more up to date than b's (Raft's rule), or equal
 * and a's store has applied more. */
static bool moreAdvanced(const struct dirInfo *a, const struct dirInfo *b)
{
    if (a->raft.last_term != b->raft.last_term) {
        return a->raft.last_term > b->raft.last_term;
    }
    if (a->raft.last_index != b->raft.last_index) {
        return a->raft.last_index > b->raft.last_index;
    }
    return (a->store_ok ? a->store.applied_index : 0) >
           (b->store_ok ? b->store.applied_index : 0);
}

static const char *ownRaftAddr(const struct dirInfo *d)
{
    for (size_t i = 0; i < d->raft.n_members; i++) {
        if (d->raft.members[i].id == d->node_id) {
            return d->raft.members[i].raft_addr;
        }
    }
    return NULL;
}

static bool recoveredBefore(const struct dirInfo *d, char *when, size_t len);

/* ---- inspect ------------------------------------------------------------ */

static json_t *dirJson(const struct dirInfo *d)
{
    char hex[LEDGER_HASH_HEX_LEN + 1];
    json_t *v = json_object();
    json_t *members = json_array();

    json_object_set_new(v, "dir", json_string(d->dir));
    json_object_set_new(v, "node", json_integer((json_int_t)d->node_id));
    if (d->raft_ok) {
        json_object_set_new(v, "last_index",
                            json_integer((json_int_t)d->raft.last_index));
        json_object_set_new(v, "last_term",
                            json_integer((json_int_t)d->raft.last_term));
        json_object_set_new(v, "term", json_integer((json_int_t)d->raft.term));
        json_object_set_new(v, "snapshot_index",
                            json_integer((json_int_t)d->raft.snapshot_index));
        for (size_t i = 0; i < d->raft.n_members; i++) {
            json_array_append_new(
                members,
                json_pack("{sIssss}", "id", (json_int_t)d->raft.members[i].id,
                          "raft_addr", d->raft.members[i].raft_addr, "role",
                          ledger_repl_role_name(d->raft.members[i].role)));
        }
    }
    json_object_set_new(v, "configuration", members);
    if (d->store_ok) {
        ledger_hash_hex(d->store.head_hash, hex);
        json_object_set_new(v, "applied_index",
                            json_integer((json_int_t)d->store.applied_index));
        json_object_set_new(v, "position",
                            json_integer((json_int_t)d->store.position));
        json_object_set_new(v, "head_hash", json_string(hex));
        json_object_set_new(v, "cluster_id", json_string(d->store.cluster_id));
        json_object_set_new(v, "api_addr", json_string(d->api_addr));
    }
    if (d->recovered != NULL) {
        json_object_set_new(v, "recovered", json_string(d->recovered));
    }
    if (d->error[0] != '\0') {
        json_object_set_new(v, "error", json_string(d->error));
    }
    return v;
}

static int writeRecord(const char *dir, const char *text, char *err,
                       size_t errlen)
{
    char tmp[PATH_MAX + 64];
    char path[PATH_MAX + 64];
    FILE *f;

    snprintf(tmp, sizeof tmp, "%s/%s.tmp", dir, RECOVER__RECORD);
    snprintf(path, sizeof path, "%s/%s", dir, RECOVER__RECORD);
    f = fopen(tmp, "w");
    if (f == NULL) {
        snprintf(err, errlen, "create %s: %s", tmp, strerror(errno));
        return -1;
    }
    if (fputs(text, f) < 0 || fputc('\n', f) < 0 || fflush(f) != 0 ||
        fsync(fileno(f)) != 0) {
        snprintf(err, errlen, "write %s: %s", tmp, strerror(errno));
        fclose(f);
        unlink(tmp);
        return -1;
    }
    fclose(f);
    if (rename(tmp, path) != 0) {
        snprintf(err, errlen, "rename %s: %s", tmp, strerror(errno));
        unlink(tmp);
        return -1;
    }
    return 0;
}

static void printDir(const struct dirInfo *d, bool chosen)
{
    char hex[LEDGER_HASH_HEX_LEN + 1];
    char node[24];

    snprintf(node, sizeof node, "%llu", (unsigned long long)d->node_id);
    if (!d->raft_ok) {
        printf("%s %s  node %s: cannot read: %s\n", chosen ? "*" : " ", d->dir,
               d->node_id ? node : "?", d->error);
        return;
    }
    printf("%s %s\n", chosen ? "*" : " ", d->dir);
    printf("    node %s, raft: last index %llu, last term %llu, term %llu",
           d->node_id ? node : "? (no node-id file)",
           (unsigned long long)d->raft.last_index,
           (unsigned long long)d->raft.last_term,
           (unsigned long long)d->raft.term);
    if (d->raft.snapshot_index > 0) {
        printf(", snapshot at %llu",
               (unsigned long long)d->raft.snapshot_index);
    }
    printf("\n");
    if (d->store_ok) {
        ledger_hash_hex(d->store.head_hash, hex);
        printf("    store: applied index %llu, position %llu, head hash %s\n",
               (unsigned long long)d->store.applied_index,
               (unsigned long long)d->store.position,
               d->store.position > 0 ? hex : "-");
    } else {
        printf("    store: cannot read: %s\n", d->error);
    }
    printf("    configuration (index %llu):",
           (unsigned long long)d->raft.config_index);
    for (size_t i = 0; i < d->raft.n_members; i++) {
        printf(" %llu=%s(%s)", (unsigned long long)d->raft.members[i].id,
               d->raft.members[i].raft_addr,
               ledger_repl_role_name(d->raft.members[i].role));
    }
    printf("\n");
    if (d->recovered != NULL) {
        printf("    recovered before: %s\n", d->recovered);
    }
}

static int cmdInspect(int argc, char **argv, bool json_out)
{
    struct dirInfo *dirs;
    int n = argc;
    int best = -1;
    int rv = 1;
    char at[32];
    json_t *rec;
    json_t *list;
    char *text = NULL;
    char err[512];

    if (n == 0) {
        return usage("inspect needs at least one DIR");
    }
    if (n > RECOVER__MAX_DIRS) {
        return usage("too many dirs");
    }
    dirs = calloc((size_t)n, sizeof *dirs);
    if (dirs == NULL) {
        return offline_fail(1, "recover: out of memory");
    }
    for (int i = 0; i < n; i++) {
        dirs[i].lock_fd = -1;
    }
    for (int i = 0; i < n; i++) {
        if (dirRead(argv[i], &dirs[i]) != 0) {
            goto out; /* One line printed: nothing else. */
        }
        for (int j = 0; j < i; j++) {
            if (strcmp(dirs[j].dir, dirs[i].dir) == 0) {
                offline_fail(1, "recover: %s is given twice", dirs[i].dir);
                goto out;
            }
        }
    }
    for (int i = 0; i < n; i++) {
        if (dirs[i].raft_ok && dirs[i].node_id != 0 &&
            (best < 0 || moreAdvanced(&dirs[i], &dirs[best]))) {
            best = i;
        }
    }

    nowIso(at, sizeof at);
    list = json_array();
    for (int i = 0; i < n; i++) {
        json_array_append_new(list, dirJson(&dirs[i]));
    }
    rec = json_pack("{ssso}", "inspected_at", at, "dirs", list);
    if (best >= 0) {
        json_object_set_new(rec, "recover_from", json_string(dirs[best].dir));
        json_object_set_new(rec, "recover_node",
                            json_integer((json_int_t)dirs[best].node_id));
    }
    text = json_dumps(rec, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(rec);
    if (text == NULL) {
        offline_fail(1, "recover: out of memory");
        goto out;
    }
    /* The record `recover` checks, in every dir inspected. */
    for (int i = 0; i < n; i++) {
        if (writeRecord(dirs[i].dir, text, err, sizeof err) != 0) {
            offline_fail(1, "recover: %s", err);
            goto out;
        }
    }
    if (json_out) {
        printf("%s\n", text);
    } else {
        for (int i = 0; i < n; i++) {
            printDir(&dirs[i], i == best);
        }
        if (best < 0) {
            printf("recover from: none of these (no readable Raft log with a "
                   "node id)\n");
        } else {
            const struct dirInfo *b = &dirs[best];
            const char *ra = ownRaftAddr(b);
            char when[128];
            if (recoveredBefore(b, when, sizeof when)) {
                printf("%s (node %llu) was recovered already (%s): start it "
                       "as it is\n",
                       b->dir, (unsigned long long)b->node_id, when);
                rv = 0;
                goto out;
            }
            printf("recover from: %s (node %llu): %s\n", b->dir,
                   (unsigned long long)b->node_id,
                   n == 1 ? "the only dir inspected"
                          : "the most up-to-date Raft log (last term, then "
                            "last index)");
            printf("next: stop here if any other member of the old cluster "
                   "still runs or may come back;\n"
                   "      otherwise: ledgerctl recover %s --members "
                   "\"%llu=%s@%s\"\n",
                   b->dir, (unsigned long long)b->node_id,
                   ra != NULL ? ra : "RAFT_HOST:PORT",
                   b->api_addr[0] != '\0' ? b->api_addr : "API_HOST:PORT");
        }
    }
    rv = best >= 0 ? 0 : 1;
out:
    free(text);
    for (int i = 0; i < n; i++) {
        dirRelease(&dirs[i]);
    }
    free(dirs);
    return rv;
}

/* ---- recover DIR -------------------------------------------------------- */

/* The inspection record of d's dir: 0 fine (or --force), else an error
 * printed. */
static int checkInspection(const struct dirInfo *d, bool force)
{
    char path[PATH_MAX + 64];
    json_error_t jerr;
    json_t *rec;
    json_t *mine = NULL;
    json_t *v;
    const char *from;
    const char *at;
    size_t i;
    int rv = 1;

    snprintf(path, sizeof path, "%s/%s", d->dir, RECOVER__RECORD);
    rec = json_load_file(path, 0, &jerr);
    if (rec == NULL) {
        if (force) {
            return 0;
        }
        return offline_fail(1,
                            "recover: %s was not inspected: run 'ledgerctl "
                            "recover inspect %s OTHER_SURVIVING_DIRS...' first "
                            "(or --force)",
                            d->dir, d->dir);
    }
    at = json_string_value(json_object_get(rec, "inspected_at"));
    from = json_string_value(json_object_get(rec, "recover_from"));
    json_array_foreach(json_object_get(rec, "dirs"), i, v)
    {
        const char *dir = json_string_value(json_object_get(v, "dir"));
        if (dir != NULL && strcmp(dir, d->dir) == 0) {
            mine = v;
        }
    }
    if (force) {
        rv = 0;
    } else if (from == NULL || strcmp(from, d->dir) != 0) {
        json_t *best = NULL;
        json_array_foreach(json_object_get(rec, "dirs"), i, v)
        {
            const char *dir = json_string_value(json_object_get(v, "dir"));
            if (from != NULL && dir != NULL && strcmp(dir, from) == 0) {
                best = v;
            }
        }
        offline_fail(
            1,
            "recover: %s (node %llu, last index %llu, term %llu) is not "
            "the dir 'recover inspect' chose at %s: %s (node %lld, last "
            "index %lld, term %lld) is; recover that one only (or --force)",
            d->dir, (unsigned long long)d->node_id,
            (unsigned long long)d->raft.last_index,
            (unsigned long long)d->raft.last_term, at ? at : "?",
            from ? from : "none",
            (long long)json_integer_value(json_object_get(best, "node")),
            (long long)json_integer_value(json_object_get(best, "last_index")),
            (long long)json_integer_value(json_object_get(best, "last_term")));
    } else if (mine == NULL ||
               (uint64_t)json_integer_value(
                   json_object_get(mine, "last_index")) != d->raft.last_index ||
               (uint64_t)json_integer_value(
                   json_object_get(mine, "last_term")) != d->raft.last_term ||
               (uint64_t)json_integer_value(json_object_get(mine, "term")) !=
                   d->raft.term) {
        offline_fail(1,
                     "recover: %s changed since it was inspected at %s (its "
                     "node ran?): inspect the surviving dirs again",
                     d->dir, at ? at : "?");
    } else {
        rv = 0;
    }
    json_decref(rec);
    return rv;
}

/* Has this cluster been recovered before (meta "recovered" of the same
 * cluster id)? */
static bool recoveredBefore(const struct dirInfo *d, char *when, size_t len)
{
    json_t *v;
    const char *cid;
    bool same;

    if (d->recovered == NULL) {
        return false;
    }
    v = json_loads(d->recovered, 0, NULL);
    cid = json_string_value(json_object_get(v, "cluster_id"));
    same = v == NULL || cid == NULL || strcmp(cid, d->store.cluster_id) == 0;
    snprintf(when, len, "at %s, configuration at raft index %lld",
             json_string_value(json_object_get(v, "at"))
                 ? json_string_value(json_object_get(v, "at"))
                 : "?",
             (long long)json_integer_value(json_object_get(v, "index")));
    json_decref(v);
    return same;
}

static void membersString(const struct ledger_repl_member *m, size_t n,
                          char *out, size_t len)
{
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; i < n && used < len; i++) {
        used += (size_t)snprintf(out + used, len - used, "%s%llu=%s@%s",
                                 i > 0 ? "," : "", (unsigned long long)m[i].id,
                                 m[i].raft_addr, m[i].api_addr);
    }
}

/* Record the recovery in the store (meta "recovered"). */
static int noteInStore(const struct dirInfo *d, const char *members,
                       uint64_t index, const char *at, char *err, size_t len)
{
    char path[PATH_MAX + 32];
    ledger_store *s = NULL;
    struct ledger_store_state st;
    json_t *v;
    char *text;
    int rv = -1;

    snprintf(path, sizeof path, "%s/ledger.db", d->dir);
    if (ledger_store_open(path, &s, err, len) != 0) {
        return -1;
    }
    v = json_pack("{sssIsIsIsssIsI}", "at", at, "index", (json_int_t)index,
                  "node", (json_int_t)d->node_id, "last_index",
                  (json_int_t)d->raft.last_index, "members", members,
                  "last_term", (json_int_t)d->raft.last_term, "applied_index",
                  (json_int_t)d->store.applied_index);
    json_object_set_new(v, "cluster_id", json_string(d->store.cluster_id));
    text = json_dumps(v, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(v);
    if (text != NULL && ledger_store_get_state(s, &st) == 0 &&
        ledger_store_begin(s) == 0) {
        if (ledger_store_put_meta(s, "recovered", text) == 0 &&
            ledger_store_commit(s, st.applied_index) == 0 &&
            ledger_store_sync(s) == 0) {
            rv = 0;
        } else {
            ledger_store_rollback(s);
        }
    }
    if (rv != 0) {
        snprintf(err, len, "%s",
                 text == NULL ? "out of memory" : ledger_store_errmsg(s));
    }
    free(text);
    ledger_store_close(s);
    return rv;
}

static int cmdRecover(const char *dir, const char *members_arg, bool force,
                      bool json_out)
{
    struct ledger_repl_member members[REPL_DISK_MAX_MEMBERS];
    size_t n_members = 0;
    struct dirInfo d;
    const struct ledger_repl_member *self = NULL;
    char raft_dir[PATH_MAX + 32];
    char list[REPL_DISK_MAX_MEMBERS * 2 * REPL_ADDR_MAX];
    char err[512];
    char when[128];
    char at[32];
    uint64_t index = 0;
    int rv = 1;

    if (ledger_parse_members("--members", members_arg, members,
                             REPL_DISK_MAX_MEMBERS, &n_members, err,
                             sizeof err) != 0) {
        return offline_fail(2, "recover: %s", err);
    }
    for (size_t i = 0; i < n_members; i++) {
        if (strcmp(members[i].raft_addr, members[i].api_addr) == 0) {
            return offline_fail(2,
                                "recover: --members: member %llu has the "
                                "same raft and api address %s",
                                (unsigned long long)members[i].id,
                                members[i].raft_addr);
        }
    }
    if (dirRead(dir, &d) != 0) {
        dirRelease(&d);
        return 1;
    }
    if (d.node_id == 0) {
        offline_fail(1,
                     "recover: %s has no node-id file: it was never started "
                     "by this ledgerd, or is not a node's data dir",
                     d.dir);
        goto out;
    }
    for (size_t i = 0; i < n_members; i++) {
        if (members[i].id == d.node_id) {
            self = &members[i];
        }
    }
    if (self == NULL) {
        offline_fail(1,
                     "recover: %s belongs to node %llu, which --members "
                     "leaves out: the recovered configuration must keep it",
                     d.dir, (unsigned long long)d.node_id);
        goto out;
    }
    if (!d.raft_ok || !d.store_ok) {
        offline_fail(1, "recover: %s: %s", d.dir, d.error);
        goto out;
    }
    if (!force && recoveredBefore(&d, when, sizeof when)) {
        offline_fail(1,
                     "recover: %s was recovered already (%s): start the node "
                     "as it is; a second recovery needs --force",
                     d.dir, when);
        goto out;
    }
    if (checkInspection(&d, force) != 0) {
        goto out;
    }

    membersString(members, n_members, list, sizeof list);
    snprintf(raft_dir, sizeof raft_dir, "%s/raft", d.dir);
    if (ledger_repl_disk_recover(raft_dir, d.node_id, members, n_members,
                                 &index, err, sizeof err) != 0) {
        offline_fail(1, "recover: %s: %s: nothing was changed", d.dir, err);
        goto out;
    }
    nowIso(at, sizeof at);
    if (noteInStore(&d, list, index, at, err, sizeof err) != 0) {
        offline_fail(1,
                     "recover: %s: the new configuration is written (raft "
                     "index %llu) but recording it in the store failed: %s",
                     d.dir, (unsigned long long)index, err);
        goto out;
    }
    if (json_out) {
        json_t *v =
            json_pack("{sssIsIsIsIsIss}", "dir", d.dir, "node",
                      (json_int_t)d.node_id, "index", (json_int_t)index,
                      "last_index", (json_int_t)d.raft.last_index, "last_term",
                      (json_int_t)d.raft.last_term, "applied_index",
                      (json_int_t)d.store.applied_index, "position",
                      (json_int_t)d.store.position, "members", list);
        char *text = json_dumps(v, JSON_COMPACT | JSON_PRESERVE_ORDER);
        printf("%s\n", text != NULL ? text : "{}");
        free(text);
        json_decref(v);
    } else {
        printf("recovered %s (node %llu): the configuration at raft index "
               "%llu is now %s\n",
               d.dir, (unsigned long long)d.node_id, (unsigned long long)index,
               list);
        if (d.raft.last_index > d.store.applied_index) {
            printf("WARNING: entries written but never committed may now "
                   "become committed: raft entries %llu..%llu are in this "
                   "node's log beyond what it applied; the old cluster may "
                   "never have committed them (their clients got an error "
                   "or no answer), and this node commits all of them when "
                   "it starts\n",
                   (unsigned long long)d.store.applied_index + 1,
                   (unsigned long long)d.raft.last_index);
        } else {
            printf("WARNING: entries written but never committed may now "
                   "become committed (here: none, the store applied every "
                   "entry of the log)\n");
        }
        printf("next: start node %llu as before (--id %llu --data-dir %s "
               "--raft-addr %s --api-addr %s), then start each new member "
               "with an empty data dir and --join %s\n",
               (unsigned long long)d.node_id, (unsigned long long)d.node_id,
               d.dir, self->raft_addr, self->api_addr, self->api_addr);
    }
    rv = 0;
out:
    dirRelease(&d);
    return rv;
}

int recover_main(int argc, char **argv)
{
    const char *pos[RECOVER__MAX_DIRS + 1];
    const char *members = NULL;
    bool force = false;
    bool json_out = false;
    int n_pos = 0;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--force") == 0) {
            force = true;
        } else if (strcmp(a, "--json") == 0) {
            json_out = true;
        } else if (strcmp(a, "--members") == 0 && i + 1 < argc) {
            members = argv[++i];
        } else if (strncmp(a, "--members=", 10) == 0) {
            members = a + 10;
        } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            printf("usage: recover inspect DIR...\n"
                   "       recover DIR --members \"ID=RAFT@API,...\" "
                   "[--force]\n"
                   "Quorum-loss recovery of stopped nodes' data dirs "
                   "(docs/operations.md, \"Disaster recovery\").\n");
            return 0;
        } else if (a[0] == '-') {
            return usage(strcmp(a, "--members") == 0 ? "--members needs a value"
                                                     : "unknown flag");
        } else if (n_pos == RECOVER__MAX_DIRS + 1) {
            return usage("too many dirs");
        } else {
            pos[n_pos++] = a;
        }
    }
    if (n_pos >= 1 && strcmp(pos[0], "inspect") == 0) {
        if (members != NULL || force) {
            return usage("inspect takes no --members or --force");
        }
        return cmdInspect(n_pos - 1, (char **)pos + 1, json_out);
    }
    if (n_pos != 1) {
        return usage(n_pos == 0 ? "missing DIR" : "recover takes one DIR");
    }
    if (members == NULL) {
        return usage("recover DIR needs --members");
    }
    return cmdRecover(pos[0], members, force, json_out);
}
