/* ledgerctl backup FILE [--endpoint HOST:PORT] and ledgerctl backup verify
 * FILE (docs/operations.md, "Disaster recovery").
 *
 * backup: GET /v1/backup from the leader (found through /v1/cluster) or
 * from --endpoint, streamed to FILE.partial.XXXXXX in the directory of
 * FILE (never buffered whole) while its SHA-256 is computed; then
 *   1. the checksum of the bytes written must equal the node's
 *      X-Ledger-Sha256 (end to end: every byte arrived and was written;
 *      hashing them as they arrive spares a second pass over the file),
 *   2. `ledgerd --verify-backup TMP --chain-only` must find the stamps and
 *      the whole hash chain good (ledgerctl does not know the store's
 *      format: docs/architecture.md, "Backups and restore"), and its
 *      position, hash and cluster id must be the ones the node announced,
 *   3. only then TMP is renamed to FILE and FILE.sha256 written (sha256sum
 *      format, via its own temporary name), and the directory fsynced.
 * Any failure removes TMP: nothing that looks like a complete backup is
 * left behind. Prints "backup: N events, position P, hash H, verified".
 *
 * backup verify: `ledgerd --verify-backup FILE` (FILE.sha256, stamps,
 * chain); exit 0, or 1 with the first bad position or the reason.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "ctl.h"

#define BACKUP__STALL_MS                                                       \
    300000 /* Default: give up after 5 min without data.                       \
            */

/* ---- ledgerd --verify-backup --------------------------------------------- */

int ctlVerifyBackupFile(const char *ledgerd, const char *file,
                        const char *sha256, const char *what, json_t **out)
{
    /* sha256 "": the caller checked the bytes itself (--chain-only). */
    char *args[6];
    char buf[8192];
    size_t len = 0;
    int pfd[2];
    int status = 0;
    int n = 0;
    pid_t pid;
    json_t *v;

    *out = NULL;
    args[n++] = (char *)ledgerd;
    args[n++] = "--verify-backup";
    args[n++] = (char *)file;
    if (sha256 != NULL && sha256[0] == '\0') {
        args[n++] = "--chain-only";
    } else if (sha256 != NULL) {
        args[n++] = "--sha256";
        args[n++] = (char *)sha256;
    }
    args[n] = NULL;
    if (pipe2(pfd, O_CLOEXEC) != 0) {
        return ctlFail("%s: pipe: %s", what, strerror(errno));
    }
    fflush(stdout);
    fflush(stderr);
    pid = fork();
    if (pid < 0) {
        close(pfd[0]);
        close(pfd[1]);
        return ctlFail("%s: fork: %s", what, strerror(errno));
    }
    if (pid == 0) {
        /* A batch job: it yields the CPU to the nodes when they share the
         * machine (a failure to change the nice value is harmless). */
        errno = 0;
        if (nice(10) == -1 && errno != 0) {
            errno = 0;
        }
        dup2(pfd[1], 1);
        execv(ledgerd, args);
        dprintf(2, "ledgerctl: %s: exec %s: %s\n", what, ledgerd,
                strerror(errno));
        _exit(127);
    }
    close(pfd[1]);
    for (;;) {
        ssize_t r = read(pfd[0], buf + len, sizeof buf - 1 - len);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r <= 0) {
            break;
        }
        len += (size_t)r;
        if (len == sizeof buf - 1) {
            break;
        }
    }
    close(pfd[0]);
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    buf[len] = '\0';
    v = json_loads(buf, JSON_DISABLE_EOF_CHECK, NULL);
    if (!json_is_object(v) || !WIFEXITED(status) ||
        (WEXITSTATUS(status) != 0 && WEXITSTATUS(status) != 1)) {
        json_decref(v);
        return ctlFail("%s: %s --verify-backup %s failed (exit %d): is it "
                       "the ledgerd of this ledgerctl?",
                       what, ledgerd, file,
                       WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    }
    *out = v;
    return 0;
}

/* ---- backup verify ------------------------------------------------------- */

static const char *jstr(const json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s != NULL ? s : "";
}

static long long jint(const json_t *o, const char *key)
{
    return (long long)json_integer_value(json_object_get(o, key));
}

int ctlCmdBackupVerify(struct ctl *ctl, int argc, char **argv)
{
    const char *pos[2];
    char ledgerd[PATH_MAX];
    json_t *v = NULL;
    int n_pos;
    int rv =
        ctlParseArgs(ctl, "backup verify", argc, argv, NULL, pos, 2, &n_pos);
    if (rv != 0) {
        return CTL_ARGS_EXIT(rv);
    }
    if (n_pos != 1) {
        return ctlUsage("backup verify needs one FILE");
    }
    if (ctlFindLedgerd(ledgerd, sizeof ledgerd, "backup verify") != 0 ||
        ctlVerifyBackupFile(ledgerd, pos[0], NULL, "backup verify", &v) != 0) {
        return CTL_EXIT_FAIL;
    }
    if (!json_is_true(json_object_get(v, "ok"))) {
        rv = ctlFail("backup verify %s: %s", pos[0], jstr(v, "reason"));
        if (ctl->json) {
            ctlPrintJson(v);
        }
        json_decref(v);
        return rv;
    }
    if (ctl->json) {
        ctlPrintJson(v);
    } else {
        printf("backup %s: %lld events, position %lld, hash %s, cluster %s, "
               "taken %s: verified\n",
               pos[0], jint(v, "events"), jint(v, "position"), jstr(v, "hash"),
               jstr(v, "cluster_id"), jstr(v, "created_at"));
    }
    json_decref(v);
    return CTL_EXIT_OK;
}

/* ---- backup -------------------------------------------------------------- */

struct download {
    int fd;
    EVP_MD_CTX *md;
    uint64_t bytes;
    int write_errno; /* A local write failed (disk full...). */
};

static int sinkFn(void *arg, const char *data, size_t len)
{
    struct download *d = arg;
    size_t done = 0;
    while (done < len) {
        ssize_t n = write(d->fd, data + done, len - done);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            d->write_errno = errno;
            return -1;
        }
        done += (size_t)n;
    }
    if (EVP_DigestUpdate(d->md, data, len) != 1) {
        d->write_errno = ENOMEM;
        return -1;
    }
    d->bytes += len;
    return 0;
}

/* The leader's API address, from /v1/cluster, with the scheme of the
 * endpoint that answered. */
static int leaderAddr(struct ctl *ctl, char *out, size_t len)
{
    json_t *cluster = NULL;
    json_t *m;
    size_t i;
    json_int_t leader;
    const char *last;
    int found = 0;
    int rv = ctlApi(ctl, "backup", "GET", "/v1/cluster", NULL, &cluster, NULL);
    if (rv != 0) {
        return rv;
    }
    leader = json_integer_value(json_object_get(cluster, "leader_id"));
    json_array_foreach(json_object_get(cluster, "members"), i, m)
    {
        const char *api = json_string_value(json_object_get(m, "api_addr"));
        if (leader != 0 &&
            json_integer_value(json_object_get(m, "id")) == leader &&
            api != NULL) {
            last = ledger_client_last_endpoint(ctlClient(ctl));
            snprintf(out, len, "%s%s",
                     last != NULL && strncmp(last, "https://", 8) == 0
                         ? "https://"
                         : "",
                     api);
            found = 1;
        }
    }
    json_decref(cluster);
    if (!found) {
        return ctlFail("backup: no leader known: pass --endpoint HOST:PORT "
                       "to back up a chosen node");
    }
    return 0;
}

static int syncDirOf(const char *file)
{
    char dir[PATH_MAX];
    const char *slash = strrchr(file, '/');
    int fd;
    int rv;
    if (slash == NULL) {
        snprintf(dir, sizeof dir, ".");
    } else if (slash == file) {
        snprintf(dir, sizeof dir, "/");
    } else {
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - file), file);
    }
    fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        return -1;
    }
    rv = fsync(fd);
    close(fd);
    return rv;
}

/* FILE.sha256 in the sha256sum format, written under a temporary name. */
static int writeChecksum(const char *file, const char *hex)
{
    char path[PATH_MAX];
    char tmp[PATH_MAX + 16];
    const char *base = strrchr(file, '/');
    FILE *f;
    int fd;

    base = base != NULL ? base + 1 : file;
    snprintf(path, sizeof path, "%s.sha256", file);
    snprintf(tmp, sizeof tmp, "%s.partial.XXXXXX", path);
    fd = mkstemp(tmp);
    if (fd < 0) {
        return -1;
    }
    f = fdopen(fd, "w");
    if (f == NULL) {
        close(fd);
        unlink(tmp);
        return -1;
    }
    fchmod(fd, 0644);
    if (fprintf(f, "%s  %s\n", hex, base) < 0 || fflush(f) != 0 ||
        fsync(fd) != 0) {
        fclose(f);
        unlink(tmp);
        return -1;
    }
    if (fclose(f) != 0 || rename(tmp, path) != 0) {
        unlink(tmp);
        return -1;
    }
    return 0;
}

int ctlCmdBackup(struct ctl *ctl, int argc, char **argv)
{
    struct ctl_flag flags[] = {{"endpoint", 1, NULL}, {NULL, 0, NULL}};
    struct ledger_http_response r;
    struct download d = {-1, NULL, 0, 0};
    const char *pos[2];
    const char *file;
    const char *endpoint;
    char ledgerd[PATH_MAX];
    char addr[PATH_MAX];
    char tmp[PATH_MAX + 32];
    char hex[65];
    unsigned char sum[32];
    unsigned sum_len = 0;
    char *want_sha = NULL;
    char *want_pos = NULL;
    char *want_hash = NULL;
    char *want_cluster = NULL;
    json_t *v = NULL;
    ledger_client *c;
    struct stat st;
    char err[256];
    int n_pos;
    int rv = ctlParseArgs(ctl, "backup", argc, argv, flags, pos, 2, &n_pos);

    memset(&r, 0, sizeof r);
    if (rv != 0) {
        return CTL_ARGS_EXIT(rv);
    }
    if (n_pos != 1) {
        return ctlUsage("backup needs one FILE (or: backup verify FILE)");
    }
    file = pos[0];
    endpoint = ctlFlag(flags, "endpoint");
    if (endpoint != NULL) {
        ledger_client *probe = NULL;
        if (ledger_client_create(endpoint, NULL, &probe, err, sizeof err) !=
                0 ||
            strchr(endpoint, ',') != NULL) {
            ledger_client_destroy(probe);
            return ctlUsage("backup: --endpoint '%s' is not one HOST:PORT",
                            endpoint);
        }
        ledger_client_destroy(probe);
    }
    if (stat(file, &st) == 0 && S_ISDIR(st.st_mode)) {
        return ctlFail("backup: %s is a directory: name the backup file", file);
    }
    if (ctlFindLedgerd(ledgerd, sizeof ledgerd, "backup") != 0) {
        return CTL_EXIT_FAIL;
    }
    c = ctlClient(ctl);
    if (c == NULL) {
        return CTL_EXIT_USAGE;
    }
    if (endpoint != NULL) {
        snprintf(addr, sizeof addr, "%s", endpoint);
    } else if (leaderAddr(ctl, addr, sizeof addr) != 0) {
        return CTL_EXIT_FAIL;
    }

    snprintf(tmp, sizeof tmp, "%s.partial.XXXXXX", file);
    d.fd = mkstemp(tmp);
    if (d.fd < 0) {
        return ctlFail("backup: cannot create a file next to %s: %s", file,
                       strerror(errno));
    }
    fchmod(d.fd, 0600);
    d.md = EVP_MD_CTX_new();
    if (d.md == NULL || EVP_DigestInit_ex(d.md, EVP_sha256(), NULL) != 1) {
        rv = ctlFail("backup: out of memory");
        goto out_unlink;
    }
    rv = ledger_client_download(c, addr, "/v1/backup",
                                ctl->timeout_ms != 0 ? ctl->timeout_ms
                                                     : BACKUP__STALL_MS,
                                sinkFn, &d, &r);
    if (rv != 0) {
        if (d.write_errno != 0) {
            rv = ctlFail("backup: write %s: %s", tmp, strerror(d.write_errno));
        } else {
            rv = ctlFail("backup: %s", ledger_client_errmsg(c));
        }
        goto out_unlink;
    }
    if (r.status != 200) {
        char desc[512];
        ctlDescribeError(&r, desc, sizeof desc);
        rv = ctlFail("backup: %s (from %s)", desc, addr);
        goto out_unlink;
    }
    if (fsync(d.fd) != 0) {
        rv = ctlFail("backup: fsync %s: %s", tmp, strerror(errno));
        goto out_unlink;
    }
    EVP_DigestFinal_ex(d.md, sum, &sum_len);
    for (unsigned i = 0; i < 32; i++) {
        snprintf(hex + 2 * i, 3, "%02x", sum[i]);
    }
    want_sha = ledger_http_response_header(&r, "X-Ledger-Sha256");
    want_pos = ledger_http_response_header(&r, "X-Ledger-Position");
    want_hash = ledger_http_response_header(&r, "X-Ledger-Hash");
    want_cluster = ledger_http_response_header(&r, "X-Ledger-Cluster-Id");
    if (want_sha == NULL || want_pos == NULL || want_hash == NULL ||
        want_cluster == NULL) {
        rv = ctlFail("backup: %s sent no X-Ledger-Sha256/-Position/-Hash/"
                     "-Cluster-Id: is it a ledgerd that backs up?",
                     addr);
        goto out_unlink;
    }
    if (strcmp(want_sha, hex) != 0) {
        rv = ctlFail("backup: checksum mismatch: received %llu bytes with "
                     "SHA-256 %.16s..., %s announced %.16s...",
                     (unsigned long long)d.bytes, hex, addr, want_sha);
        goto out_unlink;
    }
    if (ctlVerifyBackupFile(ledgerd, tmp, "", "backup", &v) != 0) {
        rv = CTL_EXIT_FAIL;
        goto out_unlink;
    }
    if (!json_is_true(json_object_get(v, "ok"))) {
        rv = ctlFail("backup: the copy does not verify: %s", jstr(v, "reason"));
        goto out_unlink;
    }
    if (strtoll(want_pos, NULL, 10) != jint(v, "position") ||
        strcmp(want_hash, jstr(v, "hash")) != 0 ||
        strcmp(want_cluster, jstr(v, "cluster_id")) != 0) {
        rv = ctlFail("backup: the copy holds position %lld hash %.16s... of "
                     "cluster %s, the node announced position %s hash "
                     "%.16s... of cluster %s",
                     jint(v, "position"), jstr(v, "hash"),
                     jstr(v, "cluster_id"), want_pos, want_hash, want_cluster);
        goto out_unlink;
    }
    close(d.fd);
    d.fd = -1;
    if (rename(tmp, file) != 0) {
        rv = ctlFail("backup: rename %s to %s: %s", tmp, file, strerror(errno));
        goto out_unlink;
    }
    if (writeChecksum(file, hex) != 0 || syncDirOf(file) != 0) {
        rv = ctlFail("backup: write %s.sha256: %s (%s itself is complete)",
                     file, strerror(errno), file);
        goto out;
    }
    if (ctl->json) {
        json_object_set_new(v, "file", json_string(file));
        json_object_set_new(v, "sha256", json_string(want_sha));
        json_object_set_new(v, "bytes", json_integer((json_int_t)d.bytes));
        json_object_set_new(v, "from", json_string(addr));
        ctlPrintJson(v);
    } else {
        printf("backup: %lld events, position %lld, hash %s, verified\n",
               jint(v, "events"), jint(v, "position"), jstr(v, "hash"));
    }
    rv = CTL_EXIT_OK;
    goto out;

out_unlink:
    unlink(tmp);
out:
    if (d.fd >= 0) {
        close(d.fd);
    }
    EVP_MD_CTX_free(d.md);
    ledger_http_response_free(&r);
    free(want_sha);
    free(want_pos);
    free(want_hash);
    free(want_cluster);
    json_decref(v);
    return rv;
}
