/* Asynchronous one-shot HTTP/1.1 client on a libuv loop.
 *
 * One heap object (struct http_client_req) per call owns a TCP handle, a
 * timer, the connect and write requests, the serialized request and the
 * response being parsed. Phases: connect -> write + read -> done.
 *
 * Invariants:
 * - clientFinish() runs at most once (guarded by `done`) and only from libuv
 *   callbacks, so the user's callback never runs inside
 *   http_client_request(). It fires the callback, then closes both handles.
 * - The object is freed only when both handles are closed; connect/write
 *   callbacks cancelled by that close (UV_ECANCELED) see `done` and return.
 * - The request always says "Connection: close"; a response without a
 *   length is therefore delimited by EOF.
 * Errors reported: UV_ETIMEDOUT (timer), UV_EPROTO (malformed response),
 * UV_ECONNRESET (connection closed before a complete response), and any
 * connect/write/read error from libuv.
 */
#include "node/http_client.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <http_parser.h>

#include "node/http_addr.h"
#include "node/http_buf.h"

#define HTTP_CLIENT__MAX_HEADER_BYTES (64 * 1024) /* Response header cap. */
#define CLIENT__APPEND_LIT(b, lit)                                             \
    http_buf_append((b), (lit), sizeof(lit) - 1) /* String literal only. */

/* Header of the response the client remembers. */
enum { CLIENT__H_NONE, CLIENT__H_CONTENT_TYPE, CLIENT__H_RETRY_AFTER };

struct http_client_req {
    uv_loop_t *loop;
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_connect_t connect;
    uv_write_t write;
    int n_open; /* Handles not yet closed. */
    int done;   /* clientFinish() has run. */
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
    char inbuf[16384];
};

static void clientCloseCb(uv_handle_t *h)
{
    struct http_client_req *r = h->data;

    if (--r->n_open > 0) {
        return;
    }
    http_buf_free(&r->out);
    http_buf_free(&r->field);
    http_buf_free(&r->content_type);
    http_buf_free(&r->retry_after);
    http_buf_free(&r->body);
    free(r);
}

static void clientClose(struct http_client_req *r)
{
    uv_close((uv_handle_t *)&r->timer, clientCloseCb);
    uv_close((uv_handle_t *)&r->tcp, clientCloseCb);
}

static void clientFinish(struct http_client_req *r, int status)
{
    struct http_client_response resp;

    if (r->done) {
        return;
    }
    r->done = 1;
    uv_timer_stop(&r->timer);
    uv_read_stop((uv_stream_t *)&r->tcp);
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
    clientClose(r);
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

static void clientAllocCb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct http_client_req *r = h->data;

    (void)suggested;
    *buf = uv_buf_init(r->inbuf, sizeof r->inbuf);
}

static void clientReadCb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct http_client_req *r = s->data;
    enum http_errno e;

    if (r->done || nread == 0) {
        return;
    }
    if (nread > 0) {
        http_parser_execute(&r->parser, &clientSettings, buf->base,
                            (size_t)nread);
    } else if (nread == UV_EOF) {
        /* Tell the parser: completes bodies delimited by EOF. */
        http_parser_execute(&r->parser, &clientSettings, NULL, 0);
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
    struct http_client_req *r = req->data;

    if (r->done) {
        return;
    }
    if (status < 0) {
        clientFinish(r, status);
    }
}

static void clientConnectCb(uv_connect_t *req, int status)
{
    struct http_client_req *r = req->data;
    uv_buf_t buf;
    int rv;

    if (r->done) {
        return;
    }
    if (status < 0) {
        clientFinish(r, status);
        return;
    }
    rv = uv_read_start((uv_stream_t *)&r->tcp, clientAllocCb, clientReadCb);
    if (rv != 0) {
        clientFinish(r, rv);
        return;
    }
    buf = uv_buf_init(r->out.p, (unsigned)r->out.len);
    r->write.data = r;
    rv = uv_write(&r->write, (uv_stream_t *)&r->tcp, &buf, 1, clientWriteCb);
    if (rv != 0) {
        clientFinish(r, rv);
    }
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

int http_client_request(uv_loop_t *loop, const char *addr, const char *method,
                        const char *path, const char *headers, const char *body,
                        size_t body_len, unsigned timeout_ms, http_client_cb cb,
                        void *arg)
{
    struct sockaddr_in sin;
    struct http_client_req *r;
    char line[256];
    int rv;

    assert(loop != NULL && cb != NULL);
    if (http_addr_parse(addr, &sin) != 0 || !isToken(method) ||
        !isToken(path) || !headersValid(headers) ||
        (body == NULL && body_len > 0)) {
        return UV_EINVAL;
    }
    r = calloc(1, sizeof *r);
    if (r == NULL) {
        return UV_ENOMEM;
    }
    r->loop = loop;
    r->cb = cb;
    r->arg = arg;
    r->is_head = strcmp(method, "HEAD") == 0;
    snprintf(line, sizeof line, "Content-Length: %zu\r\n", body_len);
    if (http_buf_append(&r->out, method, strlen(method)) ||
        CLIENT__APPEND_LIT(&r->out, " ") ||
        http_buf_append(&r->out, path, strlen(path)) ||
        CLIENT__APPEND_LIT(&r->out, " HTTP/1.1\r\nHost: ") ||
        http_buf_append(&r->out, addr, strlen(addr)) ||
        CLIENT__APPEND_LIT(&r->out, "\r\nConnection: close\r\n") ||
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
    r->n_open = 1;
    rv = uv_tcp_init(loop, &r->tcp);
    if (rv != 0) {
        goto err_after_timer_init;
    }
    r->tcp.data = r;
    r->n_open = 2;
    r->connect.data = r;
    rv = uv_tcp_connect(&r->connect, &r->tcp, (const struct sockaddr *)&sin,
                        clientConnectCb);
    if (rv != 0) {
        goto err_after_handles_init;
    }
    rv = uv_timer_start(&r->timer, clientTimerCb, timeout_ms, 0);
    assert(rv == 0); /* Only fails for a closing handle or NULL cb. */
    return 0;

err_after_handles_init:
    /* No callback fires; the loop frees r once both handles are closed. */
    r->done = 1;
    clientClose(r);
    return rv;
err_after_timer_init:
    r->done = 1;
    uv_close((uv_handle_t *)&r->timer, clientCloseCb);
    return rv;
err_after_alloc:
    http_buf_free(&r->out);
    free(r);
    return rv;
}
