/* Asynchronous HTTP/1.1 client on a libuv loop: one-shot requests and a
 * pool of keep-alive connections (see http_client.h).
 *
 * Two heap objects:
 * - struct http_conn owns a TCP handle, its connect and write requests and
 *   its read buffer. It lives until its handle is closed, so cancelled
 *   connect/write callbacks always find it; they look at conn->req, which is
 *   NULL once the exchange is over.
 * - struct http_client_req owns one exchange: a timer, the serialized
 *   request and the response being parsed. Phases: connect (or reuse) ->
 *   write + read -> done.
 *
 * Invariants:
 * - clientFinish() runs at most once (guarded by `done`) and only from libuv
 *   callbacks, so the user's callback never runs inside a request call. It
 *   fires the callback, then releases the connection (back to the pool
 *   after a complete keep-alive answer, else closed) and closes the timer;
 *   the request is freed in the timer's close callback.
 * - A connection is in at most one of: in use by exactly one request, idle
 *   in its pool's list, or closing. Idle connections keep reading: any
 *   byte, EOF or error closes them.
 * - A one-shot request says "Connection: close"; a response without a
 *   length is therefore delimited by EOF. A pooled request does not.
 * - A pool is freed only after http_pool_close() and once its sweep timer
 *   and every connection it opened are closed.
 * Errors reported: UV_ETIMEDOUT (timer), UV_EPROTO (malformed response),
 * UV_ECONNRESET (connection closed before a complete response), and any
 * connect/write/read error from libuv.
 */
#include "http/client.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <http_parser.h>

#include "http/addr.h"
#include "http/buf.h"

#define HTTP_CLIENT__MAX_HEADER_BYTES (64 * 1024) /* Response header cap. */
#define HTTP_POOL__SWEEP_MS 5000  /* How often idle connections are aged. */
#define HTTP_CLIENT__ADDR_MAX 128 /* "host:port" + NUL. */
#define CLIENT__APPEND_LIT(b, lit)                                             \
    http_buf_append((b), (lit), sizeof(lit) - 1) /* String literal only. */

/* Header of the response the client remembers. */
enum { CLIENT__H_NONE, CLIENT__H_CONTENT_TYPE, CLIENT__H_RETRY_AFTER };

struct http_client_req;

struct http_conn {
    uv_tcp_t tcp;
    uv_connect_t connect;
    uv_write_t write;
    http_pool *pool;             /* NULL: one-shot. */
    struct http_client_req *req; /* Exchange in progress, or NULL. */
    char addr[HTTP_CLIENT__ADDR_MAX];
    int closing;
    int writing; /* A write is queued: the connection is not reusable. */
    struct http_conn *next_idle; /* In pool->idle when idle. */
    struct http_conn *prev_idle;
    int idle;
    uint64_t idle_since; /* uv_now() when it became idle. */
    char inbuf[16384];
};

struct http_pool {
    uv_loop_t *loop;
    uv_timer_t sweep;
    struct http_conn *idle; /* Most recently used first. */
    size_t n_idle;
    size_t max_idle;
    size_t n_conns; /* Opened by the pool, not yet closed. */
    size_t n_reqs;  /* Requests started on the pool, not yet freed. */
    int closing;
    int sweep_closed;
};

struct http_client_req {
    uv_loop_t *loop;
    http_pool *pool;
    struct http_conn *conn;
    struct sockaddr_in sin;
    char addr[HTTP_CLIENT__ADDR_MAX];
    uv_timer_t timer;
    int done;     /* clientFinish() has run. */
    int reused;   /* conn came from the pool. */
    int got_data; /* Some byte of the answer arrived. */
    int retried;  /* Sent again after a stale pooled connection. */
    int is_head;
    http_client_cb cb;
    void *arg;
    struct http_buf out; /* Serialized request. */
    http_parser parser;
    size_t header_bytes;
    int cur_header; /* CLIENT__H_* for the header being parsed. */
    int last_was_value;
    struct http_buf field;
    struct http_buf content_type;
    struct http_buf retry_after;
    int have_content_type;
    int have_retry_after;
    int duplicate; /* X-Ledger-Duplicate seen */
    struct http_buf body;
    int complete;
};

static void poolMaybeFree(http_pool *p);

/* ---- Connections -------------------------------------------------------- */

static void idleUnlink(struct http_conn *c)
{
    http_pool *p = c->pool;
    if (!c->idle) {
        return;
    }
    if (c->prev_idle != NULL) {
        c->prev_idle->next_idle = c->next_idle;
    } else {
        p->idle = c->next_idle;
    }
    if (c->next_idle != NULL) {
        c->next_idle->prev_idle = c->prev_idle;
    }
    c->next_idle = c->prev_idle = NULL;
    c->idle = 0;
    p->n_idle--;
}

static void connClosedCb(uv_handle_t *h)
{
    struct http_conn *c = h->data;
    http_pool *p = c->pool;

    free(c);
    if (p != NULL) {
        p->n_conns--;
        poolMaybeFree(p);
    }
}

static void connClose(struct http_conn *c)
{
    if (c->closing) {
        return;
    }
    if (c->pool != NULL) {
        idleUnlink(c);
    }
    c->closing = 1;
    c->req = NULL;
    uv_close((uv_handle_t *)&c->tcp, connClosedCb);
}

static struct http_conn *connNew(uv_loop_t *loop, http_pool *p,
                                 const char *addr, int *rv)
{
    struct http_conn *c = calloc(1, sizeof *c);
    if (c == NULL) {
        *rv = UV_ENOMEM;
        return NULL;
    }
    *rv = uv_tcp_init(loop, &c->tcp);
    if (*rv != 0) {
        free(c);
        return NULL;
    }
    c->tcp.data = c;
    c->connect.data = c;
    c->write.data = c;
    c->pool = p;
    snprintf(c->addr, sizeof c->addr, "%s", addr);
    if (p != NULL) {
        p->n_conns++;
    }
    return c;
}

/* An idle pooled connection to addr, unlinked from the idle list. */
static struct http_conn *poolTake(http_pool *p, const char *addr)
{
    struct http_conn *c;
    for (c = p->idle; c != NULL; c = c->next_idle) {
        if (strcmp(c->addr, addr) == 0) {
            idleUnlink(c);
            return c;
        }
    }
    return NULL;
}

/* The exchange on c ended: pool c if the answer allows it, else close. */
static void connRelease(struct http_conn *c, int reusable)
{
    http_pool *p = c->pool;

    c->req = NULL;
    if (c->closing) {
        return;
    }
    if (p == NULL || p->closing || !reusable || c->writing ||
        p->n_idle >= p->max_idle) {
        connClose(c);
        return;
    }
    c->idle = 1;
    c->idle_since = uv_now(p->loop);
    c->prev_idle = NULL;
    c->next_idle = p->idle;
    if (p->idle != NULL) {
        p->idle->prev_idle = c;
    }
    p->idle = c;
    p->n_idle++;
}

/* ---- Requests ----------------------------------------------------------- */

static void clientTimerClosedCb(uv_handle_t *h)
{
    struct http_client_req *r = h->data;
    http_pool *p = r->pool;

    http_buf_free(&r->out);
    http_buf_free(&r->field);
    http_buf_free(&r->content_type);
    http_buf_free(&r->retry_after);
    http_buf_free(&r->body);
    free(r);
    if (p != NULL) {
        p->n_reqs--;
        poolMaybeFree(p);
    }
}

static void clientFinish(struct http_client_req *r, int status)
{
    struct http_client_response resp;
    struct http_conn *c = r->conn;
    int reusable;

    if (r->done) {
        return;
    }
    r->done = 1;
    uv_timer_stop(&r->timer);
    reusable = status == 0 && r->complete &&
               http_should_keep_alive(&r->parser) && !r->is_head;
    if (status == 0) {
        memset(&resp, 0, sizeof resp);
        resp.status = r->parser.status_code;
        resp.content_type =
            r->have_content_type ? http_buf_str(&r->content_type) : NULL;
        resp.retry_after =
            r->have_retry_after ? http_buf_str(&r->retry_after) : NULL;
        resp.body = http_buf_str(&r->body);
        resp.body_len = r->body.len;
        resp.duplicate = r->duplicate;
        r->cb(r->arg, 0, &resp);
    } else {
        r->cb(r->arg, status, NULL);
    }
    r->conn = NULL;
    if (c != NULL) {
        connRelease(c, reusable);
    }
    uv_close((uv_handle_t *)&r->timer, clientTimerClosedCb);
}

/* Response parser callbacks. */

static int clientHeaderBytes(struct http_client_req *r, size_t len)
{
    r->header_bytes += len;
    return r->header_bytes > HTTP_CLIENT__MAX_HEADER_BYTES ? -1 : 0;
}

static int onMessageBegin(http_parser *p)
{
    struct http_client_req *r = p->data;

    /* Also reached again after a 1xx interim response: start over. */
    r->header_bytes = 0;
    r->cur_header = CLIENT__H_NONE;
    r->last_was_value = 0;
    r->field.len = 0;
    r->content_type.len = 0;
    r->retry_after.len = 0;
    r->have_content_type = 0;
    r->have_retry_after = 0;
    r->body.len = 0;
    return 0;
}

static int onStatus(http_parser *p, const char *at, size_t len)
{
    (void)at;
    return clientHeaderBytes(p->data, len);
}

static int onHeaderField(http_parser *p, const char *at, size_t len)
{
    struct http_client_req *r = p->data;

    if (clientHeaderBytes(r, len) != 0) {
        return -1;
    }
    if (r->last_was_value) {
        r->field.len = 0;
        r->last_was_value = 0;
    }
    return http_buf_append(&r->field, at, len);
}

static int onHeaderValue(http_parser *p, const char *at, size_t len)
{
    struct http_client_req *r = p->data;
    struct http_buf *dst = NULL;

    if (clientHeaderBytes(r, len) != 0) {
        return -1;
    }
    if (!r->last_was_value) {
        /* First fragment of this value: classify its header. */
        const char *name = http_buf_str(&r->field);
        r->last_was_value = 1;
        r->cur_header = CLIENT__H_NONE;
        if (strcasecmp(name, "Content-Type") == 0 && !r->have_content_type) {
            r->cur_header = CLIENT__H_CONTENT_TYPE;
            r->have_content_type = 1;
        } else if (strcasecmp(name, "Retry-After") == 0 &&
                   !r->have_retry_after) {
            r->cur_header = CLIENT__H_RETRY_AFTER;
            r->have_retry_after = 1;
        } else if (strcasecmp(name, "X-Ledger-Duplicate") == 0) {
            r->duplicate = 1;
        }
    }
    if (r->cur_header == CLIENT__H_CONTENT_TYPE) {
        dst = &r->content_type;
    } else if (r->cur_header == CLIENT__H_RETRY_AFTER) {
        dst = &r->retry_after;
    }
    return dst != NULL ? http_buf_append(dst, at, len) : 0;
}

static int onHeadersComplete(http_parser *p)
{
    struct http_client_req *r = p->data;

    return r->is_head ? 1 : 0; /* 1: no body follows. */
}

static int onBody(http_parser *p, const char *at, size_t len)
{
    struct http_client_req *r = p->data;

    return http_buf_append(&r->body, at, len);
}

static int onMessageComplete(http_parser *p)
{
    struct http_client_req *r = p->data;

    if (p->status_code >= 100 && p->status_code < 200) {
        return 0; /* Interim response; the real one follows. */
    }
    r->complete = 1;
    http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings clientSettings = {
    .on_message_begin = onMessageBegin,
    .on_status = onStatus,
    .on_header_field = onHeaderField,
    .on_header_value = onHeaderValue,
    .on_headers_complete = onHeadersComplete,
    .on_body = onBody,
    .on_message_complete = onMessageComplete,
};

/* I/O callbacks. */

static int clientSend(struct http_client_req *r);
static int clientConnect(struct http_client_req *r);

/* The reused connection died before any byte of the answer: the peer
 * never read the request (it closed an idle connection). Send it once more
 * on a fresh connection. True if that was started. */
static int clientRetryFresh(struct http_client_req *r)
{
    struct http_conn *c = r->conn;

    if (!r->reused || r->got_data || r->retried || r->done) {
        return 0;
    }
    r->retried = 1;
    r->reused = 0;
    r->conn = NULL;
    connClose(c);
    return clientConnect(r) == 0;
}

static void clientAllocCb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct http_conn *c = h->data;

    (void)suggested;
    *buf = uv_buf_init(c->inbuf, sizeof c->inbuf);
}

static void clientReadCb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct http_conn *c = s->data;
    struct http_client_req *r = c->req;
    enum http_errno e;

    if (nread == 0 || c->closing) {
        return;
    }
    if (r == NULL) {
        connClose(c); /* Idle: the peer closed it or said something odd. */
        return;
    }
    if (nread > 0) {
        r->got_data = 1;
        http_parser_execute(&r->parser, &clientSettings, buf->base,
                            (size_t)nread);
    } else if (nread == UV_EOF) {
        if (clientRetryFresh(r)) {
            return;
        }
        /* Tell the parser: completes bodies delimited by EOF. */
        http_parser_execute(&r->parser, &clientSettings, NULL, 0);
    } else if (clientRetryFresh(r)) {
        return;
    }
    if (r->complete) {
        clientFinish(r, 0);
        return;
    }
    e = HTTP_PARSER_ERRNO(&r->parser);
    if (e != HPE_OK && e != HPE_INVALID_EOF_STATE) {
        clientFinish(r, UV_EPROTO);
        return;
    }
    if (nread == UV_EOF) {
        clientFinish(r, UV_ECONNRESET);
    } else if (nread < 0) {
        clientFinish(r, (int)nread);
    }
}

static void clientWriteCb(uv_write_t *req, int status)
{
    struct http_conn *c = req->data;
    struct http_client_req *r = c->req;

    c->writing = 0;
    if (r == NULL || r->done || status >= 0) {
        return;
    }
    if (!clientRetryFresh(r)) {
        clientFinish(r, status);
    }
}

/* Write the request on r->conn (connected) and start reading. */
static int clientSend(struct http_client_req *r)
{
    struct http_conn *c = r->conn;
    uv_buf_t buf;
    int rv;

    if (!r->reused) {
        rv = uv_read_start((uv_stream_t *)&c->tcp, clientAllocCb, clientReadCb);
        if (rv != 0) {
            return rv;
        }
    }
    buf = uv_buf_init(r->out.p, (unsigned)r->out.len);
    rv = uv_write(&c->write, (uv_stream_t *)&c->tcp, &buf, 1, clientWriteCb);
    c->writing = rv == 0;
    return rv;
}

static void clientConnectCb(uv_connect_t *req, int status)
{
    struct http_conn *c = req->data;
    struct http_client_req *r = c->req;
    int rv;

    if (r == NULL || r->done) {
        return;
    }
    if (status < 0) {
        clientFinish(r, status);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    rv = clientSend(r);
    if (rv != 0) {
        clientFinish(r, rv);
    }
}

/* Open a fresh connection for r. 0, or a libuv error (nothing to undo). */
static int clientConnect(struct http_client_req *r)
{
    struct http_conn *c;
    int rv;

    c = connNew(r->loop, r->pool, r->addr, &rv);
    if (c == NULL) {
        return rv;
    }
    rv = uv_tcp_connect(&c->connect, &c->tcp, (const struct sockaddr *)&r->sin,
                        clientConnectCb);
    if (rv != 0) {
        connClose(c);
        return rv;
    }
    c->req = r;
    r->conn = c;
    return 0;
}

/* Send on an idle pooled connection to the same address, if any. */
static int clientReuse(struct http_client_req *r)
{
    struct http_conn *c = poolTake(r->pool, r->addr);
    int rv;

    if (c == NULL) {
        return UV_ENOENT;
    }
    c->req = r;
    r->conn = c;
    r->reused = 1;
    rv = clientSend(r);
    if (rv != 0) {
        /* The connection is unusable: close it, try a fresh one. */
        r->conn = NULL;
        r->reused = 0;
        connClose(c);
        return UV_ENOENT;
    }
    return 0;
}

static void clientTimerCb(uv_timer_t *t)
{
    clientFinish(t->data, UV_ETIMEDOUT);
}

/* True if s has no byte that could split or end a request line. */
static int isToken(const char *s)
{
    if (s == NULL || *s == '\0') {
        return 0;
    }
    for (; *s != '\0'; s++) {
        if ((unsigned char)*s <= ' ' || *s == 0x7f) {
            return 0;
        }
    }
    return 1;
}

/* Header lines must be "Name: value\r\n" and carry no bare CR or LF. */
static int headersValid(const char *h)
{
    size_t len;
    size_t i;

    if (h == NULL || *h == '\0') {
        return 1;
    }
    len = strlen(h);
    if (len < 2 || h[len - 2] != '\r' || h[len - 1] != '\n') {
        return 0;
    }
    for (i = 0; i < len; i++) {
        if (h[i] == '\r' && (i + 1 >= len || h[i + 1] != '\n')) {
            return 0;
        }
        if (h[i] == '\n' && (i == 0 || h[i - 1] != '\r')) {
            return 0;
        }
        if (h[i] == '\n' && i + 1 < len && h[i + 1] == '\r') {
            return 0; /* Empty line would end the header block early. */
        }
    }
    return 1;
}

static int requestStart(uv_loop_t *loop, http_pool *pool, const char *addr,
                        const char *method, const char *path,
                        const char *headers, const char *body, size_t body_len,
                        unsigned timeout_ms, http_client_cb cb, void *arg)
{
    struct http_client_req *r;
    char line[256];
    int rv;

    assert(loop != NULL && cb != NULL);
    if (addr == NULL || strlen(addr) >= HTTP_CLIENT__ADDR_MAX ||
        !isToken(method) || !isToken(path) || !headersValid(headers) ||
        (body == NULL && body_len > 0)) {
        return UV_EINVAL;
    }
    r = calloc(1, sizeof *r);
    if (r == NULL) {
        return UV_ENOMEM;
    }
    if (http_addr_parse(addr, &r->sin) != 0) {
        free(r);
        return UV_EINVAL;
    }
    snprintf(r->addr, sizeof r->addr, "%s", addr);
    r->loop = loop;
    r->pool = pool;
    r->cb = cb;
    r->arg = arg;
    r->is_head = strcmp(method, "HEAD") == 0;
    snprintf(line, sizeof line, "Content-Length: %zu\r\n", body_len);
    if (http_buf_append(&r->out, method, strlen(method)) ||
        CLIENT__APPEND_LIT(&r->out, " ") ||
        http_buf_append(&r->out, path, strlen(path)) ||
        CLIENT__APPEND_LIT(&r->out, " HTTP/1.1\r\nHost: ") ||
        http_buf_append(&r->out, addr, strlen(addr)) ||
        CLIENT__APPEND_LIT(&r->out, "\r\n") ||
        (pool == NULL &&
         CLIENT__APPEND_LIT(&r->out, "Connection: close\r\n")) ||
        http_buf_append(&r->out, line, strlen(line)) ||
        (headers != NULL &&
         http_buf_append(&r->out, headers, strlen(headers))) ||
        CLIENT__APPEND_LIT(&r->out, "\r\n") ||
        http_buf_append(&r->out, body, body_len)) {
        rv = UV_ENOMEM;
        goto err_after_alloc;
    }
    http_parser_init(&r->parser, HTTP_RESPONSE);
    r->parser.data = r;

    rv = uv_timer_init(loop, &r->timer);
    if (rv != 0) {
        goto err_after_alloc;
    }
    r->timer.data = r;
    if (pool == NULL || clientReuse(r) != 0) {
        rv = clientConnect(r);
        if (rv != 0) {
            goto err_after_timer_init;
        }
    }
    if (pool != NULL) {
        pool->n_reqs++;
    }
    rv = uv_timer_start(&r->timer, clientTimerCb, timeout_ms, 0);
    assert(rv == 0); /* Only fails for a closing handle or NULL cb. */
    return 0;

err_after_timer_init:
    /* No callback fires; the loop frees r once the timer is closed. */
    r->done = 1;
    r->pool = NULL;
    uv_close((uv_handle_t *)&r->timer, clientTimerClosedCb);
    return rv;
err_after_alloc:
    http_buf_free(&r->out);
    free(r);
    return rv;
}

int http_client_request(uv_loop_t *loop, const char *addr, const char *method,
                        const char *path, const char *headers, const char *body,
                        size_t body_len, unsigned timeout_ms, http_client_cb cb,
                        void *arg)
{
    return requestStart(loop, NULL, addr, method, path, headers, body, body_len,
                        timeout_ms, cb, arg);
}

/* ---- Pool --------------------------------------------------------------- */

static void poolMaybeFree(http_pool *p)
{
    if (p->closing && p->sweep_closed && p->n_conns == 0 && p->n_reqs == 0) {
        free(p);
    }
}

static void poolSweepCb(uv_timer_t *t)
{
    http_pool *p = t->data;
    uint64_t now = uv_now(p->loop);
    struct http_conn *c = p->idle;

    while (c != NULL) {
        struct http_conn *next = c->next_idle;
        if (now - c->idle_since >= HTTP_POOL_IDLE_MS) {
            connClose(c);
        }
        c = next;
    }
}

static void poolSweepClosedCb(uv_handle_t *h)
{
    http_pool *p = h->data;
    p->sweep_closed = 1;
    poolMaybeFree(p);
}

http_pool *http_pool_create(uv_loop_t *loop, size_t max_idle)
{
    http_pool *p = calloc(1, sizeof *p);
    if (p == NULL) {
        return NULL;
    }
    p->loop = loop;
    p->max_idle = max_idle;
    uv_timer_init(loop, &p->sweep);
    p->sweep.data = p;
    uv_timer_start(&p->sweep, poolSweepCb, HTTP_POOL__SWEEP_MS,
                   HTTP_POOL__SWEEP_MS);
    uv_unref((uv_handle_t *)&p->sweep); /* Never keeps the loop alive. */
    return p;
}

void http_pool_close(http_pool *p)
{
    if (p == NULL || p->closing) {
        return;
    }
    p->closing = 1;
    while (p->idle != NULL) {
        connClose(p->idle);
    }
    uv_close((uv_handle_t *)&p->sweep, poolSweepClosedCb);
}

int http_pool_request(http_pool *p, const char *addr, const char *method,
                      const char *path, const char *headers, const char *body,
                      size_t body_len, unsigned timeout_ms, http_client_cb cb,
                      void *arg)
{
    if (p->closing) {
        return UV_ECANCELED;
    }
    return requestStart(p->loop, p, addr, method, path, headers, body, body_len,
                        timeout_ms, cb, arg);
}

size_t http_pool_connections(const http_pool *p)
{
    return p->n_conns;
}
