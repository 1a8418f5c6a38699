/* What the replication layer needs from the program that runs it.
 *
 * ledger_repl never reads a clock, draws a random number, or owns an event
 * loop handle: Raft's I/O (disk, network, and the clock, io->time), the
 * wall clock that stamps entries, randomness, and three loop services come
 * through this interface. ledgerd passes the libuv one
 * (ledger_repl_start, env_uv.c: raft_uv over TCP, uv_now, uv_idle,
 * uv_check, uv_timer, the threadpool); the unit tests pass raft_fixture's
 * in-memory io and fake time (tests/lib/repl_fixture.c), so every
 * replication scenario replays bit for bit from a seed.
 *
 * Loop services, as libuv names them:
 *   idle   hooks->idle runs once per loop turn while requested, before the
 *          loop waits for I/O (uv_idle): the group-commit flush.
 *   check  hooks->check runs once per loop turn after the I/O callbacks
 *          (uv_check): commit of the apply transaction, notifications.
 *   timer  one one-shot timer, hooks->timer (uv_timer): the apply
 *          transaction's deadline.
 *   work   optional: run w->work off the loop, then w->done on it
 *          (uv_queue_work): WAL checkpoints. NULL: none.
 * The env never calls a hook from inside one of its own functions.
 */
#ifndef LEDGER_REPL_ENV_H
#define LEDGER_REPL_ENV_H

#include <raft.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ledger_repl_env;

/* Set by ledger_repl before it asks for anything; arg is the layer. */
struct ledger_repl_env_hooks {
    void *arg;
    void (*idle)(void *arg);
    void (*check)(void *arg);
    void (*timer)(void *arg);
};

struct ledger_repl_work {
    void *data;                               /* For the submitter. */
    void (*work)(struct ledger_repl_work *w); /* Off the loop. */
    void (*done)(struct ledger_repl_work *w, int status); /* On it. */
    void *impl;                                           /* The env's. */
};

struct ledger_repl_env {
    void *impl; /* The env's own state. */

    /* Raft's disk, network and clock. Valid until the close callback. */
    struct raft_io *io;
    /* NULL: ledger_repl creates the Raft instance (raft_init on io) and
     * closes it. Else an instance the caller created on io with raft_init
     * and `fsm`, not started (raft_fixture's): ledger_repl fills in fsm,
     * puts its io decorator in front of io, and starts the instance, but
     * never closes it; the caller closes it before ledger_repl_close. */
    struct raft *raft;
    struct raft_fsm *fsm;

    /* Milliseconds since the epoch: the timestamp of new entries. */
    int64_t (*wall_ms)(struct ledger_repl_env *env);
    /* len random bytes (cluster ids). */
    void (*random)(struct ledger_repl_env *env, void *buf, size_t len);

    /* Start calling hooks (check at once, every turn). */
    void (*start)(struct ledger_repl_env *env,
                  const struct ledger_repl_env_hooks *hooks);
    /* Request (on) or stop (off) hooks->idle. */
    void (*idle)(struct ledger_repl_env *env, bool on);
    /* Arm the timer `ms` from now (replacing an armed one), or stop it
     * (ms == LEDGER_REPL_TIMER_STOP). */
    void (*timer)(struct ledger_repl_env *env, uint64_t ms);
    /* Queue w; 0, or non-zero if it cannot (w->done will not run). */
    int (*work)(struct ledger_repl_env *env, struct ledger_repl_work *w);
    /* Stop every hook, then release the env (its io was closed by Raft);
     * cb(arg) once done, never from inside the call. */
    void (*close)(struct ledger_repl_env *env, void (*cb)(void *arg),
                  void *arg);
};

#define LEDGER_REPL_TIMER_STOP UINT64_MAX /* ms value: stop the timer. */

#endif /* LEDGER_REPL_ENV_H */
