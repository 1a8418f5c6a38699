/* Local ledgerd processes that ledgerctl starts and watches (procs.h).
 *
 * Invariants: ctlSpawn returns only once the child has exec'd ledgerd or
 * failed to (a CLOEXEC pipe carries the exec's errno back), so "cannot run
 * the binary" is reported as such, never as a node that died later; every
 * child handed to ctlStopChildren is reaped before it returns.
 */
#include "procs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

long long ctlNowMs(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void ctlSleepMs(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

int ctlMkdirP(const char *path)
{
    char buf[PATH_MAX];
    size_t len = strlen(path);
    if (len == 0 || len >= sizeof buf) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(buf, path, len + 1);
    for (char *p = buf + 1; *p != '\0'; p++) {
        if (*p == '/') {
            *p = '\0';
            if (mkdir(buf, 0755) != 0 && errno != EEXIST) {
                return -1;
            }
            *p = '/';
        }
    }
    if (mkdir(buf, 0755) != 0 && errno != EEXIST) {
        return -1;
    }
    return 0;
}

int ctlWriteFileAtomic(const char *path, const char *text)
{
    char tmp[PATH_MAX + 8];
    FILE *f;
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    f = fopen(tmp, "w");
    if (f == NULL) {
        return -1;
    }
    if (fputs(text, f) < 0 || fclose(f) != 0) {
        unlink(tmp);
        return -1;
    }
    return rename(tmp, path);
}

void ctlLastLogLine(const char *path, char *out, size_t outlen)
{
    char buf[4096];
    FILE *f = fopen(path, "r");
    long size;
    size_t n;
    char *end;
    char *start;
    out[0] = '\0';
    if (f == NULL) {
        return;
    }
    fseek(f, 0, SEEK_END);
    size = ftell(f);
    fseek(f, size > (long)sizeof buf - 1 ? size - (long)sizeof buf + 1 : 0,
          SEEK_SET);
    n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    end = buf + n;
    while (end > buf &&
           (end[-1] == '\n' || end[-1] == '\r' || end[-1] == ' ')) {
        *--end = '\0';
    }
    start = strrchr(buf, '\n');
    start = start != NULL ? start + 1 : buf;
    if (strncmp(start, "--- ledgerctl", 13) == 0) {
        return; /* Our own start banner: the node printed nothing. */
    }
    snprintf(out, outlen, "%s", start);
}

pid_t ctlReadPidFile(const char *path)
{
    FILE *f = fopen(path, "r");
    long v = 0;
    if (f == NULL) {
        return 0;
    }
    if (fscanf(f, "%ld", &v) != 1 || v <= 0 || v > INT_MAX) {
        v = 0;
    }
    fclose(f);
    return (pid_t)v;
}

int ctlPidAlive(pid_t pid)
{
    char path[64];
    char buf[512];
    FILE *f;
    char *close_paren;
    if (pid <= 0 || (kill(pid, 0) != 0 && errno != EPERM)) {
        return 0;
    }
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    f = fopen(path, "r");
    if (f == NULL) {
        return 0;
    }
    if (fgets(buf, sizeof buf, f) == NULL) {
        fclose(f);
        return 0;
    }
    fclose(f);
    close_paren = strrchr(buf, ')');
    if (close_paren != NULL && close_paren[1] == ' ' &&
        (close_paren[2] == 'Z' || close_paren[2] == 'X')) {
        return 0;
    }
    return 1;
}

int ctlPidIsLedgerd(pid_t pid)
{
    char path[64];
    char buf[8192];
    ssize_t n;
    int fd;
    snprintf(path, sizeof path, "/proc/%d/cmdline", (int)pid);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return 0;
    }
    n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) {
        return 0;
    }
    buf[n] = '\0';
    for (ssize_t off = 0; off < n; off += (ssize_t)strlen(buf + off) + 1) {
        const char *arg = buf + off;
        const char *base = strrchr(arg, '/');
        base = base != NULL ? base + 1 : arg;
        if (strstr(base, "ledgerd") != NULL) {
            return 1;
        }
    }
    return 0;
}

pid_t ctlRunningNode(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    pid_t found = 0;
    if (d == NULL) {
        return 0;
    }
    while (found == 0 && (e = readdir(d)) != NULL) {
        char path[PATH_MAX + 300];
        size_t len = strlen(e->d_name);
        pid_t pid;
        if (strncmp(e->d_name, "node", 4) != 0 || len < 5 ||
            strcmp(e->d_name + len - 4, ".pid") != 0) {
            continue;
        }
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        pid = ctlReadPidFile(path);
        if (pid > 0 && ctlPidAlive(pid) && ctlPidIsLedgerd(pid)) {
            found = pid;
        }
    }
    closedir(d);
    return found;
}

/* In the child, before exec: a new session, /dev/null in, the log out. */
static void childSetUp(const char *log_path, const char *banner)
{
    int fd;
    setsid();
    fd = open("/dev/null", O_RDONLY);
    if (fd >= 0) {
        dup2(fd, 0);
        if (fd != 0) {
            close(fd);
        }
    }
    fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
        dup2(fd, 1);
        dup2(fd, 2);
        if (fd > 2) {
            close(fd);
        }
    }
    dprintf(2, "--- ledgerctl %s ---\n", banner);
}

int ctlSpawn(const char *what, char *const args[], const char *log_path,
             const char *pid_path, const char *banner, pid_t *pid_out)
{
    char pidtext[32];
    int pfd[2];
    int child_errno = 0;
    ssize_t got;
    pid_t pid;

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
        int e;
        close(pfd[0]);
        childSetUp(log_path, banner);
        execv(args[0], args);
        e = errno;
        dprintf(2, "ledgerctl: exec %s: %s\n", args[0], strerror(e));
        if (write(pfd[1], &e, sizeof e) < 0) {
            /* Nothing more to do: the parent sees the exit. */
        }
        _exit(127);
    }
    close(pfd[1]);
    do {
        got = read(pfd[0], &child_errno, sizeof child_errno);
    } while (got < 0 && errno == EINTR);
    close(pfd[0]);
    if (got == (ssize_t)sizeof child_errno) {
        waitpid(pid, NULL, 0);
        return ctlFail("%s: cannot run %s: %s; set LEDGERD to the ledgerd "
                       "binary",
                       what, args[0], strerror(child_errno));
    }
    *pid_out = pid;
    snprintf(pidtext, sizeof pidtext, "%d\n", (int)pid);
    if (ctlWriteFileAtomic(pid_path, pidtext) != 0) {
        return ctlFail("%s: write %s: %s", what, pid_path, strerror(errno));
    }
    return 0;
}

int ctlChildExited(pid_t pid, char *why, size_t len)
{
    int st;
    pid_t r;
    if (pid <= 0) {
        return 0;
    }
    r = waitpid(pid, &st, WNOHANG);
    if (r == 0) {
        return 0;
    }
    if (r == pid && WIFEXITED(st)) {
        snprintf(why, len, "exited with status %d", WEXITSTATUS(st));
    } else if (r == pid && WIFSIGNALED(st)) {
        snprintf(why, len, "was killed by signal %d", WTERMSIG(st));
    } else {
        snprintf(why, len, "exited");
    }
    return 1;
}

void ctlStopChildren(pid_t *pids, unsigned n, long grace_ms)
{
    long long deadline = ctlNowMs() + grace_ms;
    for (unsigned i = 0; i < n; i++) {
        if (pids[i] > 0) {
            kill(pids[i], SIGTERM);
        }
    }
    for (unsigned i = 0; i < n; i++) {
        while (pids[i] > 0 && waitpid(pids[i], NULL, WNOHANG) == 0) {
            if (ctlNowMs() > deadline) {
                kill(pids[i], SIGKILL);
                waitpid(pids[i], NULL, 0);
                break;
            }
            ctlSleepMs(50);
        }
        pids[i] = 0;
    }
}

json_t *ctlGetJson(const struct ctl *ctl, const char *addr, const char *path)
{
    struct ledger_http_response r;
    ledger_client *c;
    char err[256];
    json_t *v = NULL;

    if (ledger_client_create(addr, ctl->token, &c, err, sizeof err) != 0) {
        return NULL;
    }
    ledger_client_set_timeout(c, 1000);
    if ((ctl->tls_ca == NULL && ctl->tls_cert == NULL) ||
        ledger_client_set_tls(c, ctl->tls_ca, ctl->tls_cert, ctl->tls_key) ==
            0) {
        if (ledger_client_call_one(c, 0, "GET", path, NULL, 0, &r) == 0) {
            if (r.status == 200) {
                v = json_loadb(r.body, r.body_len, 0, NULL);
            }
            ledger_http_response_free(&r);
        }
    }
    ledger_client_destroy(c);
    return v;
}
