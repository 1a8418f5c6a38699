/* GET and PUT /v1/cluster/roles: the automatic-roles targets (roles.h).
 *
 * GET is answered by the leader (a follower relays it, like GET
 * /v1/cluster, and answers itself when that fails or with ?local=1): the
 * targets from the store after the request's consistency (the default,
 * strong, reflects every PUT acknowledged before it), plus the last change
 * the leader made. PUT runs on the leader: the body
 * {"voters","standbys","dead_after_s"} (each optional: absent ones keep
 * their value) is checked against the cluster (roles_check) and replicated
 * as an OP_ROLES entry; 200 with the new targets once applied. Bad input
 * changes nothing: 400 bad_body / bad_roles, 409 roles_unmet. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api.h"
#include "log.h"
#include "roles.h"

static json_t *targetsJson(const struct roles_targets *t)
{
    return json_pack("{s:I, s:I, s:I, s:b}", "voters", (json_int_t)t->voters,
                     "standbys", (json_int_t)t->standbys, "dead_after_s",
                     (json_int_t)t->dead_after_s, "automatic", t->voters > 0);
}

static void rolesNow(struct api_req *a)
{
    struct roles_targets t;
    struct roles_record rec;
    struct ledger_repl_status st;
    json_t *o;

    if (roles_targets(a->n, &t) != 0) {
        api_reply_store_error(a);
        return;
    }
    o = targetsJson(&t);
    ledger_repl_status(a->n->repl, &st);
    if (st.is_leader && roles_last(a->n->roles, &rec)) {
        json_object_set_new(
            o, "last_change",
            json_pack(
                "{s:I, s:s, s:s, s:s, s:s, s:o, s:s, s:o}", "id",
                (json_int_t)rec.c.id, "from", ledger_repl_role_name(rec.c.from),
                "to", ledger_repl_role_name(rec.c.to), "reason",
                roles_reason_name(rec.c.reason), "why", rec.c.why, "started",
                api_json_time((int64_t)rec.started_ms), "status",
                rec.running  ? "running"
                : rec.failed ? "failed"
                             : "done",
                "error", rec.failed ? json_string(rec.error) : json_null()));
    } else {
        json_object_set_new(o, "last_change", json_null());
    }
    api_reply_json(a, 200, o, NULL);
}

static void forwardCb(void *arg, int status,
                      const struct http_client_response *resp)
{
    struct api_req *a = arg;
    json_t *v;
    if (status != 0 || resp->status != 200 ||
        (v = json_loadb(resp->body, resp->body_len, 0, NULL)) == NULL) {
        api_read(a, rolesNow); /* The leader's view is best; ours will do. */
        return;
    }
    api_reply_json(a, 200, v, NULL);
}

/* The leader knows the last change: ask it (like GET /v1/cluster), unless
 * we are it, the request was forwarded, or ?local=1. */
void api_roles_get(struct api_req *a)
{
    struct ledger_repl_status st;
    const struct api_leader *l = api_leader(a->n);
    char headers[1200];
    const char *local = http_request_query_param(a->http, "local");

    /* api_leader(), not Raft alone: a spare knows the leader from its
     * status poll only (peer.c). */
    ledger_repl_status(a->n->repl, &st);
    if (st.is_leader || a->forwarded || (local && strcmp(local, "0") != 0) ||
        l->id == 0 || l->here || l->api[0] == '\0') {
        api_read(a, rolesNow);
        return;
    }
    api_peer_headers(a, headers, sizeof headers);
    if (api_peer_request(a->n, l->api, "GET", "/v1/cluster/roles", headers,
                         NULL, 0, 3000, forwardCb, a) != 0) {
        api_read(a, rolesNow);
    }
}

/* Body field `key`: absent keeps *v; else a non-negative integer up to
 * 10^6. False after replying 400. */
static bool field(struct api_req *a, json_t *body, const char *key, unsigned *v)
{
    json_t *f = json_object_get(body, key);
    if (f == NULL) {
        return true;
    }
    if (!json_is_integer(f) || json_integer_value(f) < 0 ||
        json_integer_value(f) > 1000000) {
        api_reply_error(a, API_E_BAD_BODY,
                        "\"%s\" must be an integer from 0 to 1000000", key);
        return false;
    }
    *v = (unsigned)json_integer_value(f);
    return true;
}

static void rolesApplied(void *arg, int status,
                         const struct ledger_op_result *res)
{
    struct api_req *a = arg;
    struct roles_targets t;

    if (status == LEDGER_REPL_ENOTLEADER || status == LEDGER_REPL_EUNKNOWN) {
        api_write_lost(a, status == LEDGER_REPL_EUNKNOWN);
        return;
    }
    if (status != 0 || res->error != 0) {
        api_reply_error(a, API_E_UNAVAILABLE, "roles targets not confirmed: %s",
                        status ? ledger_repl_strerror(status)
                               : "store refused");
        return;
    }
    if (roles_targets(a->n, &t) != 0) {
        api_reply_store_error(a);
        return;
    }
    ledger_log(LOG_INFO, a->rid,
               "roles: targets voters %u, standbys %u, dead after %u s%s",
               t.voters, t.standbys, t.dead_after_s,
               t.voters == 0 ? " (manual roles)" : "");
    json_t *o = targetsJson(&t);
    api_reply_json(a, 200, o, NULL);
}

void api_roles_put(struct api_req *a)
{
    static const char *keys[] = {"voters", "standbys", "dead_after_s"};
    struct ledger_repl_member_info m[REPL__MEMBERS_MAX];
    struct roles_targets now;
    struct roles_targets want;
    struct ledger_roles r;
    struct op_buf op;
    json_t *body = api_body(a);
    const char *key;
    json_t *value;
    char err[256];
    size_t n;
    int rv;

    if (body == NULL) {
        return;
    }
    if (!json_is_object(body) || json_object_size(body) == 0) {
        json_decref(body);
        api_reply_error(a, API_E_BAD_BODY,
                        "body must be an object with \"voters\", "
                        "\"standbys\" and/or \"dead_after_s\"");
        return;
    }
    json_object_foreach(body, key, value)
    {
        size_t k;
        for (k = 0; k < 3 && strcmp(key, keys[k]) != 0; k++) {
        }
        if (k == 3) {
            api_reply_error(a, API_E_BAD_BODY,
                            "unknown field \"%.40s\": use \"voters\", "
                            "\"standbys\", \"dead_after_s\"",
                            key);
            json_decref(body);
            return;
        }
    }
    if (roles_targets(a->n, &now) != 0) {
        json_decref(body);
        api_reply_store_error(a);
        return;
    }
    want = now;
    if (!field(a, body, "voters", &want.voters) ||
        !field(a, body, "standbys", &want.standbys) ||
        !field(a, body, "dead_after_s", &want.dead_after_s)) {
        json_decref(body);
        return;
    }
    if (want.voters == 0 && json_object_get(body, "standbys") == NULL) {
        want.standbys = 0; /* Back to manual roles: no standbys target. */
    }
    json_decref(body);
    n = ledger_repl_members(a->n->repl, m, REPL__MEMBERS_MAX);
    switch (roles_check(&want, n, err, sizeof err)) {
    case ROLES_OK:
        break;
    case ROLES_UNMET:
        api_reply_error(a, API_E_ROLES_UNMET, "%s", err);
        return;
    default:
        api_reply_error(a, API_E_BAD_ROLES, "%s", err);
        return;
    }
    if (ledger_store_get_roles(a->n->store, &r) == 0 &&
        r.voters == want.voters && r.standbys == want.standbys &&
        r.dead_after_s == want.dead_after_s) {
        api_reply_json(a, 200, targetsJson(&want), NULL);
        return;
    }
    r.voters = want.voters;
    r.standbys = want.standbys;
    r.dead_after_s = want.dead_after_s;
    if (op_encode_roles(&r, &op) != 0) {
        api_reply_error(a, API_E_OUT_OF_MEMORY, "out of memory");
        return;
    }
    rv = ledger_repl_submit(a->n->repl, &op, rolesApplied, a);
    if (rv == LEDGER_REPL_ENOTLEADER) {
        api_write_lost(a, false);
    } else if (rv != 0) {
        api_reply_error(
            a, rv == LEDGER_REPL_EFULL ? API_E_QUEUE_FULL : API_E_UNAVAILABLE,
            "roles targets refused: %s", ledger_repl_strerror(rv));
    }
}
