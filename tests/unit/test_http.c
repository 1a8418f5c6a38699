/* Unit tests for http/server.c and http/client.c (libcurl on libuv): a real
 * server on 127.0.0.1 (port 0) on a libuv loop, driven by the async client
 * and by raw libuv TCP connections for byte-exact scenarios. No sleeps: the
 * loop runs until a condition holds or a deadline passes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/socket.h>

#include <cmocka.h>
#include <uv.h>

#include "http/client.h"
#include "http/server.h"

#define DEADLINE_MS 5000 /* Upper bound for any wait in these tests. */
#define MAX_BODY 1024    /* Server max_body in the fixture. */

/* -------------------------------------------------------------------------
 * Fixture
 * ---------------------------------------------------------------------- */

struct fixture {
    uv_loop_t loop;
    http_server *srv;
    http_client *cli;
    char addr[64];
    int port;
    int srv_closed;
    /* What the handler saw last. */
    int n_requests;
    char method[16];
    char path[256];
    char query[256];
    char param_x[256];
    int has_param_x;
    char hdr_test[256];
    char body[4096];
    size_t body_len;
    char peer[64];
    char peers[8][64]; /* Peer of each request, in order. */
    /* Requests the handler deferred, answered by the test. */
    http_request *deferred[8];
    int n_deferred;
    /* The streamed response of /stream/... (one at a time). */
    struct producer *prod;
};

/* Streams `pieces` pieces of `piece` bytes ('a' + piece number) with a
 * Content-Length of `promise` bytes, one piece in flight at a time. */
struct producer {
    http_request *req;
    char *buf;
    size_t piece;
    unsigned pieces;
    unsigned written;
    uint64_t promise;
    int last_status; /* Status of the last callback. */
    int write_rv;    /* A write refused at once. */
    int done;        /* Finished. */
};

/* One client call; 0 or the error of http_client_request. */
static int call(struct fixture *f, const char *addr, const char *method,
                const char *path, const char *headers, const char *body,
                size_t len, unsigned timeout_ms, http_client_cb cb, void *arg)
{
    struct http_call_spec s = {.addr = addr,
                               .method = method,
                               .path = path,
                               .headers = headers,
                               .body = body,
                               .body_len = len,
                               .timeout_ms = timeout_ms};
    return http_client_request(f->cli, &s, cb, arg, NULL);
}

/* Copy a possibly NULL string into a fixed buffer. */
static void copyStr(char *dst, size_t n, const char *src)
{
    snprintf(dst, n, "%s", src != NULL ? src : "");
}

static void producerNext(struct producer *p);

static void producerCb(void *arg, int status)
{
    struct producer *p = arg;
    p->last_status = status;
    if (status < 0) {
        http_response_finish(p->req);
        p->done = 1;
        return;
    }
    producerNext(p);
}

static void producerNext(struct producer *p)
{
    int rv;
    if (p->written == p->pieces) {
        http_response_finish(p->req);
        p->done = 1;
        return;
    }
    memset(p->buf, 'a' + (int)(p->written % 26), p->piece);
    rv = http_response_write(p->req, p->buf, p->piece, producerCb, p);
    if (rv != 0) {
        p->write_rv = rv;
        http_response_finish(p->req);
        p->done = 1;
        return;
    }
    p->written++;
}

/* /stream/PIECES/PIECE_BYTES/PROMISED_BYTES */
static void streamStart(struct fixture *f, http_request *req)
{
    struct producer *p = calloc(1, sizeof *p);
    unsigned long long promise = 0;
    unsigned pieces = 0;
    size_t piece = 0;

    assert_non_null(p);
    assert_int_equal(
        sscanf(f->path, "/stream/%u/%zu/%llu", &pieces, &piece, &promise), 3);
    p->req = req;
    p->pieces = pieces;
    p->piece = piece;
    p->promise = promise;
    p->buf = malloc(piece > 0 ? piece : 1);
    assert_non_null(p->buf);
    f->prod = p;
    if (http_response_start(req, 200, "application/octet-stream", promise,
                            "X-Test: streamed\r\n") != 0) {
        http_response_finish(req);
        p->done = 1;
        return;
    }
    producerNext(p);
}

static void producerFree(struct fixture *f)
{
    if (f->prod != NULL) {
        free(f->prod->buf);
        free(f->prod);
        f->prod = NULL;
    }
}

/* Handler: record the request, then
 * - /defer...: keep it for the test to answer;
 * - /status/N: answer N with no extra headers;
 * - otherwise answer 200 "METHOD PATH BODY" with a Retry-After header. */
static void handler(void *arg, http_request *req)
{
    struct fixture *f = arg;
    const char *x;
    const char *body;
    size_t len;
    char out[8192];
    int n;

    copyStr(f->method, sizeof f->method, http_request_method(req));
    copyStr(f->path, sizeof f->path, http_request_path(req));
    copyStr(f->query, sizeof f->query, http_request_query(req));
    x = http_request_query_param(req, "x");
    f->has_param_x = x != NULL;
    copyStr(f->param_x, sizeof f->param_x, x);
    copyStr(f->hdr_test, sizeof f->hdr_test,
            http_request_header(req, "x-test"));
    body = http_request_body(req, &len);
    assert_true(len < sizeof f->body);
    memcpy(f->body, body, len);
    f->body[len] = '\0';
    f->body_len = len;
    copyStr(f->peer, sizeof f->peer, http_request_peer(req));
    if (f->n_requests < 8) {
        copyStr(f->peers[f->n_requests], sizeof f->peers[0], f->peer);
    }
    f->n_requests++;
    assert_true(http_request_connected(req));

    if (strncmp(f->path, "/defer", 6) == 0) {
        assert_true(f->n_deferred < 8);
        f->deferred[f->n_deferred++] = req;
        return;
    }
    if (strncmp(f->path, "/stream/", 8) == 0) {
        streamStart(f, req);
        return;
    }
    if (strncmp(f->path, "/status/", 8) == 0) {
        http_response_send(req, atoi(f->path + 8), "text/plain", "", 0, NULL);
        return;
    }
    n = snprintf(out, sizeof out, "%s %s %s", f->method, f->path, f->body);
    http_response_send(req, 200, "text/plain", out, (size_t)n,
                       "Retry-After: 7\r\n");
}

static void deadlineCb(uv_timer_t *t)
{
    *(int *)t->data = 1;
}

/* Run the loop until *flag becomes nonzero; fail after DEADLINE_MS. */
static void runUntil(struct fixture *f, const int *flag)
{
    uv_timer_t deadline;
    int expired = 0;

    assert_int_equal(uv_timer_init(&f->loop, &deadline), 0);
    deadline.data = &expired;
    uv_timer_start(&deadline, deadlineCb, DEADLINE_MS, 0);
    while (!*flag && !expired) {
        uv_run(&f->loop, UV_RUN_ONCE);
    }
    uv_close((uv_handle_t *)&deadline, NULL);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_false(expired);
}

/* Run the loop for `ms` milliseconds (to check that nothing happens). */
static void runFor(struct fixture *f, uint64_t ms)
{
    uv_timer_t t;
    int expired = 0;

    assert_int_equal(uv_timer_init(&f->loop, &t), 0);
    t.data = &expired;
    uv_timer_start(&t, deadlineCb, ms, 0);
    while (!expired) {
        uv_run(&f->loop, UV_RUN_ONCE);
    }
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(&f->loop, UV_RUN_NOWAIT);
}

static void serverClosedCb(void *arg)
{
    struct fixture *f = arg;
    f->srv_closed = 1;
    f->srv = NULL;
}

static int setUp(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    char err[256];
    int rv;

    assert_non_null(f);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    rv = http_server_start(&f->loop, "127.0.0.1:0", MAX_BODY, handler, f,
                           &f->srv, err, sizeof err);
    assert_int_equal(rv, 0);
    f->port = http_server_port(f->srv);
    assert_true(f->port > 0);
    snprintf(f->addr, sizeof f->addr, "127.0.0.1:%d", f->port);
    assert_int_equal(http_client_create(&f->loop, NULL, &f->cli), 0);
    *state = f;
    return 0;
}

static void closeServer(struct fixture *f)
{
    if (f->srv != NULL) {
        http_server_close(f->srv, serverClosedCb, f);
    }
    runUntil(f, &f->srv_closed);
}

static int tearDown(void **state)
{
    struct fixture *f = *state;
    int i;

    for (i = 0; i < f->n_deferred; i++) {
        if (f->deferred[i] != NULL) {
            http_response_send(f->deferred[i], 500, NULL, NULL, 0, NULL);
        }
    }
    if (!f->srv_closed) {
        closeServer(f);
    }
    http_client_close(f->cli, NULL, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    free(f);
    return 0;
}

/* -------------------------------------------------------------------------
 * Async client results
 * ---------------------------------------------------------------------- */

struct result {
    int fired;
    int status;
    int sent;
    int http_status;
    char content_type[128];
    int has_content_type;
    char retry_after[32];
    int has_retry_after;
    char body[8192];
    size_t body_len;
};

static void clientCb(void *arg, int status,
                     const struct http_client_response *resp)
{
    struct result *r = arg;

    assert_int_equal(r->fired, 0); /* Exactly once. */
    r->fired = 1;
    r->status = status;
    r->sent = resp->sent;
    if (status != 0) {
        return;
    }
    r->http_status = resp->status;
    r->has_content_type = resp->content_type != NULL;
    copyStr(r->content_type, sizeof r->content_type, resp->content_type);
    r->has_retry_after = resp->retry_after != NULL;
    copyStr(r->retry_after, sizeof r->retry_after, resp->retry_after);
    assert_true(resp->body_len < sizeof r->body);
    memcpy(r->body, resp->body, resp->body_len);
    r->body[resp->body_len] = '\0';
    r->body_len = resp->body_len;
}

static void request(struct fixture *f, const char *method, const char *path,
                    const char *headers, const char *body, size_t len,
                    struct result *r)
{
    int rv;

    memset(r, 0, sizeof *r);
    rv = call(f, f->addr, method, path, headers, body, len, DEADLINE_MS,
              clientCb, r);
    assert_int_equal(rv, 0);
    assert_int_equal(r->fired, 0); /* Never from inside the call. */
}

/* -------------------------------------------------------------------------
 * Raw connections: write bytes, collect everything until EOF.
 * ---------------------------------------------------------------------- */

struct raw {
    uv_tcp_t tcp;
    uv_connect_t connect;
    int connected;
    int eof;
    int closed;
    char buf[256 * 1024];
    size_t len;
    int n_writes_done;
};

static void rawAllocCb(uv_handle_t *h, size_t s, uv_buf_t *buf)
{
    struct raw *c = h->data;
    (void)s;
    *buf = uv_buf_init(c->buf + c->len, (unsigned)(sizeof c->buf - c->len - 1));
}

static void rawReadCb(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    struct raw *c = s->data;
    (void)buf;
    if (n > 0) {
        c->len += (size_t)n;
        c->buf[c->len] = '\0';
    } else if (n < 0) {
        c->eof = 1;
        uv_read_stop(s);
    }
}

static void rawConnectCb(uv_connect_t *req, int status)
{
    struct raw *c = req->data;
    assert_int_equal(status, 0);
    c->connected = 1;
    assert_int_equal(
        uv_read_start((uv_stream_t *)&c->tcp, rawAllocCb, rawReadCb), 0);
}

static struct raw *rawConnect(struct fixture *f)
{
    struct raw *c = calloc(1, sizeof *c);
    struct sockaddr_in sin;

    assert_non_null(c);
    assert_int_equal(uv_ip4_addr("127.0.0.1", f->port, &sin), 0);
    assert_int_equal(uv_tcp_init(&f->loop, &c->tcp), 0);
    c->tcp.data = c;
    c->connect.data = c;
    assert_int_equal(uv_tcp_connect(&c->connect, &c->tcp,
                                    (const struct sockaddr *)&sin,
                                    rawConnectCb),
                     0);
    runUntil(f, &c->connected);
    return c;
}

struct raw_write {
    uv_write_t req;
    struct raw *c;
    char data[];
};

static void rawWriteCb(uv_write_t *req, int status)
{
    struct raw_write *w = req->data;
    (void)status; /* May fail if the server already closed. */
    w->c->n_writes_done++;
    free(w);
}

static void rawSend(struct raw *c, const char *data, size_t len)
{
    struct raw_write *w = malloc(sizeof *w + len);
    uv_buf_t buf;

    assert_non_null(w);
    memcpy(w->data, data, len);
    w->c = c;
    w->req.data = w;
    buf = uv_buf_init(w->data, (unsigned)len);
    assert_int_equal(
        uv_write(&w->req, (uv_stream_t *)&c->tcp, &buf, 1, rawWriteCb), 0);
}

static void rawSendStr(struct raw *c, const char *s)
{
    rawSend(c, s, strlen(s));
}

static void rawCloseCb(uv_handle_t *h)
{
    struct raw *c = h->data;
    c->closed = 1;
}

static void rawClose(struct fixture *f, struct raw *c)
{
    uv_close((uv_handle_t *)&c->tcp, rawCloseCb);
    runUntil(f, &c->closed);
    free(c);
}

/* Number of occurrences of `needle` in the received bytes. */
static int rawCount(const struct raw *c, const char *needle)
{
    int n = 0;
    const char *p = c->buf;
    while ((p = strstr(p, needle)) != NULL) {
        n++;
        p += strlen(needle);
    }
    return n;
}

/* Run until `n` responses (status lines) were received on c. */
static void rawWaitResponses(struct fixture *f, struct raw *c, int n)
{
    uv_timer_t deadline;
    int expired = 0;

    assert_int_equal(uv_timer_init(&f->loop, &deadline), 0);
    deadline.data = &expired;
    uv_timer_start(&deadline, deadlineCb, DEADLINE_MS, 0);
    while (!expired && !c->eof && rawCount(c, "HTTP/1.1 ") < n) {
        uv_run(&f->loop, UV_RUN_ONCE);
    }
    uv_close((uv_handle_t *)&deadline, NULL);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_false(expired);
}

/* -------------------------------------------------------------------------
 * Tests: server through the async client
 * ---------------------------------------------------------------------- */

/* A GET with an encoded path, query and header reaches the handler decoded,
 * and the response carries status, content type, body and extra headers. */
static void test_get_decoding(void **state)
{
    struct fixture *f = *state;
    struct result r;

    request(f, "GET", "/hello%20w%C3%B6rld?x=a%20b+c&y=1&empty",
            "X-Test: yes\r\n", NULL, 0, &r);
    runUntil(f, &r.fired);
    assert_int_equal(r.status, 0);
    assert_int_equal(r.http_status, 200);
    assert_string_equal(r.content_type, "text/plain");
    assert_string_equal(r.retry_after, "7");
    assert_string_equal(r.body, "GET /hello w\xc3\xb6rld ");
    assert_string_equal(f->method, "GET");
    assert_string_equal(f->path, "/hello w\xc3\xb6rld");
    assert_string_equal(f->query, "x=a%20b+c&y=1&empty");
    assert_true(f->has_param_x);
    assert_string_equal(f->param_x, "a b c");
    assert_string_equal(f->hdr_test, "yes");
    assert_int_equal(strncmp(f->peer, "127.0.0.1:", 10), 0);
    assert_int_equal(http_server_inflight(f->srv), 0);
}

/* A POST body is delivered whole; a response without Retry-After has none. */
static void test_post_body(void **state)
{
    struct fixture *f = *state;
    struct result r;
    char body[MAX_BODY];

    memset(body, 'b', sizeof body); /* Exactly max_body: allowed. */
    request(f, "POST", "/p", "Content-Type: text/plain\r\n", body, sizeof body,
            &r);
    runUntil(f, &r.fired);
    assert_int_equal(r.status, 0);
    assert_int_equal(r.http_status, 200);
    assert_int_equal(f->body_len, MAX_BODY);
    assert_int_equal(r.body_len, strlen("POST /p ") + MAX_BODY);

    request(f, "GET", "/status/404", NULL, NULL, 0, &r);
    runUntil(f, &r.fired);
    assert_int_equal(r.http_status, 404);
    assert_false(r.has_retry_after);
    assert_int_equal(r.body_len, 0);
}

/* A body one byte over max_body gets 413 with a JSON error; the handler is
 * not called. */
static void test_body_too_large(void **state)
{
    struct fixture *f = *state;
    struct result r;
    char body[MAX_BODY + 1];

    memset(body, 'b', sizeof body);
    request(f, "POST", "/p", NULL, body, sizeof body, &r);
    runUntil(f, &r.fired);
    assert_int_equal(r.status, 0);
    assert_int_equal(r.http_status, 413);
    assert_string_equal(r.content_type, "application/json");
    assert_non_null(strstr(r.body, "{\"error\":{\"code\":\"body_too_large\""));
    assert_int_equal(f->n_requests, 0);
}

/* A chunked body that grows over max_body is refused too (accumulated
 * check), and the connection is closed. */
static void test_chunked_too_large(void **state)
{
    struct fixture *f = *state;
    struct raw *c = rawConnect(f);
    char chunk[700];

    memset(chunk, 'c', sizeof chunk);
    rawSendStr(c, "POST /p HTTP/1.1\r\nHost: x\r\n"
                  "Transfer-Encoding: chunked\r\n\r\n");
    rawSendStr(c, "2bc\r\n");
    rawSend(c, chunk, sizeof chunk);
    rawSendStr(c, "\r\n2bc\r\n");
    rawSend(c, chunk, sizeof chunk);
    rawSendStr(c, "\r\n0\r\n\r\n");
    runUntil(f, &c->eof);
    assert_non_null(strstr(c->buf, "HTTP/1.1 413 Payload Too Large\r\n"));
    assert_non_null(strstr(c->buf, "Connection: close\r\n"));
    assert_int_equal(f->n_requests, 0);
    rawClose(f, c);
}

/* A small chunked body is accepted and reassembled. */
static void test_chunked_ok(void **state)
{
    struct fixture *f = *state;
    struct raw *c = rawConnect(f);

    rawSendStr(c, "POST /c HTTP/1.1\r\nHost: x\r\n"
                  "Transfer-Encoding: chunked\r\n\r\n"
                  "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n");
    rawWaitResponses(f, c, 1);
    runUntil(f, &f->n_requests);
    assert_string_equal(f->body, "abcde");
    rawClose(f, c);
}

/* HEAD gets the headers (with Content-Length) but no body. */
static void test_head(void **state)
{
    struct fixture *f = *state;
    struct result r;

    request(f, "HEAD", "/h", NULL, NULL, 0, &r);
    runUntil(f, &r.fired);
    assert_int_equal(r.status, 0);
    assert_int_equal(r.http_status, 200);
    assert_int_equal(r.body_len, 0);
    assert_string_equal(f->method, "HEAD");
}

/* -------------------------------------------------------------------------
 * Tests: connection handling with raw bytes
 * ---------------------------------------------------------------------- */

/* Several requests one after another reuse a single keep-alive
 * connection. */
static void test_keepalive_reuse(void **state)
{
    struct fixture *f = *state;
    struct raw *c = rawConnect(f);
    int i;

    for (i = 1; i <= 3; i++) {
        rawSendStr(c, "GET /k HTTP/1.1\r\nHost: x\r\n\r\n");
        rawWaitResponses(f, c, i);
    }
    assert_int_equal(f->n_requests, 3);
    assert_string_equal(f->peers[0], f->peers[1]);
    assert_string_equal(f->peers[1], f->peers[2]);
    assert_int_equal(rawCount(c, "Connection: keep-alive\r\n"), 3);
    assert_int_equal(rawCount(c, "Content-Length: 7\r\n"), 3);
    assert_false(c->eof);
    rawClose(f, c);
}

/* Pipelined requests are handled one at a time and answered in order, even
 * when the first is answered later than the others could have been. */
static void test_pipelining_in_order(void **state)
{
    struct fixture *f = *state;
    struct raw *c = rawConnect(f);
    const char *first;
    const char *second;

    rawSendStr(c,
               "GET /defer1 HTTP/1.1\r\nHost: x\r\n\r\n"
               "POST /two HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\n"
               "abc"
               "GET /three HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    runUntil(f, &f->n_deferred);
    /* The others must not be dispatched while /defer1 is pending. */
    runFor(f, 50);
    assert_int_equal(f->n_requests, 1);
    assert_int_equal(http_server_inflight(f->srv), 1);
    assert_int_equal(c->len, 0);

    http_response_send(f->deferred[0], 202, "text/plain", "late", 4, NULL);
    f->deferred[0] = NULL;
    runUntil(f, &c->eof); /* /three asked to close. */
    assert_int_equal(f->n_requests, 3);
    assert_int_equal(rawCount(c, "HTTP/1.1 "), 3);
    first = strstr(c->buf, "HTTP/1.1 202 Accepted");
    second = strstr(c->buf, "POST /two abc");
    assert_non_null(first);
    assert_non_null(second);
    assert_true(first < second);
    assert_non_null(strstr(c->buf, "GET /three "));
    assert_int_equal(rawCount(c, "Connection: close\r\n"), 1);
    rawClose(f, c);
}

/* HTTP/1.0 closes after the response unless it asks for keep-alive. */
static void test_http10(void **state)
{
    struct fixture *f = *state;
    struct raw *c = rawConnect(f);

    rawSendStr(c, "GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    rawWaitResponses(f, c, 1);
    assert_non_null(strstr(c->buf, "Connection: keep-alive\r\n"));
    rawSendStr(c, "GET /b HTTP/1.0\r\n\r\n");
    runUntil(f, &c->eof);
    assert_int_equal(rawCount(c, "HTTP/1.1 200 OK"), 2);
    assert_int_equal(rawCount(c, "Connection: close\r\n"), 1);
    rawClose(f, c);
}

/* Garbage gets 400 with a JSON error, then the connection is closed. */
static void test_garbage_400(void **state)
{
    struct fixture *f = *state;
    struct raw *c = rawConnect(f);

    rawSendStr(c, "\x01\x02 garbage\r\n\r\n");
    runUntil(f, &c->eof);
    assert_non_null(strstr(c->buf, "HTTP/1.1 400 Bad Request\r\n"));
    assert_non_null(strstr(c->buf, "Content-Type: application/json\r\n"));
    assert_non_null(strstr(c->buf, "Connection: close\r\n"));
    assert_non_null(strstr(c->buf, "{\"error\":{\"code\":\"bad_request\""));
    assert_int_equal(f->n_requests, 0);
    rawClose(f, c);
}

/* A valid request followed by garbage: the first is answered, then 400. */
static void test_garbage_after_valid(void **state)
{
    struct fixture *f = *state;
    struct raw *c = rawConnect(f);

    rawSendStr(c, "GET /ok HTTP/1.1\r\nHost: x\r\n\r\nNOT HTTP AT ALL\r\n\r\n");
    runUntil(f, &c->eof);
    assert_int_equal(f->n_requests, 1);
    assert_non_null(strstr(c->buf, "HTTP/1.1 200 OK\r\n"));
    assert_non_null(strstr(c->buf, "HTTP/1.1 400 Bad Request\r\n"));
    rawClose(f, c);
}

/* A bad percent-escape in the path is a 400. */
static void test_bad_percent_path(void **state)
{
    struct fixture *f = *state;
    struct raw *c = rawConnect(f);

    rawSendStr(c, "GET /a%zz HTTP/1.1\r\nHost: x\r\n\r\n");
    runUntil(f, &c->eof);
    assert_non_null(strstr(c->buf, "HTTP/1.1 400 Bad Request\r\n"));
    assert_non_null(strstr(c->buf, "percent-encoding"));
    assert_int_equal(f->n_requests, 0);
    rawClose(f, c);
}

/* Headers over 64 KiB get 431. */
static void test_headers_too_large(void **state)
{
    struct fixture *f = *state;
    struct raw *c = rawConnect(f);
    size_t n = 70 * 1024;
    char *big = malloc(n + 64);

    assert_non_null(big);
    strcpy(big, "GET / HTTP/1.1\r\nX-Big: ");
    memset(big + strlen(big), 'a', n);
    big[strlen("GET / HTTP/1.1\r\nX-Big: ") + n] = '\0';
    strcat(big, "\r\n\r\n");
    rawSendStr(c, big);
    free(big);
    runUntil(f, &c->eof);
    assert_non_null(
        strstr(c->buf, "HTTP/1.1 431 Request Header Fields Too Large\r\n"));
    assert_int_equal(f->n_requests, 0);
    rawClose(f, c);
}

/* "Expect: 100-continue" gets an interim 100 before the body is sent, and
 * an oversized declared body gets 413 straight away. */
static void test_expect_continue(void **state)
{
    struct fixture *f = *state;
    struct raw *c = rawConnect(f);

    rawSendStr(c, "POST /e HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
                  "Expect: 100-continue\r\n\r\n");
    rawWaitResponses(f, c, 1);
    assert_string_equal(c->buf, "HTTP/1.1 100 Continue\r\n\r\n");
    rawSendStr(c, "hi");
    rawWaitResponses(f, c, 2);
    assert_string_equal(f->body, "hi");
    rawClose(f, c);

    c = rawConnect(f);
    rawSendStr(c, "POST /e HTTP/1.1\r\nHost: x\r\nContent-Length: 99999\r\n"
                  "Expect: 100-continue\r\n\r\n");
    runUntil(f, &c->eof);
    assert_non_null(strstr(c->buf, "HTTP/1.1 413 "));
    assert_null(strstr(c->buf, "100 Continue"));
    rawClose(f, c);
}

/* An idle connection is closed after the idle timeout. */
static void test_idle_timeout(void **state)
{
    struct fixture *f = *state;
    struct raw *c;

    http_server_set_idle_timeout(f->srv, 50);
    c = rawConnect(f);
    runUntil(f, &c->eof);
    assert_int_equal(c->len, 0);
    rawClose(f, c);
}

/* -------------------------------------------------------------------------
 * Tests: deferred answers, disconnects, shutdown
 * ---------------------------------------------------------------------- */

static void answerLaterCb(uv_timer_t *t)
{
    struct fixture *f = t->data;

    http_response_send(f->deferred[0], 201, "application/json", "{}", 2, NULL);
    f->deferred[0] = NULL;
    uv_close((uv_handle_t *)t, NULL);
}

/* A handler may answer later, from a timer. */
static void test_deferred_from_timer(void **state)
{
    struct fixture *f = *state;
    struct result r;
    uv_timer_t t;

    request(f, "GET", "/defer", NULL, NULL, 0, &r);
    runUntil(f, &f->n_deferred);
    assert_int_equal(http_server_inflight(f->srv), 1);
    assert_int_equal(uv_timer_init(&f->loop, &t), 0);
    t.data = f;
    uv_timer_start(&t, answerLaterCb, 20, 0);
    runUntil(f, &r.fired);
    assert_int_equal(r.status, 0);
    assert_int_equal(r.http_status, 201);
    assert_string_equal(r.body, "{}");
    assert_int_equal(http_server_inflight(f->srv), 0);
}

/* The peer going away before a deferred answer: the request stays valid,
 * reports disconnected, and answering it just frees it. */
static void test_peer_disconnect_before_answer(void **state)
{
    struct fixture *f = *state;
    struct raw *c = rawConnect(f);
    http_request *req;
    uv_timer_t t;
    int i;

    rawSendStr(c, "GET /defer HTTP/1.1\r\nHost: x\r\n\r\n");
    runUntil(f, &f->n_deferred);
    rawClose(f, c);
    req = f->deferred[0];
    for (i = 0; i < 500 && http_request_connected(req); i++) {
        runFor(f, 10);
    }
    assert_false(http_request_connected(req));
    assert_int_equal(http_server_inflight(f->srv), 1);
    assert_string_equal(http_request_path(req), "/defer");
    assert_int_equal(uv_timer_init(&f->loop, &t), 0);
    t.data = f;
    uv_timer_start(&t, answerLaterCb, 1, 0);
    runFor(f, 20);
    assert_null(f->deferred[0]);
    assert_int_equal(http_server_inflight(f->srv), 0);
}

/* Past max_inflight held requests, a new request gets 503 with Retry-After
 * (and its connection is closed); once the held one is answered, requests
 * are served again. */
static void test_inflight_limit(void **state)
{
    struct fixture *f = *state;
    struct raw *a = rawConnect(f);
    struct raw *b;
    struct raw *c;
    uv_timer_t t;

    http_server_set_limits(f->srv, 16, 1);
    rawSendStr(a, "GET /defer HTTP/1.1\r\nHost: x\r\n\r\n");
    runUntil(f, &f->n_deferred);
    b = rawConnect(f);
    rawSendStr(b, "GET /x HTTP/1.1\r\nHost: x\r\n\r\n");
    rawWaitResponses(f, b, 1);
    assert_int_equal(rawCount(b, "HTTP/1.1 503"), 1);
    assert_int_equal(rawCount(b, "Retry-After: 1"), 1);
    assert_int_equal(rawCount(b, "overloaded"), 1);
    assert_int_equal(f->n_requests, 1); /* the handler never saw it */
    assert_int_equal(uv_timer_init(&f->loop, &t), 0);
    t.data = f;
    uv_timer_start(&t, answerLaterCb, 1, 0);
    rawWaitResponses(f, a, 1);
    c = rawConnect(f);
    rawSendStr(c, "GET /x HTTP/1.1\r\nHost: x\r\n\r\n");
    rawWaitResponses(f, c, 1);
    assert_int_equal(rawCount(c, "HTTP/1.1 200"), 1);
    rawClose(f, a);
    rawClose(f, b);
    rawClose(f, c);
}

/* Past max_conns open connections, a new one is closed at once, and the
 * existing ones keep working. */
static void test_connection_limit(void **state)
{
    struct fixture *f = *state;
    struct raw *a;
    struct raw *b;
    struct raw *c;
    int i;

    http_server_set_limits(f->srv, 2, 16);
    a = rawConnect(f);
    b = rawConnect(f);
    c = rawConnect(f);
    for (i = 0; i < 500 && !c->eof; i++) {
        runFor(f, 10);
    }
    assert_true(c->eof);
    assert_int_equal(c->len, 0);
    rawSendStr(a, "GET /x HTTP/1.1\r\nHost: x\r\n\r\n");
    rawWaitResponses(f, a, 1);
    assert_int_equal(rawCount(a, "HTTP/1.1 200"), 1);
    rawClose(f, a);
    rawClose(f, b);
    rawClose(f, c);
}

/* Closing the server waits for requests in flight: their answers are still
 * written (with "Connection: close"), idle connections are closed at once,
 * and the loop closes cleanly afterwards. */
static void test_close_waits_for_inflight(void **state)
{
    struct fixture *f = *state;
    struct result r;
    struct raw *idle = rawConnect(f);
    struct raw *c = rawConnect(f);

    rawSendStr(c, "GET /defer HTTP/1.1\r\nHost: x\r\n\r\n");
    runUntil(f, &f->n_deferred);
    http_server_close(f->srv, serverClosedCb, f);
    runUntil(f, &idle->eof);
    runFor(f, 30);
    assert_false(f->srv_closed);

    /* New connections are refused. */
    memset(&r, 0, sizeof r);
    assert_int_equal(
        call(f, f->addr, "GET", "/", NULL, NULL, 0, 1000, clientCb, &r), 0);
    runUntil(f, &r.fired);
    assert_int_equal(r.status, UV_ECONNREFUSED);

    http_response_send(f->deferred[0], 200, "text/plain", "bye", 3, NULL);
    f->deferred[0] = NULL;
    runUntil(f, &f->srv_closed);
    runUntil(f, &c->eof);
    assert_non_null(strstr(c->buf, "HTTP/1.1 200 OK\r\n"));
    assert_non_null(strstr(c->buf, "Connection: close\r\n"));
    assert_non_null(strstr(c->buf, "\r\n\r\nbye"));
    rawClose(f, idle);
    rawClose(f, c);
}

/* A request detached by a disconnect still holds the server's close until
 * it is answered. */
static void test_close_waits_for_detached(void **state)
{
    struct fixture *f = *state;
    struct raw *c = rawConnect(f);
    int i;

    rawSendStr(c, "GET /defer HTTP/1.1\r\nHost: x\r\n\r\n");
    runUntil(f, &f->n_deferred);
    rawClose(f, c);
    for (i = 0; i < 500 && http_request_connected(f->deferred[0]); i++) {
        runFor(f, 10);
    }
    http_server_close(f->srv, serverClosedCb, f);
    runFor(f, 30);
    assert_false(f->srv_closed);
    http_response_send(f->deferred[0], 200, NULL, NULL, 0, NULL);
    f->deferred[0] = NULL;
    assert_false(f->srv_closed); /* Never from inside the send. */
    runUntil(f, &f->srv_closed);
}

/* -------------------------------------------------------------------------
 * Tests: start errors and client errors
 * ---------------------------------------------------------------------- */

static void noHandler(void *arg, http_request *req)
{
    (void)arg;
    http_response_send(req, 500, NULL, NULL, 0, NULL);
}

/* Bad addresses and ports in use give clear errors. */
static void test_start_errors(void **state)
{
    struct fixture *f = *state;
    http_server *srv = NULL;
    char err[256];
    char expect[128];
    int rv;

    rv = http_server_start(&f->loop, "nonsense", 10, noHandler, NULL, &srv, err,
                           sizeof err);
    assert_int_equal(rv, UV_EINVAL);
    assert_non_null(strstr(err, "listen nonsense: invalid address"));
    rv = http_server_start(&f->loop, "127.0.0.1:99999", 10, noHandler, NULL,
                           &srv, err, sizeof err);
    assert_int_equal(rv, UV_EINVAL);
    rv = http_server_start(&f->loop, "1.2.3:80", 10, noHandler, NULL, &srv, err,
                           sizeof err);
    assert_int_equal(rv, UV_EINVAL);

    rv = http_server_start(&f->loop, f->addr, 10, noHandler, NULL, &srv, err,
                           sizeof err);
    assert_int_equal(rv, UV_EADDRINUSE);
    snprintf(expect, sizeof expect, "listen %s: address already in use",
             f->addr);
    assert_string_equal(err, expect);

    /* "localhost" works. */
    rv = http_server_start(&f->loop, "localhost:0", 10, noHandler, NULL, &srv,
                           err, sizeof err);
    assert_int_equal(rv, 0);
    http_server_close(srv, NULL, NULL);
}

/* Client: bad arguments fail synchronously without the callback; refused
 * connections and timeouts are reported through it, with `sent` telling
 * whether the request left. */
static void test_client_errors(void **state)
{
    struct fixture *f = *state;
    struct result r;
    int rv;
    char addr[64];

    memset(&r, 0, sizeof r);
    rv = call(f, f->addr, "GET", "no-slash", NULL, NULL, 0, 100, clientCb, &r);
    assert_int_equal(rv, UV_EINVAL);
    runFor(f, 10);
    assert_int_equal(r.fired, 0);

    /* Timeout: the server holds the request, which was sent. */
    memset(&r, 0, sizeof r);
    rv = call(f, f->addr, "GET", "/defer", NULL, NULL, 0, 50, clientCb, &r);
    assert_int_equal(rv, 0);
    runUntil(f, &r.fired);
    assert_int_equal(r.status, UV_ETIMEDOUT);
    assert_true(r.sent);
    http_response_send(f->deferred[0], 200, NULL, NULL, 0, NULL);
    f->deferred[0] = NULL;

    /* Refused: a port nobody listens on (the server's, once closed). */
    snprintf(addr, sizeof addr, "%s", f->addr);
    closeServer(f);
    memset(&r, 0, sizeof r);
    rv = call(f, addr, "GET", "/", NULL, NULL, 0, 1000, clientCb, &r);
    assert_int_equal(rv, 0);
    assert_int_equal(r.fired, 0);
    runUntil(f, &r.fired);
    assert_int_equal(r.status, UV_ECONNREFUSED);
    assert_false(r.sent);
}

/* A cancelled call never calls back, and the client stays usable. */
static void test_client_cancel(void **state)
{
    struct fixture *f = *state;
    struct result r;
    struct result r2;
    http_call *c = NULL;
    struct http_call_spec s = {.addr = f->addr,
                               .method = "GET",
                               .path = "/defer",
                               .timeout_ms = DEADLINE_MS};

    memset(&r, 0, sizeof r);
    assert_int_equal(http_client_request(f->cli, &s, clientCb, &r, &c), 0);
    runUntil(f, &f->n_deferred);
    http_call_cancel(c);
    assert_int_equal(http_client_calls(f->cli), 0);
    request(f, "GET", "/after", NULL, NULL, 0, &r2);
    runUntil(f, &r2.fired);
    assert_int_equal(r2.http_status, 200);
    runFor(f, 20);
    assert_int_equal(r.fired, 0);
}

/* Connecting is bounded by connect_timeout_ms: a listener that never
 * accepts, with the smallest backlog, takes one connection and then drops
 * SYNs, so the later connects never finish and fail with nothing sent. */
static void test_client_connect_timeout(void **state)
{
    struct fixture *f = *state;
    uv_tcp_t l;
    struct sockaddr_in sin;
    struct sockaddr_storage ss;
    int len = sizeof ss;
    char addr[64];
    struct result r[4];
    int timeouts = 0;
    uv_os_fd_t fd;

    uv_ip4_addr("127.0.0.1", 0, &sin);
    uv_tcp_init(&f->loop, &l);
    assert_int_equal(uv_tcp_bind(&l, (struct sockaddr *)&sin, 0), 0);
    /* Listening without accepting: the kernel completes handshakes up to
     * the backlog, then drops SYNs, so later connects never finish. */
    assert_int_equal(uv_fileno((uv_handle_t *)&l, &fd), 0);
    assert_int_equal(listen(fd, 0), 0);
    uv_tcp_getsockname(&l, (struct sockaddr *)&ss, &len);
    snprintf(addr, sizeof addr, "127.0.0.1:%d",
             ntohs(((struct sockaddr_in *)&ss)->sin_port));
    for (int i = 0; i < 4; i++) {
        struct http_call_spec s = {.addr = addr,
                                   .method = "GET",
                                   .path = "/",
                                   .timeout_ms = 3000,
                                   .connect_timeout_ms = 200};
        memset(&r[i], 0, sizeof r[i]);
        assert_int_equal(http_client_request(f->cli, &s, clientCb, &r[i], NULL),
                         0);
    }
    for (int i = 0; i < 4; i++) {
        runUntil(f, &r[i].fired);
        if (r[i].status == UV_ETIMEDOUT && !r[i].sent) {
            timeouts++;
        }
    }
    assert_true(timeouts >= 1);
    uv_close((uv_handle_t *)&l, NULL);
    runFor(f, 10);
}

/* Client: a response delimited by EOF (no Content-Length) and a malformed
 * response, from a scripted raw server. */
struct script_srv {
    uv_tcp_t listener;
    uv_tcp_t conn;
    const char *reply;
    uv_write_t w;
    int n_closed;
};

static void scriptWriteCb(uv_write_t *req, int status)
{
    struct script_srv *s = req->data;
    (void)status;
    if (!uv_is_closing((uv_handle_t *)&s->conn)) {
        uv_close((uv_handle_t *)&s->conn, NULL);
    }
}

static void scriptReadCb(uv_stream_t *st, ssize_t n, const uv_buf_t *buf)
{
    struct script_srv *s = st->data;
    uv_buf_t out;

    free(buf->base);
    if (n <= 0) {
        return;
    }
    uv_read_stop(st);
    out = uv_buf_init((char *)s->reply, (unsigned)strlen(s->reply));
    s->w.data = s;
    uv_write(&s->w, st, &out, 1, scriptWriteCb);
}

static void scriptAllocCb(uv_handle_t *h, size_t sz, uv_buf_t *buf)
{
    (void)h;
    *buf = uv_buf_init(malloc(sz), (unsigned)sz);
}

static void scriptConnCb(uv_stream_t *l, int status)
{
    struct script_srv *s = l->data;

    assert_int_equal(status, 0);
    uv_tcp_init(l->loop, &s->conn);
    s->conn.data = s;
    assert_int_equal(uv_accept(l, (uv_stream_t *)&s->conn), 0);
    uv_read_start((uv_stream_t *)&s->conn, scriptAllocCb, scriptReadCb);
}

static void scripted(struct fixture *f, const char *reply, struct result *r)
{
    struct script_srv s;
    struct sockaddr_in sin;
    struct sockaddr_storage ss;
    int len = sizeof ss;
    char addr[64];

    memset(&s, 0, sizeof s);
    s.reply = reply;
    uv_ip4_addr("127.0.0.1", 0, &sin);
    uv_tcp_init(&f->loop, &s.listener);
    s.listener.data = &s;
    assert_int_equal(uv_tcp_bind(&s.listener, (struct sockaddr *)&sin, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&s.listener, 8, scriptConnCb), 0);
    uv_tcp_getsockname(&s.listener, (struct sockaddr *)&ss, &len);
    snprintf(addr, sizeof addr, "127.0.0.1:%d",
             ntohs(((struct sockaddr_in *)&ss)->sin_port));
    memset(r, 0, sizeof *r);
    assert_int_equal(
        call(f, addr, "GET", "/", NULL, NULL, 0, DEADLINE_MS, clientCb, r), 0);
    runUntil(f, &r->fired);
    uv_close((uv_handle_t *)&s.listener, NULL);
    if (!uv_is_closing((uv_handle_t *)&s.conn)) {
        uv_close((uv_handle_t *)&s.conn, NULL);
    }
    uv_run(&f->loop, UV_RUN_NOWAIT);
    uv_run(&f->loop, UV_RUN_NOWAIT);
}

static void test_client_scripted(void **state)
{
    struct fixture *f = *state;
    struct result r;

    scripted(f, "HTTP/1.1 200 OK\r\nContent-Type: a/b\r\n\r\nuntil eof", &r);
    assert_int_equal(r.status, 0);
    assert_int_equal(r.http_status, 200);
    assert_string_equal(r.content_type, "a/b");
    assert_string_equal(r.body, "until eof");

    scripted(f,
             "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 503 Service Unavailable"
             "\r\nRetry-After: 2\r\nContent-Length: 0\r\n\r\n",
             &r);
    assert_int_equal(r.status, 0);
    assert_int_equal(r.http_status, 503);
    assert_string_equal(r.retry_after, "2");
    assert_false(r.has_content_type);

    scripted(f, "SPDY/9 what\r\n\r\n", &r);
    assert_int_equal(r.status, UV_EPROTO);

    scripted(f, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", &r);
    assert_int_equal(r.status, UV_ECONNRESET);
}

/* -------------------------------------------------------------------------
 * Tests: keep-alive (libcurl's connection cache)
 * ---------------------------------------------------------------------- */

static void seqRequest(struct fixture *f, const char *addr, const char *path,
                       struct result *r)
{
    memset(r, 0, sizeof *r);
    assert_int_equal(
        call(f, addr, "POST", path, NULL, "b", 1, DEADLINE_MS, clientCb, r), 0);
    assert_int_equal(r->fired, 0); /* Never from inside the call. */
    runUntil(f, &r->fired);
    assert_int_equal(r->status, 0);
    assert_int_equal(r->http_status, 200);
}

/* Sequential requests to one address share one connection; a connection the
 * server closed while idle is dropped and the next request opens another;
 * closing the client closes everything (tearDown checks the loop is empty). */
static void test_keepalive_client(void **state)
{
    struct fixture *f = *state;
    struct result r;

    seqRequest(f, f->addr, "/a", &r);
    seqRequest(f, f->addr, "/b", &r);
    seqRequest(f, f->addr, "/c", &r);
    assert_int_equal(f->n_requests, 3);
    assert_string_equal(f->peers[0], f->peers[1]);
    assert_string_equal(f->peers[1], f->peers[2]);

    http_server_set_idle_timeout(f->srv, 50);
    runFor(f, 300); /* The server closes the idle connection. */
    seqRequest(f, f->addr, "/d", &r);
    assert_string_not_equal(f->peers[2], f->peers[3]);
}

/* A server that answers the first request of each connection with
 * keep-alive and closes the connection, unanswered, at the second: what a
 * client sees when the server closes an idle connection as a request
 * arrives. */
struct stale_conn {
    uv_tcp_t tcp;
    uv_write_t w;
    int n_requests;
};

struct stale_srv {
    uv_tcp_t listener;
    struct stale_conn conns[4];
    int n_conns;
};

static void staleReadCb(uv_stream_t *st, ssize_t n, const uv_buf_t *buf)
{
    static const char ok[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    struct stale_conn *c = st->data;
    uv_buf_t out;

    free(buf->base);
    if (n < 0) {
        if (!uv_is_closing((uv_handle_t *)st)) {
            uv_close((uv_handle_t *)st, NULL);
        }
        return;
    }
    if (n == 0) {
        return;
    }
    if (++c->n_requests == 1) {
        out = uv_buf_init((char *)ok, sizeof ok - 1);
        uv_write(&c->w, st, &out, 1, NULL);
    } else if (!uv_is_closing((uv_handle_t *)st)) {
        uv_close((uv_handle_t *)st, NULL);
    }
}

static void staleConnCb(uv_stream_t *l, int status)
{
    struct stale_srv *s = l->data;
    struct stale_conn *c;

    assert_int_equal(status, 0);
    assert_true(s->n_conns < 4);
    c = &s->conns[s->n_conns++];
    uv_tcp_init(l->loop, &c->tcp);
    c->tcp.data = c;
    assert_int_equal(uv_accept(l, (uv_stream_t *)&c->tcp), 0);
    uv_read_start((uv_stream_t *)&c->tcp, scriptAllocCb, staleReadCb);
}

/* A reused connection closed before any byte of the answer: libcurl sends
 * the request once more on a fresh connection, and the caller sees one
 * answer. */
static void test_client_stale_retry(void **state)
{
    struct fixture *f = *state;
    struct stale_srv s;
    struct sockaddr_in sin;
    struct sockaddr_storage ss;
    int len = sizeof ss;
    char addr[64];
    struct result r;

    memset(&s, 0, sizeof s);
    uv_ip4_addr("127.0.0.1", 0, &sin);
    uv_tcp_init(&f->loop, &s.listener);
    s.listener.data = &s;
    assert_int_equal(uv_tcp_bind(&s.listener, (struct sockaddr *)&sin, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&s.listener, 8, staleConnCb), 0);
    uv_tcp_getsockname(&s.listener, (struct sockaddr *)&ss, &len);
    snprintf(addr, sizeof addr, "127.0.0.1:%d",
             ntohs(((struct sockaddr_in *)&ss)->sin_port));

    for (int i = 0; i < 2; i++) {
        memset(&r, 0, sizeof r);
        assert_int_equal(
            call(f, addr, "GET", "/", NULL, NULL, 0, DEADLINE_MS, clientCb, &r),
            0);
        runUntil(f, &r.fired);
        assert_int_equal(r.status, 0);
        assert_int_equal(r.http_status, 200);
        assert_string_equal(r.body, "ok");
    }
    assert_int_equal(s.n_conns, 2); /* The second went to a fresh one. */
    assert_int_equal(s.conns[0].n_requests, 2);
    assert_int_equal(s.conns[1].n_requests, 1);

    uv_close((uv_handle_t *)&s.listener, NULL);
    for (int i = 0; i < s.n_conns; i++) {
        if (!uv_is_closing((uv_handle_t *)&s.conns[i].tcp)) {
            uv_close((uv_handle_t *)&s.conns[i].tcp, NULL);
        }
    }
    runFor(f, 10);
}

/* Concurrent requests all get their answers; closing the client with a
 * call in flight calls it back with UV_ECANCELED, from the loop. */
static void test_client_concurrent_and_close(void **state)
{
    struct fixture *f = *state;
    struct result r[4];
    struct result held;
    int i;

    for (i = 0; i < 4; i++) {
        memset(&r[i], 0, sizeof r[i]);
        assert_int_equal(call(f, f->addr, "GET", "/x", NULL, NULL, 0,
                              DEADLINE_MS, clientCb, &r[i]),
                         0);
    }
    for (i = 0; i < 4; i++) {
        runUntil(f, &r[i].fired);
        assert_int_equal(r[i].http_status, 200);
    }
    memset(&held, 0, sizeof held);
    assert_int_equal(call(f, f->addr, "GET", "/defer", NULL, NULL, 0,
                          DEADLINE_MS, clientCb, &held),
                     0);
    runUntil(f, &f->n_deferred);
    http_client_close(f->cli, NULL, NULL);
    f->cli = NULL;
    assert_int_equal(held.fired, 0);
    runUntil(f, &held.fired);
    assert_int_equal(held.status, UV_ECANCELED);
}

/* -------------------------------------------------------------------------
 * Tests: streamed responses
 * ---------------------------------------------------------------------- */

/* Run until the handler has started a producer, then until it is done. */
static void runUntilProduced(struct fixture *f)
{
    runUntil(f, &f->n_requests);
    assert_non_null(f->prod);
    runUntil(f, &f->prod->done);
}

/* A streamed body arrives whole and in order after its headers, and the
 * connection stays usable for the next request. */
static void test_stream_whole(void **state)
{
    struct fixture *f = *state;
    struct raw *c = rawConnect(f);
    const char *body;
    size_t i;

    rawSendStr(c, "GET /stream/3/65536/196608 HTTP/1.1\r\nHost: x\r\n\r\n");
    runUntilProduced(f);
    assert_int_equal(f->prod->last_status, 0);
    while (!c->eof && (strstr(c->buf, "\r\n\r\n") == NULL ||
                       c->len < (size_t)(strstr(c->buf, "\r\n\r\n") - c->buf) +
                                    4 + 196608)) {
        uv_run(&f->loop, UV_RUN_ONCE);
    }
    assert_non_null(strstr(c->buf, "HTTP/1.1 200 OK\r\n"));
    assert_non_null(strstr(c->buf, "Content-Length: 196608\r\n"));
    assert_non_null(strstr(c->buf, "X-Test: streamed\r\n"));
    assert_non_null(strstr(c->buf, "Connection: keep-alive\r\n"));
    body = strstr(c->buf, "\r\n\r\n") + 4;
    assert_int_equal(c->len - (size_t)(body - c->buf), 196608);
    for (i = 0; i < 196608; i++) {
        if (body[i] != 'a' + (char)(i / 65536)) {
            fail_msg("byte %zu is %c", i, body[i]);
        }
    }
    assert_int_equal(http_server_inflight(f->srv), 0);
    producerFree(f);
    c->len = 0;
    c->buf[0] = '\0';
    rawSendStr(c, "GET /after HTTP/1.1\r\nHost: x\r\n\r\n");
    rawWaitResponses(f, c, 1);
    assert_non_null(strstr(c->buf, "GET /after"));
    assert_false(c->eof);
    rawClose(f, c);
}

/* Finishing before Content-Length closes the connection: the client sees
 * a cut body. Writing past it is refused. */
static void test_stream_cut_short(void **state)
{
    struct fixture *f = *state;
    struct raw *c = rawConnect(f);

    rawSendStr(c, "GET /stream/1/1000/5000 HTTP/1.1\r\nHost: x\r\n\r\n");
    runUntilProduced(f);
    runUntil(f, &c->eof);
    assert_non_null(strstr(c->buf, "Content-Length: 5000\r\n"));
    assert_int_equal(c->len - (size_t)(strstr(c->buf, "\r\n\r\n") + 4 - c->buf),
                     1000);
    producerFree(f);
    rawClose(f, c);

    c = rawConnect(f);
    f->n_requests = 0;
    rawSendStr(c, "GET /stream/2/1000/1500 HTTP/1.1\r\nHost: x\r\n\r\n");
    runUntilProduced(f);
    assert_int_equal(f->prod->write_rv, UV_EINVAL);
    runUntil(f, &c->eof);
    assert_int_equal(http_server_inflight(f->srv), 0);
    producerFree(f);
    rawClose(f, c);
}

/* The client going away mid-stream: the pending piece's callback fails,
 * the producer finishes, nothing stays in flight. */
static void test_stream_client_gone(void **state)
{
    struct fixture *f = *state;
    struct raw *c = rawConnect(f);

    rawSendStr(c, "GET /stream/100000/65536/6553600000 HTTP/1.1\r\n"
                  "Host: x\r\n\r\n");
    while (f->prod == NULL || f->prod->written < 3) {
        uv_run(&f->loop, UV_RUN_ONCE);
    }
    rawClose(f, c);
    runUntil(f, &f->prod->done);
    assert_true(f->prod->last_status < 0 || f->prod->write_rv < 0);
    assert_int_equal(http_server_inflight(f->srv), 0);
    producerFree(f);
}

/* A client that stops reading: after the idle timeout the connection is
 * closed and the producer's pending write fails. */
static void test_stream_stalled(void **state)
{
    struct fixture *f = *state;
    struct raw *c = rawConnect(f);

    http_server_set_idle_timeout(f->srv, 100);
    uv_read_stop((uv_stream_t *)&c->tcp);
    rawSendStr(c, "GET /stream/100000/1048576/104857600000 HTTP/1.1\r\n"
                  "Host: x\r\n\r\n");
    while (f->prod == NULL) {
        uv_run(&f->loop, UV_RUN_ONCE);
    }
    runUntil(f, &f->prod->done);
    assert_true(f->prod->last_status < 0);
    assert_true(f->prod->written < 100000);
    assert_int_equal(http_server_inflight(f->srv), 0);
    producerFree(f);
    rawClose(f, c);
}

/* HEAD: the headers with the Content-Length, no body; the write is
 * refused, and the connection serves the next request. */
static void test_stream_head(void **state)
{
    struct fixture *f = *state;
    struct raw *c = rawConnect(f);

    rawSendStr(c, "HEAD /stream/1/10/10 HTTP/1.1\r\nHost: x\r\n\r\n");
    runUntilProduced(f);
    assert_int_equal(f->prod->write_rv, UV_ECANCELED);
    rawWaitResponses(f, c, 1);
    assert_non_null(strstr(c->buf, "Content-Length: 10\r\n"));
    producerFree(f);
    rawSendStr(c, "GET /next HTTP/1.1\r\nHost: x\r\n\r\n");
    rawWaitResponses(f, c, 2);
    assert_non_null(strstr(c->buf, "GET /next"));
    rawClose(f, c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, setUp, tearDown)
        T(test_get_decoding),
        T(test_post_body),
        T(test_body_too_large),
        T(test_chunked_too_large),
        T(test_chunked_ok),
        T(test_head),
        T(test_keepalive_reuse),
        T(test_pipelining_in_order),
        T(test_http10),
        T(test_garbage_400),
        T(test_garbage_after_valid),
        T(test_bad_percent_path),
        T(test_headers_too_large),
        T(test_expect_continue),
        T(test_idle_timeout),
        T(test_deferred_from_timer),
        T(test_peer_disconnect_before_answer),
        T(test_inflight_limit),
        T(test_connection_limit),
        T(test_close_waits_for_inflight),
        T(test_close_waits_for_detached),
        T(test_start_errors),
        T(test_client_errors),
        T(test_client_cancel),
        T(test_client_connect_timeout),
        T(test_client_scripted),
        T(test_keepalive_client),
        T(test_client_concurrent_and_close),
        T(test_client_stale_retry),
        T(test_stream_whole),
        T(test_stream_cut_short),
        T(test_stream_client_gone),
        T(test_stream_stalled),
        T(test_stream_head),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
