/* Raft's files of a stopped node, offline (see disk.h).
 *
 * Reading goes through raft_uv's own loader (io->load), the code a start
 * runs, so the figures are the ones the node would start from. Loading is
 * not read-only in raft 0.15: it truncates and renames an open segment
 * into a closed one, removes leftover temporary files and probes the file
 * system with a file of its own. ledger_repl_disk_read therefore loads a
 * private copy of the directory's files; the directory itself is never
 * written. Auto-recovery (which renames a segment that fails its checksum
 * and loads again without it) is off in both functions: corruption is
 * reported, and deciding what to do with it is the caller's.
 *
 * The latest configuration is decoded from the newest RAFT_CHANGE entry.
 * raft 0.15 exports an encoder but no decoder, so the small format
 * (version 1, u64le count, then per server u64le id, NUL-terminated
 * address, u8 role) is decoded here, and the result is accepted only if
 * raft's own encoder gives back the same bytes (but for the padding to 8
 * bytes, which raft leaves uninitialised).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libiberty/libiberty.h>
#include <raft.h>
#include <raft/uv.h>

#include "replication/disk.h"

/* The transport is never started, but raft_uv needs one and keeps a
 * pointer to the address. */
static const char DISK__ADDRESS[] = "127.0.0.1:1";

struct diskIo {
    uv_loop_t loop;
    struct raft_uv_transport transport;
    struct raft_io io;
    bool closed;
};

static void diskIoClosed(struct raft_io *io)
{
    ((struct diskIo *)io->data)->closed = true;
}

static int diskIoInit(struct diskIo *d, const char *dir, char *err,
                      size_t errlen)
{
    int rv;

    memset(d, 0, sizeof *d);
    uv_loop_init(&d->loop);
    rv = raft_uv_tcp_init(&d->transport, &d->loop);
    if (rv != 0) {
        snprintf(err, errlen, "raft transport: %s", raft_strerror(rv));
        uv_loop_close(&d->loop);
        return -1;
    }
    rv = raft_uv_init(&d->io, &d->loop, dir, &d->transport);
    if (rv != 0) {
        snprintf(err, errlen, "raft storage in %s: %s", dir,
                 d->io.errmsg[0] ? d->io.errmsg : raft_strerror(rv));
        raft_uv_tcp_close(&d->transport);
        uv_loop_close(&d->loop);
        return -1;
    }
    raft_uv_set_auto_recovery(&d->io, false);
    d->io.data = d;
    return 0;
}

/* Close what io->init opened (if it ran), then free everything. */
static void diskIoClose(struct diskIo *d, bool started)
{
    if (started) {
        d->io.close(&d->io, diskIoClosed);
        while (!d->closed && uv_run(&d->loop, UV_RUN_ONCE) != 0) {
        }
    }
    uv_run(&d->loop, UV_RUN_DEFAULT);
    raft_uv_close(&d->io);
    raft_uv_tcp_close(&d->transport);
    uv_loop_close(&d->loop);
}

/* ---- Copy of a directory's files --------------------------------------- */

static int copyFile(const char *from, const char *to, char *err, size_t errlen)
{
    char buf[1 << 16];
    int in = open(from, O_RDONLY | O_CLOEXEC);
    int out;
    ssize_t n;

    if (in < 0) {
        snprintf(err, errlen, "open %.300s: %s", from, strerror(errno));
        return -1;
    }
    out = open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (out < 0) {
        snprintf(err, errlen, "create %.300s: %s", to, strerror(errno));
        close(in);
        return -1;
    }
    while ((n = read(in, buf, sizeof buf)) > 0) {
        if (write(out, buf, (size_t)n) != n) {
            snprintf(err, errlen, "write %.300s: %s", to, strerror(errno));
            n = -1;
            break;
        }
    }
    if (n < 0 && err[0] == '\0') {
        snprintf(err, errlen, "read %.300s: %s", from, strerror(errno));
    }
    close(in);
    close(out);
    return n < 0 ? -1 : 0;
}

static void removeTree(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char path[4096];

    if (d != NULL) {
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
                snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
                unlink(path);
            }
        }
        closedir(d);
    }
    rmdir(dir);
}

/* Copy the regular files of `dir` into a new temporary directory, whose
 * path goes to tmp (size 4096). */
static int copyDir(const char *dir, char *tmp, char *err, size_t errlen)
{
    const char *base = getenv("TMPDIR");
    DIR *d;
    struct dirent *e;
    char from[4096];
    char to[4096];
    struct stat st;
    int rv = 0;

    snprintf(tmp, 4096, "%s/ledger-raft-XXXXXX",
             base != NULL && base[0] != '\0' ? base : "/tmp");
    if (mkdtemp(tmp) == NULL) {
        snprintf(err, errlen, "create a temporary copy in %.300s: %s", tmp,
                 strerror(errno));
        return -1;
    }
    d = opendir(dir);
    if (d == NULL) {
        snprintf(err, errlen, "open %.300s: %s", dir, strerror(errno));
        removeTree(tmp);
        return -1;
    }
    while (rv == 0 && (e = readdir(d)) != NULL) {
        snprintf(from, sizeof from, "%s/%s", dir, e->d_name);
        if (stat(from, &st) != 0 || !S_ISREG(st.st_mode)) {
            continue;
        }
        snprintf(to, sizeof to, "%s/%s", tmp, e->d_name);
        rv = copyFile(from, to, err, errlen);
    }
    closedir(d);
    if (rv != 0) {
        removeTree(tmp);
    }
    return rv;
}

/* ---- Configuration ----------------------------------------------------- */

static bool allZero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i] != 0) {
            return false;
        }
    }
    return true;
}

static uint64_t getU64le(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) {
        v = (v << 8) | p[i];
    }
    return v;
}

/* Decode an encoded configuration into out->members; -1 if malformed or
 * if raft's encoder does not give the same bytes back. */
static int decodeConfiguration(const struct raft_buffer *buf,
                               struct ledger_repl_disk *out)
{
    const uint8_t *p = buf->base;
    const uint8_t *end = p + buf->len;
    struct raft_configuration conf;
    struct raft_buffer again = {NULL, 0};
    uint64_t n;
    int rv = -1;

    if (buf->len < 9 || p[0] != 1) {
        return -1;
    }
    n = getU64le(p + 1);
    p += 9;
    if (n == 0 || n > REPL_DISK_MAX_MEMBERS) {
        return -1;
    }
    raft_configuration_init(&conf);
    out->n_members = 0;
    for (uint64_t i = 0; i < n; i++) {
        const uint8_t *nul;
        size_t len;
        if (end - p < 8) {
            goto out;
        }
        out->members[i].id = getU64le(p);
        p += 8;
        nul = memchr(p, '\0', (size_t)(end - p));
        if (nul == NULL || nul + 1 >= end) {
            goto out;
        }
        len = (size_t)(nul - p);
        if (len >= REPL_ADDR_MAX) {
            goto out;
        }
        memcpy(out->members[i].raft_addr, p, len + 1);
        p = nul + 1;
        out->members[i].role = *p++;
        if (raft_configuration_add(&conf, out->members[i].id,
                                   out->members[i].raft_addr,
                                   out->members[i].role) != 0) {
            goto out;
        }
        out->n_members++;
    }
    /* raft pads the encoding to 8 bytes without clearing the padding:
     * compare what precedes it. */
    if (raft_configuration_encode(&conf, &again) != 0 ||
        again.len != buf->len ||
        memcmp(again.base, buf->base,
               (size_t)(p - (const uint8_t *)buf->base)) != 0) {
        goto out;
    }
    rv = 0;
out:
    raft_free(again.base);
    raft_configuration_close(&conf);
    if (rv != 0) {
        out->n_members = 0;
    }
    return rv;
}

static void freeLoaded(struct raft_snapshot *snapshot,
                       struct raft_entry *entries, size_t n)
{
    void *batch = NULL;
    if (snapshot != NULL) {
        for (unsigned i = 0; i < snapshot->n_bufs; i++) {
            raft_free(snapshot->bufs[i].base);
        }
        raft_free(snapshot->bufs);
        raft_configuration_close(&snapshot->configuration);
        raft_free(snapshot);
    }
    for (size_t i = 0; i < n; i++) {
        if (entries[i].batch != batch) {
            batch = entries[i].batch;
            raft_free(batch);
        }
    }
    raft_free(entries);
}

/* ---- Read -------------------------------------------------------------- */

static int loadDir(const char *dir, struct ledger_repl_disk *out, char *err,
                   size_t errlen)
{
    struct diskIo d;
    struct raft_snapshot *snapshot = NULL;
    struct raft_entry *entries = NULL;
    raft_index start = 0;
    raft_term term = 0;
    raft_id vote = 0;
    size_t n = 0;
    int rv;

    memset(out, 0, sizeof *out);
    if (diskIoInit(&d, dir, err, errlen) != 0) {
        return -1;
    }
    rv = d.io.init(&d.io, 1, DISK__ADDRESS);
    if (rv != 0) {
        snprintf(err, errlen, "raft storage: %s",
                 d.io.errmsg[0] ? d.io.errmsg : raft_strerror(rv));
        diskIoClose(&d, false);
        return -1;
    }
    rv = d.io.load(&d.io, &term, &vote, &snapshot, &start, &entries, &n);
    if (rv != 0) {
        snprintf(err, errlen, "raft log: %s",
                 d.io.errmsg[0] ? d.io.errmsg : raft_strerror(rv));
        diskIoClose(&d, true);
        return -1;
    }
    out->term = term;
    out->voted_for = vote;
    out->n_entries = n;
    if (snapshot != NULL) {
        out->snapshot_index = snapshot->index;
        out->snapshot_term = snapshot->term;
        out->last_index = snapshot->index;
        out->last_term = snapshot->term;
    }
    if (n > 0) {
        out->first_index = start;
        out->last_index = start + n - 1;
        out->last_term = entries[n - 1].term;
    }
    rv = 0;
    for (size_t i = n; i > 0; i--) {
        if (entries[i - 1].type == RAFT_CHANGE) {
            out->config_index = start + i - 1;
            rv = decodeConfiguration(&entries[i - 1].buf, out);
            break;
        }
    }
    if (out->config_index == 0 && snapshot != NULL) {
        out->config_index = snapshot->index;
        out->n_members = 0;
        for (unsigned i = 0;
             i < snapshot->configuration.n && i < REPL_DISK_MAX_MEMBERS; i++) {
            const struct raft_server *s = &snapshot->configuration.servers[i];
            out->members[i].id = s->id;
            snprintf(out->members[i].raft_addr,
                     sizeof out->members[i].raft_addr, "%s", s->address);
            out->members[i].role = s->role;
            out->n_members++;
        }
    }
    if (rv != 0) {
        snprintf(err, errlen,
                 "raft log: the configuration at index %llu is malformed",
                 (unsigned long long)out->config_index);
    }
    freeLoaded(snapshot, entries, n);
    diskIoClose(&d, true);
    return rv;
}

/* ---- Start check -------------------------------------------------------- */

/* raft 0.15's segment format (src/uv_segment.c, uv_encoding.c): a u64
 * format version (1), then batches: u32 checksum of the header, u32
 * checksum of the data, the header (u64 entry count n, then per entry u64
 * term, u8 type, 3 unused bytes, u32 data length), the data. Integers are
 * little endian; the checksum is libiberty's CRC-32 (raft's byte.c is a
 * copy of it), computed here by libiberty's xcrc32. Open segments are
 * allocated at UV__MAX_SEGMENT_SIZE (raft's default, never changed here)
 * and filled from the start; a torn last write leaves a bad batch followed
 * by nothing that checks out. */
#define DISK__SEGMENT_SIZE (8u << 20)
#define DISK__MAX_BATCH 65536u /* Entries per batch, at most (sanity). */

static uint32_t getU32le(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

static unsigned crc(const uint8_t *p, size_t len)
{
    unsigned c = 0;
    /* xcrc32 takes an int length: feed it in pieces. */
    while (len > 0) {
        size_t k = len > (1u << 30) ? (1u << 30) : len;
        c = xcrc32(p, (int)k, c);
        p += k;
        len -= k;
    }
    return c;
}

/* Size of the batch at off if it checks out (both checksums), else 0. */
static size_t batchAt(const uint8_t *buf, size_t len, size_t off)
{
    uint64_t n;
    size_t header;
    size_t data = 0;

    if (len - off < 16) {
        return 0;
    }
    n = getU64le(buf + off + 8);
    if (n == 0 || n > DISK__MAX_BATCH) {
        return 0;
    }
    header = 8 + 16 * (size_t)n;
    if (len - off - 8 < header) {
        return 0;
    }
    if (crc(buf + off + 8, header) != getU32le(buf + off)) {
        return 0;
    }
    for (uint64_t i = 0; i < n; i++) {
        data += getU32le(buf + off + 8 + 8 + 16 * i + 12);
    }
    if (len - off - 8 - header < data ||
        crc(buf + off + 8 + header, data) != getU32le(buf + off + 4)) {
        return 0;
    }
    return 8 + header + data;
}

/* Scan one open segment: 0 fine (maybe a torn tail), 1 damaged. */
static int scanOpen(const char *path, const char *name, char *err,
                    size_t errlen)
{
    struct stat st;
    uint8_t *buf;
    size_t off = 8;
    size_t len;
    size_t bad;
    int fd;
    int rv = 0;

    if (stat(path, &st) != 0) {
        snprintf(err, errlen, "raft/%s: %s", name, strerror(errno));
        return -1;
    }
    if (st.st_size == 0) {
        return 0; /* allocated, never written: raft removes it */
    }
    if ((size_t)st.st_size < DISK__SEGMENT_SIZE) {
        snprintf(err, errlen,
                 "raft/%s holds %lld bytes where raft allocates %u: it was "
                 "cut",
                 name, (long long)st.st_size, DISK__SEGMENT_SIZE);
        return 1;
    }
    len = (size_t)st.st_size;
    buf = malloc(len);
    if (buf == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || read(fd, buf, len) != (ssize_t)len) {
        snprintf(err, errlen, "read raft/%s: %s", name, strerror(errno));
        if (fd >= 0) {
            close(fd);
        }
        free(buf);
        return -1;
    }
    close(fd);
    if (getU64le(buf) != 1) {
        if (allZero(buf, len)) {
            free(buf);
            return 0;
        }
        snprintf(err, errlen, "raft/%s: unknown format %llu", name,
                 (unsigned long long)getU64le(buf));
        free(buf);
        return 1;
    }
    for (;;) {
        size_t k = batchAt(buf, len, off);
        if (k == 0) {
            break;
        }
        off += k;
    }
    bad = off;
    if (!allZero(buf + off, len - off)) {
        /* Not a clean end: a torn last write, unless something intact
         * follows. Batches start at 8-byte offsets. */
        for (off = bad + 8; off + 16 <= len; off += 8) {
            if (batchAt(buf, len, off) > 0) {
                snprintf(err, errlen,
                         "raft/%s: the batch at byte %zu fails its checksum "
                         "but the one at byte %zu checks out: a damaged "
                         "segment, not a torn write",
                         name, bad, off);
                rv = 1;
                break;
            }
        }
    }
    free(buf);
    return rv;
}

/* Read a whole file into a malloc'ed buffer; 0, or -1 with err. */
static int readAll(const char *path, const char *name, uint8_t **out,
                   size_t *len, char *err, size_t errlen)
{
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) != 0) {
        snprintf(err, errlen, "read raft/%s: %s", name, strerror(errno));
        if (fd >= 0) {
            close(fd);
        }
        return -1;
    }
    *len = (size_t)st.st_size;
    *out = malloc(*len > 0 ? *len : 1);
    if (*out == NULL) {
        close(fd);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (read(fd, *out, *len) != (ssize_t)*len) {
        snprintf(err, errlen, "read raft/%s: %s", name, strerror(errno));
        close(fd);
        free(*out);
        return -1;
    }
    close(fd);
    return 0;
}

/* Scan one closed segment: every batch must check out, back to back to
 * the end of the file (raft truncates a segment it closes to its last
 * batch). 0 fine, 1 damaged, -1 could not read. Done before raft's loader
 * sees a damaged closed segment: raft 0.15 leaks the entries it loaded
 * before a bad batch (uvSegmentLoadClosed's error path). */
static int scanClosed(const char *path, const char *name, char *err,
                      size_t errlen)
{
    uint8_t *buf;
    size_t len;
    size_t off = 8;
    int rv = 0;

    if (readAll(path, name, &buf, &len, err, errlen) != 0) {
        return -1;
    }
    if (len < 8 || getU64le(buf) != 1) {
        snprintf(err, errlen, "raft/%s: not a segment of format 1", name);
        free(buf);
        return 1;
    }
    while (off < len) {
        size_t k = batchAt(buf, len, off);
        if (k == 0) {
            snprintf(err, errlen,
                     "raft/%s: the batch at byte %zu fails its checksum", name,
                     off);
            rv = 1;
            break;
        }
        off += k;
    }
    free(buf);
    return rv;
}

/* The segment scans of every file in raft_dir; as scanClosed. */
static int scanSegments(const char *raft_dir, char *err, size_t errlen)
{
    struct dirent *e;
    char path[4096];
    DIR *dir;
    int rv = 0;

    dir = opendir(raft_dir);
    if (dir == NULL) {
        if (errno == ENOENT) {
            return 0;
        }
        snprintf(err, errlen, "open %.300s: %s", raft_dir, strerror(errno));
        return -1;
    }
    while (rv == 0 && (e = readdir(dir)) != NULL) {
        snprintf(path, sizeof path, "%s/%s", raft_dir, e->d_name);
        if (strncmp(e->d_name, "open-", 5) == 0) {
            rv = scanOpen(path, e->d_name, err, errlen);
        } else if (e->d_name[0] >= '0' && e->d_name[0] <= '9' &&
                   strchr(e->d_name, '-') != NULL) {
            rv = scanClosed(path, e->d_name, err, errlen);
        }
    }
    closedir(dir);
    return rv;
}

int ledger_repl_disk_check(const char *raft_dir, uint64_t min_last_index,
                           char *err, size_t errlen)
{
    struct ledger_repl_disk d;
    int rv;

    err[0] = '\0';
    rv = scanSegments(raft_dir, err, errlen);
    if (rv != 0) {
        return rv;
    }
    if (loadDir(raft_dir, &d, err, errlen) != 0) {
        return 1;
    }
    if (d.last_index < min_last_index) {
        snprintf(err, errlen,
                 "the raft log ends at index %llu but the store applied "
                 "%llu: committed entries are gone from the log",
                 (unsigned long long)d.last_index,
                 (unsigned long long)min_last_index);
        return 1;
    }
    return 0;
}

int ledger_repl_disk_read(const char *raft_dir, struct ledger_repl_disk *out,
                          char *err, size_t errlen)
{
    char tmp[4096];
    int rv;

    err[0] = '\0';
    if (scanSegments(raft_dir, err, errlen) != 0) {
        return -1;
    }
    if (copyDir(raft_dir, tmp, err, errlen) != 0) {
        return -1;
    }
    rv = loadDir(tmp, out, err, errlen);
    removeTree(tmp);
    return rv;
}

/* ---- Recover ----------------------------------------------------------- */

struct diskRaft {
    struct raft raft;
    bool closed;
};

static int fsmApply(struct raft_fsm *fsm, const struct raft_buffer *buf,
                    void **result)
{
    (void)fsm, (void)buf, (void)result;
    return RAFT_SHUTDOWN; /* never started: never called */
}

static void diskRaftClosed(struct raft *r)
{
    ((struct diskRaft *)r->data)->closed = true;
}

int ledger_repl_disk_recover(const char *raft_dir, uint64_t id,
                             const struct ledger_repl_member *members, size_t n,
                             uint64_t *index, char *err, size_t errlen)
{
    struct ledger_repl_disk before;
    struct raft_configuration conf;
    struct raft_fsm fsm;
    struct diskRaft dr;
    struct diskIo d;
    int rv;

    err[0] = '\0';
    if (ledger_repl_disk_read(raft_dir, &before, err, errlen) != 0) {
        return -1;
    }
    raft_configuration_init(&conf);
    for (size_t i = 0; i < n; i++) {
        rv = raft_configuration_add(&conf, members[i].id, members[i].raft_addr,
                                    RAFT_VOTER);
        if (rv != 0) {
            snprintf(err, errlen, "member %llu: %s",
                     (unsigned long long)members[i].id, raft_strerror(rv));
            raft_configuration_close(&conf);
            return -1;
        }
    }
    if (diskIoInit(&d, raft_dir, err, errlen) != 0) {
        raft_configuration_close(&conf);
        return -1;
    }
    memset(&fsm, 0, sizeof fsm);
    fsm.version = 1;
    fsm.apply = fsmApply;
    memset(&dr, 0, sizeof dr);
    rv = raft_init(&dr.raft, &d.io, &fsm, id, DISK__ADDRESS);
    if (rv != 0) {
        snprintf(err, errlen, "raft init: %s", raft_errmsg(&dr.raft));
        raft_configuration_close(&conf);
        diskIoClose(&d, false);
        return -1;
    }
    dr.raft.data = &dr;
    rv = raft_recover(&dr.raft, &conf);
    raft_configuration_close(&conf);
    if (rv != 0) {
        snprintf(err, errlen, "raft recover: %s",
                 d.io.errmsg[0] ? d.io.errmsg : raft_strerror(rv));
    }
    raft_close(&dr.raft, diskRaftClosed);
    while (!dr.closed && uv_run(&d.loop, UV_RUN_ONCE) != 0) {
    }
    diskIoClose(&d, false);
    if (rv != 0) {
        return -1;
    }
    *index = before.last_index + 1;
    return 0;
}
