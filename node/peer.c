/* Calls to other members' APIs, and the leader as this node sees it.
 *
 * - One http_client (libcurl multi on the node's loop) carries every
 *   node-to-node call: forwarded requests, read-index queries, the leader's
 *   status polls, catch-up pulls. It keeps connections alive between calls
 *   and is closed last at shutdown (node.c).
 * - Connecting to a peer takes at most the election timeout: a peer that
 *   does not accept a connection within it is treated as gone (issue 11).
 * - The leader's API address is kept in n->leader and read from the store
 *   only when the leader changes (or while it is still unknown), not per
 *   request.
 * - A spare gets no Raft messages, so Raft does not tell it who leads: it
 *   takes the leader its status poll named (X-Ledger-Leader: id, term and
 *   API address, at most PEER__HINT_MS old), so writes sent to a spare
 *   (even a new one, whose store knows no member yet) are forwarded too.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "api.h"
#include "auth.h"
#include "log.h"

#define PEER__HINT_MS 2000 /* A poll every 500 ms: four missed. */

/* The leader the status poll named, if fresh. Used only while Raft
 * knows no leader: on a spare (which may not even know it is one: the
 * leader stops sending at once, so the entry that made it a spare never
 * reaches it), always. */
static bool spareHint(struct ledger_node *n, struct ledger_repl_leader *l)
{
    if (n->leader_hint.at == 0 ||
        uv_now(n->loop) - n->leader_hint.at > PEER__HINT_MS) {
        return false;
    }
    l->id = n->leader_hint.id;
    l->term = n->leader_hint.term;
    l->here = false;
    return true;
}

const struct api_leader *api_leader(struct ledger_node *n)
{
    struct ledger_repl_leader l;
    struct api_leader *c = &n->leader;
    bool hinted = false;

    ledger_repl_leader(n->repl, &l);
    if (l.id == 0) {
        hinted = spareHint(n, &l);
    }
    if (hinted) {
        snprintf(c->api, sizeof c->api, "%s", n->leader_hint.api);
    } else if (l.id != c->id || c->hinted || (l.id != 0 && c->api[0] == '\0')) {
        c->api[0] = '\0';
        if (l.id != 0 &&
            !ledger_repl_leader_api(n->repl, c->api, sizeof c->api)) {
            c->api[0] = '\0';
        }
    }
    c->id = l.id;
    c->term = l.term;
    c->here = l.here;
    c->hinted = hinted;
    return c;
}

static void put(char *buf, size_t len, size_t *off, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void put(char *buf, size_t len, size_t *off, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (*off >= len) {
        return;
    }
    va_start(ap, fmt);
    n = vsnprintf(buf + *off, len - *off, fmt, ap);
    va_end(ap);
    *off += n > 0 ? (size_t)n : 0;
}

void api_peer_auth_headers(struct ledger_node *n, bool authorization,
                           bool peer_auth, char *buf, size_t len, size_t *off)
{
    const char *token = n->cfg->token;

    if (token == NULL) {
        return;
    }
    if (authorization) {
        put(buf, len, off, "Authorization: Bearer %s\r\n", token);
    }
    if (peer_auth) {
        put(buf, len, off, "%s: Bearer %s\r\n", AUTH_PEER_HEADER, token);
    }
}

/* Replication saw the leader or the term change: take its view (with the
 * leader's address, read once per change) and re-check every waiting
 * request now, so forwards to a replaced leader are resolved in this loop
 * turn rather than at the next sweep. */
void api_on_leader(void *arg, const struct ledger_repl_leader *now)
{
    struct ledger_node *n = arg;
    struct api_leader *c = &n->leader;

    if (now->id != c->id || now->api_addr[0] != '\0') {
        snprintf(c->api, sizeof c->api, "%s", now->api_addr);
    }
    c->id = now->id;
    c->term = now->term;
    c->here = now->here;
    c->hinted = false; /* Raft's view; api_leader() hints again if none. */
    api_sweep(n, false);
}

void api_peer_headers(struct api_req *a, char *buf, size_t len)
{
    const char *auth = http_request_header(a->http, "Authorization");
    size_t off = 0;

    buf[0] = '\0';
    put(buf, len, &off, "X-Ledger-Forwarded: 1\r\nX-Request-Id: %s\r\n",
        a->rid);
    if (auth != NULL) {
        put(buf, len, &off, "Authorization: %s\r\n", auth);
    }
    api_peer_auth_headers(a->n, auth == NULL, true, buf, len, &off);
}

int api_peer_call(struct ledger_node *n, const struct http_call_spec *spec,
                  http_client_cb cb, void *arg, http_call **call)
{
    struct http_call_spec s = *spec;

    if (n->peers == NULL) {
        return UV_ECANCELED; /* closed at shutdown */
    }
    if (s.connect_timeout_ms == 0 ||
        s.connect_timeout_ms > n->cfg->election_ms) {
        s.connect_timeout_ms = n->cfg->election_ms;
    }
    return http_client_request(n->peers, &s, cb, arg, call);
}

int api_peer_request(struct ledger_node *n, const char *addr,
                     const char *method, const char *path, const char *headers,
                     const char *body, size_t len, unsigned timeout_ms,
                     http_client_cb cb, void *arg)
{
    struct http_call_spec s = {
        .addr = addr,
        .method = method,
        .path = path,
        .headers = headers,
        .body = body,
        .body_len = len,
        .timeout_ms = timeout_ms,
    };
    return api_peer_call(n, &s, cb, arg, NULL);
}
