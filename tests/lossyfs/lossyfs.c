/* lossyfs: a FUSE passthrough filesystem that can lose every write not yet
 * fsynced, as a power cut does (chaos fault `lose-unsynced`,
 * docs/chaos.md).
 *
 *   lossyfs BACKING_DIR MOUNTPOINT [-o FUSE_OPTIONS]   (stays in the
 *                                                      foreground)
 *   kill -USR1 PID     drop every unsynced write now (stop the programs
 *                      using the mount first: a power cut)
 *
 * Every operation is passed through to BACKING_DIR at once: reads see what
 * was written, the backing files hold it, and a run that never gets
 * SIGUSR1 is a plain passthrough. What a power cut would take away is
 * remembered instead, per file (inode), from the first write after its
 * last fsync:
 * - its size at that fsync ("synced size");
 * - the content, at that fsync, of every 4 KiB block a write, truncate or
 *   fallocate has changed since, saved before the first change (blocks
 *   beyond the synced size need nothing: the size is restored).
 * fsync and fdatasync of a file, and every write through a descriptor
 * opened with O_SYNC or O_DSYNC (Raft's segments), make the whole file
 * durable: its record is forgotten. (A synchronous write makes more than
 * its own range durable here: lossyfs may lose less than a real power cut,
 * never more.)
 *
 * Dropping puts back every saved block and truncates each file to its
 * synced size, so every file holds what it held at its last fsync; files
 * created and never fsynced end up empty. The kernel keeps no stale copy
 * for the next user: without writeback caching every write reaches lossyfs
 * before the writer's syscall returns, and the page cache of a FUSE file
 * is invalidated when it is next opened (no keep_cache). Pages of a killed
 * process's shared mmap (SQLite's -shm) may still be written back later;
 * that file is rebuilt by SQLite when it is first opened after a crash.
 * Not modelled: directory entries (a create, rename or unlink is durable at
 * once, as if every directory were fsynced: a file that loses its last
 * name loses its record, so its blocks are freed at once); the order in
 * which a real disk would have written the unsynced blocks (all of them
 * are lost, the harshest case).
 *
 * One line on stderr per drop: "lossyfs: dropped unsynced writes: F files,
 * B blocks restored, T bytes cut".
 */
#define FUSE_USE_VERSION 31

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fuse.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/time.h>
#include <unistd.h>

#define LOSSY__BLOCK 4096 /* Granularity of the saved content. */

struct savedBlock {
    uint64_t block;
    uint32_t len; /* Bytes that existed at the fsync (< BLOCK at EOF). */
    char *data;   /* NULL: all zero. */
};

/* What a power cut would take from one file (see the file comment). */
struct unsynced {
    dev_t dev;
    ino_t ino;
    int fd;             /* O_RDWR on the backing inode, for the drop. */
    off_t synced_size;  /* Size at the last fsync. */
    uint8_t *saved_map; /* One bit per block: content saved. */
    size_t map_bytes;
    struct savedBlock *blocks;
    size_t n_blocks;
    size_t cap_blocks;
    struct unsynced *next;
};

static int backing = -1; /* The backing directory. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct unsynced *files;

/* Path relative to the backing dir ("." for the root). */
static const char *rel(const char *path)
{
    while (*path == '/') {
        path++;
    }
    return *path != '\0' ? path : ".";
}

/* ---- Unsynced state ------------------------------------------------------ */

static void forget(struct unsynced *u)
{
    for (size_t i = 0; i < u->n_blocks; i++) {
        free(u->blocks[i].data);
    }
    free(u->blocks);
    free(u->saved_map);
    close(u->fd);
    free(u);
}

/* The record of fh's inode, created (with the current size as the synced
 * size) if absent. Called with the lock held. NULL on failure (errno). */
static struct unsynced *recordOf(int fh)
{
    struct stat st;
    struct unsynced *u;
    char proc[64];

    if (fstat(fh, &st) != 0) {
        return NULL;
    }
    for (u = files; u != NULL; u = u->next) {
        if (u->dev == st.st_dev && u->ino == st.st_ino) {
            return u;
        }
    }
    u = calloc(1, sizeof *u);
    if (u == NULL) {
        errno = ENOMEM;
        return NULL;
    }
    /* Reopen read-write through /proc: works for any open mode, and for a
     * file unlinked meanwhile. */
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", fh);
    u->fd = open(proc, O_RDWR | O_CLOEXEC);
    if (u->fd < 0) {
        free(u);
        return NULL;
    }
    u->dev = st.st_dev;
    u->ino = st.st_ino;
    u->synced_size = st.st_size;
    u->next = files;
    files = u;
    return u;
}

static void dropInode(dev_t dev, ino_t ino)
{
    struct unsynced **p;
    for (p = &files; *p != NULL; p = &(*p)->next) {
        if ((*p)->dev == dev && (*p)->ino == ino) {
            struct unsynced *u = *p;
            *p = u->next;
            forget(u);
            return;
        }
    }
}

static void dropRecord(int fh)
{
    struct stat st;
    if (fstat(fh, &st) == 0) {
        dropInode(st.st_dev, st.st_ino);
    }
}

/* Before `path` loses its name (unlink, or a rename over it): if that was
 * its last link, forget its record, whose descriptor would keep the
 * inode, and its blocks, alive (a full disk would stay full). */
static void forgetName(const char *path)
{
    struct stat st;
    if (fstatat(backing, rel(path), &st, AT_SYMLINK_NOFOLLOW) == 0 &&
        S_ISREG(st.st_mode) && st.st_nlink <= 1) {
        pthread_mutex_lock(&lock);
        dropInode(st.st_dev, st.st_ino);
        pthread_mutex_unlock(&lock);
    }
}

static bool allZero(const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (b[i] != 0) {
            return false;
        }
    }
    return true;
}

/* Save the synced content of every block of [off, off + len) that is
 * inside the synced size and not saved yet. Lock held. 0 or -errno. */
static int saveRange(struct unsynced *u, off_t off, off_t len)
{
    uint64_t first;
    uint64_t last;
    char buf[LOSSY__BLOCK];

    if (len <= 0 || off >= u->synced_size) {
        return 0;
    }
    if (off + len > u->synced_size) {
        len = u->synced_size - off;
    }
    first = (uint64_t)off / LOSSY__BLOCK;
    last = (uint64_t)(off + len - 1) / LOSSY__BLOCK;
    for (uint64_t b = first; b <= last; b++) {
        struct savedBlock *s;
        ssize_t got;
        if (b / 8 >= u->map_bytes) {
            size_t nb = (b / 8 + 1) * 2;
            uint8_t *m = realloc(u->saved_map, nb);
            if (m == NULL) {
                return -ENOMEM;
            }
            memset(m + u->map_bytes, 0, nb - u->map_bytes);
            u->saved_map = m;
            u->map_bytes = nb;
        }
        if (u->saved_map[b / 8] & (1u << (b % 8))) {
            continue;
        }
        got = pread(u->fd, buf, LOSSY__BLOCK, (off_t)(b * LOSSY__BLOCK));
        if (got < 0) {
            return -errno;
        }
        if (u->n_blocks == u->cap_blocks) {
            size_t cap = u->cap_blocks ? u->cap_blocks * 2 : 16;
            struct savedBlock *nb = realloc(u->blocks, cap * sizeof *nb);
            if (nb == NULL) {
                return -ENOMEM;
            }
            u->blocks = nb;
            u->cap_blocks = cap;
        }
        s = &u->blocks[u->n_blocks];
        s->block = b;
        s->len = (uint32_t)got;
        s->data = NULL;
        if (!allZero(buf, (size_t)got)) {
            s->data = malloc((size_t)got);
            if (s->data == NULL) {
                return -ENOMEM;
            }
            memcpy(s->data, buf, (size_t)got);
        }
        u->n_blocks++;
        u->saved_map[b / 8] |= (uint8_t)(1u << (b % 8));
    }
    return 0;
}

/* Before a change of [off, off + len) through fh (len < 0: to the end of
 * the synced size). Lock held. */
static int beforeChange(int fh, off_t off, off_t len)
{
    struct unsynced *u = recordOf(fh);
    if (u == NULL) {
        return -errno;
    }
    if (len < 0) {
        len = u->synced_size - off;
    }
    return saveRange(u, off, len);
}

/* Put every unsynced file back as it was at its last fsync. */
static void dropAll(void)
{
    unsigned long nfiles = 0;
    unsigned long nblocks = 0;
    unsigned long long cut = 0;
    char zero[LOSSY__BLOCK];

    memset(zero, 0, sizeof zero);
    pthread_mutex_lock(&lock);
    while (files != NULL) {
        struct unsynced *u = files;
        struct stat st;
        files = u->next;
        nfiles++;
        for (size_t i = 0; i < u->n_blocks; i++) {
            const struct savedBlock *s = &u->blocks[i];
            if (pwrite(u->fd, s->data != NULL ? s->data : zero, s->len,
                       (off_t)(s->block * LOSSY__BLOCK)) == (ssize_t)s->len) {
                nblocks++;
            } else {
                fprintf(stderr, "lossyfs: restore block %llu: %s\n",
                        (unsigned long long)s->block, strerror(errno));
            }
        }
        if (fstat(u->fd, &st) == 0 && st.st_size > u->synced_size) {
            cut += (unsigned long long)(st.st_size - u->synced_size);
        }
        if (ftruncate(u->fd, u->synced_size) != 0) {
            fprintf(stderr, "lossyfs: truncate: %s\n", strerror(errno));
        }
        fsync(u->fd);
        forget(u);
    }
    pthread_mutex_unlock(&lock);
    fprintf(stderr,
            "lossyfs: dropped unsynced writes: %lu files, %lu blocks "
            "restored, %llu bytes cut\n",
            nfiles, nblocks, cut);
}

/* ---- Operations (passthrough, by path relative to the backing dir) ----- */

static void *lossyInit(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
    (void)conn;
    cfg->use_ino = 1;
    cfg->entry_timeout = 0;
    cfg->attr_timeout = 0;
    cfg->negative_timeout = 0;
    return NULL;
}

static int lossyGetattr(const char *path, struct stat *st,
                        struct fuse_file_info *fi)
{
    int rv = fi != NULL ? fstat((int)fi->fh, st)
                        : fstatat(backing, rel(path), st, AT_SYMLINK_NOFOLLOW);
    return rv == 0 ? 0 : -errno;
}

static int lossyAccess(const char *path, int mask)
{
    return faccessat(backing, rel(path), mask, 0) == 0 ? 0 : -errno;
}

static int lossyReadlink(const char *path, char *buf, size_t size)
{
    ssize_t n = readlinkat(backing, rel(path), buf, size - 1);
    if (n < 0) {
        return -errno;
    }
    buf[n] = '\0';
    return 0;
}

static int lossyReaddir(const char *path, void *buf, fuse_fill_dir_t fill,
                        off_t off, struct fuse_file_info *fi,
                        enum fuse_readdir_flags flags)
{
    int fd = openat(backing, rel(path), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d;
    struct dirent *e;
    (void)off, (void)fi, (void)flags;

    if (fd < 0) {
        return -errno;
    }
    d = fdopendir(fd);
    if (d == NULL) {
        close(fd);
        return -errno;
    }
    while ((e = readdir(d)) != NULL) {
        struct stat st;
        memset(&st, 0, sizeof st);
        st.st_ino = e->d_ino;
        st.st_mode = (mode_t)e->d_type << 12;
        if (fill(buf, e->d_name, &st, 0, 0) != 0) {
            break;
        }
    }
    closedir(d);
    return 0;
}

static int lossyMknod(const char *path, mode_t mode, dev_t rdev)
{
    return mknodat(backing, rel(path), mode, rdev) == 0 ? 0 : -errno;
}

static int lossyMkdir(const char *path, mode_t mode)
{
    return mkdirat(backing, rel(path), mode) == 0 ? 0 : -errno;
}

static int lossyUnlink(const char *path)
{
    forgetName(path);
    return unlinkat(backing, rel(path), 0) == 0 ? 0 : -errno;
}

static int lossyRmdir(const char *path)
{
    return unlinkat(backing, rel(path), AT_REMOVEDIR) == 0 ? 0 : -errno;
}

static int lossySymlink(const char *from, const char *to)
{
    return symlinkat(from, backing, rel(to)) == 0 ? 0 : -errno;
}

static int lossyRename(const char *from, const char *to, unsigned int flags)
{
    if (flags != 0) {
        return -EINVAL;
    }
    forgetName(to);
    return renameat(backing, rel(from), backing, rel(to)) == 0 ? 0 : -errno;
}

static int lossyLink(const char *from, const char *to)
{
    return linkat(backing, rel(from), backing, rel(to), 0) == 0 ? 0 : -errno;
}

static int lossyChmod(const char *path, mode_t mode, struct fuse_file_info *fi)
{
    int rv = fi != NULL ? fchmod((int)fi->fh, mode)
                        : fchmodat(backing, rel(path), mode, 0);
    return rv == 0 ? 0 : -errno;
}

static int lossyChown(const char *path, uid_t uid, gid_t gid,
                      struct fuse_file_info *fi)
{
    int rv = fi != NULL
                 ? fchown((int)fi->fh, uid, gid)
                 : fchownat(backing, rel(path), uid, gid, AT_SYMLINK_NOFOLLOW);
    return rv == 0 ? 0 : -errno;
}

static int lossyTruncate(const char *path, off_t size,
                         struct fuse_file_info *fi)
{
    int fd = fi != NULL ? (int)fi->fh
                        : openat(backing, rel(path), O_RDWR | O_CLOEXEC);
    int rv;

    if (fd < 0) {
        return -errno;
    }
    pthread_mutex_lock(&lock);
    rv = beforeChange(fd, size, -1);
    if (rv == 0 && ftruncate(fd, size) != 0) {
        rv = -errno;
    }
    pthread_mutex_unlock(&lock);
    if (fi == NULL) {
        close(fd);
    }
    return rv;
}

static int lossyUtimens(const char *path, const struct timespec tv[2],
                        struct fuse_file_info *fi)
{
    int rv = fi != NULL
                 ? futimens((int)fi->fh, tv)
                 : utimensat(backing, rel(path), tv, AT_SYMLINK_NOFOLLOW);
    return rv == 0 ? 0 : -errno;
}

/* The backing file is opened without O_DIRECT (the backing dir may refuse
 * it; the kernel already sends direct writes straight here). */
static int openFlags(int flags)
{
    return (flags & ~O_DIRECT) | O_CLOEXEC;
}

static int lossyCreate(const char *path, mode_t mode, struct fuse_file_info *fi)
{
    int fd = openat(backing, rel(path), openFlags(fi->flags), mode);
    if (fd < 0) {
        return -errno;
    }
    fi->fh = (uint64_t)fd;
    return 0;
}

static int lossyOpen(const char *path, struct fuse_file_info *fi)
{
    int fd = openat(backing, rel(path), openFlags(fi->flags));
    if (fd < 0) {
        return -errno;
    }
    fi->fh = (uint64_t)fd;
    return 0;
}

static int lossyRead(const char *path, char *buf, size_t size, off_t off,
                     struct fuse_file_info *fi)
{
    ssize_t n = pread((int)fi->fh, buf, size, off);
    (void)path;
    return n >= 0 ? (int)n : -errno;
}

static int lossyWrite(const char *path, const char *buf, size_t size, off_t off,
                      struct fuse_file_info *fi)
{
    int fd = (int)fi->fh;
    bool sync = (fi->flags & (O_SYNC | O_DSYNC)) != 0;
    ssize_t n;
    int rv;
    (void)path;

    pthread_mutex_lock(&lock);
    rv = sync ? 0 : beforeChange(fd, off, (off_t)size);
    if (rv == 0) {
        n = pwrite(fd, buf, size, off);
        rv = n >= 0 ? (int)n : -errno;
        if (sync && n >= 0) {
            /* A synchronous write: the file is durable as it is now. */
            dropRecord(fd);
        }
    }
    pthread_mutex_unlock(&lock);
    return rv;
}

static int lossyStatfs(const char *path, struct statvfs *st)
{
    (void)path;
    return fstatvfs(backing, st) == 0 ? 0 : -errno;
}

static int lossyRelease(const char *path, struct fuse_file_info *fi)
{
    (void)path;
    close((int)fi->fh);
    return 0;
}

static int lossyFsync(const char *path, int datasync, struct fuse_file_info *fi)
{
    int fd = (int)fi->fh;
    int rv;
    (void)path;

    pthread_mutex_lock(&lock);
    rv = (datasync ? fdatasync(fd) : fsync(fd)) == 0 ? 0 : -errno;
    if (rv == 0) {
        dropRecord(fd);
    }
    pthread_mutex_unlock(&lock);
    return rv;
}

static int lossyFsyncdir(const char *path, int datasync,
                         struct fuse_file_info *fi)
{
    int fd = openat(backing, rel(path), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int rv;
    (void)datasync, (void)fi;
    if (fd < 0) {
        return -errno;
    }
    rv = fsync(fd) == 0 ? 0 : -errno;
    close(fd);
    return rv;
}

static int lossyFallocate(const char *path, int mode, off_t off, off_t len,
                          struct fuse_file_info *fi)
{
    int fd = (int)fi->fh;
    int rv;
    (void)path;

    if (mode != 0) {
        return -EOPNOTSUPP; /* posix_fallocate only (Raft's segments) */
    }
    pthread_mutex_lock(&lock);
    /* Allocation keeps the content; a grown size is cut at the drop. */
    rv = recordOf(fd) != NULL ? 0 : -errno;
    if (rv == 0) {
        rv = -posix_fallocate(fd, off, len);
    }
    pthread_mutex_unlock(&lock);
    return rv;
}

static const struct fuse_operations OPS = {
    .init = lossyInit,
    .getattr = lossyGetattr,
    .access = lossyAccess,
    .readlink = lossyReadlink,
    .readdir = lossyReaddir,
    .mknod = lossyMknod,
    .mkdir = lossyMkdir,
    .unlink = lossyUnlink,
    .rmdir = lossyRmdir,
    .symlink = lossySymlink,
    .rename = lossyRename,
    .link = lossyLink,
    .chmod = lossyChmod,
    .chown = lossyChown,
    .truncate = lossyTruncate,
    .utimens = lossyUtimens,
    .create = lossyCreate,
    .open = lossyOpen,
    .read = lossyRead,
    .write = lossyWrite,
    .statfs = lossyStatfs,
    .release = lossyRelease,
    .fsync = lossyFsync,
    .fsyncdir = lossyFsyncdir,
    .fallocate = lossyFallocate,
};

/* Drops on SIGUSR1, on a thread of its own: the signal is blocked in every
 * other thread (FUSE's workers inherit the mask). */
static void *dropper(void *arg)
{
    sigset_t *set = arg;
    int sig;
    for (;;) {
        if (sigwait(set, &sig) == 0 && sig == SIGUSR1) {
            dropAll();
        }
    }
    return NULL;
}

int main(int argc, char **argv)
{
    static sigset_t set;
    pthread_t thread;
    char **fargv;
    int fargc = 0;
    int rv;

    if (argc < 3 || argv[1][0] == '-') {
        fprintf(stderr, "usage: lossyfs BACKING_DIR MOUNTPOINT [-o OPTIONS]\n"
                        "  SIGUSR1: drop every unsynced write now\n");
        return 2;
    }
    backing = open(argv[1], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (backing < 0) {
        fprintf(stderr, "lossyfs: %s: %s\n", argv[1], strerror(errno));
        return 1;
    }
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    if (pthread_create(&thread, NULL, dropper, &set) != 0) {
        fprintf(stderr, "lossyfs: cannot start a thread\n");
        return 1;
    }
    pthread_detach(thread);

    /* fuse_main gets: prog, mountpoint, -f (foreground), the options. */
    fargv = calloc((size_t)argc + 4, sizeof *fargv);
    if (fargv == NULL) {
        return 1;
    }
    fargv[fargc++] = argv[0];
    fargv[fargc++] = argv[2];
    fargv[fargc++] = "-f";
    /* libfuse 3.14 warns about its own default otherwise. */
    fargv[fargc++] = "-o";
    fargv[fargc++] = "max_threads=16";
    for (int i = 3; i < argc; i++) {
        fargv[fargc++] = argv[i];
    }
    rv = fuse_main(fargc, fargv, &OPS, NULL);
    free(fargv);
    close(backing);
    return rv;
}
