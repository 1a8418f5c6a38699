/* Asynchronous HTTP/1.1 client on a libuv loop, used to forward writes and
 * read-index queries to the leader: one-shot (one TCP connection per
 * request, "Connection: close") or through a pool of keep-alive connections
 * per peer address (http_pool_*).
 *
 * Invariants: the callback fires exactly once per successful
 * http_client_request() call, from the loop (never re-entrantly from inside
 * http_client_request), with status 0 and the parsed response, or a negative
 * libuv error code (connect refused, timeout, malformed response). The
 * response pointers are valid only during the callback.
 */
#ifndef LEDGER_HTTP_CLIENT_H
#define LEDGER_HTTP_CLIENT_H

#include <stddef.h>
#include <uv.h>

struct http_client_response {
    int status;               /* HTTP status code. */
    const char *content_type; /* NULL if absent. */
    const char *retry_after;  /* NULL if absent. */
    int duplicate;            /* X-Ledger-Duplicate was present. */
    const char *body;
    size_t body_len;
};

typedef void (*http_client_cb)(void *arg, int status,
                               const struct http_client_response *resp);

/* Send `method path` to addr ("HOST:PORT") with the given body. `headers` is
 * NULL or "Name: value\r\n" lines (Content-Length and Host are added).
 * timeout_ms bounds the whole exchange. Returns 0 (callback will fire) or a
 * negative libuv error code (callback will not fire). All arguments are
 * copied. */
int http_client_request(uv_loop_t *loop, const char *addr, const char *method,
                        const char *path, const char *headers, const char *body,
                        size_t body_len, unsigned timeout_ms, http_client_cb cb,
                        void *arg);

/* A pool of keep-alive connections, reused across requests to the same
 * address. A request takes an idle connection to its address or opens a new
 * one (there is no bound on connections in use: the callers' requests are
 * bounded by the HTTP server); after a complete keep-alive response the
 * connection goes back to the pool if fewer than max_idle are idle, else it
 * is closed. Idle connections are closed after HTTP_POOL_IDLE_MS, or as
 * soon as the peer closes them or sends anything. A request whose reused
 * connection turns out to be closed before any byte of the answer arrived
 * is sent once more on a fresh connection (the peer never read it: our
 * server answers every request it reads before closing).
 *
 * Not thread-safe; one loop. http_pool_close() must be called before the
 * loop is closed: it closes the idle connections at once, lets requests in
 * flight finish (their connections are then closed, not pooled) and frees
 * the pool once every handle is closed. Requests after close fail with
 * UV_ECANCELED (the callback does not fire). */
#define HTTP_POOL_IDLE_MS 30000 /* Idle connections live this long. */

typedef struct http_pool http_pool;

/* NULL when out of memory. */
http_pool *http_pool_create(uv_loop_t *loop, size_t max_idle);
void http_pool_close(http_pool *p);

/* As http_client_request, on a pooled connection. */
int http_pool_request(http_pool *p, const char *addr, const char *method,
                      const char *path, const char *headers, const char *body,
                      size_t body_len, unsigned timeout_ms, http_client_cb cb,
                      void *arg);

/* Open connections of the pool (in use or idle), for metrics and tests. */
size_t http_pool_connections(const http_pool *p);

#endif /* LEDGER_HTTP_CLIENT_H */
