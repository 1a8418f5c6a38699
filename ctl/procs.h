/* Local ledgerd processes that ledgerctl starts and watches (`cluster up`,
 * `restore`), and the small file and clock helpers they need.
 *
 * A pid read from a pid file is trusted only while /proc says it is alive
 * (not a zombie) and its command line still names ledgerd: a stale pid file
 * never makes ledgerctl signal a stranger. Processes ledgerctl started
 * itself are its children: they are reaped, and their exit is described.
 */
#ifndef LEDGER_CTL_PROCS_H
#define LEDGER_CTL_PROCS_H

#include <jansson.h>
#include <stddef.h>
#include <sys/types.h>

#include "ctl.h"

/* Monotonic milliseconds, and a sleep that survives signals. */
long long ctlNowMs(void);
void ctlSleepMs(long ms);

/* mkdir -p with mode 0755; -1 with errno on failure. */
int ctlMkdirP(const char *path);
/* Write `text` to path.tmp, then rename it over `path`; -1 with errno. */
int ctlWriteFileAtomic(const char *path, const char *text);
/* The last non-empty line of a log file ("" if none), for error messages. */
void ctlLastLogLine(const char *path, char *out, size_t outlen);

/* The pid in a pid file, or 0. */
pid_t ctlReadPidFile(const char *path);
/* Alive and not a zombie. */
int ctlPidAlive(pid_t pid);
/* Its command line names ledgerd (some argument's base name). */
int ctlPidIsLedgerd(pid_t pid);
/* A live ledgerd whose pid is in DIR/node*.pid, or 0. */
pid_t ctlRunningNode(const char *dir);

/* Start `args` (args[0] the binary, NULL-terminated) detached in its own
 * session, stdin from /dev/null, stdout and stderr appended to log_path
 * after a line "--- ledgerctl BANNER ---", and its pid written to pid_path.
 * 0 with *pid set, or CTL_EXIT_FAIL after printing why, prefixed by `what`
 * (a failed exec is seen here, not as a later exit). */
int ctlSpawn(const char *what, char *const args[], const char *log_path,
             const char *pid_path, const char *banner, pid_t *pid);
/* Has child `pid` exited? 1 after reaping it, with how in `why`. */
int ctlChildExited(pid_t pid, char *why, size_t len);
/* SIGTERM each child in pids[0..n) (0 entries skipped), wait up to
 * grace_ms for all, SIGKILL what is left; every entry is reaped and 0. */
void ctlStopChildren(pid_t *pids, unsigned n, long grace_ms);

/* GET `path` from one node with ctl's token and TLS files and a short
 * timeout; the JSON body of a 200 answer, else NULL. */
json_t *ctlGetJson(const struct ctl *ctl, const char *addr, const char *path);

#endif /* LEDGER_CTL_PROCS_H */
