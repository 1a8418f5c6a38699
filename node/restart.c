/* Restart in place after Raft stopped on a storage error: see restart.h. */
#include "restart.h"

#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <uv.h>

#include "log.h"

struct restart_watch {
    ledger_repl *repl;
    const char *data_dir; /* Borrowed: outlives the watch. */
    void (*restart)(void *arg);
    void *arg;
    uv_timer_t timer;
    bool was_available; /* Raft reached another state since start. */
    bool stopped;       /* Unavailable after having been available. */
    bool requested;
};

static bool hasRoom(const char *dir, unsigned long long *free_bytes)
{
    struct statvfs v;
    if (statvfs(dir, &v) != 0) {
        *free_bytes = 0;
        return false;
    }
    *free_bytes = (unsigned long long)v.f_bavail * v.f_frsize;
    return *free_bytes >= RESTART_MIN_FREE;
}

static void tickCb(uv_timer_t *t)
{
    restart_watch *w = t->data;
    struct ledger_repl_status st;
    unsigned long long free_bytes;

    if (w->requested) {
        return;
    }
    ledger_repl_status(w->repl, &st);
    if (strcmp(st.state, "unavailable") != 0) {
        w->was_available = true;
        return;
    }
    /* A failed store is behind Raft only after the node ran, even when it
     * failed before the first check saw it available (within a second of
     * start, as on a disk already full). */
    if (!w->was_available && !st.store_failed) {
        return;
    }
    if (!w->stopped) {
        w->stopped = true;
        ledger_log(LOG_ERROR, NULL,
                   "stopped serving after a storage error (is %s full?): this "
                   "node serves nothing until it restarts; it restarts "
                   "itself once the data dir has %llu MiB free",
                   w->data_dir, RESTART_MIN_FREE >> 20);
    }
    if (!hasRoom(w->data_dir, &free_bytes)) {
        return;
    }
    w->requested = true;
    ledger_log(LOG_WARN, NULL,
               "%s has room again (%llu MiB free): restarting in place",
               w->data_dir, free_bytes >> 20);
    w->restart(w->arg);
}

restart_watch *restart_watch_start(uv_loop_t *loop, ledger_repl *repl,
                                   const char *data_dir,
                                   void (*restart)(void *arg), void *arg)
{
    restart_watch *w = calloc(1, sizeof *w);
    if (w == NULL) {
        return NULL;
    }
    w->repl = repl;
    w->data_dir = data_dir;
    w->restart = restart;
    w->arg = arg;
    uv_timer_init(loop, &w->timer);
    w->timer.data = w;
    uv_timer_start(&w->timer, tickCb, RESTART_CHECK_MS, RESTART_CHECK_MS);
    return w;
}

static void closedCb(uv_handle_t *h)
{
    free(h->data);
}

void restart_watch_close(restart_watch *w)
{
    if (w != NULL) {
        uv_close((uv_handle_t *)&w->timer, closedCb);
    }
}

const char *restart_watch_reason(const restart_watch *w)
{
    if (w == NULL || !w->stopped) {
        return NULL;
    }
    return "stopped serving after a storage error (data dir full?); the node "
           "restarts itself once the data dir has room";
}
