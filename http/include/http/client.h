/* Asynchronous HTTP client on a libuv loop: libcurl's multi interface
 * driven by the loop (curl's docs/examples/multi-uv.c), so keep-alive
 * connection reuse, timeouts and TLS come from libcurl.
 *
 * One http_client per loop owns one curl multi handle (and its cache of
 * keep-alive connections). Each request is an http_call.
 *
 * Invariants:
 * - The callback of a call fires exactly once, from a loop callback (never
 *   from inside http_client_request or http_call_cancel), unless the call
 *   was cancelled first: a cancelled call never calls back.
 * - On failure `status` is a negative libuv error code and `resp` still
 *   says whether any byte of the request was sent (`resp->sent`): a call
 *   that failed with sent == 0 never reached the peer (connection refused
 *   or not established in time), so it can be retried anywhere safely.
 * - The response pointers are valid only during the callback.
 * - Not thread-safe: one loop, one thread.
 */
#ifndef LEDGER_HTTP_CLIENT_H
#define LEDGER_HTTP_CLIENT_H

#include <stddef.h>
#include <uv.h>

typedef struct http_client http_client;
typedef struct http_call http_call;

struct http_client_response {
    int status;               /* HTTP status code; 0 when none arrived. */
    int sent;                 /* Some byte of the request was sent. */
    const char *content_type; /* NULL if absent. */
    const char *retry_after;  /* NULL if absent. */
    const char *body;
    size_t body_len;
    const char *headers_raw; /* Every header line, "\r\n"-terminated. */
};

/* Value of response header `name` (case-insensitive), copied into buf;
 * NULL if absent. */
const char *http_client_response_header(const struct http_client_response *r,
                                        const char *name, char *buf,
                                        size_t len);

typedef void (*http_client_cb)(void *arg, int status,
                               const struct http_client_response *resp);

struct http_client_options {
    size_t max_idle;       /* Idle keep-alive connections kept (default 64). */
    size_t max_body;       /* Largest response body accepted (default 64 MiB;
                              larger: UV_E2BIG). */
    const char *ca_file;   /* PEM CA bundle to verify https peers, or NULL. */
    const char *cert_file; /* Client certificate (PEM) for https, or NULL. */
    const char *key_file;  /* Its key (PEM), or NULL. */
    int https;             /* Non-zero: an address without a scheme
                              ("HOST:PORT") means https://HOST:PORT. */
};

/* Create a client on `loop`; `opts` may be NULL (defaults). The strings in
 * opts are copied. Returns 0 or a negative libuv error code. */
int http_client_create(uv_loop_t *loop, const struct http_client_options *opts,
                       http_client **out);

/* Replace the TLS files of the client (certificate reload); later calls
 * use them. Returns 0 or UV_ENOMEM. */
int http_client_set_tls(http_client *c, const char *ca_file,
                        const char *cert_file, const char *key_file);

/* Cancel every call in flight (their callbacks fire with UV_ECANCELED from
 * the loop), close every connection and free the client once its handles
 * are closed; `cb` (may be NULL) runs then. No request may be made after. */
void http_client_close(http_client *c, void (*cb)(void *arg), void *arg);

/* Calls in flight, and open connections (metrics and tests). */
size_t http_client_calls(const http_client *c);

struct http_call_spec {
    const char *addr;    /* "HOST:PORT", "http://HOST:PORT" or
                            "https://HOST:PORT"; the peer's certificate
                            must name HOST (an IP: in its SAN). */
    const char *method;  /* "GET", "POST", ... */
    const char *path;    /* "/v1/...", query included. */
    const char *headers; /* NULL or "Name: value\r\n" lines. */
    const char *body;    /* May be NULL when body_len is 0. */
    size_t body_len;
    unsigned timeout_ms;         /* The whole exchange (0: no bound). */
    unsigned connect_timeout_ms; /* Connecting (0: timeout_ms). */
};

/* Start a call. Every argument is copied. Returns 0 (the callback will
 * fire, or the call is cancelled) and sets *call when `call` is not NULL,
 * or a negative libuv error code (no callback). */
int http_client_request(http_client *c, const struct http_call_spec *spec,
                        http_client_cb cb, void *arg, http_call **call);

/* Abandon a call in flight: its connection is closed and its callback
 * never fires. `call` must be one whose callback has not fired yet. */
void http_call_cancel(http_call *call);

#endif /* LEDGER_HTTP_CLIENT_H */
