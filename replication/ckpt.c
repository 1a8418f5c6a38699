/* WAL checkpoints off the loop.
 *
 * After a commit (the apply transaction's, or a catch-up page's), once the
 * WAL holds REPL__CHECKPOINT_FRAMES, a checkpoint runs as the env's work
 * (libuv's threadpool) with a second store handle (store/checkpoint.c),
 * one at a time; the loop checkpoints itself only if the WAL grows past
 * REPL__CHECKPOINT_FORCE_FRAMES anyway. Without env work (the fixture),
 * SQLite checkpoints by itself.
 *
 * Invariant: the checkpointer object outlives the replication layer while
 * a checkpoint runs: its after-work callback frees it once closing is set.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "repl_int.h"

struct repl__checkpointer {
    struct ledger_repl_work work;
    ledger_repl *r;      /* NULL once closing. */
    ledger_store *store; /* Its own handle on the store's file. */
    bool running;
    bool closing;
    int rv;
    char errmsg[256];
};

static void checkpointWork(struct ledger_repl_work *w)
{
    struct repl__checkpointer *c = w->data;
    c->rv = ledger_store_checkpoint(c->store);
    if (c->rv != 0) {
        snprintf(c->errmsg, sizeof c->errmsg, "%s",
                 ledger_store_errmsg(c->store));
    }
}

static void checkpointDone(struct ledger_repl_work *w, int status)
{
    struct repl__checkpointer *c = w->data;

    c->running = false;
    if (c->closing) {
        ledger_store_close(c->store);
        free(c);
        return;
    }
    if (status != 0 || c->rv != 0) {
        repl__log(c->r, LEDGER_REPL_WARN, "checkpoint: %s",
                  status != 0 ? "could not run" : c->errmsg);
    }
}

static void checkpointerOpen(ledger_repl *r);

void repl__ckpt_committed(ledger_repl *r)
{
    struct repl__checkpointer *c = r->ckpt;
    uint64_t frames;

    if (c == NULL) {
        /* Opened at the first apply, not at start: a start that fails
         * never has a second handle to clean up. No env work: SQLite
         * checkpoints by itself. */
        if (!r->ckpt_tried && r->env->work != NULL) {
            r->ckpt_tried = true;
            checkpointerOpen(r);
        }
        return;
    }
    frames = ledger_store_wal_frames(r->store);
    if (frames >= REPL__CHECKPOINT_FORCE_FRAMES) {
        if (ledger_store_checkpoint(r->store) != 0) {
            repl__log(r, LEDGER_REPL_WARN, "checkpoint: %s",
                      ledger_store_errmsg(r->store));
        }
        return;
    }
    if (frames < REPL__CHECKPOINT_FRAMES || c->running) {
        return;
    }
    c->work.data = c;
    c->work.work = checkpointWork;
    c->work.done = checkpointDone;
    if (r->env->work(r->env, &c->work) == 0) {
        c->running = true;
    }
}

static void checkpointerOpen(ledger_repl *r)
{
    struct repl__checkpointer *c = calloc(1, sizeof *c);
    char err[256];

    if (c == NULL || ledger_store_open(ledger_store_path(r->store), &c->store,
                                       err, sizeof err) != 0) {
        repl__log(r, LEDGER_REPL_WARN, "checkpoints stay on the loop: %s",
                  c == NULL ? "out of memory" : err);
        free(c);
        return;
    }
    c->r = r;
    r->ckpt = c;
    ledger_store_manual_checkpoints(r->store);
}

void repl__ckpt_close(ledger_repl *r)
{
    struct repl__checkpointer *c = r->ckpt;

    if (c == NULL) {
        return;
    }
    r->ckpt = NULL;
    c->r = NULL;
    if (c->running) {
        c->closing = true; /* checkpointDone frees it. */
        return;
    }
    ledger_store_close(c->store);
    free(c);
}
