/* The catch-up source: replication asks for "events (after, to] from
 * member N at API address A" (replication/catchup.c decides whom to ask and
 * checks what it gets); this file asks that member's
 * GET /v1/internal/events?from_position=after+1&limit=L for the compact
 * page (L = min(to - after, CATCHUP_PAGE)), with the node's token, through
 * api_peer_request: the node's HTTP client on its loop, so the pull never
 * blocks the loop (a page of 2,000 events is about 200 KB; decoding it
 * and, in replication, inserting it take a few milliseconds on the loop,
 * between which /health, /metrics and reads are served).
 *
 * The page is decoded by events_page.c and handed to the pull's callback
 * from inside the HTTP callback, while the response body (which data_text
 * points into) is alive. Exactly one callback per pull: a transport error,
 * a timeout (CATCHUP_TIMEOUT_MS), a status other than 200, a malformed or
 * empty page are reported as a failure with a message; replication then
 * tries another member. Cancel does nothing: the request ends by itself
 * within its timeout and replication ignores answers it no longer wants.
 */
#include "catchup.h"

#include <stdio.h>
#include <stdlib.h>

#include "api.h"
#include "events_page.h"
#include "http/client.h"
#include "node.h"

#define CATCHUP_PAGE 2000        /* Events per request. */
#define CATCHUP_TIMEOUT_MS 15000 /* Per request. */

struct pullCtx {
    struct ledger_repl_pull *req;
};

static void fail(struct ledger_repl_pull *req, const char *fmt, int a)
{
    char msg[160];
    snprintf(msg, sizeof msg, fmt, a);
    req->cb(req, -1, NULL, 0, msg);
}

static void responseCb(void *arg, int status,
                       const struct http_client_response *resp)
{
    struct pullCtx *c = arg;
    struct ledger_repl_pull *req = c->req;
    struct events_page page;
    char err[160];

    free(c);
    if (status != 0) {
        char msg[160];
        snprintf(msg, sizeof msg, "%s", uv_strerror(status));
        req->cb(req, -1, NULL, 0, msg);
        return;
    }
    if (resp->status != 200) {
        fail(req, "HTTP %d", resp->status);
        return;
    }
    if (events_page_decode(resp->content_type, resp->body, resp->body_len,
                           &page, err, sizeof err) != 0) {
        req->cb(req, -1, NULL, 0, err);
        return;
    }
    if (page.n == 0) {
        events_page_free(&page);
        req->cb(req, -1, NULL, 0, "no events in the page");
        return;
    }
    req->cb(req, 0, page.events, page.n, NULL);
    events_page_free(&page);
}

static int pull(void *data, struct ledger_repl_pull *req)
{
    struct ledger_node *n = data;
    struct pullCtx *c;
    char headers[API_PEER_HEADERS_MAX];
    size_t off;
    char path[128];
    uint64_t limit = req->to - req->after;
    int rv;

    if (limit > CATCHUP_PAGE) {
        limit = CATCHUP_PAGE;
    }
    c = calloc(1, sizeof *c);
    if (c == NULL) {
        return -1;
    }
    c->req = req;
    off = (size_t)snprintf(headers, sizeof headers, "Accept: %s\r\n",
                           EVENTS_PAGE_COMPACT);
    api_peer_auth_headers(n, true, false, headers, sizeof headers, &off);
    snprintf(path, sizeof path,
             "/v1/internal/events?from_position=%llu&limit=%llu",
             (unsigned long long)(req->after + 1), (unsigned long long)limit);
    rv = api_peer_request(n, req->api_addr, "GET", path, headers, NULL, 0,
                          CATCHUP_TIMEOUT_MS, responseCb, c);
    if (rv != 0) {
        free(c);
        return -1;
    }
    return 0;
}

static void cancel(void *data, struct ledger_repl_pull *req)
{
    (void)data;
    (void)req;
}

void node_catchup_source(struct ledger_node *n,
                         struct ledger_repl_catchup_source *out)
{
    out->data = n;
    out->pull = pull;
    out->cancel = cancel;
}
