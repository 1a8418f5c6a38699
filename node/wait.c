/* Requests that wait: for a leader to forward to, for the applied index to
 * reach a read index, for a long poll's event, for a forwarded answer.
 *
 * A waiting request sits on n->waiters with a condition and a deadline.
 * api_sweep() re-checks every waiter whenever the applied index moves and
 * every API_SWEEP_MS, and runs its `then` step once the condition holds or
 * the deadline passed. At shutdown every waiter is answered at once, except
 * those with a peer call in flight: they end by their own deadline while
 * the server drains. A wait costs no handle of its own.
 */
#include "api.h"

void api_unwait(struct api_req *a)
{
    struct ledger_node *n = a->n;
    a->through_shutdown = false; /* it held for that wait only */
    if (!a->waiting) {
        return;
    }
    if (a->prev != NULL) {
        a->prev->next = a->next;
    } else {
        n->waiters = a->next;
    }
    if (a->next != NULL) {
        a->next->prev = a->prev;
    }
    a->next = a->prev = NULL;
    a->waiting = false;
}

void api_wait(struct api_req *a, uint64_t timeout_ms, api_ready_fn ready,
              api_step_fn then)
{
    struct ledger_node *n = a->n;
    a->ready = ready;
    a->then = then;
    a->timed_out = false;
    if (ready(a)) {
        a->through_shutdown = false;
        then(a);
        return;
    }
    if ((n->shutting_down && !a->through_shutdown) || timeout_ms == 0) {
        a->through_shutdown = false;
        a->timed_out = true;
        then(a);
        return;
    }
    a->deadline = uv_now(n->loop) + timeout_ms;
    a->waiting = true;
    a->prev = NULL;
    a->next = n->waiters;
    if (n->waiters != NULL) {
        n->waiters->prev = a;
    }
    n->waiters = a;
}

void api_sweep(struct ledger_node *n, bool flush_all)
{
    uint64_t now = uv_now(n->loop);
    struct api_req *a = n->waiters;
    struct api_req *ready_list = NULL;

    /* Collect first, then run: running may add or free waiters. */
    while (a != NULL) {
        struct api_req *next = a->next;
        bool ok = a->ready(a);
        bool flush = flush_all && a->w.call == NULL;
        if (ok || flush || now >= a->deadline) {
            api_unwait(a);
            a->timed_out = !ok;
            a->next = ready_list;
            ready_list = a;
        }
        a = next;
    }
    while (ready_list != NULL) {
        struct api_req *next = ready_list->next;
        ready_list->next = NULL;
        ready_list->then(ready_list);
        ready_list = next;
    }
}

void api_on_applied(void *arg)
{
    api_sweep(arg, false);
}
