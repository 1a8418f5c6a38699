/* HTTP/1.1 server on a libuv loop, requests parsed by http-parser.
 *
 * Objects and ownership:
 * - struct http_server owns the listening handle, a sweep timer (idle and
 *   linger timeouts; its close is the last step of http_server_close) and a
 *   list of connections.
 * - struct http_conn owns one uv_tcp_t, the input buffer (bytes read but not
 *   yet parsed), the request being parsed (`cur`) and points at the request
 *   handed to the handler (`pending`), if any. It is freed in the close
 *   callback of its handle, never before.
 * - struct http_request is owned by the server from on_message_begin until
 *   http_response_send(). When its connection closes first, the request is
 *   detached (req->conn = NULL) and stays valid; answering it then only
 *   frees it.
 *
 * Connection state rules:
 * - Input is parsed only while no request is pending and no write is in
 *   flight, so pipelined requests are handled strictly one at a time and in
 *   order. Reading continues while a request is pending (so that a peer
 *   going away is noticed) until HTTP__IN_CAP bytes are buffered, then stops
 *   until the response has been written.
 * - Errors detected while parsing (400, 413, 431) are answered with a JSON
 *   body and "Connection: close". The connection then "lingers": write side
 *   shut down, input read and discarded until EOF or HTTP__LINGER_MS, so the
 *   peer reliably reads the error instead of getting a reset.
 * - EOF or a read error while a request is pending means the peer has gone:
 *   the connection is closed at once and the request detached.
 *
 * HTTPS (http_server_set_tls): each connection gets a TLS session
 * (http/tls.h). Bytes read go to `raw`, are decrypted into `in` and parsed
 * from there exactly as plain HTTP; every write (responses, error replies,
 * pieces of streamed responses) is encrypted on its way out, into a write
 * of its own that carries the piece's callback, and whatever the session
 * has to send by itself (handshake records, alerts, close_notify) is
 * written after each read. A session that fails (handshake, bad record)
 * gets its alert written and the connection closed; a close_notify from
 * the peer counts as EOF. Plain HTTP on an HTTPS port gets a plain 400
 * https_required.
 *
 * Shutdown: http_server_close() closes the listener and every connection
 * with nothing in flight. Connections with a pending request or a write in
 * flight are closed once the response is written ("Connection: close").
 * When the listener is closed, no connection remains and no request is
 * unanswered, the sweep timer is closed, and its close callback frees the
 * server and fires the user's callback (so it never runs re-entrantly).
 */
#include "http/server.h"

#include <assert.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <http_parser.h>
#include <jansson.h>

#include "http/addr.h"
#include "http/buf.h"
#include "http/tls.h"

#define HTTP__MAX_HEADER_BYTES (64 * 1024) /* Request line + headers cap. */
#define HTTP__READ_CHUNK (64 * 1024)       /* Room offered to each read. */
#define HTTP__IN_CAP                                                           \
    (256 * 1024)                    /* Stop reading above this many buffered   \
                                       bytes while a request is pending. */
#define HTTP__LINGER_MS 2000        /* Max wait for EOF after an error reply. */
#define HTTP__IDLE_MS_DEFAULT 60000 /* Default idle connection timeout. */
#define HTTP__BACKLOG 511           /* listen() backlog. */
#define HTTP__MAX_CONNS 1024        /* Open connections; more are closed. */
#define HTTP__MAX_INFLIGHT 4096     /* Requests held at once; more get 503. */

struct http_header {
    struct http_buf name;
    struct http_buf value;
};

struct http_param {
    char *name;
    char *value;
};

struct http_conn;

struct http_request {
    http_server *srv;
    struct http_conn *conn; /* NULL once the connection is gone. */
    const char *method;     /* Static string from http_method_str(). */
    struct http_buf url;    /* Raw request target. */
    char *path;             /* Percent-decoded path. */
    char *query;            /* Raw query string, "" if none. */
    struct http_header *headers;
    size_t n_headers;
    int last_was_value; /* Last header callback was on_header_value. */
    struct http_buf body;
    struct http_param *params; /* Decoded query parameters, parsed lazily. */
    size_t n_params;
    int params_parsed;
    char peer[64];
    void *data;
    int keep_alive;
    int is_head;
    int streaming;        /* http_response_start was called. */
    int stream_keep;      /* Its headers promised keep-alive. */
    uint64_t stream_len;  /* Content-Length it promised. */
    uint64_t stream_sent; /* Body bytes queued so far. */
};

struct http_conn {
    http_server *srv;
    uv_tcp_t tcp;
    uv_shutdown_t shutdown;
    http_parser parser;
    http_tls_session *tls;        /* HTTPS: this connection's session. */
    int tls_started;              /* HTTPS: some bytes arrived. */
    struct http_buf raw;          /* HTTPS: ciphertext just read. */
    struct http_buf in;           /* Read (decrypted), not yet parsed. */
    size_t header_bytes;          /* Header bytes of the current request. */
    struct http_request *cur;     /* Being parsed, not yet dispatched. */
    struct http_request *pending; /* Dispatched, awaiting its response. */
    int msg_done;                 /* on_message_complete fired for cur. */
    int err_status;               /* Set by parser callbacks to fail. */
    const char *err_code;
    const char *err_msg;
    char err_buf[160];     /* err_msg's text when it is formatted. */
    unsigned n_writes;     /* Writes in flight. */
    int reading;           /* uv_read_start active. */
    int read_eof;          /* EOF or read error seen. */
    int failed;            /* Parse error answered; parse nothing more. */
    int close_after_write; /* Close once the writes in flight finish. */
    int lingering;         /* Write side shut, discarding input. */
    int closing;           /* uv_close called. */
    uint64_t last_active;  /* uv_now() of the last read or write. */
    uint64_t linger_start;
    char peer[64];
    struct http_conn *prev;
    struct http_conn *next;
};

struct http_server {
    uv_loop_t *loop;
    uv_tcp_t listener;
    uv_timer_t sweep;
    size_t max_body;
    uint64_t idle_ms;
    http_handler_cb handler;
    void *arg;
    http_tls *tls; /* NULL: plain HTTP. Borrowed. */
    int peer_auth; /* enum http_tls_peer_auth. */
    struct http_conn *conns;
    size_t n_conns;
    size_t max_conns;
    size_t inflight;
    size_t max_inflight;
    int sweep_started;
    int closing;
    int listener_closed;
    int finishing; /* Sweep timer close started: the end. */
    http_server_close_cb close_cb;
    void *close_arg;
};

struct http_write {
    uv_write_t req;
    struct http_conn *conn;
    size_t len;
    http_write_cb cb; /* A piece of a streamed response: its callback. */
    void *arg;
    const char *ext; /* Borrowed bytes (a streamed piece), else data. */
    char data[];
};

static void connClose(struct http_conn *c);
static void connProcess(struct http_conn *c);
static void connUpdateReading(struct http_conn *c);
static void srvMaybeFinishClose(http_server *srv);

/* -------------------------------------------------------------------------
 * Helpers
 * ---------------------------------------------------------------------- */

const char *http_status_text(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 101:
        return "Switching Protocols";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 206:
        return "Partial Content";
    case 301:
        return "Moved Permanently";
    case 302:
        return "Found";
    case 303:
        return "See Other";
    case 304:
        return "Not Modified";
    case 307:
        return "Temporary Redirect";
    case 308:
        return "Permanent Redirect";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 406:
        return "Not Acceptable";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 410:
        return "Gone";
    case 411:
        return "Length Required";
    case 412:
        return "Precondition Failed";
    case 413:
        return "Payload Too Large";
    case 414:
        return "URI Too Long";
    case 415:
        return "Unsupported Media Type";
    case 416:
        return "Range Not Satisfiable";
    case 421:
        return "Misdirected Request";
    case 422:
        return "Unprocessable Entity";
    case 425:
        return "Too Early";
    case 428:
        return "Precondition Required";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    case 505:
        return "HTTP Version Not Supported";
    case 507:
        return "Insufficient Storage";
    default:
        break;
    }
    if (status >= 100 && status < 200) {
        return "Informational";
    }
    if (status >= 200 && status < 300) {
        return "Success";
    }
    if (status >= 300 && status < 400) {
        return "Redirection";
    }
    if (status >= 400 && status < 500) {
        return "Client Error";
    }
    return "Server Error";
}

static int hexVal(char ch)
{
    if (ch >= '0' && ch <= '9') {
        return ch - '0';
    }
    if (ch >= 'a' && ch <= 'f') {
        return ch - 'a' + 10;
    }
    if (ch >= 'A' && ch <= 'F') {
        return ch - 'A' + 10;
    }
    return -1;
}

/* Percent-decode s[0..n) into a new string. With `plus`, '+' means space
 * (query strings). With `strict`, a bad escape or an encoded NUL is an error
 * (returns NULL with *bad set); otherwise such bytes are kept literally.
 * Returns NULL with *bad clear on out of memory. */
static char *pctDecode(const char *s, size_t n, int plus, int strict, int *bad)
{
    char *out = malloc(n + 1);
    size_t i;
    size_t j = 0;

    *bad = 0;
    if (out == NULL) {
        return NULL;
    }
    for (i = 0; i < n; i++) {
        if (s[i] == '%') {
            int hi = -1;
            int lo = -1;
            if (i + 2 < n) {
                hi = hexVal(s[i + 1]);
                lo = hexVal(s[i + 2]);
            }
            if (hi >= 0 && lo >= 0 && (hi | lo) != 0) {
                out[j++] = (char)(hi * 16 + lo);
                i += 2;
                continue;
            }
            if (strict) {
                free(out);
                *bad = 1;
                return NULL;
            }
            out[j++] = s[i];
        } else if (plus && s[i] == '+') {
            out[j++] = ' ';
        } else {
            out[j++] = s[i];
        }
    }
    out[j] = '\0';
    return out;
}

/* -------------------------------------------------------------------------
 * Requests
 * ---------------------------------------------------------------------- */

static struct http_request *requestAlloc(struct http_conn *c)
{
    struct http_request *req = calloc(1, sizeof *req);
    if (req == NULL) {
        return NULL;
    }
    req->srv = c->srv;
    req->conn = c;
    memcpy(req->peer, c->peer, sizeof req->peer);
    return req;
}

static void requestFree(struct http_request *req)
{
    size_t i;

    if (req == NULL) {
        return;
    }
    for (i = 0; i < req->n_headers; i++) {
        http_buf_free(&req->headers[i].name);
        http_buf_free(&req->headers[i].value);
    }
    free(req->headers);
    for (i = 0; i < req->n_params; i++) {
        free(req->params[i].name);
        free(req->params[i].value);
    }
    free(req->params);
    http_buf_free(&req->url);
    http_buf_free(&req->body);
    free(req->path);
    free(req->query);
    free(req);
}

/* Split req->url into the decoded path and the raw query. Returns 0, or
 * 400/500 with a message. */
static int requestFinishUrl(struct http_request *req, int is_connect,
                            const char **msg)
{
    struct http_parser_url u;
    int bad;

    http_parser_url_init(&u);
    if (req->url.len == 0 ||
        http_parser_parse_url(req->url.p, req->url.len, is_connect, &u) != 0) {
        *msg = "invalid request target";
        return 400;
    }
    if (u.field_set & (1 << UF_PATH)) {
        req->path = pctDecode(req->url.p + u.field_data[UF_PATH].off,
                              u.field_data[UF_PATH].len, 0, 1, &bad);
    } else {
        req->path = pctDecode("/", 1, 0, 1, &bad);
    }
    if (req->path == NULL) {
        *msg = bad ? "invalid percent-encoding in path" : "out of memory";
        return bad ? 400 : 500;
    }
    if (u.field_set & (1 << UF_QUERY)) {
        req->query = strndup(req->url.p + u.field_data[UF_QUERY].off,
                             u.field_data[UF_QUERY].len);
    } else {
        req->query = strdup("");
    }
    if (req->query == NULL) {
        *msg = "out of memory";
        return 500;
    }
    return 0;
}

static int requestParseParams(struct http_request *req)
{
    const char *p = req->query;
    size_t cap = 0;

    req->params_parsed = 1;
    while (*p != '\0') {
        const char *end = strchr(p, '&');
        const char *eq;
        size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
        size_t name_len;
        int bad;

        eq = memchr(p, '=', len);
        name_len = eq != NULL ? (size_t)(eq - p) : len;
        if (len > 0) {
            struct http_param *param;
            if (req->n_params == cap) {
                size_t ncap = cap ? cap * 2 : 8;
                struct http_param *np = realloc(req->params, ncap * sizeof *np);
                if (np == NULL) {
                    return -1;
                }
                req->params = np;
                cap = ncap;
            }
            param = &req->params[req->n_params];
            param->name = pctDecode(p, name_len, 1, 0, &bad);
            if (param->name == NULL) {
                return -1;
            }
            if (eq != NULL) {
                param->value =
                    pctDecode(eq + 1, len - name_len - 1, 1, 0, &bad);
            } else {
                param->value = strdup("");
            }
            if (param->value == NULL) {
                free(param->name);
                return -1;
            }
            req->n_params++;
        }
        if (end == NULL) {
            break;
        }
        p = end + 1;
    }
    return 0;
}

const char *http_request_method(const http_request *req)
{
    return req->method;
}

const char *http_request_path(const http_request *req)
{
    return req->path;
}

const char *http_request_query(const http_request *req)
{
    return req->query;
}

const char *http_request_query_param(http_request *req, const char *name)
{
    size_t i;

    if (!req->params_parsed && requestParseParams(req) != 0) {
        return NULL; /* Out of memory: behave as absent. */
    }
    for (i = 0; i < req->n_params; i++) {
        if (strcmp(req->params[i].name, name) == 0) {
            return req->params[i].value;
        }
    }
    return NULL;
}

const char *http_request_header(const http_request *req, const char *name)
{
    size_t i;

    for (i = 0; i < req->n_headers; i++) {
        if (strcasecmp(http_buf_str(&req->headers[i].name), name) == 0) {
            return http_buf_str(&req->headers[i].value);
        }
    }
    return NULL;
}

const char *http_request_body(const http_request *req, size_t *len)
{
    if (len != NULL) {
        *len = req->body.len;
    }
    return http_buf_str(&req->body);
}

const char *http_request_peer(const http_request *req)
{
    return req->peer;
}

int http_request_connected(const http_request *req)
{
    return req->conn != NULL;
}

void http_request_set_data(http_request *req, void *data)
{
    req->data = data;
}

void *http_request_get_data(const http_request *req)
{
    return req->data;
}

/* -------------------------------------------------------------------------
 * Writing
 * ---------------------------------------------------------------------- */

static void connStartLinger(struct http_conn *c);

/* Every write of the connection has completed: resume parsing, or close
 * as the last response asked. */
static void connWritesDone(struct http_conn *c)
{
    http_server *srv = c->srv;

    if (srv->closing && c->pending == NULL) {
        connClose(c);
        return;
    }
    if (c->close_after_write) {
        if (c->read_eof) {
            connClose(c);
        } else {
            connStartLinger(c);
        }
        return;
    }
    connProcess(c);
}

static void connWriteCb(uv_write_t *wreq, int status)
{
    struct http_write *w = wreq->data;
    struct http_conn *c = w->conn;
    http_server *srv = c->srv;
    http_write_cb cb = w->cb;
    void *arg = w->arg;

    free(w);
    assert(c->n_writes > 0);
    c->n_writes--;
    if (c->closing) {
        /* Cancelled by uv_close. */
        if (cb != NULL) {
            cb(arg, status < 0 ? status : UV_ECANCELED);
        }
        return;
    }
    if (status < 0) {
        connClose(c);
        if (cb != NULL) {
            cb(arg, status);
        }
        return;
    }
    c->last_active = uv_now(srv->loop);
    if (cb != NULL) {
        /* A piece of a streamed response: the producer goes on, or ends
         * the response, from its callback (http_response_finish then does
         * what connWritesDone would). */
        cb(arg, 0);
        return;
    }
    if (c->n_writes > 0) {
        return;
    }
    connWritesDone(c);
}

/* Queue `len` bytes of a malloc'ed http_write (its data, or the borrowed
 * ext). On failure w is freed, the connection closed and the libuv error
 * returned. */
static int connWrite(struct http_conn *c, struct http_write *w)
{
    uv_buf_t buf = uv_buf_init(w->ext != NULL ? (char *)w->ext : w->data,
                               (unsigned)w->len);
    int rv;

    w->conn = c;
    w->req.data = w;
    rv = uv_write(&w->req, (uv_stream_t *)&c->tcp, &buf, 1, connWriteCb);
    if (rv != 0) {
        free(w);
        connClose(c);
        return rv;
    }
    c->n_writes++;
    return 0;
}

/* HTTPS: write out the ciphertext the session has waiting (handshake
 * records, alerts). On failure the connection is closed. */
static void connFlushTls(struct http_conn *c)
{
    size_t n = http_tls_session_pending(c->tls);
    struct http_write *w;

    if (n == 0 || c->closing) {
        return;
    }
    w = calloc(1, sizeof *w + n);
    if (w == NULL) {
        connClose(c);
        return;
    }
    w->len = http_tls_session_take(c->tls, w->data, n);
    connWrite(c, w);
}

/* As connWrite, for plaintext: on HTTPS it is encrypted first into a write
 * of its own that carries w's callback (the borrowed bytes of a streamed
 * piece are then no longer needed). */
static int connSend(struct http_conn *c, struct http_write *w)
{
    struct http_write *cw;
    size_t n;

    if (c->tls == NULL) {
        return connWrite(c, w);
    }
    if (http_tls_session_send(c->tls, w->ext != NULL ? w->ext : w->data,
                              w->len) != HTTP_TLS_OK) {
        free(w);
        connClose(c);
        return UV_EPROTO;
    }
    n = http_tls_session_pending(c->tls);
    cw = calloc(1, sizeof *cw + n);
    if (cw == NULL) {
        free(w);
        connClose(c);
        return UV_ENOMEM;
    }
    cw->len = http_tls_session_take(c->tls, cw->data, n);
    cw->cb = w->cb;
    cw->arg = w->arg;
    free(w);
    return connWrite(c, cw);
}

static void connWriteRaw(struct http_conn *c, const char *data, size_t len)
{
    struct http_write *w = calloc(1, sizeof *w + len);
    if (w == NULL) {
        connClose(c);
        return;
    }
    memcpy(w->data, data, len);
    w->len = len;
    connSend(c, w);
}

/* Status line, headers and (unless is_head) the body. body_len is the
 * Content-Length; with body NULL only the head is written (a streamed
 * response, whose body follows). */
static void connWriteResponse(struct http_conn *c, int status,
                              const char *content_type, const char *body,
                              uint64_t body_len, const char *extra_headers,
                              int keep_alive, int is_head)
{
    int no_body =
        (status >= 100 && status < 200) || status == 204 || status == 304;
    char clen[64] = "";
    char ctype[256] = "";
    size_t send_body =
        (no_body || is_head || body == NULL) ? 0 : (size_t)body_len;
    int hlen;
    struct http_write *w;

    if (extra_headers == NULL) {
        extra_headers = "";
    }
    if (!no_body) {
        snprintf(clen, sizeof clen, "Content-Length: %llu\r\n",
                 (unsigned long long)body_len);
        snprintf(ctype, sizeof ctype, "Content-Type: %s\r\n",
                 content_type != NULL ? content_type
                                      : "application/octet-stream");
    }
    hlen = snprintf(NULL, 0, "HTTP/1.1 %d %s\r\n%s%sConnection: %s\r\n%s\r\n",
                    status, http_status_text(status), ctype, clen,
                    keep_alive ? "keep-alive" : "close", extra_headers);
    assert(hlen > 0);
    w = calloc(1, sizeof *w + (size_t)hlen + 1 + send_body);
    if (w == NULL) {
        connClose(c);
        return;
    }
    snprintf(w->data, (size_t)hlen + 1,
             "HTTP/1.1 %d %s\r\n%s%sConnection: %s\r\n%s\r\n", status,
             http_status_text(status), ctype, clen,
             keep_alive ? "keep-alive" : "close", extra_headers);
    if (send_body > 0) {
        memcpy(w->data + hlen, body, send_body);
    }
    w->len = (size_t)hlen + send_body;
    if (!keep_alive) {
        c->close_after_write = 1;
    }
    connSend(c, w);
}

void http_response_send(http_request *req, int status, const char *content_type,
                        const char *body, size_t body_len,
                        const char *extra_headers)
{
    http_server *srv = req->srv;
    struct http_conn *c = req->conn;

    assert(status >= 100 && status <= 999);
    assert(srv->inflight > 0);
    srv->inflight--;
    if (c != NULL) {
        int keep = req->keep_alive && !srv->closing && !c->read_eof;
        assert(c->pending == req);
        c->pending = NULL;
        connWriteResponse(c, status, content_type, body, body_len,
                          extra_headers, keep, req->is_head);
        requestFree(req);
        /* The write callback resumes parsing or closes. */
        return;
    }
    requestFree(req);
    srvMaybeFinishClose(srv);
}

int http_response_start(http_request *req, int status, const char *content_type,
                        uint64_t content_length, const char *extra_headers)
{
    http_server *srv = req->srv;
    struct http_conn *c = req->conn;

    assert(status >= 100 && status <= 999);
    assert(!req->streaming);
    req->streaming = 1;
    req->stream_len = content_length;
    if (c == NULL || c->closing) {
        return UV_ECONNRESET;
    }
    assert(c->pending == req);
    req->stream_keep = req->keep_alive && !srv->closing && !c->read_eof;
    connWriteResponse(c, status, content_type, NULL, content_length,
                      extra_headers, req->stream_keep, req->is_head);
    if (!req->stream_keep) {
        c->close_after_write = 1;
    }
    return c->closing ? UV_ECONNRESET : 0;
}

int http_response_write(http_request *req, const char *data, size_t len,
                        http_write_cb cb, void *arg)
{
    struct http_conn *c = req->conn;
    struct http_write *w;
    int rv;

    if (!req->streaming || len > req->stream_len - req->stream_sent ||
        len > UINT_MAX || cb == NULL) {
        return UV_EINVAL;
    }
    if (c == NULL || c->closing) {
        return UV_ECONNRESET;
    }
    if (req->is_head) {
        return UV_ECANCELED;
    }
    w = calloc(1, sizeof *w);
    if (w == NULL) {
        return UV_ENOMEM;
    }
    w->ext = data;
    w->len = len;
    w->cb = cb;
    w->arg = arg;
    rv = connSend(c, w);
    if (rv != 0) {
        return rv;
    }
    req->stream_sent += len;
    return 0;
}

void http_response_finish(http_request *req)
{
    http_server *srv = req->srv;
    struct http_conn *c = req->conn;

    assert(req->streaming);
    assert(srv->inflight > 0);
    srv->inflight--;
    if (c != NULL) {
        assert(c->pending == req);
        c->pending = NULL;
        if (!req->is_head && req->stream_sent != req->stream_len) {
            /* Cut short: the client must see a cut body (EOF before
             * Content-Length), never a complete-looking one. */
            c->close_after_write = 1;
        }
        requestFree(req);
        if (!c->closing && c->n_writes == 0) {
            connWritesDone(c);
        }
        return;
    }
    requestFree(req);
    srvMaybeFinishClose(srv);
}

/* Answer a parse error with a JSON body and close (after lingering). */
static void connFail(struct http_conn *c, int status, const char *code,
                     const char *msg)
{
    json_t *obj;
    char *body = NULL;

    c->failed = 1;
    requestFree(c->cur);
    c->cur = NULL;
    obj = json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", msg);
    if (obj != NULL) {
        body = json_dumps(obj, JSON_COMPACT);
        json_decref(obj);
    }
    if (body == NULL) {
        connClose(c);
        return;
    }
    connWriteResponse(c, status, "application/json", body, strlen(body),
                      status == 503 ? "Retry-After: 1\r\n" : NULL, 0, 0);
    free(body);
}

/* -------------------------------------------------------------------------
 * Parser callbacks
 * ---------------------------------------------------------------------- */

static int parserFail(struct http_conn *c, int status, const char *code,
                      const char *msg)
{
    c->err_status = status;
    c->err_code = code;
    c->err_msg = msg;
    return -1;
}

static int countHeaderBytes(struct http_conn *c, size_t len)
{
    c->header_bytes += len;
    if (c->header_bytes > HTTP__MAX_HEADER_BYTES) {
        return parserFail(c, 431, "headers_too_large",
                          "request line and headers exceed 64 KiB");
    }
    return 0;
}

static int onMessageBegin(http_parser *p)
{
    struct http_conn *c = p->data;

    assert(c->cur == NULL);
    c->header_bytes = 0;
    c->cur = requestAlloc(c);
    if (c->cur == NULL) {
        return parserFail(c, 500, "internal", "out of memory");
    }
    return 0;
}

static int onUrl(http_parser *p, const char *at, size_t len)
{
    struct http_conn *c = p->data;

    if (countHeaderBytes(c, len) != 0) {
        return -1;
    }
    if (http_buf_append(&c->cur->url, at, len) != 0) {
        return parserFail(c, 500, "internal", "out of memory");
    }
    return 0;
}

static int onHeaderField(http_parser *p, const char *at, size_t len)
{
    struct http_conn *c = p->data;
    struct http_request *req = c->cur;

    if (countHeaderBytes(c, len) != 0) {
        return -1;
    }
    if (req->n_headers == 0 || req->last_was_value) {
        /* A new header. Grow one at a time in powers of two. */
        size_t n = req->n_headers;
        if ((n & (n - 1)) == 0) {
            size_t ncap = n ? n * 2 : 8;
            struct http_header *nh;
            if (n != 0 && n < 8) {
                ncap = 8;
            }
            nh = realloc(req->headers, ncap * sizeof *nh);
            if (nh == NULL) {
                return parserFail(c, 500, "internal", "out of memory");
            }
            req->headers = nh;
        }
        memset(&req->headers[n], 0, sizeof req->headers[n]);
        req->n_headers++;
        req->last_was_value = 0;
    }
    if (http_buf_append(&req->headers[req->n_headers - 1].name, at, len) != 0) {
        return parserFail(c, 500, "internal", "out of memory");
    }
    return 0;
}

static int onHeaderValue(http_parser *p, const char *at, size_t len)
{
    struct http_conn *c = p->data;
    struct http_request *req = c->cur;

    if (countHeaderBytes(c, len) != 0) {
        return -1;
    }
    assert(req->n_headers > 0);
    req->last_was_value = 1;
    if (http_buf_append(&req->headers[req->n_headers - 1].value, at, len) !=
        0) {
        return parserFail(c, 500, "internal", "out of memory");
    }
    return 0;
}

static int onHeadersComplete(http_parser *p)
{
    struct http_conn *c = p->data;
    struct http_request *req = c->cur;
    const char *expect;

    req->method = http_method_str((enum http_method)p->method);
    req->is_head = p->method == HTTP_HEAD;
    if (p->content_length != ULLONG_MAX &&
        p->content_length > (uint64_t)c->srv->max_body) {
        return parserFail(c, 413, "body_too_large",
                          "request body exceeds the configured maximum");
    }
    expect = http_request_header(req, "Expect");
    if (expect != NULL && strcasecmp(expect, "100-continue") == 0 &&
        p->http_major == 1 && p->http_minor >= 1 && c->srv->loop != NULL) {
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        connWriteRaw(c, cont, sizeof cont - 1);
        if (c->closing) {
            return parserFail(c, 500, "internal", "write failed");
        }
    }
    return 0;
}

static int onBody(http_parser *p, const char *at, size_t len)
{
    struct http_conn *c = p->data;
    struct http_request *req = c->cur;

    if (len > c->srv->max_body || req->body.len > c->srv->max_body - len) {
        return parserFail(c, 413, "body_too_large",
                          "request body exceeds the configured maximum");
    }
    if (http_buf_append(&req->body, at, len) != 0) {
        return parserFail(c, 500, "internal", "out of memory");
    }
    return 0;
}

static int onMessageComplete(http_parser *p)
{
    struct http_conn *c = p->data;

    c->msg_done = 1;
    http_parser_pause(p, 1); /* Return from execute: one at a time. */
    return 0;
}

static const http_parser_settings parserSettings = {
    .on_message_begin = onMessageBegin,
    .on_url = onUrl,
    .on_header_field = onHeaderField,
    .on_header_value = onHeaderValue,
    .on_headers_complete = onHeadersComplete,
    .on_body = onBody,
    .on_message_complete = onMessageComplete,
};

/* -------------------------------------------------------------------------
 * Connections
 * ---------------------------------------------------------------------- */

/* What one run of the parser over c->in found. */
enum http__step {
    HTTP__MORE = 0, /* Every byte consumed; a request needs more. */
    HTTP__REQUEST,  /* c->cur is complete, its URL split, its bytes
                       consumed (what follows stays in c->in). */
    HTTP__ERROR,    /* c->err_status, err_code and err_msg say what to
                       answer before closing. */
};

/* Run the parser over the buffered input up to the end of one request.
 * The only place bytes meet the parser: connections (connProcess) and
 * the socket-less seam (http_server_parse) share it. */
static enum http__step connParse(struct http_conn *c)
{
    size_t n;
    enum http_errno e;

    n = http_parser_execute(&c->parser, &parserSettings, c->in.p, c->in.len);
    e = HTTP_PARSER_ERRNO(&c->parser);
    if (c->msg_done) {
        int upgrade = c->parser.upgrade;
        const char *msg = NULL;
        int status;

        c->msg_done = 0;
        http_buf_consume(&c->in, n);
        if (e == HPE_PAUSED) {
            http_parser_pause(&c->parser, 0);
        }
        if (upgrade) {
            /* What follows is not HTTP: answer this one and close. */
            c->in.len = 0;
        }
        status =
            requestFinishUrl(c->cur, c->parser.method == HTTP_CONNECT, &msg);
        if (status != 0) {
            parserFail(c, status, status == 400 ? "bad_request" : "internal",
                       msg);
            return HTTP__ERROR;
        }
        return HTTP__REQUEST;
    }
    if (e != HPE_OK) {
        if (c->err_status != 0) {
            return HTTP__ERROR;
        }
        if (e == HPE_HEADER_OVERFLOW) {
            parserFail(c, 431, "headers_too_large",
                       "request line and headers too large");
        } else {
            snprintf(c->err_buf, sizeof c->err_buf, "malformed request: %s",
                     http_errno_description(e));
            parserFail(c, 400, "bad_request", c->err_buf);
        }
        return HTTP__ERROR;
    }
    assert(n == c->in.len);
    http_buf_consume(&c->in, n);
    return HTTP__MORE;
}

static void connDispatch(struct http_conn *c)
{
    http_server *srv = c->srv;
    struct http_request *req = c->cur;

    assert(req != NULL && c->pending == NULL);
    req->keep_alive = http_should_keep_alive(&c->parser) &&
                      !c->parser.upgrade && !srv->closing;
    if (srv->inflight >= srv->max_inflight) {
        /* Memory stays bounded: requests held by the node (waiting,
         * forwarded, or detached from a closed connection) are capped. */
        connFail(c, 503, "overloaded",
                 "too many requests in flight on this node: retry shortly");
        return;
    }
    c->cur = NULL;
    c->pending = req;
    srv->inflight++;
    srv->handler(srv->arg, req);
}

static void connProcess(struct http_conn *c)
{
    while (!c->closing && !c->failed && !c->lingering && !c->read_eof &&
           c->pending == NULL && c->n_writes == 0 && !c->srv->closing &&
           c->in.len > 0) {
        enum http__step step = connParse(c);
        if (step == HTTP__REQUEST) {
            connDispatch(c);
        } else if (step == HTTP__ERROR) {
            connFail(c, c->err_status, c->err_code, c->err_msg);
            break;
        }
    }
    connUpdateReading(c);
}

static void connReadAllocCb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct http_conn *c = h->data;

    struct http_buf *b = c->tls != NULL ? &c->raw : &c->in;

    (void)suggested;
    if (http_buf_reserve(b, HTTP__READ_CHUNK) != 0) {
        *buf = uv_buf_init(NULL, 0); /* Read cb gets UV_ENOBUFS. */
        return;
    }
    *buf = uv_buf_init(b->p + b->len, (unsigned)(b->cap - b->len - 1));
}

/* EOF or a read error (or the peer's close_notify). */
static void connReadEnd(struct http_conn *c)
{
    c->read_eof = 1;
    c->reading = 0;
    uv_read_stop((uv_stream_t *)&c->tcp);
    if (c->n_writes > 0 && c->pending == NULL && !c->lingering) {
        c->close_after_write = 1; /* Let the answer go out first. */
        return;
    }
    connClose(c);
}

/* HTTPS: decrypt what was read into c->in; 0, or -1 when the connection
 * is done with (closed, or closing once its alert is written). */
static int connDecrypt(struct http_conn *c, size_t nread)
{
    int rv;

    c->raw.len += nread;
    if (c->lingering || c->failed) {
        c->raw.len = 0;
        return 0;
    }
    if (!c->tls_started) {
        c->tls_started = 1;
        if (c->raw.p[0] >= 'A' && c->raw.p[0] <= 'Z') {
            /* Plain HTTP on the HTTPS port: say so, in plain HTTP. */
            static const char body[] =
                "{\"error\":{\"code\":\"https_required\",\"message\":"
                "\"this port speaks HTTPS: use https://HOST:PORT\"}}";
            char resp[512];
            int n = snprintf(resp, sizeof resp,
                             "HTTP/1.1 400 Bad Request\r\nContent-Type: "
                             "application/json\r\nContent-Length: %zu\r\n"
                             "Connection: close\r\n\r\n%s",
                             sizeof body - 1, body);
            c->raw.len = 0;
            c->failed = 1;
            c->close_after_write = 1;
            http_tls_session_free(c->tls);
            c->tls = NULL; /* this one write goes out as it is */
            connWriteRaw(c, resp, (size_t)n);
            return -1;
        }
    }
    rv = http_tls_session_recv(c->tls, c->raw.p, c->raw.len, &c->in);
    c->raw.len = 0;
    connFlushTls(c);
    if (c->closing) {
        return -1;
    }
    if (rv == HTTP_TLS_CLOSED) {
        connReadEnd(c);
        return -1;
    }
    if (rv != HTTP_TLS_OK) {
        /* The alert goes out, then the connection closes. */
        c->failed = 1;
        c->read_eof = 1;
        if (c->n_writes > 0) {
            c->close_after_write = 1;
            uv_read_stop((uv_stream_t *)&c->tcp);
            c->reading = 0;
        } else {
            connClose(c);
        }
        return -1;
    }
    return 0;
}

static void connReadCb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct http_conn *c = s->data;

    (void)buf;
    if (nread == 0) {
        return;
    }
    if (nread < 0) {
        /* EOF or error. libuv has stopped reading on EOF. */
        connReadEnd(c);
        return;
    }
    c->last_active = uv_now(c->srv->loop);
    if (c->tls != NULL) {
        if (connDecrypt(c, (size_t)nread) != 0) {
            return;
        }
    } else {
        c->in.len += (size_t)nread;
        c->in.p[c->in.len] = '\0';
    }
    if (c->lingering || c->failed) {
        c->in.len = 0; /* Discard. */
        return;
    }
    connProcess(c);
}

static void connUpdateReading(struct http_conn *c)
{
    int want = !c->closing && !c->read_eof &&
               (c->lingering || c->failed || c->in.len < HTTP__IN_CAP);

    if (want && !c->reading) {
        if (uv_read_start((uv_stream_t *)&c->tcp, connReadAllocCb,
                          connReadCb) != 0) {
            connClose(c);
            return;
        }
        c->reading = 1;
    } else if (!want && c->reading) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = 0;
    }
}

static void connShutdownCb(uv_shutdown_t *req, int status)
{
    struct http_conn *c = req->data;

    if (status < 0 && !c->closing) {
        connClose(c);
    }
}

static void connStartLinger(struct http_conn *c)
{
    c->lingering = 1;
    c->linger_start = uv_now(c->srv->loop);
    c->in.len = 0;
    if (c->tls != NULL) {
        http_tls_session_shutdown(c->tls); /* close_notify, then FIN */
        connFlushTls(c);
        if (c->closing) {
            return;
        }
    }
    c->shutdown.data = c;
    if (uv_shutdown(&c->shutdown, (uv_stream_t *)&c->tcp, connShutdownCb) !=
        0) {
        connClose(c);
        return;
    }
    connUpdateReading(c);
}

static void connCloseCb(uv_handle_t *h)
{
    struct http_conn *c = h->data;
    http_server *srv = c->srv;

    if (c->prev != NULL) {
        c->prev->next = c->next;
    } else {
        srv->conns = c->next;
    }
    if (c->next != NULL) {
        c->next->prev = c->prev;
    }
    http_buf_free(&c->in);
    http_buf_free(&c->raw);
    http_tls_session_free(c->tls);
    free(c);
    srv->n_conns--;
    srvMaybeFinishClose(srv);
}

static void connClose(struct http_conn *c)
{
    if (c->closing) {
        return;
    }
    c->closing = 1;
    requestFree(c->cur);
    c->cur = NULL;
    if (c->pending != NULL) {
        c->pending->conn = NULL; /* Detached: still in flight. */
        c->pending = NULL;
    }
    uv_close((uv_handle_t *)&c->tcp, connCloseCb);
}

static void formatPeer(uv_tcp_t *tcp, char *out, size_t len)
{
    struct sockaddr_storage ss;
    int namelen = sizeof ss;
    char ip[INET6_ADDRSTRLEN] = "?";
    int port = 0;

    snprintf(out, len, "?");
    if (uv_tcp_getpeername(tcp, (struct sockaddr *)&ss, &namelen) != 0) {
        return;
    }
    if (ss.ss_family == AF_INET) {
        struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
        uv_ip4_name(sin, ip, sizeof ip);
        port = ntohs(sin->sin_port);
        snprintf(out, len, "%s:%d", ip, port);
    } else if (ss.ss_family == AF_INET6) {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
        uv_ip6_name(sin6, ip, sizeof ip);
        port = ntohs(sin6->sin6_port);
        snprintf(out, len, "[%s]:%d", ip, port);
    }
}

static void srvConnectionCb(uv_stream_t *listener, int status)
{
    http_server *srv = listener->data;
    struct http_conn *c;

    if (status < 0 || srv->closing) {
        return; /* Transient accept errors (EMFILE...) are not fatal. */
    }
    c = calloc(1, sizeof *c);
    if (c == NULL) {
        return;
    }
    c->srv = srv;
    if (uv_tcp_init(srv->loop, &c->tcp) != 0) {
        free(c);
        return;
    }
    c->tcp.data = c;
    srv->n_conns++;
    c->next = srv->conns;
    if (srv->conns != NULL) {
        srv->conns->prev = c;
    }
    srv->conns = c;
    if (uv_accept(listener, (uv_stream_t *)&c->tcp) != 0 ||
        srv->n_conns > srv->max_conns) {
        connClose(c); /* over the bound: accepted and closed at once */
        return;
    }
    if (srv->tls != NULL) {
        c->tls = http_tls_session_accept(srv->tls, srv->peer_auth);
        if (c->tls == NULL) {
            connClose(c);
            return;
        }
    }
    uv_tcp_nodelay(&c->tcp, 1);
    formatPeer(&c->tcp, c->peer, sizeof c->peer);
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    c->last_active = uv_now(srv->loop);
    connUpdateReading(c);
}

/* -------------------------------------------------------------------------
 * Server
 * ---------------------------------------------------------------------- */

static void srvSweepCb(uv_timer_t *t)
{
    http_server *srv = t->data;
    uint64_t now = uv_now(srv->loop);
    struct http_conn *c;

    for (c = srv->conns; c != NULL; c = c->next) {
        if (c->closing) {
            continue;
        }
        if (c->lingering) {
            if (now - c->linger_start >= HTTP__LINGER_MS) {
                connClose(c);
            }
        } else if (srv->idle_ms > 0 && c->pending == NULL && c->n_writes == 0 &&
                   now - c->last_active >= srv->idle_ms) {
            connClose(c);
        } else if (srv->idle_ms > 0 && c->n_writes > 0 &&
                   now - c->last_active >= srv->idle_ms) {
            /* A client that stopped reading (a stalled stream): its
             * pending writes fail, the producer ends the response. */
            connClose(c);
        }
    }
}

static void srvSweepRestart(http_server *srv)
{
    uint64_t every = srv->idle_ms / 4;

    if (every == 0 || every > 1000) {
        every = 1000;
    }
    if (every < 10) {
        every = 10;
    }
    uv_timer_start(&srv->sweep, srvSweepCb, every, every);
}

static void srvSweepCloseCb(uv_handle_t *h)
{
    http_server *srv = h->data;
    http_server_close_cb cb = srv->close_cb;
    void *arg = srv->close_arg;

    free(srv);
    if (cb != NULL) {
        cb(arg);
    }
}

static void srvMaybeFinishClose(http_server *srv)
{
    if (!srv->closing || srv->finishing || !srv->listener_closed ||
        srv->conns != NULL || srv->inflight > 0) {
        return;
    }
    srv->finishing = 1;
    uv_close((uv_handle_t *)&srv->sweep, srvSweepCloseCb);
}

static void srvListenerCloseCb(uv_handle_t *h)
{
    http_server *srv = h->data;

    srv->listener_closed = 1;
    srvMaybeFinishClose(srv);
}

static void srvFreeOnCloseCb(uv_handle_t *h)
{
    free(h->data);
}

int http_server_start(uv_loop_t *loop, const char *addr, size_t max_body,
                      http_handler_cb handler, void *arg, http_server **out,
                      char *err, size_t errlen)
{
    struct sockaddr_in sin;
    http_server *srv;
    int rv;

    assert(loop != NULL && handler != NULL && out != NULL);
    if (http_addr_parse(addr, &sin) != 0) {
        snprintf(err, errlen,
                 "listen %s: invalid address (want IPv4 HOST:PORT)",
                 addr != NULL ? addr : "(null)");
        return UV_EINVAL;
    }
    srv = calloc(1, sizeof *srv);
    if (srv == NULL) {
        snprintf(err, errlen, "listen %s: out of memory", addr);
        return UV_ENOMEM;
    }
    srv->loop = loop;
    srv->max_body = max_body;
    srv->idle_ms = HTTP__IDLE_MS_DEFAULT;
    srv->max_conns = HTTP__MAX_CONNS;
    srv->max_inflight = HTTP__MAX_INFLIGHT;
    srv->handler = handler;
    srv->arg = arg;
    rv = uv_tcp_init(loop, &srv->listener);
    if (rv != 0) {
        goto err_after_alloc;
    }
    srv->listener.data = srv;
    rv = uv_tcp_bind(&srv->listener, (const struct sockaddr *)&sin, 0);
    if (rv == 0) {
        rv = uv_listen((uv_stream_t *)&srv->listener, HTTP__BACKLOG,
                       srvConnectionCb);
    }
    if (rv != 0) {
        goto err_after_listener_init;
    }
    rv = uv_timer_init(loop, &srv->sweep);
    if (rv != 0) {
        goto err_after_listener_init;
    }
    srv->sweep.data = srv;
    srvSweepRestart(srv);
    *out = srv;
    return 0;

err_after_listener_init:
    /* The handle is released by the loop; srv is freed with it. */
    snprintf(err, errlen, "listen %s: %s", addr, uv_strerror(rv));
    uv_close((uv_handle_t *)&srv->listener, srvFreeOnCloseCb);
    return rv;
err_after_alloc:
    snprintf(err, errlen, "listen %s: %s", addr, uv_strerror(rv));
    free(srv);
    return rv;
}

void http_server_close(http_server *srv, http_server_close_cb cb, void *arg)
{
    struct http_conn *c;

    assert(!srv->closing);
    srv->closing = 1;
    srv->close_cb = cb;
    srv->close_arg = arg;
    uv_close((uv_handle_t *)&srv->listener, srvListenerCloseCb);
    for (c = srv->conns; c != NULL; c = c->next) {
        if (c->pending == NULL && c->n_writes == 0) {
            connClose(c); /* Idle, half-read or lingering. */
        }
    }
}

void http_server_set_tls(http_server *srv, http_tls *tls, int peer_auth)
{
    srv->tls = tls;
    srv->peer_auth = peer_auth;
}

void http_server_set_limits(http_server *srv, size_t max_conns,
                            size_t max_inflight)
{
    srv->max_conns = max_conns;
    srv->max_inflight = max_inflight;
}

size_t http_server_inflight(const http_server *srv)
{
    return srv->inflight;
}

int http_server_port(const http_server *srv)
{
    struct sockaddr_storage ss;
    int namelen = sizeof ss;
    int rv;

    rv = uv_tcp_getsockname(&srv->listener, (struct sockaddr *)&ss, &namelen);
    if (rv != 0) {
        return rv;
    }
    if (ss.ss_family == AF_INET) {
        return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    }
    return UV_EAFNOSUPPORT;
}

void http_server_set_idle_timeout(http_server *srv, uint64_t ms)
{
    srv->idle_ms = ms;
    if (!srv->closing) {
        srvSweepRestart(srv);
    }
}

/* -------------------------------------------------------------------------
 * Parsing without a socket (tests/fuzz)
 * ---------------------------------------------------------------------- */

int http_server_parse(const char *data, size_t len, size_t max_body,
                      http_handler_cb cb, void *arg)
{
    http_server srv;
    struct http_conn *c;
    int rv = 0;

    memset(&srv, 0, sizeof srv); /* loop NULL: parse only, never write. */
    srv.max_body = max_body;
    c = calloc(1, sizeof *c);
    if (c == NULL) {
        return 500;
    }
    c->srv = &srv;
    snprintf(c->peer, sizeof c->peer, "-");
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    if (http_buf_append(&c->in, data, len) != 0) {
        rv = 500;
        goto out;
    }
    while (c->in.len > 0) {
        enum http__step step = connParse(c);
        if (step == HTTP__REQUEST) {
            struct http_request *req = c->cur;
            c->cur = NULL;
            req->conn = NULL;
            req->keep_alive = http_should_keep_alive(&c->parser);
            cb(arg, req);
            requestFree(req);
        } else if (step == HTTP__ERROR) {
            rv = c->err_status;
            break;
        }
    }
out:
    requestFree(c->cur);
    http_buf_free(&c->in);
    free(c);
    return rv;
}
