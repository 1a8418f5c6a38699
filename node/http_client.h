/* Asynchronous HTTP/1.1 client on a libuv loop (one request per TCP
 * connection), used to forward writes and read-index queries to the leader.
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

#endif /* LEDGER_HTTP_CLIENT_H */
