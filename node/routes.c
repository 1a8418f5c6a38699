/* Routing: the route table and api_handle(), the entry point of every API
 * request (see routes.h).
 *
 * Order of decisions for one request, each answered at once:
 *   1. the path matches no route: 404 (401 first under /v1/ when the
 *      token is wrong, so an unauthenticated caller learns nothing);
 *      it matches with another method: 405 with Allow;
 *   2. the token is unknown (401), its role is below the route's access
 *      level (403), or its rate limit is used up (429; auth.h);
 *   3. the node is shutting down and the route is not handed over: 503;
 *   4. a path parameter is not valid: 400;
 *   5. the handler runs: here, or through write.c for ROUTE_LEADER.
 */
#include "routes.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "log.h"
#include "roles.h"
#include "zone.h"

#define ROUTES__MAX_SEGS 8 /* Deepest path a route has, plus one. */

static const struct api_route routes[] = {
    {"GET", "/health", "health", api_health, ACCESS_OPEN, 0, NULL},
    {"GET", "/metrics", "metrics", api_metrics, ACCESS_OPEN, 0, NULL},
    {"GET", "/ui", "ui", api_ui, ACCESS_OPEN, 0, NULL},
    {"GET", "/ui/{file}", "ui", api_ui, ACCESS_OPEN, 0, NULL},
    {"GET", "/v1/streams", "streams", api_list_streams, ACCESS_READ, 0, NULL},
    {"GET", "/v1/streams/{stream}", "stream", api_stream_head, ACCESS_READ, 0,
     NULL},
    {"POST", "/v1/streams/{stream}/events", "append", api_append, ACCESS_WRITE,
     ROUTE_LEADER | ROUTE_HANDOVER, api_append_retry_safe},
    {"GET", "/v1/streams/{stream}/events", "read", api_read_events, ACCESS_READ,
     0, NULL},
    {"PUT", "/v1/streams/{stream}/checkpoints/{name}", "checkpoint",
     api_put_checkpoint, ACCESS_WRITE,
     ROUTE_LEADER | ROUTE_SAFE | ROUTE_HANDOVER, NULL},
    {"GET", "/v1/streams/{stream}/checkpoints/{name}", "checkpoint",
     api_get_checkpoint, ACCESS_READ, 0, NULL},
    {"GET", "/v1/cluster", "cluster", api_cluster, ACCESS_READ, 0, NULL},
    {"GET", "/v1/cluster/members", "members", api_cluster, ACCESS_READ, 0,
     NULL},
    {"GET", "/v1/cluster/history", "history", api_cluster_history, ACCESS_READ,
     0, NULL},
    {"POST", "/v1/cluster/members", "members", api_member_add, ACCESS_ADMIN,
     ROUTE_LEADER | ROUTE_LONG, NULL},
    {"DELETE", "/v1/cluster/members/{id}", "member", api_member_remove,
     ACCESS_ADMIN, ROUTE_LEADER | ROUTE_LONG | ROUTE_MOVES_LEADER, NULL},
    {"POST", "/v1/cluster/members/{id}/role", "member_role", api_member_role,
     ACCESS_ADMIN, ROUTE_LEADER | ROUTE_LONG | ROUTE_MOVES_LEADER, NULL},
    {"GET", "/v1/cluster/roles", "roles", api_roles_get, ACCESS_READ, 0, NULL},
    {"PUT", "/v1/cluster/roles", "roles", api_roles_put, ACCESS_ADMIN,
     ROUTE_LEADER | ROUTE_SAFE, NULL},
    {"PUT", "/v1/cluster/members/{id}/zone", "member_zone", api_member_zone,
     ACCESS_ADMIN, ROUTE_LEADER | ROUTE_SAFE, NULL},
    {"POST", "/v1/cluster/leader", "leader", api_leader_transfer, ACCESS_ADMIN,
     ROUTE_LEADER | ROUTE_MOVES_LEADER, NULL},
    {"GET", "/v1/verify", "verify", api_verify, ACCESS_READ, 0, NULL},
    {"GET", "/v1/backup", "backup", api_backup, ACCESS_ADMIN, 0, NULL},
    {"GET", "/v1/internal/events", "internal", api_internal_events, ACCESS_READ,
     0, NULL},
    {"GET", "/v1/internal/hash", "internal", api_internal_hash, ACCESS_READ, 0,
     NULL},
    {"GET", "/v1/internal/read_index", "internal", api_internal_read_index,
     ACCESS_READ, 0, NULL},
    {"GET", "/v1/internal/status", "internal", api_internal_status, ACCESS_READ,
     0, NULL},
};

#define ROUTES__N (sizeof routes / sizeof routes[0])

const char *route_access_name(enum route_access access)
{
    static const char *names[] = {"open", "read", "write", "admin"};
    return names[access];
}

/* ---- Matching ------------------------------------------------------------ */

struct path {
    char buf[2048];
    char *segs[ROUTES__MAX_SEGS];
    size_t n; /* ROUTES__MAX_SEGS + 1: deeper than any route. */
};

/* Split on '/', keeping empty segments: "/v1/streams//events" names an
 * empty stream (400), it is not "/v1/streams/events". One trailing slash
 * is ignored. */
static void splitPath(const char *p, struct path *out)
{
    char *tok;

    snprintf(out->buf, sizeof out->buf, "%s", p);
    tok = out->buf[0] == '/' ? out->buf + 1 : out->buf;
    out->n = 0;
    while (tok != NULL && out->n < ROUTES__MAX_SEGS) {
        char *slash = strchr(tok, '/');
        if (slash != NULL) {
            *slash = '\0';
        }
        out->segs[out->n++] = tok;
        tok = slash != NULL ? slash + 1 : NULL;
    }
    if (tok != NULL) {
        out->n = ROUTES__MAX_SEGS + 1;
    } else if (out->n > 1 && out->segs[out->n - 1][0] == '\0') {
        out->n--;
    }
}

static bool matchPattern(const char *pattern, const struct path *p)
{
    const char *s = pattern + 1;
    size_t i = 0;

    while (*s != '\0') {
        const char *end = strchr(s, '/');
        size_t len = end != NULL ? (size_t)(end - s) : strlen(s);
        if (i >= p->n) {
            return false;
        }
        if (s[0] != '{' &&
            (strlen(p->segs[i]) != len || strncmp(s, p->segs[i], len) != 0)) {
            return false;
        }
        i++;
        s += len + (end != NULL ? 1 : 0);
    }
    return i == p->n;
}

/* The route for method and path, or NULL; *allow lists the methods the
 * path has (empty: no route has the path). */
static const struct api_route *
findRoute(const char *method, const struct path *p, char *allow, size_t len)
{
    const struct api_route *hit = NULL;
    size_t al = 0;

    allow[0] = '\0';
    for (size_t i = 0; i < ROUTES__N; i++) {
        if (!matchPattern(routes[i].pattern, p)) {
            continue;
        }
        if (strcmp(routes[i].method, method) == 0) {
            hit = &routes[i];
        }
        if (strstr(allow, routes[i].method) == NULL && al < len) {
            al += (size_t)snprintf(allow + al, len - al, "%s%s",
                                   al > 0 ? ", " : "", routes[i].method);
        }
    }
    return hit;
}

/* ---- Path parameters ------------------------------------------------------
 */

static bool nameParam(struct api_req *a, const char *seg, char *out,
                      const char *what)
{
    if (!ledger_stream_name_valid(seg, strlen(seg))) {
        api_reply_error(a, API_E_BAD_NAME,
                        "%s name '%.64s%s' is invalid: use 1-255 characters "
                        "from A-Z a-z 0-9 . _ : -",
                        what, seg, strlen(seg) > 64 ? "..." : "");
        return false;
    }
    snprintf(out, LEDGER_STREAM_MAX + 1, "%s", seg);
    return true;
}

static bool idParam(struct api_req *a, const char *s)
{
    char *end;
    unsigned long long v;

    if (s[0] >= '1' && s[0] <= '9' && strlen(s) <= 19) {
        v = strtoull(s, &end, 10);
        if (*end == '\0') {
            a->id = v;
            return true;
        }
    }
    api_reply_error(a, API_E_BAD_ID,
                    "member id '%.40s' is not a positive integer", s);
    return false;
}

/* Fill a's path parameters from the pattern's placeholders; replies 400 and
 * returns false on a bad one. */
static bool pathParams(struct api_req *a, const struct path *p)
{
    const char *s = a->rt->pattern + 1;

    for (size_t i = 0; i < p->n; i++) {
        bool ok = true;
        if (strncmp(s, "{stream}", 8) == 0) {
            ok = nameParam(a, p->segs[i], a->stream, "stream");
        } else if (strncmp(s, "{name}", 6) == 0) {
            ok = nameParam(a, p->segs[i], a->name, "checkpoint");
        } else if (strncmp(s, "{id}", 4) == 0) {
            ok = idParam(a, p->segs[i]);
        }
        if (!ok) {
            return false;
        }
        s = strchr(s, '/');
        s = s != NULL ? s + 1 : "";
    }
    return true;
}

/* ---- The entry point ------------------------------------------------------
 */

static bool safeRid(const char *s)
{
    size_t i;
    if (s == NULL || s[0] == '\0' || strlen(s) > 40) {
        return false;
    }
    for (i = 0; s[i]; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.')) {
            return false;
        }
    }
    return true;
}

static struct api_req *newRequest(struct ledger_node *n, http_request *req)
{
    struct api_req *a = calloc(1, sizeof *a);
    const char *rid;
    const char *fwd;

    if (a == NULL) {
        return NULL;
    }
    a->n = n;
    a->http = req;
    a->method = http_request_method(req);
    a->start_ns = uv_hrtime();
    a->route = "unknown";
    a->out_fmt = codec_format_from_header(http_request_header(req, "Accept"));
    fwd = http_request_header(req, "X-Ledger-Forwarded");
    if (fwd != NULL) {
        a->forwarded = true;
        a->hops = (unsigned)strtoul(fwd, NULL, 10);
        a->hops = a->hops == 0 ? 1 : a->hops;
    }
    rid = http_request_header(req, "X-Request-Id");
    if (safeRid(rid)) {
        snprintf(a->rid, sizeof a->rid, "%s", rid);
    } else {
        snprintf(a->rid, sizeof a->rid, "%llu-%llu",
                 (unsigned long long)n->cfg->id,
                 (unsigned long long)++n->next_rid);
    }
    return a;
}

static bool authorize(struct api_req *a, enum route_access need)
{
    struct auth_who who;

    switch (auth_check(a->n, http_request_header(a->http, "Authorization"),
                       http_request_header(a->http, AUTH_PEER_HEADER), need,
                       &who)) {
    case AUTH_OK:
        return true;
    case AUTH_FORBIDDEN:
        api_reply_error(a, API_E_FORBIDDEN,
                        "token '%s' (role %s) may not %s %s: it needs the "
                        "%s role",
                        who.name, token_role_name(who.role), a->method,
                        http_request_path(a->http), route_access_name(need));
        return false;
    case AUTH_RATE_LIMITED:
        a->retry_after_s = who.retry_after_s;
        api_reply_error(a, API_E_RATE_LIMITED,
                        "token '%s' is over its rate limit: retry in %u s",
                        who.name, who.retry_after_s);
        return false;
    default:
        a->route = "auth";
        api_reply_error(a, API_E_UNAUTHORIZED,
                        "missing or wrong bearer token: send "
                        "'Authorization: Bearer TOKEN'");
        return false;
    }
}

void api_handle(void *arg, http_request *req)
{
    struct ledger_node *n = arg;
    struct api_req *a = newRequest(n, req);
    const struct api_route *rt;
    struct path p;
    char allow[64];

    if (a == NULL) {
        http_response_send(req, 503, "application/json",
                           "{\"error\":{\"code\":\"out_of_memory\","
                           "\"message\":\"out of memory\"}}",
                           58, "Retry-After: 1\r\n");
        return;
    }
    splitPath(http_request_path(req), &p);
    rt = findRoute(a->method, &p, allow, sizeof allow);
    if (rt == NULL) {
        bool v1 = p.n >= 1 && strcmp(p.segs[0], "v1") == 0;
        if (v1 && !authorize(a, ACCESS_READ)) {
            return;
        }
        if (allow[0] != '\0') {
            a->route = "method";
            api_method_not_allowed(a, allow);
            return;
        }
        a->route = "not_found";
        api_reply_error(a, API_E_NOT_FOUND, "no route for %s %s", a->method,
                        http_request_path(req));
        return;
    }
    a->rt = rt;
    a->route = rt->name;
    if (!authorize(a, rt->access)) {
        return;
    }
    /* A node shutting down still takes writes: it hands them to the new
     * leader (write.c waits for the hand-over), so a client that sent one
     * just then sees no failure. Everything else goes elsewhere. */
    if (n->shutting_down && rt->access != ACCESS_OPEN &&
        !(rt->flags & ROUTE_HANDOVER)) {
        a->route = "shutdown";
        api_reply_error(a, API_E_SHUTTING_DOWN,
                        "this node is shutting down: use another node");
        return;
    }
    if (!pathParams(a, &p)) {
        return;
    }
    if (rt->flags & ROUTE_LEADER) {
        api_write(a, rt->handler, (rt->flags & ROUTE_SAFE) != 0);
        return;
    }
    rt->handler(a);
}
