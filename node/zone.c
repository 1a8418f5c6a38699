/* Zone labels: the node announces its --zone to the leader, and the
 * leader's endpoint that replicates it. See zone.h. */
#include "zone.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "log.h"

#define ZONE__TIMEOUT_MS 10000 /* Per request to the leader. */

struct zone_announcer {
    struct ledger_node *n;
    uv_timer_t timer;
    bool inflight;
    bool closing;
    bool timer_closed;
    uint64_t next_try; /* uv_now before which nothing is sent. */
    int last_status;   /* HTTP status (or -errno) of the last failure,
                          logged once until it changes. */
};

static void maybeFree(zone_announcer *z)
{
    if (z->closing && z->timer_closed && !z->inflight) {
        free(z);
    }
}

static const char *wanted(struct ledger_node *n)
{
    return n->cfg->zone != NULL ? n->cfg->zone : "";
}

static void announceCb(void *arg, int status,
                       const struct http_client_response *resp)
{
    zone_announcer *z = arg;
    struct ledger_node *n = z->n;
    int code = status != 0 ? status : resp->status;

    z->inflight = false;
    if (z->closing) {
        maybeFree(z);
        return;
    }
    if (code == 200) {
        ledger_log(LOG_INFO, NULL, "zone label '%s' replicated", wanted(n));
        z->last_status = 0;
        /* Our store applies it a moment later: do not ask again before. */
        z->next_try = uv_now(n->loop) + 2 * ZONE_CHECK_MS;
        return;
    }
    if (code != z->last_status) {
        if (status != 0) {
            ledger_log(LOG_WARN, NULL,
                       "zone label: leader unreachable: %s; retrying",
                       uv_strerror(status));
        } else {
            ledger_log(LOG_WARN, NULL, "zone label: HTTP %d %.*s; retrying",
                       resp->status,
                       (int)(resp->body_len > 200 ? 200 : resp->body_len),
                       resp->body);
        }
    }
    z->last_status = code;
    z->next_try = uv_now(n->loop) + ZONE_RETRY_MS;
}

static void tickCb(uv_timer_t *t)
{
    zone_announcer *z = t->data;
    struct ledger_node *n = z->n;
    const struct api_leader *l;
    char have[REPL_ZONE_MAX];
    char path[96];
    char headers[API_PEER_HEADERS_MAX];
    size_t off;
    char body[160];
    const char *want = wanted(n);
    int rv;

    if (z->inflight || n->shutting_down || n->joining ||
        uv_now(n->loop) < z->next_try ||
        ledger_repl_member_role(n->repl, n->cfg->id) < 0 ||
        ledger_store_member_zone(n->store, n->cfg->id, have, sizeof have) !=
            0 ||
        strcmp(have, want) == 0) {
        return;
    }
    l = api_leader(n);
    if (l->id == 0 || l->api[0] == '\0') {
        return;
    }
    snprintf(path, sizeof path, "/v1/cluster/members/%llu/zone",
             (unsigned long long)n->cfg->id);
    if (want[0] != '\0') {
        snprintf(body, sizeof body, "{\"zone\":\"%s\"}", want);
    } else {
        snprintf(body, sizeof body, "{\"zone\":null}");
    }
    /* The node's credential (role node: admin), not charged twice. */
    off = (size_t)snprintf(headers, sizeof headers,
                           "Content-Type: application/json\r\n");
    api_peer_auth_headers(n, true, true, headers, sizeof headers, &off);
    rv = api_peer_request(n, l->api, "PUT", path, headers, body, strlen(body),
                          ZONE__TIMEOUT_MS, announceCb, z);
    if (rv != 0) {
        z->next_try = uv_now(n->loop) + ZONE_RETRY_MS;
        return;
    }
    z->inflight = true;
}

zone_announcer *zone_start(struct ledger_node *n)
{
    zone_announcer *z = calloc(1, sizeof *z);
    if (z == NULL) {
        ledger_log(LOG_ERROR, NULL,
                   "zone label: out of memory: it will not be replicated");
        return NULL;
    }
    z->n = n;
    uv_timer_init(n->loop, &z->timer);
    z->timer.data = z;
    uv_timer_start(&z->timer, tickCb, ZONE_CHECK_MS / 4, ZONE_CHECK_MS);
    return z;
}

static void timerClosed(uv_handle_t *h)
{
    zone_announcer *z = h->data;
    z->timer_closed = true;
    maybeFree(z);
}

void zone_close(zone_announcer *z)
{
    if (z == NULL) {
        return;
    }
    z->closing = true;
    uv_close((uv_handle_t *)&z->timer, timerClosed);
}

/* ---- PUT /v1/cluster/members/{id}/zone (leader) ------------------------- */

static void zoneApplied(void *arg, int status,
                        const struct ledger_op_result *res)
{
    struct api_req *a = arg;

    if (status == LEDGER_REPL_ENOTLEADER || status == LEDGER_REPL_EUNKNOWN) {
        api_write_lost(a, status == LEDGER_REPL_EUNKNOWN);
    } else if (status != 0) {
        api_reply_error(a, API_E_UNAVAILABLE, "zone label not confirmed: %s",
                        ledger_repl_strerror(status));
    } else if (res->error == LEDGER_STORE_ENOTFOUND) {
        api_reply_error(a, API_E_MEMBER_NOT_FOUND, "no member %llu",
                        (unsigned long long)a->id);
    } else if (res->error != 0) {
        api_reply_error(a, API_E_REJECTED, "zone label refused by the store");
    } else {
        ledger_log(LOG_INFO, a->rid, "member %llu: zone label '%s'",
                   (unsigned long long)a->id, a->name);
        api_reply_json(
            a, 200,
            json_pack("{s:I, s:o}", "id", (json_int_t)a->id, "zone",
                      a->name[0] ? json_string(a->name) : json_null()),
            NULL);
    }
}

void api_member_zone(struct api_req *a)
{
    json_t *body = api_body(a);
    json_t *zone;
    char have[REPL_ZONE_MAX];
    struct op_buf op;
    int rv;

    if (body == NULL) {
        return;
    }
    zone = json_is_object(body) ? json_object_get(body, "zone") : NULL;
    if (zone == NULL ||
        !(json_is_null(zone) || (json_is_string(zone) &&
                                 ledger_zone_valid(json_string_value(zone))))) {
        json_decref(body);
        api_reply_error(a, API_E_BAD_BODY,
                        "body must be {\"zone\": \"Z\"} with 1-%d characters "
                        "from A-Z a-z 0-9 . _ -, or {\"zone\": null}",
                        REPL_ZONE_MAX - 1);
        return;
    }
    snprintf(a->name, sizeof a->name, "%s",
             json_is_string(zone) ? json_string_value(zone) : "");
    json_decref(body);
    if (ledger_repl_member_role(a->n->repl, a->id) < 0) {
        api_reply_error(a, API_E_MEMBER_NOT_FOUND, "no member %llu",
                        (unsigned long long)a->id);
        return;
    }
    rv = ledger_store_member_zone(a->n->store, a->id, have, sizeof have);
    if (rv == LEDGER_STORE_ENOTFOUND) {
        /* In the Raft configuration, not yet in the members table (the
         * first entries of a new cluster): the caller retries. */
        api_reply_error(a, API_E_UNAVAILABLE,
                        "member %llu is not in the members table yet",
                        (unsigned long long)a->id);
        return;
    }
    if (rv == 0 && strcmp(have, a->name) == 0) {
        api_reply_json(
            a, 200,
            json_pack("{s:I, s:o}", "id", (json_int_t)a->id, "zone",
                      a->name[0] ? json_string(a->name) : json_null()),
            NULL);
        return;
    }
    if (op_encode_member_zone(a->id, a->name, &op) != 0) {
        api_reply_error(a, API_E_OUT_OF_MEMORY, "out of memory");
        return;
    }
    rv = ledger_repl_submit(a->n->repl, &op, zoneApplied, a);
    if (rv == LEDGER_REPL_ENOTLEADER) {
        api_write_lost(a, false);
    } else if (rv != 0) {
        api_reply_error(
            a, rv == LEDGER_REPL_EFULL ? API_E_QUEUE_FULL : API_E_UNAVAILABLE,
            "zone label refused: %s", ledger_repl_strerror(rv));
    }
}
