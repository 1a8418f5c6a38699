/* HTTP/1.1 server on a libuv loop, requests parsed by http-parser.
 *
 * Invariants:
 * - Keep-alive per HTTP/1.1 rules (and "Connection: close" honoured).
 * - One request at a time per connection: while a request awaits its
 *   response, further bytes on that connection are buffered/paused, so
 *   pipelined requests are answered in order.
 * - A request is handed to the handler once fully read (headers + body).
 *   The handler answers now or later with http_response_send(); the request
 *   object stays valid until then, even if the peer disconnected meanwhile
 *   (sending then just frees it). Every request must be answered exactly
 *   once.
 * - Bodies over max_body get 413 without calling the handler; malformed
 *   requests get 400 and the connection is closed.
 * - http_server_close() stops accepting, closes idle connections, lets
 *   requests in flight finish (their responses are still sent), and calls
 *   the close callback once every handle is closed.
 */
#ifndef LEDGER_HTTP_SERVER_H
#define LEDGER_HTTP_SERVER_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "http/tls.h"

typedef struct http_server http_server;
typedef struct http_request http_request;

/* Called once per complete request. */
typedef void (*http_handler_cb)(void *arg, http_request *req);
typedef void (*http_server_close_cb)(void *arg);

/* Listen on `addr` ("HOST:PORT"). On failure returns a negative libuv error
 * code and fills err. */
/* (IPv4 only; "localhost" means 127.0.0.1, an empty host 0.0.0.0. If the
 * failure happens after the listening handle was created, e.g. address in
 * use, that handle is closed asynchronously: run the loop before
 * uv_loop_close.) */
int http_server_start(uv_loop_t *loop, const char *addr, size_t max_body,
                      http_handler_cb handler, void *arg, http_server **out,
                      char *err, size_t errlen);

void http_server_close(http_server *srv, http_server_close_cb cb, void *arg);

/* Serve HTTPS on every connection accepted from now on (call it right
 * after http_server_start, before the loop runs), asking clients for a
 * certificate per `peer_auth` (enum http_tls_peer_auth). `tls` is
 * borrowed: it must outlive the server; a reload (http_tls_swap) applies
 * to the connections accepted afterwards. NULL: plain HTTP again. */
void http_server_set_tls(http_server *srv, http_tls *tls, int peer_auth);

/* Bounds (defaults 1024 and 4096): connections past max_conns are
 * accepted and closed at once; a request arriving while max_inflight are
 * held gets 503 with Retry-After and its connection is closed. */
void http_server_set_limits(http_server *srv, size_t max_conns,
                            size_t max_inflight);

/* Number of requests received and not yet answered. */
size_t http_server_inflight(const http_server *srv);

/* TCP port the server is bound to (useful after listening on port 0), or a
 * negative libuv error code. */
int http_server_port(const http_server *srv);

/* Close connections idle (no request in progress) for longer than `ms`
 * milliseconds. Default 60000; 0 disables the timeout. */
void http_server_set_idle_timeout(http_server *srv, uint64_t ms);

/* Request accessors. Strings are NUL-terminated and owned by the request. */
const char *http_request_method(const http_request *req); /* "GET", ... */
const char *http_request_path(const http_request *req);  /* decoded, no query */
const char *http_request_query(const http_request *req); /* raw, "" if none */
/* Value of query parameter `name` (percent-decoded), NULL if absent. */
const char *http_request_query_param(http_request *req, const char *name);
/* Case-insensitive header lookup, NULL if absent. */
const char *http_request_header(const http_request *req, const char *name);
const char *http_request_body(const http_request *req, size_t *len);
/* Peer address "ip:port". */
const char *http_request_peer(const http_request *req);
/* False once the peer has gone away (response would be discarded). */
int http_request_connected(const http_request *req);
/* Opaque slot for the handler. */
void http_request_set_data(http_request *req, void *data);
void *http_request_get_data(const http_request *req);

/* Send the response and release the request. `extra_headers` is NULL or
 * lines each ending in "\r\n" (e.g. "Retry-After: 1\r\n"). Content-Length,
 * Connection and Content-Type are added by the server. Body is copied. */
void http_response_send(http_request *req, int status, const char *content_type,
                        const char *body, size_t body_len,
                        const char *extra_headers);

/* ---- Streamed responses --------------------------------------------------
 * For a body too large to hold in memory (a backup of a whole store). In
 * place of http_response_send: http_response_start() writes the status
 * line and headers, http_response_write() queues the body piece by piece,
 * and http_response_finish() releases the request. Until then the request
 * counts as in flight (http_server_inflight; http_server_close waits).
 *
 * - content_length is the exact body size. Finishing after fewer bytes
 *   closes the connection, so the client sees a cut body (EOF before
 *   Content-Length), never one that looks complete.
 * - A piece's bytes are borrowed until its callback: cb(arg, 0) once
 *   written, cb(arg, <0) when the connection is gone or the write failed
 *   (stop, and finish). Never called from inside http_response_write.
 *   Pieces go out in order; the caller bounds its memory by waiting for a
 *   callback before queueing more. Finish only once every piece's callback
 *   has run.
 * - A connection whose writes make no progress for the idle timeout (a
 *   client that stopped reading) is closed: the pending callbacks fail.
 * - For HEAD only the headers go out: write returns UV_ECANCELED.
 *
 * start returns 0, or a negative libuv error (the client is gone: do not
 * write, finish). write returns 0 (cb will fire) or a negative libuv error
 * (cb will not fire: finish); UV_EINVAL past content_length. */
typedef void (*http_write_cb)(void *arg, int status);
int http_response_start(http_request *req, int status, const char *content_type,
                        uint64_t content_length, const char *extra_headers);
int http_response_write(http_request *req, const char *data, size_t len,
                        http_write_cb cb, void *arg);
void http_response_finish(http_request *req);

/* Standard reason phrase for a status code ("Not Found"). */
const char *http_status_text(int status);

/* Testing seam (tests/fuzz/fuzz_http.c): parse `len` bytes as the input of
 * one connection, with the server's own parser code, without a loop or a
 * socket. `cb` gets each complete request as a handler would, may call
 * the accessors above, and must not answer it (it is freed when cb
 * returns). Returns 0 once every byte is consumed (the last request may
 * be incomplete), or the status the server would answer before closing
 * the connection (400, 413, 431; 500 when out of memory). */
int http_server_parse(const char *data, size_t len, size_t max_body,
                      http_handler_cb cb, void *arg);

#endif /* LEDGER_HTTP_SERVER_H */
