/* The operator console: the status page's files (GET /ui, GET /ui/{file})
 * and the history its charts draw (GET /v1/cluster/history), docs/api.md
 * "Console".
 *
 * The page is static: node/ui/ holds its HTML, CSS and JS, which the build
 * turns into C arrays (cmake/embed.cmake -> ui_assets.c). It needs no
 * token and loads nothing from elsewhere (the Content-Security-Policy
 * below forbids it); its data comes from the API with the token the user
 * types.
 *
 * History lives on the leader (history.h): a follower relays the leader's
 * answer and, when it cannot, says so (503) instead of showing its own
 * empty ring, unless asked for it with ?local=1.
 */
#include <stdio.h>
#include <string.h>

#include "api.h"
#include "history.h"
#include "ui_assets.h"

#define CONSOLE__FORWARD_TIMEOUT_MS 3000

/* The page may load only its own files and talk only to this node. */
#define CONSOLE__HEADERS                                                       \
    "Cache-Control: no-cache\r\n"                                              \
    "X-Content-Type-Options: nosniff\r\n"                                      \
    "Referrer-Policy: no-referrer\r\n"                                         \
    "Content-Security-Policy: default-src 'none'; script-src 'self'; "         \
    "style-src 'self'; img-src 'self' data:; connect-src 'self'; "             \
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'\r\n"

static const char *contentType(const char *name)
{
    static const struct {
        const char *ext;
        const char *type;
    } types[] = {
        {".html", "text/html; charset=utf-8"},
        {".css", "text/css; charset=utf-8"},
        {".js", "text/javascript; charset=utf-8"},
        {".svg", "image/svg+xml"},
        {".png", "image/png"},
    };
    const char *dot = strrchr(name, '.');
    size_t i;
    for (i = 0; dot != NULL && i < sizeof types / sizeof types[0]; i++) {
        if (strcmp(dot, types[i].ext) == 0) {
            return types[i].type;
        }
    }
    return "application/octet-stream";
}

void api_ui(struct api_req *a)
{
    const char *path = http_request_path(a->http);
    const char *name = "index.html";
    size_t i;

    if (strncmp(path, "/ui/", 4) == 0 && path[4] != '\0') {
        name = path + 4;
    }
    for (i = 0; i < ui_assets_n; i++) {
        if (strcmp(ui_assets[i].name, name) == 0) {
            api_reply_raw(a, 200, contentType(name),
                          (const char *)ui_assets[i].data, ui_assets[i].len,
                          CONSOLE__HEADERS);
            return;
        }
    }
    api_reply_error(a, API_E_NOT_FOUND, "no console file '%.64s'", name);
}

/* ---- /v1/cluster/history ------------------------------------------------
 */

static void historyForwardCb(void *arg, int status,
                             const struct http_client_response *resp)
{
    struct api_req *a = arg;
    json_t *v = NULL;

    if (status == 0 && resp->status == 200) {
        v = json_loadb(resp->body, resp->body_len, 0, NULL);
    }
    if (v == NULL) {
        api_reply_error(a, API_E_LEADER_UNREACHABLE,
                        "the leader did not answer with its history%s%s",
                        status != 0 ? ": " : "",
                        status != 0 ? uv_strerror(status) : "");
        return;
    }
    api_reply_json(a, 200, v, NULL);
}

void api_cluster_history(struct api_req *a)
{
    const char *local = http_request_query_param(a->http, "local");
    const struct api_leader *l;
    struct ledger_repl_status st;
    uint64_t since = 0;
    char path[96];
    char headers[API_PEER_HEADERS_MAX];

    if (api_query_u64(a, "since_ms", 0, INT64_MAX, &since) != 0) {
        return;
    }
    ledger_repl_status(a->n->repl, &st);
    l = api_leader(a->n);
    if (st.is_leader || a->forwarded || (local && strcmp(local, "0") != 0)) {
        api_reply_json(
            a, 200, history_json(a->n->history, a->n->cfg->id, (int64_t)since),
            NULL);
        return;
    }
    if (l->id == 0 || l->api[0] == '\0') {
        api_reply_error(a, API_E_NO_LEADER,
                        "no leader known: the history is kept by the leader "
                        "(?local=1 shows this node's own)");
        return;
    }
    api_peer_headers(a, headers, sizeof headers);
    snprintf(path, sizeof path, "/v1/cluster/history?since_ms=%llu",
             (unsigned long long)since);
    if (api_peer_request(a->n, l->api, "GET", path, headers, NULL, 0,
                         CONSOLE__FORWARD_TIMEOUT_MS, historyForwardCb,
                         a) != 0) {
        api_reply_error(a, API_E_LEADER_UNREACHABLE,
                        "cannot reach the leader (node %llu)",
                        (unsigned long long)l->id);
    }
}
