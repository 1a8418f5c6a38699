/* GET /v1/backup (admin): a consistent copy of this node's store, streamed
 * (docs/api.md, "Backup"; docs/operations.md, "Disaster recovery").
 *
 * Steps, none of which blocks the loop for longer than a libuv call:
 *   1. loop: refuse if the store failed, a backup already runs here, or
 *      the data dir lacks room for the copy (507); commit the apply
 *      transaction (ledger_repl_flush) so that the copy holds every entry
 *      applied here; note the Raft term.
 *   2. a thread of its own, at nice +BACKUP_NICE (Linux: per thread), so
 *      that on a busy machine the copy yields the CPU to the loop, which
 *      keeps serving and replicating: ledger_backup_create (SQLite's
 *      backup API from a read-only connection: one read transaction, the
 *      writer goes on) into DATA_DIR/backup-PID-N.tmp, its SHA-256, then
 *      open it and unlink it: the descriptor keeps the bytes for the
 *      stream and a crash leaves nothing behind (a crash during step 2
 *      leaves the temporary file, removed at the next start:
 *      backup_remove_stale). A uv_async tells the loop it is done. Not
 *      the threadpool: a niced pool thread would stay niced for the
 *      verifies and checkpoints that run there later.
 *   3. loop: the headers (Content-Length, X-Ledger-Position, -Hash,
 *      -Cluster-Id, -Sha256, -Raft-Index, -Raft-Term), then the file in
 *      pieces of BACKUP_PIECE bytes: uv_fs_read (threadpool), then
 *      http_response_write, whose callback reads the next piece. One piece
 *      is in memory at a time, whatever the size of the store.
 *
 * Invariants: at most one backup per node at a time; a client that goes
 * away, or a node that shuts down, ends the stream at the next piece (the
 * client sees a cut body); the descriptor is closed and the job freed on
 * every path, and the temporary file never outlives step 2.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/resource.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "store/backup.h"

#include "api.h"
#include "backup.h"
#include "log.h"

#define BACKUP_PIECE (256u << 10) /* Bytes per piece of the stream. */
#define BACKUP_NICE 10            /* Niceness of the copying thread. */

struct backupJob {
    uv_thread_t thread;
    uv_async_t done; /* The thread ended (step 2 is over). */
    bool have_async;
    uv_fs_t fs;
    struct ledger_node *n;
    struct api_req *a;  /* Until the headers go out. */
    http_request *http; /* The streamed response after that. */
    char store_path[4200];
    char tmp_path[4200];
    uint64_t term;
    struct ledger_backup_meta meta;
    uint8_t sha[LEDGER_HASH_LEN];
    uint64_t size;
    uint64_t off;
    bool niced; /* The copying thread got its nice value. */
    int fd;
    int rv;
    char err[256];
    char *buf;
};

static bool running; /* One backup at a time (one node per process). */
static unsigned counter;

static void jobClosed(uv_handle_t *h)
{
    free(h->data);
}

static void jobFree(struct backupJob *j)
{
    if (j->fd >= 0) {
        close(j->fd);
        j->fd = -1;
    }
    free(j->buf);
    j->buf = NULL;
    running = false;
    if (j->have_async) {
        uv_close((uv_handle_t *)&j->done, jobClosed);
        return;
    }
    free(j);
}

/* ---- Step 2: the copy, on the threadpool -------------------------------- */

static void createWork(void *arg)
{
    struct backupJob *j = arg;
    struct stat st;

    /* Best effort: the copy runs anyway if the nice value cannot change. */
    if (setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), BACKUP_NICE) !=
        0) {
        j->niced = false;
    }

    j->rv = ledger_backup_create(j->store_path, j->tmp_path, j->term, &j->meta,
                                 j->err, sizeof j->err);
    if (j->rv != 0) {
        return;
    }
    j->rv = ledger_file_sha256(j->tmp_path, j->sha, j->err, sizeof j->err);
    if (j->rv == 0) {
        j->fd = open(j->tmp_path, O_RDONLY | O_CLOEXEC);
        if (j->fd < 0 || fstat(j->fd, &st) != 0) {
            snprintf(j->err, sizeof j->err, "open %s: %s", j->tmp_path,
                     strerror(errno));
            j->rv = -1;
        } else {
            j->size = (uint64_t)st.st_size;
        }
    }
    unlink(j->tmp_path);
    uv_async_send(&j->done);
}

/* ---- Step 3: the stream ---------------------------------------------------
 */

static void readNext(struct backupJob *j);

static void streamEnd(struct backupJob *j, const char *why)
{
    if (why != NULL) {
        ledger_log(LOG_WARN, NULL,
                   "backup: stream stopped at byte %llu of "
                   "%llu: %s",
                   (unsigned long long)j->off, (unsigned long long)j->size,
                   why);
    } else {
        char hex[LEDGER_HASH_HEX_LEN + 1];
        ledger_hash_hex(j->sha, hex);
        ledger_log(LOG_INFO, NULL,
                   "backup: %llu bytes sent, position %llu, sha256 %s",
                   (unsigned long long)j->size,
                   (unsigned long long)j->meta.position, hex);
    }
    http_response_finish(j->http);
    jobFree(j);
}

static void writtenCb(void *arg, int status)
{
    struct backupJob *j = arg;
    if (status < 0) {
        streamEnd(j, uv_strerror(status));
        return;
    }
    readNext(j);
}

static void readCb(uv_fs_t *req)
{
    struct backupJob *j = req->data;
    ssize_t n = req->result;
    int rv;

    uv_fs_req_cleanup(req);
    if (n <= 0) {
        streamEnd(j, n < 0 ? uv_strerror((int)n) : "file shorter than stat");
        return;
    }
    rv = http_response_write(j->http, j->buf, (size_t)n, writtenCb, j);
    if (rv != 0) {
        streamEnd(j, uv_strerror(rv));
        return;
    }
    j->off += (uint64_t)n;
}

static void readNext(struct backupJob *j)
{
    uint64_t left = j->size - j->off;
    uv_buf_t b;
    int rv;

    if (left == 0) {
        streamEnd(j, NULL);
        return;
    }
    if (j->n->shutting_down) {
        streamEnd(j, "the node is shutting down");
        return;
    }
    b = uv_buf_init(j->buf, left < BACKUP_PIECE ? (unsigned)left
                                                : (unsigned)BACKUP_PIECE);
    j->fs.data = j;
    rv = uv_fs_read(j->n->loop, &j->fs, j->fd, &b, 1, (int64_t)j->off, readCb);
    if (rv != 0) {
        streamEnd(j, uv_strerror(rv));
    }
}

static void createDone(uv_async_t *h)
{
    struct backupJob *j = h->data;
    struct api_req *a = j->a;
    char hex[LEDGER_HASH_HEX_LEN + 1];
    char sha[LEDGER_HASH_HEX_LEN + 1];
    char headers[512];
    int rv;

    uv_thread_join(&j->thread);
    j->a = NULL;
    if (!j->niced) {
        ledger_log(LOG_DEBUG, a->rid,
                   "backup: the copying thread kept its priority");
    }
    if (j->rv != 0) {
        ledger_log(LOG_WARN, a->rid, "backup failed: %s", j->err);
        api_reply_error(a, API_E_STORE_ERROR, "backup failed: %s", j->err);
        jobFree(j);
        return;
    }
    if (a->n->shutting_down) {
        api_reply_error(a, API_E_SHUTTING_DOWN,
                        "this node is shutting down: back up another one");
        jobFree(j);
        return;
    }
    j->buf = malloc(BACKUP_PIECE);
    if (j->buf == NULL) {
        api_reply_error(a, API_E_OUT_OF_MEMORY, "backup: out of memory");
        jobFree(j);
        return;
    }
    ledger_hash_hex(j->meta.head_hash, hex);
    ledger_hash_hex(j->sha, sha);
    snprintf(headers, sizeof headers,
             "X-Ledger-Position: %llu\r\nX-Ledger-Hash: %s\r\n"
             "X-Ledger-Cluster-Id: %s\r\nX-Ledger-Sha256: %s\r\n"
             "X-Ledger-Raft-Index: %llu\r\nX-Ledger-Raft-Term: %llu\r\n",
             (unsigned long long)j->meta.position, hex, j->meta.cluster_id, sha,
             (unsigned long long)j->meta.raft_index,
             (unsigned long long)j->meta.raft_term);
    j->http = api_reply_stream(a, 200, "application/vnd.sqlite3", j->size,
                               headers, &rv);
    if (rv != 0) {
        streamEnd(j, uv_strerror(rv));
        return;
    }
    readNext(j);
}

/* ---- Step 1 ---------------------------------------------------------------
 */

/* Bytes the copy will take at most: the database and its WAL. */
static uint64_t storeBytes(const char *path)
{
    char wal[4300];
    struct stat st;
    uint64_t total = 0;
    if (stat(path, &st) == 0) {
        total += (uint64_t)st.st_size;
    }
    snprintf(wal, sizeof wal, "%s-wal", path);
    if (stat(wal, &st) == 0) {
        total += (uint64_t)st.st_size;
    }
    return total;
}

void api_backup(struct api_req *a)
{
    struct ledger_node *n = a->n;
    struct ledger_repl_status st;
    struct statvfs vfs;
    struct backupJob *j;
    uint64_t need;
    uint64_t room;

    if (ledger_repl_failed(n->repl) != NULL) {
        api_reply_error(a, API_E_STORAGE_ERROR, "%s",
                        ledger_repl_failed(n->repl));
        return;
    }
    if (running) {
        api_reply_error(a, API_E_UNAVAILABLE,
                        "a backup of this node is already running: retry "
                        "once it ends");
        return;
    }
    need = storeBytes(ledger_store_path(n->store));
    if (statvfs(n->cfg->data_dir, &vfs) == 0) {
        room = (uint64_t)vfs.f_bavail * vfs.f_frsize;
        /* The copy, plus room for the store to keep growing. */
        if (room < need + need / 10 + (64ull << 20)) {
            api_reply_error(a, API_E_INSUFFICIENT_STORAGE,
                            "backup needs about %llu MiB free in %s for its "
                            "temporary copy, %llu MiB are",
                            (unsigned long long)((need + need / 10) >> 20) + 64,
                            n->cfg->data_dir, (unsigned long long)(room >> 20));
            return;
        }
    }
    j = calloc(1, sizeof *j);
    if (j == NULL) {
        api_reply_error(a, API_E_OUT_OF_MEMORY, "backup: out of memory");
        return;
    }
    j->n = n;
    j->a = a;
    j->fd = -1;
    j->niced = true;
    snprintf(j->store_path, sizeof j->store_path, "%s",
             ledger_store_path(n->store));
    snprintf(j->tmp_path, sizeof j->tmp_path, "%s/backup-%ld-%u.tmp",
             n->cfg->data_dir, (long)getpid(), ++counter);
    if (ledger_repl_flush(n->repl) != 0) {
        free(j);
        api_reply_error(a, API_E_STORAGE_ERROR,
                        "the store failed to commit: no backup");
        return;
    }
    ledger_repl_status(n->repl, &st);
    j->term = st.term;
    running = true;
    if (uv_async_init(n->loop, &j->done, createDone) != 0) {
        jobFree(j);
        api_reply_error(a, API_E_UNAVAILABLE, "cannot start the backup");
        return;
    }
    j->done.data = j;
    j->have_async = true;
    if (uv_thread_create(&j->thread, createWork, j) != 0) {
        jobFree(j);
        api_reply_error(a, API_E_UNAVAILABLE, "cannot start the backup");
    }
}

void backup_remove_stale(const char *data_dir)
{
    DIR *d = opendir(data_dir);
    struct dirent *e;
    if (d == NULL) {
        return;
    }
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (strncmp(e->d_name, "backup-", 7) == 0 && len > 11 &&
            strcmp(e->d_name + len - 4, ".tmp") == 0) {
            char path[4400];
            snprintf(path, sizeof path, "%s/%s", data_dir, e->d_name);
            if (unlink(path) == 0) {
                ledger_log(LOG_INFO, NULL,
                           "removed %s, left by a backup that never ended",
                           path);
            }
        }
    }
    closedir(d);
}
