/* Members' own applied index, polled by the leader: see peers.h. */
#include "node/peers.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "node/http_client.h"
#include "node/node.h"

#define PEERS__MAX 64          /* Members polled, at most. */
#define PEERS__TIMEOUT_MS 2000 /* Per poll. */

struct peers {
    struct ledger_node *n;
    uv_timer_t timer;
    uint64_t busy[PEERS__MAX]; /* Member ids with a poll in flight. */
    unsigned inflight;
    bool closing;
    bool timer_closed;
};

struct poll {
    peers *p;
    uint64_t id;
};

static void maybeFree(peers *p)
{
    if (p->closing && p->timer_closed && p->inflight == 0) {
        free(p);
    }
}

static void setBusy(peers *p, uint64_t id, bool busy)
{
    size_t i;
    for (i = 0; i < PEERS__MAX; i++) {
        if (busy ? p->busy[i] == 0 : p->busy[i] == id) {
            p->busy[i] = busy ? id : 0;
            return;
        }
    }
}

static bool isBusy(peers *p, uint64_t id)
{
    size_t i;
    for (i = 0; i < PEERS__MAX; i++) {
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
    peers *p = q->p;
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
    peers *p = t->data;
    struct ledger_node *n = p->n;
    struct ledger_repl_status st;
    struct ledger_repl_member_info m[PEERS__MAX];
    char headers[1024];
    size_t count;
    size_t i;

    ledger_repl_status(n->repl, &st);
    if (!st.is_leader || n->shutting_down) {
        return;
    }
    snprintf(headers, sizeof headers, "X-Ledger-Forwarded: 1\r\n%s%s%s",
             n->cfg->token ? "Authorization: Bearer " : "",
             n->cfg->token ? n->cfg->token : "", n->cfg->token ? "\r\n" : "");
    count = ledger_repl_members(n->repl, m, PEERS__MAX);
    for (i = 0; i < count && i < PEERS__MAX; i++) {
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
        if (http_client_request(n->loop, m[i].api_addr, "GET",
                                "/v1/internal/status", headers, NULL, 0,
                                PEERS__TIMEOUT_MS, pollCb, q) != 0) {
            free(q);
            continue;
        }
        p->inflight++;
        setBusy(p, q->id, true);
    }
}

peers *peers_start(struct ledger_node *n)
{
    peers *p = calloc(1, sizeof *p);
    if (p == NULL) {
        return NULL;
    }
    p->n = n;
    uv_timer_init(n->loop, &p->timer);
    p->timer.data = p;
    uv_timer_start(&p->timer, tickCb, PEERS_POLL_MS, PEERS_POLL_MS);
    return p;
}

static void timerClosed(uv_handle_t *h)
{
    peers *p = h->data;
    p->timer_closed = true;
    maybeFree(p);
}

void peers_close(peers *p)
{
    if (p == NULL) {
        return;
    }
    p->closing = true;
    uv_close((uv_handle_t *)&p->timer, timerClosed);
}
