/* Event-loop stall watch: see loopwatch.h. */
#include "loopwatch.h"

#include <stdlib.h>

#include "log.h"
#include "metrics.h"

struct loopwatch {
    uv_timer_t timer;
    uint64_t due_ns; /* When the next tick should run. */
    unsigned warn_ms;
};

static void tickCb(uv_timer_t *t)
{
    loopwatch *w = t->data;
    uint64_t now = uv_hrtime();
    uint64_t late_ms = now > w->due_ns ? (now - w->due_ns) / 1000000 : 0;

    metrics_loop_stall(late_ms);
    if (late_ms >= w->warn_ms) {
        ledger_log(LOG_WARN, NULL,
                   "event loop stalled for %llu ms (heartbeats and requests "
                   "waited that long)",
                   (unsigned long long)late_ms);
    }
    w->due_ns = now + (uint64_t)LOOPWATCH_MS * 1000000;
}

loopwatch *loopwatch_start(uv_loop_t *loop, unsigned warn_ms)
{
    loopwatch *w = calloc(1, sizeof *w);
    if (w == NULL) {
        return NULL;
    }
    w->warn_ms = warn_ms > 0 ? warn_ms : 1;
    uv_timer_init(loop, &w->timer);
    w->timer.data = w;
    w->due_ns = uv_hrtime() + (uint64_t)LOOPWATCH_MS * 1000000;
    uv_timer_start(&w->timer, tickCb, LOOPWATCH_MS, LOOPWATCH_MS);
    return w;
}

static void closedCb(uv_handle_t *h)
{
    free(h->data);
}

void loopwatch_close(loopwatch *w)
{
    if (w != NULL) {
        uv_close((uv_handle_t *)&w->timer, closedCb);
    }
}
