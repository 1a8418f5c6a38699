/* Members' own applied index, polled by the leader: see members_poll.h. */
#include "members_poll.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "node.h"

#define MEMBERS_POLL__MAX 64          /* Members polled, at most. */
#define MEMBERS_POLL__TIMEOUT_MS 2000 /* Per poll. */

struct members_poll {
    struct ledger_node *n;
    uv_timer_t timer;
    uint64_t busy[MEMBERS_POLL__MAX]; /* Member ids with a poll in flight. */
    unsigned inflight;
    bool closing;
    bool timer_closed;
};

struct poll {
    members_poll *p;
    uint64_t id;
};

static void maybeFree(members_poll *p)
{
    if (p->closing && p->timer_closed && p->inflight == 0) {
        free(p);
    }
}

static void setBusy(members_poll *p, uint64_t id, bool busy)
{
    size_t i;
    for (i = 0; i < MEMBERS_POLL__MAX; i++) {
        if (busy ? p->busy[i] == 0 : p->busy[i] == id) {
            p->busy[i] = busy ? id : 0;
            return;
        }
    }
}

static bool isBusy(members_poll *p, uint64_t id)
{
    size_t i;
    for (i = 0; i < MEMBERS_POLL__MAX; i++) {
        if (p->busy[i] == id) {
            return true;
        }
    }
    return false;
}

static void pollCb(void *arg, int status,
                   const struct http_client_response *resp)
{
    struct poll *q = arg;
    members_poll *p = q->p;
    json_t *v;
    json_t *applied;

    p->inflight--;
    setBusy(p, q->id, false);
    if (!p->closing && status == 0 && resp->status == 200 &&
        (v = json_loadb(resp->body, resp->body_len, 0, NULL)) != NULL) {
        applied = json_object_get(v, "applied_index");
        if (json_is_integer(applied) &&
            json_integer_value(json_object_get(v, "id")) == (json_int_t)q->id) {
            ledger_repl_note_applied(p->n->repl, q->id,
                                     (uint64_t)json_integer_value(applied));
        }
        json_decref(v);
    }
    free(q);
    maybeFree(p);
}

static void tickCb(uv_timer_t *t)
{
    members_poll *p = t->data;
    struct ledger_node *n = p->n;
    struct ledger_repl_status st;
    struct ledger_repl_member_info m[MEMBERS_POLL__MAX];
    char headers[API_PEER_HEADERS_MAX];
    size_t count;
    size_t i;

    ledger_repl_status(n->repl, &st);
    if (!st.is_leader || n->shutting_down) {
        return;
    }
    snprintf(headers, sizeof headers, "X-Ledger-Forwarded: 1\r\n%s%s%s",
             n->cfg->token ? "Authorization: Bearer " : "",
             n->cfg->token ? n->cfg->token : "", n->cfg->token ? "\r\n" : "");
    count = ledger_repl_members(n->repl, m, MEMBERS_POLL__MAX);
    for (i = 0; i < count && i < MEMBERS_POLL__MAX; i++) {
        struct poll *q;
        if (m[i].id == n->cfg->id || m[i].api_addr[0] == '\0' ||
            isBusy(p, m[i].id) || m[i].role == REPL_ROLE_SPARE) {
            continue;
        }
        q = malloc(sizeof *q);
        if (q == NULL) {
            return;
        }
        q->p = p;
        q->id = m[i].id;
        if (api_peer_request(n, m[i].api_addr, "GET", "/v1/internal/status",
                             headers, NULL, 0, MEMBERS_POLL__TIMEOUT_MS, pollCb,
                             q) != 0) {
            free(q);
            continue;
        }
        p->inflight++;
        setBusy(p, q->id, true);
    }
}

members_poll *members_poll_start(struct ledger_node *n)
{
    members_poll *p = calloc(1, sizeof *p);
    if (p == NULL) {
        return NULL;
    }
    p->n = n;
    uv_timer_init(n->loop, &p->timer);
    p->timer.data = p;
    uv_timer_start(&p->timer, tickCb, MEMBERS_POLL_MS, MEMBERS_POLL_MS);
    return p;
}

static void timerClosed(uv_handle_t *h)
{
    members_poll *p = h->data;
    p->timer_closed = true;
    maybeFree(p);
}

void members_poll_close(members_poll *p)
{
    if (p == NULL) {
        return;
    }
    p->closing = true;
    uv_close((uv_handle_t *)&p->timer, timerClosed);
}
