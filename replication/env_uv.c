/* The libuv environment of the replication layer (replication/env.h): what
 * ledgerd runs it on.
 *
 * - io: raft_uv, Raft's segmented log and snapshots in cfg->raft_dir, over
 *   the TCP transport with TCP_NODELAY (transport.c), or the caller's
 *   (cfg->transport: node/raft_tls.c's mutual TLS); its clock is
 *   uv_now(loop).
 * - wall clock: CLOCK_REALTIME; randomness: getrandom(2) (/dev/urandom
 *   semantics), falling back to the clock only if it fails.
 * - idle, check, timer: one uv_idle_t, uv_check_t, uv_timer_t on the loop;
 *   work: uv_queue_work on libuv's threadpool.
 *
 * Close (after raft_close, whose callback closed raft_uv's own handles):
 * the check and timer handles close; the idle handle waits until no handle
 * of the loop is still closing and no request is in flight (see
 * envClose), then closes too, and in its close callback the layer is
 * called back. raft_uv's and the transport's memory stay allocated until
 * the process exits (envClose says why). Work items outlive the env: each
 * has its own uv_work_t, freed after its done callback.
 */
#include <stdlib.h>
#include <sys/random.h>
#include <time.h>

#include "repl_int.h"

struct envUv {
    struct ledger_repl_env env; /* First member. */
    uv_loop_t *loop;
    struct raft_io io;
    struct repl__transport transport;
    struct ledger_repl_env_hooks hooks;
    uv_idle_t idle;
    uv_check_t check;
    uv_timer_t timer;
    int open_handles;
    unsigned quiet_turns;      /* Closing: turns without a closing handle. */
    struct envUv *next_closed; /* In the graveyard. */
    void (*close_cb)(void *arg);
    void *close_arg;
};

struct workUv {
    uv_work_t req;
    struct ledger_repl_work *w;
};

static int64_t wallMs(struct ledger_repl_env *env)
{
    struct timespec ts;
    (void)env;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void randomBytes(struct ledger_repl_env *env, void *buf, size_t len)
{
    unsigned char *p = buf;
    ssize_t got = getrandom(buf, len, 0);
    size_t i;
    (void)env;
    for (i = got > 0 ? (size_t)got : 0; i < len; i++) {
        p[i] = (unsigned char)(wallMs(env) >> (i % 8));
    }
}

static void idleCb(uv_idle_t *h)
{
    struct envUv *e = h->data;
    e->hooks.idle(e->hooks.arg);
}

static void checkCb(uv_check_t *h)
{
    struct envUv *e = h->data;
    e->hooks.check(e->hooks.arg);
}

static void timerCb(uv_timer_t *h)
{
    struct envUv *e = h->data;
    e->hooks.timer(e->hooks.arg);
}

static void envStart(struct ledger_repl_env *env,
                     const struct ledger_repl_env_hooks *hooks)
{
    struct envUv *e = (struct envUv *)env;
    e->hooks = *hooks;
    uv_check_start(&e->check, checkCb);
}

static void envIdle(struct ledger_repl_env *env, bool on)
{
    struct envUv *e = (struct envUv *)env;
    if (on) {
        uv_idle_start(&e->idle, idleCb);
    } else {
        uv_idle_stop(&e->idle);
    }
}

static void envTimer(struct ledger_repl_env *env, uint64_t ms)
{
    struct envUv *e = (struct envUv *)env;
    if (ms == LEDGER_REPL_TIMER_STOP) {
        uv_timer_stop(&e->timer);
    } else {
        uv_timer_start(&e->timer, timerCb, ms, 0);
    }
}

static void workRun(uv_work_t *req)
{
    struct workUv *wu = req->data;
    wu->w->work(wu->w);
}

static void workDone(uv_work_t *req, int status)
{
    struct workUv *wu = req->data;
    struct ledger_repl_work *w = wu->w;
    free(wu);
    w->done(w, status);
}

static int envWork(struct ledger_repl_env *env, struct ledger_repl_work *w)
{
    struct envUv *e = (struct envUv *)env;
    struct workUv *wu = calloc(1, sizeof *wu);
    if (wu == NULL) {
        return -1;
    }
    wu->w = w;
    wu->req.data = wu;
    if (uv_queue_work(e->loop, &wu->req, workRun, workDone) != 0) {
        free(wu);
        return -1;
    }
    return 0;
}

/* Closed envs, kept until the process exits (see envClose). Reachable from
 * here, so LeakSanitizer does not count them. */
static struct envUv *graveyard;

/* The last handle closed. raft_uv's memory is not freed: see envClose. */
static void lastClosed(uv_handle_t *h)
{
    struct envUv *e = h->data;
    void (*cb)(void *) = e->close_cb;
    void *arg = e->close_arg;

    e->io.data = NULL; /* io.c: a late close callback finds no layer */
    e->next_closed = graveyard;
    graveyard = e;
    if (cb != NULL) {
        cb(arg);
    }
}

static void handleClosed(uv_handle_t *h)
{
    struct envUv *e = h->data;
    e->open_handles--;
}

static void countClosing(uv_handle_t *h, void *arg)
{
    if (uv_is_closing(h)) {
        (*(unsigned *)arg)++;
    }
}

/* While closing, each loop turn: once our other handles are closed and,
 * for two turns in a row, no handle of the loop was closing and no request
 * (threadpool work, file operation) was in flight, release raft_uv (see
 * envClose). */
static void graceCb(uv_idle_t *h)
{
    struct envUv *e = h->data;
    unsigned closing = 0;

    uv_walk(e->loop, countClosing, &closing);
    /* raft_uv's threadpool work and file requests are requests, not
     * handles: wait for the loop's last one as well. */
    if (e->open_handles > 0 || closing > 0 || e->loop->active_reqs.count > 0) {
        e->quiet_turns = 0;
        return;
    }
    if (++e->quiet_turns < 2) {
        return;
    }
    uv_idle_stop(h);
    uv_close((uv_handle_t *)h, lastClosed);
}

/* raft_uv 0.15 does not tell when it is really done. It fires its close
 * callback once its checklist is empty (uv.c uvMaybeFireCloseCb), but
 * some of its handles can still be closing then (a segment writer's, an
 * accepted connection's), and each of their close callbacks calls
 * uvMaybeFireCloseCb again, which fires the close callback again; and
 * threadpool jobs and AIO writes can still complete after it and touch
 * its memory. Freeing it with raft_uv_close at the close callback (as
 * the code did) gave use-after-free reports under ASan at shutdown: a
 * worker thread reading the data dir path, a second close callback with
 * a garbage io (1 run in 60), a SEGV in an after-work callback, a crash
 * in raft_configuration_close right after start. So: the layer is
 * released once no handle of the loop is closing and no request is in
 * flight (graceCb), and raft_uv's and the transport's memory (a few KiB)
 * is never freed: closed envs stay in a list until the process exits
 * (ledgerd closes the layer once, at exit). io.c ignores a late close
 * callback. */
static void envClose(struct ledger_repl_env *env, void (*cb)(void *arg),
                     void *arg)
{
    struct envUv *e = (struct envUv *)env;
    e->close_cb = cb;
    e->close_arg = arg;
    e->open_handles = 2;
    uv_close((uv_handle_t *)&e->check, handleClosed);
    uv_close((uv_handle_t *)&e->timer, handleClosed);
    uv_idle_start(&e->idle, graceCb);
}

/* Create the libuv env; on error nothing is left to release. transport:
 * the caller's (mutual TLS: node/raft_tls.c), or NULL for ours. */
static int envUvCreate(uv_loop_t *loop, const char *raft_dir,
                       struct raft_uv_transport *transport, struct envUv **out,
                       char *err, size_t errlen)
{
    struct envUv *e = calloc(1, sizeof *e);
    int rv;

    if (e == NULL) {
        snprintf(err, errlen, "out of memory");
        return LEDGER_REPL_ENOMEM;
    }
    e->loop = loop;
    rv = repl__transport_init(&e->transport, loop);
    if (rv != 0) {
        snprintf(err, errlen, "raft transport: %s", raft_strerror(rv));
        free(e);
        return LEDGER_REPL_EUNKNOWN;
    }
    /* With the caller's transport, ours (initialised either way) is left
     * unused and closed with the env. */
    rv = raft_uv_init(&e->io, loop, raft_dir,
                      transport != NULL ? transport : &e->transport.base);
    if (rv != 0) {
        snprintf(err, errlen, "raft storage in %s: %s", raft_dir,
                 e->io.errmsg[0] ? e->io.errmsg : raft_strerror(rv));
        /* raft_uv_tcp handles are not started: freeing is safe at start-up,
         * where the caller exits after reporting. */
        free(e);
        return LEDGER_REPL_EUNKNOWN;
    }
    /* A segment that fails its checksum stops the start instead of being
     * renamed away with the entries after it: node/repair.c checks the log
     * before a start (replication/disk.c) and rebuilds a damaged one. */
    raft_uv_set_auto_recovery(&e->io, false);
    uv_idle_init(loop, &e->idle);
    e->idle.data = e;
    uv_check_init(loop, &e->check);
    e->check.data = e;
    uv_timer_init(loop, &e->timer);
    e->timer.data = e;
    e->env.impl = e;
    e->env.io = &e->io;
    e->env.wall_ms = wallMs;
    e->env.random = randomBytes;
    e->env.start = envStart;
    e->env.idle = envIdle;
    e->env.timer = envTimer;
    e->env.work = envWork;
    e->env.close = envClose;
    *out = e;
    return 0;
}

int ledger_repl_start(uv_loop_t *loop, ledger_store *store,
                      const struct ledger_repl_config *cfg,
                      ledger_repl_log_fn log, void *log_arg, ledger_repl **out,
                      char *err, size_t errlen)
{
    struct envUv *e;
    int rv;

    *out = NULL;
    rv = envUvCreate(loop, cfg->raft_dir, cfg->transport, &e, err, errlen);
    if (rv != 0) {
        return rv;
    }
    rv = ledger_repl_start_env(&e->env, store, cfg, log, log_arg, out, err,
                               errlen);
    if (rv != 0) {
        /* As before: a failed start leaves its handles to the exiting
         * process (see ledger_repl_start_env). */
        return rv;
    }
    (*out)->owns_env = true;
    return 0;
}
