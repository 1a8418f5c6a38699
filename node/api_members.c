/* Membership endpoints: add, change role, remove, transfer leadership.
 *
 * One configuration change at a time (replication/membership.c); a second
 * one while the first is pending is answered 409 `change_in_progress` with
 * Retry-After, before anything is changed. Adding a member first replicates
 * its API address (a MEMBER_PUT op, so every node can forward to it once it
 * leads), then adds it to the Raft configuration as a spare and assigns the
 * requested role; a voter is promoted only once it has caught up (within
 * REPL_PROMOTE_MAX_LAG entries), so the call returns once it is a voter, or
 * fails after the body's timeout_ms leaving it a standby.
 *
 * Refused with no change: an id or address already used (409), an unknown
 * id (404), removing or demoting the last voter (409 last_voter), a
 * malformed body or address (400). Removing or demoting the leader itself
 * first hands leadership to the most up-to-date voter, then forwards the
 * same request to the new leader. All of these run on the leader; a
 * follower forwards them.
 */
#include <raft.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "config.h"
#include "log.h"
#include "roles.h"

static int parseRole(const char *s)
{
    if (s == NULL) {
        return -1;
    }
    if (strcmp(s, "voter") == 0) {
        return REPL_ROLE_VOTER;
    }
    if (strcmp(s, "standby") == 0) {
        return REPL_ROLE_STANDBY;
    }
    if (strcmp(s, "spare") == 0) {
        return REPL_ROLE_SPARE;
    }
    return -1;
}

static enum api_error raftStatusError(int rv)
{
    switch (rv) {
    case RAFT_NOTLEADER:
    case RAFT_LEADERSHIPLOST:
        return API_E_NOT_LEADER;
    case RAFT_CANTCHANGE:
        return API_E_CHANGE_IN_PROGRESS;
    case RAFT_DUPLICATEID:
    case RAFT_DUPLICATEADDRESS:
        return API_E_MEMBER_EXISTS;
    case RAFT_BADID:
    case RAFT_NOTFOUND:
        return API_E_MEMBER_NOT_FOUND;
    case RAFT_BADROLE:
        return API_E_BAD_ROLE;
    case RAFT_NOCONNECTION:
        return API_E_CATCH_UP_FAILED;
    case RAFT_CANCELED:
        return API_E_CANCELLED;
    case RAFT_SHUTDOWN:
        return API_E_SHUTTING_DOWN;
    case RAFT_BUSY:
        return API_E_UNAVAILABLE;
    default:
        return API_E_MEMBERSHIP_FAILED;
    }
}

static void replyMember(struct api_req *a, int status, const char *detail)
{
    struct ledger_repl_member_info m[REPL__MEMBERS_MAX];
    size_t n = ledger_repl_members(a->n->repl, m, REPL__MEMBERS_MAX);
    size_t i;
    for (i = 0; i < n && i < REPL__MEMBERS_MAX; i++) {
        if (m[i].id == a->id) {
            json_t *o = json_pack("{s:I, s:s, s:s, s:s}", "id",
                                  (json_int_t)m[i].id, "raft_addr",
                                  m[i].raft_addr, "api_addr", m[i].api_addr,
                                  "role", ledger_repl_role_name(m[i].role));
            if (detail != NULL && o != NULL) {
                json_object_set_new(o, "detail", json_string(detail));
            }
            api_reply_json(a, status, o, NULL);
            return;
        }
    }
    api_reply_json(
        a, status,
        json_pack("{s:I, s:b}", "id", (json_int_t)a->id, "removed", 1), NULL);
}

static void changeDone(void *arg, int status, const char *msg)
{
    struct api_req *a = arg;
    if (status == 0) {
        ledger_log(LOG_INFO, a->rid, "membership: %s %s of member %llu done",
                   a->method, a->route, (unsigned long long)a->id);
        replyMember(a,
                    strcmp(a->method, "POST") == 0 &&
                            strcmp(a->route, "members") == 0
                        ? 201
                        : 200,
                    msg);
        return;
    }
    ledger_log(LOG_WARN, a->rid, "membership: %s %s of member %llu failed: %s",
               a->method, a->route, (unsigned long long)a->id, msg);
    api_reply_error(a, raftStatusError(status),
                    "membership change of %llu failed: %s",
                    (unsigned long long)a->id, msg);
}

static void startFailed(struct api_req *a, int rv)
{
    api_reply_error(a, raftStatusError(rv),
                    "membership change of %llu refused: %s",
                    (unsigned long long)a->id, ledger_repl_errmsg(a->n->repl));
}

/* ---- Add -------------------------------------------------------------- */

/* Does a member (only member `id` when id != 0) use `addr` as its raft or
 * (when api is true) its API address? */
static bool addressInUse(struct api_req *a, const char *addr, uint64_t id,
                         bool api)
{
    struct ledger_repl_member_info m[REPL__MEMBERS_MAX];
    size_t n = ledger_repl_members(a->n->repl, m, REPL__MEMBERS_MAX);
    size_t i;
    for (i = 0; i < n && i < REPL__MEMBERS_MAX; i++) {
        if ((id == 0 || m[i].id == id) &&
            (strcmp(m[i].raft_addr, addr) == 0 ||
             (api && strcmp(m[i].api_addr, addr) == 0))) {
            return true;
        }
    }
    return false;
}

/* 409 change_in_progress (with Retry-After) if a change is running. */
static bool refuseIfBusy(struct api_req *a)
{
    if (!ledger_repl_change_busy(a->n->repl)) {
        return false;
    }
    api_reply_error(a, API_E_CHANGE_IN_PROGRESS,
                    "another membership change is in progress: retry when "
                    "it is done");
    return true;
}

/* Optional "timeout_ms" of a body (catch-up deadline of a promotion). */
static bool bodyTimeout(struct api_req *a, json_t *body, unsigned *out)
{
    json_t *t = json_object_get(body, "timeout_ms");
    *out = 0;
    if (t == NULL || json_is_null(t)) {
        return true;
    }
    if (!json_is_integer(t) || json_integer_value(t) < 1 ||
        json_integer_value(t) > MEMBERSHIP_MAX_WAIT_MS) {
        api_reply_error(a, API_E_BAD_BODY,
                        "\"timeout_ms\" must be an integer from 1 to %u",
                        MEMBERSHIP_MAX_WAIT_MS);
        return false;
    }
    *out = (unsigned)json_integer_value(t);
    return true;
}

struct addCtx {
    struct ledger_repl_member m;
    int role;
    unsigned timeout_ms;
};

static void addAfterPut(void *arg, int status,
                        const struct ledger_op_result *res)
{
    struct api_req *a = arg;
    struct addCtx *c = http_request_get_data(a->http);
    int rv;

    (void)res;
    http_request_set_data(a->http, NULL);
    if (status != 0) {
        free(c);
        api_reply_error(a, API_E_UNAVAILABLE,
                        "could not record the member's address: %s",
                        ledger_repl_strerror(status));
        return;
    }
    rv = ledger_repl_add(a->n->repl, &c->m, c->role, c->timeout_ms, changeDone,
                         a);
    free(c);
    if (rv != 0) {
        startFailed(a, rv);
    }
}

void api_member_add(struct api_req *a)
{
    json_t *body = api_body(a);
    json_t *id;
    const char *ra;
    const char *aa;
    const char *role;
    struct addCtx *c;
    struct op_member om;
    struct op_buf op;
    char host[64];
    int port;
    char ra_norm[REPL_ADDR_MAX];
    char aa_norm[REPL_ADDR_MAX];
    const char *used;
    unsigned timeout_ms;
    int rv;

    if (body == NULL) {
        return;
    }
    if (!bodyTimeout(a, body, &timeout_ms)) {
        goto out;
    }
    id = json_object_get(body, "id");
    ra = json_string_value(json_object_get(body, "raft_addr"));
    aa = json_string_value(json_object_get(body, "api_addr"));
    role = json_string_value(json_object_get(body, "role"));
    if (!json_is_integer(id) || json_integer_value(id) <= 0) {
        api_reply_error(a, API_E_BAD_BODY, "\"id\" must be a positive integer");
        goto out;
    }
    if (ra == NULL || ledger_parse_addr(ra, host, sizeof host, &port) != 0 ||
        strlen(ra) >= REPL_ADDR_MAX || aa == NULL ||
        ledger_parse_addr(aa, host, sizeof host, &port) != 0 ||
        strlen(aa) >= REPL_ADDR_MAX) {
        api_reply_error(a, API_E_BAD_BODY,
                        "\"raft_addr\" and \"api_addr\" must be HOST:PORT");
        goto out;
    }
    if (role != NULL && parseRole(role) < 0) {
        api_reply_error(a, API_E_BAD_BODY,
                        "\"role\" must be voter, standby or spare");
        goto out;
    }
    /* Normalised like ledgerd's own flags (localhost -> 127.0.0.1), so
     * comparisons and Raft's transport see one spelling. */
    ledger_parse_addr(ra, host, sizeof host, &port);
    snprintf(ra_norm, sizeof ra_norm, "%s:%d", host, port);
    ledger_parse_addr(aa, host, sizeof host, &port);
    snprintf(aa_norm, sizeof aa_norm, "%s:%d", host, port);
    ra = ra_norm;
    aa = aa_norm;
    if (strcmp(ra, aa) == 0) {
        api_reply_error(a, API_E_BAD_BODY,
                        "\"raft_addr\" and \"api_addr\" are both %s: give "
                        "each its own port",
                        ra);
        goto out;
    }
    a->id = (uint64_t)json_integer_value(id);
    if (ledger_repl_member_role(a->n->repl, a->id) >= 0) {
        /* Same id: "member_exists" when it is the same node (a retried
         * join), "id_in_use" when another address holds the id. */
        if (addressInUse(a, ra, a->id, false)) {
            api_reply_error(a, API_E_MEMBER_EXISTS,
                            "member %llu already exists",
                            (unsigned long long)a->id);
        } else {
            api_reply_error(a, API_E_ID_IN_USE,
                            "member id %llu is used by another raft_addr: "
                            "pick another id",
                            (unsigned long long)a->id);
        }
        goto out;
    }
    used = addressInUse(a, ra, 0, true)   ? ra
           : addressInUse(a, aa, 0, true) ? aa
                                          : NULL;
    if (used != NULL) {
        api_reply_error(a, API_E_ADDRESS_IN_USE,
                        "%s is already used by another member: pick another "
                        "address",
                        used);
        goto out;
    }
    if (refuseIfBusy(a)) {
        goto out;
    }
    c = calloc(1, sizeof *c);
    if (c == NULL) {
        api_reply_error(a, API_E_OUT_OF_MEMORY, "out of memory");
        goto out;
    }
    c->m.id = a->id;
    snprintf(c->m.raft_addr, sizeof c->m.raft_addr, "%s", ra);
    snprintf(c->m.api_addr, sizeof c->m.api_addr, "%s", aa);
    c->role = role != NULL ? parseRole(role) : REPL_ROLE_VOTER;
    {
        struct roles_targets t;
        if (roles_targets(a->n, &t) == 0 && t.voters > 0 &&
            c->role != REPL_ROLE_SPARE) {
            /* Automatic roles: the policy promotes it (roles.h). */
            ledger_log(LOG_INFO, a->rid,
                       "membership: automatic roles: %llu enters as a "
                       "spare, not as %s",
                       (unsigned long long)a->id, role ? role : "voter");
            c->role = REPL_ROLE_SPARE;
        }
    }
    c->timeout_ms = timeout_ms;
    om.id = c->m.id;
    om.raft_addr = c->m.raft_addr;
    om.api_addr = c->m.api_addr;
    if (op_encode_member_put(&om, &op) != 0) {
        free(c);
        api_reply_error(a, API_E_OUT_OF_MEMORY, "out of memory");
        goto out;
    }
    http_request_set_data(a->http, c);
    rv = ledger_repl_submit(a->n->repl, &op, addAfterPut, a);
    if (rv != 0) {
        http_request_set_data(a->http, NULL);
        free(c);
        api_reply_error(a, API_E_UNAVAILABLE, "cannot add member: %s",
                        ledger_repl_strerror(rv));
    }
out:
    json_decref(body);
}

/* ---- Role, remove ------------------------------------------------------ */

/* The request would take the leader (this node) out of the voters: hand
 * leadership to the most up-to-date voter first, then forward the same
 * request to the new leader. */
static void handedOver(void *arg, uint64_t leader)
{
    struct api_req *a = arg;
    if (leader == 0 || leader == a->n->cfg->id) {
        api_reply_error(a, API_E_TRANSFER_FAILED,
                        "member %llu is the leader and could not hand "
                        "leadership over first: retry",
                        (unsigned long long)a->id);
        return;
    }
    ledger_log(LOG_INFO, a->rid,
               "membership: handed leadership to %llu before %s %s of %llu",
               (unsigned long long)leader, a->method, a->route,
               (unsigned long long)a->id);
    a->w.handed_off = true;
    api_write_lost(a, false);
}

/* Refuse taking the last voter away; for the leader, hand over first.
 * Returns true when it took care of the request. */
static bool leavingVoters(struct api_req *a)
{
    int rv;
    if (ledger_repl_member_role(a->n->repl, a->id) != REPL_ROLE_VOTER) {
        return false;
    }
    if (ledger_repl_voters(a->n->repl) <= 1) {
        api_reply_error(a, API_E_LAST_VOTER,
                        "member %llu is the last voter: add and promote "
                        "another voter first",
                        (unsigned long long)a->id);
        return true;
    }
    if (a->id != a->n->cfg->id) {
        return false;
    }
    if (refuseIfBusy(a)) {
        return true;
    }
    rv = ledger_repl_transfer(a->n->repl, 0, handedOver, a);
    if (rv != 0) {
        api_reply_error(a, API_E_TRANSFER_FAILED,
                        "member %llu is the leader and cannot hand "
                        "leadership over: %s",
                        (unsigned long long)a->id, ledger_repl_strerror(rv));
    }
    return true;
}

void api_member_role(struct api_req *a)
{
    json_t *body = api_body(a);
    unsigned timeout_ms;
    int role;
    int rv;

    if (body == NULL) {
        return;
    }
    role = parseRole(json_string_value(json_object_get(body, "role")));
    if (!bodyTimeout(a, body, &timeout_ms)) {
        json_decref(body);
        return;
    }
    json_decref(body);
    if (role < 0) {
        api_reply_error(a, API_E_BAD_BODY,
                        "\"role\" must be voter, standby or spare");
        return;
    }
    if (ledger_repl_member_role(a->n->repl, a->id) < 0) {
        api_reply_error(a, API_E_MEMBER_NOT_FOUND, "no member %llu",
                        (unsigned long long)a->id);
        return;
    }
    if (ledger_repl_member_role(a->n->repl, a->id) == role) {
        replyMember(a, 200, "already so"); /* nothing to do */
        return;
    }
    {
        struct roles_targets t;
        if (roles_targets(a->n, &t) == 0 && t.voters > 0) {
            api_reply_error(a, API_E_AUTOMATIC_ROLES,
                            "roles are automatic (voters %u, standbys %u): "
                            "set voters 0 first for manual role changes "
                            "(ledgerctl roles --voters 0)",
                            t.voters, t.standbys);
            return;
        }
    }
    if (role != REPL_ROLE_VOTER && leavingVoters(a)) {
        return;
    }
    if (refuseIfBusy(a)) {
        return;
    }
    rv = ledger_repl_assign(a->n->repl, a->id, role, timeout_ms, changeDone, a);
    if (rv != 0) {
        startFailed(a, rv);
    }
}

static void ignoreResult(void *arg, int status,
                         const struct ledger_op_result *res)
{
    (void)arg, (void)status, (void)res;
}

static void removeDone(void *arg, int status, const char *msg)
{
    struct api_req *a = arg;
    struct op_buf op;
    if (status == 0 && op_encode_member_del(a->id, &op) == 0) {
        /* Best effort: a stale address of a removed member is harmless. */
        ledger_repl_submit(a->n->repl, &op, ignoreResult, NULL);
    }
    changeDone(arg, status, status == 0 ? "removed" : msg);
}

void api_member_remove(struct api_req *a)
{
    int rv;
    if (ledger_repl_member_role(a->n->repl, a->id) < 0) {
        api_reply_error(a, API_E_MEMBER_NOT_FOUND, "no member %llu",
                        (unsigned long long)a->id);
        return;
    }
    if (leavingVoters(a)) {
        return;
    }
    /* A promotion of this very member is cancelled by the removal. */
    rv = ledger_repl_remove(a->n->repl, a->id, removeDone, a);
    if (rv != 0) {
        startFailed(a, rv);
    }
}

/* ---- Leader transfer --------------------------------------------------- */

static void transferred(void *arg, uint64_t leader)
{
    struct api_req *a = arg;
    if (leader == 0 || leader == a->n->cfg->id ||
        (a->id != 0 && leader != a->id)) {
        api_reply_error(a, API_E_TRANSFER_FAILED,
                        "leadership did not move (leader now %llu): retry",
                        (unsigned long long)leader);
        return;
    }
    api_reply_json(a, 200, json_pack("{s:I}", "leader_id", (json_int_t)leader),
                   NULL);
}

void api_leader_transfer(struct api_req *a)
{
    size_t len = 0;
    json_t *body = NULL;
    json_t *id;
    int rv;

    http_request_body(a->http, &len);
    if (len > 0 && (body = api_body(a)) == NULL) {
        return;
    }
    id = json_object_get(body, "id");
    if (id != NULL && !json_is_null(id) &&
        (!json_is_integer(id) || json_integer_value(id) < 0)) {
        json_decref(body);
        api_reply_error(a, API_E_BAD_BODY,
                        "\"id\" must be a member id, or 0 for the best one");
        return;
    }
    a->id = json_is_integer(id) ? (uint64_t)json_integer_value(id) : 0;
    json_decref(body);
    if (a->id == a->n->cfg->id) {
        api_reply_json(
            a, 200, json_pack("{s:I}", "leader_id", (json_int_t)a->id), NULL);
        return;
    }
    if (a->id != 0 && ledger_repl_member_role(a->n->repl, a->id) < 0) {
        api_reply_error(a, API_E_MEMBER_NOT_FOUND, "no member %llu",
                        (unsigned long long)a->id);
        return;
    }
    if (a->id != 0 &&
        ledger_repl_member_role(a->n->repl, a->id) != REPL_ROLE_VOTER) {
        api_reply_error(a, API_E_NOT_A_VOTER,
                        "member %llu is not a voter: leadership can only go "
                        "to a voter",
                        (unsigned long long)a->id);
        return;
    }
    rv = ledger_repl_transfer(a->n->repl, a->id, transferred, a);
    if (rv == LEDGER_REPL_EBUSY) {
        api_reply_error(a, API_E_CHANGE_IN_PROGRESS,
                        "a leadership transfer is already in progress: retry "
                        "when it is done");
        return;
    }
    if (rv != 0) {
        api_reply_error(a,
                        rv == LEDGER_REPL_ENOTLEADER ? API_E_NO_OTHER_VOTER
                                                     : API_E_TRANSFER_FAILED,
                        "cannot transfer leadership: %s",
                        rv == LEDGER_REPL_ENOTLEADER
                            ? "no other voter to take it"
                            : ledger_repl_strerror(rv));
    }
}
