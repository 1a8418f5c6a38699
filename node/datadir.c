/* A node's data directory (see datadir.h).
 *
 * DIR/node-id ties the dir to one node id: ledgerd writes it at the first
 * start and refuses to start the dir under another --id (its Raft log and
 * vote belong to that id); `ledgerd recover` reads it to check that the
 * new configuration keeps the node it runs on. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include "datadir.h"

int datadir_lock(const char *dir, unsigned wait_ms, bool write_pid, char *err,
                 size_t errlen)
{
    char path[4096];
    char pid[32];
    int fd;

    snprintf(path, sizeof path, "%s/LOCK", dir);
    fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        snprintf(err, errlen, "open %.300s: %s", path, strerror(errno));
        return -1;
    }
    for (unsigned i = 0; i < wait_ms / 50 && flock(fd, LOCK_EX | LOCK_NB) != 0;
         i++) {
        struct timespec ts = {0, 50 * 1000000L};
        nanosleep(&ts, NULL);
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        ssize_t n = pread(fd, pid, sizeof pid - 1, 0);
        pid[n > 0 ? n : 0] = '\0';
        snprintf(err, errlen,
                 "data dir %.300s is in use by another ledgerd (pid %s): stop "
                 "it first",
                 dir, n > 0 ? pid : "unknown");
        close(fd);
        return -1;
    }
    if (!write_pid) {
        return fd;
    }
    snprintf(pid, sizeof pid, "%ld", (long)getpid());
    if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, strlen(pid), 0) < 0) {
        /* The pid is informational only. */
    }
    return fd;
}

int datadir_node_id(const char *dir, uint64_t *id, char *err, size_t errlen)
{
    char path[4096];
    char buf[64];
    char *end;
    FILE *f;
    size_t n;
    unsigned long long v;

    snprintf(path, sizeof path, "%s/node-id", dir);
    f = fopen(path, "r");
    if (f == NULL) {
        if (errno == ENOENT) {
            return 0;
        }
        snprintf(err, errlen, "open %.300s: %s", path, strerror(errno));
        return -1;
    }
    n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    errno = 0;
    v = strtoull(buf, &end, 10);
    while (*end == '\n' || *end == ' ') {
        end++;
    }
    if (errno != 0 || end == buf || *end != '\0' || v == 0) {
        snprintf(err, errlen, "%.300s: not a node id", path);
        return -1;
    }
    *id = v;
    return 1;
}

int datadir_set_node_id(const char *dir, uint64_t id, char *err, size_t errlen)
{
    char tmp[4096];
    char path[4096];
    char buf[32];
    int fd;
    int len = snprintf(buf, sizeof buf, "%" PRIu64 "\n", id);

    snprintf(tmp, sizeof tmp, "%s/node-id.tmp", dir);
    snprintf(path, sizeof path, "%s/node-id", dir);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        snprintf(err, errlen, "create %.300s: %s", tmp, strerror(errno));
        return -1;
    }
    if (write(fd, buf, (size_t)len) != len || fsync(fd) != 0) {
        snprintf(err, errlen, "write %.300s: %s", tmp, strerror(errno));
        close(fd);
        unlink(tmp);
        return -1;
    }
    close(fd);
    if (rename(tmp, path) != 0) {
        snprintf(err, errlen, "rename %.300s: %s", tmp, strerror(errno));
        unlink(tmp);
        return -1;
    }
    fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
    return 0;
}
