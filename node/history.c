/* The leader's ring of per-second samples: see history.h. */
#include "history.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "members_poll.h"
#include "metrics.h"
#include "node.h"

struct history_member {
    uint64_t id;
    uint64_t lag_entries;
    uint64_t lag_ms;
    bool reachable;
};

struct history_sample {
    int64_t t_ms;        /* Wall clock, unix ms. */
    double appends_rate; /* 201 appends per second over the interval. */
    double events_rate;  /* Events they appended, per second. */
    unsigned n;          /* Members in m. */
    struct history_member m[HISTORY_MEMBERS];
};

struct history {
    struct ledger_node *n;
    uv_timer_t timer;
    struct history_sample ring[HISTORY_SAMPLES];
    size_t next;      /* Slot the next sample goes to. */
    size_t count;     /* Samples held (<= HISTORY_SAMPLES). */
    uint64_t prev_at; /* uv_now ms of the previous tick; 0: none. */
    uint64_t prev_appends;
    uint64_t prev_events;
};

static int64_t wallMs(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

static int byId(const void *a, const void *b)
{
    const struct member_view *x = a;
    const struct member_view *y = b;
    return x->r.id < y->r.id ? -1 : x->r.id > y->r.id;
}

static void sample(history *h, double secs)
{
    static struct member_view v[MEMBERS_POLL_MAX]; /* Loop thread only. */
    struct history_sample *s = &h->ring[h->next];
    uint64_t appends = metrics_appends_total();
    uint64_t events = metrics_events_total();
    size_t count;
    size_t i;

    memset(s, 0, sizeof *s);
    s->t_ms = wallMs();
    s->appends_rate = (double)(appends - h->prev_appends) / secs;
    s->events_rate = (double)(events - h->prev_events) / secs;
    count = members_poll_view(h->n, h->n->applied_poll, v, MEMBERS_POLL_MAX);
    count = count < MEMBERS_POLL_MAX ? count : MEMBERS_POLL_MAX;
    qsort(v, count, sizeof v[0], byId);
    for (i = 0; i < count && i < HISTORY_MEMBERS; i++) {
        s->m[i].id = v[i].r.id;
        s->m[i].lag_entries = v[i].r.lag_entries;
        s->m[i].lag_ms = v[i].r.lag_ms;
        s->m[i].reachable = v[i].reachable;
    }
    s->n = (unsigned)i;
    h->next = (h->next + 1) % HISTORY_SAMPLES;
    if (h->count < HISTORY_SAMPLES) {
        h->count++;
    }
}

static void tickCb(uv_timer_t *t)
{
    history *h = t->data;
    struct ledger_repl_status st;
    uint64_t now = uv_now(h->n->loop);

    ledger_repl_status(h->n->repl, &st);
    if (st.is_leader && !h->n->shutting_down && h->prev_at != 0 &&
        now > h->prev_at) {
        sample(h, (double)(now - h->prev_at) / 1000.0);
    }
    /* Counters move on followers too (forwarded appends): keep the base
     * current so a new leader's first rate covers one interval only. */
    h->prev_at = now;
    h->prev_appends = metrics_appends_total();
    h->prev_events = metrics_events_total();
}

history *history_start(struct ledger_node *n)
{
    history *h = calloc(1, sizeof *h);
    if (h == NULL) {
        return NULL;
    }
    h->n = n;
    uv_timer_init(n->loop, &h->timer);
    h->timer.data = h;
    uv_timer_start(&h->timer, tickCb, HISTORY_INTERVAL_MS, HISTORY_INTERVAL_MS);
    return h;
}

static void timerClosed(uv_handle_t *t)
{
    free(t->data);
}

void history_close(history *h)
{
    if (h != NULL) {
        uv_close((uv_handle_t *)&h->timer, timerClosed);
    }
}

/* Rates with two decimals: enough for a chart, short on the wire. */
static json_t *rate(double r)
{
    return json_real((double)(int64_t)(r * 100.0 + 0.5) / 100.0);
}

json_t *history_json(history *h, uint64_t node_id, int64_t since_ms)
{
    json_t *samples = json_array();
    size_t i;

    for (i = 0; h != NULL && i < h->count; i++) {
        const struct history_sample *s =
            &h->ring[(h->next + HISTORY_SAMPLES - h->count + i) %
                     HISTORY_SAMPLES];
        json_t *members;
        unsigned k;
        if (s->t_ms <= since_ms) {
            continue;
        }
        members = json_array();
        for (k = 0; k < s->n; k++) {
            json_array_append_new(
                members,
                json_pack("{s:I, s:I, s:I, s:b}", "id", (json_int_t)s->m[k].id,
                          "lag_entries", (json_int_t)s->m[k].lag_entries,
                          "lag_ms", (json_int_t)s->m[k].lag_ms, "reachable",
                          s->m[k].reachable));
        }
        json_array_append_new(
            samples,
            json_pack("{s:I, s:o, s:o, s:o}", "t_ms", (json_int_t)s->t_ms,
                      "appends_per_s", rate(s->appends_rate), "events_per_s",
                      rate(s->events_rate), "members", members));
    }
    return json_pack("{s:i, s:i, s:I, s:o}", "interval_ms", HISTORY_INTERVAL_MS,
                     "max_samples", HISTORY_SAMPLES, "node_id",
                     (json_int_t)node_id, "samples", samples);
}
